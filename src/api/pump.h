/* A response body made on a thread of its own (logs -f, export, save:
 * as long or as large as the client wants) and sent by the loop, with
 * backpressure: the producer blocks while `high` bytes are out (posted
 * to the loop or queued on the connection) and goes on once the
 * connection's queue is down to `low`, so a client that stops reading
 * costs at most `high`, and a client that goes away stops the producer.
 *
 * Order: api_pump_init on the loop; api_pump_write from the producer
 * thread (it posts to the loop through q); the producer then posts its
 * own completion to the same q, which therefore runs after every chunk,
 * and that completion calls api_pump_end. */
#ifndef SHOAL_API_PUMP_H
#define SHOAL_API_PUMP_H

#include "core/flow.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct http_req;
struct workq;

struct api_pump {
  struct http_req *req;
  struct workq *q;
  const char *ctype;
  const char *const *headers; /* extra head lines; NULL: none */
  size_t low;
  bool lazy, begun;
  atomic_bool gone; /* the client went away */
  struct flow flow; /* bytes made and not yet sent */
  size_t held;      /* sent bytes waiting in the connection's queue */
};

/* Takes over req->on_close. lazy: the 200 head goes with the first
 * chunk, so that an error found before any byte can still be a proper
 * error reply (save); otherwise it goes now. */
void api_pump_init(struct api_pump *p, struct http_req *req, struct workq *q,
                   const char *ctype, size_t high, size_t low, bool lazy);
/* Producer thread: 0, or -1 once the client is gone (stop producing).
 * The signature of the write callbacks (void *arg = the pump). */
int api_pump_write(void *pump, const void *buf, size_t len);
/* Producer thread: whether the client went away. */
bool api_pump_gone(void *pump);
/* Loop, after the producer's last write: true when the request is
 * finished (gone, or the stream was begun and is now ended); false when
 * nothing was sent and the caller must reply. */
bool api_pump_end(struct api_pump *p);
/* Runs fn(arg) on a detached thread of its own; -1 if none could start. */
int api_pump_thread(void *(*fn)(void *), void *arg);

#endif
