/* The swarm port's authorization policy (see authz.h). swarmkit decides by
 * the certificate's OU plus a list of removed nodes (ca/auth.go,
 * Cluster.BlacklistedCertificates); shoal asks the store for the role too,
 * so privilege follows promote and demote at once, without waiting for a
 * certificate renewal. */
#include "manager/authz.h"

#include "ca/ca.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "raft/raftnode.h"
#include "store/store.h"

#include <string.h>

/* Every endpoint of the swarm port. Anything not here is 404. */
static const struct authz_rule table[] = {
    {"GET", "/swarm/v1/ca", AUTHZ_ANYONE, false},
    /* The join token is the credential; a follower passes joins on with
     * the joiner's address (Shoal-Observed-Addr), trusted from a manager. */
    {"POST", "/swarm/v1/join", AUTHZ_ANYONE, false},
    {"POST", "/swarm/v1/session", AUTHZ_NODE, false},
    {"POST", "/swarm/v1/heartbeat", AUTHZ_NODE, false},
    {"POST", "/swarm/v1/tasks", AUTHZ_NODE, false},
    {"POST", "/swarm/v1/leave", AUTHZ_NODE, false},
    {"POST", "/swarm/v1/attach", AUTHZ_NODE, false},
    {"POST", "/swarm/v1/detach", AUTHZ_NODE, false},
    {"POST", "/swarm/v1/logs/", AUTHZ_NODE, false},
    /* A certificate for the caller's own current role. */
    {"POST", "/swarm/v1/renew", AUTHZ_NODE, true},
    /* A manager not in raft yet (joined or promoted) asks to be added. */
    {"POST", "/swarm/v1/raft/join", AUTHZ_MANAGER, true},
    {"POST", "/swarm/v1/raft", AUTHZ_RAFT, false},
    /* Reveal cluster state: managers only. */
    {"GET", "/swarm/v1/index", AUTHZ_MANAGER, false},
    {NULL, "/swarm/v1/forward/", AUTHZ_MANAGER, false},
    {NULL, NULL, AUTHZ_ANYONE, false},
};

const struct authz_rule *authz_table(void) {
  return table;
}

static bool path_matches(const struct authz_rule *r, const char *path) {
  size_t n = strlen(r->path);
  if (r->path[n - 1] == '/')
    return strncmp(path, r->path, n) == 0 && path[n] != '\0';
  return strcmp(path, r->path) == 0;
}

const struct authz_rule *authz_rule_for(const char *method, const char *path,
                                        int *status) {
  bool seen = false;
  for (const struct authz_rule *r = table; r->path; r++) {
    if (!path || !path_matches(r, path))
      continue;
    seen = true;
    if (!r->method || (method && strcmp(r->method, method) == 0))
      return r;
  }
  *status = seen ? 405 : 404;
  return NULL;
}

static bool is_manager(const json_t *node) {
  return strcmp(jx_str(node, "Spec.Role", ""), "manager") == 0;
}

/* The store's verdict on node id for need (AUTHZ_NODE or AUTHZ_MANAGER). */
static int node_allowed(const struct authz_env *env, const char *id,
                        enum authz_need need, sh_err *err) {
  if (store_node_removed(env->store, id))
    return sh_error(err, 403,
                    "Permission denied: node %s was removed from "
                    "the swarm",
                    id);
  json_t *node = store_get(env->store, STORE_NODE, id);
  if (!node && !env->leader)
    return sh_error(err, 503,
                    "this manager does not know node %s yet: try again or "
                    "ask the leader",
                    id);
  if (!node)
    return sh_error(err, 403,
                    "Permission denied: node %s is not a member of the swarm",
                    id);
  if (need == AUTHZ_MANAGER && !is_manager(node))
    return sh_error(err, 403,
                    "Permission denied: node %s is not a manager of the swarm",
                    id);
  return 0;
}

/* Raft: members of the local raft configuration (a demoted manager stays
 * one until the leader takes it out, and must be heard until then), and
 * managers being added (role manager in the store, not in the
 * configuration yet). A follower replaying an old log may not know a
 * manager that joined while it was down, so it lets in an unknown node
 * whose certificate says manager; nobody lets in a removed node. */
static int raft_allowed(const struct authz_env *env,
                        const struct authz_peer *peer, sh_err *err) {
  const char *id = peer->cn;
  if (store_node_removed(env->store, id))
    return sh_error(err, 403, "raft: node %s was removed from the swarm", id);
  if (env->raft_member && env->raft_member(env->ud, id))
    return 0;
  json_t *node = store_get(env->store, STORE_NODE, id);
  if (node && is_manager(node))
    return 0;
  if (!node && !env->leader && strcmp(peer->ou, CA_ROLE_MANAGER) == 0)
    return 0;
  return sh_error(err, 403, "raft: node %s is not a manager of the swarm", id);
}

/* A manager passing a call on: a manager in the store and a raft member,
 * i.e. one that holds the whole state (the CA key included) anyway. */
static bool is_forwarder(const struct authz_env *env, const char *id) {
  sh_err e = {0};
  return node_allowed(env, id, AUTHZ_MANAGER, &e) == 0 && env->raft_member &&
         env->raft_member(env->ud, id);
}

int authz_check(const struct authz_env *env, const struct authz_rule *rule,
                const struct authz_peer *peer, const char *for_node,
                struct authz_who *who, sh_err *err) {
  *who = (struct authz_who){0};
  bool ours = peer->verified && peer->o && env->cluster_id &&
              *env->cluster_id && strcmp(peer->o, env->cluster_id) == 0 &&
              peer->cn && *peer->cn;
  bool loaded = store_cluster(env->store) != NULL;
  bool forwarded = for_node && *for_node;
  if (rule->need == AUTHZ_ANYONE) {
    if (forwarded)
      return sh_error(err, 403,
                      "Permission denied: %s is not passed on for "
                      "another node",
                      rule->path);
    who->via_manager = ours && loaded && is_forwarder(env, peer->cn);
    return 0;
  }
  if (!ours)
    return sh_error(err, 401, AUTHZ_NO_CERT_MSG);
  if (rule->need == AUTHZ_RAFT) {
    if (forwarded)
      return sh_error(err, 403, "raft: not passed on for another node");
    /* Loading or joining: the store cannot answer yet, the certificate
     * is all there is (a new manager hears its leader before it has any
     * state). */
    if (loaded && raft_allowed(env, peer, err) < 0)
      return -1;
    if (!loaded && strcmp(peer->ou, CA_ROLE_MANAGER) != 0)
      return sh_error(err, 403, "raft: a manager certificate is required");
    who->node_id = peer->cn;
    return 0;
  }
  /* A manager still loading its raft log has no cluster object yet: that
   * is "try again", not a refusal of the node. */
  if (!loaded)
    return sh_error(err, 503, "%s", RAFTNODE_NO_LEADER_MSG);
  if (forwarded) {
    if (!rule->forwardable)
      return sh_error(err, 403,
                      "Permission denied: %s is not passed on for "
                      "another node",
                      rule->path);
    if (!is_forwarder(env, peer->cn))
      return sh_error(err, 403,
                      "Permission denied: only a manager of the "
                      "swarm may pass on a call for another node");
    if (node_allowed(env, for_node, rule->need, err) < 0)
      return -1;
    who->node_id = for_node;
    who->via_manager = true;
    return 0;
  }
  if (node_allowed(env, peer->cn, rule->need, err) < 0) {
    /* A follower's copy may lag the leader's (a node whose join was just
     * committed): a forwardable call goes on to the leader, which checks
     * it again with complete knowledge. */
    bool unknown = err->status == 503;
    if (!(unknown && rule->forwardable))
      return -1;
    sh_err_clear(err);
  }
  who->node_id = peer->cn;
  return 0;
}
