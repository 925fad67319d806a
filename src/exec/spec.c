/* From image config + ContainerSpec to the OCI runtime config, with the
 * defaults dockerd gives every container. Pure, except user lookups, which
 * read the container's own /etc/passwd and /etc/group. */
#include "exec/internal.h"
#include "exec/caps.h"

#include "core/err.h"
#include "core/lowfd.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "seccomp/seccomp.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>

/* ---- signals ---- */

static const struct {
  const char *name;
  int no;
} signals[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},       {"QUIT", SIGQUIT},
    {"ILL", SIGILL},   {"TRAP", SIGTRAP},     {"ABRT", SIGABRT},
    {"IOT", SIGIOT},   {"BUS", SIGBUS},       {"FPE", SIGFPE},
    {"KILL", SIGKILL}, {"USR1", SIGUSR1},     {"SEGV", SIGSEGV},
    {"USR2", SIGUSR2}, {"PIPE", SIGPIPE},     {"ALRM", SIGALRM},
    {"TERM", SIGTERM}, {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD},
    {"CONT", SIGCONT}, {"STOP", SIGSTOP},     {"TSTP", SIGTSTP},
    {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},     {"URG", SIGURG},
    {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ},     {"VTALRM", SIGVTALRM},
    {"PROF", SIGPROF}, {"WINCH", SIGWINCH},   {"IO", SIGIO},
    {"POLL", SIGPOLL}, {"PWR", SIGPWR},       {"SYS", SIGSYS},
};

int exec_parse_signal(const char *s) {
  if (!s || !*s)
    return -1;
  if (isdigit((unsigned char)*s)) {
    char *end;
    long v = strtol(s, &end, 10);
    return (*end || v < 1 || v > 64) ? -1 : (int)v;
  }
  if (strncasecmp(s, "SIG", 3) == 0)
    s += 3;
  for (size_t i = 0; i < ARRAY_SIZE(signals); i++)
    if (strcasecmp(s, signals[i].name) == 0)
      return signals[i].no;
  if (strncasecmp(s, "RTMIN+", 6) == 0 || strncasecmp(s, "RTMAX-", 6) == 0) {
    char *end;
    long v = strtol(s + 6, &end, 10);
    if (*end || v < 0 || v > SIGRTMAX - SIGRTMIN)
      return -1;
    return s[3] == 'I' || s[3] == 'i' ? SIGRTMIN + (int)v : SIGRTMAX - (int)v;
  }
  return -1;
}

/* ---- process composition ---- */

static json_t *strv_json(const char *const *v) {
  json_t *a = json_array();
  for (size_t i = 0; v && v[i]; i++)
    json_array_append_new(a, json_string(v[i]));
  return a;
}

static bool strv_empty(const char *const *v) {
  return !v || !v[0];
}

/* Docker's ReplaceOrAppendEnvValues: same key replaces, else appends. */
void exec_env_set(json_t *env, const char *kv) {
  size_t klen = strcspn(kv, "=");
  size_t i;
  json_t *e;
  json_array_foreach(env, i, e) {
    const char *s = json_string_value(e);
    if (s && strncmp(s, kv, klen) == 0 && (s[klen] == '=' || !s[klen])) {
      json_array_set_new(env, i, json_string(kv));
      return;
    }
  }
  json_array_append_new(env, json_string(kv));
}

static const json_t *image_cfg(const json_t *ic) {
  const json_t *c = json_object_get(ic, "config");
  return json_is_object(c) ? c : ic;
}

int exec_compose(const struct exec_spec *s, struct exec_process *out,
                 sh_err *err) {
  memset(out, 0, sizeof *out);
  const json_t *ic = image_cfg(s->image_config);
  json_t *ient = json_object_get(ic, "Entrypoint");
  json_t *icmd = json_object_get(ic, "Cmd");

  if (!strv_empty(s->entrypoint)) {
    out->entrypoint = strv_json(s->entrypoint);
    out->cmd = strv_empty(s->cmd) ? json_null() : strv_json(s->cmd);
  } else {
    out->entrypoint = json_is_array(ient) && json_array_size(ient)
                          ? json_deep_copy(ient)
                          : json_null();
    if (!strv_empty(s->cmd))
      out->cmd = strv_json(s->cmd);
    else
      out->cmd = json_is_array(icmd) ? json_deep_copy(icmd) : json_null();
  }
  out->args = json_array();
  if (json_is_array(out->entrypoint))
    json_array_extend(out->args, out->entrypoint);
  if (json_is_array(out->cmd))
    json_array_extend(out->args, out->cmd);
  size_t i;
  json_t *a;
  json_array_foreach(out->args, i, a) {
    if (!json_is_string(a)) {
      exec_process_free(out);
      return sh_error(err, 400, "invalid command: arguments must be strings");
    }
  }
  if (json_array_size(out->args) == 0 ||
      !*json_string_value(json_array_get(out->args, 0))) {
    exec_process_free(out);
    return sh_error(err, 400, "No command specified");
  }

  out->env = json_array();
  json_t *ienv = json_object_get(ic, "Env");
  json_array_foreach(ienv, i, a) {
    if (json_is_string(a))
      exec_env_set(out->env, json_string_value(a));
  }
  for (size_t k = 0; s->env && s->env[k]; k++)
    exec_env_set(out->env, s->env[k]);

  out->labels = json_object();
  json_t *il = json_object_get(ic, "Labels");
  if (json_is_object(il))
    json_object_update(out->labels, il);
  if (json_is_object(s->labels))
    json_object_update(out->labels, (json_t *)s->labels);

  const char *wd =
      s->workdir && *s->workdir ? s->workdir : jx_str(ic, "WorkingDir", "");
  if (!*wd)
    wd = "/";
  if (wd[0] != '/') {
    exec_process_free(out);
    return sh_error(err, 400,
                    "the working directory '%s' is invalid, it needs to be an "
                    "absolute path",
                    wd);
  }
  out->workdir = xstrdup(wd);
  out->user = xstrdup(s->user ? s->user : jx_str(ic, "User", ""));

  const char *sig = s->stop_signal && *s->stop_signal
                        ? s->stop_signal
                        : jx_str(ic, "StopSignal", NULL);
  out->stop_signo = SIGTERM;
  if (sig && *sig) {
    out->stop_signo = exec_parse_signal(sig);
    if (out->stop_signo < 0) {
      exec_process_free(out);
      return sh_error(err, 400, "Invalid signal: %s", sig);
    }
    out->stop_signal = xstrdup(sig);
  }
  return 0;
}

void exec_process_free(struct exec_process *p) {
  json_decref(p->entrypoint);
  json_decref(p->cmd);
  json_decref(p->args);
  json_decref(p->env);
  json_decref(p->labels);
  free(p->workdir);
  free(p->user);
  free(p->stop_signal);
  memset(p, 0, sizeof *p);
}

/* ---- users ---- */

/* Reads a file of the container's rootfs; symlinks resolve inside it. */
static char *read_in_root(int rootfd, const char *rel) {
  struct open_how how = {.flags = O_RDONLY | O_CLOEXEC,
                         .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
  int fd = (int)syscall(SYS_openat2, rootfd, rel, &how, sizeof how);
  if (fd < 0)
    return NULL;
  sh_buf b = {0};
  char tmp[4096];
  ssize_t n;
  while ((n = read(fd, tmp, sizeof tmp)) > 0 && b.len < (1u << 20))
    buf_append(&b, tmp, (size_t)n);
  close(fd);
  if (!b.data)
    buf_append(&b, "", 0);
  return b.data;
}

static bool all_digits(const char *s) {
  if (!*s)
    return false;
  for (; *s; s++)
    if (!isdigit((unsigned char)*s))
      return false;
  return true;
}

/* Splits one line of a colon file into at most max fields (in place). */
static int split_colon(char *line, char **f, int max) {
  int n = 0;
  f[n++] = line;
  for (char *p = line; *p && n < max; p++)
    if (*p == ':') {
      *p = '\0';
      f[n++] = p + 1;
    }
  return n;
}

int exec_resolve_user(int rootfd, const char *user, struct exec_user *out,
                      sh_err *err) {
  memset(out, 0, sizeof *out);
  snprintf(out->home, sizeof out->home, "/");
  cleanup_free char *u = xstrdup(user ? user : "");
  char *g = strchr(u, ':');
  if (g)
    *g++ = '\0';

  cleanup_free char *passwd = read_in_root(rootfd, "etc/passwd");
  bool found = false;
  char uname[256] = "";
  if (passwd && *u != '\0') {
    bool numeric = all_digits(u);
    for (char *save = NULL, *line = strtok_r(passwd, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
      char *f[7];
      if (split_colon(line, f, 7) < 7 || !all_digits(f[2]) || !all_digits(f[3]))
        continue;
      if (numeric ? strcmp(f[2], u) != 0 : strcmp(f[0], u) != 0)
        continue;
      out->uid = (uid_t)strtoul(f[2], NULL, 10);
      out->gid = (gid_t)strtoul(f[3], NULL, 10);
      snprintf(out->home, sizeof out->home, "%s", *f[5] ? f[5] : "/");
      snprintf(uname, sizeof uname, "%s", f[0]);
      found = true;
      break;
    }
  } else if (passwd && *u == '\0') {
    /* root's entry gives HOME, as Docker does. */
    for (char *save = NULL, *line = strtok_r(passwd, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
      char *f[7];
      if (split_colon(line, f, 7) == 7 && strcmp(f[2], "0") == 0) {
        snprintf(out->home, sizeof out->home, "%s", *f[5] ? f[5] : "/");
        snprintf(uname, sizeof uname, "%s", f[0]);
        found = true;
        break;
      }
    }
  }
  if (!found && *u) {
    if (!all_digits(u))
      return sh_error(err, 400,
                      "unable to find user %s: no matching entries in passwd "
                      "file",
                      u);
    out->uid = (uid_t)strtoul(u, NULL, 10);
  }

  cleanup_free char *group = read_in_root(rootfd, "etc/group");
  if (g && *g) {
    if (all_digits(g)) {
      out->gid = (gid_t)strtoul(g, NULL, 10);
    } else {
      bool gfound = false;
      cleanup_free char *copy = group ? xstrdup(group) : NULL;
      for (char *save = NULL, *line = copy ? strtok_r(copy, "\n", &save) : NULL;
           line; line = strtok_r(NULL, "\n", &save)) {
        char *f[4];
        if (split_colon(line, f, 4) >= 3 && strcmp(f[0], g) == 0 &&
            all_digits(f[2])) {
          out->gid = (gid_t)strtoul(f[2], NULL, 10);
          gfound = true;
          break;
        }
      }
      if (!gfound)
        return sh_error(err, 400,
                        "unable to find group %s: no matching entries in group "
                        "file",
                        g);
    }
  }
  /* Supplementary groups: every group that lists the user as a member. */
  if (found && group) {
    for (char *save = NULL, *line = strtok_r(group, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
      char *f[4];
      if (split_colon(line, f, 4) < 4 || !all_digits(f[2]))
        continue;
      gid_t gid = (gid_t)strtoul(f[2], NULL, 10);
      for (char *s2 = NULL, *m = strtok_r(f[3], ",", &s2); m;
           m = strtok_r(NULL, ",", &s2)) {
        if (strcmp(m, uname) == 0 && gid != out->gid &&
            out->n_groups < ARRAY_SIZE(out->groups))
          out->groups[out->n_groups++] = gid;
      }
    }
  }
  return 0;
}

/* ---- resources ---- */

#define CPU_PERIOD 100000

static int64_t cpu_quota(int64_t nano_cpus) {
  return nano_cpus * CPU_PERIOD / 1000000000;
}

int exec_oci_resources(const struct exec_resources *r, bool swap_limit,
                       json_t **out, sh_err *err) {
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  if (ncpu < 1)
    ncpu = 1;
  if (r->nano_cpus < 0 ||
      (r->nano_cpus > 0 &&
       (r->nano_cpus < 10000000 || r->nano_cpus > ncpu * 1000000000LL)))
    return sh_error(err, 400,
                    "Range of CPUs is from 0.01 to %ld.00, as there are only "
                    "%ld CPUs available",
                    ncpu, ncpu);
  if (r->memory_bytes < 0 ||
      (r->memory_bytes > 0 && r->memory_bytes < 6 * 1024 * 1024))
    return sh_error(err, 400, "Minimum memory limit allowed is 6MB");
  if (r->pids_limit < 0)
    return sh_error(err, 400, "invalid pids limit %lld",
                    (long long)r->pids_limit);

  json_t *res = json_object();
  /* dockerd's device rules: nothing but the usual character devices, and
   * mknod of anything (creating a node does not grant access to it). */
  json_t *dev = json_array();
  json_array_append_new(dev,
                        json_pack("{s:b,s:s}", "allow", 0, "access", "rwm"));
  static const struct {
    const char *type;
    int major, minor;
    const char *access;
  } rules[] = {
      {"c", -1, -1, "m"}, {"b", -1, -1, "m"},    {"c", 1, 3, "rwm"},
      {"c", 1, 8, "rwm"}, {"c", 1, 7, "rwm"},    {"c", 5, 0, "rwm"},
      {"c", 1, 5, "rwm"}, {"c", 1, 9, "rwm"},    {"c", 136, -1, "rwm"},
      {"c", 5, 2, "rwm"}, {"c", 10, 200, "rwm"},
  };
  for (size_t i = 0; i < ARRAY_SIZE(rules); i++) {
    json_t *d = json_pack("{s:b,s:s,s:s}", "allow", 1, "type", rules[i].type,
                          "access", rules[i].access);
    if (rules[i].major >= 0)
      json_object_set_new(d, "major", json_integer(rules[i].major));
    if (rules[i].minor >= 0)
      json_object_set_new(d, "minor", json_integer(rules[i].minor));
    json_array_append_new(dev, d);
  }
  json_object_set_new(res, "devices", dev);

  if (r->nano_cpus > 0)
    json_object_set_new(res, "cpu",
                        json_pack("{s:I,s:I}", "quota",
                                  (json_int_t)cpu_quota(r->nano_cpus), "period",
                                  (json_int_t)CPU_PERIOD));
  if (r->memory_bytes > 0) {
    json_t *m = json_pack("{s:I}", "limit", (json_int_t)r->memory_bytes);
    /* dockerd: MemorySwap unset means twice the memory limit. */
    if (swap_limit)
      json_object_set_new(m, "swap", json_integer(r->memory_bytes * 2));
    json_object_set_new(res, "memory", m);
  }
  if (r->pids_limit > 0)
    json_object_set_new(res, "pids",
                        json_pack("{s:I}", "limit", (json_int_t)r->pids_limit));
  *out = res;
  return 0;
}

static void cgfile(struct exec_cgroup_file *out, size_t max, size_t *n,
                   const char *ctrl, const char *cg, const char *file,
                   const char *value) {
  if (*n >= max)
    return;
  if (ctrl)
    snprintf(out[*n].path, sizeof out[*n].path, "%s/%s/%s", ctrl, cg, file);
  else
    snprintf(out[*n].path, sizeof out[*n].path, "%s/%s", cg, file);
  snprintf(out[*n].value, sizeof out[*n].value, "%s", value);
  (*n)++;
}

size_t exec_cgroup_files(enum exec_cgroup_mode mode, const char *cgroup,
                         const struct exec_resources *r, bool swap_limit,
                         struct exec_cgroup_file *out, size_t max) {
  while (*cgroup == '/')
    cgroup++;
  size_t n = 0;
  bool v2 = mode == EXEC_CGROUP_V2;
  char v[64];
  if (r->nano_cpus > 0) {
    long long q = (long long)cpu_quota(r->nano_cpus);
    if (v2) {
      snprintf(v, sizeof v, "%lld %d", q, CPU_PERIOD);
      cgfile(out, max, &n, NULL, cgroup, "cpu.max", v);
    } else {
      snprintf(v, sizeof v, "%lld", q);
      cgfile(out, max, &n, "cpu", cgroup, "cpu.cfs_quota_us", v);
      snprintf(v, sizeof v, "%d", CPU_PERIOD);
      cgfile(out, max, &n, "cpu", cgroup, "cpu.cfs_period_us", v);
    }
  }
  if (r->memory_bytes > 0) {
    long long m = (long long)r->memory_bytes;
    snprintf(v, sizeof v, "%lld", m);
    cgfile(out, max, &n, v2 ? NULL : "memory", cgroup,
           v2 ? "memory.max" : "memory.limit_in_bytes", v);
    if (swap_limit) {
      /* OCI's swap is memory+swap; v2 counts swap apart from memory. */
      snprintf(v, sizeof v, "%lld", v2 ? m : 2 * m);
      cgfile(out, max, &n, v2 ? NULL : "memory", cgroup,
             v2 ? "memory.swap.max" : "memory.memsw.limit_in_bytes", v);
    }
  }
  if (r->pids_limit > 0) {
    snprintf(v, sizeof v, "%lld", (long long)r->pids_limit);
    cgfile(out, max, &n, v2 ? NULL : "pids", cgroup, "pids.max", v);
  }
  return n;
}

/* ---- the OCI config ---- */

static const char *const masked_paths[] = {
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    NULL,
};

static const char *const readonly_paths[] = {
    "/proc/bus",           "/proc/fs", "/proc/irq", "/proc/sys",
    "/proc/sysrq-trigger", NULL,
};

static json_t *mount_json(const char *dst, const char *type, const char *src,
                          const char *const *opts) {
  return json_pack("{s:s,s:s,s:s,s:o}", "destination", dst, "type", type,
                   "source", src, "options", strv_json(opts));
}

static int path_depth(const char *p) {
  int n = 0;
  for (; *p; p++)
    if (*p == '/' && p[1] && p[1] != '/')
      n++;
  return n;
}

static bool user_mounts_at(const struct exec_oci_input *in, const char *dst) {
  for (size_t i = 0; i < in->n_mounts; i++)
    if (strcmp(in->mounts[i].target, dst) == 0)
      return true;
  return false;
}

json_t *exec_oci_config(const struct exec_oci_input *in) {
  json_t *c = json_object();
  json_object_set_new(c, "ociVersion", json_string("1.0.2"));

  json_t *user = json_pack("{s:I,s:I}", "uid", (json_int_t)in->user->uid, "gid",
                           (json_int_t)in->user->gid);
  if (in->user->n_groups) {
    json_t *g = json_array();
    for (size_t i = 0; i < in->user->n_groups; i++)
      json_array_append_new(g, json_integer(in->user->groups[i]));
    json_object_set_new(user, "additionalGids", g);
  }
  /* As dockerd: a non-root process gets the bounding set only, like a
   * process that execs as that user would. */
  const char *const *cv = in->caps ? in->caps : exec_default_caps;
  json_t *caps = json_pack("{s:o}", "bounding", strv_json(cv));
  if (in->user->uid == 0) {
    json_object_set_new(caps, "effective", strv_json(cv));
    json_object_set_new(caps, "permitted", strv_json(cv));
  }
  /* --init: dockerd's docker-init (tini) runs the process as its child. */
  json_t *args = json_array();
  if (in->init_path) {
    json_array_append_new(args, json_string(EXEC_INIT_PATH));
    json_array_append_new(args, json_string("--"));
  }
  json_array_extend(args, (json_t *)in->args);
  json_t *process =
      json_pack("{s:b,s:o,s:o,s:O,s:s,s:o,s:b,s:i}", "terminal", in->terminal,
                "user", user, "args", args, "env", in->env, "cwd", in->cwd,
                "capabilities", caps, "noNewPrivileges", in->no_new_privileges,
                "oomScoreAdj", in->oom_score_adj);
  if (json_array_size(in->rlimits))
    json_object_set_new(process, "rlimits", json_deep_copy(in->rlimits));
  if (in->terminal && in->console_rows && in->console_cols)
    json_object_set_new(process, "consoleSize",
                        json_pack("{s:i,s:i}", "height", in->console_rows,
                                  "width", in->console_cols));
  json_object_set_new(c, "process", process);
  json_object_set_new(
      c, "root",
      json_pack("{s:s,s:b}", "path", in->rootfs, "readonly", in->read_only));
  json_object_set_new(c, "hostname", json_string(in->hostname));

  /* Docker's default mounts; a user mount on the same path replaces one. */
  json_t *mounts = json_array();
  static const struct {
    const char *dst, *type, *src;
    const char *opts[8];
  } defaults[] = {
      {"/proc", "proc", "proc", {"nosuid", "noexec", "nodev", NULL}},
      {"/dev",
       "tmpfs",
       "tmpfs",
       {"nosuid", "strictatime", "mode=755", "size=65536k", NULL}},
      {"/dev/pts",
       "devpts",
       "devpts",
       {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
        "gid=5", NULL}},
      {"/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro", NULL}},
      {"/sys/fs/cgroup",
       "cgroup",
       "cgroup",
       {"nosuid", "noexec", "nodev", "relatime", "ro", NULL}},
      {"/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev", NULL}},
      {"/dev/shm",
       "tmpfs",
       "shm",
       {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k", NULL}},
  };
  for (size_t i = 0; i < ARRAY_SIZE(defaults); i++)
    if (!user_mounts_at(in, defaults[i].dst))
      json_array_append_new(mounts,
                            mount_json(defaults[i].dst, defaults[i].type,
                                       defaults[i].src, defaults[i].opts));
  /* /etc files from the container directory; writable unless the rootfs is
   * read-only (dockerd's rule). */
  const char *etc_opts_rw[] = {"rbind", "rprivate", NULL};
  const char *etc_opts_ro[] = {"rbind", "rprivate", "ro", NULL};
  const struct {
    const char *dst, *src;
  } etc[] = {{"/etc/resolv.conf", in->resolv_path},
             {"/etc/hostname", in->hostname_path},
             {"/etc/hosts", in->hosts_path}};
  for (size_t i = 0; i < ARRAY_SIZE(etc); i++)
    if (etc[i].src && !user_mounts_at(in, etc[i].dst))
      json_array_append_new(
          mounts, mount_json(etc[i].dst, "bind", etc[i].src,
                             in->read_only ? etc_opts_ro : etc_opts_rw));

  /* User mounts, parents before children (stable by depth). */
  size_t *order = xcalloc(in->n_mounts + 1, sizeof *order);
  for (size_t i = 0; i < in->n_mounts; i++)
    order[i] = i;
  for (size_t i = 1; i < in->n_mounts; i++)
    for (size_t j = i; j > 0 && path_depth(in->mounts[order[j - 1]].target) >
                                    path_depth(in->mounts[order[j]].target);
         j--) {
      size_t t = order[j];
      order[j] = order[j - 1];
      order[j - 1] = t;
    }
  for (size_t k = 0; k < in->n_mounts; k++) {
    const struct exec_oci_mount *m = &in->mounts[order[k]];
    if (m->tmpfs) {
      char size[48] = "", mode[24];
      snprintf(mode, sizeof mode, "mode=%o", m->mode ? m->mode : 01777);
      const char *o[6] = {"nosuid", "nodev", mode, NULL, NULL, NULL};
      if (m->size > 0) {
        snprintf(size, sizeof size, "size=%lld", (long long)m->size);
        o[3] = size;
      }
      if (m->read_only)
        o[o[3] ? 4 : 3] = "ro";
      json_array_append_new(mounts, mount_json(m->target, "tmpfs", "tmpfs", o));
    } else {
      const char *o[] = {"rbind", "rprivate", m->read_only ? "ro" : NULL, NULL};
      json_array_append_new(mounts,
                            mount_json(m->target, "bind", m->source, o));
    }
  }
  free(order);
  if (in->init_path)
    json_array_append_new(
        mounts,
        mount_json(EXEC_INIT_PATH, "bind", in->init_path,
                   (const char *const[]){"rbind", "rprivate", "ro", NULL}));
  json_object_set_new(c, "mounts", mounts);

  json_t *ns = json_array();
  const char *types[] = {"pid", "ipc", "uts", "mount"};
  for (size_t i = 0; i < ARRAY_SIZE(types); i++)
    json_array_append_new(ns, json_pack("{s:s}", "type", types[i]));
  json_t *net = json_pack("{s:s}", "type", "network");
  if (in->netns_path)
    json_object_set_new(net, "path", json_string(in->netns_path));
  json_array_append_new(ns, net);
  if (in->cgmode == EXEC_CGROUP_V2) /* dockerd's default on v2 hosts */
    json_array_append_new(ns, json_pack("{s:s}", "type", "cgroup"));

  json_t *linux_ = json_object();
  json_object_set_new(linux_, "namespaces", ns);
  json_object_set_new(linux_, "cgroupsPath", json_string(in->cgroups_path));
  json_object_set_new(linux_, "resources",
                      in->resources ? json_deep_copy(in->resources)
                                    : json_object());
  json_object_set_new(linux_, "maskedPaths", strv_json(masked_paths));
  json_object_set_new(linux_, "readonlyPaths", strv_json(readonly_paths));
  /* dockerd sets these in every container network namespace. */
  json_t *sysctl = json_pack("{s:s,s:s}", "net.ipv4.ip_unprivileged_port_start",
                             "0", "net.ipv4.ping_group_range", "0 2147483647");
  /* --sysctl: the user's win over dockerd's. */
  if (json_is_object(in->sysctls))
    json_object_update(sysctl, (json_t *)in->sysctls);
  json_object_set_new(linux_, "sysctl", sysctl);
  /* dockerd evaluates the profile's "caps" against the bounding set. */
  if (in->seccomp) {
    struct seccomp_target t;
    seccomp_target_host(&t, cv);
    json_t *sc = seccomp_oci(in->seccomp, &t);
    if (sc)
      json_object_set_new(linux_, "seccomp", sc);
  }
  json_object_set_new(c, "linux", linux_);
  return c;
}

/* ---- sysctls, ulimits, groups, resolv.conf ---- */

/* As docker-cli's ValidateSysctl and runc's check: only sysctls the
 * kernel keeps per namespace, net.* only in a network namespace of the
 * container's own. */
int exec_check_sysctl(const char *name, bool host_netns, sh_err *err) {
  static const char *const ipc[] = {
      "kernel.msgmax",          "kernel.msgmnb",
      "kernel.msgmni",          "kernel.sem",
      "kernel.shmall",          "kernel.shmmax",
      "kernel.shm_rmid_forced", "kernel.shmmni",
  };
  for (size_t i = 0; i < ARRAY_SIZE(ipc); i++)
    if (strcmp(name, ipc[i]) == 0)
      return 0;
  if (str_has_prefix(name, "fs.mqueue."))
    return 0;
  if (str_has_prefix(name, "net.")) {
    if (host_netns)
      return sh_error(err, 400,
                      "sysctl \"%s\" not allowed in host network namespace",
                      name);
    return 0;
  }
  return sh_error(err, 400, "sysctl '%s' is not allowed", name);
}

static const struct {
  const char *name, *oci;
} rlimits[] = {
    {"core", "RLIMIT_CORE"},         {"cpu", "RLIMIT_CPU"},
    {"data", "RLIMIT_DATA"},         {"fsize", "RLIMIT_FSIZE"},
    {"locks", "RLIMIT_LOCKS"},       {"memlock", "RLIMIT_MEMLOCK"},
    {"msgqueue", "RLIMIT_MSGQUEUE"}, {"nice", "RLIMIT_NICE"},
    {"nofile", "RLIMIT_NOFILE"},     {"nproc", "RLIMIT_NPROC"},
    {"rss", "RLIMIT_RSS"},           {"rtprio", "RLIMIT_RTPRIO"},
    {"rttime", "RLIMIT_RTTIME"},     {"sigpending", "RLIMIT_SIGPENDING"},
    {"stack", "RLIMIT_STACK"},
};

/* go-units' ParseUlimit rules on the API's {Name, Soft, Hard}. */
int exec_rlimits(const json_t *ulimits, json_t **out, sh_err *err) {
  json_t *res = json_array();
  size_t i;
  json_t *u;
  json_array_foreach(ulimits, i, u) {
    const char *name = jx_str(u, "Name", "");
    const char *oci = NULL;
    for (size_t k = 0; k < ARRAY_SIZE(rlimits) && !oci; k++)
      if (strcmp(name, rlimits[k].name) == 0)
        oci = rlimits[k].oci;
    int64_t soft = jx_int(u, "Soft", 0), hard = jx_int(u, "Hard", 0);
    if (!oci) {
      json_decref(res);
      return sh_error(err, 400, "invalid ulimit type: %s", name);
    }
    if (soft > hard && hard != -1) {
      json_decref(res);
      return sh_error(err, 400,
                      "ulimit soft limit must be less than or equal to hard "
                      "limit: %lld > %lld",
                      (long long)soft, (long long)hard);
    }
    /* -1: unlimited, as RLIM_INFINITY. */
    json_array_append_new(res,
                          json_pack("{s:s,s:I,s:I}", "type", oci, "soft",
                                    (json_int_t)(soft < 0 ? -1 : soft), "hard",
                                    (json_int_t)(hard < 0 ? -1 : hard)));
  }
  json_t *nofile = exec_nofile_default();
  bool given = false;
  json_array_foreach(res, i, u) given =
      given || strcmp(jx_str(u, "type", ""), "RLIMIT_NOFILE") == 0;
  if (nofile && !given)
    json_array_append(res, nofile);
  json_decref(nofile);
  *out = res;
  return 0;
}

json_t *exec_nofile_default(void) {
  struct rlimit rl;
  if (!lowfd_nofile_before(&rl))
    return NULL;
  return json_pack(
      "{s:s,s:I,s:I}", "type", "RLIMIT_NOFILE", "soft",
      (json_int_t)(rl.rlim_cur == RLIM_INFINITY ? -1 : (int64_t)rl.rlim_cur),
      "hard",
      (json_int_t)(rl.rlim_max == RLIM_INFINITY ? -1 : (int64_t)rl.rlim_max));
}

int exec_resolve_groups(int rootfd, const char *const *groups,
                        struct exec_user *u, sh_err *err) {
  cleanup_free char *group = NULL;
  for (size_t i = 0; groups && groups[i]; i++) {
    const char *g = groups[i];
    gid_t gid;
    if (all_digits(g)) {
      gid = (gid_t)strtoul(g, NULL, 10);
    } else {
      if (!group)
        group = read_in_root(rootfd, "etc/group");
      bool found = false;
      cleanup_free char *copy = group ? xstrdup(group) : NULL;
      for (char *save = NULL, *line = copy ? strtok_r(copy, "\n", &save) : NULL;
           line && !found; line = strtok_r(NULL, "\n", &save)) {
        char *f[4];
        if (split_colon(line, f, 4) >= 3 && strcmp(f[0], g) == 0 &&
            all_digits(f[2])) {
          gid = (gid_t)strtoul(f[2], NULL, 10);
          found = true;
        }
      }
      if (!found)
        return sh_error(err, 400,
                        "unable to find group %s: no matching entries in group "
                        "file",
                        g);
    }
    bool have = false;
    for (size_t k = 0; k < u->n_groups; k++)
      have = have || u->groups[k] == gid;
    if (!have && u->n_groups < ARRAY_SIZE(u->groups))
      u->groups[u->n_groups++] = gid;
  }
  return 0;
}

static void resolv_lines(sh_buf *b, const char *key, const char *const *v) {
  if (!v || !v[0])
    return;
  buf_printf(b, "%s", key);
  for (size_t i = 0; v[i]; i++)
    buf_printf(b, " %s", v[i]);
  buf_printf(b, "\n");
}

/* dockerd's rules (libnetwork resolvconf): what the user gave replaces
 * the host's nameservers, search or options each; without the embedded
 * DNS, loopback servers of the host are dropped (Google's if none is
 * left); with it, 127.0.0.11 is the only server (the given ones are its
 * upstreams) and ndots:0 is added unless an ndots option was given. */
char *exec_resolv_conf(const char *host, const char *const *servers,
                       const char *const *search, const char *const *options,
                       bool embedded) {
  cleanup_free char *copy = xstrdup(host ? host : "");
  sh_buf hs = {0}, hsearch = {0}, hopts = {0};
  for (char *save = NULL, *l = strtok_r(copy, "\n", &save); l;
       l = strtok_r(NULL, "\n", &save)) {
    char word[16], rest[1024];
    if (sscanf(l, " %15s %1023[^\n]", word, rest) != 2)
      continue;
    if (strcmp(word, "nameserver") == 0) {
      if (str_has_prefix(rest, "127.") || strcmp(rest, "::1") == 0)
        continue;
      buf_printf(&hs, "nameserver %s\n", rest);
    } else if (strcmp(word, "search") == 0 || strcmp(word, "domain") == 0) {
      buf_reset(&hsearch);
      buf_printf(&hsearch, "search %s\n", rest);
    } else if (strcmp(word, "options") == 0) {
      buf_printf(&hopts, "options %s\n", rest);
    }
  }
  sh_buf b = {0};
  if (embedded)
    buf_printf(&b, "nameserver 127.0.0.11\n");
  else if (servers && servers[0])
    for (size_t i = 0; servers[i]; i++)
      buf_printf(&b, "nameserver %s\n", servers[i]);
  else if (hs.data)
    buf_printf(&b, "%s", hs.data);
  else
    buf_printf(&b, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
  if (search && search[0])
    resolv_lines(&b, "search", search);
  else if (hsearch.data)
    buf_printf(&b, "%s", hsearch.data);
  bool ndots = false;
  if (options && options[0]) {
    resolv_lines(&b, "options", options);
    for (size_t i = 0; options[i]; i++)
      ndots = ndots || str_has_prefix(options[i], "ndots:");
  } else if (hopts.data) {
    buf_printf(&b, "%s", hopts.data);
    ndots = strstr(hopts.data, "ndots:") != NULL;
  }
  if (embedded && !ndots)
    buf_printf(&b, "options ndots:0\n");
  buf_free(&hs);
  buf_free(&hsearch);
  buf_free(&hopts);
  return b.data;
}
