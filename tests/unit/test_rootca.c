#include "test.h"

#include "ca/ca.h"
#include "ca/renew.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "manager/internal.h"
#include "manager/rootca.h"
#include "store/store.h"

#define CLUSTER_ID "clusterid0123456789abcdef"

/* A cluster object as swarm init makes it, with its root and key. */
struct fixture {
  char *root, *key;
  json_t *cluster;
};

static void fixture_free(struct fixture *f) {
  free(f->root);
  free(f->key);
  json_decref(f->cluster);
}
#define cleanup_fixture __attribute__((cleanup(fixture_free)))

static int fixture_init(struct fixture *f) {
  sh_err err = {0};
  memset(f, 0, sizeof *f);
  if (ca_root_create(&f->root, &f->key, &err) < 0)
    return -1;
  struct manager_init in = {.task_history_limit = -1,
                            .root_cert_pem = f->root,
                            .root_key_pem = f->key,
                            .cluster_id = CLUSTER_ID};
  f->cluster = cluster_object_new(&in, &err);
  return f->cluster ? 0 : -1;
}

/* What `docker swarm ca --rotate` sends: the spec with ForceRotate + 1, or
 * with a root of the user's own. */
static json_t *rotated(const json_t *cur, const char *cert, const char *key) {
  json_t *next = json_deep_copy(cur);
  if (cert) {
    jx_set(next, "Spec.CAConfig.SigningCACert", json_string(cert));
    jx_set(next, "Spec.CAConfig.SigningCAKey", json_string(key));
  } else {
    jx_set(next, "Spec.CAConfig.ForceRotate",
           json_integer(jx_int(cur, "Spec.CAConfig.ForceRotate", 0) + 1));
  }
  return next;
}

/* A node reporting a certificate from issuer. */
static json_t *node_with(const char *id, const char *state,
                         const struct ca_issuer *issuer, const char *root) {
  return json_pack("{s:s, s:{s:s}, s:{s:{s:s, s:s, s:s}}}", "ID", id, "Status",
                   "State", state, "Description", "TLSInfo", "TrustRoot", root,
                   "CertIssuerSubject", issuer->subject, "CertIssuerPublicKey",
                   issuer->public_key);
}

static bool has_text(const json_t *j, const char *needle) {
  cleanup_free char *s = jx_dumps(j, JSON_COMPACT, NULL);
  return s && strstr(s, needle) != NULL;
}

TEST(rootca_force_rotate_starts_a_rotation) {
  cleanup_fixture struct fixture f;
  CHECK_INT_EQ(fixture_init(&f), 0);
  sh_err err = {0};
  /* The same spec again: nothing changes. */
  cleanup_json json_t *same = json_deep_copy(f.cluster);
  CHECK_INT_EQ(rootca_apply_spec(f.cluster, same, &err), 0);
  CHECK(json_object_get(same, "_RootRotation") == NULL);

  cleanup_json json_t *next = rotated(f.cluster, NULL, NULL);
  CHECK_INT_EQ(rootca_apply_spec(f.cluster, next, &err), 0);
  CHECK(jx_bool(next, "RootRotationInProgress", false));
  const char *new_root = jx_str(next, "_RootRotation.CACert", NULL);
  const char *new_key = jx_str(next, "_RootRotation._CAKey", NULL);
  const char *cross = jx_str(next, "_RootRotation.CrossSignedCACert", NULL);
  CHECK(new_root && new_key && cross);
  CHECK(strcmp(new_root, f.root) != 0);
  CHECK_INT_EQ(ca_key_matches(new_root, new_key, &err), 0);
  /* The cross-signed certificate is the new root, issued by the old. */
  CHECK_INT_EQ(ca_cert_verify(cross, f.root, &err), 0);
  CHECK(ca_same_public_key(cross, new_root));
  /* Until it completes the cluster's root and tokens stay. */
  CHECK_STR_EQ(jx_str(next, "TLSInfo.TrustRoot", ""), f.root);
  CHECK_STR_EQ(jx_str(next, "JoinTokens.Worker", ""),
               jx_str(f.cluster, "JoinTokens.Worker", "-"));
  CHECK_STR_EQ(jx_str(next, "_CAKey", ""), f.key);

  /* Certificates now come from the new key, with the chain to the old
   * root, which every node still trusts. */
  cleanup_free char *nkey = NULL, *csr = NULL, *cert = NULL;
  CHECK_INT_EQ(ca_csr_create(&nkey, &csr, &err), 0);
  CHECK_INT_EQ(rootca_sign(next, csr, "node00000000000000000000a",
                           CA_ROLE_WORKER, &cert, &err),
               0);
  CHECK_INT_EQ(ca_cert_verify(cert, f.root, &err), 0);
  CHECK_INT_EQ(ca_cert_verify(cert, new_root, &err), 0);
  struct ca_issuer got = {0}, want = {0};
  CHECK_INT_EQ(ca_cert_issuer(cert, f.root, &got, &err), 0);
  CHECK_INT_EQ(rootca_desired_issuer(next, &want, &err), 0);
  bool same_issuer = ca_issuer_equal(&got, &want);
  ca_issuer_clear(&got);
  ca_issuer_clear(&want);
  CHECK(same_issuer);
}

TEST(rootca_completes_when_every_node_moved) {
  cleanup_fixture struct fixture f;
  CHECK_INT_EQ(fixture_init(&f), 0);
  sh_err err = {0};
  cleanup_json json_t *c = rotated(f.cluster, NULL, NULL);
  CHECK_INT_EQ(rootca_apply_spec(f.cluster, c, &err), 0);
  struct ca_issuer old = {0}, nw = {0};
  CHECK_INT_EQ(ca_cert_facts(f.root, &old, &err), 0);
  CHECK_INT_EQ(rootca_desired_issuer(c, &nw, &err), 0);
  cleanup_json json_t *nodes = json_array();
  json_array_append_new(nodes, node_with("a", "ready", &nw, f.root));
  json_array_append_new(nodes, node_with("b", "ready", &nw, f.root));
  json_array_append_new(nodes, node_with("c", "down", &old, f.root));
  /* swarmkit's rule: a down node still counts. */
  bool blocked_by_down = !rootca_all_converged(c, nodes);
  json_array_remove(nodes, 2); /* node rm */
  bool done = rootca_all_converged(c, nodes);
  /* A node that reports nothing has not moved. */
  json_array_append_new(nodes, json_pack("{s:s}", "ID", "d"));
  bool blocked_by_silent = !rootca_all_converged(c, nodes);
  /* Without a rotation there is nothing to complete. */
  json_array_remove(nodes, 2);
  bool no_rotation = !rootca_all_converged(f.cluster, nodes);
  ca_issuer_clear(&old);
  ca_issuer_clear(&nw);
  CHECK(blocked_by_down);
  CHECK(done);
  CHECK(blocked_by_silent);
  CHECK(no_rotation);

  cleanup_json json_t *fin = rootca_finished(c, &err);
  CHECK(fin != NULL);
  const char *new_root = jx_str(c, "_RootRotation.CACert", "");
  CHECK_STR_EQ(jx_str(fin, "TLSInfo.TrustRoot", ""), new_root);
  CHECK_STR_EQ(jx_str(fin, "_CAKey", ""),
               jx_str(c, "_RootRotation._CAKey", "-"));
  CHECK(json_object_get(fin, "_RootRotation") == NULL);
  CHECK(!jx_bool(fin, "RootRotationInProgress", true));
  /* The join tokens change: new secrets, and the new root's digest. */
  char digest[CA_DIGEST_LEN + 1], want[CA_DIGEST_LEN + 1];
  CHECK_INT_EQ(ca_root_digest(new_root, want, &err), 0);
  const char *kinds[] = {"JoinTokens.Worker", "JoinTokens.Manager"};
  for (size_t i = 0; i < 2; i++) {
    const char *tok = jx_str(fin, kinds[i], "");
    CHECK(strcmp(tok, jx_str(c, kinds[i], "")) != 0);
    CHECK_INT_EQ(ca_token_parse(tok, digest, NULL, &err), 0);
    CHECK_STR_EQ(digest, want);
  }
  /* The cluster's TLSInfo names the new root as issuer: the nodes that
   * moved match it (what the docker CLI's progress counts). */
  struct ca_issuer shown = {
      .subject = (char *)jx_str(fin, "TLSInfo.CertIssuerSubject", NULL),
      .public_key = (char *)jx_str(fin, "TLSInfo.CertIssuerPublicKey", NULL)};
  CHECK(rootca_node_converged(json_array_get(nodes, 0), &shown));
  /* A second completion of the same rotation is refused. */
  CHECK(rootca_finished(fin, &err) == NULL);
}

TEST(rootca_keys_never_in_api_views) {
  cleanup_fixture struct fixture f;
  CHECK_INT_EQ(fixture_init(&f), 0);
  sh_err err = {0};
  cleanup_free char *root = NULL, *key = NULL;
  CHECK_INT_EQ(ca_root_create(&root, &key, &err), 0);
  cleanup_json json_t *c = rotated(f.cluster, root, key);
  CHECK_INT_EQ(rootca_apply_spec(f.cluster, c, &err), 0);
  /* Stored: the key in the rotation object only, not in the spec. */
  CHECK(jx_get(c, "Spec.CAConfig.SigningCAKey") == NULL);
  CHECK(jx_get(c, "Spec.CAConfig.SigningCACert") == NULL);
  CHECK_STR_EQ(jx_str(c, "_RootRotation._CAKey", ""), key);
  CHECK(has_text(c, "PRIVATE KEY"));
  cleanup_json json_t *view = store_public(c);
  CHECK(!has_text(view, "PRIVATE KEY"));
  CHECK(jx_get(view, "_RootRotation") == NULL);
  CHECK(jx_bool(view, "RootRotationInProgress", false));
  cleanup_json json_t *fin = rootca_finished(c, &err);
  cleanup_json json_t *fview = store_public(fin);
  CHECK(!has_text(fview, "PRIVATE KEY"));
  CHECK(has_text(fin, "PRIVATE KEY"));
}

TEST(rootca_own_root_checks) {
  cleanup_fixture struct fixture f;
  CHECK_INT_EQ(fixture_init(&f), 0);
  sh_err err = {0};
  cleanup_free char *root = NULL, *key = NULL, *root2 = NULL, *key2 = NULL;
  CHECK_INT_EQ(ca_root_create(&root, &key, &err), 0);
  CHECK_INT_EQ(ca_root_create(&root2, &key2, &err), 0);
  struct {
    const char *cert, *key, *msg;
  } bad[] = {
      {"", key,
       "rpc error: code = InvalidArgument desc = if a signing CA key "
       "is provided, the signing CA cert must also be provided"},
      {root, "",
       "rpc error: code = InvalidArgument desc = there must be at "
       "least one valid, reachable external CA corresponding to "
       "the desired CA certificate"},
      {root, key2,
       "rpc error: code = InvalidArgument desc = certificate key "
       "mismatch"},
      {"garbage", key,
       "rpc error: code = InvalidArgument desc = no valid root "
       "CA certificates found"},
  };
  for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
    cleanup_json json_t *c = json_deep_copy(f.cluster);
    jx_set(c, "Spec.CAConfig.SigningCACert", json_string(bad[i].cert));
    jx_set(c, "Spec.CAConfig.SigningCAKey", json_string(bad[i].key));
    memset(&err, 0, sizeof err);
    CHECK(rootca_apply_spec(f.cluster, c, &err) < 0);
    CHECK_INT_EQ(err.status, 400);
    CHECK_STR_EQ(err.msg, bad[i].msg);
  }
  /* The current root's own key is no rotation at all. */
  {
    cleanup_json json_t *c = rotated(f.cluster, root, key);
    CHECK_INT_EQ(rootca_apply_spec(f.cluster, c, &err), 0);
    /* A rotation to the user's root, then back to the current root: the
     * rotation is called off. */
    cleanup_json json_t *back = rotated(c, f.root, f.key);
    CHECK_INT_EQ(rootca_apply_spec(c, back, &err), 0);
    CHECK(json_object_get(back, "_RootRotation") == NULL);
    CHECK(!jx_bool(back, "RootRotationInProgress", true));
    CHECK_STR_EQ(jx_str(back, "TLSInfo.TrustRoot", ""), f.root);
    /* The same root again while it rotates: the same rotation. */
    cleanup_json json_t *again = rotated(c, root, key);
    CHECK_INT_EQ(rootca_apply_spec(c, again, &err), 0);
    CHECK(json_equal(json_object_get(again, "_RootRotation"),
                     json_object_get(c, "_RootRotation")));
  }
}

/* A rotation under way makes a renewal due; one in flight or failing is
 * left alone (fake clock, no sleeps). */
static int64_t fake_ns;
static int64_t fake_wall(void *ud) {
  return fake_ns;
}

TEST(rootca_wrong_issuer_renews_now) {
  struct sh_clock clk = {.wall_ns = fake_wall};
  fake_ns = INT64_C(1700000000) * NS_PER_SEC;
  struct ca_renewal r;
  ca_renewal_init(&r, &clk);
  ca_renewal_set_cert(&r, fake_ns - 3600 * NS_PER_SEC,
                      fake_ns + 90LL * 24 * 3600 * NS_PER_SEC, 0);
  CHECK(ca_renewal_wait(&r) > 0);
  CHECK(ca_renewal_wrong_issuer(&r));
  CHECK_INT_EQ(ca_renewal_wait(&r), 0);
  CHECK(!ca_renewal_wrong_issuer(&r)); /* due already */
  ca_renewal_begin(&r);
  CHECK(!ca_renewal_wrong_issuer(&r)); /* in flight */
  ca_renewal_failed(&r);
  CHECK(!ca_renewal_wrong_issuer(&r)); /* the backoff stands */
  CHECK_INT_EQ(ca_renewal_wait(&r), 60 * NS_PER_SEC);
  fake_ns += 60 * NS_PER_SEC;
  CHECK_INT_EQ(ca_renewal_wait(&r), 0);
  ca_renewal_begin(&r);
  ca_renewal_done(&r, fake_ns - 3600 * NS_PER_SEC,
                  fake_ns + 90LL * 24 * 3600 * NS_PER_SEC, 0);
  CHECK(ca_renewal_wait(&r) > 0);
}

TEST(rootca_own_root_at_init) {
  sh_err err = {0};
  cleanup_free char *root = NULL, *key = NULL, *got = NULL;
  CHECK_INT_EQ(ca_root_create(&root, &key, &err), 0);
  CHECK_INT_EQ(manager_own_root(root, key, &got, &err), 0);
  CHECK_STR_EQ(got, root);
  free(STEAL_POINTER(&got));
  CHECK(manager_own_root("", key, &got, &err) < 0);
  CHECK_STR_EQ(err.msg, "rpc error: code = InvalidArgument desc = if a signing "
                        "CA key is provided, the signing CA cert must also be "
                        "provided");
  CHECK(got == NULL);
}
