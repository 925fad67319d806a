#include "core/util.h"

#include "core/err.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/stat.h>

static void oom(void) {
  fputs("shoal: out of memory\n", stderr);
  abort();
}

void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p)
    oom();
  return p;
}

void *xcalloc(size_t n, size_t m) {
  void *p = calloc(n ? n : 1, m ? m : 1);
  if (!p)
    oom();
  return p;
}

void *xrealloc(void *p, size_t n) {
  p = realloc(p, n ? n : 1);
  if (!p)
    oom();
  return p;
}

char *xstrdup(const char *s) {
  char *p = strdup(s ? s : "");
  if (!p)
    oom();
  return p;
}

char *xstrndup(const char *s, size_t n) {
  char *p = strndup(s, n);
  if (!p)
    oom();
  return p;
}

char *xasprintf(const char *fmt, ...) {
  char *p = NULL;
  va_list ap;
  va_start(ap, fmt);
  int r = vasprintf(&p, fmt, ap);
  va_end(ap);
  if (r < 0)
    oom();
  return p;
}

bool str_has_prefix(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool str_has_suffix(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

static void buf_grow(sh_buf *b, size_t extra) {
  if (b->len + extra + 1 <= b->cap)
    return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + extra + 1)
    cap *= 2;
  b->data = xrealloc(b->data, cap);
  b->cap = cap;
}

void buf_append(sh_buf *b, const void *data, size_t n) {
  buf_grow(b, n);
  if (n)
    memcpy(b->data + b->len, data, n);
  b->len += n;
  b->data[b->len] = '\0';
}

void buf_printf(sh_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n > 0) {
    buf_grow(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    b->len += (size_t)n;
  }
  va_end(ap2);
}

void buf_reset(sh_buf *b) {
  b->len = 0;
  if (b->data)
    b->data[0] = '\0';
}

void buf_free(sh_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

int read_file(const char *path, char **out, size_t *len, sh_err *err) {
  cleanup_fd int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    sh_errno(err, e, "open %s", path);
    if (err && e == ENOENT)
      err->status = 404;
    return -1;
  }
  cleanup_buf sh_buf b = {0};
  char chunk[8192];
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return sh_errno(err, errno, "read %s", path);
    }
    if (n == 0)
      break;
    buf_append(&b, chunk, (size_t)n);
  }
  if (!b.data)
    buf_append(&b, "", 0);
  if (len)
    *len = b.len;
  *out = STEAL_POINTER(&b.data);
  return 0;
}

static int write_replace(const char *path, const void *data, size_t len,
                         int mode, bool sync, sh_err *err) {
  cleanup_free char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0)
    return sh_errno(err, errno, "create %s", tmp);
  const char *p = data;
  size_t left = len;
  while (left > 0) {
    ssize_t n = write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      int e = errno;
      close(fd);
      unlink(tmp);
      return sh_errno(err, e, "write %s", tmp);
    }
    p += n;
    left -= (size_t)n;
  }
  if ((sync && fsync(fd) < 0) || close(fd) < 0) {
    int e = errno;
    unlink(tmp);
    return sh_errno(err, e, "sync %s", tmp);
  }
  if (rename(tmp, path) < 0) {
    int e = errno;
    unlink(tmp);
    return sh_errno(err, e, "rename %s", path);
  }
  return 0;
}

int write_file_atomic(const char *path, const void *data, size_t len, int mode,
                      sh_err *err) {
  return write_replace(path, data, len, mode, true, err);
}

int write_file_replace(const char *path, const void *data, size_t len, int mode,
                       sh_err *err) {
  return write_replace(path, data, len, mode, false, err);
}

int mkdir_p(const char *path, int mode, sh_err *err) {
  cleanup_free char *p = xstrdup(path);
  for (char *s = p + 1; *s; s++) {
    if (*s != '/')
      continue;
    *s = '\0';
    if (mkdir(p, (mode_t)mode) < 0 && errno != EEXIST)
      return sh_errno(err, errno, "mkdir %s", p);
    *s = '/';
  }
  if (mkdir(p, (mode_t)mode) < 0 && errno != EEXIST)
    return sh_errno(err, errno, "mkdir %s", p);
  return 0;
}

static __thread long long tree_bytes;

static int add_size(const char *p, const struct stat *st, int flag,
                    struct FTW *f) {
  (void)p, (void)f;
  if (flag == FTW_F)
    tree_bytes += (long long)st->st_size;
  return 0;
}

long long util_tree_size(const char *dir) {
  tree_bytes = 0;
  if (dir && *dir)
    nftw(dir, add_size, 16, FTW_PHYS);
  return tree_bytes;
}

bool util_dir_empty(const char *dir) {
  DIR *d = opendir(dir);
  if (!d)
    return false;
  struct dirent *de;
  bool empty = true;
  while (empty && (de = readdir(d)))
    empty = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
  closedir(d);
  return empty;
}
