/* libFuzzer target over the swarm port (2377) as a peer without a
 * certificate reaches it: raw bytes go through a real TCP socket into the
 * HTTP server (http_parser, limits), the swarm port's router and policy
 * (authz.c) and its handlers (swarmapi.c: the CA root, join with its JSON
 * body and CSR), of a real single-node manager that is raft leader.
 *
 * The production listener is TLS; this one serves the same handler over
 * plain TCP, which is what a peer that sends no client certificate gets
 * after the handshake (peer_verified false, the peer's address set). The
 * unauthenticated body limit applies as it does there.
 *
 * "@WORKER@" and "@MANAGER@" in the input become this cluster's join
 * tokens (85 characters each, so seeds can carry the Content-Length of the
 * request as sent), so a mutated join still gets past the token check
 * into CSR signing and the node's creation through raft. The nodes that
 * joins create are removed from time to time so that the store stays
 * small. */
#include "ca/ca.h"
#include "core/err.h"
#include "core/id.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "http/client.h"
#include "http/server.h"
#include "manager/internal.h"
#include "manager/manager.h"
#include "store/store.h"

#include "feed.h"

#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <sys/socket.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct manager *mgr;
static int port;
static char *worker_token, *manager_token;
static unsigned runs;

static void created(void *ud, int status, const sh_err *err) {
  int *done = ud;
  if (status < 0) {
    fprintf(stderr, "fuzz: swarm init: %s\n", err ? err->msg : "?");
    abort();
  }
  *done = 1;
}

/* A free TCP port on the loopback (the manager's listen address needs a
 * port number; 0 is refused). */
static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof sa;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
    abort();
  close(fd);
  return ntohs(sa.sin_port);
}

static char *root;

static int rm_cb(const char *path, const struct stat *st, int flag,
                 struct FTW *ftw) {
  remove(path);
  return 0;
}

static void cleanup(void) {
  nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void setup(void) {
  uv_loop_t *loop = uv_default_loop();
  const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  root = xasprintf("%s/shoal-fuzz-swarm-XXXXXX", tmp);
  if (!mkdtemp(root))
    abort();
  atexit(cleanup);
  sh_err err = {0};
  char *root_pem = NULL, *root_key = NULL, *key = NULL, *csr = NULL,
       *cert = NULL;
  static char node_id[ID_LEN + 1], cluster_id[ID_LEN + 1];
  id_new(node_id);
  id_new(cluster_id);
  if (ca_root_create(&root_pem, &root_key, &err) < 0 ||
      ca_csr_create(&key, &csr, &err) < 0 ||
      ca_sign_csr(root_pem, root_key, csr, node_id, CA_ROLE_MANAGER, cluster_id,
                  INT64_C(3600) * 1000000000, &cert, &err) < 0) {
    fprintf(stderr, "fuzz: %s\n", err.msg);
    abort();
  }
  struct manager_config mc = {
      .loop = loop,
      .client = http_client_new(loop),
      .cluster_id = cluster_id,
      .state_dir = xasprintf("%s/swarm", root),
      .node_id = node_id,
      .listen_addr = xasprintf("127.0.0.1:%d", free_port()),
      .advertise_addr = "127.0.0.1:2377",
      .cert_pem = cert,
      .key_pem = key,
      .root_pem = root_pem,
      .hostname = "fuzz",
      .availability = "active",
  };
  struct manager_init in = {.task_history_limit = -1,
                            .root_cert_pem = root_pem,
                            .root_key_pem = root_key,
                            .cluster_id = cluster_id};
  int done = 0;
  if (manager_create(&mc, &in, created, &done, &mgr, &err) < 0) {
    fprintf(stderr, "fuzz: %s\n", err.msg);
    abort();
  }
  for (int i = 0; !done && i < 30000; i++) {
    uv_run(loop, UV_RUN_NOWAIT);
    usleep(1000);
  }
  if (!done || !manager_is_leader(mgr))
    abort();
  json_t *cluster = store_cluster(manager_store(mgr));
  worker_token = xstrdup(jx_str(cluster, "JoinTokens.Worker", ""));
  manager_token = xstrdup(jx_str(cluster, "JoinTokens.Manager", ""));
  if (strlen(worker_token) != 85 || strlen(manager_token) != 85)
    abort();

  /* The swarm port's handler on a plain listener. */
  struct http_server *srv = http_server_new(loop, swarmapi_handle, mgr);
  struct http_limits lim;
  http_limits_default(&lim);
  lim.max_body = lim.max_body_unauth;
  http_server_set_limits(srv, &lim);
  if (http_server_listen_tcp(srv, "127.0.0.1", 0, NULL, &err) < 0) {
    fprintf(stderr, "fuzz: %s\n", err.msg);
    abort();
  }
  port = http_server_port(srv);
  /* The manager keeps its own copies. */
  free((char *)mc.state_dir);
  free((char *)mc.listen_addr);
  free(root_pem);
  free(root_key);
  free(key);
  free(csr);
  free(cert);
}

/* Input with the token placeholders filled in. */
static char *fill(const uint8_t *data, size_t size, size_t *out_len) {
  sh_buf b = {0};
  for (size_t i = 0; i < size;) {
    if (size - i >= 8 && !memcmp(data + i, "@WORKER@", 8)) {
      buf_append(&b, worker_token, strlen(worker_token));
      i += 8;
    } else if (size - i >= 9 && !memcmp(data + i, "@MANAGER@", 9)) {
      buf_append(&b, manager_token, strlen(manager_token));
      i += 9;
    } else {
      buf_append(&b, data + i, 1);
      i++;
    }
  }
  *out_len = b.len;
  return b.data ? b.data : xstrdup("");
}

static void removed(void *ud, int status, const sh_err *err) {
  *(int *)ud = 1;
}

/* Drops the nodes joins made (all but this manager's). */
static void prune(void) {
  struct store *s = manager_store(mgr);
  if (store_count(s, STORE_NODE) < 32)
    return;
  struct store_tx *tx = store_tx_new();
  const char *self = manager_node_id(mgr);
  json_t *all = store_list(s, STORE_NODE);
  size_t i;
  json_t *n;
  json_array_foreach(all, i, n) {
    const char *id = jx_str(n, "ID", "");
    if (strcmp(id, self))
      store_tx_delete(tx, STORE_NODE, id, STORE_ANY_VERSION);
  }
  json_decref(all);
  int done = 0;
  sh_err err = {0};
  if (manager_propose(mgr, tx, removed, &done, &err) < 0)
    return;
  for (int k = 0; !done && k < 5000; k++) {
    uv_run(uv_default_loop(), UV_RUN_NOWAIT);
    usleep(200);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!mgr)
    setup();
  if (++runs % 64 == 0)
    prune();
  size_t len = 0;
  cleanup_free char *msg = fill(data, size, &len);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  /* Reset on close: no TIME_WAIT pile-up over millions of runs. */
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
    abort();
  fuzz_feed(fd, msg, len, getenv("FUZZ_VERBOSE") ? "swarm" : NULL);
  if (getenv("FUZZ_VERBOSE"))
    fprintf(stderr, "swarm: %zu nodes\n",
            store_count(manager_store(mgr), STORE_NODE));
  return 0;
}
