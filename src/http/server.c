/* HTTP/1.1 server: libuv streams, http_parser, OpenSSL over memory BIOs.
 *
 * One request per connection is outstanding at a time: the parser is paused
 * when a request completes and resumed once the handler has answered, so
 * pipelined requests are answered in order. Connection memory outlives its
 * libuv handle while the handler still owns a request on it. */
#include "http/server.h"
#include "http/tlsconn.h"

#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"

#include <ctype.h>
#include <errno.h>
#include <http_parser.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define READ_BUF_SIZE 65536
/* Stop reading a connection when this much pipelined input waits. */
#define MAX_PENDING_INPUT (1u << 20)
/* Request line and headers, as dockerd's Go server bounds them: it leaves
 * http.Server.MaxHeaderBytes at DefaultMaxHeaderBytes (1 MiB) and net/http
 * reads up to 4096 bytes more before answering 431. */
#define MAX_HEADER_BYTES ((1u << 20) + 4096)
/* Go's net/http answer past that (text/plain, then the connection closes). */
#define HEADERS_TOO_LARGE "431 Request Header Fields Too Large"
/* After an early 413: how long and how much of the rest of the request is
 * read and dropped so the client reads the answer rather than a reset. */
#define LINGER_MS 2000
#define LINGER_BYTES (4u << 20)
/* The rest of a streamed body the handler answered before reading it
 * all: read and dropped up to this much (the connection then stays in
 * step for keep-alive), past it the connection is closed. */
#define DISCARD_BYTES (4u << 20)

/* Defaults, in the spirit of dockerd's Go server (see docs/architecture.md,
 * "Endpoint limits"): dockerd sets ReadHeaderTimeout 5 min and no cap; we
 * are stricter where a client that honest needs far less. */
#define DEF_MAX_CONNS 1024
#define DEF_HEADER_TIMEOUT_MS 30000
/* Longer than the clients' own idle limits (Go's Transport 90 s, libcurl's
 * 118 s, http/client.c's 60 s), so a client never reuses a connection the
 * server just closed. */
#define DEF_IDLE_TIMEOUT_MS 180000
#define DEF_MAX_BODY_UNAUTH (64u * 1024)

#define container_of(ptr, type, member)                                        \
  ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

union stream_u {
  uv_handle_t handle;
  uv_stream_t stream;
  uv_tcp_t tcp;
  uv_pipe_t pipe;
};

struct http_listener {
  union stream_u h;
  struct http_server *srv;
  SSL_CTX *tls;
  bool is_tcp;
  unsigned nconns; /* open connections accepted here */
  /* TLS accepts this loop turn (uv_now accept_ms), and one held back
   * by the pace (see on_connection). */
  uint64_t accept_ms;
  unsigned accepted;
  bool paced;
  struct http_listener *next;
};

struct http_server {
  uv_loop_t *loop;
  http_handler_fn handler;
  void *ud;
  struct http_listener *listeners;
  struct http_conn *conns;
  int open_handles; /* listeners + connections + sweep not yet closed */
  int port;         /* last TCP port bound */
  bool closing;
  struct http_limits lim;
  uv_timer_t sweep; /* closes connections past their deadline */
  /* Streamed bodies resumed (or started) outside the parser, and the
   * requests that waited for a later turn (handlers_spent): delivered
   * from this idle callback, a later loop turn. */
  uv_idle_t kick;
  TAILQ_HEAD(http_conn_list, http_conn) waiting; /* oldest first */
  uint64_t turn_ms;    /* uv_now() of the turn handlers_spent saw */
  uint64_t turn_t0;    /* uv_hrtime() of its first handler */
  uv_timer_t pace;     /* resumes paced listeners a turn later */
  unsigned long paced; /* times a listener's queue was held back */
  bool (*stream_fn)(const struct http_req *head, void *ud);
  void *stream_ud;
  /* One read buffer for every connection: on_read consumes it at once
   * (copies into the parser's input or the TLS BIO), so an idle connection
   * holds none. */
  char rbuf[READ_BUF_SIZE];
};

/* A request with the parser's private state around the public part. */
struct req_priv {
  struct http_req pub;
  sh_buf url, body;
  bool keep_alive, is_head, upgrade, http10;
  bool streaming, chunked;
  void (*drain_fn)(struct http_req *req, void *ud);
  void *drain_ud;
  size_t drain_low;
  void (*on_data)(struct http_req *req, const char *data, size_t len, void *ud);
  void (*on_end)(struct http_req *req, bool complete, void *ud);
  void *body_ud;
};

struct http_conn {
  union stream_u h;
  struct http_server *srv; /* NULL once the handle is closed */
  struct http_listener *l; /* NULL once the listener is gone */
  struct http_conn *prev, *next;
  /* Set while on_conn_closed calls out: told when a release frees c. */
  bool *freed;
  /* uv_now() past which the connection is closed; 0: none. Set for the
   * request head (header timeout), keep-alive waits and bodies (idle). */
  uint64_t deadline;

  SSL_CTX *tls_ctx; /* TLS listener: SSL made at the first byte */
  SSL *ssl;         /* on memory BIOs (tlsconn_ssl_new) */
  bool handshake_done;
  bool peer_verified;
  char peer_cn[128], peer_ou[64], peer_o[128];
  char peer_addr[64];

  http_parser parser;
  struct req_priv *cur;    /* being parsed */
  struct req_priv *ready;  /* parsed, not yet given to the handler */
  struct req_priv *active; /* owned by the handler */
  sh_buf hfield, hvalue;
  bool in_value;
  size_t head_bytes; /* request line + headers of the current request */
  /* After Go's 431: output shut down, input read and dropped (up to
   * linger_left bytes) until the peer closes, so the peer reads the answer
   * instead of a reset for the request bytes it was still sending. */
  bool lingering;
  size_t linger_left;
  int err_status; /* set by a parser callback that fails on purpose */

  sh_buf in; /* plaintext not yet parsed */
  size_t in_off;

  bool in_process, reading, closing, handle_closed, close_after;
  /* After http_req_upgrade: no more HTTP; plaintext goes through bridge. */
  bool upgraded;
  bool peer_eof; /* upgraded and half-closed by the peer: no more reads */
  struct bridge *bridge;
  int api_depth; /* inside http_respond/http_stream_* for the active req */
  bool notify_on_closed; /* on_close still owed to the active request */
  bool is_unix;          /* accepted on a unix socket listener */
  /* A streamed request body. body_msg: the message being parsed streams
   * its body; body_rp: its request while the handler reads it (NULL once
   * answered: the rest is dropped, body_discard). */
  struct req_priv *body_rp;
  bool body_msg, body_started, body_paused, body_done, body_discard;
  /* "Expect: 100-continue" on a streamed body: the 100 goes when the
   * handler asks for the body; an answer before that closes the
   * connection (the client may never send the body). */
  bool continue_due;
  bool pause_expected; /* the parser paused for a body, not a request */
  bool in_parse;       /* inside http_parser_execute */
  bool kick;           /* on the server's kick list */
  bool waiting;        /* on the server's waiting list */
  TAILQ_ENTRY(http_conn) wait_link;
  bool notify_body_end; /* on_end(false) owed after an http_* call */
  size_t discarded;
  uv_shutdown_t shutdown;
};

struct wreq {
  uv_write_t w;
  struct http_conn *conn;
  char *data;
};

static void conn_close(struct http_conn *c, bool graceful);
static void conn_process(struct http_conn *c);
static int stream_head(struct http_conn *c, http_parser *p);

/* ---- limits ---- */

void http_limits_default(struct http_limits *l) {
  *l = (struct http_limits){
      .max_conns = DEF_MAX_CONNS,
      .header_timeout_ms = DEF_HEADER_TIMEOUT_MS,
      .idle_timeout_ms = DEF_IDLE_TIMEOUT_MS,
      .max_body = HTTP_MAX_BODY,
      .max_body_unauth = DEF_MAX_BODY_UNAUTH,
  };
}

/* A number and its unit suffix (copied to unit, lower case), from v[0..n). */
static int parse_num(const char *v, size_t n, unsigned long long *x,
                     char unit[4]) {
  char *end;
  cleanup_free char *s = xstrndup(v, n);
  errno = 0;
  *x = strtoull(s, &end, 10);
  if (end == s || errno || s[0] == '-' || strlen(end) > 3)
    return -1;
  size_t i = 0;
  for (; end[i]; i++)
    unit[i] = (char)tolower((unsigned char)end[i]);
  unit[i] = '\0';
  return 0;
}

/* "250ms", "30s", "2m", "0"; bare numbers are seconds. */
static int parse_ms(const char *v, size_t n, unsigned *out) {
  unsigned long long x, mul = 1000;
  char unit[4];
  if (parse_num(v, n, &x, unit) < 0)
    return -1;
  if (strcmp(unit, "ms") == 0)
    mul = 1;
  else if (strcmp(unit, "m") == 0)
    mul = 60000;
  else if (*unit && strcmp(unit, "s") != 0)
    return -1;
  if (x > UINT_MAX / mul)
    return -1;
  *out = (unsigned)(x * mul);
  return 0;
}

/* "65536", "64k", "16m" (binary units). */
static int parse_size(const char *v, size_t n, size_t *out) {
  unsigned long long x;
  char unit[4];
  if (parse_num(v, n, &x, unit) < 0)
    return -1;
  const char *end = unit;
  unsigned shift = 0;
  switch (*end) {
  case '\0':
    break;
  case 'k':
    shift = 10;
    break;
  case 'm':
    shift = 20;
    break;
  default:
    return -1;
  }
  if (*end && end[1])
    return -1;
  if (x > (SIZE_MAX >> shift) || (x << shift) > (1ull << 32))
    return -1;
  *out = (size_t)(x << shift);
  return 0;
}

int http_limits_parse(struct http_limits *l, const char *spec, sh_err *err) {
  struct http_limits n = *l;
  const char *p = spec ? spec : "";
  while (*p) {
    size_t len = strcspn(p, ",");
    const char *eq = memchr(p, '=', len);
    if (!eq)
      return sh_error(err, 400, "http limits: \"%.*s\": want key=value",
                      (int)len, p);
    size_t klen = (size_t)(eq - p), vlen = len - klen - 1;
    const char *v = eq + 1;
    int r = -1;
    size_t x;
    if (klen == 5 && memcmp(p, "conns", 5) == 0) {
      if ((r = parse_size(v, vlen, &x)) == 0 && x <= UINT_MAX)
        n.max_conns = (unsigned)x;
      else
        r = -1;
    } else if (klen == 6 && memcmp(p, "header", 6) == 0) {
      r = parse_ms(v, vlen, &n.header_timeout_ms);
    } else if (klen == 4 && memcmp(p, "idle", 4) == 0) {
      r = parse_ms(v, vlen, &n.idle_timeout_ms);
    } else if (klen == 4 && memcmp(p, "body", 4) == 0) {
      r = parse_size(v, vlen, &n.max_body);
    } else if (klen == 6 && memcmp(p, "unauth", 6) == 0) {
      r = parse_size(v, vlen, &n.max_body_unauth);
    }
    if (r < 0)
      return sh_error(err, 400, "http limits: invalid \"%.*s\"", (int)len, p);
    p += len;
    if (*p == ',')
      p++;
  }
  *l = n;
  return 0;
}

void http_limits_env(struct http_limits *l) {
  const char *spec = getenv("SHOAL_HTTP_LIMITS");
  sh_err err = {0};
  if (spec)
    (void)http_limits_parse(l, spec, &err);
}

/* Arms (ms > 0) or clears the connection's deadline. */
static void conn_deadline(struct http_conn *c, unsigned ms) {
  c->deadline = ms && c->srv ? uv_now(c->srv->loop) + ms : 0;
}

/* Streamed bodies only where the peer is authenticated. */
static bool may_stream(const struct http_conn *c) {
  return c->srv && c->srv->stream_fn &&
         (c->is_unix || (c->tls_ctx && c->peer_verified));
}

static size_t body_limit(const struct http_conn *c) {
  const struct http_limits *l = &c->srv->lim;
  /* Before authentication (no verified client certificate on a TLS
   * listener) only small bodies: a join is a token and a CSR. */
  if (c->tls_ctx && !c->peer_verified && l->max_body_unauth < l->max_body)
    return l->max_body_unauth;
  return l->max_body;
}

/* ---- small helpers ---- */

static const struct {
  int code;
  const char *text;
} status_texts[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {206, "Partial Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Request Entity Too Large"},
    {415, "Unsupported Media Type"},
    {416, "Requested Range Not Satisfiable"},
    {422, "Unprocessable Entity"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
};

const char *http_status_text(int status) {
  for (size_t i = 0; i < ARRAY_SIZE(status_texts); i++)
    if (status_texts[i].code == status)
      return status_texts[i].text;
  return "Unknown";
}

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F')
    return ch - 'A' + 10;
  return -1;
}

/* Percent-decodes s[0..n); malformed escapes are kept as they are. */
static char *pct_decode(const char *s, size_t n, bool plus_is_space,
                        size_t *out_len) {
  char *out = xmalloc(n + 1);
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    int hi, lo;
    if (s[i] == '%' && i + 2 < n &&
        (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
        (lo = hexval((unsigned char)s[i + 2])) >= 0) {
      out[o++] = (char)(hi * 16 + lo);
      i += 2;
    } else if (plus_is_space && s[i] == '+') {
      out[o++] = ' ';
    } else {
      out[o++] = s[i];
    }
  }
  out[o] = '\0';
  if (out_len)
    *out_len = o;
  return out;
}

static bool srv_closing(const struct http_conn *c) {
  return !c->srv || c->srv->closing;
}

static void req_free(struct req_priv *rp) {
  if (!rp)
    return;
  for (int i = 0; i < rp->pub.nheaders; i++) {
    free(rp->pub.headers[i].name);
    free(rp->pub.headers[i].value);
  }
  buf_free(&rp->url);
  buf_free(&rp->body);
  free(rp->pub.path);
  free(rp->pub.query);
  free(rp);
}

static struct req_priv *priv(struct http_req *req) {
  return container_of(req, struct req_priv, pub);
}

/* ---- output ---- */

static void on_write(uv_write_t *w, int status) {
  struct wreq *wr = container_of(w, struct wreq, w);
  struct http_conn *c = wr->conn;
  free(wr->data);
  free(wr);
  if (status < 0 && !c->closing) {
    conn_close(c, false);
    return;
  }
  struct req_priv *rp = c->active;
  if (status == 0 && !c->closing && rp && rp->drain_fn && !c->api_depth &&
      uv_stream_get_write_queue_size(&c->h.stream) <= rp->drain_low)
    rp->drain_fn(&rp->pub, rp->drain_ud);
}

/* Queues data (taking ownership of the malloc'd buffer) on the socket. */
static void raw_write_owned(struct http_conn *c, char *data, size_t len) {
  if (len == 0 || c->handle_closed || uv_is_closing(&c->h.handle)) {
    free(data);
    return;
  }
  struct wreq *wr = xmalloc(sizeof *wr);
  wr->conn = c;
  wr->data = data;
  uv_buf_t b = uv_buf_init(data, (unsigned)len);
  if (uv_write(&wr->w, &c->h.stream, &b, 1, on_write) < 0) {
    free(data);
    free(wr);
    if (!c->closing)
      conn_close(c, false);
  }
}

/* Moves whatever OpenSSL produced for the network onto the socket. */
static void tls_flush(struct http_conn *c) {
  char *data;
  size_t len;
  while ((data = tlsconn_take_output(c->ssl, &len)) != NULL)
    raw_write_owned(c, data, len);
}

/* Sends b's bytes on the connection (encrypting on TLS) and empties b. */
static void conn_send(struct http_conn *c, sh_buf *b) {
  if (c->closing || b->len == 0) {
    buf_free(b);
    return;
  }
  if (c->ssl) {
    size_t written = 0;
    ERR_clear_error();
    int r = SSL_write_ex(c->ssl, b->data, b->len, &written);
    buf_free(b);
    tls_flush(c);
    if (r != 1) {
      ERR_clear_error();
      conn_close(c, false);
    }
    return;
  }
  size_t len = b->len;
  raw_write_owned(c, STEAL_POINTER(&b->data), len);
  buf_free(b);
}

static bool status_has_body(int status) {
  return !(status < 200 || status == 204 || status == 304);
}

/* Status line and headers. content_length < 0: none (streams). */
static void build_head(sh_buf *out, int status, const char *content_type,
                       long long content_length, bool chunked, bool keep_alive,
                       const char *const *headers) {
  char date[64];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  buf_printf(out, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status,
             http_status_text(status), date);
  if (content_type && status_has_body(status))
    buf_printf(out, "Content-Type: %s\r\n", content_type);
  if (content_length >= 0 && status_has_body(status))
    buf_printf(out, "Content-Length: %lld\r\n", content_length);
  if (chunked)
    buf_printf(out, "Transfer-Encoding: chunked\r\n");
  if (!keep_alive)
    buf_printf(out, "Connection: close\r\n");
  for (int i = 0; headers && headers[i]; i++) {
    /* A header with CR/LF would split the response: drop it. */
    if (strpbrk(headers[i], "\r\n"))
      continue;
    buf_printf(out, "%s\r\n", headers[i]);
  }
  buf_append(out, "\r\n", 2);
}

static char *error_json(const char *msg) {
  json_t *s = json_string(msg ? msg : "");
  if (!s) {
    /* Not UTF-8: replace the offending bytes rather than lose the text. */
    cleanup_free char *clean = xstrdup(msg);
    for (char *p = clean; *p; p++)
      if ((unsigned char)*p >= 0x80)
        *p = '?';
    s = json_string(clean);
  }
  json_t *o = json_object();
  json_object_set_new(o, "message", s ? s : json_string(""));
  char *text = jx_dumps(o, JSON_COMPACT, NULL);
  json_decref(o);
  char *out = xasprintf("%s\n", text ? text : "{}");
  free(text);
  return out;
}

/* Answers a protocol error outside any request and closes afterwards. */
static void conn_fail(struct http_conn *c, int status, const char *msg) {
  if (c->closing)
    return;
  cleanup_free char *body = error_json(msg);
  sh_buf out = {0};
  build_head(&out, status, "application/json", (long long)strlen(body), false,
             false, NULL);
  buf_append(&out, body, strlen(body));
  conn_send(c, &out);
  conn_close(c, true);
}

/* ---- connection lifetime ---- */

static void maybe_free_server(struct http_server *srv) {
  if (srv->closing && srv->open_handles == 0)
    free(srv);
}

static void conn_free_state(struct http_conn *c) {
  if (c->ssl) {
    SSL_free(c->ssl); /* frees both BIOs */
    c->ssl = NULL;
  }
  SSL_CTX_free(c->tls_ctx);
  c->tls_ctx = NULL;
  req_free(c->cur);
  c->cur = NULL;
  req_free(c->ready);
  c->ready = NULL;
  buf_free(&c->hfield);
  buf_free(&c->hvalue);
  buf_free(&c->in);
}

/* The active request's streamed body will not finish: on_end(false). */
static bool body_owed(const struct http_conn *c) {
  return c->active && c->body_rp == c->active && c->body_started &&
         !c->body_done;
}

static void body_abort(struct http_conn *c) {
  if (!body_owed(c))
    return;
  struct req_priv *rp = c->body_rp;
  c->body_done = true;
  if (rp->on_end)
    rp->on_end(&rp->pub, false, rp->body_ud);
}

static void on_conn_closed(uv_handle_t *h) {
  struct http_conn *c = h->data;
  c->handle_closed = true;
  conn_free_state(c);
  struct http_server *srv = c->srv;
  if (srv && c->waiting) {
    TAILQ_REMOVE(&srv->waiting, c, wait_link);
    c->waiting = false;
  }
  if (c->l) {
    c->l->nconns--;
    c->l = NULL;
  }
  if (srv) {
    if (c->prev)
      c->prev->next = c->next;
    else
      srv->conns = c->next;
    if (c->next)
      c->next->prev = c->prev;
    c->srv = NULL;
    srv->open_handles--;
    maybe_free_server(srv);
  }
  if (!c->active) {
    free(c);
    return;
  }
  if (c->notify_body_end) {
    c->notify_body_end = false;
    /* on_end(false) may answer or release the request, which frees c */
    bool freed = false;
    c->freed = &freed;
    body_abort(c);
    if (freed)
      return;
    c->freed = NULL;
    if (!c->active)
      return;
  }
  if (c->notify_on_closed && c->active->pub.on_close) {
    c->notify_on_closed = false;
    /* may release the request, which frees c */
    c->active->pub.on_close(&c->active->pub, c->active->pub.on_close_ud);
  }
}

static void on_shutdown(uv_shutdown_t *sr, int status) {
  (void)status;
  struct http_conn *c = sr->data;
  if (!uv_is_closing(&c->h.handle))
    uv_close(&c->h.handle, on_conn_closed);
}

/* Closes the connection; graceful lets queued output drain first. A request
 * the handler still owns is told through its on_close. */
static void conn_close(struct http_conn *c, bool graceful) {
  if (c->closing)
    return;
  if (graceful && c->ssl && c->handshake_done) {
    ERR_clear_error();
    SSL_shutdown(c->ssl); /* queues close_notify */
    ERR_clear_error();
    tls_flush(c);
    if (c->closing)
      return;
  }
  c->closing = true;
  if (c->bridge)
    bridge_close(STEAL_POINTER(&c->bridge));
  if (c->reading) {
    uv_read_stop(&c->h.stream);
    c->reading = false;
  }
  /* While the handler is inside one of our calls on this request, on_close
   * would pull the request from under it: tell it from the close callback
   * instead (a later loop turn). */
  if (c->active && c->api_depth) {
    c->notify_on_closed = true;
    c->notify_body_end = body_owed(c);
  } else if (c->active) {
    struct req_priv *rp = c->active;
    body_abort(c);
    /* The handler may have released the request in on_end. */
    if (c->active == rp && rp->pub.on_close)
      rp->pub.on_close(&rp->pub, rp->pub.on_close_ud);
  }
  if (uv_is_closing(&c->h.handle))
    return;
  if (graceful) {
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, &c->h.stream, on_shutdown) == 0)
      return;
  }
  uv_close(&c->h.handle, on_conn_closed);
}

/* Ends the handler's ownership of the connection's current request. */
static void req_finish(struct req_priv *rp, bool answered) {
  struct http_conn *c = rp->pub.conn_;
  bool body_left = false;
  if (c->body_rp == rp) {
    /* Answered before the end of its streamed body: the rest is read
     * and dropped so the connection stays in step. */
    body_left = c->body_msg;
    c->body_discard = body_left;
    c->discarded = 0;
    c->body_rp = NULL;
    c->body_paused = false;
  }
  req_free(rp);
  c->active = NULL;
  if (c->handle_closed) {
    if (c->freed)
      *c->freed = true;
    free(c);
    return;
  }
  if (c->closing)
    return;
  if (!answered || (c->close_after && (!body_left || c->continue_due)) ||
      srv_closing(c)) {
    conn_close(c, true);
    return;
  }
  conn_deadline(c, c->srv->lim.idle_timeout_ms);
  conn_process(c);
}

/* ---- parsing ---- */

static int header_push(struct http_conn *c) {
  struct http_req *r = &c->cur->pub;
  if (r->nheaders >= HTTP_MAX_HEADERS) {
    c->err_status = 431;
    return -1;
  }
  r->headers[r->nheaders].name =
      xstrndup(c->hfield.data ? c->hfield.data : "", c->hfield.len);
  r->headers[r->nheaders].value =
      xstrndup(c->hvalue.data ? c->hvalue.data : "", c->hvalue.len);
  r->nheaders++;
  buf_reset(&c->hfield);
  buf_reset(&c->hvalue);
  c->in_value = false;
  return 0;
}

/* Counts the request head as it arrives, so an oversized one is refused
 * before it is buffered whole. */
static int head_add(struct http_conn *c, size_t len) {
  c->head_bytes += len;
  if (c->head_bytes > MAX_HEADER_BYTES) {
    c->err_status = 431;
    return -1;
  }
  return 0;
}

static int on_message_begin(http_parser *p) {
  struct http_conn *c = p->data;
  req_free(c->cur);
  c->cur = xcalloc(1, sizeof *c->cur);
  c->head_bytes = 0;
  conn_deadline(c, c->srv->lim.header_timeout_ms);
  buf_reset(&c->hfield);
  buf_reset(&c->hvalue);
  c->in_value = false;
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t len) {
  struct http_conn *c = p->data;
  if (head_add(c, len) < 0)
    return -1;
  buf_append(&c->cur->url, at, len);
  return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
  struct http_conn *c = p->data;
  if (head_add(c, len + 4) < 0) /* ": " and CRLF */
    return -1;
  if (c->in_value && header_push(c) < 0)
    return -1;
  buf_append(&c->hfield, at, len);
  return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
  struct http_conn *c = p->data;
  if (head_add(c, len) < 0)
    return -1;
  c->in_value = true;
  buf_append(&c->hvalue, at, len);
  return 0;
}

static int on_headers_complete(http_parser *p) {
  struct http_conn *c = p->data;
  if ((c->in_value || c->hfield.len) && header_push(c) < 0)
    return -1;
  if (p->http_major != 1) {
    c->err_status = 400;
    return -1;
  }
  bool stream = false;
  if (may_stream(c)) {
    /* The predicate sees the head as the handler will. */
    struct http_req *r = &c->cur->pub;
    r->method = http_method_str((enum http_method)p->method);
    cleanup_free char *url =
        xstrndup(c->cur->url.data ? c->cur->url.data : "", c->cur->url.len);
    const char *q = strchr(url, '?');
    r->path = pct_decode(url, q ? (size_t)(q - url) : strlen(url), false, NULL);
    r->query = xstrdup(q ? q + 1 : "");
    stream = c->srv->stream_fn(r, c->srv->stream_ud);
    free(STEAL_POINTER(&r->path));
    free(STEAL_POINTER(&r->query));
  }
  if (!stream && p->content_length != ULLONG_MAX &&
      p->content_length > body_limit(c)) {
    c->err_status = 413;
    return -1;
  }
  /* The body may take its time, but not stall. */
  conn_deadline(c, c->srv->lim.idle_timeout_ms);
  const char *expect = http_req_header(&c->cur->pub, "Expect");
  c->continue_due = false;
  if (expect && strcasecmp(expect, "100-continue") == 0 && p->http_major == 1 &&
      p->http_minor >= 1) {
    if (stream) {
      c->continue_due = true;
    } else {
      sh_buf out = {0};
      buf_printf(&out, "HTTP/1.1 100 Continue\r\n\r\n");
      conn_send(c, &out);
    }
  }
  if (stream)
    return stream_head(c, p);
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  struct http_conn *c = p->data;
  if (c->closing)
    return -1;
  if (c->body_msg) {
    conn_deadline(c, c->srv->lim.idle_timeout_ms);
    if (c->body_discard || !c->body_rp) {
      c->discarded += len;
      if (c->discarded > DISCARD_BYTES) {
        conn_close(c, true);
        return -1;
      }
      return 0;
    }
    struct req_priv *rp = c->body_rp;
    if (rp->on_data)
      rp->on_data(&rp->pub, at, len, rp->body_ud);
    return c->closing ? -1 : 0;
  }
  if (c->cur->body.len + len > body_limit(c)) {
    c->err_status = 413;
    return -1;
  }
  buf_append(&c->cur->body, at, len);
  conn_deadline(c, c->srv->lim.idle_timeout_ms);
  return 0;
}

/* The public part of the request being parsed, from its head. */
static int fill_head(struct http_conn *c, http_parser *p) {
  struct req_priv *rp = c->cur;
  struct http_req *r = &rp->pub;
  if (!rp->url.data)
    buf_append(&rp->url, "", 0);
  if (!rp->body.data)
    buf_append(&rp->body, "", 0);
  r->method = http_method_str((enum http_method)p->method);
  r->url = rp->url.data;
  r->body = rp->body.data;
  r->body_len = rp->body.len;
  const char *q = memchr(rp->url.data, '?', rp->url.len);
  size_t path_len = q ? (size_t)(q - rp->url.data) : rp->url.len;
  size_t decoded_len = 0;
  r->path = pct_decode(rp->url.data, path_len, false, &decoded_len);
  r->query = xstrdup(q ? q + 1 : "");
  if (decoded_len != strlen(r->path)) { /* "%00" in the path */
    c->err_status = 400;
    return -1;
  }
  rp->keep_alive = http_should_keep_alive(p) != 0;
  rp->is_head = p->method == HTTP_HEAD;
  rp->upgrade = p->upgrade != 0;
  rp->http10 = p->http_major == 1 && p->http_minor == 0;
  r->peer_verified = c->peer_verified;
  memcpy(r->peer_cn, c->peer_cn, sizeof r->peer_cn);
  memcpy(r->peer_ou, c->peer_ou, sizeof r->peer_ou);
  memcpy(r->peer_o, c->peer_o, sizeof r->peer_o);
  memcpy(r->peer_addr, c->peer_addr, sizeof r->peer_addr);
  r->conn_ = c;
  return 0;
}

/* Hands a streamed-body request to the handler after its head. */
static int stream_head(struct http_conn *c, http_parser *p) {
  if (fill_head(c, p) < 0)
    return -1;
  struct req_priv *rp = STEAL_POINTER(&c->cur);
  rp->pub.body_stream = true;
  c->ready = c->body_rp = rp;
  c->body_msg = true;
  c->body_started = c->body_paused = c->body_done = false;
  c->body_discard = false;
  buf_free(&c->hfield);
  buf_free(&c->hvalue);
  conn_deadline(c, 0); /* nothing is read until the handler asks */
  http_parser_pause(p, 1);
  return 0;
}

static int on_message_complete(http_parser *p) {
  struct http_conn *c = p->data;
  if (c->body_msg) {
    /* A streamed body's end: the request is the handler's already. */
    c->body_msg = false;
    c->pause_expected = true;
    http_parser_pause(p, 1);
    if (c->body_discard) {
      c->body_discard = false;
      conn_deadline(c, c->srv->lim.idle_timeout_ms);
      if (c->close_after)
        conn_close(c, true);
      return 0;
    }
    struct req_priv *rp = c->body_rp;
    if (!rp)
      return 0;
    c->body_done = true;
    conn_deadline(c, 0);
    if (rp->on_end)
      rp->on_end(&rp->pub, true, rp->body_ud);
    return 0;
  }
  if (fill_head(c, p) < 0)
    return -1;
  c->ready = STEAL_POINTER(&c->cur);
  buf_free(&c->hfield);
  buf_free(&c->hvalue);
  conn_deadline(c, 0); /* the handler's time is its own */
  /* One request at a time: the rest of the input waits for the answer. */
  http_parser_pause(p, 1);
  return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void update_reading(struct http_conn *c);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void on_linger_shutdown(uv_shutdown_t *sr, int status) {
  struct http_conn *c = sr->data;
  if (status < 0 && c->lingering) {
    c->lingering = false;
    conn_close(c, false);
  }
}

/* Go's closeWriteAndWait: the answer goes out, then the write side shuts,
 * then the rest of the request is read and dropped (not decrypted) until
 * the peer closes, `left` more bytes arrived or LINGER_MS passed. */
static void conn_linger(struct http_conn *c, size_t left) {
  if (c->closing || uv_is_closing(&c->h.handle)) {
    conn_close(c, true);
    return;
  }
  if (c->ssl && c->handshake_done) {
    ERR_clear_error();
    SSL_shutdown(c->ssl); /* queues close_notify after the answer */
    ERR_clear_error();
    tls_flush(c);
    if (c->closing)
      return;
  }
  c->lingering = true;
  c->linger_left = left;
  conn_deadline(c, LINGER_MS);
  buf_reset(&c->in);
  c->in_off = 0;
  c->shutdown.data = c;
  if (uv_shutdown(&c->shutdown, &c->h.stream, on_linger_shutdown) < 0) {
    c->lingering = false;
    conn_close(c, false);
    return;
  }
  if (!c->reading && uv_read_start(&c->h.stream, on_alloc, on_read) == 0)
    c->reading = true;
}

static void parse_failed(struct http_conn *c) {
  int status = c->err_status ? c->err_status : 400;
  if (status == 431 && c->head_bytes > MAX_HEADER_BYTES) {
    /* Byte for byte what Go's net/http writes. */
    sh_buf out = {0};
    buf_printf(&out,
               "HTTP/1.1 " HEADERS_TOO_LARGE "\r\nContent-Type: text/plain; "
               "charset=utf-8\r\nConnection: close\r\n\r\n" HEADERS_TOO_LARGE);
    conn_send(c, &out);
    conn_linger(c, MAX_HEADER_BYTES);
    return;
  }
  if (status == 413) {
    /* At once, from Content-Length or the body so far; the rest of the
     * body is dropped unread, never buffered. */
    sh_buf out = {0};
    cleanup_free char *body = error_json("request body too large");
    build_head(&out, 413, "application/json", (long long)strlen(body), false,
               false, NULL);
    buf_append(&out, body, strlen(body));
    conn_send(c, &out);
    req_free(STEAL_POINTER(&c->cur));
    buf_free(&c->in);
    c->in_off = 0;
    conn_linger(c, LINGER_BYTES);
    return;
  }
  const char *msg = "malformed HTTP request";
  if (status == 431)
    msg = "too many request headers";
  conn_fail(c, status, msg);
}

/* Whether the parser may go on while the handler owns a request: only
 * through a streamed body the handler reads (or drops). */
static bool body_flowing(const struct http_conn *c) {
  if (c->body_discard)
    return true;
  return c->body_msg && c->body_rp && c->body_rp == c->active &&
         c->body_started && !c->body_paused;
}

/* Loop time the handlers of one turn may take before the other requests
 * wait for a later turn. libuv reads every ready connection in one turn:
 * right after a flush of assignments to 1,000 nodes, their status reports
 * (34,000 of them in ~1,000 requests) were parsed and merged in one turn
 * of 620 ms, which with the flush held a leader's loop 987 ms, past the
 * election timeout (600 ms): the followers elected another leader
 * mid-ramp. Raft's own traffic is not an HTTP request (and its
 * connections' upgrade requests never wait: conn_never_waits). */
#define HANDLERS_TURN_NS (50 * 1000000ull)

/* Whether this turn's handlers have had their time. A turn is known by
 * uv_now(), which libuv updates once per turn (and after its poll). */
static bool handlers_spent(struct http_server *srv) {
  uint64_t now = uv_now(srv->loop);
  if (now != srv->turn_ms) {
    srv->turn_ms = now;
    srv->turn_t0 = uv_hrtime();
    return false;
  }
  return uv_hrtime() - srv->turn_t0 > HANDLERS_TURN_NS;
}

/* Whose requests never wait: the local Engine API (an operator's) and
 * other managers (raft's connections start as an upgrade request, and
 * followers forward API calls): the floods are the nodes' agents'. At a
 * failover a thousand nodes' sessions and reports queued ahead of them.
 * "swarm-manager": the CA's CA_ROLE_MANAGER (ca/ sits above http/). */
static bool conn_never_waits(const struct http_conn *c) {
  return c->is_unix ||
         (c->peer_verified && strcmp(c->peer_ou, "swarm-manager") == 0);
}

static void on_kick(uv_idle_t *h);

/* c's next request waits for a later turn, behind those already waiting. */
static void conn_wait(struct http_conn *c) {
  struct http_server *srv = c->srv;
  if (!c->waiting) {
    TAILQ_INSERT_TAIL(&srv->waiting, c, wait_link);
    c->waiting = true;
  }
  uv_idle_start(&srv->kick, on_kick);
}

/* Parses buffered input and hands complete requests to the handler, one at
 * a time. Re-entrant calls (the handler answering at once) return early:
 * the outer loop goes on. */
static void conn_process(struct http_conn *c) {
  if (c->in_process || c->upgraded)
    return;
  c->in_process = true;
  while (!c->closing && !c->upgraded && !srv_closing(c)) {
    if (c->ready) {
      if (c->active)
        break;
      if (handlers_spent(c->srv) && !conn_never_waits(c)) {
        conn_wait(c);
        break;
      }
      struct req_priv *rp = STEAL_POINTER(&c->ready);
      if (rp->upgrade) /* not supported: answer, then close */
        rp->keep_alive = false;
      c->active = rp;
      struct http_server *srv = c->srv;
      srv->handler(&rp->pub, srv->ud);
      continue;
    }
    if (c->active && !body_flowing(c))
      break; /* the next request waits for the answer */
    size_t avail = c->in.len - c->in_off;
    if (avail == 0)
      break;
    c->in_parse = true;
    size_t n = http_parser_execute(&c->parser, &parser_settings,
                                   c->in.data + c->in_off, avail);
    c->in_parse = false;
    if (n > avail)
      n = avail;
    c->in_off += n;
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e == HPE_PAUSED) {
      http_parser_pause(&c->parser, 0);
      bool expected = c->pause_expected;
      c->pause_expected = false;
      if (expected && !c->ready)
        continue;
      if (!c->ready) {
        parse_failed(c);
        break;
      }
      continue;
    }
    if (e != HPE_OK) {
      parse_failed(c);
      break;
    }
    if (n < avail && !c->ready) { /* no progress without an error */
      parse_failed(c);
      break;
    }
  }
  if (!c->closing && !c->lingering) {
    if (c->in_off == c->in.len) {
      buf_free(&c->in); /* an idle connection holds no input buffer */
      c->in_off = 0;
    } else if (c->in_off > 0) {
      memmove(c->in.data, c->in.data + c->in_off, c->in.len - c->in_off);
      c->in.len -= c->in_off;
      c->in.data[c->in.len] = '\0';
      c->in_off = 0;
    }
  }
  c->in_process = false;
  update_reading(c);
}

/* ---- input ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  struct http_conn *c = h->data;
  *buf = uv_buf_init(c->srv->rbuf, sizeof c->srv->rbuf);
}

static void tls_capture_peer(struct http_conn *c) {
  X509 *cert = SSL_get1_peer_certificate(c->ssl);
  if (cert && SSL_get_verify_result(c->ssl) == X509_V_OK) {
    X509_NAME *name = X509_get_subject_name(cert);
    bool ok = tlsconn_subject_field(name, NID_commonName, c->peer_cn,
                                    sizeof c->peer_cn) &&
              tlsconn_subject_field(name, NID_organizationalUnitName,
                                    c->peer_ou, sizeof c->peer_ou) &&
              tlsconn_subject_field(name, NID_organizationName, c->peer_o,
                                    sizeof c->peer_o);
    c->peer_verified = ok;
    if (!ok)
      c->peer_cn[0] = c->peer_ou[0] = c->peer_o[0] = '\0';
  }
  X509_free(cert);
}

/* The connection's SSL, made at its first byte: an idle or refused
 * connection costs no TLS state. */
static int tls_start(struct http_conn *c) {
  c->ssl = tlsconn_ssl_new(c->tls_ctx, false);
  if (!c->ssl) {
    conn_close(c, false);
    return -1;
  }
  /* OpenSSL's own record buffers (about 34 KiB) go back while idle. */
  SSL_set_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
  return 0;
}

/* Feeds ciphertext to OpenSSL and appends the plaintext to c->in.
 * Returns 0, 1 when the peer sent close_notify, -1 when the connection was
 * closed on a TLS error. */
static int tls_feed(struct http_conn *c, const char *data, size_t len) {
  if (BIO_write(SSL_get_rbio(c->ssl), data, (int)len) != (int)len) {
    conn_close(c, false);
    return -1;
  }
  ERR_clear_error();
  if (!c->handshake_done) {
    int r = SSL_do_handshake(c->ssl);
    if (r != 1) {
      int e = SSL_get_error(c->ssl, r);
      ERR_clear_error();
      tls_flush(c); /* the alert, if any */
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
      conn_close(c, true);
      return -1;
    }
    c->handshake_done = true;
    tls_capture_peer(c);
  }
  int ret = 0;
  for (;;) {
    char tmp[16384];
    size_t got = 0;
    if (SSL_read_ex(c->ssl, tmp, sizeof tmp, &got) == 1) {
      buf_append(&c->in, tmp, got);
      continue;
    }
    int e = SSL_get_error(c->ssl, 0);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
      break;
    ERR_clear_error();
    tls_flush(c);
    if (e == SSL_ERROR_ZERO_RETURN) {
      ret = 1;
      break;
    }
    conn_close(c, false);
    return -1;
  }
  ERR_clear_error();
  tls_flush(c); /* session tickets, key updates */
  if (!c->closing)
    tlsconn_trim(c->ssl);
  return c->closing ? -1 : ret;
}

/* An upgraded stream's peer is done sending but may still read (a
 * hijacked exec's stdin ended): the bridge's reader sees EOF, output goes
 * on until the bridge's owner closes. */
static void upgraded_eof(struct http_conn *c) {
  c->peer_eof = true;
  if (c->reading) {
    uv_read_stop(&c->h.stream);
    c->reading = false;
  }
  bridge_eof(c->bridge);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  struct http_conn *c = s->data;
  if (n == 0 || c->closing)
    return;
  if (c->lingering) {
    if (n < 0 || (size_t)n >= c->linger_left) {
      c->lingering = false;
      conn_close(c, false);
    } else {
      c->linger_left -= (size_t)n;
    }
    return;
  }
  if (n == UV_EOF && c->upgraded && c->bridge) {
    upgraded_eof(c);
    return;
  }
  if (n < 0) {
    /* EOF means the peer is gone, as Go's server treats it: a pending
     * request learns through on_close. Queued output still drains. */
    conn_close(c, n == UV_EOF);
    return;
  }
  bool eof = false;
  if (c->tls_ctx && !c->ssl && tls_start(c) < 0)
    return;
  if (c->ssl) {
    int r = tls_feed(c, buf->base, (size_t)n);
    if (r < 0)
      return;
    eof = r == 1;
  } else {
    buf_append(&c->in, buf->base, (size_t)n);
  }
  if (c->upgraded) {
    bridge_push(c->bridge, c->in.data, c->in.len);
    buf_reset(&c->in);
    c->in_off = 0;
  } else {
    conn_process(c);
  }
  if (eof && c->upgraded && c->bridge)
    upgraded_eof(c);
  else if (eof)
    conn_close(c, true);
}

static void update_reading(struct http_conn *c) {
  if (c->closing || c->handle_closed || c->peer_eof)
    return;
  bool want = c->in.len - c->in_off < MAX_PENDING_INPUT;
  if (want && !c->reading) {
    if (uv_read_start(&c->h.stream, on_alloc, on_read) == 0)
      c->reading = true;
  } else if (!want && c->reading) {
    uv_read_stop(&c->h.stream);
    c->reading = false;
  }
}

static void refused_closed(uv_handle_t *h) {
  free(h->data);
}

/* Over the cap: accepted only to be closed at once (a reset on TCP), so the
 * backlog does not fill and the client is not left waiting. */
static void conn_refuse(struct http_listener *l, uv_stream_t *server) {
  union stream_u *u = xmalloc(sizeof *u);
  int r = l->is_tcp ? uv_tcp_init(l->srv->loop, &u->tcp)
                    : uv_pipe_init(l->srv->loop, &u->pipe, 0);
  if (r < 0) {
    free(u);
    return;
  }
  u->handle.data = u;
  if (uv_accept(server, &u->stream) == 0 && l->is_tcp &&
      uv_tcp_close_reset(&u->tcp, refused_closed) == 0)
    return;
  uv_close(&u->handle, refused_closed);
}

/* TLS connections taken per loop turn and listener. libuv accepts every
 * pending connection in one callback; a thousand nodes reconnecting to a
 * new leader at once would put a thousand handshakes (about a ms of CPU
 * each) in one turn, past raft's election timeout. A connection over the
 * pace stays in libuv (which stops watching the socket until it is
 * taken) and is taken a turn later. */
#define TLS_ACCEPTS_PER_TURN 16
#define TCP_BACKLOG 65535

static void on_connection(uv_stream_t *server, int status);

static void on_pace(uv_timer_t *t) {
  struct http_server *srv = t->data;
  for (struct http_listener *l = srv->listeners; l; l = l->next) {
    if (l->paced) {
      l->paced = false;
      on_connection(&l->h.stream, 0);
    }
  }
}

static void on_connection(uv_stream_t *server, int status) {
  struct http_listener *l = server->data;
  struct http_server *srv = l->srv;
  if (status < 0 || srv->closing)
    return;
  if (l->tls) {
    uint64_t now = uv_now(srv->loop);
    if (now != l->accept_ms) {
      l->accept_ms = now;
      l->accepted = 0;
    }
    if (l->accepted >= TLS_ACCEPTS_PER_TURN) {
      l->paced = true;
      srv->paced++;
      if (!uv_is_active((uv_handle_t *)&srv->pace))
        uv_timer_start(&srv->pace, on_pace, 1, 0);
      return;
    }
    l->accepted++;
  }
  if (srv->lim.max_conns && l->nconns >= srv->lim.max_conns) {
    conn_refuse(l, server);
    return;
  }
  struct http_conn *c = xcalloc(1, sizeof *c);
  int r = l->is_tcp ? uv_tcp_init(srv->loop, &c->h.tcp)
                    : uv_pipe_init(srv->loop, &c->h.pipe, 0);
  if (r < 0) {
    free(c);
    return;
  }
  c->h.handle.data = c;
  c->srv = srv;
  c->l = l;
  l->nconns++;
  c->next = srv->conns;
  if (srv->conns)
    srv->conns->prev = c;
  srv->conns = c;
  srv->open_handles++;
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  if (uv_accept(server, &c->h.stream) < 0) {
    conn_close(c, false);
    return;
  }
  c->is_unix = !l->is_tcp;
  if (l->is_tcp) {
    uv_tcp_nodelay(&c->h.tcp, 1);
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&ss, &sl) == 0) {
      if (ss.ss_family == AF_INET)
        uv_ip4_name((struct sockaddr_in *)&ss, c->peer_addr,
                    sizeof c->peer_addr);
      else if (ss.ss_family == AF_INET6)
        uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer_addr,
                    sizeof c->peer_addr);
    }
  }
  if (l->tls) {
    SSL_CTX_up_ref(l->tls);
    c->tls_ctx = l->tls;
  }
  /* A new connection has the header timeout for its handshake and first
   * request head. */
  conn_deadline(c, srv->lim.header_timeout_ms);
  update_reading(c);
}

/* ---- server ---- */

struct http_server *http_server_new(uv_loop_t *loop, http_handler_fn handler,
                                    void *ud) {
  /* http_parser's own limit (80 KiB by default, a 400) must not come
   * first: MAX_HEADER_BYTES is ours. Process-wide, set before any parse. */
  http_parser_set_max_header_size(2 * MAX_HEADER_BYTES);
  struct http_server *srv = xcalloc(1, sizeof *srv);
  srv->loop = loop;
  srv->handler = handler;
  srv->ud = ud;
  srv->port = -1;
  http_limits_default(&srv->lim);
  uv_timer_init(loop, &srv->sweep);
  srv->sweep.data = srv;
  srv->open_handles++;
  uv_idle_init(loop, &srv->kick);
  srv->kick.data = srv;
  TAILQ_INIT(&srv->waiting);
  srv->open_handles++;
  uv_timer_init(loop, &srv->pace);
  srv->pace.data = srv;
  srv->open_handles++;
  http_server_set_limits(srv, &srv->lim);
  return srv;
}

/* Closes connections past their deadline: a slow or stalled request head,
 * a stalled body, a keep-alive connection idle too long, a linger over. */
static void on_sweep(uv_timer_t *t) {
  struct http_server *srv = t->data;
  uint64_t now = uv_now(srv->loop);
  /* The list only shrinks in close callbacks, so walking it is safe. */
  for (struct http_conn *c = srv->conns; c; c = c->next) {
    if (c->closing || !c->deadline || now < c->deadline || c->upgraded)
      continue;
    c->lingering = false;
    conn_close(c, false);
  }
}

void http_server_set_limits(struct http_server *srv,
                            const struct http_limits *l) {
  srv->lim = *l;
  /* A quarter of the shortest timeout, at most a second. */
  unsigned iv = 1000;
  if (l->header_timeout_ms && l->header_timeout_ms / 4 < iv)
    iv = l->header_timeout_ms / 4;
  if (l->idle_timeout_ms && l->idle_timeout_ms / 4 < iv)
    iv = l->idle_timeout_ms / 4;
  if (iv < 50)
    iv = 50;
  uv_timer_start(&srv->sweep, on_sweep, iv, iv);
  uv_unref((uv_handle_t *)&srv->sweep);
}

static void on_sweep_closed(uv_handle_t *h) {
  struct http_server *srv = h->data;
  srv->open_handles--;
  maybe_free_server(srv);
}

static void on_listener_closed(uv_handle_t *h) {
  struct http_listener *l = h->data;
  struct http_server *srv = l->srv;
  SSL_CTX_free(l->tls);
  free(l);
  srv->open_handles--;
  maybe_free_server(srv);
}

static struct http_listener *listener_add(struct http_server *srv,
                                          bool is_tcp) {
  struct http_listener *l = xcalloc(1, sizeof *l);
  l->srv = srv;
  l->is_tcp = is_tcp;
  if (is_tcp)
    uv_tcp_init(srv->loop, &l->h.tcp);
  else
    uv_pipe_init(srv->loop, &l->h.pipe, 0);
  l->h.handle.data = l;
  l->next = srv->listeners;
  srv->listeners = l;
  srv->open_handles++;
  return l;
}

static void listener_drop(struct http_server *srv, struct http_listener *l) {
  for (struct http_conn *c = srv->conns; c; c = c->next)
    if (c->l == l)
      c->l = NULL;
  struct http_listener **pp = &srv->listeners;
  while (*pp != l)
    pp = &(*pp)->next;
  *pp = l->next;
  uv_close(&l->h.handle, on_listener_closed);
}

int http_server_listen_unix(struct http_server *srv, const char *path, int gid,
                            sh_err *err) {
  struct stat st;
  if (lstat(path, &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return sh_error(err, 500, "listen %s: exists and is not a socket", path);
    if (unlink(path) < 0)
      return sh_errno(err, errno, "remove stale socket %s", path);
  }
  struct http_listener *l = listener_add(srv, false);
  int r = uv_pipe_bind(&l->h.pipe, path);
  if (r == 0 && chmod(path, 0660) < 0)
    r = -errno;
  if (r == 0 && gid >= 0 && chown(path, (uid_t)-1, (gid_t)gid) < 0)
    r = -errno;
  if (r == 0)
    r = uv_listen(&l->h.stream, 128, on_connection);
  if (r < 0) {
    listener_drop(srv, l);
    return sh_error(err, 500, "listen %s: %s", path, uv_strerror(r));
  }
  return 0;
}

int http_server_listen_tcp(struct http_server *srv, const char *host, int port,
                           SSL_CTX *tls, sh_err *err) {
  struct sockaddr_storage ss;
  if (!host || !*host)
    host = "0.0.0.0";
  int r;
  if (strchr(host, ':'))
    r = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss);
  else
    r = uv_ip4_addr(host, port, (struct sockaddr_in *)&ss);
  if (r < 0)
    return sh_error(err, 400, "listen: invalid address %s", host);
  struct http_listener *l = listener_add(srv, true);
  r = uv_tcp_bind(&l->h.tcp, (struct sockaddr *)&ss, 0);
  /* The kernel's queue holds what the TLS pace leaves for later turns;
   * at 128 a thousand nodes' connects overflowed it and waited out SYN
   * retries (seconds). As Go's listeners: the most the kernel allows
   * (it clamps to net.core.somaxconn). */
  if (r == 0)
    r = uv_listen(&l->h.stream, TCP_BACKLOG, on_connection);
  if (r < 0) {
    listener_drop(srv, l);
    return sh_error(err, 500, "listen %s:%d: %s", host, port, uv_strerror(r));
  }
  struct sockaddr_storage bound;
  int blen = sizeof bound;
  if (uv_tcp_getsockname(&l->h.tcp, (struct sockaddr *)&bound, &blen) == 0)
    srv->port = ntohs(bound.ss_family == AF_INET6
                          ? ((struct sockaddr_in6 *)&bound)->sin6_port
                          : ((struct sockaddr_in *)&bound)->sin_port);
  if (tls) {
    SSL_CTX_up_ref(tls);
    l->tls = tls;
  }
  return 0;
}

unsigned long http_server_tls_paced(const struct http_server *srv) {
  return srv->paced;
}

int http_server_port(struct http_server *srv) {
  return srv->port;
}

void http_server_set_tls(struct http_server *srv, SSL_CTX *tls) {
  if (!tls)
    return;
  for (struct http_listener *l = srv->listeners; l; l = l->next) {
    if (!l->tls)
      continue;
    SSL_CTX_up_ref(tls);
    SSL_CTX_free(l->tls);
    l->tls = tls;
  }
}

void http_server_close(struct http_server *srv) {
  if (!srv || srv->closing)
    return;
  srv->closing = true;
  uv_close((uv_handle_t *)&srv->sweep, on_sweep_closed);
  uv_close((uv_handle_t *)&srv->kick, on_sweep_closed);
  uv_close((uv_handle_t *)&srv->pace, on_sweep_closed);
  while (srv->listeners)
    listener_drop(srv, srv->listeners);
  /* The list only shrinks in close callbacks, so walking it is safe. */
  for (struct http_conn *c = srv->conns; c; c = c->next)
    conn_close(c, false);
  maybe_free_server(srv);
}

/* ---- request accessors ---- */

const char *http_req_header(const struct http_req *req, const char *name) {
  for (int i = 0; i < req->nheaders; i++)
    if (strcasecmp(req->headers[i].name, name) == 0)
      return req->headers[i].value;
  return NULL;
}

char *http_req_query(const struct http_req *req, const char *name) {
  const char *p = req->query;
  size_t nlen = strlen(name);
  while (p && *p) {
    const char *end = strchr(p, '&');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    const char *eq = memchr(p, '=', len);
    size_t klen = eq ? (size_t)(eq - p) : len;
    cleanup_free char *key = pct_decode(p, klen, true, NULL);
    if (strlen(key) == nlen && memcmp(key, name, nlen) == 0) {
      if (!eq)
        return xstrdup("");
      return pct_decode(eq + 1, len - klen - 1, true, NULL);
    }
    p = end ? end + 1 : NULL;
  }
  return NULL;
}

/* ---- responses ---- */

/* The request's body was held back for a 100 Continue never sent. */
static bool unasked_body(const struct http_conn *c, const struct req_priv *rp) {
  return c->body_rp == rp && c->continue_due;
}

void http_respond(struct http_req *req, int status, const char *content_type,
                  const char *body, size_t len, const char *const *headers) {
  struct req_priv *rp = priv(req);
  struct http_conn *c = req->conn_;
  if (!c->closing && !rp->streaming) {
    bool keep = rp->keep_alive && !srv_closing(c) && !unasked_body(c, rp);
    sh_buf out = {0};
    build_head(&out, status, content_type, (long long)len, false, keep,
               headers);
    if (!rp->is_head && status_has_body(status) && len)
      buf_append(&out, body, len);
    c->api_depth++;
    conn_send(c, &out);
    c->api_depth--;
    if (!keep)
      c->close_after = true;
  } else if (rp->streaming) {
    /* Misuse after http_stream_begin: the framing is lost. */
    req_finish(rp, false);
    return;
  }
  req_finish(rp, true);
}

void http_respond_json(struct http_req *req, int status, const char *json) {
  http_respond(req, status, "application/json", json, json ? strlen(json) : 0,
               NULL);
}

void http_respond_error(struct http_req *req, int status, const char *msg) {
  cleanup_free char *body = error_json(msg);
  http_respond_json(req, status, body);
}

void http_stream_begin(struct http_req *req, int status,
                       const char *content_type, const char *const *headers) {
  struct req_priv *rp = priv(req);
  struct http_conn *c = req->conn_;
  if (rp->streaming)
    return;
  rp->streaming = true;
  /* HTTP/1.0 has no chunked encoding: the body ends with the connection. */
  rp->chunked = !rp->http10 && !rp->is_head && status_has_body(status);
  if (rp->http10)
    rp->keep_alive = false;
  if (c->closing)
    return;
  bool keep = rp->keep_alive && !srv_closing(c) && !unasked_body(c, rp);
  sh_buf out = {0};
  build_head(&out, status, content_type, -1, !rp->http10, keep, headers);
  c->api_depth++;
  conn_send(c, &out);
  c->api_depth--;
  if (!keep)
    c->close_after = true;
}

int http_stream_write(struct http_req *req, const void *data, size_t len) {
  struct req_priv *rp = priv(req);
  struct http_conn *c = req->conn_;
  if (c->closing)
    return -1;
  if (!rp->streaming)
    http_stream_begin(req, 200, NULL, NULL);
  if (len == 0 || rp->is_head)
    return 0;
  sh_buf out = {0};
  if (rp->chunked)
    buf_printf(&out, "%zx\r\n", len);
  buf_append(&out, data, len);
  if (rp->chunked)
    buf_append(&out, "\r\n", 2);
  c->api_depth++;
  conn_send(c, &out);
  c->api_depth--;
  return c->closing ? -1 : 0;
}

void http_stream_end(struct http_req *req) {
  struct req_priv *rp = priv(req);
  struct http_conn *c = req->conn_;
  if (!rp->streaming)
    http_stream_begin(req, 200, NULL, NULL);
  if (!c->closing && rp->chunked) {
    sh_buf out = {0};
    buf_append(&out, "0\r\n\r\n", 5);
    c->api_depth++;
    conn_send(c, &out);
    c->api_depth--;
  }
  if (!rp->chunked && !rp->is_head)
    c->close_after = true; /* unframed body: only the close ends it */
  req_finish(rp, true);
}

void http_req_release(struct http_req *req) {
  req_finish(priv(req), false);
}

size_t http_req_queued(const struct http_req *req) {
  const struct http_conn *c = req->conn_;
  if (c->closing || c->handle_closed)
    return 0;
  return uv_stream_get_write_queue_size(&c->h.stream);
}

void http_req_on_drain(struct http_req *req, size_t low,
                       void (*fn)(struct http_req *req, void *ud), void *ud) {
  struct req_priv *rp = priv(req);
  rp->drain_fn = fn;
  rp->drain_ud = ud;
  rp->drain_low = low;
}

/* ---- upgrade ---- */

static void conn_bridge_to_net(void *ud, const char *data, size_t len) {
  struct http_conn *c = ud;
  sh_buf out = {0};
  buf_append(&out, data, len);
  conn_send(c, &out);
}

static void conn_bridge_closed(void *ud) {
  struct http_conn *c = ud;
  c->bridge = NULL;
  conn_close(c, true);
}

static const struct bridge_ops conn_bridge_ops = {conn_bridge_to_net,
                                                  conn_bridge_closed};

int http_req_upgrade(struct http_req *req, const char *protocol, int *fd_out,
                     sh_err *err) {
  if (!protocol || strpbrk(protocol, "\r\n")) {
    req_finish(priv(req), false);
    return sh_error(err, 400, "upgrade: invalid use");
  }
  cleanup_free char *up = xasprintf("Upgrade: %s", protocol);
  const char *headers[] = {up, "Connection: Upgrade", NULL};
  return http_req_hijack(req, 101, headers, fd_out, err);
}

int http_req_hijack(struct http_req *req, int status,
                    const char *const *headers, int *fd_out, sh_err *err) {
  struct req_priv *rp = priv(req);
  struct http_conn *c = req->conn_;
  if (rp->streaming || (status != 101 && status != 200)) {
    req_finish(rp, false);
    return sh_error(err, 400, "upgrade: invalid use");
  }
  if (c->closing || srv_closing(c)) {
    req_finish(rp, false);
    return sh_error(err, 503, "upgrade: connection closed");
  }
  struct bridge *br = NULL;
  int fd = -1;
  if (bridge_new(c->srv->loop, &conn_bridge_ops, c, &br, &fd, err) < 0) {
    http_respond_error(req, 500, err->msg);
    return -1;
  }
  sh_buf out = {0};
  build_head(&out, status, NULL, -1, false, true, headers);
  c->api_depth++;
  conn_send(c, &out);
  c->api_depth--;
  req_free(rp);
  c->active = NULL;
  conn_deadline(c, 0); /* the new protocol keeps its own time */
  if (c->closing) {    /* the head could not be sent */
    bridge_close(br);
    close(fd);
    return sh_error(err, 503, "upgrade: connection closed");
  }
  c->upgraded = true;
  c->bridge = br;
  /* Bytes that came after the request head belong to the new protocol. */
  if (c->in.len > c->in_off)
    bridge_push(br, c->in.data + c->in_off, c->in.len - c->in_off);
  buf_reset(&c->in);
  c->in_off = 0;
  update_reading(c);
  *fd_out = fd;
  return 0;
}

/* ---- streamed request bodies ---- */

void http_server_set_body_stream(struct http_server *srv,
                                 bool (*fn)(const struct http_req *head,
                                            void *ud),
                                 void *ud) {
  srv->stream_fn = fn;
  srv->stream_ud = ud;
}

static void on_kick(uv_idle_t *h) {
  struct http_server *srv = h->data;
  uv_idle_stop(h);
  /* The waiting requests in their order, until this turn's time is spent
   * (conn_process puts the one it stops at back at the end; only the
   * connections waiting now are taken, so that ends the walk). */
  struct http_conn *last = TAILQ_LAST(&srv->waiting, http_conn_list);
  while (!TAILQ_EMPTY(&srv->waiting)) {
    struct http_conn *c = TAILQ_FIRST(&srv->waiting);
    TAILQ_REMOVE(&srv->waiting, c, wait_link);
    c->waiting = false;
    conn_process(c);
    if (c == last)
      break;
  }
  /* conn_process only closes connections (a later callback unlinks
   * them), so walking the list is safe. */
  for (struct http_conn *c = srv->conns; c; c = c->next) {
    if (!c->kick)
      continue;
    c->kick = false;
    conn_process(c);
  }
}

/* Parsing goes on from a later loop turn. */
static void conn_kick(struct http_conn *c) {
  if (c->closing || c->handle_closed || srv_closing(c) || c->kick)
    return;
  c->kick = true;
  uv_idle_start(&c->srv->kick, on_kick);
}

void http_req_body_start(struct http_req *req,
                         void (*on_data)(struct http_req *req, const char *data,
                                         size_t len, void *ud),
                         void (*on_end)(struct http_req *req, bool complete,
                                        void *ud),
                         void *ud) {
  struct req_priv *rp = priv(req);
  struct http_conn *c = req->conn_;
  if (c->body_rp != rp || c->body_started)
    return;
  rp->on_data = on_data;
  rp->on_end = on_end;
  rp->body_ud = ud;
  c->body_started = true;
  if (c->closing || c->handle_closed || srv_closing(c)) {
    /* Gone before the handler asked (it was looking the target up): no
     * kick would ever come, so the end is told now. */
    body_abort(c);
    return;
  }
  if (c->continue_due) {
    c->continue_due = false;
    sh_buf out = {0};
    buf_printf(&out, "HTTP/1.1 100 Continue\r\n\r\n");
    conn_send(c, &out);
  }
  conn_deadline(c, c->srv ? c->srv->lim.idle_timeout_ms : 0);
  conn_kick(c);
}

void http_req_body_pause(struct http_req *req, bool paused) {
  struct req_priv *rp = priv(req);
  struct http_conn *c = req->conn_;
  if (c->body_rp != rp || c->body_paused == paused || c->body_done)
    return;
  c->body_paused = paused;
  if (paused) {
    /* The consumer is behind, not the client: no idle deadline. */
    conn_deadline(c, 0);
    if (c->in_parse) {
      c->pause_expected = true;
      http_parser_pause(&c->parser, 1);
    }
    return;
  }
  conn_deadline(c, c->srv ? c->srv->lim.idle_timeout_ms : 0);
  conn_kick(c);
}
