/* core/spawn.h's posix_spawn and wait. */
#include "core/spawn.h"

#include "core/err.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const default_env[] = {
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL};

int spawn_proc(const struct spawn_opts *o, pid_t *pid, sh_err *err) {
  cleanup_fd int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull < 0)
    return sh_errno(err, errno, "open /dev/null");
  /* dup2 onto the same number would keep FD_CLOEXEC: move sources above 3. */
  cleanup_fd int fd3 = o->fd3 >= 0 ? fcntl(o->fd3, F_DUPFD_CLOEXEC, 10) : -1;
  if (o->fd3 >= 0 && fd3 < 0)
    return sh_errno(err, errno, "dup");

  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_adddup2(&fa, o->fd_in > 0 ? o->fd_in : devnull, 0);
  posix_spawn_file_actions_adddup2(&fa, o->fd_out >= 0 ? o->fd_out : devnull,
                                   1);
  posix_spawn_file_actions_adddup2(&fa, o->fd_err >= 0 ? o->fd_err : devnull,
                                   2);
  if (fd3 >= 0)
    posix_spawn_file_actions_adddup2(&fa, fd3, 3);
  posix_spawn_file_actions_addclosefrom_np(&fa, fd3 >= 0 ? 4 : 3);
  if (o->cwd)
    posix_spawn_file_actions_addchdir_np(&fa, o->cwd);

  /* Worker threads may block signals and the daemon may catch some: the
   * child starts clean. */
  sigset_t empty, all;
  sigemptyset(&empty);
  sigfillset(&all);
  sigdelset(&all, SIGKILL);
  sigdelset(&all, SIGSTOP);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETSID);

  int rc = posix_spawn(pid, o->path ? o->path : o->argv[0], &fa, &attr,
                       (char *const *)o->argv,
                       (char *const *)(o->envp ? o->envp : default_env));
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0)
    return sh_errno(err, rc, "run %s", o->path ? o->path : o->argv[0]);
  return 0;
}

int spawn_wait(pid_t pid) {
  int st;
  for (;;) {
    if (waitpid(pid, &st, 0) == pid)
      return st;
    if (errno != EINTR)
      return -1;
  }
}
