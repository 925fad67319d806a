/* nftables through libnftables, in a network namespace of the test's
 * own: errors, and the routing mesh's way of spreading new connections
 * over a service's tasks without IPVS (DNAT to numgen). */
#include "test.h"

#include "netns.h"

#include "core/err.h"
#include "core/lowfd.h"
#include "core/util.h"
#include "netdev/netdev.h"
#include "nft/nft.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

TEST(nft_errors_are_nfts_own_words) {
  NETNS_SANDBOX(dir);
  struct nft *n = NULL;
  sh_err err = {0};
  CHECK_INT_EQ(nft_open(-1, &n, &err), 0);
  CHECK(nft_apply(n, "add table ip shoal\nadd chain ip shoal x { bogus }",
                  &err) < 0);
  CHECK_INT_EQ(err.status, 500);
  CHECK(strstr(err.msg, "nftables: ") == err.msg);
  CHECK(strstr(err.msg, "syntax error") != NULL);
  /* All or nothing: the table of the failed batch is not there. */
  char *out = NULL;
  CHECK(nft_query(n, "list table ip shoal", &out, &err) < 0);
  CHECK_INT_EQ(nft_apply(n, "add table ip shoal", &err), 0);
  CHECK_INT_EQ(nft_query(n, "list table ip shoal", &out, &err), 0);
  CHECK(strstr(out, "table ip shoal") != NULL);
  free(out);
  nft_close(n);
  rmdir(dir);
}

/* A host end and a namespace end of a veth, addresses, default route. */
static int wire(struct netdev *node, const char *dir, const char *name,
                const char *node_cidr, const char *ns_cidr, const char *gw,
                int *fd, sh_err *err) {
  char p[256];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  struct netdev *in = NULL;
  int rc = -1;
  if (netns_create(p, fd, err) < 0 ||
      netdev_veth_add(node, name, "peer", 0, err) < 0 ||
      netdev_move(node, "peer", *fd, "eth0", err) < 0 ||
      netdev_addr_add(node, name, node_cidr, err) < 0 ||
      netdev_set_up(node, name, err) < 0 || netdev_open(*fd, &in, err) < 0 ||
      netdev_addr_add(in, "eth0", ns_cidr, err) < 0 ||
      netdev_set_up(in, "eth0", err) < 0 ||
      netdev_route_default(in, gw, err) < 0)
    goto out;
  rc = 0;
out:
  netdev_close(in);
  return rc;
}

static int udp_server(int netns, int port) {
  int self = open("/proc/thread-self/ns/net", O_RDONLY);
  setns(netns, CLONE_NEWNET);
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  bind(s, (struct sockaddr *)&a, sizeof a);
  setns(self, CLONE_NEWNET);
  close(self);
  return s;
}

static int drain(int s) {
  char b[64];
  int n = 0;
  while (recv(s, b, sizeof b, 0) > 0)
    n++;
  return n;
}

/* A new flow each: a fresh socket has a fresh source port. */
static void send_flows(int client_ns, int count) {
  int self = open("/proc/thread-self/ns/net", O_RDONLY);
  setns(client_ns, CLONE_NEWNET);
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(8080)};
  inet_pton(AF_INET, "10.9.0.1", &to.sin_addr);
  for (int i = 0; i < count; i++) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    sendto(s, "hi", 2, 0, (struct sockaddr *)&to, sizeof to);
    close(s);
  }
  setns(self, CLONE_NEWNET);
  close(self);
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

TEST(nft_dnat_numgen_spreads_new_flows_over_backends) {
  NETNS_SANDBOX(dir);
  sh_err err = {0};
  struct netdev *node = NULL;
  CHECK_INT_EQ(netdev_open(-1, &node, &err), 0);
  int c = -1, b1 = -1, b2 = -1;
  if (wire(node, dir, "cl", "10.9.0.1/24", "10.9.0.2/24", "10.9.0.1", &c,
           &err) < 0 ||
      wire(node, dir, "be1", "10.9.1.1/24", "10.9.1.2/24", "10.9.1.1", &b1,
           &err) < 0 ||
      wire(node, dir, "be2", "10.9.2.1/24", "10.9.2.2/24", "10.9.2.1", &b2,
           &err) < 0)
    FAIL_("%s", err.msg);
  netdev_close(node);
  FILE *fw = fopen("/proc/sys/net/ipv4/ip_forward", "w");
  CHECK(fw != NULL);
  fputs("1", fw);
  fclose(fw);

  struct nft *n = NULL;
  CHECK_INT_EQ(nft_open(-1, &n, &err), 0);
  if (nft_apply(n,
                "table ip shoal {\n"
                "  chain prerouting {\n"
                "    type nat hook prerouting priority dstnat; policy accept;\n"
                "    ip daddr 10.9.0.1 udp dport 8080 dnat to numgen inc mod 2 "
                "map { 0 : 10.9.1.2, 1 : 10.9.2.2 } : 80\n"
                "  }\n"
                "}\n",
                &err) < 0)
    FAIL_("%s", err.msg);
  int s1 = udp_server(b1, 80), s2 = udp_server(b2, 80);
  /* New links carry traffic once activated: warm up, bounded, until
   * both backends have heard (one of them alone left the other's link
   * dropping all its 20 of the flows below in ~1 run in 6). */
  int got1 = 0, got2 = 0;
  for (int i = 0; i < 25 && (got1 == 0 || got2 == 0); i++) {
    send_flows(c, 2);
    sleep_ms(200);
    got1 += drain(s1);
    got2 += drain(s2);
  }
  CHECK(got1 > 0 && got2 > 0);
  send_flows(c, 40);
  sleep_ms(300);
  int n1 = drain(s1), n2 = drain(s2);
  CHECK_INT_EQ(n1 + n2, 40);
  CHECK(abs(n1 - n2) <= 2);
  char *out = NULL;
  CHECK_INT_EQ(nft_query(n, "list table ip shoal", &out, &err), 0);
  CHECK(strstr(out, "numgen inc mod 2") != NULL);
  free(out);
  nft_close(n);
  close(s1);
  close(s2);
  const char *names[] = {"cl", "be1", "be2"};
  for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, names[i]);
    netns_remove(p, NULL);
  }
  rmdir(dir);
}

/* Descriptors at 1024 and above (a manager with a thousand nodes):
 * libnftables waits on its netlink socket with select(2), which aborts
 * on such a number; the context still opens, applies and queries, and
 * the reserve of low descriptors is whole again after. */
TEST(nft_with_more_than_fd_setsize_descriptors_open) {
  NETNS_SANDBOX(dir);
  struct rlimit rl, was;
  CHECK_INT_EQ(getrlimit(RLIMIT_NOFILE, &was), 0);
  rl = was;
  if (rl.rlim_max < 1200)
    SKIP("hard RLIMIT_NOFILE below 1200");
  rl.rlim_cur = rl.rlim_max;
  CHECK_INT_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
  lowfd_reserve(4);
  CHECK_INT_EQ(lowfd_held(), 4);
  int fds[1100];
  int nfds = 0;
  while (nfds < 1100) {
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    fds[nfds++] = fd;
  }
  CHECK(fds[nfds - 1] >= 1024); /* the next number would be high */
  struct nft *n = NULL;
  sh_err err = {0};
  CHECK_INT_EQ(nft_open(-1, &n, &err), 0);
  CHECK_INT_EQ(nft_apply(n, "add table ip shoalfd", &err), 0);
  char *out = NULL;
  CHECK_INT_EQ(nft_query(n, "list table ip shoalfd", &out, &err), 0);
  CHECK(strstr(out, "table ip shoalfd") != NULL);
  free(out);
  /* each command's context took one for its socket, and gave it back */
  CHECK_INT_EQ(lowfd_held(), 4);
  nft_close(n);
  CHECK_INT_EQ(lowfd_held(), 4);
  /* Contexts opened and closed while connections arrive: each closed
   * socket's number goes back to the reserve, not to the next one. */
  int conns[20];
  for (int i = 0; i < 20; i++) {
    CHECK_INT_EQ(nft_open(-1, &n, &err), 0);
    CHECK_INT_EQ(nft_apply(n, "add table ip shoalfd", &err), 0);
    nft_close(n);
    conns[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    CHECK(conns[i] >= 1024);
  }
  for (int i = 0; i < 20; i++)
    close(conns[i]);
  for (int i = 0; i < nfds; i++)
    close(fds[i]);
  lowfd_reserve(0); /* back to none, as other tests expect */
  CHECK_INT_EQ(lowfd_held(), 0);
  setrlimit(RLIMIT_NOFILE, &was);
  rmdir(dir);
}
