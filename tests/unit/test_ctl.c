/* The pure parts of the container commands: stats from cgroup v1 and v2
 * file trees (fixtures written here, as the kernel lays them out), the
 * netns's net/dev, and top's ps arguments and output (moby's rules). */
#include "test.h"

#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "exec/cgstats.h"
#include "exec/exec.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static int put(const char *root, const char *rel, const char *text) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", root, rel);
  char *slash = strrchr(path, '/');
  *slash = '\0';
  if (mkdir_p(path, 0755, NULL) < 0)
    return -1;
  *slash = '/';
  FILE *f = fopen(path, "w");
  if (!f)
    return -1;
  fputs(text, f);
  fclose(f);
  return 0;
}

static void rm_tree(const char *root) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", root);
}

#define CG "/shoal/abc"
#define GIB (1024ll * 1024 * 1024)

TEST(cgstats_v1_as_dockerd) {
  char root[] = "/tmp/cgv1-XXXXXX";
  CHECK(mkdtemp(root));
  long hz = sysconf(_SC_CLK_TCK);
  CHECK(put(root, "cpuacct" CG "/cpuacct.usage", "123456789\n") == 0);
  CHECK(put(root, "cpuacct" CG "/cpuacct.stat", "user 7\nsystem 3\n") == 0);
  CHECK(put(root, "cpu" CG "/cpu.stat",
            "nr_periods 10\nnr_throttled 2\nthrottled_time 5000\n") == 0);
  CHECK(put(root, "memory" CG "/memory.usage_in_bytes", "10485760\n") == 0);
  CHECK(put(root, "memory" CG "/memory.max_usage_in_bytes", "20971520\n") == 0);
  /* no limit: the kernel's huge number */
  CHECK(put(root, "memory" CG "/memory.limit_in_bytes",
            "9223372036854771712\n") == 0);
  CHECK(put(root, "memory" CG "/memory.stat",
            "cache 4096\nrss 8192\ntotal_inactive_file 1048576\n") == 0);
  CHECK(put(root, "blkio" CG "/blkio.throttle.io_service_bytes_recursive",
            "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 12288\n"
            "8:0 Total 12288\nTotal 12288\n") == 0);
  CHECK(put(root, "blkio" CG "/blkio.throttle.io_serviced_recursive",
            "8:0 Read 1\n8:0 Write 2\n") == 0);
  CHECK(put(root, "pids" CG "/pids.current", "3\n") == 0);
  CHECK(put(root, "pids" CG "/pids.max", "max\n") == 0);

  cleanup_json json_t *s = cgstats_read(root, CG, false, 8 * GIB);
  rm_tree(root);
  CHECK_INT_EQ(jx_int(s, "cpu_stats.cpu_usage.total_usage", -1), 123456789);
  CHECK_INT_EQ(jx_int(s, "cpu_stats.cpu_usage.usage_in_usermode", -1),
               7 * (1000000000 / hz));
  CHECK_INT_EQ(jx_int(s, "cpu_stats.cpu_usage.usage_in_kernelmode", -1),
               3 * (1000000000 / hz));
  CHECK_INT_EQ(jx_int(s, "cpu_stats.throttling_data.throttled_periods", -1), 2);
  CHECK_INT_EQ(jx_int(s, "memory_stats.usage", -1), 10485760);
  CHECK_INT_EQ(jx_int(s, "memory_stats.max_usage", -1), 20971520);
  /* unlimited shows as the machine's memory */
  CHECK_INT_EQ(jx_int(s, "memory_stats.limit", -1), 8 * GIB);
  /* what the CLI subtracts on v1 */
  CHECK_INT_EQ(jx_int(s, "memory_stats.stats.total_inactive_file", -1),
               1048576);
  const json_t *b = jx_get(s, "blkio_stats.io_service_bytes_recursive");
  CHECK_INT_EQ(json_array_size(b), 5); /* the device's lines, not "Total" */
  CHECK_STR_EQ(jx_str(json_array_get(b, 0), "op", ""), "Read");
  CHECK_INT_EQ(jx_int(json_array_get(b, 0), "value", -1), 4096);
  CHECK_INT_EQ(jx_int(json_array_get(b, 1), "major", -1), 8);
  CHECK_INT_EQ(jx_int(json_array_get(b, 1), "value", -1), 8192);
  CHECK_INT_EQ(jx_int(s, "pids_stats.current", -1), 3);
  CHECK(jx_get(s, "pids_stats.limit") == NULL); /* "max": no limit */
  CHECK(json_is_null(jx_get(s, "blkio_stats.io_queue_recursive")));
}

TEST(cgstats_v1_limit_and_missing_controllers) {
  char root[] = "/tmp/cgv1-XXXXXX";
  CHECK(mkdtemp(root));
  CHECK(put(root, "memory" CG "/memory.usage_in_bytes", "100\n") == 0);
  CHECK(put(root, "memory" CG "/memory.limit_in_bytes", "67108864\n") == 0);
  cleanup_json json_t *s = cgstats_read(root, CG, false, 8 * GIB);
  rm_tree(root);
  CHECK_INT_EQ(jx_int(s, "memory_stats.limit", -1), 64 * 1024 * 1024);
  /* no cpuacct, blkio, pids: zeros and nulls, never a failure */
  CHECK_INT_EQ(jx_int(s, "cpu_stats.cpu_usage.total_usage", -1), 0);
  CHECK(json_is_null(jx_get(s, "blkio_stats.io_service_bytes_recursive")));
  CHECK(jx_get(s, "pids_stats.current") == NULL);
}

TEST(cgstats_v2_as_dockerd) {
  char root[] = "/tmp/cgv2-XXXXXX";
  CHECK(mkdtemp(root));
  CHECK(put(root, CG "/cpu.stat",
            "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n"
            "nr_periods 4\nnr_throttled 1\nthrottled_usec 30\n") == 0);
  CHECK(put(root, CG "/memory.current", "5242880\n") == 0);
  CHECK(put(root, CG "/memory.max", "max\n") == 0);
  CHECK(put(root, CG "/memory.stat",
            "anon 4096\nfile 8192\ninactive_file 2048\n") == 0);
  CHECK(put(root, CG "/io.stat",
            "8:0 rbytes=1024 wbytes=2048 rios=3 wios=4 dbytes=0 dios=0\n"
            "253:1 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n") == 0);
  CHECK(put(root, CG "/pids.current", "2\n") == 0);
  CHECK(put(root, CG "/pids.max", "512\n") == 0);

  cleanup_json json_t *s = cgstats_read(root, CG, true, 4 * GIB);
  rm_tree(root);
  CHECK_INT_EQ(jx_int(s, "cpu_stats.cpu_usage.total_usage", -1), 2500000);
  CHECK_INT_EQ(jx_int(s, "cpu_stats.cpu_usage.usage_in_usermode", -1), 2000000);
  CHECK_INT_EQ(jx_int(s, "cpu_stats.cpu_usage.usage_in_kernelmode", -1),
               500000);
  CHECK_INT_EQ(jx_int(s, "cpu_stats.throttling_data.throttled_time", -1),
               30000);
  CHECK_INT_EQ(jx_int(s, "memory_stats.usage", -1), 5242880);
  CHECK_INT_EQ(jx_int(s, "memory_stats.limit", -1), 4 * GIB);
  CHECK(jx_get(s, "memory_stats.max_usage") == NULL); /* v2 has none */
  CHECK_INT_EQ(jx_int(s, "memory_stats.stats.inactive_file", -1), 2048);
  const json_t *b = jx_get(s, "blkio_stats.io_service_bytes_recursive");
  CHECK_INT_EQ(json_array_size(b), 4);
  CHECK_STR_EQ(jx_str(json_array_get(b, 0), "op", ""), "read");
  CHECK_INT_EQ(jx_int(json_array_get(b, 0), "value", -1), 1024);
  CHECK_STR_EQ(jx_str(json_array_get(b, 1), "op", ""), "write");
  CHECK_INT_EQ(jx_int(json_array_get(b, 1), "value", -1), 2048);
  CHECK_INT_EQ(jx_int(json_array_get(b, 2), "major", -1), 253);
  CHECK_INT_EQ(jx_int(json_array_get(b, 2), "minor", -1), 1);
  const json_t *ios = jx_get(s, "blkio_stats.io_serviced_recursive");
  CHECK_INT_EQ(jx_int(json_array_get(ios, 1), "value", -1), 4);
  CHECK_INT_EQ(jx_int(s, "pids_stats.current", -1), 2);
  CHECK_INT_EQ(jx_int(s, "pids_stats.limit", -1), 512);
}

TEST(cgstats_v2_limit_below_machine) {
  char root[] = "/tmp/cgv2-XXXXXX";
  CHECK(mkdtemp(root));
  CHECK(put(root, CG "/memory.current", "1\n") == 0);
  CHECK(put(root, CG "/memory.max", "134217728\n") == 0);
  cleanup_json json_t *s = cgstats_read(root, CG, true, 4 * GIB);
  rm_tree(root);
  CHECK_INT_EQ(jx_int(s, "memory_stats.limit", -1), 128 * 1024 * 1024);
  CHECK(json_is_null(jx_get(s, "blkio_stats.io_service_bytes_recursive")));
}

TEST(cgstats_net_dev_and_system_cpu) {
  const char *dev =
      "Inter-|   Receive                                                |  "
      "Transmit\n"
      " face |bytes    packets errs drop fifo frame compressed multicast|bytes "
      "   packets errs drop fifo colls carrier compressed\n"
      "    lo:     100       1    0    0    0     0          0         0     "
      "100       1    0    0    0     0       0          0\n"
      "  eth0:    1500      10    1    2    0     0          0         0     "
      "2500      20    3    4    0     0       0          0\n";
  cleanup_json json_t *n = cgstats_net_dev(dev);
  CHECK(n != NULL);
  CHECK(json_object_get(n, "lo") == NULL);
  CHECK_INT_EQ(jx_int(n, "eth0.rx_bytes", -1), 1500);
  CHECK_INT_EQ(jx_int(n, "eth0.rx_packets", -1), 10);
  CHECK_INT_EQ(jx_int(n, "eth0.rx_errors", -1), 1);
  CHECK_INT_EQ(jx_int(n, "eth0.rx_dropped", -1), 2);
  CHECK_INT_EQ(jx_int(n, "eth0.tx_bytes", -1), 2500);
  CHECK_INT_EQ(jx_int(n, "eth0.tx_packets", -1), 20);
  CHECK_INT_EQ(jx_int(n, "eth0.tx_dropped", -1), 4);
  CHECK(cgstats_net_dev("garbage") == NULL);

  long hz = sysconf(_SC_CLK_TCK);
  uint32_t online = 0;
  uint64_t t = cgstats_system_cpu("cpu  10 0 5 80 5 0 0 0 0 0\n"
                                  "cpu0 5 0 2 40 3 0 0 0 0 0\n"
                                  "cpu1 5 0 3 40 2 0 0 0 0 0\n"
                                  "intr 1 2 3\n",
                                  &online);
  CHECK_INT_EQ(online, 2);
  CHECK_INT_EQ(t, 100 * (1000000000 / hz));
  CHECK_INT_EQ(cgstats_system_cpu("", &online), 0);
}

TEST(top_ps_args_as_moby) {
  sh_err err = {0};
  CHECK(exec_top_check_args(NULL, &err) == 0);
  CHECK(exec_top_check_args("-ef", &err) == 0);
  CHECK(exec_top_check_args("-o pid,comm", &err) == 0);
  /* renaming the PID column is refused unless as "pid" */
  CHECK(exec_top_check_args("-o pid=PID,comm", &err) == 0);
  CHECK(exec_top_check_args("-o comm x=PID", &err) < 0);
  CHECK_STR_EQ(err.msg, "specifying \"x=PID\" is not allowed");
  CHECK(exec_top_check_args("-o pid= PIDX", &err) == 0);
  CHECK(exec_top_check_args("-o user= PIDX", &err) < 0);
  CHECK_STR_EQ(err.msg, "specifying \"user=PIDX\" is not allowed");
  /* other renames are ps's business */
  CHECK(exec_top_check_args("-o comm=CMD", &err) == 0);
}

TEST(top_parse_keeps_the_containers_processes) {
  const char *out =
      "UID          PID    PPID  C STIME TTY          TIME CMD\n"
      "root           1       0  0 10:00 ?        00:00:01 init\n"
      "root         100       1  0 10:01 ?        00:00:00 sh -c "
      "while :; do sleep 1; done\n"
      "root         101     100  0 10:01 ?        00:00:00 sleep 1\n"
      "\n";
  pid_t pids[] = {100, 101};
  sh_err err = {0};
  cleanup_json json_t *r = NULL;
  CHECK(exec_top_parse(out, pids, 2, &r, &err) == 0);
  CHECK_INT_EQ(json_array_size(json_object_get(r, "Titles")), 8);
  const json_t *procs = json_object_get(r, "Processes");
  CHECK_INT_EQ(json_array_size(procs), 2);
  const json_t *p0 = json_array_get(procs, 0);
  CHECK_INT_EQ(json_array_size(p0), 8);
  CHECK_STR_EQ(json_string_value(json_array_get(p0, 1)), "100");
  /* the command's words join into the last column */
  CHECK_STR_EQ(json_string_value(json_array_get(p0, 7)),
               "sh -c while :; do sleep 1; done");

  /* ps m: thread lines ("-") follow their process */
  const char *threads = "PID TTY STAT TIME COMMAND\n"
                        "100 ? - 0:00 sh\n"
                        "- - Ss 0:00 -\n"
                        "200 ? - 0:00 other\n"
                        "- - Ss 0:00 -\n";
  cleanup_json json_t *t = NULL;
  CHECK(exec_top_parse(threads, pids, 2, &t, &err) == 0);
  CHECK_INT_EQ(json_array_size(json_object_get(t, "Processes")), 2);

  cleanup_json json_t *x = NULL;
  CHECK(exec_top_parse("USER COMMAND\nroot init\n", pids, 2, &x, &err) < 0);
  CHECK_STR_EQ(err.msg, "Couldn't find PID field in ps output");
  CHECK(exec_top_parse("PID CMD\nabc init\n", pids, 2, &x, &err) < 0);
  CHECK(strstr(err.msg, "Unexpected pid 'abc'") != NULL);
}
