/* The store's secondary indexes against a brute-force scan, over random
 * sequences of transactions (puts that move objects between keys, deletes,
 * refused transactions) and snapshot restores. */
#include "test.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "manager/orchtask.h"
#include "store/store.h"

#define T0 (INT64_C(1700000000) * NS_PER_SEC)
#define NIDS 24

/* Every value a field takes below; NULL leaves the field out. */
static const char *const services[] = {NULL, "svcA", "svcB", "svcC", ""};
static const char *const nodes[] = {NULL, "", "node1", "node2", "node3"};
static const char *const desired[] = {NULL, "running", "ready", "shutdown",
                                      "remove"};
static const char *const states[] = {NULL,       "new",    "pending", "running",
                                     "complete", "failed", "down"};
static const char *const names[] = {NULL, "web", "db", "cache", "queue"};
/* "" stands for an empty NetworksAttachments array. */
static const char *const nets[] = {NULL, "", "net1", "net2"};
static const char *const managers[] = {"manager"};
#define PICK(st, a) (a)[test_rnd(st, sizeof(a) / sizeof *(a))]

static void set_opt(json_t *o, const char *path, const char *v) {
  if (v)
    jx_set(o, path, json_string(v));
}

static json_t *rand_obj(uint64_t *st, enum store_kind k, const char *id) {
  json_t *o = json_pack("{s:s}", "ID", id);
  if (k == STORE_TASK) {
    set_opt(o, "ServiceID", PICK(st, services));
    set_opt(o, "NodeID", PICK(st, nodes));
    set_opt(o, "DesiredState", PICK(st, desired));
    set_opt(o, "Status.State", PICK(st, states));
    /* None, empty, or one or two networks (the first one is the key). */
    const char *net = PICK(st, nets);
    if (net && *net)
      json_object_set_new(
          o, "NetworksAttachments",
          test_rnd(st, 2) ? json_pack("[{s:{s:s}}]", "Network", "ID", net)
                          : json_pack("[{s:{s:s}}, {s:{s:s}}]", "Network", "ID",
                                      net, "Network", "ID", "ingress"));
    else if (net)
      json_object_set_new(o, "NetworksAttachments", json_array());
  } else if (k == STORE_NODE) {
    set_opt(o, "Status.State", PICK(st, states));
    /* A manager, a worker, or a ManagerStatus of null (a demotion's). */
    unsigned m = test_rnd(st, 3);
    if (m < 2)
      json_object_set_new(o, "ManagerStatus",
                          m ? json_pack("{s:s}", "Addr", "10.0.0.1:2377")
                            : json_null());
  } else {
    set_opt(o, "Spec.Name", PICK(st, names));
  }
  return o;
}

static enum store_kind rand_kind(uint64_t *st) {
  unsigned r = test_rnd(st, 5);
  return r < 2    ? STORE_TASK
         : r == 2 ? STORE_SERVICE
         : r == 3 ? STORE_NETWORK
                  : STORE_NODE;
}

/* One random op on tx: a create, an update (right version, any version,
 * or a stale one), or a delete. Returns false when it made a stale op. */
static bool rand_op(uint64_t *st, struct store *s, struct store_tx *tx) {
  enum store_kind k = rand_kind(st);
  char id[16];
  snprintf(id, sizeof id, "%c%02u", store_kind_name(k)[0], test_rnd(st, NIDS));
  json_t *cur = store_get(s, k, id);
  int64_t v = cur ? jx_int(cur, "Version.Index", 0) : STORE_MUST_CREATE;
  unsigned what = test_rnd(st, 10);
  bool stale = false;
  if (cur && what == 0) {
    v += 1000; /* never the current version */
    stale = true;
  } else if (what == 1) {
    v = STORE_ANY_VERSION;
  }
  if (k == STORE_TASK && what == 2) {
    /* A node's report: records or not by the status rule, never stale;
     * mostly from the task's own node, as reports are. */
    const char *node =
        cur && test_rnd(st, 4) ? jx_str(cur, "NodeID", NULL) : PICK(st, nodes);
    store_tx_task_status(tx, id, node ? node : "",
                         json_pack("{s:s}", "State", PICK(st, states)));
    return true;
  }
  if (cur && what == 3) { /* the same update, sent as what changed */
    store_tx_update(tx, k, rand_obj(st, k, id), cur, v);
    return !stale;
  }
  if (cur && what == 4) {
    /* One top-level field changed (or dropped), the others the store's
     * own values: the applied version shares them with the old one, as
     * the orchestrator's and the dispatcher's changes do. */
    static const char *const fields[] = {
        "ServiceID", "NodeID",        "DesiredState",       "Status",
        "Spec",      "ManagerStatus", "NetworksAttachments"};
    const char *f = PICK(st, fields);
    json_t *next = json_copy(cur);
    cleanup_json json_t *src = rand_obj(st, k, id);
    json_t *val = json_object_get(src, f);
    if (val)
      json_object_set(next, f, val);
    else
      json_object_del(next, f);
    store_tx_update(tx, k, next, cur, v);
    return !stale;
  }
  if (cur && what >= 7)
    store_tx_delete(tx, k, id, v);
  else
    store_tx_put(tx, k, rand_obj(st, k, id), v);
  return !stale;
}

static void collect(json_t *obj, void *ud) {
  json_array_append(ud, obj);
}

/* Every index bucket equals the scan (same objects, same order), and the
 * buckets hold every object with the key and nothing else; walked with
 * store_each_by, a bucket yields the live version of each of them. */
static int check_indexes(struct store *s, char *why, size_t n) {
  for (int ix = 0; ix < STORE_NINDEXES; ix++) {
    enum store_kind k = store_index_kind((enum store_index)ix);
    const char *field = store_index_field((enum store_index)ix);
    cleanup_json json_t *all = store_list(s, k);
    cleanup_json json_t *keys = json_object();
    size_t i;
    json_t *o;
    json_array_foreach(all, i, o) {
      const char *key = store_index_key((enum store_index)ix, o);
      if (!key)
        continue;
      json_t *l = json_object_get(keys, key);
      if (!l) {
        l = json_array();
        json_object_set_new(keys, key, l);
      }
      json_array_append(l, o);
    }
    /* The values used, present or not, and the scan's. */
    const char *const *vals = names;
    size_t nvals = sizeof names / sizeof *names;
    switch (ix) {
    case STORE_TASKS_BY_SERVICE:
    case STORE_TASKS_UP_BY_SERVICE:
    case STORE_TASKS_DONE_BY_SERVICE:
      vals = services, nvals = sizeof services / sizeof *services;
      break;
    case STORE_TASKS_BY_NODE:
      vals = nodes, nvals = sizeof nodes / sizeof *nodes;
      break;
    case STORE_TASKS_BY_DESIRED:
      vals = desired, nvals = sizeof desired / sizeof *desired;
      break;
    case STORE_TASKS_WAITING:
    case STORE_NODES_BY_STATE:
      vals = states, nvals = sizeof states / sizeof *states;
      break;
    case STORE_TASKS_BY_NETWORK:
      vals = nets, nvals = sizeof nets / sizeof *nets;
      break;
    case STORE_MANAGER_NODES:
      vals = managers, nvals = sizeof managers / sizeof *managers;
      break;
    default:
      break;
    }
    for (size_t j = 0; j < nvals; j++) {
      const char *key = vals[j];
      if (!key)
        continue;
      json_t *want = json_object_get(keys, key);
      cleanup_json json_t *got = store_list_by(s, (enum store_index)ix, key);
      size_t wn = json_array_size(want);
      if (json_array_size(got) != wn ||
          store_count_by(s, (enum store_index)ix, key) != wn) {
        snprintf(why, n, "%s=%s: %zu listed, %zu counted, %zu in the scan",
                 field, key, json_array_size(got),
                 store_count_by(s, (enum store_index)ix, key), wn);
        return -1;
      }
      cleanup_json json_t *walked = json_array();
      store_each_by(s, (enum store_index)ix, key, collect, walked);
      json_t *w;
      json_array_foreach(walked, i, w) {
        if (w != store_get(s, k, jx_str(w, "ID", ""))) {
          snprintf(why, n, "%s=%s: the walk gave %s, not its live version",
                   field, key, jx_str(w, "ID", "?"));
          return -1;
        }
      }
      if (json_array_size(walked) != wn) {
        snprintf(why, n, "%s=%s: %zu walked, %zu in the scan", field, key,
                 json_array_size(walked), wn);
        return -1;
      }
      for (i = 0; i < wn; i++) {
        if (json_array_get(got, i) != json_array_get(want, i)) {
          snprintf(why, n, "%s=%s: item %zu is %s, the scan's %s", field, key,
                   i, jx_str(json_array_get(got, i), "ID", "?"),
                   jx_str(json_array_get(want, i), "ID", "?"));
          return -1;
        }
      }
    }
  }
  return 0;
}

static char *dump_all(struct store *s) {
  json_t *all = json_object();
  for (int k = 0; k < STORE_NKINDS; k++)
    json_object_set_new(all, store_kind_name(k),
                        store_list(s, (enum store_kind)k));
  char *out = jx_dumps(all, JSON_COMPACT | JSON_SORT_KEYS, NULL);
  json_decref(all);
  return out;
}

/* What a change marked status_only promises its watchers (store.h): a
 * task's two versions, every value but the Status and the stamps the same
 * object. Checked on every change of a sequence, and counted, so that a
 * sequence without any says so. */
struct status_only_check {
  int seen;
  char why[256];
};

static void check_status_only(const struct store_change *ch, size_t n,
                              uint64_t index, void *ud) {
  struct status_only_check *p = ud;
  for (size_t i = 0; i < n && !p->why[0]; i++) {
    const struct store_change *c = &ch[i];
    if (!c->status_only)
      continue;
    p->seen++;
    if (c->kind != STORE_TASK || !c->old_obj || !c->new_obj) {
      snprintf(p->why, sizeof p->why, "%s %s: status_only, not two versions",
               store_kind_name(c->kind), c->id);
      continue;
    }
    const json_t *both[2] = {c->new_obj, c->old_obj};
    for (int b = 0; b < 2; b++) {
      const char *k;
      json_t *v;
      json_object_foreach((json_t *)both[b], k, v) {
        if (strcmp(k, "Status") && strcmp(k, "Version") &&
            strcmp(k, "UpdatedAt") && json_object_get(both[1 - b], k) != v)
          snprintf(p->why, sizeof p->why,
                   "task %s: status_only, but its %s is another value", c->id,
                   k);
      }
    }
  }
}

static void run_seed(uint64_t seed, int steps, int *failed_) {
  struct store *s = store_new();
  store_set_status_rule(s, task_status_rule);
  struct status_only_check so = {0};
  store_watch(s, check_status_only, &so);
  uint64_t st = seed;
  uint64_t index = 0;
  char why[256];
  for (int step = 0; step < steps; step++) {
    unsigned what = test_rnd(&st, 20);
    if (what == 0) {
      /* Snapshot and restore, into this store and into a fresh one. */
      size_t len;
      char *snap = store_snapshot(s, &len);
      sh_err err = {0};
      struct store *r = store_new();
      store_set_status_rule(r, task_status_rule);
      int rc = store_restore(r, snap, len, &err);
      int rc2 = store_restore(s, snap, len, &err);
      free(snap);
      if (rc == 0 && check_indexes(r, why, sizeof why) < 0)
        rc = -2;
      store_free(r);
      if (rc < 0 || rc2 < 0) {
        store_free(s);
        FAIL_("seed %" PRIu64 " step %d: restore: %s", seed, step,
              rc == -2 ? why : err.msg);
      }
    } else {
      struct store_tx *tx = store_tx_new();
      unsigned nops = 1 + test_rnd(&st, 3);
      bool fresh = true;
      for (unsigned i = 0; i < nops; i++)
        fresh = rand_op(&st, s, tx) && fresh;
      char *before = dump_all(s);
      size_t len;
      index++;
      char *data = store_tx_encode(tx, T0 + (int64_t)(index / 3), &len);
      store_tx_free(tx);
      sh_err err = {0};
      int rc = store_apply(s, data, len, index, &err);
      free(data);
      char *after = dump_all(s);
      bool same = strcmp(before, after) == 0;
      free(before);
      free(after);
      if ((!fresh && rc == 0) || (rc < 0 && !same)) {
        store_free(s);
        FAIL_("seed %" PRIu64 " step %d: a stale transaction %s", seed, step,
              rc == 0 ? "was applied" : "changed the store");
      }
    }
    if (check_indexes(s, why, sizeof why) < 0) {
      store_free(s);
      FAIL_("seed %" PRIu64 " step %d: %s", seed, step, why);
    }
    if (so.why[0]) {
      store_free(s);
      FAIL_("seed %" PRIu64 " step %d: %s", seed, step, so.why);
    }
  }
  store_free(s);
  if (so.seen == 0)
    FAIL_("seed %" PRIu64 ": no change was a status report's alone", seed);
}

TEST(store_index_matches_scan) {
  for (uint64_t seed = 1; seed <= 20; seed++) {
    run_seed(seed * 0x9e3779b97f4a7c15ULL, 600, failed_);
    if (*failed_)
      return;
  }
}

TEST(store_index_follows_field_changes) {
  struct store *s = store_new();
  sh_err err = {0};
  struct store_tx *tx = store_tx_new();
  store_tx_put(
      tx, STORE_TASK,
      json_pack("{s:s, s:s, s:s}", "ID", "t1", "ServiceID", "a", "NodeID", ""),
      STORE_MUST_CREATE);
  size_t len;
  char *data = store_tx_encode(tx, T0, &len);
  store_tx_free(tx);
  CHECK_INT_EQ(store_apply(s, data, len, 1, &err), 0);
  free(data);
  CHECK_INT_EQ(store_count_by(s, STORE_TASKS_BY_NODE, ""), 1);
  CHECK_INT_EQ(store_count_by(s, STORE_TASKS_BY_SERVICE, "a"), 1);

  /* Placed on a node: gone from "", found under the node, the new
   * object (not the old one) in the bucket. */
  tx = store_tx_new();
  store_tx_put(tx, STORE_TASK,
               json_pack("{s:s, s:s, s:s}", "ID", "t1", "ServiceID", "a",
                         "NodeID", "n1"),
               1);
  data = store_tx_encode(tx, T0 + 1, &len);
  store_tx_free(tx);
  CHECK_INT_EQ(store_apply(s, data, len, 2, &err), 0);
  free(data);
  CHECK_INT_EQ(store_count_by(s, STORE_TASKS_BY_NODE, ""), 0);
  json_t *l = store_list_by(s, STORE_TASKS_BY_NODE, "n1");
  CHECK_INT_EQ(json_array_size(l), 1);
  CHECK(json_array_get(l, 0) == store_get(s, STORE_TASK, "t1"));
  json_decref(l);

  /* Deleted: in no bucket. */
  tx = store_tx_new();
  store_tx_delete(tx, STORE_TASK, "t1", 2);
  data = store_tx_encode(tx, T0 + 2, &len);
  store_tx_free(tx);
  CHECK_INT_EQ(store_apply(s, data, len, 3, &err), 0);
  free(data);
  CHECK_INT_EQ(store_count_by(s, STORE_TASKS_BY_NODE, "n1"), 0);
  CHECK_INT_EQ(store_count_by(s, STORE_TASKS_BY_SERVICE, "a"), 0);
  store_free(s);
}

/* The up and done indexes hold what ServiceStatus counts: a task running
 * that its service still wants, and a task complete. */
TEST(store_index_up_and_done_keys) {
  static const struct {
    const char *state, *desired;
    bool up, done;
  } cases[] = {
      {"running", "running", true, false},
      {"running", "ready", true, false},
      {"running", "shutdown", false, false}, /* being stopped */
      {"running", NULL, false, false},
      {"starting", "running", false, false},
      {"complete", "complete", false, true},
      {"complete", "running", false, true},
      {"failed", "running", false, false},
  };
  for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
    json_t *t = json_pack("{s:s, s:s, s:{s:s}}", "ID", "t1", "ServiceID", "svc",
                          "Status", "State", cases[i].state);
    if (cases[i].desired)
      json_object_set_new(t, "DesiredState", json_string(cases[i].desired));
    const char *up = store_index_key(STORE_TASKS_UP_BY_SERVICE, t);
    const char *done = store_index_key(STORE_TASKS_DONE_BY_SERVICE, t);
    CHECK(cases[i].up ? up && strcmp(up, "svc") == 0 : !up);
    CHECK(cases[i].done ? done && strcmp(done, "svc") == 0 : !done);
    json_decref(t);
  }
}
