#include "core/id.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

void id_random(void *buf, size_t n) {
  uint8_t *p = buf;
  while (n > 0) {
    ssize_t r = getrandom(p, n, 0);
    if (r <= 0) {
      fputs("shoal: getrandom failed\n", stderr);
      abort();
    }
    p += r;
    n -= (size_t)r;
  }
}

char *base36_encode(const uint8_t *in, size_t n, int width, char *out,
                    size_t outlen) {
  static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  uint8_t num[128];
  if (n > sizeof num)
    n = sizeof num;
  memcpy(num, in, n);
  char rev[256];
  size_t len = 0;
  for (;;) {
    /* Long division of the big-endian number by 36. */
    unsigned rem = 0;
    int nonzero = 0;
    for (size_t i = 0; i < n; i++) {
      unsigned cur = rem * 256 + num[i];
      num[i] = (uint8_t)(cur / 36);
      rem = cur % 36;
      if (num[i])
        nonzero = 1;
    }
    if (len < sizeof rev)
      rev[len++] = digits[rem];
    if (!nonzero)
      break;
  }
  while ((int)len < width && len < sizeof rev)
    rev[len++] = '0';
  size_t o = 0;
  for (size_t i = len; i > 0 && o + 1 < outlen; i--)
    out[o++] = rev[i - 1];
  out[o] = '\0';
  return out;
}

void id_new(char out[ID_LEN + 1]) {
  uint8_t b[16];
  id_random(b, sizeof b);
  base36_encode(b, sizeof b, ID_LEN, out, ID_LEN + 1);
}

void id_new_hex(char out[65]) {
  uint8_t b[32];
  id_random(b, sizeof b);
  for (int i = 0; i < 32; i++)
    snprintf(out + 2 * i, 3, "%02x", b[i]);
}
