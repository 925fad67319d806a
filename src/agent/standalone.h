/* Standalone containers (docker create / start / run) on this node: their
 * owner, beside the worker that owns task containers. Both kinds are the
 * executor's containers (one lifecycle, listed, inspected, logged,
 * stopped and removed by the same commands); what only a standalone one
 * has lives here: its network endpoint on the `bridge` network (docker0,
 * with published ports) or on an attachable overlay (an attachment the
 * managers allocate at its first start, kept in
 * <data-root>/standalone/<id>.attachment.json until it is removed), its restart
 * policy (dockerd's backoff: 100 ms doubling to 1 min, reset after 10 s of
 * running), --rm, and its create/start/die/destroy events.
 *
 * Everything is on the loop; runtime calls run on the work queue, one at
 * a time per container. A container's settings are its inspect data
 * (HostConfig.RestartPolicy, AutoRemove, NetworkMode, PortBindings,
 * PublishAllPorts, Config.ExposedPorts, RestartCount); a manual stop is
 * a marker file <data-root>/standalone/<id>.stopped. So a restarted
 * shoald adopts them from disk: running ones are watched again, exited
 * ones are restarted as their policy says (always; unless-stopped unless
 * stopped by the user; on-failure after a failure), --rm ones removed. */
#ifndef SHOAL_AGENT_STANDALONE_H
#define SHOAL_AGENT_STANDALONE_H

#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

struct sh_err;
struct workq;
struct image_store;
struct executor;
struct overlay;
struct events;
struct seccomp_profile;
struct standalone;

/* The managers' answer to a call (agent_call's shape). */
typedef void (*standalone_call_done)(void *cbud, const json_t *answer,
                                     const struct sh_err *err);

struct standalone_config {
  uv_loop_t *loop;
  struct workq *work;
  struct image_store *images;
  struct executor *exec;
  struct overlay *overlay; /* NULL: only --network none and host */
  struct events *events;   /* NULL: none */
  const struct seccomp_profile *seccomp; /* the default profile, or NULL */
  const char *data_root, *exec_root;
  const char *bridge_id; /* the `bridge` network's ID, or NULL */
  /* Swarm networks (attachable overlays): a call to the managers,
   * "/swarm/v1/attach" or "/swarm/v1/detach" (manager/attach.h); outside
   * a swarm it fails ("network X not found"). The embedded DNS of the
   * node's tasks: dns_add takes fd (a socket on 127.0.0.11:53 in the
   * container's namespace) for a container on networks nets (IDs);
   * dns_remove drops it. All on the loop; NULL: none. */
  void (*call)(void *ud, const char *path, const json_t *body,
               standalone_call_done done, void *cbud);
  void (*dns_add)(void *ud, const char *id, int fd, const json_t *nets);
  void (*dns_remove)(void *ud, const char *id);
  void *ud;
};

struct standalone *standalone_new(const struct standalone_config *cfg);
/* At shutdown, before the work queue closes: nothing new is started
 * (containers keep running under conmon). */
void standalone_stop(struct standalone *sa);
/* After the work queue closed (its completions ran). */
void standalone_free(struct standalone *sa);
/* Finds this node's standalone containers on disk (after a start). */
void standalone_adopt(struct standalone *sa);

/* On the loop, once: rc 0 done (id: the container's), 1 nothing to do
 * (start of a running container: 304), < 0 failed with err. */
typedef void (*standalone_done_fn)(void *ud, int rc, const char *id,
                                   const struct sh_err *err);

/* POST /containers/create: body is the request, name ?name= (NULL or "":
 * a random one). 404 "No such image: X" (the CLI then pulls), 409 for a
 * name in use, 400/501 from runspec_parse. */
void standalone_create(struct standalone *sa, const json_t *body,
                       const char *name, standalone_done_fn done, void *ud);
/* POST /containers/{id}/start. */
void standalone_start(struct standalone *sa, const char *ref,
                      standalone_done_fn done, void *ud);
/* docker restart of one of these: stop (sig 0: its stop signal; grace <
 * 0: 10 s), then start again with its network. false: not one of ours. */
bool standalone_restart(struct standalone *sa, const char *id, int sig,
                        int64_t grace_ns, standalone_done_fn done, void *ud);

/* The node's container commands (api/ctl.c) on a container: told before
 * the executor's call, so a stop, a kill (stop_like: SIGKILL or the
 * container's stop signal) or a removal is no exit to restart (dockerd's
 * HasBeenManuallyStopped), and a stop's die event, which ctl.c logs, is
 * not logged twice. No-ops for containers that are not ours. */
void standalone_stopping(struct standalone *sa, const char *id, bool stop_like,
                         bool die_logged, bool removing);
/* After a docker update: info is the container's new inspect (its
 * restart policy counts from the next exit). No-op if not ours. */
void standalone_updated(struct standalone *sa, const char *id,
                        const json_t *info);
/* docker network connect (connect) or disconnect of container ref on a
 * bridge network: net_id ("" for docker0, `bridge`) named net_name;
 * epcfg: the request's EndpointConfig (Aliases, IPAMConfig.IPv4Address).
 * A running container gets or loses its interface now, a stopped one at
 * its next start; a network event (connect, disconnect) as dockerd's.
 * 403 dockerd's "endpoint with name C already exists in network N". */
void standalone_network(struct standalone *sa, bool connect, const char *ref,
                        const char *net_id, const char *net_name,
                        const json_t *epcfg, standalone_done_fn done, void *ud);
/* Who holds this owner's endpoints, for `network inspect` Containers,
 * and the swarm networks they are attached to (a worker's only source):
 * {"Endpoints": {container ID: {"Container", "Name"}},
 *  "Networks": {network ID: the network object of the attachment}}. */
json_t *standalone_network_view(struct standalone *sa);
/* After a stop that ended a run: done runs once the daemon has handled
 * that exit (the address and ports released, as inspect then shows), at
 * once when no exit of it is pending (not ours, not running, or not
 * watched); dockerd answers a stop only once the container is cleaned
 * up, and a `docker inspect` right after shows no address. */
void standalone_stopped(struct standalone *sa, const char *id,
                        standalone_done_fn done, void *ud);
/* After a removal (rm, prune): the endpoint goes and the container is
 * forgotten; done (NULL: none) runs once the endpoint is released, as
 * dockerd answers `rm` only then (a `network rm` right after finds no
 * endpoint). */
void standalone_removed(struct standalone *sa, const char *id,
                        standalone_done_fn done, void *ud);

#endif
