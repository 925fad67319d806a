/* A container's process watched from the event loop through a pidfd: its
 * exit arrives as a poll event, and a stop is a signal plus a timer, so
 * any number of stops wait out their grace periods at once without a
 * thread each. */
#include "exec/exec.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/util.h"

#include <errno.h>
#include <signal.h>
#include <sys/syscall.h>

#define DEFAULT_GRACE_NS (10 * NS_PER_SEC)

struct exec_watch {
  uv_poll_t poll;
  uv_timer_t grace;
  int fd;
  int open; /* handles not closed yet */
  bool exited;
  exec_exit_fn on_exit;
  void *ud;
};

static void closed(uv_handle_t *h) {
  struct exec_watch *wa = h->data;
  if (--wa->open > 0)
    return;
  /* libuv is done with the descriptor only now. */
  close(wa->fd);
  free(wa);
}

static void on_poll(uv_poll_t *p, int status, int events) {
  struct exec_watch *wa = p->data;
  /* A pidfd only becomes readable when the process exits; an error on it
   * (never expected) would otherwise spin the loop. */
  uv_poll_stop(&wa->poll);
  uv_timer_stop(&wa->grace);
  if (wa->exited)
    return;
  wa->exited = true;
  wa->on_exit(wa, wa->ud);
}

static int send_signal(struct exec_watch *wa, int sig, sh_err *err) {
  if (syscall(SYS_pidfd_send_signal, wa->fd, sig, NULL, 0) < 0 &&
      errno != ESRCH)
    return sh_errno(err, errno, "signal %d", sig);
  return 0;
}

static void on_grace(uv_timer_t *t) {
  struct exec_watch *wa = t->data;
  /* Nothing to report to: the exit (or its absence) shows on the poll. */
  send_signal(wa, SIGKILL, NULL);
}

int exec_watch_new(uv_loop_t *loop, int pidfd, exec_exit_fn on_exit, void *ud,
                   struct exec_watch **out, sh_err *err) {
  struct exec_watch *wa = xcalloc(1, sizeof *wa);
  wa->fd = pidfd;
  wa->on_exit = on_exit;
  wa->ud = ud;
  uv_timer_init(loop, &wa->grace);
  wa->grace.data = wa;
  wa->open = 1;
  int rc = uv_poll_init(loop, &wa->poll, pidfd);
  if (rc < 0) {
    uv_close((uv_handle_t *)&wa->grace, closed);
    return sh_error(err, 500, "watching a container process: %s",
                    uv_strerror(rc));
  }
  wa->poll.data = wa;
  wa->open = 2;
  uv_poll_start(&wa->poll, UV_READABLE, on_poll);
  *out = wa;
  return 0;
}

int exec_watch_stop(struct exec_watch *wa, int sig, int64_t grace_ns,
                    sh_err *err) {
  if (wa->exited)
    return 1;
  if (sig <= 0)
    sig = SIGTERM;
  if (grace_ns < 0)
    grace_ns = DEFAULT_GRACE_NS;
  if (send_signal(wa, sig, err) < 0)
    return -1;
  if (sig != SIGKILL)
    uv_timer_start(&wa->grace, on_grace, (uint64_t)(grace_ns / NS_PER_MS), 0);
  return 0;
}

void exec_watch_free(struct exec_watch *wa) {
  if (!wa)
    return;
  wa->exited = true; /* no callback from here on */
  uv_close((uv_handle_t *)&wa->grace, closed);
  if (wa->open == 2)
    uv_close((uv_handle_t *)&wa->poll, closed);
}

void exec_watch_unref(struct exec_watch *wa) {
  if (!wa)
    return;
  uv_unref((uv_handle_t *)&wa->grace);
  if (wa->open == 2)
    uv_unref((uv_handle_t *)&wa->poll);
}
