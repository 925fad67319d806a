/* Service control operations (see services.h). The checks run in the
 * order moby's ServiceSpecToGRPC then swarmkit's validateServiceSpec run
 * them, so the first error a user sees is Docker's. */
#include "manager/services.h"
#include "manager/orchtask.h"
#include "manager/secrets.h"
#include "manager/mesh.h"
#include "exec/caps.h"
#include "exec/exec.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "image/image.h"
#include "manager/constraint.h"
#include "manager/internal.h"
#include "seccomp/seccomp.h"
#include "store/store.h"

#include <ctype.h>

#define DEFAULT_STOP_GRACE (10 * NS_PER_SEC)
#define DEFAULT_DELAY (5 * NS_PER_SEC)
#define DEFAULT_MONITOR (5 * NS_PER_SEC)
#define DYNAMIC_PORT_START 30000
#define DYNAMIC_PORT_END 32767

static bool in_set(const char *v, const char *const *set) {
  for (; *set; set++)
    if (strcmp(v, *set) == 0)
      return true;
  return false;
}

/* ^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$ : alphanumerics, with '-' and '_'
 * only between them. */
bool valid_dns_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || !isalnum((unsigned char)s[0]) ||
      !isalnum((unsigned char)s[n - 1]))
    return false;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
      return false;
  return true;
}

/* A light form of distribution's reference grammar: optional domain
 * (may hold '.', ':' port, uppercase), lowercase path components joined
 * by '/', separators [._-] inside, then ":tag" and/or "@algo:hex". */
static bool valid_reference(const char *ref) {
  const char *at = strchr(ref, '@');
  size_t len = at ? (size_t)(at - ref) : strlen(ref);
  if (at) {
    const char *d = at + 1, *colon = strchr(d, ':');
    if (!colon || colon == d || !colon[1])
      return false;
    for (const char *p = colon + 1; *p; p++)
      if (!isxdigit((unsigned char)*p))
        return false;
  }
  if (len == 0)
    return false;
  cleanup_free char *name = xstrndup(ref, len);
  /* tag: after the last ':' that follows the last '/' */
  char *slash = strrchr(name, '/');
  char *colon = strrchr(slash ? slash : name, ':');
  if (colon) {
    *colon = '\0';
    const char *tag = colon + 1;
    size_t tl = strlen(tag);
    if (tl == 0 || tl > 128 ||
        !(isalnum((unsigned char)tag[0]) || tag[0] == '_'))
      return false;
    for (size_t i = 0; i < tl; i++)
      if (!isalnum((unsigned char)tag[i]) && !strchr("_.-", tag[i]))
        return false;
  }
  char *comp = name;
  char *first_slash = strchr(name, '/');
  if (first_slash) {
    /* A first component with '.' or ':' or "localhost" is a domain. */
    size_t dl = (size_t)(first_slash - name);
    bool domain = memchr(name, '.', dl) || memchr(name, ':', dl) ||
                  (dl == 9 && strncmp(name, "localhost", 9) == 0);
    for (size_t i = 0; i < dl; i++)
      if (isupper((unsigned char)name[i]))
        domain = true;
    if (domain) {
      for (size_t i = 0; i < dl; i++)
        if (!isalnum((unsigned char)name[i]) && !strchr(".-:", name[i]))
          return false;
      comp = first_slash + 1;
    }
  }
  /* path components: [a-z0-9]+ joined by '.', '_', '__' or '-'+ */
  for (char *c = comp;; c++) {
    char *end = strchr(c, '/');
    size_t cl = end ? (size_t)(end - c) : strlen(c);
    if (cl == 0 || !isalnum((unsigned char)c[0]) ||
        !isalnum((unsigned char)c[cl - 1]))
      return false;
    for (size_t i = 0; i < cl; i++) {
      unsigned char ch = (unsigned char)c[i];
      if (isupper(ch))
        return false;
      if (!isalnum(ch) && !strchr("._-", ch))
        return false;
    }
    if (!end)
      break;
    c = end;
  }
  return true;
}

static int check_resources(const json_t *r, sh_err *err) {
  int64_t cpu = jx_int(r, "NanoCPUs", 0), mem = jx_int(r, "MemoryBytes", 0);
  if (cpu != 0 && cpu < 1000000)
    return rpcf(err, 400, "invalid cpu value %g: Must be at least %g",
                (double)cpu / 1e9, 1e6 / 1e9);
  if (mem != 0 && mem < 4 * 1024 * 1024)
    return rpcf(err, 400, "invalid memory value %lld: Must be at least 4MiB",
                (long long)mem);
  return 0;
}

static int check_update_config(const json_t *u, const char *what, sh_err *err) {
  if (!u)
    return 0;
  static const char *const actions[] = {"", "pause", "continue", "rollback",
                                        NULL};
  static const char *const orders[] = {"", "stop-first", "start-first", NULL};
  const char *a = jx_str(u, "FailureAction", "");
  if (!in_set(a, actions))
    return sh_error(err, 400, "unrecognized update failure action %s", a);
  const char *o = jx_str(u, "Order", "");
  if (!in_set(o, orders))
    return sh_error(err, 400, "unrecognized update order %s", o);
  (void)what;
  return 0;
}

/* swarmkit's validateUpdate (UpdateConfig only, as in swarmkit). */
static int check_update_values(const json_t *u, sh_err *err) {
  if (!u)
    return 0;
  if (jx_int(u, "Delay", 0) < 0)
    return rpc_error(err, 400, "TaskSpec: update-delay cannot be negative");
  if (jx_int(u, "Monitor", 0) < 0)
    return rpc_error(err, 400, "TaskSpec: update-monitor cannot be negative");
  json_t *r = json_object_get(u, "MaxFailureRatio");
  double ratio = json_is_number(r) ? json_number_value(r) : 0;
  if (ratio < 0 || ratio > 1)
    return rpc_error(err, 400,
                     "TaskSpec: update-maxfailureratio cannot be less than 0 "
                     "or bigger than 1");
  return 0;
}

/* What one service may make the store hold (see services.h). Every task
 * carries a copy of the TaskTemplate and EndpointSpec, so the bound is
 * on replicas and on replicas times that copy. */
static int check_size(const json_t *spec, sh_err *err) {
  json_t *r = jx_get(spec, "Mode.Replicated.Replicas");
  int64_t n = json_is_integer(r) ? json_integer_value(r) : 1;
  /* A job's slots: as many as completions or concurrent tasks. */
  if (jx_get(spec, "Mode.ReplicatedJob")) {
    int64_t total = jx_int(spec, "Mode.ReplicatedJob.TotalCompletions", 0);
    int64_t conc = jx_int(spec, "Mode.ReplicatedJob.MaxConcurrent", 0);
    n = total > conc ? total : conc;
  }
  if (n > SERVICES_MAX_REPLICAS)
    return rpcf(err, 400,
                "replicas %lld exceeds the limit of %d tasks per service",
                (long long)n, SERVICES_MAX_REPLICAS);
  size_t per_task = SERVICES_TASK_OVERHEAD;
  const char *parts[] = {"TaskTemplate", "EndpointSpec"};
  for (size_t i = 0; i < ARRAY_SIZE(parts); i++) {
    json_t *p = json_object_get(spec, parts[i]);
    cleanup_free char *text = p ? jx_dumps(p, JSON_COMPACT, NULL) : NULL;
    per_task += text ? strlen(text) : 0;
  }
  if ((uint64_t)n * per_task > SERVICES_MAX_TASK_BYTES)
    return rpcf(err, 400,
                "%lld tasks of %zu bytes each exceed the limit of %d MiB of "
                "tasks per service",
                (long long)n, per_task, SERVICES_MAX_TASK_BYTES >> 20);
  return 0;
}

static int count_modes(const json_t *mode) {
  int n = 0;
  static const char *const modes[] = {"Replicated", "Global", "ReplicatedJob",
                                      "GlobalJob"};
  for (size_t i = 0; i < ARRAY_SIZE(modes); i++)
    if (json_object_get(mode, modes[i]) &&
        !json_is_null(json_object_get(mode, modes[i])))
      n++;
  return n;
}

/* Privileges and capabilities shoal applies, or refuses (nothing stored
 * and ignored): capabilities as dockerd checks them, NoNewPrivileges;
 * no AppArmor, SELinux labels or Windows credential specs. */
static int check_privileges(const json_t *cs, sh_err *err) {
  cleanup_free const char **caps = NULL;
  if (exec_caps(json_object_get(cs, "CapabilityAdd"),
                json_object_get(cs, "CapabilityDrop"), &caps, err) < 0)
    return -1;
  const json_t *pv = json_object_get(cs, "Privileges");
  const char *aa = jx_str(pv, "AppArmor.Mode", "");
  if (*aa && strcmp(aa, "disabled") != 0)
    return sh_error(err, 501,
                    "AppArmor profiles are not applied by shoal: use mode "
                    "\"disabled\" or leave it out");
  const json_t *se = json_object_get(pv, "SELinuxContext");
  if (*jx_str(se, "User", "") || *jx_str(se, "Role", "") ||
      *jx_str(se, "Type", "") || *jx_str(se, "Level", ""))
    return sh_error(err, 501, "SELinux labels are not applied by shoal");
  const json_t *cred = json_object_get(pv, "CredentialSpec");
  if (*jx_str(cred, "Config", "") || *jx_str(cred, "File", "") ||
      *jx_str(cred, "Registry", ""))
    return sh_error(err, 400,
                    "credential specs are only for Windows containers");
  return 0;
}

/* A ContainerSpec or TaskTemplate field set to something shoal would not
 * apply is refused by name (the docker CLI sends Init false and an empty
 * DNSConfig by default: those are what shoal does). */
/* swarmkit's validateHealthCheck */
static int check_healthcheck(const json_t *hc, sh_err *err) {
  static const char *const durs[] = {"Interval", "Timeout", "StartPeriod",
                                     "StartInterval"};
  for (size_t i = 0; i < ARRAY_SIZE(durs); i++) {
    int64_t v = jx_int(hc, durs[i], 0);
    if (v != 0 && v < NS_PER_MS) {
      char msg[96];
      snprintf(msg, sizeof msg,
               "ContainerSpec: %s in HealthConfig cannot be less than 1ms",
               durs[i]);
      return rpc_error(err, 400, msg);
    }
  }
  if (jx_int(hc, "Retries", 0) < 0)
    return rpc_error(err, 400,
                     "ContainerSpec: Retries in HealthConfig cannot be "
                     "negative");
  return 0;
}

/* --sysctl and --ulimit as the node would refuse them, at create time. */
static int check_limits(const json_t *cs, sh_err *err) {
  const char *name;
  json_t *v;
  json_object_foreach(json_object_get(cs, "Sysctls"), name, v) {
    if (!json_is_string(v))
      return sh_error(err, 400, "sysctl %s: the value must be a string", name);
    /* net.* in the host's namespace is refused where the task lands. */
    if (exec_check_sysctl(name, false, err) < 0)
      return -1;
  }
  size_t i;
  json_array_foreach(json_object_get(cs, "Ulimits"), i, v) {
    cleanup_json json_t *one = json_pack("[O]", v);
    cleanup_json json_t *oci = NULL;
    if (exec_rlimits(one, &oci, err) < 0)
      return -1;
  }
  return 0;
}

static int check_unapplied(const json_t *tt, sh_err *err) {
  const json_t *cs = json_object_get(tt, "ContainerSpec");
  const char *iso = jx_str(cs, "Isolation", "");
  const char *logd = jx_str(tt, "LogDriver.Name", "");
  int64_t oom = jx_int(cs, "OomScoreAdj", 0);
  /* stdin: nothing attaches to a task's container (conmon runs it
   * without --stdin); refused rather than half-done. TTY is applied. */
  const char *what =
      jx_bool(cs, "OpenStdin", false) ? "ContainerSpec.OpenStdin"
      : *iso && strcmp(iso, "default") != 0
          ? "--isolation (ContainerSpec.Isolation)"
      : *logd && strcmp(logd, "json-file") != 0
          ? "--log-driver other than json-file (TaskTemplate.LogDriver)"
          : NULL;
  if (what)
    return sh_error(err, 501, "%s is not supported by shoal yet", what);
  if (oom < -1000 || oom > 1000)
    return sh_error(err, 400,
                    "Invalid value %lld, range for oom score adj "
                    "is [-1000, 1000]",
                    (long long)oom);
  if (check_healthcheck(json_object_get(cs, "Healthcheck"), err) < 0 ||
      check_limits(cs, err) < 0)
    return -1;
  return 0;
}

int services_validate_spec(const json_t *spec, sh_err *err) {
  if (!json_is_object(spec))
    return rpc_error(err, 400, "invalid argument");
  json_t *tt = json_object_get(spec, "TaskTemplate");
  json_t *mode = json_object_get(spec, "Mode");
  /* moby: ServiceSpecToGRPC */
  const char *runtime = jx_str(tt, "Runtime", "");
  if (*runtime && strcmp(runtime, "container") != 0)
    return sh_error(err, 400, "unsupported runtime");
  json_t *cs = json_object_get(tt, "ContainerSpec");
  if (!json_is_object(cs))
    return sh_error(err, 400, "mismatched Runtime and *Spec fields");
  static const char *const conds[] = {"", "none", "on-failure", "any", NULL};
  const char *cond = jx_str(tt, "RestartPolicy.Condition", "");
  if (!in_set(cond, conds))
    return sh_error(err, 400, "invalid RestartCondition: \"%s\"", cond);
  if (check_update_config(json_object_get(spec, "UpdateConfig"), "update",
                          err) < 0 ||
      check_update_config(json_object_get(spec, "RollbackConfig"), "rollback",
                          err) < 0)
    return -1;
  const json_t *kci = json_object_get(json_object_get(spec, "Labels"),
                                      MESH_KEEP_CLIENT_IP_LABEL);
  if (kci &&
      (!json_is_string(kci) || (strcmp(json_string_value(kci), "true") != 0 &&
                                strcmp(json_string_value(kci), "false") != 0)))
    return sh_error(err, 400, "label %s must be true or false",
                    MESH_KEEP_CLIENT_IP_LABEL);
  static const char *const emodes[] = {"", "vip", "dnsrr", NULL};
  const char *emode = jx_str(spec, "EndpointSpec.Mode", "");
  if (!in_set(emode, emodes))
    return sh_error(err, 400, "invalid resolution mode: \"%s\"", emode);
  if (count_modes(mode) > 1)
    return sh_error(err, 400, "must specify only one service mode");
  if (jx_get(spec, "Mode.ReplicatedJob") || jx_get(spec, "Mode.GlobalJob")) {
    /* swarmkit validateMode; the update and rollback refusal is the docker
     * CLI's (swarmkit would store and ignore them). */
    if (jx_int(spec, "Mode.ReplicatedJob.MaxConcurrent", 0) < 0)
      return rpc_error(err, 400,
                       "Maximum concurrent jobs must not be negative");
    if (jx_int(spec, "Mode.ReplicatedJob.TotalCompletions", 0) < 0)
      return rpc_error(err, 400, "Total completed jobs must not be negative");
    const json_t *uc = json_object_get(spec, "UpdateConfig");
    const json_t *rc = json_object_get(spec, "RollbackConfig");
    if ((uc && !json_is_null(uc)) || (rc && !json_is_null(rc)))
      return sh_error(err, 400,
                      "update and rollback configuration is not supported "
                      "for jobs");
  }

  /* swarmkit: validateServiceSpec */
  const char *name = jx_str(spec, "Name", "");
  if (*name) {
    if (!valid_dns_name(name))
      return rpc_error(err, 400, "name must be valid as a DNS name component");
    if (strlen(name) > 63)
      return rpc_error(err, 400, "name must be 63 characters or fewer");
  }
  if (check_resources(jx_get(tt, "Resources.Limits"), err) < 0 ||
      check_resources(jx_get(tt, "Resources.Reservations"), err) < 0)
    return -1;
  if (jx_int(tt, "RestartPolicy.Delay", 0) < 0)
    return rpc_error(err, 400, "TaskSpec: restart-delay cannot be negative");
  if (jx_int(tt, "RestartPolicy.Window", 0) < 0)
    return rpc_error(err, 400, "TaskSpec: restart-window cannot be negative");
  struct constraint *c = NULL;
  size_t nc = 0;
  sh_err cerr = {0};
  if (constraints_parse(jx_get(tt, "Placement.Constraints"), &c, &nc, &cerr) <
      0)
    return rpc_error(err, 500, cerr.msg); /* a plain error: gRPC Unknown */
  constraints_free(c, nc);
  const char *image = jx_str(cs, "Image", "");
  if (!*image)
    return rpc_error(err, 400,
                     "ContainerSpec: image reference must be provided");
  if (!valid_reference(image))
    return rpcf(err, 400, "ContainerSpec: \"%s\" is not a valid repository/tag",
                image);
  json_t *seen = json_object();
  size_t i;
  json_t *m;
  json_array_foreach(json_object_get(cs, "Mounts"), i, m) {
    const char *target = jx_str(m, "Target", "");
    if (json_object_get(seen, target)) {
      json_decref(seen);
      return rpcf(err, 400, "ContainerSpec: duplicate mount point: %s", target);
    }
    json_object_set_new(seen, target, json_true());
  }
  json_decref(seen);
  /* Refused here rather than failing every task later. */
  enum seccomp_mode smode;
  cleanup_seccomp seccomp_profile *custom = NULL;
  if (seccomp_from_swarm(jx_get(cs, "Privileges.Seccomp"), &smode, &custom,
                         err) < 0 ||
      check_privileges(cs, err) < 0 || check_unapplied(tt, err) < 0)
    return -1;
  if (jx_int(spec, "Mode.Replicated.Replicas", 0) < 0)
    return rpc_error(err, 400, "Number of replicas must be non-negative");
  if (check_size(spec, err) < 0)
    return -1;
  if (check_update_values(json_object_get(spec, "UpdateConfig"), err) < 0)
    return -1;
  /* validateEndpointSpec */
  json_t *seenp = json_object();
  json_t *p;
  json_array_foreach(jx_get(spec, "EndpointSpec.Ports"), i, p) {
    const char *pm = jx_str(p, "PublishMode", "");
    if (strcmp(emode, "dnsrr") == 0 && (!*pm || strcmp(pm, "ingress") == 0)) {
      json_decref(seenp);
      return rpc_error(err, 400,
                       "EndpointSpec: port published with ingress mode can't "
                       "be used with dnsrr mode");
    }
    int64_t pub = jx_int(p, "PublishedPort", 0);
    int64_t target = jx_int(p, "TargetPort", 0);
    const char *proto = jx_str(p, "Protocol", "");
    const char *why = NULL;
    char msg[96];
    if (*proto && strcmp(proto, "tcp") && strcmp(proto, "udp") &&
        strcmp(proto, "sctp"))
      why = "invalid protocol";
    else if (target < 1 || target > 65535 || pub < 0 || pub > 65535)
      why = "invalid port";
    else if (*pm && strcmp(pm, "ingress") && strcmp(pm, "host"))
      why = "invalid publish mode";
    if (why) {
      snprintf(msg, sizeof msg, "%s %s %lld:%lld (ports are 1-65535)", why,
               *proto ? proto : "tcp", (long long)pub, (long long)target);
      json_decref(seenp);
      return sh_error(err, 400, "%s", msg);
    }
    if (strcmp(proto, "sctp") == 0) {
      json_decref(seenp);
      return sh_error(err, 501, "SCTP ports are not supported by shoal yet");
    }
    if (pub == 0)
      continue;
    char key[64];
    snprintf(key, sizeof key, "%s/%lld", *proto ? proto : "tcp",
             (long long)pub);
    if (json_object_get(seenp, key)) {
      json_decref(seenp);
      return rpc_error(err, 400,
                       "EndpointSpec: duplicate published ports provided");
    }
    json_object_set_new(seenp, key, json_true());
  }
  json_decref(seenp);
  return 0;
}

/* ---- normalization: the spec as moby stores and shows it ---- */

static void default_str(json_t *o, const char *k, const char *v) {
  const char *cur = jx_str(o, k, "");
  if (!*cur)
    json_object_set_new(o, k, json_string(v));
}

static void default_int(json_t *o, const char *k, int64_t v) {
  if (!json_is_integer(json_object_get(o, k)))
    json_object_set_new(o, k, json_integer(v));
}

static void normalize_update(json_t *u) {
  if (!json_is_object(u))
    return;
  default_int(u, "Parallelism", 0);
  default_int(u, "Delay", 0);
  default_str(u, "FailureAction", "pause");
  if (jx_int(u, "Monitor", 0) == 0)
    json_object_del(u, "Monitor"); /* moby leaves 0 out */
  if (!json_is_number(json_object_get(u, "MaxFailureRatio")))
    json_object_set_new(u, "MaxFailureRatio", json_integer(0));
  default_str(u, "Order", "stop-first");
}

/* Moby's name generator idea: an adjective and a notable name. */
static const char *const left_words[] = {
    "admiring", "brave",      "clever",   "dazzling", "eager",   "focused",
    "gallant",  "happy",      "jolly",    "keen",     "loving",  "modest",
    "nifty",    "optimistic", "quirky",   "relaxed",  "serene",  "trusting",
    "upbeat",   "vibrant",    "wizardly", "youthful", "zealous", "gifted"};
static const char *const right_words[] = {
    "babbage", "curie",   "darwin",  "euclid",   "fermi",      "galileo",
    "hopper",  "johnson", "kepler",  "lovelace", "meitner",    "newton",
    "noether", "pasteur", "ritchie", "shannon",  "tesla",      "turing",
    "wozniak", "yalow",   "hypatia", "lamarr",   "mirzakhani", "thompson"};

static char *random_name(const char *id) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a over the new ID */
  for (const char *p = id; *p; p++)
    h = (h ^ (unsigned char)*p) * 1099511628211ULL;
  return xasprintf(
      "%s_%s", left_words[h % ARRAY_SIZE(left_words)],
      right_words[(h / ARRAY_SIZE(left_words)) % ARRAY_SIZE(right_words)]);
}

static json_t *normalize_spec(const json_t *spec, const char *id) {
  json_t *n = json_deep_copy(spec);
  if (!*jx_str(n, "Name", "")) {
    cleanup_free char *name = random_name(id);
    json_object_set_new(n, "Name", json_string(name));
  }
  if (!json_is_object(json_object_get(n, "Labels")))
    json_object_set_new(n, "Labels", json_object());
  json_t *tt = json_object_get(n, "TaskTemplate");
  /* Only X-Registry-Auth sets stored credentials (services_registry_auth). */
  json_object_del(json_object_get(tt, "ContainerSpec"), SERVICES_PULL_OPTIONS);
  default_str(tt, "Runtime", "container");
  default_int(tt, "ForceUpdate", 0);
  json_t *rp = json_object_get(tt, "RestartPolicy");
  if (json_is_object(rp)) {
    default_str(rp, "Condition", "any");
    default_int(rp, "MaxAttempts", 0);
  }
  json_t *mode = json_object_get(n, "Mode");
  if (!json_is_object(mode) || count_modes(mode) == 0) {
    json_object_set_new(n, "Mode",
                        json_pack("{s:{s:i}}", "Replicated", "Replicas", 1));
  } else if (json_object_get(mode, "Replicated")) {
    json_t *r = json_object_get(mode, "Replicated");
    if (!json_is_object(r)) {
      r = json_object();
      json_object_set_new(mode, "Replicated", r);
    }
    default_int(r, "Replicas", 1);
  } else if (json_object_get(mode, "ReplicatedJob")) {
    /* moby's defaults: one at a time, as many completions as that. */
    json_t *r = json_object_get(mode, "ReplicatedJob");
    if (!json_is_object(r)) {
      r = json_object();
      json_object_set_new(mode, "ReplicatedJob", r);
    }
    default_int(r, "MaxConcurrent", 1);
    default_int(r, "TotalCompletions", jx_int(r, "MaxConcurrent", 1));
  } else if (json_object_get(mode, "GlobalJob") &&
             !json_is_object(json_object_get(mode, "GlobalJob"))) {
    json_object_set_new(mode, "GlobalJob", json_object());
  }
  normalize_update(json_object_get(n, "UpdateConfig"));
  normalize_update(json_object_get(n, "RollbackConfig"));
  json_t *ep = json_object_get(n, "EndpointSpec");
  if (json_is_object(ep)) {
    default_str(ep, "Mode", "vip");
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(ep, "Ports"), i, p) {
      default_str(p, "Protocol", "tcp");
      default_str(p, "PublishMode", "ingress");
    }
  }
  return n;
}

/* ---- published ports ---- */

static bool port_used_by(const json_t *svc, int64_t port, const char *proto) {
  const char *lists[] = {"Spec.EndpointSpec.Ports", "Endpoint.Ports"};
  for (size_t k = 0; k < ARRAY_SIZE(lists); k++) {
    size_t i;
    json_t *p;
    json_array_foreach(jx_get(svc, lists[k]), i, p) {
      if (jx_int(p, "PublishedPort", 0) == port &&
          strcmp(jx_str(p, "Protocol", "tcp"), proto) == 0)
        return true;
    }
  }
  return false;
}

/* swarmkit's checkPortConflicts: ingress ports are cluster-wide; host-mode
 * ports only clash with another service's ingress port. */
static int check_ports(struct store *s, const json_t *spec, const char *self_id,
                       sh_err *err) {
  json_t *ports = jx_get(spec, "EndpointSpec.Ports");
  if (json_array_size(ports) == 0)
    return 0;
  json_t *services = store_list(s, STORE_SERVICE);
  int rc = 0;
  size_t i, j;
  json_t *svc, *p;
  json_array_foreach(services, i, svc) {
    const char *id = jx_str(svc, "ID", "");
    if (self_id && strcmp(id, self_id) == 0)
      continue;
    const char *lists[] = {"Spec.EndpointSpec.Ports", "Endpoint.Ports"};
    for (size_t k = 0; k < ARRAY_SIZE(lists) && rc == 0; k++) {
      json_t *q;
      json_array_foreach(jx_get(svc, lists[k]), j, q) {
        int64_t port = jx_int(q, "PublishedPort", 0);
        if (port == 0)
          continue;
        const char *proto = jx_str(q, "Protocol", "tcp");
        bool q_host = strcmp(jx_str(q, "PublishMode", "ingress"), "host") == 0;
        size_t m;
        json_array_foreach(ports, m, p) {
          if (jx_int(p, "PublishedPort", 0) != port ||
              strcmp(jx_str(p, "Protocol", "tcp"), proto) != 0)
            continue;
          bool p_host =
              strcmp(jx_str(p, "PublishMode", "ingress"), "host") == 0;
          if (q_host && !p_host) {
            rc = rpcf(err, 400,
                      "port '%lld' is already in use by service '%s' (%s) as "
                      "a host-published port",
                      (long long)port, jx_str(svc, "Spec.Name", ""), id);
            break;
          }
          if (!q_host) {
            rc = rpcf(err, 400,
                      "port '%lld' is already in use by service '%s' (%s) as "
                      "an ingress port",
                      (long long)port, jx_str(svc, "Spec.Name", ""), id);
            break;
          }
        }
        if (rc)
          break;
      }
    }
    if (rc)
      break;
  }
  json_decref(services);
  return rc;
}

/* Endpoint {Spec, Ports}: ingress ports without a number get the lowest
 * free one from 30000 (the allocator's dynamic range). */
static json_t *endpoint_for(struct store *s, const json_t *spec,
                            const json_t *cur_endpoint, const char *self_id) {
  json_t *ep = jx_get(spec, "EndpointSpec");
  json_t *out = json_object();
  json_object_set_new(out, "Spec", ep ? json_deep_copy(ep) : json_object());
  json_t *ports = json_array();
  json_t *services = store_list(s, STORE_SERVICE);
  size_t i;
  json_t *p;
  json_array_foreach(json_object_get(ep, "Ports"), i, p) {
    json_t *np = json_deep_copy(p);
    if (jx_int(p, "PublishedPort", 0) == 0 &&
        strcmp(jx_str(p, "PublishMode", "ingress"), "ingress") == 0) {
      const char *proto = jx_str(p, "Protocol", "tcp");
      int64_t chosen = 0;
      /* Keep the port this service had for the same target. */
      size_t j;
      json_t *q;
      json_array_foreach(json_object_get(cur_endpoint, "Ports"), j, q) {
        if (jx_int(q, "TargetPort", 0) == jx_int(p, "TargetPort", 0) &&
            strcmp(jx_str(q, "Protocol", "tcp"), proto) == 0)
          chosen = jx_int(q, "PublishedPort", 0);
      }
      for (int64_t port = DYNAMIC_PORT_START;
           !chosen && port <= DYNAMIC_PORT_END; port++) {
        bool used = false;
        size_t k;
        json_t *svc;
        json_array_foreach(services, k, svc) {
          if (self_id && strcmp(jx_str(svc, "ID", ""), self_id) == 0)
            continue;
          if (port_used_by(svc, port, proto))
            used = true;
        }
        json_array_foreach(ports, k, q) {
          if (jx_int(q, "PublishedPort", 0) == port)
            used = true;
        }
        json_array_foreach(json_object_get(ep, "Ports"), k, q) {
          if (jx_int(q, "PublishedPort", 0) == port)
            used = true;
        }
        if (!used)
          chosen = port;
      }
      json_object_set_new(np, "PublishedPort", json_integer(chosen));
    }
    json_array_append_new(ports, np);
  }
  json_decref(services);
  if (json_array_size(ports))
    json_object_set_new(out, "Ports", ports);
  else
    json_decref(ports);
  return out;
}

/* ---- operations ---- */

const char *services_mode_name(const json_t *spec) {
  static const char *const modes[] = {"Global", "ReplicatedJob", "GlobalJob"};
  for (size_t i = 0; i < ARRAY_SIZE(modes); i++) {
    json_t *m = jx_get(json_object_get(spec, "Mode"), modes[i]);
    if (m && !json_is_null(m))
      return modes[i];
  }
  return "Replicated";
}

json_t *services_create(struct store *s, const json_t *spec, const char *id,
                        int64_t now_ns, sh_err *err) {
  if (services_validate_spec(spec, err) < 0 ||
      secrets_check_refs(s, spec, err) < 0)
    return NULL;
  json_t *n = normalize_spec(spec, id);
  const char *name = jx_str(n, "Name", "");
  json_t *same = store_find(s, STORE_SERVICE, name, NULL);
  if (same && strcmp(jx_str(same, "Spec.Name", ""), name) == 0) {
    rpcf(err, 409,
         "name conflicts with an existing object: service %s already exists",
         name);
    json_decref(n);
    return NULL;
  }
  if (check_ports(s, n, NULL, err) < 0) {
    json_decref(n);
    return NULL;
  }
  json_t *svc =
      json_pack("{s:s, s:o, s:o, s:i}", "ID", id, "Spec", n, "Endpoint",
                endpoint_for(s, n, NULL, NULL), "_SpecVersion", 0);
  const char *mode = services_mode_name(n);
  if (strcmp(mode, "ReplicatedJob") == 0 || strcmp(mode, "GlobalJob") == 0) {
    char ts[64];
    json_object_set_new(svc, "JobStatus",
                        json_pack("{s:{s:i}, s:s}", "JobIteration", "Index", 0,
                                  "LastExecution",
                                  clock_format_rfc3339(now_ns, ts, sizeof ts)));
  }
  return svc;
}

json_t *services_update(struct store *s, const char *ref, int64_t version,
                        const json_t *spec, const char *rollback,
                        int64_t now_ns, sh_err *err) {
  bool previous = false;
  if (rollback && *rollback && strcmp(rollback, "none") != 0) {
    if (strcmp(rollback, "previous") != 0) {
      sh_error(err, 400, "unrecognized rollback option %s", rollback);
      return NULL;
    }
    previous = true;
  }
  json_t *cur = store_find(s, STORE_SERVICE, ref, err);
  if (!cur)
    return NULL;
  const char *id = jx_str(cur, "ID", "");
  if (services_validate_spec(spec, err) < 0 ||
      secrets_check_refs(s, spec, err) < 0)
    return NULL;
  json_t *n = normalize_spec(spec, id);
  if (!*jx_str(spec, "Name", ""))
    json_object_set_new(n, "Name", json_string(jx_str(cur, "Spec.Name", "")));
  json_t *cur_spec = json_object_get(cur, "Spec");
  if (!json_equal(json_object_get(n, "EndpointSpec"),
                  json_object_get(cur_spec, "EndpointSpec")) &&
      check_ports(s, n, id, err) < 0) {
    json_decref(n);
    return NULL;
  }
  if (strcmp(services_mode_name(cur_spec), services_mode_name(n)) != 0) {
    json_decref(n);
    rpc_error(err, 501, "service mode change is not allowed");
    return NULL;
  }
  if (strcmp(jx_str(cur_spec, "Name", ""), jx_str(n, "Name", "")) != 0) {
    json_decref(n);
    rpc_error(err, 501, "renaming services is not supported");
    return NULL;
  }
  json_t *next = json_deep_copy(cur);
  json_object_del(next, "_Update");
  if (previous) {
    json_decref(n);
    json_t *prev = json_object_get(cur, "PreviousSpec");
    if (!json_is_object(prev)) {
      json_decref(next);
      rpcf(err, 412, "service %s does not have a previous spec", id);
      return NULL;
    }
    json_object_set(next, "Spec", prev);
    json_object_set(next, "PreviousSpec", cur_spec);
    json_object_set_new(next, "_SpecVersion",
                        json_integer(jx_int(cur, "_PreviousSpecVersion", 0)));
    json_object_set_new(next, "_PreviousSpecVersion",
                        json_integer(jx_int(cur, "_SpecVersion", 0)));
    char ts[64];
    json_object_set_new(next, "UpdateStatus",
                        json_pack("{s:s, s:s, s:s}", "State",
                                  "rollback_started", "Message",
                                  "manually requested rollback", "StartedAt",
                                  clock_format_rfc3339(now_ns, ts, sizeof ts)));
  } else {
    json_object_set(next, "PreviousSpec", cur_spec);
    json_object_set_new(next, "_PreviousSpecVersion",
                        json_integer(jx_int(cur, "_SpecVersion", 0)));
    json_object_set_new(next, "Spec", n);
    /* swarmkit: SpecVersion = the version the update was made against */
    json_object_set_new(next, "_SpecVersion", json_integer(version));
    json_object_del(next, "UpdateStatus");
  }
  /* swarmkit: every update of a job runs it again. */
  json_t *js = json_object_get(next, "JobStatus");
  if (json_is_object(js)) {
    char ts[64];
    json_object_set_new(
        js, "JobIteration",
        json_pack("{s:I}", "Index",
                  (json_int_t)(jx_int(js, "JobIteration.Index", 0) + 1)));
    json_object_set_new(
        js, "LastExecution",
        json_string(clock_format_rfc3339(now_ns, ts, sizeof ts)));
  }
  json_object_set_new(next, "Endpoint",
                      endpoint_for(s, json_object_get(next, "Spec"),
                                   json_object_get(cur, "Endpoint"), id));
  return next;
}

const char *services_pull_auth(const json_t *container_spec) {
  const char *a = jx_str(json_object_get(container_spec, SERVICES_PULL_OPTIONS),
                         "RegistryAuth", "");
  return *a ? a : NULL;
}

/* Every task copies the credentials with the template: they count in
 * the service's size (check_size). */
static int set_pull_auth(json_t *spec, const char *auth, sh_err *err) {
  json_t *cs = jx_get(spec, "TaskTemplate.ContainerSpec");
  if (!json_is_object(cs))
    return 0;
  if (!auth || !*auth) {
    json_object_del(cs, SERVICES_PULL_OPTIONS);
    return 0;
  }
  json_object_set_new(cs, SERVICES_PULL_OPTIONS,
                      json_pack("{s:s}", "RegistryAuth", auth));
  return check_size(spec, err);
}

int services_registry_auth(json_t *next, const json_t *cur, bool rollback,
                           const char *header, const char *from, sh_err *err) {
  json_t *spec = json_object_get(next, "Spec");
  if (header && *header) {
    struct image_auth a;
    if (image_auth_decode(header, &a, err) < 0)
      return -1;
    image_auth_free(&a);
    return rollback ? 0 : set_pull_auth(spec, header, err);
  }
  if (!cur) /* create without the header: none */
    return 0;
  /* moby's UpdateService: "if the encodedAuth isn't being updated then we
   * shouldn't lose it". */
  const json_t *src;
  if (!from || !*from || strcmp(from, "spec") == 0) {
    src = json_object_get(cur, "Spec");
  } else if (strcmp(from, "previous-spec") == 0) {
    src = json_object_get(cur, "PreviousSpec");
    if (!json_is_object(src))
      return sh_error(err, 400, "service does not have a previous spec");
  } else {
    return sh_error(err, 400, "unsupported registryAuthFrom value");
  }
  if (rollback)
    return 0;
  return set_pull_auth(
      spec, services_pull_auth(jx_get(src, "TaskTemplate.ContainerSpec")), err);
}

const char *services_remove(struct store *s, const char *ref, sh_err *err) {
  json_t *cur = store_find(s, STORE_SERVICE, ref, err);
  return cur ? jx_str(cur, "ID", NULL) : NULL;
}

static void defaults_update(json_t *spec, const char *key) {
  json_t *u = json_object_get(spec, key);
  if (!json_is_object(u)) {
    json_object_set_new(spec, key,
                        json_pack("{s:i, s:s, s:I, s:i, s:s}", "Parallelism", 1,
                                  "FailureAction", "pause", "Monitor",
                                  (json_int_t)DEFAULT_MONITOR,
                                  "MaxFailureRatio", 0, "Order", "stop-first"));
    return;
  }
  if (jx_int(u, "Monitor", 0) == 0)
    json_object_set_new(u, "Monitor", json_integer(DEFAULT_MONITOR));
}

json_t *services_spec_with_defaults(const json_t *spec) {
  json_t *n = json_deep_copy(spec);
  json_t *tt = json_object_get(n, "TaskTemplate");
  if (!json_is_object(tt)) {
    tt = json_object();
    json_object_set_new(n, "TaskTemplate", tt);
  }
  json_t *cs = json_object_get(tt, "ContainerSpec");
  if (json_is_object(cs)) {
    default_int(cs, "StopGracePeriod", DEFAULT_STOP_GRACE);
    if (!json_is_object(json_object_get(cs, "DNSConfig")))
      json_object_set_new(cs, "DNSConfig", json_object());
  }
  if (!json_is_object(json_object_get(tt, "Resources")))
    json_object_set_new(tt, "Resources", json_object());
  json_t *rp = json_object_get(tt, "RestartPolicy");
  if (!json_is_object(rp)) {
    json_object_set_new(tt, "RestartPolicy",
                        json_pack("{s:s, s:I, s:i}", "Condition", "any",
                                  "Delay", (json_int_t)DEFAULT_DELAY,
                                  "MaxAttempts", 0));
  } else {
    default_int(rp, "Delay", DEFAULT_DELAY);
    default_int(rp, "MaxAttempts", 0);
  }
  if (!json_is_object(json_object_get(tt, "Placement")))
    json_object_set_new(tt, "Placement", json_object());
  defaults_update(n, "UpdateConfig");
  defaults_update(n, "RollbackConfig");
  json_t *ep = json_object_get(n, "EndpointSpec");
  if (!json_is_object(ep))
    json_object_set_new(n, "EndpointSpec", json_pack("{s:s}", "Mode", "vip"));
  return n;
}

json_t *services_view(const json_t *svc, bool insert_defaults) {
  json_t *v = store_public(svc);
  if (insert_defaults && json_is_object(json_object_get(v, "Spec"))) {
    json_t *spec = services_spec_with_defaults(json_object_get(v, "Spec"));
    json_object_set_new(v, "Spec", spec);
    json_t *prev = json_object_get(v, "PreviousSpec");
    if (json_is_object(prev))
      json_object_set_new(v, "PreviousSpec", services_spec_with_defaults(prev));
  }
  return v;
}

/* ---- ServiceStatus ---- */

struct svc_count {
  struct store *s;
  bool job, global;
  int64_t iter, running, desired, completed;
};

static bool node_up(struct store *s, const char *id) {
  const json_t *node = store_get(s, STORE_NODE, id);
  return node && strcmp(jx_str(node, "Status.State", ""), "down") != 0;
}

static void count_task(json_t *t, void *ud) {
  struct svc_count *c = ud;
  if (c->job && jx_int(t, "JobIteration.Index", -1) != c->iter)
    return;
  enum task_state st = task_state(t);
  enum task_state want = task_desired(t);
  if (want <= TS_RUNNING && c->global)
    c->desired++;
  if (c->job && c->global && want == TS_COMPLETE && st != TS_COMPLETE)
    c->desired++;
  if ((want <= TS_RUNNING || c->job) && st == TS_RUNNING &&
      node_up(c->s, jx_str(t, "NodeID", "")))
    c->running++;
  if (st == TS_COMPLETE)
    c->completed++;
}

static void count_lost_task(json_t *t, void *ud) {
  const char *svc = store_index_key(STORE_TASKS_UP_BY_SERVICE, t);
  if (svc)
    json_object_set_new(
        ud, svc,
        json_integer(json_integer_value(json_object_get(ud, svc)) + 1));
}

void services_lost_free(struct services_lost *l) {
  json_decref(l->by_service);
  l->by_service = NULL;
}

static int64_t lost_tasks(struct store *s, struct services_lost *l,
                          const char *svc) {
  uint64_t at = store_index(s);
  if (!l->by_service || l->at != at) {
    json_decref(l->by_service);
    l->by_service = json_object();
    l->at = at;
    cleanup_json json_t *nodes = store_index_keys(s, STORE_TASKS_BY_NODE);
    size_t i;
    json_t *id;
    json_array_foreach(nodes, i, id) {
      const char *n = json_string_value(id);
      /* "": tasks not placed yet, none of them running */
      if (*n && !node_up(s, n))
        store_each_by(s, STORE_TASKS_BY_NODE, n, count_lost_task,
                      l->by_service);
    }
  }
  return json_integer_value(json_object_get(l->by_service, svc));
}

json_t *services_status(struct store *s, const json_t *svc,
                        struct services_lost *lost) {
  struct svc_count c = {
      .s = s,
      .job = service_is_job(svc),
      .global = service_is_global(svc) || jx_get(svc, "Spec.Mode.GlobalJob"),
      .iter = service_job_iteration(svc),
  };
  const char *id = jx_str(svc, "ID", "");
  if (c.job || c.global) {
    store_each_by(s, STORE_TASKS_BY_SERVICE, id, count_task, &c);
  } else {
    c.running = (int64_t)store_count_by(s, STORE_TASKS_UP_BY_SERVICE, id) -
                lost_tasks(s, lost, id);
    c.completed = (int64_t)store_count_by(s, STORE_TASKS_DONE_BY_SERVICE, id);
  }
  if (jx_get(svc, "Spec.Mode.ReplicatedJob"))
    c.desired = jx_int(svc, "Spec.Mode.ReplicatedJob.MaxConcurrent", 0);
  else if (!c.global)
    c.desired = service_replicas(svc);
  return json_pack("{s:I, s:I, s:I}", "RunningTasks", (json_int_t)c.running,
                   "DesiredTasks", (json_int_t)c.desired, "CompletedTasks",
                   (json_int_t)c.completed);
}
