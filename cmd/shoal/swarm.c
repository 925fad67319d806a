/* shoal swarm init|join|join-token|leave|update|unlock-key|unlock: the
 * same Engine API calls, messages and exit codes as docker's
 * cli/command/swarm. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli/render.h"
#include "core/jsonx.h"
#include "shoal.h"

/* --help texts, as the docker 28 CLI prints them */
static const char HELP_INIT[] =
    "Usage:  shoal swarm init [OPTIONS]\n"
    "\n"
    "Initialize a swarm\n"
    "\n"
    "Options:\n"
    "      --advertise-addr string                  Advertised address\n"
    "                                               (format:\n"
    "                                               "
    "\"<ip|interface>[:port]\")\n"
    "      --autolock                               Enable manager "
    "autolocking\n"
    "                                               (requiring an unlock key\n"
    "                                               to start a stopped "
    "manager)\n"
    "      --availability string                    Availability of the node\n"
    "                                               (\"active\", \"pause\",\n"
    "                                               \"drain\") (default "
    "\"active\")\n"
    "      --cert-expiry duration                   Validity period for node\n"
    "                                               certificates\n"
    "                                               (ns|us|ms|s|m|h) (default\n"
    "                                               2160h0m0s)\n"
    "      --data-path-addr string                  Address or interface to\n"
    "                                               use for data path traffic\n"
    "                                               (format: "
    "\"<ip|interface>\")\n"
    "      --data-path-port uint32                  Port number to use for\n"
    "                                               data path traffic (1024 -\n"
    "                                               49151). If no value is "
    "set\n"
    "                                               or is set to 0, the\n"
    "                                               default port (4789) is "
    "used.\n"
    "      --default-addr-pool ipNetSlice           default address pool in\n"
    "                                               CIDR format (default [])\n"
    "      --default-addr-pool-mask-length uint32   default address pool\n"
    "                                               subnet mask length "
    "(default 24)\n"
    "      --dispatcher-heartbeat duration          Dispatcher heartbeat\n"
    "                                               period (ns|us|ms|s|m|h)\n"
    "                                               (default 5s)\n"
    "      --external-ca external-ca                Specifications of one or\n"
    "                                               more certificate signing\n"
    "                                               endpoints\n"
    "      --force-new-cluster                      Force create a new "
    "cluster\n"
    "                                               from current state\n"
    "      --listen-addr node-addr                  Listen address (format:\n"
    "                                               "
    "\"<ip|interface>[:port]\")\n"
    "                                               (default 0.0.0.0:2377)\n"
    "      --max-snapshots uint                     Number of additional Raft\n"
    "                                               snapshots to retain\n"
    "      --snapshot-interval uint                 Number of log entries\n"
    "                                               between Raft snapshots\n"
    "                                               (default 10000)\n"
    "      --task-history-limit int                 Task history retention\n"
    "                                               limit (default 5)\n";
static const char HELP_JOIN[] =
    "Usage:  shoal swarm join [OPTIONS] HOST:PORT\n"
    "\n"
    "Join a swarm as a node and/or manager\n"
    "\n"
    "Options:\n"
    "      --advertise-addr string   Advertised address (format:\n"
    "                                \"<ip|interface>[:port]\")\n"
    "      --availability string     Availability of the node (\"active\",\n"
    "                                \"pause\", \"drain\") (default "
    "\"active\")\n"
    "      --data-path-addr string   Address or interface to use for data "
    "path\n"
    "                                traffic (format: \"<ip|interface>\")\n"
    "      --listen-addr node-addr   Listen address (format:\n"
    "                                \"<ip|interface>[:port]\") (default\n"
    "                                0.0.0.0:2377)\n"
    "      --token string            Token for entry into the swarm\n";
static const char HELP_JOIN_TOKEN[] =
    "Usage:  shoal swarm join-token [OPTIONS] (worker|manager)\n"
    "\n"
    "Manage join tokens\n"
    "\n"
    "Options:\n"
    "  -q, --quiet    Only display token\n"
    "      --rotate   Rotate join token\n";
static const char HELP_LEAVE[] =
    "Usage:  shoal swarm leave [OPTIONS]\n"
    "\n"
    "Leave the swarm\n"
    "\n"
    "Options:\n"
    "  -f, --force   Force this node to leave the swarm, ignoring warnings\n";
static const char HELP_UPDATE[] =
    "Usage:  shoal swarm update [OPTIONS]\n"
    "\n"
    "Update the swarm\n"
    "\n"
    "Options:\n"
    "      --autolock                        Change manager autolocking\n"
    "                                        setting (true|false)\n"
    "      --cert-expiry duration            Validity period for node\n"
    "                                        certificates (ns|us|ms|s|m|h)\n"
    "                                        (default 2160h0m0s)\n"
    "      --dispatcher-heartbeat duration   Dispatcher heartbeat period\n"
    "                                        (ns|us|ms|s|m|h) (default 5s)\n"
    "      --external-ca external-ca         Specifications of one or more\n"
    "                                        certificate signing endpoints\n"
    "      --max-snapshots uint              Number of additional Raft\n"
    "                                        snapshots to retain\n"
    "      --snapshot-interval uint          Number of log entries between\n"
    "                                        Raft snapshots (default 10000)\n"
    "      --task-history-limit int          Task history retention limit\n"
    "                                        (default 5)\n";
static const char HELP_UNLOCK_KEY[] =
    "Usage:  shoal swarm unlock-key [OPTIONS]\n"
    "\n"
    "Manage the unlock key\n"
    "\n"
    "Options:\n"
    "  -q, --quiet    Only display token\n"
    "      --rotate   Rotate unlock key\n";
static const char HELP_UNLOCK[] = "Usage:  shoal swarm unlock\n"
                                  "\n"
                                  "Unlock swarm\n";

static const char HELP_SWARM[] =
    "Usage:  shoal swarm COMMAND\n"
    "\n"
    "Manage Swarm\n"
    "\n"
    "Commands:\n"
    "  init        Initialize a swarm\n"
    "  join        Join a swarm as a node and/or manager\n"
    "  join-token  Manage join tokens\n"
    "  leave       Leave the swarm\n"
    "  unlock      Unlock swarm\n"
    "  unlock-key  Manage the unlock key\n"
    "  update      Update the swarm\n"
    "\n"
    "Run 'shoal swarm COMMAND --help' for more information on a command.\n";

/* ---- shared pieces ------------------------------------------------------ */

#define SWARM_FLAGS                                                            \
  {.name = "task-history-limit", .type = CLI_FLAG_INT64, .dflt = "5"},         \
      {.name = "dispatcher-heartbeat",                                         \
       .type = CLI_FLAG_DURATION,                                              \
       .dflt = "5s"},                                                          \
      {.name = "max-snapshots", .type = CLI_FLAG_UINT64},                      \
      {.name = "snapshot-interval", .type = CLI_FLAG_UINT64, .dflt = "10000"}, \
      {.name = "cert-expiry", .type = CLI_FLAG_DURATION, .dflt = "2160h"},     \
      {.name = "external-ca", .type = CLI_FLAG_EXTERNAL_CA}, {                 \
    .name = "autolock", .type = CLI_FLAG_BOOL                                  \
  }

/* docker's mergeSwarmSpec: only flags given on the command line change the
 * spec. trust_root fills external CAs that name no CA certificate. */
static void merge_swarm_spec(struct cli_cmd *cmd, json_t *spec,
                             const char *trust_root) {
  struct cli_flag *f;
  if ((f = cli_flag(cmd, "task-history-limit"))->changed)
    jx_set(spec, "Orchestration.TaskHistoryRetentionLimit", json_integer(f->i));
  if ((f = cli_flag(cmd, "dispatcher-heartbeat"))->changed)
    jx_set(spec, "Dispatcher.HeartbeatPeriod", json_integer(f->i));
  if ((f = cli_flag(cmd, "max-snapshots"))->changed)
    jx_set(spec, "Raft.KeepOldSnapshots", json_integer((json_int_t)f->u));
  if ((f = cli_flag(cmd, "snapshot-interval"))->changed)
    jx_set(spec, "Raft.SnapshotInterval", json_integer((json_int_t)f->u));
  if ((f = cli_flag(cmd, "autolock"))->changed)
    jx_set(spec, "EncryptionConfig.AutoLockManagers", json_boolean(f->b));
  if ((f = cli_flag(cmd, "cert-expiry"))->changed)
    jx_set(spec, "CAConfig.NodeCertExpiry", json_integer(f->i));
  if ((f = cli_flag(cmd, "external-ca"))->changed) {
    json_t *cas = json_array();
    for (size_t i = 0; i < f->nlist; i++) {
      json_t *ca = NULL;
      char msg[256];
      if (cli_parse_external_ca(f->list[i], &ca, msg, sizeof msg) < 0)
        continue; /* validated when the flag was parsed */
      if (trust_root && !json_object_get(ca, "CACert"))
        json_object_set_new(ca, "CACert", json_string(trust_root));
      json_array_append_new(cas, ca);
    }
    jx_set(spec, "CAConfig.ExternalCAs", cas);
  }
}

static int check_availability(struct cli_flag *f, json_t *req,
                              const char *key) {
  if (!f->changed)
    return 0;
  cleanup_free char *a = xstrdup(f->s);
  for (char *c = a; *c; c++)
    *c = (char)tolower((unsigned char)*c);
  if (strcmp(a, "active") && strcmp(a, "pause") && strcmp(a, "drain"))
    return shoal_failf("invalid availability \"%s\", only active, pause and "
                       "drain are supported",
                       f->s);
  json_object_set_new(req, key, json_string(a));
  return 0;
}

/* GET /swarm; an answer that is not an object is an error. */
static int get_swarm(cli_client *c, json_t **sw, sh_err *err) {
  if (cli_call_json(c, "GET", "/swarm", NULL, sw, err) < 0)
    return -1;
  if (!json_is_object(*sw)) {
    json_decref(*sw);
    *sw = NULL;
    return sh_error(err, CLI_ESTATUS_LOCAL,
                    "error reading the daemon's answer to GET /swarm: not an "
                    "object");
  }
  return 0;
}

/* GET /swarm/unlockkey -> the key ("" when none). */
static int fetch_unlock_key(cli_client *c, char **key, sh_err *err) {
  cleanup_json json_t *r = NULL;
  if (cli_call_json(c, "GET", "/swarm/unlockkey", NULL, &r, err) < 0)
    return sh_err_wrap(err, "could not fetch unlock key");
  *key = xstrdup(jx_str(r, "UnlockKey", ""));
  return 0;
}

/* docker's printJoinCommand: needs this node's manager address. */
static int print_join_command(cli_client *c, const char *node_id, bool worker,
                              bool manager, sh_err *err) {
  cleanup_free char *eid = cli_escape(node_id);
  cleanup_free char *path = xasprintf("/nodes/%s", eid);
  cleanup_json json_t *node = NULL, *sw = NULL;
  if (cli_call_json(c, "GET", path, NULL, &node, err) < 0 ||
      get_swarm(c, &sw, err) < 0)
    return -1;
  if (!json_is_object(jx_get(node, "ManagerStatus")))
    return 0;
  const char *addr = jx_str(node, "ManagerStatus.Addr", "");
  cleanup_buf sh_buf out = {0};
  if (worker)
    render_join_command(PROG, jx_str(sw, "JoinTokens.Worker", ""), addr, false,
                        &out);
  if (manager)
    render_join_command(PROG, jx_str(sw, "JoinTokens.Manager", ""), addr, true,
                        &out);
  shoal_print(&out);
  return 0;
}

static int swarm_update_call(cli_client *c, const json_t *sw,
                             const json_t *spec, bool rot_worker,
                             bool rot_manager, bool rot_unlock, sh_err *err) {
  /* parameters in Go's url.Values order (sorted) */
  cleanup_free char *path = xasprintf(
      "/swarm/update?rotateManagerToken=%s&rotateManagerUnlockKey=%s"
      "&rotateWorkerToken=%s&version=%lld",
      rot_manager ? "true" : "false", rot_unlock ? "true" : "false",
      rot_worker ? "true" : "false", (long long)jx_int(sw, "Version.Index", 0));
  return cli_call(c, "POST", path, spec, NULL, err);
}

/* ---- swarm init ---------------------------------------------------------- */

static struct cli_flag init_flags[] = {
    {.name = "listen-addr", .type = CLI_FLAG_NODE_ADDR, .dflt = "0.0.0.0:2377"},
    {.name = "advertise-addr", .type = CLI_FLAG_STRING},
    {.name = "data-path-addr", .type = CLI_FLAG_STRING},
    {.name = "data-path-port", .type = CLI_FLAG_UINT32},
    {.name = "force-new-cluster", .type = CLI_FLAG_BOOL},
    {.name = "availability", .type = CLI_FLAG_STRING, .dflt = "active"},
    {.name = "default-addr-pool", .type = CLI_FLAG_IPNET_SLICE},
    {.name = "default-addr-pool-mask-length",
     .type = CLI_FLAG_UINT32,
     .dflt = "24"},
    SWARM_FLAGS,
};
static struct cli_cmd init_cmd = {"shoal swarm init",
                                  "shoal swarm init [OPTIONS]",
                                  HELP_INIT,
                                  CLI_ARGS_NONE,
                                  0,
                                  init_flags,
                                  ARRAY_SIZE(init_flags)};

/* The zero Spec the docker CLI sends (Go marshals every struct), so shoald
 * sees the same shape from both CLIs. */
static json_t *zero_spec(void) {
  return json_pack("{s:n, s:{}, s:{s:i, s:i}, s:{}, s:{}, s:{}, s:{s:b}}",
                   "Labels", "Orchestration", "Raft", "ElectionTick", 0,
                   "HeartbeatTick", 0, "Dispatcher", "CAConfig", "TaskDefaults",
                   "EncryptionConfig", "AutoLockManagers", 0);
}

static int swarm_init(struct shoal *s, int argc, char **argv) {
  struct cli_cmd *cmd = &init_cmd;
  cleanup_free char **args = NULL;
  int nargs, rc;
  if (shoal_parse(cmd, argc, argv, &args, &nargs, &rc) < 0)
    return rc;
  cleanup_json json_t *spec = zero_spec();
  merge_swarm_spec(cmd, spec, NULL);
  json_t *pools = json_array();
  struct cli_flag *pf = cli_flag(cmd, "default-addr-pool");
  for (size_t i = 0; i < pf->nlist; i++)
    json_array_append_new(pools, json_string(pf->list[i]));
  bool autolock = cli_flag(cmd, "autolock")->b;
  /* field order as Go's swarm.InitRequest marshals it */
  cleanup_json json_t *req = json_pack(
      "{s:s, s:s, s:s, s:i, s:b, s:O, s:b, s:s, s:o, s:i}", "ListenAddr",
      cli_flag(cmd, "listen-addr")->s, "AdvertiseAddr",
      cli_flag(cmd, "advertise-addr")->s ? cli_flag(cmd, "advertise-addr")->s
                                         : "",
      "DataPathAddr",
      cli_flag(cmd, "data-path-addr")->s ? cli_flag(cmd, "data-path-addr")->s
                                         : "",
      "DataPathPort", (json_int_t)cli_flag(cmd, "data-path-port")->u,
      "ForceNewCluster", cli_flag(cmd, "force-new-cluster")->b, "Spec", spec,
      "AutoLockManagers", autolock, "Availability", "", "DefaultAddrPool",
      pools, "SubnetSize",
      (json_int_t)cli_flag(cmd, "default-addr-pool-mask-length")->u);
  if (check_availability(cli_flag(cmd, "availability"), req, "Availability"))
    return 1;
  sh_err err = {0};
  cli_client *c = shoal_client(s, &err);
  cleanup_json json_t *resp = NULL;
  if (!c || cli_call_json(c, "POST", "/swarm/init", req, &resp, &err) < 0) {
    if (strstr(err.msg, "could not choose an IP address to advertise") ||
        strstr(err.msg, "could not find the system's IP address"))
      return shoal_failf("%s - specify one with --advertise-addr", err.msg);
    return shoal_fail(&err);
  }
  const char *node_id = json_is_string(resp) ? json_string_value(resp) : "";
  printf("Swarm initialized: current node (%s) is now a manager.\n\n", node_id);
  if (print_join_command(c, node_id, true, false, &err) < 0)
    return shoal_fail(&err);
  printf("To add a manager to this swarm, run '%s swarm join-token manager' "
         "and follow the instructions.\n",
         PROG);
  if (autolock) {
    cleanup_free char *key = NULL;
    if (fetch_unlock_key(c, &key, &err) < 0)
      return shoal_fail(&err);
    cleanup_buf sh_buf out = {0};
    render_unlock_command(PROG, key, &out);
    shoal_print(&out);
  }
  return 0;
}

/* ---- swarm join ---------------------------------------------------------- */

static struct cli_flag join_flags[] = {
    {.name = "listen-addr", .type = CLI_FLAG_NODE_ADDR, .dflt = "0.0.0.0:2377"},
    {.name = "advertise-addr", .type = CLI_FLAG_STRING},
    {.name = "data-path-addr", .type = CLI_FLAG_STRING},
    {.name = "token", .type = CLI_FLAG_STRING},
    {.name = "availability", .type = CLI_FLAG_STRING, .dflt = "active"},
};
static struct cli_cmd join_cmd = {"shoal swarm join",
                                  "shoal swarm join [OPTIONS] HOST:PORT",
                                  HELP_JOIN,
                                  CLI_ARGS_EXACT,
                                  1,
                                  join_flags,
                                  ARRAY_SIZE(join_flags)};

static const char *str_or_empty(const char *s) {
  return s ? s : "";
}

static int swarm_join(struct shoal *s, int argc, char **argv) {
  struct cli_cmd *cmd = &join_cmd;
  cleanup_free char **args = NULL;
  int nargs, rc;
  if (shoal_parse(cmd, argc, argv, &args, &nargs, &rc) < 0)
    return rc;
  cleanup_json json_t *req = json_pack(
      "{s:s, s:s, s:s, s:[s], s:s, s:s}", "ListenAddr",
      cli_flag(cmd, "listen-addr")->s, "AdvertiseAddr",
      str_or_empty(cli_flag(cmd, "advertise-addr")->s), "DataPathAddr",
      str_or_empty(cli_flag(cmd, "data-path-addr")->s), "RemoteAddrs", args[0],
      "JoinToken", str_or_empty(cli_flag(cmd, "token")->s), "Availability", "");
  if (check_availability(cli_flag(cmd, "availability"), req, "Availability"))
    return 1;
  sh_err err = {0};
  cli_client *c = shoal_client(s, &err);
  cleanup_json json_t *info = NULL;
  if (!c || cli_call(c, "POST", "/swarm/join", req, NULL, &err) < 0 ||
      cli_call_json(c, "GET", "/info", NULL, &info, &err) < 0)
    return shoal_fail(&err);
  printf("This node joined a swarm as a %s.\n",
         jx_bool(info, "Swarm.ControlAvailable", false) ? "manager" : "worker");
  return 0;
}

/* ---- swarm join-token ---------------------------------------------------- */

static struct cli_flag jt_flags[] = {
    {.name = "rotate", .type = CLI_FLAG_BOOL},
    {.name = "quiet", .shorthand = 'q', .type = CLI_FLAG_BOOL},
};
static struct cli_cmd jt_cmd = {
    "shoal swarm join-token",
    "shoal swarm join-token [OPTIONS] (worker|manager)",
    HELP_JOIN_TOKEN,
    CLI_ARGS_EXACT,
    1,
    jt_flags,
    ARRAY_SIZE(jt_flags)};

static int swarm_join_token(struct shoal *s, int argc, char **argv) {
  struct cli_cmd *cmd = &jt_cmd;
  cleanup_free char **args = NULL;
  int nargs, rc;
  if (shoal_parse(cmd, argc, argv, &args, &nargs, &rc) < 0)
    return rc;
  const char *role = args[0];
  bool worker = strcmp(role, "worker") == 0;
  bool manager = strcmp(role, "manager") == 0;
  if (!worker && !manager)
    return shoal_failf("unknown role %s", role);
  bool quiet = cli_flag(cmd, "quiet")->b;
  sh_err err = {0};
  cli_client *c = shoal_client(s, &err);
  if (!c)
    return shoal_fail(&err);
  if (cli_flag(cmd, "rotate")->b) {
    cleanup_json json_t *sw = NULL;
    if (get_swarm(c, &sw, &err) < 0 ||
        swarm_update_call(c, sw, jx_get(sw, "Spec"), worker, manager, false,
                          &err) < 0)
      return shoal_fail(&err);
    if (!quiet)
      printf("Successfully rotated %s join token.\n\n", role);
  }
  cleanup_json json_t *sw = NULL;
  if (get_swarm(c, &sw, &err) < 0)
    return shoal_fail(&err);
  if (quiet) {
    printf("%s\n",
           jx_str(sw, worker ? "JoinTokens.Worker" : "JoinTokens.Manager", ""));
    return 0;
  }
  cleanup_json json_t *info = NULL;
  if (cli_call_json(c, "GET", "/info", NULL, &info, &err) < 0 ||
      print_join_command(c, jx_str(info, "Swarm.NodeID", ""), worker, manager,
                         &err) < 0)
    return shoal_fail(&err);
  return 0;
}

/* ---- swarm leave --------------------------------------------------------- */

static struct cli_flag leave_flags[] = {
    {.name = "force", .shorthand = 'f', .type = CLI_FLAG_BOOL},
};
static struct cli_cmd leave_cmd = {"shoal swarm leave",
                                   "shoal swarm leave [OPTIONS]",
                                   HELP_LEAVE,
                                   CLI_ARGS_NONE,
                                   0,
                                   leave_flags,
                                   ARRAY_SIZE(leave_flags)};

static int swarm_leave(struct shoal *s, int argc, char **argv) {
  struct cli_cmd *cmd = &leave_cmd;
  cleanup_free char **args = NULL;
  int nargs, rc;
  if (shoal_parse(cmd, argc, argv, &args, &nargs, &rc) < 0)
    return rc;
  sh_err err = {0};
  cli_client *c = shoal_client(s, &err);
  const char *path =
      cli_flag(cmd, "force")->b ? "/swarm/leave?force=1" : "/swarm/leave";
  if (!c || cli_call(c, "POST", path, NULL, NULL, &err) < 0)
    return shoal_fail(&err);
  printf("Node left the swarm.\n");
  return 0;
}

/* ---- swarm update -------------------------------------------------------- */

static struct cli_flag update_flags[] = {SWARM_FLAGS};
static struct cli_cmd update_cmd = {"shoal swarm update",
                                    "shoal swarm update [OPTIONS]",
                                    HELP_UPDATE,
                                    CLI_ARGS_NONE,
                                    0,
                                    update_flags,
                                    ARRAY_SIZE(update_flags)};

static int swarm_update(struct shoal *s, int argc, char **argv) {
  struct cli_cmd *cmd = &update_cmd;
  cleanup_free char **args = NULL;
  int nargs, rc;
  if (shoal_parse(cmd, argc, argv, &args, &nargs, &rc) < 0)
    return rc;
  bool any = false;
  for (size_t i = 0; i < cmd->nflags; i++)
    any = any || cmd->flags[i].changed;
  if (!any) { /* docker shows the help when no flag is given */
    fputs(cmd->help, stdout);
    return 0;
  }
  sh_err err = {0};
  cli_client *c = shoal_client(s, &err);
  cleanup_json json_t *sw = NULL;
  if (!c || get_swarm(c, &sw, &err) < 0)
    return shoal_fail(&err);
  json_t *spec = jx_get(sw, "Spec");
  if (!json_is_object(spec)) {
    spec = json_object();
    json_object_set_new(sw, "Spec", spec);
  }
  bool prev = jx_bool(spec, "EncryptionConfig.AutoLockManagers", false);
  const char *root = jx_str(sw, "TLSInfo.TrustRoot", NULL);
  merge_swarm_spec(cmd, spec, root);
  bool cur = jx_bool(spec, "EncryptionConfig.AutoLockManagers", false);
  if (swarm_update_call(c, sw, spec, false, false, false, &err) < 0)
    return shoal_fail(&err);
  printf("Swarm updated.\n");
  if (cur && !prev) {
    cleanup_free char *key = NULL;
    if (fetch_unlock_key(c, &key, &err) < 0)
      return shoal_fail(&err);
    cleanup_buf sh_buf out = {0};
    render_unlock_command(PROG, key, &out);
    shoal_print(&out);
  }
  return 0;
}

/* ---- swarm unlock-key / unlock ------------------------------------------- */

static struct cli_flag uk_flags[] = {
    {.name = "rotate", .type = CLI_FLAG_BOOL},
    {.name = "quiet", .shorthand = 'q', .type = CLI_FLAG_BOOL},
};
static struct cli_cmd uk_cmd = {"shoal swarm unlock-key",
                                "shoal swarm unlock-key [OPTIONS]",
                                HELP_UNLOCK_KEY,
                                CLI_ARGS_NONE,
                                0,
                                uk_flags,
                                ARRAY_SIZE(uk_flags)};

static int swarm_unlock_key(struct shoal *s, int argc, char **argv) {
  struct cli_cmd *cmd = &uk_cmd;
  cleanup_free char **args = NULL;
  int nargs, rc;
  if (shoal_parse(cmd, argc, argv, &args, &nargs, &rc) < 0)
    return rc;
  bool quiet = cli_flag(cmd, "quiet")->b;
  sh_err err = {0};
  cli_client *c = shoal_client(s, &err);
  if (!c)
    return shoal_fail(&err);
  if (cli_flag(cmd, "rotate")->b) {
    cleanup_json json_t *sw = NULL;
    if (get_swarm(c, &sw, &err) < 0)
      return shoal_fail(&err);
    if (!jx_bool(sw, "Spec.EncryptionConfig.AutoLockManagers", false))
      return shoal_failf("cannot rotate because autolock is not turned on");
    if (swarm_update_call(c, sw, jx_get(sw, "Spec"), false, false, true, &err) <
        0)
      return shoal_fail(&err);
    if (!quiet)
      printf("Successfully rotated manager unlock key.\n");
  }
  cleanup_free char *key = NULL;
  if (fetch_unlock_key(c, &key, &err) < 0)
    return shoal_fail(&err);
  if (!key[0])
    return shoal_failf("no unlock key is set");
  if (quiet) {
    printf("%s\n", key);
    return 0;
  }
  cleanup_buf sh_buf out = {0};
  render_unlock_command(PROG, key, &out);
  shoal_print(&out);
  return 0;
}

static struct cli_cmd unlock_cmd = {"shoal swarm unlock",
                                    "shoal swarm unlock",
                                    HELP_UNLOCK,
                                    CLI_ARGS_NONE,
                                    0,
                                    NULL,
                                    0};

static int swarm_unlock(struct shoal *s, int argc, char **argv) {
  struct cli_cmd *cmd = &unlock_cmd;
  cleanup_free char **args = NULL;
  int nargs, rc;
  if (shoal_parse(cmd, argc, argv, &args, &nargs, &rc) < 0)
    return rc;
  sh_err err = {0};
  cli_client *c = shoal_client(s, &err);
  cleanup_json json_t *info = NULL;
  if (!c || cli_call_json(c, "GET", "/info", NULL, &info, &err) < 0)
    return shoal_fail(&err);
  const char *state = jx_str(info, "Swarm.LocalNodeState", "");
  if (strcmp(state, "inactive") == 0)
    return shoal_failf("Error: This node is not part of a swarm");
  if (strcmp(state, "locked") != 0)
    return shoal_failf("Error: swarm is not locked");
  char key[512] = "";
  bool tty = isatty(STDIN_FILENO);
  struct termios old, quiet;
  if (tty) {
    printf("Enter unlock key: ");
    fflush(stdout);
    tcgetattr(STDIN_FILENO, &old);
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  }
  if (!fgets(key, sizeof key, stdin))
    key[0] = '\0';
  if (tty) {
    tcsetattr(STDIN_FILENO, TCSANOW, &old);
    printf("\n");
  }
  size_t len = strlen(key);
  while (len && isspace((unsigned char)key[len - 1]))
    key[--len] = '\0';
  const char *k = key;
  while (isspace((unsigned char)*k))
    k++;
  cleanup_json json_t *req = json_pack("{s:s}", "UnlockKey", k);
  if (cli_call(c, "POST", "/swarm/unlock", req, NULL, &err) < 0)
    return shoal_fail(&err);
  return 0;
}

static const struct shoal_subcmd swarm_cmds[] = {
    {"init", NULL, swarm_init},
    {"join", NULL, swarm_join},
    {"join-token", NULL, swarm_join_token},
    {"leave", NULL, swarm_leave},
    {"unlock", NULL, swarm_unlock},
    {"unlock-key", NULL, swarm_unlock_key},
    {"update", NULL, swarm_update},
    {NULL, NULL, NULL},
};

int cmd_swarm(struct shoal *s, int argc, char **argv) {
  return shoal_group(s, "shoal swarm", HELP_SWARM, swarm_cmds, argc, argv);
}
