/* POST /build/prune (no build cache here) and POST /containers/prune, as
 * dockerd's ContainerPrune: every container
 * that is not running goes, task containers included (dockerd removes a
 * swarm task's exited container too; the task stays in the service's
 * history, and the worker's own removal later finds it gone). Filters:
 * until, label, label!. Runs on the work queue (crun, unmounts). */
#include "api/api.h"

#include "agent/standalone.h"

#include "api/filters.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "core/workq.h"
#include "daemon/daemon.h"
#include "events/events.h"
#include "exec/exec.h"
#include "http/server.h"

#include <ftw.h>
#include <sys/stat.h>

static const char *const prune_filters[] = {"until", "label", "label!", NULL};

struct p_job {
  struct shoald *d;
  struct http_req *req;
  struct filters f;
  json_t *result;
  json_t *destroyed; /* [{id, attrs}] for the events, sent on the loop */
  sh_err err;
  int rc;
};

static void work(void *ud) {
  struct p_job *j = ud;
  int64_t until = 0;
  json_t *u = json_object_get(j->f.map, "until");
  if (json_array_size(u)) {
    const char *v = json_string_value(json_array_get(u, 0));
    char *end;
    double secs = strtod(v, &end);
    int64_t ns;
    if (*v && !*end)
      until = (int64_t)(secs * 1e9);
    else if (clock_parse_rfc3339(v, &ns, NULL) == 0)
      until = ns;
    else if (clock_parse_duration(v, &ns, NULL) == 0)
      until = clock_wall_ns() - ns;
    else {
      j->rc = sh_error(&j->err, 400,
                       "failed to parse value as time or duration: \"%s\"", v);
      return;
    }
  }
  cleanup_json json_t *all = NULL;
  if (!j->d->exec) {
    j->result =
        json_pack("{s:n, s:i}", "ContainersDeleted", "SpaceReclaimed", 0);
    return;
  }
  if ((j->rc = exec_inspect_all(j->d->exec, &all, &j->err)) < 0)
    return;
  json_t *deleted = json_array();
  j->destroyed = json_array();
  long long reclaimed = 0;
  size_t i;
  json_t *c;
  json_array_foreach(all, i, c) {
    if (!strcmp(jx_str(c, "State.Status", ""), "running"))
      continue;
    int64_t created = 0;
    clock_parse_rfc3339(jx_str(c, "Created", ""), &created, NULL);
    if (until && created > until)
      continue;
    const json_t *labels = jx_get(c, "Config.Labels");
    if (!filters_match_label_pair(&j->f, labels))
      continue;
    const char *id = jx_str(c, "Id", "");
    long long size = util_tree_size(jx_str(c, "GraphDriver.Data.UpperDir", ""));
    sh_err e = {0};
    if (exec_remove(j->d->exec, id, false, &e) < 0)
      continue; /* started meanwhile, or gone */
    json_array_append_new(deleted, json_string(id));
    reclaimed += size;
    /* dockerd's destroy event: the labels, image and name. */
    json_t *attrs = exec_event_attrs(c);
    json_array_append_new(j->destroyed,
                          json_pack("{s:s, s:o}", "id", id, "attrs", attrs));
  }
  j->result = json_pack(
      "{s:o, s:I}", "ContainersDeleted",
      json_array_size(deleted) ? deleted : (json_decref(deleted), json_null()),
      "SpaceReclaimed", (json_int_t)reclaimed);
}

static void done(void *ud, int cancelled) {
  struct p_job *j = ud;
  if (cancelled && j->rc == 0)
    j->rc = sh_error(&j->err, 503, "the daemon is shutting down");
  if (j->rc >= 0 && j->d->standalone) {
    size_t k;
    json_t *e;
    json_array_foreach(j->destroyed, k, e)
        standalone_removed(j->d->standalone, jx_str(e, "id", ""), NULL, NULL);
  }
  if (j->rc < 0) {
    api_reply_err(j->req, &j->err);
  } else if (!j->d->events) {
    api_reply_json(j->req, 200, json_incref(j->result));
  } else {
    size_t i;
    json_t *e;
    json_array_foreach(j->destroyed, i, e) events_publish(
        j->d->events, "container", "destroy", jx_str(e, "id", ""),
        json_incref(json_object_get(e, "attrs")), "local");
    events_publish(
        j->d->events, "container", "prune", "",
        json_pack("{s:o}", "reclaimed",
                  json_sprintf("%lld", (long long)jx_int(j->result,
                                                         "SpaceReclaimed", 0))),
        "local");
    api_reply_json(j->req, 200, json_incref(j->result));
  }
  filters_free(&j->f);
  json_decref(j->result);
  json_decref(j->destroyed);
  free(j);
}

bool api_prune(struct api_call *c) {
  if (strcmp(c->req->method, "POST") != 0)
    return false;
  if (strcmp(c->path, "/build/prune") == 0) {
    /* shoal builds nothing, so there is no build cache to prune (system
     * df says the same: BuildCache []); `docker system prune` asks. */
    api_reply_json(
        c->req, 200,
        json_pack("{s:n, s:i}", "CachesDeleted", "SpaceReclaimed", 0));
    return true;
  }
  if (strcmp(c->path, "/containers/prune") != 0)
    return false;
  struct p_job *j = xcalloc(1, sizeof *j);
  j->d = c->d;
  j->req = c->req;
  cleanup_free char *raw = http_req_query(c->req, "filters");
  if (filters_parse(raw, prune_filters, &j->f, &j->err) < 0) {
    api_reply_err(c->req, &j->err);
    filters_free(&j->f);
    free(j);
    return true;
  }
  workq_submit(j->d->work, work, done, j);
  return true;
}
