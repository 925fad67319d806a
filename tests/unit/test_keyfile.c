#include "test.h"

#include "ca/ca.h"
#include "ca/keyfile.h"
#include "core/err.h"
#include "core/util.h"

#include <stdlib.h>

static const unsigned char dek[KEYFILE_DEK_LEN] =
    "DEK-0123456789abcdef0123456789a";
static const unsigned char kek[KEYFILE_KEK_LEN] =
    "KEK-0123456789abcdef0123456789a";

TEST(keyfile_plain_round_trip) {
  sh_err err = {0};
  char *key = NULL, *csr = NULL, *text = NULL;
  CHECK_INT_EQ(ca_csr_create(&key, &csr, &err), 0);
  CHECK_INT_EQ(keyfile_encode(key, dek, NULL, 0, &text, &err), 0);
  CHECK(strstr(text, "raft-dek: ") != NULL);
  CHECK(!keyfile_locked(text));
  struct keyfile kf;
  CHECK_INT_EQ(keyfile_decode(text, NULL, &kf, &err), 0);
  CHECK(kf.has_dek);
  CHECK(memcmp(kf.dek, dek, sizeof dek) == 0);
  /* The same key comes back (as PEM of the same key). */
  char *cert_key = NULL;
  CHECK_INT_EQ(keyfile_encode(kf.key_pem, dek, NULL, 0, &cert_key, &err), 0);
  CHECK_STR_EQ(cert_key, text);
  keyfile_clear(&kf);
  free(cert_key);
  free(key);
  free(csr);
  free(text);
}

TEST(keyfile_old_file_has_no_dek) {
  sh_err err = {0};
  char *key = NULL, *csr = NULL;
  CHECK_INT_EQ(ca_csr_create(&key, &csr, &err), 0);
  struct keyfile kf;
  CHECK_INT_EQ(keyfile_decode(key, NULL, &kf, &err), 0);
  CHECK(!kf.has_dek);
  CHECK(kf.key_pem != NULL);
  keyfile_clear(&kf);
  free(key);
  free(csr);
}

TEST(keyfile_kek_round_trip_and_wrong_key) {
  sh_err err = {0};
  char *key = NULL, *csr = NULL, *text = NULL, *plain = NULL;
  CHECK_INT_EQ(ca_csr_create(&key, &csr, &err), 0);
  CHECK_INT_EQ(keyfile_encode(key, dek, kek, 7, &text, &err), 0);
  CHECK(keyfile_locked(text));
  CHECK(strstr(text, "ENCRYPTED PRIVATE KEY") != NULL);
  /* Neither the DEK nor the key shows in the file. */
  char *dek_b64 = NULL;
  CHECK_INT_EQ(keyfile_encode(key, dek, NULL, 0, &plain, &err), 0);
  dek_b64 = strstr(plain, "raft-dek: ");
  CHECK(dek_b64 != NULL);
  dek_b64[10 + 43] = '\0';
  CHECK(strstr(text, dek_b64) == NULL);

  struct keyfile kf;
  CHECK_INT_EQ(keyfile_decode(text, NULL, &kf, &err), -1);
  CHECK_INT_EQ(err.status, 423);
  unsigned char wrong[KEYFILE_KEK_LEN];
  memcpy(wrong, kek, sizeof wrong);
  wrong[5] ^= 1;
  CHECK_INT_EQ(keyfile_decode(text, wrong, &kf, &err), -1);
  CHECK_INT_EQ(err.status, 400);
  CHECK_STR_EQ(err.msg, "invalid key");
  CHECK_INT_EQ(keyfile_decode(text, kek, &kf, &err), 0);
  CHECK(kf.has_dek);
  CHECK_INT_EQ(kf.kek_version, 7);
  CHECK(memcmp(kf.dek, dek, sizeof dek) == 0);
  /* Re-encoding without the KEK (autolock off) gives the plain file. */
  char *again = NULL;
  CHECK_INT_EQ(keyfile_encode(kf.key_pem, dek, NULL, 0, &again, &err), 0);
  CHECK(!keyfile_locked(again));
  keyfile_clear(&kf);
  free(again);
  free(plain);
  free(key);
  free(csr);
  free(text);
}

TEST(keyfile_unlock_key_format) {
  sh_err err = {0};
  char *s = keyfile_unlock_key_format(kek);
  CHECK(str_has_prefix(s, "SWMKEY-1-"));
  CHECK_INT_EQ(strlen(s), 9 + 43); /* 32 bytes, base64 without padding */
  unsigned char back[KEYFILE_KEK_LEN];
  CHECK_INT_EQ(keyfile_unlock_key_parse(s, back, &err), 0);
  CHECK(memcmp(back, kek, sizeof back) == 0);
  CHECK_INT_EQ(keyfile_unlock_key_parse("SWMKEY-1-abc", back, &err), -1);
  CHECK_STR_EQ(err.msg, "invalid key string");
  CHECK_INT_EQ(keyfile_unlock_key_parse("nope", back, &err), -1);
  free(s);
}
