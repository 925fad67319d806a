/* The cluster simulator: joins, one real agent per node, and a simulated
 * executor whose steps are due times in one heap under one loop timer. */
#include "sim/sim.h"

#include "agent/agent.h"
#include "agent/worker.h"
#include "ca/ca.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/id.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/util.h"
#include "http/client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Engine.EngineVersion of a simulated node: `docker node ls` shows it. */
#define SIM_ENGINE_VERSION "0.1.0-sim"
/* A 503 (no leader: an election) is worth waiting out. */
#define JOIN_TRIES 30
#define JOIN_RETRY_MS 1000
#define CA_TRIES 60 /* one a second: managers still starting */
/* Status updates are batched per node as the real worker batches them. */
#define FLUSH_MS 30

enum node_state { N_WAITING, N_JOINING, N_UP, N_DOWN, N_FAILED, N_STATES };
static const char *const node_state_names[N_STATES] = {"Waiting", "Joining",
                                                       "Up", "Down", "Failed"};

/* A task's simulated state: the last one reported. */
enum task_phase {
  T_NEW,       /* known, not started (desired state not yet running) */
  T_PREPARING, /* "preparing" reported, "starting" due */
  T_STARTING,  /* "starting" reported, "running" (or failed) due */
  T_RUNNING,
  T_ENDED, /* complete, failed, shutdown (reported or found so) */
  T_PHASES
};
static const char *const phase_names[T_PHASES] = {
    "New", "Preparing", "Starting", "Running", "Ended"};

struct sim_task {
  struct sim_node *n;
  size_t heap_idx; /* SIZE_MAX: no step due */
  uint64_t due_ms; /* loop time of the next step */
  uint8_t phase;
  bool assigned, job;
  char id[ID_LEN + 1];
};

struct sim_node {
  struct sim *s;
  int idx;
  enum node_state state;
  char host[32];
  char node_id[ID_LEN + 1];
  char *cert_pem, *key_pem;
  json_t *managers;
  struct http_client *client;
  struct agent *agent;
  struct sim_task **tv; /* sorted by ID */
  size_t nt, capt;
  json_t *pending; /* status updates for the next flush */
  struct sim_node *next_dirty;
  bool dirty, rejected;
  bool halt_due; /* taken down: halted by halt_timer */
  int tries;
  uint64_t not_before_ms;
};

struct sim {
  uv_loop_t *loop;
  struct sim_config cfg; /* strings owned below */
  char *token, *prefix, *data_dir;
  json_t *managers;
  char *root_pem;
  struct http_client *client; /* the CA fetch and the joins */
  struct sim_node *nodes;
  int joins_in_flight, ca_tries;
  unsigned mgr_rr;
  bool joining_stopped;
  struct sim_task **heap;
  size_t hn, hcap;
  uint64_t armed_ms; /* UINT64_MAX: step timer not armed */
  uv_timer_t step_timer, flush_timer, join_timer, halt_timer;
  struct sim_node *dirty;
  uint64_t count[T_PHASES];
  uint64_t reports, started, failed, shut, completed, joins, sessions;
  uint64_t assignments; /* assignment messages the nodes received */
  /* of the nodes' agents already stopped */
  uint64_t report_requests, report_updates;
  uint64_t t0_ms, all_joined_ms;
  char *fatal; /* why the simulation cannot go on */
  int handles_open;
  bool stopping;
  void (*stop_done)(void *);
  void *stop_ud;
};

/* ---- the heap of due steps ---- */

static void heap_set(struct sim *s, size_t i, struct sim_task *t) {
  s->heap[i] = t;
  t->heap_idx = i;
}

static void heap_up(struct sim *s, size_t i) {
  struct sim_task *t = s->heap[i];
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (s->heap[p]->due_ms <= t->due_ms)
      break;
    heap_set(s, i, s->heap[p]);
    i = p;
  }
  heap_set(s, i, t);
}

static void heap_down(struct sim *s, size_t i) {
  struct sim_task *t = s->heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= s->hn)
      break;
    if (c + 1 < s->hn && s->heap[c + 1]->due_ms < s->heap[c]->due_ms)
      c++;
    if (t->due_ms <= s->heap[c]->due_ms)
      break;
    heap_set(s, i, s->heap[c]);
    i = c;
  }
  heap_set(s, i, t);
}

static void heap_remove(struct sim *s, struct sim_task *t) {
  size_t i = t->heap_idx;
  if (i == SIZE_MAX)
    return;
  t->heap_idx = SIZE_MAX;
  struct sim_task *last = s->heap[--s->hn];
  if (i == s->hn)
    return;
  heap_set(s, i, last);
  heap_up(s, i);
  heap_down(s, last->heap_idx);
}

static void step_cb(uv_timer_t *timer);

static void arm(struct sim *s) {
  if (s->hn == 0 || s->stopping)
    return;
  uint64_t due = s->heap[0]->due_ms;
  if (s->armed_ms != UINT64_MAX && s->armed_ms <= due)
    return;
  uint64_t now = uv_now(s->loop);
  s->armed_ms = due;
  uv_timer_start(&s->step_timer, step_cb, due > now ? due - now : 0, 0);
}

/* The next step of t, one half of the start delay from now (+- half the
 * jitter). */
static void schedule(struct sim *s, struct sim_task *t) {
  double half = (double)s->cfg.start_delay_ns / 2.0 / NS_PER_MS;
  double j = (double)s->cfg.jitter_ns / 2.0 / NS_PER_MS;
  double v = half + j * (2.0 * ((double)random() / RAND_MAX) - 1.0);
  heap_remove(s, t);
  t->due_ms = uv_now(s->loop) + (v > 0 ? (uint64_t)v : 0);
  if (s->hn == s->hcap) {
    s->hcap = s->hcap ? 2 * s->hcap : 1024;
    s->heap = xrealloc(s->heap, s->hcap * sizeof *s->heap);
  }
  heap_set(s, s->hn++, t);
  heap_up(s, t->heap_idx);
  arm(s);
}

/* ---- status reports ---- */

static void flush_cb(uv_timer_t *timer) {
  struct sim *s = timer->data;
  while (s->dirty) {
    struct sim_node *n = s->dirty;
    s->dirty = n->next_dirty;
    n->dirty = false;
    if (n->agent && n->pending)
      agent_report(n->agent, n->pending);
    json_decref(n->pending);
    n->pending = NULL;
  }
}

static void report(struct sim_task *t, const char *state, const char *message,
                   const char *errmsg) {
  struct sim_node *n = t->n;
  struct sim *s = n->s;
  char ts[64];
  clock_format_rfc3339(clock_wall_ns(), ts, sizeof ts);
  json_t *st = json_pack("{s:s, s:s, s:s}", "Timestamp", ts, "State", state,
                         "Message", message);
  if (errmsg)
    json_object_set_new(st, "Err", json_string(errmsg));
  if (!n->pending)
    n->pending = json_array();
  json_array_append_new(n->pending,
                        json_pack("{s:s, s:o}", "ID", t->id, "Status", st));
  s->reports++;
  if (!n->dirty) {
    n->dirty = true;
    n->next_dirty = s->dirty;
    s->dirty = n;
  }
  if (!uv_is_active((uv_handle_t *)&s->flush_timer))
    uv_timer_start(&s->flush_timer, flush_cb, FLUSH_MS, 0);
}

static void set_phase(struct sim_task *t, enum task_phase p) {
  struct sim *s = t->n->s;
  s->count[t->phase]--;
  s->count[p]++;
  t->phase = (uint8_t)p;
}

/* A step came due: preparing -> starting -> running (a job's task:
 * complete), or failed at the start for --fail-rate of them. */
static void step(struct sim *s, struct sim_task *t) {
  if (t->phase == T_PREPARING) {
    set_phase(t, T_STARTING);
    report(t, "starting", "starting", NULL);
    schedule(s, t);
    return;
  }
  if (t->phase != T_STARTING)
    return;
  set_phase(t, T_RUNNING);
  if (s->cfg.fail_rate > 0 && (double)random() / RAND_MAX < s->cfg.fail_rate) {
    set_phase(t, T_ENDED);
    s->failed++;
    report(t, "failed", "starting",
           "simulated start failure (shoal-sim --fail-rate)");
  } else if (t->job) {
    set_phase(t, T_ENDED);
    s->completed++;
    report(t, "complete", "finished", NULL);
  } else {
    s->started++;
    report(t, "running", "started", NULL);
  }
}

static void step_cb(uv_timer_t *timer) {
  struct sim *s = timer->data;
  s->armed_ms = UINT64_MAX;
  uint64_t now = uv_now(s->loop);
  while (s->hn > 0 && s->heap[0]->due_ms <= now) {
    struct sim_task *t = s->heap[0];
    heap_remove(s, t);
    step(s, t);
  }
  arm(s);
}

/* ---- a node's tasks ---- */

/* Desired states on the way to running: nothing to do yet. */
static bool desired_before_run(const char *d) {
  static const char *const early[] = {"new", "pending", "assigned", "accepted",
                                      "ready"};
  for (size_t i = 0; i < ARRAY_SIZE(early); i++)
    if (strcmp(d, early[i]) == 0)
      return true;
  return false;
}

static size_t task_pos(const struct sim_node *n, const char *id, bool *found) {
  size_t lo = 0, hi = n->nt;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(n->tv[mid]->id, id);
    if (c == 0) {
      *found = true;
      return mid;
    }
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = false;
  return lo;
}

static struct sim_task *task_add(struct sim_node *n, size_t pos,
                                 const char *id) {
  if (n->nt == n->capt) {
    n->capt = n->capt ? 2 * n->capt : 16;
    n->tv = xrealloc(n->tv, n->capt * sizeof *n->tv);
  }
  memmove(n->tv + pos + 1, n->tv + pos, (n->nt - pos) * sizeof *n->tv);
  struct sim_task *t = xcalloc(1, sizeof *t);
  t->n = n;
  t->heap_idx = SIZE_MAX;
  t->phase = T_NEW;
  snprintf(t->id, sizeof t->id, "%s", id);
  n->s->count[T_NEW]++;
  n->tv[pos] = t;
  n->nt++;
  return t;
}

static void task_free(struct sim_task *t) {
  struct sim *s = t->n->s;
  heap_remove(s, t);
  s->count[t->phase]--;
  free(t);
}

static void tasks_clear(struct sim_node *n) {
  for (size_t i = 0; i < n->nt; i++)
    task_free(n->tv[i]);
  free(n->tv);
  n->tv = NULL;
  n->nt = n->capt = 0;
}

/* One task of an assignment, as the real worker's reconcile: run what is
 * meant to run, stop what is meant to stop, report each step. */
static void apply(struct sim_task *t, const json_t *task, bool added) {
  struct sim *s = t->n->s;
  const char *desired = jx_str(task, "DesiredState", "");
  const char *state = jx_str(task, "Status.State", "");
  bool run =
      strcmp(desired, "running") == 0 || strcmp(desired, "complete") == 0;
  if (added) {
    t->job = strcmp(desired, "complete") == 0;
    if (worker_state_terminal(state)) {
      set_phase(t, T_ENDED); /* in history: ended before we knew it */
      return;
    }
    if (run && strcmp(state, "running") == 0) {
      /* Running before this node (re)started: as the real worker adopts
       * its container, the simulated one runs on. */
      set_phase(t, T_RUNNING);
      return;
    }
  }
  if (t->phase == T_ENDED)
    return;
  if (run) {
    if (t->phase == T_NEW) {
      set_phase(t, T_PREPARING);
      report(t, "preparing", "preparing", NULL);
      schedule(s, t);
    }
    return;
  }
  if (desired_before_run(desired))
    return;
  /* Desired shutdown or further: stopped at once (no grace to wait). */
  heap_remove(s, t);
  set_phase(t, T_ENDED);
  s->shut++;
  report(t, "shutdown", "shutdown", NULL);
}

/* Forgets the tasks not marked assigned (their container is gone). */
static void drop_unassigned(struct sim_node *n) {
  size_t k = 0;
  for (size_t j = 0; j < n->nt; j++) {
    if (n->tv[j]->assigned)
      n->tv[k++] = n->tv[j];
    else
      task_free(n->tv[j]);
  }
  n->nt = k;
}

static void on_assignment_changes(void *ud, const json_t *set,
                                  const json_t *del, bool whole) {
  struct sim_node *n = ud;
  size_t i;
  json_t *task;
  bool found;
  n->s->assignments++;
  if (whole) {
    for (size_t j = 0; j < n->nt; j++)
      n->tv[j]->assigned = false;
  }
  json_array_foreach(del, i, task) {
    size_t pos = task_pos(n, json_string_value(task) ?: "", &found);
    if (found)
      n->tv[pos]->assigned = false;
  }
  json_array_foreach(set, i, task) {
    const char *id = jx_str(task, "ID", "");
    if (strlen(id) != ID_LEN)
      continue;
    size_t pos = task_pos(n, id, &found);
    struct sim_task *t = found ? n->tv[pos] : task_add(n, pos, id);
    t->assigned = true;
    apply(t, task, !found);
  }
  if (whole || json_array_size(del) > 0)
    drop_unassigned(n);
}

/* ---- nodes ---- */

static char *node_file(const struct sim_node *n) {
  return xasprintf("%s/%s.json", n->s->data_dir, n->host);
}

static void save_node(struct sim_node *n) {
  if (!n->s->data_dir)
    return;
  json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:O}", "NodeID", n->node_id,
                        "Certificate", n->cert_pem, "Key", n->key_pem, "RootCA",
                        n->s->root_pem, "Managers", n->managers);
  cleanup_free char *text = jx_dump(j);
  json_decref(j);
  cleanup_free char *path = node_file(n);
  sh_err err = {0};
  if (write_file_replace(path, text, strlen(text), 0600, &err) < 0)
    log_warn("%s: %s", n->host, err.msg);
}

/* The identity a previous run kept, if it is of this swarm. */
static bool load_node(struct sim_node *n) {
  struct sim *s = n->s;
  if (!s->data_dir)
    return false;
  cleanup_free char *path = node_file(n);
  cleanup_free char *text = NULL;
  size_t len;
  sh_err err = {0};
  if (read_file(path, &text, &len, &err) < 0)
    return false;
  cleanup_json json_t *j = json_loadb(text, len, 0, NULL);
  const char *id = jx_str(j, "NodeID", ""),
             *cert = jx_str(j, "Certificate", "");
  const char *key = jx_str(j, "Key", ""), *root = jx_str(j, "RootCA", "");
  json_t *mgrs = json_object_get(j, "Managers");
  if (strlen(id) != ID_LEN || strcmp(root, s->root_pem) != 0 ||
      ca_cert_verify(cert, s->root_pem, &err) < 0 ||
      ca_key_matches(cert, key, &err) < 0 || !json_is_array(mgrs) ||
      json_array_size(mgrs) == 0) {
    log_info("%s: the identity in %s is not of this swarm: joining anew",
             n->host, path);
    return false;
  }
  snprintf(n->node_id, sizeof n->node_id, "%s", id);
  n->cert_pem = xstrdup(cert);
  n->key_pem = xstrdup(key);
  json_decref(n->managers);
  n->managers = json_deep_copy(mgrs);
  return true;
}

static json_t *node_description(const struct sim_node *n) {
  json_t *d = agent_local_description(n->host, SIM_ENGINE_VERSION);
  json_t *labels = json_object();
  json_object_set_new(labels, "sim", json_string("true"));
  json_object_set_new(json_object_get(d, "Engine"), "Labels", labels);
  return d;
}

static void on_ready(void *ud) {
  struct sim_node *n = ud;
  struct sim *s = n->s;
  s->sessions++;
  if (s->all_joined_ms)
    return;
  for (int i = 0; i < s->cfg.nodes; i++)
    if (s->nodes[i].state != N_FAILED && !agent_connected(s->nodes[i].agent))
      return;
  s->all_joined_ms = uv_now(s->loop);
  log_info("all %d nodes have a session, %.3f s after the start", s->cfg.nodes,
           (double)(s->all_joined_ms - s->t0_ms) / 1000.0);
}

static void on_managers(void *ud, const json_t *managers) {
  struct sim_node *n = ud;
  json_decref(n->managers);
  n->managers = json_deep_copy(managers);
  save_node(n);
}

/* No logs in a simulation: every subscription ends at once, empty. */
static void on_logs(void *ud, const json_t *msg) {
  struct sim_node *n = ud;
  size_t i;
  json_t *t;
  json_array_foreach(json_object_get(msg, "Tasks"), i, t) {
    agent_send_logs(n->agent, jx_str(msg, "Sub", ""), jx_str(t, "ID", ""), NULL,
                    0, true, NULL, NULL);
  }
}

static void pump_soon(struct sim *s);

/* As shoald: logged (once a node here), and the agent tries again. */
static void on_rejected(void *ud, int status, const char *msg) {
  struct sim_node *n = ud;
  if (n->rejected)
    return;
  n->rejected = true;
  log_warn("%s: the swarm refused node %s's session (%d): %s", n->host,
           n->node_id, status, msg);
}

static void start_node(struct sim_node *n) {
  struct sim *s = n->s;
  n->client = http_client_new(s->loop);
  cleanup_json json_t *desc = node_description(n);
  struct agent_config ac = {
      .loop = s->loop,
      .client = n->client,
      .node_id = n->node_id,
      .cert_pem = n->cert_pem,
      .key_pem = n->key_pem,
      .root_pem = s->root_pem,
      .managers = n->managers,
      .description = desc,
      .on_ready = on_ready,
      .on_managers = on_managers,
      .on_assignment_changes = on_assignment_changes,
      .on_logs = on_logs,
      .on_rejected = on_rejected,
      .ud = n,
  };
  n->agent = agent_start(&ac);
  n->state = N_UP;
}

/* Ends the node's session and connections and forgets its tasks. */
static void node_halt(struct sim_node *n) {
  if (n->agent) {
    n->s->report_requests += agent_report_requests(n->agent);
    n->s->report_updates += agent_report_updates(n->agent);
    agent_stop(n->agent);
    n->agent = NULL;
  }
  if (n->client) {
    http_client_close(n->client);
    n->client = NULL;
  }
  tasks_clear(n);
  json_decref(n->pending);
  n->pending = NULL;
}

/* ---- joins ---- */

static void fatal_cb(uv_timer_t *timer) {
  struct sim *s = timer->data;
  if (s->cfg.on_fatal && !s->stopping)
    s->cfg.on_fatal(s->cfg.ud, s->fatal);
}

/* Nothing joins any more; the program hears of it off this callback. */
static void give_up(struct sim *s, const char *msg) {
  if (s->joining_stopped)
    return;
  s->joining_stopped = true;
  s->fatal = xstrdup(msg);
  uv_timer_start(&s->join_timer, fatal_cb, 0, 0);
}

static const char *next_manager(struct sim *s) {
  size_t k = json_array_size(s->managers);
  return json_string_value(json_array_get(s->managers, s->mgr_rr++ % k));
}

static void join_failed(struct sim_node *n, int status, const char *msg) {
  struct sim *s = n->s;
  free(n->key_pem);
  n->key_pem = NULL;
  bool retry = (status == 0 || status >= 500) && ++n->tries < JOIN_TRIES;
  log_warn("%s: join failed (%d): %s%s", n->host, status, msg,
           retry ? ": trying again" : "");
  if (retry) {
    n->state = N_WAITING;
    n->not_before_ms = uv_now(s->loop) + JOIN_RETRY_MS;
  } else {
    n->state = N_FAILED;
  }
  /* A refused token is refused for every node: stop there. */
  if (status >= 400 && status < 500) {
    cleanup_free char *why =
        xasprintf("the managers refused the join: %s", msg);
    give_up(s, why);
  }
}

static void join_done(const struct http_result *res, void *ud) {
  struct sim_node *n = ud;
  struct sim *s = n->s;
  s->joins_in_flight--;
  if (s->stopping) {
    n->state = N_FAILED;
    return;
  }
  pump_soon(s);
  cleanup_json json_t *j =
      res->status == 200 ? json_loads(res->body, 0, NULL) : NULL;
  if (res->status != 200) {
    cleanup_json json_t *e = json_loads(res->body ? res->body : "", 0, NULL);
    return join_failed(n, res->status,
                       res->status == 0 ? (res->error ? res->error : "")
                                        : jx_str(e, "message", res->body));
  }
  const char *id = jx_str(j, "NodeID", ""),
             *cert = jx_str(j, "Certificate", "");
  sh_err err = {0};
  if (strlen(id) != ID_LEN || ca_cert_verify(cert, s->root_pem, &err) < 0 ||
      ca_key_matches(cert, n->key_pem, &err) < 0)
    return join_failed(n, 500,
                       "the manager answered with an invalid "
                       "certificate");
  if (strcmp(jx_str(j, "Role", "worker"), "worker") != 0) {
    /* The node exists now, as a manager that never joins raft: say so. */
    cleanup_free char *why =
        xasprintf("%s joined as a manager (node %s): --join-token must be "
                  "the worker token; remove that node with docker node rm "
                  "--force",
                  n->host, id);
    give_up(s, why);
    return join_failed(n, 500, "joined as a manager");
  }
  snprintf(n->node_id, sizeof n->node_id, "%s", id);
  n->cert_pem = xstrdup(cert);
  json_t *mgrs = json_object_get(j, "Managers");
  json_decref(n->managers);
  n->managers = json_is_array(mgrs) && json_array_size(mgrs)
                    ? json_deep_copy(mgrs)
                    : json_deep_copy(s->managers);
  s->joins++;
  save_node(n);
  start_node(n);
}

static void begin_join(struct sim_node *n) {
  struct sim *s = n->s;
  cleanup_free char *csr = NULL;
  sh_err err = {0};
  free(n->key_pem);
  n->key_pem = NULL;
  if (ca_csr_create(&n->key_pem, &csr, &err) < 0) {
    n->state = N_FAILED;
    log_error("%s: %s", n->host, err.msg);
    return;
  }
  cleanup_json json_t *desc = node_description(n);
  json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:O}", "Token", s->token,
                           "CSR", csr, "Hostname", n->host, "Availability",
                           "active", "Description", desc);
  cleanup_free char *b = jx_dump(body);
  json_decref(body);
  cleanup_free char *url =
      xasprintf("https://%s/swarm/v1/join", next_manager(s));
  struct http_call_opts o = {.method = "POST",
                             .url = url,
                             .body = b,
                             .body_len = strlen(b),
                             .ca_pem = s->root_pem,
                             .timeout_ms = 30000};
  n->state = N_JOINING;
  s->joins_in_flight++;
  if (!http_client_call(s->client, &o, NULL, join_done, n)) {
    s->joins_in_flight--;
    join_failed(n, 0, "could not start the call");
  }
}

/* Joins up to join_parallel at a time. */
static void pump_cb(uv_timer_t *timer) {
  struct sim *s = timer->data;
  if (s->stopping || !s->root_pem)
    return;
  uint64_t now = uv_now(s->loop), next = UINT64_MAX;
  for (int i = 0; i < s->cfg.nodes; i++) {
    struct sim_node *n = &s->nodes[i];
    if (n->state != N_WAITING || s->joining_stopped)
      continue;
    if (n->not_before_ms > now) {
      if (n->not_before_ms < next)
        next = n->not_before_ms;
      continue;
    }
    if (s->joins_in_flight < s->cfg.join_parallel)
      begin_join(n);
  }
  if (next != UINT64_MAX)
    uv_timer_start(&s->join_timer, pump_cb, next - now, 0);
}

static void pump_soon(struct sim *s) {
  if (!s->stopping && !s->fatal)
    uv_timer_start(&s->join_timer, pump_cb, 0, 0);
}

static void fetch_ca(struct sim *s);

static void ca_retry_cb(uv_timer_t *timer) {
  fetch_ca(timer->data);
}

/* The token pins the CA, as for `docker swarm join`. */
static void ca_done(const struct http_result *res, void *ud) {
  struct sim *s = ud;
  if (s->stopping)
    return;
  char want[CA_DIGEST_LEN + 1], got[CA_DIGEST_LEN + 1];
  char secret[CA_SECRET_LEN + 1];
  sh_err err = {0};
  if (res->status != 200) {
    if (++s->ca_tries >= CA_TRIES) {
      give_up(s, "no manager gave the CA certificate");
      return;
    }
    log_warn("fetching the CA: %d %s: trying again", res->status,
             res->status ? "" : (res->error ? res->error : ""));
    uv_timer_start(&s->join_timer, ca_retry_cb, 1000, 0);
    return;
  }
  if (ca_token_parse(s->token, want, secret, &err) < 0 ||
      ca_root_digest(res->body, got, &err) < 0 || strcmp(want, got) != 0) {
    char hex[65], msg[128];
    ca_digest_hex(want, hex);
    snprintf(msg, sizeof msg,
             "remote CA does not match fingerprint. Expected: %s", hex);
    give_up(s, msg);
    return;
  }
  s->root_pem = xstrdup(res->body);
  int kept = 0;
  for (int i = 0; i < s->cfg.nodes; i++) {
    struct sim_node *n = &s->nodes[i];
    if (load_node(n)) {
      start_node(n);
      kept++;
    }
  }
  if (s->data_dir)
    log_info("%d nodes come back with the identity kept in %s, %d join", kept,
             s->data_dir, s->cfg.nodes - kept);
  pump_soon(s);
}

static void fetch_ca(struct sim *s) {
  cleanup_free char *url = xasprintf("https://%s/swarm/v1/ca", next_manager(s));
  struct http_call_opts o = {
      .method = "GET", .url = url, .insecure = true, .timeout_ms = 10000};
  if (!http_client_call(s->client, &o, NULL, ca_done, s))
    uv_timer_start(&s->join_timer, ca_retry_cb, 1000, 0);
}

/* ---- the interface ---- */

int sim_start(const struct sim_config *cfg, struct sim **out, sh_err *err) {
  char dg[CA_DIGEST_LEN + 1], sec[CA_SECRET_LEN + 1];
  if (!cfg->join_token || ca_token_parse(cfg->join_token, dg, sec, err) < 0)
    return sh_error(err, 400, "invalid join token");
  if (!json_is_array(cfg->managers) || json_array_size(cfg->managers) == 0)
    return sh_error(err, 400, "at least one manager address is needed");
  if (cfg->nodes < 1 || cfg->nodes > 100000)
    return sh_error(err, 400, "the number of nodes must be 1 to 100000");
  if (cfg->fail_rate < 0 || cfg->fail_rate > 1)
    return sh_error(err, 400, "the fail rate must be between 0 and 1");
  if (cfg->start_delay_ns < 0 || cfg->jitter_ns < 0)
    return sh_error(err, 400, "delays cannot be negative");
  if (cfg->data_dir && mkdir_p(cfg->data_dir, 0700, err) < 0)
    return -1;
  struct sim *s = xcalloc(1, sizeof *s);
  s->loop = cfg->loop;
  s->cfg = *cfg;
  s->token = xstrdup(cfg->join_token);
  s->prefix = xstrdup(cfg->prefix && *cfg->prefix ? cfg->prefix : "sim");
  s->data_dir = cfg->data_dir ? xstrdup(cfg->data_dir) : NULL;
  s->managers = json_deep_copy(cfg->managers);
  if (s->cfg.join_parallel <= 0)
    s->cfg.join_parallel = 16;
  s->armed_ms = UINT64_MAX;
  s->client = http_client_new(s->loop);
  s->nodes = xcalloc((size_t)cfg->nodes, sizeof *s->nodes);
  for (int i = 0; i < cfg->nodes; i++) {
    struct sim_node *n = &s->nodes[i];
    n->s = s;
    n->idx = i;
    snprintf(n->host, sizeof n->host, "%s-%04d", s->prefix, i + 1);
  }
  uv_timer_init(s->loop, &s->step_timer);
  uv_timer_init(s->loop, &s->flush_timer);
  uv_timer_init(s->loop, &s->join_timer);
  uv_timer_init(s->loop, &s->halt_timer);
  s->step_timer.data = s->flush_timer.data = s->join_timer.data =
      s->halt_timer.data = s;
  s->handles_open = 4;
  s->t0_ms = uv_now(s->loop);
  fetch_ca(s);
  *out = s;
  return 0;
}

static void sim_free(struct sim *s) {
  for (int i = 0; i < s->cfg.nodes; i++) {
    struct sim_node *n = &s->nodes[i];
    free(n->cert_pem);
    free(n->key_pem);
    json_decref(n->managers);
  }
  free(s->nodes);
  free(s->heap);
  free(s->token);
  free(s->prefix);
  free(s->data_dir);
  free(s->root_pem);
  free(s->fatal);
  json_decref(s->managers);
  void (*done)(void *) = s->stop_done;
  void *ud = s->stop_ud;
  free(s);
  if (done)
    done(ud);
}

static void timer_closed(uv_handle_t *h) {
  struct sim *s = h->data;
  if (--s->handles_open == 0)
    sim_free(s);
}

void sim_stop(struct sim *s, void (*done)(void *ud), void *ud) {
  if (s->stopping)
    return;
  s->stopping = true;
  s->stop_done = done;
  s->stop_ud = ud;
  for (int i = 0; i < s->cfg.nodes; i++)
    node_halt(&s->nodes[i]);
  s->dirty = NULL;
  http_client_close(s->client);
  s->client = NULL;
  uv_close((uv_handle_t *)&s->step_timer, timer_closed);
  uv_close((uv_handle_t *)&s->flush_timer, timer_closed);
  uv_close((uv_handle_t *)&s->join_timer, timer_closed);
  uv_close((uv_handle_t *)&s->halt_timer, timer_closed);
}

static void halt_due(uv_timer_t *t) {
  struct sim *s = t->data;
  for (int i = 0; i < s->cfg.nodes; i++) {
    struct sim_node *n = &s->nodes[i];
    if (n->halt_due && n->state == N_DOWN)
      node_halt(n);
    n->halt_due = false;
  }
}

/* Its last heartbeat answered: the node stops (from a timer, not within
 * its agent's callback). */
static void last_heartbeat_done(void *ud) {
  struct sim_node *n = ud;
  n->halt_due = true;
  uv_timer_start(&n->s->halt_timer, halt_due, 0, 0);
}

/* Each node sends a heartbeat and stops once it is answered: nodes taken
 * down together are marked down within one of the managers' checks, the
 * worst case for what their tasks' rescheduling takes (stopped at once,
 * their heartbeats' phases spread them over a period, up to 5 s). */
json_t *sim_down(struct sim *s, int k) {
  json_t *names = json_array();
  for (int i = s->cfg.nodes - 1; i >= 0 && k > 0; i--) {
    struct sim_node *n = &s->nodes[i];
    if (n->state != N_UP)
      continue;
    n->state = N_DOWN;
    if (n->agent)
      agent_heartbeat_then(n->agent, last_heartbeat_done, n);
    else
      node_halt(n);
    json_array_append_new(names, json_string(n->host));
    k--;
  }
  if (json_array_size(names))
    log_info("%zu nodes down", json_array_size(names));
  return names;
}

json_t *sim_up(struct sim *s, int k) {
  json_t *names = json_array();
  for (int i = 0; i < s->cfg.nodes && k != 0; i++) {
    struct sim_node *n = &s->nodes[i];
    if (n->state != N_DOWN)
      continue;
    node_halt(n); /* if its last heartbeat is still out */
    n->halt_due = false;
    start_node(n);
    json_array_append_new(names, json_string(n->host));
    k--;
  }
  if (json_array_size(names))
    log_info("%zu nodes up again", json_array_size(names));
  return names;
}

static long rss_kib(void) {
  cleanup_file FILE *f = fopen("/proc/self/status", "re");
  char line[256];
  long kib = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld", &kib) == 1)
      break;
  return kib;
}

json_t *sim_figures(const struct sim *s) {
  int ns[N_STATES] = {0}, ready = 0;
  for (int i = 0; i < s->cfg.nodes; i++) {
    ns[s->nodes[i].state]++;
    if (s->nodes[i].state == N_UP && agent_connected(s->nodes[i].agent))
      ready++;
  }
  json_t *nodes =
      json_pack("{s:i, s:i}", "Total", s->cfg.nodes, "Ready", ready);
  for (int i = 0; i < N_STATES; i++)
    json_object_set_new(nodes, node_state_names[i], json_integer(ns[i]));
  uint64_t requests = s->report_requests, updates = s->report_updates;
  for (int i = 0; i < s->cfg.nodes; i++) {
    requests += agent_report_requests(s->nodes[i].agent);
    updates += agent_report_updates(s->nodes[i].agent);
  }
  json_t *tasks = json_object();
  for (int i = 0; i < T_PHASES; i++)
    json_object_set_new(tasks, phase_names[i],
                        json_integer((json_int_t)s->count[i]));
  return json_pack(
      "{s:o, s:o, s:{s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I}, s:I, s:I, "
      "s:f, "
      "s:I}",
      "Nodes", nodes, "Tasks", tasks, "Reported", "Updates",
      (json_int_t)s->reports, "Running", (json_int_t)s->started, "Failed",
      (json_int_t)s->failed, "Shutdown", (json_int_t)s->shut, "Complete",
      (json_int_t)s->completed, "Messages", "Assignments",
      (json_int_t)s->assignments, "ReportRequests", (json_int_t)requests,
      "ReportUpdates", (json_int_t)updates, "Joins", (json_int_t)s->joins,
      "Sessions", (json_int_t)s->sessions, "AllJoinedSeconds",
      s->all_joined_ms ? (double)(s->all_joined_ms - s->t0_ms) / 1000.0 : -1.0,
      "RSSKiB", (json_int_t)rss_kib());
}

char *sim_figures_line(const struct sim *s) {
  cleanup_json json_t *f = sim_figures(s);
  return xasprintf(
      "nodes %lld: %lld ready, %lld joining, %lld down, %lld failed | tasks: "
      "%lld preparing, %lld starting, %lld running, %lld ended | reported "
      "%lld (running %lld, failed %lld, shutdown %lld) | rss %lld MiB",
      (long long)jx_int(f, "Nodes.Total", 0),
      (long long)jx_int(f, "Nodes.Ready", 0),
      (long long)(jx_int(f, "Nodes.Joining", 0) +
                  jx_int(f, "Nodes.Waiting", 0)),
      (long long)jx_int(f, "Nodes.Down", 0),
      (long long)jx_int(f, "Nodes.Failed", 0),
      (long long)jx_int(f, "Tasks.Preparing", 0),
      (long long)jx_int(f, "Tasks.Starting", 0),
      (long long)jx_int(f, "Tasks.Running", 0),
      (long long)jx_int(f, "Tasks.Ended", 0),
      (long long)jx_int(f, "Reported.Updates", 0),
      (long long)jx_int(f, "Reported.Running", 0),
      (long long)jx_int(f, "Reported.Failed", 0),
      (long long)jx_int(f, "Reported.Shutdown", 0),
      (long long)jx_int(f, "RSSKiB", 0) / 1024);
}

char *sim_command(struct sim *s, const char *line) {
  char cmd[16] = "";
  int k = -1;
  int got = sscanf(line, "%15s %d", cmd, &k);
  json_t *out = NULL;
  if (got >= 1 && strcmp(cmd, "down") == 0 && got == 2 && k >= 0)
    out = json_pack("{s:o}", "Down", sim_down(s, k));
  else if (got >= 1 && strcmp(cmd, "up") == 0)
    out = json_pack("{s:o}", "Up", sim_up(s, got == 2 ? k : -1));
  else if (got >= 1 && strcmp(cmd, "status") == 0)
    out = sim_figures(s);
  else
    out = json_pack("{s:s}", "message",
                    "unknown command: want \"down K\", \"up [K]\" or "
                    "\"status\"");
  char *text = jx_dump(out);
  json_decref(out);
  return text;
}
