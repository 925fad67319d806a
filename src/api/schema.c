#include "api/schema.h"

#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"

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

static const char *json_type_name(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    return "object";
  case JSON_ARRAY:
    return "array";
  case JSON_STRING:
    return "string";
  case JSON_INTEGER:
  case JSON_REAL:
    return "number";
  case JSON_TRUE:
  case JSON_FALSE:
    return "bool";
  default:
    return "null";
  }
}

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
    const char *got = json_type_name(v);
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
