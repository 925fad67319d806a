/* Linux capabilities of a container, as dockerd computes them: Docker's
 * 14 defaults, then a service's CapabilityAdd / CapabilityDrop. Pure. */
#ifndef SHOAL_EXEC_CAPS_H
#define SHOAL_EXEC_CAPS_H

#include <jansson.h>

struct sh_err;

/* Docker's default set, NULL-terminated ("CAP_CHOWN", ...). */
extern const char *const exec_default_caps[];

/* The capability set from adds and drops (JSON arrays of names, either
 * may be NULL; names as the CLI normalizes them, "CAP_NET_ADMIN", or
 * without the prefix, any case; "ALL"): moby's rules. "ALL" in adds:
 * every capability but the dropped ones; "ALL" in drops: only the added
 * ones; else the defaults minus drops plus adds. A malloc'd,
 * NULL-terminated vector of static strings (free the vector only); 400
 * "unknown capability: \"CAP_X\"" as dockerd says it. */
int exec_caps(const json_t *adds, const json_t *drops, const char ***out,
              struct sh_err *err);

/* Every capability in this process's bounding set, the ones it can give
 * (docker exec --privileged): a malloc'd, NULL-terminated vector of
 * static strings. */
const char **exec_caps_held(void);

#endif
