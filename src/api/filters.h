/* The Engine API's `filters` query parameter: a JSON map of filter name to
 * values, either {"role":["manager"]} or the legacy {"role":{"manager":true}}.
 * Unknown filter names are refused as dockerd does ("invalid filter
 * 'x'"). */
#ifndef SHOAL_API_FILTERS_H
#define SHOAL_API_FILTERS_H

#include <jansson.h>
#include <stdbool.h>

struct sh_err;

struct filters {
  json_t *map; /* name -> array of strings */
};

/* Parses the raw (decoded) query value; NULL or "" is no filter. */
int filters_parse(const char *raw, const char *const *allowed,
                  struct filters *out, struct sh_err *err);
void filters_free(struct filters *f);
bool filters_has(const struct filters *f, const char *name);
/* True when the filter is absent or any of its values equals v. */
bool filters_match(const struct filters *f, const char *name, const char *v);
/* Same, matching v's prefix (IDs). */
bool filters_match_prefix(const struct filters *f, const char *name,
                          const char *v);
/* moby's filters.Args.Match: true when the filter is absent or any of its
 * values, as a regular expression, matches v (a value that does not
 * compile matches nothing). */
bool filters_match_regex(const struct filters *f, const char *name,
                         const char *v);
/* Label filters: "key" or "key=value" against a labels object. */
bool filters_match_labels(const struct filters *f, const char *name,
                          const json_t *labels);
/* moby's prune filters: every `label` matches (as filters_match_labels)
 * and no `label!` (key or key=value) does. */
bool filters_match_label_pair(const struct filters *f, const json_t *labels);

#endif
