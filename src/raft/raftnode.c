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
 * - a single voter elects itself inside raft_start and applies its whole log
 *   there; leadership changes have no callback, hence the uv_check poll.
 * - entry payloads must be a multiple of 8 bytes: the on-disk segment
 *   writer only asserts it (compiled out in release builds) and otherwise
 *   writes segments it cannot load back. Entries are therefore framed as
 *   an 8-byte little-endian length, the payload, and zero padding.
 * - raft_close fails pending applies with RAFT_LEADERSHIPLOST, closes the
 *   io (and through it the transport); the io and transport memory may be
 *   released only after the close callback, and not from inside it (libraft
 *   is still on the stack), so we free one loop iteration later. */
#include "raft/raftnode.h"

#include "core/err.h"
#include "core/util.h"

#include <dirent.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdio.h>

struct raftnode {
  uv_loop_t *loop;
  struct raft raft;
  struct raft_io io;
  struct raft_uv_transport transport;
  struct raft_fsm rfsm;
  struct raftnode_fsm fsm;
  char *dir;
  char *address;
  uint64_t id;

  uv_check_t check; /* leadership poll after each loop iteration */
  uv_timer_t kick;  /* first poll right after start; close sequencing */
  bool started, closing, was_leader;
  raftnode_leader_fn on_leader;
  void *leader_ud;

  /* The FSM's verdict on the entry being applied right now. */
  int verdict_rc;
  sh_err verdict_err;
  /* Why fsm->restore failed, for raftnode_start's message. */
  sh_err restore_err;

  int pending_closes;
  void (*close_done)(void *ud);
  void *close_ud;
};

struct propose_req {
  struct raft_apply req;
  struct raftnode *rn;
  raftnode_done_fn done;
  void *ud;
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

static int fsm_apply_cb(struct raft_fsm *f, const struct raft_buffer *buf,
                        void **result) {
  struct raftnode *rn = f->data;
  uint64_t index = (uint64_t)raft_last_applied(&rn->raft) + 1;
  sh_err_clear(&rn->verdict_err);
  size_t len = 0;
  const char *data = frame_payload(buf, &len);
  if (!data)
    rn->verdict_rc =
        sh_error(&rn->verdict_err, 400, "raft entry %llu is malformed",
                 (unsigned long long)index);
  else
    rn->verdict_rc =
        rn->fsm.apply(rn->fsm.ud, data, len, index, &rn->verdict_err);
  if (rn->verdict_rc < 0 && rn->verdict_err.status == 0)
    sh_error(&rn->verdict_err, 500, "entry %llu refused",
             (unsigned long long)index);
  *result = rn;
  return 0;
}

static int fsm_snapshot_cb(struct raft_fsm *f, struct raft_buffer *bufs[],
                           unsigned *n_bufs) {
  struct raftnode *rn = f->data;
  size_t len = 0;
  char *data = rn->fsm.snapshot(rn->fsm.ud, &len);
  if (!data)
    return RAFT_NOMEM;
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

static int fsm_restore_cb(struct raft_fsm *f, struct raft_buffer *buf) {
  struct raftnode *rn = f->data;
  sh_err_clear(&rn->restore_err);
  if (rn->fsm.restore(rn->fsm.ud, buf->base, buf->len, &rn->restore_err) < 0)
    return RAFT_CORRUPT;
  raft_free(buf->base);
  return 0;
}

/* ---- leadership ---- */

static void check_leader(struct raftnode *rn) {
  if (!rn->started || rn->closing)
    return;
  bool now = raft_state(&rn->raft) == RAFT_LEADER;
  if (now == rn->was_leader)
    return;
  rn->was_leader = now;
  if (rn->on_leader)
    rn->on_leader(rn->leader_ud, now);
}

static void check_cb(uv_check_t *h) {
  check_leader(h->data);
}
static void kick_cb(uv_timer_t *h) {
  check_leader(h->data);
}

/* ---- open / state ---- */

/* The one place the raft transport is made (a TLS shim goes here). */
static int transport_init(struct raftnode *rn, sh_err *err) {
  int rv = raft_uv_tcp_init(&rn->transport, rn->loop);
  if (rv != 0)
    return sh_error(err, 500, "raft transport: %s", raft_strerror(rv));
  return 0;
}

static void transport_free(struct raftnode *rn) {
  raft_uv_tcp_close(&rn->transport);
}

static void node_free(struct raftnode *rn) {
  free(rn->dir);
  free(rn->address);
  free(rn);
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
  if (mkdir_p(cfg->dir, 0700, err) < 0)
    return -1;

  struct raftnode *rn = xcalloc(1, sizeof *rn);
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

  if (transport_init(rn, err) < 0) {
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
  raft_set_snapshot_threshold(
      &rn->raft, cfg->snapshot_interval ? cfg->snapshot_interval : 10000);
  raft_set_snapshot_trailing(&rn->raft,
                             cfg->log_entries_for_slow_followers
                                 ? cfg->log_entries_for_slow_followers
                                 : 500);

  uv_check_init(loop, &rn->check);
  rn->check.data = rn;
  uv_unref((uv_handle_t *)&rn->check);
  uv_timer_init(loop, &rn->kick);
  rn->kick.data = rn;
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

bool raftnode_is_leader(const struct raftnode *rn) {
  return rn->started && !rn->closing &&
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
  return (uint64_t)raft_last_applied((struct raft *)&rn->raft);
}

/* ---- propose ---- */

static void apply_done(struct raft_apply *req, int status, void *result) {
  struct propose_req *p = req->data;
  struct raftnode *rn = p->rn;
  sh_err e = {0};
  int rc = 0;
  if (status == 0 && result == rn) {
    rc = rn->verdict_rc < 0 ? -1 : 0;
    if (rc < 0)
      e = rn->verdict_err;
  } else if (status == RAFT_LEADERSHIPLOST || status == RAFT_SHUTDOWN ||
             status == RAFT_NOTLEADER) {
    rc = sh_error(&e, 503, "%s", RAFTNODE_NO_LEADER_MSG);
  } else {
    rc = sh_error(&e, 500, "raft: %s", raft_strerror(status));
  }
  if (p->done)
    p->done(p->ud, rc, &e);
  free(p);
}

int raftnode_propose(struct raftnode *rn, const char *data, size_t len,
                     raftnode_done_fn done, void *ud, sh_err *err) {
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
  int rv = raft_apply(&rn->raft, &p->req, &buf, 1, apply_done);
  if (rv != 0) {
    /* Not queued: the buffer is still ours. */
    raft_free(buf.base);
    free(p);
    if (rv == RAFT_NOTLEADER)
      return sh_error(err, 503, "%s", RAFTNODE_NO_LEADER_MSG);
    return sh_error(err, 500, "raft: %s", raft_strerror(rv));
  }
  return 0;
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

static void raft_closed(struct raft *r) {
  struct raftnode *rn = r->data;
  /* libraft is still on the stack: release io/transport from the loop. */
  uv_close((uv_handle_t *)&rn->kick, handle_closed);
}

void raftnode_close(struct raftnode *rn, void (*done)(void *ud), void *ud) {
  if (!rn || rn->closing)
    return;
  rn->closing = true;
  rn->close_done = done;
  rn->close_ud = ud;
  rn->pending_closes = 2; /* the check handle, then the kick timer */
  uv_timer_stop(&rn->kick);
  uv_close((uv_handle_t *)&rn->check, handle_closed);
  raft_close(&rn->raft, raft_closed);
}
