/* Command-line parsing with the behaviour and messages of the docker CLI
 * (spf13/pflag + cobra): --name=value, --name value, -n value, -nvalue,
 * combined short booleans (-qf x), flags after arguments, "--", exit 125
 * for flag errors and 1 for a wrong argument count, help on stdout. */
#ifndef SHOAL_CLI_FLAGS_H
#define SHOAL_CLI_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum cli_flag_type {
  CLI_FLAG_BOOL,
  CLI_FLAG_STRING,
  CLI_FLAG_INT64,  /* Go int / int64 */
  CLI_FLAG_UINT64, /* Go uint / uint64 */
  CLI_FLAG_UINT32,
  CLI_FLAG_DURATION,    /* Go time.Duration, stored in i (ns) */
  CLI_FLAG_LIST,        /* repeatable strings */
  CLI_FLAG_NODE_ADDR,   /* swarm listen address -> "host:port" in s */
  CLI_FLAG_IPNET_SLICE, /* comma-separated CIDRs, normalized, in list */
  CLI_FLAG_FILTER,      /* repeatable name=value, normalized, in list */
  CLI_FLAG_EXTERNAL_CA, /* repeatable protocol=cfssl,url=... specs */
};

struct cli_flag {
  const char *name;
  char shorthand;
  enum cli_flag_type type;
  const char *dflt; /* default in flag syntax, or NULL */
  /* parsed values */
  bool changed;
  bool b;
  int64_t i;
  uint64_t u;
  char *s;
  char **list;
  size_t nlist;
};

enum cli_args_rule {
  CLI_ARGS_NONE,
  CLI_ARGS_EXACT,
  CLI_ARGS_MIN,
  CLI_ARGS_ANY
};

struct cli_cmd {
  const char *path; /* "shoal swarm init" */
  const char *use;  /* "shoal swarm init [OPTIONS]" */
  const char *help; /* whole --help text */
  enum cli_args_rule rule;
  int nargs;
  struct cli_flag *flags;
  size_t nflags;
};

/* Parses argv (argv[0] is the first word after the command path) into the
 * flags and the positional arguments (*args, *nargs: point into argv,
 * caller frees the array). Returns 0 to run the command; -1 when the caller
 * should exit with *rc: help was printed to out (rc 0), or an error to errf
 * (rc 125 for flags, 1 for the argument count). */
int cli_cmd_parse(struct cli_cmd *cmd, int argc, char **argv, char ***args,
                  int *nargs, int *rc, FILE *out, FILE *errf);
/* Just the flag pass; on error writes the pflag message to msg. */
int cli_flags_parse(struct cli_flag *flags, size_t n, int argc, char **argv,
                    char ***args, int *nargs, bool *help, bool *dash_h,
                    char *msg, size_t msglen);

struct cli_flag *cli_flag(struct cli_cmd *cmd, const char *name);
/* Back to defaults / frees parsed values. */
void cli_flags_reset(struct cli_flag *flags, size_t n);
void cli_flags_free(struct cli_flag *flags, size_t n);

/* docker's ParseTCPAddr for swarm addresses with default 0.0.0.0:2377:
 * "eth0" -> "eth0:2377", ":4000" -> "0.0.0.0:4000". */
int cli_parse_node_addr(const char *in, char *out, size_t n, char *msg,
                        size_t msglen);
/* net.ParseCIDR + IPNet.String(): "10.1.2.3/8" -> "10.0.0.0/8". */
int cli_parse_cidr(const char *in, char *out, size_t n);
/* docker's parseExternalCA: "protocol=cfssl,url=https://...,cacert=FILE,
 * k=v" -> {"Protocol","URL","Options","CACert"}; message on error. */
struct json_t;
int cli_parse_external_ca(const char *spec, struct json_t **out, char *msg,
                          size_t msglen);

#endif
