/* The node side of swarm overlay networks (Docker's overlay driver is the
 * reference): the namespaces, links, forwarding entries and NAT that give
 * a task its network interfaces.
 *
 * Per overlay network on this node: a namespace bound at
 * <exec_root>/netns/1-<first 10 of the network ID>, holding bridge br0
 * (the network's gateway address, its MTU; default 1450) and vxlan0 (the
 * network's VNI, the data-path UDP port, no learning, proxy ARP). It is
 * made with the network's first local task and removed with its last.
 * Per task: a namespace bound at <exec_root>/netns/<task ID> (the
 * container joins it by path), one veth per attachment in order (eth0,
 * eth1, ...; MAC 02:42:<IPv4>), then one more on docker_gwbridge with a
 * locally allocated address and the default route, unless every network
 * of the task is internal. docker_gwbridge (172.18.0.0/16 or the first
 * free /16 up to 172.31) is masqueraded (nft `table ip shoal`), its
 * ports cannot reach each other (`table bridge shoal`), and host-mode
 * published ports are DNAT'ed to their task's gateway address.
 *
 * State (tasks, their gateway addresses and host ports) is persisted in
 * <data_root>/network/overlay.json and reconciled by overlay_open after a
 * restart. One mutex serializes the calls; they block on netlink: call
 * them from work-queue threads, never the loop. Errors: 400 for invalid
 * input, 409 for a host port in use, 500 for the kernel's refusals. */
#ifndef SHOAL_OVERLAY_OVERLAY_H
#define SHOAL_OVERLAY_OVERLAY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct sh_err;
struct overlay;

struct overlay_config {
  const char *exec_root; /* e.g. /run/shoal */
  const char *data_root; /* e.g. /var/lib/shoal */
  int netns_fd;          /* the node's namespace; -1: the caller's */
  /* dockerd's default-address-pools, [{"Base": "10.10.0.0/16", "Size":
   * 24}]: docker0 and docker_gwbridge take the first free subnets of
   * these in order; NULL: 172.17.0.0/16, 172.18.0.0/16 and on. */
  const json_t *pools;
};

int overlay_open(const struct overlay_config *cfg, struct overlay **out,
                 struct sh_err *err);
/* Frees the handle; the data plane stays as it is (see overlay_leave). */
void overlay_close(struct overlay *ov);

/* The task ID under which a node's ingress sandbox is attached (to
 * ingress and docker_gwbridge, as dockerd's ingress-sbox). */
#define OVERLAY_INGRESS_SBOX "ingress_sbox"

struct overlay_task {
  const char *task_id;
  /* The task's NetworksAttachments: [{"Network": {"ID", "Spec": {"Name",
   * "Internal", "DriverConfiguration": {"Options"}}, "DriverState":
   * {"Options": {"com.docker.network.driver.overlay.vxlanid_list"}},
   * "IPAMOptions": {"Configs": [{"Subnet", "Gateway"}]}}, "Addresses":
   * ["10.0.1.3/24"]}]; NULL or [] for a task with egress only. */
  const json_t *attachments;
  /* Endpoint ports [{"Protocol", "TargetPort", "PublishedPort",
   * "PublishMode"}]; only "host" ones are handled here (DNAT to the
   * task's docker_gwbridge address, so none for a task on internal
   * networks only). May be NULL. */
  const json_t *ports;
  uint16_t vxlan_port; /* data-path port; 0: 4789 */
  /* A standalone container on the node's `bridge` network (docker run):
   * no attachments, one veth on docker0 with an address of its subnet and
   * the default route; its host-mode ports are DNAT'ed by docker0's table
   * (`ip shoal_bridge`), a PublishedPort of 0 gets a free port of
   * 32768-60999 (dockerd's ephemeral range). Such endpoints are the
   * node's: overlay_gc and overlay_leave leave them alone. */
  bool bridge;
  /* A standalone container on attachable overlays (attachments set, its
   * addresses from the managers' attachment): a task's endpoints, but
   * the node's, so overlay_gc leaves them alone (overlay_leave does
   * not). */
  bool standalone;
  /* With bridge: the user bridge network (overlay_net_create) to join
   * instead of docker0, and the address asked for (--ip); NULL: docker0,
   * the lowest free address. */
  const char *net_id;
  const char *ip;
};

/* Builds the task's namespace and interfaces; *netns_path (malloc'd)
 * names the namespace for the container's OCI spec. Idempotent: a task
 * already attached gets its path again. */
int overlay_attach(struct overlay *ov, const struct overlay_task *task,
                   char **netns_path, struct sh_err *err);
/* A bridge endpoint as attached: {"IPAddress", "IPPrefixLen", "Gateway",
 * "MacAddress", "EndpointID", "NetworkID" ("" for docker0), "Ports": the
 * ports with the published ones chosen ([] but on the first endpoint)};
 * net_id: the network ("" docker0), NULL: the container's first. NULL if
 * id has none there. */
json_t *overlay_bridge_endpoint(struct overlay *ov, const char *id,
                                const char *net_id);

/* User-defined bridge networks (`docker network create -d bridge`), the
 * node's like docker0: a Linux bridge (br-<12 of the ID> or the
 * com.docker.network.bridge.name option) with the gateway address, a
 * subnet of dockerd's local default pools (172.17-31.0.0/16 after
 * docker0 and docker_gwbridge, then 192.168.x.0/20; default-address-pools
 * when set) unless the request names one, masquerade and published ports
 * in `ip shoal_br_<12 of the ID>` unless internal, and no forwarding
 * between two bridges (`ip shoal_isolation`, dockerd's DOCKER-ISOLATION).
 * Kept in the state file across restarts and swarm leave.
 * req: the API's create body (Name, Internal, Labels, Options, IPAM);
 * 409 for a name in use, 403 for a subnet overlapping another network's,
 * 501 for what shoal does not do. */
int overlay_net_create(struct overlay *ov, const json_t *req, const char *id,
                       const char *created, struct sh_err *err);
/* {ID: {"Id", "Name", "Created", "Subnet", "Gateway", "IPRange"?,
 * "Internal", "UserSubnet", "Bridge", "Labels", "Options"}}, new reference.
 * UserSubnet: the subnet came from the request (--ip needs it); absent in
 * records older than the flag, which count as user-set. Never waits for
 * the overlay's lock (the loop calls it): a copy of the last change's. */
json_t *overlay_nets(struct overlay *ov);
/* 403 with dockerd's message while an endpoint is on it. */
int overlay_net_remove(struct overlay *ov, const char *id, struct sh_err *err);
/* Another interface (eth1, ...) in a running bridge container's
 * namespace, on net_id ("" docker0), with ip when given (--ip). 409 when
 * it has no bridge endpoint or is on the network already. */
int overlay_connect(struct overlay *ov, const char *id, const char *net_id,
                    const char *ip, struct sh_err *err);
/* Removes that interface; 0 when there is none. 501 for the container's
 * first network. */
int overlay_disconnect(struct overlay *ov, const char *id, const char *net_id,
                       struct sh_err *err);
/* Removes the task's namespace, gateway address and host ports, and a
 * network's namespace with its last task. 0 for an unknown task. */
int overlay_detach(struct overlay *ov, const char *task_id, struct sh_err *err);
/* The same for a task of which no process is left (its container exited
 * or was removed): its links go with its namespace, deleted by the kernel
 * with other dying namespaces' in one batch. Deleting each link here
 * waited ~25 ms for the kernel's RCU barrier, one task at a time, which
 * made up most of a removal of many tasks. The host ends' names stay
 * taken until then; an attach of the same ID replaces a stale end. */
int overlay_detach_ended(struct overlay *ov, const char *task_id,
                         struct sh_err *err);

/* The remote tasks of a network: add/del are [{"Addr": "10.0.1.5",
 * "Host": "192.168.33.12"}] (Host: the node running it). reset: the set
 * becomes add, and kernel entries outside it are deleted. Kept while the
 * network has no namespace here and applied when it gets one. */
int overlay_peers(struct overlay *ov, const char *net_id, const json_t *add,
                  const json_t *del, bool reset, struct sh_err *err);
/* Detaches every task not in live (NULL-terminated), whether known from
 * the state or only found under <exec_root>/netns. */
int overlay_gc(struct overlay *ov, const char *const *live_task_ids,
               struct sh_err *err);
/* Removes all the module made: task and network namespaces,
 * docker_gwbridge, the nft tables, the state file; docker0 stays. The
 * handle stays usable (empty). */
int overlay_leave(struct overlay *ov, struct sh_err *err);

/* The routing mesh (Docker's ingress load balancing, on nftables since
 * this kernel has no IPVS), the service VIPs and the ingress sandboxes,
 * as one keyed table (manager/mesh.h, mesh_keyed):
 *   "port/<proto>/<published>": {"Protocol", "PublishedPort",
 *       "TargetPort", "KeepClientIP", "Backends": ["10.255.0.5", ...]}
 *   "vip/<network ID>/<addr>": {"Network", "Addr", "Backends": [...]}
 *   "sandboxes": ["10.255.0.2", ...] (every node's ingress sandbox)
 * Other keys are ignored. reset: the table becomes set; else set's keys
 * are added or replaced and del's (an array of keys) removed.
 *
 * Every local address of the node answers on each published port: the
 * node DNATs to its ingress sandbox (table ip shoal_mesh), which spreads
 * new connections over the backends' ingress addresses and masquerades
 * them out of its ingress endpoint (table ip shoal_lb); established
 * connections keep their backend. Each task on a VIP's network gets, in
 * its own namespace, `ip shoal_vip` DNAT'ing connections to the VIP over
 * the backends (Docker's per-container IPVS); a new task gets its rules
 * before its container starts. A port with "KeepClientIP" is not
 * masqueraded: its backends see the client's address and send replies
 * back through the sandbox that forwarded the connection (policy routing
 * by a connection mark in the task's namespace).
 *
 * Only what changed is rewritten: a port's chain and set elements, a
 * VIP's chain in the namespaces of the tasks on its network; a reset, a
 * new sandbox or a failed update makes the tables afresh. */
int overlay_mesh(struct overlay *ov, bool reset, const json_t *set,
                 const json_t *del, struct sh_err *err);

/* Makes docker0, the node's `bridge` network (172.17.0.0/16 or the first
 * free /16 after it; masqueraded by `table ip shoal_bridge`), as dockerd
 * does at start. swarm leave keeps it. No container uses it yet. */
int overlay_ensure_bridge(struct overlay *ov, struct sh_err *err);

/* Makes docker_gwbridge and its nftables rules now (as dockerd does on
 * swarm init and join), not only with the first task. */
int overlay_ensure_gwbridge(struct overlay *ov, struct sh_err *err);

/* This node's endpoints for the API (new reference):
 * {"Networks": {"<net ID>" | "docker_gwbridge": {"<task ID>":
 *    {"EndpointID", "MacAddress", "IPv4Address": "10.0.1.3/24",
 *     "IPv6Address": ""}}},
 *  "GwBridge": {"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"},
 *  "Bridge": {"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}}
 * (GwBridge, Bridge: {} until docker_gwbridge, docker0 exist). */
json_t *overlay_view(struct overlay *ov);

#endif
