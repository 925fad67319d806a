/* raft_uv_transport over mutual TLS on the swarm port (see internal.h).
 *
 * Dialing: TCP to the peer's "ip:port" (its raft address is its swarm
 * port), TLS with this node's certificate; the server must chain to the
 * swarm root, be a manager of this cluster, and its CN must map to the
 * raft id raft wanted to reach. Then `POST /swarm/v1/raft` with
 * `Upgrade: shoal-raft`, this node's raft id and address in headers, and
 * once the answer is 101 raft gets a uv_pipe_t on a socketpair end whose
 * bytes tlsconn shuttles through TLS.
 *
 * Accepting: the swarm port's handler passes the request here; the client
 * certificate must be a manager of this cluster and the raft id it claims
 * must be the one its CN maps to. libraft's TCP transport sends its
 * (protocol, id, address) preamble itself (uv_tcp_connect.c); with a
 * custom transport nothing does, so the identity travels in the upgrade
 * request and the certificate vouches for it.
 *
 * libraft facts (v0.15.0): raft owns t->data (it points at its io); the
 * streams we hand over are released by raft with uv_close + raft_free, so
 * they are bare raft_malloc'd handles; connect callbacks must fire for
 * every request, with RAFT_CANCELED for those the close cancels, before
 * the close callback. */
#include "raft/internal.h"

#include "ca/ca.h"
#include "core/err.h"
#include "core/util.h"
#include "http/server.h"
#include "http/tlsconn.h"
#include "raft/raftnode.h"

#include <errno.h>
#include <inttypes.h>
#include <strings.h>

struct peer_seen {
  raft_id id;
  int reach;
};

struct dial;

struct tt {
  uv_loop_t *loop;
  SSL_CTX *client;
  char *cluster_id;
  raft_id id;
  char *address;
  raft_uv_accept_cb accept_cb;
  bool closing, close_handle_done, close_fired;
  raft_uv_transport_close_cb close_cb;
  struct raft_uv_transport *t;
  uv_timer_t close_handle; /* only to come back from close() on the loop */
  struct dial *dials;
  struct peer_seen *peers;
  size_t npeers;
};

struct dial {
  struct tt *tt;
  struct raft_uv_connect *req;
  raft_uv_connect_cb cb;
  raft_id id;
  struct tlsconn *tc;
  struct dial *prev, *next;
};

static void set_reach(struct tt *tt, raft_id id, int reach) {
  for (size_t i = 0; i < tt->npeers; i++) {
    if (tt->peers[i].id == id) {
      tt->peers[i].reach = reach;
      return;
    }
  }
  tt->peers = xrealloc(tt->peers, (tt->npeers + 1) * sizeof *tt->peers);
  tt->peers[tt->npeers++] = (struct peer_seen){id, reach};
}

int tls_transport_reach(struct raft_uv_transport *t, raft_id id) {
  struct tt *tt = t->impl;
  for (size_t i = 0; i < tt->npeers; i++)
    if (tt->peers[i].id == id)
      return tt->peers[i].reach;
  return 0;
}

/* A bare pipe handle on fd for raft, which frees it with raft_free. */
static uv_stream_t *raft_stream(uv_loop_t *loop, int fd) {
  uv_pipe_t *p = raft_malloc(sizeof *p);
  if (!p) {
    close(fd);
    return NULL;
  }
  uv_pipe_init(loop, p, 0);
  if (uv_pipe_open(p, fd) < 0) {
    close(fd);
    uv_close((uv_handle_t *)p, (uv_close_cb)raft_free);
    return NULL;
  }
  return (uv_stream_t *)p;
}

static void maybe_fire_close(struct tt *tt) {
  if (!tt->closing || !tt->close_handle_done || tt->dials || tt->close_fired)
    return;
  tt->close_fired = true;
  if (tt->close_cb)
    tt->close_cb(tt->t);
}

/* ---- raft_uv_transport methods ---- */

static int tt_init(struct raft_uv_transport *t, raft_id id,
                   const char *address) {
  struct tt *tt = t->impl;
  tt->id = id;
  free(tt->address);
  tt->address = xstrdup(address);
  return 0;
}

static int tt_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb) {
  struct tt *tt = t->impl;
  tt->accept_cb = cb;
  return 0;
}

static bool verify_server(void *ud, const struct tlsconn_peer *p) {
  struct dial *d = ud;
  return strcmp(p->ou, CA_ROLE_MANAGER) == 0 &&
         strcmp(p->o, d->tt->cluster_id) == 0 &&
         raftnode_id_for(p->cn) == d->id;
}

static void dial_done(void *ud, int fd, const sh_err *err) {
  struct dial *d = ud;
  struct tt *tt = d->tt;
  if (d->prev)
    d->prev->next = d->next;
  else
    tt->dials = d->next;
  if (d->next)
    d->next->prev = d->prev;
  struct raft_uv_connect *req = d->req;
  raft_uv_connect_cb cb = d->cb;
  raft_id id = d->id;
  free(d);
  if (fd < 0) {
    bool canceled = err && err->status == 499;
    if (!canceled)
      set_reach(tt, id, -1);
    cb(req, NULL, canceled ? RAFT_CANCELED : RAFT_NOCONNECTION);
  } else if (tt->closing) {
    close(fd);
    cb(req, NULL, RAFT_CANCELED);
  } else {
    uv_stream_t *s = raft_stream(tt->loop, fd);
    if (s)
      set_reach(tt, id, 1);
    cb(req, s, s ? 0 : RAFT_NOCONNECTION);
  }
  maybe_fire_close(tt);
}

static int tt_connect(struct raft_uv_transport *t, struct raft_uv_connect *req,
                      raft_id id, const char *address, raft_uv_connect_cb cb) {
  struct tt *tt = t->impl;
  if (tt->closing)
    return RAFT_CANCELED;
  struct dial *d = xcalloc(1, sizeof *d);
  d->tt = tt;
  d->req = req;
  d->cb = cb;
  d->id = id;
  req->cb = cb;
  cleanup_free char *hdr_id =
      xasprintf(RAFT_HDR_ID ": %" PRIu64, (uint64_t)tt->id);
  cleanup_free char *hdr_addr = xasprintf(RAFT_HDR_ADDRESS ": %s", tt->address);
  const char *headers[] = {hdr_id, hdr_addr, NULL};
  struct tlsconn_upgrade_opts o = {
      .address = address,
      .tls = tt->client,
      .path = RAFT_UPGRADE_PATH,
      .protocol = RAFT_UPGRADE_PROTO,
      .headers = headers,
      .timeout_ms = 5000,
      .verify = verify_server,
      .verify_ud = d,
  };
  sh_err err = {0};
  if (tlsconn_upgrade(tt->loop, &o, dial_done, d, &d->tc, &err) < 0) {
    free(d);
    snprintf(t->errmsg, sizeof t->errmsg, "%.200s", err.msg);
    set_reach(tt, id, -1);
    return RAFT_NOCONNECTION;
  }
  d->next = tt->dials;
  if (tt->dials)
    tt->dials->prev = d;
  tt->dials = d;
  return 0;
}

static void close_handle_closed(uv_handle_t *h) {
  struct tt *tt = h->data;
  tt->close_handle_done = true;
  maybe_fire_close(tt);
}

static void tt_close(struct raft_uv_transport *t,
                     raft_uv_transport_close_cb cb) {
  struct tt *tt = t->impl;
  if (tt->closing)
    return;
  tt->closing = true;
  tt->accept_cb = NULL;
  tt->close_cb = cb;
  /* Each canceled dial calls back later (dial_done unlinks it). */
  for (struct dial *d = tt->dials; d; d = d->next)
    tlsconn_cancel(d->tc);
  uv_timer_init(tt->loop, &tt->close_handle);
  tt->close_handle.data = tt;
  uv_close((uv_handle_t *)&tt->close_handle, close_handle_closed);
}

int tls_transport_init(struct raft_uv_transport *t, uv_loop_t *loop,
                       const char *cert_pem, const char *key_pem,
                       const char *root_pem, const char *cluster_id,
                       sh_err *err) {
  if (!cluster_id || !*cluster_id)
    return sh_error(err, 400, "raft TLS: cluster ID required");
  SSL_CTX *client = tlsconn_client_ctx(cert_pem, key_pem, root_pem, err);
  if (!client)
    return sh_err_wrap(err, "raft TLS");
  struct tt *tt = xcalloc(1, sizeof *tt);
  tt->loop = loop;
  tt->client = client;
  tt->cluster_id = xstrdup(cluster_id);
  tt->t = t;
  memset(t, 0, sizeof *t);
  t->impl = tt;
  t->init = tt_init;
  t->listen = tt_listen;
  t->connect = tt_connect;
  t->close = tt_close;
  return 0;
}

int tls_transport_set_identity(struct raft_uv_transport *t,
                               const char *cert_pem, const char *key_pem,
                               const char *root_pem, sh_err *err) {
  struct tt *tt = t->impl;
  SSL_CTX *client = tlsconn_client_ctx(cert_pem, key_pem, root_pem, err);
  if (!client)
    return sh_err_wrap(err, "raft TLS");
  /* A dial under way made its SSL (which holds a reference) already. */
  SSL_CTX_free(tt->client);
  tt->client = client;
  return 0;
}

void tls_transport_free(struct raft_uv_transport *t) {
  struct tt *tt = t->impl;
  if (!tt)
    return;
  SSL_CTX_free(tt->client);
  free(tt->cluster_id);
  free(tt->address);
  free(tt->peers);
  free(tt);
  t->impl = NULL;
}

/* ---- accepting ---- */

/* "ip:port" of reasonable length, or NULL. */
static const char *valid_address(const char *a) {
  struct sockaddr_storage ss;
  if (!a || strlen(a) >= 128 || tlsconn_parse_addr(a, &ss, NULL) < 0)
    return NULL;
  return a;
}

void tls_transport_accept(struct raft_uv_transport *t, struct http_req *req) {
  struct tt *tt = t->impl;
  if (!req->peer_verified || strcmp(req->peer_ou, CA_ROLE_MANAGER) != 0 ||
      strcmp(req->peer_o, tt->cluster_id) != 0) {
    http_respond_error(req, 403,
                       "raft: a manager certificate of this swarm is required");
    return;
  }
  const char *up = http_req_header(req, "Upgrade");
  if (strcmp(req->method, "POST") != 0 || !up ||
      strcasecmp(up, RAFT_UPGRADE_PROTO) != 0) {
    http_respond_error(req, 400, "raft: expected Upgrade: " RAFT_UPGRADE_PROTO);
    return;
  }
  const char *id_s = http_req_header(req, RAFT_HDR_ID);
  char *end = NULL;
  errno = 0;
  unsigned long long claimed = id_s ? strtoull(id_s, &end, 10) : 0;
  if (!id_s || !*id_s || *end || errno || claimed == 0 ||
      claimed != raftnode_id_for(req->peer_cn)) {
    http_respond_error(req, 403,
                       "raft: the raft id does not match the certificate");
    return;
  }
  const char *addr = valid_address(http_req_header(req, RAFT_HDR_ADDRESS));
  if (!addr) {
    http_respond_error(req, 400, "raft: invalid " RAFT_HDR_ADDRESS);
    return;
  }
  if (tt->closing || !tt->accept_cb) {
    http_respond_error(req, 503, "raft: not running");
    return;
  }
  /* The request is freed by the upgrade: keep what raft needs. */
  char address[128];
  snprintf(address, sizeof address, "%s", addr);
  int fd = -1;
  sh_err err = {0};
  if (http_req_upgrade(req, RAFT_UPGRADE_PROTO, &fd, &err) < 0)
    return;
  uv_stream_t *s = raft_stream(tt->loop, fd);
  if (!s)
    return;
  set_reach(tt, (raft_id)claimed, 1);
  tt->accept_cb(t, (raft_id)claimed, address, s);
}
