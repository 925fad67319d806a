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

LAZY_DECLARE(nftables, LAZY_NFTABLES_FNS)

/* Constructors: NULL when libnftables.so.1 cannot be loaded. */
#define nft_ctx_new(flags) LAZY_NEW(nftables, nft_ctx_new, flags)

#define nft_ctx_buffer_error(...)                                              \
  LAZY_CALL(nftables, nft_ctx_buffer_error, __VA_ARGS__)
#define nft_ctx_buffer_output(...)                                             \
  LAZY_CALL(nftables, nft_ctx_buffer_output, __VA_ARGS__)
#define nft_ctx_free(...) LAZY_CALL(nftables, nft_ctx_free, __VA_ARGS__)
#define nft_ctx_get_error_buffer(...)                                          \
  LAZY_CALL(nftables, nft_ctx_get_error_buffer, __VA_ARGS__)
#define nft_ctx_get_output_buffer(...)                                         \
  LAZY_CALL(nftables, nft_ctx_get_output_buffer, __VA_ARGS__)
#define nft_run_cmd_from_buffer(...)                                           \
  LAZY_CALL(nftables, nft_run_cmd_from_buffer, __VA_ARGS__)

#endif
