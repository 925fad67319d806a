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
struct store_change;

/* Fills out (initialized by the caller with orch_out_init, new_id set if
 * wanted) with one transaction per service that needs changes: updates
 * expect the object's current Version.Index, new tasks STORE_MUST_CREATE.
 * next_wakeup_ns is the earliest time a delay, monitor period or restart
 * window ends. Returns the number of transactions. */
int orchestrator_run(struct store *s, int64_t now_ns, struct orch_out *out);

/* The same for the services in service_ids only (an object ID -> any;
 * the ORCH_NODE_KEY entries are done first, see orchestrator_touched):
 * a service ID with no service runs that service's leftover tasks as
 * orphans. Each service done with is removed from service_ids; those the
 * budget ran out on stay (and out->more is set). The IDs of services that
 * asked for a wakeup are added to wake (when not NULL). The cost is that
 * of the services named, not of the store. rest (when not NULL) keeps
 * which replicated services their last run found at rest (ID -> its
 * verdict, an object), for orchestrator_touched. */
int orchestrator_run_services(struct store *s, int64_t now_ns,
                              struct orch_out *out, json_t *service_ids,
                              json_t *wake, json_t *rest);

/* A key of touched that names a node, not a service: ORCH_NODE_KEY + ID. */
#define ORCH_NODE_KEY "node:"

/* What store changes mean for the next orchestrator_run_services: the
 * services they touch are added to touched (a task's service, a changed
 * service, for a node that came or changed its spec, description or
 * state: the services with tasks on it and every global one). A node
 * that became unusable (down, drained, removed) is added as
 * ORCH_NODE_KEY + its ID instead of its tasks' services: run_services
 * walks its tasks and replaces those of plain replicated services
 * directly, in batches larger than ORCH_BATCH, leaving only the others'
 * services to a full run; *full
 * is set when every service must be looked at (a restore: n == 0; a
 * cluster change). Quiet changes touch nothing: a task stepping forward
 * on its way to running, and (with rest, orchestrator_run_services') the
 * status report of a history task of a service at rest: the verdict
 * counts history tasks by slot whatever their state, so it stands; and a
 * node pass's replacement of a task of a service at rest in its slot,
 * while the slot's history stays within the limit (what each slot
 * gained is kept in the service's verdict in rest). */
void orchestrator_touched(struct store *s, const struct store_change *ch,
                          size_t n, json_t *touched, bool *full, json_t *rest);
/* Adds every service and every task's ServiceID (tasks of removed
 * services) to touched: a full pass. */
void orchestrator_touch_all(struct store *s, json_t *touched);

/* swarmkit's IsTaskDirty: the task no longer matches what the service
 * asks for (its template, endpoint, or placement on its node). Scaling
 * leaves tasks clean. The `_up-to-date` task filter uses it. */
bool orchestrator_task_dirty(struct store *s, const json_t *svc,
                             const json_t *task);

#endif
