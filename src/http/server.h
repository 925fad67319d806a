/* HTTP/1.1 server on the libuv loop, for the Engine API (unix socket, TCP)
 * and the node-to-node port (TCP + mutual TLS).
 *
 * Parsing is http_parser's; TLS is OpenSSL over memory BIOs, so all I/O
 * stays on the loop thread. Connections are keep-alive; request bodies may
 * be chunked and are limited (413 past it, see struct http_limits), as are
 * the time to send a request head, idle keep-alive time and the number of
 * connections per listener. Responses are
 * either whole (http_respond) or streamed with chunked encoding
 * (http_stream_*), which the dispatcher session and `logs -f` use.
 *
 * A request is handed to the handler once its body is complete, except on
 * routes the server's body-stream predicate picks (http_server_set_body_
 * stream): those come right after their headers and read the body in
 * chunks, with backpressure (see http_req_body_start). The handler
 * owns the request until it answers, now or later from another callback
 * (raft commit, timer). If the peer goes away first, req->on_close is called
 * (when set) and the answer is dropped; the request stays valid until the
 * handler answers or calls http_req_release(). The handlers of one loop
 * turn share ~50 ms of it: a request ready after that waits for a later
 * turn, in the order they came, so a flood of requests cannot hold the
 * loop (and raft on it) past an election timeout. Requests on a unix
 * socket or from a peer with a manager's certificate never wait. */
#ifndef SHOAL_HTTP_SERVER_H
#define SHOAL_HTTP_SERVER_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

struct sh_err;

#define HTTP_MAX_BODY (16u * 1024 * 1024)
#define HTTP_MAX_HEADERS 64

/* Connection limits of one server (every listener of it). Defaults in
 * http_limits_default(); docs/architecture.md says why these values. */
struct http_limits {
  unsigned max_conns;         /* open connections per listener; 0: no cap */
  unsigned header_timeout_ms; /* request line + headers (and TLS handshake) */
  unsigned idle_timeout_ms;   /* keep-alive wait; body inactivity; 0: none */
  size_t max_body;            /* any request body */
  /* A request on a TLS listener from a peer without a verified client
   * certificate (before authentication: the join endpoint, /ca). */
  size_t max_body_unauth;
};

void http_limits_default(struct http_limits *l);
/* Overrides from "conns=N,header=DUR,idle=DUR,body=SIZE,unauth=SIZE" (any
 * subset; DUR as "500ms", "30s", "2m"; SIZE as "64k", "16m" or bytes). */
int http_limits_parse(struct http_limits *l, const char *spec,
                      struct sh_err *err);
/* The environment's overrides (SHOAL_HTTP_LIMITS, for tests and tuning;
 * shoald checks it at start), applied to l; invalid ones are ignored. */
void http_limits_env(struct http_limits *l);

struct http_header {
  char *name; /* as received */
  char *value;
};

struct http_req {
  const char *method; /* "GET", "POST", "HEAD", "DELETE", "PUT" */
  char *url;          /* raw request target: "/v1.47/nodes?filters=..." */
  char *path;         /* url before '?', percent-decoded */
  char *query;        /* after '?', raw (""/never NULL) */
  struct http_header headers[HTTP_MAX_HEADERS];
  int nheaders;
  char *body; /* NUL-terminated; len in body_len */
  size_t body_len;
  /* The body is not in body (""): it streams, see http_req_body_start. */
  bool body_stream;

  /* Peer identity on a TLS listener when the client sent a certificate
   * that verified against the server's CA; empty strings otherwise. */
  bool peer_verified;
  char peer_cn[128];  /* node ID */
  char peer_ou[64];   /* role: swarm-manager | swarm-worker */
  char peer_o[128];   /* cluster ID */
  char peer_addr[64]; /* remote IP for TCP peers, "" for unix */

  /* Set by the handler when it keeps a streaming response open. Called
   * once when the peer goes away (or the server closes) while the handler
   * owns the request; never from inside the handler's own http_* call on
   * this request (then it comes on a later loop turn). */
  void (*on_close)(struct http_req *req, void *ud);
  void *on_close_ud;

  void *user;              /* free for the handler's use */
  struct http_conn *conn_; /* private */
};

typedef void (*http_handler_fn)(struct http_req *req, void *ud);

struct http_server;

struct http_server *http_server_new(uv_loop_t *loop, http_handler_fn handler,
                                    void *ud);
/* Listens on a unix socket (removing a stale one), mode 0660, group gid
 * (-1: the process's). */
int http_server_listen_unix(struct http_server *srv, const char *path, int gid,
                            struct sh_err *err);
/* Listens on host:port; with tls != NULL every connection is TLS with that
 * context (the server takes a reference; client-cert policy is the
 * context's). */
int http_server_listen_tcp(struct http_server *srv, const char *host, int port,
                           SSL_CTX *tls, struct sh_err *err);
/* Which requests stream their body (any size, no body limit): fn sees
 * the request head (method, path, query, headers; body empty) and returns
 * true for those. Only connections that are authenticated ask it: unix
 * sockets and TLS with a verified client certificate; plain TCP and
 * unverified TLS peers keep the buffered body and its limits. */
void http_server_set_body_stream(struct http_server *srv,
                                 bool (*fn)(const struct http_req *head,
                                            void *ud),
                                 void *ud);
/* Applies to connections accepted from now on. */
void http_server_set_limits(struct http_server *srv,
                            const struct http_limits *l);
/* Replaces the TLS context for new connections (certificate renewal). */
void http_server_set_tls(struct http_server *srv, SSL_CTX *tls);
/* Port of the last TCP listener (useful after listening on port 0); -1
 * when there is none. */
int http_server_port(struct http_server *srv);
/* How many times a TLS listener held its queue of connections back to a
 * later loop turn (at most 16 are taken per turn: a thousand nodes
 * reconnecting at once would put their handshakes in one turn). */
unsigned long http_server_tls_paced(const struct http_server *srv);
/* Stops listening and closes every connection; frees srv when done. */
void http_server_close(struct http_server *srv);

/* Case-insensitive header lookup; NULL when absent. */
const char *http_req_header(const struct http_req *req, const char *name);
/* Query parameter, percent-decoded, caller frees; NULL when absent. */
char *http_req_query(const struct http_req *req, const char *name);

/* Extra response headers, "Name: value" strings, NULL-terminated list. */
/* Sends a whole response and ends the request (req is freed). */
void http_respond(struct http_req *req, int status, const char *content_type,
                  const char *body, size_t len, const char *const *headers);
/* Convenience: JSON body (application/json) and {"message": ...} errors. */
void http_respond_json(struct http_req *req, int status, const char *json);
void http_respond_error(struct http_req *req, int status, const char *msg);

/* Streaming: begin sends the status line and headers with
 * Transfer-Encoding: chunked; write sends one chunk (returns < 0 when the
 * peer is gone); end sends the last chunk and ends the request. */
void http_stream_begin(struct http_req *req, int status,
                       const char *content_type, const char *const *headers);
int http_stream_write(struct http_req *req, const void *data, size_t len);
void http_stream_end(struct http_req *req);
/* Output queued on req's connection that the kernel has not taken yet. */
size_t http_req_queued(const struct http_req *req);
/* Flow control for streams: fn runs on the loop each time a write on req's
 * connection completes with at most `low` bytes still queued, until the
 * request ends or fn is set to NULL. Never from inside an http_* call. */
void http_req_on_drain(struct http_req *req, size_t low,
                       void (*fn)(struct http_req *req, void *ud), void *ud);
/* A streamed body (req->body_stream): nothing is read until the handler
 * calls this. on_data then gets the body in order, in chunks of any size
 * (chunked transfer encoding undone), from the loop; on_end follows once,
 * with complete true after the last byte, or false when the body cannot
 * finish (the peer went away or broke the framing, the body stalled past
 * the idle timeout, the server closes); after an on_end(false) the
 * connection is closed and the handler still answers (dropped) or
 * releases the request. Answering before the body is complete detaches
 * both callbacks and the server reads and drops the rest of the body (up
 * to a limit, then closes). Never called from inside this call, but for
 * a connection already gone when this is called: on_end(false) then comes
 * from inside it. */
void http_req_body_start(struct http_req *req,
                         void (*on_data)(struct http_req *req, const char *data,
                                         size_t len, void *ud),
                         void (*on_end)(struct http_req *req, bool complete,
                                        void *ud),
                         void *ud);
/* Backpressure: while paused no on_data comes and the server stops
 * reading the socket once about 1 MiB waits, whatever the body's size.
 * Pausing from inside on_data takes effect after that chunk. Resuming
 * delivers on a later loop turn, never from inside this call. */
void http_req_body_pause(struct http_req *req, bool paused);

/* Drops a request without answering (after on_close, or on shutdown). */
void http_req_release(struct http_req *req);

/* Takes the connection out of HTTP: answers "101 Switching Protocols"
 * (Upgrade: protocol, Connection: Upgrade) and bridges the connection's
 * plaintext (decrypted on TLS) to one end of a socketpair; *fd_out is the
 * other end, owned by the caller (e.g. uv_pipe_open it). Bytes the client
 * sent after the request head come first. Closing the fd ends the
 * connection; the connection ending (peer, error, http_server_close) makes
 * the fd read EOF. The request ends here in every case (req is freed); on
 * failure the connection is closed. See http/tlsconn.h for the client. */
int http_req_upgrade(struct http_req *req, const char *protocol, int *fd_out,
                     struct sh_err *err);

/* The same with the answer's status and headers given: 101 (with Upgrade
 * and Connection headers among them) or 200, the plain hijack of Docker's
 * attach and exec start for clients that send no Upgrade header (the
 * stream then runs until either side closes). A peer's half-close (FIN)
 * gives the fd's reader EOF while the fd can still write. */
int http_req_hijack(struct http_req *req, int status,
                    const char *const *headers, int *fd_out,
                    struct sh_err *err);

const char *http_status_text(int status);

#endif
