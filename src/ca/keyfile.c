/* The node key file with its raft DEK header; see keyfile.h. */
#include "ca/keyfile.h"

#include "core/err.h"
#include "core/util.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#define DEK_HEADER "raft-dek: "
#define KEK_VERSION_HEADER "kek-version: "
#define DEK_AAD "shoal raft-dek v1"
#define WRAPPED_LEN (12 + KEYFILE_DEK_LEN + 16)
#define PEM_ENCRYPTED "ENCRYPTED PRIVATE KEY"

int keyfile_random(unsigned char *out, size_t n, sh_err *err) {
  if (RAND_bytes(out, (int)n) != 1)
    return sh_error(err, 500, "no random bytes for key material");
  return 0;
}

static char *b64(const unsigned char *p, size_t n) {
  char *s = xcalloc(1, 4 * ((n + 2) / 3) + 1);
  EVP_EncodeBlock((unsigned char *)s, p, (int)n);
  return s;
}

/* Decodes standard base64 with or without padding into out (cap bytes);
 * the decoded length, or -1. */
static int unb64(const char *s, size_t slen, unsigned char *out, size_t cap) {
  if (slen == 0 || slen > 4 * ((cap + 2) / 3) + 4)
    return -1;
  char in[256];
  if (slen + 4 > sizeof in)
    return -1;
  memcpy(in, s, slen);
  size_t pad = 0;
  while ((slen + pad) % 4)
    in[slen + pad++] = '=';
  unsigned char tmp[256];
  int n = EVP_DecodeBlock(tmp, (unsigned char *)in, (int)(slen + pad));
  if (n < 0)
    return -1;
  size_t eq = 0;
  for (size_t i = slen + pad; i > 0 && in[i - 1] == '='; i--)
    eq++;
  n -= (int)eq;
  if (n < 0 || (size_t)n > cap)
    return -1;
  memcpy(out, tmp, (size_t)n);
  OPENSSL_cleanse(tmp, sizeof tmp);
  return n;
}

static int gcm(bool enc, const unsigned char *key, const unsigned char *nonce,
               const unsigned char *in, unsigned char *out,
               unsigned char *tag) {
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  int l = 0;
  int ok;
  if (enc)
    ok = c && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce) &&
         EVP_EncryptUpdate(c, NULL, &l, (const unsigned char *)DEK_AAD,
                           (int)strlen(DEK_AAD)) &&
         EVP_EncryptUpdate(c, out, &l, in, KEYFILE_DEK_LEN) &&
         EVP_EncryptFinal_ex(c, out + l, &l) &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag);
  else
    ok = c && EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce) &&
         EVP_DecryptUpdate(c, NULL, &l, (const unsigned char *)DEK_AAD,
                           (int)strlen(DEK_AAD)) &&
         EVP_DecryptUpdate(c, out, &l, in, KEYFILE_DEK_LEN) &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tag) &&
         EVP_DecryptFinal_ex(c, out + l, &l) > 0;
  EVP_CIPHER_CTX_free(c);
  return ok ? 0 : -1;
}

/* The KEK as a PEM pass phrase (binary, so not through the default
 * callback, which stops at a NUL). */
static int kek_pass(char *buf, int size, int rwflag, void *u) {
  if (size < KEYFILE_KEK_LEN)
    return 0;
  memcpy(buf, u, KEYFILE_KEK_LEN);
  return KEYFILE_KEK_LEN;
}

/* One PEM block as OpenSSL's PEM_read_bio hands it out. */
struct pem_parts {
  char *name, *hdr;
  unsigned char *der;
  long len;
};

static void pem_parts_free(struct pem_parts *p) {
  if (p->der)
    OPENSSL_cleanse(p->der, (size_t)p->len);
  OPENSSL_free(p->der);
  OPENSSL_free(p->name);
  OPENSSL_free(p->hdr);
}

static char *bio_text(BIO *b) {
  char *p = NULL;
  long n = BIO_get_mem_data(b, &p);
  char *s = xcalloc(1, (size_t)n + 1);
  memcpy(s, p, (size_t)n);
  return s;
}

int keyfile_encode(const char *key_pem, const unsigned char *dek,
                   const unsigned char *kek, unsigned long long kek_version,
                   char **out, sh_err *err) {
  int rc = -1;
  BIO *in = BIO_new_mem_buf(key_pem, -1);
  EVP_PKEY *pkey = in ? PEM_read_bio_PrivateKey(in, NULL, NULL, NULL) : NULL;
  BIO *pk = BIO_new(BIO_s_mem()), *res = BIO_new(BIO_s_mem());
  struct pem_parts pp = {0};
  char *hval = NULL, *header = NULL;
  if (!pkey || !pk || !res) {
    sh_error(err, 500, "node key: not a private key");
    goto out;
  }
  int ok =
      kek ? PEM_write_bio_PKCS8PrivateKey(pk, pkey, EVP_aes_256_cbc(), NULL, 0,
                                          kek_pass, (void *)kek)
          : PEM_write_bio_PKCS8PrivateKey(pk, pkey, NULL, NULL, 0, NULL, NULL);
  if (!ok || !PEM_read_bio(pk, &pp.name, &pp.hdr, &pp.der, &pp.len)) {
    sh_error(err, 500, "node key: cannot encode");
    goto out;
  }
  if (kek) {
    unsigned char w[WRAPPED_LEN];
    if (keyfile_random(w, 12, err) < 0)
      goto out;
    if (gcm(true, kek, w, dek, w + 12, w + 12 + KEYFILE_DEK_LEN) < 0) {
      sh_error(err, 500, "node key: cannot seal the raft key");
      goto out;
    }
    hval = b64(w, sizeof w);
  } else {
    hval = b64(dek, KEYFILE_DEK_LEN);
  }
  header = xasprintf(KEK_VERSION_HEADER "%llu\n" DEK_HEADER "%s\n", kek_version,
                     hval);
  if (!PEM_write_bio(res, pp.name, header, pp.der, pp.len)) {
    sh_error(err, 500, "node key: cannot encode");
    goto out;
  }
  *out = bio_text(res);
  rc = 0;
out:
  if (hval)
    OPENSSL_cleanse(hval, strlen(hval));
  if (header)
    OPENSSL_cleanse(header, strlen(header));
  free(hval);
  free(header);
  pem_parts_free(&pp);
  BIO_free(in);
  BIO_free(pk);
  BIO_free(res);
  EVP_PKEY_free(pkey);
  return rc;
}

bool keyfile_locked(const char *text) {
  return text && strstr(text, "-----BEGIN " PEM_ENCRYPTED "-----") != NULL;
}

int keyfile_decode(const char *text, const unsigned char *kek,
                   struct keyfile *out, sh_err *err) {
  memset(out, 0, sizeof *out);
  int rc = -1;
  BIO *in = BIO_new_mem_buf(text, -1);
  BIO *bare = BIO_new(BIO_s_mem()), *plain = BIO_new(BIO_s_mem());
  struct pem_parts pp = {0};
  EVP_PKEY *pkey = NULL;
  if (!in || !bare || !plain ||
      !PEM_read_bio(in, &pp.name, &pp.hdr, &pp.der, &pp.len)) {
    sh_error(err, 500, "node key: not a PEM file");
    goto out;
  }
  bool locked = strcmp(pp.name, PEM_ENCRYPTED) == 0;
  if (locked && !kek) {
    sh_error(err, 423, "node key: locked");
    goto out;
  }
  const char *v = strstr(pp.hdr ? pp.hdr : "", KEK_VERSION_HEADER);
  if (v)
    out->kek_version = strtoull(v + strlen(KEK_VERSION_HEADER), NULL, 10);
  const char *h = strstr(pp.hdr ? pp.hdr : "", DEK_HEADER);
  if (h) {
    h += strlen(DEK_HEADER);
    size_t hl = strcspn(h, "\r\n");
    unsigned char w[WRAPPED_LEN];
    int n = unb64(h, hl, w, sizeof w);
    if (locked) {
      if (n != WRAPPED_LEN ||
          gcm(false, kek, w, w + 12, out->dek, w + 12 + KEYFILE_DEK_LEN) < 0) {
        sh_error(err, 400, "invalid key");
        goto out;
      }
    } else if (n == KEYFILE_DEK_LEN) {
      memcpy(out->dek, w, KEYFILE_DEK_LEN);
    } else {
      sh_error(err, 500, "node key: bad raft-dek header");
      goto out;
    }
    OPENSSL_cleanse(w, sizeof w);
    out->has_dek = true;
  }
  /* OpenSSL refuses PEM headers other than Proc-Type: read it bare. */
  if (!PEM_write_bio(bare, pp.name, "", pp.der, pp.len) ||
      !(pkey = PEM_read_bio_PrivateKey(bare, NULL, locked ? kek_pass : NULL,
                                       (void *)kek)) ||
      !PEM_write_bio_PrivateKey(plain, pkey, NULL, NULL, 0, NULL, NULL)) {
    sh_error(err, locked ? 400 : 500,
             locked ? "invalid key" : "node key: not a private key");
    goto out;
  }
  out->key_pem = bio_text(plain);
  rc = 0;
out:
  if (rc < 0)
    OPENSSL_cleanse(out->dek, sizeof out->dek);
  pem_parts_free(&pp);
  BIO_free(in);
  BIO_free(bare);
  BIO_free(plain);
  EVP_PKEY_free(pkey);
  return rc;
}

void keyfile_clear(struct keyfile *kf) {
  if (kf->key_pem) {
    OPENSSL_cleanse(kf->key_pem, strlen(kf->key_pem));
    free(kf->key_pem);
  }
  OPENSSL_cleanse(kf, sizeof *kf);
}

char *keyfile_unlock_key_format(const unsigned char kek[KEYFILE_KEK_LEN]) {
  cleanup_free char *s = b64(kek, KEYFILE_KEK_LEN);
  size_t n = strlen(s);
  while (n > 0 && s[n - 1] == '=')
    s[--n] = '\0';
  char *r = xasprintf(KEYFILE_UNLOCK_PREFIX "%s", s);
  OPENSSL_cleanse(s, n);
  return r;
}

int keyfile_unlock_key_parse(const char *s, unsigned char kek[KEYFILE_KEK_LEN],
                             sh_err *err) {
  size_t pl = strlen(KEYFILE_UNLOCK_PREFIX);
  if (!s || strncmp(s, KEYFILE_UNLOCK_PREFIX, pl) != 0)
    return sh_error(err, 400, "invalid key string");
  const char *b = s + pl;
  size_t bl = strlen(b);
  while (bl > 0 && (b[bl - 1] == '\n' || b[bl - 1] == '\r' || b[bl - 1] == ' '))
    bl--;
  if (unb64(b, bl, kek, KEYFILE_KEK_LEN) != KEYFILE_KEK_LEN)
    return sh_error(err, 400, "invalid key string");
  return 0;
}
