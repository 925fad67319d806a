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
  /* Pipelined orchestrator passes: while a pass's proposals commit, the
   * next one runs on the services no pass in flight worked on (up to
   * PIPE_PASSES more per cycle); each group of passes in flight is a
   * slot with its services, and its placements count in the loads
   * already (sched_load_expect). */
  uv_timer_t pipe;
  json_t *flight[2]; /* slot -> {service ID -> true} */
  int slot_inflight[2];
  int piped; /* passes run in this cycle while others were in flight */
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
/* Orchestrator passes a cycle may run while others' proposals commit,
 * before the allocator's and the scheduler's passes get their turn (they
 * wait for everything in flight: the allocator's view of the addresses
 * in use, and the pending tasks, must be whole). One pass in flight at a
 * time left the leader idle a third of a 100-service create from 100
 * clients at once (each pass waited for a commit: the leader's write,
 * a follower's ack). */
#define PIPE_PASSES 4
/* A later loop turn than the pass before it: libuv 1.44 runs a 0 ms
 * timer started from a timer callback in the same pass over the timers,
 * and two passes in one turn held a leader's loop 750 ms (session 30). */
#define PIPE_DELAY_MS 1

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
    json_decref(r->flight[0]);
    json_decref(r->flight[1]);
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

/* One proposal: its pipeline slot (-1: none) and the IDs of the new
 * tasks it placed, expected in the loads until it is decided. */
struct proposal {
  struct reconciler *r;
  int slot;
  json_t *expected;
};

static void pipe_cb(uv_timer_t *t);

static void proposal_end(struct proposal *p) {
  struct reconciler *r = p->r;
  size_t i;
  json_t *id;
  json_array_foreach(p->expected, i, id)
      sched_load_unexpect(r->load, json_string_value(id));
  json_decref(p->expected);
  if (p->slot >= 0 && --r->slot_inflight[p->slot] == 0)
    json_object_clear(r->flight[p->slot]);
  free(p);
}

static void proposal_done(void *ud, int status, const sh_err *err) {
  struct proposal *p = ud;
  struct reconciler *r = p->r;
  int slot = p->slot;
  proposal_end(p);
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
  else if (r->inflight > 0 && slot >= 0 && r->slot_inflight[slot] == 0 &&
           r->leader)
    uv_timer_start(&r->pipe, pipe_cb, PIPE_DELAY_MS, 0); /* a slot is free */
}

/* A node pass's transaction refused (a stale version, a service whose
 * spec moved on): it held several services' replacements, and only the
 * change that beat it is known to have touched its own service, so
 * every service is looked at again. Rare: nodes' tasks rarely change
 * under a node pass. */
static void node_proposal_done(void *ud, int status, const sh_err *err) {
  struct reconciler *r = ((struct proposal *)ud)->r;
  if (status < 0 && !r->stopped)
    r->full = true;
  proposal_done(ud, status, err);
}

static void expect_placed(json_t *t, void *ud) {
  struct proposal *p = ud;
  if (!*jx_str(t, "NodeID", ""))
    return;
  sched_load_expect(p->r->load, t);
  json_array_append_new(p->expected, json_string(jx_str(t, "ID", "")));
}

/* slot >= 0: an orchestrator pass's, whose placements the loads expect
 * until each proposal is decided. */
static void propose_all(struct reconciler *r, struct orch_out *out, int slot) {
  for (size_t i = 0; i < out->ntx; i++) {
    struct store_tx *tx = out->txs[i];
    out->txs[i] = NULL;
    struct proposal *p = xcalloc(1, sizeof *p);
    p->r = r;
    p->slot = slot;
    p->expected = json_array();
    if (slot >= 0) {
      store_tx_each_new(tx, STORE_TASK, expect_placed, p);
      r->slot_inflight[slot]++;
    }
    sh_err err = {0};
    r->inflight++;
    if (manager_propose(r->m, tx,
                        i < out->node_ntx ? node_proposal_done : proposal_done,
                        p, &err) < 0) {
      r->inflight--;
      proposal_end(p);
    }
  }
  out->ntx = 0;
  if (slot >= 0 && r->slot_inflight[slot] == 0)
    json_object_clear(r->flight[slot]); /* nothing of it in flight */
}

static int free_slot(const struct reconciler *r) {
  for (int i = 0; i < 2; i++)
    if (r->slot_inflight[i] == 0)
      return i;
  return -1;
}

/* The orchestrator, then the scheduler on the tasks it makes. The
 * services it worked on go in slot's set. */
static void orchestrate(struct reconciler *r, int64_t now, int slot,
                        struct orch_out *out, struct sched_placed *placed) {
  struct store *s = r->m->store;
  out->budget = PASS_BATCH;
  out->ran = slot >= 0 ? r->flight[slot] : NULL;
  orchestrator_run_services(s, now, out, r->touched, r->wake, r->rest);
  /* The tasks it makes go in already placed: one commit for a batch
   * of new tasks, not one to create them and one to place them. */
  scheduler_place_new(s, now, out, r->load, PLACE_NEW_MS * NS_PER_MS, placed);
  /* Keep the earliest wakeup: this pass saw only some services. */
  if (out->next_wakeup_ns > 0 &&
      (r->wake_at == 0 || out->next_wakeup_ns < r->wake_at)) {
    int64_t ms = (out->next_wakeup_ns - now) / NS_PER_MS;
    r->wake_at = out->next_wakeup_ns;
    uv_timer_start(&r->wakeup, on_wakeup, ms > 0 ? (uint64_t)ms : 1, 0);
  }
}

/* Another orchestrator pass while the last one's proposals commit, on
 * the touched services no pass in flight worked on, so the leader works
 * while raft does. Not for nodes gone (their passes walk tasks that the
 * entries in flight replace) nor a full pass. */
static void run_piped(struct reconciler *r) {
  int slot = free_slot(r);
  if (!r->leader || r->stopped || r->inflight == 0 || r->pass != 1 || r->full ||
      slot < 0 || r->piped >= PIPE_PASSES)
    return;
  cleanup_json json_t *held = json_object();
  const char *k;
  json_t *v;
  void *tmp;
  json_object_foreach_safe(r->touched, tmp, k, v) {
    if (strncmp(k, ORCH_NODE_KEY, strlen(ORCH_NODE_KEY)) == 0 ||
        json_object_get(r->flight[0], k) || json_object_get(r->flight[1], k)) {
      json_object_set(held, k, v);
      json_object_del(r->touched, k);
    }
  }
  if (json_object_size(r->touched) > 0) {
    r->piped++;
    struct orch_out out;
    orch_out_init(&out);
    struct sched_placed placed = {0};
    orchestrate(r, clock_wall_ns(), slot, &out, &placed);
    if (out.more)
      r->dirty = r->batching = true; /* run again for the rest */
    propose_all(r, &out, slot);
    orch_out_free(&out);
  }
  json_object_update(r->touched, held);
}

static void pipe_cb(uv_timer_t *t) {
  run_piped(t->data);
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
  int slot = -1;
  /* Pass 0: orchestrator, and the scheduler on the tasks it makes that
   * need no addresses; pass 1 (after its proposals are applied):
   * allocator, which gives new tasks their network addresses; pass 2:
   * scheduler, which places allocated tasks. One reconcile takes a new
   * task from creation to a node. */
  switch (r->pass) {
  case 0:
    r->dirty = false;
    r->batching = false;
    r->piped = 0;
    if (r->full) {
      r->full = false;
      json_object_clear(r->rest); /* every service runs again */
      orchestrator_touch_all(s, r->touched);
    }
    slot = free_slot(r); /* none in flight: 0 */
    orchestrate(r, now, slot, &out, &placed);
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
  propose_all(r, &out, slot);
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
  if (r->inflight > 0) {
    if (pass == 0)
      uv_timer_start(&r->pipe, pipe_cb, PIPE_DELAY_MS, 0);
    return; /* proposal_done runs the next pass */
  }
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
  uv_timer_init(m->loop, &r->pipe);
  r->kick.data = r->wakeup.data = r->pipe.data = r;
  r->flight[0] = json_object();
  r->flight[1] = json_object();
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
    uv_timer_stop(&r->pipe);
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
  r->closing = 3;
  uv_close((uv_handle_t *)&r->pipe, closed);
  uv_close((uv_handle_t *)&r->kick, closed);
  uv_close((uv_handle_t *)&r->wakeup, closed);
}
