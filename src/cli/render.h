/* What the shoal CLI prints, rendered from Engine API JSON exactly as the
 * docker CLI renders the same answers: node tables, node inspect (JSON,
 * --pretty, templates), docker info's Client/Server/Swarm sections,
 * version, and the swarm init / join-token messages. Pure functions from
 * JSON to text so they are unit-tested without a daemon. */
#ifndef SHOAL_CLI_RENDER_H
#define SHOAL_CLI_RENDER_H

#include <jansson.h>
#include <stdbool.h>

#include "core/util.h"

struct sh_err;

/* docker's --format preprocessing: "table ..." prefix stripped (is_table
 * set), "json" -> "{{json .}}", literal \t and \n turned into tab/newline.
 * Caller frees. */
char *render_prepare_format(const char *format, bool *is_table);

/* node ls. nodes: the /nodes array (sorted here by hostname, naturally);
 * info: the /info object (for the "*" on self and TLS status) or NULL;
 * format: NULL/"" for the default table. */
int render_node_list(const json_t *nodes, const json_t *info,
                     const char *format, bool quiet, sh_buf *out,
                     struct sh_err *err);
/* The per-node values node ls templates see ({{.ID}}, {{.Self}}...). */
json_t *render_node_context(const json_t *node, const json_t *info);

/* node inspect --pretty for one node (ends with a newline). */
void render_node_pretty(const json_t *node, sh_buf *out);

/* inspect output for raw JSON objects: format NULL/"" -> a 4-space
 * indented array; "json" -> one compact line; else a template per object
 * (missing keys are errors, as docker's raw fallback). */
int render_inspect(const char *const *raws, const size_t *lens, size_t n,
                   const char *format, sh_buf *out, struct sh_err *err);

/* docker info: the Client section (always) ... */
void render_info_client(const json_t *client, bool debug, sh_buf *out);
/* ... and the Server section body from /info. Warnings and decoding
 * problems go to errout; returns the number of errors (not warnings). */
int render_info_server(const json_t *info, bool client_debug, sh_buf *out,
                       sh_buf *errout);
/* The Swarm lines of docker info (after " Swarm: <state>"). */
void render_swarm_info(const json_t *info, sh_buf *out);

/* Client version facts as docker version/info use them: Version,
 * ApiVersion, DefaultAPIVersion, GitCommit, Os, Arch, BuildTime, Context. */
json_t *render_client_version(const char *api_version);
/* docker version's default layout; server may be NULL (unreachable). */
void render_version(const json_t *client, const json_t *server, sh_buf *out);

/* "To add a worker to this swarm, run the following command:..." */
void render_join_command(const char *prog, const char *token, const char *addr,
                         bool manager, sh_buf *out);
void render_unlock_command(const char *prog, const char *key, sh_buf *out);

#endif
