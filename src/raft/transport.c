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
 * Spares: raft dials a peer only when it first has a message for it, so
 * a follower meets another follower first at an election, when its
 * RequestVote would wait for a TLS handshake behind every agent that
 * reconnects to that peer's swarm port at the same moment. So the
 * transport keeps one idle, upgraded connection to each other member of
 * the configuration (tls_transport_warm, on raft's tick) and hands it to
 * raft's next connect to that peer; a new spare is dialed behind it. The
 * accepting side hands its end to raft at once, which reads it like any
 * other (raft streams carry messages one way, so an idle spare that
 * becomes readable has been closed).
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
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>

/* How often the spares are looked at, and the wait after a spare's dial
 * failed (raft's own retries to a dead peer come every second too). */
#define WARM_CHECK_MS 500
#define WARM_RETRY_MS 1000

struct peer_seen {
  raft_id id;
  int reach;
};

struct dial;

/* The idle connection kept for one peer (see "Spares" above). */
struct spare {
  raft_id id;
  char address[128];
  int fd; /* the upgraded connection's end, or -1 */
  bool dialing;
  bool seen;         /* in the configuration at the last check */
  uint64_t next_try; /* loop ms, after a failed dial */
};

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
  /* Hands spares to raft's connects on the next turn (libraft's connect
   * callback must not run inside its connect call), then closes with the
   * transport. */
  uv_timer_t timer;
  bool timer_inited;
  struct dial *dials;
  struct peer_seen *peers;
  size_t npeers;
  struct spare *spares;
  size_t nspares;
  uint64_t warm_next; /* loop ms */
};

/* A connection on its way to raft: dialing (tc), a spare waiting for the
 * timer (ready_fd), or a spare being dialed (req NULL, to address). */
struct dial {
  struct tt *tt;
  struct raft_uv_connect *req;
  raft_uv_connect_cb cb;
  raft_id id;
  struct tlsconn *tc;
  int ready_fd;
  char address[128];
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
/* What raft's side of a bridge may queue unread: 1 MiB (the kernel
 * doubles it). With the default (~208 KiB), an orchestrator pass's
 * entries (~1.5 MB for each follower) left the leader ~200 KB a loop
 * turn, and its turns run to a few hundred ms under load: each cycle's
 * entries committed 500-800 ms after their proposal, and the piped
 * passes, which wait for a slot to free, ran one a cycle instead of four
 * (session 41's trace). Without CAP_NET_ADMIN the kernel's wmem_max
 * caps it. */
#define RAFT_SNDBUF (1 << 20)

static void raft_sndbuf(int fd) {
  int sz = RAFT_SNDBUF;
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz) < 0)
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
}

static uv_stream_t *raft_stream(uv_loop_t *loop, int fd) {
  raft_sndbuf(fd);
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

static struct spare *spare_of(struct tt *tt, raft_id id) {
  for (size_t i = 0; i < tt->nspares; i++)
    if (tt->spares[i].id == id)
      return &tt->spares[i];
  return NULL;
}

/* An idle raft connection has nothing to read: data or a hangup on it
 * means the other end is gone. */
static bool idle_alive(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
  return poll(&p, 1, 0) == 0;
}

static void spare_drop_fd(struct spare *sp) {
  if (sp->fd >= 0)
    close(sp->fd);
  sp->fd = -1;
}

static void dial_unlink(struct dial *d) {
  struct tt *tt = d->tt;
  if (d->prev)
    d->prev->next = d->next;
  else
    tt->dials = d->next;
  if (d->next)
    d->next->prev = d->prev;
}

static void dial_link(struct dial *d) {
  struct tt *tt = d->tt;
  d->prev = NULL;
  d->next = tt->dials;
  if (tt->dials)
    tt->dials->prev = d;
  tt->dials = d;
}

/* A spare's dial ended: keep the connection for raft's next connect (if
 * the peer is still at the address dialed). A failure says nothing of
 * raft's own connection to the peer, which may be up: only raft's dials
 * mark a peer unreachable. */
static void warm_done(struct tt *tt, raft_id id, const char *address, int fd) {
  struct spare *sp = spare_of(tt, id);
  if (sp)
    sp->dialing = false;
  if (fd < 0) {
    if (sp)
      sp->next_try = uv_now(tt->loop) + WARM_RETRY_MS;
    return;
  }
  set_reach(tt, id, 1);
  if (tt->closing || !sp || sp->fd >= 0 || strcmp(sp->address, address)) {
    close(fd);
    return;
  }
  sp->fd = fd;
}

static void dial_done(void *ud, int fd, const sh_err *err) {
  struct dial *d = ud;
  struct tt *tt = d->tt;
  dial_unlink(d);
  struct raft_uv_connect *req = d->req;
  raft_uv_connect_cb cb = d->cb;
  raft_id id = d->id;
  char address[sizeof d->address];
  memcpy(address, d->address, sizeof address);
  free(d);
  bool canceled = fd < 0 && err && err->status == 499;
  if (!req) {
    warm_done(tt, id, address, fd);
  } else if (fd < 0) {
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

/* Hands the spares taken by connects to raft, each with its callback. */
static void handover_cb(uv_timer_t *h) {
  struct tt *tt = h->data;
  struct dial *next;
  for (struct dial *d = tt->dials; d; d = next) {
    next = d->next;
    if (!d->tc)
      dial_done(d, d->ready_fd, NULL);
  }
}

static void timer_ensure(struct tt *tt) {
  if (tt->timer_inited)
    return;
  uv_timer_init(tt->loop, &tt->timer);
  tt->timer.data = tt;
  tt->timer_inited = true;
}

/* The spare for id at address, if it is still open (-1 if none). */
static int spare_take(struct tt *tt, raft_id id, const char *address) {
  struct spare *sp = spare_of(tt, id);
  if (!sp || sp->fd < 0)
    return -1;
  int fd = sp->fd;
  sp->fd = -1;
  if (strcmp(sp->address, address) != 0 || !idle_alive(fd)) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Dials peer id for raft (req) or for a spare (req NULL). */
static int dial_start(struct tt *tt, struct raft_uv_connect *req,
                      raft_uv_connect_cb cb, raft_id id, const char *address,
                      sh_err *err) {
  struct dial *d = xcalloc(1, sizeof *d);
  d->tt = tt;
  d->req = req;
  d->cb = cb;
  d->id = id;
  d->ready_fd = -1;
  snprintf(d->address, sizeof d->address, "%s", address);
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
  if (tlsconn_upgrade(tt->loop, &o, dial_done, d, &d->tc, err) < 0) {
    free(d);
    if (req)
      set_reach(tt, id, -1);
    return -1;
  }
  dial_link(d);
  return 0;
}

static int tt_connect(struct raft_uv_transport *t, struct raft_uv_connect *req,
                      raft_id id, const char *address, raft_uv_connect_cb cb) {
  struct tt *tt = t->impl;
  if (tt->closing)
    return RAFT_CANCELED;
  req->cb = cb;
  int fd = spare_take(tt, id, address);
  if (fd >= 0) {
    struct dial *d = xcalloc(1, sizeof *d);
    *d =
        (struct dial){.tt = tt, .req = req, .cb = cb, .id = id, .ready_fd = fd};
    dial_link(d);
    timer_ensure(tt);
    uv_timer_start(&tt->timer, handover_cb, 0, 0);
    return 0;
  }
  sh_err err = {0};
  if (dial_start(tt, req, cb, id, address, &err) < 0) {
    snprintf(t->errmsg, sizeof t->errmsg, "%.200s", err.msg);
    return RAFT_NOCONNECTION;
  }
  return 0;
}

void tls_transport_warm(struct raft_uv_transport *t,
                        const struct raft_configuration *c) {
  struct tt *tt = t->impl;
  if (!tt || tt->closing || !tt->address)
    return;
  uint64_t now = uv_now(tt->loop);
  if (now < tt->warm_next)
    return;
  tt->warm_next = now + WARM_CHECK_MS;
  for (size_t i = 0; i < tt->nspares; i++)
    tt->spares[i].seen = false;
  for (unsigned i = 0; i < c->n; i++) {
    const struct raft_server *s = &c->servers[i];
    if (s->id == tt->id || !s->address || strlen(s->address) >= 128)
      continue;
    struct spare *sp = spare_of(tt, s->id);
    if (!sp) {
      tt->spares = xrealloc(tt->spares, (tt->nspares + 1) * sizeof *tt->spares);
      sp = &tt->spares[tt->nspares++];
      *sp = (struct spare){.id = s->id, .fd = -1};
    }
    sp->seen = true;
    if (strcmp(sp->address, s->address) != 0) {
      snprintf(sp->address, sizeof sp->address, "%s", s->address);
      spare_drop_fd(sp);
    }
    if (sp->fd >= 0 && !idle_alive(sp->fd))
      spare_drop_fd(sp);
    if (sp->fd >= 0 || sp->dialing || now < sp->next_try)
      continue;
    sh_err err = {0};
    if (dial_start(tt, NULL, NULL, s->id, s->address, &err) < 0)
      sp->next_try = now + WARM_RETRY_MS;
    else
      sp->dialing = true;
  }
  /* Members that left: their spares go (a dial under way ends alone). */
  size_t kept = 0;
  for (size_t i = 0; i < tt->nspares; i++) {
    if (tt->spares[i].seen || tt->spares[i].dialing)
      tt->spares[kept++] = tt->spares[i];
    else
      spare_drop_fd(&tt->spares[i]);
  }
  tt->nspares = kept;
}

static void close_handle_closed(uv_handle_t *h) {
  struct tt *tt = h->data;
  tt->close_handle_done = true;
  /* Spares still waiting for the timer are canceled (dial_done); the
   * last dial to end fires the close. */
  if (tt->dials)
    handover_cb(&tt->timer);
  else
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
  for (size_t i = 0; i < tt->nspares; i++)
    spare_drop_fd(&tt->spares[i]);
  /* Each canceled dial calls back later (dial_done unlinks it). */
  for (struct dial *d = tt->dials; d; d = d->next)
    if (d->tc)
      tlsconn_cancel(d->tc);
  timer_ensure(tt);
  uv_close((uv_handle_t *)&tt->timer, close_handle_closed);
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
  for (size_t i = 0; i < tt->nspares; i++)
    spare_drop_fd(&tt->spares[i]);
  free(tt->spares);
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
