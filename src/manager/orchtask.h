/* Shared pieces of the leader's pure service logic (orchestrator.c,
 * scheduler.c): task states in swarmkit's order, spec lookups with Docker's
 * defaults, new tasks, and the output both produce.
 *
 * Bookkeeping stored on objects (keys starting with '_', hidden from the
 * API):
 *   Service "_SpecVersion"          Version.Index the current Spec was set
 *                                   at (swarmkit's SpecVersion; 0 at create)
 *   Service "_PreviousSpecVersion"  the same for PreviousSpec
 *   Service "_Update"               the update supervisor's progress
 *   Task "_SpecVersion"             the service's _SpecVersion it was made
 *                                   from (`_up-to-date`: equal to the
 *                                   service's)
 *   Task "_EndpointSpec"            the service's EndpointSpec it was made
 *                                   from (host-mode ports for the scheduler)
 *   Task "_Restart"                 {Count, SpecVersion, Times[]} restarts
 *                                   so far in this slot (MaxAttempts/Window)
 *   Task "_Start"                   {After, WaitFor[], Timeout}: a delayed
 *                                   start (DesiredState "ready" until then) */
#ifndef SHOAL_MANAGER_ORCHTASK_H
#define SHOAL_MANAGER_ORCHTASK_H

#include "core/id.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;
struct store_tx;

/* swarmkit's TaskState order; comparisons between states are meaningful. */
enum task_state {
  TS_NEW = 0,
  TS_ALLOCATED,
  TS_PENDING,
  TS_ASSIGNED,
  TS_ACCEPTED,
  TS_PREPARING,
  TS_READY,
  TS_STARTING,
  TS_RUNNING,
  TS_COMPLETE,
  TS_SHUTDOWN,
  TS_FAILED,
  TS_REJECTED,
  TS_REMOVE,
  TS_ORPHANED,
};
/* "running" -> TS_RUNNING; unknown strings -> TS_NEW. */
enum task_state task_state_parse(const char *s);
const char *task_state_name(enum task_state s);
enum task_state task_state(const json_t *task);   /* Status.State */
enum task_state task_desired(const json_t *task); /* DesiredState */
/* The store's rule for a node's status report (store_status_rule): the
 * Status to record, or NULL. States only move forward, and an end once
 * recorded stays as it was (a node that restarts reports the exited
 * containers it adopts again, which must not move the task's time in
 * history). Keys of the recorded status the report lacks (PortStatus)
 * are kept. */
json_t *task_status_rule(const json_t *task, const json_t *status);
/* Whether the rule would record the report (its state test alone). */
bool task_status_moves(const json_t *task, const json_t *status);

/* What the orchestrator and the scheduler produce: transactions to
 * propose (one per service, so one conflict does not block the others)
 * and when to run again even if the store does not change. The caller
 * proposes every tx, and runs again only once they have been applied or
 * rejected (a second run over the same store would repeat the work). */
/* Task changes per orchestrator or scheduler run. A run's transaction is
 * one raft entry, encoded, appended and applied on the loop thread. 1,000
 * tasks keep those steps within tens of milliseconds while a cycle
 * (orchestrator, commit, allocator, scheduler, commit) carries ten times
 * what 100 did: at 100 simulated nodes x 10,000 tasks the managers went
 * from ~460 to ~1,400 tasks/s with the machine no longer idle half the
 * time waiting for commits. */
#define ORCH_BATCH 1000
/* Placements per scheduler pass: as many as a pass over nodes that went
 * down makes replacements (4 x ORCH_BATCH changes, two a task). At
 * ORCH_BATCH, 100 nodes down got 2,000 replacements a cycle and 1,000
 * placements: half of the 10,000 waited for five more cycles after the
 * last replacement was made. A pass's cost is mostly its task groups'
 * views of the nodes, not the placements. */
#define PLACE_BATCH (2 * ORCH_BATCH)
/* Task creations and placements (each independent of the others) go in
 * raft entries of at most this many, so no one entry's apply holds a
 * manager's loop for long. */
#define ORCH_TX_MAX 250

struct orch_out {
  struct store_tx **txs;
  size_t ntx, cap;
  int64_t next_wakeup_ns; /* 0: no timer needed */
  /* Task changes (creations, updates, deletions) this run may still
   * decide; orch_out_init sets ORCH_BATCH. When it runs out, the rest
   * waits for a later run and `more` is set so the caller runs again. */
  int64_t budget;
  bool more;
  /* How many transactions at the front of txs are a node pass's, made
   * when out was empty: each holds several services' tasks, so one
   * refused leaves tasks that no service's run was told of. */
  size_t node_ntx;
  /* New object IDs; NULL means id_new(). Tests make them predictable. */
  void (*new_id)(char out[ID_LEN + 1], void *ud);
  void *id_ud;
  /* When set (an object, the caller's), orchestrator_run_services adds
   * the IDs of the services whose changes it made: each run that made a
   * transaction, done or cut short by the budget, and those a node pass
   * changed. The reconciler's pipelined pass leaves them alone until
   * those entries apply; a service the budget never reached is not in
   * it. */
  json_t *ran;
  /* node ID -> fit (bool), made as asked (orch_node_unfit): the store
   * does not change during a run, and a run over 100 services of 1,000
   * tasks asks about each of 1,000 nodes a hundred times. */
  json_t *node_fit;
};
void orch_out_init(struct orch_out *o);
/* Frees the transactions still held (those not taken by the caller). */
void orch_out_free(struct orch_out *o);
/* Takes ownership of tx (freed at once when empty). */
void orch_out_add(struct orch_out *o, struct store_tx *tx);
/* The transaction to put `need` more changes in: *tx while it has room
 * for them within max, else a new one (*tx handed to o first), so raft
 * entries stay small and changes decided together (a replacement's two)
 * stay in one. Callers hand the last one to o themselves. */
struct store_tx *orch_tx_room(struct orch_out *o, struct store_tx **tx,
                              size_t need, size_t max);
void orch_out_wake(struct orch_out *o, int64_t at_ns);

bool service_is_global(const json_t *svc);
/* Spec.Mode.ReplicatedJob or GlobalJob: tasks run to completion. */
bool service_is_job(const json_t *svc);
/* JobStatus.JobIteration.Index (0 when none). */
int64_t service_job_iteration(const json_t *svc);
/* What a task that may start is desired to reach: "complete" for a job's
 * task (it carries JobIteration), "running" otherwise. */
enum task_state task_run_state(const json_t *task);
/* Spec.Mode.Replicated.Replicas (1 when unset), at most
 * SERVICES_MAX_REPLICAS. */
int64_t service_replicas(const json_t *svc);
int64_t service_spec_version(const json_t *svc);
/* Time of the task's last status change (Status.Timestamp), 0 if none. */
int64_t task_timestamp(const json_t *task);
/* A new task of svc for slot (replicated) or node (global), desired
 * running (a job's: complete, with its JobIteration), in state "pending"
 * (there is no allocator yet). */
json_t *task_new(struct orch_out *o, const json_t *svc, int64_t slot,
                 const char *node_id, int64_t now_ns);
/* node_invalid of the node with this ID, remembered for o's run. */
bool orch_node_unfit(struct orch_out *o, struct store *s, const char *node_id);
/* Node no longer fit to run tasks: missing, down or drained. */
bool node_invalid(const json_t *node);

#endif
