/* /secrets and /configs endpoints (managers only), as moby's swarm router
 * serves them: list with filters, create, inspect, update, remove. A
 * secret's Data is never in an answer (manager/secrets.h). */
#include "api/api.h"

#include "api/filters.h"
#include "core/err.h"
#include "core/id.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "daemon/daemon.h"
#include "http/server.h"
#include "manager/manager.h"
#include "manager/secrets.h"
#include "store/store.h"

#include <errno.h>

static const char *const list_filters[] = {"id", "label", "name", "names",
                                           NULL};

/* swarmkit's ListSecrets: names (exact), name (prefix) and id (prefix)
 * are one OR; labels must all match. */
static bool matches(const struct filters *f, const json_t *o) {
  const char *name = jx_str(o, "Spec.Name", "");
  bool by =
      filters_has(f, "names") || filters_has(f, "name") || filters_has(f, "id");
  if (by &&
      !((filters_has(f, "names") && filters_match(f, "names", name)) ||
        (filters_has(f, "name") && filters_match_prefix(f, "name", name)) ||
        (filters_has(f, "id") &&
         filters_match_prefix(f, "id", jx_str(o, "ID", "")))))
    return false;
  return filters_match_labels(f, "label", jx_get(o, "Spec.Labels"));
}

static void list(struct api_call *c, enum store_kind kind) {
  struct filters f = {0};
  sh_err err = {0};
  cleanup_free char *raw = http_req_query(c->req, "filters");
  if (filters_parse(raw, list_filters, &f, &err) < 0) {
    filters_free(&f);
    return api_reply_err(c->req, &err);
  }
  json_t *all = store_list(manager_store(c->d->mgr), kind);
  json_t *out = json_array();
  size_t i;
  json_t *o;
  json_array_foreach(all, i, o) {
    if (matches(&f, o))
      json_array_append_new(out, secrets_view(kind, o));
  }
  json_decref(all);
  filters_free(&f);
  api_reply_json(c->req, 200, out);
}

struct create_ctx {
  struct http_req *req;
  char id[ID_LEN + 1];
};

static void created(void *ud, int status, const sh_err *err) {
  struct create_ctx *cc = ud;
  if (status < 0)
    api_reply_err(cc->req, err);
  else
    api_reply_json(cc->req, 201, json_pack("{s:s}", "ID", cc->id));
  free(cc);
}

static void updated(void *ud, int status, const sh_err *err) {
  struct http_req *req = ud;
  if (status < 0)
    return api_reply_err(req, err);
  http_respond(req, 200, "text/plain; charset=utf-8", "", 0, NULL);
}

static void removed(void *ud, int status, const sh_err *err) {
  struct http_req *req = ud;
  if (status < 0)
    return api_reply_err(req, err);
  http_respond(req, 204, NULL, "", 0, NULL);
}

static int query_version(struct http_req *req, enum store_kind kind,
                         int64_t *out, sh_err *err) {
  cleanup_free char *v = http_req_query(req, "version");
  char *end = NULL;
  errno = 0;
  unsigned long long n = v && *v ? strtoull(v, &end, 10) : 0;
  if (!v || !*v || *end || errno || v[0] == '-' || v[0] == '+' || n > INT64_MAX)
    return sh_error(err, 400, "invalid %s version",
                    kind == STORE_SECRET ? "secret" : "config");
  *out = (int64_t)n;
  return 0;
}

static bool route(struct api_call *c, enum store_kind kind, const char *p) {
  const char *m = c->req->method;
  struct manager *mgr = c->d->mgr;
  sh_err err = {0};
  if (!*p) {
    if (strcmp(m, "GET") != 0)
      return false;
    list(c, kind);
    return true;
  }
  if (strcmp(p, "/create") == 0) {
    if (strcmp(m, "POST") != 0)
      return false;
    cleanup_json json_t *spec = NULL;
    struct create_ctx *cc = xcalloc(1, sizeof *cc);
    cc->req = c->req;
    if (api_body(c->req, &spec, &err) < 0 ||
        manager_create_secret(mgr, kind, spec, cc->id, created, cc, &err) < 0) {
      free(cc);
      api_reply_err(c->req, &err);
    }
    return true;
  }
  if (*p != '/' || !p[1])
    return false;
  cleanup_free char *ref = xstrdup(p + 1);
  char *slash = strchr(ref, '/');
  const char *action = "";
  if (slash) {
    *slash = '\0';
    action = slash + 1;
  }
  if (!*ref)
    return false;
  if (strcmp(action, "update") == 0 && strcmp(m, "POST") == 0) {
    int64_t version = 0;
    cleanup_json json_t *spec = NULL;
    if (api_body(c->req, &spec, &err) < 0 ||
        query_version(c->req, kind, &version, &err) < 0 ||
        manager_update_secret(mgr, kind, ref, version, spec, updated, c->req,
                              &err) < 0)
      api_reply_err(c->req, &err);
    return true;
  }
  if (*action)
    return false;
  if (strcmp(m, "GET") == 0) {
    json_t *o = store_find(manager_store(mgr), kind, ref, &err);
    if (!o)
      api_reply_err(c->req, &err);
    else
      api_reply_json(c->req, 200, secrets_view(kind, o));
    return true;
  }
  if (strcmp(m, "DELETE") == 0) {
    if (manager_remove_secret(mgr, kind, ref, removed, c->req, &err) < 0)
      api_reply_err(c->req, &err);
    return true;
  }
  return false;
}

bool api_secrets(struct api_call *c) {
  enum store_kind kind;
  const char *p;
  if (str_has_prefix(c->path, "/secrets") &&
      (c->path[8] == '\0' || c->path[8] == '/')) {
    kind = STORE_SECRET;
    p = c->path + 8;
  } else if (str_has_prefix(c->path, "/configs") &&
             (c->path[8] == '\0' || c->path[8] == '/')) {
    kind = STORE_CONFIG;
    p = c->path + 8;
  } else {
    return false;
  }
  sh_err err = {0};
  if (shoald_require_manager(c->d, &err) < 0) {
    api_reply_err(c->req, &err);
    return true;
  }
  return route(c, kind, p);
}
