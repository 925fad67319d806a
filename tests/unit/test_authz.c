/* The swarm port's policy table (manager/authz.h) over a real store. */
#include "test.h"

#include "core/err.h"
#include "core/jsonx.h"
#include "manager/authz.h"
#include "store/store.h"

#include <stdlib.h>

#define CLUSTER "clusterA"

/* Raft members for the tests: a comma-separated list in ud. */
static bool member(void *ud, const char *id) {
  const char *list = ud;
  size_t n = strlen(id);
  for (const char *p = list; p && *p;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == n && strncmp(p, id, n) == 0)
      return true;
    p = end ? end + 1 : NULL;
  }
  return false;
}

static void apply(struct store *s, struct store_tx *tx, uint64_t index) {
  size_t len;
  char *data = store_tx_encode(tx, INT64_C(1700000000000000000), &len);
  store_tx_free(tx);
  sh_err err = {0};
  if (store_apply(s, data, len, index, &err) < 0)
    fprintf(stderr, "apply: %s\n", err.msg);
  free(data);
}

/* A cluster with managers m1 (raft member) and m2 (promoted, not in raft
 * yet), worker w1, d1 (a manager demoted to worker, out of raft) and the
 * removed node r1. */
static struct store *fixture(void) {
  struct store *s = store_new();
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_CLUSTER, json_pack("{s:s}", "ID", CLUSTER),
               STORE_MUST_CREATE);
  const char *nodes[][2] = {{"m1", "manager"},
                            {"m2", "manager"},
                            {"w1", "worker"},
                            {"d1", "worker"},
                            {"r1", "manager"}};
  for (size_t i = 0; i < 5; i++)
    store_tx_put(tx, STORE_NODE,
                 json_pack("{s:s, s:{s:s}}", "ID", nodes[i][0], "Spec", "Role",
                           nodes[i][1]),
                 STORE_MUST_CREATE);
  apply(s, tx, 1);
  tx = store_tx_new();
  store_tx_delete(tx, STORE_NODE, "r1", STORE_ANY_VERSION);
  store_tx_node_removed(tx, "r1", INT64_C(1800000000000000000));
  apply(s, tx, 2);
  return s;
}

struct fx {
  struct store *s;
  struct authz_env env;
};

static void fx_init(struct fx *f, bool leader) {
  f->s = fixture();
  f->env = (struct authz_env){.store = f->s,
                              .cluster_id = CLUSTER,
                              .leader = leader,
                              .raft_member = member,
                              .ud = (void *)"m1,d9"};
}

static void fx_free(struct fx *f) {
  store_free(f->s);
  f->s = NULL;
}
#define cleanup_fx __attribute__((cleanup(fx_free)))

/* Status of a call by (cn, ou) to method path; 0 when allowed. */
static int call(struct fx *f, const char *method, const char *path,
                const char *cn, const char *ou, const char *for_node,
                struct authz_who *who) {
  int st = 0;
  const struct authz_rule *r = authz_rule_for(method, path, &st);
  if (!r)
    return st;
  struct authz_peer p = {.verified = cn != NULL,
                         .cn = cn ? cn : "",
                         .ou = ou ? ou : "",
                         .o = CLUSTER};
  struct authz_who w;
  sh_err err = {0};
  if (authz_check(&f->env, r, &p, for_node, who ? who : &w, &err) < 0)
    return err.status;
  return 0;
}

#define MGR "swarm-manager"
#define WRK "swarm-worker"

TEST(authz_table_lookup) {
  int st = 0;
  const struct authz_rule *r = authz_rule_for("GET", "/swarm/v1/index", &st);
  CHECK(r && r->need == AUTHZ_MANAGER);
  CHECK(authz_rule_for("POST", "/swarm/v1/index", &st) == NULL);
  CHECK_INT_EQ(st, 405);
  CHECK(authz_rule_for("GET", "/swarm/v1/nope", &st) == NULL);
  CHECK_INT_EQ(st, 404);
  /* A prefix needs something after it. */
  CHECK(authz_rule_for("GET", "/swarm/v1/forward/", &st) == NULL);
  r = authz_rule_for("DELETE", "/swarm/v1/forward/v1.47/services/x", &st);
  CHECK(r && r->need == AUTHZ_MANAGER && !r->forwardable);
  r = authz_rule_for("POST", "/swarm/v1/logs/sub1", &st);
  CHECK(r && r->need == AUTHZ_NODE);
  r = authz_rule_for("POST", "/swarm/v1/raft", &st);
  CHECK(r && r->need == AUTHZ_RAFT);
  r = authz_rule_for("POST", "/swarm/v1/raft/join", &st);
  CHECK(r && r->need == AUTHZ_MANAGER && r->forwardable);
  r = authz_rule_for("POST", "/swarm/v1/renew", &st);
  CHECK(r && r->need == AUTHZ_NODE && r->forwardable);
  CHECK(authz_rule_for("GET", "/swarm/v1/ca", &st)->need == AUTHZ_ANYONE);
  CHECK(authz_rule_for("POST", "/swarm/v1/join", &st)->need == AUTHZ_ANYONE);
  /* Every rule: a known need, paths under /swarm/v1/. */
  size_t n = 0;
  for (r = authz_table(); r->path; r++, n++)
    CHECK(strncmp(r->path, "/swarm/v1/", 10) == 0 && r->need <= AUTHZ_RAFT);
  CHECK(n >= 12);
}

TEST(authz_identity_from_cert_role_from_store) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, true);
  /* No certificate, or another cluster's: 401. */
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/session", NULL, NULL, NULL, NULL),
               401);
  struct authz_peer other = {true, "m1", MGR, "clusterB"};
  struct authz_who who;
  sh_err err = {0};
  const struct authz_rule *r =
      authz_rule_for("GET", "/swarm/v1/index", &err.status);
  CHECK_INT_EQ(authz_check(&f.env, r, &other, NULL, &who, &err), -1);
  CHECK_INT_EQ(err.status, 401);
  /* Node endpoints: any current node. */
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/session", "w1", WRK, NULL, &who), 0);
  CHECK_STR_EQ(who.node_id, "w1");
  CHECK(!who.via_manager);
  /* Manager endpoints follow the store, not the certificate's OU. */
  CHECK_INT_EQ(call(&f, "GET", "/swarm/v1/index", "w1", WRK, NULL, NULL), 403);
  CHECK_INT_EQ(call(&f, "GET", "/swarm/v1/index", "m1", MGR, NULL, NULL), 0);
  /* Demoted: an old manager certificate opens nothing managerial. */
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/forward/v1.47/services/create", "d1",
                    MGR, NULL, NULL),
               403);
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/renew", "d1", MGR, NULL, NULL), 0);
  /* Promoted, certificate not renewed yet: already a manager. */
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/raft/join", "m2", WRK, NULL, NULL),
               0);
  /* Removed: refused everywhere, whatever its certificate says. */
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/session", "r1", MGR, NULL, NULL),
               403);
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/renew", "r1", MGR, NULL, NULL), 403);
  CHECK_INT_EQ(
      call(&f, "GET", "/swarm/v1/forward/v1.47/nodes", "r1", MGR, NULL, NULL),
      403);
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/raft", "r1", MGR, NULL, NULL), 403);
  /* Unknown to the leader: not a member. To a follower: try again. */
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/session", "x9", WRK, NULL, NULL),
               403);
  fx_free(&f);
  fx_init(&f, false);
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/session", "x9", WRK, NULL, NULL),
               503);
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/session", "r1", WRK, NULL, NULL),
               403);
  /* ...but a call the follower passes on to the leader goes on: the
   * leader checks it with complete knowledge (a manager that just joined
   * asks a follower to add it to raft). */
  struct authz_who who2;
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/raft/join", "x9", MGR, NULL, &who2),
               0);
  CHECK_STR_EQ(who2.node_id, "x9");
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/renew", "x9", WRK, NULL, NULL), 0);
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/raft/join", "r1", MGR, NULL, NULL),
               403);
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/raft/join", "w1", WRK, NULL, NULL),
               403);
  fx_free(&f);
}

TEST(authz_for_node_only_from_managers_on_forwardable_calls) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, true);
  struct authz_who who;
  /* A raft-member manager passing a renewal on for its client. */
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/renew", "m1", MGR, "w1", &who), 0);
  CHECK_STR_EQ(who.node_id, "w1");
  CHECK(who.via_manager);
  /* Nobody else may name another node. */
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/renew", "w1", WRK, "m1", NULL), 403);
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/renew", "d1", MGR, "m1", NULL), 403);
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/renew", "r1", MGR, "w1", NULL), 403);
  /* m2 is a manager in the store but not a raft member: it holds no state
   * and proxies nothing. */
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/renew", "m2", MGR, "w1", NULL), 403);
  /* The named node passes the same rule. */
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/renew", "m1", MGR, "r1", NULL), 403);
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/raft/join", "m1", MGR, "w1", NULL),
               403);
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/raft/join", "m1", MGR, "m2", &who),
               0);
  CHECK_STR_EQ(who.node_id, "m2");
  /* Not on endpoints that act for the caller only. */
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/session", "m1", MGR, "w1", NULL),
               403);
  CHECK_INT_EQ(
      call(&f, "GET", "/swarm/v1/forward/v1.47/nodes", "m1", MGR, "w1", NULL),
      403);
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/join", "m1", MGR, "w1", NULL), 403);
  /* An empty header is no header. */
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/session", "w1", WRK, "", NULL), 0);
  /* Bootstrap endpoints: anyone; a manager's Observed-Addr is believed. */
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/join", NULL, NULL, NULL, &who), 0);
  CHECK(!who.via_manager && !who.node_id);
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/join", "m1", MGR, NULL, &who), 0);
  CHECK(who.via_manager);
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/join", "d1", MGR, NULL, &who), 0);
  CHECK(!who.via_manager);
  CHECK_INT_EQ(call(&f, "GET", "/swarm/v1/ca", NULL, NULL, NULL, NULL), 0);
  fx_free(&f);
}

TEST(authz_raft_members_and_bootstrap) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, true);
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/raft", "m1", MGR, NULL, NULL), 0);
  /* Being added: manager in the store, not in the configuration yet. */
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/raft", "m2", MGR, NULL, NULL), 0);
  /* Demoted and out of raft; a worker. */
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/raft", "d1", MGR, NULL, NULL), 403);
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/raft", "w1", WRK, NULL, NULL), 403);
  /* Still in the configuration (demotion in progress): heard. */
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/raft", "d9", MGR, NULL, NULL), 0);
  /* Unknown: refused by the leader; a follower's log may be behind. */
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/raft", "x9", MGR, NULL, NULL), 403);
  fx_free(&f);
  fx_init(&f, false);
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/raft", "x9", MGR, NULL, NULL), 0);
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/raft", "x9", WRK, NULL, NULL), 403);
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/raft", "r1", MGR, NULL, NULL), 403);
  fx_free(&f);
  /* A manager with no state yet (joining, or loading its log): the
   * certificate is all it can check for raft; everything else waits. */
  struct store *empty = store_new();
  f.env.store = empty;
  f.s = empty;
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/raft", "x9", MGR, NULL, NULL), 0);
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/raft", "x9", WRK, NULL, NULL), 403);
  CHECK_INT_EQ(call(&f, "POST", "/swarm/v1/session", "x9", WRK, NULL, NULL),
               503);
  CHECK_INT_EQ(call(&f, "GET", "/swarm/v1/index", "x9", MGR, NULL, NULL), 503);
  fx_free(&f);
}
