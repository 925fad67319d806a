/* Child processes (crun, conmon) and file helpers. posix_spawn because the
 * daemon is threaded: nothing but exec happens in the child. */
#include "exec/internal.h"

#include "core/err.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>

static const char *const default_env[] = {
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL};

int exec_proc_spawn(const struct proc_opts *o, pid_t *pid, sh_err *err) {
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

  int rc = posix_spawn(pid, o->argv[0], &fa, &attr, (char *const *)o->argv,
                       (char *const *)(o->envp ? o->envp : default_env));
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0)
    return sh_errno(err, rc, "run %s", o->argv[0]);
  return 0;
}

int exec_proc_wait(pid_t pid) {
  int st;
  for (;;) {
    if (waitpid(pid, &st, 0) == pid)
      return st;
    if (errno != EINTR)
      return -1;
  }
}

int exec_proc_run(const char *const *argv, char **output, sh_err *err) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0)
    return sh_errno(err, errno, "pipe");
  cleanup_fd int rd = p[0];
  pid_t pid;
  struct proc_opts o = {
      .argv = argv, .fd_out = p[1], .fd_err = p[1], .fd3 = -1};
  int rc = exec_proc_spawn(&o, &pid, err);
  close(p[1]);
  if (rc < 0)
    return rc;
  cleanup_buf sh_buf out = {0};
  char tmp[4096];
  for (;;) {
    ssize_t n = read(rd, tmp, sizeof tmp);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    if (out.len < 65536)
      buf_append(&out, tmp, (size_t)n);
  }
  int st = exec_proc_wait(pid);
  if (output) {
    while (out.len > 0 &&
           (out.data[out.len - 1] == '\n' || out.data[out.len - 1] == ' '))
      out.data[--out.len] = '\0';
    *output = xstrdup(out.data ? out.data : "");
  }
  if (st < 0)
    return sh_errno(err, errno, "wait for %s", argv[0]);
  if (WIFEXITED(st))
    return WEXITSTATUS(st);
  return 128 + WTERMSIG(st);
}

uint64_t exec_proc_starttime(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  /* comm may hold spaces and parens: fields restart after the last ')'. */
  char *p = strrchr(buf, ')');
  if (!p || p[1] != ' ')
    return 0;
  p += 2;
  if (*p == 'Z' || *p == 'X')
    return 0;
  /* state is field 3; starttime is field 22. */
  for (int field = 3; field < 22; field++) {
    p = strchr(p, ' ');
    if (!p)
      return 0;
    p++;
  }
  return strtoull(p, NULL, 10);
}

static int rm_one(const char *path, const struct stat *st, int type,
                  struct FTW *ftw) {
  (void)st;
  (void)ftw;
  int r = type == FTW_DP ? rmdir(path) : unlink(path);
  if (r < 0 && errno != ENOENT)
    return errno;
  return 0;
}

int exec_rm_rf(const char *path, sh_err *err) {
  struct stat st;
  if (lstat(path, &st) < 0)
    return errno == ENOENT ? 0 : sh_errno(err, errno, "remove %s", path);
  int r = nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
  if (r < 0)
    return sh_errno(err, errno, "remove %s", path);
  if (r > 0)
    return sh_errno(err, r, "remove %s", path);
  return 0;
}
