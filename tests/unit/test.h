/* Minimal unit-test harness: TEST(name) { ... } registers a test; CHECK*
 * macros record failures and return from the test; SKIP(...) says why the
 * test cannot run here and counts it as skipped, never as passed. Each test
 * runs in a forked child so a crash fails that test, not the run; under
 * ASan the child checks for leaks before it exits, so a leak fails it. */
#ifndef SHOAL_TEST_H
#define SHOAL_TEST_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef void (*test_fn)(int *failed);
void test_register(const char *name, const char *file, test_fn fn);

#define TEST(name)                                                             \
  static void test_##name(int *failed_);                                       \
  __attribute__((constructor)) static void test_reg_##name(void) {             \
    test_register(#name, __FILE__, test_##name);                               \
  }                                                                            \
  static void test_##name(int *failed_)

#define FAIL_(...)                                                             \
  do {                                                                         \
    fprintf(stderr, "    %s:%d: ", __FILE__, __LINE__);                        \
    fprintf(stderr, __VA_ARGS__);                                              \
    fputc('\n', stderr);                                                       \
    *failed_ = 1;                                                              \
    return;                                                                    \
  } while (0)

/* What a test left in *failed_: */
#define TEST_PASSED 0
#define TEST_FAILED 1
#define TEST_SKIPPED 2

#define SKIP(...)                                                              \
  do {                                                                         \
    fprintf(stderr, "    SKIP: ");                                             \
    fprintf(stderr, __VA_ARGS__);                                              \
    fputc('\n', stderr);                                                       \
    *failed_ = TEST_SKIPPED;                                                   \
    return;                                                                    \
  } while (0)

#define CHECK(c)                                                               \
  do {                                                                         \
    if (!(c))                                                                  \
      FAIL_("CHECK(%s) failed", #c);                                           \
  } while (0)

#define CHECK_INT_EQ(a, b)                                                     \
  do {                                                                         \
    long long a_ = (long long)(a), b_ = (long long)(b);                        \
    if (a_ != b_)                                                              \
      FAIL_("%s == %s: %lld != %lld", #a, #b, a_, b_);                         \
  } while (0)

#define CHECK_STR_EQ(a, b)                                                     \
  do {                                                                         \
    const char *a_ = (a), *b_ = (b);                                           \
    if (!a_ || !b_ || strcmp(a_, b_) != 0)                                     \
      FAIL_("%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)",          \
            b_ ? b_ : "(null)");                                               \
  } while (0)

/* xorshift64 for property tests: the same sequence on every run, so a
 * failure replays. */
static inline uint64_t test_rnd_next(uint64_t *st) {
  uint64_t x = *st;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *st = x;
}

static inline unsigned test_rnd(uint64_t *st, unsigned n) {
  return (unsigned)(test_rnd_next(st) % n);
}

#endif
