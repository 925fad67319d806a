/* HTTP/1.1 client on the libuv loop: uv_tcp_t / uv_pipe_t streams,
 * http_parser for the answers and OpenSSL over memory BIOs (tlsconn.h),
 * the libraries the server side uses, so node-to-node traffic loads
 * nothing more (libcurl's tree was ~4.7 MB of every node's idle RSS).
 *
 * A call goes to its route (scheme, host:port or unix socket, TLS
 * identity): it takes the route's most recent idle connection or dials a
 * new one; one request at a time per connection. A connection whose
 * answer ended cleanly and may be kept goes back to the route's idle list,
 * where it keeps reading, so the server closing it drops it at once, and
 * expires after IDLE_MS. A call on a reused connection that ends before
 * any answer byte (the server closed it as the request went out) is sent
 * once more on a new connection, as curl does.
 *
 * Each client keeps one SSL_CTX per identity (certificate, key, roots,
 * check) and each route its last TLS session, so a call parses no PEM and
 * a new connection to a known server resumes instead of a full handshake.
 * A lane is part of the route: a new lane's route starts with the
 * session of another lane's route to the same server.
 *
 * Callbacks may start, cancel and close anything. A call is freed only
 * outside its own on_data; connections and the client only from close
 * callbacks (a later loop turn), so no frame loses its memory. Failures
 * found inside http_client_call are reported from the next loop turn:
 * done never runs inside http_client_call. */
#include "http/client.h"

#include "core/err.h"
#include "core/util.h"
#include "http/tlsconn.h"

#include <http_parser.h>
#include <limits.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <strings.h>

/* Shorter than the servers' idle limit (ours: 180 s), so the client is
 * the one that closes an idle connection, never one the server has just
 * closed. */
#define IDLE_MS 60000
#define IDLE_PER_ROUTE 8 /* more idle connections than this are closed */
#define ROUTES_KEEP 16   /* unused routes kept (for their TLS session) */
#define IDS_KEEP 4       /* unused TLS identities kept */
#define DEF_CONNECT_MS 5000
#define READ_BUF_SIZE 65536
/* A Content-Length up to this is allocated at once, not grown into; a
 * larger one grows with the bytes that come (a server's word is not
 * memory: the pre-join CA fetch talks to any address it is given). */
#define MAX_BODY_RESERVE (1u << 20)

enum conn_state { CS_CONNECTING, CS_HANDSHAKE, CS_BUSY, CS_IDLE };

/* A host name's addresses, tried in turn, a connection each. */
struct addrs {
  int n, next;
  struct sockaddr_storage a[8];
};

/* One SSL_CTX per identity: parsing PEMs and building a context costs
 * far more than the request. */
struct tls_id {
  struct tls_id *next;
  char *cert, *key, *ca;
  enum tlsconn_check check;
  SSL_CTX *ctx;
  int refs; /* routes */
};

struct route {
  struct route *next;
  char *authority; /* "host:port", "[v6]:port": the Host header too */
  char *host;      /* for DNS and SNI */
  char *port;
  char *unix_path;   /* or NULL */
  struct tls_id *id; /* NULL: plain HTTP */
  unsigned lane;
  struct sockaddr_storage addr;
  bool addr_known;   /* an IP literal: nothing to resolve */
  struct conn *idle; /* most recently used first */
  int nidle;
  SSL_SESSION *session; /* the last one the server gave */
  int refs;             /* calls and connections */
};

struct conn {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } h;
  uv_timer_t timer; /* connect, call and idle deadlines */
  uv_connect_t creq;
  uv_getaddrinfo_t *gai;
  struct addrs *addrs; /* a host name's: those left to try */
  struct http_client *c;
  struct route *route;                /* NULL once closing */
  struct conn *prev, *next;           /* the client's live connections */
  struct conn *idle_prev, *idle_next; /* the route's idle list */
  struct http_call *call;             /* the one in flight */
  SSL *ssl;
  http_parser parser;
  uint64_t connect_deadline, idle_deadline; /* uv_now() ms, 0: none */
  int pending; /* handles not closed and a getaddrinfo in flight */
  unsigned served;
  enum conn_state state;
  bool closing, hs_done, offered_session;
  bool msg_done, keep_alive, extra, interim;
  /* The server ended TLS with close_notify: only that, not a bare FIN an
   * attacker can send, ends an answer that has no length. */
  bool close_notify;
};

struct http_call {
  struct http_client *c;
  struct http_call **list; /* &c->calls, &c->later, or NULL */
  struct http_call *prev, *next;
  struct route *route;
  struct conn *conn;
  sh_buf req;  /* head and body, kept for a retry */
  sh_buf body; /* the answer's, unless streamed */
  http_data_fn on_data;
  http_done_fn done;
  void *ud;
  char *chain; /* PEM of the server's chain, from the handshake */
  char *error; /* a failure reported from the next loop turn */
  uint64_t deadline;
  long timeout_ms;
  unsigned connect_ms;
  bool is_head, insecure;
  bool answered; /* a byte of the answer arrived */
  bool retried, cancelled, aborted, in_data, in_done;
};

struct http_client {
  uv_loop_t *loop;
  uv_timer_t kick;         /* reports the failures in c->later */
  struct http_call *calls; /* outstanding */
  struct http_call *later; /* failed inside http_client_call */
  struct conn *conns;      /* live (not closing) connections */
  struct route *routes;    /* most recently used first */
  struct tls_id *ids;      /* most recently used first */
  int nroutes, nids;
  int open;      /* the kick timer and connections not yet freed */
  int api_depth; /* inside http_client_call */
  bool closing;
};

static void conn_close(struct conn *k);
static void conn_send(struct conn *k);
static void call_dispatch(struct http_call *call);

/* ---- the shared read buffer ---- */

/* Every connection of every client reads into this one buffer: on_read
 * consumes it at once (into the TLS BIO or the parser), so connections
 * hold none. A client on another thread's loop, reading at the same
 * moment, gets a heap buffer instead. */
static char read_buf[READ_BUF_SIZE];
static atomic_flag read_buf_busy = ATOMIC_FLAG_INIT;

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  if (!atomic_flag_test_and_set(&read_buf_busy))
    *buf = uv_buf_init(read_buf, sizeof read_buf);
  else
    *buf = uv_buf_init(xmalloc(READ_BUF_SIZE), READ_BUF_SIZE);
}

static void read_buf_release(const uv_buf_t *buf) {
  if (buf->base == read_buf)
    atomic_flag_clear(&read_buf_busy);
  else
    free(buf->base);
}

/* ---- identities and routes ---- */

static bool same_str(const char *a, const char *b) {
  return a == b || (a && b && strcmp(a, b) == 0);
}

static void id_free(struct tls_id *id) {
  SSL_CTX_free(id->ctx);
  free(id->cert);
  if (id->key)
    OPENSSL_cleanse(id->key, strlen(id->key));
  free(id->key);
  free(id->ca);
  free(id);
}

/* Drops the least recently used identities no route uses, past
 * IDS_KEEP. */
static void ids_trim(struct http_client *c) {
  struct tls_id **pp = &c->ids;
  int seen = 0;
  while (*pp) {
    struct tls_id *id = *pp;
    if (++seen > IDS_KEEP && id->refs == 0) {
      *pp = id->next;
      id_free(id);
      c->nids--;
      continue;
    }
    pp = &id->next;
  }
}

/* TLS 1.3 sends sessions after the handshake, one or more per
 * connection: the route keeps a copy of the last. A copy: OpenSSL marks
 * the connection's own not resumable when it is freed without a
 * close_notify, which is how connections end here. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess) {
  struct conn *k = SSL_get_app_data(ssl);
  SSL_SESSION *copy;
  if (!k || k->closing || !k->route || !(copy = SSL_SESSION_dup(sess)))
    return 0;
  SSL_SESSION_free(k->route->session);
  k->route->session = copy;
  return 0; /* sess stays OpenSSL's */
}

static struct tls_id *id_get(struct http_client *c, const char *cert,
                             const char *key, const char *ca,
                             enum tlsconn_check check, sh_err *err) {
  for (struct tls_id **pp = &c->ids; *pp; pp = &(*pp)->next) {
    struct tls_id *id = *pp;
    if (id->check == check && same_str(id->cert, cert) &&
        same_str(id->key, key) && same_str(id->ca, ca)) {
      *pp = id->next; /* to the front */
      id->next = c->ids;
      c->ids = id;
      return id;
    }
  }
  SSL_CTX *ctx = tlsconn_client_ctx_with(cert, key, ca, check, err);
  if (!ctx)
    return NULL;
  if (check == TLSCONN_CHECK_NONE) {
    /* The caller checks this connection's chain itself: nothing from it
     * is kept for another. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  } else {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
                                            SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
  }
  struct tls_id *id = xcalloc(1, sizeof *id);
  id->cert = cert ? xstrdup(cert) : NULL;
  id->key = key ? xstrdup(key) : NULL;
  id->ca = ca ? xstrdup(ca) : NULL;
  id->check = check;
  id->ctx = ctx;
  id->next = c->ids;
  c->ids = id;
  c->nids++;
  ids_trim(c);
  return id;
}

static void route_free(struct http_client *c, struct route *r) {
  SSL_SESSION_free(r->session);
  if (r->id) {
    r->id->refs--;
    ids_trim(c);
  }
  free(r->authority);
  free(r->host);
  free(r->port);
  free(r->unix_path);
  free(r);
}

/* Drops the least recently used routes nothing uses, past ROUTES_KEEP. */
static void routes_trim(struct http_client *c) {
  struct route **pp = &c->routes;
  int seen = 0;
  while (*pp) {
    struct route *r = *pp;
    if (++seen > ROUTES_KEEP && r->refs == 0) {
      *pp = r->next;
      c->nroutes--;
      route_free(c, r);
      continue;
    }
    pp = &r->next;
  }
}

static void route_unref(struct http_client *c, struct route *r) {
  if (r && --r->refs == 0 && c->nroutes > ROUTES_KEEP)
    routes_trim(c);
}

static struct route *route_get(struct http_client *c, struct tls_id *id,
                               unsigned lane, const char *host,
                               const char *port, const char *unix_path) {
  bool v6 = strchr(host, ':') != NULL;
  cleanup_free char *authority =
      xasprintf(v6 ? "[%s]:%s" : "%s:%s", host, port);
  SSL_SESSION *sibling = NULL; /* another lane's to the same server */
  for (struct route **pp = &c->routes; *pp; pp = &(*pp)->next) {
    struct route *r = *pp;
    if (r->id == id && strcmp(r->authority, authority) == 0 &&
        same_str(r->unix_path, unix_path)) {
      if (r->lane != lane) {
        sibling = sibling ? sibling : r->session;
        continue;
      }
      *pp = r->next; /* to the front */
      r->next = c->routes;
      c->routes = r;
      return r;
    }
  }
  struct route *r = xcalloc(1, sizeof *r);
  r->lane = lane;
  if (sibling) /* a copy, as on_new_session keeps */
    r->session = SSL_SESSION_dup(sibling);
  r->authority = STEAL_POINTER(&authority);
  r->host = xstrdup(host);
  r->port = xstrdup(port);
  r->unix_path = unix_path ? xstrdup(unix_path) : NULL;
  r->id = id;
  if (id)
    id->refs++;
  r->addr_known =
      !unix_path && tlsconn_parse_addr(r->authority, &r->addr, NULL) == 0;
  r->next = c->routes;
  c->routes = r;
  c->nroutes++;
  return r;
}

/* ---- calls ---- */

static void call_link(struct http_call **list, struct http_call *call) {
  call->list = list;
  call->prev = NULL;
  call->next = *list;
  if (*list)
    (*list)->prev = call;
  *list = call;
}

static void call_unlink(struct http_call *call) {
  if (!call->list)
    return;
  if (call->prev)
    call->prev->next = call->next;
  else
    *call->list = call->next;
  if (call->next)
    call->next->prev = call->prev;
  call->prev = call->next = NULL;
  call->list = NULL;
}

static void call_free(struct http_call *call) {
  call_unlink(call);
  route_unref(call->c, call->route);
  buf_free(&call->req);
  buf_free(&call->body);
  free(call->chain);
  free(call->error);
  free(call);
}

/* Runs done (unless cancelled) and frees the call. */
static void call_report(struct http_call *call, int status, const char *error) {
  call_unlink(call);
  if (!call->cancelled) {
    struct http_result res = {
        .status = status,
        .body = call->body.data ? call->body.data : "",
        .body_len = call->body.len,
        .error = error,
        .peer_chain_pem = call->chain,
    };
    call->in_done = true;
    call->done(&res, call->ud);
  }
  call_free(call);
}

static void on_kick(uv_timer_t *t) {
  struct http_client *c = t->data;
  struct http_call *call;
  while (!c->closing && (call = c->later) != NULL)
    call_report(call, 0, call->error);
}

/* A transport failure (status 0): reported now, or from the next loop
 * turn when found inside http_client_call. */
static void call_fail(struct http_call *call, const char *error) {
  struct http_client *c = call->c;
  if (!c->api_depth) {
    call_report(call, 0, error);
    return;
  }
  free(call->error);
  call->error = xstrdup(error);
  call_unlink(call);
  call_link(&c->later, call);
  uv_timer_start(&c->kick, on_kick, 0, 0);
}

/* ---- connections ---- */

static void on_conn_timer(uv_timer_t *t);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void client_free(struct http_client *c) {
  while (c->routes) {
    struct route *r = c->routes;
    c->routes = r->next;
    route_free(c, r);
  }
  while (c->ids) {
    struct tls_id *id = c->ids;
    c->ids = id->next;
    id_free(id);
  }
  free(c);
}

static void client_unref(struct http_client *c) {
  if (--c->open == 0 && c->closing)
    client_free(c);
}

/* For messages: the unix socket or host:port. */
static const char *conn_name(const struct conn *k) {
  return k->route->unix_path ? k->route->unix_path : k->route->authority;
}

static void conn_arm(struct conn *k) {
  uint64_t due = 0;
  if (k->state == CS_IDLE) {
    due = k->idle_deadline;
  } else {
    if (k->call && k->call->deadline)
      due = k->call->deadline;
    if (k->connect_deadline && (!due || k->connect_deadline < due))
      due = k->connect_deadline;
  }
  if (!due) {
    uv_timer_stop(&k->timer);
    return;
  }
  uint64_t now = uv_now(k->c->loop);
  uv_timer_start(&k->timer, on_conn_timer, due > now ? due - now : 0, 0);
}

static void conn_free(struct conn *k) {
  struct http_client *c = k->c;
  SSL_free(k->ssl); /* and its BIOs */
  free(k->addrs);
  free(k);
  client_unref(c);
}

static void on_conn_closed(uv_handle_t *h) {
  struct conn *k = h->data;
  if (--k->pending == 0)
    conn_free(k);
}

static void idle_unlink(struct conn *k) {
  struct route *r = k->route;
  if (k->idle_prev)
    k->idle_prev->idle_next = k->idle_next;
  else
    r->idle = k->idle_next;
  if (k->idle_next)
    k->idle_next->idle_prev = k->idle_prev;
  k->idle_prev = k->idle_next = NULL;
  r->nidle--;
  uv_ref(&k->h.handle);
  uv_ref((uv_handle_t *)&k->timer);
}

/* Closes the connection at once (no close_notify: the server takes EOF
 * as the end). Its call, if any, is the caller's to report. */
static void conn_close(struct conn *k) {
  if (k->closing)
    return;
  struct http_client *c = k->c;
  if (k->state == CS_IDLE)
    idle_unlink(k);
  k->closing = true;
  if (k->call) {
    k->call->conn = NULL;
    k->call = NULL;
  }
  if (k->prev)
    k->prev->next = k->next;
  else
    c->conns = k->next;
  if (k->next)
    k->next->prev = k->prev;
  k->prev = k->next = NULL;
  route_unref(c, STEAL_POINTER(&k->route));
  if (k->gai)
    uv_cancel((uv_req_t *)k->gai);
  uv_close((uv_handle_t *)&k->timer, on_conn_closed);
  uv_close(&k->h.handle, on_conn_closed);
}

static struct conn *conn_new(struct http_client *c, struct route *r) {
  struct conn *k = xcalloc(1, sizeof *k);
  int rc = r->unix_path ? uv_pipe_init(c->loop, &k->h.pipe, 0)
                        : uv_tcp_init(c->loop, &k->h.tcp);
  if (rc < 0) {
    free(k);
    return NULL;
  }
  uv_timer_init(c->loop, &k->timer);
  k->h.handle.data = k->timer.data = k;
  k->pending = 2;
  k->c = c;
  k->route = r;
  r->refs++;
  k->next = c->conns;
  if (c->conns)
    c->conns->prev = k;
  c->conns = k;
  c->open++;
  return k;
}

static void conn_attach(struct conn *k, struct http_call *call) {
  k->call = call;
  call->conn = k;
  http_parser_init(&k->parser, HTTP_RESPONSE);
  k->parser.data = k;
  k->msg_done = k->keep_alive = k->extra = k->interim = false;
}

enum fail {
  F_OTHER,
  F_CONNECT, /* connect() failed */
  F_CLOSED,  /* the server closed or reset the connection */
  F_TLS,     /* the handshake failed */
};

/* Ends the connection on a failure; its call is sent again or told. */
static void conn_fail(struct conn *k, enum fail why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void conn_dial_next(struct http_call *call, struct addrs *rest,
                           uint64_t deadline);

static void conn_fail(struct conn *k, enum fail why, const char *fmt, ...) {
  if (k->closing)
    return;
  struct http_call *call = k->call;
  if (why == F_CONNECT && call && k->addrs && k->addrs->next < k->addrs->n) {
    /* The host name has more addresses: the next one. */
    struct addrs *rest = STEAL_POINTER(&k->addrs);
    uint64_t deadline = k->connect_deadline;
    conn_close(k);
    conn_dial_next(call, rest, deadline);
    return;
  }
  /* A server that refused the session offered (one without a session ID
   * context fails such a handshake) may take a full one. */
  bool session_refused =
      k->offered_session &&
      (why == F_TLS || (why == F_CLOSED && k->state == CS_HANDSHAKE));
  if (session_refused && k->route->session) {
    SSL_SESSION_free(k->route->session);
    k->route->session = NULL;
  }
  /* The server closed a kept connection as the request went out (its
   * idle limit): nothing was answered, so the request goes once more on a
   * new connection, as curl does. */
  bool retry = call && !call->answered && !call->retried &&
               ((why == F_CLOSED && k->served > 0) || session_refused);
  char msg[SH_ERR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  conn_close(k);
  if (!call)
    return;
  if (retry) {
    call->retried = true;
    call_dispatch(call);
    return;
  }
  call_fail(call, msg);
}

static void on_conn_timer(uv_timer_t *t) {
  struct conn *k = t->data;
  if (k->closing)
    return;
  uint64_t now = uv_now(k->c->loop);
  struct http_call *call = k->call;
  if (k->state == CS_IDLE) {
    if (now >= k->idle_deadline)
      conn_close(k);
    else
      conn_arm(k);
  } else if (call && call->deadline && now >= call->deadline) {
    conn_fail(k, F_OTHER, "%s: timed out after %ld ms", conn_name(k),
              call->timeout_ms);
  } else if (k->connect_deadline && now >= k->connect_deadline) {
    conn_fail(k, F_OTHER, "connecting to %s timed out after %u ms",
              conn_name(k), call ? call->connect_ms : 0);
  } else {
    conn_arm(k);
  }
}

/* ---- output ---- */

struct wreq {
  uv_write_t w; /* first: the callback gets it */
  char *data;
};

static void on_written(uv_write_t *w, int status) {
  struct wreq *wr = (struct wreq *)w;
  struct conn *k = w->data;
  free(wr->data);
  free(wr);
  if (status < 0 && status != UV_ECANCELED && !k->closing)
    conn_fail(k, F_CLOSED, "sending to %s: %s", conn_name(k),
              uv_strerror(status));
}

static void conn_write(struct conn *k, char *owned, size_t len) {
  struct wreq *wr = xmalloc(sizeof *wr);
  wr->data = owned;
  wr->w.data = k;
  uv_buf_t b = uv_buf_init(owned, (unsigned)len);
  int r = uv_write(&wr->w, &k->h.stream, &b, 1, on_written);
  if (r < 0) {
    free(owned);
    free(wr);
    conn_fail(k, F_CLOSED, "sending to %s: %s", conn_name(k), uv_strerror(r));
  }
}

/* Moves what OpenSSL wrote onto the socket. */
static void conn_flush(struct conn *k) {
  char *data;
  size_t len;
  while (!k->closing && (data = tlsconn_take_output(k->ssl, &len)) != NULL)
    conn_write(k, data, len);
}

/* Sends the call's request on the connected (and, with TLS, shaken
 * hands) connection. */
static void conn_send(struct conn *k) {
  struct http_call *call = k->call;
  k->state = CS_BUSY;
  k->connect_deadline = 0;
  conn_arm(k);
  if (!k->ssl) {
    /* A copy: the call keeps its request for a retry. */
    char *copy = xmalloc(call->req.len);
    memcpy(copy, call->req.data, call->req.len);
    conn_write(k, copy, call->req.len);
    return;
  }
  size_t written = 0;
  ERR_clear_error();
  int r = SSL_write_ex(k->ssl, call->req.data, call->req.len, &written);
  ERR_clear_error();
  conn_flush(k);
  if (r != 1)
    conn_fail(k, F_OTHER, "TLS write to %s failed", conn_name(k));
}

/* ---- input ---- */

static int on_headers_complete(http_parser *p) {
  struct conn *k = p->data;
  struct http_call *call = k->call;
  if (p->status_code / 100 == 1 && p->status_code != 101) {
    k->interim = true; /* 100 Continue and the like: the answer follows */
    return 0;
  }
  if (call->is_head || p->status_code == 101)
    return 1; /* no body follows */
  uint64_t len = p->content_length;
  if (!call->on_data && len != ULLONG_MAX && len <= MAX_BODY_RESERVE &&
      call->body.cap < len + 1) {
    call->body.data = xrealloc(call->body.data, (size_t)len + 1);
    call->body.cap = (size_t)len + 1;
    call->body.data[call->body.len] = '\0';
  }
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  struct conn *k = p->data;
  struct http_call *call = k->call;
  if (!call->on_data) {
    buf_append(&call->body, at, len);
    return 0;
  }
  call->in_data = true;
  bool more = call->on_data(at, len, call->ud);
  call->in_data = false;
  if (!more)
    call->aborted = true;
  return more && !call->cancelled && !k->closing ? 0 : -1;
}

static int on_message_complete(http_parser *p) {
  struct conn *k = p->data;
  if (k->interim) {
    k->interim = false;
    return 0;
  }
  k->msg_done = true;
  k->keep_alive = http_should_keep_alive(p) && p->status_code != 101;
  /* Anything after the answer is not ours to read: see conn_input. */
  http_parser_pause(p, 1);
  return 0;
}

static const http_parser_settings answer_settings = {
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Plaintext from the server. */
static void conn_input(struct conn *k, const char *data, size_t len) {
  struct http_call *call = k->call;
  if (!call) { /* idle: no answer is due */
    conn_close(k);
    return;
  }
  if (k->msg_done) {
    k->extra = true;
    return;
  }
  call->answered = true;
  size_t n = http_parser_execute(&k->parser, &answer_settings, data, len);
  if (call->cancelled) { /* by its own on_data */
    conn_close(k);
    call_free(call);
    return;
  }
  if (k->closing) { /* http_client_close from on_data */
    call_report(call, 0, "client closed");
    return;
  }
  if (call->aborted) {
    int status = k->parser.status_code;
    conn_close(k);
    call_report(call, status, "aborted");
    return;
  }
  enum http_errno e = HTTP_PARSER_ERRNO(&k->parser);
  if (e == HPE_PAUSED) {
    k->extra = n < len;
    return;
  }
  if (e != HPE_OK || n != len)
    conn_fail(k, F_OTHER, "%s: malformed HTTP answer (%s)", conn_name(k),
              http_errno_name(e));
}

/* The whole answer is in: the connection goes back to its route's idle
 * list (before done runs, so a call done starts may take it) or closes. */
static void conn_complete(struct conn *k) {
  struct http_call *call = k->call;
  struct http_client *c = k->c;
  int status = k->parser.status_code;
  k->served++;
  bool keep = k->keep_alive && !k->extra && !call->insecure && !c->closing &&
              uv_stream_get_write_queue_size(&k->h.stream) == 0 &&
              (!k->ssl || BIO_ctrl_pending(SSL_get_wbio(k->ssl)) == 0);
  k->call = NULL;
  call->conn = NULL;
  if (keep) {
    struct route *r = k->route;
    k->state = CS_IDLE;
    k->idle_deadline = uv_now(c->loop) + IDLE_MS;
    k->idle_prev = NULL;
    k->idle_next = r->idle;
    if (r->idle)
      r->idle->idle_prev = k;
    r->idle = k;
    r->nidle++;
    conn_arm(k);
    /* Idle connections do not keep the loop running. */
    uv_unref(&k->h.handle);
    uv_unref((uv_handle_t *)&k->timer);
    if (r->nidle > IDLE_PER_ROUTE) {
      struct conn *oldest = r->idle;
      while (oldest->idle_next)
        oldest = oldest->idle_next;
      conn_close(oldest);
    }
  } else {
    conn_close(k);
  }
  call_report(call, status, NULL);
}

/* EOF or a read error. */
static void conn_eof(struct conn *k, int err) {
  struct http_call *call = k->call;
  if (!call) { /* idle: the server closed it */
    conn_close(k);
    return;
  }
  if (err == UV_EOF && call->answered && !k->msg_done &&
      (!k->ssl || k->close_notify))
    /* An answer without a length ends with the connection. */
    http_parser_execute(&k->parser, &answer_settings, NULL, 0);
  if (k->msg_done) {
    k->keep_alive = false;
    conn_complete(k);
    return;
  }
  if (err != UV_EOF)
    conn_fail(k, F_CLOSED, "%s: %s", conn_name(k), uv_strerror(err));
  else if (call->answered)
    conn_fail(k, F_CLOSED, "%s closed the connection before the answer ended",
              conn_name(k));
  else
    conn_fail(k, F_CLOSED, "%s closed the connection", conn_name(k));
}

static void conn_tls_failed(struct conn *k) {
  long v = SSL_get_verify_result(k->ssl);
  unsigned long e = ERR_peek_last_error();
  char reason[256] = "";
  if (e)
    ERR_error_string_n(e, reason, sizeof reason);
  ERR_clear_error();
  enum tlsconn_check check = k->route->id->check;
  if (v != X509_V_OK && check == TLSCONN_CHECK_MANAGER)
    /* The check that replaces the host name check (see
     * tlsconn_verify_manager): the request never went out. */
    conn_fail(k, F_TLS,
              "the server is not a manager of this swarm (its certificate "
              "was refused: %s)",
              X509_verify_cert_error_string(v));
  else if (v != X509_V_OK && check == TLSCONN_CHECK_CHAIN)
    conn_fail(k, F_TLS, "TLS handshake with %s: certificate refused: %s",
              conn_name(k), X509_verify_cert_error_string(v));
  else
    conn_fail(k, F_TLS, "TLS handshake with %s failed%s%s", conn_name(k),
              *reason ? ": " : "", reason);
}

/* Ciphertext from the server. False when the connection closed. */
static bool conn_tls_input(struct conn *k, const char *data, size_t len) {
  if (BIO_write(SSL_get_rbio(k->ssl), data, (int)len) != (int)len) {
    conn_fail(k, F_OTHER, "%s: TLS buffer", conn_name(k));
    return false;
  }
  if (!k->hs_done) {
    ERR_clear_error();
    int r = SSL_do_handshake(k->ssl);
    if (r != 1) {
      int e = SSL_get_error(k->ssl, r);
      conn_flush(k); /* the alert, if any */
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        return !k->closing;
      }
      if (!k->closing)
        conn_tls_failed(k);
      return false;
    }
    k->hs_done = true;
    conn_flush(k);
    if (k->closing || !k->call) {
      conn_close(k);
      return false;
    }
    /* For the call that made the connection: a joining node checks the
     * chain (insecure calls never share a connection). */
    k->call->chain = tlsconn_peer_chain_pem(k->ssl);
    conn_send(k);
    if (k->closing)
      return false;
  }
  for (;;) {
    char tmp[16384];
    size_t got = 0;
    ERR_clear_error();
    if (SSL_read_ex(k->ssl, tmp, sizeof tmp, &got) == 1) {
      conn_input(k, tmp, got);
      if (k->closing)
        return false;
      continue;
    }
    int e = SSL_get_error(k->ssl, 0);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
      break;
    if (e == SSL_ERROR_ZERO_RETURN) { /* close_notify */
      ERR_clear_error();
      k->close_notify = true;
      conn_eof(k, UV_EOF);
      return false;
    }
    char reason[256] = "";
    unsigned long ee = ERR_peek_last_error();
    if (ee)
      ERR_error_string_n(ee, reason, sizeof reason);
    ERR_clear_error();
    conn_flush(k);
    conn_fail(k, F_OTHER, "TLS connection to %s failed%s%s", conn_name(k),
              *reason ? ": " : "", reason);
    return false;
  }
  ERR_clear_error();
  conn_flush(k); /* key updates and the like */
  if (k->closing)
    return false;
  tlsconn_trim(k->ssl);
  return true;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  struct conn *k = s->data;
  if (!k->closing && n < 0) {
    conn_eof(k, (int)n);
  } else if (!k->closing && n > 0) {
    if (!k->ssl)
      conn_input(k, buf->base, (size_t)n);
    else if (!conn_tls_input(k, buf->base, (size_t)n))
      goto out;
    /* An idle connection can read bytes that are no answer (a TLS 1.3
     * ticket or key update after one, part of a record): only a call's
     * answer completes. */
    if (!k->closing && k->call && k->msg_done)
      conn_complete(k);
  }
out:
  read_buf_release(buf);
}

/* ---- connecting ---- */

static void conn_tls_start(struct conn *k) {
  struct route *r = k->route;
  k->state = CS_HANDSHAKE;
  k->ssl = tlsconn_ssl_new(r->id->ctx, true);
  if (!k->ssl) {
    conn_fail(k, F_OTHER, "%s: cannot make TLS state", conn_name(k));
    return;
  }
  /* OpenSSL's record buffers (about 34 KiB) go back while idle. */
  SSL_set_mode(k->ssl, SSL_MODE_RELEASE_BUFFERS);
  SSL_set_app_data(k->ssl, k);
  if (!r->addr_known && !r->unix_path)
    SSL_set_tlsext_host_name(k->ssl, r->host);
  if (r->session && r->id->check != TLSCONN_CHECK_NONE &&
      SSL_set_session(k->ssl, r->session) == 1)
    k->offered_session = true;
  ERR_clear_error();
  int hs = SSL_do_handshake(k->ssl); /* ClientHello */
  int e = SSL_get_error(k->ssl, hs);
  conn_flush(k);
  if (k->closing) {
    ERR_clear_error();
    return;
  }
  if (hs != 1 && e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
    conn_tls_failed(k);
  ERR_clear_error();
}

static void on_connect(uv_connect_t *req, int status) {
  struct conn *k = req->data;
  if (k->closing)
    return;
  if (status < 0) {
    conn_fail(k, F_CONNECT, "connect to %s: %s", conn_name(k),
              uv_strerror(status));
    return;
  }
  if (!k->route->unix_path) {
    uv_tcp_nodelay(&k->h.tcp, 1);
    uv_tcp_keepalive(&k->h.tcp, 1, 30);
  }
  int r = uv_read_start(&k->h.stream, on_alloc, on_read);
  if (r < 0)
    conn_fail(k, F_OTHER, "%s: %s", conn_name(k), uv_strerror(r));
  else if (k->route->id)
    conn_tls_start(k);
  else
    conn_send(k);
}

/* Connects to the next of a host name's addresses. */
static void conn_connect_addr(struct conn *k) {
  struct sockaddr_storage *ss = &k->addrs->a[k->addrs->next++];
  int r =
      uv_tcp_connect(&k->creq, &k->h.tcp, (struct sockaddr *)ss, on_connect);
  if (r < 0)
    conn_fail(k, F_CONNECT, "connect to %s: %s", conn_name(k), uv_strerror(r));
}

static void on_resolved(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res) {
  struct conn *k = req->data;
  free(req);
  k->gai = NULL;
  bool closing = k->closing;
  if (--k->pending == 0) { /* only when closing: its handles are closed */
    uv_freeaddrinfo(res);
    conn_free(k);
    return;
  }
  if (closing) {
    uv_freeaddrinfo(res);
    return;
  }
  struct addrs *a = xcalloc(1, sizeof *a);
  for (struct addrinfo *ai = res; ai && a->n < (int)ARRAY_SIZE(a->a);
       ai = ai->ai_next) {
    if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
        ai->ai_addrlen <= sizeof a->a[0])
      memcpy(&a->a[a->n++], ai->ai_addr, ai->ai_addrlen);
  }
  uv_freeaddrinfo(res);
  if (a->n == 0) {
    free(a);
    conn_fail(k, F_OTHER, "cannot resolve %s: %s", k->route->host,
              status < 0 ? uv_strerror(status) : "no address");
    return;
  }
  k->addrs = a;
  conn_connect_addr(k);
}

/* Starts connecting; every failure, immediate or not, goes through
 * conn_fail. */
static void conn_dial(struct conn *k, unsigned connect_ms) {
  struct route *r = k->route;
  struct http_client *c = k->c;
  k->state = CS_CONNECTING;
  k->connect_deadline = uv_now(c->loop) + connect_ms;
  conn_arm(k);
  k->creq.data = k;
  if (r->unix_path) {
    uv_pipe_connect(&k->creq, &k->h.pipe, r->unix_path, on_connect);
    return;
  }
  int rc;
  if (r->addr_known) {
    rc = uv_tcp_connect(&k->creq, &k->h.tcp, (struct sockaddr *)&r->addr,
                        on_connect);
  } else {
    /* A host name (`swarm join` may be given one): resolved on libuv's
     * thread pool. The swarm's own addresses are IPs. */
    k->gai = xmalloc(sizeof *k->gai);
    k->gai->data = k;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM};
    k->pending++;
    rc = uv_getaddrinfo(c->loop, k->gai, on_resolved, r->host, r->port, &hints);
    if (rc < 0) {
      free(STEAL_POINTER(&k->gai));
      k->pending--;
    }
  }
  if (rc < 0)
    conn_fail(k, F_CONNECT, "connect to %s: %s", conn_name(k), uv_strerror(rc));
}

/* The next address of a host name, on a new connection, within the
 * first one's connect deadline. */
static void conn_dial_next(struct http_call *call, struct addrs *rest,
                           uint64_t deadline) {
  struct conn *k = conn_new(call->c, call->route);
  if (!k) {
    free(rest);
    call_fail(call, "cannot make a socket");
    return;
  }
  conn_attach(k, call);
  k->addrs = rest;
  k->state = CS_CONNECTING;
  k->connect_deadline = deadline;
  conn_arm(k);
  k->creq.data = k;
  conn_connect_addr(k);
}

/* ---- calls ---- */

/* Sends the call on an idle connection of its route, or a new one (a
 * retry and insecure calls always take a new one). */
static void call_dispatch(struct http_call *call) {
  struct route *r = call->route;
  struct conn *k = NULL;
  if (!call->insecure && !call->retried && (k = r->idle) != NULL) {
    idle_unlink(k);
    k->state = CS_BUSY;
    conn_attach(k, call);
    conn_send(k);
    return;
  }
  k = conn_new(call->c, r);
  if (!k) {
    call_fail(call, "cannot make a socket");
    return;
  }
  conn_attach(k, call);
  conn_dial(k, call->connect_ms);
}

/* Names the transport (framing) headers the client writes itself. */
static bool framing_header(const char *name, size_t len) {
  static const char *const own[] = {"Host", "Content-Length",
                                    "Transfer-Encoding", "Connection"};
  for (size_t i = 0; i < ARRAY_SIZE(own); i++)
    if (strlen(own[i]) == len && strncasecmp(name, own[i], len) == 0)
      return true;
  return false;
}

/* A header line the caller may add: one line, "Name: value", not one of
 * the framing headers. A value left empty is curl's way to say "none of
 * yours": the line is not sent. */
static bool header_ok(const char *h, size_t *name_len) {
  const char *colon = strchr(h, ':');
  if (strpbrk(h, "\r\n") || !colon || colon == h)
    return false;
  *name_len = (size_t)(colon - h);
  return !framing_header(h, *name_len);
}

/* Route and request bytes from the options. */
static int call_prepare(struct http_call *call, const struct http_call_opts *o,
                        sh_err *err) {
  const char *url = o->url;
  struct http_parser_url u;
  http_parser_url_init(&u);
  if (http_parser_parse_url(url, strlen(url), 0, &u) != 0 ||
      !(u.field_set & (1 << UF_SCHEMA)) || !(u.field_set & (1 << UF_HOST)) ||
      (u.field_set & (1 << UF_USERINFO)) ||
      ((u.field_set & (1 << UF_PORT)) && u.port == 0))
    return sh_error(err, 400, "invalid URL %s", url);
  const char *scheme = url + u.field_data[UF_SCHEMA].off;
  size_t scheme_len = u.field_data[UF_SCHEMA].len;
  bool tls = scheme_len == 5 && strncasecmp(scheme, "https", 5) == 0;
  if (!tls && !(scheme_len == 4 && strncasecmp(scheme, "http", 4) == 0))
    return sh_error(err, 400, "unsupported URL scheme in %s", url);
  char host[256], port[8];
  size_t host_len = u.field_data[UF_HOST].len;
  if (host_len == 0 || host_len >= sizeof host)
    return sh_error(err, 400, "invalid URL %s", url);
  memcpy(host, url + u.field_data[UF_HOST].off, host_len);
  host[host_len] = '\0';
  snprintf(port, sizeof port, "%u",
           (u.field_set & (1 << UF_PORT)) ? u.port
           : tls                          ? 443u
                                          : 80u);
  const char *method = o->method && *o->method ? o->method : "GET";
  if (strpbrk(method, " \t\r\n"))
    return sh_error(err, 400, "invalid method %s", method);
  const char *ctype = o->content_type ? o->content_type : "application/json";
  if (strpbrk(ctype, "\r\n"))
    return sh_error(err, 400, "invalid content type");

  struct tls_id *id = NULL;
  if (tls) {
    enum tlsconn_check check = o->insecure      ? TLSCONN_CHECK_NONE
                               : o->unix_socket ? TLSCONN_CHECK_CHAIN
                                                : TLSCONN_CHECK_MANAGER;
    id = id_get(call->c, o->cert_pem, o->key_pem,
                o->insecure ? NULL : o->ca_pem, check, err);
    if (!id)
      return -1;
  }
  call->route = route_get(call->c, id, o->lane, host, port, o->unix_socket);
  call->route->refs++;
  call->is_head = strcasecmp(method, "HEAD") == 0;

  sh_buf *b = &call->req;
  buf_printf(b, "%s ", method);
  if (u.field_set & (1 << UF_PATH))
    buf_append(b, url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
  else
    buf_append(b, "/", 1);
  if (u.field_set & (1 << UF_QUERY)) {
    buf_append(b, "?", 1);
    buf_append(b, url + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
  }
  buf_printf(b, " HTTP/1.1\r\nHost: %s\r\n", call->route->authority);
  bool has_body = o->body != NULL, own_ctype = false;
  size_t nl;
  for (const char *const *h = o->headers; h && *h; h++)
    if (header_ok(*h, &nl) && nl == 12 &&
        strncasecmp(*h, "Content-Type", 12) == 0)
      own_ctype = true;
  /* No form-urlencoded default on a body-less POST (curl's). */
  if (has_body && !own_ctype)
    buf_printf(b, "Content-Type: %s\r\n", ctype);
  if (has_body)
    buf_printf(b, "Content-Length: %zu\r\n", o->body_len);
  else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
           strcmp(method, "PATCH") == 0)
    buf_printf(b, "Content-Length: 0\r\n");
  for (const char *const *h = o->headers; h && *h; h++) {
    if (!header_ok(*h, &nl))
      continue;
    const char *v = *h + nl + 1;
    while (*v == ' ' || *v == '\t')
      v++;
    if (*v)
      buf_printf(b, "%s\r\n", *h);
  }
  buf_append(b, "\r\n", 2);
  if (has_body)
    buf_append(b, o->body, o->body_len);
  return 0;
}

struct http_client *http_client_new(uv_loop_t *loop) {
  struct http_client *c = xcalloc(1, sizeof *c);
  c->loop = loop;
  uv_timer_init(loop, &c->kick);
  c->kick.data = c;
  c->open = 1;
  return c;
}

struct http_call *http_client_call(struct http_client *c,
                                   const struct http_call_opts *opts,
                                   http_data_fn on_data, http_done_fn done,
                                   void *ud) {
  if (!c || c->closing || !opts || !opts->url || !done)
    return NULL;
  struct http_call *call = xcalloc(1, sizeof *call);
  call->c = c;
  call->on_data = on_data;
  call->done = done;
  call->ud = ud;
  call->insecure = opts->insecure;
  call->connect_ms = opts->connect_timeout_ms > 0
                         ? (unsigned)(opts->connect_timeout_ms < INT_MAX
                                          ? opts->connect_timeout_ms
                                          : INT_MAX)
                         : DEF_CONNECT_MS;
  if (opts->timeout_ms > 0) {
    call->timeout_ms = opts->timeout_ms;
    call->deadline = uv_now(c->loop) + (uint64_t)opts->timeout_ms;
  }
  call_link(&c->calls, call);
  c->api_depth++;
  sh_err err = {0};
  if (call_prepare(call, opts, &err) < 0)
    call_fail(call, err.msg);
  else
    call_dispatch(call);
  c->api_depth--;
  return call;
}

void http_call_cancel(struct http_call *call) {
  if (!call || call->cancelled || call->in_done)
    return;
  call->cancelled = true;
  call_unlink(call);
  if (call->in_data)
    return; /* conn_input frees it once on_data returns */
  if (call->conn)
    conn_close(call->conn);
  call_free(call);
}

static void on_kick_closed(uv_handle_t *h) {
  client_unref(h->data);
}

void http_client_close(struct http_client *c) {
  if (!c || c->closing)
    return;
  c->closing = true;
  while (c->conns)
    conn_close(c->conns);
  struct http_call **lists[] = {&c->later, &c->calls};
  for (size_t i = 0; i < ARRAY_SIZE(lists); i++) {
    struct http_call *call;
    while ((call = *lists[i]) != NULL) {
      call_unlink(call);
      if (!call->in_data) /* else conn_input reports it */
        call_report(call, 0, "client closed");
    }
  }
  uv_timer_stop(&c->kick);
  uv_close((uv_handle_t *)&c->kick, on_kick_closed);
}
