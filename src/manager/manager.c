/* Manager lifecycle: store + raft + swarm port + dispatcher. */
#include "manager/manager.h"

#include "ca/ca.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/id.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/util.h"
#include "events/events.h"
#include "http/client.h"
#include "http/server.h"
#include "lazy/heap.h"
#include "manager/attach.h"
#include "manager/dispatcher.h"
#include "manager/internal.h"
#include "manager/orchtask.h"
#include "manager/networks.h"
#include "manager/logbroker.h"
#include "manager/reconciler.h"
#include "raft/raftnode.h"
#include "store/store.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

/* Raft timing: one tick is ours to choose (swarmkit's is 1 s); 60 ms with
 * Docker's default ticks gives 60 ms heartbeats and 600 ms election
 * timeouts: failover in under 2 s on a LAN (Docker: about 10 s). */
#define RAFT_TICK_MS 60

/* Autolock: each manager re-seals its own key material when the unlock
 * key it applied changes (swarmkit distributes the KEK the same way). */
static void check_unlock_key(struct manager *m) {
  if (!m->unlock_key_changed)
    return;
  const char *k = manager_unlock_key(m);
  if (m->unlock_key_told && strcmp(k, m->unlock_key ? m->unlock_key : "") == 0)
    return;
  m->unlock_key_told = true;
  if (m->unlock_key)
    OPENSSL_cleanse(m->unlock_key, strlen(m->unlock_key));
  free(m->unlock_key);
  m->unlock_key = xstrdup(k);
  m->unlock_key_changed(
      m->unlock_key_ud, *k ? k : NULL,
      (uint64_t)jx_int(store_cluster(m->store), "Version.Index", 0));
}

#ifdef SHOAL_CHECK_HINTS
/* Sanitizer builds: the proposer's document must still be what it
 * encoded (a proposer that changed an object after proposing it would
 * have the leader apply other state than its followers). */
static void check_hint(const char *data, size_t len, const json_t *hint) {
  cleanup_json json_t *doc = NULL;
  store_entry_decode(data, len, &doc, NULL);
  if (!json_equal(doc, hint)) {
    log_error("raft: a proposal's document changed after it was encoded");
    abort();
  }
}
#endif

/* The loop's JSON on mimalloc while the store is large (lazy/heap.h);
 * `whose` says where the count comes from. */
static void heap_follow(const char *whose, size_t objects) {
  int moved = heap_json_follow(objects);
  if (moved)
    log_info("%s %zu tasks and nodes: its JSON is made on %s from now on",
             whose, objects,
             moved < 0                ? "glibc's heap"
             : heap_json_huge_pages() ? "mimalloc's heap (huge pages)"
                                      : "mimalloc's heap");
}

static size_t store_objects(struct manager *m) {
  return store_count(m->store, STORE_TASK) + store_count(m->store, STORE_NODE);
}

static int fsm_apply(void *ud, const char *data, size_t len, void *hint,
                     uint64_t index, sh_err *err) {
  struct manager *m = ud;
  int64_t t0 = clock_mono_ns();
  int rc;
  /* The leader's own entries are applied from the document it encoded
   * them from: parsing them again was a tenth of its CPU at 100,000 tasks. */
  if (hint) {
#ifdef SHOAL_CHECK_HINTS
    check_hint(data, len, hint);
#endif
    rc = store_apply_doc(m->store, hint, true, index, err);
  } else {
    rc = store_apply(m->store, data, len, index, err);
  }
  if (rc == 0 && store_cluster(m->store))
    check_unlock_key(m);
  heap_follow("the store holds", store_objects(m));
  /* The decode, the change and every watcher (dispatcher, mesh,
   * reconciler, ...) run here, in the loop: a long one is said. */
  int64_t took = (clock_mono_ns() - t0) / NS_PER_MS;
  if (took >= 200)
    log_info("raft: applying entry %" PRIu64 " (%zu bytes) took %lld ms", index,
             len, (long long)took);
  return rc;
}

static char *fsm_snapshot(void *ud, size_t *len) {
  struct manager *m = ud;
  return store_snapshot(m->store, len);
}

static void *fsm_snapshot_view(void *ud) {
  struct manager *m = ud;
  return store_snapshot_view(m->store);
}

static char *fsm_snapshot_encode(void *view, size_t *len) {
  return store_snapshot_encode(view, len);
}

static void fsm_snapshot_view_free(void *view) {
  json_decref(view);
}

/* A snapshot's objects take ~460 (CBOR) to ~530 (JSON) bytes each at
 * 100,000 tasks: one of a store past the mark is decoded into mimalloc's
 * heap already. */
#define SNAPSHOT_BYTES_PER_OBJECT 512

static int fsm_restore(void *ud, const char *data, size_t len, sh_err *err) {
  struct manager *m = ud;
  heap_follow("a snapshot of about", len / SNAPSHOT_BYTES_PER_OBJECT);
  int rc = store_restore(m->store, data, len, err);
  heap_follow("the store holds", store_objects(m));
  if (rc == 0 && store_cluster(m->store))
    check_unlock_key(m);
  return rc;
}

struct store *manager_store(struct manager *m) {
  return m->store;
}
bool manager_is_leader(const struct manager *m) {
  return m->leader;
}
const char *manager_node_id(const struct manager *m) {
  return m->node_id;
}

int manager_logs(struct manager *m, struct http_req *req,
                 const char *service_ref, const char *task_ref,
                 const struct log_options *o, sh_err *err) {
  if (!m->leader)
    return sh_error(err, 503, RAFTNODE_NO_LEADER_MSG);
  return logbroker_subscribe(m->logs, req, service_ref, task_ref, o, err);
}

uint64_t manager_applied_index(const struct manager *m) {
  return raftnode_last_applied(m->raft);
}

const char *manager_leader_addr(const struct manager *m) {
  uint64_t id = 0;
  const char *addr = NULL;
  raftnode_leader(m->raft, &id, &addr);
  return id && addr && *addr ? addr : NULL;
}

const char *manager_leader_id(const struct manager *m) {
  uint64_t id = 0;
  const char *addr = NULL;
  raftnode_leader(m->raft, &id, &addr);
  if (id == 0)
    return NULL;
  /* Raft ids map to node IDs through the nodes' stored RaftID (only
   * managers have one). */
  json_t *nodes = store_list_by(m->store, STORE_MANAGER_NODES, "manager");
  const char *found = NULL;
  size_t i;
  json_t *n;
  json_array_foreach(nodes, i, n) {
    if ((uint64_t)jx_int(n, "_RaftID", 0) == id) {
      found = jx_str(n, "ID", NULL);
      break;
    }
  }
  json_decref(nodes);
  return found;
}

bool manager_is_raft_member(struct manager *m, const char *node_id) {
  struct raftnode_member *mem = NULL;
  size_t n = 0;
  bool found = false;
  if (raftnode_configuration(m->raft, &mem, &n, NULL) < 0)
    return false;
  for (size_t i = 0; i < n; i++)
    found |= mem[i].id == raftnode_id_for(node_id);
  raftnode_members_free(mem, n);
  return found;
}

/* After force-new-cluster the other managers are no longer raft members:
 * as in swarmkit they lose their manager status (and can be removed). */
static void drop_departed_managers(struct manager *m) {
  struct store_tx *tx = store_tx_new();
  json_t *nodes = store_list(m->store, STORE_NODE);
  size_t i;
  json_t *n;
  json_array_foreach(nodes, i, n) {
    const char *id = jx_str(n, "ID", "");
    if (!json_object_get(n, "ManagerStatus") || strcmp(id, m->node_id) == 0 ||
        manager_is_raft_member(m, id))
      continue;
    json_t *next = json_deep_copy(n);
    json_object_del(next, "ManagerStatus");
    store_tx_put(tx, STORE_NODE, next, jx_int(n, "Version.Index", 0));
  }
  json_decref(nodes);
  sh_err err = {0};
  if (store_tx_empty(tx))
    store_tx_free(tx);
  else
    manager_propose(m, tx, NULL, NULL, &err);
}

struct lead_ctx {
  struct manager *m;
  uint64_t epoch;
};

/* The dispatcher and the orchestrators start once this term's barrier is
 * applied: before, the store may lack what the last leader committed (a
 * service removed, a node drained), and they would act on that. It also
 * keeps a failover's first commit ahead of a thousand nodes' session
 * starts and the first full reconcile. */
static void lead_ready(void *ud, int status) {
  struct lead_ctx *c = ud;
  struct manager *m = c->m;
  /* Still this term's leader but the barrier failed (a disk error):
   * start anyway, as without it, rather than lead with neither. */
  if (m->leader && m->lead_epoch == c->epoch && m->disp && m->recon) {
    if (status < 0)
      log_warn("raft: this term's barrier failed; the dispatcher and the "
               "orchestrators start without it");
    dispatcher_set_leader(m->disp, true);
    reconciler_set_leader(m->recon, true);
  }
  free(c);
}

static void on_leader(void *ud, bool leader) {
  struct manager *m = ud;
  if (leader && m->forced_new) {
    m->forced_new = false;
    drop_departed_managers(m);
  }
  m->leader = leader;
  m->lead_epoch++;
  if (leader) {
    struct lead_ctx *c = xcalloc(1, sizeof *c);
    c->m = m;
    c->epoch = m->lead_epoch;
    sh_err err = {0};
    if (raftnode_barrier(m->raft, lead_ready, c, &err) < 0)
      lead_ready(c, -1);
  } else {
    dispatcher_set_leader(m->disp, false);
    reconciler_set_leader(m->recon, false);
  }
  if (leader && m->init_tx) {
    sh_err err = {0};
    struct store_tx *tx = STEAL_POINTER(&m->init_tx);
    if (manager_propose(m, tx, m->init_done, m->init_ud, &err) < 0 &&
        m->init_done)
      m->init_done(m->init_ud, -1, &err);
  }
}

struct propose_ctx {
  manager_done_fn done;
  void *ud;
  json_t *doc; /* what the entry was encoded from: the leader applies it */
};

const char *rpc_code_name(int status) {
  switch (status) {
  case 400:
    return "InvalidArgument";
  case 404:
    return "NotFound";
  case 403:
    return "PermissionDenied";
  case 409:
    return "AlreadyExists";
  case 412:
    return "FailedPrecondition";
  case 501:
    return "Unimplemented";
  case 503:
    return "Unavailable";
  default:
    return "Unknown";
  }
}

int rpc_error(sh_err *err, int status, const char *msg) {
  /* 412 names FailedPrecondition here; moby answers it with 400. */
  return sh_error(err, status == 412 ? 400 : status,
                  "rpc error: code = %s desc = %s", rpc_code_name(status), msg);
}

int rpcf(sh_err *err, int status, const char *fmt, ...) {
  char msg[SH_ERR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return rpc_error(err, status, msg);
}

static void propose_done(void *ud, int status, const sh_err *err) {
  struct propose_ctx *c = ud;
  /* The FSM's verdicts are swarmkit's gRPC errors as Docker users see them;
   * raft-level failures (no leader, 503) are the daemon's own words. */
  sh_err e = {0};
  if (status < 0 && err && err->status != 503) {
    rpc_error(&e, err->status, err->msg);
    err = &e;
  }
  if (c->done)
    c->done(c->ud, status, err);
  json_decref(c->doc);
  free(c);
}

int manager_propose(struct manager *m, struct store_tx *tx,
                    manager_done_fn done, void *ud, sh_err *err) {
  size_t len = 0;
  if (store_managers_read(m->store, STORE_ENTRIES_TEMPLATES))
    store_tx_name_templates(m->store, tx);
  json_t *doc = store_tx_doc(tx, clock_wall_ns());
  store_tx_free(tx);
  char *data = store_entry_encode(m->store, doc, &len);
  if (!data) { /* every member refuses it the same way */
    json_decref(doc);
    doc = NULL;
    data = xstrdup("{}");
    len = 2;
  }
  struct propose_ctx *c = xcalloc(1, sizeof *c);
  c->done = done;
  c->ud = ud;
  c->doc = doc;
  int rc =
      raftnode_propose_hinted(m->raft, data, len, doc, propose_done, c, err);
  free(data);
  if (rc < 0) {
    json_decref(doc);
    free(c);
    return -1;
  }
  return 0;
}

/* Swarm events (docker events on a manager) from what raft applies. */
static void cluster_events(const struct store_change *ch, size_t n,
                           uint64_t index, void *ud) {
  if (n > 0)
    events_cluster_changes(ud, ch, n);
}

/* Raft.SnapshotInterval, LogEntriesForSlowFollowers, HeartbeatTick and
 * ElectionTick take effect as the cluster object changes (swarmkit reads them
 * at each check), on every manager: each takes its own snapshots. */
/* The cached GET /nodes body is made again after a node changed (or a
 * restore). */
static void nodes_json_drop(const struct store_change *ch, size_t n,
                            uint64_t index, void *ud) {
  struct manager *m = ud;
  bool nodes = n == 0;
  for (size_t i = 0; i < n && !nodes; i++)
    nodes = ch[i].kind == STORE_NODE;
  if (nodes) {
    free(m->nodes_json);
    m->nodes_json = NULL;
  }
}

static void raft_policy(const struct store_change *ch, size_t n, uint64_t index,
                        void *ud) {
  struct manager *m = ud;
  bool cluster = n == 0; /* a restore */
  for (size_t i = 0; i < n && !cluster; i++)
    cluster = ch[i].kind == STORE_CLUSTER;
  json_t *c = store_cluster(m->store);
  if (!cluster || !c || !m->raft)
    return;
  raftnode_set_snapshot_policy(
      m->raft, (unsigned)jx_int(c, "Spec.Raft.SnapshotInterval", 0),
      (unsigned)jx_int(c, "Spec.Raft.LogEntriesForSlowFollowers", 0));
  raftnode_set_ticks(m->raft, (unsigned)jx_int(c, "Spec.Raft.HeartbeatTick", 0),
                     (unsigned)jx_int(c, "Spec.Raft.ElectionTick", 0));
}

static int start_common(struct manager *m, const struct manager_config *cfg,
                        sh_err *err) {
  m->loop = cfg->loop;
  m->node_id = xstrdup(cfg->node_id);
  m->state_dir = xstrdup(cfg->state_dir);
  m->listen_addr = xstrdup(cfg->listen_addr);
  m->advertise_addr = xstrdup(cfg->advertise_addr);
  m->cert_pem = xstrdup(cfg->cert_pem);
  m->key_pem = xstrdup(cfg->key_pem);
  m->root_pem = xstrdup(cfg->root_pem);
  m->hostname = xstrdup(cfg->hostname ? cfg->hostname : "");
  m->engine_version = xstrdup(cfg->engine_version ? cfg->engine_version
                                                  : MANAGER_ENGINE_VERSION);
  m->client = cfg->client;
  m->cluster_id = xstrdup(cfg->cluster_id ? cfg->cluster_id : "");
  m->forwarded = cfg->forwarded;
  m->forwarded_ud = cfg->forwarded_ud;
  m->unlock_key_changed = cfg->unlock_key_changed;
  m->unlock_key_ud = cfg->unlock_key_ud;
  m->store = store_new();
  store_set_status_rule(m->store, task_status_rule);
  if (cfg->events)
    store_watch(m->store, cluster_events, cfg->events);
  store_watch(m->store, raft_policy, m);
  store_watch(m->store, nodes_json_drop, m);
  m->disp = dispatcher_new(m);
  m->recon = reconciler_new(m);
  m->logs = logbroker_new(m);
  m->attach = attachments_new(m);

  cleanup_free char *raftdir = xasprintf("%s/raft", cfg->state_dir);
  if (mkdir_p(raftdir, 0700, err) < 0)
    return -1;
  /* Raft rides on the swarm port: mutual TLS, upgraded from HTTP. */
  struct raftnode_config rc = {
      .dir = raftdir,
      .id = raftnode_id_for(cfg->node_id),
      .address = cfg->advertise_addr,
      .tls_cert_pem = cfg->cert_pem,
      .tls_key_pem = cfg->key_pem,
      .tls_root_pem = cfg->root_pem,
      .cluster_id = cfg->cluster_id,
      .dek = cfg->raft_dek,
      .tick_ms = RAFT_TICK_MS,
      .heartbeat_ticks = 1,
      .election_ticks = 10,
      .snapshot_interval = 10000,
      .keep_old_snapshots = 0,
      .log_entries_for_slow_followers = 500,
  };
  struct raftnode_fsm fsm = {
      fsm_apply,         fsm_snapshot,        fsm_restore,           m,
      fsm_snapshot_view, fsm_snapshot_encode, fsm_snapshot_view_free};
  if (raftnode_open(m->loop, &rc, &fsm, &m->raft, err) < 0)
    return -1;
  raft_policy(NULL, 0, 0, m); /* a cluster restored before m->raft was set */
  return 0;
}

/* Connections per swarm-port listener: 3 per node for 1,300 nodes. */
#define SWARM_MAX_CONNS 4096

static int listen_swarm_port(struct manager *m, sh_err *err) {
  SSL_CTX *tls =
      ca_tls_server_ctx(m->cert_pem, m->key_pem, m->root_pem, false, err);
  if (!tls)
    return -1;
  m->srv = http_server_new(m->loop, swarmapi_handle, m);
  /* Every node holds a session and a call or two at the leader. */
  struct http_limits lim;
  http_limits_default(&lim);
  lim.max_conns = SWARM_MAX_CONNS;
  http_limits_env(&lim);
  http_server_set_limits(m->srv, &lim);
  char host[128];
  int port = SWARM_DEFAULT_PORT;
  if (addr_split(m->listen_addr, host, sizeof host, &port, err) < 0) {
    SSL_CTX_free(tls);
    return -1;
  }
  int r = http_server_listen_tcp(m->srv, host, port, tls, err);
  SSL_CTX_free(tls);
  if (r < 0)
    return sh_err_wrap(err, "failed to listen on remote API address");
  return 0;
}

int manager_set_identity(struct manager *m, const char *cert_pem,
                         const char *key_pem, const char *root_pem,
                         sh_err *err) {
  const char *root = root_pem ? root_pem : m->root_pem;
  SSL_CTX *tls = ca_tls_server_ctx(cert_pem, key_pem, root, false, err);
  if (!tls)
    return -1;
  if (raftnode_set_identity(m->raft, cert_pem, key_pem, root, err) < 0) {
    SSL_CTX_free(tls);
    return -1;
  }
  if (m->srv)
    http_server_set_tls(m->srv, tls);
  SSL_CTX_free(tls);
  char *c = xstrdup(cert_pem), *k = xstrdup(key_pem), *r = xstrdup(root);
  free(m->cert_pem);
  free(m->key_pem);
  free(m->root_pem);
  m->cert_pem = c;
  m->key_pem = k;
  m->root_pem = r;
  return 0;
}

json_t *manager_new_node_object(struct manager *m, const char *node_id,
                                const char *role, const char *availability,
                                const char *hostname, const char *addr,
                                const json_t *description, const char *cert_pem,
                                const char *root_pem) {
  json_t *node =
      json_pack("{s:s, s:{s:{}, s:s, s:s}, s:{s:s, s:s}, s:I}", "ID", node_id,
                "Spec", "Labels", "Role", role, "Availability",
                availability && *availability ? availability : "active",
                "Status", "State", "unknown", "Addr", addr ? addr : "",
                "_RaftID", (json_int_t)raftnode_id_for(node_id));
  json_t *desc = description ? json_deep_copy(description) : json_object();
  if (!json_object_get(desc, "Hostname"))
    json_object_set_new(desc, "Hostname",
                        json_string(hostname ? hostname : ""));
  json_object_set_new(desc, "TLSInfo", ca_tls_info(cert_pem, root_pem));
  json_object_set_new(node, "Description", desc);
  return node;
}

/* Last step of create/open: serve the swarm port, then start raft. */
static int go_live(struct manager *m, struct manager **out, sh_err *err) {
  if (listen_swarm_port(m, err) < 0 ||
      raftnode_start(m->raft, on_leader, m, err) < 0) {
    manager_close(m, NULL, NULL);
    return -1;
  }
  *out = m;
  return 0;
}

int manager_create(const struct manager_config *cfg,
                   const struct manager_init *init, manager_done_fn done,
                   void *ud, struct manager **out, sh_err *err) {
  struct manager *m = xcalloc(1, sizeof *m);
  if (start_common(m, cfg, err) < 0)
    goto fail;
  if (raftnode_bootstrap(m->raft, err) < 0)
    goto fail;

  /* The first transaction: the cluster object and this manager's node. */
  char ipbuf[64];
  json_t *cluster = cluster_object_new(init, err);
  if (!cluster)
    goto fail;
  json_t *node = manager_new_node_object(
      m, cfg->node_id, "manager", cfg->availability, cfg->hostname,
      ip_of(cfg->advertise_addr, ipbuf, sizeof ipbuf), cfg->description,
      m->cert_pem, m->root_pem);
  json_object_set_new(node, "ManagerStatus",
                      json_pack("{s:s, s:s}", "Reachability", "reachable",
                                "Addr", cfg->advertise_addr));
  jx_set(node, "Status.State", json_string("ready"));
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_CLUSTER, cluster, STORE_MUST_CREATE);
  store_tx_put(tx, STORE_NODE, node, STORE_MUST_CREATE);
  /* Docker makes the ingress network at init (the routing mesh's). */
  char net_id[ID_LEN + 1];
  id_new(net_id);
  store_tx_put(tx, STORE_NETWORK, networks_ingress(net_id), STORE_MUST_CREATE);
  id_new(net_id);
  store_tx_put(tx, STORE_NETWORK, networks_predefined_host(net_id),
               STORE_MUST_CREATE);
  m->init_tx = tx;
  m->init_done = done;
  m->init_ud = ud;

  return go_live(m, out, err);
fail:
  manager_close(m, NULL, NULL);
  return -1;
}

int manager_open(const struct manager_config *cfg, bool force_new_cluster,
                 struct manager **out, sh_err *err) {
  struct manager *m = xcalloc(1, sizeof *m);
  if (start_common(m, cfg, err) < 0)
    goto fail;
  if (!raftnode_has_state(m->raft)) {
    sh_error(err, 500, "no raft state in %s", cfg->state_dir);
    goto fail;
  }
  if (force_new_cluster && raftnode_recover_single(m->raft, err) < 0)
    goto fail;
  m->forced_new = force_new_cluster;
  return go_live(m, out, err);
fail:
  manager_close(m, NULL, NULL);
  return -1;
}

/* ---- joining an existing cluster as a manager ---- */

/* A raft membership request to another manager (join or leave); done
 * gets the answer. */
struct member_call {
  struct manager *m;
  manager_done_fn done;
  void *ud;
};

static void member_answered(const struct http_result *res, void *ud) {
  struct member_call *c = ud;
  sh_err err = {0};
  if (res->status == 200) {
    c->done(c->ud, 0, NULL);
  } else {
    json_t *j = res->body ? json_loads(res->body, 0, NULL) : NULL;
    sh_error(
        &err, res->status ? res->status : 503, "%s",
        jx_str(j, "message",
               res->error ? res->error : "raft membership change refused"));
    json_decref(j);
    c->done(c->ud, -1, &err);
  }
  free(c);
}

static void send_member_call(struct manager *m, const char *remote,
                             const char *path, struct member_call *c) {
  cleanup_free char *url = xasprintf("https://%s%s", remote, path);
  struct http_call_opts o = {.method = "POST",
                             .url = url,
                             .body = "{}",
                             .body_len = 2,
                             .cert_pem = m->cert_pem,
                             .key_pem = m->key_pem,
                             .ca_pem = m->root_pem,
                             .timeout_ms = 30000};
  http_client_call(m->client, &o, NULL, member_answered, c);
}

int manager_join(const struct manager_config *cfg, const char *remote,
                 manager_done_fn done, void *ud, struct manager **out,
                 sh_err *err) {
  struct manager *m = xcalloc(1, sizeof *m);
  if (start_common(m, cfg, err) < 0 || listen_swarm_port(m, err) < 0 ||
      raftnode_join(m->raft, on_leader, m, err) < 0) {
    manager_close(m, NULL, NULL);
    return -1;
  }
  /* Our raft listens; ask the leader (through any manager: followers
   * forward) to add us to the configuration. */
  struct member_call *c = xcalloc(1, sizeof *c);
  c->m = m;
  c->done = done;
  c->ud = ud;
  send_member_call(m, remote, "/swarm/v1/raft/join", c);
  *out = m;
  return 0;
}

/* ---- leaving ---- */

int manager_leave_check(struct manager *m, const json_t *leader_nodes,
                        sh_err *err) {
  /* moby's wording (daemon/cluster/swarm.go), counting managers as the
   * leader sees them (ManagerStatus.Reachability). */
  int reachable = 0, unreachable = 0;
  bool active = false; /* this manager counts as reachable */
  json_t *nodes = leader_nodes ? json_incref((json_t *)leader_nodes)
                               : store_list(m->store, STORE_NODE);
  size_t i;
  json_t *n;
  json_array_foreach(nodes, i, n) {
    const char *r = jx_str(n, "ManagerStatus.Reachability", "");
    if (strcmp(r, "reachable") == 0) {
      reachable++;
      active |= strcmp(jx_str(n, "ID", ""), m->node_id) == 0;
    } else if (strcmp(r, "unreachable") == 0) {
      unreachable++;
    }
  }
  json_decref(nodes);
  char msg[SH_ERR_MSG_MAX];
  int off = snprintf(msg, sizeof msg,
                     "You are attempting to leave the swarm on a node that is "
                     "participating as a manager. ");
  if (active && reachable - 2 <= unreachable) {
    if (reachable == 1 && unreachable == 0)
      return sh_error(err, 503,
                      "%sRemoving the last manager erases all current state "
                      "of the swarm. Use `--force` to ignore this message. ",
                      msg);
    off += snprintf(msg + off, sizeof msg - (size_t)off,
                    "Removing this node leaves %d managers out of %d. Without "
                    "a Raft quorum your swarm will be inaccessible. ",
                    reachable - 1, reachable + unreachable);
  } else if (!manager_leader_addr(m)) {
    off += snprintf(msg + off, sizeof msg - (size_t)off,
                    "Doing so may lose the consensus of your cluster. ");
  }
  return sh_error(err, 503,
                  "%sThe only way to restore a swarm that has lost consensus "
                  "is to reinitialize it with `--force-new-cluster`. Use "
                  "`--force` to suppress this message.",
                  msg);
}

struct close_ctx {
  struct manager *m;
  void (*done)(void *);
  void *ud;
};

static void free_manager(struct manager *m) {
  store_free(m->store);
  heap_json_follow(0); /* no store: the loop's JSON on glibc's heap again */
  store_tx_free(m->init_tx);
  free(m->node_id);
  free(m->state_dir);
  free(m->listen_addr);
  free(m->advertise_addr);
  free(m->cert_pem);
  free(m->key_pem);
  if (m->unlock_key)
    OPENSSL_cleanse(m->unlock_key, strlen(m->unlock_key));
  free(m->unlock_key);
  free(m->root_pem);
  free(m->hostname);
  free(m->engine_version);
  free(m->cluster_id);
  free(m->nodes_json);
  free(m->nodes_json_leader);
  json_decref(m->net_pending);
  json_decref(m->svc_pending);
  services_lost_free(&m->lost);
  json_decref(m->rm_pending);
  free(m);
}

static void raft_closed(void *ud) {
  struct close_ctx *c = ud;
  void (*done)(void *) = c->done;
  void *dud = c->ud;
  free_manager(c->m);
  free(c);
  if (done)
    done(dud);
}

void manager_close(struct manager *m, void (*done)(void *ud), void *ud) {
  if (!m)
    return;
  if (m->recon) {
    reconciler_free(m->recon);
    m->recon = NULL;
  }
  if (m->logs) {
    logbroker_free(m->logs);
    m->logs = NULL;
  }
  attachments_free(m->attach);
  m->attach = NULL;
  if (m->disp) {
    dispatcher_free(m->disp);
    m->disp = NULL;
  }
  if (m->srv) {
    http_server_close(m->srv);
    m->srv = NULL;
  }
  struct close_ctx *c = xcalloc(1, sizeof *c);
  c->m = m;
  c->done = done;
  c->ud = ud;
  if (m->raft) {
    raftnode_close(m->raft, raft_closed, c);
    m->raft = NULL;
  } else {
    raft_closed(c);
  }
}
