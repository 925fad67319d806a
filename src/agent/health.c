/* Healthchecks (see health.h). */
#include "agent/health.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/util.h"
#include "exec/exec.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

/* dockerd's defaults */
#define DEFAULT_INTERVAL (30 * NS_PER_SEC)
#define DEFAULT_TIMEOUT (30 * NS_PER_SEC)
#define DEFAULT_START_INTERVAL (5 * NS_PER_SEC)
#define DEFAULT_RETRIES 3

const char *health_status_string(enum health_status s) {
  switch (s) {
  case HEALTH_STARTING:
    return "starting";
  case HEALTH_HEALTHY:
    return "healthy";
  case HEALTH_UNHEALTHY:
    return "unhealthy";
  }
  return "unhealthy";
}

/* ---- configuration ---- */

static bool has_test(const json_t *hc) {
  return json_array_size(json_object_get(hc, "Test")) > 0;
}

json_t *health_merge(const json_t *image_hc, const json_t *spec_hc) {
  json_t *out;
  if (!json_is_object(spec_hc)) {
    out = json_is_object(image_hc) ? json_deep_copy(image_hc) : NULL;
  } else {
    out = json_deep_copy(spec_hc);
    if (json_is_object(image_hc)) {
      if (!has_test(out) && has_test(image_hc))
        json_object_set(out, "Test", json_object_get(image_hc, "Test"));
      static const char *const fields[] = {"Interval", "Timeout", "StartPeriod",
                                           "StartInterval", "Retries"};
      for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
        if (jx_int(out, fields[i], 0) == 0 &&
            jx_int(image_hc, fields[i], 0) != 0)
          json_object_set(out, fields[i], json_object_get(image_hc, fields[i]));
    }
  }
  const char *t0 =
      json_string_value(json_array_get(json_object_get(out, "Test"), 0));
  if (!t0 || strcmp(t0, "NONE") == 0) {
    json_decref(out);
    return NULL;
  }
  return out;
}

json_t *health_probe_cmd(const json_t *hc, const json_t *shell) {
  const json_t *test = json_object_get(hc, "Test");
  const char *t0 = json_string_value(json_array_get(test, 0));
  if (!t0 || json_array_size(test) < 2)
    return NULL;
  json_t *cmd = json_array();
  if (strcmp(t0, "CMD-SHELL") == 0) {
    if (json_array_size(shell) > 0)
      json_array_extend(cmd, (json_t *)shell);
    else {
      json_array_append_new(cmd, json_string("/bin/sh"));
      json_array_append_new(cmd, json_string("-c"));
    }
  } else if (strcmp(t0, "CMD") != 0) {
    json_decref(cmd);
    return NULL; /* dockerd ignores other types too */
  }
  for (size_t i = 1; i < json_array_size(test); i++) {
    const json_t *a = json_array_get(test, i);
    if (!json_is_string(a)) {
      json_decref(cmd);
      return NULL;
    }
    json_array_append(cmd, (json_t *)a);
  }
  return cmd;
}

static int64_t or_default(int64_t v, int64_t def) {
  return v > 0 ? v : def;
}

void health_params_from(const json_t *hc, struct health_params *out) {
  out->interval_ns = or_default(jx_int(hc, "Interval", 0), DEFAULT_INTERVAL);
  out->timeout_ns = or_default(jx_int(hc, "Timeout", 0), DEFAULT_TIMEOUT);
  out->start_period_ns = or_default(jx_int(hc, "StartPeriod", 0), 0);
  out->start_interval_ns =
      or_default(jx_int(hc, "StartInterval", 0), DEFAULT_START_INTERVAL);
  out->retries = (int)or_default(jx_int(hc, "Retries", 0), DEFAULT_RETRIES);
}

/* ---- the state machine ---- */

json_t *health_state_new(void) {
  return json_pack("{s:s,s:i,s:[]}", "Status", "starting", "FailingStreak", 0,
                   "Log");
}

enum health_status health_state_status(const json_t *state) {
  const char *s = jx_str(state, "Status", "");
  if (strcmp(s, "starting") == 0)
    return HEALTH_STARTING;
  if (strcmp(s, "healthy") == 0)
    return HEALTH_HEALTHY;
  return HEALTH_UNHEALTHY; /* dockerd's reading of an unknown status */
}

static json_t *time_str(int64_t ns) {
  char buf[64];
  return json_string(clock_format_rfc3339(ns, buf, sizeof buf));
}

bool health_record(json_t *state, const struct health_params *p,
                   int64_t started_ns, int64_t start_ns, int64_t end_ns,
                   int exit_code, const char *output) {
  enum health_status old = health_state_status(state);
  json_t *log = json_object_get(state, "Log");
  if (!json_is_array(log)) {
    log = json_array();
    json_object_set_new(state, "Log", log);
  }
  while (json_array_size(log) >= HEALTH_MAX_LOG)
    json_array_remove(log, 0);
  json_array_append_new(log, json_pack("{s:o,s:o,s:i,s:s}", "Start",
                                       time_str(start_ns), "End",
                                       time_str(end_ns), "ExitCode", exit_code,
                                       "Output", output ? output : ""));
  enum health_status now = old;
  int64_t streak = jx_int(state, "FailingStreak", 0);
  if (exit_code == 0) {
    streak = 0;
    now = HEALTH_HEALTHY;
  } else if (old != HEALTH_STARTING ||
             start_ns - started_ns >= p->start_period_ns) {
    /* Failures in the start period count only once it is over, or once
     * the container was healthy. */
    if (++streak >= p->retries)
      now = HEALTH_UNHEALTHY;
  }
  json_object_set_new(state, "FailingStreak", json_integer(streak));
  json_object_set_new(state, "Status", json_string(health_status_string(now)));
  return now != old;
}

int64_t health_next_interval(const json_t *state, const struct health_params *p,
                             int64_t started_ns, int64_t now_ns) {
  if (now_ns - started_ns >= p->start_period_ns)
    return p->interval_ns;
  return health_state_status(state) == HEALTH_STARTING ? p->start_interval_ns
                                                       : p->interval_ns;
}

void health_output_add(struct health_output *o, const char *data, size_t n) {
  size_t room = HEALTH_MAX_OUTPUT - o->len;
  size_t keep = n < room ? n : room;
  memcpy(o->buf + o->len, data, keep);
  o->len += keep;
  if (keep < n)
    o->truncated = true;
}

const char *health_output_str(struct health_output *o) {
  size_t len = o->len;
  if (o->truncated) {
    memcpy(o->buf + len, "...", 3);
    len += 3;
  }
  o->buf[len] = '\0';
  return o->buf;
}

/* ---- the monitor ---- */

/* One run of the probe. It outlives its monitor if need be: its handles
 * close on their own time, then it frees itself. */
struct probe {
  struct health *h; /* NULL once detached */
  uv_process_t proc;
  uv_pipe_t out;
  uv_timer_t timeout;
  int open;
  bool exited, eof, done;
  int exit_code;
  int64_t start_ns;
  struct health_output output;
};

struct health {
  uv_loop_t *loop;
  struct executor *exec;
  char cid[65];
  char **argv;
  char *pidfile;
  struct health_params p;
  int64_t started_ns;
  json_t *state;
  uv_timer_t timer;
  struct probe *cur;
  bool stopped;
  bool timer_open;
  health_fn on_change;
  void *ud;
};

static void health_closed(uv_handle_t *hd) {
  struct health *h = hd->data;
  exec_argv_free(h->argv);
  free(h->pidfile);
  json_decref(h->state);
  free(h);
}

static void probe_closed(uv_handle_t *hd) {
  struct probe *pr = hd->data;
  if (--pr->open == 0)
    free(pr);
}

static void probe_close_handle(struct probe *pr, uv_handle_t *hd) {
  if (!uv_is_closing(hd))
    uv_close(hd, probe_closed);
}

static void schedule(struct health *h);

/* The probe's result is in (or it timed out): record it once. */
static void probe_finish(struct probe *pr, int code, const char *output) {
  if (pr->done)
    return;
  pr->done = true;
  uv_timer_stop(&pr->timeout);
  probe_close_handle(pr, (uv_handle_t *)&pr->timeout);
  probe_close_handle(pr, (uv_handle_t *)&pr->out);
  struct health *h = pr->h;
  pr->h = NULL;
  if (pr->exited)
    probe_close_handle(pr, (uv_handle_t *)&pr->proc);
  if (!h)
    return;
  h->cur = NULL;
  bool changed = health_record(h->state, &h->p, h->started_ns, pr->start_ns,
                               clock_wall_ns(), code, output);
  sh_err err = {0};
  if (exec_set_health(h->exec, h->cid, h->state, &err) < 0)
    log_warn("container %s: storing its health: %s", h->cid, err.msg);
  if (changed)
    log_info("container %s is %s", h->cid,
             health_status_string(health_state_status(h->state)));
  schedule(h);
  if (changed && h->on_change)
    h->on_change(h, health_state_status(h->state), h->ud);
}

static void probe_maybe_done(struct probe *pr) {
  if (pr->exited && pr->eof)
    probe_finish(pr, pr->exit_code, health_output_str(&pr->output));
}

static void probe_exit(uv_process_t *p, int64_t status, int sig) {
  struct probe *pr = p->data;
  pr->exited = true;
  pr->exit_code = sig ? 128 + sig : (int)status;
  if (pr->done)
    probe_close_handle(pr, (uv_handle_t *)&pr->proc);
  else
    probe_maybe_done(pr);
}

static void probe_alloc(uv_handle_t *hd, size_t hint, uv_buf_t *buf) {
  static _Thread_local char slab[4096];
  buf->base = slab;
  buf->len = sizeof slab;
}

static void probe_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  struct probe *pr = s->data;
  if (n > 0) {
    health_output_add(&pr->output, buf->base, (size_t)n);
    return;
  }
  if (n < 0) {
    uv_read_stop(s);
    pr->eof = true;
    probe_maybe_done(pr);
  }
}

/* Kills crun exec and the process it started in the container (a killed
 * crun leaves that one running). */
static void probe_kill(struct probe *pr, const char *pidfile) {
  if (!pr->exited)
    uv_process_kill(&pr->proc, SIGKILL);
  cleanup_free char *s = NULL;
  size_t len = 0;
  if (pidfile && read_file(pidfile, &s, &len, NULL) == 0) {
    long pid = strtol(s, NULL, 10);
    if (pid > 1)
      kill((pid_t)pid, SIGKILL);
  }
}

static void probe_timeout(uv_timer_t *t) {
  struct probe *pr = t->data;
  struct health *h = pr->h;
  probe_kill(pr, h ? h->pidfile : NULL);
  char d[64];
  clock_format_duration(h ? h->p.timeout_ns : 0, d, sizeof d);
  const char *out = health_output_str(&pr->output);
  cleanup_free char *msg =
      *out ? xasprintf("Health check exceeded timeout (%s): %s", d, out)
           : xasprintf("Health check exceeded timeout (%s)", d);
  probe_finish(pr, -1, msg);
}

static void run_probe(uv_timer_t *t) {
  struct health *h = t->data;
  if (h->stopped || h->cur)
    return;
  struct probe *pr = xcalloc(1, sizeof *pr);
  pr->h = h;
  pr->start_ns = clock_wall_ns();
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) {
    free(pr);
    cleanup_free char *msg = xasprintf("pipe: %s", strerror(errno));
    health_record(h->state, &h->p, h->started_ns, clock_wall_ns(),
                  clock_wall_ns(), -1, msg);
    schedule(h);
    return;
  }
  if (h->pidfile)
    unlink(h->pidfile);
  uv_pipe_init(h->loop, &pr->out, 0);
  pr->out.data = pr;
  uv_pipe_open(&pr->out, fds[0]);
  uv_timer_init(h->loop, &pr->timeout);
  pr->timeout.data = pr;
  pr->open = 2;
  uv_stdio_container_t stdio[3] = {
      {.flags = UV_IGNORE},
      {.flags = UV_INHERIT_FD, .data.fd = fds[1]},
      {.flags = UV_INHERIT_FD, .data.fd = fds[1]},
  };
  char *env[] = {
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      NULL};
  uv_process_options_t o = {
      .exit_cb = probe_exit,
      .file = h->argv[0],
      .args = h->argv,
      .env = env,
      .stdio_count = 3,
      .stdio = stdio,
  };
  pr->proc.data = pr;
  int rc = uv_spawn(h->loop, &pr->proc, &o);
  close(fds[1]);
  h->cur = pr;
  if (rc < 0) {
    /* The handle is still to be closed, as libuv wants. */
    pr->exited = true;
    pr->open++;
    cleanup_free char *msg =
        xasprintf("exec %s: %s", h->argv[0], uv_strerror(rc));
    probe_finish(pr, -1, msg);
    return;
  }
  pr->open++;
  uv_read_start((uv_stream_t *)&pr->out, probe_alloc, probe_read);
  uv_timer_start(&pr->timeout, probe_timeout,
                 (uint64_t)(h->p.timeout_ns / NS_PER_MS) + 1, 0);
}

static void schedule(struct health *h) {
  if (h->stopped)
    return;
  int64_t next =
      health_next_interval(h->state, &h->p, h->started_ns, clock_wall_ns());
  uv_timer_start(&h->timer, run_probe, (uint64_t)(next / NS_PER_MS) + 1, 0);
}

struct health *health_start(const struct health_start *s) {
  struct health *h = xcalloc(1, sizeof *h);
  h->loop = s->loop;
  h->exec = s->exec;
  snprintf(h->cid, sizeof h->cid, "%s", s->cid);
  h->argv = s->argv;
  h->pidfile = s->pidfile ? xstrdup(s->pidfile) : NULL;
  health_params_from(s->hc, &h->p);
  h->started_ns = s->started_ns;
  h->state = json_is_object(s->state) && jx_get(s->state, "Status")
                 ? json_deep_copy(s->state)
                 : health_state_new();
  h->on_change = s->on_change;
  h->ud = s->ud;
  uv_timer_init(h->loop, &h->timer);
  h->timer.data = h;
  sh_err err = {0};
  if (exec_set_health(h->exec, h->cid, h->state, &err) < 0)
    log_warn("container %s: storing its health: %s", h->cid, err.msg);
  schedule(h);
  return h;
}

enum health_status health_status(const struct health *h) {
  return health_state_status(h->state);
}

void health_stop(struct health *h) {
  if (!h)
    return;
  h->stopped = true;
  uv_timer_stop(&h->timer);
  if (h->cur) {
    struct probe *pr = h->cur;
    h->cur = NULL;
    pr->h = NULL;
    probe_kill(pr, h->pidfile);
    /* Detached: it finishes without anyone to tell. */
    pr->done = true;
    uv_timer_stop(&pr->timeout);
    probe_close_handle(pr, (uv_handle_t *)&pr->timeout);
    probe_close_handle(pr, (uv_handle_t *)&pr->out);
    if (pr->exited)
      probe_close_handle(pr, (uv_handle_t *)&pr->proc);
  }
  uv_close((uv_handle_t *)&h->timer, health_closed);
}
