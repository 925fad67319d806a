/* Scheduler: filters, explanations, spread, preassigned tasks. */
#include "fixture.h"
#include "manager/constraint.h"
#include "test.h"

static void svc(struct fx *f, const char *id, int replicas, const char *tmpl) {
  char b[1024];
  snprintf(b, sizeof b,
           "{\"Name\":\"%s\",\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":"
           "\"nginx\"}%s},\"Mode\":{\"Replicated\":{\"Replicas\":%d}}}",
           id, tmpl ? tmpl : "", replicas);
  fx_service(f, id, b);
}

static size_t on(struct fx *f, const char *service, const char *node) {
  json_t *l = fx_tasks(f, service, NULL, "assigned");
  size_t n = 0, i;
  json_t *t;
  json_array_foreach(l, i, t) n += strcmp(jx_str(t, "NodeID", ""), node) == 0;
  json_decref(l);
  return n;
}

static const char *first_err(struct fx *f, const char *service, char *buf,
                             size_t n) {
  json_t *l = fx_tasks(f, service, NULL, "pending");
  snprintf(buf, n, "%s", jx_str(json_array_get(l, 0), "Status.Err", ""));
  json_decref(l);
  return buf;
}

TEST(sched_assigns_with_message_and_spreads) {
  cleanup_fx struct fx f = {0};
  fx_init_nodes(&f, "node", 3);
  f.no_place_new = true; /* the scheduler's own pass */
  svc(&f, "web", 5, NULL);
  fx_orch(&f);
  CHECK_INT_EQ(fx_sched(&f), 1); /* one transaction for the service */
  json_t *l = fx_tasks(&f, "web", "running", "assigned");
  CHECK_INT_EQ(json_array_size(l), 5);
  CHECK_STR_EQ(jx_str(json_array_get(l, 0), "Status.Message", ""),
               "scheduler assigned task to node");
  json_decref(l);
  CHECK_INT_EQ(on(&f, "web", "node1"), 2);
  CHECK_INT_EQ(on(&f, "web", "node2"), 2);
  CHECK_INT_EQ(on(&f, "web", "node3"), 1);
  /* Fewest tasks in total breaks ties between services. */
  svc(&f, "api", 1, NULL);
  fx_orch(&f);
  fx_sched(&f);
  CHECK_INT_EQ(on(&f, "api", "node3"), 1);
  fx_free(&f);
}

TEST(sched_constraints_eq_ne_and_labels) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  fx_node(&f, "node1", "{\"zone\":\"a\"}");
  fx_node(&f, "node2", "{\"zone\":\"b\"}");
  fx_node(&f, "node3", "{\"zone\":\"b\"}");
  svc(&f, "in_b", 2,
      ",\"Placement\":{\"Constraints\":[\"node.labels.zone==b\"]}");
  svc(&f, "not2", 2,
      ",\"Placement\":{\"Constraints\":[\"node.hostname != node2\","
      "\"node.role==worker\"]}");
  svc(&f, "byid", 1, ",\"Placement\":{\"Constraints\":[\"node.id==node3\"]}");
  svc(&f, "none", 1,
      ",\"Placement\":{\"Constraints\":[\"node.labels.zone==c\"]}");
  fx_orch(&f);
  fx_sched(&f);
  CHECK_INT_EQ(on(&f, "in_b", "node1"), 0);
  CHECK_INT_EQ(on(&f, "in_b", "node2") + on(&f, "in_b", "node3"), 2);
  CHECK_INT_EQ(on(&f, "not2", "node2"), 0);
  CHECK_INT_EQ(on(&f, "not2", "node1"), 1);
  CHECK_INT_EQ(on(&f, "byid", "node3"), 1);
  char err[256];
  CHECK_STR_EQ(first_err(&f, "none", err, sizeof err),
               "no suitable node (scheduling constraints not satisfied on 3 "
               "nodes)");
  /* Unchanged explanation: nothing to write. */
  CHECK_INT_EQ(fx_sched(&f), 0);
  /* A matching node appears. */
  fx_node(&f, "node4", "{\"zone\":\"c\"}");
  fx_sched(&f);
  CHECK_INT_EQ(on(&f, "none", "node4"), 1);
  json_t *l = fx_tasks(&f, "none", NULL, "assigned");
  bool has_err = jx_get(json_array_get(l, 0), "Status.Err") != NULL;
  json_decref(l);
  CHECK(!has_err);
  fx_free(&f);
}

TEST(sched_reservations_exclude_nodes) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  fx_node(&f, "node1", NULL);
  fx_node(&f, "node2", NULL);
  /* 3 of the 4 CPUs each: one per node. */
  svc(&f, "big", 3,
      ",\"Resources\":{\"Reservations\":{\"NanoCPUs\":3000000000}}");
  fx_orch(&f);
  fx_sched(&f);
  CHECK_INT_EQ(on(&f, "big", "node1"), 1);
  CHECK_INT_EQ(on(&f, "big", "node2"), 1);
  char err[256];
  CHECK_STR_EQ(first_err(&f, "big", err, sizeof err),
               "no suitable node (insufficient resources on 2 nodes)");
  /* Memory larger than any node. */
  svc(&f, "huge", 1,
      ",\"Resources\":{\"Reservations\":{\"MemoryBytes\":8589934592}}");
  fx_orch(&f);
  fx_sched(&f);
  CHECK_STR_EQ(first_err(&f, "huge", err, sizeof err),
               "no suitable node (insufficient resources on 2 nodes)");
  fx_free(&f);
}

TEST(sched_max_replicas_per_node) {
  cleanup_fx struct fx f = {0};
  fx_init_nodes(&f, "node", 3);
  svc(&f, "web", 4, ",\"Placement\":{\"MaxReplicas\":1}");
  fx_orch(&f);
  fx_sched(&f);
  CHECK_INT_EQ(fx_count(&f, "web", NULL, "assigned"), 3);
  char err[256];
  CHECK_STR_EQ(first_err(&f, "web", err, sizeof err),
               "no suitable node (max replicas per node limit exceed)");
  fx_free(&f);
}

TEST(sched_explains_several_filters) {
  cleanup_fx struct fx f = {0};
  fx_init_nodes(&f, "node", 3);
  fx_set(&f, STORE_NODE, "node1", "Status.State", json_string("down"));
  svc(&f, "web", 1, ",\"Placement\":{\"Constraints\":[\"node.labels.x==y\"]}");
  fx_orch(&f);
  fx_sched(&f);
  char err[256];
  CHECK_STR_EQ(first_err(&f, "web", err, sizeof err),
               "no suitable node (scheduling constraints not satisfied on 2 "
               "nodes; 1 node not available for new tasks)");
  fx_free(&f);

  fx_init(&f, 5);
  svc(&f, "web", 1, NULL);
  fx_orch(&f);
  fx_sched(&f);
  CHECK_STR_EQ(first_err(&f, "web", err, sizeof err), "no suitable node");
  fx_free(&f);
}

TEST(sched_spread_preference) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  fx_node(&f, "node1", "{\"dc\":\"east\"}");
  fx_node(&f, "node2", "{\"dc\":\"east\"}");
  fx_node(&f, "node3", "{\"dc\":\"east\"}");
  fx_node(&f, "node4", "{\"dc\":\"west\"}");
  svc(&f, "web", 4,
      ",\"Placement\":{\"Preferences\":[{\"Spread\":{\"SpreadDescriptor\":"
      "\"node.labels.dc\"}}]}");
  fx_orch(&f);
  fx_sched(&f);
  /* Half per datacenter, however many nodes each has. */
  CHECK_INT_EQ(on(&f, "web", "node4"), 2);
  CHECK_INT_EQ(on(&f, "web", "node1") + on(&f, "web", "node2") +
                   on(&f, "web", "node3"),
               2);
  fx_free(&f);
}

TEST(sched_host_ports_and_platforms) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  fx_node(&f, "node1", NULL);
  fx_node(&f, "node2", NULL);
  svc(&f, "web", 3, NULL);
  /* a host-mode port: one task per node */
  char b[512];
  snprintf(b, sizeof b,
           "{\"Name\":\"hp\",\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":"
           "\"nginx\"}},\"Mode\":{\"Replicated\":{\"Replicas\":3}},"
           "\"EndpointSpec\":{\"Ports\":[{\"TargetPort\":80,"
           "\"PublishedPort\":8080,\"PublishMode\":\"host\"}]}}");
  fx_service(&f, "hp", b);
  fx_orch(&f);
  fx_sched(&f);
  CHECK_INT_EQ(on(&f, "hp", "node1"), 1);
  CHECK_INT_EQ(on(&f, "hp", "node2"), 1);
  char err[256];
  CHECK_STR_EQ(first_err(&f, "hp", err, sizeof err),
               "no suitable node (host-mode port already in use on 2 nodes)");
  svc(&f, "arm", 1,
      ",\"Placement\":{\"Platforms\":[{\"Architecture\":\"arm64\","
      "\"OS\":\"linux\"}]}");
  svc(&f, "amd", 1,
      ",\"Placement\":{\"Platforms\":[{\"Architecture\":\"amd64\","
      "\"OS\":\"linux\"}]}");
  fx_orch(&f);
  fx_sched(&f);
  CHECK_STR_EQ(first_err(&f, "arm", err, sizeof err),
               "no suitable node (unsupported platform on 2 nodes)");
  CHECK_INT_EQ(fx_count(&f, "amd", NULL, "assigned"), 1); /* x86_64 = amd64 */
  fx_free(&f);
}

TEST(sched_preassigned_checked_against_its_node) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  fx_node(&f, "node1", NULL);
  fx_node(&f, "node2", NULL);
  fx_set(&f, STORE_NODE, "node2", "Status.State", json_string("unknown"));
  fx_service(&f, "g",
             "{\"Name\":\"g\",\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":"
             "\"busybox\"}},\"Mode\":{\"Global\":{}}}");
  fx_orch(&f);
  fx_sched(&f);
  CHECK_INT_EQ(fx_count(&f, "g", NULL, "assigned"), 1);
  json_t *l = fx_tasks(&f, "g", NULL, "pending");
  CHECK_INT_EQ(json_array_size(l), 1);
  CHECK_STR_EQ(jx_str(json_array_get(l, 0), "NodeID", ""), "node2");
  CHECK_STR_EQ(jx_str(json_array_get(l, 0), "Status.Err", ""),
               "1 node not available for new tasks");
  json_decref(l);
  fx_free(&f);
}

TEST(constraint_parse_errors_and_matching) {
  struct constraint *c = NULL;
  size_t n = 0;
  sh_err err = {0};
  json_t *l = json_pack("[s]", "node.labels.a=b");
  CHECK(constraints_parse(l, &c, &n, &err) < 0);
  CHECK_STR_EQ(err.msg, "constraint expected one operator from ==, !=");
  json_decref(l);
  l = json_pack("[s]", "x==y");
  CHECK(constraints_parse(l, &c, &n, &err) < 0);
  CHECK_STR_EQ(err.msg, "key 'x' is invalid");
  json_decref(l);
  l = json_pack("[s]", "node.labels.a==b>c");
  CHECK(constraints_parse(l, &c, &n, &err) < 0);
  CHECK_STR_EQ(err.msg, "value 'b>c' is invalid");
  json_decref(l);
  l = json_pack("[s, s]", "node.hostname==HOST1", "node.labels.k!=v");
  CHECK(constraints_parse(l, &c, &n, &err) == 0);
  CHECK_INT_EQ(n, 2);
  json_t *node = json_pack("{s:s, s:{s:{}}, s:{s:s}}", "ID", "n1", "Spec",
                           "Labels", "Description", "Hostname", "host1");
  CHECK(constraints_match(c, n, node)); /* case-insensitive value */
  jx_set(node, "Spec.Labels.k", json_string("v"));
  CHECK(!constraints_match(c, n, node));
  constraints_free(c, n);
  json_decref(node);
  json_decref(l);
}

/* A node whose daemon has no container runtime gets no tasks; a task only
 * it could take waits with the reason. */
TEST(sched_skips_nodes_without_a_runtime) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  fx_node(&f, "node1", NULL);
  fx_node(&f, "node2", NULL);
  fx_set(&f, STORE_NODE, "node2", "Description._RuntimeError",
         json_string("no container runtime: crun not found in PATH"));
  svc(&f, "web", 4, NULL);
  fx_orch(&f);
  fx_sched(&f);
  CHECK_INT_EQ(on(&f, "web", "node1"), 4);
  CHECK_INT_EQ(on(&f, "web", "node2"), 0);
  svc(&f, "pinned", 1,
      ",\"Placement\":{\"Constraints\":[\"node.hostname==node2\"]}");
  fx_orch(&f);
  fx_sched(&f);
  char err[256];
  CHECK_STR_EQ(first_err(&f, "pinned", err, sizeof err),
               "no suitable node (1 node not available for new tasks; "
               "scheduling constraints not satisfied on 1 node)");
}

/* The orchestrator makes a's four tasks, then b's: IDs that put them
 * a, b, a, b, ... in the store's order (by CreatedAt, then ID). */
static void alternate_id(char out[ID_LEN + 1], void *ud) {
  struct fx *f = ud;
  int n = ++f->next_id;
  snprintf(out, ID_LEN + 1, "t%024d", n <= 4 ? 2 * n : 2 * (n - 4) + 1);
}

/* Tasks of two services placed in one run, made in an order that
 * alternates between them (one orchestrator pass): the run places them a
 * group after the other (as swarmkit's task groups), in the order of each
 * group's first task, and the second group sees the CPU the first took. */
TEST(sched_interleaved_groups_see_each_others_placements) {
  cleanup_fx struct fx f = {0};
  fx_init_nodes(&f, "node", 3);
  f.no_place_new = true; /* the scheduler's own pass */
  /* 2 of a node's 4 CPUs a task: two tasks per node, six in all. */
  const char *two =
      ",\"Resources\":{\"Reservations\":{\"NanoCPUs\":2000000000}}";
  svc(&f, "a", 4, two);
  svc(&f, "b", 4, two);
  f.new_id = alternate_id;
  fx_orch(&f); /* both services' tasks at once */
  f.new_id = NULL;
  json_t *pending = fx_tasks(&f, NULL, NULL, "pending");
  size_t i, switches = 0;
  json_t *t;
  json_array_foreach(pending, i, t) if (i > 0) switches +=
      strcmp(jx_str(t, "ServiceID", ""),
             jx_str(json_array_get(pending, i - 1), "ServiceID", "")) != 0;
  json_decref(pending);
  CHECK_INT_EQ(switches, 7); /* a, b, a, b, ... */
  /* Both services' placements (and the two left pending, with why) in
   * one transaction: one raft entry, not one per service. */
  CHECK_INT_EQ(fx_sched(&f), 1);
  CHECK_INT_EQ(fx_count(&f, NULL, NULL, "assigned"), 6);
  static const char *const nodes[] = {"node1", "node2", "node3"};
  int on_a = 0, on_b = 0;
  for (size_t k = 0; k < 3; k++) {
    CHECK_INT_EQ(on(&f, "a", nodes[k]) + on(&f, "b", nodes[k]), 2);
    on_a += on(&f, "a", nodes[k]);
    on_b += on(&f, "b", nodes[k]);
  }
  CHECK_INT_EQ(on_a, 4); /* a's group first: its first task came first */
  CHECK_INT_EQ(on_b, 2);
  char err[256];
  CHECK_STR_EQ(first_err(&f, "b", err, sizeof err),
               "no suitable node (insufficient resources on 3 nodes)");
  fx_free(&f);
}

/* The reconciler's orchestrator pass places the tasks it makes: they go
 * into the store assigned, in the entry that creates them, on the nodes
 * the scheduler's own pass would have chosen one commit later. */
static void mixed_services(struct fx *f) {
  fx_node(f, "node1", "{\"zone\":\"a\"}");
  fx_node(f, "node2", "{\"zone\":\"b\"}");
  fx_node(f, "node3", "{\"zone\":\"b\"}");
  svc(f, "web", 7, NULL);
  svc(f, "in_b", 3,
      ",\"Placement\":{\"Constraints\":[\"node.labels.zone==b\"]}");
  svc(f, "big", 3,
      ",\"Resources\":{\"Reservations\":{\"NanoCPUs\":3000000000}}");
  svc(f, "spread", 4,
      ",\"Placement\":{\"Preferences\":[{\"Spread\":{\"SpreadDescriptor\":"
      "\"node.labels.zone\"}}]}");
  svc(f, "nowhere", 2,
      ",\"Placement\":{\"Constraints\":[\"node.labels.zone==c\"]}");
}

/* "" when every task of a is in b with the same placement and status,
 * else what differs first. */
static const char *first_difference(struct fx *a, struct fx *b, char *buf,
                                    size_t n) {
  static const char *const fields[] = {"NodeID", "Name", "Status.State",
                                       "Status.Message", "Status.Err"};
  cleanup_json json_t *ta = store_list(a->s, STORE_TASK);
  size_t i;
  json_t *t;
  *buf = '\0';
  json_array_foreach(ta, i, t) {
    const char *id = jx_str(t, "ID", "");
    const json_t *u = store_get(b->s, STORE_TASK, id);
    for (size_t k = 0; !*buf && k < sizeof fields / sizeof *fields; k++)
      if (!u || strcmp(jx_str(t, fields[k], "-"), jx_str(u, fields[k], "-")))
        snprintf(buf, n, "%s: %s %s / %s", id, fields[k],
                 jx_str(t, fields[k], "-"), u ? jx_str(u, fields[k], "-") : "");
  }
  if (!*buf && store_count(a->s, STORE_TASK) != store_count(b->s, STORE_TASK))
    snprintf(buf, n, "task counts differ");
  return buf;
}

TEST(sched_new_tasks_go_in_placed_as_the_pass_would) {
  cleanup_fx struct fx a = {0}, b = {0};
  fx_init(&a, 5);
  fx_init(&b, 5);
  b.no_place_new = true;
  mixed_services(&a);
  mixed_services(&b);
  CHECK(fx_orch(&a) > 0);
  /* Nothing left for the scheduler's pass: each task was decided. */
  CHECK_INT_EQ(fx_sched(&a), 0);
  fx_orch(&b);
  CHECK(fx_sched(&b) > 0);
  char diff[512];
  CHECK_STR_EQ(first_difference(&a, &b, diff, sizeof diff), "");
  CHECK_INT_EQ(store_count(a.s, STORE_TASK), 19);
  /* All but "nowhere"'s two (the big ones take 3 of a node's 4 CPUs:
   * one per node). */
  CHECK_INT_EQ(fx_count(&a, NULL, NULL, "assigned"), 17);
  CHECK_INT_EQ(on(&a, "big", "node1") + on(&a, "big", "node2"), 2);
  char buf[256];
  CHECK_STR_EQ(first_err(&a, "nowhere", buf, sizeof buf),
               "no suitable node (scheduling constraints not satisfied on 3 "
               "nodes)");
  /* A later change (a fourth node) lets the pass place what waited. */
  fx_node(&a, "node4", "{\"zone\":\"c\"}");
  CHECK(fx_sched(&a) > 0);
  CHECK_INT_EQ(on(&a, "nowhere", "node4"), 2);
  fx_free(&a);
  fx_free(&b);
}

/* Past its time budget the placement leaves the rest pending, and the
 * scheduler's pass places them after the commit. */
TEST(sched_new_tasks_left_pending_past_the_budget) {
  cleanup_fx struct fx f = {0};
  fx_init_nodes(&f, "node", 3);
  f.no_place_new = true;
  svc(&f, "web", 5, NULL);
  struct orch_out o;
  orch_out_init(&o);
  o.new_id = fx_new_id;
  o.id_ud = &f;
  orchestrator_touch_all(f.s, f.touched);
  orchestrator_run_services(f.s, f.now, &o, f.touched, f.wake, f.rest);
  struct sched_placed placed;
  scheduler_place_new(f.s, f.now, &o, f.load, 0, &placed);
  /* The first decides the run's start; none after it is within 0 ns. */
  CHECK_INT_EQ(placed.placed, 1);
  CHECK_INT_EQ(placed.left, 4);
  fx_apply_out(&f, &o);
  orch_out_free(&o);
  CHECK_INT_EQ(fx_count(&f, "web", "running", "assigned"), 1);
  CHECK_INT_EQ(fx_count(&f, "web", "running", "pending"), 4);
  CHECK_INT_EQ(fx_sched(&f), 1);
  CHECK_INT_EQ(fx_count(&f, "web", "running", "assigned"), 5);
  CHECK_INT_EQ(on(&f, "web", "node1") + on(&f, "web", "node2"), 4);
  fx_free(&f);
}

/* A stop-first update stops a task and makes its successor in one
 * transaction: the successor is placed as the scheduler's pass would
 * place it after that commit, where the stopped task no longer counts
 * (here: on the node it leaves, under Placement.MaxReplicas 1). */
static const char *max1(char *b, size_t n, const char *image) {
  snprintf(b, n,
           "{\"Name\":\"web\",\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":"
           "\"%s\"},\"Placement\":{\"MaxReplicas\":1}},\"Mode\":{"
           "\"Replicated\":{\"Replicas\":3}}}",
           image);
  return b;
}

TEST(sched_new_tasks_see_the_tasks_their_pass_stops) {
  cleanup_fx struct fx a = {0}, b = {0};
  char buf[512];
  fx_init_nodes(&a, "node", 3);
  fx_init_nodes(&b, "node", 3);
  b.no_place_new = true;
  fx_service(&a, "web", max1(buf, sizeof buf, "nginx"));
  fx_service(&b, "web", max1(buf, sizeof buf, "nginx"));
  fx_converge(&a, true);
  fx_converge(&b, true);
  CHECK_INT_EQ(fx_count(&a, "web", "running", "running"), 3);
  a.now += NS_PER_SEC;
  b.now += NS_PER_SEC;
  fx_update(&a, "web", max1(buf, sizeof buf, "nginx:2"), NULL);
  fx_update(&b, "web", max1(buf, sizeof buf, "nginx:2"), NULL);
  fx_orch(&a);
  fx_orch(&b);
  fx_sched(&b);
  /* One task stopped, its successor placed where it was, not refused. */
  char diff[512];
  CHECK_STR_EQ(first_difference(&a, &b, diff, sizeof diff), "");
  CHECK_INT_EQ(store_count(a.s, STORE_TASK), 4);
  CHECK_INT_EQ(fx_count(&a, "web", "ready", "assigned"), 1);
  fx_free(&a);
  fx_free(&b);
}

/* The kept loads number nodes and services densely: a node whose tasks
 * all ended, and a service with none left, give their slots up, and the
 * next ones to come take them; what they count there starts from zero.
 * (fx_sched checks every run against a fresh count.) */
TEST(sched_load_slots_given_up_and_taken_again) {
  cleanup_fx struct fx f = {0};
  fx_init_nodes(&f, "node", 3);
  svc(&f, "a", 6, NULL);
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_on_node(&f, "a", "node3"), 2);
  fx_scale(&f, "a", 0);
  fx_converge(&f, true); /* every node empty again */
  CHECK_INT_EQ(fx_count(&f, "a", "running", NULL), 0);
  svc(&f, "b", 1, NULL);
  fx_node(&f, "node4", NULL);
  fx_converge(&f, true);
  svc(&f, "c", 7, NULL);
  fx_converge(&f, true);
  /* Fewest of c, then fewest in all: b's node gets one c, the rest two. */
  size_t total = 0;
  static const char *const nodes[] = {"node1", "node2", "node3", "node4"};
  for (size_t k = 0; k < 4; k++) {
    size_t b = fx_on_node(&f, "b", nodes[k]), c = fx_on_node(&f, "c", nodes[k]);
    CHECK_INT_EQ(c, b ? 1 : 2);
    total += b + c;
  }
  CHECK_INT_EQ(total, 8);
  /* Placed on those counts, kept from the changes: two more for b's
   * node, one more for each of the others. */
  fx_scale(&f, "c", 11);
  fx_converge(&f, true);
  for (size_t k = 0; k < 4; k++)
    CHECK_INT_EQ(fx_on_node(&f, "c", nodes[k]),
                 fx_on_node(&f, "b", nodes[k]) ? 2 : 3);
  fx_free(&f);
}

/* A pass places up to PLACE_BATCH (what a node pass may replace), the
 * rest in the next; the fixture runs it with the reconciler's budget. */
TEST(sched_pass_places_up_to_its_batch) {
  cleanup_fx struct fx f = {0};
  fx_init_nodes(&f, "node", 3);
  f.no_place_new = true;
  svc(&f, "web", PLACE_BATCH + 10, NULL);
  while (fx_count(&f, "web", NULL, "pending") < PLACE_BATCH + 10)
    CHECK(fx_orch(&f) > 0);
  fx_sched(&f);
  CHECK_INT_EQ(fx_count(&f, "web", NULL, "assigned"), PLACE_BATCH);
  CHECK_INT_EQ(fx_count(&f, "web", NULL, "pending"), 10);
  fx_sched(&f);
  CHECK_INT_EQ(fx_count(&f, "web", NULL, "assigned"), PLACE_BATCH + 10);
  fx_free(&f);
}

/* The orchestrator's pass for a's tasks and the one after it for b's,
 * both before a's entry applies (the reconciler's pipelined passes). */
static void pass_for(struct fx *f, const char *service, struct orch_out *o) {
  orch_out_init(o);
  o->new_id = fx_new_id;
  o->id_ud = f;
  json_object_clear(f->touched);
  json_object_set_new(f->touched, service, json_true());
  orchestrator_run_services(f->s, f->now, o, f->touched, f->wake, f->rest);
  struct sched_placed placed;
  scheduler_place_new(f->s, f->now, o, f->load, INT64_MAX / 2, &placed);
}

static void expect_new(json_t *t, void *ud) {
  sched_load_expect(ud, t);
}

static void collect(json_t *t, void *ud) {
  json_array_append(ud, t);
}

static const char *only_node(struct orch_out *o, char *buf, size_t n) {
  json_t *made = json_array();
  for (size_t i = 0; i < o->ntx; i++)
    store_tx_each_new(o->txs[i], STORE_TASK, collect, made);
  snprintf(buf, n, "%s",
           json_array_size(made) == 1
               ? jx_str(json_array_get(made, 0), "NodeID", "")
               : "");
  json_decref(made);
  return buf;
}

/* Placements a pass proposed count in the kept loads before their entry
 * applies: the next pass spreads around them. Their apply takes the
 * expectation's place (the loads then match a fresh count), and an
 * expectation whose entry did not apply is dropped. */
TEST(sched_expected_placements_count_before_their_apply) {
  cleanup_fx struct fx f = {0};
  fx_init_nodes(&f, "node", 3);
  svc(&f, "a", 2, NULL);
  svc(&f, "b", 1, NULL);
  svc(&f, "c", 1, NULL);
  struct orch_out oa, ob, oc;
  pass_for(&f, "a", &oa);
  for (size_t i = 0; i < oa.ntx; i++)
    store_tx_each_new(oa.txs[i], STORE_TASK, expect_new, f.load);
  json_t *a_tasks = json_array();
  for (size_t i = 0; i < oa.ntx; i++)
    store_tx_each_new(oa.txs[i], STORE_TASK, collect, a_tasks);
  CHECK_INT_EQ(json_array_size(a_tasks), 2);
  char a1[64], a2[64], bn[64], cn[64];
  snprintf(a1, sizeof a1, "%s",
           jx_str(json_array_get(a_tasks, 0), "NodeID", ""));
  snprintf(a2, sizeof a2, "%s",
           jx_str(json_array_get(a_tasks, 1), "NodeID", ""));
  CHECK(strcmp(a1, a2) != 0);
  /* b's one task goes to the node a left empty. */
  pass_for(&f, "b", &ob);
  only_node(&ob, bn, sizeof bn);
  CHECK(*bn && strcmp(bn, a1) != 0 && strcmp(bn, a2) != 0);
  /* A proposal refused: its expectations go, and the loads are as
   * before it (c goes where b would have gone). */
  for (size_t i = 0; i < json_array_size(a_tasks); i++)
    sched_load_unexpect(f.load, jx_str(json_array_get(a_tasks, i), "ID", ""));
  orch_out_free(&ob);
  json_object_clear(f.touched);
  pass_for(&f, "c", &oc);
  only_node(&oc, cn, sizeof cn);
  CHECK(strcmp(cn, a1) == 0 || strcmp(cn, a2) == 0);
  orch_out_free(&oc);
  /* Expected again and applied: no double count (fx_sched compares the
   * kept loads with a fresh count), and the unexpect that follows a
   * decided proposal changes nothing. */
  for (size_t i = 0; i < oa.ntx; i++)
    store_tx_each_new(oa.txs[i], STORE_TASK, expect_new, f.load);
  fx_apply_out(&f, &oa);
  orch_out_free(&oa);
  for (size_t i = 0; i < json_array_size(a_tasks); i++)
    sched_load_unexpect(f.load, jx_str(json_array_get(a_tasks, i), "ID", ""));
  json_decref(a_tasks);
  svc(&f, "d", 1, NULL);
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "a", "running", "running"), 2);
  /* a's two, then b, c and d: 2, 2, 1. */
  size_t lo = 99, hi = 0;
  static const char *const nodes[] = {"node1", "node2", "node3"};
  static const char *const svcs[] = {"a", "b", "c", "d"};
  for (size_t k = 0; k < 3; k++) {
    size_t n = 0;
    for (size_t j = 0; j < 4; j++)
      n += fx_on_node(&f, svcs[j], nodes[k]);
    lo = n < lo ? n : lo;
    hi = n > hi ? n : hi;
  }
  CHECK_INT_EQ(lo, 1);
  CHECK_INT_EQ(hi, 2);
  fx_free(&f);
}

/* The reconciler counts a pass's placements in the loads until their
 * entry applies (sched_load_expect), and the proposal's tasks then lose
 * their Spec to the named template (store_tx_name_templates): what the
 * expectation added must still come off at the apply, reservations and
 * host ports included, or each such task counted twice on its node. */
TEST(sched_expected_placement_gives_way_whole_to_its_apply) {
  cleanup_fx struct fx f = {0};
  fx_init_nodes(&f, "node", 1); /* 4 CPUs */
  svc(&f, "other", 1, NULL);    /* the node's load is never empty below */
  fx_orch(&f);
  CHECK_INT_EQ(on(&f, "other", "node1"), 1);
  const char *res =
      ",\"Resources\":{\"Reservations\":{\"NanoCPUs\":1000000000}}";
  svc(&f, "first", 2, res);
  struct orch_out o;
  pass_for(&f, "first", &o);
  for (size_t i = 0; i < o.ntx; i++)
    store_tx_each_new(o.txs[i], STORE_TASK, expect_new, f.load);
  CHECK(fx_apply_out(&f, &o) > 0); /* names the template, as proposed */
  CHECK_INT_EQ(f.failed_txs, 0);
  orch_out_free(&o);
  CHECK_INT_EQ(on(&f, "first", "node1"), 2);
  /* Two CPUs are free: both of another service's tasks fit. */
  svc(&f, "second", 2, res);
  fx_orch(&f);
  CHECK_INT_EQ(on(&f, "second", "node1"), 2);
  char err[256];
  CHECK_STR_EQ(first_err(&f, "second", err, sizeof err), "");
  /* And none is free now: each placed task counted once, not zero times
   * (an apply as proposed moves nothing in the loads). */
  svc(&f, "third", 1, res);
  fx_orch(&f);
  CHECK_INT_EQ(on(&f, "third", "node1"), 0);
  CHECK(strstr(first_err(&f, "third", err, sizeof err), "insufficient"));
}
