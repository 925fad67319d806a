/* Asynchronous HTTP/1.1 client on the libuv loop, for node-to-node calls
 * (join, dispatcher session, heartbeats, status reports, forwarding):
 * libuv streams, http_parser and OpenSSL over memory BIOs, as the server
 * side; nothing blocks the loop and libcurl is never loaded.
 *
 * Connections are kept alive per client and route (scheme, host:port or
 * unix socket, TLS identity), one request at a time each; a call on a kept
 * connection that the server closed before answering is sent once more
 * on a new one. Idle connections close after a minute and do not keep
 * the loop running.
 *
 * TLS: pass the node's certificate and key for mutual TLS and the cluster's
 * root CA to verify the server. Before a node is in a cluster it has no CA:
 * `insecure` skips verification and the caller checks the server's chain
 * itself (peer_chain_pem) against the join token's digest. Server names
 * are not checked (swarm certificates name nodes, not hosts): a verified
 * call over TCP requires a manager's certificate (tlsconn_verify_manager).
 *
 * Callbacks may start and cancel calls and close the client; done never
 * runs inside http_client_call. */
#ifndef SHOAL_HTTP_CLIENT_H
#define SHOAL_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

struct http_client;
struct http_call;

struct http_call_opts {
  const char *method; /* default GET */
  const char *url;    /* "https://192.168.33.10:2377/swarm/v1/join"; the host
                         an IP, "[v6]" or a name (resolved on libuv's pool) */
  const char *unix_socket; /* optional: talk HTTP over this unix socket */
  const char *body;        /* optional */
  size_t body_len;
  const char *content_type; /* default application/json when body */
  /* Extra "Name: value" lines, NULL-ended. Lines with CR or LF, and Host,
   * Content-Length, Transfer-Encoding and Connection, are not sent; an
   * empty value sends nothing; Content-Type here replaces content_type. */
  const char *const *headers;
  const char *cert_pem; /* client certificate (PEM text), optional */
  const char *key_pem;  /* its key (PEM text) */
  const char *ca_pem;   /* the only trusted root(s) (PEM text); without
                           them no server passes verification */
  bool insecure;        /* skip server verification (pre-join only); such
                           calls never share a connection */
  /* Calls on different lanes never share a connection, so a call the
   * server holds on one (a node's status report, answered when its raft
   * entry commits) never makes another's (a heartbeat) dial a new one.
   * Lanes share the identity's TLS context and the server's last
   * session: a lane's first connection resumes. Default 0. */
  unsigned lane;
  long timeout_ms;         /* whole call; 0 = none (streams) */
  long connect_timeout_ms; /* connect and TLS handshake; default 5000 */
};

struct http_result {
  int status;       /* HTTP status, 0 on transport failure */
  const char *body; /* whole body (non-streaming calls), NUL-terminated */
  size_t body_len;
  const char *error; /* transport error text when status == 0, "aborted"
                        after on_data said stop; NULL otherwise */
  /* PEM of the certificate chain the server presented, for the call whose
   * connection shook hands (NULL on a kept one and without TLS). Insecure
   * calls never share a connection, so a joining node always gets it to
   * check against the token. */
  const char *peer_chain_pem;
};

/* Called once when the call completes or fails. */
typedef void (*http_done_fn)(const struct http_result *res, void *ud);
/* Streaming: called for each piece of body as it arrives; return false to
 * abort the call (done is then called with status and error "aborted"). */
typedef bool (*http_data_fn)(const char *data, size_t len, void *ud);

struct http_client *http_client_new(uv_loop_t *loop);
/* Aborts outstanding calls (their done callbacks run at once, status 0,
 * error "client closed"), closes every connection, and frees the client
 * once their handles are closed (a later loop turn). */
void http_client_close(struct http_client *c);

/* Starts a call. With on_data != NULL the body is streamed to it and not
 * kept (res->body is empty in done). Returns a handle usable with
 * http_call_cancel until done has run; NULL only without a client, URL or
 * done, or once the client is closing. Every other failure (a bad URL or
 * PEM, a refused connection) comes through done, never before
 * http_client_call has returned. */
struct http_call *http_client_call(struct http_client *c,
                                   const struct http_call_opts *opts,
                                   http_data_fn on_data, http_done_fn done,
                                   void *ud);
/* Cancels a pending call: done is NOT called afterwards. Safe from any
 * callback, the call's own on_data included. */
void http_call_cancel(struct http_call *call);

#endif
