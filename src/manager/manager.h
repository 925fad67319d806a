/* The manager: the cluster store replicated by raft, the swarm port
 * (node-to-node API over mutual TLS: CA, join, dispatcher), and the
 * control operations the Engine API calls. Runs on managers only; never
 * touches the host (no netlink, no containers).
 *
 * Leader-only components (the dispatcher's node-health authority now; the
 * orchestrator and scheduler later) start when raft makes this node leader
 * and stop when it stops being leader (manager_leader_hook). */
#ifndef SHOAL_MANAGER_MANAGER_H
#define SHOAL_MANAGER_MANAGER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct sh_err;
struct store;
struct store_tx;
struct http_client;
struct http_req;

#define SWARM_DEFAULT_PORT 2377
#define MANAGER_ENGINE_VERSION "0.1.0"

struct manager;

struct manager_config {
  uv_loop_t *loop;
  struct http_client *client; /* for calls to other managers */
  const char *cluster_id;
  const char *state_dir; /* <data-root>/swarm */
  const char *node_id;
  const char *listen_addr;                   /* "0.0.0.0:2377" */
  const char *advertise_addr;                /* "192.168.33.10:2377" */
  const char *cert_pem, *key_pem, *root_pem; /* this node's identity */
  const unsigned char *raft_dek;             /* seals raft at rest (32 bytes) */
  /* Autolock: called on the loop when the cluster's unlock key, as this
   * manager applied it, changes (NULL: autolock off), and once at start;
   * version is the cluster object's store version then. */
  void (*unlock_key_changed)(void *ud, const char *key, uint64_t version);
  void *unlock_key_ud;
  /* Local node facts for its Node object. */
  const char *hostname;
  const char *availability; /* "active" | "pause" | "drain" */
  const char *engine_version;
  const json_t *description; /* Node.Description of this host, borrowed */
  /* Engine API calls forwarded by follower managers (the API layer's
   * handler; the manager only authenticates and routes). */
  void (*forwarded)(struct http_req *req, void *ud);
  void *forwarded_ud;
  /* The node's event log: store changes become swarm events there (NULL:
   * none). Borrowed; outlives the manager. */
  struct events *events;
};

/* What `swarm init` asks for; zero/NULL fields take Docker's defaults. */
struct manager_init {
  int64_t cert_expiry_ns;      /* default 2160h */
  int64_t heartbeat_period_ns; /* default 5s */
  int64_t task_history_limit;  /* default 5; < 0 means unset */
  int64_t snapshot_interval;   /* default 10000 */
  int64_t keep_old_snapshots;  /* default 0 */
  int64_t election_tick;       /* default 10 */
  int64_t heartbeat_tick;      /* default 1 */
  json_t *default_addr_pool;   /* array of CIDR strings, borrowed */
  int64_t subnet_size;         /* default 24 */
  int64_t data_path_port;      /* default 4789 */
  bool autolock;
  const char *root_cert_pem, *root_key_pem; /* the CA made by init */
  const char *cluster_id;
};

typedef void (*manager_done_fn)(void *ud, int status, const struct sh_err *err);

/* New cluster: bootstraps raft here and commits the cluster object and
 * this node's Node object; done runs once they are committed. */
int manager_create(const struct manager_config *cfg,
                   const struct manager_init *init, manager_done_fn done,
                   void *ud, struct manager **out, struct sh_err *err);
/* Existing cluster after a restart: replays the log from state_dir.
 * force_new_cluster makes this node the only voter first. */
int manager_open(const struct manager_config *cfg, bool force_new_cluster,
                 struct manager **out, struct sh_err *err);
/* Joins an existing cluster as a manager: starts raft with an empty log
 * (listening on the swarm port), then asks the managers at remote to add
 * this node as a voter; done runs once it is in the configuration. */
int manager_join(const struct manager_config *cfg, const char *remote,
                 manager_done_fn done, void *ud, struct manager **out,
                 struct sh_err *err);
/* Docker's refusal of `swarm leave` without --force on a manager, worded
 * by what leaving would do to quorum (always fails with 503). The counts
 * come from leader_nodes (the leader's node list, as Docker asks the
 * leader) or, when NULL, this manager's replica. */
int manager_leave_check(struct manager *m, const json_t *leader_nodes,
                        struct sh_err *err);
/* Stops the listener, dispatcher and raft; done runs when all is closed. */
void manager_close(struct manager *m, void (*done)(void *ud), void *ud);
/* A renewed certificate: new swarm-port clients get it presented, raft
 * and calls to other managers present it from now on; open connections
 * stay up. root_pem, when not NULL, is the only root trusted from now on
 * (a root rotation completed). */
int manager_set_identity(struct manager *m, const char *cert_pem,
                         const char *key_pem, const char *root_pem,
                         struct sh_err *err);

struct store *manager_store(struct manager *m);
bool manager_is_leader(const struct manager *m);
/* Raft leader's node ID, or NULL when unknown. */
const char *manager_leader_id(const struct manager *m);
/* The leader's swarm address ("ip:port"), or NULL when unknown. */
const char *manager_leader_addr(const struct manager *m);
/* `service logs` / `task logs` (leader only: the nodes' sessions are
 * here); streams to req. */
struct log_options;
int manager_logs(struct manager *m, struct http_req *req,
                 const char *service_ref, const char *task_ref,
                 const struct log_options *o, struct sh_err *err);
/* The raft index this manager's store has applied. */
uint64_t manager_applied_index(const struct manager *m);
/* This node's node ID. */
const char *manager_node_id(const struct manager *m);

/* Proposes a transaction through raft (steals tx); done gets the FSM's
 * verdict. Fails with 503 and Docker's no-leader message off the leader. */
int manager_propose(struct manager *m, struct store_tx *tx,
                    manager_done_fn done, void *ud, struct sh_err *err);

/* A node object as the Engine API shows it: public fields plus computed
 * ManagerStatus.Leader. New reference. */
json_t *manager_node_view(struct manager *m, const json_t *node);
/* GET /nodes' body with no filter (every node's view, encoded): kept
 * until a node changes or another manager leads, so `docker node ls` at
 * 1,000 nodes does not copy and encode 1.2 MiB each time. Borrowed. */
const char *manager_nodes_json(struct manager *m);
/* The cluster as the Engine API's Swarm object (with JoinTokens). */
json_t *manager_swarm_view(struct manager *m);

/* Control operations for the Engine API. Each validates, then proposes. */
int manager_update_swarm(struct manager *m, int64_t version, const json_t *spec,
                         bool rotate_worker, bool rotate_manager,
                         bool rotate_unlock, manager_done_fn done, void *ud,
                         struct sh_err *err);
/* The unlock key ("SWMKEY-1-...") while autolock is on, else "". */
const char *manager_unlock_key(struct manager *m);
int manager_update_node(struct manager *m, const char *ref, int64_t version,
                        const json_t *spec, manager_done_fn done, void *ud,
                        struct sh_err *err);
int manager_remove_node(struct manager *m, const char *ref, bool force,
                        manager_done_fn done, void *ud, struct sh_err *err);

/* Services: validation and defaults in services.c; these propose.
 * registry_auth is the X-Registry-Auth header (NULL or "": none) and
 * auth_from the update's ?registryAuthFrom= (services_registry_auth). */
int manager_create_service(struct manager *m, const json_t *spec,
                           const char *registry_auth, char id_out[26],
                           manager_done_fn done, void *ud, struct sh_err *err);
int manager_update_service(struct manager *m, const char *ref, int64_t version,
                           const json_t *spec, const char *rollback,
                           const char *registry_auth, const char *auth_from,
                           manager_done_fn done, void *ud, struct sh_err *err);
int manager_remove_service(struct manager *m, const char *ref,
                           manager_done_fn done, void *ud, struct sh_err *err);
/* The API's Service (insertDefaults; ServiceStatus when status). */
json_t *manager_service_view(struct manager *m, const json_t *svc,
                             bool insert_defaults, bool status);

/* Swarm networks (networks.c checks and allocates; these propose).
 * create fills id_out; remove takes a name, ID or ID prefix. */
int manager_create_network(struct manager *m, const json_t *req,
                           char id_out[26], manager_done_fn done, void *ud,
                           struct sh_err *err);
int manager_remove_network(struct manager *m, const char *ref,
                           manager_done_fn done, void *ud, struct sh_err *err);

/* Secrets and configs (secrets.c checks; these propose). kind is
 * STORE_SECRET or STORE_CONFIG; refs are IDs, names or ID prefixes. */
int manager_create_secret(struct manager *m, int kind, const json_t *spec,
                          char id_out[26], manager_done_fn done, void *ud,
                          struct sh_err *err);
int manager_update_secret(struct manager *m, int kind, const char *ref,
                          int64_t version, const json_t *spec,
                          manager_done_fn done, void *ud, struct sh_err *err);
int manager_remove_secret(struct manager *m, int kind, const char *ref,
                          manager_done_fn done, void *ud, struct sh_err *err);
/* A root CA of the user's own for swarm init (Spec.CAConfig.SigningCACert
 * and SigningCAKey), checked as a root rotation checks one; *root_out is
 * the certificate normalised. */
int manager_own_root(const char *cert_pem, const char *key_pem, char **root_out,
                     struct sh_err *err);

/* Refuses spec features shoal does not implement (autolock, external CAs)
 * with 501 and a message naming the option. */
int manager_check_supported(const json_t *spec, struct sh_err *err);

/* Addresses of the managers ("ip:port"), new array of strings. */
json_t *manager_addresses(struct manager *m);

#endif
