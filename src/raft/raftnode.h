/* Consensus for the managers: libraft (canonical raft 0.15) behind the
 * project's own interface, so that more voters, a TLS transport and a
 * maintained fork can come in without touching callers.
 *
 * One raftnode per manager daemon, on the daemon's loop. The log and
 * snapshots live in cfg->dir. Entries are opaque bytes for the FSM (the
 * store); the FSM's verdict on an entry (e.g. "update out of sequence")
 * comes back to the proposer through the propose callback. libraft does
 * its disk work on the libuv thread pool: keep other slow work off it. */
#ifndef SHOAL_RAFT_RAFTNODE_H
#define SHOAL_RAFT_RAFTNODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct sh_err;
struct raftnode;
struct http_req;

struct raftnode_fsm {
  /* Applies a committed entry. A failure is the entry's verdict (the state
   * is unchanged), not a raft failure. hint is what the proposer gave
   * raftnode_propose_hinted with these bytes, when this node proposed
   * them and the entry is still pending here; else NULL. */
  int (*apply)(void *ud, const char *data, size_t len, void *hint,
               uint64_t index, struct sh_err *err);
  /* Serializes the whole state (malloc'd); restore replaces it. */
  char *(*snapshot)(void *ud, size_t *len);
  int (*restore)(void *ud, const char *data, size_t len, struct sh_err *err);
  void *ud;
  /* Optional, all three or none: a snapshot in two steps, so the loop
   * never waits for the encoding. view runs on the loop and returns a
   * frozen view of the state (cheap: references, no copies); encode runs
   * on a libuv pool thread, must only read the view and returns what
   * snapshot would have; view_free runs on the loop once raft wrote it. */
  void *(*snapshot_view)(void *ud);
  char *(*snapshot_encode)(void *view, size_t *len);
  void (*snapshot_view_free)(void *view);
};

struct raftnode_config {
  const char *dir;             /* log + snapshots, created if missing */
  uint64_t id;                 /* this server's raft id, non-zero */
  const char *address;         /* "ip:port" for raft traffic */
  unsigned tick_ms;            /* one "tick"; default 100 */
  unsigned heartbeat_ticks;    /* default 1 (Docker's Heartbeat Tick) */
  unsigned election_ticks;     /* default 10 (Docker's Election Tick) */
  unsigned snapshot_interval;  /* entries between snapshots, default 10000 */
  unsigned keep_old_snapshots; /* default 0 */
  unsigned log_entries_for_slow_followers; /* trailing, default 500 */
  /* Mutual TLS between managers over the swarm port: this node's
   * certificate and key, the swarm's root CA and the cluster ID (all four,
   * PEM text), and address is this node's swarm port. Dialed peers must
   * present a manager certificate of this cluster whose CN (node ID) maps
   * to the raft id dialed (raftnode_id_for); the swarm port's handler
   * passes POST /swarm/v1/raft to raftnode_accept_upgrade. All NULL:
   * libraft's plain TCP transport listening on address (tests). */
  const char *tls_cert_pem;
  const char *tls_key_pem;
  const char *tls_root_pem;
  const char *cluster_id;
  /* The data encryption key (RAFTNODE_DEK_LEN bytes): every log entry and
   * snapshot this node writes is sealed with it (AES-256-GCM); entries
   * and snapshots written plain (an older shoal) still load. NULL: written
   * plain (tests only). */
  const unsigned char *dek;
};
#define RAFTNODE_DEK_LEN 32

/* A node ID's raft id: the first 8 bytes of sha256(node ID), big-endian;
 * 0 becomes 1. Every manager computes peers' ids this way. */
uint64_t raftnode_id_for(const char *node_id);

/* Leadership changes: called on the loop when this node becomes leader
 * (true) or stops being leader (false). */
typedef void (*raftnode_leader_fn)(void *ud, bool leader);

/* Checks cfg->dir before libraft reads it: a torn tail of the newest open
 * segment (a crash mid-write) is cut back to the last whole batch, with a
 * warning naming the file and what was dropped; any other damage (a torn
 * or corrupt closed segment, a bad batch followed by good ones, bad
 * metadata) fails with 500 naming the file, and nothing is changed. */
int raftnode_open(uv_loop_t *loop, const struct raftnode_config *cfg,
                  const struct raftnode_fsm *fsm, struct raftnode **out,
                  struct sh_err *err);
/* True when cfg->dir already holds raft state (restart), false on a fresh
 * directory. */
bool raftnode_has_state(const struct raftnode *rn);
/* Writes the initial configuration: this node as the only voter. Only on a
 * fresh directory (swarm init). */
int raftnode_bootstrap(struct raftnode *rn, struct sh_err *err);
/* Makes this node the only voter of the existing log (force-new-cluster);
 * before raftnode_start. */
int raftnode_recover_single(struct raftnode *rn, struct sh_err *err);
/* Starts raft: loads snapshot + log (the FSM sees restore/apply calls),
 * then elections and replication. */
int raftnode_start(struct raftnode *rn, raftnode_leader_fn on_leader, void *ud,
                   struct sh_err *err);
/* Starts a node that joins an existing cluster: a fresh directory, no
 * configuration of its own; it takes part once the leader adds it
 * (raftnode_add there) and then receives the log (or a snapshot). 409 when
 * the directory already holds raft state (use raftnode_start). */
int raftnode_join(struct raftnode *rn, raftnode_leader_fn on_leader, void *ud,
                  struct sh_err *err);

bool raftnode_is_leader(const struct raftnode *rn);
/* Known leader's id and address; id 0 when unknown. */
void raftnode_leader(const struct raftnode *rn, uint64_t *id,
                     const char **address);
uint64_t raftnode_last_applied(const struct raftnode *rn);

/* Proposes an entry (leader only). done runs on the loop after the entry is
 * committed and applied here: status 0 and err cleared when the FSM
 * accepted it; status < 0 with err set otherwise: the FSM's verdict, or 503
 * with Docker's "The swarm does not have a leader..." message when this
 * node is not (or stops being) the leader, or 500 naming the cause and the
 * directory when the disk write failed ("raft: no space left on device:
 * DIR (...)"; logged once per burst of failures, and when writes work
 * again). Returns < 0 without calling done when the proposal could not
 * even be queued. */
typedef void (*raftnode_done_fn)(void *ud, int status,
                                 const struct sh_err *err);
int raftnode_propose(struct raftnode *rn, const char *data, size_t len,
                     raftnode_done_fn done, void *ud, struct sh_err *err);
/* The same, and the leader's apply of this entry gets hint (the decoded
 * form the bytes were made from, so the leader need not parse its own
 * entries). The proposer keeps hint alive until done runs; the bytes
 * stay what every other member applies. */
int raftnode_propose_hinted(struct raftnode *rn, const char *data, size_t len,
                            void *hint, raftnode_done_fn done, void *ud,
                            struct sh_err *err);

/* Leader only: done runs once every entry before this call is applied
 * here (a raft barrier: an entry of this term committed), status 0; or
 * < 0 when leadership was lost first or the node closes. A new leader's
 * store may lack entries the last leader committed until then. Returns
 * < 0 without calling done when it could not be queued. */
typedef void (*raftnode_barrier_fn)(void *ud, int status);
int raftnode_barrier(struct raftnode *rn, raftnode_barrier_fn done, void *ud,
                     struct sh_err *err);

/* ---- membership (leader only) ----
 * Changes run one at a time in the order asked (raft allows one
 * configuration change in flight); each calls done exactly once, on a
 * later loop turn: status 0, or < 0 with err (503 with the no-leader
 * message when leadership is lost, 409 for refused changes, 504 when a
 * change could not start within 10 s). They return < 0 without calling
 * done when this node is not the leader. */

/* Adds id as a spare, lets it catch up, then promotes it to voter. A
 * member that is already a voter at that address succeeds at once; a
 * non-voter is promoted. 503 when the new member does not catch up (it
 * stays a spare: add it again once it is reachable). */
int raftnode_add(struct raftnode *rn, uint64_t id, const char *address,
                 raftnode_done_fn done, void *ud, struct sh_err *err);
/* Removes id from the configuration (absent ids succeed). The leader
 * cannot remove itself: transfer leadership first (409). */
int raftnode_remove(struct raftnode *rn, uint64_t id, raftnode_done_fn done,
                    void *ud, struct sh_err *err);
/* Hands leadership to voter id (0: the most up-to-date voter). done's
 * status 0 means this node is no longer the leader. */
int raftnode_transfer_leadership(struct raftnode *rn, uint64_t id,
                                 raftnode_done_fn done, void *ud,
                                 struct sh_err *err);

enum raftnode_role { RAFTNODE_VOTER, RAFTNODE_STANDBY, RAFTNODE_SPARE };
enum raftnode_reach {
  RAFTNODE_REACH_UNKNOWN, /* never contacted (or plain TCP transport) */
  RAFTNODE_REACHABLE,     /* last connection to/from it succeeded */
  RAFTNODE_UNREACHABLE,   /* the last attempt to connect failed */
};
struct raftnode_member {
  uint64_t id;
  char *address;
  enum raftnode_role role;
  enum raftnode_reach reach; /* this node's own view; itself: reachable */
  bool leader;               /* the leader this node knows of */
};
/* The configuration as this node knows it (the leader's is the latest).
 * *out is malloc'd; free with raftnode_members_free. */
int raftnode_configuration(const struct raftnode *rn,
                           struct raftnode_member **out, size_t *n,
                           struct sh_err *err);
void raftnode_members_free(struct raftnode_member *m, size_t n);

/* Serves POST /swarm/v1/raft on the swarm port: requires a verified client
 * certificate with OU swarm-manager and this cluster's O, and a claimed
 * raft id equal to raftnode_id_for(CN); then upgrades the connection and
 * gives it to raft. Always answers or upgrades req (403/400/503 refusals,
 * nothing logged). rn may be NULL (503). */
void raftnode_accept_upgrade(struct raftnode *rn, struct http_req *req);
/* This node's renewed certificate for the connections raft dials next. */
/* The cluster's Raft.HeartbeatTick and ElectionTick, as they change (0:
 * Docker's 1 and 10), in ticks of the configured tick_ms; a heartbeat
 * tick not below the election tick is ignored (refused at the API). */
void raftnode_set_ticks(struct raftnode *rn, unsigned heartbeat,
                        unsigned election);
/* The cluster's Raft.SnapshotInterval and LogEntriesForSlowFollowers, as
 * they change (0: the defaults, 10000 and 500); from the next entry. */
void raftnode_set_snapshot_policy(struct raftnode *rn, unsigned every,
                                  unsigned trailing);
int raftnode_set_identity(struct raftnode *rn, const char *cert_pem,
                          const char *key_pem, const char *root_pem,
                          struct sh_err *err);

/* Stops raft; done runs on the loop once libraft has closed. */
void raftnode_close(struct raftnode *rn, void (*done)(void *ud), void *ud);

/* Docker's message when no leader can take a write. */
#define RAFTNODE_NO_LEADER_MSG                                                 \
  "The swarm does not have a leader. It's possible that too few managers "     \
  "are online. Make sure more than half of the managers are online."

#endif
