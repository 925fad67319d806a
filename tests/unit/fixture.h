/* A cluster in a store, for the orchestrator, scheduler and services
 * tests: objects enter through transactions applied at increasing raft
 * indexes (as raft would), the leader's pure functions run at a fake
 * time, and their transactions are applied back. A tiny "agent" moves
 * tasks as nodes would report them. Task IDs are predictable. */
#ifndef SHOAL_TEST_FIXTURE_H
#define SHOAL_TEST_FIXTURE_H

#include "core/clock.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "manager/networks.h"
#include "manager/orchestrator.h"
#include "manager/scheduler.h"
#include "manager/services.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>

#define FX_T0 (INT64_C(1767225600) * NS_PER_SEC) /* 2026-01-01 */

struct fx {
  struct store *s;
  uint64_t index;
  int64_t now;
  int next_id;
  int64_t wakeup; /* from the last orchestrator run */
  int failed_txs; /* transactions of the last run the store refused */
  /* The orchestrator runs as the leader's reconciler runs it: on the
   * services the changes since its last run touched (and those waiting
   * for a time); fx_converge then checks a full pass finds nothing left. */
  json_t *touched, *wake, *rest;
  bool full;
  /* The scheduler's node loads, kept from the changes as the reconciler
   * keeps them; fx_sched checks each run against a fresh count. */
  struct sched_load *load;
  /* The IDs fx_orch gives new tasks (fx_new_id unless set): the store
   * lists tasks made at one time in ID order. */
  void (*new_id)(char out[ID_LEN + 1], void *fx);
  /* fx_orch leaves its new tasks pending for fx_sched (the reconciler
   * places them in its orchestrator pass). */
  bool no_place_new;
};

static inline void fx_on_change(const struct store_change *ch, size_t n,
                                uint64_t index, void *ud) {
  struct fx *f = ud;
  sched_load_follow(f->load, f->s, ch, n);
  orchestrator_touched(f->s, ch, n, f->touched, &f->full, f->rest);
}

static inline void fx_new_id(char out[ID_LEN + 1], void *ud) {
  struct fx *f = ud;
  snprintf(out, ID_LEN + 1, "t%024d", ++f->next_id);
}

/* Applies tx at the next index; aborts the test process on refusal
 * unless allow_fail. */
static inline int fx_apply_tx(struct fx *f, struct store_tx *tx,
                              bool allow_fail) {
  size_t len = 0;
  /* As manager_propose encodes: new tasks name their service's template. */
  store_tx_name_templates(f->s, tx);
  char *data = store_tx_encode(tx, f->now, &len);
  store_tx_free(tx);
  sh_err err = {0};
  int rc = store_apply(f->s, data, len, f->index + 1, &err);
  free(data);
  if (rc == 0)
    f->index++;
  else if (!allow_fail) {
    fprintf(stderr, "    fixture: apply failed: %s\n", err.msg);
    abort();
  }
  return rc;
}

static inline void fx_put(struct fx *f, enum store_kind k, json_t *obj,
                          int64_t expect) {
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, k, obj, expect);
  fx_apply_tx(f, tx, false);
}

static inline void fx_init(struct fx *f, int64_t history_limit) {
  memset(f, 0, sizeof *f);
  f->s = store_new();
  f->now = FX_T0;
  f->touched = json_object();
  f->wake = json_object();
  f->rest = json_object();
  f->load = sched_load_new();
  store_watch(f->s, fx_on_change, f);
  fx_put(f, STORE_CLUSTER,
         json_pack("{s:s, s:{s:s, s:{s:I}}}", "ID", "cluster1", "Spec", "Name",
                   "default", "Orchestration", "TaskHistoryRetentionLimit",
                   (json_int_t)history_limit),
         STORE_MUST_CREATE);
}

/* Also as a cleanup: a second call (or one before fx_init on a zeroed
 * fixture) does nothing. */
static inline void fx_free(struct fx *f) {
  if (f->s)
    store_free(f->s);
  f->s = NULL;
  json_decref(f->touched);
  json_decref(f->wake);
  json_decref(f->rest);
  f->touched = f->wake = f->rest = NULL;
  sched_load_free(f->load);
  f->load = NULL;
}
#define cleanup_fx __attribute__((cleanup(fx_free)))

/* A ready, active worker with 4 CPUs and 4 GiB. */
static inline void fx_node(struct fx *f, const char *id, const char *labels) {
  json_t *lab = labels ? json_loads(labels, 0, NULL) : json_object();
  fx_put(f, STORE_NODE,
         json_pack("{s:s, s:{s:s, s:s, s:o}, s:{s:s, s:{s:s, s:s}, s:{s:I, "
                   "s:I}}, s:{s:s}}",
                   "ID", id, "Spec", "Role", "worker", "Availability", "active",
                   "Labels", lab, "Description", "Hostname", id, "Platform",
                   "Architecture", "x86_64", "OS", "linux", "Resources",
                   "NanoCPUs", (json_int_t)(4 * NS_PER_SEC), "MemoryBytes",
                   (json_int_t)(INT64_C(4) << 30), "Status", "State", "ready"),
         STORE_MUST_CREATE);
}

/* fx_init with history limit 5 and n ready nodes <prefix>1..<prefix>n. */
static inline void fx_init_nodes(struct fx *f, const char *prefix, int n) {
  fx_init(f, 5);
  for (int i = 1; i <= n; i++) {
    char id[32];
    snprintf(id, sizeof id, "%s%d", prefix, i);
    fx_node(f, id, NULL);
  }
}

/* Sets one field of a stored object (dotted path; value stolen). */
/* An overlay network with ID and name id on subnet. */
static inline void fx_network(struct fx *f, const char *id,
                              const char *subnet) {
  char body[256];
  snprintf(body, sizeof body,
           "{\"Name\":\"%s\",\"Driver\":\"overlay\",\"IPAM\":{\"Config\":[{"
           "\"Subnet\":\"%s\"}]}}",
           id, subnet);
  json_t *req = json_loads(body, 0, NULL);
  sh_err err = {0};
  json_t *n = networks_create(f->s, req, id, NULL, &err);
  json_decref(req);
  if (!n) {
    fprintf(stderr, "    fixture: network: %s\n", err.msg);
    abort();
  }
  fx_put(f, STORE_NETWORK, n, STORE_MUST_CREATE);
}

static inline void fx_set(struct fx *f, enum store_kind k, const char *id,
                          const char *path, json_t *value) {
  json_t *cur = store_get(f->s, k, id);
  if (!cur) {
    fprintf(stderr, "    fixture: no %s %s\n", store_kind_name(k), id);
    abort();
  }
  json_t *next = json_deep_copy(cur);
  jx_set(next, path, value);
  fx_put(f, k, next, jx_int(cur, "Version.Index", 0));
}

static inline const char *fx_service(struct fx *f, const char *id,
                                     const char *spec_json) {
  json_error_t je;
  json_t *spec = json_loads(spec_json, 0, &je);
  if (!spec) {
    fprintf(stderr, "    fixture: bad spec: %s\n", je.text);
    abort();
  }
  sh_err err = {0};
  json_t *svc = services_create(f->s, spec, id, f->now, &err);
  json_decref(spec);
  if (!svc) {
    fprintf(stderr, "    fixture: create: %s\n", err.msg);
    abort();
  }
  fx_put(f, STORE_SERVICE, svc, STORE_MUST_CREATE);
  return id;
}

static inline void fx_update(struct fx *f, const char *id,
                             const char *spec_json, const char *rollback) {
  json_t *cur = store_get(f->s, STORE_SERVICE, id);
  int64_t ver = jx_int(cur, "Version.Index", 0);
  json_t *spec = spec_json ? json_loads(spec_json, 0, NULL)
                           : json_deep_copy(json_object_get(cur, "Spec"));
  sh_err err = {0};
  json_t *next = services_update(f->s, id, ver, spec, rollback, f->now, &err);
  json_decref(spec);
  if (!next) {
    fprintf(stderr, "    fixture: update: %s\n", err.msg);
    abort();
  }
  fx_put(f, STORE_SERVICE, next, ver);
}

static inline void fx_scale(struct fx *f, const char *id, int64_t n) {
  json_t *cur = store_get(f->s, STORE_SERVICE, id);
  json_t *spec = json_deep_copy(json_object_get(cur, "Spec"));
  jx_set(spec, "Mode.Replicated.Replicas", json_integer(n));
  char *s = jx_dump(spec);
  json_decref(spec);
  fx_update(f, id, s, NULL);
  free(s);
}

static inline int fx_apply_out(struct fx *f, struct orch_out *o) {
  int n = (int)o->ntx;
  f->failed_txs = 0;
  for (size_t i = 0; i < o->ntx; i++) {
    if (fx_apply_tx(f, o->txs[i], true) < 0)
      f->failed_txs++;
    o->txs[i] = NULL;
  }
  o->ntx = 0;
  return n;
}

static inline int fx_orch(struct fx *f) {
  struct orch_out o;
  orch_out_init(&o);
  o.new_id = f->new_id ? f->new_id : fx_new_id;
  o.id_ud = f;
  if (f->full) {
    orchestrator_touch_all(f->s, f->touched);
    json_object_clear(f->rest);
  }
  f->full = false;
  /* Running a waiting service before its time changes nothing (a pure
   * function of the store and the time): every run includes them. */
  json_object_update(f->touched, f->wake);
  orchestrator_run_services(f->s, f->now, &o, f->touched, f->wake, f->rest);
  /* As the reconciler: the new tasks go in placed. */
  struct sched_placed placed;
  if (!f->no_place_new)
    scheduler_place_new(f->s, f->now, &o, f->load, INT64_MAX / 2, &placed);
  f->wakeup = o.next_wakeup_ns;
  int n = fx_apply_out(f, &o);
  orch_out_free(&o);
  return n;
}

static inline int fx_sched(struct fx *f) {
  struct orch_out o, fresh;
  orch_out_init(&o);
  orch_out_init(&fresh);
  o.budget = fresh.budget = PLACE_BATCH; /* as the reconciler's pass */
  scheduler_run_load(f->s, f->now, &o, f->load);
  /* The loads kept from the changes decide as a count from the store. */
  scheduler_run(f->s, f->now, &fresh);
  bool same = o.ntx == fresh.ntx;
  for (size_t i = 0; same && i < o.ntx; i++) {
    size_t a = 0, b = 0;
    char *x = store_tx_encode(o.txs[i], f->now, &a);
    char *y = store_tx_encode(fresh.txs[i], f->now, &b);
    same = a == b && memcmp(x, y, a) == 0;
    free(x);
    free(y);
  }
  orch_out_free(&fresh);
  if (!same) {
    fprintf(stderr, "    fixture: the scheduler's kept loads decided "
                    "otherwise than a fresh count\n");
    abort();
  }
  int n = fx_apply_out(f, &o);
  orch_out_free(&o);
  return n;
}

/* The agents: tasks on ready nodes start when desired running (or
 * complete) and stop when desired shut down. Returns the number of tasks
 * changed. */
static inline int fx_agent(struct fx *f) {
  json_t *tasks = store_list(f->s, STORE_TASK);
  int changed = 0;
  size_t i;
  json_t *t;
  json_array_foreach(tasks, i, t) {
    json_t *node = store_get(f->s, STORE_NODE, jx_str(t, "NodeID", ""));
    if (!node || strcmp(jx_str(node, "Status.State", ""), "ready") != 0)
      continue;
    enum task_state st = task_state(t), want = task_desired(t);
    const char *to = NULL;
    /* A job's task (desired complete) runs until the test ends it. */
    bool run = want == TS_RUNNING || want == TS_COMPLETE;
    if (run && st >= TS_ASSIGNED && st < TS_RUNNING)
      to = "running";
    else if (!run && want > TS_RUNNING && st >= TS_ASSIGNED && st <= TS_RUNNING)
      to = "shutdown";
    if (!to)
      continue;
    char ts[64];
    json_t *next = json_deep_copy(t);
    jx_set(next, "Status.State", json_string(to));
    jx_set(next, "Status.Timestamp",
           json_string(clock_format_rfc3339(f->now, ts, sizeof ts)));
    fx_put(f, STORE_TASK, next, jx_int(t, "Version.Index", 0));
    changed++;
  }
  json_decref(tasks);
  return changed;
}

/* Runs orchestrator, scheduler and (if agents) the agents until nothing
 * changes at the current time. */
static inline void fx_converge(struct fx *f, bool agents) {
  for (int i = 0; i < 50; i++) {
    int n = fx_orch(f);
    n += fx_sched(f);
    if (agents)
      n += fx_agent(f);
    if (n == 0) {
      /* Nothing the incremental passes missed. */
      struct orch_out o;
      orch_out_init(&o);
      orchestrator_run(f->s, f->now, &o);
      size_t left = o.ntx;
      orch_out_free(&o);
      if (left > 0) {
        fprintf(stderr,
                "    fixture: a full orchestrator pass still finds "
                "%zu transactions\n",
                left);
        abort();
      }
      return;
    }
  }
  fprintf(stderr, "    fixture: no convergence\n");
  abort();
}

/* Reports a task's state as its agent would. */
static inline void fx_task_state(struct fx *f, const char *task_id,
                                 const char *state) {
  char ts[64];
  json_t *t = store_get(f->s, STORE_TASK, task_id);
  json_t *next = json_deep_copy(t);
  jx_set(next, "Status.State", json_string(state));
  jx_set(next, "Status.Timestamp",
         json_string(clock_format_rfc3339(f->now, ts, sizeof ts)));
  fx_put(f, STORE_TASK, next, jx_int(t, "Version.Index", 0));
}

/* Tasks of a service matching desired state and observed state (NULL:
 * any), in store order. New reference. */
static inline json_t *fx_tasks(struct fx *f, const char *svc,
                               const char *desired, const char *state) {
  json_t *all = store_list(f->s, STORE_TASK);
  json_t *out = json_array();
  size_t i;
  json_t *t;
  json_array_foreach(all, i, t) {
    if (svc && strcmp(jx_str(t, "ServiceID", ""), svc) != 0)
      continue;
    if (desired && strcmp(jx_str(t, "DesiredState", ""), desired) != 0)
      continue;
    if (state && strcmp(jx_str(t, "Status.State", ""), state) != 0)
      continue;
    json_array_append(out, t);
  }
  json_decref(all);
  return out;
}

static inline size_t fx_count(struct fx *f, const char *svc,
                              const char *desired, const char *state) {
  json_t *l = fx_tasks(f, svc, desired, state);
  size_t n = json_array_size(l);
  json_decref(l);
  return n;
}

/* Running tasks of svc on node. */
static inline size_t fx_on_node(struct fx *f, const char *svc,
                                const char *node) {
  json_t *l = fx_tasks(f, svc, "running", NULL);
  size_t n = 0, i;
  json_t *t;
  json_array_foreach(l, i, t) {
    if (strcmp(jx_str(t, "NodeID", ""), node) == 0)
      n++;
  }
  json_decref(l);
  return n;
}

#endif
