/* Processes exec'd into a running container (docker exec): `crun exec`
 * with the container's own process config as the base, a pipe per stream
 * or a pty whose master crun hands over on a console socket. crun stays
 * our child for the process's life and exits with its status. */
#include "exec/internal.h"

#include "core/err.h"
#include "core/id.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "exec/caps.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>

static char *record_path(const executor *ex, const char *id, const char *record,
                         const char *ext);

/* ---- the process config ---- */

static json_t *strv_json(const char *const *v) {
  json_t *a = json_array();
  for (; v && *v; v++)
    json_array_append_new(a, json_string(*v));
  return a;
}

/* The user's uid, gid and groups as the container's /etc/passwd and
 * /etc/group say (moby's getUser), the container's group adds on top. */
static int resolve_user(const struct ctr_paths *p, const json_t *meta,
                        const char *user, struct exec_user *u, sh_err *err) {
  cleanup_fd int rootfd = open(p->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0)
    return sh_errno(err, errno, "open %s", p->rootfs);
  if (exec_resolve_user(rootfd, user, u, err) < 0)
    return -1;
  const json_t *adds = jx_get(meta, "HostConfig.GroupAdd");
  size_t n = json_array_size(adds);
  if (n == 0)
    return 0;
  const char **groups = xcalloc(n + 1, sizeof *groups);
  for (size_t i = 0; i < n; i++)
    groups[i] = json_string_value(json_array_get(adds, i));
  int rc = exec_resolve_groups(rootfd, groups, u, err);
  free(groups);
  return rc;
}

int exec_cmd_process(executor *ex, const char *id,
                     const struct exec_cmd_opts *o, const char *tag,
                     char **file_out, char **pidfile_out, sh_err *err) {
  cleanup_paths struct ctr_paths p = {0};
  cleanup_json json_t *meta = NULL;
  if (exec_load_meta(ex, id, &p, &meta, err) < 0)
    return -1;
  cleanup_json json_t *oci = exec_read_json(p.config);
  json_t *proc = json_object_get(oci, "process");
  if (!json_is_object(proc))
    return sh_error(err, 500, "container %s has no process config", id);
  /* The container's process as it runs (user, env, cwd, capabilities,
   * no_new_privileges, apparmor/selinux labels), with the exec's command. */
  cleanup_json json_t *x = json_deep_copy(proc);
  json_object_set_new(x, "args", json_deep_copy(o->cmd));
  json_object_set_new(x, "terminal", json_boolean(o->tty));
  json_object_del(x, "rlimits");
  json_t *nofile = exec_nofile_default(); /* not shoald's raised one */
  if (nofile)
    json_object_set_new(x, "rlimits", json_pack("[o]", nofile));
  json_object_del(x, "oomScoreAdj");
  json_object_del(x, "consoleSize");
  if (o->tty && o->rows && o->cols)
    json_object_set_new(
        x, "consoleSize",
        json_pack("{s:i,s:i}", "height", (int)o->rows, "width", (int)o->cols));
  json_t *env = json_object_get(x, "env");
  if (!json_is_array(env)) {
    env = json_array();
    json_object_set_new(x, "env", env);
  }
  /* moby's CreateDaemonEnvironment: a terminal's TERM, then the exec's. */
  if (o->tty)
    exec_env_set(env, "TERM=xterm");
  for (size_t i = 0; o->env && o->env[i]; i++)
    exec_env_set(env, o->env[i]);
  if (o->workdir && *o->workdir)
    json_object_set_new(x, "cwd", json_string(o->workdir));
  if (o->user && *o->user) {
    struct exec_user u;
    if (resolve_user(&p, meta, o->user, &u, err) < 0)
      return -1;
    json_t *ju = json_pack("{s:I,s:I}", "uid", (json_int_t)u.uid, "gid",
                           (json_int_t)u.gid);
    if (u.n_groups) {
      json_t *g = json_array();
      for (size_t i = 0; i < u.n_groups; i++)
        json_array_append_new(g, json_integer(u.groups[i]));
      json_object_set_new(ju, "additionalGids", g);
    }
    json_object_set_new(x, "user", ju);
  }
  json_t *caps = json_object_get(x, "capabilities");
  if (o->privileged) {
    /* docker exec --privileged: every capability (that shoald holds, so
     * crun can give it), seccomp as it was. */
    const char **all = exec_caps_held();
    caps = json_object();
    json_object_set_new(caps, "bounding", strv_json(all));
    json_object_set_new(x, "capabilities", caps);
    free(all);
  }
  /* As the container's own process: root gets its set effective, anyone
   * else only the bounding set. */
  if (json_is_object(caps)) {
    json_t *bounding = json_object_get(caps, "bounding");
    if (jx_int(x, "user.uid", 0) == 0 && bounding) {
      json_object_set_new(caps, "effective", json_deep_copy(bounding));
      json_object_set_new(caps, "permitted", json_deep_copy(bounding));
    } else {
      json_object_del(caps, "effective");
      json_object_del(caps, "permitted");
      json_object_del(caps, "ambient");
      json_object_del(caps, "inheritable");
    }
  }
  cleanup_free char *file = xasprintf("%s/%s.json", p.run, tag);
  if (mkdir_p(p.run, 0700, err) < 0 || exec_write_json(file, x, err) < 0)
    return -1;
  *pidfile_out = xasprintf("%s/%s.pid", p.run, tag);
  *file_out = STEAL_POINTER(&file);
  return 0;
}

int exec_cmd_check(executor *ex, const char *id, const char *user,
                   sh_err *err) {
  if (!user || !*user)
    return 0;
  cleanup_paths struct ctr_paths p = {0};
  cleanup_json json_t *meta = NULL;
  if (exec_load_meta(ex, id, &p, &meta, err) < 0)
    return -1;
  struct exec_user u;
  return resolve_user(&p, meta, user, &u, err);
}

/* ---- the console socket ---- */

/* A listening unix socket crun connects to, in a private directory. */
static int console_listen(char **dir_out, char **path_out, sh_err *err) {
  char tmpl[] = "/tmp/shoal-tty-XXXXXX";
  if (!mkdtemp(tmpl))
    return sh_errno(err, errno, "console socket directory");
  char *path = xasprintf("%s/s", tmpl);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
      listen(fd, 1) < 0) {
    int e = errno;
    if (fd >= 0)
      close(fd);
    unlink(path);
    rmdir(tmpl);
    free(path);
    return sh_errno(err, e, "console socket");
  }
  *dir_out = xstrdup(tmpl);
  *path_out = path;
  return fd;
}

/* Waits for crun to connect and send the pty master (SCM_RIGHTS); gives
 * up if crun exits first (pidfd readable) or after the timeout. */
static int console_receive(int lfd, int pidfd, int timeout_ms, sh_err *err) {
  struct pollfd pf[2] = {{.fd = lfd, .events = POLLIN},
                         {.fd = pidfd, .events = POLLIN}};
  for (;;) {
    int r = poll(pf, 2, timeout_ms);
    if (r < 0 && errno == EINTR)
      continue;
    if (r == 0)
      return sh_error(err, 500, "exec: no terminal from crun in %d ms",
                      timeout_ms);
    if (r < 0)
      return sh_errno(err, errno, "poll");
    if (pf[0].revents)
      break;
    return sh_error(err, 500, "exec: crun ended before it sent a terminal");
  }
  cleanup_fd int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  if (c < 0)
    return sh_errno(err, errno, "accept");
  char data[256];
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } u;
  struct iovec iov = {.iov_base = data, .iov_len = sizeof data};
  struct msghdr msg = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = u.buf,
                       .msg_controllen = sizeof u.buf};
  ssize_t n;
  do
    n = recvmsg(c, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return sh_errno(err, errno, "recvmsg");
  struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
  if (!cm || cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
      cm->cmsg_len != CMSG_LEN(sizeof(int)))
    return sh_error(err, 500, "exec: crun sent no terminal");
  int fd;
  memcpy(&fd, CMSG_DATA(cm), sizeof fd);
  return fd;
}

int exec_cmd_resize(int master, unsigned rows, unsigned cols) {
  if (rows > 0xffff || cols > 0xffff)
    return -EINVAL;
  struct winsize ws = {.ws_row = (unsigned short)rows,
                       .ws_col = (unsigned short)cols};
  return ioctl(master, TIOCSWINSZ, &ws) < 0 ? -errno : 0;
}

/* ---- start ---- */

void exec_cmd_init(struct exec_cmd *c) {
  *c = (struct exec_cmd){
      .pid = -1, .pidfd = -1, .fd_in = -1, .fd_out = -1, .fd_err = -1};
}

static void close_fd(int *fd) {
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

void exec_cmd_release(struct exec_cmd *c) {
  close_fd(&c->pidfd);
  close_fd(&c->fd_in);
  close_fd(&c->fd_out);
  close_fd(&c->fd_err);
  if (c->file)
    unlink(c->file);
  if (c->pidfile)
    unlink(c->pidfile);
  free(c->file);
  free(c->pidfile);
  c->file = c->pidfile = NULL;
}

/* The process's pid once crun wrote it (crun writes it after the process
 * exists); 0 if crun ended or the wait ran out. */
static pid_t wait_pidfile(const char *path, int pidfd, int ms) {
  for (int waited = 0; waited <= ms; waited += 10) {
    cleanup_free char *s = NULL;
    size_t len = 0;
    if (read_file(path, &s, &len, NULL) == 0 && len > 0) {
      long v = strtol(s, NULL, 10);
      if (v > 0)
        return (pid_t)v;
    }
    struct pollfd pf = {.fd = pidfd, .events = POLLIN};
    if (poll(&pf, 1, 10) > 0)
      return 0;
  }
  return 0;
}

int exec_cmd_start(executor *ex, const char *id, const struct exec_cmd_opts *o,
                   struct exec_cmd *c, sh_err *err) {
  exec_cmd_init(c);
  char tag[24];
  unsigned char rnd[8];
  id_random(rnd, sizeof rnd);
  snprintf(tag, sizeof tag, "exec-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0],
           rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
  if (exec_cmd_process(ex, id, o, tag, &c->file, &c->pidfile, err) < 0)
    return -1;
  cleanup_free char *sock_dir = NULL, *sock_path = NULL;
  cleanup_free char *root = NULL, *pf = NULL, *pidf = NULL, *cs = NULL;
  cleanup_free char *exitf = NULL;
  cleanup_fd int lfd = -1;
  if (o->tty && (lfd = console_listen(&sock_dir, &sock_path, err)) < 0)
    goto fail;
  /* Pipes: ours are non-blocking (the loop reads them), the child's ends
   * blocking as a process expects. */
  int in[2] = {-1, -1}, out[2] = {-1, -1}, errp[2] = {-1, -1};
  if ((o->want_stdin && !o->tty && pipe2(in, O_CLOEXEC) < 0) ||
      (!o->discard_output && pipe2(out, O_CLOEXEC) < 0) ||
      (!o->discard_output && pipe2(errp, O_CLOEXEC) < 0)) {
    sh_errno(err, errno, "pipe");
    int *all[] = {&in[0], &in[1], &out[0], &out[1], &errp[0], &errp[1]};
    for (size_t i = 0; i < ARRAY_SIZE(all); i++)
      close_fd(all[i]);
    goto fail;
  }
  root = xasprintf("--root=%s", ex->crun_root);
  pf = xasprintf("--process=%s", c->file);
  pidf = xasprintf("--pid-file=%s", c->pidfile);
  cs = sock_path ? xasprintf("--console-socket=%s", sock_path) : NULL;
  const char *argv[16];
  size_t k = 0;
  if (o->record) {
    /* The status outlives us: sh waits for crun and writes it down. */
    exitf = record_path(ex, id, o->record, "exit");
    cleanup_free char *dir =
        xasprintf("%s/containers/%s/execs", ex->exec_root, id);
    if (!exec_valid_id(o->record) || mkdir_p(dir, 0700, err) < 0)
      goto fail;
    argv[k++] = "/bin/sh";
    argv[k++] = "-c";
    argv[k++] = "f=$1; shift; \"$@\"; r=$?; echo $r >\"$f.tmp\" && "
                "mv \"$f.tmp\" \"$f\"; exit $r";
    argv[k++] = "sh";
    argv[k++] = exitf;
  }
  argv[k++] = ex->crun;
  argv[k++] = root;
  argv[k++] = "exec";
  argv[k++] = pf;
  argv[k++] = pidf;
  if (cs)
    argv[k++] = cs;
  argv[k++] = id;
  argv[k] = NULL;
  /* With a terminal the process's stdio is the pty; crun's own stdout is
   * unused and its stderr carries its errors (e.g. no such executable). */
  struct spawn_opts po = {.argv = argv,
                          .fd_in = in[0],
                          .fd_out = o->tty ? errp[1] : out[1],
                          .fd_err = errp[1],
                          .fd3 = -1};
  int rc = spawn_proc(&po, &c->pid, err);
  close_fd(&in[0]);
  close_fd(&out[1]);
  close_fd(&errp[1]);
  c->fd_in = in[1];
  c->fd_out = out[0];
  c->fd_err = errp[0];
  if (rc < 0) {
    c->pid = -1;
    goto fail;
  }
  c->pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
  if (c->pidfd < 0) {
    /* Cannot happen for our own unreaped child; never leave it behind. */
    sh_errno(err, errno, "pidfd_open");
    kill(c->pid, SIGKILL);
    spawn_wait(c->pid);
    c->pid = -1;
    goto fail;
  }
  if (o->tty) {
    int master = console_receive(lfd, c->pidfd, 30000, err);
    if (master < 0) {
      /* crun's own words say more than ours. */
      if (c->fd_err >= 0) {
        struct pollfd pfd = {.fd = c->fd_err, .events = POLLIN};
        char why[512];
        ssize_t n = poll(&pfd, 1, 1000) > 0 ? read(c->fd_err, why, 511) : -1;
        while (n > 0 && (why[n - 1] == '\n' || why[n - 1] == '\r'))
          n--;
        if (n > 0) {
          why[n] = '\0';
          sh_error(err, 500, "OCI runtime exec failed: %s", why);
        }
      }
      kill(c->pid, SIGKILL);
      spawn_wait(c->pid);
      c->pid = -1;
      goto fail;
    }
    c->fd_out = master;
    if (o->rows && o->cols)
      exec_cmd_resize(master, o->rows, o->cols);
  }
  c->proc_pid = wait_pidfile(c->pidfile, c->pidfd, 5000);
  /* Ours are read and written from the loop. */
  int fds[] = {c->fd_in, c->fd_out, c->fd_err};
  for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
    if (fds[i] >= 0)
      fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
  if (lfd >= 0) {
    unlink(sock_path);
    rmdir(sock_dir);
  }
  return 0;
fail:
  if (sock_path) {
    unlink(sock_path);
    rmdir(sock_dir);
  }
  exec_cmd_release(c);
  return -1;
}

/* ---- records: instances across a restart ---- */

static char *record_path(const executor *ex, const char *id, const char *record,
                         const char *ext) {
  return xasprintf("%s/containers/%s/execs/%s.%s", ex->exec_root, id, record,
                   ext);
}

int exec_cmd_record(executor *ex, const char *id, const char *record,
                    const json_t *info, const struct exec_cmd *c, sh_err *err) {
  if (!exec_valid_id(id) || !exec_valid_id(record))
    return sh_error(err, 400, "invalid exec record %s/%s", id, record);
  cleanup_json json_t *j = json_deep_copy(info);
  json_object_set_new(j, "Pid", json_integer(c->proc_pid));
  json_object_set_new(j, "Shoal",
                      json_pack("{s:i,s:I}", "Pid", (int)c->pid, "PidStart",
                                (json_int_t)exec_proc_starttime(c->pid)));
  cleanup_free char *path = record_path(ex, id, record, "json");
  return exec_write_json(path, j, err);
}

int exec_cmd_record_exit(executor *ex, const char *id, const char *record,
                         int *code) {
  if (!exec_valid_id(id) || !exec_valid_id(record))
    return -1;
  cleanup_free char *ef = record_path(ex, id, record, "exit");
  cleanup_free char *s = NULL;
  size_t len = 0;
  if (read_file(ef, &s, &len, NULL) == 0 && len > 0) {
    *code = atoi(s);
    return 1;
  }
  cleanup_free char *rf = record_path(ex, id, record, "json");
  cleanup_json json_t *j = exec_read_json(rf);
  pid_t pid = (pid_t)jx_int(j, "Shoal.Pid", 0);
  uint64_t start = (uint64_t)jx_int(j, "Shoal.PidStart", 0);
  if (pid > 0 && start && exec_proc_starttime(pid) == start)
    return 0;
  /* The shell may have written it just now. */
  if (read_file(ef, &s, &len, NULL) == 0 && len > 0) {
    *code = atoi(s);
    return 1;
  }
  return -1;
}

json_t *exec_cmd_records(executor *ex) {
  json_t *out = json_array();
  cleanup_free char *root = xasprintf("%s/containers", ex->exec_root);
  DIR *d = opendir(root);
  if (!d)
    return out;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (!exec_valid_id(de->d_name))
      continue;
    cleanup_free char *dir = xasprintf("%s/%s/execs", root, de->d_name);
    DIR *e = opendir(dir);
    if (!e)
      continue;
    struct dirent *fe;
    while ((fe = readdir(e))) {
      size_t n = strlen(fe->d_name);
      if (n != 69 || strcmp(fe->d_name + 64, ".json") != 0)
        continue;
      char rec[65];
      memcpy(rec, fe->d_name, 64);
      rec[64] = '\0';
      cleanup_free char *path = xasprintf("%s/%s", dir, fe->d_name);
      json_t *j = exec_read_json(path);
      if (!json_is_object(j)) {
        json_decref(j);
        continue;
      }
      int code = 0;
      int st = exec_cmd_record_exit(ex, de->d_name, rec, &code);
      json_object_set_new(j, "Running", json_boolean(st == 0));
      json_object_set_new(j, "ExitCode",
                          st == 1 ? json_integer(code) : json_null());
      json_object_set_new(j, "ID", json_string(rec));
      json_object_set_new(j, "ContainerID", json_string(de->d_name));
      json_object_del(j, "Shoal");
      json_array_append_new(out, j);
    }
    closedir(e);
  }
  closedir(d);
  return out;
}

void exec_cmd_forget(executor *ex, const char *id, const char *record) {
  if (!exec_valid_id(id) || !exec_valid_id(record))
    return;
  cleanup_free char *rf = record_path(ex, id, record, "json");
  cleanup_free char *ef = record_path(ex, id, record, "exit");
  unlink(rf);
  unlink(ef);
}

int exec_cmd_exit_code(int status) {
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  if (WIFSIGNALED(status))
    return 128 + WTERMSIG(status);
  return 126;
}

/* ---- detach keys ---- */

int exec_detach_keys_parse(const char *spec, unsigned char *keys, size_t *n,
                           sh_err *err) {
  *n = 0;
  if (!spec || !*spec) {
    keys[(*n)++] = 16; /* ctrl-p */
    keys[(*n)++] = 17; /* ctrl-q */
    return 0;
  }
  cleanup_free char *copy = xstrdup(spec);
  char *save = NULL;
  for (char *t = strtok_r(copy, ",", &save); t;
       t = strtok_r(NULL, ",", &save)) {
    if (*n >= EXEC_DETACH_KEYS_MAX)
      goto bad;
    /* moby/term ToBytes: one character, or ctrl-<a-z @ [ \ ] ^ _>. */
    if (strlen(t) > 1) {
      if (strncasecmp(t, "ctrl-", 5) != 0 || strlen(t) != 6)
        goto bad;
      unsigned char ch = (unsigned char)t[5];
      if (ch >= 'a' && ch <= 'z')
        keys[(*n)++] = (unsigned char)(ch - 'a' + 1);
      else if (ch >= 'A' && ch <= 'Z')
        keys[(*n)++] = (unsigned char)(ch - 'A' + 1);
      else if (ch == '@')
        keys[(*n)++] = 0;
      else if (ch >= '[' && ch <= '_')
        keys[(*n)++] = (unsigned char)(ch - '[' + 27);
      else
        goto bad;
    } else {
      keys[(*n)++] = (unsigned char)t[0];
    }
  }
  if (*n > 0)
    return 0;
bad:
  return sh_error(err, 400, "Invalid escape keys (%s) provided", spec);
}

size_t exec_detach_scan(struct exec_detach *d, const unsigned char *in,
                        size_t len, unsigned char *out, size_t *out_len) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    if (d->n > 0 && in[i] == d->keys[d->matched]) {
      if (++d->matched == d->n) {
        d->detached = true;
        *out_len = o;
        return i + 1;
      }
      continue;
    }
    /* A partial match that broke: those keys were meant for the process. */
    for (size_t k = 0; k < d->matched; k++)
      out[o++] = d->keys[k];
    d->matched = 0;
    if (d->n > 0 && in[i] == d->keys[0]) {
      d->matched = 1;
      if (d->n == 1) {
        d->detached = true;
        *out_len = o;
        return i + 1;
      }
      continue;
    }
    out[o++] = in[i];
  }
  *out_len = o;
  return len;
}
