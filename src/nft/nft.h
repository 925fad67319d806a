/* nftables through libnftables: rules are text in nft's own language,
 * applied by the library as one atomic netlink batch (no `nft` process).
 * The node's NAT for docker_gwbridge and the routing mesh's published
 * ports (DNAT spread over a service's tasks with numgen, since this
 * kernel has no IPVS) are built on it.
 *
 * A struct nft works in one network namespace: the caller's, or the one
 * netns_fd names (entered for each call, then left). Blocking: use it
 * from work-queue threads. Errors: 500 with nft's own message. */
#ifndef SHOAL_NFT_NFT_H
#define SHOAL_NFT_NFT_H

struct sh_err;
struct nft;

int nft_open(int netns_fd, struct nft **out, struct sh_err *err);
void nft_close(struct nft *n);
/* Applies a ruleset (several commands, one transaction: all or none). */
int nft_apply(struct nft *n, const char *rules, struct sh_err *err);
/* The output of one command (e.g. "list table ip shoal"), malloc'd. */
int nft_query(struct nft *n, const char *cmd, char **out, struct sh_err *err);

#endif
