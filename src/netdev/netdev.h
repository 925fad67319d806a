/* The node's links, addresses, routes, neighbours and VXLAN forwarding
 * entries, through rtnetlink (libnl-route-3): what the overlay driver
 * builds for each network (a namespace holding a bridge and a VXLAN
 * device, a veth into each task) and docker_gwbridge. No `ip` command is
 * run.
 *
 * A struct netdev is a netlink socket bound to one network namespace: the
 * one current when netdev_open ran, or the one netns_fd names (the socket
 * is created inside it, then the thread returns to its namespace).
 * Blocking calls: use them from work-queue threads, never the loop.
 * Errors: 404 when a link is missing, 409 when it exists, 500 otherwise,
 * with the kernel's reason ("netlink: add link br0: File exists"). */
#ifndef SHOAL_NETDEV_NETDEV_H
#define SHOAL_NETDEV_NETDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sh_err;
struct netdev;

/* netns_fd: an open /proc/.../ns/net or bind-mounted file; -1 for the
 * caller's namespace. */
int netdev_open(int netns_fd, struct netdev **out, struct sh_err *err);
void netdev_close(struct netdev *nd);

/* ---- links ---- */
bool netdev_exists(struct netdev *nd, const char *name);
int netdev_ifindex(struct netdev *nd, const char *name, struct sh_err *err);
int netdev_bridge_add(struct netdev *nd, const char *name, unsigned mtu,
                      struct sh_err *err);
/* A VXLAN device without learning (peers come as static FDB entries),
 * UDP port dstport; it keeps its socket in the namespace it is made in,
 * so make it in the host's and move it (netdev_move). proxy: the device
 * answers ARP requests itself from its neighbour table (no ARP crosses
 * the underlay). */
int netdev_vxlan_add(struct netdev *nd, const char *name, uint32_t vni,
                     uint16_t dstport, unsigned mtu, bool proxy,
                     struct sh_err *err);
/* The link's kind as `ip -d link` shows it ("veth", "bridge", ...); "" for
 * a device without one: a physical NIC (netlink's "device"). */
int netdev_kind(struct netdev *nd, const char *name, char *out, size_t n,
                struct sh_err *err);
/* The names of every link in the namespace (malloc'd array of malloc'd
 * strings; free with netdev_names_free). */
int netdev_links(struct netdev *nd, char ***names, size_t *n,
                 struct sh_err *err);
void netdev_names_free(char **names, size_t n);
/* A veth pair; both ends stay here (move one with netdev_move). */
int netdev_veth_add(struct netdev *nd, const char *name, const char *peer,
                    unsigned mtu, struct sh_err *err);
/* A veth pair whose peer is made directly in the namespace
 * peer_netns_fd (-1: here) with MAC peer_mac (NULL: random): moving a
 * link costs the kernel several times its creation. */
int netdev_veth_add_in(struct netdev *nd, const char *name, const char *peer,
                       int peer_netns_fd, const char *peer_mac, unsigned mtu,
                       struct sh_err *err);
/* Moves a link into another namespace, renaming it (new_name may be NULL
 * to keep the name). */
int netdev_move(struct netdev *nd, const char *name, int netns_fd,
                const char *new_name, struct sh_err *err);
int netdev_set_master(struct netdev *nd, const char *name, const char *master,
                      struct sh_err *err);
int netdev_set_up(struct netdev *nd, const char *name, struct sh_err *err);
/* "02:42:0a:00:00:02" */
int netdev_set_mac(struct netdev *nd, const char *name, const char *mac,
                   struct sh_err *err);
int netdev_del(struct netdev *nd, const char *name, struct sh_err *err);

/* ---- addresses and routes ---- */
/* cidr: "10.0.0.2/24" */
int netdev_addr_add(struct netdev *nd, const char *name, const char *cidr,
                    struct sh_err *err);
/* A default route via gateway (through whichever link reaches it). */
int netdev_route_default(struct netdev *nd, const char *gateway,
                         struct sh_err *err);
/* The same in routing table `table`; add false deletes it (0 if absent). */
int netdev_route_default_in(struct netdev *nd, const char *gateway,
                            uint32_t table, bool add, struct sh_err *err);
/* Policy rule "fwmark mark lookup table" at priority prio (add false
 * deletes it; adding one present or deleting one absent is 0). */
int netdev_rule_fwmark(struct netdev *nd, uint32_t mark, uint32_t table,
                       uint32_t prio, bool add, struct sh_err *err);
/* Every IPv4 prefix the namespace already uses: the subnets of its
 * addresses and the destinations of its main-table routes (not the
 * default route), as "10.0.0.0/24" (free with netdev_names_free). */
int netdev_ipv4_nets(struct netdev *nd, char ***nets, size_t *n,
                     struct sh_err *err);

/* ---- forwarding entries for a peer's task ---- */
/* On a VXLAN device: frames for mac go to the node at dst (static). */
int netdev_fdb_add(struct netdev *nd, const char *vxlan, const char *mac,
                   const char *dst, struct sh_err *err);
int netdev_fdb_del(struct netdev *nd, const char *vxlan, const char *mac,
                   const char *dst, struct sh_err *err);
/* A permanent ARP entry on a link: ip is at mac. */
int netdev_neigh_add(struct netdev *nd, const char *link, const char *ip,
                     const char *mac, struct sh_err *err);
int netdev_neigh_del(struct netdev *nd, const char *link, const char *ip,
                     struct sh_err *err);
/* The static entries on a link: with fdb, its own forwarding entries
 * (ip: the remote node, as on a VXLAN device); else its permanent ARP
 * entries (ip: the neighbour). Free with free(). */
struct netdev_neigh {
  char ip[16];  /* "10.0.1.5" */
  char mac[18]; /* "02:42:0a:00:01:05" */
};
int netdev_neigh_list(struct netdev *nd, const char *link, bool fdb,
                      struct netdev_neigh **out, size_t *n, struct sh_err *err);

/* ---- sysctls ---- */
/* Writes /proc/sys/<key> (key "net/ipv4/ip_forward") as seen from the
 * namespace netns_fd (-1: the caller's); net.* keys are per namespace. */
int netdev_sysctl_set(int netns_fd, const char *key, const char *value,
                      struct sh_err *err);

/* ---- namespaces ---- */
/* Makes a new network namespace kept alive by a bind mount at path (as
 * `ip netns add` does, without running it); returns an fd to it. */
int netns_create(const char *path, int *fd_out, struct sh_err *err);
/* Unmounts and removes it (the namespace goes with its last user). */
int netns_remove(const char *path, struct sh_err *err);
/* A non-blocking UDP socket bound to ip:port inside the namespace
 * netns_fd (the embedded DNS's 127.0.0.11:53 in a task): *fd_out, for
 * the caller's event loop. */
int netns_udp_bind(int netns_fd, const char *ip, uint16_t port, int *fd_out,
                   struct sh_err *err);

#endif
