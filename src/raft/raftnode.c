/* libraft 0.15 glue (see raftnode.h).
 *
 * libraft facts this file relies on (checked against v0.15.0's source):
 * - fsm->apply gets no index; raft sets last_applied only after apply
 *   returns, so the entry's index is raft_last_applied() + 1.
 * - a non-zero fsm->apply return stalls the apply loop (the entry is retried
 *   forever), so the FSM's verdict travels beside raft, never as its return.
 * - the leader's raft_apply callback runs synchronously right after
 *   fsm->apply for that entry; followers have no request. So the verdict is
 *   kept in one slot of the node and read by the callback at once.
 * - fsm->restore takes ownership of the buffer on success (raft_free it);
 *   on failure raft frees it.
 * - a follower applies every entry the leader's commit index covers in
 *   one go, in the callback of a batch's disk write right before it
 *   acknowledges that batch (in the receive callback for an empty
 *   append): its applies held the leader's commits back. Followers
 *   therefore queue entries and apply them in slices ("deferred
 *   applies"). A barrier calls no fsm->apply.
 * - a single voter elects itself inside raft_start and applies its whole log
 *   there; leadership changes have no callback, hence the uv_check poll.
 * - entry payloads must be a multiple of 8 bytes: the on-disk segment
 *   writer only asserts it (compiled out in release builds) and otherwise
 *   writes segments it cannot load back. Entries are therefore framed as
 *   an 8-byte little-endian length, the payload, and zero padding.
 * - a leader stepping down frees the followers' progress, then fails its
 *   pending applies (RAFT_LEADERSHIPLOST) with raft_state() still
 *   RAFT_LEADER; a raft_apply from such a callback passes the state check
 *   and reads the freed progress (a segfault). raftnode_is_leader is false
 *   while those callbacks run (stepping_down).
 * - raft_close fails pending applies with RAFT_LEADERSHIPLOST, closes the
 *   io (and through it the transport); the io and transport memory may be
 *   released only after the close callback, and not from inside it (libraft
 *   is still on the stack), so we free one loop iteration later.
 * - one configuration change at a time (RAFT_CANTCHANGE otherwise, also
 *   while a promotion catches up); raft_add makes a spare, raft_assign to
 *   voter catches it up first and gives up (RAFT_NOCONNECTION) when it does
 *   not answer; raft_close fails a pending change (RAFT_LEADERSHIPLOST)
 *   and a pending transfer (its callback has no status) synchronously.
 * - a failed disk write reaches the proposer as RAFT_NOSPACE (which
 *   raft_strerror calls "unknown error") or RAFT_IOERR; the detail is in
 *   raft_errmsg ("io: create segment open-3: not enough space to allocate
 *   ..." when preallocating, "io: short write ..." from the writer, which
 *   only needs new space past the preallocated size: an entry larger than
 *   a segment). A failed preallocation is dropped and the next append
 *   prepares a new segment; after a failed write the segment is full and
 *   the next append also gets a new one. So writes resume once space is
 *   back, with no restart (tested, including a replay after both).
 * - the uv io can fire its close callback twice: when a segment's writer
 *   is still closing while the rest is done (fsync is instant on tmpfs),
 *   the writer's close calls it again (raft then frees its memory twice),
 *   and that callback reads the io's memory. So the close callback is
 *   passed on once, and the io is freed only after a few loop iterations
 *   with no handle left closing.
 * - a torn open segment makes raft_start double-free, and auto-recovery
 *   renames corrupt segments aside (losing their entries): segment.c
 *   checks the directory before libraft reads it, auto-recovery is off. */
#include "raft/raftnode.h"

#include <errno.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "http/server.h"
#include "http/tlsconn.h"
#include "raft/internal.h"
#include "raft/segment.h"

#include <dirent.h>
#include <errno.h>
#include <openssl/sha.h>
#include <raft.h>
#include <raft/uv.h>
#include <openssl/crypto.h>
#include <stdio.h>

/* How long a membership change waits for raft to accept it. */
#define MEMBER_OP_WAIT_MS 10000
#define MEMBER_OP_RETRY_MS 50

/* Open segments are preallocated at this size, two ahead (libraft's
 * default is 8 MiB). A restart on a nearly full disk needs one segment free
 * for its first write: 1 MiB instead of 8 (measured: 1.1 MiB free is
 * enough; with 8 MiB segments 4 MiB free was not). 1 MiB still holds
 * hundreds of store transactions, so the rollover (create, fallocate and
 * fsync a new file; finalize the old one), which stalls proposals for tens
 * of ms, stays rare: 3000 sequential 2 KiB proposals took 0.95-1.7 s
 * against 0.74-1.1 s with 8 MiB (ext4, loaded 2-core host). Larger
 * entries still fit: libraft writes past the preallocated size. */
#define RAFT_SEGMENT_SIZE (1024 * 1024)

struct member_op;

struct raftnode {
  uv_loop_t *loop;
  struct raft raft;
  struct raft_io io;
  struct raft_uv_transport transport;
  struct raft_fsm rfsm;
  struct atrest atrest; /* sealing of entries and snapshots on disk */
  bool sealed;
  struct raftnode_fsm fsm;
  /* Pending hinted proposals, oldest first (they commit in that order,
   * so hint_of finds an entry's at the head). */
  struct propose_req *hinted, *hinted_tail;
  char *dir;
  char *address;
  uint64_t id;
  bool tls; /* TLS transport (else libraft's TCP) */
  /* >0 while libraft fails pending requests as it steps down (see
   * apply_done): no leader for proposers then. */
  unsigned stepping_down;

  /* Membership changes, oldest first; the head is the one running. */
  struct member_op *ops_head, *ops_tail;

  uv_check_t check; /* leadership poll after each loop iteration */
  uv_timer_t kick;  /* first poll right after start; close sequencing */
  bool started, closing, was_leader;
  raft_id known_leader; /* last leader seen, for the log */
  /* When this node became leader, until its first entry commits: a
   * failover's time is the election plus that (the log says both). */
  int64_t led_since_ns;
  /* Elected with entries still queued to apply (0: not, or said): when,
   * so the log says how long the manager waited for them. */
  int64_t elected_queued_ns;
  raftnode_leader_fn on_leader;
  void *leader_ud;

  /* Deferred applies (a follower's): entries raft counts as applied,
   * not yet given to the FSM, oldest first, and their bytes. */
  struct deferred *dq_head, *dq_tail;
  size_t dq_bytes, dq_n;
  uv_idle_t drain; /* applies a slice of the queue each loop turn */
  /* SHOAL_RAFT_APPLY_HOLD_MS, a test's: queued entries wait that long
   * before the drain starts, so a follower holds a backlog when its
   * leader is killed. 0: drained from the next turn on. */
  int64_t hold_ns, hold_until_ns;

  /* The FSM's verdict on the entry being applied right now. */
  int verdict_rc;
  sh_err verdict_err;
  /* Why fsm->restore failed, for raftnode_start's message. */
  sh_err restore_err;
  /* Disk write failures since the last successful write: the first one of
   * a burst is logged, and the recovery. */
  unsigned io_failures;

  int pending_closes;
  /* Work on the libuv pool (a snapshot's encoding) not yet done: the
   * close waits for it, since the pool thread reads the FSM's view and
   * libraft's callback touches the raft struct. */
  struct async_job *jobs;
  void (*close_done)(void *ud);
  void *close_ud;
  /* libraft's io close, wrapped to pass its callback on once. */
  void (*io_close)(struct raft_io *io, raft_io_close_cb cb);
  raft_io_close_cb io_close_cb;
  bool io_closed;
  unsigned grace_turns;

  /* Leader only: when each peer was last heard from (libraft's
   * recent_recv, sampled), so a silent peer (partition) shows unreachable
   * even while its TCP connection looks alive. */
  struct {
    uint64_t id;
    uint64_t at_ms;
  } heard[16];
  unsigned election_ms;
  unsigned raft_tick_ms, heartbeat_ticks, election_ticks; /* as configured */

  /* The snapshot being taken in two steps (fsm.snapshot_view): the view,
   * and the encoding's time and size, set on the pool thread and logged
   * on the loop. */
  void *snap_view;
  int64_t snap_t0, snap_encode_ns;
  size_t snap_plain_len; /* the encoding's size, before sealing */

  /* The loop's last turn (hrtime and uv_metrics_idle_time at its end): a
   * turn busy past the election timeout delays heartbeats and costs an
   * election, so a long one is logged. */
  uint64_t turn_end_ns, turn_idle_ns;

  /* libraft's tick, wrapped (see io_tick): its callback, its interval,
   * when it last ran (loop ms), and a tick held for this turn's check. */
  int (*io_start)(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                  raft_io_recv_cb recv);
  raft_io_tick_cb tick_cb;
  unsigned tick_ms;
  uint64_t last_tick_ms;
  bool tick_held;
};

struct propose_req {
  struct raft_apply req;
  struct raftnode *rn;
  raftnode_done_fn done;
  void *ud;
  /* A hinted proposal while pending: its entry's buffer and the hint. */
  const void *base;
  void *hint;
  struct propose_req *prev, *next;
};

/* ---- entry framing ---- */

#define FRAME_HDR 8

static size_t frame_size(size_t len) {
  return FRAME_HDR + ((len + 7) & ~(size_t)7);
}

/* The payload inside a framed entry, or NULL when the frame is broken. */
static const char *frame_payload(const struct raft_buffer *b, size_t *len) {
  if (b->len < FRAME_HDR || b->len % 8 != 0)
    return NULL;
  const unsigned char *p = b->base;
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--)
    n = (n << 8) | p[i];
  if (n > b->len - FRAME_HDR)
    return NULL;
  *len = (size_t)n;
  return (const char *)p + FRAME_HDR;
}

/* ---- FSM adapter ---- */

/* The hint of a pending proposal of this node for this entry: the same
 * index and the very buffer it handed raft (a failed or finished proposal
 * has left the list, so a buffer freed and reused cannot match). */
static void *hint_of(const struct raftnode *rn, const struct raft_buffer *buf,
                     uint64_t index) {
  for (const struct propose_req *p = rn->hinted; p; p = p->next)
    if (p->req.index == index && p->base == buf->base)
      return p->hint;
  return NULL;
}

static void unlink_hinted(struct propose_req *p) {
  if (!p->base)
    return;
  if (p->prev)
    p->prev->next = p->next;
  else
    p->rn->hinted = p->next;
  if (p->next)
    p->next->prev = p->prev;
  else
    p->rn->hinted_tail = p->prev;
  p->base = NULL;
}

/* ---- deferred applies ----
 *
 * A follower's apply of a big entry (1,000 new tasks, 2,000 status
 * reports) held its loop 300-420 ms under load, and with it the
 * acknowledgements of the entries that came next: the leader waited for
 * its commits on the followers' applies, idle, each reconcile cycle
 * (session 29). A follower now copies each committed entry into a queue
 * and applies it from an idle handle, a slice of the queue per loop turn,
 * so its reads, acknowledgements and heartbeats go on between entries.
 * Nothing reads the FSM behind the queue's back: the leader applies at
 * once (its proposers want verdicts), and becoming leader, a snapshot and
 * raftnode_last_applied (what a follower's reads wait for) see the queue
 * applied or count it as not yet applied. */

struct deferred {
  struct deferred *next;
  uint64_t index;
  size_t len;
  char data[];
};

/* Entries a queue may hold: each costs a decode and the watchers' work
 * however small it is (a report's entry, a heartbeat's). */
#define DEFER_MAX_ENTRIES 256

/* What a queue may hold; past it, entries apply as they come (the old
 * pacing, which slows the leader down to the follower). Two orchestrator
 * passes in flight are 3.4 MB of entries (16 of ~107 KB each): with 1 MiB
 * a follower applied the excess in one turn, 300-500 ms, and the leader
 * changed mid-ramp in 2 of 5 runs (session 39). Draining 4 MiB takes
 * ~0.5-1.4 s on a loaded 2-core machine (a status entry of ~360 KB took
 * 75-115 ms there). A new leader drains it in slices before the manager
 * hears of its leadership (check_leader): a failover amid a burst waits
 * for it. A snapshot waits until at most DEFER_SNAPSHOT_BYTES are left
 * (RAFT_BUSY: raft takes it at a later apply), so its drain stays one
 * turn of ~0.2-0.35 s at most. Entries of 250 new tasks are ~100 KB. */
#define DEFER_MAX_BYTES (4u << 20)
#define DEFER_SNAPSHOT_BYTES (1u << 20)
/* Loop time one turn's slice may take (at least one entry). */
#define DRAIN_SLICE_NS (10 * NS_PER_MS)

static void apply_now(struct raftnode *rn, const char *data, size_t len,
                      void *hint, uint64_t index) {
  sh_err_clear(&rn->verdict_err);
  rn->verdict_rc =
      rn->fsm.apply(rn->fsm.ud, data, len, hint, index, &rn->verdict_err);
  if (rn->verdict_rc < 0 && rn->verdict_err.status == 0)
    sh_error(&rn->verdict_err, 500, "entry %llu refused",
             (unsigned long long)index);
}

/* Applies the oldest queued entry. */
static void apply_queued(struct raftnode *rn) {
  struct deferred *d = rn->dq_head;
  rn->dq_head = d->next;
  if (!rn->dq_head) {
    rn->dq_tail = NULL;
    uv_idle_stop(&rn->drain);
  }
  rn->dq_bytes -= d->len;
  rn->dq_n--;
  apply_now(rn, d->data, d->len, NULL, d->index);
  free(d);
}

/* Every queued entry, now: before anything that reads the FSM as raft's
 * last applied index has it. */
static void drain_all(struct raftnode *rn) {
  while (rn->dq_head)
    apply_queued(rn);
}

/* The queue's entries are covered by a snapshot being restored, or the
 * FSM goes away with the node: dropped. */
static void drop_queue(struct raftnode *rn) {
  while (rn->dq_head) {
    struct deferred *d = rn->dq_head;
    rn->dq_head = d->next;
    free(d);
  }
  rn->dq_tail = NULL;
  rn->dq_bytes = rn->dq_n = 0;
  uv_idle_stop(&rn->drain);
}

static void drain_cb(uv_idle_t *h) {
  struct raftnode *rn = h->data;
  int64_t t0 = clock_mono_ns();
  do
    apply_queued(rn);
  while (rn->dq_head && clock_mono_ns() - t0 < DRAIN_SLICE_NS);
}

/* Whether this entry may wait in the queue: a follower's (no proposer of
 * this node waits for it) that fits in an empty one. */
static bool may_defer(struct raftnode *rn, void *hint, size_t len) {
  return rn->started && !rn->closing && !hint &&
         raft_state(&rn->raft) != RAFT_LEADER && len <= DEFER_MAX_BYTES;
}

/* A full queue first applies its oldest entries until the new one fits:
 * a follower that falls behind by more than the queue applies about an
 * entry per entry it receives, not the whole queue in one turn. */
static void defer_entry(struct raftnode *rn, const char *data, size_t len,
                        uint64_t index) {
  while (rn->dq_head && (rn->dq_bytes + len > DEFER_MAX_BYTES ||
                         rn->dq_n >= DEFER_MAX_ENTRIES))
    apply_queued(rn);
  struct deferred *d = xmalloc(sizeof *d + (len ? len : 1));
  d->next = NULL;
  d->index = index;
  d->len = len;
  memcpy(d->data, data, len);
  if (rn->dq_tail)
    rn->dq_tail->next = d;
  else
    rn->dq_head = d;
  rn->dq_tail = d;
  rn->dq_bytes += len;
  rn->dq_n++;
  if (!rn->hold_ns)
    uv_idle_start(&rn->drain, drain_cb);
  else if (rn->dq_n == 1) /* check_cb starts the drain once it is over */
    rn->hold_until_ns = clock_mono_ns() + rn->hold_ns;
}

static int fsm_apply_cb(struct raft_fsm *f, const struct raft_buffer *buf,
                        void **result) {
  struct raftnode *rn = f->data;
  uint64_t index = (uint64_t)raft_last_applied(&rn->raft) + 1;
  *result = rn;
  size_t len = 0;
  const char *data = frame_payload(buf, &len);
  if (!data) {
    rn->verdict_rc =
        sh_error(&rn->verdict_err, 400, "raft entry %llu is malformed",
                 (unsigned long long)index);
    return 0;
  }
  void *hint = hint_of(rn, buf, index);
  if (may_defer(rn, hint, len)) {
    defer_entry(rn, data, len, index);
    rn->verdict_rc = 0;
    return 0;
  }
  drain_all(rn); /* in order */
  apply_now(rn, data, len, hint, index);
  return 0;
}

static int fsm_snapshot_cb(struct raft_fsm *f, struct raft_buffer *bufs[],
                           unsigned *n_bufs) {
  struct raftnode *rn = f->data;
  if (rn->dq_bytes > DEFER_SNAPSHOT_BYTES)
    return RAFT_BUSY; /* not a long turn: raft tries at a later apply */
  drain_all(rn);      /* raft records the snapshot at its last applied index */
  size_t len = 0;
  int64_t t0 = clock_mono_ns();
  char *data = rn->fsm.snapshot(rn->fsm.ud, &len);
  if (!data)
    return RAFT_NOMEM;
  /* The store's size and the loop time its encoding took: what a big
   * cluster pays every snapshot_interval entries (make bench reads it). */
  log_info("raft snapshot: %zu bytes, encoded in %.1f ms", len,
           (double)(clock_mono_ns() - t0) / (double)NS_PER_MS);
  /* Raft frees both with raft_free (fsm version 1). */
  struct raft_buffer *b = raft_malloc(sizeof *b);
  void *copy = raft_malloc(len ? len : 1);
  if (!b || !copy) {
    raft_free(b);
    raft_free(copy);
    free(data);
    return RAFT_NOMEM;
  }
  memcpy(copy, data, len);
  free(data);
  b->base = copy;
  b->len = len;
  *bufs = b;
  *n_bufs = 1;
  return 0;
}

/* Version 3 (fsm.snapshot_view set): on the loop, only the view; the
 * encoding runs on a pool thread (libraft's io->async_work), and the
 * buffer is ours until finalize, after raft wrote it. */
static int fsm_snapshot_view_cb(struct raft_fsm *f, struct raft_buffer *bufs[],
                                unsigned *n_bufs) {
  struct raftnode *rn = f->data;
  if (rn->snap_view || rn->dq_bytes > DEFER_SNAPSHOT_BYTES)
    return RAFT_BUSY; /* one at a time, no long drain; raft tries later */
  struct raft_buffer *b = raft_calloc(1, sizeof *b);
  if (!b)
    return RAFT_NOMEM;
  drain_all(rn); /* raft records the snapshot at its last applied index */
  rn->snap_t0 = clock_mono_ns();
  rn->snap_view = rn->fsm.snapshot_view(rn->fsm.ud);
  *bufs = b;
  *n_bufs = 1;
  return 0;
}

static int fsm_snapshot_async_cb(struct raft_fsm *f, struct raft_buffer *bufs[],
                                 unsigned *n_bufs) {
  struct raftnode *rn = f->data;
  int64_t t0 = clock_mono_ns();
  size_t len = 0;
  char *data = rn->fsm.snapshot_encode(rn->snap_view, &len);
  rn->snap_encode_ns = clock_mono_ns() - t0;
  if (!data)
    return RAFT_NOMEM;
  rn->snap_plain_len = len;
  (*bufs)[0].base = data;
  (*bufs)[0].len = len;
  (void)n_bufs;
  /* Sealed here too, on this pool thread: the at-rest layer passes a
   * sealed snapshot on, and sealing 60 MB (a copy, a clear and AES-GCM,
   * page faults included) on the loop held it past the election timeout.
   * The DEK is set before raft starts and kept until it closed. */
  if (rn->sealed) {
    struct raft_buffer sealed;
    int rv = atrest_seal(rn->atrest.dek, &(*bufs)[0], 1, &sealed);
    free(data);
    (*bufs)[0].base = NULL;
    if (rv != 0)
      return rv;
    (*bufs)[0] = sealed;
  }
  return 0;
}

static int fsm_snapshot_finalize_cb(struct raft_fsm *f,
                                    struct raft_buffer *bufs[],
                                    unsigned *n_bufs) {
  struct raftnode *rn = f->data;
  if (*bufs && (*bufs)[0].base)
    log_info("raft snapshot: %zu bytes, encoded in %.1f ms (on a worker "
             "thread; %.1f ms from view to written)",
             rn->snap_plain_len, (double)rn->snap_encode_ns / (double)NS_PER_MS,
             (double)(clock_mono_ns() - rn->snap_t0) / (double)NS_PER_MS);
  if (*bufs && rn->sealed)
    raft_free((*bufs)[0].base); /* atrest_seal's */
  else if (*bufs)
    free((*bufs)[0].base);
  raft_free(*bufs);
  *bufs = NULL;
  *n_bufs = 0;
  if (rn->snap_view)
    rn->fsm.snapshot_view_free(rn->snap_view);
  rn->snap_view = NULL;
  return 0;
}

/* libraft's uv io of this version has no async_work (io version 1): the
 * snapshot's encoding runs on the libuv pool through this one. */
struct async_job {
  uv_work_t w;
  struct raftnode *rn;
  struct async_job *next;
  struct raft_io_async_work *req;
  raft_io_async_work_cb cb;
  int status;
};

/* The snapshot's encoding is background work: at the lowest priority
 * for its time on the pool thread, so it never takes the CPU from the
 * loop that sends raft's heartbeats (it then takes longer, and raft keeps
 * the log meanwhile). The thread gets its priority back after (root may
 * raise it again; otherwise it stays low, which only slows the pool). */
static void async_job_run(uv_work_t *w) {
  struct async_job *j = w->data;
  pid_t tid = gettid();
  errno = 0;
  int was = getpriority(PRIO_PROCESS, (id_t)tid);
  bool lowered = errno == 0 && setpriority(PRIO_PROCESS, (id_t)tid, 19) == 0;
  j->status = j->req->work(j->req);
  if (lowered)
    (void)setpriority(PRIO_PROCESS, (id_t)tid, was);
}

static void close_step(struct raftnode *rn);

/* A node closing ends the work as canceled: libraft then frees the
 * encoding through the FSM's finalize (it would otherwise hand it to the
 * closed io), and the close goes on once no job is left. */
static void async_job_done(uv_work_t *w, int status) {
  struct async_job *j = w->data;
  struct raftnode *rn = j->rn;
  struct raft_io_async_work *req = j->req;
  raft_io_async_work_cb cb = j->cb;
  int st = status == UV_ECANCELED || rn->closing ? RAFT_CANCELED : j->status;
  for (struct async_job **p = &rn->jobs; *p; p = &(*p)->next)
    if (*p == j) {
      *p = j->next;
      break;
    }
  free(j);
  cb(req, st);
  if (rn->closing)
    close_step(rn);
}

static int io_async_work(struct raft_io *io, struct raft_io_async_work *req,
                         raft_io_async_work_cb cb) {
  struct raftnode *rn =
      (struct raftnode *)((char *)io - offsetof(struct raftnode, io));
  if (rn->closing)
    return RAFT_CANCELED; /* the close counted the jobs it waits for */
  struct async_job *j = xcalloc(1, sizeof *j);
  j->w.data = j;
  j->rn = rn;
  j->req = req;
  j->cb = cb;
  if (uv_queue_work(rn->loop, &j->w, async_job_run, async_job_done) != 0) {
    free(j);
    return RAFT_IOERR;
  }
  j->next = rn->jobs;
  rn->jobs = j;
  return 0;
}

static int fsm_restore_cb(struct raft_fsm *f, struct raft_buffer *buf) {
  struct raftnode *rn = f->data;
  sh_err_clear(&rn->restore_err);
  int64_t t0 = clock_mono_ns();
  if (rn->fsm.restore(rn->fsm.ud, buf->base, buf->len, &rn->restore_err) < 0)
    return RAFT_CORRUPT;
  /* Raft restores only a snapshot past its last applied index, so past
   * every queued entry. */
  drop_queue(rn);
  /* At start, or sent by the leader to a follower that fell behind its
   * log: either way a stretch of loop time worth seeing. */
  log_info("raft: snapshot of %zu bytes restored in %.1f ms", buf->len,
           (double)(clock_mono_ns() - t0) / (double)NS_PER_MS);
  raft_free(buf->base);
  return 0;
}

/* ---- leadership ---- */

/* Every change of leader this node sees goes to the log: failovers are
 * the first thing to look for when a cluster misbehaved. */
static void log_leader_change(struct raftnode *rn) {
  raft_id id = 0;
  const char *addr = NULL;
  raft_leader(&rn->raft, &id, &addr);
  if (id == rn->known_leader)
    return;
  rn->known_leader = id;
  if (id == 0)
    log_warn("raft: no leader (term %llu)",
             (unsigned long long)rn->raft.current_term);
  else if (id == rn->raft.id)
    log_info("raft: this node is the leader (term %llu)",
             (unsigned long long)rn->raft.current_term);
  else
    log_info("raft: the leader is %llx at %s (term %llu)",
             (unsigned long long)id, addr ? addr : "?",
             (unsigned long long)rn->raft.current_term);
}

static void check_leader(struct raftnode *rn) {
  if (!rn->started || rn->closing)
    return;
  log_leader_change(rn);
  /* A leader reads and decides on the whole log: with entries still
   * queued, the manager hears of its leadership once the slices applied
   * them (at once, they could hold the loop past the election timeout;
   * raft commits nothing meanwhile, as nothing is proposed). */
  bool elected = raft_state(&rn->raft) == RAFT_LEADER;
  bool now = elected && !rn->dq_head;
  if (elected && rn->dq_head && !rn->elected_queued_ns && !rn->was_leader) {
    rn->elected_queued_ns = clock_mono_ns();
    log_info("raft: elected with %zu entries (%zu bytes) still to apply: "
             "this node leads once they are",
             rn->dq_n, rn->dq_bytes);
  }
  if (!elected)
    rn->elected_queued_ns = 0;
  if (now == rn->was_leader)
    return;
  if (now && rn->elected_queued_ns) {
    log_info("raft: the queued entries applied %.0f ms after the election: "
             "this node leads",
             (double)(clock_mono_ns() - rn->elected_queued_ns) / NS_PER_MS);
    rn->elected_queued_ns = 0;
  }
  rn->was_leader = now;
  rn->led_since_ns = now ? clock_mono_ns() : 0;
  memset(rn->heard, 0, sizeof rn->heard); /* a new term: hear afresh */
  if (rn->on_leader)
    rn->on_leader(rn->leader_ud, now);
}

/* Busy time of a turn above which the log says so: half the election
 * timeout, where followers start to miss heartbeats. */
static void measure_turn(struct raftnode *rn) {
  uint64_t now = uv_hrtime(), idle = uv_metrics_idle_time(rn->loop);
  if (rn->turn_end_ns && idle >= rn->turn_idle_ns) {
    uint64_t busy = (now - rn->turn_end_ns) - (idle - rn->turn_idle_ns);
    if (busy > (uint64_t)rn->election_ms * NS_PER_MS / 2)
      log_warn("raft: the event loop was busy for %.0f ms in one turn (the "
               "election timeout is %u ms)",
               (double)busy / (double)NS_PER_MS, rn->election_ms);
  }
  rn->turn_end_ns = now;
  rn->turn_idle_ns = idle;
}

/* A leader's tick that is due runs here, right after the turn's reads
 * and writes, and what it sends leaves at once (bridge_pump_all), not in
 * the next turn: there it would come after the timers that turn also
 * finds due (the dispatcher's flush to every node, the reconciler's
 * passes), 100 ms and more at 1,000 nodes. The heartbeat carries the
 * commit index; held back, the followers learnt of each commit only with
 * the next entries, applied it then, and acknowledged those entries only
 * after that apply. */
static void tick_if_due(struct raftnode *rn) {
  if (!rn->tick_cb || !rn->last_tick_ms || !rn->started ||
      raft_state(&rn->raft) != RAFT_LEADER)
    return;
  uv_update_time(rn->loop);
  uint64_t now = uv_now(rn->loop);
  if (now - rn->last_tick_ms < rn->tick_ms)
    return;
  rn->last_tick_ms = now;
  rn->tick_cb(&rn->io);
  bridge_pump_all(rn->loop);
}

static void check_cb(uv_check_t *h) {
  struct raftnode *rn = h->data;
  measure_turn(rn);
  if (rn->hold_ns && rn->dq_head && !uv_is_active((uv_handle_t *)&rn->drain) &&
      clock_mono_ns() >= rn->hold_until_ns)
    uv_idle_start(&rn->drain, drain_cb);

  if (rn->tick_held && !rn->closing) {
    rn->tick_held = false;
    rn->last_tick_ms = uv_now(rn->loop);
    rn->tick_cb(&rn->io);
  } else if (!rn->closing) {
    tick_if_due(rn);
  }
  check_leader(rn);
}

/* libuv runs timers before it reads sockets. After a turn busy past the
 * election timeout, libraft's tick would judge by messages still unread:
 * a leader would find no follower heard from (and step down), a follower
 * no heartbeat (and stand for election), though the others were fine.
 * A tick that comes that late waits for this turn's reads, and runs in
 * its check phase; an on-time tick runs as it is. A leader that really
 * stopped is still found out: its followers' ticks are on time. */
static void io_tick(struct raft_io *io) {
  struct raftnode *rn =
      (struct raftnode *)((char *)io - offsetof(struct raftnode, io));
  uint64_t now = uv_now(rn->loop);
  if (rn->tls && !rn->closing)
    tls_transport_warm(&rn->transport, &rn->raft.configuration);
  if (rn->last_tick_ms && now - rn->last_tick_ms > rn->election_ms / 2) {
    rn->tick_held = true;
    return;
  }
  rn->last_tick_ms = now;
  rn->tick_cb(io);
}

static int io_start_wrapped(struct raft_io *io, unsigned msecs,
                            raft_io_tick_cb tick, raft_io_recv_cb recv) {
  struct raftnode *rn =
      (struct raftnode *)((char *)io - offsetof(struct raftnode, io));
  rn->tick_cb = tick;
  rn->tick_ms = msecs;
  rn->last_tick_ms = 0;
  return rn->io_start(io, msecs, io_tick, recv);
}
static void kick_cb(uv_timer_t *h) {
  check_leader(h->data);
}

/* ---- open / state ---- */

uint64_t raftnode_id_for(const char *node_id) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256((const unsigned char *)node_id, strlen(node_id), md);
  uint64_t id = 0;
  for (int i = 0; i < 8; i++)
    id = (id << 8) | md[i];
  return id ? id : 1;
}

/* The one place the raft transport is made. */
static int transport_init(struct raftnode *rn,
                          const struct raftnode_config *cfg, sh_err *err) {
  if (rn->tls)
    return tls_transport_init(&rn->transport, rn->loop, cfg->tls_cert_pem,
                              cfg->tls_key_pem, cfg->tls_root_pem,
                              cfg->cluster_id, err);
  int rv = raft_uv_tcp_init(&rn->transport, rn->loop);
  if (rv != 0)
    return sh_error(err, 500, "raft transport: %s", raft_strerror(rv));
  return 0;
}

static void transport_free(struct raftnode *rn) {
  if (rn->tls)
    tls_transport_free(&rn->transport);
  else
    raft_uv_tcp_close(&rn->transport);
}

static void node_free(struct raftnode *rn) {
  free(rn->dir);
  free(rn->address);
  OPENSSL_cleanse(rn->atrest.dek, sizeof rn->atrest.dek);
  free(rn);
}

/* A repair is no error (start goes on), so it is logged where it happens. */
static void log_repairs(const char *dir, const struct segment_report *rep) {
  for (unsigned i = 0; i < rep->n; i++) {
    const struct segment_repair *r = &rep->repairs[i];
    unsigned long long kept = r->kept_entries;
    const char *kept_s = kept == 1 ? "y" : "ies";
    if (r->dropped_bytes == 0) {
      log_warn("raft storage: %s/%s: torn write (%s): truncated from %zu to "
               "%zu bytes, no data lost; kept %llu entr%s",
               dir, r->file, r->why, r->old_size, r->new_size, kept, kept_s);
      continue;
    }
    char entries[48] = "an unknown number of entries";
    if (r->dropped_known)
      snprintf(entries, sizeof entries, "%llu entr%s",
               (unsigned long long)r->dropped_entries,
               r->dropped_entries == 1 ? "y" : "ies");
    log_warn("raft storage: %s/%s: torn write (%s): truncated from %zu to "
             "%zu bytes, dropped %zu bytes holding %s of an unfinished "
             "batch; kept %llu entr%s",
             dir, r->file, r->why, r->old_size, r->new_size, r->dropped_bytes,
             entries, kept, kept_s);
  }
}

/* See the top of this file: libraft's io may report its close twice. */
static void io_closed_once(struct raft_io *io) {
  struct raftnode *rn =
      (struct raftnode *)((char *)io - offsetof(struct raftnode, io));
  if (rn->io_closed)
    return;
  rn->io_closed = true;
  rn->io_close_cb(io);
}

struct atrest *atrest_of(struct raft_io *io) {
  struct raftnode *rn =
      (struct raftnode *)((char *)io - offsetof(struct raftnode, io));
  return &rn->atrest;
}

static void io_close_once(struct raft_io *io, raft_io_close_cb cb) {
  struct raftnode *rn =
      (struct raftnode *)((char *)io - offsetof(struct raftnode, io));
  rn->io_close_cb = cb;
  rn->io_close(io, io_closed_once);
}

int raftnode_open(uv_loop_t *loop, const struct raftnode_config *cfg,
                  const struct raftnode_fsm *fsm, struct raftnode **out,
                  sh_err *err) {
  if (!cfg || !cfg->dir || !cfg->address || cfg->id == 0 || !fsm ||
      !fsm->apply || !fsm->snapshot || !fsm->restore)
    return sh_error(err, 400, "raft: invalid configuration");
  unsigned tick = cfg->tick_ms ? cfg->tick_ms : 100;
  unsigned hb = cfg->heartbeat_ticks ? cfg->heartbeat_ticks : 1;
  unsigned el = cfg->election_ticks ? cfg->election_ticks : 10;
  if (hb >= el)
    return sh_error(err, 400,
                    "raft: election ticks must exceed heartbeat ticks");
  int ntls = !!cfg->tls_cert_pem + !!cfg->tls_key_pem + !!cfg->tls_root_pem +
             !!cfg->cluster_id;
  if (ntls != 0 && ntls != 4)
    return sh_error(err, 400,
                    "raft: TLS needs certificate, key, root CA and cluster ID");
  if (mkdir_p(cfg->dir, 0700, err) < 0)
    return -1;
  /* Before libraft reads anything (raft_init loads the metadata). */
  struct segment_report rep;
  if (segment_check_dir(cfg->dir, &rep, err) < 0)
    return -1;
  log_repairs(cfg->dir, &rep);

  struct raftnode *rn = xcalloc(1, sizeof *rn);
  rn->tls = ntls == 4;
  rn->loop = loop;
  rn->dir = xstrdup(cfg->dir);
  rn->address = xstrdup(cfg->address);
  rn->id = cfg->id;
  rn->fsm = *fsm;
  rn->rfsm.version = 1;
  rn->rfsm.data = rn;
  rn->rfsm.apply = fsm_apply_cb;
  rn->rfsm.snapshot = fsm_snapshot_cb;
  rn->rfsm.restore = fsm_restore_cb;
  if (fsm->snapshot_view && fsm->snapshot_encode && fsm->snapshot_view_free) {
    rn->rfsm.version = 3;
    rn->rfsm.snapshot = fsm_snapshot_view_cb;
    rn->rfsm.snapshot_async = fsm_snapshot_async_cb;
    rn->rfsm.snapshot_finalize = fsm_snapshot_finalize_cb;
  }

  if (transport_init(rn, cfg, err) < 0) {
    node_free(rn);
    return -1;
  }
  int rv = raft_uv_init(&rn->io, loop, rn->dir, &rn->transport);
  if (rv != 0) {
    sh_error(err, 500, "raft: %s: %s", rn->dir, rn->io.errmsg);
    transport_free(rn);
    node_free(rn);
    return -1;
  }
  raft_uv_set_segment_size(&rn->io, RAFT_SEGMENT_SIZE);
  raft_uv_set_auto_recovery(&rn->io, false);
  if (rn->rfsm.version >= 3 && (rn->io.version < 2 || !rn->io.async_work)) {
    rn->io.version = 2;
    rn->io.async_work = io_async_work;
  }
  rn->io_close = rn->io.close;
  rn->io.close = io_close_once;
  rn->io_start = rn->io.start;
  rn->io.start = io_start_wrapped;
  if (cfg->dek) {
    atrest_wrap(&rn->io, &rn->atrest, cfg->dek);
    rn->sealed = true;
  }
  rv = raft_init(&rn->raft, &rn->io, &rn->rfsm, cfg->id, rn->address);
  if (rv != 0) {
    sh_error(err, 500, "raft: %s", raft_errmsg(&rn->raft));
    raft_uv_close(&rn->io);
    transport_free(rn);
    node_free(rn);
    return -1;
  }
  rn->raft.data = rn;
  raft_set_heartbeat_timeout(&rn->raft, tick * hb);
  raft_set_election_timeout(&rn->raft, tick * el);
  rn->election_ms = tick * el;
  rn->raft_tick_ms = tick;
  rn->heartbeat_ticks = hb;
  rn->election_ticks = el;
  /* Pre-vote: a manager whose loop stalled past the election timeout (a
   * big pass, a slow disk) asks first whether it could win, and does not
   * depose a leader the others still hear from. Without it, every stall
   * of a follower cost an election and a new leader's takeover work. */
  raft_set_pre_vote(&rn->raft, true);
  raftnode_set_snapshot_policy(rn, cfg->snapshot_interval,
                               cfg->log_entries_for_slow_followers);

  uv_check_init(loop, &rn->check);
  rn->check.data = rn;
  uv_unref((uv_handle_t *)&rn->check);
  uv_timer_init(loop, &rn->kick);
  rn->kick.data = rn;
  uv_idle_init(loop, &rn->drain);
  rn->drain.data = rn;
  const char *hold = getenv("SHOAL_RAFT_APPLY_HOLD_MS");
  if (hold && atoll(hold) > 0)
    rn->hold_ns = atoll(hold) * NS_PER_MS;
  *out = rn;
  return 0;
}

/* metadata1/2, closed ("N-M") or open ("open-N") segments, snapshots. */
static bool is_raft_file(const char *n) {
  if (strcmp(n, "metadata1") == 0 || strcmp(n, "metadata2") == 0)
    return true;
  if (str_has_prefix(n, "open-") || str_has_prefix(n, "snapshot-"))
    return true;
  unsigned long long a, b;
  char end;
  return sscanf(n, "%llu-%llu%c", &a, &b, &end) == 2;
}

bool raftnode_has_state(const struct raftnode *rn) {
  DIR *d = opendir(rn->dir);
  if (!d)
    return false;
  bool found = false;
  struct dirent *e;
  while (!found && (e = readdir(d)) != NULL)
    found = is_raft_file(e->d_name);
  closedir(d);
  return found;
}

static int single_config(struct raftnode *rn, struct raft_configuration *c,
                         sh_err *err) {
  raft_configuration_init(c);
  int rv = raft_configuration_add(c, rn->id, rn->address, RAFT_VOTER);
  if (rv != 0) {
    raft_configuration_close(c);
    return sh_error(err, 500, "raft configuration: %s", raft_strerror(rv));
  }
  return 0;
}

int raftnode_bootstrap(struct raftnode *rn, sh_err *err) {
  struct raft_configuration c;
  if (single_config(rn, &c, err) < 0)
    return -1;
  int rv = raft_bootstrap(&rn->raft, &c);
  raft_configuration_close(&c);
  if (rv != 0)
    return sh_error(err, rv == RAFT_CANTBOOTSTRAP ? 409 : 500,
                    "raft bootstrap: %s: %s", raft_strerror(rv), rn->io.errmsg);
  return 0;
}

int raftnode_recover_single(struct raftnode *rn, sh_err *err) {
  if (rn->started)
    return sh_error(err, 409, "raft: recover must come before start");
  struct raft_configuration c;
  if (single_config(rn, &c, err) < 0)
    return -1;
  int rv = raft_recover(&rn->raft, &c);
  raft_configuration_close(&c);
  if (rv != 0)
    return sh_error(err, 500, "raft recover: %s: %s", raft_strerror(rv),
                    rn->io.errmsg);
  return 0;
}

int raftnode_start(struct raftnode *rn, raftnode_leader_fn on_leader, void *ud,
                   sh_err *err) {
  if (rn->started || rn->closing)
    return sh_error(err, 409, "raft: already started");
  rn->on_leader = on_leader;
  rn->leader_ud = ud;
  sh_err_clear(&rn->restore_err);
  int rv = raft_start(&rn->raft);
  if (rv != 0) {
    if (rn->restore_err.status)
      return sh_error(err, 500, "raft start: restoring snapshot: %s",
                      rn->restore_err.msg);
    return sh_error(err, 500, "raft start: %s", raft_errmsg(&rn->raft));
  }
  rn->started = true;
  uv_check_start(&rn->check, check_cb);
  /* A single voter is leader already; tell on_leader from the loop. */
  uv_timer_start(&rn->kick, kick_cb, 0, 0);
  return 0;
}

int raftnode_join(struct raftnode *rn, raftnode_leader_fn on_leader, void *ud,
                  sh_err *err) {
  if (raftnode_has_state(rn))
    return sh_error(err, 409, "raft: %s already holds raft state", rn->dir);
  /* An empty configuration: raft waits, as a non-voter, for the leader's
   * entries (the first one carries the configuration that adds us). */
  return raftnode_start(rn, on_leader, ud, err);
}

bool raftnode_is_leader(const struct raftnode *rn) {
  return rn->started && !rn->closing && !rn->stepping_down &&
         raft_state((struct raft *)&rn->raft) == RAFT_LEADER;
}

void raftnode_leader(const struct raftnode *rn, uint64_t *id,
                     const char **address) {
  raft_id lid = 0;
  const char *addr = NULL;
  if (rn->started && !rn->closing)
    raft_leader((struct raft *)&rn->raft, &lid, &addr);
  if (id)
    *id = lid;
  if (address)
    *address = lid ? addr : NULL;
}

uint64_t raftnode_last_applied(const struct raftnode *rn) {
  if (rn->dq_head) /* what the FSM has: reads wait for it */
    return rn->dq_head->index - 1;
  return (uint64_t)raft_last_applied((struct raft *)&rn->raft);
}

/* ---- propose ---- */

static bool is_io_status(int rv) {
  return rv == RAFT_IOERR || rv == RAFT_NOSPACE || rv == RAFT_TOOMANY;
}

/* Names the cause of a failed disk write: libraft's codes say little, its
 * message has the detail (see the top of this file). */
static int io_error(struct raftnode *rn, int rv, sh_err *e) {
  const char *detail = raft_errmsg(&rn->raft);
  char enospc[32];
  snprintf(enospc, sizeof enospc, "write failed: %d", -ENOSPC);
  if (rv == RAFT_NOSPACE || strcasestr(detail, "no space left on device") ||
      strstr(detail, enospc))
    return sh_error(e, 500, "raft: no space left on device: %s (%s)", rn->dir,
                    detail);
  return sh_error(e, 500, "raft: %s: %s (%s)", rn->dir,
                  rv == RAFT_IOERR ? "I/O error" : raft_strerror(rv), detail);
}

/* Logs the first failure of a burst and the first success after one, not
 * every proposal in between. */
static void io_outcome(struct raftnode *rn, bool failed, const sh_err *e) {
  if (failed) {
    if (rn->io_failures++ == 0)
      log_error("%s", e->msg);
    return;
  }
  if (rn->io_failures) {
    log_info("raft: %s: writes work again (%u failed)", rn->dir,
             rn->io_failures);
    rn->io_failures = 0;
  }
}

/* A failover's second part, after the election: logged once a term. */
static void note_first_commit(struct raftnode *rn) {
  if (!rn->led_since_ns)
    return;
  log_info("raft: the first entry of term %llu committed %.0f ms after "
           "this node became leader",
           (unsigned long long)rn->raft.current_term,
           (double)(clock_mono_ns() - rn->led_since_ns) / NS_PER_MS);
  rn->led_since_ns = 0;
}

static void apply_done(struct raft_apply *req, int status, void *result) {
  struct propose_req *p = req->data;
  struct raftnode *rn = p->rn;
  unlink_hinted(p);
  sh_err e = {0};
  int rc = 0;
  if (status == 0 && result == rn) {
    io_outcome(rn, false, NULL);
    note_first_commit(rn);
    rc = rn->verdict_rc < 0 ? -1 : 0;
    if (rc < 0)
      e = rn->verdict_err;
  } else if (status == RAFT_LEADERSHIPLOST || status == RAFT_SHUTDOWN ||
             status == RAFT_NOTLEADER) {
    rc = sh_error(&e, 503, "%s", RAFTNODE_NO_LEADER_MSG);
  } else if (is_io_status(status)) {
    rc = io_error(rn, status, &e);
    io_outcome(rn, true, &e);
  } else {
    rc = sh_error(&e, 500, "raft: %s", raft_strerror(status));
  }
  /* libraft fails the pending applies while stepping down with its state
   * still RAFT_LEADER and the followers' progress already freed: a
   * raft_apply from a callback then (a proposer trying its next batch)
   * dereferences that progress. Until the callbacks are done this node
   * says it is no leader, so raftnode_propose refuses. */
  bool lost = status == RAFT_LEADERSHIPLOST || status == RAFT_SHUTDOWN;
  rn->stepping_down += lost;
  if (p->done)
    p->done(p->ud, rc, &e);
  rn->stepping_down -= lost;
  free(p);
}

struct barrier_req {
  struct raft_barrier req;
  struct raftnode *rn;
  raftnode_barrier_fn done;
  void *ud;
};

static void barrier_done(struct raft_barrier *req, int status) {
  struct barrier_req *b = req->data;
  struct raftnode *rn = b->rn;
  if (status == 0) {
    note_first_commit(rn);
    drain_all(rn); /* a barrier means every earlier entry is in the FSM */
  }
  /* as apply_done: no raft call from the callback while stepping down */
  bool lost = status == RAFT_LEADERSHIPLOST || status == RAFT_SHUTDOWN;
  rn->stepping_down += lost;
  b->done(b->ud, status == 0 ? 0 : -1);
  rn->stepping_down -= lost;
  free(b);
}

int raftnode_barrier(struct raftnode *rn, raftnode_barrier_fn done, void *ud,
                     sh_err *err) {
  if (!raftnode_is_leader(rn))
    return sh_error(err, 503, "%s", RAFTNODE_NO_LEADER_MSG);
  struct barrier_req *b = xcalloc(1, sizeof *b);
  b->rn = rn;
  b->done = done;
  b->ud = ud;
  b->req.data = b;
  int rv = raft_barrier(&rn->raft, &b->req, barrier_done);
  if (rv != 0) {
    free(b);
    return sh_error(err, 503, "raft: %s", raft_strerror(rv));
  }
  return 0;
}

int raftnode_propose(struct raftnode *rn, const char *data, size_t len,
                     raftnode_done_fn done, void *ud, sh_err *err) {
  return raftnode_propose_hinted(rn, data, len, NULL, done, ud, err);
}

int raftnode_propose_hinted(struct raftnode *rn, const char *data, size_t len,
                            void *hint, raftnode_done_fn done, void *ud,
                            sh_err *err) {
  if (!raftnode_is_leader(rn))
    return sh_error(err, 503, "%s", RAFTNODE_NO_LEADER_MSG);
  if (len == 0)
    return sh_error(err, 400, "raft: empty entry");
  struct raft_buffer buf;
  buf.len = frame_size(len);
  buf.base = raft_calloc(1, buf.len);
  if (!buf.base)
    return sh_error(err, 500, "raft: out of memory");
  unsigned char *hdr = buf.base;
  for (int i = 0; i < 8; i++)
    hdr[i] = (unsigned char)((uint64_t)len >> (8 * i));
  memcpy(hdr + FRAME_HDR, data, len);
  struct propose_req *p = xcalloc(1, sizeof *p);
  p->rn = rn;
  p->done = done;
  p->ud = ud;
  p->req.data = p;
  if (hint) { /* listed first: it must be there whenever raft applies */
    p->base = buf.base;
    p->hint = hint;
    p->prev = rn->hinted_tail;
    if (rn->hinted_tail)
      rn->hinted_tail->next = p;
    else
      rn->hinted = p;
    rn->hinted_tail = p;
  }
  int rv = raft_apply(&rn->raft, &p->req, &buf, 1, apply_done);
  if (rv != 0) {
    unlink_hinted(p);
    /* Not queued: the buffer is still ours. */
    raft_free(buf.base);
    free(p);
    if (rv == RAFT_NOTLEADER)
      return sh_error(err, 503, "%s", RAFTNODE_NO_LEADER_MSG);
    if (is_io_status(rv)) {
      io_error(rn, rv, err);
      io_outcome(rn, true, err);
      return -1;
    }
    return sh_error(err, 500, "raft: %s", raft_strerror(rv));
  }
  return 0;
}

/* ---- membership ---- */

enum op_kind { OP_ADD, OP_REMOVE, OP_TRANSFER };

struct member_op {
  struct raftnode *rn;
  enum op_kind kind;
  uint64_t id;
  char *address;
  raftnode_done_fn done;
  void *ud;
  struct raft_change change;
  struct raft_transfer transfer;
  uv_timer_t timer; /* next step on a later loop turn; retries */
  uint64_t deadline;
  bool in_raft; /* raft holds change/transfer and owes a callback */
  struct member_op *next;
};

static void op_step(struct member_op *op);

static void op_timer_cb(uv_timer_t *t) {
  op_step(t->data);
}

static void op_schedule(struct member_op *op, uint64_t ms) {
  uv_timer_start(&op->timer, op_timer_cb, ms, 0);
}

static void op_closed(uv_handle_t *h) {
  struct member_op *op = h->data;
  free(op->address);
  free(op);
}

/* Ends the head op: done, then the next op starts. */
static void op_finish(struct member_op *op, int rc, const sh_err *e) {
  struct raftnode *rn = op->rn;
  rn->ops_head = op->next;
  if (!rn->ops_head)
    rn->ops_tail = NULL;
  uv_close((uv_handle_t *)&op->timer, op_closed);
  sh_err ok = {0};
  if (op->done)
    op->done(op->ud, rc, rc < 0 ? e : &ok);
  if (rn->ops_head && !rn->closing)
    op_schedule(rn->ops_head, 0);
}

static void op_fail(struct member_op *op, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void op_fail(struct member_op *op, int status, const char *fmt, ...) {
  sh_err e = {0};
  va_list ap;
  va_start(ap, fmt);
  char msg[SH_ERR_MSG_MAX];
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  sh_error(&e, status, "%s", msg);
  op_finish(op, -1, &e);
}

static void op_fail_raft(struct member_op *op, int rv) {
  switch (rv) {
  case RAFT_NOTLEADER:
  case RAFT_LEADERSHIPLOST:
  case RAFT_SHUTDOWN:
  case RAFT_CANCELED:
    op_fail(op, 503, "%s", RAFTNODE_NO_LEADER_MSG);
    break;
  case RAFT_NOCONNECTION:
    op_fail(op, 503, "raft: member %llu did not catch up (not reachable)",
            (unsigned long long)op->id);
    break;
  case RAFT_CANTCHANGE:
    op_fail(op, 504, "raft: another membership change is still in progress");
    break;
  case RAFT_BADID:
  case RAFT_NOTFOUND:
    op_fail(op, 404, "raft: no voting member %llu", (unsigned long long)op->id);
    break;
  case RAFT_DUPLICATEID:
  case RAFT_DUPLICATEADDRESS:
  case RAFT_BADROLE:
    op_fail(op, 409, "raft: %s", raft_strerror(rv));
    break;
  default:
    op_fail(op, 500, "raft: %s", raft_strerror(rv));
  }
}

static void op_change_cb(struct raft_change *req, int status) {
  struct member_op *op = req->data;
  op->in_raft = false;
  if (status != 0) {
    struct raftnode *rn = op->rn;
    bool lost = status == RAFT_LEADERSHIPLOST; /* as in apply_done */
    rn->stepping_down += lost;
    op_fail_raft(op, status); /* may free op */
    rn->stepping_down -= lost;
    return;
  }
  /* A new spare: promote it next, outside raft's callback. */
  if (op->kind == OP_ADD)
    op_schedule(op, 0);
  else
    op_finish(op, 0, NULL);
}

static void op_transfer_cb(struct raft_transfer *req) {
  struct member_op *op = req->data;
  op->in_raft = false;
  if (op->rn->closing || raft_state(&op->rn->raft) == RAFT_LEADER)
    op_fail(op, 503, "raft: leadership transfer to %llu did not complete",
            (unsigned long long)op->id);
  else
    op_finish(op, 0, NULL);
}

static const struct raft_server *conf_get(struct raftnode *rn, uint64_t id) {
  for (unsigned i = 0; i < rn->raft.configuration.n; i++)
    if (rn->raft.configuration.servers[i].id == id)
      return &rn->raft.configuration.servers[i];
  return NULL;
}

static void op_step(struct member_op *op) {
  struct raftnode *rn = op->rn;
  if (!raftnode_is_leader(rn)) { /* also while stepping down */
    op_fail(op, 503, "%s", RAFTNODE_NO_LEADER_MSG);
    return;
  }
  int rv = 0;
  const struct raft_server *srv = conf_get(rn, op->id);
  op->change.data = op;
  op->transfer.data = op;
  switch (op->kind) {
  case OP_ADD:
    if (srv && strcmp(srv->address, op->address) != 0) {
      op_fail(op, 409, "raft: member %llu has address %s",
              (unsigned long long)op->id, srv->address);
      return;
    }
    if (srv && srv->role == RAFT_VOTER) {
      op_finish(op, 0, NULL);
      return;
    }
    rv = srv ? raft_assign(&rn->raft, &op->change, op->id, RAFT_VOTER,
                           op_change_cb)
             : raft_add(&rn->raft, &op->change, op->id, op->address,
                        op_change_cb);
    break;
  case OP_REMOVE:
    if (op->id == rn->id) {
      op_fail(op, 409,
              "raft: the leader cannot remove itself; transfer leadership "
              "first");
      return;
    }
    if (!srv) {
      op_finish(op, 0, NULL);
      return;
    }
    rv = raft_remove(&rn->raft, &op->change, op->id, op_change_cb);
    break;
  case OP_TRANSFER:
    rv = raft_transfer(&rn->raft, &op->transfer, op->id, op_transfer_cb);
    break;
  }
  if (rv == 0) {
    op->in_raft = true;
    return;
  }
  /* Busy with an earlier change (or a new leader's uncommitted one). */
  if (rv == RAFT_CANTCHANGE && uv_now(rn->loop) < op->deadline) {
    op_schedule(op, MEMBER_OP_RETRY_MS);
    return;
  }
  op_fail_raft(op, rv);
}

static int op_enqueue(struct raftnode *rn, enum op_kind kind, uint64_t id,
                      const char *address, raftnode_done_fn done, void *ud,
                      sh_err *err) {
  if (!raftnode_is_leader(rn))
    return sh_error(err, 503, "%s", RAFTNODE_NO_LEADER_MSG);
  struct member_op *op = xcalloc(1, sizeof *op);
  op->rn = rn;
  op->kind = kind;
  op->id = id;
  op->address = address ? xstrdup(address) : NULL;
  op->done = done;
  op->ud = ud;
  op->deadline = uv_now(rn->loop) + MEMBER_OP_WAIT_MS;
  uv_timer_init(rn->loop, &op->timer);
  op->timer.data = op;
  if (rn->ops_tail)
    rn->ops_tail->next = op;
  else
    rn->ops_head = op;
  rn->ops_tail = op;
  if (rn->ops_head == op)
    op_schedule(op, 0);
  return 0;
}

int raftnode_add(struct raftnode *rn, uint64_t id, const char *address,
                 raftnode_done_fn done, void *ud, sh_err *err) {
  if (id == 0 || !address || !*address)
    return sh_error(err, 400, "raft: member id and address required");
  if (id == rn->id)
    return sh_error(err, 409, "raft: %llu is this node",
                    (unsigned long long)id);
  return op_enqueue(rn, OP_ADD, id, address, done, ud, err);
}

int raftnode_remove(struct raftnode *rn, uint64_t id, raftnode_done_fn done,
                    void *ud, sh_err *err) {
  if (id == 0)
    return sh_error(err, 400, "raft: member id required");
  return op_enqueue(rn, OP_REMOVE, id, NULL, done, ud, err);
}

int raftnode_transfer_leadership(struct raftnode *rn, uint64_t id,
                                 raftnode_done_fn done, void *ud, sh_err *err) {
  if (id == rn->id)
    return sh_error(err, 409, "raft: %llu is already the leader",
                    (unsigned long long)id);
  return op_enqueue(rn, OP_TRANSFER, id, NULL, done, ud, err);
}

/* Fails the changes that raft did not fail itself (close). */
static void ops_fail_all(struct raftnode *rn) {
  while (rn->ops_head) {
    struct member_op *op = rn->ops_head;
    uv_timer_stop(&op->timer);
    op_fail(op, 503, "%s", RAFTNODE_NO_LEADER_MSG);
  }
}

/* Leader: records peers heard from; returns 1 heard recently, -1 silent
 * for two election timeouts, 0 no opinion. */
static int leader_heard(struct raftnode *rn, unsigned i, uint64_t id) {
  if (rn->raft.state != RAFT_LEADER || !rn->raft.leader_state.progress)
    return 0;
  uint64_t now = uv_now(rn->loop);
  size_t slot = ARRAY_SIZE(rn->heard), free_slot = ARRAY_SIZE(rn->heard);
  for (size_t k = 0; k < ARRAY_SIZE(rn->heard); k++) {
    if (rn->heard[k].id == id)
      slot = k;
    else if (!rn->heard[k].id && free_slot == ARRAY_SIZE(rn->heard))
      free_slot = k;
  }
  if (slot == ARRAY_SIZE(rn->heard)) {
    if (free_slot == ARRAY_SIZE(rn->heard))
      return 0;
    slot = free_slot;
    rn->heard[slot].id = id;
    rn->heard[slot].at_ms = now; /* grace from the first sample */
  }
  if (rn->raft.leader_state.progress[i].recent_recv)
    rn->heard[slot].at_ms = now;
  return now - rn->heard[slot].at_ms > 2 * (uint64_t)rn->election_ms ? -1 : 1;
}

int raftnode_configuration(const struct raftnode *rn,
                           struct raftnode_member **out, size_t *n,
                           sh_err *err) {
  *out = NULL;
  *n = 0;
  if (rn->closing)
    return sh_error(err, 503, "raft: closing");
  const struct raft_configuration *c = &rn->raft.configuration;
  uint64_t leader = 0;
  raftnode_leader(rn, &leader, NULL);
  struct raftnode_member *m = xcalloc(c->n ? c->n : 1, sizeof *m);
  for (unsigned i = 0; i < c->n; i++) {
    const struct raft_server *s = &c->servers[i];
    m[i].id = s->id;
    m[i].address = xstrdup(s->address ? s->address : "");
    m[i].role = s->role == RAFT_VOTER     ? RAFTNODE_VOTER
                : s->role == RAFT_STANDBY ? RAFTNODE_STANDBY
                                          : RAFTNODE_SPARE;
    m[i].leader = s->id == leader;
    int reach = 0;
    if (s->id == rn->id)
      reach = 1;
    else if (rn->tls)
      reach = tls_transport_reach((struct raft_uv_transport *)&rn->transport,
                                  s->id);
    int heard =
        s->id == rn->id ? 0 : leader_heard((struct raftnode *)rn, i, s->id);
    if (heard < 0 || (heard > 0 && reach == 0))
      reach = heard;
    m[i].reach = reach > 0   ? RAFTNODE_REACHABLE
                 : reach < 0 ? RAFTNODE_UNREACHABLE
                             : RAFTNODE_REACH_UNKNOWN;
  }
  *out = m;
  *n = c->n;
  return 0;
}

void raftnode_members_free(struct raftnode_member *m, size_t n) {
  for (size_t i = 0; m && i < n; i++)
    free(m[i].address);
  free(m);
}

void raftnode_accept_upgrade(struct raftnode *rn, struct http_req *req) {
  if (!rn || rn->closing || !rn->started) {
    http_respond_error(req, 503, "raft: not running");
    return;
  }
  if (!rn->tls) {
    http_respond_error(req, 404, "raft: TLS transport not configured");
    return;
  }
  tls_transport_accept(&rn->transport, req);
}

void raftnode_set_snapshot_policy(struct raftnode *rn, unsigned every,
                                  unsigned trailing) {
  /* Managers apply the same entries at about the same time: with one
   * threshold all of them would encode a snapshot at once, which at
   * 60,000 tasks (38 MB, seconds of a core each) starved the loops of
   * three managers on two cores into elections. Each manager's threshold
   * is the interval plus up to 7/32 more, from its raft ID. */
  if (!every)
    every = 10000;
  every = every > (1u << 30) ? 1u << 30 : every;
  raft_set_snapshot_threshold(&rn->raft,
                              every + (unsigned)(rn->id % 8) * (every / 32));
  raft_set_snapshot_trailing(&rn->raft, trailing ? trailing : 500);
}

void raftnode_set_ticks(struct raftnode *rn, unsigned heartbeat,
                        unsigned election) {
  heartbeat = heartbeat ? heartbeat : 1;
  election = election ? election : 10;
  /* Unchanged: nothing (setting the election timeout restarts its timer,
   * and this runs at every change of the cluster object). */
  if (heartbeat >= election ||
      (heartbeat == rn->heartbeat_ticks && election == rn->election_ticks))
    return;
  rn->heartbeat_ticks = heartbeat;
  rn->election_ticks = election;
  rn->election_ms = rn->raft_tick_ms * election;
  raft_set_heartbeat_timeout(&rn->raft, rn->raft_tick_ms * heartbeat);
  raft_set_election_timeout(&rn->raft, rn->election_ms);
  log_info("raft: heartbeats every %u ms, election timeout %u ms (%u and %u "
           "ticks of %u ms)",
           rn->raft_tick_ms * heartbeat, rn->election_ms, heartbeat, election,
           rn->raft_tick_ms);
}

int raftnode_set_identity(struct raftnode *rn, const char *cert_pem,
                          const char *key_pem, const char *root_pem,
                          sh_err *err) {
  if (!rn->tls)
    return 0;
  return tls_transport_set_identity(&rn->transport, cert_pem, key_pem, root_pem,
                                    err);
}

/* ---- close ---- */

static void close_step(struct raftnode *rn) {
  if (--rn->pending_closes > 0)
    return;
  void (*done)(void *) = rn->close_done;
  void *ud = rn->close_ud;
  raft_uv_close(&rn->io);
  transport_free(rn);
  node_free(rn);
  if (done)
    done(ud);
}

static void handle_closed(uv_handle_t *h) {
  close_step(h->data);
}

static void find_closing(uv_handle_t *h, void *arg) {
  if (uv_is_closing(h))
    *(bool *)arg = true;
}

/* Waits out libraft's late close callbacks (see the top of this file):
 * they come from handles already closing when raft reports closed, so the
 * io stays until a few loop turns have passed with none left. */
#define CLOSE_GRACE_TURNS 3
#define CLOSE_GRACE_MAX_TURNS 200

static void close_grace_cb(uv_timer_t *t) {
  struct raftnode *rn = t->data;
  bool closing = false;
  uv_walk(rn->loop, find_closing, &closing);
  if (++rn->grace_turns < CLOSE_GRACE_MAX_TURNS &&
      (rn->grace_turns < CLOSE_GRACE_TURNS || closing)) {
    uv_timer_start(&rn->kick, close_grace_cb, 0, 0);
    return;
  }
  uv_close((uv_handle_t *)&rn->kick, handle_closed);
}

static void raft_closed(struct raft *r) {
  struct raftnode *rn = r->data;
  /* libraft is still on the stack: release io/transport from the loop. */
  uv_timer_start(&rn->kick, close_grace_cb, 0, 0);
}

void raftnode_close(struct raftnode *rn, void (*done)(void *ud), void *ud) {
  if (!rn || rn->closing)
    return;
  rn->closing = true;
  rn->close_done = done;
  rn->close_ud = ud;
  rn->pending_closes = 3; /* check, drain, then the kick timer */
  /* And each job on the pool: one not started yet is canceled, one under
   * way is waited for (the FSM and libraft's struct stay until then). */
  for (struct async_job *j = rn->jobs; j; j = j->next) {
    rn->pending_closes++;
    uv_cancel((uv_req_t *)&j->w);
  }
  uv_timer_stop(&rn->kick);
  uv_close((uv_handle_t *)&rn->check, handle_closed);
  /* The FSM goes with the node; raft replays the queue's entries from the
   * log at the next start. */
  drop_queue(rn);
  uv_close((uv_handle_t *)&rn->drain, handle_closed);
  /* Fails a pending change or transfer through its callback. */
  raft_close(&rn->raft, raft_closed);
  ops_fail_all(rn);
}
