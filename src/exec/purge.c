/* A removed container's files leave its directories in one rename each and
 * are deleted later by one thread at idle CPU and I/O priority.
 *
 * Deleting them at once held every removal for the filesystem: a
 * container's upper layer and logs can be many files, and a filesystem
 * mounted with `discard` waits for the device at each freed file (50
 * removals at once spent most of their time there). The container is gone
 * from every listing after the rename; the space comes back a moment
 * later, as containerd's snapshot cleanup does it. */
#include "exec/internal.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The purge waits for a pause in the executor's removals and creates (a
 * burst keeps the disk and the CPU for itself), but never longer than
 * PURGE_MAX_WAIT_NS after the first removal. */
#define PURGE_QUIET_NS (1000 * NS_PER_MS)
#define PURGE_MAX_WAIT_NS (10 * NS_PER_SEC)

#define IOPRIO_CLASS_IDLE 3
#define IOPRIO_CLASS_SHIFT 13
#define IOPRIO_WHO_PROCESS 1

struct exec_purger {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t thread;
  bool started, stop, pending, busy;
  int64_t first_ns, last_ns; /* of the removals not purged yet */
  unsigned long seq;         /* makes trash names unique */
  char *trash[2];            /* <data-root>/trash, <exec-root>/trash */
};

/* clock_mono_ns() time at as a timespec for the monotonic condvar. */
static struct timespec mono_ts(int64_t at) {
  return (struct timespec){.tv_sec = (time_t)(at / NS_PER_SEC),
                           .tv_nsec = (long)(at % NS_PER_SEC)};
}

/* Stops between entries when the executor closes (a shutdown does not
 * wait for a big purge; the next start finishes it). */
static void purge_dir(struct exec_purger *pg, const char *trash) {
  DIR *d = opendir(trash);
  if (!d)
    return;
  struct dirent *de;
  while (!__atomic_load_n(&pg->stop, __ATOMIC_RELAXED) && (de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
      continue;
    cleanup_free char *path = xasprintf("%s/%s", trash, de->d_name);
    sh_err err = {0};
    if (exec_rm_rf(path, &err) < 0)
      log_warn("purging a removed container's files: %s", err.msg);
  }
  closedir(d);
}

static void *purger_main(void *arg) {
  struct exec_purger *pg = arg;
  (void)setpriority(PRIO_PROCESS, (id_t)gettid(), 19);
  (void)syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0,
                IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT);
  pthread_mutex_lock(&pg->mu);
  for (;;) {
    while (!pg->stop && !pg->pending)
      pthread_cond_wait(&pg->cv, &pg->mu);
    if (pg->stop)
      break;
    int64_t now = clock_mono_ns();
    int64_t due = pg->last_ns + PURGE_QUIET_NS;
    if (due > pg->first_ns + PURGE_MAX_WAIT_NS)
      due = pg->first_ns + PURGE_MAX_WAIT_NS;
    if (now < due) {
      struct timespec ts = mono_ts(due);
      pthread_cond_timedwait(&pg->cv, &pg->mu, &ts);
      continue;
    }
    pg->pending = false;
    pg->busy = true;
    pthread_mutex_unlock(&pg->mu);
    for (size_t i = 0; i < ARRAY_SIZE(pg->trash); i++)
      purge_dir(pg, pg->trash[i]);
    pthread_mutex_lock(&pg->mu);
    pg->busy = false;
    pthread_cond_broadcast(&pg->cv);
  }
  pthread_mutex_unlock(&pg->mu);
  return NULL;
}

/* Called with pg->mu held. */
static void purger_kick(struct exec_purger *pg) {
  int64_t now = clock_mono_ns();
  if (!pg->pending)
    pg->first_ns = now;
  pg->last_ns = now;
  pg->pending = true;
  if (!pg->started) {
    pg->started = pthread_create(&pg->thread, NULL, purger_main, pg) == 0;
    if (!pg->started) {
      log_warn("no purge thread: removed containers' files stay in %s and %s",
               pg->trash[0], pg->trash[1]);
      return;
    }
  }
  pthread_cond_broadcast(&pg->cv);
}

int exec_purger_open(executor *ex, sh_err *err) {
  struct exec_purger *pg = xcalloc(1, sizeof *pg);
  pthread_mutex_init(&pg->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&pg->cv, &ca);
  pthread_condattr_destroy(&ca);
  pg->trash[0] = xasprintf("%s/trash", ex->data_root);
  pg->trash[1] = xasprintf("%s/trash", ex->exec_root);
  ex->purger = pg;
  bool leftovers = false;
  for (size_t i = 0; i < ARRAY_SIZE(pg->trash); i++) {
    if (mkdir_p(pg->trash[i], 0700, err) < 0)
      return -1;
    leftovers = leftovers || !util_dir_empty(pg->trash[i]);
  }
  /* A daemon that stopped before its purge: finish it. */
  if (leftovers) {
    pthread_mutex_lock(&pg->mu);
    purger_kick(pg);
    pthread_mutex_unlock(&pg->mu);
  }
  return 0;
}

void exec_purger_close(executor *ex) {
  struct exec_purger *pg = ex->purger;
  if (!pg)
    return;
  pthread_mutex_lock(&pg->mu);
  __atomic_store_n(&pg->stop, true, __ATOMIC_RELAXED);
  pthread_cond_broadcast(&pg->cv);
  pthread_mutex_unlock(&pg->mu);
  if (pg->started)
    pthread_join(pg->thread, NULL);
  pthread_cond_destroy(&pg->cv);
  pthread_mutex_destroy(&pg->mu);
  for (size_t i = 0; i < ARRAY_SIZE(pg->trash); i++)
    free(pg->trash[i]);
  free(pg);
  ex->purger = NULL;
}

void exec_purger_busy(executor *ex) {
  struct exec_purger *pg = ex->purger;
  pthread_mutex_lock(&pg->mu);
  if (pg->pending)
    pg->last_ns = clock_mono_ns();
  pthread_mutex_unlock(&pg->mu);
}

int exec_trash(executor *ex, const char *path, bool on_data_root, sh_err *err) {
  struct exec_purger *pg = ex->purger;
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  pthread_mutex_lock(&pg->mu);
  unsigned long seq = ++pg->seq;
  pthread_mutex_unlock(&pg->mu);
  cleanup_free char *to =
      xasprintf("%s/%s.%lu", pg->trash[on_data_root ? 0 : 1], base, seq);
  if (rename(path, to) < 0) {
    if (errno == ENOENT) /* nothing to remove */
      return 0;
    /* e.g. another filesystem mounted in between (EXDEV): at once, then */
    return exec_rm_rf(path, err);
  }
  pthread_mutex_lock(&pg->mu);
  purger_kick(pg);
  pthread_mutex_unlock(&pg->mu);
  return 0;
}

bool exec_purge_wait(executor *ex, int64_t timeout_ns) {
  struct exec_purger *pg = ex->purger;
  int64_t deadline = clock_mono_ns() + timeout_ns;
  pthread_mutex_lock(&pg->mu);
  bool done;
  for (;;) {
    done = !pg->pending && !pg->busy;
    if (done || clock_mono_ns() >= deadline)
      break;
    struct timespec ts = mono_ts(deadline);
    pthread_cond_timedwait(&pg->cv, &pg->mu, &ts);
  }
  pthread_mutex_unlock(&pg->mu);
  return done;
}
