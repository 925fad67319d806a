#include "test.h"

#include "core/err.h"
#include "manager/reports.h"
#include "store/store.h"

#include <stdio.h>

/* A raft that holds every proposed entry until the test says how it
 * ended, and nodes' requests that record their answer. */
struct fake_entry {
  size_t ops;
  json_t *ids; /* the tasks it reports */
  reports_done_fn done;
  void *done_ud;
  bool ended;
};

struct fake {
  struct fake_entry e[512]; /* more than the property test's reports */
  size_t n;
  bool refuse;         /* the next proposal fails (not the leader) */
  size_t per;          /* the queue's per_entry */
  bool partial_beside; /* an entry under per proposed beside others */
};

struct waiter {
  int answered; /* times */
  int status;
  int err_status;
  /* Its tasks first..first+n-1: answered 0 only once each is in an
   * entry that ended, and in none still in flight (else early). */
  const struct fake *f;
  int first, n;
  bool early;
};

static bool entry_has(const struct fake_entry *e, const char *id) {
  size_t i;
  json_t *v;
  json_array_foreach(e->ids, i, v) {
    if (strcmp(json_string_value(v), id) == 0)
      return true;
  }
  return false;
}

static int fake_propose(void *ud, struct store_tx *tx, reports_done_fn done,
                        void *done_ud, sh_err *err) {
  struct fake *f = ud;
  size_t ops = store_tx_ops(tx);
  json_t *doc = store_tx_doc(tx, 0), *ids = json_array();
  store_tx_free(tx);
  size_t i;
  json_t *op;
  json_array_foreach(json_object_get(doc, "ops"), i, op) {
    json_array_append(ids, json_object_get(op, "id"));
  }
  json_decref(doc);
  if (f->refuse) {
    json_decref(ids);
    return sh_error(err, 503, "no leader");
  }
  for (size_t k = 0; k < f->n; k++)
    if (!f->e[k].ended && ops < f->per)
      f->partial_beside = true;
  f->e[f->n++] = (struct fake_entry){ops, ids, done, done_ud, false};
  return 0;
}

static void fake_answer(void *waiter, int status, const sh_err *err) {
  struct waiter *w = waiter;
  w->answered++;
  w->status = status;
  w->err_status = err ? err->status : 0;
  for (int t = w->first; status == 0 && w->f && t < w->first + w->n; t++) {
    char id[32];
    snprintf(id, sizeof id, "task%04d", t);
    bool ended = false;
    for (size_t i = 0; i < w->f->n; i++) {
      if (!entry_has(&w->f->e[i], id))
        continue;
      if (!w->f->e[i].ended)
        w->early = true;
      ended = true;
    }
    if (!ended)
      w->early = true;
  }
}

static void fake_free(struct fake *f) {
  for (size_t i = 0; i < f->n; i++)
    json_decref(f->e[i].ids);
}

static struct reports *fake_queue(struct fake *f, size_t per_entry,
                                  size_t in_flight) {
  struct reports_ops ops = {
      .propose = fake_propose, .answer = fake_answer, .ud = f};
  f->per = per_entry;
  return reports_new(&ops, per_entry, in_flight);
}

static size_t in_flight(const struct fake *f) {
  size_t k = 0;
  for (size_t i = 0; i < f->n; i++)
    k += !f->e[i].ended;
  return k;
}

static void end(struct fake *f, size_t i, int status) {
  sh_err err = {0};
  if (status < 0)
    sh_error(&err, 503, "leadership lost");
  f->e[i].ended = true;
  f->e[i].done(f->e[i].done_ud, status, status < 0 ? &err : NULL);
}

/* Reports of tasks first..first+n-1 on node. */
static void put(struct reports *r, const char *node, int first, int n,
                const char *state) {
  for (int i = first; i < first + n; i++) {
    char id[32];
    snprintf(id, sizeof id, "task%04d", i);
    reports_put(r, node, id, json_pack("{s:s}", "State", state));
  }
}

TEST(reports_group_commit_one_entry_while_one_is_in_flight) {
  struct fake f = {0};
  struct reports *r = fake_queue(&f, 10, 4);
  struct waiter a = {0}, b = {0}, c = {0};
  put(r, "nodeA", 0, 3, "starting");
  reports_wait(r, &a);
  CHECK_INT_EQ(f.n, 1);
  CHECK_INT_EQ(f.e[0].ops, 3);
  /* Fewer than an entry's worth beside one in flight: they wait for it,
   * and a task's newer status replaces its older one. */
  put(r, "nodeB", 3, 2, "starting");
  reports_wait(r, &b);
  put(r, "nodeC", 5, 1, "starting");
  put(r, "nodeC", 5, 1, "running");
  reports_wait(r, &c);
  CHECK_INT_EQ(f.n, 1);
  end(&f, 0, 0);
  CHECK(a.answered == 1 && a.status == 0);
  CHECK(!b.answered && !c.answered);
  CHECK_INT_EQ(f.n, 2);
  CHECK_INT_EQ(f.e[1].ops, 3);
  end(&f, 1, 0);
  CHECK(b.answered == 1 && b.status == 0 && c.answered == 1 && c.status == 0);
  CHECK_INT_EQ(in_flight(&f), 0);
  /* A request whose reports were all left out is answered at once. */
  struct waiter d = {0};
  reports_wait(r, &d);
  CHECK(d.answered == 1 && d.status == 0);
  CHECK_INT_EQ(f.n, 2);
  reports_free(r, "bye");
  fake_free(&f);
}

TEST(reports_backlog_goes_in_full_entries_several_in_flight) {
  struct fake f = {0};
  struct reports *r = fake_queue(&f, 10, 3);
  struct waiter a = {.f = &f, .first = 0, .n = 65};
  struct waiter b = {.f = &f, .first = 100, .n = 4};
  put(r, "nodeA", 0, 65, "running");
  reports_wait(r, &a);
  /* A backlog (three entries' worth waits): three full entries at once. */
  CHECK_INT_EQ(f.n, 3);
  for (size_t i = 0; i < 3; i++)
    CHECK_INT_EQ(f.e[i].ops, 10);
  put(r, "nodeB", 100, 4, "running");
  reports_wait(r, &b); /* joins the 35 not yet proposed */
  CHECK_INT_EQ(f.n, 3);
  end(&f, 1, 0); /* out of order: raft answers in order, the queue needn't */
  CHECK_INT_EQ(f.n, 4);
  CHECK_INT_EQ(f.e[3].ops, 10);
  /* 29 left, under three entries' worth: they wait for the ones in
   * flight, then go one entry at a time. */
  end(&f, 0, 0);
  end(&f, 2, 0);
  CHECK_INT_EQ(f.n, 4);
  end(&f, 3, 0);
  CHECK_INT_EQ(f.n, 5);
  CHECK_INT_EQ(f.e[4].ops, 10);
  end(&f, 4, 0);
  CHECK_INT_EQ(f.n, 6);
  end(&f, 5, 0);
  CHECK_INT_EQ(f.n, 7);
  CHECK_INT_EQ(f.e[6].ops, 9);
  /* Every report of a and b is in an entry; neither is answered before
   * the last of them commits. */
  CHECK(!a.answered && !b.answered);
  struct waiter c = {0};
  put(r, "nodeC", 200, 1, "running");
  reports_wait(r, &c);
  CHECK_INT_EQ(f.n, 7);
  end(&f, 6, 0);
  CHECK(a.answered == 1 && a.status == 0 && b.answered == 1 && b.status == 0);
  CHECK(!a.early && !b.early);
  CHECK(!c.answered);
  CHECK_INT_EQ(f.n, 8);
  CHECK_INT_EQ(f.e[7].ops, 1);
  end(&f, 7, 0);
  CHECK(c.answered == 1 && c.status == 0);
  size_t total = 0;
  for (size_t i = 0; i < f.n; i++)
    total += f.e[i].ops;
  CHECK_INT_EQ(total, 65 + 4 + 1);
  reports_free(r, "bye");
  fake_free(&f);
}

TEST(reports_part_failed_fails_its_whole_group_only) {
  struct fake f = {0};
  struct reports *r = fake_queue(&f, 10, 3);
  struct waiter a = {0}, b = {0};
  put(r, "nodeA", 0, 55, "running");
  reports_wait(r, &a);
  CHECK_INT_EQ(f.n, 3);
  end(&f, 0, -1);
  /* The group's other reports are not proposed; a waits for the parts
   * in flight and then fails: its node sends them all again. */
  CHECK_INT_EQ(f.n, 3);
  CHECK(!a.answered);
  put(r, "nodeB", 100, 2, "running");
  reports_wait(r, &b); /* a new group, beside the two in flight */
  CHECK_INT_EQ(f.n, 3);
  end(&f, 1, 0);
  end(&f, 2, 0);
  CHECK(a.answered == 1 && a.status == -1 && a.err_status == 503);
  CHECK_INT_EQ(f.n, 4);
  CHECK_INT_EQ(f.e[3].ops, 2);
  end(&f, 3, 0);
  CHECK(b.answered == 1 && b.status == 0);
  /* A proposal refused (not the leader): answered at once, nothing kept. */
  struct waiter c = {0}, d = {0};
  f.refuse = true;
  put(r, "nodeC", 300, 2, "running");
  reports_wait(r, &c);
  CHECK(c.answered == 1 && c.status == -1 && c.err_status == 503);
  f.refuse = false;
  reports_wait(r, &d);
  CHECK(d.answered == 1 && d.status == 0);
  CHECK_INT_EQ(f.n, 4);
  reports_free(r, "bye");
  fake_free(&f);
}

TEST(reports_drop_and_free_answer_every_waiter_once) {
  struct fake f = {0};
  struct reports *r = fake_queue(&f, 10, 2);
  struct waiter a = {0}, b = {0}, c = {0};
  put(r, "nodeA", 0, 35, "running");
  reports_wait(r, &a);
  CHECK_INT_EQ(f.n, 2);
  /* Leadership lost: the 15 not proposed are dropped, a fails once its
   * entries are done. */
  reports_drop(r, 503, "no leader");
  CHECK(!a.answered);
  put(r, "nodeB", 100, 3, "running");
  reports_wait(r, &b);
  CHECK_INT_EQ(f.n, 2); /* both places taken: b waits */
  /* The manager shuts down with entries in flight: b is refused now, a
   * when raft is done with its entries (after the queue is gone). */
  reports_free(r, "the manager is shutting down");
  CHECK(b.answered == 1 && b.status == -1 && b.err_status == 503);
  CHECK(!a.answered);
  end(&f, 0, 0);
  CHECK(!a.answered);
  end(&f, 1, 0);
  CHECK(a.answered == 1 && a.status == -1 && a.err_status == 503);
  CHECK(!c.answered);
  fake_free(&f);
}

/* Random puts, waits and endings against a brute-force account: every
 * waiter answered exactly once, never before its reports are all in
 * ended entries, never more than in_flight entries at once, and each
 * entry at most per_entry reports. */
TEST(reports_property_every_waiter_answered_once_after_its_entries) {
  uint64_t seed = 0x9e3779b97f4a7c15ULL;
  for (int round = 0; round < 40; round++) {
    struct fake f = {0};
    size_t per = 1 + test_rnd(&seed, 6), fly = 1 + test_rnd(&seed, 4);
    struct reports *r = fake_queue(&f, per, fly);
    struct waiter w[24] = {{0}};
    size_t nw = 0, steps = 0;
    int task = 0;
    while (steps++ < 400 && (nw < 24 || in_flight(&f))) {
      unsigned what = test_rnd(&seed, 3);
      if (what == 0 && nw < 24 && f.n < 60) {
        int n = (int)test_rnd(&seed, 3 * (unsigned)per);
        put(r, "node", task, n, "x");
        w[nw] = (struct waiter){.f = &f, .first = task, .n = n};
        task += 50;
        reports_wait(r, &w[nw++]);
      } else if (in_flight(&f)) {
        size_t k;
        do
          k = test_rnd(&seed, (unsigned)f.n);
        while (f.e[k].ended);
        end(&f, k, test_rnd(&seed, 10) ? 0 : -1);
      }
      if (in_flight(&f) > fly)
        FAIL_("round %d: %zu entries in flight, at most %zu", round,
              in_flight(&f), fly);
    }
    if (f.partial_beside)
      FAIL_("round %d: a part under an entry proposed beside others", round);
    for (size_t i = 0; i < f.n; i++)
      if (f.e[i].ops == 0 || f.e[i].ops > per)
        FAIL_("round %d: entry %zu of %zu reports (at most %zu)", round, i,
              f.e[i].ops, per);
    /* Nothing in flight and no more requests: every waiter answered. */
    for (size_t i = 0; i < nw; i++)
      if (w[i].answered != 1 || w[i].early)
        FAIL_("round %d: waiter %zu answered %d times%s", round, i,
              w[i].answered,
              w[i].early ? ", before its reports committed" : "");
    reports_free(r, "bye");
    fake_free(&f);
  }
}
