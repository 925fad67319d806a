/* The Docker Engine API (v1.47) that shoald serves on its sockets: version
 * negotiation and routing (router.c), and handlers per area: system
 * (_ping, version, info), swarm, nodes, services, images, containers,
 * networks, volumes, secrets and configs. Errors are
 * {"message": ...} with Docker's status codes. */
#ifndef SHOAL_API_API_H
#define SHOAL_API_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct shoald;
struct http_req;
struct sh_err;

/* The http_server handler; ud is the struct shoald. */
void api_handle(struct http_req *req, void *ud);

/* The swarm port's handler for API calls a follower manager forwarded
 * (path prefixed with /swarm/v1/forward); ud is the struct shoald. */
void api_handle_forwarded(struct http_req *req, void *ud);

/* Listens on a -H value: unix:///path, tcp://host:port, fd:// unsupported.
 * Creates d->api on first use. */
int api_listen(struct shoald *d, const char *host, struct sh_err *err);

/* Per-request context passed to handlers. */
struct api_call {
  struct shoald *d;
  struct http_req *req;
  const char *path; /* without the /vX.Y prefix */
  int version_major, version_minor;
};

void api_reply_json(struct http_req *req, int status, json_t *body);
void api_reply_err(struct http_req *req, const struct sh_err *err);
/* Request body as a JSON object (400 with Docker's wording if not). */
int api_body(struct http_req *req, json_t **out, struct sh_err *err);
/* Query flags "1"/"true" (Docker's boolValue). */
bool api_query_bool(struct http_req *req, const char *name);

/* Every value of key in the raw query (names=a&names=b), decoded;
 * NULL-ended: free each, then the array. */
char **api_query_all(const char *raw, const char *key);

/* ?version=N as moby parses it ("invalid <what> version '...'"). */
int api_query_version(struct http_req *req, const char *what, int64_t *out,
                      struct sh_err *err);

/* Handlers: each returns true when it took the route. */
bool api_system(struct api_call *c);
bool api_swarm(struct api_call *c);
bool api_nodes(struct api_call *c);
bool api_services(struct api_call *c);
bool api_images(struct api_call *c);
/* Sends the image store's events (pull, tag, delete, ...) to the node's
 * event log; once, after the store and the event log exist. */
void api_images_events(struct shoald *d);
bool api_containers(struct api_call *c);
/* docker cp: HEAD, GET, PUT /containers/{id}/archive (archive.c). */
bool api_archive(struct api_call *c);
/* Lifecycle and inspection of one container (ctl.c): stop, kill, restart,
 * wait, DELETE, pause, unpause, rename, top, stats, changes. */
bool api_container_ctl(struct api_call *c);
/* POST /containers/{id}/update and POST /commit (update.c). */
bool api_update(struct api_call *c);
/* POST /containers/create and /containers/{id}/start (run.c). */
bool api_run(struct api_call *c);
/* POST /containers/prune (prune.c). */
bool api_prune(struct api_call *c);
bool api_networks(struct api_call *c);
/* The ID of this node's local network name (bridge, host, none,
 * docker_gwbridge): made once, kept in <data-root>/network/local.json;
 * valid while the daemon runs. NULL for another name. */
const char *api_local_network_id(struct shoald *d, const char *name);
bool api_events(struct api_call *c);
bool api_volumes(struct api_call *c);
/* /secrets and /configs (secrets.c). */
bool api_secrets(struct api_call *c);
/* docker exec and attach: /containers/{id}/exec|attach|resize, /exec/{id}
 * (exec.c). */
bool api_exec(struct api_call *c);
/* Frees the exec instances (at shutdown, the loop stopped). */
void api_execs_free(struct shoald *d);
/* On a follower manager, forwards cluster writes to the leader. */
bool api_forward(struct api_call *c);

#endif
