/* The network allocator: leader-side, a pure function of the store like
 * the orchestrator and the scheduler (swarmkit's allocator runs between
 * them). One run gives
 *  - every service in endpoint mode vip a virtual IP on each network it
 *    attaches to (Endpoint.VirtualIPs [{NetworkID, Addr}]), ingress first
 *    when it publishes a port in ingress mode; dropped networks lose
 *    theirs;
 *  - every node an address on ingress (Node "_Ingress": {Network, Addr}),
 *    its ingress-sbox's, kept while the node exists;
 *  - every task not yet on a node (state new..pending, desired running)
 *    one address per network of its service (NetworksAttachments
 *    [{Network, Addresses ["10.0.0.3/24"]}]), in the same order.
 * What is in use is read from the store each run: VIPs of every service,
 * addresses of every task whose container may still exist (state up to
 * running). Addresses come next-fit per network, so a freed address is not
 * handed out again at once. A task whose network has no free address
 * stays unallocated and the run says so in *exhausted. */
#ifndef SHOAL_MANAGER_ALLOCATOR_H
#define SHOAL_MANAGER_ALLOCATOR_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct store;
struct orch_out;

/* One transaction per changed service and per batch of tasks, and with
 * nodes, for the nodes without their ingress address. Returns the number
 * of transactions; *exhausted (may be NULL) counts tasks and nodes left
 * without an address. */
int allocator_run(struct store *s, struct orch_out *out, bool nodes,
                  size_t *exhausted);

/* The network IDs a service's tasks attach to, in order (ingress first
 * when it publishes in ingress mode). New array of strings. */
json_t *allocator_service_networks(struct store *s, const json_t *svc);

/* True when the task has an address on every network its service needs
 * (the scheduler places only such tasks). */
bool allocator_task_allocated(struct store *s, const json_t *svc,
                              const json_t *task);

#endif
