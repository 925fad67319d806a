/* The content store: image records, references, unpacked layers with short
 * links, and the local image operations (resolve, inspect, list, remove,
 * tag, layers). Metadata changes happen under one mutex and land on disk by
 * rename, so a crash leaves either the old or the new state. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include "core/clock.h"
#include "core/id.h"
#include "core/util.h"
#include "image/internal.h"
#include "core/jsonx.h"

#define SHORT_LINK_LEN 26

static char **strv_copy(const char *const *v) {
  size_t n = 0;
  while (v && v[n])
    n++;
  char **out = xcalloc(n + 1, sizeof *out);
  for (size_t i = 0; i < n; i++)
    out[i] = xstrdup(v[i]);
  return out;
}

/* Mirrors as dockerd shows them end in '/'; URLs are built on the bare
 * base. */
static char **mirrors_copy(const char *const *v) {
  char **out = strv_copy(v);
  for (char **p = out; *p; p++) {
    size_t n = strlen(*p);
    while (n > 0 && (*p)[n - 1] == '/')
      (*p)[--n] = '\0';
  }
  return out;
}

static int rm_cb(const char *p, const struct stat *st, int flag,
                 struct FTW *f) {
  (void)st, (void)flag, (void)f;
  remove(p);
  return 0;
}

int rm_rf(const char *path) {
  return nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

__attribute__((format(printf, 2, 3))) static char *
path_of(const struct image_store *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *rel = NULL;
  if (vasprintf(&rel, fmt, ap) < 0)
    abort();
  va_end(ap);
  char *out = xasprintf("%s/%s", s->root, rel);
  free(rel);
  return out;
}

int store_tmpdir(struct image_store *s, const char *prefix, char **out,
                 sh_err *err) {
  char hex[65];
  id_new_hex(hex);
  hex[16] = '\0';
  char *p = xasprintf("%s/tmp/%s-%s", s->root, prefix, hex);
  if (mkdir(p, 0700) < 0) {
    int e = errno;
    free(p);
    return sh_errno(err, e, "image store: mkdir");
  }
  *out = p;
  return 0;
}

static int save_refs(struct image_store *s, sh_err *err) {
  cleanup_free char *data =
      jx_dumps(s->refs, JSON_SORT_KEYS | JSON_INDENT(1), NULL);
  cleanup_free char *path = path_of(s, "%s", "repositories.json");
  return write_file_atomic(path, data, strlen(data), 0600, err);
}

int image_store_open(const char *root, const struct image_opts *opts,
                     struct image_store **out, sh_err *err) {
  if (mkdir_p(root, 0700, err) < 0)
    return -1;
  char *real = realpath(root, NULL);
  if (!real)
    return sh_errno(err, errno, "image store %s", root);
  struct image_store *s = xcalloc(1, sizeof *s);
  s->root = real;
  static const char *const dirs[] = {"tmp", "layers", "l", "images"};
  for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
    cleanup_free char *d = path_of(s, "%s", dirs[i]);
    if (mkdir_p(d, 0700, err) < 0) {
      free(s->root);
      free(s);
      return -1;
    }
  }
  /* Whatever an interrupted pull left in tmp/ is garbage now. */
  cleanup_free char *tmp = path_of(s, "%s", "tmp");
  rm_rf(tmp);
  mkdir(tmp, 0700);
  s->mirrors = mirrors_copy(opts ? opts->mirrors : NULL);
  s->insecure = strv_copy(opts ? opts->insecure : NULL);
  s->max_downloads = opts && opts->max_downloads > 0 ? opts->max_downloads : 3;
  s->connect_timeout =
      opts && opts->connect_timeout > 0 ? opts->connect_timeout : 15;
  s->stall_timeout = opts && opts->stall_timeout > 0 ? opts->stall_timeout : 60;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cond, NULL);
  cleanup_free char *refs_path = path_of(s, "%s", "repositories.json");
  json_error_t je;
  s->refs = json_load_file(refs_path, 0, &je);
  if (!json_is_object(s->refs)) {
    json_decref(s->refs);
    s->refs = json_object();
  }
  *out = s;
  return 0;
}

void image_store_reconfigure(struct image_store *s,
                             const struct image_opts *opts) {
  char **m = mirrors_copy(opts->mirrors), **in = strv_copy(opts->insecure);
  pthread_mutex_lock(&s->mu);
  char **om = s->mirrors, **oin = s->insecure;
  s->mirrors = m;
  s->insecure = in;
  s->max_downloads = opts->max_downloads > 0 ? opts->max_downloads : 3;
  pthread_mutex_unlock(&s->mu);
  strv_free(om);
  strv_free(oin);
}

void image_store_close(struct image_store *s) {
  if (!s)
    return;
  strv_free(s->mirrors);
  strv_free(s->insecure);
  json_decref(s->refs);
  free(s->pins);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cond);
  free(s->root);
  free(s);
}

const char *image_store_root(const struct image_store *s) {
  return s->root;
}

/* ---- layers and pins ---- */

static struct layer_pin *pin_find(struct image_store *s, const char *diffid) {
  for (size_t i = 0; i < s->npins; i++)
    if (!strcmp(s->pins[i].diffid, diffid))
      return &s->pins[i];
  return NULL;
}

static void pin_drop(struct image_store *s, struct layer_pin *p) {
  if (--p->pins > 0 || p->busy)
    return;
  *p = s->pins[--s->npins];
}

bool store_layer_present(struct image_store *s, const char *diffid) {
  cleanup_free char *p = path_of(s, "layers/%s/diff", diffid + 7);
  struct stat st;
  return lstat(p, &st) == 0;
}

/* One more pin on diffid. Under s->mu. */
static struct layer_pin *pin_add(struct image_store *s, const char *diffid) {
  struct layer_pin *p = pin_find(s, diffid);
  if (!p) {
    if (s->npins == s->cappins) {
      s->cappins = s->cappins ? 2 * s->cappins : 16;
      s->pins = xrealloc(s->pins, s->cappins * sizeof *s->pins);
    }
    p = &s->pins[s->npins++];
    memset(p, 0, sizeof *p);
    snprintf(p->diffid, sizeof p->diffid, "%s", diffid);
  }
  p->pins++;
  return p;
}

void store_layer_acquire(struct image_store *s, const char *diffid,
                         bool *present) {
  pthread_mutex_lock(&s->mu);
  struct layer_pin *p;
  while ((p = pin_find(s, diffid)) && p->busy)
    pthread_cond_wait(&s->cond, &s->mu);
  p = pin_add(s, diffid);
  *present = store_layer_present(s, diffid);
  p->busy = !*present;
  pthread_mutex_unlock(&s->mu);
}

static void layer_done(struct image_store *s, const char *diffid,
                       bool keep_pin) {
  pthread_mutex_lock(&s->mu);
  struct layer_pin *p = pin_find(s, diffid);
  if (p) {
    p->busy = false;
    if (!keep_pin)
      pin_drop(s, p);
  }
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->mu);
}

void store_layer_abort(struct image_store *s, const char *diffid) {
  layer_done(s, diffid, false);
}

void store_layer_release(struct image_store *s, const char *diffid) {
  pthread_mutex_lock(&s->mu);
  struct layer_pin *p = pin_find(s, diffid);
  if (p)
    pin_drop(s, p);
  pthread_mutex_unlock(&s->mu);
}

/* 26 characters of [A-Z0-9], as Docker's overlay2 l/ names. */
static void short_name(char out[SHORT_LINK_LEN + 1]) {
  static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  unsigned char rnd[SHORT_LINK_LEN];
  id_random(rnd, sizeof rnd);
  for (int i = 0; i < SHORT_LINK_LEN; i++)
    out[i] = al[rnd[i] % 36];
  out[SHORT_LINK_LEN] = '\0';
}

int store_layer_commit(struct image_store *s, const char *diffid,
                       const char *tmpdir, int64_t size, sh_err *err) {
  char name[SHORT_LINK_LEN + 1];
  cleanup_free char *link = NULL;
  for (int tries = 0;; tries++) {
    short_name(name);
    free(link);
    link = path_of(s, "l/%s", name);
    cleanup_free char *target = xasprintf("../layers/%s/diff", diffid + 7);
    if (symlink(target, link) == 0)
      break;
    if (errno != EEXIST || tries > 8) {
      int e = errno;
      layer_done(s, diffid, false);
      return sh_errno(err, e, "image store: link %s", link);
    }
  }
  cleanup_free char *linkf = xasprintf("%s/link", tmpdir);
  cleanup_free char *sizef = xasprintf("%s/size", tmpdir);
  char sz[32];
  snprintf(sz, sizeof sz, "%lld", (long long)size);
  cleanup_free char *dest = path_of(s, "layers/%s", diffid + 7);
  if (write_file_atomic(linkf, name, strlen(name), 0600, err) < 0 ||
      write_file_atomic(sizef, sz, strlen(sz), 0600, err) < 0 ||
      (rename(tmpdir, dest) < 0 &&
       sh_errno(err, errno, "image store: layer %s", diffid) < 0)) {
    unlink(link);
    layer_done(s, diffid, false);
    return -1;
  }
  layer_done(s, diffid, true);
  return 0;
}

static int64_t layer_size(struct image_store *s, const char *diffid) {
  cleanup_free char *p = path_of(s, "layers/%s/size", diffid + 7);
  cleanup_free char *data = NULL;
  size_t len;
  if (read_file(p, &data, &len, NULL) < 0)
    return 0;
  return strtoll(data, NULL, 10);
}

static char *layer_link(struct image_store *s, const char *diffid) {
  cleanup_free char *p = path_of(s, "layers/%s/link", diffid + 7);
  char *data = NULL;
  size_t len;
  if (read_file(p, &data, &len, NULL) < 0)
    return NULL;
  return data;
}

/* ---- image records ---- */

bool store_has_image(struct image_store *s, const char *id) {
  cleanup_free char *p = path_of(s, "images/%s/meta.json", id + 7);
  return access(p, F_OK) == 0;
}

/* meta.json of an image, or NULL. */
static json_t *load_meta(struct image_store *s, const char *id) {
  cleanup_free char *p = path_of(s, "images/%s/meta.json", id + 7);
  json_error_t je;
  return json_load_file(p, 0, &je);
}

static json_t *load_config(struct image_store *s, const char *id) {
  cleanup_free char *p = path_of(s, "images/%s/config.json", id + 7);
  json_error_t je;
  return json_load_file(p, 0, &je);
}

json_t *store_load_meta(struct image_store *s, const char *id) {
  return load_meta(s, id);
}

json_t *store_load_config(struct image_store *s, const char *id) {
  return load_config(s, id);
}

char *store_layer_blob(struct image_store *s, const char *diffid) {
  return path_of(s, "layers/%s/blob", diffid + 7);
}

int64_t store_layer_size(struct image_store *s, const char *diffid) {
  return layer_size(s, diffid);
}

void image_store_set_events(struct image_store *s, image_event_fn fn,
                            void *ud) {
  s->on_event = fn;
  s->event_ud = ud;
}

void store_event(struct image_store *s, const char *action, const char *id,
                 const char *name, const char *image_id) {
  if (!s->on_event)
    return;
  cleanup_json json_t *config = image_id ? load_config(s, image_id) : NULL;
  const json_t *labels = jx_get(config, "config.Labels");
  s->on_event(action, id, name, json_is_object(labels) ? labels : NULL,
              s->event_ud);
}

int store_image_commit(struct image_store *s, const char *id,
                       const char *config, size_t config_len,
                       const json_t *diffids, const char *const *refs,
                       sh_err *err) {
  char now[64];
  clock_format_rfc3339(clock_wall_ns(), now, sizeof now);
  int64_t size = 0;
  size_t i;
  json_t *d;
  json_array_foreach(diffids, i, d) size += layer_size(s, json_string_value(d));
  pthread_mutex_lock(&s->mu);
  int rc = 0;
  if (!store_has_image(s, id) && !config) {
    rc = sh_error(err, 404, "No such image: %s", id); /* removed meanwhile */
    goto out;
  }
  if (!store_has_image(s, id)) {
    cleanup_free char *tmp = NULL;
    if (!json_is_array(diffids)) {
      rc = sh_error(err, 500, "image store: image %s has no diff IDs", id);
      goto out;
    }
    if (store_tmpdir(s, "image", &tmp, err) < 0) {
      rc = -1;
      goto out;
    }
    cleanup_json json_t *meta =
        json_pack("{s:s, s:O, s:I, s:s}", "id", id, "layers", diffids, "size",
                  (json_int_t)size, "pulled", now);
    cleanup_free char *m = jx_dumps(meta, JSON_COMPACT, NULL);
    cleanup_free char *cf = xasprintf("%s/config.json", tmp);
    cleanup_free char *mf = xasprintf("%s/meta.json", tmp);
    cleanup_free char *dest = path_of(s, "images/%s", id + 7);
    if (write_file_atomic(cf, config, config_len, 0600, err) < 0 ||
        write_file_atomic(mf, m, strlen(m), 0600, err) < 0 ||
        (rename(tmp, dest) < 0 &&
         sh_errno(err, errno, "image store: image %s", id) < 0)) {
      rm_rf(tmp);
      rc = -1;
      goto out;
    }
  }
  bool changed = false;
  for (const char *const *r = refs; r && *r; r++) {
    const char *cur = json_string_value(json_object_get(s->refs, *r));
    if (cur && !strcmp(cur, id))
      continue;
    json_object_set_new(s->refs, *r, json_string(id));
    changed = true;
  }
  if (changed) {
    json_t *meta = load_meta(s, id);
    if (meta) {
      json_object_set_new(meta, "last_tag_time", json_string(now));
      cleanup_free char *m = jx_dumps(meta, JSON_COMPACT, NULL);
      cleanup_free char *mf = path_of(s, "images/%s/meta.json", id + 7);
      write_file_atomic(mf, m, strlen(m), 0600, NULL);
      json_decref(meta);
    }
    rc = save_refs(s, err);
  }
out:
  pthread_mutex_unlock(&s->mu);
  return rc;
}

char *store_ref_lookup(struct image_store *s, const char *full) {
  pthread_mutex_lock(&s->mu);
  const char *id = json_string_value(json_object_get(s->refs, full));
  char *out = id ? xstrdup(id) : NULL;
  pthread_mutex_unlock(&s->mu);
  return out;
}

/* Image IDs on disk; NULL-ended, caller frees with strv_free. */
static char **list_ids(struct image_store *s) {
  cleanup_free char *dir = path_of(s, "%s", "images");
  DIR *d = opendir(dir);
  size_t n = 0, cap = 16;
  char **v = xcalloc(cap, sizeof *v);
  struct dirent *de;
  while (d && (de = readdir(d))) {
    if (!is_hex64(de->d_name))
      continue;
    if (n + 1 >= cap)
      v = xrealloc(v, (cap *= 2) * sizeof *v);
    v[n++] = xasprintf("sha256:%s", de->d_name);
    v[n] = NULL;
  }
  if (d)
    closedir(d);
  return v;
}

/* Under s->mu. */
static int resolve_locked(struct image_store *s, const char *ref, char **id,
                          struct image_ref *parsed, bool *by_id, sh_err *err) {
  *by_id = false;
  if (digest_valid(ref) && store_has_image(s, ref)) {
    *id = xstrdup(ref);
    *by_id = true;
    return 0;
  }
  struct image_ref r;
  sh_err perr = {0};
  if (image_ref_parse(ref, &r, &perr) == 0) {
    /* "name:tag@digest" is found by its digest, the tag aside, as
     * dockerd's reference store does: a service pins its image so, and
     * its tasks found no local image and asked the registry each start. */
    if (r.tag && r.digest) {
      free(r.tag);
      r.tag = NULL;
    }
    cleanup_free char *full = image_ref_full(&r);
    const char *v = json_string_value(json_object_get(s->refs, full));
    if (v && store_has_image(s, v)) {
      *id = xstrdup(v);
      if (parsed)
        *parsed = r;
      else
        image_ref_free(&r);
      return 0;
    }
    image_ref_free(&r);
  }
  /* A (short) ID: unique hex prefix. */
  const char *hex = str_has_prefix(ref, "sha256:") ? ref + 7 : ref;
  size_t hl = strlen(hex);
  bool ok = hl > 0 && hl <= 64 && strspn(hex, "0123456789abcdef") == hl;
  char *found = NULL;
  if (ok) {
    char **ids = list_ids(s);
    for (char **p = ids; *p; p++) {
      if (strncmp(*p + 7, hex, hl))
        continue;
      if (found) {
        free(found);
        strv_free(ids);
        return sh_error(err, 400, "ambiguous image ID %s", ref);
      }
      found = xstrdup(*p);
    }
    strv_free(ids);
  }
  if (!found)
    return sh_error(err, 404, "No such image: %s", ref);
  *id = found;
  *by_id = true;
  return 0;
}

int image_resolve(struct image_store *s, const char *ref, char **image_id,
                  sh_err *err) {
  bool by_id;
  pthread_mutex_lock(&s->mu);
  int rc = resolve_locked(s, ref, image_id, NULL, &by_id, err);
  pthread_mutex_unlock(&s->mu);
  return rc;
}

/* RepoTags and RepoDigests of an image, familiar form. Under s->mu. */
static void refs_of(struct image_store *s, const char *id, json_t **tags,
                    json_t **digests) {
  *tags = json_array();
  *digests = json_array();
  const char *k;
  json_t *v;
  json_object_foreach(s->refs, k, v) {
    if (strcmp(json_string_value(v), id))
      continue;
    struct image_ref r;
    if (image_ref_parse(k, &r, NULL) < 0)
      continue;
    char *f = image_ref_familiar(&r, true);
    json_array_append_new(r.digest ? *digests : *tags, json_string(f));
    free(f);
    image_ref_free(&r);
  }
}

static json_int_t created_secs(const json_t *config) {
  int64_t ns = 0;
  const char *c = jx_str(config, "created", NULL);
  if (c && clock_parse_rfc3339(c, &ns, NULL) < 0)
    ns = 0;
  return (json_int_t)(ns / NS_PER_SEC);
}

/* One image's records, read under the store's lock: its ID, meta and
 * config, and its references. 500 if a record is unreadable; on any
 * error nothing is left to free. */
struct image_rec {
  char *id;
  json_t *meta, *config, *tags, *digests;
};

static void image_rec_free(struct image_rec *r) {
  free(r->id);
  json_decref(r->meta);
  json_decref(r->config);
  json_decref(r->tags);
  json_decref(r->digests);
  memset(r, 0, sizeof *r);
}

static int image_rec_load(struct image_store *s, const char *ref,
                          struct image_rec *r, sh_err *err) {
  memset(r, 0, sizeof *r);
  bool by_id;
  pthread_mutex_lock(&s->mu);
  int rc = resolve_locked(s, ref, &r->id, NULL, &by_id, err);
  if (rc == 0) {
    r->meta = load_meta(s, r->id);
    r->config = load_config(s, r->id);
    refs_of(s, r->id, &r->tags, &r->digests);
  }
  pthread_mutex_unlock(&s->mu);
  if (rc < 0) {
    image_rec_free(r);
    return rc;
  }
  if (!r->meta || !r->config) {
    sh_error(err, 500, "image %s: record unreadable", r->id);
    image_rec_free(r);
    return -1;
  }
  return 0;
}

int image_inspect(struct image_store *s, const char *ref, json_t **out,
                  sh_err *err) {
  __attribute__((cleanup(image_rec_free))) struct image_rec r;
  if (image_rec_load(s, ref, &r, err) < 0)
    return -1;
  const char *id = r.id;
  json_t *meta = r.meta, *config = r.config;
  json_t *tags = json_incref(r.tags), *digests = json_incref(r.digests);
  json_t *layers = json_object_get(meta, "layers");
  size_t nl = json_array_size(layers);
  sh_buf lower = {0};
  for (size_t i = nl; i-- > 1;) {
    cleanup_free char *p =
        path_of(s, "layers/%s/diff",
                json_string_value(json_array_get(layers, i - 1)) + 7);
    buf_printf(&lower, "%s%s", lower.len ? ":" : "", p);
  }
  json_t *data = json_object();
  if (lower.len)
    json_object_set_new(data, "LowerDir", json_string(lower.data));
  buf_free(&lower);
  if (nl) {
    cleanup_free char *up =
        path_of(s, "layers/%s/diff",
                json_string_value(json_array_get(layers, nl - 1)) + 7);
    json_object_set_new(data, "UpperDir", json_string(up));
  }
  const char *ltt = jx_str(meta, "last_tag_time", "0001-01-01T00:00:00Z");
  json_t *cfg = json_object_get(config, "config");
  json_t *j = json_pack(
      "{s:s, s:o, s:o, s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:s, s:I, "
      "s:{s:s, s:o}, s:{s:s, s:O}, s:{s:s}}",
      "Id", id, "RepoTags", tags, "RepoDigests", digests, "Parent", "",
      "Comment", jx_str(config, "comment", ""), "Created",
      jx_str(config, "created", "0001-01-01T00:00:00Z"), "DockerVersion",
      jx_str(config, "docker_version", ""), "Author",
      jx_str(config, "author", ""), "Config",
      json_is_object(cfg) ? json_incref(cfg) : json_object(), "Architecture",
      jx_str(config, "architecture", ""), "Os", jx_str(config, "os", ""),
      "Size", (json_int_t)jx_int(meta, "size", 0), "GraphDriver", "Name",
      "overlay2", "Data", data, "RootFS", "Type", "layers", "Layers", layers,
      "Metadata", "LastTagTime", ltt);
  if (!j)
    return sh_error(err, 500, "image %s: bad record", id);
  const char *variant = jx_str(config, "variant", NULL);
  if (variant && *variant)
    json_object_set_new(j, "Variant", json_string(variant));
  const char *osv = jx_str(config, "os.version", NULL);
  if (osv && *osv)
    json_object_set_new(j, "OsVersion", json_string(osv));
  *out = j;
  return 0;
}

static int by_created_desc(const void *a, const void *b) {
  json_int_t x =
      json_integer_value(json_object_get(*(json_t *const *)a, "Created"));
  json_int_t y =
      json_integer_value(json_object_get(*(json_t *const *)b, "Created"));
  return x < y ? 1 : x > y ? -1 : 0;
}

static json_t *summary_of(struct image_store *s, const char *id);

int image_list(struct image_store *s, json_t **out, sh_err *err) {
  (void)err;
  pthread_mutex_lock(&s->mu);
  char **ids = list_ids(s);
  size_t n = 0;
  for (char **p = ids; *p; p++)
    n++;
  json_t **items = xcalloc(n + 1, sizeof *items);
  size_t k = 0;
  for (char **p = ids; *p; p++) {
    json_t *sum = summary_of(s, *p);
    if (sum)
      items[k++] = sum;
  }
  pthread_mutex_unlock(&s->mu);
  strv_free(ids);
  qsort(items, k, sizeof *items, by_created_desc);
  json_t *arr = json_array();
  for (size_t i = 0; i < k; i++)
    json_array_append_new(arr, items[i]);
  free(items);
  *out = arr;
  return 0;
}

/* Diff IDs ("sha256:<hex>") of the layers containers mount, from their
 * lower dirs: "<root>/l/<link>" (a link to ../layers/<hex>/diff) or
 * "<root>/layers/<hex>/diff". */
static json_t *layers_in_use(struct image_store *s,
                             const struct image_users *u) {
  json_t *set = json_object();
  size_t rl = strlen(s->root);
  for (size_t i = 0; u && i < u->n; i++) {
    for (const char *const *d = u->v[i].layer_dirs; d && *d; d++) {
      const char *p = *d;
      if (strncmp(p, s->root, rl) || p[rl] != '/')
        continue;
      p += rl + 1;
      char target[PATH_MAX];
      const char *hex = NULL;
      if (str_has_prefix(p, "l/")) {
        ssize_t n = readlink(*d, target, sizeof target - 1);
        if (n <= 0)
          continue;
        target[n] = '\0';
        if (str_has_prefix(target, "../layers/"))
          hex = target + strlen("../layers/");
      } else if (str_has_prefix(p, "layers/")) {
        hex = p + strlen("layers/");
      }
      if (!hex || strlen(hex) < 64)
        continue;
      cleanup_free char *diffid = xasprintf("sha256:%.64s", hex);
      json_object_set_new(set, diffid, json_true());
    }
  }
  return set;
}

/* Deletes layers no image and no container uses and nobody has pinned;
 * returns the bytes freed. Under s->mu. */
static int64_t gc_layers(struct image_store *s, const struct image_users *u,
                         json_t *deleted) {
  cleanup_json json_t *used = layers_in_use(s, u);
  char **ids = list_ids(s);
  for (char **p = ids; *p; p++) {
    cleanup_json json_t *meta = load_meta(s, *p);
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(meta, "layers"), i, d)
        json_object_set(used, json_string_value(d), json_true());
  }
  strv_free(ids);
  int64_t freed = 0;
  cleanup_free char *dir = path_of(s, "%s", "layers");
  DIR *dd = opendir(dir);
  struct dirent *de;
  while (dd && (de = readdir(dd))) {
    if (!is_hex64(de->d_name))
      continue;
    cleanup_free char *diffid = xasprintf("sha256:%s", de->d_name);
    if (json_object_get(used, diffid) || pin_find(s, diffid))
      continue;
    int64_t size = layer_size(s, diffid);
    cleanup_free char *link = layer_link(s, diffid);
    if (link) {
      cleanup_free char *lp = path_of(s, "l/%s", link);
      unlink(lp);
    }
    /* Out of sight first, so a half-deleted layer never looks present. */
    cleanup_free char *src = xasprintf("%s/%s", dir, de->d_name);
    cleanup_free char *tmp = NULL;
    if (store_tmpdir(s, "del", &tmp, NULL) < 0)
      continue;
    cleanup_free char *dst = xasprintf("%s/x", tmp);
    if (rename(src, dst) == 0) {
      freed += size;
      if (deleted)
        json_array_append_new(deleted, json_pack("{s:s}", "Deleted", diffid));
    }
    rm_rf(tmp);
  }
  if (dd)
    closedir(dd);
  return freed;
}

/* Repository part of a full reference ("docker.io/library/nginx"). */
static char *repo_of(const char *full) {
  const char *at = strchr(full, '@');
  size_t n = at ? (size_t)(at - full) : strlen(full);
  const char *slash = memrchr(full, '/', n);
  const char *colon = memrchr(slash ? slash : full, ':',
                              n - (size_t)((slash ? slash : full) - full));
  if (colon)
    n = (size_t)(colon - full);
  return xstrndup(full, n);
}

static bool is_canonical(const char *full) {
  return strchr(full, '@') != NULL;
}

/* The full references naming id, sorted (a stable order for answers).
 * Under s->mu. */
static json_t *refs_for(struct image_store *s, const char *id) {
  json_t *mine = json_array();
  const char *k;
  json_t *v;
  json_object_foreach(s->refs, k, v) {
    if (!strcmp(json_string_value(v), id))
      json_array_append_new(mine, json_string(k));
  }
  return mine;
}

json_t *store_refs_of(struct image_store *s, const char *id) {
  pthread_mutex_lock(&s->mu);
  json_t *r = refs_for(s, id);
  pthread_mutex_unlock(&s->mu);
  return r;
}

/* moby's isSingleReference: every reference in one repository, at most
 * one of them a tag. False for none. */
static bool single_reference(const json_t *refs) {
  size_t n = json_array_size(refs);
  if (n <= 1)
    return n == 1;
  const char *single = NULL;
  cleanup_json json_t *canon = json_object();
  size_t i;
  json_t *e;
  json_array_foreach(refs, i, e) {
    const char *r = json_string_value(e);
    if (is_canonical(r)) {
      cleanup_free char *repo = repo_of(r);
      json_object_set_new(canon, repo, json_true());
    } else if (!single) {
      single = r;
    } else {
      return false;
    }
  }
  if (!single)
    single = json_string_value(json_array_get(refs, 0));
  cleanup_free char *repo = repo_of(single);
  return json_object_size(canon) == 1 && json_object_get(canon, repo);
}

static const struct image_user *first_user(const struct image_users *u,
                                           const char *id, int running) {
  for (size_t i = 0; u && i < u->n; i++) {
    if (!u->v[i].image_id || strcmp(u->v[i].image_id, id))
      continue;
    if (running < 0 || (bool)running == u->v[i].running)
      return &u->v[i];
  }
  return NULL;
}

enum {
  CONFLICT_RUNNING = 1,
  CONFLICT_ACTIVE_REF = 2,
  CONFLICT_STOPPED = 4,
  CONFLICT_HARD = CONFLICT_RUNNING,
  CONFLICT_SOFT = CONFLICT_ACTIVE_REF | CONFLICT_STOPPED,
};

/* moby's checkImageDeleteConflict (no parent images here). *used: the
 * conflict is a container's. Under s->mu. */
static int check_conflict(struct image_store *s, const char *id, int mask,
                          const struct image_users *u, bool *used,
                          sh_err *err) {
  *used = false;
  const struct image_user *c;
  const char *why = NULL;
  char msg[128];
  bool hard = false;
  cleanup_json json_t *refs = NULL;
  if ((mask & CONFLICT_RUNNING) && (c = first_user(u, id, 1))) {
    snprintf(msg, sizeof msg, "image is being used by running container %.12s",
             c->container_id);
    why = msg, hard = true, *used = true;
  } else if ((mask & CONFLICT_ACTIVE_REF) &&
             json_array_size(refs = refs_for(s, id)) > 0) {
    why = "image is referenced in multiple repositories";
  } else if ((mask & CONFLICT_STOPPED) && (c = first_user(u, id, 0))) {
    snprintf(msg, sizeof msg, "image is being used by stopped container %.12s",
             c->container_id);
    why = msg, *used = true;
  }
  if (!why)
    return 0;
  return sh_error(err, 409, "conflict: unable to delete %.12s (%s) - %s",
                  id + 7, hard ? "cannot be forced" : "must be forced", why);
}

/* Removes a reference and says so in res. Under s->mu. */
static void untag(struct image_store *s, const char *full, const char *id,
                  json_t *res) {
  struct image_ref r;
  if (image_ref_parse(full, &r, NULL) == 0) {
    cleanup_free char *f = image_ref_familiar(&r, true);
    json_array_append_new(res, json_pack("{s:s}", "Untagged", f));
    image_ref_free(&r);
  }
  json_object_del(s->refs, full);
  store_event(s, "untag", id, id, id);
}

/* moby's imageDeleteHelper: the image goes unless a conflict in mask
 * stands; quiet drops conflicts of an image still referenced or used.
 * Under s->mu. *freed (may be NULL) gets the layers' bytes. */
static int delete_image(struct image_store *s, const char *id, bool force,
                        bool quiet, const struct image_users *u, json_t *res,
                        int64_t *freed, sh_err *err) {
  int mask = CONFLICT_HARD | (force ? 0 : CONFLICT_SOFT);
  bool used;
  sh_err cerr = {0};
  if (check_conflict(s, id, mask, u, &used, &cerr) < 0) {
    cleanup_json json_t *refs = refs_for(s, id);
    if (quiet && (json_array_size(refs) > 0 || used))
      return 0;
    *err = cerr;
    return -1;
  }
  cleanup_json json_t *refs = refs_for(s, id);
  size_t i;
  json_t *e;
  json_array_foreach(refs, i, e) untag(s, json_string_value(e), id, res);
  if (save_refs(s, err) < 0)
    return -1;
  /* Tell before the config goes: the event carries the image's labels. */
  store_event(s, "delete", id, id, id);
  cleanup_free char *dir = path_of(s, "images/%s", id + 7);
  cleanup_free char *tmp = NULL;
  if (store_tmpdir(s, "del", &tmp, err) < 0)
    return -1;
  cleanup_free char *dst = xasprintf("%s/x", tmp);
  int rc = 0;
  if (rename(dir, dst) < 0)
    rc = sh_errno(err, errno, "image store: remove %s", id);
  rm_rf(tmp);
  if (rc < 0)
    return -1;
  json_array_append_new(res, json_pack("{s:s}", "Deleted", id));
  int64_t f = gc_layers(s, u, res);
  if (freed)
    *freed += f;
  return 0;
}

int image_remove(struct image_store *s, const char *ref, bool force,
                 const struct image_users *users, json_t **out, sh_err *err) {
  cleanup_free char *id = NULL;
  struct image_ref r = {0};
  bool by_id;
  pthread_mutex_lock(&s->mu);
  if (users && users->gen != s->gen) {
    pthread_mutex_unlock(&s->mu);
    return 1;
  }
  int rc = resolve_locked(s, ref, &id, &r, &by_id, err);
  if (rc < 0) {
    pthread_mutex_unlock(&s->mu);
    return rc;
  }
  json_t *res = json_array();
  cleanup_json json_t *mine = refs_for(s, id);
  bool quiet = false;
  if (!by_id) {
    const struct image_user *c;
    if (!force && single_reference(mine) && (c = first_user(users, id, -1))) {
      /* Untagging would leave the container's image dangling. */
      rc = sh_error(err, 409,
                    "conflict: unable to remove repository reference \"%s\" "
                    "(must force) - container %.12s is using its referenced "
                    "image %.12s",
                    ref, c->container_id, id + 7);
      goto out;
    }
    cleanup_free char *full = image_ref_full(&r);
    untag(s, full, id, res);
    /* Once no tag of that repository is left, its digest references go
     * too. */
    if (!r.digest) {
      cleanup_free char *repo = repo_of(full);
      bool tag_left = false;
      size_t i;
      json_t *e;
      json_array_foreach(mine, i, e) {
        const char *o = json_string_value(e);
        cleanup_free char *orepo = repo_of(o);
        if (strcmp(o, full) && !strcmp(orepo, repo) && !is_canonical(o))
          tag_left = true;
      }
      json_array_foreach(mine, i, e) {
        const char *o = json_string_value(e);
        cleanup_free char *orepo = repo_of(o);
        if (!tag_left && is_canonical(o) && !strcmp(orepo, repo) &&
            json_object_get(s->refs, o))
          untag(s, o, id, res);
      }
    }
    if ((rc = save_refs(s, err)) < 0)
      goto out;
    cleanup_json json_t *left = refs_for(s, id);
    if (json_array_size(left) > 0)
      goto out;
    quiet = true;
  } else if (single_reference(mine)) {
    bool used;
    int mask = CONFLICT_HARD | (force ? 0 : CONFLICT_STOPPED);
    if ((rc = check_conflict(s, id, mask, users, &used, err)) < 0)
      goto out;
    size_t i;
    json_t *e;
    json_array_foreach(mine, i, e) untag(s, json_string_value(e), id, res);
    if ((rc = save_refs(s, err)) < 0)
      goto out;
  }
  rc = delete_image(s, id, force, quiet, users, res, NULL, err);
out:
  image_ref_free(&r);
  pthread_mutex_unlock(&s->mu);
  if (rc < 0) {
    json_decref(res);
    return rc;
  }
  *out = res;
  return 0;
}

/* One ImageSummary (GET /images/json). Under s->mu. */
static json_t *summary_of(struct image_store *s, const char *id) {
  cleanup_json json_t *meta = load_meta(s, id);
  cleanup_json json_t *config = load_config(s, id);
  if (!meta || !config)
    return NULL;
  json_t *tags, *digests;
  refs_of(s, id, &tags, &digests);
  json_t *labels = jx_get(config, "config.Labels");
  return json_pack(
      "{s:s, s:s, s:o, s:o, s:I, s:I, s:i, s:o, s:i}", "Id", id, "ParentId", "",
      "RepoTags", tags, "RepoDigests", digests, "Created", created_secs(config),
      "Size", (json_int_t)jx_int(meta, "size", 0), "SharedSize", -1, "Labels",
      json_is_object(labels) ? json_incref(labels) : json_object(),
      "Containers", -1);
}

int image_prune(struct image_store *s, bool all,
                bool (*match)(const json_t *summary, void *ud), void *ud,
                const struct image_users *users, json_t **out, sh_err *err) {
  json_t *deleted = json_array();
  int64_t freed = 0;
  int rc = 0;
  pthread_mutex_lock(&s->mu);
  if (users && users->gen != s->gen) {
    pthread_mutex_unlock(&s->mu);
    json_decref(deleted);
    return 1;
  }
  char **ids = list_ids(s);
  for (char **p = ids; *p && rc == 0; p++) {
    if (first_user(users, *p, -1))
      continue;
    cleanup_json json_t *refs = refs_for(s, *p);
    if (!all && json_array_size(refs) > 0)
      continue;
    cleanup_json json_t *sum = summary_of(s, *p);
    if (!sum || (match && !match(sum, ud)))
      continue;
    /* Nothing uses it: every reference goes, then the image (moby
     * removes each reference, the last one taking the image). */
    sh_err e = {0};
    if (delete_image(s, *p, true, false, users, deleted, &freed, &e) < 0)
      rc = sh_error(err, e.status, "%s", e.msg);
  }
  strv_free(ids);
  /* Layers whose containers went since the last removal. */
  freed += gc_layers(s, users, NULL);
  pthread_mutex_unlock(&s->mu);
  if (rc < 0) {
    json_decref(deleted);
    return rc;
  }
  *out = json_pack(
      "{s:o, s:I}", "ImagesDeleted",
      json_array_size(deleted) ? deleted : (json_decref(deleted), json_null()),
      "SpaceReclaimed", (json_int_t)freed);
  return 0;
}

int image_disk_usage(struct image_store *s, const struct image_users *users,
                     json_t **out, sh_err *err) {
  (void)err;
  pthread_mutex_lock(&s->mu);
  char **ids = list_ids(s);
  /* How many images hold each layer. */
  cleanup_json json_t *count = json_object();
  for (char **p = ids; *p; p++) {
    cleanup_json json_t *meta = load_meta(s, *p);
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(meta, "layers"), i, d) {
      const char *k = json_string_value(d);
      if (k)
        json_object_set_new(
            count, k,
            json_integer(json_integer_value(json_object_get(count, k)) + 1));
    }
  }
  json_t *images = json_array();
  for (char **p = ids; *p; p++) {
    json_t *sum = summary_of(s, *p);
    if (!sum)
      continue;
    cleanup_json json_t *meta = load_meta(s, *p);
    int64_t shared = 0;
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(meta, "layers"), i, d) {
      const char *k = json_string_value(d);
      if (k && json_integer_value(json_object_get(count, k)) > 1)
        shared += layer_size(s, k);
    }
    json_int_t nc = 0;
    for (size_t k = 0; users && k < users->n; k++)
      nc += users->v[k].image_id && !strcmp(users->v[k].image_id, *p);
    json_object_set_new(sum, "SharedSize", json_integer(shared));
    json_object_set_new(sum, "Containers", json_integer(nc));
    json_array_append_new(images, sum);
  }
  strv_free(ids);
  /* Every layer on disk, those only containers hold included. */
  int64_t total = 0;
  cleanup_free char *dir = path_of(s, "%s", "layers");
  DIR *dd = opendir(dir);
  struct dirent *de;
  while (dd && (de = readdir(dd))) {
    if (!is_hex64(de->d_name))
      continue;
    cleanup_free char *diffid = xasprintf("sha256:%s", de->d_name);
    total += layer_size(s, diffid);
  }
  if (dd)
    closedir(dd);
  pthread_mutex_unlock(&s->mu);
  *out = json_pack("{s:I, s:o}", "LayersSize", (json_int_t)total, "Images",
                   images);
  return 0;
}

int image_history(struct image_store *s, const char *ref, json_t **out,
                  sh_err *err) {
  __attribute__((cleanup(image_rec_free))) struct image_rec r;
  if (image_rec_load(s, ref, &r, err) < 0)
    return -1;
  const char *id = r.id;
  json_t *meta = r.meta, *config = r.config;
  json_t *tags = json_incref(r.tags);
  json_t *layers = json_object_get(meta, "layers");
  json_t *hist = json_object_get(config, "history");
  json_t *rows = json_array();
  size_t li = 0, i;
  json_t *h;
  /* Oldest first, as the config lists it; each non-empty step made the
   * next layer. */
  json_array_foreach(hist, i, h) {
    int64_t size = 0;
    if (!json_is_true(json_object_get(h, "empty_layer"))) {
      const char *d = json_string_value(json_array_get(layers, li++));
      if (d)
        size = layer_size(s, d);
    }
    int64_t ns = 0;
    const char *c = jx_str(h, "created", NULL);
    if (c && clock_parse_rfc3339(c, &ns, NULL) < 0)
      ns = 0;
    json_array_append_new(
        rows, json_pack("{s:s, s:I, s:s, s:[], s:I, s:s}", "Id", "<missing>",
                        "Created", (json_int_t)(ns / NS_PER_SEC), "CreatedBy",
                        jx_str(h, "created_by", ""), "Tags", "Size",
                        (json_int_t)size, "Comment", jx_str(h, "comment", "")));
  }
  /* An image without history (some tools make them): one row per layer. */
  if (json_array_size(rows) == 0) {
    json_array_foreach(layers, i, h) {
      json_array_append_new(
          rows,
          json_pack("{s:s, s:I, s:s, s:[], s:I, s:s}", "Id", "<missing>",
                    "Created", created_secs(config), "CreatedBy", "", "Tags",
                    "Size", (json_int_t)layer_size(s, json_string_value(h)),
                    "Comment", ""));
    }
  }
  json_t *rev = json_array();
  for (size_t k = json_array_size(rows); k-- > 0;)
    json_array_append(rev, json_array_get(rows, k));
  json_decref(rows);
  json_t *top = json_array_get(rev, 0);
  if (top) {
    json_object_set_new(top, "Id", json_string(id));
    json_object_set_new(top, "Tags", tags);
  } else {
    json_decref(tags);
  }
  *out = rev;
  return 0;
}

int image_tag(struct image_store *s, const char *source, const char *target,
              sh_err *err) {
  struct image_ref r;
  if (image_ref_parse(target, &r, err) < 0)
    return -1;
  if (r.digest) {
    image_ref_free(&r);
    return sh_error(err, 400,
                    "refusing to create a tag with a digest "
                    "reference");
  }
  cleanup_free char *full = image_ref_full(&r);
  cleanup_free char *fam = image_ref_familiar(&r, true);
  image_ref_free(&r);
  cleanup_free char *id = NULL;
  if (image_resolve(s, source, &id, err) < 0)
    return -1;
  const char *refs[] = {full, NULL};
  if (store_image_commit(s, id, NULL, 0, NULL, refs, err) < 0)
    return -1;
  store_event(s, "tag", id, fam, id);
  return 0;
}

int image_layers(struct image_store *s, const char *image_id, char ***dirs,
                 size_t *n, json_t **config, sh_err *err) {
  cleanup_free char *id = NULL;
  if (image_resolve(s, image_id, &id, err) < 0)
    return -1;
  pthread_mutex_lock(&s->mu);
  cleanup_json json_t *meta = load_meta(s, id);
  json_t *cfg = load_config(s, id);
  pthread_mutex_unlock(&s->mu);
  if (!meta || !cfg) {
    json_decref(cfg);
    return sh_error(err, 500, "image %s: record unreadable", id);
  }
  json_t *layers = json_object_get(meta, "layers");
  size_t nl = json_array_size(layers);
  char **v = xcalloc(nl + 1, sizeof *v);
  for (size_t i = 0; i < nl; i++) {
    const char *diffid = json_string_value(json_array_get(layers, i));
    char *link = diffid ? layer_link(s, diffid) : NULL;
    if (!link) {
      image_layers_free(v, nl);
      json_decref(cfg);
      return sh_error(err, 500, "image %s: layer %s missing", id,
                      diffid ? diffid : "?");
    }
    v[nl - 1 - i] = xasprintf("l/%s", link); /* top-most first */
    free(link);
  }
  *dirs = v;
  *n = nl;
  if (config)
    *config = cfg;
  else
    json_decref(cfg);
  return 0;
}

struct image_pin {
  struct image_store *s;
  char **diffids; /* NULL-ended */
};

uint64_t image_store_gen(struct image_store *s) {
  pthread_mutex_lock(&s->mu);
  uint64_t g = s->gen;
  pthread_mutex_unlock(&s->mu);
  return g;
}

int image_pin(struct image_store *s, const char *image_id,
              struct image_pin **out, sh_err *err) {
  pthread_mutex_lock(&s->mu);
  cleanup_json json_t *meta =
      str_has_prefix(image_id, "sha256:") && is_hex64(image_id + 7)
          ? load_meta(s, image_id)
          : NULL;
  if (!meta) {
    pthread_mutex_unlock(&s->mu);
    return sh_error(err, 404, "No such image: %s", image_id);
  }
  json_t *layers = json_object_get(meta, "layers");
  struct image_pin *p = xcalloc(1, sizeof *p);
  p->s = s;
  p->diffids = xcalloc(json_array_size(layers) + 1, sizeof *p->diffids);
  size_t i, k = 0;
  json_t *d;
  json_array_foreach(layers, i, d) {
    if (!json_is_string(d))
      continue;
    p->diffids[k++] = xstrdup(json_string_value(d));
    pin_add(s, json_string_value(d));
  }
  pthread_mutex_unlock(&s->mu);
  *out = p;
  return 0;
}

void image_unpin(struct image_pin *p) {
  if (!p)
    return;
  struct image_store *s = p->s;
  pthread_mutex_lock(&s->mu);
  for (char **d = p->diffids; *d; d++) {
    struct layer_pin *lp = pin_find(s, *d);
    if (lp)
      pin_drop(s, lp);
  }
  s->gen++;
  pthread_mutex_unlock(&s->mu);
  strv_free(p->diffids);
  free(p);
}

void image_layers_free(char **dirs, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(dirs[i]);
  free(dirs);
}

/* ---- X-Registry-Auth ---- */

void image_auth_free(struct image_auth *a) {
  if (!a)
    return;
  free(a->username);
  free(a->password);
  free(a->serveraddress);
  free(a->identitytoken);
  memset(a, 0, sizeof *a);
}

int image_auth_decode(const char *header, struct image_auth *out, sh_err *err) {
  memset(out, 0, sizeof *out);
  if (!header || !*header)
    return 0;
  /* base64url (what the CLI sends) or standard base64, padding optional. */
  size_t n = strlen(header);
  cleanup_free char *b = xmalloc(n + 4);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    char c = header[i];
    if (c == '-')
      c = '+';
    else if (c == '_')
      c = '/';
    else if (c == '=' || c == '\n' || c == '\r' || c == ' ')
      continue;
    b[k++] = c;
  }
  while (k % 4)
    b[k++] = '=';
  b[k] = '\0';
  cleanup_free unsigned char *dec = xmalloc(k / 4 * 3 + 1);
  int dl = EVP_DecodeBlock(dec, (unsigned char *)b, (int)k);
  if (dl < 0)
    return sh_error(err, 400, "invalid X-Registry-Auth header: bad base64");
  while (k > 0 && b[k - 1] == '=' && dl > 0)
    k--, dl--; /* EVP_DecodeBlock counts padding as zero bytes */
  json_error_t je;
  cleanup_json json_t *j = json_loadb((char *)dec, (size_t)dl, 0, &je);
  if (!json_is_object(j))
    return sh_error(err, 400, "invalid X-Registry-Auth header: %s", je.text);
  const char *u = jx_str(j, "username", NULL), *p = jx_str(j, "password", NULL),
             *sa = jx_str(j, "serveraddress", NULL),
             *it = jx_str(j, "identitytoken", NULL);
  out->username = u && *u ? xstrdup(u) : NULL;
  out->password = p ? xstrdup(p) : NULL;
  out->serveraddress = sa && *sa ? xstrdup(sa) : NULL;
  out->identitytoken = it && *it ? xstrdup(it) : NULL;
  return 0;
}
