/* Pull and distribution inspect: manifest (and index platform choice),
 * config, then layers downloaded and unpacked by up to three threads of
 * the pull's own, with progress events shaped as dockerd's. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include "core/clock.h"
#include "core/util.h"
#include "image/internal.h"

/* max-concurrent-downloads above this still runs this many threads. */
#define PULL_THREADS_MAX 64
#define PROGRESS_EVERY_NS (100 * NS_PER_MS)

void host_platform(const char **arch, const char **variant) {
  struct utsname u;
  *variant = NULL;
  *arch = "amd64";
  if (uname(&u) < 0)
    return;
  static const struct {
    const char *m, *arch, *variant;
  } map[] = {{"x86_64", "amd64", NULL},    {"aarch64", "arm64", "v8"},
             {"armv7l", "arm", "v7"},      {"armv6l", "arm", "v6"},
             {"i686", "386", NULL},        {"i386", "386", NULL},
             {"ppc64le", "ppc64le", NULL}, {"s390x", "s390x", NULL},
             {"riscv64", "riscv64", NULL}};
  for (size_t i = 0; i < ARRAY_SIZE(map); i++)
    if (!strcmp(u.machine, map[i].m)) {
      *arch = map[i].arch;
      *variant = map[i].variant;
    }
}

json_t *index_pick(json_t *index) {
  const char *arch, *variant;
  host_platform(&arch, &variant);
  size_t i;
  json_t *m;
  json_array_foreach(json_object_get(index, "manifests"), i, m) {
    json_t *p = json_object_get(m, "platform");
    if (strcmp(jx_str(p, "os", ""), "linux") ||
        strcmp(jx_str(p, "architecture", ""), arch))
      continue;
    const char *v = jx_str(p, "variant", NULL);
    if (variant && v && *v && strcmp(v, variant))
      continue;
    return m;
  }
  return NULL;
}

static bool is_index(const char *mt) {
  return !strcmp(mt, MT_OCI_INDEX) || !strcmp(mt, MT_DOCKER_LIST);
}

static bool is_manifest(const char *mt) {
  return !strcmp(mt, MT_OCI_MANIFEST) || !strcmp(mt, MT_DOCKER_MANIFEST);
}

/* dockerd's translatePullError for what the registry said about a
 * manifest; err already holds "<code description>: <message>". */
static int translate(struct reg *reg, const struct image_ref *r, sh_err *err) {
  const char *code = reg_last_code(reg);
  if (!code)
    return -1;
  cleanup_free char *msg = xstrdup(err->msg);
  cleanup_free char *name = image_ref_familiar(r, false);
  cleanup_free char *full = image_ref_familiar(r, true);
  if (!strcmp(code, "MANIFEST_UNKNOWN") || !strcmp(code, "NOT_FOUND"))
    return sh_error(err, 404, "manifest for %s not found: %s", full,
                    strcmp(code, "NOT_FOUND") ? msg
                                              : "manifest unknown: manifest "
                                                "unknown");
  if (!strcmp(code, "NAME_UNKNOWN"))
    return sh_error(err, 404, "repository %s not found: %s", name, msg);
  if (!strcmp(code, "DENIED") || !strcmp(code, "UNAUTHORIZED"))
    return sh_error(err, 404,
                    "pull access denied for %s, repository does not exist or "
                    "may require 'docker login': %s",
                    name, msg);
  return -1;
}

/* The image manifest for this platform. top_* describe what the reference
 * named (an index or the manifest itself). */
struct resolved {
  json_t *manifest;
  char top_digest[DIGEST_LEN + 1];
  char *top_mt;
  size_t top_size;
  json_t *top_index; /* set when the reference named an index */
};

static void resolved_free(struct resolved *rv) {
  json_decref(rv->manifest);
  json_decref(rv->top_index);
  free(rv->top_mt);
}

static int get_manifest(struct reg *reg, const struct image_ref *r,
                        bool want_platform, struct resolved *rv, sh_err *err) {
  memset(rv, 0, sizeof *rv);
  const char *reference = r->digest ? r->digest : r->tag;
  cleanup_free char *body = NULL, *mt = NULL;
  size_t len;
  char digest[DIGEST_LEN + 1];
  if (reg_get_manifest(reg, reference, &body, &len, &mt, digest, err) < 0) {
    translate(reg, r, err);
    return -1;
  }
  memcpy(rv->top_digest, digest, sizeof digest);
  rv->top_mt = xstrdup(mt);
  rv->top_size = len;
  for (int depth = 0;; depth++) {
    json_error_t je;
    json_t *j = json_loadb(body, len, 0, &je);
    if (!json_is_object(j)) {
      json_decref(j);
      return sh_error(err, 500, "manifest %s: not JSON: %s", digest, je.text);
    }
    if (is_manifest(mt)) {
      rv->manifest = j;
      return 0;
    }
    if (!is_index(mt) || depth > 1) {
      json_decref(j);
      if (str_has_prefix(mt, "application/vnd.docker.distribution.manifest.v1"))
        return sh_error(err, 500,
                        "Docker Image Format v1 and Docker Image manifest "
                        "version 2, schema 1 are not supported (%s)",
                        reference);
      return sh_error(err, 500, "unsupported manifest media type %s", mt);
    }
    if (depth == 0)
      rv->top_index = json_incref(j);
    if (!want_platform) {
      json_decref(j);
      return 0;
    }
    json_t *pick = index_pick(j);
    const char *d = jx_str(pick, "digest", NULL);
    if (!pick || !digest_valid(d)) {
      json_decref(j);
      const char *arch, *variant;
      host_platform(&arch, &variant);
      return sh_error(err, 404,
                      "no matching manifest for linux/%s in the manifest list "
                      "entries",
                      arch);
    }
    cleanup_free char *want = xstrdup(d);
    json_decref(j);
    free(body);
    free(mt);
    body = mt = NULL;
    if (reg_get_manifest(reg, want, &body, &len, &mt, digest, err) < 0)
      return -1;
  }
}

/* ---- pull ---- */

struct pull;
struct job {
  struct pull *p;
  char blob[DIGEST_LEN + 1], diffid[DIGEST_LEN + 1];
  int64_t size;
  char short_id[13];
  int64_t last_ns;
  bool pinned;      /* holds a pin on the layer (released at the end) */
  bool was_present; /* "Already exists" was said up front */
};

struct pull {
  struct image_store *s;
  struct reg *reg;
  image_progress_fn cb;
  void *ud;
  pthread_mutex_t mu;
  struct job *jobs;
  size_t njobs, next;
  bool failed;
  sh_err err;
};

static void human(int64_t n, char *out, size_t len) {
  static const char *u[] = {"B", "kB", "MB", "GB", "TB"};
  double v = (double)n;
  int i = 0;
  while (v >= 1000 && i < 4)
    v /= 1000, i++;
  snprintf(out, len, "%.4g%s", v, u[i]);
}

/* Sends one event; cur/total < 0 means no progress detail. */
static void emit(struct pull *p, const char *status, const char *id,
                 int64_t cur, int64_t total) {
  if (!p->cb)
    return;
  json_t *ev = json_pack("{s:s}", "status", status);
  if (id) {
    json_t *pd = json_object();
    if (cur >= 0 && total > 0) {
      json_object_set_new(pd, "current", json_integer(cur));
      json_object_set_new(pd, "total", json_integer(total));
      int w = (int)(cur * 50 / total);
      if (w > 50)
        w = 50;
      char a[16], b[16], bar[128];
      human(cur, a, sizeof a);
      human(total, b, sizeof b);
      int k = 0;
      bar[k++] = '[';
      for (int i = 0; i < 50; i++)
        bar[k++] = i < w ? '=' : i == w ? '>' : ' ';
      snprintf(bar + k, sizeof bar - (size_t)k, "] %8s/%s", a, b);
      json_object_set_new(ev, "progress", json_string(bar));
    }
    json_object_set_new(ev, "progressDetail", pd);
    json_object_set_new(ev, "id", json_string(id));
  }
  pthread_mutex_lock(&p->mu);
  p->cb(ev, p->ud);
  pthread_mutex_unlock(&p->mu);
  json_decref(ev);
}

static bool throttled(struct job *j, int64_t done, int64_t total) {
  int64_t now = clock_mono_ns();
  if (done < total && now - j->last_ns < PROGRESS_EVERY_NS)
    return true;
  j->last_ns = now;
  return false;
}

static void on_download(int64_t done, int64_t total, void *ud) {
  struct job *j = ud;
  if (!throttled(j, done, total))
    emit(j->p, "Downloading", j->short_id, done, total);
}

static void on_extract(int64_t done, void *ud) {
  struct job *j = ud;
  if (!throttled(j, done, j->size))
    emit(j->p, "Extracting", j->short_id, done, j->size);
}

/* Downloads and unpacks one layer unless it is here already. The layer
 * stays pinned on success. */
static int run_job(struct job *j, sh_err *err) {
  struct pull *p = j->p;
  bool present;
  store_layer_acquire(p->s, j->diffid, &present);
  if (present) {
    j->pinned = true;
    if (!j->was_present) /* another pull just made it */
      emit(p, "Already exists", j->short_id, -1, -1);
    return 0;
  }
  cleanup_free char *tmp = NULL;
  if (store_tmpdir(p->s, "layer", &tmp, err) < 0) {
    store_layer_abort(p->s, j->diffid);
    return -1;
  }
  cleanup_free char *blob = xasprintf("%s/blob", tmp);
  cleanup_free char *diff = xasprintf("%s/diff", tmp);
  cleanup_fd int fd = -1;
  int rc = -1;
  emit(p, "Downloading", j->short_id, 0, j->size);
  if (reg_get_blob_file(p->reg, j->blob, j->size, blob, on_download, j, err) <
      0)
    goto fail;
  emit(p, "Verifying Checksum", j->short_id, -1, -1);
  emit(p, "Download complete", j->short_id, -1, -1);
  if (mkdir(diff, 0755) < 0) {
    sh_errno(err, errno, "image store: mkdir");
    goto fail;
  }
  fd = open(blob, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    sh_errno(err, errno, "open %s", blob);
    goto fail;
  }
  char got[DIGEST_LEN + 1];
  int64_t size;
  j->last_ns = 0;
  if (layer_unpack(fd, diff, j->diffid, got, &size, on_extract, j, err) < 0) {
    sh_err_wrap(err, "failed to register layer %.12s", j->blob + 7);
    goto fail;
  }
  /* The blob stays beside the layer (layers/<hex>/blob) for save and
   * push, which need the exact bytes its diff ID and digest name. */
  if (store_layer_commit(p->s, j->diffid, tmp, size, err) < 0) {
    rm_rf(tmp);
    return -1; /* commit dropped the claim */
  }
  j->pinned = true;
  emit(p, "Pull complete", j->short_id, -1, -1);
  return 0;
fail:
  rm_rf(tmp);
  store_layer_abort(p->s, j->diffid);
  return rc;
}

static void *worker(void *arg) {
  struct pull *p = arg;
  for (;;) {
    pthread_mutex_lock(&p->mu);
    if (p->failed || p->next == p->njobs) {
      pthread_mutex_unlock(&p->mu);
      return NULL;
    }
    struct job *j = &p->jobs[p->next++];
    pthread_mutex_unlock(&p->mu);
    sh_err e = {0};
    if (run_job(j, &e) < 0) {
      pthread_mutex_lock(&p->mu);
      if (!p->failed)
        p->err = e;
      p->failed = true;
      pthread_mutex_unlock(&p->mu);
    }
  }
}

/* One attempt at one endpoint. */
static int pull_from(struct image_store *s, struct reg *reg,
                     const struct image_ref *r, image_progress_fn cb, void *ud,
                     char **image_id, sh_err *err) {
  struct pull p = {.s = s, .reg = reg, .cb = cb, .ud = ud};
  pthread_mutex_init(&p.mu, NULL);
  struct resolved rv = {0};
  cleanup_free char *config = NULL;
  cleanup_json json_t *cj = NULL;
  size_t nl = 0, started = 0;
  int rc = -1;
  cleanup_free char *tagref = NULL, *digref = NULL, *before = NULL;
  cleanup_free char *familiar = image_ref_familiar(r, true);

  if (get_manifest(reg, r, true, &rv, err) < 0)
    goto out;
  json_t *cdesc = json_object_get(rv.manifest, "config");
  const char *id = jx_str(cdesc, "digest", NULL);
  json_t *layers = json_object_get(rv.manifest, "layers");
  nl = json_array_size(layers);
  if (!digest_valid(id) || !json_is_array(layers) || nl > MAX_LAYERS) {
    sh_error(err, 500, "manifest %s: bad config or layers", rv.top_digest);
    goto out;
  }
  {
    struct image_ref t = *r;
    t.digest = NULL;
    tagref = r->digest ? NULL : image_ref_full(&t);
    t.tag = NULL;
    t.digest = rv.top_digest;
    digref = image_ref_full(&t);
  }
  const char *refs[] = {digref, tagref, NULL};
  before = tagref ? store_ref_lookup(s, tagref) : NULL;
  bool had = store_has_image(s, id);
  bool newer = tagref ? !before || strcmp(before, id) != 0 : !had;
  if (!had) {
    size_t clen;
    if (reg_get_blob_mem(reg, id, CONFIG_MAX, &config, &clen, err) < 0)
      goto out;
    json_error_t je;
    cj = json_loadb(config, clen, 0, &je);
    json_t *diffids = jx_get(cj, "rootfs.diff_ids");
    if (!json_is_array(diffids) || json_array_size(diffids) != nl) {
      sh_error(err, 500,
               "layers from manifest don't match image "
               "configuration");
      goto out;
    }
    p.jobs = xcalloc(nl + 1, sizeof *p.jobs);
    p.njobs = nl;
    for (size_t i = 0; i < nl; i++) {
      struct job *j = &p.jobs[i];
      json_t *l = json_array_get(layers, i);
      const char *b = jx_str(l, "digest", NULL),
                 *d = json_string_value(json_array_get(diffids, i));
      const char *mt = jx_str(l, "mediaType", "");
      if (!digest_valid(b) || !digest_valid(d) || !strstr(mt, "tar") ||
          strstr(mt, "foreign") || strstr(mt, "nondistributable")) {
        sh_error(err, 500, "manifest %s: unsupported layer %zu (%s)",
                 rv.top_digest, i, mt);
        goto out;
      }
      j->p = &p;
      snprintf(j->blob, sizeof j->blob, "%s", b);
      snprintf(j->diffid, sizeof j->diffid, "%s", d);
      snprintf(j->short_id, sizeof j->short_id, "%.12s", b + 7);
      j->size = jx_int(l, "size", -1);
    }
    for (size_t i = 0; i < nl; i++) {
      p.jobs[i].was_present = store_layer_present(s, p.jobs[i].diffid);
      emit(&p, p.jobs[i].was_present ? "Already exists" : "Pulling fs layer",
           p.jobs[i].short_id, -1, -1);
    }
    pthread_mutex_lock(&s->mu);
    size_t max = (size_t)s->max_downloads;
    pthread_mutex_unlock(&s->mu);
    if (max > PULL_THREADS_MAX)
      max = PULL_THREADS_MAX;
    pthread_t th[PULL_THREADS_MAX];
    size_t nt = nl < max ? nl : max;
    for (size_t i = 0; i < nt; i++)
      if (pthread_create(&th[i], NULL, worker, &p) != 0)
        abort();
    for (size_t i = 0; i < nt; i++)
      pthread_join(th[i], NULL);
    started = p.next;
    if (p.failed) {
      *err = p.err;
      goto out;
    }
    if (store_image_commit(s, id, config, clen, diffids, refs, err) < 0)
      goto out;
  } else if (store_image_commit(s, id, NULL, 0, NULL, refs, err) < 0) {
    goto out;
  }
  char line[128 + DIGEST_LEN];
  snprintf(line, sizeof line, "Digest: %s", rv.top_digest);
  emit(&p, line, NULL, -1, -1);
  char *st = xasprintf("Status: %s for %s",
                       newer ? "Downloaded newer image" : "Image is up to date",
                       familiar);
  emit(&p, st, NULL, -1, -1);
  free(st);
  store_event(s, "pull", familiar, familiar, id);
  *image_id = xstrdup(id);
  rc = 0;
out:
  /* Layers this pull unpacked or found stay pinned until the image record
   * holds them; release those pins now (failed jobs dropped theirs). */
  for (size_t i = 0; i < started; i++)
    if (p.jobs[i].pinned)
      store_layer_release(s, p.jobs[i].diffid);
  free(p.jobs);
  resolved_free(&rv);
  pthread_mutex_destroy(&p.mu);
  return rc;
}

int image_pull(struct image_store *s, const char *ref,
               const struct image_auth *auth, image_progress_fn cb, void *ud,
               char **image_id, sh_err *err) {
  struct image_ref r;
  if (image_ref_parse(ref, &r, err) < 0)
    return -1;
  if (cb) {
    cleanup_free char *path = xstrdup(r.path);
    json_t *ev = json_pack("{s:s, s:s}", "status", "", "id",
                           r.digest ? r.digest : r.tag);
    cleanup_free char *st = xasprintf("Pulling from %s", path);
    json_object_set_new(ev, "status", json_string(st));
    cb(ev, ud);
    json_decref(ev);
  }
  char **eps = endpoints_for(s, r.domain);
  sh_err answered = {0}, last = {0};
  bool have_answered = false;
  int rc = -1;
  for (char **ep = eps; *ep; ep++) {
    struct reg *reg = reg_new(s, *ep, r.path, auth);
    sh_err e = {0};
    rc = pull_from(s, reg, &r, cb, ud, image_id, &e);
    bool reached = reg_answered(reg);
    reg_free(reg);
    if (rc == 0)
      break;
    /* What a registry said beats "could not reach the next one". */
    if (reached && !have_answered) {
      answered = e;
      have_answered = true;
    }
    last = e;
  }
  strv_free(eps);
  image_ref_free(&r);
  if (rc < 0 && err)
    *err = have_answered ? answered : last;
  return rc;
}

/* ---- distribution inspect ---- */

static json_t *platform_of(const json_t *p) {
  json_t *o = json_object();
  static const char *keys[] = {"architecture", "os", "os.version", "variant"};
  for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
    const char *v = json_string_value(json_object_get(p, keys[i]));
    if (v && *v)
      json_object_set_new(o, keys[i], json_string(v));
  }
  json_t *f = json_object_get(p, "os.features");
  if (json_is_array(f) && json_array_size(f))
    json_object_set(o, "os.features", f);
  return o;
}

int image_distribution(struct image_store *s, const char *ref,
                       const struct image_auth *auth, json_t **out,
                       sh_err *err) {
  struct image_ref r;
  if (image_ref_parse(ref, &r, err) < 0)
    return -1;
  char **eps = endpoints_for(s, r.domain);
  sh_err answered = {0}, last = {0};
  bool have_answered = false;
  int rc = -1;
  for (char **ep = eps; *ep && rc < 0; ep++) {
    struct reg *reg = reg_new(s, *ep, r.path, auth);
    struct resolved rv = {0};
    sh_err e = {0};
    json_t *platforms = json_array();
    if (get_manifest(reg, &r, false, &rv, &e) == 0) {
      if (rv.top_index) {
        size_t i;
        json_t *m;
        json_array_foreach(json_object_get(rv.top_index, "manifests"), i, m)
            json_array_append_new(platforms,
                                  platform_of(json_object_get(m, "platform")));
        rc = 0;
      } else {
        const char *cd = jx_str(rv.manifest, "config.digest", NULL);
        cleanup_free char *cfg = NULL;
        size_t clen;
        if (digest_valid(cd) &&
            reg_get_blob_mem(reg, cd, CONFIG_MAX, &cfg, &clen, &e) == 0) {
          json_error_t je;
          cleanup_json json_t *c = json_loadb(cfg, clen, 0, &je);
          json_array_append_new(platforms, platform_of(c));
          rc = 0;
        } else if (!e.status) {
          sh_error(&e, 500, "manifest %s: no config", rv.top_digest);
        }
      }
    }
    if (rc == 0) {
      *out = json_pack("{s:{s:s, s:s, s:I}, s:o}", "Descriptor", "mediaType",
                       rv.top_mt, "digest", rv.top_digest, "size",
                       (json_int_t)rv.top_size, "Platforms", platforms);
    } else {
      json_decref(platforms);
      if (reg_answered(reg) && !have_answered) {
        answered = e;
        have_answered = true;
      }
      last = e;
    }
    resolved_free(&rv);
    reg_free(reg);
  }
  strv_free(eps);
  image_ref_free(&r);
  if (rc < 0 && err)
    *err = have_answered ? answered : last;
  return rc;
}

/* ---- login ---- */

int image_login(struct image_store *s, const struct image_auth *auth,
                sh_err *err) {
  const char *addr = auth && auth->serveraddress ? auth->serveraddress : "";
  const char *host = strstr(addr, "://");
  host = host ? host + 3 : addr;
  cleanup_free char *domain = xstrndup(host, strcspn(host, "/"));
  static const char *const hub[] = {"", DOCKER_IO, "index.docker.io",
                                    "registry-1.docker.io"};
  bool is_hub = false;
  for (size_t i = 0; i < ARRAY_SIZE(hub); i++)
    is_hub = is_hub || strcmp(domain, hub[i]) == 0;
  cleanup_free char *base = NULL;
  if (is_hub) {
    base = xstrdup(DOCKER_HUB_URL);
  } else {
    /* The registry itself: the last endpoint (mirrors come first only
     * for Docker Hub). */
    char **eps = endpoints_for(s, domain);
    size_t n = 0;
    while (eps[n])
      n++;
    base = xstrdup(eps[n - 1]);
    strv_free(eps);
  }
  struct reg *reg = reg_new(s, base, "", auth);
  int rc = reg_login(reg, err);
  reg_free(reg);
  return rc;
}
