/* Executor tests. The pure parts (OCI config, resources, users, log
 * parsing) run anywhere; the rest runs real containers with crun and
 * conmon from a busybox-static layer, as root. */
#include "test.h"

#include "core/b64.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/id.h"
#include "core/jsonx.h"
#include "core/lowfd.h"
#include "core/util.h"
#include "exec/exec.h"
#include "exec/caps.h"
#include "exec/internal.h"
#include "seccomp/bpf.h"
#include "seccomp/seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* ---- helpers ---- */

static int write_str(const char *path, const char *s) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return -1;
  ssize_t n = write(fd, s, strlen(s));
  close(fd);
  return n == (ssize_t)strlen(s) ? 0 : -1;
}

static char *slurp(const char *path) {
  char *s = NULL;
  size_t len;
  if (read_file(path, &s, &len, NULL) < 0)
    return NULL;
  return s;
}

static bool json_array_has(const json_t *a, const char *s) {
  size_t i;
  json_t *v;
  json_array_foreach(a, i,
                     v) if (json_is_string(v) &&
                            strcmp(json_string_value(v), s) == 0) return true;
  return false;
}

/* Demultiplexes Docker's log frames into stdout and stderr text. */
struct frames {
  sh_buf raw, out, err;
  int nframes;
  bool bad;
};

/* A write holds whole frames, one or several (the reader batches them). */
static int collect(void *arg, const void *buf, size_t len) {
  struct frames *f = arg;
  const unsigned char *b = buf;
  buf_append(&f->raw, buf, len);
  while (len > 0) {
    if (len < 8 || (b[0] != 1 && b[0] != 2) || b[1] || b[2] || b[3]) {
      f->bad = true;
      return 0;
    }
    uint32_t n = (uint32_t)b[4] << 24 | (uint32_t)b[5] << 16 |
                 (uint32_t)b[6] << 8 | b[7];
    if (n > len - 8) {
      f->bad = true;
      return 0;
    }
    buf_append(b[0] == 1 ? &f->out : &f->err, b + 8, n);
    f->nframes++;
    b += 8 + n;
    len -= 8 + n;
  }
  return 0;
}

static void frames_free(struct frames *f) {
  buf_free(&f->raw);
  buf_free(&f->out);
  buf_free(&f->err);
}

static const char *str0(const sh_buf *b) {
  return b->data ? b->data : "";
}

/* ---- pure: signals, composition, OCI config, resources ---- */

TEST(exec_parse_signal_names) {
  CHECK_INT_EQ(exec_parse_signal("SIGTERM"), SIGTERM);
  CHECK_INT_EQ(exec_parse_signal("term"), SIGTERM);
  CHECK_INT_EQ(exec_parse_signal("9"), SIGKILL);
  CHECK_INT_EQ(exec_parse_signal("SIGQUIT"), SIGQUIT);
  CHECK_INT_EQ(exec_parse_signal("RTMIN+3"), SIGRTMIN + 3);
  CHECK_INT_EQ(exec_parse_signal("NOPE"), -1);
  CHECK_INT_EQ(exec_parse_signal("0"), -1);
  CHECK_INT_EQ(exec_parse_signal("99"), -1);
}

TEST(exec_compose_follows_docker_rules) {
  cleanup_json json_t *ic = json_loads(
      "{\"architecture\":\"amd64\",\"config\":{\"Env\":[\"PATH=/bin\","
      "\"A=1\"],\"Entrypoint\":[\"/entry\"],\"Cmd\":[\"serve\"],"
      "\"WorkingDir\":\"/srv\",\"User\":\"www\",\"StopSignal\":\"SIGQUIT\","
      "\"Labels\":{\"a\":\"img\",\"b\":\"img\"}}}",
      0, NULL);
  CHECK(ic);
  cleanup_json json_t *labels = json_pack("{s:s}", "b", "spec");
  const char *env[] = {"A=2", "B=3", NULL};
  const char *cmd[] = {"run", "fast", NULL};
  struct exec_spec s = {
      .image_config = ic, .env = env, .cmd = cmd, .labels = labels};
  struct exec_process p;
  sh_err err = {0};
  CHECK_INT_EQ(exec_compose(&s, &p, &err), 0);
  /* Args replace Cmd, the image's entrypoint stays. */
  CHECK_INT_EQ(json_array_size(p.args), 3);
  CHECK_STR_EQ(json_string_value(json_array_get(p.args, 0)), "/entry");
  CHECK_STR_EQ(json_string_value(json_array_get(p.args, 2)), "fast");
  CHECK_INT_EQ(json_array_size(p.env), 3);
  CHECK(json_array_has(p.env, "A=2") && json_array_has(p.env, "B=3"));
  CHECK(!json_array_has(p.env, "A=1"));
  CHECK_STR_EQ(p.workdir, "/srv");
  CHECK_STR_EQ(p.user, "www");
  CHECK_INT_EQ(p.stop_signo, SIGQUIT);
  CHECK_STR_EQ(jx_str(p.labels, "a", ""), "img");
  CHECK_STR_EQ(jx_str(p.labels, "b", ""), "spec");
  exec_process_free(&p);

  /* An entrypoint from the spec drops the image's Cmd. */
  const char *ent[] = {"/bin/sh", NULL};
  struct exec_spec s2 = {.image_config = ic,
                         .entrypoint = ent,
                         .stop_signal = "KILL",
                         .workdir = "/w"};
  CHECK_INT_EQ(exec_compose(&s2, &p, &err), 0);
  CHECK_INT_EQ(json_array_size(p.args), 1);
  CHECK(json_is_null(p.cmd));
  CHECK_INT_EQ(p.stop_signo, SIGKILL);
  CHECK_STR_EQ(p.workdir, "/w");
  exec_process_free(&p);

  struct exec_spec s3 = {.image_config = NULL};
  CHECK(exec_compose(&s3, &p, &err) < 0);
  CHECK_INT_EQ(err.status, 400);
  CHECK_STR_EQ(err.msg, "No command specified");
  struct exec_spec s4 = {.cmd = cmd, .workdir = "rel"};
  CHECK(exec_compose(&s4, &p, &err) < 0 && err.status == 400);
  struct exec_spec s5 = {.cmd = cmd, .stop_signal = "SIGNOPE"};
  CHECK(exec_compose(&s5, &p, &err) < 0);
  CHECK_STR_EQ(err.msg, "Invalid signal: SIGNOPE");
}

TEST(exec_resources_map_to_oci_and_cgroups) {
  struct exec_resources r = {
      .nano_cpus = 500000000, .memory_bytes = 64 << 20, .pids_limit = 100};
  cleanup_json json_t *res = NULL;
  sh_err err = {0};
  CHECK_INT_EQ(exec_oci_resources(&r, true, &res, &err), 0);
  CHECK_INT_EQ(jx_int(res, "cpu.quota", 0), 50000);
  CHECK_INT_EQ(jx_int(res, "cpu.period", 0), 100000);
  CHECK_INT_EQ(jx_int(res, "memory.limit", 0), 64 << 20);
  CHECK_INT_EQ(jx_int(res, "memory.swap", 0), 128 << 20);
  CHECK_INT_EQ(jx_int(res, "pids.limit", 0), 100);
  json_t *dev0 = json_array_get(json_object_get(res, "devices"), 0);
  CHECK(json_is_false(json_object_get(dev0, "allow")));

  /* cgroup v2 (Debian 12 hosts): the unified files crun writes. */
  struct exec_cgroup_file f[8];
  size_t n = exec_cgroup_files(EXEC_CGROUP_V2, "/shoal/abc", &r, true, f, 8);
  CHECK_INT_EQ(n, 4);
  CHECK_STR_EQ(f[0].path, "shoal/abc/cpu.max");
  CHECK_STR_EQ(f[0].value, "50000 100000");
  CHECK_STR_EQ(f[1].path, "shoal/abc/memory.max");
  CHECK_STR_EQ(f[1].value, "67108864");
  CHECK_STR_EQ(f[2].path, "shoal/abc/memory.swap.max");
  CHECK_STR_EQ(f[2].value, "67108864");
  CHECK_STR_EQ(f[3].path, "shoal/abc/pids.max");
  CHECK_STR_EQ(f[3].value, "100");
  /* cgroup v1 (lab hosts, this machine). */
  n = exec_cgroup_files(EXEC_CGROUP_V1, "/shoal/abc", &r, false, f, 8);
  CHECK_INT_EQ(n, 4);
  CHECK_STR_EQ(f[0].path, "cpu/shoal/abc/cpu.cfs_quota_us");
  CHECK_STR_EQ(f[1].path, "cpu/shoal/abc/cpu.cfs_period_us");
  CHECK_STR_EQ(f[2].path, "memory/shoal/abc/memory.limit_in_bytes");
  CHECK_STR_EQ(f[3].path, "pids/shoal/abc/pids.max");

  struct exec_resources none = {0};
  json_decref(res);
  res = NULL;
  CHECK_INT_EQ(exec_oci_resources(&none, true, &res, &err), 0);
  CHECK(!json_object_get(res, "cpu") && !json_object_get(res, "memory"));
  CHECK_INT_EQ(exec_cgroup_files(EXEC_CGROUP_V2, "x", &none, true, f, 8), 0);

  json_t *bad = NULL;
  struct exec_resources tiny = {.memory_bytes = 1 << 20};
  CHECK(exec_oci_resources(&tiny, true, &bad, &err) < 0);
  CHECK_STR_EQ(err.msg, "Minimum memory limit allowed is 6MB");
  struct exec_resources cpu = {.nano_cpus = 1000};
  CHECK(exec_oci_resources(&cpu, true, &bad, &err) < 0 && err.status == 400);
}

TEST(exec_oci_config_has_docker_defaults) {
  json_t *args = json_pack("[s]", "sh");
  json_t *env = json_pack("[s]", "PATH=/bin");
  json_t *res = json_object();
  struct exec_user root = {0};
  struct exec_oci_mount mounts[] = {
      {.tmpfs = false, .source = "/host/a", .target = "/data/deep/x"},
      {.tmpfs = true, .target = "/data", .size = 1 << 20, .read_only = true},
      {.tmpfs = true, .target = "/dev/shm"},
  };
  struct exec_oci_input in = {
      .rootfs = "/r",
      .read_only = true,
      .args = args,
      .env = env,
      .cwd = "/",
      .user = &root,
      .hostname = "h",
      .mounts = mounts,
      .n_mounts = 3,
      .hosts_path = "/c/hosts",
      .hostname_path = "/c/hostname",
      .resolv_path = "/c/resolv.conf",
      .resources = res,
      .netns_path = "/run/netns/x",
      .cgroups_path = "/shoal/abc",
      .cgmode = EXEC_CGROUP_V1,
  };
  cleanup_json json_t *c = exec_oci_config(&in);
  json_decref(args);
  json_decref(env);
  json_decref(res);
  json_t *caps = jx_get(c, "process.capabilities");
  CHECK_INT_EQ(json_array_size(json_object_get(caps, "bounding")), 14);
  CHECK_INT_EQ(json_array_size(json_object_get(caps, "effective")), 14);
  CHECK(json_array_has(json_object_get(caps, "bounding"), "CAP_CHOWN"));
  CHECK(json_array_has(json_object_get(caps, "bounding"), "CAP_AUDIT_WRITE"));
  CHECK(!json_array_has(json_object_get(caps, "bounding"), "CAP_SYS_ADMIN"));
  CHECK(jx_bool(c, "root.readonly", false));
  CHECK_STR_EQ(jx_str(c, "linux.cgroupsPath", ""), "/shoal/abc");
  json_t *masked = jx_get(c, "linux.maskedPaths");
  CHECK(json_array_has(masked, "/proc/kcore"));
  CHECK(json_array_has(masked, "/sys/firmware"));
  CHECK(json_array_has(jx_get(c, "linux.readonlyPaths"), "/proc/sys"));
  /* The given network namespace is joined; no cgroup namespace on v1. */
  json_t *ns = jx_get(c, "linux.namespaces");
  bool netns = false, cgns = false;
  size_t i;
  json_t *n;
  json_array_foreach(ns, i, n) {
    if (strcmp(jx_str(n, "type", ""), "network") == 0)
      netns = strcmp(jx_str(n, "path", ""), "/run/netns/x") == 0;
    cgns = cgns || strcmp(jx_str(n, "type", ""), "cgroup") == 0;
  }
  CHECK(netns && !cgns);
  /* Mounts: defaults, /etc files read-only (ro rootfs), a user tmpfs
   * replaces /dev/shm, parents before children. */
  json_t *m = json_object_get(c, "mounts");
  int idx_data = -1, idx_deep = -1, n_shm = 0;
  bool proc = false, pts = false, hosts_ro = false;
  json_array_foreach(m, i, n) {
    const char *d = jx_str(n, "destination", "");
    if (!strcmp(d, "/data"))
      idx_data = (int)i;
    if (!strcmp(d, "/data/deep/x"))
      idx_deep = (int)i;
    if (!strcmp(d, "/dev/shm"))
      n_shm++;
    proc = proc || !strcmp(d, "/proc");
    pts = pts || !strcmp(d, "/dev/pts");
    if (!strcmp(d, "/etc/hosts"))
      hosts_ro = json_array_has(json_object_get(n, "options"), "ro") &&
                 !strcmp(jx_str(n, "source", ""), "/c/hosts");
  }
  CHECK(proc && pts && hosts_ro);
  CHECK_INT_EQ(n_shm, 1);
  CHECK(idx_data >= 0 && idx_deep > idx_data);
  json_t *tm = json_array_get(m, (size_t)idx_data);
  CHECK(json_array_has(json_object_get(tm, "options"), "size=1048576"));
  CHECK(json_array_has(json_object_get(tm, "options"), "ro"));

  /* A non-root user keeps only the bounding set (dockerd). */
  struct exec_user app = {.uid = 1000, .gid = 1000};
  in.user = &app;
  in.cgmode = EXEC_CGROUP_V2;
  in.netns_path = NULL;
  args = json_pack("[s]", "sh");
  env = json_array();
  in.args = args;
  in.env = env;
  in.resources = NULL;
  cleanup_json json_t *c2 = exec_oci_config(&in);
  json_decref(args);
  json_decref(env);
  CHECK(!jx_get(c2, "process.capabilities.effective"));
  CHECK_INT_EQ(jx_int(c2, "process.user.uid", -1), 1000);
  cgns = false;
  json_array_foreach(jx_get(c2, "linux.namespaces"), i, n) {
    cgns = cgns || strcmp(jx_str(n, "type", ""), "cgroup") == 0;
    if (strcmp(jx_str(n, "type", ""), "network") == 0)
      CHECK(!json_object_get(n, "path"));
  }
  CHECK(cgns);
}

TEST(exec_oci_config_init_sysctls_rlimits) {
  json_t *args = json_pack("[s,s]", "nginx", "-g");
  json_t *env = json_array();
  struct exec_user root = {0};
  cleanup_json json_t *sysctls = json_pack("{s:s,s:s}", "net.core.somaxconn",
                                           "1024", "kernel.shmmni", "8192");
  cleanup_json json_t *ul = json_pack("[{s:s,s:i,s:i}]", "Name", "nofile",
                                      "Soft", 1024, "Hard", 2048);
  cleanup_json json_t *rl = NULL;
  sh_err err = {0};
  CHECK(exec_rlimits(ul, &rl, &err) == 0);
  struct exec_oci_input in = {
      .rootfs = "/r",
      .args = args,
      .env = env,
      .cwd = "/",
      .user = &root,
      .hostname = "h",
      .cgroups_path = "/shoal/x",
      .init_path = "/usr/bin/tini-static",
      .sysctls = sysctls,
      .rlimits = rl,
  };
  cleanup_json json_t *c = exec_oci_config(&in);
  json_decref(args);
  json_decref(env);
  /* tini is PID 1 and runs the process after "--". */
  json_t *a = jx_get(c, "process.args");
  CHECK_INT_EQ(json_array_size(a), 4);
  CHECK_STR_EQ(json_string_value(json_array_get(a, 0)), "/sbin/docker-init");
  CHECK_STR_EQ(json_string_value(json_array_get(a, 1)), "--");
  CHECK_STR_EQ(json_string_value(json_array_get(a, 2)), "nginx");
  bool init_ro = false;
  size_t i;
  json_t *m;
  json_array_foreach(json_object_get(c, "mounts"), i, m) {
    if (strcmp(jx_str(m, "destination", ""), "/sbin/docker-init") == 0)
      init_ro = strcmp(jx_str(m, "source", ""), "/usr/bin/tini-static") == 0 &&
                json_array_has(json_object_get(m, "options"), "ro");
  }
  CHECK(init_ro);
  /* The user's sysctls next to dockerd's. */
  json_t *sc = jx_get(c, "linux.sysctl");
  CHECK_STR_EQ(jx_str(json_object_get(sc, "net.core.somaxconn"), "", ""),
               "1024");
  CHECK_STR_EQ(jx_str(json_object_get(sc, "kernel.shmmni"), "", ""), "8192");
  CHECK_STR_EQ(
      jx_str(json_object_get(sc, "net.ipv4.ip_unprivileged_port_start"), "",
             ""),
      "0");
  json_t *r = json_array_get(jx_get(c, "process.rlimits"), 0);
  CHECK_STR_EQ(jx_str(r, "type", ""), "RLIMIT_NOFILE");
  CHECK_INT_EQ(jx_int(r, "soft", 0), 1024);
  CHECK_INT_EQ(jx_int(r, "hard", 0), 2048);

  /* Without them: no init, no rlimits. */
  in.init_path = NULL;
  in.rlimits = NULL;
  args = json_pack("[s]", "sh");
  in.args = args;
  cleanup_json json_t *c2 = exec_oci_config(&in);
  json_decref(args);
  CHECK_INT_EQ(json_array_size(jx_get(c2, "process.args")), 1);
  CHECK(!jx_get(c2, "process.rlimits"));
}

TEST(exec_sysctl_and_ulimit_validation) {
  sh_err err = {0};
  CHECK(exec_check_sysctl("kernel.msgmax", false, &err) == 0);
  CHECK(exec_check_sysctl("kernel.shm_rmid_forced", false, &err) == 0);
  CHECK(exec_check_sysctl("fs.mqueue.queues_max", false, &err) == 0);
  CHECK(exec_check_sysctl("net.ipv4.ip_forward", false, &err) == 0);
  CHECK(exec_check_sysctl("net.ipv4.ip_forward", true, &err) < 0);
  CHECK_STR_EQ(err.msg,
               "sysctl \"net.ipv4.ip_forward\" not allowed in host network "
               "namespace");
  CHECK(exec_check_sysctl("vm.swappiness", false, &err) < 0);
  CHECK_INT_EQ(err.status, 400);
  CHECK_STR_EQ(err.msg, "sysctl 'vm.swappiness' is not allowed");
  CHECK(exec_check_sysctl("kernel.hostname", false, &err) < 0);

  json_t *rl = NULL;
  cleanup_json json_t *bad =
      json_pack("[{s:s,s:i,s:i}]", "Name", "nofiles", "Soft", 1, "Hard", 2);
  CHECK(exec_rlimits(bad, &rl, &err) < 0);
  CHECK_STR_EQ(err.msg, "invalid ulimit type: nofiles");
  cleanup_json json_t *inv =
      json_pack("[{s:s,s:i,s:i}]", "Name", "nproc", "Soft", 20, "Hard", 10);
  CHECK(exec_rlimits(inv, &rl, &err) < 0);
  CHECK_STR_EQ(err.msg, "ulimit soft limit must be less than or equal to "
                        "hard limit: 20 > 10");
  cleanup_json json_t *ok =
      json_pack("[{s:s,s:i,s:i},{s:s,s:i,s:i}]", "Name", "core", "Soft", 0,
                "Hard", 0, "Name", "stack", "Soft", 8388608, "Hard", -1);
  CHECK(exec_rlimits(ok, &rl, &err) == 0);
  CHECK_INT_EQ(json_array_size(rl), 2);
  CHECK_STR_EQ(jx_str(json_array_get(rl, 1), "type", ""), "RLIMIT_STACK");
  json_decref(rl);
}

/* shoald raises its own soft RLIMIT_NOFILE (a manager holds two
 * connections per node); containers without a nofile ulimit still get
 * the limit it started with, as Go gives children the original back. */
TEST(exec_containers_keep_the_nofile_limit_shoald_started_with) {
  struct rlimit was, now;
  CHECK_INT_EQ(getrlimit(RLIMIT_NOFILE, &was), 0);
  if (was.rlim_max < 2048)
    SKIP("hard RLIMIT_NOFILE below 2048");
  struct rlimit low = {1024, was.rlim_max};
  CHECK_INT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  CHECK(exec_nofile_default() == NULL); /* not raised: inherited as is */
  lowfd_raise_nofile();
  CHECK_INT_EQ(getrlimit(RLIMIT_NOFILE, &now), 0);
  CHECK(now.rlim_cur == was.rlim_max);
  sh_err err = {0};
  json_t *rl = NULL;
  cleanup_json json_t *none = json_array();
  CHECK(exec_rlimits(none, &rl, &err) == 0);
  CHECK_INT_EQ(json_array_size(rl), 1);
  CHECK_STR_EQ(jx_str(json_array_get(rl, 0), "type", ""), "RLIMIT_NOFILE");
  CHECK_INT_EQ(jx_int(json_array_get(rl, 0), "soft", 0), 1024);
  json_decref(rl);
  /* A nofile ulimit given is the only one. */
  cleanup_json json_t *given =
      json_pack("[{s:s,s:i,s:i}]", "Name", "nofile", "Soft", 50, "Hard", 60);
  CHECK(exec_rlimits(given, &rl, &err) == 0);
  CHECK_INT_EQ(json_array_size(rl), 1);
  CHECK_INT_EQ(jx_int(json_array_get(rl, 0), "soft", 0), 50);
  json_decref(rl);
  setrlimit(RLIMIT_NOFILE, &was);
}

TEST(exec_resolv_conf_follows_docker) {
  const char *host = "nameserver 127.0.0.53\nnameserver 10.0.0.2\n"
                     "search corp.example\noptions edns0\n";
  /* Nothing given: the host's, minus loopback servers. */
  cleanup_free char *a = exec_resolv_conf(host, NULL, NULL, NULL, false);
  CHECK_STR_EQ(a, "nameserver 10.0.0.2\nsearch corp.example\noptions edns0\n");
  /* Each given list replaces the host's. */
  const char *ns[] = {"1.1.1.1", "9.9.9.9", NULL};
  const char *search[] = {"a.example", "b.example", NULL};
  const char *opts[] = {"timeout:2", "attempts:3", NULL};
  cleanup_free char *b = exec_resolv_conf(host, ns, search, opts, false);
  CHECK_STR_EQ(b, "nameserver 1.1.1.1\nnameserver 9.9.9.9\n"
                  "search a.example b.example\n"
                  "options timeout:2 attempts:3\n");
  /* Only loopback servers on the host: Google's. */
  cleanup_free char *c =
      exec_resolv_conf("nameserver 127.0.0.1\n", NULL, NULL, NULL, false);
  CHECK_STR_EQ(c, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
  /* The embedded DNS: 127.0.0.11 only (the servers are its upstreams),
   * ndots:0 unless the user set ndots. */
  cleanup_free char *d = exec_resolv_conf(host, ns, search, NULL, true);
  CHECK_STR_EQ(d, "nameserver 127.0.0.11\nsearch a.example b.example\n"
                  "options edns0\noptions ndots:0\n");
  const char *ndots[] = {"ndots:2", NULL};
  cleanup_free char *e = exec_resolv_conf("", NULL, NULL, ndots, true);
  CHECK_STR_EQ(e, "nameserver 127.0.0.11\noptions ndots:2\n");
}

TEST(exec_groups_resolved_in_rootfs) {
  char dir[] = "/tmp/shoal-grp-XXXXXX";
  CHECK(mkdtemp(dir));
  char p[128];
  snprintf(p, sizeof p, "%s/etc", dir);
  mkdir(p, 0755);
  snprintf(p, sizeof p, "%s/etc/group", dir);
  write_str(p, "root:x:0:\nvideo:x:44:\nstaff:x:50:\n");
  int fd = open(dir, O_PATH | O_DIRECTORY);
  struct exec_user u = {.n_groups = 1, .groups = {44}};
  sh_err err = {0};
  const char *g[] = {"video", "staff", "4242", NULL};
  int rc = exec_resolve_groups(fd, g, &u, &err);
  const char *bad[] = {"nosuch", NULL};
  int rc2 = exec_resolve_groups(fd, bad, &u, &err);
  close(fd);
  exec_rm_rf(dir, NULL);
  CHECK(rc == 0);
  /* video was there already: not twice. */
  CHECK_INT_EQ(u.n_groups, 3);
  CHECK(u.groups[0] == 44 && u.groups[1] == 50 && u.groups[2] == 4242);
  CHECK(rc2 < 0 && err.status == 400);
  CHECK_STR_EQ(err.msg,
               "unable to find group nosuch: no matching entries in group "
               "file");
}

TEST(exec_user_resolution_reads_rootfs) {
  char dir[] = "/tmp/shoal-user-XXXXXX";
  CHECK(mkdtemp(dir));
  char p[128];
  snprintf(p, sizeof p, "%s/etc", dir);
  mkdir(p, 0755);
  snprintf(p, sizeof p, "%s/etc/passwd", dir);
  write_str(p, "root:x:0:0:root:/root:/bin/sh\n"
               "app:x:1234:1235::/home/app:/bin/sh\n");
  snprintf(p, sizeof p, "%s/etc/group", dir);
  write_str(p, "root:x:0:\napp:x:1235:\nextra:x:2000:app,bob\nother:x:3000:\n");
  int fd = open(dir, O_PATH | O_DIRECTORY);
  struct exec_user u;
  sh_err err = {0};
  int ok = 1;
  if (exec_resolve_user(fd, "app", &u, &err) < 0 || u.uid != 1234 ||
      u.gid != 1235 || strcmp(u.home, "/home/app") || u.n_groups != 1 ||
      u.groups[0] != 2000)
    ok = 0;
  if (exec_resolve_user(fd, "1234:other", &u, &err) < 0 || u.uid != 1234 ||
      u.gid != 3000)
    ok = 0;
  if (exec_resolve_user(fd, "4242", &u, &err) < 0 || u.uid != 4242 ||
      u.gid != 0 || strcmp(u.home, "/"))
    ok = 0;
  if (exec_resolve_user(fd, "", &u, &err) < 0 || u.uid != 0 ||
      strcmp(u.home, "/root"))
    ok = 0;
  int missing = exec_resolve_user(fd, "nobody", &u, &err);
  int badgroup = exec_resolve_user(fd, "app:nogroup", &u, &err);
  close(fd);
  exec_rm_rf(dir, NULL);
  CHECK(ok);
  CHECK(missing < 0 && badgroup < 0);
  CHECK_STR_EQ(err.msg,
               "unable to find group nogroup: no matching entries in group "
               "file");
}

/* ---- pure: logs ---- */

TEST(exec_k8s_line_parse) {
  struct k8s_line l;
  const char *a = "2026-11-26T05:58:46.892421294+00:00 stdout F hello world";
  CHECK_INT_EQ(exec_k8s_parse_line(a, strlen(a), &l), 0);
  CHECK_INT_EQ(l.stream, 1);
  CHECK(!l.partial);
  CHECK_INT_EQ(l.len, 11);
  CHECK(memcmp(l.msg, "hello world", 11) == 0);
  int64_t want;
  clock_parse_rfc3339("2026-11-26T05:58:46.892421294Z", &want, NULL);
  CHECK_INT_EQ(l.ts, want);
  const char *b = "2026-11-26T07:58:46.5+02:00 stderr P ";
  CHECK_INT_EQ(exec_k8s_parse_line(b, strlen(b), &l), 0);
  CHECK(l.partial && l.stream == 2 && l.len == 0);
  clock_parse_rfc3339("2026-11-26T05:58:46.5Z", &want, NULL);
  CHECK_INT_EQ(l.ts, want);
  const char *c = "garbage stdout F x";
  CHECK(exec_k8s_parse_line(c, strlen(c), &l) < 0);
  const char *d = "2026-11-26T05:58:46Z stdin F x";
  CHECK(exec_k8s_parse_line(d, strlen(d), &l) < 0);
}

TEST(exec_logs_file_frames_partials_tail_since) {
  char path[] = "/tmp/shoal-log-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  const char *log = "2026-01-01T00:00:01.000000000+00:00 stdout F one\n"
                    "2026-01-01T00:00:02.000000000+00:00 stderr P par\n"
                    "2026-01-01T00:00:02.500000000+00:00 stdout F two\n"
                    "2026-01-01T00:00:03.000000000+00:00 stderr F tial\n"
                    "2026-01-01T00:00:04.000000000+00:00 stdout F \n"
                    "2026-01-01T00:00:05.000000000+00:00 stdout F three\n"
                    "2026-01-01T00:00:06.000000000+00:00 stdout P unterminated";
  CHECK(write(fd, log, strlen(log)) == (ssize_t)strlen(log));
  close(fd);

  struct frames f = {0};
  struct exec_logs_opts o = {.want_stdout = true,
                             .want_stderr = true,
                             .tail = -1,
                             .write = collect,
                             .arg = &f};
  sh_err err = {0};
  int rc = exec_logs_file(path, NULL, NULL, NULL, &o, &err);
  int nframes = f.nframes;
  bool bad = f.bad;
  char *out = xstrdup(str0(&f.out)), *errs = xstrdup(str0(&f.err));
  frames_free(&f);
  /* The last line has no newline: a writer is mid-line, it waits. */
  CHECK_INT_EQ(rc, 0);
  CHECK(!bad);
  CHECK_INT_EQ(nframes, 5);
  CHECK_STR_EQ(out, "one\ntwo\n\nthree\n");
  CHECK_STR_EQ(errs, "partial\n");
  free(out);
  free(errs);

  /* tail 2 (complete messages), stdout only, with timestamps. */
  struct frames g = {0};
  o = (struct exec_logs_opts){.want_stdout = true,
                              .tail = 2,
                              .timestamps = true,
                              .write = collect,
                              .arg = &g};
  rc = exec_logs_file(path, NULL, NULL, NULL, &o, &err);
  out = xstrdup(str0(&g.out));
  nframes = g.nframes;
  frames_free(&g);
  CHECK_INT_EQ(rc, 0);
  CHECK_INT_EQ(nframes, 2);
  CHECK_STR_EQ(out, "2026-01-01T00:00:04.000000000Z \n"
                    "2026-01-01T00:00:05.000000000Z three\n");
  free(out);

  /* since / until, by the first piece's time for joined partials. */
  struct frames h = {0};
  o = (struct exec_logs_opts){.want_stdout = true,
                              .want_stderr = true,
                              .tail = -1,
                              .write = collect,
                              .arg = &h};
  clock_parse_rfc3339("2026-01-01T00:00:02Z", &o.since_ns, NULL);
  clock_parse_rfc3339("2026-01-01T00:00:03.5Z", &o.until_ns, NULL);
  rc = exec_logs_file(path, NULL, NULL, NULL, &o, &err);
  out = xstrdup(str0(&h.out));
  errs = xstrdup(str0(&h.err));
  frames_free(&h);
  CHECK_STR_EQ(out, "two\n");
  CHECK_STR_EQ(errs, "partial\n");
  free(out);
  free(errs);

  /* Following ends when the exit file exists; the dangling partial line is
   * flushed then (tail 0 drops only complete messages). */
  char exitf[64];
  snprintf(exitf, sizeof exitf, "%s.exit", path);
  write_str(exitf, "0");
  struct frames k = {0};
  o = (struct exec_logs_opts){.want_stdout = true,
                              .tail = 0,
                              .follow = true,
                              .write = collect,
                              .arg = &k};
  fd = open(path, O_WRONLY | O_APPEND);
  CHECK(write(fd, "\n", 1) == 1);
  close(fd);
  rc = exec_logs_file(path, exitf, NULL, NULL, &o, &err);
  out = xstrdup(str0(&k.out));
  frames_free(&k);
  unlink(path);
  unlink(exitf);
  CHECK_INT_EQ(rc, 0);
  CHECK_STR_EQ(out, "unterminated");
  free(out);

  unsigned char hdr[8];
  exec_frame_header(hdr, 2, 0x01020304);
  CHECK(hdr[0] == 2 && hdr[1] == 0 && hdr[3] == 0 && hdr[4] == 1 &&
        hdr[7] == 4);
}

static int collect_raw(void *arg, const void *buf, size_t len) {
  buf_append(arg, buf, len);
  return 0;
}

/* A TTY's log (everything on stdout, prompts without a newline): raw
 * bytes, no frame headers, a partial line sent as it comes. */
TEST(exec_logs_file_raw_for_a_tty) {
  char path[] = "/tmp/shoal-log-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  const char *log = "2026-01-01T00:00:01.000000000+00:00 stdout P / # \n"
                    "2026-01-01T00:00:02.000000000+00:00 stdout F echo hi\r\n"
                    "2026-01-01T00:00:02.500000000+00:00 stdout F hi\r\n"
                    "2026-01-01T00:00:03.000000000+00:00 stdout P / # \n";
  CHECK(write(fd, log, strlen(log)) == (ssize_t)strlen(log));
  close(fd);
  cleanup_buf sh_buf b = {0};
  struct exec_logs_opts o = {.want_stdout = true,
                             .want_stderr = true,
                             .tail = -1,
                             .raw = true,
                             .write = collect_raw,
                             .arg = &b};
  sh_err err = {0};
  CHECK_INT_EQ(exec_logs_file(path, NULL, NULL, NULL, &o, &err), 0);
  CHECK_INT_EQ(b.len, strlen("/ # echo hi\r\nhi\r\n/ # "));
  CHECK(b.len && memcmp(b.data, "/ # echo hi\r\nhi\r\n/ # ", b.len) == 0);
  /* timestamps: each message has its own, as dockerd's */
  buf_reset(&b);
  o.timestamps = true;
  o.tail = 1;
  CHECK_INT_EQ(exec_logs_file(path, NULL, NULL, NULL, &o, &err), 0);
  CHECK_STR_EQ(b.data ? b.data : "", "2026-01-01T00:00:03.000000000Z / # ");
  unlink(path);
}

/* -t: crun makes the pty (process.terminal) at the CLI's size. */
TEST(exec_oci_config_terminal) {
  json_t *args = json_pack("[s]", "sh");
  json_t *env = json_array();
  struct exec_user root = {0};
  struct exec_oci_input in = {.rootfs = "/r",
                              .args = args,
                              .env = env,
                              .cwd = "/",
                              .user = &root,
                              .hostname = "h",
                              .cgroups_path = "/shoal/x",
                              .terminal = true,
                              .console_rows = 30,
                              .console_cols = 100};
  cleanup_json json_t *c = exec_oci_config(&in);
  CHECK(jx_bool(c, "process.terminal", false));
  CHECK_INT_EQ(jx_int(c, "process.consoleSize.height", 0), 30);
  CHECK_INT_EQ(jx_int(c, "process.consoleSize.width", 0), 100);
  in.terminal = false;
  cleanup_json json_t *c2 = exec_oci_config(&in);
  CHECK(!jx_bool(c2, "process.terminal", true));
  CHECK(!jx_get(c2, "process.consoleSize"));
  json_decref(args);
  json_decref(env);
}

/* ---- real containers ---- */

static const char *const applets[] = {
    "sh",    "sleep", "echo", "id",   "pwd",   "hostname", "cat",
    "touch", "ls",    "dd",   "true", "false", "test",     "mount",
    "grep",  "env",   "head", "ip",   "mkdir", "unshare",  NULL};

struct fx {
  char root[64];
  char data[96], run[96], layer[96], layer2[96];
  const char *layers[3];
  executor *ex;
};

static void fx_done(struct fx *f) {
  if (f->ex) {
    struct exec_entry *v = NULL;
    size_t n = 0;
    if (exec_list(f->ex, &v, &n, NULL) == 0) {
      for (size_t i = 0; i < n; i++)
        exec_remove(f->ex, v[i].id, true, NULL);
      exec_list_free(v, n);
    }
    exec_close(f->ex);
  }
  if (f->root[0])
    exec_rm_rf(f->root, NULL);
}
#define cleanup_fx __attribute__((cleanup(fx_done)))

static int copy_file(const char *from, const char *to, mode_t mode) {
  int in = open(from, O_RDONLY | O_CLOEXEC);
  int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  char buf[65536];
  ssize_t n;
  int rc = in >= 0 && out >= 0 ? 0 : -1;
  while (rc == 0 && (n = read(in, buf, sizeof buf)) > 0)
    if (write(out, buf, (size_t)n) != n)
      rc = -1;
  if (in >= 0)
    close(in);
  if (out >= 0)
    close(out);
  return rc;
}

/* Fills f: roots in a fresh temp dir, and a busybox layer (bin/busybox,
 * applet links, etc/passwd with an "app" user), plus a second layer that
 * shadows a file of the first. Returns a message on failure. */
static const char *fx_setup(struct fx *f) {
  memset(f, 0, sizeof *f);
  if (geteuid() != 0)
    return "container tests need root";
  sh_err err = {0};
  /* This test process is single-threaded: unshare works here. */
  if (exec_prepare_host_mounts(&err) < 0)
    return "exec_prepare_host_mounts failed";
  snprintf(f->root, sizeof f->root, "/tmp/shoal-exec-XXXXXX");
  if (!mkdtemp(f->root))
    return "mkdtemp";
  snprintf(f->data, sizeof f->data, "%s/data", f->root);
  snprintf(f->run, sizeof f->run, "%s/run", f->root);
  snprintf(f->layer, sizeof f->layer, "%s/layers/busybox", f->root);
  snprintf(f->layer2, sizeof f->layer2, "%s/layers/top", f->root);
  char p[256];
  snprintf(p, sizeof p, "%s/bin", f->layer);
  if (mkdir_p(p, 0755, NULL) < 0)
    return "mkdir layer";
  snprintf(p, sizeof p, "%s/bin/busybox", f->layer);
  if (copy_file("/bin/busybox", p, 0755) < 0)
    return "copy /bin/busybox (install busybox-static)";
  for (size_t i = 0; applets[i]; i++) {
    snprintf(p, sizeof p, "%s/bin/%s", f->layer, applets[i]);
    if (symlink("busybox", p) < 0)
      return "symlink";
  }
  snprintf(p, sizeof p, "%s/etc", f->layer);
  mkdir(p, 0755);
  snprintf(p, sizeof p, "%s/etc/passwd", f->layer);
  write_str(p, "root:x:0:0:root:/root:/bin/sh\n"
               "app:x:1234:1234::/home/app:/bin/sh\n");
  snprintf(p, sizeof p, "%s/etc/group", f->layer);
  write_str(p, "root:x:0:\napp:x:1234:\n");
  snprintf(p, sizeof p, "%s/etc/motd", f->layer);
  write_str(p, "lower\n");
  snprintf(p, sizeof p, "%s/etc", f->layer2);
  mkdir_p(p, 0755, NULL);
  snprintf(p, sizeof p, "%s/etc/motd", f->layer2);
  write_str(p, "upper\n");
  f->layers[0] = f->layer;
  f->layers[1] = f->layer2;
  if (exec_open(f->data, f->run, &f->ex, &err) < 0)
    return "exec_open failed";
  return NULL;
}

#define FX(f)                                                                  \
  cleanup_fx struct fx f;                                                      \
  do {                                                                         \
    const char *why_ = fx_setup(&f);                                           \
    if (why_)                                                                  \
      FAIL_("setup: %s", why_);                                                \
  } while (0)

static void spec_init(struct fx *f, struct exec_spec *s, char id[65],
                      const char *const *cmd) {
  id_new_hex(id);
  static __thread char name[64];
  snprintf(name, sizeof name, "web.1.%.25s", id);
  *s = (struct exec_spec){.id = id,
                          .name = name,
                          .image = "busybox:test",
                          .image_id = "sha256:0000",
                          .layers = f->layers,
                          .cmd = cmd};
}

static bool wait_status(executor *ex, const char *id, enum exec_status want,
                        struct exec_state *st, int64_t timeout_ns) {
  int64_t end = clock_mono_ns() + timeout_ns;
  do {
    if (exec_state(ex, id, st, NULL) == 0 && st->status == want)
      return true;
    usleep(20000);
  } while (clock_mono_ns() < end);
  return false;
}

/* Logs of a container that has exited, as text. */
static void logs_of(executor *ex, const char *id, char **out, char **errs) {
  struct frames f = {0};
  struct exec_logs_opts o = {.want_stdout = true,
                             .want_stderr = true,
                             .tail = -1,
                             .write = collect,
                             .arg = &f};
  exec_logs(ex, id, &o, NULL);
  *out = xstrdup(str0(&f.out));
  if (errs)
    *errs = xstrdup(str0(&f.err));
  frames_free(&f);
}

TEST(exec_run_logs_and_stop_with_grace) {
  FX(f);
  char id[65];
  struct exec_spec s;
  const char *cmd[] = {"sh", "-c", "echo hello; echo err >&2; sleep 30", NULL};
  spec_init(&f, &s, id, cmd);
  sh_err err = {0};
  if (exec_create(f.ex, &s, &err) < 0)
    FAIL_("create: %s", err.msg);
  struct exec_state st;
  CHECK_INT_EQ(exec_state(f.ex, id, &st, &err), 0);
  CHECK_INT_EQ(st.status, EXEC_STATUS_CREATED);
  pid_t pid = 0;
  if (exec_start(f.ex, id, &pid, &err) < 0)
    FAIL_("start: %s", err.msg);
  CHECK(pid > 0);
  CHECK_INT_EQ(exec_state(f.ex, id, &st, &err), 0);
  CHECK_INT_EQ(st.status, EXEC_STATUS_RUNNING);
  CHECK_INT_EQ(st.pid, pid);
  CHECK(st.started_ns > 0);
  char procp[64];
  snprintf(procp, sizeof procp, "/proc/%d", (int)pid);
  CHECK(access(procp, F_OK) == 0);
  pid_t again = 0;
  CHECK_INT_EQ(exec_start(f.ex, id, &again, &err), 1);
  CHECK_INT_EQ(again, pid);

  /* Both lines, as stdout and stderr frames. */
  struct frames fr = {0};
  for (int i = 0; i < 100; i++) {
    frames_free(&fr);
    memset(&fr, 0, sizeof fr);
    struct exec_logs_opts o = {.want_stdout = true,
                               .want_stderr = true,
                               .tail = -1,
                               .write = collect,
                               .arg = &fr};
    CHECK_INT_EQ(exec_logs(f.ex, id, &o, &err), 0);
    if (fr.nframes >= 2)
      break;
    usleep(20000);
  }
  char *out = xstrdup(str0(&fr.out)), *errs = xstrdup(str0(&fr.err));
  bool bad = fr.bad;
  frames_free(&fr);
  CHECK(!bad);
  CHECK_STR_EQ(out, "hello\n");
  CHECK_STR_EQ(errs, "err\n");
  free(out);
  free(errs);

  /* PID 1 (busybox sh) ignores SIGTERM: SIGKILL after the grace. */
  int64_t t0 = clock_mono_ns();
  CHECK_INT_EQ(exec_stop(f.ex, id, 0, NS_PER_SEC, &err), 0);
  int64_t took = clock_mono_ns() - t0;
  CHECK(took >= NS_PER_SEC && took < 5 * NS_PER_SEC);
  CHECK_INT_EQ(exec_state(f.ex, id, &st, &err), 0);
  CHECK_INT_EQ(st.status, EXEC_STATUS_EXITED);
  CHECK_INT_EQ(st.exit_code, 137);
  CHECK(!st.oom_killed);
  CHECK(st.finished_ns >= st.started_ns);
  CHECK_INT_EQ(exec_stop(f.ex, id, 0, NS_PER_SEC, &err), 1);
  CHECK(exec_kill(f.ex, id, SIGTERM, &err) < 0 && err.status == 409);
  CHECK(exec_start(f.ex, id, NULL, &err) < 0 && err.status == 409);

  cleanup_json json_t *j = NULL;
  CHECK_INT_EQ(exec_inspect_json(f.ex, id, &j, &err), 0);
  CHECK_STR_EQ(jx_str(j, "Id", ""), id);
  CHECK(str_has_prefix(jx_str(j, "Name", ""), "/web.1."));
  CHECK_STR_EQ(jx_str(j, "Path", ""), "sh");
  CHECK_INT_EQ(json_array_size(json_object_get(j, "Args")), 2);
  CHECK_STR_EQ(jx_str(j, "State.Status", ""), "exited");
  CHECK_INT_EQ(jx_int(j, "State.ExitCode", -1), 137);
  CHECK(!jx_bool(j, "State.Running", true));
  CHECK(str_has_suffix(jx_str(j, "State.FinishedAt", ""), "Z"));
  CHECK_STR_EQ(jx_str(j, "Config.Image", ""), "busybox:test");
  CHECK_STR_EQ(jx_str(j, "Image", ""), "sha256:0000");
  CHECK_STR_EQ(jx_str(j, "GraphDriver.Name", ""), "overlay2");
  CHECK(str_has_suffix(jx_str(j, "GraphDriver.Data.MergedDir", ""), "/rootfs"));
  CHECK(!jx_get(j, "Shoal"));
}

TEST(exec_exit_code_and_stop_signal_handled) {
  FX(f);
  char id[65];
  struct exec_spec s;
  const char *cmd[] = {"sh", "-c", "exit 3", NULL};
  spec_init(&f, &s, id, cmd);
  sh_err err = {0};
  if (exec_create(f.ex, &s, &err) < 0 || exec_start(f.ex, id, NULL, &err) < 0)
    FAIL_("%s", err.msg);
  struct exec_state st;
  CHECK(wait_status(f.ex, id, EXEC_STATUS_EXITED, &st, 5 * NS_PER_SEC));
  CHECK_INT_EQ(st.exit_code, 3);
  CHECK(st.finished_ns > 0);

  /* A process that handles the stop signal exits within the grace. */
  char id2[65];
  const char *cmd2[] = {"sh", "-c",
                        "trap 'echo bye; exit 0' USR1; echo ready; "
                        "while true; do sleep 0.1; done",
                        NULL};
  spec_init(&f, &s, id2, cmd2);
  s.stop_signal = "SIGUSR1";
  if (exec_create(f.ex, &s, &err) < 0 || exec_start(f.ex, id2, NULL, &err) < 0)
    FAIL_("%s", err.msg);
  char *out = NULL;
  for (int i = 0; i < 100; i++) {
    free(out);
    logs_of(f.ex, id2, &out, NULL);
    if (strstr(out, "ready"))
      break;
    usleep(20000);
  }
  free(out);
  int64_t t0 = clock_mono_ns();
  CHECK_INT_EQ(exec_stop(f.ex, id2, 0, 5 * NS_PER_SEC, &err), 0);
  CHECK(clock_mono_ns() - t0 < 3 * NS_PER_SEC);
  CHECK_INT_EQ(exec_state(f.ex, id2, &st, &err), 0);
  CHECK_INT_EQ(st.exit_code, 0);
  logs_of(f.ex, id2, &out, NULL);
  CHECK_STR_EQ(out, "ready\nbye\n");
  free(out);
}

/* Runs cmd with the profile (NULL: none); exit code, stdout+stderr. */
static int run_seccomp(struct fx *f, const seccomp_profile *prof,
                       const char *script, char **out) {
  char id[65];
  struct exec_spec s;
  const char *cmd[] = {"sh", "-c", script, NULL};
  spec_init(f, &s, id, cmd);
  s.seccomp = prof;
  sh_err err = {0};
  struct exec_state st;
  if (exec_create(f->ex, &s, &err) < 0 ||
      exec_start(f->ex, id, NULL, &err) < 0 ||
      !wait_status(f->ex, id, EXEC_STATUS_EXITED, &st, 5 * NS_PER_SEC)) {
    *out = xstrdup(err.msg);
    return -1;
  }
  char *o, *e;
  logs_of(f->ex, id, &o, &e);
  *out = xasprintf("%s%s", o, e);
  free(o);
  free(e);
  return st.exit_code;
}

/* crun takes the converted profile: the filter is on (Seccomp: 2), a
 * rule excluded by a capability the container lacks denies with EPERM,
 * and without a profile the same call works. */
TEST(exec_seccomp_profile_applied_by_crun) {
  FX(f);
  static const char custom[] =
      "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": ["
      " {\"names\": [\"unshare\"], \"action\": \"SCMP_ACT_ALLOW\","
      "  \"includes\": {\"caps\": [\"CAP_SYS_ADMIN\"]}},"
      " {\"names\": [\"unshare\"], \"action\": \"SCMP_ACT_ERRNO\","
      "  \"errnoRet\": 1, \"excludes\": {\"caps\": [\"CAP_SYS_ADMIN\"]}}]}";
  sh_err err = {0};
  cleanup_seccomp seccomp_profile *prof = NULL;
  CHECK(seccomp_profile_parse(custom, strlen(custom), &prof, &err) == 0);
  const char *script = "grep Seccomp: /proc/self/status; unshare -U true";
  cleanup_free char *out = NULL;
  int rc = run_seccomp(&f, prof, script, &out);
  if (rc != 1 || !strstr(out, "Seccomp:\t2") ||
      !strstr(out, "Operation not permitted"))
    FAIL_("with the profile: exit %d, \"%s\"", rc, out);
  free(out);
  out = NULL;
  rc = run_seccomp(&f, NULL, script, &out);
  if (rc != 0 || !strstr(out, "Seccomp:\t0"))
    FAIL_("unconfined: exit %d, \"%s\"", rc, out);

  /* The daemon's default profile, where the host has it. */
  cleanup_seccomp seccomp_profile *host = NULL;
  if (seccomp_profile_load(SECCOMP_DEFAULT_PROFILE, &host, &err) == 0) {
    free(out);
    out = NULL;
    rc = run_seccomp(&f, host, "grep Seccomp: /proc/self/status", &out);
    if (rc != 0 || !strstr(out, "Seccomp:\t2"))
      FAIL_("default profile: exit %d, \"%s\"", rc, out);
  }
}

/* Runs argv (PATH lookup) with stdio on /dev/null and log; its exit code,
 * -1 if it could not run. */
static int run_argv(const char *const *argv, const char *log) {
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    int in = open("/dev/null", O_RDONLY);
    int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 ||
        dup2(out, 2) < 0)
      _exit(126);
    execvp(argv[0], (char *const *)argv);
    _exit(127);
  }
  int st;
  if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st))
    return -1;
  return WEXITSTATUS(st);
}

/* `crun create` of /bin/true on the fixture's layer with linux.seccomp
 * `sc` (and the annotation `b64` if given): the program crun wrote to its
 * state directory (seccomp.bpf), NULL if it failed. */
static unsigned char *crun_program(struct fx *f, const json_t *sc,
                                   const char *b64, size_t *len) {
  static int seq;
  char bundle[160], state[160], cfg[200], log[200], id[32], bpf[240];
  snprintf(bundle, sizeof bundle, "%s/bpfref%d", f->root, seq);
  snprintf(state, sizeof state, "%s/crunref", f->root);
  snprintf(id, sizeof id, "shoal-bpfref-%d", seq++);
  snprintf(cfg, sizeof cfg, "%s/config.json", bundle);
  snprintf(log, sizeof log, "%s/crun.log", bundle);
  snprintf(bpf, sizeof bpf, "%s/%s/seccomp.bpf", state, id);
  char dev[160];
  snprintf(dev, sizeof dev, "%s/dev", f->layer); /* crun opens it */
  if (mkdir_p(bundle, 0700, NULL) < 0 || mkdir_p(state, 0700, NULL) < 0 ||
      mkdir_p(dev, 0755, NULL) < 0)
    return NULL;
  /* noNewPrivileges: crun installs the filter only at start, which never
   * comes; create alone writes the program. */
  cleanup_json json_t *c = json_pack(
      "{s:s,s:[],s:{s:b,s:b,s:{s:i,s:i},s:[s],s:s,s:[s]},s:{s:s,s:b},s:{s:[{"
      "s:s},{s:s}],s:O}}",
      "ociVersion", "1.0.0", "mounts", "process", "terminal", 0,
      "noNewPrivileges", 1, "user", "uid", 0, "gid", 0, "args", "/bin/true",
      "cwd", "/", "env", "PATH=/bin", "root", "path", f->layer, "readonly", 1,
      "linux", "namespaces", "type", "mount", "type", "pid", "seccomp", sc);
  if (b64)
    json_object_set_new(c, "annotations",
                        json_pack("{s:s}", SECCOMP_BPF_ANNOTATION, b64));
  if (exec_write_json(cfg, c, NULL) < 0)
    return NULL;
  const char *create[] = {"crun",     "--root", state, "create",
                          "--bundle", bundle,   id,    NULL};
  const char *del[] = {"crun", "--root", state, "delete", "--force", id, NULL};
  unsigned char *out = NULL;
  if (run_argv(create, log) == 0) {
    char *data = NULL;
    if (read_file(bpf, &data, len, NULL) == 0)
      out = (unsigned char *)data;
  } else {
    cleanup_free char *why = slurp(log);
    fprintf(stderr, "    crun create: %s\n", why ? why : "?");
  }
  run_argv(del, log);
  return out;
}

/* shoald's program is crun's own, byte for byte, for the host's default
 * profile (with and without CAP_SYS_ADMIN) and for a section that uses
 * every kind of rule crun takes; crun takes the annotation's program over
 * the section's; and a container gets both, its filter working. */
TEST(exec_seccomp_bpf_same_as_crun) {
  FX(f);
  sh_err err = {0};
  json_t *sections[4] = {0};
  size_t n = 0;
  sections[n++] = json_loads(
      "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": 38,"
      " \"architectures\": [\"SCMP_ARCH_X86_64\", \"SCMP_ARCH_X86\","
      "  \"SCMP_ARCH_X32\"],"
      " \"flags\": [\"SECCOMP_FILTER_FLAG_LOG\"],"
      " \"syscalls\": ["
      "  {\"names\": [\"read\", \"write\", \"no_such_call\", \"exit\"],"
      "   \"action\": \"SCMP_ACT_ALLOW\"},"
      "  {\"names\": [\"personality\"], \"action\": \"SCMP_ACT_ALLOW\","
      "   \"args\": [{\"index\": 0, \"value\": 8, \"op\": \"SCMP_CMP_EQ\"},"
      "    {\"index\": 0, \"value\": 131072, \"op\": \"SCMP_CMP_EQ\"}]},"
      "  {\"names\": [\"clone\"], \"action\": \"SCMP_ACT_ALLOW\","
      "   \"args\": [{\"index\": 0, \"value\": 2114060288, \"valueTwo\": 0,"
      "    \"op\": \"SCMP_CMP_MASKED_EQ\"},"
      "    {\"index\": 1, \"value\": 5, \"op\": \"SCMP_CMP_GE\"}]},"
      "  {\"names\": [\"mkdir\"], \"action\": \"SCMP_ACT_ERRNO\","
      "   \"errnoRet\": 13},"
      "  {\"names\": [\"rmdir\"], \"action\": \"SCMP_ACT_ERRNO\","
      "   \"errnoRet\": 38},"
      "  {\"names\": [\"kill\"], \"action\": \"SCMP_ACT_TRAP\"},"
      "  {\"names\": [\"tkill\"], \"action\": \"SCMP_ACT_KILL_PROCESS\"},"
      "  {\"names\": [\"getpid\"], \"action\": \"SCMP_ACT_LOG\"},"
      "  {\"names\": [\"ptrace\"], \"action\": \"SCMP_ACT_TRACE\"}]}",
      0, NULL);
  CHECK(sections[0]);
  cleanup_seccomp seccomp_profile *host = NULL;
  if (seccomp_profile_load(SECCOMP_DEFAULT_PROFILE, &host, &err) == 0) {
    static const char *const admin[] = {"CAP_CHOWN", "CAP_SYS_ADMIN",
                                        "CAP_SYS_PTRACE", NULL};
    struct seccomp_target t;
    seccomp_target_host(&t, exec_default_caps);
    sections[n++] = seccomp_oci(host, &t);
    seccomp_target_host(&t, admin);
    sections[n++] = seccomp_oci(host, &t);
  } else {
    fprintf(stderr, "    (no %s: the custom section only)\n",
            SECCOMP_DEFAULT_PROFILE);
  }
  int failed = 0;
  for (size_t i = 0; i < n && !failed; i++) {
    unsigned char *ours = NULL;
    size_t olen = 0, clen = 0;
    if (!sections[i] ||
        seccomp_bpf_compile(sections[i], &ours, &olen, &err) < 0) {
      fprintf(stderr, "    section %zu: %s\n", i, err.msg);
      failed = 1;
      break;
    }
    unsigned char *crun = crun_program(&f, sections[i], NULL, &clen);
    if (!crun || clen != olen || memcmp(crun, ours, olen) != 0) {
      fprintf(stderr, "    section %zu: crun's %zu bytes, ours %zu\n", i,
              crun ? clen : 0, olen);
      failed = 1;
    }
    /* The annotation wins over the section: crun copies, compiles nothing
     * (an allow-all section, the first section's program). */
    if (!failed && i == 0) {
      cleanup_free char *b64 = b64_encode(ours, olen);
      cleanup_json json_t *allow =
          json_pack("{s:s}", "defaultAction", "SCMP_ACT_ALLOW");
      size_t alen = 0;
      cleanup_free unsigned char *got = crun_program(&f, allow, b64, &alen);
      if (!got || alen != olen || memcmp(got, ours, olen) != 0) {
        fprintf(stderr, "    crun did not take the annotation's program\n");
        failed = 1;
      }
    }
    free(ours);
    free(crun);
  }
  for (size_t i = 0; i < n; i++)
    json_decref(sections[i]);
  CHECK(!failed);

  /* A container: config.json has the section (crun installs the filter with
   * its flags) and the annotation; crun's state has that program, and the
   * rule holds. */
  static const char custom[] =
      "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": ["
      " {\"names\": [\"unshare\"], \"action\": \"SCMP_ACT_ERRNO\","
      "  \"errnoRet\": 1}]}";
  cleanup_seccomp seccomp_profile *prof = NULL;
  CHECK(seccomp_profile_parse(custom, strlen(custom), &prof, &err) == 0);
  char id[65];
  struct exec_spec s;
  const char *cmd[] = {"sh", "-c", "unshare -U true", NULL};
  spec_init(&f, &s, id, cmd);
  s.seccomp = prof;
  struct exec_state st;
  if (exec_create(f.ex, &s, &err) < 0 || exec_start(f.ex, id, NULL, &err) < 0)
    FAIL_("%s", err.msg);
  CHECK(wait_status(f.ex, id, EXEC_STATUS_EXITED, &st, 5 * NS_PER_SEC));
  CHECK_INT_EQ(st.exit_code, 1);
  char p[300];
  snprintf(p, sizeof p, "%s/containers/%s/config.json", f.data, id);
  cleanup_json json_t *cfg = exec_read_json(p);
  CHECK(jx_get(cfg, "linux.seccomp"));
  const char *b64 = json_string_value(json_object_get(
      json_object_get(cfg, "annotations"), SECCOMP_BPF_ANNOTATION));
  CHECK(b64 && *b64);
  snprintf(p, sizeof p, "%s/crun/%s/seccomp.bpf", f.run, id);
  cleanup_free char *state = NULL;
  size_t slen = 0;
  CHECK(read_file(p, &state, &slen, NULL) == 0);
  cleanup_free char *enc = b64_encode(state, slen);
  CHECK_STR_EQ(enc, b64);
}

TEST(exec_env_workdir_user_hostname) {
  FX(f);
  char id[65];
  struct exec_spec s;
  const char *cmd[] = {"sh", "-c",
                       "id -u; id -g; pwd; hostname; echo $FOO; echo $HOME; "
                       "cat /etc/hostname; cat /etc/motd; grep -c localhost "
                       "/etc/hosts; ip -o link show lo | grep -c UP",
                       NULL};
  spec_init(&f, &s, id, cmd);
  const char *env[] = {"FOO=bar", NULL};
  s.env = env;
  s.user = "app";
  s.workdir = "/work/dir";
  s.hostname = "myhost";
  cleanup_json json_t *ic =
      json_pack("{s:{s:[s]}}", "config", "Env", "FOO=image");
  s.image_config = ic;
  sh_err err = {0};
  if (exec_create(f.ex, &s, &err) < 0 || exec_start(f.ex, id, NULL, &err) < 0)
    FAIL_("%s", err.msg);
  struct exec_state st;
  CHECK(wait_status(f.ex, id, EXEC_STATUS_EXITED, &st, 5 * NS_PER_SEC));
  char *out, *errs;
  logs_of(f.ex, id, &out, &errs);
  CHECK_STR_EQ(errs, "");
  CHECK_STR_EQ(out, "1234\n1234\n/work/dir\nmyhost\nbar\n/home/app\nmyhost\n"
                    "upper\n2\n1\n");
  free(out);
  free(errs);
  CHECK_INT_EQ(st.exit_code, 0);

  /* Numeric uid:gid, and an unknown user name is refused at create. */
  char id2[65];
  const char *cmd2[] = {"sh", "-c", "id -u; id -g", NULL};
  spec_init(&f, &s, id2, cmd2);
  s.user = "4321:99";
  if (exec_create(f.ex, &s, &err) < 0 || exec_start(f.ex, id2, NULL, &err) < 0)
    FAIL_("%s", err.msg);
  CHECK(wait_status(f.ex, id2, EXEC_STATUS_EXITED, &st, 5 * NS_PER_SEC));
  logs_of(f.ex, id2, &out, NULL);
  CHECK_STR_EQ(out, "4321\n99\n");
  free(out);
  char id3[65];
  spec_init(&f, &s, id3, cmd2);
  s.user = "nosuchuser";
  CHECK(exec_create(f.ex, &s, &err) < 0);
  CHECK_INT_EQ(err.status, 400);
  char d3[256];
  snprintf(d3, sizeof d3, "%s/containers/%s", f.data, id3);
  CHECK(access(d3, F_OK) < 0);
}

/* --init, --sysctl, --ulimit, --group, --dns as the process sees them, and
 * a probe through exec_probe_argv (what the health monitor spawns). */
TEST(exec_spec_fields_applied_and_probe_runs) {
  FX(f);
  if (access("/usr/bin/tini-static", X_OK) < 0 &&
      access("/usr/bin/tini", X_OK) < 0)
    SKIP("tini is not installed (scripts/deps.sh)");
  char id[65];
  struct exec_spec s;
  const char *cmd[] = {"sh", "-c",
                       "cat /proc/1/cmdline | head -c 17; echo; "
                       "cat /proc/sys/kernel/shmmni; "
                       "grep 'open files' /proc/self/limits; id -G; "
                       "cat /etc/resolv.conf; sleep 30",
                       NULL};
  spec_init(&f, &s, id, cmd);
  s.init = true;
  cleanup_json json_t *sysctls = json_pack("{s:s}", "kernel.shmmni", "1234");
  cleanup_json json_t *ul = json_pack("[{s:s,s:i,s:i}]", "Name", "nofile",
                                      "Soft", 1000, "Hard", 2000);
  const char *groups[] = {"app", "77", NULL};
  const char *ns[] = {"192.0.2.53", NULL};
  const char *search[] = {"svc.example", NULL};
  const char *opts[] = {"timeout:3", NULL};
  s.sysctls = sysctls;
  s.ulimits = ul;
  s.groups = groups;
  s.dns_servers = ns;
  s.dns_search = search;
  s.dns_options = opts;
  cleanup_json json_t *hc =
      json_pack("{s:[s,s]}", "Test", "CMD-SHELL", "exit 0");
  s.healthcheck = hc;
  sh_err err = {0};
  if (exec_create(f.ex, &s, &err) < 0 || exec_start(f.ex, id, NULL, &err) < 0)
    FAIL_("%s", err.msg);
  /* Until the script printed everything (it then sleeps). */
  for (int i = 0; i < 250; i++) {
    cleanup_free char *log = NULL;
    size_t len = 0;
    char lp[256];
    snprintf(lp, sizeof lp, "%s/containers/%s/container.log", f.data, id);
    if (read_file(lp, &log, &len, NULL) == 0 && strstr(log, "timeout:3"))
      break;
    usleep(20000);
  }
  /* A probe: crun exec in the running container, its exit code kept. */
  cleanup_json json_t *probe = json_pack("[s,s,s]", "sh", "-c", "exit 3");
  char **argv = NULL;
  cleanup_free char *pidfile = NULL;
  if (exec_probe_argv(f.ex, id, probe, &argv, &pidfile, &err) < 0)
    FAIL_("%s", err.msg);
  cleanup_free char *pout = NULL;
  int prc = exec_proc_run((const char *const *)argv, &pout, &err);
  exec_argv_free(argv);
  CHECK_INT_EQ(prc, 3);
  /* State.Health shows once stored, with Config.Healthcheck. */
  cleanup_json json_t *h = json_pack("{s:s,s:i,s:[]}", "Status", "healthy",
                                     "FailingStreak", 0, "Log");
  CHECK(exec_set_health(f.ex, id, h, &err) == 0);
  cleanup_json json_t *info = NULL;
  CHECK(exec_inspect_json(f.ex, id, &info, &err) == 0);
  CHECK_STR_EQ(jx_str(info, "State.Health.Status", ""), "healthy");
  CHECK_STR_EQ(
      jx_str(json_array_get(jx_get(info, "Config.Healthcheck.Test"), 0), "",
             ""),
      "CMD-SHELL");
  CHECK(jx_bool(info, "HostConfig.Init", false));
  exec_stop(f.ex, id, SIGKILL, 0, NULL);
  struct exec_state st;
  CHECK(wait_status(f.ex, id, EXEC_STATUS_EXITED, &st, 5 * NS_PER_SEC));
  char *out;
  logs_of(f.ex, id, &out, NULL);
  CHECK(strstr(out, "/sbin/docker-init") == out);
  CHECK(strstr(out, "\n1234\n"));
  CHECK(strstr(out, "Max open files            1000                 2000"));
  CHECK(strstr(out, "0 1234 77\n") || strstr(out, "0 77 1234\n"));
  CHECK(strstr(out, "nameserver 192.0.2.53\nsearch svc.example\n"
                    "options timeout:3\n"));
  free(out);

  /* A sysctl outside the container's namespaces is refused at create. */
  char id2[65];
  spec_init(&f, &s, id2, cmd);
  cleanup_json json_t *badsys = json_pack("{s:s}", "vm.swappiness", "1");
  s.sysctls = badsys;
  CHECK(exec_create(f.ex, &s, &err) < 0);
  CHECK_STR_EQ(err.msg, "sysctl 'vm.swappiness' is not allowed");
}

TEST(exec_readonly_rootfs_tmpfs_and_volumes) {
  FX(f);
  char id[65];
  struct exec_spec s;
  const char *cmd[] = {"sh", "-c",
                       "touch /x 2>/dev/null && echo wrote || echo refused; "
                       "echo hi > /scratch/f && cat /scratch/f; "
                       "echo kept > /vol/f; cat /bind/in; "
                       "touch /bind/x 2>/dev/null || echo bind-ro",
                       NULL};
  spec_init(&f, &s, id, cmd);
  char bind[128];
  snprintf(bind, sizeof bind, "%s/bindsrc", f.root);
  mkdir(bind, 0755);
  char in[160];
  snprintf(in, sizeof in, "%s/in", bind);
  write_str(in, "from-host\n");
  struct exec_mount m[] = {
      {.type = EXEC_MOUNT_TMPFS, .target = "/scratch", .tmpfs_size = 1 << 20},
      {.type = EXEC_MOUNT_VOLUME, .source = "vol1", .target = "/vol"},
      {.type = EXEC_MOUNT_BIND,
       .source = bind,
       .target = "/bind",
       .read_only = true},
  };
  s.mounts = m;
  s.n_mounts = 3;
  s.read_only = true;
  sh_err err = {0};
  if (exec_create(f.ex, &s, &err) < 0 || exec_start(f.ex, id, NULL, &err) < 0)
    FAIL_("%s", err.msg);
  struct exec_state st;
  CHECK(wait_status(f.ex, id, EXEC_STATUS_EXITED, &st, 5 * NS_PER_SEC));
  char *out, *errs;
  logs_of(f.ex, id, &out, &errs);
  CHECK_STR_EQ(out, "refused\nhi\nfrom-host\nbind-ro\n");
  CHECK_STR_EQ(errs, "");
  free(out);
  free(errs);
  char vf[256];
  snprintf(vf, sizeof vf, "%s/volumes/vol1/_data/f", f.data);
  char *kept = slurp(vf);
  CHECK(kept && strcmp(kept, "kept\n") == 0);
  free(kept);

  cleanup_json json_t *j = NULL;
  CHECK_INT_EQ(exec_inspect_json(f.ex, id, &j, &err), 0);
  json_t *mounts = json_object_get(j, "Mounts");
  CHECK_INT_EQ(json_array_size(mounts), 3);
  CHECK_STR_EQ(jx_str(json_array_get(mounts, 1), "Name", ""), "vol1");
  CHECK(!jx_bool(json_array_get(mounts, 2), "RW", true));
  CHECK(jx_bool(j, "HostConfig.ReadonlyRootfs", false));

  /* Docker's refusals. */
  char id2[65];
  spec_init(&f, &s, id2, cmd);
  struct exec_mount bad[] = {
      {.type = EXEC_MOUNT_BIND, .source = "/no/such/dir", .target = "/b"}};
  s.mounts = bad;
  s.n_mounts = 1;
  CHECK(exec_create(f.ex, &s, &err) < 0 && err.status == 400);
  CHECK(strstr(err.msg, "bind source path does not exist"));
}

static long long read_ll(const char *path) {
  char *s = slurp(path);
  long long v = s ? atoll(s) : -1;
  free(s);
  return v;
}

TEST(exec_resource_limits_land_in_cgroup) {
  FX(f);
  char id[65];
  struct exec_spec s;
  const char *cmd[] = {"sleep", "30", NULL};
  spec_init(&f, &s, id, cmd);
  s.res = (struct exec_resources){
      .nano_cpus = 500000000, .memory_bytes = 64 << 20, .pids_limit = 50};
  sh_err err = {0};
  if (exec_create(f.ex, &s, &err) < 0 || exec_start(f.ex, id, NULL, &err) < 0)
    FAIL_("%s", err.msg);
  struct exec_cgroup_file files[8];
  char cg[128];
  snprintf(cg, sizeof cg, "/shoal/%s", id);
  size_t n = exec_cgroup_files(exec_cgroup_mode(f.ex), cg, &s.res,
                               f.ex->swap_limit, files, 8);
  CHECK(n >= 4);
  for (size_t i = 0; i < n; i++) {
    char path[300];
    snprintf(path, sizeof path, "/sys/fs/cgroup/%s", files[i].path);
    char *v = slurp(path);
    if (!v)
      FAIL_("missing %s", path);
    v[strcspn(v, "\n")] = '\0';
    bool same = strcmp(v, files[i].value) == 0;
    if (!same)
      fprintf(stderr, "    %s: %s, want %s\n", path, v, files[i].value);
    free(v);
    CHECK(same);
  }
  if (exec_cgroup_mode(f.ex) == EXEC_CGROUP_V1) {
    char p[256];
    snprintf(p, sizeof p,
             "/sys/fs/cgroup/memory/shoal/%s/memory.limit_in_bytes", id);
    CHECK_INT_EQ(read_ll(p), 64 << 20);
  }
  CHECK_INT_EQ(exec_stop(f.ex, id, SIGKILL, 0, &err), 0);
}

TEST(exec_oom_killed_is_reported) {
  FX(f);
  char id[65];
  struct exec_spec s;
  /* dd's block buffer is one allocation larger than the limit. */
  const char *cmd[] = {"dd",     "if=/dev/zero", "of=/dev/null",
                       "bs=64M", "count=1",      NULL};
  spec_init(&f, &s, id, cmd);
  s.res.memory_bytes = 16 << 20;
  sh_err err = {0};
  if (exec_create(f.ex, &s, &err) < 0 || exec_start(f.ex, id, NULL, &err) < 0)
    FAIL_("%s", err.msg);
  struct exec_state st;
  CHECK(wait_status(f.ex, id, EXEC_STATUS_EXITED, &st, 10 * NS_PER_SEC));
  CHECK_INT_EQ(st.exit_code, 137);
  CHECK(st.oom_killed);
}

TEST(exec_start_errors_are_docker_like) {
  FX(f);
  char id[65];
  struct exec_spec s;
  const char *cmd[] = {"/no/such/binary", NULL};
  spec_init(&f, &s, id, cmd);
  sh_err err = {0};
  CHECK_INT_EQ(exec_create(f.ex, &s, &err), 0);
  CHECK(exec_start(f.ex, id, NULL, &err) < 0);
  CHECK_INT_EQ(err.status, 400);
  CHECK(strstr(err.msg, "OCI runtime create failed"));
  CHECK(strstr(err.msg, "/no/such/binary"));
  struct exec_state st;
  CHECK_INT_EQ(exec_state(f.ex, id, &st, &err), 0);
  CHECK_INT_EQ(st.status, EXEC_STATUS_CREATED);
  CHECK_INT_EQ(exec_remove(f.ex, id, false, &err), 0);
  CHECK(exec_state(f.ex, id, &st, &err) < 0 && err.status == 404);
  char want[128];
  snprintf(want, sizeof want, "No such container: %s", id);
  CHECK_STR_EQ(err.msg, want);
}

static bool mounted_anywhere(const char *path) {
  char *mi = slurp("/proc/self/mountinfo");
  bool yes = mi && strstr(mi, path);
  free(mi);
  return yes;
}

TEST(exec_remove_cleans_everything) {
  FX(f);
  char id[65];
  struct exec_spec s;
  const char *cmd[] = {"sleep", "30", NULL};
  spec_init(&f, &s, id, cmd);
  s.res.memory_bytes = 32 << 20;
  sh_err err = {0};
  if (exec_create(f.ex, &s, &err) < 0 || exec_start(f.ex, id, NULL, &err) < 0)
    FAIL_("%s", err.msg);
  char dir[256], run[256], crun[256], cg[256], rootfs[300];
  snprintf(dir, sizeof dir, "%s/containers/%s", f.data, id);
  snprintf(run, sizeof run, "%s/containers/%s", f.run, id);
  snprintf(crun, sizeof crun, "%s/crun/%s", f.run, id);
  snprintf(cg, sizeof cg, "/sys/fs/cgroup/%s/shoal/%s",
           exec_cgroup_mode(f.ex) == EXEC_CGROUP_V2 ? "" : "memory", id);
  snprintf(rootfs, sizeof rootfs, "%s/rootfs", dir);
  CHECK(mounted_anywhere(rootfs));
  CHECK(access(crun, F_OK) == 0 && access(cg, F_OK) == 0);
  CHECK(exec_remove(f.ex, id, false, &err) < 0 && err.status == 409);
  CHECK_INT_EQ(exec_remove(f.ex, id, true, &err), 0);
  CHECK(!mounted_anywhere(rootfs));
  CHECK(access(dir, F_OK) < 0 && access(run, F_OK) < 0);
  CHECK(access(crun, F_OK) < 0);
  CHECK(access(cg, F_OK) < 0);
  struct exec_entry *v;
  size_t n;
  CHECK_INT_EQ(exec_list(f.ex, &v, &n, &err), 0);
  exec_list_free(v, n);
  CHECK_INT_EQ(n, 0);
  /* Its files went to the trash in a rename; the purge deletes them. */
  CHECK(exec_purge_wait(f.ex, 10 * NS_PER_SEC));
  char trash[256];
  snprintf(trash, sizeof trash, "%s/trash", f.data);
  CHECK(util_dir_empty(trash));
  snprintf(trash, sizeof trash, "%s/trash", f.run);
  CHECK(util_dir_empty(trash));
}

/* A previous daemon's trash is purged by the next executor. */
TEST(exec_open_purges_a_previous_trash) {
  FX(f);
  char p[256];
  snprintf(p, sizeof p, "%s/trash/leftover.1/upper/d", f.data);
  CHECK_INT_EQ(mkdir_p(p, 0700, NULL), 0);
  snprintf(p, sizeof p, "%s/trash/leftover.1/upper/d/file", f.data);
  CHECK_INT_EQ(write_str(p, "x"), 0);
  executor *ex2 = NULL;
  sh_err err = {0};
  if (exec_open(f.data, f.run, &ex2, &err) < 0)
    FAIL_("%s", err.msg);
  CHECK(exec_purge_wait(ex2, 10 * NS_PER_SEC));
  snprintf(p, sizeof p, "%s/trash", f.data);
  CHECK(util_dir_empty(p));
  exec_close(ex2);
}

/* conmon killed (or the exec-root lost in a reboot): the exit code is
 * unknown, said so at once, and the container can still be removed. */
TEST(exec_lost_conmon_reports_unknown_exit) {
  FX(f);
  char id[65];
  struct exec_spec s;
  const char *cmd[] = {"sleep", "30", NULL};
  spec_init(&f, &s, id, cmd);
  sh_err err = {0};
  if (exec_create(f.ex, &s, &err) < 0 || exec_start(f.ex, id, NULL, &err) < 0)
    FAIL_("%s", err.msg);
  char p[256];
  snprintf(p, sizeof p, "%s/containers/%s/conmon.pid", f.run, id);
  char *cp = slurp(p);
  CHECK(cp && atoi(cp) > 1);
  pid_t conmon = (pid_t)atoi(cp);
  free(cp);
  CHECK_INT_EQ(kill(conmon, SIGKILL), 0);
  for (int i = 0; i < 100 && exec_proc_starttime(conmon); i++)
    usleep(10000);
  CHECK_INT_EQ(exec_kill(f.ex, id, SIGKILL, &err), 0);
  struct exec_state st;
  CHECK(wait_status(f.ex, id, EXEC_STATUS_EXITED, &st, 5 * NS_PER_SEC));
  int64_t t0 = clock_mono_ns();
  CHECK_INT_EQ(exec_state(f.ex, id, &st, &err), 0);
  CHECK(clock_mono_ns() - t0 < 500 * NS_PER_MS);
  CHECK_INT_EQ(st.exit_code, 255);
  CHECK(st.error[0]);
  CHECK_INT_EQ(exec_remove(f.ex, id, false, &err), 0);
}

/* A restarted daemon: a fresh executor in a NEW mount namespace where the
 * old overlay mount is not visible finds, inspects, stops and removes the
 * running container from what is on disk. */
/* docker exec with a record: sh waits for crun exec and writes its
 * status down, so a later shoald can tell it; one whose shell is killed
 * is gone without a status. A TTY main process gets a pty. */
TEST(exec_cmd_records_outlive_their_parent) {
  FX(f);
  char id[65];
  struct exec_spec s;
  const char *cmd[] = {"sh", "-c",
                       "test -t 0 && test -t 1 && echo tty; "
                       "sleep 30",
                       NULL};
  spec_init(&f, &s, id, cmd);
  s.tty = true;
  sh_err err = {0};
  if (exec_create(f.ex, &s, &err) < 0 || exec_start(f.ex, id, NULL, &err) < 0)
    FAIL_("%s", err.msg);
  CHECK(exec_tty(f.ex, id));
  char rec[65], rec2[65];
  id_new_hex(rec);
  id_new_hex(rec2);
  cleanup_json json_t *c1 = json_pack("[s,s,s]", "sh", "-c", "exit 7");
  struct exec_cmd_opts o = {.cmd = c1, .discard_output = true, .record = rec};
  struct exec_cmd c;
  if (exec_cmd_start(f.ex, id, &o, &c, &err) < 0)
    FAIL_("%s", err.msg);
  cleanup_json json_t *info =
      json_pack("{s:{s:s}}", "ProcessConfig", "entrypoint", "sh");
  CHECK_INT_EQ(exec_cmd_record(f.ex, id, rec, info, &c, &err), 0);
  CHECK_INT_EQ(exec_cmd_exit_code(spawn_wait(c.pid)), 7);
  exec_cmd_release(&c);
  int code = -1;
  CHECK_INT_EQ(exec_cmd_record_exit(f.ex, id, rec, &code), 1);
  CHECK_INT_EQ(code, 7);

  cleanup_json json_t *c2 = json_pack("[s,s]", "sleep", "30");
  o = (struct exec_cmd_opts){.cmd = c2, .discard_output = true, .record = rec2};
  if (exec_cmd_start(f.ex, id, &o, &c, &err) < 0)
    FAIL_("%s", err.msg);
  CHECK_INT_EQ(exec_cmd_record(f.ex, id, rec2, info, &c, &err), 0);
  CHECK_INT_EQ(exec_cmd_record_exit(f.ex, id, rec2, &code), 0);
  cleanup_json json_t *all = exec_cmd_records(f.ex);
  CHECK_INT_EQ(json_array_size(all), 2);
  size_t i;
  json_t *r;
  int seen = 0;
  json_array_foreach(all, i, r) {
    CHECK_STR_EQ(jx_str(r, "ContainerID", ""), id);
    CHECK_STR_EQ(jx_str(r, "ProcessConfig.entrypoint", ""), "sh");
    CHECK(!json_object_get(r, "Shoal"));
    if (strcmp(jx_str(r, "ID", ""), rec) == 0) {
      CHECK(!jx_bool(r, "Running", true));
      CHECK_INT_EQ(jx_int(r, "ExitCode", -1), 7);
      seen++;
    } else {
      CHECK(jx_bool(r, "Running", false));
      CHECK(json_is_null(json_object_get(r, "ExitCode")));
      seen++;
    }
  }
  CHECK_INT_EQ(seen, 2);
  /* The waiting shell killed: no status, and it does not run. */
  kill(c.pid, SIGKILL);
  spawn_wait(c.pid);
  if (c.proc_pid > 0)
    kill(c.proc_pid, SIGKILL);
  exec_cmd_release(&c);
  CHECK_INT_EQ(exec_cmd_record_exit(f.ex, id, rec2, &code), -1);
  exec_cmd_forget(f.ex, id, rec);
  exec_cmd_forget(f.ex, id, rec2);
  cleanup_json json_t *none = exec_cmd_records(f.ex);
  CHECK_INT_EQ(json_array_size(none), 0);

  /* The main process's terminal: its log says so; a resize is 409 once
   * it no longer runs, a no-op for a container without a TTY. */
  CHECK_INT_EQ(exec_tty_resize(f.ex, id, 40, 120, &err), 0);
  CHECK_INT_EQ(exec_tty_resize(f.ex, id, 4000, 120, &err), -1);
  CHECK_INT_EQ(err.status, 400);
  char *out = NULL, *errs = NULL;
  exec_stop(f.ex, id, 0, NS_PER_SEC / 2, &err);
  logs_of(f.ex, id, &out, &errs);
  CHECK(out && strstr(out, "tty\r\n") != NULL);
  free(out);
  free(errs);
  CHECK_INT_EQ(exec_tty_resize(f.ex, id, 40, 120, &err), -1);
  CHECK_INT_EQ(err.status, 409);
}

TEST(exec_adopts_running_container_after_restart) {
  FX(f);
  char id[65];
  struct exec_spec s;
  const char *cmd[] = {"sh", "-c", "echo up; sleep 30", NULL};
  spec_init(&f, &s, id, cmd);
  sh_err err = {0};
  pid_t pid = 0;
  if (exec_create(f.ex, &s, &err) < 0 || exec_start(f.ex, id, &pid, &err) < 0)
    FAIL_("%s", err.msg);
  exec_close(f.ex);
  f.ex = NULL;

  pid_t child = fork();
  if (child == 0) {
    int code = 0;
    char rootfs[300];
    snprintf(rootfs, sizeof rootfs, "%s/containers/%s/rootfs", f.data, id);
    if (unshare(CLONE_NEWNS) < 0 ||
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
        umount2(rootfs, MNT_DETACH) < 0)
      _exit(10);
    executor *ex2 = NULL;
    struct exec_entry *v = NULL;
    size_t n = 0;
    struct exec_state st;
    json_t *j = NULL;
    if (exec_open(f.data, f.run, &ex2, &err) < 0)
      _exit(11);
    if (exec_list(ex2, &v, &n, &err) < 0 || n != 1 || strcmp(v[0].id, id) ||
        !str_has_prefix(v[0].name, "web.1."))
      code = 12;
    else if (exec_state(ex2, id, &st, &err) < 0 ||
             st.status != EXEC_STATUS_RUNNING || st.pid != pid)
      code = 13;
    else if (exec_inspect_json(ex2, id, &j, &err) < 0 ||
             jx_int(j, "State.Pid", 0) != pid)
      code = 14;
    else if (exec_stop(ex2, id, 0, NS_PER_SEC / 2, &err) != 0)
      code = 15;
    else if (exec_state(ex2, id, &st, &err) < 0 || st.exit_code != 137)
      code = 16;
    else if (exec_remove(ex2, id, false, &err) < 0)
      code = 17;
    if (code)
      fprintf(stderr, "    adoption step %d: %s\n", code, err.msg);
    json_decref(j);
    exec_list_free(v, n);
    exec_close(ex2);
    _exit(code);
  }
  int wst = 0;
  waitpid(child, &wst, 0);
  CHECK(WIFEXITED(wst));
  CHECK_INT_EQ(WEXITSTATUS(wst), 0);
  /* Removed there, gone here too. */
  char dir[256];
  snprintf(dir, sizeof dir, "%s/containers/%s", f.data, id);
  CHECK(access(dir, F_OK) < 0);
  CHECK(kill(pid, 0) < 0);
}

/* Many layers with long paths: the overlay option string passes a page. */
TEST(exec_many_layers_go_by_descriptor) {
  FX(f);
  enum { NL = 40 };
  static char paths[NL][200];
  const char *layers[NL + 2];
  layers[0] = f.layer;
  for (int i = 0; i < NL; i++) {
    snprintf(paths[i], sizeof paths[i],
             "%s/layers/%03d-a-rather-long-layer-directory-name-as-a-content-"
             "store-would-make-it-sha256-0123456789abcdef0123456789abcdef",
             f.root, i);
    char etc[260];
    snprintf(etc, sizeof etc, "%s/etc", paths[i]);
    mkdir_p(etc, 0755, NULL);
    char motd[280];
    snprintf(motd, sizeof motd, "%s/etc/motd", paths[i]);
    char txt[16];
    snprintf(txt, sizeof txt, "layer%d\n", i);
    write_str(motd, txt);
    layers[i + 1] = paths[i];
  }
  layers[NL + 1] = NULL;
  char id[65];
  struct exec_spec s;
  const char *cmd[] = {"cat", "/etc/motd", NULL};
  spec_init(&f, &s, id, cmd);
  s.layers = layers;
  sh_err err = {0};
  if (exec_create(f.ex, &s, &err) < 0 || exec_start(f.ex, id, NULL, &err) < 0)
    FAIL_("%s", err.msg);
  struct exec_state st;
  CHECK(wait_status(f.ex, id, EXEC_STATUS_EXITED, &st, 5 * NS_PER_SEC));
  char *out;
  logs_of(f.ex, id, &out, NULL);
  CHECK_STR_EQ(out, "layer39\n");
  free(out);
}

/* Hybrid hosts (this machine) need the mount preparation; others not. */
TEST(exec_open_checks_cgroup_mode) {
  if (geteuid() != 0)
    FAIL_("needs root");
  sh_err err = {0};
  char root[] = "/tmp/shoal-exec-mode-XXXXXX";
  CHECK(mkdtemp(root));
  char d[64], r[64];
  snprintf(d, sizeof d, "%s/d", root);
  snprintf(r, sizeof r, "%s/r", root);
  executor *ex = NULL;
  int before = -1, prep = -1, after = -1;
  enum exec_cgroup_mode m0 = exec_detect_cgroup_mode();
  if (m0 == EXEC_CGROUP_HYBRID) {
    before = exec_open(d, r, &ex, &err);
    CHECK(strstr(err.msg, "hybrid"));
  }
  prep = exec_prepare_host_mounts(&err);
  after = exec_open(d, r, &ex, &err);
  enum exec_cgroup_mode m1 = ex ? exec_cgroup_mode(ex) : m0;
  exec_close(ex);
  exec_rm_rf(root, NULL);
  if (m0 == EXEC_CGROUP_HYBRID) {
    CHECK(before < 0);
    CHECK_INT_EQ(prep, 1);
    CHECK_INT_EQ(m1, EXEC_CGROUP_V1);
  } else {
    CHECK_INT_EQ(prep, 0);
  }
  CHECK_INT_EQ(after, 0);
}

TEST(exec_logs_follow_until_exit) {
  FX(f);
  char id[65];
  struct exec_spec s;
  const char *cmd[] = {"sh", "-c",
                       "echo a; sleep 0.3; echo b >&2; sleep 0.2; "
                       "echo c; exit 5",
                       NULL};
  spec_init(&f, &s, id, cmd);
  sh_err err = {0};
  if (exec_create(f.ex, &s, &err) < 0 || exec_start(f.ex, id, NULL, &err) < 0)
    FAIL_("%s", err.msg);
  struct frames fr = {0};
  struct exec_logs_opts o = {.want_stdout = true,
                             .want_stderr = true,
                             .follow = true,
                             .tail = -1,
                             .write = collect,
                             .arg = &fr};
  int64_t t0 = clock_mono_ns();
  int rc = exec_logs(f.ex, id, &o, &err);
  int64_t took = clock_mono_ns() - t0;
  char *out = xstrdup(str0(&fr.out)), *errs = xstrdup(str0(&fr.err));
  int nframes = fr.nframes;
  frames_free(&fr);
  CHECK_INT_EQ(rc, 0);
  CHECK_STR_EQ(out, "a\nc\n");
  CHECK_STR_EQ(errs, "b\n");
  CHECK_INT_EQ(nframes, 3);
  CHECK(took >= 400 * NS_PER_MS && took < 5 * NS_PER_SEC);
  free(out);
  free(errs);
  struct exec_state st;
  CHECK_INT_EQ(exec_state(f.ex, id, &st, &err), 0);
  CHECK_INT_EQ(st.exit_code, 5);
}

/* The daemon calls in from several worker threads at once. */
struct worker {
  struct fx *f;
  int n;
  char failure[256];
};

static void *worker_main(void *arg) {
  struct worker *w = arg;
  for (int i = 0; i < 3 && !w->failure[0]; i++) {
    char id[65];
    struct exec_spec s;
    char echo[64];
    snprintf(echo, sizeof echo, "echo w%d-%d; sleep 30", w->n, i);
    const char *cmd[] = {"sh", "-c", echo, NULL};
    char name[64];
    spec_init(w->f, &s, id, cmd);
    snprintf(name, sizeof name, "w%d.%d", w->n, i);
    s.name = name;
    sh_err err = {0};
    struct exec_state st;
    char *out = NULL;
    if (exec_create(w->f->ex, &s, &err) < 0 ||
        exec_start(w->f->ex, id, NULL, &err) < 0) {
      snprintf(w->failure, sizeof w->failure, "start: %s", err.msg);
      break;
    }
    for (int k = 0; k < 200; k++) {
      free(out);
      logs_of(w->f->ex, id, &out, NULL);
      if (*out)
        break;
      usleep(10000);
    }
    char want[32];
    snprintf(want, sizeof want, "w%d-%d\n", w->n, i);
    if (strcmp(out, want))
      snprintf(w->failure, sizeof w->failure, "logs %s: %s", want, out);
    free(out);
    if (exec_stop(w->f->ex, id, SIGKILL, 0, &err) < 0 ||
        exec_state(w->f->ex, id, &st, &err) < 0 || st.exit_code != 137 ||
        exec_remove(w->f->ex, id, false, &err) < 0)
      snprintf(w->failure, sizeof w->failure, "stop/remove: %s", err.msg);
  }
  return NULL;
}

TEST(exec_concurrent_workers) {
  FX(f);
  enum { NW = 6 };
  struct worker w[NW];
  pthread_t t[NW];
  for (int i = 0; i < NW; i++) {
    w[i] = (struct worker){.f = &f, .n = i};
    pthread_create(&t[i], NULL, worker_main, &w[i]);
  }
  for (int i = 0; i < NW; i++)
    pthread_join(t[i], NULL);
  for (int i = 0; i < NW; i++)
    if (w[i].failure[0])
      FAIL_("worker %d: %s", i, w[i].failure);
  struct exec_entry *v;
  size_t n;
  sh_err err = {0};
  CHECK_INT_EQ(exec_list(f.ex, &v, &n, &err), 0);
  exec_list_free(v, n);
  CHECK_INT_EQ(n, 0);
}

static void count_exit(struct exec_watch *wa, void *ud) {
  int *n = ud;
  (*n)++;
  exec_watch_free(wa);
}

static void stop_loop(uv_timer_t *t) {
  uv_stop(t->loop);
}

/* Runs loop until *n reaches want or timeout_ns passed. */
static void run_until(uv_loop_t *loop, const int *n, int want,
                      int64_t timeout_ns) {
  uv_timer_t guard;
  uv_timer_init(loop, &guard);
  uv_timer_start(&guard, stop_loop, (uint64_t)(timeout_ns / NS_PER_MS), 0);
  while (*n < want && uv_is_active((uv_handle_t *)&guard))
    uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&guard, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
}

/* Whether process pid ignores SIGTERM yet (SigIgn in its status): a stop
 * sent before its shell ran `trap` would end it early. */
static bool term_ignored(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *fp = fopen(path, "r");
  bool yes = false;
  while (fp && fgets(line, sizeof line, fp))
    if (strncmp(line, "SigIgn:", 7) == 0)
      yes = (strtoull(line + 7, NULL, 16) >> (SIGTERM - 1)) & 1;
  if (fp)
    fclose(fp);
  return yes;
}

/* Stops on the loop hold no thread: 20 containers whose PID 1 ignores
 * SIGTERM, each with a 1 s grace, are all gone after about one grace
 * period (one at a time would take 20 s). */
TEST(exec_watch_stops_run_concurrently) {
  FX(f);
  enum { N = 20 };
  char ids[N][65];
  int fds[N];
  const char *cmd[] = {"sh", "-c", "trap '' TERM; while :; do sleep 1; done",
                       NULL};
  sh_err err = {0};
  for (int i = 0; i < N; i++) {
    struct exec_spec s;
    spec_init(&f, &s, ids[i], cmd);
    int sig = 0;
    if (exec_create(f.ex, &s, &err) < 0 ||
        exec_start(f.ex, ids[i], NULL, &err) < 0 ||
        exec_pidfd(f.ex, ids[i], &fds[i], &sig, &err) != 0)
      FAIL_("container %d: %s", i, err.msg);
    CHECK_INT_EQ(sig, SIGTERM);
  }
  /* Each shell has set its trap (under load that takes a while). */
  for (int i = 0; i < N; i++) {
    struct exec_state st;
    bool ready = false;
    for (int k = 0; k < 500 && !ready; k++) {
      ready = exec_state(f.ex, ids[i], &st, NULL) == 0 && st.pid > 0 &&
              term_ignored(st.pid);
      if (!ready)
        usleep(10000);
    }
    CHECK(ready);
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  int exited = 0;
  struct exec_watch *wa[N];
  for (int i = 0; i < N; i++)
    CHECK_INT_EQ(
        exec_watch_new(&loop, fds[i], count_exit, &exited, &wa[i], &err), 0);
  int64_t t0 = clock_mono_ns();
  for (int i = 0; i < N; i++)
    CHECK_INT_EQ(exec_watch_stop(wa[i], 0, NS_PER_SEC, &err), 0);
  run_until(&loop, &exited, N, 15 * NS_PER_SEC);
  int64_t took = clock_mono_ns() - t0;
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT_EQ(uv_loop_close(&loop), 0);
  CHECK_INT_EQ(exited, N);
  /* SIGTERM was ignored: the grace ran out, then SIGKILL for all at once. */
  CHECK(took >= NS_PER_SEC);
  if (took >= 3 * NS_PER_SEC)
    FAIL_("20 stops with a 1 s grace took %.1f s", (double)took / 1e9);
  for (int i = 0; i < N; i++) {
    struct exec_state st;
    CHECK_INT_EQ(exec_state(f.ex, ids[i], &st, &err), 0);
    CHECK_INT_EQ(st.status, EXEC_STATUS_EXITED);
    CHECK_INT_EQ(st.exit_code, 137);
  }
}

/* A process that ends by itself is an event too; one that honours its
 * stop signal exits well within the grace, with its own code. */
TEST(exec_watch_sees_exits) {
  FX(f);
  char a[65], b[65];
  struct exec_spec s;
  const char *quit[] = {"sh", "-c", "sleep 0.3; exit 3", NULL};
  const char *polite[] = {
      "sh", "-c", "trap 'exit 7' TERM; echo ready; while :; do sleep 0.1; done",
      NULL};
  sh_err err = {0};
  int fa = -1, fb = -1;
  spec_init(&f, &s, a, quit);
  if (exec_create(f.ex, &s, &err) < 0 || exec_start(f.ex, a, NULL, &err) < 0 ||
      exec_pidfd(f.ex, a, &fa, NULL, &err) != 0)
    FAIL_("%s", err.msg);
  spec_init(&f, &s, b, polite);
  if (exec_create(f.ex, &s, &err) < 0 || exec_start(f.ex, b, NULL, &err) < 0 ||
      exec_pidfd(f.ex, b, &fb, NULL, &err) != 0)
    FAIL_("%s", err.msg);
  /* A signal before the trap is set would be ignored (PID 1). */
  char *out = NULL;
  for (int i = 0; i < 250; i++) {
    free(out);
    logs_of(f.ex, b, &out, NULL);
    if (strcmp(out, "ready\n") == 0)
      break;
    usleep(20000);
  }
  CHECK_STR_EQ(out, "ready\n");
  free(out);
  uv_loop_t loop;
  uv_loop_init(&loop);
  int exited = 0;
  struct exec_watch *wa, *wb;
  CHECK_INT_EQ(exec_watch_new(&loop, fa, count_exit, &exited, &wa, &err), 0);
  CHECK_INT_EQ(exec_watch_new(&loop, fb, count_exit, &exited, &wb, &err), 0);
  int64_t t0 = clock_mono_ns();
  CHECK_INT_EQ(exec_watch_stop(wb, 0, 10 * NS_PER_SEC, &err), 0);
  run_until(&loop, &exited, 2, 5 * NS_PER_SEC);
  int64_t took = clock_mono_ns() - t0;
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT_EQ(uv_loop_close(&loop), 0);
  CHECK_INT_EQ(exited, 2);
  CHECK(took < 3 * NS_PER_SEC);
  struct exec_state st;
  CHECK(wait_status(f.ex, a, EXEC_STATUS_EXITED, &st, NS_PER_SEC));
  CHECK_INT_EQ(st.exit_code, 3);
  CHECK(wait_status(f.ex, b, EXEC_STATUS_EXITED, &st, NS_PER_SEC));
  CHECK_INT_EQ(st.exit_code, 7);
  /* Not running any more: no pidfd to have. */
  int fd = 0;
  CHECK_INT_EQ(exec_pidfd(f.ex, a, &fd, NULL, &err), 1);
  CHECK_INT_EQ(fd, -1);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* Figures for the report (SHOAL_EXEC_BENCH=1): create->running latency
 * and conmon's resident memory. */
TEST(exec_bench_start_latency) {
  if (!getenv("SHOAL_EXEC_BENCH"))
    return;
  FX(f);
  enum { N = 20 };
  int64_t create[N], start[N];
  char ids[N][65];
  long rss_total = 0;
  int rss_n = 0;
  for (int i = 0; i < N; i++) {
    struct exec_spec s;
    const char *cmd[] = {"sleep", "60", NULL};
    spec_init(&f, &s, ids[i], cmd);
    sh_err err = {0};
    int64_t t0 = clock_mono_ns();
    if (exec_create(f.ex, &s, &err) < 0)
      FAIL_("%s", err.msg);
    int64_t t1 = clock_mono_ns();
    if (exec_start(f.ex, ids[i], NULL, &err) < 0)
      FAIL_("%s", err.msg);
    create[i] = t1 - t0;
    start[i] = clock_mono_ns() - t1;
    char p[256];
    snprintf(p, sizeof p, "%s/containers/%s/conmon.pid", f.run, ids[i]);
    char *pid = slurp(p);
    if (pid) {
      snprintf(p, sizeof p, "/proc/%d/status", atoi(pid));
      char *status = slurp(p);
      char *rss = status ? strstr(status, "VmRSS:") : NULL;
      if (rss) {
        rss_total += atol(rss + 6);
        rss_n++;
      }
      free(status);
      free(pid);
    }
  }
  qsort(create, N, sizeof create[0], cmp_i64);
  qsort(start, N, sizeof start[0], cmp_i64);
  fprintf(stderr,
          "    bench: create median %.1f ms (max %.1f), start (conmon + crun "
          "create + crun start) median %.1f ms (max %.1f); conmon RSS avg "
          "%ld kB over %d\n",
          create[N / 2] / 1e6, create[N - 1] / 1e6, start[N / 2] / 1e6,
          start[N - 1] / 1e6, rss_n ? rss_total / rss_n : 0, rss_n);
  int64_t t0 = clock_mono_ns();
  for (int i = 0; i < N; i++)
    exec_remove(f.ex, ids[i], true, NULL);
  fprintf(stderr, "    bench: force remove %.1f ms per container\n",
          (clock_mono_ns() - t0) / 1e6 / N);
}
