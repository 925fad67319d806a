/* Local volumes: directories under <data-root>/volumes and their metadata. */
#include "volume/volume.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/id.h"
#include "core/jsonx.h"
#include "core/util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Creates and removes of the same name must not interleave (a task's
 * create finding a half-removed directory). */
static pthread_mutex_t vol_lock = PTHREAD_MUTEX_INITIALIZER;

bool volume_name_valid(const char *n) {
  if (!n || !isalnum((unsigned char)n[0]) || strlen(n) < 2)
    return false;
  for (const char *p = n + 1; *p; p++)
    if (!isalnum((unsigned char)*p) && !strchr("_.-", *p))
      return false;
  return true;
}

static char *vol_dir(const char *root, const char *name) {
  return xasprintf("%s/volumes/%s", root, name);
}

char *volume_data_path(const char *root, const char *name) {
  return xasprintf("%s/volumes/%s/_data", root, name);
}

static char *meta_path(const char *root, const char *name) {
  return xasprintf("%s/volumes/%s/shoal.json", root, name);
}

/* Go's time.RFC3339 (seconds, "Z" in UTC), as dockerd shows CreatedAt. */
static json_t *created_at(int64_t ns) {
  char full[64];
  clock_format_rfc3339(ns - ns % 1000000000, full, sizeof full);
  char *dot = strchr(full, '.');
  if (dot)
    snprintf(dot, sizeof full - (size_t)(dot - full), "Z");
  return json_string(full);
}

/* The Volume object for an existing volume directory; NULL if none. */
static json_t *load(const char *root, const char *name) {
  cleanup_free char *dir = vol_dir(root, name);
  cleanup_free char *data = volume_data_path(root, name);
  struct stat st;
  if (!volume_name_valid(name) || stat(data, &st) < 0 || !S_ISDIR(st.st_mode))
    return NULL;
  cleanup_free char *mp = meta_path(root, name);
  cleanup_free char *raw = NULL;
  size_t len = 0;
  cleanup_json json_t *meta = NULL;
  if (read_file(mp, &raw, &len, NULL) == 0)
    jx_parse_object(raw, len, &meta, NULL);
  int64_t ns = jx_int(meta, "CreatedNs", 0);
  if (!ns && stat(dir, &st) == 0)
    ns = (int64_t)st.st_mtim.tv_sec * 1000000000LL;
  json_t *labels = jx_get(meta, "Labels");
  json_t *opts = jx_get(meta, "Options");
  return json_pack("{s:o, s:s, s:O, s:s, s:s, s:O, s:s}", "CreatedAt",
                   created_at(ns), "Driver", "local", "Labels",
                   json_is_object(labels) ? labels : json_null(), "Mountpoint",
                   data, "Name", name, "Options",
                   json_is_object(opts) ? opts : json_null(), "Scope", "local");
}

static int no_such(const char *name, sh_err *err) {
  return sh_error(err, 404, "get %s: no such volume", name);
}

int volume_get(const char *root, const char *name, json_t **out, sh_err *err) {
  json_t *v = load(root, name);
  if (!v)
    return no_such(name, err);
  *out = v;
  return 0;
}

static int check_strings(const char *what, const char *name, const json_t *o,
                         sh_err *err) {
  if (!o || json_is_null(o))
    return 0;
  if (!json_is_object(o))
    return sh_error(err, 400, "create %s: %s must be an object of strings",
                    name, what);
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)o, k, v) {
    if (!json_is_string(v))
      return sh_error(err, 400, "create %s: %s %s must be a string", name, what,
                      k);
  }
  return 0;
}

static void (*hook_fn)(const char *name, const char *action, void *ud);
static void *hook_ud;

void volume_set_hook(void (*fn)(const char *name, const char *action, void *ud),
                     void *ud) {
  hook_fn = fn;
  hook_ud = ud;
}

int volume_create(const char *root, const char *name, const json_t *labels,
                  const json_t *opts, json_t **out, sh_err *err) {
  char anon[65];
  bool made = false;
  bool anonymous = !name || !*name;
  if (anonymous) {
    id_new_hex(anon);
    name = anon;
  } else if (!volume_name_valid(name)) {
    return sh_error(err, 400,
                    "create %s: \"%s\" includes invalid characters for a local "
                    "volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are "
                    "allowed. If you intended to pass a host directory, use "
                    "absolute path",
                    name, name);
  }
  if (check_strings("labels", name, labels, err) < 0 ||
      check_strings("options", name, opts, err) < 0)
    return -1;
  if (json_object_size(opts) > 0) {
    const char *k = json_object_iter_key(json_object_iter((json_t *)opts));
    return sh_error(err, 400,
                    "create %s: driver option \"%s\" is not supported: shoal's "
                    "local volumes are plain directories (no type, device or "
                    "o mounts)",
                    name, k);
  }
  pthread_mutex_lock(&vol_lock);
  json_t *v = load(root, name);
  if (!v) {
    cleanup_free char *data = volume_data_path(root, name);
    cleanup_free char *mp = meta_path(root, name);
    json_t *lab = json_is_object(labels) ? json_deep_copy(labels) : NULL;
    if (anonymous) {
      if (!lab)
        lab = json_object();
      json_object_set_new(lab, VOLUME_ANON_LABEL, json_string(""));
    }
    cleanup_json json_t *meta =
        json_pack("{s:I}", "CreatedNs", (json_int_t)clock_wall_ns());
    if (lab)
      json_object_set_new(meta, "Labels", lab);
    cleanup_free char *s = jx_dump(meta);
    if (mkdir_p(data, 0755, err) < 0 ||
        write_file_atomic(mp, s, strlen(s), 0600, err) < 0) {
      pthread_mutex_unlock(&vol_lock);
      return sh_err_wrap(err, "create %s", name);
    }
    v = load(root, name);
    made = v != NULL;
  }
  pthread_mutex_unlock(&vol_lock);
  if (!v)
    return sh_error(err, 500, "create %s: volume vanished", name);
  if (made && hook_fn)
    hook_fn(jx_str(v, "Name", name), "create", hook_ud);
  if (out)
    *out = v;
  else
    json_decref(v);
  return 0;
}

static int cmp_name(const void *a, const void *b) {
  return strcmp(jx_str(*(json_t *const *)a, "Name", ""),
                jx_str(*(json_t *const *)b, "Name", ""));
}

int volume_list(const char *root, json_t **out, sh_err *err) {
  cleanup_free char *dir = xasprintf("%s/volumes", root);
  json_t *all = json_array();
  DIR *d = opendir(dir);
  if (!d) {
    if (errno == ENOENT) {
      *out = all;
      return 0;
    }
    json_decref(all);
    return sh_error(err, 500, "list volumes: %s: %s", dir, strerror(errno));
  }
  struct dirent *e;
  while ((e = readdir(d))) {
    json_t *v = e->d_name[0] != '.' ? load(root, e->d_name) : NULL;
    if (v)
      json_array_append_new(all, v);
  }
  closedir(d);
  size_t n = json_array_size(all);
  json_t **items = xcalloc(n ? n : 1, sizeof *items);
  for (size_t i = 0; i < n; i++)
    items[i] = json_incref(json_array_get(all, i));
  qsort(items, n, sizeof *items, cmp_name);
  json_array_clear(all);
  for (size_t i = 0; i < n; i++)
    json_array_append_new(all, items[i]);
  free(items);
  *out = all;
  return 0;
}

static int rm_one(const char *p, const struct stat *st, int flag,
                  struct FTW *f) {
  (void)st;
  (void)f;
  return flag == FTW_DP ? rmdir(p) : unlink(p);
}

int volume_remove(const char *root, const char *name, const json_t *users,
                  bool force, sh_err *err) {
  cleanup_json json_t *v = load(root, name);
  if (!v)
    return force ? 0 : no_such(name, err);
  if (json_array_size(users) > 0) {
    sh_buf b = {0};
    size_t i;
    json_t *u;
    json_array_foreach(users, i, u)
        buf_printf(&b, "%s%s", i ? ", " : "", json_string_value(u));
    int rc =
        sh_error(err, 409, "remove %s: volume is in use - [%s]", name, b.data);
    buf_free(&b);
    return rc;
  }
  cleanup_free char *dir = vol_dir(root, name);
  pthread_mutex_lock(&vol_lock);
  int rc = nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  pthread_mutex_unlock(&vol_lock);
  if (rc != 0)
    return sh_error(err, 500, "remove %s: %s", name, strerror(errno));
  if (hook_fn)
    hook_fn(name, "destroy", hook_ud);
  return 0;
}
