/* libFuzzer target over layer extraction (image/layer.c layer_unpack_here):
 * the bytes are a layer blob (tar, or tar compressed any way libarchive
 * reads) unpacked into an empty directory, as a pull or load does.
 *
 * Whatever the archive holds, nothing may land outside the layer
 * directory: next to it sits a sentinel directory ("../outside", with one
 * file) that relative paths, symlinks and hardlinks in a hostile layer
 * would aim at; after each run it must be exactly as it was, and the
 * scratch directory must hold nothing else. Inside the layer, whiteouts
 * must have become overlayfs ones (no ".wh." file left; the only device
 * node allowed is the 0:0 character device of a whiteout). */
#include "core/err.h"
#include "core/util.h"
#include "image/internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SENTINEL "do not touch\n"

static char scratch[64]; /* <tmp>/x: holds layer/ and outside/ only */

static char root[] = "/tmp/shoal-fuzz-layer-XXXXXX";

static void cleanup(void) {
  rm_rf(root);
}

static void setup(void) {
  if (!mkdtemp(root))
    abort();
  atexit(cleanup);
  snprintf(scratch, sizeof scratch, "%s/x", root);
}

static void prepare(void) {
  rm_rf(scratch);
  sh_err err = {0};
  cleanup_free char *layer = xasprintf("%s/layer", scratch);
  cleanup_free char *outside = xasprintf("%s/outside", scratch);
  cleanup_free char *f = xasprintf("%s/outside/f", scratch);
  if (mkdir_p(layer, 0755, &err) < 0 || mkdir(outside, 0755) < 0 ||
      write_file_replace(f, SENTINEL, strlen(SENTINEL), 0644, &err) < 0)
    abort();
}

static void check_outside(void) {
  /* The scratch directory: layer and outside, nothing else. */
  DIR *d = opendir(scratch);
  if (!d)
    abort();
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
        !strcmp(e->d_name, "layer") || !strcmp(e->d_name, "outside"))
      continue;
    fprintf(stderr, "escaped: %s/%s\n", scratch, e->d_name);
    abort();
  }
  closedir(d);
  cleanup_free char *outside = xasprintf("%s/outside", scratch);
  d = opendir(outside);
  if (!d)
    abort();
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
        !strcmp(e->d_name, "f"))
      continue;
    fprintf(stderr, "escaped: %s/%s\n", outside, e->d_name);
    abort();
  }
  closedir(d);
  cleanup_free char *f = xasprintf("%s/outside/f", scratch);
  struct stat st;
  if (lstat(f, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
      (st.st_mode & 07777) != 0644 || st.st_uid != getuid()) {
    fprintf(stderr, "escaped: %s changed (mode/links/owner)\n", f);
    abort();
  }
  cleanup_free char *got = NULL;
  size_t len = 0;
  if (read_file(f, &got, &len, NULL) < 0 || len != strlen(SENTINEL) ||
      memcmp(got, SENTINEL, len) != 0) {
    fprintf(stderr, "escaped: %s was written\n", f);
    abort();
  }
  if (lstat(outside, &st) < 0 || !S_ISDIR(st.st_mode) ||
      (st.st_mode & 07777) != 0755) {
    fprintf(stderr, "escaped: %s changed\n", outside);
    abort();
  }
}

static int check_entry(const char *path, const struct stat *st, int flag,
                       struct FTW *ftw) {
  const char *base = path + ftw->base;
  if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)) {
    if (!S_ISCHR(st->st_mode) || st->st_rdev != makedev(0, 0)) {
      fprintf(stderr, "device node left in the layer: %s\n", path);
      abort();
    }
  } else if (S_ISSOCK(st->st_mode)) {
    fprintf(stderr, "socket left in the layer: %s\n", path);
    abort();
  } else if (!S_ISDIR(st->st_mode) && str_has_prefix(base, ".wh.")) {
    fprintf(stderr, "whiteout left as a file: %s\n", path);
    abort();
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!scratch[0])
    setup();
  prepare();
  int fd = memfd_create("layer", MFD_CLOEXEC);
  if (fd < 0)
    abort();
  size_t off = 0;
  while (off < size) {
    ssize_t n = write(fd, data + off, size - off);
    if (n <= 0)
      abort();
    off += (size_t)n;
  }
  lseek(fd, 0, SEEK_SET);
  cleanup_free char *layer = xasprintf("%s/layer", scratch);
  char diffid[DIGEST_LEN + 1];
  int64_t bytes = 0;
  sh_err err = {0};
  int r = layer_unpack_here(fd, layer, NULL, diffid, &bytes, NULL, NULL, &err);
  close(fd);
  if (r < 0 && (!err.status || !err.msg[0]))
    abort(); /* a failure says why */
  if (getenv("FUZZ_VERBOSE"))
    fprintf(stderr, "layer: %s\n", r < 0 ? err.msg : diffid);
  if (r == 0 && (!digest_valid(diffid) || bytes < 0))
    abort();
  check_outside();
  nftw(layer, check_entry, 16, FTW_PHYS);
  return 0;
}
