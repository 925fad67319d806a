/* The agent's dispatcher session and heartbeats. */
#include "agent/agent.h"

#include "ca/ca.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/jcbor.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/util.h"
#include "http/client.h"

#include <sys/sysinfo.h>
#include <sys/utsname.h>

/* Reconnects back off from 100 ms to 1 s, with jitter: a new leader
 * marks down every node that has not found it within 3 heartbeats, so a
 * node must keep trying through an election, and 1 s keeps a thousand
 * nodes' retries light for the managers. */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 1000
/* A session that was up and broke (the leader died, or stepped down):
 * every node's broke at the same moment, and the first retry is drawn
 * from this whole window. Tried within 100 ms, a thousand nodes' TLS
 * handshakes (~2 ms of a manager's loop each) filled the followers'
 * accept queues while they held the election, and a candidate's raft
 * connection waited behind them: 3.3-3.7 s failovers instead of ~1.2.
 * Until the election ends (~1 s) a retry only hears "no leader" anyway. */
#define LOST_SPREAD_MS 1500
/* Each heartbeat carried the node's TLSInfo (~1 KB: the root certificate
 * among it), parsed and compared by the leader 200 times a second at
 * 1,000 nodes; now only a change, the first of a session and every
 * twelfth (a minute at the default period). */
#define HB_TLS_REFRESH 12
/* The status reports' lane of the client (http_call_opts.lane): a report
 * waits for its raft entry (seconds behind a large create's), and on the
 * heartbeats' lane it took the node's kept connection, so the next
 * heartbeat opened a new one, 1,000 nodes at once on a manager busy with
 * the create: that took over 5 s, and healthy nodes were marked down
 * mid-ramp. Heartbeats keep the connection made while the node joined
 * (a lane of their own cost every node a connection more then); the
 * reports' first connection resumes the TLS session of the join's (a
 * client of their own made a full handshake and parsed the node's PEMs
 * again: ~13 % of the leader's and ~25 % of the simulator's CPU over a
 * 1,000-node ramp). */
#define REPORT_LANE 1

struct log_post {
  char *url;
  void *data;
  size_t len;
  void (*sent)(void *arg);
  void *sent_arg;
  struct log_post *next;
};

struct agent {
  uv_loop_t *loop;
  struct http_client *client;
  char *node_id, *cert_pem, *key_pem, *root_pem;
  json_t *managers;
  json_t *description;
  size_t mgr_idx;
  struct agent_config cb; /* callbacks and ud only */

  struct http_call *session_call;
  struct http_call *hb_call;
  struct http_call *report_call;
  uint64_t report_requests;
  uint64_t report_updates;
  /* Task status updates waiting for delivery, by task ID: a node that
   * reports a hundred tasks at once merged each into a list it scanned
   * (a fifth of the simulator's CPU at 1,000 nodes). */
  json_t *unsent;
  json_t *in_flight; /* the batch being sent (an array), NULL when none */
  struct log_post *logs_head, *logs_tail; /* queued, sent one at a time */
  void (*log_sent)(void *arg);            /* of the post in flight */
  void *log_sent_arg;
  struct http_call *log_call;
  sh_buf linebuf;
  char sid[64];
  char addr[64]; /* this node's address as the manager sees it */
  uint16_t data_path_port;
  json_t *ingress; /* the swarm's ingress network, from the session */
  /* This node's assignments as the manager last sent them (task ID ->
   * task) and their secrets and configs: the manager sends the whole list
   * once per session, then changes; the callback always gets the whole
   * list. */
  json_t *assigned;
  json_t *files;
  int64_t period_ns;
  bool connected;
  /* The session's manager speaks CBOR (its hello said "Encoding":
   * "cbor"): its assignments come as CBOR frames and the status reports
   * go to it as CBOR. An older manager's session stays JSON. */
  bool cbor;
  /* Another heartbeat at once when the one in flight returns (TLSInfo
   * changed meanwhile, or agent_heartbeat_then). */
  bool hb_again;
  /* The TLSInfo this session's manager answered a heartbeat carrying, and
   * the one in flight: a heartbeat carries it only when it changed, and
   * every HB_TLS_REFRESH-th in case the manager's write of it was lost. */
  json_t *tls_told, *tls_sending;
  unsigned hb_count;
  /* agent_heartbeat_then: called once the heartbeat sent after the ask
   * (armed) is answered. */
  void (*hb_then)(void *);
  void *hb_then_ud;
  bool hb_then_armed;
  bool stopping;
  struct agent_rpc *rpcs; /* agent_call()s in flight */
  unsigned backoff_ms;
  bool lost; /* the next retry follows a session that was up */
  uv_timer_t retry_timer;
  uv_timer_t hb_timer;
  int handles_open;
  void (*leave_done)(void *);
  void *leave_ud;
};

json_t *agent_local_description(const char *hostname,
                                const char *engine_version) {
  struct utsname u;
  uname(&u);
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  struct sysinfo si;
  long long mem = 0;
  if (sysinfo(&si) == 0)
    mem = (long long)si.totalram * si.mem_unit;
  return json_pack("{s:s, s:{s:s, s:s}, s:{s:I, s:I}, s:{s:s, s:{}, s:[]}}",
                   "Hostname", hostname, "Platform", "Architecture", u.machine,
                   "OS", "linux", "Resources", "NanoCPUs",
                   (json_int_t)(cpus > 0 ? cpus : 1) * 1000000000LL,
                   "MemoryBytes", (json_int_t)mem, "Engine", "EngineVersion",
                   engine_version, "Labels", "Plugins");
}

static const char *current_manager(struct agent *a) {
  size_t n = json_array_size(a->managers);
  if (n == 0)
    return NULL;
  return json_string_value(json_array_get(a->managers, a->mgr_idx % n));
}

static void start_session(struct agent *a);

static void retry_cb(uv_timer_t *t) {
  start_session(t->data);
}

static void schedule_retry(struct agent *a) {
  if (a->stopping)
    return;
  a->mgr_idx++;
  if (a->lost) {
    a->lost = false;
    a->backoff_ms = BACKOFF_MAX_MS;
    uv_timer_start(&a->retry_timer, retry_cb,
                   (uint64_t)(random() % LOST_SPREAD_MS), 0);
    return;
  }
  if (a->backoff_ms == 0)
    a->backoff_ms = BACKOFF_MIN_MS;
  else if ((a->backoff_ms *= 2) > BACKOFF_MAX_MS)
    a->backoff_ms = BACKOFF_MAX_MS;
  unsigned jitter = (unsigned)random() % (a->backoff_ms / 4 + 1);
  uv_timer_start(&a->retry_timer, retry_cb, a->backoff_ms - jitter, 0);
}

static void fill_tls(struct agent *a, struct http_call_opts *o) {
  o->cert_pem = a->cert_pem;
  o->key_pem = a->key_pem;
  o->ca_pem = a->root_pem;
}

static void hb_send(uv_timer_t *t);

/* Description.TLSInfo from the certificate in use: the root this node
 * trusts and its certificate's verified issuer (swarmkit's NodeTLSInfo). */
static void update_tls_info(struct agent *a) {
  json_object_set_new(a->description, "TLSInfo",
                      ca_tls_info(a->cert_pem, a->root_pem));
}

/* Tells the manager at once (with a heartbeat) when the facts changed. */
static void tls_info_changed(struct agent *a) {
  json_t *before = json_incref(json_object_get(a->description, "TLSInfo"));
  update_tls_info(a);
  bool same = json_equal(before, json_object_get(a->description, "TLSInfo"));
  json_decref(before);
  if (same || !a->connected)
    return;
  if (a->hb_call)
    a->hb_again = true; /* the one in flight has the old facts */
  else
    uv_timer_start(&a->hb_timer, hb_send, 0, 0);
}

static void hb_answered(struct agent *a, const struct http_result *res) {
  cleanup_json json_t *sent = STEAL_POINTER(&a->tls_sending);
  if (a->stopping)
    return;
  bool again = a->hb_again;
  a->hb_again = false;
  if (res->status == 200 && sent) {
    json_decref(a->tls_told);
    a->tls_told = json_incref(sent);
  }
  if (res->status == 200) {
    cleanup_json json_t *j = json_loads(res->body, 0, NULL);
    int64_t p = jx_int(j, "Period", 0);
    if (p > 0)
      a->period_ns = p;
    if (again) {
      uv_timer_start(&a->hb_timer, hb_send, 0, 0);
      return;
    }
  } else if (res->status == 404 || res->status == 503) {
    /* Session gone (manager restarted or lost leadership): reconnect. */
    if (a->session_call) {
      http_call_cancel(a->session_call);
      a->session_call = NULL;
    }
    a->lost = a->connected;
    a->connected = false;
    schedule_retry(a);
    return;
  }
  uv_timer_start(&a->hb_timer, hb_send, (uint64_t)(a->period_ns / NS_PER_MS),
                 0);
}

static void hb_then_fire(struct agent *a) {
  void (*then)(void *) = a->hb_then;
  a->hb_then = NULL;
  a->hb_then_armed = false;
  if (then)
    then(a->hb_then_ud);
}

/* agent_heartbeat_then's callback goes after the heartbeat sent after the
 * ask, or after any failure (the session may not come back). */
static void hb_done(const struct http_result *res, void *ud) {
  struct agent *a = ud;
  a->hb_call = NULL;
  bool fire = a->hb_then && (a->hb_then_armed || res->status != 200);
  hb_answered(a, res);
  if (fire && !a->stopping)
    hb_then_fire(a);
}

void agent_heartbeat_then(struct agent *a, void (*done)(void *ud), void *ud) {
  if (!a->connected || a->hb_then) {
    done(ud);
    return;
  }
  a->hb_then = done;
  a->hb_then_ud = ud;
  if (a->hb_call)
    a->hb_again = true; /* the one in flight was sent before the ask */
  else
    uv_timer_start(&a->hb_timer, hb_send, 0, 0);
}

static void hb_send(uv_timer_t *t) {
  struct agent *a = t->data;
  if (!a->connected)
    hb_then_fire(a); /* no heartbeat to wait for */
  if (!a->connected || a->hb_call)
    return;
  const char *mgr = current_manager(a);
  cleanup_free char *url = xasprintf("https://%s/swarm/v1/heartbeat", mgr);
  json_t *hb = json_pack("{s:s}", "SessionID", a->sid);
  json_t *tls = json_object_get(a->description, "TLSInfo");
  if (tls &&
      (!json_equal(tls, a->tls_told) || ++a->hb_count % HB_TLS_REFRESH == 0)) {
    json_object_set(hb, "TLSInfo", tls);
    a->tls_sending = json_incref(tls);
  }
  cleanup_free char *body = jx_dump(hb);
  json_decref(hb);
  struct http_call_opts o = {.method = "POST",
                             .url = url,
                             .body = body,
                             .body_len = strlen(body),
                             .timeout_ms = a->period_ns / NS_PER_MS + 1000};
  fill_tls(a, &o);
  a->hb_call = http_client_call(a->client, &o, NULL, hb_done, a);
  a->hb_then_armed = a->hb_then != NULL;
}

/* The managers the swarm has now (from the session's first message and
 * every membership change after it), persisted so a restarted node finds
 * the current ones. */
static void set_managers(struct agent *a, const json_t *mgrs) {
  if (!json_is_array(mgrs) || json_array_size(mgrs) == 0 ||
      json_equal(mgrs, a->managers))
    return;
  /* Keep talking to the manager we reached; remember the others. */
  const char *cur = current_manager(a);
  size_t i, idx = 0;
  json_t *v;
  json_array_foreach(mgrs, i, v) {
    if (!json_is_string(v))
      return;
    if (cur && strcmp(json_string_value(v), cur) == 0)
      idx = i;
  }
  json_decref(a->managers);
  a->managers = json_deep_copy(mgrs);
  a->mgr_idx = idx;
  if (a->cb.on_managers)
    a->cb.on_managers(a->cb.ud, a->managers);
}

/* A follower that refused the session named the leader: go there next. */
static void follow_leader_hint(struct agent *a, const char *body) {
  cleanup_json json_t *j = body ? json_loads(body, 0, NULL) : NULL;
  const char *leader = jx_str(j, "Leader", NULL);
  if (!leader || !*leader)
    return;
  size_t i, n = json_array_size(a->managers);
  for (i = 0; i < n; i++)
    if (strcmp(json_string_value(json_array_get(a->managers, i)), leader) == 0)
      break;
  if (i == n) /* a manager this node has not heard of yet */
    json_array_append_new(a->managers, json_string(leader));
  /* schedule_retry steps one on: land on the leader, after the shortest
   * backoff (never at once: two managers naming each other while an
   * election settles must not make a busy loop). */
  a->mgr_idx = i + json_array_size(a->managers) - 1;
  a->backoff_ms = 0;
}

/* A session message's tasks: the whole list (*full) or the changes;
 * false when malformed. */
static bool assignment_parts(const json_t *msg, json_t **tasks, json_t **del,
                             bool *full) {
  *full = strcmp(jx_str(msg, "Type", ""), "assignments") == 0;
  *tasks = json_object_get(msg, *full ? "Tasks" : "Set");
  *del = *full ? NULL : json_object_get(msg, "Del");
  return json_is_array(*tasks) && (*full || json_is_array(*del));
}

json_t *agent_assignments_apply(json_t **assigned, json_t **files,
                                const json_t *msg) {
  bool full;
  json_t *tasks, *del;
  if (!assignment_parts(msg, &tasks, &del, &full))
    return NULL;
  if (full || !*assigned) {
    json_decref(*assigned);
    *assigned = json_object();
  }
  size_t i;
  json_t *t;
  json_array_foreach(del, i, t) {
    if (json_is_string(t))
      json_object_del(*assigned, json_string_value(t));
  }
  json_array_foreach(tasks, i, t) {
    const char *id = jx_str(t, "ID", NULL);
    if (json_is_object(t) && id && *id)
      json_object_set(*assigned, id, t);
  }
  json_t *sec = json_object_get(msg, "Secrets");
  json_t *conf = json_object_get(msg, "Configs");
  if (full || sec || conf || !*files) {
    json_decref(*files);
    *files = json_pack("{s:O, s:O}", "Secrets", sec ? sec : json_null(),
                       "Configs", conf ? conf : json_null());
  }
  /* In the manager's order; each CreatedAt parsed once (the sort's
   * comparisons parsed two per step: a quarter of the simulator's CPU). */
  json_t *list = jx_sorted_by_created(*assigned);
  return json_pack("{s:s, s:o, s:O, s:O}", "Type", "assignments", "Tasks", list,
                   "Secrets", json_object_get(*files, "Secrets"), "Configs",
                   json_object_get(*files, "Configs"));
}

/* The callback always gets the whole list, shaped as the full message; a
 * malformed message changes nothing. */
static void apply_assignments(struct agent *a, const json_t *msg) {
  if (a->cb.on_assignment_changes) {
    bool full;
    json_t *tasks, *del;
    if (assignment_parts(msg, &tasks, &del, &full))
      a->cb.on_assignment_changes(a->cb.ud, tasks, del, full);
    return;
  }
  json_t *whole = agent_assignments_apply(&a->assigned, &a->files, msg);
  if (whole && a->cb.on_assignments)
    a->cb.on_assignments(a->cb.ud, json_object_get(whole, "Tasks"), whole);
  json_decref(whole);
}

static void handle_message(struct agent *a, json_t *msg) {
  const char *type = jx_str(msg, "Type", "");
  if (strcmp(type, "managers") == 0) {
    set_managers(a, json_object_get(msg, "Managers"));
    return;
  }
  if (strcmp(type, "logs") == 0) {
    if (a->cb.on_logs)
      a->cb.on_logs(a->cb.ud, msg);
    return;
  }
  if (strcmp(type, "logs-cancel") == 0) {
    if (a->cb.on_logs_cancel)
      a->cb.on_logs_cancel(a->cb.ud, jx_str(msg, "Sub", ""));
    return;
  }
  if (strcmp(type, "assignments") == 0 ||
      strcmp(type, "assignment_changes") == 0) {
    apply_assignments(a, msg);
    return;
  }
  if (strcmp(type, "peers") == 0 || strcmp(type, "mesh") == 0) {
    if (a->cb.on_peers)
      a->cb.on_peers(a->cb.ud, msg);
    return;
  }
  if (strcmp(type, "node") == 0) {
    json_t *node = json_object_get(msg, "Node");
    if (json_is_object(node) && a->cb.on_node)
      a->cb.on_node(a->cb.ud, node);
    json_t *ca = json_object_get(msg, "CA");
    if (json_is_object(ca) && a->cb.on_ca)
      a->cb.on_ca(a->cb.ud, ca);
    json_t *ing = json_object_get(msg, "Ingress");
    if (json_is_object(ing) && a->cb.on_ingress)
      a->cb.on_ingress(a->cb.ud, ing);
    return;
  }
  if (strcmp(type, "session") == 0) {
    snprintf(a->sid, sizeof a->sid, "%s", jx_str(msg, "SessionID", ""));
    snprintf(a->addr, sizeof a->addr, "%s", jx_str(msg, "Addr", ""));
    json_t *ing = json_object_get(msg, "Ingress");
    if (json_is_object(ing)) {
      json_decref(a->ingress);
      a->ingress = json_incref(ing);
    }
    int64_t dpp = jx_int(msg, "DataPathPort", 0);
    a->data_path_port = dpp > 0 && dpp < 65536 ? (uint16_t)dpp : 0;
    int64_t p = jx_int(msg, "HeartbeatPeriod", 0);
    a->period_ns = p > 0 ? p : 5 * NS_PER_SEC;
    a->cbor = strcmp(jx_str(msg, "Encoding", ""), "cbor") == 0;
    set_managers(a, json_object_get(msg, "Managers"));
    json_decref(STEAL_POINTER(&a->tls_told)); /* a new session: tell it */
    a->connected = true;
    a->backoff_ms = 0;
    uv_timer_start(&a->hb_timer, hb_send, (uint64_t)(a->period_ns / NS_PER_MS),
                   0);
    if (a->cb.on_ready)
      a->cb.on_ready(a->cb.ud);
    agent_report(a, NULL); /* deliver what waited for a session */
  }
}

static bool session_data(const char *data, size_t len, void *ud) {
  struct agent *a = ud;
  buf_append(&a->linebuf, data, len);
  if (a->linebuf.len > 16 * 1024 * 1024)
    return false; /* a manager never sends lines this long */
  /* Lines of JSON, and the assignments as CBOR frames once asked for
   * (a frame starts with a byte no JSON text starts with). The messages
   * read at once are taken from an offset and the rest moved down once:
   * moved after each, a burst of n messages was n moves of the buffer. */
  size_t off = 0;
  while (off < a->linebuf.len) {
    const char *p = a->linebuf.data + off;
    size_t avail = a->linebuf.len - off;
    json_t *msg = NULL;
    size_t used = 0;
    if ((unsigned char)p[0] <= 0x1b) {
      sh_err err = {0};
      int r = jcbor_unframe(p, avail, 16 * 1024 * 1024, &msg, &used, &err);
      if (r > 0)
        break;
      if (r < 0) {
        log_warn("session: %s", err.msg);
        return false;
      }
    } else {
      const char *nl = memchr(p, '\n', avail);
      if (!nl)
        break;
      used = (size_t)(nl - p) + 1;
      msg = json_loadb(p, used - 1, 0, NULL);
    }
    off += used;
    if (msg) {
      handle_message(a, msg);
      json_decref(msg);
    }
  }
  if (off) {
    memmove(a->linebuf.data, a->linebuf.data + off, a->linebuf.len - off);
    a->linebuf.len -= off;
    a->linebuf.data[a->linebuf.len] = '\0';
  }
  /* A long message (a node's whole task list) leaves a big buffer: give
   * it back once consumed, or each of a thousand simulated nodes keeps
   * one. */
  if (a->linebuf.len == 0 && a->linebuf.cap > 64 * 1024)
    buf_free(&a->linebuf);
  return true;
}

static void session_done(const struct http_result *res, void *ud) {
  struct agent *a = ud;
  a->session_call = NULL;
  a->lost = a->connected;
  a->connected = false;
  uv_timer_stop(&a->hb_timer);
  if (a->stopping)
    return;
  if (res->status == 404 || res->status == 401) {
    /* This node is no longer part of the cluster. */
    if (a->cb.on_rejected)
      a->cb.on_rejected(a->cb.ud, res->status,
                        res->body && *res->body ? res->body : "rejected");
  } else if (res->status == 503) {
    follow_leader_hint(a, res->body);
  }
  schedule_retry(a);
}

static void start_session(struct agent *a) {
  if (a->stopping || a->session_call)
    return;
  const char *mgr = current_manager(a);
  if (!mgr)
    return;
  buf_reset(&a->linebuf);
  cleanup_free char *url = xasprintf("https://%s/swarm/v1/session", mgr);
  json_t *body = json_pack("{s:O, s:s}", "Description", a->description,
                           "Encoding", "cbor");
  cleanup_free char *b = jx_dump(body);
  json_decref(body);
  struct http_call_opts o = {
      .method = "POST", .url = url, .body = b, .body_len = strlen(b)};
  fill_tls(a, &o);
  a->session_call =
      http_client_call(a->client, &o, session_data, session_done, a);
}

struct agent *agent_start(const struct agent_config *cfg) {
  struct agent *a = xcalloc(1, sizeof *a);
  a->loop = cfg->loop;
  a->client = cfg->client;
  a->node_id = xstrdup(cfg->node_id);
  a->cert_pem = xstrdup(cfg->cert_pem);
  a->key_pem = xstrdup(cfg->key_pem);
  a->root_pem = xstrdup(cfg->root_pem);
  a->managers = json_deep_copy(cfg->managers);
  a->description = json_is_object(cfg->description)
                       ? json_deep_copy(cfg->description)
                       : json_object();
  update_tls_info(a);
  a->cb = *cfg;
  a->period_ns = 5 * NS_PER_SEC;
  a->unsent = json_object();

  uv_timer_init(a->loop, &a->retry_timer);
  uv_timer_init(a->loop, &a->hb_timer);
  a->retry_timer.data = a->hb_timer.data = a;
  a->handles_open = 2;
  start_session(a);
  return a;
}

const json_t *agent_ingress(const struct agent *a) {
  return a->ingress;
}

uint16_t agent_data_path_port(const struct agent *a) {
  return a->data_path_port;
}

bool agent_connected(const struct agent *a) {
  return a && a->connected;
}

uint64_t agent_report_requests(const struct agent *a) {
  return a ? a->report_requests : 0;
}

uint64_t agent_report_updates(const struct agent *a) {
  return a ? a->report_updates : 0;
}

const char *agent_node_addr(const struct agent *a) {
  return a && a->addr[0] ? a->addr : NULL;
}

static void handle_closed(uv_handle_t *h) {
  struct agent *a = h->data;
  if (--a->handles_open > 0)
    return;
  free(a->node_id);
  free(a->cert_pem);
  free(a->key_pem);
  free(a->root_pem);
  json_decref(a->managers);
  json_decref(a->description);
  json_decref(a->tls_told);
  json_decref(a->tls_sending);
  json_decref(a->unsent);
  json_decref(a->in_flight);
  json_decref(a->ingress);
  json_decref(a->assigned);
  json_decref(a->files);
  while (a->logs_head) {
    struct log_post *p = a->logs_head;
    a->logs_head = p->next;
    if (p->sent)
      p->sent(p->sent_arg);
    free(p->url);
    free(p->data);
    free(p);
  }
  buf_free(&a->linebuf);
  void (*done)(void *) = a->leave_done;
  void *ud = a->leave_ud;
  free(a);
  if (done)
    done(ud);
}

static void rpcs_fail(struct agent *a);

static void finish_stop(struct agent *a) {
  a->stopping = true;
  rpcs_fail(a);
  if (a->session_call) {
    http_call_cancel(a->session_call);
    a->session_call = NULL;
  }
  if (a->hb_call) {
    http_call_cancel(a->hb_call);
    a->hb_call = NULL;
  }
  if (a->report_call) {
    http_call_cancel(a->report_call);
    a->report_call = NULL;
  }
  if (a->log_call) {
    http_call_cancel(a->log_call);
    a->log_call = NULL;
  }
  uv_close((uv_handle_t *)&a->retry_timer, handle_closed);
  uv_close((uv_handle_t *)&a->hb_timer, handle_closed);
}

void agent_stop(struct agent *a) {
  if (a)
    finish_stop(a);
}

static void leave_sent(const struct http_result *res, void *ud) {
  struct agent *a = ud;
  a->hb_call = NULL;
  finish_stop(a);
}

void agent_leave(struct agent *a, void (*done)(void *ud), void *ud) {
  a->leave_done = done;
  a->leave_ud = ud;
  const char *mgr = current_manager(a);
  if (!mgr || a->stopping) {
    finish_stop(a);
    return;
  }
  if (a->hb_call) {
    http_call_cancel(a->hb_call);
    a->hb_call = NULL;
  }
  uv_timer_stop(&a->hb_timer);
  cleanup_free char *url = xasprintf("https://%s/swarm/v1/leave", mgr);
  struct http_call_opts o = {.method = "POST",
                             .url = url,
                             .body = "{}",
                             .body_len = 2,
                             .timeout_ms = 2000};
  fill_tls(a, &o);
  a->hb_call = http_client_call(a->client, &o, NULL, leave_sent, a);
}

const char *agent_manager(const struct agent *a) {
  return a ? current_manager((struct agent *)a) : NULL;
}

void agent_set_identity(struct agent *a, const char *cert_pem,
                        const char *key_pem, const char *root_pem) {
  char *c = xstrdup(cert_pem), *k = xstrdup(key_pem);
  free(a->cert_pem);
  free(a->key_pem);
  a->cert_pem = c;
  a->key_pem = k;
  if (root_pem) {
    char *r = xstrdup(root_pem);
    free(a->root_pem);
    a->root_pem = r;
  }
  tls_info_changed(a);
}

/* One report in flight at a time; what arrives meanwhile is merged (the
 * latest status of each task wins) and sent next. */
static void report_sent(const struct http_result *res, void *ud) {
  struct agent *a = ud;
  a->report_call = NULL;
  if (a->stopping)
    return;
  if (res->status != 200) {
    /* Not delivered: keep the batch (minus tasks updated since). */
    size_t i;
    json_t *u;
    json_array_foreach(a->in_flight, i, u) {
      const char *id = jx_str(u, "ID", "");
      if (!json_object_get(a->unsent, id))
        json_object_set(a->unsent, id, u);
    }
  }
  json_decref(a->in_flight);
  a->in_flight = NULL;
  if (a->connected && json_object_size(a->unsent) > 0)
    agent_report(a, NULL);
}

void agent_report(struct agent *a, const json_t *updates) {
  size_t i;
  json_t *u;
  json_array_foreach(updates, i, u) {
    json_object_set(a->unsent, jx_str(u, "ID", ""), u);
  }
  const char *mgr = current_manager(a);
  if (a->report_call || !a->connected || !mgr ||
      json_object_size(a->unsent) == 0)
    return;
  a->in_flight = json_array();
  const char *id;
  json_object_foreach(a->unsent, id, u) json_array_append(a->in_flight, u);
  json_object_clear(a->unsent);
  json_t *body = json_pack("{s:O}", "Updates", a->in_flight);
  size_t n = 0;
  /* JSON if the manager reads no CBOR, or the batch nests too deep for it. */
  cleanup_free char *b = a->cbor ? jcbor_encode(body, &n) : NULL;
  bool cbor = b != NULL;
  if (!cbor) {
    b = jx_dump(body);
    n = strlen(b);
  }
  json_decref(body);
  cleanup_free char *url = xasprintf("https://%s/swarm/v1/tasks", mgr);
  struct http_call_opts o = {.method = "POST",
                             .url = url,
                             .body = b,
                             .body_len = n,
                             .content_type = cbor ? "application/cbor" : NULL,
                             .lane = REPORT_LANE,
                             .timeout_ms = 15000};
  fill_tls(a, &o);
  a->report_call = http_client_call(a->client, &o, NULL, report_sent, a);
  a->report_requests++;
  a->report_updates += json_array_size(a->in_flight);
}

static void send_next_log(struct agent *a);

static void log_posted(const struct http_result *res, void *ud) {
  struct agent *a = ud;
  a->log_call = NULL;
  void (*sent)(void *) = STEAL_POINTER(&a->log_sent);
  if (sent)
    sent(a->log_sent_arg);
  if (!a->stopping)
    send_next_log(a);
}

static void send_next_log(struct agent *a) {
  if (a->log_call || !a->logs_head)
    return;
  struct log_post *p = a->logs_head;
  a->logs_head = p->next;
  if (!a->logs_head)
    a->logs_tail = NULL;
  struct http_call_opts o = {.method = "POST",
                             .url = p->url,
                             .body = p->data ? p->data : "",
                             .body_len = p->len,
                             .content_type = "application/octet-stream",
                             .timeout_ms = 15000};
  fill_tls(a, &o);
  a->log_sent = p->sent;
  a->log_sent_arg = p->sent_arg;
  a->log_call = http_client_call(a->client, &o, NULL, log_posted, a);
  free(p->url);
  free(p->data);
  free(p);
}

void agent_send_logs(struct agent *a, const char *sub, const char *task_id,
                     const void *data, size_t len, bool last,
                     void (*sent)(void *arg), void *sent_arg) {
  const char *mgr = current_manager(a);
  if (!mgr || a->stopping) {
    if (sent)
      sent(sent_arg);
    return;
  }
  struct log_post *p = xcalloc(1, sizeof *p);
  p->sent = sent;
  p->sent_arg = sent_arg;
  p->url = xasprintf("https://%s/swarm/v1/logs/%s?task=%s%s", mgr, sub, task_id,
                     last ? "&last=1" : "");
  if (len) {
    p->data = xmalloc(len);
    memcpy(p->data, data, len);
  }
  p->len = len;
  if (a->logs_tail)
    a->logs_tail->next = p;
  else
    a->logs_head = p;
  a->logs_tail = p;
  send_next_log(a);
}

/* ---- one-off calls to the leader (agent_call) ---- */

struct agent_rpc {
  struct agent *a;
  struct http_call *call;
  agent_call_fn done;
  void *ud;
  struct agent_rpc *next;
};

static void rpc_unlink(struct agent_rpc *r) {
  for (struct agent_rpc **pp = &r->a->rpcs; *pp; pp = &(*pp)->next)
    if (*pp == r) {
      *pp = r->next;
      break;
    }
}

static void rpc_done(const struct http_result *res, void *ud) {
  struct agent_rpc *r = ud;
  rpc_unlink(r);
  cleanup_json json_t *body = NULL;
  sh_err err = {0};
  if (res->status == 0) {
    sh_error(&err, 503, "the managers cannot be reached: %s",
             res->error ? res->error : "no answer");
  } else {
    body = res->body_len ? json_loadb(res->body, res->body_len, 0, NULL) : NULL;
    if (res->status >= 300)
      sh_error(&err, res->status, "%s",
               jx_str(body, "message", "the manager refused the call"));
  }
  r->done(r->ud, err.status ? NULL : body, err.status ? &err : NULL);
  free(r);
}

static void rpcs_fail(struct agent *a) {
  while (a->rpcs) {
    struct agent_rpc *r = a->rpcs;
    a->rpcs = r->next;
    http_call_cancel(r->call);
    sh_err err = {0};
    sh_error(&err, 503, "this node is leaving the swarm");
    r->done(r->ud, NULL, &err);
    free(r);
  }
}

void agent_call(struct agent *a, const char *path, const json_t *body,
                agent_call_fn done, void *ud) {
  const char *mgr = current_manager(a);
  if (!mgr || a->stopping || !a->connected) {
    sh_err err = {0};
    sh_error(&err, 503,
             "this node is not connected to the swarm's managers right now");
    done(ud, NULL, &err);
    return;
  }
  cleanup_free char *b = jx_dump(body);
  cleanup_free char *url = xasprintf("https://%s%s", mgr, path);
  struct http_call_opts o = {.method = "POST",
                             .url = url,
                             .body = b,
                             .body_len = strlen(b),
                             .timeout_ms = 25000};
  fill_tls(a, &o);
  struct agent_rpc *r = xcalloc(1, sizeof *r);
  r->a = a;
  r->done = done;
  r->ud = ud;
  r->next = a->rpcs;
  a->rpcs = r;
  r->call = http_client_call(a->client, &o, NULL, rpc_done, r);
}
