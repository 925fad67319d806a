/* Swarm-scoped networks: `POST /networks/create` checked as dockerd and
 * swarmkit check it (with their messages), the Network objects to propose
 * with their subnet, gateway and VXLAN ID already allocated, removal
 * rules, and the Engine API's view of them. Pure: functions read the store
 * and return new objects; the caller proposes.
 *
 * Stored shape: the Engine API's swarm Network (ID, Spec {Name, Labels,
 * DriverConfiguration, IPv6Enabled, Internal, Attachable, Ingress,
 * IPAMOptions, Scope}, DriverState {Name, Options}, IPAMOptions {Driver,
 * Configs}); the store stamps Version, CreatedAt and UpdatedAt. */
#ifndef SHOAL_MANAGER_NETWORKS_H
#define SHOAL_MANAGER_NETWORKS_H

#include <jansson.h>
#include <stdbool.h>

struct sh_err;
struct store;

/* Docker's ingress network: 10.255.0.0/16 (as the seed shows), gateway
 * 10.255.0.1, the first VXLAN ID. */
#define NETWORKS_INGRESS_SUBNET "10.255.0.0/16"
#define NETWORKS_INGRESS_GATEWAY "10.255.0.1"
#define NETWORKS_VXLAN_FIRST 4096
#define NETWORKS_VXLAN_OPT "com.docker.network.driver.overlay.vxlanid_list"

/* Names that are node-local networks in Docker and can be neither
 * created nor removed: bridge, host, none, default. */
bool networks_is_predefined(const char *name);

/* 0 for "overlay"; 501 for the drivers Docker has and shoal does not
 * (bridge, host, null, macvlan, ipvlan; "" means bridge), 404 "plugin
 * \"X\" not found" for any other. */
int networks_check_driver(const char *driver, struct sh_err *err);

/* Whether a service publishes a port in ingress mode (the default). */
bool networks_publishes_ingress(const json_t *svc);

/* Whether a service uses the network (ingress: publishes a port in
 * ingress mode), which `network ls --filter dangling` reads. */
bool networks_in_use(struct store *s, const json_t *net);

/* The ingress Network with ID id (swarm init). New reference. */
json_t *networks_ingress(const char *id);

/* swarmkit's predefined swarm network "host" (swarm init): what `service
 * create --network host` names (the CLI asks for it with scope swarm).
 * Hidden from lists; its tasks share their node's namespace. */
json_t *networks_predefined_host(const char *id);
/* Whether a Network is one of those (label com.docker.swarm.predefined). */
bool networks_is_hidden(const json_t *net);
/* Whether a Network's tasks use their node's own namespace (driver host). */
bool networks_is_host(const json_t *net);

/* The Network for a NetworkCreateRequest, with ID id, allocated from the
 * cluster's default address pools (DefaultAddrPool, SubnetSize) beside
 * every network in the store and in `pending` (an array of Network
 * objects proposed but not applied yet; may be NULL). Errors with
 * dockerd's and swarmkit's words and codes: 409 name taken, 403
 * predefined names, 400 IPAM config, 403 overlapping subnets, 404 an
 * unknown driver, 501 drivers shoal does not have. New reference. */
json_t *networks_create(struct store *s, const json_t *req, const char *id,
                        const json_t *pending, struct sh_err *err);

/* The ID of the network `DELETE /networks/{ref}` removes, after
 * swarmkit's checks (in use by a service or a live task; ingress while a
 * service publishes in ingress mode). Borrowed from the store. */
const char *networks_remove(struct store *s, const char *ref,
                            struct sh_err *err);

/* The network as `GET /networks` and `GET /networks/{id}` show it
 * (dockerd's Network resource: Name, Id, Created, Scope, Driver, IPAM,
 * Options, Labels ...). New reference. */
json_t *networks_view(const json_t *net);

/* Resolves a network reference as dockerd does for swarm networks: full
 * ID, then exact name, then a unique ID prefix (400 "network X is
 * ambiguous (N matches found based on name|ID prefix)", 404 "network X
 * not found"). Borrowed. */
json_t *networks_find(struct store *s, const char *ref, struct sh_err *err);

#endif
