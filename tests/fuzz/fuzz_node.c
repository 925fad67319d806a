/* libFuzzer target over the swarm port (2377) as a worker node reaches it
 * with its certificate: what a compromised or buggy worker can send the
 * leader. Raw bytes go through TLS with the worker's certificate and key
 * into the manager's own swarm listener (ca_tls_server_ctx, client
 * certificates verified, as shoald serves it), the policy (authz.c) and
 * the handlers a worker reaches: status reports (JSON or CBOR, through
 * the reports queue and raft into the store's apply), the dispatcher
 * session and heartbeats, log posts to a subscription, network
 * attachments, leave and certificate renewal; the forbidden ones answer
 * 403.
 *
 * The worker is a real one: it joins with the worker token and a CSR
 * (POST /swarm/v1/join), so the manager's CA signs its certificate and
 * its node is in the store; it joins again when an input made it leave.
 * Around the inputs the harness keeps what a live worker has: a session
 * of its own (reopened when an input's session took over), a heartbeat
 * every 2 s, a task of a service placed on it and running (put back when
 * an input moved it on), a network attachment, and a `service logs -f`
 * subscription to that task.
 *
 * Placeholders in the input become IDs of this run (25 characters each,
 * so seeds can carry the lengths as sent): @NODE@ the worker, @MNODE@ the
 * manager, @TASK@ the worker's task, @MTASK@ a task on the manager,
 * @ATT@ the worker's attachment, @SID@ the worker's session and @SUB@
 * the log subscription.
 *
 * Each input gets one connection: the bytes are written, and answers read
 * until the server closes it or, once the last byte went out, it has been
 * quiet for a while: 5 ms once it answered every whole request sent (a
 * session's stream never ends), 20 ms between answers, 100 ms before any
 * (one that comes later: a raft commit, an attachment's address), 1 s at
 * most (QUIET_*); then it is closed (close_notify) and the server frees
 * it. The TLS session is resumed from one connection to the next. After
 * each input the store must still snapshot and restore to itself
 * (fuzz_check_store).
 *
 * libFuzzer's leak check (-detect_leaks=1, its default) runs LeakSanitizer
 * over the whole heap after every input that keeps memory, which a
 * stateful target always does: -detect_leaks=0 runs about 5x as many
 * inputs, and the replay in `make test` checks for leaks at exit. */
#include "http/server.h"
#include "http/tlsconn.h"
#include "manager/logbroker.h"

#include "leader.h"

#include <fcntl.h>
#include <http_parser.h>
#include <openssl/err.h>
#include <poll.h>
#include <signal.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct fuzz_leader L;
static unsigned runs;
static bool verbose;

#define NO_ID "0000000000000000000000000"
#define CONTAINER_ID                                                           \
  "f00df00df00df00df00df00df00df00df00df00df00df00df00df00df00df00d"

/* The worker: its node ID, certificate and key, its client TLS context
 * and the TLS session its connections resume. */
static struct {
  char id[ID_LEN + 1];
  char *cert, *key;
  SSL_CTX *ctx;
  SSL_SESSION *sess;
} W;

/* The fixtures' IDs: the service whose task runs on the worker, that
 * task, one on the manager, the worker's attachment, session and log
 * subscription. */
static char svc_id[ID_LEN + 1], msvc_id[ID_LEN + 1];
static char task_id[ID_LEN + 1] = NO_ID, mtask_id[ID_LEN + 1] = NO_ID;
static char att_id[ID_LEN + 1] = NO_ID, sid[ID_LEN + 1] = NO_ID;
static char sub_id[ID_LEN + 1] = NO_ID;

/* ---- a TLS client connection, driven between turns of the loop ---- */

/* How long a connection waits once all its bytes went out, in ms of
 * nothing new: after the server answered every request it was sent (a
 * session's stream goes on: what its start sends comes within that);
 * between answers; before the first (an answer the handler sends later:
 * a raft commit, an attachment's address, polled every 50 ms). */
#define QUIET_DONE_MS 5
#define QUIET_MORE_MS 20
#define QUIET_FIRST_MS 100

struct tconn {
  int fd;
  SSL *ssl;
  bool up;          /* handshake done */
  bool end;         /* closed by the server, or failed */
  sh_buf in;        /* what the server sent */
  size_t scanned;   /* bytes of in counted for answers */
  unsigned answers; /* status lines in it */
};

static bool tconn_open(struct tconn *c, int port) {
  *c = (struct tconn){.fd = -1};
  int fd = fuzz_connect(port);
  if (fd < 0)
    return false;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  c->fd = fd;
  c->ssl = SSL_new(W.ctx);
  SSL_set_fd(c->ssl, fd);
  SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
                           SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (W.sess)
    SSL_set_session(c->ssl, W.sess);
  SSL_set_connect_state(c->ssl);
  return true;
}

/* Counts the status lines ("HTTP/1.x" at the start of a line) of what
 * came in since the last count. */
static void count_answers(struct tconn *c) {
  size_t p = c->scanned;
  for (; p + 7 <= c->in.len; p++)
    if (!memcmp(c->in.data + p, "HTTP/1.", 7) &&
        (p == 0 || c->in.data[p - 1] == '\n'))
      c->answers++;
  c->scanned = p;
}

/* Moves what can move without waiting: the handshake, then data[*off..len]
 * out, then whatever came in. Whether anything moved. */
static bool tconn_step(struct tconn *c, const char *data, size_t len,
                       size_t *off) {
  bool moved = false;
  ERR_clear_error();
  if (!c->up) {
    int r = SSL_do_handshake(c->ssl);
    if (r != 1) {
      int e = SSL_get_error(c->ssl, r);
      if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
        if (verbose)
          fprintf(stderr, "node: handshake failed (%d)\n", e);
        c->end = true;
      }
      ERR_clear_error();
      return false;
    }
    c->up = moved = true;
  }
  while (off && *off < len) {
    size_t n = 0;
    if (SSL_write_ex(c->ssl, data + *off, len - *off, &n) == 1) {
      *off += n;
      moved = true;
      continue;
    }
    int e = SSL_get_error(c->ssl, 0);
    if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ)
      c->end = true; /* the server closed: read what it said */
    break;
  }
  for (;;) {
    char buf[16384];
    size_t n = 0;
    if (SSL_read_ex(c->ssl, buf, sizeof buf, &n) == 1) {
      buf_append(&c->in, buf, n);
      moved = true;
      continue;
    }
    int e = SSL_get_error(c->ssl, 0);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
      c->end = true;
    break;
  }
  ERR_clear_error();
  count_answers(c);
  return moved;
}

/* One short wait for the client's socket or the loop, then a loop turn. */
static void tconn_wait(struct tconn *c) {
  uv_loop_t *loop = uv_default_loop();
  struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN},
                        {.fd = uv_backend_fd(loop), .events = POLLIN}};
  int t = uv_backend_timeout(loop);
  poll(p, 2, t >= 0 && t < 1 ? t : 1);
  uv_run(loop, UV_RUN_NOWAIT);
}

static int message_done(http_parser *p) {
  (*(unsigned *)p->data)++;
  return 0;
}

/* The answers the server owes for data: one for each whole request, and
 * one (400) for the first that does not parse. A request cut short gets
 * none: the server waits for the rest. */
static unsigned requests_in(const char *data, size_t len) {
  unsigned n = 0;
  http_parser_settings st;
  memset(&st, 0, sizeof st);
  st.on_message_complete = message_done;
  http_parser p;
  http_parser_init(&p, HTTP_REQUEST);
  p.data = &n;
  http_parser_execute(&p, &st, data, len);
  if (HTTP_PARSER_ERRNO(&p) != HPE_OK)
    n++;
  return n;
}

/* Sends data and reads what comes back (into c->in) until the server
 * closes, until is seen in it, or max ms passed; or, once every byte
 * went out, until it was quiet for as long as QUIET_* say. */
static void tconn_exchange(struct tconn *c, const char *data, size_t len,
                           const char *until, int max) {
  unsigned owed = requests_in(data, len);
  int64_t t0 = clock_mono_ns(), last = t0;
  size_t off = 0;
  for (int round = 0; round < 100000 && !c->end; round++) {
    int64_t now = clock_mono_ns();
    size_t had = c->in.len;
    if (tconn_step(c, data, len, &off))
      last = now;
    if (until && c->in.len > had &&
        memmem(c->in.data, c->in.len, until, strlen(until)))
      break;
    int quiet = c->answers >= owed ? QUIET_DONE_MS
                : c->answers       ? QUIET_MORE_MS
                                   : QUIET_FIRST_MS;
    if (now - t0 > max * NS_PER_MS ||
        (c->up && off == len && now - last > quiet * NS_PER_MS))
      break;
    tconn_wait(c);
  }
}

/* Keeps the TLS session to resume, sends close_notify and closes; the
 * server frees the connection in the loop turns that follow. */
static void tconn_close(struct tconn *c) {
  buf_free(&c->in);
  c->scanned = c->answers = 0;
  if (!c->ssl)
    return;
  if (c->up) {
    SSL_SESSION *s = SSL_get1_session(c->ssl);
    if (s && SSL_SESSION_is_resumable(s)) {
      SSL_SESSION_free(W.sess);
      W.sess = s;
    } else {
      SSL_SESSION_free(s);
    }
    SSL_shutdown(c->ssl);
  }
  ERR_clear_error();
  SSL_free(c->ssl);
  close(c->fd);
  c->ssl = NULL;
  c->fd = -1;
  for (int i = 0; i < 20; i++)
    uv_run(uv_default_loop(), UV_RUN_NOWAIT);
}

/* A whole request as the worker, on a connection of its own. */
static void worker_call(const char *method, const char *path,
                        const char *body) {
  struct tconn c;
  if (!tconn_open(&c, L.port))
    return;
  cleanup_free char *req =
      xasprintf("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n"
                "%s",
                method, path, strlen(body), body);
  tconn_exchange(&c, req, strlen(req), NULL, 2000);
  tconn_close(&c);
}

/* The 25 characters after key in b (NUL-terminated into out); false when
 * key is not there. */
static bool id_after(const sh_buf *b, size_t from, const char *key,
                     char out[ID_LEN + 1]) {
  if (!b->len || from >= b->len)
    return false;
  const char *p = memmem(b->data + from, b->len - from, key, strlen(key));
  if (!p || (size_t)(b->data + b->len - p) < strlen(key) + ID_LEN)
    return false;
  memcpy(out, p + strlen(key), ID_LEN);
  out[ID_LEN] = '\0';
  return true;
}

/* ---- the worker's identity ---- */

static void joined(const struct http_result *res, void *ud) {
  json_t **out = ud;
  if (res->status == 200)
    *out = json_loadb(res->body, res->body_len, 0, NULL);
  if (!*out) {
    fprintf(stderr, "fuzz: join: %d %s\n", res->status,
            res->body    ? res->body
            : res->error ? res->error
                         : "");
    abort();
  }
}

/* Joins as a worker, as `docker swarm join` does: a CSR and the worker
 * token to the swarm port, the certificate the manager's CA signed. */
static void join(void) {
  free(W.cert);
  free(W.key);
  SSL_CTX_free(W.ctx);
  SSL_SESSION_free(W.sess);
  W.sess = NULL;
  cleanup_free char *csr = NULL;
  sh_err err = {0};
  if (ca_csr_create(&W.key, &csr, &err) < 0)
    abort();
  json_t *body = json_pack(
      "{s:s, s:s, s:s, s:s, s:{s:s, s:{s:s, s:s}, s:{s:I, s:I}, s:{s:s}}}",
      "Token", L.worker_token, "CSR", csr, "Hostname", "fuzz-worker",
      "Availability", "active", "Description", "Hostname", "fuzz-worker",
      "Platform", "Architecture", "x86_64", "OS", "linux", "Resources",
      "NanoCPUs", (json_int_t)4000000000, "MemoryBytes",
      (json_int_t)(INT64_C(4) << 30), "Engine", "EngineVersion", "0.1.0");
  cleanup_free char *b = jx_dump(body);
  json_decref(body);
  cleanup_free char *url =
      xasprintf("https://127.0.0.1:%d/swarm/v1/join", L.port);
  struct http_call_opts o = {.method = "POST",
                             .url = url,
                             .body = b,
                             .body_len = strlen(b),
                             .ca_pem = L.root_pem,
                             .timeout_ms = 10000};
  json_t *res = NULL;
  http_client_call(L.client, &o, NULL, joined, &res);
  int64_t end = clock_mono_ns() + 15000 * NS_PER_MS;
  while (!res && clock_mono_ns() < end) {
    uv_run(uv_default_loop(), UV_RUN_NOWAIT);
    usleep(200);
  }
  if (!res)
    abort();
  snprintf(W.id, sizeof W.id, "%s", jx_str(res, "NodeID", ""));
  W.cert = xstrdup(jx_str(res, "Certificate", ""));
  json_decref(res);
  W.ctx = tlsconn_client_ctx(W.cert, W.key, L.root_pem, &err);
  if (strlen(W.id) != ID_LEN || !W.ctx) {
    fprintf(stderr, "fuzz: join: %s\n", err.msg);
    abort();
  }
  if (verbose)
    fprintf(stderr, "node: joined as %s\n", W.id);
}

/* ---- the worker's own session ---- */

static struct tconn bg = {.fd = -1};
static size_t bg_seen; /* bytes of bg.in searched for messages already */

static void bg_close(void) {
  tconn_close(&bg);
  bg_seen = 0;
  memcpy(sid, NO_ID, sizeof sid);
}

/* Reads what the session sent; notes the log subscription's ID, and the
 * session's end (an input's session took over, or the manager ended it:
 * the last chunk). */
static void bg_drain(void) {
  if (!bg.ssl)
    return;
  tconn_step(&bg, NULL, 0, NULL);
  /* jx_dump keeps json_pack's order: Type first, then Sub. */
  char sub[ID_LEN + 1];
  if (id_after(&bg.in, bg_seen, "\"Type\":\"logs\",\"Sub\":\"", sub))
    memcpy(sub_id, sub, sizeof sub_id);
  if (bg.end ||
      (bg.in.len >= 5 && !memcmp(bg.in.data + bg.in.len - 5, "0\r\n\r\n", 5))) {
    bg_close();
    return;
  }
  /* Keep a tail for a message cut in two reads. */
  if (bg.in.len > 65536) {
    memmove(bg.in.data, bg.in.data + bg.in.len - 64, 64);
    bg.in.len = bg.scanned = 64;
    bg.in.data[64] = '\0';
  }
  bg_seen = bg.in.len > 64 ? bg.in.len - 64 : 0;
}

/* Opens the worker's session, as its agent does (CBOR assignments). */
static void bg_open(void) {
  bg_close();
  if (!tconn_open(&bg, L.port))
    return;
  static const char body[] = "{\"Encoding\":\"cbor\"}";
  cleanup_free char *req =
      xasprintf("POST /swarm/v1/session HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n"
                "%s",
                sizeof body - 1, body);
  tconn_exchange(&bg, req, strlen(req), "\"SessionID\":\"", 1000);
  tconn_exchange(&bg, NULL, 0, NULL, 200);
  if (!id_after(&bg.in, 0, "\"SessionID\":\"", sid)) {
    if (verbose)
      fprintf(stderr, "node: no session: %.*s\n", (int)bg.in.len,
              bg.in.data ? bg.in.data : "");
    bg_close();
  }
}

/* ---- the fixtures: what a live worker has in the store ---- */

static void created(void *ud, int status, const sh_err *err) {
  if (status < 0) {
    fprintf(stderr, "fuzz: %s\n", err ? err->msg : "?");
    abort();
  }
  *(int *)ud = 1;
}

static void create_service(const char *name, const char *constraint,
                           char id[ID_LEN + 1]) {
  json_t *spec = json_pack(
      "{s:s, s:{s:{s:s}, s:{s:[s]}, s:{s:s}}, s:{s:{s:I}}}", "Name", name,
      "TaskTemplate", "ContainerSpec", "Image", "busybox:latest", "Placement",
      "Constraints", constraint, "RestartPolicy", "Condition", "none", "Mode",
      "Replicated", "Replicas", (json_int_t)1);
  int done = 0;
  char out[26];
  sh_err err = {0};
  if (manager_create_service(L.m, spec, NULL, out, created, &done, &err) < 0) {
    fprintf(stderr, "fuzz: %s\n", err.msg);
    abort();
  }
  json_decref(spec);
  fuzz_pump_until(&done, 5000);
  snprintf(id, ID_LEN + 1, "%s", out);
}

/* The first task of service svc, on node (any node when NULL). */
static const json_t *task_of(const char *svc, const char *node) {
  struct store *s = manager_store(L.m);
  cleanup_json json_t *tasks = store_list_by(s, STORE_TASKS_BY_SERVICE, svc);
  size_t i;
  json_t *t;
  json_array_foreach(tasks, i, t) {
    if (!node || strcmp(jx_str(t, "NodeID", ""), node) == 0)
      return store_get(s, STORE_TASK, jx_str(t, "ID", ""));
  }
  return NULL;
}

/* The worker's task as its agent left it after starting the container:
 * running, with a container (what log subscriptions look for). An input
 * that moved it on (failed, shutdown), or a new worker after a leave,
 * gets it put back. */
static void ensure_task(void) {
  const json_t *t = store_get(manager_store(L.m), STORE_TASK, task_id);
  if (!t)
    t = task_of(svc_id, NULL);
  if (!t)
    return;
  snprintf(task_id, sizeof task_id, "%s", jx_str(t, "ID", NO_ID));
  if (!strcmp(jx_str(t, "NodeID", ""), W.id) &&
      !strcmp(jx_str(t, "Status.State", ""), "running") &&
      !strcmp(jx_str(t, "DesiredState", ""), "running") &&
      !strcmp(jx_str(t, "Status.ContainerStatus.ContainerID", ""),
              CONTAINER_ID))
    return;
  char ts[64];
  clock_format_rfc3339(clock_wall_ns(), ts, sizeof ts);
  json_t *nt = json_deep_copy(t);
  json_object_set_new(nt, "NodeID", json_string(W.id));
  json_object_set_new(nt, "DesiredState", json_string("running"));
  json_object_set_new(nt, "Status",
                      json_pack("{s:s, s:s, s:s, s:{s:s, s:i, s:i}}",
                                "Timestamp", ts, "State", "running", "Message",
                                "started", "ContainerStatus", "ContainerID",
                                CONTAINER_ID, "PID", 4242, "ExitCode", 0));
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_TASK, nt, jx_int(t, "Version.Index", 0));
  fuzz_propose(L.m, tx);
}

/* An attachment of the worker's to the fixture network: one it has, or a
 * new one asked for as its daemon does. */
static void ensure_attachment(void) {
  struct store *s = manager_store(L.m);
  const json_t *a = store_get(s, STORE_TASK, att_id);
  if (a && !strcmp(jx_str(a, "NodeID", ""), W.id))
    return;
  worker_call("POST", "/swarm/v1/attach",
              "{\"ContainerID\":\"" CONTAINER_ID
              "\",\"Name\":\"fuzz-att\",\"Target\":\"fuzz-net\"}");
  memcpy(att_id, NO_ID, sizeof att_id);
  cleanup_json json_t *tasks = store_list_by(s, STORE_TASKS_BY_NODE, W.id);
  size_t i;
  json_t *t;
  json_array_foreach(tasks, i, t) {
    if (json_is_object(jx_get(t, "Spec.Attachment")))
      snprintf(att_id, sizeof att_id, "%s", jx_str(t, "ID", NO_ID));
  }
}

/* Deletes the attachments inputs made (all but the fixture's) and the
 * nodes of workers gone (all but this manager and the worker). */
static void prune(void) {
  struct store *s = manager_store(L.m);
  struct store_tx *tx = store_tx_new();
  cleanup_json json_t *tasks = store_list(s, STORE_TASK);
  size_t i;
  json_t *t;
  json_array_foreach(tasks, i, t) {
    const char *id = jx_str(t, "ID", "");
    if (json_is_object(jx_get(t, "Spec.Attachment")) && strcmp(id, att_id))
      store_tx_delete(tx, STORE_TASK, id, STORE_ANY_VERSION);
  }
  if (store_tx_empty(tx))
    store_tx_free(tx);
  else
    fuzz_propose(L.m, tx);
  fuzz_prune_nodes(L.m, W.id, 3);
}

/* ---- `docker service logs -f` on the worker's task ---- */

static int logs_port = -1, logs_fd = -1;

static void logs_handle(struct http_req *req, void *ud) {
  struct log_options o = {
      .follow = true, .stdout_ = true, .stderr_ = true, .tail = -1};
  sh_err err = {0};
  if (manager_logs(L.m, req, NULL, task_id, &o, &err) < 0)
    http_respond_error(req, err.status ? err.status : 500, err.msg);
}

/* Reads what the subscription streamed; false once it ended (the last
 * chunk, or the connection closed). */
static bool logs_drain(void) {
  if (logs_fd < 0)
    return false;
  char buf[65536];
  ssize_t n;
  bool alive = true;
  while ((n = recv(logs_fd, buf, sizeof buf, MSG_DONTWAIT)) > 0)
    alive = !(n >= 5 && !memcmp(buf + n - 5, "0\r\n\r\n", 5));
  if (n == 0 || (n < 0 && errno != EAGAIN))
    alive = false;
  return alive;
}

/* A new subscription (the old one's client goes away): the manager tells
 * the worker's session its ID. */
static void subscribe(void) {
  if (logs_fd >= 0) {
    close(logs_fd);
    logs_fd = -1;
  }
  memcpy(sub_id, NO_ID, sizeof sub_id);
  bg_drain();
  if (!bg.ssl)
    return;
  bg_seen = bg.in.len; /* only the new subscription's announcement */
  logs_fd = fuzz_connect(logs_port);
  static const char get[] = "GET /logs HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  if (logs_fd < 0 || send(logs_fd, get, sizeof get - 1, MSG_NOSIGNAL) < 0)
    abort();
  int64_t end = clock_mono_ns() + 500 * NS_PER_MS;
  while (bg.ssl && !strcmp(sub_id, NO_ID) && clock_mono_ns() < end) {
    tconn_wait(&bg);
    bg_drain();
  }
  if (verbose)
    fprintf(stderr, "node: subscription %s\n", sub_id);
}

/* ---- setup and the runs ---- */

static void setup(void) {
  signal(SIGPIPE, SIG_IGN);
  verbose = getenv("FUZZ_VERBOSE") != NULL;
  fuzz_leader_start(&L, "node");
  sh_err err = {0};
  struct http_server *logs =
      http_server_new(uv_default_loop(), logs_handle, NULL);
  if (http_server_listen_tcp(logs, "127.0.0.1", 0, NULL, &err) < 0) {
    fprintf(stderr, "fuzz: %s\n", err.msg);
    abort();
  }
  logs_port = http_server_port(logs);

  /* An attachable network, a service for the worker and one for the
   * manager: restart condition none, so that no replacement follows a
   * task an input fails. */
  json_t *net = json_pack("{s:s, s:s, s:b}", "Name", "fuzz-net", "Driver",
                          "overlay", "Attachable", 1);
  int done = 0;
  char net_id[26];
  if (manager_create_network(L.m, net, net_id, created, &done, &err) < 0) {
    fprintf(stderr, "fuzz: %s\n", err.msg);
    abort();
  }
  json_decref(net);
  fuzz_pump_until(&done, 5000);
  create_service("fuzz-worker", "node.role==worker", svc_id);
  create_service("fuzz-manager", "node.role==manager", msvc_id);

  join();
  bg_open(); /* the worker is ready: its task is placed */
  int64_t end = clock_mono_ns() + 10000 * NS_PER_MS;
  while ((!task_of(svc_id, W.id) || !task_of(msvc_id, NULL)) &&
         clock_mono_ns() < end) {
    uv_run(uv_default_loop(), UV_RUN_NOWAIT);
    usleep(500);
  }
  const json_t *mt = task_of(msvc_id, NULL);
  if (!task_of(svc_id, W.id) || !mt) {
    fprintf(stderr, "fuzz: the fixture tasks were not placed\n");
    abort();
  }
  snprintf(mtask_id, sizeof mtask_id, "%s", jx_str(mt, "ID", NO_ID));
  ensure_task();
  ensure_attachment();
  subscribe();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int64_t last_hb;
  static unsigned sub_tried;
  if (!L.m)
    setup();
  struct store *s = manager_store(L.m);
  /* An input made the worker leave: it joins again, as a new node. */
  bool rejoin = store_node_removed(s, W.id) || !store_get(s, STORE_NODE, W.id);
  if (rejoin) {
    bg_close();
    join();
  }
  if (!bg.ssl)
    bg_open();
  ensure_task();
  runs++;
  if (rejoin || runs % 64 == 0) {
    prune();
    ensure_attachment();
  }
  /* A subscription that ended (an input posted its task's last logs, or
   * took the session it was announced on) is made again; when that
   * fails, not at every run. */
  bool sub_ok = logs_drain() && strcmp(sub_id, NO_ID) != 0;
  if (rejoin || runs % 256 == 0 || (!sub_ok && runs - sub_tried >= 16)) {
    sub_tried = runs;
    subscribe();
  }
  if (clock_mono_ns() - last_hb > 2000 * NS_PER_MS && bg.ssl) {
    cleanup_free char *hb = xasprintf("{\"SessionID\":\"%s\"}", sid);
    worker_call("POST", "/swarm/v1/heartbeat", hb);
    last_hb = clock_mono_ns();
  }

  const struct fuzz_subst subs[] = {
      {"@NODE@", W.id},    {"@MNODE@", manager_node_id(L.m)},
      {"@TASK@", task_id}, {"@MTASK@", mtask_id},
      {"@ATT@", att_id},   {"@SID@", sid},
      {"@SUB@", sub_id},
  };
  size_t len = 0;
  cleanup_free char *msg = fuzz_fill(data, size, subs, ARRAY_SIZE(subs), &len);
  struct tconn c;
  if (!tconn_open(&c, L.port))
    abort();
  int64_t t0 = clock_mono_ns();
  tconn_exchange(&c, msg, len, NULL, 1000);
  if (!c.up) {
    fprintf(stderr, "fuzz: the worker's TLS handshake failed\n");
    abort();
  }
  if (verbose)
    fprintf(stderr,
            "node: %.*s\nnode: %u answers in %lld ms; %zu nodes, %zu "
            "tasks\n",
            (int)strcspn(c.in.data ? c.in.data : "", "\r"),
            c.in.data ? c.in.data : "", c.answers,
            (long long)((clock_mono_ns() - t0) / NS_PER_MS),
            store_count(s, STORE_NODE), store_count(s, STORE_TASK));
  tconn_close(&c);
  bg_drain();
  logs_drain();
  fuzz_check_store(L.m);
  return 0;
}
