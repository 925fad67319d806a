/* Secrets and configs (swarmkit's controlapi for both kinds, moby's
 * lookups): validation with Docker's messages, the objects to propose,
 * the API views, the checks of a service's references, and what the
 * dispatcher sends a node. Pure: reads the store, returns new objects;
 * the caller proposes.
 *
 * A stored object is {"ID", "Spec": {"Name", "Labels"}, "_Data": base64}:
 * the payload is an internal key, so store_public() and every view made
 * from it leave it out (configs put it back in their view, as Docker
 * shows a config's Data). kind is STORE_SECRET or STORE_CONFIG. */
#ifndef SHOAL_MANAGER_SECRETS_H
#define SHOAL_MANAGER_SECRETS_H

#include "store/store.h"

#include <jansson.h>
#include <stdint.h>

struct sh_err;

/* swarmkit's MaxSecretSize and MaxConfigSize: Data must be at least 1 and
 * less than this many bytes. */
#define SECRETS_MAX_SECRET_SIZE (500 * 1024)
#define SECRETS_MAX_CONFIG_SIZE (1000 * 1024)

/* The object for POST /secrets/create (/configs/create) with ID id:
 * {Name, Labels, Data, Driver, Templating}. Driver and Templating are
 * refused (501) by name; a taken name is 409 "secret X already exists".
 * New reference. */
json_t *secrets_create(struct store *s, enum store_kind kind,
                       const json_t *spec, const char *id, struct sh_err *err);
/* The next object for POST /secrets/{ref}/update: only Labels may change
 * (Data may be given if equal). Put it expecting the user's version. */
json_t *secrets_update(struct store *s, enum store_kind kind, const char *ref,
                       const json_t *spec, struct sh_err *err);
/* The ID DELETE /secrets/{ref} removes; refused (400) while a service's
 * spec references it. Borrowed from the store. */
const char *secrets_remove(struct store *s, enum store_kind kind,
                           const char *ref, struct sh_err *err);
/* The API's Secret or Config. New reference. */
json_t *secrets_view(enum store_kind kind, const json_t *obj);

/* A ServiceSpec's ContainerSpec.Secrets and .Configs as swarmkit checks
 * them: well-formed, no two with one target, each naming an existing
 * object (by ID, with its name). File targets only: a config with a
 * Runtime target (Windows credential specs) is refused (501). */
int secrets_check_refs(struct store *s, const json_t *spec, struct sh_err *err);

/* swarmkit makes the reference and in-use checks inside the store
 * transaction; shoal's run on the leader before it proposes, so each must
 * also see the other kind of write still in flight. removing: the
 * removals proposed and not applied ([{Kind, ID, Name}]): a service spec
 * naming one is refused as if it were gone ("secret not found: X").
 * services: Service objects proposed and not applied: a removal of an
 * object one references is refused as in use. */
int secrets_check_removing(const json_t *spec, const json_t *removing,
                           struct sh_err *err);
int secrets_check_pending_use(enum store_kind kind, const json_t *obj,
                              const json_t *services, struct sh_err *err);

/* What a node needs for these tasks (the Engine API shape, as the
 * dispatcher sends them), only for tasks meant to run:
 * {"Secrets": [{ID, Name, Data}], "Configs": [...]}, each once. */
json_t *secrets_for_tasks(struct store *s, const json_t *tasks);

#endif
