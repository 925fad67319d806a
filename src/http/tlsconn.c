/* Upgraded byte streams: socketpair bridge and TLS upgrade client (see
 * tlsconn.h). TLS is OpenSSL over memory BIOs, as in server.c, so all I/O
 * stays on the loop thread. */
#include "http/tlsconn.h"

#include "core/err.h"
#include "core/util.h"

#include <errno.h>
#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <strings.h>
#include <sys/socket.h>

#define RBUF_SIZE 65536
#define MAX_ANSWER_HEAD 16384

/* ---- socketpair bridge ---- */

struct bridge {
  uv_pipe_t pipe;
  struct bridge_ops ops;
  void *ud;
  bool detached; /* the owner is gone: no more callbacks */
  bool closing;
  bool eof;         /* bridge_eof: our end's writes are shut down */
  bool eof_pending; /* that shutdown has not completed yet */
  bool close_after_eof;
  uv_shutdown_t sreq, ereq;
  struct bridge *prev, *next; /* every bridge until its handle closes */
  char rbuf[RBUF_SIZE];
};

static struct bridge *bridges;

struct bwrite {
  uv_write_t w;
  struct bridge *br;
  char *data;
};

static void bridge_handle_closed(uv_handle_t *h) {
  struct bridge *br = h->data;
  if (br->prev)
    br->prev->next = br->next;
  else if (bridges == br)
    bridges = br->next;
  if (br->next)
    br->next->prev = br->prev;
  free(br);
}

static void bridge_shutdown_cb(uv_shutdown_t *sr, int status) {
  (void)status;
  struct bridge *br = sr->data;
  uv_close((uv_handle_t *)&br->pipe, bridge_handle_closed);
}

/* The local end went away (EOF, error): tell the owner once, then close. */
static void bridge_local_gone(struct bridge *br) {
  if (br->closing)
    return;
  br->closing = true;
  uv_read_stop((uv_stream_t *)&br->pipe);
  if (!br->detached) {
    br->detached = true;
    br->ops.closed(br->ud);
  }
  uv_close((uv_handle_t *)&br->pipe, bridge_handle_closed);
}

static void bridge_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  struct bridge *br = h->data;
  *buf = uv_buf_init(br->rbuf, sizeof br->rbuf);
}

static void bridge_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  struct bridge *br = s->data;
  if (n == 0 || br->closing)
    return;
  if (n < 0) {
    bridge_local_gone(br);
    return;
  }
  if (!br->detached)
    br->ops.to_net(br->ud, buf->base, (size_t)n);
}

int bridge_new(uv_loop_t *loop, const struct bridge_ops *ops, void *ud,
               struct bridge **out, int *fd_out, sh_err *err) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) <
      0)
    return sh_errno(err, errno, "socketpair");
  struct bridge *br = xcalloc(1, sizeof *br);
  br->ops = *ops;
  br->ud = ud;
  int r = uv_pipe_init(loop, &br->pipe, 0);
  if (r < 0) {
    close(sv[0]);
    close(sv[1]);
    free(br);
    return sh_error(err, 500, "bridge: %s", uv_strerror(r));
  }
  br->pipe.data = br;
  r = uv_pipe_open(&br->pipe, sv[1]);
  if (r == 0)
    r = uv_read_start((uv_stream_t *)&br->pipe, bridge_alloc, bridge_read);
  if (r < 0) {
    close(sv[0]);
    br->closing = br->detached = true;
    /* uv_pipe_open may not have taken sv[1]; closing the handle and the
     * fd covers both cases without a double close (EBADF is harmless). */
    if (uv_fileno((uv_handle_t *)&br->pipe, &(uv_os_fd_t){0}) != 0)
      close(sv[1]);
    uv_close((uv_handle_t *)&br->pipe, bridge_handle_closed);
    return sh_error(err, 500, "bridge: %s", uv_strerror(r));
  }
  br->next = bridges;
  if (bridges)
    bridges->prev = br;
  bridges = br;
  *out = br;
  *fd_out = sv[0];
  return 0;
}

void bridge_pump_all(uv_loop_t *loop) {
  /* Entries leave the list only in close callbacks, never during this. */
  for (struct bridge *br = bridges; br; br = br->next) {
    uv_os_fd_t fd;
    if (br->pipe.loop != loop || br->closing || br->detached ||
        uv_fileno((uv_handle_t *)&br->pipe, &fd) != 0)
      continue;
    for (;;) {
      ssize_t n = read(fd, br->rbuf, sizeof br->rbuf);
      if (n <= 0) /* nothing more, EOF or an error: the loop's read sees it */
        break;
      br->ops.to_net(br->ud, br->rbuf, (size_t)n);
      if (br->closing || br->detached)
        break;
    }
  }
}

static void bridge_write_cb(uv_write_t *w, int status) {
  struct bwrite *bw = (struct bwrite *)w;
  struct bridge *br = bw->br;
  free(bw->data);
  free(bw);
  /* The local end closed while bytes were on their way: same as EOF. */
  if (status < 0 && status != UV_ECANCELED)
    bridge_local_gone(br);
}

void bridge_push(struct bridge *br, const char *data, size_t len) {
  if (!br || br->closing || br->eof || len == 0)
    return;
  struct bwrite *bw = xmalloc(sizeof *bw);
  bw->br = br;
  bw->data = xmalloc(len);
  memcpy(bw->data, data, len);
  uv_buf_t b = uv_buf_init(bw->data, (unsigned)len);
  if (uv_write(&bw->w, (uv_stream_t *)&br->pipe, &b, 1, bridge_write_cb) < 0) {
    free(bw->data);
    free(bw);
    bridge_local_gone(br);
  }
}

static void bridge_eof_cb(uv_shutdown_t *sr, int status) {
  (void)status;
  struct bridge *br = sr->data;
  br->eof_pending = false;
  if (br->close_after_eof && !uv_is_closing((uv_handle_t *)&br->pipe))
    uv_close((uv_handle_t *)&br->pipe, bridge_handle_closed);
}

void bridge_eof(struct bridge *br) {
  if (!br || br->closing || br->eof)
    return;
  br->eof = true;
  br->ereq.data = br;
  if (uv_shutdown(&br->ereq, (uv_stream_t *)&br->pipe, bridge_eof_cb) == 0)
    br->eof_pending = true;
}

void bridge_close(struct bridge *br) {
  if (!br)
    return;
  br->detached = true;
  if (br->closing)
    return;
  br->closing = true;
  uv_read_stop((uv_stream_t *)&br->pipe);
  if (br->eof) {
    /* Writes are shut down already: close once that shutdown is done. */
    if (br->eof_pending)
      br->close_after_eof = true;
    else
      uv_close((uv_handle_t *)&br->pipe, bridge_handle_closed);
    return;
  }
  /* Shutdown after the queued writes: the reader gets them, then EOF. */
  br->sreq.data = br;
  if (uv_shutdown(&br->sreq, (uv_stream_t *)&br->pipe, bridge_shutdown_cb) < 0)
    uv_close((uv_handle_t *)&br->pipe, bridge_handle_closed);
}

/* ---- addresses ---- */

int tlsconn_parse_addr(const char *address, struct sockaddr_storage *ss,
                       sh_err *err) {
  if (!address)
    return sh_error(err, 400, "missing address");
  char host[64];
  const char *port_s;
  if (address[0] == '[') {
    const char *end = strchr(address, ']');
    if (!end || end[1] != ':' || (size_t)(end - address - 1) >= sizeof host)
      return sh_error(err, 400, "invalid address %s", address);
    memcpy(host, address + 1, (size_t)(end - address - 1));
    host[end - address - 1] = '\0';
    port_s = end + 2;
  } else {
    const char *colon = strrchr(address, ':');
    if (!colon || (size_t)(colon - address) >= sizeof host)
      return sh_error(err, 400, "invalid address %s", address);
    memcpy(host, address, (size_t)(colon - address));
    host[colon - address] = '\0';
    port_s = colon + 1;
  }
  char *end = NULL;
  errno = 0;
  long port = strtol(port_s, &end, 10);
  if (!*port_s || *end || errno || port <= 0 || port > 65535)
    return sh_error(err, 400, "invalid address %s", address);
  memset(ss, 0, sizeof *ss);
  int r = strchr(host, ':')
              ? uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss)
              : uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss);
  if (r < 0)
    return sh_error(err, 400, "invalid address %s", address);
  return 0;
}

/* ---- client TLS context ---- */

static BIO *pem_bio(const char *pem) {
  return BIO_new_mem_buf(pem, -1);
}

static int ossl_fail(sh_err *err, const char *what) {
  unsigned long e = ERR_peek_last_error();
  char reason[256] = "";
  if (e)
    ERR_error_string_n(e, reason, sizeof reason);
  ERR_clear_error();
  return sh_error(err, 400, "%s%s%s", what, e ? ": " : "", reason);
}

/* ECDHE key exchange with AEAD ciphers only: no CBC (Lucky13 and
 * padding oracles), no RSA key exchange (no forward secrecy). */
#define TLS12_CIPHERS                                                          \
  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"               \
  "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256:"                 \
  "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS13_SUITES                                                           \
  "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

int tlsconn_ctx_restrict(SSL_CTX *ctx) {
  if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
      SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1 ||
      SSL_CTX_set_ciphersuites(ctx, TLS13_SUITES) != 1)
    return -1;
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  return 0;
}

int tlsconn_verify_manager(int preverify_ok, X509_STORE_CTX *x) {
  if (!preverify_ok || X509_STORE_CTX_get_error_depth(x) != 0)
    return preverify_ok;
  X509 *peer = X509_STORE_CTX_get_current_cert(x);
  SSL *ssl =
      X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
  X509 *own = ssl ? SSL_get_certificate(ssl) : NULL;
  char ou[64], o[128], mine[128] = "";
  /* "swarm-manager": the CA's CA_ROLE_MANAGER (ca/ sits above http/). */
  bool ok = peer &&
            tlsconn_subject_field(X509_get_subject_name(peer),
                                  NID_organizationalUnitName, ou, sizeof ou) &&
            tlsconn_subject_field(X509_get_subject_name(peer),
                                  NID_organizationName, o, sizeof o) &&
            (!own ||
             tlsconn_subject_field(X509_get_subject_name(own),
                                   NID_organizationName, mine, sizeof mine)) &&
            strcmp(ou, "swarm-manager") == 0 && *o &&
            (!own || strcmp(o, mine) == 0);
  if (!ok) {
    X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  }
  return 1;
}

SSL_CTX *tlsconn_client_ctx(const char *cert_pem, const char *key_pem,
                            const char *root_pem, sh_err *err) {
  if (!cert_pem || !key_pem || !root_pem) {
    sh_error(err, 400, "TLS client: certificate, key and root CA required");
    return NULL;
  }
  return tlsconn_client_ctx_with(cert_pem, key_pem, root_pem,
                                 TLSCONN_CHECK_MANAGER, err);
}

SSL_CTX *tlsconn_client_ctx_with(const char *cert_pem, const char *key_pem,
                                 const char *root_pem, enum tlsconn_check check,
                                 sh_err *err) {
  if (!cert_pem != !key_pem) {
    sh_error(err, 400, "TLS client: a certificate needs its key");
    return NULL;
  }
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  BIO *b = NULL;
  X509 *x = NULL;
  EVP_PKEY *key = NULL;
  if (!ctx || tlsconn_ctx_restrict(ctx) < 0) {
    ossl_fail(err, "cannot create TLS context");
    goto fail;
  }
  if (cert_pem) {
    /* Leaf first, then any chain certificates. */
    b = pem_bio(cert_pem);
    x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    if (!x || SSL_CTX_use_certificate(ctx, x) != 1) {
      ossl_fail(err, "invalid TLS certificate");
      goto fail;
    }
    X509_free(x);
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
      if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
        ossl_fail(err, "invalid TLS certificate chain");
        goto fail;
      }
    }
    ERR_clear_error(); /* end of PEM data */
    BIO_free(b);
    b = pem_bio(key_pem);
    key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    if (!key || SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
      ossl_fail(err, "TLS certificate and key do not match");
      goto fail;
    }
    EVP_PKEY_free(key);
    key = NULL;
    BIO_free(b);
    b = NULL;
  }
  if (root_pem) {
    b = pem_bio(root_pem);
    int roots = 0;
    while (b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
      int ok = X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), x);
      X509_free(x);
      x = NULL;
      if (ok != 1) {
        ossl_fail(err, "cannot load root CA");
        goto fail;
      }
      roots++;
    }
    ERR_clear_error();
    if (roots == 0) {
      sh_error(err, 400, "invalid root CA certificate");
      goto fail;
    }
    BIO_free(b);
    b = NULL;
  }
  /* Checked, any chain error (and for CHECK_MANAGER a server that is not
   * a manager of our cluster) fails the handshake; the caller's verify
   * callback, if any, checks the rest. */
  if (check == TLSCONN_CHECK_NONE)
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  else
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER,
                       check == TLSCONN_CHECK_MANAGER ? tlsconn_verify_manager
                                                      : NULL);
  SSL_CTX_set_verify_depth(ctx, 4);
  return ctx;
fail:
  X509_free(x);
  EVP_PKEY_free(key);
  BIO_free(b);
  SSL_CTX_free(ctx);
  return NULL;
}

/* ---- TLS over memory BIOs ---- */

SSL *tlsconn_ssl_new(SSL_CTX *ctx, bool client) {
  SSL *ssl = SSL_new(ctx);
  BIO *rbio = BIO_new(BIO_s_mem());
  BIO *wbio = BIO_new(BIO_s_mem());
  if (!ssl || !rbio || !wbio) {
    SSL_free(ssl);
    BIO_free(rbio);
    BIO_free(wbio);
    ERR_clear_error();
    return NULL;
  }
  SSL_set_bio(ssl, rbio, wbio);
  SSL_set_options(ssl, SSL_OP_NO_RENEGOTIATION);
  if (client)
    SSL_set_connect_state(ssl);
  else
    SSL_set_accept_state(ssl);
  return ssl;
}

char *tlsconn_take_output(SSL *ssl, size_t *len) {
  BIO *wbio = ssl ? SSL_get_wbio(ssl) : NULL;
  size_t pending = wbio ? BIO_ctrl_pending(wbio) : 0;
  *len = 0;
  if (pending == 0)
    return NULL;
  char *data = xmalloc(pending);
  int got = BIO_read(wbio, data, (int)pending);
  if (got <= 0) {
    free(data);
    return NULL;
  }
  *len = (size_t)got;
  return data;
}

/* A memory BIO holding more than this while empty is replaced. */
#define TLS_BIO_KEEP 4096

static bool bio_oversized(BIO *b) {
  BUF_MEM *bm = NULL;
  return b && BIO_ctrl_pending(b) == 0 && BIO_get_mem_ptr(b, &bm) == 1 && bm &&
         bm->max > TLS_BIO_KEEP;
}

void tlsconn_trim(SSL *ssl) {
  BIO *nb;
  if (bio_oversized(SSL_get_rbio(ssl)) && (nb = BIO_new(BIO_s_mem())))
    SSL_set0_rbio(ssl, nb); /* frees the old one */
  if (bio_oversized(SSL_get_wbio(ssl)) && (nb = BIO_new(BIO_s_mem())))
    SSL_set0_wbio(ssl, nb);
  ERR_clear_error();
}

char *tlsconn_peer_chain_pem(SSL *ssl) {
  STACK_OF(X509) *chain = ssl ? SSL_get_peer_cert_chain(ssl) : NULL;
  int n = chain ? sk_X509_num(chain) : 0;
  if (n <= 0)
    return NULL;
  BIO *b = BIO_new(BIO_s_mem());
  for (int i = 0; b && i < n; i++)
    PEM_write_bio_X509(b, sk_X509_value(chain, i));
  char *data = NULL;
  long len = b ? BIO_get_mem_data(b, &data) : 0;
  char *out = len > 0 ? xstrndup(data, (size_t)len) : NULL;
  BIO_free(b);
  ERR_clear_error();
  return out;
}

bool tlsconn_subject_field(X509_NAME *name, int nid, char *out, size_t n) {
  out[0] = '\0';
  int idx = X509_NAME_get_index_by_NID(name, nid, -1);
  if (idx < 0)
    return true;
  unsigned char *utf8 = NULL;
  int len = ASN1_STRING_to_UTF8(
      &utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx)));
  if (len < 0)
    return false;
  bool ok = (size_t)len < n && memchr(utf8, '\0', (size_t)len) == NULL;
  if (ok) {
    memcpy(out, utf8, (size_t)len);
    out[len] = '\0';
  }
  OPENSSL_free(utf8);
  return ok;
}

/* ---- upgrade client ---- */

enum { TC_CONNECTING, TC_HANDSHAKE, TC_AWAIT, TC_OPEN, TC_CLOSING };

struct tlsconn {
  uv_loop_t *loop;
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_timer_t timer;
  uv_shutdown_t sreq;
  int state;
  int handles;
  char *address;
  SSL *ssl; /* on memory BIOs */
  bool hs_done;
  char *request;
  char *protocol;
  tlsconn_verify_fn verify;
  void *verify_ud;
  tlsconn_upgrade_cb cb;
  void *ud;
  bool cb_done;
  sh_err err;
  sh_buf head;
  struct bridge *br;
  char rbuf[RBUF_SIZE];
};

struct twrite {
  uv_write_t w;
  struct tlsconn *tc;
  char *data;
};

static void tc_close(struct tlsconn *tc, bool graceful);

static void tc_free(struct tlsconn *tc) {
  if (!tc->cb_done) {
    tc->cb_done = true;
    if (tc->err.status == 0)
      sh_error(&tc->err, 502, "%s: connection closed", tc->address);
    tc->cb(tc->ud, -1, &tc->err);
  }
  SSL_free(tc->ssl); /* and both BIOs */
  buf_free(&tc->head);
  free(tc->request);
  free(tc->protocol);
  free(tc->address);
  free(tc);
}

static void tc_handle_closed(uv_handle_t *h) {
  struct tlsconn *tc = h->data;
  if (--tc->handles == 0)
    tc_free(tc);
}

/* Records why the attempt failed (the first reason wins) and closes. */
static void tc_fail(struct tlsconn *tc, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void tc_fail(struct tlsconn *tc, int status, const char *fmt, ...) {
  if (!tc->cb_done && tc->err.status == 0) {
    char msg[SH_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sh_error(&tc->err, status, "%s", msg);
  }
  tc_close(tc, false);
}

static void tc_write_cb(uv_write_t *w, int status) {
  struct twrite *tw = (struct twrite *)w;
  struct tlsconn *tc = tw->tc;
  free(tw->data);
  free(tw);
  if (status < 0 && tc->state != TC_CLOSING)
    tc_fail(tc, 502, "%s: %s", tc->address, uv_strerror(status));
}

static void tc_raw_write(struct tlsconn *tc, char *owned, size_t len) {
  if (tc->state == TC_CLOSING || len == 0) {
    free(owned);
    return;
  }
  struct twrite *tw = xmalloc(sizeof *tw);
  tw->tc = tc;
  tw->data = owned;
  uv_buf_t b = uv_buf_init(owned, (unsigned)len);
  int r = uv_write(&tw->w, (uv_stream_t *)&tc->tcp, &b, 1, tc_write_cb);
  if (r < 0) {
    free(owned);
    free(tw);
    tc_fail(tc, 502, "%s: %s", tc->address, uv_strerror(r));
  }
}

/* Moves what OpenSSL produced for the network onto the socket. */
static void tc_flush(struct tlsconn *tc) {
  char *data;
  size_t len;
  while ((data = tlsconn_take_output(tc->ssl, &len)) != NULL)
    tc_raw_write(tc, data, len);
}

static void tc_send(struct tlsconn *tc, const char *data, size_t len) {
  if (tc->state == TC_CLOSING || len == 0)
    return;
  if (!tc->ssl) {
    char *copy = xmalloc(len);
    memcpy(copy, data, len);
    tc_raw_write(tc, copy, len);
    return;
  }
  size_t written = 0;
  ERR_clear_error();
  int r = SSL_write_ex(tc->ssl, data, len, &written);
  ERR_clear_error();
  tc_flush(tc);
  if (r != 1)
    tc_fail(tc, 502, "%s: TLS write failed", tc->address);
}

static void tc_shutdown_cb(uv_shutdown_t *sr, int status) {
  (void)status;
  struct tlsconn *tc = sr->data;
  uv_close((uv_handle_t *)&tc->tcp, tc_handle_closed);
}

static void tc_close(struct tlsconn *tc, bool graceful) {
  if (tc->state == TC_CLOSING)
    return;
  bool connected = tc->state != TC_CONNECTING;
  if (graceful && tc->ssl && tc->hs_done) {
    ERR_clear_error();
    SSL_shutdown(tc->ssl); /* queues close_notify */
    ERR_clear_error();
    tc_flush(tc);
  }
  tc->state = TC_CLOSING;
  if (tc->br)
    bridge_close(STEAL_POINTER(&tc->br));
  uv_close((uv_handle_t *)&tc->timer, tc_handle_closed);
  if (connected)
    uv_read_stop((uv_stream_t *)&tc->tcp);
  tc->sreq.data = tc;
  if (graceful && connected &&
      uv_shutdown(&tc->sreq, (uv_stream_t *)&tc->tcp, tc_shutdown_cb) == 0)
    return;
  uv_close((uv_handle_t *)&tc->tcp, tc_handle_closed);
}

static void tc_timeout(uv_timer_t *t) {
  struct tlsconn *tc = t->data;
  tc_fail(tc, 504, "%s: timed out", tc->address);
}

/* ---- bridge callbacks ---- */

static void tc_bridge_to_net(void *ud, const char *data, size_t len) {
  tc_send(ud, data, len);
}

static void tc_bridge_closed(void *ud) {
  struct tlsconn *tc = ud;
  tc->br = NULL;
  tc_close(tc, true);
}

static const struct bridge_ops tc_bridge_ops = {tc_bridge_to_net,
                                                tc_bridge_closed};

/* True when the answer head has "Upgrade: <protocol>". */
static bool head_has_upgrade(const char *head, const char *protocol) {
  const char *line = strstr(head, "\r\n");
  while (line && line[2] != '\r') {
    line += 2;
    const char *end = strstr(line, "\r\n");
    if (!end)
      break;
    if (strncasecmp(line, "Upgrade:", 8) == 0) {
      const char *v = line + 8;
      while (*v == ' ' || *v == '\t')
        v++;
      size_t vl = (size_t)(end - v);
      while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
        vl--;
      if (vl == strlen(protocol) && strncasecmp(v, protocol, vl) == 0)
        return true;
    }
    line = end;
  }
  return false;
}

/* Plaintext from the server. */
static void tc_plain(struct tlsconn *tc, const char *data, size_t len) {
  if (tc->state == TC_OPEN) {
    bridge_push(tc->br, data, len);
    return;
  }
  if (tc->state != TC_AWAIT)
    return;
  buf_append(&tc->head, data, len);
  char *end = strstr(tc->head.data, "\r\n\r\n");
  if (!end) {
    if (tc->head.len > MAX_ANSWER_HEAD ||
        memchr(tc->head.data, '\0', tc->head.len))
      tc_fail(tc, 502, "%s: malformed answer to the upgrade", tc->address);
    return;
  }
  end[2] = '\0'; /* headers end at the first empty line */
  size_t head_len = (size_t)(end - tc->head.data) + 4;
  int major = 0, minor = 0, status = 0;
  if (sscanf(tc->head.data, "HTTP/%d.%d %d", &major, &minor, &status) != 3) {
    tc_fail(tc, 502, "%s: malformed answer to the upgrade", tc->address);
    return;
  }
  if (status != 101) {
    tc_fail(tc, 502, "%s refused the upgrade: HTTP %d", tc->address, status);
    return;
  }
  if (!head_has_upgrade(tc->head.data, tc->protocol)) {
    tc_fail(tc, 502, "%s: upgraded to another protocol", tc->address);
    return;
  }
  int fd = -1;
  sh_err e = {0};
  if (bridge_new(tc->loop, &tc_bridge_ops, tc, &tc->br, &fd, &e) < 0) {
    tc_fail(tc, e.status, "%s", e.msg);
    return;
  }
  uv_timer_stop(&tc->timer);
  tc->state = TC_OPEN;
  if (tc->head.len > head_len)
    bridge_push(tc->br, tc->head.data + head_len, tc->head.len - head_len);
  buf_free(&tc->head);
  tc->cb_done = true;
  tc->cb(tc->ud, fd, NULL);
}

static void tc_send_request(struct tlsconn *tc) {
  tc->state = TC_AWAIT;
  tc_send(tc, tc->request, strlen(tc->request));
}

static bool tc_check_peer(struct tlsconn *tc) {
  X509 *cert = SSL_get0_peer_certificate(tc->ssl);
  if (!cert || SSL_get_verify_result(tc->ssl) != X509_V_OK)
    return false;
  struct tlsconn_peer p;
  X509_NAME *name = X509_get_subject_name(cert);
  if (!tlsconn_subject_field(name, NID_commonName, p.cn, sizeof p.cn) ||
      !tlsconn_subject_field(name, NID_organizationalUnitName, p.ou,
                             sizeof p.ou) ||
      !tlsconn_subject_field(name, NID_organizationName, p.o, sizeof p.o))
    return false;
  return tc->verify(tc->verify_ud, &p);
}

static void tc_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  struct tlsconn *tc = h->data;
  *buf = uv_buf_init(tc->rbuf, sizeof tc->rbuf);
}

static void tc_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  struct tlsconn *tc = s->data;
  if (n == 0 || tc->state == TC_CLOSING)
    return;
  if (n < 0) {
    if (tc->state == TC_OPEN)
      tc_close(tc, n == UV_EOF);
    else
      tc_fail(tc, 502, "%s: connection closed during the upgrade", tc->address);
    return;
  }
  if (!tc->ssl) {
    tc_plain(tc, buf->base, (size_t)n);
    return;
  }
  if (BIO_write(SSL_get_rbio(tc->ssl), buf->base, (int)n) != (int)n) {
    tc_fail(tc, 500, "%s: TLS buffer", tc->address);
    return;
  }
  ERR_clear_error();
  if (!tc->hs_done) {
    int r = SSL_do_handshake(tc->ssl);
    if (r != 1) {
      int e = SSL_get_error(tc->ssl, r);
      tc_flush(tc);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        return;
      }
      long v = SSL_get_verify_result(tc->ssl);
      ERR_clear_error();
      if (v != X509_V_OK)
        tc_fail(tc, 502, "TLS handshake with %s: %s", tc->address,
                X509_verify_cert_error_string(v));
      else
        tc_fail(tc, 502, "TLS handshake with %s failed", tc->address);
      return;
    }
    tc->hs_done = true;
    if (!tc_check_peer(tc)) {
      tc_fail(tc, 403, "%s: server certificate not accepted", tc->address);
      return;
    }
    tc_send_request(tc);
  }
  while (tc->state != TC_CLOSING) {
    char tmp[16384];
    size_t got = 0;
    if (SSL_read_ex(tc->ssl, tmp, sizeof tmp, &got) == 1) {
      tc_plain(tc, tmp, got);
      continue;
    }
    int e = SSL_get_error(tc->ssl, 0);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
      break;
    tc_flush(tc);
    if (e == SSL_ERROR_ZERO_RETURN && tc->state == TC_OPEN)
      tc_close(tc, true);
    else
      tc_fail(tc, 502, "%s: TLS connection closed", tc->address);
    return;
  }
  tc_flush(tc); /* key updates and the like */
}

static void tc_connected(uv_connect_t *req, int status) {
  struct tlsconn *tc = req->data;
  if (tc->state == TC_CLOSING)
    return;
  if (status < 0) {
    tc->state = TC_HANDSHAKE; /* the handle is done connecting */
    tc_fail(tc, 502, "connect %s: %s", tc->address, uv_strerror(status));
    return;
  }
  tc->state = TC_HANDSHAKE;
  uv_tcp_nodelay(&tc->tcp, 1);
  uv_tcp_keepalive(&tc->tcp, 1, 10);
  int r = uv_read_start((uv_stream_t *)&tc->tcp, tc_alloc, tc_read);
  if (r < 0) {
    tc_fail(tc, 502, "%s: %s", tc->address, uv_strerror(r));
    return;
  }
  if (!tc->ssl) {
    tc_send_request(tc);
    return;
  }
  ERR_clear_error();
  int hs = SSL_do_handshake(tc->ssl); /* ClientHello */
  int e = SSL_get_error(tc->ssl, hs);
  ERR_clear_error();
  tc_flush(tc);
  if (hs != 1 && e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
    tc_fail(tc, 502, "TLS handshake with %s failed", tc->address);
}

int tlsconn_upgrade(uv_loop_t *loop, const struct tlsconn_upgrade_opts *o,
                    tlsconn_upgrade_cb cb, void *ud, struct tlsconn **out,
                    sh_err *err) {
  if (!o || !o->path || !o->protocol || !cb || (o->tls && !o->verify))
    return sh_error(err, 400, "upgrade: invalid options");
  if (strpbrk(o->path, "\r\n ") || strpbrk(o->protocol, "\r\n"))
    return sh_error(err, 400, "upgrade: invalid path or protocol");
  struct sockaddr_storage ss;
  if (tlsconn_parse_addr(o->address, &ss, err) < 0)
    return -1;
  struct tlsconn *tc = xcalloc(1, sizeof *tc);
  tc->loop = loop;
  tc->address = xstrdup(o->address);
  tc->protocol = xstrdup(o->protocol);
  tc->verify = o->verify;
  tc->verify_ud = o->verify_ud;
  tc->cb = cb;
  tc->ud = ud;
  sh_buf req = {0};
  buf_printf(&req,
             "POST %s HTTP/1.1\r\nHost: %s\r\nUpgrade: %s\r\n"
             "Connection: Upgrade\r\nContent-Length: 0\r\n",
             o->path, o->address, o->protocol);
  for (int i = 0; o->headers && o->headers[i]; i++)
    if (!strpbrk(o->headers[i], "\r\n"))
      buf_printf(&req, "%s\r\n", o->headers[i]);
  buf_append(&req, "\r\n", 2);
  tc->request = STEAL_POINTER(&req.data);
  if (o->tls) {
    tc->ssl = tlsconn_ssl_new(o->tls, true);
    if (!tc->ssl) {
      free(tc->request);
      free(tc->protocol);
      free(tc->address);
      free(tc);
      return sh_error(err, 500, "upgrade: cannot create TLS state");
    }
  }
  uv_tcp_init(loop, &tc->tcp);
  uv_timer_init(loop, &tc->timer);
  tc->tcp.data = tc->timer.data = tc;
  tc->handles = 2;
  tc->state = TC_CONNECTING;
  uv_timer_start(&tc->timer, tc_timeout, o->timeout_ms ? o->timeout_ms : 5000,
                 0);
  tc->creq.data = tc;
  int r =
      uv_tcp_connect(&tc->creq, &tc->tcp, (struct sockaddr *)&ss, tc_connected);
  if (r < 0) {
    /* Fail later, from the close callbacks, as the contract says. */
    tc->state = TC_HANDSHAKE;
    tc_fail(tc, 502, "connect %s: %s", tc->address, uv_strerror(r));
  }
  if (out)
    *out = tc;
  return 0;
}

void tlsconn_cancel(struct tlsconn *tc) {
  if (!tc || tc->cb_done)
    return;
  sh_error(&tc->err, 499, "%s: canceled", tc->address);
  tc_close(tc, false);
}
