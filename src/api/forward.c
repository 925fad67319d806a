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
  static const char *const prefixes[] = {"/nodes/", "/services/", "/secrets/",
                                         "/configs/", "/networks/"};
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

/* A forwarded write's answer, held until this follower has applied the
 * leader's log up to the write: a client that reads right after writing
 * through any manager sees its write (swarmkit reads from the leader). */
struct relay {
  struct shoald *d;
  struct http_req *req;
  int status;
  char *body;
  size_t len;
  uint64_t want;
  int waited_ms;
  bool read; /* a read: nothing to catch up with */
  uv_timer_t timer;
};

#define CATCH_UP_POLL_MS 5
#define CATCH_UP_MAX_MS 3000

static void relay_closed(uv_handle_t *h) {
  struct relay *r = h->data;
  free(r->body);
  free(r);
}

static void relay_answer(struct relay *r) {
  if (r->status == 0)
    http_respond_error(r->req, 503, RAFTNODE_NO_LEADER_MSG);
  else
    http_respond(r->req, r->status, "application/json", r->body ? r->body : "",
                 r->len, NULL);
  uv_close((uv_handle_t *)&r->timer, relay_closed);
}

static void relay_poll(uv_timer_t *t) {
  struct relay *r = t->data;
  r->waited_ms += CATCH_UP_POLL_MS;
  if (!r->d->mgr || manager_applied_index(r->d->mgr) >= r->want ||
      r->waited_ms >= CATCH_UP_MAX_MS) {
    uv_timer_stop(t);
    relay_answer(r);
  }
}

static void got_index(const struct http_result *res, void *ud) {
  struct relay *r = ud;
  json_t *j = res->status == 200 ? json_loads(res->body, 0, NULL) : NULL;
  r->want = (uint64_t)jx_int(j, "Index", 0);
  json_decref(j);
  uv_timer_start(&r->timer, relay_poll, 0, CATCH_UP_POLL_MS);
}

/* Logs stream through as they come. */
struct log_relay {
  struct http_req *req;
  struct http_call *call;
};

static bool log_data(const char *data, size_t len, void *ud) {
  struct log_relay *l = ud;
  return http_stream_write(l->req, data, len) >= 0;
}

static void log_done(const struct http_result *res, void *ud) {
  struct log_relay *l = ud;
  l->req->on_close = NULL;
  http_stream_end(l->req);
  free(l);
}

static void log_client_gone(struct http_req *req, void *ud) {
  struct log_relay *l = ud;
  http_call_cancel(l->call);
  http_req_release(req);
  free(l);
}

static void relay(const struct http_result *res, void *ud) {
  struct relay *r = ud;
  r->status = res->status;
  if (res->body) {
    r->body = xmalloc(res->body_len + 1);
    memcpy(r->body, res->body, res->body_len);
    r->body[res->body_len] = '\0';
    r->len = res->body_len;
  }
  const char *leader = r->d->mgr ? manager_leader_addr(r->d->mgr) : NULL;
  if (res->status < 200 || res->status >= 300 || !leader || r->read)
    return relay_answer(r);
  struct shoald *d = r->d;
  cleanup_free char *url = xasprintf("https://%s/swarm/v1/index", leader);
  struct http_call_opts o = {.method = "GET",
                             .url = url,
                             .cert_pem = d->cert_pem,
                             .key_pem = d->key_pem,
                             .ca_pem = d->root_pem,
                             .timeout_ms = 3000};
  http_client_call(d->client, &o, NULL, got_index, r);
}

/* Cluster reads: swarmkit answers them from the leader, so a client never
 * sees a follower's older copy. */
static bool is_cluster_read(const char *method, const char *path) {
  if (strcmp(method, "GET") != 0)
    return false;
  static const char *const roots[] = {"/swarm", "/nodes",   "/services",
                                      "/tasks", "/secrets", "/configs"};
  for (size_t i = 0; i < ARRAY_SIZE(roots); i++) {
    size_t n = strlen(roots[i]);
    if (strncmp(path, roots[i], n) == 0 && (path[n] == '\0' || path[n] == '/'))
      return strcmp(path, "/swarm/unlockkey") != 0;
  }
  return false;
}

bool api_forward(struct api_call *c) {
  struct shoald *d = c->d;
  bool read = is_cluster_read(c->req->method, c->path);
  if (!d->mgr || manager_is_leader(d->mgr) ||
      (!read && !is_cluster_write(c->req->method, c->path)))
    return false;
  const char *leader = manager_leader_addr(d->mgr);
  if (!leader) {
    http_respond_error(c->req, 503, RAFTNODE_NO_LEADER_MSG);
    return true;
  }
  cleanup_free char *url =
      xasprintf("https://%s" FORWARD_PREFIX "%s", leader, c->req->url);
  const char *ct = http_req_header(c->req, "Content-Type");
  /* Service create and update carry the registry credentials in a header
   * (never logged; the leader keeps them in the sealed raft data). */
  const char *auth = http_req_header(c->req, "X-Registry-Auth");
  cleanup_free char *auth_line =
      auth && *auth ? xasprintf("X-Registry-Auth: %s", auth) : NULL;
  const char *headers[] = {auth_line, NULL};
  struct http_call_opts o = {
      .method = c->req->method,
      .url = url,
      .body = c->req->body,
      .body_len = c->req->body_len,
      .content_type = ct ? ct : "application/json",
      .headers = auth_line ? headers : NULL,
      .cert_pem = d->cert_pem,
      .key_pem = d->key_pem,
      .ca_pem = d->root_pem,
      .timeout_ms = 30000,
  };
  if (read && str_has_suffix(c->path, "/logs")) {
    struct log_relay *l = xcalloc(1, sizeof *l);
    l->req = c->req;
    o.timeout_ms = 0;
    http_stream_begin(c->req, 200, "application/vnd.docker.multiplexed-stream",
                      NULL);
    c->req->on_close = log_client_gone;
    c->req->on_close_ud = l;
    l->call = http_client_call(d->client, &o, log_data, log_done, l);
    return true;
  }
  struct relay *r = xcalloc(1, sizeof *r);
  r->d = d;
  r->req = c->req;
  r->read = read;
  uv_timer_init(d->loop, &r->timer);
  r->timer.data = r;
  http_client_call(d->client, &o, NULL, relay, r);
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
