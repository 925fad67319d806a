/* The embedded DNS server of this node's tasks (Docker's 127.0.0.11): one
 * UDP socket in each task's namespace, all served from the event loop.
 * A task resolves the names of the networks it is on (from the leader's
 * table, see manager/mesh.h); other names are forwarded to the node's
 * own resolvers and their reply relayed (SERVFAIL when none answers in
 * time). Queries are answered by dns/dns.h. UDP only. */
#ifndef SHOAL_AGENT_DNSD_H
#define SHOAL_AGENT_DNSD_H

#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

struct sh_err;
struct dnsd;

struct dnsd *dnsd_new(uv_loop_t *loop);
/* {network ID: {name: [IPv4...]}}: replaces the table. */
void dnsd_set_names(struct dnsd *d, const json_t *names);
/* The node's resolvers for other names: IPv4 strings (port 53). */
void dnsd_set_resolvers(struct dnsd *d, const json_t *resolvers);
/* Serves a task: fd is its bound socket (netns_udp_bind; taken, closed
 * on failure too), nets the IDs of its networks. A task served already
 * gets the new socket. */
int dnsd_add(struct dnsd *d, const char *task_id, int fd, const json_t *nets,
             struct sh_err *err);
void dnsd_remove(struct dnsd *d, const char *task_id);
/* A served task's networks change (docker network connect); false: it
 * is not served. */
bool dnsd_set_nets(struct dnsd *d, const char *task_id, const json_t *nets);
/* The task's own upstreams (its --dns servers, IPv4 strings), in place
 * of the node's; NULL or empty: the node's again. */
void dnsd_set_task_resolvers(struct dnsd *d, const char *task_id,
                             const json_t *resolvers);
/* Closes every socket; freed once libuv let go of them (the loop must run
 * on). NULL is fine. */
void dnsd_free(struct dnsd *d);

#endif
