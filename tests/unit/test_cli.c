/* CLI output and client: tables, go-units, Go time and template subsets,
 * flag parsing, node ls / node inspect --pretty / info / version rendering
 * against JSON fixtures (values from the Engine API yaml examples and from
 * docker/cli's own golden files), and the API client against a scripted
 * daemon on a unix socket. */
#include "test.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/client.h"
#include "cli/flags.h"
#include "cli/render.h"
#include "cli/template.h"
#include "cli/text.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"

static json_t *J(const char *text) {
  json_error_t je;
  json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
  if (!j) {
    fprintf(stderr, "bad fixture: %s: %s\n", je.text, text);
    abort();
  }
  return j;
}

/* ---- tabwriter ----------------------------------------------------------- */

TEST(cli_tabwriter_elastic_columns) {
  tabwriter tw;
  tabwriter_init(&tw, 0, 1, 1);
  tabwriter_puts(&tw, "aaaa\tbbb\td\naa\tb\tdd\na\t\naa\tcccc\teee\n");
  cleanup_buf sh_buf out = {0};
  tabwriter_flush(&tw, &out);
  tabwriter_free(&tw);
  /* the b/c columns are separate blocks: line 3 has no second column */
  CHECK_STR_EQ(out.data, "aaaa bbb d\n"
                         "aa   b   dd\n"
                         "a    \n"
                         "aa   cccc eee\n");
}

TEST(cli_tabwriter_minwidth_and_last_cell) {
  tabwriter tw;
  tabwriter_init(&tw, 10, 1, 3);
  tabwriter_puts(&tw, "ID\tNAME\nx\ty\tz\n");
  cleanup_buf sh_buf out = {0};
  tabwriter_flush(&tw, &out);
  tabwriter_free(&tw);
  CHECK_STR_EQ(out.data, "ID        NAME\nx         y         z\n");
}

TEST(cli_tabwriter_utf8_width) {
  tabwriter tw;
  tabwriter_init(&tw, 0, 1, 1);
  tabwriter_puts(&tw, "h\xc3\xa9\tx\nabc\ty\n");
  cleanup_buf sh_buf out = {0};
  tabwriter_flush(&tw, &out);
  tabwriter_free(&tw);
  CHECK_STR_EQ(out.data, "h\xc3\xa9  x\nabc y\n");
}

/* ---- go-units and Go renderings ---------------------------------------- */

TEST(cli_human_duration) {
  char b[64];
  const int64_t s = 1000000000;
  CHECK_STR_EQ(units_human_duration(0, b, sizeof b), "Less than a second");
  CHECK_STR_EQ(units_human_duration(s, b, sizeof b), "1 second");
  CHECK_STR_EQ(units_human_duration(5 * s, b, sizeof b), "5 seconds");
  CHECK_STR_EQ(units_human_duration(59 * s, b, sizeof b), "59 seconds");
  CHECK_STR_EQ(units_human_duration(60 * s, b, sizeof b), "About a minute");
  CHECK_STR_EQ(units_human_duration(119 * s, b, sizeof b), "About a minute");
  CHECK_STR_EQ(units_human_duration(120 * s, b, sizeof b), "2 minutes");
  CHECK_STR_EQ(units_human_duration(3599 * s, b, sizeof b), "59 minutes");
  CHECK_STR_EQ(units_human_duration(3600 * s, b, sizeof b), "About an hour");
  CHECK_STR_EQ(units_human_duration(5400 * s, b, sizeof b), "2 hours");
  CHECK_STR_EQ(units_human_duration(47 * 3600 * s, b, sizeof b), "47 hours");
  CHECK_STR_EQ(units_human_duration(48 * 3600 * s, b, sizeof b), "2 days");
  CHECK_STR_EQ(units_human_duration(14 * 24 * 3600 * s, b, sizeof b),
               "2 weeks");
  /* the default node certificate expiry, as docker info shows it */
  CHECK_STR_EQ(units_human_duration(2160 * 3600 * s, b, sizeof b), "3 months");
  CHECK_STR_EQ(units_human_duration(730 * 24 * 3600 * s, b, sizeof b),
               "2 years");
}

TEST(cli_bytes_size) {
  char b[64];
  CHECK_STR_EQ(units_bytes_size(0, b, sizeof b), "0B");
  CHECK_STR_EQ(units_bytes_size(1536, b, sizeof b), "1.5KiB");
  CHECK_STR_EQ(units_bytes_size(20 * 1024 * 1024, b, sizeof b), "20MiB");
  CHECK_STR_EQ(units_bytes_size(8254287872.0, b, sizeof b), "7.687GiB");
  CHECK_STR_EQ(units_human_size(2746000, b, sizeof b), "2.746MB");
}

TEST(cli_go_time_strings) {
  char b[128];
  CHECK_STR_EQ(text_go_time("2009-11-10T23:00:00Z", b, sizeof b),
               "2009-11-10 23:00:00 +0000 UTC");
  CHECK_STR_EQ(text_go_time("2016-08-18T10:44:24.496525531Z", b, sizeof b),
               "2016-08-18 10:44:24.496525531 +0000 UTC");
  CHECK_STR_EQ(text_go_time("2016-08-18T10:44:24.500Z", b, sizeof b),
               "2016-08-18 10:44:24.5 +0000 UTC");
  CHECK_STR_EQ(text_go_time("2016-08-18T10:44:24+01:30", b, sizeof b),
               "2016-08-18 10:44:24 +0130 +0130");
  CHECK_STR_EQ(text_go_time("garbage", b, sizeof b), "garbage");
  CHECK_STR_EQ(
      text_ansic_time("2025-05-30T12:07:14.000000000+00:00", b, sizeof b),
      "Fri May 30 12:07:14 2025");
  CHECK_STR_EQ(text_ansic_time("2026-01-05T03:04:05Z", b, sizeof b),
               "Mon Jan  5 03:04:05 2026");
  CHECK_STR_EQ(text_ansic_time("not a date", b, sizeof b), "not a date");
}

TEST(cli_pretty_and_natural_order) {
  cleanup_free char *a = text_pretty("ready");
  cleanup_free char *b = text_pretty("UNREACHABLE");
  cleanup_free char *c = text_pretty("x");
  cleanup_free char *d = text_pretty("");
  CHECK_STR_EQ(a, "Ready");
  CHECK_STR_EQ(b, "Unreachable");
  CHECK_STR_EQ(c, "x");
  CHECK_STR_EQ(d, "");
  CHECK(text_natural_less("node-2-foo", "node-10-foo"));
  CHECK(!text_natural_less("node-10-foo", "node-2-foo"));
  CHECK(text_natural_less("a2", "a02"));
  CHECK(text_natural_less("abc", "abcd"));
  CHECK(text_natural_less("1", "a"));
  CHECK(!text_natural_less("same", "same"));
}

TEST(cli_json_indent_like_go) {
  const char *src =
      "{\"a\":[],\"b\":{\"c\":1,\"d\":[1, 2]},\"e\":\"x,y:{\\\"\","
      "\"f\":{}}";
  cleanup_buf sh_buf out = {0};
  sh_err err = {0};
  CHECK_INT_EQ(text_json_indent(src, strlen(src), "    ", &out, &err), 0);
  CHECK_STR_EQ(out.data, "{\n"
                         "    \"a\": [],\n"
                         "    \"b\": {\n"
                         "        \"c\": 1,\n"
                         "        \"d\": [\n"
                         "            1,\n"
                         "            2\n"
                         "        ]\n"
                         "    },\n"
                         "    \"e\": \"x,y:{\\\"\",\n"
                         "    \"f\": {}\n"
                         "}");
  cleanup_buf sh_buf bad = {0};
  CHECK(text_json_indent("{\"a\":", 5, "  ", &bad, &err) < 0);
}

TEST(cli_go_value_and_json) {
  json_t *j = J("{\"b\":[1,\"x\",true],\"a\":{\"k\":null},\"h\":\"<&>\"}");
  cleanup_buf sh_buf v = {0}, js = {0};
  text_go_value(j, &v);
  CHECK_STR_EQ(v.data, "map[a:map[k:<nil>] b:[1 x true] h:<&>]");
  text_go_json(j, true, &js);
  CHECK_STR_EQ(js.data, "{\"a\":{\"k\":null},\"b\":[1,\"x\",true],\"h\":"
                        "\"\\u003c\\u0026\\u003e\"}");
  json_decref(j);
}

/* ---- templates ----------------------------------------------------------- */

static char *run_tmpl(const char *src, const char *dot, bool strict, int *rc) {
  struct cli_tmpl *t = NULL;
  sh_err err = {0};
  sh_buf out = {0};
  *rc = cli_tmpl_parse(src, &t, &err);
  if (*rc < 0)
    return xstrdup(err.msg);
  json_t *j = J(dot);
  *rc = cli_tmpl_exec(t, j, strict, true, &out, &err);
  json_decref(j);
  cli_tmpl_free(t);
  if (*rc < 0) {
    buf_free(&out);
    return xstrdup(err.msg);
  }
  return out.data ? out.data : xstrdup("");
}

TEST(cli_template_subset) {
  int rc;
  const char *node =
      "{\"ID\":\"n1\",\"Self\":true,\"Spec\":{\"Labels\":{\"a\":\"1\"},"
      "\"Role\":\"manager\"},\"L\":[\"x\",\"y\"],\"E\":\"\"}";
  cleanup_free char *a =
      run_tmpl("{{.ID}} {{if .Self}}*{{else}} {{ end }}|", node, false, &rc);
  CHECK_STR_EQ(a, "n1 *|");
  cleanup_free char *b = run_tmpl("{{.Spec.Role}}:{{index .Spec.Labels "
                                  "\"a\"}}:{{index .Spec.Labels \"zz\"}}",
                                  node, false, &rc);
  CHECK_STR_EQ(b, "manager:1:");
  cleanup_free char *c = run_tmpl("{{json .Spec}}", node, false, &rc);
  CHECK_STR_EQ(c, "{\"Labels\":{\"a\":\"1\"},\"Role\":\"manager\"}");
  cleanup_free char *d = run_tmpl("{{.Nope}}", node, false, &rc);
  CHECK_STR_EQ(d, "<no value>");
  cleanup_free char *e = run_tmpl("{{.Nope}}", node, true, &rc);
  CHECK(rc < 0);
  CHECK(strstr(e, "map has no entry for key \"Nope\"") != NULL);
  cleanup_free char *f =
      run_tmpl("A\n  {{- if .E}}yes{{else}}no{{end -}}  \nB", node, false, &rc);
  CHECK_STR_EQ(f, "AnoB");
  cleanup_free char *g =
      run_tmpl("{{join .L \", \"}} {{upper .ID}} {{.L}}", node, false, &rc);
  CHECK_STR_EQ(g, "x, y N1 [x y]");
  cleanup_free char *h = run_tmpl("{{", node, false, &rc);
  CHECK(rc < 0);
  CHECK_STR_EQ(h, "template: :1: unclosed action");
  cleanup_free char *i = run_tmpl("{{InvalidFunction}}", node, false, &rc);
  CHECK(rc < 0);
  CHECK_STR_EQ(i, "template: :1: function \"InvalidFunction\" not defined");
  cleanup_free char *k = run_tmpl("{{if .Self}}x", node, false, &rc);
  CHECK(rc < 0);
  CHECK_STR_EQ(k, "template: :1: unexpected EOF");
}

TEST(cli_prepare_format) {
  bool table;
  cleanup_free char *a =
      render_prepare_format("table {{.ID}}\\t{{.Hostname}} ", &table);
  CHECK(table);
  CHECK_STR_EQ(a, "{{.ID}}\t{{.Hostname}}");
  cleanup_free char *b = render_prepare_format("json", &table);
  CHECK(!table);
  CHECK_STR_EQ(b, "{{json .}}");
}

/* ---- flags ----------------------------------------------------------------
 */

static struct cli_flag tflags[] = {
    {.name = "quiet", .shorthand = 'q', .type = CLI_FLAG_BOOL},
    {.name = "filter", .shorthand = 'f', .type = CLI_FLAG_FILTER},
    {.name = "token", .type = CLI_FLAG_STRING},
    {.name = "cert-expiry", .type = CLI_FLAG_DURATION, .dflt = "2160h"},
    {.name = "task-history-limit", .type = CLI_FLAG_INT64, .dflt = "5"},
    {.name = "snapshot-interval", .type = CLI_FLAG_UINT64, .dflt = "10000"},
    {.name = "data-path-port", .type = CLI_FLAG_UINT32},
    {.name = "listen-addr", .type = CLI_FLAG_NODE_ADDR, .dflt = "0.0.0.0:2377"},
    {.name = "default-addr-pool", .type = CLI_FLAG_IPNET_SLICE},
    {.name = "label-add", .type = CLI_FLAG_LIST},
};

static int parse(int argc, char **argv, char *msg, int *nargs, char ***args) {
  bool help, dash_h;
  return cli_flags_parse(tflags, ARRAY_SIZE(tflags), argc, argv, args, nargs,
                         &help, &dash_h, msg, 512);
}

TEST(cli_flags_parse_forms) {
  char msg[512] = "";
  char **args = NULL;
  int n = 0;
  char *argv[] = {"-qf",
                  " Role = manager ",
                  "pos1",
                  "--token=abc",
                  "--cert-expiry",
                  "1h30m",
                  "--listen-addr",
                  "eth0",
                  "--default-addr-pool",
                  "10.1.2.3/8,192.168.0.0/16",
                  "--label-add",
                  "a=b",
                  "--label-add",
                  "c",
                  "--",
                  "-x"};
  CHECK_INT_EQ(parse(ARRAY_SIZE(argv), argv, msg, &n, &args), 0);
  CHECK_INT_EQ(n, 2);
  CHECK_STR_EQ(args[0], "pos1");
  CHECK_STR_EQ(args[1], "-x");
  free(args);
  CHECK(tflags[0].b && tflags[0].changed);
  CHECK_INT_EQ(tflags[1].nlist, 1);
  CHECK_STR_EQ(tflags[1].list[0], "role=manager");
  CHECK_STR_EQ(tflags[2].s, "abc");
  CHECK_INT_EQ(tflags[3].i, INT64_C(5400000000000));
  CHECK_INT_EQ(tflags[4].i, 5); /* default kept, not changed */
  CHECK(!tflags[4].changed);
  CHECK_INT_EQ(tflags[5].u, 10000);
  CHECK_STR_EQ(tflags[7].s, "eth0:2377");
  CHECK_INT_EQ(tflags[8].nlist, 2);
  CHECK_STR_EQ(tflags[8].list[0], "10.0.0.0/8");
  CHECK_STR_EQ(tflags[8].list[1], "192.168.0.0/16");
  CHECK_INT_EQ(tflags[9].nlist, 2);
  cli_flags_free(tflags, ARRAY_SIZE(tflags));
}

TEST(cli_flags_errors_match_pflag) {
  struct {
    const char *a, *b, *msg;
  } cases[] = {
      {"--bogus", NULL, "unknown flag: --bogus"},
      {"-x", NULL, "unknown shorthand flag: 'x' in -x"},
      {"-qx", NULL, "unknown shorthand flag: 'x' in -x"},
      {"--token", NULL, "flag needs an argument: --token"},
      {"-f", NULL, "flag needs an argument: 'f' in -f"},
      {"-f", "foo",
       "invalid argument \"foo\" for \"-f, --filter\" flag: bad format of "
       "filter (expected name=value)"},
      {"--quiet=maybe", NULL,
       "invalid argument \"maybe\" for \"-q, --quiet\" flag: "
       "strconv.ParseBool: parsing \"maybe\": invalid syntax"},
      {"--cert-expiry", "xyz",
       "invalid argument \"xyz\" for \"--cert-expiry\" flag: time: invalid "
       "duration \"xyz\""},
      {"--task-history-limit", "abc",
       "invalid argument \"abc\" for \"--task-history-limit\" flag: "
       "strconv.ParseInt: parsing \"abc\": invalid syntax"},
      {"--snapshot-interval", "-1",
       "invalid argument \"-1\" for \"--snapshot-interval\" flag: "
       "strconv.ParseUint: parsing \"-1\": invalid syntax"},
      {"--data-path-port", "99999999999",
       "invalid argument \"99999999999\" for \"--data-path-port\" flag: "
       "strconv.ParseUint: parsing \"99999999999\": value out of range"},
      {"--listen-addr", "foo:bar",
       "invalid argument \"foo:bar\" for \"--listen-addr\" flag: parse "
       "\"tcp://foo:bar\": invalid port \":bar\" after host"},
      {"--default-addr-pool", "x",
       "invalid argument \"x\" for \"--default-addr-pool\" flag: invalid "
       "string being converted to CIDR: x"},
      {"---x", NULL, "bad flag syntax: ---x"},
  };
  for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
    char msg[512] = "";
    char **args = NULL;
    int n = 0;
    char *argv[] = {(char *)cases[i].a, (char *)cases[i].b};
    int rc = parse(cases[i].b ? 2 : 1, argv, msg, &n, &args);
    free(args);
    CHECK_INT_EQ(rc, -1);
    CHECK_STR_EQ(msg, cases[i].msg);
  }
  cli_flags_free(tflags, ARRAY_SIZE(tflags));
}

TEST(cli_cmd_parse_arg_rules_and_help) {
  static struct cli_flag f[] = {
      {.name = "force", .shorthand = 'f', .type = CLI_FLAG_BOOL}};
  struct cli_cmd cmd = {"shoal node rm",
                        "shoal node rm [OPTIONS] NODE [NODE...]",
                        "HELP\n",
                        CLI_ARGS_MIN,
                        1,
                        f,
                        1};
  char **args = NULL;
  int n = 0, rc = -7;
  char *obuf = NULL, *ebuf = NULL;
  size_t olen = 0, elen = 0;
  FILE *o = open_memstream(&obuf, &olen), *e = open_memstream(&ebuf, &elen);
  char *none[] = {NULL};
  CHECK_INT_EQ(cli_cmd_parse(&cmd, 0, none, &args, &n, &rc, o, e), -1);
  CHECK_INT_EQ(rc, 1);
  char *h[] = {"-h"};
  CHECK_INT_EQ(cli_cmd_parse(&cmd, 1, h, &args, &n, &rc, o, e), -1);
  CHECK_INT_EQ(rc, 0);
  char *bad[] = {"--nope"};
  CHECK_INT_EQ(cli_cmd_parse(&cmd, 1, bad, &args, &n, &rc, o, e), -1);
  CHECK_INT_EQ(rc, 125);
  char *ok[] = {"a", "-f", "b"};
  CHECK_INT_EQ(cli_cmd_parse(&cmd, 3, ok, &args, &n, &rc, o, e), 0);
  CHECK_INT_EQ(n, 2);
  CHECK(f[0].b);
  free(args);
  fclose(o);
  fclose(e);
  CHECK_STR_EQ(obuf,
               "Flag shorthand -h has been deprecated, use --help\nHELP\n");
  CHECK_STR_EQ(ebuf, "shoal: 'shoal node rm' requires at least 1 argument\n\n"
                     "Usage:  shoal node rm [OPTIONS] NODE [NODE...]\n\n"
                     "See 'shoal node rm --help' for more information\n"
                     "unknown flag: --nope\n\n"
                     "Usage:  shoal node rm [OPTIONS] NODE [NODE...]\n\n"
                     "Run 'shoal node rm --help' for more information\n");
  free(obuf);
  free(ebuf);
}

TEST(cli_external_ca_spec) {
  json_t *ca = NULL;
  char msg[256] = "";
  CHECK_INT_EQ(cli_parse_external_ca("protocol=CFSSL,url=https://ca:8888,k=v",
                                     &ca, msg, sizeof msg),
               0);
  CHECK_STR_EQ(jx_str(ca, "Protocol", ""), "cfssl");
  CHECK_STR_EQ(jx_str(ca, "URL", ""), "https://ca:8888");
  CHECK_STR_EQ(jx_str(ca, "Options.k", ""), "v");
  json_decref(ca);
  CHECK(cli_parse_external_ca("url=y", &ca, msg, sizeof msg) < 0);
  CHECK_STR_EQ(msg, "the external-ca option needs a protocol= parameter");
  CHECK(cli_parse_external_ca("protocol=x,url=y", &ca, msg, sizeof msg) < 0);
  CHECK_STR_EQ(msg, "unrecognized external CA protocol x");
}

/* ---- node ls --------------------------------------------------------------
 */

/* docker/cli's builders.Node() as Engine API JSON */
static json_t *fixture_node(const char *id, const char *host, int manager,
                            const char *engine) {
  json_t *n =
      J("{\"Version\":{\"Index\":10},\"CreatedAt\":\"2009-11-10T23:00:00Z\","
        "\"UpdatedAt\":\"2009-11-10T23:00:00Z\","
        "\"Spec\":{\"Name\":\"defaultNodeName\",\"Role\":\"worker\","
        "\"Availability\":\"active\"},"
        "\"Description\":{\"Hostname\":\"\",\"Platform\":{\"Architecture\":"
        "\"x86_64\",\"OS\":\"linux\"},\"Resources\":{\"NanoCPUs\":4,"
        "\"MemoryBytes\":20971520},\"Engine\":{\"EngineVersion\":\"1.13.0\","
        "\"Labels\":{\"engine\":\"label\"},\"Plugins\":[{\"Type\":\"Volume\","
        "\"Name\":\"local\"},{\"Type\":\"Network\",\"Name\":\"bridge\"},"
        "{\"Type\":\"Network\",\"Name\":\"overlay\"}]}},"
        "\"Status\":{\"State\":\"ready\",\"Addr\":\"127.0.0.1\"}}");
  json_object_set_new(n, "ID", json_string(id));
  jx_set(n, "Description.Hostname", json_string(host));
  if (engine)
    jx_set(n, "Description.Engine.EngineVersion", json_string(engine));
  if (manager) {
    jx_set(n, "Spec.Role", json_string("manager"));
    json_object_set_new(n, "ManagerStatus",
                        json_pack("{s:b, s:s, s:s}", "Leader", manager == 2,
                                  "Reachability", "reachable", "Addr",
                                  "127.0.0.1"));
  }
  return n;
}

TEST(cli_node_ls_matches_docker_golden) {
  json_t *nodes = json_array();
  json_array_append_new(nodes, fixture_node("nodeID1", "node-2-foo", 2, "."));
  json_array_append_new(
      nodes, fixture_node("nodeID2", "node-10-foo", 1, "18.03.0-ce"));
  json_array_append_new(nodes, fixture_node("nodeID3", "node-1-foo", 0, NULL));
  json_t *info = J("{\"Swarm\":{\"NodeID\":\"nodeID1\"}}");
  cleanup_buf sh_buf out = {0};
  sh_err err = {0};
  CHECK_INT_EQ(render_node_list(nodes, info, NULL, false, &out, &err), 0);
  /* docker/cli cli/command/node/testdata/node-list-sort.golden */
  CHECK_STR_EQ(
      out.data,
      "ID          HOSTNAME      STATUS    AVAILABILITY   MANAGER STATUS   "
      "ENGINE VERSION\n"
      "nodeID3     node-1-foo    Ready     Active                          "
      "1.13.0\n"
      "nodeID1 *   node-2-foo    Ready     Active         Leader           .\n"
      "nodeID2     node-10-foo   Ready     Active         Reachable        "
      "18.03.0-ce\n");
  cleanup_buf sh_buf q = {0};
  CHECK_INT_EQ(render_node_list(nodes, NULL, NULL, true, &q, &err), 0);
  CHECK_STR_EQ(q.data, "nodeID3\nnodeID1\nnodeID2\n");
  cleanup_buf sh_buf f = {0};
  CHECK_INT_EQ(render_node_list(nodes, info,
                                "{{.Hostname}}: {{.ManagerStatus}}", false, &f,
                                &err),
               0);
  CHECK_STR_EQ(f.data,
               "node-1-foo: \nnode-2-foo: Leader\nnode-10-foo: Reachable\n");
  cleanup_buf sh_buf js = {0};
  json_t *one = json_array();
  json_array_append(one, json_array_get(nodes, 0));
  CHECK_INT_EQ(render_node_list(one, info, "json", false, &js, &err), 0);
  CHECK_STR_EQ(
      js.data,
      "{\"Availability\":\"Active\",\"EngineVersion\":\".\",\"Hostname\":"
      "\"node-2-foo\",\"ID\":\"nodeID1\",\"ManagerStatus\":\"Leader\","
      "\"Self\":true,\"Status\":\"Ready\",\"TLSStatus\":\"Unknown\"}\n");
  cleanup_buf sh_buf bad = {0};
  CHECK(render_node_list(nodes, info, "{{InvalidFunction}}", false, &bad,
                         &err) < 0);
  CHECK_STR_EQ(err.msg, "template parsing error: template: :1: function "
                        "\"InvalidFunction\" not defined");
  json_decref(one);
  json_decref(nodes);
  json_decref(info);
}

TEST(cli_node_ls_empty_and_tls_status) {
  json_t *empty = json_array();
  cleanup_buf sh_buf out = {0};
  sh_err err = {0};
  CHECK_INT_EQ(render_node_list(empty, NULL, NULL, false, &out, &err), 0);
  CHECK_STR_EQ(out.data,
               "ID        HOSTNAME   STATUS    AVAILABILITY   MANAGER "
               "STATUS   ENGINE VERSION\n");
  json_decref(empty);
  /* from docker/cli's formatter_test: TLS status against the cluster's */
  json_t *nodes =
      J("[{\"ID\":\"nodeID1\",\"Description\":{\"Hostname\":\"foobar_baz\","
        "\"TLSInfo\":{\"TrustRoot\":\"no\"}}},"
        "{\"ID\":\"nodeID2\",\"Description\":{\"Hostname\":\"foobar_bar\","
        "\"TLSInfo\":{\"TrustRoot\":\"hi\"}}},"
        "{\"ID\":\"nodeID3\",\"Description\":{\"Hostname\":\"foobar_boo\"}}]");
  json_t *info =
      J("{\"Swarm\":{\"Cluster\":{\"TLSInfo\":{\"TrustRoot\":\"hi\"}}}}");
  cleanup_buf sh_buf t = {0};
  CHECK_INT_EQ(render_node_list(nodes, info,
                                "table {{.ID}}\t{{.Hostname}}\t{{.TLSStatus}}",
                                false, &t, &err),
               0);
  /* sorted by hostname here (docker's list sorts; its formatter test does not)
   */
  CHECK_STR_EQ(t.data, "ID        HOSTNAME     TLS STATUS\n"
                       "nodeID2   foobar_bar   Ready\n"
                       "nodeID1   foobar_baz   Needs Rotation\n"
                       "nodeID3   foobar_boo   Unknown\n");
  json_decref(nodes);
  json_decref(info);
}

/* ---- node inspect ---------------------------------------------------------
 */

TEST(cli_node_inspect_pretty_matches_docker_golden) {
  json_t *n = fixture_node("nodeID", "defaultNodeHostname", 2, NULL);
  cleanup_buf sh_buf out = {0};
  render_node_pretty(n, &out);
  /* docker/cli testdata/node-inspect-pretty.manager-leader.golden */
  CHECK_STR_EQ(out.data,
               "ID:\t\t\tnodeID\n"
               "Name:\t\t\tdefaultNodeName\n"
               "Hostname:              \tdefaultNodeHostname\n"
               "Joined at:             \t2009-11-10 23:00:00 +0000 utc\n"
               "Status:\n"
               " State:\t\t\tReady\n"
               " Availability:         \tActive\n"
               " Address:\t\t127.0.0.1\n"
               "Manager Status:\n"
               " Address:\t\t127.0.0.1\n"
               " Raft Status:\t\tReachable\n"
               " Leader:\t\tYes\n"
               "Platform:\n"
               " Operating System:\tlinux\n"
               " Architecture:\t\tx86_64\n"
               "Resources:\n"
               " CPUs:\t\t\t0\n"
               " Memory:\t\t20MiB\n"
               "Plugins:\n"
               " Network:\t\tbridge, overlay\n"
               " Volume:\t\tlocal\n"
               "Engine Version:\t\t1.13.0\n"
               "Engine Labels:\n"
               " - engine=label\n");
  json_decref(n);
}

TEST(cli_node_inspect_pretty_worker_labels_tls) {
  json_t *n = fixture_node("nodeID", "defaultNodeHostname", 0, NULL);
  jx_set(n, "Spec.Labels", J("{\"lbl1\":\"value1\",\"a\":\"\"}"));
  jx_set(n, "Status.Message", json_string("heartbeat failure"));
  jx_set(n, "Description.Resources.NanoCPUs", json_integer(2500000000));
  jx_set(n, "Description.TLSInfo",
         J("{\"TrustRoot\":\"-----BEGIN CERTIFICATE-----\\nX\\n-----END "
           "CERTIFICATE-----\\n\",\"CertIssuerSubject\":\"MBMx\","
           "\"CertIssuerPublicKey\":\"MFkw\"}"));
  cleanup_buf sh_buf out = {0};
  render_node_pretty(n, &out);
  CHECK(strstr(out.data,
               "Name:\t\t\tdefaultNodeName\nLabels:\n - a\n - lbl1=value1\n"
               "Hostname:") != NULL);
  CHECK(strstr(out.data,
               " State:\t\t\tReady\n Message:              \tHeartbeat "
               "failure\n Availability:") != NULL);
  CHECK(strstr(out.data, "Manager Status") == NULL);
  CHECK(strstr(out.data, " CPUs:\t\t\t2\n") != NULL);
  CHECK(strstr(out.data,
               "TLS Info:\n TrustRoot:\n-----BEGIN CERTIFICATE-----\nX\n"
               "-----END CERTIFICATE-----\n\n Issuer Subject:\tMBMx\n"
               " Issuer Public Key:\tMFkw\n") != NULL);
  json_decref(n);
}

TEST(cli_inspect_json_and_templates) {
  const char *raws[] = {"{\"ID\":\"a\",\"Spec\":{\"Role\":\"worker\"}}",
                        "{\"ID\":\"b\",\"Spec\":{}}"};
  size_t lens[] = {strlen(raws[0]), strlen(raws[1])};
  cleanup_buf sh_buf a = {0}, b = {0}, c = {0}, d = {0};
  sh_err err = {0};
  CHECK_INT_EQ(render_inspect(raws, lens, 2, NULL, &a, &err), 0);
  CHECK_STR_EQ(
      a.data,
      "[\n    {\n        \"ID\": \"a\",\n        \"Spec\": {\n"
      "            \"Role\": \"worker\"\n        }\n    },\n"
      "    {\n        \"ID\": \"b\",\n        \"Spec\": {}\n    }\n]\n");
  CHECK_INT_EQ(render_inspect(raws, lens, 2, "{{.ID}}", &b, &err), 0);
  CHECK_STR_EQ(b.data, "a\nb\n");
  CHECK_INT_EQ(render_inspect(raws, lens, 0, NULL, &c, &err), 0);
  CHECK_STR_EQ(c.data, "[]\n");
  /* a missing key is an error for the raw fallback; what rendered stays */
  CHECK(render_inspect(raws, lens, 2, "{{.Spec.Role}}", &d, &err) < 0);
  CHECK_STR_EQ(d.data, "worker\n");
  CHECK(strstr(err.msg, "template parsing error") == err.msg);
}

/* ---- info ---------------------------------------------------------------- */

static const char *INFO_FIXTURE =
    "{\"ID\":\"7TRN:IPZB:QYBB:VPBQ:UWM2:CSO5:5CEL:EHSJ:7SXN:ULCC:YHHJ:OHKV\","
    "\"Containers\":0,\"ContainersRunning\":0,\"ContainersPaused\":0,"
    "\"ContainersStopped\":0,\"Images\":0,\"Driver\":\"overlay2\","
    "\"DriverStatus\":[[\"Backing Filesystem\",\"extfs\"]],"
    "\"Plugins\":{\"Volume\":[\"local\"],\"Network\":[\"bridge\",\"overlay\"],"
    "\"Authorization\":null,\"Log\":[\"json-file\"]},"
    "\"Debug\":false,\"NFd\":64,\"NGoroutines\":174,"
    "\"SystemTime\":\"2017-08-08T20:28:29.06202363Z\",\"LoggingDriver\":\"json-"
    "file\","
    "\"CgroupDriver\":\"cgroupfs\",\"CgroupVersion\":\"1\","
    "\"KernelVersion\":\"6.1.0\",\"OperatingSystem\":\"Debian GNU/Linux 12 "
    "(bookworm)\","
    "\"OSType\":\"linux\",\"Architecture\":\"x86_64\",\"NCPU\":4,\"MemTotal\":"
    "2095882240,"
    "\"DockerRootDir\":\"/var/lib/shoal\",\"Name\":\"swarma\",\"Labels\":[],"
    "\"ExperimentalBuild\":false,\"ServerVersion\":\"0.1.0\","
    "\"Runtimes\":{\"runc\":{\"path\":\"runc\"},\"crun\":{\"path\":\"crun\"}},"
    "\"DefaultRuntime\":\"crun\",\"LiveRestoreEnabled\":false,"
    "\"InitBinary\":\"\",\"ContainerdCommit\":{\"ID\":\"\"},\"RuncCommit\":{"
    "\"ID\":\"\"},"
    "\"InitCommit\":{\"ID\":\"\"},"
    "\"SecurityOptions\":[\"name=seccomp,profile=builtin\",\"name=cgroupns\"],"
    "\"Warnings\":[\"WARNING: No swap limit support\"],"
    "\"Swarm\":{\"NodeID\":\"c3xr3f2h2zdg0stqkmgqcam2c\",\"NodeAddr\":\"192."
    "168.33.10\","
    "\"LocalNodeState\":\"active\",\"ControlAvailable\":true,\"Error\":\"\","
    "\"RemoteManagers\":[{\"NodeID\":\"c3xr3f2h2zdg0stqkmgqcam2c\",\"Addr\":"
    "\"192.168.33.10:2377\"}],\"Nodes\":3,\"Managers\":1,"
    "\"Cluster\":{\"ID\":\"4tkzs28qmbcix0sl36mjpv1ef\",\"Version\":{\"Index\":"
    "10},"
    "\"Spec\":{\"Name\":\"default\",\"Orchestration\":{"
    "\"TaskHistoryRetentionLimit\":5},"
    "\"Raft\":{\"SnapshotInterval\":10000,\"KeepOldSnapshots\":0,"
    "\"LogEntriesForSlowFollowers\":500,\"ElectionTick\":10,\"HeartbeatTick\":"
    "1},"
    "\"Dispatcher\":{\"HeartbeatPeriod\":5000000000},"
    "\"CAConfig\":{\"NodeCertExpiry\":7776000000000000},"
    "\"TaskDefaults\":{},\"EncryptionConfig\":{\"AutoLockManagers\":false}},"
    "\"TLSInfo\":{\"TrustRoot\":\"x\"},\"RootRotationInProgress\":false,"
    "\"DefaultAddrPool\":[\"10.0.0.0/"
    "8\"],\"SubnetSize\":24,\"DataPathPort\":4789}}}";

TEST(cli_info_swarm_section) {
  json_t *info = J(INFO_FIXTURE);
  cleanup_buf sh_buf out = {0};
  render_swarm_info(info, &out);
  CHECK_STR_EQ(out.data, "  NodeID: c3xr3f2h2zdg0stqkmgqcam2c\n"
                         "  Is Manager: true\n"
                         "  ClusterID: 4tkzs28qmbcix0sl36mjpv1ef\n"
                         "  Managers: 1\n"
                         "  Nodes: 3\n"
                         "  Default Address Pool: 10.0.0.0/8  \n"
                         "  SubnetSize: 24\n"
                         "  Data Path Port: 4789\n"
                         "  Orchestration:\n"
                         "   Task History Retention Limit: 5\n"
                         "  Raft:\n"
                         "   Snapshot Interval: 10000\n"
                         "   Number of Old Snapshots to Retain: 0\n"
                         "   Heartbeat Tick: 1\n"
                         "   Election Tick: 10\n"
                         "  Dispatcher:\n"
                         "   Heartbeat Period: 5 seconds\n"
                         "  CA Configuration:\n"
                         "   Expiry Duration: 3 months\n"
                         "   Force Rotate: 0\n"
                         "  Autolock Managers: false\n"
                         "  Root Rotation In Progress: false\n"
                         "  Node Address: 192.168.33.10\n"
                         "  Manager Addresses:\n"
                         "   192.168.33.10:2377\n");
  /* a worker sees no cluster details; inactive prints nothing */
  jx_set(info, "Swarm.ControlAvailable", json_false());
  cleanup_buf sh_buf w = {0};
  render_swarm_info(info, &w);
  CHECK_STR_EQ(w.data, "  NodeID: c3xr3f2h2zdg0stqkmgqcam2c\n"
                       "  Is Manager: false\n"
                       "  Node Address: 192.168.33.10\n"
                       "  Manager Addresses:\n"
                       "   192.168.33.10:2377\n");
  jx_set(info, "Swarm.LocalNodeState", json_string("inactive"));
  cleanup_buf sh_buf i = {0};
  render_swarm_info(info, &i);
  CHECK_INT_EQ(i.len, 0);
  json_decref(info);
}

TEST(cli_info_server_section) {
  json_t *info = J(INFO_FIXTURE);
  cleanup_buf sh_buf out = {0}, errs = {0};
  CHECK_INT_EQ(render_info_server(info, false, &out, &errs), 0);
  const char *head = " Containers: 0\n"
                     "  Running: 0\n"
                     "  Paused: 0\n"
                     "  Stopped: 0\n"
                     " Images: 0\n"
                     " Server Version: 0.1.0\n"
                     " Storage Driver: overlay2\n"
                     "  Backing Filesystem: extfs\n"
                     " Logging Driver: json-file\n"
                     " Cgroup Driver: cgroupfs\n"
                     " Cgroup Version: 1\n"
                     " Plugins:\n"
                     "  Volume: local\n"
                     "  Network: bridge overlay\n"
                     "  Log: json-file\n"
                     " Swarm: active\n"
                     "  NodeID: c3xr3f2h2zdg0stqkmgqcam2c\n";
  CHECK(strncmp(out.data, head, strlen(head)) == 0);
  const char *tail =
      "   192.168.33.10:2377\n"
      " Runtimes: crun runc\n"
      " Default Runtime: crun\n"
      " Init Binary: \n"
      " containerd version: \n"
      " runc version: \n"
      " init version: \n"
      " Security Options:\n"
      "  seccomp\n"
      "   Profile: builtin\n"
      "  cgroupns\n"
      " Kernel Version: 6.1.0\n"
      " Operating System: Debian GNU/Linux 12 (bookworm)\n"
      " OSType: linux\n"
      " Architecture: x86_64\n"
      " CPUs: 4\n"
      " Total Memory: 1.952GiB\n"
      " Name: swarma\n"
      " ID: 7TRN:IPZB:QYBB:VPBQ:UWM2:CSO5:5CEL:EHSJ:7SXN:ULCC:YHHJ:OHKV\n"
      " Docker Root Dir: /var/lib/shoal\n"
      " Debug Mode: false\n"
      " Experimental: false\n"
      " Live Restore Enabled: false\n"
      "\n";
  CHECK(str_has_suffix(out.data, tail));
  CHECK_STR_EQ(errs.data, "WARNING: No swap limit support\n");
  /* the client's -D shows the daemon's debug counters */
  cleanup_buf sh_buf dbg = {0}, e2 = {0};
  render_info_server(info, true, &dbg, &e2);
  CHECK(strstr(dbg.data,
               " Debug Mode: false\n  File Descriptors: 64\n"
               "  Goroutines: 174\n  System Time: "
               "2017-08-08T20:28:29.06202363Z\n  EventsListeners: 0\n") !=
        NULL);
  json_decref(info);
}

TEST(cli_info_tolerates_sparse_and_wrong_types) {
  /* a daemon answer with missing or mistyped fields must not crash */
  json_t *info =
      J("{\"Swarm\":{\"LocalNodeState\":\"active\",\"ControlAvailable\":true,"
        "\"Cluster\":{\"Spec\":5,\"DefaultAddrPool\":[1,null]},"
        "\"RemoteManagers\":[{},3]},\"Plugins\":[],\"DriverStatus\":[[1],2],"
        "\"Runtimes\":[],\"SecurityOptions\":[\"name\"],\"OSType\":\"linux\"}");
  cleanup_buf sh_buf out = {0}, errs = {0};
  render_info_server(info, false, &out, &errs);
  CHECK(strstr(out.data, " Swarm: active\n") != NULL);
  CHECK(strstr(out.data, "   Heartbeat Period: Less than a second\n") != NULL);
  json_decref(info);
  json_t *arr = J("[1,2]");
  cleanup_buf sh_buf o2 = {0}, e2 = {0};
  render_info_server(arr, false, &o2, &e2);
  render_node_pretty(arr, &o2);
  json_decref(arr);
}

TEST(cli_info_client_section) {
  json_t *c = J("{\"Version\":\"0.1.0\",\"Context\":\"default\"}");
  cleanup_buf sh_buf out = {0};
  render_info_client(c, false, &out);
  CHECK_STR_EQ(out.data, "Client:\n Version:    0.1.0\n Context:    default\n"
                         " Debug Mode: false\n");
  json_decref(c);
}

/* ---- version --------------------------------------------------------------
 */

TEST(cli_version_layout) {
  json_t *client =
      J("{\"Version\":\"0.1.0\",\"ApiVersion\":\"1.45\","
        "\"DefaultAPIVersion\":\"1.47\",\"GitCommit\":\"abc\","
        "\"BuildTime\":\"Fri May 30 12:07:14 2025\",\"Os\":\"linux\","
        "\"Arch\":\"amd64\",\"Context\":\"default\"}");
  json_t *server =
      J("{\"Platform\":{\"Name\":\"\"},\"Components\":[{\"Name\":"
        "\"Engine\",\"Version\":\"0.1.0\",\"Details\":{\"ApiVersion\":"
        "\"1.47\",\"MinAPIVersion\":\"1.24\",\"GitCommit\":\"def\","
        "\"GoVersion\":\"n/a\",\"Os\":\"linux\",\"Arch\":\"amd64\","
        "\"BuildTime\":\"2025-05-30T12:07:14.000000000+00:00\","
        "\"Experimental\":\"false\"}},{\"Name\":\"crun\",\"Version\":"
        "\"1.8\",\"Details\":{\"b\":\"2\",\"a\":\"1\"}}]}");
  cleanup_buf sh_buf out = {0};
  render_version(client, server, &out);
  CHECK_STR_EQ(out.data, "Client:\n"
                         " Version:           0.1.0\n"
                         " API version:       1.45 (downgraded from 1.47)\n"
                         " Git commit:        abc\n"
                         " Built:             Fri May 30 12:07:14 2025\n"
                         " OS/Arch:           linux/amd64\n"
                         " Context:           default\n"
                         "\n"
                         "Server:\n"
                         " Engine:\n"
                         "  Version:          0.1.0\n"
                         "  API version:      1.47 (minimum version 1.24)\n"
                         "  Go version:       n/a\n"
                         "  Git commit:       def\n"
                         "  Built:            Fri May 30 12:07:14 2025\n"
                         "  OS/Arch:          linux/amd64\n"
                         "  Experimental:     false\n"
                         " crun:\n"
                         "  Version:          1.8\n"
                         "  a:                1\n"
                         "  b:                2\n");
  cleanup_buf sh_buf only = {0};
  render_version(client, NULL, &only);
  CHECK(str_has_suffix(only.data, " Context:           default\n"));
  json_decref(client);
  json_decref(server);
}

/* ---- swarm messages -------------------------------------------------------
 */

TEST(cli_join_and_unlock_messages) {
  cleanup_buf sh_buf out = {0};
  render_join_command("docker", "SWMTKN-1-abc-def", "192.168.33.10:2377", false,
                      &out);
  CHECK_STR_EQ(out.data, "To add a worker to this swarm, run the following "
                         "command:\n\n    docker swarm join --token "
                         "SWMTKN-1-abc-def 192.168.33.10:2377\n\n");
  cleanup_buf sh_buf m = {0};
  render_join_command("shoal", "manager-join-token", "127.0.0.1", true, &m);
  /* docker/cli testdata/jointoken-manager.golden, with shoal's name */
  CHECK_STR_EQ(m.data, "To add a manager to this swarm, run the following "
                       "command:\n\n    shoal swarm join --token "
                       "manager-join-token 127.0.0.1\n\n");
  cleanup_buf sh_buf u = {0};
  render_unlock_command("shoal", "SWMKEY-1-x", &u);
  CHECK_STR_EQ(u.data,
               "To unlock a swarm manager after it restarts, run the "
               "`shoal swarm unlock`\ncommand and provide the following "
               "key:\n\n    SWMKEY-1-x\n\nRemember to store this key in a "
               "password manager, since without it you\nwill not be able "
               "to restart the manager.\n");
  cleanup_buf sh_buf none = {0};
  render_unlock_command("shoal", "", &none);
  CHECK_INT_EQ(none.len, 0);
}

/* ---- API client against a scripted daemon ---------------------------------
 */

TEST(cli_host_parsing) {
  char *h = NULL, *p = NULL, *b = NULL;
  sh_err err = {0};
  CHECK_INT_EQ(cli_host_parse(NULL, &h, &p, &b, &err), 0);
  CHECK_STR_EQ(h, "unix:///run/shoal/shoal.sock");
  CHECK_STR_EQ(p, "/run/shoal/shoal.sock");
  free(h), free(p), free(b);
  CHECK_INT_EQ(cli_host_parse("tcp://10.0.0.1", &h, &p, &b, &err), 0);
  CHECK_STR_EQ(h, "tcp://10.0.0.1:2375");
  CHECK_STR_EQ(b, "http://10.0.0.1:2375");
  CHECK(p == NULL);
  free(h), free(b);
  CHECK_INT_EQ(cli_host_parse(":4000", &h, &p, &b, &err), 0);
  CHECK_STR_EQ(h, "tcp://127.0.0.1:4000");
  free(h), free(b);
  CHECK(cli_host_parse("ssh://x", &h, &p, &b, &err) < 0);
  CHECK(cli_host_parse("tcp://h:port", &h, &p, &b, &err) < 0);
}

TEST(cli_daemon_error_messages) {
  sh_err err = {0};
  const char *j = "{\"message\":\"node xyz not found\\n\"}";
  cli_daemon_error(404, "application/json", j, strlen(j), "u", &err);
  CHECK_STR_EQ(err.msg, "Error response from daemon: node xyz not found");
  CHECK_INT_EQ(err.status, 404);
  cli_daemon_error(500, "text/plain", " boom\n", 6, "u", &err);
  CHECK_STR_EQ(err.msg, "Error response from daemon: boom");
  cli_daemon_error(503, "application/json", "{}", 2, "u", &err);
  CHECK_STR_EQ(err.msg, "API returned a 503 (Service Unavailable) but provided "
                        "no error-message");
  cli_daemon_error(404, "", "", 0, "http://localhost/v1.47/x", &err);
  CHECK_STR_EQ(err.msg, "request returned 404 Not Found for API route and "
                        "version http://localhost/v1.47/x, check if the server "
                        "supports the requested API version");
  cli_daemon_error(400, "application/json", "{bad", 4, "u", &err);
  CHECK(str_has_prefix(err.msg, "Error reading JSON: "));
}

/* Answers each connection from a table: path prefix -> raw HTTP answer.
 * Every request line is appended to log so the test can check paths. */
static void fake_daemon(int lfd, const char *logpath) {
  static const struct {
    const char *req, *resp;
  } routes[] = {
      {"HEAD /_ping ",
       "HTTP/1.1 200 OK\r\nApi-Version: 1.45\r\nContent-Length: 2\r\n\r\n"},
      {"GET /v1.45/nodes/bad ",
       "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
       "9\r\n\r\n{not json"},
      {"GET /v1.45/nodes/missing ",
       "HTTP/1.1 404 Not Found\r\nContent-Type: "
       "application/json\r\nContent-Length: 39\r\n\r\n"
       "{\"message\":\"node missing not found\"}\n\n\n"},
      {"POST /v1.45/swarm/init ",
       "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
       "9\r\n\r\n\"nodeid\"\n"},
      {"GET /v1.45/info ", "HTTP/1.1 200 OK\r\nContent-Type: "
                           "application/json\r\nContent-Length: 23\r\n\r\n"
                           "{\"Swarm\":{\"NodeID\":1}}\n"},
  };
  for (;;) {
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0)
      _exit(0);
    char req[8192];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof req - 1 &&
           (r = read(fd, req + n, sizeof req - 1 - n)) > 0) {
      n += (size_t)r;
      req[n] = '\0';
      char *end = strstr(req, "\r\n\r\n");
      if (!end)
        continue;
      char *cl = strcasestr(req, "Content-Length:");
      size_t body = cl && cl < end ? (size_t)atol(cl + 15) : 0;
      if (n >= (size_t)(end + 4 - req) + body)
        break;
    }
    FILE *log = fopen(logpath, "a");
    if (log) {
      fprintf(log, "%.*s\n", (int)strcspn(req, "\r"), req);
      char *body = strstr(req, "\r\n\r\n");
      if (body && body[4])
        fprintf(log, "BODY %s\n", body + 4);
      fclose(log);
    }
    const char *resp =
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n";
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
      if (str_has_prefix(req, routes[i].req))
        resp = routes[i].resp;
    if (write(fd, resp, strlen(resp)) < 0)
      _exit(1);
    shutdown(fd, SHUT_WR);
    close(fd);
  }
}

TEST(cli_client_against_fake_daemon) {
  char dir[] = "/tmp/shoal-cli-test-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char sock[100], logp[100], host[120];
  snprintf(sock, sizeof sock, "%s/d.sock", dir);
  snprintf(logp, sizeof logp, "%s/log", dir);
  snprintf(host, sizeof host, "unix://%s", sock);
  int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
  CHECK(bind(lfd, (struct sockaddr *)&sa, sizeof sa) == 0);
  CHECK(listen(lfd, 8) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    /* never outlive the test, even when a CHECK returns early */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    alarm(20);
    fake_daemon(lfd, logp);
  }
  close(lfd);

  cli_client c;
  sh_err err = {0};
  CHECK_INT_EQ(cli_client_init(&c, host, &err), 0);
  json_t *j = NULL;
  /* negotiation picks the daemon's lower version */
  json_t *req = json_pack("{s:s}", "ListenAddr", "0.0.0.0:2377");
  int rc = cli_call_json(&c, "POST", "/swarm/init", req, &j, &err);
  json_decref(req);
  CHECK_INT_EQ(rc, 0);
  CHECK_STR_EQ(c.version, "1.45");
  CHECK(json_is_string(j));
  CHECK_STR_EQ(json_string_value(j), "nodeid");
  json_decref(j);
  j = NULL;
  CHECK(cli_call_json(&c, "GET", "/nodes/missing", NULL, &j, &err) < 0);
  CHECK_STR_EQ(err.msg, "Error response from daemon: node missing not found");
  CHECK_INT_EQ(err.status, 404);
  CHECK(cli_call_json(&c, "GET", "/nodes/bad", NULL, &j, &err) < 0);
  CHECK(strstr(err.msg,
               "error reading the daemon's response to GET /nodes/bad") !=
        NULL);
  CHECK_INT_EQ(err.status, CLI_ESTATUS_LOCAL);
  CHECK(cli_call_json(&c, "GET", "/other", NULL, &j, &err) < 0);
  CHECK_STR_EQ(err.msg,
               "request returned 500 Internal Server Error for API route "
               "and version http://localhost/v1.45/other, check if the "
               "server supports the requested API version");
  /* a mistyped answer decodes; renderers then treat fields as absent */
  CHECK_INT_EQ(cli_call_json(&c, "GET", "/info", NULL, &j, &err), 0);
  CHECK_STR_EQ(jx_str(j, "Swarm.NodeID", "absent"), "absent");
  json_decref(j);
  cli_client_free(&c);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);

  cleanup_free char *log = NULL;
  size_t len = 0;
  CHECK_INT_EQ(read_file(logp, &log, &len, &err), 0);
  CHECK(str_has_prefix(log,
                       "HEAD /_ping HTTP/1.1\nPOST /v1.45/swarm/init HTTP/1.1\n"
                       "BODY {\"ListenAddr\":\"0.0.0.0:2377\"}\n"));
  /* the daemon is gone now: docker's connection message */
  CHECK_INT_EQ(cli_client_init(&c, host, &err), 0);
  CHECK(cli_call(&c, "GET", "/info", NULL, NULL, &err) < 0);
  char want[512];
  snprintf(want, sizeof want,
           "Cannot connect to the Docker daemon at %s. Is the docker daemon "
           "running?",
           host);
  CHECK_STR_EQ(err.msg, want);
  CHECK_INT_EQ(err.status, CLI_ESTATUS_CONNECT);
  cli_client_free(&c);
  unlink(sock);
  unlink(logp);
  rmdir(dir);
}

/* ---- services, tasks, containers (cli/svc.h) ------------------------------
 */

#include "cli/svc.h"

/* 2026-01-01T00:01:00Z: the "now" the relative times below are taken at */
#define SVC_NOW (INT64_C(1767225660) * INT64_C(1000000000))

TEST(cli_svc_time_duration_image_helpers) {
  CHECK_INT_EQ(svc_parse_time("2026-01-01T00:00:00Z"),
               INT64_C(1767225600) * INT64_C(1000000000));
  CHECK_INT_EQ(svc_parse_time("2026-01-01T01:00:00.5+01:00"),
               INT64_C(1767225600) * INT64_C(1000000000) + 500000000);
  CHECK_INT_EQ(svc_parse_time("yesterday"), -1);
  char d[64];
  CHECK_STR_EQ(svc_go_duration(0, d, sizeof d), "0s");
  CHECK_STR_EQ(svc_go_duration(4, d, sizeof d), "4ns");
  CHECK_STR_EQ(svc_go_duration(INT64_C(10000000000), d, sizeof d), "10s");
  CHECK_STR_EQ(svc_go_duration(INT64_C(1500000000), d, sizeof d), "1.5s");
  CHECK_STR_EQ(svc_go_duration(INT64_C(90000000000), d, sizeof d), "1m30s");
  CHECK_STR_EQ(svc_go_duration(INT64_C(3600000000000), d, sizeof d), "1h0m0s");
  CHECK_STR_EQ(svc_go_duration(INT64_C(250000000), d, sizeof d), "250ms");
  struct {
    const char *in, *want;
  } imgs[] = {
      {"nginx:latest@sha256:abc", "nginx:latest"},
      {"nginx@sha256:abc", "nginx@sha256:abc"},
      {"nginx", "nginx"},
      {"docker.io/library/busybox:1.36", "busybox:1.36"},
      {"127.0.0.1:5098/library/nginx:latest@sha256:abc",
       "127.0.0.1:5098/library/nginx:latest"},
      {"127.0.0.1:5098/nginx", "127.0.0.1:5098/nginx"},
  };
  for (size_t i = 0; i < ARRAY_SIZE(imgs); i++) {
    cleanup_free char *got = svc_image_display(imgs[i].in);
    CHECK_STR_EQ(got, imgs[i].want);
  }
  cleanup_free char *e1 = svc_ellipsis("nginx -g 'daemon off;'", 20);
  CHECK_STR_EQ(e1, "nginx -g 'daemon of…");
  cleanup_free char *e2 = svc_ellipsis("short", 20);
  CHECK_STR_EQ(e2, "short");
}

static json_t *fixture_service(const char *id, const char *name,
                               const char *mode_json, const char *ports) {
  json_t *s = J("{\"Spec\":{\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":"
                "\"nginx:latest@sha256:652e\"}}},"
                "\"ServiceStatus\":{\"RunningTasks\":2,\"DesiredTasks\":3,"
                "\"CompletedTasks\":0}}");
  json_object_set_new(s, "ID", json_string(id));
  jx_set(s, "Spec.Name", json_string(name));
  jx_set(s, "Spec.Mode", J(mode_json));
  if (ports)
    jx_set(s, "Endpoint.Ports", J(ports));
  return s;
}

TEST(cli_service_ls_rows_sorted_with_ports_and_modes) {
  json_t *list = json_array();
  json_array_append_new(
      list, fixture_service("6efkajq22pepr62xw5b5x6wyo", "web-10",
                            "{\"Replicated\":{\"Replicas\":3}}",
                            "[{\"Protocol\":\"tcp\",\"TargetPort\":80,"
                            "\"PublishedPort\":8080,\"PublishMode\":"
                            "\"ingress\"}]"));
  json_array_append_new(
      list,
      fixture_service("29n897bcsdsrzfvw2qpj1y8wy", "web-2", "{\"Global\":{}}",
                      /* consecutive ports fold into a range; udp sorts
                       * after tcp; host-mode ports are not listed */
                      "[{\"Protocol\":\"udp\",\"TargetPort\":53,"
                      "\"PublishedPort\":53,\"PublishMode\":\"ingress\"},"
                      "{\"Protocol\":\"tcp\",\"TargetPort\":81,"
                      "\"PublishedPort\":8081,\"PublishMode\":\"ingress\"},"
                      "{\"Protocol\":\"tcp\",\"TargetPort\":80,"
                      "\"PublishedPort\":8080,\"PublishMode\":\"ingress\"},"
                      "{\"Protocol\":\"tcp\",\"TargetPort\":90,"
                      "\"PublishedPort\":9090,\"PublishMode\":\"host\"}]"));
  json_t *bb = fixture_service("a57dbe8abcdefghijklmnopqr", "bb",
                               "{\"Replicated\":{\"Replicas\":1}}", NULL);
  jx_set(bb, "Spec.TaskTemplate.ContainerSpec.Image",
         json_string("busybox@sha256:6263"));
  jx_set(bb, "Spec.TaskTemplate.Placement.MaxReplicas", json_integer(2));
  json_array_append_new(list, bb);
  cleanup_buf sh_buf out = {0};
  sh_err err = {0};
  CHECK_INT_EQ(render_service_list(list, NULL, false, &out, &err), 0);
  CHECK_STR_EQ(out.data,
               "ID             NAME      MODE         REPLICAS               "
               "IMAGE                 PORTS\n"
               "a57dbe8abcde   bb        replicated   2/3 (max 2 per node)   "
               "busybox@sha256:6263   \n"
               "29n897bcsdsr   web-2     global       2/3                    "
               "nginx:latest          *:8080-8081->80-81/tcp, *:53->53/udp\n"
               "6efkajq22pep   web-10    replicated   2/3                    "
               "nginx:latest          *:8080->80/tcp\n");
  cleanup_buf sh_buf q = {0};
  CHECK_INT_EQ(render_service_list(list, NULL, true, &q, &err), 0);
  CHECK_STR_EQ(q.data, "a57dbe8abcde\n29n897bcsdsr\n6efkajq22pep\n");
  cleanup_buf sh_buf f = {0};
  CHECK_INT_EQ(render_service_list(list, "{{.Name}}", false, &f, &err), 0);
  CHECK_STR_EQ(f.data, "bb\nweb-2\nweb-10\n");
  json_decref(list);
}

static json_t *fixture_task(const char *id, int slot, const char *desired,
                            const char *state, const char *created,
                            const char *ts, const char *errmsg) {
  json_t *t = J("{\"ServiceID\":\"svc1\",\"NodeID\":\"node1\",\"Spec\":{"
                "\"ContainerSpec\":{\"Image\":\"nginx:latest@sha256:652e\"}}}");
  json_object_set_new(t, "ID", json_string(id));
  json_object_set_new(t, "Slot", json_integer(slot));
  json_object_set_new(t, "DesiredState", json_string(desired));
  json_object_set_new(t, "CreatedAt", json_string(created));
  jx_set(t, "Status.State", json_string(state));
  jx_set(t, "Status.Timestamp", json_string(ts));
  if (errmsg)
    jx_set(t, "Status.Err", json_string(errmsg));
  return t;
}

TEST(cli_service_ps_rows_history_and_errors) {
  json_t *tasks = json_array();
  /* the older task of slot 1 comes first in the answer; docker puts the
   * newest first and marks the older one as history */
  json_array_append_new(tasks,
                        fixture_task("exh5xo7atgyu99hyvqo90it86", 1, "shutdown",
                                     "shutdown", "2026-01-01T00:00:00Z",
                                     "2026-01-01T00:00:44Z", NULL));
  json_array_append_new(tasks,
                        fixture_task("3yiua0fym4m2clb9i9q9gamip", 1, "running",
                                     "running", "2026-01-01T00:00:40Z",
                                     "2026-01-01T00:00:55Z", NULL));
  json_array_append_new(
      tasks,
      fixture_task("5qgjpizml4oxalv1vffnjbl6r", 10, "shutdown", "rejected",
                   "2026-01-01T00:00:10Z", "2026-01-01T00:00:00Z",
                   "No such image: nginx:latest@sha256:652e"));
  json_array_append_new(tasks,
                        fixture_task("9qs0637zfcra1anawxk7gimx6", 2, "running",
                                     "preparing", "2026-01-01T00:00:10Z",
                                     "2025-12-31T23:00:30Z", NULL));
  json_t *names = J("{\"svc1\":\"web\"}");
  json_t *nodes = J("{\"node1\":\"swarma\"}");
  cleanup_buf sh_buf out = {0};
  sh_err err = {0};
  CHECK_INT_EQ(render_task_list(tasks, names, nodes, true, false, NULL, SVC_NOW,
                                &out, &err),
               0);
  CHECK_STR_EQ(
      out.data,
      "ID             NAME        IMAGE          NODE      DESIRED STATE "
      "  CURRENT STATE                 ERROR                             "
      " PORTS\n"
      "3yiua0fym4m2   web.1       nginx:latest   swarma    Running       "
      "  Running 5 seconds ago                                           "
      " \n"
      "exh5xo7atgyu    \\_ web.1   nginx:latest   swarma    Shutdown     "
      "   Shutdown 16 seconds ago                                        "
      "  \n"
      "9qs0637zfcra   web.2       nginx:latest   swarma    Running       "
      "  Preparing about an hour ago                                     "
      " \n"
      "5qgjpizml4ox   web.10      nginx:latest   swarma    Shutdown      "
      "  Rejected about a minute ago   \"No such image: nginx:latest@s…\""
      "   \n");
  cleanup_buf sh_buf nt = {0};
  cleanup_json json_t *no_nodes = J("{}");
  CHECK_INT_EQ(render_task_list(tasks, names, no_nodes, false, false,
                                "{{.ID}} {{.Name}} {{.Node}} {{.Image}}",
                                SVC_NOW, &nt, &err),
               0);
  /* no table: no history marker; unresolved nodes print as IDs */
  CHECK_STR_EQ(nt.data, "3yiua0fym4m2clb9i9q9gamip web.1 node1 "
                        "nginx:latest@sha256:652e\n"
                        "exh5xo7atgyu99hyvqo90it86 web.1 node1 "
                        "nginx:latest@sha256:652e\n"
                        "9qs0637zfcra1anawxk7gimx6 web.2 node1 "
                        "nginx:latest@sha256:652e\n"
                        "5qgjpizml4oxalv1vffnjbl6r web.10 node1 "
                        "nginx:latest@sha256:652e\n");
  json_decref(tasks);
  json_decref(names);
  json_decref(nodes);
}

TEST(cli_service_inspect_pretty_matches_docker_golden) {
  /* docker/cli cli/command/service/inspect_test.go's service */
  json_t *s = J(
      "{\"ID\":\"de179gar9d0o7ltdybungplod\",\"Version\":{\"Index\":315},"
      "\"Spec\":{\"Name\":\"my_service\",\"Labels\":{\"com.label\":\"foo\"},"
      "\"TaskTemplate\":{\"LogDriver\":{\"Name\":\"driver\",\"Options\":{"
      "\"max-file\":\"5\"}},\"ContainerSpec\":{\"Image\":\"foo/bar@sha256:"
      "this_is_a_test\",\"Configs\":[{\"ConfigID\":"
      "\"mtc3i44r1awdoziy2iceg73z8\",\"ConfigName\":\"configtest.conf\","
      "\"File\":{\"Name\":\"/configtest.conf\"}}],\"Secrets\":[{\"SecretID\":"
      "\"3hv39ehbbb4hdozo7spod9ftn\",\"SecretName\":\"secrettest.conf\","
      "\"File\":{\"Name\":\"/secrettest.conf\"}}],\"Healthcheck\":{\"Test\":["
      "\"CMD-SHELL\",\"curl\"],\"Interval\":4,\"Retries\":3,\"StartPeriod\":2,"
      "\"Timeout\":1}},\"Resources\":{\"Limits\":{\"NanoCPUs\":100000000000,"
      "\"MemoryBytes\":10490000,\"Pids\":20}},\"Networks\":[{\"Target\":"
      "\"5vpyomhb6ievnk0i0o60gcnei\",\"Aliases\":[\"web\"]}]},"
      "\"Mode\":{\"Replicated\":{\"Replicas\":2}},\"EndpointSpec\":{\"Mode\":"
      "\"vip\",\"Ports\":[{\"Protocol\":\"tcp\",\"TargetPort\":5000}]}},"
      "\"Endpoint\":{\"Ports\":[{\"Protocol\":\"tcp\",\"TargetPort\":5000,"
      "\"PublishedPort\":30000}]},"
      "\"UpdateStatus\":{\"StartedAt\":\"2026-01-01T00:00:00Z\","
      "\"CompletedAt\":\"2026-01-01T00:00:00Z\"}}");
  json_t *nets = J("{\"5vpyomhb6ievnk0i0o60gcnei\":\"mynetwork\"}");
  cleanup_buf sh_buf out = {0};
  render_service_pretty(s, nets, SVC_NOW, &out);
  /* testdata/service-inspect-pretty.golden */
  CHECK_STR_EQ(out.data, "\n"
                         "ID:\t\tde179gar9d0o7ltdybungplod\n"
                         "Name:\t\tmy_service\n"
                         "Labels:\n"
                         " com.label=foo\n"
                         "Service Mode:\tReplicated\n"
                         " Replicas:\t2\n"
                         "Placement:\n"
                         "ContainerSpec:\n"
                         " Image:\t\tfoo/bar@sha256:this_is_a_test\n"
                         "Configs:\n"
                         " Target:\t/configtest.conf\n"
                         "  Source:\tconfigtest.conf\n"
                         "Secrets:\n"
                         " Target:\t/secrettest.conf\n"
                         "  Source:\tsecrettest.conf\n"
                         "Log Driver:\n"
                         " Name:\t\tdriver\n"
                         " LogOpts:\n"
                         "  max-file:       5\n"
                         "\n"
                         "Resources:\n"
                         " Limits:\n"
                         "  CPU:\t\t100\n"
                         "  Memory:\t10MiB\n"
                         "  PIDs:\t\t20\n"
                         "Networks: mynetwork \n"
                         "Endpoint Mode:\tvip\n"
                         "Ports:\n"
                         " PublishedPort = 30000\n"
                         "  Protocol = tcp\n"
                         "  TargetPort = 5000\n"
                         "  PublishMode =  \n"
                         " Healthcheck:\n"
                         "  Interval = 4ns\n"
                         "  Retries = 3\n"
                         "  StartPeriod =\t2ns\n"
                         "  Timeout =\t1ns\n"
                         "  Tests:\n"
                         "\t Test = CMD-SHELL\n"
                         "\t Test = curl \n"
                         "\n");
  json_decref(s);
  json_decref(nets);
}

TEST(cli_service_inspect_pretty_seed_service) {
  /* what dockerd answers for the hands-on's service (insertDefaults) and
   * what docker 28 prints for it */
  json_t *s =
      J("{\"ID\":\"44fa3cojqfe3r7fhymu27m7es\",\"Spec\":{\"Name\":\"web2\","
        "\"Labels\":{},\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":"
        "\"nginx:latest@sha256:652e\",\"Env\":[\"A=1\"],\"Init\":false},"
        "\"Resources\":{\"Limits\":{\"NanoCPUs\":500000000},\"Reservations\":{"
        "\"MemoryBytes\":33554432}},\"Placement\":{\"Constraints\":["
        "\"node.role==manager\"]}},\"Mode\":{\"Replicated\":{\"Replicas\":2}},"
        "\"UpdateConfig\":{\"Parallelism\":2,\"Delay\":5000000000,"
        "\"FailureAction\":\"rollback\",\"Monitor\":5000000000,"
        "\"MaxFailureRatio\":0,\"Order\":\"stop-first\"},\"RollbackConfig\":{"
        "\"Parallelism\":1,\"FailureAction\":\"pause\",\"Monitor\":5000000000,"
        "\"MaxFailureRatio\":0,\"Order\":\"stop-first\"},\"EndpointSpec\":{"
        "\"Mode\":\"vip\"}},\"Endpoint\":{\"Ports\":[{\"Protocol\":\"tcp\","
        "\"TargetPort\":80,\"PublishedPort\":8081,\"PublishMode\":"
        "\"ingress\"}]},\"UpdateStatus\":{\"State\":\"updating\",\"Message\":"
        "\"update in progress\",\"StartedAt\":\"2026-01-01T00:00:00Z\"}}");
  cleanup_buf sh_buf out = {0};
  render_service_pretty(s, NULL, SVC_NOW, &out);
  CHECK_STR_EQ(out.data, "\nID:\t\t44fa3cojqfe3r7fhymu27m7es\n"
                         "Name:\t\tweb2\n"
                         "Service Mode:\tReplicated\n"
                         " Replicas:\t2\n"
                         "UpdateStatus:\n"
                         " State:\t\tupdating\n"
                         " Started:\tAbout a minute ago\n"
                         " Message:\tupdate in progress\n"
                         "Placement:\n"
                         " Constraints:\t[node.role==manager]\n"
                         "UpdateConfig:\n"
                         " Parallelism:\t2\n"
                         " Delay:\t\t5s\n"
                         " On failure:\trollback\n"
                         " Monitoring Period: 5s\n"
                         " Max failure ratio: 0\n"
                         " Update order:      stop-first\n"
                         "RollbackConfig:\n"
                         " Parallelism:\t1\n"
                         " On failure:\tpause\n"
                         " Monitoring Period: 5s\n"
                         " Max failure ratio: 0\n"
                         " Rollback order:    stop-first\n"
                         "ContainerSpec:\n"
                         " Image:\t\tnginx:latest@sha256:652e\n"
                         " Env:\t\tA=1 \n"
                         " Init:\t\tfalse\n"
                         "Resources:\n"
                         " Reservations:\n"
                         "  Memory:\t32MiB\n"
                         " Limits:\n"
                         "  CPU:\t\t0.5\n"
                         "Endpoint Mode:\tvip\n"
                         "Ports:\n"
                         " PublishedPort = 8081\n"
                         "  Protocol = tcp\n"
                         "  TargetPort = 80\n"
                         "  PublishMode = ingress \n\n");
  json_decref(s);
}

TEST(cli_container_ps_rows) {
  json_t *list =
      J("[{\"Id\":\"0c24fd5a778c1111\",\"Names\":[\"/web.1.exh5xo7atgyu\"],"
        "\"Image\":\"nginx:latest@sha256:652e\",\"Command\":\"nginx -g "
        "'daemon off;'\",\"Created\":1767225657,\"Status\":\"Up 3 seconds\","
        "\"Ports\":[{\"PrivatePort\":80,\"Type\":\"tcp\"}]},"
        "{\"Id\":\"b627132d559d2222\",\"Names\":[\"/bb.1.3k8b\"],\"Image\":"
        "\"sha256:29b45a8a64ab2334d5\",\"Command\":\"sleep \\\"1000\\\"\","
        "\"Created\":1767225540,\"Status\":\"Exited (0) 1 second ago\","
        "\"Ports\":[{\"IP\":\"0.0.0.0\",\"PrivatePort\":80,\"PublicPort\":"
        "8080,\"Type\":\"tcp\"}]}]");
  cleanup_buf sh_buf out = {0};
  sh_err err = {0};
  CHECK_INT_EQ(
      render_container_list(list, true, false, NULL, SVC_NOW, &out, &err), 0);
  CHECK_STR_EQ(
      out.data,
      "CONTAINER ID   IMAGE          COMMAND                  CREATED    "
      "     STATUS                    PORTS                  NAMES\n"
      "0c24fd5a778c   nginx:latest   \"nginx -g 'daemon of…\"   3 seconds"
      " ago   Up 3 seconds              80/tcp                 web.1.exh5"
      "xo7atgyu\n"
      "b627132d559d   29b45a8a64ab   \"sleep \\\"1000\\\"\"         2 min"
      "utes ago   Exited (0) 1 second ago   0.0.0.0:8080->80/tcp   bb.1.3"
      "k8b\n");
  cleanup_buf sh_buf q = {0};
  CHECK_INT_EQ(render_container_list(list, true, true, NULL, SVC_NOW, &q, &err),
               0);
  CHECK_STR_EQ(q.data, "0c24fd5a778c\nb627132d559d\n");
  json_decref(list);
}

TEST(cli_service_progress_lines_non_tty) {
  json_t *svc = J("{\"ID\":\"s1\",\"Spec\":{\"Mode\":{\"Replicated\":{"
                  "\"Replicas\":2}}}}");
  json_t *active = J("{\"n1\":true}");
  json_t *t0 = J("[{\"Slot\":1,\"NodeID\":\"n1\",\"DesiredState\":"
                 "\"running\",\"Status\":{\"State\":\"preparing\"}}]");
  struct svc_progress p = {0};
  struct svc_display d0 = {.tty = false, .width = 200};
  cleanup_buf sh_buf a = {0};
  CHECK_INT_EQ(svc_progress_update(&p, svc, t0, active, false, &d0, &a), 0);
  CHECK_STR_EQ(a.data, "overall progress: 0 out of 2 tasks\n1/2:  \n2/2:  \n"
                       "overall progress: 0 out of 2 tasks\n");
  /* errors are shown per slot; the progress bars are not */
  json_t *t1 = J("[{\"Slot\":1,\"NodeID\":\"n1\",\"DesiredState\":"
                 "\"running\",\"Status\":{\"State\":\"running\"}},"
                 "{\"Slot\":2,\"NodeID\":\"n1\",\"DesiredState\":\"running\","
                 "\"Status\":{\"State\":\"rejected\",\"Err\":\"no suitable "
                 "node\"}}]");
  cleanup_buf sh_buf b = {0};
  CHECK_INT_EQ(svc_progress_update(&p, svc, t1, active, false, &d0, &b), 0);
  CHECK(strstr(b.data, ": no suitable node\n") != NULL);
  CHECK(strstr(b.data, "overall progress: 1 out of 2 tasks\n") != NULL);
  json_t *t2 = J("[{\"Slot\":1,\"NodeID\":\"n1\",\"DesiredState\":"
                 "\"running\",\"Status\":{\"State\":\"running\"}},"
                 "{\"Slot\":2,\"NodeID\":\"n1\",\"DesiredState\":\"running\","
                 "\"Status\":{\"State\":\"running\"}}]");
  cleanup_buf sh_buf c = {0};
  CHECK_INT_EQ(svc_progress_update(&p, svc, t2, active, false, &d0, &c), 1);
  CHECK_STR_EQ(c.data, "overall progress: 2 out of 2 tasks\n");
  /* once done, nothing more is printed while everything runs */
  cleanup_buf sh_buf d = {0};
  CHECK_INT_EQ(svc_progress_update(&p, svc, t2, active, false, &d0, &d), 1);
  CHECK(d.len == 0);
  json_decref(svc);
  json_decref(active);
  json_decref(t0);
  json_decref(t1);
  json_decref(t2);
}
