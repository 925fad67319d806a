#include "test.h"

#include "core/err.h"
#include "core/jcbor.h"
#include "core/jsonx.h"
#include "core/util.h"

#include <stdint.h>

/* Decodes what jcbor_encode made of v; the result must equal v and
 * dump to the same JSON text (the keys' order kept). */
static bool round_trips(const json_t *v) {
  size_t len = 0;
  char *b = jcbor_encode(v, &len);
  json_t *back = NULL;
  sh_err err = {0};
  bool ok = jcbor_decode(b, len, &back, &err) == 0 && json_equal(back, v);
  if (ok) {
    char *x = jx_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY, NULL);
    char *y = jx_dumps(back, JSON_COMPACT | JSON_ENCODE_ANY, NULL);
    ok = x && y && strcmp(x, y) == 0;
    free(x);
    free(y);
  }
  json_decref(back);
  free(b);
  return ok;
}

/* Every kind at the edges of CBOR's head sizes (23/24, 255/256, 65535,
 * 2^32) and of int64. */
TEST(jcbor_round_trips_every_json_kind) {
  static const json_int_t ints[] = {0,
                                    1,
                                    23,
                                    24,
                                    255,
                                    256,
                                    65535,
                                    65536,
                                    INT64_C(4294967295),
                                    INT64_C(4294967296),
                                    INT64_MAX,
                                    -1,
                                    -24,
                                    -25,
                                    -256,
                                    -257,
                                    -65537,
                                    INT64_MIN};
  for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
    cleanup_json json_t *v = json_integer(ints[i]);
    CHECK(round_trips(v));
  }
  cleanup_json json_t *doc = json_pack(
      "{s:s, s:s, s:s#, s:f, s:f, s:b, s:b, s:n, s:{}, s:[], s:[i, s, [{}]],"
      " s:{s:{s:{s:i}}}}",
      "z", "last key first", "", "", "long", "0123456789abcdefghij0123456789",
      (int)30, "half", 0.5, "big", -1e300, "t", 1, "f", 0, "null", "empty obj",
      "empty arr", "mixed", 7, "\xc3\xa9t\xc3\xa9 \xe2\x9c\x93", "deep", "a",
      "b", "c", -3);
  CHECK(doc != NULL);
  CHECK(round_trips(doc));
  /* Longer than a one-byte length head, a map of many keys. */
  char *s300 = xmalloc(301);
  memset(s300, 'x', 300);
  s300[300] = 0;
  cleanup_json json_t *big = json_object();
  for (int i = 0; i < 300; i++) {
    char k[16];
    snprintf(k, sizeof k, "k%d", 299 - i);
    json_object_set_new(big, k, json_string(s300 + i));
  }
  free(s300);
  CHECK(round_trips(big));
}

static json_t *random_value(uint64_t *st, int depth) {
  switch (test_rnd_next(st) % (depth > 4 ? 5 : 7)) {
  case 0:
    return json_integer((json_int_t)test_rnd_next(st));
  case 1:
    return json_real((double)(int64_t)test_rnd_next(st) / 1024.0);
  case 2: {
    char s[24];
    size_t n = test_rnd_next(st) % sizeof s;
    for (size_t i = 0; i < n; i++)
      s[i] = (char)(' ' + test_rnd_next(st) % 95);
    return json_stringn(s, n);
  }
  case 3:
    return json_boolean(test_rnd_next(st) & 1);
  case 4:
    return json_null();
  case 5: {
    json_t *a = json_array();
    for (uint64_t n = test_rnd_next(st) % 6; n > 0; n--)
      json_array_append_new(a, random_value(st, depth + 1));
    return a;
  }
  default: {
    json_t *o = json_object();
    for (uint64_t n = test_rnd_next(st) % 6; n > 0; n--) {
      char k[8];
      snprintf(k, sizeof k, "%u", (unsigned)(test_rnd_next(st) % 1000));
      json_object_set_new(o, k, random_value(st, depth + 1));
    }
    return o;
  }
  }
}

TEST(jcbor_round_trips_random_documents) {
  uint64_t st = 0x9e3779b97f4a7c15u;
  for (int i = 0; i < 500; i++) {
    cleanup_json json_t *v = random_value(&st, 0);
    CHECK(round_trips(v));
  }
}

struct bad_cbor {
  const char *bytes;
  size_t len;
  const char *why;
};
#define BAD(lit, why)                                                          \
  { lit, sizeof lit - 1, why }

/* What a JSON value cannot be, or a torn item: a 400 naming it, no
 * value, and no crash or leak under the sanitizers. */
TEST(jcbor_refuses_what_is_not_a_json_value) {
  static const struct bad_cbor bad[] = {
      BAD("", "truncated"),
      BAD("\xa1\x61"
          "a",
          "truncated"),
      BAD("\x82\x01", "truncated"),
      BAD("\x7a\xff\xff\xff\xff", "truncated"),
      BAD("\x9b\xff\xff\xff\xff\xff\xff\xff\xff", "truncated"),
      BAD("\xa1\x01\x01", "a map key that is not a text string"),
      BAD("\xa1\x80\x01", "a map key that is not a text string"),
      BAD("\xa2\x61"
          "a\x01\x61"
          "a\x02",
          "a map key that repeats"),
      BAD("\x41x", "a byte string"),
      BAD("\xbf\xff", "an indefinite length"),
      BAD("\x9f\xff", "an indefinite length"),
      BAD("\x7f\xff", "an indefinite length"),
      BAD("\xc1\x01", "a tag"),
      BAD("\xf7", "undefined"),
      BAD("\xe0", "reserved or malformed"),
      BAD("\xf8\x20", "reserved or malformed"),
      BAD("\x1b\xff\xff\xff\xff\xff\xff\xff\xff", "an integer outside int64"),
      BAD("\x3b\x80\x00\x00\x00\x00\x00\x00\x00", "an integer outside int64"),
      BAD("\xfb\x7f\xf0\x00\x00\x00\x00\x00\x00", "a real that is not finite"),
      BAD("\xf9\x7e\x00", "a real that is not finite"),
      BAD("\x62\xc3\x28", "text that is not UTF-8"),
      BAD("\xa1\x62\xc3\x28\x01", "a map key that is not UTF-8"),
      BAD("\x61\x00", "text with a NUL character"),
      BAD("\xa1\x61\x00\x01", "text with a NUL character"),
      BAD("\x01\x01", "bytes after the first item"),
      BAD("\xa0\xa0", "bytes after the first item"),
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    json_t *v = (json_t *)1;
    sh_err err = {0};
    int rc = jcbor_decode(bad[i].bytes, bad[i].len, &v, &err);
    if (rc != -1 || v != NULL || err.status != 400 ||
        !strstr(err.msg, bad[i].why) || strncmp(err.msg, "invalid CBOR: ", 14))
      FAIL_("case %zu: rc %d, status %d, \"%s\" (wanted \"%s\")", i, rc,
            err.status, err.msg, bad[i].why);
  }
  /* INT64_MIN is the last negative integer in range. */
  json_t *v = NULL;
  sh_err err = {0};
  CHECK_INT_EQ(
      jcbor_decode("\x3b\x7f\xff\xff\xff\xff\xff\xff\xff", 9, &v, &err), 0);
  CHECK(json_integer_value(v) == INT64_MIN);
  json_decref(v);
}

/* Nesting is bounded (a stack, not recursion, but a document that deep
 * is not one the store makes). */
TEST(jcbor_bounds_nesting) {
  char b[JCBOR_MAX_DEPTH + 2];
  memset(b, 0x81, sizeof b); /* arrays of one item */
  b[JCBOR_MAX_DEPTH] = 0x01;
  json_t *v = NULL;
  sh_err err = {0};
  CHECK_INT_EQ(jcbor_decode(b, JCBOR_MAX_DEPTH + 1, &v, &err), 0);
  json_decref(v);
  b[JCBOR_MAX_DEPTH] = 0x81;
  b[JCBOR_MAX_DEPTH + 1] = 0x01;
  CHECK_INT_EQ(jcbor_decode(b, JCBOR_MAX_DEPTH + 2, &v, &err), -1);
  CHECK(strstr(err.msg, "nesting too deep") != NULL);
  CHECK(v == NULL);
  /* The encoder writes what the decoder takes and nothing deeper: a
   * leader must not commit an entry its followers refuse. */
  json_t *deep = json_integer(1);
  for (int i = 0; i < JCBOR_MAX_DEPTH; i++)
    deep = json_pack("[o]", deep);
  size_t n = 0;
  char *enc = jcbor_encode(deep, &n);
  CHECK(enc != NULL);
  CHECK_INT_EQ(jcbor_decode(enc, n, &v, &err), 0);
  CHECK(json_equal(v, deep));
  json_decref(v);
  free(enc);
  deep = json_pack("[o]", deep);
  CHECK(jcbor_encode(deep, &n) == NULL);
  CHECK(jcbor_frame(deep, &n) == NULL);
  json_decref(deep);
}

/* A stream of frames, read as it arrives: a frame in part waits, a
 * whole one is taken with its exact size, a line of JSON is not a frame,
 * and a length past the reader's limit is refused before its bytes
 * come. */
TEST(jcbor_frames_split_anywhere) {
  cleanup_json json_t *a =
      json_pack("{s:s, s:[i, i]}", "Type", "tasks", "Set", 1, 2);
  char big[300];
  memset(big, 'y', sizeof big - 1);
  big[sizeof big - 1] = 0;
  cleanup_json json_t *b = json_pack("{s:s}", "big", big);
  size_t na, nb;
  char *fa = jcbor_frame(a, &na), *fb = jcbor_frame(b, &nb);
  char *both = xmalloc(na + nb);
  memcpy(both, fa, na);
  memcpy(both + na, fb, nb);
  for (size_t cut = 0; cut < na + nb; cut++) {
    json_t *v = NULL;
    size_t used = 0;
    sh_err err = {0};
    int r = jcbor_unframe(both, cut, 1 << 20, &v, &used, &err);
    CHECK_INT_EQ(r, cut < na ? 1 : 0);
    if (r == 0) {
      CHECK_INT_EQ(used, na);
      CHECK(json_equal(v, a));
      json_decref(v);
      r = jcbor_unframe(both + na, cut - na, 1 << 20, &v, &used, &err);
      CHECK_INT_EQ(r, 1);
    }
  }
  json_t *v = NULL;
  size_t used = 0;
  sh_err err = {0};
  CHECK_INT_EQ(jcbor_unframe(both + na, nb, 1 << 20, &v, &used, &err), 0);
  CHECK(json_equal(v, b) && used == nb);
  json_decref(v);
  CHECK_INT_EQ(jcbor_unframe("{\"Type\":1}\n", 11, 1 << 20, &v, &used, &err),
               -1);
  CHECK_INT_EQ(jcbor_unframe(fb, 3, 100, &v, &used, &err), -1);
  CHECK(strstr(err.msg, "at most 100") != NULL);
  /* A frame whose item is not a JSON value is refused whole. */
  CHECK_INT_EQ(jcbor_unframe("\x02\x41x", 3, 100, &v, &used, &err), -1);
  CHECK(v == NULL);
  free(fa);
  free(fb);
  free(both);
}
