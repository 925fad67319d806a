/* docker update: a container's resources changed as dockerd does (checks,
 * conflicts with what is set, the HostConfig kept), applied to a running
 * container through crun's own `crun update --resources` (see exec.h). */
#include "exec/internal.h"

#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#define CGROUP_ROOT "/sys/fs/cgroup"
#define MIN_MEMORY (6 * 1024 * 1024)
#define CPU_PERIOD 100000

/* ---- cpuset lists: "0-2,4" (moby's parsers.ParseUintList) ---- */

#define CPUSET_MAX 4096

/* Marks the list's members in set; false for a malformed list. */
static bool cpuset_parse(const char *s, bool *set) {
  if (!*s)
    return true;
  const char *p = s;
  for (;;) {
    char *end;
    if (!isdigit((unsigned char)*p))
      return false;
    unsigned long a = strtoul(p, &end, 10), b = a;
    if (*end == '-') {
      if (!isdigit((unsigned char)end[1]))
        return false;
      b = strtoul(end + 1, &end, 10);
    }
    if (b < a || b >= CPUSET_MAX)
      return false;
    for (unsigned long i = a; i <= b; i++)
      set[i] = true;
    if (*end == '\0')
      return true;
    if (*end != ',')
      return false;
    p = end + 1;
  }
}

int exec_cpuset_check(const char *list, const char *avail, const char *what,
                      sh_err *err) {
  if (!list || !*list)
    return 0;
  bool want[CPUSET_MAX] = {0}, have[CPUSET_MAX] = {0};
  if (!cpuset_parse(list, want))
    return sh_error(err, 400,
                    "Invalid value %s for cpuset %s: invalid format: %s", list,
                    what, list);
  if (!cpuset_parse(avail ? avail : "0", have))
    return 0; /* the host's list unreadable: the kernel decides */
  for (size_t i = 0; i < CPUSET_MAX; i++)
    if (want[i] && !have[i])
      return sh_error(
          err, 400,
          "Requested %s are not available - requested %s, available: %s",
          strcmp(what, "cpus") == 0 ? "CPUs" : "memory nodes", list, avail);
  return 0;
}

/* ---- the new HostConfig (pure) ---- */

/* verifyPlatformContainerResources (update: true) on the request. */
static int verify(struct exec_update *u, const struct exec_update_host *h,
                  json_t *warnings, sh_err *err) {
  if (u->memory != 0 && u->memory < MIN_MEMORY)
    return sh_error(err, 400, "Minimum memory limit allowed is 6MB");
  if (u->memory > 0 && u->memory_swap != -1 && !h->swap_limit) {
    json_array_append_new(
        warnings, json_string("Your kernel does not support swap limit "
                              "capabilities or the cgroup is not mounted. "
                              "Memory limited without swap."));
    u->memory_swap = -1;
  }
  if (u->memory > 0 && u->memory_swap > 0 && u->memory_swap < u->memory)
    return sh_error(err, 400,
                    "Minimum memoryswap limit should be larger than memory "
                    "limit, see usage");
  if (u->memory_reservation > 0 && u->memory_reservation < MIN_MEMORY)
    return sh_error(err, 400, "Minimum memory reservation allowed is 6MB");
  if (u->memory > 0 && u->memory_reservation > 0 &&
      u->memory < u->memory_reservation)
    return sh_error(err, 400,
                    "Minimum memory limit can not be less than memory "
                    "reservation limit, see usage");
  if (u->nano_cpus > 0 && u->cpu_period > 0)
    return sh_error(err, 400,
                    "Conflicting options: Nano CPUs and CPU Period cannot "
                    "both be set");
  if (u->nano_cpus > 0 && u->cpu_quota > 0)
    return sh_error(err, 400,
                    "Conflicting options: Nano CPUs and CPU Quota cannot both "
                    "be set");
  if (u->nano_cpus != 0 &&
      (u->nano_cpus < 0 || u->nano_cpus > h->ncpu * 1000000000LL))
    return sh_error(err, 400,
                    "Range of CPUs is from 0.01 to %ld.00, as there are only "
                    "%ld CPUs available",
                    h->ncpu, h->ncpu);
  if (u->cpu_period != 0 && (u->cpu_period < 1000 || u->cpu_period > 1000000))
    return sh_error(err, 400,
                    "CPU cfs period can not be less than 1ms (i.e. 1000) or "
                    "larger than 1s (i.e. 1000000)");
  if (u->cpu_quota > 0 && u->cpu_quota < 1000)
    return sh_error(err, 400,
                    "CPU cfs quota can not be less than 1ms (i.e. 1000)");
  if (exec_cpuset_check(u->cpuset_cpus, h->cpus, "cpus", err) < 0 ||
      exec_cpuset_check(u->cpuset_mems, h->mems, "mems", err) < 0)
    return -1;
  if (u->blkio_weight > 0 && !h->blkio_weight) {
    json_array_append_new(
        warnings, json_string("Your kernel does not support Block I/O weight "
                              "or the cgroup is not mounted. Weight "
                              "discarded."));
    u->blkio_weight = 0;
  }
  if (u->blkio_weight > 0 && (u->blkio_weight < 10 || u->blkio_weight > 1000))
    return sh_error(err, 400, "Range of blkio weight is from 10 to 1000");
  return 0;
}

static void set_int(json_t *hc, const char *k, int64_t v) {
  json_object_set_new(hc, k, json_integer(v));
}

int exec_update_merge(const json_t *hc, const struct exec_update *req,
                      const struct exec_update_host *h, json_t *warnings,
                      json_t **out, sh_err *err) {
  struct exec_update u = *req;
  if (verify(&u, h, warnings, err) < 0)
    return -1;
  /* moby's UpdateContainer: NanoCpus and CpuPeriod/CpuQuota exclude each
   * other across updates too. */
  int64_t cur_period = jx_int(hc, "CpuPeriod", 0),
          cur_quota = jx_int(hc, "CpuQuota", 0),
          cur_nano = jx_int(hc, "NanoCpus", 0),
          cur_swap = jx_int(hc, "MemorySwap", 0);
  if (u.nano_cpus > 0 && cur_period > 0)
    return sh_error(err, 409,
                    "Conflicting options: Nano CPUs cannot be updated as CPU "
                    "Period has already been set");
  if (u.nano_cpus > 0 && cur_quota > 0)
    return sh_error(err, 409,
                    "Conflicting options: Nano CPUs cannot be updated as CPU "
                    "Quota has already been set");
  if (u.cpu_period > 0 && cur_nano > 0)
    return sh_error(err, 409,
                    "Conflicting options: CPU Period cannot be updated as "
                    "NanoCPUs has already been set");
  if (u.cpu_quota > 0 && cur_nano > 0)
    return sh_error(err, 409,
                    "Conflicting options: CPU Quota cannot be updated as "
                    "NanoCPUs has already been set");
  if (u.memory != 0 && u.memory > cur_swap && u.memory_swap == 0)
    return sh_error(err, 409,
                    "Memory limit should be smaller than already set "
                    "memoryswap limit, update the memoryswap at the same "
                    "time");
  const char *rp = jx_str(req->restart_policy, "Name", "");
  if (*rp && strcmp(rp, "no") != 0 && jx_bool(hc, "AutoRemove", false))
    return sh_error(err, 409,
                    "Restart policy cannot be updated because AutoRemove is "
                    "enabled for the container");

  json_t *n = json_deep_copy(hc);
  if (u.blkio_weight)
    set_int(n, "BlkioWeight", u.blkio_weight);
  if (u.cpu_shares)
    set_int(n, "CpuShares", u.cpu_shares);
  if (u.nano_cpus)
    set_int(n, "NanoCpus", u.nano_cpus);
  if (u.cpu_period)
    set_int(n, "CpuPeriod", u.cpu_period);
  if (u.cpu_quota)
    set_int(n, "CpuQuota", u.cpu_quota);
  if (u.cpuset_cpus && *u.cpuset_cpus)
    json_object_set_new(n, "CpusetCpus", json_string(u.cpuset_cpus));
  if (u.cpuset_mems && *u.cpuset_mems)
    json_object_set_new(n, "CpusetMems", json_string(u.cpuset_mems));
  if (u.memory)
    set_int(n, "Memory", u.memory);
  if (u.memory_swap)
    set_int(n, "MemorySwap", u.memory_swap);
  if (u.memory_reservation)
    set_int(n, "MemoryReservation", u.memory_reservation);
  if (u.has_pids)
    set_int(n, "PidsLimit", u.pids_limit);
  if (*rp)
    json_object_set_new(n, "RestartPolicy",
                        json_deep_copy(req->restart_policy));
  *out = n;
  return 0;
}

json_t *exec_update_resources(const json_t *hc) {
  json_t *r = json_object();
  int64_t v;
  if ((v = jx_int(hc, "BlkioWeight", 0)) != 0)
    json_object_set_new(r, "blockIO",
                        json_pack("{s:I}", "weight", (json_int_t)v));
  json_t *cpu = json_object();
  const char *s;
  if (*(s = jx_str(hc, "CpusetCpus", "")))
    json_object_set_new(cpu, "cpus", json_string(s));
  if (*(s = jx_str(hc, "CpusetMems", "")))
    json_object_set_new(cpu, "mems", json_string(s));
  if ((v = jx_int(hc, "CpuShares", 0)) != 0)
    json_object_set_new(cpu, "shares", json_integer(v));
  int64_t period = 0, quota = 0, nano = jx_int(hc, "NanoCpus", 0);
  if (nano) {
    period = CPU_PERIOD;
    quota = nano * CPU_PERIOD / 1000000000;
  }
  if (!quota)
    quota = jx_int(hc, "CpuQuota", 0);
  if (!period)
    period = jx_int(hc, "CpuPeriod", 0);
  if (quota)
    json_object_set_new(cpu, "quota", json_integer(quota));
  if (period)
    json_object_set_new(cpu, "period", json_integer(period));
  if (json_object_size(cpu))
    json_object_set_new(r, "cpu", cpu);
  else
    json_decref(cpu);
  json_t *mem = json_object();
  if ((v = jx_int(hc, "Memory", 0)) != 0)
    json_object_set_new(mem, "limit", json_integer(v));
  if ((v = jx_int(hc, "MemoryReservation", 0)) != 0)
    json_object_set_new(mem, "reservation", json_integer(v));
  if ((v = jx_int(hc, "MemorySwap", 0)) > 0)
    json_object_set_new(mem, "swap", json_integer(v));
  if (json_object_size(mem))
    json_object_set_new(r, "memory", mem);
  else
    json_decref(mem);
  const json_t *pids = json_object_get(hc, "PidsLimit");
  if (json_is_integer(pids))
    json_object_set_new(r, "pids",
                        json_pack("{s:I}", "limit",
                                  (json_int_t)(json_integer_value(pids) > 0
                                                   ? json_integer_value(pids)
                                                   : -1)));
  return r;
}

/* ---- on the host ---- */

static char *online(const char *path, const char *dflt) {
  char *s = NULL;
  size_t len = 0;
  if (read_file(path, &s, &len, NULL) < 0)
    return xstrdup(dflt);
  s[strcspn(s, "\n")] = '\0';
  return s;
}

/* Where crun 1.8 writes a weight: blkio.weight on v1 (it does not fall
 * back to BFQ's file there), io.bfq.weight or io.weight on v2. */
static bool blkio_weight(const executor *ex, const char *cg) {
  static const char *const files[] = {"blkio.weight", "io.weight",
                                      "io.bfq.weight"};
  bool v2 = ex->cgmode == EXEC_CGROUP_V2;
  for (size_t i = v2 ? 1 : 0; i < (v2 ? 3u : 1u); i++) {
    cleanup_free char *f =
        v2 ? xasprintf(CGROUP_ROOT "%s/%s", cg, files[i])
           : xasprintf(CGROUP_ROOT "/blkio%s/%s", cg, files[i]);
    if (access(f, F_OK) == 0)
      return true;
  }
  return false;
}

/* Replaces what update owns in the bundle's linux.resources. */
static void set_bundle(json_t *oci, const json_t *res) {
  json_t *lr = jx_get(oci, "linux.resources");
  if (!json_is_object(lr)) {
    lr = json_object();
    json_object_set_new(json_object_get(oci, "linux"), "resources", lr);
  }
  static const char *const keys[] = {"memory", "cpu", "pids", "blockIO"};
  for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
    json_t *v = json_object_get(res, keys[i]);
    if (v)
      json_object_set(lr, keys[i], v);
    else
      json_object_del(lr, keys[i]);
  }
}

static int crun_update(executor *ex, const char *id, const struct ctr_paths *p,
                       const json_t *res, sh_err *err) {
  cleanup_free char *file = xasprintf("%s/update.json", p->run);
  if (exec_write_json(file, res, err) < 0)
    return -1;
  cleanup_free char *root = xasprintf("--root=%s", ex->crun_root);
  cleanup_free char *arg = xasprintf("--resources=%s", file);
  const char *argv[] = {ex->crun, root, "update", arg, id, NULL};
  cleanup_free char *out = NULL;
  int rc = exec_proc_run(argv, &out, err);
  unlink(file);
  if (rc < 0)
    return -1;
  if (rc != 0)
    return sh_error(err, 500, "crun update: %s", out ? out : "failed");
  return 0;
}

static int update_locked(executor *ex, const char *id,
                         const struct exec_update *u, json_t *warnings,
                         sh_err *err) {
  cleanup_paths struct ctr_paths p = {0};
  cleanup_json json_t *meta = NULL;
  if (exec_load_meta(ex, id, &p, &meta, err) < 0)
    return -1;
  cleanup_json json_t *oci = exec_read_json(p.config);
  if (!json_is_object(oci))
    return sh_error(err, 500,
                    "Cannot update container %s: its bundle is "
                    "unreadable",
                    id);
  const char *cg = jx_str(meta, "Shoal.Cgroup", "/shoal/none");
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  cleanup_free char *cpus = online("/sys/devices/system/cpu/online", "0");
  cleanup_free char *mems = online("/sys/devices/system/node/online", "0");
  struct exec_update_host h = {
      .ncpu = ncpu < 1 ? 1 : ncpu,
      .swap_limit = ex->swap_limit,
      .blkio_weight = blkio_weight(ex, cg) || blkio_weight(ex, ""),
      .cpus = cpus,
      .mems = mems,
  };
  cleanup_json json_t *hc = NULL;
  if (exec_update_merge(json_object_get(meta, "HostConfig"), u, &h, warnings,
                        &hc, err) < 0) {
    /* moby's errCannotUpdate: only UpdateContainer's own conflicts. */
    if (err && err->status == 409) {
      char msg[sizeof err->msg];
      snprintf(msg, sizeof msg, "%s", err->msg);
      sh_error(err, 409, "Cannot update container %s: %s", id, msg);
    }
    return -1;
  }
  cleanup_json json_t *res = exec_update_resources(hc);
  struct exec_state st;
  if (exec_state(ex, id, &st, err) < 0)
    return -1;
  /* Applied first: a value the kernel refuses leaves the files as they
   * were. */
  if (st.status == EXEC_STATUS_RUNNING &&
      crun_update(ex, id, &p, res, err) < 0) {
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "%s", err->msg);
    return sh_error(err, 500, "Cannot update container %s: %s", id, msg);
  }
  set_bundle(oci, res);
  if (exec_write_json(p.config, oci, err) < 0)
    return -1;
  json_object_set(meta, "HostConfig", hc);
  return exec_write_json(p.meta, meta, err);
}

int exec_update(executor *ex, const char *id, const struct exec_update *u,
                json_t *warnings, sh_err *err) {
  pthread_mutex_lock(&ex->meta_mu);
  int rc = update_locked(ex, id, u, warnings, err);
  pthread_mutex_unlock(&ex->meta_mu);
  return rc;
}
