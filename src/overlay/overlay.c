/* The overlay data plane on one node: namespaces, links, forwarding
 * entries and NAT, from the tasks' network attachments. */
#include "overlay/overlay.h"

#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "netdev/netdev.h"
#include "nft/nft.h"
#include "overlay/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>

#define MAX_ATTACH 16

struct ov_net {
  char id[65];
  int fd;
  struct netdev *nd;
};

struct overlay {
  pthread_mutex_t mu;
  char *netns_dir, *state_path;
  int node_fd; /* -1: the caller's namespace */
  struct netdev *node;
  struct nft *nft;
  /* Persisted: task ID -> {"Attachments", "Ports", "VxlanPort", "GwIP"}. */
  json_t *tasks;
  bool have_gw; /* gw is chosen (docker_gwbridge exists or existed) */
  struct ipam_prefix gw;
  uint32_t gw_last;
  bool gw_ready; /* bridge, forwarding and nft tables in place */
  json_t *pools; /* default-address-pools; NULL: 172.x/16 */
  bool have_br;  /* docker0's subnet is chosen (persisted, kept by leave) */
  struct ipam_prefix br;
  /* Persisted, kept by leave: user bridge networks, ID -> {"Id", "Name",
   * "Created", "Subnet", "Gateway", "IPRange", "Internal", "Bridge",
   * "Labels", "Options"}. */
  json_t *lnets;
  /* A copy of lnets no one changes, swapped under lnets_mu after each
   * change: the loop reads it (user_net) without waiting for ov_lock,
   * which a task's network setup holds for long. */
  json_t *lnets_pub;
  pthread_mutex_t lnets_mu;
  /* In memory only: net ID -> {"<addr>": "<host>"}. */
  json_t *peers;
  /* In memory only: the mesh's keyed table (overlay_mesh), applied
   * whenever the ingress sandbox exists; lb_built: the sandbox's tables
   * hold it. */
  json_t *mesh;
  bool lb_built;
  /* Backends that left the mesh: address -> when (monotonic s) they stop
   * being refused (see ov_lb_gone). */
  json_t *gone;
  /* The VIP chains in each task's table (task ID -> {vip key: true}), and
   * the sandboxes each client-IP-keeping task routes replies to (task ID
   * -> {"If": "eth0", "Sboxes": {addr: true}}). */
  json_t *vip_applied;
  json_t *kci_applied;
  struct ov_net *nets;
  size_t nnets;
};

/* The lock is taken by the worker's nice-10 threads (removals) as well
 * as by starts: a holder at nice 10 on a busy node was preempted for
 * hundreds of ms while starts waited behind it (priority inversion; nice
 * is not covered by PTHREAD_PRIO_INHERIT). So the holder runs at nice 0
 * and gets its own nice back at unlock. */
static int ov_lock(struct overlay *ov) {
  errno = 0;
  int nice = getpriority(PRIO_PROCESS, (id_t)gettid());
  if (errno != 0 || nice <= 0)
    nice = 0;
  else
    (void)setpriority(PRIO_PROCESS, (id_t)gettid(), 0);
  pthread_mutex_lock(&ov->mu);
  return nice;
}

static void ov_unlock(struct overlay *ov, int nice) {
  pthread_mutex_unlock(&ov->mu);
  if (nice > 0)
    (void)setpriority(PRIO_PROCESS, (id_t)gettid(), nice);
}

static int apply_mesh(struct overlay *ov, const json_t *old,
                      const json_t *changed, sh_err *err);
static json_t *endpoint(const char *task, const char *net, uint32_t ip,
                        unsigned len);
static int apply_vips(struct overlay *ov, const char *only,
                      const json_t *changed, sh_err *err);
static int apply_kci(struct overlay *ov, sh_err *err);

/* ---- small helpers ---- */

static bool is_netns(const char *path) {
  struct statfs s;
  return statfs(path, &s) == 0 && s.f_type == NSFS_MAGIC;
}

static char *task_path(struct overlay *ov, const char *id) {
  return xasprintf("%s/%s", ov->netns_dir, id);
}

static char *net_path(struct overlay *ov, const char *net_id) {
  char n[16];
  ov_net_ns_name(net_id, n);
  return xasprintf("%s/%s", ov->netns_dir, n);
}

static struct ov_net *find_net(struct overlay *ov, const char *id) {
  for (size_t i = 0; i < ov->nnets; i++)
    if (!strcmp(ov->nets[i].id, id))
      return &ov->nets[i];
  return NULL;
}

static const char *att_net_id(const json_t *att) {
  return jx_str(att, "Network.ID", "");
}

static size_t net_users(struct overlay *ov, const char *net_id) {
  size_t n = 0;
  const char *k;
  json_t *t;
  json_object_foreach(ov->tasks, k, t) {
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(t, "Attachments"), i, a) {
      if (!strcmp(att_net_id(a), net_id))
        n++;
    }
  }
  return n;
}

static uint32_t task_gw_ip(const json_t *t) {
  uint32_t ip = 0;
  const char *s = jx_str(t, "GwIP", NULL);
  if (s && ipam_parse_ip(s, &ip, NULL) < 0)
    ip = 0;
  return ip;
}

static int save_state(struct overlay *ov, sh_err *err) {
  cleanup_json json_t *st = json_pack("{sO}", "Tasks", ov->tasks);
  char b[20];
  if (json_object_size(ov->lnets))
    json_object_set(st, "LocalNets", ov->lnets);
  if (ov->have_br)
    json_object_set_new(st, "BridgeSubnet",
                        json_string(ipam_prefix_str(ov->br, b)));
  if (ov->have_gw) {
    json_object_set_new(st, "GwSubnet",
                        json_string(ipam_prefix_str(ov->gw, b)));
    json_object_set_new(st, "GwLast", json_string(ipam_ip_str(ov->gw_last, b)));
  }
  cleanup_free char *s = jx_dump(st);
  /* No fsync: the namespaces it describes live in exec_root (a tmpfs on
   * real hosts) and do not survive the machine either; a restart of
   * shoald finds the file whole. One fsync per task start cost more than
   * the task's links. */
  return write_file_replace(ov->state_path, s, strlen(s), 0600, err);
}

static int load_state(struct overlay *ov, sh_err *err) {
  cleanup_free char *data = NULL;
  size_t len = 0;
  sh_err e = {0};
  if (read_file(ov->state_path, &data, &len, &e) < 0) {
    if (e.status == 404)
      return 0;
    if (err)
      *err = e;
    return -1;
  }
  json_error_t je;
  cleanup_json json_t *st = json_loadb(data, len, 0, &je);
  if (!json_is_object(st))
    return sh_error(err, 500, "%s: %s", ov->state_path, je.text);
  json_t *tasks = json_object_get(st, "Tasks");
  if (json_is_object(tasks)) {
    json_decref(ov->tasks);
    ov->tasks = json_incref(tasks);
  }
  json_t *lnets = json_object_get(st, "LocalNets");
  if (json_is_object(lnets)) {
    json_decref(ov->lnets);
    ov->lnets = json_incref(lnets);
  }
  const char *brs = jx_str(st, "BridgeSubnet", NULL);
  ov->have_br = brs && ipam_parse_cidr(brs, &ov->br, NULL, NULL) == 0;
  const char *sub = jx_str(st, "GwSubnet", NULL);
  if (sub && ipam_parse_cidr(sub, &ov->gw, NULL, NULL) == 0) {
    ov->have_gw = true;
    if (ipam_parse_ip(jx_str(st, "GwLast", ""), &ov->gw_last, NULL) < 0)
      ov->gw_last = 0;
  }
  return 0;
}

/* ---- networks ---- */

static int apply_peer(struct ov_net *n, const char *addr, const char *host,
                      sh_err *err) {
  uint32_t ip;
  if (ipam_parse_ip(addr, &ip, err) < 0)
    return -1;
  char mac[18];
  ov_mac(ip, mac);
  if (netdev_fdb_add(n->nd, "vxlan0", mac, host, err) < 0 ||
      netdev_neigh_add(n->nd, "vxlan0", addr, mac, err) < 0)
    return -1;
  return 0;
}

static int apply_peers(struct overlay *ov, struct ov_net *n, sh_err *err) {
  const char *addr;
  json_t *host;
  json_object_foreach(json_object_get(ov->peers, n->id), addr, host) {
    if (apply_peer(n, addr, json_string_value(host), err) < 0)
      return -1;
  }
  return 0;
}

static void net_free(struct ov_net *n) {
  netdev_close(n->nd);
  if (n->fd >= 0)
    close(n->fd);
}

/* Opens a network namespace left by an earlier run. */
static int net_adopt(struct overlay *ov, const char *net_id, sh_err *err) {
  cleanup_free char *path = net_path(ov, net_id);
  struct ov_net n = {.fd = -1};
  snprintf(n.id, sizeof n.id, "%s", net_id);
  if (!is_netns(path))
    return sh_error(err, 404, "no namespace for network %s", net_id);
  if ((n.fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
    return sh_errno(err, errno, "open %s", path);
  if (netdev_open(n.fd, &n.nd, err) < 0) {
    net_free(&n);
    return -1;
  }
  ov->nets = xrealloc(ov->nets, (ov->nnets + 1) * sizeof *ov->nets);
  ov->nets[ov->nnets++] = n;
  return 0;
}

/* Deletes vxlan0 first: the namespace itself goes away later (cleanup
 * runs in the background), and until then its VNI would stay taken. */
static void net_ns_destroy(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    struct netdev *nd = NULL;
    if (netdev_open(fd, &nd, NULL) == 0) {
      if (netdev_exists(nd, "vxlan0"))
        netdev_del(nd, "vxlan0", NULL);
      netdev_close(nd);
    }
    close(fd);
  }
  netns_remove(path, NULL);
}

static void net_remove(struct overlay *ov, struct ov_net *n) {
  cleanup_free char *path = net_path(ov, n->id);
  if (netdev_exists(n->nd, "vxlan0"))
    netdev_del(n->nd, "vxlan0", NULL);
  net_free(n);
  netns_remove(path, NULL);
  size_t i = (size_t)(n - ov->nets);
  memmove(&ov->nets[i], &ov->nets[i + 1],
          (ov->nnets - i - 1) * sizeof *ov->nets);
  ov->nnets--;
}

static int net_create(struct overlay *ov, const struct ov_attach *a,
                      uint16_t port, struct ov_net **out, sh_err *err) {
  cleanup_free char *path = net_path(ov, a->net_id);
  if (is_netns(path)) {
    /* A leftover (no task of ours uses it): start clean. */
    net_ns_destroy(path);
  } else {
    unlink(path);
  }
  struct ov_net n = {.fd = -1};
  snprintf(n.id, sizeof n.id, "%s", a->net_id);
  char vx[16], cidr[20], gw[20];
  ov_vxlan_name(a->vni, a->net_id, vx);
  if (netns_create(path, &n.fd, err) < 0)
    return -1;
  if (netdev_exists(ov->node, vx))
    netdev_del(ov->node, vx, NULL);
  snprintf(cidr, sizeof cidr, "%s/%u", ipam_ip_str(a->gateway, gw), a->net.len);
  if (netdev_open(n.fd, &n.nd, err) < 0 ||
      netdev_bridge_add(n.nd, "br0", a->mtu, err) < 0 ||
      (a->gateway && netdev_addr_add(n.nd, "br0", cidr, err) < 0) ||
      netdev_vxlan_add(ov->node, vx, a->vni, port, a->mtu, true, err) < 0 ||
      netdev_move(ov->node, vx, n.fd, "vxlan0", err) < 0 ||
      netdev_set_master(n.nd, "vxlan0", "br0", err) < 0 ||
      netdev_set_up(n.nd, "br0", err) < 0 ||
      netdev_set_up(n.nd, "vxlan0", err) < 0) {
    sh_err_wrap(err, "network %s", a->name);
    if (netdev_exists(ov->node, vx))
      netdev_del(ov->node, vx, NULL);
    net_free(&n);
    net_ns_destroy(path);
    return -1;
  }
  ov->nets = xrealloc(ov->nets, (ov->nnets + 1) * sizeof *ov->nets);
  ov->nets[ov->nnets++] = n;
  *out = &ov->nets[ov->nnets - 1];
  if (apply_peers(ov, *out, err) < 0) {
    sh_err_wrap(err, "network %s: peers", a->name);
    net_remove(ov, *out);
    return -1;
  }
  return 0;
}

/* ---- docker_gwbridge and NAT ---- */

static int ensure_nft(struct overlay *ov, sh_err *err) {
  return ov->nft ? 0 : nft_open(ov->node_fd, &ov->nft, err);
}

static bool is_bridge(const json_t *t) {
  return jx_bool(t, "Bridge", false);
}

/* The network ID of a standalone container's first bridge endpoint; ""
 * for docker0. */
static const char *bridge_net(const json_t *t) {
  return jx_str(t, "Net", "");
}

/* The host ports of docker_gwbridge's tasks (net NULL), or of the
 * containers whose first endpoint is on a bridge network (net: its ID, ""
 * for docker0). */
static void host_dnats(struct overlay *ov, const char *net,
                       struct ov_dnat **out, size_t *nout) {
  bool bridge = net != NULL;
  struct ov_dnat *d = NULL;
  size_t n = 0;
  const char *k;
  json_t *t;
  json_object_foreach(ov->tasks, k, t) {
    uint32_t ip = task_gw_ip(t);
    struct ov_port *p = NULL;
    size_t np = 0;
    if (!ip || is_bridge(t) != bridge ||
        (bridge && strcmp(bridge_net(t), net) != 0) ||
        ov_parse_ports(json_object_get(t, "Ports"), &p, &np, NULL) < 0)
      continue;
    d = xrealloc(d, (n + np + 1) * sizeof *d);
    for (size_t i = 0; i < np; i++)
      d[n++] = (struct ov_dnat){p[i], ip};
    free(p);
  }
  *out = d;
  *nout = n;
}

/* The published ports' table of docker_gwbridge (tasks, host mode) or of
 * docker0 (standalone containers, with docker0's masquerade). */
static int apply_dnat(struct overlay *ov, bool docker0, sh_err *err) {
  struct ov_dnat *d = NULL;
  size_t n = 0;
  host_dnats(ov, docker0 ? "" : NULL, &d, &n);
  cleanup_free char *rules =
      docker0 ? ov_docker0_rules(ov->br, d, n) : ov_nat_rules(ov->gw, d, n);
  free(d);
  if (ensure_nft(ov, err) < 0)
    return -1;
  return nft_apply(ov->nft, rules, err);
}

static int apply_nat(struct overlay *ov, sh_err *err) {
  return apply_dnat(ov, false, err);
}

/* The first /16 from 172.<first>.0.0 that nothing in the node's
 * namespace uses (see ov_gw_pick). */
static int pick_subnet(struct overlay *ov, unsigned first, const char *name,
                       struct ipam_prefix *out, sh_err *err) {
  char **used = NULL;
  size_t n = 0;
  if (netdev_ipv4_nets(ov->node, &used, &n, err) < 0)
    return -1;
  int rc = ov->pools ? ov_pool_pick(used, n, ov->pools, out, err)
                     : ov_gw_pick(used, n, first, name, out, err);
  netdev_names_free(used, n);
  return rc;
}

/* A local bridge with the gateway address (0: the subnet's first), up. */
static int make_bridge_gw(struct overlay *ov, const char *name,
                          struct ipam_prefix p, uint32_t gw, sh_err *err) {
  char ip[20], cidr[24];
  snprintf(cidr, sizeof cidr, "%s/%u", ipam_ip_str(gw ? gw : p.addr + 1, ip),
           p.len);
  if (netdev_bridge_add(ov->node, name, OV_GW_MTU, err) < 0 ||
      netdev_addr_add(ov->node, name, cidr, err) < 0 ||
      netdev_set_up(ov->node, name, err) < 0) {
    netdev_del(ov->node, name, NULL);
    return -1;
  }
  return 0;
}

static int make_bridge(struct overlay *ov, const char *name,
                       struct ipam_prefix p, sh_err *err) {
  return make_bridge_gw(ov, name, p, 0, err);
}

static int ensure_gw(struct overlay *ov, sh_err *err) {
  if (ov->gw_ready)
    return 0;
  bool exists = netdev_exists(ov->node, OV_GW_BRIDGE);
  if (exists && !ov->have_gw) {
    /* Not ours to trust (no state says its subnet): make it again. */
    if (netdev_del(ov->node, OV_GW_BRIDGE, err) < 0)
      return -1;
    exists = false;
  }
  if (!exists) {
    /* A fresh start (a reboot emptied exec_root): choose again unless a
     * task still holds an address in the old subnet. */
    bool held = false;
    const char *k;
    json_t *t;
    json_object_foreach(ov->tasks, k, t) held |= task_gw_ip(t) != 0;
    if (!held)
      ov->have_gw = false;
    if (!ov->have_gw) {
      if (pick_subnet(ov, 18, OV_GW_BRIDGE, &ov->gw, err) < 0)
        return -1;
      ov->have_gw = true;
      ov->gw_last = 0;
    }
    if (make_bridge(ov, OV_GW_BRIDGE, ov->gw, err) < 0)
      return -1;
  }
  if (netdev_sysctl_set(ov->node_fd, "net/ipv4/ip_forward", "1", err) < 0 ||
      ensure_nft(ov, err) < 0 || nft_apply(ov->nft, ov_bridge_rules(), err) < 0)
    return -1;
  ov->gw_ready = true;
  if (apply_nat(ov, err) < 0) {
    ov->gw_ready = false;
    return -1;
  }
  return 0;
}

/* docker0's table: masquerade and its containers' published ports. */
static int apply_bridge_nat(struct overlay *ov, sh_err *err) {
  return apply_dnat(ov, true, err);
}

/* docker0, the `bridge` network: made as dockerd makes it at start, in
 * the subnet it had before (the state keeps it across reboots). */
static int ensure_docker0(struct overlay *ov, sh_err *err) {
  bool exists = netdev_exists(ov->node, OV_DEFAULT_BRIDGE);
  if (exists && !ov->have_br) {
    /* Not ours to trust (no state says its subnet): make it again. */
    if (netdev_del(ov->node, OV_DEFAULT_BRIDGE, err) < 0)
      return -1;
    exists = false;
  }
  if (!ov->have_br) {
    if (pick_subnet(ov, 17, OV_DEFAULT_BRIDGE, &ov->br, err) < 0)
      return -1;
    ov->have_br = true;
  }
  if (!exists && make_bridge(ov, OV_DEFAULT_BRIDGE, ov->br, err) < 0)
    return -1;
  if (netdev_sysctl_set(ov->node_fd, "net/ipv4/ip_forward", "1", err) < 0)
    return -1;
  return apply_bridge_nat(ov, err);
}

int overlay_ensure_bridge(struct overlay *ov, sh_err *err) {
  int nice = ov_lock(ov);
  int rc = ensure_docker0(ov, err);
  if (rc == 0)
    rc = save_state(ov, err);
  ov_unlock(ov, nice);
  return rc;
}

/* ---- user bridge networks ---- */

/* One bridge network as endpoints need it: docker0 (id "") or a user's. */
struct lnet {
  const char *id;
  struct ipam_prefix subnet, range;
  uint32_t gw;
  bool have_range, internal;
  char ifname[16];
};

static int lnet_get(struct overlay *ov, const char *id, struct lnet *l,
                    sh_err *err) {
  memset(l, 0, sizeof *l);
  if (!id || !*id) {
    if (!ov->have_br && ensure_docker0(ov, err) < 0)
      return -1;
    l->id = "";
    l->subnet = ov->br;
    l->gw = ov->br.addr + 1;
    snprintf(l->ifname, sizeof l->ifname, "%s", OV_DEFAULT_BRIDGE);
    return 0;
  }
  const json_t *r = json_object_get(ov->lnets, id);
  if (!r)
    return sh_error(err, 404, "network %s not found", id);
  l->id = jx_str(r, "Id", "");
  if (ipam_parse_cidr(jx_str(r, "Subnet", ""), &l->subnet, NULL, err) < 0 ||
      ipam_parse_ip(jx_str(r, "Gateway", ""), &l->gw, err) < 0)
    return -1;
  const char *rg = jx_str(r, "IPRange", "");
  l->have_range = *rg && ipam_parse_cidr(rg, &l->range, NULL, NULL) == 0;
  l->internal = jx_bool(r, "Internal", false);
  snprintf(l->ifname, sizeof l->ifname, "%s", jx_str(r, "Bridge", ""));
  return 0;
}

/* The addresses endpoints hold on a bridge network (net: "" docker0). */
static size_t lnet_taken(struct overlay *ov, const char *net, uint32_t **out) {
  size_t n = 0, cap = 8;
  uint32_t *v = xcalloc(cap, sizeof *v);
  const char *k;
  json_t *t;
  json_object_foreach(ov->tasks, k, t) {
    if (!is_bridge(t))
      continue;
    uint32_t ip = task_gw_ip(t);
    if (n + 1 + json_array_size(json_object_get(t, "More")) >= cap) {
      cap = (cap + json_array_size(json_object_get(t, "More")) + 1) * 2;
      v = xrealloc(v, cap * sizeof *v);
    }
    if (ip && strcmp(bridge_net(t), net) == 0)
      v[n++] = ip;
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(t, "More"), i, m) {
      if (strcmp(jx_str(m, "Net", ""), net) == 0 &&
          ipam_parse_ip(jx_str(m, "IP", ""), &ip, NULL) == 0)
        v[n++] = ip;
    }
  }
  *out = v;
  return n;
}

/* An address on l: the one asked for (--ip) when free, else the lowest
 * free one (dockerd's). */
static int lnet_addr(struct overlay *ov, const struct lnet *l, const char *want,
                     uint32_t *ip, sh_err *err) {
  cleanup_free uint32_t *taken = NULL;
  size_t n = lnet_taken(ov, l->id, &taken);
  if (want && *want) {
    if (ipam_parse_ip(want, ip, err) < 0)
      return -1;
    if (!ipam_contains(l->subnet, *ip))
      return sh_error(err, 400,
                      "Invalid address %s: It does not belong to any of this "
                      "network's subnets",
                      want);
    bool used = *ip == l->gw;
    for (size_t i = 0; i < n && !used; i++)
      used = taken[i] == *ip;
    if (used)
      return sh_error(err, 409, "Address already in use");
    return 0;
  }
  *ip = ov_lnet_next(l->subnet, l->have_range ? &l->range : NULL, l->gw, taken,
                     n);
  if (!*ip)
    return sh_error(err, 503, "no available IPv4 addresses on %s", l->ifname);
  return 0;
}

static char *lnet_table(const char *id) {
  return xasprintf("shoal_br_%.12s", id);
}

/* A bridge network's table: masquerade and the published ports of the
 * containers whose first endpoint is on it; none for an internal one. */
static int apply_lnet_nat(struct overlay *ov, const struct lnet *l,
                          sh_err *err) {
  if (!*l->id)
    return apply_bridge_nat(ov, err);
  if (ensure_nft(ov, err) < 0)
    return -1;
  if (l->internal)
    return 0;
  struct ov_dnat *d = NULL;
  size_t n = 0;
  host_dnats(ov, l->id, &d, &n);
  cleanup_free char *rules = ov_lnet_rules(l->id, l->ifname, l->subnet, d, n);
  free(d);
  return nft_apply(ov->nft, rules, err);
}

/* dockerd's DOCKER-ISOLATION: no forwarding between two bridges. */
static int apply_isolation(struct overlay *ov, sh_err *err) {
  size_t cap = json_object_size(ov->lnets) + 1, n = 0;
  cleanup_free const char **names = xcalloc(cap, sizeof *names);
  cleanup_free bool *internal = xcalloc(cap, sizeof *internal);
  if (ov->have_br)
    names[n++] = OV_DEFAULT_BRIDGE;
  const char *k;
  json_t *r;
  json_object_foreach(ov->lnets, k, r) {
    internal[n] = jx_bool(r, "Internal", false);
    names[n++] = jx_str(r, "Bridge", "");
  }
  if (ensure_nft(ov, err) < 0)
    return -1;
  cleanup_free char *rules = ov_isolation_rules(names, internal, n);
  return nft_apply(ov->nft, rules, err);
}

/* The network's bridge, NAT and isolation as its record says. */
static int ensure_lnet(struct overlay *ov, const char *id, sh_err *err) {
  struct lnet l;
  if (lnet_get(ov, id, &l, err) < 0)
    return -1;
  if (!netdev_exists(ov->node, l.ifname) &&
      make_bridge_gw(ov, l.ifname, l.subnet, l.gw, err) < 0)
    return -1;
  if (netdev_sysctl_set(ov->node_fd, "net/ipv4/ip_forward", "1", err) < 0 ||
      apply_lnet_nat(ov, &l, err) < 0 || apply_isolation(ov, err) < 0)
    return -1;
  return 0;
}

static void lnet_teardown(struct overlay *ov, const char *id,
                          const char *ifname) {
  if (netdev_exists(ov->node, ifname))
    netdev_del(ov->node, ifname, NULL);
  if (ensure_nft(ov, NULL) == 0) {
    /* the table is absent for an internal network */
    cleanup_free char *t = lnet_table(id);
    cleanup_free char *del = xasprintf("delete table ip %s", t);
    nft_apply(ov->nft, del, NULL);
  }
}

static bool lnet_in_use(struct overlay *ov, const char *id) {
  cleanup_free uint32_t *taken = NULL;
  return lnet_taken(ov, id, &taken) > 0;
}

/* Under ov_lock, after lnets changed. */
static void lnets_publish(struct overlay *ov) {
  json_t *copy = json_deep_copy(ov->lnets);
  pthread_mutex_lock(&ov->lnets_mu);
  json_t *old = ov->lnets_pub;
  ov->lnets_pub = copy;
  pthread_mutex_unlock(&ov->lnets_mu);
  json_decref(old);
}

int overlay_net_create(struct overlay *ov, const json_t *req, const char *id,
                       const char *created, sh_err *err) {
  struct ov_lnet_spec sp;
  if (!ov_id_ok(id))
    return sh_error(err, 400, "invalid network ID");
  if (ov_lnet_parse(req, &sp, err) < 0)
    return -1;
  const char *name = jx_str(req, "Name", "");
  int nice = ov_lock(ov);
  int rc = -1;
  char **used = NULL;
  size_t nused = 0;
  const char *k;
  json_t *r;
  char ifname[16];
  if (*sp.bridge)
    snprintf(ifname, sizeof ifname, "%s", sp.bridge);
  else
    ov_lnet_bridge_name(id, ifname);
  json_object_foreach(ov->lnets, k, r) {
    if (strcmp(jx_str(r, "Name", ""), name) == 0) {
      sh_error(err, 409, "network with name %s already exists", name);
      goto out;
    }
  }
  if (netdev_exists(ov->node, ifname) || !strcmp(ifname, OV_DEFAULT_BRIDGE) ||
      !strcmp(ifname, OV_GW_BRIDGE)) {
    sh_error(err, 409, "bridge name %s is already in use on this node", ifname);
    goto out;
  }
  /* The subnets of the node's own networks, which a new one must not
   * overlap. */
  if (netdev_ipv4_nets(ov->node, &used, &nused, err) < 0)
    goto out;
  char b[20];
  size_t extra = json_object_size(ov->lnets) + 3;
  used = xrealloc(used, (nused + extra) * sizeof *used);
  json_object_foreach(ov->lnets, k, r) used[nused++] =
      xstrdup(jx_str(r, "Subnet", ""));
  if (ov->have_br)
    used[nused++] = xstrdup(ipam_prefix_str(ov->br, b));
  if (ov->have_gw)
    used[nused++] = xstrdup(ipam_prefix_str(ov->gw, b));
  else if (!ov->pools) /* where docker_gwbridge goes on a swarm join */
    used[nused++] = xstrdup("172.18.0.0/16");
  struct ipam_prefix subnet = sp.subnet;
  if (sp.have_subnet) {
    /* Only the daemon's networks count (dockerd's address space), not
     * the host's other routes. */
    bool clash = false;
    json_object_foreach(ov->lnets, k, r) {
      struct ipam_prefix o;
      clash |= ipam_parse_cidr(jx_str(r, "Subnet", ""), &o, NULL, NULL) == 0 &&
               ipam_overlaps(o, subnet);
    }
    clash |= ov->have_br && ipam_overlaps(ov->br, subnet);
    clash |= ov->have_gw && ipam_overlaps(ov->gw, subnet);
    if (clash) {
      sh_error(err, 403,
               "invalid pool request: Pool overlaps with other one on this "
               "address space");
      goto out;
    }
  } else if (ov_lnet_pick(used, nused, ov->pools, &subnet, err) < 0) {
    goto out;
  }
  uint32_t gw = sp.gateway ? sp.gateway : subnet.addr + 1;
  char sb[20], gb[20];
  json_t *rec =
      json_pack("{s:s,s:s,s:s,s:s,s:s,s:b,s:b,s:s,s:o,s:o}", "Id", id, "Name",
                name, "Created", created, "Subnet", ipam_prefix_str(subnet, sb),
                "Gateway", ipam_ip_str(gw, gb), "Internal", sp.internal,
                "UserSubnet", sp.have_subnet, "Bridge", ifname, "Labels",
                json_is_object(json_object_get(req, "Labels"))
                    ? json_deep_copy(json_object_get(req, "Labels"))
                    : json_object(),
                "Options",
                json_is_object(json_object_get(req, "Options"))
                    ? json_deep_copy(json_object_get(req, "Options"))
                    : json_object());
  if (sp.have_range)
    json_object_set_new(rec, "IPRange",
                        json_string(ipam_prefix_str(sp.range, b)));
  json_object_set_new(ov->lnets, id, rec);
  if (ensure_lnet(ov, id, err) < 0 || save_state(ov, err) < 0) {
    lnet_teardown(ov, id, ifname);
    json_object_del(ov->lnets, id);
    apply_isolation(ov, NULL);
    goto out;
  }
  lnets_publish(ov);
  rc = 0;
out:
  if (used)
    netdev_names_free(used, nused);
  ov_unlock(ov, nice);
  return rc;
}

json_t *overlay_nets(struct overlay *ov) {
  pthread_mutex_lock(&ov->lnets_mu);
  json_t *pub = json_incref(ov->lnets_pub);
  pthread_mutex_unlock(&ov->lnets_mu);
  /* read-only from here: copying it is safe beside other readers */
  json_t *out = pub ? json_deep_copy(pub) : json_object();
  json_decref(pub);
  return out;
}

int overlay_net_remove(struct overlay *ov, const char *id, sh_err *err) {
  int nice = ov_lock(ov);
  int rc = -1;
  json_t *r = json_object_get(ov->lnets, id);
  if (!r) {
    sh_error(err, 404, "network %s not found", id);
  } else if (lnet_in_use(ov, id)) {
    sh_error(err, 403,
             "error while removing network: network %s id %s has active "
             "endpoints",
             jx_str(r, "Name", ""), id);
  } else {
    char ifname[16];
    snprintf(ifname, sizeof ifname, "%s", jx_str(r, "Bridge", ""));
    json_object_del(ov->lnets, id);
    lnets_publish(ov);
    lnet_teardown(ov, id, ifname);
    rc = apply_isolation(ov, err) < 0 || save_state(ov, err) < 0 ? -1 : 0;
  }
  ov_unlock(ov, nice);
  return rc;
}

/* ---- tasks ---- */

/* Deletes the host ends of task id's veths (record t, may be NULL): their
 * names are free at once, even while something still holds the task's
 * namespace. */
static void del_host_ends(struct overlay *ov, const char *id, const json_t *t) {
  char host[16], peer[16];
  size_t i;
  json_t *a;
  json_array_foreach(json_object_get(t, "Attachments"), i, a) {
    struct ov_net *n = find_net(ov, att_net_id(a));
    ov_veth_names(id, (unsigned)i, host, peer);
    if (n && netdev_exists(n->nd, host))
      netdev_del(n->nd, host, NULL);
  }
  if (is_bridge(t))
    ov_br_names(id, host, peer);
  else
    ov_gw_names(id, host, peer);
  if (netdev_exists(ov->node, host))
    netdev_del(ov->node, host, NULL);
  json_array_foreach(json_object_get(t, "More"), i, a) {
    const char *link = jx_str(a, "Link", "");
    if (*link && netdev_exists(ov->node, link))
      netdev_del(ov->node, link, NULL);
  }
}

/* ended: nothing runs in the task's namespace any more, so its veth pairs
 * go with it (overlay_detach_ended); else they are deleted here. */
static void detach_locked(struct overlay *ov, const char *id, bool ended) {
  json_t *t = json_object_get(ov->tasks, id);
  if (strcmp(id, OVERLAY_INGRESS_SBOX) == 0)
    ov->lb_built = false; /* its tables go with its namespace */
  cleanup_free char *path = task_path(ov, id);
  size_t i;
  json_t *a;
  if (!ended)
    del_host_ends(ov, id, t);
  netns_remove(path, NULL);
  if (!t)
    return;
  bool had_ports =
      task_gw_ip(t) && json_array_size(json_object_get(t, "Ports"));
  bool bridge = is_bridge(t);
  cleanup_free char *net = xstrdup(bridge_net(t));
  json_t *atts = json_incref(json_object_get(t, "Attachments"));
  json_object_del(ov->tasks, id);
  json_array_foreach(atts, i, a) {
    struct ov_net *n = find_net(ov, att_net_id(a));
    if (n && net_users(ov, n->id) == 0)
      net_remove(ov, n);
  }
  json_decref(atts);
  struct lnet l;
  if (had_ports && bridge && lnet_get(ov, net, &l, NULL) == 0)
    apply_lnet_nat(ov, &l, NULL);
  else if (had_ports && ov->gw_ready)
    apply_nat(ov, NULL);
  save_state(ov, NULL);
}

/* A new namespace at path, whatever a crash left there. */
static int fresh_netns(const char *path, int *fd, sh_err *err) {
  if (is_netns(path))
    netns_remove(path, NULL);
  else
    unlink(path);
  return netns_create(path, fd, err);
}

static int port_conflict(struct overlay *ov, const struct ov_port *p, size_t np,
                         sh_err *err) {
  const char *k;
  json_t *t;
  json_object_foreach(ov->tasks, k, t) {
    struct ov_port *q = NULL;
    size_t nq = 0;
    if (ov_parse_ports(json_object_get(t, "Ports"), &q, &nq, NULL) < 0)
      continue;
    for (size_t i = 0; i < np; i++)
      for (size_t j = 0; j < nq; j++)
        if (p[i].proto == q[j].proto && p[i].published == q[j].published) {
          free(q);
          return sh_error(err, 409,
                          "Bind for 0.0.0.0:%u failed: port is already "
                          "allocated",
                          p[i].published);
        }
    free(q);
  }
  return 0;
}

static int link_task_iface(struct netdev *from, const char *host,
                           const char *peer, unsigned mtu, const char *master,
                           int task_fd, struct netdev *tnd, const char *ifname,
                           uint32_t ip, unsigned len, sh_err *err) {
  char mac[18], b[20], cidr[24];
  ov_mac(ip, mac);
  snprintf(cidr, sizeof cidr, "%s/%u", ipam_ip_str(ip, b), len);
  /* The task's end is made in its namespace, named and addressed: no
   * move, which would cost several times the creation. */
  (void)peer;
  if (netdev_veth_add_in(from, host, ifname, task_fd, mac, mtu, err) < 0) {
    /* The same task's previous end, which the kernel deletes with that
     * namespace (overlay_detach_ended) and has not yet. */
    if (!netdev_exists(from, host) || netdev_del(from, host, NULL) < 0)
      return -1;
    sh_err_clear(err);
    if (netdev_veth_add_in(from, host, ifname, task_fd, mac, mtu, err) < 0)
      return -1;
  }
  if (netdev_set_master(from, host, master, err) < 0 ||
      netdev_set_up(from, host, err) < 0 ||
      netdev_addr_add(tnd, ifname, cidr, err) < 0 ||
      netdev_set_up(tnd, ifname, err) < 0)
    return -1;
  return 0;
}

static int attach_locked(struct overlay *ov, const struct overlay_task *task,
                         const char *path, sh_err *err) {
  const char *id = task->task_id;
  size_t natt = json_array_size(task->attachments);
  if (natt > MAX_ATTACH)
    return sh_error(err, 400, "a task can join %d networks at most",
                    MAX_ATTACH);
  struct ov_attach att[MAX_ATTACH];
  bool need_gw = natt == 0;
  for (size_t i = 0; i < natt; i++) {
    if (ov_parse_attach(json_array_get(task->attachments, i), &att[i], err) < 0)
      return -1;
    need_gw |= !att[i].internal;
    for (size_t j = 0; j < i; j++)
      if (!strcmp(att[j].net_id, att[i].net_id))
        return sh_error(err, 400, "network %s is attached twice", att[i].name);
  }
  cleanup_free struct ov_port *ports = NULL;
  size_t nports = 0;
  if (ov_parse_ports(task->ports, &ports, &nports, err) < 0 ||
      port_conflict(ov, ports, nports, err) < 0)
    return -1;
  if (need_gw && ensure_gw(ov, err) < 0)
    return -1;

  cleanup_fd int tfd = -1;
  if (fresh_netns(path, &tfd, err) < 0)
    return -1;
  /* Recorded first, so that a failure below undoes it all (detach). */
  json_t *t = json_object();
  json_object_set_new(t, "Attachments",
                      task->attachments ? json_deep_copy(task->attachments)
                                        : json_array());
  json_object_set_new(t, "Ports",
                      task->ports ? json_deep_copy(task->ports) : json_array());
  if (task->standalone)
    json_object_set_new(t, "Standalone", json_true());
  json_object_set_new(t, "VxlanPort",
                      json_integer(task->vxlan_port ? task->vxlan_port : 4789));
  json_object_set_new(ov->tasks, id, t);

  struct netdev *tnd = NULL;
  if (netdev_open(tfd, &tnd, err) < 0)
    return -1;
  int rc = -1;
  char host[16], peer[16], ifname[16];
  unsigned eth = 0;
  for (size_t i = 0; i < natt; i++, eth++) {
    struct ov_net *n = find_net(ov, att[i].net_id);
    if (!n &&
        net_create(ov, &att[i], task->vxlan_port ? task->vxlan_port : 4789, &n,
                   err) < 0)
      goto out;
    ov_veth_names(id, (unsigned)i, host, peer);
    snprintf(ifname, sizeof ifname, "eth%u", eth);
    if (link_task_iface(n->nd, host, peer, att[i].mtu, "br0", tfd, tnd, ifname,
                        att[i].ip, att[i].net.len, err) < 0) {
      sh_err_wrap(err, "network %s", att[i].name);
      goto out;
    }
  }
  if (need_gw) {
    uint32_t *taken = xcalloc(json_object_size(ov->tasks) + 1, sizeof *taken);
    size_t nt = 0;
    const char *k;
    json_t *o;
    json_object_foreach(ov->tasks, k, o) {
      if ((taken[nt] = task_gw_ip(o)))
        nt++;
    }
    uint32_t ip = ov_gw_next(ov->gw, ov->gw_last, taken, nt);
    free(taken);
    if (!ip) {
      sh_error(err, 503, "no free address on " OV_GW_BRIDGE);
      goto out;
    }
    ov->gw_last = ip;
    char b[20];
    json_object_set_new(t, "GwIP", json_string(ipam_ip_str(ip, b)));
    ov_gw_names(id, host, peer);
    snprintf(ifname, sizeof ifname, "eth%u", eth);
    if (link_task_iface(ov->node, host, peer, OV_GW_MTU, OV_GW_BRIDGE, tfd, tnd,
                        ifname, ip, ov->gw.len, err) < 0 ||
        netdev_route_default(tnd, ipam_ip_str(ov->gw.addr + 1, b), err) < 0) {
      sh_err_wrap(err, OV_GW_BRIDGE);
      goto out;
    }
    if (nports && apply_nat(ov, err) < 0)
      goto out;
  }
  if (netdev_set_up(tnd, "lo", err) < 0 || save_state(ov, err) < 0)
    goto out;
  rc = 0;
out:
  netdev_close(tnd);
  return rc;
}

/* Every host port held, docker_gwbridge's and docker0's. */
static void held_ports(struct overlay *ov, struct ov_port **out, size_t *n) {
  *out = NULL;
  *n = 0;
  const char *k;
  json_t *t;
  json_object_foreach(ov->tasks, k, t) {
    struct ov_port *q = NULL;
    size_t nq = 0;
    if (ov_parse_ports(json_object_get(t, "Ports"), &q, &nq, NULL) < 0)
      continue;
    *out = xrealloc(*out, (*n + nq + 1) * sizeof **out);
    if (nq)
      memcpy(*out + *n, q, nq * sizeof *q);
    *n += nq;
    free(q);
  }
}

/* Ports with PublishedPort 0 get a free one of the ephemeral range. */
static int choose_ports(struct overlay *ov, json_t *ports, sh_err *err) {
  struct ov_port *used = NULL;
  size_t n = 0;
  held_ports(ov, &used, &n);
  size_t i;
  json_t *p;
  int rc = 0;
  json_array_foreach(ports, i, p) {
    if (jx_int(p, "PublishedPort", 0) != 0)
      continue;
    int proto = strcmp(jx_str(p, "Protocol", "tcp"), "udp") == 0 ? 17 : 6;
    uint16_t port = ov_ephemeral_port(proto, used, n);
    if (!port) {
      rc = sh_error(err, 503, "no free port in the ephemeral range");
      break;
    }
    json_object_set_new(p, "PublishedPort", json_integer(port));
    used = xrealloc(used, (n + 1) * sizeof *used);
    used[n++] = (struct ov_port){proto, 0, port};
  }
  free(used);
  return rc;
}

/* A standalone container on docker0 (see overlay_task.bridge). */
static int attach_bridge_locked(struct overlay *ov,
                                const struct overlay_task *task,
                                const char *path, sh_err *err) {
  const char *id = task->task_id;
  if (json_array_size(task->attachments))
    return sh_error(err, 400, "a bridge endpoint has no attachments");
  struct lnet l;
  if (lnet_get(ov, task->net_id, &l, err) < 0)
    return -1;
  cleanup_json json_t *ports =
      task->ports ? json_deep_copy(task->ports) : json_array();
  cleanup_free struct ov_port *pp = NULL;
  size_t np = 0;
  if (choose_ports(ov, ports, err) < 0 ||
      ov_parse_ports(ports, &pp, &np, err) < 0 ||
      port_conflict(ov, pp, np, err) < 0)
    return -1;
  /* dockerd gives the lowest free address. */
  uint32_t ip;
  if (lnet_addr(ov, &l, task->ip, &ip, err) < 0)
    return -1;
  cleanup_fd int tfd = -1;
  if (fresh_netns(path, &tfd, err) < 0)
    return -1;
  char b[20];
  json_t *t =
      json_pack("{s:[],s:O,s:i,s:b,s:s}", "Attachments", "Ports", ports,
                "VxlanPort", 4789, "Bridge", 1, "GwIP", ipam_ip_str(ip, b));
  if (*l.id)
    json_object_set_new(t, "Net", json_string(l.id));
  /* Recorded first, so that a failure below undoes it all (detach). */
  json_object_set_new(ov->tasks, id, t);
  struct netdev *tnd = NULL;
  if (netdev_open(tfd, &tnd, err) < 0)
    return -1;
  int rc = -1;
  char host[16], peer[16];
  ov_br_names(id, host, peer);
  /* An internal network gives no way out: no default route. */
  if (link_task_iface(ov->node, host, peer, OV_GW_MTU, l.ifname, tfd, tnd,
                      "eth0", ip, l.subnet.len, err) < 0 ||
      (!l.internal &&
       netdev_route_default(tnd, ipam_ip_str(l.gw, b), err) < 0) ||
      netdev_set_up(tnd, "lo", err) < 0) {
    sh_err_wrap(err, "%s", l.ifname);
    goto out;
  }
  if ((np && apply_lnet_nat(ov, &l, err) < 0) || save_state(ov, err) < 0)
    goto out;
  rc = 0;
out:
  netdev_close(tnd);
  return rc;
}

/* The endpoint on net ("" docker0) of a container's bridge endpoints. */
static json_t *bridge_ep(struct overlay *ov, const char *id, const json_t *t,
                         const char *net) {
  struct lnet l;
  uint32_t ip = 0;
  const json_t *ports = NULL;
  if (strcmp(bridge_net(t), net) == 0) {
    ip = task_gw_ip(t);
    ports = json_object_get(t, "Ports");
  } else {
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(t, "More"), i, m) {
      if (strcmp(jx_str(m, "Net", ""), net) == 0 &&
          ipam_parse_ip(jx_str(m, "IP", ""), &ip, NULL) < 0)
        ip = 0;
    }
  }
  if (!ip || lnet_get(ov, net, &l, NULL) < 0)
    return NULL;
  cleanup_json json_t *ep =
      endpoint(id, *net ? l.ifname : OV_DEFAULT_BRIDGE, ip, l.subnet.len);
  char b[20], g[20];
  json_t *out =
      json_pack("{s:s,s:i,s:s,s:O,s:O,s:s}", "IPAddress", ipam_ip_str(ip, b),
                "IPPrefixLen", (int)l.subnet.len, "Gateway",
                l.internal && *net ? "" : ipam_ip_str(l.gw, g), "MacAddress",
                json_object_get(ep, "MacAddress"), "EndpointID",
                json_object_get(ep, "EndpointID"), "NetworkID", net);
  json_object_set_new(out, "Ports",
                      ports ? json_deep_copy(ports) : json_array());
  return out;
}

json_t *overlay_bridge_endpoint(struct overlay *ov, const char *id,
                                const char *net_id) {
  int nice = ov_lock(ov);
  json_t *t = json_object_get(ov->tasks, id);
  json_t *out = t && is_bridge(t)
                    ? bridge_ep(ov, id, t, net_id ? net_id : bridge_net(t))
                    : NULL;
  ov_unlock(ov, nice);
  return out;
}

int overlay_connect(struct overlay *ov, const char *id, const char *net_id,
                    const char *ip_want, sh_err *err) {
  int nice = ov_lock(ov);
  int rc = -1;
  json_t *t = json_object_get(ov->tasks, id);
  struct netdev *tnd = NULL;
  cleanup_fd int tfd = -1;
  cleanup_free char *path = task_path(ov, id);
  struct lnet l;
  if (!t || !is_bridge(t)) {
    sh_error(err, 409, "container %s has no bridge endpoint to add to", id);
    goto out;
  }
  if (lnet_get(ov, net_id, &l, err) < 0)
    goto out;
  json_t *more = json_object_get(t, "More");
  if (!more) {
    more = json_array();
    json_object_set_new(t, "More", more);
  }
  /* The lowest free ethN and link slot. */
  unsigned eth = 1, slot = 0;
  for (bool clash = true; clash;) {
    clash = false;
    size_t i;
    json_t *m;
    json_array_foreach(more, i, m) {
      char want[8], link[16];
      snprintf(want, sizeof want, "eth%u", eth);
      ov_extra_names(id, slot, link);
      if (!strcmp(jx_str(m, "Net", ""), l.id)) {
        sh_error(err, 409, "already connected");
        goto out;
      }
      if (!strcmp(jx_str(m, "If", ""), want)) {
        eth++;
        clash = true;
      }
      if (!strcmp(jx_str(m, "Link", ""), link)) {
        slot++;
        clash = true;
      }
    }
  }
  if (json_array_size(more) >= MAX_ATTACH) {
    sh_error(err, 400, "a container can join %d networks at most",
             MAX_ATTACH + 1);
    goto out;
  }
  uint32_t ip;
  if (lnet_addr(ov, &l, ip_want, &ip, err) < 0)
    goto out;
  if ((tfd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
    sh_errno(err, errno, "open %s", path);
    goto out;
  }
  if (netdev_open(tfd, &tnd, err) < 0)
    goto out;
  char host[16], ifname[8], b[20];
  ov_extra_names(id, slot, host);
  snprintf(ifname, sizeof ifname, "eth%u", eth);
  if (link_task_iface(ov->node, host, host, OV_GW_MTU, l.ifname, tfd, tnd,
                      ifname, ip, l.subnet.len, err) < 0) {
    if (netdev_exists(ov->node, host))
      netdev_del(ov->node, host, NULL);
    sh_err_wrap(err, "%s", l.ifname);
    goto out;
  }
  json_array_append_new(more, json_pack("{s:s,s:s,s:s,s:s}", "Net", l.id, "IP",
                                        ipam_ip_str(ip, b), "If", ifname,
                                        "Link", host));
  rc = save_state(ov, err);
out:
  netdev_close(tnd);
  ov_unlock(ov, nice);
  return rc;
}

int overlay_disconnect(struct overlay *ov, const char *id, const char *net_id,
                       sh_err *err) {
  int nice = ov_lock(ov);
  int rc = 0;
  json_t *t = json_object_get(ov->tasks, id);
  json_t *more = json_object_get(t, "More");
  size_t i;
  json_t *m;
  if (t && is_bridge(t) && strcmp(bridge_net(t), net_id ? net_id : "") == 0) {
    rc = sh_error(err, 501,
                  "disconnecting a running container from its first network "
                  "is not supported by shoal yet");
    goto out;
  }
  json_array_foreach(more, i, m) {
    if (strcmp(jx_str(m, "Net", ""), net_id ? net_id : "") != 0)
      continue;
    const char *link = jx_str(m, "Link", "");
    if (*link && netdev_exists(ov->node, link))
      netdev_del(ov->node, link, NULL);
    json_array_remove(more, i);
    rc = save_state(ov, err);
    break;
  }
out:
  ov_unlock(ov, nice);
  return rc;
}

int overlay_attach(struct overlay *ov, const struct overlay_task *task,
                   char **netns_path, sh_err *err) {
  if (!ov_id_ok(task->task_id))
    return sh_error(err, 400, "invalid task ID");
  if (task->attachments && !json_is_array(task->attachments))
    return sh_error(err, 400, "attachments must be an array");
  int nice = ov_lock(ov);
  char *path = task_path(ov, task->task_id);
  int rc = 0;
  if (json_object_get(ov->tasks, task->task_id) && is_netns(path))
    goto done;
  detach_locked(ov, task->task_id, false);
  rc = task->bridge ? attach_bridge_locked(ov, task, path, err)
                    : attach_locked(ov, task, path, err);
  if (rc < 0)
    detach_locked(ov, task->task_id, false);
  else if (strcmp(task->task_id, OVERLAY_INGRESS_SBOX) == 0)
    rc = apply_mesh(ov, NULL, NULL, err); /* a new sandbox: all of it */
  else if (ov->mesh) {
    /* before its container runs */
    rc = apply_vips(ov, task->task_id, NULL, err);
    if (rc == 0)
      rc = apply_kci(ov, err);
  }
done:
  ov_unlock(ov, nice);
  if (rc < 0)
    free(path);
  else
    *netns_path = path;
  return rc;
}

/* Deletes the task's links from inside its namespace, each veth with its
 * host end, through a socket of this call's own: without the lock, so
 * that the removals of many tasks overlap in the kernel (a deletion waits
 * for RCU grace periods, ~100 ms on a busy node; under the lock 50 tasks
 * waited for each other's). The state still names the task meanwhile, so
 * its addresses are not given away, and a crash here leaves a namespace
 * that detach_locked or the restart's sweep removes. A task's jobs never
 * overlap, so no attach of the same ID can want these names now. */
static void del_task_links(struct overlay *ov, const char *task_id) {
  cleanup_free char *path = task_path(ov, task_id);
  if (!is_netns(path))
    return;
  cleanup_fd int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct netdev *nd = NULL;
  if (fd < 0 || netdev_open(fd, &nd, NULL) < 0)
    return; /* detach_locked deletes them from the host side */
  char **links = NULL;
  size_t n = 0;
  if (netdev_links(nd, &links, &n, NULL) == 0) {
    for (size_t i = 0; i < n; i++)
      if (strcmp(links[i], "lo") != 0)
        netdev_del(nd, links[i], NULL);
    netdev_names_free(links, n);
  }
  netdev_close(nd);
}

int overlay_detach(struct overlay *ov, const char *task_id, sh_err *err) {
  if (!ov_id_ok(task_id))
    return sh_error(err, 400, "invalid task ID");
  del_task_links(ov, task_id);
  int nice = ov_lock(ov);
  detach_locked(ov, task_id, false);
  ov_unlock(ov, nice);
  return 0;
}

int overlay_detach_ended(struct overlay *ov, const char *task_id, sh_err *err) {
  if (!ov_id_ok(task_id))
    return sh_error(err, 400, "invalid task ID");
  int nice = ov_lock(ov);
  detach_locked(ov, task_id, true);
  ov_unlock(ov, nice);
  return 0;
}

/* ---- peers ---- */

static int peers_locked(struct overlay *ov, const char *net_id,
                        const json_t *add, const json_t *del, bool reset,
                        sh_err *err) {
  json_t *set = json_object_get(ov->peers, net_id);
  if (!set || reset) {
    set = json_object();
    json_object_set_new(ov->peers, net_id, set);
  }
  struct ov_net *n = find_net(ov, net_id);
  size_t i;
  const json_t *p;
  json_array_foreach(del, i, p) {
    const char *addr = jx_str(p, "Addr", NULL);
    const char *host = jx_str(p, "Host", NULL);
    uint32_t ip;
    if (!addr || ipam_parse_ip(addr, &ip, err) < 0)
      return sh_error(err, 400, "invalid peer address");
    json_object_del(set, addr);
    if (n) {
      char mac[18];
      ov_mac(ip, mac);
      if (host)
        netdev_fdb_del(n->nd, "vxlan0", mac, host, NULL);
      netdev_neigh_del(n->nd, "vxlan0", addr, NULL);
    }
  }
  json_array_foreach(add, i, p) {
    const char *addr = jx_str(p, "Addr", NULL);
    const char *host = jx_str(p, "Host", NULL);
    uint32_t a, h;
    if (!addr || !host || ipam_parse_ip(addr, &a, err) < 0 ||
        ipam_parse_ip(host, &h, err) < 0)
      return sh_error(err, 400, "invalid peer %s on %s", addr ? addr : "",
                      host ? host : "");
    json_object_set_new(set, addr, json_string(host));
  }
  if (!n)
    return 0;
  if (reset) {
    /* Strays: entries the kernel kept from before (a restart), not in
     * the new set or pointing elsewhere. */
    struct netdev_neigh *e = NULL;
    size_t ne = 0;
    if (netdev_neigh_list(n->nd, "vxlan0", true, &e, &ne, err) < 0)
      return -1;
    for (size_t k = 0; k < ne; k++) {
      bool keep = false;
      const char *addr;
      json_t *host;
      json_object_foreach(set, addr, host) {
        uint32_t ip = 0;
        char mac[18];
        ipam_parse_ip(addr, &ip, NULL);
        ov_mac(ip, mac);
        keep |=
            !strcmp(mac, e[k].mac) && !strcmp(json_string_value(host), e[k].ip);
      }
      if (!keep)
        netdev_fdb_del(n->nd, "vxlan0", e[k].mac, e[k].ip, NULL);
    }
    free(e);
    e = NULL;
    if (netdev_neigh_list(n->nd, "vxlan0", false, &e, &ne, err) < 0)
      return -1;
    for (size_t k = 0; k < ne; k++) {
      uint32_t ip = 0;
      char mac[18];
      ipam_parse_ip(e[k].ip, &ip, NULL);
      ov_mac(ip, mac);
      if (!json_object_get(set, e[k].ip) || strcmp(mac, e[k].mac))
        netdev_neigh_del(n->nd, "vxlan0", e[k].ip, NULL);
    }
    free(e);
    return apply_peers(ov, n, err);
  }
  json_array_foreach(add, i, p) {
    if (apply_peer(n, jx_str(p, "Addr", ""), jx_str(p, "Host", ""), err) < 0)
      return -1;
  }
  return 0;
}

int overlay_peers(struct overlay *ov, const char *net_id, const json_t *add,
                  const json_t *del, bool reset, sh_err *err) {
  if (!ov_id_ok(net_id))
    return sh_error(err, 400, "invalid network ID");
  int nice = ov_lock(ov);
  int rc = peers_locked(ov, net_id, add, del, reset, err);
  ov_unlock(ov, nice);
  return rc;
}

/* ---- gc, leave, open, close ---- */

static bool in_list(const char *const *list, const char *s) {
  for (; list && *list; list++)
    if (!strcmp(*list, s))
      return true;
  return false;
}

static bool is_net_ns_name(struct overlay *ov, const char *name) {
  if (strncmp(name, "1-", 2) != 0)
    return false;
  for (size_t i = 0; i < ov->nnets; i++) {
    char n[16];
    ov_net_ns_name(ov->nets[i].id, n);
    if (!strcmp(n, name))
      return true;
  }
  return false;
}

/* Detaches what is not live (all when live is NULL and all is set). */
static void sweep(struct overlay *ov, const char *const *live, bool all) {
  cleanup_json json_t *ids = json_array();
  const char *k;
  json_t *t;
  json_object_foreach(ov->tasks, k, t) {
    /* docker0's containers and standalone ones on swarm networks are the
     * node's, owned by agent/standalone. */
    bool node_owned = is_bridge(t) || jx_bool(t, "Standalone", false);
    if ((all && !is_bridge(t)) || (!node_owned && !in_list(live, k)))
      json_array_append_new(ids, json_string(k));
  }
  size_t i;
  json_t *v;
  json_array_foreach(ids, i, v) detach_locked(ov, json_string_value(v), false);
  DIR *d = opendir(ov->netns_dir);
  if (!d)
    return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    if (!strncmp(e->d_name, "1-", 2)) {
      if (!is_net_ns_name(ov, e->d_name)) {
        cleanup_free char *p = xasprintf("%s/%s", ov->netns_dir, e->d_name);
        net_ns_destroy(p);
      }
    } else if (ov_id_ok(e->d_name) &&
               !is_bridge(json_object_get(ov->tasks, e->d_name)) &&
               strlen(e->d_name) != 64 && (all || !in_list(live, e->d_name))) {
      detach_locked(ov, e->d_name, false);
    }
  }
  closedir(d);
}

int overlay_gc(struct overlay *ov, const char *const *live_task_ids,
               sh_err *err) {
  int nice = ov_lock(ov);
  sweep(ov, live_task_ids, false);
  int rc = save_state(ov, err);
  ov_unlock(ov, nice);
  return rc;
}

/* The mesh as this node knew it, and what its tables were built from. */
static void forget_mesh(struct overlay *ov) {
  json_t **held[] = {&ov->mesh, &ov->gone, &ov->vip_applied, &ov->kci_applied};
  for (size_t i = 0; i < ARRAY_SIZE(held); i++) {
    json_decref(*held[i]);
    *held[i] = NULL;
  }
  ov->lb_built = false;
}

int overlay_leave(struct overlay *ov, sh_err *err) {
  int nice = ov_lock(ov);
  sweep(ov, NULL, true);
  while (ov->nnets)
    net_remove(ov, &ov->nets[0]);
  int rc = 0;
  if (netdev_exists(ov->node, OV_GW_BRIDGE) &&
      netdev_del(ov->node, OV_GW_BRIDGE, err) < 0)
    rc = -1;
  /* VXLAN devices stranded in the node's namespace by a failed move. */
  char **links = NULL;
  size_t nl = 0;
  if (netdev_links(ov->node, &links, &nl, NULL) == 0) {
    for (size_t i = 0; i < nl; i++)
      if (str_has_prefix(links[i], "vx-") ||
          str_has_prefix(links[i], OV_GW_PORT_PREFIX))
        netdev_del(ov->node, links[i], NULL);
    netdev_names_free(links, nl);
  }
  if (ensure_nft(ov, rc < 0 ? NULL : err) < 0) {
    rc = -1;
  } else {
    /* Either may be absent; nft has no "delete if present" here. */
    nft_apply(ov->nft, "delete table ip shoal", NULL);
    nft_apply(ov->nft, "delete table bridge shoal", NULL);
    nft_apply(ov->nft, "delete table ip shoal_mesh", NULL);
  }
  /* (sweep left only docker0's containers) */
  ov->have_gw = false;
  /* docker0 is the node's, not the swarm's: it stays, as with dockerd. */
  if (ov->have_br || json_object_size(ov->lnets)) {
    if (save_state(ov, rc < 0 ? NULL : err) < 0)
      rc = -1;
  } else if (unlink(ov->state_path) < 0 && errno != ENOENT && rc == 0) {
    rc = sh_errno(err, errno, "remove %s", ov->state_path);
  }
  json_object_clear(ov->peers);
  forget_mesh(ov);
  ov->have_gw = ov->gw_ready = false;
  ov->gw_last = 0;
  ov_unlock(ov, nice);
  return rc;
}

/* After a restart: drop tasks whose namespace is gone, reopen the
 * networks the rest use, remove network namespaces nobody uses, and put
 * docker_gwbridge's rules back as the state says. */
static int reconcile(struct overlay *ov, sh_err *err) {
  cleanup_json json_t *gone = json_array();
  const char *k;
  json_t *t;
  json_object_foreach(ov->tasks, k, t) {
    cleanup_free char *p = task_path(ov, k);
    bool ok = is_netns(p);
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(t, "Attachments"), i, a) {
      const char *nid = att_net_id(a);
      if (ok && !find_net(ov, nid) &&
          (!ov_id_ok(nid) || net_adopt(ov, nid, NULL) < 0))
        ok = false;
    }
    if (!ok)
      json_array_append_new(gone, json_string(k));
  }
  size_t i;
  json_t *v;
  json_array_foreach(gone, i, v) detach_locked(ov, json_string_value(v), false);
  DIR *d = opendir(ov->netns_dir);
  if (d) {
    struct dirent *e;
    while ((e = readdir(d))) {
      if (!strncmp(e->d_name, "1-", 2) && !is_net_ns_name(ov, e->d_name)) {
        cleanup_free char *p = xasprintf("%s/%s", ov->netns_dir, e->d_name);
        net_ns_destroy(p);
      }
    }
    closedir(d);
  }
  if (ov->have_gw && netdev_exists(ov->node, OV_GW_BRIDGE) &&
      ensure_gw(ov, err) < 0)
    return -1;
  /* User bridge networks as their records say (a reboot emptied the
   * kernel's side); one that fails stays listed and is tried again by
   * its next endpoint. */
  json_object_foreach(ov->lnets, k, t) ensure_lnet(ov, k, NULL);
  return save_state(ov, err);
}

int overlay_open(const struct overlay_config *cfg, struct overlay **out,
                 sh_err *err) {
  if (!cfg->exec_root || !cfg->data_root)
    return sh_error(err, 500, "overlay: exec root and data root are needed");
  struct overlay *ov = xcalloc(1, sizeof *ov);
  pthread_mutex_init(&ov->mu, NULL);
  pthread_mutex_init(&ov->lnets_mu, NULL);
  ov->node_fd = -1;
  ov->pools = json_array_size(cfg->pools) ? json_deep_copy(cfg->pools) : NULL;
  ov->tasks = json_object();
  ov->lnets = json_object();
  ov->peers = json_object();
  ov->netns_dir = xasprintf("%s/netns", cfg->exec_root);
  cleanup_free char *dir = xasprintf("%s/network", cfg->data_root);
  ov->state_path = xasprintf("%s/overlay.json", dir);
  if (mkdir_p(ov->netns_dir, 0755, err) < 0 || mkdir_p(dir, 0700, err) < 0)
    goto fail;
  if (cfg->netns_fd >= 0 &&
      (ov->node_fd = fcntl(cfg->netns_fd, F_DUPFD_CLOEXEC, 0)) < 0) {
    sh_errno(err, errno, "dup network namespace");
    goto fail;
  }
  if (netdev_open(ov->node_fd, &ov->node, err) < 0 || load_state(ov, err) < 0)
    goto fail;
  lnets_publish(ov);
  int nice = ov_lock(ov);
  int rc = reconcile(ov, err);
  ov_unlock(ov, nice);
  if (rc < 0)
    goto fail;
  *out = ov;
  return 0;
fail:
  overlay_close(ov);
  return -1;
}

void overlay_close(struct overlay *ov) {
  if (!ov)
    return;
  for (size_t i = 0; i < ov->nnets; i++)
    net_free(&ov->nets[i]);
  free(ov->nets);
  netdev_close(ov->node);
  nft_close(ov->nft);
  if (ov->node_fd >= 0)
    close(ov->node_fd);
  json_decref(ov->tasks);
  json_decref(ov->pools);
  json_decref(ov->lnets);
  json_decref(ov->lnets_pub);
  pthread_mutex_destroy(&ov->lnets_mu);
  json_decref(ov->peers);
  forget_mesh(ov);
  free(ov->netns_dir);
  free(ov->state_path);
  pthread_mutex_destroy(&ov->mu);
  free(ov);
}

/* ---- view ---- */

static json_t *endpoint(const char *task, const char *net, uint32_t ip,
                        unsigned len) {
  unsigned char h[SHA256_DIGEST_LENGTH];
  cleanup_free char *key = xasprintf("%s/%s", task, net);
  SHA256((const unsigned char *)key, strlen(key), h);
  char hex[65], mac[18], b[20], cidr[24];
  for (int i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", h[i]);
  ov_mac(ip, mac);
  snprintf(cidr, sizeof cidr, "%s/%u", ipam_ip_str(ip, b), len);
  return json_pack("{ssssssss}", "EndpointID", hex, "MacAddress", mac,
                   "IPv4Address", cidr, "IPv6Address", "");
}

static json_t *net_obj(json_t *nets, const char *id) {
  json_t *o = json_object_get(nets, id);
  if (!o) {
    o = json_object();
    json_object_set_new(nets, id, o);
  }
  return o;
}

/* {"Subnet", "Gateway"} of a local bridge, {} until it has them. */
static json_t *subnet_view(bool have, struct ipam_prefix p) {
  json_t *g = json_object();
  if (have) {
    char b[20];
    json_object_set_new(g, "Subnet", json_string(ipam_prefix_str(p, b)));
    json_object_set_new(g, "Gateway", json_string(ipam_ip_str(p.addr + 1, b)));
  }
  return g;
}

/* One bridge endpoint in overlay_view's Networks ("bridge" for docker0). */
static void bridge_view_ep(struct overlay *ov, json_t *nets, const char *task,
                           const char *net, const char *addr) {
  uint32_t ip;
  const json_t *r = json_object_get(ov->lnets, net);
  struct ipam_prefix p;
  if (ipam_parse_ip(addr, &ip, NULL) < 0)
    return;
  if (!*net && ov->have_br)
    json_object_set_new(net_obj(nets, "bridge"), task,
                        endpoint(task, OV_DEFAULT_BRIDGE, ip, ov->br.len));
  else if (r && ipam_parse_cidr(jx_str(r, "Subnet", ""), &p, NULL, NULL) == 0)
    json_object_set_new(net_obj(nets, net), task,
                        endpoint(task, jx_str(r, "Bridge", ""), ip, p.len));
}

json_t *overlay_view(struct overlay *ov) {
  int nice = ov_lock(ov);
  json_t *nets = json_object();
  const char *k;
  json_t *t;
  json_object_foreach(ov->tasks, k, t) {
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(t, "Attachments"), i, a) {
      struct ov_attach p;
      if (ov_parse_attach(a, &p, NULL) == 0)
        json_object_set_new(net_obj(nets, p.net_id), k,
                            endpoint(k, p.net_id, p.ip, p.net.len));
    }
    uint32_t gw = task_gw_ip(t);
    if (is_bridge(t)) {
      json_t *m;
      json_array_foreach(json_object_get(t, "More"), i, m) bridge_view_ep(
          ov, nets, k, jx_str(m, "Net", ""), jx_str(m, "IP", ""));
      char b[20];
      if (gw)
        bridge_view_ep(ov, nets, k, bridge_net(t), ipam_ip_str(gw, b));
    } else if (gw && ov->have_gw)
      json_object_set_new(net_obj(nets, OV_GW_BRIDGE), k,
                          endpoint(k, OV_GW_BRIDGE, gw, ov->gw.len));
  }
  json_t *g = subnet_view(ov->have_gw, ov->gw);
  json_t *br = subnet_view(ov->have_br, ov->br);
  ov_unlock(ov, nice);
  return json_pack("{sososo}", "Networks", nets, "GwBridge", g, "Bridge", br);
}

int overlay_ensure_gwbridge(struct overlay *ov, sh_err *err) {
  int nice = ov_lock(ov);
  int rc = ensure_gw(ov, err);
  if (rc == 0)
    rc = save_state(ov, err);
  ov_unlock(ov, nice);
  return rc;
}

/* ---- the routing mesh ---- */

/* The ingress sandbox's first interface is its ingress endpoint. */
#define SBOX_INGRESS_IF "eth0"

static json_int_t now_secs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (json_int_t)ts.tv_sec;
}

/* Every backend address of every port of keyed table m: {addr: true}. */
static json_t *port_backends(const json_t *m) {
  json_t *all = json_object();
  const char *k;
  json_t *e;
  json_object_foreach((json_t *)m, k, e) {
    if (!str_has_prefix(k, "port/"))
      continue;
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(e, "Backends"), i, b) {
      if (json_is_string(b))
        json_object_set_new(all, json_string_value(b), json_true());
    }
  }
  return all;
}

/* The sandbox's tables and the node's, made afresh from ov->mesh. */
static int lb_build(struct overlay *ov, struct nft *lb, uint32_t sbox,
                    sh_err *err) {
  size_t n = 0;
  struct ov_mesh_port *ports =
      xcalloc(json_object_size(ov->mesh) + 1, sizeof *ports);
  cleanup_buf sh_buf b = {0};
  bool bad = false;
  ov_lb_table(&b, SBOX_INGRESS_IF);
  const char *k;
  json_t *e;
  json_object_foreach(ov->mesh, k, e) {
    if (!str_has_prefix(k, "port/"))
      continue;
    /* One bad entry leaves the others working (and is reported). */
    if (ov_mesh_port_parse(e, &ports[n], bad ? NULL : err) < 0) {
      bad = true;
      continue;
    }
    ov_lb_port(&b, NULL, &ports[n++]);
  }
  json_int_t now = now_secs();
  json_object_foreach(ov->gone, k, e) {
    uint32_t ip;
    if (json_integer_value(e) > now && ipam_parse_ip(k, &ip, NULL) == 0)
      ov_lb_gone(&b, ip, (unsigned)(json_integer_value(e) - now));
  }
  cleanup_free char *node = ov_mesh_node_rules(sbox, ports, n);
  ov_mesh_free(ports, n);
  if (nft_apply(lb, b.data, bad ? NULL : err) < 0 ||
      ensure_nft(ov, bad ? NULL : err) < 0 ||
      nft_apply(ov->nft, node, bad ? NULL : err) < 0)
    return -1;
  return bad ? -1 : 0;
}

/* The ports in changed, one chain and one set element at a time; the
 * backends that left every port become gone, those back are not. */
static int lb_update(struct overlay *ov, struct nft *lb, const json_t *old,
                     const json_t *changed, sh_err *err) {
  cleanup_buf sh_buf b = {0};
  cleanup_buf sh_buf node = {0};
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)changed, k, v) {
    if (!str_has_prefix(k, "port/"))
      continue;
    const json_t *was_j = json_object_get(old, k);
    const json_t *now_j = json_object_get(ov->mesh, k);
    struct ov_mesh_port was = {0}, now = {0};
    if ((was_j && ov_mesh_port_parse(was_j, &was, err) < 0) ||
        (now_j && ov_mesh_port_parse(now_j, &now, err) < 0)) {
      free(was.backends);
      return -1;
    }
    ov_lb_port(&b, was_j ? &was : NULL, now_j ? &now : NULL);
    if (!was_j != !now_j)
      ov_mesh_node_port(&node, now_j ? &now : &was, now_j != NULL);
    free(was.backends);
    free(now.backends);
  }
  cleanup_json json_t *before = port_backends(old);
  cleanup_json json_t *after = port_backends(ov->mesh);
  json_int_t now = now_secs();
  if (!ov->gone)
    ov->gone = json_object();
  json_t *back = json_array();
  const char *ip;
  json_object_foreach(before, ip, v) {
    uint32_t a;
    if (!json_object_get(after, ip) && ipam_parse_ip(ip, &a, NULL) == 0) {
      ov_lb_gone(&b, a, OV_MESH_GONE_SECS);
      json_object_set_new(ov->gone, ip, json_integer(now + OV_MESH_GONE_SECS));
    }
  }
  void *tmp;
  json_object_foreach_safe(ov->gone, tmp, ip, v) {
    if (json_object_get(after, ip)) {
      if (json_integer_value(v) > now)
        json_array_append_new(back, json_string(ip));
      json_object_del(ov->gone, ip);
    } else if (json_integer_value(v) <= now) {
      json_object_del(ov->gone, ip); /* the kernel let it go too */
    }
  }
  int rc = 0;
  if ((b.len && nft_apply(lb, b.data, err) < 0) ||
      (node.len &&
       (ensure_nft(ov, err) < 0 || nft_apply(ov->nft, node.data, err) < 0)))
    rc = -1;
  /* One at a time, failures ignored: the element may just have expired
   * (this nft has no "destroy element"). */
  size_t i;
  json_array_foreach(back, i, v) {
    cleanup_free char *del = xasprintf("delete element ip shoal_lb gone { %s }",
                                       json_string_value(v));
    nft_apply(lb, del, NULL);
  }
  json_decref(back);
  return rc;
}

/* Brings the sandbox's and the node's tables to ov->mesh: all of it when
 * they were not built from the previous table (changed NULL, a new
 * sandbox, a failure), else only the changed ports. */
static int apply_mesh(struct overlay *ov, const json_t *old,
                      const json_t *changed, sh_err *err) {
  const json_t *t = json_object_get(ov->tasks, OVERLAY_INGRESS_SBOX);
  cleanup_free char *path = task_path(ov, OVERLAY_INGRESS_SBOX);
  uint32_t sbox = t ? task_gw_ip(t) : 0;
  if (!ov->mesh || !sbox || !is_netns(path)) {
    ov->lb_built = false;
    return 0; /* applied once the sandbox exists */
  }
  cleanup_fd int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return sh_errno(err, errno, "open %s", path);
  struct nft *lb = NULL;
  int rc = -1;
  /* Swarm's IPVS cuts connections idle for 900 s (moby #31208); ours
   * keep conntrack's own 5 days, set here so no host tuning changes it. */
  if (netdev_sysctl_set(fd, "net/ipv4/ip_forward", "1", err) < 0 ||
      netdev_sysctl_set(fd,
                        "net/netfilter/nf_conntrack_tcp_timeout_established",
                        OV_MESH_IDLE_TIMEOUT, err) < 0 ||
      netdev_sysctl_set(ov->node_fd,
                        "net/ipv4/conf/" OV_GW_BRIDGE "/route_localnet", "1",
                        err) < 0 ||
      nft_open(fd, &lb, err) < 0)
    goto out;
  rc = ov->lb_built && changed ? lb_update(ov, lb, old, changed, err)
                               : lb_build(ov, lb, sbox, err);
out:
  ov->lb_built = rc == 0;
  nft_close(lb);
  return rc;
}

static bool task_on_net(const json_t *task, const char *net) {
  size_t i;
  json_t *a;
  json_array_foreach(json_object_get(task, "Attachments"), i, a) {
    if (strcmp(att_net_id(a), net) == 0)
      return true;
  }
  return false;
}

/* A VIP entry {"Network", "Addr", "Backends"}; the address alone (for a
 * VIP that goes) from its key "vip/<net>/<addr>". */
static int vip_parse(const char *key, const json_t *e, struct ov_vip *v) {
  memset(v, 0, sizeof *v);
  const char *addr = e ? jx_str(e, "Addr", "") : strrchr(key, '/') + 1;
  if (ipam_parse_ip(addr, &v->addr, NULL) < 0)
    return -1;
  const json_t *bk = json_object_get(e, "Backends");
  v->backends = xcalloc(json_array_size(bk) + 1, sizeof *v->backends);
  size_t k;
  json_t *b;
  json_array_foreach(bk, k, b) {
    uint32_t ip;
    if (ipam_parse_ip(json_string_value(b) ? json_string_value(b) : "", &ip,
                      NULL) == 0)
      v->backends[v->nbackends++] = ip;
  }
  return 0;
}

/* One task's `ip shoal_vip`: made afresh with every VIP of its networks
 * when it has none yet (or changed is NULL), else only the changed VIPs
 * of its networks are added, rewritten or removed. */
static int vips_task(struct overlay *ov, const char *id, const json_t *task,
                     const json_t *changed, sh_err *err) {
  const json_t *applied = json_object_get(ov->vip_applied, id);
  bool full = !applied || !changed;
  cleanup_json json_t *next = full ? json_object() : json_deep_copy(applied);
  cleanup_buf sh_buf b = {0};
  if (full)
    ov_vip_table(&b);
  const char *k;
  json_t *e;
  json_object_foreach(full ? ov->mesh : (json_t *)changed, k, e) {
    if (!str_has_prefix(k, "vip/"))
      continue;
    const json_t *now = json_object_get(ov->mesh, k);
    bool on = now && task_on_net(task, jx_str(now, "Network", ""));
    bool had = !full && json_object_get(applied, k);
    if (!on && !had)
      continue;
    struct ov_vip v;
    if (vip_parse(k, now, &v) < 0)
      continue;
    ov_vip_chain(&b, &v, had, on);
    free(v.backends);
    if (on)
      json_object_set_new(next, k, json_true());
    else
      json_object_del(next, k);
  }
  if (!b.len)
    return 0;
  cleanup_free char *path = task_path(ov, id);
  cleanup_fd int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct nft *n = NULL;
  sh_err e2 = {0};
  int rc = 0;
  if (fd < 0 || nft_open(fd, &n, &e2) < 0 || nft_apply(n, b.data, &e2) < 0) {
    sh_error(err, 500, "task %s: VIP rules: %s", id,
             fd < 0 ? strerror(errno) : e2.msg);
    json_object_del(ov->vip_applied, id); /* made afresh next time */
    rc = -1;
  } else {
    json_object_set(ov->vip_applied, id, next);
  }
  nft_close(n);
  return rc;
}

/* Brings every task's VIP rules (or only task id's) to ov->mesh; changed
 * NULL: each table made afresh. */
static int apply_vips(struct overlay *ov, const char *only,
                      const json_t *changed, sh_err *err) {
  if (!ov->vip_applied)
    ov->vip_applied = json_object();
  if (changed) {
    bool any = false;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)changed, k, v) any |=
        str_has_prefix(k, "vip/");
    if (!any)
      return 0;
  }
  int rc = 0;
  const char *id;
  json_t *t;
  json_object_foreach(ov->tasks, id, t) {
    if ((only && strcmp(id, only) != 0) ||
        strcmp(id, OVERLAY_INGRESS_SBOX) == 0 ||
        json_array_size(json_object_get(t, "Attachments")) == 0)
      continue;
    if (vips_task(ov, id, t, only ? NULL : changed, rc < 0 ? NULL : err) < 0)
      rc = -1;
  }
  /* Forget tasks that went. */
  void *tmp;
  json_object_foreach_safe(ov->vip_applied, tmp, id, t) {
    if (!json_object_get(ov->tasks, id))
      json_object_del(ov->vip_applied, id);
  }
  return rc;
}

/* The task's interface whose address is in keep (backend addresses of
 * ports that keep the client's address): "ethN", or "" for none. */
static void kci_iface(const json_t *task, const json_t *keep, char out[16]) {
  *out = 0;
  size_t i;
  json_t *a;
  json_array_foreach(json_object_get(task, "Attachments"), i, a) {
    const char *cidr =
        json_string_value(json_array_get(json_object_get(a, "Addresses"), 0));
    char ip[64];
    ipam_cidr_addr(cidr ? cidr : "", ip);
    if (*ip && json_object_get(keep, ip)) {
      snprintf(out, 16, "eth%zu", i);
      return;
    }
  }
}

/* Gives each local task that keeps its clients' addresses (a backend of a
 * KeepClientIP port) its `ip shoal_kci` table and, per ingress sandbox,
 * "fwmark <sandbox> lookup <sandbox>" with a default route via that
 * sandbox; takes them from tasks that no longer keep it. Only what
 * changed is touched. */
#define KCI_RULE_PRIO 100
static int kci_task(struct overlay *ov, const char *id, const char *ifname,
                    const json_t *sboxes, const json_t *old, sh_err *err) {
  cleanup_free char *path = task_path(ov, id);
  cleanup_fd int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return sh_errno(err, errno, "open %s", path);
  struct netdev *nd = NULL;
  struct nft *nft = NULL;
  cleanup_free char *rules = NULL;
  int rc = -1;
  if (netdev_open(fd, &nd, err) < 0 || nft_open(fd, &nft, err) < 0)
    goto out;
  const json_t *was = json_object_get(old, "Sboxes");
  bool same_if = strcmp(jx_str(old, "If", ""), ifname) == 0;
  const char *ip;
  json_t *v;
  /* Sandboxes that left, or every one if the task stops keeping. */
  json_object_foreach((json_t *)was, ip, v) {
    if (*ifname && same_if && json_object_get(sboxes, ip))
      continue;
    uint32_t a;
    if (ipam_parse_ip(ip, &a, NULL) < 0)
      continue;
    if (netdev_rule_fwmark(nd, ov_kci_mark(a), ov_kci_mark(a), KCI_RULE_PRIO,
                           false, err) < 0 ||
        netdev_route_default_in(nd, ip, ov_kci_mark(a), false, err) < 0)
      goto out;
  }
  if (!*ifname) {
    nft_apply(nft, "delete table ip shoal_kci", NULL); /* may be absent */
    rc = 0;
    goto out;
  }
  /* Loose reverse-path filtering: a client's address is routed out of
   * docker_gwbridge, yet its packets come in from the sandbox. */
  char key[64];
  snprintf(key, sizeof key, "net/ipv4/conf/%s/rp_filter", ifname);
  rules = ov_kci_rules(ifname);
  if (netdev_sysctl_set(fd, "net/ipv4/conf/all/rp_filter", "2", err) < 0 ||
      netdev_sysctl_set(fd, key, "2", err) < 0 ||
      nft_apply(nft, rules, err) < 0)
    goto out;
  json_object_foreach((json_t *)sboxes, ip, v) {
    if (same_if && json_object_get(was, ip))
      continue;
    uint32_t a;
    if (ipam_parse_ip(ip, &a, err) < 0 ||
        netdev_route_default_in(nd, ip, ov_kci_mark(a), true, err) < 0 ||
        netdev_rule_fwmark(nd, ov_kci_mark(a), ov_kci_mark(a), KCI_RULE_PRIO,
                           true, err) < 0)
      goto out;
  }
  rc = 0;
out:
  nft_close(nft);
  netdev_close(nd);
  return rc;
}

static int apply_kci(struct overlay *ov, sh_err *err) {
  if (!ov->kci_applied)
    ov->kci_applied = json_object();
  cleanup_json json_t *keep = json_object();
  cleanup_json json_t *sboxes = json_object();
  const char *k;
  json_t *p;
  json_object_foreach(ov->mesh, k, p) {
    if (!str_has_prefix(k, "port/") || !jx_bool(p, "KeepClientIP", false))
      continue;
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(p, "Backends"), i, b) {
      if (json_is_string(b))
        json_object_set_new(keep, json_string_value(b), json_true());
    }
  }
  size_t i;
  json_t *sb;
  json_array_foreach(json_object_get(ov->mesh, "sandboxes"), i, sb) {
    uint32_t a;
    if (json_is_string(sb) &&
        ipam_parse_ip(json_string_value(sb), &a, NULL) == 0)
      json_object_set_new(sboxes, json_string_value(sb), json_true());
  }
  int rc = 0;
  const char *id;
  json_t *t;
  json_object_foreach(ov->tasks, id, t) {
    if (strcmp(id, OVERLAY_INGRESS_SBOX) == 0)
      continue;
    char ifname[16];
    kci_iface(t, keep, ifname);
    const json_t *old = json_object_get(ov->kci_applied, id);
    if (!*ifname && !old)
      continue;
    if (old && strcmp(jx_str(old, "If", ""), ifname) == 0 &&
        json_equal(json_object_get(old, "Sboxes"), sboxes))
      continue;
    sh_err e = {0};
    if (kci_task(ov, id, ifname, sboxes, old, &e) < 0) {
      if (rc == 0)
        sh_error(err, e.status, "task %s: client address rules: %s", id, e.msg);
      rc = -1;
      json_object_del(ov->kci_applied, id); /* redone in full next time */
    } else if (*ifname) {
      json_object_set_new(
          ov->kci_applied, id,
          json_pack("{s:s, s:O}", "If", ifname, "Sboxes", sboxes));
    } else {
      json_object_del(ov->kci_applied, id);
    }
  }
  void *tmp;
  json_object_foreach_safe(ov->kci_applied, tmp, id, t) {
    if (!json_object_get(ov->tasks, id))
      json_object_del(ov->kci_applied, id);
  }
  return rc;
}

int overlay_mesh(struct overlay *ov, bool reset, const json_t *set,
                 const json_t *del, sh_err *err) {
  if ((set && !json_is_object(set)) || (del && !json_is_array(del)))
    return sh_error(err, 400,
                    "mesh changes: set must be an object, del an "
                    "array");
  int nice = ov_lock(ov);
  json_t *old = ov->mesh ? ov->mesh : json_object();
  json_t *next = reset ? json_object() : json_copy(old);
  cleanup_json json_t *changed = json_object();
  const char *k;
  json_t *v;
  if (reset)
    json_object_foreach(old, k, v) json_object_set_new(changed, k, json_true());
  json_object_foreach((json_t *)set, k, v) {
    json_object_set(next, k, v);
    json_object_set_new(changed, k, json_true());
  }
  size_t i;
  json_array_foreach(del, i, v) {
    if (!json_is_string(v))
      continue;
    json_object_del(next, json_string_value(v));
    json_object_set_new(changed, json_string_value(v), json_true());
  }
  ov->mesh = next;
  /* A reset (a new session) makes every table afresh. */
  int rc = apply_mesh(ov, old, reset ? NULL : changed, err);
  if (apply_vips(ov, NULL, reset ? NULL : changed, rc < 0 ? NULL : err) < 0)
    rc = -1;
  bool kci = reset || json_object_get(changed, "sandboxes");
  json_object_foreach(changed, k, v) kci |= str_has_prefix(k, "port/");
  if (kci && apply_kci(ov, rc < 0 ? NULL : err) < 0)
    rc = -1;
  json_decref(old);
  ov_unlock(ov, nice);
  return rc;
}
