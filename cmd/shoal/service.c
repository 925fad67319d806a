/* shoal service create|ls|ps|inspect|scale|rm|update|logs, as docker's
 * cli/command/service (the flags the swarm hands-on uses). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli/render.h"
#include "cli/svc.h"
#include "cli/template.h"
#include "cli/text.h"
#include "core/jsonx.h"
#include "service_help.h"
#include "shoal.h"

char *shoal_filters_query(struct cli_flag *f, const char *sep) {
  if (!f || !f->nlist)
    return xstrdup("");
  cleanup_json json_t *j = json_object();
  for (size_t i = 0; i < f->nlist; i++) {
    char *eq = strchr(f->list[i], '=');
    if (!eq)
      continue;
    cleanup_free char *name = xstrndup(f->list[i], (size_t)(eq - f->list[i]));
    json_t *vals = json_object_get(j, name);
    if (!vals) {
      vals = json_object();
      json_object_set_new(j, name, vals);
    }
    json_object_set_new(vals, eq + 1, json_true());
  }
  cleanup_free char *txt = jx_dumps(j, JSON_COMPACT | JSON_SORT_KEYS, NULL);
  cleanup_free char *esc = cli_escape(txt);
  return xasprintf("%sfilters=%s", sep ? sep : "", esc);
}

/* pflag's message for a value its type rejects, with cobra's usage tail. */
static int flag_error(struct cli_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int flag_error(struct cli_cmd *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n\nUsage:  %s\n\nRun '%s --help' for more information\n",
          cmd->use, cmd->path);
  return 125;
}

/* go-units RAMInBytes: "64M", "1.5g", "512mb", "100" (bytes). */
static int ram_in_bytes(const char *s, int64_t *out) {
  char *end;
  errno = 0;
  if (!isdigit((unsigned char)s[0]))
    return -1;
  double v = strtod(s, &end);
  if (errno || end == s)
    return -1;
  if (*end == ' ')
    end++;
  double mul = 1;
  const char *u = "kmgtp";
  const char *p = *end ? strchr(u, tolower((unsigned char)*end)) : NULL;
  if (p && *end) {
    mul = pow(1024, (double)(p - u + 1));
    end++;
  }
  if (*end == 'i' || *end == 'I')
    end++;
  if (*end == 'b' || *end == 'B')
    end++;
  if (*end)
    return -1;
  *out = (int64_t)(v * mul);
  return 0;
}

/* "0.5" CPUs -> 500000000 nano CPUs */
static int nano_cpus(const char *s, int64_t *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || v < 0)
    return -1;
  *out = (int64_t)llround(v * 1e9);
  return 0;
}

/* docker's ValidateEnv: a bare NAME takes its value from our environment */
static json_t *env_entry(const char *e) {
  if (strchr(e, '=') || !getenv(e))
    return json_string(e);
  cleanup_free char *kv = xasprintf("%s=%s", e, getenv(e));
  return json_string(kv);
}

/* --publish: "8080:80[/proto]", "80", or "published=..,target=..,..." */
static int parse_publish(const char *spec, json_t *ports, char *msg,
                         size_t msglen) {
  json_t *p = json_object();
  const char *proto = "tcp", *mode = "ingress";
  long pub = 0, tgt = 0;
  cleanup_free char *copy = xstrdup(spec);
  if (strchr(copy, '=')) {
    char *save = NULL;
    for (char *kv = strtok_r(copy, ",", &save); kv;
         kv = strtok_r(NULL, ",", &save)) {
      char *eq = strchr(kv, '=');
      if (!eq) {
        snprintf(msg, msglen, "invalid field %s", kv);
        json_decref(p);
        return -1;
      }
      *eq++ = '\0';
      if (strcmp(kv, "published") == 0)
        pub = strtol(eq, NULL, 10);
      else if (strcmp(kv, "target") == 0)
        tgt = strtol(eq, NULL, 10);
      else if (strcmp(kv, "protocol") == 0)
        proto = eq;
      else if (strcmp(kv, "mode") == 0)
        mode = eq;
      else {
        snprintf(msg, msglen, "invalid field key %s", kv);
        json_decref(p);
        return -1;
      }
    }
    json_object_set_new(p, "Protocol", json_string(proto));
    json_object_set_new(p, "TargetPort", json_integer(tgt));
    json_object_set_new(p, "PublishedPort", json_integer(pub));
    json_object_set_new(p, "PublishMode", json_string(mode));
    json_array_append_new(ports, p);
    return 0;
  }
  char *slash = strchr(copy, '/');
  if (slash) {
    *slash = '\0';
    proto = slash + 1;
  }
  char *colon = strrchr(copy, ':');
  char *end;
  if (colon) {
    *colon = '\0';
    pub = strtol(copy, &end, 10);
    if (*end || pub <= 0 || pub > 65535)
      goto bad;
    tgt = strtol(colon + 1, &end, 10);
  } else {
    tgt = strtol(copy, &end, 10);
  }
  if (*end || tgt <= 0 || tgt > 65535)
    goto bad;
  json_object_set_new(p, "Protocol", json_string(proto));
  json_object_set_new(p, "TargetPort", json_integer(tgt));
  json_object_set_new(p, "PublishedPort", json_integer(pub));
  json_object_set_new(p, "PublishMode", json_string(mode));
  json_array_append_new(ports, p);
  return 0;
bad:
  snprintf(msg, msglen, "invalid containerPort: %s", spec);
  json_decref(p);
  return -1;
}

/* swarmkit's defaults, as docker fills an UpdateConfig it sends */
static json_t *default_update_config(void) {
  /* MaxFailureRatio goes as 0, as Go marshals a zero float32 */
  return json_pack("{s:i, s:I, s:s, s:I, s:i, s:s}", "Parallelism", 1, "Delay",
                   (json_int_t)0, "FailureAction", "pause", "Monitor",
                   (json_int_t)5000000000LL, "MaxFailureRatio", 0, "Order",
                   "stop-first");
}

/* Pins IMAGE to its digest as docker's client does (QueryRegistry); on
 * failure the image is kept and docker's warning printed. */
static void pin_image(cli_client *c, json_t *task_template, const char *image,
                      bool quiet_warn) {
  if (strchr(image, '@')) {
    jx_set(task_template, "ContainerSpec.Image", json_string(image));
    return;
  }
  cleanup_free char *eimg = cli_escape(image);
  cleanup_free char *path = xasprintf("/distribution/%s/json", eimg);
  cleanup_json json_t *d = NULL;
  sh_err e = {0};
  if (cli_call_json(c, "GET", path, NULL, &d, &e) < 0 ||
      !jx_str(d, "Descriptor.digest", NULL)) {
    jx_set(task_template, "ContainerSpec.Image", json_string(image));
    if (!quiet_warn)
      fprintf(stderr,
              "image %s could not be accessed on a registry to record\nits "
              "digest. Each node will access %s independently,\npossibly "
              "leading to different nodes running different\nversions of the "
              "image.\n",
              image, image);
    return;
  }
  /* reference.TagNameOnly: an untagged name means :latest */
  cleanup_free char *fam = svc_image_display(image);
  const char *slash = strrchr(fam, '/');
  bool tagged = strchr(slash ? slash : fam, ':') != NULL;
  cleanup_free char *pinned = xasprintf("%s%s@%s", fam, tagged ? "" : ":latest",
                                        jx_str(d, "Descriptor.digest", ""));
  jx_set(task_template, "ContainerSpec.Image", json_string(pinned));
  const json_t *plats = jx_get(d, "Platforms");
  if (json_is_array(plats) && json_array_size(plats)) {
    json_t *out = json_array();
    size_t i;
    json_t *p;
    json_array_foreach(plats, i, p)
        json_array_append_new(out, json_pack("{s:s, s:s}", "Architecture",
                                             jx_str(p, "architecture", ""),
                                             "OS", jx_str(p, "os", "")));
    jx_set(task_template, "Placement.Platforms", out);
  }
}

/* ---- convergence ----------------------------------------------------------
 */

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) {
  (void)sig;
  interrupted = 1;
}

/* docker's WaitOnService/ServiceProgress, the non-terminal form: polls the
 * service and its up-to-date tasks every 200ms until every slot runs for
 * the monitor period. Output goes to stdout unless quiet. */
static int stdout_columns(void) {
  struct winsize ws;
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0)
    return 200;
  return ws.ws_col;
}

static int wait_on_service(cli_client *c, const char *ref, bool quiet) {
  struct svc_progress prog = {0};
  struct svc_display disp = {.tty = isatty(STDOUT_FILENO) == 1,
                             .width = stdout_columns()};
  bool converged = false, rollback = false;
  int64_t converged_at = 0, monitor = INT64_C(5000000000);
  cleanup_json json_t *message = NULL;
  struct sigaction sa = {.sa_handler = on_sigint}, old;
  sigaction(SIGINT, &sa, &old);
  interrupted = 0;
  cleanup_free char *eref = cli_escape(ref);
  int rc = 0;
  for (;;) {
    sh_err err = {0};
    cleanup_buf sh_buf out = {0};
    cleanup_json json_t *svc = NULL, *tasks = NULL, *nodes = NULL;
    cleanup_free char *path =
        xasprintf("/services/%s?insertDefaults=false", eref);
    if (cli_call_json(c, "GET", path, NULL, &svc, &err) < 0) {
      rc = shoal_fail(&err);
      break;
    }
    if (jx_int(svc, "Spec.UpdateConfig.Monitor", 0))
      monitor = jx_int(svc, "Spec.UpdateConfig.Monitor", 0);
    const char *ustate = jx_str(svc, "UpdateStatus.State", "");
    const char *umsg = jx_str(svc, "UpdateStatus.Message", "");
    if (strcmp(ustate, "updating") == 0) {
      rollback = false;
    } else if (strcmp(ustate, "completed") == 0) {
      if (!converged)
        break;
    } else if (strcmp(ustate, "paused") == 0) {
      fflush(stdout);
      rc = shoal_failf("service update paused: %s", umsg);
      break;
    } else if (strcmp(ustate, "rollback_started") == 0) {
      if (!rollback && umsg[0])
        svc_display_progress(&disp, "rollback", umsg, 0, 0, &out);
      rollback = true;
    } else if (strcmp(ustate, "rollback_paused") == 0) {
      fflush(stdout);
      rc = shoal_failf("service rollback paused: %s", umsg);
      break;
    } else if (strcmp(ustate, "rollback_completed") == 0) {
      if (!converged && !message)
        message = json_string(umsg);
      rollback = true;
    }
    int64_t now = shoal_now_ns();
    if (converged && now - converged_at >= monitor) {
      cleanup_free char *msg = xasprintf("Service %s converged", ref);
      svc_display_progress(&disp, "verify", msg, 0, 0, &out);
      if (message)
        svc_display_message(&disp, "rollback", json_string_value(message),
                            &out);
      if (!quiet)
        shoal_print(&out);
      break;
    }
    cleanup_free char *f =
        xasprintf("{\"_up-to-date\":{\"true\":true},\"service\":{\"%s\":true}}",
                  jx_str(svc, "ID", ""));
    cleanup_free char *ef = cli_escape(f);
    cleanup_free char *tpath = xasprintf("/tasks?filters=%s", ef);
    if (cli_call_json(c, "GET", tpath, NULL, &tasks, &err) < 0 ||
        cli_call_json(c, "GET", "/nodes", NULL, &nodes, &err) < 0) {
      rc = shoal_fail(&err);
      break;
    }
    json_t *active = json_object();
    size_t i;
    json_t *n;
    json_array_foreach(
        nodes, i, n) if (strcmp(jx_str(n, "Status.State", ""), "down") != 0)
        json_object_set_new(active, jx_str(n, "ID", ""), json_true());
    converged = svc_progress_update(&prog, svc, tasks, active, rollback, &disp,
                                    &out) == 1;
    json_decref(active);
    if (converged) {
      if (!converged_at)
        converged_at = now;
      /* measured after the fact, as docker's time.Since */
      int64_t wait = monitor - (shoal_now_ns() - converged_at);
      if (wait >= 0) {
        char msg[96];
        snprintf(msg, sizeof msg,
                 "Waiting %lld seconds to verify that tasks are stable...",
                 (long long)(wait / INT64_C(1000000000) + 1));
        svc_display_progress(&disp, "verify", msg, 0, 0, &out);
      }
    } else {
      if (converged_at)
        svc_display_progress(&disp, "verify", "Detected task failure", 0, 0,
                             &out);
      converged_at = 0;
    }
    if (!quiet) {
      shoal_print(&out);
      fflush(stdout);
    }
    struct timespec ts = {0, 200000000};
    nanosleep(&ts, NULL);
    if (interrupted) {
      if (!converged && !quiet) {
        cleanup_buf sh_buf tail = {0};
        cleanup_free char *m2 =
            xasprintf("Use `%s service ps %s` to check progress.", PROG, ref);
        svc_display_message(&disp, "", "Operation continuing in background.",
                            &tail);
        svc_display_message(&disp, "", m2, &tail);
        shoal_print(&tail);
      }
      break;
    }
  }
  svc_display_free(&disp);
  sigaction(SIGINT, &old, NULL);
  fflush(stdout);
  return rc;
}

/* ---- create ---------------------------------------------------------------
 */

#define UPDATE_FLAGS                                                           \
  {.name = "update-parallelism", .type = CLI_FLAG_UINT64, .dflt = "1"},        \
      {.name = "update-delay", .type = CLI_FLAG_DURATION},                     \
      {.name = "update-monitor", .type = CLI_FLAG_DURATION},                   \
      {.name = "update-failure-action", .type = CLI_FLAG_STRING},              \
      {.name = "update-order", .type = CLI_FLAG_STRING},                       \
      {.name = "limit-cpu", .type = CLI_FLAG_STRING},                          \
      {.name = "limit-memory", .type = CLI_FLAG_STRING},                       \
      {.name = "reserve-cpu", .type = CLI_FLAG_STRING},                        \
      {.name = "reserve-memory", .type = CLI_FLAG_STRING},                     \
      {.name = "restart-condition", .type = CLI_FLAG_STRING},                  \
      {.name = "detach", .shorthand = 'd', .type = CLI_FLAG_BOOL},             \
      {.name = "quiet", .shorthand = 'q', .type = CLI_FLAG_BOOL},              \
      {.name = "no-resolve-image", .type = CLI_FLAG_BOOL}, {                   \
    .name = "with-registry-auth", .type = CLI_FLAG_BOOL                        \
  }

static struct cli_flag create_flags[] = {
    {.name = "name", .type = CLI_FLAG_STRING},
    {.name = "replicas", .type = CLI_FLAG_UINT64},
    {.name = "mode", .type = CLI_FLAG_STRING, .dflt = "replicated"},
    {.name = "publish", .shorthand = 'p', .type = CLI_FLAG_LIST},
    {.name = "env", .shorthand = 'e', .type = CLI_FLAG_LIST},
    {.name = "constraint", .type = CLI_FLAG_LIST},
    {.name = "label", .shorthand = 'l', .type = CLI_FLAG_LIST},
    UPDATE_FLAGS,
};
static struct cli_cmd create_cmd = {
    "shoal service create",
    "shoal service create [OPTIONS] IMAGE [COMMAND] [ARG...]",
    HELP_SVC_CREATE,
    CLI_ARGS_MIN,
    1,
    create_flags,
    ARRAY_SIZE(create_flags)};

/* Resources, restart policy and update config from the flags both create
 * and update take; returns the exit code on a bad value, else 0. */
static int apply_common(struct cli_cmd *cmd, json_t *spec) {
  static const char *const res[][2] = {
      {"limit-cpu", "Limits.NanoCPUs"},
      {"limit-memory", "Limits.MemoryBytes"},
      {"reserve-cpu", "Reservations.NanoCPUs"},
      {"reserve-memory", "Reservations.MemoryBytes"}};
  json_t *tt = json_object_get(spec, "TaskTemplate");
  for (size_t k = 0; k < ARRAY_SIZE(res); k++) {
    struct cli_flag *f = cli_flag(cmd, res[k][0]);
    if (!f->changed)
      continue;
    int64_t v;
    bool cpu = strstr(res[k][0], "cpu") != NULL;
    if (cpu ? nano_cpus(f->s, &v) < 0 : ram_in_bytes(f->s, &v) < 0) {
      if (cpu)
        return flag_error(cmd,
                          "invalid argument \"%s\" for \"--%s\" flag: failed "
                          "to parse %s as a rational number",
                          f->s, f->name, f->s);
      return flag_error(cmd,
                        "invalid argument \"%s\" for \"--%s\" flag: invalid "
                        "size: '%s'",
                        f->s, f->name, f->s);
    }
    cleanup_free char *path = xasprintf("Resources.%s", res[k][1]);
    jx_set(tt, path, json_integer(v));
  }
  struct cli_flag *rc = cli_flag(cmd, "restart-condition");
  if (rc->changed) {
    json_t *rp = json_object_get(tt, "RestartPolicy");
    if (!json_is_object(rp)) {
      rp = json_pack("{s:s, s:I, s:i}", "Condition", "any", "Delay",
                     (json_int_t)5000000000LL, "MaxAttempts", 0);
      json_object_set_new(tt, "RestartPolicy", rp);
    }
    json_object_set_new(rp, "Condition", json_string(rc->s));
  }
  static const char *const upd[] = {"update-parallelism", "update-delay",
                                    "update-monitor", "update-failure-action",
                                    "update-order"};
  bool any = false;
  for (size_t k = 0; k < ARRAY_SIZE(upd); k++)
    any |= cli_flag(cmd, upd[k])->changed;
  if (any) {
    json_t *uc = json_object_get(spec, "UpdateConfig");
    if (!json_is_object(uc)) {
      uc = default_update_config();
      json_object_set_new(spec, "UpdateConfig", uc);
    }
    struct cli_flag *f;
    if ((f = cli_flag(cmd, "update-parallelism"))->changed)
      json_object_set_new(uc, "Parallelism", json_integer((json_int_t)f->u));
    if ((f = cli_flag(cmd, "update-delay"))->changed)
      json_object_set_new(uc, "Delay", json_integer(f->i));
    if ((f = cli_flag(cmd, "update-monitor"))->changed)
      json_object_set_new(uc, "Monitor", json_integer(f->i));
    if ((f = cli_flag(cmd, "update-failure-action"))->changed)
      json_object_set_new(uc, "FailureAction", json_string(f->s));
    if ((f = cli_flag(cmd, "update-order"))->changed)
      json_object_set_new(uc, "Order", json_string(f->s));
  }
  return 0;
}

/* The shoal CLI keeps no registry logins (no config file of its own):
 * refused rather than sent without credentials. */
static int no_registry_auth(void) {
  return shoal_failf("--with-registry-auth is not supported by the shoal CLI "
                     "yet: use the docker CLI (docker login, then docker "
                     "service create|update --with-registry-auth)");
}

static int service_create(struct shoal *s, int argc, char **argv) {
  struct cli_cmd *cmd = &create_cmd;
  cleanup_free char **args = NULL;
  int nargs, rc;
  if (shoal_parse(cmd, argc, argv, &args, &nargs, &rc) < 0)
    return rc;
  if (cli_flag(cmd, "with-registry-auth")->b)
    return no_registry_auth();
  cleanup_json json_t *spec = json_object();
  json_t *tt = json_object();
  json_object_set_new(spec, "TaskTemplate", tt);
  if (cli_flag(cmd, "name")->s)
    json_object_set_new(spec, "Name", json_string(cli_flag(cmd, "name")->s));
  json_t *labels = json_object();
  struct cli_flag *f = cli_flag(cmd, "label");
  for (size_t i = 0; i < f->nlist; i++) {
    const char *eq = strchr(f->list[i], '=');
    cleanup_free char *k = eq ? xstrndup(f->list[i], (size_t)(eq - f->list[i]))
                              : xstrdup(f->list[i]);
    json_object_set_new(labels, k, json_string(eq ? eq + 1 : ""));
  }
  json_object_set_new(spec, "Labels", labels);
  json_t *cs = json_object();
  json_object_set_new(tt, "ContainerSpec", cs);
  json_object_set_new(cs, "Image", json_string(args[0]));
  if (nargs > 1) {
    json_t *a = json_array();
    for (int i = 1; i < nargs; i++)
      json_array_append_new(a, json_string(args[i]));
    json_object_set_new(cs, "Args", a);
  }
  f = cli_flag(cmd, "env");
  if (f->nlist) {
    json_t *env = json_array();
    for (size_t i = 0; i < f->nlist; i++)
      json_array_append_new(env, env_entry(f->list[i]));
    json_object_set_new(cs, "Env", env);
  }
  json_object_set_new(cs, "Init", json_false());
  json_object_set_new(tt, "Resources",
                      json_pack("{s:{}, s:{}}", "Limits", "Reservations"));
  f = cli_flag(cmd, "constraint");
  if (f->nlist) {
    json_t *c = json_array();
    for (size_t i = 0; i < f->nlist; i++)
      json_array_append_new(c, json_string(f->list[i]));
    jx_set(tt, "Placement.Constraints", c);
  } else {
    json_object_set_new(tt, "Placement", json_object());
  }
  if ((rc = apply_common(cmd, spec)) != 0)
    return rc;
  const char *mode = cli_flag(cmd, "mode")->s;
  struct cli_flag *reps = cli_flag(cmd, "replicas");
  if (strcmp(mode, "global") == 0) {
    if (reps->changed)
      return shoal_failf("replicas can only be used with replicated or "
                         "replicated-job mode");
    json_object_set_new(spec, "Mode", json_pack("{s:{}}", "Global"));
  } else if (strcmp(mode, "replicated") == 0) {
    json_object_set_new(spec, "Mode",
                        json_pack("{s:{s:I}}", "Replicated", "Replicas",
                                  (json_int_t)(reps->changed ? reps->u : 1)));
  } else {
    return shoal_failf("invalid replicated mode %s", mode);
  }
  json_t *ep = json_pack("{s:s}", "Mode", "vip");
  f = cli_flag(cmd, "publish");
  if (f->nlist) {
    json_t *ports = json_array();
    char msg[256];
    for (size_t i = 0; i < f->nlist; i++)
      if (parse_publish(f->list[i], ports, msg, sizeof msg) < 0) {
        json_decref(ports);
        json_decref(ep);
        return flag_error(cmd,
                          "invalid argument \"%s\" for \"-p, --publish\" "
                          "flag: %s",
                          f->list[i], msg);
      }
    json_object_set_new(ep, "Ports", ports);
  }
  json_object_set_new(spec, "EndpointSpec", ep);

  sh_err err = {0};
  cli_client *c = shoal_client(s, &err);
  if (!c)
    return shoal_fail(&err);
  bool quiet = cli_flag(cmd, "quiet")->b;
  if (!cli_flag(cmd, "no-resolve-image")->b)
    pin_image(c, tt, args[0], quiet);
  cleanup_json json_t *resp = NULL;
  if (cli_call_json(c, "POST", "/services/create", spec, &resp, &err) < 0)
    return shoal_fail(&err);
  size_t i;
  json_t *w;
  json_array_foreach(json_object_get(resp, "Warnings"), i, w)
      fprintf(stderr, "%s\n", json_string_value(w) ? json_string_value(w) : "");
  const char *id = jx_str(resp, "ID", "");
  printf("%s\n", id);
  fflush(stdout);
  if (cli_flag(cmd, "detach")->b)
    return 0;
  return wait_on_service(c, id, quiet);
}

/* ---- ls --------------------------------------------------------------------
 */

static struct cli_flag ls_flags[] = {
    {.name = "quiet", .shorthand = 'q', .type = CLI_FLAG_BOOL},
    {.name = "format", .type = CLI_FLAG_STRING},
    {.name = "filter", .shorthand = 'f', .type = CLI_FLAG_FILTER},
};
static struct cli_cmd ls_cmd = {"shoal service ls",
                                "shoal service ls [OPTIONS]",
                                HELP_SVC_LS,
                                CLI_ARGS_NONE,
                                0,
                                ls_flags,
                                ARRAY_SIZE(ls_flags)};

static int service_ls(struct shoal *s, int argc, char **argv) {
  struct cli_cmd *cmd = &ls_cmd;
  cleanup_free char **args = NULL;
  int nargs, rc;
  if (shoal_parse(cmd, argc, argv, &args, &nargs, &rc) < 0)
    return rc;
  cleanup_free char *fq = shoal_filters_query(cli_flag(cmd, "filter"), "&");
  cleanup_free char *path = xasprintf("/services?status=true%s", fq);
  sh_err err = {0};
  cli_client *c = shoal_client(s, &err);
  cleanup_json json_t *list = NULL;
  if (!c || cli_call_json(c, "GET", path, NULL, &list, &err) < 0)
    return shoal_fail(&err);
  cleanup_buf sh_buf out = {0};
  if (render_service_list(list, cli_flag(cmd, "format")->s,
                          cli_flag(cmd, "quiet")->b, &out, &err) < 0)
    return shoal_fail(&err);
  shoal_print(&out);
  return 0;
}

/* ---- ps --------------------------------------------------------------------
 */

static struct cli_flag ps_flags[] = {
    {.name = "quiet", .shorthand = 'q', .type = CLI_FLAG_BOOL},
    {.name = "no-trunc", .type = CLI_FLAG_BOOL},
    {.name = "no-resolve", .type = CLI_FLAG_BOOL},
    {.name = "format", .type = CLI_FLAG_STRING},
    {.name = "filter", .shorthand = 'f', .type = CLI_FLAG_FILTER},
};
static struct cli_cmd ps_cmd = {
    "shoal service ps",
    "shoal service ps [OPTIONS] SERVICE [SERVICE...]",
    HELP_SVC_PS,
    CLI_ARGS_MIN,
    1,
    ps_flags,
    ARRAY_SIZE(ps_flags)};

static int service_ps(struct shoal *s, int argc, char **argv) {
  struct cli_cmd *cmd = &ps_cmd;
  cleanup_free char **args = NULL;
  int nargs, rc;
  if (shoal_parse(cmd, argc, argv, &args, &nargs, &rc) < 0)
    return rc;
  sh_err err = {0};
  cli_client *c = shoal_client(s, &err);
  if (!c)
    return shoal_fail(&err);
  /* docker lists services by name and by ID prefix; a ref matching neither
   * is "no such service" */
  cleanup_json json_t *all = NULL;
  if (cli_call_json(c, "GET", "/services", NULL, &all, &err) < 0)
    return shoal_fail(&err);
  cleanup_json json_t *names = json_object();
  json_t *filt = json_object();
  json_t *svcf = json_object();
  json_object_set_new(filt, "service", svcf);
  cleanup_buf sh_buf missing = {0};
  for (int i = 0; i < nargs; i++) {
    size_t k;
    json_t *sv;
    bool found = false;
    json_array_foreach(all, k, sv) {
      const char *id = jx_str(sv, "ID", ""),
                 *name = jx_str(sv, "Spec.Name", "");
      if (strcmp(name, args[i]) == 0 || str_has_prefix(id, args[i])) {
        json_object_set_new(svcf, id, json_true());
        found = true;
      }
    }
    if (!found)
      buf_printf(&missing, "%sno such service: %s", missing.len ? "\n" : "",
                 args[i]);
  }
  size_t k;
  json_t *sv;
  json_array_foreach(all, k, sv) json_object_set_new(
      names, jx_str(sv, "ID", ""), json_string(jx_str(sv, "Spec.Name", "")));
  if (missing.len) {
    json_decref(filt);
    return shoal_failf("%s", missing.data);
  }
  struct cli_flag *ff = cli_flag(cmd, "filter");
  for (size_t i = 0; i < ff->nlist; i++) {
    char *eq = strchr(ff->list[i], '=');
    if (!eq)
      continue;
    cleanup_free char *key = xstrndup(ff->list[i], (size_t)(eq - ff->list[i]));
    json_t *vals = json_object_get(filt, key);
    if (!vals) {
      vals = json_object();
      json_object_set_new(filt, key, vals);
    }
    json_object_set_new(vals, eq + 1, json_true());
  }
  cleanup_free char *ftxt = jx_dumps(filt, JSON_COMPACT | JSON_SORT_KEYS, NULL);
  json_decref(filt);
  cleanup_free char *ef = cli_escape(ftxt);
  cleanup_free char *path = xasprintf("/tasks?filters=%s", ef);
  cleanup_json json_t *tasks = NULL, *nodes = NULL;
  if (cli_call_json(c, "GET", path, NULL, &tasks, &err) < 0)
    return shoal_fail(&err);
  cleanup_json json_t *hosts = json_object();
  bool quiet = cli_flag(cmd, "quiet")->b;
  bool trunc = !cli_flag(cmd, "no-trunc")->b && !quiet;
  if (!quiet && !cli_flag(cmd, "no-resolve")->b) {
    if (cli_call_json(c, "GET", "/nodes", NULL, &nodes, &err) < 0)
      return shoal_fail(&err);
    json_array_foreach(nodes, k, sv) json_object_set_new(
        hosts, jx_str(sv, "ID", ""),
        json_string(jx_str(sv, "Description.Hostname", "")));
  }
  if (cli_flag(cmd, "no-resolve")->b)
    json_object_clear(names);
  cleanup_buf sh_buf out = {0};
  if (render_task_list(tasks, names, hosts, trunc, quiet,
                       cli_flag(cmd, "format")->s, shoal_now_ns(), &out,
                       &err) < 0)
    return shoal_fail(&err);
  shoal_print(&out);
  return 0;
}

/* ---- inspect ---------------------------------------------------------------
 */

static struct cli_flag inspect_flags[] = {
    {.name = "format", .shorthand = 'f', .type = CLI_FLAG_STRING},
    {.name = "pretty", .type = CLI_FLAG_BOOL},
};
static struct cli_cmd inspect_cmd = {
    "shoal service inspect",
    "shoal service inspect [OPTIONS] SERVICE [SERVICE...]",
    HELP_SVC_INSPECT,
    CLI_ARGS_MIN,
    1,
    inspect_flags,
    ARRAY_SIZE(inspect_flags)};

static int get_service_raw(cli_client *c, const char *ref, sh_buf *raw,
                           sh_err *err) {
  cleanup_free char *eref = cli_escape(ref);
  cleanup_free char *path = xasprintf("/services/%s?insertDefaults=true", eref);
  if (cli_call(c, "GET", path, NULL, raw, err) < 0) {
    if (err->status == 404)
      return sh_error(err, 404, "no such service: %s", ref);
    return -1;
  }
  return 0;
}

static int service_inspect(struct shoal *s, int argc, char **argv) {
  struct cli_cmd *cmd = &inspect_cmd;
  cleanup_free char **args = NULL;
  int nargs, rc;
  if (shoal_parse(cmd, argc, argv, &args, &nargs, &rc) < 0)
    return rc;
  const char *format = cli_flag(cmd, "format")->s;
  if (cli_flag(cmd, "pretty")->b) {
    if (format && format[0])
      return shoal_failf("--format is incompatible with human friendly format");
    format = "pretty";
  }
  sh_err err = {0};
  cli_client *c = shoal_client(s, &err);
  if (!c)
    return shoal_fail(&err);
  if (format && strcmp(format, "pretty") == 0) {
    cleanup_buf sh_buf out = {0};
    for (int i = 0; i < nargs; i++) {
      cleanup_buf sh_buf raw = {0};
      if (get_service_raw(c, args[i], &raw, &err) < 0) {
        shoal_print(&out);
        fflush(stdout);
        return shoal_failf("%s%s", err.status == 404 ? "Error: " : "", err.msg);
      }
      json_error_t je;
      cleanup_json json_t *svc =
          json_loadb(raw.data ? raw.data : "", raw.len, 0, &je);
      /* network names as docker resolves them */
      cleanup_json json_t *netnames = json_object();
      size_t k;
      json_t *nw;
      json_array_foreach(jx_get(svc, "Spec.TaskTemplate.Networks"), k, nw) {
        cleanup_free char *en = cli_escape(jx_str(nw, "Target", ""));
        cleanup_free char *np = xasprintf("/networks/%s", en);
        cleanup_json json_t *net = NULL;
        sh_err ne = {0};
        if (cli_call_json(c, "GET", np, NULL, &net, &ne) == 0)
          json_object_set_new(netnames, jx_str(nw, "Target", ""),
                              json_string(jx_str(net, "Name", "")));
      }
      render_service_pretty(svc, netnames, shoal_now_ns(), &out);
    }
    shoal_print(&out);
    return 0;
  }
  sh_buf *raws = xcalloc((size_t)nargs, sizeof *raws);
  const char **ptrs = xcalloc((size_t)nargs, sizeof *ptrs);
  size_t *lens = xcalloc((size_t)nargs, sizeof *lens);
  size_t n = 0;
  sh_buf errors = {0};
  bool plain = !format || !format[0] || strcmp(format, "json") == 0;
  for (int i = 0; i < nargs; i++) {
    sh_err e = {0};
    if (get_service_raw(c, args[i], &raws[n], &e) < 0) {
      buf_printf(&errors, "%s%s%s", errors.len ? "\n" : "",
                 e.status == 404 ? "Error: " : "", e.msg);
      continue;
    }
    json_error_t je;
    cleanup_json json_t *j =
        plain
            ? json_loadb(raws[n].data ? raws[n].data : "", raws[n].len, 0, &je)
            : NULL;
    if (json_is_object(j)) {
      /* docker prints the decoded struct: its field order, Go's escaping */
      cleanup_json json_t *ordered = svc_go_order_service(j);
      buf_reset(&raws[n]);
      text_go_json(ordered, false, &raws[n]);
    }
    ptrs[n] = raws[n].data ? raws[n].data : "";
    lens[n] = raws[n].len;
    n++;
  }
  return shoal_inspect_output(raws, nargs, ptrs, lens, n, format, &errors);
}

/* ---- update / scale --------------------------------------------------------
 */

static int post_update(cli_client *c, json_t *svc, const json_t *spec,
                       sh_err *err) {
  cleanup_free char *eid = cli_escape(jx_str(svc, "ID", ""));
  cleanup_free char *path =
      xasprintf("/services/%s/update?version=%lld", eid,
                (long long)jx_int(svc, "Version.Index", 0));
  cleanup_json json_t *resp = NULL;
  if (cli_call_json(c, "POST", path, spec, &resp, err) < 0)
    return -1;
  size_t i;
  json_t *w;
  json_array_foreach(json_object_get(resp, "Warnings"), i, w)
      fprintf(stderr, "%s\n", json_string_value(w) ? json_string_value(w) : "");
  return 0;
}

static json_t *get_service(cli_client *c, const char *ref, sh_err *err) {
  cleanup_free char *eref = cli_escape(ref);
  cleanup_free char *path =
      xasprintf("/services/%s?insertDefaults=false", eref);
  json_t *svc = NULL;
  if (cli_call_json(c, "GET", path, NULL, &svc, err) < 0)
    return NULL;
  return svc;
}

static struct cli_flag scale_flags[] = {
    {.name = "detach", .shorthand = 'd', .type = CLI_FLAG_BOOL},
};
static struct cli_cmd scale_cmd = {
    "shoal service scale",
    "shoal service scale SERVICE=REPLICAS [SERVICE=REPLICAS...]",
    HELP_SVC_SCALE,
    CLI_ARGS_MIN,
    1,
    scale_flags,
    ARRAY_SIZE(scale_flags)};

static int service_scale(struct shoal *s, int argc, char **argv) {
  struct cli_cmd *cmd = &scale_cmd;
  cleanup_free char **args = NULL;
  int nargs, rc;
  if (shoal_parse(cmd, argc, argv, &args, &nargs, &rc) < 0)
    return rc;
  for (int i = 0; i < nargs; i++) {
    const char *eq = strchr(args[i], '=');
    if (!eq || eq == args[i] || !eq[1]) {
      fprintf(stderr,
              "invalid scale specifier '%s'.\nSee 'shoal service scale "
              "--help'.\n\nUsage:  %s\n\nScale one or multiple replicated "
              "services\n",
              args[i], cmd->use);
      return 1;
    }
  }
  sh_err err = {0};
  cli_client *c = shoal_client(s, &err);
  if (!c)
    return shoal_fail(&err);
  cleanup_buf sh_buf errors = {0};
  char **scaled = xcalloc((size_t)nargs, sizeof *scaled);
  int nscaled = 0;
  for (int i = 0; i < nargs; i++) {
    const char *eq = strchr(args[i], '=');
    cleanup_free char *name = xstrndup(args[i], (size_t)(eq - args[i]));
    char *end;
    errno = 0;
    unsigned long long n = strtoull(eq + 1, &end, 10);
    if (*end || errno || eq[1] == '-' || eq[1] == '+') {
      buf_printf(&errors,
                 "%s%s: invalid replicas value %s: strconv.ParseUint: parsing "
                 "\"%s\": %s",
                 errors.len ? "\n" : "", name, eq + 1, eq + 1,
                 errno == ERANGE ? "value out of range" : "invalid syntax");
      continue;
    }
    cleanup_json json_t *svc = get_service(c, name, &err);
    if (!svc) {
      buf_printf(&errors, "%s%s: %s", errors.len ? "\n" : "", name, err.msg);
      continue;
    }
    json_t *spec = json_object_get(svc, "Spec");
    if (jx_get(spec, "Mode.Replicated")) {
      jx_set(spec, "Mode.Replicated.Replicas", json_integer((json_int_t)n));
    } else if (jx_get(spec, "Mode.ReplicatedJob")) {
      jx_set(spec, "Mode.ReplicatedJob.MaxConcurrent",
             json_integer((json_int_t)n));
    } else {
      buf_printf(&errors,
                 "%s%s: scale can only be used with replicated or "
                 "replicated-job mode",
                 errors.len ? "\n" : "", name);
      continue;
    }
    if (post_update(c, svc, spec, &err) < 0) {
      buf_printf(&errors, "%s%s: %s", errors.len ? "\n" : "", name, err.msg);
      continue;
    }
    printf("%s scaled to %llu\n", name, n);
    scaled[nscaled++] = xstrdup(name);
  }
  fflush(stdout);
  rc = 0;
  if (!cli_flag(cmd, "detach")->b)
    for (int i = 0; i < nscaled; i++)
      if (wait_on_service(c, scaled[i], false) != 0)
        rc = 1;
  for (int i = 0; i < nscaled; i++)
    free(scaled[i]);
  free(scaled);
  if (errors.len)
    return shoal_failf("%s", errors.data);
  return rc;
}

static struct cli_flag update_flags[] = {
    {.name = "image", .type = CLI_FLAG_STRING},
    {.name = "replicas", .type = CLI_FLAG_UINT64},
    {.name = "env-add", .type = CLI_FLAG_LIST},
    {.name = "env-rm", .type = CLI_FLAG_LIST},
    {.name = "force", .type = CLI_FLAG_BOOL},
    {.name = "constraint-add", .type = CLI_FLAG_LIST},
    {.name = "constraint-rm", .type = CLI_FLAG_LIST},
    UPDATE_FLAGS,
};
static struct cli_cmd update_cmd = {"shoal service update",
                                    "shoal service update [OPTIONS] SERVICE",
                                    HELP_SVC_UPDATE,
                                    CLI_ARGS_EXACT,
                                    1,
                                    update_flags,
                                    ARRAY_SIZE(update_flags)};

static void list_remove_key(json_t *arr, const char *key, bool env) {
  size_t klen = strcspn(key, "=");
  for (size_t i = json_array_size(arr); i-- > 0;) {
    const char *v = json_string_value(json_array_get(arr, i));
    if (!v)
      continue;
    bool match =
        env ? strncmp(v, key, klen) == 0 && (v[klen] == '=' || v[klen] == '\0')
            : strcmp(v, key) == 0;
    if (match)
      json_array_remove(arr, i);
  }
}

static int service_update(struct shoal *s, int argc, char **argv) {
  struct cli_cmd *cmd = &update_cmd;
  cleanup_free char **args = NULL;
  int nargs, rc;
  if (shoal_parse(cmd, argc, argv, &args, &nargs, &rc) < 0)
    return rc;
  if (cli_flag(cmd, "with-registry-auth")->b)
    return no_registry_auth();
  sh_err err = {0};
  cli_client *c = shoal_client(s, &err);
  if (!c)
    return shoal_fail(&err);
  cleanup_json json_t *svc = get_service(c, args[0], &err);
  if (!svc)
    return shoal_fail(&err);
  json_t *spec = json_object_get(svc, "Spec");
  json_t *tt = json_object_get(spec, "TaskTemplate");
  if (!json_is_object(tt)) {
    tt = json_object();
    json_object_set_new(spec, "TaskTemplate", tt);
  }
  if ((rc = apply_common(cmd, spec)) != 0)
    return rc;
  struct cli_flag *f = cli_flag(cmd, "replicas");
  if (f->changed) {
    if (!jx_get(spec, "Mode.Replicated"))
      return shoal_failf("replicas can only be used with replicated or "
                         "replicated-job mode");
    jx_set(spec, "Mode.Replicated.Replicas", json_integer((json_int_t)f->u));
  }
  json_t *env = jx_get(tt, "ContainerSpec.Env");
  struct cli_flag *add = cli_flag(cmd, "env-add"),
                  *rm = cli_flag(cmd, "env-rm");
  if (add->nlist || rm->nlist) {
    if (!json_is_array(env)) {
      env = json_array();
      jx_set(tt, "ContainerSpec.Env", env);
    }
    for (size_t i = 0; i < rm->nlist; i++)
      list_remove_key(env, rm->list[i], true);
    for (size_t i = 0; i < add->nlist; i++) {
      list_remove_key(env, add->list[i], true);
      json_array_append_new(env, env_entry(add->list[i]));
    }
  }
  struct cli_flag *cadd = cli_flag(cmd, "constraint-add"),
                  *crm = cli_flag(cmd, "constraint-rm");
  if (cadd->nlist || crm->nlist) {
    json_t *cons = jx_get(tt, "Placement.Constraints");
    if (!json_is_array(cons)) {
      cons = json_array();
      jx_set(tt, "Placement.Constraints", cons);
    }
    for (size_t i = 0; i < crm->nlist; i++)
      list_remove_key(cons, crm->list[i], false);
    for (size_t i = 0; i < cadd->nlist; i++) {
      list_remove_key(cons, cadd->list[i], false);
      json_array_append_new(cons, json_string(cadd->list[i]));
    }
  }
  if (cli_flag(cmd, "force")->b)
    json_object_set_new(tt, "ForceUpdate",
                        json_integer(jx_int(tt, "ForceUpdate", 0) + 1));
  bool quiet = cli_flag(cmd, "quiet")->b;
  const char *image = cli_flag(cmd, "image")->s;
  if (image) {
    if (cli_flag(cmd, "no-resolve-image")->b)
      jx_set(tt, "ContainerSpec.Image", json_string(image));
    else
      pin_image(c, tt, image, quiet);
  }
  if (post_update(c, svc, spec, &err) < 0)
    return shoal_fail(&err);
  printf("%s\n", args[0]);
  fflush(stdout);
  if (cli_flag(cmd, "detach")->b)
    return 0;
  return wait_on_service(c, args[0], quiet);
}

/* ---- rm --------------------------------------------------------------------
 */

static struct cli_cmd rm_cmd = {"shoal service rm",
                                "shoal service rm SERVICE [SERVICE...]",
                                HELP_SVC_RM,
                                CLI_ARGS_MIN,
                                1,
                                NULL,
                                0};

static int service_rm(struct shoal *s, int argc, char **argv) {
  cleanup_free char **args = NULL;
  int nargs, rc;
  if (shoal_parse(&rm_cmd, argc, argv, &args, &nargs, &rc) < 0)
    return rc;
  sh_err err = {0};
  cli_client *c = shoal_client(s, &err);
  if (!c)
    return shoal_fail(&err);
  cleanup_buf sh_buf errors = {0};
  for (int i = 0; i < nargs; i++) {
    cleanup_free char *eid = cli_escape(args[i]);
    cleanup_free char *path = xasprintf("/services/%s", eid);
    if (cli_call(c, "DELETE", path, NULL, NULL, &err) < 0) {
      buf_printf(&errors, "%s%s", errors.len ? "\n" : "", err.msg);
      continue;
    }
    printf("%s\n", args[i]);
  }
  fflush(stdout);
  if (errors.len)
    return shoal_failf("%s", errors.data);
  return 0;
}

/* ---- logs ------------------------------------------------------------------
 */

struct svc_logs {
  cli_client *c;
  bool no_trunc, no_task_ids, timestamps, details_flag;
  int padding;
  json_t *cache; /* "node|service|task" -> prefix */
};

static void split_details(const char *d, json_t *out) {
  cleanup_free char *copy = xstrdup(d);
  char *save = NULL;
  for (char *kv = strtok_r(copy, ",", &save); kv;
       kv = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(kv, '=');
    if (!eq)
      continue;
    *eq = '\0';
    cleanup_free char *v = NULL;
    /* values are query-escaped by the daemon */
    sh_buf b = {0};
    for (const char *p = eq + 1; *p; p++) {
      if (*p == '%' && isxdigit((unsigned char)p[1]) &&
          isxdigit((unsigned char)p[2])) {
        char hex[3] = {p[1], p[2], 0};
        char ch = (char)strtol(hex, NULL, 16);
        buf_append(&b, &ch, 1);
        p += 2;
      } else {
        buf_append(&b, *p == '+' ? " " : p, 1);
      }
    }
    v = b.data ? b.data : xstrdup("");
    json_object_set_new(out, kv, json_string(v));
  }
}

static char *log_prefix(struct svc_logs *l, const char *node, const char *svc,
                        const char *task) {
  cleanup_free char *key = xasprintf("%s|%s|%s", node, svc, task);
  const char *hit = json_string_value(json_object_get(l->cache, key));
  if (hit)
    return xstrdup(hit);
  sh_err err = {0};
  cleanup_free char *nodename = xstrdup(node);
  cleanup_free char *svcname = xstrdup(svc);
  cleanup_json json_t *n = NULL, *s = NULL, *t = NULL;
  cleanup_free char *np = xasprintf("/nodes/%s", node);
  if (cli_call_json(l->c, "GET", np, NULL, &n, &err) == 0 &&
      jx_str(n, "Description.Hostname", "")[0]) {
    free(nodename);
    nodename = xstrdup(jx_str(n, "Description.Hostname", ""));
  }
  cleanup_free char *sp = xasprintf("/services/%s", svc);
  if (cli_call_json(l->c, "GET", sp, NULL, &s, &err) == 0) {
    free(svcname);
    svcname = xstrdup(jx_str(s, "Spec.Name", svc));
  }
  cleanup_free char *tp = xasprintf("/tasks/%s", task);
  long long slot = 0;
  if (cli_call_json(l->c, "GET", tp, NULL, &t, &err) == 0)
    slot = (long long)jx_int(t, "Slot", 0);
  sh_buf b = {0};
  buf_printf(&b, "%s.%lld", svcname, slot);
  if (!l->no_task_ids)
    buf_printf(&b, ".%.*s", l->no_trunc ? (int)strlen(task) : 12, task);
  buf_printf(&b, "@%s", nodename);
  char digits[32];
  int pad = l->padding - snprintf(digits, sizeof digits, "%lld", slot);
  for (int i = 0; i < pad; i++)
    buf_append(&b, " ", 1);
  json_object_set_new(l->cache, key, json_string(b.data));
  return b.data;
}

static int svc_log_frame(int stream, const char *p, size_t n, void *arg) {
  struct svc_logs *l = arg;
  FILE *f = stream == 2 ? stderr : stdout;
  cleanup_free char *line = xstrndup(p, n);
  char *parts[3] = {0};
  int np = l->timestamps ? 3 : 2, k = 0;
  char *cur = line;
  for (; k < np - 1; k++) {
    char *sp = strchr(cur, ' ');
    if (!sp)
      break;
    *sp = '\0';
    parts[k] = cur;
    cur = sp + 1;
  }
  if (k != np - 1) {
    fprintf(stderr, "invalid context in log message: %.*s\n", (int)n, p);
    return -1;
  }
  parts[k] = cur;
  const char *details = parts[l->timestamps ? 1 : 0];
  cleanup_json json_t *d = json_object();
  split_details(details, d);
  /* keys with dots: read them whole, not as paths */
  const char *node =
      json_string_value(json_object_get(d, "com.docker.swarm.node.id"));
  const char *svc =
      json_string_value(json_object_get(d, "com.docker.swarm.service.id"));
  const char *task =
      json_string_value(json_object_get(d, "com.docker.swarm.task.id"));
  if (!node || !svc || !task) {
    fprintf(stderr, "missing node, service or task id in details\n");
    return -1;
  }
  cleanup_free char *prefix = log_prefix(l, node, svc, task);
  if (l->timestamps)
    fprintf(f, "%s ", parts[0]);
  fprintf(f, "%s    | ", prefix);
  if (l->details_flag) {
    json_object_del(d, "com.docker.swarm.node.id");
    json_object_del(d, "com.docker.swarm.service.id");
    json_object_del(d, "com.docker.swarm.task.id");
    const char *key;
    json_t *v;
    bool first = true;
    /* sorted k=v pairs */
    size_t cnt = json_object_size(d), i = 0;
    const char **keys = xcalloc(cnt ? cnt : 1, sizeof *keys);
    json_object_foreach(d, key, v) keys[i++] = key;
    for (size_t a = 0; a < cnt; a++)
      for (size_t b = a + 1; b < cnt; b++)
        if (strcmp(keys[a], keys[b]) > 0) {
          const char *t = keys[a];
          keys[a] = keys[b];
          keys[b] = t;
        }
    for (i = 0; i < cnt; i++) {
      fprintf(f, "%s%s=%s", first ? "" : ",", keys[i],
              json_string_value(json_object_get(d, keys[i])));
      first = false;
    }
    free(keys);
    fputc(' ', f);
  }
  fputs(parts[k], f);
  fflush(f);
  return 0;
}

static struct cli_flag logs_flags[] = {
    {.name = "follow", .shorthand = 'f', .type = CLI_FLAG_BOOL},
    {.name = "timestamps", .shorthand = 't', .type = CLI_FLAG_BOOL},
    {.name = "details", .type = CLI_FLAG_BOOL},
    {.name = "tail", .shorthand = 'n', .type = CLI_FLAG_STRING, .dflt = "all"},
    {.name = "since", .type = CLI_FLAG_STRING},
    {.name = "no-trunc", .type = CLI_FLAG_BOOL},
    {.name = "no-task-ids", .type = CLI_FLAG_BOOL},
    {.name = "no-resolve", .type = CLI_FLAG_BOOL},
    {.name = "raw", .type = CLI_FLAG_BOOL},
};
static struct cli_cmd logs_cmd = {"shoal service logs",
                                  "shoal service logs [OPTIONS] SERVICE|TASK",
                                  HELP_SVC_LOGS,
                                  CLI_ARGS_EXACT,
                                  1,
                                  logs_flags,
                                  ARRAY_SIZE(logs_flags)};

static int raw_frame(int stream, const char *p, size_t n, void *arg) {
  FILE *f = stream == 2 ? stderr : stdout;
  fwrite(p, 1, n, f);
  fflush(f);
  return 0;
}

static int service_logs(struct shoal *s, int argc, char **argv) {
  struct cli_cmd *cmd = &logs_cmd;
  cleanup_free char **args = NULL;
  int nargs, rc;
  if (shoal_parse(cmd, argc, argv, &args, &nargs, &rc) < 0)
    return rc;
  sh_err err = {0};
  cli_client *c = shoal_client(s, &err);
  if (!c)
    return shoal_fail(&err);
  cleanup_free char *eref = cli_escape(args[0]);
  cleanup_free char *spath = xasprintf("/services/%s", eref);
  cleanup_json json_t *svc = NULL, *task = NULL;
  const char *kind = "services";
  int padding = 1;
  bool tty = false;
  if (cli_call_json(c, "GET", spath, NULL, &svc, &err) == 0) {
    tty = jx_bool(svc, "Spec.TaskTemplate.ContainerSpec.TTY", false);
    if (jx_get(svc, "Spec.Mode.Replicated.Replicas")) {
      char digits[32];
      padding =
          snprintf(digits, sizeof digits, "%lld",
                   (long long)jx_int(svc, "Spec.Mode.Replicated.Replicas", 0));
    }
  } else {
    cleanup_free char *tpath = xasprintf("/tasks/%s", eref);
    if (cli_call_json(c, "GET", tpath, NULL, &task, &err) < 0)
      return shoal_failf("no such task or service: %s", args[0]);
    kind = "tasks";
    tty = jx_bool(task, "Spec.ContainerSpec.TTY", false);
  }
  bool raw = cli_flag(cmd, "raw")->b;
  if (tty && !raw)
    return shoal_failf("tty service logs only supported with --raw");
  cleanup_free char *tail = cli_escape(cli_flag(cmd, "tail")->s);
  sh_buf q = {0};
  buf_printf(&q, "/%s/%s/logs?stdout=1&stderr=1&tail=%s", kind, eref, tail);
  if (cli_flag(cmd, "follow")->b)
    buf_printf(&q, "&follow=1");
  if (cli_flag(cmd, "timestamps")->b)
    buf_printf(&q, "&timestamps=1");
  if (cli_flag(cmd, "details")->b || !raw)
    buf_printf(&q, "&details=1");
  if (cli_flag(cmd, "since")->s) {
    cleanup_free char *v = cli_escape(cli_flag(cmd, "since")->s);
    buf_printf(&q, "&since=%s", v);
  }
  struct svc_logs l = {.c = c,
                       .no_trunc = cli_flag(cmd, "no-trunc")->b,
                       .no_task_ids = cli_flag(cmd, "no-task-ids")->b,
                       .timestamps = cli_flag(cmd, "timestamps")->b,
                       .details_flag = cli_flag(cmd, "details")->b,
                       .padding = padding,
                       .cache = json_object()};
  rc = 0;
  if (shoal_stream(c, q.data, raw ? raw_frame : svc_log_frame, &l, &err) < 0)
    rc = shoal_fail(&err);
  json_decref(l.cache);
  buf_free(&q);
  return rc;
}

static const struct shoal_subcmd service_cmds[] = {
    {"create", NULL, service_create},
    {"inspect", NULL, service_inspect},
    {"logs", NULL, service_logs},
    {"ls", "list", service_ls},
    {"ps", NULL, service_ps},
    {"rm", "remove", service_rm},
    {"scale", NULL, service_scale},
    {"update", NULL, service_update},
    {NULL, NULL, NULL},
};

int cmd_service(struct shoal *s, int argc, char **argv) {
  return shoal_group(s, "shoal service", HELP_SERVICE, service_cmds, argc,
                     argv);
}
