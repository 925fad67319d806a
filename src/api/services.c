/* /services and /tasks endpoints. */
#include "api/api.h"

#include "api/filters.h"
#include "api/schema.h"
#include "core/err.h"
#include "core/id.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "daemon/daemon.h"
#include "http/server.h"
#include "manager/attach.h"
#include "manager/logbroker.h"
#include "manager/manager.h"
#include "manager/orchestrator.h"
#include "manager/services.h"
#include "store/store.h"

static const char *const service_filters[] = {"id", "label", "mode", "name",
                                              NULL};
static const char *const task_filters[] = {"desired-state", "id",   "label",
                                           "name",          "node", "service",
                                           "_up-to-date",   NULL};

static int parse_filters(struct api_call *c, const char *const *allowed,
                         struct filters *f) {
  sh_err err = {0};
  cleanup_free char *raw = http_req_query(c->req, "filters");
  if (filters_parse(raw, allowed, f, &err) < 0) {
    filters_free(f);
    api_reply_err(c->req, &err);
    return -1;
  }
  return 0;
}

static bool service_matches(const struct filters *f, const json_t *s) {
  const char *m = services_mode_name(json_object_get(s, "Spec"));
  const char *mode = strcmp(m, "Global") == 0          ? "global"
                     : strcmp(m, "ReplicatedJob") == 0 ? "replicated-job"
                     : strcmp(m, "GlobalJob") == 0     ? "global-job"
                                                       : "replicated";
  return filters_match_prefix(f, "id", jx_str(s, "ID", "")) &&
         filters_match_prefix(f, "name", jx_str(s, "Spec.Name", "")) &&
         filters_match(f, "mode", mode) &&
         filters_match_labels(f, "label", jx_get(s, "Spec.Labels"));
}

static bool has_empty(const struct filters *f, const char *name);

/* The services a name filter (prefixes of Spec.Name) can match, from the
 * name index's keys; every service without one. */
static json_t *service_candidates(struct store *st, const struct filters *f) {
  if (!filters_has(f, "name") || has_empty(f, "name"))
    return store_list(st, STORE_SERVICE);
  cleanup_json json_t *keys = store_index_keys(st, STORE_SERVICES_BY_NAME);
  cleanup_json json_t *found = json_object();
  size_t i, j;
  json_t *k, *o;
  json_array_foreach(keys, i, k) {
    if (!filters_match_prefix(f, "name", json_string_value(k)))
      continue;
    cleanup_json json_t *l =
        store_list_by(st, STORE_SERVICES_BY_NAME, json_string_value(k));
    json_array_foreach(l, j, o) json_object_set(found, jx_str(o, "ID", ""), o);
  }
  return jx_sorted_by_created(found);
}

static void list_services(struct api_call *c) {
  struct filters f = {0};
  if (parse_filters(c, service_filters, &f) < 0)
    return;
  bool status = api_query_bool(c->req, "status");
  struct manager *m = c->d->mgr;
  json_t *all = service_candidates(manager_store(m), &f);
  json_t *out = json_array();
  size_t i;
  json_t *s;
  json_array_foreach(all, i, s) {
    if (service_matches(&f, s))
      json_array_append_new(out, manager_service_view(m, s, false, status));
  }
  json_decref(all);
  filters_free(&f);
  api_reply_json(c->req, 200, out);
}

/* Task filters as swarmkit/moby apply them. */
static bool task_matches(struct store *st, const struct filters *f,
                         const json_t *t) {
  if (!filters_match_prefix(f, "id", jx_str(t, "ID", "")))
    return false;
  if (!filters_match(f, "desired-state", jx_str(t, "DesiredState", "")))
    return false;
  json_t *svc = store_get(st, STORE_SERVICE, jx_str(t, "ServiceID", ""));
  /* swarmkit matches the service's labels (ServiceAnnotations), which is
   * how `docker stack ps` finds a stack's tasks. */
  if (!filters_match_labels(f, "label", jx_get(svc, "Spec.Labels")))
    return false;
  if (filters_has(f, "service") &&
      !filters_match_prefix(f, "service", jx_str(t, "ServiceID", "")) &&
      !filters_match(f, "service", jx_str(svc, "Spec.Name", "")))
    return false;
  json_t *node = store_get(st, STORE_NODE, jx_str(t, "NodeID", ""));
  if (filters_has(f, "node") &&
      !filters_match_prefix(f, "node", jx_str(t, "NodeID", "")) &&
      !filters_match(f, "node", jx_str(node, "Description.Hostname", "")))
    return false;
  if (filters_has(f, "name")) {
    char name[256];
    if (jx_int(t, "Slot", 0) > 0)
      snprintf(name, sizeof name, "%s.%lld", jx_str(svc, "Spec.Name", ""),
               (long long)jx_int(t, "Slot", 0));
    else
      snprintf(name, sizeof name, "%s.%s", jx_str(svc, "Spec.Name", ""),
               jx_str(t, "NodeID", ""));
    if (!filters_match_prefix(f, "name", name))
      return false;
  }
  if (filters_has(f, "_up-to-date")) {
    /* swarmkit: not IsTaskDirty (scaling leaves tasks up to date). */
    bool up = svc && !orchestrator_task_dirty(st, (json_t *)svc, t);
    if (!filters_match(f, "_up-to-date", up ? "true" : "false") &&
        !filters_match(f, "_up-to-date", up ? "1" : "0"))
      return false;
  }
  return true;
}

/* Adds the tasks under every key of index ix that one of the filter's
 * values names: a prefix of the key (an ID), or, through `names`, an
 * object of that exact name (service name, node hostname). */
static void candidates_by(struct store *st, const struct filters *f,
                          const char *filter, enum store_index ix,
                          enum store_kind named, const char *name_field,
                          json_t *out) {
  json_t *vals = json_object_get(f->map, filter);
  cleanup_json json_t *keys = store_index_keys(st, ix);
  json_t *want = json_object(); /* keys to take */
  size_t i, j;
  json_t *v, *k;
  json_array_foreach(vals, i, v) {
    const char *val = json_string_value(v);
    json_array_foreach(keys, j, k) {
      if (str_has_prefix(json_string_value(k), val))
        json_object_set_new(want, json_string_value(k), json_true());
    }
  }
  /* Names: few objects (services, nodes) against many tasks. */
  cleanup_json json_t *objs = store_list(st, named);
  json_array_foreach(objs, i, v) {
    if (filters_match(f, filter, jx_str(v, name_field, "")))
      json_object_set_new(want, jx_str(v, "ID", ""), json_true());
  }
  const char *key;
  json_object_foreach(want, key, v) {
    cleanup_json json_t *l = store_list_by(st, ix, key);
    json_array_foreach(l, j, k) json_object_set(out, jx_str(k, "ID", ""), k);
  }
  json_decref(want);
}

/* The tasks a filter can match, found through the store's indexes when
 * the filter has a service, node or desired-state (each task is still
 * checked against every filter); every task otherwise. */
/* Whether a filter has the value "" (which matches tasks without the
 * field too: those are in no bucket). */
static bool has_empty(const struct filters *f, const char *name) {
  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(f->map, name), i, v) {
    if (!*json_string_value(v))
      return true;
  }
  return false;
}

static json_t *task_candidates(struct store *st, const struct filters *f) {
  if (has_empty(f, "service") || has_empty(f, "node") ||
      has_empty(f, "desired-state"))
    return store_list(st, STORE_TASK);
  json_t *found = json_object();
  if (filters_has(f, "service")) {
    candidates_by(st, f, "service", STORE_TASKS_BY_SERVICE, STORE_SERVICE,
                  "Spec.Name", found);
  } else if (filters_has(f, "node")) {
    candidates_by(st, f, "node", STORE_TASKS_BY_NODE, STORE_NODE,
                  "Description.Hostname", found);
  } else if (filters_has(f, "desired-state")) {
    size_t i, j;
    json_t *v, *t;
    json_array_foreach(json_object_get(f->map, "desired-state"), i, v) {
      cleanup_json json_t *l =
          store_list_by(st, STORE_TASKS_BY_DESIRED, json_string_value(v));
      json_array_foreach(l, j, t)
          json_object_set(found, jx_str(t, "ID", ""), t);
    }
  } else {
    json_decref(found);
    return store_list(st, STORE_TASK);
  }
  json_t *out = jx_sorted_by_created(found);
  json_decref(found);
  return out;
}

static void list_tasks(struct api_call *c) {
  struct filters f = {0};
  if (parse_filters(c, task_filters, &f) < 0)
    return;
  struct store *st = manager_store(c->d->mgr);
  json_t *all = task_candidates(st, &f);
  json_t *out = json_array();
  size_t i;
  json_t *t;
  json_array_foreach(all, i, t) {
    /* Container tasks only, as dockerd's default runtime filter: a
     * standalone container's attachment is no task a user runs. */
    if (!attachment_task(t) && task_matches(st, &f, t))
      json_array_append_new(out, store_public(t));
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
    api_reply_json(cc->req, 201,
                   json_pack("{s:s, s:[]}", "ID", cc->id, "Warnings"));
  free(cc);
}

static void updated(void *ud, int status, const sh_err *err) {
  struct http_req *req = ud;
  if (status < 0)
    return api_reply_err(req, err);
  api_reply_json(req, 200, json_pack("{s:[]}", "Warnings"));
}

static void removed(void *ud, int status, const sh_err *err) {
  struct http_req *req = ud;
  if (status < 0)
    return api_reply_err(req, err);
  http_respond(req, 200, "text/plain; charset=utf-8", "", 0, NULL);
}

/* GET /services/{id}/logs and /tasks/{id}/logs. */
static void logs(struct api_call *c, const char *service, const char *task) {
  sh_err err = {0};
  struct log_options o = {
      .follow = api_query_bool(c->req, "follow"),
      .stdout_ = api_query_bool(c->req, "stdout"),
      .stderr_ = api_query_bool(c->req, "stderr"),
      .timestamps = api_query_bool(c->req, "timestamps"),
      .details = api_query_bool(c->req, "details"),
      .tail = -1,
  };
  if (!o.stdout_ && !o.stderr_) {
    sh_error(&err, 400, "Bad parameters: you must choose at least one stream");
    return api_reply_err(c->req, &err);
  }
  cleanup_free char *tail = http_req_query(c->req, "tail");
  if (tail && *tail && strcmp(tail, "all") != 0)
    o.tail = atol(tail);
  cleanup_free char *since = http_req_query(c->req, "since");
  if (since && *since)
    o.since_ns = (int64_t)(strtod(since, NULL) * 1e9);
  if (manager_logs(c->d->mgr, c->req, service, task, &o, &err) < 0)
    api_reply_err(c->req, &err);
}

static bool services(struct api_call *c) {
  const char *p = c->path + strlen("/services");
  const char *m = c->req->method;
  struct manager *mgr = c->d->mgr;
  sh_err err = {0};
  if (!*p) {
    if (strcmp(m, "GET") != 0)
      return false;
    list_services(c);
    return true;
  }
  if (strcmp(p, "/create") == 0) {
    if (strcmp(m, "POST") != 0)
      return false;
    cleanup_json json_t *spec = NULL;
    struct create_ctx *cc = xcalloc(1, sizeof *cc);
    cc->req = c->req;
    if (api_body(c->req, &spec, &err) < 0 ||
        schema_check_go(c->req->body, c->req->body_len, &go_service_spec,
                        &err) < 0 ||
        manager_create_service(mgr, spec,
                               http_req_header(c->req, "X-Registry-Auth"),
                               cc->id, created, cc, &err) < 0) {
      free(cc);
      api_reply_err(c->req, &err);
    }
    return true;
  }
  if (*p != '/')
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
    int64_t version;
    cleanup_json json_t *spec = NULL;
    cleanup_free char *rollback = http_req_query(c->req, "rollback");
    cleanup_free char *auth_from = http_req_query(c->req, "registryAuthFrom");
    /* moby decodes the body before it reads ?version=. */
    if (api_body(c->req, &spec, &err) < 0 ||
        schema_check_go(c->req->body, c->req->body_len, &go_service_spec,
                        &err) < 0 ||
        api_query_version(c->req, "service", &version, &err) < 0 ||
        manager_update_service(mgr, ref, version, spec, rollback,
                               http_req_header(c->req, "X-Registry-Auth"),
                               auth_from, updated, c->req, &err) < 0)
      api_reply_err(c->req, &err);
    return true;
  }
  if (strcmp(action, "logs") == 0 && strcmp(m, "GET") == 0) {
    logs(c, ref, NULL);
    return true;
  }
  if (*action)
    return false;
  if (strcmp(m, "GET") == 0) {
    json_t *s = store_find(manager_store(mgr), STORE_SERVICE, ref, &err);
    if (!s)
      api_reply_err(c->req, &err);
    else
      api_reply_json(
          c->req, 200,
          manager_service_view(mgr, s, api_query_bool(c->req, "insertDefaults"),
                               false));
    return true;
  }
  if (strcmp(m, "DELETE") == 0) {
    if (manager_remove_service(mgr, ref, removed, c->req, &err) < 0)
      api_reply_err(c->req, &err);
    return true;
  }
  return false;
}

static bool tasks(struct api_call *c) {
  if (strcmp(c->req->method, "GET") != 0)
    return false;
  const char *p = c->path + strlen("/tasks");
  if (!*p) {
    list_tasks(c);
    return true;
  }
  if (*p == '/' && str_has_suffix(p, "/logs") && strchr(p + 1, '/') &&
      strcmp(strchr(p + 1, '/'), "/logs") == 0) {
    cleanup_free char *ref = xstrndup(p + 1, strlen(p + 1) - strlen("/logs"));
    logs(c, NULL, ref);
    return true;
  }
  if (*p != '/' || strchr(p + 1, '/'))
    return false;
  sh_err err = {0};
  json_t *t = store_find(manager_store(c->d->mgr), STORE_TASK, p + 1, &err);
  if (!t)
    api_reply_err(c->req, &err);
  else
    api_reply_json(c->req, 200, store_public(t));
  return true;
}

bool api_services(struct api_call *c) {
  bool svc = strcmp(c->path, "/services") == 0 ||
             str_has_prefix(c->path, "/services/");
  bool tsk =
      strcmp(c->path, "/tasks") == 0 || str_has_prefix(c->path, "/tasks/");
  if (!svc && !tsk)
    return false;
  sh_err err = {0};
  if (shoald_require_manager(c->d, &err) < 0) {
    api_reply_err(c->req, &err);
    return true;
  }
  return svc ? services(c) : tasks(c);
}
