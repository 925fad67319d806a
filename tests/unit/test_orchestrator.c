/* Orchestrator: replicated and global services, restarts, drain/down,
 * history, rolling updates, removal; through the fixture's store. */
#include "fixture.h"
#include "test.h"

#define WEB                                                                    \
  "{\"Name\":\"web\",\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":"          \
  "\"nginx\"}%s},\"Mode\":{\"Replicated\":{\"Replicas\":%d}}%s}"

/* A global service. */
#define MON                                                                    \
  "{\"Name\":\"mon\",\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":"          \
  "\"busybox\"}},\"Mode\":{\"Global\":{}}}"

static const char *web(char *buf, size_t n, int replicas, const char *tmpl,
                       const char *rest) {
  snprintf(buf, n, WEB, tmpl ? tmpl : "", replicas, rest ? rest : "");
  return buf;
}

static void three_nodes(struct fx *f) {
  fx_node(f, "node1", NULL);
  fx_node(f, "node2", NULL);
  fx_node(f, "node3", NULL);
}

static bool distinct_nodes(json_t *tasks) {
  size_t i, j;
  json_t *a, *b;
  json_array_foreach(tasks, i, a) {
    json_array_foreach(tasks, j, b) {
      if (i != j &&
          strcmp(jx_str(a, "NodeID", "a"), jx_str(b, "NodeID", "b")) == 0)
        return false;
    }
  }
  return true;
}

TEST(orch_two_replicas_spread_on_three_nodes) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  three_nodes(&f);
  char b[512];
  fx_service(&f, "svc1", web(b, sizeof b, 2, NULL, NULL));
  CHECK_INT_EQ(fx_orch(&f), 1);
  json_t *l = fx_tasks(&f, "svc1", "running", "assigned");
  CHECK_INT_EQ(json_array_size(l), 2);
  CHECK_INT_EQ(jx_int(json_array_get(l, 0), "Slot", 0), 1);
  CHECK_STR_EQ(jx_str(json_array_get(l, 1), "Name", ""), "web.2");
  CHECK_STR_EQ(jx_str(json_array_get(l, 0), "Spec.ContainerSpec.Image", ""),
               "nginx");
  json_decref(l);
  fx_converge(&f, true);
  l = fx_tasks(&f, "svc1", "running", "running");
  CHECK_INT_EQ(json_array_size(l), 2);
  CHECK(distinct_nodes(l));
  json_decref(l);
  /* Converged: nothing more to do. */
  CHECK_INT_EQ(fx_orch(&f), 0);
  CHECK_INT_EQ(fx_sched(&f), 0);
  fx_free(&f);
}

TEST(orch_scale_up_and_down) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  three_nodes(&f);
  char b[512];
  fx_service(&f, "svc1", web(b, sizeof b, 2, NULL, NULL));
  fx_converge(&f, true);
  fx_scale(&f, "svc1", 4);
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc1", "running", "running"), 4);
  CHECK_INT_EQ(fx_on_node(&f, "svc1", "node1") +
                   fx_on_node(&f, "svc1", "node2") +
                   fx_on_node(&f, "svc1", "node3"),
               4);
  CHECK(fx_on_node(&f, "svc1", "node1") >= 1 &&
        fx_on_node(&f, "svc1", "node2") >= 1 &&
        fx_on_node(&f, "svc1", "node3") >= 1);
  /* No scale-up touched UpdateStatus. */
  CHECK(!jx_get(store_get(f.s, STORE_SERVICE, "svc1"), "UpdateStatus"));

  /* The node holding two copies loses one. */
  const char *two = fx_on_node(&f, "svc1", "node1") == 2   ? "node1"
                    : fx_on_node(&f, "svc1", "node2") == 2 ? "node2"
                                                           : "node3";
  fx_scale(&f, "svc1", 3);
  fx_orch(&f);
  CHECK_INT_EQ(fx_count(&f, "svc1", "remove", NULL), 1);
  json_t *rm = fx_tasks(&f, "svc1", "remove", NULL);
  CHECK_STR_EQ(jx_str(json_array_get(rm, 0), "NodeID", ""), two);
  json_decref(rm);
  fx_converge(&f, true);
  /* Stopped and reaped. */
  CHECK_INT_EQ(fx_count(&f, "svc1", "remove", NULL), 0);
  CHECK_INT_EQ(fx_count(&f, "svc1", NULL, NULL), 3);
  json_t *l = fx_tasks(&f, "svc1", "running", "running");
  CHECK(distinct_nodes(l));
  json_decref(l);

  fx_scale(&f, "svc1", 0);
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc1", NULL, NULL), 0);
  fx_free(&f);
}

TEST(orch_global_one_per_node_and_joining_node) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  three_nodes(&f);
  fx_service(&f, "g1", MON);
  fx_orch(&f);
  json_t *l = fx_tasks(&f, "g1", "running", "assigned");
  CHECK_INT_EQ(json_array_size(l), 3);
  CHECK_STR_EQ(jx_str(json_array_get(l, 0), "NodeID", ""), "node1");
  CHECK_STR_EQ(jx_str(json_array_get(l, 0), "Name", ""), "mon.node1");
  CHECK(!jx_get(json_array_get(l, 0), "Slot"));
  json_decref(l);
  fx_sched(&f);
  l = fx_tasks(&f, "g1", NULL, "assigned");
  CHECK_INT_EQ(json_array_size(l), 3);
  CHECK_STR_EQ(jx_str(json_array_get(l, 0), "Status.Message", ""),
               "scheduler confirmed task can run on preassigned node");
  json_decref(l);
  fx_converge(&f, true);
  f.now += NS_PER_SEC;
  fx_node(&f, "node4", NULL);
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "g1", "running", "running"), 4);
  CHECK_INT_EQ(fx_on_node(&f, "g1", "node4"), 1);
  fx_free(&f);
}

TEST(orch_global_constraints_and_drain) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  fx_node(&f, "node1", "{\"disk\":\"ssd\"}");
  fx_node(&f, "node2", "{\"disk\":\"ssd\"}");
  fx_node(&f, "node3", "{\"disk\":\"hdd\"}");
  fx_service(&f, "g1",
             "{\"Name\":\"mon\",\"TaskTemplate\":{\"ContainerSpec\":{"
             "\"Image\":\"busybox\"},\"Placement\":{\"Constraints\":["
             "\"node.labels.disk==ssd\"]}},\"Mode\":{\"Global\":{}}}");
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "g1", "running", "running"), 2);
  CHECK_INT_EQ(fx_on_node(&f, "g1", "node3"), 0);
  fx_set(&f, STORE_NODE, "node2", "Spec.Availability", json_string("drain"));
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "g1", "running", "running"), 1);
  CHECK_INT_EQ(fx_count(&f, "g1", "shutdown", "shutdown"), 1);
  fx_free(&f);
}

TEST(orch_drain_moves_tasks_and_keeps_history) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  three_nodes(&f);
  char b[512];
  fx_service(&f, "svc1", web(b, sizeof b, 3, NULL, NULL));
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_on_node(&f, "svc1", "node1"), 1);
  f.now += NS_PER_SEC;
  fx_set(&f, STORE_NODE, "node1", "Spec.Availability", json_string("drain"));
  fx_orch(&f);
  /* Old task shut down; its replacement waits for it (no delay on drain). */
  CHECK_INT_EQ(fx_count(&f, "svc1", "shutdown", "running"), 1);
  CHECK_INT_EQ(fx_count(&f, "svc1", "ready", "assigned"), 1);
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc1", "running", "running"), 3);
  CHECK_INT_EQ(fx_on_node(&f, "svc1", "node1"), 0);
  json_t *old = fx_tasks(&f, "svc1", "shutdown", "shutdown");
  CHECK_INT_EQ(json_array_size(old), 1);
  CHECK_STR_EQ(jx_str(json_array_get(old, 0), "NodeID", ""), "node1");
  json_decref(old);
  fx_free(&f);
}

TEST(orch_pause_places_nothing_new) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  three_nodes(&f);
  char b[512];
  fx_service(&f, "svc1", web(b, sizeof b, 3, NULL, NULL));
  fx_converge(&f, true);
  fx_set(&f, STORE_NODE, "node1", "Spec.Availability", json_string("pause"));
  fx_scale(&f, "svc1", 6);
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc1", "running", "running"), 6);
  CHECK_INT_EQ(fx_on_node(&f, "svc1", "node1"), 1); /* kept, nothing new */
  CHECK_INT_EQ(fx_on_node(&f, "svc1", "node2"), 3);
  fx_free(&f);
}

TEST(orch_node_down_reschedules_after_delay) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  three_nodes(&f);
  char b[512];
  fx_service(&f, "svc1", web(b, sizeof b, 3, NULL, NULL));
  fx_converge(&f, true);
  f.now += NS_PER_SEC;
  fx_set(&f, STORE_NODE, "node2", "Status.State", json_string("down"));
  fx_converge(&f, true);
  /* Replacement assigned elsewhere, waiting for the restart delay (5s). */
  json_t *l = fx_tasks(&f, "svc1", "ready", "assigned");
  CHECK_INT_EQ(json_array_size(l), 1);
  CHECK(strcmp(jx_str(json_array_get(l, 0), "NodeID", ""), "node2") != 0);
  json_decref(l);
  CHECK_INT_EQ(f.wakeup, f.now + 5 * NS_PER_SEC);
  f.now += 5 * NS_PER_SEC;
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc1", "running", "running"), 3);
  CHECK_INT_EQ(fx_on_node(&f, "svc1", "node2"), 0);
  fx_free(&f);
}

/* Fails the running task of slot 1 and returns the number of tasks of
 * the slot desired running afterwards. */
static void fail_slot1(struct fx *f, const char *state) {
  json_t *l = fx_tasks(f, "svc1", "running", "running");
  size_t i;
  json_t *t;
  json_array_foreach(l, i, t) {
    if (jx_int(t, "Slot", 0) == 1)
      fx_task_state(f, jx_str(t, "ID", ""), state);
  }
  json_decref(l);
}

static size_t slot_count(struct fx *f, int64_t slot) {
  json_t *l = fx_tasks(f, "svc1", NULL, NULL);
  size_t n = 0, i;
  json_t *t;
  json_array_foreach(l, i, t) n += jx_int(t, "Slot", 0) == slot;
  json_decref(l);
  return n;
}

TEST(orch_restart_condition_none) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  three_nodes(&f);
  char b[512];
  fx_service(
      &f, "svc1",
      web(b, sizeof b, 1, ",\"RestartPolicy\":{\"Condition\":\"none\"}", NULL));
  fx_converge(&f, true);
  fail_slot1(&f, "failed");
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc1", NULL, NULL), 1);
  CHECK_INT_EQ(fx_count(&f, "svc1", "shutdown", "failed"), 1);
  f.now += 60 * NS_PER_SEC;
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc1", NULL, NULL), 1);
  fx_free(&f);
}

TEST(orch_restart_on_failure_ignores_success) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  three_nodes(&f);
  char b[512];
  fx_service(&f, "svc1",
             web(b, sizeof b, 1,
                 ",\"RestartPolicy\":{\"Condition\":\"on-failure\","
                 "\"Delay\":0}",
                 NULL));
  fx_converge(&f, true);
  fail_slot1(&f, "failed");
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc1", "running", "running"), 1);
  CHECK_INT_EQ(slot_count(&f, 1), 2);
  fail_slot1(&f, "complete");
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc1", "running", NULL), 0);
  CHECK_INT_EQ(fx_count(&f, "svc1", "shutdown", "complete"), 1);
  fx_free(&f);
}

/* How many of the service's tasks share its template object in the
 * store: the fixture applies entries from their bytes, so a new task
 * shares it only if its entry named the template (the fixture's agent
 * then puts whole copies). */
struct sharing {
  const json_t *tmpl;
  size_t n;
};

static void count_sharing(json_t *t, void *ud) {
  struct sharing *c = ud;
  c->n += json_object_get(t, "Spec") == c->tmpl;
}

static size_t sharing_template(struct fx *f, const char *sid) {
  struct sharing c = {
      jx_get(store_get(f->s, STORE_SERVICE, sid), "Spec.TaskTemplate"), 0};
  store_each_by(f->s, STORE_TASKS_BY_SERVICE, sid, count_sharing, &c);
  return c.n;
}

/* Tasks made by a service's full run (a global service's, a restart's)
 * name its template as a new replicated service's do, not a copy each. */
TEST(orch_full_run_tasks_name_the_template) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  three_nodes(&f);
  fx_service(&f, "g1", MON);
  fx_orch(&f);
  CHECK_INT_EQ(sharing_template(&f, "g1"), 3);
  char b[512];
  fx_service(
      &f, "svc1",
      web(b, sizeof b, 2, ",\"RestartPolicy\":{\"Condition\":\"any\"}", NULL));
  fx_converge(&f, true);
  f.now += NS_PER_SEC;
  fx_node(&f, "node4", NULL);
  fx_orch(&f);
  CHECK_INT_EQ(fx_on_node(&f, "g1", "node4"), 1);
  CHECK_INT_EQ(sharing_template(&f, "g1"), 1);
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "g1", "running", "running"), 4);
  CHECK_INT_EQ(sharing_template(&f, "svc1"), 0);
  f.now += NS_PER_SEC;
  fail_slot1(&f, "failed");
  fx_orch(&f);
  CHECK_INT_EQ(sharing_template(&f, "svc1"), 1);
  f.now += 10 * NS_PER_SEC; /* the restart delay */
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc1", "running", "running"), 2);
  CHECK_INT_EQ(fx_count(&f, "svc1", "shutdown", "failed"), 1);
  fx_free(&f);
}

TEST(orch_restart_any_delay_and_max_attempts) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  three_nodes(&f);
  char b[512];
  fx_service(&f, "svc1",
             web(b, sizeof b, 1,
                 ",\"RestartPolicy\":{\"Condition\":\"any\",\"Delay\":"
                 "10000000000,\"MaxAttempts\":2}",
                 NULL));
  fx_converge(&f, true);
  for (int attempt = 1; attempt <= 2; attempt++) {
    f.now += NS_PER_SEC;
    fail_slot1(&f, "complete");
    fx_converge(&f, true);
    /* The replacement waits for the delay. */
    CHECK_INT_EQ(fx_count(&f, "svc1", "ready", "assigned"), 1);
    CHECK_INT_EQ(f.wakeup, f.now + 10 * NS_PER_SEC);
    f.now += 9 * NS_PER_SEC;
    fx_converge(&f, true);
    CHECK_INT_EQ(fx_count(&f, "svc1", "ready", "assigned"), 1);
    f.now += NS_PER_SEC;
    fx_converge(&f, true);
    CHECK_INT_EQ(fx_count(&f, "svc1", "running", "running"), 1);
  }
  /* Third failure: two restarts used up. */
  f.now += NS_PER_SEC;
  fail_slot1(&f, "failed");
  fx_converge(&f, true);
  f.now += 20 * NS_PER_SEC;
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc1", "running", NULL), 0);
  CHECK_INT_EQ(fx_count(&f, "svc1", "ready", NULL), 0);
  CHECK_INT_EQ(slot_count(&f, 1), 3);
  fx_free(&f);
}

TEST(orch_restart_window) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  three_nodes(&f);
  char b[512];
  /* One restart per 60s window. */
  fx_service(&f, "svc1",
             web(b, sizeof b, 1,
                 ",\"RestartPolicy\":{\"Delay\":0,\"MaxAttempts\":1,"
                 "\"Window\":60000000000}",
                 NULL));
  fx_converge(&f, true);
  f.now += NS_PER_SEC;
  fail_slot1(&f, "failed");
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc1", "running", "running"), 1);
  f.now += NS_PER_SEC; /* inside the window: no more restarts */
  fail_slot1(&f, "failed");
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc1", "running", NULL), 0);
  fx_free(&f);

  fx_init(&f, 5);
  three_nodes(&f);
  fx_service(&f, "svc1",
             web(b, sizeof b, 1,
                 ",\"RestartPolicy\":{\"Delay\":0,\"MaxAttempts\":1,"
                 "\"Window\":60000000000}",
                 NULL));
  fx_converge(&f, true);
  f.now += NS_PER_SEC;
  fail_slot1(&f, "failed");
  fx_converge(&f, true);
  f.now += 120 * NS_PER_SEC; /* the first restart left the window */
  fail_slot1(&f, "failed");
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc1", "running", "running"), 1);
  fx_free(&f);
}

/* Three nodes and svc1 with replicas restarting at once. */
static void svc1_no_delay(struct fx *f, int64_t history_limit, int replicas) {
  char b[512];
  fx_init(f, history_limit);
  three_nodes(f);
  fx_service(
      f, "svc1",
      web(b, sizeof b, replicas, ",\"RestartPolicy\":{\"Delay\":0}", NULL));
}

TEST(orch_history_bounded_by_retention_limit) {
  cleanup_fx struct fx f = {0};
  svc1_no_delay(&f, 3, 2);
  fx_converge(&f, true);
  for (int i = 0; i < 6; i++) {
    f.now += NS_PER_SEC;
    fail_slot1(&f, "failed");
    fx_converge(&f, true);
    CHECK(slot_count(&f, 1) <= 3);
  }
  CHECK_INT_EQ(slot_count(&f, 1), 3);
  CHECK_INT_EQ(slot_count(&f, 2), 1);
  CHECK_INT_EQ(fx_count(&f, "svc1", "running", "running"), 2);
  /* The newest history stays: the oldest failures went first. */
  json_t *l = fx_tasks(&f, "svc1", "shutdown", "failed");
  CHECK_INT_EQ(json_array_size(l), 2);
  json_decref(l);
  fx_free(&f);

  /* -1: never clean up. */
  svc1_no_delay(&f, -1, 1);
  fx_converge(&f, true);
  for (int i = 0; i < 7; i++) {
    f.now += NS_PER_SEC;
    fail_slot1(&f, "failed");
    fx_converge(&f, true);
  }
  CHECK_INT_EQ(slot_count(&f, 1), 8);
  fx_free(&f);
}

static void set_image(struct fx *f, const char *image, const char *update) {
  json_t *cur = store_get(f->s, STORE_SERVICE, "svc1");
  json_t *spec = json_deep_copy(json_object_get(cur, "Spec"));
  jx_set(spec, "TaskTemplate.ContainerSpec.Image", json_string(image));
  if (update)
    json_object_set_new(spec, "UpdateConfig", json_loads(update, 0, NULL));
  char *s = jx_dump(spec);
  json_decref(spec);
  fx_update(f, "svc1", s, NULL);
  free(s);
}

static size_t with_image(struct fx *f, const char *image, const char *desired) {
  json_t *l = fx_tasks(f, "svc1", desired, NULL);
  size_t n = 0, i;
  json_t *t;
  json_array_foreach(l, i, t) n +=
      strcmp(jx_str(t, "Spec.ContainerSpec.Image", ""), image) == 0;
  json_decref(l);
  return n;
}

TEST(orch_rolling_update_one_batch_at_a_time) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  three_nodes(&f);
  char b[512];
  fx_service(&f, "svc1", web(b, sizeof b, 3, NULL, NULL));
  fx_converge(&f, true);
  f.now += NS_PER_SEC;
  set_image(&f, "nginx:2",
            "{\"Parallelism\":1,\"Delay\":10000000000,\"Monitor\":"
            "1000000000}");
  fx_orch(&f);
  json_t *svc = store_get(f.s, STORE_SERVICE, "svc1");
  CHECK_STR_EQ(jx_str(svc, "UpdateStatus.State", ""), "updating");
  CHECK_STR_EQ(jx_str(svc, "UpdateStatus.Message", ""), "update in progress");
  CHECK_STR_EQ(jx_str(svc, "PreviousSpec.TaskTemplate.ContainerSpec.Image", ""),
               "nginx");
  /* One slot replaced: stop-first, new task waits for the old one. */
  CHECK_INT_EQ(with_image(&f, "nginx:2", NULL), 1);
  CHECK_INT_EQ(fx_count(&f, "svc1", "shutdown", "running"), 1);
  CHECK_INT_EQ(fx_count(&f, "svc1", "ready", NULL), 1);
  fx_converge(&f, true);
  CHECK_INT_EQ(with_image(&f, "nginx:2", "running"), 1);
  CHECK_INT_EQ(with_image(&f, "nginx", "running"), 2);
  /* Delay between batches. */
  CHECK_INT_EQ(f.wakeup, f.now + 10 * NS_PER_SEC);
  f.now += 5 * NS_PER_SEC;
  fx_converge(&f, true);
  CHECK_INT_EQ(with_image(&f, "nginx:2", NULL), 1);
  f.now += 5 * NS_PER_SEC;
  fx_converge(&f, true);
  CHECK_INT_EQ(with_image(&f, "nginx:2", "running"), 2);
  f.now += 10 * NS_PER_SEC;
  fx_converge(&f, true);
  CHECK_INT_EQ(with_image(&f, "nginx:2", "running"), 3);
  /* The last slot's Delay, then Monitor (Delay + 1s as Delay >= Monitor). */
  f.now += 20 * NS_PER_SEC;
  fx_converge(&f, true);
  svc = store_get(f.s, STORE_SERVICE, "svc1");
  CHECK_STR_EQ(jx_str(svc, "UpdateStatus.State", ""), "updating");
  f.now += NS_PER_SEC;
  fx_converge(&f, true);
  svc = store_get(f.s, STORE_SERVICE, "svc1");
  CHECK_STR_EQ(jx_str(svc, "UpdateStatus.State", ""), "completed");
  CHECK_STR_EQ(jx_str(svc, "UpdateStatus.Message", ""), "update completed");
  CHECK(jx_get(svc, "UpdateStatus.CompletedAt"));
  CHECK(!jx_get(svc, "_Update"));
  CHECK_INT_EQ(fx_count(&f, "svc1", "shutdown", "shutdown"), 3);
  fx_free(&f);
}

static const char *failing_new_task(struct fx *f, char *id, size_t n) {
  json_t *l = fx_tasks(f, "svc1", "running", "running");
  size_t i;
  json_t *t;
  id[0] = '\0';
  json_array_foreach(l, i, t) {
    if (strcmp(jx_str(t, "Spec.ContainerSpec.Image", ""), "nginx:bad") == 0)
      snprintf(id, n, "%s", jx_str(t, "ID", ""));
  }
  json_decref(l);
  if (*id)
    fx_task_state(f, id, "failed");
  return id;
}

TEST(orch_update_failure_pauses) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  three_nodes(&f);
  char b[512];
  fx_service(&f, "svc1", web(b, sizeof b, 3, NULL, NULL));
  fx_converge(&f, true);
  f.now += NS_PER_SEC;
  set_image(&f, "nginx:bad",
            "{\"Parallelism\":1,\"Delay\":30000000000,\"FailureAction\":"
            "\"pause\"}");
  fx_converge(&f, true);
  char id[64];
  f.now += NS_PER_SEC;
  CHECK(*failing_new_task(&f, id, sizeof id));
  fx_orch(&f);
  json_t *svc = store_get(f.s, STORE_SERVICE, "svc1");
  CHECK_STR_EQ(jx_str(svc, "UpdateStatus.State", ""), "paused");
  char want[160];
  snprintf(want, sizeof want,
           "update paused due to failure or early termination of task %s", id);
  CHECK_STR_EQ(jx_str(svc, "UpdateStatus.Message", ""), want);
  /* Paused: no more slots are replaced. */
  f.now += 60 * NS_PER_SEC;
  fx_converge(&f, true);
  CHECK_INT_EQ(with_image(&f, "nginx", "running"), 2);
  CHECK_STR_EQ(
      jx_str(store_get(f.s, STORE_SERVICE, "svc1"), "UpdateStatus.State", ""),
      "paused");
  fx_free(&f);
}

TEST(orch_update_failure_rolls_back) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  three_nodes(&f);
  char b[512];
  fx_service(&f, "svc1", web(b, sizeof b, 3, NULL, NULL));
  fx_converge(&f, true);
  f.now += NS_PER_SEC;
  set_image(&f, "nginx:bad",
            "{\"Parallelism\":1,\"FailureAction\":\"rollback\"}");
  fx_converge(&f, true);
  char id[64];
  f.now += NS_PER_SEC;
  CHECK(*failing_new_task(&f, id, sizeof id));
  fx_orch(&f);
  json_t *svc = store_get(f.s, STORE_SERVICE, "svc1");
  CHECK_STR_EQ(jx_str(svc, "UpdateStatus.State", ""), "rollback_started");
  CHECK_STR_EQ(jx_str(svc, "Spec.TaskTemplate.ContainerSpec.Image", ""),
               "nginx");
  CHECK(!jx_get(svc, "PreviousSpec"));
  for (int i = 0; i < 4; i++) {
    fx_converge(&f, true);
    f.now += 6 * NS_PER_SEC;
  }
  fx_converge(&f, true);
  svc = store_get(f.s, STORE_SERVICE, "svc1");
  CHECK_STR_EQ(jx_str(svc, "UpdateStatus.State", ""), "rollback_completed");
  CHECK_STR_EQ(jx_str(svc, "UpdateStatus.Message", ""), "rollback completed");
  CHECK_INT_EQ(with_image(&f, "nginx", "running"), 3);
  CHECK_INT_EQ(with_image(&f, "nginx:bad", "running"), 0);
  fx_free(&f);
}

TEST(orch_manual_rollback_restores_previous_spec) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  three_nodes(&f);
  char b[512];
  fx_service(&f, "svc1", web(b, sizeof b, 2, NULL, NULL));
  fx_converge(&f, true);
  set_image(&f, "nginx:2", "{\"Parallelism\":0}");
  for (int i = 0; i < 3; i++) {
    fx_converge(&f, true);
    f.now += 6 * NS_PER_SEC;
  }
  CHECK_INT_EQ(with_image(&f, "nginx:2", "running"), 2);
  fx_update(&f, "svc1", NULL, "previous");
  json_t *svc = store_get(f.s, STORE_SERVICE, "svc1");
  CHECK_STR_EQ(jx_str(svc, "UpdateStatus.Message", ""),
               "manually requested rollback");
  for (int i = 0; i < 4; i++) {
    fx_converge(&f, true);
    f.now += 6 * NS_PER_SEC;
  }
  svc = store_get(f.s, STORE_SERVICE, "svc1");
  CHECK_STR_EQ(jx_str(svc, "UpdateStatus.State", ""), "rollback_completed");
  CHECK_INT_EQ(with_image(&f, "nginx", "running"), 2);
  /* Tasks are up to date with the restored spec version. */
  json_t *l = fx_tasks(&f, "svc1", "running", NULL);
  CHECK_INT_EQ(jx_int(json_array_get(l, 0), "_SpecVersion", -1),
               jx_int(svc, "_SpecVersion", -2));
  json_decref(l);
  fx_free(&f);
}

TEST(orch_update_order_start_first_vs_stop_first) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  three_nodes(&f);
  char b[512];
  fx_service(&f, "svc1", web(b, sizeof b, 1, NULL, NULL));
  fx_converge(&f, true);
  set_image(&f, "nginx:2", "{\"Parallelism\":1,\"Order\":\"start-first\"}");
  fx_orch(&f);
  /* Start-first: both desired running; the old stops once the new runs. */
  CHECK_INT_EQ(fx_count(&f, "svc1", "running", NULL), 2);
  fx_sched(&f);
  fx_agent(&f);
  CHECK_INT_EQ(fx_count(&f, "svc1", "running", "running"), 2);
  fx_orch(&f);
  CHECK_INT_EQ(with_image(&f, "nginx", "shutdown"), 1);
  CHECK_INT_EQ(with_image(&f, "nginx:2", "running"), 1);

  set_image(&f, "nginx:3", "{\"Parallelism\":1,\"Order\":\"stop-first\"}");
  fx_orch(&f);
  /* Stop-first: the old goes first, the new waits in "ready". */
  CHECK_INT_EQ(fx_count(&f, "svc1", "running", NULL), 0);
  CHECK_INT_EQ(with_image(&f, "nginx:3", "ready"), 1);
  fx_sched(&f);
  fx_orch(&f);
  CHECK_INT_EQ(with_image(&f, "nginx:3", "ready"), 1); /* old still runs */
  fx_agent(&f);                                        /* the old one stops */
  fx_orch(&f);
  CHECK_INT_EQ(with_image(&f, "nginx:3", "running"), 1);
  fx_free(&f);
}

TEST(orch_service_removal) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  three_nodes(&f);
  char b[512];
  fx_service(&f, "svc1", web(b, sizeof b, 3, NULL, NULL));
  fx_converge(&f, true);
  struct store_tx *tx = store_tx_new();
  store_tx_delete(tx, STORE_SERVICE, "svc1", STORE_ANY_VERSION);
  fx_apply_tx(&f, tx, false);
  fx_orch(&f);
  CHECK_INT_EQ(fx_count(&f, "svc1", "remove", "running"), 3);
  fx_agent(&f);
  fx_orch(&f);
  CHECK_INT_EQ(fx_count(&f, "svc1", NULL, NULL), 0);
  fx_free(&f);
}

TEST(orch_tx_uses_versions_and_conflicts_fail_alone) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  three_nodes(&f);
  char b[512];
  fx_service(&f, "svc1", web(b, sizeof b, 1, NULL, NULL));
  fx_service(&f, "svc2",
             "{\"Name\":\"api\",\"TaskTemplate\":{\"ContainerSpec\":{"
             "\"Image\":\"busybox\"}}}");
  fx_converge(&f, true);
  fail_slot1(&f, "failed");
  /* The orchestrator reads the store, then the task changes again. */
  struct orch_out o;
  orch_out_init(&o);
  o.new_id = fx_new_id;
  o.id_ud = &f;
  orchestrator_run(f.s, f.now, &o);
  CHECK_INT_EQ(o.ntx, 1);
  fail_slot1(&f, "failed"); /* no-op on a failed task: ID not running */
  json_t *failed = fx_tasks(&f, "svc1", "running", "failed");
  CHECK_INT_EQ(json_array_size(failed), 1);
  fx_task_state(&f, jx_str(json_array_get(failed, 0), "ID", ""), "rejected");
  json_decref(failed);
  fx_apply_out(&f, &o);
  orch_out_free(&o);
  CHECK_INT_EQ(f.failed_txs, 1); /* stale version: refused as a whole */
  CHECK_INT_EQ(fx_count(&f, "svc1", NULL, NULL), 1);
  fx_converge(&f, true);
  f.now += 5 * NS_PER_SEC; /* the restart delay */
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc1", "running", "running"), 1);
  CHECK_INT_EQ(fx_count(&f, "svc2", "running", "running"), 1);
  fx_free(&f);
}

/* A large service is made, placed and removed in batches of at most
 * ORCH_BATCH task changes per run, and converges over the runs. */
TEST(orch_large_service_in_batches) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  three_nodes(&f);
  char b[512];
  int n = 2 * ORCH_BATCH + 17;
  fx_service(&f, "svc1",
             web(b, sizeof b, n,
                 ",\"Placement\":{\"Constraints\":[\"node.labels.none==x\"]}",
                 NULL));
  struct orch_out o;
  orch_out_init(&o);
  o.new_id = fx_new_id;
  o.id_ud = &f;
  orchestrator_run(f.s, f.now, &o);
  CHECK(o.more); /* the rest is left for later runs */
  /* In raft entries of at most ORCH_TX_MAX creations. */
  CHECK_INT_EQ(o.ntx, (ORCH_BATCH + ORCH_TX_MAX - 1) / ORCH_TX_MAX);
  for (size_t k = 0; k < o.ntx; k++)
    CHECK(store_tx_ops(o.txs[k]) <= ORCH_TX_MAX);
  fx_apply_out(&f, &o);
  orch_out_free(&o);
  CHECK_INT_EQ(fx_count(&f, "svc1", "running", "pending"), ORCH_BATCH);
  /* The scheduler explains no more than a batch per run either, in raft
   * entries of at most ORCH_TX_MAX tasks. */
  CHECK_INT_EQ(fx_sched(&f), (ORCH_BATCH + ORCH_TX_MAX - 1) / ORCH_TX_MAX);
  json_t *l = fx_tasks(&f, "svc1", "running", "pending");
  size_t i, explained = 0;
  json_t *t;
  json_array_foreach(l, i, t) {
    if (strcmp(jx_str(t, "Status.Err", ""),
               "no suitable node (scheduling constraints not satisfied on 3 "
               "nodes)") == 0)
      explained++;
  }
  json_decref(l);
  CHECK_INT_EQ(explained, ORCH_BATCH);
  /* Later runs make the rest; slots 1..n, each once. */
  int runs = 0;
  for (; runs < 20 && fx_orch(&f) + fx_sched(&f) > 0; runs++)
    ;
  CHECK(runs >= 2 && runs < 20);
  CHECK_INT_EQ(fx_count(&f, "svc1", "running", "pending"), n);
  l = fx_tasks(&f, "svc1", NULL, NULL);
  char *seen = calloc((size_t)n + 1, 1);
  json_array_foreach(l, i, t) {
    int64_t slot = jx_int(t, "Slot", 0);
    CHECK(slot >= 1 && slot <= n && !seen[slot]);
    seen[slot] = 1;
    CHECK(*jx_str(t, "Status.Err", ""));
  }
  free(seen);
  json_decref(l);

  /* Removal: at most a batch of deletions per run, then nothing left. */
  struct store_tx *tx = store_tx_new();
  store_tx_delete(tx, STORE_SERVICE, "svc1", STORE_ANY_VERSION);
  fx_apply_tx(&f, tx, false);
  /* in raft entries of at most ORCH_TX_MAX deletions */
  orch_out_init(&o);
  o.new_id = fx_new_id;
  o.id_ud = &f;
  orchestrator_run(f.s, f.now, &o);
  CHECK_INT_EQ(o.ntx, (ORCH_BATCH + ORCH_TX_MAX - 1) / ORCH_TX_MAX);
  for (size_t k = 0; k < o.ntx; k++)
    CHECK(store_tx_ops(o.txs[k]) <= ORCH_TX_MAX);
  fx_apply_out(&f, &o);
  orch_out_free(&o);
  CHECK_INT_EQ(fx_count(&f, "svc1", NULL, NULL), n - ORCH_BATCH);
  for (runs = 0; runs < 20 && fx_orch(&f) > 0; runs++)
    ;
  CHECK_INT_EQ(fx_count(&f, "svc1", NULL, NULL), 0);
  fx_free(&f);
}

/* A rolling update of every task at once (Parallelism 0) is a service's
 * full run: one transaction of at most ORCH_TX_MAX changes per pass, so
 * its raft entry stays small, and it still converges. */
TEST(orch_full_run_of_a_large_update_stays_within_an_entry) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  three_nodes(&f);
  char b[512];
  fx_service(&f, "svc1", web(b, sizeof b, ORCH_BATCH, NULL, NULL));
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc1", "running", "running"), ORCH_BATCH);
  set_image(&f, "nginx:2", "{\"Parallelism\":0}");
  struct orch_out o;
  orch_out_init(&o);
  o.new_id = fx_new_id;
  o.id_ud = &f;
  orchestrator_run(f.s, f.now, &o);
  CHECK(o.ntx >= 1);
  for (size_t k = 0; k < o.ntx; k++) /* + the service's UpdateStatus */
    CHECK(store_tx_ops(o.txs[k]) <= ORCH_TX_MAX + 1);
  CHECK(o.more); /* the rest in later passes */
  fx_apply_out(&f, &o);
  orch_out_free(&o);
  fx_converge(&f, true);
  json_t *l = fx_tasks(&f, "svc1", "running", "running");
  CHECK_INT_EQ(json_array_size(l), ORCH_BATCH);
  size_t i;
  json_t *t;
  json_array_foreach(l, i, t)
      CHECK_STR_EQ(jx_str(t, "Spec.ContainerSpec.Image", ""), "nginx:2");
  json_decref(l);
}

/* A spec already in raft from before the replica limit: the leader makes
 * tasks up to the limit, a batch at a time, never without end. */
TEST(orch_replicas_over_limit_in_store_are_capped) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  three_nodes(&f);
  json_t *svc = json_pack(
      "{s:s, s:{s:s, s:{s:{s:s}}, s:{s:{s:I}}}, s:i}", "ID", "svc1", "Spec",
      "Name", "web", "TaskTemplate", "ContainerSpec", "Image", "nginx", "Mode",
      "Replicated", "Replicas", (json_int_t)1000000000000LL, "_SpecVersion", 0);
  fx_put(&f, STORE_SERVICE, svc, STORE_MUST_CREATE);
  struct orch_out o;
  orch_out_init(&o);
  o.new_id = fx_new_id;
  o.id_ud = &f;
  orchestrator_run(f.s, f.now, &o);
  CHECK(o.more);
  fx_apply_out(&f, &o);
  orch_out_free(&o);
  CHECK_INT_EQ(fx_count(&f, "svc1", NULL, NULL), ORCH_BATCH);
  CHECK_INT_EQ(service_replicas(store_get(f.s, STORE_SERVICE, "svc1")),
               SERVICES_MAX_REPLICAS);
  fx_free(&f);
}

/* ---- jobs ---- */

#define JOB                                                                    \
  "{\"Name\":\"%s\",\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":"           \
  "\"busybox\"}%s},\"Mode\":{\"ReplicatedJob\":{%s}}}"

/* Ends every running task of svc in state (complete or failed). */
static void end_running(struct fx *f, const char *svc, const char *state) {
  json_t *l = fx_tasks(f, svc, "complete", "running");
  size_t i;
  json_t *t;
  json_array_foreach(l, i, t) fx_task_state(f, jx_str(t, "ID", ""), state);
  json_decref(l);
}

TEST(orch_replicated_job_runs_max_concurrent_until_total_completions) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  three_nodes(&f);
  char b[512];
  snprintf(b, sizeof b, JOB, "job", "",
           "\"MaxConcurrent\":2,\"TotalCompletions\":5");
  fx_service(&f, "svc1", b);
  CHECK_INT_EQ(jx_int(store_get(f.s, STORE_SERVICE, "svc1"),
                      "JobStatus.JobIteration.Index", -1),
               0);
  fx_converge(&f, true);
  /* Two at a time, desired complete, of iteration 0, slots from 0. */
  json_t *l = fx_tasks(&f, "svc1", "complete", "running");
  CHECK_INT_EQ(json_array_size(l), 2);
  CHECK_INT_EQ(jx_int(json_array_get(l, 0), "JobIteration.Index", -1), 0);
  CHECK_INT_EQ(jx_int(json_array_get(l, 0), "Slot", -1), 0);
  CHECK_INT_EQ(jx_int(json_array_get(l, 1), "Slot", -1), 1);
  /* Slot 0 is named after its node once placed (swarmkit's naming). */
  char name[64];
  snprintf(name, sizeof name, "job.%s",
           jx_str(json_array_get(l, 0), "NodeID", ""));
  CHECK_STR_EQ(jx_str(json_array_get(l, 0), "Name", ""), name);
  CHECK_STR_EQ(jx_str(json_array_get(l, 1), "Name", ""), "job.1");
  json_decref(l);
  end_running(&f, "svc1", "complete");
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc1", "complete", "running"), 2);
  end_running(&f, "svc1", "complete");
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc1", "complete", "running"), 1);
  end_running(&f, "svc1", "complete");
  fx_converge(&f, true);
  /* Done: five completions, nothing runs, nothing new (not even after
   * the history reaper ran). */
  CHECK_INT_EQ(fx_count(&f, "svc1", NULL, "complete"), 5);
  CHECK_INT_EQ(fx_count(&f, "svc1", NULL, NULL), 5);
  f.now += 60 * NS_PER_SEC;
  CHECK_INT_EQ(fx_orch(&f), 0);
  fx_free(&f);
}

TEST(orch_job_failed_task_restarts_in_its_slot_or_gives_up) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  three_nodes(&f);
  char b[512];
  /* "any" behaves as on-failure for a job. */
  snprintf(b, sizeof b, JOB, "job", "",
           "\"MaxConcurrent\":1,\"TotalCompletions\":1");
  fx_service(&f, "svc1", b);
  fx_converge(&f, true);
  end_running(&f, "svc1", "failed");
  fx_converge(&f, true);
  f.now += 6 * NS_PER_SEC; /* the default restart delay */
  fx_converge(&f, true);
  json_t *l = fx_tasks(&f, "svc1", "complete", "running");
  CHECK_INT_EQ(json_array_size(l), 1);
  CHECK_INT_EQ(jx_int(json_array_get(l, 0), "Slot", -1), 0);
  json_decref(l);
  CHECK_INT_EQ(fx_count(&f, "svc1", "shutdown", "failed"), 1);
  end_running(&f, "svc1", "complete");
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc1", NULL, "complete"), 1);
  CHECK_INT_EQ(fx_count(&f, "svc1", "complete", "running"), 0);

  /* Restart condition none: a failure gives the slot up for good. */
  snprintf(b, sizeof b, JOB, "job2",
           ",\"RestartPolicy\":{\"Condition\":\"none\"}",
           "\"MaxConcurrent\":1,\"TotalCompletions\":2");
  fx_service(&f, "svc2", b);
  fx_converge(&f, true);
  end_running(&f, "svc2", "failed");
  fx_converge(&f, true);
  f.now += 60 * NS_PER_SEC;
  fx_converge(&f, true);
  /* Slot 0 given up; slot 1 runs; nothing more after it. */
  CHECK_INT_EQ(fx_count(&f, "svc2", "complete", "running"), 1);
  end_running(&f, "svc2", "complete");
  fx_converge(&f, true);
  f.now += 60 * NS_PER_SEC;
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc2", NULL, NULL), 2);
  CHECK_INT_EQ(fx_count(&f, "svc2", NULL, "complete"), 1);
  fx_free(&f);
}

TEST(orch_job_update_runs_it_again) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  three_nodes(&f);
  char b[512];
  snprintf(b, sizeof b, JOB, "job", "",
           "\"MaxConcurrent\":2,\"TotalCompletions\":2");
  fx_service(&f, "svc1", b);
  fx_converge(&f, true);
  end_running(&f, "svc1", "complete");
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc1", NULL, "complete"), 2);
  /* service update --force */
  json_t *cur = store_get(f.s, STORE_SERVICE, "svc1");
  json_t *spec = json_deep_copy(json_object_get(cur, "Spec"));
  jx_set(spec, "TaskTemplate.ForceUpdate", json_integer(1));
  char *text = jx_dump(spec);
  json_decref(spec);
  fx_update(&f, "svc1", text, NULL);
  free(text);
  CHECK_INT_EQ(jx_int(store_get(f.s, STORE_SERVICE, "svc1"),
                      "JobStatus.JobIteration.Index", -1),
               1);
  fx_converge(&f, true);
  json_t *l = fx_tasks(&f, "svc1", "complete", "running");
  CHECK_INT_EQ(json_array_size(l), 2);
  CHECK_INT_EQ(jx_int(json_array_get(l, 0), "JobIteration.Index", -1), 1);
  json_decref(l);
  /* The first run's completions stay in history. */
  CHECK_INT_EQ(fx_count(&f, "svc1", NULL, "complete"), 2);
  fx_free(&f);
}

TEST(orch_global_job_once_per_eligible_node_and_new_nodes) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  three_nodes(&f);
  fx_set(&f, STORE_NODE, "node3", "Spec.Availability", json_string("drain"));
  fx_service(&f, "svc1",
             "{\"Name\":\"gj\",\"TaskTemplate\":{\"ContainerSpec\":{"
             "\"Image\":\"busybox\"}},\"Mode\":{\"GlobalJob\":{}}}");
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc1", "complete", "running"), 2);
  CHECK_INT_EQ(fx_on_node(&f, "svc1", "node3"), 0);
  end_running(&f, "svc1", "complete");
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc1", NULL, "complete"), 2);
  CHECK_INT_EQ(fx_count(&f, "svc1", NULL, NULL), 2);
  /* A node that joins later runs it too. */
  fx_node(&f, "node4", NULL);
  fx_converge(&f, true);
  json_t *l = fx_tasks(&f, "svc1", "complete", "running");
  CHECK_INT_EQ(json_array_size(l), 1);
  CHECK_STR_EQ(jx_str(json_array_get(l, 0), "NodeID", ""), "node4");
  json_decref(l);
  fx_free(&f);
}

/* A pass whose budget runs out names as run only the services it made
 * changes for: the reconciler pipes the next pass onto the others while
 * this one's entries commit (all 100 of 100 services created at once
 * used to be named, and no piped pass ever ran). And a service does not
 * begin after another when the budget left is less than the tasks it
 * lacks: its first tasks would be placed in this pass, the rest in a
 * later one around other services' placements (uneven totals per node). */
TEST(orch_budget_names_only_the_services_it_changed) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  three_nodes(&f);
  char b[512];
  int part = ORCH_BATCH * 3 / 5;
  static const char *const ids[] = {"svc1", "svc2", "svc3"};
  static const char *const names[] = {"web", "api", "db"};
  cleanup_json json_t *touched = json_object();
  for (int i = 0; i < 3; i++) {
    snprintf(b, sizeof b,
             "{\"Name\":\"%s\",\"TaskTemplate\":{\"ContainerSpec\":{"
             "\"Image\":\"nginx\"}},\"Mode\":{\"Replicated\":{"
             "\"Replicas\":%d}}}",
             names[i], i == 0 ? ORCH_BATCH + part : part);
    fx_service(&f, ids[i], b);
    json_object_set_new(touched, ids[i], json_true());
  }
  cleanup_json json_t *ran = json_object();
  struct orch_out o;
  orch_out_init(&o);
  o.ran = ran;
  orchestrator_run_services(f.s, f.now, &o, touched, NULL, NULL);
  CHECK(o.more);
  CHECK_INT_EQ(o.budget, 0);
  CHECK(fx_apply_out(&f, &o) > 0);
  CHECK_INT_EQ(f.failed_txs, 0);
  orch_out_free(&o);
  /* The first in part (in flight and still to do), the others the budget
   * never reached: neither run nor done. */
  CHECK_INT_EQ(fx_count(&f, "svc1", NULL, NULL), ORCH_BATCH);
  CHECK(json_object_get(ran, "svc1") && json_object_get(touched, "svc1"));
  for (int i = 1; i < 3; i++) {
    CHECK_INT_EQ(fx_count(&f, ids[i], NULL, NULL), 0);
    CHECK(!json_object_get(ran, ids[i]) && json_object_get(touched, ids[i]));
  }
  /* The piped pass: what is not in flight. The second whole; the third
   * waits, its run would not fit in what the second left. */
  const char *k;
  json_t *v;
  json_object_foreach(ran, k, v) json_object_del(touched, k);
  CHECK_INT_EQ(json_object_size(touched), 2);
  orch_out_init(&o);
  orchestrator_run_services(f.s, f.now, &o, touched, NULL, NULL);
  CHECK(o.more);
  CHECK_INT_EQ(o.budget, ORCH_BATCH - part);
  CHECK(fx_apply_out(&f, &o) > 0);
  CHECK_INT_EQ(f.failed_txs, 0);
  orch_out_free(&o);
  CHECK_INT_EQ(fx_count(&f, "svc2", NULL, NULL), part);
  CHECK_INT_EQ(fx_count(&f, "svc3", NULL, NULL), 0);
  CHECK(!json_object_get(touched, "svc2") && json_object_get(touched, "svc3"));
  /* Then on its own pass, whole. */
  orch_out_init(&o);
  orchestrator_run_services(f.s, f.now, &o, touched, NULL, NULL);
  CHECK(fx_apply_out(&f, &o) > 0);
  orch_out_free(&o);
  CHECK_INT_EQ(fx_count(&f, "svc3", NULL, NULL), part);
  CHECK_INT_EQ(json_object_size(touched), 0);
}

/* A node going down: its tasks are replaced straight from the node's
 * index bucket, all in one pass (more than a service's full run could
 * restart within ORCH_BATCH), its services are not reconciled for it, and
 * the other nodes' tasks stay as they are. */
TEST(orch_node_down_moves_only_its_tasks_in_one_pass) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  three_nodes(&f);
  char b[512];
  fx_service(&f, "svc1",
             web(b, sizeof b, 3 * ORCH_BATCH,
                 ",\"RestartPolicy\":{\"Delay\":0}", NULL));
  fx_service(&f, "svc2",
             "{\"Name\":\"api\",\"TaskTemplate\":{\"ContainerSpec\":{"
             "\"Image\":\"nginx\"}},\"Mode\":{\"Replicated\":{"
             "\"Replicas\":30}}}");
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_on_node(&f, "svc1", "node2"), ORCH_BATCH);
  CHECK_INT_EQ(fx_on_node(&f, "svc2", "node2"), 10);
  f.now += NS_PER_SEC;
  fx_set(&f, STORE_NODE, "node2", "Status.State", json_string("down"));
  /* The node, not its services, is what the next pass looks at. */
  CHECK(json_object_get(f.touched, ORCH_NODE_KEY "node2") != NULL);
  CHECK(json_object_get(f.touched, "svc1") == NULL);
  CHECK(json_object_get(f.touched, "svc2") == NULL);
  /* The pass's output says how many of its transactions are the node
   * pass's (a refused one makes the reconciler look at every service). */
  {
    cleanup_json json_t *t = json_deep_copy(f.touched);
    struct orch_out o;
    orch_out_init(&o);
    orchestrator_run_services(f.s, f.now, &o, t, NULL, NULL);
    CHECK(o.node_ntx >= 2);          /* 2,020 changes in entries of 400 */
    CHECK_INT_EQ(o.node_ntx, o.ntx); /* nothing but the node's tasks */
    orch_out_free(&o);
  }
  fx_orch(&f);
  CHECK_INT_EQ(fx_count(&f, "svc1", "shutdown", "running"), ORCH_BATCH);
  CHECK_INT_EQ(fx_count(&f, "svc1", "running", "assigned"), ORCH_BATCH);
  CHECK_INT_EQ(fx_count(&f, "svc1", "running", "running"), 2 * ORCH_BATCH);
  /* svc1's replacements keep it at rest (no check of its tasks again);
   * svc2's wait for their start (below), which its own run follows. */
  CHECK(json_object_get(f.touched, "svc1") == NULL);
  CHECK(json_is_true(json_object_get(f.touched, "svc2")));
  /* Docker's default restart delay: the replacements wait 5 s. */
  CHECK_INT_EQ(fx_count(&f, "svc2", "shutdown", "running"), 10);
  CHECK_INT_EQ(fx_count(&f, "svc2", "ready", "assigned"), 10);
  CHECK_INT_EQ(f.wakeup, f.now + 5 * NS_PER_SEC);
  /* Replacements keep the slots: each slot has one task desired running. */
  json_t *l = fx_tasks(&f, "svc1", "running", NULL);
  CHECK_INT_EQ(json_array_size(l), 3 * ORCH_BATCH);
  char *seen = calloc(3 * ORCH_BATCH + 1, 1);
  size_t i;
  json_t *t;
  json_array_foreach(l, i, t) {
    int64_t slot = jx_int(t, "Slot", 0);
    CHECK(slot >= 1 && slot <= 3 * ORCH_BATCH && !seen[slot]);
    seen[slot] = 1;
  }
  free(seen);
  json_decref(l);
  /* The rest converges with the history kept (the fixture checks a full
   * pass then finds nothing to do: the history leaves services at rest). */
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc1", "running", "running"), 3 * ORCH_BATCH);
  CHECK_INT_EQ(fx_on_node(&f, "svc1", "node2"), 0);
  CHECK_INT_EQ(fx_count(&f, "svc1", "shutdown", NULL), ORCH_BATCH);
  f.now += 5 * NS_PER_SEC;
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc2", "running", "running"), 30);
  fx_free(&f);
}

/* A service with an update under way is not the node pass's: its tasks on
 * the down node go through the service's full run (the update supervisor
 * decides), which still replaces them. */
TEST(orch_node_down_during_update_uses_the_full_run) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  three_nodes(&f);
  char b[512];
  fx_service(
      &f, "svc1",
      web(b, sizeof b, 6, ",\"RestartPolicy\":{\"Delay\":0}",
          ",\"UpdateConfig\":{\"Parallelism\":1,\"Delay\":60000000000}"));
  fx_converge(&f, true);
  set_image(&f, "nginx:2", NULL);
  fx_converge(&f, true); /* the first of six updated; the rest wait 60 s */
  fx_set(&f, STORE_NODE, "node2", "Status.State", json_string("down"));
  CHECK(json_object_get(f.touched, ORCH_NODE_KEY "node2") != NULL);
  fx_orch(&f);
  CHECK(json_object_get(f.touched, ORCH_NODE_KEY "node2") == NULL);
  CHECK(json_object_get(f.touched, "svc1") != NULL ||
        json_object_get(f.wake, "svc1") != NULL);
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc1", "running", "running"), 6);
  json_t *l = fx_tasks(&f, "svc1", "running", NULL);
  size_t i;
  json_t *t;
  json_array_foreach(l, i, t) CHECK(strcmp(jx_str(t, "NodeID", ""), "node2"));
  json_decref(l);
  fx_free(&f);
}

TEST(orch_task_state_names_parse_back) {
  for (int i = TS_NEW; i <= TS_ORPHANED; i++)
    CHECK_INT_EQ(task_state_parse(task_state_name((enum task_state)i)), i);
  /* Names sharing a first letter, and near misses, are not confused. */
  CHECK_INT_EQ(task_state_parse("rejected"), TS_REJECTED);
  CHECK_INT_EQ(task_state_parse("remove"), TS_REMOVE);
  CHECK_INT_EQ(task_state_parse("runnin"), TS_NEW);
  CHECK_INT_EQ(task_state_parse("runningx"), TS_NEW);
  CHECK_INT_EQ(task_state_parse("Running"), TS_NEW);
  CHECK_INT_EQ(task_state_parse(""), TS_NEW);
  CHECK_INT_EQ(task_state_parse(NULL), TS_NEW);
}

/* Slot 1's task desired shutdown, still running (a history task whose
 * node has not stopped it yet); its ID in id. */
static void stop_slot1(struct fx *f, char id[ID_LEN + 1]) {
  json_t *l = fx_tasks(f, "svc1", "running", "running");
  size_t i;
  json_t *t;
  json_array_foreach(l, i, t) {
    if (jx_int(t, "Slot", 0) != 1)
      continue;
    snprintf(id, ID_LEN + 1, "%s", jx_str(t, "ID", ""));
    json_t *next = json_deep_copy(t);
    json_object_set_new(next, "DesiredState", json_string("shutdown"));
    fx_put(f, STORE_TASK, next, jx_int(t, "Version.Index", 0));
  }
  json_decref(l);
}

TEST(orch_history_reports_touch_only_services_not_at_rest) {
  char b[512], old[ID_LEN + 1] = "";
  /* Within the history limit: the service is at rest with the stopped
   * task in slot 1's history, and that task reporting its end cannot
   * change it, so it touches nothing. */
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  three_nodes(&f);
  fx_service(&f, "svc1", web(b, sizeof b, 2, NULL, NULL));
  fx_converge(&f, true);
  stop_slot1(&f, old);
  CHECK(*old);
  fx_converge(&f, false);
  CHECK(json_object_get(f.rest, "svc1") != NULL);
  CHECK_INT_EQ(slot_count(&f, 1), 2);
  json_object_clear(f.touched);
  fx_task_state(&f, old, "shutdown");
  CHECK(json_object_get(f.touched, "svc1") == NULL);
  fx_free(&f);

  /* Over it (a limit of 1 keeps no history): not at rest, so the report
   * touches the service, and its run removes the ended task. */
  fx_init(&f, 1);
  three_nodes(&f);
  fx_service(&f, "svc1", web(b, sizeof b, 2, NULL, NULL));
  fx_converge(&f, true);
  stop_slot1(&f, old);
  fx_converge(&f, false);
  CHECK(json_object_get(f.rest, "svc1") == NULL);
  CHECK_INT_EQ(slot_count(&f, 1), 2);
  json_object_clear(f.touched);
  fx_task_state(&f, old, "shutdown");
  CHECK(json_is_true(json_object_get(f.touched, "svc1")));
  fx_converge(&f, false);
  CHECK_INT_EQ(slot_count(&f, 1), 1);
  CHECK(store_get(f.s, STORE_TASK, old) == NULL);
}

TEST(orch_node_back_touches_only_global_services) {
  cleanup_fx struct fx f = {0};
  svc1_no_delay(&f, 5, 3);
  fx_service(&f, "glob",
             "{\"Name\":\"glob\",\"TaskTemplate\":{\"ContainerSpec\":{"
             "\"Image\":\"busybox\"}},\"Mode\":{\"Global\":{}}}");
  fx_converge(&f, true);
  fx_set(&f, STORE_NODE, "node2", "Status.State", json_string("down"));
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_on_node(&f, "svc1", "node2"), 0);
  json_object_clear(f.touched);
  fx_set(&f, STORE_NODE, "node2", "Status.State", json_string("ready"));
  /* svc1's task there is history: nothing to decide. The global service
   * gets its task back on the node. */
  CHECK(json_object_get(f.touched, "svc1") == NULL);
  CHECK(json_is_true(json_object_get(f.touched, "glob")));
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc1", "running", "running"), 3);
  CHECK_INT_EQ(fx_on_node(&f, "glob", "node2"), 1);

  /* A node whose labels change while it comes back is looked at whole. */
  fx_set(&f, STORE_NODE, "node2", "Status.State", json_string("down"));
  fx_converge(&f, true);
  json_object_clear(f.touched);
  json_t *next = json_deep_copy(store_get(f.s, STORE_NODE, "node2"));
  jx_set(next, "Status.State", json_string("ready"));
  jx_set(next, "Spec.Labels", json_pack("{s:s}", "disk", "ssd"));
  fx_put(&f, STORE_NODE, next,
         jx_int(store_get(f.s, STORE_NODE, "node2"), "Version.Index", 0));
  CHECK(json_is_true(json_object_get(f.touched, "svc1")));
}

static const char *node_of_slot1(struct fx *f, char out[64]) {
  json_t *l = fx_tasks(f, "svc1", "running", "running");
  snprintf(out, 64, "%s", jx_str(json_array_get(l, 0), "NodeID", ""));
  json_decref(l);
  return out;
}

/* A node pass's replacement of a task of a service at rest, in its slot,
 * touches nothing while the slot's history stays within the limit (the
 * fixture's full pass after converging checks the verdict kept was
 * right); past it, the service's full run follows, and removes the
 * oldest once it ended. */
TEST(orch_node_pass_replacement_keeps_the_verdict_within_the_limit) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 2); /* a slot keeps one task of history */
  three_nodes(&f);
  char b[512], first[64], second[64];
  fx_service(&f, "svc1",
             web(b, sizeof b, 1, ",\"RestartPolicy\":{\"Delay\":0}", NULL));
  fx_converge(&f, true);
  CHECK(json_object_get(f.rest, "svc1") != NULL);
  fx_set(&f, STORE_NODE, node_of_slot1(&f, first), "Status.State",
         json_string("down"));
  fx_orch(&f);
  CHECK(json_object_get(f.touched, "svc1") == NULL);
  CHECK(json_object_get(f.rest, "svc1") != NULL);
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc1", "running", "running"), 1);
  CHECK_INT_EQ(slot_count(&f, 1), 2);
  /* The replacement's node goes too: the slot would keep two. */
  fx_set(&f, STORE_NODE, node_of_slot1(&f, second), "Status.State",
         json_string("down"));
  fx_orch(&f);
  CHECK(json_is_true(json_object_get(f.touched, "svc1")));
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc1", "running", "running"), 1);
  CHECK_INT_EQ(slot_count(&f, 1), 3); /* the down nodes' tasks not ended */
  /* The first node back: its task ends, and the oldest goes. */
  fx_set(&f, STORE_NODE, first, "Status.State", json_string("ready"));
  fx_converge(&f, true);
  CHECK_INT_EQ(slot_count(&f, 1), 2);
  fx_free(&f);
}

/* The tasks a run makes for the free slots of a service at rest touch
 * nothing once created (the service would run again to find nothing: a
 * scan of all its tasks); a task of the service that no run of it made
 * touches it as before, and its run puts the slot right. */
TEST(orch_fills_of_a_service_at_rest_touch_nothing) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  three_nodes(&f);
  char b[512];
  fx_service(&f, "svc1", web(b, sizeof b, 3, NULL, NULL));
  fx_orch(&f);
  CHECK_INT_EQ(fx_count(&f, "svc1", "running", NULL), 3);
  CHECK(json_object_get(f.touched, "svc1") == NULL);
  json_t *verdict = json_object_get(f.rest, "svc1");
  CHECK(verdict != NULL);
  CHECK_INT_EQ(json_object_size(json_object_get(verdict, "New")), 0);
  fx_converge(&f, true);

  /* Scaled up: the two new slots' tasks, the same. */
  fx_set(&f, STORE_SERVICE, "svc1", "Spec.Mode.Replicated.Replicas",
         json_integer(5));
  fx_orch(&f);
  CHECK_INT_EQ(fx_count(&f, "svc1", "running", NULL), 5);
  CHECK(json_object_get(f.touched, "svc1") == NULL);
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc1", "running", "running"), 5);

  /* A second task in slot 1 that no run made: the service runs, and
   * slot 1 keeps one task desired running. */
  CHECK_INT_EQ(slot_count(&f, 1), 1);
  json_t *l = fx_tasks(&f, "svc1", "running", "running");
  json_t *dup = NULL;
  size_t i;
  json_t *t;
  json_array_foreach(l, i, t) {
    if (jx_int(t, "Slot", 0) == 1)
      dup = json_deep_copy(t);
  }
  json_decref(l);
  CHECK(dup != NULL);
  json_object_set_new(dup, "ID", json_string("dupslot1"));
  json_object_del(dup, "Version");
  fx_put(&f, STORE_TASK, dup, 0);
  CHECK(json_is_true(json_object_get(f.touched, "svc1")));
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc1", "running", NULL), 5);
}
