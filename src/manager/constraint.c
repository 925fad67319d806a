/* Constraint parsing and matching (see constraint.h). The character sets
 * are swarmkit's regular expressions written out as predicates. */
#include "manager/constraint.h"

#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"

#include <ctype.h>
#include <strings.h>

#define NODE_LABELS "node.labels."
#define ENGINE_LABELS "engine.labels."

/* ^(?i)[a-z_][a-z0-9\-_.]+$ */
static bool valid_key(const char *s) {
  size_t n = strlen(s);
  if (n < 2 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
    return false;
  for (size_t i = 1; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!(isalnum(c) || c == '-' || c == '_' || c == '.'))
      return false;
  }
  return true;
}

/* ^(?i)[a-z0-9:\-_\s\.\*\(\)\?\+\[\]\\\^\$\|\/]+$ */
static bool valid_value(const char *s) {
  if (!*s)
    return false;
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (!(isalnum(c) || isspace(c) || strchr(":-_.*()?+[]\\^$|/", c)))
      return false;
  }
  return true;
}

static char *trim_dup(const char *s, size_t n) {
  while (n && isspace((unsigned char)*s))
    s++, n--;
  while (n && isspace((unsigned char)s[n - 1]))
    n--;
  return xstrndup(s, n);
}

void constraints_free(struct constraint *c, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(c[i].key);
    free(c[i].exp);
  }
  free(c);
}

int constraints_parse(const json_t *list, struct constraint **out, size_t *n,
                      sh_err *err) {
  *out = NULL;
  *n = 0;
  if (!list || json_is_null(list))
    return 0;
  if (!json_is_array(list))
    return sh_error(err, 400, "invalid constraints");
  size_t cnt = json_array_size(list);
  struct constraint *c = xcalloc(cnt ? cnt : 1, sizeof *c);
  size_t i;
  json_t *v;
  json_array_foreach(list, i, v) {
    const char *e = json_string_value(v);
    if (!e) {
      constraints_free(c, i);
      return sh_error(err, 400, "invalid constraints");
    }
    /* swarmkit tries "==" first, then "!=". */
    const char *op = strstr(e, "==");
    bool eq = true;
    if (!op) {
      op = strstr(e, "!=");
      eq = false;
    }
    if (!op) {
      constraints_free(c, i);
      return sh_error(err, 400, "constraint expected one operator from ==, !=");
    }
    char *key = trim_dup(e, (size_t)(op - e));
    char *val = trim_dup(op + 2, strlen(op + 2));
    if (!valid_key(key)) {
      sh_error(err, 400, "key '%s' is invalid", key);
      free(key);
      free(val);
      constraints_free(c, i);
      return -1;
    }
    if (!valid_value(val)) {
      sh_error(err, 400, "value '%s' is invalid", val);
      free(key);
      free(val);
      constraints_free(c, i);
      return -1;
    }
    c[i] = (struct constraint){key, eq, val};
  }
  *out = c;
  *n = cnt;
  return 0;
}

static bool match_one(const struct constraint *c, const char *what) {
  bool m = strcasecmp(c->exp, what ? what : "") == 0;
  return c->eq ? m : !m;
}

static bool has_prefix_ci(const char *s, const char *p) {
  size_t n = strlen(p);
  return strlen(s) > n && strncasecmp(s, p, n) == 0;
}

bool constraints_match(const struct constraint *c, size_t n,
                       const json_t *node) {
  for (size_t i = 0; i < n; i++) {
    const char *k = c[i].key;
    const char *what;
    if (strcasecmp(k, "node.id") == 0)
      what = jx_str(node, "ID", "");
    else if (strcasecmp(k, "node.hostname") == 0)
      what = jx_str(node, "Description.Hostname", "");
    else if (strcasecmp(k, "node.role") == 0)
      what = jx_str(node, "Spec.Role", "worker");
    else if (strcasecmp(k, "node.platform.os") == 0)
      what = jx_str(node, "Description.Platform.OS", "");
    else if (strcasecmp(k, "node.platform.arch") == 0)
      what = jx_str(node, "Description.Platform.Architecture", "");
    else if (has_prefix_ci(k, NODE_LABELS)) {
      json_t *labels = jx_get(node, "Spec.Labels");
      what =
          json_string_value(json_object_get(labels, k + strlen(NODE_LABELS)));
    } else if (has_prefix_ci(k, ENGINE_LABELS)) {
      json_t *labels = jx_get(node, "Description.Engine.Labels");
      what =
          json_string_value(json_object_get(labels, k + strlen(ENGINE_LABELS)));
    } else {
      return false; /* node.ip and unknown keys: not supported, no match */
    }
    if (!match_one(&c[i], what))
      return false;
  }
  return true;
}
