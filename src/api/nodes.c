/* /nodes endpoints: list (filters), inspect, update, remove. */
#include "api/api.h"

#include "api/filters.h"
#include "api/schema.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "daemon/daemon.h"
#include "http/server.h"
#include "manager/manager.h"
#include "store/store.h"

static const char *const node_filters[] = {
    "id", "label", "membership", "name", "node.label", "role", NULL};

static bool node_matches(const struct filters *f, const json_t *n) {
  const char *id = jx_str(n, "ID", "");
  const char *host = jx_str(n, "Description.Hostname", "");
  if (!filters_match_prefix(f, "id", id))
    return false;
  /* name matches the hostname or, like swarmkit, the spec name. */
  if (filters_has(f, "name") && !filters_match_prefix(f, "name", host) &&
      !filters_match_prefix(f, "name", jx_str(n, "Spec.Name", "")))
    return false;
  if (!filters_match(f, "role", jx_str(n, "Spec.Role", "")))
    return false;
  if (!filters_match(f, "membership", "accepted"))
    return false;
  if (!filters_match_labels(f, "label", jx_get(n, "Description.Engine.Labels")))
    return false;
  if (!filters_match_labels(f, "node.label", jx_get(n, "Spec.Labels")))
    return false;
  return true;
}

static void list(struct api_call *c) {
  sh_err err = {0};
  cleanup_free char *raw = http_req_query(c->req, "filters");
  struct filters f = {0};
  if (filters_parse(raw, node_filters, &f, &err) < 0) {
    filters_free(&f);
    return api_reply_err(c->req, &err);
  }
  json_t *role_vals = json_object_get(f.map, "role");
  size_t i;
  json_t *v;
  json_array_foreach(role_vals, i, v) {
    const char *r = json_string_value(v);
    if (strcmp(r, "manager") && strcmp(r, "worker")) {
      filters_free(&f);
      sh_error(&err, 400, "Invalid role filter value: '%s'", r);
      return api_reply_err(c->req, &err);
    }
  }
  json_t *mem_vals = json_object_get(f.map, "membership");
  json_array_foreach(mem_vals, i, v) {
    const char *r = json_string_value(v);
    if (strcmp(r, "accepted") && strcmp(r, "pending")) {
      filters_free(&f);
      sh_error(&err, 400, "Invalid membership filter value: '%s'", r);
      return api_reply_err(c->req, &err);
    }
  }
  if (json_object_size(f.map) == 0) {
    filters_free(&f);
    return http_respond_json(c->req, 200, manager_nodes_json(c->d->mgr));
  }
  struct store *st = manager_store(c->d->mgr);
  json_t *nodes = store_list(st, STORE_NODE);
  json_t *out = json_array();
  json_t *n;
  json_array_foreach(nodes, i, n) {
    if (node_matches(&f, n))
      json_array_append_new(out, manager_node_view(c->d->mgr, n));
  }
  json_decref(nodes);
  filters_free(&f);
  api_reply_json(c->req, 200, out);
}

static void done_empty(void *ud, int status, const sh_err *err) {
  struct http_req *req = ud;
  if (status < 0)
    return api_reply_err(req, err);
  http_respond(req, 200, "text/plain; charset=utf-8", "", 0, NULL);
}

bool api_nodes(struct api_call *c) {
  const char *p = c->path;
  if (strcmp(p, "/nodes") != 0 && !str_has_prefix(p, "/nodes/"))
    return false;
  const char *m = c->req->method;
  sh_err err = {0};
  if (shoald_require_manager(c->d, &err) < 0) {
    api_reply_err(c->req, &err);
    return true;
  }
  if (strcmp(p, "/nodes") == 0) {
    if (strcmp(m, "GET") != 0)
      return false;
    list(c);
    return true;
  }
  cleanup_free char *ref = xstrdup(p + strlen("/nodes/"));
  bool update = false;
  char *slash = strchr(ref, '/');
  if (slash) {
    if (strcmp(slash, "/update") != 0)
      return false;
    *slash = '\0';
    update = true;
  }
  if (!*ref)
    return false;
  struct store *st = manager_store(c->d->mgr);
  if (update) {
    if (strcmp(m, "POST") != 0)
      return false;
    int64_t version;
    cleanup_json json_t *spec = NULL;
    if (api_query_version(c->req, "node", &version, &err) < 0 ||
        api_body(c->req, &spec, &err) < 0 ||
        schema_check(spec, "NodeSpec", schema_node_spec, &err) < 0 ||
        manager_update_node(c->d->mgr, ref, version, spec, done_empty, c->req,
                            &err) < 0)
      api_reply_err(c->req, &err);
    return true;
  }
  if (strcmp(m, "GET") == 0) {
    json_t *n = store_find(st, STORE_NODE, ref, &err);
    if (!n)
      api_reply_err(c->req, &err);
    else
      api_reply_json(c->req, 200, manager_node_view(c->d->mgr, n));
    return true;
  }
  if (strcmp(m, "DELETE") == 0) {
    if (manager_remove_node(c->d->mgr, ref, api_query_bool(c->req, "force"),
                            done_empty, c->req, &err) < 0)
      api_reply_err(c->req, &err);
    return true;
  }
  return false;
}
