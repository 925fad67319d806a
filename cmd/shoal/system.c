/* shoal info / system info / version, as docker's cli/command/system. */
#include <stdio.h>
#include <string.h>

#include "cli/render.h"
#include "cli/template.h"
#include "core/jsonx.h"
#include "shoal.h"

/* --help texts, as the docker 28 CLI prints them */
static const char HELP_INFO[] =
    "Usage:  shoal info [OPTIONS]\n"
    "\n"
    "Display system-wide information\n"
    "\n"
    "Aliases:\n"
    "  shoal system info, shoal info\n"
    "\n"
    "Options:\n"
    "  -f, --format string   Format output using a custom template:\n"
    "                        'json':             Print in JSON format\n"
    "                        'TEMPLATE':         Print output using the given\n"
    "                        Go template.\n"
    "                        Refer to https://docs.docker.com/go/formatting/\n"
    "                        for more information about formatting output "
    "with\n"
    "                        templates\n";
static const char HELP_VERSION[] =
    "Usage:  shoal version [OPTIONS]\n"
    "\n"
    "Show the Docker version information\n"
    "\n"
    "Options:\n"
    "  -f, --format string   Format output using a custom template:\n"
    "                        'json':             Print in JSON format\n"
    "                        'TEMPLATE':         Print output using the given\n"
    "                        Go template.\n"
    "                        Refer to https://docs.docker.com/go/formatting/\n"
    "                        for more information about formatting output "
    "with\n"
    "                        templates\n";

static const char HELP_SYSTEM[] =
    "Usage:  shoal system COMMAND\n"
    "\n"
    "Manage Docker\n"
    "\n"
    "Commands:\n"
    "  info        Display system-wide information\n"
    "\n"
    "Run 'shoal system COMMAND --help' for more information on a command.\n";

static struct cli_flag info_flags[] = {
    {.name = "format", .shorthand = 'f', .type = CLI_FLAG_STRING},
};
static struct cli_cmd info_cmd = {
    "shoal info", "shoal info [OPTIONS]", HELP_INFO, CLI_ARGS_NONE, 0,
    info_flags,   ARRAY_SIZE(info_flags)};

/* Parses a --format value ("json" is {{json .}}); on error prints docker's
 * message (the template is named `name`) and returns 64. */
static int parse_format(const char *format, const char *name,
                        struct cli_tmpl **t) {
  bool table = false;
  cleanup_free char *f = render_prepare_format(
      strcmp(format, "json") == 0 ? "{{json .}}" : format, &table);
  sh_err err = {0};
  if (cli_tmpl_parse(f, t, &err) == 0)
    return 0;
  const char *rest = str_has_prefix(err.msg, "template: :")
                         ? err.msg + strlen("template: :")
                         : err.msg;
  fprintf(stderr, "template parsing error: template: %s:%s\n", name, rest);
  return 64;
}

/* Executes a --format template over dot, then a newline, as docker does. */
static int print_template(const char *format, const char *name,
                          const json_t *dot) {
  struct cli_tmpl *t = NULL;
  sh_err err = {0};
  int prc = parse_format(format, name, &t);
  if (prc)
    return prc;
  cleanup_buf sh_buf out = {0};
  int ret = cli_tmpl_exec(t, dot, false, false, &out, &err);
  cli_tmpl_free(t);
  buf_append(&out, "\n", 1);
  shoal_print(&out);
  return ret < 0 ? shoal_fail(&err) : 0;
}

int cmd_info(struct shoal *s, int argc, char **argv) {
  struct cli_cmd *cmd = &info_cmd;
  cleanup_free char **args = NULL;
  int nargs, rc;
  if (shoal_parse(cmd, argc, argv, &args, &nargs, &rc) < 0)
    return rc;
  const char *format = cli_flag(cmd, "format")->s;
  sh_err err = {0};
  cli_client *c = shoal_client(s, &err);
  cleanup_json json_t *info = NULL;
  int got = c ? cli_call_json(c, "GET", "/info", NULL, &info, &err) : -1;
  if (got == 0 && !json_is_object(info)) {
    got = sh_error(&err, CLI_ESTATUS_LOCAL,
                   "error reading the daemon's answer to GET /info: not an "
                   "object");
  }
  cleanup_json json_t *client = render_client_version(NULL);
  json_object_del(client, "ApiVersion");
  json_object_set_new(client, "Debug", json_boolean(s->debug));
  json_object_set_new(client, "Plugins", json_array());
  json_object_set_new(client, "Warnings", json_null());
  if (format && format[0]) {
    if (got < 0 && (!c || err.status == CLI_ESTATUS_CONNECT)) {
      /* docker still renders the client part, then reports both */
      shoal_fail(&err);
      cleanup_json json_t *dot = json_pack("{s:O}", "ClientInfo", client);
      rc = print_template(format, "", dot);
      return rc ? rc : 1;
    }
    if (got < 0)
      fprintf(stderr, "%s\n", err.msg);
    json_t *dot = got == 0 ? json_deep_copy(info) : json_object();
    if (got < 0)
      json_object_set_new(dot, "ServerErrors", json_pack("[s]", err.msg));
    json_object_set(dot, "ClientInfo", client);
    rc = print_template(format, "", dot);
    json_decref(dot);
    return rc;
  }
  cleanup_buf sh_buf out = {0};
  cleanup_buf sh_buf errs = {0};
  render_info_client(client, s->debug, &out);
  buf_printf(&out, "\nServer:\n");
  int nerr = 0;
  if (got == 0)
    nerr = render_info_server(info, s->debug, &out, &errs);
  shoal_print(&out);
  fflush(stdout);
  if (errs.len)
    fputs(errs.data, stderr);
  if (got < 0 && (!c || err.status == CLI_ESTATUS_CONNECT))
    return shoal_fail(&err);
  if (got < 0) {
    fprintf(stderr, "ERROR: %s\n", err.msg);
    nerr++;
  }
  if (nerr)
    return shoal_failf("errors pretty printing info");
  return 0;
}

static struct cli_flag version_flags[] = {
    {.name = "format", .shorthand = 'f', .type = CLI_FLAG_STRING},
};
static struct cli_cmd version_cmd = {
    "shoal version", "shoal version [OPTIONS]", HELP_VERSION, CLI_ARGS_NONE, 0,
    version_flags,   ARRAY_SIZE(version_flags)};

int cmd_version(struct shoal *s, int argc, char **argv) {
  struct cli_cmd *cmd = &version_cmd;
  cleanup_free char **args = NULL;
  int nargs, rc;
  if (shoal_parse(cmd, argc, argv, &args, &nargs, &rc) < 0)
    return rc;
  const char *format = cli_flag(cmd, "format")->s;
  if (format && format[0]) {
    struct cli_tmpl *t = NULL;
    if ((rc = parse_format(format, "version", &t)) != 0)
      return rc;
    cli_tmpl_free(t);
  }
  sh_err err = {0};
  cli_client *c = shoal_client(s, &err);
  cleanup_json json_t *server = NULL;
  int got = -1;
  if (c) {
    sh_err nerr = {0};
    cli_client_negotiate(c, &nerr); /* the API version shown is negotiated */
    got = cli_call_json(c, "GET", "/version", NULL, &server, &err);
    if (got == 0 && !json_is_object(server))
      got = sh_error(&err, CLI_ESTATUS_LOCAL,
                     "error reading the daemon's answer to GET /version: not "
                     "an object");
  }
  cleanup_json json_t *client = render_client_version(c ? c->version : NULL);
  if (format && format[0]) {
    cleanup_json json_t *dot =
        json_pack("{s:O, s:O}", "Client", client, "Server",
                  got == 0 ? server : json_null());
    rc = print_template(format, "version", dot);
  } else {
    cleanup_buf sh_buf out = {0};
    render_version(client, got == 0 ? server : NULL, &out);
    shoal_print(&out);
    rc = 0;
  }
  if (got < 0) {
    fflush(stdout);
    return shoal_fail(&err);
  }
  return rc;
}

static int system_info(struct shoal *s, int argc, char **argv) {
  /* same command, its usage line names the path it was called by */
  static char help[sizeof HELP_INFO + 16];
  snprintf(help, sizeof help, "Usage:  shoal system info%s",
           HELP_INFO + strlen("Usage:  shoal info"));
  struct cli_cmd saved = info_cmd;
  info_cmd.path = "shoal system info";
  info_cmd.use = "shoal system info [OPTIONS]";
  info_cmd.help = help;
  int rc = cmd_info(s, argc, argv);
  info_cmd = saved;
  return rc;
}

static const struct shoal_subcmd system_cmds[] = {
    {"info", NULL, system_info},
    {NULL, NULL, NULL},
};

int cmd_system(struct shoal *s, int argc, char **argv) {
  return shoal_group(s, "shoal system", HELP_SYSTEM, system_cmds, argc, argv);
}
