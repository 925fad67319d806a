/* Worker tests with real containers (crun + conmon, a busybox-static
 * layer, as root): what a restarted node does with the containers it
 * adopts, and stops that run side by side. */
#include "test.h"

#include "agent/worker.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/id.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "core/workq.h"
#include "exec/exec.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

struct wfx {
  char root[64], data[96], run[96], layer[96];
  const char *layers[2];
  executor *ex;
  uv_loop_t loop;
  bool loop_open;
  struct workq *work;
  struct worker *w;
  json_t *reports; /* every status update, in order */
};

static void wfx_done(struct wfx *f) {
  if (f->w)
    worker_free(f->w);
  if (f->work)
    workq_close(f->work);
  if (f->loop_open) {
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_loop_close(&f->loop);
  }
  if (f->ex) {
    struct exec_entry *v = NULL;
    size_t n = 0;
    if (exec_list(f->ex, &v, &n, NULL) == 0) {
      for (size_t i = 0; i < n; i++)
        exec_remove(f->ex, v[i].id, true, NULL);
      exec_list_free(v, n);
    }
    exec_close(f->ex);
  }
  json_decref(f->reports);
  if (f->root[0]) {
    cleanup_free char *cmd = xasprintf("rm -rf %s", f->root);
    if (system(cmd) != 0)
      fprintf(stderr, "    could not remove %s\n", f->root);
  }
}
#define cleanup_wfx __attribute__((cleanup(wfx_done)))

static const char *wfx_setup(struct wfx *f) {
  memset(f, 0, sizeof *f);
  if (geteuid() != 0)
    return "container tests need root";
  if (exec_prepare_host_mounts(NULL) < 0)
    return "exec_prepare_host_mounts failed";
  snprintf(f->root, sizeof f->root, "/tmp/shoal-worker-XXXXXX");
  if (!mkdtemp(f->root))
    return "mkdtemp";
  snprintf(f->data, sizeof f->data, "%s/data", f->root);
  snprintf(f->run, sizeof f->run, "%s/run", f->root);
  snprintf(f->layer, sizeof f->layer, "%s/layer", f->root);
  cleanup_free char *bin = xasprintf("%s/bin", f->layer);
  if (mkdir_p(bin, 0755, NULL) < 0)
    return "mkdir layer";
  cleanup_free char *cp = xasprintf("cp /bin/busybox %s/busybox", bin);
  if (system(cp) != 0)
    return "copy /bin/busybox (install busybox-static)";
  const char *applets[] = {"sh", "sleep", "echo", "test", "touch", "rm", NULL};
  for (size_t i = 0; applets[i]; i++) {
    cleanup_free char *p = xasprintf("%s/%s", bin, applets[i]);
    if (symlink("busybox", p) < 0)
      return "symlink";
  }
  f->layers[0] = f->layer;
  if (exec_open(f->data, f->run, &f->ex, NULL) < 0)
    return "exec_open failed";
  f->reports = json_array();
  uv_loop_init(&f->loop);
  f->loop_open = true;
  return NULL;
}

#define WFX(f)                                                                 \
  cleanup_wfx struct wfx f;                                                    \
  do {                                                                         \
    const char *why_ = wfx_setup(&f);                                          \
    if (why_)                                                                  \
      FAIL_("setup: %s", why_);                                                \
  } while (0)

/* A running container of task tid, as a worker would have made it. */
static int task_container_hc(struct wfx *f, const char *tid, const char *script,
                             const json_t *hc, char id[65], pid_t *pid,
                             sh_err *err) {
  id_new_hex(id);
  char name[96];
  snprintf(name, sizeof name, "web.1.%s", tid);
  cleanup_json json_t *labels =
      json_pack("{s:s}", "com.docker.swarm.task.id", tid);
  const char *cmd[] = {"sh", "-c", script, NULL};
  struct exec_spec s = {.id = id,
                        .name = name,
                        .image = "busybox:test",
                        .image_id = "sha256:0000",
                        .layers = f->layers,
                        .cmd = cmd,
                        .labels = labels,
                        .healthcheck = hc};
  if (exec_create(f->ex, &s, err) < 0)
    return -1;
  return exec_start(f->ex, id, pid, err);
}

static int task_container(struct wfx *f, const char *tid, const char *script,
                          char id[65], pid_t *pid, sh_err *err) {
  return task_container_hc(f, tid, script, NULL, id, pid, err);
}

static void on_report(void *ud, const json_t *updates) {
  struct wfx *f = ud;
  size_t i;
  json_t *u;
  json_array_foreach(updates, i, u) json_array_append(f->reports, u);
}

static void start_worker(struct wfx *f) {
  f->work = workq_new(&f->loop, 2);
  struct worker_config wc = {.loop = &f->loop,
                             .work = f->work,
                             .exec = f->ex,
                             .node_id = "node1",
                             .report = on_report,
                             .ud = f};
  f->w = worker_new(&wc);
  worker_adopt(f->w);
}

static void stop_loop(uv_timer_t *t) {
  uv_stop(t->loop);
}

static void run_for(struct wfx *f, int64_t ns) {
  uv_timer_t t;
  uv_timer_init(&f->loop, &t);
  uv_timer_start(&t, stop_loop, (uint64_t)(ns / NS_PER_MS), 0);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* The last reported state of task tid, "" if none. */
static const char *last_state(const struct wfx *f, const char *tid) {
  const char *st = "";
  size_t i;
  json_t *u;
  json_array_foreach(f->reports, i,
                     u) if (strcmp(jx_str(u, "ID", ""), tid) == 0) st =
      jx_str(u, "Status.State", "");
  return st;
}

static bool running(struct wfx *f, const char *id, pid_t pid) {
  struct exec_state st;
  return exec_state(f->ex, id, &st, NULL) == 0 &&
         st.status == EXEC_STATUS_RUNNING && st.pid == pid;
}

static bool gone(struct wfx *f, const char *id) {
  struct exec_state st;
  return exec_state(f->ex, id, &st, NULL) < 0;
}

/* A restarted node with no leader yet keeps the containers it adopts, even
 * ones that would stop at once (they honour SIGTERM); only the leader's
 * assignment takes them away, and then they are stopped and removed. */
TEST(worker_adopted_containers_wait_for_an_assignment) {
  WFX(f);
  char kept[65], dropped[65], done_id[65];
  pid_t pk = 0, pd = 0;
  sh_err err = {0};
  const char *polite = "trap 'exit 0' TERM; while :; do sleep 0.1; done";
  if (task_container(&f, "task-kept", polite, kept, &pk, &err) < 0 ||
      task_container(&f, "task-dropped", polite, dropped, &pd, &err) < 0 ||
      task_container(&f, "task-done", "exit 4", done_id, NULL, &err) < 0)
    FAIL_("%s", err.msg);
  start_worker(&f);
  /* Well past the 1 s monitor: nothing may be stopped on a guess. */
  run_for(&f, 3 * NS_PER_SEC);
  CHECK(running(&f, kept, pk));
  CHECK(running(&f, dropped, pd));
  /* An adopted container that exited is still reported. */
  CHECK_STR_EQ(last_state(&f, "task-done"), "failed");
  CHECK_STR_EQ(last_state(&f, "task-kept"), "");
  CHECK(!gone(&f, done_id));

  /* The leader's list names one task: the others' containers go. */
  cleanup_json json_t *tasks =
      json_pack("[{s:s, s:s, s:{s:{s:s}}}]", "ID", "task-kept", "DesiredState",
                "running", "Spec", "ContainerSpec", "Image", "busybox:test");
  worker_assign(f.w, tasks);
  /* (the container may go before the stop's report is flushed) */
  for (int i = 0; i < 100 && !(gone(&f, dropped) && gone(&f, done_id) &&
                               *last_state(&f, "task-dropped"));
       i++)
    run_for(&f, 100 * NS_PER_MS);
  CHECK(gone(&f, dropped));
  CHECK(gone(&f, done_id));
  CHECK(running(&f, kept, pk));
  CHECK_STR_EQ(last_state(&f, "task-dropped"), "shutdown");
}

/* Stops wait on the loop, not on threads: 12 adopted containers whose PID 1
 * ignores SIGTERM, told to shut down with a 1 s grace, are all down in
 * about one grace period (the worker has 4 threads: stops that held one
 * each would take 3 s or more). */
TEST(worker_stops_run_concurrently) {
  WFX(f);
  enum { N = 12 };
  char ids[N][65];
  char tids[N][32];
  sh_err err = {0};
  for (int i = 0; i < N; i++) {
    snprintf(tids[i], sizeof tids[i], "task-%d", i);
    if (task_container(&f, tids[i], "trap '' TERM; while :; do sleep 1; done",
                       ids[i], NULL, &err) < 0)
      FAIL_("%s", err.msg);
  }
  start_worker(&f);
  run_for(&f, 500 * NS_PER_MS);
  cleanup_json json_t *tasks = json_array();
  for (int i = 0; i < N; i++)
    json_array_append_new(
        tasks, json_pack("{s:s, s:s, s:{s:{s:I}}}", "ID", tids[i],
                         "DesiredState", "shutdown", "Spec", "ContainerSpec",
                         "StopGracePeriod", (json_int_t)NS_PER_SEC));
  int64_t t0 = clock_mono_ns();
  worker_assign(f.w, tasks);
  int down = 0;
  for (int k = 0; k < 150 && down < N; k++) {
    run_for(&f, 50 * NS_PER_MS);
    down = 0;
    for (int i = 0; i < N; i++)
      down += strcmp(last_state(&f, tids[i]), "shutdown") == 0;
  }
  int64_t took = clock_mono_ns() - t0;
  CHECK_INT_EQ(down, N);
  CHECK(took >= NS_PER_SEC);
  if (took >= 2500 * NS_PER_MS)
    FAIL_("%d stops with a 1 s grace took %.1f s", N, (double)took / 1e9);
  for (int i = 0; i < N; i++) {
    struct exec_state st;
    CHECK_INT_EQ(exec_state(f.ex, ids[i], &st, &err), 0);
    CHECK_INT_EQ(st.status, EXEC_STATUS_EXITED);
    CHECK_INT_EQ(st.exit_code, 137);
  }
}

/* A task with a healthcheck, as swarmkit's controller runs it: not
 * "running" until a probe passed; once unhealthy, its container is stopped
 * and the task fails with swarmkit's error. Probes run in the container
 * (crun exec). */
TEST(worker_healthcheck_gates_running_and_fails_unhealthy) {
  WFX(f);
  char id[65];
  pid_t pid = 0;
  sh_err err = {0};
  cleanup_json json_t *hc =
      json_pack("{s:[s,s,s,s],s:I,s:I,s:I,s:i}", "Test", "CMD", "test", "-f",
                "/ok", "Interval", (json_int_t)(200 * NS_PER_MS),
                "StartInterval", (json_int_t)(200 * NS_PER_MS), "StartPeriod",
                (json_int_t)(1500 * NS_PER_MS), "Retries", 2);
  if (task_container_hc(&f, "task-hc",
                        "sleep 1; touch /ok; sleep 2; rm /ok; "
                        "while :; do sleep 1; done",
                        hc, id, &pid, &err) < 0)
    FAIL_("%s", err.msg);
  start_worker(&f);
  cleanup_json json_t *tasks = json_pack(
      "[{s:s, s:s, s:{s:{s:s,s:I}}}]", "ID", "task-hc", "DesiredState",
      "running", "Spec", "ContainerSpec", "Image", "busybox:test",
      "StopGracePeriod", (json_int_t)(300 * NS_PER_MS));
  worker_assign(f.w, tasks);
  /* Adopted while starting: nothing reported before it is healthy. */
  cleanup_json json_t *info = NULL;
  for (int i = 0; i < 40; i++) {
    run_for(&f, 50 * NS_PER_MS);
    json_decref(info);
    info = NULL;
    CHECK(exec_inspect_json(f.ex, id, &info, &err) == 0);
    if (jx_get(info, "State.Health"))
      break;
  }
  CHECK_STR_EQ(jx_str(info, "State.Health.Status", ""), "starting");
  CHECK_STR_EQ(last_state(&f, "task-hc"), "");
  for (int i = 0; i < 40 && strcmp(last_state(&f, "task-hc"), "running"); i++)
    run_for(&f, 100 * NS_PER_MS);
  CHECK_STR_EQ(last_state(&f, "task-hc"), "running");
  for (int i = 0; i < 80 && strcmp(last_state(&f, "task-hc"), "failed"); i++)
    run_for(&f, 100 * NS_PER_MS);
  CHECK_STR_EQ(last_state(&f, "task-hc"), "failed");
  json_t *last = json_array_get(f.reports, json_array_size(f.reports) - 1);
  CHECK_STR_EQ(jx_str(last, "Status.Err", ""),
               "task: non-zero exit (137): dockerexec: unhealthy container");
  json_decref(info);
  info = NULL;
  CHECK(exec_inspect_json(f.ex, id, &info, &err) == 0);
  CHECK_STR_EQ(jx_str(info, "State.Status", ""), "exited");
  CHECK_STR_EQ(jx_str(info, "State.Health.Status", ""), "unhealthy");
  CHECK(json_array_size(jx_get(info, "State.Health.Log")) >= 3);
}

struct ctl_result {
  int calls, rc;
  char msg[256];
};

static void ctl_cb(void *ud, int rc, const sh_err *err) {
  struct ctl_result *r = ud;
  r->calls++;
  r->rc = rc;
  snprintf(r->msg, sizeof r->msg, "%s", rc < 0 && err ? err->msg : "");
}

static void ctl_wait(struct wfx *f, struct ctl_result *r) {
  for (int i = 0; i < 100 && !r->calls; i++)
    run_for(f, 50 * NS_PER_MS);
}

/* docker stop / pause / rm on a task's container go through its
 * controller: the exit is the task's end (complete on 0, failed else),
 * answered once the exit is handled; a paused one is thawed before it is
 * killed; rm of a running one needs force. */
TEST(worker_ctl_ends_tasks_as_swarmkit) {
  WFX(f);
  char a[65], b[65];
  sh_err err = {0};
  const char *polite = "trap 'exit 0' TERM; while :; do sleep 0.1; done";
  if (task_container(&f, "task-a", polite, a, NULL, &err) < 0 ||
      task_container(&f, "task-b", polite, b, NULL, &err) < 0)
    FAIL_("%s", err.msg);
  start_worker(&f);
  cleanup_json json_t *tasks =
      json_pack("[{s:s, s:s, s:{s:{s:s}}}, {s:s, s:s, s:{s:{s:s}}}]", "ID",
                "task-a", "DesiredState", "running", "Spec", "ContainerSpec",
                "Image", "busybox:test", "ID", "task-b", "DesiredState",
                "running", "Spec", "ContainerSpec", "Image", "busybox:test");
  run_for(&f, 300 * NS_PER_MS);
  worker_assign(f.w, tasks);
  run_for(&f, 300 * NS_PER_MS);

  struct ctl_result r = {0};
  struct worker_ctl c = {.op = WORKER_STOP,
                         .grace_ns = 5 * NS_PER_SEC,
                         .ref = "a",
                         .done = ctl_cb,
                         .ud = &r};
  CHECK(!worker_ctl(f.w, "0123", &c)); /* not a task's: the caller's */
  CHECK(worker_ctl(f.w, a, &c));
  ctl_wait(&f, &r);
  CHECK_INT_EQ(r.calls, 1);
  CHECK_INT_EQ(r.rc, 0);
  struct exec_state st;
  CHECK_INT_EQ(exec_state(f.ex, a, &st, &err), 0);
  CHECK_INT_EQ(st.status, EXEC_STATUS_EXITED);
  CHECK_INT_EQ(st.exit_code, 0);
  run_for(&f, 100 * NS_PER_MS); /* the report's batching */
  CHECK_STR_EQ(last_state(&f, "task-a"), "complete");
  /* Stopped already: nothing to do (dockerd's 304). */
  r = (struct ctl_result){0};
  CHECK(worker_ctl(f.w, a, &c));
  ctl_wait(&f, &r);
  CHECK_INT_EQ(r.rc, 1);

  r = (struct ctl_result){0};
  c.op = WORKER_PAUSE;
  c.ref = "b";
  CHECK(worker_ctl(f.w, b, &c));
  ctl_wait(&f, &r);
  CHECK_INT_EQ(r.rc, 0);
  CHECK_INT_EQ(exec_state(f.ex, b, &st, &err), 0);
  CHECK(st.paused);
  r = (struct ctl_result){0};
  c.op = WORKER_REMOVE;
  CHECK(worker_ctl(f.w, b, &c));
  ctl_wait(&f, &r);
  CHECK_INT_EQ(r.rc, -1);
  CHECK_STR_EQ(r.msg, "cannot remove container \"b\": container is paused "
                      "and must be unpaused first");
  r = (struct ctl_result){0};
  c.force = true;
  CHECK(worker_ctl(f.w, b, &c));
  ctl_wait(&f, &r);
  CHECK_INT_EQ(r.rc, 0);
  CHECK(gone(&f, b));
  run_for(&f, 100 * NS_PER_MS);
  CHECK_STR_EQ(last_state(&f, "task-b"), "failed");
  /* Gone: the worker no longer owns it. */
  r = (struct ctl_result){0};
  CHECK(!worker_ctl(f.w, b, &c));
}
