/* lazy: libnftables.so.1's table (see lazy.h). */
#include "lazy/nftables.h"

#include <dlfcn.h>

struct lazy_nftables_fns lazy_nftables_fns;

static const char *resolve(void *h) {
#define X(fn)                                                                  \
  if (!(lazy_nftables_fns.fn =                                                 \
            (__typeof__(lazy_nftables_fns.fn))dlsym(h, #fn)))                  \
    return #fn;
  LAZY_NFTABLES_FNS(X)
#undef X
  return NULL;
}

struct lazy_lib lazy_nftables_lib = {.soname = "libnftables.so.1",
                                     .resolve = resolve};
