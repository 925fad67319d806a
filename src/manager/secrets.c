/* Secrets and configs: swarmkit's controlapi (secret.go, config.go, the
 * reference checks of service.go) with its messages (see secrets.h). */
#include "manager/secrets.h"

#include "core/b64.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "manager/internal.h"
#include "manager/orchtask.h"

#include <openssl/crypto.h>

#define DATA_KEY "_Data"

static const char *kname(enum store_kind kind) {
  return kind == STORE_SECRET ? "secret" : "config";
}

/* swarmkit's isValidConfigOrSecretName:
 * ^[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?$ */
static bool valid_name(const char *n) {
  size_t len = strlen(n);
  if (len == 0 || len > 64)
    return false;
  for (size_t i = 0; i < len; i++) {
    char c = n[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9');
    bool mid = alnum || c == '-' || c == '_' || c == '.';
    if ((i == 0 || i == len - 1) ? !alnum : !mid)
      return false;
  }
  return true;
}

static int check_labels(const json_t *labels, sh_err *err) {
  if (!labels || json_is_null(labels))
    return 0;
  if (!json_is_object(labels))
    return sh_error(err, 400, "invalid labels");
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)labels, k, v) {
    if (!json_is_string(v))
      return sh_error(err, 400, "label %s: value must be a string", k);
  }
  return 0;
}

static json_t *labels_of(const json_t *spec) {
  json_t *l = json_object_get(spec, "Labels");
  return json_is_object(l) ? json_deep_copy(l) : json_object();
}

/* Data ([]byte, base64 in JSON): decoded, size checked as swarmkit does. */
static int check_data(enum store_kind kind, const json_t *data, sh_err *err) {
  if (data && !json_is_null(data) && !json_is_string(data))
    return sh_error(err, 400,
                    "invalid JSON: json: cannot unmarshal %s into Go struct "
                    "field %sSpec.Data of type []uint8",
                    json_is_object(data)   ? "object"
                    : json_is_array(data)  ? "array"
                    : json_is_number(data) ? "number"
                                           : "bool",
                    kind == STORE_SECRET ? "Secret" : "Config");
  size_t len = 0;
  unsigned char *raw = NULL;
  if (json_is_string(data) &&
      b64_decode(json_string_value(data), &raw, &len, err) < 0) {
    err->status = 400;
    return sh_err_wrap(err, "invalid JSON");
  }
  if (raw) {
    OPENSSL_cleanse(raw, len);
    free(raw);
  }
  size_t max =
      kind == STORE_SECRET ? SECRETS_MAX_SECRET_SIZE : SECRETS_MAX_CONFIG_SIZE;
  if (len >= max || len < 1)
    return rpcf(err, 400,
                "%s data must be larger than 0 and less than %zu bytes",
                kname(kind), max);
  return 0;
}

json_t *secrets_create(struct store *s, enum store_kind kind,
                       const json_t *spec, const char *id, sh_err *err) {
  if (!json_is_object(spec)) {
    rpc_error(err, 400, "invalid argument");
    return NULL;
  }
  const json_t *driver = json_object_get(spec, "Driver");
  const json_t *tmpl = json_object_get(spec, "Templating");
  const char *name = jx_str(spec, "Name", "");
  if (!*name) {
    rpc_error(err, 400, "name must be provided");
    return NULL;
  }
  if (!valid_name(name)) {
    rpc_error(err, 400,
              "invalid name, only 64 [a-zA-Z0-9-_.] characters allowed, and "
              "the start and end character must be [a-zA-Z0-9]");
    return NULL;
  }
  if (check_labels(json_object_get(spec, "Labels"), err) < 0)
    return NULL;
  if (kind == STORE_SECRET && json_is_object(driver)) {
    if (!*jx_str(driver, "Name", ""))
      rpc_error(err, 400, "secret driver must have a name");
    else
      sh_error(err, 501,
               "secret drivers (Driver) are not supported by shoal: the "
               "secret's Data is stored in the swarm");
    return NULL;
  }
  if (json_is_object(tmpl)) {
    sh_error(err, 501,
             "templating (Templating) of %ss is not supported by shoal",
             kname(kind));
    return NULL;
  }
  const json_t *data = json_object_get(spec, "Data");
  if (check_data(kind, data, err) < 0)
    return NULL;
  json_t *same = store_find(s, kind, name, NULL);
  if (same && strcmp(jx_str(same, "Spec.Name", ""), name) == 0) {
    rpcf(err, 409, "%s %s already exists", kname(kind), name);
    return NULL;
  }
  return json_pack("{s:s, s:{s:s, s:o}, s:s}", "ID", id, "Spec", "Name", name,
                   "Labels", labels_of(spec), DATA_KEY,
                   json_string_value(data));
}

json_t *secrets_update(struct store *s, enum store_kind kind, const char *ref,
                       const json_t *spec, sh_err *err) {
  json_t *cur = store_find(s, kind, ref, err);
  if (!cur)
    return NULL;
  if (!json_is_object(spec)) {
    rpc_error(err, 400, "invalid argument");
    return NULL;
  }
  if (check_labels(json_object_get(spec, "Labels"), err) < 0)
    return NULL;
  bool same =
      strcmp(jx_str(spec, "Name", ""), jx_str(cur, "Spec.Name", "")) == 0;
  const json_t *data = json_object_get(spec, "Data");
  if (same && json_is_string(data)) {
    /* Compared decoded and in constant time, as swarmkit does. */
    unsigned char *a = NULL, *b = NULL;
    size_t al = 0, bl = 0;
    if (b64_decode(json_string_value(data), &a, &al, err) < 0) {
      err->status = 400;
      sh_err_wrap(err, "invalid JSON");
      return NULL;
    }
    if (b64_decode(jx_str(cur, DATA_KEY, ""), &b, &bl, NULL) < 0)
      bl = 0;
    same = al == bl && b && CRYPTO_memcmp(a, b, al) == 0;
    OPENSSL_cleanse(a, al);
    if (b)
      OPENSSL_cleanse(b, bl);
    free(a);
    free(b);
  } else if (data && !json_is_null(data)) {
    same = false;
  }
  if (!same) {
    rpc_error(err, 400, "only updates to Labels are allowed");
    return NULL;
  }
  json_t *next = json_deep_copy(cur);
  jx_set(next, "Spec.Labels", labels_of(spec));
  return next;
}

static const char *refs_key(enum store_kind kind) {
  return kind == STORE_SECRET ? "Secrets" : "Configs";
}

static bool service_uses(const json_t *svc, enum store_kind kind,
                         const char *id) {
  char path[64];
  snprintf(path, sizeof path, "Spec.TaskTemplate.ContainerSpec.%s",
           refs_key(kind));
  const char *idkey = kind == STORE_SECRET ? "SecretID" : "ConfigID";
  size_t i;
  json_t *r;
  json_array_foreach(jx_get(svc, path), i, r) {
    if (strcmp(jx_str(r, idkey, ""), id) == 0)
      return true;
  }
  return false;
}

/* swarmkit's refusal when services reference obj (0 when none do). */
static int check_use(enum store_kind kind, const json_t *obj,
                     const json_t *svcs, sh_err *err) {
  const char *id = jx_str(obj, "ID", "");
  cleanup_buf sh_buf names = {0};
  size_t i, n = 0;
  json_t *svc;
  json_array_foreach(svcs, i, svc) {
    if (service_uses(svc, kind, id))
      buf_printf(&names, "%s%s", n++ ? ", " : "", jx_str(svc, "Spec.Name", ""));
  }
  if (n)
    return rpcf(err, 400, "%s '%s' is in use by the following %s: %s",
                kname(kind), jx_str(obj, "Spec.Name", ""),
                n == 1 ? "service" : "services", names.data);
  return 0;
}

const char *secrets_remove(struct store *s, enum store_kind kind,
                           const char *ref, sh_err *err) {
  json_t *cur = store_find(s, kind, ref, err);
  if (!cur)
    return NULL;
  cleanup_json json_t *svcs = store_list(s, STORE_SERVICE);
  if (check_use(kind, cur, svcs, err) < 0)
    return NULL;
  return jx_str(cur, "ID", "");
}

int secrets_check_pending_use(enum store_kind kind, const json_t *obj,
                              const json_t *services, sh_err *err) {
  return check_use(kind, obj, services, err);
}

int secrets_check_removing(const json_t *spec, const json_t *removing,
                           sh_err *err) {
  cleanup_json json_t *svc = json_pack("{s:O}", "Spec", spec);
  size_t i;
  json_t *r;
  json_array_foreach(removing, i, r) {
    enum store_kind kind = (enum store_kind)jx_int(r, "Kind", STORE_SECRET);
    if (service_uses(svc, kind, jx_str(r, "ID", "")))
      return rpcf(err, 400, "%s not found: %s", kname(kind),
                  jx_str(r, "Name", ""));
  }
  return 0;
}

json_t *secrets_view(enum store_kind kind, const json_t *obj) {
  json_t *v = store_public(obj);
  json_t *spec = json_object_get(v, "Spec");
  if (json_is_object(spec) && !json_is_object(json_object_get(spec, "Labels")))
    json_object_set_new(spec, "Labels", json_object());
  if (kind == STORE_CONFIG && json_is_object(spec))
    json_object_set_new(spec, "Data", json_string(jx_str(obj, DATA_KEY, "")));
  return v;
}

static bool all_digits(const char *s) {
  if (!*s)
    return false;
  for (; *s; s++)
    if (*s < '0' || *s > '9')
      return false;
  return true;
}

/* validateSecretRefsSpec / validateConfigRefsSpec, then
 * checkSecretExistence / checkConfigExistence. */
static int check_kind_refs(struct store *s, enum store_kind kind,
                           const json_t *cs, sh_err *err) {
  const char *k = kname(kind);
  const char *idkey = kind == STORE_SECRET ? "SecretID" : "ConfigID";
  const char *namekey = kind == STORE_SECRET ? "SecretName" : "ConfigName";
  const json_t *refs = json_object_get(cs, refs_key(kind));
  cleanup_json json_t *targets = json_object();
  size_t i;
  json_t *r;
  json_array_foreach(refs, i, r) {
    const char *id = jx_str(r, idkey, "");
    const char *name = jx_str(r, namekey, "");
    if (!*id || !*name)
      return rpcf(err, 400, "malformed %s reference", k);
    const json_t *file = json_object_get(r, "File");
    bool runtime = json_is_object(json_object_get(r, "Runtime"));
    if (!json_is_object(file) && runtime)
      return sh_error(err, 501,
                      "config references with a Runtime target (Windows "
                      "credential specs) are not supported by shoal");
    if (!json_is_object(file))
      return rpcf(err, 400, "malformed %s reference, no target provided", k);
    const char *fname = jx_str(file, "Name", "");
    if (!*fname)
      return rpcf(err, 400,
                  "malformed file %s reference, invalid target file name "
                  "provided",
                  k);
    const char *prev = jx_str(targets, fname, NULL);
    if (prev)
      return rpcf(err, 400,
                  "%s references '%s' and '%s' have a conflicting target: "
                  "'%s'",
                  k, prev, name, fname);
    json_object_set_new(targets, fname, json_string(name));
    /* dockerd reads these with strconv.Atoi when the task starts: a bad
     * one is refused now rather than failing every task. */
    const char *uid = jx_str(file, "UID", "");
    const char *gid = jx_str(file, "GID", "");
    if ((*uid && !all_digits(uid)) || (*gid && !all_digits(gid)))
      return sh_error(err, 400,
                      "invalid %s reference %s: UID and GID must be numeric", k,
                      name);
    if (jx_int(file, "Mode", 0) < 0 || jx_int(file, "Mode", 0) > 07777)
      return sh_error(err, 400, "invalid %s reference %s: invalid file mode", k,
                      name);
  }
  cleanup_buf sh_buf missing = {0};
  size_t n = 0;
  json_array_foreach(refs, i, r) {
    json_t *obj = store_get(s, kind, jx_str(r, idkey, ""));
    const char *name = jx_str(r, namekey, "");
    if (!obj || strcmp(jx_str(obj, "Spec.Name", ""), name) != 0)
      buf_printf(&missing, "%s%s", n++ ? ", " : "", name);
  }
  if (n)
    return rpcf(err, 400, "%s%s not found: %s", k, n == 1 ? "" : "s",
                missing.data);
  return 0;
}

int secrets_check_refs(struct store *s, const json_t *spec, sh_err *err) {
  const json_t *cs = jx_get(spec, "TaskTemplate.ContainerSpec");
  if (check_kind_refs(s, STORE_SECRET, cs, err) < 0 ||
      check_kind_refs(s, STORE_CONFIG, cs, err) < 0)
    return -1;
  return 0;
}

json_t *secrets_for_tasks(struct store *s, const json_t *tasks) {
  json_t *out = json_pack("{s:[], s:[]}", "Secrets", "Configs");
  cleanup_json json_t *seen = json_object();
  size_t i;
  json_t *t;
  json_array_foreach(tasks, i, t) {
    /* Tasks to run: desired running, or complete (a job's) and not
     * ended yet. */
    if (task_desired(t) > TS_COMPLETE || task_state(t) > TS_RUNNING)
      continue;
    for (int k = 0; k < 2; k++) {
      enum store_kind kind = k ? STORE_CONFIG : STORE_SECRET;
      const char *idkey = k ? "ConfigID" : "SecretID";
      char path[64];
      snprintf(path, sizeof path, "Spec.ContainerSpec.%s", refs_key(kind));
      size_t j;
      json_t *r;
      json_array_foreach(jx_get(t, path), j, r) {
        const char *id = jx_str(r, idkey, "");
        char key[80];
        snprintf(key, sizeof key, "%s/%s", kname(kind), id);
        json_t *obj = store_get(s, kind, id);
        if (!obj || json_object_get(seen, key))
          continue;
        json_object_set_new(seen, key, json_true());
        json_array_append_new(json_object_get(out, refs_key(kind)),
                              json_pack("{s:s, s:s, s:s}", "ID", id, "Name",
                                        jx_str(obj, "Spec.Name", ""), "Data",
                                        jx_str(obj, DATA_KEY, "")));
      }
    }
  }
  return out;
}
