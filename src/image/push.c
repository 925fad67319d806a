/* POST /images/{name}/push: the registry side of dockerd's
 * distribution/push_v2.go. Layers go up as the
 * archives kept since their pull or load (so their digests are the ones a
 * registry already knows); the manifest is Docker's schema 2 when every
 * layer is gzip, else OCI's. Credentials never reach a mirror. (POST
 * /auth is pull.c's image_login.) */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "core/util.h"
#include "image/internal.h"
#include "core/jsonx.h"

#define MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
#define MT_DOCKER_GZIP "application/vnd.docker.image.rootfs.diff.tar.gzip"
#define MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"

struct pusher {
  struct image_store *s;
  struct reg *reg;
  image_progress_fn cb;
  void *ud;
};

static void say(struct pusher *p, const char *status, const char *id) {
  if (!p->cb)
    return;
  cleanup_json json_t *ev =
      json_pack("{s:s, s:{}}", "status", status, "progressDetail");
  if (id)
    json_object_set_new(ev, "id", json_string(id));
  p->cb(ev, p->ud);
}

/* The registry's endpoint for a domain: never a mirror. */
static char *endpoint_of(struct image_store *s, const char *domain) {
  char **eps = endpoints_for(s, domain);
  size_t n = 0;
  while (eps[n])
    n++;
  char *e = xstrdup(eps[n - 1]);
  strv_free(eps);
  return e;
}

/* The layer's media type, from its first bytes. */
static const char *layer_type(const char *path, bool *gzip) {
  unsigned char m[4] = {0};
  cleanup_fd int fd = open(path, O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read(fd, m, sizeof m) : -1;
  *gzip = n >= 2 && m[0] == 0x1f && m[1] == 0x8b;
  if (*gzip)
    return MT_DOCKER_GZIP;
  if (n >= 4 && m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd)
    return "application/vnd.oci.image.layer.v1.tar+zstd";
  return "application/vnd.oci.image.layer.v1.tar";
}

/* HEAD, then POST + PUT unless the registry has it. */
static int push_blob(struct pusher *p, const char *repo, const char *digest,
                     const char *file, const void *mem, size_t len,
                     const char *show, sh_err *err) {
  long st = 0;
  cleanup_free char *head = xasprintf("/v2/%s/blobs/%s", repo, digest);
  if (reg_send(p->reg, "HEAD", head, NULL, NULL, 0, NULL, &st, NULL, err) < 0)
    return -1;
  if (st == 200) {
    if (show)
      say(p, "Layer already exists", show);
    return 0;
  }
  cleanup_free char *start = xasprintf("/v2/%s/blobs/uploads/", repo);
  cleanup_free char *loc = NULL;
  if (reg_send(p->reg, "POST", start, NULL, "", 0, NULL, &st, &loc, err) < 0)
    return -1;
  if (st != 202 || !loc)
    return sh_error(err, 500, "registry %s: upload not started (status %ld)",
                    reg_base(p->reg), st);
  if (show)
    say(p, "Pushing", show);
  cleanup_free char *put =
      xasprintf("%s%sdigest=%s", loc, strchr(loc, '?') ? "&" : "?", digest);
  if (reg_send(p->reg, "PUT", put, "application/octet-stream", mem, len, file,
               &st, NULL, err) < 0)
    return -1;
  if (st != 201)
    return sh_error(err, 500, "registry %s: blob %s not accepted (status %ld)",
                    reg_base(p->reg), digest, st);
  if (show)
    say(p, "Pushed", show);
  return 0;
}

/* Pushes one tag of image id to repo. */
static int push_one(struct pusher *p, const char *repo, const char *tag,
                    const char *id, sh_err *err) {
  cleanup_json json_t *meta = store_load_meta(p->s, id);
  cleanup_free char *cpath =
      xasprintf("%s/images/%s/config.json", image_store_root(p->s), id + 7);
  cleanup_free char *config = NULL;
  size_t clen = 0;
  if (!meta || read_file(cpath, &config, &clen, err) < 0)
    return sh_error(err, 500, "image %s: record unreadable", id);
  json_t *diffids = json_object_get(meta, "layers");
  size_t nl = json_array_size(diffids);
  json_t *layers = json_array();
  bool all_gzip = true;
  int rc = 0;
  for (size_t i = 0; i < nl; i++) {
    const char *d = json_string_value(json_array_get(diffids, i));
    char shortid[13];
    snprintf(shortid, sizeof shortid, "%.12s", d + 7);
    say(p, "Preparing", shortid);
  }
  for (size_t i = nl; i-- > 0 && rc == 0;) {
    const char *d = json_string_value(json_array_get(diffids, i));
    char shortid[13];
    snprintf(shortid, sizeof shortid, "%.12s", d + 7);
    cleanup_free char *blob = store_layer_blob(p->s, d);
    struct stat st;
    if (stat(blob, &st) < 0) {
      rc = sh_error(err, 500,
                    "image %.12s was stored before shoal kept layer archives: "
                    "remove it and pull it again to push it",
                    id + 7);
      break;
    }
    char dg[DIGEST_LEN + 1];
    int64_t size;
    bool gz;
    const char *mt = layer_type(blob, &gz);
    all_gzip &= gz;
    if ((rc = file_sha256(blob, dg, &size, err)) < 0 ||
        (rc = push_blob(p, repo, dg, blob, NULL, 0, shortid, err)) < 0)
      break;
    json_array_insert_new(layers, 0,
                          json_pack("{s:s, s:I, s:s}", "mediaType", mt, "size",
                                    (json_int_t)size, "digest", dg));
  }
  if (rc == 0)
    rc = push_blob(p, repo, id, NULL, config, clen, NULL, err);
  if (rc < 0) {
    json_decref(layers);
    return rc;
  }
  /* Layer types of the OCI kind need an OCI manifest. */
  size_t i;
  json_t *l;
  if (all_gzip) {
    json_array_foreach(layers, i, l)
        json_object_set_new(l, "mediaType", json_string(MT_DOCKER_GZIP));
  } else {
    json_array_foreach(layers, i, l) {
      if (!strcmp(jx_str(l, "mediaType", ""), MT_DOCKER_GZIP))
        json_object_set_new(
            l, "mediaType",
            json_string("application/vnd.oci.image.layer.v1.tar+gzip"));
    }
  }
  const char *mmt = all_gzip ? MT_DOCKER_MANIFEST : MT_OCI_MANIFEST;
  cleanup_json json_t *man = json_pack(
      "{s:i, s:s, s:{s:s, s:I, s:s}, s:o}", "schemaVersion", 2, "mediaType",
      mmt, "config", "mediaType", all_gzip ? MT_DOCKER_CONFIG : MT_OCI_CONFIG,
      "size", (json_int_t)clen, "digest", id, "layers", layers);
  cleanup_free char *body =
      jx_dumps(man, JSON_INDENT(3) | JSON_PRESERVE_ORDER, NULL);
  size_t blen = strlen(body);
  char mdg[DIGEST_LEN + 1];
  digest_of(body, blen, mdg);
  cleanup_free char *url = xasprintf("/v2/%s/manifests/%s", repo, tag);
  long st = 0;
  if (reg_send(p->reg, "PUT", url, mmt, body, blen, NULL, &st, NULL, err) < 0)
    return -1;
  if (st != 201)
    return sh_error(err, 500, "registry %s: manifest not accepted (status %ld)",
                    reg_base(p->reg), st);
  cleanup_free char *line =
      xasprintf("%s: digest: %s size: %zu", tag, mdg, blen);
  say(p, line, NULL);
  if (p->cb) {
    cleanup_json json_t *aux =
        json_pack("{s:{}, s:{s:s, s:s, s:I}}", "progressDetail", "aux", "Tag",
                  tag, "Digest", mdg, "Size", (json_int_t)blen);
    p->cb(aux, p->ud);
  }
  return 0;
}

int image_push(struct image_store *s, const char *name, const char *tag,
               const struct image_auth *auth, image_progress_fn cb, void *ud,
               sh_err *err) {
  struct image_ref r;
  cleanup_free char *given =
      tag && *tag ? xasprintf("%s:%s", name, tag) : xstrdup(name);
  if (image_ref_parse(given, &r, err) < 0)
    return -1;
  cleanup_free char *familiar_name = image_ref_familiar(&r, false);
  /* The tags to push: the one given, else every tag of the repository. */
  cleanup_json json_t *todo = json_array(); /* [[tag, id]] */
  cleanup_free char *repo_full = xasprintf("%s/%s", r.domain, r.path);
  if (tag && *tag) {
    cleanup_free char *full = image_ref_full(&r);
    char *id = store_ref_lookup(s, full);
    if (id)
      json_array_append_new(todo, json_pack("[s,s]", r.tag, id));
    free(id);
  } else {
    pthread_mutex_lock(&s->mu);
    const char *k;
    json_t *v;
    size_t rl = strlen(repo_full);
    json_object_foreach(s->refs, k, v) {
      if (!strncmp(k, repo_full, rl) && k[rl] == ':')
        json_array_append_new(
            todo, json_pack("[s,s]", k + rl + 1, json_string_value(v)));
    }
    pthread_mutex_unlock(&s->mu);
  }
  if (json_array_size(todo) == 0) {
    image_ref_free(&r);
    return sh_error(err, 404,
                    "An image does not exist locally with the tag: %s",
                    familiar_name);
  }
  cleanup_free char *base = endpoint_of(s, r.domain);
  struct pusher p = {.s = s, .cb = cb, .ud = ud};
  p.reg = reg_new(s, base, r.path, auth);
  reg_want_push(p.reg);
  cleanup_free char *intro =
      xasprintf("The push refers to repository [%s/%s]", r.domain, r.path);
  say(&p, intro, NULL);
  int rc = 0;
  size_t i;
  json_t *e;
  json_array_foreach(todo, i, e) {
    const char *t = json_string_value(json_array_get(e, 0));
    const char *id = json_string_value(json_array_get(e, 1));
    if ((rc = push_one(&p, r.path, t, id, err)) < 0)
      break;
    cleanup_free char *shown = xasprintf("%s:%s", familiar_name, t);
    store_event(s, "push", shown, shown, id);
  }
  reg_free(p.reg);
  image_ref_free(&r);
  return rc;
}
