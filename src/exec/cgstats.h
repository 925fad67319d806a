/* A container's resource use as the Engine API's stats endpoint shows it,
 * read from its cgroup (v1: one directory per controller; v2: one
 * unified directory) and its network namespace's /proc/<pid>/net/dev.
 * Pure but for file reads under the roots given, so tests run them on
 * fixture trees. */
#ifndef SHOAL_EXEC_CGSTATS_H
#define SHOAL_EXEC_CGSTATS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* {"cpu_stats": {"cpu_usage": {total_usage, usage_in_kernelmode,
 *   usage_in_usermode}, "throttling_data": {...}},
 *  "memory_stats": {usage, [max_usage,] limit, stats: {memory.stat's}},
 *  "blkio_stats": {"io_service_bytes_recursive": [{major, minor, op,
 *   value}] or null, ...},
 *  "pids_stats": {current[, limit]}}
 * from the cgroup `cgroup` ("/shoal/<id>") under cgroot ("/sys/fs/cgroup").
 * v2 says which layout. An unlimited memory limit shows as
 * machine_memory (dockerd's rule), when that is > 0. Missing files leave
 * their fields out or zero, as dockerd does for a controller it lacks. */
json_t *cgstats_read(const char *cgroot, const char *cgroup, bool v2,
                     uint64_t machine_memory);

/* /proc/<pid>/net/dev -> {"eth0": {rx_bytes, rx_packets, rx_errors,
 * rx_dropped, tx_bytes, tx_packets, tx_errors, tx_dropped}}, loopback
 * left out (as dockerd). NULL if the text holds no table. */
json_t *cgstats_net_dev(const char *text);

/* The host's CPU time in ns from /proc/stat's "cpu" line (what dockerd
 * reports as system_cpu_usage); 0 if unreadable. *online gets the number
 * of "cpuN" lines. */
uint64_t cgstats_system_cpu(const char *proc_stat, uint32_t *online);

/* "key value" lines (memory.stat, cpu.stat) -> {key: value}. */
json_t *cgstats_kv(const char *text);

#endif
