/* jansson helpers: scope-bound references and typed lookups by path. */
#ifndef SHOAL_CORE_JSONX_H
#define SHOAL_CORE_JSONX_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct sh_err;

static inline void sh_json_decrefp(json_t **j) {
  if (*j)
    json_decref(*j);
}
#define cleanup_json __attribute__((cleanup(sh_json_decrefp)))

/* Looks up a dotted path ("Spec.Dispatcher.HeartbeatPeriod"); a segment
 * of digits indexes an array ("NetworksAttachments.0.Network.ID"). NULL if
 * any step is missing. Borrowed reference. */
json_t *jx_get(const json_t *root, const char *path);
const char *jx_str(const json_t *root, const char *path, const char *dflt);
int64_t jx_int(const json_t *root, const char *path, int64_t dflt);
bool jx_bool(const json_t *root, const char *path, bool dflt);
/* The first element of the array arr whose string at key equals value
 * (a service's network by Target, a VIP by NetworkID); borrowed, or
 * NULL. */
json_t *jx_find(const json_t *arr, const char *key, const char *value);
/* Sets a dotted path, creating intermediate objects; steals `value`. */
void jx_set(json_t *root, const char *path, json_t *value);

/* Parses a request body; a body that is not JSON, or JSON of another type
 * than an object, is a 400 with a message like Docker's. */
int jx_parse_object(const char *data, size_t len, json_t **out,
                    struct sh_err *err);
/* json_dumps with json_dumps' flags, into memory the caller frees with
 * free(): json_dumps returns memory from jansson's allocator, which is
 * not glibc's on a thread that uses mimalloc for JSON (lazy/heap.h). NULL
 * where json_dumps fails; len (optional) is the text's length. */
char *jx_dumps(const json_t *j, size_t flags, size_t *len);
#pragma GCC poison json_dumps
/* Compact serialization, caller frees. */
char *jx_dump(const json_t *j);

/* Deep-merges src into dst: objects merge key by key, anything else in src
 * replaces dst's value. Steals nothing. */
void jx_merge(json_t *dst, const json_t *src);

/* A JSON value's kind as Go's encoding/json names it in its errors:
 * "object", "array", "string", "number", "bool", "null". */
const char *jx_kind(const json_t *v);

/* CreatedAt as nanoseconds since the epoch: the store's own form
 * ("2006-01-02T15:04:05.999999999Z") read without strptime, any other
 * RFC 3339 form through clock_parse_rfc3339; 0 when unreadable. */
int64_t jx_created_ns(const char *created_at);
/* The objects of an ID -> object map as an array sorted by CreatedAt,
 * then ID (each time parsed once, not per comparison). New reference. */
json_t *jx_sorted_by_created(json_t *map);
/* The same for a map whose values each hold the object as the first
 * element of an array (the store's boxes), or for an array of such
 * boxes (a store index's bucket; the IDs are the objects'). */
json_t *jx_sorted_boxes_by_created(json_t *map);

#endif
