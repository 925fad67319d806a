/* lazy: libcurl.so.4's table (see lazy.h). */
#include "lazy/curl.h"

#include <dlfcn.h>

struct lazy_curl_fns lazy_curl_fns;

static const char *resolve(void *h) {
#define X(fn) LAZY_RESOLVE(h, lazy_curl_fns.fn, #fn)
  LAZY_CURL_FNS(X)
#undef X
  /* Under lazy.c's lock, so before any other curl call, once. */
  if (lazy_curl_fns.curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return "curl_global_init";
  return NULL;
}

/* Under lazy.c's lock, with no user left. */
static void unload(void) {
  lazy_curl_fns.curl_global_cleanup();
}

struct lazy_lib lazy_curl_lib = {
    .soname = "libcurl.so.4", .resolve = resolve, .unload = unload};
