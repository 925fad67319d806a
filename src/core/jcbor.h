/* JSON values as CBOR (RFC 8949), through libcbor: the raft entries'
 * encoding once every manager reads it (store.h, STORE_ENTRIES_CBOR).
 *
 * Why: a follower parsed the leader's JSON entries at ~40 MB/s with
 * jansson's lexer, half of its CPU at 100,000 tasks; decoding the same
 * documents from CBOR builds the same jansson values 4-6x faster, and
 * encoding is ~4x faster than jansson's dump (no escaping, no printf).
 *
 * The mapping is JSON's data model only: objects as maps of text keys (in
 * the object's order), arrays, text strings, integers (int64), reals as
 * float64, true, false, null; all lengths definite. */
#ifndef SHOAL_CORE_JCBOR_H
#define SHOAL_CORE_JCBOR_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct sh_err;
struct sh_buf;

/* The CBOR of v, malloc'd (free()), *len its size; NULL when v nests
 * deeper than jcbor_decode takes (JCBOR_MAX_DEPTH), so that no reader
 * refuses what a writer wrote. */
char *jcbor_encode(const json_t *v, size_t *len);

/* One CBOR data item that is a JSON value, and nothing after it: *out a
 * new reference, 0. Anything else is a 400 naming what was wrong, and
 * *out NULL: truncated data, trailing bytes, indefinite lengths, byte
 * strings, tags, undefined or other simple values, a map key that is not
 * a text string or repeats, text that is not UTF-8, an integer outside
 * int64, a non-finite real, nesting deeper than JCBOR_MAX_DEPTH. */
#define JCBOR_MAX_DEPTH 512
int jcbor_decode(const void *data, size_t len, json_t **out,
                 struct sh_err *err);

/* A document written piece by piece (a raft snapshot): heads of a map of
 * n pairs or an array of n items, a text string, an integer, and a whole
 * value inside depth containers already open (-1 when too deep, as
 * jcbor_encode's NULL; b then holds part of it). */
void jcbor_put_map(struct sh_buf *b, size_t n);
void jcbor_put_array(struct sh_buf *b, size_t n);
void jcbor_put_text(struct sh_buf *b, const char *s, size_t n);
void jcbor_put_int(struct sh_buf *b, json_int_t i);
int jcbor_put(struct sh_buf *b, const json_t *v, size_t depth);

/* A stream of messages (the dispatcher's assignments to a node): each
 * framed as a CBOR unsigned integer, the item's length, then the item. A
 * frame starts with a byte below 0x1c, which a JSON text never does, so
 * one stream may mix frames and JSON lines. */
char *jcbor_frame(const json_t *v, size_t *len);
/* The first frame of data: 0 with *out (new reference) and *used (its
 * bytes); 1 when data holds only part of it (wait for more); -1 and err
 * (400) when it is not a frame of a JSON value, or is longer than max. */
int jcbor_unframe(const void *data, size_t len, size_t max, json_t **out,
                  size_t *used, struct sh_err *err);

/* A JSON object from bytes in either form: a CBOR map (jcbor_decode) or
 * JSON text (jx_parse_object, repeated keys refused). 0 and *out (a new
 * reference), or 400 naming what was wrong. */
int jcbor_parse_object(const void *data, size_t len, json_t **out,
                       struct sh_err *err);

/* Whether data starts like a CBOR map (major type 5), which a JSON text
 * never does: how a reader tells the two forms of an entry apart. */
static inline bool jcbor_is_map(const void *data, size_t len) {
  return len > 0 && (((const unsigned char *)data)[0] >> 5) == 5;
}

#endif
