#include "api/schema.h"

#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#define SPEC_FIELDS(p)                                                         \
  {p "Name", SCHEMA_STRING, "string"},                                         \
      {p "Labels", SCHEMA_STRMAP, "map[string]string"},                        \
      {p "Orchestration", SCHEMA_OBJECT, "swarm.OrchestrationConfig"},         \
      {p "Orchestration.TaskHistoryRetentionLimit", SCHEMA_INT, "int64"},      \
      {p "Raft", SCHEMA_OBJECT, "swarm.RaftConfig"},                           \
      {p "Raft.SnapshotInterval", SCHEMA_UINT, "uint64"},                      \
      {p "Raft.KeepOldSnapshots", SCHEMA_UINT, "uint64"},                      \
      {p "Raft.LogEntriesForSlowFollowers", SCHEMA_UINT, "uint64"},            \
      {p "Raft.ElectionTick", SCHEMA_INT, "int"},                              \
      {p "Raft.HeartbeatTick", SCHEMA_INT, "int"},                             \
      {p "Dispatcher", SCHEMA_OBJECT, "swarm.DispatcherConfig"},               \
      {p "Dispatcher.HeartbeatPeriod", SCHEMA_INT, "time.Duration"},           \
      {p "CAConfig", SCHEMA_OBJECT, "swarm.CAConfig"},                         \
      {p "CAConfig.NodeCertExpiry", SCHEMA_INT, "time.Duration"},              \
      {p "CAConfig.ExternalCAs", SCHEMA_LIST, "[]*swarm.ExternalCA"},          \
      {p "CAConfig.SigningCACert", SCHEMA_STRING, "string"},                   \
      {p "CAConfig.SigningCAKey", SCHEMA_STRING, "string"},                    \
      {p "CAConfig.ForceRotate", SCHEMA_UINT, "uint64"},                       \
      {p "EncryptionConfig", SCHEMA_OBJECT, "swarm.EncryptionConfig"},         \
      {p "EncryptionConfig.AutoLockManagers", SCHEMA_BOOL, "bool"}, {          \
    p "TaskDefaults", SCHEMA_OBJECT, "swarm.TaskDefaults"                      \
  }

const struct schema_field schema_swarm_spec[] = {SPEC_FIELDS(""), {0}};

const struct schema_field schema_init_request[] = {
    {"ListenAddr", SCHEMA_STRING, "string"},
    {"AdvertiseAddr", SCHEMA_STRING, "string"},
    {"DataPathAddr", SCHEMA_STRING, "string"},
    {"DataPathPort", SCHEMA_UINT, "uint32"},
    {"DefaultAddrPool", SCHEMA_STRLIST, "[]string"},
    {"ForceNewCluster", SCHEMA_BOOL, "bool"},
    {"SubnetSize", SCHEMA_UINT, "uint32"},
    {"AutoLockManagers", SCHEMA_BOOL, "bool"},
    {"Availability", SCHEMA_STRING, "swarm.NodeAvailability"},
    {"Spec", SCHEMA_OBJECT, "swarm.Spec"},
    SPEC_FIELDS("Spec."),
    {0}};

const struct schema_field schema_join_request[] = {
    {"ListenAddr", SCHEMA_STRING, "string"},
    {"AdvertiseAddr", SCHEMA_STRING, "string"},
    {"DataPathAddr", SCHEMA_STRING, "string"},
    {"RemoteAddrs", SCHEMA_STRLIST, "[]string"},
    {"JoinToken", SCHEMA_STRING, "string"},
    {"Availability", SCHEMA_STRING, "swarm.NodeAvailability"},
    {0}};

const struct schema_field schema_node_spec[] = {
    {"Name", SCHEMA_STRING, "string"},
    {"Labels", SCHEMA_STRMAP, "map[string]string"},
    {"Role", SCHEMA_STRING, "swarm.NodeRole"},
    {"Availability", SCHEMA_STRING, "swarm.NodeAvailability"},
    {0}};

static bool type_ok(const json_t *v, enum schema_type t) {
  switch (t) {
  case SCHEMA_STRING:
    return json_is_string(v);
  case SCHEMA_BOOL:
    return json_is_boolean(v);
  case SCHEMA_INT:
    return json_is_integer(v);
  case SCHEMA_UINT:
    return json_is_integer(v) && json_integer_value(v) >= 0;
  case SCHEMA_OBJECT:
    return json_is_object(v);
  case SCHEMA_LIST:
    return json_is_array(v);
  case SCHEMA_STRMAP: {
    if (!json_is_object(v))
      return false;
    const char *k;
    json_t *e;
    json_object_foreach((json_t *)v, k, e) if (!json_is_string(e)) return false;
    return true;
  }
  case SCHEMA_STRLIST: {
    if (!json_is_array(v))
      return false;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) if (!json_is_string(e)) return false;
    return true;
  }
  }
  return false;
}

int schema_check(const json_t *body, const char *struct_name,
                 const struct schema_field *fields, sh_err *err) {
  for (const struct schema_field *f = fields; f->path; f++) {
    json_t *v = jx_get(body, f->path);
    if (!v || json_is_null(v) || type_ok(v, f->type))
      continue;
    const char *got = jx_kind(v);
    /* A negative number for an unsigned field is a number Go cannot hold. */
    if (f->type == SCHEMA_UINT && json_is_integer(v))
      return sh_error(err, 400,
                      "json: cannot unmarshal number %lld into Go struct "
                      "field %s.%s of type %s",
                      (long long)json_integer_value(v), struct_name, f->path,
                      f->go_type);
    return sh_error(err, 400,
                    "json: cannot unmarshal %s into Go struct field %s.%s of "
                    "type %s",
                    got, struct_name, f->path, f->go_type);
  }
  return 0;
}

/* ---- Go types over the raw body ---- */

struct scan {
  const char *p, *end;
  char path[512]; /* ".Mode.Replicated.Replicas" */
  size_t plen;
  sh_err *err;
};

static bool at_ws(const struct scan *s) {
  return s->p < s->end &&
         (*s->p == ' ' || *s->p == '\t' || *s->p == '\r' || *s->p == '\n');
}

static void skip_ws(struct scan *s) {
  while (at_ws(s))
    s->p++;
}

static void skip_string(struct scan *s) {
  for (s->p++; s->p < s->end; s->p++) {
    if (*s->p == '\\')
      s->p++;
    else if (*s->p == '"') {
      s->p++;
      return;
    }
  }
}

/* A literal: number, true, false, null. */
static size_t literal_len(const struct scan *s) {
  const char *q = s->p;
  while (q < s->end && !strchr(",]} \t\r\n", *q))
    q++;
  return (size_t)(q - s->p);
}

/* Skips one value without recursion, whatever its depth. */
static void skip_value(struct scan *s) {
  skip_ws(s);
  if (s->p >= s->end)
    return;
  if (*s->p == '"') {
    skip_string(s);
    return;
  }
  if (*s->p != '{' && *s->p != '[') {
    s->p += literal_len(s);
    return;
  }
  size_t depth = 0;
  while (s->p < s->end) {
    char c = *s->p;
    if (c == '"') {
      skip_string(s);
      continue;
    }
    s->p++;
    if (c == '{' || c == '[')
      depth++;
    else if ((c == '}' || c == ']') && --depth == 0)
      return;
  }
}

/* How Go's decoder names a JSON value it cannot store: "string", "number
 * 1e12" (the literal as written) for numbers into number types, "number"
 * otherwise. */
static void value_name(const struct scan *s, const struct go_type *t, char *out,
                       size_t n) {
  switch (*s->p) {
  case '"':
    snprintf(out, n, "string");
    return;
  case '{':
    snprintf(out, n, "object");
    return;
  case '[':
    snprintf(out, n, "array");
    return;
  case 't':
  case 'f':
    snprintf(out, n, "bool");
    return;
  }
  if (t->kind == GO_INT || t->kind == GO_UINT || t->kind == GO_FLOAT)
    snprintf(out, n, "number %.*s", (int)literal_len(s), s->p);
  else
    snprintf(out, n, "number");
}

static int type_error(struct scan *s, const struct go_type *t,
                      const char *owner) {
  char what[96];
  value_name(s, t, what, sizeof what);
  return sh_error(s->err, 400,
                  "invalid JSON: json: cannot unmarshal %s into Go struct "
                  "field %s.%s of type %s",
                  what, owner, s->path[0] ? s->path + 1 : "", t->name);
}

/* strconv.ParseInt / ParseUint (base 10) plus reflect's overflow check. */
static bool number_fits(const struct scan *s, const struct go_type *t) {
  size_t n = literal_len(s);
  char buf[64];
  if (n == 0 || n >= sizeof buf)
    return t->kind == GO_FLOAT && n > 0;
  memcpy(buf, s->p, n);
  buf[n] = '\0';
  char *end;
  errno = 0;
  if (t->kind == GO_FLOAT) {
    double v = strtod(buf, &end);
    return t->bits != 32 ||
           (v <= 3.40282346638528859811704183484516925440e+38 &&
            v >= -3.40282346638528859811704183484516925440e+38);
  }
  const char *digits = buf[0] == '-' && t->kind == GO_INT ? buf + 1 : buf;
  if (!*digits)
    return false;
  for (const char *q = digits; *q; q++)
    if (*q < '0' || *q > '9')
      return false;
  if (t->kind == GO_UINT) {
    unsigned long long v = strtoull(buf, &end, 10);
    return errno == 0 && (t->bits >= 64 || v < (1ULL << t->bits));
  }
  long long v = strtoll(buf, &end, 10);
  if (errno != 0)
    return false;
  if (t->bits >= 64)
    return true;
  long long lim = 1LL << (t->bits - 1);
  return v >= -lim && v < lim;
}

static int check_value(struct scan *s, const struct go_type *t,
                       const char *owner);

static const struct go_field *find_field(const struct go_type *t,
                                         const char *key, size_t n) {
  for (const struct go_field *f = t->fields; f && f->name; f++)
    if (strlen(f->name) == n && strncasecmp(f->name, key, n) == 0)
      return f;
  return NULL;
}

/* Members of an object; each value checked against its field (struct) or
 * elem (map). */
static int check_members(struct scan *s, const struct go_type *t,
                         const char *owner) {
  const char *self = strrchr(t->name, '.');
  self = self ? self + 1 : t->name;
  s->p++; /* '{' */
  for (;;) {
    skip_ws(s);
    if (s->p >= s->end || *s->p == '}') {
      s->p++;
      return 0;
    }
    if (*s->p == ',') {
      s->p++;
      continue;
    }
    if (*s->p != '"')
      return 0; /* not valid JSON: the parser has said so already */
    const char *key = s->p + 1;
    skip_string(s);
    size_t klen = (size_t)(s->p - key) - 1;
    skip_ws(s);
    if (s->p < s->end && *s->p == ':')
      s->p++;
    if (t->kind == GO_MAP) {
      if (check_value(s, t->elem, owner) < 0)
        return -1;
      continue;
    }
    const struct go_field *f = find_field(t, key, klen);
    if (!f) {
      skip_value(s);
      continue;
    }
    size_t saved = s->plen;
    int w =
        snprintf(s->path + s->plen, sizeof s->path - s->plen, ".%s", f->name);
    if (w > 0 && (size_t)w < sizeof s->path - s->plen)
      s->plen += (size_t)w;
    int rc = check_value(s, f->type, self);
    s->plen = saved;
    s->path[saved] = '\0';
    if (rc < 0)
      return -1;
  }
}

static int check_value(struct scan *s, const struct go_type *t,
                       const char *owner) {
  skip_ws(s);
  if (s->p >= s->end)
    return 0;
  char c = *s->p;
  if (c == 'n' || t->kind == GO_ANY) { /* null: the zero value */
    skip_value(s);
    return 0;
  }
  bool ok;
  switch (t->kind) {
  case GO_STRING:
    ok = c == '"';
    break;
  case GO_BOOL:
    ok = c == 't' || c == 'f';
    break;
  case GO_INT:
  case GO_UINT:
  case GO_FLOAT:
    ok = c == '-' || (c >= '0' && c <= '9');
    if (ok && !number_fits(s, t))
      return type_error(s, t, owner);
    break;
  case GO_STRUCT:
  case GO_MAP:
    if (c != '{')
      return type_error(s, t, owner);
    return check_members(s, t, owner);
  case GO_SLICE:
    if (c != '[')
      return type_error(s, t, owner);
    s->p++;
    for (;;) {
      skip_ws(s);
      if (s->p >= s->end || *s->p == ']') {
        s->p++;
        return 0;
      }
      if (*s->p == ',') {
        s->p++;
        continue;
      }
      const char *before = s->p;
      if (check_value(s, t->elem, owner) < 0)
        return -1;
      if (s->p == before)
        return 0; /* no progress: malformed */
    }
  default:
    ok = true;
  }
  if (!ok)
    return type_error(s, t, owner);
  skip_value(s);
  return 0;
}

int schema_check_go(const char *json, size_t len, const struct go_type *root,
                    sh_err *err) {
  struct scan s = {.p = json, .end = json + len, .err = err};
  const char *self = strrchr(root->name, '.');
  return check_value(&s, root, self ? self + 1 : root->name);
}

/* ---- swarm.ServiceSpec (moby api/types/swarm, API v1.47) ---- */

#define GO_SCALAR(var, kind, name, bits)                                       \
  static const struct go_type var = {kind, name, bits, NULL, NULL}
#define GO_STRUCT_T(var, name, fields)                                         \
  static const struct go_type var = {GO_STRUCT, name, 0, fields, NULL}
#define GO_LIST(var, name, elem)                                               \
  static const struct go_type var = {GO_SLICE, name, 0, NULL, elem}

GO_SCALAR(t_string, GO_STRING, "string", 0);
GO_SCALAR(t_bool, GO_BOOL, "bool", 0);
GO_SCALAR(t_int, GO_INT, "int", 64);
GO_SCALAR(t_int64, GO_INT, "int64", 64);
GO_SCALAR(t_uint32, GO_UINT, "uint32", 32);
GO_SCALAR(t_uint64, GO_UINT, "uint64", 64);
GO_SCALAR(t_float32, GO_FLOAT, "float32", 32);
GO_SCALAR(t_duration, GO_INT, "time.Duration", 64);
GO_SCALAR(t_filemode, GO_UINT, "fs.FileMode", 32);
GO_SCALAR(t_runtime_type, GO_STRING, "swarm.RuntimeType", 0);
GO_SCALAR(t_restart_cond, GO_STRING, "swarm.RestartPolicyCondition", 0);
GO_SCALAR(t_mount_type, GO_STRING, "mount.Type", 0);
GO_SCALAR(t_consistency, GO_STRING, "mount.Consistency", 0);
GO_SCALAR(t_propagation, GO_STRING, "mount.Propagation", 0);
GO_SCALAR(t_seccomp_mode, GO_STRING, "swarm.SeccompMode", 0);
GO_SCALAR(t_bytes, GO_STRING, "[]uint8", 0); /* base64 */
GO_SCALAR(t_apparmor_mode, GO_STRING, "swarm.AppArmorMode", 0);
GO_SCALAR(t_isolation, GO_STRING, "container.Isolation", 0);
GO_SCALAR(t_resolution, GO_STRING, "swarm.ResolutionMode", 0);
GO_SCALAR(t_port_proto, GO_STRING, "swarm.PortConfigProtocol", 0);
GO_SCALAR(t_publish_mode, GO_STRING, "swarm.PortConfigPublishMode", 0);
static const struct go_type t_strmap = {GO_MAP, "map[string]string", 0, NULL,
                                        &t_string};
GO_LIST(t_strlist, "[]string", &t_string);
GO_LIST(t_strlistlist, "[][]string", &t_strlist);

static const struct go_field f_plugin_priv[] = {{"name", &t_string},
                                                {"description", &t_string},
                                                {"value", &t_strlist},
                                                {0}};
GO_STRUCT_T(t_plugin_priv, "runtime.PluginPrivilege", f_plugin_priv);
GO_LIST(t_plugin_privs, "[]*runtime.PluginPrivilege", &t_plugin_priv);
static const struct go_field f_plugin[] = {{"name", &t_string},
                                           {"remote", &t_string},
                                           {"privileges", &t_plugin_privs},
                                           {"disabled", &t_bool},
                                           {"env", &t_strlist},
                                           {0}};
GO_STRUCT_T(t_plugin, "runtime.PluginSpec", f_plugin);

static const struct go_field f_cred[] = {
    {"Config", &t_string}, {"File", &t_string}, {"Registry", &t_string}, {0}};
GO_STRUCT_T(t_cred, "swarm.CredentialSpec", f_cred);
static const struct go_field f_selinux[] = {
    {"Disable", &t_bool}, {"User", &t_string},  {"Role", &t_string},
    {"Type", &t_string},  {"Level", &t_string}, {0}};
GO_STRUCT_T(t_selinux, "swarm.SELinuxContext", f_selinux);
static const struct go_field f_seccomp[] = {
    {"Mode", &t_seccomp_mode}, {"Profile", &t_bytes}, {0}};
GO_STRUCT_T(t_seccomp, "swarm.SeccompOpts", f_seccomp);
static const struct go_field f_apparmor[] = {{"Mode", &t_apparmor_mode}, {0}};
GO_STRUCT_T(t_apparmor, "swarm.AppArmorOpts", f_apparmor);
static const struct go_field f_priv[] = {
    {"CredentialSpec", &t_cred},  {"SELinuxContext", &t_selinux},
    {"Seccomp", &t_seccomp},      {"AppArmor", &t_apparmor},
    {"NoNewPrivileges", &t_bool}, {0}};
GO_STRUCT_T(t_priv, "swarm.Privileges", f_priv);

static const struct go_field f_bind[] = {
    {"Propagation", &t_propagation},     {"NonRecursive", &t_bool},
    {"CreateMountpoint", &t_bool},       {"ReadOnlyNonRecursive", &t_bool},
    {"ReadOnlyForceRecursive", &t_bool}, {0}};
GO_STRUCT_T(t_bind, "mount.BindOptions", f_bind);
static const struct go_field f_mdriver[] = {
    {"Name", &t_string}, {"Options", &t_strmap}, {0}};
GO_STRUCT_T(t_mdriver, "mount.Driver", f_mdriver);
static const struct go_field f_volume[] = {{"NoCopy", &t_bool},
                                           {"Labels", &t_strmap},
                                           {"Subpath", &t_string},
                                           {"DriverConfig", &t_mdriver},
                                           {0}};
GO_STRUCT_T(t_volume, "mount.VolumeOptions", f_volume);
static const struct go_field f_tmpfs[] = {{"SizeBytes", &t_int64},
                                          {"Mode", &t_filemode},
                                          {"Options", &t_strlistlist},
                                          {0}};
GO_STRUCT_T(t_tmpfs, "mount.TmpfsOptions", f_tmpfs);
static const struct go_field f_nofields[] = {{0}};
GO_STRUCT_T(t_cluster_opts, "mount.ClusterOptions", f_nofields);
static const struct go_field f_mount[] = {{"Type", &t_mount_type},
                                          {"Source", &t_string},
                                          {"Target", &t_string},
                                          {"ReadOnly", &t_bool},
                                          {"Consistency", &t_consistency},
                                          {"BindOptions", &t_bind},
                                          {"VolumeOptions", &t_volume},
                                          {"TmpfsOptions", &t_tmpfs},
                                          {"ClusterOptions", &t_cluster_opts},
                                          {0}};
GO_STRUCT_T(t_mount, "mount.Mount", f_mount);
GO_LIST(t_mounts, "[]mount.Mount", &t_mount);

static const struct go_field f_health[] = {{"Test", &t_strlist},
                                           {"Interval", &t_duration},
                                           {"Timeout", &t_duration},
                                           {"StartPeriod", &t_duration},
                                           {"StartInterval", &t_duration},
                                           {"Retries", &t_int},
                                           {0}};
GO_STRUCT_T(t_health, "container.HealthConfig", f_health);
static const struct go_field f_dns[] = {{"Nameservers", &t_strlist},
                                        {"Search", &t_strlist},
                                        {"Options", &t_strlist},
                                        {0}};
GO_STRUCT_T(t_dns, "swarm.DNSConfig", f_dns);
static const struct go_field f_file_target[] = {{"Name", &t_string},
                                                {"UID", &t_string},
                                                {"GID", &t_string},
                                                {"Mode", &t_filemode},
                                                {0}};
GO_STRUCT_T(t_secret_file, "swarm.SecretReferenceFileTarget", f_file_target);
GO_STRUCT_T(t_config_file, "swarm.ConfigReferenceFileTarget", f_file_target);
GO_STRUCT_T(t_config_runtime, "swarm.ConfigReferenceRuntimeTarget", f_nofields);
static const struct go_field f_secret[] = {{"File", &t_secret_file},
                                           {"SecretID", &t_string},
                                           {"SecretName", &t_string},
                                           {0}};
GO_STRUCT_T(t_secret, "swarm.SecretReference", f_secret);
GO_LIST(t_secrets, "[]*swarm.SecretReference", &t_secret);
static const struct go_field f_config[] = {{"File", &t_config_file},
                                           {"Runtime", &t_config_runtime},
                                           {"ConfigID", &t_string},
                                           {"ConfigName", &t_string},
                                           {0}};
GO_STRUCT_T(t_config, "swarm.ConfigReference", f_config);
GO_LIST(t_configs, "[]*swarm.ConfigReference", &t_config);
static const struct go_field f_ulimit[] = {
    {"Name", &t_string}, {"Hard", &t_int64}, {"Soft", &t_int64}, {0}};
GO_STRUCT_T(t_ulimit, "units.Ulimit", f_ulimit);
GO_LIST(t_ulimits, "[]*units.Ulimit", &t_ulimit);

static const struct go_field f_container[] = {{"Image", &t_string},
                                              {"Labels", &t_strmap},
                                              {"Command", &t_strlist},
                                              {"Args", &t_strlist},
                                              {"Hostname", &t_string},
                                              {"Env", &t_strlist},
                                              {"Dir", &t_string},
                                              {"User", &t_string},
                                              {"Groups", &t_strlist},
                                              {"Privileges", &t_priv},
                                              {"Init", &t_bool},
                                              {"StopSignal", &t_string},
                                              {"TTY", &t_bool},
                                              {"OpenStdin", &t_bool},
                                              {"ReadOnly", &t_bool},
                                              {"Mounts", &t_mounts},
                                              {"StopGracePeriod", &t_duration},
                                              {"Healthcheck", &t_health},
                                              {"Hosts", &t_strlist},
                                              {"DNSConfig", &t_dns},
                                              {"Secrets", &t_secrets},
                                              {"Configs", &t_configs},
                                              {"Isolation", &t_isolation},
                                              {"Sysctls", &t_strmap},
                                              {"CapabilityAdd", &t_strlist},
                                              {"CapabilityDrop", &t_strlist},
                                              {"Ulimits", &t_ulimits},
                                              {"OomScoreAdj", &t_int64},
                                              {0}};
GO_STRUCT_T(t_container, "swarm.ContainerSpec", f_container);

static const struct go_field f_nas[] = {{"ContainerID", &t_string}, {0}};
GO_STRUCT_T(t_nas, "swarm.NetworkAttachmentSpec", f_nas);
static const struct go_field f_limit[] = {
    {"NanoCPUs", &t_int64}, {"MemoryBytes", &t_int64}, {"Pids", &t_int64}, {0}};
GO_STRUCT_T(t_limit, "swarm.Limit", f_limit);
static const struct go_field f_named_res[] = {
    {"Kind", &t_string}, {"Value", &t_string}, {0}};
GO_STRUCT_T(t_named_res, "swarm.NamedGenericResource", f_named_res);
static const struct go_field f_discrete_res[] = {
    {"Kind", &t_string}, {"Value", &t_int64}, {0}};
GO_STRUCT_T(t_discrete_res, "swarm.DiscreteGenericResource", f_discrete_res);
static const struct go_field f_generic[] = {
    {"NamedResourceSpec", &t_named_res},
    {"DiscreteResourceSpec", &t_discrete_res},
    {0}};
GO_STRUCT_T(t_generic, "swarm.GenericResource", f_generic);
GO_LIST(t_generics, "[]swarm.GenericResource", &t_generic);
static const struct go_field f_resources[] = {{"NanoCPUs", &t_int64},
                                              {"MemoryBytes", &t_int64},
                                              {"GenericResources", &t_generics},
                                              {0}};
GO_STRUCT_T(t_resources, "swarm.Resources", f_resources);
static const struct go_field f_requirements[] = {
    {"Limits", &t_limit}, {"Reservations", &t_resources}, {0}};
GO_STRUCT_T(t_requirements, "swarm.ResourceRequirements", f_requirements);
static const struct go_field f_restart[] = {{"Condition", &t_restart_cond},
                                            {"Delay", &t_duration},
                                            {"MaxAttempts", &t_uint64},
                                            {"Window", &t_duration},
                                            {0}};
GO_STRUCT_T(t_restart, "swarm.RestartPolicy", f_restart);
static const struct go_field f_spread[] = {{"SpreadDescriptor", &t_string},
                                           {0}};
GO_STRUCT_T(t_spread, "swarm.SpreadOver", f_spread);
static const struct go_field f_pref[] = {{"Spread", &t_spread}, {0}};
GO_STRUCT_T(t_pref, "swarm.PlacementPreference", f_pref);
GO_LIST(t_prefs, "[]swarm.PlacementPreference", &t_pref);
static const struct go_field f_platform[] = {
    {"Architecture", &t_string}, {"OS", &t_string}, {0}};
GO_STRUCT_T(t_platform, "swarm.Platform", f_platform);
GO_LIST(t_platforms, "[]swarm.Platform", &t_platform);
static const struct go_field f_placement[] = {{"Constraints", &t_strlist},
                                              {"Preferences", &t_prefs},
                                              {"MaxReplicas", &t_uint64},
                                              {"Platforms", &t_platforms},
                                              {0}};
GO_STRUCT_T(t_placement, "swarm.Placement", f_placement);
static const struct go_field f_netatt[] = {{"Target", &t_string},
                                           {"Aliases", &t_strlist},
                                           {"DriverOpts", &t_strmap},
                                           {0}};
GO_STRUCT_T(t_netatt, "swarm.NetworkAttachmentConfig", f_netatt);
GO_LIST(t_netatts, "[]swarm.NetworkAttachmentConfig", &t_netatt);
static const struct go_field f_driver[] = {
    {"Name", &t_string}, {"Options", &t_strmap}, {0}};
GO_STRUCT_T(t_driver, "swarm.Driver", f_driver);
static const struct go_field f_task[] = {{"ContainerSpec", &t_container},
                                         {"PluginSpec", &t_plugin},
                                         {"NetworkAttachmentSpec", &t_nas},
                                         {"Resources", &t_requirements},
                                         {"RestartPolicy", &t_restart},
                                         {"Placement", &t_placement},
                                         {"Networks", &t_netatts},
                                         {"LogDriver", &t_driver},
                                         {"ForceUpdate", &t_uint64},
                                         {"Runtime", &t_runtime_type},
                                         {0}};
GO_STRUCT_T(t_task, "swarm.TaskSpec", f_task);

static const struct go_field f_replicated[] = {{"Replicas", &t_uint64}, {0}};
GO_STRUCT_T(t_replicated, "swarm.ReplicatedService", f_replicated);
GO_STRUCT_T(t_global, "swarm.GlobalService", f_nofields);
static const struct go_field f_rjob[] = {
    {"MaxConcurrent", &t_uint64}, {"TotalCompletions", &t_uint64}, {0}};
GO_STRUCT_T(t_rjob, "swarm.ReplicatedJob", f_rjob);
GO_STRUCT_T(t_gjob, "swarm.GlobalJob", f_nofields);
static const struct go_field f_mode[] = {{"Replicated", &t_replicated},
                                         {"Global", &t_global},
                                         {"ReplicatedJob", &t_rjob},
                                         {"GlobalJob", &t_gjob},
                                         {0}};
GO_STRUCT_T(t_mode, "swarm.ServiceMode", f_mode);
static const struct go_field f_update[] = {{"Parallelism", &t_uint64},
                                           {"Delay", &t_duration},
                                           {"FailureAction", &t_string},
                                           {"Monitor", &t_duration},
                                           {"MaxFailureRatio", &t_float32},
                                           {"Order", &t_string},
                                           {0}};
GO_STRUCT_T(t_update, "swarm.UpdateConfig", f_update);
static const struct go_field f_port[] = {{"Name", &t_string},
                                         {"Protocol", &t_port_proto},
                                         {"TargetPort", &t_uint32},
                                         {"PublishedPort", &t_uint32},
                                         {"PublishMode", &t_publish_mode},
                                         {0}};
GO_STRUCT_T(t_port, "swarm.PortConfig", f_port);
GO_LIST(t_ports, "[]swarm.PortConfig", &t_port);
static const struct go_field f_endpoint[] = {
    {"Mode", &t_resolution}, {"Ports", &t_ports}, {0}};
GO_STRUCT_T(t_endpoint, "swarm.EndpointSpec", f_endpoint);

/* Annotations (Name, Labels) is embedded: its fields sit in ServiceSpec. */
static const struct go_field f_service[] = {{"Name", &t_string},
                                            {"Labels", &t_strmap},
                                            {"TaskTemplate", &t_task},
                                            {"Mode", &t_mode},
                                            {"UpdateConfig", &t_update},
                                            {"RollbackConfig", &t_update},
                                            {"Networks", &t_netatts},
                                            {"EndpointSpec", &t_endpoint},
                                            {0}};
const struct go_type go_service_spec = {GO_STRUCT, "swarm.ServiceSpec", 0,
                                        f_service, NULL};
