/* shoal: the CLI. Global flags as docker's (-H/--host, -D/--debug,
 * -v/--version, -l/--log-level, --config), then one command group. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shoal.h"

#include "cli/render.h"

#ifndef SHOAL_VERSION
#define SHOAL_VERSION "0.1.0"
#endif
#ifndef SHOAL_GIT_COMMIT
#define SHOAL_GIT_COMMIT "unknown"
#endif

static const char ROOT_USE[] = "shoal [OPTIONS] COMMAND [ARG...]";
static const char ROOT_HELP[] =
    "Usage:  shoal [OPTIONS] COMMAND\n"
    "\n"
    "A Docker Swarm-compatible container orchestrator\n"
    "\n"
    "Management Commands:\n"
    "  node        Manage Swarm nodes\n"
    "  service     Manage Swarm services\n"
    "  swarm       Manage Swarm\n"
    "  system      Manage Docker\n"
    "\n"
    "Commands:\n"
    "  info        Display system-wide information\n"
    "  inspect     Return low-level information on Docker objects\n"
    "  logs        Fetch the logs of a container\n"
    "  ps          List containers\n"
    "  version     Show the Docker version information\n"
    "\n"
    "Global Options:\n"
    "      --config string      Location of client config files (ignored)\n"
    "  -D, --debug              Enable debug mode\n"
    "  -H, --host list          Daemon socket to connect to\n"
    "  -l, --log-level string   Set the logging level (\"debug\", \"info\",\n"
    "                           \"warn\", \"error\", \"fatal\") (default "
    "\"info\")\n"
    "  -v, --version            Print version information and quit\n"
    "\n"
    "Run 'shoal COMMAND --help' for more information on a command.\n";

static struct cli_flag root_flags[] = {
    {.name = "config", .type = CLI_FLAG_STRING},
    {.name = "context", .shorthand = 'c', .type = CLI_FLAG_STRING},
    {.name = "debug", .shorthand = 'D', .type = CLI_FLAG_BOOL},
    {.name = "host", .shorthand = 'H', .type = CLI_FLAG_LIST},
    {.name = "log-level",
     .shorthand = 'l',
     .type = CLI_FLAG_STRING,
     .dflt = "info"},
    {.name = "tls", .type = CLI_FLAG_BOOL},
    {.name = "tlscacert", .type = CLI_FLAG_STRING},
    {.name = "tlscert", .type = CLI_FLAG_STRING},
    {.name = "tlskey", .type = CLI_FLAG_STRING},
    {.name = "tlsverify", .type = CLI_FLAG_BOOL},
    {.name = "version", .shorthand = 'v', .type = CLI_FLAG_BOOL},
};

static const struct shoal_subcmd root_cmds[] = {
    {"info", NULL, cmd_info},       {"inspect", NULL, cmd_inspect},
    {"logs", NULL, cmd_logs},       {"node", NULL, cmd_node},
    {"ps", NULL, cmd_ps},           {"service", NULL, cmd_service},
    {"swarm", NULL, cmd_swarm},     {"system", NULL, cmd_system},
    {"version", NULL, cmd_version},
};

cli_client *shoal_client(struct shoal *s, sh_err *err) {
  if (!s->client_ready) {
    if (cli_client_init(&s->client, s->host, err) < 0) {
      cli_client_free(&s->client);
      return NULL;
    }
    s->client_ready = true;
  }
  return &s->client;
}

int shoal_fail(const sh_err *err) {
  fprintf(stderr, "%s\n", err->msg);
  return err->status == 64 ? 64 : 1;
}

int shoal_failf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  return 1;
}

int shoal_inspect_output(sh_buf *raws, int nargs, const char **ptrs,
                         size_t *lens, int n, const char *format,
                         sh_buf *errors) {
  cleanup_buf sh_buf out = {0};
  sh_err err = {0};
  int rc = 0;
  if (render_inspect(ptrs, lens, n, format, &out, &err) < 0) {
    shoal_print(&out);
    fprintf(stderr, "%s\n", err.msg);
    rc = err.status == 64 ? 64 : 1;
  } else {
    shoal_print(&out);
  }
  if (errors->len) {
    fflush(stdout);
    fprintf(stderr, "%s\n", errors->data);
    rc = rc ? rc : 1;
  }
  for (int i = 0; i < nargs; i++)
    buf_free(&raws[i]);
  free(raws);
  free(ptrs);
  free(lens);
  buf_free(errors);
  return rc;
}

void shoal_print(const sh_buf *b) {
  if (b->len)
    fwrite(b->data, 1, b->len, stdout);
}

int shoal_parse(struct cli_cmd *cmd, int argc, char **argv, char ***args,
                int *nargs, int *rc) {
  return cli_cmd_parse(cmd, argc, argv, args, nargs, rc, stdout, stderr);
}

int shoal_group(struct shoal *s, const char *path, const char *help,
                const struct shoal_subcmd *cmds, int argc, char **argv) {
  if (argc == 0) {
    fputs(help, stderr);
    return 0;
  }
  const char *a = argv[0];
  if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
    if (a[1] == 'h')
      printf("Flag shorthand -h has been deprecated, use --help\n");
    fputs(help, stdout);
    return 0;
  }
  if (a[0] == '-' && a[1]) {
    if (a[1] == '-')
      fprintf(stderr, "unknown flag: %.*s", (int)strcspn(a, "="), a);
    else
      fprintf(stderr, "unknown shorthand flag: '%c' in %s", a[1], a);
    fprintf(stderr, "\n\nUsage:  %s\n\nRun '%s --help' for more information\n",
            path, path);
    return 125;
  }
  for (size_t i = 0; cmds[i].name; i++)
    if (strcmp(a, cmds[i].name) == 0 ||
        (cmds[i].alias && strcmp(a, cmds[i].alias) == 0))
      return cmds[i].fn(s, argc - 1, argv + 1);
  fprintf(stderr,
          "%s: unknown command: %s %s\n\nUsage:  %s\n\nRun '%s --help' for "
          "more information\n",
          PROG, path, a, path, path);
  return 1;
}

/* Global flags end at the first word that is not a flag (or its value). */
static int global_end(int argc, char **argv) {
  static const char *const with_value[] = {
      "-H", "--host",    "-l",          "--log-level", "--config",
      "-c", "--context", "--tlscacert", "--tlscert",   "--tlskey"};
  int i = 0;
  while (i < argc && argv[i][0] == '-' && argv[i][1]) {
    if (strcmp(argv[i], "--") == 0)
      return i + 1;
    bool takes = false;
    for (size_t k = 0; k < ARRAY_SIZE(with_value); k++)
      if (strcmp(argv[i], with_value[k]) == 0)
        takes = true;
    i += takes && i + 1 < argc ? 2 : 1;
  }
  return i;
}

int main(int argc, char **argv) {
  struct shoal s = {0};
  int gend = global_end(argc - 1, argv + 1);
  char **args = NULL;
  int nargs = 0;
  bool help = false, dash_h = false;
  char msg[1024];
  int rc = 0;
  if (cli_flags_parse(root_flags, ARRAY_SIZE(root_flags), gend, argv + 1, &args,
                      &nargs, &help, &dash_h, msg, sizeof msg) < 0) {
    fprintf(stderr,
            "%s\n\nUsage:  %s\n\nRun 'shoal --help' for more information\n",
            msg, ROOT_USE);
    rc = 125;
    goto out;
  }
  if (help) {
    fputs(ROOT_HELP, stdout);
    goto out;
  }
  struct cli_cmd root = {.flags = root_flags, .nflags = ARRAY_SIZE(root_flags)};
  if (cli_flag(&root, "version")->b) {
    printf("Shoal version %s, build %s\n", SHOAL_VERSION, SHOAL_GIT_COMMIT);
    goto out;
  }
  s.debug = cli_flag(&root, "debug")->b;
  struct cli_flag *host = cli_flag(&root, "host");
  if (host->nlist > 1) {
    fprintf(stderr, "Failed to initialize: unable to resolve docker endpoint: "
                    "Specify only one -H\n");
    rc = 1;
    goto out;
  }
  if (cli_flag(&root, "tls")->b || cli_flag(&root, "tlsverify")->b) {
    fprintf(stderr,
            "Failed to initialize: TLS is not supported by shoal yet\n");
    rc = 1;
    goto out;
  }
  s.host = host->nlist ? host->list[0] : getenv("DOCKER_HOST");
  int rest = argc - 1 - gend;
  char **rargv = argv + 1 + gend;
  if (rest == 0) {
    fputs(ROOT_HELP, stderr);
    goto out;
  }
  if (strcmp(rargv[0], "help") == 0) {
    if (rest == 1) {
      fputs(ROOT_HELP, stdout);
      goto out;
    }
    /* "shoal help swarm" is "shoal swarm --help" */
    char *hargv[] = {rargv[1], "--help", NULL};
    rargv = hargv;
    rest = 2;
    for (size_t i = 0; i < ARRAY_SIZE(root_cmds); i++)
      if (strcmp(rargv[0], root_cmds[i].name) == 0) {
        rc = root_cmds[i].fn(&s, 1, rargv + 1);
        goto out;
      }
    fprintf(stderr, "unknown help topic: %s\n", rargv[0]);
    rc = 1;
    goto out;
  }
  rc = -1;
  for (size_t i = 0; i < ARRAY_SIZE(root_cmds); i++)
    if (strcmp(rargv[0], root_cmds[i].name) == 0)
      rc = root_cmds[i].fn(&s, rest - 1, rargv + 1);
  if (rc == -1) {
    fprintf(stderr,
            "%s: unknown command: %s %s\n\nRun '%s --help' for more "
            "information\n",
            PROG, PROG, rargv[0], PROG);
    rc = 1;
  }
out:
  free(args);
  cli_flags_free(root_flags, ARRAY_SIZE(root_flags));
  if (s.client_ready)
    cli_client_free(&s.client);
  fflush(stdout);
  return rc;
}
