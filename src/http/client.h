/* Asynchronous HTTP client on the libuv loop: libcurl's multi interface
 * driven by uv_poll and a uv_timer, so node-to-node calls (join, dispatcher
 * session, heartbeats, forwarding) never block the loop.
 *
 * TLS: pass the node's certificate and key for mutual TLS and the cluster's
 * root CA to verify the server. Before a node is in a cluster it has no CA:
 * `insecure` skips verification and the caller checks the server's chain
 * itself (tls_peer_cert_pem) against the join token's digest. Server names
 * are not checked (swarm certificates name nodes, not hosts). */
#ifndef SHOAL_HTTP_CLIENT_H
#define SHOAL_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

struct http_client;
struct http_call;

struct http_call_opts {
  const char *method;      /* default GET */
  const char *url;         /* "https://192.168.33.10:2377/swarm/v1/join" */
  const char *unix_socket; /* optional: talk HTTP over this unix socket */
  const char *body;        /* optional */
  size_t body_len;
  const char *content_type;   /* default application/json when body */
  const char *const *headers; /* extra "Name: value" lines, NULL-ended */
  const char *cert_pem;       /* client certificate (PEM text), optional */
  const char *key_pem;        /* its key (PEM text) */
  const char *ca_pem;         /* trusted root(s) (PEM text) */
  bool insecure;              /* skip server verification (pre-join only) */
  long timeout_ms;            /* whole call; 0 = none (streams) */
  long connect_timeout_ms;    /* default 5000 */
};

struct http_result {
  int status;       /* HTTP status, 0 on transport failure */
  const char *body; /* whole body (non-streaming calls), NUL-terminated */
  size_t body_len;
  const char *error; /* transport error text when status == 0, "aborted"
                        after on_data said stop; NULL otherwise */
  /* PEM of the certificate chain the server presented (TLS only), so a
   * joining node can check it against the token. */
  const char *peer_chain_pem; /* NULL without TLS; insecure calls never
                                 reuse a connection, so theirs is set */
};

/* Called once when the call completes or fails. */
typedef void (*http_done_fn)(const struct http_result *res, void *ud);
/* Streaming: called for each piece of body as it arrives; return false to
 * abort the call (done is then called with status and error "aborted"). */
typedef bool (*http_data_fn)(const char *data, size_t len, void *ud);

struct http_client *http_client_new(uv_loop_t *loop);
/* Aborts outstanding calls (their done callbacks run with status 0) and
 * frees the client once curl has let go of its sockets. */
void http_client_close(struct http_client *c);

/* Starts a call. With on_data != NULL the body is streamed to it and not
 * kept (res->body is empty in done). Returns a handle usable with
 * http_call_cancel until done has run. */
struct http_call *http_client_call(struct http_client *c,
                                   const struct http_call_opts *opts,
                                   http_data_fn on_data, http_done_fn done,
                                   void *ud);
/* Cancels a pending call: done is NOT called afterwards. */
void http_call_cancel(struct http_call *call);

#endif
