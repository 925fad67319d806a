/* Image endpoints: pull (/images/create, streamed progress), list (with
 * moby's filters), inspect, history, tag, remove, prune, load, save
 * (/images/get, a thread of its own with backpressure), push, POST /auth
 * (a login's check of credentials against a registry),
 * /distribution/{name}/json, and GET /system/df. Every image operation
 * runs off the loop (disk and network I/O). What containers use comes
 * from the executor at each call: the image store knows no containers.
 * Image events go from the store's hook to the node's event log. */
#include "api/api.h"

#include "api/filters.h"
#include "api/pump.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "core/workq.h"
#include "daemon/daemon.h"
#include "events/events.h"
#include "exec/exec.h"
#include "http/server.h"
#include "image/image.h"
#include "volume/volume.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <ftw.h>

enum img_op {
  OP_PULL,
  OP_LIST,
  OP_INSPECT,
  OP_REMOVE,
  OP_DIST,
  OP_LOAD,
  OP_TAG,
  OP_HISTORY,
  OP_PRUNE,
  OP_SAVE,
  OP_PUSH,
  OP_AUTH,
  OP_DF,
};

static const char *const list_filters[] = {"dangling", "label", "label!",
                                           "before",   "since", "reference",
                                           "until",    NULL};
static const char *const prune_filters[] = {"dangling", "label", "label!",
                                            "until", NULL};

struct img_job {
  struct shoald *d;
  struct http_req *req;
  enum img_op op;
  char *ref;
  char *target; /* tag: repo[:tag]; push: tag */
  char **names; /* save */
  bool force, all;
  struct filters f;
  struct api_pump pump; /* save: the tar */
  struct image_auth auth;
  bool have_auth;
  char *tmpfile; /* load: the archive */
  json_t *result;
  char *image_id;
  sh_err err;
  int rc;
  bool streaming;
  int status_ok; /* 0: 200 with the result */
};

struct progress {
  struct http_req *req;
  char *line;
};

static void job_free(struct img_job *j) {
  free(j->ref);
  free(j->target);
  for (char **p = j->names; p && *p; p++)
    free(*p);
  free(j->names);
  filters_free(&j->f);
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

/* ---- events: the store's hook runs on its thread; the log is the
 * loop's ---- */

struct ev_post {
  struct shoald *d;
  char *action, *id;
  json_t *attrs;
};

static void ev_on_loop(void *ud, int cancelled) {
  struct ev_post *e = ud;
  if (!cancelled && e->d->events)
    events_publish(e->d->events, "image", e->action, e->id, e->attrs, "local");
  else
    json_decref(e->attrs);
  free(e->action);
  free(e->id);
  free(e);
}

/* attrs: stolen. */
static void events_post(struct shoald *d, const char *action, const char *id,
                        json_t *attrs) {
  struct ev_post *e = xcalloc(1, sizeof *e);
  e->d = d;
  e->action = xstrdup(action);
  e->id = xstrdup(id);
  e->attrs = attrs ? attrs : json_object();
  workq_post(d->work, ev_on_loop, e);
}

/* dockerd's LogImageEvent: the image's labels, then its name. */
static void on_store_event(const char *action, const char *id, const char *name,
                           const json_t *labels, void *ud) {
  json_t *attrs = json_object();
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)labels, k, v) {
    if (json_is_string(v))
      json_object_set(attrs, k, v);
  }
  json_object_set_new(attrs, "name", json_string(name));
  events_post(ud, action, id, attrs);
}

void api_images_events(struct shoald *d) {
  if (d->images)
    image_store_set_events(d->images, on_store_event, d);
}

/* ---- what containers use ---- */

struct users {
  struct image_users u;
  struct image_user *v;
  char ***dirs;
  json_t *all; /* the executor's inspect of every container */
};

static void users_free(struct users *u) {
  for (size_t i = 0; i < u->u.n; i++) {
    for (char **p = u->dirs[i]; p && *p; p++)
      free(*p);
    free(u->dirs[i]);
  }
  free(u->dirs);
  free(u->v);
  json_decref(u->all);
}

/* Removals list the containers again while creates keep finishing
 * between the list and the removal (image_users.gen). */
#define STALE_TRIES 5
#define STALE_MSG                                                              \
  "containers were being created from images during the removal; try again"

/* Every container of the node (tasks' and others'), running or not. */
static int users_load(struct shoald *d, struct users *u, sh_err *err) {
  memset(u, 0, sizeof *u);
  u->u.gen = d->images ? image_store_gen(d->images) : 0;
  if (!d->exec)
    return 0;
  if (exec_inspect_all(d->exec, &u->all, err) < 0)
    return -1;
  size_t n = json_array_size(u->all);
  u->v = xcalloc(n + 1, sizeof *u->v);
  u->dirs = xcalloc(n + 1, sizeof *u->dirs);
  size_t i;
  json_t *c;
  json_array_foreach(u->all, i, c) {
    struct image_user *x = &u->v[i];
    x->container_id = jx_str(c, "Id", "");
    x->image_id = jx_str(c, "Image", "");
    x->running = json_is_true(jx_get(c, "State.Running")) ||
                 !strcmp(jx_str(c, "State.Status", ""), "running");
    const char *lower = jx_str(c, "GraphDriver.Data.LowerDir", "");
    size_t k = 0;
    char **v = xcalloc(strlen(lower) / 2 + 2, sizeof *v);
    for (const char *p = lower; *p;) {
      size_t l = strcspn(p, ":");
      if (l)
        v[k++] = xstrndup(p, l);
      p += l + (p[l] == ':');
    }
    u->dirs[i] = v;
    x->layer_dirs = (const char *const *)v;
  }
  u->u.v = u->v;
  u->u.n = n;
  return 0;
}

/* ---- list filters (moby's daemon/images/images.go) ---- */

static int64_t created_of(const json_t *sum) {
  return (int64_t)json_integer_value(json_object_get(sum, "Created"));
}

/* "before"/"since": an image reference -> its Created. */
static int ref_created(struct image_store *s, const char *ref, int64_t *out,
                       sh_err *err) {
  cleanup_json json_t *ins = NULL;
  if (image_inspect(s, ref, &ins, err) < 0)
    return -1;
  int64_t ns = 0;
  clock_parse_rfc3339(jx_str(ins, "Created", ""), &ns, NULL);
  *out = ns / NS_PER_SEC;
  return 0;
}

/* "until": a Unix time, an RFC 3339 time or a Go duration before now. */
static int until_secs(const char *v, int64_t *out, sh_err *err) {
  char *end;
  double d = strtod(v, &end);
  if (*v && !*end) {
    *out = (int64_t)d;
    return 0;
  }
  int64_t ns;
  if (clock_parse_rfc3339(v, &ns, NULL) == 0) {
    *out = ns / NS_PER_SEC;
    return 0;
  }
  if (clock_parse_duration(v, &ns, NULL) == 0) {
    *out = (clock_wall_ns() - ns) / NS_PER_SEC;
    return 0;
  }
  return sh_error(err, 400, "failed to parse value as time or duration: \"%s\"",
                  v);
}

static bool dangling(const json_t *sum) {
  return json_array_size(json_object_get(sum, "RepoTags")) == 0 &&
         json_array_size(json_object_get(sum, "RepoDigests")) == 0;
}

struct match_ctx {
  struct filters *f;
  int dangling;                 /* -1: either */
  int64_t before, since, until; /* 0: none */
};

static int match_setup(struct img_job *j, struct match_ctx *m) {
  memset(m, 0, sizeof *m);
  m->f = &j->f;
  m->dangling = -1;
  json_t *d = json_object_get(j->f.map, "dangling");
  if (json_array_size(d) > 0) {
    const char *v = json_string_value(json_array_get(d, 0));
    if (!strcasecmp(v, "true") || !strcmp(v, "1"))
      m->dangling = 1;
    else if (!strcasecmp(v, "false") || !strcmp(v, "0"))
      m->dangling = 0;
    else
      return sh_error(&j->err, 400,
                      "invalid filter 'dangling=%s': strconv.ParseBool: "
                      "parsing \"%s\": invalid syntax",
                      v, v);
  }
  struct image_store *s = j->d->images;
  json_t *v;
  if ((v = json_object_get(j->f.map, "before")) && json_array_size(v) &&
      ref_created(s, json_string_value(json_array_get(v, 0)), &m->before,
                  &j->err) < 0)
    return -1;
  if ((v = json_object_get(j->f.map, "since")) && json_array_size(v) &&
      ref_created(s, json_string_value(json_array_get(v, 0)), &m->since,
                  &j->err) < 0)
    return -1;
  if ((v = json_object_get(j->f.map, "until")) && json_array_size(v) &&
      until_secs(json_string_value(json_array_get(v, 0)), &m->until, &j->err) <
          0)
    return -1;
  return 0;
}

/* reference=PATTERN: path.Match on the familiar reference, then on its
 * name alone (distribution's FamiliarMatch). */
static bool ref_matches(const char *pattern, const char *familiar) {
  if (fnmatch(pattern, familiar, FNM_PATHNAME) == 0)
    return true;
  const char *at = strchr(familiar, '@');
  size_t n = at ? (size_t)(at - familiar) : strlen(familiar);
  const char *slash = memrchr(familiar, '/', n);
  const char *colon =
      memrchr(slash ? slash : familiar, ':',
              n - (size_t)((slash ? slash : familiar) - familiar));
  cleanup_free char *name =
      xstrndup(familiar, colon ? (size_t)(colon - familiar) : n);
  return fnmatch(pattern, name, FNM_PATHNAME) == 0;
}

/* Keeps only the references that match (moby shows only those). */
static bool filter_refs(json_t *sum, const struct filters *f) {
  json_t *pats = json_object_get(f->map, "reference");
  if (!json_array_size(pats))
    return true;
  bool any = false;
  static const char *const keys[] = {"RepoTags", "RepoDigests"};
  for (size_t k = 0; k < 2; k++) {
    json_t *kept = json_array();
    size_t i, p;
    json_t *r, *pat;
    json_array_foreach(json_object_get(sum, keys[k]), i, r) {
      json_array_foreach(pats, p, pat) {
        if (ref_matches(json_string_value(pat), json_string_value(r))) {
          json_array_append(kept, r);
          break;
        }
      }
    }
    any |= json_array_size(kept) > 0;
    json_object_set_new(sum, keys[k], kept);
  }
  return any;
}

static bool summary_matches(const json_t *sum, void *ud) {
  struct match_ctx *m = ud;
  if (m->dangling >= 0 && dangling(sum) != (m->dangling == 1))
    return false;
  int64_t c = created_of(sum);
  if (m->before && c >= m->before)
    return false;
  if (m->since && c <= m->since)
    return false;
  if (m->until && c >= m->until)
    return false;
  const json_t *labels = json_object_get(sum, "Labels");
  return filters_match_label_pair(m->f, labels);
}

static int do_list(struct img_job *j) {
  struct match_ctx m;
  if (match_setup(j, &m) < 0)
    return -1;
  cleanup_json json_t *all = NULL;
  if (image_list(j->d->images, &all, &j->err) < 0)
    return -1;
  j->result = json_array();
  size_t i;
  json_t *sum;
  json_array_foreach(all, i, sum) {
    if (!summary_matches(sum, &m))
      continue;
    /* A reference filter hides dangling images and other names. */
    if (!filter_refs(sum, &j->f))
      continue;
    json_array_append(j->result, sum);
  }
  return 0;
}

static int do_prune(struct img_job *j) {
  struct match_ctx m;
  if (match_setup(j, &m) < 0)
    return -1;
  /* dangling=false is moby's -a. */
  bool all = m.dangling == 0;
  m.dangling = -1;
  int rc = 1;
  for (int tries = 0; rc == 1; tries++) {
    struct users u;
    if (users_load(j->d, &u, &j->err) < 0)
      return -1;
    rc = image_prune(j->d->images, all, summary_matches, &m, &u.u, &j->result,
                     &j->err);
    users_free(&u);
    if (rc == 1 && tries == STALE_TRIES)
      rc = sh_error(&j->err, 503, "%s", STALE_MSG);
  }
  if (rc == 0)
    events_post(
        j->d, "prune", "",
        json_pack("{s:o}", "reclaimed",
                  json_sprintf("%lld", (long long)jx_int(
                                           j->result, "SpaceReclaimed", 0))));
  return rc;
}
/* ---- system df ---- */

static json_t *container_df(const json_t *c, const json_t *images) {
  int64_t created = 0;
  clock_parse_rfc3339(jx_str(c, "Created", ""), &created, NULL);
  sh_buf cmd = {0};
  buf_printf(&cmd, "%s", jx_str(c, "Path", ""));
  size_t i;
  json_t *a;
  json_array_foreach(json_object_get(c, "Args"), i, a)
      buf_printf(&cmd, " %s", json_string_value(a));
  long long rw = util_tree_size(jx_str(c, "GraphDriver.Data.UpperDir", ""));
  long long isize = 0;
  const char *iid = jx_str(c, "Image", "");
  json_t *im;
  json_array_foreach(images, i, im) {
    if (!strcmp(jx_str(im, "Id", ""), iid))
      isize = jx_int(im, "Size", 0);
  }
  const char *state = jx_str(c, "State.Status", "");
  char status[64];
  if (!strcmp(state, "running"))
    snprintf(status, sizeof status, "Up");
  else if (!strcmp(state, "created"))
    snprintf(status, sizeof status, "Created");
  else
    snprintf(status, sizeof status, "Exited (%lld)",
             (long long)jx_int(c, "State.ExitCode", 0));
  const char *name = jx_str(c, "Name", "/");
  json_t *labels = jx_get(c, "Config.Labels");
  json_t *mounts = json_object_get(c, "Mounts");
  json_t *out = json_pack(
      "{s:s, s:[s], s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:O, s:O}", "Id",
      jx_str(c, "Id", ""), "Names", name, "Image",
      jx_str(c, "Config.Image", ""), "ImageID", iid, "Command",
      cmd.data ? cmd.data : "", "Created", (json_int_t)(created / NS_PER_SEC),
      "SizeRw", (json_int_t)rw, "SizeRootFs", (json_int_t)(rw + isize), "State",
      state, "Status", status, "Labels",
      json_is_object(labels) ? labels : json_object(), "Mounts",
      json_is_array(mounts) ? mounts : json_array());
  buf_free(&cmd);
  return out;
}

static int do_df(struct img_job *j) {
  struct users u;
  if (users_load(j->d, &u, &j->err) < 0)
    return -1;
  int rc = image_disk_usage(j->d->images, &u.u, &j->result, &j->err);
  if (rc < 0) {
    users_free(&u);
    return -1;
  }
  json_t *images = json_object_get(j->result, "Images");
  json_t *ctrs = json_array();
  size_t i, k;
  json_t *c, *m;
  json_array_foreach(u.all, i, c)
      json_array_append_new(ctrs, container_df(c, images));
  json_object_set_new(j->result, "Containers", ctrs);
  json_t *vols = NULL;
  if (volume_list(j->d->cfg.data_root, &vols, NULL) < 0)
    vols = json_array();
  json_t *v;
  json_array_foreach(vols, i, v) {
    const char *name = jx_str(v, "Name", "");
    json_int_t refs = 0;
    json_array_foreach(u.all, k, c) {
      size_t x;
      json_array_foreach(json_object_get(c, "Mounts"), x, m) refs +=
          !strcmp(jx_str(m, "Type", ""), "volume") &&
          !strcmp(jx_str(m, "Name", ""), name);
    }
    cleanup_free char *path = volume_data_path(j->d->cfg.data_root, name);
    json_object_set_new(v, "UsageData",
                        json_pack("{s:I, s:I}", "Size",
                                  (json_int_t)util_tree_size(path), "RefCount",
                                  refs));
  }
  json_object_set_new(j->result, "Volumes", vols);
  json_object_set_new(j->result, "BuildCache", json_array());
  users_free(&u);
  return 0;
}

static void work(void *ud) {
  struct img_job *j = ud;
  struct image_store *s = j->d->images;
  const struct image_auth *auth = j->have_auth ? &j->auth : NULL;
  struct users u;
  switch (j->op) {
  case OP_PULL:
    j->rc = image_pull(s, j->ref, auth, on_progress, j, &j->image_id, &j->err);
    break;
  case OP_LIST:
    j->rc = do_list(j);
    break;
  case OP_INSPECT:
    j->rc = image_inspect(s, j->ref, &j->result, &j->err);
    break;
  case OP_HISTORY:
    j->rc = image_history(s, j->ref, &j->result, &j->err);
    break;
  case OP_REMOVE:
    j->rc = 1;
    for (int tries = 0; j->rc == 1; tries++) {
      if ((j->rc = users_load(j->d, &u, &j->err)) < 0)
        break;
      j->rc = image_remove(s, j->ref, j->force, &u.u, &j->result, &j->err);
      users_free(&u);
      if (j->rc == 1 && tries == STALE_TRIES)
        j->rc = sh_error(&j->err, 503, "%s", STALE_MSG);
    }
    break;
  case OP_TAG:
    j->rc = image_tag(s, j->ref, j->target, &j->err);
    break;
  case OP_PRUNE:
    j->rc = do_prune(j);
    break;
  case OP_DF:
    j->rc = do_df(j);
    break;
  case OP_DIST:
    j->rc = image_distribution(s, j->ref, auth, &j->result, &j->err);
    break;
  case OP_PUSH:
    j->rc = image_push(s, j->ref, j->target, auth, on_progress, j, &j->err);
    break;
  case OP_AUTH:
    j->rc = image_login(s, &j->auth, &j->err);
    if (j->rc == 0)
      j->result = json_pack("{s:s}", "Status", "Login Succeeded");
    break;
  case OP_SAVE:
    break; /* its own thread: save_thread */
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

/* ---- save: a tar stream of any size, with backpressure as logs -f ---- */

#define SAVE_QUEUE_HIGH (1024 * 1024)
#define SAVE_QUEUE_LOW (256 * 1024)

static void save_done(void *ud, int cancelled) {
  struct img_job *j = ud;
  (void)cancelled;
  if (!api_pump_end(&j->pump)) {
    if (j->rc < 0)
      api_reply_err(j->req, &j->err);
    else
      http_respond_json(j->req, 200, "");
  }
  job_free(j);
}

static void *save_thread(void *arg) {
  struct img_job *j = arg;
  j->rc = image_save(j->d->images, (const char *const *)j->names,
                     api_pump_write, &j->pump, &j->err);
  /* After every chunk this thread posted: save_done runs last. */
  workq_post(j->d->work, save_done, j);
  return NULL;
}

static void save_start(struct api_call *c, char **names) {
  struct img_job *j = xcalloc(1, sizeof *j);
  j->d = c->d;
  j->req = c->req;
  j->op = OP_SAVE;
  j->names = names;
  /* The head waits for the first byte: every image was found then. */
  api_pump_init(&j->pump, c->req, c->d->work, "application/x-tar",
                SAVE_QUEUE_HIGH, SAVE_QUEUE_LOW, true);
  if (api_pump_thread(save_thread, j) < 0) {
    j->rc = sh_error(&j->err, 500, "save: cannot start a thread");
    workq_post(j->d->work, save_done, j);
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
  } else if (j->status_ok) {
    http_respond_json(j->req, j->status_ok, "");
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

/* The archive streams into a file under the image store's tmp/ (the data
 * root's disk, not /tmp's). Chunks are copied and written by the work
 * queue, one batch at a time, so a slow disk never stalls the loop; the
 * body is paused while more than LOAD_HIGH bytes wait. The loader starts
 * once the body is complete and its last batch written. */
#define LOAD_HIGH (4u << 20)
struct load_chunk {
  struct load_chunk *next;
  size_t len;
  char data[];
};
struct load_body {
  struct img_job *j;
  struct http_req *req;
  int fd;
  bool failed, writing, paused, ended, complete;
  struct load_chunk *head, **tail; /* loop: waiting */
  struct load_chunk *batch;        /* the write job's */
  size_t waiting, batch_len;
  int werrno; /* the write job's */
};

static void load_finish(struct load_body *lb) {
  struct img_job *j = lb->j;
  struct http_req *req = lb->req;
  close(lb->fd);
  bool failed = lb->failed, complete = lb->complete;
  for (struct load_chunk *c = lb->head, *n; c; c = n) {
    n = c->next;
    free(c);
  }
  free(lb);
  if (!complete) { /* the client went away: no image, no file */
    job_free(j);
    http_req_release(req);
    return;
  }
  if (failed) {
    api_reply_err(req, &j->err);
    job_free(j);
    return;
  }
  j->streaming = true;
  http_stream_begin(req, 200, "application/json", NULL);
  start(j);
}

static void load_write_work(void *ud) {
  struct load_body *lb = ud;
  for (struct load_chunk *c = lb->batch; c && !lb->werrno; c = c->next) {
    const char *p = c->data;
    size_t len = c->len;
    while (len) {
      ssize_t n = write(lb->fd, p, len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0) {
        lb->werrno = n < 0 ? errno : EIO;
        break;
      }
      p += n;
      len -= (size_t)n;
    }
  }
}

static void load_kick(struct load_body *lb);

static void load_write_done(void *ud, int cancelled) {
  struct load_body *lb = ud;
  for (struct load_chunk *c = lb->batch, *n; c; c = n) {
    n = c->next;
    free(c);
  }
  lb->batch = NULL;
  lb->batch_len = 0;
  lb->writing = false;
  if ((lb->werrno || cancelled) && !lb->failed) {
    lb->failed = true;
    sh_errno(&lb->j->err, cancelled ? ECANCELED : lb->werrno, "write %s",
             lb->j->tmpfile);
  }
  load_kick(lb);
}

/* Loop: hands what waits to a write job, resumes the body once little
 * waits, and finishes after the body's end and the last write. */
static void load_kick(struct load_body *lb) {
  if (lb->failed) { /* what comes is dropped */
    for (struct load_chunk *c = lb->head, *n; c; c = n) {
      n = c->next;
      free(c);
    }
    lb->head = NULL;
    lb->tail = &lb->head;
    lb->waiting = 0;
  }
  if (!lb->writing && lb->head) {
    lb->batch = lb->head;
    lb->batch_len = lb->waiting;
    lb->head = NULL;
    lb->tail = &lb->head;
    lb->waiting = 0;
    lb->writing = true;
    workq_submit(lb->j->d->work, load_write_work, load_write_done, lb);
  }
  if (lb->ended && !lb->writing)
    return load_finish(lb);
  bool high = lb->waiting + lb->batch_len > LOAD_HIGH;
  if (!lb->ended && lb->req->body_stream && lb->paused != high) {
    lb->paused = high;
    http_req_body_pause(lb->req, high);
  }
}

static void load_data(struct http_req *req, const char *data, size_t len,
                      void *ud) {
  struct load_body *lb = ud;
  if (!len || lb->failed)
    return;
  struct load_chunk *c = xmalloc(sizeof *c + len);
  c->next = NULL;
  c->len = len;
  memcpy(c->data, data, len);
  *lb->tail = c;
  lb->tail = &c->next;
  lb->waiting += len;
  load_kick(lb);
}

static void load_end(struct http_req *req, bool complete, void *ud) {
  struct load_body *lb = ud;
  lb->ended = true;
  lb->complete = complete;
  load_kick(lb);
}

static void load(struct api_call *c) {
  sh_err err = {0};
  cleanup_free char *path =
      c->d->images
          ? xasprintf("%s/tmp/load-XXXXXX", image_store_root(c->d->images))
          : xstrdup("/tmp/shoal-load-XXXXXX");
  int fd = mkostemp(path, O_CLOEXEC);
  if (fd < 0) {
    sh_errno(&err, errno, "temporary file");
    return api_reply_err(c->req, &err);
  }
  struct img_job *j = new_job(c, OP_LOAD, NULL);
  j->tmpfile = xstrdup(path);
  struct load_body *lb = xcalloc(1, sizeof *lb);
  lb->j = j;
  lb->req = c->req;
  lb->fd = fd;
  lb->tail = &lb->head;
  if (!c->req->body_stream) { /* whole already (a plain TCP listener) */
    load_data(c->req, c->req->body, c->req->body_len, lb);
    load_end(c->req, true, lb);
    return;
  }
  http_req_body_start(c->req, load_data, load_end, lb);
}

static bool start_filtered(struct api_call *c, enum img_op op,
                           const char *const *allowed) {
  struct img_job *j = new_job(c, op, NULL);
  cleanup_free char *raw = http_req_query(c->req, "filters");
  if (filters_parse(raw, allowed, &j->f, &j->err) < 0) {
    api_reply_err(c->req, &j->err);
    job_free(j);
    return true;
  }
  start(j);
  return true;
}

static void push(struct api_call *c, const char *name) {
  sh_err err = {0};
  struct img_job *j = new_job(c, OP_PUSH, name);
  j->target = http_req_query(c->req, "tag");
  /* dockerd insists on the header (the CLI always sends one). */
  const char *h = http_req_header(c->req, "X-Registry-Auth");
  if (!h) {
    sh_error(&err, 400, "missing X-Registry-Auth");
    job_free(j);
    return api_reply_err(c->req, &err);
  }
  if (read_auth(c, j, &err) < 0) {
    job_free(j);
    return api_reply_err(c->req, &err);
  }
  j->streaming = true;
  http_stream_begin(c->req, 200, "application/json", NULL);
  start(j);
}

static void tag(struct api_call *c, const char *name) {
  sh_err err = {0};
  cleanup_free char *repo = http_req_query(c->req, "repo");
  cleanup_free char *t = http_req_query(c->req, "tag");
  if (!repo || !*repo) {
    sh_error(&err, 400, "repository name must have at least one component");
    return api_reply_err(c->req, &err);
  }
  struct img_job *j = new_job(c, OP_TAG, name);
  j->target = t && *t ? xasprintf("%s:%s", repo, t) : xstrdup(repo);
  j->status_ok = 201;
  start(j);
}

bool api_images(struct api_call *c) {
  const char *p = c->path;
  const char *m = c->req->method;
  bool get = strcmp(m, "GET") == 0;
  bool post = strcmp(m, "POST") == 0;
  if (strcmp(p, "/images/create") == 0 && post) {
    pull(c);
    return true;
  }
  if (strcmp(p, "/auth") == 0 && post) {
    login(c);
    return true;
  }
  if (strcmp(p, "/images/load") == 0 && post) {
    load(c);
    return true;
  }
  if (strcmp(p, "/images/json") == 0 && get)
    return start_filtered(c, OP_LIST, list_filters);
  if (strcmp(p, "/images/prune") == 0 && post)
    return start_filtered(c, OP_PRUNE, prune_filters);
  if (strcmp(p, "/system/df") == 0 && get) {
    start(new_job(c, OP_DF, NULL));
    return true;
  }
  if (strcmp(p, "/images/get") == 0 && get) {
    save_start(c, api_query_all(c->req->query, "names"));
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
  /* /images/{name}/<verb> and DELETE /images/{name}; names may hold '/'. */
  const char *name = p + strlen("/images/");
  static const struct {
    const char *suffix;
    bool post;
    enum img_op op;
  } verbs[] = {{"/json", false, OP_INSPECT},
               {"/history", false, OP_HISTORY},
               {"/get", false, OP_SAVE},
               {"/push", true, OP_PUSH},
               {"/tag", true, OP_TAG}};
  for (size_t i = 0; i < ARRAY_SIZE(verbs); i++) {
    if (!str_has_suffix(name, verbs[i].suffix) ||
        (verbs[i].post ? !post : !get))
      continue;
    cleanup_free char *ref =
        xstrndup(name, strlen(name) - strlen(verbs[i].suffix));
    if (!*ref)
      return false;
    switch (verbs[i].op) {
    case OP_SAVE: {
      char **names = xcalloc(2, sizeof *names);
      names[0] = xstrdup(ref);
      save_start(c, names);
      break;
    }
    case OP_PUSH:
      push(c, ref);
      break;
    case OP_TAG:
      tag(c, ref);
      break;
    default:
      start(new_job(c, verbs[i].op, ref));
    }
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
