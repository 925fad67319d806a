/* The orchestrator (see orchestrator.h). Each service is worked on in a
 * private (shallow) copy of its tasks: the steps below set top-level keys
 * of the copies freely (never nested ones, which the store shares) and
 * the transaction is the difference with the store at the end, so every
 * object appears at most once per transaction with the version it was
 * read at. Facts follow swarmkit's manager/orchestrator (replicated,
 * global, restart, update, taskreaper). */
#include "manager/orchestrator.h"

#include "core/clock.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "manager/constraint.h"
#include "manager/services.h"
#include "store/store.h"

#define DEFAULT_RESTART_DELAY (5 * NS_PER_SEC)
#define DEFAULT_MONITOR (5 * NS_PER_SEC)
#define OLD_TASK_TIMEOUT                                                       \
  (60 * NS_PER_SEC) /* swarmkit's defaultOldTaskTimeout */
#define DEFAULT_HISTORY 5

struct work {
  struct store *s;
  int64_t now;
  struct orch_out *out;
  json_t *svc;        /* mutable copy, NULL for tasks of a removed service */
  const json_t *svc0; /* as read */
  json_t *tasks;      /* array: mutable copies, store order then new ones */
  json_t *orig;       /* id -> task as read (new reference) */
  json_t *byid;       /* id -> task in tasks (borrowed) */
  json_t *deleted;    /* id -> version */
  bool stop;          /* a failure action fired: leave the rest for later */
};

/* ---- small helpers ---- */

static void set_str(json_t *o, const char *k, const char *v) {
  json_object_set_new(o, k, json_string(v));
}

static char *fmt_time(int64_t ns, char *buf, size_t n) {
  return clock_format_rfc3339(ns, buf, n);
}

static json_t *w_find(struct work *w, const char *id) {
  return id ? json_object_get(w->byid, id) : NULL;
}

/* Adds a task (stolen) to the work. */
static void w_append(struct work *w, json_t *t) {
  json_object_set(w->byid, jx_str(t, "ID", ""), t);
  json_array_append_new(w->tasks, t);
}

/* Searches from the end: deletions mostly come in reverse order (the
 * reaper), so removing every task of a large service stays linear. */
static void w_delete(struct work *w, json_t *t) {
  for (size_t i = json_array_size(w->tasks); i-- > 0;) {
    if (json_array_get(w->tasks, i) != t)
      continue;
    const char *id = jx_str(t, "ID", "");
    json_t *o = json_object_get(w->orig, id);
    if (o)
      json_object_set_new(w->deleted, id,
                          json_integer(jx_int(o, "Version.Index", 0)));
    json_object_del(w->byid, id);
    json_array_remove(w->tasks, i);
    return;
  }
}

/* The per-run budget of task changes (orch_out.budget): one large service
 * is worked through in batches over several runs, so a run stays short
 * and the loop keeps serving between them. */
static bool w_take(struct work *w, int64_t n) {
  if (w->out->budget < n) {
    w->out->more = true;
    return false;
  }
  w->out->budget -= n;
  return true;
}

static void set_desired(json_t *t, enum task_state s) {
  set_str(t, "DesiredState", task_state_name(s));
}

static json_t *node_of(struct work *w, const json_t *t) {
  const char *nid = jx_str(t, "NodeID", "");
  return *nid ? store_get(w->s, STORE_NODE, nid) : NULL;
}

static bool node_is(const json_t *n, const char *path, const char *v) {
  return n && strcmp(jx_str(n, path, ""), v) == 0;
}

static int64_t restart_delay(const json_t *t) {
  json_t *d = jx_get(t, "Spec.RestartPolicy.Delay");
  return json_is_integer(d) ? json_integer_value(d) : DEFAULT_RESTART_DELAY;
}

static const char *restart_condition(const json_t *t) {
  const char *c = jx_str(t, "Spec.RestartPolicy.Condition", "");
  return *c ? c : "any";
}

/* Parsed constraints of the service's template. */
struct cons {
  struct constraint *c;
  size_t n;
};

static void cons_load(struct cons *c, const json_t *svc) {
  if (constraints_parse(jx_get(svc, "Spec.TaskTemplate.Placement.Constraints"),
                        &c->c, &c->n, NULL) < 0) {
    c->c = NULL; /* validated at create; treat as none like swarmkit */
    c->n = 0;
  }
}

/* ---- restart supervisor ---- */

static bool should_restart(const json_t *t) {
  const char *cond = restart_condition(t);
  if (strcmp(cond, "none") == 0)
    return false;
  /* A job's task that completed is done whatever the condition says
   * (swarmkit treats "any" as "on-failure" for jobs). */
  if ((strcmp(cond, "on-failure") == 0 || json_object_get(t, "JobIteration")) &&
      task_state(t) == TS_COMPLETE)
    return false;
  int64_t max = jx_int(t, "Spec.RestartPolicy.MaxAttempts", 0);
  if (max <= 0)
    return true;
  json_t *r = json_object_get(t, "_Restart");
  if (!r || jx_int(r, "SpecVersion", -1) != jx_int(t, "_SpecVersion", 0))
    return true;
  int64_t window = jx_int(t, "Spec.RestartPolicy.Window", 0);
  if (window <= 0)
    return jx_int(r, "Count", 0) < max;
  /* Restarts between (failure time - window) and the failure time. */
  int64_t ts = task_timestamp(t);
  int64_t n = 0;
  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(r, "Times"), i, v) {
    int64_t at = json_integer_value(v);
    if (at > ts - window && at < ts)
      n++;
  }
  return n < max;
}

/* The restart history a replacement of old carries (RecordRestartHistory). */
static void record_restart(struct work *w, const json_t *old, json_t *nt) {
  int64_t max = jx_int(nt, "Spec.RestartPolicy.MaxAttempts", 0);
  if (max <= 0)
    return;
  int64_t sv = jx_int(nt, "_SpecVersion", 0);
  json_t *prev = json_object_get(old, "_Restart");
  int64_t count = 0;
  json_t *times = json_array();
  int64_t window = jx_int(nt, "Spec.RestartPolicy.Window", 0);
  if (prev && jx_int(prev, "SpecVersion", -1) == sv) {
    count = jx_int(prev, "Count", 0);
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(prev, "Times"), i, v) {
      if (window > 0 && json_integer_value(v) > w->now - window)
        json_array_append(times, v);
    }
  }
  if (window > 0)
    json_array_append_new(times, json_integer(w->now));
  json_object_set_new(nt, "_Restart",
                      json_pack("{s:I, s:I, s:o}", "Count",
                                (json_int_t)(count + 1), "SpecVersion",
                                (json_int_t)sv, "Times", times));
}

/* Makes t start after delay, once the tasks in wait_for stopped. */
static void delay_start(struct work *w, json_t *t, int64_t delay,
                        json_t *wait_for /* stolen, may be NULL */) {
  if (delay <= 0 && (!wait_for || json_array_size(wait_for) == 0)) {
    json_decref(wait_for);
    json_object_del(t, "_Start");
    set_desired(t, task_run_state(t));
    return;
  }
  set_desired(t, TS_READY);
  json_object_set_new(t, "_Start",
                      json_pack("{s:I, s:o, s:I}", "After",
                                (json_int_t)(w->now + delay), "WaitFor",
                                wait_for ? wait_for : json_array(), "Timeout",
                                (json_int_t)(w->now + OLD_TASK_TIMEOUT)));
  orch_out_wake(w->out, w->now + delay);
}

/* Shuts t down and, if its restart policy says so, adds its replacement. */
static void restart_task(struct work *w, json_t *t) {
  if (task_desired(t) > TS_COMPLETE)
    return;
  /* A replacement still waiting for its own delay restarts only after it,
   * against tight restart loops. */
  int64_t after = jx_int(t, "_Start.After", 0);
  if (task_desired(t) < TS_RUNNING && after > w->now) {
    orch_out_wake(w->out, after);
    return;
  }
  if (!w_take(w, 2)) /* the old task and its replacement */
    return;
  json_object_del(t, "_Start");
  set_desired(t, TS_SHUTDOWN);
  if (!should_restart(t))
    return;
  json_t *node = node_of(w, t);
  json_t *nt =
      service_is_global(w->svc)
          ? task_new(w->out, w->svc, 0, jx_str(t, "NodeID", ""), w->now)
          : task_new(w->out, w->svc, jx_int(t, "Slot", 0), NULL, w->now);
  record_restart(w, t, nt);
  /* No delay when the node is being drained. */
  int64_t delay =
      node_is(node, "Spec.Availability", "drain") ? 0 : restart_delay(t);
  json_t *wait_for = NULL;
  if (!node_is(node, "Status.State", "down") && task_state(t) <= TS_RUNNING)
    wait_for = json_pack("[s]", jx_str(t, "ID", ""));
  delay_start(w, nt, delay, wait_for);
  w_append(w, nt);
}

/* Moves delayed tasks to running once their delay and wait are over. */
static void delayed_starts(struct work *w) {
  size_t i;
  json_t *t;
  json_array_foreach(w->tasks, i, t) {
    json_t *st = json_object_get(t, "_Start");
    if (!st || task_desired(t) >= TS_RUNNING)
      continue;
    int64_t after = jx_int(st, "After", 0);
    if (w->now < after) {
      orch_out_wake(w->out, after);
      continue;
    }
    bool stopped = true;
    size_t j;
    json_t *idj;
    json_array_foreach(json_object_get(st, "WaitFor"), j, idj) {
      json_t *old = w_find(w, json_string_value(idj));
      if (!old)
        old = store_get(w->s, STORE_TASK, json_string_value(idj));
      if (!old || task_state(old) > TS_RUNNING)
        continue;
      json_t *n = node_of(w, old);
      if (!n || node_is(n, "Status.State", "down"))
        continue;
      stopped = false;
    }
    int64_t timeout = jx_int(st, "Timeout", 0);
    if (!stopped && w->now < timeout) {
      orch_out_wake(w->out, timeout);
      continue;
    }
    json_object_del(t, "_Start");
    set_desired(t, task_run_state(t));
  }
}

/* ---- slots ---- */

/* A slot: the tasks of one replica (replicated) or one node (global). */
struct slot {
  int64_t num;
  const char *node;
  json_t *tasks;     /* all tasks of the slot (borrowed copies) */
  json_t *updatable; /* UpdatableTasksInSlot */
};

struct slots {
  struct slot *v;
  size_t n;
};

static void slots_free(struct slots *ss) {
  for (size_t i = 0; i < ss->n; i++) {
    json_decref(ss->v[i].tasks);
    json_decref(ss->v[i].updatable);
  }
  free(ss->v);
  ss->v = NULL;
  ss->n = 0;
}

static const char *update_state(const json_t *svc) {
  return jx_str(svc, "UpdateStatus.State", "");
}

static void slot_updatable(struct work *w, struct slot *sl) {
  sl->updatable = json_array();
  size_t i;
  json_t *t, *newest = NULL;
  json_array_foreach(sl->tasks, i, t) {
    if (task_desired(t) <= TS_RUNNING)
      json_array_append(sl->updatable, t);
  }
  if (json_array_size(sl->updatable) > 0)
    return;
  if (strcmp(update_state(w->svc), "rollback_started") == 0)
    return;
  json_array_foreach(sl->tasks, i, t) {
    if (!newest || task_timestamp(t) >= task_timestamp(newest))
      newest = t;
  }
  /* A stopped task that will not be restarted still holds its slot (and
   * is updated when the spec changes). */
  if (newest && !should_restart(newest))
    json_array_append(sl->updatable, newest);
}

/* Groups the service's tasks by slot number or node. */
static void slots_build(struct work *w, bool global, struct slots *ss) {
  ss->v = NULL;
  ss->n = 0;
  size_t i;
  json_t *t;
  size_t cap = 0;
  json_t *index = json_object(); /* "slot/node" -> position in ss->v */
  json_array_foreach(w->tasks, i, t) {
    int64_t num = global ? 0 : jx_int(t, "Slot", 0);
    const char *node = global ? jx_str(t, "NodeID", "") : "";
    char key[128];
    snprintf(key, sizeof key, "%lld/%s", (long long)num, node);
    json_t *pos = json_object_get(index, key);
    struct slot *sl = pos ? &ss->v[json_integer_value(pos)] : NULL;
    if (!sl) {
      if (ss->n == cap) {
        cap = cap ? cap * 2 : 16;
        ss->v = xrealloc(ss->v, cap * sizeof *ss->v);
      }
      json_object_set_new(index, key, json_integer((json_int_t)ss->n));
      sl = &ss->v[ss->n++];
      *sl = (struct slot){num, node, json_array(), NULL};
    }
    json_array_append(sl->tasks, t);
  }
  json_decref(index);
  for (size_t j = 0; j < ss->n; j++)
    slot_updatable(w, &ss->v[j]);
}

/* ---- update supervisor ---- */

static bool placement_only_diff(const json_t *tmpl, const json_t *spec) {
  json_t *a = json_deep_copy(tmpl), *b = json_deep_copy(spec);
  json_object_del(a, "Placement");
  json_object_del(b, "Placement");
  bool same = json_equal(a, b);
  json_decref(a);
  json_decref(b);
  return same;
}

static bool eq_or_both_null(const json_t *a, const json_t *b) {
  if (!a || !b)
    return !a && !b;
  return json_equal(a, b);
}

/* Does the template differ from t's spec, PullOptions aside for a task
 * that has pulled (swarmkit: desired to run and between ready and
 * running, so new credentials alone restart nothing; swarmkit #971)? */
static bool pull_auth_dirty(const json_t *tmpl, const json_t *t) {
  json_t *spec = json_object_get(t, "Spec");
  json_t *tcs = json_object_get(spec, "ContainerSpec");
  enum task_state st = task_state(t);
  if (!tmpl || !spec || !json_is_object(tcs) ||
      !json_is_object(json_object_get(tmpl, "ContainerSpec")) ||
      task_desired(t) > TS_RUNNING || st < TS_READY || st > TS_RUNNING)
    return !eq_or_both_null(tmpl, spec);
  cleanup_json json_t *own = json_deep_copy(tmpl);
  json_t *cs = json_object_get(own, "ContainerSpec");
  json_t *po = json_object_get(tcs, SERVICES_PULL_OPTIONS);
  if (po)
    json_object_set(cs, SERVICES_PULL_OPTIONS, po);
  else
    json_object_del(cs, SERVICES_PULL_OPTIONS);
  return !json_equal(own, spec);
}

/* IsTaskDirty: does t differ from what the service asks for now? */
static bool task_dirty(struct work *w, const json_t *t) {
  if (jx_int(t, "_SpecVersion", -1) == service_spec_version(w->svc))
    return false;
  json_t *tmpl = jx_get(w->svc, "Spec.TaskTemplate");
  json_t *spec = json_object_get(t, "Spec");
  if (!eq_or_both_null(tmpl, spec)) {
    bool fits = false;
    if (tmpl && spec && placement_only_diff(tmpl, spec)) {
      /* Only the placement changed: a task on a node that still fits
       * stays. */
      struct cons c;
      cons_load(&c, w->svc);
      json_t *n = node_of(w, t);
      fits = n && constraints_match(c.c, c.n, n);
      constraints_free(c.c, c.n);
    }
    if (!fits && pull_auth_dirty(tmpl, t))
      return true;
  }
  json_t *ep = json_object_get(t, "_EndpointSpec");
  return ep && !eq_or_both_null(jx_get(w->svc, "Spec.EndpointSpec"), ep);
}

static bool slot_dirty(struct work *w, json_t *upd) {
  return json_array_size(upd) > 1 ||
         (json_array_size(upd) == 1 && task_dirty(w, json_array_get(upd, 0)));
}

struct ucfg {
  int64_t parallelism, delay, monitor;
  const char *action;
  double ratio;
  bool start_first;
};

static void ucfg_load(const json_t *svc, bool rollback, struct ucfg *c) {
  json_t *u =
      jx_get(svc, rollback ? "Spec.RollbackConfig" : "Spec.UpdateConfig");
  c->parallelism = u ? jx_int(u, "Parallelism", 0) : 1;
  c->delay = jx_int(u, "Delay", 0);
  c->monitor = jx_int(u, "Monitor", 0);
  if (c->monitor <= 0)
    c->monitor = DEFAULT_MONITOR;
  c->action = jx_str(u, "FailureAction", "");
  if (!*c->action)
    c->action = "pause";
  json_t *r = json_object_get(u, "MaxFailureRatio");
  c->ratio = json_is_number(r) ? json_number_value(r) : 0;
  c->start_first = strcmp(jx_str(u, "Order", ""), "start-first") == 0;
}

static json_t *update_book(struct work *w) {
  json_t *u = json_object_get(w->svc, "_Update");
  if (!json_is_object(u)) {
    u = json_pack("{s:I, s:{}, s:[], s:I, s:b, s:I}", "Total", (json_int_t)0,
                  "Tasks", "Failed", "NextAt", (json_int_t)0, "BatchOpen", 0,
                  "MonitorUntil", (json_int_t)0);
    json_object_set_new(w->svc, "_Update", u);
  }
  return u;
}

static void update_status(struct work *w, const char *state, const char *msg,
                          bool completed) {
  json_t *us = json_object_get(w->svc, "UpdateStatus");
  if (!json_is_object(us)) {
    us = json_object();
    json_object_set_new(w->svc, "UpdateStatus", us);
  }
  char ts[64];
  set_str(us, "State", state);
  set_str(us, "Message", msg);
  if (!json_object_get(us, "StartedAt"))
    set_str(us, "StartedAt", fmt_time(w->now, ts, sizeof ts));
  if (completed)
    set_str(us, "CompletedAt", fmt_time(w->now, ts, sizeof ts));
}

static void shutdown_running(json_t *t) {
  if (task_desired(t) <= TS_RUNNING)
    set_desired(t, TS_SHUTDOWN);
}

/* A failed task of this update: pause, roll back, or go on. */
static void update_failure(struct work *w, const struct ucfg *c,
                           const char *task_id) {
  bool in_rollback = strcmp(update_state(w->svc), "rollback_started") == 0;
  char msg[256];
  if (strcmp(c->action, "pause") == 0) {
    snprintf(msg, sizeof msg,
             "update paused due to failure or early termination of task %s",
             task_id);
    update_status(w, in_rollback ? "rollback_paused" : "paused", msg, false);
    w->stop = true;
  } else if (strcmp(c->action, "rollback") == 0) {
    if (in_rollback) {
      snprintf(msg, sizeof msg,
               "rollback paused due to failure or early termination of task "
               "%s",
               task_id);
      update_status(w, "rollback_paused", msg, false);
      w->stop = true;
      return;
    }
    json_t *prev = json_object_get(w->svc, "PreviousSpec");
    if (!json_is_object(prev))
      return; /* swarmkit: "no previous spec is available", no change */
    snprintf(msg, sizeof msg,
             "update rolled back due to failure or early termination of task "
             "%s",
             task_id);
    update_status(w, "rollback_started", msg, false);
    json_object_set(w->svc, "Spec", prev);
    json_object_set_new(
        w->svc, "_SpecVersion",
        json_integer(jx_int(w->svc, "_PreviousSpecVersion", 0)));
    json_object_del(w->svc, "PreviousSpec");
    json_object_del(w->svc, "_PreviousSpecVersion");
    json_object_del(w->svc, "_Update");
    w->stop = true;
  }
}

/* Watches the tasks this update made: running time, failures within the
 * monitor period, start-first old tasks to stop. */
static void update_observe(struct work *w) {
  const char *st = update_state(w->svc);
  bool active =
      strcmp(st, "updating") == 0 || strcmp(st, "rollback_started") == 0;
  json_t *u = json_object_get(w->svc, "_Update");
  if (!json_is_object(u))
    return;
  struct ucfg c;
  ucfg_load(w->svc, strcmp(st, "rollback_started") == 0, &c);
  json_t *tracked = json_object_get(u, "Tasks");
  json_t *failed = json_object_get(u, "Failed");
  const char *id;
  json_t *info, *tmp;
  json_object_foreach_safe(tracked, tmp, id, info) {
    json_t *t = w_find(w, id);
    if (!t) {
      json_object_del(tracked, id);
      continue;
    }
    enum task_state s = task_state(t);
    int64_t since = jx_int(info, "Since", 0);
    if (s == TS_RUNNING && since == 0) {
      since = w->now;
      json_object_set_new(info, "Since", json_integer(since));
      /* start-first: the old tasks go once the new one runs. */
      size_t i;
      json_t *oid;
      json_array_foreach(json_object_get(info, "Old"), i, oid) {
        json_t *old = w_find(w, json_string_value(oid));
        if (old)
          shutdown_running(old);
      }
    }
    if (s <= TS_RUNNING || !active || strcmp(c.action, "continue") == 0)
      continue;
    bool seen = false;
    size_t i;
    json_t *f;
    json_array_foreach(failed, i, f) if (strcmp(json_string_value(f), id) == 0)
        seen = true;
    if (seen || (since != 0 && w->now - since > c.monitor))
      continue;
    json_array_append_new(failed, json_string(id));
    int64_t total = jx_int(u, "Total", 1);
    if (total <= 0)
      total = 1;
    /* swarmkit compares in float32 */
    if ((float)json_array_size(failed) / (float)total > (float)c.ratio) {
      update_failure(w, &c, id);
      return;
    }
  }
}

static int64_t tracked_in_flight(struct work *w, json_t *u) {
  int64_t n = 0;
  const char *id;
  json_t *info;
  json_object_foreach(json_object_get(u, "Tasks"), id, info) {
    json_t *t = w_find(w, id);
    if (t && task_state(t) < TS_RUNNING && task_desired(t) <= TS_RUNNING)
      n++;
  }
  return n;
}

static void use_existing(struct work *w, json_t *upd, json_t *keep) {
  json_t *removed = json_array();
  size_t i;
  json_t *t;
  json_array_foreach(upd, i, t) {
    if (t == keep || task_desired(t) > TS_RUNNING)
      continue;
    set_desired(t, TS_SHUTDOWN);
    json_array_append_new(removed, json_string(jx_str(t, "ID", "")));
  }
  if (task_desired(keep) != TS_RUNNING)
    delay_start(w, keep, 0, removed);
  else
    json_decref(removed);
}

static void update_slot(struct work *w, const struct slot *sl, json_t *u,
                        const struct ucfg *c) {
  json_t *running = NULL, *clean = NULL;
  size_t i;
  json_t *t;
  json_array_foreach(sl->updatable, i, t) {
    if (task_dirty(w, t))
      continue;
    if (task_desired(t) == TS_RUNNING) {
      running = t;
      break;
    }
    if (task_desired(t) < TS_RUNNING)
      clean = t;
  }
  if (running || clean) {
    use_existing(w, sl->updatable, running ? running : clean);
    return;
  }
  json_t *first = json_array_get(sl->updatable, 0);
  json_t *nt =
      service_is_global(w->svc)
          ? task_new(w->out, w->svc, 0, jx_str(first, "NodeID", ""), w->now)
          : task_new(w->out, w->svc, jx_int(first, "Slot", 0), NULL, w->now);
  json_t *old = json_array();
  json_array_foreach(sl->updatable, i, t) {
    if (task_desired(t) <= TS_RUNNING)
      json_array_append_new(old, json_string(jx_str(t, "ID", "")));
  }
  json_t *info = json_pack("{s:I}", "Since", (json_int_t)0);
  if (c->start_first) {
    set_desired(nt, TS_RUNNING);
    json_object_set_new(info, "Old", old);
  } else {
    json_array_foreach(sl->updatable, i, t) shutdown_running(t);
    delay_start(w, nt, 0, old);
  }
  json_object_set_new(json_object_get(u, "Tasks"), jx_str(nt, "ID", ""), info);
  w_append(w, nt);
}

/* Updater.Run over the slots the orchestrator keeps (indexes into ss). */
static void update_run(struct work *w, struct slots *ss, const size_t *keep,
                       size_t nkeep) {
  const char *st = update_state(w->svc);
  if (strcmp(st, "paused") == 0 || strcmp(st, "rollback_paused") == 0)
    return;
  bool rollback = strcmp(st, "rollback_started") == 0;
  struct ucfg c;
  ucfg_load(w->svc, rollback, &c);

  size_t *dirty = xcalloc(nkeep ? nkeep : 1, sizeof *dirty);
  size_t ndirty = 0;
  for (size_t i = 0; i < nkeep; i++)
    if (slot_dirty(w, ss->v[keep[i]].updatable))
      dirty[ndirty++] = keep[i];

  json_t *u = json_object_get(w->svc, "_Update");
  int64_t inflight = json_is_object(u) ? tracked_in_flight(w, u) : 0;
  bool active = strcmp(st, "updating") == 0 || rollback;

  /* The batch in flight is done: the next one waits Delay. */
  if (json_is_object(u) && inflight == 0 && jx_bool(u, "BatchOpen", false)) {
    json_object_set_new(u, "BatchOpen", json_false());
    json_object_set_new(u, "NextAt", json_integer(w->now + c.delay));
  }
  if (ndirty == 0 && inflight == 0) {
    if (active) {
      u = update_book(w);
      int64_t next = jx_int(u, "NextAt", 0);
      int64_t until = jx_int(u, "MonitorUntil", 0);
      if (until == 0) {
        int64_t m = c.delay >= c.monitor ? c.delay + NS_PER_SEC : c.monitor;
        until = (next > w->now ? next : w->now) + m;
        json_object_set_new(u, "MonitorUntil", json_integer(until));
      }
      if (w->now >= until) {
        update_status(w, rollback ? "rollback_completed" : "completed",
                      rollback ? "rollback completed" : "update completed",
                      true);
        json_object_del(w->svc, "_Update");
      } else {
        orch_out_wake(w->out, until);
      }
    } else if (json_is_object(u)) {
      json_object_del(w->svc, "_Update");
    }
    free(dirty);
    return;
  }
  if (!json_object_get(w->svc, "UpdateStatus"))
    update_status(w, "updating", "update in progress", false);
  u = update_book(w);
  if (jx_int(u, "Total", 0) == 0)
    json_object_set_new(u, "Total", json_integer((json_int_t)ndirty));
  json_object_set_new(u, "MonitorUntil", json_integer(0));

  if (inflight > 0 || ndirty == 0) {
    free(dirty);
    return;
  }
  int64_t next = jx_int(u, "NextAt", 0);
  if (w->now < next) {
    orch_out_wake(w->out, next);
    free(dirty);
    return;
  }
  size_t batch = c.parallelism > 0 ? (size_t)c.parallelism : ndirty;
  size_t done = 0;
  for (; done < ndirty && done < batch && w_take(w, 2); done++)
    update_slot(w, &ss->v[dirty[done]], u, &c);
  if (done > 0)
    json_object_set_new(u, "BatchOpen", json_true());
  free(dirty);
}

/* ---- replicated services ---- */

struct rank {
  size_t idx;      /* into slots */
  bool running;    /* some task observed running */
  int64_t num;     /* slot number */
  int64_t pernode; /* nth copy on its node, -1 when unknown */
};

static int rank_by_state(const void *a, const void *b) {
  const struct rank *x = a, *y = b;
  if (x->running != y->running)
    return x->running ? -1 : 1;
  return x->num < y->num ? -1 : x->num > y->num;
}

static int rank_by_node_index(const void *a, const void *b) {
  const struct rank *x = a, *y = b;
  if ((x->pernode < 0) != (y->pernode < 0))
    return x->pernode < 0 ? 1 : -1;
  if (x->pernode != y->pernode)
    return x->pernode < y->pernode ? -1 : 1;
  /* keep the first order (qsort is not stable) */
  return rank_by_state(a, b);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static void delete_slot_tasks(struct work *w, struct slot *sl) {
  size_t i;
  json_t *t;
  json_array_foreach(sl->tasks, i, t) w_delete(w, t);
}

static void reconcile_replicated(struct work *w) {
  struct slots ss;
  slots_build(w, false, &ss);
  size_t *run = xcalloc(ss.n + 1, sizeof *run);
  size_t nrun = 0;
  for (size_t i = 0; i < ss.n; i++)
    if (json_array_size(ss.v[i].updatable) > 0)
      run[nrun++] = i;
  int64_t want = service_replicas(w->svc);
  if (want < 0)
    want = 0;

  if ((size_t)want >= nrun) {
    update_run(w, &ss, run, nrun);
    /* Fill the lowest free slot numbers; dead slots reused keep history.
     * Slot numbers in use, sorted, so this is O(n log n), not O(n^2). */
    int64_t *used = xcalloc(nrun + 1, sizeof *used);
    for (size_t i = 0; i < nrun; i++)
      used[i] = ss.v[run[i]].num;
    qsort(used, nrun, sizeof *used, cmp_i64);
    json_t *dead = json_object(); /* slot number -> position in ss.v */
    for (size_t i = 0; i < ss.n; i++)
      if (json_array_size(ss.v[i].updatable) == 0) {
        char k[32];
        snprintf(k, sizeof k, "%lld", (long long)ss.v[i].num);
        json_object_set_new(dead, k, json_integer((json_int_t)i));
      }
    int64_t num = 0;
    size_t u = 0;
    for (int64_t k = 0; k < want - (int64_t)nrun && w_take(w, 1); k++) {
      for (num++; u < nrun && used[u] <= num; u++)
        if (used[u] == num)
          num++;
      char key[32];
      snprintf(key, sizeof key, "%lld", (long long)num);
      json_t *pos = json_object_get(dead, key);
      if (pos)
        ss.v[json_integer_value(pos)].num = -1; /* reused: not dead any more */
      w_append(w, task_new(w->out, w->svc, num, NULL, w->now));
    }
    json_decref(dead);
    free(used);
    for (size_t i = 0; i < ss.n; i++)
      if (json_array_size(ss.v[i].updatable) == 0 && ss.v[i].num != -1)
        delete_slot_tasks(w, &ss.v[i]);
  } else {
    /* Scale down: keep running slots, spread over nodes; remove copies
     * from the nodes that hold most. */
    struct rank *r = xcalloc(nrun, sizeof *r);
    for (size_t i = 0; i < nrun; i++) {
      struct slot *sl = &ss.v[run[i]];
      r[i] = (struct rank){run[i], false, sl->num, -1};
      size_t j;
      json_t *t;
      json_array_foreach(sl->updatable, j, t) if (task_state(t) == TS_RUNNING)
          r[i]
              .running = true;
    }
    qsort(r, nrun, sizeof *r, rank_by_state);
    json_t *pernode = json_object();
    for (size_t i = 0; i < nrun; i++) {
      json_t *up = ss.v[r[i].idx].updatable;
      const char *nid = jx_str(json_array_get(up, 0), "NodeID", "");
      if (json_array_size(up) == 1 && *nid) {
        int64_t c = jx_int(pernode, nid, 0) + 1;
        json_object_set_new(pernode, nid, json_integer(c));
        r[i].pernode = c;
      }
    }
    json_decref(pernode);
    qsort(r, nrun, sizeof *r, rank_by_node_index);
    size_t *keep = xcalloc(nrun, sizeof *keep);
    for (size_t i = 0; i < (size_t)want; i++)
      keep[i] = r[i].idx;
    update_run(w, &ss, keep, (size_t)want);
    for (size_t i = 0; i < ss.n; i++)
      if (json_array_size(ss.v[i].updatable) == 0)
        delete_slot_tasks(w, &ss.v[i]);
    for (size_t i = (size_t)want; i < nrun; i++) {
      size_t j;
      json_t *t;
      json_array_foreach(ss.v[r[i].idx].tasks, j, t) {
        if (task_desired(t) < TS_REMOVE && w_take(w, 1))
          set_desired(t, TS_REMOVE);
      }
    }
    free(keep);
    free(r);
  }
  free(run);
  slots_free(&ss);
}

static void run_replicated(struct work *w) {
  size_t n = json_array_size(w->tasks);
  for (size_t i = 0; i < n; i++) {
    json_t *t = json_array_get(w->tasks, i);
    if (task_desired(t) > TS_RUNNING)
      continue;
    bool assigned = *jx_str(t, "NodeID", "") != '\0';
    if (task_state(t) > TS_RUNNING || (assigned && node_invalid(node_of(w, t))))
      restart_task(w, t);
  }
  delayed_starts(w);
  update_observe(w);
  if (!w->stop)
    reconcile_replicated(w);
}

/* ---- global services ---- */

static bool node_eligible(const json_t *n) {
  return !node_invalid(n);
}

static void run_global(struct work *w) {
  struct cons c;
  cons_load(&c, w->svc);
  size_t n = json_array_size(w->tasks);
  for (size_t i = 0; i < n; i++) {
    json_t *t = json_array_get(w->tasks, i);
    if (task_desired(t) > TS_RUNNING)
      continue;
    json_t *node = node_of(w, t);
    if (!node || node_invalid(node)) {
      shutdown_running(t);
      continue;
    }
    if (task_state(t) > TS_RUNNING) {
      if (node_is(node, "Spec.Availability", "pause") ||
          !constraints_match(c.c, c.n, node))
        shutdown_running(t);
      else
        restart_task(w, t);
    }
  }
  delayed_starts(w);
  update_observe(w);
  if (w->stop) {
    constraints_free(c.c, c.n);
    return;
  }

  struct slots ss;
  slots_build(w, true, &ss);
  size_t *keep = xcalloc(ss.n + 1, sizeof *keep);
  size_t nkeep = 0;
  bool *seen = xcalloc(ss.n + 1, sizeof *seen);
  json_t *nodes = store_list(w->s, STORE_NODE);
  size_t i;
  json_t *node;
  json_array_foreach(nodes, i, node) {
    if (!node_eligible(node))
      continue;
    const char *nid = jx_str(node, "ID", "");
    struct slot *sl = NULL;
    for (size_t j = 0; j < ss.n; j++) {
      if (strcmp(ss.v[j].node, nid) == 0) {
        sl = &ss.v[j];
        seen[j] = true;
        if (json_array_size(sl->updatable) > 0)
          break;
        sl = NULL;
      }
    }
    if (!constraints_match(c.c, c.n, node)) {
      if (sl) {
        size_t k;
        json_t *t;
        json_array_foreach(sl->updatable, k, t) shutdown_running(t);
      }
      continue;
    }
    if (node_is(node, "Spec.Availability", "pause"))
      continue;
    if (!sl) {
      if (w_take(w, 1))
        w_append(w, task_new(w->out, w->svc, 0, nid, w->now));
    } else
      keep[nkeep++] = (size_t)(sl - ss.v);
  }
  json_decref(nodes);
  /* Tasks on nodes that are drained, down or gone. */
  for (size_t j = 0; j < ss.n; j++) {
    if (seen[j])
      continue;
    size_t k;
    json_t *t;
    json_array_foreach(ss.v[j].updatable, k, t) shutdown_running(t);
  }
  update_run(w, &ss, keep, nkeep);
  free(seen);
  free(keep);
  slots_free(&ss);
  constraints_free(c.c, c.n);
}

/* ---- jobs (swarmkit's jobs orchestrator) ---- */

static bool of_iteration(const json_t *t, int64_t iter) {
  json_t *ji = json_object_get(t, "JobIteration");
  return ji && jx_int(ji, "Index", -1) == iter;
}

/* The job's work in one slot (a replicated job's slot, a global job's
 * node), over its tasks of the current iteration. A slot whose newest
 * task failed and may not restart is given up: it holds its place (where
 * swarmkit would make a fresh task without end). */
enum job_slot { JS_FREE, JS_ACTIVE, JS_DONE, JS_GIVEN_UP };

static enum job_slot job_slot_state(struct work *w, json_t *tasks) {
  json_t *newest = NULL;
  size_t i;
  json_t *t;
  json_array_foreach(tasks, i, t) {
    if (task_state(t) == TS_COMPLETE)
      return JS_DONE;
    if (task_desired(t) <= TS_COMPLETE)
      return JS_ACTIVE;
    if (!newest || task_timestamp(t) >= task_timestamp(newest))
      newest = t;
  }
  if (!newest)
    return JS_FREE;
  return should_restart(newest) ? JS_FREE : JS_GIVEN_UP;
}

/* Failed tasks of this iteration restart per their policy; tasks of
 * earlier iterations stop (a global job's go altogether). */
static void job_restarts(struct work *w, bool global, int64_t iter) {
  size_t n = json_array_size(w->tasks);
  for (size_t i = 0; i < n; i++) {
    json_t *t = json_array_get(w->tasks, i);
    if (!of_iteration(t, iter)) {
      bool stop = global || task_state(t) <= TS_RUNNING;
      if (stop && task_desired(t) != TS_REMOVE && w_take(w, 1))
        set_desired(t, TS_REMOVE);
      continue;
    }
    if (task_desired(t) > TS_COMPLETE || task_state(t) == TS_COMPLETE)
      continue;
    bool assigned = *jx_str(t, "NodeID", "") != '\0';
    json_t *node = assigned ? node_of(w, t) : NULL;
    if (global && assigned && node_invalid(node)) {
      /* swarmkit's global jobs: no move to another node. */
      if (task_state(t) <= TS_RUNNING && w_take(w, 1))
        set_desired(t, TS_SHUTDOWN);
      continue;
    }
    if (task_state(t) > TS_COMPLETE || (assigned && node_invalid(node)))
      restart_task(w, t);
  }
  delayed_starts(w);
}

/* The current iteration's tasks grouped by key (slot number or node). */
static json_t *job_groups(struct work *w, bool global, int64_t iter) {
  json_t *g = json_object();
  size_t i;
  json_t *t;
  json_array_foreach(w->tasks, i, t) {
    if (!of_iteration(t, iter))
      continue;
    char key[64];
    if (global)
      snprintf(key, sizeof key, "%s", jx_str(t, "NodeID", ""));
    else
      snprintf(key, sizeof key, "%lld", (long long)jx_int(t, "Slot", 0));
    json_t *l = json_object_get(g, key);
    if (!l) {
      l = json_array();
      json_object_set_new(g, key, l);
    }
    json_array_append(l, t);
  }
  return g;
}

static void run_replicated_job(struct work *w) {
  int64_t iter = service_job_iteration(w->svc);
  job_restarts(w, false, iter);
  int64_t total = jx_int(w->svc, "Spec.Mode.ReplicatedJob.TotalCompletions", 0);
  int64_t conc = jx_int(w->svc, "Spec.Mode.ReplicatedJob.MaxConcurrent", 0);
  if (total > SERVICES_MAX_REPLICAS)
    total = SERVICES_MAX_REPLICAS;
  json_t *g = job_groups(w, false, iter);
  int64_t active = 0;
  /* Slots 0..total-1, as swarmkit numbers a job's tasks. */
  unsigned char *free_slot = xcalloc((size_t)total + 1, 1);
  for (int64_t s = 0; s < total; s++) {
    char key[32];
    snprintf(key, sizeof key, "%lld", (long long)s);
    json_t *l = json_object_get(g, key);
    enum job_slot st = l ? job_slot_state(w, l) : JS_FREE;
    active += st == JS_ACTIVE;
    free_slot[s] = st == JS_FREE;
  }
  for (int64_t s = 0; s < total && active < conc; s++) {
    if (!free_slot[s] || !w_take(w, 1))
      continue;
    w_append(w, task_new(w->out, w->svc, s, NULL, w->now));
    active++;
  }
  free(free_slot);
  json_decref(g);
}

static bool job_node_eligible(const json_t *n) {
  return strcmp(jx_str(n, "Spec.Availability", "active"), "active") == 0 &&
         strcmp(jx_str(n, "Status.State", ""), "ready") == 0;
}

static void run_global_job(struct work *w) {
  int64_t iter = service_job_iteration(w->svc);
  job_restarts(w, true, iter);
  struct cons c;
  cons_load(&c, w->svc);
  json_t *g = job_groups(w, true, iter);
  json_t *nodes = store_list(w->s, STORE_NODE);
  size_t i;
  json_t *node;
  json_array_foreach(nodes, i, node) {
    if (!job_node_eligible(node) || !constraints_match(c.c, c.n, node))
      continue;
    const char *nid = jx_str(node, "ID", "");
    json_t *l = json_object_get(g, nid);
    if ((l && job_slot_state(w, l) != JS_FREE) || !w_take(w, 1))
      continue;
    w_append(w, task_new(w->out, w->svc, 0, nid, w->now));
  }
  json_decref(nodes);
  json_decref(g);
  constraints_free(c.c, c.n);
}

/* ---- task reaper ---- */

struct hist {
  json_t *t;
  int64_t ts;
  size_t pos;
};

static int hist_cmp(const void *a, const void *b) {
  const struct hist *x = a, *y = b;
  if (x->ts != y->ts)
    return x->ts < y->ts ? -1 : 1;
  return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static void reap(struct work *w, int64_t limit) {
  /* Removed slots and services: gone once stopped or never started. */
  for (size_t i = json_array_size(w->tasks); i-- > 0;) {
    json_t *t = json_array_get(w->tasks, i);
    enum task_state s = task_state(t);
    if (task_desired(t) == TS_REMOVE && (s < TS_ASSIGNED || s >= TS_COMPLETE) &&
        w_take(w, 1))
      w_delete(w, t);
  }
  if (!w->svc)
    return;
  int64_t max =
      jx_int(w->svc, "Spec.TaskTemplate.RestartPolicy.MaxAttempts", 0);
  if (max > 0)
    limit = max + 1; /* keep enough to know the restart history */
  if (limit < 0)
    return;
  bool global = service_is_global(w->svc) ||
                jx_get(w->svc, "Spec.Mode.GlobalJob") != NULL;
  int64_t iter = service_is_job(w->svc) ? service_job_iteration(w->svc) : -1;
  struct slots ss;
  slots_build(w, global, &ss);
  for (size_t k = 0; k < ss.n; k++) {
    size_t n = json_array_size(ss.v[k].tasks);
    if ((int64_t)n <= limit)
      continue;
    struct hist *h = xcalloc(n, sizeof *h);
    for (size_t i = 0; i < n; i++) {
      json_t *t = json_array_get(ss.v[k].tasks, i);
      h[i] = (struct hist){t, task_timestamp(t), i};
    }
    qsort(h, n, sizeof *h, hist_cmp);
    int64_t keep = limit;
    for (size_t i = 0; i < n; i++) {
      enum task_state s = task_state(h[i].t);
      bool never = s < TS_ASSIGNED && task_desired(h[i].t) > TS_RUNNING;
      /* A job's completion counts as long as its iteration is current. */
      bool done = s == TS_COMPLETE && of_iteration(h[i].t, iter);
      if ((s > TS_RUNNING || never) && !done && w_take(w, 1)) {
        w_delete(w, h[i].t);
        keep++;
        if ((int64_t)n <= keep)
          break;
      }
    }
    free(h);
  }
  slots_free(&ss);
}

/* ---- driver ---- */

/* The run's copy of a service: the steps change _Update and
 * UpdateStatus in place, so those (and the rest) are copies; Spec and
 * PreviousSpec are only read or replaced whole, so they stay the store's
 * objects, and the tasks made from them share the store's template
 * (named in entries and snapshots, store_tx_name_templates). */
static json_t *svc_copy(const json_t *svc) {
  json_t *c = json_object();
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)svc, k, v) {
    bool shared = !strcmp(k, "Spec") || !strcmp(k, "PreviousSpec");
    json_object_set_new(c, k, shared ? json_incref(v) : json_deep_copy(v));
  }
  return c;
}

static void work_init(struct work *w, struct store *s, int64_t now,
                      struct orch_out *out, const json_t *svc) {
  memset(w, 0, sizeof *w);
  w->s = s;
  w->now = now;
  w->out = out;
  w->svc0 = svc;
  w->svc = svc ? svc_copy(svc) : NULL;
  w->tasks = json_array();
  w->orig = json_object();
  w->byid = json_object();
  w->deleted = json_object();
}

/* A shallow copy: the steps only set top-level keys of existing tasks
 * (DesiredState, _Start), and a deep copy of every task on every run
 * dominated the cost of large services. */
static void work_add(struct work *w, json_t *t) {
  w_append(w, json_copy(t));
  json_object_set(w->orig, jx_str(t, "ID", ""), t);
}

/* The transaction: differences between the copies and the store. */
static void work_emit(struct work *w) {
  struct store_tx *tx = store_tx_new();
  if (w->svc && !json_equal(w->svc, w->svc0))
    store_tx_put(tx, STORE_SERVICE, json_incref(w->svc),
                 jx_int(w->svc0, "Version.Index", 0));
  size_t i;
  json_t *t;
  json_array_foreach(w->tasks, i, t) {
    json_t *o = json_object_get(w->orig, jx_str(t, "ID", ""));
    if (!o)
      store_tx_put(tx, STORE_TASK, json_incref(t), STORE_MUST_CREATE);
    else if (!json_equal(o, t))
      store_tx_update(tx, STORE_TASK, json_incref(t), o,
                      jx_int(o, "Version.Index", 0));
  }
  const char *id;
  json_t *v;
  json_object_foreach(w->deleted, id, v)
      store_tx_delete(tx, STORE_TASK, id, json_integer_value(v));
  orch_out_add(w->out, tx);
}

static void work_free(struct work *w) {
  json_decref(w->svc);
  json_decref(w->tasks);
  json_decref(w->orig);
  json_decref(w->byid);
  json_decref(w->deleted);
}

static bool update_under_way(const json_t *svc) {
  const char *st = update_state(svc);
  return json_object_get(svc, "_Update") || strcmp(st, "updating") == 0 ||
         strcmp(st, "rollback_started") == 0;
}

/* The reaper's limit of tasks per slot (reap): the cluster's history
 * limit, or MaxAttempts + 1 when the restart policy sets one; < 0: none. */
static int64_t slot_limit(const json_t *svc, int64_t limit) {
  int64_t max = jx_int(svc, "Spec.TaskTemplate.RestartPolicy.MaxAttempts", 0);
  return max > 0 ? max + 1 : limit;
}

/* A replicated service at rest: no update under way, and each task desired
 * and observed running or on its way (not stopped, no delayed start), of
 * the current spec, on a usable node if placed, in its own slot within
 * 1..Replicas; or history: desired shut down, in a slot that has such a
 * task, no more per slot than the reaper keeps. The full run would change
 * nothing but add tasks for the free slots, so it is skipped: a large
 * service costs one light scan per run instead of a copy and regrouping
 * of every task (and the history a rescheduling leaves keeps it so). */
/* replicated_at_rest's walk over a service's tasks. */
struct rest {
  struct store *s;
  struct orch_out *out;
  int64_t want, version;
  unsigned char *used;
  uint32_t *hist; /* history tasks per slot, made when one is met */
  bool ok;
};

static void rest_check(json_t *t, void *ud) {
  struct rest *r = ud;
  if (!r->ok)
    return;
  int64_t slot = jx_int(t, "Slot", 0);
  if (slot < 1 || slot > r->want || json_object_get(t, "_Start")) {
    r->ok = false;
    return;
  }
  enum task_state desired = task_desired(t);
  if (desired == TS_SHUTDOWN) {
    if (!r->hist)
      r->hist = xcalloc((size_t)r->want + 1, sizeof *r->hist);
    r->hist[slot]++;
    return;
  }
  if (desired != TS_RUNNING || task_state(t) > TS_RUNNING || r->used[slot] ||
      jx_int(t, "_SpecVersion", -1) != r->version) {
    r->ok = false;
    return;
  }
  const char *nid = jx_str(t, "NodeID", "");
  if (*nid && orch_node_unfit(r->out, r->s, nid)) {
    r->ok = false;
    return;
  }
  r->used[slot] = 1;
}

/* tasks NULL: the service's tasks in the store, walked unsorted (order
 * does not matter here, and a new leader's pass sorted 100,000 tasks to
 * find most services at rest). */
static bool replicated_at_rest(struct store *s, struct orch_out *out,
                               const json_t *svc, const json_t *tasks,
                               int64_t want, int64_t limit, unsigned char *used,
                               int64_t *most_history) {
  if (update_under_way(svc))
    return false;
  struct rest r = {.s = s,
                   .out = out,
                   .want = want,
                   .version = service_spec_version(svc),
                   .used = used,
                   .ok = true};
  limit = slot_limit(svc, limit);
  if (tasks) {
    size_t i;
    json_t *t;
    json_array_foreach(tasks, i, t) rest_check(t, &r);
  } else {
    store_each_by(s, STORE_TASKS_BY_SERVICE, jx_str(svc, "ID", ""), rest_check,
                  &r);
  }
  *most_history = 0;
  for (int64_t k = 1; r.ok && r.hist && k <= want; k++) {
    if (r.hist[k] && (!used[k] || (limit >= 0 && 1 + r.hist[k] > limit)))
      r.ok = false;
    if (r.hist[k] > *most_history)
      *most_history = r.hist[k];
  }
  free(r.hist);
  return r.ok;
}

/* New tasks for the lowest free slots of a service at rest; their IDs
 * go into made (ID -> true) when it is not NULL. */
static void fill_free_slots(const json_t *svc, const unsigned char *used,
                            int64_t want, int64_t now, struct orch_out *out,
                            json_t *made) {
  struct store_tx *tx = NULL;
  for (int64_t slot = 1; slot <= want; slot++) {
    if (used[slot])
      continue;
    if (out->budget < 1) {
      out->more = true;
      break;
    }
    out->budget--;
    json_t *t = task_new(out, svc, slot, NULL, now);
    if (made)
      json_object_set_new(made, jx_str(t, "ID", ""), json_true());
    store_tx_put(orch_tx_room(out, &tx, 1, ORCH_TX_MAX), STORE_TASK, t,
                 STORE_MUST_CREATE);
  }
  if (tx)
    orch_out_add(out, tx);
}

/* A service's verdict at rest as orchestrator_touched keeps it: the most
 * history tasks a slot had ("Most"), made later, the history each slot
 * gained since from node passes ("Slots": slot -> count), and the tasks
 * the run made for its free slots, until they exist ("New": ID -> true,
 * see quiet_fill). */
static json_t *rest_verdict(int64_t most) {
  json_t *v = json_object();
  json_object_set_new(v, "Most", json_integer(most));
  json_object_set_new(v, "New", json_object());
  return v;
}

/* tasks: the service's in store order, or NULL to read them when needed. */
static void run_service(struct store *s, int64_t now_ns, struct orch_out *out,
                        const json_t *svc, const json_t *tasks, int64_t limit,
                        json_t *rest_kept) {
  bool replicated =
      jx_get(svc, "Spec.Mode.Replicated") || !jx_get(svc, "Spec.Mode");
  if (replicated && !service_is_global(svc)) {
    int64_t want = service_replicas(svc);
    if (want < 0)
      want = 0;
    unsigned char *used = xcalloc((size_t)want + 1, 1);
    int64_t most = 0;
    bool rest =
        replicated_at_rest(s, out, svc, tasks, want, limit, used, &most);
    if (rest) {
      json_t *verdict = rest_verdict(most);
      fill_free_slots(svc, used, want, now_ns, out,
                      json_object_get(verdict, "New"));
      if (rest_kept)
        json_object_set_new(rest_kept, jx_str(svc, "ID", ""), verdict);
      else
        json_decref(verdict);
    }
    free(used);
    if (rest)
      return;
  }
  if (rest_kept)
    json_object_del(rest_kept, jx_str(svc, "ID", ""));
  /* A full run's changes are one transaction (decided together): at most
   * ORCH_TX_MAX of them, so its raft entry stays small; the rest in the
   * next pass. */
  int64_t spare = out->budget > ORCH_TX_MAX ? out->budget - ORCH_TX_MAX : 0;
  out->budget -= spare;
  cleanup_json json_t *listed =
      tasks ? NULL
            : store_list_by(s, STORE_TASKS_BY_SERVICE, jx_str(svc, "ID", ""));
  if (!tasks)
    tasks = listed;
  struct work w;
  work_init(&w, s, now_ns, out, svc);
  size_t j;
  json_t *t;
  json_array_foreach(tasks, j, t) work_add(&w, t);
  if (service_is_global(svc))
    run_global(&w);
  else if (jx_get(svc, "Spec.Mode.ReplicatedJob"))
    run_replicated_job(&w);
  else if (jx_get(svc, "Spec.Mode.GlobalJob"))
    run_global_job(&w);
  else if (replicated)
    run_replicated(&w);
  reap(&w, limit);
  work_emit(&w);
  work_free(&w);
  out->budget += spare;
}

/* Tasks whose service is gone: desired "remove", or deleted at once when
 * never started or already stopped. Straight over the store's objects:
 * a removed service of any size costs one scan per run. */
static void run_orphans(const json_t *tasks, struct orch_out *out) {
  struct store_tx *tx = NULL;
  size_t i;
  json_t *t;
  json_array_foreach(tasks, i, t) {
    enum task_state st = task_state(t);
    bool stopped = st < TS_ASSIGNED || st >= TS_COMPLETE;
    bool removing = task_desired(t) >= TS_REMOVE;
    if (removing && !stopped)
      continue; /* waiting for its node to stop it */
    if (out->budget < 1) {
      out->more = true;
      break;
    }
    out->budget--;
    orch_tx_room(out, &tx, 1, ORCH_TX_MAX); /* each change stands alone */
    int64_t v = jx_int(t, "Version.Index", 0);
    if (stopped) {
      store_tx_delete(tx, STORE_TASK, jx_str(t, "ID", ""), v);
    } else {
      json_t *nt = json_copy(t);
      set_desired(nt, TS_REMOVE);
      store_tx_update(tx, STORE_TASK, nt, t, v);
    }
  }
  if (tx)
    orch_out_add(out, tx);
}

static int64_t history_limit(struct store *s) {
  json_t *cluster = store_cluster(s);
  json_t *lim = jx_get(cluster, "Spec.Orchestration.TaskHistoryRetentionLimit");
  return json_is_integer(lim) ? json_integer_value(lim) : DEFAULT_HISTORY;
}

int orchestrator_run(struct store *s, int64_t now_ns, struct orch_out *out) {
  size_t before = out->ntx;
  int64_t limit = history_limit(s);
  json_t *tasks = store_list(s, STORE_TASK);
  json_t *services = store_list(s, STORE_SERVICE);
  /* service ID -> its tasks in store order, grouped in one pass */
  json_t *by_service = json_object();
  size_t i;
  json_t *svc, *t;
  json_array_foreach(tasks, i, t) {
    const char *sid = jx_str(t, "ServiceID", "");
    json_t *l = json_object_get(by_service, sid);
    if (!l) {
      l = json_array();
      json_object_set_new(by_service, sid, l);
    }
    json_array_append(l, t);
  }
  json_t *none = json_array();
  json_array_foreach(services, i, svc) {
    json_t *l = json_object_get(by_service, jx_str(svc, "ID", ""));
    run_service(s, now_ns, out, svc, l ? l : none, limit, NULL);
  }
  const char *sid;
  json_t *l;
  json_object_foreach(by_service, sid, l) {
    if (*sid && !store_get(s, STORE_SERVICE, sid))
      run_orphans(l, out);
  }
  json_decref(none);
  json_decref(by_service);
  json_decref(services);
  json_decref(tasks);
  return (int)(out->ntx - before);
}

/* ---- tasks of nodes that became unusable ---- */

/* Task changes of one node pass (swarmkit's restartTasksByNodeID), and
 * per raft entry: each task is one change (shut down) plus one (its
 * replacement), far cheaper than a service's full run, so they go in
 * larger batches than ORCH_BATCH. */
#define NODE_BATCH (4 * ORCH_BATCH)
#define NODE_TX_MAX 400

struct node_pass {
  struct store *s;
  int64_t now;
  struct orch_out *out;
  const json_t *node;
  int64_t budget; /* changes this pass may still make */
  bool more;      /* the budget ran out on this node */
  struct store_tx *tx;
  json_t *touched; /* services left to their full run */
  json_t *busy;    /* services changed here: their run waits a pass */
  json_t *wake;    /* services with a delayed start (may be NULL) */
};

/* One task of the node: shut down and replaced in its slot, as
 * restart_task would, when its service is replicated, at rest otherwise
 * and the task plain (current spec, no delayed start, a slot in range);
 * anything else goes to the service's full run. */
static void node_task(json_t *t, void *ud) {
  struct node_pass *np = ud;
  const char *sid = jx_str(t, "ServiceID", "");
  enum task_state want = task_desired(t);
  if (np->more || (want > TS_RUNNING && task_state(t) > TS_RUNNING))
    return; /* history: nothing waits for it */
  const json_t *svc = store_get(np->s, STORE_SERVICE, sid);
  int64_t slot = jx_int(t, "Slot", 0);
  /* A delayed start, a job's task, one being stopped (a replacement may
   * wait for it): its service's full run. */
  if (want != TS_RUNNING || !svc || service_is_global(svc) ||
      service_is_job(svc) || update_under_way(svc) ||
      json_object_get(t, "_Start") || slot < 1 ||
      slot > service_replicas(svc) ||
      jx_int(t, "_SpecVersion", -1) != service_spec_version(svc)) {
    if (*sid)
      json_object_set_new(np->touched, sid, json_true());
    return;
  }
  if (np->budget < 2) {
    np->more = true;
    return;
  }
  np->budget -= 2;
  orch_tx_room(np->out, &np->tx, 2, NODE_TX_MAX); /* the pair in one */
  json_t *old = json_copy(t);
  set_desired(old, TS_SHUTDOWN);
  store_tx_update(np->tx, STORE_TASK, old, t, jx_int(t, "Version.Index", 0));
  json_object_set_new(np->busy, sid, json_true());
  if (!should_restart(t))
    return;
  struct work w = {.s = np->s, .now = np->now, .out = np->out};
  json_t *nt = task_new(np->out, svc, slot, NULL, np->now);
  record_restart(&w, t, nt);
  int64_t delay =
      node_is(np->node, "Spec.Availability", "drain") ? 0 : restart_delay(t);
  json_t *wait_for = NULL;
  if (!node_is(np->node, "Status.State", "down") && task_state(t) <= TS_RUNNING)
    wait_for = json_pack("[s]", jx_str(t, "ID", ""));
  delay_start(&w, nt, delay, wait_for);
  if (json_object_get(nt, "_Start") && np->wake)
    json_object_set_new(np->wake, sid, json_true());
  store_tx_put(np->tx, STORE_TASK, nt, STORE_MUST_CREATE);
}

/* The tasks of the nodes named in touched ("node:" + ID), one walk of each
 * node's index bucket: the cost is that of the node's tasks, not of their
 * services. A node done with leaves touched; one the budget ran out on
 * stays (and out->more is set). */
static void run_nodes(struct store *s, int64_t now_ns, struct orch_out *out,
                      json_t *touched, json_t *busy, json_t *wake) {
  struct node_pass np = {.s = s,
                         .now = now_ns,
                         .out = out,
                         .budget = NODE_BATCH,
                         .touched = touched,
                         .busy = busy,
                         .wake = wake};
  size_t first = out->ntx;
  const char *key;
  json_t *v, *tmp;
  json_object_foreach_safe(touched, tmp, key, v) {
    if (strncmp(key, ORCH_NODE_KEY, strlen(ORCH_NODE_KEY)) != 0)
      continue;
    const char *nid = key + strlen(ORCH_NODE_KEY);
    np.node = store_get(s, STORE_NODE, nid);
    np.more = false;
    /* Back in service before this pass: nothing to move. */
    if (node_invalid(np.node))
      store_each_by(s, STORE_TASKS_BY_NODE, nid, node_task, &np);
    if (np.more) {
      out->more = true;
      break;
    }
    json_object_del(touched, key);
  }
  if (np.tx)
    orch_out_add(out, np.tx);
  if (first == 0)
    out->node_ntx = out->ntx;
}

/* How many tasks a replicated service lacks for its replicas, counting
 * every task it has (history too): what its next run creates at least. */
static int64_t tasks_lacking(struct store *s, const json_t *svc) {
  json_t *r = jx_get(svc, "Spec.Mode.Replicated.Replicas");
  if (!json_is_integer(r))
    return 0;
  int64_t have =
      (int64_t)store_count_by(s, STORE_TASKS_BY_SERVICE, jx_str(svc, "ID", ""));
  int64_t lack = json_integer_value(r) - have;
  return lack > 0 ? lack : 0;
}

/* Loop time one orchestrator pass may take (a tenth of the 600 ms
 * election timeout), checked between services. */
#define ORCH_SLICE_NS (60 * NS_PER_MS)

int orchestrator_run_services(struct store *s, int64_t now_ns,
                              struct orch_out *out, json_t *service_ids,
                              json_t *wake, json_t *rest) {
  size_t before = out->ntx;
  int64_t limit = history_limit(s);
  int64_t wakeup = out->next_wakeup_ns;
  int64_t t0 = clock_mono_ns();
  /* Nodes first; a service they changed runs in the next pass, on the
   * store with those changes (now it would decide the same again). */
  cleanup_json json_t *busy = json_object();
  run_nodes(s, now_ns, out, service_ids, busy, wake);
  if (out->ran)
    json_object_update(out->ran, busy);
  wakeup = out->next_wakeup_ns;
  bool made = false; /* a service's run made changes in this pass */
  const char *sid;
  json_t *v, *tmp;
  json_object_foreach_safe(service_ids, tmp, sid, v) {
    if (json_object_get(busy, sid) ||
        strncmp(sid, ORCH_NODE_KEY, strlen(ORCH_NODE_KEY)) == 0) {
      out->more = true; /* a node left for later, or a busy service */
      continue;
    }
    /* A time slice as well as the task budget: reconciling a 1,000-task
     * service that needs nothing still costs ~25 ms, and a new leader
     * looks at every service; the loop must answer raft well within the
     * election timeout, so the rest waits for the next pass. */
    if (clock_mono_ns() - t0 > ORCH_SLICE_NS) {
      out->more = true;
      break;
    }
    /* With the budget spent, the rest wait in service_ids, not in ran: a
     * pass piped behind this one takes them while its entries commit
     * (marked as run, the other 96 of 100 services created at once kept
     * every piped pass idle). */
    if (out->budget < 1) {
      out->more = true;
      break;
    }
    json_t *svc = store_get(s, STORE_SERVICE, sid);
    /* Nor does a service begin after others when the tasks it lacks do
     * not fit in what they left: its first tasks would be placed in this
     * pass and the rest in a later one, around other services' placed in
     * between, which took the nodes its first tasks had filled for the
     * emptiest (four tasks of a fifth service of 999 in a pass left two
     * nodes 798 of 799-800; test_sim's spread test). */
    if (made && svc && tasks_lacking(s, svc) > out->budget) {
      out->more = true;
      break;
    }
    size_t ntx = out->ntx;
    bool more = out->more;
    out->more = false;
    out->next_wakeup_ns = 0;
    if (svc) {
      run_service(s, now_ns, out, svc, NULL, limit, rest);
    } else if (*sid) {
      if (rest)
        json_object_del(rest, sid);
      cleanup_json json_t *tasks =
          store_list_by(s, STORE_TASKS_BY_SERVICE, sid);
      run_orphans(tasks, out);
    }
    if (out->next_wakeup_ns > 0) {
      if (wake)
        json_object_set_new(wake, sid, json_true());
      if (wakeup == 0 || out->next_wakeup_ns < wakeup)
        wakeup = out->next_wakeup_ns;
    } else if (wake) {
      json_object_del(wake, sid);
    }
    /* Its changes are in flight: no piped pass runs it before they are
     * applied. */
    bool changed = out->ntx != ntx;
    if (out->ran && changed)
      json_object_set_new(out->ran, sid, json_true());
    made = made || changed;
    /* Done with it unless the budget ran out on the way. */
    if (!out->more)
      json_object_del(service_ids, sid);
    out->more = out->more || more;
  }
  out->next_wakeup_ns = wakeup;
  return (int)(out->ntx - before);
}

static void touch(json_t *touched, const json_t *task) {
  const char *sid = jx_str(task, "ServiceID", "");
  if (*sid)
    json_object_set_new(touched, sid, json_true());
}

static void touch_each(json_t *task, void *ud) {
  touch(ud, task);
}

static bool same_at(const json_t *a, const json_t *b, const char *path) {
  const json_t *x = jx_get(a, path), *y = jx_get(b, path);
  return (!x && !y) || (x && y && json_equal(x, y));
}

/* A node change the orchestrator acts on: the node came or went, or its
 * spec (availability, labels), description (constraints) or state did;
 * not an address or certificate update. */
/* A task's status stepping forward on its node while it stays desired
 * running and not ended (assigned -> accepted -> ... -> running): what
 * the orchestrator decides cannot change, unless an update watches its
 * tasks come up. Most changes of a large create are these; reconciling
 * the whole service for each batch of them cost ~25 ms per 1,000 tasks. */
static bool quiet_step(struct store *s, const struct store_change *c) {
  const json_t *o = c->old_obj, *n = c->new_obj;
  if (!o || !n)
    return false;
  enum task_state os = task_state(o), ns = task_state(n);
  /* The scheduler placing a pending task on a usable node is such a step
   * too: the orchestrator treats pending and assigned alike. */
  bool placed =
      os == TS_PENDING && ns == TS_ASSIGNED && !*jx_str(o, "NodeID", "") &&
      *jx_str(n, "NodeID", "") &&
      !node_invalid(store_get(s, STORE_NODE, jx_str(n, "NodeID", "")));
  /* A status report's version keeps every value but its Status. */
  bool kept = c->status_only ||
              (same_at(o, n, "ServiceID") &&
               (placed || same_at(o, n, "NodeID")) && same_at(o, n, "Slot") &&
               same_at(o, n, "_SpecVersion") && same_at(o, n, "_Start"));
  if ((os < TS_ASSIGNED && !placed) || ns > TS_RUNNING || ns < os ||
      task_desired(o) != TS_RUNNING || task_desired(n) != TS_RUNNING || !kept)
    return false;
  const json_t *svc = store_get(s, STORE_SERVICE, jx_str(n, "ServiceID", ""));
  return svc && !update_under_way(svc);
}

/* A status report of a history task (desired shutdown before and after,
 * on the same slot and node) of a replicated service whose last run found
 * it at rest: that verdict counts history by slot, not by state, so the
 * report cannot change it. While 100 nodes came back, their 10,000 old
 * tasks reporting shutdown made every service's at-rest scan run again
 * per batch: 39 % of the leader's loop. */
static bool quiet_history(struct store *s, const struct store_change *c,
                          const json_t *rest) {
  const json_t *o = c->old_obj, *n = c->new_obj;
  if (!rest || !o || !n || task_desired(o) != TS_SHUTDOWN ||
      task_desired(n) != TS_SHUTDOWN || task_state(n) < task_state(o) ||
      !same_at(o, n, "ServiceID") || !same_at(o, n, "NodeID") ||
      !same_at(o, n, "Slot") || !same_at(o, n, "_SpecVersion"))
    return false;
  const char *sid = jx_str(n, "ServiceID", "");
  if (!json_object_get(rest, sid))
    return false;
  const json_t *svc = store_get(s, STORE_SERVICE, sid);
  return svc && !update_under_way(svc);
}

/* A creation that can stand for a replacement in its slot as
 * replicated_at_rest counts it: desired running, not started late, of
 * the service's spec, on a usable node or none yet. */
static bool counts_at_rest(struct store *s, const json_t *t,
                           const json_t *svc) {
  const char *nid = jx_str(t, "NodeID", "");
  int64_t slot = jx_int(t, "Slot", 0);
  return task_desired(t) == TS_RUNNING && task_state(t) <= TS_RUNNING &&
         !json_object_get(t, "_Start") && slot >= 1 &&
         slot <= service_replicas(svc) &&
         jx_int(t, "_SpecVersion", -1) == service_spec_version(svc) &&
         (!*nid || !node_invalid(store_get(s, STORE_NODE, nid)));
}

/* A node pass's replacement (node_task): in one entry, a task desired
 * running is shut down and a new one made for its slot. For a service
 * its last run found at rest, the pair keeps that verdict when the new
 * task counts at rest and the slot's history stays within the limit
 * (at most "Most" before, plus what the slot gained since). With 100
 * nodes down, every service's check ran again after the node passes (a
 * walk of its 1,000 tasks each, half a second of the leader's loop while
 * the replacements' reports came in). Marks both changes in quiet. */
static void quiet_replacements(struct store *s, const struct store_change *ch,
                               size_t n, json_t *rest, bool *quiet) {
  cleanup_json json_t *made = json_object(); /* "sid/slot" -> index */
  char key[160];
  for (size_t i = 0; i < n; i++) {
    const json_t *t = ch[i].new_obj;
    if (ch[i].kind != STORE_TASK || ch[i].old_obj || !t ||
        !json_object_get(rest, jx_str(t, "ServiceID", "")))
      continue;
    snprintf(key, sizeof key, "%s/%lld", jx_str(t, "ServiceID", ""),
             (long long)jx_int(t, "Slot", 0));
    json_object_set_new(made, key, json_integer((json_int_t)i));
  }
  if (!json_object_size(made))
    return;
  int64_t limit = history_limit(s);
  for (size_t i = 0; i < n; i++) {
    const json_t *o = ch[i].old_obj, *t = ch[i].new_obj;
    if (ch[i].kind != STORE_TASK || !o || !t || task_desired(o) != TS_RUNNING ||
        task_desired(t) != TS_SHUTDOWN || task_state(o) != task_state(t) ||
        !same_at(o, t, "ServiceID") || !same_at(o, t, "Slot") ||
        !same_at(o, t, "NodeID") || !same_at(o, t, "_SpecVersion"))
      continue;
    const char *sid = jx_str(t, "ServiceID", "");
    int64_t slot = jx_int(t, "Slot", 0);
    snprintf(key, sizeof key, "%s/%lld", sid, (long long)slot);
    json_t *j = json_object_get(made, key);
    json_t *verdict = json_object_get(rest, sid);
    const json_t *svc = store_get(s, STORE_SERVICE, sid);
    if (!j || !verdict || !svc || update_under_way(svc) ||
        !counts_at_rest(s, ch[json_integer_value(j)].new_obj, svc))
      continue;
    json_t *slots = json_object_get(verdict, "Slots");
    if (!slots) {
      slots = json_object();
      json_object_set_new(verdict, "Slots", slots);
    }
    snprintf(key, sizeof key, "%lld", (long long)slot);
    int64_t gained = jx_int(slots, key, 0) + 1;
    int64_t lim = slot_limit(svc, limit);
    if (lim >= 0 && 1 + jx_int(verdict, "Most", 0) + gained > lim)
      continue; /* the reaper's: the service's full run */
    json_object_set_new(slots, key, json_integer(gained));
    quiet[i] = quiet[json_integer_value(j)] = true;
  }
}

/* The creation of a task that a run made for a free slot of its service
 * at rest (in the verdict's "New"): the slot is now filled as that run
 * decided, with no history added, so the verdict stands. Before, each
 * service's new tasks, once created, made the service run again to find
 * nothing: a scan of its tasks, ~6 ms for 1,000 at 100,000 tasks, after
 * every service created or scaled up. */
static bool quiet_fill(const struct store_change *c, json_t *rest) {
  if (!rest || c->old_obj || !c->new_obj)
    return false;
  json_t *verdict = json_object_get(rest, jx_str(c->new_obj, "ServiceID", ""));
  json_t *made = json_object_get(verdict, "New");
  const char *id = jx_str(c->new_obj, "ID", "");
  if (!json_object_get(made, id))
    return false;
  json_object_del(made, id);
  return true;
}

/* A node usable again with nothing else changed (back from down): its
 * tasks are history (replaced when it went) or ran on, which their
 * services' verdicts already counted, so only global services care. 100
 * nodes coming back each re-ran every service with a task there. */
static bool node_returned(const struct store_change *c) {
  return c->old_obj && c->new_obj && node_invalid(c->old_obj) &&
         !node_invalid(c->new_obj) && same_at(c->old_obj, c->new_obj, "Spec") &&
         same_at(c->old_obj, c->new_obj, "Description");
}

static bool node_relevant(const struct store_change *c) {
  return !c->old_obj || !c->new_obj ||
         !same_at(c->old_obj, c->new_obj, "Spec") ||
         !same_at(c->old_obj, c->new_obj, "Description.Hostname") ||
         !same_at(c->old_obj, c->new_obj, "Description.Platform") ||
         !same_at(c->old_obj, c->new_obj, "Description.Engine") ||
         !same_at(c->old_obj, c->new_obj, "Description.Resources") ||
         !same_at(c->old_obj, c->new_obj, "Status.State");
}

void orchestrator_touched(struct store *s, const struct store_change *ch,
                          size_t n, json_t *touched, bool *full, json_t *rest) {
  if (n == 0)
    *full = true;
  cleanup_free bool *paired = NULL;
  if (rest && json_object_size(rest) && n > 1 && !*full) {
    paired = xcalloc(n, sizeof *paired);
    quiet_replacements(s, ch, n, rest, paired);
  }
  for (size_t i = 0; i < n && !*full; i++) {
    const struct store_change *c = &ch[i];
    switch (c->kind) {
    case STORE_TASK:
      if ((paired && paired[i]) || quiet_step(s, c) ||
          quiet_history(s, c, rest) || quiet_fill(c, rest))
        break;
      if (c->old_obj)
        touch(touched, c->old_obj);
      if (c->new_obj)
        touch(touched, c->new_obj);
      break;
    case STORE_SERVICE:
      json_object_set_new(touched, c->id, json_true());
      break;
    case STORE_NODE: {
      if (!node_relevant(c))
        break;
      /* A node that became unusable (down, drained, gone): its tasks,
       * through the node's bucket (run_nodes); otherwise its tasks'
       * services. And every global service: a new or returning node gets
       * their tasks. */
      if (node_invalid(c->new_obj) && c->old_obj && !node_invalid(c->old_obj)) {
        char key[128];
        snprintf(key, sizeof key, "%s%s", ORCH_NODE_KEY, c->id);
        json_object_set_new(touched, key, json_true());
      } else if (!node_returned(c)) {
        store_each_by(s, STORE_TASKS_BY_NODE, c->id, touch_each, touched);
      }
      cleanup_json json_t *svcs = store_list(s, STORE_SERVICE);
      size_t j;
      json_t *svc;
      json_array_foreach(svcs, j, svc) {
        if (service_is_global(svc) || jx_get(svc, "Spec.Mode.GlobalJob"))
          json_object_set_new(touched, jx_str(svc, "ID", ""), json_true());
      }
      break;
    }
    case STORE_CLUSTER:
      *full = true; /* the history limit, for every service */
      break;
    default:
      break; /* networks, secrets, configs: not the orchestrator's */
    }
  }
}

void orchestrator_touch_all(struct store *s, json_t *touched) {
  cleanup_json json_t *svcs = store_list(s, STORE_SERVICE);
  cleanup_json json_t *keys = store_index_keys(s, STORE_TASKS_BY_SERVICE);
  size_t i;
  json_t *v;
  json_array_foreach(svcs, i, v)
      json_object_set_new(touched, jx_str(v, "ID", ""), json_true());
  json_array_foreach(keys, i, v) {
    if (*json_string_value(v))
      json_object_set_new(touched, json_string_value(v), json_true());
  }
}

bool orchestrator_task_dirty(struct store *s, const json_t *svc,
                             const json_t *task) {
  /* task_dirty reads only the store and the service. */
  struct work w = {.s = s, .svc = (json_t *)svc, .svc0 = svc};
  return task_dirty(&w, task);
}
