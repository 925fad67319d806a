#include "manager/logbroker.h"

#include "core/err.h"
#include "core/id.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "http/server.h"
#include "manager/dispatcher.h"
#include "manager/internal.h"
#include "store/store.h"

/* A client that stops reading: once this much waits in its connection's
 * queue, nodes' posts are held unanswered (each node sends one at a time,
 * and its reader waits for the answer) until the queue is down to
 * LOG_QUEUE_LOW. */
#define LOG_QUEUE_HIGH (256 * 1024)
#define LOG_QUEUE_LOW (64 * 1024)

struct held {
  struct sub *s;
  struct http_req *req; /* a node's post */
  struct held *next;
};

struct sub {
  struct logbroker *b;
  struct held *held, **held_tail; /* posts in arrival order */
  char id[ID_LEN + 1];
  struct http_req *req; /* NULL once the client left */
  struct log_options o;
  bool tty;        /* ContainerSpec.TTY: raw bytes, no frames, as dockerd */
  json_t *pending; /* task ID -> {"Node","Service"} until its last post */
  json_t *nodes;   /* node IDs asked */
  struct sub *next;
};

struct logbroker {
  struct manager *m;
  struct sub *subs;
};

struct logbroker *logbroker_new(struct manager *m) {
  struct logbroker *b = xcalloc(1, sizeof *b);
  b->m = m;
  return b;
}

static void sub_free(struct sub *s) {
  for (struct sub **pp = &s->b->subs; *pp; pp = &(*pp)->next) {
    if (*pp == s) {
      *pp = s->next;
      break;
    }
  }
  json_decref(s->pending);
  json_decref(s->nodes);
  free(s);
}

static bool publish_now(struct sub *s, struct http_req *req,
                        const char *node_id);

static struct held *held_pop(struct sub *s) {
  struct held *h = s->held;
  if (h && !(s->held = h->next))
    s->held_tail = &s->held;
  return h;
}

/* The node gave up on a held post (its timeout): drop it unanswered. */
static void held_gone(struct http_req *req, void *ud) {
  struct held *h = ud;
  struct sub *s = h->s;
  for (struct held **pp = &s->held; *pp; pp = &(*pp)->next) {
    if (*pp == h) {
      if (!(*pp = h->next))
        s->held_tail = pp;
      break;
    }
  }
  free(h);
  http_req_release(req);
}

/* The client's queue drained: answer held posts while it stays short. */
static void client_drained(struct http_req *creq, void *ud) {
  struct sub *s = ud;
  http_req_on_drain(creq, 0, NULL, NULL);
  struct held *h;
  while (s->req && http_req_queued(s->req) <= LOG_QUEUE_HIGH &&
         (h = held_pop(s))) {
    struct http_req *req = h->req;
    free(h);
    req->on_close = NULL;
    if (publish_now(s, req, req->peer_cn))
      return; /* the subscription ended */
  }
  if (s->held && s->req)
    http_req_on_drain(s->req, LOG_QUEUE_LOW, client_drained, s);
}

/* Tells the nodes to stop reading (follow) and forgets the subscription. */
static void sub_end(struct sub *s, bool client_gone) {
  json_t *msg = json_pack("{s:s, s:s}", "Type", "logs-cancel", "Sub", s->id);
  size_t i;
  json_t *n;
  json_array_foreach(s->nodes, i, n)
      dispatcher_send(s->b->m->disp, json_string_value(n), msg);
  json_decref(msg);
  /* Held posts are answered (their frames dropped): the nodes go on. */
  struct held *h;
  while ((h = held_pop(s))) {
    h->req->on_close = NULL;
    http_respond_json(h->req, 200, "{}");
    free(h);
  }
  if (s->req) {
    struct http_req *req = s->req;
    s->req = NULL;
    req->on_close = NULL;
    http_req_on_drain(req, 0, NULL, NULL);
    if (client_gone)
      http_req_release(req);
    else
      http_stream_end(req);
  }
  sub_free(s);
}

static void client_gone(struct http_req *req, void *ud) {
  sub_end(ud, true);
}

void logbroker_free(struct logbroker *b) {
  if (!b)
    return;
  while (b->subs)
    sub_end(b->subs, false);
  free(b);
}

int logbroker_subscribe(struct logbroker *b, struct http_req *req,
                        const char *service_ref, const char *task_ref,
                        const struct log_options *o, sh_err *err) {
  struct store *st = b->m->store;
  json_t *svc = NULL, *task = NULL;
  if (service_ref && !(svc = store_find(st, STORE_SERVICE, service_ref, err)))
    return -1;
  if (task_ref && !(task = store_find(st, STORE_TASK, task_ref, err)))
    return -1;
  struct sub *s = xcalloc(1, sizeof *s);
  s->b = b;
  id_new(s->id);
  s->o = *o;
  s->pending = json_object();
  s->nodes = json_array();
  s->held_tail = &s->held;
  s->tty = jx_bool(task ? task : svc,
                   task ? "Spec.ContainerSpec.TTY"
                        : "Spec.TaskTemplate.ContainerSpec.TTY",
                   false);
  /* Per node, the containers of the wanted tasks it ran. */
  json_t *per_node = json_object();
  json_t *tasks = store_list(st, STORE_TASK);
  size_t i;
  json_t *t;
  json_array_foreach(tasks, i, t) {
    if (task ? t != task
             : strcmp(jx_str(t, "ServiceID", ""), jx_str(svc, "ID", "")) != 0)
      continue;
    const char *node = jx_str(t, "NodeID", "");
    const char *cid = jx_str(t, "Status.ContainerStatus.ContainerID", "");
    if (!*node || !*cid)
      continue;
    json_t *list = json_object_get(per_node, node);
    if (!list) {
      list = json_array();
      json_object_set_new(per_node, node, list);
    }
    json_array_append_new(
        list,
        json_pack("{s:s, s:s}", "ID", jx_str(t, "ID", ""), "Container", cid));
    json_object_set_new(s->pending, jx_str(t, "ID", ""),
                        json_pack("{s:s, s:s}", "Node", node, "Service",
                                  jx_str(t, "ServiceID", "")));
  }
  json_decref(tasks);
  s->next = b->subs;
  b->subs = s;
  s->req = req;
  req->on_close = client_gone;
  req->on_close_ud = s;
  http_stream_begin(req, 200,
                    s->tty ? "application/vnd.docker.raw-stream"
                           : "application/vnd.docker.multiplexed-stream",
                    NULL);
  const char *node;
  json_t *list;
  json_object_foreach(per_node, node, list) {
    json_t *msg =
        json_pack("{s:s, s:s, s:O, s:{s:b, s:b, s:b, s:I, s:I}}", "Type",
                  "logs", "Sub", s->id, "Tasks", list, "Options", "Follow",
                  o->follow, "Stdout", o->stdout_, "Stderr", o->stderr_, "Tail",
                  (json_int_t)o->tail, "Since", (json_int_t)o->since_ns);
    json_array_append_new(s->nodes, json_string(node));
    dispatcher_send(b->m->disp, node, msg);
    json_decref(msg);
  }
  json_decref(per_node);
  if (json_object_size(s->pending) == 0 && !o->follow)
    sub_end(s, false);
  return 0;
}

/* Rewrites the node's frames (payload "TIMESTAMP message") for the client:
 * [timestamp ][details ]message, as dockerd's log stream writer. */
static void forward_frames(struct sub *s, const char *task_id,
                           const json_t *ctx, const unsigned char *p,
                           size_t len) {
  char details[256];
  snprintf(details, sizeof details,
           "com.docker.swarm.node.id=%s,com.docker.swarm.service.id=%s,"
           "com.docker.swarm.task.id=%s ",
           jx_str(ctx, "Node", ""), jx_str(ctx, "Service", ""), task_id);
  size_t off = 0;
  while (off + 8 <= len && s->req) {
    unsigned type = p[off];
    size_t n = ((size_t)p[off + 4] << 24) | ((size_t)p[off + 5] << 16) |
               ((size_t)p[off + 6] << 8) | p[off + 7];
    if (off + 8 + n > len)
      break;
    const char *msg = (const char *)p + off + 8;
    const char *sp = memchr(msg, ' ', n);
    size_t tslen = sp ? (size_t)(sp - msg) : 0;
    const char *body = sp ? sp + 1 : msg;
    size_t blen = n - (size_t)(body - msg);
    sh_buf out = {0};
    unsigned char hdr[8] = {(unsigned char)type, 0, 0, 0, 0, 0, 0, 0};
    buf_append(&out, hdr, sizeof hdr);
    if (s->o.timestamps && tslen) {
      buf_append(&out, msg, tslen);
      buf_append(&out, " ", 1);
    }
    if (s->o.details)
      buf_append(&out, details, strlen(details));
    buf_append(&out, body, blen);
    size_t plen = out.len - 8;
    out.data[4] = (char)(plen >> 24);
    out.data[5] = (char)(plen >> 16);
    out.data[6] = (char)(plen >> 8);
    out.data[7] = (char)plen;
    if (s->tty)
      http_stream_write(s->req, out.data + 8, plen);
    else
      http_stream_write(s->req, out.data, out.len);
    buf_free(&out);
    off += 8 + n;
  }
}

void logbroker_publish(struct logbroker *b, struct http_req *req,
                       const char *node_id) {
  const char *id = req->path + strlen("/swarm/v1/logs/");
  struct sub *s = b->subs;
  while (s && strcmp(s->id, id) != 0)
    s = s->next;
  if (s && s->req && (s->held || http_req_queued(s->req) > LOG_QUEUE_HIGH)) {
    /* The client is behind: this node waits (in order behind others). */
    struct held *h = xcalloc(1, sizeof *h);
    h->s = s;
    h->req = req;
    *s->held_tail = h;
    s->held_tail = &h->next;
    req->on_close = held_gone;
    req->on_close_ud = h;
    http_req_on_drain(s->req, LOG_QUEUE_LOW, client_drained, s);
    return;
  }
  if (!s)
    return http_respond_error(req, 404, "no such log subscription");
  publish_now(s, req, node_id);
}

/* Sends a node's frames on and answers its post; true when that ended
 * (and freed) the subscription. */
static bool publish_now(struct sub *s, struct http_req *req,
                        const char *node_id) {
  cleanup_free char *task = http_req_query(req, "task");
  cleanup_free char *lastv = http_req_query(req, "last");
  bool last = lastv && strcmp(lastv, "1") == 0;
  if (!task) {
    http_respond_error(req, 404, "no such log subscription");
    return false;
  }
  json_t *ctx = json_object_get(s->pending, task);
  if (!ctx || strcmp(jx_str(ctx, "Node", ""), node_id) != 0) {
    http_respond_error(req, 404, "no such task in this subscription");
    return false;
  }
  forward_frames(s, task, ctx, (const unsigned char *)req->body, req->body_len);
  if (last)
    json_object_del(s->pending, task);
  http_respond_json(req, 200, "{}");
  if (json_object_size(s->pending) == 0 && !s->o.follow) {
    sub_end(s, false);
    return true;
  }
  return false;
}
