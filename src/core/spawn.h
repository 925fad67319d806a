/* Child processes from a threaded daemon: posix_spawn, so nothing but exec
 * happens in the child (crun, conmon, and shoald's own helpers re-executed
 * from /proc/self/exe). */
#ifndef SHOAL_CORE_SPAWN_H
#define SHOAL_CORE_SPAWN_H

#include <sys/types.h>

struct sh_err;

struct spawn_opts {
  const char *path; /* NULL: argv[0] */
  const char *const *argv;
  const char *const *envp; /* NULL: a minimal PATH */
  int fd_in;               /* <= 0: /dev/null (never the daemon's own 0) */
  int fd_out, fd_err;      /* -1: /dev/null */
  int fd3;                 /* -1: none; else becomes fd 3 in the child */
  const char *cwd;         /* NULL: inherit */
};
/* posix_spawn with default signal dispositions, an empty signal mask, a
 * session of its own and every other descriptor closed. */
int spawn_proc(const struct spawn_opts *o, pid_t *pid, struct sh_err *err);
/* waitpid that survives EINTR; returns the raw status or -1. */
int spawn_wait(pid_t pid);

#endif
