/* The node's event log, as dockerd's events service: every event is kept
 * in a ring of the last EVENTS_KEPT (for `docker events --since`) and
 * handed to each subscriber (a streaming GET /events). Events are
 * moby's events.Message:
 *   {"Type", "Action", "Actor": {"ID", "Attributes": {...}}, "scope",
 *    "time", "timeNano"}
 * plus the legacy "status", "id", "from" of container and image events.
 * Local events (containers, images, volumes, networks of this node) come
 * from the executor's and the API's code paths; swarm events (nodes,
 * services, networks, secrets, configs) from the manager's store changes
 * (events_cluster_changes), on managers only, as dockerd.
 * Loop thread only. */
#ifndef SHOAL_EVENTS_EVENTS_H
#define SHOAL_EVENTS_EVENTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store_change;

#define EVENTS_KEPT 256 /* moby's eventsLimit */

struct events;

struct events *events_new(void);
void events_free(struct events *e);

/* Publishes an event of now. attrs: an object of strings, stolen (NULL:
 * none). scope: "local" or "swarm". */
void events_publish(struct events *e, const char *type, const char *action,
                    const char *id, json_t *attrs, const char *scope);
/* The same at a given time (swarm events carry the object's UpdatedAt). */
void events_publish_at(struct events *e, const char *type, const char *action,
                       const char *id, json_t *attrs, const char *scope,
                       int64_t at_ns);

/* dockerd's volume mount (mount true, at the container's start: driver,
 * container, destination, read/write, propagation) or unmount (at its
 * end: driver, container) events for the named volumes among mounts, an
 * array shaped as inspect's Mounts (Type, Name, Destination, RW,
 * Propagation). */
void events_volume_mounts(struct events *e, const json_t *mounts,
                          const char *cid, bool mount);

/* fn gets each new event (borrowed for the call). Returns an id for
 * events_unsubscribe. fn may unsubscribe itself. */
typedef void (*events_fn)(const json_t *ev, void *ud);
int events_subscribe(struct events *e, events_fn fn, void *ud);
void events_unsubscribe(struct events *e, int id);

/* Kept events with since_ns <= time <= until_ns (until_ns 0: no upper
 * bound), oldest first. New reference. */
json_t *events_history(struct events *e, int64_t since_ns, int64_t until_ns);

/* Swarm events for a batch of store changes, as moby's
 * generateClusterEvent: create, update (with the changed attributes of
 * nodes and services) and remove of nodes, services, networks, secrets
 * and configs. Objects whose kind has no event are skipped. */
void events_cluster_changes(struct events *e, const struct store_change *ch,
                            size_t n);

#endif
