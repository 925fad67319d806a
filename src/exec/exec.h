/* Container executor: one container per task, run by crun under conmon.
 *
 * conmon holds the container's stdio, writes its log (k8s-file) and its
 * exit code, and outlives the daemon, so containers survive a restart of
 * shoald. Everything needed to find, inspect, stop and remove a container
 * is on disk under the two roots the caller gives (a restarted daemon may
 * live in a new mount namespace):
 *   <data-root>/containers/<id>/   bundle (config.json), shoal.json (what
 *                                  inspect shows), state.json, container.log,
 *                                  hosts, hostname, resolv.conf, upper/,
 *                                  work/, rootfs/ (overlay mount point)
 *   <data-root>/volumes/<name>/_data
 *   <exec-root>/crun/              crun --root
 *   <exec-root>/sock/              conmon socket dir
 *   <exec-root>/containers/<id>/   conmon.pid, pid, exit/<id>, persist/
 * Containers get the cgroup /shoal/<id> (cgroupfs driver).
 *
 * Every function BLOCKS (it runs crun and conmon and waits for them): call
 * them from worker threads, never from the event loop or libuv's pool;
 * except exec_watch_*, which are for the loop.
 * Calls for different containers may run concurrently. */
#ifndef SHOAL_EXEC_EXEC_H
#define SHOAL_EXEC_EXEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

struct sh_err;
struct seccomp_profile;
typedef struct executor executor;

enum exec_cgroup_mode {
  EXEC_CGROUP_V1,     /* v1 controllers only (lab hosts) */
  EXEC_CGROUP_V2,     /* unified hierarchy only (Debian 12) */
  EXEC_CGROUP_HYBRID, /* v1 plus a cgroup2 mount holding controllers: crun
                         refuses it until exec_prepare_host_mounts ran */
};

/* For the daemon's main() BEFORE it starts any thread (unshare(CLONE_NEWNS)
 * fails with EINVAL in a threaded process). On a hybrid host it moves the
 * process into a mount namespace of its own (slave propagation: host mounts
 * still show up, ours stay private) and unmounts /sys/fs/cgroup/unified
 * there, which crun then accepts. Changes nothing on the host. Returns 1 if
 * it did so, 0 if the host needed nothing. */
int exec_prepare_host_mounts(struct sh_err *err);

/* What the host has, as seen from this mount namespace. */
enum exec_cgroup_mode exec_detect_cgroup_mode(void);

/* Creates the directories under both roots, finds crun and conmon in PATH
 * and detects the cgroup setup. Fails (500) on a hybrid host that was not
 * prepared, with a message that says so. */
int exec_open(const char *data_root, const char *exec_root, executor **out,
              struct sh_err *err);
void exec_close(executor *ex);
enum exec_cgroup_mode exec_cgroup_mode(const executor *ex);

enum exec_mount_type { EXEC_MOUNT_BIND, EXEC_MOUNT_VOLUME, EXEC_MOUNT_TMPFS };

struct exec_mount {
  enum exec_mount_type type;
  /* bind: absolute host path (must exist); volume: name, NULL or "" for an
   * anonymous volume (a random name); tmpfs: unused */
  const char *source;
  const char *target; /* absolute path in the container */
  bool read_only;
  int64_t tmpfs_size;  /* bytes; 0: the kernel's default */
  unsigned tmpfs_mode; /* 0: 01777 */
  bool hidden;         /* a task's secret or config: not in inspect's Mounts */
};

/* ContainerSpec.Resources.Limits. 0 means no limit. */
struct exec_resources {
  int64_t nano_cpus;    /* -> cpu quota over a 100 ms period */
  int64_t memory_bytes; /* -> memory limit (and swap 2x, as dockerd) */
  int64_t pids_limit;   /* -> pids limit */
};

/* Everything a container is made of. Strings and vectors are borrowed;
 * vectors are NULL-terminated. */
struct exec_spec {
  const char *id;            /* 64 lowercase hex */
  const char *name;          /* "my-web.1.<task id>", without '/' */
  const char *image;         /* reference as given: Config.Image */
  const char *image_id;      /* "sha256:...": Image */
  const char *const *layers; /* layer directories, lowest first */
  /* The image config (OCI/Docker: the whole document, or its "config"
   * object): Env, Cmd, Entrypoint, WorkingDir, User, StopSignal, Labels. */
  const json_t *image_config;
  /* ContainerSpec.Command -> entrypoint, .Args -> cmd. As Docker: an
   * entrypoint given here also drops the image's Cmd. NULL: the image's. */
  const char *const *entrypoint;
  const char *const *cmd;
  const char *const *env; /* "K=V": added to the image's, same keys win */
  const char *user;    /* "uid[:gid]" or names from the rootfs; NULL: image's */
  const char *workdir; /* NULL: image's, then "/" */
  const char *hostname; /* NULL: the first 12 characters of id */
  const json_t *labels; /* object of strings, merged over the image's */
  const struct exec_mount *mounts;
  size_t n_mounts;
  bool read_only; /* read-only root filesystem */
  struct exec_resources res;
  const char *stop_signal; /* "SIGTERM", "TERM", "15"; NULL: image's */
  /* Network namespace to join (e.g. /run/netns/x), NULL: a new private one
   * with only loopback, up. */
  const char *netns_path;
  /* What inspect shows: HostConfig.NetworkMode (NULL: "none" without a
   * netns_path, else "default") and NetworkSettings.Networks (an object
   * by network name; NULL: {}). */
  const char *network_mode;
  const json_t *networks;
  const char *const *extra_hosts; /* "name:ip" lines added to /etc/hosts */
  const char *resolv_conf;        /* contents; NULL: the host's, minus loopback
                                     name servers (Docker's rule) */
  /* The seccomp profile (seccomp/seccomp.h), evaluated against the
   * container's capabilities; NULL: none (unconfined). */
  const struct seccomp_profile *seccomp;
  /* The capability set (exec/caps.h), NULL-terminated; NULL: Docker's
   * defaults. no_new_privileges: the process cannot gain privileges
   * (setuid binaries, file capabilities). */
  const char *const *caps;
  bool no_new_privileges;
  int oom_score_adj; /* -1000 .. 1000 */
  bool init;         /* --init: tini as PID 1, then the process */
  /* DNSConfig, NULL-terminated or NULL: each replaces the host's
   * nameservers, search, options. embedded_dns: the task's resolver is
   * 127.0.0.11 (the servers are its upstreams, not written). Ignored
   * when resolv_conf is given. */
  const char *const *dns_servers;
  const char *const *dns_search;
  const char *const *dns_options;
  bool embedded_dns;
  const json_t *sysctls;     /* {name: value}, checked by exec_check_sysctl */
  const json_t *ulimits;     /* [{Name, Soft, Hard}] */
  const char *const *groups; /* --group: names (image's /etc/group), ids */
  /* Config.Healthcheck as inspect shows it (the image's merged with the
   * spec's, see agent/health.h); NULL: none. Only recorded here. */
  const json_t *healthcheck;
  /* A standalone container's (docker create): keys set over what inspect
   * shows in Config (AttachStdout, ExposedPorts, ...) and HostConfig
   * (RestartPolicy, AutoRemove, PortBindings, Binds, ...); NULL: none.
   * Only recorded here: the caller applies them. */
  const json_t *config_extra;
  const json_t *host_config_extra;
  /* Config.Tty: the process gets a pty (crun's terminal, conmon holds the
   * master and logs what it reads as stdout); console_rows/cols: its
   * first size (HostConfig.ConsoleSize), 0: the kernel's. */
  bool tty;
  unsigned console_rows, console_cols;
};

/* --sysctl as docker-cli and runc allow: IPC and mqueue sysctls, net.*
 * unless the container shares the host's network namespace. 400 with
 * their message otherwise. */
int exec_check_sysctl(const char *name, bool host_netns, struct sh_err *err);
/* ContainerSpec.Ulimits [{Name, Soft, Hard}] -> OCI process.rlimits (new
 * array), with go-units' checks: 400 for an unknown name or soft > hard.
 * -1 means unlimited. */
int exec_rlimits(const json_t *ulimits, json_t **out, struct sh_err *err);
/* Without a nofile ulimit, containers and execs get the RLIMIT_NOFILE
 * shoald started with, not the one it raised for itself (core/lowfd):
 * the OCI rlimit for it, or NULL when it was not raised. */
json_t *exec_nofile_default(void);

/* exec_create builds the rootfs (overlayfs over the layers), the OCI bundle
 * and the container's files; nothing runs yet. 409 if the ID exists, 400
 * for a spec Docker would refuse (no command, unknown user, bad mount). */
int exec_create(executor *ex, const struct exec_spec *spec, struct sh_err *err);

/* Starts conmon, which runs `crun create`, then `crun start`. Returns once
 * the container's process runs; *pid (may be NULL) is its host PID. A
 * running container: returns 1 and its pid. */
int exec_start(executor *ex, const char *id, pid_t *pid, struct sh_err *err);

enum exec_status {
  EXEC_STATUS_CREATED,
  EXEC_STATUS_RUNNING,
  EXEC_STATUS_EXITED,
};
const char *exec_status_string(enum exec_status s); /* "created" ... */

struct exec_state {
  enum exec_status status;
  pid_t pid;   /* while running, else 0 */
  bool paused; /* running, frozen by exec_pause */
  int exit_code;
  bool oom_killed;
  int64_t created_ns, started_ns, finished_ns; /* wall clock; 0: never */
  char error[256];
};

/* 404 "No such container: <id>" for an unknown id. */
int exec_state(executor *ex, const char *id, struct exec_state *out,
               struct sh_err *err);

/* Sends `sig` (0: the container's stop signal: the spec's, else the
 * image's, else SIGTERM), waits up to grace_ns (< 0: 10 s) for the exit,
 * then SIGKILL and waits for the exit. Returns 1 if it was not running. */
int exec_stop(executor *ex, const char *id, int sig, int64_t grace_ns,
              struct sh_err *err);

/* For watching a running container from an event loop without a thread:
 * *pidfd refers to its process (readable once it exited; a signal through
 * it cannot reach a recycled PID) and *stop_signal (may be NULL) is the
 * container's (the spec's, else the image's, else SIGTERM). Returns 1 and
 * *pidfd = -1 if it is not running. The caller closes *pidfd. */
int exec_pidfd(executor *ex, const char *id, int *pidfd, int *stop_signal,
               struct sh_err *err);

/* 409 "Container <id> is not running" unless running. */
int exec_kill(executor *ex, const char *id, int sig, struct sh_err *err);

/* crun delete, unmount, remove the container's directories (volumes stay).
 * A running container needs force (then SIGKILL), else 409. The
 * directories leave in a rename each; their files are deleted by the
 * executor's purge thread, at idle priority, once removals and creates
 * pause. */
int exec_remove(executor *ex, const char *id, bool force, struct sh_err *err);
/* Waits up to timeout_ns until removed containers' files are deleted;
 * false if some are still to go. */
bool exec_purge_wait(executor *ex, int64_t timeout_ns);

struct exec_entry {
  char id[65];
  char *name;
  int64_t created_ns;
};
/* A container by full ID, name (with or without '/') or unique ID prefix,
 * as dockerd looks one up: 404 "No such container: <ref>", 400 for an
 * ambiguous prefix. */
int exec_find(executor *ex, const char *ref, char id[65], struct sh_err *err);

/* Every container on disk, oldest first: what a restarted daemon adopts. */
int exec_list(executor *ex, struct exec_entry **out, size_t *n,
              struct sh_err *err);
void exec_list_free(struct exec_entry *list, size_t n);

/* exec_inspect_json of every container, newest first (docker ps order):
 * one read of each container's files. */
int exec_inspect_all(executor *ex, json_t **out, struct sh_err *err);

struct exec_logs_opts {
  bool want_stdout, want_stderr;
  bool timestamps;            /* prefix each message with its RFC 3339 time */
  bool follow;                /* after the end, wait for more until the exit */
  int64_t since_ns, until_ns; /* wall clock; 0: unbounded */
  long tail;                  /* < 0: all */
  bool raw;                   /* no frame headers: a TTY container's */
  /* Receives Docker's multiplexed frames (8-byte header: stream 1 or 2,
   * three zeros, big-endian length; then the message), or with raw the
   * bytes alone, partial lines as they come (a TTY's stream). < 0 stops. */
  int (*write)(void *arg, const void *buf, size_t len);
  /* Optional, polled while following: true ends the stream. */
  bool (*cancelled)(void *arg);
  void *arg;
};
/* Streams the container's log as Docker's logs endpoint does. */
int exec_logs(executor *ex, const char *id, const struct exec_logs_opts *o,
              struct sh_err *err);

/* A connection to conmon's attach socket of a running container created
 * with Config.OpenStdin (docker run -i): what is sent (packets of up to
 * 8 KiB) goes to the process's stdin, closing it closes that stdin
 * (Config.StdinOnce); conmon also sends the output to it (a 1-byte
 * stream number before each packet), which the caller reads or drops.
 * 409 while it does not run. */
int exec_attach_stdin(executor *ex, const char *id, int *fd,
                      struct sh_err *err);

/* Config.Tty of a container: its log and attach streams are raw (no
 * frame headers), as dockerd's. false for an unknown one. */
bool exec_tty(executor *ex, const char *id);

/* A TTY container's terminal size (POST /containers/{id}/resize): a line
 * to conmon's control fifo (<bundle>/ctl: "1 <rows> <cols>"; conmon sets
 * it on the pty master it holds). A container without a TTY: nothing to
 * do (as containerd). 409 while it does not run; 400 past conmon's
 * limit of 1000. */
int exec_tty_resize(executor *ex, const char *id, unsigned rows, unsigned cols,
                    struct sh_err *err);

/* The Engine API's ContainerInspect fields this executor knows. Never waits
 * for conmon: a process gone this instant still shows as running. */
int exec_inspect_json(executor *ex, const char *id, json_t **out,
                      struct sh_err *err);
/* A container event's attributes, as dockerd gives them: the container's
 * labels, "image" (as the user named it) and "name" (without '/'), from
 * an inspect. New object. */
json_t *exec_event_attrs(const json_t *info);

/* For a health probe: the argv of `crun exec` running cmd (a JSON array
 * of strings) in the running container as its own process runs (user,
 * environment, working directory, capabilities), without a terminal. The
 * caller spawns it (a child the loop watches); *pidfile (free it) gets
 * the PID of the probe's process in the container, which a kill of crun
 * leaves running. Blocks (writes the process
 * file): call from a worker thread. Free with exec_argv_free. */
int exec_probe_argv(executor *ex, const char *id, const json_t *cmd,
                    char ***argv, char **pidfile, struct sh_err *err);
void exec_argv_free(char **argv);
/* ---- exec'd processes (cmd.c): docker exec ----
 * `crun exec` of a command into a running container as its own process
 * runs (user, environment, working directory, capabilities, seccomp),
 * with the exec's changes. crun stays our child while the process runs
 * and exits with its status: watch pidfd, then waitpid(pid). */
struct exec_cmd_opts {
  const json_t *cmd;      /* array of strings: argv */
  const char *const *env; /* "K=V", NULL-terminated: over the container's */
  const char *user;       /* NULL or "": the container's */
  const char *workdir;    /* NULL or "": the container's */
  bool tty;               /* a pty: crun hands its master over */
  bool privileged;        /* every capability */
  bool want_stdin;        /* no tty: a pipe for stdin, else /dev/null */
  bool discard_output;    /* no tty: stdout/stderr to /dev/null (detach) */
  unsigned rows, cols;    /* tty: its first size; 0: the kernel's */
  /* The exec instance's ID (64 hex) or NULL: crun runs under /bin/sh,
   * which writes crun's status to <exec-root>/containers/<id>/execs/
   * <record>.exit when it ends, our child or not (a shoald restart). */
  const char *record;
};
struct exec_cmd {
  pid_t pid;      /* crun exec, our child; -1: none */
  int pidfd;      /* of pid */
  pid_t proc_pid; /* the process in the container; 0 if unknown */
  int fd_in;      /* no tty: stdin's write end, or -1 */
  int fd_out;     /* stdout's read end; tty: the pty master (read/write) */
  int fd_err;     /* stderr's read end; tty: crun's own errors */
  char *file, *pidfile;
};
void exec_cmd_init(struct exec_cmd *c);
/* 400 "unable to find user X: no matching entries in passwd file" (moby's
 * words) for a user the container does not have; exec create checks. */
int exec_cmd_check(executor *ex, const char *id, const char *user,
                   struct sh_err *err);
/* Starts it; our fds are non-blocking. Blocks (spawn, waits for the
 * terminal and the pid): a worker thread. */
int exec_cmd_start(executor *ex, const char *id, const struct exec_cmd_opts *o,
                   struct exec_cmd *c, struct sh_err *err);
/* Closes what is still open and removes its files (not the process). */
void exec_cmd_release(struct exec_cmd *c);
/* Exec instances across a shoald restart (with exec_cmd_opts.record):
 * exec_cmd_record keeps what GET /exec/{id}/json shows (info, plus the
 * waiting shell's pid from c) as <record>.json beside the exit file;
 * exec_cmd_records reads every container's back: [{info..., "Running",
 * "ExitCode" (null until the exit file exists)}]; exec_cmd_record_exit
 * says 1 (exited, *code), 0 (runs) or -1 (gone without a status: the
 * host rebooted or the shell was killed); exec_cmd_forget removes both
 * files. Small files: fine on the loop. */
int exec_cmd_record(executor *ex, const char *id, const char *record,
                    const json_t *info, const struct exec_cmd *c,
                    struct sh_err *err);
json_t *exec_cmd_records(executor *ex);
int exec_cmd_record_exit(executor *ex, const char *id, const char *record,
                         int *code);
void exec_cmd_forget(executor *ex, const char *id, const char *record);
/* TIOCSWINSZ on a pty master: -errno on failure. */
int exec_cmd_resize(int master, unsigned rows, unsigned cols);
/* A waitpid status as Docker reports it: the code, or 128 + signal. */
int exec_cmd_exit_code(int status);

/* Detach keys (moby/term's ToBytes: "ctrl-p,ctrl-q", "a", "ctrl-@"):
 * NULL or "": Docker's ctrl-p ctrl-q. 400 "Invalid escape keys (%s)
 * provided" otherwise. */
#define EXEC_DETACH_KEYS_MAX 16
int exec_detach_keys_parse(const char *spec, unsigned char *keys, size_t *n,
                           struct sh_err *err);
/* Scans a terminal's input for the sequence, across calls: copies what is
 * for the process to out (room for len + EXEC_DETACH_KEYS_MAX), sets
 * detached when the whole sequence came; returns the bytes of in used. */
struct exec_detach {
  unsigned char keys[EXEC_DETACH_KEYS_MAX];
  size_t n, matched;
  bool detached;
};
size_t exec_detach_scan(struct exec_detach *d, const unsigned char *in,
                        size_t len, unsigned char *out, size_t *out_len);

/* Docker's multiplexed stream: an 8-byte header per frame (stream 0-2,
 * three zeros, big-endian length). */
void exec_frame_header(unsigned char hdr[8], int stream, uint32_t len);

/* Stores State.Health (inspect shows it) for a container; never fsyncs:
 * health is redone after a reboot anyway. Small: fine on the loop. */
int exec_set_health(executor *ex, const char *id, const json_t *health,
                    struct sh_err *err);

/* Starts an exited container again (docker restart, start): its last
 * run's exit and state go, its rootfs and log stay. A container never
 * started or running: as exec_start. */
int exec_rerun(executor *ex, const char *id, pid_t *pid, struct sh_err *err);

/* Sets top-level keys of what inspect shows (patch's keys replace
 * those of shoal.json: NetworkSettings after a network attach,
 * RestartCount); "Shoal" and "Id" cannot be set. */
int exec_meta_update(executor *ex, const char *id, const json_t *patch,
                     struct sh_err *err);

/* ---- docker update (update.c) ---- */

/* POST /containers/{id}/update's resources, as moby's UpdateContainer
 * reads them: 0 (or "", or has_pids false) leaves a value as it is. */
struct exec_update {
  int64_t memory, memory_swap, memory_reservation;
  int64_t nano_cpus, cpu_shares, cpu_period, cpu_quota;
  const char *cpuset_cpus, *cpuset_mems; /* NULL or "": unchanged */
  bool has_pids;
  int64_t pids_limit; /* <= 0: unlimited */
  int64_t blkio_weight;
  /* HostConfig.RestartPolicy to record ({"Name", "MaximumRetryCount"},
   * checked by the caller); NULL: unchanged. */
  const json_t *restart_policy;
};

/* What the host offers, for the checks (exec_update_merge). */
struct exec_update_host {
  long ncpu;
  bool swap_limit, blkio_weight;
  const char *cpus, *mems; /* online lists, "0-3" */
};

/* Pure: hc (the container's HostConfig) with u applied as dockerd's
 * verifyPlatformContainerResources and UpdateContainer do: 400 for a bad
 * value, 409 for a conflict with what is set (messages without moby's
 * "Cannot update container" prefix, which exec_update adds); a blkio
 * weight the host cannot apply is a warning (appended to warnings) and
 * discarded, as dockerd. *out is a new HostConfig. */
int exec_update_merge(const json_t *hc, const struct exec_update *u,
                      const struct exec_update_host *h, json_t *warnings,
                      json_t **out, struct sh_err *err);
/* Pure: OCI linux.resources (memory, cpu, pids, blockIO) for HostConfig
 * hc, as moby's toContainerdResources. New object. */
json_t *exec_update_resources(const json_t *hc);
/* "0-2,4" within avail (same syntax): 400 in moby's words otherwise. */
int exec_cpuset_check(const char *list, const char *avail, const char *what,
                      struct sh_err *err);

/* docker update: the new HostConfig is recorded (inspect shows it), the
 * bundle's linux.resources too (the next start has them), and a running
 * (or paused) container gets them now through `crun update --resources`;
 * if crun refuses, nothing changes (500 with crun's words). Warnings
 * (dockerd's) are appended to warnings. */
int exec_update(executor *ex, const char *id, const struct exec_update *u,
                json_t *warnings, struct sh_err *err);

/* ---- control and inspection of one container (ctl.c) ---- */

/* crun pause / resume (the freezer). 409 with dockerd's messages when not
 * running, already paused, or not paused. */
int exec_pause(executor *ex, const char *id, struct sh_err *err);
int exec_resume(executor *ex, const char *id, struct sh_err *err);
/* Sets Name ("/name") and what ps shows. The caller checks the name. */
int exec_rename(executor *ex, const char *id, const char *name,
                struct sh_err *err);
/* docker top: `ps ps_args` (NULL or "": -ef) on the host, keeping the
 * lines of the container's processes: {"Titles": [...], "Processes":
 * [[...]]}. 409 unless running; 400 for "-o x=PID" renames (moby). */
int exec_top(executor *ex, const char *id, const char *ps_args, json_t **out,
             struct sh_err *err);
/* The pure parts of exec_top, as moby's validatePSArgs and
 * parsePSOutput. */
int exec_top_check_args(const char *ps_args, struct sh_err *err);
int exec_top_parse(const char *ps_output, const pid_t *pids, size_t n,
                   json_t **out, struct sh_err *err);
/* One stats sample (exec/cgstats.h's objects plus "read", "id", "name",
 * "networks", "cpu_stats.system_cpu_usage", "online_cpus", "num_procs"),
 * without precpu_stats. A container not running: zeros, as dockerd. */
int exec_stats(executor *ex, const char *id, json_t **out, struct sh_err *err);
/* docker diff: the overlay upper directory against the image layers:
 * [{"Path", "Kind": 0 modified, 1 added, 2 deleted}], sorted by path. */
int exec_changes(executor *ex, const char *id, json_t **out,
                 struct sh_err *err);
/* What dockerd's init layer holds ("/etc/hosts", "/dev", ...: mount
 * points and files the runtime provides): no change of the container's
 * for diff, nothing commit keeps. */
bool exec_init_layer_path(const char *path);
/* docker export: a tar of the container's filesystem (rootfs, mounted
 * again if it must be; no volumes) to write(), made by libarchive. */
int exec_export(executor *ex, const char *id,
                int (*write)(void *arg, const void *buf, size_t len),
                bool (*cancelled)(void *arg), void *arg, struct sh_err *err);

/* ---- docker cp (archive.c) ----
 * The archive endpoints on a container, running or not, as dockerd's:
 * paths are the container's (symlinks and ".." resolve inside its root),
 * a running container's mounts are seen as its process sees them. ref is
 * the container as the user named it, for the 404 "Could not find the
 * file <path> in container <ref>". */
struct exec_path_stat {
  char name[256];
  int64_t size;
  uint32_t mode; /* Go's os.FileMode bits, as the header carries them */
  int64_t mtime_ns;
  char link_target[4096]; /* a symlink's target, resolved in the root */
};
int exec_archive_stat(executor *ex, const char *id, const char *path,
                      const char *ref, struct exec_path_stat *out,
                      struct sh_err *err);
/* A tar of path (a directory's contents under its base name) to write(). */
int exec_archive_get(executor *ex, const char *id, const char *path,
                     const char *ref,
                     int (*write)(void *arg, const void *buf, size_t len),
                     bool (*cancelled)(void *arg), void *arg,
                     struct sh_err *err);
struct exec_extract_opts {
  bool no_overwrite_dir_non_dir; /* refuse a dir replaced by a file, or back */
  bool copy_uid_gid; /* files owned by the container's Config.User */
};
/* Extracts a tar (plain, gzip, bzip2, xz, zstd) read from tar_fd as it
 * comes (a pipe fed by the API's streamed body; close_fd, when >= 0, is
 * its other end, closed in the extracting child) into the directory path;
 * a regular file cut short by the end of the stream is removed: 400 "extraction
 * point is not a directory", "container rootfs is marked read-only", "mounted
 * volume is marked read-only", a bad tar, or an entry leaving the destination.
 */
int exec_archive_put(executor *ex, const char *id, const char *path,
                     const char *ref, int tar_fd, int close_fd,
                     const struct exec_extract_opts *o, struct sh_err *err);
/* X-Docker-Container-Path-Stat: base64 of {name,size,mode,mtime,
 * linkTarget}. New string. */
char *exec_path_stat_header(const struct exec_path_stat *st);
/* The pure parts, for the tests: the path made absolute as moby does
 * (cleaned, keeping a trailing "/" or "/."); Go's filepath.Base; the
 * mode bits; a path resolved in the scope of rootfd (FollowSymlinkInScope:
 * ".." and absolute links never leave it; result absolute in the root);
 * moby's writable check; a tar entry's name made relative to the
 * destination (400 if it leaves it). */
char *exec_archive_abs(const char *path);
char *exec_archive_base(const char *path);
uint32_t exec_go_filemode(mode_t m);
int exec_scoped_resolve(int rootfd, const char *path, char **out,
                        struct sh_err *err);
int exec_archive_writable(const json_t *mounts, bool read_only_rootfs,
                          const char *abs, struct sh_err *err);
int exec_tar_entry_name(const char *name, char **out, struct sh_err *err);

/* "SIGTERM", "TERM", "term", "15" -> 15; -1 if not a signal. */
int exec_parse_signal(const char *s);

/* ---- on the event loop (these never block) ----
 * A running container's exit as a loop event, and a stop that holds no
 * thread: the signal now, a timer for the grace, SIGKILL when it runs out.
 * Reading the exit status and removing the container stay blocking calls
 * (exec_state, exec_remove) for a worker thread. */
struct exec_watch;
typedef void (*exec_exit_fn)(struct exec_watch *wa, void *ud);

/* Watches the process behind pidfd (from exec_pidfd; wa owns it from now
 * on, also on failure). on_exit runs once, on the loop, when it ended. */
int exec_watch_new(uv_loop_t *loop, int pidfd, exec_exit_fn on_exit, void *ud,
                   struct exec_watch **out, struct sh_err *err);
/* Sends sig (SIGTERM if <= 0); unless it exits within grace_ns (< 0: 10 s),
 * sends SIGKILL. Returns 1 if the process had already exited. */
int exec_watch_stop(struct exec_watch *wa, int sig, int64_t grace_ns,
                    struct sh_err *err);
/* The watch no longer keeps the loop running (a process the daemon may
 * leave behind when it stops, e.g. a docker exec). */
void exec_watch_unref(struct exec_watch *wa);
/* No more callbacks; freed once libuv lets go of its handles (the loop
 * must run on). NULL is fine. */
void exec_watch_free(struct exec_watch *wa);

#endif
