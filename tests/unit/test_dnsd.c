/* The embedded DNS server's forwarding: a task's own --dns servers are its
 * upstreams, else the node's. Sockets on loopback addresses stand in for
 * the task's 127.0.0.11 and for the resolvers (port 53: root). */
#include "test.h"

#include "agent/dnsd.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static int udp_on(const char *ip, int port, struct sockaddr_in *out) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, ip, &a.sin_addr);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    if (fd >= 0)
      close(fd);
    return -1;
  }
  socklen_t len = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &len);
  if (out)
    *out = a;
  return fd;
}

/* Runs the loop until fd has a datagram (or ~2 s); true if it came. */
static bool arrives(uv_loop_t *loop, int fd) {
  unsigned char buf[512];
  for (int i = 0; i < 200; i++) {
    uv_run(loop, UV_RUN_NOWAIT);
    if (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
      return true;
    usleep(10000);
  }
  return false;
}

TEST(dnsd_forwards_to_the_tasks_own_servers) {
  if (geteuid() != 0)
    SKIP("resolvers listen on port 53: root");
  int task_up = udp_on("127.0.0.2", 53, NULL);
  int node_up = udp_on("127.0.0.3", 53, NULL);
  if (task_up < 0 || node_up < 0)
    SKIP("127.0.0.2:53 or 127.0.0.3:53 is taken");
  struct sockaddr_in task_addr;
  int task_fd = udp_on("127.0.0.1", 0, &task_addr);
  int client = udp_on("127.0.0.1", 0, NULL);
  CHECK(task_fd >= 0 && client >= 0);
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct dnsd *d = dnsd_new(&loop);
  cleanup_json json_t *node = json_pack("[s]", "127.0.0.3");
  cleanup_json json_t *own = json_pack("[s]", "127.0.0.2");
  cleanup_json json_t *nets = json_array();
  dnsd_set_resolvers(d, node);
  sh_err err = {0};
  CHECK(dnsd_add(d, "t1", task_fd, nets, &err) == 0);
  dnsd_set_task_resolvers(d, "t1", own);
  /* A query for a name no network knows: forwarded. */
  static const unsigned char q[] = {
      0x12, 0x34, 0x01, 0x00, 0,   1,   0,   0,   0,   0, 0,
      0,    7,    'u',  'n',  'k', 'n', 'o', 'w', 'n', 7, 'e',
      'x',  'a',  'm',  'p',  'l', 'e', 0,   0,   1,   0, 1};
  sendto(client, q, sizeof q, 0, (struct sockaddr *)&task_addr,
         sizeof task_addr);
  bool to_own = arrives(&loop, task_up);
  bool to_node = arrives(&loop, node_up);
  /* Without servers of its own: the node's. */
  dnsd_set_task_resolvers(d, "t1", NULL);
  sendto(client, q, sizeof q, 0, (struct sockaddr *)&task_addr,
         sizeof task_addr);
  bool then_node = arrives(&loop, node_up);
  dnsd_free(d);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  close(client);
  close(task_up);
  close(node_up);
  CHECK(to_own);
  CHECK(!to_node);
  CHECK(then_node);
}
