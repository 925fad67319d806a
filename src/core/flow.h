/* Backpressure between a producer thread (a log reader) and the loop that
 * sends what it produced: the producer waits while `high` bytes or more
 * are out (posted to the loop and not yet taken by the peer); the loop
 * gives bytes back as they leave. A reader whose client stops reading so
 * stops reading its source, and memory stays bounded. */
#ifndef SHOAL_CORE_FLOW_H
#define SHOAL_CORE_FLOW_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

struct flow {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  size_t out, high;
  bool closed;
};

void flow_init(struct flow *f, size_t high);
void flow_destroy(struct flow *f);
/* Producer: waits until fewer than `high` bytes are out (or the flow is
 * closed), then counts n more out. False once closed. */
bool flow_acquire(struct flow *f, size_t n);
/* Consumer: n bytes left; wakes the producer. */
void flow_release(struct flow *f, size_t n);
/* Wakes the producer for good (client gone, cancel). */
void flow_close(struct flow *f);
size_t flow_out(struct flow *f);

#endif
