/* shoal-sim: N simulated worker nodes in one process against real
 * managers (src/sim/sim.h). Flags, signals, the control socket and the
 * periodic figures. */
#include "core/clock.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/lowfd.h"
#include "core/util.h"
#include "sim/sim.h"

#include <getopt.h>
#include <mimalloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage_text[] =
    "Usage:\tshoal-sim --join-token TOKEN --manager IP:PORT [OPTIONS]\n"
    "\n"
    "Simulated worker nodes for capacity planning: each joins the swarm with\n"
    "the token, keeps a real dispatcher session over mutual TLS and reports\n"
    "task states as a real node would, without running any container. The\n"
    "nodes carry the engine label sim=true and hostnames PREFIX-0001...\n"
    "\n"
    "Options:\n"
    "      --join-token string    Worker join token (required)\n"
    "      --manager ip:port      A manager's swarm address (repeatable; "
    "port\n"
    "                             2377 when left out)\n"
    "      --nodes int            Number of simulated nodes (default 10)\n"
    "      --prefix string        Hostname prefix (default \"sim\")\n"
    "      --start-delay duration Assignment to running (default 50ms)\n"
    "      --jitter duration      +- on the start delay (default 1/5 of it)\n"
    "      --fail-rate float      Fraction of starts that fail (default 0)\n"
    "      --data string          Keep each node's identity here: a restart\n"
    "                             comes back as the same nodes (default: "
    "none,\n"
    "                             every run joins new nodes)\n"
    "      --control string       Unix socket taking \"down K\", \"up [K]\",\n"
    "                             \"status\" (one line each, JSON answers)\n"
    "      --stats duration       Print the figures this often (default 10s,\n"
    "                             0 for never); SIGUSR1 prints them too\n"
    "      --join-parallel int    Joins in flight at once (default 16)\n"
    "  -l, --log-level string     \"debug\"|\"info\"|\"warn\"|\"error\" "
    "(default \"info\")\n"
    "      --help                 Print usage\n";

static uv_loop_t *loop;
static struct sim *sim;
static uv_signal_t sig_int, sig_term, sig_usr1;
static uv_timer_t stats_timer;
static uv_pipe_t control;
static bool control_open;
static int exit_code;

struct conn {
  uv_pipe_t pipe;
  sh_buf in;
  struct conn *prev, *next;
};
static struct conn *conns; /* closed when the simulator stops */

static void print_figures(void) {
  cleanup_free char *line = sim_figures_line(sim);
  char ts[64];
  clock_format_rfc3339(clock_wall_ns(), ts, sizeof ts);
  printf("%s %s\n", ts, line);
  fflush(stdout);
}

static void on_stats(uv_timer_t *t) {
  print_figures();
}

static void conn_closed(uv_handle_t *h) {
  struct conn *c = h->data;
  if (c->prev)
    c->prev->next = c->next;
  else
    conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  buf_free(&c->in);
  free(c);
}

static void write_done(uv_write_t *w, int status) {
  free(w->data);
  free(w);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  buf->base = xmalloc(4096);
  buf->len = 4096;
}

static void conn_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  struct conn *c = st->data;
  if (nread > 0)
    buf_append(&c->in, buf->base, (size_t)nread);
  free(buf->base);
  if (nread < 0 || c->in.len > 4096) {
    uv_close((uv_handle_t *)st, conn_closed);
    return;
  }
  char *nl;
  while (sim && c->in.len > 0 && (nl = memchr(c->in.data, '\n', c->in.len))) {
    *nl = '\0';
    char *answer = sim_command(sim, c->in.data);
    size_t used = (size_t)(nl - c->in.data) + 1;
    memmove(c->in.data, nl + 1, c->in.len - used);
    c->in.len -= used;
    char *line = xasprintf("%s\n", answer);
    free(answer);
    uv_write_t *w = xmalloc(sizeof *w);
    w->data = line;
    uv_buf_t b = uv_buf_init(line, (unsigned)strlen(line));
    if (uv_write(w, st, &b, 1, write_done) < 0) {
      free(line);
      free(w);
    }
  }
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0)
    return;
  struct conn *c = xcalloc(1, sizeof *c);
  uv_pipe_init(loop, &c->pipe, 0);
  c->pipe.data = c;
  c->next = conns;
  if (conns)
    conns->prev = c;
  conns = c;
  if (uv_accept(server, (uv_stream_t *)&c->pipe) < 0 ||
      uv_read_start((uv_stream_t *)&c->pipe, alloc_cb, conn_read) < 0)
    uv_close((uv_handle_t *)&c->pipe, conn_closed);
}

static int control_listen(const char *path, sh_err *err) {
  unlink(path);
  uv_pipe_init(loop, &control, 0);
  int rc = uv_pipe_bind(&control, path);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&control, 16, on_connection);
  if (rc < 0) {
    uv_close((uv_handle_t *)&control, NULL);
    return sh_error(err, 500, "control socket %s: %s", path, uv_strerror(rc));
  }
  control_open = true;
  return 0;
}

static void sim_stopped(void *ud) {
  sim = NULL;
}

static void stop_all(void) {
  static bool stopping;
  if (!sim || stopping)
    return;
  stopping = true;
  print_figures();
  uv_close((uv_handle_t *)&sig_int, NULL);
  uv_close((uv_handle_t *)&sig_term, NULL);
  uv_close((uv_handle_t *)&sig_usr1, NULL);
  uv_close((uv_handle_t *)&stats_timer, NULL);
  if (control_open)
    uv_close((uv_handle_t *)&control, NULL);
  for (struct conn *c = conns; c; c = c->next)
    if (!uv_is_closing((uv_handle_t *)&c->pipe))
      uv_close((uv_handle_t *)&c->pipe, conn_closed);
  sim_stop(sim, sim_stopped, NULL);
}

static void on_signal(uv_signal_t *s, int signum) {
  if (signum == SIGUSR1) {
    print_figures();
    return;
  }
  log_info("processing signal '%s': stopping", strsignal(signum));
  stop_all();
}

/* The simulation cannot go on (token refused, no CA): exit 1. */
static void on_fatal(void *ud, const char *msg) {
  log_error("%s", msg);
  exit_code = 1;
  stop_all();
}

static int parse_duration(const char *flag, const char *v, int64_t *out) {
  sh_err err = {0};
  if (clock_parse_duration(v, out, &err) < 0 || *out < 0) {
    fprintf(stderr, "shoal-sim: invalid argument \"%s\" for \"--%s\" flag\n", v,
            flag);
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  /* mimalloc (the Makefile links it for the simulator) on huge pages, as
   * a large manager's JSON heap is (lazy/heap.c): in the 1,000-node bench
   * 0.9 s less CPU in three pairs of runs of four (0.6 s more in one), for
   * ~30 MiB more memory. */
  if (!getenv("MIMALLOC_LARGE_OS_PAGES"))
    mi_option_set(mi_option_large_os_pages, 1);
  enum {
    O_TOKEN = 256,
    O_MANAGER,
    O_NODES,
    O_PREFIX,
    O_DELAY,
    O_JITTER,
    O_FAIL,
    O_DATA,
    O_CONTROL,
    O_STATS,
    O_PARALLEL,
    O_HELP
  };
  static const struct option opts[] = {
      {"join-token", required_argument, NULL, O_TOKEN},
      {"manager", required_argument, NULL, O_MANAGER},
      {"nodes", required_argument, NULL, O_NODES},
      {"prefix", required_argument, NULL, O_PREFIX},
      {"start-delay", required_argument, NULL, O_DELAY},
      {"jitter", required_argument, NULL, O_JITTER},
      {"fail-rate", required_argument, NULL, O_FAIL},
      {"data", required_argument, NULL, O_DATA},
      {"control", required_argument, NULL, O_CONTROL},
      {"stats", required_argument, NULL, O_STATS},
      {"join-parallel", required_argument, NULL, O_PARALLEL},
      {"log-level", required_argument, NULL, 'l'},
      {"help", no_argument, NULL, O_HELP},
      {0},
  };
  cleanup_json json_t *managers = json_array();
  struct sim_config cfg = {.nodes = 10,
                           .prefix = "sim",
                           .start_delay_ns = 50 * NS_PER_MS,
                           .jitter_ns = -1};
  const char *control_path = NULL;
  int64_t stats_ns = 10 * NS_PER_SEC;
  int c;
  char *end;
  while ((c = getopt_long(argc, argv, "l:", opts, NULL)) != -1) {
    switch (c) {
    case O_TOKEN:
      cfg.join_token = optarg;
      break;
    case O_MANAGER: {
      cleanup_free char *a =
          strchr(optarg, ':') ? xstrdup(optarg) : xasprintf("%s:2377", optarg);
      json_array_append_new(managers, json_string(a));
      break;
    }
    case O_NODES:
      cfg.nodes = (int)strtol(optarg, &end, 10);
      if (*end || end == optarg) {
        fprintf(stderr, "shoal-sim: invalid --nodes \"%s\"\n", optarg);
        return 2;
      }
      break;
    case O_PREFIX:
      cfg.prefix = optarg;
      break;
    case O_DELAY:
      if (parse_duration("start-delay", optarg, &cfg.start_delay_ns) < 0)
        return 2;
      break;
    case O_JITTER:
      if (parse_duration("jitter", optarg, &cfg.jitter_ns) < 0)
        return 2;
      break;
    case O_FAIL:
      cfg.fail_rate = strtod(optarg, &end);
      if (*end || end == optarg) {
        fprintf(stderr, "shoal-sim: invalid --fail-rate \"%s\"\n", optarg);
        return 2;
      }
      break;
    case O_DATA:
      cfg.data_dir = optarg;
      break;
    case O_CONTROL:
      control_path = optarg;
      break;
    case O_STATS:
      if (parse_duration("stats", optarg, &stats_ns) < 0)
        return 2;
      break;
    case O_PARALLEL:
      cfg.join_parallel = (int)strtol(optarg, &end, 10);
      if (*end || end == optarg || cfg.join_parallel < 1) {
        fprintf(stderr, "shoal-sim: invalid --join-parallel \"%s\"\n", optarg);
        return 2;
      }
      break;
    case 'l':
      if (strcmp(optarg, "debug") == 0)
        log_set_level(LOG_DEBUG);
      else if (strcmp(optarg, "info") == 0)
        log_set_level(LOG_INFO);
      else if (strcmp(optarg, "warn") == 0)
        log_set_level(LOG_WARN);
      else if (strcmp(optarg, "error") == 0)
        log_set_level(LOG_ERROR);
      else {
        fprintf(stderr, "shoal-sim: invalid log level \"%s\"\n", optarg);
        return 2;
      }
      break;
    case O_HELP:
      fputs(usage_text, stdout);
      return 0;
    default:
      fputs(usage_text, stderr);
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "shoal-sim: unexpected argument \"%s\"\n", argv[optind]);
    return 2;
  }
  if (cfg.jitter_ns < 0)
    cfg.jitter_ns = cfg.start_delay_ns / 5;
  cfg.managers = managers;
  cfg.on_fatal = on_fatal;

  /* Two connections a node (its session, its heartbeats and reports). */
  lowfd_raise_nofile();
  signal(SIGPIPE, SIG_IGN);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  srandom((unsigned)(ts.tv_nsec ^ getpid()));

  loop = uv_default_loop();
  cfg.loop = loop;
  sh_err err = {0};
  if (control_path && control_listen(control_path, &err) < 0) {
    fprintf(stderr, "shoal-sim: %s\n", err.msg);
    return 1;
  }
  if (sim_start(&cfg, &sim, &err) < 0) {
    fprintf(stderr, "shoal-sim: %s\n", err.msg);
    return 1;
  }
  log_info("%d simulated nodes joining through %s", cfg.nodes,
           json_string_value(json_array_get(managers, 0)));
  uv_signal_init(loop, &sig_int);
  uv_signal_init(loop, &sig_term);
  uv_signal_init(loop, &sig_usr1);
  uv_signal_start(&sig_int, on_signal, SIGINT);
  uv_signal_start(&sig_term, on_signal, SIGTERM);
  uv_signal_start(&sig_usr1, on_signal, SIGUSR1);
  uv_timer_init(loop, &stats_timer);
  if (stats_ns > 0)
    uv_timer_start(&stats_timer, on_stats, (uint64_t)(stats_ns / NS_PER_MS),
                   (uint64_t)(stats_ns / NS_PER_MS));
  uv_run(loop, UV_RUN_DEFAULT);
  if (control_path)
    unlink(control_path);
  uv_loop_close(loop);
  return exit_code;
}
