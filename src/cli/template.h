/* The subset of Go text/template that --format flags use in practice,
 * evaluated against JSON: {{.A.B}}, {{.}}, {{json .X}}, {{index .M "k"}},
 * {{upper|lower|title .S}}, {{join .List ", "}}, {{if .X}}..{{else}}..{{end}}
 * and the {{- -}} trim markers. Values print like Go prints values decoded
 * from JSON into interface{} (see text_go_value). */
#ifndef SHOAL_CLI_TEMPLATE_H
#define SHOAL_CLI_TEMPLATE_H

#include <jansson.h>
#include <stdbool.h>

#include "core/util.h"

struct sh_err;
struct cli_tmpl;

int cli_tmpl_parse(const char *src, struct cli_tmpl **out, struct sh_err *err);
/* strict: a missing key is an error (Go's missingkey=error) instead of
 * printing "<no value>". sort_json: {{json}} sorts object keys. */
int cli_tmpl_exec(const struct cli_tmpl *t, const json_t *dot, bool strict,
                  bool sort_json, sh_buf *out, struct sh_err *err);
void cli_tmpl_free(struct cli_tmpl *t);

#endif
