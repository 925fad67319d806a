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

#include "feed.h"

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
  fuzz_feed(fd, data, size, NULL);
  return 0;
}
