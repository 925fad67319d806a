/* Running a program to completion and file helpers (spawning is
 * core/spawn.c's). */
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

int exec_proc_run(const char *const *argv, char **output, sh_err *err) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0)
    return sh_errno(err, errno, "pipe");
  cleanup_fd int rd = p[0];
  pid_t pid;
  struct spawn_opts o = {
      .argv = argv, .fd_out = p[1], .fd_err = p[1], .fd3 = -1};
  int rc = spawn_proc(&o, &pid, err);
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
  int st = spawn_wait(pid);
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
