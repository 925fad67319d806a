/* Images: references, a Registry HTTP API v2 client, and a content store
 * with layers unpacked once each for overlayfs.
 *
 * Every call that talks to a registry or unpacks layers BLOCKS: call it
 * from a thread of the daemon's own, never from the libuv loop or libuv's
 * thread pool (libraft's disk work lives there). A store is safe to use from
 * many threads at once: concurrent pulls of the same image or layer share
 * the work and never corrupt the store.
 *
 * On disk, under the root given to image_store_open():
 *   blobs/sha256/<hex>        manifests and image configs (verified)
 *   layers/<diffid hex>/diff  an unpacked layer, overlayfs whiteouts
 *   layers/<diffid hex>/link  its short name; l/<name> -> ../layers/<hex>/diff
 *   layers/<diffid hex>/blob  the layer's archive as pulled or loaded (for
 *                             save and push)
 *   images/<id hex>.json      image record (layers, manifest, size, times)
 *   repositories.json         references ("docker.io/library/nginx:latest")
 *                             -> image ID, written atomically
 *   tmp/                      downloads and unpacking in progress
 *
 * Errors follow core/err.h with the status and message dockerd gives. */
#ifndef SHOAL_IMAGE_IMAGE_H
#define SHOAL_IMAGE_IMAGE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* ---- helper processes --------------------------------------------- */

/* A layer is unpacked by the running program re-executed from
 * /proc/self/exe under this argv[0] (as dockerd's docker-untar), so every
 * program that pulls, loads or commits images calls image_child_main
 * first thing in main. */
#define IMAGE_UNPACK_ARGV0 "shoal-layer-unpack"
/* When argv[0] is IMAGE_UNPACK_ARGV0: does the child's work and returns
 * its exit code. Otherwise -1 (carry on with main). */
int image_child_main(int argc, char **argv);

/* ---- references ---------------------------------------------------- */

/* A normalized reference, as Docker's distribution/reference makes it:
 * "nginx" -> domain "docker.io", path "library/nginx", tag "latest". */
struct image_ref {
  char *domain; /* "docker.io", "host:5000", "[::1]:5000" */
  char *path;   /* "library/nginx", "a/b" */
  char *tag;    /* NULL when only a digest was given */
  char *digest; /* "sha256:<64 hex>" or NULL */
};

/* Parses and normalizes; a tag defaults to "latest" unless a digest is
 * given. Bad input is a 400 "invalid reference format" (with Docker's
 * detail, e.g. "...: repository name (library/Nginx) must be lowercase"). */
int image_ref_parse(const char *s, struct image_ref *out, sh_err *err);
void image_ref_free(struct image_ref *r);
/* "docker.io/library/nginx:latest" (tag and/or "@digest"); caller frees. */
char *image_ref_full(const struct image_ref *r);
/* The short form Docker shows: "nginx:latest", "host:5000/a/b@sha256:..".
 * with_tag false leaves the tag and digest off ("nginx"). Caller frees. */
char *image_ref_familiar(const struct image_ref *r, bool with_tag);
/* Whether ref names one image for good: an image ID ("sha256:<hex>") or
 * a reference with a digest. A tag may move on its registry. */
bool image_ref_pinned(const char *ref);

/* ---- store -------------------------------------------------------- */

struct image_opts {
  /* dockerd's --registry-mirror: URLs ("http://10.0.0.1:5000") tried in
   * order for docker.io images before registry-1.docker.io. NULL-ended. */
  const char *const *mirrors;
  /* dockerd's --insecure-registry: "host:port" (or "host") reached over
   * plain HTTP. 127.0.0.0/8 and localhost are insecure always, as in
   * dockerd. NULL-ended. */
  const char *const *insecure;
  /* Seconds; 0 means the defaults (connect 15 s, stall 60 s). */
  long connect_timeout, stall_timeout;
  /* dockerd's max-concurrent-downloads: layers of one pull fetched at
   * once; 0 means dockerd's default, 3. */
  int max_downloads;
};

struct image_store;

/* Opens (creating if needed) the store at root. opts is copied. */
int image_store_open(const char *root, const struct image_opts *opts,
                     struct image_store **out, sh_err *err);
void image_store_close(struct image_store *s);
/* SIGHUP's reload: the registry settings (as in image_opts) for the pulls
 * that start from now on; pulls under way keep what they began with. */
void image_store_reconfigure(struct image_store *s,
                             const struct image_opts *opts);
/* The absolute root; image_layers() paths are relative to it. */
const char *image_store_root(const struct image_store *s);

/* Registry credentials, e.g. decoded from an X-Registry-Auth header. */
struct image_auth {
  char *username, *password, *serveraddress, *identitytoken;
};
/* Decodes X-Registry-Auth (base64url or base64 of a JSON object
 * {username, password, serveraddress, identitytoken}). Empty input gives
 * empty credentials. Bad input is a 400. */
int image_auth_decode(const char *header, struct image_auth *out, sh_err *err);
void image_auth_free(struct image_auth *a);

/* POST /auth (`docker login`): checks the credentials against the
 * registry named by auth->serveraddress (a host[:port], with or without
 * a scheme and path; empty or Docker Hub's names mean Docker Hub), never
 * against a mirror, which must not see the upstream's credentials (moby).
 * 401 with moby's "login attempt to ... failed with status: ..." when the
 * registry refuses them. Blocking. */
int image_login(struct image_store *s, const struct image_auth *auth,
                sh_err *err);

/* Progress events, shaped as the Engine API's pull and load streams:
 * {"status":"Pulling fs layer","progressDetail":{},"id":"<12 hex>"},
 * {"status":"Downloading","progressDetail":{"current":N,"total":M},
 *  "progress":"[==>  ] 1.2MB/4.4MB","id":..}, "Verifying Checksum",
 * "Download complete", "Extracting", "Pull complete", "Already exists",
 * {"status":"Digest: sha256:.."}, {"status":"Status: Downloaded newer image
 * for nginx:latest"}; for loads {"stream":"Loaded image: busybox:latest\n"}.
 * Called from the pulling thread (one call at a time per pull); the event
 * is borrowed. */
typedef void (*image_progress_fn)(const json_t *event, void *ud);

/* Pulls ref (a tag or digest; a tag-less name means :latest) for this host's
 * platform (linux/<uname arch>). auth may be NULL. *image_id gets
 * "sha256:<hex>" (caller frees). Pulling what is already here only checks
 * the manifest ("Status: Image is up to date for ..."). */
int image_pull(struct image_store *s, const char *ref,
               const struct image_auth *auth, image_progress_fn cb, void *ud,
               char **image_id, sh_err *err);

/* Finds a local image by full or short ID ("sha256:ab12..", "ab12"), name
 * ("nginx", "nginx:1.2") or name@digest. 404 "No such image: <ref>". */
int image_resolve(struct image_store *s, const char *ref, char **image_id,
                  sh_err *err);

/* Engine API ImageInspect JSON (GET /images/{name}/json). */
int image_inspect(struct image_store *s, const char *ref, json_t **out,
                  sh_err *err);
/* Engine API ImageSummary array (GET /images/json), newest first. */
int image_list(struct image_store *s, json_t **out, sh_err *err);

/* What the node's containers use, for removals, prunes and disk usage:
 * the store does not know containers, the caller (the API, reading the
 * executor) does. */
struct image_user {
  const char *container_id; /* 64 hex */
  const char *image_id;     /* "sha256:.." */
  bool running;
  /* The container's overlay lower dirs (absolute, under the store's root:
   * "<root>/l/<link>"), NULL-ended; NULL: none known. Layers named here are
   * never deleted, even when their image is. */
  const char *const *layer_dirs;
};
struct image_users {
  const struct image_user *v;
  size_t n;
  /* image_store_gen() read before the containers were listed. A removal
   * or prune given a list older than a container create that finished
   * since returns 1: list again and retry (that container may be
   * missing from the list, and its layers would go). */
  uint64_t gen;
};
/* Counts container creates finished (image_unpin). */
uint64_t image_store_gen(struct image_store *s);
/* Pins an image's layers while a container is made from them, so that a
 * removal meanwhile keeps them; 404 "No such image: <id>" when the image
 * is gone. image_unpin once the container exists on disk (or its create
 * failed). */
struct image_pin;
int image_pin(struct image_store *s, const char *image_id,
              struct image_pin **out, sh_err *err);
void image_unpin(struct image_pin *p); /* NULL: nothing */
static inline void image_unpinp(struct image_pin **p) {
  image_unpin(*p);
}
#define cleanup_image_pin __attribute__((cleanup(image_unpinp)))

/* DELETE /images/{name}, with dockerd's rules (daemon/images/
 * image_delete.go): a reference untags only itself (and the digest
 * references of its repository once no tag of it is left); the image goes
 * when no reference is left and no container uses it. A reference whose
 * image a container uses and that is the image's only one is refused
 * without force (409 "conflict: unable to remove repository reference ...
 * (must force) - container <c> is using its referenced image <i>"); by ID,
 * a running container's image is never deleted ("(cannot be forced) -
 * image is being used by running container <c>"), a stopped container's
 * and one with several repositories only with force. Layers no image or
 * container uses any more are deleted. out: [{"Untagged":..},{"Deleted":
 * ..}]. users may be NULL (no containers). 1: users is stale (see
 * image_users.gen), nothing done. */
int image_remove(struct image_store *s, const char *ref, bool force,
                 const struct image_users *users, json_t **out, sh_err *err);

/* POST /images/prune: deletes dangling images (no reference; all: every
 * image) that no container uses and that match (NULL: all) — match gets
 * the image's ImageSummary. out: {"ImagesDeleted": [..] or null,
 * "SpaceReclaimed": bytes}. Unused layers go too. 1: users is stale. */
int image_prune(struct image_store *s, bool all,
                bool (*match)(const json_t *summary, void *ud), void *ud,
                const struct image_users *users, json_t **out, sh_err *err);

/* GET /system/df's image part: {"LayersSize": bytes of every layer on
 * disk, "Images": ImageSummary array with Containers and SharedSize (the
 * bytes of layers other images share)}. */
int image_disk_usage(struct image_store *s, const struct image_users *users,
                     json_t **out, sh_err *err);

/* GET /images/{name}/history: the config's history, newest first, as
 * dockerd's ImageHistory (Id "<missing>" but for the top, Size of the
 * layer each non-empty step made, Tags on the top). */
int image_history(struct image_store *s, const char *ref, json_t **out,
                  sh_err *err);

/* Adds a reference (e.g. "myrepo:v2") to a local image. */
int image_tag(struct image_store *s, const char *source, const char *target,
              sh_err *err);

/* GET /images/get: writes a docker-archive tar of the images (names or
 * IDs; NULL-ended) through write (< 0 stops), which is first called once
 * every image and layer archive was found: manifest.json, repositories, the
 * configs and the layers as their registry or archive blobs
 * (blobs/sha256/<hex>), which `docker load` takes. An image stored before shoal
 * kept its layers' archives cannot be saved (500 saying so). */
int image_save(struct image_store *s, const char *const *refs,
               int (*write)(void *arg, const void *buf, size_t len), void *arg,
               sh_err *err);

/* POST /images/{name}/push: pushes a local reference (tag given or every
 * tag of the repository) to its registry with auth, reporting progress as
 * dockerd's push stream ("The push refers to repository [..]", "Pushing",
 * "Pushed", "Layer already exists", "<tag>: digest: sha256:.. size: N"). */
int image_push(struct image_store *s, const char *name, const char *tag,
               const struct image_auth *auth, image_progress_fn cb, void *ud,
               sh_err *err);

/* Image events (dockerd's LogImageEvent): pull, tag, untag, delete, load,
 * save, push, with the image's ID (or the reference, for pull and push),
 * its name and labels. Called from whichever thread does the work, maybe
 * under the store's lock: fn must not call the store. labels may be NULL;
 * borrowed. */
typedef void (*image_event_fn)(const char *action, const char *id,
                               const char *name, const json_t *labels,
                               void *ud);
void image_store_set_events(struct image_store *s, image_event_fn fn, void *ud);

/* POST /images/load: reads a tar stream (optionally compressed) from fd:
 * docker-archive (manifest.json + layer tars) or OCI archive (index.json +
 * blobs/). Reports {"stream":"Loaded image: X\n"} (or "Loaded image ID:
 * sha256:..") through cb; *loaded (may be NULL) gets the IDs. */
int image_load(struct image_store *s, int fd, image_progress_fn cb, void *ud,
               json_t **loaded, sh_err *err);

/* GET /distribution/{name}/json: asks the registry, returns
 * {"Descriptor":{"mediaType","digest","size"},"Platforms":[...]}. */
int image_distribution(struct image_store *s, const char *ref,
                       const struct image_auth *auth, json_t **out,
                       sh_err *err);

/* ---- docker commit (commit.c) ---- */

/* Applies `docker commit --change` lines (Dockerfile instructions, joined
 * and parsed as one Dockerfile: a trailing backslash continues a line) to
 * config (an image config's "config" object), as moby's BuildFromConfig:
 * CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME,
 * WORKDIR; another instruction is 400 "<instr> is not a valid change
 * command" (moby's words, instruction lower-cased), HEALTHCHECK 501.
 * Pure. changes: NULL-ended, may be NULL. */
int image_config_changes(json_t *config, const char *const *changes,
                         sh_err *err);
/* moby's merge(): fields the commit request's config leaves empty come
 * from the container's config ctr. Pure. */
void image_config_merge(json_t *config, const json_t *ctr);

struct image_commit_opts {
  const char *parent;             /* the container's image, "sha256:.." */
  const char *upper;              /* the container's overlay upper directory */
  bool (*skip)(const char *path); /* paths ("/etc/hosts") never committed */
  const json_t *config;           /* the new image's "config" */
  const json_t *container_config; /* the container's Config: history's
                                     created_by is its Cmd */
  const char *container_id;
  const char *author, *comment; /* NULL or "": none */
  const char *ref;              /* "repo:tag" to tag it; NULL: untagged */
};
/* POST /commit: the upper directory becomes a layer (a gzip'd tar with
 * OCI whiteouts kept as the layer's blob, unpacked beside it), the new
 * image's config is the parent's platform, rootfs and history plus that
 * layer and a history step (empty_layer when nothing changed), tagged
 * with ref. *image_id "sha256:.." (caller frees). Blocking. */
int image_commit(struct image_store *s, const struct image_commit_opts *o,
                 char **image_id, sh_err *err);

/* For the executor: the image's layers as overlayfs lower dirs, top-most
 * first (the order lowerdir= wants), each a short link "l/<26 chars>"
 * relative to image_store_root() so that a mount made from that directory
 * fits 128 layers in one page; and the image config (the whole config
 * JSON: "config", "rootfs", "os", ...). Free with image_layers_free. */
int image_layers(struct image_store *s, const char *image_id, char ***dirs,
                 size_t *n, json_t **config, sh_err *err);
void image_layers_free(char **dirs, size_t n);

#endif
