/* shoald's one state struct and the node-level swarm lifecycle: init,
 * join, leave, and the restart path that brings a node back into its swarm
 * from what it persisted under the data root:
 *
 *   <data-root>/swarm/state.json         node ID, role, addresses, managers
 *   <data-root>/swarm/certificates/      swarm-node.crt/.key, swarm-root-ca.crt
 *   <data-root>/swarm/raft/              managers only: raft log + snapshots
 *
 * The Engine API (src/api) calls these; they drive the manager and the
 * agent. */
#ifndef SHOAL_DAEMON_DAEMON_H
#define SHOAL_DAEMON_DAEMON_H

#include "ca/renew.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct sh_err;
struct http_client;
struct http_server;
struct http_req;
struct manager;
struct agent;
struct image_store;
struct workq;
struct executor;
struct seccomp_profile;
struct worker;
struct api_execs;
struct standalone;

#define SHOAL_VERSION "0.1.0"
#define SHOAL_API_VERSION "1.47"
#define SHOAL_MIN_API_VERSION "1.24"

struct shoald_config {
  char *data_root; /* default /var/lib/shoal */
  char *exec_root; /* default /run/shoal */
  char *pidfile;   /* default <exec-root>/shoald.pid */
  char **hosts;    /* -H values; default unix:///run/shoal/shoal.sock */
  int nhosts;
  bool debug;
  char **mirrors;  /* --registry-mirror, NULL-ended */
  char **insecure; /* --insecure-registry, NULL-ended */
  char **dns;      /* --dns: resolvers for tasks' other names, NULL-ended */
  char **labels;   /* --label / "labels": the engine's labels, NULL-ended */
  char *log_level; /* --log-level; NULL: info */
  /* --default-address-pool: [{"Base", "Size"}] the node's local bridges
   * (docker0, docker_gwbridge) take their subnets from; NULL: 172.17/16
   * and on, as dockerd's defaults. */
  json_t *pools;
  int max_downloads; /* layers pulled at once; 0: dockerd's default, 3 */
  char *config_file; /* daemon.json (daemon/config.h) */
  int socket_gid;    /* group of the unix sockets (-G); -1: the process's */
  /* -H tcp:// with TLS (dockerd's --tls, --tlsverify and files). */
  struct ssl_ctx_st *api_tls;
  bool api_tlsverify;
  bool api_insecure_ok; /* --tls=false given: tcp without TLS is intended */
};

enum swarm_state {
  SWARM_INACTIVE,
  SWARM_PENDING, /* joining */
  SWARM_ACTIVE,
  SWARM_ERROR,
  SWARM_LOCKED, /* autolock: a restarted manager waits for its unlock key */
};

struct shoald {
  uv_loop_t *loop;
  struct shoald_config cfg;
  char hostname[256];
  int64_t started_ns;
  struct http_server *api;
  struct http_client *client;
  struct workq *work;         /* blocking work: pulls, unpacking, crun */
  struct workq *reads;        /* container list/inspect: never behind a pull */
  struct image_store *images; /* <data-root>/image */
  struct executor *exec;      /* crun + conmon; NULL when unavailable */
  /* Why exec is NULL ("crun not found in PATH ..."), NULL when it is not:
   * the node says so to the managers, which place no task here. */
  char *runtime_error;
  struct worker *worker; /* runs this node's tasks (in a swarm) */
  /* owns the node's standalone containers (docker run), swarm or not */
  struct standalone *standalone;
  /* Standalone containers' DNS sockets waiting for the worker (adopted
   * before the node's session starts it): {id: {"Fd", "Nets"}}. */
  json_t *dns_waiting;
  struct events *events;   /* the node's event log (GET /events) */
  struct api_execs *execs; /* docker exec instances (api/exec.c) */
  struct overlay *overlay; /* swarm networks' data plane; NULL: none */
  /* Tasks' default seccomp profile, read once at start; NULL when the
   * file is missing or bad: tasks then run without one (see docs). */
  struct seccomp_profile *seccomp;
  bool gwbridge_asked; /* docker_gwbridge made for this swarm */
  /* The Engine API handler for calls follower managers forward here (set
   * by the program: the API layer sits above this one). */
  void (*api_forwarded)(struct http_req *req, void *ud);
  /* The API's IDs of the node's local networks (api_local_network_id),
   * set before shoald_init: the `bridge` network's for standalone
   * containers' endpoints. NULL: none. */
  const char *(*local_network_id)(struct shoald *d, const char *name);

  /* Swarm membership of this node (persisted in state.json). */
  enum swarm_state swarm;
  char *swarm_error;
  char node_id[32];
  char cluster_id[32];
  char *role;           /* "manager" | "worker" */
  char *listen_addr;    /* "0.0.0.0:2377" */
  char *advertise_addr; /* "192.168.33.10:2377" */
  char *availability;
  json_t *managers; /* known manager addresses */
  /* This node's own networks (host, none), with IDs kept under the data
   * root; loaded by the API on first use. */
  json_t *local_networks;
  char *cert_pem, *key_pem, *root_pem;
  /* The raft data encryption key, kept in the key file's raft-dek header
   * (ca/keyfile.h); every node has one, managers seal raft with it. */
  unsigned char raft_dek[32];
  bool have_dek;
  /* Autolock's key-encryption key (the unlock key), when on: the key file
   * is sealed under it. */
  unsigned char kek[32];
  bool have_kek;
  unsigned long long kek_version; /* see ca/keyfile.h */

  struct manager *mgr; /* when a manager */
  bool role_changing;  /* a promotion or demotion is under way */
  struct agent *agent; /* when in a swarm */
  /* Certificate renewal before expiry and on ForceRotate (ca/renew.h);
   * the clock is injectable for tests. */
  struct ca_renewal renewal;
  uv_timer_t renew_timer;
  uv_timer_t trim_timer; /* returns freed heap to the kernel while idle */
  uint64_t trim_at,
      trim_idle;     /* uv_hrtime and loop idle time at the last tick */
  json_t *last_node; /* this node's object as last heard */
  json_t *last_ca;   /* the cluster's CA facts as last heard */

  /* A pending join waits for the first session. */
  void (*join_done)(void *ud, int status, const struct sh_err *err);
  void *join_ud;
  uv_timer_t join_timer;

  uv_signal_t sigterm, sigint, sighup;
};

int shoald_init(struct shoald *d, uv_loop_t *loop, struct sh_err *err);
/* Re-enters the swarm recorded under the data root, if any. */
int shoald_resume(struct shoald *d, struct sh_err *err);
void shoald_shutdown(struct shoald *d);

typedef void (*shoald_done_fn)(void *ud, int status, const struct sh_err *err);

/* POST /swarm/init: body is the Engine API's SwarmInitRequest. done runs
 * once the cluster exists (status 0). */
int shoald_swarm_init(struct shoald *d, const json_t *req, shoald_done_fn done,
                      void *ud, struct sh_err *err);
/* POST /swarm/join: SwarmJoinRequest. done runs once this node has a
 * session with a manager (or with a timeout message, as Docker). */
int shoald_swarm_join(struct shoald *d, const json_t *req, shoald_done_fn done,
                      void *ud, struct sh_err *err);
/* POST /swarm/unlock: opens the key file with key ("SWMKEY-1-...") and
 * starts the swarm parts of a locked manager. Docker's errors: 400
 * "invalid key string", 401 "swarm could not be unlocked: invalid key
 * provided", 400 "swarm is not locked". */
int shoald_swarm_unlock(struct shoald *d, const char *key, struct sh_err *err);
/* POST /swarm/leave. */
int shoald_swarm_leave(struct shoald *d, bool force, shoald_done_fn done,
                       void *ud, struct sh_err *err);

/* "Swarm" field of /info and the _ping Swarm header pieces. */
const char *shoald_swarm_state_name(const struct shoald *d);
bool shoald_is_manager(const struct shoald *d);
/* Docker's error for cluster calls on a node that cannot answer them:
 * not in a swarm, or a worker. Returns -1 with 503 set when not a
 * manager, 0 otherwise. */
int shoald_require_manager(const struct shoald *d, struct sh_err *err);

/* Picks the address to advertise as Docker does (explicit address or
 * interface name, else the listen address, else the only global IPv4 on
 * the host). out gets "ip"; errors carry Docker's messages. */
int shoald_pick_advertise_ip(const char *advertise, const char *listen_ip,
                             char *out, size_t n, struct sh_err *err);

/* A listen host: IP literal (unspecified allowed) or interface name. */
int shoald_resolve_listen(const char *listen, char *ip, size_t n,
                          struct sh_err *err);

#endif
