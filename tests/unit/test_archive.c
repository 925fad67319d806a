/* docker cp's pure parts (exec/archive.c): paths made absolute as moby
 * does, symlinks resolved in the scope of a root (a tree built here),
 * tar entry names, the writable check, and the stat header. */
#include "test.h"

#include "core/b64.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "exec/exec.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static int abs_is(const char *in, const char *want) {
  char *got = exec_archive_abs(in);
  int ok = strcmp(got, want) == 0;
  if (!ok)
    fprintf(stderr, "    abs(%s) = %s, want %s\n", in, got, want);
  free(got);
  return ok;
}

TEST(archive_abs_keeps_trailing_dot_and_separator) {
  CHECK(abs_is("etc", "/etc"));
  CHECK(abs_is("/etc/", "/etc/"));
  CHECK(abs_is("/etc/.", "/etc/."));
  CHECK(abs_is("/a/b/../c", "/a/c"));
  CHECK(abs_is("/../../etc/passwd", "/etc/passwd"));
  CHECK(abs_is("../../x/..", "/"));
  CHECK(abs_is("/", "/"));
  CHECK(abs_is(".", "/."));
  CHECK(abs_is("//a//b//", "/a/b/"));
}

TEST(archive_base_is_go_filepath_base) {
  const char *cases[][2] = {{"/etc/hosts", "hosts"},
                            {"/etc/", "etc"},
                            {"/etc/.", "."},
                            {"/", "/"},
                            {"", "."},
                            {"name", "name"}};
  for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
    char *b = exec_archive_base(cases[i][0]);
    int ok = strcmp(b, cases[i][1]) == 0;
    free(b);
    CHECK(ok);
  }
}

TEST(archive_go_filemode_bits) {
  CHECK_INT_EQ(exec_go_filemode(S_IFREG | 0644), 0644);
  CHECK_INT_EQ(exec_go_filemode(S_IFDIR | 0755), (1u << 31) | 0755);
  CHECK_INT_EQ(exec_go_filemode(S_IFLNK | 0777), (1u << 27) | 0777);
  CHECK_INT_EQ(exec_go_filemode(S_IFCHR | 0666),
               (1u << 26) | (1u << 21) | 0666);
  CHECK_INT_EQ(exec_go_filemode(S_IFBLK | 0660), (1u << 26) | 0660);
  CHECK_INT_EQ(exec_go_filemode(S_IFIFO | 0600), (1u << 25) | 0600);
  CHECK_INT_EQ(exec_go_filemode(S_IFDIR | S_ISVTX | 0777),
               (1u << 31) | (1u << 20) | 0777);
  CHECK_INT_EQ(exec_go_filemode(S_IFREG | S_ISUID | S_ISGID | 0755),
               (1u << 23) | (1u << 22) | 0755);
}

TEST(archive_stat_header_is_dockers_json) {
  struct exec_path_stat st = {.size = 4096,
                              .mode = (1u << 31) | 0755,
                              .mtime_ns = 1393534283000000000LL};
  snprintf(st.name, sizeof st.name, "root");
  char *h = exec_path_stat_header(&st);
  unsigned char *dec = NULL;
  size_t n = 0;
  sh_err err = {0};
  int rc = b64_decode(h, &dec, &n, &err);
  free(h);
  CHECK_INT_EQ(rc, 0);
  /* moby's documented example, field for field, in Go's order */
  int same =
      strcmp((char *)dec,
             "{\"name\":\"root\",\"size\":4096,\"mode\":2147484141,"
             "\"mtime\":\"2014-02-27T20:51:23Z\",\"linkTarget\":\"\"}") == 0;
  if (!same)
    fprintf(stderr, "    %s\n", dec);
  free(dec);
  CHECK(same);
}

static int resolve_is(int rootfd, const char *in, const char *want) {
  char *got = NULL;
  sh_err err = {0};
  if (exec_scoped_resolve(rootfd, in, &got, &err) < 0) {
    fprintf(stderr, "    resolve(%s): %s\n", in, err.msg);
    return 0;
  }
  int ok = strcmp(got, want) == 0;
  if (!ok)
    fprintf(stderr, "    resolve(%s) = %s, want %s\n", in, got, want);
  free(got);
  return ok;
}

TEST(archive_symlinks_resolve_inside_the_root) {
  char root[] = "/tmp/shoal-archive-XXXXXX";
  CHECK(mkdtemp(root) != NULL);
  char p[512];
  snprintf(p, sizeof p, "%s/etc", root);
  CHECK(mkdir(p, 0755) == 0);
  snprintf(p, sizeof p, "%s/data", root);
  CHECK(mkdir(p, 0755) == 0);
  const char *links[][2] = {
      {"esc", "/etc/../../"},       /* climbs past the root */
      {"up", "../../../../.."},     /* relative, far up */
      {"abs", "/data"},             /* absolute: from the root */
      {"data/rel", "../etc"},       /* relative to its directory */
      {"loop", "loop"},             /* never ends */
      {"dangling", "/nowhere/file"} /* to something missing */
  };
  for (size_t i = 0; i < ARRAY_SIZE(links); i++) {
    snprintf(p, sizeof p, "%s/%s", root, links[i][0]);
    CHECK(symlink(links[i][1], p) == 0);
  }
  int fd = open(root, O_PATH | O_DIRECTORY);
  CHECK(fd >= 0);
  int ok = resolve_is(fd, "/esc", "/") && resolve_is(fd, "/esc/tmp", "/tmp") &&
           resolve_is(fd, "/up/etc/passwd", "/etc/passwd") &&
           resolve_is(fd, "/abs/x", "/data/x") &&
           resolve_is(fd, "/data/rel/hosts", "/etc/hosts") &&
           resolve_is(fd, "/../../etc", "/etc") &&
           resolve_is(fd, "/dangling", "/nowhere/file") &&
           resolve_is(fd, "/missing/../etc", "/etc");
  sh_err err = {0};
  char *out = NULL;
  int loop = exec_scoped_resolve(fd, "/loop", &out, &err);
  close(fd);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", root);
  CHECK(ok);
  CHECK_INT_EQ(loop, -1);
  CHECK_INT_EQ(err.status, 400);
}

TEST(archive_tar_names_stay_in_the_destination) {
  const char *ok[][2] = {{"a/b", "a/b"}, {"/etc/passwd", "etc/passwd"},
                         {"./x/", "x"},  {"a/../b", "b"},
                         {".", "."},     {"/", "."}};
  for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
    char *out = NULL;
    sh_err err = {0};
    CHECK_INT_EQ(exec_tar_entry_name(ok[i][0], &out, &err), 0);
    int same = strcmp(out, ok[i][1]) == 0;
    free(out);
    CHECK(same);
  }
  const char *bad[] = {"..", "../x", "a/../../x", "/../../etc/passwd/../.."};
  for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
    char *out = NULL;
    sh_err err = {0};
    if (exec_tar_entry_name(bad[i], &out, &err) == 0) {
      free(out);
      FAIL_("%s was taken", bad[i]);
    }
    CHECK_INT_EQ(err.status, 400);
    CHECK(strstr(err.msg, "outside of") != NULL);
  }
}

TEST(archive_writable_as_moby_checks) {
  json_t *mounts = json_loads("[{\"Destination\": \"/data\", \"RW\": true},"
                              " {\"Destination\": \"/data/ro\", \"RW\": false},"
                              " {\"Destination\": \"/cfg\", \"RW\": false}]",
                              0, NULL);
  CHECK(mounts != NULL);
  sh_err err = {0};
  int a = exec_archive_writable(mounts, false, "/tmp", &err);
  int b = exec_archive_writable(mounts, true, "/data/x", &err);
  int c = exec_archive_writable(mounts, false, "/data/ro/x", &err);
  sh_err e1 = err;
  int d = exec_archive_writable(mounts, true, "/tmp", &err);
  sh_err e2 = err;
  int e = exec_archive_writable(mounts, false, "/cfgx", &err);
  json_decref(mounts);
  CHECK_INT_EQ(a, 0);
  CHECK_INT_EQ(b, 0);
  CHECK_INT_EQ(c, -1);
  CHECK_STR_EQ(e1.msg, "mounted volume is marked read-only");
  CHECK_INT_EQ(d, -1);
  CHECK_STR_EQ(e2.msg, "container rootfs is marked read-only");
  CHECK_INT_EQ(e2.status, 400);
  CHECK_INT_EQ(e, 0);
}
