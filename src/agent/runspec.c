/* A create request read as dockerd reads it; see runspec.h. */
#include "agent/runspec.h"

#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "ipam/ipam.h"
#include "exec/caps.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static void strv_free(char **v) {
  for (char **p = v; p && *p; p++)
    free(*p);
  free(v);
}

/* ---- zero values: what the CLI sends for a flag not given ---- */

static bool is_zero(const json_t *v) {
  if (!v || json_is_null(v) || json_is_false(v))
    return true;
  if (json_is_string(v))
    return json_string_length(v) == 0;
  if (json_is_integer(v))
    return json_integer_value(v) == 0;
  if (json_is_real(v))
    return json_real_value(v) == 0;
  if (json_is_array(v))
    return json_array_size(v) == 0;
  if (json_is_object(v)) {
    const char *k;
    json_t *m;
    json_object_foreach((json_t *)v, k, m) {
      if (!is_zero(m))
        return false;
    }
    return true;
  }
  return false;
}

/* The flag behind a field, for the refusal's message. */
static const char *flag_of(const char *field) {
  static const char *const map[][2] = {
      {"Domainname", "--domainname"},
      {"Healthcheck", "--health-cmd"},
      {"MacAddress", "--mac-address"},
      {"StopTimeout", "--stop-timeout"},
      {"NetworkDisabled", "--network none"},
      {"Shell", "SHELL"},
      {"OnBuild", "ONBUILD"},
      {"VolumesFrom", "--volumes-from"},
      {"Links", "--link"},
      {"Privileged", "--privileged"},
      {"PidMode", "--pid"},
      {"UTSMode", "--uts"},
      {"UsernsMode", "--userns"},
      {"Cgroup", "--cgroup"},
      {"CgroupnsMode", "--cgroupns"},
      {"ShmSize", "--shm-size"},
      {"StorageOpt", "--storage-opt"},
      {"Annotations", "--annotation"},
      {"CpuShares", "--cpu-shares"},
      {"CpuPeriod", "--cpu-period"},
      {"CpuQuota", "--cpu-quota"},
      {"CpuRealtimePeriod", "--cpu-rt-period"},
      {"CpuRealtimeRuntime", "--cpu-rt-runtime"},
      {"CpusetCpus", "--cpuset-cpus"},
      {"CpusetMems", "--cpuset-mems"},
      {"CgroupParent", "--cgroup-parent"},
      {"BlkioWeight", "--blkio-weight"},
      {"BlkioWeightDevice", "--blkio-weight-device"},
      {"BlkioDeviceReadBps", "--device-read-bps"},
      {"BlkioDeviceWriteBps", "--device-write-bps"},
      {"BlkioDeviceReadIOps", "--device-read-iops"},
      {"BlkioDeviceWriteIOps", "--device-write-iops"},
      {"Devices", "--device"},
      {"DeviceCgroupRules", "--device-cgroup-rule"},
      {"DeviceRequests", "--gpus"},
      {"MemoryReservation", "--memory-reservation"},
      {"MemorySwap", "--memory-swap"},
      {"MemorySwappiness", "--memory-swappiness"},
      {"KernelMemory", "--kernel-memory"},
      {"KernelMemoryTCP", "--kernel-memory"},
      {"OomKillDisable", "--oom-kill-disable"},
      {"MaskedPaths", "--security-opt systempaths=unconfined"},
      {"ReadonlyPaths", "--security-opt systempaths=unconfined"},
      {"Runtime", "--runtime"},
      {"IpcMode", "--ipc"},
      {"Isolation", "--isolation"},
      {"VolumeDriver", "--volume-driver"},
      {"LogConfig", "--log-driver"},
  };
  for (size_t i = 0; i < ARRAY_SIZE(map); i++)
    if (strcmp(map[i][0], field) == 0)
      return map[i][1];
  return NULL;
}

static int refuse(const char *obj, const char *field, sh_err *err) {
  const char *flag = flag_of(field);
  if (flag)
    return sh_error(err, 501, "%s (%s.%s) is not supported by shoal yet", flag,
                    obj, field);
  return sh_error(err, 501, "%s.%s is not supported by shoal yet", obj, field);
}

static bool in(const char *k, const char *const *list) {
  for (; *list; list++)
    if (strcmp(k, *list) == 0)
      return true;
  return false;
}

/* Every key of o that is not handled must be zero. */
static int only_zero_besides(const json_t *o, const char *obj,
                             const char *const *handled, sh_err *err) {
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)o, k, v) {
    if (!in(k, handled) && !is_zero(v))
      return refuse(obj, k, err);
  }
  return 0;
}

/* ---- typed reads ---- */

static int want_type(const json_t *v, json_type t, const char *what,
                     const char *go, sh_err *err) {
  if (!v || json_is_null(v) || json_typeof(v) == t)
    return 0;
  return sh_error(err, 400,
                  "json: cannot unmarshal %s into Go struct field %s of type "
                  "%s",
                  jx_kind(v), what, go);
}

/* A []string (or, where the API allows it, one string) into a NULL-ended
 * copy; NULL for null or []. */
static int strv(const json_t *v, const char *what, bool string_ok, char ***out,
                sh_err *err) {
  *out = NULL;
  if (!v || json_is_null(v))
    return 0;
  if (string_ok && json_is_string(v)) {
    *out = xcalloc(2, sizeof **out);
    (*out)[0] = xstrdup(json_string_value(v));
    return 0;
  }
  if (want_type(v, JSON_ARRAY, what, "[]string", err) < 0)
    return -1;
  if (json_array_size(v) == 0)
    return 0;
  char **s = xcalloc(json_array_size(v) + 1, sizeof *s);
  size_t i;
  json_t *e;
  json_array_foreach(v, i, e) {
    if (!json_is_string(e)) {
      strv_free(s);
      return sh_error(err, 400,
                      "json: cannot unmarshal %s into Go struct field %s of "
                      "type string",
                      jx_kind(e), what);
    }
    s[i] = xstrdup(json_string_value(e));
  }
  *out = s;
  return 0;
}

static int get_str(const json_t *o, const char *key, const char *what,
                   const char **out, sh_err *err) {
  const json_t *v = json_object_get(o, key);
  *out = NULL;
  if (want_type(v, JSON_STRING, what, "string", err) < 0)
    return -1;
  if (v && json_is_string(v) && json_string_length(v))
    *out = json_string_value(v);
  return 0;
}

static int get_int(const json_t *o, const char *key, const char *what,
                   int64_t *out, sh_err *err) {
  const json_t *v = json_object_get(o, key);
  *out = 0;
  if (want_type(v, JSON_INTEGER, what, "int64", err) < 0)
    return -1;
  if (v && json_is_integer(v))
    *out = json_integer_value(v);
  return 0;
}

static int get_bool(const json_t *o, const char *key, const char *what,
                    bool *out, sh_err *err) {
  const json_t *v = json_object_get(o, key);
  *out = false;
  if (v && !json_is_null(v) && !json_is_boolean(v))
    return sh_error(err, 400,
                    "json: cannot unmarshal %s into Go struct field %s of "
                    "type bool",
                    jx_kind(v), what);
  *out = json_is_true(v);
  return 0;
}

/* ---- ports ---- */

/* "80/tcp", "80" -> port and protocol (6 tcp, 17 udp); -1 if invalid, -2
 * for sctp (valid for Docker, not applied here). */
static int parse_port_key(const char *key, unsigned *port, int *proto) {
  char *end;
  if (!isdigit((unsigned char)key[0]))
    return -1;
  unsigned long p = strtoul(key, &end, 10);
  if (p == 0 || p > 65535)
    return -1;
  *port = (unsigned)p;
  *proto = 6;
  if (*end == '\0')
    return 0;
  if (*end != '/')
    return -1;
  if (strcmp(end + 1, "tcp") == 0)
    return 0;
  if (strcmp(end + 1, "udp") == 0) {
    *proto = 17;
    return 0;
  }
  return strcmp(end + 1, "sctp") == 0 ? -2 : -1;
}

static int check_port_key(const char *key, sh_err *err) {
  unsigned port;
  int proto;
  int rc = parse_port_key(key, &port, &proto);
  if (rc == -2)
    return sh_error(err, 501, "SCTP ports (%s) are not supported by shoal yet",
                    key);
  if (rc < 0)
    return sh_error(err, 400, "invalid port specification: \"%s\"", key);
  return 0;
}

static int check_bindings(const json_t *pb, sh_err *err) {
  if (want_type(pb, JSON_OBJECT, "HostConfig.PortBindings", "nat.PortMap",
                err) < 0)
    return -1;
  const char *k;
  json_t *list;
  json_object_foreach((json_t *)pb, k, list) {
    if (check_port_key(k, err) < 0)
      return -1;
    if (want_type(list, JSON_ARRAY, "HostConfig.PortBindings",
                  "[]nat.PortBinding", err) < 0)
      return -1;
    size_t i;
    json_t *b;
    json_array_foreach(list, i, b) {
      const char *ip = jx_str(b, "HostIp", "");
      const char *hp = jx_str(b, "HostPort", "");
      if (*ip && strcmp(ip, "0.0.0.0") != 0 && strcmp(ip, "::") != 0)
        return sh_error(err, 501,
                        "publishing on one host address (HostIp %s) is not "
                        "supported by shoal yet: ports are published on all "
                        "of the node's addresses",
                        ip);
      if (!*hp)
        continue;
      char *end;
      unsigned long p = strtoul(hp, &end, 10);
      if (*end == '-' && isdigit((unsigned char)end[1]))
        return sh_error(err, 501,
                        "host port ranges (%s) are not supported by shoal yet",
                        hp);
      if (!isdigit((unsigned char)hp[0]) || *end || p == 0 || p > 65535)
        return sh_error(err, 400, "invalid port specification: \"%s\"", hp);
    }
  }
  return 0;
}

static json_t *port_entry(int proto, unsigned target, unsigned published) {
  return json_pack("{s:s,s:i,s:i,s:s}", "Protocol", proto == 17 ? "udp" : "tcp",
                   "TargetPort", (int)target, "PublishedPort", (int)published,
                   "PublishMode", "host");
}

json_t *runspec_ports(const json_t *port_bindings, bool publish_all,
                      const json_t *exposed) {
  json_t *out = json_array();
  const char *k;
  json_t *list;
  json_object_foreach((json_t *)port_bindings, k, list) {
    unsigned port;
    int proto;
    if (parse_port_key(k, &port, &proto) < 0)
      continue;
    size_t i;
    json_t *b;
    json_array_foreach(list, i, b) {
      unsigned hp = (unsigned)strtoul(jx_str(b, "HostPort", "0"), NULL, 10);
      json_array_append_new(out, port_entry(proto, port, hp));
    }
    if (json_array_size(list) == 0 && publish_all)
      json_array_append_new(out, port_entry(proto, port, 0));
  }
  if (publish_all) {
    json_object_foreach((json_t *)exposed, k, list) {
      unsigned port;
      int proto;
      if (parse_port_key(k, &port, &proto) < 0)
        continue;
      char key[24];
      snprintf(key, sizeof key, "%u/%s", port, proto == 17 ? "udp" : "tcp");
      bool bound = false;
      const char *bk;
      json_t *bl;
      json_object_foreach((json_t *)port_bindings, bk, bl) {
        unsigned bp;
        int bpr;
        if (parse_port_key(bk, &bp, &bpr) == 0 && bp == port && bpr == proto)
          bound = true;
      }
      if (!bound)
        json_array_append_new(out, port_entry(proto, port, 0));
    }
  }
  return out;
}

json_t *runspec_port_map(const json_t *published, const json_t *exposed) {
  json_t *out = json_object();
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)exposed, k, v) {
    unsigned port;
    int proto;
    if (parse_port_key(k, &port, &proto) < 0)
      continue;
    char key[24];
    snprintf(key, sizeof key, "%u/%s", port, proto == 17 ? "udp" : "tcp");
    json_object_set_new(out, key, json_null());
  }
  size_t i;
  json_array_foreach(published, i, v) {
    char key[24], hp[8];
    snprintf(key, sizeof key, "%d/%s", (int)jx_int(v, "TargetPort", 0),
             jx_str(v, "Protocol", "tcp"));
    snprintf(hp, sizeof hp, "%d", (int)jx_int(v, "PublishedPort", 0));
    json_t *list = json_object_get(out, key);
    if (!json_is_array(list)) {
      list = json_array();
      json_object_set_new(out, key, list);
    }
    json_array_append_new(
        list, json_pack("{s:s,s:s}", "HostIp", "0.0.0.0", "HostPort", hp));
  }
  return out;
}

/* ---- mounts ---- */

static void add_mount(struct runspec *r, enum exec_mount_type type,
                      const char *source, const char *target, bool ro) {
  r->mounts = xrealloc(r->mounts, (r->n_mounts + 1) * sizeof *r->mounts);
  r->mounts[r->n_mounts++] = (struct exec_mount){
      .type = type,
      .source = source ? xstrdup(source) : NULL,
      .target = xstrdup(target),
      .read_only = ro,
  };
}

/* -v SRC:DST[:OPTS] (HostConfig.Binds). */
static int parse_bind(struct runspec *r, const char *spec, sh_err *err) {
  cleanup_free char *s = xstrdup(spec);
  char *parts[4] = {0};
  size_t n = 0;
  for (char *save = NULL, *t = strtok_r(s, ":", &save); t;
       t = strtok_r(NULL, ":", &save)) {
    if (n == 3)
      return sh_error(err, 400, "invalid volume specification: '%s'", spec);
    parts[n++] = t;
  }
  if (n < 2)
    return sh_error(err, 400, "invalid volume specification: '%s'", spec);
  bool ro = false;
  if (n == 3) {
    cleanup_free char *opts = xstrdup(parts[2]);
    for (char *save = NULL, *o = strtok_r(opts, ",", &save); o;
         o = strtok_r(NULL, ",", &save)) {
      if (strcmp(o, "ro") == 0)
        ro = true;
      else if (strcmp(o, "rw") == 0 || strcmp(o, "rprivate") == 0)
        ;
      else if (strcmp(o, "z") == 0 || strcmp(o, "Z") == 0)
        return sh_error(err, 501,
                        "SELinux relabelling (-v ...:%s) is not supported by "
                        "shoal",
                        o);
      else if (!strcmp(o, "nocopy") || !strcmp(o, "shared") ||
               !strcmp(o, "rshared") || !strcmp(o, "slave") ||
               !strcmp(o, "rslave") || !strcmp(o, "private"))
        return sh_error(err, 501,
                        "the volume option \"%s\" is not supported by shoal "
                        "yet",
                        o);
      else
        return sh_error(err, 400, "invalid mode: %s", o);
    }
  }
  if (parts[1][0] != '/')
    return sh_error(err, 400,
                    "invalid volume specification: '%s': invalid mount config "
                    "for type \"%s\": invalid mount path: '%s' mount path "
                    "must be absolute",
                    spec, parts[0][0] == '/' ? "bind" : "volume", parts[1]);
  if (parts[0][0] == '/') {
    add_mount(r, EXEC_MOUNT_BIND, parts[0], parts[1], ro);
    size_t nb = 0;
    while (r->bind_sources && r->bind_sources[nb])
      nb++;
    r->bind_sources = xrealloc(r->bind_sources, (nb + 2) * sizeof(char *));
    r->bind_sources[nb] = xstrdup(parts[0]);
    r->bind_sources[nb + 1] = NULL;
  } else {
    add_mount(r, EXEC_MOUNT_VOLUME, parts[0], parts[1], ro);
  }
  return 0;
}

/* HostConfig.Mounts (--mount). */
static int parse_mount(struct runspec *r, const json_t *m, sh_err *err) {
  static const char *const handled[] = {
      "Type",         "Source",      "Target",        "ReadOnly",
      "TmpfsOptions", "Consistency", "VolumeOptions", NULL};
  if (only_zero_besides(m, "HostConfig.Mounts", handled, err) < 0)
    return -1;
  const char *type = jx_str(m, "Type", "");
  const char *src = jx_str(m, "Source", "");
  const char *dst = jx_str(m, "Target", "");
  bool ro = jx_bool(m, "ReadOnly", false);
  const json_t *vo = json_object_get(m, "VolumeOptions");
  const char *drv = jx_str(vo, "DriverConfig.Name", "");
  if (*drv && strcmp(drv, "local") != 0)
    return sh_error(err, 501,
                    "volume driver \"%s\" is not supported by shoal: only "
                    "local",
                    drv);
  static const char *const vhandled[] = {"DriverConfig", NULL};
  if (only_zero_besides(vo, "HostConfig.Mounts.VolumeOptions", vhandled, err) <
          0 ||
      only_zero_besides(json_object_get(vo, "DriverConfig"),
                        "HostConfig.Mounts.VolumeOptions.DriverConfig",
                        (const char *const[]){"Name", NULL}, err) < 0)
    return -1;
  if (strcmp(type, "bind") == 0) {
    if (!*src)
      return sh_error(err, 400,
                      "invalid mount config for type \"bind\": field Source "
                      "must not be empty");
    add_mount(r, EXEC_MOUNT_BIND, src, dst, ro);
  } else if (strcmp(type, "volume") == 0) {
    add_mount(r, EXEC_MOUNT_VOLUME, *src ? src : NULL, dst, ro);
  } else if (strcmp(type, "tmpfs") == 0) {
    if (*src)
      return sh_error(err, 400,
                      "invalid mount config for type \"tmpfs\": field Source "
                      "must not be specified");
    const json_t *to = json_object_get(m, "TmpfsOptions");
    if (only_zero_besides(to, "HostConfig.Mounts.TmpfsOptions",
                          (const char *const[]){"SizeBytes", "Mode", NULL},
                          err) < 0)
      return -1;
    add_mount(r, EXEC_MOUNT_TMPFS, NULL, dst, ro);
    r->mounts[r->n_mounts - 1].tmpfs_size = jx_int(to, "SizeBytes", 0);
    r->mounts[r->n_mounts - 1].tmpfs_mode = (unsigned)jx_int(to, "Mode", 0);
  } else if (!*type) {
    return sh_error(err, 400,
                    "invalid mount config: must use either propagation mode "
                    "\"bind\", \"volume\" or \"tmpfs\"");
  } else {
    return sh_error(err, 501,
                    "mounts of type \"%s\" are not supported by shoal", type);
  }
  return 0;
}

/* --tmpfs /run[:size=64m,mode=1777] (HostConfig.Tmpfs). */
static int parse_tmpfs(struct runspec *r, const char *dst, const char *opts,
                       sh_err *err) {
  int64_t size = 0;
  unsigned mode = 0;
  bool ro = false;
  cleanup_free char *o = xstrdup(opts ? opts : "");
  for (char *save = NULL, *t = strtok_r(o, ",", &save); t;
       t = strtok_r(NULL, ",", &save)) {
    if (str_has_prefix(t, "size=")) {
      char *end;
      double v = strtod(t + 5, &end);
      int64_t mul = 1;
      switch (tolower((unsigned char)*end)) {
      case 'k':
        mul = 1024;
        end++;
        break;
      case 'm':
        mul = 1024 * 1024;
        end++;
        break;
      case 'g':
        mul = 1024 * 1024 * 1024;
        end++;
        break;
      default:
        break;
      }
      if (*end || v <= 0)
        return sh_error(err, 400, "invalid tmpfs option %s", t);
      size = (int64_t)(v * (double)mul);
    } else if (str_has_prefix(t, "mode=")) {
      char *end;
      mode = (unsigned)strtoul(t + 5, &end, 8);
      if (*end || !t[5])
        return sh_error(err, 400, "invalid tmpfs option %s", t);
    } else if (strcmp(t, "ro") == 0) {
      ro = true;
    } else if (strcmp(t, "rw") != 0) {
      return sh_error(
          err, 501, "the tmpfs option \"%s\" is not supported by shoal yet", t);
    }
  }
  add_mount(r, EXEC_MOUNT_TMPFS, NULL, dst, ro);
  r->mounts[r->n_mounts - 1].tmpfs_size = size;
  r->mounts[r->n_mounts - 1].tmpfs_mode = mode;
  return 0;
}

/* ---- restart policy, security options ---- */

int runspec_restart_parse(const json_t *p, enum runspec_restart *out,
                          int *max_retry, sh_err *err) {
  const char *name = jx_str(p, "Name", "");
  int64_t max = jx_int(p, "MaximumRetryCount", 0);
  *out = RUNSPEC_RESTART_NO;
  *max_retry = 0;
  if (!*name || strcmp(name, "no") == 0 || strcmp(name, "always") == 0 ||
      strcmp(name, "unless-stopped") == 0) {
    if (max != 0 && *name)
      return sh_error(err, 400,
                      "invalid restart policy: maximum retry count can only "
                      "be used with 'on-failure'%s",
                      max < 0 ? " and cannot be negative" : "");
    *out = strcmp(name, "always") == 0 ? RUNSPEC_RESTART_ALWAYS
           : strcmp(name, "unless-stopped") == 0
               ? RUNSPEC_RESTART_UNLESS_STOPPED
               : RUNSPEC_RESTART_NO;
    return 0;
  }
  if (strcmp(name, "on-failure") == 0) {
    if (max < 0)
      return sh_error(err, 400,
                      "invalid restart policy: maximum retry count cannot be "
                      "negative");
    *out = RUNSPEC_RESTART_ON_FAILURE;
    *max_retry = max > INT32_MAX ? INT32_MAX : (int)max;
    return 0;
  }
  return sh_error(err, 400,
                  "invalid restart policy: unknown policy '%s'; use one of "
                  "'no', 'always', 'on-failure', or 'unless-stopped'",
                  name);
}

static int parse_security_opts(struct runspec *r, const json_t *v,
                               sh_err *err) {
  size_t i;
  json_t *e;
  json_array_foreach(v, i, e) {
    const char *o = json_string_value(e);
    if (!o)
      return sh_error(err, 400, "invalid --security-opt: not a string");
    if (!strcmp(o, "no-new-privileges") ||
        !strcmp(o, "no-new-privileges:true") ||
        !strcmp(o, "no-new-privileges=true"))
      r->no_new_privileges = true;
    else if (!strcmp(o, "no-new-privileges:false") ||
             !strcmp(o, "no-new-privileges=false"))
      r->no_new_privileges = false;
    else if (!strcmp(o, "seccomp=unconfined") ||
             !strcmp(o, "seccomp:unconfined"))
      r->seccomp_unconfined = true;
    else if (!strcmp(o, "apparmor=unconfined") ||
             !strcmp(o, "apparmor:unconfined"))
      ; /* shoal applies no AppArmor profile: unconfined is the truth */
    else
      return sh_error(err, 501,
                      "--security-opt %s is not supported by shoal yet", o);
  }
  return 0;
}

/* ---- the request ---- */

static int parse_config(const json_t *b, struct runspec *r, sh_err *err) {
  static const char *const handled[] = {"Image",
                                        "Cmd",
                                        "Entrypoint",
                                        "Env",
                                        "User",
                                        "WorkingDir",
                                        "Hostname",
                                        "Labels",
                                        "StopSignal",
                                        "ExposedPorts",
                                        "Volumes",
                                        "AttachStdout",
                                        "AttachStderr",
                                        "AttachStdin",
                                        "Tty",
                                        "OpenStdin",
                                        "StdinOnce",
                                        "HostConfig",
                                        "NetworkingConfig",
                                        "ArgsEscaped",
                                        NULL};
  if (only_zero_besides(b, "Config", handled, err) < 0)
    return -1;
  bool tty, open_stdin, attach_stdin, out, errs, once;
  if (get_bool(b, "Tty", "Config.Tty", &tty, err) < 0 ||
      get_bool(b, "OpenStdin", "Config.OpenStdin", &open_stdin, err) < 0 ||
      get_bool(b, "AttachStdin", "Config.AttachStdin", &attach_stdin, err) <
          0 ||
      get_bool(b, "AttachStdout", "Config.AttachStdout", &out, err) < 0 ||
      get_bool(b, "AttachStderr", "Config.AttachStderr", &errs, err) < 0 ||
      get_bool(b, "StdinOnce", "Config.StdinOnce", &once, err) < 0)
    return -1;
  /* -t: conmon holds the pty (exec_spec.tty); stdin is conmon's (-i:
   * through conmon's attach socket). */
  r->tty = tty;
  if ((attach_stdin || once) && !open_stdin)
    return sh_error(err, 400,
                    "Config.AttachStdin and Config.StdinOnce need "
                    "Config.OpenStdin");
  if (jx_bool(b, "ArgsEscaped", false))
    return refuse("Config", "ArgsEscaped", err);
  if (get_str(b, "Image", "Config.Image", &r->image, err) < 0)
    return -1;
  if (!r->image)
    return sh_error(err, 400, "No image was specified");
  if (get_str(b, "User", "Config.User", &r->user, err) < 0 ||
      get_str(b, "WorkingDir", "Config.WorkingDir", &r->workdir, err) < 0 ||
      get_str(b, "Hostname", "Config.Hostname", &r->hostname, err) < 0 ||
      get_str(b, "StopSignal", "Config.StopSignal", &r->stop_signal, err) < 0)
    return -1;
  if (r->workdir && r->workdir[0] != '/')
    return sh_error(err, 400,
                    "the working directory '%s' is invalid, it needs to be an "
                    "absolute path",
                    r->workdir);
  if (r->stop_signal && exec_parse_signal(r->stop_signal) <= 0)
    return sh_error(err, 400, "Invalid signal: %s", r->stop_signal);
  if (strv(json_object_get(b, "Cmd"), "Config.Cmd", true, &r->cmd, err) < 0 ||
      strv(json_object_get(b, "Entrypoint"), "Config.Entrypoint", true,
           &r->entrypoint, err) < 0 ||
      strv(json_object_get(b, "Env"), "Config.Env", false, &r->env, err) < 0)
    return -1;
  const json_t *ep = json_object_get(b, "Entrypoint");
  /* --entrypoint "": neither the image's entrypoint nor its Cmd. */
  const char *ep0 = json_string_value(json_array_get(ep, 0));
  if ((json_is_array(ep) && (json_array_size(ep) == 0 ||
                             (json_array_size(ep) == 1 && ep0 && !*ep0))) ||
      (json_is_string(ep) && !json_string_length(ep))) {
    strv_free(r->entrypoint);
    r->entrypoint = NULL;
    r->entrypoint_reset = true;
  }
  const json_t *labels = json_object_get(b, "Labels");
  if (want_type(labels, JSON_OBJECT, "Config.Labels", "map[string]string",
                err) < 0)
    return -1;
  if (json_object_size(labels))
    r->labels = json_deep_copy(labels);
  const json_t *exposed = json_object_get(b, "ExposedPorts");
  if (want_type(exposed, JSON_OBJECT, "Config.ExposedPorts", "nat.PortSet",
                err) < 0)
    return -1;
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)exposed, k, v) {
    if (check_port_key(k, err) < 0)
      return -1;
  }
  const json_t *vols = json_object_get(b, "Volumes");
  if (want_type(vols, JSON_OBJECT, "Config.Volumes", "map[string]struct {}",
                err) < 0)
    return -1;
  json_object_foreach((json_t *)vols, k, v) {
    if (k[0] != '/')
      return sh_error(err, 400,
                      "invalid volume specification: '%s': invalid mount "
                      "config for type \"volume\": invalid mount path: '%s' "
                      "mount path must be absolute",
                      k, k);
    add_mount(r, EXEC_MOUNT_VOLUME, NULL, k, false);
  }
  r->config_extra = json_pack("{s:b,s:b,s:b,s:b,s:b}", "AttachStdout", out,
                              "AttachStderr", errs, "AttachStdin", attach_stdin,
                              "OpenStdin", open_stdin, "StdinOnce", once);
  if (json_object_size(exposed))
    json_object_set(r->config_extra, "ExposedPorts", (json_t *)exposed);
  if (json_object_size(vols))
    json_object_set(r->config_extra, "Volumes", (json_t *)vols);
  return 0;
}

static int parse_network(const json_t *hc, const json_t *nc, struct runspec *r,
                         sh_err *err) {
  const char *mode = jx_str(hc, "NetworkMode", "");
  if (!*mode || strcmp(mode, "default") == 0 || strcmp(mode, "bridge") == 0)
    r->net = RUNSPEC_NET_BRIDGE;
  else if (strcmp(mode, "host") == 0)
    r->net = RUNSPEC_NET_HOST;
  else if (strcmp(mode, "none") == 0)
    r->net = RUNSPEC_NET_NONE;
  else if (str_has_prefix(mode, "container:"))
    return sh_error(err, 501,
                    "--network %s (another container's namespace) is not "
                    "supported by shoal yet",
                    mode);
  else
    r->net = RUNSPEC_NET_SWARM;
  r->network = mode;
  static const char *const handled[] = {"EndpointsConfig", NULL};
  if (only_zero_besides(nc, "NetworkingConfig", handled, err) < 0)
    return -1;
  static const char *const ep_fields[] = {"Aliases", "IPAMConfig", NULL};
  static const char *const ipam_fields[] = {"IPv4Address", NULL};
  const char *k;
  json_t *ep;
  r->endpoints = json_object_get(nc, "EndpointsConfig");
  json_object_foreach(json_object_get(nc, "EndpointsConfig"), k, ep) {
    if (only_zero_besides(ep, "NetworkingConfig.EndpointsConfig", ep_fields,
                          err) < 0 ||
        only_zero_besides(json_object_get(ep, "IPAMConfig"),
                          "NetworkingConfig.EndpointsConfig.IPAMConfig",
                          ipam_fields, err) < 0)
      return -1;
    const json_t *al = json_object_get(ep, "Aliases");
    size_t i;
    json_t *a;
    if (al && !json_is_null(al) && !json_is_array(al))
      return sh_error(err, 400, "Aliases must be an array of strings");
    json_array_foreach(al, i, a) {
      if (!json_is_string(a))
        return sh_error(err, 400, "Aliases must be an array of strings");
    }
    const char *ip = jx_str(ep, "IPAMConfig.IPv4Address", "");
    uint32_t v4;
    if (*ip && ipam_parse_ip(ip, &v4, NULL) < 0)
      return sh_error(err, 400, "invalid IPv4 address: %s", ip);
    bool on_bridge = r->net == RUNSPEC_NET_BRIDGE && strcmp(k, "bridge") == 0;
    if ((on_bridge || (!strcmp(k, mode) && r->net == RUNSPEC_NET_BRIDGE)) &&
        (*ip || json_array_size(al)))
      return runspec_endpoint_error(err, k,
                                    *ip ? RUNSPEC_EP_IP_NOT_USER_NET : 0,
                                    json_array_size(al) > 0);
    if ((r->net == RUNSPEC_NET_HOST || r->net == RUNSPEC_NET_NONE) &&
        strcmp(k, mode) != 0)
      return sh_error(err, 400,
                      r->net == RUNSPEC_NET_HOST
                          ? "container sharing network namespace with another "
                            "container or host cannot be connected to any "
                            "other network"
                          : "container cannot be connected to multiple "
                            "networks with one of the networks in private "
                            "(none) mode");
  }
  if ((r->net == RUNSPEC_NET_HOST || r->net == RUNSPEC_NET_NONE) &&
      (json_object_size(r->port_bindings) || r->publish_all)) {
    /* dockerd publishes nothing then, with a warning; shoal says so. */
    return sh_error(err, 400,
                    "published ports need the bridge network: --network %s "
                    "has none to publish",
                    mode);
  }
  return 0;
}

static int parse_host_config(const json_t *hc, struct runspec *r, sh_err *err) {
  static const char *const handled[] = {
      "Binds",          "NetworkMode", "PortBindings",
      "RestartPolicy",  "AutoRemove",  "Mounts",
      "CapAdd",         "CapDrop",     "Dns",
      "DnsOptions",     "DnsSearch",   "ExtraHosts",
      "GroupAdd",       "OomScoreAdj", "PublishAllPorts",
      "ReadonlyRootfs", "SecurityOpt", "Sysctls",
      "Memory",         "NanoCpus",    "PidsLimit",
      "Ulimits",        "Init",        "LogConfig",
      "VolumeDriver",   "ConsoleSize", "ContainerIDFile",
      "IpcMode",        "Isolation",   "MemorySwappiness",
      "Tmpfs",          "MemorySwap",  NULL};
  if (want_type(hc, JSON_OBJECT, "ContainerCreateConfig.HostConfig",
                "container.HostConfig", err) < 0 ||
      only_zero_besides(hc, "HostConfig", handled, err) < 0)
    return -1;
  const char *logd = jx_str(hc, "LogConfig.Type", "");
  if ((*logd && strcmp(logd, "json-file") != 0) ||
      json_object_size(jx_get(hc, "LogConfig.Config")))
    return refuse("HostConfig", "LogConfig", err);
  const char *vd = jx_str(hc, "VolumeDriver", "");
  if (*vd && strcmp(vd, "local") != 0)
    return refuse("HostConfig", "VolumeDriver", err);
  const char *ipc = jx_str(hc, "IpcMode", "");
  if (*ipc && strcmp(ipc, "private") != 0)
    return refuse("HostConfig", "IpcMode", err);
  const char *iso = jx_str(hc, "Isolation", "");
  if (*iso && strcmp(iso, "default") != 0)
    return refuse("HostConfig", "Isolation", err);
  const json_t *swp = json_object_get(hc, "MemorySwappiness");
  if (swp && !json_is_null(swp) && jx_int(hc, "MemorySwappiness", -1) != -1)
    return refuse("HostConfig", "MemorySwappiness", err);
  /* The CLI's terminal size at create ([h, w]): the pty's first size. */
  const json_t *cs = json_object_get(hc, "ConsoleSize");
  if (cs && !json_is_null(cs)) {
    json_int_t ch = json_integer_value(json_array_get(cs, 0));
    json_int_t cw = json_integer_value(json_array_get(cs, 1));
    if (!json_is_array(cs) || json_array_size(cs) != 2 ||
        !json_is_integer(json_array_get(cs, 0)) ||
        !json_is_integer(json_array_get(cs, 1)) || ch < 0 || cw < 0 ||
        ch > 65535 || cw > 65535)
      return sh_error(err, 400,
                      "HostConfig.ConsoleSize: two sizes (height, width) "
                      "from 0 to 65535");
    r->console_rows = (unsigned)ch;
    r->console_cols = (unsigned)cw;
  }

  size_t i;
  json_t *e;
  json_array_foreach(json_object_get(hc, "Binds"), i, e) {
    if (!json_is_string(e))
      return sh_error(err, 400, "invalid volume specification: not a string");
    if (parse_bind(r, json_string_value(e), err) < 0)
      return -1;
  }
  json_array_foreach(json_object_get(hc, "Mounts"), i, e) {
    if (parse_mount(r, e, err) < 0)
      return -1;
  }
  const char *k;
  json_t *v;
  json_object_foreach(json_object_get(hc, "Tmpfs"), k, v) {
    if (parse_tmpfs(r, k, json_string_value(v), err) < 0)
      return -1;
  }
  for (size_t a = 0; a < r->n_mounts; a++)
    for (size_t c = 0; c < a; c++)
      if (strcmp(r->mounts[a].target, r->mounts[c].target) == 0)
        return sh_error(err, 400, "Duplicate mount point: %s",
                        r->mounts[a].target);

  const json_t *pb = json_object_get(hc, "PortBindings");
  if (check_bindings(pb, err) < 0)
    return -1;
  if (json_object_size(pb))
    r->port_bindings = json_deep_copy(pb);
  if (get_bool(hc, "PublishAllPorts", "HostConfig.PublishAllPorts",
               &r->publish_all, err) < 0 ||
      get_bool(hc, "AutoRemove", "HostConfig.AutoRemove", &r->auto_remove,
               err) < 0 ||
      get_bool(hc, "ReadonlyRootfs", "HostConfig.ReadonlyRootfs", &r->read_only,
               err) < 0)
    return -1;
  const json_t *rp = json_object_get(hc, "RestartPolicy");
  if (runspec_restart_parse(rp, &r->restart, &r->max_retry, err) < 0)
    return -1;
  if (r->auto_remove && r->restart != RUNSPEC_RESTART_NO)
    return sh_error(err, 400,
                    "can't create 'AutoRemove' container with restart policy");
  const json_t *init = json_object_get(hc, "Init");
  r->init = json_is_true(init);

  int64_t oom, mem, swap, cpus;
  if (get_int(hc, "OomScoreAdj", "HostConfig.OomScoreAdj", &oom, err) < 0 ||
      get_int(hc, "Memory", "HostConfig.Resources.Memory", &mem, err) < 0 ||
      get_int(hc, "MemorySwap", "HostConfig.Resources.MemorySwap", &swap, err) <
          0 ||
      get_int(hc, "NanoCpus", "HostConfig.Resources.NanoCpus", &cpus, err) < 0)
    return -1;
  if (oom < -1000 || oom > 1000)
    return sh_error(err, 400,
                    "Invalid value %" PRId64
                    ", range for oom score adj is [-1000, 1000]",
                    oom);
  r->oom_score_adj = (int)oom;
  if (mem < 0 || cpus < 0)
    return sh_error(err, 400, "%s cannot be negative",
                    mem < 0 ? "Memory" : "NanoCpus");
  /* dockerd's swap default: twice the memory; other values are a flag
   * shoal does not apply. */
  if (swap != 0 && !(mem && swap == 2 * mem))
    return refuse("HostConfig", "MemorySwap", err);
  r->res.memory_bytes = mem;
  r->res.nano_cpus = cpus;
  const json_t *pids = json_object_get(hc, "PidsLimit");
  if (want_type(pids, JSON_INTEGER, "HostConfig.Resources.PidsLimit", "int64",
                err) < 0)
    return -1;
  r->res.pids_limit = json_is_integer(pids) && json_integer_value(pids) > 0
                          ? json_integer_value(pids)
                          : 0;

  if (exec_caps(json_object_get(hc, "CapAdd"), json_object_get(hc, "CapDrop"),
                &r->caps, err) < 0)
    return -1;
  if (parse_security_opts(r, json_object_get(hc, "SecurityOpt"), err) < 0)
    return -1;
  if (strv(json_object_get(hc, "Dns"), "HostConfig.Dns", false, &r->dns, err) <
          0 ||
      strv(json_object_get(hc, "DnsSearch"), "HostConfig.DnsSearch", false,
           &r->dns_search, err) < 0 ||
      strv(json_object_get(hc, "DnsOptions"), "HostConfig.DnsOptions", false,
           &r->dns_options, err) < 0 ||
      strv(json_object_get(hc, "GroupAdd"), "HostConfig.GroupAdd", false,
           &r->groups, err) < 0 ||
      strv(json_object_get(hc, "ExtraHosts"), "HostConfig.ExtraHosts", false,
           &r->extra_hosts, err) < 0)
    return -1;
  for (char **h = r->extra_hosts; h && *h; h++) {
    /* "name:ip" or "name=ip" */
    char *sep = strpbrk(*h, ":=");
    if (!sep || sep == *h || !sep[1])
      return sh_error(err, 400, "invalid IP address in add-host: \"%s\"",
                      sep ? sep + 1 : "");
    if (strcmp(sep + 1, "host-gateway") == 0)
      return sh_error(err, 501,
                      "--add-host %s: host-gateway is not supported by shoal "
                      "yet",
                      *h);
    *sep = ':';
  }
  r->sysctls = json_object_get(hc, "Sysctls");
  r->ulimits = json_object_get(hc, "Ulimits");
  json_object_foreach((json_t *)r->sysctls, k, v) {
    if (exec_check_sysctl(k, r->net == RUNSPEC_NET_HOST, err) < 0)
      return -1;
  }

  json_t *x = json_pack(
      "{s:{s:s,s:i},s:b,s:b,s:i}", "RestartPolicy", "Name",
      r->restart == RUNSPEC_RESTART_ALWAYS           ? "always"
      : r->restart == RUNSPEC_RESTART_UNLESS_STOPPED ? "unless-stopped"
      : r->restart == RUNSPEC_RESTART_ON_FAILURE     ? "on-failure"
                                                     : "no",
      "MaximumRetryCount", r->max_retry, "AutoRemove", r->auto_remove,
      "PublishAllPorts", r->publish_all, "OomScoreAdj", r->oom_score_adj);
  json_object_set_new(x, "PortBindings",
                      r->port_bindings ? json_deep_copy(r->port_bindings)
                                       : json_object());
  if (json_is_boolean(init))
    json_object_set(x, "Init", (json_t *)init);
  static const char *const copied[] = {"Binds", "CapAdd", "CapDrop",
                                       "SecurityOpt", "Tmpfs"};
  for (size_t c = 0; c < ARRAY_SIZE(copied); c++) {
    const json_t *cv = json_object_get(hc, copied[c]);
    json_object_set_new(x, copied[c],
                        is_zero(cv) ? json_null() : json_deep_copy(cv));
  }
  r->host_config_extra = x;
  return 0;
}

int runspec_parse(const json_t *body, struct runspec *r, sh_err *err) {
  memset(r, 0, sizeof *r);
  if (!json_is_object(body))
    return sh_error(err, 400,
                    "config cannot be empty in order to create a container");
  r->body = json_incref((json_t *)body);
  const json_t *hc = json_object_get(body, "HostConfig");
  const json_t *nc = json_object_get(body, "NetworkingConfig");
  if (parse_config(body, r, err) < 0 || parse_host_config(hc, r, err) < 0 ||
      parse_network(hc, nc, r, err) < 0) {
    runspec_free(r);
    return -1;
  }
  json_object_set_new(r->host_config_extra, "NetworkMode",
                      json_string(r->net == RUNSPEC_NET_HOST    ? "host"
                                  : r->net == RUNSPEC_NET_NONE  ? "none"
                                  : r->net == RUNSPEC_NET_SWARM ? r->network
                                                                : "bridge"));
  return 0;
}

void runspec_free(struct runspec *r) {
  strv_free(r->entrypoint);
  strv_free(r->cmd);
  strv_free(r->env);
  strv_free(r->bind_sources);
  strv_free(r->dns);
  strv_free(r->dns_search);
  strv_free(r->dns_options);
  strv_free(r->groups);
  strv_free(r->extra_hosts);
  for (size_t i = 0; i < r->n_mounts; i++) {
    free((char *)r->mounts[i].source);
    free((char *)r->mounts[i].target);
  }
  free(r->mounts);
  free(r->caps);
  json_decref(r->labels);
  json_decref(r->port_bindings);
  json_decref(r->config_extra);
  json_decref(r->host_config_extra);
  json_decref(r->body);
  memset(r, 0, sizeof *r);
}

bool runspec_name_ok(const char *n) {
  if (n[0] == '/')
    n++;
  if (!isalnum((unsigned char)n[0]) || !n[1])
    return false;
  for (const char *c = n + 1; *c; c++)
    if (!isalnum((unsigned char)*c) && !strchr("_.-", *c))
      return false;
  return true;
}

void runspec_random_name(uint64_t r, char *out, size_t n) {
  /* Docker's shape (adjective_surname); our own words. */
  static const char *const adj[] = {
      "amber",  "brave",  "calm",  "deft",  "eager",  "fond",   "gentle",
      "hardy",  "keen",   "lucid", "merry", "nimble", "placid", "quiet",
      "rapid",  "serene", "tidy",  "vivid", "wise",   "zesty",  "bold",
      "clever", "jolly",  "proud", "sunny", "witty",  "agile",  "bright"};
  static const char *const fish[] = {
      "anchovy", "barracuda",  "cod",  "dory",    "eel",       "flounder",
      "grouper", "herring",    "ide",  "jack",    "koi",       "lamprey",
      "marlin",  "needlefish", "opah", "pike",    "quillback", "roach",
      "sardine", "tuna",       "uaru", "vendace", "wrasse",    "yellowtail",
      "zander",  "bream",      "carp", "mackerel"};
  snprintf(out, n, "%s_%s", adj[r % ARRAY_SIZE(adj)],
           fish[(r / ARRAY_SIZE(adj)) % ARRAY_SIZE(fish)]);
}

/* ---- docker update ---- */

int runspec_update_parse(const json_t *body, struct exec_update *out,
                         sh_err *err) {
  static const char *const handled[] = {
      "Memory",           "MemorySwap", "MemoryReservation", "NanoCpus",
      "CpuShares",        "CpuPeriod",  "CpuQuota",          "CpusetCpus",
      "CpusetMems",       "PidsLimit",  "BlkioWeight",       "RestartPolicy",
      "MemorySwappiness", NULL};
  memset(out, 0, sizeof *out);
  if (want_type(body, JSON_OBJECT, "UpdateConfig", "container.UpdateConfig",
                err) < 0 ||
      only_zero_besides(body, "Resources", handled, err) < 0)
    return -1;
  const json_t *swp = json_object_get(body, "MemorySwappiness");
  if (swp && !json_is_null(swp) && jx_int(body, "MemorySwappiness", -1) != -1)
    return refuse("Resources", "MemorySwappiness", err);
  struct {
    const char *key;
    int64_t *dst;
  } ints[] = {
      {"Memory", &out->memory},
      {"MemorySwap", &out->memory_swap},
      {"MemoryReservation", &out->memory_reservation},
      {"NanoCpus", &out->nano_cpus},
      {"CpuShares", &out->cpu_shares},
      {"CpuPeriod", &out->cpu_period},
      {"CpuQuota", &out->cpu_quota},
      {"BlkioWeight", &out->blkio_weight},
  };
  for (size_t i = 0; i < ARRAY_SIZE(ints); i++) {
    cleanup_free char *what =
        xasprintf("UpdateConfig.Resources.%s", ints[i].key);
    if (get_int(body, ints[i].key, what, ints[i].dst, err) < 0)
      return -1;
  }
  if (get_str(body, "CpusetCpus", "UpdateConfig.Resources.CpusetCpus",
              &out->cpuset_cpus, err) < 0 ||
      get_str(body, "CpusetMems", "UpdateConfig.Resources.CpusetMems",
              &out->cpuset_mems, err) < 0)
    return -1;
  const json_t *pids = json_object_get(body, "PidsLimit");
  if (want_type(pids, JSON_INTEGER, "UpdateConfig.Resources.PidsLimit", "int64",
                err) < 0)
    return -1;
  out->has_pids = json_is_integer(pids);
  out->pids_limit = out->has_pids ? json_integer_value(pids) : 0;
  const json_t *rp = json_object_get(body, "RestartPolicy");
  if (want_type(rp, JSON_OBJECT, "UpdateConfig.RestartPolicy",
                "container.RestartPolicy", err) < 0)
    return -1;
  if (*jx_str(rp, "Name", "")) {
    enum runspec_restart r;
    int max;
    if (runspec_restart_parse(rp, &r, &max, err) < 0)
      return -1;
    out->restart_policy = rp;
  }
  return 0;
}

int runspec_endpoint_error(sh_err *err, const char *net, int ip_err,
                           bool alias_err) {
  static const char ip_user[] =
      "user specified IP address is supported on user defined networks only";
  static const char ip_subnet[] =
      "user specified IP address is supported only when connecting to "
      "networks with user configured subnets";
  static const char alias[] = "network-scoped alias is supported only for "
                              "containers in user defined networks";
  const char *ip = ip_err == RUNSPEC_EP_IP_NOT_USER_NET ? ip_user
                   : ip_err == RUNSPEC_EP_IP_NO_SUBNET  ? ip_subnet
                                                        : NULL;
  char what[512];
  if (ip && alias_err) /* dockerd's multierror: a bullet each */
    snprintf(what, sizeof what, "* %s\n* %s", ip, alias);
  else
    snprintf(what, sizeof what, "%s", ip ? ip : alias);
  if (net)
    return sh_error(err, 400,
                    "invalid config for network %s: invalid endpoint "
                    "settings:\n%s",
                    net, what);
  return sh_error(err, 400, "invalid endpoint settings:\n%s", what);
}
