/* The netlink module against the real kernel: each test runs in a forked
 * child that first takes a network namespace of its own, so nothing it
 * makes is seen outside it. */
#include "test.h"

#include "netns.h"

#include "core/err.h"
#include "core/util.h"
#include "netdev/netdev.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

static int enter(int fd) {
  return setns(fd, CLONE_NEWNET);
}

/* One "node": a namespace with an underlay address, an overlay sandbox
 * (bridge + VXLAN made in the node's namespace and moved in) and one task
 * namespace wired to the bridge by a veth. */
struct node {
  int ns, ov, task;
};

static int make_node(const char *dir, const char *name, int under,
                     struct node *nd, const char *task_ip, const char *task_mac,
                     sh_err *err) {
  char p[256];
  snprintf(p, sizeof p, "%s/%s-ov", dir, name);
  if (netns_create(p, &nd->ov, err) < 0)
    return -1;
  snprintf(p, sizeof p, "%s/%s-task", dir, name);
  if (netns_create(p, &nd->task, err) < 0)
    return -1;
  struct netdev *h = NULL, *o = NULL, *t = NULL;
  int rc = -1;
  if (netdev_open(nd->ns, &h, err) < 0 || netdev_open(nd->ov, &o, err) < 0 ||
      netdev_open(nd->task, &t, err) < 0)
    goto out;
  (void)under;
  if (netdev_vxlan_add(h, "vx-test", 4097, 4789, 1450, false, err) < 0 ||
      netdev_move(h, "vx-test", nd->ov, "vxlan0", err) < 0 ||
      netdev_bridge_add(o, "br0", 1450, err) < 0 ||
      netdev_set_master(o, "vxlan0", "br0", err) < 0 ||
      netdev_veth_add(o, "veth0", "eth0x", 1450, err) < 0 ||
      netdev_set_master(o, "veth0", "br0", err) < 0 ||
      netdev_move(o, "eth0x", nd->task, "eth0", err) < 0 ||
      netdev_set_up(o, "br0", err) < 0 || netdev_set_up(o, "vxlan0", err) < 0 ||
      netdev_set_up(o, "veth0", err) < 0 ||
      netdev_set_mac(t, "eth0", task_mac, err) < 0 ||
      netdev_addr_add(t, "eth0", task_ip, err) < 0 ||
      netdev_set_up(t, "eth0", err) < 0 || netdev_set_up(t, "lo", err) < 0)
    goto out;
  rc = 0;
out:
  netdev_close(h);
  netdev_close(o);
  netdev_close(t);
  return rc;
}

TEST(netdev_errors_name_the_link_and_the_reason) {
  NETNS_SANDBOX(dir);
  struct netdev *nd = NULL;
  sh_err err = {0};
  CHECK_INT_EQ(netdev_open(-1, &nd, &err), 0);
  CHECK(!netdev_exists(nd, "br-none"));
  CHECK(netdev_set_up(nd, "br-none", &err) < 0);
  CHECK_INT_EQ(err.status, 404);
  CHECK(strstr(err.msg, "br-none") != NULL);
  CHECK_INT_EQ(netdev_bridge_add(nd, "br-a", 0, &err), 0);
  CHECK(netdev_bridge_add(nd, "br-a", 0, &err) < 0);
  CHECK_INT_EQ(err.status, 409);
  CHECK(netdev_addr_add(nd, "br-a", "10.0.0.300/24", &err) < 0);
  CHECK_INT_EQ(err.status, 400);
  CHECK_INT_EQ(netdev_del(nd, "br-a", &err), 0);
  CHECK(!netdev_exists(nd, "br-a"));
  netdev_close(nd);
  rmdir(dir);
}

/* Two nodes on an underlay, a task on each, one VXLAN segment: a datagram
 * from one task reaches the other only once the static FDB and ARP
 * entries name the peer, as the overlay driver will set them. */
TEST(netdev_two_nodes_talk_over_vxlan) {
  NETNS_SANDBOX(dir);
  sh_err err = {0};
  char p[256];
  struct node a = {0}, b = {0};
  snprintf(p, sizeof p, "%s/nodeA", dir);
  CHECK_INT_EQ(netns_create(p, &a.ns, &err), 0);
  snprintf(p, sizeof p, "%s/nodeB", dir);
  CHECK_INT_EQ(netns_create(p, &b.ns, &err), 0);
  /* The underlay: a veth between the two nodes. */
  struct netdev *ha = NULL, *hb = NULL;
  CHECK_INT_EQ(netdev_open(a.ns, &ha, &err), 0);
  CHECK_INT_EQ(netdev_open(b.ns, &hb, &err), 0);
  CHECK_INT_EQ(netdev_veth_add(ha, "ua", "ub", 0, &err), 0);
  CHECK_INT_EQ(netdev_move(ha, "ub", b.ns, NULL, &err), 0);
  CHECK_INT_EQ(netdev_addr_add(ha, "ua", "192.168.77.1/24", &err), 0);
  CHECK_INT_EQ(netdev_addr_add(hb, "ub", "192.168.77.2/24", &err), 0);
  CHECK_INT_EQ(netdev_set_up(ha, "ua", &err), 0);
  CHECK_INT_EQ(netdev_set_up(hb, "ub", &err), 0);

  if (make_node(dir, "a", 0, &a, "10.0.9.2/24", "02:42:0a:00:09:02", &err) <
          0 ||
      make_node(dir, "b", 0, &b, "10.0.9.3/24", "02:42:0a:00:09:03", &err) < 0)
    FAIL_("%s", err.msg);

  /* Forwarding state for the peer's task on each side. */
  struct netdev *oa = NULL, *ob = NULL, *ta = NULL, *tb = NULL;
  CHECK_INT_EQ(netdev_open(a.ov, &oa, &err), 0);
  CHECK_INT_EQ(netdev_open(b.ov, &ob, &err), 0);
  CHECK_INT_EQ(netdev_open(a.task, &ta, &err), 0);
  CHECK_INT_EQ(netdev_open(b.task, &tb, &err), 0);
  if (netdev_fdb_add(oa, "vxlan0", "02:42:0a:00:09:03", "192.168.77.2", &err) <
      0)
    FAIL_("%s", err.msg);
  CHECK_INT_EQ(
      netdev_fdb_add(ob, "vxlan0", "02:42:0a:00:09:02", "192.168.77.1", &err),
      0);
  CHECK_INT_EQ(
      netdev_neigh_add(ta, "eth0", "10.0.9.3", "02:42:0a:00:09:03", &err), 0);
  CHECK_INT_EQ(
      netdev_neigh_add(tb, "eth0", "10.0.9.2", "02:42:0a:00:09:02", &err), 0);

  /* A receiver in b's task, a sender in a's. */
  CHECK_INT_EQ(enter(b.task), 0);
  int rx = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(5000)};
  inet_pton(AF_INET, "10.0.9.3", &sa.sin_addr);
  CHECK_INT_EQ(bind(rx, (struct sockaddr *)&sa, sizeof sa), 0);
  struct timeval tv = {.tv_usec = 200000};
  setsockopt(rx, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  CHECK_INT_EQ(enter(a.task), 0);
  int tx = socket(AF_INET, SOCK_DGRAM, 0);
  /* New links carry traffic once the kernel's link watch has activated
   * them (up to a second): send until one arrives, 5 s at most. */
  char buf[32] = {0};
  ssize_t n = -1;
  for (int i = 0; i < 25 && n < 0; i++) {
    CHECK(sendto(tx, "over vxlan", 10, 0, (struct sockaddr *)&sa, sizeof sa) ==
          10);
    n = recv(rx, buf, sizeof buf - 1, 0);
  }
  CHECK(n == 10);
  CHECK_STR_EQ(buf, "over vxlan");

  /* Without the FDB entry the frame has nowhere to go. */
  CHECK_INT_EQ(
      netdev_fdb_del(oa, "vxlan0", "02:42:0a:00:09:03", "192.168.77.2", &err),
      0);
  CHECK(sendto(tx, "lost", 4, 0, (struct sockaddr *)&sa, sizeof sa) == 4);
  tv.tv_sec = 1;
  tv.tv_usec = 0;
  setsockopt(rx, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  CHECK(recv(rx, buf, sizeof buf, 0) < 0);
  close(rx);
  close(tx);
  netdev_close(ha);
  netdev_close(hb);
  netdev_close(oa);
  netdev_close(ob);
  netdev_close(ta);
  netdev_close(tb);
  const char *names[] = {"nodeA", "nodeB", "a-ov", "a-task", "b-ov", "b-task"};
  for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
    snprintf(p, sizeof p, "%s/%s", dir, names[i]);
    CHECK_INT_EQ(netns_remove(p, &err), 0);
  }
  rmdir(dir);
}
