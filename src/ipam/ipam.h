/* IPv4 address management for swarm networks: CIDR parsing as Go's net
 * package does it, subnets carved from the cluster's default address
 * pools, and address sets inside one subnet. Pure arithmetic: the leader's
 * allocator rebuilds its sets from the store, so nothing here is
 * persisted. Addresses are host-order uint32. */
#ifndef SHOAL_IPAM_IPAM_H
#define SHOAL_IPAM_IPAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sh_err;

struct ipam_prefix {
  uint32_t addr; /* the network address (host bits zero) */
  unsigned len;  /* 0..32 */
};

/* "a.b.c.d" (no leading zeros, as Go's ParseIP). 400 "invalid IP address:
 * X" otherwise. */
int ipam_parse_ip(const char *s, uint32_t *out, struct sh_err *err);
/* "a.b.c.d/n". 400 "invalid CIDR address: X" otherwise. The address is
 * masked to its network; *host gets the address as written (may be NULL). */
int ipam_parse_cidr(const char *s, struct ipam_prefix *out, uint32_t *host,
                    struct sh_err *err);
/* "a.b.c.d" / "a.b.c.d/n" into buf (at least 19 bytes). */
char *ipam_ip_str(uint32_t ip, char *buf);
/* The address of "10.0.1.3/24" (or of a bare "10.0.1.3") as text, into
 * buf (20 bytes); "" when it is neither. Returns buf. */
char *ipam_cidr_addr(const char *cidr, char *buf);
char *ipam_prefix_str(struct ipam_prefix p, char *buf);

uint32_t ipam_mask(unsigned len);
bool ipam_contains(struct ipam_prefix p, uint32_t ip);
bool ipam_overlaps(struct ipam_prefix a, struct ipam_prefix b);
/* Number of addresses in p (2^(32-len)); 2^32 for /0. */
uint64_t ipam_size(struct ipam_prefix p);

/* The first subnet of prefix length `len` inside one of pools (in order;
 * pools shorter than len are skipped) that overlaps none of used. 400
 * "could not find an available, non-overlapping IPv4 address pool among
 * the defaults to assign to the network" (Docker's words) when none is
 * left. */
int ipam_carve(const struct ipam_prefix *pools, size_t npools, unsigned len,
               const struct ipam_prefix *used, size_t nused,
               struct ipam_prefix *out, struct sh_err *err);

/* The addresses of one subnet that tasks and VIPs may get: inside range
 * (the subnet itself unless --ip-range narrows it), never the network
 * address, the broadcast address or the gateway. */
struct ipam_set;
/* range: NULL for the whole subnet. 400 when range is not inside subnet or
 * the subnet is larger than /8 (a bitmap of 2 MiB at most). */
int ipam_set_new(struct ipam_prefix subnet, const struct ipam_prefix *range,
                 uint32_t gateway, struct ipam_set **out, struct sh_err *err);
void ipam_set_free(struct ipam_set *s);
/* Marks ip as taken (an address the store already holds). 409 when taken
 * already, 400 when outside the set's range. */
int ipam_set_reserve(struct ipam_set *s, uint32_t ip, struct sh_err *err);
/* The lowest free address after the last one handed out (wrapping), as
 * libnetwork's allocator does, so that a released address is not reused
 * at once. 400 "no available IPv4 addresses" when the set is full (the
 * caller names the network). */
int ipam_set_alloc(struct ipam_set *s, uint32_t *ip, struct sh_err *err);
void ipam_set_release(struct ipam_set *s, uint32_t ip);
size_t ipam_set_free_count(const struct ipam_set *s);

#endif
