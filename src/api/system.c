/* _ping, version, info. */
#include "api/api.h"

#include "agent/agent.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "core/workq.h"
#include "daemon/daemon.h"
#include "exec/exec.h"
#include "image/image.h"
#include "http/server.h"
#include "manager/manager.h"
#include "store/store.h"

#include <dirent.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>

static const char *swarm_header(struct shoald *d, char *buf, size_t n) {
  if (d->swarm == SWARM_INACTIVE)
    snprintf(buf, n, "inactive");
  else
    snprintf(buf, n, "%s/%s", shoald_swarm_state_name(d),
             shoald_is_manager(d) ? "manager" : "worker");
  return buf;
}

static void ping(struct api_call *c) {
  char sw[64], swh[80];
  snprintf(swh, sizeof swh, "Swarm: %s", swarm_header(c->d, sw, sizeof sw));
  const char *headers[] = {"Api-Version: " SHOAL_API_VERSION,
                           "Builder-Version: 1",
                           "Docker-Experimental: false",
                           "Ostype: linux",
                           swh,
                           "Cache-Control: no-cache, no-store, must-revalidate",
                           "Pragma: no-cache",
                           NULL};
  bool head = strcmp(c->req->method, "HEAD") == 0;
  http_respond(c->req, 200, "text/plain; charset=utf-8", head ? "" : "OK",
               head ? 0 : 2, headers);
}

static const char *os_pretty(char *buf, size_t n) {
  cleanup_free char *data = NULL;
  snprintf(buf, n, "Linux");
  if (read_file("/etc/os-release", &data, NULL, NULL) < 0)
    return buf;
  char *p = strstr(data, "PRETTY_NAME=");
  if (!p)
    return buf;
  p += strlen("PRETTY_NAME=");
  if (*p == '"')
    p++;
  size_t len = strcspn(p, "\"\n");
  snprintf(buf, n, "%.*s", (int)len, p);
  return buf;
}

static const char *os_version(char *buf, size_t n) {
  cleanup_free char *data = NULL;
  buf[0] = '\0';
  if (read_file("/etc/os-release", &data, NULL, NULL) < 0)
    return buf;
  char *p = strstr(data, "\nVERSION_ID=");
  if (!p)
    return buf;
  p += strlen("\nVERSION_ID=");
  if (*p == '"')
    p++;
  size_t len = strcspn(p, "\"\n");
  snprintf(buf, n, "%.*s", (int)len, p);
  return buf;
}

/* The build time as RFC 3339, like dockerd's "BuildTime": the Makefile's
 * SHOAL_BUILD_TIME (SOURCE_DATE_EPOCH or the commit's time, so package
 * builds are reproducible), else the compiler's clock. */
static const char *build_time(void) {
  static char out[64];
#ifdef SHOAL_BUILD_TIME
  /* "2026-12-02T04:00:00Z" */
  snprintf(out, sizeof out, "%.19s.000000000+00:00", SHOAL_BUILD_TIME);
  return out;
#else
  if (!out[0]) {
    struct tm tm = {0};
    char when[64];
    snprintf(when, sizeof when, "%s %s", __DATE__, __TIME__);
    if (strptime(when, "%b %d %Y %H:%M:%S", &tm))
      strftime(out, sizeof out, "%Y-%m-%dT%H:%M:%S.000000000+00:00", &tm);
    else
      snprintf(out, sizeof out, "%s", when);
  }
  return out;
#endif
}

static json_t *version_json(void) {
  struct utsname u;
  uname(&u);
  const char *arch = strcmp(u.machine, "x86_64") == 0    ? "amd64"
                     : strcmp(u.machine, "aarch64") == 0 ? "arm64"
                                                         : u.machine;
  json_t *details =
      json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "ApiVersion",
                SHOAL_API_VERSION, "MinAPIVersion", SHOAL_MIN_API_VERSION,
                "GitCommit", "shoal", "GoVersion", "n/a (C)", "BuildTime",
                build_time(), "Experimental", "false", "Os", "linux", "Arch",
                arch, "KernelVersion", u.release);
  return json_pack(
      "{s:{s:s}, s:[{s:s, s:s, s:o}], s:s, s:s, s:s, s:s, s:s, s:s, s:s, "
      "s:s, s:s}",
      "Platform", "Name", "shoal", "Components", "Name", "Engine", "Version",
      SHOAL_VERSION, "Details", details, "Version", SHOAL_VERSION, "ApiVersion",
      SHOAL_API_VERSION, "MinAPIVersion", SHOAL_MIN_API_VERSION, "GitCommit",
      "shoal", "GoVersion", "n/a (C)", "Os", "linux", "Arch", arch,
      "KernelVersion", u.release, "BuildTime", build_time());
}

/* The Swarm block of /info (moby's SwarmInfo). */
static json_t *swarm_info(struct shoald *d) {
  json_t *s = json_pack(
      "{s:s, s:s, s:s, s:b, s:s}", "NodeID", d->node_id, "NodeAddr", "",
      "LocalNodeState", shoald_swarm_state_name(d), "ControlAvailable",
      shoald_is_manager(d), "Error", d->swarm_error ? d->swarm_error : "");
  if (d->swarm == SWARM_INACTIVE) {
    json_object_set_new(s, "RemoteManagers", json_null());
    return s;
  }
  char ip[64] = "";
  if (d->advertise_addr && *d->advertise_addr) {
    snprintf(ip, sizeof ip, "%s", d->advertise_addr);
    char *colon = strrchr(ip, ':');
    if (colon && strchr(ip, ':') == colon)
      *colon = '\0';
  }
  if (!ip[0] && agent_node_addr(d->agent))
    snprintf(ip, sizeof ip, "%s", agent_node_addr(d->agent));
  json_object_set_new(s, "NodeAddr", json_string(ip));
  json_t *remotes = json_array();
  if (d->mgr) {
    struct store *st = manager_store(d->mgr);
    json_t *nodes = store_list(st, STORE_NODE);
    size_t i, managers = 0;
    json_t *n;
    json_array_foreach(nodes, i, n) {
      const char *addr = jx_str(n, "ManagerStatus.Addr", NULL);
      if (addr) {
        managers++;
        json_array_append_new(remotes,
                              json_pack("{s:s, s:s}", "NodeID",
                                        jx_str(n, "ID", ""), "Addr", addr));
      }
    }
    json_object_set_new(s, "Nodes",
                        json_integer((json_int_t)json_array_size(nodes)));
    json_object_set_new(s, "Managers", json_integer((json_int_t)managers));
    json_decref(nodes);
    json_t *cluster = manager_swarm_view(d->mgr);
    if (cluster) {
      json_object_del(cluster, "JoinTokens");
      json_object_set_new(s, "Cluster", cluster);
    }
  } else {
    size_t i;
    json_t *a;
    json_array_foreach(d->managers, i, a) json_array_append_new(
        remotes, json_pack("{s:s, s:O}", "NodeID", "", "Addr", a));
  }
  json_object_set_new(s, "RemoteManagers", remotes);
  return s;
}

/* "2" on a unified hierarchy (cgroup2 mounted at /sys/fs/cgroup). */
static const char *cgroup_version(void) {
  return access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0 ? "2" : "1";
}

/* The counts /info shows, read from the executor and the image store on
 * the read queue (both touch disk). */
struct info_job {
  struct http_req *req;
  struct shoald *d;
  json_t *body;
  json_int_t all, running, images;
};

static void info_count(void *ud) {
  struct info_job *j = ud;
  sh_err err = {0};
  cleanup_json json_t *ctrs = NULL;
  if (j->d->exec && exec_inspect_all(j->d->exec, &ctrs, &err) == 0) {
    size_t i;
    json_t *ci;
    json_array_foreach(ctrs, i, ci) {
      j->all++;
      if (strcmp(jx_str(ci, "State.Status", ""), "running") == 0)
        j->running++;
    }
  }
  cleanup_json json_t *imgs = NULL;
  if (j->d->images && image_list(j->d->images, &imgs, &err) == 0)
    j->images = (json_int_t)json_array_size(imgs);
}

static void info_done(void *ud, int cancelled) {
  struct info_job *j = ud;
  /* shoal has no paused containers: every one not running is stopped. */
  json_object_set_new(j->body, "Containers", json_integer(j->all));
  json_object_set_new(j->body, "ContainersRunning", json_integer(j->running));
  json_object_set_new(j->body, "ContainersPaused", json_integer(0));
  json_object_set_new(j->body, "ContainersStopped",
                      json_integer(j->all - j->running));
  json_object_set_new(j->body, "Images", json_integer(j->images));
  api_reply_json(j->req, 200, j->body);
  free(j);
}

/* dockerd's registry.ServiceConfig: CIDRs among the insecure registries
 * apart, the other names as IndexConfigs not Secure; docker.io official
 * with the mirrors. 127.0.0.0/8 is insecure always, as in dockerd. */
static json_t *registry_config(const struct shoald_config *cfg) {
  json_t *cidrs = json_pack("[s, s]", "::1/128", "127.0.0.0/8");
  json_t *mirrors = json_array();
  for (char **p = cfg->mirrors; p && *p; p++)
    json_array_append_new(mirrors, json_string(*p));
  json_t *idx = json_object();
  for (char **p = cfg->insecure; p && *p; p++) {
    if (strchr(*p, '/'))
      json_array_append_new(cidrs, json_string(*p));
    else
      json_object_set_new(idx, *p,
                          json_pack("{s:s, s:[], s:b, s:b}", "Name", *p,
                                    "Mirrors", "Secure", 0, "Official", 0));
  }
  json_object_set_new(idx, "docker.io",
                      json_pack("{s:s, s:O, s:b, s:b}", "Name", "docker.io",
                                "Mirrors", mirrors, "Secure", 1, "Official",
                                1));
  return json_pack("{s:o, s:o, s:o}", "InsecureRegistryCIDRs", cidrs,
                   "IndexConfigs", idx, "Mirrors", mirrors);
}

static void info(struct api_call *c) {
  struct shoald *d = c->d;
  struct utsname u;
  uname(&u);
  struct sysinfo si;
  sysinfo(&si);
  char os[128], osv[64], now[64];
  clock_format_rfc3339(clock_wall_ns(), now, sizeof now);
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  int nfd = 0;
  DIR *dir = opendir("/proc/self/fd");
  if (dir) {
    while (readdir(dir))
      nfd++;
    closedir(dir);
    nfd -= 3; /* ., .. and the dir's own fd */
  }
  json_t *j = json_pack(
      "{s:s, s:i, s:i, s:i, s:i, s:i, s:s, s:[], s:{s:[s], s:[s, s, s, s], "
      "s:n, s:[s]}, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b, "
      "s:i, s:b, s:i, s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:s, s:s, s:s}",
      "ID", d->node_id[0] ? d->node_id : "", "Containers", 0,
      "ContainersRunning", 0, "ContainersPaused", 0, "ContainersStopped", 0,
      "Images", 0, "Driver", "overlay2", "DriverStatus", "Plugins", "Volume",
      "local", "Network", "bridge", "host", "null", "overlay", "Authorization",
      "Log", "k8s-file", "MemoryLimit", 1, "SwapLimit", 1, "KernelMemoryTCP", 0,
      "CpuCfsPeriod", 1, "CpuCfsQuota", 1, "CPUShares", 1, "CPUSet", 1,
      "PidsLimit", 1, "IPv4Forwarding", 1, "Debug", d->cfg.debug,
      "OomKillDisable", 0, "NFd", nfd, "ExperimentalBuild", 0, "NGoroutines", 1,
      "SystemTime", now, "LoggingDriver", "k8s-file", "CgroupDriver",
      "cgroupfs", "CgroupVersion", cgroup_version(), "NEventsListener", 0,
      "KernelVersion", u.release, "OperatingSystem", os_pretty(os, sizeof os),
      "OSVersion", os_version(osv, sizeof osv), "OSType", "linux",
      "Architecture", u.machine);
  json_object_set_new(j, "IndexServerAddress",
                      json_string("https://index.docker.io/v1/"));
  json_object_set_new(j, "RegistryConfig", registry_config(&d->cfg));
  if (json_array_size(d->cfg.pools))
    json_object_set_new(j, "DefaultAddressPools", json_deep_copy(d->cfg.pools));
  json_object_set_new(j, "NCPU", json_integer(ncpu > 0 ? ncpu : 1));
  json_object_set_new(j, "MemTotal",
                      json_integer((json_int_t)si.totalram * si.mem_unit));
  json_object_set_new(j, "DockerRootDir", json_string(d->cfg.data_root));
  json_object_set_new(j, "HttpProxy", json_string(""));
  json_object_set_new(j, "HttpsProxy", json_string(""));
  json_object_set_new(j, "NoProxy", json_string(""));
  json_object_set_new(j, "Name", json_string(d->hostname));
  json_t *labels = json_array();
  for (char **p = d->cfg.labels; p && *p; p++)
    json_array_append_new(labels, json_string(*p));
  json_object_set_new(j, "Labels", labels);
  json_object_set_new(j, "ServerVersion", json_string(SHOAL_VERSION));
  json_object_set_new(j, "Runtimes",
                      json_pack("{s:{s:s}}", "crun", "path", "/usr/bin/crun"));
  json_object_set_new(j, "DefaultRuntime", json_string("crun"));
  json_object_set_new(j, "Swarm", swarm_info(d));
  json_object_set_new(j, "LiveRestoreEnabled", json_false());
  json_object_set_new(j, "Isolation", json_string(""));
  json_object_set_new(j, "InitBinary", json_string(""));
  /* Only what tasks here really get: the default seccomp profile when it
   * was read and a runtime applies it. No AppArmor or SELinux. */
  json_t *so = json_array();
  if (d->exec && d->seccomp)
    json_array_append_new(so, json_string("name=seccomp,profile=builtin"));
  json_object_set_new(j, "SecurityOptions", so);
  json_object_set_new(j, "Warnings", json_array());
  struct info_job *job = xcalloc(1, sizeof *job);
  job->req = c->req;
  job->d = d;
  job->body = j;
  workq_submit(d->reads ? d->reads : d->work, info_count, info_done, job);
}

bool api_system(struct api_call *c) {
  const char *m = c->req->method;
  if (strcmp(c->path, "/_ping") == 0 &&
      (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)) {
    ping(c);
    return true;
  }
  if (strcmp(c->path, "/version") == 0 && strcmp(m, "GET") == 0) {
    api_reply_json(c->req, 200, version_json());
    return true;
  }
  if (strcmp(c->path, "/info") == 0 && strcmp(m, "GET") == 0) {
    info(c);
    return true;
  }
  return false;
}
