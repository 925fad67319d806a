/* Thread-made response bodies with backpressure (see pump.h). */
#include "api/pump.h"

#include "core/util.h"
#include "core/workq.h"
#include "http/server.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct chunk {
  struct api_pump *p;
  void *data;
  size_t len;
};

static void drained(struct http_req *req, void *ud) {
  struct api_pump *p = ud;
  flow_release(&p->flow, p->held);
  p->held = 0;
  http_req_on_drain(req, 0, NULL, NULL);
}

static void on_gone(struct http_req *req, void *ud) {
  (void)req;
  struct api_pump *p = ud;
  atomic_store(&p->gone, true);
  flow_close(&p->flow);
}

void api_pump_init(struct api_pump *p, struct http_req *req, struct workq *q,
                   const char *ctype, size_t high, size_t low, bool lazy) {
  p->req = req;
  p->q = q;
  p->ctype = ctype;
  p->headers = NULL;
  p->low = low;
  p->lazy = lazy;
  p->begun = false;
  p->held = 0;
  atomic_store(&p->gone, false);
  flow_init(&p->flow, high);
  req->on_close = on_gone;
  req->on_close_ud = p;
  if (!lazy) {
    http_stream_begin(req, 200, ctype, NULL);
    p->begun = true;
  }
}

static void chunk_on_loop(void *ud, int cancelled) {
  struct chunk *c = ud;
  struct api_pump *p = c->p;
  bool live = !cancelled && !atomic_load(&p->gone);
  if (live && !p->begun) {
    http_stream_begin(p->req, 200, p->ctype, p->headers);
    p->begun = true;
  }
  if (live && http_stream_write(p->req, c->data, c->len) == 0 &&
      http_req_queued(p->req) > p->low) {
    /* Given back when the client has read it. */
    p->held += c->len;
    http_req_on_drain(p->req, p->low, drained, p);
  } else {
    flow_release(&p->flow, c->len);
  }
  free(c->data);
  free(c);
}

int api_pump_write(void *pump, const void *buf, size_t len) {
  struct api_pump *p = pump;
  if (atomic_load(&p->gone) || !flow_acquire(&p->flow, len))
    return -1;
  struct chunk *c = xcalloc(1, sizeof *c);
  c->p = p;
  c->data = xmalloc(len);
  memcpy(c->data, buf, len);
  c->len = len;
  workq_post(p->q, chunk_on_loop, c);
  return 0;
}

bool api_pump_gone(void *pump) {
  struct api_pump *p = pump;
  return atomic_load(&p->gone);
}

bool api_pump_end(struct api_pump *p) {
  http_req_on_drain(p->req, 0, NULL, NULL);
  flow_destroy(&p->flow);
  if (atomic_load(&p->gone)) {
    http_req_release(p->req);
    return true;
  }
  p->req->on_close = NULL;
  if (!p->begun)
    return false;
  http_stream_end(p->req); /* an error after the first byte cuts it */
  return true;
}

int api_pump_thread(void *(*fn)(void *), void *arg) {
  pthread_t th;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int rc = pthread_create(&th, &attr, fn, arg);
  pthread_attr_destroy(&attr);
  return rc == 0 ? 0 : -1;
}
