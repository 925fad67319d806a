/* docker cp (the archive endpoints) and docker export, through libarchive.
 *
 * Every access to a container's files for cp runs in a forked child that
 * sees only the container: a running container's mount namespace (setns,
 * then chroot to its root: volumes, binds, tmpfs and secrets as its
 * process sees them), or, stopped, a private mount namespace with the
 * overlay rootfs and its volumes and binds, chrooted. Paths and symlinks
 * therefore resolve inside the container by the kernel's own rules, and
 * a symlink or a ".." in a path or in a tar cannot reach the host. The
 * child never looks up names (no NSS inside a container's root) and runs
 * no program from it. Results come back over a pipe. */
#include "exec/internal.h"

#include "core/b64.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "lazy/archive.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- pure parts ---- */

/* Go's path.Clean of path's elements into out (room for strlen + 2),
 * after the root "/" if abs. false: a ".." went above the start (a
 * relative path only; an absolute one stays at "/", as Go's). */
static bool clean_into(const char *path, bool abs, char *out) {
  size_t floor = abs ? 1 : 0, o = 0;
  if (abs)
    out[o++] = '/';
  const char *p = path;
  while (*p) {
    while (*p == '/')
      p++;
    if (!*p)
      break;
    const char *e = strchr(p, '/');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len == 1 && p[0] == '.') {
    } else if (len == 2 && p[0] == '.' && p[1] == '.') {
      if (o == floor && !abs)
        return false;
      while (o > floor && out[o - 1] != '/')
        o--;
      if (o > floor)
        o--;
    } else {
      if (o > floor)
        out[o++] = '/';
      memcpy(out + o, p, len);
      o += len;
    }
    p += len;
  }
  out[o] = '\0';
  return true;
}

/* Go's path.Clean of an absolute path. */
static char *clean_abs(const char *path) {
  char *out = xmalloc(strlen(path) + 2);
  clean_into(path, true, out);
  return out;
}

static bool ends_with_dot(const char *p) {
  size_t n = strlen(p);
  return (n == 1 && p[0] == '.') || (n >= 2 && strcmp(p + n - 2, "/.") == 0);
}

char *exec_archive_abs(const char *path) {
  char *c = clean_abs(path);
  size_t n = strlen(c);
  /* moby's PreserveTrailingDotOrSeparator: "dir/." copies the contents,
   * "dir/" insists on a directory. */
  if (!ends_with_dot(c) && ends_with_dot(path)) {
    c = xrealloc(c, n + 3);
    if (c[n - 1] != '/')
      c[n++] = '/';
    c[n++] = '.';
    c[n] = '\0';
  }
  size_t pn = strlen(path);
  if (c[n - 1] != '/' && pn && path[pn - 1] == '/') {
    c = xrealloc(c, n + 2);
    c[n++] = '/';
    c[n] = '\0';
  }
  return c;
}

char *exec_archive_base(const char *path) {
  size_t n = strlen(path);
  while (n > 1 && path[n - 1] == '/')
    n--;
  if (n == 1 && path[0] == '/')
    return xstrdup("/");
  if (n == 0)
    return xstrdup(".");
  size_t s = n;
  while (s > 0 && path[s - 1] != '/')
    s--;
  return xstrndup(path + s, n - s);
}

uint32_t exec_go_filemode(mode_t m) {
  /* Go's os.FileMode bits, which the header carries. */
  uint32_t g = m & 0777;
  switch (m & S_IFMT) {
  case S_IFDIR:
    g |= 1u << 31;
    break;
  case S_IFLNK:
    g |= 1u << 27;
    break;
  case S_IFBLK:
    g |= 1u << 26;
    break;
  case S_IFCHR:
    g |= (1u << 26) | (1u << 21);
    break;
  case S_IFIFO:
    g |= 1u << 25;
    break;
  case S_IFSOCK:
    g |= 1u << 24;
    break;
  }
  if (m & S_ISUID)
    g |= 1u << 23;
  if (m & S_ISGID)
    g |= 1u << 22;
  if (m & S_ISVTX)
    g |= 1u << 20;
  return g;
}

char *exec_path_stat_header(const struct exec_path_stat *st) {
  char mt[64];
  clock_format_rfc3339(st->mtime_ns, mt, sizeof mt);
  cleanup_json json_t *j =
      json_pack("{s:s, s:I, s:I, s:s, s:s}", "name", st->name, "size",
                (json_int_t)st->size, "mode", (json_int_t)st->mode, "mtime", mt,
                "linkTarget", st->link_target);
  cleanup_free char *s = jx_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER, NULL);
  return b64_encode(s, strlen(s));
}

int exec_scoped_resolve(int rootfd, const char *path, char **out, sh_err *err) {
  /* moby's FollowSymlinkInScope: ".." stops at the root, an absolute
   * link starts again from the root, a missing part is taken as is. */
  sh_buf res = {0};
  buf_append(&res, "", 0);
  cleanup_free char *todo = xstrdup(path);
  int links = 0;
  for (;;) {
    char *p = todo;
    while (*p == '/')
      p++;
    if (!*p)
      break;
    char *e = strchr(p, '/');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    cleanup_free char *comp = xstrndup(p, len);
    char *rest = xstrdup(p + len);
    free(todo);
    todo = rest;
    if (strcmp(comp, ".") == 0)
      continue;
    if (strcmp(comp, "..") == 0) {
      char *slash = strrchr(res.data, '/');
      res.len = slash ? (size_t)(slash - res.data) : 0;
      res.data[res.len] = '\0';
      continue;
    }
    size_t keep = res.len;
    buf_printf(&res, "/%s", comp);
    char target[PATH_MAX];
    ssize_t n = readlinkat(rootfd, res.data + 1, target, sizeof target - 1);
    if (n < 0)
      continue; /* not a link, or missing: as it is */
    if (++links > 255) {
      buf_free(&res);
      return sh_error(err, 400, "too many links in %s", path);
    }
    target[n] = '\0';
    res.len = target[0] == '/' ? 0 : keep;
    res.data[res.len] = '\0';
    char *next = xasprintf("%s/%s", target, todo);
    free(todo);
    todo = next;
  }
  *out = res.len ? xstrdup(res.data) : xstrdup("/");
  buf_free(&res);
  return 0;
}

int exec_archive_writable(const json_t *mounts, bool read_only_rootfs,
                          const char *abs, sh_err *err) {
  /* moby's checkWritablePath: the deepest mount holding the path decides,
   * else the rootfs. */
  size_t best = 0;
  int rw = -1;
  size_t i;
  json_t *m;
  json_array_foreach(mounts, i, m) {
    const char *d = jx_str(m, "Destination", "");
    size_t n = strlen(d);
    while (n > 1 && d[n - 1] == '/')
      n--;
    bool under =
        n == 1 ? d[0] == '/'
               : strncmp(abs, d, n) == 0 && (abs[n] == '\0' || abs[n] == '/');
    if (under && n >= best) {
      best = n;
      rw = jx_bool(m, "RW", true);
    }
  }
  if (rw == 0)
    return sh_error(err, 400, "mounted volume is marked read-only");
  if (rw < 0 && read_only_rootfs)
    return sh_error(err, 400, "container rootfs is marked read-only");
  return 0;
}

int exec_tar_entry_name(const char *name, char **out, sh_err *err) {
  /* moby's Unpack: the name cleaned and joined under the destination;
   * one that leaves it is a breakout. */
  cleanup_free char *rel = xmalloc(strlen(name) + 2);
  if (!clean_into(name, false, rel))
    return sh_error(err, 400, "\"%s\" is outside of the destination", name);
  *out = rel[0] ? STEAL_POINTER(&rel) : xstrdup(".");
  return 0;
}

/* ---- the child that sees the container ---- */

struct view {
  pid_t pid;            /* running: its process; 0: stopped */
  const char *rootfs;   /* stopped: the overlay mount */
  const json_t *mounts; /* inspect's Mounts */
  bool read_only;
  const char *user; /* Config.User */
  int keep_fd;      /* > 2: a descriptor the child reads (PUT's tar) */
};

struct child_res {
  int status; /* 0 or the HTTP status of the failure */
  char msg[SH_ERR_MSG_MAX];
  struct exec_path_stat st;
};

static int bind_volumes(const struct view *v, sh_err *err) {
  /* dockerd mounts a stopped container's volumes for cp too. */
  int rootfd = open(v->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0)
    return sh_errno(err, errno, "open %s", v->rootfs);
  size_t i;
  json_t *m;
  json_array_foreach(v->mounts, i, m) {
    const char *type = jx_str(m, "Type", "");
    const char *src = jx_str(m, "Source", "");
    if ((strcmp(type, "bind") != 0 && strcmp(type, "volume") != 0) || !*src)
      continue;
    cleanup_free char *dest = NULL;
    if (exec_scoped_resolve(rootfd, jx_str(m, "Destination", "/"), &dest, err) <
        0)
      continue;
    cleanup_free char *at = xasprintf("%s%s", v->rootfs, dest);
    if (mount(src, at, NULL, MS_BIND | MS_REC, NULL) < 0)
      continue; /* no mount point in the rootfs yet: nothing to see */
    if (!jx_bool(m, "RW", true))
      mount(NULL, at, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL);
  }
  close(rootfd);
  return 0;
}

static int enter(const struct view *v, sh_err *err) {
  if (v->pid < 0)
    return 0; /* export: the host's view of the rootfs */
  if (v->pid > 0) {
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/ns/mnt", (int)v->pid);
    int ns = open(p, O_RDONLY | O_CLOEXEC);
    snprintf(p, sizeof p, "/proc/%d/root", (int)v->pid);
    int root = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (ns < 0 || root < 0)
      return sh_error(err, 409, "container is not running");
    if (setns(ns, CLONE_NEWNS) < 0 || fchdir(root) < 0 || chroot(".") < 0)
      return sh_errno(err, errno, "enter the container's filesystem");
    close(ns);
    close(root);
  } else {
    if (unshare(CLONE_NEWNS) < 0 ||
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
      return sh_errno(err, errno, "private mount namespace");
    if (bind_volumes(v, err) < 0)
      return -1;
    if (chdir(v->rootfs) < 0 || chroot(".") < 0)
      return sh_errno(err, errno, "enter the container's filesystem");
  }
  if (chdir("/") < 0)
    return sh_errno(err, errno, "chdir /");
  return 0;
}

typedef int (*child_fn)(const struct view *v, void *arg, int fd,
                        struct exec_path_stat *st, sh_err *err);

static int write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Closes every descriptor above stderr but those in keep (any order;
 * entries below 3 ignored). */
static void close_fds_except(int *keep, size_t n) {
  for (size_t i = 1; i < n; i++) /* a few entries: insertion sort */
    for (size_t k = i; k > 0 && keep[k - 1] > keep[k]; k--) {
      int t = keep[k];
      keep[k] = keep[k - 1];
      keep[k - 1] = t;
    }
  unsigned from = 3;
  for (size_t i = 0; i < n; i++) {
    if (keep[i] < (int)from)
      continue;
    if ((unsigned)keep[i] > from)
      close_range(from, (unsigned)keep[i] - 1, 0);
    from = (unsigned)keep[i] + 1;
  }
  close_range(from, ~0U, 0);
}

/* Runs fn in a child inside the container's filesystem. fd (GET's tar)
 * is read here and given to write_fn; the child's result comes last. */
static int run_child(const struct view *v, child_fn fn, void *arg,
                     int (*write_fn)(void *, const void *, size_t),
                     bool (*cancelled)(void *), void *warg,
                     struct exec_path_stat *st, sh_err *err) {
  /* Loaded here and kept while the child uses it: loading it in a child
   * of this threaded process could meet lazy.c's lock taken. */
  cleanup_lazy struct lazy_lib *held = lazy_hold(&lazy_archive_lib, err);
  if (!held)
    return -1;
  int res[2], data[2] = {-1, -1};
  if (pipe2(res, O_CLOEXEC) < 0)
    return sh_errno(err, errno, "pipe");
  if (write_fn && pipe2(data, O_CLOEXEC) < 0) {
    close(res[0]);
    close(res[1]);
    return sh_errno(err, errno, "pipe");
  }
  pid_t pid = fork();
  if (pid < 0) {
    close(res[0]);
    close(res[1]);
    if (data[0] >= 0) {
      close(data[0]);
      close(data[1]);
    }
    return sh_errno(err, errno, "fork");
  }
  if (pid == 0) {
    /* Only what this child uses: a forked copy of another upload's pipe
     * would keep that upload from ever seeing its end. */
    int keep[] = {res[1], data[1], v->keep_fd};
    close_fds_except(keep, ARRAY_SIZE(keep));
    signal(SIGPIPE, SIG_DFL);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    struct child_res r = {0};
    sh_err e = {0};
    if (enter(v, &e) < 0 || fn(v, arg, data[1], &r.st, &e) < 0) {
      r.status = e.status ? e.status : 500;
      snprintf(r.msg, sizeof r.msg, "%s", e.msg);
    }
    if (data[1] >= 0)
      close(data[1]);
    write_all(res[1], &r, sizeof r);
    _exit(0);
  }
  close(res[1]);
  bool stopped = false;
  if (data[0] >= 0) {
    close(data[1]);
    char buf[64 * 1024];
    for (;;) {
      ssize_t k = read(data[0], buf, sizeof buf);
      if (k < 0 && errno == EINTR)
        continue;
      if (k <= 0)
        break;
      if ((cancelled && cancelled(warg)) ||
          write_fn(warg, buf, (size_t)k) < 0) {
        kill(pid, SIGKILL);
        stopped = true;
        break;
      }
    }
    close(data[0]);
  }
  struct child_res *r = xcalloc(1, sizeof *r);
  size_t got = 0;
  while (got < sizeof *r) {
    ssize_t k = read(res[0], (char *)r + got, sizeof *r - got);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      break;
    got += (size_t)k;
  }
  close(res[0]);
  spawn_wait(pid);
  int rc = 0;
  if (stopped)
    rc = sh_error(err, 499, "the client went away");
  else if (got < sizeof *r)
    rc = sh_error(err, 500, "the copy ended early");
  else if (r->status)
    rc = sh_error(err, r->status, "%s", r->msg);
  else if (st)
    *st = r->st;
  free(r);
  return rc;
}

/* ---- in the child ---- */

static int stat_path(const char *abs, struct exec_path_stat *st, sh_err *err) {
  struct stat s;
  if (lstat(abs, &s) < 0)
    return errno == ENOENT ? sh_error(err, 404, "not found")
                           : sh_errno(err, errno, "lstat %s", abs);
  cleanup_free char *name = exec_archive_base(abs);
  snprintf(st->name, sizeof st->name, "%s", name);
  st->size = s.st_size;
  st->mode = exec_go_filemode(s.st_mode);
  st->mtime_ns = (int64_t)s.st_mtim.tv_sec * 1000000000 + s.st_mtim.tv_nsec;
  st->link_target[0] = '\0';
  if (S_ISLNK(s.st_mode)) {
    cleanup_free char *t = NULL;
    if (exec_scoped_resolve(AT_FDCWD, abs, &t, err) < 0)
      return -1;
    snprintf(st->link_target, sizeof st->link_target, "%s", t);
  }
  return 0;
}

static int child_stat(const struct view *v, void *arg, int fd,
                      struct exec_path_stat *st, sh_err *err) {
  cleanup_free char *abs = exec_archive_abs(arg);
  return stat_path(abs, st, err);
}

static la_ssize_t fd_write_cb(struct archive *a, void *ud, const void *buf,
                              size_t len) {
  if (write_all(*(int *)ud, buf, len) < 0) {
    archive_set_error(a, EPIPE, "write");
    return -1;
  }
  return (la_ssize_t)len;
}

/* /proc, /sys and the like inside a running container: dockerd's view
 * has none of them mounted, so their contents are not copied. */
static bool pseudo_fs(const char *path) {
  struct statfs f;
  if (statfs(path, &f) < 0)
    return false;
  switch ((unsigned long)f.f_type) {
  case 0x9fa0UL:     /* proc */
  case 0x62656572UL: /* sysfs */
  case 0x27e0ebUL:   /* cgroup */
  case 0x63677270UL: /* cgroup2 */
  case 0x1cd1UL:     /* devpts */
  case 0x19800202UL: /* mqueue */
    return true;
  }
  return false;
}

/* Writes a tar of what `start` names (opened relative to the current
 * directory, or absolute), its entries renamed: the part `strip` of each
 * name replaced by `rebase` (NULL: dropped, the top entry skipped). */
static int write_tree(int fd, const char *start, const char *strip,
                      const char *rebase, bool one_fs, sh_err *err) {
  struct archive *disk = archive_read_disk_new();
  struct archive *tar = archive_write_new();
  struct archive_entry_linkresolver *lr = archive_entry_linkresolver_new();
  int rc = 0;
  archive_read_disk_set_symlink_physical(disk);
  archive_read_disk_set_behavior(
      disk, ARCHIVE_READDISK_NO_FFLAGS |
                (one_fs ? ARCHIVE_READDISK_NO_TRAVERSE_MOUNTS : 0));
  archive_write_set_format_pax_restricted(tar);
  archive_write_set_bytes_in_last_block(tar, 1);
  archive_entry_linkresolver_set_strategy(lr, archive_format(tar));
  if (archive_write_open(tar, &fd, NULL, fd_write_cb, NULL) != ARCHIVE_OK ||
      archive_read_disk_open(disk, start) != ARCHIVE_OK) {
    rc = sh_error(err, 500, "tar %s: %s", start,
                  archive_error_string(disk) ? archive_error_string(disk)
                                             : archive_error_string(tar));
    goto out;
  }
  size_t sn = strlen(strip);
  char *buf = xmalloc(64 * 1024);
  for (;;) {
    struct archive_entry *e = archive_entry_new();
    int r = archive_read_next_header2(disk, e);
    if (r == ARCHIVE_EOF) {
      archive_entry_free(e);
      break;
    }
    if (r < ARCHIVE_WARN) {
      rc = sh_error(err, 500, "tar: %s", archive_error_string(disk));
      archive_entry_free(e);
      break;
    }
    const char *src = archive_entry_sourcepath(e);
    if (!src)
      src = archive_entry_pathname(e);
    if (archive_entry_filetype(e) != AE_IFDIR || !pseudo_fs(src))
      archive_read_disk_descend(disk);
    const char *path = archive_entry_pathname(e);
    const char *rest = strncmp(path, strip, sn) == 0 ? path + sn : path;
    while (*rest == '/')
      rest++;
    if (!rebase && !*rest) {
      archive_entry_free(e);
      continue;
    }
    cleanup_free char *name =
        !rebase  ? xstrdup(rest)
        : !*rest ? xstrdup(rebase)
                 : xasprintf("%s%s%s", rebase,
                             str_has_suffix(rebase, "/") ? "" : "/", rest);
    archive_entry_set_pathname(e, name);
    archive_entry_set_uname(e, NULL);
    archive_entry_set_gname(e, NULL);
    struct archive_entry *spare = NULL;
    archive_entry_linkify(lr, &e, &spare);
    if (e && archive_write_header(tar, e) < ARCHIVE_WARN) {
      rc = sh_error(err, 500, "tar: %s", archive_error_string(tar));
      archive_entry_free(e);
      break;
    }
    if (e && archive_entry_filetype(e) == AE_IFREG &&
        archive_entry_size(e) > 0) {
      la_ssize_t n;
      while ((n = archive_read_data(disk, buf, 64 * 1024)) > 0)
        if (archive_write_data(tar, buf, (size_t)n) < 0)
          break;
    }
    archive_entry_free(e);
    archive_entry_free(spare);
  }
  free(buf);
out:
  if (archive_write_close(tar) != ARCHIVE_OK && rc == 0)
    rc = sh_error(err, 500, "tar: %s", archive_error_string(tar));
  archive_write_free(tar);
  archive_read_free(disk);
  archive_entry_linkresolver_free(lr);
  return rc;
}

static int child_tar(const struct view *v, void *arg, int fd,
                     struct exec_path_stat *st, sh_err *err) {
  cleanup_free char *abs = exec_archive_abs(arg);
  if (stat_path(abs, st, err) < 0)
    return -1;
  /* moby: a directory's contents under its base name; anything else
   * from its parent. */
  cleanup_free char *dir = NULL, *base = NULL;
  if (st->mode & (1u << 31)) {
    dir = xstrdup(abs);
    base = xstrdup(".");
  } else {
    char *slash = strrchr(abs, '/');
    dir = slash == abs ? xstrdup("/") : xstrndup(abs, (size_t)(slash - abs));
    base = xstrdup(slash + 1);
  }
  cleanup_free char *rebase = exec_archive_base(abs);
  if (chdir(dir) < 0)
    return sh_errno(err, errno, "chdir %s", dir);
  return write_tree(fd, base, base, rebase, false, err);
}

struct put_arg {
  const char *path;
  int tar_fd, close_fd;
  const struct exec_extract_opts *o;
};

static int child_put(const struct view *v, void *arg, int fd,
                     struct exec_path_stat *st, sh_err *err) {
  struct put_arg *a = arg;
  /* The feeding end (close_fd) was closed with every other inherited
   * descriptor by run_child: held here, the tar would never end. */
  cleanup_free char *abs = exec_archive_abs(a->path);
  /* moby: EvalSymlinks of the destination, the last part too. */
  cleanup_free char *dest = NULL;
  if (exec_scoped_resolve(AT_FDCWD, abs, &dest, err) < 0)
    return -1;
  struct stat s;
  if (stat(dest, &s) < 0)
    return errno == ENOENT ? sh_error(err, 404, "not found")
                           : sh_errno(err, errno, "lstat %s", dest);
  if (!S_ISDIR(s.st_mode))
    return sh_error(err, 400, "extraction point is not a directory");
  if (exec_archive_writable(v->mounts, v->read_only, dest, err) < 0)
    return -1;
  struct exec_user u = {0};
  bool chown_all = false;
  if (a->o->copy_uid_gid && v->user && *v->user) {
    int rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    int r = exec_resolve_user(rootfd, v->user, &u, err);
    close(rootfd);
    if (r < 0)
      return -1;
    chown_all = true;
  }
  if (chdir(dest) < 0)
    return sh_errno(err, errno, "chdir %s", dest);
  struct archive *rd = archive_read_new();
  struct archive *w = archive_write_disk_new();
  archive_read_support_format_tar(rd);
  archive_read_support_format_empty(rd); /* no body: nothing, as moby */
  archive_read_support_filter_gzip(rd);
  archive_read_support_filter_bzip2(rd);
  archive_read_support_filter_xz(rd);
  archive_read_support_filter_zstd(rd);
  archive_write_disk_set_options(
      w, ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_OWNER |
             ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
             ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS | ARCHIVE_EXTRACT_UNLINK);
  int rc = 0;
  if (archive_read_open_fd(rd, a->tar_fd, 64 * 1024) != ARCHIVE_OK) {
    rc = sh_error(err, 400, "Error processing tar file: %s",
                  archive_error_string(rd));
    goto out;
  }
  for (;;) {
    struct archive_entry *e;
    int r = archive_read_next_header(rd, &e);
    if (r == ARCHIVE_EOF)
      break;
    if (r < ARCHIVE_WARN) {
      rc = sh_error(err, 400, "Error processing tar file: %s",
                    archive_error_string(rd));
      break;
    }
    cleanup_free char *name = NULL;
    if ((rc = exec_tar_entry_name(archive_entry_pathname(e), &name, err)) < 0)
      break;
    const char *hl = archive_entry_hardlink(e);
    if (hl) {
      cleanup_free char *t = NULL;
      if ((rc = exec_tar_entry_name(hl, &t, err)) < 0)
        break;
      archive_entry_set_hardlink(e, t);
    }
    const char *sl = archive_entry_symlink(e);
    if (sl && sl[0] != '/') {
      cleanup_free char *dir = xstrdup(name);
      char *slash = strrchr(dir, '/');
      cleanup_free char *joined =
          slash ? xasprintf("%.*s/%s", (int)(slash - dir), dir, sl)
                : xstrdup(sl);
      cleanup_free char *t = NULL;
      if ((rc = exec_tar_entry_name(joined, &t, err)) < 0)
        break;
    }
    bool is_dir = archive_entry_filetype(e) == AE_IFDIR;
    struct stat old;
    if (lstat(name, &old) == 0) {
      if (S_ISDIR(old.st_mode) && !is_dir && a->o->no_overwrite_dir_non_dir) {
        rc = sh_error(err, 400,
                      "cannot overwrite directory \"%s/%s\" with "
                      "non-directory \"%s\"",
                      dest, name, dest);
        break;
      }
      if (!S_ISDIR(old.st_mode) && is_dir && a->o->no_overwrite_dir_non_dir) {
        rc = sh_error(err, 400,
                      "cannot overwrite non-directory \"%s/%s\" with "
                      "directory \"%s\"",
                      dest, name, dest);
        break;
      }
      if (S_ISDIR(old.st_mode) && !is_dir && exec_rm_rf(name, err) < 0) {
        rc = -1;
        break;
      }
    }
    archive_entry_set_pathname(e, name);
    if (chown_all) {
      archive_entry_set_uid(e, u.uid);
      archive_entry_set_gid(e, u.gid);
    }
    archive_entry_set_uname(e, NULL);
    archive_entry_set_gname(e, NULL);
    if (archive_write_header(w, e) < ARCHIVE_WARN) {
      rc = sh_error(err, 500, "extract %s: %s", name, archive_error_string(w));
      break;
    }
    const void *buf;
    size_t size;
    la_int64_t off;
    while ((r = archive_read_data_block(rd, &buf, &size, &off)) == ARCHIVE_OK) {
      if (archive_write_data_block(w, buf, size, off) < ARCHIVE_WARN) {
        r = ARCHIVE_FATAL;
        break;
      }
    }
    if (r != ARCHIVE_EOF) {
      /* A body cut short (the client went away) leaves no partial
       * file behind. */
      if (archive_entry_filetype(e) == AE_IFREG)
        unlink(name);
      rc = sh_error(err, archive_errno(w) ? 500 : 400, "extract %s: %s", name,
                    archive_error_string(w) ? archive_error_string(w)
                                            : archive_error_string(rd));
      break;
    }
    if (archive_write_finish_entry(w) < ARCHIVE_WARN) {
      rc = sh_error(err, 500, "extract %s: %s", name, archive_error_string(w));
      break;
    }
  }
out:
  if (archive_write_close(w) != ARCHIVE_OK && rc == 0)
    rc = sh_error(err, 500, "extract: %s", archive_error_string(w));
  archive_write_free(w);
  archive_read_free(rd);
  return rc;
}

/* ---- the executor's calls ---- */

static int with_view(executor *ex, const char *id, const char *path,
                     const char *ref, child_fn fn, void *arg, int keep_fd,
                     int (*write_fn)(void *, const void *, size_t),
                     bool (*cancelled)(void *), void *warg,
                     struct exec_path_stat *st, sh_err *err) {
  cleanup_paths struct ctr_paths p = {0};
  cleanup_json json_t *meta = NULL;
  if (exec_load_meta(ex, id, &p, &meta, err) < 0)
    return -1;
  struct exec_state s;
  if (exec_state(ex, id, &s, err) < 0)
    return -1;
  struct view v = {
      .pid = s.status == EXEC_STATUS_RUNNING ? s.pid : 0,
      .rootfs = p.rootfs,
      .mounts = jx_get(meta, "Mounts"),
      .read_only = jx_bool(meta, "HostConfig.ReadonlyRootfs", false),
      .user = jx_str(meta, "Config.User", ""),
      .keep_fd = keep_fd,
  };
  if (!v.pid && exec_ensure_rootfs(meta, &p, err) < 0)
    return -1;
  int rc = run_child(&v, fn, arg, write_fn, cancelled, warg, st, err);
  if (rc < 0 && err && err->status == 404)
    sh_error(err, 404, "Could not find the file %s in container %s", path, ref);
  return rc;
}

int exec_archive_stat(executor *ex, const char *id, const char *path,
                      const char *ref, struct exec_path_stat *out,
                      sh_err *err) {
  return with_view(ex, id, path, ref, child_stat, (void *)path, -1, NULL, NULL,
                   NULL, out, err);
}

int exec_archive_get(executor *ex, const char *id, const char *path,
                     const char *ref,
                     int (*write_fn)(void *arg, const void *buf, size_t len),
                     bool (*cancelled)(void *arg), void *arg, sh_err *err) {
  return with_view(ex, id, path, ref, child_tar, (void *)path, -1, write_fn,
                   cancelled, arg, NULL, err);
}

int exec_archive_put(executor *ex, const char *id, const char *path,
                     const char *ref, int tar_fd, int close_fd,
                     const struct exec_extract_opts *o, sh_err *err) {
  struct put_arg a = {
      .path = path, .tar_fd = tar_fd, .close_fd = close_fd, .o = o};
  return with_view(ex, id, path, ref, child_put, &a, tar_fd, NULL, NULL, NULL,
                   NULL, err);
}

/* ---- export ---- */

struct export_arg {
  const char *rootfs;
};

static int tar_rootfs(const struct view *v, void *arg, int fd,
                      struct exec_path_stat *st, sh_err *err) {
  struct export_arg *a = arg;
  return write_tree(fd, a->rootfs, a->rootfs, NULL, true, err);
}

int exec_export(executor *ex, const char *id,
                int (*write_fn)(void *arg, const void *buf, size_t len),
                bool (*cancelled)(void *arg), void *arg, sh_err *err) {
  cleanup_paths struct ctr_paths p = {0};
  cleanup_json json_t *meta = NULL;
  if (exec_load_meta(ex, id, &p, &meta, err) < 0)
    return -1;
  if (exec_ensure_rootfs(meta, &p, err) < 0)
    return -1;
  /* The overlay as the host sees it (no volumes, as dockerd's export),
   * written by a child so that a slow client never holds a descriptor
   * walk open in the daemon. */
  struct export_arg a = {.rootfs = p.rootfs};
  struct view host = {.pid = -1, .keep_fd = -1};
  return run_child(&host, tar_rootfs, &a, write_fn, cancelled, arg, NULL, err);
}
