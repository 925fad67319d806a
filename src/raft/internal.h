/* Private to src/raft: the TLS transport behind raftnode. */
#ifndef SHOAL_RAFT_INTERNAL_H
#define SHOAL_RAFT_INTERNAL_H

#include <raft.h>
#include <raft/uv.h>
#include <stdint.h>

struct sh_err;
struct http_req;

/* The path and Upgrade token of raft connections on the swarm port, and
 * the headers where the dialing manager names itself. */
#define RAFT_UPGRADE_PATH "/swarm/v1/raft"
#define RAFT_UPGRADE_PROTO "shoal-raft"
#define RAFT_HDR_ID "Shoal-Raft-Id"
#define RAFT_HDR_ADDRESS "Shoal-Raft-Address"

/* A raft_uv_transport whose connections are mutual TLS with the swarm's
 * certificates, upgraded from HTTP on the peer's swarm port. The listening
 * side is the swarm port's HTTP server, which hands raft requests to
 * tls_transport_accept. */
int tls_transport_init(struct raft_uv_transport *t, uv_loop_t *loop,
                       const char *cert_pem, const char *key_pem,
                       const char *root_pem, const char *cluster_id,
                       struct sh_err *err);
/* New certificate and key (renewal): dials made from now on present
 * them; connections already open stay as they are. */
int tls_transport_set_identity(struct raft_uv_transport *t,
                               const char *cert_pem, const char *key_pem,
                               const char *root_pem, struct sh_err *err);
/* Releases the transport: after raft's close completed, or when raft
 * never took it (raft_uv_init / raft_init failed). */
void tls_transport_free(struct raft_uv_transport *t);
/* Serves POST /swarm/v1/raft (always answers or upgrades req). */
void tls_transport_accept(struct raft_uv_transport *t, struct http_req *req);

/* What the transport last saw of a peer: 1 reachable (connection made or
 * accepted), -1 unreachable (last dial failed), 0 never tried. */
int tls_transport_reach(struct raft_uv_transport *t, raft_id id);

#endif
