/* shoald: one daemon per host. Flags follow dockerd's where they exist. */
#include "api/api.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "daemon/daemon.h"
#include "events/events.h"
#include "exec/exec.h"
#include "http/server.h"

#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *f) {
  fputs("Usage:\tshoald [OPTIONS]\n\n"
        "A container orchestrator that speaks the Docker Engine API\n\n"
        "Options:\n"
        "      --data-root string   Root directory of persistent state "
        "(default \"/var/lib/shoal\")\n"
        "  -D, --debug              Enable debug mode\n"
        "  -G, --group string       Group for the unix socket (default "
        "\"docker\")\n"
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
        "      --tls                Use TLS; implied by --tlsverify\n"
        "      --tlscacert string   Trust certs signed only by this CA "
        "(default \"~/.docker/ca.pem\")\n"
        "      --tlscert string     Path to TLS certificate file (default "
        "\"~/.docker/cert.pem\")\n"
        "      --tlskey string      Path to TLS key file (default "
        "\"~/.docker/key.pem\")\n"
        "      --tlsverify          Use TLS and verify the remote\n"
        "  -v, --version            Print version information and quit\n",
        f);
}

/* Takes an exclusive lock on path (made if absent) and writes our PID in
 * it. The lock lives as long as the process: a second daemon over the same
 * file sees it held, whatever the file says. Returns the fd; < 0 with
 * *holder the locking daemon's PID (0 if unknown) when it is taken. */
static int lock_pid_file(const char *path, long *holder, sh_err *err) {
  *holder = 0;
  cleanup_free char *dir = xstrdup(path);
  char *slash = strrchr(dir, '/');
  if (slash && slash != dir) {
    *slash = '\0';
    if (mkdir_p(dir, 0755, err) < 0)
      return -1;
  }
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    return sh_errno(err, errno, "open %s", path);
  if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    int e = errno;
    char buf[32] = "";
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    if (e != EWOULDBLOCK)
      return sh_errno(err, e, "lock %s", path);
    *holder = n > 0 ? strtol(buf, NULL, 10) : 0;
    return sh_error(err, 500, "locked");
  }
  char buf[32];
  int n = snprintf(buf, sizeof buf, "%d", (int)getpid());
  if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
    int e = errno;
    close(fd);
    return sh_errno(err, e, "write %s", path);
  }
  return fd;
}

/* dockerd's refusal over a live daemon's pidfile (pkg/pidfile), here by
 * the file's lock; the same for another daemon on this data root. */
static int lock_daemon_files(const struct shoald_config *cfg, sh_err *err) {
  cleanup_free char *lock = xasprintf("%s/shoald.lock", cfg->data_root);
  const char *paths[] = {cfg->pidfile, lock};
  for (int i = 0; i < 2; i++) {
    long holder;
    if (lock_pid_file(paths[i], &holder, err) >= 0)
      continue; /* the fd stays open (and locked) until exit */
    if (strcmp(err->msg, "locked") != 0)
      return -1;
    if (i == 0)
      return sh_error(err, 500,
                      "failed to start daemon, ensure shoald is not running "
                      "or delete %s: process with PID %ld is still running",
                      cfg->pidfile, holder);
    return sh_error(err, 500,
                    "failed to start daemon: data root %s is in use by "
                    "process with PID %ld",
                    cfg->data_root, holder);
  }
  return 0;
}

/* dockerd's -G: the default group "docker" may be missing (a warning, the
 * process's group); a named one must exist. */
static int socket_group(const char *name, bool explicit_, int *gid,
                        sh_err *err) {
  *gid = -1;
  if (!*name)
    return 0;
  char *end;
  long n = strtol(name, &end, 10);
  if (!*end && n >= 0) {
    *gid = (int)n;
    return 0;
  }
  struct group gr, *res = NULL;
  char buf[4096];
  if (getgrnam_r(name, &gr, buf, sizeof buf, &res) == 0 && res) {
    *gid = (int)res->gr_gid;
    return 0;
  }
  if (explicit_)
    return sh_error(err, 500, "group %s not found", name);
  log_warn("could not change group of the API socket to %s: group %s not "
           "found",
           name, name);
  return 0;
}

struct tls_opts {
  bool tls, tlsverify, tls_set, tlsverify_set;
  char *ca, *cert, *key;
};

/* dockerd's setDefaultOptions: --tlsverify (even =false) implies TLS; --tls
 * alone verifies unless --tlsverify=false. Files default to
 * $DOCKER_CERT_PATH or ~/.docker. */
static SSL_CTX *api_tls_ctx(struct tls_opts *t, bool *verify, sh_err *err) {
  if (t->tlsverify_set || t->tlsverify)
    t->tls = true;
  if (t->tls && !t->tlsverify_set)
    t->tlsverify = true;
  *verify = t->tls && t->tlsverify;
  if (!t->tls)
    return NULL;
  const char *dir = getenv("DOCKER_CERT_PATH");
  cleanup_free char *home = NULL;
  if (!dir || !*dir) {
    home = xasprintf("%s/.docker", getenv("HOME") ? getenv("HOME") : "/root");
    dir = home;
  }
  cleanup_free char *ca = t->ca ? xstrdup(t->ca) : xasprintf("%s/ca.pem", dir);
  cleanup_free char *cert =
      t->cert ? xstrdup(t->cert) : xasprintf("%s/cert.pem", dir);
  cleanup_free char *key =
      t->key ? xstrdup(t->key) : xasprintf("%s/key.pem", dir);
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx)
    return (void)sh_error(err, 500, "TLS: out of memory"), NULL;
  /* tlsconfig.ServerDefault: TLS 1.2 at least. */
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  const char *what = cert;
  if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
      (what = key, SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM)) !=
          1 ||
      (what = key, SSL_CTX_check_private_key(ctx)) != 1)
    goto fail;
  if (*verify) {
    what = ca;
    if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
      goto fail;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       NULL);
  }
  ERR_clear_error();
  return ctx;
fail:
  SSL_CTX_free(ctx);
  ERR_clear_error();
  sh_error(err, 500, "invalid TLS configuration: could not load %s", what);
  return NULL;
}

static struct shoald daemon_state;
static int exit_code;

static void on_signal(uv_signal_t *s, int signum) {
  struct shoald *d = s->data;
  log_info("processing signal '%s'", strsignal(signum));
  uv_signal_stop(&d->sigterm);
  uv_signal_stop(&d->sigint);
  uv_signal_stop(&d->sighup);
  uv_close((uv_handle_t *)&d->sigterm, NULL);
  uv_close((uv_handle_t *)&d->sigint, NULL);
  uv_close((uv_handle_t *)&d->sighup, NULL);
  shoald_shutdown(d);
}

/* dockerd reloads its configuration file on SIGHUP; shoald has none yet:
 * the hook says so and the daemon goes on. */
static void on_sighup(uv_signal_t *s, int signum) {
  (void)s;
  (void)signum;
  log_info("Got signal to reload configuration");
  log_info("Reloaded configuration (nothing to reload)");
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
      {"group", required_argument, NULL, 'G'},
      {"tls", optional_argument, NULL, 1},
      {"tlsverify", optional_argument, NULL, 2},
      {"tlscacert", required_argument, NULL, 3},
      {"tlscert", required_argument, NULL, 4},
      {"tlskey", required_argument, NULL, 5},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  cfg->hosts = xcalloc((size_t)argc + 1, sizeof *cfg->hosts);
  cfg->mirrors = xcalloc((size_t)argc + 1, sizeof *cfg->mirrors);
  cfg->insecure = xcalloc((size_t)argc + 1, sizeof *cfg->insecure);
  cfg->dns = xcalloc((size_t)argc + 1, sizeof *cfg->dns);
  int nmirrors = 0, ninsecure = 0, ndns = 0;
  int c;
  const char *group = "docker";
  bool group_set = false;
  struct tls_opts tls = {0};
  opterr = 0;
  while ((c = getopt_long(argc, argv, "H:G:Dvh", opts, NULL)) != -1) {
    switch (c) {
    case 'G':
      group = optarg;
      group_set = true;
      break;
    case 1:
    case 2: {
      /* Go's bool flags: --tls, --tls=true, --tls=false. */
      bool v =
          !optarg || strcmp(optarg, "true") == 0 || strcmp(optarg, "1") == 0;
      if (optarg && !v && strcmp(optarg, "false") != 0 &&
          strcmp(optarg, "0") != 0) {
        fprintf(stderr,
                "invalid argument \"%s\" for \"--%s\" flag: strconv."
                "ParseBool: parsing \"%s\": invalid syntax\nSee 'shoald "
                "--help'.\n",
                optarg, c == 1 ? "tls" : "tlsverify", optarg);
        return 125;
      }
      if (c == 1) {
        tls.tls = v;
        tls.tls_set = true;
      } else {
        tls.tlsverify = v;
        tls.tlsverify_set = true;
      }
      break;
    }
    case 3:
      tls.ca = optarg;
      break;
    case 4:
      tls.cert = optarg;
      break;
    case 5:
      tls.key = optarg;
      break;
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
  if (getenv("DOCKER_TLS_VERIFY") && *getenv("DOCKER_TLS_VERIFY") &&
      !tls.tlsverify_set)
    tls.tlsverify = true;
  sh_err err = {0};
  struct http_limits lim;
  http_limits_default(&lim);
  if (http_limits_parse(&lim, getenv("SHOAL_HTTP_LIMITS"), &err) < 0) {
    log_error("SHOAL_HTTP_LIMITS: %s", err.msg);
    return 1;
  }
  if (socket_group(group, group_set, &cfg->socket_gid, &err) < 0) {
    log_error("%s", err.msg);
    return 1;
  }
  cfg->api_tls = api_tls_ctx(&tls, &cfg->api_tlsverify, &err);
  if (!cfg->api_tls && tls.tls) {
    log_error("%s", err.msg);
    return 1;
  }
  /* dockerd's checkTLSAuthOK: TLS explicitly off counts as intent. */
  cfg->api_insecure_ok = tls.tls_set && !tls.tls;

  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN); /* until the loop's reload hook takes it */
  umask(022);
  if (mkdir_p(cfg->data_root, 0711, &err) < 0 ||
      mkdir_p(cfg->exec_root, 0700, &err) < 0 ||
      lock_daemon_files(cfg, &err) < 0) {
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
  api_images_events(d);
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
  uv_signal_init(loop, &d->sighup);
  d->sighup.data = d;
  uv_signal_start(&d->sighup, on_sighup, SIGHUP);
  log_info("shoald %s started (data root %s)", SHOAL_VERSION, cfg->data_root);

  uv_run(loop, UV_RUN_DEFAULT);
  /* After the loop: streams of GET /events end in close callbacks. */
  events_free(d->events);
  unlink(cfg->pidfile);
  log_info("shoald stopped");
  return exit_code;
}
