# shoal: libshoal (src/) with thin programs on top (cmd/).
# make            bin/shoald bin/shoal bin/shoal-sim
# make test       unit tests, the same under ASan+UBSan, fuzz corpus replay,
#                 integration tests on lab clusters; ends "N passed, M failed"
# make bench      prints figures (build/rel/bench-control first: the
#                 control plane's cost per change, in memory); make fuzz FUZZ_RUNS=N runs the fuzzers
CC ?= gcc
PKGS := libuv raft jansson libcbor libcurl openssl libarchive libnl-route-3.0 libnftables ldns \
        libseccomp
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lhttp_parser
# shoald opens these on first use (src/lazy/, issue 13: idle RSS), so it does
# not link them; --as-needed drops any other library it makes no call to.
LAZY_PKGS := libcurl libarchive libnftables
SHOALD_LIBS := -Wl,--as-needed $(shell pkg-config --libs $(filter-out $(LAZY_PKGS),$(PKGS)) \
               2>/dev/null) -lhttp_parser
WARN := -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes \
        -Wmissing-prototypes -Wno-unused-parameter -Wno-format-truncation -Werror
# As strict as Debian's package build (dpkg-buildflags): _FORTIFY_SOURCE
# turns ignored results of read/write/link into errors there, so here too.
CFLAGS ?= -O2 -g -D_FORTIFY_SOURCE=2 -fstack-protector-strong
ALL_CFLAGS := -std=gnu11 $(WARN) -D_GNU_SOURCE -Isrc $(PKG_CFLAGS) $(CPPFLAGS) $(CFLAGS)
ASAN_FLAGS := -O1 -g -DSHOAL_CHECK_HINTS -U_FORTIFY_SOURCE -fno-omit-frame-pointer -fsanitize=address,undefined \
              -fno-sanitize-recover=undefined

LIB_SRC := $(sort $(wildcard src/*/*.c))
SHOALD_SRC := $(sort $(wildcard cmd/shoald/*.c))
SHOAL_SRC := $(sort $(wildcard cmd/shoal/*.c))
SIM_SRC := $(sort $(wildcard cmd/shoal-sim/*.c))
UNIT_SRC := $(sort $(wildcard tests/unit/*.c))
BENCH_SRC := $(sort $(wildcard tests/bench/*.c))
HDRS := $(wildcard src/*/*.h cmd/*/*.h tests/unit/*.h tests/fuzz/*.h)

OBJ := $(LIB_SRC:%.c=build/rel/%.o)
AOBJ := $(LIB_SRC:%.c=build/asan/%.o)

.PHONY: all test unit unit-asan fuzz bench clean format format-check install deb
all: bin/shoald bin/shoal bin/shoal-sim

build/rel/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(ALL_CFLAGS) -c $< -o $@

build/asan/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC/ASAN $<"
	@$(CC) $(ALL_CFLAGS) $(ASAN_FLAGS) -c $< -o $@

# `shoald --version` and `shoal version` name the commit built, as
# dockerd's "build <commit>".
GIT_COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
build/rel/src/cli/render.o build/asan/src/cli/render.o: ALL_CFLAGS += \
  -DSHOAL_GIT_COMMIT='"$(GIT_COMMIT)"'

# /version's BuildTime without __DATE__ (Debian builds with -Wdate-time):
# SOURCE_DATE_EPOCH when set (dpkg-buildpackage sets it), else the commit's.
BUILD_EPOCH ?= $(or $(SOURCE_DATE_EPOCH),$(shell git log -1 --format=%ct 2>/dev/null))
ifneq ($(BUILD_EPOCH),)
build/rel/src/api/system.o build/asan/src/api/system.o \
build/rel/src/cli/render.o build/asan/src/cli/render.o: ALL_CFLAGS += \
  -DSHOAL_BUILD_TIME='"$(shell date -u -d @$(BUILD_EPOCH) +%Y-%m-%dT%H:%M:%SZ)"'
endif

build/rel/libshoal.a: $(OBJ)
	@rm -f $@; ar rcs $@ $^

build/asan/libshoal.a: $(AOBJ)
	@rm -f $@; ar rcs $@ $^

bin/shoald: $(SHOALD_SRC) build/rel/libshoal.a $(HDRS)
	@mkdir -p bin
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -DSHOAL_GIT_COMMIT='"$(GIT_COMMIT)"' $(SHOALD_SRC) build/rel/libshoal.a $(SHOALD_LIBS) -lm -o $@

bin/shoal: $(SHOAL_SRC) build/rel/libshoal.a $(HDRS)
	@mkdir -p bin
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -DSHOAL_GIT_COMMIT='"$(GIT_COMMIT)"' $(SHOAL_SRC) build/rel/libshoal.a $(PKG_LIBS) -lm -o $@

# The cluster simulator (src/sim): a tool to measure managers, not shipped.
# It runs on mimalloc (linked first, it takes malloc over): glibc's malloc
# was ~22 % of its CPU, which the managers it measures share a machine
# with; main() puts it on huge pages. shoald's JSON moves to mimalloc only
# while its store is large (lazy/heap.h: idle RSS).
SIM_HEAP := -Wl,--push-state,--no-as-needed -lmimalloc -Wl,--pop-state
bin/shoal-sim: $(SIM_SRC) build/rel/libshoal.a $(HDRS)
	@mkdir -p bin
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $(SIM_SRC) build/rel/libshoal.a $(SIM_HEAP) $(PKG_LIBS) -lm -o $@

build/rel/unit-tests: $(UNIT_SRC) build/rel/libshoal.a $(HDRS)
	$(CC) $(ALL_CFLAGS) -Itests/unit $(UNIT_SRC) build/rel/libshoal.a $(PKG_LIBS) -lm -o $@

build/asan/unit-tests: $(UNIT_SRC) build/asan/libshoal.a $(HDRS)
	$(CC) $(ALL_CFLAGS) $(ASAN_FLAGS) -Itests/unit $(UNIT_SRC) build/asan/libshoal.a $(PKG_LIBS) -lm -o $@

unit: build/rel/unit-tests
	./build/rel/unit-tests

unit-asan: build/asan/unit-tests
	./build/asan/unit-tests

# The fuzz target is built with clang's libFuzzer; the replay binary (same
# target, a plain main) runs the corpus under ASan in `make test`.
FUZZ_SRC := tests/fuzz/fuzz_api.c
build/fuzz/fuzz-api: $(FUZZ_SRC) $(LIB_SRC) $(HDRS)
	@mkdir -p build/fuzz
	clang -std=gnu11 -D_GNU_SOURCE -Isrc $(PKG_CFLAGS) -g -O1 \
	  -fsanitize=fuzzer,address,undefined $(FUZZ_SRC) $(LIB_SRC) $(PKG_LIBS) -lm -o $@

build/asan/fuzz-replay: $(FUZZ_SRC) tests/fuzz/replay.c build/asan/libshoal.a $(HDRS)
	$(CC) $(ALL_CFLAGS) $(ASAN_FLAGS) $(FUZZ_SRC) tests/fuzz/replay.c build/asan/libshoal.a $(PKG_LIBS) -lm -o $@

# The embedded DNS server's codec, the same way.
FUZZ_DNS_SRC := tests/fuzz/fuzz_dns.c
build/fuzz/fuzz-dns: $(FUZZ_DNS_SRC) $(LIB_SRC) $(HDRS)
	@mkdir -p build/fuzz
	clang -std=gnu11 -D_GNU_SOURCE -Isrc $(PKG_CFLAGS) -g -O1 \
	  -fsanitize=fuzzer,address,undefined $(FUZZ_DNS_SRC) $(LIB_SRC) $(PKG_LIBS) -lm -o $@

build/asan/fuzz-dns-replay: $(FUZZ_DNS_SRC) tests/fuzz/replay.c build/asan/libshoal.a
	$(CC) $(ALL_CFLAGS) $(ASAN_FLAGS) $(FUZZ_DNS_SRC) tests/fuzz/replay.c build/asan/libshoal.a $(PKG_LIBS) -lm -o $@

# The swarm port before authentication and with a worker's certificate,
# image manifests/indexes/configs, layer tarballs, the raft snapshot
# decoder and raft entries (CBOR or JSON) through the store's apply:
# fuzz_<name>.c with its seeds in tests/fuzz/corpus-<name>, the same way.
FUZZ_MORE := swarm node manifest layer snapshot entry
build/fuzz/fuzz-%: tests/fuzz/fuzz_%.c $(LIB_SRC) $(HDRS)
	@mkdir -p build/fuzz
	clang -std=gnu11 -D_GNU_SOURCE -Isrc $(PKG_CFLAGS) -g -O1 \
	  -fsanitize=fuzzer,address,undefined $< $(LIB_SRC) $(PKG_LIBS) -lm -o $@

build/asan/fuzz-%-replay: tests/fuzz/fuzz_%.c tests/fuzz/replay.c build/asan/libshoal.a $(HDRS)
	$(CC) $(ALL_CFLAGS) $(ASAN_FLAGS) $< tests/fuzz/replay.c build/asan/libshoal.a $(PKG_LIBS) -lm -o $@

FUZZ_RUNS ?= 100000
fuzz: build/fuzz/fuzz-api build/fuzz/fuzz-dns $(FUZZ_MORE:%=build/fuzz/fuzz-%)
	mkdir -p build/fuzz/corpus build/fuzz/corpus-dns $(FUZZ_MORE:%=build/fuzz/corpus-%)
	./build/fuzz/fuzz-api -runs=$(FUZZ_RUNS) build/fuzz/corpus tests/fuzz/corpus
	./build/fuzz/fuzz-dns -runs=$(FUZZ_RUNS) build/fuzz/corpus-dns tests/fuzz/corpus-dns
	for t in $(FUZZ_MORE); do \
	  ./build/fuzz/fuzz-$$t -runs=$(FUZZ_RUNS) build/fuzz/corpus-$$t \
	    tests/fuzz/corpus-$$t || exit 1; \
	done

# deps first: pkg-config flags are read when make starts, so the builds run
# in a sub-make once the packages exist.
test:
	./scripts/deps.sh
	$(MAKE) all build/rel/unit-tests build/asan/unit-tests build/asan/fuzz-replay \
	  build/asan/fuzz-dns-replay $(FUZZ_MORE:%=build/asan/fuzz-%-replay)
	./scripts/test.sh

# The control plane's cost per change, in memory (tests/bench): first.
build/rel/bench-control: tests/bench/bench_control.c build/rel/libshoal.a $(HDRS)
	$(CC) $(ALL_CFLAGS) tests/bench/bench_control.c build/rel/libshoal.a $(PKG_LIBS) -lm -o $@

bench: all build/rel/bench-control
	./build/rel/bench-control
	./scripts/bench.sh

format:
	clang-format -i $(LIB_SRC) $(HDRS) $(SHOALD_SRC) $(SHOAL_SRC) $(SIM_SRC) $(UNIT_SRC) $(BENCH_SRC)

format-check:
	clang-format --dry-run --Werror $(LIB_SRC) $(HDRS) $(SHOALD_SRC) $(SHOAL_SRC) $(SIM_SRC) $(UNIT_SRC) $(BENCH_SRC)

# make install [PREFIX=/usr/local] [DESTDIR=...]: the programs, their man
# pages, the systemd unit (its ExecStart pointing at $(BINDIR)) and an
# empty /etc/shoal/daemon.json, never overwriting one that is there.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
SYSTEMD_UNIT_DIR ?= $(PREFIX)/lib/systemd/system
install: bin/shoald bin/shoal
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8 \
	  $(DESTDIR)$(SYSTEMD_UNIT_DIR) $(DESTDIR)$(SYSCONFDIR)/shoal
	install -m 0755 bin/shoald bin/shoal $(DESTDIR)$(BINDIR)/
	install -m 0644 docs/man/shoal.1 $(DESTDIR)$(MANDIR)/man1/shoal.1
	install -m 0644 docs/man/shoald.8 $(DESTDIR)$(MANDIR)/man8/shoald.8
	sed 's|@BINDIR@|$(BINDIR)|g' packaging/shoald.service.in > $(DESTDIR)$(SYSTEMD_UNIT_DIR)/shoald.service
	chmod 0644 $(DESTDIR)$(SYSTEMD_UNIT_DIR)/shoald.service
	[ -e $(DESTDIR)$(SYSCONFDIR)/shoal/daemon.json ] || \
	  install -m 0644 packaging/daemon.json $(DESTDIR)$(SYSCONFDIR)/shoal/daemon.json

# make deb: build/deb/shoal_<version>_<arch>.deb from this tree with
# debhelper (debian/), then lintian on it.
deb:
	./scripts/deb.sh

clean:
	rm -rf build bin
