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
#include <stdbool.h>
#include <stddef.h>

struct store;

/* Everything the peer sets are made of, at one time: {"Nets": {network ID
 * -> {key -> {"Node": node ID, "Peer": peer}}}, "Held": {node ID ->
 * {network ID -> true}}, "Ready": {node ID -> true}}. Linear in the
 * endpoints; the sets themselves (each node: the others' endpoints on
 * the networks it holds) are never all made, which at 1,000 nodes on
 * ingress was a million entries per change. A node holds a network while
 * one of its tasks that may have a container (assigned..running) attaches
 * to it, and every ready node holds ingress (its ingress sandbox). */
json_t *peers_snapshot(struct store *s);

/* What differs between two snapshots: {network ID -> [key...]}. */
json_t *peers_changed(const json_t *old, const json_t *cur);

/* The change of node's peer set from old to cur: {"Add": [peer...],
 * "Del": [peer...]}, or NULL when nothing changes. old NULL: from nothing
 * (a new session). changed: peers_changed(old, cur) to look only at what
 * changed, NULL to compare the node's networks whole. */
json_t *peers_node_diff(const json_t *old, const json_t *cur,
                        const json_t *changed, const char *node);

/* A snapshot's peers encoded once (each network when a node holding it
 * first needs it), for the session starts that each send their node its
 * whole set: at a new leader, 1,000 nodes each sent the other 999
 * ingress sandboxes, which were encoded a million times. */
struct peers_text;
struct peers_text *peers_text_new(json_t *snap); /* holds a reference */
void peers_text_free(struct peers_text *pt);
/* True when pt was made from snap. */
bool peers_text_of(const struct peers_text *pt, const json_t *snap);
/* node's whole set as the line of a "peers" message with Reset (JSON and
 * '\n'): what peers_node_diff(NULL, snap, NULL, node) adds. Freed by the
 * caller. */
char *peers_text_reset(struct peers_text *pt, const char *node, size_t *len);

/* node's whole peer set in snap (key -> peer). */
json_t *peers_for(const json_t *snap, const char *node);

/* Every ready node's peer set: node ID -> peer set (quadratic: tests). */
json_t *peers_by_node(struct store *s);

#endif
