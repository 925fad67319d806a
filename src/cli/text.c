#include "cli/text.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/jsonx.h"

/* ---- go-units ---------------------------------------------------------- */

char *units_human_duration(int64_t ns, char *out, size_t n) {
  double secs_f = (double)ns / 1e9;
  int64_t seconds = ns / INT64_C(1000000000);
  int64_t minutes = ns / INT64_C(60000000000);
  /* Hours are rounded, the smaller units truncated, as go-units does. */
  int64_t hours = (int64_t)(secs_f / 3600.0 + 0.5);
  if (seconds < 1)
    snprintf(out, n, "Less than a second");
  else if (seconds == 1)
    snprintf(out, n, "1 second");
  else if (seconds < 60)
    snprintf(out, n, "%lld seconds", (long long)seconds);
  else if (minutes == 1)
    snprintf(out, n, "About a minute");
  else if (minutes < 60)
    snprintf(out, n, "%lld minutes", (long long)minutes);
  else if (hours == 1)
    snprintf(out, n, "About an hour");
  else if (hours < 48)
    snprintf(out, n, "%lld hours", (long long)hours);
  else if (hours < 24 * 7 * 2)
    snprintf(out, n, "%lld days", (long long)(hours / 24));
  else if (hours < 24 * 30 * 2)
    snprintf(out, n, "%lld weeks", (long long)(hours / 24 / 7));
  else if (hours < 24 * 365 * 2)
    snprintf(out, n, "%lld months", (long long)(hours / 24 / 30));
  else
    snprintf(out, n, "%lld years",
             (long long)((int64_t)(secs_f / 3600.0) / 24 / 365));
  return out;
}

static char *custom_size(double size, double base, const char *const *abbrs,
                         size_t nabbrs, char *out, size_t n) {
  size_t i = 0;
  while (size >= base && i < nabbrs - 1) {
    size /= base;
    i++;
  }
  /* Go's %.4g and C's agree for values below 10000 (no exponent). */
  snprintf(out, n, "%.4g%s", size, abbrs[i]);
  return out;
}

char *units_bytes_size(double size, char *out, size_t n) {
  static const char *const abbrs[] = {"B",   "KiB", "MiB", "GiB", "TiB",
                                      "PiB", "EiB", "ZiB", "YiB"};
  return custom_size(size, 1024.0, abbrs, ARRAY_SIZE(abbrs), out, n);
}

char *units_human_size(double size, char *out, size_t n) {
  static const char *const abbrs[] = {"B",  "kB", "MB", "GB", "TB",
                                      "PB", "EB", "ZB", "YB"};
  return custom_size(size, 1000.0, abbrs, ARRAY_SIZE(abbrs), out, n);
}

/* ---- Go time renderings ------------------------------------------------ */

struct civil {
  int year, mon, day, hour, min, sec;
  char frac[10]; /* digits after the dot, trailing zeros trimmed */
  bool utc;
  int off_min; /* east of UTC */
};

static int parse_rfc3339(const char *s, struct civil *c) {
  memset(c, 0, sizeof *c);
  int used = 0;
  if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &c->year, &c->mon, &c->day,
             &c->hour, &c->min, &c->sec, &used) != 6 ||
      used != 19)
    return -1;
  const char *p = s + used;
  if (*p == '.') {
    p++;
    size_t k = 0;
    while (isdigit((unsigned char)*p)) {
      if (k < 9)
        c->frac[k++] = *p;
      p++;
    }
    if (k == 0)
      return -1;
    c->frac[k] = '\0';
    while (k > 0 && c->frac[k - 1] == '0')
      c->frac[--k] = '\0';
  }
  if (*p == 'Z' && p[1] == '\0') {
    c->utc = true;
    return 0;
  }
  int oh, om;
  if ((*p == '+' || *p == '-') &&
      sscanf(p + 1, "%2d:%2d%n", &oh, &om, &used) == 2 && p[1 + used] == '\0') {
    c->off_min = (oh * 60 + om) * (*p == '-' ? -1 : 1);
    c->utc = c->off_min == 0;
    return 0;
  }
  return -1;
}

char *text_go_time(const char *rfc3339, char *out, size_t n) {
  struct civil c;
  if (!rfc3339 || parse_rfc3339(rfc3339, &c) < 0) {
    snprintf(out, n, "%s", rfc3339 ? rfc3339 : "");
    return out;
  }
  char frac[12] = "";
  if (c.frac[0])
    snprintf(frac, sizeof frac, ".%s", c.frac);
  char zone[32];
  if (c.utc) {
    snprintf(zone, sizeof zone, "+0000 UTC");
  } else {
    /* A fixed zone without a name prints its offset twice in Go. */
    int a = abs(c.off_min);
    char sign = c.off_min < 0 ? '-' : '+';
    snprintf(zone, sizeof zone, "%c%02d%02d %c%02d%02d", sign, a / 60, a % 60,
             sign, a / 60, a % 60);
  }
  snprintf(out, n, "%04d-%02d-%02d %02d:%02d:%02d%s %s", c.year, c.mon, c.day,
           c.hour, c.min, c.sec, frac, zone);
  return out;
}

char *text_ansic_time(const char *rfc3339, char *out, size_t n) {
  static const char *const wd[] = {"Sun", "Mon", "Tue", "Wed",
                                   "Thu", "Fri", "Sat"};
  static const char *const mo[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  struct civil c;
  if (!rfc3339 || parse_rfc3339(rfc3339, &c) < 0 || c.mon < 1 || c.mon > 12) {
    snprintf(out, n, "%s", rfc3339 ? rfc3339 : "");
    return out;
  }
  int64_t days = clock_days_from_civil(c.year, c.mon, c.day);
  int w = (int)(((days % 7) + 7 + 4) % 7); /* 1970-01-01 was a Thursday */
  snprintf(out, n, "%s %s %2d %02d:%02d:%02d %d", wd[w], mo[c.mon - 1], c.day,
           c.hour, c.min, c.sec, c.year);
  return out;
}

/* ---- strings ----------------------------------------------------------- */

char *text_pretty(const char *s) {
  char *r = xstrdup(s ? s : "");
  size_t len = strlen(r);
  for (size_t i = 0; i < len; i++)
    r[i] = (char)tolower((unsigned char)r[i]);
  if (len > 1)
    r[0] = (char)toupper((unsigned char)r[0]);
  return r;
}

bool text_natural_less(const char *a, const char *b) {
  size_t i = 0, j = 0, la = strlen(a), lb = strlen(b);
  while (i < la && j < lb) {
    bool da = isdigit((unsigned char)a[i]), db = isdigit((unsigned char)b[j]);
    if (da != db)
      return da; /* digits sort before other characters */
    if (!da) {
      if (a[i] != b[j])
        return (unsigned char)a[i] < (unsigned char)b[j];
      i++;
      j++;
      continue;
    }
    while (i < la && a[i] == '0')
      i++;
    while (j < lb && b[j] == '0')
      j++;
    size_t sa = i, sb = j;
    while (i < la && isdigit((unsigned char)a[i]))
      i++;
    while (j < lb && isdigit((unsigned char)b[j]))
      j++;
    if (i - sa != j - sb)
      return i - sa < j - sb;
    int c = memcmp(a + sa, b + sb, i - sa);
    if (c != 0)
      return c < 0;
    if (sa != sb) /* fewer leading zeros first: "2" < "02" */
      return sa < sb;
  }
  return la < lb;
}

/* ---- JSON renderings --------------------------------------------------- */

static void newline_indent(sh_buf *out, const char *indent, int depth) {
  buf_append(out, "\n", 1);
  for (int d = 0; d < depth; d++)
    buf_append(out, indent, strlen(indent));
}

int text_json_indent(const char *src, size_t len, const char *indent,
                     sh_buf *out, sh_err *err) {
  json_error_t je;
  json_t *probe = json_loadb(src, len, JSON_DECODE_ANY, &je);
  if (!probe)
    return sh_error(err, 500, "invalid JSON: %s", je.text);
  json_decref(probe);
  int depth = 0;
  for (size_t i = 0; i < len; i++) {
    char ch = src[i];
    switch (ch) {
    case ' ':
    case '\t':
    case '\n':
    case '\r':
      break;
    case '"': {
      size_t s = i++;
      while (i < len && src[i] != '"') {
        if (src[i] == '\\')
          i++;
        i++;
      }
      buf_append(out, src + s, i - s + 1);
      break;
    }
    case '{':
    case '[': {
      buf_append(out, &ch, 1);
      size_t k = i + 1;
      while (k < len && strchr(" \t\r\n", src[k]))
        k++;
      if (k < len && (src[k] == '}' || src[k] == ']')) {
        buf_append(out, &src[k], 1); /* empty stays compact: {} [] */
        i = k;
      } else {
        newline_indent(out, indent, ++depth);
      }
      break;
    }
    case '}':
    case ']':
      newline_indent(out, indent, --depth);
      buf_append(out, &ch, 1);
      break;
    case ',':
      buf_append(out, ",", 1);
      newline_indent(out, indent, depth);
      break;
    case ':':
      buf_append(out, ": ", 2);
      break;
    default:
      buf_append(out, &ch, 1);
    }
  }
  return 0;
}

void text_go_json(const json_t *j, bool sort_keys, sh_buf *out) {
  size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
  if (sort_keys)
    flags |= JSON_SORT_KEYS;
  cleanup_free char *s = jx_dumps(j, flags, NULL);
  if (!s) {
    buf_printf(out, "null");
    return;
  }
  for (const char *p = s; *p; p++) {
    if (*p == '<')
      buf_printf(out, "\\u003c");
    else if (*p == '>')
      buf_printf(out, "\\u003e");
    else if (*p == '&')
      buf_printf(out, "\\u0026");
    else
      buf_append(out, p, 1);
  }
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void text_go_value(const json_t *j, sh_buf *out) {
  if (!j || json_is_null(j)) {
    buf_printf(out, "<nil>");
  } else if (json_is_string(j)) {
    buf_append(out, json_string_value(j), json_string_length(j));
  } else if (json_is_integer(j)) {
    buf_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
  } else if (json_is_real(j)) {
    buf_printf(out, "%g", json_real_value(j));
  } else if (json_is_boolean(j)) {
    buf_printf(out, "%s", json_is_true(j) ? "true" : "false");
  } else if (json_is_array(j)) {
    buf_printf(out, "[");
    for (size_t i = 0; i < json_array_size(j); i++) {
      if (i)
        buf_printf(out, " ");
      text_go_value(json_array_get(j, i), out);
    }
    buf_printf(out, "]");
  } else if (json_is_object(j)) {
    size_t n = json_object_size(j), k = 0;
    const char **keys = xcalloc(n ? n : 1, sizeof *keys);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v) keys[k++] = key;
    qsort(keys, n, sizeof *keys, cmp_str);
    buf_printf(out, "map[");
    for (size_t i = 0; i < n; i++) {
      buf_printf(out, "%s%s:", i ? " " : "", keys[i]);
      text_go_value(json_object_get(j, keys[i]), out);
    }
    buf_printf(out, "]");
    free(keys);
  }
}

/* ---- tabwriter --------------------------------------------------------- */

struct tw_cell {
  size_t off, len;
  int width;
};
struct tw_line {
  struct tw_cell *cells;
  size_t n;
};

static int utf8_width(const char *s, size_t n) {
  int w = 0;
  for (size_t i = 0; i < n; i++)
    if (((unsigned char)s[i] & 0xC0) != 0x80)
      w++;
  return w;
}

void tabwriter_init(tabwriter *tw, int minwidth, int tabwidth, int padding) {
  memset(tw, 0, sizeof *tw);
  tw->minwidth = minwidth;
  tw->tabwidth = tabwidth;
  tw->padding = padding;
}

void tabwriter_write(tabwriter *tw, const char *s, size_t n) {
  buf_append(&tw->in, s, n);
}

void tabwriter_puts(tabwriter *tw, const char *s) {
  buf_append(&tw->in, s, strlen(s));
}

void tabwriter_printf(tabwriter *tw, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  cleanup_free char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0)
    abort();
  va_end(ap);
  buf_append(&tw->in, s, strlen(s));
}

static void tw_pad(sh_buf *out, int n) {
  for (int i = 0; i < n; i++)
    buf_append(out, " ", 1);
}

/* Writes one line whose first `depth` cells are column cells. */
static void tw_write_line(const tabwriter *tw, const struct tw_line *l,
                          const int *widths, size_t depth, bool last,
                          sh_buf *out) {
  for (size_t j = 0; j < l->n; j++) {
    const struct tw_cell *c = &l->cells[j];
    buf_append(out, tw->in.data + c->off, c->len);
    if (j < depth)
      tw_pad(out, widths[j] - c->width);
  }
  if (!last)
    buf_append(out, "\n", 1);
}

/* Column `col` is formatted block by block: a block is a run of
 * consecutive lines that all have a cell in that column (the last cell of a
 * line never counts); inside a block the next column is formatted the same
 * way. This is the elastic-tabstop rule of text/tabwriter. */
static void tw_format(const tabwriter *tw, const struct tw_line *lines,
                      size_t line0, size_t line1, size_t col, int *widths,
                      size_t nlines, sh_buf *out) {
  size_t i = line0;
  while (i < line1) {
    if (col + 1 >= lines[i].n) {
      tw_write_line(tw, &lines[i], widths, col, i + 1 == nlines, out);
      i++;
      continue;
    }
    int width = tw->minwidth;
    size_t end = i;
    for (; end < line1 && col + 1 < lines[end].n; end++) {
      int w = lines[end].cells[col].width + tw->padding;
      if (w > width)
        width = w;
    }
    widths[col] = width;
    tw_format(tw, lines, i, end, col + 1, widths, nlines, out);
    i = end;
  }
}

void tabwriter_flush(tabwriter *tw, sh_buf *out) {
  const char *s = tw->in.data ? tw->in.data : "";
  size_t len = tw->in.len;
  size_t nlines = 1, maxcells = 1;
  for (size_t i = 0; i < len; i++)
    if (s[i] == '\n')
      nlines++;
  struct tw_line *lines = xcalloc(nlines, sizeof *lines);
  size_t li = 0, start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i < len && s[i] != '\n')
      continue;
    struct tw_line *l = &lines[li++];
    size_t ncells = 1;
    for (size_t k = start; k < i; k++)
      if (s[k] == '\t')
        ncells++;
    if (ncells > maxcells)
      maxcells = ncells;
    l->cells = xcalloc(ncells, sizeof *l->cells);
    size_t cs = start;
    for (size_t k = start; k <= i; k++) {
      if (k < i && s[k] != '\t')
        continue;
      struct tw_cell *c = &l->cells[l->n++];
      c->off = cs;
      c->len = k - cs;
      c->width = utf8_width(s + cs, k - cs);
      cs = k + 1;
    }
    start = i + 1;
  }
  int *widths = xcalloc(maxcells, sizeof *widths);
  tw_format(tw, lines, 0, nlines, 0, widths, nlines, out);
  free(widths);
  for (size_t i = 0; i < nlines; i++)
    free(lines[i].cells);
  free(lines);
  buf_reset(&tw->in);
}

void tabwriter_free(tabwriter *tw) {
  buf_free(&tw->in);
}
