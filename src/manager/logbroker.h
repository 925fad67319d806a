/* The log broker (leader): `service logs` and `task logs`. A subscription
 * asks, through their dispatcher sessions, the nodes running the tasks to
 * read their containers' logs; the nodes post the frames back
 * (/swarm/v1/logs/<sub>), and the broker writes them to the client as
 * Docker's multiplexed stream, each line prefixed with the swarm context
 * ("com.docker.swarm.node.id=...,com.docker.swarm.service.id=...,
 * com.docker.swarm.task.id=... ") when details are asked for, as dockerd
 * does. Without follow the stream ends when every node has sent all. */
#ifndef SHOAL_MANAGER_LOGBROKER_H
#define SHOAL_MANAGER_LOGBROKER_H

#include <stdbool.h>
#include <stdint.h>

struct manager;
struct http_req;
struct sh_err;
struct logbroker;

struct log_options {
  bool follow, stdout_, stderr_, timestamps, details;
  long tail;        /* < 0: all */
  int64_t since_ns; /* 0: from the start */
};

struct logbroker *logbroker_new(struct manager *m);
void logbroker_free(struct logbroker *b);
/* Streams the logs of a service (task_ref NULL) or of one task (service_ref
 * NULL) to req. Errors before the stream starts are returned. */
int logbroker_subscribe(struct logbroker *b, struct http_req *req,
                        const char *service_ref, const char *task_ref,
                        const struct log_options *o, struct sh_err *err);
/* POST /swarm/v1/logs/<sub>?task=<id>[&last=1] from a node. */
void logbroker_publish(struct logbroker *b, struct http_req *req,
                       const char *node_id);

#endif
