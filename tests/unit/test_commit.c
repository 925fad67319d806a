/* docker commit and docker update, the pure parts: --change lines on an
 * image config (moby's BuildFromConfig), an overlay upper directory packed
 * as a layer (whiteouts and opaque directories as OCI .wh. files, then
 * unpacked back into overlayfs form), update bodies read and merged into
 * a HostConfig with dockerd's checks and conflicts, and the OCI resources
 * crun gets. */
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "agent/runspec.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "exec/exec.h"
#include "image/image.h"
#include "image/internal.h"
#include "test.h"

/* ---- --change ---- */

static int changes(json_t *cfg, const char *a, const char *b, sh_err *err) {
  const char *v[] = {a, b, NULL};
  return image_config_changes(cfg, v, err);
}

TEST(commit_changes_apply) {
  cleanup_json json_t *cfg =
      json_pack("{s:[s], s:[s,s], s:n, s:{s:s}}", "Env", "PATH=/bin", "Cmd",
                "sh", "-x", "Entrypoint", "Labels", "a", "1");
  sh_err err = {0};
  const char *v[] = {"CMD [\"cat\", \"/added\"]",
                     "env FOO=bar \"B=x y\" PATH=/usr/bin",
                     "LABEL team=blue a=2",
                     "EXPOSE 8080 53/udp 7000-7001",
                     "WORKDIR /srv",
                     "WORKDIR app",
                     "USER 1000:1000",
                     "VOLUME /data /logs",
                     "ONBUILD RUN make",
                     "STOPSIGNAL SIGUSR1",
                     "# a comment",
                     "ENV OLD value with spaces",
                     NULL};
  CHECK_INT_EQ(image_config_changes(cfg, v, &err), 0);
  cleanup_free char *cmd = jx_dumps(json_object_get(cfg, "Cmd"), 0, NULL);
  CHECK_STR_EQ(cmd, "[\"cat\", \"/added\"]");
  cleanup_free char *env = jx_dumps(json_object_get(cfg, "Env"), 0, NULL);
  CHECK_STR_EQ(env, "[\"PATH=/usr/bin\", \"FOO=bar\", \"B=x y\", \"OLD=value "
                    "with spaces\"]");
  CHECK_STR_EQ(jx_str(cfg, "Labels.team", ""), "blue");
  CHECK_STR_EQ(jx_str(cfg, "Labels.a", ""), "2");
  json_t *ports = json_object_get(cfg, "ExposedPorts");
  CHECK(json_object_get(ports, "8080/tcp") && json_object_get(ports, "53/udp"));
  CHECK(json_object_get(ports, "7000/tcp") &&
        json_object_get(ports, "7001/tcp"));
  CHECK_INT_EQ(json_object_size(ports), 4);
  CHECK_STR_EQ(jx_str(cfg, "WorkingDir", ""), "/srv/app");
  CHECK_STR_EQ(jx_str(cfg, "User", ""), "1000:1000");
  CHECK(json_object_get(json_object_get(cfg, "Volumes"), "/data"));
  CHECK(json_object_get(json_object_get(cfg, "Volumes"), "/logs"));
  CHECK_STR_EQ(
      json_string_value(json_array_get(json_object_get(cfg, "OnBuild"), 0)),
      "RUN make");
  CHECK_STR_EQ(jx_str(cfg, "StopSignal", ""), "SIGUSR1");
}

TEST(commit_changes_shell_form_and_entrypoint) {
  cleanup_json json_t *cfg =
      json_pack("{s:[s], s:[s]}", "Cmd", "sh", "Shell", "/bin/bash");
  sh_err err = {0};
  /* ENTRYPOINT without a CMD before it clears Cmd, as the builder does */
  CHECK_INT_EQ(changes(cfg, "ENTRYPOINT echo hi", NULL, &err), 0);
  cleanup_free char *ep = jx_dumps(json_object_get(cfg, "Entrypoint"), 0, NULL);
  CHECK_STR_EQ(ep, "[\"/bin/bash\", \"echo hi\"]");
  CHECK(json_is_null(json_object_get(cfg, "Cmd")));
  /* CMD first: it stays; a line ending in a backslash goes on */
  CHECK_INT_EQ(changes(cfg, "CMD a \\", "b", &err), 0);
  CHECK_INT_EQ(changes(cfg, "CMD [\"x\"]", "ENTRYPOINT [\"y\"]", &err), 0);
  cleanup_free char *cmd = jx_dumps(json_object_get(cfg, "Cmd"), 0, NULL);
  CHECK_STR_EQ(cmd, "[\"x\"]");
}

TEST(commit_changes_refused) {
  static const struct {
    const char *line, *msg;
    int status;
  } t[] = {
      {"RUN echo hi", "run is not a valid change command", 400},
      {"FROM busybox", "from is not a valid change command", 400},
      {"copy a b", "copy is not a valid change command", 400},
      {"ENV", "env requires at least one argument", 400},
      {"ENV A", "ENV must have two arguments", 400},
      {"ENV A=1 B",
       "Syntax error - can't find = in \"B\". Must be of the "
       "form: name=value",
       400},
      {"EXPOSE http", "invalid containerPort: http", 400},
      {"EXPOSE 80/icmp", "invalid proto: icmp", 400},
      {"STOPSIGNAL SIGNOPE", "Invalid signal: SIGNOPE", 400},
      {"ONBUILD ONBUILD RUN x",
       "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed", 400},
      {"ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger", 400},
      {"HEALTHCHECK NONE",
       "HEALTHCHECK in docker commit --change is not supported by shoal yet",
       501},
  };
  for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
    cleanup_json json_t *cfg = json_object();
    sh_err err = {0};
    CHECK_INT_EQ(changes(cfg, t[i].line, NULL, &err), -1);
    CHECK_INT_EQ(err.status, t[i].status);
    CHECK_STR_EQ(err.msg, t[i].msg);
  }
}

TEST(commit_config_merge) {
  cleanup_json json_t *ctr = json_pack(
      "{s:s, s:[s,s], s:{s:s}, s:[s], s:s}", "User", "nobody", "Env", "A=1",
      "B=2", "Labels", "x", "1", "Cmd", "top", "WorkingDir", "/w");
  cleanup_json json_t *user =
      json_pack("{s:[s], s:{s:s}}", "Env", "A=9", "Labels", "y", "2");
  image_config_merge(user, ctr);
  cleanup_free char *env = jx_dumps(json_object_get(user, "Env"), 0, NULL);
  CHECK_STR_EQ(env, "[\"A=9\", \"B=2\"]");
  CHECK_STR_EQ(jx_str(user, "User", ""), "nobody");
  CHECK_STR_EQ(jx_str(user, "Labels.x", ""), "1");
  CHECK_STR_EQ(jx_str(user, "Labels.y", ""), "2");
  CHECK_STR_EQ(jx_str(user, "WorkingDir", ""), "/w");
  CHECK_STR_EQ(
      json_string_value(json_array_get(json_object_get(user, "Cmd"), 0)),
      "top");
}

/* ---- upper directory -> layer ---- */

static bool skip_hosts(const char *path) {
  return strcmp(path, "/etc/hosts") == 0;
}

static void put(const char *dir, const char *rel, const char *data) {
  cleanup_free char *p = xasprintf("%s/%s", dir, rel);
  FILE *f = fopen(p, "w");
  if (f) {
    fputs(data, f);
    fclose(f);
  }
}

TEST(commit_layer_pack_whiteouts) {
  char dir[] = "/tmp/shoal-commit-XXXXXX";
  if (!mkdtemp(dir))
    FAIL_("mkdtemp");
  cleanup_free char *up = xasprintf("%s/upper", dir);
  cleanup_free char *opq = xasprintf("%s/upper/var", dir);
  cleanup_free char *etc = xasprintf("%s/upper/etc", dir);
  cleanup_free char *wh = xasprintf("%s/upper/etc/gone", dir);
  mkdir(up, 0755);
  mkdir(etc, 0755);
  mkdir(opq, 0755);
  put(up, "added", "new\n");
  put(up, "etc/passwd", "changed\n");
  put(up, "etc/hosts", "the runtime's\n");
  put(up, "var/only", "only\n");
  cleanup_free char *ln = xasprintf("%s/upper/link", dir);
  CHECK_INT_EQ(symlink("added", ln), 0);
  /* a socket the container left: no tar entry, no failed commit */
  cleanup_free char *sock = xasprintf("%s/upper/etc/s.sock", dir);
  CHECK_INT_EQ(mknod(sock, S_IFSOCK | 0600, 0), 0);
  if (mknod(wh, S_IFCHR | 0, makedev(0, 0)) < 0 ||
      setxattr(opq, "trusted.overlay.opaque", "y", 1, 0) < 0) {
    cleanup_free char *rm = xasprintf("rm -rf %s", dir);
    (void)!system(rm);
    SKIP("mknod or trusted xattrs need root here");
  }
  cleanup_free char *blob = xasprintf("%s/blob", dir);
  int fd = open(blob, O_RDWR | O_CREAT | O_TRUNC, 0600);
  sh_err err = {0};
  size_t n = 0;
  CHECK_INT_EQ(layer_pack(up, skip_hosts, fd, &n, &err), 0);
  /* etc etc/gone etc/passwd added link var var/.wh..wh..opq var/only */
  CHECK_INT_EQ(n, 8);

  /* the tar, as a registry would see it */
  struct archive *a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_tar(a);
  lseek(fd, 0, SEEK_SET);
  CHECK_INT_EQ(archive_read_open_fd(a, fd, 4096), ARCHIVE_OK);
  struct archive_entry *e;
  sh_buf names = {0};
  buf_append(&names, "", 0);
  while (archive_read_next_header(a, &e) == ARCHIVE_OK)
    buf_printf(&names, "%s%s ", archive_entry_pathname(e),
               archive_entry_filetype(e) == AE_IFLNK ? "@" : "");
  archive_read_free(a);
  CHECK_STR_EQ(names.data, "added etc/ etc/.wh.gone etc/passwd link@ var/ "
                           "var/.wh..wh..opq var/only ");
  buf_free(&names);

  /* and back in overlayfs form, with the same diff ID each time */
  cleanup_free char *out = xasprintf("%s/out", dir);
  mkdir(out, 0755);
  lseek(fd, 0, SEEK_SET);
  char diffid[DIGEST_LEN + 1];
  int64_t size = 0;
  CHECK_INT_EQ(layer_unpack(fd, out, NULL, diffid, &size, NULL, NULL, &err), 0);
  close(fd);
  struct stat st;
  cleanup_free char *g = xasprintf("%s/etc/gone", out);
  CHECK(lstat(g, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == 0);
  cleanup_free char *v = xasprintf("%s/var", out);
  char val[4] = {0};
  CHECK_INT_EQ(getxattr(v, "trusted.overlay.opaque", val, sizeof val), 1);
  cleanup_free char *h = xasprintf("%s/etc/hosts", out);
  CHECK(lstat(h, &st) < 0);
  CHECK(str_has_prefix(diffid, "sha256:"));
  cleanup_free char *rm = xasprintf("rm -rf %s", dir);
  CHECK_INT_EQ(system(rm), 0);
}

TEST(commit_layer_pack_empty) {
  char dir[] = "/tmp/shoal-commit-XXXXXX";
  if (!mkdtemp(dir))
    FAIL_("mkdtemp");
  cleanup_free char *blob = xasprintf("%s.tar", dir);
  int fd = open(blob, O_RDWR | O_CREAT | O_TRUNC, 0600);
  sh_err err = {0};
  size_t n = 99;
  CHECK_INT_EQ(layer_pack(dir, NULL, fd, &n, &err), 0);
  CHECK_INT_EQ(n, 0);
  close(fd);
  unlink(blob);
  rmdir(dir);
  /* a missing directory is an error, not a crash */
  fd = open("/dev/null", O_WRONLY);
  CHECK_INT_EQ(layer_pack("/nonexistent/upper", NULL, fd, &n, &err), -1);
  close(fd);
}

/* ---- docker update ---- */

static const struct exec_update_host host = {
    .ncpu = 2, .swap_limit = true, .cpus = "0-1", .mems = "0"};

static int merge(const char *hc_json, const struct exec_update *u, json_t **out,
                 sh_err *err) {
  cleanup_json json_t *hc = json_loads(hc_json, 0, NULL);
  cleanup_json json_t *warn = json_array();
  return exec_update_merge(hc, u, &host, warn, out, err);
}

TEST(update_merge_values_and_resources) {
  struct exec_update u = {.memory = 48 << 20,
                          .nano_cpus = 500000000,
                          .cpu_shares = 512,
                          .memory_reservation = 16 << 20,
                          .cpuset_cpus = "0",
                          .has_pids = true,
                          .pids_limit = 50};
  cleanup_json json_t *hc = NULL;
  sh_err err = {0};
  CHECK_INT_EQ(merge("{\"Memory\": 33554432, \"MemorySwap\": 67108864, "
                     "\"AutoRemove\": false, \"PidsLimit\": null}",
                     &u, &hc, &err),
               0);
  CHECK_INT_EQ(jx_int(hc, "Memory", 0), 48 << 20);
  CHECK_INT_EQ(jx_int(hc, "MemorySwap", 0), 67108864);
  CHECK_INT_EQ(jx_int(hc, "NanoCpus", 0), 500000000);
  CHECK_INT_EQ(jx_int(hc, "PidsLimit", 0), 50);
  cleanup_json json_t *r = exec_update_resources(hc);
  CHECK_INT_EQ(jx_int(r, "memory.limit", 0), 48 << 20);
  CHECK_INT_EQ(jx_int(r, "memory.swap", 0), 67108864);
  CHECK_INT_EQ(jx_int(r, "memory.reservation", 0), 16 << 20);
  CHECK_INT_EQ(jx_int(r, "cpu.quota", 0), 50000);
  CHECK_INT_EQ(jx_int(r, "cpu.period", 0), 100000);
  CHECK_INT_EQ(jx_int(r, "cpu.shares", 0), 512);
  CHECK_STR_EQ(jx_str(r, "cpu.cpus", ""), "0");
  CHECK_INT_EQ(jx_int(r, "pids.limit", 0), 50);
  CHECK(!json_object_get(r, "blockIO"));
  /* pids 0 or less: unlimited, as crun wants it (-1) */
  struct exec_update p = {.has_pids = true, .pids_limit = 0};
  cleanup_json json_t *hc2 = NULL;
  CHECK_INT_EQ(merge("{\"PidsLimit\": 50}", &p, &hc2, &err), 0);
  cleanup_json json_t *r2 = exec_update_resources(hc2);
  CHECK_INT_EQ(jx_int(r2, "pids.limit", 0), -1);
  CHECK(!json_object_get(r2, "memory") && !json_object_get(r2, "cpu"));
}

TEST(update_merge_refusals) {
  static const struct {
    const char *hc;
    struct exec_update u;
    int status;
    const char *msg;
  } t[] = {
      {"{}", {.memory = 1 << 20}, 400, "Minimum memory limit allowed is 6MB"},
      {"{}",
       {.memory = 64 << 20, .memory_swap = 32 << 20},
       400,
       "Minimum memoryswap limit should be larger than memory limit, see "
       "usage"},
      {"{}",
       {.nano_cpus = 3000000000},
       400,
       "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs "
       "available"},
      {"{}",
       {.cpu_period = 500},
       400,
       "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than "
       "1s (i.e. 1000000)"},
      {"{}",
       {.cpuset_cpus = "0-5"},
       400,
       "Requested CPUs are not available - requested 0-5, available: 0-1"},
      {"{}",
       {.cpuset_cpus = "a"},
       400,
       "Invalid value a for cpuset cpus: invalid format: a"},
      {"{\"NanoCpus\": 500000000}",
       {.cpu_quota = 20000},
       409,
       "Conflicting options: CPU Quota cannot be updated as NanoCPUs has "
       "already been set"},
      {"{\"CpuPeriod\": 100000}",
       {.nano_cpus = 1000000000},
       409,
       "Conflicting options: Nano CPUs cannot be updated as CPU Period has "
       "already been set"},
      {"{\"Memory\": 33554432, \"MemorySwap\": 67108864}",
       {.memory = 128 << 20},
       409,
       "Memory limit should be smaller than already set memoryswap limit, "
       "update the memoryswap at the same time"},
  };
  for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
    cleanup_json json_t *hc = NULL;
    sh_err err = {0};
    CHECK_INT_EQ(merge(t[i].hc, &t[i].u, &hc, &err), -1);
    CHECK_INT_EQ(err.status, t[i].status);
    CHECK_STR_EQ(err.msg, t[i].msg);
    CHECK(hc == NULL);
  }
  /* a restart policy on an --rm container */
  cleanup_json json_t *rp = json_pack("{s:s}", "Name", "always");
  struct exec_update u = {.restart_policy = rp};
  cleanup_json json_t *hc = NULL;
  sh_err err = {0};
  CHECK_INT_EQ(merge("{\"AutoRemove\": true}", &u, &hc, &err), -1);
  CHECK_STR_EQ(err.msg, "Restart policy cannot be updated because AutoRemove "
                        "is enabled for the container");
  CHECK_INT_EQ(merge("{\"AutoRemove\": false}", &u, &hc, &err), 0);
  CHECK_STR_EQ(jx_str(hc, "RestartPolicy.Name", ""), "always");
}

TEST(update_blkio_weight_warning) {
  struct exec_update u = {.blkio_weight = 300};
  cleanup_json json_t *hc0 = json_object(), *warn = json_array();
  cleanup_json json_t *hc = NULL;
  sh_err err = {0};
  CHECK_INT_EQ(exec_update_merge(hc0, &u, &host, warn, &hc, &err), 0);
  CHECK_INT_EQ(json_array_size(warn), 1);
  CHECK_STR_EQ(json_string_value(json_array_get(warn, 0)),
               "Your kernel does not support Block I/O weight or the cgroup "
               "is not mounted. Weight discarded.");
  CHECK(!json_object_get(hc, "BlkioWeight"));
  struct exec_update_host h2 = host;
  h2.blkio_weight = true;
  cleanup_json json_t *hc2 = NULL;
  CHECK_INT_EQ(exec_update_merge(hc0, &u, &h2, warn, &hc2, &err), 0);
  cleanup_json json_t *r = exec_update_resources(hc2);
  CHECK_INT_EQ(jx_int(r, "blockIO.weight", 0), 300);
  u.blkio_weight = 5;
  cleanup_json json_t *hc3 = NULL;
  CHECK_INT_EQ(exec_update_merge(hc0, &u, &h2, warn, &hc3, &err), -1);
  CHECK_STR_EQ(err.msg, "Range of blkio weight is from 10 to 1000");
}

TEST(update_body_parse) {
  /* what docker update --memory 64m sends: every field, zero but one */
  cleanup_json json_t *body = json_loads(
      "{\"Memory\": 67108864, \"MemorySwap\": 0, \"CpuShares\": 0, "
      "\"KernelMemory\": 0, \"BlkioWeightDevice\": null, \"Devices\": null, "
      "\"MemorySwappiness\": null, \"PidsLimit\": null, \"CpusetCpus\": \"\", "
      "\"RestartPolicy\": {\"Name\": \"\", \"MaximumRetryCount\": 0}}",
      0, NULL);
  struct exec_update u;
  sh_err err = {0};
  CHECK_INT_EQ(runspec_update_parse(body, &u, &err), 0);
  CHECK_INT_EQ(u.memory, 67108864);
  CHECK(!u.has_pids && !u.restart_policy && !u.cpuset_cpus);
  json_object_set_new(body, "KernelMemory", json_integer(1 << 20));
  CHECK_INT_EQ(runspec_update_parse(body, &u, &err), -1);
  CHECK_INT_EQ(err.status, 501);
  CHECK_STR_EQ(err.msg, "--kernel-memory (Resources.KernelMemory) is not "
                        "supported by shoal yet");
  json_object_set_new(body, "KernelMemory", json_integer(0));
  json_object_set_new(body, "Memory", json_string("64m"));
  CHECK_INT_EQ(runspec_update_parse(body, &u, &err), -1);
  CHECK_INT_EQ(err.status, 400);
  json_object_set_new(body, "Memory", json_integer(0));
  json_object_set_new(body, "RestartPolicy",
                      json_pack("{s:s}", "Name", "sometimes"));
  CHECK_INT_EQ(runspec_update_parse(body, &u, &err), -1);
  CHECK(strstr(err.msg, "invalid restart policy: unknown policy 'sometimes'"));
  json_object_set_new(
      body, "RestartPolicy",
      json_pack("{s:s,s:i}", "Name", "on-failure", "MaximumRetryCount", 3));
  json_object_set_new(body, "PidsLimit", json_integer(-1));
  CHECK_INT_EQ(runspec_update_parse(body, &u, &err), 0);
  CHECK(u.restart_policy && u.has_pids && u.pids_limit == -1);
}
