/* http/: server and client against each other on one loop, raw-socket
 * protocol checks, TLS identities with throwaway certificates, and a
 * garbage-input run. */
#include "test.h"

#include "agent/agent.h"

#include "core/err.h"
#include "core/jcbor.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "http/client.h"
#include "http/server.h"
#include "http/tlsconn.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define LEAK_CHECK() (__lsan_do_recoverable_leak_check() == 0)
#else
#define LEAK_CHECK() true
#endif

/* ---- fixture ---- */

struct fx {
  uv_loop_t loop;
  uv_timer_t ticker; /* keeps uv_run(ONCE) returning */
  struct http_server *srv;
  struct http_client *cli;
  char dir[64], sock[128];
  int port;

  int nreq;
  char method[16], path[256], query[256], body[256], ctype[128], xtest[64];
  char peer[512], peer_addr[64];
  void *conn;
  struct http_req *held;
  bool hold_on_close, on_close_called;
  struct http_req *stream_req;
  uv_timer_t delay_timer;
  struct http_req *delayed;
  /* streamed bodies ("/upload...") */
  struct http_req *up;
  size_t up_bytes;
  uint32_t up_sum;
  bool up_end, up_complete, up_hold, up_stream_seen;
  struct http_req *up_later; /* "/upload-later": body_start comes later */
  /* "/busy": handlers that take 60 ms each, and the loop turn (the
   * test's count of uv_run calls) each ran in. */
  int turn, nbusy, busy_turn[8];
  bool busy_local[8];
  /* "/swarm/v1/...": a manager as the agent sees it: the session's
   * hello, heartbeats answered (the connection of each kept), status
   * reports held unanswered (a commit that takes long). */
  struct http_req *session, *report;
  void *hb_conns[32], *report_conn;
  int nhb;
  char nodes_seen[128]; /* the agent's on_node: each node ID and ' ' */
};

static void delay_fire(uv_timer_t *t) {
  struct fx *f = t->data;
  http_respond(f->delayed, 200, "text/plain", "delayed", 7, NULL);
  f->delayed = NULL;
}

static void held_closed(struct http_req *req, void *ud) {
  struct fx *f = ud;
  f->on_close_called = true;
  f->held = NULL;
  http_req_release(req);
}

/* The far end of a hijacked connection: collects what the client sends
 * and, at its EOF (the client's half-close), answers "got:<it>" and
 * closes, as an exec's `cat` would. */
struct echo {
  uv_pipe_t p;
  uv_write_t w;
  uv_shutdown_t sd;
  sh_buf got, reply;
};

static void echo_closed(uv_handle_t *h) {
  struct echo *e = h->data;
  buf_free(&e->got);
  buf_free(&e->reply);
  free(e);
}

static void echo_shut(uv_shutdown_t *sd, int status) {
  (void)status;
  struct echo *e = sd->data;
  uv_close((uv_handle_t *)&e->p, echo_closed);
}

static void echo_alloc(uv_handle_t *h, size_t n, uv_buf_t *b) {
  (void)h;
  *b = uv_buf_init(xmalloc(n), (unsigned)n);
}

static void echo_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  struct echo *e = s->data;
  if (n > 0)
    buf_append(&e->got, b->base, (size_t)n);
  free(b->base);
  if (n >= 0)
    return;
  uv_read_stop(s);
  buf_printf(&e->reply, "got:%s", e->got.data ? e->got.data : "");
  uv_buf_t out = uv_buf_init(e->reply.data, (unsigned)e->reply.len);
  uv_write(&e->w, s, &out, 1, NULL);
  e->sd.data = e;
  uv_shutdown(&e->sd, s, echo_shut);
}

static void hijack(struct http_req *req, uv_loop_t *loop) {
  bool upgrade = http_req_header(req, "Upgrade") != NULL;
  const char *h101[] = {"Content-Type: application/vnd.docker.raw-stream",
                        "Connection: Upgrade", "Upgrade: tcp", NULL};
  const char *h200[] = {"Content-Type: application/vnd.docker.raw-stream",
                        NULL};
  int fd;
  sh_err err = {0};
  if (http_req_hijack(req, upgrade ? 101 : 200, upgrade ? h101 : h200, &fd,
                      &err) < 0)
    return;
  struct echo *e = xcalloc(1, sizeof *e);
  uv_pipe_init(loop, &e->p, 0);
  e->p.data = e;
  uv_pipe_open(&e->p, fd);
  uv_read_start((uv_stream_t *)&e->p, echo_alloc, echo_read);
}

static void up_data(struct http_req *req, const char *data, size_t len,
                    void *ud) {
  struct fx *f = ud;
  for (size_t i = 0; i < len; i++)
    f->up_sum = f->up_sum * 31 + (unsigned char)data[i];
  f->up_bytes += len;
  if (f->up_hold) /* a consumer that is behind */
    http_req_body_pause(req, true);
}

static void up_end(struct http_req *req, bool complete, void *ud) {
  struct fx *f = ud;
  f->up_end = true;
  f->up_complete = complete;
  f->up = NULL;
  if (!complete) {
    http_req_release(req);
    return;
  }
  cleanup_free char *out = xasprintf("%zu %u", f->up_bytes, f->up_sum);
  http_respond(req, 200, "text/plain", out, strlen(out), NULL);
}

static bool up_route(const struct http_req *head, void *ud) {
  (void)ud;
  return strcmp(head->method, "PUT") == 0 &&
         str_has_prefix(head->path, "/upload");
}

static void upload(struct fx *f, struct http_req *req) {
  f->up_stream_seen = req->body_stream;
  if (!req->body_stream) { /* not offered: buffered as ever */
    cleanup_free char *out = xasprintf("buffered %zu", req->body_len);
    http_respond(req, 200, "text/plain", out, strlen(out), NULL);
    return;
  }
  if (strcmp(req->path, "/upload-reject") == 0) {
    http_respond_error(req, 400, "no thanks");
    return;
  }
  f->up = req;
  f->up_bytes = 0;
  f->up_sum = 0;
  f->up_end = f->up_complete = false;
  if (strcmp(req->path, "/upload-later") == 0) { /* a lookup first */
    f->up_later = req;
    return;
  }
  http_req_body_start(req, up_data, up_end, f);
}

static void swarm(struct fx *f, struct http_req *req) {
  if (strcmp(req->path, "/swarm/v1/session") == 0) {
    static const char hello[] = "{\"Type\":\"session\",\"SessionID\":\"s1\","
                                "\"HeartbeatPeriod\":300000000}\n";
    f->session = req;
    http_stream_begin(req, 200, "application/json", NULL);
    http_stream_write(req, hello, strlen(hello));
  } else if (strcmp(req->path, "/swarm/v1/heartbeat") == 0) {
    if (f->nhb < (int)ARRAY_SIZE(f->hb_conns))
      f->hb_conns[f->nhb++] = req->conn_;
    http_respond_json(req, 200, "{\"Period\":300000000}");
  } else if (strcmp(req->path, "/swarm/v1/tasks") == 0) {
    f->report = req;
    f->report_conn = req->conn_;
  } else {
    http_respond_error(req, 404, "not here");
  }
}

static void handler(struct http_req *req, void *ud) {
  struct fx *f = ud;
  if (str_has_prefix(req->path, "/swarm/v1/"))
    return swarm(f, req);
  if (strcmp(req->path, "/hijack") == 0)
    return hijack(req, &f->loop);
  if (str_has_prefix(req->path, "/upload"))
    return upload(f, req);
  f->nreq++;
  snprintf(f->method, sizeof f->method, "%s", req->method);
  snprintf(f->path, sizeof f->path, "%s", req->path);
  snprintf(f->query, sizeof f->query, "%s", req->query);
  snprintf(f->body, sizeof f->body, "%s", req->body);
  const char *ct = http_req_header(req, "content-type");
  snprintf(f->ctype, sizeof f->ctype, "%s", ct ? ct : "");
  const char *xt = http_req_header(req, "X-TEST");
  snprintf(f->xtest, sizeof f->xtest, "%s", xt ? xt : "");
  snprintf(f->peer_addr, sizeof f->peer_addr, "%s", req->peer_addr);
  f->conn = req->conn_;

  if (strcmp(req->path, "/echo") == 0) {
    cleanup_free char *out =
        xasprintf("%s %s %s", req->method, req->path, req->body);
    http_respond(req, 200, "text/plain", out, strlen(out), NULL);
  } else if (strcmp(req->path, "/json") == 0) {
    http_respond_json(req, 201, "{\"Id\":\"abc\"}");
  } else if (strcmp(req->path, "/missing") == 0) {
    http_respond_error(req, 404, "no such thing: \"x\"\n\\");
  } else if (strcmp(req->path, "/hold") == 0) {
    f->held = req;
    if (f->hold_on_close) {
      req->on_close = held_closed;
      req->on_close_ud = f;
    }
  } else if (strcmp(req->path, "/delay") == 0) {
    f->delayed = req;
    uv_timer_start(&f->delay_timer, delay_fire, 50, 0);
  } else if (strcmp(req->path, "/stream") == 0) {
    f->stream_req = req;
    http_stream_begin(req, 200, "text/plain", NULL);
    http_stream_write(req, "c0", 2);
  } else if (strcmp(req->path, "/peer") == 0) {
    snprintf(f->peer, sizeof f->peer, "verified=%d cn=%s ou=%s o=%s",
             req->peer_verified, req->peer_cn, req->peer_ou, req->peer_o);
    http_respond(req, 200, "text/plain", f->peer, strlen(f->peer), NULL);
  } else if (strcmp(req->path, "/query") == 0) {
    const char *names[] = {"a", "b", "c", "d", "e"};
    sh_buf out = {0};
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
      cleanup_free char *v = http_req_query(req, names[i]);
      buf_printf(&out, "%s=%s;", names[i], v ? v : "(null)");
    }
    http_respond(req, 200, "text/plain", out.data, out.len, NULL);
    buf_free(&out);
  } else if (strcmp(req->path, "/busy") == 0) {
    if (f->nbusy < (int)ARRAY_SIZE(f->busy_turn)) {
      f->busy_local[f->nbusy] = strstr(req->query, "local") != NULL;
      f->busy_turn[f->nbusy++] = f->turn;
    }
    uint64_t end = uv_hrtime() + 60 * 1000000ull;
    while (uv_hrtime() < end)
      ;
    http_respond(req, 200, "text/plain", "busy", 4, NULL);
  } else if (strcmp(req->path, "/nocontent") == 0) {
    const char *hdrs[] = {"X-Extra: 1", "Bad: a\r\nInjected: 1", NULL};
    http_respond(req, 204, NULL, NULL, 0, hdrs);
  } else {
    http_respond(req, 200, "text/plain", "ok", 2, NULL);
  }
}

static void tick(uv_timer_t *t) {
  (void)t;
}

static void fx_init(struct fx *f) {
  memset(f, 0, sizeof *f);
  signal(SIGPIPE, SIG_IGN); /* as shoald: a peer gone is an EPIPE */
  uv_loop_init(&f->loop);
  uv_timer_init(&f->loop, &f->ticker);
  uv_timer_start(&f->ticker, tick, 5, 5);
  uv_timer_init(&f->loop, &f->delay_timer);
  f->delay_timer.data = f;
  snprintf(f->dir, sizeof f->dir, "/tmp/shoal-http-XXXXXX");
  if (!mkdtemp(f->dir))
    abort();
  snprintf(f->sock, sizeof f->sock, "%s/api.sock", f->dir);
  f->srv = http_server_new(&f->loop, handler, f);
  f->cli = http_client_new(&f->loop);
}

static int fx_listen_unix(struct fx *f) {
  sh_err err = {0};
  return http_server_listen_unix(f->srv, f->sock, -1, &err);
}

static int fx_listen_tcp(struct fx *f, SSL_CTX *tls) {
  sh_err err = {0};
  if (http_server_listen_tcp(f->srv, "127.0.0.1", 0, tls, &err) < 0)
    return -1;
  f->port = http_server_port(f->srv);
  return f->port;
}

/* Runs the loop until *flag or timeout. */
static bool run_until(struct fx *f, const bool *flag, int timeout_ms) {
  uv_update_time(&f->loop);
  uint64_t end = uv_now(&f->loop) + (uint64_t)timeout_ms;
  while (!*flag) {
    uv_update_time(&f->loop);
    if (uv_now(&f->loop) > end)
      return false;
    uv_run(&f->loop, UV_RUN_ONCE);
  }
  return true;
}

static void run_for(struct fx *f, int ms) {
  bool never = false;
  run_until(f, &never, ms);
}

static void walk_close(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

/* Closes everything; true when every handle went away and nothing leaked. */
static bool fx_done(struct fx *f) {
  if (f->srv)
    http_server_close(f->srv);
  if (f->cli)
    http_client_close(f->cli);
  uv_close((uv_handle_t *)&f->ticker, NULL);
  uv_close((uv_handle_t *)&f->delay_timer, NULL);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  int r = uv_loop_close(&f->loop);
  if (r != 0) {
    uv_walk(&f->loop, walk_close, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_loop_close(&f->loop);
  }
  unlink(f->sock);
  rmdir(f->dir);
  return r == 0 && LEAK_CHECK();
}

/* ---- client helpers ---- */

struct res {
  bool done;
  int status;
  char *body, *error, *chain;
  size_t body_len;
};

static void res_free(struct res *r) {
  free(r->body);
  free(r->error);
  free(r->chain);
  memset(r, 0, sizeof *r);
}

static void on_done(const struct http_result *hr, void *ud) {
  struct res *r = ud;
  r->done = true;
  r->status = hr->status;
  r->body = xstrndup(hr->body, hr->body_len);
  r->body_len = hr->body_len;
  r->error = hr->error ? xstrdup(hr->error) : NULL;
  r->chain = hr->peer_chain_pem ? xstrdup(hr->peer_chain_pem) : NULL;
}

static bool call(struct fx *f, struct http_call_opts *o, struct res *r) {
  memset(r, 0, sizeof *r);
  if (!http_client_call(f->cli, o, NULL, on_done, r))
    return false;
  return run_until(f, &r->done, 10000);
}

/* One call that must answer status. */
static bool call_is(struct fx *f, struct http_call_opts *o, int status) {
  struct res r;
  bool ok = call(f, o, &r) && r.status == status;
  if (!ok)
    fprintf(stderr, "    call: status %d (%s), wanted %d\n", r.status,
            r.error ? r.error : "no error", status);
  res_free(&r);
  return ok;
}

static char *unix_url(const char *path) {
  return xasprintf("http://localhost%s", path);
}

/* ---- raw socket helpers ---- */

static int raw_unix(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    close(fd);
    return -1;
  }
  fcntl(fd, F_SETFL, O_NONBLOCK);
  return fd;
}

static void raw_send(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return;
    p += n;
    len -= (size_t)n;
  }
}

static int count_str(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
    n++;
  return n;
}

/* Reads until EOF, or until `responses` status lines arrived (0: EOF
 * only), or timeout. Returns what arrived; *eof tells how it ended. */
static char *raw_read(struct fx *f, int fd, int responses, int timeout_ms,
                      bool *eof) {
  sh_buf b = {0};
  buf_append(&b, "", 0);
  *eof = false;
  uv_update_time(&f->loop);
  uint64_t end = uv_now(&f->loop) + (uint64_t)timeout_ms;
  for (;;) {
    char tmp[4096];
    ssize_t n = recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
    if (n > 0) {
      buf_append(&b, tmp, (size_t)n);
      if (responses && count_str(b.data, "HTTP/1.1 ") >= responses &&
          strstr(b.data, "\r\n\r\n"))
        break;
      continue;
    }
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
      *eof = true;
      break;
    }
    uv_update_time(&f->loop);
    if (uv_now(&f->loop) > end)
      break;
    uv_run(&f->loop, UV_RUN_ONCE);
  }
  return b.data;
}

/* ---- certificates ---- */

struct tcert {
  X509 *cert;
  EVP_PKEY *key;
  char *cert_pem, *key_pem;
};

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
  X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  if (!e)
    abort();
  X509_add_ext(x, e, -1);
  X509_EXTENSION_free(e);
}

static char *pem_of(X509 *x, EVP_PKEY *k) {
  BIO *b = BIO_new(BIO_s_mem());
  if (x)
    PEM_write_bio_X509(b, x);
  else
    PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
  char *data;
  long n = BIO_get_mem_data(b, &data);
  char *out = xstrndup(data, (size_t)n);
  BIO_free(b);
  return out;
}

/* A CA (issuer == NULL) or a leaf signed by issuer. */
static void make_cert(struct tcert *out, const char *cn, const char *ou,
                      const char *o, const struct tcert *issuer) {
  static long serial = 1;
  out->key = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, out->key);
  X509_NAME *n = X509_get_subject_name(x);
  if (o)
    X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8, (const unsigned char *)o,
                               -1, -1, 0);
  if (ou)
    X509_NAME_add_entry_by_txt(n, "OU", MBSTRING_UTF8,
                               (const unsigned char *)ou, -1, -1, 0);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn,
                             -1, -1, 0);
  X509 *iss = issuer ? issuer->cert : x;
  X509_set_issuer_name(x, X509_get_subject_name(iss));
  add_ext(x, iss, NID_subject_key_identifier, "hash");
  if (!issuer) {
    add_ext(x, iss, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(x, iss, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_ext(x, iss, NID_authority_key_identifier, "keyid:always");
    add_ext(x, iss, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(x, iss, NID_key_usage, "critical,digitalSignature");
    add_ext(x, iss, NID_ext_key_usage, "serverAuth,clientAuth");
  }
  X509_sign(x, issuer ? issuer->key : out->key, EVP_sha256());
  out->cert = x;
  out->cert_pem = pem_of(x, NULL);
  out->key_pem = pem_of(NULL, out->key);
}

static void tcert_free(struct tcert *t) {
  X509_free(t->cert);
  EVP_PKEY_free(t->key);
  free(t->cert_pem);
  free(t->key_pem);
}

static int accept_any(int ok, X509_STORE_CTX *ctx) {
  (void)ok;
  (void)ctx;
  return 1;
}

enum peer_policy {
  PEER_OPTIONAL,
  PEER_OPTIONAL_ACCEPT_UNTRUSTED,
  PEER_REQUIRED
};

static SSL_CTX *server_ctx(const struct tcert *srv, const struct tcert *ca,
                           enum peer_policy pol) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX_use_certificate(ctx, srv->cert);
  SSL_CTX_use_PrivateKey(ctx, srv->key);
  SSL_CTX_add1_chain_cert(ctx, ca->cert);
  X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca->cert);
  int mode = SSL_VERIFY_PEER;
  if (pol == PEER_REQUIRED)
    mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  SSL_CTX_set_verify(ctx, mode,
                     pol == PEER_OPTIONAL_ACCEPT_UNTRUSTED ? accept_any : NULL);
  return ctx;
}

/* Listens on a new TLS port of f with srv's certificate; its port, or
 * <= 0. */
static int listen_tls(struct fx *f, const struct tcert *srv,
                      const struct tcert *ca, enum peer_policy pol) {
  SSL_CTX *ctx = server_ctx(srv, ca, pol);
  int port = fx_listen_tcp(f, ctx);
  SSL_CTX_free(ctx); /* the server holds its own reference */
  return port;
}

struct pki {
  struct tcert ca, srv, cli, other_ca, other_cli;
};

static void pki_make(struct pki *p) {
  make_cert(&p->ca, "swarm-ca", NULL, NULL, NULL);
  make_cert(&p->srv, "node1", "swarm-manager", "cluster1", &p->ca);
  make_cert(&p->cli, "node2", "swarm-worker", "cluster1", &p->ca);
  make_cert(&p->other_ca, "swarm-ca", NULL, NULL, NULL);
  make_cert(&p->other_cli, "node3", "swarm-manager", "cluster1", &p->other_ca);
}

static void pki_free(struct pki *p) {
  tcert_free(&p->ca);
  tcert_free(&p->srv);
  tcert_free(&p->cli);
  tcert_free(&p->other_ca);
  tcert_free(&p->other_cli);
}

/* ---- plain HTTP ---- */

TEST(http_get_post_unix) {
  struct fx f;
  fx_init(&f);
  CHECK_INT_EQ(fx_listen_unix(&f), 0);
  cleanup_free char *url = unix_url("/echo?x=1&y=%20");
  struct http_call_opts o = {.url = url, .unix_socket = f.sock};
  struct res r;
  CHECK(call(&f, &o, &r));
  CHECK_INT_EQ(r.status, 200);
  CHECK_STR_EQ(r.body, "GET /echo ");
  CHECK_STR_EQ(f.query, "x=1&y=%20");
  CHECK_STR_EQ(f.peer_addr, "");
  res_free(&r);

  o.method = "POST";
  o.body = "{\"a\":1}";
  o.body_len = strlen(o.body);
  CHECK(call(&f, &o, &r));
  CHECK_INT_EQ(r.status, 200);
  CHECK_STR_EQ(r.body, "POST /echo {\"a\":1}");
  CHECK_STR_EQ(f.ctype, "application/json");
  res_free(&r);

  /* PUT, DELETE, empty POST */
  o.method = "PUT";
  CHECK(call(&f, &o, &r));
  CHECK_STR_EQ(r.body, "PUT /echo {\"a\":1}");
  res_free(&r);
  o.method = "DELETE";
  o.body = NULL;
  o.body_len = 0;
  CHECK(call(&f, &o, &r));
  CHECK_STR_EQ(r.body, "DELETE /echo ");
  res_free(&r);
  o.method = "POST";
  CHECK(call(&f, &o, &r));
  CHECK_STR_EQ(r.body, "POST /echo ");
  CHECK_STR_EQ(f.ctype, "");
  res_free(&r);

  /* JSON helper */
  cleanup_free char *url2 = unix_url("/json");
  struct http_call_opts o2 = {.url = url2, .unix_socket = f.sock};
  CHECK(call(&f, &o2, &r));
  CHECK_INT_EQ(r.status, 201);
  CHECK_STR_EQ(r.body, "{\"Id\":\"abc\"}");
  res_free(&r);
  CHECK(fx_done(&f));
}

TEST(http_tcp_keepalive) {
  struct fx f;
  fx_init(&f);
  CHECK(fx_listen_tcp(&f, NULL) > 0);
  cleanup_free char *url = xasprintf("http://127.0.0.1:%d/echo", f.port);
  struct http_call_opts o = {.url = url};
  struct res r;
  CHECK(call(&f, &o, &r));
  CHECK_INT_EQ(r.status, 200);
  CHECK_STR_EQ(f.peer_addr, "127.0.0.1");
  void *first = f.conn;
  res_free(&r);
  CHECK(call(&f, &o, &r));
  CHECK_INT_EQ(r.status, 200);
  CHECK(first == f.conn); /* same connection, kept alive */
  CHECK_INT_EQ(f.nreq, 2);
  res_free(&r);
  CHECK(fx_done(&f));
}

TEST(http_error_json_and_headers) {
  struct fx f;
  fx_init(&f);
  CHECK_INT_EQ(fx_listen_unix(&f), 0);
  cleanup_free char *url = unix_url("/missing");
  struct http_call_opts o = {.url = url, .unix_socket = f.sock};
  struct res r;
  CHECK(call(&f, &o, &r));
  CHECK_INT_EQ(r.status, 404);
  json_error_t jerr;
  json_t *j = json_loads(r.body, 0, &jerr);
  CHECK(j != NULL);
  CHECK_STR_EQ(json_string_value(json_object_get(j, "message")),
               "no such thing: \"x\"\n\\");
  json_decref(j);
  res_free(&r);

  /* Raw: status line, headers, no Server header. */
  int fd = raw_unix(f.sock);
  CHECK(fd >= 0);
  const char *rq =
      "GET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  raw_send(fd, rq, strlen(rq));
  bool eof;
  cleanup_free char *resp = raw_read(&f, fd, 0, 5000, &eof);
  close(fd);
  CHECK(eof);
  CHECK(str_has_prefix(resp, "HTTP/1.1 404 Not Found\r\n"));
  CHECK(strstr(resp, "\r\nContent-Type: application/json\r\n"));
  CHECK(strstr(resp, "\r\nContent-Length: "));
  CHECK(strstr(resp, "\r\nDate: "));
  CHECK(strstr(resp, "\r\nConnection: close\r\n"));
  CHECK(!strstr(resp, "Server:"));

  /* 204: no body, no length; header injection dropped */
  fd = raw_unix(f.sock);
  rq = "GET /nocontent HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  raw_send(fd, rq, strlen(rq));
  cleanup_free char *resp2 = raw_read(&f, fd, 0, 5000, &eof);
  close(fd);
  CHECK(str_has_prefix(resp2, "HTTP/1.1 204 No Content\r\n"));
  CHECK(strstr(resp2, "\r\nX-Extra: 1\r\n"));
  CHECK(!strstr(resp2, "Injected"));
  CHECK(!strstr(resp2, "Content-Length"));
  CHECK(str_has_suffix(resp2, "\r\n\r\n"));
  CHECK(fx_done(&f));
}

TEST(http_head_request) {
  struct fx f;
  fx_init(&f);
  CHECK_INT_EQ(fx_listen_unix(&f), 0);
  cleanup_free char *url = unix_url("/echo");
  struct http_call_opts o = {
      .url = url, .unix_socket = f.sock, .method = "HEAD"};
  struct res r;
  CHECK(call(&f, &o, &r));
  CHECK_INT_EQ(r.status, 200);
  CHECK_INT_EQ(r.body_len, 0);
  CHECK_STR_EQ(f.method, "HEAD");
  res_free(&r);

  int fd = raw_unix(f.sock);
  const char *rq =
      "HEAD /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  raw_send(fd, rq, strlen(rq));
  bool eof;
  cleanup_free char *resp = raw_read(&f, fd, 0, 5000, &eof);
  close(fd);
  CHECK(eof);
  CHECK(str_has_prefix(resp, "HTTP/1.1 200 OK\r\n"));
  CHECK(strstr(resp, "\r\nContent-Length: 11\r\n")); /* "HEAD /echo " */
  CHECK(str_has_suffix(resp, "\r\n\r\n"));           /* and no body */
  CHECK(fx_done(&f));
}

/* res first: on_done gets the same ud as on_data. */
struct stream_state {
  struct res r;
  struct fx *f;
  sh_buf got;
  int pieces, next;
  bool abort_after_first, cancel_in_data;
  struct http_call *call;
};

static bool stream_data(const char *data, size_t len, void *ud) {
  struct stream_state *s = ud;
  buf_append(&s->got, data, len);
  s->pieces++;
  if (s->abort_after_first)
    return false;
  if (s->cancel_in_data) {
    http_call_cancel(s->call);
    return true;
  }
  /* The server sends the next chunk only once this one arrived, so the
   * stream only completes if the client delivers pieces as they come. */
  char expect[8];
  snprintf(expect, sizeof expect, "c%d", s->next);
  if (str_has_suffix(s->got.data, expect)) {
    s->next++;
    if (s->next < 5) {
      char chunk[8];
      snprintf(chunk, sizeof chunk, "c%d", s->next);
      http_stream_write(s->f->stream_req, chunk, strlen(chunk));
    } else {
      http_stream_end(s->f->stream_req);
      s->f->stream_req = NULL;
    }
  }
  return true;
}

TEST(http_stream_incremental) {
  struct fx f;
  fx_init(&f);
  CHECK(fx_listen_tcp(&f, NULL) > 0);
  cleanup_free char *url = xasprintf("http://127.0.0.1:%d/stream", f.port);
  struct http_call_opts o = {.url = url};
  struct stream_state s = {.f = &f};
  CHECK(http_client_call(f.cli, &o, stream_data, on_done, &s));
  CHECK(run_until(&f, &s.r.done, 10000));
  CHECK_INT_EQ(s.r.status, 200);
  CHECK(s.r.error == NULL);
  CHECK_INT_EQ(s.r.body_len, 0);
  CHECK_STR_EQ(s.got.data, "c0c1c2c3c4");
  CHECK(s.pieces >= 5);
  res_free(&s.r);
  buf_free(&s.got);
  struct res r;

  /* Still usable after a stream: keep-alive with chunked framing. */
  cleanup_free char *url2 = xasprintf("http://127.0.0.1:%d/echo", f.port);
  struct http_call_opts o2 = {.url = url2};
  CHECK(call(&f, &o2, &r));
  CHECK_STR_EQ(r.body, "GET /echo ");
  res_free(&r);
  CHECK(fx_done(&f));
}

TEST(http_stream_abort_and_cancel) {
  struct fx f;
  fx_init(&f);
  f.hold_on_close = true;
  CHECK(fx_listen_tcp(&f, NULL) > 0);
  cleanup_free char *url = xasprintf("http://127.0.0.1:%d/stream", f.port);
  struct http_call_opts o = {.url = url};

  /* on_data returns false: done runs with the status and "aborted" */
  struct stream_state s = {.f = &f, .abort_after_first = true};
  CHECK(http_client_call(f.cli, &o, stream_data, on_done, &s));
  CHECK(run_until(&f, &s.r.done, 10000));
  CHECK_INT_EQ(s.r.status, 200);
  CHECK_STR_EQ(s.r.error, "aborted");
  res_free(&s.r);
  buf_free(&s.got);
  /* the server notices the peer going away on its next write */
  bool gone = false;
  for (int i = 0; i < 200 && !gone; i++) {
    gone = http_stream_write(f.stream_req, "x", 1) < 0;
    run_for(&f, 10);
  }
  CHECK(gone);
  http_req_release(f.stream_req);
  f.stream_req = NULL;

  /* cancel from inside on_data: done is never called */
  struct stream_state s2 = {.f = &f, .cancel_in_data = true};
  s2.call = http_client_call(f.cli, &o, stream_data, on_done, &s2);
  CHECK(s2.call);
  bool got_piece = false;
  for (int i = 0; i < 500 && !got_piece; i++) {
    run_for(&f, 10);
    got_piece = s2.pieces > 0;
  }
  CHECK(got_piece);
  run_for(&f, 100);
  CHECK(!s2.r.done);
  buf_free(&s2.got);
  if (f.stream_req)
    http_req_release(f.stream_req);
  f.stream_req = NULL;

  /* cancel from outside; held request learns through on_close */
  cleanup_free char *hold = xasprintf("http://127.0.0.1:%d/hold", f.port);
  struct http_call_opts oh = {.url = hold};
  struct res r3 = {0};
  struct http_call *c3 = http_client_call(f.cli, &oh, NULL, on_done, &r3);
  CHECK(c3);
  for (int i = 0; i < 500 && !f.held; i++)
    run_for(&f, 10);
  CHECK(f.held != NULL);
  http_call_cancel(c3);
  CHECK(run_until(&f, &f.on_close_called, 5000));
  CHECK(!r3.done);
  CHECK(fx_done(&f));
}

TEST(http_client_timeout_refused_close) {
  struct fx f;
  fx_init(&f);
  f.hold_on_close = true;
  CHECK(fx_listen_tcp(&f, NULL) > 0);
  cleanup_free char *hold = xasprintf("http://127.0.0.1:%d/hold", f.port);
  struct http_call_opts o = {.url = hold, .timeout_ms = 200};
  struct res r;
  CHECK(call(&f, &o, &r));
  CHECK_INT_EQ(r.status, 0);
  CHECK(r.error && *r.error);
  res_free(&r);
  CHECK(run_until(&f, &f.on_close_called, 5000));

  /* refused: bind a port, close it, call it */
  struct http_call_opts o2 = {.url = "http://127.0.0.1:1/"};
  CHECK(call(&f, &o2, &r));
  CHECK_INT_EQ(r.status, 0);
  CHECK(r.error != NULL);
  res_free(&r);

  /* client close aborts an outstanding call with status 0 */
  f.on_close_called = false;
  struct http_call_opts o3 = {.url = hold};
  struct res r3 = {0};
  CHECK(http_client_call(f.cli, &o3, NULL, on_done, &r3));
  for (int i = 0; i < 500 && !f.held; i++)
    run_for(&f, 10);
  CHECK(f.held != NULL);
  http_client_close(f.cli);
  f.cli = NULL;
  CHECK(r3.done);
  CHECK_INT_EQ(r3.status, 0);
  res_free(&r3);
  CHECK(run_until(&f, &f.on_close_called, 5000));
  CHECK(fx_done(&f));
}

TEST(http_body_too_large) {
  struct fx f;
  fx_init(&f);
  CHECK_INT_EQ(fx_listen_unix(&f), 0);
  size_t n = HTTP_MAX_BODY + 1;
  char *big = xmalloc(n);
  memset(big, 'a', n);
  cleanup_free char *url = unix_url("/echo");
  struct http_call_opts o = {.url = url,
                             .unix_socket = f.sock,
                             .method = "POST",
                             .body = big,
                             .body_len = n};
  struct res r;
  CHECK(call(&f, &o, &r));
  free(big);
  CHECK_INT_EQ(r.status, 413);
  CHECK_INT_EQ(f.nreq, 0);
  res_free(&r);

  /* exactly at the limit is fine */
  big = xmalloc(HTTP_MAX_BODY);
  memset(big, 'b', HTTP_MAX_BODY);
  o.body = big;
  o.body_len = HTTP_MAX_BODY;
  cleanup_free char *url2 = unix_url("/size");
  o.url = url2;
  CHECK(call(&f, &o, &r));
  free(big);
  CHECK_INT_EQ(r.status, 200);
  CHECK_INT_EQ(f.nreq, 1);
  res_free(&r);

  /* declared length over the limit, raw */
  int fd = raw_unix(f.sock);
  const char *rq = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: "
                   "99999999\r\n\r\nabc";
  raw_send(fd, rq, strlen(rq));
  bool eof;
  cleanup_free char *resp = raw_read(&f, fd, 0, 5000, &eof);
  close(fd);
  CHECK(eof);
  CHECK(str_has_prefix(resp, "HTTP/1.1 413 "));

  /* chunked body growing past the limit */
  fd = raw_unix(f.sock);
  rq = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
       "1000001\r\n";
  raw_send(fd, rq, strlen(rq));
  char *chunk = xmalloc(65536);
  memset(chunk, 'c', 65536);
  bool closed = false;
  sh_buf got = {0};
  for (int i = 0; i < 300 && !closed; i++) {
    send(fd, chunk, 65536, MSG_NOSIGNAL | MSG_DONTWAIT);
    run_for(&f, 2);
    char tmp[1024];
    ssize_t k = recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
    if (k > 0)
      buf_append(&got, tmp, (size_t)k);
    closed = k == 0 || (k < 0 && errno != EAGAIN);
  }
  free(chunk);
  close(fd);
  CHECK(got.data && str_has_prefix(got.data, "HTTP/1.1 413 "));
  buf_free(&got);
  CHECK_INT_EQ(f.nreq, 1);
  CHECK(fx_done(&f));
}

/* Sends req without blocking while the loop runs; returns what came back
 * until the server closed the connection or time ran out. */
static char *exchange(struct fx *f, const char *req, size_t len) {
  int fd = raw_unix(f->sock);
  size_t off = 0;
  bool closed = false;
  sh_buf got = {0};
  buf_append(&got, "", 0);
  for (int i = 0; i < 2000 && !closed; i++) {
    if (off < len) {
      ssize_t k = send(fd, req + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (k > 0)
        off += (size_t)k;
    }
    run_for(f, 2);
    char tmp[4096];
    ssize_t k = recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
    if (k > 0)
      buf_append(&got, tmp, (size_t)k);
    closed = k == 0 || (k < 0 && errno != EAGAIN);
  }
  close(fd);
  return got.data;
}

/* Request heads as dockerd's Go server bounds them: 1 MiB (+4 KiB) of
 * request line and headers, then Go's 431 answer, byte for byte. */
TEST(http_header_limits_as_go) {
  struct fx f;
  fx_init(&f);
  CHECK_INT_EQ(fx_listen_unix(&f), 0);
  sh_buf rq = {0};
  buf_printf(&rq, "GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: ");
  for (int i = 0; i < 100 * 1024; i++)
    buf_append(&rq, "a", 1);
  buf_printf(&rq, "\r\nConnection: close\r\n\r\n");
  cleanup_free char *ok = exchange(&f, rq.data, rq.len);
  CHECK(str_has_prefix(ok, "HTTP/1.1 200 "));
  CHECK_INT_EQ(f.nreq, 1);
  buf_free(&rq);

  buf_printf(&rq, "GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: ");
  for (int i = 0; i < (1 << 20) + 8192; i++)
    buf_append(&rq, "a", 1);
  buf_printf(&rq, "\r\n\r\n");
  cleanup_free char *big = exchange(&f, rq.data, rq.len);
  buf_free(&rq);
  CHECK_STR_EQ(big, "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                    "Content-Type: text/plain; charset=utf-8\r\n"
                    "Connection: close\r\n\r\n"
                    "431 Request Header Fields Too Large");
  CHECK_INT_EQ(f.nreq, 1);
  CHECK(fx_done(&f));
}

TEST(http_chunked_request_pipelining_query) {
  struct fx f;
  fx_init(&f);
  CHECK_INT_EQ(fx_listen_unix(&f), 0);
  int fd = raw_unix(f.sock);
  const char *rq =
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
  raw_send(fd, rq, strlen(rq));
  bool eof;
  cleanup_free char *resp = raw_read(&f, fd, 1, 5000, &eof);
  CHECK(str_has_suffix(resp, "\r\n\r\nPOST /echo hello world"));

  /* pipelined: the slow first request is still answered first */
  rq = "GET /delay HTTP/1.1\r\nHost: x\r\n\r\n"
       "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"
       "GET /query?a=1&b=hello%20world&c&d=x+y HTTP/1.1\r\nHost: x\r\n"
       "X-Test: yes\r\nConnection: close\r\n\r\n";
  raw_send(fd, rq, strlen(rq));
  cleanup_free char *resp2 = raw_read(&f, fd, 0, 5000, &eof);
  close(fd);
  CHECK(eof);
  CHECK_INT_EQ(count_str(resp2, "HTTP/1.1 200 OK"), 3);
  char *a = strstr(resp2, "delayed"), *b = strstr(resp2, "GET /echo"),
       *c = strstr(resp2, "a=1;b=hello world;c=;d=x y;e=(null);");
  CHECK(a && b && c && a < b && b < c);
  CHECK_STR_EQ(f.xtest, "yes");

  /* percent-decoded path; NUL in the path is refused */
  fd = raw_unix(f.sock);
  rq = "GET /a%2Fb%20c?q=%41 HTTP/1.1\r\nHost: x\r\n\r\n";
  raw_send(fd, rq, strlen(rq));
  cleanup_free char *resp3 = raw_read(&f, fd, 1, 5000, &eof);
  CHECK(str_has_prefix(resp3, "HTTP/1.1 200 "));
  CHECK_STR_EQ(f.path, "/a/b c");
  CHECK_STR_EQ(f.query, "q=%41");
  rq = "GET /a%00b HTTP/1.1\r\nHost: x\r\n\r\n";
  raw_send(fd, rq, strlen(rq));
  cleanup_free char *resp4 = raw_read(&f, fd, 0, 5000, &eof);
  close(fd);
  CHECK(eof);
  CHECK(str_has_prefix(resp4, "HTTP/1.1 400 "));

  /* HTTP/1.0 without keep-alive closes after the answer */
  fd = raw_unix(f.sock);
  rq = "GET /echo HTTP/1.0\r\n\r\n";
  raw_send(fd, rq, strlen(rq));
  cleanup_free char *resp5 = raw_read(&f, fd, 0, 5000, &eof);
  close(fd);
  CHECK(eof);
  CHECK(strstr(resp5, "GET /echo"));
  CHECK(fx_done(&f));
}

TEST(http_malformed_request) {
  struct fx f;
  fx_init(&f);
  CHECK_INT_EQ(fx_listen_unix(&f), 0);
  const char *bad[] = {
      "GARBAGE\r\n\r\n",
      "GET / HTTP/1.1\r\nHost x\r\n\r\n",
      "GET / HTTP/9.9\r\n\r\n",
      "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
      "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
  };
  for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
    int fd = raw_unix(f.sock);
    CHECK(fd >= 0);
    raw_send(fd, bad[i], strlen(bad[i]));
    bool eof;
    cleanup_free char *resp = raw_read(&f, fd, 0, 5000, &eof);
    close(fd);
    if (!eof || !str_has_prefix(resp, "HTTP/1.1 400 "))
      FAIL_("case %zu: got \"%s\"", i, resp);
  }
  /* too many headers */
  sh_buf many = {0};
  buf_printf(&many, "GET / HTTP/1.1\r\n");
  for (int i = 0; i < HTTP_MAX_HEADERS + 1; i++)
    buf_printf(&many, "X-H%d: v\r\n", i);
  buf_printf(&many, "\r\n");
  int fd = raw_unix(f.sock);
  raw_send(fd, many.data, many.len);
  buf_free(&many);
  bool eof;
  cleanup_free char *resp = raw_read(&f, fd, 0, 5000, &eof);
  close(fd);
  CHECK(str_has_prefix(resp, "HTTP/1.1 431 "));
  CHECK_INT_EQ(f.nreq, 0);

  cleanup_free char *url = unix_url("/echo");
  struct http_call_opts o = {.url = url, .unix_socket = f.sock};
  CHECK(call_is(&f, &o, 200));
  CHECK(fx_done(&f));
}

TEST(http_disconnect_pending) {
  struct fx f;
  fx_init(&f);
  CHECK_INT_EQ(fx_listen_unix(&f), 0);
  /* with on_close: told, releases */
  f.hold_on_close = true;
  int fd = raw_unix(f.sock);
  const char *rq = "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n";
  raw_send(fd, rq, strlen(rq));
  for (int i = 0; i < 500 && !f.held; i++)
    run_for(&f, 10);
  CHECK(f.held != NULL);
  close(fd);
  CHECK(run_until(&f, &f.on_close_called, 5000));
  CHECK(f.held == NULL);

  /* without on_close: the late answer is dropped, nothing breaks */
  f.hold_on_close = false;
  fd = raw_unix(f.sock);
  raw_send(fd, rq, strlen(rq));
  for (int i = 0; i < 500 && !f.held; i++)
    run_for(&f, 10);
  CHECK(f.held != NULL);
  close(fd);
  run_for(&f, 50);
  CHECK_INT_EQ(http_stream_write(f.held, "x", 1), -1);
  http_respond(f.held, 200, "text/plain", "late", 4, NULL);
  f.held = NULL;

  /* a pending request when the server shuts down */
  f.hold_on_close = true;
  f.on_close_called = false;
  fd = raw_unix(f.sock);
  raw_send(fd, rq, strlen(rq));
  for (int i = 0; i < 500 && !f.held; i++)
    run_for(&f, 10);
  CHECK(f.held != NULL);
  http_server_close(f.srv);
  f.srv = NULL;
  CHECK(f.on_close_called);
  run_for(&f, 20);
  close(fd);
  CHECK(fx_done(&f));
}

/* Requests that come together while each handler takes longer than a
 * turn's share (50 ms): one is handled per turn, the others wait for later
 * turns, and every one is answered. Without the share all three ran in
 * the turn that read them (a thousand nodes' reports held a leader's loop
 * past the election timeout). A request on the local API socket never
 * waits: it runs in the first turn that runs any. */
TEST(http_handlers_share_a_turn_and_the_rest_wait) {
  struct fx f;
  fx_init(&f);
  CHECK_INT_EQ(fx_listen_unix(&f), 0);
  CHECK(fx_listen_tcp(&f, NULL) > 0);
  enum { N = 4 }; /* three on TCP, the last on the unix socket */
  int fds[N];
  const char *rq = "GET /busy HTTP/1.1\r\nHost: x\r\n\r\n";
  const char *rq_local = "GET /busy?local=1 HTTP/1.1\r\nHost: x\r\n\r\n";
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)f.port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  for (int i = 0; i < N - 1; i++) {
    fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fds[i] >= 0 &&
          connect(fds[i], (struct sockaddr *)&sa, sizeof sa) == 0);
    fcntl(fds[i], F_SETFL, O_NONBLOCK);
  }
  fds[N - 1] = raw_unix(f.sock);
  CHECK(fds[N - 1] >= 0);
  /* Accepted first (one turn), then all three requests at once. */
  for (int i = 0; i < 20; i++)
    uv_run(&f.loop, UV_RUN_NOWAIT);
  for (int i = 0; i < N; i++) {
    const char *r = i == N - 1 ? rq_local : rq;
    raw_send(fds[i], r, strlen(r));
  }
  uv_update_time(&f.loop);
  uint64_t end = uv_now(&f.loop) + 5000;
  while (f.nbusy < N && uv_now(&f.loop) < end) {
    f.turn++;
    uv_run(&f.loop, UV_RUN_ONCE);
    uv_update_time(&f.loop);
  }
  CHECK_INT_EQ(f.nbusy, N);
  /* The TCP ones in turns of their own; the local one in the first. */
  int tcp_turns[N], ntcp = 0, local_turn = -1;
  for (int i = 0; i < f.nbusy; i++) {
    if (f.busy_local[i])
      local_turn = f.busy_turn[i];
    else
      tcp_turns[ntcp++] = f.busy_turn[i];
  }
  CHECK_INT_EQ(ntcp, N - 1);
  for (int i = 1; i < ntcp; i++)
    CHECK(tcp_turns[i] > tcp_turns[i - 1]);
  CHECK_INT_EQ(local_turn, f.busy_turn[0]);
  for (int i = 0; i < N; i++) {
    bool eof;
    cleanup_free char *got = raw_read(&f, fds[i], 1, 5000, &eof);
    CHECK(strstr(got, "HTTP/1.1 200 OK") != NULL);
    CHECK(strstr(got, "busy") != NULL);
    close(fds[i]);
  }
  CHECK(fx_done(&f));
}

static uint32_t rnd_state = 12345;
static uint32_t rnd(void) {
  rnd_state ^= rnd_state << 13;
  rnd_state ^= rnd_state >> 17;
  rnd_state ^= rnd_state << 5;
  return rnd_state;
}

TEST(http_fuzz_garbage) {
  struct fx f;
  fx_init(&f);
  CHECK_INT_EQ(fx_listen_unix(&f), 0);
  const char *seeds[] = {
      "GET /echo?x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
      "POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
      ("POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
       "0\r\n\r\n"),
      "HEAD /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
  };
  const char alphabet[] = "\r\n :%?/0123456789abcdefGETPOSHTP\x00\xff\t";
  for (int iter = 0; iter < 400; iter++) {
    sh_buf in = {0};
    int kind = iter % 4;
    if (kind == 0) { /* random bytes */
      size_t n = rnd() % 300;
      for (size_t i = 0; i < n; i++) {
        char ch = (char)rnd();
        buf_append(&in, &ch, 1);
      }
    } else if (kind == 1) { /* random protocol-ish characters */
      size_t n = rnd() % 300;
      for (size_t i = 0; i < n; i++)
        buf_append(&in, &alphabet[rnd() % (sizeof alphabet - 1)], 1);
    } else { /* mutated valid requests, sometimes several */
      int reps = 1 + (int)(rnd() % 3);
      for (int k = 0; k < reps; k++) {
        const char *s = seeds[rnd() % ARRAY_SIZE(seeds)];
        buf_append(&in, s, strlen(s));
      }
      int muts = 1 + (int)(rnd() % 4);
      for (int m = 0; m < muts && in.len; m++) {
        size_t pos = rnd() % in.len;
        switch (rnd() % 3) {
        case 0:
          in.data[pos] = alphabet[rnd() % (sizeof alphabet - 1)];
          break;
        case 1:
          in.data[pos] = (char)rnd();
          break;
        default:
          in.len = pos; /* truncate */
          break;
        }
      }
    }
    int fd = raw_unix(f.sock);
    CHECK(fd >= 0);
    if (in.len)
      raw_send(fd, in.data, in.len);
    shutdown(fd, SHUT_WR);
    bool eof;
    char *resp = raw_read(&f, fd, 0, 3000, &eof);
    close(fd);
    bool ok = eof && (resp[0] == '\0' || str_has_prefix(resp, "HTTP/1."));
    if (!ok)
      FAIL_("iteration %d: eof=%d response \"%.60s\"", iter, eof, resp);
    free(resp);
    buf_free(&in);
    /* a stream left open by a fuzzed request ends here */
    if (f.stream_req) {
      http_stream_end(f.stream_req);
      f.stream_req = NULL;
    }
    if (f.held) {
      http_req_release(f.held);
      f.held = NULL;
    }
  }
  cleanup_free char *url = unix_url("/echo");
  struct http_call_opts o = {.url = url, .unix_socket = f.sock};
  CHECK(call_is(&f, &o, 200));
  CHECK(fx_done(&f));
}

/* ---- TLS ---- */

static void peer_call(struct fx *f, const struct pki *p,
                      const struct tcert *cli, const struct tcert *trust,
                      bool insecure, struct res *r) {
  cleanup_free char *url = xasprintf("https://127.0.0.1:%d/peer", f->port);
  struct http_call_opts o = {.url = url,
                             .cert_pem = cli ? cli->cert_pem : NULL,
                             .key_pem = cli ? cli->key_pem : NULL,
                             .ca_pem = trust ? trust->cert_pem : NULL,
                             .insecure = insecure};
  (void)p;
  f->peer[0] = '\0';
  call(f, &o, r);
}

TEST(http_tls_peer_identity) {
  struct pki p;
  pki_make(&p);
  struct fx f;
  fx_init(&f);
  CHECK(listen_tls(&f, &p.srv, &p.ca, PEER_OPTIONAL) > 0);
  struct res r;

  peer_call(&f, &p, &p.cli, &p.ca, false, &r);
  CHECK_INT_EQ(r.status, 200);
  CHECK_STR_EQ(r.body, "verified=1 cn=node2 ou=swarm-worker o=cluster1");
  CHECK(r.chain && strstr(r.chain, p.srv.cert_pem));
  res_free(&r);

  peer_call(&f, &p, NULL, &p.ca, false, &r);
  CHECK_INT_EQ(r.status, 200);
  CHECK_STR_EQ(r.body, "verified=0 cn= ou= o=");
  res_free(&r);

  /* server not trusted: wrong root, or no root at all */
  int before = f.nreq;
  peer_call(&f, &p, &p.cli, &p.other_ca, false, &r);
  CHECK_INT_EQ(r.status, 0);
  res_free(&r);
  peer_call(&f, &p, &p.cli, NULL, false, &r);
  CHECK_INT_EQ(r.status, 0);
  res_free(&r);
  CHECK_INT_EQ(f.nreq, before);

  /* insecure (pre-join): works, and the chain is there to check */
  peer_call(&f, &p, NULL, NULL, true, &r);
  CHECK_INT_EQ(r.status, 200);
  CHECK(r.chain && strstr(r.chain, p.srv.cert_pem) &&
        strstr(r.chain, p.ca.cert_pem));
  res_free(&r);

  /* a client certificate from another CA is refused by default policy */
  before = f.nreq;
  peer_call(&f, &p, &p.other_cli, &p.ca, false, &r);
  CHECK_INT_EQ(r.status, 0);
  CHECK_INT_EQ(f.nreq, before);
  res_free(&r);
  CHECK(fx_done(&f));
  pki_free(&p);
}

static void fx_header_timeout(struct fx *f, unsigned ms) {
  struct http_limits l;
  http_limits_default(&l);
  l.header_timeout_ms = ms;
  http_server_set_limits(f->srv, &l);
}

/* Connections queued at once on a TLS listener are taken a slice per
 * loop turn, and none is lost: each one's handshake times out (so the
 * server took it) and the connection is closed. */
TEST(http_tls_accepts_are_paced_and_all_taken) {
  struct pki p;
  pki_make(&p);
  struct fx f;
  fx_init(&f);
  fx_header_timeout(&f, 200);
  CHECK(listen_tls(&f, &p.srv, &p.ca, PEER_OPTIONAL) > 0);
  enum { N = 48 };
  int fds[N];
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)f.port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  for (int i = 0; i < N; i++) {
    fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fds[i] >= 0 &&
          connect(fds[i], (struct sockaddr *)&sa, sizeof sa) == 0);
    fcntl(fds[i], F_SETFL, O_NONBLOCK);
  }
  int closed = 0;
  bool seen[N] = {false};
  uv_update_time(&f.loop);
  uint64_t end = uv_now(&f.loop) + 5000;
  while (closed < N && uv_now(&f.loop) < end) {
    uv_run(&f.loop, UV_RUN_ONCE);
    uv_update_time(&f.loop);
    for (int i = 0; i < N; i++) {
      char b[16];
      if (!seen[i] && recv(fds[i], b, sizeof b, 0) == 0) {
        seen[i] = true;
        closed++;
      }
    }
  }
  for (int i = 0; i < N; i++)
    close(fds[i]);
  CHECK_INT_EQ(closed, N);
  /* 48 at 16 a turn: held back at least twice. */
  CHECK(http_server_tls_paced(f.srv) >= 2);
  CHECK(fx_done(&f));
  pki_free(&p);
}

TEST(http_tls_foreign_and_required) {
  struct pki p;
  pki_make(&p);
  struct fx f;
  fx_init(&f);
  /* a context that lets unverified certificates through: not verified */
  CHECK(listen_tls(&f, &p.srv, &p.ca, PEER_OPTIONAL_ACCEPT_UNTRUSTED) > 0);
  struct res r;
  peer_call(&f, &p, &p.other_cli, &p.ca, false, &r);
  CHECK_INT_EQ(r.status, 200);
  CHECK_STR_EQ(r.body, "verified=0 cn= ou= o=");
  res_free(&r);
  peer_call(&f, &p, &p.cli, &p.ca, false, &r);
  CHECK_INT_EQ(r.status, 200);
  CHECK_STR_EQ(r.body, "verified=1 cn=node2 ou=swarm-worker o=cluster1");
  res_free(&r);

  /* second listener requiring a client certificate */
  CHECK(listen_tls(&f, &p.srv, &p.ca, PEER_REQUIRED) > 0);
  int before = f.nreq;
  peer_call(&f, &p, NULL, &p.ca, false, &r);
  CHECK_INT_EQ(r.status, 0);
  res_free(&r);
  peer_call(&f, &p, &p.other_cli, &p.ca, false, &r);
  CHECK_INT_EQ(r.status, 0);
  res_free(&r);
  CHECK_INT_EQ(f.nreq, before);
  peer_call(&f, &p, &p.cli, &p.ca, false, &r);
  CHECK_INT_EQ(r.status, 200);
  CHECK_STR_EQ(r.body, "verified=1 cn=node2 ou=swarm-worker o=cluster1");
  res_free(&r);

  /* renewal: new connections get the new certificate */
  struct tcert renewed;
  make_cert(&renewed, "node1", "swarm-manager", "cluster1", &p.ca);
  SSL_CTX *next = server_ctx(&renewed, &p.ca, PEER_REQUIRED);
  http_server_set_tls(f.srv, next);
  SSL_CTX_free(next);
  peer_call(&f, &p, &p.cli, NULL, true, &r);
  CHECK_INT_EQ(r.status, 200);
  CHECK(r.chain && strstr(r.chain, renewed.cert_pem));
  res_free(&r);
  tcert_free(&renewed);

  /* garbage on a TLS listener */
  for (int i = 0; i < 50; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)f.port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    char junk[200];
    size_t n = rnd() % sizeof junk;
    for (size_t k = 0; k < n; k++)
      junk[k] = (char)rnd();
    if (i % 2) { /* looks like a TLS record header */
      junk[0] = 0x16;
      junk[1] = 0x03;
      junk[2] = 0x01;
    }
    raw_send(fd, junk, n);
    shutdown(fd, SHUT_WR);
    bool eof;
    cleanup_free char *resp = raw_read(&f, fd, 0, 3000, &eof);
    close(fd);
    CHECK(eof);
    CHECK(!str_has_prefix(resp, "HTTP/")); /* never plaintext on TLS */
  }
  peer_call(&f, &p, &p.cli, &p.ca, false, &r);
  CHECK_INT_EQ(r.status, 200);
  res_free(&r);
  CHECK(fx_done(&f));
  pki_free(&p);
}

/* Clients of the swarm port talk to managers only: a worker's certificate
 * (or another cluster's manager) on a server gets no request, with or
 * without a client certificate; the join (no client certificate yet)
 * accepts any manager of the pinned CA. */
TEST(http_tls_client_requires_manager_server) {
  struct pki p;
  pki_make(&p);
  struct tcert other_cluster;
  make_cert(&other_cluster, "node9", "swarm-manager", "cluster2", &p.ca);
  struct fx f;
  fx_init(&f);
  CHECK(listen_tls(&f, &p.cli, &p.ca, PEER_OPTIONAL) > 0);
  struct res r;
  int before = f.nreq;
  peer_call(&f, &p, NULL, &p.ca, false, &r);
  CHECK_INT_EQ(r.status, 0);
  CHECK(r.error && strstr(r.error, "not a manager of this swarm"));
  res_free(&r);
  peer_call(&f, &p, &p.cli, &p.ca, false, &r);
  CHECK_INT_EQ(r.status, 0);
  res_free(&r);
  CHECK_INT_EQ(f.nreq, before);

  SSL_CTX *other = server_ctx(&other_cluster, &p.ca, PEER_OPTIONAL);
  http_server_set_tls(f.srv, other);
  SSL_CTX_free(other);
  peer_call(&f, &p, &p.cli, &p.ca, false, &r);
  CHECK_INT_EQ(r.status, 0);
  res_free(&r);
  CHECK_INT_EQ(f.nreq, before);
  peer_call(&f, &p, NULL, &p.ca, false, &r);
  CHECK_INT_EQ(r.status, 200);
  res_free(&r);
  CHECK(fx_done(&f));
  tcert_free(&other_cluster);
  pki_free(&p);
}

struct pumped {
  sh_buf got;
  int closed;
};

static void pumped_to_net(void *ud, const char *data, size_t len) {
  buf_append(&((struct pumped *)ud)->got, data, len);
}

static void pumped_closed(void *ud) {
  ((struct pumped *)ud)->closed++;
}

/* raft's leader pumps its bridges from a check callback so a heartbeat
 * leaves before the next turn's timers: what the owner wrote reaches
 * to_net at once, in order with what the loop reads later. */
TEST(bridge_pump_sends_what_was_written_without_a_loop_turn) {
  uv_loop_t loop, other;
  CHECK_INT_EQ(uv_loop_init(&loop), 0);
  CHECK_INT_EQ(uv_loop_init(&other), 0);
  struct pumped p = {0}, q = {0};
  struct bridge_ops ops = {pumped_to_net, pumped_closed};
  struct bridge *br, *br2;
  int fd, fd2;
  sh_err err = {0};
  CHECK_INT_EQ(bridge_new(&loop, &ops, &p, &br, &fd, &err), 0);
  CHECK_INT_EQ(bridge_new(&other, &ops, &q, &br2, &fd2, &err), 0);
  CHECK(write(fd, "heartbeat", 9) == 9);
  CHECK(write(fd2, "elsewhere", 9) == 9);
  bridge_pump_all(&loop);
  CHECK(p.got.len == 9 && memcmp(p.got.data, "heartbeat", 9) == 0);
  CHECK(q.got.len == 0); /* another loop's bridge waits for its loop */
  CHECK(write(fd, ", then more", 11) == 11);
  uv_run(&loop, UV_RUN_NOWAIT);
  CHECK(p.got.len == 20 && memcmp(p.got.data, "heartbeat, then more", 20) == 0);
  uv_run(&other, UV_RUN_NOWAIT);
  CHECK(q.got.len == 9);
  close(fd); /* the owner's end goes: the bridge says so and frees itself */
  close(fd2);
  for (int i = 0; i < 100 && (p.closed == 0 || q.closed == 0); i++) {
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_run(&other, UV_RUN_NOWAIT);
  }
  CHECK(p.closed == 1 && q.closed == 1);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_run(&other, UV_RUN_DEFAULT);
  CHECK_INT_EQ(uv_loop_close(&loop), 0);
  CHECK_INT_EQ(uv_loop_close(&other), 0);
  buf_free(&p.got);
  buf_free(&q.got);
}

TEST(http_tls_stream_and_keepalive) {
  struct pki p;
  pki_make(&p);
  struct fx f;
  fx_init(&f);
  CHECK(listen_tls(&f, &p.srv, &p.ca, PEER_REQUIRED) > 0);
  cleanup_free char *url = xasprintf("https://127.0.0.1:%d/stream", f.port);
  struct http_call_opts o = {.url = url,
                             .cert_pem = p.cli.cert_pem,
                             .key_pem = p.cli.key_pem,
                             .ca_pem = p.ca.cert_pem};
  struct stream_state s = {.f = &f};
  CHECK(http_client_call(f.cli, &o, stream_data, on_done, &s));
  CHECK(run_until(&f, &s.r.done, 10000));
  CHECK_INT_EQ(s.r.status, 200);
  CHECK_STR_EQ(s.got.data, "c0c1c2c3c4");
  void *first = f.conn;
  res_free(&s.r);
  struct res r;
  buf_free(&s.got);
  cleanup_free char *url2 = xasprintf("https://127.0.0.1:%d/echo", f.port);
  o.url = url2;
  o.method = "POST";
  o.body = "over tls";
  o.body_len = 8;
  CHECK(call(&f, &o, &r));
  CHECK_STR_EQ(r.body, "POST /echo over tls");
  CHECK(first == f.conn);
  res_free(&r);
  CHECK(fx_done(&f));
  pki_free(&p);
}

/* done callbacks that start, cancel, and close */
struct chain {
  struct fx *f;
  struct res first, second, third;
  struct http_call *victim;
  struct http_call_opts next;
};

static void chain_second_done(const struct http_result *hr, void *ud) {
  struct chain *ch = ud;
  on_done(hr, &ch->second);
  http_client_close(ch->f->cli); /* the held call is aborted with status 0 */
  ch->f->cli = NULL;
}

static void chain_first_done(const struct http_result *hr, void *ud) {
  struct chain *ch = ud;
  on_done(hr, &ch->first);
  http_call_cancel(ch->victim);
  if (!http_client_call(ch->f->cli, &ch->next, NULL, chain_second_done, ch))
    ch->second.done = true; /* fails the status check below */
}

TEST(http_client_reentrant_done) {
  struct fx f;
  fx_init(&f);
  f.hold_on_close = true;
  CHECK(fx_listen_tcp(&f, NULL) > 0);
  cleanup_free char *echo = xasprintf("http://127.0.0.1:%d/echo", f.port);
  cleanup_free char *hold = xasprintf("http://127.0.0.1:%d/hold", f.port);
  cleanup_free char *json = xasprintf("http://127.0.0.1:%d/json", f.port);
  struct chain ch = {.f = &f};
  ch.next = (struct http_call_opts){.url = json};
  struct http_call_opts oh = {.url = hold}, oe = {.url = echo};
  /* victim: cancelled by the first done, never reports */
  struct res victim = {0};
  ch.victim = http_client_call(f.cli, &oh, NULL, on_done, &victim);
  CHECK(ch.victim);
  for (int i = 0; i < 500 && !f.held; i++)
    run_for(&f, 10);
  CHECK(f.held);
  /* third: still held when the client closes */
  f.held = NULL;
  CHECK(http_client_call(f.cli, &oh, NULL, on_done, &ch.third));
  for (int i = 0; i < 500 && !f.held; i++)
    run_for(&f, 10);
  CHECK(f.held);
  CHECK(http_client_call(f.cli, &oe, NULL, chain_first_done, &ch));
  CHECK(run_until(&f, &ch.second.done, 5000));
  CHECK_INT_EQ(ch.first.status, 200);
  CHECK_INT_EQ(ch.second.status, 201);
  CHECK(!victim.done);
  CHECK(ch.third.done);
  CHECK_INT_EQ(ch.third.status, 0);
  res_free(&ch.first);
  res_free(&ch.second);
  res_free(&ch.third);
  run_for(&f, 50); /* both held requests see their peers go */
  CHECK(f.held == NULL);
  CHECK(fx_done(&f));
}

/* ---- the client's connections ---- */

/* A scripted HTTP/1.1 server on raw libuv streams: it counts the
 * connections and requests the client makes, and misbehaves on cue. The
 * body of each answer names its connection and request: "c2r1" is the
 * first request on the second connection. */
enum raw_mode {
  RAW_KEEP,        /* answers every request; connections stay */
  RAW_DROP_SECOND, /* closes a connection on its second request, unread */
  RAW_DROP_LATER,  /* answers the first request only; closes on others */
  RAW_CLOSE_AFTER, /* answers (keep-alive), then closes the connection */
  RAW_CHUNKED,     /* chunked answers, with an extension and a trailer */
  RAW_TO_EOF,      /* no length: the body ends with the connection */
  RAW_SILENT,      /* accepts and reads, never answers */
};

struct raw_conn;
struct raw_srv {
  uv_tcp_t tcp;
  enum raw_mode mode;
  int port, accepted, requests;
  char last_body[64];
  struct raw_conn *conns;
};

struct raw_conn {
  uv_tcp_t tcp;
  uv_shutdown_t sd;
  struct raw_srv *s;
  struct raw_conn *next;
  sh_buf in;
  int no, served;
  bool closing;
};

static void raw_conn_closed(uv_handle_t *h) {
  struct raw_conn *rc = h->data;
  for (struct raw_conn **pp = &rc->s->conns; *pp; pp = &(*pp)->next)
    if (*pp == rc) {
      *pp = rc->next;
      break;
    }
  buf_free(&rc->in);
  free(rc);
}

static void raw_conn_close(struct raw_conn *rc) {
  if (rc->closing)
    return;
  rc->closing = true;
  uv_close((uv_handle_t *)&rc->tcp, raw_conn_closed);
}

static void raw_shut(uv_shutdown_t *sd, int status) {
  (void)status;
  raw_conn_close(sd->data);
}

static void raw_written(uv_write_t *w, int status) {
  (void)status;
  free(w->data);
  free(w);
}

static void raw_write(struct raw_conn *rc, char *text) {
  uv_write_t *w = xmalloc(sizeof *w);
  w->data = text;
  uv_buf_t b = uv_buf_init(text, (unsigned)strlen(text));
  if (uv_write(w, (uv_stream_t *)&rc->tcp, &b, 1, raw_written) < 0)
    raw_written(w, -1);
}

/* One complete request (head, Content-Length body) was read. */
static void raw_answer(struct raw_conn *rc) {
  struct raw_srv *s = rc->s;
  s->requests++;
  int nth = ++rc->served;
  if ((s->mode == RAW_DROP_SECOND && nth == 2) ||
      (s->mode == RAW_DROP_LATER && s->requests > 1)) {
    raw_conn_close(rc);
    return;
  }
  if (s->mode == RAW_SILENT)
    return;
  char body[32];
  snprintf(body, sizeof body, "c%dr%d", rc->no, nth);
  switch (s->mode) {
  case RAW_CHUNKED:
    raw_write(rc, xasprintf("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                            "\r\n%zx;ext=1\r\n%s\r\n3\r\n-ab\r\n0\r\n"
                            "X-Trailer: t\r\n\r\n",
                            strlen(body), body));
    break;
  case RAW_TO_EOF:
    raw_write(rc, xasprintf("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                            "\r\n%s",
                            body));
    rc->sd.data = rc;
    uv_shutdown(&rc->sd, (uv_stream_t *)&rc->tcp, raw_shut);
    break;
  default:
    raw_write(rc, xasprintf("HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s",
                            strlen(body), body));
    if (s->mode == RAW_CLOSE_AFTER) {
      rc->sd.data = rc;
      uv_shutdown(&rc->sd, (uv_stream_t *)&rc->tcp, raw_shut);
    }
  }
}

static void raw_alloc(uv_handle_t *h, size_t n, uv_buf_t *b) {
  (void)h;
  *b = uv_buf_init(xmalloc(n), (unsigned)n);
}

static void raw_read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  struct raw_conn *rc = st->data;
  if (n > 0 && !rc->closing)
    buf_append(&rc->in, b->base, (size_t)n);
  free(b->base);
  if (n < 0) {
    raw_conn_close(rc);
    return;
  }
  char *end;
  while (!rc->closing && rc->in.data &&
         (end = strstr(rc->in.data, "\r\n\r\n")) != NULL) {
    size_t head = (size_t)(end - rc->in.data) + 4, body = 0;
    const char *cl = strcasestr(rc->in.data, "\r\nContent-Length:");
    if (cl && cl < end)
      body = strtoul(cl + 17, NULL, 10);
    if (rc->in.len < head + body)
      break;
    snprintf(rc->s->last_body, sizeof rc->s->last_body, "%.*s", (int)body,
             rc->in.data + head);
    memmove(rc->in.data, rc->in.data + head + body,
            rc->in.len - head - body + 1);
    rc->in.len -= head + body;
    raw_answer(rc);
  }
}

static void raw_accept(uv_stream_t *server, int status) {
  struct raw_srv *s = server->data;
  if (status < 0)
    return;
  struct raw_conn *rc = xcalloc(1, sizeof *rc);
  rc->s = s;
  uv_tcp_init(server->loop, &rc->tcp);
  rc->tcp.data = rc;
  rc->next = s->conns;
  s->conns = rc;
  if (uv_accept(server, (uv_stream_t *)&rc->tcp) < 0) {
    raw_conn_close(rc);
    return;
  }
  rc->no = ++s->accepted;
  uv_read_start((uv_stream_t *)&rc->tcp, raw_alloc, raw_read_cb);
}

static int raw_srv_start(struct fx *f, struct raw_srv *s, enum raw_mode mode) {
  memset(s, 0, sizeof *s);
  s->mode = mode;
  uv_tcp_init(&f->loop, &s->tcp);
  s->tcp.data = s;
  struct sockaddr_in sa;
  uv_ip4_addr("127.0.0.1", 0, &sa);
  if (uv_tcp_bind(&s->tcp, (struct sockaddr *)&sa, 0) < 0 ||
      uv_listen((uv_stream_t *)&s->tcp, 64, raw_accept) < 0)
    return -1;
  int len = sizeof sa;
  uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&sa, &len);
  s->port = ntohs(sa.sin_port);
  return s->port;
}

static void raw_srv_stop(struct raw_srv *s) {
  for (struct raw_conn *rc = s->conns; rc; rc = rc->next)
    raw_conn_close(rc);
  uv_close((uv_handle_t *)&s->tcp, NULL);
}

static char *raw_url(const struct raw_srv *s, const char *path) {
  return xasprintf("http://127.0.0.1:%d%s", s->port, path);
}

/* The scripted server saw that many connections and requests. */
static bool served(const struct raw_srv *s, int accepted, int requests) {
  if (s->accepted == accepted && s->requests == requests)
    return true;
  fprintf(stderr, "    server: %d connections, %d requests; wanted %d, %d\n",
          s->accepted, s->requests, accepted, requests);
  return false;
}

/* A loop and a scripted server: the URL of its "/a", or NULL. */
static char *raw_begin(struct fx *f, struct raw_srv *s, enum raw_mode mode) {
  fx_init(f);
  return raw_srv_start(f, s, mode) > 0 ? raw_url(s, "/a") : NULL;
}

/* Stops the server; true when the loop ended clean (fx_done). */
static bool raw_end(struct fx *f, struct raw_srv *s) {
  raw_srv_stop(s);
  return fx_done(f);
}

/* Keep-alive: calls one after the other share one TCP connection; calls
 * at the same time get one each, and both are kept. */
TEST(http_client_reuses_connections) {
  struct fx f;
  struct raw_srv s;
  cleanup_free char *url = raw_begin(&f, &s, RAW_KEEP);
  CHECK(url);
  struct http_call_opts o = {.url = url};
  struct res r;
  const char *want[] = {"c1r1", "c1r2", "c1r3"};
  for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
    CHECK(call(&f, &o, &r));
    CHECK_INT_EQ(r.status, 200);
    CHECK_STR_EQ(r.body, want[i]);
    res_free(&r);
  }
  CHECK_INT_EQ(s.accepted, 1);

  struct res r1 = {0}, r2 = {0};
  CHECK(http_client_call(f.cli, &o, NULL, on_done, &r1));
  CHECK(http_client_call(f.cli, &o, NULL, on_done, &r2));
  CHECK(run_until(&f, &r1.done, 5000) && run_until(&f, &r2.done, 5000));
  CHECK_INT_EQ(s.accepted, 2);
  /* one on the kept connection, one on a new one */
  CHECK((strcmp(r1.body, "c1r4") == 0 && strcmp(r2.body, "c2r1") == 0) ||
        (strcmp(r1.body, "c2r1") == 0 && strcmp(r2.body, "c1r4") == 0));
  res_free(&r1);
  res_free(&r2);
  for (int i = 0; i < 4; i++) {
    CHECK(call_is(&f, &o, 200));
  }
  CHECK(served(&s, 2, 9));
  CHECK(raw_end(&f, &s));
}

/* The server closes a kept connection just as the next request goes out:
 * the call goes once more on a new connection, body and all, and the
 * caller sees one answer. Only once; and a new connection that the
 * server closes is a failure, not a retry. */
TEST(http_client_retries_once_after_server_closed_kept_connection) {
  struct fx f;
  struct raw_srv s;
  cleanup_free char *url = raw_begin(&f, &s, RAW_DROP_SECOND);
  CHECK(url);
  struct http_call_opts o = {
      .method = "POST", .url = url, .body = "one", .body_len = 3};
  struct res r;
  CHECK(call(&f, &o, &r));
  CHECK_STR_EQ(r.body, "c1r1");
  res_free(&r);
  o.body = "two";
  CHECK(call(&f, &o, &r));
  CHECK_INT_EQ(r.status, 200);
  CHECK(r.error == NULL);
  CHECK_STR_EQ(r.body, "c2r1");
  CHECK_STR_EQ(s.last_body, "two");
  res_free(&r);
  CHECK(served(&s, 2, 3));

  /* Closed on the kept connection and on the new one: one retry, then
   * the failure. */
  s.mode = RAW_DROP_LATER;
  CHECK(call(&f, &o, &r));
  CHECK_INT_EQ(r.status, 0);
  CHECK(r.error && strstr(r.error, "closed the connection"));
  res_free(&r);
  CHECK(served(&s, 3, 5));

  /* Nothing kept now: a new connection closed is not retried. */
  CHECK(call_is(&f, &o, 0));
  CHECK(served(&s, 4, 6));
  CHECK(raw_end(&f, &s));
}

/* A kept connection the server closed while idle is dropped, and the
 * next call works on a new one. */
TEST(http_client_drops_connection_server_closed_while_idle) {
  struct fx f;
  struct raw_srv s;
  cleanup_free char *url = raw_begin(&f, &s, RAW_CLOSE_AFTER);
  CHECK(url);
  struct http_call_opts o = {.url = url};
  struct res r;
  CHECK(call(&f, &o, &r));
  CHECK_STR_EQ(r.body, "c1r1");
  res_free(&r);
  run_for(&f, 50);
  CHECK(s.conns == NULL); /* the server's end is gone */
  CHECK(call(&f, &o, &r));
  CHECK_INT_EQ(r.status, 200);
  CHECK_STR_EQ(r.body, "c2r1");
  res_free(&r);
  CHECK_INT_EQ(s.requests, 2);
  CHECK(raw_end(&f, &s));
}

static bool collect(const char *data, size_t len, void *ud) {
  struct stream_state *st = ud;
  buf_append(&st->got, data, len);
  st->pieces++;
  return true;
}

/* Chunked answers (an extension, a trailer) buffered and streamed, the
 * connection kept after them; an answer without a length ends with the
 * connection. */
TEST(http_client_chunked_and_unframed_answers) {
  struct fx f;
  struct raw_srv s;
  cleanup_free char *url = raw_begin(&f, &s, RAW_CHUNKED);
  CHECK(url);
  struct http_call_opts o = {.url = url};
  struct res r;
  CHECK(call(&f, &o, &r));
  CHECK_INT_EQ(r.status, 200);
  CHECK_STR_EQ(r.body, "c1r1-ab");
  CHECK_INT_EQ(r.body_len, 7);
  res_free(&r);
  struct stream_state st = {.f = &f};
  CHECK(http_client_call(f.cli, &o, collect, on_done, &st));
  CHECK(run_until(&f, &st.r.done, 5000));
  CHECK_INT_EQ(st.r.status, 200);
  CHECK_STR_EQ(st.got.data, "c1r2-ab");
  CHECK_INT_EQ(st.r.body_len, 0);
  res_free(&st.r);
  buf_free(&st.got);
  CHECK_INT_EQ(s.accepted, 1);

  s.mode = RAW_TO_EOF;
  CHECK(call(&f, &o, &r));
  CHECK_INT_EQ(r.status, 200);
  CHECK_STR_EQ(r.body, "c1r3");
  res_free(&r);
  CHECK(call(&f, &o, &r)); /* that connection is gone: a new one */
  CHECK_STR_EQ(r.body, "c2r1");
  res_free(&r);
  CHECK(raw_end(&f, &s));
}

/* The whole-call timeout ends a call the server never answers, on time;
 * the connect timeout ends one whose TLS handshake never comes. */
TEST(http_client_call_and_connect_timeouts) {
  struct fx f;
  struct raw_srv s;
  cleanup_free char *url = raw_begin(&f, &s, RAW_SILENT);
  CHECK(url);
  struct http_call_opts o = {.url = url, .timeout_ms = 150};
  struct res r;
  uv_update_time(&f.loop);
  uint64_t t0 = uv_now(&f.loop);
  CHECK(call(&f, &o, &r));
  uint64_t took = uv_now(&f.loop) - t0;
  CHECK_INT_EQ(r.status, 0);
  CHECK(r.error && strstr(r.error, "timed out"));
  CHECK(took >= 140 && took < 1000);
  res_free(&r);
  run_for(&f, 50);
  CHECK(s.conns == NULL); /* the connection went with the call */

  /* TLS to a server that never speaks: the connect timeout */
  cleanup_free char *tls = xasprintf("https://127.0.0.1:%d/a", s.port);
  struct http_call_opts ot = {
      .url = tls, .insecure = true, .connect_timeout_ms = 150};
  uv_update_time(&f.loop);
  t0 = uv_now(&f.loop);
  CHECK(call(&f, &ot, &r));
  took = uv_now(&f.loop) - t0;
  CHECK_INT_EQ(r.status, 0);
  CHECK(r.error && strstr(r.error, "timed out"));
  CHECK(took >= 140 && took < 1000);
  res_free(&r);
  CHECK(raw_end(&f, &s));
}

/* Callbacks that cancel, start and close: on_data cancels its own call,
 * another call, and starts a third; then on_data closes the client with
 * a call outstanding. */
struct juggle {
  struct fx *f;
  struct http_call *self, *other;
  struct http_call_opts next;
  struct res next_res, other_res, self_res;
  bool close_client;
  int pieces;
};

static bool juggle_data(const char *data, size_t len, void *ud) {
  (void)data;
  (void)len;
  struct juggle *j = ud;
  j->pieces++;
  if (j->close_client) {
    http_client_close(j->f->cli);
    j->f->cli = NULL;
    return true;
  }
  http_call_cancel(j->self);
  http_call_cancel(j->self); /* twice is harmless */
  http_call_cancel(j->other);
  if (!http_client_call(j->f->cli, &j->next, NULL, on_done, &j->next_res))
    j->next_res.done = true; /* fails the status check below */
  return true;
}

static void juggle_done(const struct http_result *hr, void *ud) {
  struct juggle *j = ud;
  on_done(hr, &j->self_res);
}

TEST(http_client_cancel_and_close_inside_on_data) {
  struct fx f;
  fx_init(&f);
  f.hold_on_close = true;
  CHECK(fx_listen_tcp(&f, NULL) > 0);
  cleanup_free char *stream = xasprintf("http://127.0.0.1:%d/stream", f.port);
  cleanup_free char *hold = xasprintf("http://127.0.0.1:%d/hold", f.port);
  cleanup_free char *json = xasprintf("http://127.0.0.1:%d/json", f.port);
  struct juggle j = {.f = &f};
  j.next = (struct http_call_opts){.url = json};
  struct http_call_opts oh = {.url = hold}, os = {.url = stream};
  j.other = http_client_call(f.cli, &oh, NULL, on_done, &j.other_res);
  CHECK(j.other);
  for (int i = 0; i < 500 && !f.held; i++)
    run_for(&f, 10);
  CHECK(f.held);
  j.self = http_client_call(f.cli, &os, juggle_data, juggle_done, &j);
  CHECK(j.self);
  CHECK(run_until(&f, &j.next_res.done, 5000));
  CHECK_INT_EQ(j.next_res.status, 201);
  CHECK_STR_EQ(j.next_res.body, "{\"Id\":\"abc\"}");
  CHECK(run_until(&f, &f.on_close_called, 5000)); /* the held one's peer */
  run_for(&f, 50);
  CHECK_INT_EQ(j.pieces, 1);
  CHECK(!j.self_res.done && !j.other_res.done);
  res_free(&j.next_res);
  if (f.stream_req) { /* the cancelled stream's request */
    http_req_release(f.stream_req);
    f.stream_req = NULL;
  }

  /* close from on_data, another call held: both told, status 0 */
  f.on_close_called = false;
  f.held = NULL;
  struct juggle k = {.f = &f, .close_client = true};
  k.other = http_client_call(f.cli, &oh, NULL, on_done, &k.other_res);
  for (int i = 0; i < 500 && !f.held; i++)
    run_for(&f, 10);
  CHECK(f.held);
  k.self = http_client_call(f.cli, &os, juggle_data, juggle_done, &k);
  CHECK(run_until(&f, &k.self_res.done, 5000));
  CHECK(f.cli == NULL);
  CHECK_INT_EQ(k.self_res.status, 0);
  CHECK_STR_EQ(k.self_res.error, "client closed");
  CHECK(k.other_res.done);
  CHECK_INT_EQ(k.other_res.status, 0);
  CHECK_INT_EQ(k.pieces, 1);
  res_free(&k.self_res);
  res_free(&k.other_res);
  CHECK(run_until(&f, &f.on_close_called, 5000));
  if (f.stream_req) {
    http_req_release(f.stream_req);
    f.stream_req = NULL;
  }
  CHECK(fx_done(&f));
}

/* Closing the client with calls in every state: answered later, mid-TLS
 * handshake, held by the server, failed inside http_client_call. Each
 * done runs once, at the close, with status 0; nothing leaks. */
TEST(http_client_close_with_calls_in_every_state) {
  struct fx f;
  struct raw_srv s;
  cleanup_free char *plain = raw_begin(&f, &s, RAW_SILENT);
  CHECK(plain);
  cleanup_free char *tls = xasprintf("https://127.0.0.1:%d/a", s.port);
  struct http_call_opts o1 = {.url = plain};
  struct http_call_opts o2 = {.url = tls, .insecure = true};
  struct http_call_opts o3 = {.url = "ftp://127.0.0.1/"};
  struct http_call_opts o4 = {.url = "http://[::1/"};
  struct res r[4] = {{0}};
  CHECK(http_client_call(f.cli, &o1, NULL, on_done, &r[0]));
  CHECK(http_client_call(f.cli, &o2, NULL, on_done, &r[1]));
  CHECK(http_client_call(f.cli, &o3, NULL, on_done, &r[2]));
  CHECK(http_client_call(f.cli, &o4, NULL, on_done, &r[3]));
  for (int i = 0; i < 4; i++)
    CHECK(!r[i].done); /* never from inside http_client_call */
  for (int i = 0; i < 200 && s.requests < 1; i++)
    run_for(&f, 5);
  CHECK_INT_EQ(s.requests, 1);
  CHECK_INT_EQ(s.accepted, 2);
  http_client_close(f.cli);
  f.cli = NULL;
  for (int i = 0; i < 4; i++) {
    CHECK(r[i].done);
    CHECK_INT_EQ(r[i].status, 0);
    CHECK(r[i].error != NULL);
    res_free(&r[i]);
  }
  run_for(&f, 50);
  CHECK(s.conns == NULL);
  CHECK(raw_end(&f, &s));
}

/* Bad URLs and options fail through done, from the next loop turn. */
TEST(http_client_bad_options_fail_later) {
  struct fx f;
  fx_init(&f);
  const char *bad[] = {"ftp://127.0.0.1/", "http://", "127.0.0.1:80/x",
                       "http://u:p@127.0.0.1:1/", "http://127.0.0.1:0/"};
  for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
    struct http_call_opts o = {.url = bad[i]};
    struct res r = {0};
    CHECK(http_client_call(f.cli, &o, NULL, on_done, &r));
    CHECK(!r.done);
    CHECK(run_until(&f, &r.done, 1000));
    CHECK_INT_EQ(r.status, 0);
    CHECK(r.error && *r.error);
    res_free(&r);
  }
  /* a certificate without its key; a root CA that is not PEM */
  struct pki p;
  pki_make(&p);
  struct http_call_opts o = {.url = "https://127.0.0.1:1/",
                             .cert_pem = p.cli.cert_pem};
  struct res r = {0};
  CHECK(http_client_call(f.cli, &o, NULL, on_done, &r));
  CHECK(run_until(&f, &r.done, 1000));
  CHECK_INT_EQ(r.status, 0);
  CHECK(r.error && strstr(r.error, "key"));
  res_free(&r);
  o = (struct http_call_opts){.url = "https://127.0.0.1:1/", .ca_pem = "x"};
  CHECK(http_client_call(f.cli, &o, NULL, on_done, &r));
  CHECK(run_until(&f, &r.done, 1000));
  CHECK_INT_EQ(r.status, 0);
  CHECK(r.error && strstr(r.error, "root CA"));
  res_free(&r);
  /* cancelled before it could report: done never runs */
  struct http_call_opts ob = {.url = "ftp://x/"};
  struct http_call *c = http_client_call(f.cli, &ob, NULL, on_done, &r);
  http_call_cancel(c);
  run_for(&f, 30);
  CHECK(!r.done);
  CHECK(fx_done(&f));
  pki_free(&p);
}

/* Extra header lines: one line each, never the framing headers; an empty
 * value sends nothing; Content-Type given as a header replaces ours. */
TEST(http_client_extra_headers) {
  struct fx f;
  fx_init(&f);
  CHECK_INT_EQ(fx_listen_unix(&f), 0);
  cleanup_free char *url = unix_url("/echo");
  const char *hdrs[] = {"X-Test: 1",
                        "X-Evil: a\r\nX-Test: 2",
                        "Content-Length: 99",
                        "Host: elsewhere",
                        "Content-Type: text/x",
                        "X-Empty:",
                        NULL};
  struct http_call_opts o = {.url = url,
                             .unix_socket = f.sock,
                             .method = "POST",
                             .body = "abc",
                             .body_len = 3,
                             .headers = hdrs};
  struct res r;
  CHECK(call(&f, &o, &r));
  CHECK_INT_EQ(r.status, 200);
  CHECK_STR_EQ(r.body, "POST /echo abc");
  CHECK_STR_EQ(f.xtest, "1");
  CHECK_STR_EQ(f.ctype, "text/x");
  res_free(&r);
  /* a host name, resolved (whatever order its addresses come in) */
  CHECK(fx_listen_tcp(&f, NULL) > 0);
  cleanup_free char *named = xasprintf("http://localhost:%d/echo", f.port);
  struct http_call_opts on = {.url = named};
  CHECK(call(&f, &on, &r));
  CHECK_INT_EQ(r.status, 200);
  CHECK_STR_EQ(r.body, "GET /echo ");
  res_free(&r);
  CHECK(fx_done(&f));
}

/* A fixture, its PKI and a server context that resumes sessions with
 * client certificates: as ca_tls_server_ctx, it needs a session ID
 * context for that. */
static SSL_CTX *fx_resuming_tls(struct fx *f, struct pki *p) {
  pki_make(p);
  fx_init(f);
  SSL_CTX *ctx = server_ctx(&p->srv, &p->ca, PEER_OPTIONAL);
  SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"t", 1);
  return ctx;
}

/* TLS connections: verified calls with one identity share a connection;
 * insecure calls (a joining node checks their chain) always make their
 * own and never take a verified one; a new connection to a known server
 * resumes the TLS session. */
TEST(http_client_tls_reuse_insecure_and_resumption) {
  struct pki p;
  struct fx f;
  SSL_CTX *ctx = fx_resuming_tls(&f, &p);
  CHECK(fx_listen_tcp(&f, ctx) > 0);
  /* The server drops connections idle for 300 ms (see below). */
  struct http_limits l;
  http_limits_default(&l);
  l.idle_timeout_ms = 300;
  http_server_set_limits(f.srv, &l);
  struct res r;
  for (int i = 0; i < 3; i++) {
    peer_call(&f, &p, &p.cli, &p.ca, false, &r);
    CHECK_INT_EQ(r.status, 200);
    CHECK_STR_EQ(r.body, "verified=1 cn=node2 ou=swarm-worker o=cluster1");
    /* the chain comes with the call that made the connection */
    CHECK(i == 0 ? r.chain != NULL : r.chain == NULL);
    res_free(&r);
  }
  CHECK_INT_EQ(SSL_CTX_sess_accept(ctx), 1);
  for (int i = 0; i < 2; i++) {
    peer_call(&f, &p, NULL, NULL, true, &r);
    CHECK_INT_EQ(r.status, 200);
    CHECK(r.chain && strstr(r.chain, p.srv.cert_pem));
    res_free(&r);
  }
  CHECK_INT_EQ(SSL_CTX_sess_accept(ctx), 3);
  CHECK_INT_EQ(SSL_CTX_sess_hits(ctx), 0);
  peer_call(&f, &p, &p.cli, &p.ca, false, &r); /* the kept one */
  CHECK_INT_EQ(r.status, 200);
  res_free(&r);
  CHECK_INT_EQ(SSL_CTX_sess_accept(ctx), 3);

  /* The server dropped the idle one: the next connection resumes. */
  run_for(&f, 600);
  peer_call(&f, &p, &p.cli, &p.ca, false, &r);
  CHECK_INT_EQ(r.status, 200);
  CHECK_STR_EQ(r.body, "verified=1 cn=node2 ou=swarm-worker o=cluster1");
  res_free(&r);
  CHECK_INT_EQ(SSL_CTX_sess_accept(ctx), 4);
  CHECK_INT_EQ(SSL_CTX_sess_hits(ctx), 1);
  CHECK(fx_done(&f));
  SSL_CTX_free(ctx);
  pki_free(&p);
}

/* Lanes: calls on two lanes never share a connection, each lane keeps its
 * own, and a lane's first connection resumes the session another lane's
 * handshake got (the server still sees the client's certificate). */
TEST(http_client_lanes_keep_apart_and_resume) {
  struct pki p;
  struct fx f;
  SSL_CTX *ctx = fx_resuming_tls(&f, &p);
  CHECK(fx_listen_tcp(&f, ctx) > 0);
  cleanup_free char *url = xasprintf("https://127.0.0.1:%d/peer", f.port);
  struct res r;
  const unsigned lanes[] = {0, 1, 0, 1, 1, 0};
  const int accepts[] = {1, 2, 2, 2, 2, 2};
  for (size_t i = 0; i < sizeof lanes / sizeof *lanes; i++) {
    struct http_call_opts o = {.url = url,
                               .cert_pem = p.cli.cert_pem,
                               .key_pem = p.cli.key_pem,
                               .ca_pem = p.ca.cert_pem,
                               .lane = lanes[i]};
    CHECK(call(&f, &o, &r));
    CHECK_INT_EQ(r.status, 200);
    CHECK_STR_EQ(r.body, "verified=1 cn=node2 ou=swarm-worker o=cluster1");
    res_free(&r);
    CHECK_INT_EQ(SSL_CTX_sess_accept(ctx), accepts[i]);
  }
  CHECK_INT_EQ(SSL_CTX_sess_hits(ctx), 1); /* lane 1's first, resumed */
  CHECK(fx_done(&f));
  SSL_CTX_free(ctx);
  pki_free(&p);
}

/* ---- a TCP relay that can put bytes of its own toward the client ---- */

struct relay_side {
  uv_tcp_t tcp;
  struct relay *r;
  struct relay_side *other;
};

struct relay {
  uv_tcp_t lis;
  uv_connect_t conn_req;
  struct relay_side down, up; /* one relayed connection: client, server */
  int port, backend, accepted;
  bool up_ready;
  sh_buf pending; /* client bytes before the server side connected */
};

static void relay_written(uv_write_t *w, int status) {
  (void)status;
  free(w->data);
  free(w);
}

static void relay_send(struct relay_side *to, const void *data, size_t len) {
  uv_write_t *w = xmalloc(sizeof *w);
  w->data = xmalloc(len);
  memcpy(w->data, data, len);
  uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
  if (uv_write(w, (uv_stream_t *)&to->tcp, &b, 1, relay_written) < 0)
    relay_written(w, -1);
}

static void relay_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  struct relay_side *side = st->data;
  struct relay *r = side->r;
  if (n > 0) {
    if (side == &r->down && !r->up_ready)
      buf_append(&r->pending, b->base, (size_t)n);
    else
      relay_send(side->other, b->base, (size_t)n);
  } else if (n < 0) {
    uv_read_stop(st);
  }
  free(b->base);
}

static void relay_up_connected(uv_connect_t *req, int status) {
  struct relay *r = req->data;
  if (status < 0)
    return;
  r->up_ready = true;
  if (r->pending.len)
    relay_send(&r->up, r->pending.data, r->pending.len);
  buf_free(&r->pending);
  uv_read_start((uv_stream_t *)&r->up.tcp, raw_alloc, relay_read);
}

static void relay_accept(uv_stream_t *server, int status) {
  struct relay *r = server->data;
  if (status < 0 || r->accepted++) /* one connection is all it relays */
    return;
  uv_tcp_init(server->loop, &r->down.tcp);
  uv_tcp_init(server->loop, &r->up.tcp);
  r->down = (struct relay_side){r->down.tcp, r, &r->up};
  r->up = (struct relay_side){r->up.tcp, r, &r->down};
  r->down.tcp.data = &r->down;
  r->up.tcp.data = &r->up;
  uv_accept(server, (uv_stream_t *)&r->down.tcp);
  uv_read_start((uv_stream_t *)&r->down.tcp, raw_alloc, relay_read);
  struct sockaddr_in sa;
  uv_ip4_addr("127.0.0.1", r->backend, &sa);
  r->conn_req.data = r;
  uv_tcp_connect(&r->conn_req, &r->up.tcp, (struct sockaddr *)&sa,
                 relay_up_connected);
}

static int relay_start(uv_loop_t *loop, struct relay *r, int backend) {
  memset(r, 0, sizeof *r);
  r->backend = backend;
  uv_tcp_init(loop, &r->lis);
  r->lis.data = r;
  struct sockaddr_in sa;
  uv_ip4_addr("127.0.0.1", 0, &sa);
  if (uv_tcp_bind(&r->lis, (struct sockaddr *)&sa, 0) < 0 ||
      uv_listen((uv_stream_t *)&r->lis, 8, relay_accept) < 0)
    return -1;
  int len = sizeof sa;
  uv_tcp_getsockname(&r->lis, (struct sockaddr *)&sa, &len);
  return r->port = ntohs(sa.sin_port);
}

static void relay_stop(struct relay *r) {
  if (r->accepted) {
    uv_close((uv_handle_t *)&r->down.tcp, NULL);
    uv_close((uv_handle_t *)&r->up.tcp, NULL);
  }
  uv_close((uv_handle_t *)&r->lis, NULL);
  buf_free(&r->pending);
}

/* An idle kept TLS connection that reads bytes which decrypt to nothing
 * (here the start of a record, as an on-path attacker or a split ticket
 * would give it) has no call to complete: once it did, through NULL.
 * The client goes on serving calls. */
TEST(http_client_idle_tls_connection_reading_no_answer) {
  struct pki p;
  pki_make(&p);
  struct fx f;
  fx_init(&f);
  SSL_CTX *ctx = server_ctx(&p.srv, &p.ca, PEER_OPTIONAL);
  int backend = fx_listen_tcp(&f, ctx);
  CHECK(backend > 0);
  struct relay r;
  CHECK(relay_start(&f.loop, &r, backend) > 0);
  f.port = r.port; /* the calls go through the relay */
  struct res res;
  peer_call(&f, &p, &p.cli, &p.ca, false, &res);
  CHECK_INT_EQ(res.status, 200);
  res_free(&res);
  CHECK_INT_EQ(r.accepted, 1);
  /* an application-data record header, and nothing after it */
  static const unsigned char part[] = {0x17, 0x03, 0x03};
  relay_send(&r.down, part, sizeof part);
  run_for(&f, 100);
  f.port = backend;
  peer_call(&f, &p, &p.cli, &p.ca, false, &res);
  CHECK_INT_EQ(res.status, 200);
  CHECK_STR_EQ(res.body, "verified=1 cn=node2 ou=swarm-worker o=cluster1");
  res_free(&res);
  relay_stop(&r);
  CHECK(fx_done(&f));
  SSL_CTX_free(ctx);
  pki_free(&p);
}

/* A server that cannot resume (no session ID context while it verifies
 * clients: OpenSSL fails such a handshake) still gets the call: the
 * session is dropped and the call made again with a full handshake. */
TEST(http_client_tls_session_refused_falls_back) {
  struct pki p;
  pki_make(&p);
  struct fx f;
  fx_init(&f);
  SSL_CTX *ctx = server_ctx(&p.srv, &p.ca, PEER_OPTIONAL);
  CHECK(fx_listen_tcp(&f, ctx) > 0);
  struct http_limits l;
  http_limits_default(&l);
  l.idle_timeout_ms = 200;
  http_server_set_limits(f.srv, &l);
  struct res r;
  for (int i = 0; i < 3; i++) {
    peer_call(&f, &p, &p.cli, &p.ca, false, &r);
    CHECK_INT_EQ(r.status, 200);
    CHECK_STR_EQ(r.body, "verified=1 cn=node2 ou=swarm-worker o=cluster1");
    res_free(&r);
    run_for(&f, 500); /* the server closes it */
  }
  CHECK_INT_EQ(SSL_CTX_sess_hits(ctx), 0);
  CHECK(fx_done(&f));
  SSL_CTX_free(ctx);
  pki_free(&p);
}

/* HEAD's answer says a length but has no body: the next answer on the
 * same connection is read right. */
TEST(http_client_head_then_get_on_one_connection) {
  struct fx f;
  fx_init(&f);
  CHECK_INT_EQ(fx_listen_unix(&f), 0);
  cleanup_free char *url = unix_url("/echo");
  struct http_call_opts o = {
      .url = url, .unix_socket = f.sock, .method = "HEAD"};
  struct res r;
  CHECK(call(&f, &o, &r));
  CHECK_INT_EQ(r.status, 200);
  CHECK_INT_EQ(r.body_len, 0);
  void *first = f.conn;
  res_free(&r);
  o.method = NULL;
  CHECK(call(&f, &o, &r));
  CHECK_INT_EQ(r.status, 200);
  CHECK_STR_EQ(r.body, "GET /echo ");
  CHECK(f.conn == first);
  res_free(&r);
  CHECK(fx_done(&f));
}

/* ---- endpoint limits ---- */

TEST(http_limits_parse_values) {
  struct http_limits l;
  http_limits_default(&l);
  CHECK_INT_EQ(l.max_conns, 1024);
  CHECK_INT_EQ(l.header_timeout_ms, 30000);
  CHECK_INT_EQ(l.idle_timeout_ms, 180000);
  CHECK_INT_EQ(l.max_body, HTTP_MAX_BODY);
  CHECK_INT_EQ(l.max_body_unauth, 65536);
  sh_err err = {0};
  CHECK_INT_EQ(http_limits_parse(&l,
                                 "conns=10,header=500ms,idle=2m,"
                                 "body=1m,unauth=4k",
                                 &err),
               0);
  CHECK_INT_EQ(l.max_conns, 10);
  CHECK_INT_EQ(l.header_timeout_ms, 500);
  CHECK_INT_EQ(l.idle_timeout_ms, 120000);
  CHECK_INT_EQ(l.max_body, 1u << 20);
  CHECK_INT_EQ(l.max_body_unauth, 4096);
  CHECK_INT_EQ(http_limits_parse(&l, "header=3", &err), 0);
  CHECK_INT_EQ(l.header_timeout_ms, 3000);
  CHECK_INT_EQ(http_limits_parse(&l, "", &err), 0);
  CHECK_INT_EQ(http_limits_parse(&l, NULL, &err), 0);
  /* A bad spec changes nothing. */
  const char *bad[] = {"conns",      "conns=x",   "header=5h", "body=-1",
                       "body=9999m", "idle=1s,x", "what=1",    "unauth=1kk"};
  for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
    struct http_limits before = l;
    CHECK(http_limits_parse(&l, bad[i], &err) < 0);
    CHECK(memcmp(&before, &l, sizeof l) == 0);
  }
}

/* A request head that does not complete in time is cut; a keep-alive
 * connection idle too long too; answered ones are unaffected. */
TEST(http_header_and_idle_timeouts) {
  struct fx f;
  fx_init(&f);
  struct http_limits l;
  http_limits_default(&l);
  l.header_timeout_ms = 300;
  l.idle_timeout_ms = 600;
  http_server_set_limits(f.srv, &l);
  CHECK_INT_EQ(fx_listen_unix(&f), 0);
  int slow = raw_unix(f.sock);
  raw_send(slow, "GET /x HTTP/1.1\r\nHost: x\r\n", 26);
  int idle = raw_unix(f.sock);
  raw_send(idle, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n", 28);
  bool eof;
  cleanup_free char *r1 = raw_read(&f, idle, 1, 2000, &eof);
  CHECK(str_has_prefix(r1, "HTTP/1.1 200 "));
  /* The slow head goes after about 300 ms, well before the idle one. */
  cleanup_free char *r2 = raw_read(&f, slow, 0, 450, &eof);
  CHECK(eof);
  CHECK_STR_EQ(r2, "");
  cleanup_free char *r3 = raw_read(&f, idle, 0, 100, &eof);
  CHECK(!eof);
  cleanup_free char *r4 = raw_read(&f, idle, 0, 1500, &eof);
  CHECK(eof);
  close(slow);
  close(idle);
  CHECK(fx_done(&f));
}

/* Past the cap new connections are closed at once; existing ones work. */
TEST(http_connection_cap) {
  struct fx f;
  fx_init(&f);
  struct http_limits l;
  http_limits_default(&l);
  l.max_conns = 3;
  http_server_set_limits(f.srv, &l);
  CHECK_INT_EQ(fx_listen_unix(&f), 0);
  int fds[5];
  for (int i = 0; i < 5; i++) {
    fds[i] = raw_unix(f.sock);
    run_for(&f, 20);
  }
  bool eof;
  for (int i = 3; i < 5; i++) {
    cleanup_free char *r = raw_read(&f, fds[i], 0, 500, &eof);
    CHECK(eof);
  }
  for (int i = 0; i < 3; i++) {
    raw_send(fds[i], "GET /x HTTP/1.1\r\nHost: x\r\n\r\n", 28);
    cleanup_free char *r = raw_read(&f, fds[i], 1, 2000, &eof);
    CHECK(str_has_prefix(r, "HTTP/1.1 200 "));
  }
  for (int i = 0; i < 5; i++)
    close(fds[i]);
  run_for(&f, 50);
  /* Slots come back when connections go. */
  int again = raw_unix(f.sock);
  raw_send(again, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n", 28);
  cleanup_free char *r = raw_read(&f, again, 1, 2000, &eof);
  CHECK(str_has_prefix(r, "HTTP/1.1 200 "));
  close(again);
  CHECK(fx_done(&f));
}

/* Docker's hijack (exec start, attach): 101 with the Upgrade header, a
 * plain 200 without; the client's half-close is its stdin ending, and
 * what the far end writes after it still arrives. */
TEST(http_hijack_half_close) {
  struct fx f;
  fx_init(&f);
  CHECK_INT_EQ(fx_listen_unix(&f), 0);
  for (int upgrade = 1; upgrade >= 0; upgrade--) {
    int fd = raw_unix(f.sock);
    CHECK(fd >= 0);
    const char *req = upgrade ? "POST /hijack HTTP/1.1\r\nHost: x\r\n"
                                "Connection: Upgrade\r\nUpgrade: tcp\r\n"
                                "Content-Length: 0\r\n\r\nin-the-head "
                              : "POST /hijack HTTP/1.1\r\nHost: x\r\n"
                                "Content-Length: 0\r\n\r\nin-the-head ";
    raw_send(fd, req, strlen(req));
    run_for(&f, 50);
    raw_send(fd, "and-after", 9);
    run_for(&f, 50);
    shutdown(fd, SHUT_WR);
    bool eof = false;
    cleanup_free char *got = raw_read(&f, fd, 0, 3000, &eof);
    close(fd);
    CHECK(eof);
    CHECK(str_has_prefix(got, upgrade ? "HTTP/1.1 101 " : "HTTP/1.1 200 OK"));
    CHECK(strstr(got, "Content-Type: application/vnd.docker.raw-stream\r\n"));
    CHECK(!upgrade || strstr(got, "Upgrade: tcp\r\n"));
    CHECK(!strstr(got, "Content-Length") && !strstr(got, "chunked"));
    const char *body = strstr(got, "\r\n\r\n");
    CHECK(body);
    CHECK_STR_EQ(body + 4, "got:in-the-head and-after");
  }
  CHECK(fx_done(&f));
}

/* ---- streamed request bodies ---- */

static uint32_t sum_of(const char *data, size_t len, uint32_t sum) {
  for (size_t i = 0; i < len; i++)
    sum = sum * 31 + (unsigned char)data[i];
  return sum;
}

static char *pattern(size_t n) {
  char *p = xmalloc(n);
  for (size_t i = 0; i < n; i++)
    p[i] = (char)((i * 7 + i / 4096) & 0xff);
  return p;
}

TEST(http_body_stream_length_and_chunked) {
  struct fx f;
  fx_init(&f);
  http_server_set_body_stream(f.srv, up_route, &f);
  CHECK_INT_EQ(fx_listen_unix(&f), 0);
  /* Content-Length, past the buffered limit */
  size_t n = HTTP_MAX_BODY + 3 * 1024 * 1024 + 17;
  char *big = pattern(n);
  uint32_t want = sum_of(big, n, 0);
  cleanup_free char *url = unix_url("/upload");
  struct http_call_opts o = {.url = url,
                             .unix_socket = f.sock,
                             .method = "PUT",
                             .body = big,
                             .body_len = n};
  struct res r;
  CHECK(call(&f, &o, &r));
  free(big);
  CHECK_INT_EQ(r.status, 200);
  cleanup_free char *expect = xasprintf("%zu %u", n, want);
  CHECK_STR_EQ(r.body, expect);
  CHECK(f.up_stream_seen && f.up_complete);
  res_free(&r);

  /* chunked, in odd pieces, then a pipelined request on the same
   * connection */
  int fd = raw_unix(f.sock);
  const char *head = "PUT /upload HTTP/1.1\r\nHost: x\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n";
  raw_send(fd, head, strlen(head));
  uint32_t sum = 0;
  size_t total = 0;
  for (int i = 1; i <= 40; i++) {
    size_t len = (size_t)i * 997;
    char *part = pattern(len);
    cleanup_free char *size = xasprintf("%zx\r\n", len);
    raw_send(fd, size, strlen(size));
    raw_send(fd, part, len);
    raw_send(fd, "\r\n", 2);
    sum = sum_of(part, len, sum);
    total += len;
    free(part);
    run_for(&f, 1);
  }
  const char *tail = "0\r\n\r\nGET /echo HTTP/1.1\r\nHost: x\r\n\r\n";
  raw_send(fd, tail, strlen(tail));
  bool eof;
  cleanup_free char *resp = raw_read(&f, fd, 2, 5000, &eof);
  close(fd);
  cleanup_free char *want2 = xasprintf("\r\n\r\n%zu %u", total, sum);
  CHECK(strstr(resp, want2) != NULL);
  CHECK(strstr(resp, "GET /echo") != NULL);
  CHECK(fx_done(&f));
}

TEST(http_body_stream_backpressure) {
  struct fx f;
  fx_init(&f);
  http_server_set_body_stream(f.srv, up_route, &f);
  CHECK_INT_EQ(fx_listen_unix(&f), 0);
  size_t n = 16 * 1024 * 1024;
  char *big = pattern(n);
  int fd = raw_unix(f.sock);
  cleanup_free char *head = xasprintf(
      "PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", n);
  raw_send(fd, head, strlen(head));
  /* The consumer pauses at its first chunk and stays behind: the client
   * can only fill the server's input bound and the socket buffers. */
  f.up_hold = true;
  size_t sent = 0;
  for (int i = 0; i < 2000 && sent < n; i++) {
    ssize_t k = send(fd, big + sent, n - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (k > 0)
      sent += (size_t)k;
    run_for(&f, 1);
  }
  CHECK(f.up != NULL);
  CHECK(f.up_bytes > 0);
  CHECK(sent < 4 * 1024 * 1024);
  CHECK(f.up_bytes < 2 * 1024 * 1024);
  /* caught up: the rest flows, one chunk per resume */
  for (int i = 0; i < 100000 && !f.up_end; i++) {
    if (sent < n) {
      ssize_t k = send(fd, big + sent, n - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (k > 0)
        sent += (size_t)k;
    }
    if (f.up)
      http_req_body_pause(f.up, false);
    uv_run(&f.loop, UV_RUN_NOWAIT);
  }
  bool eof;
  cleanup_free char *resp = raw_read(&f, fd, 1, 5000, &eof);
  close(fd);
  CHECK(f.up_end && f.up_complete);
  cleanup_free char *want = xasprintf("%zu %u", n, sum_of(big, n, 0));
  free(big);
  CHECK(strstr(resp, want) != NULL);
  CHECK(fx_done(&f));
}

TEST(http_body_stream_abort_reject_plain_tcp) {
  struct fx f;
  fx_init(&f);
  http_server_set_body_stream(f.srv, up_route, &f);
  CHECK_INT_EQ(fx_listen_unix(&f), 0);
  /* the client goes away mid-body: on_end(false), the server lives on */
  int fd = raw_unix(f.sock);
  const char *rq = "PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: "
                   "1000000\r\n\r\n";
  raw_send(fd, rq, strlen(rq));
  char *part = pattern(100000);
  raw_send(fd, part, 100000);
  free(part);
  for (int i = 0; i < 200 && f.up_bytes < 100000; i++)
    run_for(&f, 2);
  close(fd);
  CHECK(run_until(&f, &f.up_end, 5000));
  CHECK(!f.up_complete);
  CHECK_INT_EQ((int)f.up_bytes, 100000);

  /* answered before the body is read: the rest is dropped and the
   * connection goes on */
  fd = raw_unix(f.sock);
  rq = "PUT /upload-reject HTTP/1.1\r\nHost: x\r\nContent-Length: "
       "300000\r\n\r\n";
  raw_send(fd, rq, strlen(rq));
  part = pattern(300000);
  size_t sent = 0;
  for (int i = 0; i < 2000 && sent < 300000; i++) {
    ssize_t k =
        send(fd, part + sent, 300000 - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (k > 0)
      sent += (size_t)k;
    run_for(&f, 1);
  }
  free(part);
  rq = "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n";
  raw_send(fd, rq, strlen(rq));
  bool eof;
  cleanup_free char *resp = raw_read(&f, fd, 2, 5000, &eof);
  close(fd);
  CHECK(str_has_prefix(resp, "HTTP/1.1 400 "));
  CHECK(strstr(resp, "no thanks") != NULL);
  CHECK(strstr(resp, "GET /echo") != NULL);

  /* the client leaves while the handler is still looking its target up:
   * asking for the body later still ends it (on_end(false)), and the
   * connection goes when the request is released */
  fd = raw_unix(f.sock);
  rq = "PUT /upload-later HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n";
  raw_send(fd, rq, strlen(rq));
  for (int i = 0; i < 200 && !f.up_later; i++)
    run_for(&f, 10);
  CHECK(f.up_later != NULL);
  close(fd);
  run_for(&f, 50);
  http_req_body_start(STEAL_POINTER(&f.up_later), up_data, up_end, &f);
  CHECK(f.up_end && !f.up_complete);

  /* plain TCP is not authenticated: the body is buffered, limits hold */
  CHECK(fx_listen_tcp(&f, NULL) > 0);
  cleanup_free char *url = xasprintf("http://127.0.0.1:%d/upload", f.port);
  struct http_call_opts o = {
      .url = url, .method = "PUT", .body = "abc", .body_len = 3};
  struct res r;
  CHECK(call(&f, &o, &r));
  CHECK_INT_EQ(r.status, 200);
  CHECK_STR_EQ(r.body, "buffered 3");
  CHECK(!f.up_stream_seen);
  res_free(&r);
  CHECK(fx_done(&f));
}

/* "Expect: 100-continue" on a streamed body: the 100 comes only once the
 * handler asks for the body; an answer before that closes the connection
 * (the client may hold the body back for good). */
TEST(http_body_stream_expect_continue) {
  struct fx f;
  fx_init(&f);
  http_server_set_body_stream(f.srv, up_route, &f);
  CHECK_INT_EQ(fx_listen_unix(&f), 0);
  bool eof = false;
  int fd = raw_unix(f.sock);
  const char *rq = "PUT /upload-reject HTTP/1.1\r\nHost: x\r\nContent-Length: "
                   "5\r\nExpect: 100-continue\r\n\r\n";
  raw_send(fd, rq, strlen(rq));
  cleanup_free char *resp = raw_read(&f, fd, 0, 3000, &eof);
  close(fd);
  CHECK(str_has_prefix(resp, "HTTP/1.1 400 "));
  CHECK(strstr(resp, "100 Continue") == NULL);
  CHECK(strstr(resp, "Connection: close\r\n") != NULL);
  CHECK(eof);

  /* asked for: 100 first, then the body is read and answered */
  fd = raw_unix(f.sock);
  rq = "PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
       "Expect: 100-continue\r\n\r\n";
  raw_send(fd, rq, strlen(rq));
  cleanup_free char *cont = raw_read(&f, fd, 1, 3000, &eof);
  CHECK_STR_EQ(cont, "HTTP/1.1 100 Continue\r\n\r\n");
  raw_send(fd, "hello", 5);
  cleanup_free char *ok = raw_read(&f, fd, 1, 3000, &eof);
  close(fd);
  CHECK(str_has_prefix(ok, "HTTP/1.1 200 "));
  cleanup_free char *want = xasprintf("5 %u", sum_of("hello", 5, 0));
  CHECK(strstr(ok, want) != NULL);
  CHECK(fx_done(&f));
}

/* ---- the agent's connections ---- */

static void node_seen(void *ud, const json_t *node) {
  struct fx *f = ud;
  size_t n = strlen(f->nodes_seen);
  snprintf(f->nodes_seen + n, sizeof f->nodes_seen - n, "%s ",
           jx_str(node, "ID", "?"));
}

/* A new fixture f and PKI p, and an agent of a node ("node2") whose
 * manager is f's TLS server (the "/swarm/v1/" handler), once its first
 * heartbeat is in; on_node goes to the agent's callbacks with f. */
static struct agent *agent_fx_start(struct fx *f, struct pki *p,
                                    void (*on_node)(void *, const json_t *)) {
  fx_init(f);
  pki_make(p);
  if (listen_tls(f, &p->srv, &p->ca, PEER_REQUIRED) <= 0)
    return NULL;
  char mgr[64];
  snprintf(mgr, sizeof mgr, "127.0.0.1:%d", f->port);
  json_t *mgrs = json_pack("[s]", mgr);
  struct agent_config cfg = {.loop = &f->loop,
                             .client = f->cli,
                             .node_id = "node2",
                             .cert_pem = p->cli.cert_pem,
                             .key_pem = p->cli.key_pem,
                             .root_pem = p->ca.cert_pem,
                             .managers = mgrs,
                             .on_node = on_node,
                             .ud = f};
  struct agent *a = agent_start(&cfg);
  json_decref(mgrs); /* the agent keeps a copy */
  uv_update_time(&f->loop);
  uint64_t end = uv_now(&f->loop) + 5000;
  while (f->nhb < 1 && uv_now(&f->loop) < end)
    run_for(f, 10);
  return a;
}

/* A node's heartbeats keep their connection: a status report the manager
 * holds (its entry commits behind a large create's) goes on another, so
 * the next heartbeat opens no connection, which on a manager busy with
 * 1,000 nodes took over 5 s and had healthy nodes marked down. */
TEST(agent_heartbeats_keep_their_own_connection) {
  struct fx f;
  struct pki p;
  struct agent *a = agent_fx_start(&f, &p, NULL);
  CHECK(a != NULL);
  CHECK_INT_EQ(f.nhb, 1);
  run_for(&f, 50); /* its answer in: the connection is idle */
  CHECK_INT_EQ(f.nhb, 1);
  json_t *ups = json_pack("[{s:s, s:{s:s}}]", "ID", "task1", "Status", "State",
                          "running");
  agent_report(a, ups);
  json_decref(ups);
  uv_update_time(&f.loop);
  uint64_t end = uv_now(&f.loop) + 5000;
  while ((!f.report || f.nhb < 4) && uv_now(&f.loop) < end)
    run_for(&f, 10);
  CHECK(f.report != NULL);
  CHECK(f.nhb >= 4); /* they go on while the report waits */
  for (int i = 0; i < f.nhb; i++) {
    if (f.hb_conns[i] == f.report_conn)
      FAIL_("heartbeat %d went on the report's connection", i);
    if (f.hb_conns[i] != f.hb_conns[0])
      FAIL_("heartbeat %d opened another connection", i);
  }
  /* The server's side answered before the agent goes. */
  http_respond_json(STEAL_POINTER(&f.report), 200, "{}");
  http_stream_end(STEAL_POINTER(&f.session));
  run_for(&f, 20); /* under the agent's 75 ms before it reconnects */
  agent_stop(a);
  pki_free(&p);
  CHECK(fx_done(&f));
}

/* The session stream's messages as they come off the socket: several in
 * one read, a line and a CBOR frame each cut across two reads. */
TEST(agent_session_reads_messages_however_they_are_cut) {
  struct fx f;
  struct pki p;
  struct agent *a = agent_fx_start(&f, &p, node_seen);
  CHECK(a != NULL);
  CHECK(f.session != NULL);
  static const char lines[] = "{\"Type\":\"node\",\"Node\":{\"ID\":\"n1\"}}\n"
                              "{\"Type\":\"node\",\"Node\":{\"ID\":\"n2\"}}\n"
                              "{\"Type\":\"node\",\"No";
  http_stream_write(f.session, lines, strlen(lines));
  run_for(&f, 30);
  CHECK_STR_EQ(f.nodes_seen, "n1 n2 ");
  json_t *n4 = json_pack("{s:s, s:{s:s}}", "Type", "node", "Node", "ID", "n4");
  size_t flen = 0;
  char *frame = jcbor_frame(n4, &flen);
  json_decref(n4);
  CHECK(frame && flen > 8);
  static const char rest[] = "de\":{\"ID\":\"n3\"}}\n";
  sh_buf b = {0};
  buf_append(&b, rest, strlen(rest));
  buf_append(&b, frame, 5);
  http_stream_write(f.session, b.data, b.len);
  run_for(&f, 30);
  CHECK_STR_EQ(f.nodes_seen, "n1 n2 n3 ");
  http_stream_write(f.session, frame + 5, flen - 5);
  run_for(&f, 30);
  CHECK_STR_EQ(f.nodes_seen, "n1 n2 n3 n4 ");
  buf_free(&b);
  free(frame);
  http_stream_end(STEAL_POINTER(&f.session));
  run_for(&f, 20); /* under the agent's 75 ms before it reconnects */
  agent_stop(a);
  pki_free(&p);
  CHECK(fx_done(&f));
}
