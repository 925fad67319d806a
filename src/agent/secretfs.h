/* A task's secrets and configs on the node: each task that needs any gets
 * its own tmpfs at <exec_root>/secrets/<task ID> (memory only: never the
 * node's disk), mounted before its container is created and unmounted when
 * the container is removed. The files are bind mounted read-only into the
 * container: secrets at /run/secrets/<target>, configs at their target
 * (relative: under /), with the reference's UID, GID and mode (default
 * 0, 0, 0444), as dockerd places them. The mount outlives a shoald
 * restart with the container: its path is the task's, so nothing needs
 * remembering. */
#ifndef SHOAL_AGENT_SECRETFS_H
#define SHOAL_AGENT_SECRETFS_H

#include <jansson.h>
#include <stddef.h>

struct sh_err;

/* What the task needs, from its Spec.ContainerSpec.Secrets/Configs and
 * the secrets and configs the node holds (held: {"Secrets": [{ID, Name,
 * Data}], "Configs": [...]}). *out: new array of {File (name in the
 * tmpfs), Target (absolute, in the container), UID, GID, Mode, Data
 * (base64)}, empty when the task needs none. 404 "secret X not found"
 * when the node does not hold one. */
int secretfs_plan(const json_t *task, const json_t *held, json_t **out,
                  struct sh_err *err);
/* Mounts the task's tmpfs and writes the plan's files. The path of the
 * directory (new string) in *dir. Nothing is left mounted on failure. */
int secretfs_setup(const char *exec_root, const char *task_id,
                   const json_t *plan, char **dir, struct sh_err *err);
/* Unmounts and removes the task's tmpfs; nothing to do is no error. */
int secretfs_teardown(const char *exec_root, const char *task_id,
                      struct sh_err *err);
/* After a restart: tears down those whose task is not in keep (an object
 * keyed by task ID). */
void secretfs_sweep(const char *exec_root, const json_t *keep);

#endif
