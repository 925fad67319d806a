/* Byte streams that leave HTTP after "101 Switching Protocols" (raft
 * between managers), over TLS on the libuv loop.
 *
 * Both ends look the same to their user: a connected socketpair end (an
 * fd) carrying the decrypted bytes, which fits any code that wants a
 * uv_stream_t (uv_pipe_open). Server side: http_req_upgrade (server.h).
 * Client side: tlsconn_upgrade below dials, speaks TLS, sends the upgrade
 * request and bridges once the answer is 101. The bridge is shared by both.
 *
 * Closing the fd ends the network connection (TLS close_notify, then FIN);
 * the network connection ending shuts the bridge's end down, so the fd's
 * reader sees EOF after every byte that arrived. No flow control beyond
 * the kernel's socket buffers: writers are expected to be message-sized
 * (raft bounds what it has in flight). */
#ifndef SHOAL_HTTP_TLSCONN_H
#define SHOAL_HTTP_TLSCONN_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

struct sh_err;

/* ---- socketpair bridge ---- */

struct bridge;
struct bridge_ops {
  /* Bytes the fd's owner wrote: send them to the network. */
  void (*to_net)(void *ud, const char *data, size_t len);
  /* The fd's owner closed it (or it failed): end the network side. The
   * bridge is gone after this call; never called after bridge_close. */
  void (*closed)(void *ud);
};
/* Makes a socketpair; the bridge keeps one end on the loop, *fd_out is the
 * other (non-blocking, close-on-exec, owned by the caller). */
int bridge_new(uv_loop_t *loop, const struct bridge_ops *ops, void *ud,
               struct bridge **out, int *fd_out, struct sh_err *err);
/* Bytes from the network, for the fd's reader. */
void bridge_push(struct bridge *br, const char *data, size_t len);
/* The peer half-closed (sent FIN, or TLS close_notify): the fd's reader
 * gets what was pushed, then EOF; the fd's owner may still write (a
 * `docker exec -i` client closes its stdin and waits for the output). */
void bridge_eof(struct bridge *br);
/* The network side is gone: the fd's reader gets what was pushed, then
 * EOF. The bridge frees itself; no callback follows. */
void bridge_close(struct bridge *br);
/* Sends what the owners of loop's bridges have written so far at once,
 * rather than when the loop next polls their fds: a message written from
 * a check callback would otherwise wait for the next turn's timers.
 * Bridges are kept in one list per process: make, close and pump them
 * from one thread (shoald's loop thread). */
void bridge_pump_all(uv_loop_t *loop);

/* ---- TLS client with HTTP upgrade ---- */

/* Subject of the server's verified certificate. */
struct tlsconn_peer {
  char cn[128]; /* node ID */
  char ou[64];  /* role */
  char o[128];  /* cluster ID */
};

/* The swarm's TLS floor, for every context (server, raft and HTTP clients):
 * TLS 1.3, or TLS 1.2 with ECDHE and an AEAD cipher (AES-GCM,
 * ChaCha20-Poly1305) only; no compression, no renegotiation. 0 or -1. */
int tlsconn_ctx_restrict(SSL_CTX *ctx);

/* Verify callback for clients of the swarm port: on top of the chain to
 * the pinned root, the server's certificate must say swarm-manager, and,
 * when the client presents a certificate of its own, the same
 * organization (cluster ID) as that one. A worker's certificate on a
 * fake manager port fails the handshake: no request is ever sent. */
int tlsconn_verify_manager(int preverify_ok, X509_STORE_CTX *x);

/* Client TLS context (TLS 1.2+): presents cert/key, trusts only root_pem
 * and fails the handshake on a server certificate that does not chain to
 * it or is not a manager's (tlsconn_verify_manager). No host name check:
 * node certificates name nodes, not hosts; the caller's verify callback
 * checks the subject. */
SSL_CTX *tlsconn_client_ctx(const char *cert_pem, const char *key_pem,
                            const char *root_pem, struct sh_err *err);

/* How a client context checks the server. */
enum tlsconn_check {
  TLSCONN_CHECK_MANAGER, /* chain to the roots, and tlsconn_verify_manager */
  TLSCONN_CHECK_CHAIN,   /* chain to the roots only */
  TLSCONN_CHECK_NONE,    /* nothing (pre-join: the caller checks the chain) */
};
/* The same with each part optional: cert_pem and key_pem (both or
 * neither) are presented when given; root_pem are the only roots trusted
 * (none: no server passes a check). For http/client.c. */
SSL_CTX *tlsconn_client_ctx_with(const char *cert_pem, const char *key_pem,
                                 const char *root_pem, enum tlsconn_check check,
                                 struct sh_err *err);

/* ---- TLS over memory BIOs (server.c, client.c, the upgrade client) ---- */

/* An SSL on two memory BIOs in client or server state, renegotiation
 * off. NULL on failure (OpenSSL's error queue cleared). */
SSL *tlsconn_ssl_new(SSL_CTX *ctx, bool client);
/* What OpenSSL wrote for the network, in one malloc'd buffer and *len;
 * NULL when there is nothing. */
char *tlsconn_take_output(SSL *ssl, size_t *len);
/* Gives back the memory BIOs' buffers once a large transfer is over: one
 * big request must not leave an idle connection holding its size. */
void tlsconn_trim(SSL *ssl);
/* Copies subject field nid into out (empty when absent); false when too
 * long or not a plain string. */
bool tlsconn_subject_field(X509_NAME *name, int nid, char *out, size_t n);
/* The certificates the peer presented, leaf first, as PEM text
 * (malloc'd); NULL when it presented none. */
char *tlsconn_peer_chain_pem(SSL *ssl);

/* Called after the handshake with the server's verified subject; false
 * refuses the server (the request is never sent). */
typedef bool (*tlsconn_verify_fn)(void *ud, const struct tlsconn_peer *peer);
/* fd >= 0 (the caller owns it) on success; fd < 0 and err set otherwise
 * (err->status 499 when canceled). Called exactly once, never from inside
 * tlsconn_upgrade or tlsconn_cancel. */
typedef void (*tlsconn_upgrade_cb)(void *ud, int fd, const struct sh_err *err);

struct tlsconn_upgrade_opts {
  const char *address;        /* "ip:port" or "[ip6]:port" */
  SSL_CTX *tls;               /* client context; NULL: plain TCP */
  const char *path;           /* "/swarm/v1/raft" */
  const char *protocol;       /* Upgrade: token, e.g. "shoal-raft" */
  const char *const *headers; /* extra "Name: value", NULL-terminated */
  unsigned timeout_ms;        /* connect + handshake + answer; default 5000 */
  tlsconn_verify_fn verify;   /* required with tls */
  void *verify_ud;
};

struct tlsconn;
/* Starts dialing; *out identifies the attempt until cb has run. */
int tlsconn_upgrade(uv_loop_t *loop, const struct tlsconn_upgrade_opts *opts,
                    tlsconn_upgrade_cb cb, void *ud, struct tlsconn **out,
                    struct sh_err *err);
/* Abandons an attempt whose cb has not run yet: cb runs later with 499. */
void tlsconn_cancel(struct tlsconn *tc);

/* Splits "ip:port" / "[ip6]:port" into a socket address. */
int tlsconn_parse_addr(const char *address, struct sockaddr_storage *ss,
                       struct sh_err *err);

#endif
