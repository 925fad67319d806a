/* Image endpoints: pull (/images/create, streamed progress), list,
 * inspect, remove, load, /distribution/{name}/json and /auth (a login's
 * check of credentials against a registry). Every image
 * operation runs on the daemon's work queue: they do disk and network I/O
 * that must not block the loop. */
#include "api/api.h"

#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "core/workq.h"
#include "daemon/daemon.h"
#include "http/server.h"
#include "image/image.h"

#include <fcntl.h>

enum img_op {
  OP_PULL,
  OP_LIST,
  OP_INSPECT,
  OP_REMOVE,
  OP_DIST,
  OP_LOAD,
  OP_AUTH
};

struct img_job {
  struct shoald *d;
  struct http_req *req;
  enum img_op op;
  char *ref;
  bool force;
  struct image_auth auth;
  bool have_auth;
  char *tmpfile; /* load: the archive */
  json_t *result;
  char *image_id;
  sh_err err;
  int rc;
  bool streaming;
};

struct progress {
  struct http_req *req;
  char *line;
};

static void job_free(struct img_job *j) {
  free(j->ref);
  if (j->have_auth)
    image_auth_free(&j->auth);
  if (j->tmpfile) {
    unlink(j->tmpfile);
    free(j->tmpfile);
  }
  json_decref(j->result);
  free(j->image_id);
  free(j);
}

static void progress_on_loop(void *ud, int cancelled) {
  struct progress *p = ud;
  if (!cancelled)
    http_stream_write(p->req, p->line, strlen(p->line));
  free(p->line);
  free(p);
}

/* Called on the pull thread: hand the event to the loop. */
static void on_progress(const json_t *event, void *ud) {
  struct img_job *j = ud;
  struct progress *p = xcalloc(1, sizeof *p);
  p->req = j->req;
  char *s = jx_dump(event);
  p->line = xasprintf("%s\r\n", s);
  free(s);
  workq_post(j->d->work, progress_on_loop, p);
}

static void work(void *ud) {
  struct img_job *j = ud;
  struct image_store *s = j->d->images;
  const struct image_auth *auth = j->have_auth ? &j->auth : NULL;
  switch (j->op) {
  case OP_PULL:
    j->rc = image_pull(s, j->ref, auth, on_progress, j, &j->image_id, &j->err);
    break;
  case OP_LIST:
    j->rc = image_list(s, &j->result, &j->err);
    break;
  case OP_INSPECT:
    j->rc = image_inspect(s, j->ref, &j->result, &j->err);
    break;
  case OP_REMOVE:
    j->rc = image_remove(s, j->ref, j->force, &j->result, &j->err);
    break;
  case OP_DIST:
    j->rc = image_distribution(s, j->ref, auth, &j->result, &j->err);
    break;
  case OP_AUTH:
    j->rc = image_login(s, &j->auth, &j->err);
    if (j->rc == 0)
      j->result = json_pack("{s:s}", "Status", "Login Succeeded");
    break;
  case OP_LOAD: {
    int fd = open(j->tmpfile, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      j->rc = sh_errno(&j->err, errno, "open %s", j->tmpfile);
      break;
    }
    j->rc = image_load(s, fd, on_progress, j, &j->result, &j->err);
    close(fd);
    break;
  }
  }
}

static void done(void *ud, int cancelled) {
  struct img_job *j = ud;
  if (cancelled && j->rc == 0)
    j->rc = sh_error(&j->err, 503, "the daemon is shutting down");
  if (j->streaming) {
    /* The stream already said 200: errors go in-band, as dockerd does. */
    if (j->rc < 0) {
      json_t *e = json_pack("{s:s, s:{s:s}}", "error", j->err.msg,
                            "errorDetail", "message", j->err.msg);
      char *s = jx_dump(e);
      cleanup_free char *line = xasprintf("%s\r\n", s);
      free(s);
      json_decref(e);
      http_stream_write(j->req, line, strlen(line));
    }
    http_stream_end(j->req);
  } else if (j->rc < 0) {
    api_reply_err(j->req, &j->err);
  } else {
    api_reply_json(j->req, 200, json_incref(j->result));
  }
  job_free(j);
}

static struct img_job *new_job(struct api_call *c, enum img_op op,
                               const char *ref) {
  struct img_job *j = xcalloc(1, sizeof *j);
  j->d = c->d;
  j->req = c->req;
  j->op = op;
  j->ref = ref ? xstrdup(ref) : NULL;
  return j;
}

static int read_auth(struct api_call *c, struct img_job *j, sh_err *err) {
  const char *h = http_req_header(c->req, "X-Registry-Auth");
  if (!h || !*h)
    return 0;
  if (image_auth_decode(h, &j->auth, err) < 0)
    return -1;
  j->have_auth = true;
  return 0;
}

static void start(struct img_job *j) {
  workq_submit(j->d->work, work, done, j);
}

/* POST /auth: the body is an AuthConfig; nothing is kept. */
static void login(struct api_call *c) {
  sh_err err = {0};
  cleanup_json json_t *body = NULL;
  if (api_body(c->req, &body, &err) < 0)
    return api_reply_err(c->req, &err);
  struct img_job *j = new_job(c, OP_AUTH, NULL);
  j->have_auth = true;
  const char *keys[] = {"username", "password", "serveraddress",
                        "identitytoken"};
  char **dst[] = {&j->auth.username, &j->auth.password, &j->auth.serveraddress,
                  &j->auth.identitytoken};
  for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
    json_t *v = json_object_get(body, keys[i]);
    if (v && !json_is_string(v)) {
      job_free(j);
      sh_error(&err, 400,
               "json: cannot unmarshal %s into Go struct field "
               "AuthConfig.%s of type string",
               json_is_number(v)    ? "number"
               : json_is_boolean(v) ? "bool"
               : json_is_array(v)   ? "array"
                                    : "object",
               keys[i]);
      return api_reply_err(c->req, &err);
    }
    const char *str = json_string_value(v);
    *dst[i] = str && *str ? xstrdup(str) : NULL;
  }
  start(j);
}

static void pull(struct api_call *c) {
  sh_err err = {0};
  cleanup_free char *from = http_req_query(c->req, "fromImage");
  cleanup_free char *tag = http_req_query(c->req, "tag");
  if (!from || !*from) {
    sh_error(&err, 400,
             "fromSrc and fromImage are not supported by shoal: "
             "use fromImage");
    return api_reply_err(c->req, &err);
  }
  cleanup_free char *ref = NULL;
  if (tag && *tag)
    ref = xasprintf("%s%s%s", from, str_has_prefix(tag, "sha256:") ? "@" : ":",
                    tag);
  else
    ref = xstrdup(from);
  struct image_ref parsed;
  if (image_ref_parse(ref, &parsed, &err) < 0)
    return api_reply_err(c->req, &err);
  image_ref_free(&parsed);
  struct img_job *j = new_job(c, OP_PULL, ref);
  if (read_auth(c, j, &err) < 0) {
    job_free(j);
    return api_reply_err(c->req, &err);
  }
  j->streaming = true;
  http_stream_begin(c->req, 200, "application/json", NULL);
  start(j);
}

static void load(struct api_call *c) {
  sh_err err = {0};
  char path[] = "/tmp/shoal-load-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) {
    sh_errno(&err, errno, "temporary file");
    return api_reply_err(c->req, &err);
  }
  size_t off = 0;
  while (off < c->req->body_len) {
    ssize_t n = write(fd, c->req->body + off, c->req->body_len - off);
    if (n <= 0)
      break;
    off += (size_t)n;
  }
  close(fd);
  struct img_job *j = new_job(c, OP_LOAD, NULL);
  j->tmpfile = xstrdup(path);
  if (off < c->req->body_len) {
    sh_error(&err, 500, "could not buffer the archive");
    job_free(j);
    return api_reply_err(c->req, &err);
  }
  j->streaming = true;
  http_stream_begin(c->req, 200, "application/json", NULL);
  start(j);
}

bool api_images(struct api_call *c) {
  const char *p = c->path;
  const char *m = c->req->method;
  bool get = strcmp(m, "GET") == 0;
  if (strcmp(p, "/images/create") == 0 && strcmp(m, "POST") == 0) {
    pull(c);
    return true;
  }
  if (strcmp(p, "/auth") == 0 && strcmp(m, "POST") == 0) {
    login(c);
    return true;
  }
  if (strcmp(p, "/images/load") == 0 && strcmp(m, "POST") == 0) {
    load(c);
    return true;
  }
  if (strcmp(p, "/images/json") == 0 && get) {
    start(new_job(c, OP_LIST, NULL));
    return true;
  }
  if (str_has_prefix(p, "/distribution/") && str_has_suffix(p, "/json") &&
      get) {
    size_t pre = strlen("/distribution/"), len = strlen(p);
    if (len <= pre + strlen("/json"))
      return false;
    cleanup_free char *ref = xstrndup(p + pre, len - pre - strlen("/json"));
    struct img_job *j = new_job(c, OP_DIST, ref);
    sh_err err = {0};
    if (read_auth(c, j, &err) < 0) {
      job_free(j);
      api_reply_err(c->req, &err);
      return true;
    }
    start(j);
    return true;
  }
  if (!str_has_prefix(p, "/images/"))
    return false;
  /* /images/{name}/json and DELETE /images/{name}; names may hold '/'. */
  const char *name = p + strlen("/images/");
  if (get && str_has_suffix(name, "/json")) {
    cleanup_free char *ref = xstrndup(name, strlen(name) - strlen("/json"));
    if (!*ref)
      return false;
    start(new_job(c, OP_INSPECT, ref));
    return true;
  }
  if (strcmp(m, "DELETE") == 0 && *name) {
    struct img_job *j = new_job(c, OP_REMOVE, name);
    j->force = api_query_bool(c->req, "force");
    start(j);
    return true;
  }
  return false;
}
