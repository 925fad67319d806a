/* The leader's queue of task status reports from the nodes: every node's
 * reports go into raft entries of task_status ops (a merge each manager
 * applies, so no report fails for another's change), at most per_entry
 * reports an entry and at most in_flight entries in flight. Each node's
 * request (a waiter) is answered once every report it brought has
 * committed, or failed, so a node has one report request in flight and
 * its newer updates wait with it (they coalesce, one status per task).
 *
 * Reports are proposed when no entry is in flight (a group commit: the
 * reports arriving meanwhile wait together, a task's later status
 * replacing its earlier one); beside entries in flight only full entries
 * go, and only while at least in_flight entries' worth waits, so a
 * backlog drains several entries a round while a trickle keeps
 * coalescing. */
#ifndef SHOAL_MANAGER_REPORTS_H
#define SHOAL_MANAGER_REPORTS_H

#include <jansson.h>
#include <stddef.h>

struct sh_err;
struct store_tx;

typedef void (*reports_done_fn)(void *ud, int status, const struct sh_err *err);

struct reports_ops {
  /* Proposes tx (stolen) as one raft entry: 0, and done(done_ud) is
   * called once with the verdict; or -1 and err, and done never is. */
  int (*propose)(void *ud, struct store_tx *tx, reports_done_fn done,
                 void *done_ud, struct sh_err *err);
  /* Answers a waiter: status 0, or -1 and err, its status set (the node
   * sends again). */
  void (*answer)(void *waiter, int status, const struct sh_err *err);
  void *ud;
};

struct reports;
struct reports *reports_new(const struct reports_ops *ops, size_t per_entry,
                            size_t in_flight);
/* Detaches the entries in flight (their waiters are still answered when
 * raft is done with them) and refuses the waiters of reports not yet
 * proposed with 503 and msg. */
void reports_free(struct reports *r, const char *msg);

/* A node's report of its task's status (stolen), for the next
 * reports_wait: it replaces an earlier one of that task not yet
 * proposed. */
void reports_put(struct reports *r, const char *node_id, const char *task_id,
                 json_t *status);
/* The waiter of every report put since the last call; may propose. */
void reports_wait(struct reports *r, void *waiter);
/* The reports not yet proposed are dropped and their waiters refused
 * (status and msg); the entries in flight are answered as raft decides
 * (another manager took over: the nodes send again to it). */
void reports_drop(struct reports *r, int status, const char *msg);

#endif
