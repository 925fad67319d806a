/* The overlay module's pure parts (names, addresses, rule text, parsing
 * of the manager's network objects), private to src/overlay/ and its
 * tests. */
#ifndef SHOAL_OVERLAY_INTERNAL_H
#define SHOAL_OVERLAY_INTERNAL_H

#include "core/util.h"
#include "ipam/ipam.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sh_err;

#define OV_DEFAULT_MTU 1450
#define OV_GW_BRIDGE "docker_gwbridge"
#define OV_DEFAULT_BRIDGE "docker0" /* the `bridge` network */
#define OV_GW_MTU 1500
/* Node-side ends of gateway veths: "gw-" + 12 chars of the task ID; the
 * bridge table's icc rule matches this prefix. */
#define OV_GW_PORT_PREFIX "gw-"

/* One of a task's attachments, as the data plane needs it. */
struct ov_attach {
  char net_id[65];
  char name[128];
  uint32_t vni;
  unsigned mtu;
  bool internal;
  uint32_t ip;            /* the task's address */
  struct ipam_prefix net; /* its subnet */
  uint32_t gateway;       /* br0's address; 0 when the network has none */
};

/* A host-mode published port. */
struct ov_port {
  int proto; /* 6 tcp, 17 udp */
  uint16_t target, published;
};

/* "02:42:0a:00:01:03": Docker's MAC for an IPv4 address. */
void ov_mac(uint32_t ip, char out[18]);
/* "1-" + the first 10 characters of the network ID. */
void ov_net_ns_name(const char *net_id, char out[16]);
/* "vx-<vni, 6 hex>-<first 5 of the network ID>" (15 chars at most). */
void ov_vxlan_name(uint32_t vni, const char *net_id, char out[16]);
/* A task's veth end in a network's namespace ("ve-<task 10>-<i hex>"),
 * its temporary peer name ("vt-..."), and the gateway veth ends in the
 * node's namespace ("gw-<task 12>", "gt-<task 12>"). */
void ov_veth_names(const char *task_id, unsigned i, char host[16],
                   char peer[16]);
void ov_gw_names(const char *task_id, char host[16], char peer[16]);
/* Task and network IDs become file names: letters and digits only. */
bool ov_id_ok(const char *id);

/* Parses one NetworksAttachments entry. 400 with the reason. */
int ov_parse_attach(const json_t *att, struct ov_attach *out,
                    struct sh_err *err);
/* The host-mode entries of a task's ports (others are skipped). */
int ov_parse_ports(const json_t *ports, struct ov_port **out, size_t *n,
                   struct sh_err *err);

/* A local bridge's subnet (name, for the error): the first /16 of
 * 172.<first>.0.0 .. 172.31.0.0 overlapping none of used ("10.0.0.0/8"
 * strings). 503 when all do. docker0 starts at 17, docker_gwbridge at
 * 18, as on a Docker host. */
int ov_gw_pick(char *const *used, size_t nused, unsigned first,
               const char *name, struct ipam_prefix *out, struct sh_err *err);
/* The same from dockerd's default-address-pools ([{"Base", "Size"}]):
 * the first subnet of Size in each Base, in order, overlapping nothing
 * used. 503 with dockerd's message when none is free. */
int ov_pool_pick(char *const *used, size_t nused, const json_t *pools,
                 struct ipam_prefix *out, struct sh_err *err);
/* docker0's masquerade and its containers' published ports (DNAT of
 * local addresses, a map as `ip shoal` has: `table ip shoal_bridge`);
 * containers on it may reach each other (Docker's enable_icc true).
 * Malloc'd. */
struct ov_dnat;
char *ov_docker0_rules(struct ipam_prefix br, const struct ov_dnat *d,
                       size_t n);
/* A docker0 container's veth ends: "vd-<12 of the ID>" on the node (not
 * "gw-": docker_gwbridge's isolation rule must not match them) and its
 * temporary peer. */
void ov_br_names(const char *id, char host[16], char peer[16]);
/* The first port of 32768-60999 (dockerd's ephemeral range) for proto
 * that is in none of used (n entries); 0 when all are. */
uint16_t ov_ephemeral_port(int proto, const struct ov_port *used, size_t n);
/* The next free address of subnet after last (next-fit, wrapping), never
 * the network, broadcast or gateway (.1) address, nor one of taken.
 * 0 when none is free. */
uint32_t ov_gw_next(struct ipam_prefix subnet, uint32_t last,
                    const uint32_t *taken, size_t ntaken);

/* One host port's DNAT target. */
struct ov_dnat {
  struct ov_port port;
  uint32_t ip;
};
/* The whole `ip shoal` table as one idempotent batch: masquerade for the
 * gateway subnet and DNAT of host-mode ports to their tasks (a map, so
 * every change rewrites the set, never rule handles). Malloc'd. */
char *ov_nat_rules(struct ipam_prefix gw, const struct ov_dnat *d, size_t n);
/* The `bridge shoal` table: no traffic between two docker_gwbridge
 * ports (enable_icc false). */
const char *ov_bridge_rules(void);

/* How long an idle established TCP connection through the mesh is kept
 * (conntrack's default, 5 days; Docker's IPVS: 900 s). */
#define OV_MESH_IDLE_TIMEOUT "432000"

/* A port of the routing mesh: published on every node, spread over the
 * service's tasks' ingress addresses. */
struct ov_mesh_port {
  int proto; /* 6 tcp, 17 udp */
  uint16_t published, target;
  bool keep_client_ip; /* no masquerade: the backend sees the client */
  uint32_t *backends;
  size_t nbackends;
};
/* Parses one {"Protocol", "PublishedPort", "TargetPort", "KeepClientIP",
 * "Backends": ["10.255.0.5", ...]} (free m->backends); 400 with the
 * reason. ov_mesh_parse: an array of them (free with ov_mesh_free). */
int ov_mesh_port_parse(const json_t *p, struct ov_mesh_port *m,
                       struct sh_err *err);
int ov_mesh_parse(const json_t *ports, struct ov_mesh_port **out, size_t *n,
                  struct sh_err *err);
void ov_mesh_free(struct ov_mesh_port *p, size_t n);
/* The node's `ip shoal_mesh` table: published ports on any local address
 * DNAT'ed to the ingress sandbox's gateway address (sbox), and connections
 * the node makes itself masqueraded so the sandbox can answer them.
 * ov_mesh_node_port: one port in or out of it. */
char *ov_mesh_node_rules(uint32_t sbox, const struct ov_mesh_port *p, size_t n);
void ov_mesh_node_port(sh_buf *b, const struct ov_mesh_port *p, bool add);

/* The ingress sandbox's `ip shoal_lb` table, made afresh (ov_lb_table)
 * then changed a port at a time (ov_lb_port): a verdict map from
 * protocol . port to the port's chain p_<proto>_<port>, whose one rule
 * spreads new connections over the backends (numgen, round robin).
 * Connections leave the sandbox's ingress interface (ingress_if)
 * masqueraded, unless the port keeps the client's address (packets
 * marked OV_MESH_KEEP_MARK). A changed port rewrites its own chain and
 * nothing else; established connections keep their backend (conntrack). */
#define OV_MESH_KEEP_MARK "0x6b6369"
void ov_lb_table(sh_buf *b, const char *ingress_if);
/* was NULL: the port is new; now NULL: it goes; both: its backends or
 * target changed. */
void ov_lb_port(sh_buf *b, const struct ov_mesh_port *was,
                const struct ov_mesh_port *now);
/* How long a backend that left the mesh stays refused. */
#define OV_MESH_GONE_SECS 120
/* Connections already sent to a backend that left (its conntrack entry
 * keeps sending the client's SYN retries there) are answered with a
 * reset instead of silence: ip joins `set gone` for secs seconds. */
void ov_lb_gone(sh_buf *b, uint32_t ip, unsigned secs);
/* A backend that keeps the client's address answers through the sandbox
 * that sent the connection: `ip shoal_kci` in the task's namespace marks
 * each connection arriving on ingress_if with the sending sandbox's
 * address, taken from its MAC (02:42:<IPv4>) as the kernel stores it, and
 * routes the task's replies by that mark (see ov_kci_mark). */
char *ov_kci_rules(const char *ingress_if);
/* The mark (and routing table) of the connections a sandbox sent: its
 * IPv4 address's bytes read as a host-order word, as the rule loads it. */
uint32_t ov_kci_mark(uint32_t sbox);

/* A task's view of a service VIP on one of its networks. */
struct ov_vip {
  uint32_t addr;
  uint32_t *backends;
  size_t nbackends;
};
/* The `ip shoal_vip` table in a task's namespace, made afresh
 * (ov_vip_table), then a VIP at a time (ov_vip_chain): connections the
 * task makes to a VIP jump (verdict map) to the VIP's chain v_<hex addr>,
 * DNAT'ed to one of its backends (numgen, any port). existed: the chain
 * is there; keep false: the VIP goes. */
void ov_vip_table(sh_buf *b);
void ov_vip_chain(sh_buf *b, const struct ov_vip *v, bool existed, bool keep);

/* ---- user-defined bridge networks (docker network create -d bridge) ---- */

/* A user bridge network's settings, read from a create request. */
struct ov_lnet_spec {
  bool have_subnet; /* IPAM.Config's Subnet given */
  struct ipam_prefix subnet;
  uint32_t gateway; /* 0: the subnet's first address */
  bool have_range;
  struct ipam_prefix range;
  bool internal;
  char bridge[16]; /* com.docker.network.bridge.name; "": br-<id12> */
};
/* Reads the create request's fields a local bridge applies ({Name,
 * Internal, Options, Labels, IPAM {Driver, Config, Options}, EnableIPv6,
 * Attachable, Ingress, ConfigOnly, ConfigFrom, Scope}); 400 with
 * dockerd's words for malformed ones, 501 for what shoal does not do. */
int ov_lnet_parse(const json_t *req, struct ov_lnet_spec *out,
                  struct sh_err *err);
/* "br-" + the first 12 characters of the network ID. */
void ov_lnet_bridge_name(const char *net_id, char out[16]);
/* A subnet for a new bridge network: the first /16 of 172.17-31 that
 * overlaps nothing used, then /20s of 192.168.0.0/16 (dockerd's local
 * default pools); from pools instead when set. */
int ov_lnet_pick(char *const *used, size_t nused, const json_t *pools,
                 struct ipam_prefix *out, struct sh_err *err);
/* `table ip shoal_isolation` (dockerd's DOCKER-ISOLATION chains): no
 * forwarding between two of the node's bridges (docker0 and the user
 * ones); an internal one forwards nothing in or out. Malloc'd. */
char *ov_isolation_rules(const char *const *bridges, const bool *internal,
                         size_t n);
/* A standalone container's veth end on its ith extra bridge network
 * (network connect): "vc<i hex>-<11 of the ID>". */
void ov_extra_names(const char *id, unsigned i, char host[16]);
/* The lowest address of subnet (inside range when given) that is not the
 * network, broadcast or gateway address nor one of taken; 0: none. */
uint32_t ov_lnet_next(struct ipam_prefix subnet,
                      const struct ipam_prefix *range, uint32_t gateway,
                      const uint32_t *taken, size_t ntaken);
/* A user bridge network's NAT table, `ip shoal_br_<12 of its ID>`: as
 * docker0's (masquerade, its containers' published ports). Malloc'd. */
struct ov_dnat;
char *ov_lnet_rules(const char *net_id, const char *bridge,
                    struct ipam_prefix net, const struct ov_dnat *d, size_t n);

#endif
