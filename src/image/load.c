/* /images/load: a docker-archive (manifest.json + layer tars, as `docker
 * save` writes) or an OCI archive (index.json + blobs/). The archive is
 * first spread into a private directory (regular files only; symlinks are
 * remembered and resolved by hand, so nothing can point outside), then each
 * image is stored like a pull would. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include "core/log.h"
#include "core/util.h"
#include "image/internal.h"
#include "lazy/archive.h"

struct unpacked {
  struct image_store *s;
  char *dir;
  json_t *links; /* path in archive -> symlink target */
  image_progress_fn cb;
  void *ud;
  json_t *loaded;
};

static int spread(struct unpacked *u, int fd, sh_err *err) {
  cleanup_lazy struct lazy_lib *held = lazy_hold(&lazy_archive_lib, err);
  if (!held)
    return -1;
  struct archive *a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_tar(a);
  archive_read_support_format_gnutar(a);
  int rc = 0;
  if (archive_read_open_fd(a, fd, 64 * 1024) != ARCHIVE_OK) {
    rc = sh_error(err, 500, "load: %s", archive_error_string(a));
    goto out;
  }
  struct archive_entry *e;
  for (;;) {
    int r = archive_read_next_header(a, &e);
    if (r == ARCHIVE_EOF)
      break;
    if (r < ARCHIVE_WARN) {
      rc = sh_error(err, 500, "load: bad archive: %s", archive_error_string(a));
      goto out;
    }
    cleanup_free char *rel = path_clean(archive_entry_pathname(e));
    if (!rel)
      continue;
    if (!*rel)
      continue;
    mode_t type = archive_entry_filetype(e);
    cleanup_free char *path = xasprintf("%s/%s", u->dir, rel);
    if (type == AE_IFLNK) {
      json_object_set_new(u->links, rel, json_string(archive_entry_symlink(e)));
      continue;
    }
    if (archive_entry_hardlink(e)) {
      json_object_set_new(
          u->links, rel, json_pack("{s:s}", "hard", archive_entry_hardlink(e)));
      continue;
    }
    if (type == AE_IFDIR) {
      if (mkdir_p(path, 0700, err) < 0)
        rc = -1;
      if (rc < 0)
        goto out;
      continue;
    }
    if (type != AE_IFREG)
      continue;
    char *slash = strrchr(path, '/');
    *slash = '\0';
    if (mkdir_p(path, 0700, err) < 0) {
      rc = -1;
      goto out;
    }
    *slash = '/';
    cleanup_fd int out =
        open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (out < 0) {
      rc = sh_errno(err, errno, "load: %s", rel);
      goto out;
    }
    if (archive_read_data_into_fd(a, out) != ARCHIVE_OK) {
      rc = sh_error(err, 500, "load: %s: %s", rel, archive_error_string(a));
      goto out;
    }
  }
out:
  archive_read_free(a);
  return rc;
}

/* Normalizes a path in the archive, resolving ".." lexically; NULL when
 * it climbs above the archive's root. */
static char *norm(const char *in) {
  size_t n = strlen(in);
  char *out = xmalloc(n + 1);
  size_t len = 0;
  for (const char *p = in; *p;) {
    while (*p == '/')
      p++;
    size_t c = strcspn(p, "/");
    if (c == 2 && p[0] == '.' && p[1] == '.') {
      if (len == 0) {
        free(out);
        return NULL;
      }
      while (len > 0 && out[len - 1] != '/')
        len--;
      if (len > 0)
        len--; /* the '/' before the popped component */
    } else if (c > 0 && !(c == 1 && p[0] == '.')) {
      if (len)
        out[len++] = '/';
      memcpy(out + len, p, c);
      len += c;
    }
    p += c;
  }
  out[len] = '\0';
  return out;
}

/* A path inside the archive after following its symlinks; caller frees. */
static char *resolve(struct unpacked *u, const char *rel) {
  char *cur = path_clean(rel);
  for (int hops = 0; cur && hops < 16; hops++) {
    json_t *l = json_object_get(u->links, cur);
    if (!l)
      return cur;
    const char *target;
    cleanup_free char *joined = NULL;
    if (json_is_object(l)) { /* hardlinks name paths from the root */
      target = jx_str(l, "hard", "");
      joined = xstrdup(target);
    } else {
      target = json_string_value(l);
      const char *slash = strrchr(cur, '/');
      if (target[0] == '/' || !slash)
        joined = xstrdup(target);
      else
        joined = xasprintf("%.*s/%s", (int)(slash - cur), cur, target);
    }
    free(cur);
    cur = norm(joined);
  }
  free(cur);
  return NULL;
}

static int read_member(struct unpacked *u, const char *rel, size_t max,
                       char **data, size_t *len, sh_err *err) {
  cleanup_free char *r = resolve(u, rel);
  if (!r)
    return sh_error(err, 400, "load: %s is not in the archive", rel);
  cleanup_free char *path = xasprintf("%s/%s", u->dir, r);
  struct stat st;
  if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
    return sh_error(err, 400, "load: %s is not in the archive", rel);
  if ((size_t)st.st_size > max)
    return sh_error(err, 400, "load: %s is too large", rel);
  return read_file(path, data, len, err);
}

static int open_member(struct unpacked *u, const char *rel, sh_err *err) {
  cleanup_free char *r = resolve(u, rel);
  cleanup_free char *path = r ? xasprintf("%s/%s", u->dir, r) : NULL;
  int fd = path ? open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
  if (fd < 0)
    return sh_error(err, 400, "load: %s is not in the archive", rel);
  return fd;
}

/* sha256 of a whole file. */
static int file_digest(int fd, char out[DIGEST_LEN + 1], sh_err *err) {
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(md, EVP_sha256(), NULL);
  char buf[64 * 1024];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0)
    EVP_DigestUpdate(md, buf, (size_t)n);
  unsigned char d[32];
  EVP_DigestFinal_ex(md, d, NULL);
  EVP_MD_CTX_free(md);
  if (n < 0)
    return sh_errno(err, errno, "load: read");
  memcpy(out, "sha256:", 7);
  for (int i = 0; i < 32; i++)
    snprintf(out + 7 + 2 * i, 3, "%02x", d[i]);
  lseek(fd, 0, SEEK_SET);
  return 0;
}

static void say(struct unpacked *u, const char *what, const char *arg) {
  if (!u->cb)
    return;
  cleanup_free char *line = xasprintf("%s%s\n", what, arg);
  json_t *ev = json_pack("{s:s}", "stream", line);
  u->cb(ev, u->ud);
  json_decref(ev);
}

/* Stores one image: its config, its layers (members of the archive; blob
 * digests checked when given) and its names. */
static int load_image(struct unpacked *u, const char *config, size_t clen,
                      const char *const *layer_paths,
                      const char *const *layer_digests, size_t nl,
                      const char *const *names, sh_err *err) {
  char id[DIGEST_LEN + 1];
  digest_of(config, clen, id);
  json_error_t je;
  cleanup_json json_t *cj = json_loadb(config, clen, 0, &je);
  json_t *diffids = jx_get(cj, "rootfs.diff_ids");
  if (!json_is_object(cj) || !json_is_array(diffids) ||
      json_array_size(diffids) != nl || nl > MAX_LAYERS)
    return sh_error(err, 400,
                    "load: image %s: layers don't match its "
                    "configuration",
                    id);
  size_t done = 0;
  int rc = 0;
  for (; done < nl && rc == 0; done++) {
    const char *d = json_string_value(json_array_get(diffids, done));
    if (!digest_valid(d)) {
      rc = sh_error(err, 400, "load: image %s: bad diff ID", id);
      break;
    }
    bool present;
    store_layer_acquire(u->s, d, &present);
    if (present)
      continue;
    cleanup_free char *tmp = NULL;
    cleanup_fd int fd = open_member(u, layer_paths[done], err);
    if (fd < 0 || store_tmpdir(u->s, "layer", &tmp, err) < 0) {
      store_layer_abort(u->s, d);
      rc = -1;
      break;
    }
    char got[DIGEST_LEN + 1];
    if (layer_digests && layer_digests[done] &&
        (file_digest(fd, got, err) < 0 || strcmp(got, layer_digests[done]))) {
      if (!err || !err->status)
        sh_error(err, 400, "load: blob %s does not match its digest",
                 layer_digests[done]);
      rm_rf(tmp);
      store_layer_abort(u->s, d);
      rc = -1;
      break;
    }
    cleanup_free char *diff = xasprintf("%s/diff", tmp);
    int64_t size;
    if (mkdir(diff, 0755) < 0 ||
        layer_unpack(fd, diff, d, got, &size, NULL, NULL, err) < 0) {
      if (!err || !err->status)
        sh_errno(err, errno, "load: mkdir");
      rm_rf(tmp);
      store_layer_abort(u->s, d);
      rc = -1;
      break;
    }
    /* Keep the archive's bytes beside the layer for save and push. */
    cleanup_free char *member = resolve(u, layer_paths[done]);
    cleanup_free char *src = member ? xasprintf("%s/%s", u->dir, member) : NULL;
    cleanup_free char *blob = xasprintf("%s/blob", tmp);
    /* Same file system (tmp/ of the store); without it, save and push of
     * this image ask for a pull. */
    if (src && link(src, blob) < 0)
      log_warn("load: keeping layer %s's archive: %s", d, strerror(errno));
    if (store_layer_commit(u->s, d, tmp, size, err) < 0) {
      rm_rf(tmp);
      rc = -1;
      break;
    }
  }
  /* Refs: full forms of the names that parse. */
  size_t nn = 0;
  while (names && names[nn])
    nn++;
  char **refs = xcalloc(nn + 1, sizeof *refs);
  char **shown = xcalloc(nn + 1, sizeof *shown);
  size_t k = 0;
  for (size_t i = 0; i < nn; i++) {
    struct image_ref r;
    if (image_ref_parse(names[i], &r, NULL) < 0 || r.digest) {
      image_ref_free(&r);
      continue;
    }
    refs[k] = image_ref_full(&r);
    shown[k++] = image_ref_familiar(&r, true);
    image_ref_free(&r);
  }
  if (rc == 0)
    rc = store_image_commit(u->s, id, config, clen, diffids,
                            (const char *const *)refs, err);
  /* Layers 0..done-1 are pinned: the loop stops at the failing one (which
   * dropped its pin or never took one), or at nl. */
  for (size_t i = 0; i < done && i < nl; i++)
    store_layer_release(u->s, json_string_value(json_array_get(diffids, i)));
  if (rc == 0) {
    for (size_t i = 0; i < k; i++)
      say(u, "Loaded image: ", shown[i]);
    if (k == 0)
      say(u, "Loaded image ID: ", id);
    json_array_append_new(u->loaded, json_string(id));
    store_event(u->s, "load", id, id, id);
  }
  strv_free(refs);
  strv_free(shown);
  return rc;
}

static int load_docker(struct unpacked *u, sh_err *err) {
  cleanup_free char *data = NULL;
  size_t len;
  if (read_member(u, "manifest.json", MANIFEST_MAX, &data, &len, err) < 0)
    return -1;
  json_error_t je;
  cleanup_json json_t *m = json_loadb(data, len, 0, &je);
  if (!json_is_array(m))
    return sh_error(err, 400, "load: manifest.json: not a JSON array");
  size_t i;
  json_t *img;
  json_array_foreach(m, i, img) {
    const char *cfgp = jx_str(img, "Config", NULL);
    json_t *layers = json_object_get(img, "Layers");
    if (!cfgp || !json_is_array(layers))
      return sh_error(err, 400,
                      "load: manifest.json: entry without Config "
                      "or Layers");
    cleanup_free char *config = NULL;
    size_t clen;
    if (read_member(u, cfgp, CONFIG_MAX, &config, &clen, err) < 0)
      return -1;
    size_t nl = json_array_size(layers);
    const char **paths = xcalloc(nl + 1, sizeof *paths);
    for (size_t k = 0; k < nl; k++)
      paths[k] = json_string_value(json_array_get(layers, k));
    json_t *tags = json_object_get(img, "RepoTags");
    size_t nt = json_array_size(tags);
    const char **names = xcalloc(nt + 1, sizeof *names);
    for (size_t k = 0; k < nt; k++)
      names[k] = json_string_value(json_array_get(tags, k));
    bool ok = true;
    for (size_t k = 0; k < nl; k++)
      ok &= paths[k] != NULL;
    int rc = ok ? load_image(u, config, clen, paths, NULL, nl, names, err)
                : sh_error(err, 400, "load: manifest.json: bad Layers");
    free(paths);
    free(names);
    if (rc < 0)
      return -1;
  }
  return 0;
}

static char *blob_path(const char *digest) {
  return xasprintf("blobs/sha256/%s", digest + 7);
}

static int read_blob(struct unpacked *u, const char *digest, size_t max,
                     char **data, size_t *len, sh_err *err) {
  if (!digest_valid(digest))
    return sh_error(err, 400, "load: bad digest %s", digest ? digest : "");
  cleanup_free char *p = blob_path(digest);
  if (read_member(u, p, max, data, len, err) < 0)
    return -1;
  char got[DIGEST_LEN + 1];
  digest_of(*data, *len, got);
  if (strcmp(got, digest)) {
    free(*data);
    *data = NULL;
    return sh_error(err, 400, "load: blob %s does not match its digest",
                    digest);
  }
  return 0;
}

static int load_oci_manifest(struct unpacked *u, const json_t *desc, int depth,
                             sh_err *err) {
  const char *digest = jx_str(desc, "digest", NULL);
  const char *mt = jx_str(desc, "mediaType", "");
  cleanup_free char *data = NULL;
  size_t len;
  if (read_blob(u, digest, MANIFEST_MAX, &data, &len, err) < 0)
    return -1;
  json_error_t je;
  cleanup_json json_t *m = json_loadb(data, len, 0, &je);
  if (!strcmp(mt, MT_OCI_INDEX) || !strcmp(mt, MT_DOCKER_LIST) ||
      json_object_get(m, "manifests")) {
    json_t *pick = depth < 2 ? index_pick(m) : NULL;
    if (!pick)
      return sh_error(err, 400, "load: no manifest for this platform in %s",
                      digest);
    /* The name sits on the outer descriptor. */
    cleanup_json json_t *inner = json_deep_copy(pick);
    json_t *ann = json_object_get(desc, "annotations");
    if (ann)
      json_object_set(inner, "annotations", ann);
    return load_oci_manifest(u, inner, depth + 1, err);
  }
  const char *cd = jx_str(m, "config.digest", NULL);
  json_t *layers = json_object_get(m, "layers");
  cleanup_free char *config = NULL;
  size_t clen;
  if (!json_is_array(layers))
    return sh_error(err, 400, "load: manifest %s has no layers", digest);
  if (read_blob(u, cd, CONFIG_MAX, &config, &clen, err) < 0)
    return -1;
  size_t nl = json_array_size(layers);
  char **paths = xcalloc(nl + 1, sizeof *paths);
  const char **digests = xcalloc(nl + 1, sizeof *digests);
  bool ok = true;
  for (size_t k = 0; k < nl; k++) {
    const char *ld = jx_str(json_array_get(layers, k), "digest", NULL);
    ok &= digest_valid(ld);
    digests[k] = ld;
    paths[k] = ok ? blob_path(ld) : xstrdup("");
  }
  /* io.containerd.image.name holds a full name; ref.name often only a tag
   * ("latest"), which names nothing on its own. */
  json_t *ann = json_object_get(desc, "annotations");
  const char *name =
      json_string_value(json_object_get(ann, "io.containerd.image.name"));
  if (!name) {
    const char *rn = json_string_value(
        json_object_get(ann, "org.opencontainers.image.ref.name"));
    if (rn && (strchr(rn, ':') || strchr(rn, '/')))
      name = rn;
  }
  const char *names[] = {name, NULL};
  int rc =
      ok ? load_image(u, config, clen, (const char *const *)paths, digests, nl,
                      names, err)
         : sh_error(err, 400, "load: manifest %s: bad layer digest", digest);
  strv_free(paths);
  free(digests);
  return rc;
}

static int load_oci(struct unpacked *u, sh_err *err) {
  cleanup_free char *data = NULL;
  size_t len;
  if (read_member(u, "index.json", MANIFEST_MAX, &data, &len, err) < 0)
    return -1;
  json_error_t je;
  cleanup_json json_t *idx = json_loadb(data, len, 0, &je);
  json_t *ms = json_object_get(idx, "manifests");
  if (!json_is_array(ms))
    return sh_error(err, 400, "load: index.json has no manifests");
  size_t i;
  json_t *d;
  json_array_foreach(ms, i,
                     d) if (load_oci_manifest(u, d, 0, err) < 0) return -1;
  return 0;
}

int image_load(struct image_store *s, int fd, image_progress_fn cb, void *ud,
               json_t **loaded, sh_err *err) {
  struct unpacked u = {.s = s, .cb = cb, .ud = ud};
  if (store_tmpdir(s, "load", &u.dir, err) < 0)
    return -1;
  u.links = json_object();
  u.loaded = json_array();
  int rc = spread(&u, fd, err);
  if (rc == 0) {
    cleanup_free char *mj = xasprintf("%s/manifest.json", u.dir);
    cleanup_free char *ij = xasprintf("%s/index.json", u.dir);
    if (access(mj, F_OK) == 0 || json_object_get(u.links, "manifest.json"))
      rc = load_docker(&u, err);
    else if (access(ij, F_OK) == 0 || json_object_get(u.links, "index.json"))
      rc = load_oci(&u, err);
    else
      rc = sh_error(err, 400,
                    "load: neither manifest.json nor index.json "
                    "in the archive");
  }
  rm_rf(u.dir);
  free(u.dir);
  json_decref(u.links);
  if (rc == 0 && loaded)
    *loaded = json_incref(u.loaded);
  json_decref(u.loaded);
  return rc;
}
