/* Secrets and configs of tasks on a tmpfs per task (see secretfs.h). */
#include "agent/secretfs.h"

#include "core/b64.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/mount.h>
#include <sys/stat.h>

/* A target as dockerd joins it (filepath.Join: ".." and "." resolved,
 * never above the root). */
static char *target_path(const char *base, const char *name) {
  cleanup_free char *joined =
      name[0] == '/' ? xstrdup(name) : xasprintf("%s/%s", base, name);
  char *out = xmalloc(strlen(joined) + 2);
  size_t n = 0;
  char *save = NULL;
  for (char *seg = strtok_r(joined, "/", &save); seg;
       seg = strtok_r(NULL, "/", &save)) {
    if (strcmp(seg, ".") == 0)
      continue;
    if (strcmp(seg, "..") == 0) {
      while (n > 0 && out[n - 1] != '/')
        n--;
      if (n > 0)
        n--;
      continue;
    }
    out[n++] = '/';
    size_t l = strlen(seg);
    memcpy(out + n, seg, l);
    n += l;
  }
  if (n == 0)
    out[n++] = '/';
  out[n] = '\0';
  return out;
}

static const json_t *held_find(const json_t *arr, const char *id) {
  size_t i;
  json_t *o;
  json_array_foreach(arr, i, o) {
    if (strcmp(jx_str(o, "ID", ""), id) == 0)
      return o;
  }
  return NULL;
}

int secretfs_plan(const json_t *task, const json_t *held, json_t **out,
                  sh_err *err) {
  json_t *plan = json_array();
  for (int k = 0; k < 2; k++) {
    const char *kind = k ? "config" : "secret";
    const char *refs =
        k ? "Spec.ContainerSpec.Configs" : "Spec.ContainerSpec.Secrets";
    const json_t *have = json_object_get(held, k ? "Configs" : "Secrets");
    size_t i;
    json_t *r;
    json_array_foreach(jx_get(task, refs), i, r) {
      const json_t *file = json_object_get(r, "File");
      if (!json_is_object(file))
        continue; /* refused at service create */
      const char *id = jx_str(r, k ? "ConfigID" : "SecretID", "");
      const json_t *obj = held_find(have, id);
      if (!obj) {
        json_decref(plan);
        return sh_error(err, 404, "%s %s not found", kind,
                        jx_str(r, k ? "ConfigName" : "SecretName", id));
      }
      const char *name = jx_str(file, "Name", "");
      char fname[32];
      snprintf(fname, sizeof fname, "%c%zu", k ? 'c' : 's', i);
      cleanup_free char *target =
          target_path(k ? "/" : "/run/secrets", *name ? name : id);
      int64_t mode = jx_int(file, "Mode", 0444);
      json_array_append_new(
          plan,
          json_pack("{s:s, s:s, s:I, s:I, s:I, s:s}", "File", fname, "Target",
                    target, "UID", (json_int_t)atoll(jx_str(file, "UID", "0")),
                    "GID", (json_int_t)atoll(jx_str(file, "GID", "0")), "Mode",
                    (json_int_t)(mode & 07777), "Data",
                    jx_str(obj, "Data", "")));
    }
  }
  *out = plan;
  return 0;
}

static char *task_dir(const char *exec_root, const char *task_id) {
  return xasprintf("%s/secrets/%s", exec_root, task_id);
}

static int write_one(const char *dir, const json_t *f, sh_err *err) {
  unsigned char *data = NULL;
  size_t len = 0;
  if (b64_decode(jx_str(f, "Data", ""), &data, &len, err) < 0)
    return -1;
  cleanup_free char *path = xasprintf("%s/%s", dir, jx_str(f, "File", ""));
  int rc = -1;
  int fd =
      open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    sh_errno(err, errno, "create %s", path);
    goto out;
  }
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(fd, data + off, len - off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0) {
      sh_errno(err, errno, "write %s", path);
      goto out;
    }
    off += (size_t)w;
  }
  if (fchown(fd, (uid_t)jx_int(f, "UID", 0), (gid_t)jx_int(f, "GID", 0)) < 0 ||
      fchmod(fd, (mode_t)jx_int(f, "Mode", 0444)) < 0) {
    sh_errno(err, errno, "set owner and mode of %s", path);
    goto out;
  }
  rc = 0;
out:
  if (fd >= 0)
    close(fd);
  OPENSSL_cleanse(data, len);
  free(data);
  return rc;
}

int secretfs_setup(const char *exec_root, const char *task_id,
                   const json_t *plan, char **dir_out, sh_err *err) {
  cleanup_free char *parent = xasprintf("%s/secrets", exec_root);
  if (mkdir_p(parent, 0700, err) < 0)
    return -1;
  cleanup_free char *dir = task_dir(exec_root, task_id);
  secretfs_teardown(exec_root, task_id, NULL); /* a failed attempt's */
  if (mkdir(dir, 0700) < 0 && errno != EEXIST)
    return sh_errno(err, errno, "mkdir %s", dir);
  /* Only root on the node may look in; the container sees each file
   * through its own bind mount. */
  if (mount("tmpfs", dir, "tmpfs", MS_NODEV | MS_NOSUID | MS_NOEXEC,
            "mode=0700") < 0) {
    sh_errno(err, errno, "mount tmpfs on %s", dir);
    rmdir(dir);
    return -1;
  }
  size_t i;
  json_t *f;
  json_array_foreach(plan, i, f) {
    if (write_one(dir, f, err) < 0) {
      secretfs_teardown(exec_root, task_id, NULL);
      return -1;
    }
  }
  *dir_out = STEAL_POINTER(&dir);
  return 0;
}

int secretfs_teardown(const char *exec_root, const char *task_id, sh_err *err) {
  cleanup_free char *dir = task_dir(exec_root, task_id);
  if (umount2(dir, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
    return sh_errno(err, errno, "unmount %s", dir);
  if (rmdir(dir) < 0 && errno != ENOENT)
    return sh_errno(err, errno, "remove %s", dir);
  return 0;
}

void secretfs_sweep(const char *exec_root, const json_t *keep) {
  cleanup_free char *parent = xasprintf("%s/secrets", exec_root);
  DIR *d = opendir(parent);
  if (!d)
    return;
  json_t *gone = json_array();
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] != '.' && !json_object_get(keep, e->d_name))
      json_array_append_new(gone, json_string(e->d_name));
  }
  closedir(d);
  size_t i;
  json_t *id;
  json_array_foreach(gone, i, id)
      secretfs_teardown(exec_root, json_string_value(id), NULL);
  json_decref(gone);
}
