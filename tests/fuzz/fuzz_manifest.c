/* libFuzzer target over image manifests, indexes (manifest lists) and
 * image configs, as image/ decodes them. The input is up to 8 JSON
 * documents separated by lines "---": the first is the archive's
 * index.json (OCI layout) or, when it is a JSON array, the manifest.json
 * of a docker-archive; the others are the blobs (nested indexes,
 * manifests, configs) it refers to. The target packs them into a tar and
 * loads it with image_load into a fresh image store (the real decoding of
 * all three kinds; pulls decode the same documents through the same
 * store), then reads every loaded image back (list, inspect, layers).
 *
 * So that mutated inputs still reach the deep parts, placeholders are
 * filled in before packing: "@N@" (N = 1..7) becomes the sha256 digest of
 * document N (documents refer only to later ones), "@L@" the digest
 * (= diff ID) of a small valid layer tar that the archive also holds, at
 * blobs/sha256/<hex> and at "layer.tar". In a docker-archive, document N
 * is the member "N" (so "Config": "1").
 *
 * Invariant checked: when a load returns, no layer stays pinned. */
#include "core/err.h"
#include "core/util.h"
#include "image/internal.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_DOCS 8
#define SEP "\n---\n"

static char base[64];
static char *layer_tar;
static size_t layer_len;
static char layer_digest[DIGEST_LEN + 1];

static void add_member(struct archive *a, const char *name, const void *buf,
                       size_t len) {
  struct archive_entry *e = archive_entry_new();
  archive_entry_set_pathname(e, name);
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0644);
  archive_entry_set_size(e, (la_int64_t)len);
  archive_entry_set_mtime(e, 1700000000, 0);
  if (archive_write_header(a, e) != ARCHIVE_OK ||
      (len && archive_write_data(a, buf, len) != (la_ssize_t)len))
    abort();
  archive_entry_free(e);
}

static void add_dir(struct archive *a, const char *name) {
  struct archive_entry *e = archive_entry_new();
  archive_entry_set_pathname(e, name);
  archive_entry_set_filetype(e, AE_IFDIR);
  archive_entry_set_perm(e, 0755);
  if (archive_write_header(a, e) != ARCHIVE_OK)
    abort();
  archive_entry_free(e);
}

static void cleanup(void) {
  rm_rf(base);
}

static void setup(void) {
  const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  snprintf(base, sizeof base, "%s/shoal-fuzz-manifest-XXXXXX", tmp);
  if (!mkdtemp(base))
    abort();
  atexit(cleanup);
  /* The layer every image may use: one directory, one file. */
  size_t cap = 64 * 1024, used = 0;
  layer_tar = xmalloc(cap);
  struct archive *a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (archive_write_open_memory(a, layer_tar, cap, &used) != ARCHIVE_OK)
    abort();
  add_dir(a, "etc");
  add_member(a, "etc/hello", "hello\n", 6);
  archive_write_close(a);
  archive_write_free(a);
  layer_len = used;
  digest_of(layer_tar, layer_len, layer_digest);
}

/* Replaces "@N@" for N > self and "@L@" in doc; new string. */
static char *fill(const char *doc, size_t len, int self, int ndocs,
                  char digests[MAX_DOCS][DIGEST_LEN + 1], size_t *out_len) {
  sh_buf b = {0};
  for (size_t i = 0; i < len;) {
    if (doc[i] == '@' && i + 2 < len && doc[i + 2] == '@') {
      char c = doc[i + 1];
      if (c == 'L') {
        buf_append(&b, layer_digest, strlen(layer_digest));
        i += 3;
        continue;
      }
      int n = c - '0';
      if (n > self && n < ndocs) {
        buf_append(&b, digests[n], strlen(digests[n]));
        i += 3;
        continue;
      }
    }
    buf_append(&b, doc + i, 1);
    i++;
  }
  *out_len = b.len;
  if (!b.data)
    return xstrdup("");
  return b.data;
}

static int load(struct image_store *s, const uint8_t *data, size_t size) {
  /* Split into documents. */
  const char *docs[MAX_DOCS];
  size_t lens[MAX_DOCS];
  int ndocs = 0;
  const char *p = (const char *)data, *end = p + size;
  while (ndocs < MAX_DOCS) {
    const char *sep = ndocs == MAX_DOCS - 1
                          ? NULL
                          : memmem(p, (size_t)(end - p), SEP, strlen(SEP));
    docs[ndocs] = p;
    lens[ndocs] = sep ? (size_t)(sep - p) : (size_t)(end - p);
    ndocs++;
    if (!sep)
      break;
    p = sep + strlen(SEP);
  }
  char digests[MAX_DOCS][DIGEST_LEN + 1];
  char *filled[MAX_DOCS];
  size_t flen[MAX_DOCS];
  for (int i = ndocs - 1; i >= 0; i--) {
    filled[i] = fill(docs[i], lens[i], i, ndocs, digests, &flen[i]);
    digest_of(filled[i], flen[i], digests[i]);
  }
  json_error_t je;
  json_t *top = json_loadb(filled[0], flen[0], 0, &je);
  bool docker = json_is_array(top);
  if (json_is_object(top))
    index_pick(top);
  json_decref(top);

  int fd = memfd_create("archive", MFD_CLOEXEC);
  if (fd < 0)
    abort();
  struct archive *a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (archive_write_open_fd(a, fd) != ARCHIVE_OK)
    abort();
  if (docker) {
    add_member(a, "manifest.json", filled[0], flen[0]);
    for (int i = 1; i < ndocs; i++) {
      char name[8];
      snprintf(name, sizeof name, "%d", i);
      add_member(a, name, filled[i], flen[i]);
    }
  } else {
    static const char layout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
    add_member(a, "oci-layout", layout, strlen(layout));
    add_member(a, "index.json", filled[0], flen[0]);
    add_dir(a, "blobs");
    add_dir(a, "blobs/sha256");
    for (int i = 1; i < ndocs; i++) {
      cleanup_free char *name = xasprintf("blobs/sha256/%s", digests[i] + 7);
      add_member(a, name, filled[i], flen[i]);
    }
  }
  cleanup_free char *lname = xasprintf("blobs/sha256/%s", layer_digest + 7);
  add_member(a, lname, layer_tar, layer_len);
  add_member(a, "layer.tar", layer_tar, layer_len);
  archive_write_close(a);
  archive_write_free(a);
  for (int i = 0; i < ndocs; i++)
    free(filled[i]);
  lseek(fd, 0, SEEK_SET);

  json_t *loaded = NULL;
  sh_err err = {0};
  int r = image_load(s, fd, NULL, NULL, &loaded, &err);
  close(fd);
  if (r < 0 && (!err.status || !err.msg[0]))
    abort(); /* a failure says why */
  if (getenv("FUZZ_VERBOSE"))
    fprintf(stderr, "load: %s (%zu images)\n", r < 0 ? err.msg : "ok",
            json_array_size(loaded));
  if (s->npins != 0) {
    fprintf(stderr, "%zu layer pins left after a load (%s)\n", s->npins,
            r < 0 ? err.msg : "ok");
    abort();
  }
  size_t i;
  json_t *id;
  json_array_foreach(loaded, i, id) {
    json_t *out = NULL;
    if (image_inspect(s, json_string_value(id), &out, &err) < 0)
      abort(); /* what was just loaded is there */
    json_decref(out);
    char **dirs = NULL;
    size_t n = 0;
    json_t *config = NULL;
    if (image_layers(s, json_string_value(id), &dirs, &n, &config, &err) == 0) {
      image_layers_free(dirs, n);
      json_decref(config);
    }
  }
  json_decref(loaded);
  json_t *list = NULL;
  if (image_list(s, &list, &err) == 0)
    json_decref(list);
  return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!base[0])
    setup();
  cleanup_free char *root = xasprintf("%s/store", base);
  rm_rf(root);
  struct image_store *s = NULL;
  sh_err err = {0};
  if (image_store_open(root, NULL, &s, &err) < 0) {
    fprintf(stderr, "fuzz: %s\n", err.msg);
    abort();
  }
  load(s, data, size);
  image_store_close(s);
  return 0;
}
