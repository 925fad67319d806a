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

/* What one service may ask of the store. swarmkit sets no bound, but one
 * request must not be able to exhaust a manager: the leader's reconcile
 * passes are O(tasks) on the loop thread, and every manager holds all
 * tasks in memory and in each raft snapshot. Measured on a loaded 2-core
 * host, one service of 5,000 tasks costs 7-40 ms per pass and _ping stays
 * under 100 ms while it is built; at 10,000 passes reach 120 ms, at 20,000
 * 300 ms. A create, update or scale asking for more is refused with 400
 * (InvalidArgument). */
#define SERVICES_MAX_REPLICAS 5000
/* Serialized TaskTemplate + EndpointSpec + this much per task, times
 * replicas: at most SERVICES_MAX_TASK_BYTES (a task's own fields, IDs,
 * status and timestamps, take about 400 bytes). */
#define SERVICES_TASK_OVERHEAD 512
#define SERVICES_MAX_TASK_BYTES (32 * 1024 * 1024)

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
                        int64_t now_ns, struct sh_err *err);

/* The spec's mode: "Replicated" (also when none is set), "Global",
 * "ReplicatedJob" or "GlobalJob". A job's Service carries JobStatus
 * {JobIteration {Index}, LastExecution}: 0 and now_ns at create, the
 * index raised by every update (which runs the job again). */
const char *services_mode_name(const json_t *spec);

/* The next Service for `POST /services/{ref}/update?version=V`. rollback
 * is NULL, "", "none" or "previous" (swaps in PreviousSpec, UpdateStatus
 * "rollback_started" / "manually requested rollback"). Otherwise the old
 * spec becomes PreviousSpec and UpdateStatus is cleared. now_ns stamps
 * UpdateStatus.StartedAt. Put it expecting `version`. New reference. */
json_t *services_update(struct store *s, const char *ref, int64_t version,
                        const json_t *spec, const char *rollback,
                        int64_t now_ns, struct sh_err *err);

/* Registry credentials for the nodes' pulls (`--with-registry-auth`), as
 * swarmkit's ContainerSpec.PullOptions.RegistryAuth: the X-Registry-Auth
 * header as the client sent it, kept in the store under ContainerSpec's
 * internal key "_PullOptions" {RegistryAuth}, so no API view shows it (as
 * moby's never does) while raft, PreviousSpec, rollbacks and the tasks
 * carry it. A spec from the API never sets it.
 *
 * next is what services_create (cur NULL) or services_update (cur: the
 * service before, rollback: the update was ?rollback=previous) made. As
 * moby's CreateService and UpdateService: a header replaces the stored
 * value (a malformed one is a 400 "invalid X-Registry-Auth header: ...");
 * without one an update keeps the auth of the current spec (from NULL, ""
 * or "spec") or of its PreviousSpec ("previous-spec"; "service does not
 * have a previous spec" without one); any other from is "unsupported
 * registryAuthFrom value". A rollback takes the previous spec with its
 * own auth, as swarmkit does. */
#define SERVICES_PULL_OPTIONS "_PullOptions"
int services_registry_auth(json_t *next, const json_t *cur, bool rollback,
                           const char *header, const char *from,
                           struct sh_err *err);
/* The stored encoded auth of a ContainerSpec (a service's or a task's),
 * or NULL. Borrowed. */
const char *services_pull_auth(const json_t *container_spec);

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
/* The running tasks services want on nodes down or removed, which
 * ServiceStatus does not count, for the store at one raft index. Nodes are
 * rarely down, and then one walk of their tasks serves every service of a
 * `service ls`. Zeroed to start; services_lost_free at the end. */
struct services_lost {
  json_t *by_service; /* service ID -> count */
  uint64_t at;        /* store_index it was made at */
};
void services_lost_free(struct services_lost *l);
/* ServiceStatus {RunningTasks, DesiredTasks, CompletedTasks} as swarmkit
 * counts them: tasks running and desired at most running on a node not
 * down; a job's current iteration only; a global job desires each task
 * not yet complete. A replicated service costs two index counts, not a
 * walk of its tasks. New reference. */
json_t *services_status(struct store *s, const json_t *svc,
                        struct services_lost *lost);
/* The defaults alone, applied to a copy of a ServiceSpec. */
json_t *services_spec_with_defaults(const json_t *spec);

#endif
