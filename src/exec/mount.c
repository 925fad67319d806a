/* The container's root filesystem: overlayfs over the image layers. */
#include "exec/internal.h"

#include "core/err.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#ifndef OVERLAYFS_SUPER_MAGIC
#define OVERLAYFS_SUPER_MAGIC 0x794c7630
#endif

size_t exec_overlay_opt_max = 3800;

/* A mount point has another device than its parent; the type check alone
 * would be fooled by a data-root that itself sits on overlayfs. */
bool exec_overlay_mounted(const char *target) {
  struct statfs sfs;
  struct stat a, b;
  cleanup_free char *parent = xasprintf("%s/..", target);
  return statfs(target, &sfs) == 0 &&
         (unsigned long)sfs.f_type == OVERLAYFS_SUPER_MAGIC &&
         stat(target, &a) == 0 && stat(parent, &b) == 0 && a.st_dev != b.st_dev;
}

/* ':' separates layers, ',' options, '\\' escapes: such paths go by fd. */
static bool plain_path(const char *p) {
  return !strpbrk(p, ":,\\");
}

int exec_overlay_mount(const char *const *layers, const char *lower_empty,
                       const char *upper, const char *work, const char *target,
                       sh_err *err) {
  size_t n = 0;
  while (layers && layers[n])
    n++;
  const char *only_empty[] = {lower_empty, NULL};
  if (n == 0) { /* scratch image: overlay needs one lower dir */
    layers = only_empty;
    n = 1;
  }
  bool by_fd = !plain_path(upper) || !plain_path(work);
  size_t len = strlen(upper) + strlen(work) + 64;
  for (size_t i = 0; i < n; i++) {
    len += strlen(layers[i]) + 1;
    by_fd = by_fd || !plain_path(layers[i]);
  }
  by_fd = by_fd || len > exec_overlay_opt_max;

  /* Long lists: one O_PATH descriptor per directory and /proc/self/fd/N in
   * the options (about 16 bytes per layer, and no chdir, which a threaded
   * daemon cannot do). The kernel resolves them at mount time. */
  int *fds = xcalloc(n + 2, sizeof(int));
  for (size_t i = 0; i < n + 2; i++)
    fds[i] = -1;
  int rc = 0;
  sh_buf opt = {0};
  buf_printf(&opt, "lowerdir=");
  for (size_t k = 0; k < n; k++) {
    const char *dir = layers[n - 1 - k]; /* overlay wants the top first */
    if (k)
      buf_append(&opt, ":", 1);
    if (by_fd) {
      fds[k] = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (fds[k] < 0) {
        rc = sh_errno(err, errno, "layer %s", dir);
        goto out;
      }
      buf_printf(&opt, "/proc/self/fd/%d", fds[k]);
    } else {
      buf_printf(&opt, "%s", dir);
    }
  }
  if (by_fd) {
    fds[n] = open(upper, O_PATH | O_DIRECTORY | O_CLOEXEC);
    fds[n + 1] = open(work, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fds[n] < 0 || fds[n + 1] < 0) {
      rc = sh_errno(err, errno, "open %s", upper);
      goto out;
    }
    buf_printf(&opt, ",upperdir=/proc/self/fd/%d,workdir=/proc/self/fd/%d",
               fds[n], fds[n + 1]);
  } else {
    buf_printf(&opt, ",upperdir=%s,workdir=%s", upper, work);
  }
  if (mount("overlay", target, "overlay", 0, opt.data) < 0)
    rc = sh_errno(err, errno, "mount overlay on %s (%zu layers)", target, n);
out:
  for (size_t i = 0; i < n + 2; i++)
    if (fds[i] >= 0)
      close(fds[i]);
  free(fds);
  buf_free(&opt);
  return rc;
}
