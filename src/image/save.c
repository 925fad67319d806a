/* GET /images/get: a docker-archive of local images, as `docker save`
 * writes it and `docker load` reads it: blobs/sha256/<hex> (configs and
 * the layers' own archives, kept since their pull or load), manifest.json
 * and repositories. Layers go as they came (gzip or plain tar): a loader
 * decompresses them and checks their diff IDs against the config. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include "core/util.h"
#include "image/internal.h"
#include "lazy/archive.h"
#include "core/jsonx.h"

struct wctx {
  int (*write)(void *arg, const void *buf, size_t len);
  void *arg;
};

static la_ssize_t w_cb(struct archive *a, void *ud, const void *buf, size_t n) {
  (void)a;
  struct wctx *w = ud;
  return w->write(w->arg, buf, n) < 0 ? -1 : (la_ssize_t)n;
}

/* One image to save: its ID, the RepoTags it carries, its layer blobs. */
struct item {
  char id[DIGEST_LEN + 1];
  json_t *tags;  /* familiar "name:tag" */
  json_t *blobs; /* paths, lowest layer first */
  json_t *names; /* "sha256:<hex>" of each blob */
};

int file_sha256(const char *path, char out[DIGEST_LEN + 1], int64_t *size,
                sh_err *err) {
  cleanup_fd int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return sh_errno(err, errno, "save: open %s", path);
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(md, EVP_sha256(), NULL);
  char buf[64 * 1024];
  ssize_t n;
  int64_t total = 0;
  while ((n = read(fd, buf, sizeof buf)) > 0) {
    EVP_DigestUpdate(md, buf, (size_t)n);
    total += n;
  }
  unsigned char d[32];
  EVP_DigestFinal_ex(md, d, NULL);
  EVP_MD_CTX_free(md);
  if (n < 0)
    return sh_errno(err, errno, "save: read %s", path);
  memcpy(out, "sha256:", 7);
  for (int i = 0; i < 32; i++)
    snprintf(out + 7 + 2 * i, 3, "%02x", d[i]);
  if (size)
    *size = total;
  return 0;
}

/* Adds the tags a name stands for: "name:tag" that one, a bare name every
 * tag of its repository (moby's parseNames), an ID none. */
static int add_item(struct image_store *s, const char *name, struct item *v,
                    size_t *n, sh_err *err) {
  cleanup_free char *id = NULL;
  if (image_resolve(s, name, &id, err) < 0)
    return -1;
  struct item *it = NULL;
  for (size_t i = 0; i < *n; i++)
    if (!strcmp(v[i].id, id))
      it = &v[i];
  if (!it) {
    it = &v[(*n)++];
    snprintf(it->id, sizeof it->id, "%s", id);
    it->tags = json_array();
  }
  struct image_ref r;
  if (image_ref_parse(name, &r, NULL) < 0)
    return 0; /* an ID */
  const char *last = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
  bool bare = !strchr(last, ':') && !r.digest;
  cleanup_free char *repo = image_ref_familiar(&r, false);
  cleanup_json json_t *refs = store_refs_of(s, id);
  size_t i;
  json_t *e;
  json_array_foreach(refs, i, e) {
    struct image_ref o;
    if (image_ref_parse(json_string_value(e), &o, NULL) < 0)
      continue;
    cleanup_free char *orepo = image_ref_familiar(&o, false);
    cleanup_free char *ofull = image_ref_familiar(&o, true);
    cleanup_free char *want = image_ref_familiar(&r, true);
    bool take = o.tag && !o.digest &&
                (bare ? !strcmp(orepo, repo) : !strcmp(ofull, want));
    image_ref_free(&o);
    bool dup = false;
    size_t k;
    json_t *t;
    json_array_foreach(it->tags, k, t) dup |=
        !strcmp(json_string_value(t), ofull);
    if (take && !dup)
      json_array_append_new(it->tags, json_string(ofull));
  }
  image_ref_free(&r);
  return 0;
}

static int put_entry(struct archive *a, const char *name, int64_t size,
                     sh_err *err) {
  struct archive_entry *e = archive_entry_new();
  archive_entry_set_pathname(e, name);
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0644);
  archive_entry_set_size(e, size);
  archive_entry_set_mtime(e, 0, 0);
  int rc = archive_write_header(a, e);
  archive_entry_free(e);
  if (rc != ARCHIVE_OK)
    return sh_error(err, 500, "save: %s", archive_error_string(a));
  return 0;
}

static int put_mem(struct archive *a, const char *name, const void *data,
                   size_t len, sh_err *err) {
  if (put_entry(a, name, (int64_t)len, err) < 0)
    return -1;
  if (len && archive_write_data(a, data, len) != (la_ssize_t)len)
    return sh_error(err, 500, "save: %s", archive_error_string(a));
  return 0;
}

static int put_file(struct archive *a, const char *name, const char *path,
                    int64_t size, sh_err *err) {
  cleanup_fd int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return sh_errno(err, errno, "save: open %s", path);
  if (put_entry(a, name, size, err) < 0)
    return -1;
  char buf[64 * 1024];
  int64_t left = size;
  while (left > 0) {
    ssize_t n =
        read(fd, buf,
             (size_t)(left < (int64_t)sizeof buf ? left : (int64_t)sizeof buf));
    if (n <= 0)
      return sh_error(err, 500, "save: %s changed while saving", path);
    if (archive_write_data(a, buf, (size_t)n) != n)
      return sh_error(err, 500, "save: %s", archive_error_string(a));
    left -= n;
  }
  return 0;
}

int image_save(struct image_store *s, const char *const *refs,
               int (*write)(void *arg, const void *buf, size_t len), void *arg,
               sh_err *err) {
  cleanup_lazy struct lazy_lib *held = lazy_hold(&lazy_archive_lib, err);
  if (!held)
    return -1;
  size_t nr = 0;
  while (refs && refs[nr])
    nr++;
  if (nr == 0)
    return sh_error(err, 400, "no images to save");
  struct item *items = xcalloc(nr, sizeof *items);
  size_t n = 0;
  int rc = 0;
  for (size_t i = 0; i < nr && rc == 0; i++)
    rc = add_item(s, refs[i], items, &n, err);
  /* Every layer's archive must be here before the first byte goes out:
   * an error after that can only cut the stream. */
  for (size_t i = 0; i < n && rc == 0; i++) {
    cleanup_json json_t *meta = store_load_meta(s, items[i].id);
    if (!meta) {
      rc = sh_error(err, 404, "No such image: %s", items[i].id);
      break;
    }
    items[i].blobs = json_array();
    items[i].names = json_array();
    size_t k;
    json_t *d;
    json_array_foreach(json_object_get(meta, "layers"), k, d) {
      cleanup_free char *blob = store_layer_blob(s, json_string_value(d));
      struct stat st;
      if (stat(blob, &st) < 0) {
        rc = sh_error(err, 500,
                      "image %.12s was stored before shoal kept layer "
                      "archives: remove it and pull it again to save it",
                      items[i].id + 7);
        break;
      }
      char dg[DIGEST_LEN + 1];
      if ((rc = file_sha256(blob, dg, NULL, err)) < 0)
        break;
      json_array_append_new(items[i].blobs, json_string(blob));
      json_array_append_new(items[i].names, json_string(dg));
    }
  }
  struct archive *a = NULL;
  struct wctx w = {write, arg};
  if (rc == 0) {
    a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    archive_write_set_bytes_per_block(a, 0); /* no padding to 10 KiB */
    if (archive_write_open(a, &w, NULL, w_cb, NULL) != ARCHIVE_OK)
      rc = sh_error(err, 500, "save: %s", archive_error_string(a));
  }
  cleanup_json json_t *manifest = json_array();
  cleanup_json json_t *repos = json_object();
  cleanup_json json_t *written = json_object();
  for (size_t i = 0; i < n && rc == 0; i++) {
    cleanup_free char *cpath = xasprintf("%s/images/%s/config.json",
                                         image_store_root(s), items[i].id + 7);
    cleanup_free char *cname = xasprintf("blobs/sha256/%s", items[i].id + 7);
    struct stat st;
    if (stat(cpath, &st) < 0) {
      rc = sh_errno(err, errno, "save: %s", cpath);
      break;
    }
    if (!json_object_get(written, cname)) {
      if ((rc = put_file(a, cname, cpath, st.st_size, err)) < 0)
        break;
      json_object_set_new(written, cname, json_true());
    }
    json_t *layers = json_array();
    size_t k;
    json_t *b;
    json_array_foreach(items[i].blobs, k, b) {
      const char *dg = json_string_value(json_array_get(items[i].names, k));
      cleanup_free char *lname = xasprintf("blobs/sha256/%s", dg + 7);
      json_array_append_new(layers, json_string(lname));
      if (json_object_get(written, lname))
        continue;
      if (stat(json_string_value(b), &st) < 0) {
        rc = sh_errno(err, errno, "save: %s", json_string_value(b));
        break;
      }
      if ((rc = put_file(a, lname, json_string_value(b), st.st_size, err)) < 0)
        break;
      json_object_set_new(written, lname, json_true());
    }
    json_array_append_new(manifest, json_pack("{s:s, s:O, s:o}", "Config",
                                              cname, "RepoTags", items[i].tags,
                                              "Layers", layers));
    /* The legacy repositories file: name -> tag -> top layer. */
    const char *top = json_string_value(
        json_array_get(items[i].names, json_array_size(items[i].names) - 1));
    json_array_foreach(items[i].tags, k, b) {
      const char *t = json_string_value(b);
      const char *colon = strrchr(t, ':');
      if (!colon || !top)
        continue;
      cleanup_free char *name = xstrndup(t, (size_t)(colon - t));
      json_t *m = json_object_get(repos, name);
      if (!m)
        json_object_set_new(repos, name, m = json_object());
      json_object_set_new(m, colon + 1, json_string(top + 7));
    }
  }
  if (rc == 0) {
    cleanup_free char *mj = jx_dumps(manifest, JSON_COMPACT, NULL);
    cleanup_free char *rj = jx_dumps(repos, JSON_COMPACT, NULL);
    if (put_mem(a, "manifest.json", mj, strlen(mj), err) < 0 ||
        put_mem(a, "repositories", rj, strlen(rj), err) < 0)
      rc = -1;
  }
  if (a) {
    if (archive_write_close(a) != ARCHIVE_OK && rc == 0)
      rc = sh_error(err, 500, "save: %s", archive_error_string(a));
    archive_write_free(a);
  }
  if (rc == 0)
    for (size_t i = 0; i < n; i++)
      store_event(s, "save", items[i].id, items[i].id, items[i].id);
  for (size_t i = 0; i < n; i++) {
    json_decref(items[i].tags);
    json_decref(items[i].blobs);
    json_decref(items[i].names);
  }
  free(items);
  return rc;
}
