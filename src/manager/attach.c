/* Standalone containers' network attachments (see attach.h). */
#include "manager/attach.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/id.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "http/server.h"
#include "manager/internal.h"
#include "manager/networks.h"
#include "raft/raftnode.h"
#include "store/store.h"

#include <string.h>

/* How often a waiting request looks for its address, and for how long
 * (moby's swarmRequestTimeout is 20 s). */
#define POLL_MS 50
#define WAIT_MS 20000

struct attach_wait {
  struct attachments *a;
  struct http_req *req;
  char task_id[ID_LEN + 1];
  uv_timer_t timer;
  int64_t deadline_mono;
  bool answered;
  struct attach_wait *next;
};

struct attachments {
  struct manager *m;
  struct attach_wait *waits;
};

bool attachment_task(const json_t *task) {
  return json_is_object(jx_get(task, "Spec.Attachment"));
}

struct attachments *attachments_new(struct manager *m) {
  struct attachments *a = xcalloc(1, sizeof *a);
  a->m = m;
  return a;
}

static void wait_closed(uv_handle_t *h) {
  free(h->data);
}

static void wait_end(struct attach_wait *w, int status, const char *json,
                     const char *msg) {
  if (!w->answered) {
    w->answered = true;
    w->req->on_close = NULL;
    if (json)
      http_respond_json(w->req, status, json);
    else
      http_respond_error(w->req, status, msg);
  }
  for (struct attach_wait **pp = &w->a->waits; *pp; pp = &(*pp)->next)
    if (*pp == w) {
      *pp = w->next;
      break;
    }
  uv_timer_stop(&w->timer);
  uv_close((uv_handle_t *)&w->timer, wait_closed);
}

void attachments_free(struct attachments *a) {
  if (!a)
    return;
  while (a->waits)
    wait_end(a->waits, 503, NULL, RAFTNODE_NO_LEADER_MSG);
  free(a);
}

static bool allocated(const json_t *t) {
  return json_array_size(jx_get(
             json_array_get(json_object_get(t, "NetworksAttachments"), 0),
             "Addresses")) > 0;
}

static char *answer(struct manager *m, const json_t *t) {
  json_t *pub = store_public(t);
  cleanup_json json_t *out = json_pack(
      "{s:s, s:O, s:I}", "ID", jx_str(t, "ID", ""), "NetworksAttachments",
      json_object_get(pub, "NetworksAttachments"), "DataPathPort",
      (json_int_t)jx_int(store_cluster(m->store), "DataPathPort", 4789));
  json_decref(pub);
  return jx_dump(out);
}

static void poll_tick(uv_timer_t *timer) {
  struct attach_wait *w = timer->data;
  json_t *t = store_get(w->a->m->store, STORE_TASK, w->task_id);
  if (t && allocated(t)) {
    cleanup_free char *out = answer(w->a->m, t);
    return wait_end(w, 200, out, NULL);
  }
  if (!t || clock_mono_ns() > w->deadline_mono)
    return wait_end(w, 500, NULL,
                    "attaching to network failed, make sure your network "
                    "options are correct and check manager logs: context "
                    "deadline exceeded");
}

/* The node gave up (its own timeout, a restart): nothing to answer. */
static void wait_gone(struct http_req *req, void *ud) {
  struct attach_wait *w = ud;
  w->answered = true;
  http_req_release(req);
  wait_end(w, 0, NULL, NULL);
}

static void wait_for(struct attachments *a, struct http_req *req,
                     const char *task_id) {
  struct attach_wait *w = xcalloc(1, sizeof *w);
  w->a = a;
  w->req = req;
  snprintf(w->task_id, sizeof w->task_id, "%s", task_id);
  w->deadline_mono = clock_mono_ns() + (int64_t)WAIT_MS * NS_PER_MS;
  uv_timer_init(a->m->loop, &w->timer);
  w->timer.data = w;
  w->next = a->waits;
  a->waits = w;
  req->on_close = wait_gone;
  req->on_close_ud = w;
  uv_timer_start(&w->timer, poll_tick, 0, POLL_MS);
}

/* The node's attachment of this container to this network, if any. */
static json_t *existing(struct store *s, const char *node_id, const char *cid,
                        const char *net_id) {
  cleanup_json json_t *tasks = store_list_by(s, STORE_TASKS_BY_NODE, node_id);
  size_t i;
  json_t *t;
  json_array_foreach(tasks, i, t) {
    if (attachment_task(t) &&
        !strcmp(jx_str(t, "Spec.Attachment.ContainerID", ""), cid) &&
        !strcmp(
            jx_str(json_array_get(jx_get(t, "Spec.Networks"), 0), "Target", ""),
            net_id))
      return t; /* the store keeps it */
  }
  return NULL;
}

struct created {
  struct attachments *a;
  struct http_req *req;
  char task_id[ID_LEN + 1];
};

static void create_done(void *ud, int status, const sh_err *err) {
  struct created *c = ud;
  if (status < 0)
    http_respond_error(c->req, err && err->status ? err->status : 500,
                       err ? err->msg : "attachment failed");
  else
    wait_for(c->a, c->req, c->task_id);
  free(c);
}

/* The leader's check and the request's JSON object; false when it
 * answered already. */
static bool leader_body(struct manager *m, struct http_req *req,
                        json_t **body) {
  sh_err err = {0};
  if (!m->leader)
    http_respond_error(req, 503, RAFTNODE_NO_LEADER_MSG);
  else if (jx_parse_object(req->body, req->body_len, body, &err) < 0)
    http_respond_error(req, 400, err.msg);
  else
    return true;
  return false;
}

void attachments_attach(struct attachments *a, struct http_req *req,
                        const char *node_id) {
  struct manager *m = a->m;
  cleanup_json json_t *body = NULL;
  if (!leader_body(m, req, &body))
    return;
  sh_err err = {0};
  const char *cid = jx_str(body, "ContainerID", "");
  const char *name = jx_str(body, "Name", "");
  const char *target = jx_str(body, "Target", "");
  if (!*cid || !*target) {
    rpc_error(&err, 400, "invalid argument");
    return http_respond_error(req, err.status, err.msg);
  }
  sh_err ferr = {0};
  json_t *net = networks_find(m->store, target, &ferr);
  if (!net || networks_is_hidden(net)) {
    rpcf(&err, 404, "network %s not found", target);
    return http_respond_error(req, err.status, err.msg);
  }
  if (!jx_bool(net, "Spec.Attachable", false)) {
    rpcf(&err, 403, "network %s not manually attachable", target);
    return http_respond_error(req, err.status, err.msg);
  }
  const char *net_id = jx_str(net, "ID", "");
  json_t *have = existing(m->store, node_id, cid, net_id);
  if (have) {
    wait_for(a, req, jx_str(have, "ID", ""));
    return;
  }
  char id[ID_LEN + 1], ts[64];
  id_new(id);
  clock_format_rfc3339(clock_wall_ns(), ts, sizeof ts);
  /* State new: the allocator gives it its address and makes it running
   * (no node runs it: the container is the node's own). */
  json_t *t = json_pack(
      "{s:s, s:s, s:{}, s:{s:{s:s, s:s}, s:[{s:s}]}, s:{s:s, s:s, s:s}, "
      "s:s}",
      "ID", id, "NodeID", node_id, "Labels", "Spec", "Attachment",
      "ContainerID", cid, "Name", name, "Networks", "Target", net_id, "Status",
      "Timestamp", ts, "State", "new", "Message", "created", "DesiredState",
      "running");
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_TASK, t, STORE_MUST_CREATE);
  struct created *c = xcalloc(1, sizeof *c);
  c->a = a;
  c->req = req;
  snprintf(c->task_id, sizeof c->task_id, "%s", id);
  if (manager_propose(m, tx, create_done, c, &err) < 0) {
    free(c);
    return http_respond_error(req, err.status ? err.status : 500, err.msg);
  }
}

struct removed {
  struct http_req *req;
};

static void delete_done(void *ud, int status, const sh_err *err) {
  struct removed *r = ud;
  if (status < 0)
    http_respond_error(r->req, err && err->status ? err->status : 500,
                       err ? err->msg : "detach failed");
  else
    http_respond_json(r->req, 200, "{}");
  free(r);
}

void attachments_detach(struct attachments *a, struct http_req *req,
                        const char *node_id) {
  struct manager *m = a->m;
  cleanup_json json_t *body = NULL;
  if (!leader_body(m, req, &body))
    return;
  sh_err err = {0};
  const char *id = jx_str(body, "ID", "");
  if (!*id) {
    rpc_error(&err, 400, "invalid argument");
    return http_respond_error(req, err.status, err.msg);
  }
  json_t *t = store_get(m->store, STORE_TASK, id);
  if (!t || !attachment_task(t)) {
    rpcf(&err, 404, "attachment %s not found", id);
    return http_respond_error(req, err.status, err.msg);
  }
  if (strcmp(jx_str(t, "NodeID", ""), node_id) != 0) {
    rpcf(&err, 403, "attachment %s doesn't belong to this node", id);
    return http_respond_error(req, err.status, err.msg);
  }
  struct store_tx *tx = store_tx_new();
  store_tx_delete(tx, STORE_TASK, id, STORE_ANY_VERSION);
  struct removed *r = xcalloc(1, sizeof *r);
  r->req = req;
  if (manager_propose(m, tx, delete_done, r, &err) < 0) {
    free(r);
    return http_respond_error(req, err.status ? err.status : 500, err.msg);
  }
}
