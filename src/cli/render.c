#include "cli/render.h"

#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "cli/client.h"
#include "cli/template.h"
#include "cli/text.h"
#include "core/err.h"
#include "core/jsonx.h"

#ifndef SHOAL_VERSION
#define SHOAL_VERSION "0.1.0"
#endif
#ifndef SHOAL_GIT_COMMIT
#define SHOAL_GIT_COMMIT "unknown"
#endif

/* docker's table writer settings (formatter.Context.postFormat). */
#define TABLE_MINWIDTH 10
#define TABLE_TABWIDTH 1
#define TABLE_PADDING 3

static const char *s_(const json_t *j, const char *path) {
  return jx_str(j, path, "");
}
static const char *b_(const json_t *j, const char *path) {
  return jx_bool(j, path, false) ? "true" : "false";
}
static long long i_(const json_t *j, const char *path) {
  return (long long)jx_int(j, path, 0);
}

char *render_prepare_format(const char *format, bool *is_table) {
  const char *f = format ? format : "";
  *is_table = false;
  if (str_has_prefix(f, "table")) {
    *is_table = true;
    f += strlen("table");
  } else if (strcmp(f, "json") == 0) {
    f = "{{json .}}";
  }
  while (*f == ' ')
    f++;
  size_t len = strlen(f);
  while (len && f[len - 1] == ' ')
    len--;
  sh_buf b = {0};
  for (size_t i = 0; i < len; i++) {
    if (f[i] == '\\' && i + 1 < len && (f[i + 1] == 't' || f[i + 1] == 'n')) {
      buf_append(&b, f[i + 1] == 't' ? "\t" : "\n", 1);
      i++;
    } else {
      buf_append(&b, &f[i], 1);
    }
  }
  return b.data ? b.data : xstrdup("");
}

/* ---- node ls ----------------------------------------------------------- */

#define NODE_TABLE_FORMAT                                                      \
  "table {{.ID}} {{if .Self}}*{{else}} {{ end "                                \
  "}}\\t{{.Hostname}}\\t{{.Status}}"                                           \
  "\\t{{.Availability}}\\t{{.ManagerStatus}}\\t{{.EngineVersion}}"
#define NODE_RAW_FORMAT                                                        \
  "node_id: {{.ID}}\\nhostname: {{.Hostname}}\\nstatus: {{.Status}}\\n"        \
  "availability: {{.Availability}}\\nmanager_status: {{.ManagerStatus}}\\n"

/* Go's reflect.DeepEqual(tls, swarm.TLSInfo{}): a byte field decoded from
 * "" is an empty, non-nil slice, so only absent/null fields are zero. */
static bool tls_is_zero(const json_t *t) {
  if (!json_is_object(t))
    return true;
  const json_t *s = json_object_get(t, "CertIssuerSubject");
  const json_t *k = json_object_get(t, "CertIssuerPublicKey");
  return s_(t, "TrustRoot")[0] == '\0' && (!s || json_is_null(s)) &&
         (!k || json_is_null(k));
}

static bool tls_equal(const json_t *a, const json_t *b) {
  static const char *const keys[] = {"TrustRoot", "CertIssuerSubject",
                                     "CertIssuerPublicKey"};
  for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
    const json_t *x = json_object_get(a, keys[i]);
    const json_t *y = json_object_get(b, keys[i]);
    bool xn = !x || json_is_null(x), yn = !y || json_is_null(y);
    if (xn != yn || (!xn && !json_equal(x, y)))
      return false;
  }
  return true;
}

json_t *render_node_context(const json_t *node, const json_t *info) {
  const char *self_id = info ? s_(info, "Swarm.NodeID") : "";
  const char *id = s_(node, "ID");
  cleanup_free char *status = text_pretty(s_(node, "Status.State"));
  cleanup_free char *avail = text_pretty(s_(node, "Spec.Availability"));
  const json_t *ms = jx_get(node, "ManagerStatus");
  const char *reach = "";
  if (json_is_object(ms))
    reach = jx_bool(ms, "Leader", false) ? "Leader" : s_(ms, "Reachability");
  cleanup_free char *mstatus = text_pretty(reach);
  const json_t *ctls = info ? jx_get(info, "Swarm.Cluster.TLSInfo") : NULL;
  const json_t *ntls = jx_get(node, "Description.TLSInfo");
  const char *tls = "Unknown";
  if (info && json_is_object(jx_get(info, "Swarm.Cluster")) &&
      !tls_is_zero(ctls) && !tls_is_zero(ntls))
    tls = tls_equal(ntls, ctls) ? "Ready" : "Needs Rotation";
  return json_pack(
      "{s:s, s:b, s:s, s:s, s:s, s:s, s:s, s:s}", "ID", id, "Self",
      self_id[0] && strcmp(id, self_id) == 0, "Hostname",
      s_(node, "Description.Hostname"), "Status", status, "Availability", avail,
      "ManagerStatus", mstatus, "EngineVersion",
      s_(node, "Description.Engine.EngineVersion"), "TLSStatus", tls);
}

struct sort_item {
  const json_t *node;
  size_t idx;
};

static int cmp_nodes(const void *a, const void *b) {
  const struct sort_item *x = a, *y = b;
  const char *hx = s_(x->node, "Description.Hostname");
  const char *hy = s_(y->node, "Description.Hostname");
  if (text_natural_less(hx, hy))
    return -1;
  if (text_natural_less(hy, hx))
    return 1;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

int render_node_list(const json_t *nodes, const json_t *info,
                     const char *format, bool quiet, sh_buf *out, sh_err *err) {
  const char *f = format && format[0] ? format : "table";
  if (strcmp(f, "table") == 0)
    f = quiet ? "{{.ID}}" : NODE_TABLE_FORMAT;
  else if (strcmp(f, "raw") == 0)
    f = quiet ? "node_id: {{.ID}}" : NODE_RAW_FORMAT;
  bool table = false;
  cleanup_free char *tf = render_prepare_format(f, &table);
  struct cli_tmpl *t = NULL;
  if (cli_tmpl_parse(tf, &t, err) < 0)
    return sh_err_wrap(err, "template parsing error");

  size_t n = json_is_array(nodes) ? json_array_size(nodes) : 0;
  struct sort_item *items = xcalloc(n ? n : 1, sizeof *items);
  for (size_t i = 0; i < n; i++)
    items[i] = (struct sort_item){json_array_get(nodes, i), i};
  qsort(items, n, sizeof *items, cmp_nodes);

  sh_buf rows = {0};
  int ret = 0;
  for (size_t i = 0; i < n && ret == 0; i++) {
    json_t *ctx = render_node_context(items[i].node, info);
    ret = cli_tmpl_exec(t, ctx, false, true, &rows, err);
    json_decref(ctx);
    buf_append(&rows, "\n", 1);
  }
  if (ret < 0) {
    sh_err_wrap(err, "template parsing error");
  } else if (table) {
    json_t *hdr = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "ID",
                            "ID", "Self", "", "Hostname", "HOSTNAME", "Status",
                            "STATUS", "Availability", "AVAILABILITY",
                            "ManagerStatus", "MANAGER STATUS", "EngineVersion",
                            "ENGINE VERSION", "TLSStatus", "TLS STATUS");
    tabwriter tw;
    tabwriter_init(&tw, TABLE_MINWIDTH, TABLE_TABWIDTH, TABLE_PADDING);
    sh_buf h = {0};
    cli_tmpl_exec(t, hdr, false, true, &h, NULL);
    tabwriter_write(&tw, h.data ? h.data : "", h.len);
    tabwriter_write(&tw, "\n", 1);
    tabwriter_write(&tw, rows.data ? rows.data : "", rows.len);
    tabwriter_flush(&tw, out);
    tabwriter_free(&tw);
    buf_free(&h);
    json_decref(hdr);
  } else {
    buf_append(out, rows.data ? rows.data : "", rows.len);
  }
  buf_free(&rows);
  free(items);
  cli_tmpl_free(t);
  return ret;
}

/* ---- node inspect ------------------------------------------------------- */

static int cmp_cstr(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Lines " - k=v" (or " - k") in sorted key order, as a template ranging
 * over a Go map prints them. */
static void labels_lines(const json_t *labels, sh_buf *out) {
  size_t n = json_object_size(labels), k = 0;
  const char **keys = xcalloc(n ? n : 1, sizeof *keys);
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)labels, key, v) keys[k++] = key;
  qsort(keys, n, sizeof *keys, cmp_cstr);
  for (size_t i = 0; i < n; i++) {
    const char *val = json_string_value(json_object_get(labels, keys[i]));
    if (val && val[0])
      buf_printf(out, "\n - %s=%s", keys[i], val);
    else
      buf_printf(out, "\n - %s", keys[i]);
  }
  free(keys);
}

void render_node_pretty(const json_t *node, sh_buf *out) {
  char tbuf[128], sbuf[64];
  buf_printf(out, "ID:\t\t\t%s", s_(node, "ID"));
  if (s_(node, "Spec.Name")[0])
    buf_printf(out, "\nName:\t\t\t%s", s_(node, "Spec.Name"));
  const json_t *labels = jx_get(node, "Spec.Labels");
  if (json_is_object(labels) && json_object_size(labels)) {
    buf_printf(out, "\nLabels:");
    labels_lines(labels, out);
  }
  buf_printf(out, "\nHostname:              \t%s",
             s_(node, "Description.Hostname"));
  cleanup_free char *joined =
      text_pretty(text_go_time(s_(node, "CreatedAt"), tbuf, sizeof tbuf));
  buf_printf(out, "\nJoined at:             \t%s", joined);
  cleanup_free char *state = text_pretty(s_(node, "Status.State"));
  buf_printf(out, "\nStatus:\n State:\t\t\t%s", state);
  if (s_(node, "Status.Message")[0]) {
    cleanup_free char *m = text_pretty(s_(node, "Status.Message"));
    buf_printf(out, "\n Message:              \t%s", m);
  }
  cleanup_free char *avail = text_pretty(s_(node, "Spec.Availability"));
  buf_printf(out, "\n Availability:         \t%s", avail);
  if (s_(node, "Status.Addr")[0])
    buf_printf(out, "\n Address:\t\t%s", s_(node, "Status.Addr"));
  const json_t *ms = jx_get(node, "ManagerStatus");
  if (json_is_object(ms)) {
    cleanup_free char *r = text_pretty(s_(ms, "Reachability"));
    buf_printf(out, "\nManager Status:\n Address:\t\t%s\n Raft Status:\t\t%s",
               s_(ms, "Addr"), r);
    buf_printf(out, "\n Leader:\t\t%s",
               jx_bool(ms, "Leader", false) ? "Yes" : "No");
  }
  buf_printf(out, "\nPlatform:\n Operating System:\t%s\n Architecture:\t\t%s",
             s_(node, "Description.Platform.OS"),
             s_(node, "Description.Platform.Architecture"));
  int64_t nano = jx_int(node, "Description.Resources.NanoCPUs", 0);
  int64_t mem = jx_int(node, "Description.Resources.MemoryBytes", 0);
  buf_printf(out, "\nResources:\n CPUs:\t\t\t%lld\n Memory:\t\t%s",
             (long long)(nano / 1000000000),
             mem ? units_bytes_size((double)mem, sbuf, sizeof sbuf) : "");
  const json_t *plugins = jx_get(node, "Description.Engine.Plugins");
  if (json_is_array(plugins) && json_array_size(plugins)) {
    /* names joined per type, types in sorted order */
    json_t *by_type = json_object();
    size_t i;
    json_t *p;
    json_array_foreach(plugins, i, p) {
      const char *type = s_(p, "Type");
      json_t *list = json_object_get(by_type, type);
      if (!list) {
        list = json_array();
        json_object_set_new(by_type, type, list);
      }
      json_array_append_new(list, json_string(s_(p, "Name")));
    }
    size_t nt = json_object_size(by_type), k = 0;
    const char **types = xcalloc(nt ? nt : 1, sizeof *types);
    const char *key;
    json_t *v;
    json_object_foreach(by_type, key, v) types[k++] = key;
    qsort(types, nt, sizeof *types, cmp_cstr);
    buf_printf(out, "\nPlugins:");
    for (k = 0; k < nt; k++) {
      sh_buf names = {0};
      json_t *list = json_object_get(by_type, types[k]);
      json_array_foreach(list, i, v)
          buf_printf(&names, "%s%s", i ? ", " : "", json_string_value(v));
      buf_printf(out, "\n %s:", types[k]);
      if (names.len)
        buf_printf(out, "\t\t%s", names.data);
      buf_free(&names);
    }
    free(types);
    json_decref(by_type);
  }
  buf_printf(out, "\nEngine Version:\t\t%s",
             s_(node, "Description.Engine.EngineVersion"));
  const json_t *elabels = jx_get(node, "Description.Engine.Labels");
  if (json_is_object(elabels) && json_object_size(elabels)) {
    buf_printf(out, "\nEngine Labels:");
    labels_lines(elabels, out);
  }
  const json_t *tls = jx_get(node, "Description.TLSInfo");
  if (!tls_is_zero(tls)) {
    buf_printf(out,
               "\nTLS Info:\n TrustRoot:\n%s\n Issuer Subject:\t%s\n Issuer "
               "Public Key:\t%s",
               s_(tls, "TrustRoot"), s_(tls, "CertIssuerSubject"),
               s_(tls, "CertIssuerPublicKey"));
  }
  buf_printf(out, "\n");
}

int render_inspect(const char *const *raws, const size_t *lens, size_t n,
                   const char *format, sh_buf *out, sh_err *err) {
  const char *f = format ? format : "";
  if (f[0] == '\0' || strcmp(f, "json") == 0) {
    if (n == 0) {
      buf_printf(out, "[]\n");
      return 0;
    }
    sh_buf arr = {0};
    buf_append(&arr, "[", 1);
    for (size_t i = 0; i < n; i++) {
      if (i)
        buf_append(&arr, ",", 1);
      buf_append(&arr, raws[i], lens[i]);
    }
    buf_append(&arr, "]", 1);
    int ret;
    if (f[0] == '\0') {
      ret = text_json_indent(arr.data, arr.len, "    ", out, err);
    } else {
      json_error_t je;
      json_t *j = json_loadb(arr.data, arr.len, 0, &je);
      ret =
          j ? 0 : sh_error(err, CLI_ESTATUS_LOCAL, "invalid JSON: %s", je.text);
      if (j) {
        /* json.Compact keeps the daemon's key order */
        cleanup_free char *s =
            jx_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER, NULL);
        buf_printf(out, "%s", s);
        json_decref(j);
      }
    }
    buf_free(&arr);
    if (ret == 0)
      buf_printf(out, "\n");
    return ret;
  }
  struct cli_tmpl *t = NULL;
  if (cli_tmpl_parse(f, &t, err) < 0) {
    sh_err_wrap(err, "template parsing error");
    err->status = 64;
    return -1;
  }
  sh_buf tmp = {0};
  int ret = 0;
  for (size_t i = 0; i < n && ret == 0; i++) {
    json_error_t je;
    json_t *j = json_loadb(raws[i], lens[i], JSON_DECODE_ANY, &je);
    if (!j) {
      ret = sh_error(err, CLI_ESTATUS_LOCAL, "unable to read inspect data: %s",
                     je.text);
      break;
    }
    ret = cli_tmpl_exec(t, j, true, true, &tmp, err);
    if (ret < 0)
      sh_err_wrap(err, "template parsing error");
    else
      buf_append(&tmp, "\n", 1);
    json_decref(j);
  }
  /* like docker's Flush: what rendered is printed even after an error */
  if (tmp.len)
    buf_append(out, tmp.data, tmp.len);
  else
    buf_append(out, "\n", 1);
  buf_free(&tmp);
  cli_tmpl_free(t);
  return ret;
}

/* ---- info ---------------------------------------------------------------- */

void render_info_client(const json_t *client, bool debug, sh_buf *out) {
  buf_printf(out, "Client:\n");
  if (s_(client, "Version")[0])
    buf_printf(out, " Version:    %s\n", s_(client, "Version"));
  buf_printf(out, " Context:    %s\n", s_(client, "Context"));
  buf_printf(out, " Debug Mode: %s\n", debug ? "true" : "false");
}

static void nonempty(sh_buf *out, const char *label, const char *v) {
  if (v && v[0])
    buf_printf(out, "%s %s\n", label, v);
}

static void join_strings(const json_t *arr, const char *sep, sh_buf *out) {
  size_t i;
  json_t *v;
  json_array_foreach(arr, i, v) buf_printf(
      out, "%s%s", i ? sep : "", json_is_string(v) ? json_string_value(v) : "");
}

void render_swarm_info(const json_t *info, sh_buf *out) {
  const json_t *sw = jx_get(info, "Swarm");
  const char *state = s_(sw, "LocalNodeState");
  if (strcmp(state, "inactive") == 0 || strcmp(state, "locked") == 0)
    return;
  char dbuf[64];
  buf_printf(out, "  NodeID: %s\n", s_(sw, "NodeID"));
  const char *error = s_(sw, "Error");
  if (error[0])
    buf_printf(out, "  Error: %s\n", error);
  bool manager = jx_bool(sw, "ControlAvailable", false);
  buf_printf(out, "  Is Manager: %s\n", manager ? "true" : "false");
  const json_t *cl = jx_get(sw, "Cluster");
  if (json_is_object(cl) && manager && !error[0] &&
      strcmp(state, "error") != 0) {
    buf_printf(out, "  ClusterID: %s\n", s_(cl, "ID"));
    buf_printf(out, "  Managers: %lld\n", i_(sw, "Managers"));
    buf_printf(out, "  Nodes: %lld\n", i_(sw, "Nodes"));
    const json_t *pool = json_object_get(cl, "DefaultAddrPool");
    if (json_is_array(pool)) {
      buf_printf(out, "  Default Address Pool: ");
      size_t i;
      json_t *p;
      json_array_foreach(pool, i, p) buf_printf(
          out, "%s  ", json_string_value(p) ? json_string_value(p) : "");
      buf_printf(out, "\n  SubnetSize: %lld\n", i_(cl, "SubnetSize"));
    }
    if (i_(cl, "DataPathPort") > 0)
      buf_printf(out, "  Data Path Port: %lld\n", i_(cl, "DataPathPort"));
    buf_printf(out, "  Orchestration:\n   Task History Retention Limit: %lld\n",
               i_(cl, "Spec.Orchestration.TaskHistoryRetentionLimit"));
    buf_printf(out, "  Raft:\n   Snapshot Interval: %lld\n",
               i_(cl, "Spec.Raft.SnapshotInterval"));
    const json_t *keep = jx_get(cl, "Spec.Raft.KeepOldSnapshots");
    if (json_is_integer(keep))
      buf_printf(out, "   Number of Old Snapshots to Retain: %lld\n",
                 (long long)json_integer_value(keep));
    buf_printf(out, "   Heartbeat Tick: %lld\n   Election Tick: %lld\n",
               i_(cl, "Spec.Raft.HeartbeatTick"),
               i_(cl, "Spec.Raft.ElectionTick"));
    buf_printf(
        out, "  Dispatcher:\n   Heartbeat Period: %s\n",
        units_human_duration(jx_int(cl, "Spec.Dispatcher.HeartbeatPeriod", 0),
                             dbuf, sizeof dbuf));
    buf_printf(
        out, "  CA Configuration:\n   Expiry Duration: %s\n",
        units_human_duration(jx_int(cl, "Spec.CAConfig.NodeCertExpiry", 0),
                             dbuf, sizeof dbuf));
    buf_printf(out, "   Force Rotate: %lld\n",
               i_(cl, "Spec.CAConfig.ForceRotate"));
    const char *signing = s_(cl, "Spec.CAConfig.SigningCACert");
    size_t sl = strlen(signing);
    while (sl && strchr(" \t\r\n", signing[sl - 1]))
      sl--;
    while (sl && strchr(" \t\r\n", *signing))
      signing++, sl--;
    if (sl)
      buf_printf(out, "   Signing CA Certificate: \n%.*s\n\n", (int)sl,
                 signing);
    const json_t *ext = jx_get(cl, "Spec.CAConfig.ExternalCAs");
    if (json_is_array(ext) && json_array_size(ext)) {
      buf_printf(out, "   External CAs:\n");
      size_t i;
      json_t *e;
      json_array_foreach(ext, i, e)
          buf_printf(out, "     %s: %s\n", s_(e, "Protocol"), s_(e, "URL"));
    }
    buf_printf(out, "  Autolock Managers: %s\n",
               b_(cl, "Spec.EncryptionConfig.AutoLockManagers"));
    buf_printf(out, "  Root Rotation In Progress: %s\n",
               b_(cl, "RootRotationInProgress"));
  }
  buf_printf(out, "  Node Address: %s\n", s_(sw, "NodeAddr"));
  const json_t *rm = jx_get(sw, "RemoteManagers");
  if (json_is_array(rm) && json_array_size(rm)) {
    size_t n = json_array_size(rm);
    const char **addrs = xcalloc(n, sizeof *addrs);
    for (size_t i = 0; i < n; i++)
      addrs[i] = s_(json_array_get(rm, i), "Addr");
    qsort(addrs, n, sizeof *addrs, cmp_cstr);
    buf_printf(out, "  Manager Addresses:\n");
    for (size_t i = 0; i < n; i++)
      buf_printf(out, "   %s\n", addrs[i]);
    free(addrs);
  }
}

/* "name=seccomp,profile=builtin" entries (and the legacy bare names). */
static int security_options(const json_t *opts, sh_buf *out) {
  sh_buf tmp = {0};
  size_t i;
  json_t *o;
  json_array_foreach(opts, i, o) {
    const char *s = json_string_value(o);
    if (!s)
      continue;
    if (!strchr(s, '=')) {
      buf_printf(&tmp, "  %s\n", s);
      continue;
    }
    cleanup_free char *copy = xstrdup(s);
    const char *name = NULL, *profile = NULL;
    char *save = NULL;
    for (char *kv = strtok_r(copy, ",", &save); kv;
         kv = strtok_r(NULL, ",", &save)) {
      char *eq = strchr(kv, '=');
      if (!eq) {
        buf_free(&tmp);
        return -1;
      }
      *eq = '\0';
      if (strcmp(kv, "name") == 0)
        name = eq + 1;
      else if (strcmp(kv, "profile") == 0)
        profile = eq + 1;
    }
    buf_printf(&tmp, "  %s\n", name ? name : "");
    if (profile)
      buf_printf(&tmp, "   Profile: %s\n", profile);
  }
  buf_printf(out, " Security Options:\n%s", tmp.data ? tmp.data : "");
  buf_free(&tmp);
  return 0;
}

int render_info_server(const json_t *info, bool client_debug, sh_buf *out,
                       sh_buf *errout) {
  int errs = 0;
  char sbuf[64];
  buf_printf(out, " Containers: %lld\n", i_(info, "Containers"));
  buf_printf(out, "  Running: %lld\n", i_(info, "ContainersRunning"));
  buf_printf(out, "  Paused: %lld\n", i_(info, "ContainersPaused"));
  buf_printf(out, "  Stopped: %lld\n", i_(info, "ContainersStopped"));
  buf_printf(out, " Images: %lld\n", i_(info, "Images"));
  nonempty(out, " Server Version:", s_(info, "ServerVersion"));
  nonempty(out, " Storage Driver:", s_(info, "Driver"));
  static const char *const pairs[] = {"DriverStatus", "SystemStatus"};
  for (size_t k = 0; k < 2; k++) {
    const json_t *arr = jx_get(info, pairs[k]);
    size_t i;
    json_t *p;
    json_array_foreach(arr, i, p)
        buf_printf(out, "%s%s: %s\n", k == 0 ? "  " : " ",
                   json_string_value(json_array_get(p, 0))
                       ? json_string_value(json_array_get(p, 0))
                       : "",
                   json_string_value(json_array_get(p, 1))
                       ? json_string_value(json_array_get(p, 1))
                       : "");
  }
  nonempty(out, " Logging Driver:", s_(info, "LoggingDriver"));
  nonempty(out, " Cgroup Driver:", s_(info, "CgroupDriver"));
  nonempty(out, " Cgroup Version:", s_(info, "CgroupVersion"));
  buf_printf(out, " Plugins:\n  Volume: ");
  join_strings(jx_get(info, "Plugins.Volume"), " ", out);
  buf_printf(out, "\n  Network: ");
  join_strings(jx_get(info, "Plugins.Network"), " ", out);
  buf_printf(out, "\n");
  const json_t *authz = jx_get(info, "Plugins.Authorization");
  if (json_array_size(authz)) {
    buf_printf(out, "  Authorization: ");
    join_strings(authz, " ", out);
    buf_printf(out, "\n");
  }
  buf_printf(out, "  Log: ");
  join_strings(jx_get(info, "Plugins.Log"), " ", out);
  buf_printf(out, "\n");
  const json_t *cdi = jx_get(info, "CDISpecDirs");
  if (json_array_size(cdi)) {
    buf_printf(out, " CDI spec directories:\n");
    size_t i;
    json_t *d;
    json_array_foreach(cdi, i, d) buf_printf(
        out, "  %s\n", json_string_value(d) ? json_string_value(d) : "");
  }
  buf_printf(out, " Swarm: %s\n", s_(info, "Swarm.LocalNodeState"));
  render_swarm_info(info, out);
  const json_t *rt = jx_get(info, "Runtimes");
  if (json_is_object(rt) && json_object_size(rt)) {
    size_t n = json_object_size(rt), k = 0;
    const char **names = xcalloc(n, sizeof *names);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)rt, key, v) names[k++] = key;
    qsort(names, n, sizeof *names, cmp_cstr);
    buf_printf(out, " Runtimes:");
    for (k = 0; k < n; k++)
      buf_printf(out, " %s", names[k]);
    buf_printf(out, "\n Default Runtime: %s\n", s_(info, "DefaultRuntime"));
    free(names);
  }
  if (strcmp(s_(info, "OSType"), "linux") == 0) {
    buf_printf(out, " Init Binary: %s\n", s_(info, "InitBinary"));
    buf_printf(out, " containerd version: %s\n",
               s_(info, "ContainerdCommit.ID"));
    buf_printf(out, " runc version: %s\n", s_(info, "RuncCommit.ID"));
    buf_printf(out, " init version: %s\n", s_(info, "InitCommit.ID"));
    const json_t *so = jx_get(info, "SecurityOptions");
    if (json_array_size(so) && security_options(so, out) < 0) {
      buf_printf(errout, "ERROR: invalid security option\n");
      errs++;
    }
  }
  if (strcmp(s_(info, "OSType"), "windows") == 0)
    buf_printf(out, " Default Isolation: %s\n", s_(info, "Isolation"));
  nonempty(out, " Kernel Version:", s_(info, "KernelVersion"));
  nonempty(out, " Operating System:", s_(info, "OperatingSystem"));
  nonempty(out, " OSType:", s_(info, "OSType"));
  nonempty(out, " Architecture:", s_(info, "Architecture"));
  buf_printf(out, " CPUs: %lld\n", i_(info, "NCPU"));
  buf_printf(
      out, " Total Memory: %s\n",
      units_bytes_size((double)jx_int(info, "MemTotal", 0), sbuf, sizeof sbuf));
  nonempty(out, " Name:", s_(info, "Name"));
  nonempty(out, " ID:", s_(info, "ID"));
  buf_printf(out, " Docker Root Dir: %s\n", s_(info, "DockerRootDir"));
  bool debug = jx_bool(info, "Debug", false);
  buf_printf(out, " Debug Mode: %s\n", debug ? "true" : "false");
  if (debug || client_debug) {
    buf_printf(out, "  File Descriptors: %lld\n", i_(info, "NFd"));
    buf_printf(out, "  Goroutines: %lld\n", i_(info, "NGoroutines"));
    buf_printf(out, "  System Time: %s\n", s_(info, "SystemTime"));
    buf_printf(out, "  EventsListeners: %lld\n", i_(info, "NEventsListener"));
  }
  nonempty(out, " HTTP Proxy:", s_(info, "HttpProxy"));
  nonempty(out, " HTTPS Proxy:", s_(info, "HttpsProxy"));
  nonempty(out, " No Proxy:", s_(info, "NoProxy"));
  const json_t *labels = jx_get(info, "Labels");
  if (json_array_size(labels)) {
    buf_printf(out, " Labels:\n");
    size_t i;
    json_t *l;
    json_array_foreach(labels, i, l) buf_printf(
        out, "  %s\n", json_string_value(l) ? json_string_value(l) : "");
  }
  buf_printf(out, " Experimental: %s\n", b_(info, "ExperimentalBuild"));
  const json_t *rc = jx_get(info, "RegistryConfig");
  const json_t *cidrs = jx_get(rc, "InsecureRegistryCIDRs");
  const json_t *idx = jx_get(rc, "IndexConfigs");
  if (json_is_object(rc) && (json_array_size(cidrs) || json_object_size(idx))) {
    buf_printf(out, " Insecure Registries:\n");
    size_t n = json_object_size(idx), k = 0;
    const char **names = xcalloc(n ? n : 1, sizeof *names);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)idx, key, v) names[k++] = key;
    qsort(names, n, sizeof *names, cmp_cstr);
    for (k = 0; k < n; k++) {
      const json_t *ic = json_object_get(idx, names[k]);
      if (!jx_bool(ic, "Secure", false))
        buf_printf(out, "  %s\n", jx_str(ic, "Name", names[k]));
    }
    free(names);
    size_t i;
    json_array_foreach(cidrs, i, v) buf_printf(
        out, "  %s\n", json_string_value(v) ? json_string_value(v) : "");
  }
  const json_t *mirrors = jx_get(rc, "Mirrors");
  if (json_array_size(mirrors)) {
    buf_printf(out, " Registry Mirrors:\n");
    size_t i;
    json_t *m;
    json_array_foreach(mirrors, i, m) buf_printf(
        out, "  %s\n", json_string_value(m) ? json_string_value(m) : "");
  }
  buf_printf(out, " Live Restore Enabled: %s\n",
             b_(info, "LiveRestoreEnabled"));
  if (s_(info, "ProductLicense")[0])
    buf_printf(out, " Product License: %s\n", s_(info, "ProductLicense"));
  const json_t *pools = jx_get(info, "DefaultAddressPools");
  if (json_array_size(pools)) {
    buf_printf(out, " Default Address Pools:\n");
    size_t i;
    json_t *p;
    json_array_foreach(pools, i, p) buf_printf(out, "   Base: %s, Size: %lld\n",
                                               s_(p, "Base"), i_(p, "Size"));
  }
  buf_printf(out, "\n");
  const json_t *warnings = jx_get(info, "Warnings");
  size_t i;
  json_t *w;
  json_array_foreach(warnings, i, w) buf_printf(
      errout, "%s\n", json_string_value(w) ? json_string_value(w) : "");
  return errs;
}

/* ---- version ------------------------------------------------------------- */

static const char *go_arch(void) {
  static struct utsname u;
  if (uname(&u) < 0)
    return "unknown";
  if (strcmp(u.machine, "x86_64") == 0)
    return "amd64";
  if (strcmp(u.machine, "aarch64") == 0)
    return "arm64";
  return u.machine;
}

json_t *render_client_version(const char *api_version) {
  char rfc[40], built[64];
#ifdef SHOAL_BUILD_TIME
  /* The Makefile's build time (reproducible builds: no __DATE__). */
  snprintf(rfc, sizeof rfc, "%s", SHOAL_BUILD_TIME);
#else
  /* __DATE__ is "Mmm dd yyyy"; docker shows the build time in ANSIC. */
  static const char *const mo = "JanFebMarAprMayJunJulAugSepOctNovDec";
  char date[] = __DATE__;
  int day = atoi(date + 4), year = atoi(date + 7), mon = 1;
  for (int m = 0; m < 12; m++)
    if (strncmp(mo + 3 * m, date, 3) == 0)
      mon = m + 1;
  snprintf(rfc, sizeof rfc, "%04d-%02d-%02dT%sZ", year, mon, day, __TIME__);
#endif
  text_ansic_time(rfc, built, sizeof built);
  return json_pack(
      "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "Version", SHOAL_VERSION,
      "ApiVersion", api_version ? api_version : CLI_API_VERSION,
      "DefaultAPIVersion", CLI_API_VERSION, "GitCommit", SHOAL_GIT_COMMIT, "Os",
      "linux", "Arch", go_arch(), "BuildTime", built, "Context", "default");
}

static int cmp_keys(const void *a, const void *b) {
  return cmp_cstr(a, b);
}

void render_version(const json_t *client, const json_t *server, sh_buf *out) {
  tabwriter tw;
  tabwriter_init(&tw, 20, 1, 1);
  const char *api = s_(client, "ApiVersion");
  const char *dflt = s_(client, "DefaultAPIVersion");
  tabwriter_printf(&tw, "Client:\n Version:\t%s\n API version:\t%s",
                   s_(client, "Version"), api);
  if (strcmp(api, dflt) != 0)
    tabwriter_printf(&tw, " (downgraded from %s)", dflt);
  tabwriter_printf(&tw,
                   "\n Git commit:\t%s\n Built:\t%s\n OS/Arch:\t%s/%s\n "
                   "Context:\t%s",
                   s_(client, "GitCommit"), s_(client, "BuildTime"),
                   s_(client, "Os"), s_(client, "Arch"), s_(client, "Context"));
  if (server) {
    char bt[96];
    const char *pname = s_(server, "Platform.Name");
    tabwriter_printf(&tw, "\n\nServer:%s%s", pname[0] ? " " : "", pname);
    const json_t *comps = jx_get(server, "Components");
    bool engine = false;
    size_t i;
    json_t *c;
    json_array_foreach(comps, i, c) {
      const char *name = s_(c, "Name");
      const json_t *d = jx_get(c, "Details");
      tabwriter_printf(&tw, "\n %s:", name);
      if (strcmp(name, "Engine") == 0) {
        engine = true;
        tabwriter_printf(
            &tw,
            "\n  Version:\t%s\n  API version:\t%s (minimum version %s)\n  Go "
            "version:\t%s\n  Git commit:\t%s\n  Built:\t%s\n  "
            "OS/Arch:\t%s/%s\n "
            " Experimental:\t%s",
            s_(c, "Version"), s_(d, "ApiVersion"), s_(d, "MinAPIVersion"),
            s_(d, "GoVersion"), s_(d, "GitCommit"),
            text_ansic_time(s_(d, "BuildTime"), bt, sizeof bt), s_(d, "Os"),
            s_(d, "Arch"), s_(d, "Experimental"));
      } else {
        tabwriter_printf(&tw, "\n  Version:\t%s", s_(c, "Version"));
        size_t n = json_object_size(d), k = 0;
        const char **keys = xcalloc(n ? n : 1, sizeof *keys);
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)d, key, v) keys[k++] = key;
        qsort(keys, n, sizeof *keys, cmp_keys);
        for (k = 0; k < n; k++)
          tabwriter_printf(&tw, "\n  %s:\t%s", keys[k], s_(d, keys[k]));
        free(keys);
      }
    }
    if (!engine) {
      tabwriter_printf(
          &tw,
          "\n Engine:\n  Version:\t%s\n  API version:\t%s (minimum version "
          "%s)\n  Go version:\t%s\n  Git commit:\t%s\n  Built:\t%s\n  "
          "OS/Arch:\t%s/%s\n  Experimental:\t%s",
          s_(server, "Version"), s_(server, "ApiVersion"),
          s_(server, "MinAPIVersion"), s_(server, "GoVersion"),
          s_(server, "GitCommit"),
          text_ansic_time(s_(server, "BuildTime"), bt, sizeof bt),
          s_(server, "Os"), s_(server, "Arch"), b_(server, "Experimental"));
    }
  }
  tabwriter_puts(&tw, "\n");
  tabwriter_flush(&tw, out);
  tabwriter_free(&tw);
}

/* ---- swarm messages ------------------------------------------------------ */

void render_join_command(const char *prog, const char *token, const char *addr,
                         bool manager, sh_buf *out) {
  buf_printf(out,
             "To add a %s to this swarm, run the following command:\n\n    %s "
             "swarm join --token %s %s\n\n",
             manager ? "manager" : "worker", prog, token, addr);
}

void render_unlock_command(const char *prog, const char *key, sh_buf *out) {
  if (!key || !key[0])
    return;
  buf_printf(out,
             "To unlock a swarm manager after it restarts, run the `%s swarm "
             "unlock`\ncommand and provide the following key:\n\n    %s\n\n"
             "Remember to store this key in a password manager, since without "
             "it you\nwill not be able to restart the manager.\n",
             prog, key);
}
