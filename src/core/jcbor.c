#include "core/jcbor.h"

#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"

#include <cbor.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* ---- encode ---- */

/* A head is at most 9 bytes (the initial byte and a uint64). */
#define HEAD_MAX 9

static void head(sh_buf *b, size_t (*enc)(size_t, unsigned char *, size_t),
                 size_t n) {
  unsigned char h[HEAD_MAX];
  buf_append(b, h, enc(n, h, sizeof h));
}

static void text(sh_buf *b, const char *s, size_t n) {
  head(b, cbor_encode_string_start, n);
  buf_append(b, s, n);
}

/* -1 when v nests deeper than a decoder takes (JCBOR_MAX_DEPTH containers,
 * depth of them already open around v); b then holds part of it. */
static int encode(sh_buf *b, const json_t *v, size_t depth) {
  unsigned char h[HEAD_MAX];
  switch (json_typeof(v)) {
  case JSON_OBJECT: {
    if (depth >= JCBOR_MAX_DEPTH)
      return -1;
    head(b, cbor_encode_map_start, json_object_size(v));
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x) {
      text(b, k, strlen(k));
      if (encode(b, x, depth + 1) < 0)
        return -1;
    }
    return 0;
  }
  case JSON_ARRAY: {
    if (depth >= JCBOR_MAX_DEPTH)
      return -1;
    head(b, cbor_encode_array_start, json_array_size(v));
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
      if (encode(b, x, depth + 1) < 0)
        return -1;
    }
    return 0;
  }
  case JSON_STRING:
    text(b, json_string_value(v), json_string_length(v));
    return 0;
  case JSON_INTEGER:
    jcbor_put_int(b, json_integer_value(v));
    return 0;
  case JSON_REAL:
    buf_append(b, h, cbor_encode_double(json_real_value(v), h, sizeof h));
    return 0;
  case JSON_TRUE:
  case JSON_FALSE:
    buf_append(b, h, cbor_encode_bool(json_is_true(v), h, sizeof h));
    return 0;
  case JSON_NULL:
    break;
  }
  buf_append(b, h, cbor_encode_null(h, sizeof h));
  return 0;
}

void jcbor_put_map(sh_buf *b, size_t n) {
  head(b, cbor_encode_map_start, n);
}

void jcbor_put_array(sh_buf *b, size_t n) {
  head(b, cbor_encode_array_start, n);
}

void jcbor_put_text(sh_buf *b, const char *s, size_t n) {
  text(b, s, n);
}

void jcbor_put_int(sh_buf *b, json_int_t i) {
  unsigned char h[HEAD_MAX];
  /* -1 - i for a negative i cannot overflow, unlike -i. */
  size_t n = i >= 0 ? cbor_encode_uint((uint64_t)i, h, sizeof h)
                    : cbor_encode_negint((uint64_t)(-1 - i), h, sizeof h);
  buf_append(b, h, n);
}

int jcbor_put(sh_buf *b, const json_t *v, size_t depth) {
  return encode(b, v, depth);
}

char *jcbor_encode(const json_t *v, size_t *len) {
  sh_buf b = {0};
  if (encode(&b, v, 0) < 0) {
    buf_free(&b);
    return NULL;
  }
  if (len)
    *len = b.len;
  return b.data ? b.data : xcalloc(1, 1);
}

char *jcbor_frame(const json_t *v, size_t *len) {
  sh_buf b = {0};
  if (encode(&b, v, 0) < 0) {
    buf_free(&b);
    return NULL;
  }
  unsigned char h[HEAD_MAX];
  size_t hn = cbor_encode_uint(b.len, h, sizeof h);
  char *out = xmalloc(hn + b.len);
  memcpy(out, h, hn);
  memcpy(out + hn, b.data, b.len);
  *len = hn + b.len;
  free(b.data);
  return out;
}

/* ---- decode ---- */

/* An open array or map: how many items (pairs) it still takes, and a
 * map's key waiting for its value (it points into the input). */
struct frame {
  json_t *c;
  size_t left;
  bool map, has_key;
  const char *key;
  size_t klen;
};

struct dec {
  struct frame *st;
  size_t depth, cap;
  json_t *root;
  const char *fail; /* the first thing wrong; nothing is built after it */
};

static void fail(struct dec *d, const char *what) {
  if (!d->fail)
    d->fail = what;
}

/* Places a decoded value (NULL: jansson refused it, why) in the open
 * container or as the root; a container of n > 0 items is opened. */
static void put(struct dec *d, json_t *v, const char *why, bool container,
                size_t n) {
  if (!v) {
    fail(d, why);
    return;
  }
  if (d->fail) {
    json_decref(v);
    return;
  }
  if (d->depth == 0) {
    d->root = v;
  } else {
    struct frame *f = &d->st[d->depth - 1];
    if (f->map) {
      if (!f->has_key) {
        json_decref(v);
        fail(d, "a map key that is not a text string");
        return;
      }
      f->has_key = false;
      size_t before = json_object_size(f->c);
      /* setn_new takes v even when it fails (a key that is not UTF-8). */
      if (json_object_setn_new(f->c, f->key, f->klen, v) < 0) {
        fail(d, "a map key that is not UTF-8");
        return;
      }
      if (json_object_size(f->c) == before) {
        fail(d, "a map key that repeats");
        return;
      }
    } else {
      json_array_append_new(f->c, v);
    }
    f->left--;
  }
  if (container && n > 0) {
    if (d->depth == JCBOR_MAX_DEPTH) {
      fail(d, "nesting too deep");
      return;
    }
    if (d->depth == d->cap) {
      d->cap = d->cap ? d->cap * 2 : 16;
      d->st = xrealloc(d->st, d->cap * sizeof *d->st);
    }
    d->st[d->depth++] =
        (struct frame){.c = v, .left = n, .map = json_is_object(v)};
    return;
  }
  while (d->depth > 0 && d->st[d->depth - 1].left == 0)
    d->depth--;
}

/* CBOR's negative integer n is -1 - n; either must fit int64. */
static void integer(void *ud, uint64_t n, bool negative) {
  json_t *v = NULL;
  if (n <= INT64_MAX)
    v = json_integer(negative ? -1 - (json_int_t)n : (json_int_t)n);
  put(ud, v, "an integer outside int64", false, 0);
}

/* libcbor calls one callback per head size. */
#define INT_CALLBACK(name, type, negative)                                     \
  static void name(void *ud, type n) {                                         \
    integer(ud, n, negative);                                                  \
  }
INT_CALLBACK(uint8, uint8_t, false)
INT_CALLBACK(uint16, uint16_t, false)
INT_CALLBACK(uint32, uint32_t, false)
INT_CALLBACK(uint64, uint64_t, false)
INT_CALLBACK(negint8, uint8_t, true)
INT_CALLBACK(negint16, uint16_t, true)
INT_CALLBACK(negint32, uint32_t, true)
INT_CALLBACK(negint64, uint64_t, true)

static void string(void *ud, cbor_data p, size_t n) {
  struct dec *d = ud;
  const char *s = (const char *)p;
  /* jansson's parser refuses "\u0000" without JSON_ALLOW_NUL; so do we,
   * or C strings read from the store would end early. */
  if (memchr(s, 0, n)) {
    fail(d, "text with a NUL character");
    return;
  }
  if (d->depth > 0) {
    struct frame *f = &d->st[d->depth - 1];
    if (f->map && !f->has_key) {
      f->key = s;
      f->klen = n;
      f->has_key = true;
      return;
    }
  }
  put(d, json_stringn(s, n), "text that is not UTF-8", false, 0);
}

static void array_start(void *ud, size_t n) {
  put(ud, json_array(), "out of memory", true, n);
}

static void map_start(void *ud, size_t n) {
  put(ud, json_object(), "out of memory", true, n);
}

static void real(void *ud, double x) {
  put(ud, isfinite(x) ? json_real(x) : NULL, "a real that is not finite", false,
      0);
}
static void real32(void *ud, float x) {
  real(ud, x);
}

static void null(void *ud) {
  put(ud, json_null(), "out of memory", false, 0);
}

static void boolean(void *ud, bool b) {
  put(ud, json_boolean(b), "out of memory", false, 0);
}

static void no_bytes(void *ud) {
  fail(ud, "a byte string");
}
static void no_bytes_chunk(void *ud, cbor_data p, size_t n) {
  fail(ud, "a byte string");
}
static void no_indefinite(void *ud) {
  fail(ud, "an indefinite length");
}
static void no_tag(void *ud, uint64_t t) {
  fail(ud, "a tag");
}
static void no_undefined(void *ud) {
  fail(ud, "undefined");
}

static const struct cbor_callbacks callbacks = {
    .uint8 = uint8,
    .uint16 = uint16,
    .uint32 = uint32,
    .uint64 = uint64,
    .negint8 = negint8,
    .negint16 = negint16,
    .negint32 = negint32,
    .negint64 = negint64,
    .byte_string_start = no_bytes,
    .byte_string = no_bytes_chunk,
    .string = string,
    .string_start = no_indefinite,
    .indef_array_start = no_indefinite,
    .array_start = array_start,
    .indef_map_start = no_indefinite,
    .map_start = map_start,
    .tag = no_tag,
    .float2 = real32,
    .float4 = real32,
    .float8 = real,
    .undefined = no_undefined,
    .null = null,
    .boolean = boolean,
    .indef_break = no_indefinite,
};

int jcbor_decode(const void *data, size_t len, json_t **out, sh_err *err) {
  struct dec d = {0};
  const unsigned char *p = data;
  size_t off = 0;
  *out = NULL;
  while (!d.fail && off < len) {
    if (d.root && d.depth == 0) {
      fail(&d, "bytes after the first item");
      break;
    }
    struct cbor_decoder_result r =
        cbor_stream_decode(p + off, len - off, &callbacks, &d);
    if (r.status == CBOR_DECODER_NEDATA)
      fail(&d, "truncated");
    else if (r.status != CBOR_DECODER_FINISHED || r.read == 0)
      fail(&d, "a reserved or malformed item");
    off += r.read;
  }
  if (!d.fail && (!d.root || d.depth > 0))
    fail(&d, "truncated");
  free(d.st);
  if (d.fail) {
    json_decref(d.root);
    return sh_error(err, 400, "invalid CBOR: %s", d.fail);
  }
  *out = d.root;
  return 0;
}

int jcbor_unframe(const void *data, size_t len, size_t max, json_t **out,
                  size_t *used, sh_err *err) {
  const unsigned char *p = data;
  *out = NULL;
  *used = 0;
  if (len == 0)
    return 1;
  if (p[0] > 0x1b)
    return sh_error(err, 400, "invalid CBOR frame: no length first");
  /* The head: its value, or 1, 2, 4 or 8 bytes of it after the first. */
  size_t hn = p[0] < 24 ? 1 : (size_t)1 + ((size_t)1 << (p[0] - 24));
  if (len < hn)
    return 1;
  uint64_t n = p[0] < 24 ? p[0] : 0;
  for (size_t i = 1; i < hn; i++)
    n = n << 8 | p[i];
  if (n > max)
    return sh_error(err, 400, "invalid CBOR frame: %llu bytes (at most %zu)",
                    (unsigned long long)n, max);
  if (len - hn < n)
    return 1;
  if (jcbor_decode(p + hn, (size_t)n, out, err) < 0)
    return -1;
  *used = hn + (size_t)n;
  return 0;
}

int jcbor_parse_object(const void *data, size_t len, json_t **out,
                       sh_err *err) {
  *out = NULL;
  if (jcbor_is_map(data, len))
    return jcbor_decode(data, len, out, err);
  return jx_parse_object(data, len, out, err);
}
