/* Node sessions and heartbeats; node health on the leader. */
#include "manager/dispatcher.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/id.h"
#include "core/jcbor.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/util.h"
#include "http/server.h"
#include "manager/internal.h"
#include "manager/attach.h"
#include "manager/rootca.h"
#include "manager/orchtask.h"
#include "manager/mesh.h"
#include "manager/peers.h"
#include "manager/reports.h"
#include "manager/secrets.h"
#include "manager/services.h"
#include "raft/raftnode.h"
#include "store/store.h"

#include <sys/queue.h>

#define CHECK_INTERVAL_MS 250
#define STATUS_RETRIES 5

struct session {
  struct dispatcher *d;
  char node_id[ID_LEN + 1];
  char sid[ID_LEN + 1];
  struct http_req *req; /* the open stream; NULL once closed */
  int64_t last_mono;
  /* The peers snapshot this node's set was last made from (see peers.h):
   * the next change is sent against it. */
  json_t *peers_base;
  /* The assignments this node was last sent: task ID -> Version.Index
   * (a task's message is a function of the task, so an unchanged version
   * means nothing to send), and the secrets and configs with them. NULL
   * before the first (full) message, or after a reset. */
  json_t *tasks_sent;
  json_t *files_sent;
  json_t *desc; /* the Description it opened with, until started */
  /* The peers flush (dispatcher.peers_gen) that last sent it its peer and
   * mesh changes, or the one under way when it started. */
  uint64_t peers_gen;
  /* Its first messages (node, assignments, peers, mesh) went out: until
   * then the flushes leave it alone (see start_sessions). */
  bool started;
  /* Its agent speaks CBOR (it asked, "Encoding": "cbor", and the hello
   * says yes): its assignments go as CBOR frames (core/jcbor.h), its other
   * messages stay JSON lines, and its reports may come as CBOR. */
  bool cbor;
  TAILQ_ENTRY(session) link;
};

#define EACH_SESSION(s, d)                                                     \
  for (struct session *s = TAILQ_FIRST(&(d)->sessions); s;                     \
       s = TAILQ_NEXT(s, link))

struct dispatcher {
  struct manager *m;
  /* Oldest heartbeat first: a heartbeat moves its session to the tail, so
   * the expiry check looks only at the head (1,000 sessions walked four
   * times a second were a tenth of an idle leader's loop). */
  TAILQ_HEAD(, session) sessions;
  json_t *by_node; /* node ID -> the session (a pointer as an integer) */
  /* Sessions opened and not yet started: started a slice at a time. */
  uv_timer_t starter;
  uv_timer_t timer;
  bool timer_init;
  bool leader;
  int watch_id;
  /* The tasks whose assignment changed since the last flush, by node
   * (node ID -> {task ID -> true}); flushed once per loop turn (a slice
   * at a time: flush_dirty) so a burst of commits sends one message per
   * node, made from those tasks only. */
  json_t *dirty;
  uv_timer_t flush;
  int64_t flush_slice_ns;
  int closing;
  bool role_busy; /* a demotion's raft change is in flight */
  /* Nodes that must open a session before a deadline (mono ns), set when
   * this manager becomes leader: node ID -> deadline. */
  json_t *deadlines;
  /* The manager list the sessions were last sent (and a new one starts
   * with); a change of manager membership sends the new one to every
   * node. */
  json_t *managers;
  /* Tasks or nodes changed: peer sets are compared at the next peers
   * flush, PEERS_DELAY_MS later, so a burst (nodes coming back after a
   * failover) costs one computation, not one per change. */
  bool peers_dirty;
  uv_timer_t peers_timer;
  int64_t peers_cost_ns; /* the last flush's loop time, all its slices */
  /* The flush under way (NULL: none), a slice of sessions a turn, and
   * its number: a session that has it is done. */
  struct peers_flush *pf;
  uint64_t peers_gen;
  /* peers_snapshot as last computed (NULL: not yet): a new session starts
   * from it, and the next flush sends it what changed since. */
  json_t *peers_snap;
  /* The routing mesh's table as every session was last sent it. */
  json_t *mesh_sent;
  /* What a session start sends whole, encoded once for all of them (1,000
   * start at a new leader): the peers of peers_snap, and the mesh Reset
   * line of mesh_sent (mesh_line_of, held). */
  struct peers_text *peers_text;
  json_t *mesh_line_of;
  char *mesh_line;
  size_t mesh_line_len;
  /* The CA facts every node message carries, for cluster version
   * ca_facts_ver. */
  json_t *ca_facts;
  int64_t ca_facts_ver;
  struct reports *reports; /* the nodes' status reports (reports.h) */
};

static int64_t period_ns(struct dispatcher *d) {
  int64_t p = jx_int(store_cluster(d->m->store),
                     "Spec.Dispatcher.HeartbeatPeriod", 5 * NS_PER_SEC);
  return p > 0 ? p : 5 * NS_PER_SEC;
}

/* Node updates by the dispatcher (status, description, manager
 * reachability) compare-and-swap on Version.Index and retry, so they never
 * overwrite a concurrent user change (labels, availability). `sets` maps
 * dotted paths to new values. */
struct node_patch {
  struct dispatcher *d;
  char node_id[ID_LEN + 1];
  json_t *sets;
  int tries;
};

static void patch_run(struct node_patch *u);

static void patch_free(struct node_patch *u) {
  json_decref(u->sets);
  free(u);
}

static void patch_done(void *ud, int status, const sh_err *err) {
  struct node_patch *u = ud;
  if (status < 0 && err && strstr(err->msg, "update out of sequence") &&
      ++u->tries < STATUS_RETRIES && u->d) {
    patch_run(u);
    return;
  }
  patch_free(u);
}

static void patch_run(struct node_patch *u) {
  json_t *cur = store_get(u->d->m->store, STORE_NODE, u->node_id);
  if (!cur) {
    patch_free(u);
    return;
  }
  json_t *next = json_deep_copy(cur);
  const char *path;
  json_t *v;
  json_object_foreach(u->sets, path, v) {
    if (json_is_null(v) && !strchr(path, '.'))
      json_object_del(next, path); /* null removes a top-level key */
    else
      jx_set(next, path, json_deep_copy(v));
  }
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_NODE, next, jx_int(cur, "Version.Index", 0));
  sh_err err = {0};
  if (manager_propose(u->d->m, tx, patch_done, u, &err) < 0)
    patch_free(u);
}

/* Proposes the sets that change something (steals sets). */
static void patch_node(struct dispatcher *d, const char *node_id,
                       json_t *sets) {
  json_t *cur = store_get(d->m->store, STORE_NODE, node_id);
  const char *path;
  json_t *v;
  bool changes = false;
  json_object_foreach(sets, path, v) if (!json_equal(jx_get(cur, path), v))
      changes = true;
  /* Skip no-op writes: raft entries are not free, and every write bumps
   * the version a user may be about to update with. */
  if (!cur || !changes) {
    json_decref(sets);
    return;
  }
  struct node_patch *u = xcalloc(1, sizeof *u);
  u->d = d;
  snprintf(u->node_id, sizeof u->node_id, "%s", node_id);
  u->sets = sets;
  patch_run(u);
}

static void set_status(struct dispatcher *d, const char *node_id,
                       const char *state, const char *message, const char *addr,
                       const json_t *desc) {
  json_t *sets = json_pack("{s:s}", "Status.State", state);
  /* An empty message is left out (as Docker shows it) unless it clears
   * an old one. */
  json_t *cur = store_get(d->m->store, STORE_NODE, node_id);
  if (cur && strcmp(jx_str(cur, "Status.State", ""), state) != 0)
    log_info("node %s (%s) is %s%s%s", node_id,
             jx_str(cur, "Description.Hostname", "?"), state,
             *message ? ": " : "", message);
  if (*message || *jx_str(cur, "Status.Message", ""))
    json_object_set_new(sets, "Status.Message", json_string(message));
  if (addr && *addr)
    json_object_set_new(sets, "Status.Addr", json_string(addr));
  if (desc)
    json_object_set_new(sets, "Description", json_deep_copy(desc));
  patch_node(d, node_id, sets);
}

/* The leader's view of each manager's raft connectivity, kept in
 * ManagerStatus.Reachability so every manager shows the same. */
static void sync_reachability(struct dispatcher *d) {
  struct raftnode_member *mem = NULL;
  size_t n = 0;
  if (raftnode_configuration(d->m->raft, &mem, &n, NULL) < 0)
    return;
  json_t *nodes = store_list_by(d->m->store, STORE_MANAGER_NODES, "manager");
  size_t j;
  json_t *node;
  json_array_foreach(nodes, j, node) {
    uint64_t rid = (uint64_t)jx_int(node, "_RaftID", 0);
    /* Managers outside the configuration (gone before a
     * force-new-cluster, or not yet added) are unreachable. */
    const char *reach = "unreachable";
    for (size_t i = 0; i < n; i++) {
      if (mem[i].id != rid)
        continue;
      reach = mem[i].reach == RAFTNODE_REACHABLE     ? "reachable"
              : mem[i].reach == RAFTNODE_UNREACHABLE ? "unreachable"
                                                     : NULL;
    }
    if (reach)
      patch_node(d, jx_str(node, "ID", ""),
                 json_pack("{s:s}", "ManagerStatus.Reachability", reach));
  }
  json_decref(nodes);
  raftnode_members_free(mem, n);
}

/* A thousand nodes' sessions: found by node ID in a map, not a walk (a
 * burst of changes looks up every node's). */
static struct session *find_session(struct dispatcher *d, const char *node_id) {
  json_t *v = json_object_get(d->by_node, node_id);
  return v ? (struct session *)(intptr_t)json_integer_value(v) : NULL;
}

/* s->last_mono is now: at the tail, which keeps the list in its order. */
static void session_link(struct dispatcher *d, struct session *s) {
  TAILQ_INSERT_TAIL(&d->sessions, s, link);
  json_object_set_new(d->by_node, s->node_id,
                      json_integer((json_int_t)(intptr_t)s));
}

static void session_touch(struct dispatcher *d, struct session *s) {
  s->last_mono = clock_mono_ns();
  if (TAILQ_NEXT(s, link)) {
    TAILQ_REMOVE(&d->sessions, s, link);
    TAILQ_INSERT_TAIL(&d->sessions, s, link);
  }
}

static void session_unlink(struct dispatcher *d, struct session *s) {
  if (find_session(d, s->node_id) == s)
    json_object_del(d->by_node, s->node_id);
  TAILQ_REMOVE(&d->sessions, s, link);
}

/* Ends the session: closes its stream (if still open) and frees it. */
static void session_end(struct dispatcher *d, struct session *s) {
  session_unlink(d, s);
  if (s->req) {
    struct http_req *req = s->req;
    s->req = NULL;
    req->on_close = NULL;
    http_stream_end(req);
  }
  json_decref(s->peers_base);
  json_decref(s->tasks_sent);
  json_decref(s->files_sent);
  json_decref(s->desc);
  free(s);
}

static void stream_closed(struct http_req *req, void *ud) {
  struct session *s = ud;
  struct dispatcher *d = s->d;
  /* The node went away or reconnects; heartbeats on this session now fail
   * and the agent opens a new one. It must do so within the grace time of
   * its last heartbeat, or it goes down. */
  int64_t deadline = s->last_mono + period_ns(d) * HEARTBEAT_GRACE;
  json_object_set_new(d->deadlines, s->node_id, json_integer(deadline));
  s->req = NULL;
  session_unlink(d, s);
  json_decref(s->peers_base);
  json_decref(s->tasks_sent);
  json_decref(s->files_sent);
  json_decref(s->desc);
  free(s);
  http_req_release(req);
}

/* msg as one line of the session stream (newly allocated, *len bytes). */
static char *encode_line(const json_t *msg, size_t *len) {
  char *line = jx_dump(msg);
  size_t n = strlen(line);
  line = xrealloc(line, n + 2);
  line[n] = '\n';
  line[n + 1] = '\0';
  *len = n + 1;
  return line;
}

static void send_line(struct http_req *req, const json_t *msg) {
  size_t n;
  cleanup_free char *line = encode_line(msg, &n);
  http_stream_write(req, line, n);
}

/* A flush sends most sessions the same message (every node that holds
 * only ingress gets the same peer changes, every node the same mesh
 * changes): the last message sent is kept encoded, and an equal one is
 * not encoded again. Encoding was most of a flush's cost at 1,000
 * nodes. */
struct line_memo {
  json_t *msg;
  char *line;
  size_t len;
};

static void send_memo(struct http_req *req, json_t *msg, struct line_memo *m) {
  if (!m) {
    send_line(req, msg);
    return;
  }
  if (!m->msg || !json_equal(m->msg, msg)) {
    free(m->line);
    json_decref(m->msg);
    m->msg = json_incref(msg);
    m->line = encode_line(msg, &m->len);
  }
  http_stream_write(req, m->line, m->len);
}

static void memo_free(struct line_memo *m) {
  free(m->line);
  json_decref(m->msg);
}

void dispatcher_send(struct dispatcher *d, const char *node_id,
                     const json_t *msg) {
  struct session *s = find_session(d, node_id);
  if (s && s->req)
    send_line(s->req, msg);
}

void dispatcher_drop(struct dispatcher *d, const char *node_id) {
  struct session *s = find_session(d, node_id);
  if (s)
    session_end(d, s);
  json_object_del(d->deadlines, node_id);
}

/* What a node must know: every task assigned to it, as swarmkit's
 * assignment set, until the task is deleted from the store: tasks it
 * should run or stop, and those in history, whose (exited) containers the
 * node keeps until then, for `docker ps -a`, logs and inspect, as Docker
 * does. */
static bool task_for_agent(const json_t *t) {
  /* A global task names its node from the start; it is the node's only
   * once the scheduler assigned it (after the allocator). */
  return task_state(t) >= TS_ASSIGNED && !attachment_task(t);
}

/* rootca_node_facts (certificates parsed) once per cluster version, not
 * once per node message. */
static const json_t *ca_facts(struct dispatcher *d) {
  const json_t *cl = store_cluster(d->m->store);
  int64_t ver = jx_int(cl, "Version.Index", -1);
  if (!d->ca_facts || ver != d->ca_facts_ver) {
    json_decref(d->ca_facts);
    d->ca_facts = rootca_node_facts(cl);
    d->ca_facts_ver = ver;
  }
  return d->ca_facts;
}

/* The node's own object: its agent follows role changes (promote and
 * demote) from it. */
static void send_node(struct dispatcher *d, struct http_req *req,
                      const json_t *node) {
  /* CA: what makes a node renew now (ForceRotate, a certificate from
   * another issuer than the one wanted) and the root to trust. */
  json_t *msg = json_pack("{s:s, s:o, s:O}", "Type", "node", "Node",
                          store_public(node), "CA", ca_facts(d));
  /* Its ingress-sbox's endpoint, in a task attachment's shape. */
  const json_t *att = json_object_get(node, "_Ingress");
  const json_t *net =
      att ? store_get(d->m->store, STORE_NETWORK, jx_str(att, "Network", ""))
          : NULL;
  if (net)
    json_object_set_new(msg, "Ingress",
                        json_pack("{s:o, s:[s]}", "Network", store_public(net),
                                  "Addresses", jx_str(att, "Addr", "")));
  send_line(req, msg);
  json_decref(msg);
}

/* The registry credentials (`--with-registry-auth`) go with a task only
 * to its node and only while it may still pull (meant to run, not yet
 * started), as swarmkit's ContainerSpec.PullOptions. */
static void add_pull_auth(json_t *pub, const json_t *t) {
  const char *auth = services_pull_auth(jx_get(t, "Spec.ContainerSpec"));
  const json_t *spec = json_object_get(pub, "Spec");
  enum task_state want = task_desired(t);
  if (!auth || !json_is_object(json_object_get(spec, "ContainerSpec")) ||
      task_state(t) >= TS_RUNNING || (want > TS_RUNNING && want != TS_COMPLETE))
    return;
  /* The view's Spec may be the store's (store_view): copied on write. */
  json_t *nspec = json_copy((json_t *)spec);
  json_t *cs = json_copy(json_object_get(spec, "ContainerSpec"));
  json_object_set_new(cs, "PullOptions",
                      json_pack("{s:s}", "RegistryAuth", auth));
  json_object_set_new(nspec, "ContainerSpec", cs);
  json_object_set_new(pub, "Spec", nspec);
}

/* A task as its node gets it: read only, encoded and let go. */
static json_t *task_message(const json_t *t) {
  json_t *pub = store_view(t);
  /* The node publishes host-mode ports itself (swarmkit's
   * Task.Endpoint). */
  const json_t *ep = json_object_get(t, "_EndpointSpec");
  if (ep)
    json_object_set_new(pub, "Endpoint", json_pack("{s:O}", "Spec", ep));
  add_pull_auth(pub, t);
  return pub;
}

/* Whether the task names secrets or configs (secrets_for_tasks). */
static bool names_files(const json_t *t) {
  return json_array_size(jx_get(t, "Spec.ContainerSpec.Secrets")) > 0 ||
         json_array_size(jx_get(t, "Spec.ContainerSpec.Configs")) > 0;
}

/* The secrets and configs the node's tasks need, from the whole list. */
static json_t *node_files(struct store *st, const char *node_id) {
  cleanup_json json_t *tasks = store_list_by(st, STORE_TASKS_BY_NODE, node_id);
  cleanup_json json_t *mine = json_array();
  size_t i;
  json_t *t;
  json_array_foreach(tasks, i, t) if (task_for_agent(t))
      json_array_append(mine, t);
  return secrets_for_tasks(st, mine);
}

/* Only the changed tasks: Set and Del, and whether the files may have
 * changed. */
static void changes_of(struct store *st, const char *node_id,
                       const json_t *changed, json_t *sent, json_t *set,
                       json_t *del, bool *files_dirty) {
  const char *id;
  json_t *v;
  json_object_foreach((json_t *)changed, id, v) {
    json_t *t = store_get(st, STORE_TASK, id);
    bool mine =
        t && strcmp(jx_str(t, "NodeID", ""), node_id) == 0 && task_for_agent(t);
    json_t *was = json_object_get(sent, id);
    if (mine) {
      json_int_t ver = jx_int(t, "Version.Index", 0);
      if (!was || json_integer_value(was) != ver) {
        json_array_append_new(set, task_message(t));
        json_object_set_new(sent, id, json_integer(ver));
      }
      if (names_files(t))
        *files_dirty = true;
    } else if (was) {
      json_array_append_new(del, json_string(id));
      json_object_del(sent, id);
      *files_dirty = true; /* what it named is gone from the store */
    }
  }
}

/* Every task of the node: Set and Del against *tasks_sent (NULL: all of
 * them, a whole list), which is replaced; returns the node's files. */
static json_t *changes_by_walk(struct store *st, const char *node_id,
                               json_t **tasks_sent, json_t *set, json_t *del) {
  bool full = *tasks_sent == NULL;
  cleanup_json json_t *tasks = store_list_by(st, STORE_TASKS_BY_NODE, node_id);
  cleanup_json json_t *mine = json_array(); /* store objects, for the files */
  json_t *sent = json_object();
  size_t i;
  json_t *t;
  json_array_foreach(tasks, i, t) {
    if (!task_for_agent(t))
      continue;
    const char *id = jx_str(t, "ID", "");
    json_int_t v = jx_int(t, "Version.Index", 0);
    json_array_append(mine, t);
    json_object_set_new(sent, id, json_integer(v));
    json_t *was = full ? NULL : json_object_get(*tasks_sent, id);
    if (!was || json_integer_value(was) != v)
      json_array_append_new(set, task_message(t));
  }
  const char *id;
  json_t *v;
  json_object_foreach(full ? NULL : *tasks_sent, id, v) {
    if (!json_object_get(sent, id))
      json_array_append_new(del, json_string(id));
  }
  json_decref(*tasks_sent);
  *tasks_sent = sent;
  /* With the tasks, the secrets and configs they need (only those): the
   * node keeps nothing else, so one that no task needs any more is gone
   * from it with this message. */
  return secrets_for_tasks(st, mine);
}

json_t *dispatcher_assignments(struct store *st, const char *node_id,
                               const json_t *changed, json_t **tasks_sent,
                               json_t **files_sent) {
  bool full = *tasks_sent == NULL;
  json_t *set = json_array();
  json_t *del = json_array();
  json_t *files = NULL;
  if (!full && changed) {
    bool files_dirty = false;
    changes_of(st, node_id, changed, *tasks_sent, set, del, &files_dirty);
    files = files_dirty ? node_files(st, node_id) : json_incref(*files_sent);
  } else {
    files = changes_by_walk(st, node_id, tasks_sent, set, del);
  }
  bool files_changed = full || !json_equal(files, *files_sent);
  json_t *msg = NULL;
  if (full)
    msg = json_pack("{s:s, s:O}", "Type", "assignments", "Tasks", set);
  else if (json_array_size(set) || json_array_size(del) || files_changed)
    msg = json_pack("{s:s, s:O, s:O}", "Type", "assignment_changes", "Set", set,
                    "Del", del);
  if (msg && files_changed) {
    json_object_set(msg, "Secrets", json_object_get(files, "Secrets"));
    json_object_set(msg, "Configs", json_object_get(files, "Configs"));
  }
  json_decref(set);
  json_decref(del);
  json_decref(*files_sent);
  *files_sent = files;
  return msg;
}

static void send_assignments(struct dispatcher *d, struct session *s,
                             const json_t *changed) {
  json_t *msg = dispatcher_assignments(d->m->store, s->node_id, changed,
                                       &s->tasks_sent, &s->files_sent);
  size_t n = 0;
  cleanup_free char *frame = msg && s->cbor ? jcbor_frame(msg, &n) : NULL;
  if (frame)
    http_stream_write(s->req, frame, n);
  else if (msg)
    send_line(s->req, msg);
  json_decref(msg);
}

/* The routing mesh's table, the VIPs, the DNS names and the ingress
 * sandboxes, keyed (see mesh.h). */
static json_t *mesh_now(struct dispatcher *d) {
  return mesh_keyed(d->m->store);
}

/* {"Type": "mesh", "Reset", "Set": {key: value}, "Del": [key]}: all of it
 * with Reset on a new session (send_reset_lines), then what changed. */
static json_t *mesh_msg(bool reset, const json_t *set, const json_t *del) {
  return json_pack("{s:s, s:b, s:O, s:O}", "Type", "mesh", "Reset", reset,
                   "Set", set, "Del", del);
}

/* Sends the node what changed in its peer set since its base (a session
 * starts with the whole set: send_reset_lines). changed:
 * peers_changed(prev, snap), used when the base is prev. */
static void send_peers(struct session *s, json_t *snap, const json_t *prev,
                       const json_t *changed, struct line_memo *memo) {
  const json_t *base = s->peers_base;
  json_t *diff = peers_node_diff(
      base, snap, base && base == prev ? changed : NULL, s->node_id);
  if (diff) {
    json_object_set_new(diff, "Type", json_string("peers"));
    json_object_set_new(diff, "Reset", json_false());
    send_memo(s->req, diff, memo);
    json_decref(diff);
  }
  json_decref(s->peers_base);
  s->peers_base = json_incref(snap);
}

#define PEERS_DELAY_MS 50
#define PEERS_DELAY_MAX_MS 1000

/* A flush's part of one loop turn. A flush is a message (and a write)
 * to each node with news: at 1,000 nodes, the tasks of 16 services
 * placed at once made a flush of 450 ms in one callback, which with the
 * commits applied in the same turn held the leader's loop 712 ms, past
 * the election timeout: the followers elected another leader mid-ramp.
 * The peers flush goes in slices of the same length. SHOAL_FLUSH_SLICE_US
 * from the environment sets it (a test's small cluster takes several
 * turns with 0: one node a turn). */
#define FLUSH_SLICE_NS (20 * NS_PER_MS)

/* A whole number of at least min from the environment, or dflt. */
static long long env_number(const char *name, long long min, long long dflt) {
  const char *v = getenv(name);
  char *end = NULL;
  long long n = v ? strtoll(v, &end, 10) : 0;
  return v && *v && !*end && n >= min ? n : dflt;
}

static int64_t flush_slice_ns(void) {
  long long us = env_number("SHOAL_FLUSH_SLICE_US", 0, -1);
  return us >= 0 ? us * 1000 : FLUSH_SLICE_NS;
}

static void flush_dirty(uv_timer_t *t) {
  struct dispatcher *d = t->data;
  int64_t t0 = clock_mono_ns();
  const char *id;
  json_t *v;
  void *tmp;
  json_object_foreach_safe(d->dirty, tmp, id, v) {
    struct session *s = find_session(d, id);
    if (s && s->req && s->started)
      send_assignments(d, s, v);
    json_object_del(d->dirty, id);
    if (json_object_size(d->dirty) &&
        clock_mono_ns() - t0 > d->flush_slice_ns) {
      /* The rest in a later turn (not 0 ms: see start_sessions). */
      uv_timer_start(&d->flush, flush_dirty, 1, 0);
      return;
    }
  }
}

/* peers_snapshot, computed once per burst of changes. */
static json_t *peers_now(struct dispatcher *d) {
  if (!d->peers_snap)
    d->peers_snap = peers_snapshot(d->m->store);
  return d->peers_snap;
}

/* What one peers flush's slices share: the snapshots and their
 * comparison, the mesh's change, and the last lines encoded. */
struct peers_flush {
  json_t *snap, *prev, *changed; /* prev, changed: NULL on the first */
  json_t *mesh_msg;              /* NULL: the mesh did not change */
  struct line_memo memo, mesh_memo;
  int64_t cost_ns; /* the loop time of the slices so far */
};

static void peers_flush_begin(struct dispatcher *d) {
  struct peers_flush *pf = xcalloc(1, sizeof *pf);
  d->pf = pf;
  d->peers_gen++;
  /* One comparison of the snapshots serves every session whose base is
   * the last one: each looks only at the keys that changed on the
   * networks it holds. */
  pf->prev = STEAL_POINTER(&d->peers_snap);
  pf->snap = json_incref(peers_now(d));
  pf->changed = pf->prev ? peers_changed(pf->prev, pf->snap) : NULL;
  /* Every session holds d->mesh_sent (sent whole at its start, then
   * each change): one diff serves them all. A session that starts
   * before the flush reaches it gets the new table whole. */
  json_t *mesh = mesh_now(d);
  cleanup_json json_t *diff =
      d->mesh_sent ? mesh_diff(d->mesh_sent, mesh) : NULL;
  if (diff)
    pf->mesh_msg = mesh_msg(false, json_object_get(diff, "Set"),
                            json_object_get(diff, "Del"));
  json_decref(d->mesh_sent);
  d->mesh_sent = mesh;
}

static void peers_flush_end(struct dispatcher *d) {
  struct peers_flush *pf = STEAL_POINTER(&d->pf);
  if (!pf)
    return;
  memo_free(&pf->memo);
  memo_free(&pf->mesh_memo);
  json_decref(pf->snap);
  json_decref(pf->prev);
  json_decref(pf->changed);
  json_decref(pf->mesh_msg);
  free(pf);
}

static void flush_peers(uv_timer_t *t);

/* A flush writes to every session: at 1,000 nodes coming back, one each
 * PEERS_DELAY_MS was a third of the leader's loop. Waiting four times the
 * last flush's cost keeps flushes to a fifth of it. */
static void schedule_peers(struct dispatcher *d) {
  int64_t wait_ms = 4 * d->peers_cost_ns / NS_PER_MS;
  if (wait_ms < PEERS_DELAY_MS)
    wait_ms = PEERS_DELAY_MS;
  if (wait_ms > PEERS_DELAY_MAX_MS)
    wait_ms = PEERS_DELAY_MAX_MS;
  if (!uv_is_active((uv_handle_t *)&d->peers_timer))
    uv_timer_start(&d->peers_timer, flush_peers, (uint64_t)wait_ms, 0);
}

/* Each session's peer and mesh changes, a slice of sessions a loop turn
 * as flush_dirty does: while 1,000 nodes joined, one flush to all of
 * them took 60-270 ms of a turn, growing with the sessions. A session is
 * done once it has the flush's number; the list is walked again from
 * its head each slice (heartbeats reorder it, sessions come and go). */
static void flush_peers(uv_timer_t *t) {
  struct dispatcher *d = t->data;
  if (!d->pf) {
    if (!d->peers_dirty)
      return;
    d->peers_dirty = false;
    peers_flush_begin(d);
  }
  struct peers_flush *pf = d->pf;
  int64_t t0 = clock_mono_ns();
  bool sent = false;
  EACH_SESSION(s, d) {
    if (!s->req || !s->started || s->peers_gen == d->peers_gen)
      continue;
    if (sent && clock_mono_ns() - t0 > d->flush_slice_ns) {
      /* The rest in a later turn (not 0 ms: see start_sessions). */
      pf->cost_ns += clock_mono_ns() - t0;
      uv_timer_start(&d->peers_timer, flush_peers, 1, 0);
      return;
    }
    send_peers(s, pf->snap, pf->prev, pf->changed, &pf->memo);
    if (pf->mesh_msg)
      send_memo(s->req, pf->mesh_msg, &pf->mesh_memo);
    s->peers_gen = d->peers_gen;
    sent = true;
  }
  d->peers_cost_ns = pf->cost_ns + clock_mono_ns() - t0;
  peers_flush_end(d);
  if (d->peers_dirty)
    schedule_peers(d);
}

static void mark_peers(struct dispatcher *d) {
  d->peers_dirty = true;
  if (!d->pf) /* else the flush under way schedules the next at its end */
    schedule_peers(d);
}

static void mark_dirty(struct dispatcher *d, const json_t *task) {
  const char *node = jx_str(task, "NodeID", "");
  if (!*node)
    return;
  json_t *ids = json_object_get(d->dirty, node);
  if (!ids) {
    ids = json_object();
    json_object_set_new(d->dirty, node, ids);
  }
  json_object_set_new(ids, jx_str(task, "ID", ""), json_true());
  if (!uv_is_active((uv_handle_t *)&d->flush))
    uv_timer_start(&d->flush, flush_dirty, 0, 0);
}

/* Every node follows manager membership: without it, a node that joined
 * before the later managers knows only the early ones and is stranded
 * when leadership moves to a manager it never heard of. */
static void send_managers(struct dispatcher *d) {
  json_t *now = manager_addresses(d->m);
  if (d->managers && json_equal(now, d->managers)) {
    json_decref(now);
    return;
  }
  json_decref(d->managers);
  d->managers = now;
  json_t *msg = json_pack("{s:s, s:O}", "Type", "managers", "Managers", now);
  EACH_SESSION(s, d) {
    if (s->req)
      send_line(s->req, msg);
  }
  json_decref(msg);
}

static bool same_at(const json_t *a, const json_t *b, const char *path) {
  const json_t *x = jx_get(a, path), *y = jx_get(b, path);
  return (!x && !y) || (x && y && json_equal(x, y));
}

/* Sending the task back for each report was three whole tasks per task
 * started, each made, sent and parsed by the node. A state at or before
 * assigned is the managers' and is news. */
bool dispatcher_task_news(const json_t *old, const json_t *cur) {
  if (!old || !cur || task_state(cur) <= TS_ASSIGNED ||
      task_state(old) < TS_ASSIGNED ||
      json_object_size(old) != json_object_size(cur))
    return true;
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)cur, k, v) {
    if (!strcmp(k, "Status") || !strcmp(k, "Version") ||
        !strcmp(k, "UpdatedAt"))
      continue;
    const json_t *o = json_object_get(old, k);
    if (o != v && (!o || !json_equal(o, v)))
      return true;
  }
  return false;
}

bool dispatcher_change_news(const struct store_change *c) {
  if (!c->status_only ||
      json_object_size(c->old_obj) != json_object_size(c->new_obj))
    return dispatcher_task_news(c->old_obj, c->new_obj);
  /* What dispatcher_task_news decides before its walk, which would find
   * every other value the old version's. */
  return task_state(c->new_obj) <= TS_ASSIGNED ||
         task_state(c->old_obj) < TS_ASSIGNED;
}

/* Whether the CA facts every node hears changed: ForceRotate, the root,
 * or the rotation under way. */
static bool ca_changed(const struct store_change *ch) {
  if (!ch->new_obj)
    return false;
  return !ch->old_obj ||
         !same_at(ch->old_obj, ch->new_obj, "Spec.CAConfig.ForceRotate") ||
         !same_at(ch->old_obj, ch->new_obj, "TLSInfo.TrustRoot") ||
         !same_at(ch->old_obj, ch->new_obj, "_RootRotation.CACert");
}

/* Every session hears its node again (the CA facts changed). */
static void resend_nodes(struct dispatcher *d) {
  EACH_SESSION(s, d) {
    json_t *node = store_get(d->m->store, STORE_NODE, s->node_id);
    if (s->req && s->started && node)
      send_node(d, s->req, node);
  }
}

/* A task is in the peer sets and the mesh table only while assigned to
 * running (peers.c present(), mesh.c serving()). */
static bool in_peers(const json_t *t) {
  enum task_state st = t ? task_state(t) : TS_NEW;
  return st >= TS_ASSIGNED && st <= TS_RUNNING;
}

/* Whether a task change can change a peer set or the mesh table (both
 * are computed over every task): most status steps (accepted,
 * preparing, starting) cannot. */
static bool task_moves_peers(const struct store_change *c) {
  const json_t *old = c->old_obj, *cur = c->new_obj;
  bool was = in_peers(old), is = in_peers(cur);
  if (!was && !is)
    return false;
  /* No network, no endpoint: such a task is in no peer set or table. */
  if (json_array_size(json_object_get(old, "NetworksAttachments")) == 0 &&
      json_array_size(json_object_get(cur, "NetworksAttachments")) == 0)
    return false;
  if (was != is)
    return true;
  /* A status report's version keeps every other value (status_only). */
  bool kept = c->status_only ||
              (same_at(old, cur, "NodeID") &&
               same_at(old, cur, "NetworksAttachments") &&
               same_at(old, cur, "ServiceID") && same_at(old, cur, "Name") &&
               same_at(old, cur, "DesiredState"));
  return !kept ||
         (task_state(old) == TS_RUNNING) != (task_state(cur) == TS_RUNNING);
}

/* Whether a node change can change a peer set or the mesh table: what
 * they read of a node is its state, address, hostname and ingress
 * sandbox (a heartbeat-only or label change reads none). */
static bool node_moves_peers(const json_t *old, const json_t *cur) {
  return !old || !cur || !same_at(old, cur, "Status.State") ||
         !same_at(old, cur, "Status.Addr") ||
         !same_at(old, cur, "Description.Hostname") ||
         !same_at(old, cur, "_Ingress");
}

/* Whether a service has a part in the mesh table, VIPs or DNS names: an
 * address, a published port or a network. */
static bool service_in_mesh(const json_t *svc) {
  return svc &&
         (json_array_size(jx_get(svc, "Endpoint.VirtualIPs")) > 0 ||
          json_array_size(jx_get(svc, "Endpoint.Ports")) > 0 ||
          json_array_size(jx_get(svc, "Spec.TaskTemplate.Networks")) > 0);
}

/* Whether a service change can change the mesh: what mesh.c reads of a
 * service. Creating a hundred services on no network recomputed the whole
 * ingress peer set (an endpoint per node) once each; a scale reads none. */
static bool service_moves_peers(const json_t *old, const json_t *cur) {
  if (!service_in_mesh(old) && !service_in_mesh(cur))
    return false;
  return !old || !cur || !same_at(old, cur, "Endpoint") ||
         !same_at(old, cur, "Spec.Name") || !same_at(old, cur, "Spec.Labels") ||
         !same_at(old, cur, "Spec.EndpointSpec") ||
         !same_at(old, cur, "Spec.TaskTemplate.Networks");
}

static void on_store_change(const struct store_change *ch, size_t n,
                            uint64_t index, void *ud) {
  struct dispatcher *d = ud;
  if (!d->leader)
    return;
  if (n == 0) { /* restore: everything may have changed */
    mark_peers(d);
    EACH_SESSION(s, d) {
      /* The whole list again: the node's view restarts from it. */
      json_decref(s->tasks_sent);
      s->tasks_sent = NULL;
      json_object_set_new(d->dirty, s->node_id, json_object());
    }
    if (!uv_is_active((uv_handle_t *)&d->flush))
      uv_timer_start(&d->flush, flush_dirty, 0, 0);
    return;
  }
  bool nodes_changed = false, managers_changed = false;
  for (size_t i = 0; i < n; i++) {
    if (ch[i].kind == STORE_NODE)
      nodes_changed = true;
    /* The manager list is made from the nodes' ManagerStatus: a status
     * report or a heartbeat's certificate facts leave it as it was. */
    if (ch[i].kind == STORE_NODE &&
        !same_at(ch[i].old_obj, ch[i].new_obj, "ManagerStatus"))
      managers_changed = true;
    if (ch[i].kind == STORE_CLUSTER && ca_changed(&ch[i]))
      resend_nodes(d);
    if (ch[i].kind == STORE_CLUSTER)
      nodes_changed = managers_changed = true; /* a rotation may be complete
                                                  already */
    if ((ch[i].kind == STORE_NODE &&
         node_moves_peers(ch[i].old_obj, ch[i].new_obj)) ||
        (ch[i].kind == STORE_SERVICE &&
         service_moves_peers(ch[i].old_obj, ch[i].new_obj)) ||
        (ch[i].kind == STORE_TASK && task_moves_peers(&ch[i])))
      mark_peers(d);
    if (ch[i].kind == STORE_NODE && ch[i].new_obj) {
      struct session *s = find_session(d, ch[i].id);
      if (s && s->req && s->started)
        send_node(d, s->req, ch[i].new_obj);
    }
    if (ch[i].kind != STORE_TASK || !dispatcher_change_news(&ch[i]))
      continue;
    if (ch[i].old_obj)
      mark_dirty(d, ch[i].old_obj);
    if (ch[i].new_obj)
      mark_dirty(d, ch[i].new_obj);
  }
  if (managers_changed)
    send_managers(d);
  if (nodes_changed)
    rootca_reconcile(d->m);
}

/* Task status reports go through the queue in reports.c. Before it,
 * every node's report was an entry of whole tasks with a version check
 * each: a thousand nodes starting tasks made thousands of entries a
 * second, and retries on conflicts. */

/* A status entry carries at most this many reports; the others wait for
 * the next entry, and their requests for the last one. When 100 nodes came
 * back, the reports on their 10,000 old tasks made entries of 600 KB whose
 * apply held every manager's loop for 250-530 ms, and followers stood
 * for election. */
#define REPORTS_PER_ENTRY 2000

/* Status entries in flight at once, the ones beside the first only
 * while a backlog of this many entries' worth waits (reports.h). On
 * 1,000 simulated nodes starting 100,000 tasks, one at a time let the
 * backlog reach 18,000-46,000 reports and `service ls` counted the last
 * tasks running 5.0-5.3 s after the nodes reported them (four runs);
 * this way 3.3-5.0 s (four runs interleaved with those), the ramp
 * itself within its noise. Several in flight whenever a slot was free
 * was worse: the reports stopped waiting together, so a task's
 * preparing, starting and running went in separate ops (141,000-160,000
 * ops for the ramp against 122,000), every manager applied them all, and
 * the ramp took 15.2-16.3 s against 12.2-13.6. */
#define REPORT_ENTRIES_IN_FLIGHT 4

/* REPORTS_PER_ENTRY, or SHOAL_REPORTS_PER_ENTRY from the environment (a
 * test's small cluster makes many parts with a small one). */
static size_t reports_per_entry(void) {
  return (size_t)env_number("SHOAL_REPORTS_PER_ENTRY", 1, REPORTS_PER_ENTRY);
}

static int reports_propose(void *ud, struct store_tx *tx, reports_done_fn done,
                           void *done_ud, sh_err *err) {
  return manager_propose(ud, tx, done, done_ud, err);
}

static void reports_answer(void *waiter, int status, const sh_err *err) {
  if (status < 0)
    http_respond_error(waiter, err->status, err->msg);
  else
    http_respond_json(waiter, 200, "{}");
}

int dispatcher_report_check(const json_t *body, sh_err *err) {
  json_t *ups = json_object_get(body, "Updates");
  if (!json_is_array(ups))
    return sh_error(err, 400, "Updates must be an array");
  size_t i;
  json_t *u;
  /* A status nested deeper than a snapshot holds would go through raft
   * and then stop every manager's snapshots while its task lives. */
  json_array_foreach(ups, i, u) {
    json_t *status = json_object_get(u, "Status");
    if (json_is_object(status) && !store_field_fits(status))
      return sh_error(err, 400,
                      "invalid status of task %.64s: nested too deep for "
                      "the store",
                      jx_str(u, "ID", ""));
  }
  return 0;
}

void dispatcher_task_status(struct dispatcher *d, struct http_req *req,
                            const char *node_id) {
  if (!d->leader)
    return http_respond_error(req, 503, RAFTNODE_NO_LEADER_MSG);
  cleanup_json json_t *body = NULL;
  sh_err err = {0};
  /* CBOR from an agent whose session said so, JSON from the others. */
  if (jcbor_parse_object(req->body, req->body_len, &body, &err) < 0 ||
      dispatcher_report_check(body, &err) < 0)
    return http_respond_error(req, 400, err.msg);
  json_t *ups = json_object_get(body, "Updates");
  size_t i;
  json_t *u;
  json_array_foreach(ups, i, u) {
    const char *id = jx_str(u, "ID", NULL);
    json_t *status = json_object_get(u, "Status");
    if (!id || !*id || !json_is_object(status))
      continue; /* nothing a task could take */
    /* What the store would not record now is left out (the entry's
     * apply decides again, on the store as it is then). */
    json_t *cur = store_get(d->m->store, STORE_TASK, id);
    if (!cur || strcmp(jx_str(cur, "NodeID", ""), node_id) != 0 ||
        !task_status_moves(cur, status))
      continue;
    reports_put(d->reports, node_id, id, json_incref(status));
  }
  reports_wait(d->reports, req);
}

/* The loop time a slice of session starts may take before the loop
 * turns (heartbeats, raft) and the next slice. */
#define START_SLICE_NS (20 * NS_PER_MS)

static void reset_lines_drop(struct dispatcher *d) {
  peers_text_free(STEAL_POINTER(&d->peers_text));
  json_decref(STEAL_POINTER(&d->mesh_line_of));
  free(STEAL_POINTER(&d->mesh_line));
}

/* The node's whole peer set and the whole mesh, each with Reset (the node
 * may hold entries from before), from the lines every start shares. */
static void send_reset_lines(struct dispatcher *d, struct session *s) {
  json_t *snap = peers_now(d);
  if (!peers_text_of(d->peers_text, snap)) {
    peers_text_free(d->peers_text);
    d->peers_text = peers_text_new(snap);
  }
  size_t n;
  cleanup_free char *line = peers_text_reset(d->peers_text, s->node_id, &n);
  http_stream_write(s->req, line, n);
  json_decref(s->peers_base);
  s->peers_base = json_incref(snap);
  s->peers_gen = d->peers_gen; /* a flush under way has nothing for it */
  if (!d->mesh_sent)
    d->mesh_sent = mesh_now(d);
  if (d->mesh_line_of != d->mesh_sent) {
    free(d->mesh_line);
    json_decref(d->mesh_line_of);
    cleanup_json json_t *none = json_array();
    cleanup_json json_t *msg = mesh_msg(true, d->mesh_sent, none);
    d->mesh_line = encode_line(msg, &d->mesh_line_len);
    d->mesh_line_of = json_incref(d->mesh_sent);
  }
  http_stream_write(s->req, d->mesh_line, d->mesh_line_len);
}

static void start_session(struct dispatcher *d, struct session *s) {
  s->started = true;
  json_t *node = store_get(d->m->store, STORE_NODE, s->node_id);
  if (node)
    send_node(d, s->req, node);
  send_assignments(d, s, NULL);
  send_reset_lines(d, s);
  /* A node that cannot run containers says why: its status message shows
   * it, and the scheduler places nothing there. */
  cleanup_json json_t *desc = STEAL_POINTER(&s->desc);
  set_status(d, s->node_id, "ready", jx_str(desc, "_RuntimeError", ""),
             s->req->peer_addr, desc);
}

static void start_sessions(uv_timer_t *t) {
  struct dispatcher *d = t->data;
  if (!d->leader)
    return;
  int64_t end = clock_mono_ns() + START_SLICE_NS;
  bool more = false;
  EACH_SESSION(s, d) {
    if (s->started || !s->req)
      continue;
    if (clock_mono_ns() > end) {
      more = true;
      break;
    }
    start_session(d, s);
  }
  /* Not 0: libuv (1.44) runs a timer re-armed with 0 from its own
   * callback again in the same turn, which would undo the slicing. */
  if (more)
    uv_timer_start(&d->starter, start_sessions, 1, 0);
}

void dispatcher_session(struct dispatcher *d, struct http_req *req,
                        const char *node_id) {
  if (!d->leader) {
    /* Point the node at the leader: it need not try every manager. */
    const char *leader = manager_leader_addr(d->m);
    json_t *body = json_pack("{s:s}", "message", RAFTNODE_NO_LEADER_MSG);
    if (leader && *leader)
      json_object_set_new(body, "Leader", json_string(leader));
    cleanup_free char *out = jx_dump(body);
    json_decref(body);
    return http_respond_json(req, 503, out);
  }
  json_t *node = store_get(d->m->store, STORE_NODE, node_id);
  if (!node)
    return http_respond_error(req, 404, "node not found");
  cleanup_json json_t *body = NULL;
  sh_err err = {0};
  if (req->body_len > 0 &&
      jx_parse_object(req->body, req->body_len, &body, &err) < 0)
    return http_respond_error(req, 400, err.msg);

  struct session *old = find_session(d, node_id);
  if (old)
    session_end(d, old);
  struct session *s = xcalloc(1, sizeof *s);
  s->d = d;
  snprintf(s->node_id, sizeof s->node_id, "%s", node_id);
  id_new(s->sid);
  s->req = req;
  s->cbor = strcmp(jx_str(body, "Encoding", ""), "cbor") == 0;
  s->last_mono = clock_mono_ns();
  session_link(d, s);
  json_object_del(d->deadlines, node_id);
  req->on_close = stream_closed;
  req->on_close_ud = s;

  http_stream_begin(req, 200, "application/json", NULL);
  /* Addr: how the manager sees the node, its address when it advertised
   * none (workers). */
  /* DataPathPort: the cluster's VXLAN port. */
  const json_t *cl = store_cluster(d->m->store);
  if (!d->managers)
    d->managers = manager_addresses(d->m);
  json_t *hello = json_pack(
      "{s:s, s:s, s:s, s:I, s:O, s:s, s:I}", "Type", "session", "SessionID",
      s->sid, "NodeID", node_id, "HeartbeatPeriod", (json_int_t)period_ns(d),
      "Managers", d->managers, "Addr", req->peer_addr, "DataPathPort",
      (json_int_t)jx_int(cl, "DataPathPort", 4789));
  if (s->cbor)
    json_object_set_new(hello, "Encoding", json_string("cbor"));
  /* Ingress: every node shows it in `network ls`, as on Docker. */
  json_t *nets = store_list(d->m->store, STORE_NETWORK);
  size_t ni;
  json_t *net;
  json_array_foreach(nets, ni, net) {
    if (jx_bool(net, "Spec.Ingress", false))
      json_object_set_new(hello, "Ingress", store_public(net));
  }
  json_decref(nets);
  send_line(req, hello);
  json_decref(hello);
  /* The rest (its whole assignment list, peer set and mesh table: what a
   * thousand nodes opening at once after a failover would spend seconds
   * of one loop turn on, starving raft's heartbeats) in slices. */
  json_t *desc = body ? json_object_get(body, "Description") : NULL;
  s->desc = json_is_object(desc) ? json_incref(desc) : NULL;
  if (!uv_is_active((uv_handle_t *)&d->starter))
    uv_timer_start(&d->starter, start_sessions, 0, 0);
}

/* TLSInfo as a node reports it: three strings, nothing else. */
static bool valid_tls_info(const json_t *tls) {
  if (!json_is_object(tls) || json_object_size(tls) > 3)
    return false;
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)tls, k, v) {
    if (!json_is_string(v) ||
        (strcmp(k, "TrustRoot") != 0 && strcmp(k, "CertIssuerSubject") != 0 &&
         strcmp(k, "CertIssuerPublicKey") != 0))
      return false;
  }
  return true;
}

void dispatcher_heartbeat(struct dispatcher *d, struct http_req *req,
                          const char *node_id) {
  if (!d->leader)
    return http_respond_error(req, 503, RAFTNODE_NO_LEADER_MSG);
  cleanup_json json_t *body = NULL;
  sh_err err = {0};
  if (jx_parse_object(req->body, req->body_len, &body, &err) < 0)
    return http_respond_error(req, 400, err.msg);
  struct session *s = find_session(d, node_id);
  const char *sid = jx_str(body, "SessionID", "");
  if (!s || strcmp(s->sid, sid) != 0)
    return http_respond_error(req, 404, "session invalid");
  session_touch(d, s);
  /* The node's certificate facts after a renewal or a new root: a root
   * rotation completes once every node reports the new issuer. */
  json_t *tls = json_object_get(body, "TLSInfo");
  if (valid_tls_info(tls))
    patch_node(d, node_id, json_pack("{s:O}", "Description.TLSInfo", tls));
  char out[64];
  snprintf(out, sizeof out, "{\"Period\":%lld}", (long long)period_ns(d));
  http_respond_json(req, 200, out);
}

void dispatcher_leave(struct dispatcher *d, struct http_req *req,
                      const char *node_id) {
  struct session *s = find_session(d, node_id);
  if (s)
    session_end(d, s);
  json_object_del(d->deadlines, node_id);
  if (d->leader) {
    set_status(d, node_id, "down", "node left the swarm", NULL, NULL);
    /* It wipes its identity: nothing may come back with its certificate. */
    struct store_tx *tx = store_tx_new();
    manager_tx_node_removed(d->m, tx, node_id);
    sh_err err = {0};
    manager_propose(d->m, tx, NULL, NULL, &err);
  }
  http_respond_json(req, 200, "{}");
}

/* swarmkit's role manager: a node demoted to worker that is still a raft
 * member is taken out of raft (a leader hands leadership over first), then
 * loses its manager status; its agent sees that and stops its manager. */
static void demoted_removed(void *ud, int status, const sh_err *err) {
  struct node_patch *u = ud;
  if (status < 0 || !u->d) {
    patch_free(u);
    return;
  }
  u->d->role_busy = false;
  patch_run(u);
}

static void leadership_handed(void *ud, int status, const sh_err *err) {
  struct dispatcher *d = ud;
  d->role_busy = false;
}

static void reconcile_roles(struct dispatcher *d) {
  if (d->role_busy)
    return;
  json_t *nodes = store_list_by(d->m->store, STORE_MANAGER_NODES, "manager");
  size_t i;
  json_t *n;
  json_array_foreach(nodes, i, n) {
    if (strcmp(jx_str(n, "Spec.Role", ""), "worker") != 0)
      continue;
    sh_err err = {0};
    const char *id = jx_str(n, "ID", "");
    d->role_busy = true;
    if (strcmp(id, d->m->node_id) == 0) {
      if (raftnode_transfer_leadership(d->m->raft, 0, leadership_handed, d,
                                       &err) < 0)
        d->role_busy = false;
      break;
    }
    struct node_patch *u = xcalloc(1, sizeof *u);
    u->d = d;
    snprintf(u->node_id, sizeof u->node_id, "%s", id);
    u->sets = json_pack("{s:n}", "ManagerStatus");
    if (raftnode_remove(d->m->raft, (uint64_t)jx_int(n, "_RaftID", 0),
                        demoted_removed, u, &err) < 0) {
      patch_free(u);
      d->role_busy = false;
    }
    break;
  }
  json_decref(nodes);
}

static void check_expiry(uv_timer_t *t) {
  struct dispatcher *d = t->data;
  if (!d->leader)
    return;
  sync_reachability(d);
  reconcile_roles(d);
  int64_t now = clock_mono_ns();
  int64_t ttl = period_ns(d) * HEARTBEAT_GRACE;
  struct session *s;
  while ((s = TAILQ_FIRST(&d->sessions)) && now - s->last_mono > ttl) {
    char id[ID_LEN + 1];
    snprintf(id, sizeof id, "%s", s->node_id);
    session_end(d, s);
    set_status(d, id, "down", "heartbeat failure", NULL, NULL);
  }
  const char *id;
  json_t *v;
  void *tmp;
  json_object_foreach_safe(d->deadlines, tmp, id, v) {
    if (now > json_integer_value(v)) {
      set_status(d, id, "down", "heartbeat failure", NULL, NULL);
      json_object_del(d->deadlines, id);
    }
  }
}

struct dispatcher *dispatcher_new(struct manager *m) {
  struct dispatcher *d = xcalloc(1, sizeof *d);
  d->m = m;
  TAILQ_INIT(&d->sessions);
  d->deadlines = json_object();
  struct reports_ops rops = {
      .propose = reports_propose, .answer = reports_answer, .ud = m};
  d->reports =
      reports_new(&rops, reports_per_entry(), REPORT_ENTRIES_IN_FLIGHT);
  d->flush_slice_ns = flush_slice_ns();
  d->dirty = json_object();
  d->by_node = json_object();
  uv_timer_init(m->loop, &d->starter);
  d->starter.data = d;
  uv_timer_init(m->loop, &d->timer);
  d->timer.data = d;
  uv_timer_init(m->loop, &d->flush);
  d->flush.data = d;
  uv_timer_init(m->loop, &d->peers_timer);
  d->peers_timer.data = d;
  d->timer_init = true;
  d->watch_id = store_watch(m->store, on_store_change, d);
  return d;
}

void dispatcher_set_leader(struct dispatcher *d, bool leader) {
  if (leader == d->leader)
    return;
  d->leader = leader;
  if (!leader) {
    uv_timer_stop(&d->timer);
    uv_timer_stop(&d->starter);
    uv_timer_stop(&d->flush);
    json_object_clear(d->dirty);
    while (!TAILQ_EMPTY(&d->sessions))
      session_end(d, TAILQ_FIRST(&d->sessions));
    json_object_clear(d->deadlines);
    json_decref(d->mesh_sent);
    d->mesh_sent = NULL;
    uv_timer_stop(&d->peers_timer);
    d->peers_dirty = false;
    peers_flush_end(d);
    json_decref(d->peers_snap);
    d->peers_snap = NULL;
    reset_lines_drop(d);
    reports_drop(d->reports, 503, RAFTNODE_NO_LEADER_MSG);
    return;
  }
  /* Every node that is not down must open a session with this leader
   * within the grace time, or it goes down. */
  int64_t deadline = clock_mono_ns() + period_ns(d) * HEARTBEAT_GRACE;
  json_t *nodes = store_list(d->m->store, STORE_NODE);
  size_t i;
  json_t *n;
  json_array_foreach(nodes, i, n) {
    if (strcmp(jx_str(n, "Status.State", ""), "down") != 0)
      json_object_set_new(d->deadlines, jx_str(n, "ID", ""),
                          json_integer(deadline));
  }
  json_decref(nodes);
  uv_timer_start(&d->timer, check_expiry, CHECK_INTERVAL_MS, CHECK_INTERVAL_MS);
  /* Followers do not follow membership: the list as it is now. */
  json_decref(d->managers);
  d->managers = manager_addresses(d->m);
  /* A rotation the last leader did not get to finish. */
  d->m->rootca_finishing = false;
  rootca_reconcile(d->m);
}

static void timer_closed(uv_handle_t *h) {
  struct dispatcher *d = h->data;
  if (--d->closing > 0)
    return;
  json_decref(d->deadlines);
  json_decref(d->dirty);
  json_decref(d->by_node);
  json_decref(d->ca_facts);
  json_decref(d->managers);
  json_decref(d->mesh_sent);
  json_decref(d->peers_snap);
  peers_flush_end(d);
  reset_lines_drop(d);
  free(d);
}

void dispatcher_free(struct dispatcher *d) {
  if (!d)
    return;
  while (!TAILQ_EMPTY(&d->sessions))
    session_end(d, TAILQ_FIRST(&d->sessions));
  d->leader = false;
  reports_free(STEAL_POINTER(&d->reports), "the manager is shutting down");
  store_unwatch(d->m->store, d->watch_id);
  d->closing = 4;
  uv_close((uv_handle_t *)&d->starter, timer_closed);
  uv_close((uv_handle_t *)&d->timer, timer_closed);
  uv_close((uv_handle_t *)&d->flush, timer_closed);
  uv_close((uv_handle_t *)&d->peers_timer, timer_closed);
}
