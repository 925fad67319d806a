/* lazy: libnftables.so.1's table (see lazy.h). */
#include "lazy/nftables.h"

#include <dlfcn.h>

struct lazy_nftables_fns lazy_nftables_fns;

static const char *resolve(void *h) {
#define X(fn) LAZY_RESOLVE(h, lazy_nftables_fns.fn, #fn)
  LAZY_NFTABLES_FNS(X)
#undef X
  return NULL;
}

/* Nothing of libnftables outlives a command (nft.c makes a context per
 * command), so it can be closed when idle: with libgmp, libnftnl and
 * libxtables it is ~1.5 MB of an idle daemon's RSS. */
static void unload(void) {}

struct lazy_lib lazy_nftables_lib = {
    .soname = "libnftables.so.1", .resolve = resolve, .unload = unload};
