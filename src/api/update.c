/* POST /containers/{id}/update (docker update) and POST /commit (docker
 * commit), as dockerd's daemon/update.go and daemon/commit.go.
 *
 * update: the body is read with agent/runspec.c, the executor records and
 * applies the resources (exec_update); a swarm task's container takes
 * resource updates as dockerd's does (the next task of its service gets
 * the service's limits again), not a restart policy (the orchestrator
 * restarts tasks). commit: the container is paused unless pause=0, its
 * upper directory becomes a layer of a new image (image_commit). Both
 * run on the work queue. */
#include "api/api.h"

#include "agent/runspec.h"
#include "agent/standalone.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "core/workq.h"
#include "daemon/daemon.h"
#include "events/events.h"
#include "exec/exec.h"
#include "http/server.h"
#include "image/image.h"

#define TASK_LABEL "com.docker.swarm.task.id"

struct upd_job {
  struct shoald *d;
  struct http_req *req;
  bool commit;
  char *ref; /* the container as named */
  char id[65];
  json_t *body;
  json_t *info; /* inspect after the change */
  sh_err err;
  int rc;
  /* update */
  struct exec_update u;
  json_t *warnings;
  /* commit */
  char *repo_tag; /* familiar "repo:tag" or NULL */
  char *author, *comment;
  char **changes;
  bool pause, paused;
  char *image_id;
};

static void job_free(struct upd_job *j) {
  free(j->ref);
  json_decref(j->body);
  json_decref(j->info);
  json_decref(j->warnings);
  free(j->repo_tag);
  free(j->author);
  free(j->comment);
  for (char **p = j->changes; p && *p; p++)
    free(*p);
  free(j->changes);
  free(j->image_id);
  free(j);
}

static bool is_task(const json_t *info) {
  return json_object_get(jx_get(info, "Config.Labels"), TASK_LABEL) != NULL;
}

static void publish(struct upd_job *j, const char *action, json_t *extra) {
  if (!j->d->events || !j->info) {
    json_decref(extra);
    return;
  }
  json_t *attrs = exec_event_attrs(j->info);
  if (extra)
    json_object_update(attrs, extra);
  json_decref(extra);
  events_publish(j->d->events, "container", action, j->id, attrs, "local");
}

/* ---- update ---- */

static void update_work(void *ud) {
  struct upd_job *j = ud;
  executor *ex = j->d->exec;
  cleanup_json json_t *before = NULL;
  if ((j->rc = exec_find(ex, j->ref, j->id, &j->err)) < 0 ||
      (j->rc = exec_inspect_json(ex, j->id, &before, &j->err)) < 0)
    return;
  if (j->u.restart_policy && is_task(before)) {
    j->rc = sh_error(&j->err, 400,
                     "Cannot update container %s: the restart policy of a "
                     "swarm task's container is its service's (docker "
                     "service update --restart-condition)",
                     j->id);
    return;
  }
  j->warnings = json_array();
  if ((j->rc = exec_update(ex, j->id, &j->u, j->warnings, &j->err)) < 0)
    return;
  j->rc = exec_inspect_json(ex, j->id, &j->info, &j->err);
}

static void update_done(void *ud, int cancelled) {
  struct upd_job *j = ud;
  if (cancelled)
    j->rc = sh_error(&j->err, 503, "the daemon is shutting down");
  if (j->rc < 0) {
    api_reply_err(j->req, &j->err);
    job_free(j);
    return;
  }
  if (j->d->standalone)
    standalone_updated(j->d->standalone, j->id, j->info);
  publish(j, "update", NULL);
  /* dockerd's warnings are a nil slice when there are none: null. */
  api_reply_json(
      j->req, 200,
      json_pack("{s:O}", "Warnings",
                json_array_size(j->warnings) ? j->warnings : json_null()));
  job_free(j);
}

static void update_start(struct api_call *c, const char *ref) {
  sh_err err = {0};
  struct upd_job *j = xcalloc(1, sizeof *j);
  j->d = c->d;
  j->req = c->req;
  j->ref = xstrdup(ref);
  if (api_body(c->req, &j->body, &err) < 0 ||
      runspec_update_parse(j->body, &j->u, &err) < 0) {
    api_reply_err(c->req, &err);
    job_free(j);
    return;
  }
  workq_submit(c->d->work, update_work, update_done, j);
}

/* ---- commit ---- */

static void commit_work(void *ud) {
  struct upd_job *j = ud;
  executor *ex = j->d->exec;
  if ((j->rc = exec_find(ex, j->ref, j->id, &j->err)) < 0 ||
      (j->rc = exec_inspect_json(ex, j->id, &j->info, &j->err)) < 0)
    return;
  const json_t *ctr_config = json_object_get(j->info, "Config");
  /* The request's config, else the container's; then the changes. */
  bool given = json_is_object(j->body) && json_object_size(j->body);
  cleanup_json json_t *config = json_deep_copy(given ? j->body : ctr_config);
  if ((j->rc = image_config_changes(config, (const char *const *)j->changes,
                                    &j->err)) < 0)
    return;
  if (given)
    image_config_merge(config, ctr_config);
  /* dockerd pauses a running container unless told not to, and ignores
   * a pause that fails. */
  if (j->pause && jx_bool(j->info, "State.Running", false) &&
      !jx_bool(j->info, "State.Paused", false))
    j->paused = exec_pause(ex, j->id, NULL) == 0;
  struct image_commit_opts o = {
      .parent = jx_str(j->info, "Image", ""),
      .upper = jx_str(j->info, "GraphDriver.Data.UpperDir", ""),
      .skip = exec_init_layer_path,
      .config = config,
      .container_config = ctr_config,
      .container_id = j->id,
      .author = j->author,
      .comment = j->comment,
      .ref = j->repo_tag,
  };
  j->rc = image_commit(j->d->images, &o, &j->image_id, &j->err);
  if (j->paused && exec_resume(ex, j->id, NULL) < 0)
    j->paused = false; /* still paused: no unpause event */
}

static void commit_done(void *ud, int cancelled) {
  struct upd_job *j = ud;
  if (cancelled)
    j->rc = sh_error(&j->err, 503, "the daemon is shutting down");
  if (j->paused) {
    publish(j, "pause", NULL);
    publish(j, "unpause", NULL);
  }
  if (j->rc < 0) {
    api_reply_err(j->req, &j->err);
    job_free(j);
    return;
  }
  publish(j, "commit",
          json_pack("{s:s, s:s, s:s}", "comment", j->comment ? j->comment : "",
                    "imageID", j->image_id, "imageRef",
                    j->repo_tag ? j->repo_tag : ""));
  api_reply_json(j->req, 201, json_pack("{s:s}", "Id", j->image_id));
  job_free(j);
}

/* moby's RepoTagReference: no repository, no reference; a tag-less one
 * is :latest; a digest cannot name what is made. */
static int repo_tag(const char *repo, const char *tag, char **out,
                    sh_err *err) {
  *out = NULL;
  if (!repo || !*repo)
    return 0;
  struct image_ref r;
  if (image_ref_parse(repo, &r, err) < 0)
    return -1;
  int rc = 0;
  if (r.digest) {
    rc = sh_error(err, 400,
                  "cannot create a reference from a digested reference");
  } else if (tag && *tag) {
    cleanup_free char *probe = xasprintf("x:%s", tag);
    struct image_ref t;
    if (image_ref_parse(probe, &t, NULL) < 0 || !t.tag || strcmp(t.tag, tag))
      rc = sh_error(err, 400, "invalid tag format");
    else {
      free(r.tag);
      r.tag = xstrdup(tag);
    }
    image_ref_free(&t);
  }
  if (rc == 0)
    *out = image_ref_familiar(&r, true);
  image_ref_free(&r);
  return rc;
}

static void commit_start(struct api_call *c) {
  struct http_req *req = c->req;
  sh_err err = {0};
  struct upd_job *j = xcalloc(1, sizeof *j);
  j->d = c->d;
  j->req = req;
  j->commit = true;
  j->ref = http_req_query(req, "container");
  if (!j->ref)
    j->ref = xstrdup("");
  cleanup_free char *repo = http_req_query(req, "repo");
  cleanup_free char *tag = http_req_query(req, "tag");
  cleanup_free char *pause = http_req_query(req, "pause");
  j->author = http_req_query(req, "author");
  j->comment = http_req_query(req, "comment");
  j->changes = api_query_all(req->query, "changes");
  /* dockerd: pause unless pause= says otherwise (API >= 1.13) */
  j->pause = !pause || !*pause || api_query_bool(req, "pause");
  /* The body is a container Config or nothing (the CLI sends none). */
  bool has_body = req->body_len > 0 && strcmp(req->body, "null") != 0 &&
                  strcmp(req->body, "null\n") != 0;
  if ((has_body && api_body(req, &j->body, &err) < 0) ||
      repo_tag(repo, tag, &j->repo_tag, &err) < 0) {
    api_reply_err(req, &err);
    job_free(j);
    return;
  }
  workq_submit(c->d->work, commit_work, commit_done, j);
}

bool api_update(struct api_call *c) {
  if (strcmp(c->req->method, "POST") != 0)
    return false;
  const char *p = c->path;
  sh_err err = {0};
  if (strcmp(p, "/commit") == 0) {
    if (!c->d->exec || !c->d->images) {
      cleanup_free char *ref = http_req_query(c->req, "container");
      sh_error(&err, 404, "No such container: %s", ref ? ref : "");
      api_reply_err(c->req, &err);
      return true;
    }
    commit_start(c);
    return true;
  }
  if (!str_has_prefix(p, "/containers/") || !str_has_suffix(p, "/update"))
    return false;
  const char *rest = p + strlen("/containers/");
  size_t len = strlen(rest) - strlen("/update");
  if (len == 0 || memchr(rest, '/', len))
    return false;
  cleanup_free char *ref = xstrndup(rest, len);
  if (!c->d->exec) {
    sh_error(&err, 404, "No such container: %s", ref);
    api_reply_err(c->req, &err);
    return true;
  }
  update_start(c, ref);
  return true;
}
