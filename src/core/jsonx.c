#include "core/jsonx.h"

#include <stdint.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/util.h"

json_t *jx_get(const json_t *root, const char *path) {
  const json_t *cur = root;
  const char *p = path;
  while (cur && *p) {
    const char *dot = strchr(p, '.');
    size_t n = dot ? (size_t)(dot - p) : strlen(p);
    if (json_is_array(cur)) {
      /* A segment of digits indexes an array ("Attachments.0.ID"). */
      size_t i = 0, k = 0;
      for (; k < n && p[k] >= '0' && p[k] <= '9' && i < SIZE_MAX / 10; k++)
        i = i * 10 + (size_t)(p[k] - '0');
      cur = n > 0 && k == n ? json_array_get(cur, i) : NULL;
    } else if (json_is_object(cur)) {
      cur = json_object_getn(cur, p, n);
    } else {
      return NULL;
    }
    p += n;
    if (*p == '.')
      p++;
  }
  return (json_t *)cur;
}

const char *jx_str(const json_t *root, const char *path, const char *dflt) {
  json_t *v = jx_get(root, path);
  return json_is_string(v) ? json_string_value(v) : dflt;
}

json_t *jx_find(const json_t *arr, const char *key, const char *value) {
  size_t i;
  json_t *v;
  json_array_foreach(arr, i, v) {
    if (strcmp(jx_str(v, key, ""), value) == 0)
      return v;
  }
  return NULL;
}

int64_t jx_int(const json_t *root, const char *path, int64_t dflt) {
  json_t *v = jx_get(root, path);
  if (json_is_integer(v))
    return json_integer_value(v);
  if (json_is_real(v))
    return (int64_t)json_real_value(v);
  return dflt;
}

bool jx_bool(const json_t *root, const char *path, bool dflt) {
  json_t *v = jx_get(root, path);
  return json_is_boolean(v) ? json_is_true(v) : dflt;
}

void jx_set(json_t *root, const char *path, json_t *value) {
  json_t *cur = root;
  const char *p = path;
  for (;;) {
    const char *dot = strchr(p, '.');
    if (!dot) {
      json_object_set_new(cur, p, value);
      return;
    }
    json_t *next = json_object_getn(cur, p, (size_t)(dot - p));
    if (!json_is_object(next)) {
      next = json_object();
      json_object_setn_new(cur, p, (size_t)(dot - p), next);
    }
    cur = next;
    p = dot + 1;
  }
}

int jx_parse_object(const char *data, size_t len, json_t **out, sh_err *err) {
  json_error_t je;
  if (len == 0)
    return sh_error(err, 400, "request body is empty");
  json_t *j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
  if (!j)
    return sh_error(err, 400, "invalid JSON: %s", je.text);
  if (!json_is_object(j)) {
    json_decref(j);
    return sh_error(err, 400,
                    "invalid JSON: expected an object at the top level");
  }
  *out = j;
  return 0;
}

static int dump_to_buf(const char *data, size_t n, void *ud) {
  buf_append(ud, data, n);
  return 0;
}

char *jx_dumps(const json_t *j, size_t flags, size_t *len) {
  sh_buf b = {0};
  if (!j || json_dump_callback(j, dump_to_buf, &b, flags) < 0) {
    buf_free(&b);
    return NULL;
  }
  if (!b.data)
    buf_append(&b, "", 0);
  if (len)
    *len = b.len;
  return b.data;
}

char *jx_dump(const json_t *j) {
  char *s = jx_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY, NULL);
  if (!s)
    return xstrdup("null");
  return s;
}

void jx_merge(json_t *dst, const json_t *src) {
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)src, k, v) {
    json_t *d = json_object_get(dst, k);
    if (json_is_object(d) && json_is_object(v))
      jx_merge(d, v);
    else
      json_object_set_new(dst, k, json_deep_copy(v));
  }
}

const char *jx_kind(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    return "object";
  case JSON_ARRAY:
    return "array";
  case JSON_STRING:
    return "string";
  case JSON_INTEGER:
  case JSON_REAL:
    return "number";
  case JSON_TRUE:
  case JSON_FALSE:
    return "bool";
  default:
    return "null";
  }
}

/* ---- lists in creation order ---- */

struct list_item {
  int64_t created;
  const char *id;
  json_t *obj;
};

static int list_cmp(const void *a, const void *b) {
  const struct list_item *x = a, *y = b;
  if (x->created != y->created)
    return x->created < y->created ? -1 : 1;
  return strcmp(x->id, y->id);
}

/* CreatedAt as the store writes it ("2006-01-02T15:04:05.999999999Z", UTC)
 * without strptime, which was most of a sort's cost over thousands of
 * tasks; any other form goes through clock_parse_rfc3339. */
int64_t jx_created_ns(const char *c) {
  int64_t ns = 0;
  if (!c)
    return 0;
  static const char shape[] = "dddd-dd-ddTdd:dd:dd";
  int64_t f[6] = {0};
  size_t k = 0, i = 0;
  for (; shape[i]; i++) {
    if (shape[i] == 'd') {
      if (c[i] < '0' || c[i] > '9')
        break;
      f[k] = f[k] * 10 + (c[i] - '0');
    } else if (c[i] != shape[i]) {
      break;
    } else {
      k++;
    }
  }
  /* Outside int64 nanoseconds (years 1678-2261) or not the store's form:
   * the general parser says what it is. */
  if (shape[i] || (c[i] != '.' && c[i] != 'Z') || f[0] < 1678 || f[0] > 2261)
    return clock_parse_rfc3339(c, &ns, NULL) < 0 ? 0 : ns;
  int64_t frac = 0;
  int digits = 0;
  if (c[i] == '.')
    for (i++; c[i] >= '0' && c[i] <= '9'; i++)
      if (digits < 9) {
        frac = frac * 10 + (c[i] - '0');
        digits++;
      }
  if (c[i] != 'Z' || c[i + 1])
    return clock_parse_rfc3339(c, &ns, NULL) < 0 ? 0 : ns;
  while (digits++ < 9)
    frac *= 10;
  int64_t secs = clock_days_from_civil(f[0], (int)f[1], (int)f[2]) * 86400 +
                 f[3] * 3600 + f[4] * 60 + f[5];
  return secs * 1000000000LL + frac;
}

/* The objects of an ID -> object map (or -> box holding the object, or
 * an array of boxes: their IDs are the objects'), sorted by CreatedAt
 * then ID. */
static json_t *sorted_by_created(json_t *map, bool boxed) {
  json_t *arr = json_array();
  size_t n = json_is_array(map) ? json_array_size(map) : json_object_size(map);
  if (n == 0)
    return arr;
  struct list_item *items = xcalloc(n, sizeof *items);
  size_t i = 0;
  const char *id;
  json_t *v;
  if (json_is_array(map)) {
    json_array_foreach(map, i, v) {
      json_t *o = json_array_get(v, 0);
      items[i] = (struct list_item){jx_created_ns(jx_str(o, "CreatedAt", NULL)),
                                    jx_str(o, "ID", ""), o};
    }
  } else {
    json_object_foreach(map, id, v) {
      json_t *o = boxed ? json_array_get(v, 0) : v;
      items[i++] = (struct list_item){
          jx_created_ns(jx_str(o, "CreatedAt", NULL)), id, o};
    }
  }
  qsort(items, n, sizeof *items, list_cmp);
  for (i = 0; i < n; i++)
    json_array_append(arr, items[i].obj);
  free(items);
  return arr;
}

json_t *jx_sorted_by_created(json_t *map) {
  return sorted_by_created(map, false);
}

json_t *jx_sorted_boxes_by_created(json_t *map) {
  return sorted_by_created(map, true);
}
