#include "api/filters.h"

#include "core/err.h"
#include "core/util.h"

#include <regex.h>

int filters_parse(const char *raw, const char *const *allowed,
                  struct filters *out, sh_err *err) {
  out->map = json_object();
  if (!raw || !*raw)
    return 0;
  json_error_t je;
  json_t *j = json_loads(raw, 0, &je);
  if (!json_is_object(j)) {
    json_decref(j);
    return sh_error(err, 400, "invalid filter: %s",
                    j ? "expected a JSON object" : je.text);
  }
  const char *k;
  json_t *v;
  json_object_foreach(j, k, v) {
    bool ok = false;
    for (const char *const *a = allowed; *a; a++)
      if (strcmp(*a, k) == 0)
        ok = true;
    if (!ok) {
      sh_error(err, 400, "invalid filter '%s'", k);
      json_decref(j);
      return -1;
    }
    json_t *vals = json_array();
    if (json_is_array(v)) {
      size_t i;
      json_t *e;
      json_array_foreach(v, i, e) {
        if (!json_is_string(e)) {
          sh_error(err, 400, "invalid filter '%s': values must be strings", k);
          json_decref(vals);
          json_decref(j);
          return -1;
        }
        json_array_append(vals, e);
      }
    } else if (json_is_object(v)) {
      const char *vk;
      json_t *vv;
      json_object_foreach(v, vk, vv) if (json_is_true(vv))
          json_array_append_new(vals, json_string(vk));
    } else {
      sh_error(err, 400, "invalid filter '%s'", k);
      json_decref(vals);
      json_decref(j);
      return -1;
    }
    json_object_set_new(out->map, k, vals);
  }
  json_decref(j);
  return 0;
}

void filters_free(struct filters *f) {
  json_decref(f->map);
  f->map = NULL;
}

bool filters_has(const struct filters *f, const char *name) {
  json_t *v = json_object_get(f->map, name);
  return v && json_array_size(v) > 0;
}

static bool match(const struct filters *f, const char *name, const char *v,
                  bool prefix) {
  json_t *vals = json_object_get(f->map, name);
  if (!vals || json_array_size(vals) == 0)
    return true;
  size_t i;
  json_t *e;
  json_array_foreach(vals, i, e) {
    const char *s = json_string_value(e);
    if (prefix ? str_has_prefix(v, s) : strcmp(v, s) == 0)
      return true;
  }
  return false;
}

bool filters_match(const struct filters *f, const char *name, const char *v) {
  return match(f, name, v ? v : "", false);
}

bool filters_match_prefix(const struct filters *f, const char *name,
                          const char *v) {
  return match(f, name, v ? v : "", true);
}

bool filters_match_labels(const struct filters *f, const char *name,
                          const json_t *labels) {
  json_t *vals = json_object_get(f->map, name);
  if (!vals || json_array_size(vals) == 0)
    return true;
  /* Every label filter must hold (dockerd's MatchKVList). */
  size_t i;
  json_t *e;
  json_array_foreach(vals, i, e) {
    const char *s = json_string_value(e);
    const char *eq = strchr(s, '=');
    cleanup_free char *key = eq ? xstrndup(s, (size_t)(eq - s)) : xstrdup(s);
    json_t *have = json_object_get(labels, key);
    if (!json_is_string(have))
      return false;
    if (eq && strcmp(json_string_value(have), eq + 1) != 0)
      return false;
  }
  return true;
}

bool filters_match_regex(const struct filters *f, const char *name,
                         const char *v) {
  json_t *vals = json_object_get(f->map, name);
  if (json_array_size(vals) == 0)
    return true;
  size_t i;
  json_t *x;
  json_array_foreach(vals, i, x) {
    regex_t re;
    if (regcomp(&re, json_string_value(x), REG_EXTENDED | REG_NOSUB) != 0)
      continue;
    bool hit = regexec(&re, v, 0, NULL, 0) == 0;
    regfree(&re);
    if (hit)
      return true;
  }
  return false;
}

bool filters_match_label_pair(const struct filters *f, const json_t *labels) {
  if (!filters_match_labels(f, "label", labels))
    return false;
  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(f->map, "label!"), i, v) {
    struct filters one = {json_pack("{s:[O]}", "label", v)};
    bool hit = filters_match_labels(&one, "label", labels);
    filters_free(&one);
    if (hit)
      return false;
  }
  return true;
}
