/* The overlay data plane against the real kernel, each test in a network
 * namespace of its own (NETNS_SANDBOX): "nodes" are namespaces joined by
 * a veth underlay, each with its own overlay instance; what is checked is
 * what a user sees: datagrams and connections that arrive or do not,
 * interfaces, addresses, rules, files. */
#include "test.h"

#include "netns.h"

#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "netdev/netdev.h"
#include "nft/nft.h"
#include "overlay/internal.h"
#include "overlay/overlay.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <ftw.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

/* ---- pure parts ---- */

TEST(overlay_names_macs_and_rules) {
  char b[64], h[16], p[16];
  ov_mac(0x0a000103, b);
  CHECK_STR_EQ(b, "02:42:0a:00:01:03");
  ov_mac(0xac120002, b);
  CHECK_STR_EQ(b, "02:42:ac:12:00:02");
  ov_net_ns_name("abcdefghijklmnopqrstuvwxy", h);
  CHECK_STR_EQ(h, "1-abcdefghij");
  ov_vxlan_name(4097, "abcdefghijklmnopqrstuvwxy", h);
  CHECK_STR_EQ(h, "vx-001001-abcde");
  ov_veth_names("t0123456789abcdefghijklmn", 1, h, p);
  CHECK_STR_EQ(h, "ve-t012345678-1");
  CHECK_STR_EQ(p, "vt-t012345678-1");
  ov_gw_names("t0123456789abcdefghijklmn", h, p);
  CHECK_STR_EQ(h, "gw-t0123456789a");
  CHECK_INT_EQ(strlen(h), 15);
  CHECK(ov_id_ok("abc123"));
  CHECK(!ov_id_ok("../etc"));
  CHECK(!ov_id_ok("1-abc"));
  CHECK(!ov_id_ok(""));

  struct ov_dnat d[] = {{{6, 80, 8080}, 0xac120002},
                        {{17, 53, 5353}, 0xac120003}};
  struct ipam_prefix gw = {0xac120000, 16};
  cleanup_free char *r = ov_nat_rules(gw, d, 2);
  CHECK(strstr(r, "add rule ip shoal postrouting ip saddr 172.18.0.0/16 "
                  "oifname != \"docker_gwbridge\" masquerade\n") != NULL);
  CHECK(strstr(r, "fib daddr type local dnat ip to meta l4proto . th dport "
                  "map @hostports") != NULL);
  CHECK(strstr(r, "{ tcp . 8080 : 172.18.0.2 . 80 }") != NULL);
  CHECK(strstr(r, "{ udp . 5353 : 172.18.0.3 . 53 }") != NULL);
  CHECK(strstr(ov_bridge_rules(), "iifname \"gw-*\" oifname \"gw-*\" drop"));
}

/* A parsed port (the fixtures are valid: a failure aborts the test). */
static struct ov_mesh_port port_of(const char *js) {
  json_t *j = json_loads(js, 0, NULL);
  struct ov_mesh_port p;
  if (ov_mesh_port_parse(j, &p, NULL) < 0)
    abort();
  json_decref(j);
  return p;
}

TEST(overlay_mesh_rules_change_one_port_at_a_time) {
  NETNS_SANDBOX(dir);
  struct nft *n = NULL;
  sh_err err = {0};
  CHECK_INT_EQ(nft_open(-1, &n, &err), 0);
  struct ov_mesh_port two =
      port_of("{\"Protocol\":\"tcp\",\"PublishedPort\":8080,\"TargetPort\":80,"
              "\"Backends\":[\"10.255.0.5\",\"10.255.0.6\"]}");
  struct ov_mesh_port one =
      port_of("{\"Protocol\":\"tcp\",\"PublishedPort\":8080,\"TargetPort\":80,"
              "\"KeepClientIP\":true,\"Backends\":[\"10.255.0.6\"]}");
  struct ov_mesh_port udp =
      port_of("{\"Protocol\":\"udp\",\"PublishedPort\":5353,\"TargetPort\":53,"
              "\"Backends\":[]}");
  /* Made afresh: the table, two ports, a backend refused for a while. */
  sh_buf b = {0};
  ov_lb_table(&b, "eth0");
  ov_lb_port(&b, NULL, &two);
  ov_lb_port(&b, NULL, &udp);
  ov_lb_gone(&b, 0x0aff0009, 120);
  CHECK_INT_EQ(nft_apply(n, b.data, &err), 0);
  buf_free(&b);
  char *out = NULL;
  CHECK_INT_EQ(nft_query(n, "list table ip shoal_lb", &out, &err), 0);
  CHECK(strstr(out, "tcp . 8080 : jump p_tcp_8080") != NULL);
  CHECK(strstr(out, "udp . 5353 : jump p_udp_5353") != NULL);
  CHECK(strstr(out, "meta l4proto tcp dnat to numgen inc mod 2 map { 0 : "
                    "10.255.0.5, 1 : 10.255.0.6 }:80") != NULL);
  CHECK(strstr(out, "oifname \"eth0\" meta mark != 0x006b6369 masquerade") !=
        NULL);
  CHECK(strstr(out, "ip daddr @gone reject with tcp reset") != NULL);
  CHECK(strstr(out, "10.255.0.9 timeout 2m") != NULL);
  free(out);
  /* One port changes (a backend left, the label came): only its chain;
   * the other goes. Applied on top, as a transaction each. */
  ov_lb_port(&b, &two, &one);
  CHECK(strstr(b.data, "flush chain ip shoal_lb p_tcp_8080\n") != NULL);
  CHECK(strstr(b.data, "5353") == NULL);
  ov_lb_port(&b, &udp, NULL);
  CHECK_INT_EQ(nft_apply(n, b.data, &err), 0);
  buf_free(&b);
  CHECK_INT_EQ(nft_query(n, "list table ip shoal_lb", &out, &err), 0);
  CHECK(strstr(out, "meta l4proto tcp meta mark set 0x006b6369 dnat to numgen "
                    "inc mod 1 map { 0 : 10.255.0.6 }:80") != NULL);
  CHECK(strstr(out, "10.255.0.5") == NULL);
  CHECK(strstr(out, "5353") == NULL);
  free(out);
  /* The node's table: every published port to the sandbox; one port at
   * a time after. */
  cleanup_free char *node = ov_mesh_node_rules(0xac120002, &two, 1);
  CHECK(strstr(node, "dnat ip to 172.18.0.2") != NULL);
  CHECK(strstr(node, "add element ip shoal_mesh ports { tcp . 8080 }") != NULL);
  ov_mesh_node_port(&b, &udp, true);
  CHECK_STR_EQ(b.data, "add element ip shoal_mesh ports { udp . 5353 }\n");
  buf_free(&b);
  free(two.backends);
  free(one.backends);
  free(udp.backends);
  nft_close(n);

  cleanup_free char *kci = ov_kci_rules("eth1");
  CHECK(strstr(kci, "iifname \"eth1\" ct state new ct mark set @ll,64,32") !=
        NULL);
  /* The mark is the sandbox address's bytes as the rule loads them. */
  uint32_t m = ov_kci_mark(0x0aff0002);
  CHECK(memcmp(&m, "\x0a\xff\x00\x02", 4) == 0);
  json_t *bad = json_loads("{\"Protocol\":\"sctp\",\"PublishedPort\":1,"
                           "\"TargetPort\":1}",
                           0, NULL);
  struct ov_mesh_port p;
  CHECK_INT_EQ(ov_mesh_port_parse(bad, &p, &err), -1);
  CHECK_INT_EQ(err.status, 400);
  json_decref(bad);
}

TEST(overlay_vip_rules_change_one_vip_at_a_time) {
  NETNS_SANDBOX(dir);
  struct nft *n = NULL;
  sh_err err = {0};
  CHECK_INT_EQ(nft_open(-1, &n, &err), 0);
  uint32_t b2[2] = {0x0a000105, 0x0a000106};
  struct ov_vip v1 = {0x0a000102, b2, 2}, v2 = {0x0a000103, NULL, 0};
  sh_buf b = {0};
  ov_vip_table(&b);
  ov_vip_chain(&b, &v1, false, true);
  ov_vip_chain(&b, &v2, false, true);
  CHECK_INT_EQ(nft_apply(n, b.data, &err), 0);
  buf_free(&b);
  char *out = NULL;
  CHECK_INT_EQ(nft_query(n, "list table ip shoal_vip", &out, &err), 0);
  CHECK(strstr(out, "ip daddr vmap @vips") != NULL);
  CHECK(strstr(out, "10.0.1.2 : jump v_0a000102") != NULL);
  CHECK(strstr(out, "dnat to numgen inc mod 2 map { 0 : 10.0.1.5, 1 : "
                    "10.0.1.6 }") != NULL);
  free(out);
  /* v2 gets a backend, v1 goes: nothing else is rewritten. */
  uint32_t b1[1] = {0x0a000107};
  v2.backends = b1;
  v2.nbackends = 1;
  ov_vip_chain(&b, &v2, true, true);
  ov_vip_chain(&b, &v1, true, false);
  CHECK(strstr(b.data, "ov_vip_table") == NULL);
  CHECK_INT_EQ(nft_apply(n, b.data, &err), 0);
  buf_free(&b);
  CHECK_INT_EQ(nft_query(n, "list table ip shoal_vip", &out, &err), 0);
  CHECK(strstr(out, "v_0a000102") == NULL);
  CHECK(strstr(out, "dnat to numgen inc mod 1 map { 0 : 10.0.1.7 }") != NULL);
  free(out);
  nft_close(n);
}

TEST(overlay_gateway_subnet_and_addresses) {
  struct ipam_prefix g;
  sh_err err = {0};
  char *none[] = {NULL};
  CHECK_INT_EQ(ov_gw_pick(none, 0, 18, "docker_gwbridge", &g, &err), 0);
  CHECK_INT_EQ(g.addr, 0xac120000);
  CHECK_INT_EQ(g.len, 16);
  char *used[] = {"10.0.0.0/8", "172.18.5.0/24", "172.16.0.0/15",
                  "172.19.0.0/16"};
  CHECK_INT_EQ(ov_gw_pick(used, 4, 18, "docker_gwbridge", &g, &err), 0);
  CHECK_INT_EQ(g.addr, 0xac140000); /* 172.20.0.0/16 */
  char *all[] = {"172.16.0.0/12"};
  CHECK(ov_gw_pick(all, 1, 18, "docker_gwbridge", &g, &err) < 0);
  CHECK_INT_EQ(err.status, 503);
  CHECK_STR_EQ(err.msg, "no free subnet for docker_gwbridge in 172.18.0.0/16 "
                        ".. 172.31.0.0/16");
  /* docker0 takes 172.17 first, as on a Docker host. */
  CHECK_INT_EQ(ov_gw_pick(none, 0, 17, "docker0", &g, &err), 0);
  CHECK_INT_EQ(g.addr, 0xac110000);
  cleanup_free char *d0 = ov_docker0_rules(g, NULL, 0);
  CHECK(strstr(d0, "ip saddr 172.17.0.0/16 oifname != \"docker0\" "
                   "masquerade") != NULL);

  /* Next-fit: after .2 comes .3 even when .2 is free again; skips taken
   * ones; wraps before the broadcast address. */
  struct ipam_prefix s = {0xac120000, 16};
  CHECK_INT_EQ(ov_gw_next(s, 0, NULL, 0), 0xac120002);
  CHECK_INT_EQ(ov_gw_next(s, 0xac120002, NULL, 0), 0xac120003);
  uint32_t taken[] = {0xac120003, 0xac120004};
  CHECK_INT_EQ(ov_gw_next(s, 0xac120002, taken, 2), 0xac120005);
  CHECK_INT_EQ(ov_gw_next(s, 0xac12fffe, NULL, 0), 0xac120002);
  struct ipam_prefix tiny = {0xc0a80000, 30}; /* .2 only */
  uint32_t t2[] = {0xc0a80002};
  CHECK_INT_EQ(ov_gw_next(tiny, 0, t2, 1), 0);
}

static json_t *net_json(const char *id, unsigned vni, const char *subnet,
                        const char *gw, bool internal, const char *mtu) {
  char v[16];
  snprintf(v, sizeof v, "%u", vni);
  json_t *opts = json_object();
  if (mtu)
    json_object_set_new(opts, "com.docker.network.driver.mtu",
                        json_string(mtu));
  return json_pack(
      "{ss s{ss so s{ss so} sb sb} s{ss s{ss}} s{s{ss} s[{ssss}]}}", "ID", id,
      "Spec", "Name", id, "Labels", json_object(), "DriverConfiguration",
      "Name", "overlay", "Options", opts, "Internal", internal, "Ingress", 0,
      "DriverState", "Name", "overlay", "Options",
      "com.docker.network.driver.overlay.vxlanid_list", v, "IPAMOptions",
      "Driver", "Name", "default", "Configs", "Subnet", subnet, "Gateway", gw);
}

/* [{"Network": net, "Addresses": [addr]}], steals net. */
static json_t *atts1(json_t *net, const char *addr) {
  return json_pack("[{sos[s]}]", "Network", net, "Addresses", addr);
}

#define NET1 "n1aaaaaaaaaaaaaaaaaaaaaaa"
#define NET2 "n2bbbbbbbbbbbbbbbbbbbbbbb"
#define NET3 "n3ccccccccccccccccccccccc"

static json_t *net1(void) {
  return net_json(NET1, 4097, "10.0.1.0/24", "10.0.1.1", false, NULL);
}
static json_t *net2(void) {
  return net_json(NET2, 4098, "10.0.2.0/24", "10.0.2.1", false, "1400");
}

TEST(overlay_parses_the_managers_network_objects) {
  sh_err err = {0};
  struct ov_attach a;
  cleanup_json json_t *x = atts1(net2(), "10.0.2.7/24");
  CHECK_INT_EQ(ov_parse_attach(json_array_get(x, 0), &a, &err), 0);
  CHECK_STR_EQ(a.net_id, NET2);
  CHECK_INT_EQ(a.vni, 4098);
  CHECK_INT_EQ(a.mtu, 1400);
  CHECK_INT_EQ(a.ip, 0x0a000207);
  CHECK_INT_EQ(a.net.addr, 0x0a000200);
  CHECK_INT_EQ(a.net.len, 24);
  CHECK_INT_EQ(a.gateway, 0x0a000201);
  CHECK(!a.internal);
  cleanup_json json_t *y = atts1(net1(), "10.0.1.3/24");
  CHECK_INT_EQ(ov_parse_attach(json_array_get(y, 0), &a, &err), 0);
  CHECK_INT_EQ(a.mtu, 1450);
  json_object_del(jx_get(json_array_get(y, 0), "Network.DriverState.Options"),
                  "com.docker.network.driver.overlay.vxlanid_list");
  CHECK(ov_parse_attach(json_array_get(y, 0), &a, &err) < 0);
  CHECK_INT_EQ(err.status, 400);

  cleanup_json json_t *ports = json_pack(
      "[{sssisiss},{sssisiss}]", "Protocol", "udp", "TargetPort", 53,
      "PublishedPort", 5353, "PublishMode", "host", "Protocol", "tcp",
      "TargetPort", 80, "PublishedPort", 30000, "PublishMode", "ingress");
  struct ov_port *p = NULL;
  size_t n = 0;
  CHECK_INT_EQ(ov_parse_ports(ports, &p, &n, &err), 0);
  CHECK_INT_EQ(n, 1);
  CHECK_INT_EQ(p[0].proto, 17);
  CHECK_INT_EQ(p[0].target, 53);
  CHECK_INT_EQ(p[0].published, 5353);
  free(p);
}

/* ---- against the kernel ---- */

/* NETNS_SANDBOX plus a mount namespace of the test's own, so that the
 * namespaces it binds vanish with it even when a check fails midway. */
#define OV_SANDBOX(dir)                                                        \
  NETNS_SANDBOX(dir);                                                          \
  if (unshare(CLONE_NEWNS) < 0 ||                                              \
      mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)                   \
  FAIL_("needs a mount namespace")

static int rm_one(const char *p, const struct stat *st, int flag,
                  struct FTW *f) {
  (void)st, (void)flag, (void)f;
  return remove(p);
}

static void rm_tree(const char *dir) {
  nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

struct node {
  int ns;
  char root[128];
  struct overlay *ov;
};

static int node_open(struct node *n, sh_err *err) {
  char e[192], d[192];
  snprintf(e, sizeof e, "%s/exec", n->root);
  snprintf(d, sizeof d, "%s/data", n->root);
  struct overlay_config c = {e, d, n->ns, NULL};
  return overlay_open(&c, &n->ov, err);
}

static int node_new(const char *dir, const char *name, struct node *n,
                    sh_err *err) {
  char p[192];
  snprintf(n->root, sizeof n->root, "%s/%s", dir, name);
  if (mkdir(n->root, 0755) < 0)
    return sh_errno(err, errno, "mkdir");
  snprintf(p, sizeof p, "%s/ns", n->root);
  if (netns_create(p, &n->ns, err) < 0)
    return -1;
  struct netdev *nd = NULL;
  if (netdev_open(n->ns, &nd, err) < 0)
    return -1;
  int rc = netdev_set_up(nd, "lo", err);
  netdev_close(nd);
  return rc < 0 ? -1 : node_open(n, err);
}

/* Two nodes on an underlay: A 192.168.77.1, B 192.168.77.2. */
static int two_nodes(const char *dir, struct node *a, struct node *b,
                     sh_err *err) {
  if (node_new(dir, "A", a, err) < 0 || node_new(dir, "B", b, err) < 0)
    return -1;
  struct netdev *ha = NULL, *hb = NULL;
  int rc = -1;
  if (netdev_open(a->ns, &ha, err) < 0 || netdev_open(b->ns, &hb, err) < 0 ||
      netdev_veth_add(ha, "ua", "ub", 0, err) < 0 ||
      netdev_move(ha, "ub", b->ns, NULL, err) < 0 ||
      netdev_addr_add(ha, "ua", "192.168.77.1/24", err) < 0 ||
      netdev_addr_add(hb, "ub", "192.168.77.2/24", err) < 0 ||
      netdev_set_up(ha, "ua", err) < 0 || netdev_set_up(hb, "ub", err) < 0)
    goto out;
  rc = 0;
out:
  netdev_close(ha);
  netdev_close(hb);
  return rc;
}

/* Tears a node down: leave, then its own namespace. */
static void node_end(struct node *n) {
  char p[192];
  if (n->ov) {
    overlay_leave(n->ov, NULL);
    overlay_close(n->ov);
  }
  snprintf(p, sizeof p, "%s/ns", n->root);
  netns_remove(p, NULL);
  close(n->ns);
}

static int attach(struct node *n, const char *task, json_t *atts, json_t *ports,
                  int *fd, sh_err *err) {
  struct overlay_task t = {task, atts, ports, 0, false, false, NULL, NULL};
  char *path = NULL;
  int rc = overlay_attach(n->ov, &t, &path, err);
  json_decref(atts);
  json_decref(ports);
  if (rc < 0)
    return -1;
  if (fd)
    *fd = open(path, O_RDONLY | O_CLOEXEC);
  free(path);
  return 0;
}

static int peer(struct node *n, const char *net, const char *addr,
                const char *host, sh_err *err) {
  cleanup_json json_t *add = json_pack("[{ssss}]", "Addr", addr, "Host", host);
  return overlay_peers(n->ov, net, add, NULL, false, err);
}

/* A socket made inside namespace ns. */
static int sock_in(int ns, int type) {
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  setns(ns, CLONE_NEWNET);
  int s = socket(AF_INET, type | SOCK_CLOEXEC, 0);
  setns(self, CLONE_NEWNET);
  close(self);
  return s;
}

static struct sockaddr_in sin_of(const char *ip, int port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, ip, &a.sin_addr);
  return a;
}

static int udp_listen(int ns, int port) {
  int s = sock_in(ns, SOCK_DGRAM);
  struct sockaddr_in a = sin_of("0.0.0.0", port);
  bind(s, (struct sockaddr *)&a, sizeof a);
  struct timeval tv = {.tv_usec = 200000};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return s;
}

/* Sends from namespace `from` to ip:port until rx gets it (new links
 * carry traffic once activated, up to a second), `tries` times 200 ms.
 * 0 and the sender's address in src when it arrived. */
static int udp_reach(int from, const char *ip, int port, int rx, int tries,
                     char src[20]) {
  int tx = sock_in(from, SOCK_DGRAM);
  struct sockaddr_in to = sin_of(ip, port);
  int rc = -1;
  for (int i = 0; i < tries && rc < 0; i++) {
    sendto(tx, "hello", 5, 0, (struct sockaddr *)&to, sizeof to);
    struct sockaddr_in f;
    socklen_t fl = sizeof f;
    char buf[16];
    if (recvfrom(rx, buf, sizeof buf, 0, (struct sockaddr *)&f, &fl) == 5) {
      inet_ntop(AF_INET, &f.sin_addr, src, 20);
      rc = 0;
    }
  }
  close(tx);
  return rc;
}

static bool file_exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0;
}

static int ns_at(struct node *n, const char *name) {
  char p[256];
  snprintf(p, sizeof p, "%s/exec/netns/%s", n->root, name);
  return open(p, O_RDONLY | O_CLOEXEC);
}

static const char *ns_path(struct node *n, const char *name, char *buf,
                           size_t len) {
  snprintf(buf, len, "%s/exec/netns/%s", n->root, name);
  return buf;
}

static bool has_str(char **v, size_t n, const char *s) {
  for (size_t i = 0; i < n; i++)
    if (!strcmp(v[i], s))
      return true;
  return false;
}

TEST(overlay_two_nodes_talk_over_vxlan_and_networks_are_isolated) {
  OV_SANDBOX(dir);
  sh_err err = {0};
  struct node a = {0}, b = {0};
  if (two_nodes(dir, &a, &b, &err) < 0)
    FAIL_("%s", err.msg);
  int ta1, tb1, ta2, tb2;
  if (attach(&a, "ta1", atts1(net1(), "10.0.1.3/24"), NULL, &ta1, &err) < 0 ||
      attach(&b, "tb1", atts1(net1(), "10.0.1.4/24"), NULL, &tb1, &err) < 0 ||
      attach(&a, "ta2", atts1(net2(), "10.0.2.3/24"), NULL, &ta2, &err) < 0 ||
      attach(&b, "tb2", atts1(net2(), "10.0.2.4/24"), NULL, &tb2, &err) < 0)
    FAIL_("%s", err.msg);
  /* Peers for a network come before or after its namespace: B learns
   * of ta1 after, A of tb1 after too, net2 the same. */
  CHECK_INT_EQ(peer(&a, NET1, "10.0.1.4", "192.168.77.2", &err), 0);
  CHECK_INT_EQ(peer(&b, NET1, "10.0.1.3", "192.168.77.1", &err), 0);
  CHECK_INT_EQ(peer(&a, NET2, "10.0.2.4", "192.168.77.2", &err), 0);
  CHECK_INT_EQ(peer(&b, NET2, "10.0.2.3", "192.168.77.1", &err), 0);

  char src[20] = "";
  int rx1 = udp_listen(tb1, 5000), rx2 = udp_listen(tb2, 5000);
  CHECK_INT_EQ(udp_reach(ta1, "10.0.1.4", 5000, rx1, 25, src), 0);
  CHECK_STR_EQ(src, "10.0.1.3");
  CHECK_INT_EQ(udp_reach(ta2, "10.0.2.4", 5000, rx2, 25, src), 0);
  CHECK_STR_EQ(src, "10.0.2.3");
  /* ARP was answered by vxlan0's proxy: the task has no static entry. */
  struct netdev *t = NULL;
  CHECK_INT_EQ(netdev_open(ta1, &t, &err), 0);
  struct netdev_neigh *ne = NULL;
  size_t nn = 9;
  CHECK_INT_EQ(netdev_neigh_list(t, "eth0", false, &ne, &nn, &err), 0);
  CHECK_INT_EQ(nn, 0);
  free(ne);
  char **links = NULL;
  size_t nl = 0;
  CHECK_INT_EQ(netdev_links(t, &links, &nl, &err), 0);
  CHECK_INT_EQ(nl, 3); /* lo, eth0 (net1), eth1 (docker_gwbridge) */
  CHECK(has_str(links, nl, "eth0") && has_str(links, nl, "eth1"));
  netdev_names_free(links, nl);
  netdev_close(t);

  /* Another network's task is out of reach. */
  CHECK(udp_reach(ta1, "10.0.2.4", 5000, rx2, 5, src) < 0);
  CHECK(udp_reach(ta2, "10.0.1.4", 5000, rx1, 5, src) < 0);

  /* The view shows both endpoints of A. */
  cleanup_json json_t *v = overlay_view(a.ov);
  CHECK_STR_EQ(
      jx_str(jx_get(jx_get(v, "Networks"), NET1), "ta1.IPv4Address", NULL),
      "10.0.1.3/24");
  CHECK_STR_EQ(
      jx_str(jx_get(jx_get(v, "Networks"), NET1), "ta1.MacAddress", NULL),
      "02:42:0a:00:01:03");
  CHECK_INT_EQ(
      strlen(jx_str(jx_get(jx_get(v, "Networks"), NET1), "ta1.EndpointID", "")),
      64);

  /* The last task of net2 on A takes net2's namespace with it. */
  char p[256];
  snprintf(p, sizeof p, "%s/exec/netns/1-n2bbbbbbbb", a.root);
  CHECK(file_exists(p));
  CHECK_INT_EQ(overlay_detach(a.ov, "ta2", &err), 0);
  CHECK(!file_exists(p));
  snprintf(p, sizeof p, "%s/exec/netns/ta2", a.root);
  CHECK(!file_exists(p));
  snprintf(p, sizeof p, "%s/exec/netns/1-n1aaaaaaaa", a.root);
  CHECK(file_exists(p));
  /* And net1 still works. */
  CHECK_INT_EQ(udp_reach(ta1, "10.0.1.4", 5000, rx1, 5, src), 0);
  close(rx1);
  close(rx2);
  close(ta1);
  close(tb1);
  close(ta2);
  close(tb2);
  node_end(&a);
  node_end(&b);
  rm_tree(dir);
}

/* A task of which no process is left: its namespace goes at once and the
 * kernel deletes its links (both veth ends) with it; the same ID attaches
 * again at once. */
TEST(overlay_detach_ended_leaves_the_links_to_the_kernel) {
  OV_SANDBOX(dir);
  sh_err err = {0};
  struct node a = {0}, b = {0};
  if (two_nodes(dir, &a, &b, &err) < 0)
    FAIL_("%s", err.msg);
  int te1, te2;
  if (attach(&a, "te1", atts1(net1(), "10.0.1.3/24"), NULL, &te1, &err) < 0 ||
      attach(&a, "te2", atts1(net1(), "10.0.1.5/24"), NULL, &te2, &err) < 0)
    FAIL_("%s", err.msg);
  char vhost[16], gwhost[16], peer_[16], p[256];
  ov_veth_names("te1", 0, vhost, peer_);
  ov_gw_names("te1", gwhost, peer_);
  int netfd = ns_at(&a, "1-n1aaaaaaaa");
  struct netdev *netnd = NULL, *node = NULL;
  CHECK_INT_EQ(netdev_open(netfd, &netnd, &err), 0);
  CHECK_INT_EQ(netdev_open(a.ns, &node, &err), 0);
  CHECK(netdev_exists(netnd, vhost) && netdev_exists(node, gwhost));
  close(te1);
  CHECK_INT_EQ(overlay_detach_ended(a.ov, "te1", &err), 0);
  snprintf(p, sizeof p, "%s/exec/netns/te1", a.root);
  CHECK(!file_exists(p));
  bool gone = false;
  for (int i = 0; i < 250 && !gone; i++) {
    gone = !netdev_exists(netnd, vhost) && !netdev_exists(node, gwhost);
    if (!gone)
      usleep(20000);
  }
  CHECK(gone);
  /* te2 keeps the network; te1 comes back on it. */
  CHECK(file_exists(ns_path(&a, "1-n1aaaaaaaa", p, sizeof p)));
  if (attach(&a, "te1", atts1(net1(), "10.0.1.3/24"), NULL, &te1, &err) < 0)
    FAIL_("%s", err.msg);
  CHECK(netdev_exists(netnd, vhost) && netdev_exists(node, gwhost));
  /* And an ID detached while its namespace is still held (te2's fd)
   * attaches again at once: the stale ends are replaced. */
  CHECK_INT_EQ(overlay_detach_ended(a.ov, "te2", &err), 0);
  if (attach(&a, "te2", atts1(net1(), "10.0.1.5/24"), NULL, NULL, &err) < 0)
    FAIL_("%s", err.msg);
  char rx_src[20] = "";
  int te2b = ns_at(&a, "te2");
  int rx = udp_listen(te2b, 5000);
  CHECK_INT_EQ(udp_reach(te1, "10.0.1.5", 5000, rx, 25, rx_src), 0);
  CHECK_STR_EQ(rx_src, "10.0.1.3");
  close(rx);
  close(te2b);
  netdev_close(netnd);
  netdev_close(node);
  close(netfd);
  close(te1);
  close(te2);
  node_end(&a);
  node_end(&b);
  rm_tree(dir);
}

static int tcp_connect(int from, const char *ip, int port, int lfd) {
  for (int i = 0; i < 25; i++) {
    int s = sock_in(from, SOCK_STREAM | SOCK_NONBLOCK);
    struct sockaddr_in to = sin_of(ip, port);
    connect(s, (struct sockaddr *)&to, sizeof to);
    struct pollfd pf = {s, POLLOUT, 0};
    int ok = poll(&pf, 1, 200) == 1;
    int e = 0;
    socklen_t el = sizeof e;
    getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &el);
    close(s);
    if (ok && e == 0) {
      struct pollfd pl = {lfd, POLLIN, 0};
      if (poll(&pl, 1, 1000) == 1) {
        int c = accept(lfd, NULL, NULL);
        close(c);
        return 0;
      }
    }
    if (!ok || e)
      usleep(100000);
  }
  return -1;
}

TEST(overlay_gwbridge_egress_masquerade_icc_and_host_ports) {
  OV_SANDBOX(dir);
  sh_err err = {0};
  struct node a = {0}, b = {0};
  if (two_nodes(dir, &a, &b, &err) < 0)
    FAIL_("%s", err.msg);
  cleanup_json json_t *ports =
      json_pack("[{sssisiss}]", "Protocol", "tcp", "TargetPort", 80,
                "PublishedPort", 8080, "PublishMode", "host");
  int t1, t2;
  if (attach(&a, "task1", atts1(net1(), "10.0.1.3/24"), json_incref(ports), &t1,
             &err) < 0 ||
      attach(&a, "task2", atts1(net1(), "10.0.1.4/24"), NULL, &t2, &err) < 0)
    FAIL_("%s", err.msg);
  /* The same host port for another task is refused, and leaves nothing. */
  CHECK(attach(&a, "task3", json_array(), json_incref(ports), NULL, &err) < 0);
  CHECK_INT_EQ(err.status, 409);
  char p[256];
  snprintf(p, sizeof p, "%s/exec/netns/task3", a.root);
  CHECK(!file_exists(p));

  cleanup_json json_t *v = overlay_view(a.ov);
  CHECK_STR_EQ(jx_str(v, "GwBridge.Subnet", NULL), "172.18.0.0/16");
  CHECK_STR_EQ(jx_str(v, "GwBridge.Gateway", NULL), "172.18.0.1");
  json_t *gw = jx_get(jx_get(v, "Networks"), "docker_gwbridge");
  CHECK_STR_EQ(jx_str(gw, "task1.IPv4Address", NULL), "172.18.0.2/16");
  CHECK_STR_EQ(jx_str(gw, "task1.MacAddress", NULL), "02:42:ac:12:00:02");
  CHECK_STR_EQ(jx_str(gw, "task2.IPv4Address", NULL), "172.18.0.3/16");

  /* eth1 is on docker_gwbridge's subnet. */
  struct netdev *t = NULL;
  CHECK_INT_EQ(netdev_open(t1, &t, &err), 0);
  char **nets = NULL;
  size_t nn = 0;
  CHECK_INT_EQ(netdev_ipv4_nets(t, &nets, &nn, &err), 0);
  CHECK(has_str(nets, nn, "172.18.0.0/16"));
  CHECK(has_str(nets, nn, "10.0.1.0/24"));
  netdev_names_free(nets, nn);
  netdev_close(t);

  /* Egress: a datagram to node B (which has no route back to 172.18/16)
   * arrives from node A's address: default route, forwarding and
   * masquerade at work. */
  int rxb = udp_listen(b.ns, 6000);
  char src[20] = "";
  CHECK_INT_EQ(udp_reach(t1, "192.168.77.2", 6000, rxb, 25, src), 0);
  CHECK_STR_EQ(src, "192.168.77.1");
  CHECK_INT_EQ(udp_reach(t2, "192.168.77.2", 6000, rxb, 25, src), 0);
  CHECK_STR_EQ(src, "192.168.77.1");
  struct nft *n = NULL;
  CHECK_INT_EQ(nft_open(a.ns, &n, &err), 0);
  char *out = NULL;
  CHECK_INT_EQ(nft_query(n, "list table ip shoal", &out, &err), 0);
  CHECK(strstr(out, "ip saddr 172.18.0.0/16 oifname != \"docker_gwbridge\" "
                    "masquerade") != NULL);
  CHECK(strstr(out, "tcp . 8080 : 172.18.0.2 . 80") != NULL);
  free(out);

  /* No container-to-container traffic through docker_gwbridge. */
  int rx1 = udp_listen(t1, 7000);
  CHECK(udp_reach(t2, "172.18.0.2", 7000, rx1, 5, src) < 0);
  /* (while the overlay path between them works) */
  CHECK_INT_EQ(udp_reach(t2, "10.0.1.3", 7000, rx1, 25, src), 0);
  CHECK_STR_EQ(src, "10.0.1.4");

  /* Host port: node B connects to A's address, port 8080; the task's
   * listener on 80 accepts. */
  int l = sock_in(t1, SOCK_STREAM);
  struct sockaddr_in any = sin_of("0.0.0.0", 80);
  CHECK_INT_EQ(bind(l, (struct sockaddr *)&any, sizeof any), 0);
  CHECK_INT_EQ(listen(l, 8), 0);
  CHECK_INT_EQ(tcp_connect(b.ns, "192.168.77.1", 8080, l), 0);
  /* From node A itself too (the output hook). */
  CHECK_INT_EQ(tcp_connect(a.ns, "192.168.77.1", 8080, l), 0);

  /* Detach removes the port's DNAT. */
  CHECK_INT_EQ(overlay_detach(a.ov, "task1", &err), 0);
  CHECK_INT_EQ(nft_query(n, "list table ip shoal", &out, &err), 0);
  CHECK(strstr(out, "8080") == NULL);
  CHECK(strstr(out, "masquerade") != NULL);
  free(out);
  nft_close(n);
  close(l);
  close(rx1);
  close(rxb);
  close(t1);
  close(t2);
  node_end(&a);
  node_end(&b);
  rm_tree(dir);
}

static int vx_entries(int ns, bool fdb, struct netdev_neigh **e, size_t *n,
                      sh_err *err) {
  struct netdev *nd = NULL;
  if (netdev_open(ns, &nd, err) < 0)
    return -1;
  int rc = netdev_neigh_list(nd, "vxlan0", fdb, e, n, err);
  netdev_close(nd);
  return rc;
}

TEST(overlay_peers_wait_for_the_namespace_and_reset_removes_strays) {
  OV_SANDBOX(dir);
  sh_err err = {0};
  struct node a = {0};
  if (node_new(dir, "A", &a, &err) < 0)
    FAIL_("%s", err.msg);
  /* Known before any task of the network is here. */
  CHECK_INT_EQ(peer(&a, NET1, "10.0.1.9", "192.168.77.9", &err), 0);
  cleanup_json json_t *bad =
      json_pack("[{ssss}]", "Addr", "10.0.1.x", "Host", "192.168.77.9");
  CHECK(overlay_peers(a.ov, NET1, bad, NULL, false, &err) < 0);
  CHECK_INT_EQ(err.status, 400);
  if (attach(&a, "ta1", atts1(net1(), "10.0.1.3/24"), NULL, NULL, &err) < 0)
    FAIL_("%s", err.msg);
  int ns = ns_at(&a, "1-n1aaaaaaaa");
  CHECK(ns >= 0);
  struct netdev_neigh *e = NULL;
  size_t n = 0;
  CHECK_INT_EQ(vx_entries(ns, true, &e, &n, &err), 0);
  CHECK_INT_EQ(n, 1);
  CHECK_STR_EQ(e[0].mac, "02:42:0a:00:01:09");
  CHECK_STR_EQ(e[0].ip, "192.168.77.9");
  free(e);
  CHECK_INT_EQ(vx_entries(ns, false, &e, &n, &err), 0);
  CHECK_INT_EQ(n, 1);
  CHECK_STR_EQ(e[0].ip, "10.0.1.9");
  CHECK_STR_EQ(e[0].mac, "02:42:0a:00:01:09");
  free(e);

  /* Strays, as a previous run would have left them. */
  struct netdev *nd = NULL;
  CHECK_INT_EQ(netdev_open(ns, &nd, &err), 0);
  CHECK_INT_EQ(
      netdev_fdb_add(nd, "vxlan0", "02:42:0a:00:01:63", "192.168.77.99", &err),
      0);
  CHECK_INT_EQ(
      netdev_neigh_add(nd, "vxlan0", "10.0.1.99", "02:42:0a:00:01:63", &err),
      0);
  netdev_close(nd);
  /* Reset: the peer moved to another node, the strays go. */
  cleanup_json json_t *set =
      json_pack("[{ssss}]", "Addr", "10.0.1.9", "Host", "192.168.77.10");
  CHECK_INT_EQ(overlay_peers(a.ov, NET1, set, NULL, true, &err), 0);
  CHECK_INT_EQ(vx_entries(ns, true, &e, &n, &err), 0);
  CHECK_INT_EQ(n, 1);
  CHECK_STR_EQ(e[0].mac, "02:42:0a:00:01:09");
  CHECK_STR_EQ(e[0].ip, "192.168.77.10");
  free(e);
  CHECK_INT_EQ(vx_entries(ns, false, &e, &n, &err), 0);
  CHECK_INT_EQ(n, 1);
  CHECK_STR_EQ(e[0].ip, "10.0.1.9");
  free(e);
  /* Delete. */
  CHECK_INT_EQ(overlay_peers(a.ov, NET1, NULL, set, false, &err), 0);
  CHECK_INT_EQ(vx_entries(ns, true, &e, &n, &err), 0);
  CHECK_INT_EQ(n, 0);
  free(e);
  CHECK_INT_EQ(vx_entries(ns, false, &e, &n, &err), 0);
  CHECK_INT_EQ(n, 0);
  free(e);
  close(ns);
  node_end(&a);
  rm_tree(dir);
}

TEST(overlay_restart_keeps_state_and_gc_removes_the_dead) {
  OV_SANDBOX(dir);
  sh_err err = {0};
  struct node a = {0};
  if (node_new(dir, "A", &a, &err) < 0)
    FAIL_("%s", err.msg);
  cleanup_json json_t *ports =
      json_pack("[{sssisiss}]", "Protocol", "udp", "TargetPort", 53,
                "PublishedPort", 5353, "PublishMode", "host");
  if (attach(&a, "ta1", atts1(net1(), "10.0.1.3/24"), NULL, NULL, &err) < 0 ||
      attach(&a, "ta2", atts1(net1(), "10.0.1.4/24"), json_incref(ports), NULL,
             &err) < 0)
    FAIL_("%s", err.msg);
  cleanup_json json_t *before = overlay_view(a.ov);

  /* A restart: the same view, the same rules. */
  overlay_close(a.ov);
  a.ov = NULL;
  CHECK_INT_EQ(node_open(&a, &err), 0);
  cleanup_json json_t *after = overlay_view(a.ov);
  CHECK(json_equal(before, after));
  struct nft *n = NULL;
  char *out = NULL;
  CHECK_INT_EQ(nft_open(a.ns, &n, &err), 0);
  CHECK_INT_EQ(nft_query(n, "list map ip shoal hostports", &out, &err), 0);
  CHECK(strstr(out, "udp . 5353 : 172.18.0.3 . 53") != NULL);
  free(out);
  /* Attach is idempotent: the same namespace. */
  int before_fd = ns_at(&a, "ta1");
  struct stat s1, s2;
  CHECK(fstat(before_fd, &s1) == 0);
  if (attach(&a, "ta1", atts1(net1(), "10.0.1.3/24"), NULL, NULL, &err) < 0)
    FAIL_("%s", err.msg);
  int again = ns_at(&a, "ta1");
  CHECK(fstat(again, &s2) == 0);
  CHECK(s1.st_ino == s2.st_ino);
  close(before_fd);
  close(again);

  /* A stray task namespace (no state) and a dead task: gc with only ta1
   * alive removes both; net1 stays for ta1. */
  char p[256];
  snprintf(p, sizeof p, "%s/exec/netns/stray1", a.root);
  CHECK_INT_EQ(netns_create(p, NULL, &err), 0);
  const char *live[] = {"ta1", NULL};
  CHECK_INT_EQ(overlay_gc(a.ov, live, &err), 0);
  CHECK(!file_exists(p));
  snprintf(p, sizeof p, "%s/exec/netns/ta2", a.root);
  CHECK(!file_exists(p));
  snprintf(p, sizeof p, "%s/exec/netns/1-n1aaaaaaaa", a.root);
  CHECK(file_exists(p));
  snprintf(p, sizeof p, "%s/data/network/overlay.json", a.root);
  cleanup_free char *st = NULL;
  CHECK_INT_EQ(read_file(p, &st, NULL, &err), 0);
  CHECK(strstr(st, "\"ta1\"") != NULL);
  CHECK(strstr(st, "\"ta2\"") == NULL);
  CHECK_INT_EQ(nft_query(n, "list map ip shoal hostports", &out, &err), 0);
  CHECK(strstr(out, "5353") == NULL);
  free(out);
  nft_close(n);
  /* Next-fit survives the restart: .4, not ta2's .3 again. */
  if (attach(&a, "ta3", json_array(), NULL, NULL, &err) < 0)
    FAIL_("%s", err.msg);
  cleanup_json json_t *v = overlay_view(a.ov);
  CHECK_STR_EQ(jx_str(jx_get(jx_get(v, "Networks"), "docker_gwbridge"),
                      "ta3.IPv4Address", NULL),
               "172.18.0.4/16");
  node_end(&a);
  rm_tree(dir);
}

TEST(overlay_internal_networks_egress_only_tasks_and_busy_subnets) {
  OV_SANDBOX(dir);
  sh_err err = {0};
  struct node a = {0};
  if (node_new(dir, "A", &a, &err) < 0)
    FAIL_("%s", err.msg);
  /* A network without a gateway interface. */
  int t = -1;
  json_t *in = net_json(NET3, 4099, "10.0.3.0/24", "10.0.3.1", true, NULL);
  if (attach(&a, "ti1", atts1(in, "10.0.3.2/24"), NULL, &t, &err) < 0)
    FAIL_("%s", err.msg);
  struct netdev *node = NULL, *nd = NULL;
  CHECK_INT_EQ(netdev_open(a.ns, &node, &err), 0);
  CHECK(!netdev_exists(node, "docker_gwbridge"));
  CHECK_INT_EQ(netdev_open(t, &nd, &err), 0);
  char **l = NULL;
  size_t nl = 0;
  CHECK_INT_EQ(netdev_links(nd, &l, &nl, &err), 0);
  CHECK_INT_EQ(nl, 2); /* lo, eth0 */
  netdev_names_free(l, nl);
  netdev_close(nd);
  close(t);

  /* 172.18.0.0/16 is taken on this node: docker_gwbridge takes the next. */
  CHECK_INT_EQ(netdev_bridge_add(node, "busy", 0, &err), 0);
  CHECK_INT_EQ(netdev_addr_add(node, "busy", "172.18.5.1/24", &err), 0);
  if (attach(&a, "te1", NULL, NULL, &t, &err) < 0)
    FAIL_("%s", err.msg);
  CHECK_INT_EQ(netdev_open(t, &nd, &err), 0);
  char **nets = NULL;
  size_t nn = 0;
  CHECK_INT_EQ(netdev_ipv4_nets(nd, &nets, &nn, &err), 0);
  CHECK(has_str(nets, nn, "172.19.0.0/16"));
  CHECK(!has_str(nets, nn, "172.18.0.0/16"));
  netdev_names_free(nets, nn);
  netdev_close(nd);
  close(t);

  /* Invalid input leaves nothing behind. */
  cleanup_json json_t *bad = atts1(net1(), "10.0.1.3/24");
  json_object_del(jx_get(json_array_get(bad, 0), "Network.DriverState.Options"),
                  "com.docker.network.driver.overlay.vxlanid_list");
  CHECK(attach(&a, "tbad", json_incref(bad), NULL, NULL, &err) < 0);
  CHECK_INT_EQ(err.status, 400);
  json_t *twice = atts1(net1(), "10.0.1.3/24");
  json_array_append_new(twice, json_deep_copy(json_array_get(twice, 0)));
  CHECK(attach(&a, "tbad", twice, NULL, NULL, &err) < 0);
  CHECK(strstr(err.msg, "attached twice") != NULL);
  char p[256];
  snprintf(p, sizeof p, "%s/exec/netns/tbad", a.root);
  CHECK(!file_exists(p));
  netdev_del(node, "busy", NULL);
  netdev_close(node);
  node_end(&a);
  rm_tree(dir);
}

/* Standalone containers on docker0 (docker run -p): addresses, published
 * ports (a chosen one for 0), reachability between them, NAT both ways;
 * the worker's sweep and swarm leave keep them. */
#define CID1 "c1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define CID2 "c2bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define CID3 "c3cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

static int battach(struct node *n, const char *id, json_t *ports, int *fd,
                   sh_err *err) {
  struct overlay_task t = {.task_id = id, .ports = ports, .bridge = true};
  char *path = NULL;
  int rc = overlay_attach(n->ov, &t, &path, err);
  json_decref(ports);
  if (rc < 0)
    return -1;
  if (fd)
    *fd = open(path, O_RDONLY | O_CLOEXEC);
  free(path);
  return 0;
}

static json_t *tcp_port(int target, int published) {
  return json_pack("[{sssisiss}]", "Protocol", "tcp", "TargetPort", target,
                   "PublishedPort", published, "PublishMode", "host");
}

TEST(overlay_bridge_containers_ports_and_icc) {
  OV_SANDBOX(dir);
  sh_err err = {0};
  struct node a = {0}, b = {0};
  if (two_nodes(dir, &a, &b, &err) < 0 || overlay_ensure_bridge(a.ov, &err) < 0)
    FAIL_("%s", err.msg);
  int c1, c2;
  if (battach(&a, CID1, tcp_port(80, 8080), &c1, &err) < 0 ||
      battach(&a, CID2, tcp_port(80, 0), &c2, &err) < 0)
    FAIL_("%s", err.msg);
  /* A published port held by another endpoint: dockerd's words. */
  CHECK(battach(&a, CID3, tcp_port(81, 8080), NULL, &err) < 0);
  CHECK_INT_EQ(err.status, 409);
  CHECK_STR_EQ(err.msg, "Bind for 0.0.0.0:8080 failed: port is already "
                        "allocated");
  cleanup_json json_t *e1 = overlay_bridge_endpoint(a.ov, CID1, NULL);
  cleanup_json json_t *e2 = overlay_bridge_endpoint(a.ov, CID2, NULL);
  CHECK(e1 && e2);
  CHECK(overlay_bridge_endpoint(a.ov, CID3, NULL) == NULL);
  CHECK_STR_EQ(jx_str(e1, "IPAddress", ""), "172.17.0.2");
  CHECK_STR_EQ(jx_str(e1, "Gateway", ""), "172.17.0.1");
  CHECK_INT_EQ(jx_int(e1, "IPPrefixLen", 0), 16);
  CHECK_STR_EQ(jx_str(e1, "MacAddress", ""), "02:42:ac:11:00:02");
  CHECK_STR_EQ(jx_str(e2, "IPAddress", ""), "172.17.0.3");
  CHECK_INT_EQ(jx_int(json_array_get(json_object_get(e1, "Ports"), 0),
                      "PublishedPort", 0),
               8080);
  /* port 0: the first of the ephemeral range */
  CHECK_INT_EQ(jx_int(json_array_get(json_object_get(e2, "Ports"), 0),
                      "PublishedPort", 0),
               32768);
  cleanup_json json_t *v = overlay_view(a.ov);
  CHECK_STR_EQ(jx_str(json_object_get(jx_get(v, "Networks.bridge"), CID1),
                      "IPv4Address", ""),
               "172.17.0.2/16");

  /* Containers on docker0 reach each other (enable_icc), and the outside
   * masqueraded. */
  char src[20] = "";
  int rx1 = udp_listen(c1, 7000);
  CHECK_INT_EQ(udp_reach(c2, "172.17.0.2", 7000, rx1, 25, src), 0);
  CHECK_STR_EQ(src, "172.17.0.3");
  int rxb = udp_listen(b.ns, 6000);
  CHECK_INT_EQ(udp_reach(c1, "192.168.77.2", 6000, rxb, 25, src), 0);
  CHECK_STR_EQ(src, "192.168.77.1");

  /* Published: node B to A's address, and A itself. */
  int l = sock_in(c1, SOCK_STREAM);
  struct sockaddr_in any = sin_of("0.0.0.0", 80);
  CHECK_INT_EQ(bind(l, (struct sockaddr *)&any, sizeof any), 0);
  CHECK_INT_EQ(listen(l, 8), 0);
  CHECK_INT_EQ(tcp_connect(b.ns, "192.168.77.1", 8080, l), 0);
  CHECK_INT_EQ(tcp_connect(a.ns, "192.168.77.1", 8080, l), 0);
  int l2 = sock_in(c2, SOCK_STREAM);
  CHECK_INT_EQ(bind(l2, (struct sockaddr *)&any, sizeof any), 0);
  CHECK_INT_EQ(listen(l2, 8), 0);
  CHECK_INT_EQ(tcp_connect(b.ns, "192.168.77.1", 32768, l2), 0);

  /* The worker's sweep of dead tasks and swarm leave keep them. */
  const char *live[] = {NULL};
  CHECK_INT_EQ(overlay_gc(a.ov, live, &err), 0);
  CHECK_INT_EQ(overlay_leave(a.ov, &err), 0);
  cleanup_json json_t *e1b = overlay_bridge_endpoint(a.ov, CID1, NULL);
  CHECK(e1b != NULL);
  CHECK_INT_EQ(tcp_connect(b.ns, "192.168.77.1", 8080, l), 0);

  /* Detach: the port is free again. */
  struct nft *n = NULL;
  char *out = NULL;
  CHECK_INT_EQ(nft_open(a.ns, &n, &err), 0);
  CHECK_INT_EQ(nft_query(n, "list table ip shoal_bridge", &out, &err), 0);
  CHECK(strstr(out, "tcp . 8080 : 172.17.0.2 . 80") != NULL);
  free(out);
  CHECK_INT_EQ(overlay_detach(a.ov, CID1, &err), 0);
  CHECK_INT_EQ(nft_query(n, "list table ip shoal_bridge", &out, &err), 0);
  CHECK(strstr(out, "8080") == NULL);
  CHECK(strstr(out, "32768") != NULL);
  free(out);
  CHECK_INT_EQ(battach(&a, CID3, tcp_port(81, 8080), NULL, &err), 0);
  nft_close(n);
  overlay_detach(a.ov, CID2, NULL);
  overlay_detach(a.ov, CID3, NULL);
  close(l);
  close(l2);
  close(rx1);
  close(rxb);
  close(c1);
  close(c2);
  node_end(&a);
  node_end(&b);
  rm_tree(dir);
}

TEST(overlay_leave_leaves_nothing) {
  OV_SANDBOX(dir);
  sh_err err = {0};
  struct node a = {0}, b = {0};
  if (two_nodes(dir, &a, &b, &err) < 0)
    FAIL_("%s", err.msg);
  cleanup_json json_t *ports =
      json_pack("[{sssisiss}]", "Protocol", "tcp", "TargetPort", 80,
                "PublishedPort", 8080, "PublishMode", "host");
  if (attach(&a, "ta1", atts1(net1(), "10.0.1.3/24"), json_incref(ports), NULL,
             &err) < 0 ||
      attach(&a, "ta2", atts1(net2(), "10.0.2.3/24"), NULL, NULL, &err) < 0)
    FAIL_("%s", err.msg);
  CHECK_INT_EQ(peer(&a, NET1, "10.0.1.4", "192.168.77.2", &err), 0);
  CHECK_INT_EQ(overlay_leave(a.ov, &err), 0);

  struct netdev *node = NULL;
  CHECK_INT_EQ(netdev_open(a.ns, &node, &err), 0);
  char **l = NULL;
  size_t nl = 0;
  CHECK_INT_EQ(netdev_links(node, &l, &nl, &err), 0);
  CHECK_INT_EQ(nl, 2); /* lo and the underlay */
  CHECK(has_str(l, nl, "lo") && has_str(l, nl, "ua"));
  netdev_names_free(l, nl);
  netdev_close(node);
  char p[256];
  snprintf(p, sizeof p, "%s/exec/netns", a.root);
  DIR *d = opendir(p);
  CHECK(d != NULL);
  int entries = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    entries += e->d_name[0] != '.';
  closedir(d);
  CHECK_INT_EQ(entries, 0);
  snprintf(p, sizeof p, "%s/data/network/overlay.json", a.root);
  CHECK(!file_exists(p));
  struct nft *n = NULL;
  char *out = NULL;
  CHECK_INT_EQ(nft_open(a.ns, &n, &err), 0);
  CHECK_INT_EQ(nft_query(n, "list tables", &out, &err), 0);
  CHECK_STR_EQ(out, "");
  free(out);
  nft_close(n);
  cleanup_json json_t *v = overlay_view(a.ov);
  CHECK_INT_EQ(json_object_size(jx_get(v, "Networks")), 0);
  /* Usable again after leave. */
  if (attach(&a, "ta3", atts1(net1(), "10.0.1.5/24"), NULL, NULL, &err) < 0)
    FAIL_("%s", err.msg);
  node_end(&a);
  node_end(&b);
  rm_tree(dir);
}

/* Worker threads attach and detach tasks of the same networks at once. */
struct worker_arg {
  struct overlay *ov;
  int k;
  int rc;
  sh_err err;
};

static void *worker(void *p) {
  struct worker_arg *w = p;
  for (int i = 0; i < 2 && w->rc == 0; i++) {
    char id[32], addr[32];
    snprintf(id, sizeof id, "w%dt%d", w->k, i);
    snprintf(addr, sizeof addr, "10.0.%d.%d/24", i + 1, 10 + w->k);
    json_t *a = atts1(i ? net2() : net1(), addr);
    struct overlay_task t = {id, a, NULL, 0, false, false, NULL, NULL};
    char *path = NULL;
    w->rc = overlay_attach(w->ov, &t, &path, &w->err);
    free(path);
    json_decref(a);
  }
  return NULL;
}

static void *unworker(void *p) {
  struct worker_arg *w = p;
  for (int i = 0; i < 2 && w->rc == 0; i++) {
    char id[32];
    snprintf(id, sizeof id, "w%dt%d", w->k, i);
    w->rc = overlay_detach(w->ov, id, &w->err);
  }
  return NULL;
}

TEST(overlay_threads_share_networks) {
  OV_SANDBOX(dir);
  sh_err err = {0};
  struct node a = {0};
  if (node_new(dir, "A", &a, &err) < 0)
    FAIL_("%s", err.msg);
  pthread_t th[4];
  struct worker_arg w[4];
  for (int k = 0; k < 4; k++) {
    w[k] = (struct worker_arg){.ov = a.ov, .k = k};
    pthread_create(&th[k], NULL, worker, &w[k]);
  }
  for (int k = 0; k < 4; k++) {
    pthread_join(th[k], NULL);
    if (w[k].rc < 0)
      FAIL_("%s", w[k].err.msg);
  }
  cleanup_json json_t *v = overlay_view(a.ov);
  json_t *nets = jx_get(v, "Networks");
  CHECK_INT_EQ(json_object_size(json_object_get(nets, NET1)), 4);
  CHECK_INT_EQ(json_object_size(json_object_get(nets, NET2)), 4);
  json_t *gw = json_object_get(nets, "docker_gwbridge");
  CHECK_INT_EQ(json_object_size(gw), 8);
  /* Eight different gateway addresses. */
  const char *k1, *k2;
  json_t *e1, *e2;
  json_object_foreach(gw, k1, e1) {
    json_object_foreach(gw, k2, e2) {
      if (strcmp(k1, k2))
        CHECK(strcmp(jx_str(e1, "IPv4Address", ""),
                     jx_str(e2, "IPv4Address", "")) != 0);
    }
  }
  for (int k = 0; k < 4; k++)
    pthread_create(&th[k], NULL, unworker, &w[k]);
  for (int k = 0; k < 4; k++) {
    pthread_join(th[k], NULL);
    if (w[k].rc < 0)
      FAIL_("%s", w[k].err.msg);
  }
  char p[256];
  snprintf(p, sizeof p, "%s/exec/netns/1-n1aaaaaaaa", a.root);
  CHECK(!file_exists(p));
  snprintf(p, sizeof p, "%s/exec/netns/1-n2bbbbbbbb", a.root);
  CHECK(!file_exists(p));
  node_end(&a);
  rm_tree(dir);
}

TEST(overlay_user_bridge_requests_subnets_and_isolation) {
  struct ov_lnet_spec sp;
  sh_err err = {0};
  /* docker network create front: everything chosen by the daemon */
  cleanup_json json_t *plain =
      json_pack("{s:s, s:s}", "Name", "front", "Driver", "bridge");
  CHECK_INT_EQ(ov_lnet_parse(plain, &sp, &err), 0);
  CHECK(!sp.have_subnet && !sp.internal && sp.bridge[0] == '\0');
  /* --subnet --ip-range --gateway --internal -o bridge name */
  cleanup_json json_t *full = json_loads(
      "{\"Name\": \"back\", \"Internal\": true, \"Options\": "
      "{\"com.docker.network.bridge.name\": \"brback\"}, \"IPAM\": "
      "{\"Driver\": \"default\", \"Config\": [{\"Subnet\": \"10.7.0.0/24\", "
      "\"IPRange\": \"10.7.0.128/25\", \"Gateway\": \"10.7.0.254\"}]}}",
      0, NULL);
  CHECK_INT_EQ(ov_lnet_parse(full, &sp, &err), 0);
  CHECK(sp.have_subnet && sp.have_range && sp.internal);
  CHECK_INT_EQ(sp.subnet.addr, 0x0a070000);
  CHECK_INT_EQ(sp.range.addr, 0x0a070080);
  CHECK_INT_EQ(sp.gateway, 0x0a0700fe);
  CHECK_STR_EQ(sp.bridge, "brback");
  /* refusals: host bits in the subnet, a gateway outside, IPv6, options
   * shoal does not apply */
  const char *bad[][2] = {
      {"{\"IPAM\": {\"Config\": [{\"Subnet\": \"10.7.0.1/24\"}]}}",
       "invalid subnet 10.7.0.1/24 : it should be 10.7.0.0/24"},
      {"{\"IPAM\": {\"Config\": [{\"Subnet\": \"10.7.0.0/24\", \"Gateway\": "
       "\"10.8.0.1\"}]}}",
       "invalid gateway 10.8.0.1: it should be within subnet 10.7.0.0/24"},
      {"{\"IPAM\": {\"Config\": [{\"Subnet\": \"10.7.0.0/24\", \"IPRange\": "
       "\"10.7.1.0/25\"}]}}",
       "invalid ip-range 10.7.1.0/25: it should be within subnet 10.7.0.0/24"},
      {"{\"EnableIPv6\": true}",
       "--ipv6 (EnableIPv6) is not supported by shoal on bridge networks"},
      {"{\"Options\": {\"com.docker.network.bridge.enable_icc\": \"false\"}}",
       "network option com.docker.network.bridge.enable_icc=false is not "
       "supported by shoal yet"},
      /* the name goes into nft scripts as a quoted word */
      {"{\"Options\": {\"com.docker.network.bridge.name\": \"br\\\"x\"}}",
       "invalid bridge name br\"x: at most 15 letters, digits, '_', '-' or "
       "'.'"},
      {"{\"Options\": {\"com.docker.network.bridge.name\": \"b;r\"}}",
       "invalid bridge name b;r: at most 15 letters, digits, '_', '-' or '.'"},
      {"{\"Options\": {\"com.docker.network.bridge.name\": \"..\"}}",
       "invalid bridge name ..: at most 15 letters, digits, '_', '-' or '.'"},
  };
  for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
    cleanup_json json_t *req = json_loads(bad[i][0], 0, NULL);
    sh_err e = {0};
    CHECK(ov_lnet_parse(req, &sp, &e) < 0);
    CHECK_STR_EQ(e.msg, bad[i][1]);
  }

  /* dockerd's local pools: 172.17.. /16s past what is used, then
   * 192.168.x.0/20 */
  struct ipam_prefix p;
  char *used[] = {"172.17.0.0/16", "172.18.0.0/16"};
  CHECK_INT_EQ(ov_lnet_pick(used, 2, NULL, &p, &err), 0);
  CHECK_INT_EQ(p.addr, 0xac130000); /* 172.19.0.0/16 */
  char *full172[] = {"172.16.0.0/12", "192.168.0.0/20"};
  CHECK_INT_EQ(ov_lnet_pick(full172, 2, NULL, &p, &err), 0);
  CHECK_INT_EQ(p.addr, 0xc0a81000); /* 192.168.16.0/20 */
  CHECK_INT_EQ(p.len, 20);

  /* the lowest free address, inside the range, never the gateway */
  struct ipam_prefix s = {0x0a070000, 24}, r = {0x0a070080, 25};
  uint32_t taken[] = {0x0a070081};
  CHECK_INT_EQ(ov_lnet_next(s, NULL, 0x0a070001, NULL, 0), 0x0a070002);
  CHECK_INT_EQ(ov_lnet_next(s, &r, 0x0a070080, taken, 1), 0x0a070082);
  struct ipam_prefix tiny = {0x0a070000, 30};
  uint32_t both[] = {0x0a070002};
  CHECK_INT_EQ(ov_lnet_next(tiny, NULL, 0x0a070001, both, 1), 0);

  /* isolation: each bridge drops what it forwards to the others; an
   * internal one forwards nothing out or in */
  const char *names[] = {"docker0", "br-aaa", "br-bbb"};
  bool internal[] = {false, false, true};
  cleanup_free char *rules = ov_isolation_rules(names, internal, 3);
  CHECK(strstr(rules, "iifname \"docker0\" oifname { \"br-aaa\", \"br-bbb\" } "
                      "drop") != NULL);
  CHECK(strstr(rules, "iifname \"br-aaa\" oifname { \"docker0\", \"br-bbb\" } "
                      "drop") != NULL);
  CHECK(strstr(rules, "iifname \"br-bbb\" oifname != \"br-bbb\" drop") != NULL);
  CHECK(strstr(rules, "oifname \"br-bbb\" iifname != \"br-bbb\" drop") != NULL);
  char br[16];
  ov_lnet_bridge_name("0123456789abcdef", br);
  CHECK_STR_EQ(br, "br-0123456789ab");
}
