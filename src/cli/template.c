#include "cli/template.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "cli/text.h"
#include "core/err.h"
#include "core/jsonx.h"

/* An operand: a field path from dot ("" is dot itself) or a string. */
struct operand {
  bool is_str;
  char *text;
};

enum node_kind { N_TEXT, N_ACTION, N_IF };

struct node {
  enum node_kind kind;
  char *text;           /* N_TEXT */
  char *func;           /* N_ACTION / N_IF condition: NULL = plain operand */
  struct operand *args; /* operands */
  size_t nargs;
  struct node *then_, *else_; /* N_IF branches (lists) */
  struct node *next;
};

struct cli_tmpl {
  struct node *root;
};

static void nodes_free(struct node *n) {
  while (n) {
    struct node *next = n->next;
    free(n->text);
    free(n->func);
    for (size_t i = 0; i < n->nargs; i++)
      free(n->args[i].text);
    free(n->args);
    nodes_free(n->then_);
    nodes_free(n->else_);
    free(n);
    n = next;
  }
}

void cli_tmpl_free(struct cli_tmpl *t) {
  if (!t)
    return;
  nodes_free(t->root);
  free(t);
}

/* ---- lexing into a flat token list ------------------------------------ */

struct tok {
  bool action;
  char *text; /* literal text, or the trimmed action body */
};

struct parser {
  struct tok *toks;
  size_t n, pos;
  sh_err *err;
};

static int lex(const char *src, struct parser *p) {
  size_t cap = 0;
  const char *s = src;
  bool trim_next = false;
  while (*s) {
    const char *open = strstr(s, "{{");
    size_t tlen = open ? (size_t)(open - s) : strlen(s);
    const char *t = s;
    if (trim_next)
      while (tlen && isspace((unsigned char)*t))
        t++, tlen--;
    trim_next = false;
    bool trim_prev = open && open[2] == '-' && isspace((unsigned char)open[3]);
    if (trim_prev)
      while (tlen && isspace((unsigned char)t[tlen - 1]))
        tlen--;
    if (p->n + 2 > cap) {
      cap = cap ? cap * 2 : 16;
      p->toks = xrealloc(p->toks, cap * sizeof *p->toks);
    }
    if (tlen)
      p->toks[p->n++] = (struct tok){false, xstrndup(t, tlen)};
    if (!open)
      break;
    const char *body = open + 2 + (trim_prev ? 1 : 0);
    const char *close = strstr(body, "}}");
    if (!close)
      return sh_error(p->err, 400, "template: :1: unclosed action");
    const char *bend = close;
    if (bend > body + 1 && bend[-1] == '-' &&
        isspace((unsigned char)bend[-2])) {
      bend--;
      trim_next = true;
    }
    while (body < bend && isspace((unsigned char)*body))
      body++;
    while (bend > body && isspace((unsigned char)bend[-1]))
      bend--;
    p->toks[p->n++] = (struct tok){true, xstrndup(body, (size_t)(bend - body))};
    s = close + 2;
  }
  return 0;
}

/* Splits an action body into words; quoted strings stay one word. */
static int split_words(const char *body, char ***words, size_t *n,
                       sh_err *err) {
  *words = NULL;
  *n = 0;
  size_t cap = 0;
  const char *s = body;
  while (*s) {
    while (isspace((unsigned char)*s))
      s++;
    if (!*s)
      break;
    const char *start = s;
    if (*s == '"' || *s == '`') {
      char q = *s++;
      while (*s && *s != q) {
        if (q == '"' && *s == '\\' && s[1])
          s++;
        s++;
      }
      if (!*s)
        return sh_error(err, 400, "template: :1: unterminated quoted string");
      s++;
    } else {
      while (*s && !isspace((unsigned char)*s))
        s++;
    }
    if (*n + 1 > cap) {
      cap = cap ? cap * 2 : 4;
      *words = xrealloc(*words, cap * sizeof **words);
    }
    (*words)[(*n)++] = xstrndup(start, (size_t)(s - start));
  }
  return 0;
}

static const char *const funcs[] = {"json",  "index", "upper",  "lower",
                                    "title", "join",  "println"};

static bool is_func(const char *w) {
  for (size_t i = 0; i < ARRAY_SIZE(funcs); i++)
    if (strcmp(w, funcs[i]) == 0)
      return true;
  return false;
}

static int parse_operand(const char *w, struct operand *op, sh_err *err) {
  size_t len = strlen(w);
  if (w[0] == '"' || w[0] == '`') {
    op->is_str = true;
    sh_buf b = {0};
    for (size_t i = 1; i + 1 < len; i++) {
      char c = w[i];
      if (w[0] == '"' && c == '\\' && i + 2 < len) {
        c = w[++i];
        c = c == 'n' ? '\n' : c == 't' ? '\t' : c;
      }
      buf_append(&b, &c, 1);
    }
    op->text = b.data ? b.data : xstrdup("");
    return 0;
  }
  if (w[0] == '.') {
    op->is_str = false;
    op->text = xstrdup(w + 1); /* "" for dot */
    return 0;
  }
  if (w[0] == '$' && (w[1] == '\0' || w[1] == '.')) {
    op->is_str = false;
    op->text = xstrdup(w[1] ? w + 2 : "");
    return 0;
  }
  return sh_error(err, 400, "template: :1: function \"%s\" not defined", w);
}

/* Fills func/args of n from an action body (after a leading "if"). */
static int parse_pipeline(const char *body, struct node *n, sh_err *err) {
  char **w = NULL;
  size_t nw = 0;
  int ret = split_words(body, &w, &nw, err);
  if (ret == 0 && nw == 0)
    ret = sh_error(err, 400, "template: :1: missing value for command");
  size_t first = 0;
  if (ret == 0 && is_func(w[0])) {
    n->func = xstrdup(w[0]);
    first = 1;
  } else if (ret == 0 && !strchr(".$\"`", w[0][0])) {
    ret = sh_error(err, 400, "template: :1: function \"%s\" not defined", w[0]);
  } else if (ret == 0 && nw > 1) {
    ret = sh_error(
        err, 400, "template: :1: can't give argument to non-function %s", w[0]);
  }
  if (ret == 0) {
    n->args = xcalloc(nw, sizeof *n->args);
    for (size_t i = first; i < nw && ret == 0; i++)
      ret = parse_operand(w[i], &n->args[n->nargs++], err);
  }
  for (size_t i = 0; i < nw; i++)
    free(w[i]);
  free(w);
  return ret;
}

/* Parses tokens into a list until {{else}} / {{end}} (returned in *stop). */
static int parse_list(struct parser *p, struct node **out, const char **stop) {
  struct node *head = NULL, **tail = &head;
  *stop = NULL;
  int ret = 0;
  while (p->pos < p->n && ret == 0) {
    struct tok *t = &p->toks[p->pos++];
    if (t->action && t->text[0] == '/' && t->text[1] == '*')
      continue; /* comment */
    if (t->action &&
        (strcmp(t->text, "else") == 0 || strcmp(t->text, "end") == 0)) {
      *stop = t->text;
      break;
    }
    struct node *n = xcalloc(1, sizeof *n);
    *tail = n;
    tail = &n->next;
    if (!t->action) {
      n->kind = N_TEXT;
      n->text = xstrdup(t->text);
    } else if (strncmp(t->text, "if ", 3) == 0) {
      n->kind = N_IF;
      ret = parse_pipeline(t->text + 3, n, p->err);
      const char *s = NULL;
      if (ret == 0)
        ret = parse_list(p, &n->then_, &s);
      if (ret == 0 && s && strcmp(s, "else") == 0)
        ret = parse_list(p, &n->else_, &s);
      if (ret == 0 && (!s || strcmp(s, "end") != 0))
        ret = sh_error(p->err, 400, "template: :1: unexpected EOF");
    } else {
      n->kind = N_ACTION;
      ret = parse_pipeline(t->text, n, p->err);
    }
  }
  *out = head;
  return ret;
}

int cli_tmpl_parse(const char *src, struct cli_tmpl **out, sh_err *err) {
  struct parser p = {.err = err};
  struct node *root = NULL;
  const char *stop = NULL;
  int ret = lex(src, &p);
  if (ret == 0)
    ret = parse_list(&p, &root, &stop);
  if (ret == 0 && stop)
    ret = sh_error(err, 400, "template: :1: unexpected {{%s}}", stop);
  for (size_t i = 0; i < p.n; i++)
    free(p.toks[i].text);
  free(p.toks);
  if (ret < 0) {
    nodes_free(root);
    return ret;
  }
  *out = xcalloc(1, sizeof **out);
  (*out)->root = root;
  return 0;
}

/* ---- execution --------------------------------------------------------- */

struct exec {
  const json_t *dot;
  bool strict, sort_json;
  sh_err *err;
};

/* Returns a new reference, or NULL for "no value". */
static int eval_operand(struct exec *x, const struct operand *op, json_t **v) {
  if (op->is_str) {
    *v = json_string(op->text);
    return 0;
  }
  const json_t *cur = x->dot;
  cleanup_free char *path = xstrdup(op->text);
  char *save = NULL;
  for (char *f = strtok_r(path, ".", &save); f && cur;
       f = strtok_r(NULL, ".", &save)) {
    const json_t *next = json_is_object(cur) ? json_object_get(cur, f) : NULL;
    if (!next && x->strict)
      return sh_error(x->err, 400,
                      "template: :1: executing \"\" at <.%s>: map has no entry "
                      "for key \"%s\"",
                      op->text, f);
    cur = next;
  }
  *v = cur ? json_incref((json_t *)cur) : NULL;
  return 0;
}

static bool truthy(const json_t *v) {
  if (!v || json_is_null(v) || json_is_false(v))
    return false;
  if (json_is_string(v))
    return json_string_length(v) > 0;
  if (json_is_integer(v))
    return json_integer_value(v) != 0;
  if (json_is_real(v))
    return json_real_value(v) != 0;
  if (json_is_array(v))
    return json_array_size(v) > 0;
  if (json_is_object(v))
    return json_object_size(v) > 0;
  return true;
}

static void print_value(const json_t *v, sh_buf *out) {
  if (!v)
    buf_printf(out, "<no value>");
  else
    text_go_value(v, out);
}

static json_t *string_value(const json_t *v) {
  sh_buf b = {0};
  if (v)
    text_go_value(v, &b);
  json_t *s = json_stringn(b.data ? b.data : "", b.len);
  buf_free(&b);
  return s;
}

/* Evaluates a pipeline to a value (new reference or NULL). */
static int eval_pipeline(struct exec *x, const struct node *n, json_t **res) {
  json_t *a[4] = {NULL, NULL, NULL, NULL};
  int ret = 0;
  size_t na = n->nargs < 4 ? n->nargs : 4;
  for (size_t i = 0; i < na && ret == 0; i++)
    ret = eval_operand(x, &n->args[i], &a[i]);
  *res = NULL;
  if (ret == 0 && !n->func) {
    *res = a[0];
    a[0] = NULL;
  } else if (ret == 0 && n->nargs == 0) {
    ret = sh_error(x->err, 400, "template: :1: wrong number of args for %s",
                   n->func);
  } else if (ret == 0 && strcmp(n->func, "json") == 0) {
    sh_buf b = {0};
    if (a[0])
      text_go_json(a[0], x->sort_json, &b);
    else
      buf_printf(&b, "null");
    *res = json_stringn(b.data, b.len);
    buf_free(&b);
  } else if (ret == 0 && strcmp(n->func, "index") == 0) {
    const json_t *cur = a[0];
    for (size_t i = 1; i < na && cur; i++) {
      if (json_is_object(cur) && json_is_string(a[i]))
        cur = json_object_get(cur, json_string_value(a[i]));
      else if (json_is_array(cur) && json_is_string(a[i]))
        cur = json_array_get(cur, (size_t)atol(json_string_value(a[i])));
      else
        cur = NULL;
    }
    /* index of a missing key yields the zero value, printed as "" here */
    *res = cur ? json_incref((json_t *)cur) : json_string("");
  } else if (ret == 0 &&
             (strcmp(n->func, "upper") == 0 || strcmp(n->func, "lower") == 0 ||
              strcmp(n->func, "title") == 0)) {
    json_t *s = string_value(a[0]);
    char *t = xstrdup(json_string_value(s));
    bool start = true;
    for (char *c = t; *c; c++) {
      if (n->func[0] == 'u' || (n->func[0] == 't' && start))
        *c = (char)toupper((unsigned char)*c);
      else if (n->func[0] == 'l')
        *c = (char)tolower((unsigned char)*c);
      start = isspace((unsigned char)*c);
    }
    *res = json_string(t);
    free(t);
    json_decref(s);
  } else if (ret == 0 && strcmp(n->func, "join") == 0) {
    sh_buf b = {0};
    const char *sep = json_is_string(a[1]) ? json_string_value(a[1]) : "";
    for (size_t i = 0; json_is_array(a[0]) && i < json_array_size(a[0]); i++) {
      if (i)
        buf_printf(&b, "%s", sep);
      text_go_value(json_array_get(a[0], i), &b);
    }
    *res = json_stringn(b.data ? b.data : "", b.len);
    buf_free(&b);
  } else if (ret == 0 && strcmp(n->func, "println") == 0) {
    json_t *s = string_value(a[0]);
    sh_buf b = {0};
    buf_printf(&b, "%s\n", json_string_value(s));
    *res = json_string(b.data);
    buf_free(&b);
    json_decref(s);
  }
  for (size_t i = 0; i < 4; i++)
    if (a[i])
      json_decref(a[i]);
  return ret;
}

static int exec_list(struct exec *x, const struct node *n, sh_buf *out) {
  for (; n; n = n->next) {
    if (n->kind == N_TEXT) {
      buf_printf(out, "%s", n->text);
      continue;
    }
    json_t *v = NULL;
    if (eval_pipeline(x, n, &v) < 0)
      return -1;
    int ret = 0;
    if (n->kind == N_ACTION)
      print_value(v, out);
    else
      ret = exec_list(x, truthy(v) ? n->then_ : n->else_, out);
    if (v)
      json_decref(v);
    if (ret < 0)
      return ret;
  }
  return 0;
}

int cli_tmpl_exec(const struct cli_tmpl *t, const json_t *dot, bool strict,
                  bool sort_json, sh_buf *out, sh_err *err) {
  struct exec x = {
      .dot = dot, .strict = strict, .sort_json = sort_json, .err = err};
  return exec_list(&x, t->root, out);
}
