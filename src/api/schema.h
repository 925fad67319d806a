/* Type checks for request bodies, so a wrong JSON type is a 400 with the
 * message dockerd's Go decoder gives ("json: cannot unmarshal string into
 * Go struct field InitRequest.Spec.Raft.SnapshotInterval of type uint64")
 * instead of being silently read as a default. null is accepted anywhere
 * (Go reads it as the zero value). */
#ifndef SHOAL_API_SCHEMA_H
#define SHOAL_API_SCHEMA_H

#include <jansson.h>

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

extern const struct schema_field schema_swarm_spec[];
extern const struct schema_field schema_init_request[];
extern const struct schema_field schema_join_request[];
extern const struct schema_field schema_node_spec[];

#endif
