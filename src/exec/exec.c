/* The executor: container directories, conmon + crun, state from disk. */
#include "exec/internal.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/id.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/util.h"
#include "seccomp/bpf.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/vfs.h>
#include <sys/wait.h>

#define CGROUP_ROOT "/sys/fs/cgroup"
#define DEFAULT_GRACE_NS (10 * NS_PER_SEC)
/* How long an exit may take to show up once the process is gone. */
#define EXIT_FILE_WAIT_NS (2 * NS_PER_SEC)

/* ---- host setup ---- */

static bool fs_is(const char *path, unsigned long magic) {
  struct statfs s;
  return statfs(path, &s) == 0 && (unsigned long)s.f_type == magic;
}

enum exec_cgroup_mode exec_detect_cgroup_mode(void) {
  if (fs_is(CGROUP_ROOT, CGROUP2_SUPER_MAGIC))
    return EXEC_CGROUP_V2;
  if (fs_is(CGROUP_ROOT "/unified", CGROUP2_SUPER_MAGIC)) {
    /* crun only minds a cgroup2 mount that holds controllers. */
    cleanup_free char *ctl = NULL;
    size_t len = 0;
    if (read_file(CGROUP_ROOT "/unified/cgroup.controllers", &ctl, &len,
                  NULL) == 0) {
      for (size_t i = 0; i < len; i++)
        if (!isspace((unsigned char)ctl[i]))
          return EXEC_CGROUP_HYBRID;
    }
  }
  return EXEC_CGROUP_V1;
}

int exec_prepare_host_mounts(sh_err *err) {
  if (exec_detect_cgroup_mode() != EXEC_CGROUP_HYBRID)
    return 0;
  if (unshare(CLONE_NEWNS) < 0) {
    if (errno == EINVAL)
      return sh_error(err, 500,
                      "cgroup hybrid mode: unshare(CLONE_NEWNS) needs a "
                      "single-threaded process; call exec_prepare_host_mounts "
                      "before starting threads");
    return sh_errno(err, errno, "unshare mount namespace");
  }
  /* Slave: mounts made on the host still reach us; ours stay here. */
  if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
    return sh_errno(err, errno, "make / a slave mount");
  if (umount2(CGROUP_ROOT "/unified", MNT_DETACH) < 0)
    return sh_errno(err, errno, "unmount " CGROUP_ROOT "/unified");
  return 1;
}

/* ---- executor ---- */

char *exec_find_bin(const char *name) {
  const char *path = getenv("PATH");
  cleanup_free char *dirs =
      xasprintf("%s:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:"
                "/bin",
                path ? path : "");
  char *save = NULL;
  for (char *d = strtok_r(dirs, ":", &save); d;
       d = strtok_r(NULL, ":", &save)) {
    if (*d != '/')
      continue;
    char *p = xasprintf("%s/%s", d, name);
    if (access(p, X_OK) == 0)
      return p;
    free(p);
  }
  return NULL;
}

static bool detect_swap(enum exec_cgroup_mode mode) {
  if (mode != EXEC_CGROUP_V2)
    return access(CGROUP_ROOT "/memory/memory.memsw.limit_in_bytes", F_OK) == 0;
  /* v2 has no swap file at the root: look at our own cgroup. */
  cleanup_free char *cg = NULL;
  size_t len;
  if (read_file("/proc/self/cgroup", &cg, &len, NULL) < 0)
    return false;
  char *p = strstr(cg, "0::");
  if (!p)
    return false;
  p += 3;
  p[strcspn(p, "\n")] = '\0';
  cleanup_free char *f = xasprintf(CGROUP_ROOT "%s/memory.swap.max",
                                   strcmp(p, "/") ? p : "/init.scope");
  return access(f, F_OK) == 0;
}

/* crun copies its own binary into a sealed memfd and executes that copy on
 * every call (the CVE-2019-5736 defence) unless /proc/self/exe lies on a
 * read-only mount. A read-only bind of the binary gives the same defence (a
 * container cannot write the host's crun through it) and saves each call
 * the copy and the second exec: ~35% of a `crun run`, ~25% of a `crun
 * delete`. NULL when it cannot be made: crun then clones itself, as
 * always. Remade at each start, so an upgraded crun is picked up. */
static char *runtime_ro_bind(const char *bin, const char *exec_root) {
  char *target = xasprintf("%s/crun.bin", exec_root);
  umount2(target, MNT_DETACH); /* a crashed daemon's, if any */
  int fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0700);
  struct statfs sf;
  if (fd < 0 || close(fd) < 0 || mount(bin, target, NULL, MS_BIND, NULL) < 0 ||
      mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0 ||
      statfs(target, &sf) < 0 || !(sf.f_flags & ST_RDONLY)) {
    log_warn("read-only bind of %s on %s: %s; crun clones itself at each "
             "call",
             bin, target, strerror(errno));
    umount2(target, MNT_DETACH);
    free(target);
    return NULL;
  }
  return target;
}

int exec_open(const char *data_root, const char *exec_root, executor **out,
              sh_err *err) {
  if (!data_root || data_root[0] != '/' || !exec_root || exec_root[0] != '/')
    return sh_error(err, 500, "executor: roots must be absolute paths");
  enum exec_cgroup_mode mode = exec_detect_cgroup_mode();
  if (mode == EXEC_CGROUP_HYBRID)
    return sh_error(err, 500,
                    "cgroups in hybrid mode (controllers on " CGROUP_ROOT
                    "/unified): crun refuses them; exec_prepare_host_mounts "
                    "must run first");
  executor *ex = xcalloc(1, sizeof *ex);
  pthread_mutex_init(&ex->meta_mu, NULL);
  ex->data_root = xstrdup(data_root);
  ex->exec_root = xstrdup(exec_root);
  ex->crun_root = xasprintf("%s/crun", exec_root);
  ex->sock_dir = xasprintf("%s/sock", exec_root);
  ex->cgmode = mode;
  ex->swap_limit = detect_swap(mode);
  ex->bpf = seccomp_bpf_cache_new(EXEC_BPF_CACHE_MAX);
  ex->crun = exec_find_bin("crun");
  ex->conmon = exec_find_bin("conmon");
  /* --init runs inside any image: the static build if there is one. */
  ex->init = exec_find_bin("tini-static");
  if (!ex->init)
    ex->init = exec_find_bin("tini");
  if (!ex->crun || !ex->conmon) {
    int rc =
        sh_error(err, 500, "%s not found in PATH (install crun and conmon)",
                 !ex->crun ? "crun" : "conmon");
    exec_close(ex);
    return rc;
  }
  cleanup_free char *c1 = xasprintf("%s/containers", data_root);
  cleanup_free char *c2 = xasprintf("%s/volumes", data_root);
  cleanup_free char *c3 = xasprintf("%s/containers", exec_root);
  const char *dirs[] = {c1, c2, c3, ex->crun_root, ex->sock_dir};
  for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
    if (mkdir_p(dirs[i], 0700, err) < 0) {
      exec_close(ex);
      return -1;
    }
  if (exec_purger_open(ex, err) < 0) {
    exec_close(ex);
    return -1;
  }
  ex->crun_bind = runtime_ro_bind(ex->crun, exec_root);
  if (ex->crun_bind) {
    free(ex->crun);
    ex->crun = xstrdup(ex->crun_bind);
  }
  *out = ex;
  return 0;
}

void exec_close(executor *ex) {
  if (!ex)
    return;
  exec_purger_close(ex);
  free(ex->data_root);
  free(ex->exec_root);
  free(ex->crun_root);
  free(ex->sock_dir);
  if (ex->crun_bind && umount2(ex->crun_bind, MNT_DETACH) == 0)
    unlink(ex->crun_bind);
  free(ex->crun_bind);
  free(ex->crun);
  free(ex->conmon);
  free(ex->init);
  seccomp_bpf_cache_free(ex->bpf);
  pthread_mutex_destroy(&ex->meta_mu);
  free(ex);
}

enum exec_cgroup_mode exec_cgroup_mode(const executor *ex) {
  return ex->cgmode;
}

const char *exec_status_string(enum exec_status s) {
  switch (s) {
  case EXEC_STATUS_CREATED:
    return "created";
  case EXEC_STATUS_RUNNING:
    return "running";
  case EXEC_STATUS_EXITED:
    return "exited";
  }
  return "unknown";
}

/* ---- paths and files ---- */

void exec_paths_init(const executor *ex, const char *id, struct ctr_paths *p) {
  p->dir = xasprintf("%s/containers/%s", ex->data_root, id);
  p->rootfs = xasprintf("%s/rootfs", p->dir);
  p->upper = xasprintf("%s/upper", p->dir);
  p->work = xasprintf("%s/work", p->dir);
  p->lower_empty = xasprintf("%s/empty", p->dir);
  p->config = xasprintf("%s/config.json", p->dir);
  p->meta = xasprintf("%s/shoal.json", p->dir);
  p->state = xasprintf("%s/state.json", p->dir);
  p->log = xasprintf("%s/container.log", p->dir);
  p->hosts = xasprintf("%s/hosts", p->dir);
  p->hostname = xasprintf("%s/hostname", p->dir);
  p->resolv = xasprintf("%s/resolv.conf", p->dir);
  p->health = xasprintf("%s/health.json", p->dir);
  p->run = xasprintf("%s/containers/%s", ex->exec_root, id);
  p->conmon_pid = xasprintf("%s/conmon.pid", p->run);
  p->pidfile = xasprintf("%s/pid", p->run);
  p->exit_dir = xasprintf("%s/exit", p->run);
  p->exit_file = xasprintf("%s/%s", p->exit_dir, id);
  p->persist = xasprintf("%s/persist", p->run);
  p->conmon_log = xasprintf("%s/conmon.log", p->run);
  p->sock_link = xasprintf("%s/%s", ex->sock_dir, id);
  p->crun_state = xasprintf("%s/%s", ex->crun_root, id);
}

void exec_paths_free(struct ctr_paths *p) {
  char **f[] = {&p->dir,         &p->rootfs,     &p->upper,      &p->work,
                &p->lower_empty, &p->config,     &p->meta,       &p->state,
                &p->log,         &p->hosts,      &p->hostname,   &p->resolv,
                &p->run,         &p->conmon_pid, &p->pidfile,    &p->exit_dir,
                &p->exit_file,   &p->persist,    &p->conmon_log, &p->sock_link,
                &p->crun_state,  &p->health};
  for (size_t i = 0; i < ARRAY_SIZE(f); i++) {
    free(*f[i]);
    *f[i] = NULL;
  }
}

bool exec_valid_id(const char *id) {
  if (!id || strlen(id) != 64)
    return false;
  for (const char *p = id; *p; p++)
    if (!isdigit((unsigned char)*p) && !(*p >= 'a' && *p <= 'f'))
      return false;
  return true;
}

int exec_write_json(const char *path, const json_t *j, sh_err *err) {
  char *s = jx_dumps(j, JSON_INDENT(1) | JSON_SORT_KEYS, NULL);
  int rc = write_file_atomic(path, s, strlen(s), 0600, err);
  free(s);
  return rc;
}

json_t *exec_read_json(const char *path) {
  /* One read, not jansson's getc per byte: docker ps reads every
   * container's files. */
  cleanup_free char *s = NULL;
  size_t len = 0;
  if (read_file(path, &s, &len, NULL) < 0)
    return NULL;
  return json_loadb(s, len, 0, NULL);
}

/* Loads shoal.json; 404 in Docker's words when the container is unknown. */
int exec_load_meta(const executor *ex, const char *id, struct ctr_paths *p,
                   json_t **meta, sh_err *err) {
  if (!exec_valid_id(id))
    return sh_error(err, 404, "No such container: %s", id ? id : "");
  exec_paths_init(ex, id, p);
  *meta = exec_read_json(p->meta);
  if (!*meta)
    return sh_error(err, 404, "No such container: %s", id);
  return 0;
}

/* ---- state ---- */

struct runinfo {
  int64_t started_ns;
  pid_t pid;
  uint64_t pid_start;
};

static bool load_runinfo(const struct ctr_paths *p, struct runinfo *ri) {
  memset(ri, 0, sizeof *ri);
  cleanup_json json_t *st = exec_read_json(p->state);
  if (!st)
    return false;
  ri->started_ns = jx_int(st, "StartedNs", 0);
  ri->pid = (pid_t)jx_int(st, "Pid", 0);
  ri->pid_start = (uint64_t)jx_int(st, "PidStart", 0);
  return true;
}

static bool runinfo_alive(const struct runinfo *ri) {
  return ri->pid > 0 && ri->pid_start &&
         exec_proc_starttime(ri->pid) == ri->pid_start;
}

/* The exit file conmon wrote, if any: code and when. */
static bool read_exit(const struct ctr_paths *p, int *code, int64_t *when) {
  char buf[32];
  int fd = open(p->exit_file, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  struct stat st;
  fstat(fd, &st);
  close(fd);
  buf[n > 0 ? n : 0] = '\0';
  *code = n > 0 ? atoi(buf) : -1;
  *when = (int64_t)st.st_mtim.tv_sec * NS_PER_SEC + st.st_mtim.tv_nsec;
  return true;
}

static bool oom_marked(const struct ctr_paths *p) {
  cleanup_free char *a = xasprintf("%s/oom", p->persist);
  cleanup_free char *b = xasprintf("%s/oom", p->dir);
  return access(a, F_OK) == 0 || access(b, F_OK) == 0;
}

/* conmon's PID if it still runs for this container, else 0. */
static pid_t conmon_alive(const struct ctr_paths *p, const char *id) {
  if (!exec_valid_id(id))
    return 0;
  cleanup_free char *s = NULL;
  size_t len;
  if (read_file(p->conmon_pid, &s, &len, NULL) < 0)
    return 0;
  pid_t pid = (pid_t)atoi(s);
  if (pid <= 1)
    return 0;
  cleanup_free char *cmdf = xasprintf("/proc/%d/cmdline", (int)pid);
  cleanup_free char *cmd = NULL;
  size_t n = 0;
  if (read_file(cmdf, &cmd, &n, NULL) < 0 || !memmem(cmd, n, id, 64) ||
      exec_proc_starttime(pid) == 0)
    return 0;
  return pid;
}

/* Waits up to timeout_ns for conmon (pid, checked by conmon_alive) to leave,
 * woken by its pidfd rather than a sleep loop: a mass removal waits here
 * once per container. True once it is gone. */
static bool wait_conmon_exit(const struct ctr_paths *p, const char *id,
                             pid_t pid, int64_t timeout_ns) {
  int fd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0)
    return errno == ESRCH;
  /* Checked after the open: the pidfd is conmon's, not a reused PID's. */
  if (conmon_alive(p, id) != pid) {
    close(fd);
    return true;
  }
  int64_t deadline = clock_mono_ns() + timeout_ns;
  bool gone = false;
  for (;;) {
    int64_t left = deadline - clock_mono_ns();
    if (left <= 0)
      break;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int r = poll(&pfd, 1, (int)(left / NS_PER_MS) + 1);
    if (r > 0) {
      gone = true;
      break;
    }
    if (r < 0 && errno != EINTR)
      break;
  }
  close(fd);
  return gone;
}

/* Waits for conmon's exit file while the process is gone: conmon reaps and
 * writes it right after. */
static bool exit_after_death(const struct ctr_paths *p, const char *id,
                             int *code, int64_t *when) {
  if (read_exit(p, code, when))
    return true;
  pid_t pid = conmon_alive(p, id);
  if (!pid) /* gone: it may have written the file just before leaving */
    return read_exit(p, code, when);
  /* conmon writes the file and then leaves: its exit wakes us at once. */
  wait_conmon_exit(p, id, pid, EXIT_FILE_WAIT_NS);
  return read_exit(p, code, when);
}

/* wait: a process just gone whose exit conmon has not recorded yet waits
 * for the record (up to EXIT_FILE_WAIT_NS); else it still shows as
 * running, as dockerd shows a container until its exit event. */
static int state_of(const struct ctr_paths *p, const json_t *meta, bool wait,
                    struct exec_state *out, sh_err *err) {
  (void)err;
  memset(out, 0, sizeof *out);
  const char *created = jx_str(meta, "Created", NULL);
  if (created)
    clock_parse_rfc3339(created, &out->created_ns, NULL);
  struct runinfo ri;
  bool started = load_runinfo(p, &ri);
  out->started_ns = ri.started_ns;
  int code;
  int64_t when;
  if (read_exit(p, &code, &when)) {
    out->status = EXEC_STATUS_EXITED;
    out->exit_code = code;
    out->finished_ns = when;
    out->oom_killed = oom_marked(p);
    if (code < 0)
      snprintf(out->error, sizeof out->error, "unreadable exit status");
    return 0;
  }
  if (!started) {
    out->status = EXEC_STATUS_CREATED;
    return 0;
  }
  if (runinfo_alive(&ri)) {
    out->status = EXEC_STATUS_RUNNING;
    out->pid = ri.pid;
    out->paused = exec_paused_marked(p);
    return 0;
  }
  if (!wait && conmon_alive(p, jx_str(meta, "Id", ""))) {
    out->status = EXEC_STATUS_RUNNING;
    return 0;
  }
  out->status = EXEC_STATUS_EXITED;
  if (exit_after_death(p, jx_str(meta, "Id", ""), &code, &when)) {
    out->exit_code = code;
    out->finished_ns = when;
    out->oom_killed = oom_marked(p);
  } else {
    /* conmon is gone too (killed, or the host rebooted and took the
     * exec-root with it): the code is lost. */
    out->exit_code = 255;
    snprintf(out->error, sizeof out->error,
             "container process is gone and conmon recorded no exit status");
  }
  return 0;
}

int exec_state(executor *ex, const char *id, struct exec_state *out,
               sh_err *err) {
  cleanup_paths struct ctr_paths p = {0};
  cleanup_json json_t *meta = NULL;
  if (exec_load_meta(ex, id, &p, &meta, err) < 0)
    return -1;
  return state_of(&p, meta, true, out, err);
}

/* ---- start ---- */

static int crun_cmd(const executor *ex, const char *const *args, char **out,
                    sh_err *err) {
  cleanup_free char *root = xasprintf("--root=%s", ex->crun_root);
  const char *argv[16] = {ex->crun, root};
  size_t n = 2;
  for (size_t i = 0; args[i] && n < ARRAY_SIZE(argv) - 1; i++)
    argv[n++] = args[i];
  argv[n] = NULL;
  return exec_proc_run(argv, out, err);
}

static int crun_delete(const executor *ex, const struct ctr_paths *p,
                       const char *id, sh_err *err) {
  if (access(p->crun_state, F_OK) < 0)
    return 0;
  cleanup_free char *out = NULL;
  const char *args[] = {"delete", "--force", id, NULL};
  int rc = crun_cmd(ex, args, &out, err);
  if (rc < 0)
    return rc;
  if (rc != 0 && access(p->crun_state, F_OK) == 0)
    return sh_error(err, 500, "crun delete %s: %s", id, out);
  return 0;
}

/* Reads conmon's one-line sync message: {"data": pid} or {"data": -1,
 * "message": "..."}. */
static int read_sync(int fd, int64_t timeout_ns, char *buf, size_t cap) {
  size_t len = 0;
  int64_t deadline = clock_mono_ns() + timeout_ns;
  while (len + 1 < cap) {
    int64_t left = deadline - clock_mono_ns();
    if (left <= 0)
      return -ETIMEDOUT;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int r = poll(&pfd, 1, (int)(left / NS_PER_MS) + 1);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      continue;
    ssize_t n = read(fd, buf + len, cap - 1 - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    len += (size_t)n;
    if (memchr(buf, '\n', len))
      break;
  }
  buf[len] = '\0';
  return (int)len;
}

static char *tail_of_file(const char *path) {
  cleanup_free char *s = NULL;
  size_t len = 0;
  if (read_file(path, &s, &len, NULL) < 0 || len == 0)
    return xstrdup("");
  while (len && s[len - 1] == '\n')
    s[--len] = '\0';
  char *last = strrchr(s, '\n');
  return xstrdup(last ? last + 1 : s);
}

/* Docker answers 400 for what the user can fix (no such executable). */
static int runtime_error(sh_err *err, const char *what, const char *msg) {
  bool user = strstr(msg, "not found") || strstr(msg, "No such file") ||
              strstr(msg, "ermission denied") || strstr(msg, "not a directory");
  return sh_error(err, user ? 400 : 500, "OCI runtime %s failed: %s", what,
                  *msg ? msg : "unknown error");
}

static int start_conmon(executor *ex, const char *id, const json_t *meta,
                        const struct ctr_paths *p, pid_t *pid, sh_err *err) {
  int sp[2];
  if (pipe2(sp, O_CLOEXEC) < 0)
    return sh_errno(err, errno, "pipe");
  cleanup_fd int rd = sp[0];
  cleanup_fd int wr = sp[1];
  cleanup_fd int logfd =
      open(p->conmon_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (logfd < 0)
    return sh_errno(err, errno, "open %s", p->conmon_log);
  cleanup_free char *name = xstrdup(jx_str(meta, "Shoal.Name", id));
  cleanup_free char *log = xasprintf("k8s-file:%s", p->log);
  cleanup_free char *root = xasprintf("--root=%s", ex->crun_root);
  const char *argv[] = {ex->conmon,
                        "--api-version",
                        "1",
                        "-c",
                        id,
                        "-u",
                        id,
                        "-n",
                        name,
                        "-r",
                        ex->crun,
                        "-b",
                        p->dir,
                        "-p",
                        p->pidfile,
                        "--conmon-pidfile",
                        p->conmon_pid,
                        "-l",
                        log,
                        "--exit-dir",
                        p->exit_dir,
                        "--persist-dir",
                        p->persist,
                        "--socket-dir-path",
                        ex->sock_dir,
                        "--runtime-arg",
                        root,
                        NULL,
                        NULL,
                        NULL,
                        NULL};
  /* docker run -i: conmon holds the container's stdin open for attach
   * clients (closed when the first one leaves, unless !StdinOnce). */
  size_t na = ARRAY_SIZE(argv) - 4;
  bool tty = jx_bool(meta, "Config.Tty", false);
  /* -t: conmon makes the console socket for crun, holds the pty master,
   * logs what it reads as stdout and takes resizes on <bundle>/ctl. */
  if (tty)
    argv[na++] = "-t";
  if (jx_bool(meta, "Config.OpenStdin", false)) {
    argv[na++] = "--stdin";
    /* A terminal's input stays open across attach clients: one detaching
     * (ctrl-p ctrl-q) is not the end of its input. */
    if (tty || !jx_bool(meta, "Config.StdinOnce", false))
      argv[na++] = "--leave-stdin-open";
  }
  const char *envp[] = {
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      "_OCI_SYNCPIPE=3", NULL};
  struct spawn_opts o = {.argv = argv,
                         .envp = envp,
                         .fd_out = logfd,
                         .fd_err = logfd,
                         .fd3 = wr,
                         .cwd = p->dir};
  pid_t cpid;
  if (spawn_proc(&o, &cpid, err) < 0)
    return -1;
  close(wr);
  wr = -1;
  /* conmon forks at once; the first process only hands over. */
  int st = spawn_wait(cpid);
  if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    cleanup_free char *why = tail_of_file(p->conmon_log);
    return sh_error(err, 500, "conmon failed: %s", *why ? why : "no output");
  }
  char buf[4096];
  int n = read_sync(rd, 60 * NS_PER_SEC, buf, sizeof buf);
  if (n == -ETIMEDOUT)
    return sh_error(err, 500, "conmon: no answer from crun create in 60s");
  cleanup_json json_t *msg = json_loads(buf, JSON_DISABLE_EOF_CHECK, NULL);
  json_int_t data = msg ? jx_int(msg, "data", -1) : -1;
  if (data <= 0) {
    cleanup_free char *why =
        msg ? xstrdup(jx_str(msg, "message", "")) : tail_of_file(p->conmon_log);
    for (size_t k = strlen(why); k > 0 && why[k - 1] == '\n'; k--)
      why[k - 1] = '\0';
    return runtime_error(err, "create", why);
  }
  *pid = (pid_t)data;
  return 0;
}

int exec_ensure_rootfs(const json_t *meta, const struct ctr_paths *p,
                       sh_err *err) {
  if (exec_overlay_mounted(p->rootfs))
    return 0;
  /* A restarted daemon in a new mount namespace: mount it again here. */
  json_t *layers = jx_get(meta, "Shoal.Layers");
  size_t n = json_array_size(layers);
  const char **v = xcalloc(n + 1, sizeof *v);
  for (size_t i = 0; i < n; i++)
    v[i] = json_string_value(json_array_get(layers, i));
  int rc =
      exec_overlay_mount(v, p->lower_empty, p->upper, p->work, p->rootfs, err);
  free(v);
  return rc;
}

/* exec_load_meta, then the container's state (waiting for an exit record
 * being written). */
static int load_with_state(executor *ex, const char *id, struct ctr_paths *p,
                           json_t **meta, struct exec_state *st, sh_err *err) {
  if (exec_load_meta(ex, id, p, meta, err) < 0)
    return -1;
  return state_of(p, *meta, true, st, err);
}

int exec_start(executor *ex, const char *id, pid_t *pid_out, sh_err *err) {
  exec_purger_busy(ex);
  cleanup_paths struct ctr_paths p = {0};
  cleanup_json json_t *meta = NULL;
  struct exec_state st;
  if (load_with_state(ex, id, &p, &meta, &st, err) < 0)
    return -1;
  if (st.status == EXEC_STATUS_RUNNING) {
    if (pid_out)
      *pid_out = st.pid;
    return 1;
  }
  if (st.status == EXEC_STATUS_EXITED)
    return sh_error(err, 409, "container %s has already run; create a new one",
                    id);
  /* Leftovers of a start that died half-way. */
  if (crun_delete(ex, &p, id, err) < 0)
    return -1;
  if (exec_ensure_rootfs(meta, &p, err) < 0)
    return -1;
  const char *dirs[] = {p.run, p.exit_dir, p.persist};
  for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
    if (mkdir_p(dirs[i], 0700, err) < 0)
      return -1;
  unlink(p.pidfile);
  unlink(p.conmon_pid);
  exec_set_paused_mark(&p, false);

  pid_t pid = 0;
  if (start_conmon(ex, id, meta, &p, &pid, err) < 0) {
    crun_delete(ex, &p, id, NULL);
    return -1;
  }
  uint64_t pid_start = exec_proc_starttime(pid);
  cleanup_free char *out = NULL;
  const char *args[] = {"start", id, NULL};
  int rc = crun_cmd(ex, args, &out, err);
  if (rc != 0) {
    crun_delete(ex, &p, id, NULL);
    return rc < 0 ? rc : runtime_error(err, "start", out);
  }
  cleanup_json json_t *state =
      json_pack("{s:I,s:i,s:I}", "StartedNs", (json_int_t)clock_wall_ns(),
                "Pid", (int)pid, "PidStart", (json_int_t)pid_start);
  /* The run state (PID, start time) is moot after a reboot: no fsync on
   * the start path. */
  cleanup_free char *js = jx_dumps(state, JSON_COMPACT, NULL);
  if (write_file_replace(p.state, js, strlen(js), 0600, err) < 0)
    return -1;
  if (pid_out)
    *pid_out = pid;
  return 0;
}

static void reap_conmon(const struct ctr_paths *p, const char *id);

int exec_rerun(executor *ex, const char *id, pid_t *pid, sh_err *err) {
  cleanup_paths struct ctr_paths p = {0};
  cleanup_json json_t *meta = NULL;
  struct exec_state st;
  if (load_with_state(ex, id, &p, &meta, &st, err) < 0)
    return -1;
  if (st.status == EXEC_STATUS_EXITED) {
    /* The next run's state replaces the last one's, as dockerd's. */
    if (crun_delete(ex, &p, id, err) < 0)
      return -1;
    reap_conmon(&p, id);
    unlink(p.exit_file);
    unlink(p.state);
    cleanup_free char *oom = xasprintf("%s/oom", p.persist);
    unlink(oom);
  }
  return exec_start(ex, id, pid, err);
}

/* ---- stop, kill ---- */

static int signal_pid(const struct runinfo *ri, int sig, sh_err *err) {
  /* A pidfd pins the process: a recycled PID cannot get the signal. */
  int fd = (int)syscall(SYS_pidfd_open, ri->pid, 0);
  if (fd < 0)
    return errno == ESRCH ? 0 : sh_errno(err, errno, "pidfd_open");
  int rc = 0;
  if (exec_proc_starttime(ri->pid) == ri->pid_start &&
      syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0) < 0 && errno != ESRCH)
    rc = sh_errno(err, errno, "signal %d", sig);
  close(fd);
  return rc;
}

/* Waits until conmon recorded the exit (or the process is gone for good). */
static bool wait_exit(const struct ctr_paths *p, const struct runinfo *ri,
                      int64_t timeout_ns) {
  int ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (ifd >= 0)
    inotify_add_watch(ifd, p->exit_dir,
                      IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE);
  int64_t now = clock_mono_ns(), deadline = now + timeout_ns, dead_since = 0;
  bool done = false;
  for (;;) {
    if (access(p->exit_file, F_OK) == 0) {
      done = true;
      break;
    }
    now = clock_mono_ns();
    if (!runinfo_alive(ri)) {
      if (!dead_since)
        dead_since = now;
      else if (now - dead_since > EXIT_FILE_WAIT_NS) {
        done = true;
        break;
      }
    }
    if (now >= deadline)
      break;
    int64_t left = deadline - now;
    int ms = left > 100 * NS_PER_MS ? 100 : (int)(left / NS_PER_MS) + 1;
    struct pollfd pfd = {.fd = ifd, .events = POLLIN};
    if (ifd >= 0 && poll(&pfd, 1, ms) > 0) {
      char ev[1024];
      while (read(ifd, ev, sizeof ev) > 0) {
      }
    } else if (ifd < 0) {
      usleep((useconds_t)ms * 1000);
    }
  }
  if (ifd >= 0)
    close(ifd);
  return done;
}

int exec_stop(executor *ex, const char *id, int sig, int64_t grace_ns,
              sh_err *err) {
  cleanup_paths struct ctr_paths p = {0};
  cleanup_json json_t *meta = NULL;
  if (exec_load_meta(ex, id, &p, &meta, err) < 0)
    return -1;
  struct runinfo ri;
  if (!load_runinfo(&p, &ri) || access(p.exit_file, F_OK) == 0 ||
      !runinfo_alive(&ri))
    return 1;
  if (sig <= 0)
    sig = (int)jx_int(meta, "Shoal.StopSignal", SIGTERM);
  if (grace_ns < 0)
    grace_ns = DEFAULT_GRACE_NS;
  if (sig != SIGKILL) {
    if (signal_pid(&ri, sig, err) < 0)
      return -1;
    if (wait_exit(&p, &ri, grace_ns))
      return 0;
  }
  if (signal_pid(&ri, SIGKILL, err) < 0)
    return -1;
  if (!wait_exit(&p, &ri, 10 * NS_PER_SEC))
    return sh_error(err, 500, "container %s did not exit after SIGKILL", id);
  return 0;
}

int exec_pidfd(executor *ex, const char *id, int *pidfd, int *stop_signal,
               sh_err *err) {
  *pidfd = -1;
  cleanup_paths struct ctr_paths p = {0};
  cleanup_json json_t *meta = NULL;
  if (exec_load_meta(ex, id, &p, &meta, err) < 0)
    return -1;
  if (stop_signal)
    *stop_signal = (int)jx_int(meta, "Shoal.StopSignal", SIGTERM);
  struct runinfo ri;
  if (!load_runinfo(&p, &ri) || access(p.exit_file, F_OK) == 0)
    return 1;
  int fd = (int)syscall(SYS_pidfd_open, ri.pid, 0);
  if (fd < 0)
    return errno == ESRCH ? 1 : sh_errno(err, errno, "pidfd_open");
  /* Checked after the open: a match means fd is the container's process. */
  if (exec_proc_starttime(ri.pid) != ri.pid_start) {
    close(fd);
    return 1;
  }
  *pidfd = fd;
  return 0;
}

int exec_kill(executor *ex, const char *id, int sig, sh_err *err) {
  cleanup_paths struct ctr_paths p = {0};
  cleanup_json json_t *meta = NULL;
  if (exec_load_meta(ex, id, &p, &meta, err) < 0)
    return -1;
  if (sig <= 0 || sig > 64)
    return sh_error(err, 400, "Invalid signal: %d", sig);
  struct runinfo ri;
  if (!load_runinfo(&p, &ri) || access(p.exit_file, F_OK) == 0 ||
      !runinfo_alive(&ri))
    return sh_error(err, 409, "Container %s is not running", id);
  return signal_pid(&ri, sig, err);
}

/* ---- remove ---- */

/* conmon normally leaves once the container is gone; make sure. */
static void reap_conmon(const struct ctr_paths *p, const char *id) {
  pid_t pid = conmon_alive(p, id);
  if (!pid || wait_conmon_exit(p, id, pid, 2 * NS_PER_SEC))
    return;
  if (conmon_alive(p, id) == pid)
    kill(pid, SIGKILL);
}

static bool cgroup_procs_empty(const char *root, const char *cg) {
  cleanup_free char *path = xasprintf("%s%s/cgroup.procs", root, cg);
  cleanup_free char *procs = NULL;
  size_t len = 0;
  sh_err e = {0};
  if (read_file(path, &procs, &len, &e) < 0)
    return e.status == 404;
  for (size_t i = 0; i < len; i++)
    if (!isspace((unsigned char)procs[i]))
      return false;
  return true;
}

static void remove_cgroups(const executor *ex, const char *cg) {
  if (ex->cgmode == EXEC_CGROUP_V2) {
    cleanup_free char *d = xasprintf(CGROUP_ROOT "%s", cg);
    rmdir(d);
    return;
  }
  DIR *dir = opendir(CGROUP_ROOT);
  if (!dir)
    return;
  struct dirent *de;
  while ((de = readdir(dir))) {
    if (de->d_name[0] == '.')
      continue;
    cleanup_free char *d = xasprintf(CGROUP_ROOT "/%s%s", de->d_name, cg);
    rmdir(d);
  }
  closedir(dir);
}

/* No process in any of the container's cgroups (a missing one is empty). */
static bool cgroups_empty(const executor *ex, const char *cg) {
  if (ex->cgmode == EXEC_CGROUP_V2)
    return cgroup_procs_empty(CGROUP_ROOT, cg);
  DIR *dir = opendir(CGROUP_ROOT);
  if (!dir)
    return false;
  bool empty = true;
  struct dirent *de;
  while (empty && (de = readdir(dir))) {
    if (de->d_name[0] == '.')
      continue;
    cleanup_free char *root = xasprintf(CGROUP_ROOT "/%s", de->d_name);
    empty = cgroup_procs_empty(root, cg);
  }
  closedir(dir);
  return empty;
}

/* An exited container whose cgroups hold no process needs no `crun
 * delete` (a fork, exec and dynamic link per container: most of a mass
 * removal's CPU): what that would do is remove crun's state directory
 * under our --root and the cgroups, which remove_cgroups does. One with a
 * process left in a cgroup (no PID namespace of its own) still goes
 * through `crun delete --force`, which kills it. */
int exec_remove(executor *ex, const char *id, bool force, sh_err *err) {
  cleanup_paths struct ctr_paths p = {0};
  cleanup_json json_t *meta = NULL;
  if (exec_load_meta(ex, id, &p, &meta, err) < 0)
    return -1;
  struct exec_state st;
  state_of(&p, meta, true, &st, err);
  if (st.status == EXEC_STATUS_RUNNING) {
    if (!force)
      return sh_error(err, 409,
                      "You cannot remove a running container %s. Stop the "
                      "container before attempting removal or force remove",
                      id);
    if (exec_stop(ex, id, SIGKILL, 0, err) < 0)
      return -1;
  }
  const char *cg = jx_str(meta, "Shoal.Cgroup", "/shoal/none");
  if (st.status == EXEC_STATUS_EXITED && cgroups_empty(ex, cg)) {
    if (exec_trash(ex, p.crun_state, false, err) < 0)
      return -1;
  } else if (crun_delete(ex, &p, id, err) < 0) {
    return -1;
  }
  reap_conmon(&p, id);
  /* Not mounted here (a daemon restarted in a new namespace) is fine: the
   * old namespace's mount goes away with its last process. */
  if (umount2(p.rootfs, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
    return sh_errno(err, errno, "unmount %s", p.rootfs);
  remove_cgroups(ex, cg);
  unlink(p.sock_link);
  if (exec_trash(ex, p.run, false, err) < 0 ||
      exec_trash(ex, p.dir, true, err) < 0)
    return -1;
  return 0;
}

/* ---- list, inspect, logs ---- */

static int entry_cmp(const void *a, const void *b) {
  const struct exec_entry *x = a, *y = b;
  if (x->created_ns != y->created_ns)
    return x->created_ns < y->created_ns ? -1 : 1;
  return strcmp(x->id, y->id);
}

int exec_list(executor *ex, struct exec_entry **out, size_t *n, sh_err *err) {
  cleanup_free char *path = xasprintf("%s/containers", ex->data_root);
  DIR *d = opendir(path);
  if (!d)
    return sh_errno(err, errno, "open %s", path);
  struct exec_entry *v = NULL;
  size_t len = 0, cap = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (!exec_valid_id(de->d_name))
      continue;
    cleanup_free char *mp = xasprintf("%s/%s/shoal.json", path, de->d_name);
    cleanup_json json_t *meta = exec_read_json(mp);
    if (!meta) /* being created or removed */
      continue;
    if (len == cap) {
      cap = cap ? cap * 2 : 16;
      v = xrealloc(v, cap * sizeof *v);
    }
    struct exec_entry *e = &v[len++];
    memset(e, 0, sizeof *e);
    snprintf(e->id, sizeof e->id, "%s", de->d_name);
    e->name = xstrdup(jx_str(meta, "Shoal.Name", ""));
    clock_parse_rfc3339(jx_str(meta, "Created", ""), &e->created_ns, NULL);
  }
  closedir(d);
  if (len)
    qsort(v, len, sizeof *v, entry_cmp);
  *out = v;
  *n = len;
  return 0;
}

void exec_list_free(struct exec_entry *list, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(list[i].name);
  free(list);
}

static json_t *time_json(int64_t ns) {
  char buf[64];
  if (!ns)
    return json_string("0001-01-01T00:00:00Z");
  return json_string(clock_format_rfc3339(ns, buf, sizeof buf));
}

json_t *exec_event_attrs(const json_t *info) {
  const json_t *labels = jx_get(info, "Config.Labels");
  json_t *attrs =
      json_is_object(labels) ? json_deep_copy(labels) : json_object();
  json_object_set_new(attrs, "image",
                      json_string(jx_str(info, "Config.Image", "")));
  const char *name = jx_str(info, "Name", "");
  json_object_set_new(attrs, "name",
                      json_string(name[0] == '/' ? name + 1 : name));
  return attrs;
}

int exec_inspect_json(executor *ex, const char *id, json_t **out, sh_err *err) {
  cleanup_paths struct ctr_paths p = {0};
  json_t *meta = NULL;
  if (exec_load_meta(ex, id, &p, &meta, err) < 0)
    return -1;
  struct exec_state st;
  state_of(&p, meta, false, &st, err);
  json_object_del(meta, "Shoal");
  json_object_set_new(
      meta, "State",
      json_pack("{s:s,s:b,s:b,s:b,s:b,s:b,s:i,s:i,s:s,s:o,s:o}", "Status",
                st.paused ? "paused" : exec_status_string(st.status), "Running",
                st.status == EXEC_STATUS_RUNNING, "Paused", st.paused,
                "Restarting", 0, "OOMKilled", st.oom_killed, "Dead", 0, "Pid",
                (int)st.pid, "ExitCode", st.exit_code, "Error", st.error,
                "StartedAt", time_json(st.started_ns), "FinishedAt",
                time_json(st.finished_ns)));
  /* As dockerd: State.Health for a container with a healthcheck. */
  json_t *health = exec_read_json(p.health);
  if (json_is_object(health) && jx_get(meta, "Config.Healthcheck"))
    json_object_set_new(json_object_get(meta, "State"), "Health", health);
  else
    json_decref(health);
  *out = meta;
  return 0;
}

struct inspected {
  json_t *info;
  int64_t created_ns;
  const char *id;
};

static int inspected_newest_first(const void *a, const void *b) {
  const struct inspected *x = a, *y = b;
  if (x->created_ns != y->created_ns)
    return x->created_ns > y->created_ns ? -1 : 1;
  return strcmp(y->id, x->id);
}

int exec_inspect_all(executor *ex, json_t **out, sh_err *err) {
  cleanup_free char *path = xasprintf("%s/containers", ex->data_root);
  DIR *d = opendir(path);
  if (!d)
    return sh_errno(err, errno, "open %s", path);
  struct inspected *v = NULL;
  size_t len = 0, cap = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    json_t *info = NULL;
    /* Being created or removed: not listed. */
    if (!exec_valid_id(de->d_name) ||
        exec_inspect_json(ex, de->d_name, &info, NULL) < 0)
      continue;
    if (len == cap) {
      cap = cap ? cap * 2 : 16;
      v = xrealloc(v, cap * sizeof *v);
    }
    v[len].info = info;
    v[len].id = jx_str(info, "Id", "");
    v[len].created_ns = 0;
    clock_parse_rfc3339(jx_str(info, "Created", ""), &v[len].created_ns, NULL);
    len++;
  }
  closedir(d);
  if (len)
    qsort(v, len, sizeof *v, inspected_newest_first);
  json_t *arr = json_array();
  for (size_t i = 0; i < len; i++)
    json_array_append_new(arr, v[i].info);
  free(v);
  *out = arr;
  return 0;
}

struct logs_ctx {
  const struct ctr_paths *p;
  const char *id;
};

/* Started, and neither the process nor conmon (which writes the log and
 * then the exit file) is left: nothing more will come. */
static bool logs_gone(void *arg) {
  struct logs_ctx *c = arg;
  struct runinfo ri;
  /* Removed (docker run --rm) while followed: its exit file went too. */
  if (access(c->p->meta, F_OK) != 0)
    return true;
  return load_runinfo(c->p, &ri) && !runinfo_alive(&ri) &&
         !conmon_alive(c->p, c->id);
}

int exec_logs(executor *ex, const char *id, const struct exec_logs_opts *o,
              sh_err *err) {
  cleanup_paths struct ctr_paths p = {0};
  cleanup_json json_t *meta = NULL;
  if (exec_load_meta(ex, id, &p, &meta, err) < 0)
    return -1;
  struct logs_ctx c = {&p, id};
  return exec_logs_file(p.log, p.exit_file, logs_gone, &c, o, err);
}

int exec_attach_stdin(executor *ex, const char *id, int *fd, sh_err *err) {
  *fd = -1;
  if (!exec_valid_id(id))
    return sh_error(err, 404, "No such container: %s", id);
  /* The socket's path may be longer than sun_path: through the
   * directory's descriptor, as conmon binds it. */
  cleanup_free char *dir = xasprintf("%s/%s", ex->sock_dir, id);
  cleanup_fd int dfd = open(dir, O_PATH | O_CLOEXEC);
  if (dfd < 0)
    return sh_error(err, 409, "container %s is not running", id);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "/proc/self/fd/%d/attach", dfd);
  int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (s < 0)
    return sh_errno(err, errno, "socket");
  if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
    int e = errno;
    close(s);
    if (e == ENOENT || e == ECONNREFUSED)
      return sh_error(err, 409, "container %s is not running", id);
    return sh_errno(err, e, "connect to conmon's attach socket");
  }
  *fd = s;
  return 0;
}

bool exec_tty(executor *ex, const char *id) {
  cleanup_paths struct ctr_paths p = {0};
  cleanup_json json_t *meta = NULL;
  return exec_load_meta(ex, id, &p, &meta, NULL) == 0 &&
         jx_bool(meta, "Config.Tty", false);
}

int exec_tty_resize(executor *ex, const char *id, unsigned rows, unsigned cols,
                    sh_err *err) {
  cleanup_paths struct ctr_paths p = {0};
  cleanup_json json_t *meta = NULL;
  struct exec_state st;
  if (load_with_state(ex, id, &p, &meta, &st, err) < 0)
    return -1;
  if (st.status != EXEC_STATUS_RUNNING)
    return sh_error(err, 409, "Container %s is not running", id);
  if (!jx_bool(meta, "Config.Tty", false))
    return 0;
  if (rows > 1000 || cols > 1000)
    return sh_error(err, 400,
                    "cannot resize a terminal to %ux%u: at most 1000x1000",
                    rows, cols);
  /* Non-blocking: ENXIO when conmon (the fifo's reader) is gone. */
  cleanup_free char *ctl = xasprintf("%s/ctl", p.dir);
  cleanup_fd int fd = open(ctl, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return errno == ENXIO || errno == ENOENT
               ? sh_error(err, 409, "Container %s is not running", id)
               : sh_errno(err, errno, "open %s", ctl);
  char line[64];
  int n = snprintf(line, sizeof line, "1 %u %u\n", rows, cols);
  if (write(fd, line, (size_t)n) != n)
    return sh_errno(err, errno, "resize %s", id);
  return 0;
}

/* ---- health probes ---- */

int exec_probe_argv(executor *ex, const char *id, const json_t *cmd,
                    char ***argv_out, char **pidfile, sh_err *err) {
  struct exec_cmd_opts o = {.cmd = cmd};
  cleanup_free char *file = NULL;
  if (exec_cmd_process(ex, id, &o, "probe", &file, pidfile, err) < 0)
    return -1;
  char **argv = xcalloc(7, sizeof *argv);
  argv[0] = xstrdup(ex->crun);
  argv[1] = xasprintf("--root=%s", ex->crun_root);
  argv[2] = xstrdup("exec");
  argv[3] = xasprintf("--process=%s", file);
  argv[4] = xasprintf("--pid-file=%s", *pidfile);
  argv[5] = xstrdup(id);
  *argv_out = argv;
  return 0;
}

void exec_argv_free(char **argv) {
  for (char **a = argv; a && *a; a++)
    free(*a);
  free(argv);
}

int exec_set_health(executor *ex, const char *id, const json_t *health,
                    sh_err *err) {
  if (!exec_valid_id(id))
    return sh_error(err, 404, "No such container: %s", id);
  cleanup_free char *path =
      xasprintf("%s/containers/%s/health.json", ex->data_root, id);
  cleanup_free char *s = jx_dumps(health, JSON_COMPACT, NULL);
  if (!s)
    return sh_error(err, 500, "health of %s: cannot encode", id);
  return write_file_replace(path, s, strlen(s), 0600, err);
}

int exec_find(executor *ex, const char *ref, char id[65], sh_err *err) {
  struct exec_entry *list = NULL;
  size_t n = 0;
  if (exec_list(ex, &list, &n, err) < 0)
    return -1;
  const char *name = ref[0] == '/' ? ref + 1 : ref;
  int found = 0;
  for (size_t i = 0; i < n; i++)
    if (strcmp(list[i].id, ref) == 0 || strcmp(list[i].name, name) == 0) {
      snprintf(id, 65, "%s", list[i].id);
      found = 1;
      break;
    }
  for (size_t i = 0; !found && *ref && i < n; i++)
    if (str_has_prefix(list[i].id, ref)) {
      snprintf(id, 65, "%s", list[i].id);
      found = found ? 2 : 1;
      for (size_t k = i + 1; k < n; k++)
        if (str_has_prefix(list[k].id, ref))
          found = 2;
      break;
    }
  exec_list_free(list, n);
  if (found == 1)
    return 0;
  if (found > 1)
    return sh_error(err, 400, "multiple IDs found with provided prefix: %s",
                    ref);
  return sh_error(err, 404, "No such container: %s", ref);
}
