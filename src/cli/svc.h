/* What docker's service, task and container commands print, rendered from
 * Engine API JSON: service ls / service ps / docker ps tables (default
 * layouts and --format templates), service inspect --pretty, and the
 * non-terminal lines of the service convergence display. Pure functions;
 * relative times are taken against now_ns (Unix ns) so tests pin them. */
#ifndef SHOAL_CLI_SVC_H
#define SHOAL_CLI_SVC_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/util.h"

struct sh_err;

/* RFC 3339 (with optional fraction and offset) to Unix ns; -1 if bad. */
int64_t svc_parse_time(const char *rfc3339);
/* Go's time.Duration.String(): "10s", "1m30s", "1.5s", "0s". */
char *svc_go_duration(int64_t ns, char *out, size_t n);
/* docker's display of an image reference: a digest is dropped when a tag is
 * present, docker.io/library/ is dropped ("nginx:latest@sha256:.." ->
 * "nginx:latest"; "nginx@sha256:.." and "nginx" unchanged). Caller frees. */
char *svc_image_display(const char *image);
/* formatter.Ellipsis for the given display width. Caller frees. */
char *svc_ellipsis(const char *s, int width);

/* A service object with its keys in the order of docker's Go structs
 * (swarm.Service), which is the order docker service inspect prints; keys
 * it does not know keep their order after the known ones. New reference. */
json_t *svc_go_order_service(const json_t *service);

/* service ls: services as GET /services?status=true returns them, sorted
 * here by name. format NULL/"" is the default table. */
int render_service_list(const json_t *services, const char *format, bool quiet,
                        sh_buf *out, struct sh_err *err);
/* The PORTS column of service ls ("*:8080->80/tcp"). Caller frees. */
char *svc_ports(const json_t *service);

/* service ps: tasks from GET /tasks; names: service ID -> service name;
 * nodes: node ID -> hostname (an ID missing here prints as the ID). */
int render_task_list(const json_t *tasks, const json_t *names,
                     const json_t *nodes, bool trunc, bool quiet,
                     const char *format, int64_t now_ns, sh_buf *out,
                     struct sh_err *err);

/* service inspect --pretty for one service; netnames: network ID -> name
 * (or NULL: IDs are shown). */
void render_service_pretty(const json_t *service, const json_t *netnames,
                           int64_t now_ns, sh_buf *out);

/* docker ps: containers from GET /containers/json. */
int render_container_list(const json_t *containers, bool trunc, bool quiet,
                          const char *format, int64_t now_ns, sh_buf *out,
                          struct sh_err *err);

/* docker's jsonmessage display of the convergence messages: on a terminal
 * each ID keeps its line (cursor moves, "\x1b[2K" clears) and state bars
 * are drawn when the terminal is wider than 110 columns; off a terminal
 * the messages carrying a progress bar are dropped and the others printed
 * as "ID: status" lines. */
struct svc_display {
  bool tty;
  int width;   /* terminal columns (docker uses 200 when unknown) */
  json_t *ids; /* ID -> line number; created on first use */
};
/* A progress message (every message of the convergence display is one):
 * cur/total 0 means no bar. */
void svc_display_progress(struct svc_display *d, const char *id,
                          const char *status, int64_t cur, int64_t total,
                          sh_buf *out);
/* A plain message ("rollback: ...", "Operation continuing..."). */
void svc_display_message(struct svc_display *d, const char *id,
                         const char *status, sh_buf *out);
void svc_display_free(struct svc_display *d);

/* One pass of docker's replicated/global progress updater: the state a
 * caller keeps between polls of the service and its up-to-date tasks. */
struct svc_progress {
  bool initialized, done;
  int nslots;
  int64_t slots[64]; /* task slot -> display slot (index + 1) */
};
/* Writes this poll's messages; returns 1 when every replica/node runs.
 * active: node IDs not down (an object used as a set); rollback words the
 * overall line as docker does during a rollback. */
int svc_progress_update(struct svc_progress *p, const json_t *service,
                        const json_t *tasks, const json_t *active,
                        bool rollback, struct svc_display *d, sh_buf *out);

#endif
