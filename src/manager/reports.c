/* The leader's queue of task status reports (see reports.h). */
#include "manager/reports.h"

#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/util.h"
#include "store/store.h"

#include <stdbool.h>
#include <stdlib.h>
#include <sys/queue.h>

/* The waiters whose reports were gathered together, and the entries
 * carrying those reports. Answered once it is closed (all its reports
 * proposed) and none of its entries is in flight: with the first
 * failure of any part, else 0. */
struct group {
  struct reports *r; /* NULL once the queue is gone */
  void (*answer)(void *waiter, int status, const sh_err *err);
  void **waiters;
  size_t n, cap;
  size_t entries; /* in flight */
  bool closed;
  sh_err err; /* err.status != 0 once a part failed */
  TAILQ_ENTRY(group) link;
};

struct reports {
  struct reports_ops ops;
  /* Reports not yet proposed ("node/task" -> {ID, Node, Status}): all of
   * them the open group's. */
  json_t *pending;
  struct group *open;         /* the group new waiters join, or NULL */
  TAILQ_HEAD(, group) groups; /* every group not yet answered */
  size_t per_entry, max_in_flight, in_flight;
  bool split; /* the open group's reports go in several entries */
};

struct reports *reports_new(const struct reports_ops *ops, size_t per_entry,
                            size_t in_flight) {
  struct reports *r = xcalloc(1, sizeof *r);
  r->ops = *ops;
  r->pending = json_object();
  TAILQ_INIT(&r->groups);
  r->per_entry = per_entry ? per_entry : 1;
  r->max_in_flight = in_flight ? in_flight : 1;
  return r;
}

static struct group *open_group(struct reports *r) {
  if (!r->open) {
    r->open = xcalloc(1, sizeof *r->open);
    r->open->r = r;
    r->open->answer = r->ops.answer;
    TAILQ_INSERT_TAIL(&r->groups, r->open, link);
  }
  return r->open;
}

/* Its waiters are answered once nothing of it is left to do. */
static void group_settle(struct group *g) {
  if (!g->closed || g->entries)
    return;
  if (g->r)
    TAILQ_REMOVE(&g->r->groups, g, link);
  for (size_t i = 0; i < g->n; i++)
    g->answer(g->waiters[i], g->err.status ? -1 : 0,
              g->err.status ? &g->err : NULL);
  free(g->waiters);
  free(g);
}

/* No more reports join g (with its waiters answered as settled). */
static void group_close(struct group *g) {
  g->closed = true;
  if (g->r && g->r->open == g) {
    g->r->open = NULL;
    g->r->split = false;
  }
}

/* A part failed: the whole group fails (its nodes send everything
 * again), and its reports not yet proposed are not. */
static void group_fail(struct group *g, const sh_err *err) {
  if (!g->err.status) {
    if (err && err->status)
      g->err = *err;
    else
      sh_error(&g->err, 500, "%s",
               err && err->msg[0] ? err->msg : "task status update failed");
  }
  if (g->r && g->r->open == g) {
    json_object_clear(g->r->pending);
    group_close(g);
  }
  group_settle(g);
}

static void reports_flush(struct reports *r);

static void entry_done(void *ud, int status, const sh_err *err) {
  struct group *g = ud;
  struct reports *r = g->r;
  g->entries--;
  if (r)
    r->in_flight--;
  if (status < 0)
    group_fail(g, err); /* may settle g */
  else
    group_settle(g);
  if (r)
    reports_flush(r);
}

/* One entry of the open group's pending reports, at most per_entry. */
static void propose_next(struct reports *r) {
  struct group *g = r->open;
  struct store_tx *tx = store_tx_new();
  size_t taken = 0, waiting = json_object_size(r->pending);
  const char *key;
  json_t *v;
  void *tmp;
  json_object_foreach_safe(r->pending, tmp, key, v) {
    if (taken == r->per_entry)
      break;
    store_tx_task_status(tx, jx_str(v, "ID", ""), jx_str(v, "Node", ""),
                         json_incref(json_object_get(v, "Status")));
    json_object_del(r->pending, key);
    taken++;
  }
  if (json_object_size(r->pending)) {
    if (!r->split) /* once per group */
      log_info("task status: %zu reports waiting, proposed in entries of "
               "at most %zu, %zu at a time",
               waiting, r->per_entry, r->max_in_flight);
    r->split = true;
  } else {
    group_close(g);
  }
  if (store_tx_empty(tx)) { /* its waiters' reports all left out */
    store_tx_free(tx);
    group_settle(g);
    return;
  }
  g->entries++;
  r->in_flight++;
  sh_err err = {0};
  if (r->ops.propose(r->ops.ud, tx, entry_done, g, &err) < 0) {
    g->entries--;
    r->in_flight--;
    group_fail(g, &err);
  }
}

static void reports_flush(struct reports *r) {
  while (r->open && r->in_flight < r->max_in_flight) {
    /* Beside an entry in flight, another only for a backlog: otherwise
     * the reports wait for it together, and a task's newer status
     * replaces its older one before either is proposed. */
    if (r->in_flight &&
        json_object_size(r->pending) < r->per_entry * r->max_in_flight)
      return;
    propose_next(r);
  }
}

void reports_put(struct reports *r, const char *node_id, const char *task_id,
                 json_t *status) {
  open_group(r);
  char key[512];
  snprintf(key, sizeof key, "%s/%s", node_id, task_id);
  json_object_set_new(r->pending, key,
                      json_pack("{s:s, s:s, s:o}", "ID", task_id, "Node",
                                node_id, "Status", status));
}

void reports_wait(struct reports *r, void *waiter) {
  struct group *g = open_group(r);
  if (g->n == g->cap) {
    g->cap = g->cap ? 2 * g->cap : 16;
    g->waiters = xrealloc(g->waiters, g->cap * sizeof *g->waiters);
  }
  g->waiters[g->n++] = waiter;
  reports_flush(r);
}

void reports_drop(struct reports *r, int status, const char *msg) {
  if (!r->open)
    return;
  sh_err err = {0};
  sh_error(&err, status, "%s", msg);
  group_fail(r->open, &err);
}

void reports_free(struct reports *r, const char *msg) {
  if (!r)
    return;
  reports_drop(r, 503, msg);
  struct group *g;
  while ((g = TAILQ_FIRST(&r->groups))) {
    TAILQ_REMOVE(&r->groups, g, link);
    g->r = NULL;
  }
  json_decref(r->pending);
  free(r);
}
