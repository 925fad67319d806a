/* /swarm endpoints: inspect, init, join, leave, update, unlock key. */
#include "api/api.h"

#include "api/schema.h"

#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "daemon/daemon.h"
#include "http/server.h"
#include "manager/manager.h"
#include "raft/raftnode.h"

#include <errno.h>
#include <inttypes.h>

int api_query_version(struct http_req *req, const char *what, int64_t *out,
                      sh_err *err) {
  cleanup_free char *v = http_req_query(req, "version");
  const char *s = v ? v : "";
  char *end = NULL;
  errno = 0;
  unsigned long long n = strtoull(s, &end, 10);
  if (!*s || *end || errno || s[0] == '-' || s[0] == '+')
    return sh_error(err, 400,
                    "invalid %s version '%s': strconv.ParseUint: parsing "
                    "\"%s\": %s",
                    what, s, s,
                    errno == ERANGE ? "value out of range" : "invalid syntax");
  if (n > INT64_MAX)
    return sh_error(err, 400,
                    "invalid %s version '%s': strconv.ParseUint: parsing "
                    "\"%s\": value out of range",
                    what, s, s);
  *out = (int64_t)n;
  return 0;
}

static void init_done(void *ud, int status, const sh_err *err) {
  struct http_req *req = ud;
  if (status < 0)
    return api_reply_err(req, err);
  struct shoald *d = req->user;
  api_reply_json(req, 200, json_string(d->node_id));
}

static void empty_done(void *ud, int status, const sh_err *err) {
  struct http_req *req = ud;
  if (status < 0)
    return api_reply_err(req, err);
  http_respond(req, 200, "text/plain; charset=utf-8", "", 0, NULL);
}

static void with_body(struct api_call *c,
                      int (*op)(struct shoald *, const json_t *, shoald_done_fn,
                                void *, sh_err *),
                      const char *type, const struct schema_field *schema,
                      shoald_done_fn done) {
  sh_err err = {0};
  cleanup_json json_t *body = NULL;
  if (api_body(c->req, &body, &err) < 0 ||
      schema_check(body, type, schema, &err) < 0)
    return api_reply_err(c->req, &err);
  c->req->user = c->d;
  if (op(c->d, body, done, c->req, &err) < 0)
    api_reply_err(c->req, &err);
}

static void update(struct api_call *c) {
  sh_err err = {0};
  if (shoald_require_manager(c->d, &err) < 0)
    return api_reply_err(c->req, &err);
  int64_t version;
  if (api_query_version(c->req, "swarm", &version, &err) < 0)
    return api_reply_err(c->req, &err);
  cleanup_json json_t *spec = NULL;
  if (api_body(c->req, &spec, &err) < 0 ||
      schema_check(spec, "Spec", schema_swarm_spec, &err) < 0)
    return api_reply_err(c->req, &err);
  if (manager_update_swarm(c->d->mgr, version, spec,
                           api_query_bool(c->req, "rotateWorkerToken"),
                           api_query_bool(c->req, "rotateManagerToken"),
                           api_query_bool(c->req, "rotateManagerUnlockKey"),
                           empty_done, c->req, &err) < 0)
    api_reply_err(c->req, &err);
}

/* POST /swarm/unlock {"UnlockKey": "SWMKEY-1-..."}. */
static void unlock(struct api_call *c) {
  sh_err err = {0};
  cleanup_json json_t *body = NULL;
  if (api_body(c->req, &body, &err) < 0 ||
      shoald_swarm_unlock(c->d, jx_str(body, "UnlockKey", ""), &err) < 0)
    return api_reply_err(c->req, &err);
  http_respond(c->req, 200, "text/plain; charset=utf-8", "", 0, NULL);
}

bool api_swarm(struct api_call *c) {
  const char *m = c->req->method;
  const char *p = c->path;
  if (!str_has_prefix(p, "/swarm"))
    return false;
  bool get = strcmp(m, "GET") == 0, post = strcmp(m, "POST") == 0;
  sh_err err = {0};
  if (strcmp(p, "/swarm") == 0 && get) {
    if (shoald_require_manager(c->d, &err) < 0) {
      api_reply_err(c->req, &err);
      return true;
    }
    json_t *v = manager_swarm_view(c->d->mgr);
    if (!v)
      http_respond_error(c->req, 503, RAFTNODE_NO_LEADER_MSG);
    else
      api_reply_json(c->req, 200, v);
  } else if (strcmp(p, "/swarm/init") == 0 && post) {
    with_body(c, shoald_swarm_init, "InitRequest", schema_init_request,
              init_done);
  } else if (strcmp(p, "/swarm/join") == 0 && post) {
    with_body(c, shoald_swarm_join, "JoinRequest", schema_join_request,
              empty_done);
  } else if (strcmp(p, "/swarm/leave") == 0 && post) {
    if (shoald_swarm_leave(c->d, api_query_bool(c->req, "force"), empty_done,
                           c->req, &err) < 0)
      api_reply_err(c->req, &err);
  } else if (strcmp(p, "/swarm/update") == 0 && post) {
    update(c);
  } else if (strcmp(p, "/swarm/unlockkey") == 0 && get) {
    if (shoald_require_manager(c->d, &err) < 0)
      api_reply_err(c->req, &err);
    else
      api_reply_json(
          c->req, 200,
          json_pack("{s:s}", "UnlockKey", manager_unlock_key(c->d->mgr)));
  } else if (strcmp(p, "/swarm/unlock") == 0 && post) {
    unlock(c);
  } else {
    return false;
  }
  return true;
}
