/* Container lifecycle and inspection on this node: stop, kill, restart,
 * wait, remove, pause, unpause, rename, top, stats, changes.
 *
 * A task's container belongs to its controller in the worker: lifecycle
 * calls go through worker_ctl (its exit is the task's end, and the
 * orchestrator replaces it). Containers no task here owns are driven
 * through the executor directly. Every runtime call runs on a work queue;
 * stats streams hold no thread: a loop timer starts one short sample at a
 * time. */
#include "api/api.h"

#include "agent/standalone.h"
#include "agent/runspec.h"
#include "agent/worker.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "core/workq.h"
#include "daemon/daemon.h"
#include "events/events.h"
#include "exec/exec.h"
#include "http/server.h"
#include "volume/volume.h"

#include <ctype.h>
#include <signal.h>

#define STATS_INTERVAL_MS 1000
/* A stats client that does not read: frames are dropped past this. */
#define STATS_QUEUE_MAX (256 * 1024)

enum ctl_op {
  OP_STOP,
  OP_KILL,
  OP_RESTART,
  OP_REMOVE,
  OP_PAUSE,
  OP_UNPAUSE,
  OP_RENAME,
  OP_TOP,
  OP_CHANGES,
  OP_STATS,
  OP_WAIT,
};

enum wait_cond { WAIT_NOT_RUNNING, WAIT_NEXT_EXIT, WAIT_REMOVED };

struct ctl_job {
  struct shoald *d;
  struct http_req *req;
  enum ctl_op op;
  char *ref;
  char id[65];
  json_t *info; /* inspect, before the operation */
  int sig;
  int64_t grace_ns;
  bool force;
  bool was_running; /* rm -f: the container ran (dockerd: kill, die) */
  bool volumes;     /* rm -v */
  char *arg;        /* rename: the new name; top: ps arguments */
  json_t *result;
  sh_err err;
  int rc;
  /* stats */
  bool stream, one_shot, sampling, gone, closing;
  json_t *prev;
  uv_timer_t timer;
  /* wait */
  enum wait_cond cond;
  int sub;
  bool subscribed, resolved;
  json_t *seen; /* die/destroy events since the request came */
};

static struct workq *read_queue(struct shoald *d) {
  return d->reads ? d->reads : d->work;
}

static void job_free(struct ctl_job *j) {
  if (j->subscribed)
    events_unsubscribe(j->d->events, j->sub);
  free(j->ref);
  free(j->arg);
  json_decref(j->info);
  json_decref(j->result);
  json_decref(j->prev);
  json_decref(j->seen);
  free(j);
}

static void reply_err(struct ctl_job *j) {
  api_reply_err(j->req, &j->err);
  job_free(j);
}

static void reply_status(struct ctl_job *j, int status) {
  http_respond(j->req, status, NULL, NULL, 0, NULL);
  job_free(j);
}

/* A container event for one no task owns (the worker sends its own). */
static void publish(struct ctl_job *j, const char *action, const char *key,
                    const char *value) {
  if (!j->d->events || !j->info)
    return;
  json_t *attrs = exec_event_attrs(j->info);
  if (key)
    json_object_set_new(attrs, key, json_string(value));
  bool start = strcmp(action, "start") == 0;
  if (start || strcmp(action, "die") == 0)
    events_volume_mounts(j->d->events, json_object_get(j->info, "Mounts"),
                         j->id, start);
  events_publish(j->d->events, "container", action, j->id, attrs, "local");
}

/* ---- rename: Docker's name rules ---- */

static int rename_work(struct ctl_job *j) {
  const char *name = j->arg[0] == '/' ? j->arg + 1 : j->arg;
  const char *old = jx_str(j->info, "Name", "");
  if (strcmp(old[0] == '/' ? old + 1 : old, name) == 0)
    return sh_error(&j->err, 400,
                    "Error when allocating new name: Renaming a container "
                    "with the same name as its current name");
  struct exec_entry *list = NULL;
  size_t n = 0;
  if (exec_list(j->d->exec, &list, &n, &j->err) < 0)
    return -1;
  int rc = 0;
  for (size_t i = 0; i < n; i++)
    if (strcmp(list[i].name, name) == 0)
      rc = sh_error(&j->err, 409,
                    "Error when allocating new name: Conflict. The container "
                    "name \"/%s\" is already in use by container \"%s\". You "
                    "have to remove (or rename) that container to be able to "
                    "reuse that name.",
                    name, list[i].id);
  exec_list_free(list, n);
  if (rc < 0)
    return rc;
  return exec_rename(j->d->exec, j->id, name, &j->err);
}

/* ---- on a thread: resolve, then the calls that need nothing else ---- */

static void resolve_work(void *ud) {
  struct ctl_job *j = ud;
  executor *ex = j->d->exec;
  j->rc = exec_find(ex, j->ref, j->id, &j->err);
  if (j->rc == 0)
    j->rc = exec_inspect_json(ex, j->id, &j->info, &j->err);
  if (j->rc < 0)
    return;
  switch (j->op) {
  case OP_RENAME:
    j->rc = rename_work(j);
    break;
  case OP_TOP:
    j->rc = exec_top(ex, j->id, j->arg, &j->result, &j->err);
    break;
  case OP_CHANGES:
    j->rc = exec_changes(ex, j->id, &j->result, &j->err);
    break;
  default:
    break;
  }
}

/* Containers no task owns: the executor's calls, as dockerd's. */
static void direct_work(void *ud) {
  struct ctl_job *j = ud;
  executor *ex = j->d->exec;
  pid_t pid;
  /* A frozen process takes no signal: thawed first, as dockerd. */
  struct exec_state st;
  if ((j->op == OP_STOP || j->op == OP_KILL || j->op == OP_RESTART ||
       (j->op == OP_REMOVE && j->force)) &&
      exec_state(ex, j->id, &st, NULL) == 0 && st.paused)
    exec_resume(ex, j->id, NULL);
  switch (j->op) {
  case OP_STOP:
    j->rc = exec_stop(ex, j->id, j->sig, j->grace_ns, &j->err);
    break;
  case OP_KILL:
    j->rc = exec_kill(ex, j->id, j->sig, &j->err);
    break;
  case OP_RESTART:
    j->rc = exec_stop(ex, j->id, j->sig, j->grace_ns, &j->err);
    if (j->rc >= 0)
      j->rc = exec_rerun(ex, j->id, &pid, &j->err);
    break;
  case OP_REMOVE:
    j->was_running = j->force && exec_state(ex, j->id, &st, NULL) == 0 &&
                     st.status == EXEC_STATUS_RUNNING;
    j->rc = exec_remove(ex, j->id, j->force, &j->err);
    break;
  case OP_PAUSE:
    j->rc = exec_pause(ex, j->id, &j->err);
    break;
  case OP_UNPAUSE:
    j->rc = exec_resume(ex, j->id, &j->err);
    break;
  default:
    break;
  }
}

/* Docker's wording around the runtime's errors. */
static void word_error(struct ctl_job *j) {
  char msg[sizeof j->err.msg];
  snprintf(msg, sizeof msg, "%s", j->err.msg);
  if (j->op == OP_KILL && j->err.status == 409)
    sh_error(&j->err, 409,
             "Cannot kill container: %s: container %s is not "
             "running",
             j->ref, j->id);
  else if (j->op == OP_REMOVE && j->err.status == 409 &&
           strstr(msg, "cannot remove") == NULL)
    sh_error(&j->err, 409,
             "cannot remove container \"%s\": container is running: stop the "
             "container before removing or force remove",
             j->ref);
  else if (j->op == OP_STOP && j->err.status >= 500)
    sh_error(&j->err, j->err.status, "cannot stop container: %s: %s", j->ref,
             msg);
}

/* rm -v: the container's anonymous volumes that no other container
 * mounts go too; named ones stay (dockerd). Failures are only logged by
 * dockerd: so here. */
static void remove_volumes_work(void *ud) {
  struct ctl_job *j = ud;
  cleanup_json json_t *all = NULL;
  if (exec_inspect_all(j->d->exec, &all, NULL) < 0)
    return;
  size_t i, k, x;
  json_t *m, *c, *cm;
  json_array_foreach(jx_get(j->info, "Mounts"), i, m) {
    const char *name = jx_str(m, "Name", "");
    cleanup_json json_t *vol = NULL;
    if (strcmp(jx_str(m, "Type", ""), "volume") != 0 || !*name ||
        volume_get(j->d->cfg.data_root, name, &vol, NULL) < 0 ||
        /* (the label's dots are no path: no jx_get) */
        !json_object_get(json_object_get(vol, "Labels"), VOLUME_ANON_LABEL))
      continue;
    bool used = false;
    json_array_foreach(all, k, c) {
      json_array_foreach(jx_get(c, "Mounts"), x, cm) {
        if (strcmp(jx_str(cm, "Name", ""), name) == 0)
          used = true;
      }
    }
    if (!used)
      volume_remove(j->d->cfg.data_root, name, NULL, false, NULL);
  }
}

static void remove_volumes_done(void *ud, int cancelled) {
  struct ctl_job *j = ud;
  reply_status(j, 204);
}

static void removed(struct ctl_job *j);

static void endpoint_released(void *ud, int rc, const char *id,
                              const sh_err *err) {
  removed(ud);
}

static void stop_settled(void *ud, int rc, const char *id, const sh_err *err) {
  reply_status(ud, 204);
}

static void finished(struct ctl_job *j, int rc) {
  if (rc < 0) {
    word_error(j);
    reply_err(j);
    return;
  }
  if (j->op == OP_STOP && rc == 0 && j->d->standalone) {
    /* The answer once the exit is handled (its address released), as
     * dockerd's. */
    standalone_stopped(j->d->standalone, j->id, stop_settled, j);
    return;
  }
  if (j->op == OP_REMOVE && j->d->standalone) {
    /* The answer once its endpoints are gone, as dockerd's. */
    standalone_removed(j->d->standalone, j->id, endpoint_released, j);
    return;
  }
  if (j->op == OP_REMOVE) {
    removed(j);
    return;
  }
  if (j->op == OP_STOP && rc == 1) {
    reply_status(j, 304);
    return;
  }
  reply_status(j, 204);
}

static void removed(struct ctl_job *j) {
  if (j->volumes) {
    workq_submit(j->d->work, remove_volumes_work, remove_volumes_done, j);
    return;
  }
  reply_status(j, 204);
}

static void direct_done(void *ud, int cancelled) {
  struct ctl_job *j = ud;
  if (cancelled)
    j->rc = sh_error(&j->err, 503, "the daemon is shutting down");
  if (j->rc >= 0) {
    char sig[16];
    snprintf(sig, sizeof sig, "%d", j->sig > 0 ? j->sig : SIGTERM);
    switch (j->op) {
    case OP_STOP:
      if (j->rc == 0) {
        publish(j, "kill", "signal", sig);
        publish(j, "die", NULL, NULL);
        publish(j, "stop", NULL, NULL);
      }
      break;
    case OP_KILL:
      publish(j, "kill", "signal", sig);
      break;
    case OP_RESTART:
      publish(j, "restart", NULL, NULL);
      break;
    case OP_REMOVE:
      /* rm -f of a running container: dockerd's kill (SIGKILL) and die
       * (137) come first; an attach or wait learns the exit code. */
      if (j->was_running) {
        publish(j, "kill", "signal", "9");
        publish(j, "die", "exitCode", "137");
      }
      publish(j, "destroy", NULL, NULL);
      break;
    case OP_PAUSE:
      publish(j, "pause", NULL, NULL);
      break;
    case OP_UNPAUSE:
      publish(j, "unpause", NULL, NULL);
      break;
    default:
      break;
    }
  }
  finished(j, j->rc);
}

static void worker_done(void *ud, int rc, const sh_err *err) {
  struct ctl_job *j = ud;
  if (rc < 0 && err)
    j->err = *err;
  finished(j, rc);
}

/* ---- stats ---- */

static void stats_closed(uv_handle_t *h) {
  job_free(h->data);
}

static void stats_end(struct ctl_job *j) {
  if (j->closing)
    return;
  j->closing = true;
  if (!j->gone) {
    j->req->on_close = NULL;
    http_stream_end(j->req);
  } else {
    http_req_release(j->req);
  }
  uv_timer_stop(&j->timer);
  uv_close((uv_handle_t *)&j->timer, stats_closed);
}

static void stats_gone(struct http_req *req, void *ud) {
  struct ctl_job *j = ud;
  j->gone = true;
  if (!j->sampling)
    stats_end(j);
}

static void sample_work(void *ud) {
  struct ctl_job *j = ud;
  json_decref(j->result);
  j->result = NULL;
  j->rc = exec_stats(j->d->exec, j->id, &j->result, &j->err);
}

/* The previous sample's CPU (and time) as precpu_stats, as dockerd's
 * collector does. */
static void with_prev(json_t *cur, const json_t *prev) {
  json_t *pre =
      prev ? json_deep_copy(json_object_get(prev, "cpu_stats"))
           : json_pack("{s:{s:i, s:i, s:i}, s:{s:i, s:i, s:i}}", "cpu_usage",
                       "total_usage", 0, "usage_in_kernelmode", 0,
                       "usage_in_usermode", 0, "throttling_data", "periods", 0,
                       "throttled_periods", 0, "throttled_time", 0);
  json_object_set_new(cur, "precpu_stats", pre);
  if (prev)
    json_object_set_new(cur, "preread", json_string(jx_str(prev, "read", "")));
}

static void sample_tick(uv_timer_t *t);

static void sample_done(void *ud, int cancelled) {
  struct ctl_job *j = ud;
  j->sampling = false;
  if (cancelled || j->gone) {
    stats_end(j);
    return;
  }
  if (j->rc < 0) {
    /* Removed while streamed: the stream ends, as dockerd's. */
    stats_end(j);
    return;
  }
  json_t *cur = j->result;
  j->result = NULL;
  /* stream=false: the second sample, so that CPU % has a base. */
  if (!j->stream && !j->one_shot && !j->prev) {
    j->prev = cur;
    uv_timer_start(&j->timer, sample_tick, STATS_INTERVAL_MS, 0);
    return;
  }
  with_prev(cur, j->prev);
  if (http_req_queued(j->req) < STATS_QUEUE_MAX) {
    char *s = jx_dumps(cur, JSON_COMPACT, NULL);
    size_t n = strlen(s);
    s = xrealloc(s, n + 2);
    s[n] = '\n';
    if (http_stream_write(j->req, s, n + 1) < 0)
      j->gone = true;
    free(s);
  }
  json_object_del(cur, "precpu_stats");
  json_decref(j->prev);
  j->prev = cur;
  if (!j->stream || j->gone) {
    stats_end(j);
    return;
  }
  uv_timer_start(&j->timer, sample_tick, STATS_INTERVAL_MS, 0);
}

static void sample_tick(uv_timer_t *t) {
  struct ctl_job *j = t->data;
  if (j->sampling || j->closing)
    return;
  j->sampling = true;
  workq_submit(read_queue(j->d), sample_work, sample_done, j);
}

static void stats_start(struct ctl_job *j) {
  const char *status = jx_str(j->info, "State.Status", "");
  if (!j->stream && strcmp(status, "running") != 0 &&
      strcmp(status, "paused") != 0) {
    /* dockerd: an empty frame with the name and ID. */
    cleanup_json json_t *empty = NULL;
    exec_stats(j->d->exec, j->id, &empty, NULL);
    json_t *body = empty ? json_incref(empty)
                         : json_pack("{s:s, s:s}", "name",
                                     jx_str(j->info, "Name", ""), "id", j->id);
    api_reply_json(j->req, 200, body);
    job_free(j);
    return;
  }
  j->req->on_close = stats_gone;
  j->req->on_close_ud = j;
  http_stream_begin(j->req, 200, "application/json", NULL);
  uv_timer_init(j->d->loop, &j->timer);
  j->timer.data = j;
  sample_tick(&j->timer);
}

/* ---- wait ---- */

static void wait_reply(struct ctl_job *j, int code) {
  char body[64];
  int n = snprintf(body, sizeof body, "{\"StatusCode\":%d}\n", code);
  j->req->on_close = NULL;
  http_stream_write(j->req, body, (size_t)n);
  http_stream_end(j->req);
  job_free(j);
}

/* Whether ev ends the wait; *code gets the exit code. */
static bool wait_hit(struct ctl_job *j, const json_t *ev, int *code) {
  if (strcmp(jx_str(ev, "Actor.ID", ""), j->id) != 0)
    return false;
  const char *action = jx_str(ev, "Action", "");
  if (strcmp(action, "die") == 0) {
    const char *c = jx_str(ev, "Actor.Attributes.exitCode", "0");
    json_object_set_new(j->prev ? j->prev : (j->prev = json_object()), "code",
                        json_integer(atoi(c)));
    *code = atoi(c);
    return j->cond != WAIT_REMOVED;
  }
  if (strcmp(action, "destroy") == 0) {
    *code = (int)jx_int(j->prev, "code", jx_int(j->info, "State.ExitCode", 0));
    return true;
  }
  return false;
}

static void wait_event(const json_t *ev, void *ud) {
  struct ctl_job *j = ud;
  if (!j->resolved) {
    /* Not resolved yet: kept for then. */
    const char *a = jx_str(ev, "Action", "");
    if (strcmp(jx_str(ev, "Type", ""), "container") == 0 &&
        (strcmp(a, "die") == 0 || strcmp(a, "destroy") == 0))
      json_array_append(j->seen, (json_t *)ev);
    return;
  }
  int code;
  if (wait_hit(j, ev, &code))
    wait_reply(j, code);
}

static void wait_gone(struct http_req *req, void *ud) {
  struct ctl_job *j = ud;
  http_req_release(req);
  job_free(j);
}

static void wait_start(struct ctl_job *j) {
  http_stream_begin(j->req, 200, "application/json", NULL);
  j->req->on_close = wait_gone;
  j->req->on_close_ud = j;
  int code;
  size_t i;
  json_t *ev;
  json_array_foreach(j->seen, i, ev) {
    if (wait_hit(j, ev, &code)) {
      wait_reply(j, code);
      return;
    }
  }
  const char *st = jx_str(j->info, "State.Status", "");
  bool live = strcmp(st, "running") == 0 || strcmp(st, "paused") == 0;
  if (j->cond == WAIT_NOT_RUNNING && !live) {
    wait_reply(j, (int)jx_int(j->info, "State.ExitCode", 0));
    return;
  }
  /* The die or destroy event ends it (wait_event). */
}

/* ---- standalone containers (docker run) ---- */

static void standalone_restarted(void *ud, int rc, const char *id,
                                 const sh_err *err) {
  struct ctl_job *j = ud;
  (void)id;
  j->rc = rc < 0 ? -1 : 0;
  if (rc < 0 && err)
    j->err = *err;
  direct_done(j, 0);
}

/* Their owner hears of a stop, kill or removal first (no restart policy
 * for it, no second die event) and does a restart itself (the container's
 * endpoint goes and comes with its run). true: the job is the owner's. */
static bool standalone_ctl(struct ctl_job *j) {
  struct standalone *sa = j->d->standalone;
  switch (j->op) {
  case OP_RESTART:
    return standalone_restart(sa, j->id, j->sig, j->grace_ns,
                              standalone_restarted, j);
  case OP_STOP:
    standalone_stopping(sa, j->id, true, true, false);
    break;
  case OP_KILL: {
    int stop = exec_parse_signal(jx_str(j->info, "Config.StopSignal", "TERM"));
    standalone_stopping(sa, j->id, j->sig == SIGKILL || j->sig == stop, false,
                        false);
    break;
  }
  case OP_REMOVE:
    if (j->force) /* its die event is ours (direct_done) */
      standalone_stopping(sa, j->id, true, true, true);
    break;
  default:
    break;
  }
  return false;
}

/* ---- on the loop: after resolve ---- */

static void resolved(void *ud, int cancelled) {
  struct ctl_job *j = ud;
  j->resolved = true;
  if (cancelled)
    j->rc = sh_error(&j->err, 503, "the daemon is shutting down");
  if (j->rc < 0) {
    reply_err(j);
    return;
  }
  struct worker_ctl wc = {.signal = j->sig,
                          .grace_ns = j->grace_ns,
                          .force = j->force,
                          .ref = j->ref,
                          .done = worker_done,
                          .ud = j};
  switch (j->op) {
  case OP_STOP:
    wc.op = WORKER_STOP;
    break;
  case OP_KILL:
    wc.op = WORKER_KILL;
    break;
  case OP_RESTART:
    wc.op = WORKER_RESTART;
    break;
  case OP_REMOVE:
    wc.op = WORKER_REMOVE;
    break;
  case OP_PAUSE:
    wc.op = WORKER_PAUSE;
    break;
  case OP_UNPAUSE:
    wc.op = WORKER_UNPAUSE;
    break;
  case OP_RENAME: {
    const char *old = jx_str(j->info, "Name", "");
    publish(j, "rename", NULL, NULL);
    if (j->d->worker)
      worker_renamed(j->d->worker, j->id,
                     j->arg[0] == '/' ? j->arg + 1 : j->arg);
    if (j->d->events) {
      /* dockerd: the new name and the old one in the attributes */
      json_t *attrs = exec_event_attrs(j->info);
      json_object_set_new(attrs, "name",
                          json_string(j->arg[0] == '/' ? j->arg + 1 : j->arg));
      json_object_set_new(attrs, "oldName", json_string(old));
      events_publish(j->d->events, "container", "rename", j->id, attrs,
                     "local");
    }
    reply_status(j, 204);
    return;
  }
  case OP_TOP:
  case OP_CHANGES:
    api_reply_json(j->req, 200, json_incref(j->result));
    job_free(j);
    return;
  case OP_STATS:
    stats_start(j);
    return;
  case OP_WAIT:
    wait_start(j);
    return;
  }
  if (j->d->worker && worker_ctl(j->d->worker, j->id, &wc))
    return;
  if (j->d->standalone && standalone_ctl(j))
    return;
  workq_submit(j->d->work, direct_work, direct_done, j);
}

/* ---- routing and parameters ---- */

static int query_signal(struct http_req *req, int dflt, int *out, sh_err *err) {
  cleanup_free char *s = http_req_query(req, "signal");
  *out = dflt;
  if (!s || !*s)
    return 0;
  int sig = exec_parse_signal(s);
  if (sig <= 0 || sig > 64)
    return sh_error(err, 400, "Invalid signal: %s", s);
  *out = sig;
  return 0;
}

static int query_timeout(struct http_req *req, int64_t *out, sh_err *err) {
  cleanup_free char *s = http_req_query(req, "t");
  *out = -1;
  if (!s || !*s)
    return 0;
  char *end;
  long v = strtol(s, &end, 10);
  if (*end || end == s)
    return sh_error(err, 400, "strconv.Atoi: parsing \"%s\": invalid syntax",
                    s);
  /* dockerd: a negative timeout waits for ever; ours caps it. */
  *out = v < 0 ? INT64_MAX / 2 : (int64_t)v * NS_PER_SEC;
  return 0;
}

static bool route(const char *method, const char *action, enum ctl_op *op) {
  static const struct {
    const char *method, *action;
    enum ctl_op op;
  } routes[] = {
      {"POST", "stop", OP_STOP},       {"POST", "kill", OP_KILL},
      {"POST", "restart", OP_RESTART}, {"POST", "pause", OP_PAUSE},
      {"POST", "unpause", OP_UNPAUSE}, {"POST", "rename", OP_RENAME},
      {"POST", "wait", OP_WAIT},       {"GET", "top", OP_TOP},
      {"GET", "changes", OP_CHANGES},  {"GET", "stats", OP_STATS},
  };
  for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
    if (strcmp(method, routes[i].method) == 0 &&
        strcmp(action, routes[i].action) == 0) {
      *op = routes[i].op;
      return true;
    }
  return false;
}

static int params(struct api_call *c, struct ctl_job *j, sh_err *err) {
  struct http_req *req = c->req;
  switch (j->op) {
  case OP_STOP:
  case OP_RESTART:
    if (query_signal(req, 0, &j->sig, err) < 0 ||
        query_timeout(req, &j->grace_ns, err) < 0)
      return -1;
    break;
  case OP_KILL:
    return query_signal(req, SIGKILL, &j->sig, err);
  case OP_REMOVE: {
    j->force = api_query_bool(req, "force");
    j->volumes = api_query_bool(req, "v");
    if (api_query_bool(req, "link"))
      return sh_error(err, 500,
                      "Conflict, cannot remove the default link "
                      "name of the container");
    break;
  }
  case OP_RENAME: {
    j->arg = http_req_query(req, "name");
    if (!j->arg || !*j->arg)
      return sh_error(err, 400, "Neither old nor new names may be empty");
    if (!runspec_name_ok(j->arg))
      return sh_error(err, 400,
                      "Error when allocating new name: Invalid container "
                      "name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
                      j->arg);
    break;
  }
  case OP_TOP:
    j->arg = http_req_query(req, "ps_args");
    return exec_top_check_args(j->arg, err);
  case OP_STATS: {
    cleanup_free char *s = http_req_query(req, "stream");
    j->stream = !s || api_query_bool(req, "stream");
    j->one_shot = api_query_bool(req, "one-shot");
    if (j->stream && j->one_shot)
      return sh_error(err, 400, "cannot have stream=true and one-shot=true");
    break;
  }
  case OP_WAIT: {
    cleanup_free char *cond = http_req_query(req, "condition");
    if (!cond || !*cond || strcmp(cond, "not-running") == 0)
      j->cond = WAIT_NOT_RUNNING;
    else if (strcmp(cond, "next-exit") == 0)
      j->cond = WAIT_NEXT_EXIT;
    else if (strcmp(cond, "removed") == 0)
      j->cond = WAIT_REMOVED;
    else
      return sh_error(err, 400, "invalid condition: \"%s\"", cond);
    break;
  }
  default:
    break;
  }
  return 0;
}

bool api_container_ctl(struct api_call *c) {
  const char *p = c->path;
  if (!str_has_prefix(p, "/containers/"))
    return false;
  const char *rest = p + strlen("/containers/");
  const char *slash = strchr(rest, '/');
  enum ctl_op op;
  if (strcmp(c->req->method, "DELETE") == 0 && !slash && *rest)
    op = OP_REMOVE;
  else if (!slash || slash == rest || strchr(slash + 1, '/') ||
           !route(c->req->method, slash + 1, &op))
    return false;
  size_t len = slash ? (size_t)(slash - rest) : strlen(rest);
  sh_err err = {0};
  if (!c->d->exec) {
    sh_error(&err, 404, "No such container: %.*s", (int)len, rest);
    api_reply_err(c->req, &err);
    return true;
  }
  struct ctl_job *j = xcalloc(1, sizeof *j);
  j->d = c->d;
  j->req = c->req;
  j->op = op;
  j->ref = xstrndup(rest, len);
  j->grace_ns = -1;
  if (params(c, j, &err) < 0) {
    job_free(j);
    api_reply_err(c->req, &err);
    return true;
  }
  if (op == OP_WAIT && c->d->events) {
    /* From now: an exit while the name resolves is not missed. */
    j->seen = json_array();
    j->sub = events_subscribe(c->d->events, wait_event, j);
    j->subscribed = true;
  }
  workq_submit(read_queue(c->d), resolve_work, resolved, j);
  return true;
}
