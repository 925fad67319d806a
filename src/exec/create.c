/* Creating a container: rootfs, OCI bundle, /etc files, mounts, and the
 * metadata inspect shows later. */
#include "exec/internal.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/id.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "seccomp/bpf.h"
#include "volume/volume.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>

/* hosts, hostname, resolv.conf: no fsync (about 10 ms each on ext4, three
 * per container created), as dockerd writes them too. */
static int write_text(const char *path, const char *s, sh_err *err) {
  return write_file_replace(path, s, strlen(s), 0644, err);
}

/* mkdir -p of an absolute path inside the root filesystem; symlinks in
 * the image cannot lead it outside. */
static int mkdir_in_root(int rootfd, const char *path, sh_err *err) {
  cleanup_free char *p = xstrdup(path);
  char *rel = p;
  while (*rel == '/')
    rel++;
  size_t n = strlen(rel);
  struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                         .resolve = RESOLVE_IN_ROOT};
  for (size_t i = 1; i <= n; i++) {
    if ((rel[i] != '/' && rel[i] != '\0') || rel[i - 1] == '/')
      continue;
    char saved = rel[i];
    rel[i] = '\0';
    int fd = (int)syscall(SYS_openat2, rootfd, rel, &how, sizeof how);
    if (fd >= 0) {
      close(fd);
    } else if (errno == ENOENT) {
      char *slash = strrchr(rel, '/');
      const char *leaf = slash ? slash + 1 : rel;
      if (slash)
        *slash = '\0';
      int parent = (int)syscall(SYS_openat2, rootfd, slash ? rel : ".", &how,
                                sizeof how);
      if (slash)
        *slash = '/';
      if (parent < 0)
        return sh_errno(err, errno, "working directory %s", path);
      int r = mkdirat(parent, leaf, 0755);
      close(parent);
      if (r < 0 && errno != EEXIST)
        return sh_errno(err, errno, "create working directory %s", path);
    } else {
      return sh_errno(err, errno, "working directory %s", path);
    }
    rel[i] = saved;
  }
  return 0;
}

static char *hosts_content(const struct exec_spec *s, const char *hostname) {
  sh_buf b = {0};
  buf_printf(&b, "127.0.0.1\tlocalhost\n"
                 "::1\tlocalhost ip6-localhost ip6-loopback\n"
                 "fe00::0\tip6-localnet\n"
                 "ff00::0\tip6-mcastprefix\n"
                 "ff02::1\tip6-allnodes\n"
                 "ff02::2\tip6-allrouters\n");
  for (size_t i = 0; s->extra_hosts && s->extra_hosts[i]; i++) {
    const char *h = s->extra_hosts[i];
    const char *c = strchr(h, ':');
    if (c)
      buf_printf(&b, "%s\t%.*s\n", c + 1, (int)(c - h), h);
  }
  /* As dockerd: the container's own name at its first address. */
  const char *net;
  json_t *ep;
  json_object_foreach((json_t *)s->networks, net, ep) {
    const char *ip = jx_str(ep, "IPAddress", "");
    if (*ip) {
      buf_printf(&b, "%s\t%s\n", ip, hostname);
      break;
    }
  }
  return b.data;
}

/* Docker's rules (exec_resolv_conf) over the host's resolv.conf. */
static char *resolv_content(const struct exec_spec *s) {
  if (s->resolv_conf)
    return xstrdup(s->resolv_conf);
  cleanup_free char *host = NULL;
  size_t len;
  read_file("/etc/resolv.conf", &host, &len, NULL);
  return exec_resolv_conf(host, s->dns_servers, s->dns_search, s->dns_options,
                          s->embedded_dns);
}

static json_t *strv_array(const char *const *v) {
  json_t *a = json_array();
  for (size_t i = 0; v && v[i]; i++)
    json_array_append_new(a, json_string(v[i]));
  return a;
}

static const char *mount_type_name(enum exec_mount_type t) {
  return t == EXEC_MOUNT_BIND     ? "bind"
         : t == EXEC_MOUNT_VOLUME ? "volume"
                                  : "tmpfs";
}

/* Validates the spec's mounts, makes volume directories, and describes
 * them for the OCI config (oci[]) and for inspect (Mounts, HostConfig). */
static int prepare_mounts(const executor *ex, const struct exec_spec *s,
                          struct exec_oci_mount *oci, char **owned,
                          json_t *mounts_out, json_t *hc_mounts, sh_err *err) {
  for (size_t i = 0; i < s->n_mounts; i++) {
    const struct exec_mount *m = &s->mounts[i];
    const char *tn = mount_type_name(m->type);
    if (!m->target || m->target[0] != '/')
      return sh_error(err, 400,
                      "invalid mount config for type \"%s\": invalid mount "
                      "path: '%s' mount path must be absolute",
                      tn, m->target ? m->target : "");
    if (strcmp(m->target, "/") == 0)
      return sh_error(err, 400,
                      "invalid mount config for type \"%s\": invalid "
                      "specification: destination can't be '/'",
                      tn);
    oci[i] = (struct exec_oci_mount){.target = m->target,
                                     .read_only = m->read_only,
                                     .size = m->tmpfs_size,
                                     .mode = m->tmpfs_mode};
    json_t *mj = NULL;
    json_t *hc = json_pack("{s:s,s:s}", "Type", tn, "Target", m->target);
    if (m->read_only)
      json_object_set_new(hc, "ReadOnly", json_true());
    switch (m->type) {
    case EXEC_MOUNT_BIND: {
      struct stat st;
      if (!m->source || m->source[0] != '/' || stat(m->source, &st) < 0) {
        json_decref(hc);
        return sh_error(err, 400,
                        "invalid mount config for type \"bind\": bind source "
                        "path does not exist: %s",
                        m->source ? m->source : "");
      }
      oci[i].source = m->source;
      json_object_set_new(hc, "Source", json_string(m->source));
      mj = json_pack("{s:s,s:s,s:s,s:s,s:b,s:s}", "Type", "bind", "Source",
                     m->source, "Destination", m->target, "Mode", "", "RW",
                     !m->read_only, "Propagation", "rprivate");
      break;
    }
    case EXEC_MOUNT_VOLUME: {
      /* The volume module owns volumes: a task's named volume is the one
       * `docker volume create` makes (or made). */
      cleanup_json json_t *vol = NULL;
      if (volume_create(ex->data_root, m->source, NULL, NULL, &vol, err) < 0) {
        json_decref(hc);
        return -1;
      }
      const char *name = jx_str(vol, "Name", "");
      owned[i] = xstrdup(jx_str(vol, "Mountpoint", ""));
      oci[i].source = owned[i];
      json_object_set_new(hc, "Source", json_string(name));
      mj = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:b,s:s}", "Type", "volume",
                     "Name", name, "Source", owned[i], "Destination", m->target,
                     "Driver", "local", "Mode", "z", "RW", !m->read_only,
                     "Propagation", "");
      break;
    }
    case EXEC_MOUNT_TMPFS:
      oci[i].tmpfs = true;
      mj = json_pack("{s:s,s:s,s:s,s:s,s:b,s:s}", "Type", "tmpfs", "Source", "",
                     "Destination", m->target, "Mode", "", "RW", !m->read_only,
                     "Propagation", "");
      if (m->tmpfs_size || m->tmpfs_mode) {
        json_t *o = json_object();
        if (m->tmpfs_size)
          json_object_set_new(o, "SizeBytes", json_integer(m->tmpfs_size));
        if (m->tmpfs_mode)
          json_object_set_new(o, "Mode", json_integer(m->tmpfs_mode));
        json_object_set_new(hc, "TmpfsOptions", o);
      }
      break;
    }
    if (m->hidden) {
      json_decref(mj);
      json_decref(hc);
      continue;
    }
    json_array_append_new(mounts_out, mj);
    json_array_append_new(hc_mounts, hc);
  }
  return 0;
}

static json_t *strv_or_null(const json_t *a) {
  return json_is_array(a) ? json_deep_copy(a) : json_null();
}

static json_t *lowerdir_json(const char *const *layers) {
  sh_buf b = {0};
  size_t n = 0;
  while (layers && layers[n])
    n++;
  for (size_t k = 0; k < n; k++)
    buf_printf(&b, "%s%s", k ? ":" : "", layers[n - 1 - k]);
  json_t *j = json_string(b.data ? b.data : "");
  buf_free(&b);
  return j;
}

static int create_in(executor *ex, const struct exec_spec *s,
                     struct ctr_paths *p, sh_err *err) {
  struct exec_process proc;
  if (exec_compose(s, &proc, err) < 0)
    return -1;
  int rc = -1;
  json_t *oci = NULL, *meta = NULL, *res = NULL, *rlimits = NULL;
  json_t *mounts = json_array(), *hc_mounts = json_array();
  struct exec_oci_mount *om = xcalloc(s->n_mounts + 1, sizeof *om);
  char **owned = xcalloc(s->n_mounts + 1, sizeof *owned);
  char *hosts = NULL, *resolv = NULL, *hostname = NULL, *hn = NULL;
  char *cgpath = xasprintf("/shoal/%s", s->id);
  json_t *penv = json_array();
  int rootfd = -1;

  const char *dirs[] = {p->upper, p->work, p->rootfs, p->lower_empty};
  for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
    if (mkdir(dirs[i], 0755) < 0) {
      sh_errno(err, errno, "mkdir %s", dirs[i]);
      goto out;
    }
  if (exec_overlay_mount(s->layers, p->lower_empty, p->upper, p->work,
                         p->rootfs, err) < 0)
    goto out;
  rootfd = open(p->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) {
    sh_errno(err, errno, "open %s", p->rootfs);
    goto out;
  }
  struct exec_user user;
  if (exec_resolve_user(rootfd, proc.user, &user, err) < 0 ||
      mkdir_in_root(rootfd, proc.workdir, err) < 0)
    goto out;
  if (exec_resolve_groups(rootfd, s->groups, &user, err) < 0)
    goto out;
  if (exec_oci_resources(&s->res, ex->swap_limit, &res, err) < 0 ||
      exec_rlimits(s->ulimits, &rlimits, err) < 0)
    goto out;
  const char *sysname;
  json_t *sysval;
  json_object_foreach((json_t *)s->sysctls, sysname, sysval) {
    if (!json_is_string(sysval)) {
      sh_error(err, 400, "sysctl %s: the value must be a string", sysname);
      goto out;
    }
    /* A namespace path that is not ours is the host's (--network host). */
    if (exec_check_sysctl(
            sysname, s->netns_path && str_has_prefix(s->netns_path, "/proc/"),
            err) < 0)
      goto out;
  }
  if (s->init && !ex->init) {
    sh_error(err, 500,
             "--init: tini is not installed on this node (Debian package "
             "tini)");
    goto out;
  }
  if (prepare_mounts(ex, s, om, owned, mounts, hc_mounts, err) < 0)
    goto out;

  hostname =
      s->hostname && *s->hostname ? xstrdup(s->hostname) : xstrndup(s->id, 12);
  hosts = hosts_content(s, hostname);
  resolv = resolv_content(s);
  hn = xasprintf("%s\n", hostname);
  if (write_text(p->hosts, hosts, err) < 0 ||
      write_text(p->resolv, resolv, err) < 0 ||
      write_text(p->hostname, hn, err) < 0)
    goto out;

  /* The process environment: Config.Env plus what dockerd adds. */
  bool has_path = false, has_home = false, has_term = false;
  size_t i;
  json_t *e;
  json_array_foreach(proc.env, i, e) {
    const char *v = json_string_value(e);
    has_path = has_path || str_has_prefix(v, "PATH=");
    has_home = has_home || str_has_prefix(v, "HOME=");
    has_term = has_term || str_has_prefix(v, "TERM=");
  }
  if (!has_path)
    json_array_append_new(
        penv, json_string("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                          "/usr/bin:/sbin:/bin"));
  json_array_append_new(penv, json_sprintf("HOSTNAME=%s", hostname));
  json_array_extend(penv, proc.env);
  if (!has_home)
    json_array_append_new(penv, json_sprintf("HOME=%s", user.home));
  /* As dockerd: a terminal's type for the process, unless Env has one. */
  if (s->tty && !has_term)
    json_array_append_new(penv, json_string("TERM=xterm"));

  struct exec_oci_input in = {
      .rootfs = p->rootfs,
      .read_only = s->read_only,
      .args = proc.args,
      .env = penv,
      .cwd = proc.workdir,
      .user = &user,
      .hostname = hostname,
      .mounts = om,
      .n_mounts = s->n_mounts,
      .hosts_path = p->hosts,
      .hostname_path = p->hostname,
      .resolv_path = p->resolv,
      .resources = res,
      .netns_path = s->netns_path,
      .cgroups_path = cgpath,
      .cgmode = ex->cgmode,
      .seccomp = s->seccomp,
      .caps = s->caps,
      .no_new_privileges = s->no_new_privileges,
      .oom_score_adj = s->oom_score_adj,
      .init_path = s->init ? ex->init : NULL,
      .sysctls = s->sysctls,
      .rlimits = rlimits,
      .terminal = s->tty,
      .console_rows = s->console_rows,
      .console_cols = s->console_cols,
  };
  oci = exec_oci_config(&in);
  /* The filter compiled once per distinct section (seccomp/bpf.h): crun
   * copies it instead of compiling its own. The section stays: crun
   * installs the filter with its flags. */
  const json_t *sc = jx_get(oci, "linux.seccomp");
  if (sc) {
    cleanup_free char *bpf = NULL;
    if (seccomp_bpf_cache_get(ex->bpf, sc, &bpf, err) < 0) {
      sh_err_wrap(err, "seccomp");
      goto out;
    }
    json_object_set_new(oci, "annotations",
                        json_pack("{s:s}", SECCOMP_BPF_ANNOTATION, bpf));
  }
  if (exec_write_json(p->config, oci, err) < 0)
    goto out;

  /* What inspect shows, fixed at create; State is added from disk. */
  char created[64];
  clock_format_rfc3339(clock_wall_ns(), created, sizeof created);
  json_t *config = json_pack(
      "{s:s,s:s,s:s,s:b,s:b,s:b,s:b,s:b,s:b,s:O,s:o,s:s,s:n,s:s,s:o,s:n,"
      "s:O}",
      "Hostname", hostname, "Domainname", "", "User", proc.user, "AttachStdin",
      0, "AttachStdout", 0, "AttachStderr", 0, "Tty", s->tty, "OpenStdin", 0,
      "StdinOnce", 0, "Env", proc.env, "Cmd", strv_or_null(proc.cmd), "Image",
      s->image ? s->image : "", "Volumes", "WorkingDir", proc.workdir,
      "Entrypoint", strv_or_null(proc.entrypoint), "OnBuild", "Labels",
      proc.labels);
  if (proc.stop_signal)
    json_object_set_new(config, "StopSignal", json_string(proc.stop_signal));
  if (json_is_object(s->healthcheck))
    json_object_set_new(config, "Healthcheck", json_deep_copy(s->healthcheck));
  /* The image's exposed ports, as docker inspect and docker ps show. */
  const json_t *icfg = json_object_get(s->image_config, "config");
  if (!icfg)
    icfg = s->image_config;
  json_t *exposed = json_object_get(icfg, "ExposedPorts");
  if (json_is_object(exposed))
    json_object_set(config, "ExposedPorts", exposed);
  /* The image's SHELL: what a CMD-SHELL healthcheck runs under. */
  json_t *shell = json_object_get(icfg, "Shell");
  if (json_array_size(shell))
    json_object_set(config, "Shell", shell);

  json_t *hc = json_pack(
      "{s:n,s:s,s:o,s:b,s:I,s:I,s:I,s:I,s:I,s:o,s:{s:s,s:i},s:{s:s,s:{}},"
      "s:I,s:b,s:o,s:s}",
      "Binds", "NetworkMode",
      s->network_mode ? s->network_mode
      : s->netns_path ? "default"
                      : "none",
      "Mounts", hc_mounts, "ReadonlyRootfs", s->read_only, "NanoCpus",
      (json_int_t)s->res.nano_cpus, "Memory", (json_int_t)s->res.memory_bytes,
      "MemorySwap",
      (json_int_t)(s->res.memory_bytes && ex->swap_limit
                       ? 2 * s->res.memory_bytes
                       : 0),
      /* dockerd: --cpus is NanoCpus alone (update's conflict checks) */
      "CpuPeriod", (json_int_t)0, "CpuQuota", (json_int_t)0, "PidsLimit",
      s->res.pids_limit ? json_integer(s->res.pids_limit) : json_null(),
      "RestartPolicy", "Name", "no", "MaximumRetryCount", 0, "LogConfig",
      "Type", "k8s-file", "Config", "ShmSize", (json_int_t)67108864,
      "Privileged", 0, "ExtraHosts", json_array(), "Runtime", "crun");
  hc_mounts = NULL;
  json_object_set_new(hc, "Init", json_boolean(s->init));
  json_object_set_new(hc, "Dns", strv_array(s->dns_servers));
  json_object_set_new(hc, "DnsSearch", strv_array(s->dns_search));
  json_object_set_new(hc, "DnsOptions", strv_array(s->dns_options));
  json_object_set_new(hc, "GroupAdd", strv_array(s->groups));
  json_object_set_new(hc, "Sysctls",
                      json_is_object(s->sysctls) ? json_deep_copy(s->sysctls)
                                                 : json_object());
  json_object_set_new(hc, "Ulimits",
                      json_is_array(s->ulimits) ? json_deep_copy(s->ulimits)
                                                : json_array());
  if (json_is_object(s->config_extra))
    json_object_update(config, (json_t *)s->config_extra);
  if (json_is_object(s->host_config_extra))
    json_object_update(hc, (json_t *)s->host_config_extra);
  for (size_t k = 0; s->extra_hosts && s->extra_hosts[k]; k++)
    json_array_append_new(json_object_get(hc, "ExtraHosts"),
                          json_string(s->extra_hosts[k]));

  json_t *layers = json_array();
  for (size_t k = 0; s->layers && s->layers[k]; k++)
    json_array_append_new(layers, json_string(s->layers[k]));

  meta = json_object();
  json_object_set_new(meta, "Id", json_string(s->id));
  json_object_set_new(meta, "Created", json_string(created));
  json_object_set(meta, "Path", json_array_get(proc.args, 0));
  json_t *args = json_array();
  for (size_t k = 1; k < json_array_size(proc.args); k++)
    json_array_append(args, json_array_get(proc.args, k));
  json_object_set_new(meta, "Args", args);
  json_object_set_new(meta, "Image",
                      json_string(s->image_id ? s->image_id : ""));
  json_object_set_new(meta, "Name", json_sprintf("/%s", s->name));
  json_object_set_new(meta, "ResolvConfPath", json_string(p->resolv));
  json_object_set_new(meta, "HostnamePath", json_string(p->hostname));
  json_object_set_new(meta, "HostsPath", json_string(p->hosts));
  json_object_set_new(meta, "LogPath", json_string(p->log));
  json_object_set_new(meta, "RestartCount", json_integer(0));
  json_object_set_new(meta, "Driver", json_string("overlay2"));
  json_object_set_new(meta, "Platform", json_string("linux"));
  json_object_set_new(meta, "Config", config);
  json_object_set_new(meta, "HostConfig", hc);
  json_object_set_new(meta, "Mounts", mounts);
  mounts = NULL;
  json_object_set_new(meta, "GraphDriver",
                      json_pack("{s:s,s:{s:o,s:s,s:s,s:s}}", "Name", "overlay2",
                                "Data", "LowerDir", lowerdir_json(s->layers),
                                "UpperDir", p->upper, "MergedDir", p->rootfs,
                                "WorkDir", p->work));
  json_object_set_new(
      meta, "NetworkSettings",
      json_pack("{s:s,s:{},s:o}", "SandboxKey",
                s->netns_path ? s->netns_path : "", "Ports", "Networks",
                json_is_object(s->networks) ? json_deep_copy(s->networks)
                                            : json_object()));
  /* Ours, not the API's: what stop, start and remove need later. */
  json_object_set_new(
      meta, "Shoal",
      json_pack("{s:i,s:o,s:s,s:o,s:s}", "StopSignal", proc.stop_signo,
                "Layers", layers, "Name", s->name, "Netns",
                s->netns_path ? json_string(s->netns_path) : json_null(),
                "Cgroup", cgpath));
  if (exec_write_json(p->meta, meta, err) < 0)
    goto out;
  rc = 0;
out:
  if (rootfd >= 0)
    close(rootfd);
  for (size_t k = 0; k < s->n_mounts; k++)
    free(owned[k]);
  free(owned);
  free(om);
  free(hosts);
  free(resolv);
  free(hostname);
  free(hn);
  free(cgpath);
  json_decref(penv);
  json_decref(oci);
  json_decref(meta);
  json_decref(res);
  json_decref(rlimits);
  json_decref(mounts);
  json_decref(hc_mounts);
  exec_process_free(&proc);
  return rc;
}

int exec_create(executor *ex, const struct exec_spec *s, sh_err *err) {
  if (!exec_valid_id(s->id))
    return sh_error(err, 400, "invalid container ID %s (64 hex characters)",
                    s->id ? s->id : "");
  if (!s->name || !*s->name || strchr(s->name, '/'))
    return sh_error(err, 400, "invalid container name \"%s\"",
                    s->name ? s->name : "");
  exec_purger_busy(ex);
  cleanup_paths struct ctr_paths p = {0};
  exec_paths_init(ex, s->id, &p);
  if (mkdir(p.dir, 0700) < 0) {
    if (errno == EEXIST)
      return sh_error(err, 409, "container %s already exists", s->id);
    return sh_errno(err, errno, "mkdir %s", p.dir);
  }
  if (create_in(ex, s, &p, err) < 0) {
    umount2(p.rootfs, MNT_DETACH);
    exec_rm_rf(p.dir, NULL);
    return -1;
  }
  return 0;
}
