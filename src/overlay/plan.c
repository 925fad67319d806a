/* The overlay module's pure parts: no kernel calls here. */
#include "overlay/internal.h"

#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ov_mac(uint32_t ip, char out[18]) {
  snprintf(out, 18, "02:42:%02x:%02x:%02x:%02x", ip >> 24, (ip >> 16) & 255,
           (ip >> 8) & 255, ip & 255);
}

void ov_net_ns_name(const char *net_id, char out[16]) {
  snprintf(out, 16, "1-%.10s", net_id);
}

void ov_vxlan_name(uint32_t vni, const char *net_id, char out[16]) {
  snprintf(out, 16, "vx-%06x-%.5s", vni & 0xffffff, net_id);
}

void ov_veth_names(const char *task_id, unsigned i, char host[16],
                   char peer[16]) {
  snprintf(host, 16, "ve-%.10s-%x", task_id, i & 15);
  snprintf(peer, 16, "vt-%.10s-%x", task_id, i & 15);
}

void ov_gw_names(const char *task_id, char host[16], char peer[16]) {
  snprintf(host, 16, OV_GW_PORT_PREFIX "%.12s", task_id);
  snprintf(peer, 16, "gt-%.12s", task_id);
}

bool ov_id_ok(const char *id) {
  if (!id || !*id || strlen(id) > 64)
    return false;
  /* Task and network IDs; '_' for the node's own ingress_sbox. */
  for (const char *p = id; *p; p++)
    if (!isalnum((unsigned char)*p) && *p != '_')
      return false;
  return true;
}

int ov_parse_attach(const json_t *att, struct ov_attach *out, sh_err *err) {
  memset(out, 0, sizeof *out);
  const json_t *net = jx_get(att, "Network");
  const char *id = jx_str(net, "ID", NULL);
  if (!ov_id_ok(id))
    return sh_error(err, 400, "attachment without a valid network ID");
  snprintf(out->net_id, sizeof out->net_id, "%s", id);
  snprintf(out->name, sizeof out->name, "%s",
           jx_str(net, "Spec.Name", out->net_id));
  out->internal = jx_bool(net, "Spec.Internal", false);
  const json_t *dopts = jx_get(net, "DriverState.Options");
  const char *vni = json_string_value(
      json_object_get(dopts, "com.docker.network.driver.overlay.vxlanid_list"));
  char *end = NULL;
  unsigned long v = vni ? strtoul(vni, &end, 10) : 0;
  if (!vni || end == vni || (*end && *end != ',') || v == 0 || v > 0xffffff)
    return sh_error(err, 400, "network %s has no VXLAN ID", out->name);
  out->vni = (uint32_t)v;
  out->mtu = OV_DEFAULT_MTU;
  const json_t *sopts = jx_get(net, "Spec.DriverConfiguration.Options");
  const char *mtu = json_string_value(
      json_object_get(sopts, "com.docker.network.driver.mtu"));
  if (mtu && *mtu) {
    unsigned long m = strtoul(mtu, &end, 10);
    if (*end || m < 68 || m > 65535)
      return sh_error(err, 400, "network %s: invalid MTU %s", out->name, mtu);
    out->mtu = (unsigned)m;
  }
  const char *addr = json_string_value(json_array_get(
      json_object_get((json_t *)att, "Addresses"), 0)); /* borrowed */
  if (!addr)
    return sh_error(err, 400, "no address on network %s", out->name);
  if (ipam_parse_cidr(addr, &out->net, &out->ip, err) < 0)
    return -1;
  const char *gw = jx_str(json_array_get(jx_get(net, "IPAMOptions.Configs"), 0),
                          "Gateway", NULL);
  if (gw && *gw && ipam_parse_ip(gw, &out->gateway, err) < 0)
    return -1;
  return 0;
}

int ov_parse_ports(const json_t *ports, struct ov_port **out, size_t *n,
                   sh_err *err) {
  *out = NULL;
  *n = 0;
  size_t i;
  const json_t *p;
  json_array_foreach(ports, i, p) {
    if (strcmp(jx_str(p, "PublishMode", "ingress"), "host") != 0)
      continue;
    const char *proto = jx_str(p, "Protocol", "tcp");
    int64_t t = jx_int(p, "TargetPort", 0), pub = jx_int(p, "PublishedPort", 0);
    int pr = !strcmp(proto, "tcp") ? 6 : !strcmp(proto, "udp") ? 17 : 0;
    if (!pr || t < 1 || t > 65535 || pub < 1 || pub > 65535) {
      free(*out);
      *out = NULL;
      *n = 0;
      return sh_error(err, 400,
                      "invalid host-mode port %" PRId64 ":%" PRId64
                      "/%s (host ports need a published port)",
                      pub, t, proto);
    }
    *out = xrealloc(*out, (*n + 1) * sizeof **out);
    (*out)[(*n)++] = (struct ov_port){pr, (uint16_t)t, (uint16_t)pub};
  }
  return 0;
}

int ov_gw_pick(char *const *used, size_t nused, unsigned first,
               const char *name, struct ipam_prefix *out, sh_err *err) {
  for (uint32_t b = first; b <= 31; b++) {
    struct ipam_prefix c = {(172u << 24) | (b << 16), 16};
    bool clash = false;
    for (size_t i = 0; i < nused && !clash; i++) {
      struct ipam_prefix u;
      if (ipam_parse_cidr(used[i], &u, NULL, NULL) == 0)
        clash = ipam_overlaps(c, u);
    }
    if (!clash) {
      *out = c;
      return 0;
    }
  }
  return sh_error(err, 503,
                  "no free subnet for %s in 172.%u.0.0/16 .. 172.31.0.0/16",
                  name, first);
}

static bool clashes(struct ipam_prefix c, char *const *used, size_t nused) {
  for (size_t i = 0; i < nused; i++) {
    struct ipam_prefix u;
    if (ipam_parse_cidr(used[i], &u, NULL, NULL) == 0 && ipam_overlaps(c, u))
      return true;
  }
  return false;
}

int ov_pool_pick(char *const *used, size_t nused, const json_t *pools,
                 struct ipam_prefix *out, sh_err *err) {
  size_t i;
  json_t *p;
  json_array_foreach(pools, i, p) {
    struct ipam_prefix base;
    int64_t size = jx_int(p, "Size", -1);
    if (ipam_parse_cidr(jx_str(p, "Base", ""), &base, NULL, NULL) < 0 ||
        size < base.len || size > 30)
      continue;
    /* At most 65536 candidates a pool: a /8 split in /24s. */
    uint64_t n = 1ull << (size - base.len);
    if (n > 65536)
      n = 65536;
    for (uint64_t k = 0; k < n; k++) {
      struct ipam_prefix c = {
          base.addr + (uint32_t)(k << (32 - (unsigned)size)), (unsigned)size};
      if (!clashes(c, used, nused)) {
        *out = c;
        return 0;
      }
    }
  }
  return sh_error(err, 503,
                  "could not find an available, non-overlapping IPv4 address "
                  "pool among the defaults to assign to the network");
}

uint32_t ov_gw_next(struct ipam_prefix subnet, uint32_t last,
                    const uint32_t *taken, size_t ntaken) {
  uint64_t size = ipam_size(subnet);
  if (size < 4)
    return 0;
  uint32_t first = subnet.addr + 2, lastok = subnet.addr + (uint32_t)size - 2;
  uint32_t ip = last;
  for (uint64_t i = 0; i < size; i++) {
    ip = (ip < first || ip >= lastok) ? first : ip + 1;
    bool used = false;
    for (size_t k = 0; k < ntaken && !used; k++)
      used = taken[k] == ip;
    if (!used)
      return ip;
  }
  return 0;
}

/* A NAT table for a bridge's containers: published ports (hostports map,
 * for traffic to any local address, from outside or from the host) and
 * masquerade of what leaves by another interface. */
static char *dnat_rules(const char *table, const char *bridge,
                        struct ipam_prefix net, const struct ov_dnat *d,
                        size_t n) {
  sh_buf b = {0};
  char ns[20], ip[20];
  ipam_prefix_str(net, ns);
  /* Declaring a table adds what is missing and keeps what is there;
   * flushing then refilling makes the batch the whole truth. */
  buf_printf(&b,
             "table ip %s {\n"
             "  map hostports {\n"
             "    type inet_proto . inet_service : ipv4_addr . inet_service\n"
             "  }\n"
             "  chain prerouting {\n"
             "    type nat hook prerouting priority dstnat; policy accept;\n"
             "  }\n"
             "  chain output {\n"
             "    type nat hook output priority -100; policy accept;\n"
             "  }\n"
             "  chain postrouting {\n"
             "    type nat hook postrouting priority srcnat; policy accept;\n"
             "  }\n"
             "}\n",
             table);
  static const char *const chains[] = {"prerouting", "output", "postrouting"};
  for (size_t i = 0; i < ARRAY_SIZE(chains); i++)
    buf_printf(&b, "flush chain ip %s %s\n", table, chains[i]);
  buf_printf(&b,
             "flush map ip %s hostports\n"
             "add rule ip %s prerouting fib daddr type local dnat ip to "
             "meta l4proto . th dport map @hostports\n"
             "add rule ip %s output fib daddr type local dnat ip to "
             "meta l4proto . th dport map @hostports\n"
             "add rule ip %s postrouting ip saddr %s oifname != \"%s\" "
             "masquerade\n",
             table, table, table, table, ns, bridge);
  for (size_t i = 0; i < n; i++)
    buf_printf(&b, "add element ip %s hostports { %s . %u : %s . %u }\n", table,
               d[i].port.proto == 6 ? "tcp" : "udp", d[i].port.published,
               ipam_ip_str(d[i].ip, ip), d[i].port.target);
  return b.data;
}

char *ov_nat_rules(struct ipam_prefix gw, const struct ov_dnat *d, size_t n) {
  return dnat_rules("shoal", OV_GW_BRIDGE, gw, d, n);
}

char *ov_docker0_rules(struct ipam_prefix br, const struct ov_dnat *d,
                       size_t n) {
  return dnat_rules("shoal_bridge", OV_DEFAULT_BRIDGE, br, d, n);
}

void ov_br_names(const char *id, char host[16], char peer[16]) {
  snprintf(host, 16, "vd-%.12s", id);
  snprintf(peer, 16, "vp-%.12s", id);
}

uint16_t ov_ephemeral_port(int proto, const struct ov_port *used, size_t n) {
  for (unsigned port = 32768; port <= 60999; port++) {
    bool taken = false;
    for (size_t i = 0; i < n && !taken; i++)
      taken = used[i].proto == proto && used[i].published == port;
    if (!taken)
      return (uint16_t)port;
  }
  return 0;
}

const char *ov_bridge_rules(void) {
  /* Port isolation would have to be set on each new port and libnl 3.7
   * cannot set it; this kernel lacks `meta ibrname`. One rule on the
   * gateway ports' name prefix covers every port, present and future. */
  return "table bridge shoal {\n"
         "  chain forward {\n"
         "    type filter hook forward priority 0; policy accept;\n"
         "  }\n"
         "}\n"
         "flush chain bridge shoal forward\n"
         "add rule bridge shoal forward iifname \"" OV_GW_PORT_PREFIX
         "*\" oifname \"" OV_GW_PORT_PREFIX "*\" drop\n";
}

int ov_mesh_port_parse(const json_t *p, struct ov_mesh_port *m, sh_err *err) {
  memset(m, 0, sizeof *m);
  const char *proto = jx_str(p, "Protocol", "tcp");
  int64_t t = jx_int(p, "TargetPort", 0), pub = jx_int(p, "PublishedPort", 0);
  int pr = !strcmp(proto, "tcp") ? 6 : !strcmp(proto, "udp") ? 17 : 0;
  if (!pr || t < 1 || t > 65535 || pub < 1 || pub > 65535)
    return sh_error(err, 400, "invalid routing mesh port %s %lld:%lld", proto,
                    (long long)pub, (long long)t);
  m->proto = pr;
  m->published = (uint16_t)pub;
  m->target = (uint16_t)t;
  m->keep_client_ip = jx_bool(p, "KeepClientIP", false);
  const json_t *b = json_object_get(p, "Backends");
  m->backends = xcalloc(json_array_size(b) + 1, sizeof *m->backends);
  size_t j;
  const json_t *ip;
  json_array_foreach(b, j, ip) {
    uint32_t a;
    if (ipam_parse_ip(json_string_value(ip) ? json_string_value(ip) : "", &a,
                      err) < 0) {
      free(m->backends);
      m->backends = NULL;
      return -1;
    }
    m->backends[m->nbackends++] = a;
  }
  return 0;
}

int ov_mesh_parse(const json_t *ports, struct ov_mesh_port **out, size_t *n,
                  sh_err *err) {
  *out = NULL;
  *n = 0;
  size_t np = json_array_size(ports);
  struct ov_mesh_port *v = xcalloc(np ? np : 1, sizeof *v);
  size_t k = 0;
  size_t i;
  const json_t *p;
  json_array_foreach(ports, i, p) {
    if (ov_mesh_port_parse(p, &v[k], err) < 0) {
      ov_mesh_free(v, k);
      return -1;
    }
    k++;
  }
  *out = v;
  *n = k;
  return 0;
}

void ov_mesh_free(struct ov_mesh_port *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(p[i].backends);
  free(p);
}

static const char *proto_name(int pr) {
  return pr == 6 ? "tcp" : "udp";
}

char *ov_mesh_node_rules(uint32_t sbox, const struct ov_mesh_port *p,
                         size_t n) {
  sh_buf b = {0};
  char ip[20];
  ipam_ip_str(sbox, ip);
  buf_printf(&b,
             "table ip shoal_mesh {\n"
             "  set ports {\n"
             "    type inet_proto . inet_service\n"
             "  }\n"
             "  chain prerouting {\n"
             "    type nat hook prerouting priority dstnat; policy accept;\n"
             "  }\n"
             "  chain output {\n"
             "    type nat hook output priority -100; policy accept;\n"
             "  }\n"
             "  chain postrouting {\n"
             "    type nat hook postrouting priority srcnat; policy accept;\n"
             "  }\n"
             "}\n"
             "flush chain ip shoal_mesh prerouting\n"
             "flush chain ip shoal_mesh output\n"
             "flush chain ip shoal_mesh postrouting\n"
             "flush set ip shoal_mesh ports\n"
             "add rule ip shoal_mesh prerouting fib daddr type local "
             "meta l4proto . th dport @ports dnat ip to %s\n"
             "add rule ip shoal_mesh output fib daddr type local "
             "meta l4proto . th dport @ports dnat ip to %s\n"
             /* the node's own connections (127.0.0.1 too, with
              * route_localnet): answered through the node */
             "add rule ip shoal_mesh postrouting ip daddr %s "
             "fib saddr type local masquerade\n",
             ip, ip, ip);
  for (size_t i = 0; i < n; i++)
    buf_printf(&b, "add element ip shoal_mesh ports { %s . %u }\n",
               proto_name(p[i].proto), p[i].published);
  return b.data;
}

void ov_lb_table(sh_buf *b, const char *ingress_if) {
  /* Declared, deleted and made again in one batch: whatever was there
   * (a restart's leftovers) goes, atomically. */
  buf_printf(b,
             "table ip shoal_lb {}\n"
             "delete table ip shoal_lb\n"
             "table ip shoal_lb {\n"
             "  map ports {\n"
             "    type inet_proto . inet_service : verdict\n"
             "  }\n"
             "  set gone {\n"
             "    type ipv4_addr\n"
             "    flags timeout\n"
             "  }\n"
             "  chain prerouting {\n"
             "    type nat hook prerouting priority dstnat; policy accept;\n"
             "    meta l4proto . th dport vmap @ports\n"
             "  }\n"
             "  chain postrouting {\n"
             "    type nat hook postrouting priority srcnat; policy accept;\n"
             "    oifname \"%s\" meta mark != " OV_MESH_KEEP_MARK
             " masquerade\n"
             "  }\n"
             "  chain forward {\n"
             "    type filter hook forward priority 0; policy accept;\n"
             "    ip daddr @gone meta l4proto tcp reject with tcp reset\n"
             "    ip daddr @gone reject\n"
             "  }\n"
             "}\n",
             ingress_if);
}

/* Only the new connections' rule: nothing runs, no rule (the sandbox
 * itself refuses). */
static void lb_port_rule(sh_buf *b, const struct ov_mesh_port *p) {
  if (p->nbackends == 0)
    return;
  buf_printf(b,
             "add rule ip shoal_lb p_%s_%u meta l4proto %s %sdnat to numgen "
             "inc mod %zu map { ",
             proto_name(p->proto), p->published, proto_name(p->proto),
             p->keep_client_ip ? "meta mark set " OV_MESH_KEEP_MARK " " : "",
             p->nbackends);
  for (size_t k = 0; k < p->nbackends; k++) {
    char ip[20];
    buf_printf(b, "%s%zu : %s", k ? ", " : "", k,
               ipam_ip_str(p->backends[k], ip));
  }
  buf_printf(b, " } : %u\n", p->target);
}

void ov_lb_port(sh_buf *b, const struct ov_mesh_port *was,
                const struct ov_mesh_port *now) {
  const struct ov_mesh_port *p = now ? now : was;
  if (!p)
    return;
  const char *pr = proto_name(p->proto);
  unsigned port = p->published;
  if (!now) {
    buf_printf(b,
               "delete element ip shoal_lb ports { %s . %u }\n"
               "flush chain ip shoal_lb p_%s_%u\n"
               "delete chain ip shoal_lb p_%s_%u\n",
               pr, port, pr, port, pr, port);
    return;
  }
  if (was)
    buf_printf(b, "flush chain ip shoal_lb p_%s_%u\n", pr, port);
  else
    buf_printf(b,
               "add chain ip shoal_lb p_%s_%u\n"
               "add element ip shoal_lb ports { %s . %u : jump p_%s_%u }\n",
               pr, port, pr, port, pr, port);
  lb_port_rule(b, now);
}

void ov_lb_gone(sh_buf *b, uint32_t ip, unsigned secs) {
  char a[20];
  buf_printf(b, "add element ip shoal_lb gone { %s timeout %us }\n",
             ipam_ip_str(ip, a), secs ? secs : 1);
}

void ov_mesh_node_port(sh_buf *b, const struct ov_mesh_port *p, bool add) {
  buf_printf(b, "%s element ip shoal_mesh ports { %s . %u }\n",
             add ? "add" : "delete", proto_name(p->proto), p->published);
}

char *ov_kci_rules(const char *ingress_if) {
  /* @ll,64,32: bytes 2-5 of the source MAC, the sandbox's address. */
  return xasprintf(
      "table ip shoal_kci {\n"
      "  chain prerouting {\n"
      "    type filter hook prerouting priority mangle; policy accept;\n"
      "  }\n"
      "  chain output {\n"
      "    type route hook output priority mangle; policy accept;\n"
      "  }\n"
      "}\n"
      "flush chain ip shoal_kci prerouting\n"
      "flush chain ip shoal_kci output\n"
      "add rule ip shoal_kci prerouting iifname \"%s\" ct state new "
      "ct mark set @ll,64,32\n"
      "add rule ip shoal_kci output ct mark != 0 meta mark set ct mark\n",
      ingress_if);
}

uint32_t ov_kci_mark(uint32_t sbox) {
  return htonl(sbox);
}

void ov_vip_table(sh_buf *b) {
  buf_printf(b, "table ip shoal_vip {}\n"
                "delete table ip shoal_vip\n"
                "table ip shoal_vip {\n"
                "  map vips {\n"
                "    type ipv4_addr : verdict\n"
                "  }\n"
                "  chain output {\n"
                "    type nat hook output priority -100; policy accept;\n"
                "    ip daddr vmap @vips\n"
                "  }\n"
                "}\n");
}

void ov_vip_chain(sh_buf *b, const struct ov_vip *v, bool existed, bool keep) {
  char ip[20];
  ipam_ip_str(v->addr, ip);
  unsigned hex = v->addr;
  if (!keep) {
    buf_printf(b,
               "delete element ip shoal_vip vips { %s }\n"
               "flush chain ip shoal_vip v_%08x\n"
               "delete chain ip shoal_vip v_%08x\n",
               ip, hex, hex);
    return;
  }
  if (existed)
    buf_printf(b, "flush chain ip shoal_vip v_%08x\n", hex);
  else
    buf_printf(b,
               "add chain ip shoal_vip v_%08x\n"
               "add element ip shoal_vip vips { %s : jump v_%08x }\n",
               hex, ip, hex);
  if (v->nbackends == 0)
    return;
  buf_printf(b,
             "add rule ip shoal_vip v_%08x dnat to numgen inc mod %zu map { ",
             hex, v->nbackends);
  for (size_t k = 0; k < v->nbackends; k++)
    buf_printf(b, "%s%zu : %s", k ? ", " : "", k,
               ipam_ip_str(v->backends[k], ip));
  buf_printf(b, " }\n");
}

/* ---- user-defined bridge networks ---- */

void ov_lnet_bridge_name(const char *net_id, char out[16]) {
  snprintf(out, 16, "br-%.12s", net_id);
}

void ov_extra_names(const char *id, unsigned i, char host[16]) {
  snprintf(host, 16, "vc%x-%.11s", i & 0xf, id);
}

/* Every field of a create request must be one shoal applies, or at the
 * value that means "not asked for". */
static int lnet_refuse(const json_t *req, sh_err *err) {
  static const char *const flags[][2] = {
      {"EnableIPv6", "--ipv6"},
      {"Attachable", "--attachable"},
      {"Ingress", "--ingress"},
      {"ConfigOnly", "--config-only"},
  };
  for (size_t i = 0; i < ARRAY_SIZE(flags); i++)
    if (jx_bool(req, flags[i][0], false))
      return sh_error(err, 501,
                      "%s (%s) is not supported by shoal on bridge networks",
                      flags[i][1], flags[i][0]);
  if (*jx_str(req, "ConfigFrom.Network", ""))
    return sh_error(err, 501,
                    "--config-from (ConfigFrom) is not supported by shoal on "
                    "bridge networks");
  const char *scope = jx_str(req, "Scope", "");
  if (*scope && strcmp(scope, "local"))
    return sh_error(err, 501,
                    "--scope %s is not supported by shoal on bridge networks "
                    "(they are local)",
                    scope);
  const char *drv = jx_str(req, "IPAM.Driver", "");
  if (*drv && strcmp(drv, "default"))
    return sh_error(err, 501,
                    "--ipam-driver %s is not supported by shoal (only default)",
                    drv);
  if (json_object_size(jx_get(req, "IPAM.Options")))
    return sh_error(err, 501,
                    "--ipam-opt (IPAM.Options) is not supported by shoal");
  return 0;
}

#define IFNAME_CHARS                                                           \
  "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-."
static int lnet_options(const json_t *opts, struct ov_lnet_spec *out,
                        sh_err *err) {
  const char *k;
  const json_t *v;
  json_object_foreach((json_t *)opts, k, v) {
    const char *s = json_string_value(v);
    if (!s)
      return sh_error(err, 400, "option %s must be a string", k);
    if (strcmp(k, "com.docker.network.bridge.name") == 0) {
      /* An interface name, and a word in shoal's nft scripts: nothing
       * that could end the word. */
      if (!*s || strlen(s) > 15 || strspn(s, IFNAME_CHARS) != strlen(s) ||
          !strcmp(s, ".") || !strcmp(s, ".."))
        return sh_error(err, 400,
                        "invalid bridge name %s: at most 15 letters, digits, "
                        "'_', '-' or '.'",
                        s);
      snprintf(out->bridge, sizeof out->bridge, "%s", s);
    } else if (strcmp(k, "com.docker.network.bridge.enable_ip_masquerade") ==
                   0 &&
               strcmp(s, "true") == 0) {
      /* the default */
    } else {
      return sh_error(
          err, 501, "network option %s=%s is not supported by shoal yet", k, s);
    }
  }
  return 0;
}

int ov_lnet_parse(const json_t *req, struct ov_lnet_spec *out, sh_err *err) {
  memset(out, 0, sizeof *out);
  if (lnet_refuse(req, err) < 0 ||
      lnet_options(json_object_get(req, "Options"), out, err) < 0)
    return -1;
  out->internal = jx_bool(req, "Internal", false);
  const json_t *cfgs = jx_get(req, "IPAM.Config");
  if (json_array_size(cfgs) > 1)
    return sh_error(err, 501,
                    "more than one --subnet is not supported by shoal yet");
  const json_t *c = json_array_get(cfgs, 0);
  const char *subnet = jx_str(c, "Subnet", "");
  const char *range = jx_str(c, "IPRange", "");
  const char *gw = jx_str(c, "Gateway", "");
  if (json_object_size(json_object_get(c, "AuxiliaryAddresses")))
    return sh_error(err, 501,
                    "--aux-address (AuxiliaryAddresses) is not supported by "
                    "shoal yet");
  if (!*subnet) {
    if (*range || *gw)
      return sh_error(err, 400, "%s requires --subnet",
                      *range ? "--ip-range" : "--gateway");
    return 0;
  }
  uint32_t host;
  if (ipam_parse_cidr(subnet, &out->subnet, &host, err) < 0)
    return -1;
  if (strchr(subnet, ':'))
    return sh_error(err, 501, "IPv6 subnets are not supported by shoal yet");
  char b[20];
  if (host != out->subnet.addr)
    return sh_error(err, 400, "invalid subnet %s : it should be %s", subnet,
                    ipam_prefix_str(out->subnet, b));
  if (out->subnet.len > 30)
    return sh_error(err, 400, "invalid subnet %s : too small for a network",
                    subnet);
  out->have_subnet = true;
  if (*range) {
    uint32_t rh;
    if (ipam_parse_cidr(range, &out->range, &rh, err) < 0)
      return -1;
    if (out->range.len < out->subnet.len ||
        !ipam_contains(out->subnet, out->range.addr))
      return sh_error(err, 400,
                      "invalid ip-range %s: it should be within subnet %s",
                      range, subnet);
    out->have_range = true;
  }
  if (*gw) {
    if (ipam_parse_ip(gw, &out->gateway, err) < 0)
      return -1;
    if (!ipam_contains(out->subnet, out->gateway))
      return sh_error(err, 400,
                      "invalid gateway %s: it should be within subnet %s", gw,
                      subnet);
  }
  return 0;
}

int ov_lnet_pick(char *const *used, size_t nused, const json_t *pools,
                 struct ipam_prefix *out, sh_err *err) {
  if (json_array_size(pools))
    return ov_pool_pick(used, nused, pools, out, err);
  if (ov_gw_pick(used, nused, 17, "a bridge network", out, NULL) == 0)
    return 0;
  cleanup_json json_t *p192 =
      json_pack("[{s:s,s:i}]", "Base", "192.168.0.0/16", "Size", 20);
  return ov_pool_pick(used, nused, p192, out, err);
}

char *ov_isolation_rules(const char *const *bridges, const bool *internal,
                         size_t n) {
  sh_buf b = {0};
  buf_printf(&b, "table ip shoal_isolation {\n"
                 "  chain forward {\n"
                 "    type filter hook forward priority -1; policy accept;\n"
                 "  }\n"
                 "}\n"
                 "flush chain ip shoal_isolation forward\n");
  for (size_t i = 0; i < n; i++) {
    if (internal[i]) {
      buf_printf(&b,
                 "add rule ip shoal_isolation forward iifname \"%s\" oifname "
                 "!= \"%s\" drop\n"
                 "add rule ip shoal_isolation forward oifname \"%s\" iifname "
                 "!= \"%s\" drop\n",
                 bridges[i], bridges[i], bridges[i], bridges[i]);
      continue;
    }
    sh_buf others = {0};
    for (size_t j = 0; j < n; j++)
      if (j != i)
        buf_printf(&others, "%s\"%s\"", others.len ? ", " : "", bridges[j]);
    if (others.len)
      buf_printf(&b,
                 "add rule ip shoal_isolation forward iifname \"%s\" oifname "
                 "{ %s } drop\n",
                 bridges[i], others.data);
    free(others.data);
  }
  return b.data;
}

uint32_t ov_lnet_next(struct ipam_prefix subnet,
                      const struct ipam_prefix *range, uint32_t gateway,
                      const uint32_t *taken, size_t ntaken) {
  struct ipam_prefix r = range ? *range : subnet;
  uint32_t first = subnet.addr,
           last = subnet.addr + (uint32_t)(ipam_size(subnet) - 1);
  uint64_t size = ipam_size(r);
  for (uint64_t k = 0; k < size; k++) {
    uint32_t ip = r.addr + (uint32_t)k;
    if (ip == first || ip == last || ip == gateway)
      continue;
    bool used = false;
    for (size_t i = 0; i < ntaken && !used; i++)
      used = taken[i] == ip;
    if (!used)
      return ip;
  }
  return 0;
}

char *ov_lnet_rules(const char *net_id, const char *bridge,
                    struct ipam_prefix net, const struct ov_dnat *d, size_t n) {
  char table[32];
  snprintf(table, sizeof table, "shoal_br_%.12s", net_id);
  return dnat_rules(table, bridge, net, d, n);
}
