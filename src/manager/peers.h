/* Who is where on each swarm network: the forwarding entries a node needs
 * for the tasks of its networks that run elsewhere (address -> node). The
 * leader sends them over each node's dispatcher session as changes, not
 * as full lists (Docker gossips them between nodes instead; see
 * docs/architecture.md). Pure functions of the store.
 *
 * A peer set is an object keyed "<network ID> <address>" whose values are
 * {"Network", "Addr" ("10.0.1.5", no prefix length), "Host" (the node's
 * address), "Name" (its hostname, for `network inspect` Peers)}. */
#ifndef SHOAL_MANAGER_PEERS_H
#define SHOAL_MANAGER_PEERS_H

#include <jansson.h>

struct store;

/* Every ready node's peer set: node ID -> peer set. A node holds a network
 * while one of its tasks that may have a container (assigned..running)
 * attaches to it; its peers are the other ready nodes' such tasks on the
 * networks it holds. */
json_t *peers_by_node(struct store *s);

/* What turns the set sent into the set wanted: {"Add": [peer...], "Del":
 * [peer...]}, or NULL when nothing changes. */
json_t *peers_diff(const json_t *sent, const json_t *want);

#endif
