/* docker create / start (and so docker run): POST /containers/create and
 * POST /containers/{id}/start, served by the node's standalone containers'
 * owner (agent/standalone.h). */
#include "api/api.h"

#include "agent/standalone.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "daemon/daemon.h"
#include "http/server.h"

static void created(void *ud, int rc, const char *id, const sh_err *err) {
  struct http_req *req = ud;
  if (rc < 0) {
    api_reply_err(req, err);
    return;
  }
  api_reply_json(req, 201, json_pack("{s:s,s:[]}", "Id", id, "Warnings"));
}

static void started(void *ud, int rc, const char *id, const sh_err *err) {
  struct http_req *req = ud;
  (void)id;
  if (rc < 0)
    api_reply_err(req, err);
  else
    http_respond(req, rc == 1 ? 304 : 204, NULL, NULL, 0, NULL);
}

static void create(struct api_call *c) {
  sh_err err = {0};
  cleanup_json json_t *body = NULL;
  if (api_body(c->req, &body, &err) < 0)
    return api_reply_err(c->req, &err);
  cleanup_free char *platform = http_req_query(c->req, "platform");
  if (platform && *platform && !str_has_prefix(platform, "linux")) {
    sh_error(&err, 501, "platform %s is not supported by shoal: linux only",
             platform);
    return api_reply_err(c->req, &err);
  }
  cleanup_free char *name = http_req_query(c->req, "name");
  standalone_create(c->d->standalone, body, name, created, c->req);
}

bool api_run(struct api_call *c) {
  const char *p = c->path;
  if (strcmp(c->req->method, "POST") != 0 || !str_has_prefix(p, "/containers/"))
    return false;
  const char *rest = p + strlen("/containers/");
  const char *slash = strchr(rest, '/');
  bool is_create = strcmp(rest, "create") == 0;
  bool is_start = slash && slash != rest && strcmp(slash, "/start") == 0;
  if (!is_create && !is_start)
    return false;
  sh_err err = {0};
  if (!c->d->standalone) {
    sh_error(&err, 500, "%s",
             c->d->runtime_error ? c->d->runtime_error
                                 : "no container runtime on this node");
    api_reply_err(c->req, &err);
    return true;
  }
  if (is_create) {
    create(c);
    return true;
  }
  /* (checkpoint= and detachKeys= are for a checkpoint and an attach) */
  cleanup_free char *cp = http_req_query(c->req, "checkpoint");
  if (cp && *cp) {
    sh_error(&err, 501, "checkpoints are not supported by shoal");
    api_reply_err(c->req, &err);
    return true;
  }
  cleanup_free char *ref = xstrndup(rest, (size_t)(slash - rest));
  standalone_start(c->d->standalone, ref, started, c->req);
  return true;
}
