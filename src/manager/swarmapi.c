/* The swarm port (2377): node-to-node API over TLS. Every request is
 * decided by one policy (authz.h: endpoint -> the role the store must
 * give the caller) before its handler runs; handlers act for the node the
 * policy names, never for a name the request carries. */
#include "ca/ca.h"
#include "core/err.h"
#include "core/id.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "http/client.h"
#include "http/server.h"
#include "manager/attach.h"
#include "manager/dispatcher.h"
#include "manager/authz.h"
#include "manager/internal.h"
#include "manager/logbroker.h"
#include "manager/rootca.h"
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
  char addr[128];
};

/* The cluster's root as this manager's store has it (it changes when a
 * root rotation completes); before any state, the one this node trusts. */
static const char *cluster_root(struct manager *m) {
  const char *root = jx_str(store_cluster(m->store), "TLSInfo.TrustRoot", "");
  return *root ? root : m->root_pem;
}

static void join_committed(void *ud, int status, const sh_err *err) {
  struct join_ctx *c = ud;
  if (status < 0) {
    respond_err(c->req, err);
  } else {
    json_t *cluster = store_cluster(c->m->store);
    json_t *resp =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:s}", "NodeID", c->node_id,
                  "ClusterID", jx_str(cluster, "ID", ""), "Certificate",
                  c->cert_pem, "RootCA", cluster_root(c->m), "Role", c->role,
                  "Managers", manager_addresses(c->m), "Addr", c->addr);
    cleanup_free char *body = jx_dump(resp);
    json_decref(resp);
    http_respond_json(c->req, 200, body);
  }
  free(c->cert_pem);
  free(c);
}

/* ---- proxying to the leader ---- */

/* Followers pass node-to-node calls that must run on the leader (joins,
 * renewals, raft membership) to it, over mutual TLS with their own
 * certificate, naming the node they checked (Shoal-For-Node) and the
 * address they saw (Shoal-Observed-Addr). The leader believes those only
 * from a current manager and raft member, and only on the endpoints the
 * policy marks forwardable; it then checks the named node itself. */
#define OBSERVED_ADDR_HEADER "Shoal-Observed-Addr"
#define FOR_NODE_HEADER "Shoal-For-Node"

static void proxied(const struct http_result *res, void *ud) {
  struct http_req *req = ud;
  if (res->status == 0)
    return http_respond_error(req, 503, RAFTNODE_NO_LEADER_MSG);
  http_respond(req, res->status, "application/json", res->body ? res->body : "",
               res->body_len, NULL);
}

static void proxy_to_leader(struct manager *m, struct http_req *req,
                            const struct authz_who *who) {
  const char *leader = manager_leader_addr(m);
  if (!leader)
    return http_respond_error(req, 503, RAFTNODE_NO_LEADER_MSG);
  cleanup_free char *url = xasprintf("https://%s%s", leader, req->url);
  char h1[128], h2[128];
  snprintf(h1, sizeof h1, OBSERVED_ADDR_HEADER ": %s", req->peer_addr);
  snprintf(h2, sizeof h2, FOR_NODE_HEADER ": %s",
           who->node_id ? who->node_id : "");
  const char *headers[] = {h1, who->node_id ? h2 : NULL, NULL};
  struct http_call_opts o = {.method = req->method,
                             .url = url,
                             .body = req->body,
                             .body_len = req->body_len,
                             .headers = headers,
                             .cert_pem = m->cert_pem,
                             .key_pem = m->key_pem,
                             .ca_pem = m->root_pem,
                             .timeout_ms = 30000};
  http_client_call(m->client, &o, NULL, proxied, req);
}

/* The peer's address, or the one a forwarding manager vouches for. */
static const char *origin_addr(struct http_req *req,
                               const struct authz_who *who) {
  const char *fwd = http_req_header(req, OBSERVED_ADDR_HEADER);
  if (fwd && who->via_manager)
    return fwd;
  return req->peer_addr;
}

/* POST /swarm/v1/raft/join from a manager whose raft is listening. */
static void raft_added(void *ud, int status, const sh_err *err) {
  struct http_req *req = ud;
  if (status < 0)
    return respond_err(req, err);
  http_respond_json(req, 200, "{}");
}

static void handle_raft_join(struct manager *m, struct http_req *req,
                             const struct authz_who *who) {
  if (!m->leader)
    return proxy_to_leader(m, req, who);
  const char *node_id = who->node_id;
  json_t *node = store_get(m->store, STORE_NODE, node_id);
  const char *addr = jx_str(node, "ManagerStatus.Addr", NULL);
  if (!node || strcmp(jx_str(node, "Spec.Role", ""), "manager") != 0 || !addr)
    return http_respond_error(req, 403, "node is not a manager of this swarm");
  sh_err err = {0};
  if (raftnode_add(m->raft, raftnode_id_for(node_id), addr, raft_added, req,
                   &err) < 0)
    respond_err(req, &err);
}

/* POST /swarm/v1/renew {CSR, Addr}: a node's new certificate for the role
 * its Spec now says (promote / demote). A node becoming a manager gets its
 * manager status (raft address) first, so it can then join raft. */
struct renew_ctx {
  struct manager *m;
  struct http_req *req;
  char node_id[ID_LEN + 1];
  char *csr;
};

static void renew_sign(void *ud, int status, const sh_err *err) {
  struct renew_ctx *c = ud;
  struct manager *m = c->m;
  sh_err e = {0};
  json_t *cluster = store_cluster(m->store);
  json_t *node = store_get(m->store, STORE_NODE, c->node_id);
  char *cert = NULL;
  if (status < 0) {
    respond_err(c->req, err);
  } else if (!node) {
    http_respond_error(c->req, 404, "node not found");
  } else {
    bool mgr = strcmp(jx_str(node, "Spec.Role", ""), "manager") == 0;
    if (rootca_sign(cluster, c->csr, c->node_id,
                    mgr ? CA_ROLE_MANAGER : CA_ROLE_WORKER, &cert, &e) < 0) {
      respond_err(c->req, &e);
    } else {
      /* RootCA: the root the cluster has now, which a node that missed a
       * rotation's end checks the new certificate against. */
      json_t *resp = json_pack("{s:s, s:s, s:s, s:s}", "Certificate", cert,
                               "Role", mgr ? "manager" : "worker", "Addr",
                               jx_str(node, "ManagerStatus.Addr", ""), "RootCA",
                               jx_str(cluster, "TLSInfo.TrustRoot", ""));
      cleanup_free char *body = jx_dump(resp);
      json_decref(resp);
      http_respond_json(c->req, 200, body);
    }
  }
  free(cert);
  free(c->csr);
  free(c);
}

/* Only ever for the node the policy named (the caller, or the client a
 * follower passed on): never for an ID the request body chooses. */
static void handle_renew(struct manager *m, struct http_req *req,
                         const struct authz_who *who) {
  if (!m->leader)
    return proxy_to_leader(m, req, who);
  sh_err err = {0};
  cleanup_json json_t *body = NULL;
  if (jx_parse_object(req->body, req->body_len, &body, &err) < 0)
    return respond_err(req, &err);
  const char *node_id = who->node_id;
  json_t *node = store_get(m->store, STORE_NODE, node_id);
  const char *csr = jx_str(body, "CSR", NULL);
  if (!node || !csr)
    return http_respond_error(req, 404, "node not found");
  /* Checked at the promotion too, but the managers may have moved to a
   * newer form since: a manager's log and snapshots must be readable. */
  bool becoming = strcmp(jx_str(node, "Spec.Role", ""), "manager") == 0 &&
                  !json_object_get(node, "ManagerStatus");
  if (becoming && store_check_new_manager(
                      m->store, json_object_get(node, "Description"), &err) < 0)
    return respond_err(req, &err);
  struct renew_ctx *c = xcalloc(1, sizeof *c);
  c->m = m;
  c->req = req;
  snprintf(c->node_id, sizeof c->node_id, "%s", node_id);
  c->csr = xstrdup(csr);
  if (becoming) {
    char adv[128];
    const char *want = jx_str(body, "Addr", "");
    if (*want)
      snprintf(adv, sizeof adv, "%s", want);
    else
      snprintf(adv, sizeof adv, "%s:%d", origin_addr(req, who),
               SWARM_DEFAULT_PORT);
    json_t *next = json_deep_copy(node);
    json_object_set_new(
        next, "ManagerStatus",
        json_pack("{s:s, s:s}", "Reachability", "unknown", "Addr", adv));
    struct store_tx *tx = store_tx_new();
    store_tx_put(tx, STORE_NODE, next, jx_int(node, "Version.Index", 0));
    if (manager_propose(m, tx, renew_sign, c, &err) < 0)
      renew_sign(c, -1, &err);
    return;
  }
  renew_sign(c, 0, NULL);
}

static void handle_join(struct manager *m, struct http_req *req,
                        const struct authz_who *who) {
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
  if (!m->leader)
    return proxy_to_leader(m, req, who);
  bool manager = strcmp(role, "manager") == 0;
  if (manager && store_check_new_manager(
                     m->store, json_object_get(body, "Description"), &err) < 0)
    return respond_err(req, &err);
  /* A manager's address for raft and the dispatcher: the one it advertises,
   * else how we see it, on its listen port. */
  char adv[128];
  const char *want = jx_str(body, "AdvertiseAddr", "");
  int64_t lport = jx_int(body, "ListenPort", SWARM_DEFAULT_PORT);
  if (*want)
    snprintf(adv, sizeof adv, "%s", want);
  else
    snprintf(adv, sizeof adv, "%s:%lld", origin_addr(req, who),
             (long long)lport);
  const char *avail = jx_str(body, "Availability", "active");
  if (!*avail)
    avail = "active";
  if (strcmp(avail, "active") && strcmp(avail, "pause") &&
      strcmp(avail, "drain"))
    return http_respond_error(req, 400, "invalid Availability");

  struct join_ctx *c = xcalloc(1, sizeof *c);
  c->req = req;
  c->m = m;
  c->role = role;
  id_new(c->node_id);
  snprintf(c->addr, sizeof c->addr, "%s", adv);
  if (rootca_sign(cluster, csr, c->node_id,
                  manager ? CA_ROLE_MANAGER : CA_ROLE_WORKER, &c->cert_pem,
                  &err) < 0) {
    free(c);
    return respond_err(req, &err);
  }
  json_t *desc = json_object_get(body, "Description");
  json_t *node = manager_new_node_object(
      m, c->node_id, role, avail, jx_str(body, "Hostname", ""),
      origin_addr(req, who), json_is_object(desc) ? desc : NULL, c->cert_pem,
      cluster_root(m));
  if (manager)
    json_object_set_new(
        node, "ManagerStatus",
        json_pack("{s:s, s:s}", "Reachability", "unknown", "Addr", adv));
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_NODE, node, STORE_MUST_CREATE);
  if (manager_propose(m, tx, join_committed, c, &err) < 0) {
    free(c->cert_pem);
    free(c);
    return respond_err(req, &err);
  }
}

static bool raft_member(void *ud, const char *node_id) {
  return manager_is_raft_member(ud, node_id);
}

void swarmapi_handle(struct http_req *req, void *ud) {
  struct manager *m = ud;
  int status = 404;
  const struct authz_rule *rule =
      authz_rule_for(req->method, req->path, &status);
  /* A caller without a certificate learns nothing, not even which paths
   * exist: 401 before 404. */
  if (!rule && !req->peer_verified)
    return http_respond_error(req, 401, AUTHZ_NO_CERT_MSG);
  if (!rule)
    return http_respond_error(
        req, status, status == 405 ? "method not allowed" : "page not found");
  struct authz_env env = {.store = m->store,
                          .cluster_id = m->cluster_id,
                          .leader = m->leader,
                          .raft_member = raft_member,
                          .ud = m};
  struct authz_peer peer = {.verified = req->peer_verified,
                            .cn = req->peer_cn,
                            .ou = req->peer_ou,
                            .o = req->peer_o};
  struct authz_who who;
  sh_err err = {0};
  if (authz_check(&env, rule, &peer, http_req_header(req, FOR_NODE_HEADER),
                  &who, &err) < 0)
    return respond_err(req, &err);

  const char *path = req->path;
  if (strcmp(path, "/swarm/v1/ca") == 0) {
    const char *root = cluster_root(m);
    return http_respond(req, 200, "application/x-pem-file", root, strlen(root),
                        NULL);
  }
  if (strcmp(path, "/swarm/v1/join") == 0)
    return handle_join(m, req, &who);
  /* The raft module checks the raft id against the certificate. */
  if (strcmp(path, "/swarm/v1/raft") == 0)
    return raftnode_accept_upgrade(m->raft, req);
  if (str_has_prefix(path, "/swarm/v1/forward/")) {
    if (!m->forwarded)
      return http_respond_error(req, 404, "page not found");
    if (!m->leader)
      return http_respond_error(req, 503, RAFTNODE_NO_LEADER_MSG);
    return m->forwarded(req, m->forwarded_ud);
  }
  if (strcmp(path, "/swarm/v1/index") == 0) {
    /* How far this manager has applied the log: a follower that forwarded
     * a write waits to reach it, so the client reads its own write. */
    char out[64];
    snprintf(out, sizeof out, "{\"Index\":%llu}",
             (unsigned long long)raftnode_last_applied(m->raft));
    return http_respond_json(req, 200, out);
  }
  if (strcmp(path, "/swarm/v1/session") == 0)
    return dispatcher_session(m->disp, req, who.node_id);
  if (strcmp(path, "/swarm/v1/heartbeat") == 0)
    return dispatcher_heartbeat(m->disp, req, who.node_id);
  if (strcmp(path, "/swarm/v1/raft/join") == 0)
    return handle_raft_join(m, req, &who);
  if (strcmp(path, "/swarm/v1/renew") == 0)
    return handle_renew(m, req, &who);
  if (str_has_prefix(path, "/swarm/v1/logs/"))
    return logbroker_publish(m->logs, req, who.node_id);
  if (strcmp(path, "/swarm/v1/tasks") == 0)
    return dispatcher_task_status(m->disp, req, who.node_id);
  if (strcmp(path, "/swarm/v1/attach") == 0)
    return attachments_attach(m->attach, req, who.node_id);
  if (strcmp(path, "/swarm/v1/detach") == 0)
    return attachments_detach(m->attach, req, who.node_id);
  if (strcmp(path, "/swarm/v1/leave") == 0)
    return dispatcher_leave(m->disp, req, who.node_id);
  http_respond_error(req, 404, "page not found");
}
