#include "test.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/id.h"
#include "core/jsonx.h"
#include "core/util.h"

#include <sys/wait.h>
#include <unistd.h>

TEST(id_is_25_base36_chars) {
  char a[ID_LEN + 1], b[ID_LEN + 1];
  id_new(a);
  id_new(b);
  CHECK_INT_EQ(strlen(a), 25);
  CHECK(strcmp(a, b) != 0);
  for (int i = 0; i < 25; i++)
    CHECK((a[i] >= '0' && a[i] <= '9') || (a[i] >= 'a' && a[i] <= 'z'));
}

/* IDs come from a per-thread pool of random bits: none repeats across
 * its refills, and a forked child's next IDs are not its parent's. */
TEST(ids_from_the_pool_never_repeat_nor_follow_a_fork) {
  cleanup_json json_t *seen = json_object();
  char id[ID_LEN + 1], hex[65];
  for (int i = 0; i < 5000; i++) {
    id_new(id);
    CHECK(json_object_get(seen, id) == NULL);
    json_object_set_new(seen, id, json_true());
    if (i % 7 == 0) { /* hex IDs take 32 bytes: the pool's edges move */
      id_new_hex(hex);
      CHECK_INT_EQ(strlen(hex), 64);
      CHECK(json_object_get(seen, hex) == NULL);
      json_object_set_new(seen, hex, json_true());
    }
  }
  int fds[2];
  CHECK_INT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    char mine[2][ID_LEN + 1];
    id_new(mine[0]);
    id_new(mine[1]);
    ssize_t w = write(fds[1], mine, sizeof mine);
    _exit(w == (ssize_t)sizeof mine ? 0 : 1);
  }
  CHECK(pid > 0);
  close(fds[1]);
  char theirs[2][ID_LEN + 1];
  CHECK_INT_EQ(read(fds[0], theirs, sizeof theirs), (ssize_t)sizeof theirs);
  close(fds[0]);
  int status = 0;
  CHECK_INT_EQ(waitpid(pid, &status, 0), pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  char ours[2][ID_LEN + 1];
  id_new(ours[0]);
  id_new(ours[1]);
  for (int i = 0; i < 2; i++) {
    CHECK_INT_EQ(strlen(theirs[i]), ID_LEN);
    CHECK(json_object_get(seen, theirs[i]) == NULL);
    for (int j = 0; j < 2; j++)
      CHECK(strcmp(theirs[i], ours[j]) != 0);
  }
}

TEST(base36_known_values) {
  uint8_t v[2] = {0x01, 0x00}; /* 256 = 7*36 + 4 */
  char out[16];
  CHECK_STR_EQ(base36_encode(v, 2, 0, out, sizeof out), "74");
  CHECK_STR_EQ(base36_encode(v, 2, 5, out, sizeof out), "00074");
  uint8_t z[1] = {0};
  CHECK_STR_EQ(base36_encode(z, 1, 0, out, sizeof out), "0");
}

TEST(duration_round_trip) {
  char buf[64];
  int64_t ns;
  sh_err err = {0};
  CHECK_INT_EQ(clock_parse_duration("2160h0m0s", &ns, &err), 0);
  CHECK_INT_EQ(ns, INT64_C(2160) * 3600 * NS_PER_SEC);
  CHECK_STR_EQ(clock_format_duration(ns, buf, sizeof buf), "2160h0m0s");
  CHECK_INT_EQ(clock_parse_duration("5s", &ns, &err), 0);
  CHECK_STR_EQ(clock_format_duration(ns, buf, sizeof buf), "5s");
  CHECK_INT_EQ(clock_parse_duration("1m30s", &ns, &err), 0);
  CHECK_STR_EQ(clock_format_duration(ns, buf, sizeof buf), "1m30s");
  CHECK_INT_EQ(clock_parse_duration("1.5s", &ns, &err), 0);
  CHECK_STR_EQ(clock_format_duration(ns, buf, sizeof buf), "1.5s");
  CHECK_INT_EQ(clock_parse_duration("300ms", &ns, &err), 0);
  CHECK_STR_EQ(clock_format_duration(ns, buf, sizeof buf), "300ms");
  CHECK(clock_parse_duration("5x", &ns, &err) < 0);
  CHECK_INT_EQ(err.status, 400);
  CHECK(clock_parse_duration("", &ns, &err) < 0);
  CHECK(clock_parse_duration("10", &ns, &err) < 0);
}

TEST(rfc3339_round_trip) {
  char buf[64];
  int64_t ns = INT64_C(1700000000) * NS_PER_SEC + 123456000;
  clock_format_rfc3339(ns, buf, sizeof buf);
  CHECK_STR_EQ(buf, "2023-11-14T22:13:20.123456Z");
  int64_t back;
  sh_err err = {0};
  CHECK_INT_EQ(clock_parse_rfc3339(buf, &back, &err), 0);
  CHECK_INT_EQ(back, ns);
  CHECK(clock_parse_rfc3339("yesterday", &back, &err) < 0);
}

/* Past 2262 the nanoseconds overflow int64: a 400, not undefined
 * behaviour (an image config's "created", found by fuzz_manifest). */
TEST(rfc3339_out_of_range) {
  int64_t ns = 0;
  sh_err err = {0};
  CHECK(clock_parse_rfc3339("6100-01-01T00:00:00Z", &ns, &err) < 0);
  CHECK_INT_EQ(err.status, 400);
  CHECK(clock_parse_rfc3339("2262-04-11T23:47:16.854775807Z", &ns, &err) == 0);
  CHECK_INT_EQ(ns, INT64_MAX);
  CHECK(clock_parse_rfc3339("2262-04-11T23:47:16.854775808Z", &ns, &err) < 0);
  CHECK(clock_parse_rfc3339("1000-01-01T00:00:00Z", &ns, &err) < 0);
}

TEST(jx_paths) {
  cleanup_json json_t *j = json_object();
  jx_set(j, "Spec.Dispatcher.HeartbeatPeriod", json_integer(5000000000));
  CHECK_INT_EQ(jx_int(j, "Spec.Dispatcher.HeartbeatPeriod", 0), 5000000000);
  CHECK_INT_EQ(jx_int(j, "Spec.Missing.X", 7), 7);
  CHECK_STR_EQ(jx_str(j, "Spec", "dflt"), "dflt");
  sh_err err = {0};
  json_t *o = NULL;
  CHECK(jx_parse_object("[1]", 3, &o, &err) < 0);
  CHECK_INT_EQ(err.status, 400);
  CHECK(jx_parse_object("{\"a\":", 5, &o, &err) < 0);
  CHECK_INT_EQ(jx_parse_object("{\"a\":1}", 7, &o, &err), 0);
  json_decref(o);
}

TEST(err_wrap_keeps_status) {
  sh_err err = {0};
  sh_error(&err, 404, "node %s not found", "x");
  sh_err_wrap(&err, "update");
  CHECK_STR_EQ(err.msg, "update: node x not found");
  CHECK_INT_EQ(err.status, 404);
}

TEST(atomic_file_write) {
  char dir[] = "/tmp/shoal-test-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  cleanup_free char *p = xasprintf("%s/a/b/f", dir);
  cleanup_free char *d = xasprintf("%s/a/b", dir);
  sh_err err = {0};
  CHECK_INT_EQ(mkdir_p(d, 0700, &err), 0);
  CHECK_INT_EQ(write_file_atomic(p, "hello", 5, 0600, &err), 0);
  cleanup_free char *data = NULL;
  size_t len = 0;
  CHECK_INT_EQ(read_file(p, &data, &len, &err), 0);
  CHECK_INT_EQ(len, 5);
  CHECK_STR_EQ(data, "hello");
  cleanup_free char *missing = xasprintf("%s/nope", dir);
  char *x = NULL;
  CHECK(read_file(missing, &x, NULL, &err) < 0);
  CHECK_INT_EQ(err.status, 404);
  cleanup_free char *cmd = xasprintf("rm -rf %s", dir);
  CHECK_INT_EQ(system(cmd), 0);
}

#include "core/workq.h"

#include <pthread.h>

struct wq_case {
  int ran, done, cancelled;
  pthread_t worker;
};

static void wq_work(void *ud) {
  struct wq_case *c = ud;
  c->worker = pthread_self();
  usleep(1000);
  __atomic_add_fetch(&c->ran, 1, __ATOMIC_SEQ_CST);
}

static void wq_done(void *ud, int cancelled) {
  struct wq_case *c = ud;
  c->done++;
  c->cancelled += cancelled;
}

TEST(workq_runs_off_loop_and_completes_on_loop) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct workq *q = workq_new(&loop, 3);
  struct wq_case cases[20] = {{0}};
  for (int i = 0; i < 20; i++)
    workq_submit(q, wq_work, wq_done, &cases[i]);
  int total = 0;
  for (int spins = 0; spins < 5000 && total < 20; spins++) {
    uv_run(&loop, UV_RUN_NOWAIT);
    usleep(200);
    total = 0;
    for (int i = 0; i < 20; i++)
      total += cases[i].done;
  }
  CHECK_INT_EQ(total, 20);
  for (int i = 0; i < 20; i++) {
    CHECK_INT_EQ(cases[i].ran, 1);
    CHECK_INT_EQ(cases[i].cancelled, 0);
    CHECK(!pthread_equal(cases[i].worker, pthread_self()));
  }
  workq_close(q);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT_EQ(uv_loop_close(&loop), 0);
}

TEST(workq_close_cancels_queued_work) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct workq *q = workq_new(&loop, 1);
  struct wq_case cases[50] = {{0}};
  for (int i = 0; i < 50; i++)
    (i % 2 ? workq_submit_first : workq_submit)(q, wq_work, wq_done, &cases[i]);
  workq_close(q);
  int done = 0, ran = 0, cancelled = 0;
  for (int i = 0; i < 50; i++) {
    done += cases[i].done;
    ran += cases[i].ran;
    cancelled += cases[i].cancelled;
  }
  /* Every job completed exactly once: either ran or was cancelled. */
  CHECK_INT_EQ(done, 50);
  CHECK_INT_EQ(ran + cancelled, 50);
  CHECK(cancelled > 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT_EQ(uv_loop_close(&loop), 0);
}

/* The order jobs ran in, on a one-thread queue held by a first job. */
static int wq_seq;
static volatile int wq_hold;

struct wq_ordered {
  int ran_at;
};

static void wq_hold_work(void *ud) {
  (void)ud;
  while (__atomic_load_n(&wq_hold, __ATOMIC_SEQ_CST))
    usleep(500);
}

static void wq_ordered_work(void *ud) {
  struct wq_ordered *o = ud;
  o->ran_at = __atomic_add_fetch(&wq_seq, 1, __ATOMIC_SEQ_CST);
}

static void wq_nothing(void *ud, int cancelled) {
  (void)ud;
  (void)cancelled;
}

TEST(workq_submit_first_runs_ahead_of_queued_work) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct workq *q = workq_new(&loop, 1);
  wq_seq = 0;
  wq_hold = 1;
  workq_submit(q, wq_hold_work, wq_nothing, NULL);
  struct wq_ordered later[4] = {{0}}, first[2] = {{0}};
  for (int i = 0; i < 4; i++)
    workq_submit(q, wq_ordered_work, wq_nothing, &later[i]);
  for (int i = 0; i < 2; i++)
    workq_submit_first(q, wq_ordered_work, wq_nothing, &first[i]);
  __atomic_store_n(&wq_hold, 0, __ATOMIC_SEQ_CST);
  for (int spins = 0; spins < 5000 && later[3].ran_at == 0; spins++)
    usleep(200);
  /* The two submitted first ran next, in their order; then the rest. */
  CHECK_INT_EQ(first[0].ran_at, 1);
  CHECK_INT_EQ(first[1].ran_at, 2);
  for (int i = 0; i < 4; i++)
    CHECK_INT_EQ(later[i].ran_at, 3 + i);
  workq_close(q);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT_EQ(uv_loop_close(&loop), 0);
}

/* ---- flow (log backpressure) ---- */

#include "core/flow.h"

#include <stdatomic.h>
#include <unistd.h>

struct flow_case {
  struct flow *f;
  atomic_int acquired;
  bool last_ok;
};

static void *flow_producer(void *arg) {
  struct flow_case *fc = arg;
  for (int i = 0; i < 4; i++) {
    fc->last_ok = flow_acquire(fc->f, 100);
    if (!fc->last_ok)
      break;
    atomic_fetch_add(&fc->acquired, 1);
  }
  return NULL;
}

static int flow_wait_acquired(struct flow_case *fc, int want) {
  for (int i = 0; i < 2000 && atomic_load(&fc->acquired) < want; i++)
    usleep(1000);
  usleep(20000); /* and that it does not go further */
  return atomic_load(&fc->acquired);
}

/* A producer thread acquiring 100 bytes at a time on f. */
static pthread_t flow_start(struct flow *f, size_t high, struct flow_case *fc) {
  flow_init(f, high);
  fc->f = f;
  fc->last_ok = false;
  atomic_init(&fc->acquired, 0);
  pthread_t th;
  if (pthread_create(&th, NULL, flow_producer, fc) != 0)
    abort();
  return th;
}

TEST(flow_bounds_the_producer) {
  struct flow f;
  struct flow_case fc;
  pthread_t th = flow_start(&f, 250, &fc);
  /* 0, 100, 200 are under the bound: three go out, the fourth waits. */
  CHECK_INT_EQ(flow_wait_acquired(&fc, 3), 3);
  CHECK_INT_EQ(flow_out(&f), 300);
  flow_release(&f, 100); /* 200 out: under the bound again */
  CHECK_INT_EQ(flow_wait_acquired(&fc, 4), 4);
  pthread_join(th, NULL);
  CHECK(fc.last_ok);
  flow_release(&f, 1000); /* never below zero */
  CHECK_INT_EQ(flow_out(&f), 0);
  flow_destroy(&f);
}

TEST(flow_close_wakes_the_producer) {
  struct flow f;
  struct flow_case fc;
  pthread_t th = flow_start(&f, 100, &fc);
  CHECK_INT_EQ(flow_wait_acquired(&fc, 1), 1);
  flow_close(&f);
  pthread_join(th, NULL);
  CHECK(!fc.last_ok);
  CHECK(!flow_acquire(&f, 1)); /* closed stays closed */
  flow_destroy(&f);
}
