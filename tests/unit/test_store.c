#include "test.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/jcbor.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "manager/orchtask.h"
#include "store/store.h"

#define T0 (INT64_C(1700000000) * NS_PER_SEC)

/* Encodes and applies tx at index; returns store_apply's result. */
static int apply_tx(struct store *s, struct store_tx *tx, uint64_t index,
                    int64_t now, sh_err *err) {
  size_t len;
  char *data = store_tx_encode(tx, now, &len);
  store_tx_free(tx);
  int r = store_apply(s, data, len, index, err);
  free(data);
  return r;
}

static json_t *svc(const char *id, const char *name) {
  return json_pack("{s:s, s:{s:s, s:{}}}", "ID", id, "Spec", "Name", name,
                   "Labels");
}

static int put1(struct store *s, enum store_kind k, json_t *o, int64_t expect,
                uint64_t index, sh_err *err) {
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, k, o, expect);
  return apply_tx(s, tx, index, T0 + (int64_t)index, err);
}

/* Compact sorted dump of the whole store, to compare states. */
static char *dump_all(struct store *s) {
  json_t *all = json_object();
  for (int k = 0; k < STORE_NKINDS; k++)
    json_object_set_new(all, store_kind_name(k),
                        store_list(s, (enum store_kind)k));
  json_object_set_new(all, "index", json_integer((json_int_t)store_index(s)));
  char *out = jx_dumps(all, JSON_COMPACT | JSON_SORT_KEYS, NULL);
  json_decref(all);
  return out;
}

TEST(store_create_update_delete) {
  struct store *s = store_new();
  sh_err err = {0};
  CHECK_INT_EQ(
      put1(s, STORE_SERVICE, svc("svc1", "web"), STORE_MUST_CREATE, 5, &err),
      0);
  json_t *o = store_get(s, STORE_SERVICE, "svc1");
  CHECK(o != NULL);
  CHECK_INT_EQ(jx_int(o, "Version.Index", -1), 5);
  char ts[64];
  clock_format_rfc3339(T0 + 5, ts, sizeof ts);
  CHECK_STR_EQ(jx_str(o, "CreatedAt", NULL), ts);
  CHECK_STR_EQ(jx_str(o, "UpdatedAt", NULL), ts);
  CHECK_INT_EQ(store_index(s), 5);
  CHECK_INT_EQ(store_count(s, STORE_SERVICE), 1);

  /* Update with the right version: new index, CreatedAt kept. */
  json_t *upd = svc("svc1", "web");
  jx_set(upd, "Spec.Labels.a", json_string("b"));
  jx_set(upd, "CreatedAt", json_string("bogus"));
  CHECK_INT_EQ(put1(s, STORE_SERVICE, upd, 5, 9, &err), 0);
  o = store_get(s, STORE_SERVICE, "svc1");
  CHECK_INT_EQ(jx_int(o, "Version.Index", -1), 9);
  CHECK_STR_EQ(jx_str(o, "CreatedAt", NULL), ts);
  clock_format_rfc3339(T0 + 9, ts, sizeof ts);
  CHECK_STR_EQ(jx_str(o, "UpdatedAt", NULL), ts);
  CHECK_STR_EQ(jx_str(o, "Spec.Labels.a", NULL), "b");

  /* Update of a missing object with a version: 404. */
  CHECK(put1(s, STORE_SERVICE, svc("nope", "x"), 3, 10, &err) < 0);
  CHECK_INT_EQ(err.status, 404);
  CHECK_STR_EQ(err.msg, "service nope not found");

  /* Create over an existing one: 409. */
  CHECK(put1(s, STORE_SERVICE, svc("svc1", "web"), STORE_MUST_CREATE, 10,
             &err) < 0);
  CHECK_INT_EQ(err.status, 409);

  /* Delete. */
  struct store_tx *tx = store_tx_new();
  store_tx_delete(tx, STORE_SERVICE, "svc1", 9);
  CHECK_INT_EQ(apply_tx(s, tx, 11, T0, &err), 0);
  CHECK(store_get(s, STORE_SERVICE, "svc1") == NULL);
  CHECK_INT_EQ(store_count(s, STORE_SERVICE), 0);
  CHECK_INT_EQ(store_index(s), 11);
  tx = store_tx_new();
  store_tx_delete(tx, STORE_SERVICE, "svc1", STORE_ANY_VERSION);
  CHECK(apply_tx(s, tx, 12, T0, &err) < 0);
  CHECK_INT_EQ(err.status, 404);
  store_free(s);
}

TEST(store_stale_version_refused_and_unchanged) {
  struct store *s = store_new();
  sh_err err = {0};
  CHECK_INT_EQ(put1(s, STORE_NODE, json_pack("{s:s}", "ID", "n1"),
                    STORE_MUST_CREATE, 3, &err),
               0);
  CHECK_INT_EQ(put1(s, STORE_NODE, json_pack("{s:s}", "ID", "n1"), 3, 4, &err),
               0);
  char *before = dump_all(s);
  /* Writer that read version 3 loses. */
  CHECK(put1(s, STORE_NODE, json_pack("{s:s, s:s}", "ID", "n1", "X", "y"), 3, 5,
             &err) < 0);
  CHECK_STR_EQ(err.msg, "update out of sequence");
  CHECK_INT_EQ(err.status, 500);
  struct store_tx *tx = store_tx_new();
  store_tx_delete(tx, STORE_NODE, "n1", 3);
  CHECK(apply_tx(s, tx, 6, T0, &err) < 0);
  CHECK_STR_EQ(err.msg, "update out of sequence");
  char *after = dump_all(s);
  CHECK_STR_EQ(before, after);
  CHECK_INT_EQ(store_index(s), 4);
  free(before);
  free(after);
  store_free(s);
}

static int watch_calls;
static void count_watch(const struct store_change *c, size_t n, uint64_t index,
                        void *ud) {
  (void)c;
  (void)n;
  (void)index;
  (void)ud;
  watch_calls++;
}

TEST(store_multi_op_tx_is_atomic) {
  struct store *s = store_new();
  sh_err err = {0};
  store_watch(s, count_watch, NULL);
  CHECK_INT_EQ(
      put1(s, STORE_SERVICE, svc("a", "a"), STORE_MUST_CREATE, 2, &err), 0);
  CHECK_INT_EQ(watch_calls, 1);
  char *before = dump_all(s);
  /* Two good ops then one stale: nothing may land. */
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_SERVICE, svc("b", "b"), STORE_MUST_CREATE);
  store_tx_put(tx, STORE_TASK, json_pack("{s:s}", "ID", "t1"),
               STORE_MUST_CREATE);
  store_tx_put(tx, STORE_SERVICE, svc("a", "a2"), 1);
  CHECK(apply_tx(s, tx, 3, T0, &err) < 0);
  CHECK_STR_EQ(err.msg, "update out of sequence");
  char *after = dump_all(s);
  CHECK_STR_EQ(before, after);
  CHECK_INT_EQ(watch_calls, 1);
  free(after);

  /* The same with a missing delete target last. */
  tx = store_tx_new();
  store_tx_put(tx, STORE_SERVICE, svc("b", "b"), STORE_MUST_CREATE);
  store_tx_delete(tx, STORE_SERVICE, "a", 2);
  store_tx_delete(tx, STORE_TASK, "ghost", STORE_ANY_VERSION);
  CHECK(apply_tx(s, tx, 3, T0, &err) < 0);
  CHECK_INT_EQ(err.status, 404);
  CHECK_STR_EQ(err.msg, "task ghost not found");
  after = dump_all(s);
  CHECK_STR_EQ(before, after);
  free(after);

  /* All good: all land, one watcher call, same index on every object. */
  tx = store_tx_new();
  store_tx_put(tx, STORE_SERVICE, svc("b", "b"), STORE_MUST_CREATE);
  store_tx_put(tx, STORE_TASK, json_pack("{s:s}", "ID", "t1"),
               STORE_MUST_CREATE);
  store_tx_put(tx, STORE_SERVICE, svc("a", "a2"), 2);
  CHECK(store_tx_empty(tx) == false);
  CHECK_INT_EQ(apply_tx(s, tx, 7, T0, &err), 0);
  CHECK_INT_EQ(watch_calls, 2);
  CHECK_INT_EQ(jx_int(store_get(s, STORE_SERVICE, "b"), "Version.Index", 0), 7);
  CHECK_INT_EQ(jx_int(store_get(s, STORE_TASK, "t1"), "Version.Index", 0), 7);
  CHECK_STR_EQ(jx_str(store_get(s, STORE_SERVICE, "a"), "Spec.Name", NULL),
               "a2");
  free(before);
  store_free(s);
}

TEST(store_name_uniqueness) {
  struct store *s = store_new();
  sh_err err = {0};
  CHECK_INT_EQ(
      put1(s, STORE_SERVICE, svc("s1", "web"), STORE_MUST_CREATE, 1, &err), 0);
  CHECK(put1(s, STORE_SERVICE, svc("s2", "web"), STORE_MUST_CREATE, 2, &err) <
        0);
  CHECK_INT_EQ(err.status, 409);
  CHECK_STR_EQ(err.msg, "service with name web already exists");
  CHECK(store_get(s, STORE_SERVICE, "s2") == NULL);
  /* Same name in another kind is fine. */
  CHECK_INT_EQ(
      put1(s, STORE_SECRET, svc("x1", "web"), STORE_MUST_CREATE, 3, &err), 0);
  /* Two new objects with one name in one transaction. */
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_NETWORK, svc("n1", "net"), STORE_MUST_CREATE);
  store_tx_put(tx, STORE_NETWORK, svc("n2", "net"), STORE_MUST_CREATE);
  CHECK(apply_tx(s, tx, 4, T0, &err) < 0);
  CHECK_STR_EQ(err.msg, "network with name net already exists");
  CHECK_INT_EQ(store_count(s, STORE_NETWORK), 0);
  /* Rename frees the old name; a delete frees it in the same tx. */
  CHECK_INT_EQ(put1(s, STORE_SERVICE, svc("s1", "web2"), 1, 5, &err), 0);
  CHECK_INT_EQ(
      put1(s, STORE_SERVICE, svc("s2", "web"), STORE_MUST_CREATE, 6, &err), 0);
  tx = store_tx_new();
  store_tx_delete(tx, STORE_SERVICE, "s2", STORE_ANY_VERSION);
  store_tx_put(tx, STORE_SERVICE, svc("s3", "web"), STORE_MUST_CREATE);
  CHECK_INT_EQ(apply_tx(s, tx, 7, T0, &err), 0);
  CHECK_STR_EQ(jx_str(store_find(s, STORE_SERVICE, "web", &err), "ID", NULL),
               "s3");
  CHECK_STR_EQ(jx_str(store_find(s, STORE_SERVICE, "web2", &err), "ID", NULL),
               "s1");
  /* Nodes may share hostnames. */
  CHECK_INT_EQ(put1(s, STORE_NODE,
                    json_pack("{s:s, s:{s:s}}", "ID", "node1", "Description",
                              "Hostname", "h"),
                    STORE_MUST_CREATE, 8, &err),
               0);
  CHECK_INT_EQ(put1(s, STORE_NODE,
                    json_pack("{s:s, s:{s:s}}", "ID", "node2", "Description",
                              "Hostname", "h"),
                    STORE_MUST_CREATE, 9, &err),
               0);
  store_free(s);
}

TEST(store_find_id_name_prefix_ambiguous) {
  struct store *s = store_new();
  sh_err err = {0};
  CHECK_INT_EQ(
      put1(s, STORE_SERVICE, svc("abc111", "web"), STORE_MUST_CREATE, 1, &err),
      0);
  CHECK_INT_EQ(
      put1(s, STORE_SERVICE, svc("abc222", "db"), STORE_MUST_CREATE, 2, &err),
      0);
  CHECK_INT_EQ(
      put1(s, STORE_SERVICE, svc("web", "other"), STORE_MUST_CREATE, 3, &err),
      0);
  /* Full ID wins over a name. */
  CHECK_STR_EQ(jx_str(store_find(s, STORE_SERVICE, "web", &err), "ID", NULL),
               "web");
  CHECK_STR_EQ(jx_str(store_find(s, STORE_SERVICE, "db", &err), "ID", NULL),
               "abc222");
  CHECK_STR_EQ(jx_str(store_find(s, STORE_SERVICE, "abc1", &err), "ID", NULL),
               "abc111");
  CHECK(store_find(s, STORE_SERVICE, "abc", &err) == NULL);
  CHECK_INT_EQ(err.status, 400);
  CHECK_STR_EQ(err.msg, "service abc is ambiguous (2 matches found)");
  CHECK(store_find(s, STORE_SERVICE, "zzz", &err) == NULL);
  CHECK_INT_EQ(err.status, 404);
  CHECK_STR_EQ(err.msg, "service zzz not found");

  /* Nodes by hostname; two nodes with one hostname are ambiguous. */
  CHECK_INT_EQ(put1(s, STORE_NODE,
                    json_pack("{s:s, s:{s:s}}", "ID", "n1aaaa", "Description",
                              "Hostname", "swarma"),
                    STORE_MUST_CREATE, 4, &err),
               0);
  CHECK_STR_EQ(jx_str(store_find(s, STORE_NODE, "swarma", &err), "ID", NULL),
               "n1aaaa");
  CHECK_INT_EQ(put1(s, STORE_NODE,
                    json_pack("{s:s, s:{s:s}}", "ID", "n2bbbb", "Description",
                              "Hostname", "swarma"),
                    STORE_MUST_CREATE, 5, &err),
               0);
  CHECK(store_find(s, STORE_NODE, "swarma", &err) == NULL);
  CHECK_STR_EQ(err.msg, "node swarma is ambiguous (2 matches found)");
  CHECK(store_find(s, STORE_NODE, "n", &err) == NULL);
  CHECK_STR_EQ(err.msg, "node n is ambiguous (2 matches found)");
  CHECK(store_find(s, STORE_NODE, "n2", &err) != NULL);
  CHECK(store_find(s, STORE_NODE, "x", &err) == NULL);
  CHECK_STR_EQ(err.msg, "node x not found");
  CHECK(store_find(s, STORE_NODE, "", &err) == NULL);
  CHECK_INT_EQ(err.status, 404);
  store_free(s);
}

TEST(store_list_sorted_by_created_then_id) {
  struct store *s = store_new();
  sh_err err = {0};
  /* CreatedAt .5s sorts after a whole second despite its shorter text. */
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_TASK, json_pack("{s:s}", "ID", "late"),
               STORE_MUST_CREATE);
  CHECK_INT_EQ(apply_tx(s, tx, 1, T0 + NS_PER_SEC / 2, &err), 0);
  tx = store_tx_new();
  store_tx_put(tx, STORE_TASK, json_pack("{s:s}", "ID", "zz"),
               STORE_MUST_CREATE);
  store_tx_put(tx, STORE_TASK, json_pack("{s:s}", "ID", "aa"),
               STORE_MUST_CREATE);
  CHECK_INT_EQ(apply_tx(s, tx, 2, T0, &err), 0);
  /* A year later and a day earlier (the date part of the parse). */
  tx = store_tx_new();
  store_tx_put(tx, STORE_TASK, json_pack("{s:s}", "ID", "0year"),
               STORE_MUST_CREATE);
  CHECK_INT_EQ(apply_tx(s, tx, 3, T0 + 366 * 86400 * NS_PER_SEC, &err), 0);
  tx = store_tx_new();
  store_tx_put(tx, STORE_TASK, json_pack("{s:s}", "ID", "zday"),
               STORE_MUST_CREATE);
  CHECK_INT_EQ(apply_tx(s, tx, 4, T0 - 86400 * NS_PER_SEC, &err), 0);
  json_t *l = store_list(s, STORE_TASK);
  CHECK_INT_EQ(json_array_size(l), 5);
  CHECK_STR_EQ(jx_str(json_array_get(l, 0), "ID", NULL), "zday");
  CHECK_STR_EQ(jx_str(json_array_get(l, 1), "ID", NULL), "aa");
  CHECK_STR_EQ(jx_str(json_array_get(l, 2), "ID", NULL), "zz");
  CHECK_STR_EQ(jx_str(json_array_get(l, 3), "ID", NULL), "late");
  CHECK_STR_EQ(jx_str(json_array_get(l, 4), "ID", NULL), "0year");
  json_decref(l);
  CHECK(store_cluster(s) == NULL);
  CHECK_INT_EQ(put1(s, STORE_CLUSTER, json_pack("{s:s}", "ID", "c1"),
                    STORE_MUST_CREATE, 5, &err),
               0);
  CHECK_STR_EQ(jx_str(store_cluster(s), "ID", NULL), "c1");
  store_free(s);
}

/* store_public copies every object and array; store_view, the same keys,
 * shares each value below its top level that holds no '_' key. */
TEST(store_public_strips_underscore_keys_deeply) {
  json_t *o = json_pack("{s:s, s:s, s:{s:s, s:i}, s:[{s:i, s:i}, i], s:{s:i}}",
                        "ID", "x", "_Key", "secret", "Spec", "_Token", "t", "A",
                        1, "L", "_p", 1, "q", 2, 3, "Plain", "B", 2);
  json_t *p = store_public(o), *v = store_view(o);
  char *d = jx_dumps(p, JSON_COMPACT | JSON_SORT_KEYS, NULL);
  char *dv = jx_dumps(v, JSON_COMPACT | JSON_SORT_KEYS, NULL);
  CHECK_STR_EQ(d, "{\"ID\":\"x\",\"L\":[{\"q\":2},3],\"Plain\":{\"B\":2},"
                  "\"Spec\":{\"A\":1}}");
  CHECK_STR_EQ(dv, d);
  CHECK(json_object_get(p, "Plain") != json_object_get(o, "Plain"));
  CHECK(json_object_get(v, "Plain") == json_object_get(o, "Plain"));
  CHECK(json_object_get(v, "Spec") != json_object_get(o, "Spec"));
  /* The original is untouched. */
  CHECK_STR_EQ(jx_str(o, "_Key", NULL), "secret");
  CHECK_STR_EQ(jx_str(o, "Spec._Token", NULL), "t");
  free(d);
  free(dv);
  json_decref(p);
  json_decref(v);
  json_decref(o);
}

/* The objects one entry changes share its UpdatedAt and Version values;
 * the next entry's are new, the earlier versions keep theirs. */
TEST(store_entry_stamps_are_shared_and_never_changed) {
  struct store *s = store_new();
  sh_err err = {0};
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_SERVICE, svc("s1", "web"), STORE_MUST_CREATE);
  store_tx_put(tx, STORE_SERVICE, svc("s2", "db"), STORE_MUST_CREATE);
  CHECK_INT_EQ(apply_tx(s, tx, 7, T0, &err), 0);
  json_t *a = json_incref(store_get(s, STORE_SERVICE, "s1"));
  json_t *b = store_get(s, STORE_SERVICE, "s2");
  CHECK(json_object_get(a, "Version") == json_object_get(b, "Version"));
  CHECK(json_object_get(a, "UpdatedAt") == json_object_get(b, "UpdatedAt"));
  CHECK(json_object_get(a, "CreatedAt") == json_object_get(a, "UpdatedAt"));
  CHECK_INT_EQ(jx_int(a, "Version.Index", 0), 7);
  json_t *next = svc("s1", "web");
  json_object_set_new(next, "X", json_true());
  CHECK_INT_EQ(put1(s, STORE_SERVICE, next, 7, 9, &err), 0);
  json_t *a2 = store_get(s, STORE_SERVICE, "s1");
  CHECK_INT_EQ(jx_int(a2, "Version.Index", 0), 9);
  CHECK_INT_EQ(jx_int(a, "Version.Index", 0), 7);
  CHECK_INT_EQ(jx_int(b, "Version.Index", 0), 7);
  CHECK_STR_EQ(jx_str(a2, "CreatedAt", ""), jx_str(a, "CreatedAt", "-"));
  CHECK(strcmp(jx_str(a2, "UpdatedAt", ""), jx_str(a, "UpdatedAt", "")) != 0);
  json_decref(a);
  store_free(s);
}

static json_t *small_task(const char *id, const char *sid, const char *node) {
  return json_pack("{s:s, s:s, s:s, s:s, s:{}}", "ID", id, "ServiceID", sid,
                   "NodeID", node, "DesiredState", "running", "Labels");
}

/* What many tasks repeat is one value in the store, from entries, from
 * a restore and after values no task holds any more went; the tasks
 * read the same as before. */
TEST(store_tasks_share_repeated_values) {
  struct store *s = store_new();
  sh_err err = {0};
  uint64_t ix = 1;
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_TASK, small_task("t1", "svc-a", "node-1"),
               STORE_MUST_CREATE);
  CHECK_INT_EQ(apply_tx(s, tx, ix++, T0, &err), 0);
  tx = store_tx_new();
  store_tx_put(tx, STORE_TASK, small_task("t2", "svc-a", "node-1"),
               STORE_MUST_CREATE);
  CHECK_INT_EQ(apply_tx(s, tx, ix++, T0, &err), 0);
  json_t *a = store_get(s, STORE_TASK, "t1"),
         *b = store_get(s, STORE_TASK, "t2");
  const char *keys[] = {"ServiceID", "NodeID", "DesiredState", "Labels"};
  for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
    CHECK(json_object_get(a, keys[i]) == json_object_get(b, keys[i]));
  CHECK_STR_EQ(jx_str(b, "ServiceID", ""), "svc-a");
  CHECK_STR_EQ(jx_str(b, "NodeID", ""), "node-1");
  CHECK_INT_EQ(json_object_size(json_object_get(b, "Labels")), 0);

  /* Hundreds of tasks on nodes that then go: the values they held leave
   * the table (under ASan: nothing a task holds is freed). */
  char id[32], node[32];
  for (int round = 0; round < 3; round++) {
    tx = store_tx_new();
    for (int i = 0; i < 300; i++) {
      snprintf(id, sizeof id, "r%d-%d", round, i);
      snprintf(node, sizeof node, "n%d-%d", round, i);
      store_tx_put(tx, STORE_TASK, small_task(id, "svc-b", node),
                   STORE_MUST_CREATE);
    }
    CHECK_INT_EQ(apply_tx(s, tx, ix++, T0, &err), 0);
    tx = store_tx_new();
    for (int i = 0; i < 300; i++) {
      snprintf(id, sizeof id, "r%d-%d", round, i);
      store_tx_delete(tx, STORE_TASK, id, STORE_ANY_VERSION);
    }
    CHECK_INT_EQ(apply_tx(s, tx, ix++, T0, &err), 0);
  }
  CHECK_STR_EQ(jx_str(store_get(s, STORE_TASK, "t2"), "NodeID", ""), "node-1");

  /* A restored store shares them as well, and reads the same. */
  size_t len;
  char *snap = store_snapshot(s, &len);
  struct store *r = store_new();
  CHECK_INT_EQ(store_restore(r, snap, len, &err), 0);
  json_t *ra = store_get(r, STORE_TASK, "t1"),
         *rb = store_get(r, STORE_TASK, "t2");
  for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
    CHECK(json_object_get(ra, keys[i]) == json_object_get(rb, keys[i]));
  char *d1 = dump_all(s), *d2 = dump_all(r);
  CHECK_STR_EQ(d1, d2);
  free(d1);
  free(d2);
  free(snap);
  store_free(r);
  store_free(s);
}

static bool named(const json_t *o, void *name) {
  return strcmp(jx_str(o, "Spec.Name", ""), name) == 0;
}

TEST(store_any_asks_until_one_says_so) {
  struct store *s = store_new();
  sh_err err = {0};
  CHECK(!store_any(s, STORE_SERVICE, named, "web"));
  CHECK_INT_EQ(
      put1(s, STORE_SERVICE, svc("s1", "web"), STORE_MUST_CREATE, 2, &err), 0);
  CHECK_INT_EQ(
      put1(s, STORE_SERVICE, svc("s2", "db"), STORE_MUST_CREATE, 3, &err), 0);
  CHECK(store_any(s, STORE_SERVICE, named, "web"));
  CHECK(store_any(s, STORE_SERVICE, named, "db"));
  CHECK(!store_any(s, STORE_SERVICE, named, "cache"));
  CHECK(!store_any(s, STORE_NODE, named, "web"));
  store_free(s);
}

TEST(store_snapshot_restore_round_trip) {
  struct store *s = store_new();
  sh_err err = {0};
  CHECK_INT_EQ(put1(s, STORE_CLUSTER,
                    json_pack("{s:s, s:s}", "ID", "c", "_CAKey", "k"),
                    STORE_MUST_CREATE, 1, &err),
               0);
  CHECK_INT_EQ(
      put1(s, STORE_SERVICE, svc("s1", "web"), STORE_MUST_CREATE, 2, &err), 0);
  CHECK_INT_EQ(put1(s, STORE_NODE,
                    json_pack("{s:s, s:{s:s}}", "ID", "n1", "Description",
                              "Hostname", "h"),
                    STORE_MUST_CREATE, 3, &err),
               0);
  CHECK_INT_EQ(
      put1(s, STORE_SECRET, svc("sec", "pw"), STORE_MUST_CREATE, 4, &err), 0);
  size_t len;
  char *snap = store_snapshot(s, &len);
  CHECK(jcbor_is_map(snap, len)); /* no manager reads less than CBOR */

  struct store *r = store_new();
  store_watch(r, count_watch, NULL);
  watch_calls = 0;
  CHECK_INT_EQ(put1(r, STORE_TASK, json_pack("{s:s}", "ID", "junk"),
                    STORE_MUST_CREATE, 1, &err),
               0);
  CHECK_INT_EQ(store_restore(r, snap, len, &err), 0);
  CHECK_INT_EQ(watch_calls, 2);
  char *a = dump_all(s), *b = dump_all(r);
  CHECK_STR_EQ(a, b);
  CHECK(store_get(r, STORE_TASK, "junk") == NULL);
  CHECK_INT_EQ(store_index(r), 4);
  /* Name index rebuilt: duplicates still refused, find by name works. */
  CHECK(put1(r, STORE_SERVICE, svc("s9", "web"), STORE_MUST_CREATE, 5, &err) <
        0);
  CHECK_INT_EQ(err.status, 409);
  CHECK(store_find(r, STORE_SERVICE, "web", &err) != NULL);
  /* Snapshot of the restored store is the same, byte for byte. */
  size_t len2 = 0;
  char *snap2 = store_snapshot(r, &len2);
  CHECK(len2 == len && memcmp(snap, snap2, len) == 0);

  /* Bad snapshots leave the store alone. */
  CHECK(store_restore(r, "{\"index\":1}", 11, &err) < 0);
  CHECK_INT_EQ(err.status, 400);
  CHECK(store_restore(r, snap, len / 2, &err) < 0);
  CHECK(store_restore(r,
                      "{\"index\":1,\"objects\":{\"node\":[{\"ID\":\"a\"},{"
                      "\"ID\":\"a\"}]}}",
                      50, &err) < 0);
  free(b);
  b = dump_all(r);
  CHECK_STR_EQ(a, b);
  free(a);
  free(b);
  free(snap);
  free(snap2);
  store_free(r);
  store_free(s);
}

struct seen {
  int calls;
  size_t n;
  uint64_t index;
  char old_name[32], new_name[32];
  bool old_null, new_null;
  int unwatch_id;
  struct store *s;
};

static void record_watch(const struct store_change *c, size_t n, uint64_t index,
                         void *ud) {
  struct seen *w = ud;
  w->calls++;
  w->n = n;
  w->index = index;
  if (n == 0)
    return;
  w->old_null = c[0].old_obj == NULL;
  w->new_null = c[0].new_obj == NULL;
  snprintf(w->old_name, sizeof w->old_name, "%s",
           c[0].old_obj ? jx_str(c[0].old_obj, "Spec.Name", "") : "");
  snprintf(w->new_name, sizeof w->new_name, "%s",
           c[0].new_obj ? jx_str(c[0].new_obj, "Spec.Name", "") : "");
  if (w->unwatch_id)
    store_unwatch(w->s, w->unwatch_id);
}

TEST(store_watchers_see_old_and_new) {
  struct store *s = store_new();
  sh_err err = {0};
  struct seen w = {0};
  w.s = s;
  int id = store_watch(s, record_watch, &w);
  CHECK_INT_EQ(
      put1(s, STORE_CONFIG, svc("c1", "one"), STORE_MUST_CREATE, 4, &err), 0);
  CHECK_INT_EQ(w.calls, 1);
  CHECK_INT_EQ(w.n, 1);
  CHECK_INT_EQ(w.index, 4);
  CHECK(w.old_null);
  CHECK_STR_EQ(w.new_name, "one");
  CHECK_INT_EQ(put1(s, STORE_CONFIG, svc("c1", "two"), 4, 5, &err), 0);
  CHECK_STR_EQ(w.old_name, "one");
  CHECK_STR_EQ(w.new_name, "two");
  struct store_tx *tx = store_tx_new();
  store_tx_delete(tx, STORE_CONFIG, "c1", 5);
  CHECK_INT_EQ(apply_tx(s, tx, 6, T0, &err), 0);
  CHECK(w.new_null);
  CHECK_STR_EQ(w.old_name, "two");
  CHECK_INT_EQ(w.calls, 3);
  /* Failed transactions are not seen. */
  CHECK(put1(s, STORE_CONFIG, svc("c1", "x"), 5, 7, &err) < 0);
  CHECK_INT_EQ(w.calls, 3);
  /* Unwatch from inside the callback. */
  w.unwatch_id = id;
  CHECK_INT_EQ(
      put1(s, STORE_CONFIG, svc("c2", "y"), STORE_MUST_CREATE, 8, &err), 0);
  CHECK_INT_EQ(w.calls, 4);
  CHECK_INT_EQ(
      put1(s, STORE_CONFIG, svc("c3", "z"), STORE_MUST_CREATE, 9, &err), 0);
  CHECK_INT_EQ(w.calls, 4);
  store_free(s);
}

static uint32_t rng_state = 12345;
static uint32_t rnd(void) {
  rng_state = rng_state * 1103515245u + 12345u;
  return rng_state >> 8;
}

TEST(store_apply_garbage_is_400_and_changes_nothing) {
  struct store *s = store_new();
  sh_err err = {0};
  CHECK_INT_EQ(
      put1(s, STORE_SERVICE, svc("s1", "web"), STORE_MUST_CREATE, 1, &err), 0);
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_SERVICE, svc("s2", "db"), STORE_MUST_CREATE);
  store_tx_put(tx, STORE_NODE, json_pack("{s:s}", "ID", "n"),
               STORE_ANY_VERSION);
  store_tx_delete(tx, STORE_SERVICE, "s1", 1);
  size_t vlen;
  char *valid = store_tx_encode(tx, T0, &vlen);
  store_tx_free(tx);
  char *before = dump_all(s);

  /* Random bytes. */
  char buf[512];
  for (int i = 0; i < 400; i++) {
    size_t n = 1 + rnd() % sizeof buf;
    for (size_t j = 0; j < n; j++)
      buf[j] = (char)rnd();
    if (i % 4 == 0)
      buf[0] = '{';
    err.status = 0;
    CHECK(store_apply(s, buf, n, 100, &err) < 0);
    CHECK_INT_EQ(err.status, 400);
  }
  /* Every truncation of a valid entry. */
  for (size_t n = 0; n < vlen; n++) {
    err.status = 0;
    CHECK(store_apply(s, valid, n, 100, &err) < 0);
    CHECK_INT_EQ(err.status, 400);
  }
  /* Well-formed JSON of the wrong shape. */
  const char *bad[] = {
      "[]",
      "null",
      "{}",
      "{\"time\":1}",
      "{\"time\":\"x\",\"ops\":[]}",
      "{\"time\":1,\"ops\":{}}",
      "{\"time\":1,\"ops\":[1]}",
      "{\"time\":1,\"ops\":[{\"op\":\"put\",\"kind\":\"node\",\"expect\":0}]}",
      "{\"time\":1,\"ops\":[{\"op\":\"put\",\"kind\":\"node\",\"expect\":0,"
      "\"obj\":{\"ID\":1}}]}",
      "{\"time\":1,\"ops\":[{\"op\":\"put\",\"kind\":\"node\",\"expect\":0,"
      "\"obj\":{\"ID\":\"\"}}]}",
      "{\"time\":1,\"ops\":[{\"op\":\"put\",\"kind\":\"nod\",\"expect\":0,"
      "\"obj\":{\"ID\":\"a\"}}]}",
      "{\"time\":1,\"ops\":[{\"op\":\"zap\",\"kind\":\"node\",\"expect\":0,"
      "\"obj\":{\"ID\":\"a\"}}]}",
      "{\"time\":1,\"ops\":[{\"op\":\"put\",\"kind\":\"node\",\"expect\":-5,"
      "\"obj\":{\"ID\":\"a\"}}]}",
      "{\"time\":1,\"ops\":[{\"op\":\"put\",\"kind\":\"node\",\"expect\":0,"
      "\"obj\":{\"ID\":\"a\"}},{\"op\":\"delete\",\"kind\":\"node\","
      "\"expect\":-1}]}",
      "{\"time\":1,\"time\":2,\"ops\":[]}",
  };
  for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
    err.status = 0;
    CHECK(store_apply(s, bad[i], strlen(bad[i]), 100, &err) < 0);
    CHECK_INT_EQ(err.status, 400);
  }
  CHECK(store_apply(s, NULL, 0, 100, &err) < 0);
  char *after = dump_all(s);
  CHECK_STR_EQ(before, after);
  /* The full entry still applies. */
  CHECK_INT_EQ(store_apply(s, valid, vlen, 100, &err), 0);
  CHECK(store_get(s, STORE_SERVICE, "s1") == NULL);
  CHECK(store_get(s, STORE_SERVICE, "s2") != NULL);
  free(before);
  free(after);
  free(valid);
  store_free(s);
}

TEST(store_same_bytes_same_state) {
  /* Two managers applying the same entries end identical. */
  struct store *a = store_new(), *b = store_new();
  sh_err err = {0};
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_SERVICE, svc("s1", "web"), STORE_MUST_CREATE);
  size_t len;
  char *d = store_tx_encode(tx, T0 + 123, &len);
  store_tx_free(tx);
  CHECK_INT_EQ(store_apply(a, d, len, 3, &err), 0);
  CHECK_INT_EQ(store_apply(b, d, len, 3, &err), 0);
  char *x = dump_all(a), *y = dump_all(b);
  CHECK_STR_EQ(x, y);
  free(x);
  free(y);
  free(d);
  store_free(a);
  store_free(b);
}

/* The removed-node list (swarmkit's BlacklistedCertificates): recorded
 * with the node's delete in one transaction, kept by later puts of the
 * cluster made from an older copy, pruned once past its time, and carried
 * by snapshots. */
TEST(store_removed_nodes_round_trip) {
  struct store *s = store_new();
  sh_err err = {0};
  CHECK_INT_EQ(put1(s, STORE_CLUSTER, json_pack("{s:s}", "ID", "c"),
                    STORE_MUST_CREATE, 1, &err),
               0);
  CHECK_INT_EQ(put1(s, STORE_NODE, json_pack("{s:s}", "ID", "n1"),
                    STORE_MUST_CREATE, 2, &err),
               0);
  CHECK(!store_node_removed(s, "n1"));
  json_t *stale = json_deep_copy(store_cluster(s));

  struct store_tx *tx = store_tx_new();
  store_tx_delete(tx, STORE_NODE, "n1", STORE_ANY_VERSION);
  store_tx_node_removed(tx, "n1", T0 + 100);
  CHECK_INT_EQ(apply_tx(s, tx, 3, T0, &err), 0);
  CHECK(store_get(s, STORE_NODE, "n1") == NULL);
  CHECK(store_node_removed(s, "n1"));
  CHECK(!store_node_removed(s, "n2"));
  CHECK_INT_EQ(jx_int(store_cluster(s), "Version.Index", 0), 3);
  /* Hidden from the API's view of the swarm. */
  json_t *pub = store_public(store_cluster(s));
  CHECK(json_object_get(pub, "_RemovedNodes") == NULL);
  json_decref(pub);

  /* A put from a copy taken before the removal is out of sequence... */
  json_t *again = json_deep_copy(stale);
  CHECK(put1(s, STORE_CLUSTER, again, 1, 4, &err) < 0);
  CHECK_INT_EQ(err.status, 500);
  /* ...and even an unchecked one cannot drop the list. */
  CHECK_INT_EQ(put1(s, STORE_CLUSTER, stale, STORE_ANY_VERSION, 4, &err), 0);
  CHECK(store_node_removed(s, "n1"));

  /* Snapshot and restore keep it. */
  size_t len;
  char *snap = store_snapshot(s, &len);
  struct store *r = store_new();
  CHECK_INT_EQ(store_restore(r, snap, len, &err), 0);
  free(snap);
  CHECK(store_node_removed(r, "n1"));

  /* An entry past its time goes when the next one is recorded. */
  tx = store_tx_new();
  store_tx_node_removed(tx, "n2", T0 + 1000);
  CHECK_INT_EQ(apply_tx(r, tx, 5, T0 + 500, &err), 0);
  CHECK(!store_node_removed(r, "n1"));
  CHECK(store_node_removed(r, "n2"));

  /* Without a cluster there is nothing to record into. */
  struct store *e = store_new();
  tx = store_tx_new();
  store_tx_node_removed(tx, "n1", T0);
  CHECK(apply_tx(e, tx, 1, T0, &err) < 0);
  CHECK_INT_EQ(err.status, 404);
  store_free(e);
  store_free(r);
  store_free(s);
}

/* One change seen by a watcher: how many, and the last batch's size. */
static size_t status_watch_n, status_watch_calls;

static size_t tasks_in(struct store *s, const char *state) {
  cleanup_json json_t *all = store_list(s, STORE_TASK);
  size_t n = 0, i;
  json_t *t;
  json_array_foreach(all, i, t) n +=
      strcmp(jx_str(t, "Status.State", ""), state) == 0;
  return n;
}
static void status_watch(const struct store_change *c, size_t n, uint64_t index,
                         void *ud) {
  (void)c;
  (void)index;
  (void)ud;
  status_watch_n += n;
  status_watch_calls++;
}

static json_t *placed(const char *id, const char *node, const char *state) {
  return json_pack("{s:s, s:s, s:s, s:{s:s}, s:{s:s, s:{s:i}}}", "ID", id,
                   "NodeID", node, "DesiredState", "running", "Spec", "Image",
                   "busybox", "Status", "State", state, "PortStatus", "Ports",
                   8080);
}

static json_t *report(const char *state, const char *msg) {
  return json_pack("{s:s, s:s}", "State", state, "Message", msg);
}

TEST(store_task_status_reports_merge_forward_on_their_node_only) {
  struct store *s = store_new();
  sh_err err = {0};
  struct store_tx *tx = store_tx_new();
  for (int i = 0; i < 3000; i++) {
    char id[32];
    snprintf(id, sizeof id, "task%04d", i);
    store_tx_put(tx, STORE_TASK,
                 placed(id, i % 2 ? "nodeB" : "nodeA", "assigned"),
                 STORE_MUST_CREATE);
  }
  CHECK_INT_EQ(apply_tx(s, tx, 10, T0, &err), 0);

  /* Without the rule a store refuses the op (and changes nothing). */
  tx = store_tx_new();
  store_tx_task_status(tx, "task0000", "nodeA", report("running", "x"));
  CHECK(apply_tx(s, tx, 11, T0, &err) < 0);
  CHECK_INT_EQ(err.status, 400);
  CHECK_STR_EQ(jx_str(store_get(s, STORE_TASK, "task0000"), "Status.State", ""),
               "assigned");
  store_set_status_rule(s, task_status_rule);
  int wid = store_watch(s, status_watch, NULL);

  /* Thousands of reports in one entry: each node's own apply; another
   * node's, a missing task's and a step back record nothing, and fail
   * nothing. */
  json_t *before = json_incref(store_get(s, STORE_TASK, "task0000"));
  tx = store_tx_new();
  for (int i = 0; i < 3000; i++) {
    char id[32];
    snprintf(id, sizeof id, "task%04d", i);
    store_tx_task_status(tx, id, i % 2 ? "nodeB" : "nodeA",
                         report("running", "started"));
  }
  store_tx_task_status(tx, "task0000", "nodeB", report("failed", "not mine"));
  store_tx_task_status(tx, "gone", "nodeA", report("running", "started"));
  store_tx_task_status(tx, "task0001", "nodeB", report("starting", "late"));
  CHECK_INT_EQ(apply_tx(s, tx, 12, T0 + 5, &err), 0);
  CHECK_INT_EQ(status_watch_n, 3000);
  json_t *t = store_get(s, STORE_TASK, "task0000");
  CHECK_STR_EQ(jx_str(t, "Status.State", ""), "running");
  CHECK_STR_EQ(jx_str(t, "Status.Message", ""), "started");
  CHECK_INT_EQ(jx_int(t, "Status.PortStatus.Ports", 0), 8080); /* kept */
  CHECK_INT_EQ(jx_int(t, "Version.Index", 0), 12);
  CHECK_STR_EQ(jx_str(t, "Spec.Image", ""), "busybox");
  /* The old version is as it was (the new one shares, never changes). */
  CHECK_STR_EQ(jx_str(before, "Status.State", ""), "assigned");
  CHECK_INT_EQ(jx_int(before, "Version.Index", 0), 10);
  json_decref(before);
  CHECK_STR_EQ(jx_str(store_get(s, STORE_TASK, "task0001"), "Status.State", ""),
               "running");
  CHECK(store_get(s, STORE_TASK, "gone") == NULL);
  CHECK_INT_EQ(tasks_in(s, "running"), 3000);
  CHECK_INT_EQ(tasks_in(s, "assigned"), 0);
  /* Only tasks waiting for a node are in the state index's buckets. */
  CHECK_INT_EQ(store_count_by(s, STORE_TASKS_WAITING, "running"), 0);

  /* An end once recorded stays: a second "failed" does not move it. */
  tx = store_tx_new();
  store_tx_task_status(tx, "task0002", "nodeA", report("failed", "exit 1"));
  CHECK_INT_EQ(apply_tx(s, tx, 13, T0 + 6, &err), 0);
  status_watch_n = status_watch_calls = 0;
  tx = store_tx_new();
  store_tx_task_status(tx, "task0002", "nodeA", report("failed", "again"));
  CHECK_INT_EQ(apply_tx(s, tx, 14, T0 + 7, &err), 0);
  CHECK_INT_EQ(status_watch_n, 0);
  /* An entry that recorded nothing is no news: watchers are not called
   * (with n == 0 they would take it for a restore and look at
   * everything again: every node's whole task list resent). */
  CHECK_INT_EQ(status_watch_calls, 0);
  CHECK_INT_EQ(store_index(s), 14);
  t = store_get(s, STORE_TASK, "task0002");
  CHECK_STR_EQ(jx_str(t, "Status.Message", ""), "exit 1");
  CHECK_INT_EQ(jx_int(t, "Version.Index", 0), 13);

  /* A put and a report of the same task in one entry: staged in order. */
  tx = store_tx_new();
  store_tx_put(tx, STORE_TASK, placed("task0003", "nodeB", "assigned"), 12);
  store_tx_task_status(tx, "task0003", "nodeB", report("preparing", "p"));
  CHECK_INT_EQ(apply_tx(s, tx, 15, T0 + 8, &err), 0);
  CHECK_STR_EQ(jx_str(store_get(s, STORE_TASK, "task0003"), "Status.State", ""),
               "preparing");

  /* Malformed: refused whole. */
  tx = store_tx_new();
  store_tx_task_status(tx, "task0004", "nodeA", report("running", "x"));
  store_tx_task_status(tx, "", "nodeA", json_pack("{s:s}", "State", "x"));
  CHECK(apply_tx(s, tx, 16, T0 + 9, &err) < 0);
  CHECK_INT_EQ(err.status, 400);
  CHECK_STR_EQ(jx_str(store_get(s, STORE_TASK, "task0004"), "Status.State", ""),
               "running");
  CHECK_INT_EQ(jx_int(store_get(s, STORE_TASK, "task0004"), "Version.Index", 0),
               12);
  store_unwatch(s, wid);
  store_free(s);
}

/* A status n containers deep (the status itself the first). */
static json_t *deep_status(size_t n) {
  json_t *v = json_array();
  for (size_t i = 2; i < n; i++) {
    json_t *outer = json_array();
    json_array_append_new(outer, v);
    v = outer;
  }
  return json_pack("{s:s, s:o}", "State", "running", "Deep", v);
}

/* A node's status report sits one container higher in its raft entry
 * (ops, the op) than its task's Status in a snapshot (objects, kind, the
 * task): a status nested one level short of what CBOR takes still goes
 * through raft, and then no snapshot can hold its task while it lives.
 * store_field_fits draws the line where snapshots do; what it passes
 * snapshots and restores. */
TEST(store_task_status_deeper_than_a_snapshot_holds) {
  struct store *s = store_new();
  store_set_status_rule(s, task_status_rule);
  sh_err err = {0};
  /* A manager that reads CBOR entries and snapshots, as shoald's do. */
  CHECK_INT_EQ(
      put1(s, STORE_NODE,
           json_pack("{s:s, s:{s:s, s:i}, s:{s:b}}", "ID", "m1", "Description",
                     "Hostname", "m1", STORE_ENTRIES_KEY, STORE_ENTRIES,
                     "ManagerStatus", "Leader", 1),
           STORE_MUST_CREATE, 1, &err),
      0);
  CHECK(store_managers_read(s, STORE_ENTRIES_SNAPSHOT_CBOR));
  CHECK_INT_EQ(put1(s, STORE_TASK, placed("t1", "n1", "assigned"),
                    STORE_MUST_CREATE, 2, &err),
               0);
  cleanup_json json_t *fits = deep_status(JCBOR_MAX_DEPTH - 4);
  cleanup_json json_t *deep = deep_status(JCBOR_MAX_DEPTH - 3);
  CHECK(store_field_fits(fits));
  CHECK(!store_field_fits(deep));
  CHECK(store_field_fits(json_array_get(json_object_get(fits, "Deep"), 0)));
  cleanup_json json_t *scalar = json_string("x");
  CHECK(store_field_fits(scalar));

  /* The one refused encodes as an entry and applies... */
  struct store_tx *tx = store_tx_new();
  store_tx_task_status(tx, "t1", "n1", json_incref(deep));
  cleanup_json json_t *doc = store_tx_doc(tx, T0);
  store_tx_free(tx);
  size_t len = 0;
  cleanup_free char *entry = store_entry_encode(s, doc, &len);
  CHECK(entry && jcbor_is_map(entry, len));
  struct store *d = store_new();
  store_set_status_rule(d, task_status_rule);
  size_t n = 0;
  cleanup_free char *snap = store_snapshot(s, &n);
  CHECK(snap != NULL);
  CHECK_INT_EQ(store_restore(d, snap, n, &err), 0);
  CHECK_INT_EQ(store_apply(d, entry, len, 3, &err), 0);
  CHECK(json_equal(jx_get(store_get(d, STORE_TASK, "t1"), "Status.Deep"),
                   json_object_get(deep, "Deep")));
  /* ...and then no snapshot can be taken. */
  CHECK(store_snapshot(d, &n) == NULL);
  store_free(d);

  /* The deepest it passes: snapshotted and restored as it was. */
  tx = store_tx_new();
  store_tx_task_status(tx, "t1", "n1", json_incref(fits));
  CHECK_INT_EQ(apply_tx(s, tx, 3, T0, &err), 0);
  free(snap);
  snap = store_snapshot(s, &n);
  CHECK(snap && jcbor_is_map(snap, n));
  struct store *r = store_new();
  CHECK_INT_EQ(store_restore(r, snap, n, &err), 0);
  CHECK(json_equal(jx_get(store_get(r, STORE_TASK, "t1"), "Status.Deep"),
                   json_object_get(fits, "Deep")));
  store_free(r);
  store_free(s);
}

/* An update sent as what changed gives the store a put would: two
 * stores, the same random changes, one by put and one by patch. */
TEST(store_update_as_patch_equals_the_put) {
  struct store *a = store_new(), *b = store_new();
  sh_err err = {0};
  uint64_t rs = 42;
  for (int i = 0; i < 20; i++) {
    char id[16];
    snprintf(id, sizeof id, "t%02d", i);
    json_t *t = placed(id, "nodeA", "pending");
    CHECK_INT_EQ(
        put1(a, STORE_TASK, json_deep_copy(t), STORE_MUST_CREATE, 1, &err), 0);
    CHECK_INT_EQ(put1(b, STORE_TASK, t, STORE_MUST_CREATE, 1, &err), 0);
  }
  size_t put_bytes = 0, patch_bytes = 0;
  for (uint64_t index = 2; index < 400; index++) {
    char id[16];
    snprintf(id, sizeof id, "t%02u", test_rnd(&rs, 20));
    json_t *cur = store_get(b, STORE_TASK, id);
    json_t *next = json_deep_copy(cur);
    switch (test_rnd(&rs, 5)) {
    case 0:
      jx_set(next, "Status.State", json_string("assigned"));
      json_object_set_new(next, "NodeID", json_string("nodeB"));
      break;
    case 1:
      json_object_del(next, "NodeID");
      break;
    case 2:
      json_object_set_new(next, "Endpoint", json_pack("{s:i}", "n", index));
      break;
    case 3:
      json_object_set_new(next, "CreatedAt", json_string("ignored"));
      json_object_set_new(next, "Version", json_pack("{s:i}", "Index", 1));
      break;
    default:
      break; /* nothing changed: an empty patch still stamps a version */
    }
    int64_t v = jx_int(cur, "Version.Index", 0);
    struct store_tx *tp = store_tx_new(), *tu = store_tx_new();
    store_tx_put(tp, STORE_TASK, json_deep_copy(next), v);
    store_tx_update(tu, STORE_TASK, next, cur, v);
    size_t lp, lu;
    char *dp = store_tx_encode(tp, T0 + (int64_t)index, &lp);
    char *du = store_tx_encode(tu, T0 + (int64_t)index, &lu);
    store_tx_free(tp);
    store_tx_free(tu);
    put_bytes += lp;
    patch_bytes += lu;
    CHECK_INT_EQ(store_apply(a, dp, lp, index, &err), 0);
    CHECK_INT_EQ(store_apply(b, du, lu, index, &err), 0);
    free(dp);
    free(du);
  }
  char *da = dump_all(a), *db = dump_all(b);
  CHECK_STR_EQ(da, db);
  free(da);
  free(db);
  CHECK(patch_bytes < put_bytes);

  /* Stale and missing: refused as the put is, and nothing changes. */
  json_t *cur = store_get(b, STORE_TASK, "t00");
  json_t *next = json_deep_copy(cur);
  json_object_set_new(next, "NodeID", json_string("nodeC"));
  struct store_tx *tx = store_tx_new();
  store_tx_update(tx, STORE_TASK, next, cur,
                  jx_int(cur, "Version.Index", 0) - 1);
  CHECK(apply_tx(b, tx, 500, T0, &err) < 0);
  CHECK_STR_EQ(err.msg, "update out of sequence");
  next = json_pack("{s:s, s:s}", "ID", "nope", "NodeID", "x");
  json_t *ghost = json_pack("{s:s}", "ID", "nope");
  tx = store_tx_new();
  store_tx_update(tx, STORE_TASK, next, ghost, 7);
  CHECK(apply_tx(b, tx, 501, T0, &err) < 0);
  CHECK_INT_EQ(err.status, 404);
  json_decref(ghost);
  CHECK(store_index(b) < 500);
  store_free(a);
  store_free(b);
}

/* The leader applies its own entry from the document it encoded: the
 * same state as the bytes give a follower, and the document unchanged
 * (the proposer's objects are shared, not stamped). */
TEST(store_apply_doc_shared_equals_the_bytes) {
  struct store *a = store_new(), *b = store_new();
  sh_err err = {0};
  for (int round = 0; round < 2; round++) {
    struct store_tx *tx = store_tx_new();
    json_t *s1 = svc("s1", round ? "web2" : "web");
    store_tx_put(tx, STORE_SERVICE, s1, round ? 3 : STORE_MUST_CREATE);
    if (round == 0) {
      store_tx_put(tx, STORE_TASK, placed("t1", "n1", "new"),
                   STORE_MUST_CREATE);
    } else {
      const json_t *t = store_get(a, STORE_TASK, "t1");
      json_t *next = json_deep_copy(t);
      json_object_set_new(next, "DesiredState", json_string("shutdown"));
      store_tx_update(tx, STORE_TASK, next, t, 3);
    }
    json_t *doc = store_tx_doc(tx, T0 + 5 + round);
    store_tx_free(tx);
    size_t len;
    char *d = store_doc_encode(doc, &len);
    CHECK(d != NULL);
    CHECK_INT_EQ(store_apply(a, d, len, (uint64_t)(3 + round), &err), 0);
    CHECK_INT_EQ(store_apply_doc(b, doc, true, (uint64_t)(3 + round), &err), 0);
    char *again = store_doc_encode(doc, NULL);
    CHECK_STR_EQ(again, d);
    free(again);
    free(d);
    json_decref(doc);
    char *x = dump_all(a), *y = dump_all(b);
    CHECK_STR_EQ(x, y);
    free(x);
    free(y);
  }
  CHECK_STR_EQ(jx_str(store_get(b, STORE_SERVICE, "s1"), "Spec.Name", ""),
               "web2");
  CHECK_STR_EQ(jx_str(store_get(b, STORE_TASK, "t1"), "DesiredState", ""),
               "shutdown");
  store_free(a);
  store_free(b);
}

/* A service with a task template and an endpoint spec, at index 2. */
static struct store *store_with_template(void) {
  struct store *s = store_new();
  sh_err err = {0};
  json_t *o =
      json_pack("{s:s, s:{s:s, s:{s:{s:s, s:[s]}}, s:{s:[{s:i, s:s}]}}}", "ID",
                "svc1", "Spec", "Name", "web", "TaskTemplate", "ContainerSpec",
                "Image", "nginx", "Args", "sleep", "EndpointSpec", "Ports",
                "TargetPort", 80, "PublishMode", "host");
  if (put1(s, STORE_SERVICE, o, STORE_MUST_CREATE, 2, &err) < 0)
    abort();
  return s;
}

/* A new task of svc1 as task_new makes it: the service's template and
 * endpoint spec, shared. */
static json_t *task_of(struct store *s, const char *id) {
  const json_t *svc = store_get(s, STORE_SERVICE, "svc1");
  return json_pack("{s:s, s:s, s:O, s:O, s:{s:s}, s:s, s:i, s:I}", "ID", id,
                   "ServiceID", "svc1", "Spec",
                   jx_get(svc, "Spec.TaskTemplate"), "_EndpointSpec",
                   jx_get(svc, "Spec.EndpointSpec"), "Status", "State",
                   "pending", "DesiredState", "running", "Slot", 1,
                   "_SpecVersion", jx_int(svc, "_SpecVersion", 0));
}

static char *encode_from(struct store *s, struct store_tx *tx, int64_t now,
                         size_t *len) {
  store_tx_name_templates(s, tx);
  return store_tx_encode(tx, now, len);
}

/* A new task whose template is its service's goes into the entry naming
 * the service instead of carrying the template: the bytes are smaller,
 * the apply gives the same task as the whole put (on a store that
 * applied the whole one), and the task shares the service's objects. */
TEST(store_task_by_template_applies_as_the_whole_put) {
  struct store *a = store_with_template(), *b = store_with_template();
  sh_err err = {0};
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_TASK, task_of(a, "t1"), STORE_MUST_CREATE);
  size_t whole_len = 0, short_len = 0;
  char *whole = store_tx_encode(tx, T0 + 3, &whole_len);
  char *shrt = encode_from(a, tx, T0 + 3, &short_len);
  store_tx_free(tx);
  CHECK(strstr(whole, "ContainerSpec") != NULL);
  CHECK(strstr(shrt, "ContainerSpec") == NULL);
  CHECK(strstr(shrt, "\"template\"") != NULL);
  CHECK(short_len + 60 < whole_len);
  CHECK_INT_EQ(store_apply(a, shrt, short_len, 3, &err), 0);
  CHECK_INT_EQ(store_apply(b, whole, whole_len, 3, &err), 0);
  char *da = dump_all(a), *db = dump_all(b);
  CHECK_STR_EQ(da, db);
  const json_t *t = store_get(a, STORE_TASK, "t1");
  const json_t *svc = store_get(a, STORE_SERVICE, "svc1");
  CHECK(json_object_get(t, "Spec") == jx_get(svc, "Spec.TaskTemplate"));
  CHECK(json_object_get(t, "_EndpointSpec") ==
        jx_get(svc, "Spec.EndpointSpec"));
  /* A proposer applying its own document gets the same. */
  struct store *c = store_with_template();
  tx = store_tx_new();
  store_tx_put(tx, STORE_TASK, task_of(c, "t1"), STORE_MUST_CREATE);
  store_tx_name_templates(c, tx);
  json_t *doc = store_tx_doc(tx, T0 + 3);
  store_tx_free(tx);
  CHECK_INT_EQ(store_apply_doc(c, doc, true, 3, &err), 0);
  json_decref(doc);
  char *dc = dump_all(c);
  CHECK_STR_EQ(dc, da);
  free(da);
  free(db);
  free(dc);
  free(whole);
  free(shrt);
  store_free(a);
  store_free(b);
  store_free(c);
}

/* The service's spec moved on between the proposal and the apply: the
 * entry is refused whole, as a stale version is; a change that leaves
 * the spec (the update supervisor's progress) does not matter. A
 * transaction that changes the service itself carries its tasks'
 * templates; so does a task whose template is not its service's own
 * object. */
TEST(store_task_by_template_refused_once_the_service_moved) {
  struct store *s = store_with_template();
  sh_err err = {0};
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_TASK, task_of(s, "t0"), STORE_MUST_CREATE);
  size_t len = 0;
  char *fine = encode_from(s, tx, T0 + 2, &len);
  store_tx_free(tx);
  json_t *next = json_deep_copy(store_get(s, STORE_SERVICE, "svc1"));
  json_object_set_new(next, "UpdateStatus", json_pack("{s:s}", "State", "x"));
  CHECK_INT_EQ(put1(s, STORE_SERVICE, next, 2, 3, &err), 0);
  CHECK_INT_EQ(store_apply(s, fine, len, 4, &err), 0);
  free(fine);
  CHECK_STR_EQ(
      jx_str(store_get(s, STORE_TASK, "t0"), "Spec.ContainerSpec.Image", ""),
      "nginx");
  tx = store_tx_new();
  store_tx_put(tx, STORE_TASK, task_of(s, "t1"), STORE_MUST_CREATE);
  store_tx_put(tx, STORE_TASK, task_of(s, "t2"), STORE_MUST_CREATE);
  char *stale = encode_from(s, tx, T0 + 4, &len);
  store_tx_free(tx);
  next = json_deep_copy(store_get(s, STORE_SERVICE, "svc1"));
  jx_set(next, "Spec.TaskTemplate.ContainerSpec.Image", json_string("redis"));
  json_object_set_new(next, "_SpecVersion", json_integer(3));
  CHECK_INT_EQ(put1(s, STORE_SERVICE, next, 3, 5, &err), 0);
  CHECK_INT_EQ(store_apply(s, stale, len, 6, &err), -1);
  CHECK_INT_EQ(err.status, 500);
  CHECK_STR_EQ(err.msg, "update out of sequence");
  CHECK(store_get(s, STORE_TASK, "t1") == NULL);
  CHECK_INT_EQ(store_count(s, STORE_TASK), 1);
  free(stale);

  tx = store_tx_new();
  json_t *cur = store_get(s, STORE_SERVICE, "svc1");
  json_t *upd = json_copy(cur);
  json_object_set_new(upd, "UpdateStatus", json_pack("{s:s}", "State", "y"));
  json_t *t = task_of(s, "t3");
  store_tx_update(tx, STORE_SERVICE, upd, cur, 5);
  store_tx_put(tx, STORE_TASK, t, STORE_MUST_CREATE);
  json_t *t4 = task_of(s, "t4");
  json_object_set_new(t4, "Spec", json_deep_copy(json_object_get(t4, "Spec")));
  store_tx_put(tx, STORE_TASK, t4, STORE_MUST_CREATE);
  char *whole = encode_from(s, tx, T0 + 7, &len);
  store_tx_free(tx);
  CHECK(strstr(whole, "\"template\"") == NULL);
  CHECK_INT_EQ(store_apply(s, whole, len, 7, &err), 0);
  CHECK_INT_EQ(store_count(s, STORE_TASK), 3);
  free(whole);

  /* Malformed: a template on another kind, or with a Spec as well. */
  static const char *const bad[] = {
      "{\"time\":1,\"ops\":[{\"op\":\"put\",\"kind\":\"service\",\"expect\":0,"
      "\"obj\":{\"ID\":\"x\"},\"template\":{\"service\":\"svc1\","
      "\"spec_version\":4}}]}",
      "{\"time\":1,\"ops\":[{\"op\":\"put\",\"kind\":\"task\",\"expect\":0,"
      "\"obj\":{\"ID\":\"x\",\"Spec\":{}},\"template\":{\"service\":\"svc1\","
      "\"spec_version\":4}}]}",
      "{\"time\":1,\"ops\":[{\"op\":\"put\",\"kind\":\"task\",\"expect\":0,"
      "\"obj\":{\"ID\":\"x\"},\"template\":{\"service\":\"svc1\"}}]}",
      "{\"time\":1,\"ops\":[{\"op\":\"put\",\"kind\":\"task\",\"expect\":0,"
      "\"obj\":{\"ID\":\"x\",\"ServiceID\":\"nope\"},\"template\":{"
      "\"service\":\"nope\",\"spec_version\":4}}]}",
      /* another service's template */
      "{\"time\":1,\"ops\":[{\"op\":\"put\",\"kind\":\"task\",\"expect\":0,"
      "\"obj\":{\"ID\":\"x\",\"ServiceID\":\"other\"},\"template\":{"
      "\"service\":\"svc1\",\"spec_version\":4}}]}",
  };
  static const int status[] = {400, 400, 400, 404, 400};
  for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
    sh_err e = {0};
    CHECK_INT_EQ(store_apply(s, bad[i], strlen(bad[i]), 8, &e), -1);
    CHECK_INT_EQ(e.status, status[i]);
  }
  CHECK_INT_EQ(store_count(s, STORE_TASK), 3);
  CHECK_INT_EQ(store_index(s), 7);
  store_free(s);
}

/* How many times needle is in hay's len bytes (CBOR holds NULs). */
static size_t count_of(const char *hay, size_t len, const char *needle) {
  size_t n = 0, nl = strlen(needle);
  const char *end = hay + len;
  for (const char *p = hay; (p = memmem(p, (size_t)(end - p), needle, nl)); p++)
    n++;
  return n;
}

/* A snapshot names a task's template as an entry does: only a task whose
 * Spec and _EndpointSpec are its service's own objects; the restore
 * gives the same store, the tasks sharing the service's objects again,
 * and a snapshot of it is the same document. With a manager that does
 * not read the form, every task carries its spec. */
static void snapshot_names_templates(int *failed_, int form) {
  struct store *s = store_with_template();
  sh_err err = {0};
  struct store_tx *tx = store_tx_new();
  /* A manager that reads snapshots of this form and none newer. */
  store_tx_put(tx, STORE_NODE,
               json_pack("{s:s, s:{s:s, s:i}, s:{}}", "ID", "m0", "Description",
                         "Hostname", "m0", STORE_ENTRIES_KEY, form,
                         "ManagerStatus"),
               STORE_MUST_CREATE);
  json_t *t1 = task_of(s, "t1");
  /* The named form writes top-level keys and strings itself. */
  json_object_set_new(t1, "Odd \"key\"\n",
                      json_string("q\"b\\s\t\x01\xc3\xa9"));
  json_object_set_new(t1, "Big", json_integer(INT64_MIN));
  json_object_set_new(t1, "Real", json_real(0.5));
  store_tx_put(tx, STORE_TASK, t1, STORE_MUST_CREATE);
  json_t *t2 = task_of(s, "t2"); /* equal, not the same object */
  json_object_set_new(t2, "Spec", json_deep_copy(json_object_get(t2, "Spec")));
  store_tx_put(tx, STORE_TASK, t2, STORE_MUST_CREATE);
  json_t *t3 = task_of(s, "t3"); /* the service's spec, no endpoint */
  json_object_del(t3, "_EndpointSpec");
  store_tx_put(tx, STORE_TASK, t3, STORE_MUST_CREATE);
  size_t len = 0;
  char *enc = encode_from(s, tx, T0 + 3, &len);
  store_tx_free(tx);
  CHECK_INT_EQ(store_apply(s, enc, len, 3, &err), 0);
  free(enc);

  char *snap = store_snapshot(s, &len);
  if (form >= STORE_ENTRIES_SNAPSHOT_CBOR)
    CHECK(jcbor_is_map(snap, len));
  else
    CHECK(len == strlen(snap) && snap[0] == '{');
  /* The service's template, t2's and t3's; t1 names it. */
  CHECK_INT_EQ(count_of(snap, len, "ContainerSpec"), 3);
  CHECK_INT_EQ(count_of(snap, len, TEMPLATE_KEY), 1);
  struct store *r = store_new();
  CHECK_INT_EQ(store_restore(r, snap, len, &err), 0);
  char *da = dump_all(s), *dr = dump_all(r);
  CHECK_STR_EQ(da, dr);
  const json_t *svc = store_get(r, STORE_SERVICE, "svc1");
  const json_t *rt1 = store_get(r, STORE_TASK, "t1");
  CHECK(json_object_get(rt1, "Spec") == jx_get(svc, "Spec.TaskTemplate"));
  CHECK(json_object_get(rt1, "_EndpointSpec") ==
        jx_get(svc, "Spec.EndpointSpec"));
  CHECK(json_object_get(rt1, TEMPLATE_KEY) == NULL);
  CHECK(json_object_get(store_get(r, STORE_TASK, "t2"), "Spec") !=
        jx_get(svc, "Spec.TaskTemplate"));
  size_t len2 = 0;
  char *snap2 = store_snapshot(r, &len2);
  /* byte for byte, as fuzz_snapshot asks */
  CHECK(len2 == len && memcmp(snap, snap2, len) == 0);
  free(snap2);
  /* Cut anywhere, either form is refused whole: the store stays. */
  for (size_t cut = 1; cut < len; cut += 1 + cut / 8) {
    sh_err e = {0};
    CHECK_INT_EQ(store_restore(r, snap, cut, &e), -1);
    CHECK_INT_EQ(e.status, 400);
    CHECK(strstr(e.msg, "invalid snapshot: ") == e.msg);
  }
  char *dcut = dump_all(r);
  CHECK_STR_EQ(da, dcut);
  free(dcut);

  /* A manager of the entries-only form: whole tasks. */
  CHECK_INT_EQ(
      put1(s, STORE_NODE,
           json_pack("{s:s, s:{s:s, s:i}, s:{}}", "ID", "m1", "Description",
                     "Hostname", "m1", STORE_ENTRIES_KEY,
                     STORE_ENTRIES_TEMPLATES, "ManagerStatus"),
           STORE_MUST_CREATE, 4, &err),
      0);
  size_t wlen = 0;
  char *whole = store_snapshot(s, &wlen);
  CHECK(wlen == strlen(whole) && whole[0] == '{');
  CHECK_INT_EQ(count_of(whole, wlen, "ContainerSpec"), 4);
  CHECK_INT_EQ(count_of(whole, wlen, TEMPLATE_KEY), 0);
  free(whole);

  /* Malformed names: refused whole, the store left as it was. */
  static const char *const bad[] = {
      /* on another kind (a task of that ID too) */
      "{\"index\":9,\"objects\":{\"node\":[{\"ID\":\"t\",\"_Template\":{"
      "\"service\":\"s\",\"spec_version\":0}}],\"task\":[{\"ID\":\"t\","
      "\"ServiceID\":\"s\",\"Spec\":{}}],\"service\":[{\"ID\":\"s\","
      "\"Spec\":{\"TaskTemplate\":{}}}]}}",
      /* another service's template */
      "{\"index\":9,\"objects\":{\"task\":[{\"ID\":\"t\",\"ServiceID\":\"x\","
      "\"_Template\":{\"service\":\"s\",\"spec_version\":0}}],\"service\":[{"
      "\"ID\":\"s\",\"Spec\":{\"TaskTemplate\":{}}}]}}",
      /* an unknown service */
      "{\"index\":9,\"objects\":{\"task\":[{\"ID\":\"t\",\"ServiceID\":\"s\","
      "\"_Template\":{"
      "\"service\":\"x\",\"spec_version\":0}}],\"service\":[{\"ID\":\"s\","
      "\"Spec\":{\"TaskTemplate\":{}}}]}}",
      /* another spec version */
      "{\"index\":9,\"objects\":{\"task\":[{\"ID\":\"t\",\"ServiceID\":\"s\","
      "\"_Template\":{"
      "\"service\":\"s\",\"spec_version\":2}}],\"service\":[{\"ID\":\"s\","
      "\"Spec\":{\"TaskTemplate\":{}}}]}}",
      /* a Spec as well */
      "{\"index\":9,\"objects\":{\"task\":[{\"ID\":\"t\",\"ServiceID\":\"s\","
      "\"Spec\":{},"
      "\"_Template\":{\"service\":\"s\",\"spec_version\":0}}],\"service\":[{"
      "\"ID\":\"s\",\"Spec\":{\"TaskTemplate\":{}}}]}}",
      /* not an object */
      "{\"index\":9,\"objects\":{\"task\":[{\"ID\":\"t\",\"ServiceID\":\"s\","
      "\"_Template\":1}],"
      "\"service\":[{\"ID\":\"s\",\"Spec\":{\"TaskTemplate\":{}}}]}}",
      /* a service without a template */
      "{\"index\":9,\"objects\":{\"task\":[{\"ID\":\"t\",\"ServiceID\":\"s\","
      "\"_Template\":{"
      "\"service\":\"s\",\"spec_version\":0}}],\"service\":[{\"ID\":\"s\","
      "\"Spec\":{}}]}}",
  };
  for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
    sh_err e = {0};
    CHECK_INT_EQ(store_restore(r, bad[i], strlen(bad[i]), &e), -1);
    CHECK_INT_EQ(e.status, 400);
  }
  /* The well-formed one of them restores (services come after tasks). */
  static const char good[] =
      "{\"index\":9,\"objects\":{\"task\":[{\"ID\":\"t\",\"ServiceID\":\"s\","
      "\"_Template\":{\"service\":\"s\",\"spec_version\":0}}],\"service\":[{"
      "\"ID\":\"s\",\"Spec\":{\"TaskTemplate\":{\"A\":1}}}]}}";
  free(dr);
  dr = dump_all(r);
  CHECK_STR_EQ(da, dr);
  CHECK_INT_EQ(store_restore(r, good, strlen(good), &err), 0);
  CHECK_INT_EQ(jx_int(store_get(r, STORE_TASK, "t"), "Spec.A", 0), 1);
  free(da);
  free(dr);
  free(snap);
  store_free(r);
  store_free(s);
}

TEST(store_snapshot_names_templates) {
  snapshot_names_templates(failed_, STORE_ENTRIES_CBOR); /* JSON text */
}

TEST(store_snapshot_in_cbor_names_templates) {
  snapshot_names_templates(failed_, STORE_ENTRIES_SNAPSHOT_CBOR);
}

/* A service's new version from the bytes (a follower's apply, or any
 * update's) keeps the previous version's spec objects where they are
 * equal, so its tasks go on sharing them and a snapshot names them: the
 * whole Spec when nothing in it changed, the task template and endpoint
 * spec when only the replicas did; a changed template is the new one. */
TEST(store_service_put_keeps_equal_spec_objects) {
  struct store *s = store_with_template();
  sh_err err = {0};
  json_t *spec0 = jx_get(store_get(s, STORE_SERVICE, "svc1"), "Spec");
  json_t *tmpl0 = json_incref(json_object_get(spec0, "TaskTemplate"));
  json_t *ep0 = json_object_get(spec0, "EndpointSpec");
  json_t *next = json_deep_copy(store_get(s, STORE_SERVICE, "svc1"));
  json_object_set_new(next, "UpdateStatus", json_pack("{s:s}", "State", "x"));
  CHECK_INT_EQ(put1(s, STORE_SERVICE, next, 2, 3, &err), 0);
  CHECK(jx_get(store_get(s, STORE_SERVICE, "svc1"), "Spec") == spec0);
  next = json_deep_copy(store_get(s, STORE_SERVICE, "svc1"));
  jx_set(next, "Spec.Mode.Replicated.Replicas", json_integer(3));
  struct store_tx *tx = store_tx_new();
  store_tx_update(tx, STORE_SERVICE, next, store_get(s, STORE_SERVICE, "svc1"),
                  3);
  CHECK_INT_EQ(apply_tx(s, tx, 4, T0 + 4, &err), 0);
  json_t *spec1 = jx_get(store_get(s, STORE_SERVICE, "svc1"), "Spec");
  CHECK(spec1 != spec0);
  CHECK_INT_EQ(jx_int(spec1, "Mode.Replicated.Replicas", 0), 3);
  CHECK(json_object_get(spec1, "TaskTemplate") == tmpl0);
  CHECK(json_object_get(spec1, "EndpointSpec") == ep0);
  next = json_deep_copy(store_get(s, STORE_SERVICE, "svc1"));
  jx_set(next, "Spec.TaskTemplate.ContainerSpec.Image", json_string("redis"));
  CHECK_INT_EQ(put1(s, STORE_SERVICE, next, 4, 5, &err), 0);
  json_t *spec2 = jx_get(store_get(s, STORE_SERVICE, "svc1"), "Spec");
  CHECK_STR_EQ(jx_str(spec2, "TaskTemplate.ContainerSpec.Image", ""), "redis");
  CHECK(json_object_get(spec2, "EndpointSpec") == ep0);
  CHECK_STR_EQ(jx_str(tmpl0, "ContainerSpec.Image", ""), "nginx");
  json_decref(tmpl0);
  /* The leader's own document: its objects are the proposer's, left as
   * they are; the store keeps its equal ones. */
  json_t *tmpl2 = jx_get(spec2, "TaskTemplate");
  next = json_deep_copy(store_get(s, STORE_SERVICE, "svc1"));
  jx_set(next, "Spec.Mode.Replicated.Replicas", json_integer(5));
  json_t *mine = json_incref(jx_get(next, "Spec.TaskTemplate"));
  json_t *mine_spec = json_incref(json_object_get(next, "Spec"));
  tx = store_tx_new();
  store_tx_put(tx, STORE_SERVICE, next, 5);
  json_t *doc = store_tx_doc(tx, T0 + 6);
  store_tx_free(tx);
  CHECK_INT_EQ(store_apply_doc(s, doc, true, 6, &err), 0);
  json_t *spec3 = jx_get(store_get(s, STORE_SERVICE, "svc1"), "Spec");
  CHECK_INT_EQ(jx_int(spec3, "Mode.Replicated.Replicas", 0), 5);
  CHECK(json_object_get(spec3, "TaskTemplate") == tmpl2);
  CHECK(json_object_get(mine_spec, "TaskTemplate") == mine);
  CHECK(spec3 != mine_spec);
  json_decref(mine);
  json_decref(mine_spec);
  json_decref(doc);
  store_free(s);
}

/* Templates are named once every manager says its apply knows them
 * (Description._Entries): a manager of an older build, in a rolling
 * upgrade, would store such tasks without their Spec. Workers do not
 * apply entries and do not count. */
TEST(store_templates_wait_for_every_manager) {
  struct store *s = store_new();
  sh_err err = {0};
  CHECK(store_managers_read(s, STORE_ENTRIES_TEMPLATES));
  CHECK_INT_EQ(
      put1(s, STORE_NODE,
           json_pack("{s:s, s:{s:s}, s:{s:b}}", "ID", "m1", "Description",
                     "Hostname", "m1", "ManagerStatus", "Leader", 1),
           STORE_MUST_CREATE, 1, &err),
      0);
  CHECK(!store_managers_read(s, STORE_ENTRIES_TEMPLATES));
  json_t *m1 = json_deep_copy(store_get(s, STORE_NODE, "m1"));
  jx_set(m1, "Description." STORE_ENTRIES_KEY, json_integer(STORE_ENTRIES));
  CHECK_INT_EQ(put1(s, STORE_NODE, m1, 1, 2, &err), 0);
  CHECK(store_managers_read(s, STORE_ENTRIES_TEMPLATES));
  CHECK_INT_EQ(put1(s, STORE_NODE,
                    json_pack("{s:s, s:{s:s}}", "ID", "w1", "Description",
                              "Hostname", "w1"),
                    STORE_MUST_CREATE, 3, &err),
               0);
  CHECK(store_managers_read(s, STORE_ENTRIES_TEMPLATES));
  CHECK_INT_EQ(put1(s, STORE_NODE,
                    json_pack("{s:s, s:{s:s}, s:{}}", "ID", "m2", "Description",
                              "Hostname", "m2", "ManagerStatus"),
                    STORE_MUST_CREATE, 4, &err),
               0);
  CHECK(!store_managers_read(s, STORE_ENTRIES_TEMPLATES));
  store_free(s);
}

/* Once the managers write the newer form, a node whose build does not
 * say it applies it cannot become a manager (join or promotion). */
TEST(store_new_manager_must_read_the_log) {
  struct store *s = store_new();
  sh_err err = {0};
  cleanup_json json_t *old = json_pack("{s:s}", "Hostname", "old");
  cleanup_json json_t *cur =
      json_pack("{s:s, s:i}", "Hostname", "new", STORE_ENTRIES_KEY, 1);
  CHECK_INT_EQ(store_check_new_manager(s, old, &err), -1); /* no manager */
  CHECK_INT_EQ(put1(s, STORE_NODE,
                    json_pack("{s:s, s:O, s:{s:b}}", "ID", "m1", "Description",
                              cur, "ManagerStatus", "Leader", 1),
                    STORE_MUST_CREATE, 1, &err),
               0);
  sh_err e = {0};
  CHECK_INT_EQ(store_check_new_manager(s, old, &e), -1);
  CHECK_INT_EQ(e.status, 400);
  CHECK(strstr(e.msg, "cannot read the raft log") != NULL);
  CHECK_INT_EQ(store_check_new_manager(s, cur, &err), 0);
  /* An older manager among them: nothing newer is written yet. */
  CHECK_INT_EQ(put1(s, STORE_NODE,
                    json_pack("{s:s, s:O, s:{}}", "ID", "m2", "Description",
                              old, "ManagerStatus"),
                    STORE_MUST_CREATE, 2, &err),
               0);
  CHECK_INT_EQ(store_check_new_manager(s, old, &err), 0);
  /* Managers all of the newest form: one of the entries-only form is
   * refused too (it cannot restore their snapshots). */
  struct store *s2 = store_new();
  cleanup_json json_t *newest = json_pack("{s:s, s:i}", "Hostname", "newest",
                                          STORE_ENTRIES_KEY, STORE_ENTRIES);
  CHECK_INT_EQ(put1(s2, STORE_NODE,
                    json_pack("{s:s, s:O, s:{s:b}}", "ID", "m1", "Description",
                              newest, "ManagerStatus", "Leader", 1),
                    STORE_MUST_CREATE, 1, &err),
               0);
  sh_err e2 = {0};
  CHECK_INT_EQ(store_check_new_manager(s2, cur, &e2), -1);
  char want[64];
  snprintf(want, sizeof want, "entries of form 1, they write form %d",
           STORE_ENTRIES);
  CHECK(strstr(e2.msg, want) != NULL);
  CHECK_INT_EQ(store_check_new_manager(s2, newest, &err), 0);
  store_free(s2);
  store_free(s);
}

/* Entries go to raft as CBOR once every manager reads it, as JSON text
 * before (a rolling upgrade's older manager could not apply them); both
 * forms apply to the same store, and a torn CBOR entry is refused with the
 * store left as it was. */
TEST(store_entries_are_cbor_once_every_manager_reads_them) {
  struct store *s = store_new();
  sh_err err = {0};
  CHECK_INT_EQ(
      put1(s, STORE_NODE,
           json_pack("{s:s, s:{s:s, s:i}, s:{s:b}}", "ID", "m1", "Description",
                     "Hostname", "m1", STORE_ENTRIES_KEY,
                     STORE_ENTRIES_SNAPSHOT_TEMPLATES, "ManagerStatus",
                     "Leader", 1),
           STORE_MUST_CREATE, 1, &err),
      0);
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_SERVICE, svc("s1", "web"), STORE_MUST_CREATE);
  store_tx_put(tx, STORE_SERVICE, svc("s2", "db \"\xc3\xa9\x01"),
               STORE_MUST_CREATE);
  cleanup_json json_t *doc = store_tx_doc(tx, T0 + 7);
  store_tx_free(tx);

  size_t jlen = 0, clen = 0;
  char *json = store_entry_encode(s, doc, &jlen);
  CHECK(json[0] == '{' && !jcbor_is_map(json, jlen));
  json_t *m1 = json_deep_copy(store_get(s, STORE_NODE, "m1"));
  jx_set(m1, "Description." STORE_ENTRIES_KEY,
         json_integer(STORE_ENTRIES_CBOR));
  CHECK_INT_EQ(put1(s, STORE_NODE, m1, 1, 2, &err), 0);
  char *cbor = store_entry_encode(s, doc, &clen);
  CHECK(jcbor_is_map(cbor, clen));
  CHECK(clen < jlen);

  cleanup_json json_t *from_json = NULL, *from_cbor = NULL;
  CHECK_INT_EQ(store_entry_decode(json, jlen, &from_json, &err), 0);
  CHECK_INT_EQ(store_entry_decode(cbor, clen, &from_cbor, &err), 0);
  CHECK(json_equal(from_json, doc));
  CHECK(json_equal(from_cbor, doc));

  struct store *a = store_new(), *b = store_new();
  sh_err e = {0};
  for (size_t cut = 1; cut < clen; cut += 7) {
    CHECK_INT_EQ(store_apply(b, cbor, cut, 3, &e), -1);
    CHECK_INT_EQ(e.status, 400);
    CHECK(strstr(e.msg, "invalid transaction: invalid CBOR") != NULL);
  }
  CHECK_INT_EQ(store_count(b, STORE_SERVICE), 0);
  CHECK_INT_EQ(store_apply(a, json, jlen, 3, &err), 0);
  CHECK_INT_EQ(store_apply(b, cbor, clen, 3, &err), 0);
  size_t la = 0, lb = 0;
  char *sa = store_snapshot(a, &la), *sb = store_snapshot(b, &lb);
  CHECK(la == lb && memcmp(sa, sb, la) == 0);
  CHECK_STR_EQ(jx_str(store_get(b, STORE_SERVICE, "s2"), "Spec.Name", ""),
               "db \"\xc3\xa9\x01");
  free(sa);
  free(sb);
  free(json);
  free(cbor);
  store_free(a);
  store_free(b);
  store_free(s);
}
