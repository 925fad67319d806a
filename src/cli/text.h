/* Text helpers the CLI needs to print exactly what the docker CLI prints:
 * go-units sizes and durations, Go's time.Time and fmt %v renderings,
 * docker's PrettyPrint capitalisation, natural sort order, json.Indent,
 * and an elastic-tabstop writer with text/tabwriter's semantics. */
#ifndef SHOAL_CLI_TEXT_H
#define SHOAL_CLI_TEXT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

struct sh_err;

/* go-units HumanDuration: "Less than a second", "About a minute",
 * "3 hours", "3 months" ... */
char *units_human_duration(int64_t ns, char *out, size_t n);
/* go-units BytesSize ("20MiB", "1.5GiB") and HumanSize ("2.746MB"). */
char *units_bytes_size(double size, char *out, size_t n);
char *units_human_size(double size, char *out, size_t n);

/* Go's time.Time.String() of an RFC 3339 timestamp, in UTC:
 * "2009-11-10 23:00:00.5 +0000 UTC". Falls back to the input text when it
 * does not parse. */
char *text_go_time(const char *rfc3339, char *out, size_t n);
/* time.ANSIC ("Fri May 30 12:07:14 2025") of an RFC 3339 timestamp; the
 * input unchanged when it does not parse (like docker's reformatDate). */
char *text_ansic_time(const char *rfc3339, char *out, size_t n);

/* docker's formatter.PrettyPrint of a string: first byte upper-cased, the
 * rest lower-cased ("ready" -> "Ready"). Caller frees. */
char *text_pretty(const char *s);
/* fvbommel/sortorder NaturalLess: digit runs compare numerically. */
bool text_natural_less(const char *a, const char *b);

/* Re-indents JSON text like Go's json.Indent(dst, src, "", indent):
 * tokens are kept byte for byte, only whitespace changes. */
int text_json_indent(const char *src, size_t len, const char *indent,
                     sh_buf *out, struct sh_err *err);
/* Go's json.Marshal look: compact, '<' '>' '&' escaped as \u003c ...
 * sort_keys mimics marshalling a Go map. */
void text_go_json(const json_t *j, bool sort_keys, sh_buf *out);
/* Go's fmt "%v" of a value decoded from JSON into interface{}:
 * map[a:1 b:x], [1 2], <nil>. */
void text_go_value(const json_t *j, sh_buf *out);

/* Elastic tabstops exactly as Go's text/tabwriter (and docker's fork) with
 * padchar ' ' and no flags: cells are tab-terminated; the text after the
 * last tab of a line is not part of a column. Feed everything, then
 * tabwriter_flush renders into out. */
typedef struct tabwriter {
  int minwidth, tabwidth, padding;
  sh_buf in;
} tabwriter;

void tabwriter_init(tabwriter *tw, int minwidth, int tabwidth, int padding);
void tabwriter_write(tabwriter *tw, const char *s, size_t n);
void tabwriter_puts(tabwriter *tw, const char *s);
void tabwriter_printf(tabwriter *tw, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends the aligned text to out and empties the writer. */
void tabwriter_flush(tabwriter *tw, sh_buf *out);
void tabwriter_free(tabwriter *tw);

#endif
