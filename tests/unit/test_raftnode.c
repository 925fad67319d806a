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

/* ---- a test FSM: a text log of "data@index;" ---- */

struct tfsm {
  sh_buf log;
  uint64_t last_index;
  int applies, snapshots, restores;
  bool out_of_order;
};

static int tfsm_apply(void *ud, const char *data, size_t len, uint64_t index,
                      sh_err *err) {
  struct tfsm *f = ud;
  f->applies++;
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

static struct raftnode *open_node(const char *dir, const char *addr,
                                  const struct raftnode_fsm *fsm,
                                  unsigned snap_interval, sh_err *err) {
  struct raftnode_config cfg = {
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
  struct raftnode_fsm fsm = {tfsm_apply, tfsm_snapshot, tfsm_restore, &f};
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

TEST(raftnode_fsm_refusal_reaches_proposer) {
  SETUP();
  struct tfsm f = {0};
  struct raftnode_fsm fsm = {tfsm_apply, tfsm_snapshot, tfsm_restore, &f};
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
  struct raftnode_fsm fsm = {tfsm_apply, tfsm_snapshot, tfsm_restore, &f};
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
  CHECK(close_node(rn));
  CHECK(dir_has_prefix(dir, "snapshot-"));

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
  struct raftnode_fsm fsm = {tfsm_apply, tfsm_snapshot, tfsm_restore, &f};
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
  struct raftnode_fsm fsm = {tfsm_apply, tfsm_snapshot, tfsm_restore, &f};
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

TEST(raftnode_recover_single_keeps_log) {
  SETUP();
  struct tfsm f = {0};
  struct raftnode_fsm fsm = {tfsm_apply, tfsm_snapshot, tfsm_restore, &f};
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

static int st_apply(void *ud, const char *data, size_t len, uint64_t index,
                    sh_err *err) {
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
  char *out = json_dumps(all, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(all);
  return out;
}

TEST(raftnode_store_survives_restart) {
  SETUP();
  struct store *s = store_new();
  struct raftnode_fsm fsm = {st_apply, st_snapshot, st_restore, s};
  /* Small interval: the restart goes through a snapshot and a log tail. */
  struct raftnode *rn = open_node(dir, addr, &fsm, 4, &err);
  CHECK(rn != NULL);
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
  CHECK(close_node(rn));
  CHECK(dir_has_prefix(dir, "snapshot-"));
  store_free(s);

  s = store_new();
  fsm.ud = s;
  rn = open_node(dir, addr, &fsm, 4, &err);
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
