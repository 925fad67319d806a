/* lazy: libarchive.so.13's table (see lazy.h). */
#include "lazy/archive.h"

#include <dlfcn.h>

struct lazy_archive_fns lazy_archive_fns;

static const char *resolve(void *h) {
#define X(fn) LAZY_RESOLVE(h, lazy_archive_fns.fn, #fn)
  LAZY_ARCHIVE_FNS(X)
#undef X
  return NULL;
}

static void unload(void) {} /* nothing global to end */

struct lazy_lib lazy_archive_lib = {
    .soname = "libarchive.so.13", .resolve = resolve, .unload = unload};
