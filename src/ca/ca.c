/* The swarm's PKI on OpenSSL 3 EVP/X509 APIs. Facts follow swarmkit (ca/):
 * root CN "swarm-ca" valid 20 years, node certs CN/OU/O = node/role/cluster
 * with server+client auth, backdated 1 hour against clock skew, random
 * serials; join tokens SWMTKN-1-<digest>-<secret>. Every failure empties
 * OpenSSL's thread-local error queue so it cannot leak into later TLS
 * calls (SSL_get_error reads it). */
#include "ca/ca.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/id.h"
#include "core/util.h"
#include "http/tlsconn.h"

#include <ctype.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <time.h>

#define TOKEN_PREFIX "SWMTKN-1-"
#define ROOT_CN "swarm-ca"
#define ROOT_VALIDITY_SEC INT64_C(630720000) /* 20 years, as swarmkit */
#define CERT_BACKDATE_SEC 3600               /* swarmkit's CertBackdate */
#define MAX_EXPIRY_NS (INT64_C(100) * 365 * 24 * 3600 * NS_PER_SEC)
#define SERIAL_BYTES 16

/* ---- cleanup helpers for OpenSSL objects ---- */
static inline void x509_freep(X509 **p) {
  X509_free(*p);
}
static inline void req_freep(X509_REQ **p) {
  X509_REQ_free(*p);
}
static inline void pkey_freep(EVP_PKEY **p) {
  EVP_PKEY_free(*p);
}
static inline void bio_freep(BIO **p) {
  BIO_free(*p);
}
static inline void store_freep(X509_STORE **p) {
  X509_STORE_free(*p);
}
static inline void sctx_freep(X509_STORE_CTX **p) {
  X509_STORE_CTX_free(*p);
}
static inline void sslctx_freep(SSL_CTX **p) {
  SSL_CTX_free(*p);
}
#define cleanup_x509 __attribute__((cleanup(x509_freep)))
#define cleanup_req __attribute__((cleanup(req_freep)))
#define cleanup_pkey __attribute__((cleanup(pkey_freep)))
#define cleanup_bio __attribute__((cleanup(bio_freep)))
#define cleanup_store __attribute__((cleanup(store_freep)))
#define cleanup_sctx __attribute__((cleanup(sctx_freep)))
#define cleanup_sslctx __attribute__((cleanup(sslctx_freep)))

/* Like sh_error, with OpenSSL's most recent reason appended (when there is
 * one); always clears the error queue. */
__attribute__((format(printf, 3, 4))) static int
ossl_error(sh_err *err, int status, const char *fmt, ...) {
  char msg[SH_ERR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  unsigned long e = ERR_peek_last_error();
  const char *reason = e ? ERR_reason_error_string(e) : NULL;
  ERR_clear_error();
  if (reason)
    return sh_error(err, status, "%s: %s", msg, reason);
  return sh_error(err, status, "%s", msg);
}

/* Encrypted keys are not supported; this stops OpenSSL from prompting on
 * the terminal for a passphrase. */
static int no_password_cb(char *buf, int size, int rwflag, void *u) {
  (void)buf;
  (void)size;
  (void)rwflag;
  (void)u;
  return -1;
}

static BIO *mem_bio(const char *pem) {
  if (pem == NULL)
    return NULL;
  size_t n = strlen(pem);
  if (n > INT32_MAX)
    return NULL;
  return BIO_new_mem_buf(pem, (int)n);
}

static int parse_cert(const char *pem, X509 **out, int status, const char *what,
                      sh_err *err) {
  cleanup_bio BIO *b = mem_bio(pem);
  if (b == NULL)
    return ossl_error(err, status, "invalid %s: no PEM data", what);
  *out = PEM_read_bio_X509(b, NULL, no_password_cb, NULL);
  if (*out == NULL)
    return ossl_error(err, status, "invalid %s", what);
  return 0;
}

static int parse_key(const char *pem, EVP_PKEY **out, int status,
                     const char *what, sh_err *err) {
  cleanup_bio BIO *b = mem_bio(pem);
  if (b == NULL)
    return ossl_error(err, status, "invalid %s: no PEM data", what);
  *out = PEM_read_bio_PrivateKey(b, NULL, no_password_cb, NULL);
  if (*out == NULL)
    return ossl_error(err, status, "invalid %s", what);
  return 0;
}

/* Reads the memory BIO's contents into a fresh NUL-terminated string. */
static char *bio_to_string(BIO *b) {
  char *data = NULL;
  long n = BIO_get_mem_data(b, &data);
  if (n < 0 || data == NULL)
    return NULL;
  return xstrndup(data, (size_t)n);
}

static int cert_to_pem(X509 *x, char **out, sh_err *err) {
  cleanup_bio BIO *b = BIO_new(BIO_s_mem());
  if (b == NULL || !PEM_write_bio_X509(b, x) ||
      (*out = bio_to_string(b)) == NULL)
    return ossl_error(err, 500, "cannot encode certificate");
  return 0;
}

/* PKCS#8 "PRIVATE KEY"; the reader accepts SEC1 "EC PRIVATE KEY" too. */
static int key_to_pem(EVP_PKEY *k, char **out, sh_err *err) {
  cleanup_bio BIO *b = BIO_new(BIO_s_mem());
  if (b == NULL || !PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) ||
      (*out = bio_to_string(b)) == NULL)
    return ossl_error(err, 500, "cannot encode private key");
  return 0;
}

static int new_ec_key(EVP_PKEY **out, sh_err *err) {
  *out = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  if (*out == NULL)
    return ossl_error(err, 500, "cannot generate ECDSA P-256 key");
  return 0;
}

/* Positive, non-zero random serial (RFC 5280: at most 20 octets). */
static int set_random_serial(X509 *x, sh_err *err) {
  uint8_t b[SERIAL_BYTES];
  id_random(b, sizeof b);
  b[0] = (uint8_t)((b[0] & 0x7f) | 0x40);
  BIGNUM *bn = BN_bin2bn(b, sizeof b, NULL);
  int ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
  BN_free(bn);
  if (!ok)
    return ossl_error(err, 500, "cannot set certificate serial number");
  return 0;
}

static int set_validity(X509 *x, time_t not_before, time_t not_after,
                        sh_err *err) {
  if (!ASN1_TIME_set(X509_getm_notBefore(x), not_before) ||
      !ASN1_TIME_set(X509_getm_notAfter(x), not_after))
    return ossl_error(err, 500, "cannot set certificate validity");
  return 0;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value,
                   sh_err *err) {
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
  if (ext == NULL)
    return ossl_error(err, 500, "cannot build extension %s", OBJ_nid2sn(nid));
  int ok = X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  if (!ok)
    return ossl_error(err, 500, "cannot add extension %s", OBJ_nid2sn(nid));
  return 0;
}

static int name_add(X509_NAME *n, int nid, const char *value, sh_err *err) {
  if (!X509_NAME_add_entry_by_NID(n, nid, MBSTRING_UTF8,
                                  (const unsigned char *)value, -1, -1, 0))
    return ossl_error(err, 500, "cannot set certificate subject");
  return 0;
}

int ca_root_create(char **cert_pem, char **key_pem, sh_err *err) {
  cleanup_pkey EVP_PKEY *key = NULL;
  cleanup_x509 X509 *x = NULL;
  if (new_ec_key(&key, err) < 0)
    return -1;
  x = X509_new();
  if (x == NULL || !X509_set_version(x, X509_VERSION_3))
    return ossl_error(err, 500, "cannot create root certificate");
  if (set_random_serial(x, err) < 0)
    return -1;
  time_t now = time(NULL);
  if (set_validity(x, now - CERT_BACKDATE_SEC, now + ROOT_VALIDITY_SEC, err) <
      0)
    return -1;
  X509_NAME *name = X509_get_subject_name(x);
  if (name_add(name, NID_commonName, ROOT_CN, err) < 0)
    return -1;
  if (!X509_set_issuer_name(x, name) || !X509_set_pubkey(x, key))
    return ossl_error(err, 500, "cannot create root certificate");

  /* No pathlen: like swarmkit's root, so a cross-signed rotation chain
   * (leaf, new root signed by old root) still verifies against it. */
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
  if (add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE", err) < 0 ||
      add_ext(x, &ctx, NID_key_usage,
              "critical,digitalSignature,keyCertSign,cRLSign", err) < 0 ||
      add_ext(x, &ctx, NID_subject_key_identifier, "hash", err) < 0)
    return -1;
  if (!X509_sign(x, key, EVP_sha256()))
    return ossl_error(err, 500, "cannot sign root certificate");

  cleanup_free char *c = NULL;
  cleanup_free char *k = NULL;
  if (cert_to_pem(x, &c, err) < 0 || key_to_pem(key, &k, err) < 0)
    return -1;
  *cert_pem = STEAL_POINTER(&c);
  *key_pem = STEAL_POINTER(&k);
  return 0;
}

int ca_csr_create(char **key_pem, char **csr_pem, sh_err *err) {
  cleanup_pkey EVP_PKEY *key = NULL;
  cleanup_req X509_REQ *req = NULL;
  if (new_ec_key(&key, err) < 0)
    return -1;
  req = X509_REQ_new();
  if (req == NULL || !X509_REQ_set_version(req, X509_REQ_VERSION_1) ||
      !X509_REQ_set_pubkey(req, key) || !X509_REQ_sign(req, key, EVP_sha256()))
    return ossl_error(err, 500, "cannot create certificate signing request");

  cleanup_bio BIO *b = BIO_new(BIO_s_mem());
  cleanup_free char *csr = NULL;
  cleanup_free char *k = NULL;
  if (b == NULL || !PEM_write_bio_X509_REQ(b, req) ||
      (csr = bio_to_string(b)) == NULL)
    return ossl_error(err, 500, "cannot encode certificate signing request");
  if (key_to_pem(key, &k, err) < 0)
    return -1;
  *key_pem = STEAL_POINTER(&k);
  *csr_pem = STEAL_POINTER(&csr);
  return 0;
}

/* IDs end up in a subjectAltName config string, so only allow characters
 * that cannot change its meaning (swarm IDs are base 36). */
static bool valid_name_field(const char *s, size_t max) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > max)
    return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!isalnum(c) && c != '-' && c != '_' && c != '.')
      return false;
  }
  return true;
}

int ca_sign_csr(const char *root_cert_pem, const char *root_key_pem,
                const char *csr_pem, const char *node_id, const char *role,
                const char *cluster_id, int64_t expiry_ns, char **cert_pem,
                sh_err *err) {
  if (!valid_name_field(node_id, 64))
    return sh_error(err, 400, "invalid node ID for certificate");
  if (!valid_name_field(cluster_id, 64))
    return sh_error(err, 400, "invalid cluster ID for certificate");
  if (role == NULL ||
      (strcmp(role, CA_ROLE_MANAGER) != 0 && strcmp(role, CA_ROLE_WORKER) != 0))
    return sh_error(err, 400, "invalid node role \"%s\"", role ? role : "");
  if (expiry_ns <= 0 || expiry_ns > MAX_EXPIRY_NS)
    return sh_error(err, 400, "invalid certificate expiry");

  cleanup_x509 X509 *root = NULL;
  cleanup_pkey EVP_PKEY *root_key = NULL;
  if (parse_cert(root_cert_pem, &root, 500, "root CA certificate", err) < 0 ||
      parse_key(root_key_pem, &root_key, 500, "root CA key", err) < 0)
    return -1;
  if (X509_check_private_key(root, root_key) != 1)
    return ossl_error(err, 500, "root CA key does not match its certificate");

  cleanup_req X509_REQ *req = NULL;
  {
    cleanup_bio BIO *b = mem_bio(csr_pem);
    if (b == NULL ||
        (req = PEM_read_bio_X509_REQ(b, NULL, no_password_cb, NULL)) == NULL)
      return ossl_error(err, 400, "invalid certificate signing request");
  }
  /* Only the CSR's public key is trusted, and only once its
   * proof-of-possession signature checks out. */
  EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
  if (pub == NULL)
    return ossl_error(err, 400, "certificate signing request has no key");
  if (X509_REQ_verify(req, pub) != 1)
    return ossl_error(err, 400,
                      "certificate signing request signature is invalid");
  if (EVP_PKEY_get_security_bits(pub) < 112)
    return ossl_error(err, 400, "certificate signing request key is too weak");

  cleanup_x509 X509 *x = X509_new();
  if (x == NULL || !X509_set_version(x, X509_VERSION_3))
    return ossl_error(err, 500, "cannot create node certificate");
  if (set_random_serial(x, err) < 0)
    return -1;
  time_t now = time(NULL);
  time_t expiry_sec = (time_t)(expiry_ns / NS_PER_SEC);
  if (set_validity(x, now - CERT_BACKDATE_SEC, now + expiry_sec, err) < 0)
    return -1;
  X509_NAME *name = X509_get_subject_name(x);
  if (name_add(name, NID_organizationName, cluster_id, err) < 0 ||
      name_add(name, NID_organizationalUnitName, role, err) < 0 ||
      name_add(name, NID_commonName, node_id, err) < 0)
    return -1;
  if (!X509_set_issuer_name(x, X509_get_subject_name(root)) ||
      !X509_set_pubkey(x, pub))
    return ossl_error(err, 500, "cannot create node certificate");

  /* DNS names as swarmkit: the role and the node ID, plus "swarm-ca" for
   * managers, so peers can check the role as a server name. */
  char san[256];
  snprintf(san, sizeof san, "DNS:%s,DNS:%s%s", role, node_id,
           strcmp(role, CA_ROLE_MANAGER) == 0 ? ",DNS:" ROOT_CN : "");
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, root, x, NULL, NULL, 0);
  if (add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE", err) < 0 ||
      add_ext(x, &ctx, NID_key_usage,
              "critical,digitalSignature,keyEncipherment", err) < 0 ||
      add_ext(x, &ctx, NID_ext_key_usage, "serverAuth,clientAuth", err) < 0 ||
      add_ext(x, &ctx, NID_subject_key_identifier, "hash", err) < 0 ||
      add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always", err) < 0 ||
      add_ext(x, &ctx, NID_subject_alt_name, san, err) < 0)
    return -1;
  if (!X509_sign(x, root_key, EVP_sha256()))
    return ossl_error(err, 500, "cannot sign node certificate");
  return cert_to_pem(x, cert_pem, err);
}

/* Copies the first entry of `nid` in the name as UTF-8 ("" when absent). */
static int name_field(X509_NAME *name, int nid, char *out, size_t outlen,
                      sh_err *err) {
  out[0] = '\0';
  int idx = X509_NAME_get_index_by_NID(name, nid, -1);
  if (idx < 0)
    return 0;
  ASN1_STRING *data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
  unsigned char *utf8 = NULL;
  int n = ASN1_STRING_to_UTF8(&utf8, data);
  if (n < 0)
    return ossl_error(err, 400, "invalid certificate subject");
  if ((size_t)n >= outlen || memchr(utf8, '\0', (size_t)n) != NULL) {
    OPENSSL_free(utf8);
    return sh_error(err, 400, "certificate %s is too long or malformed",
                    OBJ_nid2sn(nid));
  }
  memcpy(out, utf8, (size_t)n);
  out[n] = '\0';
  OPENSSL_free(utf8);
  return 0;
}

static int asn1_time_ns(const ASN1_TIME *t, int64_t *out, sh_err *err) {
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  if (t == NULL || !ASN1_TIME_to_tm(t, &tm))
    return ossl_error(err, 400, "invalid certificate validity");
  time_t s = timegm(&tm);
  *out = (int64_t)s * NS_PER_SEC;
  return 0;
}

int ca_x509_info(X509 *cert, struct ca_cert_info *out, sh_err *err) {
  memset(out, 0, sizeof *out);
  X509_NAME *name = X509_get_subject_name(cert);
  if (name == NULL)
    return sh_error(err, 400, "certificate has no subject");
  if (name_field(name, NID_commonName, out->cn, sizeof out->cn, err) < 0 ||
      name_field(name, NID_organizationalUnitName, out->ou, sizeof out->ou,
                 err) < 0 ||
      name_field(name, NID_organizationName, out->o, sizeof out->o, err) < 0 ||
      asn1_time_ns(X509_get0_notBefore(cert), &out->not_before_ns, err) < 0 ||
      asn1_time_ns(X509_get0_notAfter(cert), &out->not_after_ns, err) < 0)
    return -1;
  return 0;
}

int ca_cert_info(const char *cert_pem, struct ca_cert_info *out, sh_err *err) {
  cleanup_x509 X509 *x = NULL;
  if (parse_cert(cert_pem, &x, 400, "certificate", err) < 0)
    return -1;
  return ca_x509_info(x, out, err);
}

/* Every certificate of a PEM bundle, in order (NULL when there is none). */
static STACK_OF(X509) * parse_all(const char *pem) {
  cleanup_bio BIO *b = mem_bio(pem);
  STACK_OF(X509) *sk = sk_X509_new_null();
  X509 *x;
  while (b && sk && (x = PEM_read_bio_X509(b, NULL, no_password_cb, NULL))) {
    if (!sk_X509_push(sk, x)) {
      X509_free(x);
      break;
    }
  }
  ERR_clear_error(); /* the end of the PEM data reads as an error */
  if (sk && sk_X509_num(sk) == 0) {
    sk_X509_free(sk);
    return NULL;
  }
  return sk;
}

static void sk_x509_freep(STACK_OF(X509) * *p) {
  sk_X509_pop_free(*p, X509_free);
}
#define cleanup_sk_x509 __attribute__((cleanup(sk_x509_freep)))

/* Builds and checks the chain of the bundle's first certificate (the
 * others are untrusted intermediates) to a certificate of root_pem.
 * check_time false ignores validity dates. On success *chain is the
 * verified chain, leaf first (the caller frees it). */
static int verify_chain(const char *cert_pem, const char *root_pem,
                        bool check_time, STACK_OF(X509) * *chain, sh_err *err) {
  cleanup_sk_x509 STACK_OF(X509) *certs = parse_all(cert_pem);
  cleanup_sk_x509 STACK_OF(X509) *roots = parse_all(root_pem);
  if (!certs)
    return sh_error(err, 400, "invalid certificate");
  if (!roots)
    return sh_error(err, 400, "invalid root CA certificate");
  X509 *leaf = sk_X509_shift(certs);
  cleanup_x509 X509 *leaf_ref = leaf;
  cleanup_store X509_STORE *store = X509_STORE_new();
  cleanup_sctx X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  if (store == NULL || ctx == NULL)
    return ossl_error(err, 500, "cannot set up certificate verification");
  for (int i = 0; i < sk_X509_num(roots); i++)
    if (!X509_STORE_add_cert(store, sk_X509_value(roots, i)))
      return ossl_error(err, 500, "cannot set up certificate verification");
  if (!X509_STORE_CTX_init(ctx, store, leaf, certs))
    return ossl_error(err, 500, "cannot set up certificate verification");
  if (!check_time)
    X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_NO_CHECK_TIME);
  if (X509_verify_cert(ctx) != 1) {
    int e = X509_STORE_CTX_get_error(ctx);
    ERR_clear_error();
    return sh_error(err, 403, "certificate is not valid for this swarm: %s",
                    X509_verify_cert_error_string(e));
  }
  if (chain)
    *chain = X509_STORE_CTX_get1_chain(ctx);
  return 0;
}

int ca_cert_verify(const char *cert_pem, const char *root_pem, sh_err *err) {
  return verify_chain(cert_pem, root_pem, true, NULL, err);
}

static char *b64_der(unsigned char *der, int n) {
  char *out = NULL;
  if (n > 0) {
    out = xmalloc((size_t)n * 2 + 8);
    EVP_EncodeBlock((unsigned char *)out, der, n);
  }
  OPENSSL_free(der);
  return out ? out : xstrdup("");
}

/* Subject and public key of x, DER in base64 (as Go's RawSubject and
 * RawSubjectPublicKeyInfo reach the Engine API). */
static void x509_issuer_facts(X509 *x, struct ca_issuer *out) {
  unsigned char *der = NULL;
  int n = i2d_X509_NAME(X509_get_subject_name(x), &der);
  out->subject = b64_der(der, n);
  der = NULL;
  n = i2d_PUBKEY(X509_get0_pubkey(x), &der);
  out->public_key = b64_der(der, n);
}

void ca_issuer_clear(struct ca_issuer *i) {
  free(i->subject);
  free(i->public_key);
  i->subject = i->public_key = NULL;
}

bool ca_issuer_equal(const struct ca_issuer *a, const struct ca_issuer *b) {
  return a->subject && b->subject && a->public_key && b->public_key &&
         strcmp(a->subject, b->subject) == 0 &&
         strcmp(a->public_key, b->public_key) == 0;
}

int ca_cert_facts(const char *cert_pem, struct ca_issuer *out, sh_err *err) {
  cleanup_x509 X509 *x = NULL;
  if (parse_cert(cert_pem, &x, 400, "certificate", err) < 0)
    return -1;
  x509_issuer_facts(x, out);
  return 0;
}

int ca_cert_issuer(const char *cert_pem, const char *root_pem,
                   struct ca_issuer *out, sh_err *err) {
  STACK_OF(X509) *chain = NULL;
  if (verify_chain(cert_pem, root_pem, false, &chain, err) < 0)
    return -1;
  /* The leaf's verified issuer: an intermediate when the chain has one
   * (a rotation's cross-signed root), else the root. */
  int n = sk_X509_num(chain);
  x509_issuer_facts(sk_X509_value(chain, n > 1 ? 1 : 0), out);
  sk_X509_pop_free(chain, X509_free);
  return 0;
}

json_t *ca_tls_info(const char *cert_pem, const char *root_pem) {
  struct ca_issuer iss = {0};
  json_t *info = json_pack("{s:s}", "TrustRoot", root_pem ? root_pem : "");
  if (cert_pem && root_pem &&
      ca_cert_issuer(cert_pem, root_pem, &iss, NULL) == 0) {
    json_object_set_new(info, "CertIssuerSubject", json_string(iss.subject));
    json_object_set_new(info, "CertIssuerPublicKey",
                        json_string(iss.public_key));
  }
  ca_issuer_clear(&iss);
  return info;
}

int ca_cert_normalize(const char *pem, char **out, sh_err *err) {
  cleanup_sk_x509 STACK_OF(X509) *certs = parse_all(pem);
  if (!certs)
    return sh_error(err, 400, "no valid root CA certificates found");
  cleanup_bio BIO *b = BIO_new(BIO_s_mem());
  for (int i = 0; b && i < sk_X509_num(certs); i++)
    if (!PEM_write_bio_X509(b, sk_X509_value(certs, i)))
      return ossl_error(err, 500, "cannot encode certificate");
  if (b == NULL || (*out = bio_to_string(b)) == NULL)
    return ossl_error(err, 500, "cannot encode certificate");
  return 0;
}

int ca_root_check(const char *cert_pem, const char *key_pem, bool *is_ca,
                  sh_err *err) {
  cleanup_sk_x509 STACK_OF(X509) *certs = parse_all(cert_pem);
  if (!certs)
    return sh_error(err, 400,
                    "invalid root certificates: no valid root CA certificates "
                    "found");
  if (sk_X509_num(certs) != 1)
    return sh_error(err, 400,
                    "the desired CA certificate cannot contain "
                    "multiple certificates");
  X509 *x = sk_X509_value(certs, 0);
  /* It must verify as its own chain, within its dates; as in Go, any
   * certificate in the pool is an anchor (whether it can sign comes
   * later: *is_ca). */
  cleanup_store X509_STORE *store = X509_STORE_new();
  cleanup_sctx X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  if (store == NULL || ctx == NULL || !X509_STORE_add_cert(store, x) ||
      !X509_STORE_CTX_init(ctx, store, x, NULL))
    return ossl_error(err, 500, "cannot set up certificate verification");
  X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_PARTIAL_CHAIN);
  if (X509_verify_cert(ctx) != 1) {
    int e = X509_STORE_CTX_get_error(ctx);
    ERR_clear_error();
    /* In Go's words, as Docker users see them. */
    const char *why = X509_verify_cert_error_string(e);
    if (e == X509_V_ERR_CERT_HAS_EXPIRED || e == X509_V_ERR_CERT_NOT_YET_VALID)
      why = "certificate has expired or is not yet valid";
    else if (e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
             e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
             e == X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE)
      why = "certificate signed by unknown authority";
    return sh_error(
        err, 400, "error while validating Root CA Certificate: x509: %s", why);
  }
  cleanup_pkey EVP_PKEY *key = NULL;
  {
    cleanup_bio BIO *b = mem_bio(key_pem);
    key = b ? PEM_read_bio_PrivateKey(b, NULL, no_password_cb, NULL) : NULL;
    if (key == NULL) {
      ERR_clear_error();
      return sh_error(err, 400, "malformed private key");
    }
  }
  EVP_PKEY *pub = X509_get0_pubkey(x);
  if (pub == NULL || EVP_PKEY_eq(pub, key) != 1) {
    ERR_clear_error();
    return sh_error(err, 400, "certificate key mismatch");
  }
  /* swarmkit: the new root must stay valid for a year at least. */
  time_t soon = time(NULL) + 365 * 24 * 3600;
  if (X509_cmp_time(X509_get0_notAfter(x), &soon) < 0)
    return sh_error(err, 400, "CA certificate expires too soon");
  *is_ca = X509_check_ca(x) >= 1;
  return 0;
}

bool ca_same_public_key(const char *a_pem, const char *b_pem) {
  cleanup_x509 X509 *a = NULL;
  cleanup_x509 X509 *b = NULL;
  if (parse_cert(a_pem, &a, 400, "certificate", NULL) < 0 ||
      parse_cert(b_pem, &b, 400, "certificate", NULL) < 0)
    return false;
  EVP_PKEY *ka = X509_get0_pubkey(a), *kb = X509_get0_pubkey(b);
  bool same = ka && kb && EVP_PKEY_eq(ka, kb) == 1;
  ERR_clear_error();
  return same;
}

int ca_cross_sign(const char *old_cert_pem, const char *old_key_pem,
                  const char *new_cert_pem, char **out, sh_err *err) {
  cleanup_x509 X509 *old = NULL;
  cleanup_x509 X509 *nw = NULL;
  cleanup_pkey EVP_PKEY *old_key = NULL;
  if (parse_cert(old_cert_pem, &old, 500, "root CA certificate", err) < 0 ||
      parse_key(old_key_pem, &old_key, 500, "root CA key", err) < 0 ||
      parse_cert(new_cert_pem, &nw, 400, "new CA certificate", err) < 0)
    return -1;
  if (X509_check_ca(nw) < 1)
    return sh_error(err, 400, "certificate not a CA");
  /* The new root as it is (subject, key, dates, extensions), issued by the
   * old root: a leaf of the new key chains to either root through it. */
  cleanup_x509 X509 *x = X509_dup(nw);
  if (x == NULL || !X509_set_issuer_name(x, X509_get_subject_name(old)))
    return ossl_error(err, 500, "cannot cross-sign new CA certificate");
  int idx;
  while ((idx = X509_get_ext_by_NID(x, NID_authority_key_identifier, -1)) >= 0)
    X509_EXTENSION_free(X509_delete_ext(x, idx));
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, old, x, NULL, NULL, 0);
  if (X509_get_ext_by_NID(x, NID_subject_key_identifier, -1) < 0 &&
      add_ext(x, &ctx, NID_subject_key_identifier, "hash", err) < 0)
    return -1;
  /* Names alone cannot tell the two roots apart (both may be "swarm-ca"):
   * the key identifiers do. */
  if (add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always", err) < 0)
    return -1;
  if (!X509_sign(x, old_key, EVP_sha256()))
    return ossl_error(err, 500,
                      "could not cross-sign new CA certificate "
                      "using old CA material");
  return cert_to_pem(x, out, err);
}

int ca_key_matches(const char *cert_pem, const char *key_pem, sh_err *err) {
  cleanup_x509 X509 *x = NULL;
  cleanup_pkey EVP_PKEY *key = NULL;
  if (parse_cert(cert_pem, &x, 400, "certificate", err) < 0 ||
      parse_key(key_pem, &key, 400, "private key", err) < 0)
    return -1;
  EVP_PKEY *pub = X509_get0_pubkey(x);
  if (pub == NULL || EVP_PKEY_eq(pub, key) != 1) {
    ERR_clear_error();
    return sh_error(err, 400, "private key does not match certificate");
  }
  return 0;
}

int ca_root_digest(const char *root_cert_pem, char *out, sh_err *err) {
  /* swarmkit hashes the PEM bytes as served (the whole bundle), not the
   * DER: a joining node checks exactly what the manager sends. */
  cleanup_x509 X509 *x = NULL;
  if (parse_cert(root_cert_pem, &x, 400, "root CA certificate", err) < 0)
    return -1;
  uint8_t md[32];
  unsigned mdlen = 0;
  if (!EVP_Digest(root_cert_pem, strlen(root_cert_pem), md, &mdlen,
                  EVP_sha256(), NULL) ||
      mdlen != sizeof md)
    return ossl_error(err, 500, "cannot hash root CA certificate");
  base36_encode(md, sizeof md, CA_DIGEST_LEN, out, CA_DIGEST_LEN + 1);
  return 0;
}

void ca_digest_hex(const char *digest36, char hex[65]) {
  uint8_t num[32] = {0};
  for (const char *p = digest36; *p; p++) {
    unsigned d = (*p >= '0' && *p <= '9') ? (unsigned)(*p - '0')
                                          : (unsigned)(*p - 'a') + 10;
    unsigned carry = d;
    for (size_t j = sizeof num; j > 0; j--) {
      unsigned v = num[j - 1] * 36u + carry;
      num[j - 1] = (uint8_t)v;
      carry = v >> 8;
    }
  }
  for (int i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", num[i]);
}

int ca_token_new(const char *root_cert_pem, char **token, sh_err *err) {
  char digest[CA_DIGEST_LEN + 1], secret[CA_SECRET_LEN + 1];
  if (ca_root_digest(root_cert_pem, digest, err) < 0)
    return -1;
  uint8_t b[16];
  id_random(b, sizeof b);
  base36_encode(b, sizeof b, CA_SECRET_LEN, secret, sizeof secret);
  *token = xasprintf(TOKEN_PREFIX "%s-%s", digest, secret);
  return 0;
}

/* True when s[0..len) is lowercase base 36 whose value fits in nbytes. */
static bool base36_fits(const char *s, size_t len, size_t nbytes) {
  uint8_t num[32] = {0};
  if (nbytes > sizeof num)
    return false;
  for (size_t i = 0; i < len; i++) {
    unsigned d;
    if (s[i] >= '0' && s[i] <= '9')
      d = (unsigned)(s[i] - '0');
    else if (s[i] >= 'a' && s[i] <= 'z')
      d = (unsigned)(s[i] - 'a') + 10;
    else
      return false;
    /* num = num * 36 + d, big-endian in the last nbytes bytes. */
    unsigned carry = d;
    for (size_t j = nbytes; j > 0; j--) {
      unsigned v = num[j - 1] * 36u + carry;
      num[j - 1] = (uint8_t)v;
      carry = v >> 8;
    }
    if (carry)
      return false;
  }
  return true;
}

int ca_token_parse(const char *token, char digest[CA_DIGEST_LEN + 1],
                   char secret[CA_SECRET_LEN + 1], sh_err *err) {
  const size_t plen = sizeof TOKEN_PREFIX - 1;
  if (token == NULL ||
      strlen(token) != plen + CA_DIGEST_LEN + 1 + CA_SECRET_LEN ||
      !str_has_prefix(token, TOKEN_PREFIX) ||
      token[plen + CA_DIGEST_LEN] != '-')
    return sh_error(err, 400, "invalid join token");
  const char *d = token + plen;
  const char *s = d + CA_DIGEST_LEN + 1;
  /* The digest is a sha256 (256 bits), the secret 128 random bits. */
  if (!base36_fits(d, CA_DIGEST_LEN, 32) || !base36_fits(s, CA_SECRET_LEN, 16))
    return sh_error(err, 400, "invalid join token");
  if (digest) {
    memcpy(digest, d, CA_DIGEST_LEN);
    digest[CA_DIGEST_LEN] = '\0';
  }
  if (secret) {
    memcpy(secret, s, CA_SECRET_LEN);
    secret[CA_SECRET_LEN] = '\0';
  }
  return 0;
}

bool ca_token_equal(const char *a, const char *b) {
  if (a == NULL || b == NULL)
    return false;
  size_t la = strlen(a), lb = strlen(b);
  /* Token lengths are public (fixed by the format); contents are not. */
  if (la != lb)
    return false;
  return CRYPTO_memcmp(a, b, la) == 0;
}

SSL_CTX *ca_tls_server_ctx(const char *cert_pem, const char *key_pem,
                           const char *root_pem, bool require_client_cert,
                           sh_err *err) {
  cleanup_x509 X509 *cert = NULL;
  cleanup_x509 X509 *root = NULL;
  cleanup_pkey EVP_PKEY *key = NULL;
  if (parse_cert(cert_pem, &cert, 400, "TLS certificate", err) < 0 ||
      parse_key(key_pem, &key, 400, "TLS private key", err) < 0 ||
      parse_cert(root_pem, &root, 400, "root CA certificate", err) < 0)
    return NULL;

  cleanup_sslctx SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == NULL || tlsconn_ctx_restrict(ctx) < 0) {
    ossl_error(err, 500, "cannot create TLS context");
    return NULL;
  }
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_use_certificate(ctx, cert) != 1 ||
      SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    ossl_error(err, 400, "TLS certificate and key do not match");
    return NULL;
  }
  /* Any further certificates in cert_pem are the chain to send. */
  {
    cleanup_bio BIO *b = mem_bio(cert_pem);
    X509 *extra = b ? PEM_read_bio_X509(b, NULL, no_password_cb, NULL) : NULL;
    X509_free(extra); /* the leaf, already loaded */
    while (b && (extra = PEM_read_bio_X509(b, NULL, no_password_cb, NULL))) {
      if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
        X509_free(extra);
        ossl_error(err, 500, "cannot add TLS certificate chain");
        return NULL;
      }
    }
    ERR_clear_error(); /* the end of the PEM data reads as an error */
  }
  /* Every certificate of root_pem is a root to trust. */
  {
    cleanup_sk_x509 STACK_OF(X509) *roots = parse_all(root_pem);
    for (int i = 0; roots && i < sk_X509_num(roots); i++) {
      X509 *r = sk_X509_value(roots, i);
      if (X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), r) != 1 ||
          SSL_CTX_add_client_CA(ctx, r) != 1) {
        ossl_error(err, 500, "cannot load root CA into TLS context");
        return NULL;
      }
    }
  }
  /* Without a session ID context, resumption fails once peers are
   * verified ("session id context uninitialized"). */
  static const unsigned char sid[] = "shoal";
  if (SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1) != 1) {
    ossl_error(err, 500, "cannot create TLS context");
    return NULL;
  }
  /* Resumption from this server's cache (a ticket names the entry), not
   * stateless tickets: a ticket is the whole session encrypted, and
   * taking it back decodes the client's certificate (OpenSSL 3's decoders,
   * ~1 ms); a thousand nodes reconnecting to a new leader did that on the
   * loop that was holding the election. 8,192 entries of ~3 KB. */
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
  SSL_CTX_sess_set_cache_size(ctx, 8192);
  /* The default verify callback fails the handshake on any chain error,
   * so a client certificate from another CA is refused even when
   * certificates are optional. */
  int mode = SSL_VERIFY_PEER;
  if (require_client_cert)
    mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  SSL_CTX_set_verify(ctx, mode, NULL);
  SSL_CTX_set_verify_depth(ctx, 4);
  return STEAL_POINTER(&ctx);
}
