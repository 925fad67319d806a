/* Layer unpacking: one pass over the compressed blob, in a child process
 * (shoald re-executed, as dockerd's docker-untar): libarchive and what it
 * maps (libxml2, ICU, libstdc++, which never unloads: ~1.3 MB of an idle
 * daemon's RSS) stay out of the daemon, and a crafted layer that crashes
 * the extraction fails its pull instead of the daemon. A "raw" libarchive
 * reader undoes gzip/zstd; its output feeds both the diff ID hash and a
 * tar reader (chained through a read callback), whose entries are checked,
 * turned into overlayfs form and written by archive_write_disk under the
 * layer's directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sys/xattr.h>

#include "core/spawn.h"
#include "core/util.h"
#include "image/internal.h"
#include "lazy/archive.h"

#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"
#define WH_META ".wh..wh."

struct chain {
  int fd;
  int64_t consumed;
  layer_progress_fn progress;
  void *ud;
  struct archive *raw;
  EVP_MD_CTX *md;
  char in[64 * 1024];
  char out[64 * 1024];
};

static la_ssize_t fd_read_cb(struct archive *a, void *ud, const void **buf) {
  struct chain *c = ud;
  for (;;) {
    ssize_t n = read(c->fd, c->in, sizeof c->in);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      archive_set_error(a, errno, "read layer");
      return -1;
    }
    c->consumed += n;
    if (c->progress && n > 0)
      c->progress(c->consumed, c->ud);
    *buf = c->in;
    return n;
  }
}

/* The tar reader pulls uncompressed bytes from the raw reader and hashes
 * them on the way. */
static la_ssize_t tar_read_cb(struct archive *a, void *ud, const void **buf) {
  struct chain *c = ud;
  la_ssize_t n = archive_read_data(c->raw, c->out, sizeof c->out);
  if (n < 0) {
    archive_set_error(a, archive_errno(c->raw), "%s",
                      archive_error_string(c->raw));
    return -1;
  }
  EVP_DigestUpdate(c->md, c->out, (size_t)n);
  *buf = c->out;
  return n;
}

/* "a/./b//c/" -> "a/b/c"; NULL for ".." anywhere. Leading '/' dropped, so
 * an absolute path lands inside the layer (as Docker does). */
char *path_clean(const char *in) {
  sh_buf b = {0};
  const char *p = in;
  while (*p) {
    while (*p == '/')
      p++;
    const char *e = strchr(p, '/');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n == 2 && p[0] == '.' && p[1] == '.') {
      buf_free(&b);
      return NULL;
    }
    if (n > 0 && !(n == 1 && p[0] == '.')) {
      if (b.len)
        buf_append(&b, "/", 1);
      buf_append(&b, p, n);
    }
    p += n;
  }
  if (!b.data)
    return xstrdup("");
  return b.data;
}

/* True if a directory component of rel (not the last) is a symlink inside
 * dir: writing through it could land outside the layer. */
static bool through_symlink(const char *dir, const char *rel) {
  cleanup_free char *path = xasprintf("%s/%s", dir, rel);
  size_t base = strlen(dir) + 1;
  for (char *s = path + base; *s; s++) {
    if (*s != '/')
      continue;
    *s = '\0';
    struct stat st;
    bool link = lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
    *s = '/';
    if (link)
      return true;
  }
  return false;
}

static int mkdir_parents(const char *dir, const char *rel, sh_err *err) {
  cleanup_free char *path = xasprintf("%s/%s", dir, rel);
  char *slash = strrchr(path, '/');
  *slash = '\0';
  return mkdir_p(path, 0755, err);
}

static int whiteout(const char *dir, const char *rel, const char *base,
                    sh_err *err) {
  cleanup_free char *parent_rel = xstrndup(rel, (size_t)(base - rel));
  if (mkdir_parents(dir, rel, err) < 0)
    return -1;
  if (!strcmp(base, WH_OPAQUE)) {
    cleanup_free char *parent = xasprintf("%s/%s", dir, parent_rel);
    if (setxattr(parent, "trusted.overlay.opaque", "y", 1, 0) < 0)
      return sh_errno(err, errno, "layer: opaque directory %s", parent_rel);
    return 0;
  }
  if (str_has_prefix(base, WH_META))
    return 0; /* AUFS bookkeeping (.wh..wh.plnk ...), meaningless here */
  const char *name = base + strlen(WH_PREFIX);
  if (!*name || !strcmp(name, ".") || !strcmp(name, ".."))
    return sh_error(err, 500, "layer: bad whiteout %s", rel);
  cleanup_free char *target = xasprintf("%s/%s%s", dir, parent_rel, name);
  struct stat st;
  if (lstat(target, &st) == 0)
    rm_rf(target);
  if (mknod(target, S_IFCHR | 0, makedev(0, 0)) < 0)
    return sh_errno(err, errno, "layer: whiteout %s%s", parent_rel, name);
  return 0;
}

/* Drops trusted.* attributes: overlayfs reads its own from there. */
static void filter_xattrs(struct archive_entry *e) {
  if (archive_entry_xattr_reset(e) == 0)
    return;
  struct kept {
    char *name;
    void *val;
    size_t len;
  } kept[64];
  int nk = 0;
  bool drop = false;
  const char *name;
  const void *val;
  size_t len;
  while (archive_entry_xattr_next(e, &name, &val, &len) == ARCHIVE_OK) {
    if (str_has_prefix(name, "trusted.") || nk == (int)ARRAY_SIZE(kept)) {
      drop = true;
      continue;
    }
    kept[nk].name = xstrdup(name);
    kept[nk].val = xmalloc(len ? len : 1);
    memcpy(kept[nk].val, val, len);
    kept[nk].len = len;
    nk++;
  }
  if (drop) {
    archive_entry_xattr_clear(e);
    for (int i = 0; i < nk; i++)
      archive_entry_xattr_add_entry(e, kept[i].name, kept[i].val, kept[i].len);
  }
  for (int i = 0; i < nk; i++) {
    free(kept[i].name);
    free(kept[i].val);
  }
}

static int disk_error(struct archive *w, const char *rel, sh_err *err) {
  return sh_error(err, 500, "layer: extract %s: %s", rel,
                  archive_error_string(w));
}

/* One entry: returns 0 when written or skipped. */
static int unpack_entry(struct archive *rd, struct archive *w,
                        struct archive_entry *e, const char *dir, int64_t *size,
                        sh_err *err) {
  const char *orig = archive_entry_pathname(e);
  if (!orig)
    return sh_error(err, 500, "layer: entry without a name");
  cleanup_free char *rel = path_clean(orig);
  if (!rel)
    return sh_error(err, 500, "layer: path %s escapes the layer", orig);
  if (!*rel)
    return 0; /* the layer root itself */
  if (through_symlink(dir, rel))
    return sh_error(err, 500, "layer: path %s goes through a symlink", orig);
  const char *slash = strrchr(rel, '/');
  const char *base = slash ? slash + 1 : rel;
  if (str_has_prefix(base, WH_PREFIX))
    return whiteout(dir, rel, base, err);

  mode_t type = archive_entry_filetype(e);
  const char *hl = archive_entry_hardlink(e);
  cleanup_free char *hl_abs = NULL;
  if (hl) {
    cleanup_free char *hrel = path_clean(hl);
    if (!hrel || !*hrel)
      return sh_error(err, 500, "layer: hardlink %s -> %s escapes the layer",
                      orig, hl);
    struct stat st;
    cleanup_free char *target = xasprintf("%s/%s", dir, hrel);
    if (through_symlink(dir, hrel) || lstat(target, &st) < 0 ||
        S_ISDIR(st.st_mode))
      return sh_error(err, 500,
                      "layer: hardlink %s -> %s points outside the layer or "
                      "to nothing",
                      orig, hl);
    hl_abs = STEAL_POINTER(&target);
    archive_entry_set_hardlink(e, hl_abs);
  } else if (type == AE_IFCHR || type == AE_IFBLK) {
    /* Only an overlayfs whiteout (0:0 char device) may be a device. */
    if (type != AE_IFCHR || archive_entry_rdev(e) != 0)
      return 0;
  } else if (type == AE_IFSOCK) {
    return 0;
  } else if (type == AE_IFREG) {
    *size += archive_entry_size(e);
  }
  cleanup_free char *abs = xasprintf("%s/%s", dir, rel);
  archive_entry_set_pathname(e, abs);
  filter_xattrs(e);
  int r = archive_write_header(w, e);
  if (r < ARCHIVE_WARN)
    return disk_error(w, rel, err);
  if (!hl && type == AE_IFREG && archive_entry_size(e) > 0) {
    const void *buf;
    size_t len;
    la_int64_t off;
    while ((r = archive_read_data_block(rd, &buf, &len, &off)) == ARCHIVE_OK) {
      if (archive_write_data_block(w, buf, len, off) < ARCHIVE_WARN)
        return disk_error(w, rel, err);
    }
    if (r != ARCHIVE_EOF)
      return sh_error(err, 500, "layer: read %s: %s", rel,
                      archive_error_string(rd));
  }
  if (archive_write_finish_entry(w) < ARCHIVE_WARN)
    return disk_error(w, rel, err);
  return 0;
}

int layer_unpack_here(int fd, const char *dir, const char *expect_diffid,
                      char diffid[DIGEST_LEN + 1], int64_t *size,
                      layer_progress_fn progress, void *ud, sh_err *err) {
  cleanup_lazy struct lazy_lib *held = lazy_hold(&lazy_archive_lib, err);
  if (!held)
    return -1;
  struct chain *c = xcalloc(1, sizeof *c);
  c->fd = fd;
  c->progress = progress;
  c->ud = ud;
  c->md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(c->md, EVP_sha256(), NULL);
  struct archive *tar = NULL, *w = NULL;
  int rc = -1;
  *size = 0;

  c->raw = archive_read_new();
  archive_read_support_filter_all(c->raw);
  archive_read_support_format_raw(c->raw);
  struct archive_entry *e;
  if (archive_read_open2(c->raw, c, NULL, fd_read_cb, NULL, NULL) !=
          ARCHIVE_OK ||
      archive_read_next_header(c->raw, &e) != ARCHIVE_OK) {
    sh_error(err, 500, "layer: %s", archive_error_string(c->raw));
    goto out;
  }
  tar = archive_read_new();
  archive_read_support_format_tar(tar);
  archive_read_support_format_gnutar(tar);
  if (archive_read_open2(tar, c, NULL, tar_read_cb, NULL, NULL) != ARCHIVE_OK) {
    sh_error(err, 500, "layer: not a tar archive: %s",
             archive_error_string(tar));
    goto out;
  }
  w = archive_write_disk_new();
  int flags = ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM |
              ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
              ARCHIVE_EXTRACT_SECURE_NODOTDOT;
  if (geteuid() == 0)
    flags |= ARCHIVE_EXTRACT_OWNER;
  archive_write_disk_set_options(w, flags);
  for (;;) {
    int r = archive_read_next_header(tar, &e);
    if (r == ARCHIVE_EOF)
      break;
    if (r < ARCHIVE_WARN) {
      sh_error(err, 500, "layer: bad tar: %s", archive_error_string(tar));
      goto out;
    }
    if (unpack_entry(tar, w, e, dir, size, err) < 0)
      goto out;
  }
  if (archive_write_close(w) != ARCHIVE_OK) {
    sh_error(err, 500, "layer: %s", archive_error_string(w));
    goto out;
  }
  /* The tar reader stops at the end marker; hash what follows too. */
  la_ssize_t n;
  while ((n = archive_read_data(c->raw, c->out, sizeof c->out)) > 0)
    EVP_DigestUpdate(c->md, c->out, (size_t)n);
  if (n < 0) {
    sh_error(err, 500, "layer: %s", archive_error_string(c->raw));
    goto out;
  }
  unsigned char md[32];
  EVP_DigestFinal_ex(c->md, md, NULL);
  memcpy(diffid, "sha256:", 7);
  for (int i = 0; i < 32; i++)
    snprintf(diffid + 7 + 2 * i, 3, "%02x", md[i]);
  if (expect_diffid && strcmp(expect_diffid, diffid) != 0) {
    sh_error(err, 500,
             "layer: content digest %s does not match the image's diff ID %s",
             diffid, expect_diffid);
    goto out;
  }
  rc = 0;
out:
  if (w)
    archive_write_free(w);
  if (tar)
    archive_read_free(tar);
  archive_read_free(c->raw);
  EVP_MD_CTX_free(c->md);
  free(c);
  return rc;
}

/* ---- the unpacking child ---- */

/* The child's progress lines: every CHILD_PROGRESS_BYTES read, and the
 * last count before its verdict. */
#define CHILD_PROGRESS_BYTES (256 * 1024)
#define CHILD_FD 3

struct child_progress {
  int64_t sent, latest;
};

static void child_progress(int64_t done, void *ud) {
  struct child_progress *cp = ud;
  cp->latest = done;
  if (done - cp->sent >= CHILD_PROGRESS_BYTES) {
    dprintf(CHILD_FD, "progress %lld\n", (long long)done);
    cp->sent = done;
  }
}

int image_child_main(int argc, char **argv) {
  if (argc < 1 || strcmp(argv[0], IMAGE_UNPACK_ARGV0) != 0)
    return -1;
  if (argc != 3) {
    fprintf(stderr, "%s: not for use by hand (shoald runs it)\n", argv[0]);
    return 2;
  }
  sh_err err = {0};
  char diffid[DIGEST_LEN + 1];
  int64_t size = 0;
  struct child_progress cp = {0};
  int rc = layer_unpack_here(0, argv[1], *argv[2] ? argv[2] : NULL, diffid,
                             &size, child_progress, &cp, &err);
  if (cp.latest > cp.sent)
    dprintf(CHILD_FD, "progress %lld\n", (long long)cp.latest);
  if (rc == 0) {
    dprintf(CHILD_FD, "ok %s %lld\n", diffid, (long long)size);
    return 0;
  }
  for (char *c = err.msg; *c; c++)
    if (*c == '\n')
      *c = ' ';
  dprintf(CHILD_FD, "error %d %s\n", err.status ? err.status : 500, err.msg);
  return 1;
}

/* One line of the child's (others are ignored); *done on its verdict,
 * err filled when that is an error. */
static void child_line(char *line, layer_progress_fn progress, void *ud,
                       char diffid[DIGEST_LEN + 1], int64_t *size, bool *done,
                       sh_err *err) {
  long long n;
  int status, off = 0;
  char d[DIGEST_LEN + 1];
  if (sscanf(line, "progress %lld", &n) == 1) {
    if (progress)
      progress(n, ud);
  } else if (sscanf(line, "ok %71s %lld", d, &n) == 2 && digest_valid(d)) {
    memcpy(diffid, d, sizeof d);
    *size = n;
    *done = true;
  } else if (sscanf(line, "error %d %n", &status, &off) == 1 && off > 0) {
    sh_error(err, status >= 400 && status < 600 ? status : 500, "%s",
             line + off);
    *done = true;
  }
}

int layer_unpack(int fd, const char *dir, const char *expect_diffid,
                 char diffid[DIGEST_LEN + 1], int64_t *size,
                 layer_progress_fn progress, void *ud, sh_err *err) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0)
    return sh_errno(err, errno, "layer: pipe");
  cleanup_fd int rd = p[0];
  const char *argv[] = {IMAGE_UNPACK_ARGV0, dir,
                        expect_diffid ? expect_diffid : "", NULL};
  struct spawn_opts o = {.path = "/proc/self/exe",
                         .argv = argv,
                         .envp = (const char *const *)environ,
                         .fd_in = fd,
                         .fd_out = -1,
                         .fd_err = STDERR_FILENO,
                         .fd3 = p[1]};
  pid_t pid;
  int rc = spawn_proc(&o, &pid, err);
  close(p[1]);
  if (rc < 0)
    return sh_err_wrap(err, "layer: unpacking process");
  *size = 0;
  bool done = false; /* the verdict line came; nothing after it counts */
  sh_err said = {0};
  char buf[4096];
  size_t len = 0;
  for (;;) {
    ssize_t n = read(rd, buf + len, sizeof buf - 1 - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    len += (size_t)n;
    buf[len] = '\0';
    char *line = buf, *nl;
    while ((nl = strchr(line, '\n'))) {
      *nl = '\0';
      if (!done)
        child_line(line, progress, ud, diffid, size, &done, &said);
      line = nl + 1;
    }
    len = strlen(line);
    memmove(buf, line, len);
    if (len == sizeof buf - 1) /* a line longer than any of the child's */
      len = 0;
  }
  int st = spawn_wait(pid);
  if (said.status) {
    *err = said;
    return -1;
  }
  if (done && st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)
    return 0;
  if (st >= 0 && WIFSIGNALED(st))
    return sh_error(err, 500,
                    "layer: the unpacking process was killed by "
                    "signal %d",
                    WTERMSIG(st));
  return sh_error(err, 500, "layer: the unpacking process failed (status %d)",
                  st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

/* ---- packing: an overlay upper directory as a layer (docker commit) ---- */

struct packer {
  struct archive *w;
  const char *root;
  bool (*skip)(const char *path);
  json_t *links; /* "dev:ino" -> first path, for hard links */
  size_t entries;
  sh_err *err;
};

static int pack_write(struct packer *pk, struct archive_entry *e,
                      const char *full) {
  if (archive_write_header(pk->w, e) < ARCHIVE_WARN)
    return sh_error(pk->err, 500, "commit: %s: %s", archive_entry_pathname(e),
                    archive_error_string(pk->w));
  pk->entries++;
  if (!full || archive_entry_size(e) == 0)
    return 0;
  cleanup_fd int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return sh_errno(pk->err, errno, "commit: open %s", full);
  char buf[64 * 1024];
  int64_t left = archive_entry_size(e);
  while (left > 0) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) /* shrank while read: the header's size is padded */
      break;
    if (n > left)
      n = (ssize_t)left;
    if (archive_write_data(pk->w, buf, (size_t)n) < 0)
      return sh_error(pk->err, 500, "commit: %s: %s", full,
                      archive_error_string(pk->w));
    left -= n;
  }
  return 0;
}

/* An empty regular file named name, with st's owner and times: what a
 * whiteout is in a layer tar (moby's overlay whiteout converter). */
static int pack_marker(struct packer *pk, const char *name,
                       const struct stat *st, mode_t mode) {
  struct archive_entry *e = archive_entry_new();
  archive_entry_set_pathname(e, name);
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, mode);
  archive_entry_set_uid(e, st->st_uid);
  archive_entry_set_gid(e, st->st_gid);
  archive_entry_set_mtime(e, st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
  archive_entry_set_size(e, 0);
  int rc = pack_write(pk, e, NULL);
  archive_entry_free(e);
  return rc;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int pack_dir(struct packer *pk, const char *rel, int depth);

static int pack_one(struct packer *pk, const char *rel, int depth) {
  cleanup_free char *full = xasprintf("%s/%s", pk->root, rel);
  cleanup_free char *abs = xasprintf("/%s", rel);
  if (pk->skip && pk->skip(abs))
    return 0;
  struct stat st;
  if (lstat(full, &st) < 0)
    return errno == ENOENT ? 0 : sh_errno(pk->err, errno, "commit: %s", rel);
  if (S_ISSOCK(st.st_mode))
    return 0; /* tar has no sockets; dockerd's archive skips them too */
  const char *base = strrchr(rel, '/');
  base = base ? base + 1 : rel;
  if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {
    cleanup_free char *name =
        xasprintf("%.*s" WH_PREFIX "%s", (int)(base - rel), rel, base);
    return pack_marker(pk, name, &st, 0600);
  }
  struct archive_entry *e = archive_entry_new();
  archive_entry_copy_stat(e, &st);
  archive_entry_set_pathname(e, rel);
  archive_entry_set_uname(e, "");
  archive_entry_set_gname(e, "");
  int rc = 0;
  if (S_ISLNK(st.st_mode)) {
    char target[4096];
    ssize_t n = readlink(full, target, sizeof target - 1);
    if (n < 0) {
      archive_entry_free(e);
      return sh_errno(pk->err, errno, "commit: readlink %s", rel);
    }
    target[n] = '\0';
    archive_entry_set_symlink(e, target);
    archive_entry_set_size(e, 0);
  } else if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
    char key[64];
    snprintf(key, sizeof key, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    const char *first = json_string_value(json_object_get(pk->links, key));
    if (first) {
      archive_entry_set_hardlink(e, first);
      archive_entry_set_size(e, 0);
    } else {
      json_object_set_new(pk->links, key, json_string(rel));
    }
  } else if (!S_ISREG(st.st_mode)) {
    archive_entry_set_size(e, 0);
  }
  /* File capabilities travel with the file, as in dockerd's tars. */
  char cap[256];
  ssize_t cl = lgetxattr(full, "security.capability", cap, sizeof cap);
  if (cl > 0)
    archive_entry_xattr_add_entry(e, "security.capability", cap, (size_t)cl);
  bool content = S_ISREG(st.st_mode) && !archive_entry_hardlink(e);
  rc = pack_write(pk, e, content ? full : NULL);
  archive_entry_free(e);
  if (rc < 0 || !S_ISDIR(st.st_mode))
    return rc;
  char opq[2];
  if (lgetxattr(full, "trusted.overlay.opaque", opq, sizeof opq) == 1 &&
      opq[0] == 'y') {
    cleanup_free char *name = xasprintf("%s/" WH_OPAQUE, rel);
    if (pack_marker(pk, name, &st, st.st_mode & 0777) < 0)
      return -1;
  }
  return pack_dir(pk, rel, depth + 1);
}

static int pack_dir(struct packer *pk, const char *rel, int depth) {
  if (depth > 256)
    return sh_error(pk->err, 400, "commit: %s: too deep", rel);
  cleanup_free char *dir =
      *rel ? xasprintf("%s/%s", pk->root, rel) : xstrdup(pk->root);
  DIR *d = opendir(dir);
  if (!d)
    return sh_errno(pk->err, errno, "commit: %s", dir);
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
      continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      names = xrealloc(names, cap * sizeof *names);
    }
    names[n++] = xstrdup(de->d_name);
  }
  closedir(d);
  if (n)
    qsort(names, n, sizeof *names, cmp_names);
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    if (rc == 0) {
      cleanup_free char *child =
          *rel ? xasprintf("%s/%s", rel, names[i]) : xstrdup(names[i]);
      rc = pack_one(pk, child, depth);
    }
    free(names[i]);
  }
  free(names);
  return rc;
}

int layer_pack(const char *dir, bool (*skip)(const char *path), int fd,
               size_t *entries, sh_err *err) {
  cleanup_lazy struct lazy_lib *held = lazy_hold(&lazy_archive_lib, err);
  if (!held)
    return -1;
  struct packer pk = {.root = dir, .skip = skip, .err = err};
  pk.w = archive_write_new();
  pk.links = json_object();
  int rc = -1;
  if (archive_write_set_format_pax_restricted(pk.w) != ARCHIVE_OK ||
      archive_write_add_filter_gzip(pk.w) != ARCHIVE_OK ||
      archive_write_open_fd(pk.w, fd) != ARCHIVE_OK) {
    sh_error(err, 500, "commit: %s", archive_error_string(pk.w));
    goto out;
  }
  rc = pack_dir(&pk, "", 0);
  if (archive_write_close(pk.w) != ARCHIVE_OK && rc == 0)
    rc = sh_error(err, 500, "commit: %s", archive_error_string(pk.w));
out:
  if (entries)
    *entries = pk.entries;
  archive_write_free(pk.w);
  json_decref(pk.links);
  return rc;
}
