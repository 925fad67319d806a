#include "manager/reconciler.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/util.h"
#include "manager/internal.h"
#include "manager/allocator.h"
#include "manager/orchestrator.h"
#include "manager/scheduler.h"
#include "store/store.h"

struct reconciler {
  struct manager *m;
  uv_timer_t kick;   /* 0 ms: coalesces bursts of store changes */
  uv_timer_t wakeup; /* a delay the orchestrator asked for */
  int watch_id;
  bool leader;
  bool dirty;   /* the store changed since the last run started */
  int inflight; /* proposals of the current run not yet decided */
  int closing;
  bool stopped;
  /* Each pass (orchestrator, then scheduler) waits for its proposals. */
  int pass;
  /* A pass left work for later (orch_out.more): the next passes are
   * paced, so API requests get loop turns between the batches. */
  bool batching;
  bool exhausted_said; /* the allocator's shortage was logged */
  /* What the next orchestrator pass works on: the services a change
   * touched (service ID -> true), or all of them (full: after a restore,
   * on becoming leader, on a cluster change). */
  json_t *touched;
  bool full;
  json_t *wake;     /* services that asked for a wakeup */
  json_t *rest;     /* replicated services their last run found at rest */
  int64_t wake_at;  /* when the wakeup timer fires (0: not set) */
  bool alloc_dirty; /* something the allocator looks at changed */
  /* A node came, went or changed its ingress address, or a network
   * changed: the allocator looks for nodes without their address. Its
   * walk of 1,000 nodes was most of every allocator pass, one per
   * service created. */
  bool alloc_nodes;
  struct sched_load *load; /* the scheduler's node loads (every manager) */
};

/* Between the passes of a large change: a few idle loop turns after each
 * pass (up to tens of milliseconds over thousands of tasks), so _ping and
 * other requests are answered promptly while the batches go on; longer
 * only leaves the managers idle between batches. */
#define BATCH_PAUSE_MS 5
/* What the orchestrator pass may spend placing the tasks it made; the
 * rest wait for the scheduler's pass after the commit. Unbounded, the
 * passes that replaced 100 nodes' tasks at 1,000 nodes (2,000 new tasks
 * of 100 services each) held the loop 240-360 ms while each task group's
 * view cost ~1 ms; since the loads are arrays (scheduler.c) such a pass
 * places its 2,000 in 45-90 ms, and with 100 ms nearly every pass of a
 * rescheduling places all it made, which spares a commit per pass (40
 * placed 600-1,500 of them). */
#define PLACE_NEW_MS 100
/* Task changes one orchestrator pass may make: several services' worth
 * of ORCH_BATCH (each service's full run stays within its own cap), so
 * services created at about the same time go out together: a node then
 * gets its tasks of all of them in one message, and reports them in one
 * request. With one service per pass, 100 services of 1,000 created by 4
 * clients at once took as long as one after the other (22.5 s at 1,000
 * simulated nodes: each node one message and one report per task); four
 * per pass: 16.1 s, the leader's CPU 15.4 -> 10.4 s, the simulator's
 * 7.8 -> 4.5 s. Its placements stay within PLACE_NEW_MS. */
#define PASS_BATCH (4 * ORCH_BATCH)

static uint64_t next_delay(const struct reconciler *r) {
  return r->batching ? BATCH_PAUSE_MS : 0;
}

static void run(struct reconciler *r);
static void on_timer(uv_timer_t *t) {
  run(t->data);
}

/* Freed once both timers closed and no proposal is outstanding (raft
 * answers pending proposals with an error when it closes). */
static void maybe_free(struct reconciler *r) {
  if (r->stopped && r->closing == 0 && r->inflight == 0) {
    json_decref(r->touched);
    json_decref(r->wake);
    json_decref(r->rest);
    sched_load_free(r->load);
    free(r);
  }
}

static void kick(struct reconciler *r) {
  r->dirty = true;
  if (r->leader && r->inflight == 0 && !uv_is_active((uv_handle_t *)&r->kick))
    uv_timer_start(&r->kick, on_timer, 0, 0);
}

static void on_change(const struct store_change *ch, size_t n, uint64_t index,
                      void *ud) {
  struct reconciler *r = ud;
  sched_load_follow(r->load, r->m->store, ch, n);
  if (!r->leader) {
    kick(r); /* sets dirty; becoming leader starts with a full pass */
    return;
  }
  orchestrator_touched(r->m->store, ch, n, r->touched, &r->full, r->rest);
  if (n == 0)
    r->alloc_dirty = r->alloc_nodes = true;
  /* Such a change runs the allocator too (a node whose address went
   * gets one). */
  for (size_t i = 0; i < n && !r->alloc_nodes; i++) {
    const struct store_change *c = &ch[i];
    if (c->kind == STORE_NETWORK ||
        (c->kind == STORE_NODE &&
         (!c->old_obj || !c->new_obj ||
          json_object_get(c->old_obj, "_Ingress") !=
              json_object_get(c->new_obj, "_Ingress"))))
      r->alloc_nodes = r->alloc_dirty = true;
  }
  for (size_t i = 0; i < n && !r->alloc_dirty; i++) {
    const struct store_change *c = &ch[i];
    switch (c->kind) {
    case STORE_TASK:
      /* New tasks wait for addresses; a task that ends frees some for
       * those still waiting. */
      r->alloc_dirty = (c->new_obj && task_state(c->new_obj) <= TS_PENDING) ||
                       r->exhausted_said;
      break;
    case STORE_NODE:
      r->alloc_dirty = !c->old_obj || !c->new_obj; /* ingress addresses */
      break;
    case STORE_SERVICE:
    case STORE_CLUSTER:
    case STORE_NETWORK:
      r->alloc_dirty = true;
      break;
    default:
      break;
    }
  }
  kick(r);
}

/* The orchestrator asked to run again at `at` for the services in wake. */
static void on_wakeup(uv_timer_t *t) {
  struct reconciler *r = t->data;
  r->wake_at = 0;
  json_object_update(r->touched, r->wake);
  json_object_clear(r->wake);
  r->dirty = true;
  run(r);
}

static void proposal_done(void *ud, int status, const sh_err *err) {
  struct reconciler *r = ud;
  if (r->stopped) {
    r->inflight--;
    maybe_free(r);
    return;
  }
  /* A refused proposal (a concurrent change got there first) is fine: the
   * next run decides again on fresh state. */
  if (status < 0 && err && err->status == 503)
    log_debug("reconcile proposal not committed: %s", err->msg);
  /* A stale version or a missing object means a concurrent change, which
   * touched the same services; anything else: look at everything. */
  if (status < 0) {
    r->alloc_dirty = true;
    if (!err || (err->status != 500 && err->status != 404))
      r->full = true;
  }
  if (--r->inflight == 0 && r->leader && (r->pass != 0 || r->dirty))
    uv_timer_start(&r->kick, on_timer, next_delay(r), 0);
}

/* A node pass's transaction refused (a stale version, a service whose
 * spec moved on): it held several services' replacements, and only the
 * change that beat it is known to have touched its own service, so
 * every service is looked at again. Rare: nodes' tasks rarely change
 * under a node pass. */
static void node_proposal_done(void *ud, int status, const sh_err *err) {
  struct reconciler *r = ud;
  if (status < 0 && !r->stopped)
    r->full = true;
  proposal_done(ud, status, err);
}

static void propose_all(struct reconciler *r, struct orch_out *out) {
  for (size_t i = 0; i < out->ntx; i++) {
    struct store_tx *tx = out->txs[i];
    out->txs[i] = NULL;
    sh_err err = {0};
    r->inflight++;
    if (manager_propose(r->m, tx,
                        i < out->node_ntx ? node_proposal_done : proposal_done,
                        r, &err) < 0)
      r->inflight--;
  }
  out->ntx = 0;
}

static void run(struct reconciler *r) {
  if (!r->leader || r->inflight > 0)
    return;
  struct store *s = r->m->store;
  int64_t now = clock_wall_ns(), t0 = clock_mono_ns();
  int pass = r->pass;
  struct orch_out out;
  orch_out_init(&out);
  struct sched_placed placed = {0};
  /* Pass 0: orchestrator, and the scheduler on the tasks it makes that
   * need no addresses; pass 1 (after its proposals are applied):
   * allocator, which gives new tasks their network addresses; pass 2:
   * scheduler, which places allocated tasks. One reconcile takes a new
   * task from creation to a node. */
  switch (r->pass) {
  case 0:
    out.budget = PASS_BATCH;
    r->dirty = false;
    r->batching = false;
    if (r->full) {
      r->full = false;
      json_object_clear(r->rest); /* every service runs again */
      orchestrator_touch_all(s, r->touched);
    }
    orchestrator_run_services(s, now, &out, r->touched, r->wake, r->rest);
    /* The tasks it makes go in already placed: one commit for a batch
     * of new tasks, not one to create them and one to place them. */
    scheduler_place_new(s, now, &out, r->load, PLACE_NEW_MS * NS_PER_MS,
                        &placed);
    /* Keep the earliest wakeup: this pass saw only some services. */
    if (out.next_wakeup_ns > 0 &&
        (r->wake_at == 0 || out.next_wakeup_ns < r->wake_at)) {
      int64_t ms = (out.next_wakeup_ns - now) / NS_PER_MS;
      r->wake_at = out.next_wakeup_ns;
      uv_timer_start(&r->wakeup, on_wakeup, ms > 0 ? (uint64_t)ms : 1, 0);
    }
    break;
  case 1: {
    if (!r->alloc_dirty)
      break; /* nothing it looks at changed: its scan would find nothing */
    r->alloc_dirty = false;
    size_t exhausted = 0;
    bool nodes = r->alloc_nodes;
    r->alloc_nodes = false;
    allocator_run(s, &out, nodes, &exhausted);
    if (exhausted)
      r->alloc_nodes = nodes; /* again once addresses are freed */
    if (exhausted && !r->exhausted_said)
      log_warn("%zu tasks wait for a free address on their networks",
               exhausted);
    r->exhausted_said = exhausted > 0;
    break;
  }
  default:
    out.budget = PLACE_BATCH;
    scheduler_run_load(s, now, &out, r->load);
    break;
  }
  r->pass = (r->pass + 1) % 3;
  if (out.more)
    r->dirty = r->batching = true; /* run again for the rest */
  size_t ntx = out.ntx;
  propose_all(r, &out);
  /* A pass long enough to matter to raft's election timeout is said, so
   * an operator (and the simulator bench's logs) see which one it was. */
  int64_t took = (clock_mono_ns() - t0) / NS_PER_MS;
  if (took >= 200)
    log_info("reconcile: the %s pass took %lld ms (%zu proposals; %zu new "
             "tasks placed in %lld ms, %zu left pending)",
             pass == 0   ? "orchestrator"
             : pass == 1 ? "allocator"
                         : "scheduler",
             (long long)took, ntx, placed.placed,
             (long long)(placed.took_ns / NS_PER_MS), placed.left);
  orch_out_free(&out);
  if (r->inflight > 0)
    return; /* proposal_done runs the next pass */
  if (r->pass != 0)
    run(r); /* nothing to wait for: the next pass now */
  else if (r->dirty)
    uv_timer_start(&r->kick, on_timer, next_delay(r), 0);
}

struct reconciler *reconciler_new(struct manager *m) {
  struct reconciler *r = xcalloc(1, sizeof *r);
  r->m = m;
  uv_timer_init(m->loop, &r->kick);
  uv_timer_init(m->loop, &r->wakeup);
  r->kick.data = r->wakeup.data = r;
  r->touched = json_object();
  r->wake = json_object();
  r->rest = json_object();
  r->load = sched_load_new();
  r->watch_id = store_watch(m->store, on_change, r);
  return r;
}

void reconciler_set_leader(struct reconciler *r, bool leader) {
  r->leader = leader; /* the loads are kept: every manager follows them */
  if (leader) {
    r->pass = 0;
    r->full = r->alloc_dirty = r->alloc_nodes = true;
    kick(r);
  } else {
    uv_timer_stop(&r->kick);
    uv_timer_stop(&r->wakeup);
    r->wake_at = 0;
    json_object_clear(r->touched);
    json_object_clear(r->wake);
    json_object_clear(r->rest);
  }
}

static void closed(uv_handle_t *h) {
  struct reconciler *r = h->data;
  r->closing--;
  maybe_free(r);
}

void reconciler_free(struct reconciler *r) {
  if (!r)
    return;
  r->leader = false;
  r->stopped = true;
  store_unwatch(r->m->store, r->watch_id);
  r->closing = 2;
  uv_close((uv_handle_t *)&r->kick, closed);
  uv_close((uv_handle_t *)&r->wakeup, closed);
}
