/* libFuzzer target over the Engine API request path: raw bytes go through a
 * real unix socket into the HTTP server (http_parser), the router and the
 * handlers (JSON bodies, filters, versions) of a daemon that is not in a
 * swarm. Requests that would create a swarm (init/join) are skipped: they
 * bind ports and start raft, which is not what this target is about. */
#include "api/api.h"
#include "core/err.h"
#include "core/util.h"
#include "daemon/daemon.h"
#include "http/server.h"

#include <poll.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct shoald daemon_state;
static char sock_path[128];
static bool ready;

static void setup(void) {
  static char root[] = "/tmp/shoal-fuzz-XXXXXX";
  if (!mkdtemp(root))
    abort();
  struct shoald *d = &daemon_state;
  d->cfg.data_root = xasprintf("%s/data", root);
  d->cfg.exec_root = xasprintf("%s/exec", root);
  snprintf(sock_path, sizeof sock_path, "%s/api.sock", root);
  sh_err err = {0};
  if (shoald_init(d, uv_default_loop(), &err) < 0)
    abort();
  cleanup_free char *host = xasprintf("unix://%s", sock_path);
  if (api_listen(d, host, &err) < 0) {
    fprintf(stderr, "fuzz: %s\n", err.msg);
    abort();
  }
  ready = true;
}

static bool skipped(const uint8_t *data, size_t size) {
  static const char *const bad[] = {"/swarm/init", "/swarm/join"};
  for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
    if (memmem(data, size, bad[i], strlen(bad[i])))
      return true;
  return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!ready)
    setup();
  if (skipped(data, size))
    return 0;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
    abort();
  /* Feed the bytes while letting the server run, then half-close. */
  size_t off = 0;
  bool eof = false;
  char buf[65536];
  for (int rounds = 0; rounds < 2000 && !eof; rounds++) {
    if (off < size) {
      ssize_t n = send(fd, data + off, size - off, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0)
        off += (size_t)n;
      else if (n < 0 && errno != EAGAIN)
        break;
      if (off == size)
        shutdown(fd, SHUT_WR);
    } else if (size == 0 && rounds == 0) {
      shutdown(fd, SHUT_WR);
    }
    uv_run(uv_default_loop(), UV_RUN_NOWAIT);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 1) > 0) {
      ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN))
        eof = true;
    }
  }
  close(fd);
  /* Let the server see the close and free the connection. */
  for (int i = 0; i < 20; i++)
    uv_run(uv_default_loop(), UV_RUN_NOWAIT);
  return 0;
}
