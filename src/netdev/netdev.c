/* rtnetlink through libnl-route-3. */
#include "netdev/netdev.h"

#include "core/err.h"
#include "core/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fib_rules.h>
#include <linux/if_bridge.h>
#include <linux/neighbour.h>
#include <net/if.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/link/vxlan.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/route.h>
#include <netlink/route/rule.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

struct netdev {
  struct nl_sock *sk;
};

static int nl_fail(sh_err *err, int nlerr, const char *what, const char *name) {
  int e = nlerr < 0 ? -nlerr : nlerr;
  int status = e == NLE_EXIST                            ? 409
               : e == NLE_OBJ_NOTFOUND || e == NLE_NODEV ? 404
                                                         : 500;
  return sh_error(err, status, "netlink: %s %s: %s", what, name ? name : "",
                  nl_geterror(e));
}

/* This thread enters netns_fd (-1: stays); *self is where to come back
 * (-1 when it stayed). */
static int enter_netns(int netns_fd, int *self, sh_err *err) {
  *self = -1;
  if (netns_fd < 0)
    return 0;
  *self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (*self < 0)
    return sh_errno(err, errno, "open this thread's network namespace");
  if (setns(netns_fd, CLONE_NEWNET) < 0) {
    int e = errno;
    close(*self);
    *self = -1;
    return sh_errno(err, e, "enter network namespace");
  }
  return 0;
}

static void leave_netns(int self) {
  if (self < 0)
    return;
  if (setns(self, CLONE_NEWNET) < 0)
    abort(); /* a thread stranded in another namespace is worse */
  close(self);
}

/* Runs in the namespace of netns_fd for the length of one call: the
 * socket belongs to the namespace it was made in. */
int netdev_open(int netns_fd, struct netdev **out, sh_err *err) {
  int self = -1;
  if (enter_netns(netns_fd, &self, err) < 0)
    return -1;
  struct nl_sock *sk = nl_socket_alloc();
  int rc = sk ? nl_connect(sk, NETLINK_ROUTE) : -NLE_NOMEM;
  leave_netns(self);
  if (rc < 0) {
    nl_socket_free(sk);
    return nl_fail(err, rc, "connect", "rtnetlink");
  }
  *out = xcalloc(1, sizeof **out);
  (*out)->sk = sk;
  return 0;
}

void netdev_close(struct netdev *nd) {
  if (!nd)
    return;
  nl_socket_free(nd->sk);
  free(nd);
}

static void link_putp(struct rtnl_link **l) {
  if (*l)
    rtnl_link_put(*l);
}
#define cleanup_link __attribute__((cleanup(link_putp)))

static int get_link(struct netdev *nd, const char *name, struct rtnl_link **l,
                    sh_err *err) {
  int rc = rtnl_link_get_kernel(nd->sk, 0, name, l);
  if (rc < 0)
    return nl_fail(err, rc == -NLE_OBJ_NOTFOUND ? NLE_NODEV : rc, "find link",
                   name);
  return 0;
}

bool netdev_exists(struct netdev *nd, const char *name) {
  cleanup_link struct rtnl_link *l = NULL;
  return rtnl_link_get_kernel(nd->sk, 0, name, &l) == 0;
}

int netdev_ifindex(struct netdev *nd, const char *name, sh_err *err) {
  cleanup_link struct rtnl_link *l = NULL;
  if (get_link(nd, name, &l, err) < 0)
    return -1;
  return rtnl_link_get_ifindex(l);
}

int netdev_kind(struct netdev *nd, const char *name, char *out, size_t n,
                sh_err *err) {
  cleanup_link struct rtnl_link *l = NULL;
  if (get_link(nd, name, &l, err) < 0)
    return -1;
  const char *k = rtnl_link_get_type(l);
  snprintf(out, n, "%s", k ? k : "");
  return 0;
}

static int parse_addr(const char *s, int family, struct nl_addr **out,
                      sh_err *err) {
  int rc = nl_addr_parse(s, family, out);
  if (rc < 0)
    return sh_error(err, 400, "invalid address %s: %s", s, nl_geterror(rc));
  return 0;
}

static int add_link(struct netdev *nd, struct rtnl_link *l, const char *name,
                    unsigned mtu, sh_err *err) {
  rtnl_link_set_name(l, name);
  if (mtu)
    rtnl_link_set_mtu(l, mtu);
  int rc = rtnl_link_add(nd->sk, l, NLM_F_CREATE | NLM_F_EXCL);
  rtnl_link_put(l);
  return rc < 0 ? nl_fail(err, rc, "add link", name) : 0;
}

int netdev_bridge_add(struct netdev *nd, const char *name, unsigned mtu,
                      sh_err *err) {
  return add_link(nd, rtnl_link_bridge_alloc(), name, mtu, err);
}

int netdev_vxlan_add(struct netdev *nd, const char *name, uint32_t vni,
                     uint16_t dstport, unsigned mtu, bool proxy, sh_err *err) {
  struct rtnl_link *l = rtnl_link_vxlan_alloc();
  if (!l)
    return sh_error(err, 500, "netlink: out of memory");
  rtnl_link_vxlan_set_id(l, vni);
  rtnl_link_vxlan_set_port(l, dstport);
  rtnl_link_vxlan_set_learning(l, 0);
  if (proxy)
    rtnl_link_vxlan_set_proxy(l, 1);
  return add_link(nd, l, name, mtu, err);
}

static void cache_freep(struct nl_cache **c) {
  if (*c)
    nl_cache_free(*c);
}
#define cleanup_cache __attribute__((cleanup(cache_freep)))

static void names_push(char ***v, size_t *n, const char *s) {
  *v = xrealloc(*v, (*n + 1) * sizeof **v);
  (*v)[(*n)++] = xstrdup(s);
}

void netdev_names_free(char **names, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
}

int netdev_links(struct netdev *nd, char ***names, size_t *n, sh_err *err) {
  cleanup_cache struct nl_cache *c = NULL;
  int rc = rtnl_link_alloc_cache(nd->sk, AF_UNSPEC, &c);
  if (rc < 0)
    return nl_fail(err, rc, "list", "links");
  *names = NULL;
  *n = 0;
  for (struct nl_object *o = nl_cache_get_first(c); o; o = nl_cache_get_next(o))
    names_push(names, n, rtnl_link_get_name((struct rtnl_link *)o));
  return 0;
}

int netdev_veth_add(struct netdev *nd, const char *name, const char *peer,
                    unsigned mtu, sh_err *err) {
  return netdev_veth_add_in(nd, name, peer, -1, NULL, mtu, err);
}

int netdev_veth_add_in(struct netdev *nd, const char *name, const char *peer,
                       int peer_netns_fd, const char *peer_mac, unsigned mtu,
                       sh_err *err) {
  struct nl_addr *a = NULL;
  if (peer_mac && parse_addr(peer_mac, AF_LLC, &a, err) < 0)
    return -1;
  struct rtnl_link *l = rtnl_link_veth_alloc();
  if (!l) {
    nl_addr_put(a);
    return sh_error(err, 500, "netlink: out of memory");
  }
  struct rtnl_link *p = rtnl_link_veth_get_peer(l);
  rtnl_link_set_name(p, peer);
  if (mtu)
    rtnl_link_set_mtu(p, mtu);
  if (peer_netns_fd >= 0)
    rtnl_link_set_ns_fd(p, peer_netns_fd);
  if (a) {
    rtnl_link_set_addr(p, a);
    nl_addr_put(a);
  }
  rtnl_link_put(p);
  return add_link(nd, l, name, mtu, err);
}

/* Applies the changes in c to the link called name. */
static int change_link(struct netdev *nd, const char *name, struct rtnl_link *c,
                       const char *what, sh_err *err) {
  cleanup_link struct rtnl_link *l = NULL;
  if (get_link(nd, name, &l, err) < 0) {
    rtnl_link_put(c);
    return -1;
  }
  int rc = rtnl_link_change(nd->sk, l, c, 0);
  rtnl_link_put(c);
  return rc < 0 ? nl_fail(err, rc, what, name) : 0;
}

int netdev_move(struct netdev *nd, const char *name, int netns_fd,
                const char *new_name, sh_err *err) {
  struct rtnl_link *c = rtnl_link_alloc();
  rtnl_link_set_ns_fd(c, netns_fd);
  if (new_name)
    rtnl_link_set_name(c, new_name);
  return change_link(nd, name, c, "move link", err);
}

int netdev_set_master(struct netdev *nd, const char *name, const char *master,
                      sh_err *err) {
  int m = netdev_ifindex(nd, master, err);
  if (m < 0)
    return -1;
  struct rtnl_link *c = rtnl_link_alloc();
  rtnl_link_set_master(c, m);
  return change_link(nd, name, c, "set master of", err);
}

int netdev_set_up(struct netdev *nd, const char *name, sh_err *err) {
  struct rtnl_link *c = rtnl_link_alloc();
  rtnl_link_set_flags(c, IFF_UP);
  return change_link(nd, name, c, "set up", err);
}

int netdev_set_mac(struct netdev *nd, const char *name, const char *mac,
                   sh_err *err) {
  struct nl_addr *a = NULL;
  if (parse_addr(mac, AF_LLC, &a, err) < 0)
    return -1;
  struct rtnl_link *c = rtnl_link_alloc();
  rtnl_link_set_addr(c, a);
  nl_addr_put(a);
  return change_link(nd, name, c, "set address of", err);
}

int netdev_del(struct netdev *nd, const char *name, sh_err *err) {
  cleanup_link struct rtnl_link *l = NULL;
  if (get_link(nd, name, &l, err) < 0)
    return -1;
  int rc = rtnl_link_delete(nd->sk, l);
  return rc < 0 ? nl_fail(err, rc, "delete link", name) : 0;
}

int netdev_addr_add(struct netdev *nd, const char *name, const char *cidr,
                    sh_err *err) {
  int idx = netdev_ifindex(nd, name, err);
  if (idx < 0)
    return -1;
  struct nl_addr *local = NULL;
  if (parse_addr(cidr, AF_INET, &local, err) < 0)
    return -1;
  struct rtnl_addr *a = rtnl_addr_alloc();
  rtnl_addr_set_ifindex(a, idx);
  rtnl_addr_set_local(a, local);
  nl_addr_put(local);
  int rc = rtnl_addr_add(nd->sk, a, 0);
  rtnl_addr_put(a);
  return rc < 0 ? nl_fail(err, rc, "add address to", name) : 0;
}

int netdev_route_default(struct netdev *nd, const char *gateway, sh_err *err) {
  return netdev_route_default_in(nd, gateway, RT_TABLE_MAIN, true, err);
}

int netdev_route_default_in(struct netdev *nd, const char *gateway,
                            uint32_t table, bool add, sh_err *err) {
  struct nl_addr *gw = NULL, *dst = NULL;
  if (parse_addr(gateway, AF_INET, &gw, err) < 0)
    return -1;
  if (parse_addr("default", AF_INET, &dst, err) < 0) {
    nl_addr_put(gw);
    return -1;
  }
  struct rtnl_route *r = rtnl_route_alloc();
  rtnl_route_set_family(r, AF_INET);
  rtnl_route_set_table(r, table);
  rtnl_route_set_dst(r, dst);
  struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
  rtnl_route_nh_set_gateway(nh, gw);
  rtnl_route_add_nexthop(r, nh);
  nl_addr_put(gw);
  nl_addr_put(dst);
  int rc = add ? rtnl_route_add(nd->sk, r, NLM_F_CREATE | NLM_F_REPLACE)
               : rtnl_route_delete(nd->sk, r, 0);
  rtnl_route_put(r);
  if (!add && rc == -NLE_OBJ_NOTFOUND)
    rc = 0; /* already gone */
  return rc < 0 ? nl_fail(err, rc,
                          add ? "add default route via"
                              : "delete default route via",
                          gateway)
                : 0;
}

int netdev_rule_fwmark(struct netdev *nd, uint32_t mark, uint32_t table,
                       uint32_t prio, bool add, sh_err *err) {
  struct rtnl_rule *r = rtnl_rule_alloc();
  rtnl_rule_set_family(r, AF_INET);
  rtnl_rule_set_mark(r, mark);
  rtnl_rule_set_mask(r, 0xffffffff);
  rtnl_rule_set_table(r, table);
  rtnl_rule_set_prio(r, prio);
  rtnl_rule_set_action(r, FR_ACT_TO_TBL);
  int rc = add ? rtnl_rule_add(nd->sk, r, NLM_F_CREATE | NLM_F_EXCL)
               : rtnl_rule_delete(nd->sk, r, 0);
  rtnl_rule_put(r);
  if ((add && rc == -NLE_EXIST) || (!add && rc == -NLE_OBJ_NOTFOUND))
    rc = 0; /* already as asked */
  char what[32];
  snprintf(what, sizeof what, "0x%x", mark);
  return rc < 0 ? nl_fail(err, rc,
                          add ? "add rule fwmark" : "delete rule fwmark", what)
                : 0;
}

int netdev_ipv4_nets(struct netdev *nd, char ***nets, size_t *n, sh_err *err) {
  cleanup_cache struct nl_cache *ac = NULL;
  cleanup_cache struct nl_cache *rc_ = NULL;
  int rc = rtnl_addr_alloc_cache(nd->sk, &ac);
  if (rc < 0)
    return nl_fail(err, rc, "list", "addresses");
  rc = rtnl_route_alloc_cache(nd->sk, AF_INET, 0, &rc_);
  if (rc < 0)
    return nl_fail(err, rc, "list", "routes");
  *nets = NULL;
  *n = 0;
  char buf[64];
  for (struct nl_object *o = nl_cache_get_first(ac); o;
       o = nl_cache_get_next(o)) {
    struct rtnl_addr *a = (struct rtnl_addr *)o;
    struct nl_addr *l = rtnl_addr_get_local(a);
    if (rtnl_addr_get_family(a) != AF_INET || !l)
      continue;
    /* The subnet, not the host: mask the local address to its prefix. */
    struct nl_addr *p = nl_addr_clone(l);
    nl_addr_set_prefixlen(p, rtnl_addr_get_prefixlen(a));
    uint8_t *b = nl_addr_get_binary_addr(p);
    unsigned len = nl_addr_get_prefixlen(p);
    for (unsigned i = 0; i < 4; i++) {
      unsigned keep = len >= 8 * (i + 1) ? 8 : len > 8 * i ? len - 8 * i : 0;
      b[i] &= (uint8_t)(0xff00 >> keep);
    }
    snprintf(buf, sizeof buf, "%u.%u.%u.%u/%u", b[0], b[1], b[2], b[3], len);
    nl_addr_put(p);
    names_push(nets, n, buf);
  }
  for (struct nl_object *o = nl_cache_get_first(rc_); o;
       o = nl_cache_get_next(o)) {
    struct rtnl_route *r = (struct rtnl_route *)o;
    struct nl_addr *d = rtnl_route_get_dst(r);
    if (rtnl_route_get_table(r) != RT_TABLE_MAIN || !d ||
        nl_addr_get_prefixlen(d) == 0 || nl_addr_get_len(d) != 4)
      continue;
    uint8_t *b = nl_addr_get_binary_addr(d);
    snprintf(buf, sizeof buf, "%u.%u.%u.%u/%u", b[0], b[1], b[2], b[3],
             nl_addr_get_prefixlen(d));
    names_push(nets, n, buf);
  }
  return 0;
}

/* One neighbour-table entry: an FDB entry on a VXLAN device (AF_BRIDGE,
 * NTF_SELF, dst = the peer node) or an ARP entry (AF_INET). */
static int neigh_op(struct netdev *nd, bool add, int family, const char *link,
                    const char *ip, const char *mac, sh_err *err) {
  int idx = netdev_ifindex(nd, link, err);
  if (idx < 0)
    return -1;
  struct nl_addr *dst = NULL, *ll = NULL;
  if (ip && parse_addr(ip, AF_INET, &dst, err) < 0)
    return -1;
  if (mac && parse_addr(mac, AF_LLC, &ll, err) < 0) {
    nl_addr_put(dst);
    return -1;
  }
  struct rtnl_neigh *n = rtnl_neigh_alloc();
  rtnl_neigh_set_ifindex(n, idx);
  /* libnl refuses a dst whose family differs from the entry's: set the
   * dst first (an FDB entry's dst is the peer node's IPv4 address). */
  if (dst)
    rtnl_neigh_set_dst(n, dst);
  rtnl_neigh_set_family(n, family);
  if (ll)
    rtnl_neigh_set_lladdr(n, ll);
  rtnl_neigh_set_state(n, NUD_PERMANENT);
  if (family == AF_BRIDGE)
    rtnl_neigh_set_flags(n, NTF_SELF);
  int rc = add ? rtnl_neigh_add(nd->sk, n, NLM_F_CREATE | NLM_F_REPLACE)
               : rtnl_neigh_delete(nd->sk, n, 0);
  rtnl_neigh_put(n);
  nl_addr_put(dst);
  nl_addr_put(ll);
  return rc < 0 ? nl_fail(err, rc,
                          add ? "add neighbour on"
                              : "delete "
                                "neighbour on",
                          link)
                : 0;
}

int netdev_fdb_add(struct netdev *nd, const char *vxlan, const char *mac,
                   const char *dst, sh_err *err) {
  return neigh_op(nd, true, AF_BRIDGE, vxlan, dst, mac, err);
}

int netdev_fdb_del(struct netdev *nd, const char *vxlan, const char *mac,
                   const char *dst, sh_err *err) {
  return neigh_op(nd, false, AF_BRIDGE, vxlan, dst, mac, err);
}

int netdev_neigh_add(struct netdev *nd, const char *link, const char *ip,
                     const char *mac, sh_err *err) {
  return neigh_op(nd, true, AF_INET, link, ip, mac, err);
}

int netdev_neigh_del(struct netdev *nd, const char *link, const char *ip,
                     sh_err *err) {
  return neigh_op(nd, false, AF_INET, link, ip, NULL, err);
}

int netdev_neigh_list(struct netdev *nd, const char *link, bool fdb,
                      struct netdev_neigh **out, size_t *n, sh_err *err) {
  int idx = netdev_ifindex(nd, link, err);
  if (idx < 0)
    return -1;
  cleanup_cache struct nl_cache *c = NULL;
  /* AF_ITER: one dump per family, so the bridge FDB comes with ARP. */
  int rc = rtnl_neigh_alloc_cache_flags(nd->sk, &c, NL_CACHE_AF_ITER);
  if (rc < 0)
    return nl_fail(err, rc, "list neighbours of", link);
  *out = NULL;
  *n = 0;
  for (struct nl_object *o = nl_cache_get_first(c); o;
       o = nl_cache_get_next(o)) {
    struct rtnl_neigh *e = (struct rtnl_neigh *)o;
    struct nl_addr *dst = rtnl_neigh_get_dst(e);
    struct nl_addr *ll = rtnl_neigh_get_lladdr(e);
    if (rtnl_neigh_get_ifindex(e) != idx || !ll || !dst ||
        nl_addr_get_len(dst) != 4)
      continue;
    int family = rtnl_neigh_get_family(e);
    if (fdb) {
      /* The device's own entries, not the bridge's (NTF_MASTER). */
      if (family != AF_BRIDGE || !(rtnl_neigh_get_flags(e) & NTF_SELF))
        continue;
    } else if (family != AF_INET ||
               !(rtnl_neigh_get_state(e) & NUD_PERMANENT)) {
      continue;
    }
    *out = xrealloc(*out, (*n + 1) * sizeof **out);
    struct netdev_neigh *x = &(*out)[(*n)++];
    uint8_t *b = nl_addr_get_binary_addr(dst);
    snprintf(x->ip, sizeof x->ip, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
    uint8_t *m = nl_addr_get_binary_addr(ll);
    if (nl_addr_get_len(ll) == 6)
      snprintf(x->mac, sizeof x->mac, "%02x:%02x:%02x:%02x:%02x:%02x", m[0],
               m[1], m[2], m[3], m[4], m[5]);
    else
      x->mac[0] = '\0';
  }
  return 0;
}

/* ---- sysctls ---- */

int netdev_sysctl_set(int netns_fd, const char *key, const char *value,
                      sh_err *err) {
  if (strstr(key, ".."))
    return sh_error(err, 400, "invalid sysctl %s", key);
  int self = -1;
  if (enter_netns(netns_fd, &self, err) < 0)
    return -1;
  /* /proc/sys/net resolves to the namespace of the thread opening it. */
  cleanup_free char *path = xasprintf("/proc/sys/%s", key);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  int e = errno;
  leave_netns(self);
  if (fd < 0)
    return sh_errno(err, e, "open %s", path);
  size_t len = strlen(value);
  ssize_t w = write(fd, value, len);
  e = errno;
  close(fd);
  if (w != (ssize_t)len)
    return sh_errno(err, w < 0 ? e : EIO, "write %s", path);
  return 0;
}

/* ---- namespaces ---- */

int netns_create(const char *path, int *fd_out, sh_err *err) {
  int f = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
  if (f < 0)
    return sh_errno(err, errno, "create %s", path);
  close(f);
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) {
    unlink(path);
    return sh_errno(err, errno, "open this thread's network namespace");
  }
  /* unshare moves only this thread; the bind mount keeps the namespace
   * alive after the thread returns to its own. */
  int rc = 0;
  if (unshare(CLONE_NEWNET) < 0) {
    rc = sh_errno(err, errno, "new network namespace for %s", path);
  } else {
    if (mount("/proc/thread-self/ns/net", path, NULL, MS_BIND, NULL) < 0)
      rc = sh_errno(err, errno, "bind network namespace to %s", path);
    if (setns(self, CLONE_NEWNET) < 0)
      abort(); /* a thread stranded in another namespace is worse */
  }
  close(self);
  if (rc < 0) {
    unlink(path);
    return rc;
  }
  if (fd_out && (*fd_out = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
    rc = sh_errno(err, errno, "open %s", path);
    netns_remove(path, NULL);
    return rc;
  }
  return 0;
}

int netns_remove(const char *path, sh_err *err) {
  if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
    return sh_errno(err, errno, "unmount %s", path);
  if (unlink(path) < 0 && errno != ENOENT)
    return sh_errno(err, errno, "remove %s", path);
  return 0;
}

int netns_udp_bind(int netns_fd, const char *ip, uint16_t port, int *fd_out,
                   sh_err *err) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
    return sh_error(err, 400, "invalid address %s", ip);
  int self = -1;
  if (enter_netns(netns_fd, &self, err) < 0)
    return -1;
  /* The socket belongs to the namespace it is made in. */
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int e = errno;
  if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    e = errno;
    close(fd);
    fd = -1;
  }
  leave_netns(self);
  if (fd < 0)
    return sh_errno(err, e, "bind %s:%u", ip, port);
  *fd_out = fd;
  return 0;
}
