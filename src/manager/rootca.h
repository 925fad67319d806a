/* Root CA rotation, as swarmkit does it (manager/controlapi/ca_rotation.go,
 * ca/reconciler.go). The cluster object keeps the current root in
 * TLSInfo.TrustRoot and its key in _CAKey; a rotation adds
 *
 *   _RootRotation {CACert, _CAKey, CrossSignedCACert}
 *
 * (the new root, its key, the new root signed by the old key; hidden from
 * every API view) and RootRotationInProgress. Meanwhile node certificates
 * are signed with the new key and handed out with the cross-signed
 * certificate, so they chain to the old root every node trusts. Once every
 * node in the store reports a certificate from the new key
 * (Description.TLSInfo), the new root replaces the old one, the join
 * tokens are made again (they embed its digest) and the rotation object
 * goes; nodes then trust the new root only. */
#ifndef SHOAL_MANAGER_ROOTCA_H
#define SHOAL_MANAGER_ROOTCA_H

#include <jansson.h>
#include <stdbool.h>

struct sh_err;
struct manager;
struct ca_issuer;

/* The cluster's TLSInfo for a root: TrustRoot and its subject and public
 * key (as the issuer of what it signs). New reference. */
json_t *rootca_tls_info(const char *root_pem);

/* swarmkit's validateCAConfig: what newspec's CAConfig asks of the root
 * (cur is the cluster object as stored, next the one being written, with
 * newspec already in it). A new ForceRotate without a certificate starts a
 * rotation to a new root; SigningCACert + SigningCAKey rotate to that
 * root (or abort a rotation when it is the current root). The signing
 * certificate and key never stay in the stored spec. */
int rootca_apply_spec(const json_t *cur, json_t *next, struct sh_err *err);

/* Signs a node's CSR with the cluster's current signer (the rotation's
 * new key while one runs) and returns the certificate with the chain to
 * send with it. */
int rootca_sign(const json_t *cluster, const char *csr_pem, const char *node_id,
                const char *role, char **cert_pem, struct sh_err *err);

/* The issuer every node's certificate should have now. */
int rootca_desired_issuer(const json_t *cluster, struct ca_issuer *out,
                          struct sh_err *err);
/* Whether the node reports a certificate from that issuer. */
bool rootca_node_converged(const json_t *node, const struct ca_issuer *want);
/* swarmkit's rule: a rotation is done when every node in the store (down
 * ones too: a node that is gone must be removed) has moved. */
bool rootca_all_converged(const json_t *cluster, const json_t *nodes);
/* The cluster object once its rotation completed: the new root and key,
 * new join tokens, no rotation. New reference; NULL with err. */
json_t *rootca_finished(const json_t *cluster, struct sh_err *err);

/* Leader: completes the rotation once every node has moved (called on
 * node and cluster changes). */
void rootca_reconcile(struct manager *m);
/* The CA facts every node message carries: {ForceRotate, RootCA, Issuer}.
 * New reference. */
json_t *rootca_node_facts(const json_t *cluster);

#endif
