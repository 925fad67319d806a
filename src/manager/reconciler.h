/* The leader's reconcile loop: runs the orchestrator, then the scheduler,
 * whenever the store changes (coalesced: at most one run per loop turn)
 * and when a delay they asked for ends. A run's transactions are all
 * proposed before the next run starts, so no decision is taken twice over
 * a store that does not show the previous one yet; the exception is an
 * orchestrator pass pipelined behind the last one (while its proposals
 * commit), which works only on services no pass in flight worked on and
 * places its tasks on loads that count the placements in flight. Runs on
 * the leader only (reconciler_set_leader). */
#ifndef SHOAL_MANAGER_RECONCILER_H
#define SHOAL_MANAGER_RECONCILER_H

#include <stdbool.h>

struct manager;
struct reconciler;

struct reconciler *reconciler_new(struct manager *m);
void reconciler_set_leader(struct reconciler *r, bool leader);
void reconciler_free(struct reconciler *r);

#endif
