/* cgroup v1/v2 files -> the Engine API's stats objects. */
#include "exec/cgstats.h"

#include "core/jsonx.h"
#include "core/util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *slurp(const char *cgroot, const char *ctl, const char *cgroup,
                   const char *file) {
  cleanup_free char *path =
      ctl ? xasprintf("%s/%s%s/%s", cgroot, ctl, cgroup, file)
          : xasprintf("%s%s/%s", cgroot, cgroup, file);
  char *s = NULL;
  size_t len = 0;
  if (read_file(path, &s, &len, NULL) < 0)
    return NULL;
  return s;
}

/* A file holding one number ("max" and unreadable: false). */
static bool read_u64(const char *cgroot, const char *ctl, const char *cgroup,
                     const char *file, uint64_t *out) {
  cleanup_free char *s = slurp(cgroot, ctl, cgroup, file);
  if (!s || !isdigit((unsigned char)s[0]))
    return false;
  *out = strtoull(s, NULL, 10);
  return true;
}

json_t *cgstats_kv(const char *text) {
  json_t *o = json_object();
  if (!text)
    return o;
  const char *p = text;
  while (*p) {
    const char *eol = strchr(p, '\n');
    size_t len = eol ? (size_t)(eol - p) : strlen(p);
    char key[128];
    unsigned long long v;
    char line[256];
    snprintf(line, sizeof line, "%.*s", (int)(len < 255 ? len : 255), p);
    if (sscanf(line, "%127s %llu", key, &v) == 2)
      json_object_set_new(o, key, json_integer((json_int_t)v));
    p += len;
    if (*p == '\n')
      p++;
  }
  return o;
}

static uint64_t kv_u64(const json_t *o, const char *key) {
  return (uint64_t)json_integer_value(json_object_get(o, key));
}

static json_t *blkio_entry(unsigned maj, unsigned min, const char *op,
                           uint64_t v) {
  return json_pack("{s:I, s:I, s:s, s:I}", "major", (json_int_t)maj, "minor",
                   (json_int_t)min, "op", op, "value", (json_int_t)v);
}

/* v1 blkio.throttle.*: "8:0 Read 4096" lines (and a "Total N" line). */
static json_t *blkio_v1(const char *text) {
  if (!text)
    return json_null();
  json_t *a = json_array();
  const char *p = text;
  while (*p) {
    const char *eol = strchr(p, '\n');
    size_t len = eol ? (size_t)(eol - p) : strlen(p);
    char line[256], op[32];
    unsigned maj, min;
    unsigned long long v;
    snprintf(line, sizeof line, "%.*s", (int)(len < 255 ? len : 255), p);
    if (sscanf(line, "%u:%u %31s %llu", &maj, &min, op, &v) == 4)
      json_array_append_new(a, blkio_entry(maj, min, op, v));
    p += len;
    if (*p == '\n')
      p++;
  }
  return a;
}

/* v2 io.stat: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0". */
static void blkio_v2(const char *text, json_t *bytes, json_t *ios) {
  const char *p = text ? text : "";
  while (*p) {
    const char *eol = strchr(p, '\n');
    size_t len = eol ? (size_t)(eol - p) : strlen(p);
    cleanup_free char *line = xstrndup(p, len);
    unsigned maj, min;
    if (sscanf(line, "%u:%u", &maj, &min) == 2) {
      uint64_t rb = 0, wb = 0, ri = 0, wi = 0;
      char *save = NULL;
      for (char *tok = strtok_r(line, " ", &save); tok;
           tok = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq)
          continue;
        uint64_t v = strtoull(eq + 1, NULL, 10);
        *eq = '\0';
        if (strcmp(tok, "rbytes") == 0)
          rb = v;
        else if (strcmp(tok, "wbytes") == 0)
          wb = v;
        else if (strcmp(tok, "rios") == 0)
          ri = v;
        else if (strcmp(tok, "wios") == 0)
          wi = v;
      }
      json_array_append_new(bytes, blkio_entry(maj, min, "read", rb));
      json_array_append_new(bytes, blkio_entry(maj, min, "write", wb));
      json_array_append_new(ios, blkio_entry(maj, min, "read", ri));
      json_array_append_new(ios, blkio_entry(maj, min, "write", wi));
    }
    p += len;
    if (*p == '\n')
      p++;
  }
}

static json_t *blkio_object(json_t *bytes, json_t *ios) {
  return json_pack("{s:o, s:o, s:n, s:n, s:n, s:n, s:n, s:n}",
                   "io_service_bytes_recursive", bytes, "io_serviced_recursive",
                   ios, "io_queue_recursive", "io_service_time_recursive",
                   "io_wait_time_recursive", "io_merged_recursive",
                   "io_time_recursive", "sectors_recursive");
}

static json_t *read_v1(const char *root, const char *cg, uint64_t machine) {
  uint64_t total = 0, usage = 0, max_usage = 0, limit = 0, pids = 0, pmax = 0;
  read_u64(root, "cpuacct", cg, "cpuacct.usage", &total);
  cleanup_free char *acct = slurp(root, "cpuacct", cg, "cpuacct.stat");
  cleanup_json json_t *ticks = cgstats_kv(acct);
  long hz = sysconf(_SC_CLK_TCK);
  uint64_t tick_ns = hz > 0 ? 1000000000ull / (uint64_t)hz : 10000000ull;
  cleanup_free char *cpustat = slurp(root, "cpu", cg, "cpu.stat");
  cleanup_json json_t *thr = cgstats_kv(cpustat);
  json_t *cpu = json_pack(
      "{s:{s:I, s:I, s:I}, s:{s:I, s:I, s:I}}", "cpu_usage", "total_usage",
      (json_int_t)total, "usage_in_kernelmode",
      (json_int_t)(kv_u64(ticks, "system") * tick_ns), "usage_in_usermode",
      (json_int_t)(kv_u64(ticks, "user") * tick_ns), "throttling_data",
      "periods", (json_int_t)kv_u64(thr, "nr_periods"), "throttled_periods",
      (json_int_t)kv_u64(thr, "nr_throttled"), "throttled_time",
      (json_int_t)kv_u64(thr, "throttled_time"));

  json_t *mem = json_object();
  if (read_u64(root, "memory", cg, "memory.usage_in_bytes", &usage)) {
    read_u64(root, "memory", cg, "memory.max_usage_in_bytes", &max_usage);
    read_u64(root, "memory", cg, "memory.limit_in_bytes", &limit);
    if (machine > 0 && (limit == 0 || limit > machine))
      limit = machine;
    cleanup_free char *ms = slurp(root, "memory", cg, "memory.stat");
    json_object_set_new(mem, "usage", json_integer((json_int_t)usage));
    json_object_set_new(mem, "max_usage", json_integer((json_int_t)max_usage));
    json_object_set_new(mem, "stats", cgstats_kv(ms));
    json_object_set_new(mem, "limit", json_integer((json_int_t)limit));
  }

  cleanup_free char *b =
      slurp(root, "blkio", cg, "blkio.throttle.io_service_bytes_recursive");
  cleanup_free char *s =
      slurp(root, "blkio", cg, "blkio.throttle.io_serviced_recursive");
  json_t *blk = blkio_object(blkio_v1(b), blkio_v1(s));

  json_t *pid = json_object();
  if (read_u64(root, "pids", cg, "pids.current", &pids))
    json_object_set_new(pid, "current", json_integer((json_int_t)pids));
  if (read_u64(root, "pids", cg, "pids.max", &pmax))
    json_object_set_new(pid, "limit", json_integer((json_int_t)pmax));
  return json_pack("{s:o, s:o, s:o, s:o}", "cpu_stats", cpu, "memory_stats",
                   mem, "blkio_stats", blk, "pids_stats", pid);
}

static json_t *read_v2(const char *root, const char *cg, uint64_t machine) {
  cleanup_free char *cpustat = slurp(root, NULL, cg, "cpu.stat");
  cleanup_json json_t *c = cgstats_kv(cpustat);
  json_t *cpu = json_pack(
      "{s:{s:I, s:I, s:I}, s:{s:I, s:I, s:I}}", "cpu_usage", "total_usage",
      (json_int_t)(kv_u64(c, "usage_usec") * 1000), "usage_in_kernelmode",
      (json_int_t)(kv_u64(c, "system_usec") * 1000), "usage_in_usermode",
      (json_int_t)(kv_u64(c, "user_usec") * 1000), "throttling_data", "periods",
      (json_int_t)kv_u64(c, "nr_periods"), "throttled_periods",
      (json_int_t)kv_u64(c, "nr_throttled"), "throttled_time",
      (json_int_t)(kv_u64(c, "throttled_usec") * 1000));

  json_t *mem = json_object();
  uint64_t usage = 0, limit = 0, pids = 0, pmax = 0;
  if (read_u64(root, NULL, cg, "memory.current", &usage)) {
    if (!read_u64(root, NULL, cg, "memory.max", &limit)) /* "max" */
      limit = machine;
    if (machine > 0 && limit > machine)
      limit = machine;
    cleanup_free char *ms = slurp(root, NULL, cg, "memory.stat");
    json_object_set_new(mem, "usage", json_integer((json_int_t)usage));
    json_object_set_new(mem, "stats", cgstats_kv(ms));
    json_object_set_new(mem, "limit", json_integer((json_int_t)limit));
  }

  cleanup_free char *io = slurp(root, NULL, cg, "io.stat");
  json_t *blk;
  if (io) {
    json_t *bytes = json_array(), *ios = json_array();
    blkio_v2(io, bytes, ios);
    blk = blkio_object(bytes, ios);
  } else {
    blk = blkio_object(json_null(), json_null());
  }

  json_t *pid = json_object();
  if (read_u64(root, NULL, cg, "pids.current", &pids))
    json_object_set_new(pid, "current", json_integer((json_int_t)pids));
  if (read_u64(root, NULL, cg, "pids.max", &pmax))
    json_object_set_new(pid, "limit", json_integer((json_int_t)pmax));
  return json_pack("{s:o, s:o, s:o, s:o}", "cpu_stats", cpu, "memory_stats",
                   mem, "blkio_stats", blk, "pids_stats", pid);
}

json_t *cgstats_read(const char *cgroot, const char *cgroup, bool v2,
                     uint64_t machine_memory) {
  return v2 ? read_v2(cgroot, cgroup, machine_memory)
            : read_v1(cgroot, cgroup, machine_memory);
}

json_t *cgstats_net_dev(const char *text) {
  if (!text || !strstr(text, "|"))
    return NULL;
  json_t *o = json_object();
  const char *p = text;
  while (*p) {
    const char *eol = strchr(p, '\n');
    size_t len = eol ? (size_t)(eol - p) : strlen(p);
    cleanup_free char *line = xstrndup(p, len);
    p += len;
    if (*p == '\n')
      p++;
    char *colon = strchr(line, ':');
    if (!colon || strchr(line, '|'))
      continue;
    *colon = '\0';
    char *name = line;
    while (*name == ' ')
      name++;
    if (strcmp(name, "lo") == 0 || !*name)
      continue;
    unsigned long long v[16] = {0};
    int n =
        sscanf(colon + 1,
               "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu "
               "%llu %llu %llu %llu %llu",
               &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8],
               &v[9], &v[10], &v[11], &v[12], &v[13], &v[14], &v[15]);
    if (n < 12)
      continue;
    json_object_set_new(
        o, name,
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "rx_bytes",
                  (json_int_t)v[0], "rx_packets", (json_int_t)v[1], "rx_errors",
                  (json_int_t)v[2], "rx_dropped", (json_int_t)v[3], "tx_bytes",
                  (json_int_t)v[8], "tx_packets", (json_int_t)v[9], "tx_errors",
                  (json_int_t)v[10], "tx_dropped", (json_int_t)v[11]));
  }
  return o;
}

uint64_t cgstats_system_cpu(const char *proc_stat, uint32_t *online) {
  uint64_t total = 0;
  uint32_t cpus = 0;
  const char *p = proc_stat ? proc_stat : "";
  while (*p) {
    const char *eol = strchr(p, '\n');
    size_t len = eol ? (size_t)(eol - p) : strlen(p);
    if (len > 4 && strncmp(p, "cpu ", 4) == 0) {
      cleanup_free char *line = xstrndup(p + 4, len - 4);
      char *s = line, *end;
      /* user nice system idle iowait irq softirq steal (guest is in user) */
      for (int i = 0; i < 8; i++) {
        unsigned long long v = strtoull(s, &end, 10);
        if (end == s)
          break;
        total += v;
        s = end;
      }
    } else if (len > 3 && strncmp(p, "cpu", 3) == 0 &&
               isdigit((unsigned char)p[3])) {
      cpus++;
    }
    p += len;
    if (*p == '\n')
      p++;
  }
  if (online)
    *online = cpus;
  long hz = sysconf(_SC_CLK_TCK);
  return total * (1000000000ull / (uint64_t)(hz > 0 ? hz : 100));
}
