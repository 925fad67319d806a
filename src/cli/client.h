/* Synchronous Engine API client for the shoal CLI (libcurl easy), over a
 * unix socket or plain TCP, negotiating the API version like the docker
 * CLI: HEAD /_ping, take its Api-Version header (capped at 1.47) and prefix
 * every later path with /vX.Y.
 *
 * Errors carry the text docker prints: "Error response from daemon: <msg>"
 * with the HTTP status in err->status, or "Cannot connect to the Docker
 * daemon at <host>. Is the docker daemon running?" with CLI_ESTATUS_CONNECT.
 */
#ifndef SHOAL_CLI_CLIENT_H
#define SHOAL_CLI_CLIENT_H

#include <jansson.h>
#include <stdbool.h>

#include "core/util.h"

struct sh_err;

#define CLI_DEFAULT_HOST "unix:///run/shoal/shoal.sock"
#define CLI_API_VERSION "1.47"
#define CLI_API_MIN_VERSION "1.24"
/* err->status values below 100 are client-side failures. */
#define CLI_ESTATUS_CONNECT 1 /* could not reach the daemon */
#define CLI_ESTATUS_LOCAL 2   /* bad response, bad input */

typedef struct cli_client {
  char *host;      /* normalized: unix:///path or tcp://host:port */
  char *unix_path; /* socket path for unix hosts, else NULL */
  char *base_url;  /* http://localhost or http://host:port */
  char version[16];
  bool negotiated;
  long timeout_ms;
  void *curl;
} cli_client;

/* Normalizes a -H / DOCKER_HOST value like docker's ParseHost:
 * "unix:///p", "unix://" (default socket), "tcp://h[:p]", "h:p", ":p"
 * (tcp default port 2375). Fills the three strings (caller frees). */
int cli_host_parse(const char *in, char **host, char **unix_path,
                   char **base_url, struct sh_err *err);

int cli_client_init(cli_client *c, const char *host, struct sh_err *err);
void cli_client_free(cli_client *c);
/* HEAD /_ping (GET on failure); idempotent. */
int cli_client_negotiate(cli_client *c, struct sh_err *err);

/* One call: METHOD /vX.Y<path_and_query>. body may be NULL. On 2xx the raw
 * body is in *resp (caller frees with buf_free); other statuses become the
 * daemon error. */
int cli_call(cli_client *c, const char *method, const char *path,
             const json_t *body, sh_buf *resp, struct sh_err *err);
/* cli_call and decode the JSON answer (any JSON type). */
int cli_call_json(cli_client *c, const char *method, const char *path,
                  const json_t *body, json_t **out, struct sh_err *err);

/* Builds docker's message for a non-2xx answer (exposed for tests). */
void cli_daemon_error(long status, const char *content_type, const char *body,
                      size_t len, const char *url, struct sh_err *err);
/* Percent-encodes s for a query or path component; caller frees. */
char *cli_escape(const char *s);

#endif
