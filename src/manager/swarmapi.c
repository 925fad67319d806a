/* The swarm port (2377): node-to-node API over TLS. The CA and join
 * endpoints serve nodes that have no certificate yet; everything else
 * needs a client certificate issued by this cluster's CA. */
#include "ca/ca.h"
#include "core/err.h"
#include "core/id.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "http/server.h"
#include "manager/dispatcher.h"
#include "manager/internal.h"
#include "raft/raftnode.h"
#include "store/store.h"

#define INVALID_TOKEN_MSG                                                      \
  "rpc error: code = InvalidArgument desc = A valid join token is necessary "  \
  "to join this cluster"

static void respond_err(struct http_req *req, const sh_err *err) {
  http_respond_error(req, err->status ? err->status : 500, err->msg);
}

struct join_ctx {
  struct http_req *req;
  struct manager *m;
  char node_id[ID_LEN + 1];
  char *cert_pem;
  const char *role;
};

static void join_committed(void *ud, int status, const sh_err *err) {
  struct join_ctx *c = ud;
  if (status < 0) {
    respond_err(c->req, err);
  } else {
    json_t *cluster = store_cluster(c->m->store);
    json_t *resp = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:o}", "NodeID", c->node_id, "ClusterID",
        jx_str(cluster, "ID", ""), "Certificate", c->cert_pem, "RootCA",
        c->m->root_pem, "Role", c->role, "Managers", manager_addresses(c->m));
    cleanup_free char *body = jx_dump(resp);
    json_decref(resp);
    http_respond_json(c->req, 200, body);
  }
  free(c->cert_pem);
  free(c);
}

static void handle_join(struct manager *m, struct http_req *req) {
  sh_err err = {0};
  cleanup_json json_t *body = NULL;
  if (jx_parse_object(req->body, req->body_len, &body, &err) < 0)
    return respond_err(req, &err);
  json_t *cluster = store_cluster(m->store);
  if (!cluster)
    return http_respond_error(req, 503, "this manager has no cluster yet");
  const char *token = jx_str(body, "Token", NULL);
  const char *csr = jx_str(body, "CSR", NULL);
  if (!token || !csr)
    return http_respond_error(req, 400, "Token and CSR are required");
  const char *role;
  if (ca_token_equal(token, jx_str(cluster, "JoinTokens.Worker", "")))
    role = "worker";
  else if (ca_token_equal(token, jx_str(cluster, "JoinTokens.Manager", "")))
    role = "manager";
  else
    return http_respond_error(req, 400, INVALID_TOKEN_MSG);
  if (strcmp(role, "manager") == 0)
    return http_respond_error(
        req, 501, "joining as a manager is not supported by shoal yet");
  if (!m->leader)
    return http_respond_error(req, 503, RAFTNODE_NO_LEADER_MSG);
  const char *avail = jx_str(body, "Availability", "active");
  if (!*avail)
    avail = "active";
  if (strcmp(avail, "active") && strcmp(avail, "pause") &&
      strcmp(avail, "drain"))
    return http_respond_error(req, 400, "invalid availability");

  struct join_ctx *c = xcalloc(1, sizeof *c);
  c->req = req;
  c->m = m;
  c->role = role;
  id_new(c->node_id);
  if (ca_sign_csr(m->root_pem, jx_str(cluster, "_CAKey", ""), csr, c->node_id,
                  CA_ROLE_WORKER, jx_str(cluster, "ID", ""),
                  jx_int(cluster, "Spec.CAConfig.NodeCertExpiry", 0),
                  &c->cert_pem, &err) < 0) {
    free(c);
    return respond_err(req, &err);
  }
  json_t *desc = json_object_get(body, "Description");
  json_t *node = manager_new_node_object(
      m, c->node_id, role, avail, jx_str(body, "Hostname", ""), req->peer_addr,
      json_is_object(desc) ? desc : NULL);
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_NODE, node, STORE_MUST_CREATE);
  if (manager_propose(m, tx, join_committed, c, &err) < 0) {
    free(c->cert_pem);
    free(c);
    return respond_err(req, &err);
  }
}

void swarmapi_handle(struct http_req *req, void *ud) {
  struct manager *m = ud;
  if (strcmp(req->path, "/swarm/v1/ca") == 0 &&
      strcmp(req->method, "GET") == 0) {
    http_respond(req, 200, "application/x-pem-file", m->root_pem,
                 strlen(m->root_pem), NULL);
    return;
  }
  if (strcmp(req->path, "/swarm/v1/join") == 0 &&
      strcmp(req->method, "POST") == 0)
    return handle_join(m, req);

  /* Everything else: only this cluster's nodes. */
  json_t *cluster = store_cluster(m->store);
  if (!req->peer_verified || !cluster ||
      strcmp(req->peer_o, jx_str(cluster, "ID", "")) != 0)
    return http_respond_error(req, 401,
                              "a certificate from this swarm's CA is "
                              "required");
  if (str_has_prefix(req->path, "/swarm/v1/forward/")) {
    if (strcmp(req->peer_ou, CA_ROLE_MANAGER) != 0 || !m->forwarded)
      return http_respond_error(req, 403,
                                "only managers may forward API calls");
    if (!m->leader)
      return http_respond_error(req, 503, RAFTNODE_NO_LEADER_MSG);
    return m->forwarded(req, m->forwarded_ud);
  }
  if (strcmp(req->method, "POST") != 0)
    return http_respond_error(req, 405, "method not allowed");
  if (strcmp(req->path, "/swarm/v1/session") == 0)
    return dispatcher_session(m->disp, req, req->peer_cn);
  if (strcmp(req->path, "/swarm/v1/heartbeat") == 0)
    return dispatcher_heartbeat(m->disp, req, req->peer_cn);
  if (strcmp(req->path, "/swarm/v1/tasks") == 0)
    return dispatcher_task_status(m->disp, req, req->peer_cn);
  if (strcmp(req->path, "/swarm/v1/leave") == 0)
    return dispatcher_leave(m->disp, req, req->peer_cn);
  http_respond_error(req, 404, "page not found");
}
