/* docker exec and docker attach: POST /containers/{id}/exec, /exec/{id}/start
 * (a hijacked connection carrying the process's stdio), /exec/{id}/resize,
 * GET /exec/{id}/json, POST /containers/{id}/attach and /resize.
 *
 * Exec instances live in this daemon's memory, as dockerd's: created,
 * running, exited; exited ones are dropped EXEC_KEEP_NS after their end.
 * Starting (crun exec, the console socket) runs on the work queue; the
 * streams are copied on the loop: the hijacked connection's socketpair end
 * and the process's pipes (or pty master) as uv_pipe handles. Without a
 * TTY the output is Docker's multiplexed stream (8-byte frame headers),
 * with one it is raw. The connection ends once the process exited and its
 * output is drained, so the exit code is known before the client asks. */
#include "api/api.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/id.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/util.h"
#include "core/workq.h"
#include "daemon/daemon.h"
#include "events/events.h"
#include "exec/exec.h"
#include "http/server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXEC_KEEP_NS (5 * 60 * NS_PER_SEC) /* dockerd's GC tick */
#define EXEC_MAX 4096                      /* instances kept at once */
#define OUT_HIGH (1024 * 1024) /* stop reading the process past this */
#define DRAIN_MS 2000 /* after the exit: output a background child holds */
#define RBUF 16384

enum x_state { X_CREATED, X_STARTING, X_RUNNING, X_EXITED };

struct xinst {
  struct xinst *next;
  struct api_execs *reg;
  struct shoald *d;
  char id[65], cid[65];
  json_t *cmd; /* Cmd */
  char **env;  /* NULL-terminated */
  char *user, *workdir, *detach_spec;
  bool tty, privileged, open_stdin, open_stdout, open_stderr;
  unsigned rows, cols;
  json_t *attrs; /* the container's event attributes */
  enum x_state state;
  bool has_exit;
  int exit_code;
  pid_t pid;
  int64_t ended_ns;
  /* Started by an earlier shoald (exec_cmd_records): no session; its
   * exit comes from the record's exit file when asked. */
  bool adopted;

  /* a running session */
  struct exec_cmd rt;
  struct exec_watch *watch;
  uv_pipe_t conn, out, err, in;
  bool conn_open, out_open, err_open, in_open;
  uv_timer_t drain;
  bool drain_open;
  int handles; /* libuv handles not closed yet */
  bool busy;   /* work in flight */
  bool multiplexed, client_gone, conn_ending, conn_eof, in_ending;
  bool proc_exited;
  struct exec_detach dk;
  char errhead[512]; /* stderr's first bytes: crun's own error if it failed */
  size_t errhead_len;
  char rbuf[RBUF];
  sh_err start_err;
  int start_rc;
  struct http_req *req; /* detached start: answered when started */
};

struct api_execs {
  struct xinst *head;
  size_t n;
};

static struct xinst *adopt(struct shoald *d, const json_t *r);
static json_t *inspect_json(const struct xinst *x);

/* Instances an earlier shoald started are read back on first use. */
static struct api_execs *registry(struct shoald *d) {
  if (!d->execs) {
    d->execs = xcalloc(1, sizeof *d->execs);
    cleanup_json json_t *recs = d->exec ? exec_cmd_records(d->exec) : NULL;
    size_t i;
    json_t *r;
    json_array_foreach(recs, i, r) {
      struct xinst *x = adopt(d, r);
      x->next = d->execs->head;
      d->execs->head = x;
      d->execs->n++;
    }
  }
  return d->execs;
}

static void inst_free(struct xinst *x) {
  json_decref(x->cmd);
  json_decref(x->attrs);
  for (char **e = x->env; e && *e; e++)
    free(*e);
  free(x->env);
  free(x->user);
  free(x->workdir);
  free(x->detach_spec);
  exec_cmd_release(&x->rt);
  free(x);
}

void api_execs_free(struct shoald *d) {
  if (!d->execs)
    return;
  /* At shutdown the loop no longer runs: what holds handles is left. */
  for (struct xinst *x = d->execs->head, *nx; x; x = nx) {
    nx = x->next;
    if (x->handles == 0 && !x->busy)
      inst_free(x);
  }
  free(d->execs);
  d->execs = NULL;
}

static struct xinst *find(struct shoald *d, const char *id) {
  for (struct xinst *x = registry(d)->head; x; x = x->next)
    if (strcmp(x->id, id) == 0)
      return x;
  return NULL;
}

/* Drops exited instances past their time (and with no handle left). */
static void gc(struct api_execs *reg) {
  int64_t now = clock_mono_ns();
  for (struct xinst **pp = &reg->head; *pp;) {
    struct xinst *x = *pp;
    if (x->state == X_EXITED && x->handles == 0 && !x->busy &&
        now - x->ended_ns > EXEC_KEEP_NS) {
      *pp = x->next;
      reg->n--;
      if (x->d->exec)
        exec_cmd_forget(x->d->exec, x->cid, x->id);
      inst_free(x);
    } else {
      pp = &x->next;
    }
  }
}

static void publish(struct xinst *x, const char *action, json_t *extra) {
  if (!x->d->events)
    return;
  json_t *attrs = x->attrs ? json_deep_copy(x->attrs) : json_object();
  json_object_set_new(attrs, "execID", json_string(x->id));
  if (extra)
    json_object_update(attrs, extra);
  json_decref(extra);
  events_publish(x->d->events, "container", action, x->cid, attrs, "local");
}

/* "exec_start: sh -c exit 3", as dockerd names the action. */
static void publish_cmd(struct xinst *x, const char *what) {
  sh_buf a = {0};
  buf_printf(&a, "%s:", what);
  size_t i;
  json_t *v;
  json_array_foreach(x->cmd, i, v) buf_printf(&a, " %s", json_string_value(v));
  publish(x, a.data, NULL);
  buf_free(&a);
}

/* ---- container facts (worker threads) ---- */

/* The container's full ID, running or 409 with moby's words, and its
 * event attributes (labels, image, name). */
static int running_container(executor *ex, const char *ref, char cid[65],
                             json_t **attrs, sh_err *err) {
  if (exec_find(ex, ref, cid, err) < 0)
    return -1;
  struct exec_state st;
  if (exec_state(ex, cid, &st, err) < 0)
    return -1;
  if (st.status != EXEC_STATUS_RUNNING)
    return sh_error(err, 409, "container %s is not running", cid);
  if (attrs) {
    cleanup_json json_t *info = NULL;
    if (exec_inspect_json(ex, cid, &info, err) < 0)
      return -1;
    *attrs = exec_event_attrs(info);
  }
  return 0;
}

/* ---- create ---- */

struct create_job {
  struct shoald *d;
  struct http_req *req;
  struct xinst *x;
  char *ref;
  sh_err err;
  int rc;
};

static void create_work(void *ud) {
  struct create_job *j = ud;
  j->rc =
      running_container(j->d->exec, j->ref, j->x->cid, &j->x->attrs, &j->err);
  if (j->rc == 0)
    j->rc = exec_cmd_check(j->d->exec, j->x->cid, j->x->user, &j->err);
}

static void create_done(void *ud, int cancelled) {
  struct create_job *j = ud;
  if (cancelled && j->rc == 0)
    j->rc = sh_error(&j->err, 503, "the daemon is shutting down");
  if (j->rc < 0) {
    api_reply_err(j->req, &j->err);
    inst_free(j->x);
  } else {
    struct api_execs *reg = registry(j->d);
    gc(reg);
    j->x->next = reg->head;
    reg->head = j->x;
    reg->n++;
    publish_cmd(j->x, "exec_create");
    api_reply_json(j->req, 201, json_pack("{s:s}", "Id", j->x->id));
  }
  free(j->ref);
  free(j);
}

static char **strv_from(const json_t *a) {
  size_t n = json_array_size(a);
  char **v = xcalloc(n + 1, sizeof *v);
  for (size_t i = 0; i < n; i++)
    v[i] = xstrdup(json_string_value(json_array_get(a, i)));
  return v;
}

static bool all_strings(const json_t *a) {
  size_t i;
  json_t *v;
  if (a && !json_is_array(a) && !json_is_null(a))
    return false;
  json_array_foreach(a, i, v) if (!json_is_string(v)) return false;
  return true;
}

static void api_exec_create(struct api_call *c, const char *ref) {
  sh_err err = {0};
  cleanup_json json_t *b = NULL;
  if (api_body(c->req, &b, &err) < 0)
    return api_reply_err(c->req, &err);
  const json_t *cmd = json_object_get(b, "Cmd");
  const json_t *env = json_object_get(b, "Env");
  if (!all_strings(cmd) || !all_strings(env)) {
    sh_error(&err, 400, "Cmd and Env must be arrays of strings");
    return api_reply_err(c->req, &err);
  }
  if (json_array_size(cmd) == 0) {
    sh_error(&err, 400, "No exec command specified");
    return api_reply_err(c->req, &err);
  }
  if (registry(c->d)->n >= EXEC_MAX) {
    gc(registry(c->d));
    if (registry(c->d)->n >= EXEC_MAX) {
      sh_error(&err, 503, "too many exec instances on this node");
      return api_reply_err(c->req, &err);
    }
  }
  struct xinst *x = xcalloc(1, sizeof *x);
  exec_cmd_init(&x->rt);
  x->d = c->d;
  x->cmd = json_deep_copy(cmd);
  x->env = strv_from(env);
  x->user = xstrdup(jx_str(b, "User", ""));
  x->workdir = xstrdup(jx_str(b, "WorkingDir", ""));
  x->detach_spec = xstrdup(jx_str(b, "DetachKeys", ""));
  x->tty = jx_bool(b, "Tty", false);
  x->privileged = jx_bool(b, "Privileged", false);
  x->open_stdin = jx_bool(b, "AttachStdin", false);
  x->open_stdout = jx_bool(b, "AttachStdout", false);
  x->open_stderr = jx_bool(b, "AttachStderr", false);
  const json_t *cs = json_object_get(b, "ConsoleSize");
  if (json_array_size(cs) == 2 &&
      c->version_major * 1000 + c->version_minor >= 1042) {
    x->rows = (unsigned)json_integer_value(json_array_get(cs, 0));
    x->cols = (unsigned)json_integer_value(json_array_get(cs, 1));
  }
  if (x->workdir[0] && x->workdir[0] != '/') {
    /* runc's check, before anything runs: Docker reports it at start. */
    sh_error(&err, 400,
             "the working directory '%s' is invalid, it needs to "
             "be an absolute path",
             x->workdir);
    inst_free(x);
    return api_reply_err(c->req, &err);
  }
  if (exec_detach_keys_parse(x->detach_spec, x->dk.keys, &x->dk.n, &err) < 0) {
    inst_free(x);
    return api_reply_err(c->req, &err);
  }
  id_new_hex(x->id);
  struct create_job *j = xcalloc(1, sizeof *j);
  j->d = c->d;
  j->req = c->req;
  j->x = x;
  j->ref = xstrdup(ref);
  workq_submit(c->d->work, create_work, create_done, j);
}

/* ---- the running session (loop) ---- */

static void handle_closed(uv_handle_t *h) {
  struct xinst *x = h->data;
  x->handles--;
}

static void close_handle(struct xinst *x, uv_handle_t *h, bool *open) {
  if (!*open)
    return;
  *open = false;
  if (h == (uv_handle_t *)&x->conn || h == (uv_handle_t *)&x->out ||
      h == (uv_handle_t *)&x->err || h == (uv_handle_t *)&x->in)
    uv_read_stop((uv_stream_t *)h);
  uv_close(h, handle_closed);
}

static void maybe_finish(struct xinst *x);

static void stdin_shut(uv_shutdown_t *sr, int status) {
  (void)status;
  struct xinst *x = sr->data;
  free(sr);
  close_handle(x, (uv_handle_t *)&x->in, &x->in_open);
}

/* The process's stdin ends after what was written to it. */
static void end_stdin(struct xinst *x) {
  if (!x->in_open || x->in_ending)
    return;
  x->in_ending = true;
  uv_shutdown_t *sr = xmalloc(sizeof *sr);
  sr->data = x;
  if (uv_shutdown(sr, (uv_stream_t *)&x->in, stdin_shut) < 0) {
    free(sr);
    close_handle(x, (uv_handle_t *)&x->in, &x->in_open);
  }
}

static void conn_shut(uv_shutdown_t *sr, int status) {
  (void)status;
  struct xinst *x = sr->data;
  free(sr);
  close_handle(x, (uv_handle_t *)&x->conn, &x->conn_open);
}

/* Ends the client's stream once what was written is out. */
static void end_conn(struct xinst *x) {
  if (!x->conn_open || x->conn_ending)
    return;
  x->conn_ending = true;
  uv_read_stop((uv_stream_t *)&x->conn);
  uv_shutdown_t *sr = xmalloc(sizeof *sr);
  sr->data = x;
  if (uv_shutdown(sr, (uv_stream_t *)&x->conn, conn_shut) < 0) {
    free(sr);
    close_handle(x, (uv_handle_t *)&x->conn, &x->conn_open);
  }
}

struct xwrite {
  uv_write_t w;
  struct xinst *x;
  char data[];
};

static void resume_output(struct xinst *x);

static void write_done(uv_write_t *w, int status) {
  struct xwrite *xw = (struct xwrite *)w;
  struct xinst *x = xw->x;
  free(xw);
  if (status < 0 && status != UV_ECANCELED) {
    x->client_gone = true;
    /* Nobody reads any more: the process's stdin ends with the client. */
    close_handle(x, (uv_handle_t *)&x->in, &x->in_open);
    close_handle(x, (uv_handle_t *)&x->conn, &x->conn_open);
  }
  resume_output(x);
  maybe_finish(x);
}

/* One write to the client, with a frame header when multiplexed. */
static void to_client(struct xinst *x, int stream, const char *data,
                      size_t len) {
  if (!x->conn_open || x->conn_ending || x->client_gone || len == 0)
    return;
  size_t hl = x->multiplexed && stream ? 8 : 0;
  struct xwrite *xw = xmalloc(sizeof *xw + hl + len);
  xw->x = x;
  if (hl)
    exec_frame_header((unsigned char *)xw->data, stream, (uint32_t)len);
  memcpy(xw->data + hl, data, len);
  uv_buf_t b = uv_buf_init(xw->data, (unsigned)(hl + len));
  if (uv_write(&xw->w, (uv_stream_t *)&x->conn, &b, 1, write_done) < 0) {
    free(xw);
    x->client_gone = true;
  }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  struct xinst *x = h->data;
  *buf = uv_buf_init(x->rbuf, sizeof x->rbuf);
}

static bool client_behind(struct xinst *x) {
  return x->conn_open && !x->client_gone &&
         uv_stream_get_write_queue_size((uv_stream_t *)&x->conn) > OUT_HIGH;
}

static void on_output(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  struct xinst *x = s->data;
  bool is_err = s == (uv_stream_t *)&x->err;
  if (n == 0)
    return;
  if (n < 0) {
    /* EOF, or EIO from a pty master once the terminal is gone. */
    close_handle(x, (uv_handle_t *)s, is_err ? &x->err_open : &x->out_open);
    maybe_finish(x);
    return;
  }
  if (is_err && x->errhead_len < sizeof x->errhead - 1) {
    size_t k = MIN((size_t)n, sizeof x->errhead - 1 - x->errhead_len);
    memcpy(x->errhead + x->errhead_len, buf->base, k);
    x->errhead_len += k;
    x->errhead[x->errhead_len] = '\0';
  }
  bool want = x->tty || (is_err ? x->open_stderr : x->open_stdout);
  if (want)
    to_client(x, is_err ? 2 : 1, buf->base, (size_t)n);
  if (client_behind(x))
    uv_read_stop(s);
}

static void resume_output(struct xinst *x) {
  if (client_behind(x))
    return;
  if (x->out_open)
    uv_read_start((uv_stream_t *)&x->out, on_alloc, on_output);
  if (x->err_open)
    uv_read_start((uv_stream_t *)&x->err, on_alloc, on_output);
}

static void on_client(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void stdin_written(uv_write_t *w, int status) {
  struct xwrite *xw = (struct xwrite *)w;
  struct xinst *x = xw->x;
  free(xw);
  (void)status;
  /* The client's input waits while the process is not reading. */
  if (x->conn_open && !x->conn_ending && !x->client_gone && !x->conn_eof)
    uv_read_start((uv_stream_t *)&x->conn, on_alloc, on_client);
}

static void to_process(struct xinst *x, const char *data, size_t len) {
  uv_stream_t *dst = x->tty ? (x->out_open ? (uv_stream_t *)&x->out : NULL)
                            : (x->in_open ? (uv_stream_t *)&x->in : NULL);
  if (!dst || len == 0 || !x->open_stdin)
    return;
  struct xwrite *xw = xmalloc(sizeof *xw + len);
  xw->x = x;
  memcpy(xw->data, data, len);
  uv_buf_t b = uv_buf_init(xw->data, (unsigned)len);
  if (uv_write(&xw->w, dst, &b, 1, stdin_written) < 0) {
    free(xw);
    return;
  }
  if (uv_stream_get_write_queue_size(dst) > OUT_HIGH)
    uv_read_stop((uv_stream_t *)&x->conn);
}

static void on_client(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  struct xinst *x = s->data;
  if (n == 0)
    return;
  if (n == UV_EOF) {
    /* The client's stdin ended (a half-close): so does the process's. */
    x->conn_eof = true;
    uv_read_stop(s);
    end_stdin(x);
    return;
  }
  if (n < 0) {
    x->client_gone = true;
    close_handle(x, (uv_handle_t *)&x->in, &x->in_open);
    close_handle(x, (uv_handle_t *)s, &x->conn_open);
    maybe_finish(x);
    return;
  }
  if (!x->tty || !x->open_stdin) {
    to_process(x, buf->base, (size_t)n);
    return;
  }
  unsigned char out[RBUF + EXEC_DETACH_KEYS_MAX];
  size_t olen = 0;
  exec_detach_scan(&x->dk, (const unsigned char *)buf->base, (size_t)n, out,
                   &olen);
  to_process(x, (const char *)out, olen);
  if (x->dk.detached) {
    /* Ctrl-P Ctrl-Q: the client leaves, the process runs on. */
    publish(x, "exec_detach", NULL);
    end_conn(x);
  }
}

static void drain_expired(uv_timer_t *t) {
  struct xinst *x = t->data;
  /* A background child still holds the output: the exec is over anyway. */
  close_handle(x, (uv_handle_t *)&x->out, &x->out_open);
  close_handle(x, (uv_handle_t *)&x->err, &x->err_open);
  maybe_finish(x);
}

/* After the exit and the end of the output: the client's stream ends. */
static void maybe_finish(struct xinst *x) {
  if (!x->proc_exited)
    return;
  if (x->out_open || x->err_open)
    return;
  close_handle(x, (uv_handle_t *)&x->drain, &x->drain_open);
  close_handle(x, (uv_handle_t *)&x->in, &x->in_open);
  if (x->conn_open && !x->client_gone)
    end_conn(x);
  else
    close_handle(x, (uv_handle_t *)&x->conn, &x->conn_open);
}

static void on_exit_(struct exec_watch *wa, void *ud) {
  struct xinst *x = ud;
  (void)wa;
  int st = 0;
  pid_t r;
  do
    r = waitpid(x->rt.pid, &st, WNOHANG);
  while (r < 0 && errno == EINTR);
  x->exit_code = r == x->rt.pid ? exec_cmd_exit_code(st) : 126;
  /* crun ends 255 when it could not run the command; Docker says 127 for
   * a missing one, 126 for one that cannot run (moby's
   * setExitCodeFromError). */
  if (x->exit_code == 255 && strstr(x->errhead, "not found in $PATH"))
    x->exit_code = 127;
  else if (x->exit_code == 255 && (strstr(x->errhead, "No such file") ||
                                   strstr(x->errhead, "ermission denied")))
    x->exit_code = strstr(x->errhead, "No such file") ? 127 : 126;
  x->has_exit = true;
  x->state = X_EXITED;
  x->ended_ns = clock_mono_ns();
  x->proc_exited = true;
  x->rt.pid = -1;
  exec_watch_free(STEAL_POINTER(&x->watch));
  char code[16];
  snprintf(code, sizeof code, "%d", x->exit_code);
  publish(x, "exec_die", json_pack("{s:s}", "exitCode", code));
  if (x->out_open || x->err_open) {
    if (uv_timer_init(x->d->loop, &x->drain) == 0) {
      x->drain.data = x;
      x->drain_open = true;
      x->handles++;
      uv_unref((uv_handle_t *)&x->drain);
      uv_timer_start(&x->drain, drain_expired, DRAIN_MS, 0);
    }
  }
  maybe_finish(x);
}

static bool open_pipe(struct xinst *x, uv_pipe_t *p, int *fd, bool *open) {
  if (*fd < 0)
    return true;
  if (uv_pipe_init(x->d->loop, p, 0) < 0)
    return false;
  p->data = x;
  x->handles++;
  *open = true;
  /* A running exec does not hold shoald's loop when it stops (the
   * process is left running, as its instance is lost anyway). */
  uv_unref((uv_handle_t *)p);
  if (uv_pipe_open(p, *fd) < 0) {
    close_handle(x, (uv_handle_t *)p, open);
    return false;
  }
  *fd = -1; /* the handle's now */
  return true;
}

/* ---- start ---- */

struct start_job {
  struct xinst *x;
  struct exec_cmd_opts o;
  json_t *info; /* what inspect shows, kept for a later shoald */
};

static void start_work(void *ud) {
  struct start_job *j = ud;
  struct xinst *x = j->x;
  x->start_rc =
      running_container(x->d->exec, x->cid, x->cid, NULL, &x->start_err);
  if (x->start_rc == 0)
    x->start_rc =
        exec_cmd_start(x->d->exec, x->cid, &j->o, &x->rt, &x->start_err);
  sh_err err = {0};
  if (x->start_rc == 0 &&
      exec_cmd_record(x->d->exec, x->cid, x->id, j->info, &x->rt, &err) < 0)
    log_warn("exec %s: not kept across a restart: %s", x->id, err.msg);
}

static void start_failed(struct xinst *x) {
  /* moby: an exec that could not start exits 126. */
  x->state = X_EXITED;
  x->has_exit = true;
  x->exit_code = 126;
  x->ended_ns = clock_mono_ns();
  x->proc_exited = true;
  if (x->conn_open) {
    char line[SH_ERR_MSG_MAX + 4];
    int n = snprintf(line, sizeof line, "%s\r\n", x->start_err.msg);
    to_client(x, 1, line, (size_t)n);
  }
  maybe_finish(x);
}

static void start_done(void *ud, int cancelled) {
  struct start_job *j = ud;
  struct xinst *x = j->x;
  json_decref(j->info);
  free(j);
  x->busy = false;
  if (cancelled && x->start_rc == 0)
    x->start_rc = sh_error(&x->start_err, 503, "the daemon is shutting down");
  if (x->start_rc < 0) {
    if (x->req) {
      api_reply_err(STEAL_POINTER(&x->req), &x->start_err);
      x->state = X_EXITED;
      x->has_exit = true;
      x->exit_code = 126;
      x->ended_ns = clock_mono_ns();
      return;
    }
    return start_failed(x);
  }
  x->state = X_RUNNING;
  x->pid = x->rt.proc_pid;
  sh_err err = {0};
  int pidfd = x->rt.pidfd; /* the watch's from here on */
  x->rt.pidfd = -1;
  if (!open_pipe(x, &x->out, &x->rt.fd_out, &x->out_open) ||
      !open_pipe(x, &x->err, &x->rt.fd_err, &x->err_open) ||
      !open_pipe(x, &x->in, &x->rt.fd_in, &x->in_open))
    log_warn("exec %s: cannot watch its streams", x->id);
  if (x->tty && x->rows && x->cols && x->out_open) {
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&x->out, &fd) == 0)
      exec_cmd_resize(fd, x->rows, x->cols);
  }
  resume_output(x);
  if (x->conn_open)
    uv_read_start((uv_stream_t *)&x->conn, on_alloc, on_client);
  if (x->req)
    http_respond(STEAL_POINTER(&x->req), 200, NULL, NULL, 0, NULL);
  if (exec_watch_new(x->d->loop, pidfd, on_exit_, x, &x->watch, &err) < 0)
    log_warn("exec %s: cannot watch its exit: %s", x->id, err.msg);
  else
    exec_watch_unref(x->watch);
}

static void api_exec_start(struct api_call *c, struct xinst *x) {
  sh_err err = {0};
  cleanup_json json_t *b = NULL;
  if (c->req->body_len > 0 && api_body(c->req, &b, &err) < 0)
    return api_reply_err(c->req, &err);
  bool detach = jx_bool(b, "Detach", false);
  if (x->state == X_EXITED) {
    sh_error(&err, 409, "exec command %s has already run", x->id);
    return api_reply_err(c->req, &err);
  }
  if (x->state != X_CREATED) {
    sh_error(&err, 409, "exec command %s is already running", x->id);
    return api_reply_err(c->req, &err);
  }
  const json_t *cs = json_object_get(b, "ConsoleSize");
  if (x->tty && json_array_size(cs) == 2 &&
      c->version_major * 1000 + c->version_minor >= 1042 &&
      json_integer_value(json_array_get(cs, 0)) > 0) {
    x->rows = (unsigned)json_integer_value(json_array_get(cs, 0));
    x->cols = (unsigned)json_integer_value(json_array_get(cs, 1));
  }
  struct start_job *j = xcalloc(1, sizeof *j);
  j->x = x;
  j->o = (struct exec_cmd_opts){
      .cmd = x->cmd,
      .env = (const char *const *)x->env,
      .user = x->user,
      .workdir = x->workdir,
      .tty = x->tty,
      .privileged = x->privileged,
      .want_stdin = !detach && x->open_stdin,
      .discard_output = detach && !x->tty,
      .rows = x->rows,
      .cols = x->cols,
      .record = x->id,
  };
  j->info = inspect_json(x);
  json_object_set_new(j->info, "Running", json_true());
  if (detach) {
    x->req = c->req;
  } else {
    bool upgrade = http_req_header(c->req, "Upgrade") != NULL;
    x->multiplexed = !x->tty;
    const char *ct =
        upgrade && !x->tty && c->version_major * 1000 + c->version_minor >= 1042
            ? "Content-Type: application/vnd.docker.multiplexed-stream"
            : "Content-Type: application/vnd.docker.raw-stream";
    const char *h101[] = {ct, "Connection: Upgrade", "Upgrade: tcp", NULL};
    const char *h200[] = {ct, NULL};
    int fd = -1;
    if (http_req_hijack(c->req, upgrade ? 101 : 200, upgrade ? h101 : h200, &fd,
                        &err) < 0) {
      json_decref(j->info);
      free(j);
      return;
    }
    if (!open_pipe(x, &x->conn, &fd, &x->conn_open)) {
      close(fd);
      json_decref(j->info);
      free(j);
      return;
    }
  }
  x->state = X_STARTING;
  x->busy = true;
  publish_cmd(x, "exec_start");
  workq_submit(c->d->work, start_work, start_done, j);
}

/* ---- inspect, resize ---- */

static struct xinst *adopt(struct shoald *d, const json_t *r) {
  struct xinst *x = xcalloc(1, sizeof *x);
  exec_cmd_init(&x->rt);
  x->d = d;
  x->adopted = true;
  snprintf(x->id, sizeof x->id, "%s", jx_str(r, "ID", ""));
  snprintf(x->cid, sizeof x->cid, "%s", jx_str(r, "ContainerID", ""));
  x->cmd = json_pack("[s]", jx_str(r, "ProcessConfig.entrypoint", ""));
  json_array_extend(x->cmd, jx_get(r, "ProcessConfig.arguments"));
  x->env = xcalloc(1, sizeof *x->env);
  x->user = xstrdup(jx_str(r, "ProcessConfig.user", ""));
  x->workdir = xstrdup("");
  x->detach_spec = xstrdup(jx_str(r, "DetachKeys", ""));
  x->tty = jx_bool(r, "ProcessConfig.tty", false);
  x->privileged = jx_bool(r, "ProcessConfig.privileged", false);
  x->open_stdin = jx_bool(r, "OpenStdin", false);
  x->open_stdout = jx_bool(r, "OpenStdout", false);
  x->open_stderr = jx_bool(r, "OpenStderr", false);
  x->pid = (pid_t)jx_int(r, "Pid", 0);
  const json_t *code = json_object_get(r, "ExitCode");
  x->state = jx_bool(r, "Running", false) ? X_RUNNING : X_EXITED;
  x->has_exit = json_is_integer(code);
  x->exit_code = (int)json_integer_value(code);
  x->ended_ns = clock_mono_ns();
  return x;
}

/* An adopted instance's exit, once its record says so. */
static void refresh(struct xinst *x) {
  int code = 0;
  if (!x->adopted || x->state != X_RUNNING || !x->d->exec)
    return;
  int st = exec_cmd_record_exit(x->d->exec, x->cid, x->id, &code);
  if (st == 0)
    return;
  x->state = X_EXITED;
  x->has_exit = st == 1;
  x->exit_code = code;
  x->ended_ns = clock_mono_ns();
}

static json_t *inspect_json(const struct xinst *x) {
  const char *ep = json_string_value(json_array_get(x->cmd, 0));
  json_t *args = json_array();
  for (size_t i = 1; i < json_array_size(x->cmd); i++)
    json_array_append(args, json_array_get(x->cmd, i));
  json_t *j = json_pack(
      "{s:s, s:b, s:o, s:{s:b, s:s, s:o, s:b, s:s}, s:b, s:b, s:b, s:b, "
      "s:s, s:s, s:i}",
      "ID", x->id, "Running", x->state == X_RUNNING || x->state == X_STARTING,
      "ExitCode", x->has_exit ? json_integer(x->exit_code) : json_null(),
      "ProcessConfig", "tty", x->tty, "entrypoint", ep ? ep : "", "arguments",
      args, "privileged", x->privileged, "user", x->user, "OpenStdin",
      x->open_stdin, "OpenStderr", x->open_stderr, "OpenStdout", x->open_stdout,
      "CanRemove", x->state == X_EXITED, "ContainerID", x->cid, "DetachKeys",
      x->detach_spec, "Pid", (int)x->pid);
  return j;
}

static int query_uint(struct http_req *req, const char *name, unsigned *out,
                      sh_err *err) {
  cleanup_free char *v = http_req_query(req, name);
  const char *what = strcmp(name, "h") == 0 ? "height" : "width";
  char *end = NULL;
  errno = 0;
  unsigned long long n = v && *v && *v != '-' ? strtoull(v, &end, 10) : 0;
  if (!v || !*v || *v == '-' || *end || errno || n > 0xffffffffULL)
    return sh_error(err, 400,
                    "invalid resize %s \"%s\": strconv.ParseUint: "
                    "parsing \"%s\": invalid syntax",
                    what, v ? v : "", v ? v : "");
  *out = (unsigned)n;
  return 0;
}

static void exec_resize(struct api_call *c, struct xinst *x) {
  sh_err err = {0};
  unsigned h, w;
  if (query_uint(c->req, "h", &h, &err) < 0 ||
      query_uint(c->req, "w", &w, &err) < 0)
    return api_reply_err(c->req, &err);
  if (x->state == X_EXITED) {
    sh_error(&err, 409, "container %s is not running", x->cid);
    return api_reply_err(c->req, &err);
  }
  /* Before the terminal exists (the CLI resizes at once): its first size. */
  x->rows = h;
  x->cols = w;
  uv_os_fd_t fd;
  if (x->tty && x->out_open && uv_fileno((uv_handle_t *)&x->out, &fd) == 0 &&
      exec_cmd_resize(fd, h, w) < 0) {
    sh_error(&err, 500, "resize: %s", strerror(errno));
    return api_reply_err(c->req, &err);
  }
  http_respond(c->req, 200, NULL, NULL, 0, NULL);
}

/* ---- attach: the container's output as it comes ---- */

struct attach_job {
  struct shoald *d;
  struct http_req *req;
  char *ref;
  char cid[65];
  bool logs, stream, want_out, want_err, want_in, upgrade;
  bool stdin_fwd; /* the container's stdin is open (docker run -i) */
  bool tty;       /* Config.Tty: raw output, detach keys on stdin */
  /* The run under way at attach (its start time, 0: never started):
   * attached to a container not running, output and stdin wait for the
   * next run (docker start -a / -ai of an exited container). */
  int64_t started0;
  bool was_running;
  int64_t at_ns; /* wall clock at the attach */
  struct exec_detach det;
  int fd; /* the hijacked stream, blocking, written from the thread */
  sh_err err;
  int rc;
};

static void attach_free(struct attach_job *j) {
  if (j->fd >= 0)
    close(j->fd);
  free(j->ref);
  free(j);
}

static int attach_write(void *arg, const void *buf, size_t len) {
  struct attach_job *j = arg;
  const char *p = buf;
  while (len > 0) {
    ssize_t n = send(j->fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* The client closed (not only its stdin): the bridge's end is gone. What
 * the client sends is dropped unless the container's stdin is open (then
 * stdin_thread reads it). */
static bool attach_cancelled(void *arg) {
  struct attach_job *j = arg;
  char sink[4096];
  while (!j->stdin_fwd && recv(j->fd, sink, sizeof sink, MSG_DONTWAIT) > 0)
    ;
  struct pollfd pf = {.fd = j->fd, .events = 0};
  return poll(&pf, 1, 0) > 0 && (pf.revents & (POLLHUP | POLLERR));
}

/* Attached to a container that does not run: waits for its next run
 * (false: the client left or the container went). */
static bool next_run(executor *ex, const char *cid, int64_t started0,
                     bool (*gone)(void *), void *arg) {
  for (;;) {
    struct exec_state st;
    if (exec_state(ex, cid, &st, NULL) < 0)
      return false;
    if (st.started_ns != started0)
      return true;
    if (gone(arg))
      return false;
    usleep(50 * 1000);
  }
}

static void *attach_thread(void *arg) {
  struct attach_job *j = arg;
  /* Never started (docker run's attach before its start): the log follow
   * waits for the run itself. Polling for the start instead lost a fast
   * --rm container's whole output: run, exit and removal all fell between
   * two polls. */
  if (j->stream && !j->was_running && j->started0 != 0 &&
      !next_run(j->d->exec, j->cid, j->started0, attach_cancelled, j)) {
    shutdown(j->fd, SHUT_WR);
    attach_free(j);
    return NULL;
  }
  struct exec_logs_opts lo = {
      .want_stdout = j->want_out,
      .want_stderr = j->want_err,
      .follow = j->stream,
      /* logs=0: only what comes from the attach on */
      .since_ns = j->logs ? 0 : j->at_ns,
      .tail = -1,
      .raw = j->tty,
      .write = attach_write,
      .cancelled = attach_cancelled,
      .arg = j,
  };
  sh_err err = {0};
  if (exec_logs(j->d->exec, j->cid, &lo, &err) < 0)
    log_debug("attach %s: %s", j->cid, err.msg);
  shutdown(j->fd, SHUT_WR);
  attach_free(j);
  return NULL;
}

static void attach_work(void *ud) {
  struct attach_job *j = ud;
  j->at_ns = clock_wall_ns();
  j->rc = exec_find(j->d->exec, j->ref, j->cid, &j->err);
  cleanup_json json_t *info = NULL;
  if (j->rc == 0 && exec_inspect_json(j->d->exec, j->cid, &info, NULL) == 0) {
    j->stdin_fwd = j->want_in && jx_bool(info, "Config.OpenStdin", false);
    j->tty = jx_bool(info, "Config.Tty", false);
    struct exec_state st;
    if (exec_state(j->d->exec, j->cid, &st, NULL) == 0) {
      j->started0 = st.started_ns;
      j->was_running = st.status == EXEC_STATUS_RUNNING;
    }
  }
}

/* docker run -i / attach to such a container: the client's stdin to the
 * process's through conmon's attach socket. The connection is made once
 * the container runs (run attaches before it starts; what the client
 * sends meanwhile waits in the socket); the client's end of its stdin
 * (CloseWrite) closes the process's (StdinOnce). conmon's copies of the
 * output are dropped: the output stream comes from the log. */
struct stdin_fwd {
  executor *ex;
  char cid[65];
  int in; /* a dup of the hijacked stream */
  /* With a TTY, as dockerd: the detach keys end this client's stream
   * (both ways) and leave the process and its terminal as they are. */
  bool tty;
  struct exec_detach det;
  int64_t started0; /* the run at attach: stdin goes to a later one */
};

static bool client_gone(int fd) {
  struct pollfd pf = {.fd = fd, .events = 0};
  return poll(&pf, 1, 0) > 0 && (pf.revents & (POLLHUP | POLLERR));
}

static void *stdin_thread(void *arg) {
  struct stdin_fwd *f = arg;
  int s = -1;
  while (exec_attach_stdin(f->ex, f->cid, &s, NULL) < 0) {
    struct exec_state st;
    /* An exit of the run seen at attach is not the end: start -ai
     * starts it again. */
    if (exec_state(f->ex, f->cid, &st, NULL) < 0 ||
        (st.status == EXEC_STATUS_EXITED && st.started_ns != f->started0) ||
        client_gone(f->in))
      goto out;
    usleep(50 * 1000);
  }
  char buf[8192];
  for (;;) {
    struct pollfd pf[2] = {{.fd = f->in, .events = POLLIN},
                           {.fd = s, .events = POLLIN}};
    if (poll(pf, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (pf[1].revents & POLLIN) {
      ssize_t n = recv(s, buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0)
        break;
    } else if (pf[1].revents & (POLLHUP | POLLERR)) {
      break;
    }
    if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = recv(f->in, buf, sizeof buf, MSG_DONTWAIT);
      if (n < 0 && (errno == EINTR || errno == EAGAIN))
        continue;
      if (n <= 0)
        break;
      const char *p = buf;
      size_t len = (size_t)n;
      unsigned char keep[sizeof buf + EXEC_DETACH_KEYS_MAX];
      if (f->tty) {
        len = 0;
        exec_detach_scan(&f->det, (const unsigned char *)buf, (size_t)n, keep,
                         &len);
        p = (const char *)keep;
      }
      if (len && send(s, p, len, MSG_NOSIGNAL) < 0)
        break;
      if (f->det.detached) {
        shutdown(f->in, SHUT_RDWR); /* the output thread sees the client go */
        break;
      }
    }
  }
out:
  if (s >= 0)
    close(s);
  close(f->in);
  free(f);
  return NULL;
}

static void attach_done(void *ud, int cancelled) {
  struct attach_job *j = ud;
  if (cancelled && j->rc == 0)
    j->rc = sh_error(&j->err, 503, "the daemon is shutting down");
  if (j->rc < 0) {
    api_reply_err(j->req, &j->err);
    return attach_free(j);
  }
  /* A TTY's output is raw; else multiplexed (older clients: raw-stream
   * named, framed all the same, as dockerd). */
  const char *ct =
      j->upgrade && !j->tty
          ? "Content-Type: application/vnd.docker.multiplexed-stream"
          : "Content-Type: application/vnd.docker.raw-stream";
  const char *h101[] = {ct, "Connection: Upgrade", "Upgrade: tcp", NULL};
  const char *h200[] = {ct, NULL};
  sh_err err = {0};
  if (http_req_hijack(j->req, j->upgrade ? 101 : 200, j->upgrade ? h101 : h200,
                      &j->fd, &err) < 0)
    return attach_free(j);
  fcntl(j->fd, F_SETFL, fcntl(j->fd, F_GETFL) & ~O_NONBLOCK);
  /* A thread of its own, as logs -f: it lasts as long as the container. */
  pthread_t th;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (j->stdin_fwd) {
    struct stdin_fwd *f = xcalloc(1, sizeof *f);
    f->ex = j->d->exec;
    memcpy(f->cid, j->cid, sizeof f->cid);
    f->in = fcntl(j->fd, F_DUPFD_CLOEXEC, 0);
    f->tty = j->tty;
    f->det = j->det;
    f->started0 = j->was_running ? -1 : j->started0;
    pthread_t sth;
    if (f->in < 0 || pthread_create(&sth, &attr, stdin_thread, f) != 0) {
      if (f->in >= 0)
        close(f->in);
      free(f);
      j->stdin_fwd = false;
    }
  }
  if (pthread_create(&th, &attr, attach_thread, j) != 0)
    attach_free(j);
  pthread_attr_destroy(&attr);
}

static void attach(struct api_call *c, const char *ref) {
  struct attach_job *j = xcalloc(1, sizeof *j);
  j->d = c->d;
  j->req = c->req;
  j->fd = -1;
  j->ref = xstrdup(ref);
  j->logs = api_query_bool(c->req, "logs");
  j->stream = api_query_bool(c->req, "stream");
  j->want_out = api_query_bool(c->req, "stdout");
  j->want_err = api_query_bool(c->req, "stderr");
  j->want_in = api_query_bool(c->req, "stdin");
  j->upgrade = http_req_header(c->req, "Upgrade") != NULL;
  cleanup_free char *keys = http_req_query(c->req, "detachKeys");
  unsigned char k[EXEC_DETACH_KEYS_MAX];
  size_t nk;
  sh_err err = {0};
  if (exec_detach_keys_parse(keys, k, &nk, &err) < 0) {
    attach_free(j);
    return api_reply_err(c->req, &err);
  }
  memcpy(j->det.keys, k, nk);
  j->det.n = nk;
  workq_submit(c->d->reads ? c->d->reads : c->d->work, attach_work, attach_done,
               j);
}

/* POST /containers/{id}/resize: a TTY container's pty through conmon
 * (exec_tty_resize); one without a TTY has nothing to resize (as containerd,
 * a no-op), but it must exist and run. */
struct resize_job {
  struct http_req *req;
  struct shoald *d;
  char *ref;
  unsigned h, w;
  sh_err err;
  int rc;
};

static void cresize_work(void *ud) {
  struct resize_job *j = ud;
  char cid[65];
  j->rc = running_container(j->d->exec, j->ref, cid, NULL, &j->err);
  if (j->rc == 0)
    j->rc = exec_tty_resize(j->d->exec, cid, j->h, j->w, &j->err);
}

static void cresize_done(void *ud, int cancelled) {
  struct resize_job *j = ud;
  if (cancelled && j->rc == 0)
    j->rc = sh_error(&j->err, 503, "the daemon is shutting down");
  if (j->rc < 0)
    api_reply_err(j->req, &j->err);
  else
    http_respond(j->req, 200, NULL, NULL, 0, NULL);
  free(j->ref);
  free(j);
}

static void container_resize(struct api_call *c, const char *ref) {
  sh_err err = {0};
  unsigned h, w;
  if (query_uint(c->req, "h", &h, &err) < 0 ||
      query_uint(c->req, "w", &w, &err) < 0)
    return api_reply_err(c->req, &err);
  struct resize_job *j = xcalloc(1, sizeof *j);
  j->req = c->req;
  j->d = c->d;
  j->ref = xstrdup(ref);
  j->h = h;
  j->w = w;
  workq_submit(c->d->reads ? c->d->reads : c->d->work, cresize_work,
               cresize_done, j);
}

/* ---- routing ---- */

/* "/prefix/{ref}/suffix" -> ref (malloc'd) when it matches. */
static char *route(const char *path, const char *prefix, const char *suffix) {
  if (!str_has_prefix(path, prefix))
    return NULL;
  const char *rest = path + strlen(prefix);
  const char *slash = strchr(rest, '/');
  if (!slash || slash == rest || strcmp(slash, suffix) != 0)
    return NULL;
  return xstrndup(rest, (size_t)(slash - rest));
}

bool api_exec(struct api_call *c) {
  const char *p = c->path;
  bool post = strcmp(c->req->method, "POST") == 0;
  bool get = strcmp(c->req->method, "GET") == 0;
  sh_err err = {0};
  cleanup_free char *ref = NULL;
  if (post && (ref = route(p, "/containers/", "/exec"))) {
    if (!c->d->exec)
      goto no_container;
    api_exec_create(c, ref);
    return true;
  }
  if (post && (ref = route(p, "/containers/", "/attach"))) {
    if (!c->d->exec)
      goto no_container;
    attach(c, ref);
    return true;
  }
  if (post && (ref = route(p, "/containers/", "/resize"))) {
    if (!c->d->exec)
      goto no_container;
    container_resize(c, ref);
    return true;
  }
  const char *suffixes[] = {"/start", "/resize", "/json"};
  for (size_t i = 0; i < ARRAY_SIZE(suffixes) && !ref; i++)
    if ((ref = route(p, "/exec/", suffixes[i]))) {
      if ((i < 2 && !post) || (i == 2 && !get)) {
        free(STEAL_POINTER(&ref));
        return false;
      }
      struct xinst *x = find(c->d, ref);
      if (!x) {
        sh_error(&err, 404, "No such exec instance: %s", ref);
        api_reply_err(c->req, &err);
        return true;
      }
      if (i == 0)
        api_exec_start(c, x);
      else if (i == 1)
        exec_resize(c, x);
      else {
        refresh(x);
        api_reply_json(c->req, 200, inspect_json(x));
      }
      return true;
    }
  return false;
no_container:
  sh_error(&err, 404, "No such container: %s", ref);
  api_reply_err(c->req, &err);
  return true;
}
