/* docker cp: HEAD, GET and PUT /containers/{id}/archive (exec.h's
 * exec_archive_*). The container is looked up and the path checked on
 * the work queue before any byte of the answer, so that a missing one
 * gets its 404; a GET's tar then comes from a thread of its own through
 * api/pump (a slow client holds no queue thread). A PUT's body is whole
 * when it comes (the HTTP server's body limit, 413 past it). */
#include "api/api.h"

#include "api/pump.h"
#include "core/err.h"
#include "core/util.h"
#include "core/workq.h"
#include "daemon/daemon.h"
#include "events/events.h"
#include "exec/exec.h"
#include "http/server.h"

#define TAR_QUEUE_HIGH (1024 * 1024)
#define TAR_QUEUE_LOW (256 * 1024)

enum ar_op { AR_HEAD, AR_GET, AR_PUT };

struct ar_job {
  struct shoald *d;
  struct http_req *req;
  enum ar_op op;
  char *ref, *path;
  char id[65];
  struct exec_extract_opts opts;
  struct exec_path_stat st;
  char *header;           /* "X-Docker-Container-Path-Stat: ..." */
  const char *headers[2]; /* header, NULL */
  struct api_pump pump;
  json_t *info; /* for the event: the container's inspect */
  sh_err err;
  int rc;
};

static void job_free(struct ar_job *j) {
  free(j->ref);
  free(j->path);
  free(j->header);
  json_decref(j->info);
  free(j);
}

static void first_work(void *ud) {
  struct ar_job *j = ud;
  executor *ex = j->d->exec;
  j->rc = exec_find(ex, j->ref, j->id, &j->err);
  if (j->rc < 0)
    return;
  if (j->op == AR_PUT)
    j->rc = exec_archive_put(ex, j->id, j->path, j->ref, j->req->body,
                             j->req->body_len, &j->opts, &j->err);
  else
    j->rc = exec_archive_stat(ex, j->id, j->path, j->ref, &j->st, &j->err);
  if (j->rc == 0 && j->op != AR_HEAD && j->d->events)
    exec_inspect_json(ex, j->id, &j->info, NULL);
}

/* dockerd's container events for a copy: archive-path (GET) and
 * extract-to-dir (PUT). */
static void publish(struct ar_job *j, const char *action) {
  if (j->d->events && j->info)
    events_publish(j->d->events, "container", action, j->id,
                   exec_event_attrs(j->info), "local");
}

static void stream_done(void *ud, int cancelled) {
  struct ar_job *j = ud;
  if (cancelled && j->rc == 0)
    j->rc = sh_error(&j->err, 503, "the daemon is shutting down");
  if (!api_pump_end(&j->pump)) {
    if (j->rc < 0)
      api_reply_err(j->req, &j->err);
    else
      http_respond(j->req, 200, "application/x-tar", "", 0, j->headers);
  }
  job_free(j);
}

static void *tar_thread(void *arg) {
  struct ar_job *j = arg;
  j->rc = exec_archive_get(j->d->exec, j->id, j->path, j->ref, api_pump_write,
                           api_pump_gone, &j->pump, &j->err);
  workq_post(j->d->work, stream_done, j);
  return NULL;
}

static void first_done(void *ud, int cancelled) {
  struct ar_job *j = ud;
  if (cancelled && j->rc == 0)
    j->rc = sh_error(&j->err, 503, "the daemon is shutting down");
  if (j->rc < 0) {
    api_reply_err(j->req, &j->err);
    job_free(j);
    return;
  }
  if (j->op == AR_PUT) {
    publish(j, "extract-to-dir");
    http_respond(j->req, 200, NULL, "", 0, NULL);
    job_free(j);
    return;
  }
  cleanup_free char *b64 = exec_path_stat_header(&j->st);
  j->header = xasprintf("X-Docker-Container-Path-Stat: %s", b64);
  j->headers[0] = j->header;
  j->headers[1] = NULL;
  if (j->op == AR_HEAD) {
    http_respond(j->req, 200, NULL, "", 0, j->headers);
    job_free(j);
    return;
  }
  publish(j, "archive-path");
  /* The head goes with the first chunk: an error before it is still a
   * proper error reply. */
  api_pump_init(&j->pump, j->req, j->d->work, "application/x-tar",
                TAR_QUEUE_HIGH, TAR_QUEUE_LOW, true);
  j->pump.headers = j->headers;
  if (api_pump_thread(tar_thread, j) < 0) {
    j->rc = sh_error(&j->err, 500, "cannot start a reader thread");
    workq_post(j->d->work, stream_done, j);
  }
}

bool api_archive(struct api_call *c) {
  const char *p = c->path;
  if (!str_has_prefix(p, "/containers/") || !str_has_suffix(p, "/archive"))
    return false;
  const char *m = c->req->method;
  enum ar_op op;
  if (strcmp(m, "HEAD") == 0)
    op = AR_HEAD;
  else if (strcmp(m, "GET") == 0)
    op = AR_GET;
  else if (strcmp(m, "PUT") == 0)
    op = AR_PUT;
  else
    return false;
  const char *ref = p + strlen("/containers/");
  size_t rn = strlen(ref) - strlen("/archive");
  sh_err err = {0};
  if (rn == 0 || memchr(ref, '/', rn)) {
    if (rn != 0)
      return false;
    sh_error(&err, 400, "bad parameter: name cannot be empty");
    api_reply_err(c->req, &err);
    return true;
  }
  cleanup_free char *name = xstrndup(ref, rn);
  if (!c->d->exec) {
    sh_error(&err, 404, "No such container: %s", name);
    api_reply_err(c->req, &err);
    return true;
  }
  char *path = http_req_query(c->req, "path");
  if (!path || !*path) {
    free(path);
    sh_error(&err, 400, "bad parameter: path cannot be empty");
    api_reply_err(c->req, &err);
    return true;
  }
  struct ar_job *j = xcalloc(1, sizeof *j);
  j->d = c->d;
  j->req = c->req;
  j->op = op;
  j->ref = STEAL_POINTER(&name);
  j->path = path;
  /* moby: overwriting a directory with a file (or back) is allowed
   * unless noOverwriteDirNonDir is given and true. */
  j->opts.no_overwrite_dir_non_dir =
      api_query_bool(c->req, "noOverwriteDirNonDir");
  j->opts.copy_uid_gid = api_query_bool(c->req, "copyUIDGID");
  workq_submit(c->d->work, first_work, first_done, j);
  return true;
}
