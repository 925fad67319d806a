/* shoald's swarm lifecycle: init, join, leave, resume after restart. */
#include "daemon/daemon.h"

#include "agent/agent.h"
#include "agent/standalone.h"
#include "agent/worker.h"
#include "exec/exec.h"
#include "overlay/overlay.h"
#include "ca/ca.h"
#include "ca/keyfile.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/id.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/util.h"
#include "events/events.h"
#include "volume/volume.h"
#include "core/workq.h"
#include "http/client.h"
#include "http/server.h"
#include "image/image.h"
#include "lazy/heap.h"
#include "lazy/lazy.h"
#include "manager/manager.h"
#include "raft/raftnode.h"
#include "seccomp/seccomp.h"
#include "store/store.h"

#include <malloc.h>
#include <errno.h>
#include <ftw.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#define JOIN_TIMEOUT_MS 20000
#define MSG_SWARM_EXISTS                                                       \
  "This node is already part of a swarm. Use \"docker swarm leave\" to "       \
  "leave this swarm and join another one."
#define MSG_NO_SWARM "This node is not part of a swarm"
#define MSG_SWARM_LOCKED                                                       \
  "Swarm is encrypted and needs to be unlocked before it can be used. "        \
  "Please use \"docker swarm unlock\" to unlock it."
#define MSG_NOT_MANAGER                                                        \
  "This node is not a swarm manager. Worker nodes can't be used to view or "   \
  "modify cluster state. Please run this command on a manager node or "        \
  "promote the current node to a manager."
#define MSG_NOT_IN_SWARM                                                       \
  "This node is not a swarm manager. Use \"docker swarm init\" or \"docker "   \
  "swarm join\" to connect this node to swarm and try again."
#define MSG_JOIN_TIMEOUT                                                       \
  "Timeout was reached before node joined. The attempt to join the swarm "     \
  "will continue in the background. Use the \"docker info\" command to see "   \
  "the current swarm status of your node."

static json_t *node_description(const struct shoald *d);

static char *swarm_path(struct shoald *d, const char *leaf) {
  return xasprintf("%s/swarm%s%s", d->cfg.data_root, leaf ? "/" : "",
                   leaf ? leaf : "");
}

static void set_str(char **dst, const char *v) {
  char *old = *dst; /* v may be *dst itself */
  *dst = v ? xstrdup(v) : NULL;
  free(old);
}

static void forget_identity(struct shoald *d) {
  d->node_id[0] = d->cluster_id[0] = '\0';
  set_str(&d->role, NULL);
  set_str(&d->listen_addr, NULL);
  set_str(&d->advertise_addr, NULL);
  set_str(&d->availability, NULL);
  set_str(&d->cert_pem, NULL);
  set_str(&d->key_pem, NULL);
  set_str(&d->root_pem, NULL);
  OPENSSL_cleanse(d->raft_dek, sizeof d->raft_dek);
  d->have_dek = false;
  OPENSSL_cleanse(d->kek, sizeof d->kek);
  d->have_kek = false;
  d->kek_version = 0;
  set_str(&d->swarm_error, NULL);
  json_decref(d->managers);
  d->managers = NULL;
  json_decref(d->last_node);
  d->last_node = NULL;
  json_decref(d->last_ca);
  d->last_ca = NULL;
  uv_timer_stop(&d->renew_timer);
  ca_renewal_init(&d->renewal, d->renewal.clock);
}

/* Persists identity and membership; the key file is private. */
static int save_state(struct shoald *d, sh_err *err) {
  cleanup_free char *certdir = swarm_path(d, "certificates");
  if (mkdir_p(certdir, 0700, err) < 0)
    return -1;
  cleanup_free char *crt = swarm_path(d, "certificates/swarm-node.crt");
  cleanup_free char *key = swarm_path(d, "certificates/swarm-node.key");
  cleanup_free char *ca = swarm_path(d, "certificates/swarm-root-ca.crt");
  if (!d->have_dek && keyfile_random(d->raft_dek, sizeof d->raft_dek, err) < 0)
    return -1;
  d->have_dek = true;
  cleanup_free char *keytext = NULL;
  if (keyfile_encode(d->key_pem, d->raft_dek, d->have_kek ? d->kek : NULL,
                     d->kek_version, &keytext, err) < 0)
    return -1;
  int rc = write_file_atomic(key, keytext, strlen(keytext), 0600, err);
  OPENSSL_cleanse(keytext, strlen(keytext));
  if (rc < 0 ||
      write_file_atomic(crt, d->cert_pem, strlen(d->cert_pem), 0644, err) < 0 ||
      write_file_atomic(ca, d->root_pem, strlen(d->root_pem), 0644, err) < 0)
    return -1;
  json_t *st =
      json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:O}", "NodeID", d->node_id,
                "ClusterID", d->cluster_id, "Role", d->role, "ListenAddr",
                d->listen_addr, "AdvertiseAddr", d->advertise_addr,
                "Availability", d->availability ? d->availability : "active",
                "Managers", d->managers ? d->managers : json_array());
  /* The ForceRotate this node's certificate answers. */
  if (d->renewal.force_known)
    json_object_set_new(st, "ForceRotate",
                        json_integer((json_int_t)d->renewal.force_done));
  cleanup_free char *body = jx_dumps(st, JSON_INDENT(2), NULL);
  json_decref(st);
  cleanup_free char *path = swarm_path(d, "state.json");
  return write_file_atomic(path, body, strlen(body), 0600, err);
}

static int load_state(struct shoald *d, bool *found, sh_err *err) {
  cleanup_free char *path = swarm_path(d, "state.json");
  cleanup_free char *body = NULL;
  sh_err e = {0};
  *found = false;
  if (read_file(path, &body, NULL, &e) < 0) {
    if (e.status == 404)
      return 0;
    *err = e;
    return -1;
  }
  cleanup_json json_t *st = NULL;
  if (jx_parse_object(body, strlen(body), &st, err) < 0)
    return sh_err_wrap(err, "corrupt %s", path);
  cleanup_free char *crt = swarm_path(d, "certificates/swarm-node.crt");
  cleanup_free char *key = swarm_path(d, "certificates/swarm-node.key");
  cleanup_free char *ca = swarm_path(d, "certificates/swarm-root-ca.crt");
  cleanup_free char *keytext = NULL;
  if (read_file(crt, &d->cert_pem, NULL, err) < 0 ||
      read_file(key, &keytext, NULL, err) < 0 ||
      read_file(ca, &d->root_pem, NULL, err) < 0)
    return -1;
  /* Autolock: the key file waits for the unlock key. */
  bool locked = keyfile_locked(keytext);
  struct keyfile kf;
  int rc = locked ? 0 : keyfile_decode(keytext, NULL, &kf, err);
  OPENSSL_cleanse(keytext, strlen(keytext));
  if (rc < 0)
    return sh_err_wrap(err, "%s", key);
  if (!locked) {
    set_str(&d->key_pem, kf.key_pem);
    memcpy(d->raft_dek, kf.dek, sizeof d->raft_dek);
    d->have_dek = kf.has_dek;
    d->kek_version = kf.kek_version;
    keyfile_clear(&kf);
  }
  snprintf(d->node_id, sizeof d->node_id, "%s", jx_str(st, "NodeID", ""));
  snprintf(d->cluster_id, sizeof d->cluster_id, "%s",
           jx_str(st, "ClusterID", ""));
  set_str(&d->role, jx_str(st, "Role", "worker"));
  set_str(&d->listen_addr, jx_str(st, "ListenAddr", "0.0.0.0:2377"));
  set_str(&d->advertise_addr, jx_str(st, "AdvertiseAddr", ""));
  set_str(&d->availability, jx_str(st, "Availability", "active"));
  if (json_is_integer(json_object_get(st, "ForceRotate")))
    ca_renewal_force(&d->renewal, (uint64_t)jx_int(st, "ForceRotate", 0));
  json_t *mgrs = json_object_get(st, "Managers");
  d->managers = json_is_array(mgrs) ? json_deep_copy(mgrs) : json_array();
  /* A key file from before encryption at rest: a DEK before raft writes. */
  if (!locked && !d->have_dek && save_state(d, err) < 0)
    return -1;
  if (locked)
    d->swarm = SWARM_LOCKED;
  *found = true;
  return 0;
}

static int rm_entry(const char *p, const struct stat *sb, int flag,
                    struct FTW *ftw) {
  return remove(p) < 0 && errno != ENOENT ? -1 : 0;
}

static void clear_state(struct shoald *d) {
  cleanup_free char *dir = swarm_path(d, NULL);
  nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* As dockerd on init and join: docker_gwbridge exists on every node of a
 * swarm, before any task needs it. */
static void gwbridge_work(void *ud) {
  struct shoald *d = ud;
  sh_err err = {0};
  if (overlay_ensure_gwbridge(d->overlay, &err) < 0)
    log_warn("docker_gwbridge: %s", err.msg);
}

static void gwbridge_done(void *ud, int cancelled) {}

static void on_agent_ready(void *ud) {
  struct shoald *d = ud;
  if (d->overlay && !d->gwbridge_asked) {
    d->gwbridge_asked = true;
    workq_submit(d->work, gwbridge_work, gwbridge_done, d);
  }
  if (d->worker && d->agent)
    worker_set_vxlan_port(d->worker, agent_data_path_port(d->agent));
  if (d->swarm == SWARM_PENDING)
    d->swarm = SWARM_ACTIVE;
  if (d->join_done) {
    shoald_done_fn done = d->join_done;
    d->join_done = NULL;
    uv_timer_stop(&d->join_timer);
    done(d->join_ud, 0, NULL);
  }
}

static void on_agent_managers(void *ud, const json_t *managers) {
  struct shoald *d = ud;
  json_decref(d->managers);
  d->managers = json_deep_copy(managers);
  sh_err err = {0};
  if (save_state(d, &err) < 0)
    log_warn("saving manager list: %s", err.msg);
}

static void on_agent_rejected(void *ud, int status, const char *msg) {
  struct shoald *d = ud;
  if (d->swarm != SWARM_ERROR)
    log_warn("the swarm refused this node's session (%d): %s", status, msg);
}

/* ---- promote / demote: the node follows its Spec.Role ---- */

static void fill_manager_config(struct shoald *d, struct manager_config *mc,
                                const json_t *desc);

static void schedule_renewal(struct shoald *d);

static void role_change_done(struct shoald *d, const char *what,
                             const sh_err *err) {
  d->role_changing = false;
  schedule_renewal(d);
  if (err)
    log_error("%s failed: %s", what, err->msg);
  else
    log_info("%s: this node is now a %s", what, d->role);
}

static void promoted_joined(void *ud, int status, const sh_err *err) {
  struct shoald *d = ud;
  role_change_done(d, "promotion", status < 0 ? err : NULL);
}

static void promoted_join_raft(struct shoald *d) {
  sh_err err = {0};
  const char *remote = d->agent ? agent_manager(d->agent) : NULL;
  cleanup_free char *dir = swarm_path(d, NULL);
  cleanup_json json_t *desc = node_description(d);
  struct manager_config mc;
  fill_manager_config(d, &mc, desc);
  mc.state_dir = dir;
  if (!remote ||
      manager_join(&mc, remote, promoted_joined, d, &d->mgr, &err) < 0) {
    d->mgr = NULL;
    if (!remote)
      sh_error(&err, 503, "no manager to join");
    role_change_done(d, "promotion", &err);
  }
}

struct renew_ctx {
  struct shoald *d;
  char *key_pem;
  char *csr;
  bool to_manager;
  bool periodic; /* same role: expiry or ForceRotate */
};

static void on_agent_node(void *ud, const json_t *node);

static void renew_ctx_free(struct renew_ctx *c) {
  free(c->key_pem);
  free(c->csr);
  free(c);
}

static uint64_t rand64(void) {
  uint64_t v = 0;
  if (RAND_bytes((unsigned char *)&v, sizeof v) != 1)
    v = (uint64_t)clock_mono_ns();
  return v;
}

/* The current certificate's renewal point. */
static void renewal_track_cert(struct shoald *d) {
  struct ca_cert_info info;
  sh_err err = {0};
  if (!d->cert_pem || ca_cert_info(d->cert_pem, &info, &err) < 0)
    return;
  ca_renewal_set_cert(&d->renewal, info.not_before_ns, info.not_after_ns,
                      rand64());
}

static void check_ca(struct shoald *d);

/* A periodic renewal ended: the new certificate is in use (or the attempt
 * failed and waits for its backoff). A role change it held back runs now. */
static void periodic_done(struct shoald *d, const struct ca_cert_info *info,
                          const sh_err *err) {
  if (err) {
    log_warn("certificate renewal failed, retrying: %s", err->msg);
    ca_renewal_failed(&d->renewal);
  } else {
    ca_renewal_done(&d->renewal, info->not_before_ns, info->not_after_ns,
                    rand64());
    char until[64];
    log_info("certificate renewed, valid until %s",
             clock_format_rfc3339(info->not_after_ns, until, sizeof until));
  }
  schedule_renewal(d);
  /* A root rotation may have started while it ran. */
  if (!err)
    check_ca(d);
  if (d->last_node) {
    cleanup_json json_t *n = json_incref(d->last_node);
    on_agent_node(d, n);
  }
}

/* The node's TLS identity everywhere it is used: files, agent calls, and
 * on a manager the swarm port, raft dials and calls to other managers;
 * root, when not NULL, is a new root to trust (and the only one). */
static int use_identity(struct shoald *d, const char *cert, const char *key,
                        const char *root, sh_err *err) {
  set_str(&d->cert_pem, cert);
  set_str(&d->key_pem, key);
  if (root)
    set_str(&d->root_pem, root);
  if (save_state(d, err) < 0)
    return -1;
  if (d->agent)
    agent_set_identity(d->agent, d->cert_pem, d->key_pem,
                       root ? d->root_pem : NULL);
  if (d->mgr && manager_set_identity(d->mgr, d->cert_pem, d->key_pem,
                                     root ? d->root_pem : NULL, err) < 0)
    return -1;
  return 0;
}

/* The cluster's root after a rotation, offered with a renewed
 * certificate that does not chain to the root this node trusts. */
static const char *offered_root(struct shoald *d, const json_t *resp,
                                const char *cert) {
  const char *root = jx_str(resp, "RootCA", "");
  if (!*root || !cert || strcmp(root, d->root_pem) == 0 ||
      ca_cert_verify(cert, root, NULL) < 0)
    return NULL;
  return root;
}

static void renewed(const struct http_result *res, void *ud) {
  struct renew_ctx *c = ud;
  struct shoald *d = c->d;
  sh_err err = {0};
  /* The node left the swarm (or is stopping) meanwhile: nothing to renew,
   * and no state to write back. */
  if (c->periodic &&
      (!d->renewal.in_flight || d->swarm != SWARM_ACTIVE || !d->agent))
    return renew_ctx_free(c);
  cleanup_json json_t *j =
      res->status == 200 ? json_loads(res->body, 0, NULL) : NULL;
  const char *cert = jx_str(j, "Certificate", NULL);
  struct ca_cert_info info;
  const char *root = offered_root(d, j, cert);
  if (!cert || ca_cert_verify(cert, root ? root : d->root_pem, &err) < 0 ||
      ca_key_matches(cert, c->key_pem, &err) < 0 ||
      ca_cert_info(cert, &info, &err) < 0) {
    if (!err.msg[0])
      sh_error(&err, res->status ? res->status : 503,
               "certificate renewal failed%s%s", j ? ": " : "",
               jx_str(j, "message", ""));
    if (c->periodic)
      periodic_done(d, NULL, &err);
    else
      role_change_done(d, c->to_manager ? "promotion" : "demotion", &err);
    goto out;
  }
  if (root)
    log_info("the swarm's root CA changed: trusting the new root only");
  if (c->periodic) {
    if (use_identity(d, cert, c->key_pem, root, &err) < 0)
      periodic_done(d, NULL, &err);
    else
      periodic_done(d, &info, NULL);
    goto out;
  }
  set_str(&d->cert_pem, cert);
  set_str(&d->key_pem, c->key_pem);
  if (root)
    set_str(&d->root_pem, root);
  renewal_track_cert(d);
  set_str(&d->role, c->to_manager ? "manager" : "worker");
  if (c->to_manager && *jx_str(j, "Addr", ""))
    set_str(&d->advertise_addr, jx_str(j, "Addr", ""));
  if (save_state(d, &err) < 0) {
    role_change_done(d, "role change", &err);
    goto out;
  }
  if (d->agent)
    agent_set_identity(d->agent, d->cert_pem, d->key_pem,
                       root ? d->root_pem : NULL);
  if (!c->to_manager) {
    role_change_done(d, "demotion", NULL);
    goto out;
  }
  promoted_join_raft(d);
out:
  renew_ctx_free(c);
}

/* Asks a manager for a new certificate: of the new role (promotion,
 * demotion: not this node), or of the same one (periodic). */
static void renew_cert(struct shoald *d, bool to_manager, bool periodic,
                       const char *remote) {
  struct renew_ctx *c = xcalloc(1, sizeof *c);
  c->d = d;
  c->to_manager = to_manager;
  c->periodic = periodic;
  sh_err err = {0};
  if (!remote || ca_csr_create(&c->key_pem, &c->csr, &err) < 0) {
    if (!remote)
      sh_error(&err, 503, "no manager to renew the certificate with");
    if (periodic)
      periodic_done(d, NULL, &err);
    else
      role_change_done(d, "role change", &err);
    renew_ctx_free(c);
    return;
  }
  json_t *body =
      json_pack("{s:s, s:s}", "CSR", c->csr, "Addr",
                to_manager && d->advertise_addr ? d->advertise_addr : "");
  cleanup_free char *b = jx_dump(body);
  json_decref(body);
  cleanup_free char *url = xasprintf("https://%s/swarm/v1/renew", remote);
  struct http_call_opts o = {.method = "POST",
                             .url = url,
                             .body = b,
                             .body_len = strlen(b),
                             .cert_pem = d->cert_pem,
                             .key_pem = d->key_pem,
                             .ca_pem = d->root_pem,
                             .timeout_ms = 15000};
  http_client_call(d->client, &o, NULL, renewed, c);
}

static void renew_for_role(struct shoald *d, bool to_manager,
                           const char *remote) {
  renew_cert(d, to_manager, false, remote);
}

static void renew_tick(uv_timer_t *t) {
  struct shoald *d = t->data;
  if (d->swarm == SWARM_INACTIVE)
    return;
  if (ca_renewal_wait(&d->renewal) > 0)
    return schedule_renewal(d);
  /* Due, but joining or a role change under way (which renews anyway):
   * look again in a second. */
  if (d->swarm != SWARM_ACTIVE || !d->agent || d->role_changing) {
    uv_timer_start(&d->renew_timer, renew_tick, 1000, 0);
    return;
  }
  ca_renewal_begin(&d->renewal);
  log_info("renewing this node's certificate");
  renew_cert(d, false, true, agent_manager(d->agent));
}

/* Re-arms the renewal timer; capped so a wall-clock jump (or a suspend)
 * is noticed within minutes. */
#define RENEW_RECHECK_MS (5 * 60 * 1000)
static void schedule_renewal(struct shoald *d) {
  int64_t wait = ca_renewal_wait(&d->renewal);
  if (wait == INT64_MAX || d->swarm == SWARM_INACTIVE) {
    uv_timer_stop(&d->renew_timer);
    return;
  }
  uint64_t ms = (uint64_t)(wait / NS_PER_MS);
  if (ms > RENEW_RECHECK_MS)
    ms = RENEW_RECHECK_MS;
  uv_timer_start(&d->renew_timer, renew_tick, ms, 0);
}

/* The CA facts besides ForceRotate: the root (a root rotation completed:
 * trust the new root only, once this node's certificate chains to it)
 * and the issuer the cluster wants (a rotation under way, or a
 * certificate from before its end: renew now). */
static void check_ca(struct shoald *d) {
  if (!d->last_ca || !d->cert_pem || !d->key_pem || !d->root_pem ||
      d->swarm != SWARM_ACTIVE)
    return;
  sh_err err = {0};
  const char *root = jx_str(d->last_ca, "RootCA", "");
  if (*root && strcmp(root, d->root_pem) != 0 &&
      ca_cert_verify(d->cert_pem, root, NULL) == 0) {
    cleanup_free char *cert = xstrdup(d->cert_pem);
    cleanup_free char *key = xstrdup(d->key_pem);
    log_info("the swarm's root CA changed: trusting the new root only");
    if (use_identity(d, cert, key, root, &err) < 0)
      log_warn("using the new root CA: %s", err.msg);
  }
  struct ca_issuer want = {
      .subject = (char *)jx_str(d->last_ca, "Issuer.Subject", NULL),
      .public_key = (char *)jx_str(d->last_ca, "Issuer.PublicKey", NULL)};
  struct ca_issuer have = {0};
  if (!want.subject || !want.public_key)
    return;
  if ((ca_cert_issuer(d->cert_pem, d->root_pem, &have, NULL) < 0 ||
       !ca_issuer_equal(&have, &want)) &&
      ca_renewal_wrong_issuer(&d->renewal)) {
    log_info("root CA rotation: renewing the certificate from the new root");
    schedule_renewal(d);
  }
  ca_issuer_clear(&have);
}

static void on_agent_ca(void *ud, const json_t *ca) {
  struct shoald *d = ud;
  json_decref(d->last_ca);
  d->last_ca = json_deep_copy(ca);
  check_ca(d);
  bool was_known = d->renewal.force_known;
  uint64_t v = (uint64_t)jx_int(ca, "ForceRotate", 0);
  if (ca_renewal_force(&d->renewal, v)) {
    log_info("ForceRotate is now %llu: renewing the certificate",
             (unsigned long long)v);
    schedule_renewal(d);
  } else if (!was_known) {
    sh_err err = {0};
    if (save_state(d, &err) < 0)
      log_warn("saving state: %s", err.msg);
  }
}

/* A manager other than this node, for calls a demoted manager makes. */
static const char *other_manager(struct shoald *d) {
  size_t i;
  json_t *v;
  json_array_foreach(d->managers, i, v) {
    const char *a = json_string_value(v);
    if (a && (!d->advertise_addr || strcmp(a, d->advertise_addr) != 0))
      return a;
  }
  return NULL;
}

static void demoted_closed(void *ud) {
  struct shoald *d = ud;
  /* Out of raft for good: its log must not come back on restart. */
  cleanup_free char *raftdir = swarm_path(d, "raft");
  nftw(raftdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  renew_for_role(d, false, other_manager(d));
}

static void on_agent_node(void *ud, const json_t *node) {
  struct shoald *d = ud;
  if (node != d->last_node) {
    json_decref(d->last_node);
    d->last_node = json_deep_copy(node);
  }
  /* A periodic renewal under way: its end looks at the node again. */
  if (d->role_changing || d->renewal.in_flight || !d->role ||
      d->swarm != SWARM_ACTIVE)
    return;
  const char *want = jx_str(node, "Spec.Role", "worker");
  json_t *ms = json_object_get(node, "ManagerStatus");
  bool in_raft = json_is_object(ms);
  if (strcmp(d->role, "worker") == 0 && strcmp(want, "manager") == 0) {
    d->role_changing = true;
    log_info("promoted: getting a manager certificate and joining raft");
    renew_for_role(d, true, d->agent ? agent_manager(d->agent) : NULL);
  } else if (strcmp(d->role, "manager") == 0 && strcmp(want, "worker") == 0 &&
             !in_raft && d->mgr) {
    d->role_changing = true;
    log_info("demoted: stopping the manager");
    struct manager *m = d->mgr;
    d->mgr = NULL;
    manager_close(m, demoted_closed, d);
  }
}

/* This node's description for the managers; a node without a runtime adds
 * why (Description._RuntimeError, kept out of the API's view): the
 * dispatcher shows it as the node's status message and the scheduler
 * places no task here. */
static json_t *node_description(const struct shoald *d) {
  json_t *desc = agent_local_description(d->hostname, SHOAL_VERSION);
  /* What raft entries this build applies (store.h): the leader waits for
   * every manager before it uses a newer form. */
  json_object_set_new(desc, STORE_ENTRIES_KEY, json_integer(STORE_ENTRIES));
  if (d->runtime_error)
    json_object_set_new(desc, "_RuntimeError", json_string(d->runtime_error));
  return desc;
}

/* Without a runtime there is no worker: a task the node is given anyway
 * (placed before the managers knew) is rejected with the reason, never
 * left assigned. */
static void reject_without_runtime(struct shoald *d, const json_t *tasks) {
  if (!d->agent || !d->runtime_error)
    return;
  json_t *updates = json_array();
  char ts[64];
  clock_format_rfc3339(clock_wall_ns(), ts, sizeof ts);
  size_t i;
  json_t *t;
  json_array_foreach(tasks, i, t) {
    const char *state = jx_str(t, "Status.State", "");
    const char *desired = jx_str(t, "DesiredState", "");
    if (strcmp(desired, "running") != 0 && strcmp(desired, "ready") != 0)
      continue;
    if (strcmp(state, "new") != 0 && strcmp(state, "pending") != 0 &&
        strcmp(state, "assigned") != 0 && strcmp(state, "accepted") != 0)
      continue;
    json_array_append_new(updates,
                          json_pack("{s:s, s:{s:s, s:s, s:s, s:s}}", "ID",
                                    jx_str(t, "ID", ""), "Status", "Timestamp",
                                    ts, "State", "rejected", "Message",
                                    "preparing", "Err", d->runtime_error));
  }
  if (json_array_size(updates) > 0)
    agent_report(d->agent, updates);
  json_decref(updates);
}

static void worker_report(void *ud, const json_t *updates) {
  struct shoald *d = ud;
  if (d->agent)
    agent_report(d->agent, updates);
}

static void on_agent_assignments(void *ud, const json_t *tasks,
                                 const json_t *files) {
  struct shoald *d = ud;
  if (d->worker) {
    worker_set_files(d->worker, files);
    worker_assign(d->worker, tasks);
  } else
    reject_without_runtime(d, tasks);
}

static void on_agent_ingress(void *ud, const json_t *att) {
  struct shoald *d = ud;
  if (d->worker)
    worker_set_ingress(d->worker, att);
}

static void on_agent_peers(void *ud, const json_t *msg) {
  struct shoald *d = ud;
  if (d->worker)
    worker_peers(d->worker, msg);
}

static void worker_send_logs(void *ud, const char *sub, const char *task_id,
                             const void *data, size_t len, bool last,
                             void (*sent)(void *arg), void *sent_arg) {
  struct shoald *d = ud;
  if (d->agent)
    agent_send_logs(d->agent, sub, task_id, data, len, last, sent, sent_arg);
  else if (sent)
    sent(sent_arg);
}

static void on_agent_logs(void *ud, const json_t *msg) {
  struct shoald *d = ud;
  if (d->worker)
    worker_logs(d->worker, msg);
}

static void on_agent_logs_cancel(void *ud, const char *sub) {
  struct shoald *d = ud;
  if (d->worker)
    worker_logs_cancel(d->worker, sub);
}

/* ---- standalone containers on swarm networks ---- */

struct sa_call {
  standalone_call_done done;
  void *cbud;
};

static void sa_called(void *ud, const json_t *answer, const sh_err *err) {
  struct sa_call *c = ud;
  c->done(c->cbud, answer, err);
  free(c);
}

static void sa_call(void *ud, const char *path, const json_t *body,
                    standalone_call_done done, void *cbud) {
  struct shoald *d = ud;
  if (!d->agent) {
    /* Not in a swarm: only local networks exist (dockerd's 404). */
    sh_err err = {0};
    if (strcmp(path, "/swarm/v1/attach") == 0)
      sh_error(&err, 404, "network %s not found", jx_str(body, "Target", ""));
    else
      sh_error(&err, 503, "this node is not in a swarm");
    done(cbud, NULL, &err);
    return;
  }
  struct sa_call *c = xcalloc(1, sizeof *c);
  c->done = done;
  c->cbud = cbud;
  agent_call(d->agent, path, body, sa_called, c);
}

static void sa_dns_add(void *ud, const char *id, int fd, const json_t *nets) {
  struct shoald *d = ud;
  if (d->worker) {
    worker_dns_add(d->worker, id, fd, nets);
    return;
  }
  json_t *old = json_object_get(d->dns_waiting, id);
  if (old)
    close((int)jx_int(old, "Fd", -1));
  json_object_set_new(d->dns_waiting, id,
                      json_pack("{s:i, s:O}", "Fd", fd, "Nets", nets));
}

static void sa_dns_remove(void *ud, const char *id) {
  struct shoald *d = ud;
  json_t *old = json_object_get(d->dns_waiting, id);
  if (old) {
    close((int)jx_int(old, "Fd", -1));
    json_object_del(d->dns_waiting, id);
  }
  if (d->worker)
    worker_dns_remove(d->worker, id);
}

static void start_worker(struct shoald *d) {
  if (d->worker || !d->exec)
    return;
  struct worker_config wc = {
      .loop = d->loop,
      .work = d->work,
      .images = d->images,
      .exec = d->exec,
      .exec_root = d->cfg.exec_root,
      .overlay = d->overlay,
      .seccomp = d->seccomp,
      .dns = (const char *const *)d->cfg.dns,
      .node_id = d->node_id,
      .events = d->events,
      .report = worker_report,
      .send_logs = worker_send_logs,
      .ud = d,
  };
  d->worker = worker_new(&wc);
  worker_adopt(d->worker);
  const char *id;
  json_t *v;
  json_object_foreach(d->dns_waiting, id, v) worker_dns_add(
      d->worker, id, (int)jx_int(v, "Fd", -1), json_object_get(v, "Nets"));
  json_object_clear(d->dns_waiting);
}

static void stop_worker(struct shoald *d) {
  if (d->worker) {
    worker_free(d->worker);
    d->worker = NULL;
  }
}

static void start_agent(struct shoald *d) {
  cleanup_json json_t *desc = node_description(d);
  struct agent_config ac = {
      .loop = d->loop,
      .client = d->client,
      .node_id = d->node_id,
      .cert_pem = d->cert_pem,
      .key_pem = d->key_pem,
      .root_pem = d->root_pem,
      .managers = d->managers,
      .description = desc,
      .on_ready = on_agent_ready,
      .on_managers = on_agent_managers,
      .on_node = on_agent_node,
      .on_ca = on_agent_ca,
      .on_assignments = on_agent_assignments,
      .on_peers = on_agent_peers,
      .on_ingress = on_agent_ingress,
      .on_logs = on_agent_logs,
      .on_logs_cancel = on_agent_logs_cancel,
      .on_rejected = on_agent_rejected,
      .ud = d,
  };
  d->agent = agent_start(&ac);
  start_worker(d);
  renewal_track_cert(d);
  schedule_renewal(d);
}

/* Autolock turned on, off, or its key rotated (as this manager applied
 * it): the key file is sealed again under the new KEK, or opened. */
static void unlock_key_changed(void *ud, const char *key, uint64_t version) {
  struct shoald *d = ud;
  /* A state older than the one the file is sealed for (log replay). */
  if (version < d->kek_version)
    return;
  sh_err err = {0};
  unsigned char kek[KEYFILE_KEK_LEN];
  if (key && keyfile_unlock_key_parse(key, kek, &err) < 0) {
    log_error("autolock: the cluster's unlock key does not parse");
    return;
  }
  bool was = d->have_kek;
  if (!key && !was)
    return;
  if (key && was && CRYPTO_memcmp(kek, d->kek, sizeof kek) == 0)
    return;
  d->have_kek = key != NULL;
  d->kek_version = version;
  if (key)
    memcpy(d->kek, kek, sizeof d->kek);
  else
    OPENSSL_cleanse(d->kek, sizeof d->kek);
  OPENSSL_cleanse(kek, sizeof kek);
  if (save_state(d, &err) < 0)
    log_error("autolock: re-sealing the key file: %s", err.msg);
  else
    log_info("autolock: %s",
             !key  ? "off, the key file is no longer sealed"
             : was ? "new unlock key, the key file is sealed again"
                   : "on, the key file is sealed under the unlock key");
}

static void fill_manager_config(struct shoald *d, struct manager_config *mc,
                                const json_t *desc) {
  *mc = (struct manager_config){
      .loop = d->loop,
      .client = d->client,
      .cluster_id = d->cluster_id,
      .state_dir = NULL,
      .node_id = d->node_id,
      .listen_addr = d->listen_addr,
      .advertise_addr = d->advertise_addr,
      .cert_pem = d->cert_pem,
      .key_pem = d->key_pem,
      .raft_dek = d->raft_dek,
      .root_pem = d->root_pem,
      .hostname = d->hostname,
      .availability = d->availability,
      .engine_version = SHOAL_VERSION,
      .description = desc,
      .forwarded = d->api_forwarded,
      .forwarded_ud = d,
      .unlock_key_changed = unlock_key_changed,
      .unlock_key_ud = d,
      .events = d->events,
  };
}

/* glibc keeps freed memory in each thread's arena; after a burst (a pull,
 * fifty starts) the daemon would hold it for good. Give it back once the
 * loop has been idle for a whole interval: a trim of a large heap takes
 * milliseconds, which must not land in the middle of serving a burst. */
#define TRIM_INTERVAL_MS 10000
#define TRIM_MAX_BUSY_PERMILLE 20 /* loop busy at most 2% of the interval */
/* libcurl and libarchive (with ~150 libraries under them) and
 * libnftables are closed again this long after their last use: a burst
 * of pulls or of rule changes keeps them, reloading costs ~10 ms. */
#define LAZY_IDLE_MS 5000

/* Pulls, creates and starts: a start mostly waits for conmon and crun, so
 * two per core keep the cores busy (4 on the 2-core machines measured
 * here); a big host is not held to 4 at a time. */
static int work_threads(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 2)
    return 4;
  return n > 16 ? 32 : (int)(2 * n);
}

static void trim_tick(uv_timer_t *t) {
  struct shoald *d = t->data;
  uint64_t now = uv_hrtime(), idle = uv_metrics_idle_time(d->loop);
  uint64_t span = now - d->trim_at, idled = idle - d->trim_idle;
  d->trim_at = now;
  d->trim_idle = idle;
  if (span > idled && (span - idled) * 1000 > span * TRIM_MAX_BUSY_PERMILLE)
    return;
  lazy_unload_idle(LAZY_IDLE_MS);
  malloc_trim(0);
  heap_json_collect();
}

struct vol_event {
  struct shoald *d;
  char action[16];
  char name[];
};

static void vol_event_publish(void *ud, int cancelled) {
  struct vol_event *v = ud;
  if (!cancelled && v->d->events)
    events_publish(v->d->events, "volume", v->action, v->name,
                   json_pack("{s:s}", "driver", "local"), "local");
  free(v);
}

/* dockerd's volume create and destroy events, whoever made the change
 * (the volume API, docker run -v, a task, a prune), from any thread. */
static void on_volume_change(const char *name, const char *action, void *ud) {
  struct shoald *d = ud;
  struct vol_event *v = xcalloc(1, sizeof *v + strlen(name) + 1);
  v->d = d;
  snprintf(v->action, sizeof v->action, "%s", action);
  strcpy(v->name, name);
  workq_post(d->work, vol_event_publish, v);
}

int shoald_init(struct shoald *d, uv_loop_t *loop, sh_err *err) {
  d->loop = loop;
  /* Up to 8 arenas per core by default, each keeping its own free pages.
   * The daemon's threads mostly wait on crun and the network, and a big
   * manager's JSON is on mimalloc (lazy/heap.h), so one arena does not
   * contend. With two, what a pull left live in the second arena kept
   * 0.1-0.8 MB of it resident when idle, by which thread took the pull
   * (idle after init+pull, anonymous: 2.7-3.9 MB in four runs, 1.9-2.7
   * MB in five with one arena; 50 tasks' start time unchanged). */
  mallopt(M_ARENA_MAX, 1);
  if (uv_loop_configure(loop, UV_METRICS_IDLE_TIME) != 0)
    log_warn("no loop idle metrics: freed heap is not trimmed");
  d->trim_at = uv_hrtime();
  d->trim_idle = uv_metrics_idle_time(loop);
  uv_timer_init(loop, &d->trim_timer);
  d->trim_timer.data = d;
  uv_timer_start(&d->trim_timer, trim_tick, TRIM_INTERVAL_MS, TRIM_INTERVAL_MS);
  uv_unref((uv_handle_t *)&d->trim_timer);
  d->started_ns = clock_wall_ns();
  d->events = events_new();
  if (gethostname(d->hostname, sizeof d->hostname) < 0)
    snprintf(d->hostname, sizeof d->hostname, "localhost");
  d->client = http_client_new(loop);
  d->work = workq_new(loop, work_threads());
  d->reads = workq_new(loop, 2);
  volume_set_hook(on_volume_change, d);
  cleanup_free char *imgroot = xasprintf("%s/image", d->cfg.data_root);
  struct image_opts io = {
      .mirrors = (const char *const *)d->cfg.mirrors,
      .insecure = (const char *const *)d->cfg.insecure,
      .max_downloads = d->cfg.max_downloads,
  };
  if (image_store_open(imgroot, &io, &d->images, err) < 0)
    return sh_err_wrap(err, "opening the image store");
  sh_err xerr = {0};
  if (exec_open(d->cfg.data_root, d->cfg.exec_root, &d->exec, &xerr) < 0) {
    /* A manager without a runtime still manages; tasks sent here fail. */
    log_warn("no container runtime: %s", xerr.msg);
    d->exec = NULL;
    d->runtime_error = xasprintf("no container runtime: %s", xerr.msg);
  }
  /* As dockerd built without seccomp when the profile cannot be had:
   * tasks run unconfined, `docker info` does not claim it. */
  sh_err serr = {0};
  if (d->exec &&
      seccomp_profile_load(SECCOMP_DEFAULT_PROFILE, &d->seccomp, &serr) < 0)
    log_warn("no default seccomp profile, tasks run without one: %s", serr.msg);
  struct overlay_config oc = {
      .exec_root = d->cfg.exec_root,
      .data_root = d->cfg.data_root,
      .netns_fd = -1,
      .pools = d->cfg.pools,
  };
  sh_err oerr = {0};
  if (d->exec && overlay_open(&oc, &d->overlay, &oerr) < 0) {
    /* Tasks still run, in namespaces of their own without networks. */
    log_warn("no network data plane: %s", oerr.msg);
    d->overlay = NULL;
  } else if (d->overlay && overlay_ensure_bridge(d->overlay, &oerr) < 0) {
    log_warn("the bridge network (docker0): %s", oerr.msg);
  }
  if (d->exec) {
    struct standalone_config sc = {
        .loop = loop,
        .work = d->work,
        .images = d->images,
        .exec = d->exec,
        .overlay = d->overlay,
        .events = d->events,
        .seccomp = d->seccomp,
        .data_root = d->cfg.data_root,
        .exec_root = d->cfg.exec_root,
        .bridge_id =
            d->local_network_id ? d->local_network_id(d, "bridge") : NULL,
        .call = sa_call,
        .dns_add = sa_dns_add,
        .dns_remove = sa_dns_remove,
        .ud = d,
    };
    d->dns_waiting = json_object();
    d->standalone = standalone_new(&sc);
    standalone_adopt(d->standalone);
  }
  uv_timer_init(loop, &d->join_timer);
  d->join_timer.data = d;
  uv_timer_init(loop, &d->renew_timer);
  d->renew_timer.data = d;
  if (!d->renewal.clock)
    ca_renewal_init(&d->renewal, &clock_system);
  return 0;
}

static int open_manager(struct shoald *d, bool force_new, sh_err *err) {
  cleanup_free char *dir = swarm_path(d, NULL);
  cleanup_json json_t *desc = node_description(d);
  struct manager_config mc;
  fill_manager_config(d, &mc, desc);
  mc.state_dir = dir;
  return manager_open(&mc, force_new, &d->mgr, err);
}

int shoald_resume(struct shoald *d, sh_err *err) {
  bool found = false;
  if (load_state(d, &found, err) < 0)
    return -1;
  if (!found)
    return 0;
  if (d->swarm == SWARM_LOCKED) {
    log_warn("swarm is locked: this manager starts once \"docker swarm "
             "unlock\" gives it the unlock key");
    return 0;
  }
  if (strcmp(d->role, "manager") == 0 && open_manager(d, false, err) < 0) {
    d->swarm = SWARM_ERROR;
    set_str(&d->swarm_error, err->msg);
    return -1;
  }
  d->swarm = SWARM_ACTIVE;
  start_agent(d);
  log_info("resumed swarm membership as %s, node %s", d->role, d->node_id);
  return 0;
}

int shoald_swarm_unlock(struct shoald *d, const char *key, sh_err *err) {
  if (d->swarm != SWARM_LOCKED)
    return sh_error(err, 400, "swarm is not locked");
  unsigned char kek[KEYFILE_KEK_LEN];
  if (keyfile_unlock_key_parse(key, kek, err) < 0)
    return -1;
  cleanup_free char *path = swarm_path(d, "certificates/swarm-node.key");
  cleanup_free char *text = NULL;
  if (read_file(path, &text, NULL, err) < 0)
    return -1;
  struct keyfile kf;
  int rc = keyfile_decode(text, kek, &kf, err);
  OPENSSL_cleanse(text, strlen(text));
  if (rc < 0) {
    OPENSSL_cleanse(kek, sizeof kek);
    if (err->status == 400)
      return sh_error(err, 401,
                      "swarm could not be unlocked: invalid key provided");
    return -1;
  }
  set_str(&d->key_pem, kf.key_pem);
  memcpy(d->raft_dek, kf.dek, sizeof d->raft_dek);
  d->have_dek = kf.has_dek;
  memcpy(d->kek, kek, sizeof d->kek);
  d->have_kek = true;
  d->kek_version = kf.kek_version;
  OPENSSL_cleanse(kek, sizeof kek);
  keyfile_clear(&kf);
  d->swarm = SWARM_ACTIVE;
  if (strcmp(d->role, "manager") == 0 && open_manager(d, false, err) < 0) {
    d->swarm = SWARM_ERROR;
    set_str(&d->swarm_error, err->msg);
    return -1;
  }
  start_agent(d);
  log_info("swarm unlocked, node %s", d->node_id);
  return 0;
}

const char *shoald_swarm_state_name(const struct shoald *d) {
  switch (d->swarm) {
  case SWARM_PENDING:
    return "pending";
  case SWARM_ACTIVE:
    return "active";
  case SWARM_ERROR:
    return "error";
  case SWARM_LOCKED:
    return "locked";
  default:
    return "inactive";
  }
}

bool shoald_is_manager(const struct shoald *d) {
  return d->mgr != NULL;
}

int shoald_require_manager(const struct shoald *d, sh_err *err) {
  /* Like swarmkit, cluster state is only served while there is a leader:
   * without quorum a manager's copy may be stale. */
  if (d->mgr && !manager_leader_addr(d->mgr))
    return sh_error(err, 503, RAFTNODE_NO_LEADER_MSG);
  if (d->mgr)
    return 0;
  if (d->swarm == SWARM_INACTIVE)
    return sh_error(err, 503, MSG_NOT_IN_SWARM);
  if (d->swarm == SWARM_LOCKED)
    return sh_error(err, 503, MSG_SWARM_LOCKED);
  return sh_error(err, 503, MSG_NOT_MANAGER);
}

/* ---- swarm init ---- */

struct init_ctx {
  struct shoald *d;
  shoald_done_fn done;
  void *ud;
};

static void init_committed(void *ud, int status, const sh_err *err) {
  struct init_ctx *c = ud;
  struct shoald *d = c->d;
  if (status < 0) {
    sh_err e = *err;
    if (d->mgr) {
      manager_close(d->mgr, NULL, NULL);
      d->mgr = NULL;
    }
    clear_state(d);
    forget_identity(d);
    d->swarm = SWARM_INACTIVE;
    c->done(c->ud, -1, &e);
    free(c);
    return;
  }
  d->swarm = SWARM_ACTIVE;
  start_agent(d);
  log_info("swarm initialized, node %s is a manager", d->node_id);
  c->done(c->ud, 0, NULL);
  free(c);
}

/* Splits "host[:port]" keeping the default port when absent. */
static int host_port(const char *in, const char *dflt_port, char *host,
                     size_t hn, char *port, size_t pn) {
  const char *colon = strrchr(in, ':');
  if (colon && strchr(in, ':') == colon) {
    snprintf(host, hn, "%.*s", (int)(colon - in), in);
    snprintf(port, pn, "%s", colon + 1);
  } else {
    snprintf(host, hn, "%s", in);
    snprintf(port, pn, "%s", dflt_port);
  }
  return 0;
}

static int valid_port(const char *p) {
  char *end;
  long v = strtol(p, &end, 10);
  return *p && !*end && v > 0 && v < 65536;
}

/* Resolves listen and advertise addresses into d (as dockerd). */
static int resolve_addrs(struct shoald *d, const json_t *req, sh_err *err) {
  const char *listen = jx_str(req, "ListenAddr", "");
  if (!*listen)
    listen = "0.0.0.0:2377";
  char lhost[128], lport[16], lip[64];
  host_port(listen, "2377", lhost, sizeof lhost, lport, sizeof lport);
  if (!valid_port(lport))
    return sh_error(err, 400, "could not parse listen address %s", listen);
  if (shoald_resolve_listen(lhost, lip, sizeof lip, err) < 0)
    return -1;
  const char *adv = jx_str(req, "AdvertiseAddr", "");
  char ahost[128] = "", aport[16], aip[64];
  if (*adv) {
    host_port(adv, lport, ahost, sizeof ahost, aport, sizeof aport);
    if (!valid_port(aport))
      return sh_error(err, 400,
                      "advertise address must be a non-zero IP address or "
                      "network interface (with optional port number)");
  } else {
    snprintf(aport, sizeof aport, "%s", lport);
  }
  if (shoald_pick_advertise_ip(ahost, lip, aip, sizeof aip, err) < 0)
    return -1;
  cleanup_free char *la = xasprintf("%s:%s", lip, lport);
  cleanup_free char *aa = strchr(aip, ':') ? xasprintf("[%s]:%s", aip, aport)
                                           : xasprintf("%s:%s", aip, aport);
  set_str(&d->listen_addr, la);
  set_str(&d->advertise_addr, aa);
  return 0;
}

static int init_force_new(struct shoald *d, shoald_done_fn done, void *ud,
                          sh_err *err);

int shoald_swarm_init(struct shoald *d, const json_t *req, shoald_done_fn done,
                      void *ud, sh_err *err) {
  bool force = jx_bool(req, "ForceNewCluster", false);
  if (d->swarm != SWARM_INACTIVE) {
    if (!force)
      return sh_error(err, 503, MSG_SWARM_EXISTS);
    if (!d->mgr)
      return sh_error(err, 503, MSG_NOT_MANAGER);
    return init_force_new(d, done, ud, err);
  }
  const json_t *spec = json_object_get(req, "Spec");
  if (spec && !json_is_object(spec))
    return sh_error(err, 400, "Spec must be an object");
  const char *avail = jx_str(req, "Availability", "active");
  if (!*avail)
    avail = "active";
  if (strcmp(avail, "active") && strcmp(avail, "pause") &&
      strcmp(avail, "drain"))
    return sh_error(err, 400, "invalid Availability: \"%s\"", avail);
  json_t *pool = json_object_get(req, "DefaultAddrPool");
  if (pool && !json_is_array(pool) && !json_is_null(pool))
    return sh_error(err, 400, "DefaultAddrPool must be an array");
  int64_t subnet = jx_int(req, "SubnetSize", 0);
  if (subnet != 0 && (subnet < 1 || subnet > 29))
    return sh_error(err, 400, "subnet size is out of range: %lld",
                    (long long)subnet);
  int64_t dpp = jx_int(req, "DataPathPort", 0);
  if (dpp != 0 && (dpp < 1024 || dpp > 49151))
    return sh_error(err, 400,
                    "Datapath port number is not in valid range "
                    "(1024-49151) : %lld",
                    (long long)dpp);
  if (resolve_addrs(d, req, err) < 0)
    return -1;

  struct manager_init in = {
      .cert_expiry_ns = jx_int(spec, "CAConfig.NodeCertExpiry", 0),
      .heartbeat_period_ns = jx_int(spec, "Dispatcher.HeartbeatPeriod", 0),
      .task_history_limit =
          jx_get(spec, "Orchestration.TaskHistoryRetentionLimit")
              ? jx_int(spec, "Orchestration.TaskHistoryRetentionLimit", 5)
              : -1,
      .snapshot_interval = jx_int(spec, "Raft.SnapshotInterval", 0),
      .keep_old_snapshots = jx_int(spec, "Raft.KeepOldSnapshots", 0),
      .election_tick = jx_int(spec, "Raft.ElectionTick", 0),
      .heartbeat_tick = jx_int(spec, "Raft.HeartbeatTick", 0),
      .default_addr_pool = json_is_array(pool) ? pool : NULL,
      .subnet_size = subnet,
      .data_path_port = dpp,
      .autolock = jx_bool(spec, "EncryptionConfig.AutoLockManagers", false) ||
                  jx_bool(req, "AutoLockManagers", false),
  };
  if (manager_check_supported(spec, err) < 0)
    return -1;
  cleanup_free char *root_key = NULL;
  cleanup_free char *csr = NULL;
  cleanup_free char *dir = NULL;
  cleanup_json json_t *desc = NULL;
  char node_id[ID_LEN + 1], cluster_id[ID_LEN + 1];
  id_new(node_id);
  id_new(cluster_id);
  set_str(&d->root_pem, NULL);
  /* A root of the user's own, or a new one. */
  const char *own_cert = jx_str(spec, "CAConfig.SigningCACert", "");
  const char *own_key = jx_str(spec, "CAConfig.SigningCAKey", "");
  if (*own_cert || *own_key) {
    if (manager_own_root(own_cert, own_key, &d->root_pem, err) < 0)
      goto fail;
    root_key = xstrdup(own_key);
  } else if (ca_root_create(&d->root_pem, &root_key, err) < 0) {
    goto fail;
  }
  if (ca_csr_create(&d->key_pem, &csr, err) < 0)
    goto fail;
  int64_t expiry = in.cert_expiry_ns > 0 ? in.cert_expiry_ns
                                         : INT64_C(2160) * 3600 * NS_PER_SEC;
  if (ca_sign_csr(d->root_pem, root_key, csr, node_id, CA_ROLE_MANAGER,
                  cluster_id, expiry, &d->cert_pem, err) < 0)
    goto fail;
  snprintf(d->node_id, sizeof d->node_id, "%s", node_id);
  snprintf(d->cluster_id, sizeof d->cluster_id, "%s", cluster_id);
  set_str(&d->role, "manager");
  set_str(&d->availability, avail);
  json_decref(d->managers);
  d->managers = json_pack("[s]", d->advertise_addr);
  in.root_cert_pem = d->root_pem;
  in.root_key_pem = root_key;
  in.cluster_id = cluster_id;
  if (save_state(d, err) < 0)
    goto fail;

  dir = swarm_path(d, NULL);
  desc = node_description(d);
  struct manager_config mc;
  fill_manager_config(d, &mc, desc);
  mc.state_dir = dir;
  struct init_ctx *c = xcalloc(1, sizeof *c);
  c->d = d;
  c->done = done;
  c->ud = ud;
  if (manager_create(&mc, &in, init_committed, c, &d->mgr, err) < 0) {
    free(c);
    d->mgr = NULL;
    goto fail;
  }
  d->swarm = SWARM_PENDING;
  return 0;
fail:
  clear_state(d);
  forget_identity(d);
  d->swarm = SWARM_INACTIVE;
  return -1;
}

struct force_ctx {
  struct shoald *d;
  shoald_done_fn done;
  void *ud;
};

static void force_reopen(void *ud) {
  struct force_ctx *c = ud;
  struct shoald *d = c->d;
  sh_err err = {0};
  if (open_manager(d, true, &err) < 0) {
    d->swarm = SWARM_ERROR;
    set_str(&d->swarm_error, err.msg);
    c->done(c->ud, -1, &err);
  } else {
    d->swarm = SWARM_ACTIVE;
    start_agent(d);
    c->done(c->ud, 0, NULL);
  }
  free(c);
}

/* Stops the manager and reopens its state as the only voter. */
static int init_force_new(struct shoald *d, shoald_done_fn done, void *ud,
                          sh_err *err) {
  struct force_ctx *c = xcalloc(1, sizeof *c);
  c->d = d;
  c->done = done;
  c->ud = ud;
  if (d->agent) {
    agent_stop(d->agent);
    d->agent = NULL;
  }
  struct manager *m = d->mgr;
  d->mgr = NULL;
  manager_close(m, force_reopen, c);
  return 0;
}

/* ---- swarm join ---- */

struct join_ctx {
  struct shoald *d;
  shoald_done_fn done;
  void *ud;
  char *remote;
  char *token;
  char *csr;
  char *key_pem;
  char *root_pem;
  char *availability;
};

static void join_ctx_free(struct join_ctx *c) {
  free(c->remote);
  free(c->token);
  free(c->csr);
  free(c->key_pem);
  free(c->root_pem);
  free(c->availability);
  free(c);
}

static void join_fail(struct join_ctx *c, int status, const char *msg) {
  sh_err e = {0};
  sh_error(&e, status, "%s", msg);
  c->d->swarm = SWARM_INACTIVE;
  c->done(c->ud, -1, &e);
  join_ctx_free(c);
}

static void join_timeout(uv_timer_t *t) {
  struct shoald *d = t->data;
  if (!d->join_done)
    return;
  shoald_done_fn done = d->join_done;
  d->join_done = NULL;
  sh_err e = {0};
  sh_error(&e, 503, MSG_JOIN_TIMEOUT);
  done(d->join_ud, -1, &e);
}

static const char *error_message(const struct http_result *res, char *buf,
                                 size_t n) {
  if (res->status == 0) {
    snprintf(buf, n, "%s", res->error ? res->error : "connection failed");
    return buf;
  }
  json_t *j = json_loads(res->body ? res->body : "", 0, NULL);
  snprintf(buf, n, "%s", jx_str(j, "message", res->body ? res->body : ""));
  json_decref(j);
  return buf;
}

/* The join failed after this node got its identity: forget it all. */
static void fail_pending_join(struct shoald *d, const sh_err *err) {
  sh_err e = *err;
  shoald_done_fn done = d->join_done;
  void *ud = d->join_ud;
  d->join_done = NULL;
  uv_timer_stop(&d->join_timer);
  if (d->mgr) {
    manager_close(d->mgr, NULL, NULL);
    d->mgr = NULL;
  }
  clear_state(d);
  forget_identity(d);
  d->swarm = SWARM_INACTIVE;
  if (done)
    done(ud, -1, &e);
}

static void manager_joined(void *ud, int status, const sh_err *err) {
  struct shoald *d = ud;
  if (status < 0) {
    log_error("joining raft failed: %s", err->msg);
    fail_pending_join(d, err);
    return;
  }
  log_info("this node is now a raft member");
  start_agent(d);
}

static void join_registered(const struct http_result *res, void *ud) {
  struct join_ctx *c = ud;
  struct shoald *d = c->d;
  char msg[SH_ERR_MSG_MAX];
  if (res->status != 200) {
    int st = res->status ? res->status : 503;
    return join_fail(c, st, error_message(res, msg, sizeof msg));
  }
  cleanup_json json_t *j = json_loads(res->body, 0, NULL);
  const char *node_id = jx_str(j, "NodeID", NULL);
  const char *cert = jx_str(j, "Certificate", NULL);
  sh_err err = {0};
  if (!node_id || !cert || ca_cert_verify(cert, c->root_pem, &err) < 0 ||
      ca_key_matches(cert, c->key_pem, &err) < 0)
    return join_fail(c, 500,
                     "the manager answered the join with an invalid "
                     "certificate");
  struct ca_cert_info info;
  if (ca_cert_info(cert, &info, &err) < 0)
    return join_fail(c, 500, err.msg);
  snprintf(d->node_id, sizeof d->node_id, "%s", node_id);
  snprintf(d->cluster_id, sizeof d->cluster_id, "%s", info.o);
  set_str(&d->role, jx_str(j, "Role", "worker"));
  if (strcmp(d->role, "manager") == 0 && *jx_str(j, "Addr", ""))
    set_str(&d->advertise_addr, jx_str(j, "Addr", ""));
  set_str(&d->cert_pem, cert);
  d->key_pem = STEAL_POINTER(&c->key_pem);
  d->root_pem = STEAL_POINTER(&c->root_pem);
  set_str(&d->availability, c->availability);
  json_t *mgrs = json_object_get(j, "Managers");
  json_decref(d->managers);
  d->managers = json_is_array(mgrs) && json_array_size(mgrs)
                    ? json_deep_copy(mgrs)
                    : json_pack("[s]", c->remote);
  if (save_state(d, &err) < 0) {
    forget_identity(d);
    return join_fail(c, 500, err.msg);
  }
  d->join_done = c->done;
  d->join_ud = c->ud;
  uv_timer_start(&d->join_timer, join_timeout, JOIN_TIMEOUT_MS, 0);
  log_info("joined the swarm as %s, node %s", d->role, d->node_id);
  if (strcmp(d->role, "manager") == 0) {
    /* Raft first: the agent's session then finds a full manager here. */
    cleanup_free char *dir = swarm_path(d, NULL);
    cleanup_json json_t *mdesc = node_description(d);
    struct manager_config mc;
    fill_manager_config(d, &mc, mdesc);
    mc.state_dir = dir;
    if (manager_join(&mc, c->remote, manager_joined, d, &d->mgr, &err) < 0) {
      d->mgr = NULL;
      fail_pending_join(d, &err);
    }
  } else {
    start_agent(d);
  }
  join_ctx_free(c);
}

static void join_got_ca(const struct http_result *res, void *ud) {
  struct join_ctx *c = ud;
  struct shoald *d = c->d;
  char msg[SH_ERR_MSG_MAX];
  if (res->status != 200)
    return join_fail(c, res->status ? 500 : 503,
                     error_message(res, msg, sizeof msg));
  /* The token pins the CA: check it before trusting anything else. */
  char want[CA_DIGEST_LEN + 1], secret[CA_SECRET_LEN + 1];
  char got[CA_DIGEST_LEN + 1];
  sh_err err = {0};
  if (ca_token_parse(c->token, want, secret, &err) < 0)
    return join_fail(c, 400, err.msg);
  if (ca_root_digest(res->body, got, &err) < 0 || strcmp(want, got) != 0) {
    char hex[65];
    ca_digest_hex(want, hex);
    snprintf(msg, sizeof msg,
             "remote CA does not match fingerprint. Expected: %s", hex);
    return join_fail(c, 500, msg);
  }
  c->root_pem = xstrdup(res->body);
  if (ca_csr_create(&c->key_pem, &c->csr, &err) < 0)
    return join_fail(c, 500, err.msg);
  cleanup_json json_t *desc = node_description(d);
  json_t *body = json_pack(
      "{s:s, s:s, s:s, s:s, s:O}", "Token", c->token, "CSR", c->csr, "Hostname",
      d->hostname, "Availability", c->availability, "Description", desc);
  cleanup_free char *b = jx_dump(body);
  json_decref(body);
  cleanup_free char *url = xasprintf("https://%s/swarm/v1/join", c->remote);
  struct http_call_opts o = {.method = "POST",
                             .url = url,
                             .body = b,
                             .body_len = strlen(b),
                             .ca_pem = c->root_pem,
                             .timeout_ms = 15000};
  http_client_call(d->client, &o, NULL, join_registered, c);
}

int shoald_swarm_join(struct shoald *d, const json_t *req, shoald_done_fn done,
                      void *ud, sh_err *err) {
  if (d->swarm != SWARM_INACTIVE)
    return sh_error(err, 503, MSG_SWARM_EXISTS);
  json_t *remotes = json_object_get(req, "RemoteAddrs");
  const char *token = jx_str(req, "JoinToken", NULL);
  if (!json_is_array(remotes) || json_array_size(remotes) == 0 ||
      !json_is_string(json_array_get(remotes, 0)))
    return sh_error(err, 400, "at least 1 RemoteAddr is required to join");
  if (!token)
    return sh_error(err, 400, "invalid join token");
  char dg[CA_DIGEST_LEN + 1], sec[CA_SECRET_LEN + 1];
  if (ca_token_parse(token, dg, sec, err) < 0)
    return -1;
  const char *avail = jx_str(req, "Availability", "active");
  if (!*avail)
    avail = "active";
  if (strcmp(avail, "active") && strcmp(avail, "pause") &&
      strcmp(avail, "drain"))
    return sh_error(err, 400, "invalid Availability: \"%s\"", avail);
  const char *remote = json_string_value(json_array_get(remotes, 0));
  char rhost[128], rport[16];
  host_port(remote, "2377", rhost, sizeof rhost, rport, sizeof rport);
  if (!*rhost || !valid_port(rport))
    return sh_error(err, 400, "invalid remote address %s", remote);
  /* Listen/advertise addresses for later manager duty: resolve them now
   * so a bad value fails early, as dockerd does. */
  const char *listen = jx_str(req, "ListenAddr", "");
  char lhost[128], lport[16], lip[64];
  host_port(*listen ? listen : "0.0.0.0:2377", "2377", lhost, sizeof lhost,
            lport, sizeof lport);
  if (shoald_resolve_listen(lhost, lip, sizeof lip, err) < 0)
    return -1;
  cleanup_free char *la = xasprintf("%s:%s", lip, lport);
  set_str(&d->listen_addr, la);
  const char *adv = jx_str(req, "AdvertiseAddr", "");
  if (*adv) {
    char ahost[128], aport[16], aip[64];
    host_port(adv, lport, ahost, sizeof ahost, aport, sizeof aport);
    if (!valid_port(aport) ||
        shoald_pick_advertise_ip(ahost, lip, aip, sizeof aip, err) < 0)
      return -1;
    cleanup_free char *aa = xasprintf("%s:%s", aip, aport);
    set_str(&d->advertise_addr, aa);
  } else {
    set_str(&d->advertise_addr, "");
  }

  struct join_ctx *c = xcalloc(1, sizeof *c);
  c->d = d;
  c->done = done;
  c->ud = ud;
  c->remote = xasprintf("%s:%s", rhost, rport);
  c->token = xstrdup(token);
  c->availability = xstrdup(avail);
  cleanup_free char *url = xasprintf("https://%s/swarm/v1/ca", c->remote);
  struct http_call_opts o = {
      .method = "GET", .url = url, .insecure = true, .timeout_ms = 10000};
  d->swarm = SWARM_PENDING;
  http_client_call(d->client, &o, NULL, join_got_ca, c);
  return 0;
}

/* ---- swarm leave ---- */

struct leave_ctx {
  struct shoald *d;
  shoald_done_fn done;
  void *ud;
  int pending;
};

static void leave_step(void *ud) {
  struct leave_ctx *c = ud;
  if (--c->pending > 0)
    return;
  struct shoald *d = c->d;
  clear_state(d);
  forget_identity(d);
  d->swarm = SWARM_INACTIVE;
  d->gwbridge_asked = false;
  log_info("left the swarm");
  c->done(c->ud, 0, NULL);
  free(c);
}

/* As Docker: leaving force-removes this node's task containers; then
 * the data plane goes (namespaces, links, nftables tables). Blocking:
 * on the work queue. */
static void leave_cleanup_work(void *ud) {
  struct leave_ctx *c = ud;
  struct shoald *d = c->d;
  if (d->exec) {
    struct exec_entry *list = NULL;
    size_t n = 0;
    sh_err err = {0};
    if (exec_list(d->exec, &list, &n, &err) < 0)
      log_warn("swarm leave: listing containers: %s", err.msg);
    for (size_t i = 0; i < n; i++) {
      json_t *info = NULL;
      if (exec_inspect_json(d->exec, list[i].id, &info, NULL) < 0)
        continue;
      bool task = json_object_get(jx_get(info, "Config.Labels"),
                                  "com.docker.swarm.task.id") != NULL;
      json_decref(info);
      if (task && exec_remove(d->exec, list[i].id, true, &err) < 0)
        log_warn("swarm leave: removing container %s: %s", list[i].id, err.msg);
      else if (task)
        log_info("swarm leave: removed container %s", list[i].id);
    }
    exec_list_free(list, n);
  }
  if (d->overlay) {
    sh_err err = {0};
    if (overlay_leave(d->overlay, &err) < 0)
      log_warn("swarm leave: removing the network data plane: %s", err.msg);
  }
}

static void leave_cleanup_done(void *ud, int cancelled) {
  leave_step(ud);
}

/* A follower words its refusal from the leader's node list, as Docker
 * does: its own replica may not show a manager that just went down. */
struct leave_check {
  struct shoald *d;
  shoald_done_fn done;
  void *ud;
};

static void leave_checked(const struct http_result *res, void *ud) {
  struct leave_check *c = ud;
  sh_err err = {0};
  json_t *nodes = res->status == 200 ? json_loads(res->body, 0, NULL) : NULL;
  if (c->d->mgr)
    manager_leave_check(c->d->mgr, json_is_array(nodes) ? nodes : NULL, &err);
  else
    sh_error(&err, 503, MSG_NO_SWARM);
  json_decref(nodes);
  c->done(c->ud, -1, &err);
  free(c);
}

static int leave_check_with_leader(struct shoald *d, shoald_done_fn done,
                                   void *ud, sh_err *err) {
  struct leave_check *c = xcalloc(1, sizeof *c);
  c->d = d;
  c->done = done;
  c->ud = ud;
  cleanup_free char *url =
      xasprintf("https://%s/swarm/v1/forward/v" SHOAL_API_VERSION "/nodes",
                manager_leader_addr(d->mgr));
  struct http_call_opts o = {.method = "GET",
                             .url = url,
                             .cert_pem = d->cert_pem,
                             .key_pem = d->key_pem,
                             .ca_pem = d->root_pem,
                             .timeout_ms = 5000};
  http_client_call(d->client, &o, NULL, leave_checked, c);
  return 0;
}

int shoald_swarm_leave(struct shoald *d, bool force, shoald_done_fn done,
                       void *ud, sh_err *err) {
  if (d->swarm == SWARM_INACTIVE)
    return sh_error(err, 503, MSG_NO_SWARM);
  if (d->swarm == SWARM_LOCKED && !force)
    return sh_error(err, 503,
                    "Swarm is encrypted and locked. Please unlock it first or "
                    "use `--force` to ignore this message.");
  if (d->mgr && !force) {
    if (manager_is_leader(d->mgr) || !manager_leader_addr(d->mgr))
      return manager_leave_check(d->mgr, NULL, err);
    return leave_check_with_leader(d, done, ud, err);
  }
  if (d->join_done) {
    shoald_done_fn jd = d->join_done;
    d->join_done = NULL;
    uv_timer_stop(&d->join_timer);
    sh_err e = {0};
    sh_error(&e, 503, "the join was cancelled by swarm leave");
    jd(d->join_ud, -1, &e);
  }
  stop_worker(d);
  struct leave_ctx *c = xcalloc(1, sizeof *c);
  c->d = d;
  c->done = done;
  c->ud = ud;
  c->pending = 1; /* released below */
  c->pending++;
  workq_submit(d->work, leave_cleanup_work, leave_cleanup_done, c);
  if (d->agent) {
    c->pending++;
    struct agent *a = d->agent;
    d->agent = NULL;
    agent_leave(a, leave_step, c);
  }
  if (d->mgr) {
    /* As Docker: --force does not reconfigure raft; the others keep this
     * node as an unreachable manager until it is demoted and removed. */
    c->pending++;
    struct manager *m = d->mgr;
    d->mgr = NULL;
    manager_close(m, leave_step, c);
  }
  leave_step(c);
  return 0;
}

void shoald_shutdown(struct shoald *d) {
  stop_worker(d);
  if (d->agent) {
    agent_stop(d->agent);
    d->agent = NULL;
  }
  if (d->mgr) {
    manager_close(d->mgr, NULL, NULL);
    d->mgr = NULL;
  }
  if (d->api) {
    http_server_close(d->api);
    d->api = NULL;
  }
  if (d->client) {
    http_client_close(d->client);
    d->client = NULL;
  }
  if (d->standalone)
    standalone_stop(d->standalone);
  volume_set_hook(NULL, NULL);
  if (d->work) {
    workq_close(d->work); /* waits for running pulls */
    d->work = NULL;
  }
  standalone_free(d->standalone);
  d->standalone = NULL;
  const char *wid;
  json_t *wv;
  json_object_foreach(d->dns_waiting, wid, wv) close((int)jx_int(wv, "Fd", -1));
  json_decref(d->dns_waiting);
  d->dns_waiting = NULL;
  if (d->reads) {
    workq_close(d->reads);
    d->reads = NULL;
  }
  if (d->images) {
    image_store_close(d->images);
    d->images = NULL;
  }
  if (d->overlay) {
    overlay_close(d->overlay);
    d->overlay = NULL;
  }
  if (d->exec) {
    exec_close(d->exec);
    d->exec = NULL;
  }
  free(d->runtime_error);
  d->runtime_error = NULL;
  seccomp_profile_free(d->seccomp);
  d->seccomp = NULL;
  uv_close((uv_handle_t *)&d->join_timer, NULL);
  uv_close((uv_handle_t *)&d->renew_timer, NULL);
  uv_close((uv_handle_t *)&d->trim_timer, NULL);
  json_decref(d->last_node);
  d->last_node = NULL;
  json_decref(d->last_ca);
  d->last_ca = NULL;
}
