/* docker cp: HEAD, GET and PUT /containers/{id}/archive (exec.h's
 * exec_archive_*). The container is looked up and the path checked on
 * the work queue before any byte of the answer, so that a missing one
 * gets its 404; a GET's tar then comes from a thread of its own through
 * api/pump (a slow client holds no queue thread). A PUT's body streams
 * (any size): once the container is found, it goes as it arrives through
 * a pipe into the child that extracts it, read from a thread of its own;
 * the body pauses while the pipe is behind, so memory stays bounded. */
#include "api/api.h"

#include "api/pump.h"
#include "core/err.h"
#include "core/util.h"
#include "core/workq.h"
#include "daemon/daemon.h"
#include "events/events.h"
#include "exec/exec.h"
#include "http/server.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#define TAR_QUEUE_HIGH (1024 * 1024)
#define TAR_QUEUE_LOW (256 * 1024)
/* A PUT's body waiting for the extracting child. */
#define PUT_PIPE_HIGH (1024 * 1024)
#define PUT_PIPE_LOW (256 * 1024)

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
  /* PUT: the pipe from the body to the extracting child */
  uv_pipe_t feed;
  uv_shutdown_t feed_sd;
  int rfd, wfd;
  bool feed_open, feed_closed, feed_broken;
  bool aborted, thread_done;
};

#define container_of(ptr, type, member)                                        \
  ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

struct feed_write {
  uv_write_t w;
  struct ar_job *j;
  char data[];
};

static void put_start(struct ar_job *j);

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
  if (j->op != AR_PUT)
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

/* ---- PUT: the body into the extracting child ---- */

static void put_maybe_free(struct ar_job *j) {
  if (j->thread_done && (j->feed_closed || !j->feed_open))
    job_free(j);
}

static void feed_closed(uv_handle_t *h) {
  struct ar_job *j = h->data;
  j->feed_closed = true;
  put_maybe_free(j);
}

static void feed_close(struct ar_job *j) {
  if (j->feed_open && !uv_is_closing((uv_handle_t *)&j->feed))
    uv_close((uv_handle_t *)&j->feed, feed_closed);
}

static void feed_written(uv_write_t *w, int status) {
  struct feed_write *fw = container_of(w, struct feed_write, w);
  struct ar_job *j = fw->j;
  free(fw);
  if (status < 0) {
    j->feed_broken = true; /* the child stopped reading: it says why */
    return;
  }
  if (j->req && !uv_is_closing((uv_handle_t *)&j->feed) &&
      uv_stream_get_write_queue_size((uv_stream_t *)&j->feed) <= PUT_PIPE_LOW)
    http_req_body_pause(j->req, false);
}

static void put_data(struct http_req *req, const char *data, size_t len,
                     void *ud) {
  struct ar_job *j = ud;
  if (len == 0 || j->feed_broken || uv_is_closing((uv_handle_t *)&j->feed))
    return; /* dropped: the child's answer comes */
  struct feed_write *fw = xmalloc(sizeof *fw + len);
  fw->j = j;
  memcpy(fw->data, data, len);
  uv_buf_t b = uv_buf_init(fw->data, (unsigned)len);
  if (uv_write(&fw->w, (uv_stream_t *)&j->feed, &b, 1, feed_written) < 0) {
    free(fw);
    j->feed_broken = true;
    return;
  }
  if (uv_stream_get_write_queue_size((uv_stream_t *)&j->feed) > PUT_PIPE_HIGH)
    http_req_body_pause(req, true);
}

static void feed_shut(uv_shutdown_t *sd, int status) {
  (void)status; /* a pipe cannot shut down: the writes are out, close */
  feed_close(sd->data);
}

static void put_end(struct http_req *req, bool complete, void *ud) {
  struct ar_job *j = ud;
  if (!complete) {
    /* Cut short: the child reads a truncated tar and removes the file
     * it was writing; the answer would go nowhere. */
    j->aborted = true;
    feed_close(j);
    return;
  }
  j->feed_sd.data = j;
  if (uv_is_closing((uv_handle_t *)&j->feed) ||
      uv_shutdown(&j->feed_sd, (uv_stream_t *)&j->feed, feed_shut) < 0)
    feed_close(j);
}

static void put_gone(struct http_req *req, void *ud) {
  struct ar_job *j = ud;
  j->aborted = true;
  feed_close(j);
}

static void put_done(void *ud, int cancelled) {
  struct ar_job *j = ud;
  j->thread_done = true;
  feed_close(j); /* the child is gone: writes still queued are moot */
  if (cancelled && j->rc == 0)
    j->rc = sh_error(&j->err, 503, "the daemon is shutting down");
  struct http_req *req = STEAL_POINTER(&j->req);
  if (j->aborted) {
    http_req_release(req);
  } else if (j->rc < 0) {
    api_reply_err(req, &j->err);
  } else {
    publish(j, "extract-to-dir");
    http_respond(req, 200, NULL, "", 0, NULL);
  }
  put_maybe_free(j);
}

static void *put_thread(void *arg) {
  struct ar_job *j = arg;
  j->rc = exec_archive_put(j->d->exec, j->id, j->path, j->ref, j->rfd, j->wfd,
                           &j->opts, &j->err);
  close(j->rfd);
  workq_post(j->d->work, put_done, j);
  return NULL;
}

static void put_start(struct ar_job *j) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) {
    sh_errno(&j->err, errno, "pipe");
    api_reply_err(j->req, &j->err);
    job_free(j);
    return;
  }
  j->rfd = fds[0];
  j->wfd = fds[1];
  uv_pipe_init(j->d->loop, &j->feed, 0);
  j->feed.data = j;
  j->feed_open = true;
  bool opened = uv_pipe_open(&j->feed, fds[1]) == 0;
  if (!opened || api_pump_thread(put_thread, j) < 0) {
    close(fds[0]);
    if (!opened)
      close(fds[1]);
    sh_error(&j->err, 500, "cannot start a writer thread");
    api_reply_err(STEAL_POINTER(&j->req), &j->err);
    j->thread_done = true;
    feed_close(j); /* closes fds[1] */
    return;
  }
  j->req->on_close = put_gone;
  j->req->on_close_ud = j;
  if (!j->req->body_stream) { /* whole already (a plain TCP listener) */
    put_data(j->req, j->req->body, j->req->body_len, j);
    put_end(j->req, true, j);
    return;
  }
  http_req_body_start(j->req, put_data, put_end, j);
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
    put_start(j);
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
