/* Who may call what on the swarm port (2377): one table of endpoints and
 * the role each needs, decided against the replicated store.
 *
 * The peer's certificate gives identity only (CN = node ID, O = cluster
 * ID, chained to the cluster CA); privilege comes from the store: the node
 * must exist, must not be in the cluster's removed-node list, and its
 * current Spec.Role must allow the endpoint. So a demoted or removed
 * manager's old certificate opens nothing, and a node just promoted whose
 * certificate still says swarm-worker already has a manager's rights.
 * Pure: the raft configuration comes in through a callback, so the table
 * is tested without a network. */
#ifndef SHOAL_MANAGER_AUTHZ_H
#define SHOAL_MANAGER_AUTHZ_H

/* The answer (401) to a caller without a certificate of this swarm. */
#define AUTHZ_NO_CERT_MSG "a certificate from this swarm's CA is required"

#include <stdbool.h>

struct store;
struct sh_err;

enum authz_need {
  AUTHZ_ANYONE,  /* bootstrap: no certificate (the CA; join, by its token) */
  AUTHZ_NODE,    /* a current node of this swarm, any role */
  AUTHZ_MANAGER, /* a current node whose Spec.Role is manager */
  AUTHZ_RAFT,    /* the raft stream: a current raft member (see authz.c) */
};

struct authz_rule {
  const char *method; /* NULL: any */
  const char *path;   /* exact, or a prefix when it ends in '/' */
  enum authz_need need;
  /* A follower passes this call on to the leader for its own client
   * (Shoal-For-Node): the leader then checks that client, by the same
   * rule, once it has checked that the follower is a manager. */
  bool forwardable;
};

/* The rule for a request; NULL with *status 404 (no such endpoint) or
 * 405 (not with this method). */
const struct authz_rule *authz_rule_for(const char *method, const char *path,
                                        int *status);
/* The whole table (for tests and docs), ended by a rule with path NULL. */
const struct authz_rule *authz_table(void);

/* What the verified TLS peer certificate says. */
struct authz_peer {
  bool verified; /* chained to the cluster CA and the subject read */
  const char *cn, *ou, *o;
};

struct authz_env {
  struct store *store;
  const char *cluster_id; /* this manager's cluster (its own certificate) */
  bool leader;            /* the leader's store is complete: unknown = no */
  bool (*raft_member)(void *ud, const char *node_id);
  void *ud;
};

struct authz_who {
  const char *node_id; /* the node the call acts for; NULL when anonymous */
  bool via_manager;    /* the peer is a manager passing the call on for
                          node_id (or vouching for an Observed-Addr) */
};

/* Decides one request. for_node is the Shoal-For-Node header (NULL or ""
 * when absent). 0 with *who filled; < 0 with err: 401 without a
 * certificate of this swarm, 403 when the store refuses the node (removed,
 * not a member, wrong role), 503 when this manager cannot tell yet (no
 * cluster loaded, or a follower that does not know the node yet). */
int authz_check(const struct authz_env *env, const struct authz_rule *rule,
                const struct authz_peer *peer, const char *for_node,
                struct authz_who *who, struct sh_err *err);

#endif
