/* A pool of threads for blocking work (image pulls, layer unpacking, crun
 * and conmon calls) that must stay off the libuv loop and off libuv's own
 * thread pool (libraft's disk I/O uses that one). Work runs on a pool
 * thread; its completion runs on the loop thread. */
#ifndef SHOAL_CORE_WORKQ_H
#define SHOAL_CORE_WORKQ_H

#include <uv.h>

struct workq;

/* Runs on a pool thread: must not touch loop-owned state. */
typedef void (*workq_work_fn)(void *ud);
/* Runs on the loop thread after work finished (or was cancelled: then
 * work never ran and cancelled is 1). */
typedef void (*workq_done_fn)(void *ud, int cancelled);

struct workq *workq_new(uv_loop_t *loop, int nthreads);
/* Threads at nice `nice` (and so the processes they spawn): background
 * work that must leave the CPU to the API under load. */
struct workq *workq_new_nice(uv_loop_t *loop, int nthreads, int nice);
void workq_submit(struct workq *q, workq_work_fn work, workq_done_fn done,
                  void *ud);
/* As workq_submit, ahead of everything workq_submit queued (in order
 * among themselves): the next step of work already begun, which should
 * finish before new work starts. */
void workq_submit_first(struct workq *q, workq_work_fn work, workq_done_fn done,
                        void *ud);
/* From any thread: runs fn(ud, 0) on the loop thread soon (progress
 * reports from work in flight). After workq_close it is not called. */
void workq_post(struct workq *q, workq_done_fn fn, void *ud);
/* Cancels queued work (done(cancelled=1) on the loop), waits for running
 * work to finish, joins the threads, then frees q once its handle closes. */
void workq_close(struct workq *q);

#endif
