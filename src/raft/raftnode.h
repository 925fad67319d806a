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

struct raftnode_fsm {
  /* Applies a committed entry. A failure is the entry's verdict (the state
   * is unchanged), not a raft failure. */
  int (*apply)(void *ud, const char *data, size_t len, uint64_t index,
               struct sh_err *err);
  /* Serializes the whole state (malloc'd); restore replaces it. */
  char *(*snapshot)(void *ud, size_t *len);
  int (*restore)(void *ud, const char *data, size_t len, struct sh_err *err);
  void *ud;
};

struct raftnode_config {
  const char *dir;          /* log + snapshots, created if missing */
  uint64_t id;              /* this server's raft id, non-zero */
  const char *address;      /* "ip:port" for raft traffic */
  unsigned tick_ms;         /* one "tick"; default 100 */
  unsigned heartbeat_ticks; /* default 1 (Docker's Heartbeat Tick) */
  unsigned election_ticks;  /* default 10 (Docker's Election Tick) */
  unsigned snapshot_interval; /* entries between snapshots, default 10000 */
  unsigned keep_old_snapshots; /* default 0 */
  unsigned log_entries_for_slow_followers; /* trailing, default 500 */
};

/* Leadership changes: called on the loop when this node becomes leader
 * (true) or stops being leader (false). */
typedef void (*raftnode_leader_fn)(void *ud, bool leader);

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
int raftnode_start(struct raftnode *rn, raftnode_leader_fn on_leader,
                   void *ud, struct sh_err *err);

bool raftnode_is_leader(const struct raftnode *rn);
/* Known leader's id and address; id 0 when unknown. */
void raftnode_leader(const struct raftnode *rn, uint64_t *id,
                     const char **address);
uint64_t raftnode_last_applied(const struct raftnode *rn);

/* Proposes an entry (leader only). done runs on the loop after the entry is
 * committed and applied here: status 0 and err cleared when the FSM
 * accepted it; status < 0 with err set otherwise: the FSM's verdict, or 503
 * with Docker's "The swarm does not have a leader..." message when this
 * node is not (or stops being) the leader. Returns < 0 without calling done
 * when the proposal could not even be queued. */
typedef void (*raftnode_done_fn)(void *ud, int status,
                                 const struct sh_err *err);
int raftnode_propose(struct raftnode *rn, const char *data, size_t len,
                     raftnode_done_fn done, void *ud, struct sh_err *err);

/* Stops raft; done runs on the loop once libraft has closed. */
void raftnode_close(struct raftnode *rn, void (*done)(void *ud), void *ud);

/* Docker's message when no leader can take a write. */
#define RAFTNODE_NO_LEADER_MSG                                                 \
  "The swarm does not have a leader. It's possible that too few managers "    \
  "are online. Make sure more than half of the managers are online."

#endif
