/* Healthchecks: configuration merge, dockerd's state machine on given
 * times, output capping; and the monitor on a real loop with a probe
 * that is a plain process (no container needed). */
#include "test.h"

#include "agent/health.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"

#define S NS_PER_SEC

TEST(health_merge_image_and_spec) {
  cleanup_json json_t *img =
      json_pack("{s:[s,s],s:I,s:i}", "Test", "CMD-SHELL", "curl -f localhost",
                "Interval", (json_int_t)(10 * S), "Retries", 5);
  /* No spec: the image's. */
  cleanup_json json_t *a = health_merge(img, NULL);
  CHECK(a && json_equal(a, img));
  /* The spec's fields win, the image's fill the rest. */
  cleanup_json json_t *spec =
      json_pack("{s:I}", "Timeout", (json_int_t)(2 * S));
  cleanup_json json_t *b = health_merge(img, spec);
  CHECK_INT_EQ(jx_int(b, "Timeout", 0), 2 * S);
  CHECK_INT_EQ(jx_int(b, "Interval", 0), 10 * S);
  CHECK_INT_EQ(jx_int(b, "Retries", 0), 5);
  CHECK_STR_EQ(json_string_value(json_array_get(jx_get(b, "Test"), 1)),
               "curl -f localhost");
  /* --no-healthcheck: Test ["NONE"] disables the image's. */
  cleanup_json json_t *none = json_pack("{s:[s]}", "Test", "NONE");
  CHECK(health_merge(img, none) == NULL);
  CHECK(health_merge(NULL, NULL) == NULL);

  /* Probe commands. */
  cleanup_json json_t *c1 = health_probe_cmd(img, NULL);
  CHECK_INT_EQ(json_array_size(c1), 3);
  CHECK_STR_EQ(json_string_value(json_array_get(c1, 0)), "/bin/sh");
  CHECK_STR_EQ(json_string_value(json_array_get(c1, 2)), "curl -f localhost");
  cleanup_json json_t *shell = json_pack("[s,s]", "/bin/bash", "-c");
  cleanup_json json_t *c2 = health_probe_cmd(img, shell);
  CHECK_STR_EQ(json_string_value(json_array_get(c2, 0)), "/bin/bash");
  cleanup_json json_t *cmd =
      json_pack("{s:[s,s,s,s]}", "Test", "CMD", "test", "-f", "/ok");
  cleanup_json json_t *c3 = health_probe_cmd(cmd, shell);
  CHECK_INT_EQ(json_array_size(c3), 3);
  CHECK_STR_EQ(json_string_value(json_array_get(c3, 0)), "test");
  cleanup_json json_t *odd = json_pack("{s:[s,s]}", "Test", "HTTP", "x");
  CHECK(health_probe_cmd(odd, NULL) == NULL);

  /* dockerd's defaults. */
  struct health_params p;
  health_params_from(NULL, &p);
  CHECK_INT_EQ(p.interval_ns, 30 * S);
  CHECK_INT_EQ(p.timeout_ns, 30 * S);
  CHECK_INT_EQ(p.start_period_ns, 0);
  CHECK_INT_EQ(p.start_interval_ns, 5 * S);
  CHECK_INT_EQ(p.retries, 3);
}

TEST(health_state_machine_as_dockerd) {
  struct health_params p;
  cleanup_json json_t *hc =
      json_pack("{s:i,s:I}", "Retries", 2, "StartPeriod", (json_int_t)(10 * S));
  health_params_from(hc, &p);
  int64_t t0 = 1700000000 * S; /* the container's start */
  cleanup_json json_t *st = health_state_new();
  CHECK(health_state_status(st) == HEALTH_STARTING);
  /* Failures within the start period do not count while starting. */
  CHECK(!health_record(st, &p, t0, t0 + 1 * S, t0 + 2 * S, 1, "no"));
  CHECK(!health_record(st, &p, t0, t0 + 6 * S, t0 + 7 * S, 1, "no"));
  CHECK_INT_EQ(jx_int(st, "FailingStreak", -1), 0);
  CHECK(health_state_status(st) == HEALTH_STARTING);
  /* Start interval while starting in the start period, then interval. */
  CHECK_INT_EQ(health_next_interval(st, &p, t0, t0 + 8 * S), 5 * S);
  CHECK_INT_EQ(health_next_interval(st, &p, t0, t0 + 11 * S), 30 * S);
  /* A success: healthy, streak reset. */
  CHECK(health_record(st, &p, t0, t0 + 8 * S, t0 + 8 * S, 0, "ok"));
  CHECK_STR_EQ(jx_str(st, "Status", ""), "healthy");
  CHECK_INT_EQ(health_next_interval(st, &p, t0, t0 + 9 * S), 30 * S);
  /* Once healthy, failures count even within the start period. */
  CHECK(!health_record(st, &p, t0, t0 + 9 * S, t0 + 9 * S, 1, "bad"));
  CHECK_INT_EQ(jx_int(st, "FailingStreak", -1), 1);
  CHECK(health_record(st, &p, t0, t0 + 40 * S, t0 + 41 * S, -1, "timeout"));
  CHECK_STR_EQ(jx_str(st, "Status", ""), "unhealthy");
  CHECK_INT_EQ(jx_int(st, "FailingStreak", -1), 2);
  /* Unhealthy -> healthy on one success. */
  CHECK(health_record(st, &p, t0, t0 + 70 * S, t0 + 70 * S, 0, ""));
  CHECK(health_state_status(st) == HEALTH_HEALTHY);
  /* Only the last 5 results, oldest first, Docker's fields. */
  for (int i = 0; i < 3; i++)
    health_record(st, &p, t0, t0 + (80 + i) * S, t0 + (80 + i) * S, 0, "x");
  json_t *log = json_object_get(st, "Log");
  CHECK_INT_EQ(json_array_size(log), 5);
  json_t *first = json_array_get(log, 0);
  CHECK_STR_EQ(jx_str(first, "Output", ""), "timeout");
  CHECK_INT_EQ(jx_int(first, "ExitCode", 0), -1);
  int64_t start = 0;
  CHECK(clock_parse_rfc3339(jx_str(first, "Start", ""), &start, NULL) == 0);
  CHECK_INT_EQ(start, t0 + 40 * S);
  CHECK(jx_get(first, "End"));

  /* After the start period a failure counts while starting. */
  cleanup_json json_t *st2 = health_state_new();
  CHECK(!health_record(st2, &p, t0, t0 + 11 * S, t0 + 11 * S, 1, ""));
  CHECK(health_record(st2, &p, t0, t0 + 12 * S, t0 + 12 * S, 2, ""));
  CHECK(health_state_status(st2) == HEALTH_UNHEALTHY);
}

TEST(health_output_capped_as_dockerd) {
  struct health_output o = {0};
  health_output_add(&o, "hello ", 6);
  health_output_add(&o, "world", 5);
  CHECK_STR_EQ(health_output_str(&o), "hello world");
  struct health_output big = {0};
  char chunk[1000];
  memset(chunk, 'a', sizeof chunk);
  for (int i = 0; i < 5; i++)
    health_output_add(&big, chunk, sizeof chunk);
  const char *s = health_output_str(&big);
  CHECK_INT_EQ(strlen(s), HEALTH_MAX_OUTPUT + 3);
  CHECK(strcmp(s + HEALTH_MAX_OUTPUT, "...") == 0);
}

/* ---- the monitor on a loop: probes are plain processes here ---- */

#include "exec/exec.h"
#include "exec/internal.h"

#include <stdlib.h>
#include <unistd.h>
#include <sys/stat.h>

struct mon {
  int changes;
  enum health_status last;
  uv_loop_t *loop;
};

static void on_change(struct health *h, enum health_status st, void *ud) {
  struct mon *m = ud;
  m->changes++;
  m->last = st;
  uv_stop(m->loop);
}

static void give_up(uv_timer_t *t) {
  uv_stop(t->loop);
}

/* Runs a monitor with probe argv until its first status change (or 5 s);
 * returns its stored State.Health. */
static json_t *monitor_once(const char *const *cmd, const json_t *hc,
                            struct mon *m) {
  char root[] = "/tmp/shoal-health-XXXXXX";
  if (!mkdtemp(root))
    return NULL;
  char data[128], run[128], dir[320];
  snprintf(data, sizeof data, "%s/data", root);
  snprintf(run, sizeof run, "%s/run", root);
  executor *ex = NULL;
  sh_err err = {0};
  if (exec_open(data, run, &ex, &err) < 0) {
    fprintf(stderr, "    exec_open: %s\n", err.msg);
    exec_rm_rf(root, NULL);
    return NULL;
  }
  const char *cid =
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
  snprintf(dir, sizeof dir, "%s/containers/%s", data, cid);
  mkdir(dir, 0700);
  size_t n = 0;
  while (cmd[n])
    n++;
  char **argv = xcalloc(n + 1, sizeof *argv);
  for (size_t i = 0; i < n; i++)
    argv[i] = xstrdup(cmd[i]);
  uv_loop_t loop;
  uv_loop_init(&loop);
  m->loop = &loop;
  struct health_start hs = {.loop = &loop,
                            .exec = ex,
                            .cid = cid,
                            .argv = argv,
                            .hc = hc,
                            .started_ns = clock_wall_ns(),
                            .on_change = on_change,
                            .ud = m};
  struct health *h = health_start(&hs);
  uv_timer_t t;
  uv_timer_init(&loop, &t);
  uv_timer_start(&t, give_up, 5000, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  health_stop(h);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  char hp[400];
  snprintf(hp, sizeof hp, "%s/health.json", dir);
  json_t *state = json_load_file(hp, 0, NULL);
  if (!state)
    fprintf(stderr, "    no %s\n", hp);
  exec_close(ex);
  exec_rm_rf(root, NULL);
  return state;
}

TEST(health_monitor_probes_and_times_out) {
  if (access("/usr/bin/crun", X_OK) < 0 && access("/usr/sbin/crun", X_OK) < 0)
    SKIP("crun is not installed (the executor wants it)");
  if (geteuid() != 0)
    SKIP("the executor needs root");
  /* Single-threaded here: the executor's mount namespace works. */
  CHECK(exec_prepare_host_mounts(NULL) >= 0);
  cleanup_json json_t *fast =
      json_pack("{s:I,s:I,s:I,s:i}", "Interval", (json_int_t)(20 * NS_PER_MS),
                "StartInterval", (json_int_t)(20 * NS_PER_MS), "Timeout",
                (json_int_t)(150 * NS_PER_MS), "Retries", 2);
  /* Healthy on the first success, with its output. */
  struct mon m = {0};
  const char *ok[] = {"/bin/sh", "-c", "echo fine; echo err >&2", NULL};
  cleanup_json json_t *s1 = monitor_once(ok, fast, &m);
  CHECK(s1);
  CHECK_INT_EQ(m.changes, 1);
  CHECK(m.last == HEALTH_HEALTHY);
  CHECK_STR_EQ(jx_str(s1, "Status", ""), "healthy");
  json_t *e = json_array_get(json_object_get(s1, "Log"), 0);
  CHECK_INT_EQ(jx_int(e, "ExitCode", -5), 0);
  CHECK_STR_EQ(jx_str(e, "Output", ""), "fine\nerr\n");
  /* A probe that outlives its timeout: killed, counted as -1 with
   * dockerd's message; two make it unhealthy. */
  struct mon m2 = {0};
  const char *slow[] = {"/bin/sh", "-c", "echo started; exec sleep 5", NULL};
  int64_t t0 = clock_mono_ns();
  cleanup_json json_t *s2 = monitor_once(slow, fast, &m2);
  CHECK(s2);
  CHECK(clock_mono_ns() - t0 < 3 * NS_PER_SEC);
  CHECK(m2.last == HEALTH_UNHEALTHY);
  CHECK_INT_EQ(jx_int(s2, "FailingStreak", 0), 2);
  e = json_array_get(json_object_get(s2, "Log"), 1);
  CHECK_INT_EQ(jx_int(e, "ExitCode", 0), -1);
  CHECK_STR_EQ(jx_str(e, "Output", ""),
               "Health check exceeded timeout (150ms): started\n");
}
