/* The control plane's cost per change, in memory (no cluster, no raft, no
 * network): a store of 1,000 nodes and 100 services x 1,000 replicas
 * (100,000 running tasks) built from a snapshot, then the work one task
 * status change costs the leader, each figure next to the full scan the
 * same step was before the store had indexes (store_list of every task,
 * orchestrator_run over every service, the dispatcher's scan of all tasks
 * for the node and its whole list). Medians over repeated runs, in CPU
 * time of the measuring thread (the machine is shared: wall time would
 * count other processes' turns). Last, a tenth of the nodes go down and
 * their tasks are replaced and placed: the CPU each step costs per task.
 *   build/rel/bench-control [NODES [SERVICES [REPLICAS]]] */
#include "core/clock.h"
#include "core/err.h"
#include "core/jcbor.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "lazy/heap.h"
#include "manager/allocator.h"
#include "manager/dispatcher.h"
#include "manager/orchestrator.h"
#include "manager/orchtask.h"
#include "manager/scheduler.h"
#include "manager/secrets.h"
#include "manager/services.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define T0 (INT64_C(1767225600) * NS_PER_SEC)
#define MAX_RUNS 64

static volatile size_t sink; /* keeps the compiler from dropping a scan */

/* CPU time of this thread, ns. */
static int64_t cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static double median_us(int64_t *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_i64);
  return (double)v[n / 2] / 1e3;
}

static long rss_kib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kib = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
      break;
  if (f)
    fclose(f);
  return kib;
}

static void row(const char *what, double before_us, double after_us) {
  if (before_us < 0)
    printf("  %-58s %12s %12.1f us\n", what, "", after_us);
  else if (after_us < 0.5)
    printf("  %-58s %12.1f %12.1f us  (no work)\n", what, before_us, after_us);
  else
    printf("  %-58s %12.1f %12.1f us  (x%.0f)\n", what, before_us, after_us,
           before_us / after_us);
}

struct restored {
  double ms, mib;
};

/* A restore of data in a child process: its CPU time and the RSS it
 * adds (a process of its own, so the figure is not this one's heap). */
static struct restored restore_apart(const char *data) {
  int fds[2];
  struct restored r = {-1, -1};
  if (pipe(fds) < 0)
    return r;
  pid_t pid = fork();
  if (pid == 0) {
    long rss0 = rss_kib();
    struct store *st = store_new();
    sh_err err = {0};
    int64_t t0 = cpu_ns();
    if (store_restore(st, data, strlen(data), &err) == 0) {
      r.ms = (double)(cpu_ns() - t0) / 1e6;
      r.mib = (double)(rss_kib() - rss0) / 1024;
    }
    ssize_t n = write(fds[1], &r, sizeof r);
    _exit(n == (ssize_t)sizeof r ? 0 : 1);
  }
  close(fds[1]);
  if (pid < 0 || read(fds[0], &r, sizeof r) != (ssize_t)sizeof r)
    r = (struct restored){-1, -1};
  close(fds[0]);
  if (pid > 0)
    waitpid(pid, NULL, 0);
  return r;
}

/* Builds the cluster as a snapshot and restores it (one pass, as a
 * restarted manager loads it). */
static struct store *build(int nodes, int services, int replicas) {
  struct store *tmp = store_new();
  json_t *objs = json_object();
  json_t *arr_nodes = json_array(), *arr_svcs = json_array(),
         *arr_tasks = json_array();
  char ts[64];
  clock_format_rfc3339(T0, ts, sizeof ts);
  json_object_set_new(objs, "cluster",
                      json_pack("[{s:s, s:{s:s}, s:s, s:s, s:{s:I}}]", "ID",
                                "cluster1", "Spec", "Name", "default",
                                "CreatedAt", ts, "UpdatedAt", ts, "Version",
                                "Index", (json_int_t)1));
  for (int i = 0; i < nodes; i++) {
    char id[32], host[32];
    snprintf(id, sizeof id, "node%021d", i);
    snprintf(host, sizeof host, "sim-%04d", i);
    json_array_append_new(
        arr_nodes,
        json_pack("{s:s, s:{s:s, s:s, s:{}}, s:{s:s, s:{s:s, s:s}, s:{s:I, "
                  "s:I}}, s:{s:s}, s:s, s:s, s:{s:I}}",
                  "ID", id, "Spec", "Role", "worker", "Availability", "active",
                  "Labels", "Description", "Hostname", host, "Platform",
                  "Architecture", "x86_64", "OS", "linux", "Resources",
                  "NanoCPUs", (json_int_t)(64 * NS_PER_SEC), "MemoryBytes",
                  (json_int_t)(INT64_C(256) << 30), "Status", "State", "ready",
                  "CreatedAt", ts, "UpdatedAt", ts, "Version", "Index",
                  (json_int_t)2));
  }
  int64_t idx = 3;
  for (int s = 0; s < services; s++) {
    char id[32], spec[256];
    snprintf(id, sizeof id, "svc%022d", s);
    snprintf(spec, sizeof spec,
             "{\"Name\":\"web%03d\",\"TaskTemplate\":{\"ContainerSpec\":{"
             "\"Image\":\"busybox\"},\"RestartPolicy\":{\"Delay\":0}},"
             "\"Mode\":{\"Replicated\":{\"Replicas\":%d}}}",
             s, replicas);
    json_t *sp = json_loads(spec, 0, NULL);
    sh_err err = {0};
    json_t *svc = services_create(tmp, sp, id, T0, &err);
    json_decref(sp);
    if (!svc) {
      fprintf(stderr, "bench: service: %s\n", err.msg);
      exit(1);
    }
    json_object_set_new(svc, "CreatedAt", json_string(ts));
    json_object_set_new(svc, "UpdatedAt", json_string(ts));
    json_object_set_new(svc, "Version", json_pack("{s:I}", "Index", idx++));
    for (int r = 1; r <= replicas; r++) {
      char node[32];
      snprintf(node, sizeof node, "node%021d", (s * replicas + r - 1) % nodes);
      json_t *t = task_new(NULL, svc, r, NULL, T0);
      json_object_set_new(t, "NodeID", json_string(node));
      jx_set(t, "Status.State", json_string("running"));
      json_object_set_new(t, "CreatedAt", json_string(ts));
      json_object_set_new(t, "UpdatedAt", json_string(ts));
      json_object_set_new(t, "Version", json_pack("{s:I}", "Index", idx));
      json_array_append_new(arr_tasks, t);
    }
    json_array_append_new(arr_svcs, svc);
  }
  json_object_set_new(objs, "node", arr_nodes);
  json_object_set_new(objs, "service", arr_svcs);
  json_object_set_new(objs, "task", arr_tasks);
  json_t *doc = json_pack("{s:I, s:o, s:b}", "index", (json_int_t)idx,
                          "objects", objs, "templates", 0);
  /* The snapshot as a manager writes it: each task carrying its service's
   * template, then naming it (the tasks share the service's objects, as
   * task_new makes them). */
  int64_t t0 = cpu_ns();
  char *whole = store_snapshot_encode(doc, NULL);
  int64_t enc_whole = cpu_ns() - t0;
  json_object_set_new(doc, "templates", json_true());
  t0 = cpu_ns();
  char *data = store_snapshot_encode(doc, NULL);
  int64_t enc_named = cpu_ns() - t0;
  json_decref(doc);
  store_free(tmp);
  struct restored rw = restore_apart(whole), rn = restore_apart(data);
  printf("  %-58s %12s %12s\n", "the raft snapshot of the store", "whole",
         "named");
  printf("  %-58s %12.1f %12.1f MiB\n", "  its size",
         (double)strlen(whole) / (1 << 20), (double)strlen(data) / (1 << 20));
  printf("  %-58s %12.1f %12.1f ms\n", "  encoded (a worker thread)",
         (double)enc_whole / 1e6, (double)enc_named / 1e6);
  printf("  %-58s %12.1f %12.1f ms\n", "  restored (objects + indexes)", rw.ms,
         rn.ms);
  printf("  %-58s %12.1f %12.1f MiB\n", "  memory the restored store takes",
         rw.mib, rn.mib);
  free(whole);
  struct store *st = store_new();
  store_set_status_rule(st, task_status_rule);
  sh_err err = {0};
  if (store_restore(st, data, strlen(data), &err) < 0) {
    fprintf(stderr, "bench: restore: %s\n", err.msg);
    exit(1);
  }
  free(data);
  return st;
}

/* The work the dispatcher did per change before: every task scanned for
 * the node's, each sent again. */
static json_t *old_assignments(struct store *st, const char *node) {
  json_t *tasks = store_list(st, STORE_TASK);
  json_t *mine = json_array();
  size_t i;
  json_t *t;
  json_array_foreach(tasks, i, t) {
    if (strcmp(jx_str(t, "NodeID", ""), node) == 0 &&
        task_state(t) >= TS_ASSIGNED)
      json_array_append_new(mine, store_public(t));
  }
  json_decref(tasks);
  json_t *files = secrets_for_tasks(st, mine);
  json_t *msg =
      json_pack("{s:s, s:o, s:O, s:O}", "Type", "assignments", "Tasks", mine,
                "Secrets", json_object_get(files, "Secrets"), "Configs",
                json_object_get(files, "Configs"));
  json_decref(files);
  return msg;
}

/* ServiceStatus's running count as it was: every task of the service. */
struct old_count {
  struct store *st;
  size_t running;
};

static void old_count_task(json_t *t, void *ud) {
  struct old_count *c = ud;
  const json_t *nd = store_get(c->st, STORE_NODE, jx_str(t, "NodeID", ""));
  c->running += task_desired(t) <= TS_RUNNING && task_state(t) == TS_RUNNING &&
                nd && strcmp(jx_str(nd, "Status.State", ""), "down") != 0;
}

static size_t msg_bytes(const json_t *msg) {
  char *s = msg ? jx_dump(msg) : NULL;
  size_t n = s ? strlen(s) : 0;
  free(s);
  return n;
}

/* What a manager's reconciler keeps from the store's changes. */
struct follow {
  struct store *s;
  struct sched_load *load;
  json_t *touched, *rest;
  bool full;
};

static void on_change(const struct store_change *ch, size_t n, uint64_t index,
                      void *ud) {
  struct follow *f = ud;
  sched_load_follow(f->load, f->s, ch, n);
  orchestrator_touched(f->s, ch, n, f->touched, &f->full, f->rest);
}

static size_t committed_bytes; /* the entries commit_all encoded */

/* How an entry is written: each new task carrying its template, naming
 * it (store_tx_name_templates) in JSON text, or naming it in CBOR, the
 * form raft replicates once every manager reads it (store_entry_encode). */
enum entry_form { FORM_TEMPLATE, FORM_NAMED_JSON, FORM_NAMED_CBOR, NFORMS };

/* tx's entry as raft replicates it once every manager reads CBOR. */
static char *raft_bytes(const struct store_tx *tx, int64_t now, size_t *len) {
  json_t *doc = store_tx_doc(tx, now);
  char *data = jcbor_encode(doc, len);
  json_decref(doc);
  return data;
}

/* One transaction encoded in form and applied from the bytes; the CPU of
 * each step and the bytes are added up. Exits on refusal. */
static void encode_apply(struct store *st, struct store_tx *tx, int64_t now,
                         enum entry_form form, int64_t *encode_ns,
                         int64_t *apply_ns, size_t *bytes) {
  size_t len;
  int64_t t0 = cpu_ns();
  if (form != FORM_TEMPLATE)
    store_tx_name_templates(st, tx);
  char *data;
  if (form == FORM_NAMED_CBOR) {
    data = raft_bytes(tx, now, &len);
  } else {
    data = store_tx_encode(tx, now, &len);
  }
  int64_t t1 = cpu_ns();
  sh_err err = {0};
  if (store_apply(st, data, len, store_index(st) + 1, &err) < 0) {
    fprintf(stderr, "bench: apply: %s\n", err.msg);
    exit(1);
  }
  *apply_ns += cpu_ns() - t1;
  *encode_ns += t1 - t0;
  *bytes += len;
  free(data);
}

/* The CPU a pass's entries cost: encoded (the leader) and applied from
 * the bytes (a follower's path, watchers included). */
static int64_t commit_all(struct store *st, struct orch_out *o, int64_t now,
                          int64_t *encode_ns) {
  int64_t apply = 0;
  for (size_t i = 0; i < o->ntx; i++)
    encode_apply(st, o->txs[i], now, FORM_NAMED_CBOR, encode_ns, &apply,
                 &committed_bytes);
  return apply;
}

/* Applies the bytes of tx (freed) at the next index; exits on refusal. */
static void apply_or_exit(struct store *st, struct store_tx *tx) {
  int64_t unused_ns = 0;
  size_t unused_bytes = 0;
  encode_apply(st, tx, T0 + 20 * NS_PER_SEC, FORM_TEMPLATE, &unused_ns,
               &unused_ns, &unused_bytes);
  store_tx_free(tx);
}

/* A new service's tasks as the orchestrator's pass makes and places
 * them, in its entries, each carrying its template (before), naming its
 * service's (store_tx_name_templates) in JSON, or in CBOR, in turns: the
 * bytes, the encoding and the apply from the bytes (a follower's path, no
 * watchers), per task. Each turn's tasks are removed before the next. */
static void new_tasks(struct store *st) {
  char sid0[32];
  snprintf(sid0, sizeof sid0, "svc%022d", 0);
  json_t *svc = json_deep_copy(store_get(st, STORE_SERVICE, sid0));
  const char *id = "svcnew0000000000000000000";
  json_object_set_new(svc, "ID", json_string(id));
  jx_set(svc, "Spec.Name", json_string("newtasks"));
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_SERVICE, svc, STORE_MUST_CREATE);
  apply_or_exit(st, tx);
  struct sched_load *load = sched_load_new();
  sched_load_follow(load, st, NULL, 0);
  enum { ROUNDS = 3, TURNS = ROUNDS * NFORMS };
  int64_t enc[NFORMS][ROUNDS], app[NFORMS][ROUNDS];
  size_t bytes[NFORMS] = {0}, made = 0;
  for (int turn = 0; turn < TURNS; turn++) {
    enum entry_form form = (enum entry_form)(turn % NFORMS);
    json_t *touched = json_pack("{s:b}", id, 1);
    struct orch_out o;
    orch_out_init(&o);
    orchestrator_run_services(st, T0 + 20 * NS_PER_SEC, &o, touched, NULL,
                              NULL);
    struct sched_placed placed;
    scheduler_place_new(st, T0 + 20 * NS_PER_SEC, &o, load, INT64_MAX / 2,
                        &placed);
    json_decref(touched);
    int64_t e = 0, a = 0;
    size_t b = 0;
    for (size_t i = 0; i < o.ntx; i++)
      encode_apply(st, o.txs[i], T0 + 20 * NS_PER_SEC, form, &e, &a, &b);
    orch_out_free(&o);
    json_t *l = store_list_by(st, STORE_TASKS_BY_SERVICE, id);
    made = json_array_size(l);
    enc[form][turn / NFORMS] = e;
    app[form][turn / NFORMS] = a;
    bytes[form] = b;
    tx = store_tx_new();
    size_t i;
    json_t *t;
    json_array_foreach(l, i, t)
        store_tx_delete(tx, STORE_TASK, jx_str(t, "ID", ""), STORE_ANY_VERSION);
    json_decref(l);
    apply_or_exit(st, tx);
  }
  sched_load_free(load);
  tx = store_tx_new();
  store_tx_delete(tx, STORE_SERVICE, id, STORE_ANY_VERSION);
  apply_or_exit(st, tx);
  double per = made ? (double)made : 1;
  printf("  a new service's %zu tasks in their entries: %-3s %9s %9s %9s\n",
         made, "", "template", "named", "CBOR");
  printf("  %-58s %9.0f %9.0f %9.0f bytes a task\n", "  their bytes",
         (double)bytes[0] / per, (double)bytes[1] / per,
         (double)bytes[2] / per);
  printf("  %-58s %9.1f %9.1f %9.1f us a task\n", "  encoded (the leader)",
         median_us(enc[0], ROUNDS) / per, median_us(enc[1], ROUNDS) / per,
         median_us(enc[2], ROUNDS) / per);
  printf("  %-58s %9.1f %9.1f %9.1f us a task\n",
         "  applied from the bytes (a follower)",
         median_us(app[0], ROUNDS) / per, median_us(app[1], ROUNDS) / per,
         median_us(app[2], ROUNDS) / per);
}

struct state_count {
  const char *state;
  size_t n;
};

static void count_state(json_t *t, void *ud) {
  struct state_count *c = ud;
  c->n += strcmp(jx_str(t, "Status.State", ""), c->state) == 0;
}

/* Tasks in a state, counted through the DesiredState index (the state
 * index keeps only tasks not yet on a node). */
static size_t tasks_in(struct store *st, const char *state) {
  struct state_count c = {state, 0};
  store_each_by(st, STORE_TASKS_BY_DESIRED, "running", count_state, &c);
  store_each_by(st, STORE_TASKS_BY_DESIRED, "shutdown", count_state, &c);
  return c.n;
}

/* A tenth of the nodes go down: the reconciler's passes replace their
 * tasks and place the new ones, as on the leader (every pass's entries
 * applied before the next), until nothing is left to do. CPU per
 * replaced task for each step, one run (it changes the store). Applying
 * from the bytes is a follower's path; the leader applies from the
 * document it encoded, a little cheaper. */
static void nodes_down(struct store *st, int nodes) {
  struct follow f = {.s = st,
                     .load = sched_load_new(),
                     .touched = json_object(),
                     .rest = json_object()};
  int wid = store_watch(st, on_change, &f);
  int64_t now = T0 + 10 * NS_PER_SEC;
  int64_t orch = 0, place = 0, sched = 0, encode = 0, apply = 0, settle = 0;
  /* A new leader's first passes: every service looked at once (its
   * verdicts at rest kept), and the loads made (as every manager's
   * reconciler has them from its store's restore). */
  sched_load_follow(f.load, st, NULL, 0);
  orchestrator_touch_all(st, f.touched);
  while (json_object_size(f.touched)) {
    struct orch_out o;
    orch_out_init(&o);
    orchestrator_run_services(st, now, &o, f.touched, NULL, f.rest);
    orch_out_free(&o);
  }
  struct orch_out o;
  orch_out_init(&o);
  scheduler_run_load(st, now, &o, f.load);
  orch_out_free(&o);

  int k = nodes / 10 > 0 ? nodes / 10 : 1;
  struct store_tx *tx = store_tx_new();
  for (int i = 0; i < k; i++) {
    char id[32];
    snprintf(id, sizeof id, "node%021d", i);
    json_t *cur = store_get(st, STORE_NODE, id);
    json_t *next = json_deep_copy(cur);
    jx_set(next, "Status.State", json_string("down"));
    store_tx_update(tx, STORE_NODE, next, cur, jx_int(cur, "Version.Index", 0));
  }
  orch_out_init(&o);
  orch_out_add(&o, tx);
  int64_t unused = 0;
  commit_all(st, &o, now, &unused);
  orch_out_free(&o);
  size_t down_tasks = 0;
  for (int i = 0; i < k; i++) {
    char id[32];
    snprintf(id, sizeof id, "node%021d", i);
    down_tasks += store_count_by(st, STORE_TASKS_BY_NODE, id);
  }
  size_t assigned0 = tasks_in(st, "assigned");
  committed_bytes = 0;
  int passes = 0, settling = 0;
  for (int guard = 0; guard < 1000; guard++) {
    bool nodes_left = false;
    const char *key;
    json_t *v;
    json_object_foreach(f.touched, key, v) nodes_left |=
        strncmp(key, ORCH_NODE_KEY, strlen(ORCH_NODE_KEY)) == 0;
    orch_out_init(&o);
    int64_t t0 = cpu_ns();
    orchestrator_run_services(st, now, &o, f.touched, NULL, f.rest);
    int64_t t1 = cpu_ns();
    struct sched_placed placed;
    scheduler_place_new(st, now, &o, f.load, INT64_MAX / 2, &placed);
    int64_t t2 = cpu_ns();
    size_t ntx = o.ntx;
    if (nodes_left) {
      orch += t1 - t0;
      place += t2 - t1;
      passes++;
    } else {
      settle += t2 - t0; /* the services' checks after the node passes */
      settling++;
    }
    apply += commit_all(st, &o, now, &encode);
    orch_out_free(&o);
    orch_out_init(&o);
    o.budget = PLACE_BATCH;
    t0 = cpu_ns();
    scheduler_run_load(st, now, &o, f.load);
    sched += cpu_ns() - t0;
    ntx += o.ntx;
    apply += commit_all(st, &o, now, &encode);
    orch_out_free(&o);
    if (ntx == 0 && json_object_size(f.touched) == 0)
      break;
  }
  size_t placed = tasks_in(st, "assigned") - assigned0;
  /* Per task replaced (the rows before also left one failed task for
   * these passes to replace: placed is one more). */
  double per = down_tasks ? 1e3 * (double)down_tasks : 1;
  printf("  %d nodes down: their %zu tasks replaced, %zu placed elsewhere, "
         "in %d passes; the leader's CPU in all %.1f ms\n",
         k, down_tasks, placed, passes,
         (double)(orch + place + sched + encode + apply + settle) / 1e6);
  printf("  %-58s %12.1f us a task\n", "  orchestrator's node passes",
         (double)orch / per);
  printf("  %-58s %12.1f us a task\n", "  placing in the same passes",
         (double)place / per);
  printf("  %-58s %12.1f us a task\n", "  scheduler's passes (the rest)",
         (double)sched / per);
  printf("  %-58s %12.1f us a task\n", "  entries encoded",
         (double)encode / per);
  printf("  %-58s %12.1f us a task\n", "  entries applied (a follower's path)",
         (double)apply / per);
  printf("  %-58s %12.0f bytes a task\n", "  the entries' size",
         (double)committed_bytes * 1e3 / per);
  printf("  %-58s %12.1f ms in %d passes\n",
         "  the services' checks after them", (double)settle / 1e6, settling);
  store_unwatch(st, wid);
  sched_load_free(f.load);
  json_decref(f.touched);
  json_decref(f.rest);
}

int main(int argc, char **argv) {
  int nodes = argc > 1 ? atoi(argv[1]) : 1000;
  int services = argc > 2 ? atoi(argv[2]) : 100;
  int replicas = argc > 3 ? atoi(argv[3]) : 1000;
  int runs = 15, slow = 5; /* slow: the full scans */
  if (nodes < 1 || services < 1 || replicas < 1) {
    fprintf(stderr, "usage: bench-control [NODES [SERVICES [REPLICAS]]]\n");
    return 2;
  }
  /* JSON on the heap a manager's loop takes at this size (shoald). */
  heap_json_init();
  heap_json_follow((size_t)nodes + (size_t)services * (size_t)replicas);
  printf("control plane, in memory: %d nodes, %d services x %d replicas "
         "(%d tasks)\n",
         nodes, services, replicas, services * replicas);
  struct store *st = build(nodes, services, replicas);
  printf("  %-58s %25.1f MiB\n", "RSS with the store",
         (double)rss_kib() / 1024);
  printf("  %-58s %12s %12s\n", "", "full scan", "indexed");

  /* One task of service 42 (or the last) fails on its node. */
  char sid[32];
  snprintf(sid, sizeof sid, "svc%022d", services > 42 ? 42 : services - 1);
  json_t *tasks = store_list_by(st, STORE_TASKS_BY_SERVICE, sid);
  json_t *victim = json_incref(json_array_get(tasks, 0));
  json_decref(tasks);
  const char *tid = jx_str(victim, "ID", "");
  char node[32];
  snprintf(node, sizeof node, "%s", jx_str(victim, "NodeID", ""));

  /* The dispatcher's state for that node, as after its session started. */
  json_t *sent = NULL, *files = NULL;
  json_t *first = dispatcher_assignments(st, node, NULL, &sent, &files);
  size_t full_bytes = msg_bytes(first);
  json_decref(first);

  int64_t v[MAX_RUNS];
  /* store_apply of a status report on other tasks (service 0's), each its
   * own transaction as the dispatcher proposes them. */
  char sid0[32];
  snprintf(sid0, sizeof sid0, "svc%022d", 0);
  json_t *others = store_list_by(st, STORE_TASKS_BY_SERVICE, sid0);
  for (int i = 0; i < runs && i < (int)json_array_size(others); i++) {
    json_t *t = json_array_get(others, (size_t)i);
    json_t *nt = json_deep_copy(t);
    jx_set(nt, "Status.Message", json_string("started"));
    struct store_tx *otx = store_tx_new();
    store_tx_put(otx, STORE_TASK, nt, jx_int(t, "Version.Index", 0));
    size_t olen;
    char *od = raft_bytes(otx, T0 + NS_PER_SEC, &olen);
    store_tx_free(otx);
    sh_err oerr = {0};
    int64_t a0 = cpu_ns();
    if (store_apply(st, od, olen, store_index(st) + 1, &oerr) < 0) {
      fprintf(stderr, "bench: apply: %s\n", oerr.msg);
      return 1;
    }
    v[i] = cpu_ns() - a0;
    free(od);
  }
  json_decref(others);
  double apply_us = median_us(v, runs < replicas ? runs : replicas);
  row("store_apply of one task status change (indexes kept)", -1, apply_us);

  /* The dispatcher's way now: the reports of many nodes in one entry of
   * task_status ops (service 1's tasks, one report each), against a
   * whole-task put per report in an entry of its own (before). */
  {
    char sid1[32];
    snprintf(sid1, sizeof sid1, "svc%022d", services > 1 ? 1 : 0);
    json_t *batch = store_list_by(st, STORE_TASKS_BY_SERVICE, sid1);
    size_t nb = json_array_size(batch);
    struct store_tx *btx = store_tx_new();
    size_t whole_bytes = 0;
    for (size_t i = 0; i < nb; i++) {
      json_t *t = json_array_get(batch, i);
      char *one = jx_dumps(t, JSON_COMPACT, NULL);
      whole_bytes += strlen(one);
      free(one);
      store_tx_task_status(btx, jx_str(t, "ID", ""), jx_str(t, "NodeID", ""),
                           json_pack("{s:s, s:s}", "State", "running",
                                     "Message", "started again"));
    }
    int64_t b0 = cpu_ns();
    size_t blen;
    char *bd = raft_bytes(btx, T0 + 2 * NS_PER_SEC, &blen);
    store_tx_free(btx);
    sh_err berr = {0};
    if (nb && store_apply(st, bd, blen, store_index(st) + 1, &berr) < 0) {
      fprintf(stderr, "bench: apply of reports: %s\n", berr.msg);
      return 1;
    }
    int64_t b1 = cpu_ns() - b0;
    free(bd);
    json_decref(batch);
    if (nb) {
      printf("  %-62s %9s %9.1f us  (%zu reports in one entry)\n",
             "store_apply of a status report in a batch, per report", "",
             (double)b1 / 1e3 / (double)nb, nb);
      printf("  %-62s %9zu %9zu bytes\n",
             "  its bytes in the raft entry (a whole task's JSON before)",
             whole_bytes / nb, blen / nb);
    }
  }

  json_t *next = json_deep_copy(victim);
  jx_set(next, "Status.State", json_string("failed"));
  jx_set(next, "Status.Err", json_string("task: non-zero exit (1)"));
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_TASK, next, jx_int(victim, "Version.Index", 0));
  size_t len;
  char *data = raft_bytes(tx, T0 + NS_PER_SEC, &len);
  store_tx_free(tx);
  sh_err err = {0};
  if (store_apply(st, data, len, store_index(st) + 1, &err) < 0) {
    fprintf(stderr, "bench: apply: %s\n", err.msg);
    return 1;
  }
  free(data);
  int64_t t0;
  json_t *now_obj = store_get(st, STORE_TASK, tid);
  struct store_change ch = {STORE_TASK, tid, victim, now_obj};
  int64_t now = T0 + 2 * NS_PER_SEC;

  /* Orchestrator: every service (before) or the touched one. */
  double before, after;
  for (int i = 0; i < slow; i++) {
    struct orch_out o;
    orch_out_init(&o);
    t0 = cpu_ns();
    orchestrator_run(st, now, &o);
    v[i] = cpu_ns() - t0;
    orch_out_free(&o);
  }
  before = median_us(v, slow);
  for (int i = 0; i < runs; i++) {
    struct orch_out o;
    orch_out_init(&o);
    json_t *touched = json_object();
    bool full = false;
    t0 = cpu_ns();
    orchestrator_touched(st, &ch, 1, touched, &full, NULL);
    orchestrator_run_services(st, now, &o, touched, NULL, NULL);
    v[i] = cpu_ns() - t0;
    json_decref(touched);
    orch_out_free(&o);
  }
  after = median_us(v, runs);
  row("orchestrator pass after one task change", before, after);
  double total_before = apply_us + before, total_after = apply_us + after;

  /* Scheduler: before, its pass began with every task listed and scanned;
   * now no pending task is a count from the index. */
  for (int i = 0; i < slow; i++) {
    t0 = cpu_ns();
    json_t *all = store_list(st, STORE_TASK);
    size_t n = 0, k;
    json_t *t;
    json_array_foreach(all, k, t) n += task_state(t) == TS_PENDING;
    json_decref(all);
    v[i] = cpu_ns() - t0;
    sink += n;
  }
  before = median_us(v, slow);
  for (int i = 0; i < runs; i++) {
    struct orch_out o;
    orch_out_init(&o);
    t0 = cpu_ns();
    scheduler_run(st, now, &o);
    v[i] = cpu_ns() - t0;
    orch_out_free(&o);
  }
  after = median_us(v, runs);
  row("scheduler pass, nothing pending (before: its task scan)", before, after);
  total_before += before;
  total_after += after;

  /* Allocator: it ran after every change; now only after changes it looks
   * at (new tasks, services, networks, nodes), so a status change costs
   * it nothing. */
  for (int i = 0; i < slow; i++) {
    struct orch_out o;
    orch_out_init(&o);
    size_t ex = 0;
    t0 = cpu_ns();
    allocator_run(st, &o, true, &ex);
    v[i] = cpu_ns() - t0;
    orch_out_free(&o);
  }
  before = median_us(v, slow);
  row("allocator pass (skipped now after a status change)", before, 0);
  total_before += before;

  /* Tasks of one service (GET /tasks?filter=service=...). */
  for (int i = 0; i < slow; i++) {
    t0 = cpu_ns();
    json_t *all = store_list(st, STORE_TASK);
    json_t *out = json_array();
    size_t k;
    json_t *t;
    json_array_foreach(all, k, t) if (strcmp(jx_str(t, "ServiceID", ""), sid) ==
                                      0) json_array_append(out, t);
    json_decref(all);
    json_decref(out);
    v[i] = cpu_ns() - t0;
  }
  before = median_us(v, slow);
  for (int i = 0; i < runs; i++) {
    t0 = cpu_ns();
    json_t *out = store_list_by(st, STORE_TASKS_BY_SERVICE, sid);
    json_decref(out);
    v[i] = cpu_ns() - t0;
  }
  after = median_us(v, runs);
  row("list the tasks of one service", before, after);

  /* service ls: every service's ServiceStatus. Before, a walk of each
   * service's tasks with its node looked up; now two index counts, and the
   * tasks of down nodes walked once per store change (a fresh cache here,
   * as after any change). */
  cleanup_json json_t *svcs = store_list(st, STORE_SERVICE);
  for (int i = 0; i < slow; i++) {
    t0 = cpu_ns();
    size_t k, n = 0;
    json_t *sv;
    json_array_foreach(svcs, k, sv) {
      struct old_count oc = {st, 0};
      store_each_by(st, STORE_TASKS_BY_SERVICE, jx_str(sv, "ID", ""),
                    old_count_task, &oc);
      n += oc.running;
    }
    v[i] = cpu_ns() - t0;
    sink += n;
  }
  before = median_us(v, slow);
  for (int i = 0; i < runs; i++) {
    struct services_lost lost = {0};
    t0 = cpu_ns();
    size_t k;
    json_t *sv;
    json_array_foreach(svcs, k, sv) json_decref(services_status(st, sv, &lost));
    v[i] = cpu_ns() - t0;
    services_lost_free(&lost);
  }
  after = median_us(v, runs);
  row("service ls: every service's replica counts", before, after);

  /* Dispatcher: the changed node's message. */
  size_t old_bytes = 0, new_bytes = 0;
  for (int i = 0; i < slow; i++) {
    t0 = cpu_ns();
    json_t *msg = old_assignments(st, node);
    v[i] = cpu_ns() - t0;
    old_bytes = msg_bytes(msg);
    json_decref(msg);
  }
  before = median_us(v, slow);
  for (int i = 0; i < runs; i++) {
    json_t *s2 = json_deep_copy(sent), *f2 = json_deep_copy(files);
    t0 = cpu_ns();
    json_t *msg = dispatcher_assignments(st, node, NULL, &s2, &f2);
    v[i] = cpu_ns() - t0;
    new_bytes = msg_bytes(msg);
    json_decref(msg);
    json_decref(s2);
    json_decref(f2);
  }
  after = median_us(v, runs);
  row("dispatcher: the node's message after one change", before, after);
  total_before += before;
  total_after += after;
  row("one task status change, leader's work in all", total_before,
      total_after);
  printf("  %-58s %12zu %12zu bytes\n",
         "  its size (full list before, changes now)", old_bytes, new_bytes);
  printf("  %-58s %12zu bytes\n", "  the full list at session start",
         full_bytes);

  json_decref(sent);
  json_decref(files);
  json_decref(victim);
  new_tasks(st);
  nodes_down(st, nodes);
  store_free(st);
  return 0;
}
