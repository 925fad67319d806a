/* Service control operations: validation messages, normalization,
 * conflicts, update/rollback bookkeeping, insertDefaults. */
#include "fixture.h"
#include "manager/orchtask.h"
#include "test.h"
#include "core/jsonx.h"

static int create_err(struct fx *f, const char *spec_json, sh_err *err) {
  json_t *spec = json_loads(spec_json, 0, NULL);
  json_t *svc = services_create(f->s, spec, "newid", f->now, err);
  json_decref(spec);
  if (svc) {
    json_decref(svc);
    return 0;
  }
  return -1;
}

#define IMG "\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":\"nginx\"}}"

TEST(services_validation_messages) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  sh_err err = {0};
  CHECK(create_err(&f,
                   "{\"Name\":\"web\",\"TaskTemplate\":{\"ContainerSpec\":{}}}",
                   &err) < 0);
  CHECK_STR_EQ(err.msg, "rpc error: code = InvalidArgument desc = "
                        "ContainerSpec: image reference must be provided");
  CHECK_INT_EQ(err.status, 400);
  CHECK(create_err(&f,
                   "{\"Name\":\"web\",\"TaskTemplate\":{\"ContainerSpec\":{"
                   "\"Image\":\"Nginx\"}}}",
                   &err) < 0);
  CHECK_STR_EQ(err.msg, "rpc error: code = InvalidArgument desc = "
                        "ContainerSpec: \"Nginx\" is not a valid "
                        "repository/tag");
  CHECK(create_err(&f, "{\"Name\":\"-web\"," IMG "}", &err) < 0);
  CHECK_STR_EQ(err.msg, "rpc error: code = InvalidArgument desc = name must "
                        "be valid as a DNS name component");
  CHECK(create_err(&f,
                   "{\"Name\":\"web\"," IMG ",\"Mode\":{\"Global\":{},"
                   "\"Replicated\":{\"Replicas\":2}}}",
                   &err) < 0);
  CHECK_STR_EQ(err.msg, "must specify only one service mode");
  CHECK(create_err(&f,
                   "{\"Name\":\"web\",\"TaskTemplate\":{\"ContainerSpec\":{"
                   "\"Image\":\"nginx\"},\"RestartPolicy\":{\"Condition\":"
                   "\"always\"}}}",
                   &err) < 0);
  CHECK_STR_EQ(err.msg, "invalid RestartCondition: \"always\"");
  CHECK(create_err(&f,
                   "{\"Name\":\"web\",\"TaskTemplate\":{\"ContainerSpec\":{"
                   "\"Image\":\"nginx\"},\"Placement\":{\"Constraints\":["
                   "\"node.role=manager\"]}}}",
                   &err) < 0);
  CHECK_STR_EQ(err.msg, "rpc error: code = Unknown desc = constraint "
                        "expected one operator from ==, !=");
  CHECK(create_err(&f,
                   "{\"Name\":\"web\"," IMG ",\"UpdateConfig\":{"
                   "\"MaxFailureRatio\":1.5}}",
                   &err) < 0);
  CHECK_STR_EQ(err.msg, "rpc error: code = InvalidArgument desc = TaskSpec: "
                        "update-maxfailureratio cannot be less than 0 or "
                        "bigger than 1");
  CHECK(create_err(&f,
                   "{\"Name\":\"web\",\"TaskTemplate\":{\"ContainerSpec\":{"
                   "\"Image\":\"nginx\"},\"Resources\":{\"Limits\":{"
                   "\"MemoryBytes\":1000}}}}",
                   &err) < 0);
  CHECK_STR_EQ(err.msg, "rpc error: code = InvalidArgument desc = invalid "
                        "memory value 1000: Must be at least 4MiB");
  CHECK(create_err(&f,
                   "{\"Name\":\"web\"," IMG ",\"EndpointSpec\":{\"Ports\":["
                   "{\"TargetPort\":80,\"PublishedPort\":80},{\"TargetPort\":"
                   "81,\"PublishedPort\":80}]}}",
                   &err) < 0);
  CHECK_STR_EQ(err.msg, "rpc error: code = InvalidArgument desc = "
                        "EndpointSpec: duplicate published ports provided");
  CHECK(create_err(&f,
                   "{\"Name\":\"web\",\"TaskTemplate\":{\"ContainerSpec\":{"
                   "\"Image\":\"localhost:5000/team/nginx:1.25@sha256:"
                   "0123abcd\"}}}",
                   &err) == 0);
  fx_free(&f);
}

TEST(services_create_normalizes) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  sh_err err = {0};
  json_t *spec =
      json_loads("{\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":\"nginx\"},"
                 "\"RestartPolicy\":{}},\"UpdateConfig\":{\"Parallelism\":2},"
                 "\"EndpointSpec\":{\"Ports\":[{\"TargetPort\":80}]}}",
                 0, NULL);
  json_t *svc = services_create(f.s, spec, "abc", f.now, &err);
  json_decref(spec);
  CHECK(svc != NULL);
  CHECK(strchr(jx_str(svc, "Spec.Name", ""), '_') != NULL); /* random name */
  CHECK_INT_EQ(jx_int(svc, "Spec.Mode.Replicated.Replicas", 0), 1);
  CHECK_STR_EQ(jx_str(svc, "Spec.TaskTemplate.RestartPolicy.Condition", ""),
               "any");
  CHECK_STR_EQ(jx_str(svc, "Spec.UpdateConfig.FailureAction", ""), "pause");
  CHECK_STR_EQ(jx_str(svc, "Spec.UpdateConfig.Order", ""), "stop-first");
  CHECK_STR_EQ(jx_str(svc, "Spec.EndpointSpec.Mode", ""), "vip");
  json_t *p = json_array_get(jx_get(svc, "Endpoint.Ports"), 0);
  CHECK_STR_EQ(jx_str(p, "Protocol", ""), "tcp");
  CHECK_STR_EQ(jx_str(p, "PublishMode", ""), "ingress");
  CHECK_INT_EQ(jx_int(p, "PublishedPort", 0), 30000);
  fx_put(&f, STORE_SERVICE, svc, STORE_MUST_CREATE);
  /* The next service gets the next dynamic port. */
  spec = json_loads("{\"Name\":\"two\"," IMG ",\"EndpointSpec\":{\"Ports\":[{"
                    "\"TargetPort\":80}]}}",
                    0, NULL);
  svc = services_create(f.s, spec, "def", f.now, &err);
  json_decref(spec);
  CHECK_INT_EQ(jx_int(json_array_get(jx_get(svc, "Endpoint.Ports"), 0),
                      "PublishedPort", 0),
               30001);
  json_decref(svc);
  fx_free(&f);
}

TEST(services_conflicts) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  fx_service(&f, "id1",
             "{\"Name\":\"x\"," IMG ",\"EndpointSpec\":{\"Ports\":[{"
             "\"TargetPort\":80,\"PublishedPort\":8080}]}}");
  sh_err err = {0};
  CHECK(create_err(&f, "{\"Name\":\"x\"," IMG "}", &err) < 0);
  CHECK_INT_EQ(err.status, 409);
  CHECK_STR_EQ(err.msg, "rpc error: code = AlreadyExists desc = name "
                        "conflicts with an existing object: service x "
                        "already exists");
  CHECK(create_err(&f,
                   "{\"Name\":\"y\"," IMG ",\"EndpointSpec\":{\"Ports\":[{"
                   "\"TargetPort\":81,\"PublishedPort\":8080}]}}",
                   &err) < 0);
  CHECK_STR_EQ(err.msg, "rpc error: code = InvalidArgument desc = port "
                        "'8080' is already in use by service 'x' (id1) as an "
                        "ingress port");
  /* The same port on another protocol is fine. */
  CHECK(create_err(&f,
                   "{\"Name\":\"y\"," IMG ",\"EndpointSpec\":{\"Ports\":[{"
                   "\"TargetPort\":81,\"PublishedPort\":8080,\"Protocol\":"
                   "\"udp\"}]}}",
                   &err) == 0);
  fx_free(&f);
}

TEST(services_update_rollback_and_versions) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  fx_service(&f, "id1", "{\"Name\":\"x\"," IMG "}");
  json_t *cur = store_get(f.s, STORE_SERVICE, "id1");
  int64_t v1 = jx_int(cur, "Version.Index", 0);
  sh_err err = {0};
  /* rollback without a previous spec */
  json_t *r = services_update(f.s, "x", v1, json_object_get(cur, "Spec"),
                              "previous", f.now, &err);
  CHECK(r == NULL);
  CHECK_INT_EQ(err.status, 400);
  CHECK_STR_EQ(err.msg, "rpc error: code = FailedPrecondition desc = service "
                        "id1 does not have a previous spec");
  /* rename and mode change refused */
  json_t *spec = json_loads("{\"Name\":\"z\"," IMG "}", 0, NULL);
  CHECK(!services_update(f.s, "x", v1, spec, NULL, f.now, &err));
  CHECK_STR_EQ(err.msg, "rpc error: code = Unimplemented desc = renaming "
                        "services is not supported");
  json_decref(spec);
  spec =
      json_loads("{\"Name\":\"x\"," IMG ",\"Mode\":{\"Global\":{}}}", 0, NULL);
  CHECK(!services_update(f.s, "x", v1, spec, NULL, f.now, &err));
  CHECK_STR_EQ(err.msg, "rpc error: code = Unimplemented desc = service mode "
                        "change is not allowed");
  json_decref(spec);
  /* an update: previous spec and spec version recorded */
  fx_update(&f, "id1",
            "{\"Name\":\"x\",\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":"
            "\"nginx:2\"}}}",
            NULL);
  cur = store_get(f.s, STORE_SERVICE, "id1");
  CHECK_STR_EQ(jx_str(cur, "PreviousSpec.TaskTemplate.ContainerSpec.Image", ""),
               "nginx");
  CHECK_INT_EQ(jx_int(cur, "_SpecVersion", 0), v1);
  CHECK_INT_EQ(jx_int(cur, "_PreviousSpecVersion", -1), 0);
  /* a stale version fails in apply */
  json_t *next = services_update(f.s, "id1", v1, json_object_get(cur, "Spec"),
                                 NULL, f.now, &err);
  CHECK(next != NULL);
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_SERVICE, next, v1);
  size_t len;
  char *data = store_tx_encode(tx, f.now, &len);
  store_tx_free(tx);
  CHECK(store_apply(f.s, data, len, f.index + 1, &err) < 0);
  free(data);
  CHECK_STR_EQ(err.msg, "update out of sequence");
  /* rollback swaps the specs */
  fx_update(&f, "id1", NULL, "previous");
  cur = store_get(f.s, STORE_SERVICE, "id1");
  CHECK_STR_EQ(jx_str(cur, "Spec.TaskTemplate.ContainerSpec.Image", ""),
               "nginx");
  CHECK_STR_EQ(jx_str(cur, "PreviousSpec.TaskTemplate.ContainerSpec.Image", ""),
               "nginx:2");
  CHECK_STR_EQ(jx_str(cur, "UpdateStatus.State", ""), "rollback_started");
  CHECK_INT_EQ(jx_int(cur, "_SpecVersion", -1), 0);
  /* removal resolves names */
  CHECK_STR_EQ(services_remove(f.s, "x", &err), "id1");
  CHECK(services_remove(f.s, "nope", &err) == NULL);
  CHECK_STR_EQ(err.msg, "service nope not found");
  fx_free(&f);
}

TEST(services_insert_defaults_view) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  fx_service(&f, "id1",
             "{\"Name\":\"x\",\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":"
             "\"nginx\"},\"RestartPolicy\":{\"Condition\":\"none\"}}}");
  json_t *svc = store_get(f.s, STORE_SERVICE, "id1");
  json_t *plain = services_view(svc, false);
  CHECK(!json_object_get(plain, "_SpecVersion"));
  CHECK(!jx_get(plain, "Spec.UpdateConfig"));
  json_decref(plain);
  json_t *v = services_view(svc, true);
  CHECK_INT_EQ(jx_int(v, "Spec.UpdateConfig.Parallelism", 0), 1);
  CHECK_STR_EQ(jx_str(v, "Spec.UpdateConfig.FailureAction", ""), "pause");
  CHECK_INT_EQ(jx_int(v, "Spec.UpdateConfig.Monitor", 0), 5 * NS_PER_SEC);
  CHECK_STR_EQ(jx_str(v, "Spec.UpdateConfig.Order", ""), "stop-first");
  CHECK_INT_EQ(jx_int(v, "Spec.UpdateConfig.MaxFailureRatio", -1), 0);
  CHECK_STR_EQ(jx_str(v, "Spec.RollbackConfig.FailureAction", ""), "pause");
  CHECK_STR_EQ(jx_str(v, "Spec.TaskTemplate.RestartPolicy.Condition", ""),
               "none");
  CHECK_INT_EQ(jx_int(v, "Spec.TaskTemplate.RestartPolicy.Delay", 0),
               5 * NS_PER_SEC);
  CHECK_INT_EQ(jx_int(v, "Spec.TaskTemplate.ContainerSpec.StopGracePeriod", 0),
               10 * NS_PER_SEC);
  CHECK_STR_EQ(jx_str(v, "Spec.EndpointSpec.Mode", ""), "vip");
  json_decref(v);
  fx_free(&f);
}

/* What one service may hold is bounded at create and at update (scale). */
TEST(services_replica_and_size_limits) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  sh_err err = {0};
  CHECK(create_err(&f,
                   "{\"Name\":\"big\"," IMG
                   ",\"Mode\":{\"Replicated\":{\"Replicas\":1000000000000}}}",
                   &err) < 0);
  CHECK_INT_EQ(err.status, 400);
  CHECK_STR_EQ(err.msg, "rpc error: code = InvalidArgument desc = replicas "
                        "1000000000000 exceeds the limit of 5000 tasks per "
                        "service");
  char spec[256];
  snprintf(spec, sizeof spec,
           "{\"Name\":\"big\"," IMG ",\"Mode\":{\"Replicated\":{\"Replicas\":"
           "%d}}}",
           SERVICES_MAX_REPLICAS);
  CHECK_INT_EQ(create_err(&f, spec, &err), 0);
  /* A large template times many replicas: refused on size. */
  sh_buf b = {0};
  buf_printf(&b, "{\"Name\":\"fat\",\"TaskTemplate\":{\"ContainerSpec\":{"
                 "\"Image\":\"nginx\",\"Env\":[\"X=");
  for (int i = 0; i < 8192; i++)
    buf_append(&b, "x", 1);
  buf_printf(&b, "\"]}},\"Mode\":{\"Replicated\":{\"Replicas\":5000}}}");
  CHECK(create_err(&f, b.data, &err) < 0);
  CHECK_INT_EQ(err.status, 400);
  CHECK(strstr(err.msg, "exceed the limit of 32 MiB of tasks per service"));
  buf_free(&b);

  /* Scaling an existing service past the limit: refused by update. */
  fx_service(&f, "svc1", "{\"Name\":\"web\"," IMG "}");
  json_t *cur = store_get(f.s, STORE_SERVICE, "svc1");
  json_t *next = json_deep_copy(json_object_get(cur, "Spec"));
  jx_set(next, "Mode.Replicated.Replicas", json_integer(5001));
  json_t *svc = services_update(f.s, "svc1", jx_int(cur, "Version.Index", 0),
                                next, NULL, f.now, &err);
  CHECK(!svc);
  CHECK_STR_EQ(err.msg, "rpc error: code = InvalidArgument desc = replicas "
                        "5001 exceeds the limit of 5000 tasks per service");
  json_decref(next);
  fx_free(&f);
}

TEST(services_jobs_validated_defaulted_and_iterated) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  sh_err err = {0};
  CHECK(create_err(&f,
                   "{\"Name\":\"j\"," IMG ",\"Mode\":{\"ReplicatedJob\":{"
                   "\"MaxConcurrent\":-1}}}",
                   &err) < 0);
  CHECK_STR_EQ(err.msg, "rpc error: code = InvalidArgument desc = Maximum "
                        "concurrent jobs must not be negative");
  CHECK(create_err(&f,
                   "{\"Name\":\"j\"," IMG ",\"Mode\":{\"ReplicatedJob\":{"
                   "\"TotalCompletions\":-2}}}",
                   &err) < 0);
  CHECK_STR_EQ(err.msg, "rpc error: code = InvalidArgument desc = Total "
                        "completed jobs must not be negative");
  CHECK(create_err(&f,
                   "{\"Name\":\"j\"," IMG ",\"Mode\":{\"GlobalJob\":{}},"
                   "\"UpdateConfig\":{\"Parallelism\":2}}",
                   &err) < 0);
  CHECK_STR_EQ(err.msg,
               "update and rollback configuration is not supported for jobs");
  CHECK(create_err(&f,
                   "{\"Name\":\"j\"," IMG ",\"Mode\":{\"ReplicatedJob\":{"
                   "\"MaxConcurrent\":9000}}}",
                   &err) < 0);
  CHECK_INT_EQ(err.status, 400);

  /* moby's defaults: MaxConcurrent 1, TotalCompletions = MaxConcurrent. */
  fx_service(&f, "j1",
             "{\"Name\":\"j1\"," IMG ",\"Mode\":{\"ReplicatedJob\":{}}}");
  json_t *svc = store_get(f.s, STORE_SERVICE, "j1");
  CHECK_INT_EQ(jx_int(svc, "Spec.Mode.ReplicatedJob.MaxConcurrent", 0), 1);
  CHECK_INT_EQ(jx_int(svc, "Spec.Mode.ReplicatedJob.TotalCompletions", 0), 1);
  CHECK_INT_EQ(jx_int(svc, "JobStatus.JobIteration.Index", -1), 0);
  CHECK(*jx_str(svc, "JobStatus.LastExecution", ""));
  fx_service(&f, "j2",
             "{\"Name\":\"j2\"," IMG ",\"Mode\":{\"ReplicatedJob\":{"
             "\"MaxConcurrent\":3}}}");
  CHECK_INT_EQ(jx_int(store_get(f.s, STORE_SERVICE, "j2"),
                      "Spec.Mode.ReplicatedJob.TotalCompletions", 0),
               3);
  /* Every update runs the job again; the mode may not change. */
  fx_update(&f, "j1", NULL, NULL);
  CHECK_INT_EQ(jx_int(store_get(f.s, STORE_SERVICE, "j1"),
                      "JobStatus.JobIteration.Index", -1),
               1);
  svc = store_get(f.s, STORE_SERVICE, "j1");
  json_t *spec = json_deep_copy(json_object_get(svc, "Spec"));
  json_object_set_new(spec, "Mode", json_pack("{s:{}}", "GlobalJob"));
  CHECK(!services_update(f.s, "j1", jx_int(svc, "Version.Index", 0), spec, NULL,
                         f.now, &err));
  CHECK_STR_EQ(err.msg, "rpc error: code = Unimplemented desc = service mode "
                        "change is not allowed");
  json_decref(spec);
  /* A replicated service has no JobStatus. */
  fx_service(&f, "r1", "{\"Name\":\"r1\"," IMG "}");
  CHECK(!jx_get(store_get(f.s, STORE_SERVICE, "r1"), "JobStatus"));
  fx_free(&f);
}

/* ServiceStatus from the indexes against a count over every task, as it
 * was counted before: random tasks of a replicated, a global and a job
 * service on nodes ready, down and removed, through random changes. */
static const char *const st_states[] = {"pending", "running", "complete",
                                        "failed", "shutdown"};
static const char *const st_desired[] = {"running", "ready", "shutdown",
                                         "complete"};
static const char *const st_nodes[] = {"n1", "n2", "n3", "gone", ""};

static json_t *brute_status(struct store *s, const json_t *svc) {
  bool job = service_is_job(svc);
  bool global = service_is_global(svc) || jx_get(svc, "Spec.Mode.GlobalJob");
  int64_t iter = service_job_iteration(svc), running = 0, desired = 0,
          completed = 0;
  cleanup_json json_t *all = store_list(s, STORE_TASK);
  size_t i;
  json_t *t;
  json_array_foreach(all, i, t) {
    if (strcmp(jx_str(t, "ServiceID", ""), jx_str(svc, "ID", "")) != 0)
      continue;
    if (job && jx_int(t, "JobIteration.Index", -1) != iter)
      continue;
    enum task_state st = task_state(t), want = task_desired(t);
    if (want <= TS_RUNNING && global)
      desired++;
    if (job && global && want == TS_COMPLETE && st != TS_COMPLETE)
      desired++;
    const json_t *node = store_get(s, STORE_NODE, jx_str(t, "NodeID", ""));
    if ((want <= TS_RUNNING || job) && st == TS_RUNNING && node &&
        strcmp(jx_str(node, "Status.State", ""), "down") != 0)
      running++;
    if (st == TS_COMPLETE)
      completed++;
  }
  if (jx_get(svc, "Spec.Mode.ReplicatedJob"))
    desired = jx_int(svc, "Spec.Mode.ReplicatedJob.MaxConcurrent", 0);
  else if (!global)
    desired = service_replicas(svc);
  return json_pack("{s:I, s:I, s:I}", "RunningTasks", (json_int_t)running,
                   "DesiredTasks", (json_int_t)desired, "CompletedTasks",
                   (json_int_t)completed);
}

TEST(services_status_matches_a_count_of_every_task) {
  cleanup_fx struct fx f;
  fx_init(&f, 5);
  fx_node(&f, "n1", NULL);
  fx_node(&f, "n2", NULL);
  fx_node(&f, "n3", NULL);
  static const char *const modes[] = {
      "{\"Replicated\":{\"Replicas\":7}}", "{\"Global\":{}}",
      "{\"ReplicatedJob\":{\"MaxConcurrent\":2,\"TotalCompletions\":4}}"};
  for (size_t m = 0; m < ARRAY_SIZE(modes); m++) {
    char id[8];
    snprintf(id, sizeof id, "svc%zu", m);
    json_t *svc = json_pack("{s:s, s:{s:s, s:o}}", "ID", id, "Spec", "Name", id,
                            "Mode", json_loads(modes[m], 0, NULL));
    if (m == 2)
      json_object_set_new(svc, "JobStatus",
                          json_pack("{s:{s:i}}", "JobIteration", "Index", 0));
    fx_put(&f, STORE_SERVICE, svc, STORE_MUST_CREATE);
  }
  struct services_lost lost = {0};
  uint64_t rs = 42;
  for (int step = 0; step < 400; step++) {
    char id[8];
    unsigned what = test_rnd(&rs, 10);
    if (what == 0) { /* a node goes down, comes back, or is removed */
      const char *n = st_nodes[test_rnd(&rs, 3)];
      json_t *cur = store_get(f.s, STORE_NODE, n);
      if (cur && test_rnd(&rs, 4) == 0) {
        struct store_tx *tx = store_tx_new();
        store_tx_delete(tx, STORE_NODE, n, STORE_ANY_VERSION);
        fx_apply_tx(&f, tx, false);
      } else if (cur) {
        json_t *c = json_deep_copy(cur);
        jx_set(c, "Status.State",
               json_string(test_rnd(&rs, 2) ? "down" : "ready"));
        fx_put(&f, STORE_NODE, c, STORE_ANY_VERSION);
      } else {
        fx_node(&f, n, NULL);
      }
    } else { /* a task made or changed */
      snprintf(id, sizeof id, "t%02u", test_rnd(&rs, 40));
      json_t *t = json_pack(
          "{s:s, s:s, s:s, s:s, s:{s:s}, s:{s:i}}", "ID", id, "ServiceID",
          (const char *[]){"svc0", "svc0", "svc1", "svc2"}[test_rnd(&rs, 4)],
          "NodeID", st_nodes[test_rnd(&rs, ARRAY_SIZE(st_nodes))],
          "DesiredState", st_desired[test_rnd(&rs, ARRAY_SIZE(st_desired))],
          "Status", "State", st_states[test_rnd(&rs, ARRAY_SIZE(st_states))],
          "JobIteration", "Index", (int)test_rnd(&rs, 2));
      if (!*jx_str(t, "NodeID", "")) /* not placed: never ran */
        jx_set(t, "Status.State", json_string("pending"));
      fx_put(&f, STORE_TASK, t, STORE_ANY_VERSION);
    }
    for (size_t m = 0; m < ARRAY_SIZE(modes); m++) {
      snprintf(id, sizeof id, "svc%zu", m);
      json_t *svc = store_get(f.s, STORE_SERVICE, id);
      cleanup_json json_t *got = services_status(f.s, svc, &lost);
      cleanup_json json_t *want = brute_status(f.s, svc);
      if (!json_equal(got, want)) {
        char *g = jx_dumps(got, JSON_COMPACT | JSON_SORT_KEYS, NULL);
        char *w = jx_dumps(want, JSON_COMPACT | JSON_SORT_KEYS, NULL);
        fprintf(stderr, "    step %d %s: %s, a count of every task: %s\n", step,
                id, g, w);
        free(g);
        free(w);
        services_lost_free(&lost);
        FAIL_("ServiceStatus differs");
      }
    }
  }
  services_lost_free(&lost);
}
