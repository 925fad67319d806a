/* The node's key file (<data-root>/swarm/certificates/swarm-node.key), as
 * swarmkit keeps it: the TLS private key as PEM, with the raft data
 * encryption key (DEK) in a PEM header, "raft-dek: <base64>".
 *
 * Without a key-encryption key (KEK, autolock off) the private key is a
 * plain PKCS#8 PEM and the DEK header holds the 32 raw bytes. With a KEK
 * (autolock on: the unlock key) the private key is an encrypted PKCS#8 PEM
 * (AES-256-CBC, PBKDF2 from the KEK) and the DEK header holds
 * nonce | AES-256-GCM(DEK) | tag under the KEK. So the raft files alone
 * never reveal the store, and with autolock neither does the whole data
 * root without the unlock key. */
#ifndef SHOAL_CA_KEYFILE_H
#define SHOAL_CA_KEYFILE_H

#include <stdbool.h>
#include <stddef.h>

struct sh_err;

#define KEYFILE_DEK_LEN 32
#define KEYFILE_KEK_LEN 32

struct keyfile {
  char *key_pem; /* the private key, plain PEM */
  unsigned char dek[KEYFILE_DEK_LEN];
  bool has_dek; /* false: a key file from before encryption at rest */
  /* The store version of the cluster object whose unlock key (or its
   * absence) the file is sealed for, as swarmkit's kek-version: older
   * states replayed from the log do not undo a newer sealing. */
  unsigned long long kek_version;
};

/* The file's text for key_pem and dek, the key material sealed under kek
 * (KEYFILE_KEK_LEN bytes) when kek is non-NULL. */
int keyfile_encode(const char *key_pem, const unsigned char *dek,
                   const unsigned char *kek, unsigned long long kek_version,
                   char **out, struct sh_err *err);
/* True when text needs a KEK to be read (autolock). */
bool keyfile_locked(const char *text);
/* Reads the file's text; kek is needed (and only used) when it is locked:
 * 423 without one, 400 "invalid key" when it does not open it. */
int keyfile_decode(const char *text, const unsigned char *kek,
                   struct keyfile *out, struct sh_err *err);
/* Wipes and frees what keyfile_decode filled. */
void keyfile_clear(struct keyfile *kf);

/* Fresh random key material (RAND_bytes), n bytes. */
int keyfile_random(unsigned char *out, size_t n, struct sh_err *err);

/* Unlock keys as Docker shows them: "SWMKEY-1-" + base64 (no padding) of
 * the 32-byte KEK. */
#define KEYFILE_UNLOCK_PREFIX "SWMKEY-1-"
char *keyfile_unlock_key_format(const unsigned char kek[KEYFILE_KEK_LEN]);
/* -1 with 400 "invalid key string" (swarmkit's text) when s is not one. */
int keyfile_unlock_key_parse(const char *s, unsigned char kek[KEYFILE_KEK_LEN],
                             struct sh_err *err);

#endif
