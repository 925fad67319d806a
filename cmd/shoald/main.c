/* shoald: one daemon per host. Flags follow dockerd's where they exist. */
#include "api/api.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/lowfd.h"
#include "core/util.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "image/image.h"
#include "events/events.h"
#include "exec/exec.h"
#include "http/server.h"
#include "lazy/heap.h"

#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* --help as dockerd prints it (cobra and pflag): one line a flag, the
 * descriptions in one column. */
static const struct flag_help {
  char shorthand;
  const char *name, *type, *usage, *dflt;
} flag_help[] = {
    {0, "config-file", "string", "Daemon configuration file",
     "\"" SHOALD_DEFAULT_CONFIG_FILE "\""},
    {0, "data-root", "string", "Root directory of persistent shoal state",
     "\"/var/lib/shoal\""},
    {'D', "debug", NULL, "Enable debug mode", NULL},
    {0, "default-address-pool", "pool-options",
     "Default address pools for node specific local networks", NULL},
    {0, "dns", "list", "DNS server to use", NULL},
    {0, "exec-root", "string", "Root directory for execution state files",
     "\"/run/shoal\""},
    {'G', "group", "string", "Group for the unix socket", "\"docker\""},
    {0, "help", NULL, "Print usage", NULL},
    {'H', "host", "list", "Daemon socket(s) to connect to", NULL},
    {0, "insecure-registry", "list", "Enable insecure registry communication",
     NULL},
    {0, "label", "list", "Set key=value labels to the daemon", NULL},
    {'l', "log-level", "string",
     "Set the logging level (\"debug\"|\"info\"|\"warn\"|\"error\"|\"fatal\")",
     "\"info\""},
    {0, "max-concurrent-downloads", "int", "Set the max concurrent downloads",
     "3"},
    {'p', "pidfile", "string", "Path to use for daemon PID file",
     "\"/run/shoal/shoald.pid\""},
    {0, "registry-mirror", "list", "Preferred Docker registry mirror", NULL},
    {0, "tls", NULL, "Use TLS; implied by --tlsverify", NULL},
    {0, "tlscacert", "string", "Trust certs signed only by this CA",
     "\"~/.docker/ca.pem\""},
    {0, "tlscert", "string", "Path to TLS certificate file",
     "\"~/.docker/cert.pem\""},
    {0, "tlskey", "string", "Path to TLS key file", "\"~/.docker/key.pem\""},
    {0, "tlsverify", NULL, "Use TLS and verify the remote", NULL},
    {0, "validate", NULL, "Validate daemon configuration and exit", NULL},
    {'v', "version", NULL, "Print version information and quit", NULL},
};

#ifndef SHOAL_GIT_COMMIT
#define SHOAL_GIT_COMMIT "unknown"
#endif

static void usage(FILE *f) {
  fputs("Usage:\tshoald [OPTIONS]\n\n"
        "A container orchestrator that speaks the Docker Engine API.\n\n"
        "Options:\n",
        f);
  char lines[ARRAY_SIZE(flag_help)][96];
  size_t width = 0;
  for (size_t i = 0; i < ARRAY_SIZE(flag_help); i++) {
    const struct flag_help *h = &flag_help[i];
    char sh[8] = "    ";
    if (h->shorthand)
      snprintf(sh, sizeof sh, "-%c, ", h->shorthand);
    snprintf(lines[i], sizeof lines[i], "  %s--%s%s%s", sh, h->name,
             h->type ? " " : "", h->type ? h->type : "");
    if (strlen(lines[i]) > width)
      width = strlen(lines[i]);
  }
  for (size_t i = 0; i < ARRAY_SIZE(flag_help); i++) {
    const struct flag_help *h = &flag_help[i];
    fprintf(f, "%-*s   %s", (int)width, lines[i], h->usage);
    if (h->dflt)
      fprintf(f, " (default %s)", h->dflt);
    fputc('\n', f);
  }
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

/* The group file, as dockerd's idtools.LookupGroup reads it first. */
static bool group_file_gid(const char *name, int *gid) {
  FILE *f = fopen("/etc/group", "re");
  if (!f)
    return false;
  struct group gr, *res;
  char buf[4096];
  bool found = false;
  while (!found && fgetgrent_r(f, &gr, buf, sizeof buf, &res) == 0)
    if (!strcmp(res->gr_name, name)) {
      *gid = (int)res->gr_gid;
      found = true;
    }
  fclose(f);
  return found;
}

/* Then NSS (LDAP, sssd, systemd's groups), in a child as dockerd runs
 * getent: an NSS module, once mapped, stays in the process for good
 * (systemd's, with libm and libcap, ~700 KB of an idle daemon's RSS). */
static bool nss_gid(const char *name, int *gid) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0)
    return false;
  pid_t pid = fork();
  if (pid == 0) {
    struct group gr, *res = NULL;
    char buf[16384];
    int32_t v = -1;
    if (getgrnam_r(name, &gr, buf, sizeof buf, &res) == 0 && res)
      v = (int32_t)res->gr_gid;
    _exit(write(p[1], &v, sizeof v) == sizeof v ? 0 : 1);
  }
  close(p[1]);
  int32_t v = -1;
  bool ok = pid > 0 && read(p[0], &v, sizeof v) == sizeof v && v >= 0;
  close(p[0]);
  if (pid > 0)
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
      ;
  if (ok)
    *gid = v;
  return ok;
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
  if (group_file_gid(name, gid) || nss_gid(name, gid))
    return 0;
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

/* The keys set by flags: daemon.json key -> the flag's value as dockerd
 * prints it in a conflict. Kept for SIGHUP's re-read. */
static json_t *cli_flags;
static bool config_file_set;

static void flag_set(const char *key, const char *value) {
  json_object_set_new(cli_flags, key, json_string(value));
}

/* A list flag's value as Go prints it: "[a b]". */
static void flag_add(const char *key, const char *value) {
  const char *old = json_string_value(json_object_get(cli_flags, key));
  cleanup_free char *v =
      old ? xasprintf("%.*s %s]", (int)strlen(old) - 1, old, value)
          : xasprintf("[%s]", value);
  flag_set(key, v);
}

static char **strv_grow(char **v, const char *s) {
  size_t n = 0;
  while (v && v[n])
    n++;
  v = xrealloc(v, (n + 2) * sizeof *v);
  v[n] = xstrdup(s);
  v[n + 1] = NULL;
  return v;
}

/* What SIGHUP changed, logged as dockerd logs its reloaded settings. */
static char *reload_summary(const struct shoald_config *cfg) {
  json_t *j = json_object();
  json_t *l = json_array(), *m = json_array(), *in = json_array();
  for (char **p = cfg->labels; p && *p; p++)
    json_array_append_new(l, json_string(*p));
  for (char **p = cfg->mirrors; p && *p; p++)
    json_array_append_new(m, json_string(*p));
  for (char **p = cfg->insecure; p && *p; p++)
    json_array_append_new(in, json_string(*p));
  json_object_set_new(j, "debug", json_boolean(cfg->debug));
  json_object_set_new(j, "log-level",
                      json_string(cfg->log_level ? cfg->log_level : "info"));
  json_object_set_new(j, "labels", l);
  json_object_set_new(j, "registry-mirrors", m);
  json_object_set_new(j, "insecure-registries", in);
  json_object_set_new(
      j, "max-concurrent-downloads",
      json_integer(cfg->max_downloads > 0 ? cfg->max_downloads : 3));
  char *s = jx_dumps(j, JSON_COMPACT, NULL);
  json_decref(j);
  return s;
}

/* dockerd's SIGHUP: the file again, with the same rules as at start; the
 * reloadable keys take effect, a bad file changes nothing. */
static void on_sighup(uv_signal_t *s, int signum) {
  (void)signum;
  struct shoald *d = s->data;
  struct shoald_config *cfg = &d->cfg;
  log_info("Got signal to reload configuration, reloading from: %s",
           cfg->config_file);
  sh_err err = {0};
  cleanup_json json_t *file = NULL;
  if (daemon_config_read(cfg->config_file, config_file_set, cli_flags, &file,
                         &err) < 0) {
    log_error("Error reloading configuration: %s", err.msg);
    return;
  }
  if (!file)
    file = json_object();
  daemon_config_apply(cfg, file, true);
  daemon_config_apply_log_level(cfg);
  struct image_opts io = {
      .mirrors = (const char *const *)cfg->mirrors,
      .insecure = (const char *const *)cfg->insecure,
      .max_downloads = cfg->max_downloads,
  };
  if (d->images)
    image_store_reconfigure(d->images, &io);
  cleanup_free char *sum = reload_summary(cfg);
  log_info("Reloaded configuration: %s", sum);
}

/* A flag's bad value, as cobra reports it. */
static int bad_flag(const char *flag, const char *value, const char *why) {
  fprintf(stderr,
          "invalid argument \"%s\" for \"%s\" flag: %s\nSee 'shoald "
          "--help'.\n",
          value, flag, why);
  return 125;
}

int main(int argc, char **argv) {
  heap_json_init();
  int child = image_child_main(argc, argv);
  if (child >= 0)
    return child;
  struct shoald *d = &daemon_state;
  struct shoald_config *cfg = &d->cfg;
  enum {
    O_TLS = 1,
    O_TLSVERIFY,
    O_TLSCACERT,
    O_TLSCERT,
    O_TLSKEY,
    O_CONFIG,
    O_LABEL,
    O_POOL,
    O_MAXDL,
    O_VALIDATE,
  };
  static const struct option opts[] = {
      {"data-root", required_argument, NULL, 'r'},
      {"exec-root", required_argument, NULL, 'e'},
      {"host", required_argument, NULL, 'H'},
      {"pidfile", required_argument, NULL, 'p'},
      {"debug", no_argument, NULL, 'D'},
      {"log-level", required_argument, NULL, 'l'},
      {"registry-mirror", required_argument, NULL, 'm'},
      {"insecure-registry", required_argument, NULL, 'i'},
      {"dns", required_argument, NULL, 'n'},
      {"version", no_argument, NULL, 'v'},
      {"group", required_argument, NULL, 'G'},
      {"tls", optional_argument, NULL, O_TLS},
      {"tlsverify", optional_argument, NULL, O_TLSVERIFY},
      {"tlscacert", required_argument, NULL, O_TLSCACERT},
      {"tlscert", required_argument, NULL, O_TLSCERT},
      {"tlskey", required_argument, NULL, O_TLSKEY},
      {"config-file", required_argument, NULL, O_CONFIG},
      {"label", required_argument, NULL, O_LABEL},
      {"default-address-pool", required_argument, NULL, O_POOL},
      {"max-concurrent-downloads", required_argument, NULL, O_MAXDL},
      {"validate", no_argument, NULL, O_VALIDATE},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  cli_flags = json_object();
  cfg->hosts = xcalloc((size_t)argc + 1, sizeof *cfg->hosts);
  cfg->mirrors = xcalloc(1, sizeof *cfg->mirrors);
  cfg->insecure = xcalloc(1, sizeof *cfg->insecure);
  cfg->dns = xcalloc(1, sizeof *cfg->dns);
  cfg->labels = xcalloc(1, sizeof *cfg->labels);
  int c;
  const char *group = "docker";
  bool group_set = false, validate = false;
  struct tls_opts tls = {0};
  sh_err err = {0};
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":H:G:l:p:Dvh", opts, NULL)) != -1) {
    switch (c) {
    case 'G':
      group = optarg;
      group_set = true;
      flag_set("group", optarg);
      break;
    case O_TLS:
    case O_TLSVERIFY: {
      /* Go's bool flags: --tls, --tls=true, --tls=false. */
      bool v =
          !optarg || strcmp(optarg, "true") == 0 || strcmp(optarg, "1") == 0;
      if (optarg && !v && strcmp(optarg, "false") != 0 &&
          strcmp(optarg, "0") != 0) {
        fprintf(stderr,
                "invalid argument \"%s\" for \"--%s\" flag: strconv."
                "ParseBool: parsing \"%s\": invalid syntax\nSee 'shoald "
                "--help'.\n",
                optarg, c == O_TLS ? "tls" : "tlsverify", optarg);
        return 125;
      }
      if (c == O_TLS) {
        tls.tls = v;
        tls.tls_set = true;
      } else {
        tls.tlsverify = v;
        tls.tlsverify_set = true;
      }
      flag_set(c == O_TLS ? "tls" : "tlsverify", v ? "true" : "false");
      break;
    }
    case O_TLSCACERT:
      tls.ca = optarg;
      flag_set("tlscacert", optarg);
      break;
    case O_TLSCERT:
      tls.cert = optarg;
      flag_set("tlscert", optarg);
      break;
    case O_TLSKEY:
      tls.key = optarg;
      flag_set("tlskey", optarg);
      break;
    case 'r':
      free(cfg->data_root);
      cfg->data_root = xstrdup(optarg);
      flag_set("data-root", optarg);
      break;
    case 'e':
      free(cfg->exec_root);
      cfg->exec_root = xstrdup(optarg);
      flag_set("exec-root", optarg);
      break;
    case 'H':
      cfg->hosts[cfg->nhosts++] = xstrdup(optarg);
      flag_add("hosts", optarg);
      break;
    case 'p':
      free(cfg->pidfile);
      cfg->pidfile = xstrdup(optarg);
      flag_set("pidfile", optarg);
      break;
    case 'D':
      cfg->debug = true;
      flag_set("debug", "true");
      break;
    case 'l':
      if (daemon_config_check_log_level(optarg, &err) < 0)
        return bad_flag("--log-level", optarg, err.msg);
      free(cfg->log_level);
      cfg->log_level = xstrdup(optarg);
      flag_set("log-level", optarg);
      break;
    case 'm': {
      char *m = NULL;
      if (daemon_config_norm_mirror(optarg, &m, &err) < 0)
        return bad_flag("--registry-mirror", optarg, err.msg);
      cfg->mirrors = strv_grow(cfg->mirrors, m);
      flag_add("registry-mirrors", m);
      free(m);
      break;
    }
    case 'i':
      cfg->insecure = strv_grow(cfg->insecure, optarg);
      flag_add("insecure-registries", optarg);
      break;
    case 'n': {
      struct in_addr a;
      if (inet_pton(AF_INET, optarg, &a) != 1) {
        cleanup_free char *why = xasprintf("%s is not an ip address", optarg);
        return bad_flag("--dns", optarg, why);
      }
      cfg->dns = strv_grow(cfg->dns, optarg);
      flag_add("dns", optarg);
      break;
    }
    case O_CONFIG:
      free(cfg->config_file);
      cfg->config_file = xstrdup(optarg);
      config_file_set = true;
      break;
    case O_LABEL:
      if (daemon_config_check_label(optarg, &err) < 0)
        return bad_flag("--label", optarg, err.msg);
      cfg->labels = strv_grow(cfg->labels, optarg);
      flag_add("labels", optarg);
      break;
    case O_POOL: {
      json_t *p = NULL;
      if (daemon_config_parse_pool(optarg, &p, &err) < 0)
        return bad_flag("--default-address-pool", optarg, err.msg);
      if (!cfg->pools)
        cfg->pools = json_array();
      json_array_append_new(cfg->pools, p);
      flag_add("default-address-pools", optarg);
      break;
    }
    case O_MAXDL: {
      char *end;
      errno = 0;
      long v = strtol(optarg, &end, 10);
      if (!*optarg || *end || errno || v < INT_MIN || v > INT_MAX) {
        cleanup_free char *why = xasprintf(
            "strconv.ParseInt: parsing \"%s\": invalid syntax", optarg);
        return bad_flag("--max-concurrent-downloads", optarg, why);
      }
      if (v < 0) {
        fprintf(stderr, "invalid max concurrent downloads: %ld\n", v);
        return 1;
      }
      cfg->max_downloads = (int)v;
      flag_set("max-concurrent-downloads", optarg);
      break;
    }
    case O_VALIDATE:
      validate = true;
      break;
    case 'v':
      printf("shoald version %s, build %s\n", SHOAL_VERSION, SHOAL_GIT_COMMIT);
      return 0;
    case 'h':
      usage(stdout);
      return 0;
    case ':':
      fprintf(stderr, "flag needs an argument: %s\nSee 'shoald --help'.\n",
              argv[optind - 1]);
      return 125;
    default:
      fprintf(stderr, "unknown flag: %s\nSee 'shoald --help'.\n",
              argv[optind - 1]);
      return 125;
    }
  }
  if (optind < argc) {
    fprintf(stderr,
            "\"shoald\" accepts no arguments.\nSee 'shoald --help'.\n\n"
            "Usage:  shoald [OPTIONS]\n\nA container orchestrator that speaks "
            "the Docker Engine API.\n");
    return 125;
  }
  if (!cfg->config_file)
    cfg->config_file = xstrdup(SHOALD_DEFAULT_CONFIG_FILE);
  {
    cleanup_json json_t *file = NULL;
    if (daemon_config_read(cfg->config_file, config_file_set, cli_flags, &file,
                           &err) < 0) {
      fprintf(stderr, "%s\n", err.msg);
      return 1;
    }
    if (file) {
      daemon_config_apply(cfg, file, false);
      /* The settings the program keeps itself. */
      const json_t *v;
      if (json_is_string(v = json_object_get(file, "group"))) {
        group = json_string_value(v);
        group_set = true;
      }
      if (json_is_boolean(v = json_object_get(file, "tls"))) {
        tls.tls = json_is_true(v);
        tls.tls_set = true;
      }
      if (json_is_boolean(v = json_object_get(file, "tlsverify"))) {
        tls.tlsverify = json_is_true(v);
        tls.tlsverify_set = true;
      }
      if (json_is_string(v = json_object_get(file, "tlscacert")))
        tls.ca = xstrdup(json_string_value(v));
      if (json_is_string(v = json_object_get(file, "tlscert")))
        tls.cert = xstrdup(json_string_value(v));
      if (json_is_string(v = json_object_get(file, "tlskey")))
        tls.key = xstrdup(json_string_value(v));
      /* group's string lives in file: keep it past this block. */
      if (group_set && !json_object_get(cli_flags, "group"))
        group = xstrdup(group);
    }
  }
  if (validate) {
    fputs("configuration OK\n", stderr);
    return 0;
  }
  if (!cfg->data_root)
    cfg->data_root = xstrdup("/var/lib/shoal");
  if (!cfg->exec_root)
    cfg->exec_root = xstrdup("/run/shoal");
  if (!cfg->pidfile)
    cfg->pidfile = xasprintf("%s/shoald.pid", cfg->exec_root);
  if (cfg->nhosts == 0)
    cfg->hosts[cfg->nhosts++] = xstrdup("unix:///run/shoal/shoal.sock");
  daemon_config_apply_log_level(cfg);
  if (getenv("DOCKER_TLS_VERIFY") && *getenv("DOCKER_TLS_VERIFY") &&
      !tls.tlsverify_set)
    tls.tlsverify = true;
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
  cfg->api_insecure_ok = tls.tls_set && !tls.tls;

  lowfd_raise_nofile();
  lowfd_reserve(LOWFD_MAX);
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
  d->local_network_id = api_local_network_id;
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
  api_execs_free(d);
  unlink(cfg->pidfile);
  log_info("shoald stopped");
  return exit_code;
}
