/* shoald: one daemon per host. Flags follow dockerd's where they exist. */
#include "api/api.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "daemon/daemon.h"
#include "exec/exec.h"

#include <errno.h>
#include <arpa/inet.h>
#include <getopt.h>
#include <signal.h>
#include <sys/stat.h>

static void usage(FILE *f) {
  fputs("Usage:\tshoald [OPTIONS]\n\n"
        "A container orchestrator that speaks the Docker Engine API\n\n"
        "Options:\n"
        "      --data-root string   Root directory of persistent state "
        "(default \"/var/lib/shoal\")\n"
        "  -D, --debug              Enable debug mode\n"
        "      --dns list           DNS server to use (tasks' names that are "
        "not the swarm's)\n"
        "      --exec-root string   Root directory for execution state files "
        "(default \"/run/shoal\")\n"
        "  -H, --host list          Daemon socket(s) to connect to (default "
        "unix:///run/shoal/shoal.sock)\n"
        "      --insecure-registry list   Enable insecure registry "
        "communication\n"
        "      --pidfile string     Path to use for daemon PID file (default "
        "\"<exec-root>/shoald.pid\")\n"
        "      --registry-mirror list     Preferred registry mirror\n"
        "  -v, --version            Print version information and quit\n",
        f);
}

/* Refuses to start over a live daemon's pidfile, as dockerd does. */
static int write_pidfile(const char *path, sh_err *err) {
  cleanup_free char *old = NULL;
  if (read_file(path, &old, NULL, NULL) == 0) {
    long pid = strtol(old, NULL, 10);
    if (pid > 0 && pid != getpid() && kill((pid_t)pid, 0) == 0) {
      /* A live shoald (a zombie waiting to be reaped is not). */
      cleanup_free char *stat_path = xasprintf("/proc/%ld/stat", pid);
      cleanup_free char *stat = NULL;
      const char *paren = NULL;
      if (read_file(stat_path, &stat, NULL, NULL) == 0)
        paren = strrchr(stat, ')');
      bool zombie = paren && paren[1] == ' ' && paren[2] == 'Z';
      if (!zombie && paren && strstr(stat, "(shoald)"))
        return sh_error(err, 500,
                        "pid file found, ensure shoald is not running or "
                        "delete %s",
                        path);
    }
  }
  cleanup_free char *dir = xstrdup(path);
  char *slash = strrchr(dir, '/');
  if (slash && slash != dir) {
    *slash = '\0';
    if (mkdir_p(dir, 0755, err) < 0)
      return -1;
  }
  char buf[32];
  int n = snprintf(buf, sizeof buf, "%d", (int)getpid());
  return write_file_atomic(path, buf, (size_t)n, 0644, err);
}

static struct shoald daemon_state;
static int exit_code;

static void on_signal(uv_signal_t *s, int signum) {
  struct shoald *d = s->data;
  log_info("processing signal '%s'", strsignal(signum));
  uv_signal_stop(&d->sigterm);
  uv_signal_stop(&d->sigint);
  uv_close((uv_handle_t *)&d->sigterm, NULL);
  uv_close((uv_handle_t *)&d->sigint, NULL);
  shoald_shutdown(d);
}

int main(int argc, char **argv) {
  struct shoald *d = &daemon_state;
  struct shoald_config *cfg = &d->cfg;
  static const struct option opts[] = {
      {"data-root", required_argument, NULL, 'r'},
      {"exec-root", required_argument, NULL, 'e'},
      {"host", required_argument, NULL, 'H'},
      {"pidfile", required_argument, NULL, 'p'},
      {"debug", no_argument, NULL, 'D'},
      {"registry-mirror", required_argument, NULL, 'm'},
      {"insecure-registry", required_argument, NULL, 'i'},
      {"dns", required_argument, NULL, 'n'},
      {"version", no_argument, NULL, 'v'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  cfg->hosts = xcalloc((size_t)argc + 1, sizeof *cfg->hosts);
  cfg->mirrors = xcalloc((size_t)argc + 1, sizeof *cfg->mirrors);
  cfg->insecure = xcalloc((size_t)argc + 1, sizeof *cfg->insecure);
  cfg->dns = xcalloc((size_t)argc + 1, sizeof *cfg->dns);
  int nmirrors = 0, ninsecure = 0, ndns = 0;
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "H:Dvh", opts, NULL)) != -1) {
    switch (c) {
    case 'r':
      free(cfg->data_root);
      cfg->data_root = xstrdup(optarg);
      break;
    case 'e':
      free(cfg->exec_root);
      cfg->exec_root = xstrdup(optarg);
      break;
    case 'H':
      cfg->hosts[cfg->nhosts++] = xstrdup(optarg);
      break;
    case 'p':
      free(cfg->pidfile);
      cfg->pidfile = xstrdup(optarg);
      break;
    case 'D':
      cfg->debug = true;
      break;
    case 'm':
      cfg->mirrors[nmirrors++] = xstrdup(optarg);
      break;
    case 'i':
      cfg->insecure[ninsecure++] = xstrdup(optarg);
      break;
    case 'n': {
      struct in_addr a;
      if (inet_pton(AF_INET, optarg, &a) != 1) {
        fprintf(stderr,
                "invalid argument \"%s\" for \"--dns\" flag: %s is not an "
                "ip address\nSee 'shoald --help'.\n",
                optarg, optarg);
        return 125;
      }
      cfg->dns[ndns++] = xstrdup(optarg);
      break;
    }
    case 'v':
      printf("shoald version %s, API %s\n", SHOAL_VERSION, SHOAL_API_VERSION);
      return 0;
    case 'h':
      usage(stdout);
      return 0;
    default:
      fprintf(stderr, "unknown flag: %s\nSee 'shoald --help'.\n",
              argv[optind - 1]);
      return 125;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "shoald: unexpected argument %s\nSee 'shoald --help'.\n",
            argv[optind]);
    return 125;
  }
  if (!cfg->data_root)
    cfg->data_root = xstrdup("/var/lib/shoal");
  if (!cfg->exec_root)
    cfg->exec_root = xstrdup("/run/shoal");
  if (!cfg->pidfile)
    cfg->pidfile = xasprintf("%s/shoald.pid", cfg->exec_root);
  if (cfg->nhosts == 0)
    cfg->hosts[cfg->nhosts++] = xstrdup("unix:///run/shoal/shoal.sock");
  if (cfg->debug)
    log_set_level(LOG_DEBUG);

  signal(SIGPIPE, SIG_IGN);
  umask(022);
  sh_err err = {0};
  if (mkdir_p(cfg->data_root, 0711, &err) < 0 ||
      mkdir_p(cfg->exec_root, 0700, &err) < 0 ||
      write_pidfile(cfg->pidfile, &err) < 0) {
    log_error("%s", err.msg);
    return 1;
  }
  /* Before any thread exists: unshare(CLONE_NEWNS) needs a lone thread
   * (crun refuses "hybrid" cgroup hosts; see exec.h). */
  if (exec_prepare_host_mounts(&err) < 0)
    log_warn("preparing mounts for containers: %s", err.msg);
  uv_loop_t *loop = uv_default_loop();
  d->api_forwarded = api_handle_forwarded;
  if (shoald_init(d, loop, &err) < 0) {
    log_error("%s", err.msg);
    return 1;
  }
  for (int i = 0; i < cfg->nhosts; i++) {
    if (api_listen(d, cfg->hosts[i], &err) < 0) {
      log_error("failed to listen on %s: %s", cfg->hosts[i], err.msg);
      unlink(cfg->pidfile);
      return 1;
    }
    log_info("API listen on %s", cfg->hosts[i]);
  }
  if (shoald_resume(d, &err) < 0)
    log_error("could not rejoin the swarm: %s", err.msg);
  uv_signal_init(loop, &d->sigterm);
  uv_signal_init(loop, &d->sigint);
  d->sigterm.data = d->sigint.data = d;
  uv_signal_start(&d->sigterm, on_signal, SIGTERM);
  uv_signal_start(&d->sigint, on_signal, SIGINT);
  log_info("shoald %s started (data root %s)", SHOAL_VERSION, cfg->data_root);

  uv_run(loop, UV_RUN_DEFAULT);
  unlink(cfg->pidfile);
  log_info("shoald stopped");
  return exit_code;
}
