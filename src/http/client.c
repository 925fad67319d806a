/* HTTP client: libcurl's multi interface on the libuv loop.
 *
 * curl tells us which sockets to watch (socket callback -> uv_poll) and when
 * to wake it (timer callback -> uv_timer); we call curl_multi_socket_action
 * from those and collect finished transfers with curl_multi_info_read.
 * curl forbids adding or removing handles from inside its callbacks, so
 * calls started or cancelled from on_data are applied right after curl
 * returns. */
#include "http/client.h"

#include "core/util.h"
#include "http/tlsconn.h"
#include "lazy/curl.h"

#include <strings.h>

struct sock_ctx {
  uv_poll_t poll;
  curl_socket_t fd;
  struct http_client *c;
  struct sock_ctx *prev, *next;
};

struct http_client {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  struct http_call *calls;
  struct sock_ctx *socks;
  int open_handles; /* timer + polls not yet closed */
  int in_curl;      /* depth of curl_multi_socket_action */
  bool closing, close_deferred;
};

struct http_call {
  struct http_client *c;
  struct http_call *prev, *next;
  CURL *easy;
  struct curl_slist *hdrs;
  http_data_fn on_data;
  http_done_fn done;
  void *ud;
  sh_buf body;
  char errbuf[CURL_ERROR_SIZE];
  bool added;     /* in the multi handle */
  bool cancelled; /* drop without calling done */
  bool aborted;   /* on_data asked to stop */
  bool in_done;
  bool verify_manager; /* the server must be a swarm manager */
};

static void after_curl(struct http_client *c);

static void maybe_free_client(struct http_client *c) {
  if (c->closing && c->open_handles == 0)
    free(c);
}

static void on_handle_closed(uv_handle_t *h) {
  struct http_client *c = h->data;
  c->open_handles--;
  maybe_free_client(c);
}

static void on_sock_closed(uv_handle_t *h) {
  struct sock_ctx *sc = h->data;
  struct http_client *c = sc->c;
  free(sc);
  c->open_handles--;
  maybe_free_client(c);
}

static void sock_close(struct sock_ctx *sc) {
  struct http_client *c = sc->c;
  if (sc->prev)
    sc->prev->next = sc->next;
  else
    c->socks = sc->next;
  if (sc->next)
    sc->next->prev = sc->prev;
  /* Stop now (not at close time): curl may reuse the fd number at once. */
  uv_poll_stop(&sc->poll);
  uv_close((uv_handle_t *)&sc->poll, on_sock_closed);
}

static void drive(struct http_client *c, curl_socket_t fd, int flags) {
  int running = 0;
  c->in_curl++;
  curl_multi_socket_action(c->multi, fd, flags, &running);
  c->in_curl--;
  after_curl(c);
}

static void on_poll(uv_poll_t *p, int status, int events) {
  struct sock_ctx *sc = p->data;
  int flags = 0;
  if (status < 0)
    flags |= CURL_CSELECT_ERR;
  if (events & UV_READABLE)
    flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE)
    flags |= CURL_CSELECT_OUT;
  drive(sc->c, sc->fd, flags);
}

static void on_timer(uv_timer_t *t) {
  struct http_client *c = t->data;
  drive(c, CURL_SOCKET_TIMEOUT, 0);
}

static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp,
                          void *socketp) {
  (void)easy;
  struct http_client *c = userp;
  struct sock_ctx *sc = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (sc) {
      sock_close(sc);
      if (c->multi)
        curl_multi_assign(c->multi, s, NULL);
    }
    return 0;
  }
  if (!sc) {
    sc = xcalloc(1, sizeof *sc);
    sc->fd = s;
    sc->c = c;
    if (uv_poll_init_socket(c->loop, &sc->poll, s) < 0) {
      free(sc);
      return -1;
    }
    sc->poll.data = sc;
    sc->next = c->socks;
    if (c->socks)
      c->socks->prev = sc;
    c->socks = sc;
    c->open_handles++;
    curl_multi_assign(c->multi, s, sc);
  }
  int events = 0;
  if (what & CURL_POLL_IN)
    events |= UV_READABLE;
  if (what & CURL_POLL_OUT)
    events |= UV_WRITABLE;
  uv_poll_start(&sc->poll, events, on_poll);
  return 0;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
  (void)multi;
  struct http_client *c = userp;
  if (c->closing)
    return 0;
  if (timeout_ms < 0)
    uv_timer_stop(&c->timer);
  else
    uv_timer_start(&c->timer, on_timer, (uint64_t)timeout_ms, 0);
  return 0;
}

struct http_client *http_client_new(uv_loop_t *loop) {
  struct http_client *c = xcalloc(1, sizeof *c);
  c->loop = loop;
  uv_timer_init(loop, &c->timer);
  c->timer.data = c;
  c->open_handles = 1;
  return c;
}

/* The multi handle (and so libcurl, lazy/curl.h) comes with the first call:
 * a daemon that makes none never maps libcurl. */
static bool client_multi(struct http_client *c) {
  if (c->multi)
    return true;
  c->multi = curl_multi_init();
  if (!c->multi)
    return false;
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
  return true;
}

static void call_unlink(struct http_call *call) {
  struct http_client *c = call->c;
  if (call->prev)
    call->prev->next = call->next;
  else if (c->calls == call)
    c->calls = call->next;
  if (call->next)
    call->next->prev = call->prev;
  call->prev = call->next = NULL;
}

/* Takes the call out of curl and the client's list. */
static void call_detach(struct http_call *call) {
  struct http_client *c = call->c;
  if (call->added && c->multi)
    curl_multi_remove_handle(c->multi, call->easy);
  call->added = false;
  call_unlink(call);
}

static void call_destroy(struct http_call *call) {
  curl_easy_cleanup(call->easy);
  curl_slist_free_all(call->hdrs);
  buf_free(&call->body);
  free(call);
}

static void call_free(struct http_call *call) {
  call_detach(call);
  call_destroy(call);
}

/* Concatenates the "Cert:" entries (PEM with the OpenSSL backend). */
static void collect_chain(CURL *easy, sh_buf *out) {
  struct curl_certinfo *ci = NULL;
  if (curl_easy_getinfo(easy, CURLINFO_CERTINFO, &ci) != CURLE_OK || !ci)
    return;
  for (int i = 0; i < ci->num_of_certs; i++) {
    for (struct curl_slist *s = ci->certinfo[i]; s; s = s->next) {
      if (strncmp(s->data, "Cert:", 5) != 0)
        continue;
      const char *pem = s->data + 5;
      size_t n = strlen(pem);
      buf_append(out, pem, n);
      if (n && pem[n - 1] != '\n')
        buf_append(out, "\n", 1);
    }
  }
}

/* Detached before done runs, so done may cancel others or close the
 * client. */
static void call_complete(struct http_call *call, CURLcode code) {
  call_detach(call);
  if (!call->cancelled) {
    struct http_result res = {0};
    long status = 0;
    curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
    cleanup_buf sh_buf chain = {0};
    collect_chain(call->easy, &chain);
    char reason[CURL_ERROR_SIZE + 96];
    if (code == CURLE_OK) {
      res.status = (int)status;
    } else if (call->aborted) {
      res.status = (int)status;
      res.error = "aborted";
    } else if (code == CURLE_PEER_FAILED_VERIFICATION) {
      snprintf(reason, sizeof reason,
               "the server is not a manager of this swarm (its certificate "
               "was refused: %s)",
               call->errbuf[0] ? call->errbuf : curl_easy_strerror(code));
      res.error = reason;
    } else {
      res.error = call->errbuf[0] ? call->errbuf : curl_easy_strerror(code);
    }
    res.body = call->body.data ? call->body.data : "";
    res.body_len = call->body.len;
    res.peer_chain_pem = chain.len ? chain.data : NULL;
    call->in_done = true;
    call->done(&res, call->ud);
  }
  call_destroy(call);
}

static void check_done(struct http_client *c) {
  CURLMsg *msg;
  int left;
  while (!c->closing && c->multi &&
         (msg = curl_multi_info_read(c->multi, &left))) {
    if (msg->msg != CURLMSG_DONE)
      continue;
    struct http_call *call = NULL;
    CURLcode code = msg->data.result;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&call);
    if (call)
      call_complete(call, code);
  }
}

/* Applies what callbacks asked for while curl was running. */
static void after_curl(struct http_client *c) {
  if (c->in_curl)
    return;
  check_done(c);
  if (c->closing)
    return;
  if (c->close_deferred) {
    http_client_close(c);
    return;
  }
  struct http_call *call = c->calls, *next;
  for (; call; call = next) {
    next = call->next;
    if (call->cancelled) {
      call_free(call);
    } else if (!call->added) {
      if (curl_multi_add_handle(c->multi, call->easy) == CURLM_OK)
        call->added = true;
    }
  }
}

static size_t on_curl_write(char *ptr, size_t size, size_t n, void *ud) {
  struct http_call *call = ud;
  size_t len = size * n;
  if (call->cancelled || call->c->close_deferred)
    return 0;
  if (call->on_data) {
    if (!call->on_data(ptr, len, call->ud)) {
      call->aborted = true;
      return 0;
    }
    if (call->cancelled || call->c->close_deferred)
      return 0;
  } else {
    buf_append(&call->body, ptr, len);
  }
  return len;
}

/* libcurl's TLS context, just before the handshake: the swarm's cipher
 * floor always, and for verified calls the server must be a manager (see
 * tlsconn_verify_manager): certificates name nodes, not hosts, so this
 * replaces the host name check. */
static CURLcode on_ssl_ctx(CURL *easy, void *sslctx, void *ud) {
  (void)easy;
  const struct http_call *call = ud;
  SSL_CTX *ctx = sslctx;
  if (tlsconn_ctx_restrict(ctx) < 0)
    return CURLE_SSL_CIPHER;
  if (call->verify_manager)
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, tlsconn_verify_manager);
  return CURLE_OK;
}

static void set_blob(CURL *easy, CURLoption opt, const char *pem) {
  struct curl_blob blob = {
      .data = (void *)pem, .len = strlen(pem), .flags = CURL_BLOB_COPY};
  curl_easy_setopt(easy, opt, &blob);
}

struct http_call *http_client_call(struct http_client *c,
                                   const struct http_call_opts *opts,
                                   http_data_fn on_data, http_done_fn done,
                                   void *ud) {
  if (!c || c->closing || c->close_deferred || !opts || !opts->url || !done)
    return NULL;
  if (!client_multi(c))
    return NULL;
  CURL *easy = curl_easy_init();
  if (!easy)
    return NULL;
  struct http_call *call = xcalloc(1, sizeof *call);
  call->c = c;
  call->easy = easy;
  call->on_data = on_data;
  call->done = done;
  call->ud = ud;

  curl_easy_setopt(easy, CURLOPT_URL, opts->url);
  curl_easy_setopt(easy, CURLOPT_PRIVATE, (char *)call);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_curl_write);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, call);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, call->errbuf);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  /* Node-to-node and local traffic: never through an environment proxy. */
  curl_easy_setopt(easy, CURLOPT_PROXY, "");
  curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                   opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms
                                                : 5000L);
  if (opts->timeout_ms > 0)
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, opts->timeout_ms);
  if (opts->unix_socket)
    curl_easy_setopt(easy, CURLOPT_UNIX_SOCKET_PATH, opts->unix_socket);

  const char *method = opts->method ? opts->method : "GET";
  bool has_body = opts->body != NULL;
  if (strcasecmp(method, "HEAD") == 0) {
    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  } else if (strcmp(method, "GET") == 0 && !has_body) {
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  } else {
    if (has_body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
      curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                       (curl_off_t)(has_body ? opts->body_len : 0));
      curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS,
                       has_body ? opts->body : "");
    }
    if (strcmp(method, "POST") != 0)
      curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
  }
  if (has_body) {
    cleanup_free char *ct =
        xasprintf("Content-Type: %s",
                  opts->content_type ? opts->content_type : "application/json");
    call->hdrs = curl_slist_append(call->hdrs, ct);
  } else {
    /* No form-urlencoded default on body-less POSTs. */
    call->hdrs = curl_slist_append(call->hdrs, "Content-Type:");
  }
  for (const char *const *h = opts->headers; h && *h; h++)
    if (!strpbrk(*h, "\r\n"))
      call->hdrs = curl_slist_append(call->hdrs, *h);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, call->hdrs);

  /* Swarm certificates name nodes, not hosts: on_ssl_ctx checks the
   * role and cluster in the certificate instead. */
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
  call->verify_manager = !opts->insecure && !opts->unix_socket;
  curl_easy_setopt(easy, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
  curl_easy_setopt(easy, CURLOPT_SSL_CTX_DATA, call);
  curl_easy_setopt(easy, CURLOPT_CERTINFO, 1L);
  if (opts->insecure) {
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
    /* The caller checks this connection's chain itself: never share it
     * with verified calls, and make sure the chain is there to check. */
    curl_easy_setopt(easy, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(easy, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(easy, CURLOPT_SSL_SESSIONID_CACHE, 0L);
  }
  if (opts->ca_pem) {
    set_blob(easy, CURLOPT_CAINFO_BLOB, opts->ca_pem);
    /* Trust only the given roots, not the system bundle. */
    curl_easy_setopt(easy, CURLOPT_CAINFO, NULL);
    curl_easy_setopt(easy, CURLOPT_CAPATH, NULL);
  }
  if (opts->cert_pem) {
    set_blob(easy, CURLOPT_SSLCERT_BLOB, opts->cert_pem);
    curl_easy_setopt(easy, CURLOPT_SSLCERTTYPE, "PEM");
  }
  if (opts->key_pem) {
    set_blob(easy, CURLOPT_SSLKEY_BLOB, opts->key_pem);
    curl_easy_setopt(easy, CURLOPT_SSLKEYTYPE, "PEM");
  }

  call->next = c->calls;
  if (c->calls)
    c->calls->prev = call;
  c->calls = call;
  if (!c->in_curl) {
    if (curl_multi_add_handle(c->multi, easy) != CURLM_OK) {
      call_free(call);
      return NULL;
    }
    call->added = true;
  }
  return call;
}

void http_call_cancel(struct http_call *call) {
  if (!call || call->cancelled || call->in_done)
    return;
  call->cancelled = true;
  /* Inside curl (on_data): after_curl frees it once curl has returned. */
  if (!call->c->in_curl)
    call_free(call);
}

void http_client_close(struct http_client *c) {
  if (!c || c->closing)
    return;
  if (c->in_curl) {
    c->close_deferred = true;
    return;
  }
  c->closing = true;
  while (c->calls) {
    struct http_call *call = c->calls;
    call_detach(call);
    if (!call->cancelled) {
      struct http_result res = {
          .status = 0, .body = "", .error = "client closed"};
      call->in_done = true;
      call->done(&res, call->ud);
    }
    call_destroy(call);
  }
  if (c->multi)
    curl_multi_cleanup(c->multi);
  c->multi = NULL;
  while (c->socks)
    sock_close(c->socks);
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}
