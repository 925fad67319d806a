/* Raft between managers over mutual TLS on the swarm port: three raftnodes
 * on one loop, each behind its own HTTP server with its own certificate
 * from one test CA; membership changes, failover, catch-up; intruders
 * (another CA, a worker, no certificate, a lying raft id, garbage). Also
 * the HTTP server's connection upgrade on its own. */
#include "test.h"

#include "ca/ca.h"
#include "core/err.h"
#include "core/util.h"
#include "http/server.h"
#include "http/tlsconn.h"
#include "raft/raftnode.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define CLUSTER "clusteraaaaaaaaaaaaaaaaaa"
#define TICK_MS 100
#define EXPIRY_NS (24LL * 3600 * 1000000000LL)

static uv_loop_t loop;

/* ---- loop helpers ---- */

typedef bool (*cond_fn)(void *arg);

static void wake_cb(uv_timer_t *t) {
  (void)t;
}

/* Runs the loop until cond(arg) or ms elapse; true when cond held. */
static bool run_cond(cond_fn cond, void *arg, unsigned ms) {
  uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000;
  uv_timer_t t;
  uv_timer_init(&loop, &t);
  uv_timer_start(&t, wake_cb, 5, 5); /* re-check conditions often */
  bool ok = false;
  while (!(ok = cond(arg)) && uv_hrtime() < end)
    uv_run(&loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
  return ok;
}

static bool flag_set(void *arg) {
  return *(volatile bool *)arg;
}

static bool never(void *arg) {
  (void)arg;
  return false;
}

static void run_ms(unsigned ms) {
  run_cond(never, NULL, ms);
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

/* ---- a test FSM: "data@index;" ---- */

struct tfsm {
  sh_buf log;
  int applies;
  uint64_t last_index;
  bool out_of_order;
  unsigned apply_ms; /* a slow apply (a big store entry's) */
};

static int tfsm_apply(void *ud, const char *data, size_t len, void *hint,
                      uint64_t index, sh_err *err) {
  (void)err;
  (void)hint;
  struct tfsm *f = ud;
  f->applies++;
  if (index <= f->last_index)
    f->out_of_order = true;
  f->last_index = index;
  if (f->apply_ms)
    usleep(f->apply_ms * 1000);
  buf_append(&f->log, data, len);
  buf_printf(&f->log, "@%llu;", (unsigned long long)index);
  return 0;
}

static char *tfsm_snapshot(void *ud, size_t *len) {
  struct tfsm *f = ud;
  char *s = xstrdup(f->log.data ? f->log.data : "");
  *len = strlen(s);
  return s;
}

static int tfsm_restore(void *ud, const char *data, size_t len, sh_err *err) {
  (void)err;
  struct tfsm *f = ud;
  buf_reset(&f->log);
  buf_append(&f->log, data, len);
  f->last_index = 0; /* what follows the snapshot is all this test checks */
  return 0;
}

/* The snapshot in two steps (fsm version 3): the view is a copy of the
 * log, encoded on a pool thread. */
static int views_made, views_freed; /* a snapshot in flight between */

static void *tfsm_view(void *ud) {
  struct tfsm *f = ud;
  views_made++;
  return xstrdup(f->log.data ? f->log.data : "");
}

static void tfsm_view_free(void *view) {
  views_freed++;
  free(view);
}

static bool snapshots_done_cb(void *arg) {
  (void)arg;
  return views_made > 0 && views_made == views_freed;
}

/* The encoding runs on a pool thread: what the test reads of it. */
static int encode_ms;
static int encodes_started, encodes_done;

static char *tfsm_encode(void *view, size_t *len) {
  __atomic_add_fetch(&encodes_started, 1, __ATOMIC_SEQ_CST);
  if (encode_ms)
    usleep((useconds_t)encode_ms * 1000);
  *len = strlen(view);
  char *out = xstrdup(view);
  __atomic_add_fetch(&encodes_done, 1, __ATOMIC_SEQ_CST);
  return out;
}

static bool encoding_cb(void *arg) {
  (void)arg;
  return __atomic_load_n(&encodes_started, __ATOMIC_SEQ_CST) >
         __atomic_load_n(&encodes_done, __ATOMIC_SEQ_CST);
}

static bool fsm_has(const struct tfsm *f, const char *entry) {
  return f->log.data && strstr(f->log.data, entry) != NULL;
}

/* ---- PKI ---- */

struct pki {
  char *root, *root_key;
};

static bool pki_new(struct pki *p) {
  sh_err err = {0};
  return ca_root_create(&p->root, &p->root_key, &err) == 0;
}

static bool pki_issue(const struct pki *p, const char *node_id,
                      const char *role, const char *cluster, char **cert,
                      char **key) {
  sh_err err = {0};
  cleanup_free char *csr = NULL;
  return ca_csr_create(key, &csr, &err) == 0 &&
         ca_sign_csr(p->root, p->root_key, csr, node_id, role, cluster,
                     EXPIRY_NS, cert, &err) == 0;
}

static void pki_free(struct pki *p) {
  free(p->root);
  free(p->root_key);
}

/* ---- a manager: HTTP server on the swarm port + raftnode ---- */

struct leader_seen {
  bool leader;
  int changes;
  const struct tfsm *fsm;
  uint64_t fsm_index_at_lead; /* what the FSM had applied when it led */
};

struct tnode {
  char node_id[32];
  uint64_t rid;
  int port;
  char addr[32];
  char dir[64];
  char *cert, *key;
  const char *root; /* the swarm's root (what this node trusts) */
  struct http_server *srv;
  struct raftnode *rn;
  struct tfsm fsm;
  struct leader_seen ls;
  int accepts_seen; /* raft upgrade requests that reached the handler */
  /* Raft upgrades from each other node's raft id (by index in the test's
   * array, up to 3), and whether new ones are refused (503). */
  uint64_t peer_rid[3];
  int accepts_from[3];
  bool refuse_raft;
  bool async_snap; /* snapshots in two steps (tfsm_view) */
};

static void on_leader(void *ud, bool leader) {
  struct leader_seen *l = ud;
  l->leader = leader;
  l->changes++;
  if (leader && l->fsm)
    l->fsm_index_at_lead = l->fsm->last_index;
}

static void swarm_handler(struct http_req *req, void *ud) {
  struct tnode *n = ud;
  if (strcmp(req->path, "/swarm/v1/raft") == 0) {
    n->accepts_seen++;
    if (n->refuse_raft) {
      http_respond_error(req, 503, "refused by the test");
      return;
    }
    const char *id = http_req_header(req, "Shoal-Raft-Id");
    for (int i = 0; id && i < 3; i++)
      if (n->peer_rid[i] && strtoull(id, NULL, 10) == n->peer_rid[i])
        n->accepts_from[i]++;
    raftnode_accept_upgrade(n->rn, req);
    return;
  }
  http_respond_error(req, 404, "page not found");
}

static bool node_init(struct tnode *n, int i, const struct pki *p,
                      const char *role) {
  memset(n, 0, sizeof *n);
  snprintf(n->node_id, sizeof n->node_id, "node%dxxxxxxxxxxxxxxxxxxxx", i);
  n->node_id[25] = '\0';
  n->rid = raftnode_id_for(n->node_id);
  n->port = free_port();
  snprintf(n->addr, sizeof n->addr, "127.0.0.1:%d", n->port);
  snprintf(n->dir, sizeof n->dir, "/tmp/raft-tls-XXXXXX");
  n->root = p->root;
  return n->port > 0 && mkdtemp(n->dir) &&
         pki_issue(p, n->node_id, role, CLUSTER, &n->cert, &n->key);
}

static bool node_listen(struct tnode *n) {
  sh_err err = {0};
  SSL_CTX *ctx = ca_tls_server_ctx(n->cert, n->key, n->root, false, &err);
  if (!ctx)
    return false;
  n->srv = http_server_new(&loop, swarm_handler, n);
  int r = http_server_listen_tcp(n->srv, "127.0.0.1", n->port, ctx, &err);
  SSL_CTX_free(ctx);
  if (r < 0)
    fprintf(stderr, "    listen: %s\n", err.msg);
  return r == 0;
}

enum start_mode { BOOTSTRAP, JOIN, RESTART };

static bool node_start(struct tnode *n, enum start_mode mode) {
  sh_err err = {0};
  struct raftnode_config cfg = {
      .dir = n->dir,
      .id = n->rid,
      .address = n->addr,
      .tick_ms = TICK_MS,
      .heartbeat_ticks = 1,
      .election_ticks = 10,
      .tls_cert_pem = n->cert,
      .tls_key_pem = n->key,
      .tls_root_pem = n->root,
      .cluster_id = CLUSTER,
  };
  struct raftnode_fsm fsm = {.apply = tfsm_apply,
                             .snapshot = tfsm_snapshot,
                             .restore = tfsm_restore,
                             .ud = &n->fsm};
  if (n->async_snap) {
    fsm.snapshot_view = tfsm_view;
    fsm.snapshot_encode = tfsm_encode;
    fsm.snapshot_view_free = tfsm_view_free;
  }
  n->ls = (struct leader_seen){.fsm = &n->fsm};
  if (!n->srv && !node_listen(n))
    return false;
  int r = raftnode_open(&loop, &cfg, &fsm, &n->rn, &err);
  if (r == 0 && mode == BOOTSTRAP)
    r = raftnode_bootstrap(n->rn, &err);
  if (r == 0)
    r = mode == JOIN ? raftnode_join(n->rn, on_leader, &n->ls, &err)
                     : raftnode_start(n->rn, on_leader, &n->ls, &err);
  if (r < 0)
    fprintf(stderr, "    start %s: %s\n", n->node_id, err.msg);
  return r == 0;
}

static void set_true(void *ud) {
  *(bool *)ud = true;
}

/* Closes raft and the swarm port (a manager going away). */
static void node_stop(struct tnode *n) {
  bool closed = false;
  if (n->rn) {
    struct raftnode *rn = STEAL_POINTER(&n->rn);
    raftnode_close(rn, set_true, &closed);
    run_cond(flag_set, &closed, 5000);
  }
  if (n->srv) {
    http_server_close(n->srv);
    n->srv = NULL;
  }
  run_ms(20);
}

static void node_free(struct tnode *n) {
  node_stop(n);
  free(n->cert);
  free(n->key);
  buf_free(&n->fsm.log);
  rmdir_all(n->dir);
}

/* ---- proposals and changes ---- */

struct done_rec {
  volatile bool called;
  int status;
  sh_err err;
};

static void done_cb(void *ud, int status, const sh_err *err) {
  struct done_rec *d = ud;
  d->called = true;
  d->status = status;
  if (err)
    d->err = *err;
}

/* Proposes on n and waits for the verdict; 0 on success. */
static int propose_wait(struct tnode *n, const char *data, unsigned ms) {
  struct done_rec d = {0};
  sh_err err = {0};
  if (raftnode_propose(n->rn, data, strlen(data), done_cb, &d, &err) < 0)
    return -2;
  if (!run_cond(flag_set, (void *)&d.called, ms))
    return -3;
  return d.status;
}

struct all_have {
  struct tnode **nodes;
  int n;
  const char *entry;
};

static bool all_have_cb(void *arg) {
  struct all_have *a = arg;
  for (int i = 0; i < a->n; i++)
    if (!fsm_has(&a->nodes[i]->fsm, a->entry))
      return false;
  return true;
}

static bool wait_all_have(struct tnode **nodes, int n, const char *entry,
                          unsigned ms) {
  struct all_have a = {nodes, n, entry};
  return run_cond(all_have_cb, &a, ms);
}

static bool is_leader_cb(void *arg) {
  return raftnode_is_leader(((struct tnode *)arg)->rn);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static int voters(struct tnode *n) {
  struct raftnode_member *m = NULL;
  size_t cnt = 0;
  sh_err err = {0};
  if (raftnode_configuration(n->rn, &m, &cnt, &err) < 0)
    return -1;
  int v = 0;
  for (size_t i = 0; i < cnt; i++)
    v += m[i].role == RAFTNODE_VOTER;
  raftnode_members_free(m, cnt);
  return v;
}

/* ---- the cluster: add, replicate, failover, catch-up ---- */

/* The loop, a root and cnt managers' identities; the first one
 * bootstraps raft and leads, the others are not started. */
static bool managers_new(struct pki *p, struct tnode *n, int cnt) {
  signal(SIGPIPE, SIG_IGN);
  uv_loop_init(&loop);
  if (!pki_new(p))
    return false;
  for (int i = 0; i < cnt; i++)
    if (!node_init(&n[i], i, p, CA_ROLE_MANAGER))
      return false;
  return node_start(&n[0], BOOTSTRAP) && run_cond(is_leader_cb, &n[0], 5000);
}

/* n starts with an empty configuration and the leader adds it. */
static bool join_added(struct tnode *leader, struct tnode *n) {
  struct done_rec d = {0};
  sh_err err = {0};
  if (!node_start(n, JOIN) ||
      raftnode_add(leader->rn, n->rid, n->addr, done_cb, &d, &err) < 0 ||
      !run_cond(flag_set, (void *)&d.called, 15000))
    return false;
  if (d.status != 0)
    fprintf(stderr, "    add %s: %s\n", n->node_id, d.err.msg);
  return d.status == 0;
}

TEST(raft_tls_three_managers_failover_and_catch_up) {
  struct pki p = {0};
  struct tnode n[3];
  CHECK(managers_new(&p, n, 3));
  CHECK(n[0].ls.leader);
  CHECK_INT_EQ(propose_wait(&n[0], "first", 3000), 0);

  /* The others join with empty configurations; the leader adds them. */
  for (int i = 1; i < 3; i++)
    CHECK(join_added(&n[0], &n[i]));
  CHECK_INT_EQ(voters(&n[0]), 3);
  struct tnode *all[] = {&n[0], &n[1], &n[2]};
  CHECK(wait_all_have(all, 3, "first@", 5000));

  /* Adding a voter again is a no-op that succeeds; the FSM saw no
   * duplicates. */
  {
    struct done_rec d = {0};
    sh_err err = {0};
    CHECK_INT_EQ(raftnode_add(n[0].rn, n[1].rid, n[1].addr, done_cb, &d, &err),
                 0);
    CHECK(run_cond(flag_set, (void *)&d.called, 5000));
    CHECK_INT_EQ(d.status, 0);
  }

  /* Followers see the leader (id and the address it dialed from). */
  uint64_t lid = 0;
  const char *laddr = NULL;
  raftnode_leader(n[1].rn, &lid, &laddr);
  CHECK(lid == n[0].rid);
  CHECK_STR_EQ(laddr, n[0].addr);
  {
    struct raftnode_member *m = NULL;
    size_t cnt = 0;
    sh_err err = {0};
    CHECK_INT_EQ(raftnode_configuration(n[0].rn, &m, &cnt, &err), 0);
    CHECK_INT_EQ(cnt, 3);
    int reachable = 0, leaders = 0;
    for (size_t i = 0; i < cnt; i++) {
      reachable += m[i].reach == RAFTNODE_REACHABLE;
      leaders += m[i].leader;
    }
    raftnode_members_free(m, cnt);
    CHECK_INT_EQ(reachable, 3);
    CHECK_INT_EQ(leaders, 1);
  }

  /* Write latency with 3 voters over TLS. */
  enum { NW = 200 };
  uint64_t lat[NW];
  for (int i = 0; i < NW; i++) {
    char e[32];
    snprintf(e, sizeof e, "w%d", i);
    uint64_t t0 = uv_hrtime();
    CHECK_INT_EQ(propose_wait(&n[0], e, 3000), 0);
    lat[i] = uv_hrtime() - t0;
  }
  qsort(lat, NW, sizeof lat[0], cmp_u64);
  fprintf(stderr,
          "    figures: write latency, 3 voters over TLS: p50 %.2f ms, "
          "p99 %.2f ms (n=%d)\n",
          (double)lat[NW / 2] / 1e6, (double)lat[NW * 99 / 100] / 1e6, NW);
  CHECK(wait_all_have(all, 3, "w199@", 5000));

  /* The leader goes away; one of the others takes over and accepts a
   * write. */
  uint64_t t0 = uv_hrtime();
  node_stop(&n[0]);
  struct tnode *next = NULL;
  int rc = -1;
  while (uv_hrtime() - t0 < 10000000000ULL) {
    for (int i = 1; i < 3 && !next; i++)
      if (raftnode_is_leader(n[i].rn))
        next = &n[i];
    if (next) {
      rc = propose_wait(next, "after-failover", 3000);
      if (rc == 0)
        break;
      next = NULL;
    }
    run_ms(5);
  }
  uint64_t failover = uv_hrtime() - t0;
  CHECK_INT_EQ(rc, 0);
  fprintf(stderr,
          "    figures: failover (close leader -> first accepted write): "
          "%.0f ms (tick %d ms, election 10 ticks)\n",
          (double)failover / 1e6, TICK_MS);
  CHECK(failover < 5000000000ULL);
  CHECK(next->ls.leader);
  struct tnode *other = next == &n[1] ? &n[2] : &n[1];
  CHECK(!other->ls.leader);
  struct tnode *two[] = {&n[1], &n[2]};
  CHECK(wait_all_have(two, 2, "after-failover@", 5000));
  {
    uint64_t id = 0;
    raftnode_leader(other->rn, &id, NULL);
    CHECK(id == next->rid);
  }

  /* The old leader restarts from its directory and catches up. */
  CHECK(node_start(&n[0], RESTART));
  CHECK(wait_all_have(all, 3, "after-failover@", 10000));
  CHECK(!raftnode_is_leader(n[0].rn));
  CHECK_INT_EQ(propose_wait(next, "after-restart", 3000), 0);
  CHECK(wait_all_have(all, 3, "after-restart@", 5000));

  /* Leadership transfer: the leader steps down (on_leader(false)). */
  {
    int changes = next->ls.changes;
    struct done_rec d = {0};
    sh_err err = {0};
    CHECK_INT_EQ(
        raftnode_transfer_leadership(next->rn, n[0].rid, done_cb, &d, &err), 0);
    CHECK(run_cond(flag_set, (void *)&d.called, 5000));
    if (d.status != 0)
      FAIL_("transfer: %s", d.err.msg);
    run_ms(50);
    CHECK(!next->ls.leader);
    CHECK(next->ls.changes > changes);
    CHECK(run_cond(is_leader_cb, &n[0], 5000));
    CHECK(n[0].ls.leader);
  }

  /* Removal: the removed member gets nothing afterwards. */
  {
    struct done_rec d = {0};
    sh_err err = {0};
    CHECK_INT_EQ(raftnode_remove(n[0].rn, other->rid, done_cb, &d, &err), 0);
    CHECK(run_cond(flag_set, (void *)&d.called, 5000));
    CHECK_INT_EQ(d.status, 0);
    CHECK_INT_EQ(voters(&n[0]), 2);
    /* Not the leader: no changes from here. */
    CHECK(raftnode_remove(next->rn, n[0].rid, done_cb, &d, &err) < 0);
    CHECK_INT_EQ(err.status, 503);
    CHECK_INT_EQ(propose_wait(&n[0], "after-remove", 3000), 0);
    struct tnode *pair[] = {&n[0], next};
    CHECK(wait_all_have(pair, 2, "after-remove@", 5000));
    run_ms(300);
    CHECK(!fsm_has(&other->fsm, "after-remove"));
  }

  for (int i = 0; i < 3; i++)
    node_free(&n[i]);
  pki_free(&p);
  run_ms(50);
  CHECK_INT_EQ(uv_loop_close(&loop), 0);
}

/* ---- a follower's applies do not hold the leader's commits ---- */

struct proposals {
  int n, done, failed;
  struct done_rec *d;
};

static void count_cb(void *ud, int status, const sh_err *err) {
  (void)err;
  struct proposals *p = ud;
  p->done++;
  p->failed += status != 0;
}

static bool all_done_cb(void *arg) {
  struct proposals *p = arg;
  return p->done == p->n;
}

/* Proposes "<prefix><i>" for i < n without waiting between them, then
 * waits for every verdict; true when all committed. */
static bool propose_wave(struct tnode *n, const char *prefix, int cnt) {
  struct proposals p = {.n = cnt};
  for (int i = 0; i < cnt; i++) {
    char e[32];
    snprintf(e, sizeof e, "%s%d", prefix, i);
    sh_err err = {0};
    if (raftnode_propose(n->rn, e, strlen(e), count_cb, &p, &err) < 0)
      return false;
  }
  return run_cond(all_done_cb, &p, 10000) && p.failed == 0;
}

static bool applied_all_cb(void *arg) {
  struct tnode **pair = arg;
  return pair[1]->fsm.last_index >= pair[0]->fsm.last_index;
}

static bool same_index_cb(void *arg) {
  struct tnode **pair = arg;
  return pair[1]->fsm.last_index == pair[0]->fsm.last_index;
}

/* Proposes on whichever of the two leads, again until one accepts (with
 * two voters, a member's restart may cost the other its leadership). */
static bool commits_on_either(struct tnode *n, const char *data) {
  for (int t = 0; t < 100; t++) {
    for (int i = 0; i < 2; i++)
      if (n[i].rn && raftnode_is_leader(n[i].rn) &&
          propose_wait(&n[i], data, 3000) == 0)
        return true;
    run_ms(100);
  }
  return false;
}

TEST(raft_tls_follower_applies_later_and_commits_do_not_wait) {
  struct pki p = {0};
  struct tnode n[2];
  CHECK(managers_new(&p, n, 2));
  CHECK(join_added(&n[0], &n[1]));
  CHECK_INT_EQ(voters(&n[0]), 2); /* each commit needs the follower */
  CHECK_INT_EQ(propose_wait(&n[0], "first", 3000), 0);
  struct tnode *pair[] = {&n[0], &n[1]};
  CHECK(wait_all_have(pair, 2, "first@", 5000));

  /* Each apply on the follower takes 40 ms (a big entry on a loaded
   * manager). Twenty entries commit; while the follower works through
   * them, one more is proposed: it commits before the follower is done
   * (the follower acknowledged it between its applies), and the
   * follower's applied index says how far its reads are, not raft's. */
  n[1].fsm.apply_ms = 40;
  int before = n[1].fsm.applies;
  CHECK(propose_wave(&n[0], "wave", 20));
  uint64_t wave_end = n[0].fsm.last_index;
  struct done_rec d = {0};
  sh_err err = {0};
  CHECK_INT_EQ(raftnode_propose(n[0].rn, "probe", 5, done_cb, &d, &err), 0);
  CHECK(run_cond(flag_set, (void *)&d.called, 5000));
  CHECK_INT_EQ(d.status, 0);
  int applied_at_probe = n[1].fsm.applies - before;
  fprintf(stderr,
          "    the probe committed with %d of 20 applied on the follower\n",
          applied_at_probe);
  CHECK(applied_at_probe < 20);
  CHECK(n[1].fsm.last_index < wave_end);
  CHECK(raftnode_last_applied(n[1].rn) == n[1].fsm.last_index);

  /* It catches up: every entry, once, in order, as the leader has them. */
  CHECK(run_cond(applied_all_cb, pair, 10000));
  CHECK(!n[1].fsm.out_of_order);
  CHECK_STR_EQ(n[1].fsm.log.data, n[0].fsm.log.data);
  CHECK(raftnode_last_applied(n[1].rn) == raftnode_last_applied(n[0].rn));

  /* Past the queue's 1 MiB (24 entries of 100 KB): the oldest apply as
   * new ones come in; still every entry once, in order. */
  {
    enum { BIG = 100 * 1024, NBIG = 24 };
    char *big = xmalloc(BIG);
    struct proposals bp = {.n = NBIG};
    for (int i = 0; i < NBIG; i++) {
      memset(big, 'x', BIG);
      int k = snprintf(big, 32, "big%d-", i);
      big[k] = 'x';
      CHECK_INT_EQ(raftnode_propose(n[0].rn, big, BIG, count_cb, &bp, &err), 0);
    }
    free(big);
    CHECK(run_cond(all_done_cb, &bp, 20000));
    CHECK_INT_EQ(bp.failed, 0);
    CHECK(run_cond(applied_all_cb, pair, 20000));
    CHECK(!n[1].fsm.out_of_order);
    CHECK_INT_EQ(n[1].fsm.log.len, n[0].fsm.log.len);
    CHECK(memcmp(n[1].fsm.log.data, n[0].fsm.log.data, n[0].fsm.log.len) == 0);
  }

  /* With entries still queued (100 ms each now), the follower is made
   * leader once it knows they are committed (it acknowledged the fence
   * after reading the commit index that covers them): it leads only with
   * all of them applied. */
  n[1].fsm.apply_ms = 100;
  CHECK(propose_wave(&n[0], "late", 25));
  uint64_t late_end = n[0].fsm.last_index;
  CHECK_INT_EQ(propose_wait(&n[0], "fence", 5000), 0);
  CHECK(n[1].fsm.last_index < late_end);
  d = (struct done_rec){0};
  CHECK_INT_EQ(
      raftnode_transfer_leadership(n[0].rn, n[1].rid, done_cb, &d, &err), 0);
  CHECK(run_cond(flag_set, (void *)&d.called, 10000));
  CHECK(run_cond(flag_set, &n[1].ls.leader, 10000));
  CHECK(raftnode_is_leader(n[1].rn));
  CHECK(n[1].ls.fsm_index_at_lead >= late_end);
  n[1].fsm.apply_ms = 0;
  CHECK_INT_EQ(propose_wait(&n[1], "led", 3000), 0);
  CHECK(wait_all_have(pair, 2, "led@", 5000));
  CHECK(!n[1].fsm.out_of_order);
  CHECK(!n[0].fsm.out_of_order);
  CHECK_STR_EQ(n[1].fsm.log.data, n[0].fsm.log.data);

  /* The old leader, a follower now, snapshots every 4 entries while its
   * queue holds some (in one step, then in two): each snapshot has what
   * raft counts as applied, so a restart from it (and the log after it)
   * gives the leader's state. */
  struct tnode *rev[] = {&n[1], &n[0]};
  for (int async = 0; async < 2; async++) {
    char prefix[16], last[32];
    snprintf(prefix, sizeof prefix, "snap%d-", async);
    snprintf(last, sizeof last, "restarted%d", async);
    raftnode_set_snapshot_policy(n[0].rn, 4, 2);
    n[0].fsm.apply_ms = 20;
    CHECK(propose_wave(&n[1], prefix, 20));
    CHECK(run_cond(applied_all_cb, rev, 10000));
    /* The encoding done, so the restart starts from its snapshot (a
     * close during it cancels the snapshot). */
    if (async)
      CHECK(run_cond(snapshots_done_cb, NULL, 10000));
    node_stop(&n[0]);
    n[0].fsm.apply_ms = 0;
    n[0].async_snap = !async; /* the next round's kind */
    CHECK(node_start(&n[0], RESTART));
    CHECK(commits_on_either(n, last)); /* a retry may add one more */
    CHECK(wait_all_have(pair, 2, last, 10000));
    run_ms(3 * TICK_MS);
    CHECK(run_cond(same_index_cb, pair, 10000));
    CHECK_STR_EQ(n[0].fsm.log.data, n[1].fsm.log.data);
  }

  for (int i = 0; i < 2; i++)
    node_free(&n[i]);
  pki_free(&p);
  run_ms(50);
  CHECK_INT_EQ(uv_loop_close(&loop), 0);
}

/* ---- spares: an election needs no new connection ---- */

/* What n's raft configuration says of member rid's reachability. */
static int reach_of(struct tnode *n, uint64_t rid) {
  struct raftnode_member *m = NULL;
  size_t cnt = 0;
  sh_err err = {0};
  if (raftnode_configuration(n->rn, &m, &cnt, &err) < 0)
    return -1;
  int reach = -1;
  for (size_t i = 0; i < cnt; i++)
    if (m[i].id == rid)
      reach = (int)m[i].reach;
  raftnode_members_free(m, cnt);
  return reach;
}

static bool followers_paired_cb(void *arg) {
  struct tnode *n = arg;
  return n[1].accepts_from[2] > 0 && n[2].accepts_from[1] > 0;
}

/* A manager closed while its snapshot is being encoded on the pool: the
 * close completes only once the encoding is done and libraft has freed
 * it (the pool thread reads the FSM's view, libraft's callback touches
 * the raft struct; both went with the close before). */
TEST(raft_tls_close_waits_for_the_snapshot_encoding) {
  struct pki p = {0};
  struct tnode n;
  signal(SIGPIPE, SIG_IGN);
  uv_loop_init(&loop);
  CHECK(pki_new(&p));
  CHECK(node_init(&n, 0, &p, CA_ROLE_MANAGER));
  n.async_snap = true;
  CHECK(node_start(&n, BOOTSTRAP));
  CHECK(run_cond(is_leader_cb, &n, 5000));
  views_made = views_freed = 0;
  encodes_started = encodes_done = 0;
  encode_ms = 400;
  raftnode_set_snapshot_policy(n.rn, 4, 2);
  CHECK(propose_wave(&n, "e", 6));
  CHECK(run_cond(encoding_cb, NULL, 5000));
  bool closed = false;
  raftnode_close(STEAL_POINTER(&n.rn), set_true, &closed);
  CHECK(run_cond(flag_set, &closed, 5000));
  CHECK_INT_EQ(__atomic_load_n(&encodes_done, __ATOMIC_SEQ_CST),
               __atomic_load_n(&encodes_started, __ATOMIC_SEQ_CST));
  CHECK(views_made > 0);
  CHECK_INT_EQ(views_freed, views_made);
  /* The log kept every entry: the node starts again and commits. */
  encode_ms = 0;
  CHECK(node_start(&n, RESTART));
  CHECK(run_cond(is_leader_cb, &n, 5000));
  CHECK_INT_EQ(propose_wait(&n, "after", 3000), 0);
  node_free(&n);
  pki_free(&p);
  run_ms(50);
  CHECK_INT_EQ(uv_loop_close(&loop), 0);
}

/* Followers never send each other a message until an election. Each keeps
 * an idle connection to the other, so the election goes through even when
 * neither takes a new raft connection any more (as when a flood of agents
 * fills their swarm ports' accept queues). */
TEST(raft_tls_election_uses_the_kept_connections) {
  struct pki p = {0};
  struct tnode n[3];
  CHECK(managers_new(&p, n, 3));
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++)
      n[i].peer_rid[j] = i == j ? 0 : n[j].rid;
  for (int i = 1; i < 3; i++)
    CHECK(join_added(&n[0], &n[i]));
  CHECK_INT_EQ(propose_wait(&n[0], "before", 3000), 0);
  struct tnode *all[] = {&n[0], &n[1], &n[2]};
  CHECK(wait_all_have(all, 3, "before@", 5000));
  CHECK(run_cond(followers_paired_cb, n, 5000));
  /* The followers see each other reachable, though raft sent nothing. */
  CHECK_INT_EQ(reach_of(&n[1], n[2].rid), RAFTNODE_REACHABLE);

  n[1].refuse_raft = n[2].refuse_raft = true;
  int seen1 = n[1].accepts_seen, seen2 = n[2].accepts_seen;
  node_stop(&n[0]);
  struct tnode *next = NULL;
  uint64_t t0 = uv_hrtime();
  while (!next && uv_hrtime() - t0 < 8000000000ULL) {
    run_ms(10);
    for (int i = 1; i < 3 && !next; i++)
      if (raftnode_is_leader(n[i].rn))
        next = &n[i];
  }
  CHECK(next != NULL);
  CHECK_INT_EQ(propose_wait(next, "after", 3000), 0);
  struct tnode *two[] = {&n[1], &n[2]};
  CHECK(wait_all_have(two, 2, "after@", 5000));
  /* The vote came over the kept connection: the refused dials, if any,
   * were new spares behind it. */
  fprintf(stderr, "    new raft dials refused during the election: %d, %d\n",
          n[1].accepts_seen - seen1, n[2].accepts_seen - seen2);
  /* The leader's spare dials to the other go on being refused; that says
   * nothing of raft's connection, which carries the writes: the other
   * stays reachable in the leader's view. */
  struct tnode *other = next == &n[1] ? &n[2] : &n[1];
  int refused = other->accepts_seen;
  run_ms(2500);
  CHECK(other->accepts_seen > refused);
  CHECK_INT_EQ(propose_wait(next, "later", 3000), 0);
  CHECK_INT_EQ(reach_of(next, other->rid), RAFTNODE_REACHABLE);

  for (int i = 0; i < 3; i++)
    node_free(&n[i]);
  pki_free(&p);
  run_ms(50);
  CHECK_INT_EQ(uv_loop_close(&loop), 0);
}

/* ---- a proposer that tries again from its failure callback ---- */

struct again {
  struct tnode *n;
  volatile bool called;
  int status, again_rc, again_status;
};

static void again_cb(void *ud, int status, const sh_err *err) {
  struct again *a = ud;
  a->called = true;
  a->status = err ? err->status : 0;
  if (status == 0)
    return;
  /* As the dispatcher's next batch of reports does. */
  sh_err e = {0};
  a->again_rc = raftnode_propose(a->n->rn, "again", 5, NULL, NULL, &e);
  a->again_status = e.status;
}

/* libraft fails a stepping-down leader's pending entries while it still
 * says it leads, with the followers' progress already gone: a proposal
 * made from that callback crashed the manager (seen at 1,000 simulated
 * nodes). It must be refused as "no leader". */
TEST(raft_tls_proposal_from_a_lost_leaders_callback_is_refused) {
  struct pki p = {0};
  struct tnode n[2];
  CHECK(managers_new(&p, n, 2));
  CHECK(join_added(&n[0], &n[1]));
  CHECK_INT_EQ(voters(&n[0]), 2);
  node_stop(&n[1]);
  struct again a = {.n = &n[0]};
  sh_err err = {0};
  CHECK_INT_EQ(raftnode_propose(n[0].rn, "stranded", 8, again_cb, &a, &err), 0);
  CHECK(run_cond(flag_set, (void *)&a.called, 10000));
  CHECK_INT_EQ(a.status, 503);
  CHECK(a.again_rc < 0);
  CHECK_INT_EQ(a.again_status, 503);
  CHECK(!raftnode_is_leader(n[0].rn));
  for (int i = 0; i < 2; i++)
    node_free(&n[i]);
  pki_free(&p);
  run_ms(50);
  CHECK_INT_EQ(uv_loop_close(&loop), 0);
}

/* ---- renewal: new dials present the new certificate ---- */

/* Proposes on n; true when it commits within ms. */
static bool commits(struct tnode *n, const char *data, unsigned ms) {
  return propose_wait(n, data, ms) == 0;
}

static bool either_leader_cb(void *arg) {
  struct tnode *n = arg;
  return raftnode_is_leader(n[0].rn) || raftnode_is_leader(n[1].rn);
}

TEST(raft_tls_renewed_identity_used_for_new_dials) {
  struct pki p = {0};
  struct tnode n[2];
  CHECK(managers_new(&p, n, 2));
  CHECK(join_added(&n[0], &n[1]));
  CHECK(commits(&n[0], "before", 3000));
  sh_err err = {0};

  /* The leader's next dials present a worker's certificate (what a
   * manager's renewal would never give, so the peer's refusal shows the
   * new identity is the one used): open streams go on... */
  cleanup_free char *wcert = NULL, *wkey = NULL;
  CHECK(pki_issue(&p, n[0].node_id, CA_ROLE_WORKER, CLUSTER, &wcert, &wkey));
  CHECK_INT_EQ(raftnode_set_identity(n[0].rn, wcert, wkey, p.root, &err), 0);
  CHECK(commits(&n[0], "open-stream", 3000));
  /* ... a new dial (the follower restarted) is refused: no quorum. */
  node_stop(&n[1]);
  CHECK(node_start(&n[1], RESTART));
  /* (the leader loses its quorum and may step down meanwhile) */
  static struct done_rec held;
  CHECK_INT_EQ(raftnode_propose(n[0].rn, "held", 4, done_cb, &held, &err), 0);
  run_ms(1500);
  CHECK(!fsm_has(&n[1].fsm, "held"));
  /* A renewed manager certificate: the next dial gets through. */
  cleanup_free char *mcert = NULL, *mkey = NULL;
  CHECK(pki_issue(&p, n[0].node_id, CA_ROLE_MANAGER, CLUSTER, &mcert, &mkey));
  CHECK_INT_EQ(raftnode_set_identity(n[0].rn, mcert, mkey, p.root, &err), 0);
  /* (elections may still settle: ask whoever leads, for up to 15 s) */
  bool done = false;
  for (int tries = 0; tries < 10 && !done; tries++) {
    if (!run_cond(either_leader_cb, n, 3000))
      continue;
    done = commits(raftnode_is_leader(n[0].rn) ? &n[0] : &n[1], "after", 1500);
  }
  CHECK(done);
  struct tnode *pair[] = {&n[0], &n[1]};
  CHECK(wait_all_have(pair, 2, "after@", 5000));

  for (int i = 0; i < 2; i++)
    node_free(&n[i]);
  pki_free(&p);
  run_ms(50);
  CHECK_INT_EQ(uv_loop_close(&loop), 0);
}

/* ---- intruders ---- */

struct dial_rec {
  volatile bool called;
  int fd;
  sh_err err;
};

static void dial_cb(void *ud, int fd, const sh_err *err) {
  struct dial_rec *d = ud;
  d->called = true;
  d->fd = fd;
  if (err)
    d->err = *err;
}

static bool accept_server(void *ud, const struct tlsconn_peer *p) {
  (void)ud;
  (void)p;
  return true;
}

/* Dials target's raft endpoint as (cert, key, root), claiming claim_id. */
static void dial_raft(struct tnode *target, const char *cert, const char *key,
                      const char *root, uint64_t claim_id, struct dial_rec *d) {
  sh_err err = {0};
  SSL_CTX *ctx = NULL;
  if (cert) {
    ctx = tlsconn_client_ctx(cert, key, root, &err);
  } else { /* TLS that trusts the swarm but has no certificate */
    ctx = SSL_CTX_new(TLS_client_method());
    BIO *b = BIO_new_mem_buf(target->root, -1);
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), x);
    X509_free(x);
    BIO_free(b);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  }
  char *h_id = xasprintf("Shoal-Raft-Id: %" PRIu64, claim_id);
  const char *headers[] = {h_id, "Shoal-Raft-Address: 127.0.0.1:1", NULL};
  struct tlsconn_upgrade_opts o = {
      .address = target->addr,
      .tls = ctx,
      .path = "/swarm/v1/raft",
      .protocol = "shoal-raft",
      .headers = headers,
      .timeout_ms = 3000,
      .verify = accept_server,
  };
  *d = (struct dial_rec){0};
  d->fd = -1;
  if (tlsconn_upgrade(&loop, &o, dial_cb, d, NULL, &err) == 0)
    run_cond(flag_set, (void *)&d->called, 5000);
  SSL_CTX_free(ctx);
  free(h_id);
}

struct fd_eof {
  int fd;
  bool eof;
};

static bool fd_eof_cb(void *arg) {
  struct fd_eof *f = arg;
  char b[256];
  ssize_t r = read(f->fd, b, sizeof b);
  if (r == 0 || (r < 0 && errno != EAGAIN))
    f->eof = true;
  return f->eof;
}

TEST(raft_tls_refuses_intruders_and_survives_garbage) {
  signal(SIGPIPE, SIG_IGN);
  uv_loop_init(&loop);
  struct pki p = {0}, evil = {0};
  CHECK(pki_new(&p));
  CHECK(pki_new(&evil));
  struct tnode leader, stranger, worker;
  CHECK(node_init(&leader, 0, &p, CA_ROLE_MANAGER));
  /* Same cluster ID and role, but a certificate from another CA. */
  CHECK(node_init(&stranger, 1, &evil, CA_ROLE_MANAGER));
  stranger.root = p.root; /* it even trusts the real root */
  CHECK(node_init(&worker, 2, &p, CA_ROLE_WORKER));

  CHECK(node_start(&leader, BOOTSTRAP));
  CHECK(run_cond(is_leader_cb, &leader, 5000));
  CHECK_INT_EQ(propose_wait(&leader, "secret", 3000), 0);

  /* Positive control: a manager of this swarm with its own raft id gets
   * the upgrade; garbage on the raft stream makes raft drop it (the fd
   * reads EOF: closing one side closes the other). */
  struct tnode friend;
  CHECK(node_init(&friend, 3, &p, CA_ROLE_MANAGER));
  struct dial_rec d;
  dial_raft(&leader, friend.cert, friend.key, p.root, friend.rid, &d);
  CHECK(d.called);
  if (d.fd < 0)
    FAIL_("friend refused: %s", d.err.msg);
  {
    /* A preamble with an unknown message type and a 256-byte header. */
    unsigned char junk[16 + 256];
    memset(junk, 0xff, sizeof junk);
    memset(junk + 8, 0, 8);
    junk[9] = 1; /* little-endian 256 */
    CHECK_INT_EQ(write(d.fd, junk, sizeof junk), (long long)sizeof junk);
    struct fd_eof f = {d.fd, false};
    CHECK(run_cond(fd_eof_cb, &f, 5000));
    close(d.fd);
  }

  /* A manager certificate claiming another node's raft id. */
  dial_raft(&leader, friend.cert, friend.key, p.root, leader.rid, &d);
  CHECK(d.called);
  CHECK(d.fd < 0);
  CHECK(strstr(d.err.msg, "HTTP 403") != NULL);

  /* A worker certificate of the same swarm. */
  dial_raft(&leader, worker.cert, worker.key, p.root, worker.rid, &d);
  CHECK(d.called);
  CHECK(d.fd < 0);
  CHECK(strstr(d.err.msg, "HTTP 403") != NULL);

  /* No client certificate at all. */
  dial_raft(&leader, NULL, NULL, NULL, friend.rid, &d);
  CHECK(d.called);
  CHECK(d.fd < 0);
  CHECK(strstr(d.err.msg, "HTTP 403") != NULL);

  /* Another CA: the TLS handshake itself fails, the handler never runs. */
  int seen = leader.accepts_seen;
  dial_raft(&leader, stranger.cert, stranger.key, p.root, stranger.rid, &d);
  CHECK(d.called);
  CHECK(d.fd < 0);
  CHECK_INT_EQ(leader.accepts_seen, seen);

  /* The stranger as a raft node: the leader dials it to add it, refuses
   * its certificate, the promotion fails and it never sees an entry. */
  CHECK(node_start(&stranger, JOIN));
  {
    struct done_rec dr = {0};
    sh_err err = {0};
    CHECK_INT_EQ(raftnode_add(leader.rn, stranger.rid, stranger.addr, done_cb,
                              &dr, &err),
                 0);
    CHECK(run_cond(flag_set, (void *)&dr.called, 15000));
    CHECK(dr.status < 0);
    CHECK_INT_EQ(dr.err.status, 503);
    CHECK_INT_EQ(stranger.fsm.applies, 0);
    CHECK_INT_EQ(stranger.accepts_seen, 0); /* never upgraded to it */
    struct raftnode_member *m = NULL;
    size_t cnt = 0;
    CHECK_INT_EQ(raftnode_configuration(leader.rn, &m, &cnt, &err), 0);
    bool unreachable = false;
    for (size_t i = 0; i < cnt; i++)
      if (m[i].id == stranger.rid)
        unreachable =
            m[i].reach == RAFTNODE_UNREACHABLE && m[i].role == RAFTNODE_SPARE;
    raftnode_members_free(m, cnt);
    CHECK(unreachable);
    /* Clean up the spare it left. */
    dr = (struct done_rec){0};
    CHECK_INT_EQ(raftnode_remove(leader.rn, stranger.rid, done_cb, &dr, &err),
                 0);
    CHECK(run_cond(flag_set, (void *)&dr.called, 5000));
    CHECK_INT_EQ(dr.status, 0);
  }

  /* Raw TCP garbage and plain HTTP on the TLS port. */
  for (int round = 0; round < 2; round++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)leader.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_INT_EQ(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    static const char tls_junk[] =
        "\x16\x03\x01\xff\xff garbage \x00\x01\x02 garbage";
    static const char plain_http[] =
        "POST /swarm/v1/raft HTTP/1.1\r\nUpgrade: shoal-raft\r\n"
        "Connection: Upgrade\r\n\r\n\xff\xff\xff";
    if (round == 0)
      CHECK(write(fd, tls_junk, sizeof tls_junk) > 0);
    else
      CHECK(write(fd, plain_http, sizeof plain_http) > 0);
    struct fd_eof f = {fd, false};
    CHECK(run_cond(fd_eof_cb, &f, 5000));
    close(fd);
  }
  CHECK_INT_EQ(propose_wait(&leader, "still-alive", 3000), 0);
  CHECK(raftnode_is_leader(leader.rn));

  node_free(&leader);
  node_free(&stranger);
  node_free(&worker);
  node_free(&friend);
  pki_free(&p);
  pki_free(&evil);
  run_ms(50);
  CHECK_INT_EQ(uv_loop_close(&loop), 0);
}

/* ---- the HTTP server's upgrade on its own ---- */

struct up_state {
  int fd;
  volatile bool upgraded;
};

static void upgrade_handler(struct http_req *req, void *ud) {
  struct up_state *s = ud;
  sh_err err = {0};
  if (http_req_upgrade(req, "echo", &s->fd, &err) == 0)
    s->upgraded = true;
}

struct read_until {
  int fd;
  sh_buf got;
  const char *want;
};

static bool read_until_cb(void *arg) {
  struct read_until *r = arg;
  char b[4096];
  ssize_t n;
  while ((n = read(r->fd, b, sizeof b)) > 0)
    buf_append(&r->got, b, (size_t)n);
  return r->got.data && strstr(r->got.data, r->want);
}

TEST(http_upgrade_keeps_early_bytes_and_closes_both_ways) {
  signal(SIGPIPE, SIG_IGN);
  uv_loop_init(&loop);
  struct up_state s = {-1, false};
  struct http_server *srv = http_server_new(&loop, upgrade_handler, &s);
  sh_err err = {0};
  CHECK_INT_EQ(http_server_listen_tcp(srv, "127.0.0.1", 0, NULL, &err), 0);
  int port = http_server_port(srv);

  int c = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK_INT_EQ(connect(c, (struct sockaddr *)&a, sizeof a), 0);
  fcntl(c, F_SETFL, O_NONBLOCK);
  /* The head and the first bytes of the new protocol in one write. */
  const char *req = "POST /x HTTP/1.1\r\nHost: h\r\nUpgrade: echo\r\n"
                    "Connection: Upgrade\r\n\r\nearly-bytes";
  CHECK_INT_EQ(write(c, req, strlen(req)), (long long)strlen(req));
  CHECK(run_cond(flag_set, (void *)&s.upgraded, 3000));

  struct read_until srv_side = {s.fd, {0}, "early-bytes"};
  CHECK(run_cond(read_until_cb, &srv_side, 3000));
  struct read_until cli_side = {c, {0}, "\r\n\r\n"};
  CHECK(run_cond(read_until_cb, &cli_side, 3000));
  CHECK(str_has_prefix(cli_side.got.data,
                       "HTTP/1.1 101 Switching Protocols\r\n"));
  CHECK(strstr(cli_side.got.data, "Upgrade: echo\r\n") != NULL);

  /* Both directions after the switch. */
  CHECK_INT_EQ(write(s.fd, "pong", 4), 4);
  cli_side.want = "pong";
  CHECK(run_cond(read_until_cb, &cli_side, 3000));
  CHECK_INT_EQ(write(c, "ping", 4), 4);
  srv_side.want = "ping";
  CHECK(run_cond(read_until_cb, &srv_side, 3000));

  /* The fd's owner closes: the client sees EOF. */
  close(s.fd);
  struct fd_eof f = {c, false};
  CHECK(run_cond(fd_eof_cb, &f, 3000));
  close(c);

  /* The client closes: the fd reads EOF. */
  s.upgraded = false;
  c = socket(AF_INET, SOCK_STREAM, 0);
  CHECK_INT_EQ(connect(c, (struct sockaddr *)&a, sizeof a), 0);
  CHECK_INT_EQ(write(c, req, strlen(req)), (long long)strlen(req));
  CHECK(run_cond(flag_set, (void *)&s.upgraded, 3000));
  close(c);
  struct fd_eof g = {s.fd, false};
  CHECK(run_cond(fd_eof_cb, &g, 3000));
  close(s.fd);

  buf_free(&srv_side.got);
  buf_free(&cli_side.got);
  http_server_close(srv);
  run_ms(50);
  CHECK_INT_EQ(uv_loop_close(&loop), 0);
}
