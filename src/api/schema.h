/* Type checks for request bodies, so a wrong JSON type is a 400 with the
 * message dockerd's Go decoder gives ("json: cannot unmarshal string into
 * Go struct field InitRequest.Spec.Raft.SnapshotInterval of type uint64")
 * instead of being silently read as a default. null is accepted anywhere
 * (Go reads it as the zero value). */
#ifndef SHOAL_API_SCHEMA_H
#define SHOAL_API_SCHEMA_H

#include <jansson.h>
#include <stddef.h>

struct sh_err;

enum schema_type {
  SCHEMA_STRING,
  SCHEMA_BOOL,
  SCHEMA_INT,  /* signed integer */
  SCHEMA_UINT, /* unsigned integer */
  SCHEMA_OBJECT,
  SCHEMA_STRMAP,  /* map[string]string */
  SCHEMA_STRLIST, /* []string */
  SCHEMA_LIST,    /* any array */
};

struct schema_field {
  const char *path; /* dotted, relative to the body */
  enum schema_type type;
  const char *go_type; /* as Go names it: "int64", "time.Duration" */
};

/* Checks every listed field that is present; struct_name prefixes paths in
 * the message. */
int schema_check(const json_t *body, const char *struct_name,
                 const struct schema_field *fields, struct sh_err *err);

/* Go types as encoding/json sees them, for checking a raw body the way
 * Go's decoder does: in document order, number literals as written
 * ("number 1e12", "number -1"), errors naming the innermost struct and the
 * field path from the root ("ReplicatedService.Mode.Replicated.Replicas"),
 * field names matched case-insensitively, unknown fields ignored. */
enum go_kind {
  GO_ANY, /* not checked ([]byte, interface{}) */
  GO_STRING,
  GO_BOOL,
  GO_INT,
  GO_UINT,
  GO_FLOAT,
  GO_STRUCT,
  GO_SLICE,
  GO_MAP, /* map[string]elem */
};

struct go_field;

struct go_type {
  enum go_kind kind;
  const char *name; /* reflect's String(): "uint64", "swarm.TaskSpec" */
  int bits;         /* GO_INT, GO_UINT, GO_FLOAT */
  const struct go_field *fields; /* GO_STRUCT, ended by {0} */
  const struct go_type *elem;    /* GO_SLICE, GO_MAP */
};

struct go_field {
  const char *name; /* the JSON key */
  const struct go_type *type;
};

/* 400 "invalid JSON: json: cannot unmarshal ..." (moby's ReadJSON wording)
 * at the first value Go could not decode into root; 0 otherwise. The body
 * must already be valid JSON. */
int schema_check_go(const char *json, size_t len, const struct go_type *root,
                    struct sh_err *err);

/* swarm.ServiceSpec of API v1.47 (service create and update). */
extern const struct go_type go_service_spec;

extern const struct schema_field schema_swarm_spec[];
extern const struct schema_field schema_init_request[];
extern const struct schema_field schema_join_request[];
extern const struct schema_field schema_node_spec[];

#endif
