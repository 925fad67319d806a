#include "core/workq.h"

#include "core/util.h"

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

struct job {
  workq_work_fn work;
  workq_done_fn done;
  void *ud;
  int cancelled;
  struct job *next;
};

struct workq {
  uv_async_t async;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct job *queue, *queue_tail; /* waiting for a thread */
  struct job *first, *first_tail; /* the same, taken before queue */
  struct job *finished;           /* waiting for the loop */
  bool stopping;
  int nice;
  int nthreads;
  pthread_t *threads;
};

static void push_finished(struct workq *q, struct job *j) {
  j->next = q->finished;
  q->finished = j;
}

static void *thread_main(void *arg) {
  struct workq *q = arg;
  /* Linux: the nice value is per thread. Best effort. */
  if (q->nice)
    (void)setpriority(PRIO_PROCESS, (id_t)gettid(), q->nice);
  pthread_mutex_lock(&q->mu);
  for (;;) {
    while (!q->first && !q->queue && !q->stopping)
      pthread_cond_wait(&q->cv, &q->mu);
    struct job **head = q->first ? &q->first : &q->queue;
    struct job **tail = q->first ? &q->first_tail : &q->queue_tail;
    if (!*head)
      break;
    struct job *j = *head;
    *head = j->next;
    if (!*head)
      *tail = NULL;
    pthread_mutex_unlock(&q->mu);
    j->work(j->ud);
    pthread_mutex_lock(&q->mu);
    push_finished(q, j);
    uv_async_send(&q->async);
  }
  pthread_mutex_unlock(&q->mu);
  return NULL;
}

static void on_async(uv_async_t *a) {
  struct workq *q = a->data;
  pthread_mutex_lock(&q->mu);
  struct job *list = q->finished;
  q->finished = NULL;
  pthread_mutex_unlock(&q->mu);
  /* Completions in submission order are not promised; reverse the LIFO
   * list so they mostly are. */
  struct job *rev = NULL;
  while (list) {
    struct job *n = list->next;
    list->next = rev;
    rev = list;
    list = n;
  }
  while (rev) {
    struct job *n = rev->next;
    rev->done(rev->ud, rev->cancelled);
    free(rev);
    rev = n;
  }
}

struct workq *workq_new(uv_loop_t *loop, int nthreads) {
  return workq_new_nice(loop, nthreads, 0);
}

struct workq *workq_new_nice(uv_loop_t *loop, int nthreads, int nice) {
  struct workq *q = xcalloc(1, sizeof *q);
  q->nice = nice;
  pthread_mutex_init(&q->mu, NULL);
  pthread_cond_init(&q->cv, NULL);
  uv_async_init(loop, &q->async, on_async);
  q->async.data = q;
  q->nthreads = nthreads > 0 ? nthreads : 1;
  q->threads = xcalloc((size_t)q->nthreads, sizeof *q->threads);
  for (int i = 0; i < q->nthreads; i++)
    if (pthread_create(&q->threads[i], NULL, thread_main, q) != 0)
      abort();
  return q;
}

static void submit(struct workq *q, bool first, workq_work_fn work,
                   workq_done_fn done, void *ud) {
  struct job *j = xcalloc(1, sizeof *j);
  j->work = work;
  j->done = done;
  j->ud = ud;
  pthread_mutex_lock(&q->mu);
  if (q->stopping) {
    j->cancelled = 1;
    push_finished(q, j);
    uv_async_send(&q->async);
  } else {
    struct job **head = first ? &q->first : &q->queue;
    struct job **tail = first ? &q->first_tail : &q->queue_tail;
    if (*tail)
      (*tail)->next = j;
    else
      *head = j;
    *tail = j;
    pthread_cond_signal(&q->cv);
  }
  pthread_mutex_unlock(&q->mu);
}

void workq_submit(struct workq *q, workq_work_fn work, workq_done_fn done,
                  void *ud) {
  submit(q, false, work, done, ud);
}

void workq_submit_first(struct workq *q, workq_work_fn work, workq_done_fn done,
                        void *ud) {
  submit(q, true, work, done, ud);
}

void workq_post(struct workq *q, workq_done_fn fn, void *ud) {
  struct job *j = xcalloc(1, sizeof *j);
  j->done = fn;
  j->ud = ud;
  pthread_mutex_lock(&q->mu);
  push_finished(q, j);
  uv_async_send(&q->async);
  pthread_mutex_unlock(&q->mu);
}

static void closed(uv_handle_t *h) {
  struct workq *q = h->data;
  pthread_mutex_destroy(&q->mu);
  pthread_cond_destroy(&q->cv);
  free(q->threads);
  free(q);
}

static void cancel_queued(struct workq *q, struct job **head) {
  while (*head) {
    struct job *j = *head;
    *head = j->next;
    j->cancelled = 1;
    push_finished(q, j);
  }
}

void workq_close(struct workq *q) {
  pthread_mutex_lock(&q->mu);
  q->stopping = true;
  cancel_queued(q, &q->first);
  cancel_queued(q, &q->queue);
  q->first_tail = q->queue_tail = NULL;
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
  for (int i = 0; i < q->nthreads; i++)
    pthread_join(q->threads[i], NULL);
  on_async(&q->async); /* deliver every completion before closing */
  uv_close((uv_handle_t *)&q->async, closed);
}
