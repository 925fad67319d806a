/* The agent: a node's side of the dispatcher session. It keeps one session
 * open with a manager over mutual TLS, heartbeats at the period the
 * manager gives, follows the manager list, and reconnects (with backoff,
 * rotating through the known managers) when the session breaks. Later it
 * will receive task assignments on the same stream and report status. */
#ifndef SHOAL_AGENT_AGENT_H
#define SHOAL_AGENT_AGENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct http_client;
struct agent;
struct sh_err;

struct agent_config {
  uv_loop_t *loop;
  struct http_client *client;
  const char *node_id;
  const char *cert_pem, *key_pem, *root_pem;
  const json_t *managers;    /* array of "ip:port", borrowed */
  const json_t *description; /* Node.Description, borrowed */
  /* A session was established (called on every (re)connect). */
  void (*on_ready)(void *ud);
  /* The manager list changed (to persist it). */
  void (*on_managers)(void *ud, const json_t *managers);
  /* This node's object as the managers have it (sent at session start
   * and on every change): role changes start from here. */
  void (*on_node)(void *ud, const json_t *node);
  /* The cluster's CA facts ({ForceRotate, RootCA, Issuer: {Subject,
   * PublicKey}}), with every node message. */
  void (*on_ca)(void *ud, const json_t *ca);
  /* The full list of tasks placed on this node (after every change: the
   * agent applies the session's changes to its copy); files holds the secrets
   * and configs they need ({"Secrets": [{ID, Name, Data}], "Configs": [...]}).
   */
  void (*on_assignments)(void *ud, const json_t *tasks, const json_t *files);
  /* Instead of on_assignments, for an executor that keeps its own copy:
   * each message's changes as they come. set: tasks new or changed; del:
   * IDs no longer placed here; whole: set is the complete list (anything
   * not in it is gone, del is NULL). No files: an executor that needs
   * secrets or configs uses on_assignments. A node of 100 tasks gets ~100
   * messages while they start; the whole list each time made the
   * simulator's nodes quadratic. */
  void (*on_assignment_changes)(void *ud, const json_t *set, const json_t *del,
                                bool whole);
  /* This node's ingress endpoint: {Network, Addresses} (its
   * ingress-sbox's attachment). */
  void (*on_ingress)(void *ud, const json_t *attachment);
  /* The data plane's messages, in order: who is where on this node's
   * networks ({Type "peers", Reset, Add, Del}) and the routing mesh's
   * table ({Type "mesh", Ports}). */
  void (*on_peers)(void *ud, const json_t *msg);
  /* A manager wants task logs / no longer wants them (log broker). */
  void (*on_logs)(void *ud, const json_t *msg);
  void (*on_logs_cancel)(void *ud, const char *sub);
  /* The cluster refused this node (removed from the swarm). */
  void (*on_rejected)(void *ud, int status, const char *msg);
  void *ud;
};

struct agent *agent_start(const struct agent_config *cfg);
/* Brings a node's assignments up to date with a session message: Type
 * "assignments" is the whole list, "assignment_changes" the changes to
 * it ({"Set": [task], "Del": [ID]}, "Secrets" and "Configs" when those
 * changed). *assigned (task ID -> task) and *files ({Secrets, Configs})
 * are updated (made when NULL). Returns the whole list as the full
 * message has it ({"Type": "assignments", "Tasks" in CreatedAt then ID
 * order, "Secrets", "Configs"}; new reference), or NULL for a malformed
 * message (nothing changed). */
json_t *agent_assignments_apply(json_t **assigned, json_t **files,
                                const json_t *msg);
/* Tells the manager this node leaves (best effort), then stops. */
void agent_leave(struct agent *a, void (*done)(void *ud), void *ud);
/* Stops without telling anyone (daemon shutdown). */
void agent_stop(struct agent *a);
/* One call to the manager the session is with (the leader) on the swarm
 * port: POST path with body; done on the loop once, with the answer's
 * JSON (borrowed) or err ({"message"} of a refusal, 503 when no manager
 * answers or the agent stops first). */
typedef void (*agent_call_fn)(void *ud, const json_t *answer,
                              const struct sh_err *err);
void agent_call(struct agent *a, const char *path, const json_t *body,
                agent_call_fn done, void *ud);
bool agent_connected(const struct agent *a);
/* Status report requests sent so far (each may carry several updates),
 * and the updates they carried (a task's statuses merged while a request
 * was in flight count once). */
uint64_t agent_report_requests(const struct agent *a);
uint64_t agent_report_updates(const struct agent *a);
/* The cluster's VXLAN UDP port, from the session (0 before one). */
uint16_t agent_data_path_port(const struct agent *a);
/* The swarm's ingress network object (borrowed; NULL before a session). */
const json_t *agent_ingress(const struct agent *a);
/* Sends task status updates ([{ID, Status}]) to the dispatcher; updates
 * that cannot be delivered now are kept and sent after reconnecting. */
void agent_report(struct agent *a, const json_t *updates);
/* Sends log frames of a task to the manager's log broker, in order;
 * sent(sent_arg), when set, runs on the loop once the post is answered,
 * failed or dropped. */
void agent_send_logs(struct agent *a, const char *sub, const char *task_id,
                     const void *data, size_t len, bool last,
                     void (*sent)(void *arg), void *sent_arg);
/* Sends a heartbeat now (after the one in flight, if any) and calls done
 * once it is answered or failed; at once when not connected. The
 * simulator stops a node right after one, so the nodes it takes down
 * together are marked down together. */
void agent_heartbeat_then(struct agent *a, void (*done)(void *ud), void *ud);
/* The manager the agent talks to now ("ip:port"), NULL if none. */
const char *agent_manager(const struct agent *a);
/* A new certificate (role change, renewal) for the next connections, and
 * root_pem, when not NULL, the only root to trust from now on (a root
 * rotation completed); the facts (Description.TLSInfo) go to the manager
 * with a heartbeat sent at once. */
void agent_set_identity(struct agent *a, const char *cert_pem,
                        const char *key_pem, const char *root_pem);
/* This node's IP as its manager sees it (NULL before a session). */
const char *agent_node_addr(const struct agent *a);
/* Builds this host's Node.Description (hostname, platform, resources,
 * engine). New reference. */
json_t *agent_local_description(const char *hostname,
                                const char *engine_version);

#endif
