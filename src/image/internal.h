/* Private to src/image: the store's state, the registry client and the
 * layer unpacker shared by pull.c, load.c and store.c. */
#ifndef SHOAL_IMAGE_INTERNAL_H
#define SHOAL_IMAGE_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "core/jsonx.h"
#include "image/image.h"

#define DOCKER_IO "docker.io"
#define DOCKER_HUB_URL "https://registry-1.docker.io"
#define DIGEST_LEN 71 /* "sha256:" + 64 hex */
#define MANIFEST_MAX (4u << 20)
#define CONFIG_MAX (8u << 20)
#define MAX_LAYERS 128

#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_DOCKER_LIST                                                         \
  "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_DOCKER_MANIFEST                                                     \
  "application/vnd.docker.distribution.manifest.v2+json"

bool digest_valid(const char *d);
bool is_hex64(const char *s);
/* "sha256:<hex>" of data into out[DIGEST_LEN + 1]. */
void digest_of(const void *data, size_t len, char out[DIGEST_LEN + 1]);

/* One layer known to this process: pinned by pulls and loads in progress
 * (so removal leaves it alone) or being unpacked (busy). */
struct layer_pin {
  char diffid[DIGEST_LEN + 1];
  int pins;
  bool busy;
};

struct image_store {
  char *root;
  char **mirrors, **insecure; /* under mu: a reload replaces them */
  int max_downloads;          /* under mu */
  long connect_timeout, stall_timeout;
  pthread_mutex_t mu; /* refs, records, pins; never held across I/O with
                         a registry */
  pthread_cond_t cond;
  json_t *refs; /* full reference -> "sha256:<id>" */
  struct layer_pin *pins;
  size_t npins, cappins;
  uint64_t gen; /* container creates finished (image_unpin) */
  image_event_fn on_event;
  void *event_ud;
};

/* ---- store.c ---- */
/* A fresh private directory under <root>/tmp; caller frees the path. */
int store_tmpdir(struct image_store *s, const char *prefix, char **out,
                 sh_err *err);
int rm_rf(const char *path);
bool store_has_image(struct image_store *s, const char *id);
bool store_layer_present(struct image_store *s, const char *diffid);
/* Waits while another thread unpacks the layer, then pins it. *present
 * tells whether it is on disk; if not, the caller must unpack it and call
 * store_layer_commit or store_layer_abort. */
void store_layer_acquire(struct image_store *s, const char *diffid,
                         bool *present);
/* Moves the unpacked tree tmp/<x>/diff into layers/<hex>/ with its short
 * link; the layer stays pinned. */
int store_layer_commit(struct image_store *s, const char *diffid,
                       const char *tmpdir, int64_t size, sh_err *err);
void store_layer_abort(struct image_store *s, const char *diffid);
void store_layer_release(struct image_store *s, const char *diffid);
/* Records an image (config bytes whose digest is id, layer diff IDs in
 * order) and points refs (full reference strings, may be NULL) at it. */
int store_image_commit(struct image_store *s, const char *id,
                       const char *config, size_t config_len,
                       const json_t *diffids, const char *const *refs,
                       sh_err *err);
/* The ID a full reference names now, or NULL (caller frees). */
char *store_ref_lookup(struct image_store *s, const char *full);
/* Tells the event hook (if any): the actor's id and name, with the labels
 * of image_id's config (NULL: none). */
void store_event(struct image_store *s, const char *action, const char *id,
                 const char *name, const char *image_id);
/* The image's record (meta.json: id, layers, size) and config, or NULL. */
json_t *store_load_meta(struct image_store *s, const char *id);
json_t *store_load_config(struct image_store *s, const char *id);
/* The layer's archive as pulled or loaded (layers/<hex>/blob), kept for
 * save and push; caller frees the path. */
char *store_layer_blob(struct image_store *s, const char *diffid);
int64_t store_layer_size(struct image_store *s, const char *diffid);
/* Full references ("docker.io/library/x:tag") naming id; a new array. */
json_t *store_refs_of(struct image_store *s, const char *id);

/* ---- save.c ---- */
/* sha256 ("sha256:<hex>") and size of a file, read in pieces. */
int file_sha256(const char *path, char out[DIGEST_LEN + 1], int64_t *size,
                sh_err *err);

/* ---- layer.c ---- */
typedef void (*layer_progress_fn)(int64_t done, void *ud);
/* Unpacks a tar stream (plain, gzip or zstd) from fd into dir, which must
 * exist and be empty: paths are kept inside dir, AUFS/OCI whiteouts become
 * overlayfs ones, device nodes other than whiteouts are skipped. Computes
 * the diff ID (sha256 of the uncompressed tar) into diffid and, if
 * expect_diffid is given, fails when they differ. *size gets the bytes of
 * regular files. */
int layer_unpack(int fd, const char *dir, const char *expect_diffid,
                 char diffid[DIGEST_LEN + 1], int64_t *size,
                 layer_progress_fn progress, void *ud, sh_err *err);
/* layer_unpack's work in this process: what the child runs (and the
 * fuzzer, which wants no process per input). layer_unpack itself runs it
 * in a child (see image_child_main). */
int layer_unpack_here(int fd, const char *dir, const char *expect_diffid,
                      char diffid[DIGEST_LEN + 1], int64_t *size,
                      layer_progress_fn progress, void *ud, sh_err *err);

/* Writes dir (an overlay upper directory) as a gzip'd layer tar to fd:
 * entries sorted by name, owners numeric, overlayfs whiteouts (0/0
 * character devices) as ".wh.<name>" files and opaque directories
 * (trusted.overlay.opaque=y) with a ".wh..wh..opq" file, as moby's
 * overlay2 driver makes its diffs; paths ("/etc/hosts") for which skip
 * (may be NULL) says true are left out. *entries (may be NULL): the tar's
 * entries. */
int layer_pack(const char *dir, bool (*skip)(const char *path), int fd,
               size_t *entries, sh_err *err);

/* "a/./b//c/" -> "a/b/c", leading '/' dropped; NULL if a component is
 * "..". Caller frees. */
char *path_clean(const char *in);

/* ---- registry.c ---- */
struct reg;
/* A client for one repository at one endpoint (base URL such as
 * "https://registry-1.docker.io" or a mirror's URL). */
struct reg *reg_new(struct image_store *s, const char *base, const char *repo,
                    const struct image_auth *auth);
void reg_free(struct reg *r);
const char *reg_base(const struct reg *r);
/* Registry error codes of the last failed call ("MANIFEST_UNKNOWN"), or
 * NULL for transport errors; used to translate messages like dockerd. */
const char *reg_last_code(const struct reg *r);
/* Whether the registry answered the last call at all (any HTTP status). */
bool reg_answered(const struct reg *r);
/* GET base/v2/ with the credentials (moby's loginV2): 0 on 200, else 401
 * "login attempt to <base>/v2/ failed with status: 401 Unauthorized" or
 * the transport's error. Make r with an empty repository. */
int reg_login(struct reg *r, sh_err *err);
/* GET /v2/<repo>/manifests/<reference> with every supported Accept type;
 * verifies the digest when reference is one. Caller frees body and
 * media_type. */
int reg_get_manifest(struct reg *r, const char *reference, char **body,
                     size_t *len, char **media_type,
                     char digest[DIGEST_LEN + 1], sh_err *err);
int reg_get_blob_mem(struct reg *r, const char *digest, size_t max, char **body,
                     size_t *len, sh_err *err);
typedef void (*reg_progress_fn)(int64_t done, int64_t total, void *ud);
/* Streams a blob into a new file at path, verifying size and digest; on
 * any failure the file is removed. */
int reg_get_blob_file(struct reg *r, const char *digest, int64_t size,
                      const char *path, reg_progress_fn progress, void *ud,
                      sh_err *err);

/* Tokens are asked for push as well as pull. */
void reg_want_push(struct reg *r);
/* One request to the registry: url is a path under the base ("/v2/..")
 * or a full URL (an upload's Location); the body from memory or a file
 * (NULL, 0, NULL: none). One retry after answering an auth challenge.
 * 2xx and 404 return 0 with *status; other answers fill err with the
 * registry's message (401 stays 401). *location (may be NULL) gets the
 * Location header; caller frees. */
int reg_send(struct reg *r, const char *method, const char *url,
             const char *content_type, const void *body, size_t len,
             const char *file, long *status, char **location, sh_err *err);

/* The endpoints for a registry domain: mirrors then the hub for docker.io;
 * http:// for insecure registries, https:// otherwise. NULL-ended. */
char **endpoints_for(struct image_store *s, const char *domain);
void strv_free(char **v);

/* ---- pull.c (manifest helpers shared with load.c) ---- */
/* The host platform as OCI names it ("amd64", "arm64" + "v8"). */
void host_platform(const char **arch, const char **variant);
/* Index: the entry for linux/<host arch> or NULL. Borrowed. */
json_t *index_pick(json_t *index);

#endif
