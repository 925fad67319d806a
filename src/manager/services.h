/* Control operations for services: validation with Docker's messages
 * (moby's spec conversion, then swarmkit's controlapi), the spec as moby
 * stores and shows it, and the Service objects to propose. Pure: each
 * function reads the store and returns a new object; the caller proposes
 * (create: STORE_MUST_CREATE; update: the version the user gave, so a stale
 * one fails in apply with "update out of sequence").
 *
 * Errors: moby's own checks are plain 400s ("invalid RestartCondition:
 * \"x\""); swarmkit's come as "rpc error: code = <Code> desc = <msg>". */
#ifndef SHOAL_MANAGER_SERVICES_H
#define SHOAL_MANAGER_SERVICES_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct sh_err;
struct store;

/* Checks a ServiceSpec as create and update do (not name conflicts or
 * ports in use). */
int services_validate_spec(const json_t *spec, struct sh_err *err);

/* The Service for `POST /services/create` with ID id: spec validated and
 * normalized (random name when none, Replicated 1 when no mode, enums
 * spelled out), Endpoint with published ports (ingress ports without a
 * number get one from 30000 up), "_SpecVersion" 0. Refuses a taken name
 * (AlreadyExists "name conflicts with an existing object: service X
 * already exists") and ports used by other services. New reference. */
json_t *services_create(struct store *s, const json_t *spec, const char *id,
                        struct sh_err *err);

/* The next Service for `POST /services/{ref}/update?version=V`. rollback
 * is NULL, "", "none" or "previous" (swaps in PreviousSpec, UpdateStatus
 * "rollback_started" / "manually requested rollback"). Otherwise the old
 * spec becomes PreviousSpec and UpdateStatus is cleared. now_ns stamps
 * UpdateStatus.StartedAt. Put it expecting `version`. New reference. */
json_t *services_update(struct store *s, const char *ref, int64_t version,
                        const json_t *spec, const char *rollback,
                        int64_t now_ns, struct sh_err *err);

/* The ID of the service `DELETE /services/{ref}` removes (delete it with
 * STORE_ANY_VERSION; the orchestrator then removes its tasks). Borrowed
 * from the store. */
const char *services_remove(struct store *s, const char *ref,
                            struct sh_err *err);

/* The service as the Engine API shows it (no '_' keys); insert_defaults
 * (`?insertDefaults=true`) adds swarmkit's defaults: UpdateConfig and
 * RollbackConfig {Parallelism 1, FailureAction pause, Monitor 5s,
 * MaxFailureRatio 0, Order stop-first}, RestartPolicy {Condition any,
 * Delay 5s, MaxAttempts 0}, StopGracePeriod 10s, EndpointSpec Mode vip.
 * New reference. */
json_t *services_view(const json_t *svc, bool insert_defaults);
/* The defaults alone, applied to a copy of a ServiceSpec. */
json_t *services_spec_with_defaults(const json_t *spec);

#endif
