#include "test.h"

#include "ca/ca.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/util.h"
#include "http/tlsconn.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#define NODE_ID "3x7ptkqjbmf2u9tdyo0cxwz1a"
#define CLUSTER_ID "p0c4yl1uq1olo7qyx1u53nvyd"
#define DAY_NS (INT64_C(24) * 3600 * NS_PER_SEC)

static int64_t abs64(int64_t v) {
  return v < 0 ? -v : v;
}

static X509 *pem_x509(const char *pem) {
  BIO *b = BIO_new_mem_buf(pem, -1);
  X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
  BIO_free(b);
  return x;
}

static EVP_PKEY *pem_key(const char *pem) {
  BIO *b = BIO_new_mem_buf(pem, -1);
  EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
  BIO_free(b);
  return k;
}

/* A root plus a signed node certificate and its key. */
struct pki {
  char *root, *root_key, *key, *csr, *cert;
};

static void pki_free(struct pki *p) {
  free(p->root);
  free(p->root_key);
  free(p->key);
  free(p->csr);
  free(p->cert);
  memset(p, 0, sizeof *p);
}
#define cleanup_pki __attribute__((cleanup(pki_free)))

static int make_pki(struct pki *p, const char *role, int64_t expiry_ns) {
  sh_err err = {0};
  memset(p, 0, sizeof *p);
  if (ca_root_create(&p->root, &p->root_key, &err) < 0 ||
      ca_csr_create(&p->key, &p->csr, &err) < 0 ||
      ca_sign_csr(p->root, p->root_key, p->csr, NODE_ID, role, CLUSTER_ID,
                  expiry_ns, &p->cert, &err) < 0) {
    fprintf(stderr, "    make_pki: %s\n", err.msg);
    return -1;
  }
  return 0;
}

TEST(ca_root_create_info) {
  sh_err err = {0};
  cleanup_free char *cert = NULL;
  cleanup_free char *key = NULL;
  CHECK_INT_EQ(ca_root_create(&cert, &key, &err), 0);
  CHECK(str_has_prefix(cert, "-----BEGIN CERTIFICATE-----"));
  CHECK(strstr(key, "PRIVATE KEY-----") != NULL);
  struct ca_cert_info info;
  CHECK_INT_EQ(ca_cert_info(cert, &info, &err), 0);
  CHECK_STR_EQ(info.cn, "swarm-ca");
  int64_t now = clock_wall_ns();
  CHECK(info.not_before_ns <= now);
  CHECK(abs64(info.not_after_ns - (now + INT64_C(630720000) * NS_PER_SEC)) <
        60 * NS_PER_SEC);
  /* A self-signed root verifies against itself and matches its key. */
  CHECK_INT_EQ(ca_cert_verify(cert, cert, &err), 0);
  CHECK_INT_EQ(ca_key_matches(cert, key, &err), 0);

  X509 *x = pem_x509(cert);
  CHECK(x != NULL);
  CHECK(X509_check_ca(x) == 1);
  EVP_PKEY *pub = X509_get0_pubkey(x);
  CHECK_INT_EQ(EVP_PKEY_get_base_id(pub), EVP_PKEY_EC);
  char curve[64] = "";
  EVP_PKEY_get_group_name(pub, curve, sizeof curve, NULL);
  CHECK_STR_EQ(curve, "prime256v1");
  CHECK_INT_EQ(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
  X509_free(x);
}

TEST(ca_sign_csr_info_verify_match) {
  cleanup_pki struct pki p = {0}, other = {0};
  sh_err err = {0};
  int64_t expiry = 90 * DAY_NS;
  CHECK_INT_EQ(make_pki(&p, CA_ROLE_WORKER, expiry), 0);
  CHECK_INT_EQ(make_pki(&other, CA_ROLE_WORKER, expiry), 0);
  int64_t now = clock_wall_ns();

  struct ca_cert_info info;
  CHECK_INT_EQ(ca_cert_info(p.cert, &info, &err), 0);
  CHECK_STR_EQ(info.cn, NODE_ID);
  CHECK_STR_EQ(info.ou, CA_ROLE_WORKER);
  CHECK_STR_EQ(info.o, CLUSTER_ID);
  CHECK(abs64(info.not_after_ns - (now + expiry)) < 10 * NS_PER_SEC);
  /* Backdated an hour for clock skew. */
  CHECK(abs64(info.not_before_ns - (now - 3600 * NS_PER_SEC)) <
        10 * NS_PER_SEC);

  CHECK_INT_EQ(ca_cert_verify(p.cert, p.root, &err), 0);
  CHECK(ca_cert_verify(p.cert, other.root, &err) < 0);
  CHECK_INT_EQ(err.status, 403);
  CHECK(ca_cert_verify(other.cert, p.root, &err) < 0);

  CHECK_INT_EQ(ca_key_matches(p.cert, p.key, &err), 0);
  sh_err_clear(&err);
  CHECK(ca_key_matches(p.cert, other.key, &err) < 0);
  CHECK_INT_EQ(err.status, 400);
  CHECK(ca_key_matches(p.cert, p.root_key, &err) < 0);

  /* Usable for TLS both ways, not a CA, names as swarmkit's. */
  X509 *x = pem_x509(p.cert);
  CHECK(x != NULL);
  CHECK(X509_check_ca(x) == 0);
  CHECK(X509_check_purpose(x, X509_PURPOSE_SSL_SERVER, 0) == 1);
  CHECK(X509_check_purpose(x, X509_PURPOSE_SSL_CLIENT, 0) == 1);
  CHECK(X509_check_host(x, CA_ROLE_WORKER, 0, 0, NULL) == 1);
  CHECK(X509_check_host(x, NODE_ID, 0, 0, NULL) == 1);
  CHECK(X509_check_host(x, CA_ROLE_MANAGER, 0, 0, NULL) != 1);
  CHECK(X509_check_host(x, "swarm-ca", 0, 0, NULL) != 1);
  CHECK_INT_EQ(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
  X509_free(x);
}

TEST(ca_manager_cert_names) {
  cleanup_pki struct pki p = {0};
  CHECK_INT_EQ(make_pki(&p, CA_ROLE_MANAGER, DAY_NS), 0);
  struct ca_cert_info info;
  sh_err err = {0};
  CHECK_INT_EQ(ca_cert_info(p.cert, &info, &err), 0);
  CHECK_STR_EQ(info.ou, CA_ROLE_MANAGER);
  X509 *x = pem_x509(p.cert);
  CHECK(X509_check_host(x, CA_ROLE_MANAGER, 0, 0, NULL) == 1);
  CHECK(X509_check_host(x, "swarm-ca", 0, 0, NULL) == 1);
  X509_free(x);
}

TEST(ca_serials_are_random) {
  cleanup_pki struct pki a = {0}, b = {0};
  CHECK_INT_EQ(make_pki(&a, CA_ROLE_WORKER, DAY_NS), 0);
  CHECK_INT_EQ(make_pki(&b, CA_ROLE_WORKER, DAY_NS), 0);
  X509 *xa = pem_x509(a.cert), *xb = pem_x509(b.cert);
  const ASN1_INTEGER *sa = X509_get0_serialNumber(xa);
  const ASN1_INTEGER *sb = X509_get0_serialNumber(xb);
  CHECK(ASN1_INTEGER_cmp(sa, sb) != 0);
  BIGNUM *bn = ASN1_INTEGER_to_BN(sa, NULL);
  CHECK(!BN_is_negative(bn) && BN_num_bits(bn) > 64);
  BN_free(bn);
  X509_free(xa);
  X509_free(xb);
}

/* Flips one base64 character at many places of the CSR's body: each copy
 * must be refused with 400 (broken DER, or a signature that no longer
 * matches). */
TEST(ca_tampered_csr_refused) {
  cleanup_pki struct pki p = {0};
  CHECK_INT_EQ(make_pki(&p, CA_ROLE_WORKER, DAY_NS), 0);
  const char *body = strchr(p.csr, '\n') + 1;
  const char *end = strstr(body, "-----END");
  CHECK(end != NULL);
  size_t pos[1024], npos = 0;
  for (const char *c = body; c < end; c++)
    if (*c != '\n' && *c != '=' && npos < ARRAY_SIZE(pos))
      pos[npos++] = (size_t)(c - p.csr);
  CHECK(npos > 100);
  npos -= 4; /* the last quantum may carry ignored padding bits */
  int tried = 0;
  for (size_t i = 0; i < npos; i += 3) {
    cleanup_free char *bad = xstrdup(p.csr);
    bad[pos[i]] = bad[pos[i]] == 'A' ? 'B' : 'A';
    cleanup_free char *cert = NULL;
    sh_err err = {0};
    int r = ca_sign_csr(p.root, p.root_key, bad, NODE_ID, CA_ROLE_WORKER,
                        CLUSTER_ID, DAY_NS, &cert, &err);
    if (r >= 0)
      FAIL_("tampered CSR at offset %zu was signed", pos[i]);
    CHECK_INT_EQ(err.status, 400);
    CHECK(cert == NULL);
    tried++;
  }
  CHECK(tried > 30);
  CHECK_INT_EQ(ERR_peek_error(), 0);
}

TEST(ca_sign_csr_bad_arguments) {
  cleanup_pki struct pki p = {0}, other = {0};
  CHECK_INT_EQ(make_pki(&p, CA_ROLE_WORKER, DAY_NS), 0);
  CHECK_INT_EQ(make_pki(&other, CA_ROLE_WORKER, DAY_NS), 0);
  sh_err err = {0};
  char *cert = NULL;
  CHECK(ca_sign_csr(p.root, p.root_key, p.csr, NODE_ID, "swarm-admin",
                    CLUSTER_ID, DAY_NS, &cert, &err) < 0);
  CHECK_INT_EQ(err.status, 400);
  CHECK(ca_sign_csr(p.root, p.root_key, p.csr, "", CA_ROLE_WORKER, CLUSTER_ID,
                    DAY_NS, &cert, &err) < 0);
  CHECK(ca_sign_csr(p.root, p.root_key, p.csr, "a,DNS:evil", CA_ROLE_WORKER,
                    CLUSTER_ID, DAY_NS, &cert, &err) < 0);
  CHECK_INT_EQ(err.status, 400);
  CHECK(ca_sign_csr(p.root, p.root_key, p.csr, NODE_ID, CA_ROLE_WORKER, NULL,
                    DAY_NS, &cert, &err) < 0);
  CHECK(ca_sign_csr(p.root, p.root_key, p.csr, NODE_ID, CA_ROLE_WORKER,
                    CLUSTER_ID, 0, &cert, &err) < 0);
  CHECK_INT_EQ(err.status, 400);
  /* A root key that is not the root certificate's. */
  CHECK(ca_sign_csr(p.root, other.root_key, p.csr, NODE_ID, CA_ROLE_WORKER,
                    CLUSTER_ID, DAY_NS, &cert, &err) < 0);
  CHECK_INT_EQ(err.status, 500);
  CHECK(cert == NULL);
}

TEST(ca_garbage_pem_is_an_error) {
  cleanup_pki struct pki p = {0};
  CHECK_INT_EQ(make_pki(&p, CA_ROLE_WORKER, DAY_NS), 0);
  cleanup_free char *truncated = xstrndup(p.cert, strlen(p.cert) / 2);
  const char *junk[] = {
      "",
      "garbage",
      "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
      "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
      "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
      truncated,
      p.csr, /* the wrong kind of PEM */
      NULL,
  };
  for (size_t i = 0; i < ARRAY_SIZE(junk); i++) {
    const char *j = junk[i];
    sh_err err = {0};
    struct ca_cert_info info;
    char digest[CA_DIGEST_LEN + 1];
    char *out = NULL;
    CHECK(ca_cert_info(j, &info, &err) < 0);
    CHECK_INT_EQ(err.status, 400);
    CHECK(ca_cert_verify(j, p.root, &err) < 0);
    CHECK(ca_cert_verify(p.cert, j, &err) < 0);
    CHECK(ca_key_matches(j, p.key, &err) < 0);
    CHECK(ca_key_matches(p.cert, j, &err) < 0);
    CHECK(ca_root_digest(j, digest, &err) < 0);
    CHECK(ca_token_new(j, &out, &err) < 0);
    /* For the CSR argument, the wrong kind of PEM is a certificate. */
    CHECK(ca_sign_csr(p.root, p.root_key, j == p.csr ? p.cert : j, NODE_ID,
                      CA_ROLE_WORKER, CLUSTER_ID, DAY_NS, &out, &err) < 0);
    CHECK_INT_EQ(err.status, 400);
    CHECK(ca_sign_csr(j, p.root_key, p.csr, NODE_ID, CA_ROLE_WORKER, CLUSTER_ID,
                      DAY_NS, &out, &err) < 0);
    CHECK(ca_sign_csr(p.root, j, p.csr, NODE_ID, CA_ROLE_WORKER, CLUSTER_ID,
                      DAY_NS, &out, &err) < 0);
    CHECK(out == NULL);
    CHECK(ca_tls_server_ctx(j, p.key, p.root, true, &err) == NULL);
    CHECK(ca_tls_server_ctx(p.cert, j, p.root, true, &err) == NULL);
    CHECK(ca_tls_server_ctx(p.cert, p.key, j, true, &err) == NULL);
    CHECK(err.msg[0] != '\0');
    /* Failures leave no OpenSSL errors behind for the next TLS call. */
    CHECK_INT_EQ(ERR_peek_error(), 0);
  }
}

/* sha256(PEM text) in base 36 computed independently, with BIGNUM
 * division; swarmkit hashes the PEM bytes a joining node receives. */
static void ref_digest(const char *pem, char out[CA_DIGEST_LEN + 1]) {
  unsigned char md[32];
  EVP_Digest(pem, strlen(pem), md, NULL, EVP_sha256(), NULL);
  BIGNUM *bn = BN_bin2bn(md, 32, NULL);
  for (int i = CA_DIGEST_LEN - 1; i >= 0; i--)
    out[i] = "0123456789abcdefghijklmnopqrstuvwxyz"[BN_div_word(bn, 36)];
  out[CA_DIGEST_LEN] = '\0';
  BN_free(bn);
}

TEST(ca_root_digest_format) {
  cleanup_pki struct pki p = {0}, other = {0};
  CHECK_INT_EQ(make_pki(&p, CA_ROLE_WORKER, DAY_NS), 0);
  CHECK_INT_EQ(make_pki(&other, CA_ROLE_WORKER, DAY_NS), 0);
  sh_err err = {0};
  char d1[CA_DIGEST_LEN + 1], d2[CA_DIGEST_LEN + 1], d3[CA_DIGEST_LEN + 1];
  char ref[CA_DIGEST_LEN + 1];
  CHECK_INT_EQ(ca_root_digest(p.root, d1, &err), 0);
  CHECK_INT_EQ(strlen(d1), CA_DIGEST_LEN);
  for (int i = 0; i < CA_DIGEST_LEN; i++)
    CHECK((d1[i] >= '0' && d1[i] <= '9') || (d1[i] >= 'a' && d1[i] <= 'z'));
  ref_digest(p.root, ref);
  CHECK_STR_EQ(d1, ref);
  /* Stable for the same bytes; other bytes (even of the same certificate)
   * are another digest, as in swarmkit. */
  CHECK_INT_EQ(ca_root_digest(p.root, d2, &err), 0);
  CHECK_STR_EQ(d1, d2);
  cleanup_free char *spaced = xasprintf("\n%s\n", p.root);
  CHECK_INT_EQ(ca_root_digest(spaced, d2, &err), 0);
  CHECK(strcmp(d1, d2) != 0);
  char hex[65];
  ca_digest_hex(d1, hex);
  unsigned char md[32];
  EVP_Digest(p.root, strlen(p.root), md, NULL, EVP_sha256(), NULL);
  char want[65];
  for (int i = 0; i < 32; i++)
    snprintf(want + 2 * i, 3, "%02x", md[i]);
  CHECK_STR_EQ(hex, want);
  CHECK_INT_EQ(ca_root_digest(other.root, d3, &err), 0);
  CHECK(strcmp(d1, d3) != 0);
}

TEST(ca_token_round_trip) {
  cleanup_pki struct pki p = {0};
  CHECK_INT_EQ(make_pki(&p, CA_ROLE_WORKER, DAY_NS), 0);
  sh_err err = {0};
  cleanup_free char *t1 = NULL;
  cleanup_free char *t2 = NULL;
  CHECK_INT_EQ(ca_token_new(p.root, &t1, &err), 0);
  CHECK_INT_EQ(ca_token_new(p.root, &t2, &err), 0);
  CHECK(str_has_prefix(t1, "SWMTKN-1-"));
  CHECK_INT_EQ(strlen(t1), 9 + CA_DIGEST_LEN + 1 + CA_SECRET_LEN);
  char rd[CA_DIGEST_LEN + 1], d[CA_DIGEST_LEN + 1], s1[CA_SECRET_LEN + 1],
      d2[CA_DIGEST_LEN + 1], s2[CA_SECRET_LEN + 1];
  CHECK_INT_EQ(ca_root_digest(p.root, rd, &err), 0);
  CHECK_INT_EQ(ca_token_parse(t1, d, s1, &err), 0);
  CHECK_STR_EQ(d, rd);
  CHECK_INT_EQ(strlen(s1), CA_SECRET_LEN);
  CHECK(strcmp(t1 + strlen(t1) - CA_SECRET_LEN, s1) == 0);
  CHECK_INT_EQ(ca_token_parse(t2, d2, s2, &err), 0);
  CHECK_STR_EQ(d2, rd);
  CHECK(strcmp(s1, s2) != 0); /* fresh secret every time */
  /* Parsing what we print again gives the same parts. */
  cleanup_free char *again = xasprintf("SWMTKN-1-%s-%s", d, s1);
  CHECK_STR_EQ(again, t1);
}

TEST(ca_token_malformed) {
  char d[CA_DIGEST_LEN + 1], s[CA_SECRET_LEN + 1];
  char D[CA_DIGEST_LEN + 1], S[CA_SECRET_LEN + 1];
  memset(D, '1', CA_DIGEST_LEN);
  D[CA_DIGEST_LEN] = '\0';
  memset(S, '1', CA_SECRET_LEN);
  S[CA_SECRET_LEN] = '\0';
  sh_err err = {0};
  cleanup_free char *good = xasprintf("SWMTKN-1-%s-%s", D, S);
  CHECK_INT_EQ(ca_token_parse(good, d, s, &err), 0);

  char *bad[32];
  int n = 0;
  bad[n++] = xstrdup("");
  bad[n++] = xstrdup("SWMTKN-1-x");
  bad[n++] = xstrdup("SWMTKN-1-");
  bad[n++] = xasprintf("SWMTKN-2-%s-%s", D, S);
  bad[n++] = xasprintf("SWMTKN-2-1-%s-%s", D, S); /* FIPS v2: unsupported */
  bad[n++] = xasprintf("SWMTKX-1-%s-%s", D, S);
  bad[n++] = xasprintf("swmtkn-1-%s-%s", D, S);
  bad[n++] = xasprintf("SWMTKN-1-%.49s-%s", D, S);
  bad[n++] = xasprintf("SWMTKN-1-%sa-%s", D, S);
  bad[n++] = xasprintf("SWMTKN-1-%s-%.24s", D, S);
  bad[n++] = xasprintf("SWMTKN-1-%s-%s1", D, S);
  bad[n++] = xasprintf("SWMTKN-1-%s-%s-x", D, S);
  bad[n++] = xasprintf("SWMTKN-1-%s--%.24s", D, S);
  bad[n++] = xasprintf("SWMTKN-1-%s-%s\n", D, S);
  bad[n++] = xasprintf(" SWMTKN-1-%s-%s", D, S);
  bad[n++] = xasprintf("SWMTKN-1-%s_%s", D, S);
  /* Bad characters at the right length: upper case, punctuation, dash. */
  bad[n++] = xasprintf("SWMTKN-1-A%.49s-%s", D, S);
  bad[n++] = xasprintf("SWMTKN-1-%s-%.24s!", D, S);
  bad[n++] = xasprintf("SWMTKN-1-%.25s-%.24s-%s", D, D, S);
  bad[n++] = xasprintf("SWMTKN-1-%s-%.12s-%.12s", D, S, S);
  bad[n++] = xasprintf("SWMTKN-1-%s-%.12s%c%.12s", D, S, '\0', S);
  /* Right syntax, but numbers too large for sha256 / 128 bits. */
  bad[n++] = xasprintf("SWMTKN-1-%s-%s",
                       "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", S);
  bad[n++] = xasprintf("SWMTKN-1-%s-%s", D, "zzzzzzzzzzzzzzzzzzzzzzzzz");
  /* 2^256 and 2^128: one past the largest values. */
  bad[n++] = xasprintf("SWMTKN-1-%s-%s",
                       "6dp5qcb22im238nr3wvp0ic7q99w035jmy2iw7i6n43d37jtog", S);
  bad[n++] = xasprintf("SWMTKN-1-%s-%s", D, "f5lxx1zz5pnorynqglhzmsp34");
  for (int i = 0; i < n; i++) {
    sh_err e = {0};
    int r = ca_token_parse(bad[i], d, s, &e);
    if (r >= 0)
      FAIL_("token \"%s\" was accepted", bad[i]);
    CHECK_INT_EQ(e.status, 400);
    CHECK_STR_EQ(e.msg, "invalid join token");
    free(bad[i]);
  }
  sh_err e = {0};
  CHECK(ca_token_parse(NULL, d, s, &e) < 0);
  CHECK_INT_EQ(e.status, 400);
  /* Largest values that fit are fine: 2^256-1 and 2^128-1. */
  cleanup_free char *max = xasprintf(
      "SWMTKN-1-%s-%s", "6dp5qcb22im238nr3wvp0ic7q99w035jmy2iw7i6n43d37jtof",
      "f5lxx1zz5pnorynqglhzmsp33");
  CHECK_INT_EQ(ca_token_parse(max, d, s, &e), 0);
}

TEST(ca_token_equal_works) {
  CHECK(ca_token_equal("SWMTKN-1-abc-def", "SWMTKN-1-abc-def"));
  CHECK(!ca_token_equal("SWMTKN-1-abc-def", "SWMTKN-1-abc-deg"));
  CHECK(!ca_token_equal("SWMTKN-1-abc-def", "SWMTKN-1-abc-de"));
  CHECK(!ca_token_equal("SWMTKN-1-abc-de", "SWMTKN-1-abc-def"));
  CHECK(!ca_token_equal("", "x"));
  CHECK(ca_token_equal("", ""));
  CHECK(!ca_token_equal(NULL, "x"));
  CHECK(!ca_token_equal("x", NULL));
  CHECK(!ca_token_equal(NULL, NULL));
}

/* ---- TLS: handshakes in memory over a BIO pair ---- */

static SSL_CTX *client_ctx(const char *root, const char *cert,
                           const char *key) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  X509 *r = pem_x509(root);
  X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), r);
  X509_free(r);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  if (cert) {
    X509 *c = pem_x509(cert);
    EVP_PKEY *k = pem_key(key);
    SSL_CTX_use_certificate(ctx, c);
    SSL_CTX_use_PrivateKey(ctx, k);
    X509_free(c);
    EVP_PKEY_free(k);
  }
  return ctx;
}

/* Runs both ends until both finish (1) or either fails (0). The server's
 * SSL is returned for inspection; the caller frees it. */
static int handshake(SSL_CTX *sctx, SSL_CTX *cctx, SSL **server_out) {
  SSL *srv = SSL_new(sctx), *cli = SSL_new(cctx);
  BIO *bs = NULL, *bc = NULL;
  BIO_new_bio_pair(&bs, 0, &bc, 0);
  SSL_set_bio(srv, bs, bs);
  SSL_set_bio(cli, bc, bc);
  SSL_set_accept_state(srv);
  SSL_set_connect_state(cli);
  SSL_set1_host(cli, CA_ROLE_MANAGER); /* as swarmkit's clients do */
  bool sdone = false, cdone = false, failed = false;
  for (int i = 0; i < 50 && !failed && !(sdone && cdone); i++) {
    SSL *ends[2] = {cli, srv};
    bool *done[2] = {&cdone, &sdone};
    for (int j = 0; j < 2 && !failed; j++) {
      if (*done[j])
        continue;
      int r = SSL_do_handshake(ends[j]);
      if (r == 1) {
        *done[j] = true;
      } else {
        int e = SSL_get_error(ends[j], r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
          failed = true;
      }
    }
  }
  ERR_clear_error();
  SSL_free(cli);
  if (server_out)
    *server_out = srv;
  else
    SSL_free(srv);
  return !failed && sdone && cdone;
}

TEST(ca_tls_mutual_auth) {
  cleanup_pki struct pki srv = {0}, cli = {0}, foreign = {0};
  CHECK_INT_EQ(make_pki(&srv, CA_ROLE_MANAGER, DAY_NS), 0);
  CHECK_INT_EQ(make_pki(&foreign, CA_ROLE_WORKER, DAY_NS), 0);
  /* A worker certificate from the server's own CA. */
  sh_err err = {0};
  memset(&cli, 0, sizeof cli);
  CHECK_INT_EQ(ca_csr_create(&cli.key, &cli.csr, &err), 0);
  CHECK_INT_EQ(ca_sign_csr(srv.root, srv.root_key, cli.csr,
                           "workernode0000000000000001", CA_ROLE_WORKER,
                           CLUSTER_ID, DAY_NS, &cli.cert, &err),
               0);

  SSL_CTX *sctx = ca_tls_server_ctx(srv.cert, srv.key, srv.root, true, &err);
  CHECK(sctx != NULL);
  CHECK_INT_EQ(SSL_CTX_get_min_proto_version(sctx), TLS1_2_VERSION);

  /* Valid client certificate: the server sees a verified peer. */
  SSL_CTX *cctx = client_ctx(srv.root, cli.cert, cli.key);
  SSL *s = NULL;
  CHECK_INT_EQ(handshake(sctx, cctx, &s), 1);
  CHECK_INT_EQ(SSL_get_verify_result(s), X509_V_OK);
  CHECK(SSL_version(s) >= TLS1_2_VERSION);
  X509 *peer = SSL_get0_peer_certificate(s);
  CHECK(peer != NULL);
  struct ca_cert_info info;
  CHECK_INT_EQ(ca_x509_info(peer, &info, &err), 0);
  CHECK_STR_EQ(info.cn, "workernode0000000000000001");
  CHECK_STR_EQ(info.ou, CA_ROLE_WORKER);
  CHECK_STR_EQ(info.o, CLUSTER_ID);
  SSL_free(s);
  SSL_CTX_free(cctx);

  /* Certificate from another swarm's CA: refused. */
  cctx = client_ctx(srv.root, foreign.cert, foreign.key);
  CHECK_INT_EQ(handshake(sctx, cctx, NULL), 0);
  SSL_CTX_free(cctx);

  /* No certificate at all: refused when required. */
  cctx = client_ctx(srv.root, NULL, NULL);
  CHECK_INT_EQ(handshake(sctx, cctx, NULL), 0);
  SSL_CTX_free(cctx);

  /* A client that does not trust the server's CA gives up too (sanity
   * check that the harness can fail on the client side). */
  cctx = client_ctx(foreign.root, cli.cert, cli.key);
  CHECK_INT_EQ(handshake(sctx, cctx, NULL), 0);
  SSL_CTX_free(cctx);
  SSL_CTX_free(sctx);
}

TEST(ca_tls_optional_client_cert) {
  cleanup_pki struct pki srv = {0}, foreign = {0};
  sh_err err = {0};
  CHECK_INT_EQ(make_pki(&srv, CA_ROLE_MANAGER, DAY_NS), 0);
  CHECK_INT_EQ(make_pki(&foreign, CA_ROLE_WORKER, DAY_NS), 0);
  SSL_CTX *sctx = ca_tls_server_ctx(srv.cert, srv.key, srv.root, false, &err);
  CHECK(sctx != NULL);

  /* No certificate: allowed (join/CA endpoints), and no peer is seen. */
  SSL_CTX *cctx = client_ctx(srv.root, NULL, NULL);
  SSL *s = NULL;
  CHECK_INT_EQ(handshake(sctx, cctx, &s), 1);
  CHECK(SSL_get0_peer_certificate(s) == NULL);
  SSL_free(s);
  SSL_CTX_free(cctx);

  /* A certificate that does not chain to the root still fails. */
  cctx = client_ctx(srv.root, foreign.cert, foreign.key);
  CHECK_INT_EQ(handshake(sctx, cctx, NULL), 0);
  SSL_CTX_free(cctx);

  /* A valid one is verified. */
  cctx = client_ctx(srv.root, srv.cert, srv.key);
  CHECK_INT_EQ(handshake(sctx, cctx, &s), 1);
  CHECK(SSL_get0_peer_certificate(s) != NULL);
  CHECK_INT_EQ(SSL_get_verify_result(s), X509_V_OK);
  SSL_free(s);
  SSL_CTX_free(cctx);
  SSL_CTX_free(sctx);
}

TEST(ca_tls_server_ctx_key_mismatch) {
  cleanup_pki struct pki a = {0}, b = {0};
  sh_err err = {0};
  CHECK_INT_EQ(make_pki(&a, CA_ROLE_MANAGER, DAY_NS), 0);
  CHECK_INT_EQ(make_pki(&b, CA_ROLE_MANAGER, DAY_NS), 0);
  CHECK(ca_tls_server_ctx(a.cert, b.key, a.root, true, &err) == NULL);
  CHECK_INT_EQ(err.status, 400);
  CHECK_INT_EQ(ERR_peek_error(), 0);
}

/* ---- root CA rotation: the cross-signed chain ---- */

struct rotation_pki {
  struct pki old;            /* old root, a manager certificate from it */
  char *root2, *key2;        /* the new root */
  char *cross;               /* the new root signed by the old key */
  char *nkey, *ncsr, *leaf2; /* a manager certificate from the new key */
  char *bundle;              /* leaf2 + cross, as a rotation hands out */
};

static void rotation_pki_free(struct rotation_pki *p) {
  pki_free(&p->old);
  free(p->root2);
  free(p->key2);
  free(p->cross);
  free(p->nkey);
  free(p->ncsr);
  free(p->leaf2);
  free(p->bundle);
}
#define cleanup_rotation __attribute__((cleanup(rotation_pki_free)))

static int make_rotation(struct rotation_pki *p) {
  sh_err err = {0};
  memset(p, 0, sizeof *p);
  if (make_pki(&p->old, CA_ROLE_MANAGER, DAY_NS) < 0 ||
      ca_root_create(&p->root2, &p->key2, &err) < 0 ||
      ca_cross_sign(p->old.root, p->old.root_key, p->root2, &p->cross, &err) <
          0 ||
      ca_csr_create(&p->nkey, &p->ncsr, &err) < 0 ||
      ca_sign_csr(p->root2, p->key2, p->ncsr, "managernode00000000000002",
                  CA_ROLE_MANAGER, CLUSTER_ID, DAY_NS, &p->leaf2, &err) < 0) {
    fprintf(stderr, "    make_rotation: %s\n", err.msg);
    return -1;
  }
  p->bundle = xasprintf("%s%s", p->leaf2, p->cross);
  return 0;
}

TEST(ca_cross_signed_chain_verifies_both_ways) {
  cleanup_rotation struct rotation_pki p;
  CHECK_INT_EQ(make_rotation(&p), 0);
  sh_err err = {0};
  /* Both roots are "swarm-ca": the key identifiers tell them apart. */
  CHECK_INT_EQ(ca_cert_verify(p.bundle, p.old.root, &err), 0);
  CHECK_INT_EQ(ca_cert_verify(p.bundle, p.root2, &err), 0);
  CHECK_INT_EQ(ca_cert_verify(p.old.cert, p.old.root, &err), 0);
  /* Without the cross-signed certificate the new leaf does not reach the
   * old root, and an old certificate never reaches the new root. */
  CHECK(ca_cert_verify(p.leaf2, p.old.root, &err) < 0);
  CHECK_INT_EQ(err.status, 403);
  CHECK(ca_cert_verify(p.old.cert, p.root2, &err) < 0);
  /* The cross-signed certificate is the old root's child, not a root. */
  CHECK(ca_cert_verify(p.cross, p.old.root, &err) == 0);
  CHECK(ca_cert_verify(p.cross, p.root2, &err) < 0);

  /* The issuer a node reports is the new root's, through either root. */
  struct ca_issuer want = {0}, old = {0}, via_old = {0}, via_new = {0},
                   have_old = {0};
  CHECK_INT_EQ(ca_cert_facts(p.root2, &want, &err), 0);
  CHECK_INT_EQ(ca_cert_facts(p.old.root, &old, &err), 0);
  CHECK_INT_EQ(ca_cert_issuer(p.bundle, p.old.root, &via_old, &err), 0);
  CHECK_INT_EQ(ca_cert_issuer(p.bundle, p.root2, &via_new, &err), 0);
  CHECK_INT_EQ(ca_cert_issuer(p.old.cert, p.old.root, &have_old, &err), 0);
  bool ok =
      ca_issuer_equal(&via_old, &want) && ca_issuer_equal(&via_new, &want) &&
      ca_issuer_equal(&have_old, &old) && !ca_issuer_equal(&have_old, &want) &&
      strcmp(want.subject, old.subject) == 0; /* same name */
  ca_issuer_clear(&want);
  ca_issuer_clear(&old);
  ca_issuer_clear(&via_old);
  ca_issuer_clear(&via_new);
  ca_issuer_clear(&have_old);
  CHECK(ok);
}

TEST(ca_cross_signed_chain_over_tls) {
  cleanup_rotation struct rotation_pki p;
  CHECK_INT_EQ(make_rotation(&p), 0);
  sh_err err = {0};
  struct {
    const char *srv_cert, *srv_key, *srv_root, *cli_cert, *cli_key, *cli_root;
    int want;
  } cases[] = {
      /* During the rotation everyone trusts the old root: a new server
       * sends the chain to an old client, and the other way round. */
      {p.bundle, p.nkey, p.old.root, p.old.cert, p.old.key, p.old.root, 1},
      {p.old.cert, p.old.key, p.old.root, p.bundle, p.nkey, p.old.root, 1},
      {p.bundle, p.nkey, p.old.root, p.bundle, p.nkey, p.old.root, 1},
      /* Without the chain an old-root client cannot verify. */
      {p.leaf2, p.nkey, p.old.root, p.old.cert, p.old.key, p.old.root, 0},
      /* After it: the new root only; an old certificate is refused. */
      {p.bundle, p.nkey, p.root2, p.bundle, p.nkey, p.root2, 1},
      {p.bundle, p.nkey, p.root2, p.old.cert, p.old.key, p.root2, 0},
      {p.bundle, p.nkey, p.root2, p.old.cert, p.old.key, p.old.root, 0},
      /* A node that has not heard of the end yet still talks. */
      {p.bundle, p.nkey, p.root2, p.bundle, p.nkey, p.old.root, 1},
  };
  for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
    SSL_CTX *sctx = ca_tls_server_ctx(cases[i].srv_cert, cases[i].srv_key,
                                      cases[i].srv_root, true, &err);
    SSL_CTX *cctx = tlsconn_client_ctx(cases[i].cli_cert, cases[i].cli_key,
                                       cases[i].cli_root, &err);
    int got = sctx && cctx ? handshake(sctx, cctx, NULL) : -1;
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    if (got != cases[i].want)
      FAIL_("case %zu: handshake %d, want %d", i, got, cases[i].want);
  }
}

/* A self-signed certificate for ca_root_check: CA or not, valid from
 * now + nb_sec to now + na_sec. */
static void make_root_cert(bool ca, long nb_sec, long na_sec, char **cert,
                           char **key) {
  EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  X509 *x = X509_new();
  X509_set_version(x, X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
  X509_gmtime_adj(X509_getm_notBefore(x), nb_sec);
  X509_gmtime_adj(X509_getm_notAfter(x), na_sec);
  X509_NAME *n = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
                             (const unsigned char *)"my-ca", -1, -1, 0);
  X509_set_issuer_name(x, n);
  X509_set_pubkey(x, k);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
  X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints,
                                          ca ? "critical,CA:TRUE" : "CA:FALSE");
  X509_add_ext(x, e, -1);
  X509_EXTENSION_free(e);
  e = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_key_identifier, "hash");
  X509_add_ext(x, e, -1);
  X509_EXTENSION_free(e);
  X509_sign(x, k, EVP_sha256());
  BIO *b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, x);
  char *data = NULL;
  long len = BIO_get_mem_data(b, &data);
  *cert = xstrndup(data, (size_t)len);
  BIO_free(b);
  b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
  len = BIO_get_mem_data(b, &data);
  *key = xstrndup(data, (size_t)len);
  BIO_free(b);
  X509_free(x);
  EVP_PKEY_free(k);
}

TEST(ca_root_check_swarmkit_rules) {
  const long YEAR = 365L * 24 * 3600;
  cleanup_free char *good = NULL, *good_key = NULL, *other = NULL,
                    *other_key = NULL, *leafish = NULL, *leafish_key = NULL,
                    *expired = NULL, *expired_key = NULL, *soon = NULL,
                    *soon_key = NULL;
  make_root_cert(true, -3600, 10 * YEAR, &good, &good_key);
  make_root_cert(true, -3600, 10 * YEAR, &other, &other_key);
  make_root_cert(false, -3600, 10 * YEAR, &leafish, &leafish_key);
  make_root_cert(true, -2 * YEAR, -YEAR, &expired, &expired_key);
  make_root_cert(true, -3600, YEAR / 2, &soon, &soon_key);
  sh_err err = {0};
  bool is_ca = false;
  CHECK_INT_EQ(ca_root_check(good, good_key, &is_ca, &err), 0);
  CHECK(is_ca);
  CHECK_INT_EQ(ca_root_check(leafish, leafish_key, &is_ca, &err), 0);
  CHECK(!is_ca);
  CHECK(ca_root_check(good, other_key, &is_ca, &err) < 0);
  CHECK_STR_EQ(err.msg, "certificate key mismatch");
  CHECK(ca_root_check(good, "not a key", &is_ca, &err) < 0);
  CHECK_STR_EQ(err.msg, "malformed private key");
  CHECK(ca_root_check(expired, expired_key, &is_ca, &err) < 0);
  CHECK_STR_EQ(err.msg, "error while validating Root CA Certificate: x509: "
                        "certificate has expired or is not yet valid");
  CHECK(ca_root_check(soon, soon_key, &is_ca, &err) < 0);
  CHECK_STR_EQ(err.msg, "CA certificate expires too soon");
  cleanup_free char *two = xasprintf("%s%s", good, other);
  CHECK(ca_root_check(two, good_key, &is_ca, &err) < 0);
  CHECK_STR_EQ(err.msg, "the desired CA certificate cannot contain multiple "
                        "certificates");
  CHECK(ca_root_check("junk", good_key, &is_ca, &err) < 0);
  CHECK_INT_EQ(err.status, 400);
  /* Not a CA: it cannot be cross-signed. */
  cleanup_pki struct pki p = {0};
  CHECK_INT_EQ(make_pki(&p, CA_ROLE_MANAGER, DAY_NS), 0);
  cleanup_free char *cross = NULL;
  CHECK(ca_cross_sign(p.root, p.root_key, leafish, &cross, &err) < 0);
  CHECK_STR_EQ(err.msg, "certificate not a CA");
  CHECK(cross == NULL);
  CHECK_INT_EQ(ERR_peek_error(), 0);
}
