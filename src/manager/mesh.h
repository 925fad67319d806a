/* The routing mesh's table, a pure function of the store: every port a
 * service publishes in ingress mode, with the ingress addresses of its
 * tasks that run now (on ready nodes, still desired running). Every node
 * gets it over its dispatcher session, whole when the session starts and
 * then only the entries that changed (mesh_keyed, mesh_diff); each node's
 * ingress sandbox spreads new connections over the backends (see
 * overlay/overlay.h). A task that stops, or whose node goes down, leaves the
 * table at once. */
#ifndef SHOAL_MANAGER_MESH_H
#define SHOAL_MANAGER_MESH_H

#include <jansson.h>
#include <stdbool.h>

struct store;

/* [{"Service", "Protocol", "PublishedPort", "TargetPort", "Backends":
 * ["10.255.0.5", ...]}], by service ID then port; backends sorted. A
 * service labelled MESH_KEEP_CLIENT_IP_LABEL=true has "KeepClientIP":
 * true on its ports: no masquerade, its tasks see the client's address
 * (moby #25526). */
json_t *mesh_table(struct store *s);
#define MESH_KEEP_CLIENT_IP_LABEL "shoal.ingress.keep-client-ip"
bool mesh_keeps_client_ip(const json_t *service);

/* Every node's ingress sandbox address, sorted: where a task that keeps
 * its clients' addresses routes its replies back. */
json_t *mesh_sandboxes(struct store *s);

/* Every service VIP on a network other than ingress, with the addresses
 * of the service's running tasks on that network: [{"Service", "Network",
 * "Addr" ("10.0.1.2", no prefix length), "Backends": [...]}]. Each task
 * on the network balances connections to the VIP over them (see
 * overlay_mesh). */
json_t *mesh_vips(struct store *s);

/* What the embedded DNS answers on each network (Docker's names):
 * {network ID: {name: [IPv4...]}} with, per service on the network, its
 * name and aliases -> its VIP (under dnsrr: its running tasks'
 * addresses), "tasks.<name>" -> its running tasks' addresses, and each
 * task's name "<service>.<slot>.<task ID>" -> its address. Lowercase. */
json_t *mesh_names(struct store *s);

/* All of the above as one keyed table, what nodes are sent (as changes)
 * and overlay_mesh takes: "port/<proto>/<published>" -> a mesh_table
 * entry, "vip/<network>/<addr>" -> a mesh_vips entry, "names/<network>"
 * -> that network's names (mesh_names), "sandboxes" -> mesh_sandboxes. */
json_t *mesh_keyed(struct store *s);

/* What turns keyed table old into now: {"Set": {key: value} (new or
 * changed), "Del": [key]}; NULL when they are equal. */
json_t *mesh_diff(const json_t *old, const json_t *now);

#endif
