/* A node's assignments over its session: the dispatcher sends the whole
 * list once, then changes, made either by walking the node's tasks or
 * from the changed tasks alone; the agent applied to its copy must always
 * hold what a fresh whole list says, over random task changes. */
#include "test.h"

#include "agent/agent.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "manager/dispatcher.h"
#include "store/store.h"

#define T0 (INT64_C(1767225600) * NS_PER_SEC)

static int apply(struct store *s, struct store_tx *tx, int64_t now) {
  size_t len;
  char *data = store_tx_encode(tx, now, &len);
  store_tx_free(tx);
  sh_err err = {0};
  int rc = store_apply(s, data, len, store_index(s) + 1, &err);
  free(data);
  return rc;
}

static const char *const nodes[] = {NULL, "n1", "n2"};
static const char *const states[] = {"pending", "assigned", "running",
                                     "failed"};
static const char *const desired[] = {"running", "shutdown"};

static json_t *rand_task(uint64_t *st, const char *id) {
  json_t *t = json_pack(
      "{s:s, s:s, s:s, s:{s:s}, s:{s:{s:s}}}", "ID", id, "ServiceID", "svc1",
      "DesiredState", desired[test_rnd(st, 2)], "Status", "State",
      states[test_rnd(st, 4)], "Spec", "ContainerSpec", "Image", "busybox");
  const char *node = nodes[test_rnd(st, 3)];
  if (node)
    json_object_set_new(t, "NodeID", json_string(node));
  /* A task's spec never changes once made (an update makes new tasks):
   * whether it names a secret goes with its ID. */
  if ((id[1] + id[2]) % 3 == 0)
    jx_set(t, "Spec.ContainerSpec.Secrets",
           json_pack("[{s:s, s:s}]", "SecretID", "sec1", "SecretName", "s1"));
  return t;
}

static bool on_n1(const json_t *t) {
  return t && strcmp(jx_str(t, "NodeID", ""), "n1") == 0;
}

static void changes_rebuild_the_whole_list(int *failed_, bool by_changed) {
  struct store *s = store_new();
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_SECRET,
               json_pack("{s:s, s:{s:s}, s:s}", "ID", "sec1", "Spec", "Name",
                         "s1", "_Data", "aGk="),
               STORE_MUST_CREATE);
  CHECK_INT_EQ(apply(s, tx, T0), 0);

  json_t *sent = NULL, *files = NULL;      /* the dispatcher's session */
  json_t *assigned = NULL, *afiles = NULL; /* the agent's copy */
  json_t *whole = NULL;
  json_t *msg = dispatcher_assignments(s, "n1", NULL, &sent, &files);
  CHECK(msg != NULL);
  CHECK_STR_EQ(jx_str(msg, "Type", NULL), "assignments");
  CHECK_INT_EQ(json_array_size(json_object_get(msg, "Tasks")), 0);
  whole = agent_assignments_apply(&assigned, &afiles, msg);
  json_decref(msg);
  CHECK(whole != NULL);

  uint64_t st = 0x9e3779b97f4a7c15ULL;
  int deltas = 0;
  for (int step = 0; step < 500; step++) {
    char id[8];
    snprintf(id, sizeof id, "t%02u", test_rnd(&st, 12));
    json_t *cur = store_get(s, STORE_TASK, id);
    json_t *old = json_incref(cur);
    tx = store_tx_new();
    if (cur && test_rnd(&st, 4) == 0)
      store_tx_delete(tx, STORE_TASK, id, STORE_ANY_VERSION);
    else
      store_tx_put(tx, STORE_TASK, rand_task(&st, id), STORE_ANY_VERSION);
    CHECK_INT_EQ(apply(s, tx, T0 + step / 4), 0);
    json_t *now = store_get(s, STORE_TASK, id);

    /* What the dispatcher marks dirty: the changed task, on the node it
     * was on and the one it is on now. */
    cleanup_json json_t *changed = json_pack("{s:b}", id, true);
    msg = dispatcher_assignments(s, "n1", by_changed ? changed : NULL, &sent,
                                 &files);
    if (!on_n1(old) && !on_n1(now) && msg) {
      json_decref(old);
      FAIL_("step %d: a change on another node sent %s", step,
            jx_str(msg, "Type", ""));
    }
    json_decref(old);
    if (msg) {
      CHECK_STR_EQ(jx_str(msg, "Type", NULL), "assignment_changes");
      /* One task changed: at most one entry either way. */
      CHECK(json_array_size(json_object_get(msg, "Set")) +
                json_array_size(json_object_get(msg, "Del")) <=
            1);
      json_decref(whole);
      whole = agent_assignments_apply(&assigned, &afiles, msg);
      json_decref(msg);
      CHECK(whole != NULL);
      deltas++;
    }
    json_t *fs = NULL, *ff = NULL;
    json_t *fresh = dispatcher_assignments(s, "n1", NULL, &fs, &ff);
    bool same = json_equal(json_object_get(fresh, "Tasks"),
                           json_object_get(whole, "Tasks")) &&
                json_equal(json_object_get(fresh, "Secrets"),
                           json_object_get(whole, "Secrets")) &&
                json_equal(json_object_get(fresh, "Configs"),
                           json_object_get(whole, "Configs"));
    json_decref(fresh);
    json_decref(fs);
    json_decref(ff);
    if (!same)
      FAIL_("step %d: the agent's list differs from the whole list", step);
  }
  CHECK(deltas > 50);

  /* A malformed change leaves the agent's copy as it was. */
  size_t before = json_object_size(assigned);
  json_t *bad = json_pack("{s:s, s:i, s:[]}", "Type", "assignment_changes",
                          "Set", 5, "Del");
  CHECK(agent_assignments_apply(&assigned, &afiles, bad) == NULL);
  json_decref(bad);
  CHECK_INT_EQ(json_object_size(assigned), before);

  json_decref(whole);
  json_decref(sent);
  json_decref(files);
  json_decref(assigned);
  json_decref(afiles);
  store_free(s);
}

TEST(assignments_changes_rebuild_the_whole_list) {
  changes_rebuild_the_whole_list(failed_, false);
}

/* The flush's way: only the tasks that changed are looked at. */
TEST(assignments_changes_from_the_changed_tasks_rebuild_the_whole_list) {
  changes_rebuild_the_whole_list(failed_, true);
}

/* A node's own report coming back is not sent to it; a manager's change
 * (desired state, a step at or before assigned) is. */
TEST(assignments_leave_out_the_nodes_own_reports) {
  json_t *assigned = json_pack(
      "{s:s, s:s, s:s, s:{s:s}, s:{s:s}, s:{s:i}, s:s}", "ID", "t1", "NodeID",
      "n1", "DesiredState", "running", "Spec", "Image", "busybox", "Status",
      "State", "assigned", "Version", "Index", 5, "UpdatedAt", "a");
  json_t *running = json_copy(assigned);
  json_object_set_new(
      running, "Status",
      json_pack("{s:s, s:s}", "State", "running", "Message", "started"));
  json_object_set_new(running, "Version", json_pack("{s:i}", "Index", 6));
  json_object_set_new(running, "UpdatedAt", json_string("b"));
  CHECK(!dispatcher_task_news(assigned, running));
  /* An equal copy of a part is as good as the same part. */
  json_t *copied = json_deep_copy(running);
  json_object_set_new(copied, "Status", json_pack("{s:s}", "State", "failed"));
  CHECK(!dispatcher_task_news(running, copied));
  /* Desired state moved: news, whatever the status did. */
  json_t *stop = json_copy(copied);
  json_object_set_new(stop, "DesiredState", json_string("shutdown"));
  CHECK(dispatcher_task_news(copied, stop));
  /* A field added (e.g. an endpoint) is news. */
  json_t *more = json_copy(running);
  json_object_set_new(more, "Endpoint", json_object());
  CHECK(dispatcher_task_news(running, more));
  /* Placement (pending -> assigned), creation and deletion are news. */
  json_t *pending = json_copy(assigned);
  json_object_set_new(pending, "Status",
                      json_pack("{s:s}", "State", "pending"));
  CHECK(dispatcher_task_news(pending, assigned));
  CHECK(dispatcher_task_news(NULL, assigned));
  CHECK(dispatcher_task_news(running, NULL));
  json_decref(assigned);
  json_decref(running);
  json_decref(copied);
  json_decref(stop);
  json_decref(more);
  json_decref(pending);
}

/* The message's task for one with its id, or NULL. */
static json_t *sent_task(const json_t *msg, const char *id) {
  return jx_find(json_object_get(msg, "Tasks"), "ID", id);
}

/* A task goes to its node as a view that shares the store's values
 * (its Spec is its service's template) and leaves out every '_' key;
 * the registry credentials go in a copy of the Spec, never into the
 * store's. */
TEST(assignments_share_the_store_and_never_edit_it) {
  struct store *s = store_new();
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_TASK,
               json_pack("{s:s, s:s, s:s, s:s, s:{s:s}, s:{s:{s:s}}, s:i}",
                         "ID", "t1", "ServiceID", "svc1", "NodeID", "n1",
                         "DesiredState", "running", "Status", "State",
                         "assigned", "Spec", "ContainerSpec", "Image",
                         "busybox", "_SpecVersion", 1),
               STORE_MUST_CREATE);
  store_tx_put(tx, STORE_TASK,
               json_pack("{s:s, s:s, s:s, s:s, s:{s:s}, s:{s:{s:s, s:{s:s}}}}",
                         "ID", "t2", "ServiceID", "svc2", "NodeID", "n1",
                         "DesiredState", "running", "Status", "State",
                         "assigned", "Spec", "ContainerSpec", "Image",
                         "r:5001/img", "_PullOptions", "RegistryAuth",
                         "c2VjcmV0"),
               STORE_MUST_CREATE);
  CHECK_INT_EQ(apply(s, tx, T0), 0);
  json_t *sent = NULL, *files = NULL;
  json_t *msg = dispatcher_assignments(s, "n1", NULL, &sent, &files);
  cleanup_free char *dump = jx_dump(msg);
  CHECK(!strstr(dump, "\"_"));
  const json_t *st1 = store_get(s, STORE_TASK, "t1");
  const json_t *m1 = sent_task(msg, "t1");
  CHECK(m1 != NULL &&
        json_object_get(m1, "Spec") == json_object_get(st1, "Spec"));
  const json_t *m2 = sent_task(msg, "t2");
  CHECK_STR_EQ(jx_str(m2, "Spec.ContainerSpec.PullOptions.RegistryAuth", ""),
               "c2VjcmV0");
  const json_t *st2 = store_get(s, STORE_TASK, "t2");
  CHECK(!jx_get(st2, "Spec.ContainerSpec.PullOptions"));
  CHECK(jx_get(st2, "Spec.ContainerSpec._PullOptions") != NULL);
  json_decref(msg);
  /* Running: pulled already, no credentials sent any more. */
  json_t *run = json_copy((json_t *)st2);
  json_object_set_new(run, "Status", json_pack("{s:s}", "State", "running"));
  tx = store_tx_new();
  store_tx_put(tx, STORE_TASK, run, jx_int(st2, "Version.Index", 0));
  CHECK_INT_EQ(apply(s, tx, T0 + NS_PER_SEC), 0);
  json_decref(sent);
  json_decref(files);
  sent = files = NULL;
  msg = dispatcher_assignments(s, "n1", NULL, &sent, &files);
  CHECK(sent_task(msg, "t2") != NULL);
  CHECK(!jx_get(sent_task(msg, "t2"), "Spec.ContainerSpec.PullOptions"));
  json_decref(msg);
  json_decref(sent);
  json_decref(files);
  store_free(s);
}

/* What the store's watchers get for a status report (status_only): the
 * news is what dispatcher_task_news says of the two versions, without
 * their walk. Each step through the store's own apply; the versions are
 * looked at in the watcher, while they live. */
struct seen_change {
  int n;
  bool status_only, news, whole_news;
};

static void keep_change(const struct store_change *ch, size_t n, uint64_t index,
                        void *ud) {
  struct seen_change *s = ud;
  s->n = (int)n;
  if (n != 1)
    return;
  s->status_only = ch[0].status_only;
  s->news = dispatcher_change_news(&ch[0]);
  s->whole_news = dispatcher_task_news(ch[0].old_obj, ch[0].new_obj);
}

static json_t *status_rule_any(const json_t *task, const json_t *status) {
  return json_copy((json_t *)status);
}

static int apply_tx(struct store *st, struct store_tx *tx, uint64_t index) {
  size_t len;
  char *data = store_tx_encode(tx, 1, &len);
  store_tx_free(tx);
  sh_err err = {0};
  int rc = store_apply(st, data, len, index, &err);
  free(data);
  return rc;
}

TEST(assignments_status_report_changes_are_news_as_the_whole_compare) {
  struct store *st = store_new();
  store_set_status_rule(st, status_rule_any);
  struct seen_change seen = {0};
  store_watch(st, keep_change, &seen);
  uint64_t index = 1;
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_TASK,
               json_pack("{s:s, s:s, s:s, s:{s:s}, s:{s:s}}", "ID", "t1",
                         "NodeID", "n1", "DesiredState", "running", "Spec",
                         "Image", "busybox", "Status", "State", "pending"),
               STORE_MUST_CREATE);
  CHECK_INT_EQ(apply_tx(st, tx, index++), 0);
  CHECK(!seen.status_only); /* a creation */
  /* pending -> assigned (the managers' step: news), then the node's own
   * steps (not news), then back to a state before assigned (news). */
  static const struct {
    const char *state;
    bool news;
  } steps[] = {{"assigned", true},
               {"accepted", false},
               {"running", false},
               {"pending", true}};
  for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
    tx = store_tx_new();
    store_tx_task_status(tx, "t1", "n1",
                         json_pack("{s:s}", "State", steps[i].state));
    seen.n = 0;
    CHECK_INT_EQ(apply_tx(st, tx, index++), 0);
    CHECK_INT_EQ(seen.n, 1);
    CHECK(seen.status_only);
    CHECK(seen.news == steps[i].news);
    CHECK(seen.whole_news == steps[i].news);
  }
  /* A report and another change of the task in one transaction: not a
   * status report's alone. */
  tx = store_tx_new();
  store_tx_task_status(tx, "t1", "n1", json_pack("{s:s}", "State", "running"));
  json_t *t = json_copy(store_get(st, STORE_TASK, "t1"));
  json_object_set_new(t, "DesiredState", json_string("shutdown"));
  store_tx_put(tx, STORE_TASK, t, STORE_ANY_VERSION);
  CHECK_INT_EQ(apply_tx(st, tx, index++), 0);
  CHECK(!seen.status_only);
  CHECK(seen.news);
  store_free(st);
}
