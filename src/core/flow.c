#include "core/flow.h"

void flow_init(struct flow *f, size_t high) {
  pthread_mutex_init(&f->mu, NULL);
  pthread_cond_init(&f->cv, NULL);
  f->out = 0;
  f->high = high;
  f->closed = false;
}

void flow_destroy(struct flow *f) {
  pthread_mutex_destroy(&f->mu);
  pthread_cond_destroy(&f->cv);
}

bool flow_acquire(struct flow *f, size_t n) {
  pthread_mutex_lock(&f->mu);
  while (!f->closed && f->out >= f->high)
    pthread_cond_wait(&f->cv, &f->mu);
  bool ok = !f->closed;
  if (ok)
    f->out += n;
  pthread_mutex_unlock(&f->mu);
  return ok;
}

void flow_release(struct flow *f, size_t n) {
  pthread_mutex_lock(&f->mu);
  f->out = n < f->out ? f->out - n : 0;
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->mu);
}

void flow_close(struct flow *f) {
  pthread_mutex_lock(&f->mu);
  f->closed = true;
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->mu);
}

size_t flow_out(struct flow *f) {
  pthread_mutex_lock(&f->mu);
  size_t n = f->out;
  pthread_mutex_unlock(&f->mu);
  return n;
}
