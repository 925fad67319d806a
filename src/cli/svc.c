#include "cli/svc.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/render.h"
#include "cli/template.h"
#include "cli/text.h"
#include "core/err.h"
#include "core/jsonx.h"

#define TABLE_MINWIDTH 10
#define TABLE_TABWIDTH 1
#define TABLE_PADDING 3

static const char *s_(const json_t *j, const char *path) {
  return jx_str(j, path, "");
}

/* one key, dots and all (jx_str would read "com.label" as a path) */
static const char *kstr(const json_t *obj, const char *key, const char *dflt) {
  const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
  return json_is_string(v) ? json_string_value(v) : dflt;
}

/* ---- small Go-isms --------------------------------------------------------
 */

int64_t svc_parse_time(const char *s) {
  int y, mo, d, h, mi, se, used = 0;
  if (!s ||
      sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &se,
             &used) != 6 ||
      used != 19)
    return -1;
  const char *p = s + used;
  int64_t frac = 0, scale = 100000000;
  if (*p == '.') {
    for (p++; isdigit((unsigned char)*p); p++) {
      frac += (*p - '0') * scale;
      scale /= 10;
    }
  }
  int off = 0;
  if (*p == '+' || *p == '-') {
    int oh = 0, om = 0;
    if (sscanf(p + 1, "%2d:%2d", &oh, &om) != 2)
      return -1;
    off = (oh * 60 + om) * 60 * (*p == '-' ? -1 : 1);
  } else if (*p != 'Z') {
    return -1;
  }
  struct tm tm = {.tm_year = y - 1900,
                  .tm_mon = mo - 1,
                  .tm_mday = d,
                  .tm_hour = h,
                  .tm_min = mi,
                  .tm_sec = se};
  int64_t secs = (int64_t)timegm(&tm) - off;
  return secs * INT64_C(1000000000) + frac;
}

/* Go's fmtFrac/fmtInt trimming for Duration.String. */
static void dur_part(sh_buf *b, int64_t v, int64_t unit, const char *suffix) {
  int64_t whole = v / unit, frac = v % unit;
  buf_printf(b, "%lld", (long long)whole);
  if (frac) {
    char digits[32];
    int w = 0;
    for (int64_t u = unit; u > 1; u /= 10)
      w++;
    snprintf(digits, sizeof digits, "%0*lld", w, (long long)frac);
    size_t l = strlen(digits);
    while (l && digits[l - 1] == '0')
      digits[--l] = '\0';
    buf_printf(b, ".%s", digits);
  }
  buf_printf(b, "%s", suffix);
}

char *svc_go_duration(int64_t ns, char *out, size_t n) {
  sh_buf b = {0};
  uint64_t u = ns < 0 ? (uint64_t)(-ns) : (uint64_t)ns;
  if (ns < 0)
    buf_printf(&b, "-");
  if (u == 0) {
    buf_printf(&b, "0s");
  } else if (u < 1000) {
    buf_printf(&b, "%lluns", (unsigned long long)u);
  } else if (u < 1000000) {
    dur_part(&b, (int64_t)u, 1000, "µs");
  } else if (u < 1000000000) {
    dur_part(&b, (int64_t)u, 1000000, "ms");
  } else {
    int64_t h = (int64_t)(u / UINT64_C(3600000000000));
    int64_t rem = (int64_t)(u % UINT64_C(3600000000000));
    int64_t m = rem / INT64_C(60000000000);
    rem %= INT64_C(60000000000);
    if (h)
      buf_printf(&b, "%lldh%lldm", (long long)h, (long long)m);
    else if (m)
      buf_printf(&b, "%lldm", (long long)m);
    dur_part(&b, rem, 1000000000, "s");
  }
  snprintf(out, n, "%s", b.data);
  buf_free(&b);
  return out;
}

char *svc_image_display(const char *image) {
  const char *img = image ? image : "";
  const char *at = strchr(img, '@');
  size_t len = at ? (size_t)(at - img) : strlen(img);
  const char *slash = memrchr(img, '/', len);
  const char *name0 = slash ? slash + 1 : img;
  bool tagged = memchr(name0, ':', len - (size_t)(name0 - img)) != NULL;
  /* name@digest without a tag is shown as given */
  if (at && !tagged)
    return xstrdup(img);
  cleanup_free char *ref = xstrndup(img, len);
  const char *r = ref;
  if (str_has_prefix(r, "docker.io/library/"))
    r += strlen("docker.io/library/");
  else if (str_has_prefix(r, "docker.io/"))
    r += strlen("docker.io/");
  return xstrdup(r);
}

char *svc_ellipsis(const char *s, int width) {
  const char *p = s ? s : "";
  int w = 0;
  for (const char *q = p; *q; q++)
    if (((unsigned char)*q & 0xC0) != 0x80)
      w++;
  if (w <= width)
    return xstrdup(p);
  sh_buf b = {0};
  int kept = 0;
  for (const char *q = p; *q; q++) {
    if (((unsigned char)*q & 0xC0) != 0x80) {
      if (kept == width - 1)
        break;
      kept++;
    }
    buf_append(&b, q, 1);
  }
  buf_printf(&b, "…");
  return b.data;
}

static char *trunc_id(const char *id) {
  const char *p = strchr(id, ':');
  return xstrndup(p ? p + 1 : id, 12);
}

/* ---- Go struct key order ---------------------------------------------------
 */

/* "Key" or "Key:Type" (the type of an object value, or of array items) */
static const char *const go_types[][2] = {
    {"Service", "ID Version CreatedAt UpdatedAt Spec:ServiceSpec "
                "PreviousSpec:ServiceSpec Endpoint:Endpoint "
                "UpdateStatus:UpdateStatus ServiceStatus:ServiceStatus "
                "JobStatus"},
    {"ServiceSpec", "Name Labels TaskTemplate:TaskSpec Mode "
                    "UpdateConfig:UpdateConfig RollbackConfig:UpdateConfig "
                    "Networks EndpointSpec:EndpointSpec"},
    {"TaskSpec", "ContainerSpec:ContainerSpec PluginSpec "
                 "NetworkAttachmentSpec Resources:Resources "
                 "RestartPolicy:RestartPolicy Placement:Placement Networks "
                 "LogDriver ForceUpdate Runtime"},
    {"ContainerSpec",
     "Image Labels Command Args Hostname Env Dir User Groups Privileges Init "
     "StopSignal TTY OpenStdin ReadOnly Mounts StopGracePeriod Healthcheck "
     "Hosts DNSConfig Secrets Configs Isolation Sysctls CapabilityAdd "
     "CapabilityDrop Ulimits OomScoreAdj"},
    {"Resources", "Limits:Limit Reservations:Limit"},
    {"Limit", "NanoCPUs MemoryBytes Pids GenericResources"},
    {"RestartPolicy", "Condition Delay MaxAttempts Window"},
    {"Placement", "Constraints Preferences MaxReplicas Platforms:Platform"},
    {"Platform", "Architecture OS"},
    {"UpdateConfig",
     "Parallelism Delay FailureAction Monitor MaxFailureRatio Order"},
    {"EndpointSpec", "Mode Ports:PortConfig"},
    {"PortConfig", "Name Protocol TargetPort PublishedPort PublishMode"},
    {"Endpoint", "Spec:EndpointSpec Ports:PortConfig VirtualIPs"},
    {"UpdateStatus", "State StartedAt CompletedAt Message"},
    {"ServiceStatus", "RunningTasks DesiredTasks CompletedTasks"},
};

static json_t *go_order(const json_t *v, const char *type);

static json_t *go_order_value(const json_t *v, const char *type) {
  if (!type)
    return json_deep_copy(v);
  if (json_is_array(v)) {
    json_t *a = json_array();
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) json_array_append_new(a, go_order(x, type));
    return a;
  }
  return go_order(v, type);
}

static json_t *go_order(const json_t *v, const char *type) {
  const char *spec = NULL;
  for (size_t k = 0; k < ARRAY_SIZE(go_types); k++)
    if (strcmp(go_types[k][0], type) == 0)
      spec = go_types[k][1];
  if (!spec || !json_is_object(v))
    return json_deep_copy(v);
  json_t *out = json_object();
  cleanup_free char *copy = xstrdup(spec);
  char *save = NULL;
  for (char *tok = strtok_r(copy, " ", &save); tok;
       tok = strtok_r(NULL, " ", &save)) {
    char *colon = strchr(tok, ':');
    if (colon)
      *colon++ = '\0';
    const json_t *x = json_object_get(v, tok);
    if (x)
      json_object_set_new(out, tok, go_order_value(x, colon));
  }
  const char *key;
  json_t *x;
  json_object_foreach((json_t *)v, key, x) if (!json_object_get(out, key))
      json_object_set_new(out, key, json_deep_copy(x));
  return out;
}

json_t *svc_go_order_service(const json_t *service) {
  return go_order(service, "Service");
}

/* ---- tables ---------------------------------------------------------------
 */

/* Renders rows (template contexts) with docker's formatter rules; hdr holds
 * the column titles for the table form. */
static int render_rows(const char *format, const char *table_default,
                       const char *quiet_format, bool quiet, json_t *rows,
                       json_t *hdr, sh_buf *out, sh_err *err) {
  const char *f = format && format[0] ? format : "table";
  if (strcmp(f, "table") == 0)
    f = quiet ? quiet_format : table_default;
  bool table = false;
  cleanup_free char *tf = render_prepare_format(f, &table);
  struct cli_tmpl *t = NULL;
  if (cli_tmpl_parse(tf, &t, err) < 0)
    return sh_err_wrap(err, "template parsing error");
  sh_buf body = {0};
  int ret = 0;
  size_t i;
  json_t *row;
  json_array_foreach(rows, i, row) {
    if ((ret = cli_tmpl_exec(t, row, false, true, &body, err)) < 0)
      break;
    buf_append(&body, "\n", 1);
  }
  if (ret < 0) {
    sh_err_wrap(err, "template parsing error");
  } else if (table) {
    tabwriter tw;
    tabwriter_init(&tw, TABLE_MINWIDTH, TABLE_TABWIDTH, TABLE_PADDING);
    sh_buf h = {0};
    cli_tmpl_exec(t, hdr, false, true, &h, NULL);
    tabwriter_write(&tw, h.data ? h.data : "", h.len);
    tabwriter_write(&tw, "\n", 1);
    tabwriter_write(&tw, body.data ? body.data : "", body.len);
    tabwriter_flush(&tw, out);
    tabwriter_free(&tw);
    buf_free(&h);
  } else if (body.len) {
    buf_append(out, body.data, body.len);
  }
  buf_free(&body);
  cli_tmpl_free(t);
  return ret;
}

/* ---- service ls ------------------------------------------------------------
 */

static const char *service_mode(const json_t *s) {
  if (jx_get(s, "Spec.Mode.Global"))
    return "global";
  if (jx_get(s, "Spec.Mode.Replicated"))
    return "replicated";
  if (jx_get(s, "Spec.Mode.ReplicatedJob"))
    return "replicated job";
  if (jx_get(s, "Spec.Mode.GlobalJob"))
    return "global job";
  return "";
}

struct port {
  const char *proto;
  uint32_t pub, tgt;
};

static int cmp_ports(const void *a, const void *b) {
  const struct port *x = a, *y = b;
  int c = strcmp(x->proto, y->proto);
  if (c)
    return c;
  return x->pub < y->pub ? -1 : x->pub > y->pub;
}

char *svc_ports(const json_t *service) {
  const json_t *ports = jx_get(service, "Endpoint.Ports");
  size_t n = json_is_array(ports) ? json_array_size(ports) : 0, k = 0;
  struct port *ps = xcalloc(n ? n : 1, sizeof *ps);
  for (size_t i = 0; i < n; i++) {
    const json_t *p = json_array_get(ports, i);
    if (strcmp(s_(p, "PublishMode"), "ingress") != 0 && s_(p, "PublishMode")[0])
      continue;
    ps[k++] = (struct port){s_(p, "Protocol"),
                            (uint32_t)jx_int(p, "PublishedPort", 0),
                            (uint32_t)jx_int(p, "TargetPort", 0)};
  }
  qsort(ps, k, sizeof *ps, cmp_ports);
  sh_buf b = {0};
  struct port start = {"", 0, 0}, end = {"", 0, 0};
#define EMIT()                                                                 \
  do {                                                                         \
    if (start.pub > 0) {                                                       \
      buf_printf(&b, "%s*:", b.len ? ", " : "");                               \
      if (end.pub > start.pub)                                                 \
        buf_printf(&b, "%u-%u", start.pub, end.pub);                           \
      else                                                                     \
        buf_printf(&b, "%u", start.pub);                                       \
      if (end.tgt > start.tgt)                                                 \
        buf_printf(&b, "->%u-%u/%s", start.tgt, end.tgt, start.proto);         \
      else                                                                     \
        buf_printf(&b, "->%u/%s", start.tgt, start.proto);                     \
    }                                                                          \
  } while (0)
  for (size_t i = 0; i < k; i++) {
    const struct port *p = &ps[i];
    bool is_range = end.tgt != start.tgt;
    bool overlaps = p->tgt <= end.tgt;
    /* unsigned differences wrap, as the uint32 ones in docker do */
    if (strcmp(p->proto, start.proto) != 0 ||
        (uint32_t)(p->pub - end.pub) > 1 || (uint32_t)(p->tgt - end.tgt) > 1 ||
        (is_range && overlaps)) {
      EMIT();
      start = end = *p;
      continue;
    }
    end.pub = p->pub;
    end.tgt = p->tgt;
  }
  EMIT();
#undef EMIT
  free(ps);
  return b.data ? b.data : xstrdup("");
}

static char *service_replicas(const json_t *s) {
  long long run = (long long)jx_int(s, "ServiceStatus.RunningTasks", 0);
  long long des = (long long)jx_int(s, "ServiceStatus.DesiredTasks", 0);
  long long done = (long long)jx_int(s, "ServiceStatus.CompletedTasks", 0);
  if (jx_get(s, "Spec.Mode.ReplicatedJob"))
    return xasprintf(
        "%lld/%lld (%lld/%lld completed)", run, des, done,
        (long long)jx_int(s, "Spec.Mode.ReplicatedJob.TotalCompletions", 0));
  if (jx_get(s, "Spec.Mode.GlobalJob"))
    return xasprintf("%lld/%lld (%lld/%lld completed)", run, des, done,
                     des + done);
  long long maxr =
      (long long)jx_int(s, "Spec.TaskTemplate.Placement.MaxReplicas", 0);
  if (maxr > 0 && strcmp(service_mode(s), "replicated") == 0)
    return xasprintf("%lld/%lld (max %lld per node)", run, des, maxr);
  return xasprintf("%lld/%lld", run, des);
}

struct sitem {
  const json_t *j;
  size_t idx;
  const char *key;
};

static int cmp_sitems(const void *a, const void *b) {
  const struct sitem *x = a, *y = b;
  if (text_natural_less(x->key, y->key))
    return -1;
  if (text_natural_less(y->key, x->key))
    return 1;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

int render_service_list(const json_t *services, const char *format, bool quiet,
                        sh_buf *out, sh_err *err) {
  size_t n = json_is_array(services) ? json_array_size(services) : 0;
  struct sitem *items = xcalloc(n ? n : 1, sizeof *items);
  for (size_t i = 0; i < n; i++) {
    const json_t *s = json_array_get(services, i);
    items[i] = (struct sitem){s, i, s_(s, "Spec.Name")};
  }
  qsort(items, n, sizeof *items, cmp_sitems);
  json_t *rows = json_array();
  for (size_t i = 0; i < n; i++) {
    const json_t *s = items[i].j;
    cleanup_free char *id = trunc_id(s_(s, "ID"));
    cleanup_free char *img =
        svc_image_display(s_(s, "Spec.TaskTemplate.ContainerSpec.Image"));
    cleanup_free char *reps = service_replicas(s);
    cleanup_free char *ports = svc_ports(s);
    json_array_append_new(rows, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}",
                                          "ID", id, "Name", s_(s, "Spec.Name"),
                                          "Mode", service_mode(s), "Replicas",
                                          reps, "Image", img, "Ports", ports));
  }
  free(items);
  json_t *hdr = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "ID", "ID", "Name",
                          "NAME", "Mode", "MODE", "Replicas", "REPLICAS",
                          "Image", "IMAGE", "Ports", "PORTS");
  int ret = render_rows(format,
                        "table {{.ID}}\t{{.Name}}\t{{.Mode}}\t{{.Replicas}}\t{{"
                        ".Image}}\t{{.Ports}}",
                        "{{.ID}}", quiet, rows, hdr, out, err);
  json_decref(rows);
  json_decref(hdr);
  return ret;
}

/* ---- service ps ------------------------------------------------------------
 */

struct titem {
  const json_t *j;
  size_t idx;
  char *name;
  int64_t created;
};

static int cmp_titems(const void *a, const void *b) {
  const struct titem *x = a, *y = b;
  if (strcmp(x->name, y->name) != 0)
    return text_natural_less(x->name, y->name) ? -1 : 1;
  if (x->created != y->created) /* newest first */
    return x->created > y->created ? -1 : 1;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static char *task_ports(const json_t *t) {
  const json_t *ports = jx_get(t, "Status.PortStatus.Ports");
  sh_buf b = {0};
  size_t i;
  json_t *p;
  json_array_foreach(ports, i, p)
      buf_printf(&b, "%s*:%lld->%lld/%s", i ? "," : "",
                 (long long)jx_int(p, "PublishedPort", 0),
                 (long long)jx_int(p, "TargetPort", 0), s_(p, "Protocol"));
  return b.data ? b.data : xstrdup("");
}

static char *ago(int64_t then_ns, int64_t now_ns) {
  char d[64];
  units_human_duration(now_ns - then_ns, d, sizeof d);
  for (char *p = d; *p; p++)
    *p = (char)tolower((unsigned char)*p);
  return xasprintf("%s ago", d);
}

int render_task_list(const json_t *tasks, const json_t *names,
                     const json_t *nodes, bool trunc, bool quiet,
                     const char *format, int64_t now_ns, sh_buf *out,
                     sh_err *err) {
  size_t n = json_is_array(tasks) ? json_array_size(tasks) : 0;
  struct titem *items = xcalloc(n ? n : 1, sizeof *items);
  for (size_t i = 0; i < n; i++) {
    const json_t *t = json_array_get(tasks, i);
    const char *sid = s_(t, "ServiceID");
    const char *sname = kstr(names, sid, sid);
    long long slot = (long long)jx_int(t, "Slot", 0);
    items[i].j = t;
    items[i].idx = i;
    items[i].name = slot ? xasprintf("%s.%lld", sname, slot)
                         : xasprintf("%s.%s", sname, s_(t, "NodeID"));
    items[i].created = svc_parse_time(s_(t, "CreatedAt"));
  }
  qsort(items, n, sizeof *items, cmp_titems);
  bool table = !format || !format[0] || str_has_prefix(format, "table");
  json_t *rows = json_array();
  const char *prev = "";
  for (size_t i = 0; i < n; i++) {
    const json_t *t = items[i].j;
    cleanup_free char *name = table && strcmp(items[i].name, prev) == 0
                                  ? xasprintf(" \\_ %s", items[i].name)
                                  : xstrdup(items[i].name);
    prev = items[i].name;
    const char *nid = s_(t, "NodeID");
    const char *image = s_(t, "Spec.ContainerSpec.Image");
    cleanup_free char *img = trunc ? svc_image_display(image) : xstrdup(image);
    cleanup_free char *id =
        trunc ? trunc_id(s_(t, "ID")) : xstrdup(s_(t, "ID"));
    cleanup_free char *desired = text_pretty(s_(t, "DesiredState"));
    cleanup_free char *state = text_pretty(s_(t, "Status.State"));
    cleanup_free char *when =
        ago(svc_parse_time(s_(t, "Status.Timestamp")), now_ns);
    cleanup_free char *cur = xasprintf("%s %s", state, when);
    cleanup_free char *e = trunc ? svc_ellipsis(s_(t, "Status.Err"), 30)
                                 : xstrdup(s_(t, "Status.Err"));
    cleanup_free char *eq = e[0] ? xasprintf("\"%s\"", e) : xstrdup("");
    cleanup_free char *ports = task_ports(t);
    json_array_append_new(
        rows, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "ID", id,
                        "Name", name, "Image", img, "Node",
                        kstr(nodes, nid, nid), "DesiredState", desired,
                        "CurrentState", cur, "Error", eq, "Ports", ports));
  }
  for (size_t i = 0; i < n; i++)
    free(items[i].name);
  free(items);
  json_t *hdr = json_pack(
      "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "ID", "ID", "Name", "NAME",
      "Image", "IMAGE", "Node", "NODE", "DesiredState", "DESIRED STATE",
      "CurrentState", "CURRENT STATE", "Error", "ERROR", "Ports", "PORTS");
  int ret = render_rows(format,
                        "table {{.ID}}\t{{.Name}}\t{{.Image}}\t{{.Node}}\t{{."
                        "DesiredState}}\t{{.CurrentState}}\t{{.Error}}\t{{."
                        "Ports}}",
                        "{{.ID}}", quiet, rows, hdr, out, err);
  json_decref(rows);
  json_decref(hdr);
  return ret;
}

/* ---- service inspect --pretty ----------------------------------------------
 */

static int cmp_cstr(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void update_config(const json_t *c, const char *order_line,
                          sh_buf *out) {
  char d[64];
  buf_printf(out, "\n Parallelism:\t%lld",
             (long long)jx_int(c, "Parallelism", 0));
  if (jx_int(c, "Delay", 0) > 0)
    buf_printf(out, "\n Delay:\t\t%s",
               svc_go_duration(jx_int(c, "Delay", 0), d, sizeof d));
  buf_printf(out, "\n On failure:\t%s", s_(c, "FailureAction"));
  if (jx_int(c, "Monitor", 0) > 0)
    buf_printf(out, "\n Monitoring Period: %s",
               svc_go_duration(jx_int(c, "Monitor", 0), d, sizeof d));
  const json_t *r = json_object_get(c, "MaxFailureRatio");
  double ratio = json_is_number(r) ? json_number_value(r) : 0;
  buf_printf(out, "\n Max failure ratio: %g", (double)(float)ratio);
  buf_printf(out, "\n %s%s", order_line, s_(c, "Order"));
}

/* Go's %v of a float64: the shortest text that reads back, in plain
 * notation for exponents in [-4, 21) */
static void go_float(sh_buf *out, double v) {
  char b[64];
  double a = v < 0 ? -v : v;
  if (v == 0 || (a >= 1e-4 && a < 1e21)) {
    for (int prec = 0; prec <= 20; prec++) {
      snprintf(b, sizeof b, "%.*f", prec, v);
      if (strtod(b, NULL) == v)
        break;
    }
  } else {
    for (int prec = 1; prec <= 17; prec++) {
      snprintf(b, sizeof b, "%.*g", prec, v);
      if (strtod(b, NULL) == v)
        break;
    }
  }
  buf_printf(out, "%s", b);
}

void render_service_pretty(const json_t *s, const json_t *netnames,
                           int64_t now_ns, sh_buf *out) {
  char sz[64];
  const json_t *spec = jx_get(s, "Spec");
  const json_t *cs = jx_get(spec, "TaskTemplate.ContainerSpec");
  buf_printf(out, "\nID:\t\t%s\nName:\t\t%s", s_(s, "ID"), s_(spec, "Name"));
  const json_t *labels = jx_get(spec, "Labels");
  if (json_is_object(labels) && json_object_size(labels)) {
    buf_printf(out, "\nLabels:");
    size_t n = json_object_size(labels), k = 0;
    const char **keys = xcalloc(n, sizeof *keys);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)labels, key, v) keys[k++] = key;
    qsort(keys, n, sizeof *keys, cmp_cstr);
    for (k = 0; k < n; k++) {
      const char *val = kstr(labels, keys[k], "");
      buf_printf(out, "\n %s%s%s", keys[k], val[0] ? "=" : "", val);
    }
    free(keys);
  }
  buf_printf(out, "\nService Mode:");
  if (jx_get(spec, "Mode.Global")) {
    buf_printf(out, "\tGlobal");
  } else if (jx_get(spec, "Mode.Replicated")) {
    buf_printf(out, "\tReplicated");
    const json_t *r = jx_get(spec, "Mode.Replicated.Replicas");
    if (json_is_integer(r))
      buf_printf(out, "\n Replicas:\t%lld", (long long)json_integer_value(r));
  }
  const json_t *us = jx_get(s, "UpdateStatus");
  if (json_is_object(us) && s_(us, "State")[0]) {
    buf_printf(out, "\nUpdateStatus:\n State:\t\t%s", s_(us, "State"));
    if (s_(us, "StartedAt")[0]) {
      char d[64];
      units_human_duration(now_ns - svc_parse_time(s_(us, "StartedAt")), d,
                           sizeof d);
      buf_printf(out, "\n Started:\t%s ago", d);
    }
    if (strcmp(s_(us, "State"), "completed") == 0 && s_(us, "CompletedAt")[0]) {
      char d[64];
      units_human_duration(now_ns - svc_parse_time(s_(us, "CompletedAt")), d,
                           sizeof d);
      buf_printf(out, "\n Completed:\t%s ago", d);
    }
    buf_printf(out, "\n Message:\t%s", s_(us, "Message"));
  }
  buf_printf(out, "\nPlacement:");
  const json_t *cons = jx_get(spec, "TaskTemplate.Placement.Constraints");
  if (json_is_array(cons) && json_array_size(cons)) {
    buf_printf(out, "\n Constraints:\t");
    text_go_value(cons, out);
  }
  const json_t *prefs = jx_get(spec, "TaskTemplate.Placement.Preferences");
  if (json_is_array(prefs) && json_array_size(prefs)) {
    sh_buf p = {0};
    size_t i, k = 0;
    json_t *v;
    json_array_foreach(prefs, i, v) {
      const char *sd = s_(v, "Spread.SpreadDescriptor");
      if (jx_get(v, "Spread"))
        buf_printf(&p, "%sspread=%s", k++ ? " " : "", sd);
    }
    if (k)
      buf_printf(out, "\n Preferences:   [%s]", p.data);
    buf_free(&p);
  }
  long long maxr =
      (long long)jx_int(spec, "TaskTemplate.Placement.MaxReplicas", 0);
  if (maxr)
    buf_printf(out, "\n Max Replicas Per Node:   %lld", maxr);
  const json_t *uc = jx_get(spec, "UpdateConfig");
  if (json_is_object(uc)) {
    buf_printf(out, "\nUpdateConfig:");
    update_config(uc, "Update order:      ", out);
  }
  const json_t *rc = jx_get(spec, "RollbackConfig");
  if (json_is_object(rc)) {
    buf_printf(out, "\nRollbackConfig:");
    update_config(rc, "Rollback order:    ", out);
  }
  buf_printf(out, "\nContainerSpec:\n Image:\t\t%s", s_(cs, "Image"));
  static const char *const lists[][2] = {{"Args", "Args"}, {"Env", "Env"}};
  for (size_t k = 0; k < ARRAY_SIZE(lists); k++) {
    const json_t *a = jx_get(cs, lists[k][0]);
    if (json_is_array(a) && json_array_size(a)) {
      buf_printf(out, "\n %s:\t\t", lists[k][1]);
      size_t i;
      json_t *v;
      json_array_foreach(a, i, v) buf_printf(
          out, "%s ", json_string_value(v) ? json_string_value(v) : "");
    }
  }
  if (s_(cs, "Dir")[0])
    buf_printf(out, "\n Dir:\t\t%s", s_(cs, "Dir"));
  const json_t *init = jx_get(cs, "Init");
  if (json_is_boolean(init))
    buf_printf(out, "\n Init:\t\t%s", json_is_true(init) ? "true" : "false");
  if (s_(cs, "User")[0])
    buf_printf(out, "\n User: %s", s_(cs, "User"));
  const json_t *mounts = jx_get(cs, "Mounts");
  if (json_is_array(mounts) && json_array_size(mounts)) {
    buf_printf(out, "\nMounts:");
    size_t i;
    json_t *m;
    json_array_foreach(mounts, i, m) buf_printf(
        out, "\n Target:\t%s\n  Source:\t%s\n  ReadOnly:\t%s\n  Type:\t\t%s",
        s_(m, "Target"), s_(m, "Source"),
        jx_bool(m, "ReadOnly", false) ? "true" : "false", s_(m, "Type"));
  }
  static const char *const refs[][3] = {{"Configs", "Configs", "ConfigName"},
                                        {"Secrets", "Secrets", "SecretName"}};
  for (size_t k = 0; k < ARRAY_SIZE(refs); k++) {
    const json_t *a = jx_get(cs, refs[k][0]);
    if (!json_is_array(a) || !json_array_size(a))
      continue;
    buf_printf(out, "\n%s:", refs[k][1]);
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
        buf_printf(out, "\n Target:\t%s\n  Source:\t%s", s_(v, "File.Name"),
                   s_(v, refs[k][2]));
  }
  const json_t *ld = jx_get(spec, "TaskTemplate.LogDriver");
  if (json_is_object(ld)) {
    buf_printf(out, "\nLog Driver:");
    if (s_(ld, "Name")[0])
      buf_printf(out, "\n Name:\t\t%s", s_(ld, "Name"));
    const json_t *opts = jx_get(ld, "Options");
    if (json_is_object(opts) && json_object_size(opts)) {
      buf_printf(out, "\n LogOpts:");
      size_t n = json_object_size(opts), k = 0;
      const char **keys = xcalloc(n, sizeof *keys);
      const char *key;
      json_t *v;
      json_object_foreach((json_t *)opts, key, v) keys[k++] = key;
      qsort(keys, n, sizeof *keys, cmp_cstr);
      for (k = 0; k < n; k++) {
        const char *val = kstr(opts, keys[k], "");
        buf_printf(out, "\n  %s%s%s", keys[k], val[0] ? ":       " : "", val);
      }
      free(keys);
    }
    buf_printf(out, "\n");
  }
  const json_t *res = jx_get(spec, "TaskTemplate.Resources");
  if (json_is_object(res)) {
    buf_printf(out, "\nResources:");
    int64_t rcpu = jx_int(res, "Reservations.NanoCPUs", 0);
    int64_t rmem = jx_int(res, "Reservations.MemoryBytes", 0);
    if (rcpu > 0 || rmem > 0) {
      buf_printf(out, "\n Reservations:");
      if (rcpu > 0) {
        buf_printf(out, "\n  CPU:\t\t");
        go_float(out, (double)rcpu / 1e9);
      }
      if (rmem)
        buf_printf(out, "\n  Memory:\t%s",
                   units_bytes_size((double)rmem, sz, sizeof sz));
    }
    int64_t lcpu = jx_int(res, "Limits.NanoCPUs", 0);
    int64_t lmem = jx_int(res, "Limits.MemoryBytes", 0);
    int64_t pids = jx_int(res, "Limits.Pids", 0);
    if (lcpu > 0 || lmem > 0 || pids > 0) {
      buf_printf(out, "\n Limits:");
      if (lcpu > 0) {
        buf_printf(out, "\n  CPU:\t\t");
        go_float(out, (double)lcpu / 1e9);
      }
      if (lmem)
        buf_printf(out, "\n  Memory:\t%s",
                   units_bytes_size((double)lmem, sz, sizeof sz));
    }
    if (pids > 0)
      buf_printf(out, "\n  PIDs:\t\t%lld", (long long)pids);
  }
  const json_t *nets = jx_get(spec, "TaskTemplate.Networks");
  if (json_is_array(nets) && json_array_size(nets)) {
    buf_printf(out, "\nNetworks:");
    size_t i;
    json_t *v;
    json_array_foreach(nets, i, v) buf_printf(
        out, " %s", kstr(netnames, s_(v, "Target"), s_(v, "Target")));
    buf_printf(out, " ");
  }
  buf_printf(out, "\nEndpoint Mode:\t%s", s_(spec, "EndpointSpec.Mode"));
  /* the ports the service actually has, not the ones asked for */
  const json_t *ports = jx_get(s, "Endpoint.Ports");
  if (json_is_array(ports) && json_array_size(ports)) {
    buf_printf(out, "\nPorts:");
    size_t i;
    json_t *p;
    json_array_foreach(ports, i, p) buf_printf(
        out,
        "\n PublishedPort = %lld\n  Protocol = %s\n  TargetPort = %lld\n  "
        "PublishMode = %s",
        (long long)jx_int(p, "PublishedPort", 0), s_(p, "Protocol"),
        (long long)jx_int(p, "TargetPort", 0), s_(p, "PublishMode"));
    buf_printf(out, " ");
  }
  const json_t *hc = jx_get(cs, "Healthcheck");
  if (json_is_object(hc)) {
    char a[64], b[64], c[64];
    buf_printf(out,
               "\n Healthcheck:\n  Interval = %s\n  Retries = %lld\n  "
               "StartPeriod =\t%s\n  Timeout =\t%s",
               svc_go_duration(jx_int(hc, "Interval", 0), a, sizeof a),
               (long long)jx_int(hc, "Retries", 0),
               svc_go_duration(jx_int(hc, "StartPeriod", 0), b, sizeof b),
               svc_go_duration(jx_int(hc, "Timeout", 0), c, sizeof c));
    const json_t *test = jx_get(hc, "Test");
    if (json_is_array(test) && json_array_size(test)) {
      buf_printf(out, "\n  Tests:");
      size_t i;
      json_t *v;
      json_array_foreach(test, i, v)
          buf_printf(out, "\n\t Test = %s",
                     json_string_value(v) ? json_string_value(v) : "");
      buf_printf(out, " ");
    }
  }
  buf_printf(out, "\n\n");
}

/* ---- docker ps -------------------------------------------------------------
 */

static int cmp_cport(const void *a, const void *b) {
  const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
  int64_t px = jx_int(x, "PrivatePort", 0), py = jx_int(y, "PrivatePort", 0);
  if (px != py)
    return px < py ? -1 : 1;
  return strcmp(s_(x, "Type"), s_(y, "Type"));
}

/* docker's DisplayablePorts without range folding: "80/tcp",
 * "0.0.0.0:8080->80/tcp". */
static char *container_ports(const json_t *c) {
  const json_t *ports = jx_get(c, "Ports");
  size_t n = json_is_array(ports) ? json_array_size(ports) : 0;
  json_t **ps = xcalloc(n ? n : 1, sizeof *ps);
  for (size_t i = 0; i < n; i++)
    ps[i] = json_array_get(ports, i);
  qsort(ps, n, sizeof *ps, cmp_cport);
  sh_buf b = {0};
  for (size_t i = 0; i < n; i++) {
    const json_t *p = ps[i];
    buf_printf(&b, "%s", b.len ? ", " : "");
    if (s_(p, "IP")[0] && jx_int(p, "PublicPort", 0))
      buf_printf(&b, "%s:%lld->", s_(p, "IP"),
                 (long long)jx_int(p, "PublicPort", 0));
    buf_printf(&b, "%lld/%s", (long long)jx_int(p, "PrivatePort", 0),
               s_(p, "Type"));
  }
  free(ps);
  return b.data ? b.data : xstrdup("");
}

/* strconv.Quote for the printable text a command is. */
static char *go_quote(const char *s) {
  sh_buf b = {0};
  buf_append(&b, "\"", 1);
  for (const char *p = s; *p; p++) {
    if (*p == '"' || *p == '\\')
      buf_printf(&b, "\\%c", *p);
    else if (*p == '\n')
      buf_printf(&b, "\\n");
    else if (*p == '\t')
      buf_printf(&b, "\\t");
    else if ((unsigned char)*p < 0x20)
      buf_printf(&b, "\\x%02x", (unsigned char)*p);
    else
      buf_append(&b, p, 1);
  }
  buf_append(&b, "\"", 1);
  return b.data;
}

int render_container_list(const json_t *containers, bool trunc, bool quiet,
                          const char *format, int64_t now_ns, sh_buf *out,
                          sh_err *err) {
  json_t *rows = json_array();
  size_t i;
  json_t *c;
  json_array_foreach(containers, i, c) {
    cleanup_free char *id =
        trunc ? trunc_id(s_(c, "Id")) : xstrdup(s_(c, "Id"));
    const char *image = s_(c, "Image");
    cleanup_free char *img = !trunc ? xstrdup(image)
                             : str_has_prefix(image, "sha256:")
                                 ? trunc_id(image)
                                 : svc_image_display(image);
    cleanup_free char *cmd0 =
        trunc ? svc_ellipsis(s_(c, "Command"), 20) : xstrdup(s_(c, "Command"));
    cleanup_free char *cmd = go_quote(cmd0);
    /* docker keeps HumanDuration's capital ("About a minute ago") */
    char d[64];
    units_human_duration(now_ns - jx_int(c, "Created", 0) * INT64_C(1000000000),
                         d, sizeof d);
    cleanup_free char *created = xasprintf("%s ago", d);
    cleanup_free char *ports = container_ports(c);
    sh_buf names = {0};
    size_t k;
    json_t *nm;
    json_array_foreach(jx_get(c, "Names"), k, nm) {
      const char *name = json_string_value(nm) ? json_string_value(nm) : "";
      if (name[0] == '/')
        name++;
      /* links ("/other/alias") are not shown in the short form */
      if (trunc && strchr(name, '/'))
        continue;
      buf_printf(&names, "%s%s", names.len ? "," : "", name);
    }
    json_array_append_new(
        rows, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "ID", id,
                        "Image", img, "Command", cmd, "CreatedAt", created,
                        "RunningFor", created, "Status", s_(c, "Status"),
                        "Ports", ports, "Names", names.data ? names.data : ""));
    buf_free(&names);
  }
  json_t *hdr = json_pack(
      "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "ID", "CONTAINER ID", "Image",
      "IMAGE", "Command", "COMMAND", "CreatedAt", "CREATED AT", "RunningFor",
      "CREATED", "Status", "STATUS", "Ports", "PORTS", "Names", "NAMES");
  int ret =
      render_rows(format,
                  "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}"
                  "\t{{.Status}}\t{{.Ports}}\t{{.Names}}",
                  "{{.ID}}", quiet, rows, hdr, out, err);
  json_decref(rows);
  json_decref(hdr);
  return ret;
}

/* ---- convergence display (non-terminal) ------------------------------------
 */

static int state_num(const char *s) {
  static const char *const states[] = {
      "new",       "allocated", "pending",  "assigned", "accepted",
      "preparing", "ready",     "starting", "running",  "complete",
      "shutdown",  "failed",    "rejected"};
  for (size_t i = 0; i < ARRAY_SIZE(states); i++)
    if (strcmp(s, states[i]) == 0)
      return (int)i + 1;
  return 0;
}

static char *trunc_error(const char *e) {
  cleanup_free char *one = xstrdup(e);
  for (char *p = one; *p; p++)
    if (*p == '\n')
      *p = ' ';
  if (strlen(one) > 75)
    return xasprintf("%.74s…", one);
  return xstrdup(one);
}

/* docker keeps, per slot (or node), the task with the lowest desired state,
 * then the lowest state. */
static bool better(const json_t *t, const json_t *old) {
  int od = state_num(s_(old, "DesiredState")),
      nd = state_num(s_(t, "DesiredState"));
  if (od < nd)
    return false;
  if (od == nd &&
      state_num(s_(old, "Status.State")) <= state_num(s_(t, "Status.State")))
    return false;
  return true;
}

void svc_display_progress(struct svc_display *d, const char *id,
                          const char *status, int64_t cur, int64_t total,
                          sh_buf *out) {
  if (!d->tty) {
    /* a bar would be drawn: docker skips the message off a terminal */
    if (cur > 0 || total > 0)
      return;
    if (id && id[0])
      buf_printf(out, "%s: ", id);
    buf_printf(out, "%s\n", status);
    return;
  }
  if (!d->ids)
    d->ids = json_object();
  json_t *l = json_object_get(d->ids, id ? id : "");
  int64_t line;
  if (l) {
    line = json_integer_value(l);
  } else {
    line = (int64_t)json_object_size(d->ids);
    json_object_set_new(d->ids, id ? id : "", json_integer(line));
    buf_printf(out, "\n");
  }
  int64_t diff = (int64_t)json_object_size(d->ids) - line;
  buf_printf(out, "\x1b[%lldA\x1b[2K\r", (long long)diff);
  if (id && id[0])
    buf_printf(out, "%s: ", id);
  buf_printf(out, "%s ", status);
  if ((cur > 0 || total > 0) && total > 0 && d->width > 110) {
    int pct = (int)((double)cur / (double)total * 100) / 2;
    if (pct > 50)
      pct = 50;
    buf_printf(out, "[");
    for (int k = 0; k < pct; k++)
      buf_printf(out, "=");
    buf_printf(out, ">");
    for (int k = pct; k < 50; k++)
      buf_printf(out, " ");
    buf_printf(out, "] ");
  }
  buf_printf(out, "\r\x1b[%lldB", (long long)diff);
}

void svc_display_message(struct svc_display *d, const char *id,
                         const char *status, sh_buf *out) {
  if (d->ids)
    json_object_clear(d->ids); /* lines above are no longer addressed */
  if (id && id[0])
    buf_printf(out, "%s: ", id);
  buf_printf(out, "%s\n", status);
}

void svc_display_free(struct svc_display *d) {
  json_decref(d->ids);
  d->ids = NULL;
}

static void overall(struct svc_display *d, sh_buf *out, long long num,
                    long long den, bool rollback) {
  char msg[128];
  snprintf(msg, sizeof msg, "%s%lld out of %lld tasks",
           rollback ? "rolling back update: " : "", num, den);
  svc_display_progress(d, "overall progress", msg, 0, 0, out);
}

int svc_progress_update(struct svc_progress *p, const json_t *service,
                        const json_t *tasks, const json_t *active,
                        bool rollback, struct svc_display *d, sh_buf *out) {
  bool global = jx_get(service, "Spec.Mode.Global") != NULL;
  json_t *best = json_object(); /* key (slot or node) -> task */
  size_t i;
  json_t *t;
  json_array_foreach(tasks, i, t) {
    if (!state_num(s_(t, "DesiredState")) || !state_num(s_(t, "Status.State")))
      continue;
    char key[64];
    if (global)
      snprintf(key, sizeof key, "%s", s_(t, "NodeID"));
    else
      snprintf(key, sizeof key, "%lld", (long long)jx_int(t, "Slot", 0));
    json_t *old = json_object_get(best, key);
    if (old && !better(t, old))
      continue;
    const char *nid = s_(t, "NodeID");
    if (!global && nid[0] && !json_object_get(active, nid))
      continue;
    json_object_set(best, key, t);
  }
  long long total =
      global ? (long long)json_object_size(best)
             : (long long)jx_int(service, "Spec.Mode.Replicated.Replicas", 0);
  if (!p->initialized) {
    if (global && total == 0) {
      svc_display_progress(d, "overall progress", "waiting for new tasks", 0, 0,
                           out);
      json_decref(best);
      return 0;
    }
    overall(d, out, 0, total, rollback);
    if (!global && total <= 20)
      for (long long k = 1; k <= total; k++) {
        char id[48];
        snprintf(id, sizeof id, "%lld/%lld", k, total);
        svc_display_progress(d, id, " ", 0, 0, out);
      }
    p->initialized = true;
  }
  const char *key;
  if (p->done) {
    json_object_foreach(best, key,
                        t) if (strcmp(s_(t, "Status.State"), "running") != 0)
        p->done = false;
  }
  long long run = 0;
  json_object_foreach(best, key, t) {
    const char *nid = s_(t, "NodeID");
    if (global && !json_object_get(active, nid))
      continue;
    int ds = state_num(s_(t, "DesiredState"));
    if (ds <= 9 && strcmp(s_(t, "Status.State"), "running") == 0)
      run++;
    char id[64];
    int mapped = 0;
    if (global) {
      cleanup_free char *nid12 = trunc_id(nid);
      snprintf(id, sizeof id, "%s", nid12);
    } else {
      /* display slots are handed out in the order slots are first seen */
      int64_t slot = jx_int(t, "Slot", 0);
      for (int k = 0; k < p->nslots; k++)
        if (p->slots[k] == slot)
          mapped = k + 1;
      if (!mapped && p->nslots < (int)ARRAY_SIZE(p->slots)) {
        p->slots[p->nslots++] = slot;
        mapped = p->nslots;
      }
      snprintf(id, sizeof id, "%d/%lld", mapped, total);
    }
    if (p->done || total > 20 || (!global && (!mapped || mapped > total)))
      continue;
    if (s_(t, "Status.Err")[0]) {
      cleanup_free char *e = trunc_error(s_(t, "Status.Err"));
      svc_display_progress(d, id, e, 0, 0, out);
    } else if (ds <= 9 && state_num(s_(t, "Status.State")) <= 9) {
      /* the state padded to the longest non-terminal one ("preparing") */
      char st[32];
      snprintf(st, sizeof st, "%-9s", s_(t, "Status.State"));
      svc_display_progress(d, id, st, state_num(s_(t, "Status.State")), 9, out);
    }
  }
  if (!p->done) {
    overall(d, out, run, total, rollback);
    if (run == total)
      p->done = true;
  }
  json_decref(best);
  return run == total;
}
