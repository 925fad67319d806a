#include "test.h"

#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "raft/raftnode.h"
#include "store/store.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>

/* ---- harness: a loop, a temp dir, a free port ---- */

static uv_loop_t loop;
static bool timed_out;

static void timeout_cb(uv_timer_t *t) {
  timed_out = true;
  uv_stop(t->loop);
}

/* Runs the loop until *flag or ms elapse; true when *flag got set. */
static bool run_until(volatile bool *flag, unsigned ms) {
  uv_timer_t t;
  uv_timer_init(&loop, &t);
  timed_out = false;
  uv_timer_start(&t, timeout_cb, ms, 0);
  while (!*flag && !timed_out)
    uv_run(&loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
  return *flag;
}

static void run_ms(unsigned ms) {
  bool never = false;
  run_until(&never, ms);
}

static char *tmpdir(void) {
  char tmpl[] = "/tmp/raftnode-test-XXXXXX";
  char *d = mkdtemp(tmpl);
  return d ? xstrdup(d) : NULL;
}

static void rmdir_all(const char *dir) {
  DIR *d = opendir(dir);
  if (!d)
    return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    char *p = xasprintf("%s/%s", dir, e->d_name);
    unlink(p);
    free(p);
  }
  closedir(d);
  rmdir(dir);
}

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t l = sizeof a;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
      getsockname(fd, (struct sockaddr *)&a, &l) < 0) {
    close(fd);
    return -1;
  }
  close(fd);
  return ntohs(a.sin_port);
}

static bool dir_has_prefix(const char *dir, const char *prefix) {
  DIR *d = opendir(dir);
  bool found = false;
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL)
    found = found || str_has_prefix(e->d_name, prefix);
  if (d)
    closedir(d);
  return found;
}

/* The snapshot is stored asynchronously after raft takes it; a close before
 * that abandons it (the log still holds everything). Tests that restart
 * through a snapshot wait for its file first: on a loaded machine the write
 * can come after the last proposal. */
static bool wait_snapshot_file(const char *dir, unsigned ms) {
  for (unsigned waited = 0; waited < ms; waited += 10) {
    if (dir_has_prefix(dir, "snapshot-"))
      return true;
    run_ms(10);
  }
  return dir_has_prefix(dir, "snapshot-");
}

/* ---- a test FSM: a text log of "data@index;" ---- */

struct tfsm {
  sh_buf log;
  uint64_t last_index;
  int applies, snapshots, restores;
  bool out_of_order;
  void *last_hint; /* what the last apply was given */
  void *hints[8];  /* the first eight applies' */
  int nhints;
};

static int tfsm_apply(void *ud, const char *data, size_t len, void *hint,
                      uint64_t index, sh_err *err) {
  struct tfsm *f = ud;
  f->applies++;
  f->last_hint = hint;
  if (f->nhints < 8)
    f->hints[f->nhints++] = hint;
  if (index <= f->last_index)
    f->out_of_order = true;
  f->last_index = index;
  if (len >= 3 && memcmp(data, "bad", 3) == 0)
    return sh_error(err, 409, "entry %.*s refused", (int)len, data);
  buf_append(&f->log, data, len);
  buf_printf(&f->log, "@%llu;", (unsigned long long)index);
  return 0;
}

static char *tfsm_snapshot(void *ud, size_t *len) {
  struct tfsm *f = ud;
  f->snapshots++;
  char *s = xasprintf("%llu|%s", (unsigned long long)f->last_index,
                      f->log.data ? f->log.data : "");
  *len = strlen(s);
  return s;
}

static int tfsm_restore(void *ud, const char *data, size_t len, sh_err *err) {
  struct tfsm *f = ud;
  f->restores++;
  const char *bar = memchr(data, '|', len);
  if (!bar)
    return sh_error(err, 400, "bad snapshot");
  f->last_index = strtoull(data, NULL, 10);
  buf_reset(&f->log);
  buf_append(&f->log, bar + 1, len - (size_t)(bar + 1 - data));
  return 0;
}

/* ---- node helpers ---- */

struct leader_seen {
  bool leader;
  int changes;
};

static void on_leader(void *ud, bool leader) {
  struct leader_seen *l = ud;
  l->leader = leader;
  l->changes++;
}

struct done_rec {
  bool called;
  int status;
  sh_err err;
  int *counter;
};

static void on_done(void *ud, int status, const sh_err *err) {
  struct done_rec *d = ud;
  d->called = true;
  d->status = status;
  d->err = *err;
  if (d->counter)
    (*d->counter)++;
}

static bool closed_flag;
static void on_closed(void *ud) {
  *(bool *)ud = true;
}

static bool close_node(struct raftnode *rn) {
  closed_flag = false;
  raftnode_close(rn, on_closed, &closed_flag);
  return run_until(&closed_flag, 5000);
}

static struct raftnode *open_node_dek(const char *dir, const char *addr,
                                      const struct raftnode_fsm *fsm,
                                      unsigned snap_interval,
                                      const unsigned char *dek, sh_err *err) {
  struct raftnode_config cfg = {
      .dek = dek,
      .dir = dir,
      .id = 1,
      .address = addr,
      .tick_ms = 50,
      .heartbeat_ticks = 1,
      .election_ticks = 10,
      .snapshot_interval = snap_interval,
      .log_entries_for_slow_followers = 2,
  };
  struct raftnode *rn = NULL;
  if (raftnode_open(&loop, &cfg, fsm, &rn, err) < 0)
    return NULL;
  return rn;
}

static struct raftnode *open_node(const char *dir, const char *addr,
                                  const struct raftnode_fsm *fsm,
                                  unsigned snap_interval, sh_err *err) {
  return open_node_dek(dir, addr, fsm, snap_interval, NULL, err);
}

/* Opens and starts a node on dir with f as its FSM, bootstrapping a fresh
 * directory when boot; NULL with err set (and f's log freed) when open or
 * start refused the directory. */
static struct raftnode *start_node(const char *dir, const char *addr,
                                   struct tfsm *f, unsigned snap_interval,
                                   const unsigned char *dek, bool boot,
                                   struct leader_seen *ls, sh_err *err) {
  struct raftnode_fsm fsm = {.apply = tfsm_apply,
                             .snapshot = tfsm_snapshot,
                             .restore = tfsm_restore,
                             .ud = f};
  struct raftnode *rn = open_node_dek(dir, addr, &fsm, snap_interval, dek, err);
  if (!rn)
    return NULL;
  if (boot && !raftnode_has_state(rn) && raftnode_bootstrap(rn, err) < 0) {
    close_node(rn);
    return NULL;
  }
  if (raftnode_start(rn, on_leader, ls, err) < 0) {
    close_node(rn);
    buf_free(&f->log);
    return NULL;
  }
  return rn;
}

#define SETUP()                                                                \
  uv_loop_init(&loop);                                                         \
  char *dir = tmpdir();                                                        \
  CHECK(dir != NULL);                                                          \
  char addr[64];                                                               \
  snprintf(addr, sizeof addr, "127.0.0.1:%d", free_port());                    \
  sh_err err = {0}

#define TEARDOWN()                                                             \
  do {                                                                         \
    CHECK_INT_EQ(uv_loop_close(&loop), 0);                                     \
    rmdir_all(dir);                                                            \
    free(dir);                                                                 \
  } while (0)

/* Proposes n entries "<prefix><i>", waits for all; returns how many were
 * accepted. */
static int propose_n(struct raftnode *rn, const char *prefix, int n) {
  struct done_rec *d = xcalloc((size_t)n, sizeof *d);
  int finished = 0, ok = 0;
  for (int i = 0; i < n; i++) {
    char *e = xasprintf("%s%d", prefix, i);
    d[i].counter = &finished;
    sh_err err = {0};
    if (raftnode_propose(rn, e, strlen(e), on_done, &d[i], &err) < 0)
      finished++;
    free(e);
  }
  bool all = false;
  for (int t = 0; t < 100 && !all; t++) {
    run_ms(50);
    all = finished == n;
  }
  for (int i = 0; i < n; i++)
    ok += d[i].called && d[i].status == 0;
  free(d);
  return ok;
}

TEST(raftnode_single_node_leads_and_applies_in_order) {
  SETUP();
  struct tfsm f = {0};
  struct raftnode_fsm fsm = {.apply = tfsm_apply,
                             .snapshot = tfsm_snapshot,
                             .restore = tfsm_restore,
                             .ud = &f};
  struct raftnode *rn = open_node(dir, addr, &fsm, 1000, &err);
  CHECK(rn != NULL);
  CHECK(!raftnode_has_state(rn));
  CHECK_INT_EQ(raftnode_bootstrap(rn, &err), 0);
  CHECK(raftnode_has_state(rn));
  /* Bootstrapping twice is refused. */
  CHECK(raftnode_bootstrap(rn, &err) < 0);

  struct leader_seen ls = {0};
  CHECK_INT_EQ(raftnode_start(rn, on_leader, &ls, &err), 0);
  CHECK(run_until(&ls.leader, 5000));
  CHECK_INT_EQ(ls.changes, 1);
  CHECK(raftnode_is_leader(rn));
  uint64_t lid = 0;
  const char *laddr = NULL;
  raftnode_leader(rn, &lid, &laddr);
  CHECK_INT_EQ(lid, 1);
  CHECK_STR_EQ(laddr, addr);

  CHECK_INT_EQ(propose_n(rn, "e", 5), 5);
  CHECK(!f.out_of_order);
  CHECK_INT_EQ(f.applies, 5);
  /* Index 1 is the bootstrap configuration. */
  CHECK_STR_EQ(f.log.data, "e0@2;e1@3;e2@4;e3@5;e4@6;");
  CHECK_INT_EQ(raftnode_last_applied(rn), 6);
  CHECK(close_node(rn));
  CHECK_INT_EQ(ls.changes, 1);
  buf_free(&f.log);
  TEARDOWN();
}

/* The leader's apply of its own hinted entry gets the hint with the
 * bytes; an entry proposed without one gets NULL. */
TEST(raftnode_hint_reaches_the_leaders_apply) {
  SETUP();
  struct tfsm f = {0};
  struct raftnode_fsm fsm = {.apply = tfsm_apply,
                             .snapshot = tfsm_snapshot,
                             .restore = tfsm_restore,
                             .ud = &f};
  struct raftnode *rn = open_node(dir, addr, &fsm, 1000, &err);
  CHECK(rn != NULL);
  CHECK_INT_EQ(raftnode_bootstrap(rn, &err), 0);
  struct leader_seen ls = {0};
  CHECK_INT_EQ(raftnode_start(rn, on_leader, &ls, &err), 0);
  CHECK(run_until(&ls.leader, 5000));
  f.nhints = 0;
  /* Three pending at once, then one without a hint: each apply gets its
   * own entry's hint, in order. */
  int counter = 0, hint[3] = {1, 2, 3};
  struct done_rec d[4] = {{.counter = &counter},
                          {.counter = &counter},
                          {.counter = &counter},
                          {.counter = &counter}};
  const char *data[3] = {"h1", "h2", "h3"};
  for (int i = 0; i < 3; i++)
    CHECK_INT_EQ(
        raftnode_propose_hinted(rn, data[i], 2, &hint[i], on_done, &d[i], &err),
        0);
  CHECK_INT_EQ(raftnode_propose(rn, "p4", 2, on_done, &d[3], &err), 0);
  CHECK(run_until(&d[3].called, 5000));
  for (int i = 0; i < 4; i++) {
    CHECK(d[i].called);
    CHECK_INT_EQ(d[i].status, 0);
  }
  CHECK_INT_EQ(f.nhints, 4);
  for (int i = 0; i < 3; i++)
    CHECK(f.hints[i] == &hint[i]);
  CHECK(f.hints[3] == NULL);
  CHECK_STR_EQ(f.log.data, "h1@2;h2@3;h3@4;p4@5;");
  CHECK(close_node(rn));
  buf_free(&f.log);
  TEARDOWN();
}

TEST(raftnode_fsm_refusal_reaches_proposer) {
  SETUP();
  struct tfsm f = {0};
  struct raftnode_fsm fsm = {.apply = tfsm_apply,
                             .snapshot = tfsm_snapshot,
                             .restore = tfsm_restore,
                             .ud = &f};
  struct raftnode *rn = open_node(dir, addr, &fsm, 1000, &err);
  CHECK(rn != NULL);
  CHECK_INT_EQ(raftnode_bootstrap(rn, &err), 0);
  struct leader_seen ls = {0};
  CHECK_INT_EQ(raftnode_start(rn, on_leader, &ls, &err), 0);
  CHECK(run_until(&ls.leader, 5000));

  struct done_rec bad = {0}, good = {0};
  CHECK_INT_EQ(raftnode_propose(rn, "bad1", 4, on_done, &bad, &err), 0);
  CHECK_INT_EQ(raftnode_propose(rn, "ok", 2, on_done, &good, &err), 0);
  CHECK(run_until(&good.called, 5000));
  CHECK(bad.called);
  CHECK(bad.status < 0);
  CHECK_INT_EQ(bad.err.status, 409);
  CHECK_STR_EQ(bad.err.msg, "entry bad1 refused");
  /* A refused entry does not stall the log. */
  CHECK_INT_EQ(good.status, 0);
  CHECK_INT_EQ(good.err.status, 0);
  CHECK_STR_EQ(f.log.data, "ok@3;");
  CHECK(close_node(rn));
  buf_free(&f.log);
  TEARDOWN();
}

TEST(raftnode_snapshot_and_restart_restore_state) {
  SETUP();
  struct tfsm f = {0};
  struct raftnode_fsm fsm = {.apply = tfsm_apply,
                             .snapshot = tfsm_snapshot,
                             .restore = tfsm_restore,
                             .ud = &f};
  struct raftnode *rn = open_node(dir, addr, &fsm, 8, &err);
  CHECK(rn != NULL);
  CHECK_INT_EQ(raftnode_bootstrap(rn, &err), 0);
  struct leader_seen ls = {0};
  CHECK_INT_EQ(raftnode_start(rn, on_leader, &ls, &err), 0);
  CHECK(run_until(&ls.leader, 5000));
  /* One at a time so several snapshots are taken along the way. */
  for (int i = 0; i < 20; i++) {
    char p[16];
    snprintf(p, sizeof p, "x%d-", i);
    CHECK_INT_EQ(propose_n(rn, p, 1), 1);
  }
  CHECK(f.snapshots >= 2);
  uint64_t applied = raftnode_last_applied(rn);
  CHECK_INT_EQ(applied, 21);
  char *before = xstrdup(f.log.data);
  CHECK(wait_snapshot_file(dir, 5000));
  CHECK(close_node(rn));

  /* Restart from the same directory with an empty FSM. */
  struct tfsm g = {0};
  fsm.ud = &g;
  rn = open_node(dir, addr, &fsm, 8, &err);
  CHECK(rn != NULL);
  CHECK(raftnode_has_state(rn));
  struct leader_seen ls2 = {0};
  if (raftnode_start(rn, on_leader, &ls2, &err) < 0)
    FAIL_("restart: %d %s", err.status, err.msg);
  CHECK_INT_EQ(g.restores, 1);
  /* Snapshot + the remaining log: the same state, nothing applied twice. */
  CHECK(g.applies > 0 && g.applies < 20);
  CHECK(!g.out_of_order);
  CHECK_STR_EQ(g.log.data, before);
  CHECK_INT_EQ(g.last_index, 21);
  CHECK(run_until(&ls2.leader, 5000));
  CHECK_INT_EQ(raftnode_last_applied(rn), 21);
  /* And it keeps going. */
  CHECK_INT_EQ(propose_n(rn, "y", 1), 1);
  CHECK(str_has_suffix(g.log.data, "y0@22;"));
  CHECK(close_node(rn));
  free(before);
  buf_free(&f.log);
  buf_free(&g.log);
  TEARDOWN();
}

TEST(raftnode_propose_without_leadership_is_503) {
  SETUP();
  struct tfsm f = {0};
  struct raftnode_fsm fsm = {.apply = tfsm_apply,
                             .snapshot = tfsm_snapshot,
                             .restore = tfsm_restore,
                             .ud = &f};
  struct raftnode *rn = open_node(dir, addr, &fsm, 1000, &err);
  CHECK(rn != NULL);
  struct done_rec d = {0};
  /* Before start. */
  CHECK(raftnode_propose(rn, "a", 1, on_done, &d, &err) < 0);
  CHECK_INT_EQ(err.status, 503);
  CHECK_STR_EQ(err.msg, RAFTNODE_NO_LEADER_MSG);
  /* Started without a configuration (a joining node): stays follower. */
  struct leader_seen ls = {0};
  CHECK_INT_EQ(raftnode_start(rn, on_leader, &ls, &err), 0);
  run_ms(1500);
  CHECK(!raftnode_is_leader(rn));
  CHECK_INT_EQ(ls.changes, 0);
  uint64_t lid = 7;
  raftnode_leader(rn, &lid, NULL);
  CHECK_INT_EQ(lid, 0);
  sh_err_clear(&err);
  CHECK(raftnode_propose(rn, "a", 1, on_done, &d, &err) < 0);
  CHECK_INT_EQ(err.status, 503);
  CHECK_STR_EQ(err.msg, RAFTNODE_NO_LEADER_MSG);
  CHECK(!d.called);
  CHECK(close_node(rn));
  CHECK_INT_EQ(f.applies, 0);
  TEARDOWN();
}

TEST(raftnode_close_fails_pending_proposals_with_503) {
  SETUP();
  struct tfsm f = {0};
  struct raftnode_fsm fsm = {.apply = tfsm_apply,
                             .snapshot = tfsm_snapshot,
                             .restore = tfsm_restore,
                             .ud = &f};
  struct raftnode *rn = open_node(dir, addr, &fsm, 1000, &err);
  CHECK(rn != NULL);
  CHECK_INT_EQ(raftnode_bootstrap(rn, &err), 0);
  struct leader_seen ls = {0};
  CHECK_INT_EQ(raftnode_start(rn, on_leader, &ls, &err), 0);
  CHECK(run_until(&ls.leader, 5000));
  struct done_rec d = {0};
  /* The disk write is asynchronous: closing now beats the commit. */
  CHECK_INT_EQ(raftnode_propose(rn, "late", 4, on_done, &d, &err), 0);
  CHECK(close_node(rn));
  CHECK(d.called);
  CHECK(d.status < 0);
  CHECK_INT_EQ(d.err.status, 503);
  CHECK_STR_EQ(d.err.msg, RAFTNODE_NO_LEADER_MSG);
  TEARDOWN();
}

struct barrier_rec {
  bool called;
  int status;
  int applies_then; /* what the FSM had applied when done ran */
  struct tfsm *f;
};

static void on_barrier(void *ud, int status) {
  struct barrier_rec *b = ud;
  b->called = true;
  b->status = status;
  b->applies_then = b->f->applies;
}

/* A barrier's done runs once every entry proposed before it is applied
 * (what a new leader waits for before it orchestrates); refused without
 * leadership; failed, not lost, when the node closes first. */
TEST(raftnode_barrier_runs_after_earlier_entries_apply) {
  SETUP();
  struct tfsm f = {0};
  struct leader_seen ls = {0};
  /* no configuration: a follower */
  struct raftnode *rn = start_node(dir, addr, &f, 1000, NULL, false, &ls, &err);
  CHECK(rn != NULL);
  struct barrier_rec b = {.f = &f};
  CHECK(raftnode_barrier(rn, on_barrier, &b, &err) < 0);
  CHECK_INT_EQ(err.status, 503);
  CHECK(close_node(rn));
  rn = start_node(dir, addr, &f, 1000, NULL, true, &ls, &err);
  CHECK(rn != NULL);
  CHECK(run_until(&ls.leader, 5000));
  struct done_rec d[3] = {{0}};
  for (int i = 0; i < 3; i++)
    CHECK_INT_EQ(raftnode_propose(rn, "x", 1, on_done, &d[i], &err), 0);
  CHECK_INT_EQ(raftnode_barrier(rn, on_barrier, &b, &err), 0);
  CHECK_INT_EQ(f.applies, 0); /* nothing applied yet: the writes are async */
  CHECK(run_until(&b.called, 5000));
  CHECK_INT_EQ(b.status, 0);
  CHECK_INT_EQ(b.applies_then, 3);
  CHECK(d[0].called && d[1].called && d[2].called);
  struct barrier_rec late = {.f = &f};
  CHECK_INT_EQ(raftnode_barrier(rn, on_barrier, &late, &err), 0);
  CHECK(close_node(rn));
  CHECK(late.called);
  CHECK(late.status < 0);
  buf_free(&f.log);
  TEARDOWN();
}

TEST(raftnode_recover_single_keeps_log) {
  SETUP();
  struct tfsm f = {0};
  struct raftnode_fsm fsm = {.apply = tfsm_apply,
                             .snapshot = tfsm_snapshot,
                             .restore = tfsm_restore,
                             .ud = &f};
  struct raftnode *rn = open_node(dir, addr, &fsm, 1000, &err);
  CHECK(rn != NULL);
  CHECK_INT_EQ(raftnode_bootstrap(rn, &err), 0);
  struct leader_seen ls = {0};
  CHECK_INT_EQ(raftnode_start(rn, on_leader, &ls, &err), 0);
  CHECK(run_until(&ls.leader, 5000));
  CHECK_INT_EQ(propose_n(rn, "r", 3), 3);
  CHECK(close_node(rn));

  /* force-new-cluster on the same log, with another address. */
  struct tfsm g = {0};
  fsm.ud = &g;
  char addr2[64];
  snprintf(addr2, sizeof addr2, "127.0.0.1:%d", free_port());
  rn = open_node(dir, addr2, &fsm, 1000, &err);
  CHECK(rn != NULL);
  CHECK_INT_EQ(raftnode_recover_single(rn, &err), 0);
  struct leader_seen ls2 = {0};
  if (raftnode_start(rn, on_leader, &ls2, &err) < 0)
    FAIL_("restart: %d %s", err.status, err.msg);
  CHECK(run_until(&ls2.leader, 5000));
  CHECK_STR_EQ(g.log.data, f.log.data);
  CHECK_INT_EQ(propose_n(rn, "s", 1), 1);
  CHECK(close_node(rn));
  buf_free(&f.log);
  buf_free(&g.log);
  TEARDOWN();
}

/* ---- the store as the FSM ---- */

static int st_apply(void *ud, const char *data, size_t len, void *hint,
                    uint64_t index, sh_err *err) {
  (void)hint;
  return store_apply(ud, data, len, index, err);
}
static char *st_snapshot(void *ud, size_t *len) {
  return store_snapshot(ud, len);
}
static int st_restore(void *ud, const char *data, size_t len, sh_err *err) {
  return store_restore(ud, data, len, err);
}

static bool propose_tx(struct raftnode *rn, struct store_tx *tx,
                       struct done_rec *d) {
  size_t len;
  char *data = store_tx_encode(tx, INT64_C(1700000000000000000), &len);
  store_tx_free(tx);
  sh_err err = {0};
  memset(d, 0, sizeof *d);
  int r = raftnode_propose(rn, data, len, on_done, d, &err);
  free(data);
  return r == 0 && run_until(&d->called, 5000);
}

static char *store_dump(struct store *s) {
  json_t *all = json_object();
  for (int k = 0; k < STORE_NKINDS; k++)
    json_object_set_new(all, store_kind_name(k),
                        store_list(s, (enum store_kind)k));
  char *out = jx_dumps(all, JSON_COMPACT | JSON_SORT_KEYS, NULL);
  json_decref(all);
  return out;
}

static void *st_view(void *ud) {
  return store_snapshot_view(ud);
}
static char *st_encode(void *view, size_t *len) {
  return store_snapshot_encode(view, len);
}
static void st_view_free(void *view) {
  json_decref(view);
}

static bool dir_contains(const char *dir, const char *needle);

/* The store through raft, a snapshot and a restart; async: the snapshot
 * is encoded on a pool thread (the daemon's way), and sealed there when
 * dek is set (nothing of the store readable on disk). */
static void store_restart(int *failed_, bool async, const unsigned char *dek) {
  SETUP();
  struct store *s = store_new();
  struct raftnode_fsm fsm = {.apply = st_apply,
                             .snapshot = st_snapshot,
                             .restore = st_restore,
                             .ud = s};
  if (async) {
    fsm.snapshot_view = st_view;
    fsm.snapshot_encode = st_encode;
    fsm.snapshot_view_free = st_view_free;
  }
  /* Small interval: the restart goes through a snapshot and a log tail. */
  struct raftnode *rn = open_node_dek(dir, addr, &fsm, 4, dek, &err);
  if (!rn)
    FAIL_("open: %d %s", err.status, err.msg);
  CHECK_INT_EQ(raftnode_bootstrap(rn, &err), 0);
  struct leader_seen ls = {0};
  CHECK_INT_EQ(raftnode_start(rn, on_leader, &ls, &err), 0);
  CHECK(run_until(&ls.leader, 5000));

  struct done_rec d;
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_SERVICE,
               json_pack("{s:s, s:{s:s}}", "ID", "svc1", "Spec", "Name", "web"),
               STORE_MUST_CREATE);
  CHECK(propose_tx(rn, tx, &d));
  CHECK_INT_EQ(d.status, 0);
  int64_t v = jx_int(store_get(s, STORE_SERVICE, "svc1"), "Version.Index", 0);
  CHECK(v > 0);
  for (int i = 0; i < 6; i++) {
    char id[16];
    snprintf(id, sizeof id, "task%d", i);
    tx = store_tx_new();
    store_tx_put(tx, STORE_TASK,
                 json_pack("{s:s, s:s}", "ID", id, "ServiceID", "svc1"),
                 STORE_MUST_CREATE);
    CHECK(propose_tx(rn, tx, &d));
    CHECK_INT_EQ(d.status, 0);
  }
  tx = store_tx_new();
  store_tx_put(tx, STORE_SERVICE,
               json_pack("{s:s, s:{s:s, s:{s:s}}}", "ID", "svc1", "Spec",
                         "Name", "web", "Labels", "v", "2"),
               v);
  CHECK(propose_tx(rn, tx, &d));
  CHECK_INT_EQ(d.status, 0);
  /* A stale writer gets the store's verdict through raft. */
  tx = store_tx_new();
  store_tx_put(tx, STORE_SERVICE,
               json_pack("{s:s, s:{s:s}}", "ID", "svc1", "Spec", "Name", "web"),
               v);
  CHECK(propose_tx(rn, tx, &d));
  CHECK(d.status < 0);
  CHECK_STR_EQ(d.err.msg, "update out of sequence");
  tx = store_tx_new();
  store_tx_delete(tx, STORE_TASK, "task0", STORE_ANY_VERSION);
  CHECK(propose_tx(rn, tx, &d));
  CHECK_INT_EQ(d.status, 0);

  int64_t v2 = jx_int(store_get(s, STORE_SERVICE, "svc1"), "Version.Index", 0);
  CHECK(v2 > v);
  char *before = store_dump(s);
  uint64_t idx = store_index(s);
  CHECK(wait_snapshot_file(dir, 5000));
  CHECK(close_node(rn));
  store_free(s);
  if (dek)
    CHECK(!dir_contains(dir, "ServiceID"));

  s = store_new();
  fsm.ud = s;
  rn = open_node_dek(dir, addr, &fsm, 4, dek, &err);
  CHECK(rn != NULL);
  struct leader_seen ls2 = {0};
  if (raftnode_start(rn, on_leader, &ls2, &err) < 0)
    FAIL_("restart: %d %s", err.status, err.msg);
  CHECK(run_until(&ls2.leader, 5000));
  char *after = store_dump(s);
  CHECK_STR_EQ(before, after);
  CHECK_INT_EQ(store_index(s), idx);
  CHECK_INT_EQ(jx_int(store_get(s, STORE_SERVICE, "svc1"), "Version.Index", 0),
               v2);
  CHECK(store_get(s, STORE_TASK, "task0") == NULL);
  CHECK(store_get(s, STORE_TASK, "task5") != NULL);
  CHECK(close_node(rn));
  store_free(s);
  free(before);
  free(after);
  TEARDOWN();
}

TEST(raftnode_store_survives_restart) {
  store_restart(failed_, false, NULL);
}

TEST(raftnode_store_survives_restart_async_snapshot) {
  store_restart(failed_, true, NULL);
}

/* ---- torn writes: segments cut or damaged on disk ----
 * Real libraft writes the files: a child process starts a node, commits
 * entries one batch each and dies without closing raft, which leaves them
 * in an open segment, as a power loss does. */

#include "raft/segment.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define TORN_ENTRIES 5

/* Entry i's payload: long enough that a batch has a header and data to cut
 * into. */
static char *torn_payload(int i) {
  return xasprintf("entry-%d-%.*s", i, 60 + i,
                   "................................................"
                   "................................................");
}

static char *torn_expected(int n) {
  sh_buf b = {0};
  for (int i = 0; i < n; i++) {
    char *p = torn_payload(i);
    buf_printf(&b, "%s@%d;", p, i + 2); /* index 1: the configuration */
    free(p);
  }
  return b.data ? b.data : xstrdup("");
}

/* In a child: bootstrap, commit TORN_ENTRIES entries (one batch each), and
 * _exit without closing. With close_first, close raft cleanly instead (the
 * open segment is finalized into a closed one). */
static bool write_and_crash(const char *dir, const char *addr,
                            bool close_first) {
  fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) {
    uv_loop_init(&loop); /* a loop of the child's own */
    struct tfsm f = {0};
    struct raftnode_fsm fsm = {.apply = tfsm_apply,
                               .snapshot = tfsm_snapshot,
                               .restore = tfsm_restore,
                               .ud = &f};
    sh_err err = {0};
    struct raftnode *rn = open_node(dir, addr, &fsm, 1000, &err);
    if (!rn || raftnode_bootstrap(rn, &err) < 0)
      _exit(2);
    struct leader_seen ls = {0};
    if (raftnode_start(rn, on_leader, &ls, &err) < 0 ||
        !run_until(&ls.leader, 5000))
      _exit(3);
    for (int i = 0; i < TORN_ENTRIES; i++) {
      char *p = torn_payload(i);
      struct done_rec d = {0};
      if (raftnode_propose(rn, p, strlen(p), on_done, &d, &err) < 0 ||
          !run_until(&d.called, 5000) || d.status != 0)
        _exit(4);
      free(p);
    }
    if (close_first && !close_node(rn))
      _exit(5);
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* The name of the first file in dir starting with prefix (malloc'd). */
static char *find_file(const char *dir, const char *prefix) {
  DIR *d = opendir(dir);
  char *found = NULL;
  struct dirent *e;
  while (d && !found && (e = readdir(d)) != NULL)
    if (str_has_prefix(e->d_name, prefix))
      found = xstrdup(e->d_name);
  if (d)
    closedir(d);
  return found;
}

/* The open segment holding the entries: the one whose format word is set. */
static char *data_segment(const char *dir) {
  DIR *d = opendir(dir);
  char *found = NULL;
  struct dirent *e;
  while (d && !found && (e = readdir(d)) != NULL) {
    if (!str_has_prefix(e->d_name, "open-"))
      continue;
    char *p = xasprintf("%s/%s", dir, e->d_name);
    char *data = NULL;
    size_t len = 0;
    sh_err err = {0};
    if (read_file(p, &data, &len, &err) == 0 && len >= 8 && data[0] == 1)
      found = xstrdup(e->d_name);
    free(data);
    free(p);
  }
  if (d)
    closedir(d);
  return found;
}

/* Batch boundaries of a segment file, walked the simple way (the test's
 * own reading of the format, independent of segment.c). */
struct batches {
  size_t start[64], end[64];
  int n;
  size_t size;
};

static uint64_t rd64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

static bool walk_batches(const char *path, struct batches *b) {
  char *data = NULL;
  size_t len = 0;
  sh_err err = {0};
  memset(b, 0, sizeof *b);
  if (read_file(path, &data, &len, &err) < 0)
    return false;
  const unsigned char *p = (const unsigned char *)data;
  size_t off = 8;
  while (off + 16 <= len && b->n < 64) {
    uint64_t n = rd64(p + off + 8);
    if (n == 0)
      break;
    size_t end = off + 16 + 16 * n;
    for (uint64_t i = 0; i < n; i++)
      end += p[off + 16 + 16 * i + 12] | p[off + 16 + 16 * i + 13] << 8;
    b->start[b->n] = off;
    b->end[b->n] = end;
    b->n++;
    off = end;
  }
  b->size = len;
  free(data);
  return true;
}

static bool cut_file(const char *path, size_t size) {
  return truncate(path, (off_t)size) == 0;
}

static bool poke(const char *path, size_t off, const void *bytes, size_t n) {
  int fd = open(path, O_WRONLY);
  bool ok = fd >= 0 && pwrite(fd, bytes, n, (off_t)off) == (ssize_t)n;
  if (fd >= 0)
    close(fd);
  return ok;
}

static bool flip(const char *path, size_t off) {
  char *data = NULL;
  size_t len = 0;
  sh_err err = {0};
  if (read_file(path, &data, &len, &err) < 0 || off >= len) {
    free(data);
    return false;
  }
  unsigned char c = (unsigned char)data[off] ^ 0x5a;
  free(data);
  return poke(path, off, &c, 1);
}

static bool zero_range(const char *path, size_t from, size_t to) {
  char *z = xcalloc(1, to - from);
  bool ok = poke(path, from, z, to - from);
  free(z);
  return ok;
}

/* Starts a node on dir; returns what the FSM saw (malloc'd) or NULL with
 * err set when open/start refused the directory. */
static char *restart_log(const char *dir, const char *addr, sh_err *err) {
  struct tfsm f = {0};
  struct leader_seen ls = {0};
  struct raftnode *rn = start_node(dir, addr, &f, 1000, NULL, false, &ls, err);
  if (!rn)
    return NULL;
  bool led = run_until(&ls.leader, 5000);
  /* And the log takes new writes after the repair. */
  bool wrote = led && propose_n(rn, "after", 1) == 1;
  close_node(rn);
  if (!wrote) {
    sh_error(err, 500, "restarted node did not take a write");
    buf_free(&f.log);
    return NULL;
  }
  char *out = xstrdup(f.log.data ? f.log.data : "");
  buf_free(&f.log);
  return out;
}

/* restart_log with the daemon's log (stderr) captured into *log. */
static char *restart_log_captured(const char *dir, const char *addr,
                                  sh_err *err, char **log) {
  char tmpl[] = "/tmp/raftnode-log-XXXXXX";
  int fd = mkstemp(tmpl);
  fflush(stderr);
  int saved = dup(2);
  dup2(fd, 2);
  char *out = restart_log(dir, addr, err);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  close(fd);
  size_t len = 0;
  sh_err e = {0};
  if (read_file(tmpl, log, &len, &e) < 0)
    *log = xstrdup("");
  unlink(tmpl);
  return out;
}

enum damage {
  NO_DAMAGE,         /* the crash alone: all entries, nothing to repair */
  CUT_MID_PREAMBLE,  /* inside the checksums / entry count */
  CUT_MID_ENTRY_HDR, /* inside the per-entry header */
  CUT_MID_DATA,      /* inside the payload */
  CUT_AFTER_BATCH,   /* exactly after the last whole batch */
  CUT_ZERO_STUB,     /* a few zero bytes after the last whole batch */
  ZERO_LAST_DATA,    /* the last batch's payload zeroed, file size kept */
  ZERO_LAST_BATCH,   /* the whole last batch zeroed */
  FLIP_LAST_DATA,    /* a flipped byte in the last batch's payload */
  FLIP_LAST_HDR,     /* a flipped byte in the last batch's entry header */
  CUT_FORMAT_ONLY,   /* nothing left but the format word */
};

/* Applies one damage to the last batch of the crashed open segment and
 * restarts: expect_entries whole entries come back, the node takes a new
 * write, and a repair is logged naming the file when expect_repair. */
static bool torn_case(enum damage dmg, int expect_entries, bool expect_repair) {
  uv_loop_init(&loop);
  char *dir = tmpdir();
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", free_port());
  sh_err err = {0};
  bool ok = false;
  char *seg = NULL, *path = NULL, *got = NULL, *want = NULL, *log = NULL,
       *line = NULL;
  struct batches b;
  if (!dir || !write_and_crash(dir, addr, false))
    goto out;
  seg = data_segment(dir);
  if (!seg)
    goto out;
  path = xasprintf("%s/%s", dir, seg);
  if (!walk_batches(path, &b) || b.n != TORN_ENTRIES)
    goto out;
  size_t s = b.start[b.n - 1], e = b.end[b.n - 1];
  bool done = false;
  switch (dmg) {
  case NO_DAMAGE:
    done = true;
    break;
  case CUT_MID_PREAMBLE:
    done = cut_file(path, s + 10);
    break;
  case CUT_MID_ENTRY_HDR:
    done = cut_file(path, s + 16 + 5);
    break;
  case CUT_MID_DATA:
    done = cut_file(path, s + 32 + 20);
    break;
  case CUT_AFTER_BATCH:
    done = cut_file(path, e);
    break;
  case CUT_ZERO_STUB:
    done = cut_file(path, e + 8);
    break;
  case ZERO_LAST_DATA:
    done = zero_range(path, s + 32, e);
    break;
  case ZERO_LAST_BATCH:
    done = zero_range(path, s, e);
    break;
  case FLIP_LAST_DATA:
    done = flip(path, s + 32 + 30);
    break;
  case FLIP_LAST_HDR:
    done = flip(path, s + 16 + 1);
    break;
  case CUT_FORMAT_ONLY:
    done = cut_file(path, 8);
    break;
  }
  if (!done)
    goto out;
  got = restart_log_captured(dir, addr, &err, &log);
  if (!got) {
    fprintf(stderr, "    restart: %s\n", err.msg);
    goto out;
  }
  line = xasprintf("raft storage: %s/%s: torn write", dir, seg);
  if ((strstr(log, line) != NULL) != expect_repair) {
    fprintf(stderr, "    log: %s\n", log);
    goto out;
  }
  want = torn_expected(expect_entries);
  char *want_after = xasprintf("%safter0@%d;", want, expect_entries + 2);
  ok = strcmp(got, want_after) == 0;
  if (!ok)
    fprintf(stderr, "    got  %s\n    want %s\n", got, want_after);
  free(want_after);
out:
  free(seg);
  free(path);
  free(got);
  free(want);
  free(log);
  free(line);
  if (dir)
    rmdir_all(dir);
  free(dir);
  return ok;
}

TEST(raftseg_crash_leaves_loadable_open_segment) {
  CHECK(torn_case(NO_DAMAGE, TORN_ENTRIES, false));
}
TEST(raftseg_cut_mid_batch_header) {
  CHECK(torn_case(CUT_MID_PREAMBLE, TORN_ENTRIES - 1, true));
}
TEST(raftseg_cut_mid_entry_header) {
  CHECK(torn_case(CUT_MID_ENTRY_HDR, TORN_ENTRIES - 1, true));
}
TEST(raftseg_cut_mid_data) {
  CHECK(torn_case(CUT_MID_DATA, TORN_ENTRIES - 1, true));
}
TEST(raftseg_cut_after_whole_batch_keeps_all) {
  CHECK(torn_case(CUT_AFTER_BATCH, TORN_ENTRIES, false));
}
TEST(raftseg_cut_zero_stub_keeps_all) {
  CHECK(torn_case(CUT_ZERO_STUB, TORN_ENTRIES, true));
}
TEST(raftseg_zeroed_last_data) {
  CHECK(torn_case(ZERO_LAST_DATA, TORN_ENTRIES - 1, true));
}
TEST(raftseg_zeroed_last_batch_is_preallocation) {
  CHECK(torn_case(ZERO_LAST_BATCH, TORN_ENTRIES - 1, false));
}
TEST(raftseg_flipped_byte_in_last_data) {
  CHECK(torn_case(FLIP_LAST_DATA, TORN_ENTRIES - 1, true));
}
TEST(raftseg_flipped_byte_in_last_header) {
  CHECK(torn_case(FLIP_LAST_HDR, TORN_ENTRIES - 1, true));
}

/* Damage that is not a torn tail: open/start fail with a message naming the
 * file, and nothing is changed on disk. */
static bool refused_case(bool closed, int batch, bool cut, const char *meta) {
  uv_loop_init(&loop);
  char *dir = tmpdir();
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", free_port());
  sh_err err = {0};
  bool ok = false;
  char *seg = NULL, *path = NULL, *got = NULL;
  struct batches b;
  if (!dir || !write_and_crash(dir, addr, closed))
    goto out;
  if (meta) {
    seg = xstrdup(meta);
    path = xasprintf("%s/%s", dir, seg);
    /* A format word libraft does not know. */
    if (!poke(path, 0, "\x07", 1))
      goto out;
  } else {
    /* The segment with the entries: open, or closed as 2..6. */
    seg = closed ? find_file(dir, "0000000000000002-") : data_segment(dir);
    if (!seg)
      goto out;
    path = xasprintf("%s/%s", dir, seg);
    if (!walk_batches(path, &b) || b.n != TORN_ENTRIES)
      goto out;
    bool done = cut ? cut_file(path, b.start[batch] + 20)
                    : flip(path, b.start[batch] + 32 + 7);
    if (!done)
      goto out;
  }
  struct stat before, after;
  if (stat(path, &before) < 0)
    goto out;
  got = restart_log(dir, addr, &err);
  if (got) {
    fprintf(stderr, "    started anyway: %s\n", got);
    goto out;
  }
  ok = err.status == 500 && strstr(err.msg, seg) != NULL &&
       stat(path, &after) == 0 && after.st_size == before.st_size;
  if (!ok)
    fprintf(stderr, "    error: %d %s\n", err.status, err.msg);
out:
  free(seg);
  free(path);
  free(got);
  if (dir)
    rmdir_all(dir);
  free(dir);
  return ok;
}

TEST(raftseg_cut_to_the_format_word) {
  CHECK(torn_case(CUT_FORMAT_ONLY, 0, true));
}

/* libraft's crc32 (MSB-first 0x04c11db7, init 0, no final xor), whose check
 * value was computed independently; zlib's crc32 gives 0xcbf43926. The
 * torn tests above also match it against files libraft wrote. */
TEST(raftseg_crc32_is_libraft_s) {
  CHECK_INT_EQ(segment_crc32("123456789", 9, 0), 0x89a1897f);
  CHECK_INT_EQ(segment_crc32("6789", 4, segment_crc32("12345", 5, 0)),
               0x89a1897f);
}

TEST(raftseg_cut_closed_segment_is_refused) {
  CHECK(refused_case(true, TORN_ENTRIES - 1, true, NULL));
}
TEST(raftseg_flipped_byte_in_middle_batch_of_open_segment_is_refused) {
  CHECK(refused_case(false, 2, false, NULL));
}
TEST(raftseg_flipped_byte_in_closed_segment_is_refused) {
  CHECK(refused_case(true, 2, false, NULL));
}
TEST(raftseg_bad_metadata_is_refused) {
  CHECK(refused_case(false, 0, false, "metadata1"));
}

/* ---- a full disk ---- */

#include <sched.h>

/* Fills the file system holding dir with dir/fill, leaving about keep
 * bytes free. */
static bool fill_disk(const char *dir, size_t keep) {
  char *path = xasprintf("%s/fill", dir);
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
  free(path);
  if (fd < 0)
    return false;
  static char chunk[16384];
  memset(chunk, 'f', sizeof chunk);
  while (write(fd, chunk, sizeof chunk) == (ssize_t)sizeof chunk)
    ;
  /* Full now: give back keep bytes. */
  struct stat st;
  bool ok = fstat(fd, &st) == 0 &&
            ftruncate(fd, st.st_size > (off_t)keep ? st.st_size - (off_t)keep
                                                   : 0) == 0;
  close(fd);
  return ok;
}

static void free_disk(const char *dir) {
  char *path = xasprintf("%s/fill", dir);
  unlink(path);
  free(path);
}

/* Proposes one entry of len bytes; returns the done status. */
static int propose_big(struct raftnode *rn, size_t len, char c, sh_err *out) {
  char *data = xmalloc(len);
  memset(data, c, len);
  struct done_rec d = {0};
  sh_err err = {0};
  int rc = raftnode_propose(rn, data, len, on_done, &d, &err);
  free(data);
  if (rc < 0) {
    *out = err;
    return rc;
  }
  if (!run_until(&d.called, 10000)) {
    sh_error(out, 504, "no answer");
    return -1;
  }
  *out = d.err;
  return d.status;
}

static int count_of(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
    n++;
  return n;
}

TEST(raftnode_disk_full_names_cause_then_recovers) {
  SETUP();
  /* A private mount namespace: the tmpfs goes away with this test. */
  CHECK_INT_EQ(unshare(CLONE_NEWNS), 0);
  CHECK_INT_EQ(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
  CHECK_INT_EQ(mount("tmpfs", dir, "tmpfs", 0, "size=4m"), 0);
  char *rdir = xasprintf("%s/raft", dir);
  struct tfsm f = {0};
  struct raftnode_fsm fsm = {.apply = tfsm_apply,
                             .snapshot = tfsm_snapshot,
                             .restore = tfsm_restore,
                             .ud = &f};
  struct raftnode *rn = open_node(rdir, addr, &fsm, 1000, &err);
  CHECK(rn != NULL);
  CHECK_INT_EQ(raftnode_bootstrap(rn, &err), 0);
  struct leader_seen ls = {0};
  CHECK_INT_EQ(raftnode_start(rn, on_leader, &ls, &err), 0);
  CHECK(run_until(&ls.leader, 5000));
  CHECK_INT_EQ(propose_n(rn, "a", 2), 2);
  run_ms(300); /* the segment pool fills up */

  CHECK(fill_disk(dir, 0));
  /* Capture the log: one line per burst of failures. */
  char tmpl[] = "/tmp/raftnode-log-XXXXXX";
  int logfd = mkstemp(tmpl);
  fflush(stderr);
  int saved = dup(2);
  dup2(logfd, 2);

  sh_err e = {0};
  int ok_before = 0, failures = 0;
  /* Preallocated segments take writes until they run out. */
  for (int i = 0; i < 40 && failures == 0; i++) {
    if (propose_big(rn, 200 * 1024, 'b', &e) == 0)
      ok_before++;
    else
      failures++;
  }
  sh_err first = e;
  /* More writes in the same burst fail the same way. */
  for (int i = 0; i < 3; i++)
    failures += propose_big(rn, 200 * 1024, 'c', &e) < 0;
  sh_err later = e;
  free_disk(dir);
  sh_err after = {0};
  int rc_after = propose_big(rn, 64, 'd', &after);

  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  close(logfd);
  char *log = NULL;
  size_t loglen = 0;
  CHECK_INT_EQ(read_file(tmpl, &log, &loglen, &err), 0);
  unlink(tmpl);

  CHECK(ok_before > 0);
  CHECK_INT_EQ(failures, 4);
  CHECK_INT_EQ(first.status, 500);
  if (!strstr(first.msg, "no space left on device") || !strstr(first.msg, rdir))
    FAIL_("message: %s", first.msg);
  CHECK(strstr(later.msg, "no space left on device") != NULL);
  CHECK_INT_EQ(count_of(log, "no space left on device"), 1);
  CHECK(strstr(log, "level=error") != NULL);
  if (rc_after != 0)
    FAIL_("after freeing space: %s", after.msg);
  CHECK_INT_EQ(count_of(log, "writes work again (4 failed)"), 1);
  /* Failed entries never reached the FSM. */
  CHECK_INT_EQ(f.applies, 2 + ok_before + 1);
  CHECK(close_node(rn));
  free(log);

  /* A restart on a nearly full disk: 1.5 MiB free is enough now (libraft's
   * default 8 MiB segments needed 16 MiB). */
  CHECK(fill_disk(dir, 1536 * 1024));
  struct tfsm g = {0};
  fsm.ud = &g;
  rn = open_node(rdir, addr, &fsm, 1000, &err);
  CHECK(rn != NULL);
  struct leader_seen ls2 = {0};
  if (raftnode_start(rn, on_leader, &ls2, &err) < 0)
    FAIL_("restart: %s", err.msg);
  CHECK(run_until(&ls2.leader, 5000));
  CHECK_INT_EQ(g.applies, f.applies);
  sh_err e2 = {0};
  if (propose_big(rn, 64, 'e', &e2) != 0)
    FAIL_("write after restart: %s", e2.msg);
  CHECK(close_node(rn));
  buf_free(&f.log);
  buf_free(&g.log);
  free(rdir);
  CHECK_INT_EQ(umount(dir), 0);
  TEARDOWN();
}

TEST(raftnode_entry_larger_than_a_segment_survives_restart) {
  SETUP();
  struct tfsm f = {0};
  struct raftnode_fsm fsm = {.apply = tfsm_apply,
                             .snapshot = tfsm_snapshot,
                             .restore = tfsm_restore,
                             .ud = &f};
  struct raftnode *rn = open_node(dir, addr, &fsm, 1000, &err);
  CHECK(rn != NULL);
  CHECK_INT_EQ(raftnode_bootstrap(rn, &err), 0);
  struct leader_seen ls = {0};
  CHECK_INT_EQ(raftnode_start(rn, on_leader, &ls, &err), 0);
  CHECK(run_until(&ls.leader, 5000));
  sh_err e = {0};
  CHECK_INT_EQ(propose_big(rn, 100, 'a', &e), 0);
  if (propose_big(rn, 1536 * 1024, 'b', &e) != 0)
    FAIL_("big entry: %s", e.msg);
  CHECK_INT_EQ(propose_big(rn, 100, 'c', &e), 0);
  size_t before = f.log.len;
  CHECK(close_node(rn));
  struct tfsm g = {0};
  fsm.ud = &g;
  rn = open_node(dir, addr, &fsm, 1000, &err);
  CHECK(rn != NULL);
  struct leader_seen ls2 = {0};
  if (raftnode_start(rn, on_leader, &ls2, &err) < 0)
    FAIL_("restart: %s", err.msg);
  CHECK(run_until(&ls2.leader, 5000));
  CHECK_INT_EQ(g.log.len, before);
  CHECK(memcmp(g.log.data, f.log.data, before) == 0);
  CHECK(close_node(rn));
  buf_free(&f.log);
  buf_free(&g.log);
  TEARDOWN();
}

/* On tmpfs fsync is instant, which makes libraft 0.15's io report its
 * close twice (a double free, then a use after free, without the guard in
 * raftnode.c). */
TEST(raftnode_close_on_tmpfs_is_clean) {
  SETUP();
  CHECK_INT_EQ(unshare(CLONE_NEWNS), 0);
  CHECK_INT_EQ(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
  CHECK_INT_EQ(mount("tmpfs", dir, "tmpfs", 0, "size=64m"), 0);
  for (int k = 0; k < 10; k++) {
    struct tfsm f = {0};
    struct raftnode_fsm fsm = {.apply = tfsm_apply,
                               .snapshot = tfsm_snapshot,
                               .restore = tfsm_restore,
                               .ud = &f};
    struct raftnode *rn = open_node(dir, addr, &fsm, 1000, &err);
    CHECK(rn != NULL);
    if (k == 0)
      CHECK_INT_EQ(raftnode_bootstrap(rn, &err), 0);
    struct leader_seen ls = {0};
    CHECK_INT_EQ(raftnode_start(rn, on_leader, &ls, &err), 0);
    CHECK(run_until(&ls.leader, 5000));
    CHECK_INT_EQ(propose_n(rn, "a", 2), 2);
    CHECK(close_node(rn));
    buf_free(&f.log);
  }
  CHECK_INT_EQ(umount(dir), 0);
  TEARDOWN();
}

/* An entry larger than a segment is written past the preallocated size:
 * there the writer itself hits the full disk. The failure is named, the
 * node keeps going once space is back, and what was written replays to the
 * same state. */
TEST(raftnode_disk_full_on_a_big_entry) {
  SETUP();
  CHECK_INT_EQ(unshare(CLONE_NEWNS), 0);
  CHECK_INT_EQ(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
  CHECK_INT_EQ(mount("tmpfs", dir, "tmpfs", 0, "size=8m"), 0);
  char *rdir = xasprintf("%s/raft", dir);
  struct tfsm f = {0};
  struct raftnode_fsm fsm = {.apply = tfsm_apply,
                             .snapshot = tfsm_snapshot,
                             .restore = tfsm_restore,
                             .ud = &f};
  struct raftnode *rn = open_node(rdir, addr, &fsm, 1000, &err);
  CHECK(rn != NULL);
  CHECK_INT_EQ(raftnode_bootstrap(rn, &err), 0);
  struct leader_seen ls = {0};
  CHECK_INT_EQ(raftnode_start(rn, on_leader, &ls, &err), 0);
  CHECK(run_until(&ls.leader, 5000));
  CHECK_INT_EQ(propose_n(rn, "a", 2), 2);
  run_ms(300);
  CHECK(fill_disk(dir, 0));
  sh_err e = {0}, failed = {0};
  /* Finalizing the previous segment frees some space: try a few. */
  for (int i = 0; i < 4 && failed.status == 0; i++)
    if (propose_big(rn, 1536 * 1024, 'b', &e) < 0)
      failed = e;
  CHECK_INT_EQ(failed.status, 500);
  if (!strstr(failed.msg, "no space left on device"))
    FAIL_("message: %s", failed.msg);
  free_disk(dir);
  CHECK_INT_EQ(propose_big(rn, 100, 'c', &e), 0);
  CHECK_INT_EQ(propose_big(rn, 100, 'd', &e), 0);
  CHECK(close_node(rn));
  struct tfsm g = {0};
  fsm.ud = &g;
  rn = open_node(rdir, addr, &fsm, 1000, &err);
  CHECK(rn != NULL);
  struct leader_seen ls2 = {0};
  if (raftnode_start(rn, on_leader, &ls2, &err) < 0)
    FAIL_("restart: %s", err.msg);
  CHECK(run_until(&ls2.leader, 5000));
  CHECK_INT_EQ(g.applies, f.applies);
  CHECK_INT_EQ(g.log.len, f.log.len);
  CHECK(memcmp(g.log.data, f.log.data, f.log.len) == 0);
  CHECK(close_node(rn));
  buf_free(&f.log);
  buf_free(&g.log);
  free(rdir);
  CHECK_INT_EQ(umount(dir), 0);
  TEARDOWN();
}

/* ---- encryption at rest ---- */

/* True when some file of dir contains needle. */
static bool dir_contains(const char *dir, const char *needle) {
  DIR *d = opendir(dir);
  struct dirent *e;
  bool found = false;
  while (d && !found && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    char *p = xasprintf("%s/%s", dir, e->d_name);
    char *body = NULL;
    size_t len = 0;
    sh_err err = {0};
    if (read_file(p, &body, &len, &err) == 0)
      found = memmem(body, len, needle, strlen(needle)) != NULL;
    free(body);
    free(p);
  }
  if (d)
    closedir(d);
  return found;
}

static const unsigned char test_dek[RAFTNODE_DEK_LEN] =
    "0123456789abcdef0123456789abcde";
static const unsigned char other_dek[RAFTNODE_DEK_LEN] =
    "fedcba9876543210fedcba987654321";

/* Runs one node on dir (bootstrapped when fresh), proposes n entries
 * "<prefix>i" one at a time, closes it. Returns the FSM log (malloc'd). */
static char *run_node(const char *dir, const char *addr,
                      const unsigned char *dek, const char *prefix, int n,
                      int *snapshots, sh_err *err) {
  struct tfsm f = {0};
  struct leader_seen ls = {0};
  struct raftnode *rn = start_node(dir, addr, &f, 8, dek, true, &ls, err);
  if (!rn)
    return NULL;
  run_until(&ls.leader, 5000);
  for (int i = 0; i < n; i++) {
    char p[64];
    snprintf(p, sizeof p, "%s%d-", prefix, i);
    propose_n(rn, p, 1);
  }
  if (n > 8)
    wait_snapshot_file(dir, 5000);
  close_node(rn);
  if (snapshots)
    *snapshots = f.snapshots;
  char *out = xstrdup(f.log.data ? f.log.data : "");
  buf_free(&f.log);
  return out;
}

/* The daemon's way with a key: encoded and sealed on a pool thread, the
 * at-rest layer passing the sealed snapshot on; a restart opens it. */
TEST(raftnode_store_survives_restart_async_sealed_snapshot) {
  store_restart(failed_, true, test_dek);
}

TEST(raftnode_atrest_log_and_snapshots_sealed) {
  SETUP();
  int snaps = 0;
  char *first =
      run_node(dir, addr, test_dek, "SECRET-MARKER-", 20, &snaps, &err);
  CHECK(first != NULL);
  CHECK(snaps >= 2);
  CHECK(dir_has_prefix(dir, "snapshot-"));
  /* Neither the segments nor the snapshots show the payloads. */
  CHECK(!dir_contains(dir, "SECRET-MARKER-"));
  /* The right key reads it all back. */
  char *again = run_node(dir, addr, test_dek, "z", 0, NULL, &err);
  if (!again)
    FAIL_("restart: %d %s", err.status, err.msg);
  CHECK_STR_EQ(again, first);
  /* Another key does not. */
  sh_err_clear(&err);
  char *wrong = run_node(dir, addr, other_dek, "z", 0, NULL, &err);
  CHECK(wrong == NULL);
  CHECK(strstr(err.msg, "does not decrypt") != NULL);
  free(first);
  free(again);
  uv_run(&loop, UV_RUN_NOWAIT);
  TEARDOWN();
}

TEST(raftnode_atrest_plain_log_migrates) {
  SETUP();
  /* An older shoal: no key, plain entries (few enough: no snapshot). */
  char *old = run_node(dir, addr, NULL, "PLAIN-OLD-", 5, NULL, &err);
  CHECK(old != NULL);
  CHECK(dir_contains(dir, "PLAIN-OLD-"));
  /* Now with a key: the old entries load, new ones are sealed. */
  char *now = run_node(dir, addr, test_dek, "SEALED-NEW-", 3, NULL, &err);
  if (!now)
    FAIL_("restart with a key: %d %s", err.status, err.msg);
  CHECK(str_has_prefix(now, old));
  CHECK(strstr(now, "SEALED-NEW-2-") != NULL);
  CHECK(!dir_contains(dir, "SEALED-NEW-"));
  /* Enough writes for snapshots: the plain entries are compacted away. */
  char *more = run_node(dir, addr, test_dek, "m", 30, NULL, &err);
  CHECK(more != NULL);
  CHECK(strstr(more, "PLAIN-OLD-4-") != NULL);
  CHECK(!dir_contains(dir, "PLAIN-OLD-"));
  free(old);
  free(now);
  free(more);
  TEARDOWN();
}
