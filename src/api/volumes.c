/* Volume endpoints: the node's local volumes (volume/volume.h). Which
 * containers use a volume comes from the executor (their mounts), for
 * `rm`'s in-use check, prune and the dangling filter. Everything touches
 * disk: lists and inspects run on the read queue, writes on the work
 * queue. */
#include "api/api.h"

#include "api/filters.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "core/workq.h"
#include "daemon/daemon.h"
#include "exec/exec.h"
#include "http/server.h"
#include "volume/volume.h"

#include <ftw.h>
#include <sys/stat.h>

static const char *const list_filters[] = {"name", "label", "dangling",
                                           "driver", NULL};
static const char *const prune_filters[] = {"label", "label!", "all", NULL};

enum v_op { V_LIST, V_INSPECT, V_CREATE, V_REMOVE, V_PRUNE };

struct v_job {
  struct shoald *d;
  struct http_req *req;
  enum v_op op;
  char *name;
  json_t *body; /* create */
  bool force;
  struct filters f;
  json_t *result;
  int status; /* on success */
  sh_err err;
  int rc;
};

/* volume name -> array of the IDs of containers that mount it. */
static json_t *users_by_volume(struct shoald *d) {
  json_t *by = json_object();
  cleanup_json json_t *all = NULL;
  if (!d->exec || exec_inspect_all(d->exec, &all, NULL) < 0)
    return by;
  size_t i, k;
  json_t *c, *m;
  json_array_foreach(all, i, c) {
    json_array_foreach(jx_get(c, "Mounts"), k, m) {
      if (strcmp(jx_str(m, "Type", ""), "volume") != 0)
        continue;
      const char *name = jx_str(m, "Name", "");
      json_t *ids = json_object_get(by, name);
      if (!ids) {
        ids = json_array();
        json_object_set_new(by, name, ids);
      }
      json_array_append_new(ids, json_string(jx_str(c, "Id", "")));
    }
  }
  return by;
}

/* dangling: "true"/"1" or "false"/"0" (Go's GetBoolOrDefault). */
static int dangling_want(const struct filters *f, int *out, sh_err *err) {
  *out = -1;
  json_t *vals = json_object_get(f->map, "dangling");
  size_t i;
  json_t *v;
  json_array_foreach(vals, i, v) {
    const char *s = json_string_value(v);
    if (strcasecmp(s, "true") == 0 || strcmp(s, "1") == 0)
      *out = 1;
    else if (strcasecmp(s, "false") == 0 || strcmp(s, "0") == 0)
      *out = 0;
    else
      return sh_error(err, 400, "invalid filter 'dangling=%s'", s);
  }
  return 0;
}

static int do_list(struct v_job *j) {
  int dangling;
  if (dangling_want(&j->f, &dangling, &j->err) < 0)
    return -1;
  cleanup_json json_t *all = NULL;
  if (volume_list(j->d->cfg.data_root, &all, &j->err) < 0)
    return -1;
  cleanup_json json_t *users =
      dangling >= 0 ? users_by_volume(j->d) : json_object();
  json_t *out = json_array();
  size_t i;
  json_t *v;
  json_array_foreach(all, i, v) {
    const char *name = jx_str(v, "Name", "");
    if (!filters_match_regex(&j->f, "name", name) ||
        !filters_match(&j->f, "driver", "local") ||
        !filters_match_labels(&j->f, "label", jx_get(v, "Labels")))
      continue;
    if (dangling >= 0 && (json_object_get(users, name) == NULL) != dangling)
      continue;
    json_array_append(out, v);
  }
  j->result = json_pack("{s:o, s:n}", "Volumes", out, "Warnings");
  return 0;
}

static int do_create(struct v_job *j) {
  const json_t *b = j->body;
  const char *drv = jx_str(b, "Driver", "");
  if (*drv && strcmp(drv, "local") != 0)
    return sh_error(&j->err, 404,
                    "error looking up volume plugin %s: plugin \"%s\" not "
                    "found",
                    drv, drv);
  if (json_object_get(b, "ClusterVolumeSpec") &&
      !json_is_null(json_object_get(b, "ClusterVolumeSpec")))
    return sh_error(&j->err, 501,
                    "cluster volumes (ClusterVolumeSpec) are not supported");
  json_t *name = json_object_get(b, "Name");
  if (name && !json_is_string(name) && !json_is_null(name))
    return sh_error(&j->err, 400, "invalid JSON: Name must be a string");
  j->status = 201;
  return volume_create(j->d->cfg.data_root, json_string_value(name),
                       jx_get(b, "Labels"), jx_get(b, "DriverOpts"), &j->result,
                       &j->err);
}

static int do_remove(struct v_job *j) {
  cleanup_json json_t *users = users_by_volume(j->d);
  j->status = 204;
  return volume_remove(j->d->cfg.data_root, j->name,
                       json_object_get(users, j->name), j->force, &j->err);
}

/* Unused volumes; only anonymous ones unless all=true (API >= 1.42). */
static int do_prune(struct v_job *j) {
  bool all = false;
  json_t *a = json_object_get(j->f.map, "all");
  if (json_array_size(a) > 1)
    return sh_error(&j->err, 400,
                    "invalid filter 'all=%s': only one value is expected",
                    json_string_value(json_array_get(a, 0)));
  if (json_array_size(a) == 1) {
    const char *s = json_string_value(json_array_get(a, 0));
    if (strcasecmp(s, "true") == 0 || strcmp(s, "1") == 0)
      all = true;
    else if (strcasecmp(s, "false") != 0 && strcmp(s, "0") != 0)
      return sh_error(&j->err, 400,
                      "invalid filter 'all': strconv.ParseBool: parsing "
                      "\"%s\": invalid syntax",
                      s);
  }
  cleanup_json json_t *vols = NULL;
  if (volume_list(j->d->cfg.data_root, &vols, &j->err) < 0)
    return -1;
  cleanup_json json_t *users = users_by_volume(j->d);
  json_t *deleted = json_array();
  long long reclaimed = 0;
  size_t i;
  json_t *v;
  json_array_foreach(vols, i, v) {
    const char *name = jx_str(v, "Name", "");
    const json_t *labels = jx_get(v, "Labels");
    if (json_object_get(users, name) ||
        (!all && !json_object_get(labels, VOLUME_ANON_LABEL)) ||
        !filters_match_labels(&j->f, "label", labels))
      continue;
    if (filters_has(&j->f, "label!")) {
      /* "label!": none of these may match */
      struct filters nf = {
          json_pack("{s:O}", "label", json_object_get(j->f.map, "label!"))};
      bool hit = filters_match_labels(&nf, "label", labels);
      filters_free(&nf);
      if (hit)
        continue;
    }
    long long size = util_tree_size(jx_str(v, "Mountpoint", ""));
    if (volume_remove(j->d->cfg.data_root, name, NULL, false, NULL) == 0) {
      json_array_append_new(deleted, json_string(name));
      reclaimed += size;
    }
  }
  j->result = json_pack("{s:o, s:I}", "VolumesDeleted", deleted,
                        "SpaceReclaimed", (json_int_t)reclaimed);
  return 0;
}

static void work(void *ud) {
  struct v_job *j = ud;
  j->status = 200;
  switch (j->op) {
  case V_LIST:
    j->rc = do_list(j);
    break;
  case V_INSPECT:
    j->rc = volume_get(j->d->cfg.data_root, j->name, &j->result, &j->err);
    break;
  case V_CREATE:
    j->rc = do_create(j);
    break;
  case V_REMOVE:
    j->rc = do_remove(j);
    break;
  case V_PRUNE:
    j->rc = do_prune(j);
    break;
  }
}

static void job_free(struct v_job *j) {
  free(j->name);
  json_decref(j->body);
  filters_free(&j->f);
  json_decref(j->result);
  free(j);
}

static void done(void *ud, int cancelled) {
  struct v_job *j = ud;
  if (cancelled && j->rc == 0)
    j->rc = sh_error(&j->err, 503, "the daemon is shutting down");
  if (j->rc < 0)
    api_reply_err(j->req, &j->err);
  else if (j->status == 204)
    http_respond(j->req, 204, NULL, NULL, 0, NULL);
  else
    api_reply_json(j->req, j->status, json_incref(j->result));
  job_free(j);
}

bool api_volumes(struct api_call *c) {
  const char *p = c->path, *m = c->req->method;
  if (strcmp(p, "/volumes") != 0 && !str_has_prefix(p, "/volumes/"))
    return false;
  bool get = strcmp(m, "GET") == 0, post = strcmp(m, "POST") == 0,
       del = strcmp(m, "DELETE") == 0;
  struct v_job *j = xcalloc(1, sizeof *j);
  j->d = c->d;
  j->req = c->req;
  sh_err err = {0};
  const char *const *allowed = NULL;
  if (get && strcmp(p, "/volumes") == 0) {
    j->op = V_LIST;
    allowed = list_filters;
  } else if (post && strcmp(p, "/volumes/create") == 0) {
    j->op = V_CREATE;
    if (api_body(c->req, &j->body, &err) < 0)
      goto fail;
  } else if (post && strcmp(p, "/volumes/prune") == 0) {
    j->op = V_PRUNE;
    allowed = prune_filters;
  } else if ((get || del) && p[strlen("/volumes/")] &&
             !strchr(p + strlen("/volumes/"), '/')) {
    j->op = get ? V_INSPECT : V_REMOVE;
    j->name = xstrdup(p + strlen("/volumes/"));
    j->force = api_query_bool(c->req, "force");
  } else {
    job_free(j);
    return false;
  }
  if (allowed) {
    cleanup_free char *raw = http_req_query(c->req, "filters");
    if (filters_parse(raw, allowed, &j->f, &err) < 0)
      goto fail;
  }
  bool read = j->op == V_LIST || j->op == V_INSPECT;
  workq_submit(read && c->d->reads ? c->d->reads : c->d->work, work, done, j);
  return true;
fail:
  job_free(j);
  api_reply_err(c->req, &err);
  return true;
}
