/* Private to src/exec: shared state, paths, and the pure pieces (OCI
 * config, resources, users, log parsing) that the unit tests reach. */
#ifndef SHOAL_EXEC_INTERNAL_H
#define SHOAL_EXEC_INTERNAL_H

#include "core/spawn.h"
#include "exec/exec.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct sh_err;

/* Distinct seccomp programs kept: one per (profile, bounding caps) in use
 * on the node; Docker's default profile's is ~12 KB of base64. */
#define EXEC_BPF_CACHE_MAX 32

struct executor {
  char *data_root, *exec_root;
  char *crun, *conmon; /* absolute paths of the binaries */
  char *crun_bind;     /* crun as a read-only bind (runtime_ro_bind), or NULL */
  char *crun_root, *sock_dir;
  enum exec_cgroup_mode cgmode;
  bool swap_limit; /* the kernel accounts swap: set memory+swap too */
  char *init;      /* --init's binary (tini, static if there is one); NULL:
                      not installed */
  /* Compiled seccomp programs, handed to crun (seccomp/bpf.h). */
  struct seccomp_bpf_cache *bpf;
  /* shoal.json's read-modify-writes (rename, meta_update, update): a
   * standalone container's RestartCount and a docker update at once must
   * not lose either. */
  pthread_mutex_t meta_mu;
  struct exec_purger *purger; /* purge.c */
};

/* purge.c: <data-root>/trash and <exec-root>/trash, and the thread that
 * empties them (started by the first exec_trash, or at open for what a
 * previous daemon left). */
int exec_purger_open(executor *ex, struct sh_err *err);
void exec_purger_close(executor *ex);
/* Moves path (under the data root if on_data_root, else the exec root)
 * into that root's trash for the purge thread; deletes it at once if it
 * cannot be moved. */
int exec_trash(executor *ex, const char *path, bool on_data_root,
               struct sh_err *err);
/* A container is being created: a due purge waits for a pause. */
void exec_purger_busy(executor *ex);

/* Every path of one container (see exec.h). */
struct ctr_paths {
  char *dir, *rootfs, *upper, *work, *lower_empty, *config, *meta, *state, *log,
      *hosts, *hostname, *resolv;
  char *health; /* health.json: State.Health, written by the prober */
  char *run, *conmon_pid, *pidfile, *exit_dir, *exit_file, *persist,
      *conmon_log, *sock_link, *crun_state;
};
void exec_paths_init(const executor *ex, const char *id, struct ctr_paths *p);
void exec_paths_free(struct ctr_paths *p);
static inline void ctr_paths_freep(struct ctr_paths *p) {
  exec_paths_free(p);
}
#define cleanup_paths __attribute__((cleanup(ctr_paths_freep)))

bool exec_valid_id(const char *id);
int exec_write_json(const char *path, const json_t *j, struct sh_err *err);
json_t *exec_read_json(const char *path);
/* Loads shoal.json; 404 "No such container: <id>" if unknown. */
int exec_load_meta(const executor *ex, const char *id, struct ctr_paths *p,
                   json_t **meta, struct sh_err *err);

/* name's absolute path in PATH (and the usual bin directories), or NULL. */
char *exec_find_bin(const char *name);
/* Mounts the container's overlay at p->rootfs unless it is. */
int exec_ensure_rootfs(const json_t *meta, const struct ctr_paths *p,
                       struct sh_err *err);
/* ctl.c: the paused marker (<run>/paused), set by exec_pause. */
bool exec_paused_marked(const struct ctr_paths *p);
void exec_set_paused_mark(const struct ctr_paths *p, bool on);

/* ---- spec.c: from image config + spec to what runs (pure) ---- */

/* The process as Docker composes it from image config and spec. */
struct exec_process {
  json_t *entrypoint, *cmd; /* arrays or json null, as Config shows them */
  json_t *args;             /* entrypoint + cmd: what runs */
  json_t *env;              /* Config.Env: image env, spec env wins */
  json_t *labels;           /* image labels, spec labels win */
  char *workdir, *user;     /* user "" means root */
  char *stop_signal;        /* as given (Config.StopSignal), NULL if none */
  int stop_signo;           /* resolved, SIGTERM by default */
};
int exec_compose(const struct exec_spec *s, struct exec_process *out,
                 struct sh_err *err);
void exec_process_free(struct exec_process *p);

struct exec_user {
  uid_t uid;
  gid_t gid;
  gid_t groups[64]; /* supplementary groups from /etc/group */
  size_t n_groups;
  char home[256];
};
/* Resolves "uid[:gid]" / "name[:group]" against etc/passwd and etc/group
 * of the root filesystem opened as rootfd (lookups never leave it). */
int exec_resolve_user(int rootfd, const char *user, struct exec_user *out,
                      struct sh_err *err);

/* Adds --group's groups (names from etc/group of the rootfs, numbers as
 * they are) to u's supplementary groups. 400 for an unknown name. */
int exec_resolve_groups(int rootfd, const char *const *groups,
                        struct exec_user *u, struct sh_err *err);
/* The container's /etc/resolv.conf from the host's and DNSConfig. */
char *exec_resolv_conf(const char *host, const char *const *servers,
                       const char *const *search, const char *const *options,
                       bool embedded);

/* Validates limits as dockerd does and maps them to OCI linux.resources
 * (crun writes cpu.max / memory.max / pids.max on cgroup v2, the
 * cfs/limit_in_bytes/pids.max files on v1). *out is a new object. */
int exec_oci_resources(const struct exec_resources *r, bool swap_limit,
                       json_t **out, struct sh_err *err);

/* Where limits land in the cgroup filesystem, relative to the cgroup
 * mount (v1: "<controller>/<cgroup path>/<file>", v2: "<cgroup>/<file>"). */
struct exec_cgroup_file {
  char path[160];
  char value[64];
};
size_t exec_cgroup_files(enum exec_cgroup_mode mode, const char *cgroup,
                         const struct exec_resources *r, bool swap_limit,
                         struct exec_cgroup_file *out, size_t max);

struct exec_oci_mount {
  bool tmpfs; /* else bind */
  const char *source, *target;
  bool read_only;
  int64_t size;
  unsigned mode;
};
struct exec_oci_input {
  const char *rootfs;
  bool read_only;
  const json_t *args, *env; /* env: the full process environment */
  const char *cwd;
  const struct exec_user *user;
  const char *hostname;
  const struct exec_oci_mount *mounts;
  size_t n_mounts;
  const char *hosts_path, *hostname_path, *resolv_path;
  const json_t *resources;
  const char *netns_path;
  const char *cgroups_path;
  enum exec_cgroup_mode cgmode;
  const struct seccomp_profile *seccomp; /* NULL: no linux.seccomp */
  const char *const *caps; /* NULL-terminated; NULL: Docker's 14 */
  bool no_new_privileges;
  int oom_score_adj;
  const char *init_path; /* --init: mounted at /sbin/docker-init, PID 1 */
  const json_t *sysctls; /* object: added to dockerd's */
  const json_t *rlimits; /* OCI process.rlimits; NULL: none */
  bool terminal;         /* process.terminal: crun makes a pty */
  unsigned console_rows, console_cols; /* process.consoleSize; 0: none */
};
#define EXEC_INIT_PATH "/sbin/docker-init"
/* The OCI runtime config, Docker's defaults included (caps or the 14,
 * masked and read-only paths, /dev /proc /sys mounts, device rules), and
 * linux.seccomp from the profile for this host and those capabilities. */
json_t *exec_oci_config(const struct exec_oci_input *in);

/* ---- logs.c: conmon's k8s-file log to Docker's stream ---- */

struct k8s_line {
  int64_t ts;   /* wall ns */
  int stream;   /* 1 stdout, 2 stderr */
  bool partial; /* "P": the message continues on the next line */
  const char *msg;
  size_t len;
};
/* Parses "TIME stdout|stderr F|P message" (no trailing newline). */
int exec_k8s_parse_line(const char *line, size_t len, struct k8s_line *out);
/* Streams a log file. Following stops once exit_file exists, or gone()
 * (optional) says nobody will write any more, and the log is read to its
 * end; or on cancel / a write error. */
int exec_logs_file(const char *log_path, const char *exit_file,
                   bool (*gone)(void *), void *gone_arg,
                   const struct exec_logs_opts *o, struct sh_err *err);

/* ---- proc.c: processes and files ---- */

/* Runs argv to completion; *output gets stdout+stderr (trimmed). Returns
 * the exit status (>= 0) or < 0 if it could not run. */
int exec_proc_run(const char *const *argv, char **output, struct sh_err *err);
/* /proc/<pid>/stat start time (clock ticks since boot); 0 if gone or a
 * zombie. */
uint64_t exec_proc_starttime(pid_t pid);
/* rm -rf that never crosses into another mount. ENOENT is success. */
int exec_rm_rf(const char *path, struct sh_err *err);

/* ---- cmd.c ---- */

/* Writes <exec-root>/containers/<id>/<tag>.json: the container's process
 * config with o's command, environment, user, working directory, terminal
 * and capabilities; *pidfile gets where crun is to write the pid. Both
 * strings are the caller's. */
int exec_cmd_process(executor *ex, const char *id,
                     const struct exec_cmd_opts *o, const char *tag,
                     char **file, char **pidfile, struct sh_err *err);

/* ---- mount.c ---- */
int exec_overlay_mount(const char *const *layers, const char *lower_empty,
                       const char *upper, const char *work, const char *target,
                       struct sh_err *err);
bool exec_overlay_mounted(const char *target);
/* Mount option strings longer than this go through /proc/self/fd paths:
 * the kernel (6.1) takes one page of options. Tests lower it. */
extern size_t exec_overlay_opt_max;

/* Sets "K=V" in an OCI env array: replaces the entry of the same key,
 * else appends (spec.c). */
void exec_env_set(json_t *env, const char *kv);

#endif
