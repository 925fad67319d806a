/* Base64 (see b64.h): OpenSSL's block codec, with Go's strictness about
 * length and padding checked first. */
#include "core/b64.h"

#include "core/err.h"
#include "core/util.h"

#include <openssl/evp.h>

static bool b64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '+' || c == '/';
}

int b64_decode(const char *in, unsigned char **out, size_t *len, sh_err *err) {
  size_t n = strlen(in);
  size_t pad = 0;
  for (size_t i = 0; i < n; i++) {
    if (in[i] == '=' && i + 2 >= n && n % 4 == 0 &&
        (i == n - 1 || in[n - 1] == '=')) {
      pad++;
      continue;
    }
    if (!b64_char(in[i]) || pad)
      return sh_error(err, 400, "illegal base64 data at input byte %zu", i);
  }
  if (n % 4)
    return sh_error(err, 400, "illegal base64 data at input byte %zu",
                    n - n % 4);
  unsigned char *buf = xmalloc(n / 4 * 3 + 1);
  int got = n ? EVP_DecodeBlock(buf, (const unsigned char *)in, (int)n) : 0;
  if (got < 0) {
    free(buf);
    return sh_error(err, 400, "illegal base64 data at input byte 0");
  }
  *len = (size_t)got - pad;
  buf[*len] = '\0';
  *out = buf;
  return 0;
}

char *b64_encode(const void *data, size_t len) {
  char *b = xmalloc((len + 2) / 3 * 4 + 1);
  int n = EVP_EncodeBlock((unsigned char *)b, data, (int)len);
  b[n] = '\0';
  return b;
}
