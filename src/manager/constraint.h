/* Placement constraints as swarmkit parses and matches them:
 * "key==value" / "key!=value" with keys node.id, node.hostname, node.role,
 * node.platform.os, node.platform.arch, node.labels.X, engine.labels.X.
 * Values compare case-insensitively; label names are case-sensitive. */
#ifndef SHOAL_MANAGER_CONSTRAINT_H
#define SHOAL_MANAGER_CONSTRAINT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct sh_err;

struct constraint {
  char *key;
  bool eq; /* == (true) or != */
  char *exp;
};

/* Parses a JSON array of constraint strings (NULL or empty: none).
 * Errors carry swarmkit's plain messages ("key 'x' is invalid", "value 'y'
 * is invalid", "constraint expected one operator from ==, !=") with status
 * 400; the caller adds any prefix. *out is freed with constraints_free. */
int constraints_parse(const json_t *list, struct constraint **out, size_t *n,
                      struct sh_err *err);
void constraints_free(struct constraint *c, size_t n);
/* Does the Node object satisfy every constraint? Unknown keys never match. */
bool constraints_match(const struct constraint *c, size_t n,
                       const json_t *node);

#endif
