/* Private to src/manager: the manager's state and helpers shared by its
 * files (manager.c lifecycle, controlapi.c operations, swarmapi.c the
 * swarm port's handlers, dispatcher.c sessions). */
#ifndef SHOAL_MANAGER_INTERNAL_H
#define SHOAL_MANAGER_INTERNAL_H

#include "manager/manager.h"
#include "manager/services.h"

#include <stddef.h>

struct http_req;
struct raftnode;
struct http_server;
struct dispatcher;
struct reconciler;
struct logbroker;
struct store_tx;

struct manager {
  uv_loop_t *loop;
  char *node_id, *state_dir, *listen_addr, *advertise_addr;
  char *cert_pem, *key_pem, *root_pem;
  char *hostname, *engine_version;
  struct store *store;
  struct raftnode *raft;
  struct http_server *srv;
  struct dispatcher *disp;
  struct reconciler *recon;
  struct logbroker *logs;
  struct attachments *attach; /* standalone containers' attachments */
  struct http_client *client;
  char *cluster_id;
  bool leader;
  uint64_t lead_epoch;   /* counts leadership changes (lead_ready) */
  bool forced_new;       /* force-new-cluster: drop departed managers' status */
  bool rootca_finishing; /* a root rotation's completion is proposed */
  void (*forwarded)(struct http_req *req, void *ud);
  void *forwarded_ud;
  void (*unlock_key_changed)(void *ud, const char *key, uint64_t version);
  void *unlock_key_ud;
  char *unlock_key; /* last one passed to unlock_key_changed */
  bool unlock_key_told;
  /* Networks proposed but not applied yet: a second create meanwhile
   * must not take the same subnet or VXLAN ID. */
  json_t *net_pending;
  /* Service writes (Service objects) and secret or config removals
   * ({Kind, ID, Name}) proposed but not applied: each checks the other
   * (secrets.h). */
  json_t *svc_pending;
  struct services_lost lost; /* manager_service_view's */
  /* manager_nodes_json's: the body, and the leader it names (NULL: none
   * made, or a node changed since). */
  char *nodes_json, *nodes_json_leader;
  json_t *rm_pending;
  /* swarm init: the first transaction waits for leadership. */
  struct store_tx *init_tx;
  manager_done_fn init_done;
  void *init_ud;
};

/* A new Node; its Description.TLSInfo is that of cert_pem under root_pem
 * (the certificate just signed for it), as the node will report it. */
json_t *manager_new_node_object(struct manager *m, const char *node_id,
                                const char *role, const char *availability,
                                const char *hostname, const char *addr,
                                const json_t *description, const char *cert_pem,
                                const char *root_pem);
/* The cluster object for swarm init (Spec with defaults, TLS info, tokens,
 * the CA key under "_CAKey"). */
json_t *cluster_object_new(const struct manager_init *init, struct sh_err *err);
/* Adds to tx the record that node_id left or was removed: its
 * certificates are refused on the swarm port from then on (authz.h). */
void manager_tx_node_removed(struct manager *m, struct store_tx *tx,
                             const char *node_id);
/* Handler for the swarm port (node-to-node API). */
void swarmapi_handle(struct http_req *req, void *ud);

/* Whether the node is in the raft configuration. */
bool manager_is_raft_member(struct manager *m, const char *node_id);

/* swarmkit's errors reach Docker users as "rpc error: code = <Code> desc =
 * <msg>": rpc_error formats that from an HTTP status. */
const char *rpc_code_name(int status);
int rpc_error(struct sh_err *err, int status, const char *msg);
/* The same with a printf format. */
int rpcf(struct sh_err *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* swarmkit's isValidDNSName: [a-zA-Z0-9] at both ends, [-_a-zA-Z0-9]
 * between (names of services and networks). */
bool valid_dns_name(const char *s);

/* "1.2.3.4:2377" -> host and port (port stays as given when absent). */
int addr_split(const char *addr, char *host, size_t hostlen, int *port,
               struct sh_err *err);
/* The IP part of "ip:port" into buf; returns buf. */
const char *ip_of(const char *addr, char *buf, size_t n);

#endif
