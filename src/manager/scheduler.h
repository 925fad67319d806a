/* The scheduler: assigns pending tasks to nodes, as a pure function of the
 * store (swarmkit's manager/scheduler). Filters, in swarmkit's order:
 * node ready and active, reservations within the node's resources minus
 * those of the tasks already there, placement constraints, platforms,
 * host-mode published ports, Placement.MaxReplicas. Among the nodes left:
 * Placement.Preferences spread over a label (fewest tasks of the service
 * per label value, level by level), then fewest tasks of this service,
 * then fewest tasks in total. An assigned task gets NodeID and state
 * "assigned"; one that fits nowhere stays pending with swarmkit's
 * explanation in Status.Err ("no suitable node (scheduling constraints not
 * satisfied on 3 nodes)"). Tasks made for a node (global services) are
 * checked against it ("scheduler confirmed task can run on preassigned
 * node"). */
#ifndef SHOAL_MANAGER_SCHEDULER_H
#define SHOAL_MANAGER_SCHEDULER_H

#include "manager/orchtask.h"

#include <stddef.h>
#include <stdint.h>

struct store;

/* One transaction per service with decisions; every task put expects the
 * version it was read at. now_ns stamps Status.Timestamp. Returns the
 * number of transactions. */
int scheduler_run(struct store *s, int64_t now_ns, struct orch_out *out);

/* The tasks each node holds as the scheduler counts them (reservations,
 * host ports, tasks per service), kept from store changes so that a run
 * does not walk every task: every manager's reconciler feeds it every
 * change (sched_load_follow; sched_load_invalidate after a gap in the
 * feed, and the next run rebuilds it from the store). scheduler_run uses
 * a fresh one each time. */
struct sched_load;
struct store_change;
struct sched_load *sched_load_new(void);
void sched_load_free(struct sched_load *l);
void sched_load_invalidate(struct sched_load *l);
void sched_load_changes(struct sched_load *l, const struct store_change *ch,
                        size_t n);
/* As a store watcher on every manager, leader or not: the changes are
 * added in, and a restore (n == 0) or a load not yet made is made from
 * the store s (which holds the changes already). So a new leader has the
 * loads and its first run does not walk every task (about a second of
 * its loop at 100,000 tasks). */
void sched_load_follow(struct sched_load *l, struct store *s,
                       const struct store_change *ch, size_t n);
int scheduler_run_load(struct store *s, int64_t now_ns, struct orch_out *out,
                       struct sched_load *l);
/* A task placed by a proposal not yet applied (the leader's pipelined
 * passes: a pass runs while the previous one's entry commits) counts in
 * l from now, so the next placements see it; its apply (the new task of
 * that ID) takes the expectation's place, and sched_load_unexpect drops
 * one whose entry did not apply (a no-op once applied). A task without
 * a NodeID is not counted. */
void sched_load_expect(struct sched_load *l, json_t *task);
void sched_load_unexpect(struct sched_load *l, const char *task_id);
/* The same decisions for the tasks out's transactions create (not yet
 * proposed), made on them in place: a task goes into the store already
 * assigned, or pending with the reason it fits nowhere, in the entry
 * that creates it rather than one commit later. After budget_ns the rest
 * are left pending for scheduler_run_load (the loop turn stays short
 * when a pass makes thousands of tasks of many services). */
struct sched_placed {
  size_t placed, left;
  int64_t took_ns;
};
void scheduler_place_new(struct store *s, int64_t now_ns, struct orch_out *out,
                         struct sched_load *l, int64_t budget_ns,
                         struct sched_placed *res);

#endif
