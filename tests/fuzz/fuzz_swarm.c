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
 * small. After each input the store must still snapshot and restore to
 * itself (fuzz_check_store). */
#include "http/server.h"
#include "manager/internal.h"

#include "feed.h"
#include "leader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct fuzz_leader L;
static int port;
static unsigned runs;

static void setup(void) {
  fuzz_leader_start(&L, "swarm");
  /* The swarm port's handler on a plain listener. */
  sh_err err = {0};
  struct http_server *srv =
      http_server_new(uv_default_loop(), swarmapi_handle, L.m);
  struct http_limits lim;
  http_limits_default(&lim);
  lim.max_body = lim.max_body_unauth;
  http_server_set_limits(srv, &lim);
  if (http_server_listen_tcp(srv, "127.0.0.1", 0, NULL, &err) < 0) {
    fprintf(stderr, "fuzz: %s\n", err.msg);
    abort();
  }
  port = http_server_port(srv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!L.m)
    setup();
  /* Drops the nodes joins made (all but this manager). */
  if (++runs % 64 == 0)
    fuzz_prune_nodes(L.m, NULL, 32);
  const struct fuzz_subst subs[] = {{"@WORKER@", L.worker_token},
                                    {"@MANAGER@", L.manager_token}};
  size_t len = 0;
  cleanup_free char *msg = fuzz_fill(data, size, subs, 2, &len);
  int fd = fuzz_connect(port);
  if (fd < 0)
    abort();
  fuzz_feed(fd, msg, len, getenv("FUZZ_VERBOSE") ? "swarm" : NULL);
  fuzz_check_store(L.m);
  if (getenv("FUZZ_VERBOSE"))
    fprintf(stderr, "swarm: %zu nodes\n",
            store_count(manager_store(L.m), STORE_NODE));
  return 0;
}
