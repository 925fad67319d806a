/* Writes to cluster state are decided by the raft leader. A follower
 * manager forwards them, unchanged, to the leader's swarm port
 * (/swarm/v1/forward/<original path>, mutual TLS with its manager
 * certificate) and relays the answer, so any manager answers every API
 * call with the leader's result. */
#include "api/api.h"

#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "daemon/daemon.h"
#include "http/client.h"
#include "http/server.h"
#include "manager/manager.h"
#include "raft/raftnode.h"

#define FORWARD_PREFIX "/swarm/v1/forward"

/* Cluster writes: the routes whose handlers propose to raft. */
static bool is_cluster_write(const char *method, const char *path) {
  if (strcmp(method, "POST") != 0 && strcmp(method, "DELETE") != 0)
    return false;
  static const char *const prefixes[] = {"/nodes/", "/services/",
                                         "/secrets/", "/configs/",
                                         "/networks/"};
  if (strcmp(path, "/swarm/update") == 0 ||
      strcmp(path, "/services/create") == 0 ||
      strcmp(path, "/secrets/create") == 0 ||
      strcmp(path, "/configs/create") == 0 ||
      strcmp(path, "/networks/create") == 0)
    return true;
  for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++)
    if (str_has_prefix(path, prefixes[i]))
      return true;
  return false;
}

static void relay(const struct http_result *res, void *ud) {
  struct http_req *req = ud;
  if (res->status == 0) {
    http_respond_error(req, 503, RAFTNODE_NO_LEADER_MSG);
    return;
  }
  http_respond(req, res->status, "application/json",
               res->body ? res->body : "", res->body_len, NULL);
}

bool api_forward(struct api_call *c) {
  struct shoald *d = c->d;
  if (!d->mgr || manager_is_leader(d->mgr) ||
      !is_cluster_write(c->req->method, c->path))
    return false;
  const char *leader = manager_leader_addr(d->mgr);
  if (!leader) {
    http_respond_error(c->req, 503, RAFTNODE_NO_LEADER_MSG);
    return true;
  }
  cleanup_free char *url =
      xasprintf("https://%s" FORWARD_PREFIX "%s", leader, c->req->url);
  const char *ct = http_req_header(c->req, "Content-Type");
  struct http_call_opts o = {
      .method = c->req->method,
      .url = url,
      .body = c->req->body,
      .body_len = c->req->body_len,
      .content_type = ct ? ct : "application/json",
      .cert_pem = d->cert_pem,
      .key_pem = d->key_pem,
      .ca_pem = d->root_pem,
      .timeout_ms = 30000,
  };
  http_client_call(d->client, &o, NULL, relay, c->req);
  return true;
}

void api_handle_forwarded(struct http_req *req, void *ud) {
  /* Strip the prefix in place: the server owns these strings. */
  size_t n = strlen(FORWARD_PREFIX);
  if (str_has_prefix(req->path, FORWARD_PREFIX))
    memmove(req->path, req->path + n, strlen(req->path + n) + 1);
  if (str_has_prefix(req->url, FORWARD_PREFIX))
    memmove(req->url, req->url + n, strlen(req->url + n) + 1);
  api_handle(req, ud);
}
