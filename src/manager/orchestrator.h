/* The orchestrator: leader-side logic that moves tasks toward the service
 * specs, as a pure function of the store and the time (no I/O, no clock).
 * One run does, per service (swarmkit's replicated and global
 * orchestrators, restart supervisor, update supervisor, task reaper):
 *  - restarts: a task that stopped while desired running, or whose node is
 *    down, drained or gone, is shut down and replaced per its
 *    RestartPolicy (condition, Delay, MaxAttempts within Window); a delayed
 *    replacement waits in DesiredState "ready" until its delay passed and
 *    the old task stopped (or a minute went by);
 *  - replicated services keep slots 1..Replicas; scaling down removes slots
 *    on the nodes with most copies, non-running ones first;
 *  - global services keep one task per node that is not drained or down
 *    and satisfies the constraints (paused nodes get nothing new);
 *  - rolling updates in batches of UpdateConfig.Parallelism with Delay and
 *    Monitor, FailureAction pause|continue|rollback, Order
 *    stop-first|start-first, reported in Service.UpdateStatus;
 *  - tasks of removed services get DesiredState "remove"; such tasks and
 *    history beyond the cluster's TaskHistoryRetentionLimit are deleted.
 * New tasks are made in state "pending" (no allocator yet) for the
 * scheduler. */
#ifndef SHOAL_MANAGER_ORCHESTRATOR_H
#define SHOAL_MANAGER_ORCHESTRATOR_H

#include "manager/orchtask.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct store;

/* Fills out (initialized by the caller with orch_out_init, new_id set if
 * wanted) with one transaction per service that needs changes: updates
 * expect the object's current Version.Index, new tasks STORE_MUST_CREATE.
 * next_wakeup_ns is the earliest time a delay, monitor period or restart
 * window ends. Returns the number of transactions. */
int orchestrator_run(struct store *s, int64_t now_ns, struct orch_out *out);

/* swarmkit's IsTaskDirty: the task no longer matches what the service
 * asks for (its template, endpoint, or placement on its node). Scaling
 * leaves tasks clean. The `_up-to-date` task filter uses it. */
bool orchestrator_task_dirty(struct store *s, const json_t *svc,
                             const json_t *task);

#endif
