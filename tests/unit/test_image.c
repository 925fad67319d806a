/* src/image: references, layer unpacking on crafted tars (whiteouts,
 * escapes, digests), and real pulls from Debian's docker-registry started
 * on 127.0.0.1 (scripts/registry.sh) with the images of
 * scripts/test-images.sh: plain, through a mirror URL, behind bearer token
 * auth (a tiny token server here; the registry is real), indexes, errors,
 * concurrency, remove and load. */
#include <archive.h>
#include <archive_entry.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>

#include "core/clock.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "image/image.h"
#include "image/internal.h"
#include "test.h"

/* ---- references ---- */

TEST(image_ref_table) {
  static const struct {
    const char *in, *full, *familiar, *err;
  } t[] = {
      {"nginx", "docker.io/library/nginx:latest", "nginx:latest", NULL},
      {"nginx:1.25", "docker.io/library/nginx:1.25", "nginx:1.25", NULL},
      {"library/nginx", "docker.io/library/nginx:latest", "nginx:latest", NULL},
      {"docker.io/nginx", "docker.io/library/nginx:latest", "nginx:latest",
       NULL},
      {"index.docker.io/library/nginx:x", "docker.io/library/nginx:x",
       "nginx:x", NULL},
      {"user/app", "docker.io/user/app:latest", "user/app:latest", NULL},
      {"localhost/app", "localhost/app:latest", "localhost/app:latest", NULL},
      {"host:5000/a/b@sha256:"
       "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
       "host:5000/a/b@sha256:"
       "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
       "host:5000/a/b@sha256:"
       "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
       NULL},
      {"127.0.0.1:5000/x:tag", "127.0.0.1:5000/x:tag", "127.0.0.1:5000/x:tag",
       NULL},
      {"[::1]:5000/x", "[::1]:5000/x:latest", "[::1]:5000/x:latest", NULL},
      {"a.b-c/d__e/f-g.h", "a.b-c/d__e/f-g.h:latest", "a.b-c/d__e/f-g.h:latest",
       NULL},
      {"Nginx", NULL, NULL,
       "invalid reference format: repository name (library/Nginx) must be "
       "lowercase"},
      {"", NULL, NULL, "invalid reference format"},
      {"nginx:", NULL, NULL, "invalid reference format"},
      {"nginx:-bad", NULL, NULL, "invalid reference format"},
      {"-nginx", NULL, NULL, "invalid reference format"},
      {"a//b", NULL, NULL, "invalid reference format"},
      {"a/b_-c", NULL, NULL, "invalid reference format"},
      {"nginx@sha256:123", NULL, NULL,
       "invalid reference format: invalid checksum digest format"},
      {"host:port/x", NULL, NULL, "invalid reference format"},
      {"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", NULL,
       NULL, "invalid repository name"},
  };
  for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
    struct image_ref r;
    sh_err err = {0};
    int rc = image_ref_parse(t[i].in, &r, &err);
    if (t[i].err) {
      if (rc == 0)
        FAIL_("%s: parsed, want error", t[i].in);
      CHECK_INT_EQ(err.status, 400);
      if (!str_has_prefix(err.msg, t[i].err))
        FAIL_("%s: error \"%s\", want \"%s\"", t[i].in, err.msg, t[i].err);
      continue;
    }
    if (rc < 0)
      FAIL_("%s: %s", t[i].in, err.msg);
    cleanup_free char *full = image_ref_full(&r);
    cleanup_free char *fam = image_ref_familiar(&r, true);
    image_ref_free(&r);
    CHECK_STR_EQ(full, t[i].full);
    CHECK_STR_EQ(fam, t[i].familiar);
  }
}

/* What a task start pulls again (a tag) and what it need not (an ID, a
 * digest). */
TEST(image_ref_pinned_by_id_or_digest) {
  static const char hex[] =
      "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  cleanup_free char *id = xasprintf("sha256:%s", hex);
  cleanup_free char *canon = xasprintf("nginx:1.25@sha256:%s", hex);
  cleanup_free char *bare = xasprintf("host:5000/a/b@sha256:%s", hex);
  CHECK(image_ref_pinned(id));
  CHECK(image_ref_pinned(canon));
  CHECK(image_ref_pinned(bare));
  CHECK(!image_ref_pinned("nginx"));
  CHECK(!image_ref_pinned("nginx:latest"));
  CHECK(!image_ref_pinned("host:5000/a/b:v1"));
  CHECK(!image_ref_pinned("nginx@sha256:123")); /* not a reference at all */
  CHECK(!image_ref_pinned(""));
}

TEST(image_auth_header) {
  /* {"username":"u","password":"p?>","serveraddress":"r"} in base64url */
  const char *json = "{\"username\":\"u\",\"password\":\"p?>\","
                     "\"serveraddress\":\"r\"}";
  unsigned char b64[256];
  int n = EVP_EncodeBlock(b64, (const unsigned char *)json, (int)strlen(json));
  for (int i = 0; i < n; i++)
    b64[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
  while (n > 0 && b64[n - 1] == '=')
    b64[--n] = '\0';
  struct image_auth a;
  sh_err err = {0};
  CHECK(image_auth_decode((char *)b64, &a, &err) == 0);
  CHECK_STR_EQ(a.username, "u");
  CHECK_STR_EQ(a.password, "p?>");
  CHECK_STR_EQ(a.serveraddress, "r");
  image_auth_free(&a);
  CHECK(image_auth_decode("", &a, &err) == 0 && !a.username);
  CHECK(image_auth_decode("!!!notbase64", &a, &err) < 0);
  CHECK_INT_EQ(err.status, 400);
}

/* ---- crafted layers ---- */

struct tmpdir {
  char path[64];
};
static void tmpdir_free(struct tmpdir *t) {
  if (t->path[0])
    rm_rf(t->path);
}
#define cleanup_tmpdir __attribute__((cleanup(tmpdir_free)))
static void tmpdir_make(struct tmpdir *t) {
  snprintf(t->path, sizeof t->path, "/tmp/shoal-image-test-XXXXXX");
  if (!mkdtemp(t->path))
    abort();
}

enum { F, D, L, H, C };
struct ent {
  int kind;
  const char *path, *data; /* data: file content or link target */
  unsigned rdev_major, rdev_minor;
};

/* Writes a tar (gzip when gz) of ents to path; the uncompressed tar's
 * digest goes to diffid. */
static void make_tar(const char *path, const struct ent *ents, size_t n,
                     bool gz, char diffid[DIGEST_LEN + 1]) {
  for (int pass = 0; pass < 2; pass++) {
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    if (pass == 1 && gz)
      archive_write_add_filter_gzip(a);
    size_t cap = 1 << 20, used = 0;
    char *mem = xmalloc(cap);
    archive_write_set_bytes_in_last_block(a, 1);
    if (archive_write_open_memory(a, mem, cap, &used) != ARCHIVE_OK)
      abort();
    for (size_t i = 0; i < n; i++) {
      struct archive_entry *e = archive_entry_new();
      archive_entry_set_pathname(e, ents[i].path);
      archive_entry_set_mtime(e, 1700000000, 0);
      size_t len = ents[i].kind == F ? strlen(ents[i].data) : 0;
      switch (ents[i].kind) {
      case F:
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, (la_int64_t)len);
        break;
      case D:
        archive_entry_set_filetype(e, AE_IFDIR);
        archive_entry_set_perm(e, 0755);
        break;
      case L:
        archive_entry_set_filetype(e, AE_IFLNK);
        archive_entry_set_perm(e, 0777);
        archive_entry_set_symlink(e, ents[i].data);
        break;
      case H:
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_hardlink(e, ents[i].data);
        break;
      case C:
        archive_entry_set_filetype(e, AE_IFCHR);
        archive_entry_set_perm(e, 0666);
        archive_entry_set_rdev(e,
                               makedev(ents[i].rdev_major, ents[i].rdev_minor));
        break;
      }
      if (archive_write_header(a, e) != ARCHIVE_OK)
        abort();
      if (len)
        archive_write_data(a, ents[i].data, len);
      archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
    if (pass == 0)
      digest_of(mem, used, diffid);
    else {
      int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd < 0 || write(fd, mem, used) != (ssize_t)used)
        abort();
      close(fd);
    }
    free(mem);
  }
}

static int unpack_file(const char *tar, const char *dir, const char *expect,
                       sh_err *err) {
  int fd = open(tar, O_RDONLY);
  char got[DIGEST_LEN + 1];
  int64_t size;
  int rc = layer_unpack(fd, dir, expect, got, &size, NULL, NULL, err);
  close(fd);
  return rc;
}

TEST(image_layer_whiteouts) {
  cleanup_tmpdir struct tmpdir t = {0};
  tmpdir_make(&t);
  const struct ent ents[] = {
      {D, "etc/", NULL, 0, 0},
      {F, "etc/hosts", "127.0.0.1 localhost\n", 0, 0},
      {H, "etc/hosts.hard", "etc/hosts", 0, 0},
      {F, "./.wh.removed", "", 0, 0},
      {F, "opq/.wh..wh..opq", "", 0, 0},
      {F, "opq/new", "n", 0, 0},
      {F, "etc/.wh..wh.plnk", "", 0, 0},
      {L, "abs", "/etc/hosts", 0, 0},
      {C, "dev/null", NULL, 1, 3},
      {C, "already-whiteout", NULL, 0, 0},
  };
  char diffid[DIGEST_LEN + 1];
  cleanup_free char *tar = xasprintf("%s/l.tar.gz", t.path);
  cleanup_free char *dir = xasprintf("%s/diff", t.path);
  make_tar(tar, ents, ARRAY_SIZE(ents), true, diffid);
  mkdir(dir, 0755);
  sh_err err = {0};
  if (unpack_file(tar, dir, diffid, &err) < 0)
    FAIL_("unpack: %s", err.msg);
  struct stat st, st2;
  cleanup_free char *wh = xasprintf("%s/removed", dir);
  CHECK(lstat(wh, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == 0);
  cleanup_free char *whraw = xasprintf("%s/.wh.removed", dir);
  CHECK(lstat(whraw, &st) < 0);
  cleanup_free char *opq = xasprintf("%s/opq", dir);
  char v[8] = "";
  CHECK_INT_EQ(getxattr(opq, "trusted.overlay.opaque", v, sizeof v), 1);
  CHECK(v[0] == 'y');
  cleanup_free char *opqm = xasprintf("%s/opq/.wh..wh..opq", dir);
  CHECK(lstat(opqm, &st) < 0);
  cleanup_free char *plnk = xasprintf("%s/etc/.wh..wh.plnk", dir);
  CHECK(lstat(plnk, &st) < 0);
  cleanup_free char *h1 = xasprintf("%s/etc/hosts", dir);
  cleanup_free char *h2 = xasprintf("%s/etc/hosts.hard", dir);
  CHECK(stat(h1, &st) == 0 && stat(h2, &st2) == 0 && st.st_ino == st2.st_ino);
  cleanup_free char *abs = xasprintf("%s/abs", dir);
  char target[64] = "";
  CHECK(readlink(abs, target, sizeof target - 1) > 0);
  CHECK_STR_EQ(target, "/etc/hosts");
  cleanup_free char *devnull = xasprintf("%s/dev/null", dir);
  CHECK(lstat(devnull, &st) < 0); /* devices other than whiteouts skipped */
  cleanup_free char *aw = xasprintf("%s/already-whiteout", dir);
  CHECK(lstat(aw, &st) == 0 && S_ISCHR(st.st_mode));
}

TEST(image_layer_refuses_escapes) {
  cleanup_tmpdir struct tmpdir t = {0};
  tmpdir_make(&t);
  cleanup_free char *outside = xasprintf("%s/outside", t.path);
  mkdir(outside, 0755);
  const struct ent dotdot[] = {{F, "a/../../outside/evil", "x", 0, 0}};
  const struct ent through_link[] = {{L, "lnk", outside, 0, 0},
                                     {F, "lnk/evil", "x", 0, 0}};
  const struct ent hard_out[] = {{H, "pw", "../../etc/passwd", 0, 0}};
  const struct ent hard_link_dir[] = {{L, "lnk", "/etc", 0, 0},
                                      {H, "pw", "lnk/passwd", 0, 0}};
  const struct {
    const struct ent *e;
    size_t n;
  } cases[] = {
      {dotdot, 1}, {through_link, 2}, {hard_out, 1}, {hard_link_dir, 2}};
  for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
    char diffid[DIGEST_LEN + 1];
    cleanup_free char *tar = xasprintf("%s/%zu.tar", t.path, i);
    cleanup_free char *dir = xasprintf("%s/d%zu", t.path, i);
    make_tar(tar, cases[i].e, cases[i].n, false, diffid);
    mkdir(dir, 0755);
    sh_err err = {0};
    if (unpack_file(tar, dir, NULL, &err) == 0)
      FAIL_("case %zu unpacked", i);
    CHECK(strstr(err.msg, "layer"));
  }
  cleanup_free char *evil = xasprintf("%s/evil", outside);
  struct stat st;
  CHECK(lstat(evil, &st) < 0);
}

TEST(image_layer_diffid_mismatch) {
  cleanup_tmpdir struct tmpdir t = {0};
  tmpdir_make(&t);
  const struct ent ents[] = {{F, "f", "data", 0, 0}};
  char diffid[DIGEST_LEN + 1];
  cleanup_free char *tar = xasprintf("%s/l.tar.gz", t.path);
  cleanup_free char *dir = xasprintf("%s/diff", t.path);
  make_tar(tar, ents, 1, true, diffid);
  mkdir(dir, 0755);
  sh_err err = {0};
  CHECK(unpack_file(tar, dir,
                    "sha256:0000000000000000000000000000000000000000"
                    "000000000000000000000000",
                    &err) < 0);
  CHECK(strstr(err.msg, "does not match"));
}

struct progress_seen {
  int calls;
  int64_t last;
};
static void on_progress(int64_t done, void *ud) {
  struct progress_seen *ps = ud;
  ps->calls++;
  ps->last = done;
}

struct unpack_call {
  int fd;
  const char *dir;
  sh_err err;
  int rc;
};
static void *unpack_thread(void *arg) {
  struct unpack_call *u = arg;
  char got[DIGEST_LEN + 1];
  int64_t size;
  u->rc = layer_unpack(u->fd, u->dir, NULL, got, &size, NULL, NULL, &u->err);
  return NULL;
}

/* This process's unpacking child (argv[0] IMAGE_UNPACK_ARGV0), or 0. */
static pid_t unpack_child(void) {
  DIR *d = opendir("/proc");
  struct dirent *de;
  pid_t found = 0;
  while (d && !found && (de = readdir(d))) {
    pid_t pid = (pid_t)atoi(de->d_name);
    if (pid <= 0)
      continue;
    char path[64], cmd[64] = {0}, stat[512] = {0};
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    cleanup_fd int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, cmd, sizeof cmd - 1) <= 0 ||
        strcmp(cmd, IMAGE_UNPACK_ARGV0))
      continue;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    cleanup_fd int sfd = open(path, O_RDONLY | O_CLOEXEC);
    if (sfd < 0 || read(sfd, stat, sizeof stat - 1) <= 0)
      continue;
    const char *p = strrchr(stat, ')');
    int ppid = 0;
    if (p && sscanf(p + 2, "%*c %d", &ppid) == 1 && ppid == getpid())
      found = pid;
  }
  if (d)
    closedir(d);
  return found;
}

/* A layer unpacks in a child process: its progress (bytes of the blob
 * read) and verdict come back over a pipe, and a child that dies is an
 * error naming the signal, not a hang. */
TEST(image_layer_unpacks_in_a_child_process) {
  cleanup_tmpdir struct tmpdir t = {0};
  tmpdir_make(&t);
  enum { BIG = 600 * 1000 };
  cleanup_free char *big = xmalloc(BIG + 1);
  for (size_t i = 0; i < BIG; i++)
    big[i] = (char)('a' + (i * 7919 % 26));
  big[BIG] = '\0';
  const struct ent ents[] = {{F, "big", big, 0, 0}, {F, "small", "x", 0, 0}};
  char diffid[DIGEST_LEN + 1], got[DIGEST_LEN + 1];
  cleanup_free char *tar = xasprintf("%s/l.tar", t.path);
  cleanup_free char *dir = xasprintf("%s/diff", t.path);
  make_tar(tar, ents, 2, false, diffid);
  struct stat st;
  CHECK(stat(tar, &st) == 0);
  mkdir(dir, 0755);
  struct progress_seen ps = {0};
  int64_t size = 0;
  sh_err err = {0};
  cleanup_fd int fd = open(tar, O_RDONLY | O_CLOEXEC);
  CHECK(layer_unpack(fd, dir, diffid, got, &size, on_progress, &ps, &err) == 0);
  CHECK_STR_EQ(got, diffid);
  CHECK_INT_EQ(size, BIG + 1);
  CHECK(ps.calls >= 2); /* every 256 KiB and the last count */
  CHECK_INT_EQ(ps.last, st.st_size);
  cleanup_free char *f = xasprintf("%s/big", dir);
  CHECK(stat(f, &st) == 0 && st.st_size == BIG);
  CHECK(unpack_child() == 0);

  /* A child killed midway: half a tar on a pipe kept open. */
  cleanup_free char *dir2 = xasprintf("%s/diff2", t.path);
  mkdir(dir2, 0755);
  int p[2];
  CHECK(pipe2(p, O_CLOEXEC) == 0);
  char head[4096];
  int tfd = open(tar, O_RDONLY | O_CLOEXEC);
  CHECK(read(tfd, head, sizeof head) == (ssize_t)sizeof head);
  close(tfd);
  CHECK(write(p[1], head, sizeof head) == (ssize_t)sizeof head);
  struct unpack_call u = {.fd = p[0], .dir = dir2};
  pthread_t th;
  CHECK(pthread_create(&th, NULL, unpack_thread, &u) == 0);
  pid_t child = 0;
  for (int i = 0; i < 500 && !(child = unpack_child()); i++)
    usleep(10000);
  CHECK(child > 0);
  if (child > 0)
    kill(child, SIGKILL);
  close(p[1]); /* EOF for an unpacking that is not a child's */
  pthread_join(th, NULL);
  close(p[0]);
  CHECK_INT_EQ(u.rc, -1);
  CHECK_INT_EQ(u.err.status, 500);
  CHECK(strstr(u.err.msg, "killed by signal 9") != NULL);
}

/* ---- a real registry ---- */

struct registry {
  char dir[64];
  int port;
  char host[32];
};

static void registry_stop(struct registry *r) {
  if (!r->dir[0])
    return;
  cleanup_free char *cmd =
      xasprintf("scripts/registry.sh stop %s >/dev/null 2>&1", r->dir);
  if (system(cmd) != 0)
    fprintf(stderr, "    registry stop failed\n");
  rm_rf(r->dir);
}
#define cleanup_registry __attribute__((cleanup(registry_stop)))

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) < 0)
    abort();
  close(fd);
  return ntohs(a.sin_port);
}

static bool have_registry(void) {
  return system("command -v docker-registry >/dev/null && command -v skopeo "
                ">/dev/null && command -v umoci >/dev/null") == 0;
}
#define NEED_REGISTRY()                                                        \
  do {                                                                         \
    if (!have_registry())                                                      \
      SKIP("docker-registry/skopeo/umoci missing (scripts/deps.sh installs "   \
           "them)");                                                           \
  } while (0)

/* Starts a registry; extra_config (may be NULL) is appended to its config
 * before start (auth). push: push the test images. */
static int registry_start(struct registry *r, const char *extra_config,
                          bool push) {
  snprintf(r->dir, sizeof r->dir, "/tmp/shoal-registry-XXXXXX");
  if (!mkdtemp(r->dir))
    return -1;
  r->port = free_port();
  snprintf(r->host, sizeof r->host, "127.0.0.1:%d", r->port);
  if (system("scripts/test-images.sh build/images >/dev/null") != 0)
    return -1;
  cleanup_free char *cmd = NULL;
  if (extra_config) {
    /* Start once to write the config, then restart with auth added. */
    cmd = xasprintf(
        "scripts/registry.sh start %s %s >/dev/null && "
        "scripts/registry.sh stop %s && cat >>%s/config.yml <<'EOF'\n%s\nEOF\n"
        "setsid docker-registry serve %s/config.yml >%s/registry.log 2>&1 "
        "</dev/null & echo $! >%s/registry.pid; "
        "for i in $(seq 100); do curl -s -o /dev/null http://%s/v2/ && break; "
        "sleep 0.1; done",
        r->dir, r->host, r->dir, r->dir, extra_config, r->dir, r->dir, r->dir,
        r->host);
  } else {
    cmd = xasprintf("scripts/registry.sh start %s %s >/dev/null", r->dir,
                    r->host);
  }
  if (system(cmd) != 0)
    return -1;
  if (push) {
    cleanup_free char *p = xasprintf(
        "scripts/registry.sh push %s build/images >/dev/null", r->host);
    if (system(p) != 0)
      return -1;
  }
  return 0;
}

static void collect(const json_t *ev, void *ud) {
  sh_buf *b = ud;
  char *s = jx_dumps(ev, JSON_COMPACT, NULL);
  buf_printf(b, "%s\n", s);
  free(s);
}

struct store_h {
  struct tmpdir t;
  struct image_store *s;
};
static void store_h_free(struct store_h *h) {
  image_store_close(h->s);
  tmpdir_free(&h->t);
}
#define cleanup_store __attribute__((cleanup(store_h_free)))

static struct image_store *open_store(struct store_h *h,
                                      const struct image_opts *o) {
  tmpdir_make(&h->t);
  cleanup_free char *root = xasprintf("%s/image", h->t.path);
  sh_err err = {0};
  if (image_store_open(root, o, &h->s, &err) < 0) {
    fprintf(stderr, "    open: %s\n", err.msg);
    return NULL;
  }
  return h->s;
}

TEST(image_pull_busybox) {
  NEED_REGISTRY();
  cleanup_registry struct registry reg = {0};
  CHECK(registry_start(&reg, NULL, true) == 0);
  cleanup_store struct store_h h = {0};
  struct image_store *s = open_store(&h, NULL);
  CHECK(s);
  cleanup_free char *ref = xasprintf("%s/library/busybox", reg.host);
  cleanup_buf sh_buf ev = {0};
  cleanup_free char *id = NULL;
  sh_err err = {0};
  if (image_pull(s, ref, NULL, collect, &ev, &id, &err) < 0)
    FAIL_("pull: %s", err.msg);
  CHECK(str_has_prefix(id, "sha256:"));
  CHECK(strstr(ev.data, "\"Pulling from library/busybox\""));
  CHECK(strstr(ev.data, "\"Pulling fs layer\""));
  CHECK(strstr(ev.data, "\"Pull complete\""));
  CHECK(strstr(ev.data, "\"Digest: sha256:"));
  cleanup_free char *want =
      xasprintf("Status: Downloaded newer image for %s:latest", ref);
  CHECK(strstr(ev.data, want));

  /* Layers unpacked, reachable through short links; config readable. */
  char **dirs = NULL;
  size_t n = 0;
  cleanup_json json_t *config = NULL;
  CHECK(image_layers(s, id, &dirs, &n, &config, &err) == 0);
  CHECK_INT_EQ(n, 1);
  CHECK(str_has_prefix(dirs[0], "l/") && strlen(dirs[0]) == 28);
  cleanup_free char *bb =
      xasprintf("%s/%s/bin/busybox", image_store_root(s), dirs[0]);
  cleanup_free char *sh =
      xasprintf("%s/%s/bin/sh", image_store_root(s), dirs[0]);
  image_layers_free(dirs, n);
  struct stat st;
  CHECK(stat(bb, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111));
  CHECK(lstat(sh, &st) == 0 && S_ISLNK(st.st_mode));
  CHECK_STR_EQ(
      json_string_value(json_array_get(jx_get(config, "config.Cmd"), 0)), "sh");

  /* Second pull: nothing downloaded. */
  buf_reset(&ev);
  cleanup_free char *id2 = NULL;
  CHECK(image_pull(s, ref, NULL, collect, &ev, &id2, &err) == 0);
  CHECK_STR_EQ(id, id2);
  CHECK(!strstr(ev.data, "Downloading"));
  CHECK(strstr(ev.data, "Status: Image is up to date for"));

  /* The OCI-manifest tag of the same content: layers shared. */
  buf_reset(&ev);
  cleanup_free char *oref = xasprintf("%s:oci", ref);
  cleanup_free char *id3 = NULL;
  if (image_pull(s, oref, NULL, collect, &ev, &id3, &err) < 0)
    FAIL_("pull oci: %s", err.msg);
  CHECK(!strstr(ev.data, "Downloading"));

  /* inspect / list / resolve */
  cleanup_json json_t *ins = NULL;
  CHECK(image_inspect(s, ref, &ins, &err) == 0);
  CHECK_STR_EQ(jx_str(ins, "Id", NULL), id);
  cleanup_free char *tag = xasprintf("%s:latest", ref);
  CHECK_STR_EQ(
      json_string_value(json_array_get(json_object_get(ins, "RepoTags"), 0)),
      tag);
  CHECK(str_has_prefix(
      json_string_value(json_array_get(json_object_get(ins, "RepoDigests"), 0)),
      ref));
  CHECK_STR_EQ(jx_str(ins, "Os", NULL), "linux");
  CHECK(jx_int(ins, "Size", 0) > 500000);
  CHECK_INT_EQ(json_array_size(jx_get(ins, "RootFS.Layers")), 1);
  cleanup_json json_t *list = NULL;
  CHECK(image_list(s, &list, &err) == 0);
  CHECK(json_array_size(list) >= 1);
  cleanup_free char *rid = NULL;
  char shortid[13];
  snprintf(shortid, sizeof shortid, "%.12s", id + 7);
  CHECK(image_resolve(s, shortid, &rid, &err) == 0);
  CHECK_STR_EQ(rid, id);
  CHECK(image_resolve(s, "nope", &rid, &err) < 0);
  CHECK_INT_EQ(err.status, 404);
  CHECK_STR_EQ(err.msg, "No such image: nope");
  /* As a service pins it, "name:tag@digest": found by the digest, the
   * tag aside (whatever it says), so a task starts with no registry. */
  const char *dg = strchr(
      json_string_value(json_array_get(json_object_get(ins, "RepoDigests"), 0)),
      '@');
  CHECK(dg != NULL);
  cleanup_free char *pinned = xasprintf("%s:latest%s", ref, dg);
  cleanup_free char *other = xasprintf("%s:other%s", ref, dg);
  free(rid);
  rid = NULL;
  CHECK(image_resolve(s, pinned, &rid, &err) == 0);
  CHECK_STR_EQ(rid, id);
  free(rid);
  rid = NULL;
  CHECK(image_resolve(s, other, &rid, &err) == 0);
  CHECK_STR_EQ(rid, id);
  cleanup_free char *wrong = xasprintf("%s:latest@sha256:%064d", ref, 0);
  CHECK(image_resolve(s, wrong, &rid, &err) < 0);
  CHECK_INT_EQ(err.status, 404);

  /* remove: untag, then the image and its layer go once unreferenced */
  cleanup_json json_t *res = NULL;
  if (id3 && strcmp(id3, id) == 0) {
    cleanup_json json_t *r0 = NULL;
    CHECK(image_remove(s, oref, false, NULL, &r0, &err) == 0);
  }
  CHECK(image_remove(s, ref, false, NULL, &res, &err) == 0);
  cleanup_free char *dump = jx_dump(res);
  CHECK(strstr(dump, "\"Untagged\""));
  if (!id3 || strcmp(id3, id) == 0) {
    CHECK(strstr(dump, "\"Deleted\""));
    CHECK(stat(bb, &st) < 0);
    CHECK(image_inspect(s, id, &ins, &err) < 0);
  }
}

TEST(image_pull_errors) {
  NEED_REGISTRY();
  cleanup_registry struct registry reg = {0};
  CHECK(registry_start(&reg, NULL, false) == 0);
  cleanup_store struct store_h h = {0};
  struct image_store *s = open_store(&h, NULL);
  CHECK(s);
  sh_err err = {0};
  cleanup_free char *id = NULL;
  cleanup_free char *ref = xasprintf("%s/library/nope", reg.host);
  CHECK(image_pull(s, ref, NULL, NULL, NULL, &id, &err) < 0);
  CHECK_INT_EQ(err.status, 404);
  cleanup_free char *want = xasprintf(
      "manifest for %s:latest not found: manifest unknown: manifest unknown",
      ref);
  CHECK_STR_EQ(err.msg, want);
  /* Unreachable registry: a 500 naming the host. */
  int dead = free_port();
  cleanup_free char *dref = xasprintf("127.0.0.1:%d/x", dead);
  CHECK(image_pull(s, dref, NULL, NULL, NULL, &id, &err) < 0);
  CHECK_INT_EQ(err.status, 500);
  cleanup_free char *hp = xasprintf("127.0.0.1:%d", dead);
  CHECK(strstr(err.msg, hp));
  CHECK(image_pull(s, "BAD", NULL, NULL, NULL, &id, &err) < 0);
  CHECK_INT_EQ(err.status, 400);
}

/* A corrupted blob in the registry's storage is refused; nothing stays. */
TEST(image_pull_corrupt_blob) {
  NEED_REGISTRY();
  cleanup_registry struct registry reg = {0};
  CHECK(registry_start(&reg, NULL, true) == 0);
  /* The busybox layer is the largest blob; change a byte in the middle
   * (to one it is not: writing a fixed 'X' left 1 build in 256 intact). */
  cleanup_free char *cmd = xasprintf(
      "for f in $(find %s/data -path '*/blobs/sha256/*' -name data -size "
      "+100k); do c=$(dd if=$f bs=1 skip=5000 count=1 status=none); "
      "if [ \"$c\" = X ]; then n=Y; else n=X; fi; "
      "printf $n | dd of=$f bs=1 seek=5000 conv=notrunc status=none; done",
      reg.dir);
  CHECK(system(cmd) == 0);
  cleanup_store struct store_h h = {0};
  struct image_store *s = open_store(&h, NULL);
  CHECK(s);
  sh_err err = {0};
  cleanup_free char *id = NULL;
  cleanup_free char *ref = xasprintf("%s/library/busybox", reg.host);
  CHECK(image_pull(s, ref, NULL, NULL, NULL, &id, &err) < 0);
  CHECK(strstr(err.msg, "verification failed for digest sha256:"));
  cleanup_free char *ls = xasprintf(
      "test -z \"$(find %s/tmp %s/layers %s/images %s/l -mindepth 1)\"",
      image_store_root(s), image_store_root(s), image_store_root(s),
      image_store_root(s));
  CHECK(system(ls) == 0);
}

/* docker.io names fetched from a mirror URL, as dockerd's
 * --registry-mirror; and GET /distribution for it. */
TEST(image_pull_mirror) {
  NEED_REGISTRY();
  cleanup_registry struct registry reg = {0};
  CHECK(registry_start(&reg, NULL, true) == 0);
  cleanup_free char *mirror = xasprintf("http://%s", reg.host);
  const char *mirrors[] = {mirror, NULL};
  struct image_opts o = {.mirrors = mirrors, .connect_timeout = 2};
  cleanup_store struct store_h h = {0};
  struct image_store *s = open_store(&h, &o);
  CHECK(s);
  sh_err err = {0};
  cleanup_free char *id = NULL;
  cleanup_buf sh_buf ev = {0};
  if (image_pull(s, "busybox", NULL, collect, &ev, &id, &err) < 0)
    FAIL_("pull: %s", err.msg);
  CHECK(strstr(ev.data, "Status: Downloaded newer image for busybox:latest"));
  cleanup_json json_t *ins = NULL;
  CHECK(image_inspect(s, "busybox", &ins, &err) == 0);
  CHECK_STR_EQ(
      json_string_value(json_array_get(json_object_get(ins, "RepoTags"), 0)),
      "busybox:latest");
  cleanup_json json_t *d = NULL;
  if (image_distribution(s, "nginx", NULL, &d, &err) < 0)
    FAIL_("distribution: %s", err.msg);
  CHECK_STR_EQ(jx_str(d, "Descriptor.mediaType", NULL),
               "application/vnd.docker.distribution.manifest.v2+json");
  CHECK(digest_valid(jx_str(d, "Descriptor.digest", NULL)));
  CHECK(jx_int(d, "Descriptor.size", 0) > 100);
  CHECK_STR_EQ(jx_str(json_array_get(json_object_get(d, "Platforms"), 0),
                      "architecture", NULL),
               "amd64");
  /* Unknown on the mirror: the mirror's answer, not the hub's silence. */
  CHECK(image_pull(s, "doesnotexist", NULL, NULL, NULL, &id, &err) < 0);
  CHECK_INT_EQ(err.status, 404);
  CHECK(strstr(err.msg, "doesnotexist:latest not found"));
}

/* Manifest list: the linux/amd64 entry is chosen. */
TEST(image_pull_index) {
  NEED_REGISTRY();
  cleanup_registry struct registry reg = {0};
  CHECK(registry_start(&reg, NULL, true) == 0);
  /* Two manifests of busybox (v2s2 :latest, OCI :oci) with different
   * digests; the index lists the OCI one as arm64, :latest as amd64. */
  cleanup_free char *cmd = xasprintf(
      "set -e; h=%s; r=library/busybox; "
      "A='Accept: application/vnd.docker.distribution.manifest.v2+json'; "
      "O='Accept: application/vnd.oci.image.manifest.v1+json'; "
      "curl -sf -H \"$A\" http://$h/v2/$r/manifests/latest >%s/m1; "
      "curl -sf -H \"$O\" http://$h/v2/$r/manifests/oci >%s/m2; "
      "d1=sha256:$(sha256sum <%s/m1 | cut -c1-64); s1=$(stat -c %%s %s/m1); "
      "d2=sha256:$(sha256sum <%s/m2 | cut -c1-64); s2=$(stat -c %%s %s/m2); "
      "printf "
      "'{\"schemaVersion\":2,\"mediaType\":\"application/"
      "vnd.docker.distribution.manifest.list.v2+json\","
      "\"manifests\":[{\"mediaType\":\"application/"
      "vnd.oci.image.manifest.v1+json\",\"digest\":\"%%s\",\"size\":%%s,"
      "\"platform\":{\"architecture\":\"arm64\",\"os\":\"linux\",\"variant\":"
      "\"v8\"}},"
      "{\"mediaType\":\"application/"
      "vnd.docker.distribution.manifest.v2+json\",\"digest\":\"%%s\",\"size\":%"
      "%s,"
      "\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}}]}' $d2 $s2 "
      "$d1 $s1 >%s/list; "
      "curl -sf -X PUT -H 'Content-Type: "
      "application/vnd.docker.distribution.manifest.list.v2+json' "
      "--data-binary @%s/list http://$h/v2/$r/manifests/multi; echo $d1 >%s/d1",
      reg.host, reg.dir, reg.dir, reg.dir, reg.dir, reg.dir, reg.dir, reg.dir,
      reg.dir, reg.dir);
  CHECK(system(cmd) == 0);
  cleanup_store struct store_h h = {0};
  struct image_store *s = open_store(&h, NULL);
  CHECK(s);
  sh_err err = {0};
  cleanup_free char *id = NULL, *id_latest = NULL;
  cleanup_free char *ref = xasprintf("%s/library/busybox:multi", reg.host);
  if (image_pull(s, ref, NULL, NULL, NULL, &id, &err) < 0)
    FAIL_("pull: %s", err.msg);
  cleanup_free char *lref = xasprintf("%s/library/busybox:latest", reg.host);
  CHECK(image_pull(s, lref, NULL, NULL, NULL, &id_latest, &err) == 0);
  CHECK_STR_EQ(id, id_latest);
  cleanup_json json_t *d = NULL;
  CHECK(image_distribution(s, ref, NULL, &d, &err) == 0);
  CHECK_STR_EQ(jx_str(d, "Descriptor.mediaType", NULL),
               "application/vnd.docker.distribution.manifest.list.v2+json");
  CHECK_INT_EQ(json_array_size(json_object_get(d, "Platforms")), 2);
  CHECK_STR_EQ(jx_str(json_array_get(json_object_get(d, "Platforms"), 0),
                      "variant", NULL),
               "v8");
}

struct cpull {
  struct image_store *s;
  const char *ref;
  char *id;
  sh_err err;
};
static void *cpull_run(void *arg) {
  struct cpull *c = arg;
  image_pull(c->s, c->ref, NULL, NULL, NULL, &c->id, &c->err);
  return NULL;
}

/* Four threads pull nginx into one store at once; then time a cold pull. */
TEST(image_pull_concurrent_nginx) {
  NEED_REGISTRY();
  cleanup_registry struct registry reg = {0};
  CHECK(registry_start(&reg, NULL, true) == 0);
  cleanup_store struct store_h h = {0};
  struct image_store *s = open_store(&h, NULL);
  CHECK(s);
  cleanup_free char *ref = xasprintf("%s/library/nginx", reg.host);
  cleanup_free char *oref = xasprintf("%s/library/nginx:oci", reg.host);
  struct cpull c[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    c[i] = (struct cpull){.s = s, .ref = i % 2 ? oref : ref};
    pthread_create(&th[i], NULL, cpull_run, &c[i]);
  }
  for (int i = 0; i < 4; i++)
    pthread_join(th[i], NULL);
  for (int i = 0; i < 4; i++) {
    if (!c[i].id)
      FAIL_("pull %d: %s", i, c[i].err.msg);
  }
  CHECK_STR_EQ(c[0].id, c[2].id);
  cleanup_free char *cnt = xasprintf(
      "test $(ls %s/layers | wc -l) -eq 1 && test $(ls %s/l | wc -l) -eq 1 && "
      "test -z \"$(ls -A %s/tmp)\"",
      image_store_root(s), image_store_root(s), image_store_root(s));
  CHECK(system(cnt) == 0);
  char **dirs;
  size_t n;
  cleanup_json json_t *cfg = NULL;
  CHECK(image_layers(s, c[0].id, &dirs, &n, &cfg, NULL) == 0);
  cleanup_free char *html = xasprintf("%s/%s/usr/share/nginx/html/index.html",
                                      image_store_root(s), dirs[0]);
  image_layers_free(dirs, n);
  cleanup_free char *body = NULL;
  size_t len;
  CHECK(read_file(html, &body, &len, NULL) == 0);
  CHECK(strstr(body, "<title>Welcome to nginx!</title>"));
  CHECK_STR_EQ(jx_str(cfg, "config.StopSignal", NULL), "SIGQUIT");
  CHECK(jx_get(cfg, "config.ExposedPorts.80/tcp"));
  for (int i = 0; i < 4; i++)
    free(c[i].id);

  /* A cold pull's time, for the record. */
  cleanup_store struct store_h h2 = {0};
  struct image_store *s2 = open_store(&h2, NULL);
  int64_t t0 = clock_mono_ns();
  cleanup_free char *id = NULL;
  sh_err err = {0};
  CHECK(image_pull(s2, ref, NULL, NULL, NULL, &id, &err) == 0);
  fprintf(stderr, "    nginx cold pull from the local registry: %.0f ms\n",
          (double)(clock_mono_ns() - t0) / 1e6);
}

/* ---- bearer token auth: a real registry with token auth, and a token
 * server here that signs RS256 JWTs with a self-signed certificate. ---- */

struct token_server {
  int fd, port;
  EVP_PKEY *key;
  char *x5c;
  int requests;
  bool saw_basic;
  char scope[256];
};

static char *b64url(const unsigned char *in, size_t n) {
  char *out = xmalloc(4 * ((n + 2) / 3) + 1);
  int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
  while (len > 0 && out[len - 1] == '=')
    out[--len] = '\0';
  for (int i = 0; i < len; i++)
    out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
  return out;
}

static char *make_jwt(struct token_server *ts) {
  cleanup_json json_t *hdr = json_pack("{s:s, s:s, s:[s]}", "typ", "JWT", "alg",
                                       "RS256", "x5c", ts->x5c);
  time_t now = time(NULL);
  cleanup_json json_t *claims = json_pack(
      "{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:[{s:s, s:s, s:[s, s]}, "
      "{s:s, s:s, s:[s, s]}]}",
      "iss", "shoal-test-issuer", "sub", "", "aud", "shoal-test", "exp",
      (json_int_t)now + 3600, "nbf", (json_int_t)now - 60, "iat",
      (json_int_t)now - 60, "jti", "1", "access", "type", "repository", "name",
      "library/busybox", "actions", "pull", "push", "type", "repository",
      "name", "library/nginx", "actions", "pull", "push");
  cleanup_free char *h = jx_dumps(hdr, JSON_COMPACT, NULL);
  cleanup_free char *c = jx_dumps(claims, JSON_COMPACT, NULL);
  cleanup_free char *hb = b64url((unsigned char *)h, strlen(h));
  cleanup_free char *cb = b64url((unsigned char *)c, strlen(c));
  cleanup_free char *input = xasprintf("%s.%s", hb, cb);
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  unsigned char sig[512];
  size_t siglen = sizeof sig;
  EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, ts->key);
  EVP_DigestSign(md, sig, &siglen, (unsigned char *)input, strlen(input));
  EVP_MD_CTX_free(md);
  cleanup_free char *sb = b64url(sig, siglen);
  return xasprintf("%s.%s", input, sb);
}

static void *token_serve(void *arg) {
  struct token_server *ts = arg;
  for (;;) {
    int c = accept(ts->fd, NULL, NULL);
    if (c < 0)
      return NULL;
    char req[8192];
    ssize_t n = 0, r;
    while (n < (ssize_t)sizeof req - 1 &&
           (r = read(c, req + n, sizeof req - 1 - (size_t)n)) > 0) {
      n += r;
      req[n] = '\0';
      if (strstr(req, "\r\n\r\n"))
        break;
    }
    req[n > 0 ? n : 0] = '\0';
    ts->requests++;
    if (strcasestr(req, "\r\nAuthorization: Basic "))
      ts->saw_basic = true;
    const char *sc = strstr(req, "scope=");
    if (sc)
      snprintf(ts->scope, sizeof ts->scope, "%.*s", (int)strcspn(sc + 6, "& "),
               sc + 6);
    cleanup_free char *jwt = make_jwt(ts);
    cleanup_free char *body = xasprintf("{\"token\":\"%s\"}", jwt);
    cleanup_free char *resp =
        xasprintf("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                  "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                  strlen(body), body);
    if (write(c, resp, strlen(resp)) < 0)
      perror("token write");
    close(c);
  }
}

TEST(image_pull_bearer_token) {
  NEED_REGISTRY();
  cleanup_tmpdir struct tmpdir t = {0};
  tmpdir_make(&t);
  cleanup_free char *gen = xasprintf(
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s/k.pem -out "
      "%s/c.pem -subj /CN=shoal-token -days 2 2>/dev/null",
      t.path, t.path);
  CHECK(system(gen) == 0);
  struct token_server ts = {0};
  cleanup_free char *kp = xasprintf("%s/k.pem", t.path);
  cleanup_free char *cp = xasprintf("%s/c.pem", t.path);
  FILE *f = fopen(kp, "r");
  CHECK(f);
  ts.key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
  fclose(f);
  f = fopen(cp, "r");
  CHECK(f);
  X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
  fclose(f);
  CHECK(ts.key && cert);
  unsigned char *der = NULL;
  int dl = i2d_X509(cert, &der);
  ts.x5c = xmalloc(4 * ((size_t)dl + 2) / 3 + 4);
  EVP_EncodeBlock((unsigned char *)ts.x5c, der, dl);
  OPENSSL_free(der);
  X509_free(cert);
  ts.fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof a;
  CHECK(bind(ts.fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        listen(ts.fd, 16) == 0 &&
        getsockname(ts.fd, (struct sockaddr *)&a, &al) == 0);
  ts.port = ntohs(a.sin_port);
  pthread_t th;
  pthread_create(&th, NULL, token_serve, &ts);
  pthread_detach(th);

  cleanup_free char *auth =
      xasprintf("auth:\n  token:\n    realm: http://127.0.0.1:%d/token\n"
                "    service: shoal-test\n    issuer: shoal-test-issuer\n"
                "    rootcertbundle: %s",
                ts.port, cp);
  cleanup_registry struct registry reg = {0};
  CHECK(registry_start(&reg, auth, true) == 0);
  /* The registry really asks for a token. */
  cleanup_free char *probe =
      xasprintf("test $(curl -s -o /dev/null -w '%%{http_code}' "
                "http://%s/v2/library/busybox/manifests/latest) = 401",
                reg.host);
  CHECK(system(probe) == 0);

  cleanup_store struct store_h h = {0};
  struct image_store *s = open_store(&h, NULL);
  CHECK(s);
  struct image_auth cred = {.username = "alice", .password = "secret"};
  cleanup_free char *ref = xasprintf("%s/library/busybox", reg.host);
  cleanup_free char *id = NULL;
  sh_err err = {0};
  int before = ts.requests;
  if (image_pull(s, ref, &cred, NULL, NULL, &id, &err) < 0)
    FAIL_("pull: %s", err.msg);
  CHECK(ts.requests > before);
  CHECK(ts.saw_basic);
  CHECK_STR_EQ(ts.scope, "repository%3Alibrary%2Fbusybox%3Apull");
  char **dirs;
  size_t n;
  CHECK(image_layers(s, id, &dirs, &n, NULL, &err) == 0);
  image_layers_free(dirs, n);
  close(ts.fd);
  free(ts.x5c);
  EVP_PKEY_free(ts.key);
}

/* htpasswd basic auth, what `docker login` checks (POST /auth) and what
 * --with-registry-auth's pulls use; Docker's messages when refused. */
TEST(image_login_and_pull_with_basic_auth) {
  NEED_REGISTRY();
  cleanup_tmpdir struct tmpdir t = {0};
  tmpdir_make(&t);
  cleanup_free char *gen =
      xasprintf("python3 -W ignore -c \"import crypt; print('alice:' + "
                "crypt.crypt('s3cret', crypt.mksalt(crypt.METHOD_BLOWFISH)))\" "
                ">%s/htpasswd",
                t.path);
  if (system(gen) != 0)
    SKIP("no bcrypt through python3's crypt");
  cleanup_free char *auth = xasprintf(
      "auth:\n  htpasswd:\n    realm: shoal-test\n    path: %s/htpasswd",
      t.path);
  cleanup_registry struct registry reg = {0};
  CHECK(registry_start(&reg, auth, false) == 0);
  cleanup_free char *push = xasprintf(
      "skopeo --insecure-policy copy -q --dest-tls-verify=false "
      "--dest-creds alice:s3cret --format v2s2 oci:build/images/busybox:latest "
      "docker://%s/private/busybox:v1",
      reg.host);
  CHECK(system(push) == 0);

  cleanup_store struct store_h h = {0};
  struct image_store *s = open_store(&h, NULL);
  CHECK(s);
  sh_err err = {0};
  struct image_auth good = {
      .username = "alice", .password = "s3cret", .serveraddress = reg.host};
  struct image_auth bad = {
      .username = "alice", .password = "wrong", .serveraddress = reg.host};
  CHECK(image_login(s, &good, &err) == 0);
  CHECK(image_login(s, &bad, &err) < 0);
  CHECK_INT_EQ(err.status, 401);
  cleanup_free char *want = xasprintf(
      "login attempt to http://%s/v2/ failed with status: 401 Unauthorized",
      reg.host);
  CHECK_STR_EQ(err.msg, want);
  /* A scheme and path in the address, as the CLI may send it. */
  cleanup_free char *url = xasprintf("http://%s/v1/", reg.host);
  good.serveraddress = url;
  CHECK(image_login(s, &good, &err) == 0);

  cleanup_free char *ref = xasprintf("%s/private/busybox:v1", reg.host);
  cleanup_free char *id = NULL;
  CHECK(image_pull(s, ref, NULL, NULL, NULL, &id, &err) < 0);
  cleanup_free char *denied =
      xasprintf("pull access denied for %s/private/busybox, repository does "
                "not exist or may require 'docker login': unauthorized: "
                "authentication required",
                reg.host);
  CHECK_STR_EQ(err.msg, denied);
  CHECK(image_pull(s, ref, &bad, NULL, NULL, &id, &err) < 0);
  if (image_pull(s, ref, &good, NULL, NULL, &id, &err) < 0)
    FAIL_("pull: %s", err.msg);
  CHECK(str_has_prefix(id, "sha256:"));
}

/* ---- load ---- */

TEST(image_load_archives) {
  if (system("command -v umoci >/dev/null") != 0 ||
      system("scripts/test-images.sh build/images >/dev/null") != 0) {
    SKIP("test images unavailable");
  }
  cleanup_store struct store_h h = {0};
  struct image_store *s = open_store(&h, NULL);
  CHECK(s);
  /* OCI archive: the umoci layout tarred up; its ref.name is only "latest",
   * so the image loads without a name. */
  cleanup_free char *tar = xasprintf("%s/oci.tar", h.t.path);
  cleanup_free char *cmd =
      xasprintf("tar -C build/images/busybox -cf %s .", tar);
  CHECK(system(cmd) == 0);
  int fd = open(tar, O_RDONLY);
  cleanup_buf sh_buf ev = {0};
  cleanup_json json_t *loaded = NULL;
  sh_err err = {0};
  if (image_load(s, fd, collect, &ev, &loaded, &err) < 0)
    FAIL_("load oci: %s", err.msg);
  close(fd);
  CHECK_INT_EQ(json_array_size(loaded), 1);
  CHECK(strstr(ev.data, "Loaded image ID: sha256:"));
  const char *oid = json_string_value(json_array_get(loaded, 0));

  /* docker-archive made from a crafted layer, with a tag, gzip'd. */
  cleanup_tmpdir struct tmpdir t = {0};
  tmpdir_make(&t);
  const struct ent ents[] = {{F, "hello.txt", "hi\n", 0, 0}};
  char diffid[DIGEST_LEN + 1];
  cleanup_free char *lt = xasprintf("%s/layer.tar", t.path);
  make_tar(lt, ents, 1, false, diffid);
  cleanup_free char *config = xasprintf(
      "{\"architecture\":\"amd64\",\"os\":\"linux\",\"created\":"
      "\"2024-01-01T00:00:00Z\",\"config\":{\"Cmd\":[\"cat\",\"/hello.txt\"]},"
      "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\"]}}",
      diffid);
  char cid[DIGEST_LEN + 1];
  digest_of(config, strlen(config), cid);
  cleanup_free char *cf = xasprintf("%s/%s.json", t.path, cid + 7);
  CHECK(write_file_atomic(cf, config, strlen(config), 0644, NULL) == 0);
  cleanup_free char *mf = xasprintf(
      "[{\"Config\":\"%s.json\",\"RepoTags\":[\"hello:v1\"],\"Layers\":"
      "[\"abc/layer.tar\"]}]",
      cid + 7);
  cleanup_free char *mpath = xasprintf("%s/manifest.json", t.path);
  CHECK(write_file_atomic(mpath, mf, strlen(mf), 0644, NULL) == 0);
  cleanup_free char *mk =
      xasprintf("cd %s && mkdir abc blobs && mv layer.tar blobs/ && "
                "ln -s ../blobs/layer.tar abc/layer.tar && "
                "tar -czf da.tar.gz manifest.json %s.json abc blobs",
                t.path, cid + 7);
  CHECK(system(mk) == 0);
  cleanup_free char *da = xasprintf("%s/da.tar.gz", t.path);
  fd = open(da, O_RDONLY);
  buf_reset(&ev);
  if (image_load(s, fd, collect, &ev, NULL, &err) < 0)
    FAIL_("load docker-archive: %s", err.msg);
  close(fd);
  CHECK(strstr(ev.data, "Loaded image: hello:v1"));
  cleanup_free char *id = NULL;
  CHECK(image_resolve(s, "hello:v1", &id, &err) == 0);
  CHECK_STR_EQ(id, cid);
  char **dirs;
  size_t n;
  CHECK(image_layers(s, id, &dirs, &n, NULL, &err) == 0);
  cleanup_free char *hello =
      xasprintf("%s/%s/hello.txt", image_store_root(s), dirs[0]);
  image_layers_free(dirs, n);
  struct stat st;
  CHECK(stat(hello, &st) == 0);

  /* Tag, then remove by ID with two repositories: needs force. */
  CHECK(image_tag(s, "hello:v1", "other/name:x", &err) == 0);
  cleanup_json json_t *res = NULL;
  CHECK(image_remove(s, cid, false, NULL, &res, &err) < 0);
  CHECK_INT_EQ(err.status, 409);
  CHECK(strstr(err.msg, "must be forced"));
  CHECK(image_remove(s, cid, true, NULL, &res, &err) == 0);
  cleanup_free char *dump = jx_dump(res);
  CHECK(strstr(dump, "{\"Untagged\":\"hello:v1\"}"));
  CHECK(strstr(dump, "{\"Untagged\":\"other/name:x\"}"));
  CHECK(stat(hello, &st) < 0);
  free(id);
  id = NULL;
  CHECK(image_resolve(s, oid, &id, &err) == 0); /* the other image stays */
}

/* A load that fails on a bad diff ID releases exactly the pins it took:
 * it used to release one too few when layers before the bad one had been
 * stored (the layer stayed pinned for the process's life), and, when the
 * first diff ID was bad, to "release" every layer it names, dropping pins
 * other pulls hold and calling strcmp(NULL) on a non-string diff ID once
 * any pin existed (found by tests/fuzz/fuzz_manifest.c). */
TEST(image_load_bad_diffid_pins) {
  cleanup_store struct store_h h = {0};
  struct image_store *s = open_store(&h, NULL);
  CHECK(s);
  const struct ent ents[] = {{F, "hello.txt", "hi\n", 0, 0}};
  char diffid[DIGEST_LEN + 1];
  cleanup_free char *lt = xasprintf("%s/layer.tar", h.t.path);
  make_tar(lt, ents, 1, false, diffid);
  /* 0: a good image, so that the layer is in the store; 1: the second
   * diff ID is bad; 2: the first one is. */
  for (int round = 0; round < 3; round++) {
    cleanup_free char *ids = round == 0   ? xasprintf("\"%s\"", diffid)
                             : round == 1 ? xasprintf("\"%s\", 7", diffid)
                                          : xasprintf("7, \"%s\"", diffid);
    cleanup_free char *config =
        xasprintf("{\"architecture\":\"amd64\",\"os\":\"linux\","
                  "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[%s]}}",
                  ids);
    cleanup_free char *cf = xasprintf("%s/config.json", h.t.path);
    CHECK(write_file_atomic(cf, config, strlen(config), 0644, NULL) == 0);
    const char *mf =
        round == 0 ? "[{\"Config\":\"config.json\",\"RepoTags\":[\"p:1\"],"
                     "\"Layers\":[\"layer.tar\"]}]"
                   : "[{\"Config\":\"config.json\",\"RepoTags\":[\"p:1\"],"
                     "\"Layers\":[\"layer.tar\",\"layer.tar\"]}]";
    cleanup_free char *mpath = xasprintf("%s/manifest.json", h.t.path);
    CHECK(write_file_atomic(mpath, mf, strlen(mf), 0644, NULL) == 0);
    cleanup_free char *mk =
        xasprintf("cd %s && tar -cf da.tar manifest.json config.json "
                  "layer.tar",
                  h.t.path);
    CHECK(system(mk) == 0);
    cleanup_free char *da = xasprintf("%s/da.tar", h.t.path);
    int fd = open(da, O_RDONLY);
    sh_err err = {0};
    if (round == 0) {
      if (image_load(s, fd, NULL, NULL, NULL, &err) < 0)
        FAIL_("load: %s", err.msg);
      close(fd);
      CHECK_INT_EQ(s->npins, 0);
      continue;
    }
    /* Another pull holds the layer meanwhile. */
    bool present;
    store_layer_acquire(s, diffid, &present);
    CHECK(present);
    CHECK_INT_EQ(s->npins, 1);
    CHECK(image_load(s, fd, NULL, NULL, NULL, &err) < 0);
    close(fd);
    CHECK_INT_EQ(err.status, 400);
    CHECK(strstr(err.msg, "bad diff ID"));
    /* Only the other holder's pin is left. */
    CHECK_INT_EQ(s->npins, 1);
    CHECK_INT_EQ(s->pins[0].pins, 1);
    store_layer_release(s, diffid);
    CHECK_INT_EQ(s->npins, 0);
  }
}

/* An image without layers whose config has no rootfs.diff_ids: refused,
 * where it used to reach store_image_commit with no diff ID array and
 * crash on a NULL string (found by tests/fuzz/fuzz_manifest.c). */
TEST(image_load_no_diffids) {
  cleanup_store struct store_h h = {0};
  struct image_store *s = open_store(&h, NULL);
  CHECK(s);
  const char *config = "{\"architecture\":\"amd64\",\"os\":\"linux\"}";
  cleanup_free char *cf = xasprintf("%s/config.json", h.t.path);
  CHECK(write_file_atomic(cf, config, strlen(config), 0644, NULL) == 0);
  const char *mf = "[{\"Config\":\"config.json\",\"Layers\":[]}]";
  cleanup_free char *mpath = xasprintf("%s/manifest.json", h.t.path);
  CHECK(write_file_atomic(mpath, mf, strlen(mf), 0644, NULL) == 0);
  cleanup_free char *mk =
      xasprintf("cd %s && tar -cf da.tar manifest.json config.json", h.t.path);
  CHECK(system(mk) == 0);
  cleanup_free char *da = xasprintf("%s/da.tar", h.t.path);
  int fd = open(da, O_RDONLY);
  sh_err err = {0};
  CHECK(image_load(s, fd, NULL, NULL, NULL, &err) < 0);
  close(fd);
  CHECK_INT_EQ(err.status, 400);
  CHECK(strstr(err.msg, "layers don't match"));
}

static int fd_write(void *arg, const void *buf, size_t len) {
  int fd = *(int *)arg;
  return write(fd, buf, len) == (ssize_t)len ? 0 : -1;
}

struct evlog {
  sh_buf b;
};
static void on_image_event(const char *action, const char *id, const char *name,
                           const json_t *labels, void *ud) {
  (void)labels;
  struct evlog *l = ud;
  buf_printf(&l->b, "%s %s %s\n", action, id, name);
}

/* save -> remove -> load gives the same image back; push to a registry
 * and pull into another store gives the same image ID; the event hook
 * hears each step. */
TEST(image_save_load_push_roundtrip) {
  NEED_REGISTRY();
  cleanup_registry struct registry reg = {0};
  CHECK(registry_start(&reg, NULL, true) == 0);
  cleanup_store struct store_h h = {0};
  struct image_store *s = open_store(&h, NULL);
  CHECK(s);
  struct evlog log = {0};
  image_store_set_events(s, on_image_event, &log);
  cleanup_free char *ref = xasprintf("%s/library/busybox:latest", reg.host);
  cleanup_free char *id = NULL;
  sh_err err = {0};
  if (image_pull(s, ref, NULL, NULL, NULL, &id, &err) < 0)
    FAIL_("pull: %s", err.msg);

  cleanup_free char *tar = xasprintf("%s/save.tar", h.t.path);
  int fd = open(tar, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  const char *names[] = {ref, NULL};
  CHECK(image_save(s, names, fd_write, &fd, &err) == 0);
  close(fd);
  const char *bad[] = {"nosuch:1", NULL};
  int dummy = -1;
  CHECK(image_save(s, bad, fd_write, &dummy, &err) < 0);
  CHECK_INT_EQ(err.status, 404);

  cleanup_json json_t *res = NULL;
  CHECK(image_remove(s, ref, false, NULL, &res, &err) == 0);
  cleanup_free char *dump = jx_dump(res);
  CHECK(strstr(dump, "\"Deleted\""));
  fd = open(tar, O_RDONLY);
  cleanup_json json_t *loaded = NULL;
  if (image_load(s, fd, NULL, NULL, &loaded, &err) < 0)
    FAIL_("load of the saved archive: %s", err.msg);
  close(fd);
  CHECK_STR_EQ(json_string_value(json_array_get(loaded, 0)), id);
  cleanup_free char *again = NULL;
  CHECK(image_resolve(s, ref, &again, &err) == 0);
  CHECK_STR_EQ(again, id);

  /* push under another name, pull it into a fresh store */
  cleanup_free char *pushed = xasprintf("%s/pushed/box:v1", reg.host);
  CHECK(image_tag(s, ref, pushed, &err) == 0);
  cleanup_buf sh_buf ev = {0};
  cleanup_free char *pname = xasprintf("%s/pushed/box", reg.host);
  if (image_push(s, pname, "v1", NULL, collect, &ev, &err) < 0)
    FAIL_("push: %s", err.msg);
  CHECK(strstr(ev.data, "The push refers to repository"));
  CHECK(strstr(ev.data, "\"Pushed\""));
  CHECK(strstr(ev.data, "v1: digest: sha256:"));
  buf_reset(&ev);
  CHECK(image_push(s, pname, "v1", NULL, collect, &ev, &err) == 0);
  CHECK(strstr(ev.data, "Layer already exists"));
  CHECK(image_push(s, pname, "nope", NULL, NULL, NULL, &err) < 0);
  CHECK_INT_EQ(err.status, 404);
  cleanup_store struct store_h h2 = {0};
  struct image_store *s2 = open_store(&h2, NULL);
  CHECK(s2);
  cleanup_free char *id2 = NULL;
  if (image_pull(s2, pushed, NULL, NULL, NULL, &id2, &err) < 0)
    FAIL_("pull of the pushed image: %s", err.msg);
  CHECK_STR_EQ(id2, id);

  /* login: the registry has no auth, /v2/ answers 200 */
  struct image_auth a = {.serveraddress = reg.host};
  CHECK(image_login(s, &a, &err) == 0);

  CHECK(strstr(log.b.data, "pull "));
  CHECK(strstr(log.b.data, "save "));
  CHECK(strstr(log.b.data, "untag "));
  CHECK(strstr(log.b.data, "delete "));
  CHECK(strstr(log.b.data, "load "));
  CHECK(strstr(log.b.data, "tag "));
  CHECK(strstr(log.b.data, "push "));
  buf_free(&log.b);
}
