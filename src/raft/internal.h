/* Private to src/raft: the TLS transport behind raftnode. */
#ifndef SHOAL_RAFT_INTERNAL_H
#define SHOAL_RAFT_INTERNAL_H

#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
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

/* Keeps one idle connection open to each other member of c, for raft's
 * next connect to it (called on raft's tick; looks every 500 ms). */
void tls_transport_warm(struct raft_uv_transport *t,
                        const struct raft_configuration *c);

/* What the transport last saw of a peer: 1 reachable (a connection made,
 * a spare's included, or accepted), -1 unreachable (raft's last dial
 * failed; a spare's failed dial says nothing), 0 never tried. */
int tls_transport_reach(struct raft_uv_transport *t, raft_id id);

/* Encryption at rest (atrest.c): libraft's io functions that touch entry
 * and snapshot data, wrapped to seal them with the DEK. */
#define ATREST_DEK_LEN 32
struct atrest {
  unsigned char dek[ATREST_DEK_LEN];
  /* Slow log writes: said at most once a second, with the count since. */
  int64_t slow_said_ns;
  unsigned slow_unsaid;
  int (*load)(struct raft_io *io, raft_term *term, raft_id *voted_for,
              struct raft_snapshot **snapshot, raft_index *start_index,
              struct raft_entry *entries[], size_t *n_entries);
  int (*append)(struct raft_io *io, struct raft_io_append *req,
                const struct raft_entry entries[], unsigned n,
                raft_io_append_cb cb);
  int (*snapshot_put)(struct raft_io *io, unsigned trailing,
                      struct raft_io_snapshot_put *req,
                      const struct raft_snapshot *snapshot,
                      raft_io_snapshot_put_cb cb);
  int (*snapshot_get)(struct raft_io *io, struct raft_io_snapshot_get *req,
                      raft_io_snapshot_get_cb cb);
};
/* Replaces io's load, append, snapshot_put and snapshot_get (keeping the
 * originals in ar). */
void atrest_wrap(struct raft_io *io, struct atrest *ar,
                 const unsigned char dek[ATREST_DEK_LEN]);
/* The atrest of a wrapped io (raftnode.c owns both). */
struct atrest *atrest_of(struct raft_io *io);
/* Seals bufs into one new buffer (raft_malloc'ed) with dek; 0 or a raft
 * error. Thread-safe: it reads only dek and its arguments. */
int atrest_seal(const unsigned char *dek, const struct raft_buffer *bufs,
                unsigned n, struct raft_buffer *out);
/* True when buf starts with the sealed format's magic. */
bool atrest_is_sealed(const void *buf, size_t len);
/* Opens a sealed buffer in place; plain ones are left alone (0). -1 when
 * it does not open with dek. */
int atrest_open(const unsigned char *dek, struct raft_buffer *b);

#endif
