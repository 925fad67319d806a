/* Libraries loaded on first use: shoald maps only what an idle daemon
 * needs (issue 13). libarchive (cp, image load/save, layers) and
 * libnftables (routing mesh, gateway NAT) pull in big dependency trees
 * (libxml2, ICU, libstdc++; libgmp, libxtables) that every request never
 * touches; they are opened by SONAME with dlopen the first time a request
 * needs them. The Debian package's Depends keep them installed.
 *
 * One header per library (lazy/archive.h, lazy/nftables.h) includes the
 * library's own header and redirects each function shoal calls through a
 * table resolved at load. Functions that make a library object (the
 * constructors) answer NULL when the library cannot be loaded, so callers'
 * existing NULL checks report the failure; the reason goes to stderr once.
 * Any other function is only reachable with such an object, so the library
 * is loaded by then; reaching one without it aborts with the reason.
 *
 * A library with an unload hook (libcurl, libarchive, libnftables) is
 * closed again when nothing has held it for a while: a pull maps ~150
 * libraries (6 MB of an idle daemon's RSS) that the next hours may never
 * need. Some stay mapped all the same: libp11-kit is NODELETE and
 * libstdc++ (under ICU, under libxml2) has unique symbols. Every path
 * that calls into such a library holds it throughout (lazy_hold, released
 * by cleanup_lazy), and a forked child that calls it is forked while the
 * parent holds it. */
#ifndef SHOAL_LAZY_LAZY_H
#define SHOAL_LAZY_LAZY_H

#include <stdbool.h>
#include <stdint.h>

struct lazy_lib {
  const char *soname; /* e.g. "libarchive.so.13": the runtime package's */
  /* Fills the table from the handle; returns the first symbol missing. */
  const char *(*resolve)(void *handle);
  /* Before dlclose (curl_global_cleanup); NULL: the library stays. */
  void (*unload)(void);
  bool ok;    /* set (release) once the table is filled */
  bool tried; /* under lazy.c's lock, as the rest */
  void *handle;
  unsigned users;
  uint64_t released_ns; /* CLOCK_MONOTONIC of the last release */
};

struct sh_err;

/* Loads lib once (thread-safe); false when it cannot be. */
bool lazy_load(struct lazy_lib *lib);
/* For a request's entry point: loads lib and counts a user until
 * lazy_release. lib, or NULL with 500 "cannot load <soname>". */
struct lazy_lib *lazy_hold(struct lazy_lib *lib, struct sh_err *err);
void lazy_release(struct lazy_lib *lib);
static inline void lazy_releasep(struct lazy_lib **p) {
  if (*p)
    lazy_release(*p);
}
#define cleanup_lazy __attribute__((cleanup(lazy_releasep)))
/* Closes each loaded library that has an unload hook and no user for
 * idle_ms; it is loaded again on its next use. How many it closed. */
int lazy_unload_idle(uint64_t idle_ms);
_Noreturn void lazy_missing(const struct lazy_lib *lib);

static inline bool lazy_ready(struct lazy_lib *lib) {
  return __atomic_load_n(&lib->ok, __ATOMIC_ACQUIRE) || lazy_load(lib);
}

#define LAZY_SLOT(fn) __typeof__(fn) *fn;

/* Declares the table of FNS (an X-macro list of names), its lazy_lib
 * lazy_NAME_lib and lazy_NAME(): the loaded table, or abort. */
#define LAZY_DECLARE(name, FNS)                                                \
  struct lazy_##name##_fns {                                                   \
    FNS(LAZY_SLOT)                                                             \
  };                                                                           \
  extern struct lazy_##name##_fns lazy_##name##_fns;                           \
  extern struct lazy_lib lazy_##name##_lib;                                    \
  static inline const struct lazy_##name##_fns *lazy_##name(void) {            \
    if (!lazy_ready(&lazy_##name##_lib))                                       \
      lazy_missing(&lazy_##name##_lib);                                        \
    return &lazy_##name##_fns;                                                 \
  }

/* A constructor's call: NULL when the library cannot be loaded. */
#define LAZY_NEW(name, fn, ...)                                                \
  (lazy_ready(&lazy_##name##_lib) ? lazy_##name##_fns.fn(__VA_ARGS__) : NULL)
/* Any other call. */
#define LAZY_CALL(name, fn, ...) (lazy_##name()->fn(__VA_ARGS__))
/* In a resolve function: fills slot from handle h, or returns the name. */
#define LAZY_RESOLVE(h, slot, sym)                                             \
  if (!((slot) = (__typeof__(slot))dlsym(h, sym)))                             \
    return sym;

#endif
