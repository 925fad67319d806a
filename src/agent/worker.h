/* The worker: runs the tasks the dispatcher assigns to this node as
 * containers, and reports their status. One controller per task walks
 * swarmkit's states: preparing (pull the image, create the container) ->
 * starting -> running -> complete | failed; shutdown when the task's
 * desired state says so; rejected when it cannot be prepared. Blocking
 * runtime calls (image pulls, crun/conmon) run on the daemon's work queue;
 * the worker itself lives on the loop.
 *
 * Containers are labelled with their task, so a restarted daemon adopts
 * the ones still running (worker_adopt) instead of starting them again. */
#ifndef SHOAL_AGENT_WORKER_H
#define SHOAL_AGENT_WORKER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct workq;
struct image_store;
struct executor;
struct overlay;
struct seccomp_profile;
struct worker;

struct worker_config {
  uv_loop_t *loop;
  struct workq *work;
  struct image_store *images;
  struct executor *exec;
  /* Tasks' secrets and configs go on a tmpfs per task under
   * <exec_root>/secrets (agent/secretfs.h); NULL: tasks that need any
   * are rejected. */
  const char *exec_root;
  /* The node's data plane for swarm networks; NULL: tasks get a private
   * namespace with loopback only (unit tests). */
  struct overlay *overlay;
  /* ContainerSpec.Privileges.Seccomp mode "default" (or none): this
   * profile; NULL: such tasks run without seccomp. Borrowed. */
  const struct seccomp_profile *seccomp;
  /* Resolvers for names the embedded DNS does not know (dockerd's --dns);
   * NULL or empty: the node's /etc/resolv.conf. */
  const char *const *dns;
  const char *node_id;
  /* Container events (create, start, die, stop, destroy) go here; NULL:
   * none. Borrowed. */
  struct events *events;
  /* Status updates to send to the dispatcher: an array of {ID, Status}
   * (borrowed for the call). */
  void (*report)(void *ud, const json_t *updates);
  /* Log frames of a task for a log subscription; last marks its end.
   * sent(sent_arg) is called on the loop once the frames left (or were
   * dropped): the reader reads on only while little is in flight. */
  void (*send_logs)(void *ud, const char *sub, const char *task_id,
                    const void *data, size_t len, bool last,
                    void (*sent)(void *arg), void *sent_arg);
  void *ud;
};

struct worker *worker_new(const struct worker_config *cfg);
/* The secrets and configs the node's tasks need, with each assignment
 * ({"Secrets": [{ID, Name, Data}], "Configs": [...]}): they replace the
 * ones held before, so what no task needs is dropped from memory. */
void worker_set_files(struct worker *w, const json_t *files);
/* The full list of tasks the dispatcher placed on this node. */
void worker_assign(struct worker *w, const json_t *tasks);
/* A manager asks for logs: {"Sub", "Tasks":[{ID, Container}], "Options":
 * {Follow, Stdout, Stderr, Tail, Since}}. Each task's log is read on a
 * thread of its own (a followed log can last as long as the container). */
void worker_logs(struct worker *w, const json_t *msg);
void worker_logs_cancel(struct worker *w, const char *sub);
/* A data plane message from the leader, applied in order: peers
 * ({Type "peers", Reset, Add, Del}; see manager/peers.h) or the routing
 * mesh ({Type "mesh", Ports}; see manager/mesh.h). */
void worker_peers(struct worker *w, const json_t *msg);
/* A standalone container on swarm networks served by the tasks' embedded
 * DNS: fd its 127.0.0.11:53 socket (taken), nets its network IDs. */
void worker_dns_add(struct worker *w, const char *id, int fd,
                    const json_t *nets);
void worker_dns_remove(struct worker *w, const char *id);
/* This node's ingress attachment {Network, Addresses}: its ingress-sbox
 * is (re)built when it changes. */
void worker_set_ingress(struct worker *w, const json_t *attachment);
/* The cluster's VXLAN port, for networks created from now on. */
void worker_set_vxlan_port(struct worker *w, uint16_t port);
/* What `network ls/inspect` show on this node (new reference):
 * {"Networks": {ID: network object} of the tasks with a container here,
 *  "Endpoints": {task ID: {"Container", "Name"}},
 *  "Peers": {network ID: [{"Name", "IP"}]} (the other nodes holding it)}. */
json_t *worker_network_view(struct worker *w);
/* The node's container commands on a task's container (docker stop, kill,
 * restart, rm, pause, unpause) go through the task's controller, which
 * would otherwise race them. As on swarmkit, the container's exit is the
 * task's own end (complete, or failed with its exit code) and the
 * orchestrator replaces it. So a restart is a stop: the task's replacement
 * is what runs again (the old container's network endpoints went with its
 * task). Blocking runtime calls run on the worker's queue; a stop waits
 * for the exit as a loop event. */
enum worker_ctl_op {
  WORKER_STOP,
  WORKER_KILL,
  WORKER_RESTART,
  WORKER_REMOVE,
  WORKER_PAUSE,
  WORKER_UNPAUSE,
};
struct sh_err;
struct worker_ctl {
  enum worker_ctl_op op;
  int signal;       /* stop, restart: 0 = the container's; kill: the signal */
  int64_t grace_ns; /* stop, restart: < 0: the task's StopGracePeriod */
  bool force;       /* remove: a running container too (SIGKILL first) */
  const char *ref;  /* the container as the user named it (messages) */
  /* On the loop, once: rc 0 done, 1 nothing to do (stop of a container
   * not running: 304), < 0 failed with err. */
  void (*done)(void *ud, int rc, const struct sh_err *err);
  void *ud;
};
/* false: no task here owns container cid (the caller uses the executor);
 * true: c->done will be called. */
bool worker_ctl(struct worker *w, const char *cid, const struct worker_ctl *c);
/* A task state the task never leaves (complete, shutdown, failed,
 * rejected, orphaned). */
bool worker_state_terminal(const char *state);
/* docker rename of a task's container: its events carry the new name. */
void worker_renamed(struct worker *w, const char *cid, const char *name);
/* Finds the containers of tasks on disk (after a restart). */
void worker_adopt(struct worker *w);
/* Stops reconciling (containers keep running) and frees w once no runtime
 * call is in flight. */
void worker_free(struct worker *w);

#endif
