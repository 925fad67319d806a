/* src/image removal rules (dockerd's image_delete.go) and reference
 * counting of layers: hand-made images in a store on disk, containers as
 * image_users, then a brute-force property test over random tag / rmi /
 * container sequences. */
#include <errno.h>
#include <sys/stat.h>

#include "core/jsonx.h"
#include "core/util.h"
#include "image/image.h"
#include "image/internal.h"
#include "test.h"

struct fix {
  char dir[64];
  struct image_store *s;
};

static void fix_free(struct fix *f) {
  image_store_close(f->s);
  if (f->dir[0])
    rm_rf(f->dir);
}
#define cleanup_fix __attribute__((cleanup(fix_free)))

static int fix_open(struct fix *f) {
  snprintf(f->dir, sizeof f->dir, "/tmp/shoal-image-rm-XXXXXX");
  if (!mkdtemp(f->dir))
    return -1;
  cleanup_free char *root = xasprintf("%s/image", f->dir);
  sh_err err = {0};
  return image_store_open(root, NULL, &f->s, &err);
}

/* A layer named by a fake diff ID ("sha256:" + 64 times c). */
static void layer_id(char c, char out[DIGEST_LEN + 1]) {
  memcpy(out, "sha256:", 7);
  memset(out + 7, c, 64);
  out[DIGEST_LEN] = '\0';
}

static int make_layer(struct image_store *s, char c) {
  char d[DIGEST_LEN + 1];
  layer_id(c, d);
  bool present;
  store_layer_acquire(s, d, &present);
  if (present) {
    store_layer_release(s, d);
    return 0;
  }
  cleanup_free char *tmp = NULL;
  sh_err err = {0};
  if (store_tmpdir(s, "layer", &tmp, &err) < 0)
    return -1;
  cleanup_free char *diff = xasprintf("%s/diff", tmp);
  cleanup_free char *file = xasprintf("%s/diff/f%c", tmp, c);
  mkdir(diff, 0755);
  if (write_file_atomic(file, "x", 1, 0644, &err) < 0 ||
      store_layer_commit(s, d, tmp, 100, &err) < 0)
    return -1;
  store_layer_release(s, d);
  return 0;
}

/* An image of the given layers (chars), its ID into id. refs: full. */
static int make_image(struct image_store *s, const char *layers,
                      const char *const *refs, char id[DIGEST_LEN + 1]) {
  json_t *diffids = json_array();
  for (const char *p = layers; *p; p++) {
    char d[DIGEST_LEN + 1];
    layer_id(*p, d);
    if (make_layer(s, *p) < 0)
      return -1;
    json_array_append_new(diffids, json_string(d));
  }
  cleanup_json json_t *cfg =
      json_pack("{s:s, s:s, s:s, s:{s:s, s:O}, s:[{s:s, s:s}], s:{s:{s:s}}}",
                "created", "2024-01-02T03:04:05Z", "architecture", "amd64",
                "os", "linux", "rootfs", "type", "layers", "diff_ids", diffids,
                "history", "created_by", "/bin/sh -c #(nop) ADD x", "created",
                "2024-01-02T03:04:05Z", "config", "Labels", "built", layers);
  json_decref(diffids);
  cleanup_free char *c = jx_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS, NULL);
  digest_of(c, strlen(c), id);
  sh_err err = {0};
  return store_image_commit(
      s, id, c, strlen(c),
      json_object_get(json_object_get(cfg, "rootfs"), "diff_ids"), refs, &err);
}

static bool layer_on_disk(struct image_store *s, char c) {
  char d[DIGEST_LEN + 1];
  layer_id(c, d);
  return store_layer_present(s, d);
}

/* A container's lower dirs as the worker gives them: <root>/l/<link>. */
static char **dirs_of(struct image_store *s, const char *id) {
  char **dirs;
  size_t n;
  sh_err err = {0};
  if (image_layers(s, id, &dirs, &n, NULL, &err) < 0)
    return NULL;
  char **v = xcalloc(n + 1, sizeof *v);
  for (size_t i = 0; i < n; i++)
    v[i] = xasprintf("%s/%s", image_store_root(s), dirs[i]);
  image_layers_free(dirs, n);
  return v;
}

static const char *cid_a =
    "aaaa1111bbbb2222cccc3333dddd4444eeee5555ffff6666aaaa7777bbbb8888";

TEST(image_rm_in_use_rules) {
  cleanup_fix struct fix f = {0};
  CHECK(fix_open(&f) == 0);
  struct image_store *s = f.s;
  char id[DIGEST_LEN + 1];
  const char *refs[] = {"docker.io/library/web:1", NULL};
  CHECK(make_image(s, "ab", refs, id) == 0);
  char **dirs = dirs_of(s, id);
  CHECK(dirs);
  struct image_user u = {cid_a, id, true, (const char *const *)dirs};
  struct image_users users = {&u, 1, 0};
  sh_err err = {0};
  cleanup_json json_t *res = NULL;

  /* The only reference of a running container's image: must force. */
  CHECK(image_remove(s, "web:1", false, &users, &res, &err) < 0);
  CHECK_INT_EQ(err.status, 409);
  char want[512];
  snprintf(want, sizeof want,
           "conflict: unable to remove repository reference \"web:1\" (must "
           "force) - container aaaa1111bbbb is using its referenced image "
           "%.12s",
           id + 7);
  CHECK_STR_EQ(err.msg, want);
  /* By ID: a running container's image cannot be forced. */
  CHECK(image_remove(s, id, true, &users, &res, &err) < 0);
  snprintf(want, sizeof want,
           "conflict: unable to delete %.12s (cannot be forced) - image is "
           "being used by running container aaaa1111bbbb",
           id + 7);
  CHECK_STR_EQ(err.msg, want);

  /* A second tag: untagging one leaves the other, nothing refused. */
  CHECK(image_tag(s, "web:1", "web:2", &err) == 0);
  CHECK(image_remove(s, "web:1", false, &users, &res, &err) == 0);
  cleanup_free char *d1 = jx_dump(res);
  CHECK_STR_EQ(d1, "[{\"Untagged\":\"web:1\"}]");
  cleanup_free char *rid = NULL;
  CHECK(image_resolve(s, "web:2", &rid, &err) == 0);

  /* Forced untag of the last reference: the image stays (dangling) while
   * the container runs. */
  json_decref(res);
  res = NULL;
  CHECK(image_remove(s, "web:2", true, &users, &res, &err) == 0);
  cleanup_free char *d2 = jx_dump(res);
  CHECK_STR_EQ(d2, "[{\"Untagged\":\"web:2\"}]");
  free(rid);
  rid = NULL;
  CHECK(image_resolve(s, id, &rid, &err) == 0);

  /* Stopped: by ID without force refused, with force deleted, but the
   * container's layers stay. */
  u.running = false;
  CHECK(image_remove(s, id, false, &users, &res, &err) < 0);
  snprintf(want, sizeof want,
           "conflict: unable to delete %.12s (must be forced) - image is "
           "being used by stopped container aaaa1111bbbb",
           id + 7);
  CHECK_STR_EQ(err.msg, want);
  json_decref(res);
  res = NULL;
  CHECK(image_remove(s, id, true, &users, &res, &err) == 0);
  cleanup_free char *d3 = jx_dump(res);
  char want3[256];
  snprintf(want3, sizeof want3, "[{\"Deleted\":\"%s\"}]", id);
  CHECK_STR_EQ(d3, want3);
  CHECK(layer_on_disk(s, 'a') && layer_on_disk(s, 'b'));
  /* The container is gone: the next prune takes its layers. */
  cleanup_json json_t *pr = NULL;
  CHECK(image_prune(s, false, NULL, NULL, NULL, &pr, &err) == 0);
  CHECK_INT_EQ(jx_int(pr, "SpaceReclaimed", 0), 200);
  CHECK(!layer_on_disk(s, 'a') && !layer_on_disk(s, 'b'));
  for (char **p = dirs; *p; p++)
    free(*p);
  free(dirs);
}

TEST(image_rm_untag_only_given) {
  cleanup_fix struct fix f = {0};
  CHECK(fix_open(&f) == 0);
  struct image_store *s = f.s;
  char id[DIGEST_LEN + 1], other[DIGEST_LEN + 1];
  cleanup_free char *dref = xasprintf("docker.io/library/app@sha256:%064d", 0);
  const char *refs[] = {"docker.io/library/app:1", "docker.io/library/app:2",
                        dref, "docker.io/library/other:x", NULL};
  CHECK(make_image(s, "abc", refs, id) == 0);
  const char *orefs[] = {"docker.io/library/keep:1", NULL};
  CHECK(make_image(s, "ad", orefs, other) == 0);
  sh_err err = {0};
  cleanup_json json_t *res = NULL;
  CHECK(image_remove(s, "app:1", false, NULL, &res, &err) == 0);
  cleanup_free char *d1 = jx_dump(res);
  CHECK_STR_EQ(d1, "[{\"Untagged\":\"app:1\"}]");
  /* The last tag of "app": its digest reference goes with it. */
  json_decref(res);
  res = NULL;
  CHECK(image_remove(s, "app:2", false, NULL, &res, &err) == 0);
  cleanup_free char *d2 = jx_dump(res);
  CHECK(strstr(d2, "{\"Untagged\":\"app:2\"}"));
  CHECK(strstr(d2, "{\"Untagged\":\"app@sha256:"));
  CHECK(!strstr(d2, "Deleted"));
  /* By ID with one reference left: it goes, and so do layers b and c;
   * a is the other image's. */
  json_decref(res);
  res = NULL;
  CHECK(image_remove(s, id, false, NULL, &res, &err) == 0);
  cleanup_free char *d3 = jx_dump(res);
  CHECK(strstr(d3, "{\"Untagged\":\"other:x\"}"));
  CHECK(strstr(d3, id));
  CHECK(layer_on_disk(s, 'a') && layer_on_disk(s, 'd'));
  CHECK(!layer_on_disk(s, 'b') && !layer_on_disk(s, 'c'));
  cleanup_free char *rid = NULL;
  CHECK(image_resolve(s, "keep:1", &rid, &err) == 0);
}

TEST(image_history_rows) {
  cleanup_fix struct fix f = {0};
  CHECK(fix_open(&f) == 0);
  char id[DIGEST_LEN + 1];
  const char *refs[] = {"docker.io/library/h:1", NULL};
  CHECK(make_image(f.s, "a", refs, id) == 0);
  cleanup_json json_t *h = NULL;
  sh_err err = {0};
  CHECK(image_history(f.s, "h:1", &h, &err) == 0);
  CHECK_INT_EQ(json_array_size(h), 1);
  json_t *top = json_array_get(h, 0);
  CHECK_STR_EQ(jx_str(top, "Id", ""), id);
  CHECK_STR_EQ(jx_str(top, "CreatedBy", ""), "/bin/sh -c #(nop) ADD x");
  CHECK_INT_EQ(jx_int(top, "Size", 0), 100);
  CHECK_INT_EQ(jx_int(top, "Created", 0), 1704164645);
  CHECK_STR_EQ(
      json_string_value(json_array_get(json_object_get(top, "Tags"), 0)),
      "h:1");
}

/* ---- the property test ---- */

#define NIMG 3
#define NCTR 3
static const char *const img_layers[NIMG] = {"ab", "bc", "ade"};
static const char *const names[] = {
    "docker.io/library/r1:a",
    "docker.io/library/r1:b",
    "docker.io/library/r2:a",
    "docker.io/x/r3:a",
    "docker.io/library/r1@sha256:"
    "1111111111111111111111111111111111111111111111111111111111111111",
    "docker.io/library/r2@sha256:"
    "2222222222222222222222222222222222222222222222222222222222222222"};
#define NNAMES (sizeof names / sizeof names[0])

struct ctr {
  bool exists, running;
  int img;
  char **dirs;
};

static unsigned rnd(unsigned *seed) {
  *seed = *seed * 1103515245u + 12345u;
  return (*seed >> 16) & 0x7fff;
}

/* Every reference's current image, as the store says. */
static json_t *snapshot(struct image_store *s) {
  json_t *m = json_object();
  for (size_t i = 0; i < NNAMES; i++) {
    char *id = store_ref_lookup(s, names[i]);
    if (id)
      json_object_set_new(m, names[i], json_string(id));
    free(id);
  }
  return m;
}

static bool has_image(struct image_store *s, const char *id) {
  return store_has_image(s, id);
}

TEST(image_rm_property) {
  for (unsigned round = 0; round < 30; round++) {
    cleanup_fix struct fix f = {0};
    CHECK(fix_open(&f) == 0);
    struct image_store *s = f.s;
    char ids[NIMG][DIGEST_LEN + 1];
    for (int i = 0; i < NIMG; i++) {
      const char *none[] = {NULL};
      CHECK(make_image(s, img_layers[i], none, ids[i]) == 0);
    }
    struct ctr ctrs[NCTR] = {0};
    unsigned seed = round * 7919u + 1;
    char cids[NCTR][65];
    for (int c = 0; c < NCTR; c++)
      snprintf(cids[c], sizeof cids[c], "%064d", c + 1);
    for (int step = 0; step < 60; step++) {
      unsigned op = rnd(&seed) % 10;
      sh_err err = {0};
      if (op < 3) { /* tag: a name onto an image (digests: directly) */
        int i = (int)(rnd(&seed) % NIMG);
        const char *n = names[rnd(&seed) % NNAMES];
        if (!has_image(s, ids[i]))
          continue;
        const char *one[] = {n, NULL};
        CHECK(store_image_commit(s, ids[i], NULL, 0, NULL, one, &err) == 0);
        continue;
      }
      if (op == 3) { /* a container starts or stops or goes */
        int c = (int)(rnd(&seed) % NCTR);
        if (!ctrs[c].exists) {
          int i = (int)(rnd(&seed) % NIMG);
          if (!has_image(s, ids[i]))
            continue;
          ctrs[c].exists = true;
          ctrs[c].img = i;
          ctrs[c].running = rnd(&seed) % 2;
          ctrs[c].dirs = dirs_of(s, ids[i]);
          CHECK(ctrs[c].dirs);
        } else if (ctrs[c].running) {
          ctrs[c].running = false;
        } else {
          for (char **p = ctrs[c].dirs; *p; p++)
            free(*p);
          free(ctrs[c].dirs);
          memset(&ctrs[c], 0, sizeof ctrs[c]);
        }
        continue;
      }
      /* rmi of a name or an image ID, forced or not */
      struct image_user uv[NCTR];
      size_t nu = 0;
      for (int c = 0; c < NCTR; c++)
        if (ctrs[c].exists)
          uv[nu++] =
              (struct image_user){cids[c], ids[ctrs[c].img], ctrs[c].running,
                                  (const char *const *)ctrs[c].dirs};
      struct image_users users = {uv, nu, image_store_gen(s)};
      bool force = rnd(&seed) % 2;
      bool by_id = rnd(&seed) % 3 == 0;
      const char *ref =
          by_id ? ids[rnd(&seed) % NIMG] : names[rnd(&seed) % NNAMES];
      cleanup_json json_t *before = snapshot(s);
      const char *target =
          by_id ? ref : json_string_value(json_object_get(before, ref));
      bool existed = target && has_image(s, target);
      bool running_user = false, any_user = false;
      for (size_t k = 0; k < nu; k++) {
        if (target && !strcmp(uv[k].image_id, target)) {
          any_user = true;
          running_user |= uv[k].running;
        }
      }
      cleanup_json json_t *res = NULL;
      int rc = image_remove(s, ref, force, &users, &res, &err);
      cleanup_json json_t *after = snapshot(s);
      if (!existed) {
        if (!(rc < 0 && err.status == 404))
          FAIL_("round %u step %d: rmi %s of nothing: rc %d %s", round, step,
                ref, rc, rc < 0 ? err.msg : jx_dump(res));
        continue;
      }
      if (rc < 0) {
        /* Refused: nothing changed, and only for a reason dockerd has. */
        CHECK_INT_EQ(err.status, 409);
        CHECK(json_equal(before, after));
        CHECK(any_user || (by_id && !force));
        CHECK(has_image(s, target));
        continue;
      }
      /* An image a running container uses is never deleted. */
      if (running_user)
        CHECK(has_image(s, target));
      /* Without force, an image any container uses is never deleted. */
      if (any_user && !force)
        CHECK(has_image(s, target));
      if (!by_id) {
        /* The name given is gone; other names changed only if they were
         * digests of its repository or the image itself went. */
        CHECK(!json_object_get(after, ref));
        const char *k;
        json_t *v;
        json_object_foreach(before, k, v) {
          if (!strcmp(k, ref) || json_object_get(after, k))
            continue;
          bool digest_same_repo = strchr(k, '@') && !strchr(ref, '@') &&
                                  !strncmp(k, ref, strcspn(k, "@")) &&
                                  ref[strcspn(k, "@")] == ':';
          bool image_went = !has_image(s, json_string_value(v));
          if (!digest_same_repo && !image_went)
            FAIL_("round %u step %d: rmi %s also removed %s", round, step, ref,
                  k);
        }
      }
      /* No reference names a deleted image. */
      const char *k;
      json_t *v;
      json_object_foreach(after, k, v)
          CHECK(has_image(s, json_string_value(v)));
      /* Every layer an image or a container uses is on disk; every other
       * one of ours is gone (nothing leaks, nothing is taken early). */
      cleanup_free char *dump = jx_dump(res);
      bool deleted = strstr(dump, "\"Deleted\"") != NULL;
      for (const char *c = "abcde"; *c; c++) {
        bool needed = false;
        for (int i = 0; i < NIMG; i++)
          if (has_image(s, ids[i]) && strchr(img_layers[i], *c))
            needed = true;
        for (int cc = 0; cc < NCTR; cc++)
          if (ctrs[cc].exists && strchr(img_layers[ctrs[cc].img], *c))
            needed = true;
        if (needed && !layer_on_disk(s, *c))
          FAIL_("round %u step %d: layer %c deleted while in use", round, step,
                *c);
        /* gc runs when an image is deleted */
        if (deleted && !needed && layer_on_disk(s, *c))
          FAIL_("round %u step %d: layer %c left behind", round, step, *c);
      }
    }
    for (int c = 0; c < NCTR; c++) {
      for (char **p = ctrs[c].dirs; p && *p; p++)
        free(*p);
      free(ctrs[c].dirs);
    }
  }
}

/* A container being made from an image while it is removed: the pinned
 * layers stay; a removal given a container list from before a create
 * finished is told to list again (1) and does nothing. */
TEST(image_rm_pin_and_stale_users) {
  cleanup_fix struct fix f = {0};
  CHECK(fix_open(&f) == 0);
  struct image_store *s = f.s;
  char id[DIGEST_LEN + 1];
  const char *refs[] = {"docker.io/library/web:1", NULL};
  CHECK(make_image(s, "cd", refs, id) == 0);
  sh_err err = {0};
  struct image_pin *pin = NULL;
  CHECK(image_pin(s, "sha256:nope", &pin, &err) < 0);
  CHECK_INT_EQ(err.status, 404);
  CHECK(image_pin(s, id, &pin, &err) == 0);

  struct image_users none = {NULL, 0, image_store_gen(s)};
  cleanup_json json_t *res = NULL;
  CHECK_INT_EQ(image_remove(s, "web:1", true, &none, &res, &err), 0);
  CHECK(layer_on_disk(s, 'c') && layer_on_disk(s, 'd'));

  /* The create finished: a list taken before it is stale. */
  uint64_t before = image_store_gen(s);
  image_unpin(pin);
  CHECK(image_store_gen(s) == before + 1);
  struct image_users stale = {NULL, 0, before};
  cleanup_json json_t *pr = NULL;
  CHECK_INT_EQ(image_prune(s, true, NULL, NULL, &stale, &pr, &err), 1);
  CHECK(pr == NULL && layer_on_disk(s, 'c'));
  /* Listed again (no container holds them): they go. */
  struct image_users fresh = {NULL, 0, image_store_gen(s)};
  CHECK_INT_EQ(image_prune(s, true, NULL, NULL, &fresh, &pr, &err), 0);
  CHECK(!layer_on_disk(s, 'c') && !layer_on_disk(s, 'd'));
}
