/* Root CA rotation: validation of the CA config, the signer, and the
 * reconciler that completes a rotation (rootca.h). */
#include "manager/rootca.h"

#include "ca/ca.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/util.h"
#include "manager/internal.h"
#include "store/store.h"

#include <openssl/crypto.h>

#define ROTATION "_RootRotation"
#define KEY "_CAKey"

json_t *rootca_tls_info(const char *root_pem) {
  json_t *info = json_pack("{s:s}", "TrustRoot", root_pem);
  struct ca_issuer facts = {0};
  if (ca_cert_facts(root_pem, &facts, NULL) == 0) {
    json_object_set_new(info, "CertIssuerSubject", json_string(facts.subject));
    json_object_set_new(info, "CertIssuerPublicKey",
                        json_string(facts.public_key));
  }
  ca_issuer_clear(&facts);
  return info;
}

static const char *root_of(const json_t *cluster) {
  return jx_str(cluster, "TLSInfo.TrustRoot", "");
}

/* Starts (or restarts) a rotation to cert/key: the cross-signed
 * certificate always comes from the current root's own key, never from a
 * rotation under way (swarmkit's newRootRotationObject). */
static int start_rotation(const json_t *cur, json_t *next, const char *cert,
                          const char *key, sh_err *err) {
  cleanup_free char *cross = NULL;
  sh_err e = {0};
  if (ca_cross_sign(root_of(cur), jx_str(cur, KEY, ""), cert, &cross, &e) < 0) {
    log_error("unable to generate a cross-signed certificate for root "
              "rotation: %s",
              e.msg);
    return rpc_error(err, 500,
                     "unable to generate a cross-signed certificate for root "
                     "rotation");
  }
  json_object_set_new(next, ROTATION,
                      json_pack("{s:s, s:s, s:s}", "CACert", cert, KEY, key,
                                "CrossSignedCACert", cross));
  json_object_set_new(next, "RootRotationInProgress", json_true());
  log_info("root CA rotation started");
  return 0;
}

static void drop_signing_fields(json_t *next) {
  json_t *ca = jx_get(next, "Spec.CAConfig");
  if (json_is_object(ca)) {
    json_object_del(ca, "SigningCACert");
    json_object_del(ca, "SigningCAKey");
  }
}

/* swarmkit's checks of a root of one's own (both fields given, or
 * neither): *cert_out the certificate normalised. */
static int check_own(const char *given, const char *key, char **cert_out,
                     bool *is_ca, sh_err *err) {
  if (*key && !*given)
    return rpc_error(err, 400,
                     "if a signing CA key is provided, the signing CA cert "
                     "must also be provided");
  if (!*key)
    /* A certificate alone would need an external CA to sign with it. */
    return rpc_error(err, 400,
                     "there must be at least one valid, reachable external CA "
                     "corresponding to the desired CA certificate");
  sh_err e = {0};
  if (ca_cert_normalize(given, cert_out, &e) < 0 ||
      ca_root_check(*cert_out, key, is_ca, &e) < 0)
    return rpc_error(err, e.status == 500 ? 500 : 400, e.msg);
  return 0;
}

int manager_own_root(const char *cert_pem, const char *key_pem, char **root_out,
                     sh_err *err) {
  bool is_ca = false;
  cleanup_free char *cert = NULL;
  if (check_own(cert_pem ? cert_pem : "", key_pem ? key_pem : "", &cert, &is_ca,
                err) < 0)
    return -1;
  if (!is_ca)
    return rpc_error(err, 400, "certificate not a CA");
  *root_out = STEAL_POINTER(&cert);
  return 0;
}

int rootca_apply_spec(const json_t *cur, json_t *next, sh_err *err) {
  const char *want_cert = jx_str(next, "Spec.CAConfig.SigningCACert", "");
  const char *want_key = jx_str(next, "Spec.CAConfig.SigningCAKey", "");
  bool forced = jx_int(next, "Spec.CAConfig.ForceRotate", 0) !=
                jx_int(cur, "Spec.CAConfig.ForceRotate", 0);
  cleanup_free char *key = xstrdup(want_key);
  cleanup_free char *given = xstrdup(want_cert);
  /* Declared before any goto: cleanup runs at the label. */
  cleanup_free char *cert = NULL;
  cleanup_free char *cur_root = NULL;
  cleanup_free char *made_cert = NULL;
  cleanup_free char *made_key = NULL;
  drop_signing_fields(next);
  int rc = -1;
  if (!*given && !*key) {
    if (!forced) {
      rc = 0;
      goto out;
    }
    if (ca_root_create(&made_cert, &made_key, err) < 0)
      goto out;
    rc = start_rotation(cur, next, made_cert, made_key, err);
    OPENSSL_cleanse(made_key, strlen(made_key));
    goto out;
  }
  bool is_ca = false;
  if (check_own(given, key, &cert, &is_ca, err) < 0)
    goto out;
  if (ca_cert_normalize(root_of(cur), &cur_root, err) < 0)
    goto out;
  if (strcmp(cert, cur_root) == 0) {
    /* The current root: any rotation is called off; its key is taken. */
    json_object_set_new(next, KEY, json_string(key));
    json_object_del(next, ROTATION);
    json_object_set_new(next, "RootRotationInProgress", json_false());
    if (json_object_get(cur, ROTATION))
      log_info("root CA rotation aborted: the current root stays");
    rc = 0;
    goto out;
  }
  if (ca_same_public_key(cert, cur_root)) {
    rc = rpc_error(err, 400, "Cannot update to a cert with an identical key");
    goto out;
  }
  const char *rot_cert = jx_str(cur, ROTATION ".CACert", NULL);
  if (rot_cert && strcmp(rot_cert, cert) == 0) {
    jx_set(next, ROTATION "." KEY, json_string(key));
    rc = 0;
    goto out;
  }
  if (!is_ca) {
    log_error("unable to generate a cross-signed certificate for root "
              "rotation: certificate not a CA");
    rc = rpc_error(err, 500,
                   "unable to generate a cross-signed certificate for root "
                   "rotation");
    goto out;
  }
  rc = start_rotation(cur, next, cert, key, err);
out:
  OPENSSL_cleanse(key, strlen(key));
  return rc;
}

int rootca_sign(const json_t *cluster, const char *csr_pem, const char *node_id,
                const char *role, char **cert_pem, sh_err *err) {
  const json_t *rot = json_object_get(cluster, ROTATION);
  const char *signer = rot ? jx_str(rot, "CACert", "") : root_of(cluster);
  const char *key = rot ? jx_str(rot, KEY, "") : jx_str(cluster, KEY, "");
  cleanup_free char *leaf = NULL;
  if (ca_sign_csr(
          signer, key, csr_pem, node_id, role, jx_str(cluster, "ID", ""),
          jx_int(cluster, "Spec.CAConfig.NodeCertExpiry", 0), &leaf, err) < 0)
    return -1;
  /* The leaf's issuer is the new root; the cross-signed copy of it links
   * it to the old root, which every node trusts until the rotation ends. */
  if (rot)
    *cert_pem = xasprintf("%s%s", leaf, jx_str(rot, "CrossSignedCACert", ""));
  else
    *cert_pem = STEAL_POINTER(&leaf);
  return 0;
}

int rootca_desired_issuer(const json_t *cluster, struct ca_issuer *out,
                          sh_err *err) {
  const char *want = jx_str(cluster, ROTATION ".CACert", NULL);
  return ca_cert_facts(want ? want : root_of(cluster), out, err);
}

bool rootca_node_converged(const json_t *node, const struct ca_issuer *want) {
  struct ca_issuer have = {
      .subject =
          (char *)jx_str(node, "Description.TLSInfo.CertIssuerSubject", NULL),
      .public_key = (char *)jx_str(
          node, "Description.TLSInfo.CertIssuerPublicKey", NULL)};
  return ca_issuer_equal(&have, want);
}

bool rootca_all_converged(const json_t *cluster, const json_t *nodes) {
  struct ca_issuer want = {0};
  if (!json_object_get(cluster, ROTATION) ||
      rootca_desired_issuer(cluster, &want, NULL) < 0)
    return false;
  bool all = true;
  size_t i;
  json_t *n;
  json_array_foreach(nodes, i, n) if (!rootca_node_converged(n, &want)) all =
      false;
  ca_issuer_clear(&want);
  return all;
}

json_t *rootca_finished(const json_t *cluster, sh_err *err) {
  const json_t *rot = json_object_get(cluster, ROTATION);
  if (!rot)
    return sh_error(err, 409, "no root rotation in progress"), NULL;
  const char *root = jx_str(rot, "CACert", "");
  cleanup_free char *wtok = NULL;
  cleanup_free char *mtok = NULL;
  if (ca_token_new(root, &wtok, err) < 0 || ca_token_new(root, &mtok, err) < 0)
    return NULL;
  json_t *next = json_deep_copy(cluster);
  json_object_set_new(next, "TLSInfo", rootca_tls_info(root));
  json_object_set_new(next, KEY, json_string(jx_str(rot, KEY, "")));
  jx_set(next, "JoinTokens.Worker", json_string(wtok));
  jx_set(next, "JoinTokens.Manager", json_string(mtok));
  json_object_set_new(next, "RootRotationInProgress", json_false());
  json_object_del(next, ROTATION);
  return next;
}

static void finish_done(void *ud, int status, const sh_err *err) {
  struct manager *m = ud;
  m->rootca_finishing = false;
  if (status < 0)
    log_warn("could not complete root rotation: %s", err ? err->msg : "");
  else
    log_info("completed root rotation");
}

void rootca_reconcile(struct manager *m) {
  json_t *cluster = store_cluster(m->store);
  if (!m->leader || m->rootca_finishing || !cluster ||
      !json_object_get(cluster, ROTATION))
    return;
  cleanup_json json_t *nodes = store_list(m->store, STORE_NODE);
  if (!rootca_all_converged(cluster, nodes))
    return;
  sh_err err = {0};
  json_t *next = rootca_finished(cluster, &err);
  if (!next) {
    log_error("could not complete root rotation: %s", err.msg);
    return;
  }
  /* Against this version: a rotation changed meanwhile is not finished. */
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_CLUSTER, next, jx_int(cluster, "Version.Index", 0));
  m->rootca_finishing = true;
  if (manager_propose(m, tx, finish_done, m, &err) < 0) {
    m->rootca_finishing = false;
    log_warn("could not complete root rotation: %s", err.msg);
  }
}

json_t *rootca_node_facts(const json_t *cluster) {
  json_t *facts =
      json_pack("{s:I, s:s}", "ForceRotate",
                (json_int_t)jx_int(cluster, "Spec.CAConfig.ForceRotate", 0),
                "RootCA", root_of(cluster));
  struct ca_issuer want = {0};
  if (rootca_desired_issuer(cluster, &want, NULL) == 0)
    json_object_set_new(facts, "Issuer",
                        json_pack("{s:s, s:s}", "Subject", want.subject,
                                  "PublicKey", want.public_key));
  ca_issuer_clear(&want);
  return facts;
}
