/* The swarm's public-key infrastructure (OpenSSL 3), as swarmkit does it:
 *
 * - a root CA: ECDSA P-256 key, self-signed certificate, CN
 *   "swarm-ca", valid 20 years;
 * - node certificates signed by it: CN = node ID, OU = role
 *   ("swarm-manager" or "swarm-worker"), O = cluster ID, ECDSA P-256 keys,
 *   valid for the cluster's cert expiry, usable for TLS client and server;
 * - join tokens "SWMTKN-1-<digest>-<secret>": digest = sha256 of the root
 *   CA certificate PEM text as served, as a base-36 number left-padded to 50
 * chars; secret = 128 random bits in base 36, padded to 25 chars.
 *
 * All keys and certificates cross this interface as PEM text. */
#ifndef SHOAL_CA_CA_H
#define SHOAL_CA_CA_H

#include <jansson.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>

struct sh_err;

#define CA_ROLE_MANAGER "swarm-manager"
#define CA_ROLE_WORKER "swarm-worker"
#define CA_DIGEST_LEN 50
#define CA_SECRET_LEN 25

struct ca_cert_info {
  char cn[128];                        /* node ID */
  char ou[64];                         /* role */
  char o[128];                         /* cluster ID */
  int64_t not_before_ns, not_after_ns; /* wall clock */
};

/* Makes a new root CA. */
int ca_root_create(char **cert_pem, char **key_pem, struct sh_err *err);
/* Makes a node key and a CSR for it (subject is set by the signer). */
int ca_csr_create(char **key_pem, char **csr_pem, struct sh_err *err);
/* Signs a CSR (its signature is verified first: 400 when bad) and returns
 * the node certificate. expiry_ns is the validity from now. */
int ca_sign_csr(const char *root_cert_pem, const char *root_key_pem,
                const char *csr_pem, const char *node_id, const char *role,
                const char *cluster_id, int64_t expiry_ns, char **cert_pem,
                struct sh_err *err);
/* Reads subject and validity of a certificate. */
int ca_cert_info(const char *cert_pem, struct ca_cert_info *out,
                 struct sh_err *err);
/* The same for a parsed certificate, e.g. a TLS peer's
 * (SSL_get0_peer_certificate). */
int ca_x509_info(X509 *cert, struct ca_cert_info *out, struct sh_err *err);
/* Verifies that cert_pem (a leaf, then any intermediates) chains to a
 * certificate of root_pem and is currently valid. */
int ca_cert_verify(const char *cert_pem, const char *root_pem,
                   struct sh_err *err);

/* A certificate issuer as the Engine API's TLSInfo shows it: subject and
 * SubjectPublicKeyInfo, DER in base64. */
struct ca_issuer {
  char *subject;
  char *public_key;
};
void ca_issuer_clear(struct ca_issuer *i);
bool ca_issuer_equal(const struct ca_issuer *a, const struct ca_issuer *b);
/* The facts of a CA certificate itself (the issuer of what it signs). */
int ca_cert_facts(const char *cert_pem, struct ca_issuer *out,
                  struct sh_err *err);
/* The verified issuer of cert_pem's leaf (its chain to root_pem; dates
 * not checked): the cross-signed intermediate during a root rotation,
 * else the root. */
int ca_cert_issuer(const char *cert_pem, const char *root_pem,
                   struct ca_issuer *out, struct sh_err *err);
/* A node's Description.TLSInfo (swarmkit's NodeTLSInfo): TrustRoot
 * root_pem and, when the chain verifies, its certificate's issuer. What
 * the node reports and what a manager records when it signs the node's
 * certificate, so the two compare equal. New reference. */
json_t *ca_tls_info(const char *cert_pem, const char *root_pem);

/* Root CA rotation (swarmkit's ca/certificates.go). */
/* The bundle re-encoded (no PEM headers, canonical line breaks), so equal
 * certificates compare equal as text. */
int ca_cert_normalize(const char *pem, char **out, struct sh_err *err);
/* swarmkit's checks of a root of one's own (400, swarmkit's messages):
 * one certificate, self-signed and within its dates, key_pem its key,
 * valid a year more. *is_ca tells whether it may sign certificates. */
int ca_root_check(const char *cert_pem, const char *key_pem, bool *is_ca,
                  struct sh_err *err);
/* Whether two certificates carry the same public key. */
bool ca_same_public_key(const char *a_pem, const char *b_pem);
/* The new root certificate issued by the old root (same subject, key,
 * dates and extensions; authority key ID of the old root). */
int ca_cross_sign(const char *old_cert_pem, const char *old_key_pem,
                  const char *new_cert_pem, char **out, struct sh_err *err);
/* Checks that key_pem is the private key of cert_pem. */
int ca_key_matches(const char *cert_pem, const char *key_pem,
                   struct sh_err *err);

/* out[CA_DIGEST_LEN + 1]: base-36 sha256 of the certificate's PEM text. */
int ca_root_digest(const char *root_cert_pem, char *out, struct sh_err *err);
/* The digest as 64 hex characters (Docker's "Expected: ..." message). */
void ca_digest_hex(const char *digest36, char hex[65]);
/* New token for this root CA: "SWMTKN-1-<digest>-<secret>". */
int ca_token_new(const char *root_cert_pem, char **token, struct sh_err *err);
/* Splits and validates a token's syntax. On malformed input: 400 with
 * Docker's message "invalid join token". */
int ca_token_parse(const char *token, char digest[CA_DIGEST_LEN + 1],
                   char secret[CA_SECRET_LEN + 1], struct sh_err *err);
/* Constant-time comparison of two tokens. */
bool ca_token_equal(const char *a, const char *b);

/* TLS contexts for node-to-node traffic (TLS 1.2+).
 * Server: presents cert/key; verifies client certificates against root
 * when sent; require_client_cert refuses clients without one (the
 * join/CA endpoints run on the same port, so the swarm port asks for but
 * does not require certificates, and handlers check req->peer_verified).
 * Client contexts: tlsconn_client_ctx (http/tlsconn.h). */
SSL_CTX *ca_tls_server_ctx(const char *cert_pem, const char *key_pem,
                           const char *root_pem, bool require_client_cert,
                           struct sh_err *err);

#endif
