#include "core/id.h"

#include <pthread.h>
#include <stdatomic.h>
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

/* IDs take their bits from a per-thread pool filled by one getrandom call
 * for every 16 of them: a node pass that replaces 2,000 tasks made 2,000
 * system calls for their IDs. A forked child starts its pool again
 * (fork_gen), so parent and child never hand out the same bits. Secrets
 * (keys, tokens) take id_random's own call. */
#define ID_POOL 256
static atomic_uint fork_gen;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static _Thread_local struct {
  uint8_t buf[ID_POOL];
  size_t left;
  unsigned gen;
} pool;

static void forked(void) {
  atomic_fetch_add(&fork_gen, 1);
}

static void watch_forks(void) {
  pthread_atfork(NULL, NULL, forked);
}

static void id_bits(uint8_t *out, size_t n) {
  pthread_once(&atfork_once, watch_forks);
  unsigned gen = atomic_load(&fork_gen);
  if (pool.gen != gen || pool.left < n) {
    id_random(pool.buf, sizeof pool.buf);
    pool.left = sizeof pool.buf;
    pool.gen = gen;
  }
  uint8_t *at = pool.buf + sizeof pool.buf - pool.left;
  memcpy(out, at, n);
  memset(at, 0, n); /* handed out once */
  pool.left -= n;
}

void id_new(char out[ID_LEN + 1]) {
  uint8_t b[16];
  id_bits(b, sizeof b);
  base36_encode(b, sizeof b, ID_LEN, out, ID_LEN + 1);
}

void id_new_hex(char out[65]) {
  uint8_t b[32];
  id_bits(b, sizeof b);
  for (int i = 0; i < 32; i++)
    snprintf(out + 2 * i, 3, "%02x", b[i]);
}
