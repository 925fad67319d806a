/* Control operations: the cluster object, swarm and node updates, node
 * removal, and the API views of stored objects. Validation follows
 * swarmkit's controlapi so users see Docker's messages. */
#include "ca/ca.h"
#include "ca/keyfile.h"
#include "core/clock.h"
#include "core/id.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/util.h"
#include "manager/dispatcher.h"
#include "manager/internal.h"
#include "manager/networks.h"
#include "manager/orchtask.h"
#include "manager/rootca.h"
#include "manager/secrets.h"
#include "manager/services.h"
#include "store/store.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#define HOUR_NS (INT64_C(3600) * NS_PER_SEC)
#define DEFAULT_CERT_EXPIRY (2160 * HOUR_NS)
#define MIN_CERT_EXPIRY HOUR_NS

int addr_split(const char *addr, char *host, size_t hostlen, int *port,
               sh_err *err) {
  const char *colon = strrchr(addr, ':');
  const char *h = addr;
  size_t hl = colon ? (size_t)(colon - addr) : strlen(addr);
  if (colon && strchr(addr, ':') != colon && addr[0] != '[')
    colon = NULL, hl = strlen(addr); /* bare IPv6 */
  if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
    h++;
    hl -= 2;
  }
  if (hl >= hostlen)
    return sh_error(err, 400, "invalid address %s", addr);
  memcpy(host, h, hl);
  host[hl] = '\0';
  if (colon) {
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p <= 0 || p > 65535)
      return sh_error(err, 400, "invalid port in address %s", addr);
    *port = (int)p;
  }
  return 0;
}

const char *ip_of(const char *addr, char *buf, size_t n) {
  int port = 0;
  if (addr_split(addr, buf, n, &port, NULL) < 0)
    snprintf(buf, n, "%s", addr);
  return buf;
}

static int validate_cluster_spec(const json_t *spec, sh_err *err) {
  json_t *exp = jx_get(spec, "CAConfig.NodeCertExpiry");
  if (exp && !json_is_integer(exp))
    return rpc_error(err, 400, "invalid argument");
  if (exp && json_integer_value(exp) < MIN_CERT_EXPIRY)
    return rpc_error(err, 400, "minimum certificate expiry time is: 1h0m0s");
  json_t *hb = jx_get(spec, "Dispatcher.HeartbeatPeriod");
  if (hb && !json_is_integer(hb))
    return rpc_error(err, 400, "invalid argument");
  if (hb && json_integer_value(hb) < 0)
    return rpc_error(err, 400,
                     "heartbeat time period cannot be a negative duration");
  json_t *name = json_object_get(spec, "Name");
  if (name && !(json_is_string(name) &&
                strcmp(json_string_value(name), "default") == 0))
    return rpc_error(err, 400, "modification of cluster name is not allowed");
  return manager_check_supported(spec, err);
}

int manager_check_supported(const json_t *spec, sh_err *err) {
  json_t *ext = jx_get(spec, "CAConfig.ExternalCAs");
  if (json_is_array(ext) && json_array_size(ext) > 0)
    return sh_error(err, 501,
                    "external CAs (--external-ca) are not supported by shoal "
                    "yet");
  /* libraft's store keeps the newest snapshot and the one before it and
   * removes the rest; more old ones cannot be kept, so asking is refused
   * rather than stored and ignored (0 and 1 are what it does). */
  json_int_t keep = jx_int(spec, "Raft.KeepOldSnapshots", 0);
  if (keep > 1)
    return sh_error(err, 501,
                    "keeping %lld old raft snapshots (Raft.KeepOldSnapshots) "
                    "is not supported by shoal: its raft store keeps the "
                    "newest snapshot and the one before it",
                    (long long)keep);
  return 0;
}

#define UNLOCK_KEY_FIELD "_UnlockKey"

/* Each manager's raft runs on these (times its 60 ms tick), applied as
 * the cluster changes: a follower must hear from the leader (every
 * HeartbeatTick) more often than it waits before an election. */
static int check_ticks(int64_t election, int64_t heartbeat, sh_err *err) {
  if (election > 1000 || heartbeat > 1000)
    return rpc_error(err, 400,
                     "raft ticks above 1000 (a minute at shoal's 60 ms tick) "
                     "are not supported");
  if (election <= heartbeat) {
    char msg[128];
    snprintf(msg, sizeof msg,
             "ElectionTick (%lld) must be greater than HeartbeatTick (%lld)",
             (long long)election, (long long)heartbeat);
    return rpc_error(err, 400, msg);
  }
  return 0;
}

static int64_t pos_or(int64_t v, int64_t dflt) {
  return v > 0 ? v : dflt;
}

/* Autolock's key (swarmkit: 32 random bytes), in the store where every
 * manager applies it; hidden from the API but for GET /swarm/unlockkey. */
static int set_unlock_key(json_t *cluster, sh_err *err) {
  unsigned char kek[KEYFILE_KEK_LEN];
  if (keyfile_random(kek, sizeof kek, err) < 0)
    return -1;
  cleanup_free char *k = keyfile_unlock_key_format(kek);
  OPENSSL_cleanse(kek, sizeof kek);
  json_object_set_new(cluster, UNLOCK_KEY_FIELD, json_string(k));
  OPENSSL_cleanse(k, strlen(k));
  return 0;
}

const char *manager_unlock_key(struct manager *m) {
  return jx_str(store_cluster(m->store), UNLOCK_KEY_FIELD, "");
}

json_t *cluster_object_new(const struct manager_init *in, sh_err *err) {
  /* Zero means "default"; anything else is validated as given. */
  if (in->heartbeat_period_ns < 0) {
    rpc_error(err, 400, "heartbeat time period cannot be a negative duration");
    return NULL;
  }
  if (in->cert_expiry_ns != 0 && in->cert_expiry_ns < MIN_CERT_EXPIRY) {
    rpc_error(err, 400, "minimum certificate expiry time is: 1h0m0s");
    return NULL;
  }
  if (check_ticks(pos_or(in->election_tick, 10), pos_or(in->heartbeat_tick, 1),
                  err) < 0)
    return NULL;
  json_t *pool = in->default_addr_pool && json_array_size(in->default_addr_pool)
                     ? json_deep_copy(in->default_addr_pool)
                     : json_pack("[s]", "10.0.0.0/8");
  json_t *spec = json_pack(
      "{s:s, s:{}, s:{s:I}, s:{s:I, s:I, s:I, s:I, s:I}, s:{s:I}, "
      "s:{s:I}, s:{}, s:{s:b}}",
      "Name", "default", "Labels", "Orchestration", "TaskHistoryRetentionLimit",
      (json_int_t)(in->task_history_limit >= 0 ? in->task_history_limit : 5),
      "Raft", "SnapshotInterval",
      (json_int_t)pos_or(in->snapshot_interval, 10000), "KeepOldSnapshots",
      (json_int_t)(in->keep_old_snapshots > 0 ? in->keep_old_snapshots : 0),
      "LogEntriesForSlowFollowers", (json_int_t)500, "ElectionTick",
      (json_int_t)pos_or(in->election_tick, 10), "HeartbeatTick",
      (json_int_t)pos_or(in->heartbeat_tick, 1), "Dispatcher",
      "HeartbeatPeriod",
      (json_int_t)pos_or(in->heartbeat_period_ns, 5 * NS_PER_SEC), "CAConfig",
      "NodeCertExpiry",
      (json_int_t)pos_or(in->cert_expiry_ns, DEFAULT_CERT_EXPIRY),
      "TaskDefaults", "EncryptionConfig", "AutoLockManagers", in->autolock);
  if (validate_cluster_spec(spec, err) < 0) {
    json_decref(spec);
    json_decref(pool);
    return NULL;
  }
  cleanup_free char *wtok = NULL;
  cleanup_free char *mtok = NULL;
  if (ca_token_new(in->root_cert_pem, &wtok, err) < 0 ||
      ca_token_new(in->root_cert_pem, &mtok, err) < 0) {
    json_decref(spec);
    json_decref(pool);
    return NULL;
  }
  json_t *c =
      json_pack("{s:s, s:o, s:o, s:b, s:o, s:I, s:I, s:{s:s, s:s}, s:s}", "ID",
                in->cluster_id, "Spec", spec, "TLSInfo",
                rootca_tls_info(in->root_cert_pem), "RootRotationInProgress", 0,
                "DefaultAddrPool", pool, "SubnetSize",
                (json_int_t)pos_or(in->subnet_size, 24), "DataPathPort",
                (json_int_t)pos_or(in->data_path_port, 4789), "JoinTokens",
                "Worker", wtok, "Manager", mtok, "_CAKey", in->root_key_pem);
  if (in->autolock && set_unlock_key(c, err) < 0) {
    json_decref(c);
    return NULL;
  }
  return c;
}

json_t *manager_swarm_view(struct manager *m) {
  json_t *c = store_cluster(m->store);
  return c ? store_public(c) : NULL;
}

json_t *manager_node_view(struct manager *m, const json_t *node) {
  /* Description.TLSInfo is what the node reports of its certificate. */
  json_t *v = store_public(node);
  json_t *ms = json_object_get(v, "ManagerStatus");
  if (json_is_object(ms)) {
    const char *leader = manager_leader_id(m);
    const char *id = jx_str(node, "ID", "");
    if (leader && strcmp(leader, id) == 0)
      json_object_set_new(ms, "Leader", json_true());
  }
  return v;
}

const char *manager_nodes_json(struct manager *m) {
  const char *leader = manager_leader_id(m);
  const char *was = m->nodes_json_leader;
  if (m->nodes_json &&
      (leader && was ? strcmp(leader, was) == 0 : leader == was))
    return m->nodes_json;
  free(m->nodes_json);
  free(m->nodes_json_leader);
  json_t *nodes = store_list(m->store, STORE_NODE);
  json_t *out = json_array();
  size_t i;
  json_t *n;
  json_array_foreach(nodes, i, n)
      json_array_append_new(out, manager_node_view(m, n));
  json_decref(nodes);
  m->nodes_json = jx_dump(out);
  m->nodes_json_leader = leader ? xstrdup(leader) : NULL;
  json_decref(out);
  return m->nodes_json;
}

json_t *manager_addresses(struct manager *m) {
  json_t *out = json_array();
  json_t *nodes = store_list(m->store, STORE_NODE);
  size_t i;
  json_t *n;
  json_array_foreach(nodes, i, n) {
    const char *addr = jx_str(n, "ManagerStatus.Addr", NULL);
    if (addr && *addr)
      json_array_append_new(out, json_string(addr));
  }
  json_decref(nodes);
  if (json_array_size(out) == 0)
    json_array_append_new(out, json_string(m->advertise_addr));
  return out;
}

int manager_update_swarm(struct manager *m, int64_t version, const json_t *spec,
                         bool rotate_worker, bool rotate_manager,
                         bool rotate_unlock, manager_done_fn done, void *ud,
                         sh_err *err) {
  json_t *cur = store_cluster(m->store);
  if (!cur)
    return sh_error(err, 503, "This node is not part of a swarm");
  if (!json_is_object(spec))
    return sh_error(err, 400, "invalid argument");
  if (validate_cluster_spec(spec, err) < 0)
    return -1;
  json_t *next = json_deep_copy(cur);
  /* The API replaces the whole spec; absent sections keep defaults like
   * swarmkit's (zero values become defaults). */
  json_t *newspec = json_deep_copy(spec);
  if (!json_object_get(newspec, "Name"))
    json_object_set_new(newspec, "Name", json_string("default"));
  if (jx_int(newspec, "Orchestration.TaskHistoryRetentionLimit", -1) < 0 &&
      !jx_get(newspec, "Orchestration.TaskHistoryRetentionLimit"))
    jx_set(newspec, "Orchestration.TaskHistoryRetentionLimit",
           json_integer(
               jx_int(cur, "Spec.Orchestration.TaskHistoryRetentionLimit", 5)));
  static const char *keep[] = {
      "Raft.SnapshotInterval",      "Raft.LogEntriesForSlowFollowers",
      "Raft.ElectionTick",          "Raft.HeartbeatTick",
      "Dispatcher.HeartbeatPeriod", "CAConfig.NodeCertExpiry"};
  for (size_t i = 0; i < ARRAY_SIZE(keep); i++) {
    if (jx_int(newspec, keep[i], 0) <= 0) {
      char path[128];
      snprintf(path, sizeof path, "Spec.%s", keep[i]);
      jx_set(newspec, keep[i], json_integer(jx_int(cur, path, 0)));
    }
  }
  if (check_ticks(jx_int(newspec, "Raft.ElectionTick", 10),
                  jx_int(newspec, "Raft.HeartbeatTick", 1), err) < 0) {
    json_decref(newspec);
    json_decref(next);
    return -1;
  }
  if (!jx_get(newspec, "Raft.KeepOldSnapshots"))
    jx_set(newspec, "Raft.KeepOldSnapshots",
           json_integer(jx_int(cur, "Spec.Raft.KeepOldSnapshots", 0)));
  json_object_set_new(next, "Spec", newspec);
  if (!jx_bool(newspec, "EncryptionConfig.AutoLockManagers", false))
    json_object_del(next, UNLOCK_KEY_FIELD);
  else if ((rotate_unlock || !*jx_str(next, UNLOCK_KEY_FIELD, "")) &&
           set_unlock_key(next, err) < 0)
    goto fail;
  const char *root = jx_str(cur, "TLSInfo.TrustRoot", "");
  if (rotate_worker || rotate_manager) {
    cleanup_free char *tok = NULL;
    if (rotate_worker) {
      if (ca_token_new(root, &tok, err) < 0)
        goto fail;
      jx_set(next, "JoinTokens.Worker", json_string(tok));
      free(STEAL_POINTER(&tok));
    }
    if (rotate_manager) {
      if (ca_token_new(root, &tok, err) < 0)
        goto fail;
      jx_set(next, "JoinTokens.Manager", json_string(tok));
    }
  }
  /* A new root (ForceRotate, or one of the user's own) starts a root
   * rotation; the signing certificate and key leave the spec here. */
  if (rootca_apply_spec(cur, next, err) < 0)
    goto fail;
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_CLUSTER, next, version);
  return manager_propose(m, tx, done, ud, err);
fail:
  json_decref(next);
  return -1;
}

static bool valid_in(const char *v, const char *const *set) {
  for (; *set; set++)
    if (strcmp(v, *set) == 0)
      return true;
  return false;
}

int manager_update_node(struct manager *m, const char *ref, int64_t version,
                        const json_t *spec, manager_done_fn done, void *ud,
                        sh_err *err) {
  json_t *cur = store_find(m->store, STORE_NODE, ref, err);
  if (!cur)
    return -1;
  if (!json_is_object(spec))
    return sh_error(err, 400, "invalid argument");
  static const char *const avail[] = {"active", "pause", "drain", NULL};
  static const char *const roles[] = {"worker", "manager", NULL};
  const char *a = jx_str(spec, "Availability", NULL);
  json_t *aj = json_object_get(spec, "Availability");
  if (aj && (!json_is_string(aj) || !valid_in(a, avail)))
    return sh_error(err, 400, "invalid Availability: \"%s\"", a ? a : "");
  json_t *rj = json_object_get(spec, "Role");
  const char *role = jx_str(spec, "Role", NULL);
  if (rj && (!json_is_string(rj) || !valid_in(role, roles)))
    return sh_error(err, 400, "invalid Role: \"%s\"", role ? role : "");
  json_t *labels = json_object_get(spec, "Labels");
  if (labels && !json_is_object(labels) && !json_is_null(labels))
    return sh_error(err, 400, "invalid labels");
  if (labels && json_is_object(labels)) {
    const char *k;
    json_t *v;
    json_object_foreach(labels, k, v) if (!json_is_string(v)) return sh_error(
        err, 400, "label %s: value must be a string", k);
  }
  const char *cur_role = jx_str(cur, "Spec.Role", "worker");
  if (role && strcmp(role, "manager") == 0 &&
      strcmp(cur_role, "manager") != 0 &&
      store_check_new_manager(m->store, json_object_get(cur, "Description"),
                              err) < 0)
    return -1;
  if (role && strcmp(role, "worker") == 0 && strcmp(cur_role, "manager") == 0) {
    /* swarmkit refuses to demote the last manager; the leader's role loop
     * (dispatcher) takes a demoted node out of raft. */
    json_t *nodes = store_list(m->store, STORE_NODE);
    size_t i, managers = 0;
    json_t *n;
    json_array_foreach(nodes, i, n) managers +=
        strcmp(jx_str(n, "Spec.Role", ""), "manager") == 0;
    json_decref(nodes);
    if (managers <= 1) {
      rpc_error(err, 412, "attempting to demote the last manager of the swarm");
      err->status = 400; /* moby's status for FailedPrecondition */
      return -1;
    }
  }
  json_t *next = json_deep_copy(cur);
  json_t *ns = json_object_get(next, "Spec");
  json_object_set_new(
      ns, "Availability",
      json_string(a ? a : jx_str(cur, "Spec.Availability", "active")));
  json_object_set_new(ns, "Role", json_string(role ? role : cur_role));
  json_object_set_new(ns, "Labels",
                      json_is_object(labels) ? json_deep_copy(labels)
                                             : json_object());
  if (json_object_get(spec, "Name"))
    json_object_set(ns, "Name", json_object_get(spec, "Name"));
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_NODE, next, version);
  return manager_propose(m, tx, done, ud, err);
}

/* Docker's default NodeCertExpiry (90 days), and a margin for clocks. */
#define REMOVED_MIN_NS (INT64_C(90) * 24 * 3600 * NS_PER_SEC)
#define REMOVED_GRACE_NS (INT64_C(7) * 24 * 3600 * NS_PER_SEC)

void manager_tx_node_removed(struct manager *m, struct store_tx *tx,
                             const char *node_id) {
  /* Kept while a certificate issued to the node may still be valid: the
   * cluster's current expiry (at least Docker's default) from now. */
  int64_t exp =
      jx_int(store_cluster(m->store), "Spec.CAConfig.NodeCertExpiry", 0);
  if (exp < REMOVED_MIN_NS)
    exp = REMOVED_MIN_NS;
  store_tx_node_removed(tx, node_id, clock_wall_ns() + exp + REMOVED_GRACE_NS);
}

int manager_remove_node(struct manager *m, const char *ref, bool force,
                        manager_done_fn done, void *ud, sh_err *err) {
  json_t *cur = store_find(m->store, STORE_NODE, ref, err);
  if (!cur)
    return -1;
  const char *id = jx_str(cur, "ID", "");
  /* swarmkit refuses raft members even with --force: demote first. */
  if (manager_is_raft_member(m, id))
    return sh_error(err, 400,
                    "rpc error: code = FailedPrecondition desc = node %s is "
                    "a cluster manager and is a member of the raft cluster. "
                    "It must be demoted to worker before removal",
                    id);
  const char *state = jx_str(cur, "Status.State", "unknown");
  if (!force && strcmp(state, "ready") == 0)
    return sh_error(err, 400,
                    "rpc error: code = FailedPrecondition desc = node %s is "
                    "not down and can't be removed",
                    id);
  dispatcher_drop(m->disp, id);
  struct store_tx *tx = store_tx_new();
  store_tx_delete(tx, STORE_NODE, id, STORE_ANY_VERSION);
  manager_tx_node_removed(m, tx, id);
  return manager_propose(m, tx, done, ud, err);
}

/* ---- writes whose checks must see each other in flight ---- */

struct pending {
  json_t *list; /* the manager's, borrowed */
  json_t *item;
  manager_done_fn done;
  void *ud;
};

static void pending_done(void *ud, int status, const sh_err *err) {
  struct pending *p = ud;
  size_t i;
  json_t *n;
  json_array_foreach(p->list, i, n) {
    if (n == p->item) {
      json_array_remove(p->list, i);
      break;
    }
  }
  json_decref(p->item);
  if (p->done)
    p->done(p->ud, status, err);
  free(p);
}

/* Proposes tx with item in *list until raft decides. */
static int propose_pending(struct manager *m, json_t **list, json_t *item,
                           struct store_tx *tx, manager_done_fn done, void *ud,
                           sh_err *err) {
  if (!*list)
    *list = json_array();
  struct pending *p = xcalloc(1, sizeof *p);
  *p = (struct pending){
      .list = *list, .item = json_incref(item), .done = done, .ud = ud};
  json_array_append(*list, item);
  if (manager_propose(m, tx, pending_done, p, err) < 0) {
    json_array_remove(*list, json_array_size(*list) - 1);
    json_decref(p->item);
    free(p);
    return -1;
  }
  return 0;
}

/* ---- services ---- */

/* Networks named by a service must exist (moby resolves them before
 * swarmkit sees the spec); attaching tasks to them waits for the overlay
 * data plane, so it is refused rather than stored and ignored. */
/* As moby resolves a service's networks before swarmkit sees them: each
 * Target, a name or an ID (prefix), becomes the network's ID ("host":
 * the predefined swarm network, the node's own namespace). Returns a new spec,
 * NULL with err set. */
static json_t *resolve_service_networks(struct manager *m, const json_t *spec,
                                        sh_err *err) {
  json_t *out = json_deep_copy(spec);
  const char *lists[] = {"TaskTemplate.Networks", "Networks"};
  for (size_t l = 0; l < ARRAY_SIZE(lists); l++) {
    size_t i;
    json_t *a;
    json_array_foreach(jx_get(out, lists[l]), i, a) {
      const char *target = jx_str(a, "Target", "");
      if (strcmp(target, "bridge") == 0 || strcmp(target, "none") == 0) {
        json_decref(out);
        sh_error(err, 501,
                 "the %s network cannot be used with services in shoal yet; "
                 "use an overlay network or host",
                 target);
        return NULL;
      }
      json_t *net = networks_find(m->store, target, err);
      if (!net) {
        json_decref(out);
        return NULL;
      }
      if (jx_bool(net, "Spec.Ingress", false)) {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "Service cannot be explicitly attached to the ingress "
                 "network \"%s\"",
                 jx_str(net, "Spec.Name", ""));
        rpc_error(err, 400, msg);
        json_decref(out);
        return NULL;
      }
      json_object_set_new(a, "Target", json_string(jx_str(net, "ID", "")));
    }
  }
  return out;
}

int manager_create_service(struct manager *m, const json_t *spec,
                           const char *registry_auth, char id_out[ID_LEN + 1],
                           manager_done_fn done, void *ud, sh_err *err) {
  cleanup_json json_t *resolved = resolve_service_networks(m, spec, err);
  if (!resolved)
    return -1;
  id_new(id_out);
  json_t *svc =
      services_create(m->store, resolved, id_out, clock_wall_ns(), err);
  if (!svc)
    return -1;
  if (services_registry_auth(svc, NULL, false, registry_auth, NULL, err) < 0 ||
      secrets_check_removing(json_object_get(svc, "Spec"), m->rm_pending, err) <
          0) {
    json_decref(svc);
    return -1;
  }
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_SERVICE, json_incref(svc), STORE_MUST_CREATE);
  int rc = propose_pending(m, &m->svc_pending, svc, tx, done, ud, err);
  json_decref(svc);
  return rc;
}

int manager_update_service(struct manager *m, const char *ref, int64_t version,
                           const json_t *spec, const char *rollback,
                           const char *registry_auth, const char *auth_from,
                           manager_done_fn done, void *ud, sh_err *err) {
  cleanup_json json_t *resolved = resolve_service_networks(m, spec, err);
  if (!resolved)
    return -1;
  json_t *svc = services_update(m->store, ref, version, resolved, rollback,
                                clock_wall_ns(), err);
  if (!svc)
    return -1;
  const json_t *cur = store_get(m->store, STORE_SERVICE, jx_str(svc, "ID", ""));
  bool back = rollback && strcmp(rollback, "previous") == 0;
  if (services_registry_auth(svc, cur, back, registry_auth, auth_from, err) <
          0 ||
      secrets_check_removing(json_object_get(svc, "Spec"), m->rm_pending, err) <
          0) {
    json_decref(svc);
    return -1;
  }
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_SERVICE, json_incref(svc), version);
  int rc = propose_pending(m, &m->svc_pending, svc, tx, done, ud, err);
  json_decref(svc);
  return rc;
}

int manager_remove_service(struct manager *m, const char *ref,
                           manager_done_fn done, void *ud, sh_err *err) {
  const char *id = services_remove(m->store, ref, err);
  if (!id)
    return -1;
  struct store_tx *tx = store_tx_new();
  store_tx_delete(tx, STORE_SERVICE, id, STORE_ANY_VERSION);
  return manager_propose(m, tx, done, ud, err);
}

struct net_create {
  struct manager *m;
  json_t *net; /* in m->net_pending until decided */
  manager_done_fn done;
  void *ud;
};

static void net_created(void *ud, int status, const sh_err *err) {
  struct net_create *c = ud;
  size_t i;
  json_t *n;
  json_array_foreach(c->m->net_pending, i, n) {
    if (n == c->net) {
      json_array_remove(c->m->net_pending, i);
      break;
    }
  }
  if (c->done)
    c->done(c->ud, status, err);
  free(c);
}

int manager_create_network(struct manager *m, const json_t *req,
                           char id_out[ID_LEN + 1], manager_done_fn done,
                           void *ud, sh_err *err) {
  if (!m->net_pending)
    m->net_pending = json_array();
  id_new(id_out);
  json_t *net = networks_create(m->store, req, id_out, m->net_pending, err);
  if (!net)
    return -1;
  struct net_create *c = xcalloc(1, sizeof *c);
  *c = (struct net_create){.m = m, .net = net, .done = done, .ud = ud};
  json_array_append(m->net_pending, net);
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_NETWORK, net, STORE_MUST_CREATE);
  if (manager_propose(m, tx, net_created, c, err) < 0) {
    json_array_remove(m->net_pending, json_array_size(m->net_pending) - 1);
    free(c);
    return -1;
  }
  return 0;
}

int manager_remove_network(struct manager *m, const char *ref,
                           manager_done_fn done, void *ud, sh_err *err) {
  const char *id = networks_remove(m->store, ref, err);
  if (!id)
    return -1;
  struct store_tx *tx = store_tx_new();
  store_tx_delete(tx, STORE_NETWORK, id, STORE_ANY_VERSION);
  return manager_propose(m, tx, done, ud, err);
}

/* ---- secrets and configs ---- */

int manager_create_secret(struct manager *m, int kind, const json_t *spec,
                          char id_out[ID_LEN + 1], manager_done_fn done,
                          void *ud, sh_err *err) {
  id_new(id_out);
  json_t *obj = secrets_create(m->store, kind, spec, id_out, err);
  if (!obj)
    return -1;
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, kind, obj, STORE_MUST_CREATE);
  return manager_propose(m, tx, done, ud, err);
}

int manager_update_secret(struct manager *m, int kind, const char *ref,
                          int64_t version, const json_t *spec,
                          manager_done_fn done, void *ud, sh_err *err) {
  json_t *obj = secrets_update(m->store, kind, ref, spec, err);
  if (!obj)
    return -1;
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, kind, obj, version);
  return manager_propose(m, tx, done, ud, err);
}

int manager_remove_secret(struct manager *m, int kind, const char *ref,
                          manager_done_fn done, void *ud, sh_err *err) {
  const char *id = secrets_remove(m->store, kind, ref, err);
  if (!id)
    return -1;
  json_t *cur = store_get(m->store, kind, id);
  if (secrets_check_pending_use(kind, cur, m->svc_pending, err) < 0)
    return -1;
  cleanup_json json_t *item =
      json_pack("{s:i, s:s, s:s}", "Kind", kind, "ID", id, "Name",
                jx_str(cur, "Spec.Name", ""));
  struct store_tx *tx = store_tx_new();
  store_tx_delete(tx, kind, id, STORE_ANY_VERSION);
  return propose_pending(m, &m->rm_pending, item, tx, done, ud, err);
}

json_t *manager_service_view(struct manager *m, const json_t *svc,
                             bool insert_defaults, bool status) {
  json_t *v = services_view(svc, insert_defaults);
  if (!status)
    return v;
  json_object_set_new(v, "ServiceStatus",
                      services_status(m->store, svc, &m->lost));
  return v;
}
