/* The shoal CLI: one file per command group (swarm.c, node.c, system.c),
 * dispatched from main.c. Commands print their own output and errors and
 * return the process exit code, as docker's do (1 for errors, 125 for flag
 * errors, 64 for template parse errors). */
#ifndef SHOAL_CMD_SHOAL_H
#define SHOAL_CMD_SHOAL_H

#include <stdbool.h>
#include <stdint.h>

#include "cli/client.h"
#include "cli/flags.h"
#include "core/err.h"
#include "core/util.h"

#define PROG "shoal"

struct shoal {
  const char *host; /* -H, else DOCKER_HOST, else the default socket */
  bool debug;
  bool client_ready;
  cli_client client;
};

/* The daemon client, created on first use. NULL with err set when the host
 * is invalid. */
cli_client *shoal_client(struct shoal *s, sh_err *err);
/* Prints err's message on stderr; returns the exit code for it. */
int shoal_fail(const sh_err *err);
/* Prints a message on stderr; returns 1. */
int shoal_failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void shoal_print(const sh_buf *b);
/* The end of every inspect command: renders the n documents (ptrs/lens)
 * with format, prints the lookup errors gathered in errors, frees raws
 * (nargs buffers), ptrs, lens and errors; returns the exit code. */
int shoal_inspect_output(sh_buf *raws, int nargs, const char **ptrs,
                         size_t *lens, int n, const char *format,
                         sh_buf *errors);

typedef int (*shoal_cmd_fn)(struct shoal *s, int argc, char **argv);
struct shoal_subcmd {
  const char *name, *alias;
  shoal_cmd_fn fn;
};
/* Runs a command group ("shoal swarm ..."): help, unknown commands and
 * flags before the subcommand behave as docker's. */
int shoal_group(struct shoal *s, const char *path, const char *help,
                const struct shoal_subcmd *cmds, int argc, char **argv);
/* Parses a command's flags/args; returns -1 with *rc when it must exit. */
int shoal_parse(struct cli_cmd *cmd, int argc, char **argv, char ***args,
                int *nargs, int *rc);

int cmd_swarm(struct shoal *s, int argc, char **argv);
int cmd_node(struct shoal *s, int argc, char **argv);
int cmd_system(struct shoal *s, int argc, char **argv);
int cmd_info(struct shoal *s, int argc, char **argv);
int cmd_version(struct shoal *s, int argc, char **argv);
int cmd_service(struct shoal *s, int argc, char **argv);
int cmd_ps(struct shoal *s, int argc, char **argv);
int cmd_logs(struct shoal *s, int argc, char **argv);
int cmd_inspect(struct shoal *s, int argc, char **argv);

/* Wall clock in Unix ns (relative times in tables). */
int64_t shoal_now_ns(void);
/* "-f a=b -f a=c" -> "filters=%7B..." (escaped JSON), or "" without filters;
 * sep is put before it when it is not empty. Caller frees. */
char *shoal_filters_query(struct cli_flag *f, const char *sep);
/* A multiplexed (or raw, for TTY) log stream: fn gets each frame with its
 * stream number (1 stdout, 2 stderr); blocks until the daemon ends it. */
typedef int (*shoal_frame_fn)(int stream, const char *p, size_t n, void *arg);
int shoal_stream(cli_client *c, const char *path, shoal_frame_fn fn, void *arg,
                 sh_err *err);

#endif
