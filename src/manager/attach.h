/* Network attachments of standalone containers (swarmkit's
 * ResourceAllocator: `docker run --network OVERLAY` on an attachable
 * overlay). Leader-side, on the swarm port:
 *
 *   POST /swarm/v1/attach {"ContainerID", "Name", "Target"}
 *     Target: a network's ID, name or ID prefix. The leader writes an
 *     attachment task (no ServiceID; Spec.Attachment {ContainerID, Name};
 *     Spec.Networks [{Target}]; NodeID: the caller) and waits for the
 *     allocator to give it an address from the cluster's IPAM, then
 *     answers {"ID", "NetworksAttachments": [{Network, Addresses}],
 *     "DataPathPort"}.
 *     A container already attached gets its attachment again. 404
 *     "network X not found", 403 "network X not manually attachable"
 *     (swarmkit's gRPC words).
 *   POST /swarm/v1/detach {"ID"}: the attachment task goes (the address
 *     with it). 404 for an unknown one, 403 for another node's.
 *
 * The task is what makes the rest work as for a service's task: peers
 * (other nodes learn where the address is), the node holding the
 * network, DNS names (the container's name), addresses never reused
 * while it exists. The dispatcher does not send it to the node as an
 * assignment: the container is the node's own. */
#ifndef SHOAL_MANAGER_ATTACH_H
#define SHOAL_MANAGER_ATTACH_H

#include <jansson.h>
#include <stdbool.h>

struct manager;
struct http_req;
struct attachments;

struct attachments *attachments_new(struct manager *m);
/* Answers every waiting request with 503 first. */
void attachments_free(struct attachments *a);

void attachments_attach(struct attachments *a, struct http_req *req,
                        const char *node_id);
void attachments_detach(struct attachments *a, struct http_req *req,
                        const char *node_id);

/* An attachment task (Spec.Attachment set), not a service's. */
bool attachment_task(const json_t *task);

#endif
