/* Control and inspection of one container: pause, rename, top, stats,
 * changes (see exec.h; export is archive.c's). */
#include "exec/cgstats.h"
#include "exec/internal.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CGROUP_ROOT "/sys/fs/cgroup"

bool exec_paused_marked(const struct ctr_paths *p) {
  cleanup_free char *m = xasprintf("%s/paused", p->run);
  return access(m, F_OK) == 0;
}

void exec_set_paused_mark(const struct ctr_paths *p, bool on) {
  cleanup_free char *m = xasprintf("%s/paused", p->run);
  if (!on) {
    unlink(m);
    return;
  }
  int fd = open(m, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0)
    close(fd);
}

static int crun(const executor *ex, const char *verb, const char *id,
                sh_err *err) {
  cleanup_free char *root = xasprintf("--root=%s", ex->crun_root);
  const char *argv[] = {ex->crun, root, verb, id, NULL};
  cleanup_free char *out = NULL;
  int rc = exec_proc_run(argv, &out, err);
  if (rc < 0)
    return rc;
  if (rc != 0)
    return sh_error(err, 500, "crun %s: %s", verb, out);
  return 0;
}

static int running(executor *ex, const char *id, struct exec_state *st,
                   sh_err *err) {
  if (exec_state(ex, id, st, err) < 0)
    return -1;
  if (st->status != EXEC_STATUS_RUNNING)
    return sh_error(err, 409, "container %s is not running", id);
  return 0;
}

int exec_pause(executor *ex, const char *id, sh_err *err) {
  struct exec_state st;
  if (running(ex, id, &st, err) < 0)
    return -1;
  if (st.paused)
    return sh_error(err, 409, "container %s is already paused", id);
  cleanup_paths struct ctr_paths p = {0};
  exec_paths_init(ex, id, &p);
  if (crun(ex, "pause", id, err) < 0)
    return sh_error(err, 500, "cannot pause container %s: %s", id, err->msg);
  exec_set_paused_mark(&p, true);
  return 0;
}

int exec_resume(executor *ex, const char *id, sh_err *err) {
  struct exec_state st;
  if (exec_state(ex, id, &st, err) < 0)
    return -1;
  if (!st.paused)
    return sh_error(err, 500, "Container %s is not paused", id);
  cleanup_paths struct ctr_paths p = {0};
  exec_paths_init(ex, id, &p);
  if (crun(ex, "resume", id, err) < 0)
    return sh_error(err, 500, "Cannot unpause container %s: %s", id, err->msg);
  exec_set_paused_mark(&p, false);
  return 0;
}

int exec_rename(executor *ex, const char *id, const char *name, sh_err *err) {
  cleanup_paths struct ctr_paths p = {0};
  cleanup_json json_t *meta = NULL;
  pthread_mutex_lock(&ex->meta_mu);
  int rc = exec_load_meta(ex, id, &p, &meta, err);
  if (rc == 0) {
    json_object_set_new(meta, "Name", json_sprintf("/%s", name));
    jx_set(meta, "Shoal.Name", json_string(name));
    rc = exec_write_json(p.meta, meta, err);
  }
  pthread_mutex_unlock(&ex->meta_mu);
  return rc;
}

int exec_meta_update(executor *ex, const char *id, const json_t *patch,
                     sh_err *err) {
  cleanup_paths struct ctr_paths p = {0};
  cleanup_json json_t *meta = NULL;
  pthread_mutex_lock(&ex->meta_mu);
  int rc = exec_load_meta(ex, id, &p, &meta, err);
  if (rc == 0) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)patch, k, v) {
      if (strcmp(k, "Shoal") != 0 && strcmp(k, "Id") != 0)
        json_object_set(meta, k, v);
    }
    rc = exec_write_json(p.meta, meta, err);
  }
  pthread_mutex_unlock(&ex->meta_mu);
  return rc;
}

/* ---- top ---- */

/* moby's psArgsRegexp \s+([^\s]*)=\s*(PID[^\s]*): only "pid=PID..." may
 * rename the PID column, which the output's filter needs. */
int exec_top_check_args(const char *a, sh_err *err) {
  if (!a)
    return 0;
  for (const char *eq = strchr(a, '='); eq; eq = strchr(eq + 1, '=')) {
    const char *k = eq;
    while (k > a && !isspace((unsigned char)k[-1]))
      k--;
    if (k == a) /* the regexp wants whitespace before the key */
      continue;
    const char *v = eq + 1;
    while (isspace((unsigned char)*v))
      v++;
    if (strncmp(v, "PID", 3) != 0)
      continue;
    size_t vlen = 0;
    while (v[vlen] && !isspace((unsigned char)v[vlen]))
      vlen++;
    if ((size_t)(eq - k) != 3 || strncmp(k, "pid", 3) != 0)
      return sh_error(err, 500, "specifying \"%.*s=%.*s\" is not allowed",
                      (int)(eq - k), k, (int)vlen, v);
  }
  return 0;
}

static json_t *fields(const char *line, size_t len) {
  json_t *a = json_array();
  size_t i = 0;
  while (i < len) {
    while (i < len && strchr(" \t\n\f\r", line[i]))
      i++;
    size_t s = i;
    while (i < len && !strchr(" \t\n\f\r", line[i]))
      i++;
    if (i > s)
      json_array_append_new(a, json_stringn(line + s, i - s));
  }
  return a;
}

/* Extra fields past the titles' count join the last one (a COMMAND with
 * arguments). */
static void add_process(json_t *procs, json_t *f, size_t ntitles) {
  json_t *row = json_array();
  size_t n = json_array_size(f);
  for (size_t i = 0; i + 1 < ntitles && i < n; i++)
    json_array_append(row, json_array_get(f, i));
  sh_buf last = {0};
  for (size_t i = ntitles - 1; i < n; i++)
    buf_printf(&last, "%s%s", i > ntitles - 1 ? " " : "",
               json_string_value(json_array_get(f, i)));
  json_array_append_new(row, json_string(last.data ? last.data : ""));
  buf_free(&last);
  json_array_append_new(procs, row);
}

int exec_top_parse(const char *out, const pid_t *pids, size_t n, json_t **res,
                   sh_err *err) {
  const char *eol = strchr(out, '\n');
  size_t hlen = eol ? (size_t)(eol - out) : strlen(out);
  cleanup_json json_t *titles = fields(out, hlen);
  size_t nt = json_array_size(titles), pid_at = nt;
  for (size_t i = 0; i < nt; i++)
    if (strcmp(json_string_value(json_array_get(titles, i)), "PID") == 0) {
      pid_at = i;
      break;
    }
  if (pid_at == nt)
    return sh_error(err, 500, "Couldn't find PID field in ps output");
  json_t *procs = json_array();
  bool prev_ours = false; /* "ps m": thread lines ("-") follow their PID */
  const char *p = eol ? eol + 1 : out + hlen;
  while (*p) {
    eol = strchr(p, '\n');
    size_t len = eol ? (size_t)(eol - p) : strlen(p);
    cleanup_json json_t *f = fields(p, len);
    p += len + (eol ? 1 : 0);
    if (json_array_size(f) == 0)
      continue;
    const char *pf = json_string_value(json_array_get(f, pid_at));
    if (!pf) {
      prev_ours = false;
      continue;
    }
    if (strcmp(pf, "-") == 0) {
      if (prev_ours)
        add_process(procs, f, nt);
      continue;
    }
    char *end;
    long pid = strtol(pf, &end, 10);
    if (*end || end == pf) {
      json_decref(procs);
      return sh_error(err, 500,
                      "Unexpected pid '%s': strconv.Atoi: parsing \"%s\": "
                      "invalid syntax",
                      pf, pf);
    }
    prev_ours = false;
    for (size_t i = 0; i < n; i++)
      if (pids[i] == (pid_t)pid)
        prev_ours = true;
    if (prev_ours)
      add_process(procs, f, nt);
  }
  *res = json_pack("{s:O, s:o}", "Titles", titles, "Processes", procs);
  return 0;
}

/* The PIDs in the container's cgroup (its exec'd processes included). */
static size_t cgroup_pids(const executor *ex, const char *cg, pid_t **out) {
  cleanup_free char *path =
      ex->cgmode == EXEC_CGROUP_V2
          ? xasprintf(CGROUP_ROOT "%s/cgroup.procs", cg)
          : xasprintf(CGROUP_ROOT "/pids%s/cgroup.procs", cg);
  cleanup_free char *s = NULL;
  size_t len = 0, n = 0;
  *out = NULL;
  if (read_file(path, &s, &len, NULL) < 0)
    return 0;
  for (char *p = s, *end; *p; p = end) {
    long v = strtol(p, &end, 10);
    if (end == p)
      break;
    *out = xrealloc(*out, (n + 1) * sizeof **out);
    (*out)[n++] = (pid_t)v;
  }
  return n;
}

/* Runs argv; *out gets stdout, *errline the first line of stderr. */
static int run_split(const char *const *argv, char **out, char **errline,
                     sh_err *err) {
  int po[2], pe[2];
  if (pipe2(po, O_CLOEXEC) < 0)
    return sh_errno(err, errno, "pipe");
  if (pipe2(pe, O_CLOEXEC) < 0) {
    close(po[0]);
    close(po[1]);
    return sh_errno(err, errno, "pipe");
  }
  pid_t pid;
  struct spawn_opts o = {
      .argv = argv, .fd_out = po[1], .fd_err = pe[1], .fd3 = -1};
  int rc = spawn_proc(&o, &pid, err);
  close(po[1]);
  close(pe[1]);
  if (rc < 0) {
    close(po[0]);
    close(pe[0]);
    return rc;
  }
  sh_buf b = {0}, e = {0};
  char tmp[4096];
  ssize_t k;
  while ((k = read(po[0], tmp, sizeof tmp)) > 0 || (k < 0 && errno == EINTR))
    if (k > 0 && b.len < 4 * 1024 * 1024)
      buf_append(&b, tmp, (size_t)k);
  while ((k = read(pe[0], tmp, sizeof tmp)) > 0 || (k < 0 && errno == EINTR))
    if (k > 0 && e.len < 4096)
      buf_append(&e, tmp, (size_t)k);
  close(po[0]);
  close(pe[0]);
  int st = spawn_wait(pid);
  *out = xstrdup(b.data ? b.data : "");
  const char *es = e.data ? e.data : "";
  *errline = xstrndup(es, strcspn(es, "\n"));
  buf_free(&b);
  buf_free(&e);
  if (st < 0 || !WIFEXITED(st))
    return 1;
  return WEXITSTATUS(st);
}

int exec_top(executor *ex, const char *id, const char *ps_args, json_t **out,
             sh_err *err) {
  if (!ps_args || !*ps_args)
    ps_args = "-ef";
  if (exec_top_check_args(ps_args, err) < 0)
    return -1;
  cleanup_paths struct ctr_paths p = {0};
  cleanup_json json_t *meta = NULL;
  if (exec_load_meta(ex, id, &p, &meta, err) < 0)
    return -1;
  struct exec_state st;
  if (running(ex, id, &st, err) < 0)
    return -1;
  cleanup_free pid_t *pids = NULL;
  size_t n =
      cgroup_pids(ex, jx_str(meta, "Shoal.Cgroup", "/shoal/none"), &pids);
  /* argv: ps, the user's words (moby splits on single spaces), -q PIDs. */
  cleanup_free char *words = xstrdup(ps_args);
  size_t cap = 4;
  for (const char *c = ps_args; *c; c++)
    cap += *c == ' ';
  cleanup_free char *ps = exec_find_bin("ps");
  if (!ps)
    return sh_error(err, 500, "ps: executable file not found in $PATH");
  const char **argv = xcalloc(cap + 1, sizeof *argv);
  size_t argc = 0;
  argv[argc++] = ps;
  char *save = NULL;
  for (char *w = strtok_r(words, " ", &save); w; w = strtok_r(NULL, " ", &save))
    argv[argc++] = w;
  sh_buf q = {0};
  buf_printf(&q, "-q");
  for (size_t i = 0; i < n; i++)
    buf_printf(&q, "%s%d", i ? "," : "", (int)pids[i]);
  argv[argc] = n ? q.data : NULL;
  argv[argc + 1] = NULL;
  cleanup_free char *ps_out = NULL, *ps_err = NULL;
  int rc = n ? run_split(argv, &ps_out, &ps_err, err) : 1;
  if (rc != 0) {
    /* Some options (f) do not go with -q: ps alone, filtered here. */
    free(ps_out);
    free(ps_err);
    ps_out = ps_err = NULL;
    argv[argc] = NULL;
    rc = run_split(argv, &ps_out, &ps_err, err);
  }
  buf_free(&q);
  free(argv);
  if (rc < 0)
    return -1;
  if (rc != 0)
    return sh_error(err, 500, "ps: %s", *ps_err ? ps_err : "exit status 1");
  return exec_top_parse(ps_out, pids, n, out, err);
}

/* ---- stats ---- */

static uint64_t machine_memory(void) {
  cleanup_free char *s = NULL;
  size_t len;
  if (read_file("/proc/meminfo", &s, &len, NULL) < 0)
    return 0;
  const char *m = strstr(s, "MemTotal:");
  return m ? strtoull(m + 9, NULL, 10) * 1024 : 0;
}

int exec_stats(executor *ex, const char *id, json_t **out, sh_err *err) {
  cleanup_paths struct ctr_paths p = {0};
  cleanup_json json_t *meta = NULL;
  if (exec_load_meta(ex, id, &p, &meta, err) < 0)
    return -1;
  struct exec_state st;
  if (exec_state(ex, id, &st, err) < 0)
    return -1;
  char now[64];
  clock_format_rfc3339(clock_wall_ns(), now, sizeof now);
  json_t *s;
  if (st.status == EXEC_STATUS_RUNNING) {
    s = cgstats_read(CGROUP_ROOT, jx_str(meta, "Shoal.Cgroup", "/shoal/none"),
                     ex->cgmode == EXEC_CGROUP_V2, machine_memory());
    cleanup_free char *ps = NULL, *nd = NULL;
    size_t len;
    uint32_t online = 0;
    uint64_t sys = 0;
    if (read_file("/proc/stat", &ps, &len, NULL) == 0)
      sys = cgstats_system_cpu(ps, &online);
    json_t *cpu = json_object_get(s, "cpu_stats");
    json_object_set_new(cpu, "system_cpu_usage", json_integer((json_int_t)sys));
    json_object_set_new(cpu, "online_cpus", json_integer(online));
    /* The container's own namespace: /proc/<pid>/net is per netns. */
    cleanup_free char *ndp = xasprintf("/proc/%d/net/dev", (int)st.pid);
    json_t *nets = NULL;
    if (read_file(ndp, &nd, &len, NULL) == 0)
      nets = cgstats_net_dev(nd);
    if (nets)
      json_object_set_new(s, "networks", nets);
  } else {
    s = json_pack("{s:{s:{s:i, s:i, s:i}, s:{s:i, s:i, s:i}}, s:{}, s:{s:n, "
                  "s:n, s:n, s:n, s:n, s:n, s:n, s:n}, s:{}}",
                  "cpu_stats", "cpu_usage", "total_usage", 0,
                  "usage_in_kernelmode", 0, "usage_in_usermode", 0,
                  "throttling_data", "periods", 0, "throttled_periods", 0,
                  "throttled_time", 0, "memory_stats", "blkio_stats",
                  "io_service_bytes_recursive", "io_serviced_recursive",
                  "io_queue_recursive", "io_service_time_recursive",
                  "io_wait_time_recursive", "io_merged_recursive",
                  "io_time_recursive", "sectors_recursive", "pids_stats");
    snprintf(now, sizeof now, "0001-01-01T00:00:00Z");
  }
  json_object_set_new(s, "read", json_string(now));
  json_object_set_new(s, "preread", json_string("0001-01-01T00:00:00Z"));
  json_object_set_new(s, "num_procs", json_integer(0));
  json_object_set_new(s, "storage_stats", json_object());
  json_object_set_new(s, "name", json_string(jx_str(meta, "Name", "")));
  json_object_set_new(s, "id", json_string(id));
  *out = s;
  return 0;
}

/* ---- changes ---- */

bool exec_init_layer_path(const char *path) {
  static const char *const paths[] = {"/dev",          "/proc",
                                      "/sys",          "/.dockerenv",
                                      "/etc/hosts",    "/etc/resolv.conf",
                                      "/etc/hostname", "/etc/mtab",
                                      "/run/secrets",  "/sbin/docker-init"};
  for (size_t i = 0; i < ARRAY_SIZE(paths); i++) {
    size_t n = strlen(paths[i]);
    if (strncmp(path, paths[i], n) == 0 && (path[n] == '\0' || path[n] == '/'))
      return true;
  }
  return false;
}

static bool in_lower(const json_t *layers, const char *rel) {
  size_t i;
  json_t *l;
  json_array_foreach(layers, i, l) {
    cleanup_free char *p = xasprintf("%s%s", json_string_value(l), rel);
    struct stat st;
    if (lstat(p, &st) == 0)
      return true;
  }
  return false;
}

static void add_change(json_t *changes, json_t *seen, const char *path,
                       int kind) {
  if (json_object_get(seen, path))
    return;
  json_object_set_new(seen, path, json_true());
  json_array_append_new(changes,
                        json_pack("{s:s, s:i}", "Path", path, "Kind", kind));
}

/* Walks upper/rel; every change also marks its parent directory. */
static void walk_upper(const char *upper, const char *rel, const json_t *layers,
                       json_t *changes, json_t *seen, int depth) {
  cleanup_free char *dir = xasprintf("%s%s", upper, rel);
  DIR *d = opendir(dir);
  if (!d || depth > 64) {
    if (d)
      closedir(d);
    return;
  }
  struct dirent *de;
  while ((de = readdir(d))) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    cleanup_free char *path = xasprintf("%s/%s", rel, de->d_name);
    if (exec_init_layer_path(path))
      continue;
    cleanup_free char *full = xasprintf("%s%s", upper, path);
    struct stat st;
    if (lstat(full, &st) < 0)
      continue;
    bool lower = in_lower(layers, path);
    bool whiteout = S_ISCHR(st.st_mode) && st.st_rdev == 0;
    int kind = whiteout ? 2 : lower ? 0 : 1;
    bool changed = !(S_ISDIR(st.st_mode) && lower);
    if (changed) {
      if (*rel)
        add_change(changes, seen, rel, 0);
      add_change(changes, seen, path, kind);
    }
    if (S_ISDIR(st.st_mode))
      walk_upper(upper, path, layers, changes, seen, depth + 1);
  }
  closedir(d);
}

static int by_path(const void *a, const void *b) {
  const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
  return strcmp(jx_str(x, "Path", ""), jx_str(y, "Path", ""));
}

int exec_changes(executor *ex, const char *id, json_t **out, sh_err *err) {
  cleanup_paths struct ctr_paths p = {0};
  cleanup_json json_t *meta = NULL;
  if (exec_load_meta(ex, id, &p, &meta, err) < 0)
    return -1;
  cleanup_json json_t *changes = json_array();
  cleanup_json json_t *seen = json_object();
  walk_upper(p.upper, "", jx_get(meta, "Shoal.Layers"), changes, seen, 0);
  size_t n = json_array_size(changes);
  json_t **v = xcalloc(n + 1, sizeof *v);
  for (size_t i = 0; i < n; i++)
    v[i] = json_array_get(changes, i);
  qsort(v, n, sizeof *v, by_path);
  json_t *sorted = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append(sorted, v[i]);
  free(v);
  *out = sorted;
  return 0;
}
