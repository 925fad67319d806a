/* shoal ps | logs | inspect (containers), as docker's cli/command/container,
 * and the streaming log reader that service logs shares. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/render.h"
#include "cli/svc.h"
#include "cli/template.h"
#include "core/jsonx.h"
#include "service_help.h"
#include "shoal.h"

int64_t shoal_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * INT64_C(1000000000) + ts.tv_nsec;
}

/* ---- multiplexed log stream -------------------------------------------- */

struct stream_ctx {
  shoal_frame_fn fn;
  void *arg;
  sh_buf pending;
  sh_buf errbody;
  long status;
  bool raw; /* a TTY stream: no frame headers */
  int cb_rc;
};

static size_t on_stream(char *p, size_t sz, size_t n, void *ud) {
  struct stream_ctx *x = ud;
  size_t len = sz * n;
  if (x->status == 0) {
    /* first bytes: the status line is known by now */
  }
  if (x->status >= 300) {
    buf_append(&x->errbody, p, len);
    return len;
  }
  if (x->raw) {
    if (x->fn(1, p, len, x->arg) < 0)
      x->cb_rc = -1;
    return len;
  }
  buf_append(&x->pending, p, len);
  size_t off = 0;
  while (x->pending.len - off >= 8) {
    const unsigned char *h = (const unsigned char *)x->pending.data + off;
    size_t flen = ((size_t)h[4] << 24) | ((size_t)h[5] << 16) |
                  ((size_t)h[6] << 8) | h[7];
    if (x->pending.len - off < 8 + flen)
      break;
    if (x->fn(h[0], (const char *)h + 8, flen, x->arg) < 0)
      x->cb_rc = -1;
    off += 8 + flen;
  }
  if (off) {
    memmove(x->pending.data, x->pending.data + off, x->pending.len - off);
    x->pending.len -= off;
  }
  return len;
}

static size_t on_stream_header(char *p, size_t sz, size_t n, void *ud) {
  struct stream_ctx *x = ud;
  size_t len = sz * n;
  if (len > 5 && strncmp(p, "HTTP/", 5) == 0) {
    const char *sp = memchr(p, ' ', len);
    if (sp)
      x->status = strtol(sp + 1, NULL, 10);
  }
  if (len > 13 && strncasecmp(p, "Content-Type:", 13) == 0 &&
      memmem(p, len, "vnd.docker.raw-stream", 21))
    x->raw = true;
  return len;
}

int shoal_stream(cli_client *c, const char *path, shoal_frame_fn fn, void *arg,
                 sh_err *err) {
  if (cli_client_negotiate(c, err) < 0)
    return -1;
  CURL *h = curl_easy_init();
  if (!h)
    return sh_error(err, CLI_ESTATUS_LOCAL, "curl init failed");
  struct stream_ctx x = {.fn = fn, .arg = arg};
  cleanup_free char *url = xasprintf("%s/v%s%s", c->base_url, c->version, path);
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  if (c->unix_path)
    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->unix_path);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_stream);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_stream_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
  CURLcode rc = curl_easy_perform(h);
  int ret = 0;
  if (rc != CURLE_OK && x.status == 0) {
    ret = sh_error(err, CLI_ESTATUS_CONNECT,
                   "Cannot connect to the Docker daemon at %s. Is the docker "
                   "daemon running?",
                   c->host);
  } else if (x.status >= 300) {
    char *ct = NULL;
    curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
    cli_daemon_error(x.status, ct, x.errbody.data ? x.errbody.data : "",
                     x.errbody.len, url, err);
    ret = -1;
  } else if (x.cb_rc < 0) {
    ret = sh_error(err, CLI_ESTATUS_LOCAL, "error writing logs");
  }
  curl_easy_cleanup(h);
  buf_free(&x.pending);
  buf_free(&x.errbody);
  return ret;
}

/* ---- ps ------------------------------------------------------------------ */

static struct cli_flag ps_flags[] = {
    {.name = "all", .shorthand = 'a', .type = CLI_FLAG_BOOL},
    {.name = "quiet", .shorthand = 'q', .type = CLI_FLAG_BOOL},
    {.name = "no-trunc", .type = CLI_FLAG_BOOL},
    {.name = "format", .type = CLI_FLAG_STRING},
    {.name = "filter", .shorthand = 'f', .type = CLI_FLAG_FILTER},
    {.name = "last", .shorthand = 'n', .type = CLI_FLAG_INT64, .dflt = "-1"},
    {.name = "latest", .shorthand = 'l', .type = CLI_FLAG_BOOL},
    {.name = "size", .shorthand = 's', .type = CLI_FLAG_BOOL},
};
static struct cli_cmd ps_cmd = {
    "shoal ps", "shoal ps [OPTIONS]", HELP_PS, CLI_ARGS_NONE, 0,
    ps_flags,   ARRAY_SIZE(ps_flags)};

int cmd_ps(struct shoal *s, int argc, char **argv) {
  struct cli_cmd *cmd = &ps_cmd;
  cleanup_free char **args = NULL;
  int nargs, rc;
  if (shoal_parse(cmd, argc, argv, &args, &nargs, &rc) < 0)
    return rc;
  cleanup_free char *fq = shoal_filters_query(cli_flag(cmd, "filter"), "&");
  int64_t last = cli_flag(cmd, "last")->i;
  if (cli_flag(cmd, "latest")->b)
    last = 1;
  sh_buf q = {0};
  buf_printf(&q, "/containers/json?all=%d",
             cli_flag(cmd, "all")->b || last > 0);
  if (last > 0)
    buf_printf(&q, "&limit=%lld", (long long)last);
  if (cli_flag(cmd, "size")->b)
    buf_printf(&q, "&size=1");
  buf_printf(&q, "%s", fq);
  cleanup_free char *path = q.data;
  sh_err err = {0};
  cli_client *c = shoal_client(s, &err);
  cleanup_json json_t *list = NULL;
  if (!c || cli_call_json(c, "GET", path, NULL, &list, &err) < 0)
    return shoal_fail(&err);
  cleanup_buf sh_buf out = {0};
  if (render_container_list(
          list, !cli_flag(cmd, "no-trunc")->b, cli_flag(cmd, "quiet")->b,
          cli_flag(cmd, "format")->s, shoal_now_ns(), &out, &err) < 0)
    return shoal_fail(&err);
  shoal_print(&out);
  return 0;
}

/* ---- logs ---------------------------------------------------------------- */

static int write_frame(int stream, const char *p, size_t n, void *arg) {
  FILE *f = stream == 2 ? stderr : stdout;
  fwrite(p, 1, n, f);
  fflush(f);
  return 0;
}

static struct cli_flag logs_flags[] = {
    {.name = "follow", .shorthand = 'f', .type = CLI_FLAG_BOOL},
    {.name = "timestamps", .shorthand = 't', .type = CLI_FLAG_BOOL},
    {.name = "details", .type = CLI_FLAG_BOOL},
    {.name = "tail", .shorthand = 'n', .type = CLI_FLAG_STRING, .dflt = "all"},
    {.name = "since", .type = CLI_FLAG_STRING},
    {.name = "until", .type = CLI_FLAG_STRING},
};
static struct cli_cmd logs_cmd = {"shoal logs",
                                  "shoal logs [OPTIONS] CONTAINER",
                                  HELP_LOGS,
                                  CLI_ARGS_EXACT,
                                  1,
                                  logs_flags,
                                  ARRAY_SIZE(logs_flags)};

int cmd_logs(struct shoal *s, int argc, char **argv) {
  struct cli_cmd *cmd = &logs_cmd;
  cleanup_free char **args = NULL;
  int nargs, rc;
  if (shoal_parse(cmd, argc, argv, &args, &nargs, &rc) < 0)
    return rc;
  sh_err err = {0};
  cli_client *c = shoal_client(s, &err);
  if (!c)
    return shoal_fail(&err);
  cleanup_free char *id = cli_escape(args[0]);
  cleanup_free char *tail = cli_escape(cli_flag(cmd, "tail")->s);
  sh_buf q = {0};
  buf_printf(&q, "/containers/%s/logs?stdout=1&stderr=1&tail=%s", id, tail);
  if (cli_flag(cmd, "follow")->b)
    buf_printf(&q, "&follow=1");
  if (cli_flag(cmd, "timestamps")->b)
    buf_printf(&q, "&timestamps=1");
  if (cli_flag(cmd, "details")->b)
    buf_printf(&q, "&details=1");
  if (cli_flag(cmd, "since")->s) {
    cleanup_free char *v = cli_escape(cli_flag(cmd, "since")->s);
    buf_printf(&q, "&since=%s", v);
  }
  if (cli_flag(cmd, "until")->s) {
    cleanup_free char *v = cli_escape(cli_flag(cmd, "until")->s);
    buf_printf(&q, "&until=%s", v);
  }
  /* docker inspects first: a missing container fails before any stream */
  cleanup_free char *ipath = xasprintf("/containers/%s/json", id);
  cleanup_json json_t *ctr = NULL;
  rc = 0;
  if (cli_call_json(c, "GET", ipath, NULL, &ctr, &err) < 0 ||
      shoal_stream(c, q.data, write_frame, NULL, &err) < 0)
    rc = shoal_fail(&err);
  buf_free(&q);
  return rc;
}

/* ---- inspect ------------------------------------------------------------- */

static struct cli_flag inspect_flags[] = {
    {.name = "format", .shorthand = 'f', .type = CLI_FLAG_STRING},
    {.name = "size", .shorthand = 's', .type = CLI_FLAG_BOOL},
    {.name = "type", .type = CLI_FLAG_STRING},
};
static struct cli_cmd inspect_cmd = {"shoal inspect",
                                     "shoal inspect [OPTIONS] NAME|ID "
                                     "[NAME|ID...]",
                                     HELP_INSPECT,
                                     CLI_ARGS_MIN,
                                     1,
                                     inspect_flags,
                                     ARRAY_SIZE(inspect_flags)};

/* Tries the object kinds docker tries, in its order, for the ones shoal
 * serves: container, image, node, service, task. */
static int inspect_any(cli_client *c, const char *ref, const char *type,
                       bool size, sh_buf *raw) {
  static const char *const kinds[][3] = {{"container", "/containers/", "/json"},
                                         {"image", "/images/", "/json"},
                                         {"node", "/nodes/", ""},
                                         {"service", "/services/", ""},
                                         {"task", "/tasks/", ""}};
  cleanup_free char *eref = cli_escape(ref);
  for (size_t k = 0; k < ARRAY_SIZE(kinds); k++) {
    if (type && type[0] && strcmp(type, kinds[k][0]) != 0)
      continue;
    const char *extra = "";
    if (k == 0 && size)
      extra = "?size=1";
    cleanup_free char *path =
        xasprintf("%s%s%s%s", kinds[k][1], eref, kinds[k][2], extra);
    sh_err e = {0};
    buf_reset(raw);
    if (cli_call(c, "GET", path, NULL, raw, &e) == 0)
      return 0;
  }
  return -1;
}

int cmd_inspect(struct shoal *s, int argc, char **argv) {
  struct cli_cmd *cmd = &inspect_cmd;
  cleanup_free char **args = NULL;
  int nargs, rc;
  if (shoal_parse(cmd, argc, argv, &args, &nargs, &rc) < 0)
    return rc;
  const char *format = cli_flag(cmd, "format")->s;
  const char *type = cli_flag(cmd, "type")->s;
  sh_err err = {0};
  cli_client *c = shoal_client(s, &err);
  if (!c)
    return shoal_fail(&err);
  sh_buf *raws = xcalloc((size_t)nargs, sizeof *raws);
  const char **ptrs = xcalloc((size_t)nargs, sizeof *ptrs);
  size_t *lens = xcalloc((size_t)nargs, sizeof *lens);
  size_t n = 0;
  sh_buf errors = {0};
  for (int i = 0; i < nargs; i++) {
    if (inspect_any(c, args[i], type, cli_flag(cmd, "size")->b, &raws[n]) < 0) {
      if (type && type[0])
        buf_printf(&errors, "%sError: No such %s: %s", errors.len ? "\n" : "",
                   type, args[i]);
      else
        buf_printf(&errors, "%sError: No such object: %s",
                   errors.len ? "\n" : "", args[i]);
      continue;
    }
    ptrs[n] = raws[n].data ? raws[n].data : "";
    lens[n] = raws[n].len;
    n++;
  }
  return shoal_inspect_output(raws, nargs, ptrs, lens, n, format, &errors);
}
