/* The dispatcher: the manager side of node sessions. A node opens a session
 * (a long-lived streaming response carrying session facts now and task
 * the node's task assignments: the full list of tasks placed on it at
 * the start, then the changes to it) and heartbeats within the period the
 * cluster spec sets. On the leader it is the authority on node health: a node
 * whose heartbeats stop for HEARTBEAT_GRACE periods goes Down ("heartbeat
 * failure"); a node that opens a session goes Ready. */
#ifndef SHOAL_MANAGER_DISPATCHER_H
#define SHOAL_MANAGER_DISPATCHER_H

#include <jansson.h>
#include <stdbool.h>

struct manager;
struct http_req;
struct dispatcher;
struct sh_err;

/* Missed periods before a node is declared down (swarmkit uses 3). */
#define HEARTBEAT_GRACE 3

struct dispatcher *dispatcher_new(struct manager *m);
void dispatcher_free(struct dispatcher *d);
/* Leader-only duties start/stop here. */
void dispatcher_set_leader(struct dispatcher *d, bool leader);
/* POST /swarm/v1/session and /swarm/v1/heartbeat from authenticated
 * nodes; node_id is the certificate's CN. */
void dispatcher_session(struct dispatcher *d, struct http_req *req,
                        const char *node_id);
void dispatcher_heartbeat(struct dispatcher *d, struct http_req *req,
                          const char *node_id);
/* POST /swarm/v1/tasks: task status reports from the node's agent. */
void dispatcher_task_status(struct dispatcher *d, struct http_req *req,
                            const char *node_id);
/* The checks of a status report's body before any of it is queued: 0,
 * or 400 naming what is wrong (Updates not an array, a Status the store
 * could not keep: store_field_fits). */
int dispatcher_report_check(const json_t *body, struct sh_err *err);
/* A node said it leaves the swarm: end its session, mark it down now. */
void dispatcher_leave(struct dispatcher *d, struct http_req *req,
                      const char *node_id);
/* Pushes a message to a node's session stream (when it has one). */
void dispatcher_send(struct dispatcher *d, const char *node_id,
                     const json_t *msg);
/* Ends the node's session (node removed). */
void dispatcher_drop(struct dispatcher *d, const char *node_id);

struct store;
/* The message that brings a node's view of its assignments up to date
 * (pure: the session's stream sends it). *tasks_sent (task ID ->
 * Version.Index) and *files_sent are what the node was sent before, NULL
 * on a new session or after a reset; both are brought up to date. With
 * no *tasks_sent: {"Type": "assignments", "Tasks", "Secrets", "Configs"},
 * the whole list; after that {"Type": "assignment_changes", "Set":
 * [task], "Del": [ID]}, with "Secrets" and "Configs" when those changed,
 * or NULL when nothing changed for the node.
 * changed (task ID -> anything, may be NULL): the only tasks that changed
 * since *tasks_sent, so the cost is theirs; the secrets and configs are
 * looked at again only when one of them names some or left the node (a
 * task's spec never changes once made: an update makes new tasks).
 * Without it, the node's tasks come from the NodeID index. */
json_t *dispatcher_assignments(struct store *st, const char *node_id,
                               const json_t *changed, json_t **tasks_sent,
                               json_t **files_sent);
/* Whether a store change of a task is news to its node (old or cur may be
 * NULL): not when only its status (and the version stamps) moved past
 * assigned, which is the node's own report coming back (swarmkit's
 * TasksEqualStable). Such a change is left out of changed, and the node
 * keeps the version it was sent until something else changes. */
bool dispatcher_task_news(const json_t *old, const json_t *cur);
/* The same of a store change of a task, without comparing the two
 * versions' values when the change is a status report's (status_only). */
struct store_change;
bool dispatcher_change_news(const struct store_change *c);

#endif
