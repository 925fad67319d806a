/* Container endpoints for the tasks this node runs: list, inspect, logs.
 * The executor's calls touch disk and processes: they run on threads.
 * List and inspect take milliseconds and have a queue of their own, so a
 * `docker ps` never waits behind image pulls and creates; logs (a follow
 * can last as long as the container) stay on the general queue. */
#include "api/api.h"

#include "api/filters.h"
#include "api/pump.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "core/workq.h"
#include "daemon/daemon.h"
#include "exec/exec.h"
#include "http/server.h"

static const char *const container_filters[] = {"id",     "name",     "label",
                                                "status", "ancestor", NULL};

enum c_op { C_LIST, C_INSPECT, C_LOGS, C_EXPORT };

struct c_job {
  struct shoald *d;
  struct http_req *req;
  enum c_op op;
  char *ref;
  bool all;
  struct filters f;
  struct exec_logs_opts lo;
  struct api_pump pump; /* logs, export: the body */
  json_t *result;
  sh_err err;
  int rc;
  bool streaming;
  char id[65]; /* logs, export: the container, resolved before the head */
};

/* "Up 5 minutes" / "Exited (0) 3 seconds ago", as docker ps shows. */
static void human_status(const json_t *info, char *out, size_t n) {
  const char *status = jx_str(info, "State.Status", "");
  int64_t t = 0;
  bool up = strcmp(status, "running") == 0 || strcmp(status, "paused") == 0;
  const char *when = up ? jx_str(info, "State.StartedAt", "")
                        : jx_str(info, "State.FinishedAt", "");
  clock_parse_rfc3339(when, &t, NULL);
  int64_t secs = t > 0 ? (clock_wall_ns() - t) / NS_PER_SEC : 0;
  char dur[64];
  if (secs < 1)
    snprintf(dur, sizeof dur, "Less than a second");
  else if (secs < 60)
    snprintf(dur, sizeof dur, "%lld seconds", (long long)secs);
  else if (secs < 120)
    snprintf(dur, sizeof dur, "About a minute");
  else if (secs < 3600)
    snprintf(dur, sizeof dur, "%lld minutes", (long long)secs / 60);
  else if (secs < 7200)
    snprintf(dur, sizeof dur, "About an hour");
  else
    snprintf(dur, sizeof dur, "%lld hours", (long long)secs / 3600);
  /* dockerd's State.String(): the health after the uptime. */
  const char *health = jx_str(info, "State.Health.Status", "");
  if (strcmp(status, "paused") == 0)
    snprintf(out, n, "Up %s (Paused)", dur);
  else if (strcmp(status, "running") == 0 && *health)
    snprintf(out, n, "Up %s (%s%s)", dur,
             strcmp(health, "starting") == 0 ? "health: " : "", health);
  else if (strcmp(status, "running") == 0)
    snprintf(out, n, "Up %s", dur);
  else if (strcmp(status, "created") == 0)
    snprintf(out, n, "Created");
  else
    snprintf(out, n, "Exited (%lld) %s ago",
             (long long)jx_int(info, "State.ExitCode", 0), dur);
}

static json_t *summary(const json_t *info) {
  char st[96];
  human_status(info, st, sizeof st);
  int64_t created = 0;
  clock_parse_rfc3339(jx_str(info, "Created", ""), &created, NULL);
  /* Command as docker shows it: path and args joined. */
  sh_buf cmd = {0};
  buf_printf(&cmd, "%s", jx_str(info, "Path", ""));
  size_t i;
  json_t *a;
  json_array_foreach(jx_get(info, "Args"), i, a) {
    const char *arg = json_string_value(a);
    /* dockerd quotes arguments holding spaces: nginx -g 'daemon off;' */
    buf_printf(&cmd, strchr(arg, ' ') ? " '%s'" : " %s", arg);
  }
  json_t *s = json_pack(
      "{s:s, s:[s], s:s, s:s, s:s, s:I, s:s, s:s, s:[], s:O, s:{s:s}, "
      "s:{s:{}}, s:[]}",
      "Id", jx_str(info, "Id", ""), "Names", jx_str(info, "Name", ""), "Image",
      jx_str(info, "Config.Image", ""), "ImageID", jx_str(info, "Image", ""),
      "Command", cmd.data ? cmd.data : "", "Created",
      (json_int_t)(created / NS_PER_SEC), "State",
      jx_str(info, "State.Status", ""), "Status", st, "Ports", "Labels",
      jx_get(info, "Config.Labels") ? jx_get(info, "Config.Labels")
                                    : json_object(),
      "HostConfig", "NetworkMode", "default", "NetworkSettings", "Networks",
      "Mounts");
  buf_free(&cmd);
  const json_t *nets = jx_get(info, "NetworkSettings.Networks");
  if (json_is_object(nets))
    jx_set(s, "NetworkSettings.Networks", json_deep_copy(nets));
  const char *mode = jx_str(info, "HostConfig.NetworkMode", "");
  if (*mode)
    jx_set(s, "HostConfig.NetworkMode", json_string(mode));
  /* Exposed, unpublished ports: {"PrivatePort": 80, "Type": "tcp"}. */
  json_t *ports = json_object_get(s, "Ports");
  const char *k;
  json_t *v;
  json_object_foreach(jx_get(info, "Config.ExposedPorts"), k, v) {
    int port = atoi(k);
    const char *slash = strchr(k, '/');
    const json_t *bound =
        json_object_get(jx_get(info, "NetworkSettings.Ports"), k);
    if (port > 0 && !json_array_size(bound))
      json_array_append_new(ports,
                            json_pack("{s:i, s:s}", "PrivatePort", port, "Type",
                                      slash ? slash + 1 : "tcp"));
  }
  /* Published ones (docker run -p): "0.0.0.0:8080->80/tcp" in ps. */
  json_object_foreach(jx_get(info, "NetworkSettings.Ports"), k, v) {
    int port = atoi(k);
    const char *slash = strchr(k, '/');
    size_t bi;
    json_t *b;
    json_array_foreach(v, bi, b) {
      json_array_append_new(
          ports, json_pack("{s:s, s:i, s:i, s:s}", "IP",
                           jx_str(b, "HostIp", "0.0.0.0"), "PrivatePort", port,
                           "PublicPort", atoi(jx_str(b, "HostPort", "0")),
                           "Type", slash ? slash + 1 : "tcp"));
    }
  }
  return s;
}

static bool matches(const struct filters *f, const json_t *info) {
  const char *name = jx_str(info, "Name", "");
  if (name[0] == '/')
    name++;
  return filters_match_prefix(f, "id", jx_str(info, "Id", "")) &&
         (!filters_has(f, "name") || filters_match_prefix(f, "name", name)) &&
         filters_match(f, "status", jx_str(info, "State.Status", "")) &&
         filters_match(f, "ancestor", jx_str(info, "Config.Image", "")) &&
         filters_match_labels(f, "label", jx_get(info, "Config.Labels"));
}

static int list(struct c_job *j) {
  cleanup_json json_t *all = NULL;
  if (exec_inspect_all(j->d->exec, &all, &j->err) < 0)
    return -1;
  j->result = json_array();
  size_t i;
  json_t *info;
  json_array_foreach(all, i, info) {
    bool running = jx_bool(info, "State.Running", false);
    if ((j->all || running || filters_has(&j->f, "status")) &&
        matches(&j->f, info))
      json_array_append_new(j->result, summary(info));
  }
  return 0;
}

/* A log reader stops reading while this much is out (read, not yet taken
 * by the client's socket), and goes on once the queue is down to
 * LOG_QUEUE_LOW: a client that never reads costs at most this. */
#define LOG_QUEUE_HIGH (256 * 1024)
#define LOG_QUEUE_LOW (64 * 1024)

static void work(void *ud) {
  struct c_job *j = ud;
  char id[65];
  switch (j->op) {
  case C_LIST:
    j->rc = list(j);
    break;
  case C_INSPECT:
    j->rc = exec_find(j->d->exec, j->ref, id, &j->err);
    if (j->rc == 0)
      j->rc = exec_inspect_json(j->d->exec, id, &j->result, &j->err);
    break;
  case C_LOGS:
    j->rc = exec_logs(j->d->exec, j->id, &j->lo, &j->err);
    break;
  case C_EXPORT:
    j->rc = exec_export(j->d->exec, j->id, api_pump_write, api_pump_gone,
                        &j->pump, &j->err);
    break;
  }
}

static void job_free(struct c_job *j) {
  free(j->ref);
  filters_free(&j->f);
  json_decref(j->result);
  free(j);
}

static void done(void *ud, int cancelled) {
  struct c_job *j = ud;
  if (cancelled && j->rc == 0)
    j->rc = sh_error(&j->err, 503, "the daemon is shutting down");
  if (j->streaming) {
    api_pump_end(&j->pump); /* begun at the start: always finished */
  } else if (j->rc < 0) {
    api_reply_err(j->req, &j->err);
  } else {
    api_reply_json(j->req, 200, json_incref(j->result));
  }
  job_free(j);
}

static void *log_thread(void *arg) {
  struct c_job *j = arg;
  work(j);
  /* After every chunk this thread posted: done runs last. */
  workq_post(j->d->work, done, j);
  return NULL;
}

static struct workq *read_queue(struct shoald *d) {
  return d->reads ? d->reads : d->work;
}

static int64_t query_time(struct http_req *req, const char *name) {
  cleanup_free char *v = http_req_query(req, name);
  if (!v || !*v)
    return 0;
  /* Docker sends seconds, optionally with a fraction. */
  return (int64_t)(strtod(v, NULL) * 1e9);
}

/* A streamed answer read on a thread of its own: a followed log lasts as
 * long as the client wants, and must never hold one of the work queue's
 * threads (pulls, creates). */
static void start_stream(struct shoald *d, struct c_job *j, const char *ctype) {
  j->streaming = true;
  api_pump_init(&j->pump, j->req, d->work, ctype, LOG_QUEUE_HIGH, LOG_QUEUE_LOW,
                false);
  if (api_pump_thread(log_thread, j) < 0) {
    j->rc = sh_error(&j->err, 500, "cannot start a reader thread");
    workq_post(d->work, done, j);
  }
}

/* logs and export resolve the container before the head, so that an
 * unknown one gets its 404 rather than a 200 and an empty stream. */
static void resolve_work(void *ud) {
  struct c_job *j = ud;
  j->rc = exec_find(j->d->exec, j->ref, j->id, &j->err);
  /* A TTY's output is one stream of bytes: no frames, as dockerd. */
  if (j->rc == 0 && j->op == C_LOGS)
    j->lo.raw = exec_tty(j->d->exec, j->id);
}

static void resolved(void *ud, int cancelled) {
  struct c_job *j = ud;
  if (cancelled)
    j->rc = sh_error(&j->err, 503, "the daemon is shutting down");
  if (j->rc < 0) {
    api_reply_err(j->req, &j->err);
    job_free(j);
    return;
  }
  start_stream(j->d, j,
               j->op != C_LOGS ? "application/x-tar"
               : j->lo.raw     ? "application/vnd.docker.raw-stream"
                               : "application/vnd.docker.multiplexed-stream");
}

static void logs(struct api_call *c, struct c_job *j) {
  j->lo.want_stdout = api_query_bool(c->req, "stdout");
  j->lo.want_stderr = api_query_bool(c->req, "stderr");
  if (!j->lo.want_stdout && !j->lo.want_stderr) {
    sh_err err = {0};
    sh_error(&err, 400, "Bad parameters: you must choose at least one stream");
    job_free(j);
    return api_reply_err(c->req, &err);
  }
  j->lo.timestamps = api_query_bool(c->req, "timestamps");
  j->lo.follow = api_query_bool(c->req, "follow");
  j->lo.since_ns = query_time(c->req, "since");
  j->lo.until_ns = query_time(c->req, "until");
  cleanup_free char *tail = http_req_query(c->req, "tail");
  j->lo.tail = tail && *tail && strcmp(tail, "all") != 0 ? atol(tail) : -1;
  j->lo.write = api_pump_write;
  j->lo.cancelled = api_pump_gone;
  j->lo.arg = &j->pump;
  workq_submit(read_queue(c->d), resolve_work, resolved, j);
}

bool api_containers(struct api_call *c) {
  const char *p = c->path;
  if (!str_has_prefix(p, "/containers/") || strcmp(c->req->method, "GET") != 0)
    return false;
  sh_err err = {0};
  if (!c->d->exec) {
    if (strcmp(p, "/containers/json") == 0) {
      http_respond_json(c->req, 200, "[]");
      return true;
    }
    sh_error(&err, 404, "No such container: %s", p + strlen("/containers/"));
    api_reply_err(c->req, &err);
    return true;
  }
  struct c_job *j = xcalloc(1, sizeof *j);
  j->d = c->d;
  j->req = c->req;
  if (strcmp(p, "/containers/json") == 0) {
    cleanup_free char *raw = http_req_query(c->req, "filters");
    if (filters_parse(raw, container_filters, &j->f, &err) < 0) {
      job_free(j);
      api_reply_err(c->req, &err);
      return true;
    }
    j->op = C_LIST;
    j->all = api_query_bool(c->req, "all");
    workq_submit(read_queue(c->d), work, done, j);
    return true;
  }
  const char *rest = p + strlen("/containers/");
  const char *slash = strchr(rest, '/');
  if (!slash || slash == rest) {
    job_free(j);
    return false;
  }
  j->ref = xstrndup(rest, (size_t)(slash - rest));
  if (strcmp(slash, "/json") == 0) {
    j->op = C_INSPECT;
    workq_submit(read_queue(c->d), work, done, j);
    return true;
  }
  if (strcmp(slash, "/logs") == 0) {
    j->op = C_LOGS;
    logs(c, j);
    return true;
  }
  if (strcmp(slash, "/export") == 0) {
    j->op = C_EXPORT;
    workq_submit(read_queue(c->d), resolve_work, resolved, j);
    return true;
  }
  job_free(j);
  return false;
}
