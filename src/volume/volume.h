/* The node's local volumes (driver "local"), as dockerd keeps them:
 *   <data-root>/volumes/<name>/_data        what containers mount
 *   <data-root>/volumes/<name>/shoal.json   CreatedAt, Labels, Options
 * One owner for both ways a volume comes to be: `docker volume create` and
 * a task's `--mount type=volume,source=NAME` (the executor calls
 * volume_create), so the two name the same volume. A directory without
 * shoal.json (made before this module) is a volume with no labels, created
 * when its directory was.
 *
 * Every function touches disk (call them from worker threads); calls may
 * run concurrently: creates and removes are serialised inside. Which
 * containers use a volume is the caller's to say (the executor's mounts). */
#ifndef SHOAL_VOLUME_VOLUME_H
#define SHOAL_VOLUME_VOLUME_H

#include <jansson.h>
#include <stdbool.h>

struct sh_err;

/* dockerd's label on volumes made without a name (anonymous). */
#define VOLUME_ANON_LABEL "com.docker.volume.anonymous"

/* dockerd's local driver rule: [a-zA-Z0-9][a-zA-Z0-9_.-]+ */
bool volume_name_valid(const char *name);

/* Creates the volume, or returns the existing one of that name (as dockerd:
 * creating a volume that exists is not an error; its labels stay). name
 * NULL or "": an anonymous volume with a random name and VOLUME_ANON_LABEL.
 * labels, opts: objects of strings or NULL. The local driver's options
 * (type, device, o) mount filesystems, which shoal does not do: any option
 * is refused with 400. *out (may be NULL) gets the Engine API's Volume. */
/* fn is told, from whichever thread made the change, of each volume
 * created ("create") or removed ("destroy") from now on: the node's
 * volume events. One hook per process (the daemon's); NULL: none. */
void volume_set_hook(void (*fn)(const char *name, const char *action, void *ud),
                     void *ud);

int volume_create(const char *data_root, const char *name, const json_t *labels,
                  const json_t *opts, json_t **out, struct sh_err *err);

/* The Volume object; 404 "get NAME: no such volume". */
int volume_get(const char *data_root, const char *name, json_t **out,
               struct sh_err *err);

/* Every volume, sorted by name. */
int volume_list(const char *data_root, json_t **out, struct sh_err *err);

/* The directory a container mounts for the volume (new string). */
char *volume_data_path(const char *data_root, const char *name);

/* Removes the volume and its data. users: IDs of the containers that use
 * it (NULL or empty: none); any makes it 409 "remove NAME: volume is in
 * use - [ID, ...]". 404 "get NAME: no such volume" unless it exists (force:
 * 0 then). */
int volume_remove(const char *data_root, const char *name, const json_t *users,
                  bool force, struct sh_err *err);

#endif
