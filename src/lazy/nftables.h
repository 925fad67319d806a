/* libnftables, loaded on first use (see lazy.h): include this instead of
 * <nftables/libnftables.h>. */
#ifndef SHOAL_LAZY_NFTABLES_H
#define SHOAL_LAZY_NFTABLES_H

#include <nftables/libnftables.h>

#include "lazy/lazy.h"

#define LAZY_NFTABLES_FNS(X)                                                   \
  X(nft_ctx_buffer_error)                                                      \
  X(nft_ctx_buffer_output)                                                     \
  X(nft_ctx_free)                                                              \
  X(nft_ctx_get_error_buffer)                                                  \
  X(nft_ctx_get_output_buffer)                                                 \
  X(nft_ctx_new)                                                               \
  X(nft_run_cmd_from_buffer)

struct lazy_nftables_fns {
  LAZY_NFTABLES_FNS(LAZY_SLOT)
};
extern struct lazy_nftables_fns lazy_nftables_fns;
extern struct lazy_lib lazy_nftables_lib;

static inline const struct lazy_nftables_fns *lazy_nftables(void) {
  if (!lazy_ready(&lazy_nftables_lib))
    lazy_missing(&lazy_nftables_lib);
  return &lazy_nftables_fns;
}

/* Constructors: NULL when libnftables.so.1 cannot be loaded. */
#define nft_ctx_new(flags)                                                     \
  (lazy_ready(&lazy_nftables_lib) ? lazy_nftables_fns.nft_ctx_new(flags) : NULL)

#define nft_ctx_buffer_error(...)                                              \
  (lazy_nftables()->nft_ctx_buffer_error(__VA_ARGS__))
#define nft_ctx_buffer_output(...)                                             \
  (lazy_nftables()->nft_ctx_buffer_output(__VA_ARGS__))
#define nft_ctx_free(...) (lazy_nftables()->nft_ctx_free(__VA_ARGS__))
#define nft_ctx_get_error_buffer(...)                                          \
  (lazy_nftables()->nft_ctx_get_error_buffer(__VA_ARGS__))
#define nft_ctx_get_output_buffer(...)                                         \
  (lazy_nftables()->nft_ctx_get_output_buffer(__VA_ARGS__))
#define nft_run_cmd_from_buffer(...)                                           \
  (lazy_nftables()->nft_run_cmd_from_buffer(__VA_ARGS__))

#endif
