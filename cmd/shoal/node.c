/* shoal node ls|inspect|update|rm|promote|demote, as docker's
 * cli/command/node. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/render.h"
#include "cli/template.h"
#include "core/jsonx.h"
#include "shoal.h"

/* --help texts, as the docker 28 CLI prints them */
static const char HELP_NODE_LS[] =
    "Usage:  shoal node ls [OPTIONS]\n"
    "\n"
    "List nodes in the swarm\n"
    "\n"
    "Aliases:\n"
    "  shoal node ls, shoal node list\n"
    "\n"
    "Options:\n"
    "  -f, --filter filter   Filter output based on conditions provided\n"
    "      --format string   Format output using a custom template:\n"
    "                        'table':            Print output in table format\n"
    "                        with column headers (default)\n"
    "                        'table TEMPLATE':   Print output in table format\n"
    "                        using the given Go template\n"
    "                        'json':             Print in JSON format\n"
    "                        'TEMPLATE':         Print output using the given\n"
    "                        Go template.\n"
    "                        Refer to https://docs.docker.com/go/formatting/\n"
    "                        for more information about formatting output "
    "with\n"
    "                        templates\n"
    "  -q, --quiet           Only display IDs\n";
static const char HELP_NODE_INSPECT[] =
    "Usage:  shoal node inspect [OPTIONS] self|NODE [NODE...]\n"
    "\n"
    "Display detailed information on one or more nodes\n"
    "\n"
    "Options:\n"
    "  -f, --format string   Format output using a custom template:\n"
    "                        'json':             Print in JSON format\n"
    "                        'TEMPLATE':         Print output using the given\n"
    "                        Go template.\n"
    "                        Refer to https://docs.docker.com/go/formatting/\n"
    "                        for more information about formatting output "
    "with\n"
    "                        templates\n"
    "      --pretty          Print the information in a human friendly "
    "format\n";
static const char HELP_NODE_UPDATE[] =
    "Usage:  shoal node update [OPTIONS] NODE\n"
    "\n"
    "Update a node\n"
    "\n"
    "Options:\n"
    "      --availability string   Availability of the node (\"active\",\n"
    "                              \"pause\", \"drain\")\n"
    "      --label-add list        Add or update a node label (\"key=value\")\n"
    "      --label-rm list         Remove a node label if exists\n"
    "      --role string           Role of the node (\"worker\", "
    "\"manager\")\n";
static const char HELP_NODE_RM[] =
    "Usage:  shoal node rm [OPTIONS] NODE [NODE...]\n"
    "\n"
    "Remove one or more nodes from the swarm\n"
    "\n"
    "Aliases:\n"
    "  shoal node rm, shoal node remove\n"
    "\n"
    "Options:\n"
    "  -f, --force   Force remove a node from the swarm\n";
static const char HELP_NODE_PROMOTE[] =
    "Usage:  shoal node promote NODE [NODE...]\n"
    "\n"
    "Promote one or more nodes to manager in the swarm\n";
static const char HELP_NODE_DEMOTE[] =
    "Usage:  shoal node demote NODE [NODE...]\n"
    "\n"
    "Demote one or more nodes from manager in the swarm\n";

static const char HELP_NODE[] =
    "Usage:  shoal node COMMAND\n"
    "\n"
    "Manage Swarm nodes\n"
    "\n"
    "Commands:\n"
    "  demote      Demote one or more nodes from manager in the swarm\n"
    "  inspect     Display detailed information on one or more nodes\n"
    "  ls          List nodes in the swarm\n"
    "  promote     Promote one or more nodes to manager in the swarm\n"
    "  rm          Remove one or more nodes from the swarm\n"
    "  update      Update a node\n"
    "\n"
    "Run 'shoal node COMMAND --help' for more information on a command.\n";

/* ---- node ls ------------------------------------------------------------- */

static struct cli_flag ls_flags[] = {
    {.name = "quiet", .shorthand = 'q', .type = CLI_FLAG_BOOL},
    {.name = "format", .type = CLI_FLAG_STRING},
    {.name = "filter", .shorthand = 'f', .type = CLI_FLAG_FILTER},
};
static struct cli_cmd ls_cmd = {
    "shoal node ls", "shoal node ls [OPTIONS]", HELP_NODE_LS, CLI_ARGS_NONE, 0,
    ls_flags,        ARRAY_SIZE(ls_flags)};

/* "-f role=manager -f name=a" -> ?filters={"role":{"manager":true},...} */
static char *filters_query(struct cli_flag *f) {
  if (!f->nlist)
    return xstrdup("");
  cleanup_json json_t *j = json_object();
  for (size_t i = 0; i < f->nlist; i++) {
    char *eq = strchr(f->list[i], '=');
    cleanup_free char *name = xstrndup(f->list[i], (size_t)(eq - f->list[i]));
    json_t *vals = json_object_get(j, name);
    if (!vals) {
      vals = json_object();
      json_object_set_new(j, name, vals);
    }
    json_object_set_new(vals, eq + 1, json_true());
  }
  cleanup_free char *txt = jx_dumps(j, JSON_COMPACT, NULL);
  cleanup_free char *esc = cli_escape(txt);
  return xasprintf("?filters=%s", esc);
}

static int node_ls(struct shoal *s, int argc, char **argv) {
  struct cli_cmd *cmd = &ls_cmd;
  cleanup_free char **args = NULL;
  int nargs, rc;
  if (shoal_parse(cmd, argc, argv, &args, &nargs, &rc) < 0)
    return rc;
  bool quiet = cli_flag(cmd, "quiet")->b;
  cleanup_free char *q = filters_query(cli_flag(cmd, "filter"));
  cleanup_free char *path = xasprintf("/nodes%s", q);
  sh_err err = {0};
  cli_client *c = shoal_client(s, &err);
  cleanup_json json_t *nodes = NULL, *info = NULL;
  if (!c || cli_call_json(c, "GET", path, NULL, &nodes, &err) < 0)
    return shoal_fail(&err);
  if (!json_is_array(nodes))
    return shoal_failf("error reading the daemon's node list: not an array");
  /* only a non-empty, non-quiet listing needs /info (for the "*") */
  if (json_array_size(nodes) && !quiet &&
      cli_call_json(c, "GET", "/info", NULL, &info, &err) < 0)
    return shoal_fail(&err);
  cleanup_buf sh_buf out = {0};
  if (render_node_list(nodes, info, cli_flag(cmd, "format")->s, quiet, &out,
                       &err) < 0)
    return shoal_fail(&err);
  shoal_print(&out);
  return 0;
}

/* ---- node inspect -------------------------------------------------------- */

static struct cli_flag inspect_flags[] = {
    {.name = "format", .shorthand = 'f', .type = CLI_FLAG_STRING},
    {.name = "pretty", .type = CLI_FLAG_BOOL},
};
static struct cli_cmd inspect_cmd = {
    "shoal node inspect",
    "shoal node inspect [OPTIONS] self|NODE [NODE...]",
    HELP_NODE_INSPECT,
    CLI_ARGS_MIN,
    1,
    inspect_flags,
    ARRAY_SIZE(inspect_flags)};

/* "self" is this node (from /info), as docker's node.Reference. */
static int node_ref(cli_client *c, const char *ref, char **id, sh_err *err) {
  if (strcmp(ref, "self") != 0) {
    *id = xstrdup(ref);
    return 0;
  }
  cleanup_json json_t *info = NULL;
  if (cli_call_json(c, "GET", "/info", NULL, &info, err) < 0)
    return -1;
  const char *nid = jx_str(info, "Swarm.NodeID", "");
  if (!nid[0]) {
    /* a swarm endpoint gives the precise error on a non-manager */
    cleanup_json json_t *nodes = NULL;
    if (cli_call_json(c, "GET", "/nodes", NULL, &nodes, err) < 0)
      return -1;
    return sh_error(err, CLI_ESTATUS_LOCAL, "node ID not found in /info");
  }
  *id = xstrdup(nid);
  return 0;
}

static int get_node_raw(cli_client *c, const char *ref, sh_buf *raw,
                        sh_err *err) {
  cleanup_free char *id = NULL;
  if (node_ref(c, ref, &id, err) < 0)
    return -1;
  cleanup_free char *eid = cli_escape(id);
  cleanup_free char *path = xasprintf("/nodes/%s", eid);
  return cli_call(c, "GET", path, NULL, raw, err);
}

static int node_inspect(struct shoal *s, int argc, char **argv) {
  struct cli_cmd *cmd = &inspect_cmd;
  cleanup_free char **args = NULL;
  int nargs, rc;
  if (shoal_parse(cmd, argc, argv, &args, &nargs, &rc) < 0)
    return rc;
  const char *format = cli_flag(cmd, "format")->s;
  if (cli_flag(cmd, "pretty")->b)
    format = "pretty";
  if (format && str_has_prefix(format, "pretty") && strcmp(format, "pretty"))
    return shoal_failf("cannot supply extra formatting options to the pretty "
                       "template");
  sh_err err = {0};
  bool pretty = format && strcmp(format, "pretty") == 0;
  if (format && format[0] && !pretty && strcmp(format, "json") != 0) {
    struct cli_tmpl *t = NULL;
    if (cli_tmpl_parse(format, &t, &err) < 0) /* before any API call */
      return shoal_failf("template parsing error: %s", err.msg);
    cli_tmpl_free(t);
  }
  cli_client *c = shoal_client(s, &err);
  if (!c)
    return shoal_fail(&err);
  if (pretty) {
    /* stops at the first node that fails, like docker */
    for (int i = 0; i < nargs; i++) {
      cleanup_buf sh_buf raw = {0}, out = {0};
      json_error_t je;
      if (get_node_raw(c, args[i], &raw, &err) < 0)
        return shoal_fail(&err);
      cleanup_json json_t *node =
          json_loadb(raw.data ? raw.data : "", raw.len, 0, &je);
      if (!json_is_object(node))
        return shoal_failf("error reading the daemon's answer for node %s: %s",
                           args[i], node ? "not an object" : je.text);
      render_node_pretty(node, &out);
      shoal_print(&out);
    }
    return 0;
  }
  /* every node is tried; what was found is printed, then the errors */
  sh_buf *raws = xcalloc((size_t)nargs, sizeof *raws);
  const char **ptrs = xcalloc((size_t)nargs, sizeof *ptrs);
  size_t *lens = xcalloc((size_t)nargs, sizeof *lens);
  size_t n = 0;
  sh_buf errors = {0};
  for (int i = 0; i < nargs; i++) {
    sh_err e = {0};
    if (get_node_raw(c, args[i], &raws[n], &e) < 0) {
      buf_printf(&errors, "%s%s", errors.len ? "\n" : "", e.msg);
      continue;
    }
    ptrs[n] = raws[n].data ? raws[n].data : "";
    lens[n] = raws[n].len;
    n++;
  }
  return shoal_inspect_output(raws, nargs, ptrs, lens, n, format, &errors);
}

/* ---- node update / promote / demote -------------------------------------- */

/* Changes a node's spec; returns 1 to skip the node without an error. */
typedef int (*merge_fn)(json_t *node, json_t *spec, struct cli_cmd *cmd);

/* docker's updateNodes: GET the node, change its spec, POST it back with
 * the version read; on success prints pre, the reference given, post. */
static int update_nodes(struct shoal *s, char **refs, int n, merge_fn merge,
                        struct cli_cmd *cmd, const char *pre,
                        const char *post) {
  sh_err err = {0};
  cli_client *c = shoal_client(s, &err);
  if (!c)
    return shoal_fail(&err);
  for (int i = 0; i < n; i++) {
    cleanup_free char *eref = cli_escape(refs[i]);
    cleanup_free char *path = xasprintf("/nodes/%s", eref);
    cleanup_json json_t *node = NULL;
    if (cli_call_json(c, "GET", path, NULL, &node, &err) < 0)
      return shoal_fail(&err);
    if (!json_is_object(node))
      return shoal_failf("error reading the daemon's answer for node %s",
                         refs[i]);
    json_t *spec = json_object_get(node, "Spec");
    if (!json_is_object(spec)) {
      spec = json_object();
      json_object_set_new(node, "Spec", spec);
    }
    int m = merge(node, spec, cmd);
    if (m < 0)
      return 1;
    if (m > 0)
      continue;
    cleanup_free char *eid = cli_escape(jx_str(node, "ID", refs[i]));
    cleanup_free char *upath =
        xasprintf("/nodes/%s/update?version=%lld", eid,
                  (long long)jx_int(node, "Version.Index", 0));
    if (cli_call(c, "POST", upath, spec, NULL, &err) < 0)
      return shoal_fail(&err);
    printf("%s%s%s\n", pre, refs[i], post);
  }
  return 0;
}

static int cmp_cstr(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Go marshals a map with sorted keys; send labels the same way. */
static void sort_keys(json_t *obj) {
  size_t n = json_object_size(obj), k = 0;
  if (n < 2)
    return;
  const char **keys = xcalloc(n, sizeof *keys);
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) keys[k++] = key;
  qsort(keys, n, sizeof *keys, cmp_cstr);
  json_t *copy = json_object();
  for (k = 0; k < n; k++)
    json_object_set(copy, keys[k], json_object_get(obj, keys[k]));
  free(keys);
  json_object_clear(obj);
  json_object_update(obj, copy);
  json_decref(copy);
}

static int merge_update(json_t *node, json_t *spec, struct cli_cmd *cmd) {
  struct cli_flag *f;
  if ((f = cli_flag(cmd, "role"))->changed)
    json_object_set_new(spec, "Role", json_string(f->s));
  if ((f = cli_flag(cmd, "availability"))->changed)
    json_object_set_new(spec, "Availability", json_string(f->s));
  json_t *labels = json_object_get(spec, "Labels");
  if (!json_is_object(labels)) {
    labels = json_object();
    json_object_set_new(spec, "Labels", labels);
  }
  f = cli_flag(cmd, "label-add");
  for (size_t i = 0; i < f->nlist; i++) {
    const char *eq = strchr(f->list[i], '=');
    cleanup_free char *k = eq ? xstrndup(f->list[i], (size_t)(eq - f->list[i]))
                              : xstrdup(f->list[i]);
    json_object_set_new(labels, k, json_string(eq ? eq + 1 : ""));
  }
  f = cli_flag(cmd, "label-rm");
  for (size_t i = 0; i < f->nlist; i++) {
    if (!json_object_get(labels, f->list[i])) {
      shoal_failf("key %s doesn't exist in node's labels", f->list[i]);
      return -1;
    }
    json_object_del(labels, f->list[i]);
  }
  sort_keys(labels);
  return 0;
}

static struct cli_flag update_flags[] = {
    {.name = "role", .type = CLI_FLAG_STRING},
    {.name = "availability", .type = CLI_FLAG_STRING},
    {.name = "label-add", .type = CLI_FLAG_LIST},
    {.name = "label-rm", .type = CLI_FLAG_LIST},
};
static struct cli_cmd update_cmd = {"shoal node update",
                                    "shoal node update [OPTIONS] NODE",
                                    HELP_NODE_UPDATE,
                                    CLI_ARGS_EXACT,
                                    1,
                                    update_flags,
                                    ARRAY_SIZE(update_flags)};

static int node_update(struct shoal *s, int argc, char **argv) {
  struct cli_cmd *cmd = &update_cmd;
  cleanup_free char **args = NULL;
  int nargs, rc;
  if (shoal_parse(cmd, argc, argv, &args, &nargs, &rc) < 0)
    return rc;
  return update_nodes(s, args, 1, merge_update, cmd, "", "");
}

static int set_role(json_t *node, json_t *spec, const char *role) {
  if (strcmp(jx_str(spec, "Role", ""), role) == 0) {
    printf("Node %s is already a %s.\n", jx_str(node, "ID", ""), role);
    return 1;
  }
  json_object_set_new(spec, "Role", json_string(role));
  if (json_is_object(json_object_get(spec, "Labels")))
    sort_keys(json_object_get(spec, "Labels"));
  return 0;
}

static int merge_promote(json_t *node, json_t *spec, struct cli_cmd *cmd) {
  return set_role(node, spec, "manager");
}

static int merge_demote(json_t *node, json_t *spec, struct cli_cmd *cmd) {
  return set_role(node, spec, "worker");
}

static struct cli_cmd promote_cmd = {"shoal node promote",
                                     "shoal node promote NODE [NODE...]",
                                     HELP_NODE_PROMOTE,
                                     CLI_ARGS_MIN,
                                     1,
                                     NULL,
                                     0};
static struct cli_cmd demote_cmd = {"shoal node demote",
                                    "shoal node demote NODE [NODE...]",
                                    HELP_NODE_DEMOTE,
                                    CLI_ARGS_MIN,
                                    1,
                                    NULL,
                                    0};

static int node_promote(struct shoal *s, int argc, char **argv) {
  cleanup_free char **args = NULL;
  int nargs, rc;
  if (shoal_parse(&promote_cmd, argc, argv, &args, &nargs, &rc) < 0)
    return rc;
  return update_nodes(s, args, nargs, merge_promote, &promote_cmd, "Node ",
                      " promoted to a manager in the swarm.");
}

static int node_demote(struct shoal *s, int argc, char **argv) {
  cleanup_free char **args = NULL;
  int nargs, rc;
  if (shoal_parse(&demote_cmd, argc, argv, &args, &nargs, &rc) < 0)
    return rc;
  return update_nodes(s, args, nargs, merge_demote, &demote_cmd, "Manager ",
                      " demoted in the swarm.");
}

/* ---- node rm ------------------------------------------------------------- */

static struct cli_flag rm_flags[] = {
    {.name = "force", .shorthand = 'f', .type = CLI_FLAG_BOOL},
};
static struct cli_cmd rm_cmd = {"shoal node rm",
                                "shoal node rm [OPTIONS] NODE [NODE...]",
                                HELP_NODE_RM,
                                CLI_ARGS_MIN,
                                1,
                                rm_flags,
                                ARRAY_SIZE(rm_flags)};

static int node_rm(struct shoal *s, int argc, char **argv) {
  struct cli_cmd *cmd = &rm_cmd;
  cleanup_free char **args = NULL;
  int nargs, rc;
  if (shoal_parse(cmd, argc, argv, &args, &nargs, &rc) < 0)
    return rc;
  sh_err err = {0};
  cli_client *c = shoal_client(s, &err);
  if (!c)
    return shoal_fail(&err);
  bool force = cli_flag(cmd, "force")->b;
  cleanup_buf sh_buf errors = {0};
  for (int i = 0; i < nargs; i++) {
    cleanup_free char *eid = cli_escape(args[i]);
    cleanup_free char *path =
        xasprintf("/nodes/%s%s", eid, force ? "?force=1" : "");
    if (cli_call(c, "DELETE", path, NULL, NULL, &err) < 0) {
      buf_printf(&errors, "%s%s", errors.len ? "\n" : "", err.msg);
      continue;
    }
    printf("%s\n", args[i]);
  }
  if (errors.len) {
    fflush(stdout);
    return shoal_failf("%s", errors.data);
  }
  return 0;
}

static const struct shoal_subcmd node_cmds[] = {
    {"demote", NULL, node_demote},
    {"inspect", NULL, node_inspect},
    {"ls", "list", node_ls},
    {"promote", NULL, node_promote},
    {"rm", "remove", node_rm},
    {"update", NULL, node_update},
    {NULL, NULL, NULL},
};

int cmd_node(struct shoal *s, int argc, char **argv) {
  return shoal_group(s, "shoal node", HELP_NODE, node_cmds, argc, argv);
}
