/* docker commit: Dockerfile instructions applied to an image config (as
 * moby's BuildFromConfig), and a container's upper directory made a layer
 * of a new image (as moby's CommitImage and NewChildImage). */
#include "core/clock.h"
#include "core/util.h"
#include "image/internal.h"
#include "core/jsonx.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>

/* ---- Dockerfile instructions (pure) ---- */

static const char *skip_ws(const char *s) {
  while (*s == ' ' || *s == '\t')
    s++;
  return s;
}

/* ["a", "b"]: the JSON form of CMD, ENTRYPOINT, VOLUME; NULL otherwise. */
static json_t *json_form(const char *rest) {
  if (*rest != '[')
    return NULL;
  json_t *a = json_loads(rest, JSON_DECODE_ANY, NULL);
  if (!json_is_array(a))
    goto no;
  size_t i;
  json_t *e;
  json_array_foreach(a, i, e) {
    if (!json_is_string(e))
      goto no;
  }
  return a;
no:
  json_decref(a);
  return NULL;
}

/* One word of a name=value list: quotes removed, backslash escapes kept
 * as the character they escape. *s moves past it. */
static char *word(const char **s) {
  sh_buf b = {0};
  buf_append(&b, "", 0);
  const char *p = *s;
  char quote = 0;
  for (; *p; p++) {
    if (!quote && (*p == ' ' || *p == '\t'))
      break;
    if (*p == '\\' && p[1] && quote != '\'') {
      buf_append(&b, ++p, 1);
      continue;
    }
    if ((*p == '"' || *p == '\'') && (!quote || quote == *p)) {
      quote = quote ? 0 : *p;
      continue;
    }
    buf_append(&b, p, 1);
  }
  *s = p;
  return b.data;
}

/* ENV and LABEL: "k=v k2='v 2'" or the old "k v w" (one pair). Calls
 * set(k, v) for each pair. */
static int name_values(const char *cmd, const char *rest, json_t *pairs,
                       sh_err *err) {
  const char *p = rest;
  cleanup_free char *first = word(&p);
  if (!strchr(first, '=')) {
    /* the old form: the name, then the rest of the line */
    const char *v = skip_ws(p);
    if (!*first || !*v)
      return sh_error(err, 400, "%s must have two arguments", cmd);
    json_array_append_new(pairs, json_pack("[s,s]", first, v));
    return 0;
  }
  p = rest;
  while (*(p = skip_ws(p))) {
    cleanup_free char *w = word(&p);
    char *eq = strchr(w, '=');
    if (!eq)
      return sh_error(err, 400,
                      "Syntax error - can't find = in \"%s\". Must be of the "
                      "form: name=value",
                      w);
    *eq = '\0';
    if (!*w)
      return sh_error(err, 400, "%s names can not be blank", cmd);
    json_array_append_new(pairs, json_pack("[s,s]", w, eq + 1));
  }
  return 0;
}

static void env_set(json_t *config, const char *k, const char *v) {
  json_t *env = json_object_get(config, "Env");
  if (!json_is_array(env)) {
    env = json_array();
    json_object_set_new(config, "Env", env);
  }
  size_t klen = strlen(k), i;
  json_t *e;
  json_t *kv = json_sprintf("%s=%s", k, v);
  json_array_foreach(env, i, e) {
    const char *s = json_string_value(e);
    if (s && strncmp(s, k, klen) == 0 && s[klen] == '=') {
      json_array_set_new(env, i, kv);
      return;
    }
  }
  json_array_append_new(env, kv);
}

static json_t *object_of(json_t *config, const char *key) {
  json_t *o = json_object_get(config, key);
  if (!json_is_object(o)) {
    o = json_object();
    json_object_set_new(config, key, o);
  }
  return o;
}

/* CMD and ENTRYPOINT: the JSON form, else the shell form under the
 * config's Shell (default /bin/sh -c). */
static json_t *command(const json_t *config, const char *rest) {
  json_t *a = json_form(rest);
  if (a)
    return a;
  const json_t *shell = json_object_get(config, "Shell");
  a = json_array_size(shell) ? json_deep_copy(shell)
                             : json_pack("[s,s]", "/bin/sh", "-c");
  json_array_append_new(a, json_string(rest));
  return a;
}

static int expose(json_t *config, const char *rest, sh_err *err) {
  json_t *ports = object_of(config, "ExposedPorts");
  const char *p = rest;
  while (*(p = skip_ws(p))) {
    cleanup_free char *w = word(&p);
    char proto[8] = "tcp";
    char *slash = strchr(w, '/');
    if (slash) {
      *slash = '\0';
      if (strcmp(slash + 1, "tcp") && strcmp(slash + 1, "udp") &&
          strcmp(slash + 1, "sctp"))
        return sh_error(err, 400, "invalid proto: %s", slash + 1);
      snprintf(proto, sizeof proto, "%s", slash + 1);
    }
    char *end;
    unsigned long lo = strtoul(w, &end, 10), hi = lo;
    if (*end == '-')
      hi = strtoul(end + 1, &end, 10);
    if (!isdigit((unsigned char)*w) || *end || lo == 0 || hi > 65535 || hi < lo)
      return sh_error(err, 400, "invalid containerPort: %s", w);
    for (unsigned long x = lo; x <= hi; x++) {
      char key[24];
      snprintf(key, sizeof key, "%lu/%s", x, proto);
      json_object_set_new(ports, key, json_object());
    }
  }
  return 0;
}

static bool signal_ok(const char *s) {
  char *end;
  long n = strtol(s, &end, 10);
  if (*s && !*end)
    return n > 0 && n <= 64;
  const char *name = strncasecmp(s, "SIG", 3) == 0 ? s + 3 : s;
  for (int i = 1; i < NSIG; i++) {
    const char *a = sigabbrev_np(i);
    if (a && strcasecmp(a, name) == 0)
      return true;
  }
  return false;
}

/* One instruction; *cmd_set tells ENTRYPOINT whether a CMD came before
 * it in these changes (else it clears Cmd, as the builder does). */
static int change_one(json_t *config, const char *line, bool *cmd_set,
                      sh_err *err) {
  const char *p = skip_ws(line);
  size_t n = strcspn(p, " \t");
  char ins[32];
  for (size_t i = 0; i < n && i < sizeof ins - 1; i++)
    ins[i] = (char)tolower((unsigned char)p[i]);
  ins[n < sizeof ins - 1 ? n : sizeof ins - 1] = '\0';
  const char *rest = skip_ws(p + n);
  static const char *const valid[] = {
      "cmd",     "entrypoint", "healthcheck", "env",    "expose", "label",
      "onbuild", "stopsignal", "user",        "volume", "workdir"};
  bool ok = false;
  for (size_t i = 0; i < ARRAY_SIZE(valid); i++)
    ok = ok || strcmp(ins, valid[i]) == 0;
  if (!ok)
    return sh_error(err, 400, "%s is not a valid change command", ins);
  if (!*rest && strcmp(ins, "cmd") && strcmp(ins, "entrypoint"))
    return sh_error(err, 400, "%s requires at least one argument", ins);

  if (!strcmp(ins, "cmd")) {
    json_object_set_new(config, "Cmd", command(config, rest));
    *cmd_set = true;
  } else if (!strcmp(ins, "entrypoint")) {
    json_object_set_new(config, "Entrypoint",
                        *rest ? command(config, rest) : json_null());
    if (!*cmd_set)
      json_object_set_new(config, "Cmd", json_null());
  } else if (!strcmp(ins, "env") || !strcmp(ins, "label")) {
    bool env = !strcmp(ins, "env");
    cleanup_json json_t *pairs = json_array();
    if (name_values(env ? "ENV" : "LABEL", rest, pairs, err) < 0)
      return -1;
    size_t i;
    json_t *kv;
    json_array_foreach(pairs, i, kv) {
      const char *k = json_string_value(json_array_get(kv, 0));
      const char *v = json_string_value(json_array_get(kv, 1));
      if (env)
        env_set(config, k, v);
      else
        json_object_set_new(object_of(config, "Labels"), k, json_string(v));
    }
  } else if (!strcmp(ins, "expose")) {
    return expose(config, rest, err);
  } else if (!strcmp(ins, "onbuild")) {
    size_t m = strcspn(rest, " \t");
    if (m == 7 && strncasecmp(rest, "ONBUILD", 7) == 0)
      return sh_error(err, 400,
                      "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
    if ((m == 4 && strncasecmp(rest, "FROM", 4) == 0) ||
        (m == 10 && strncasecmp(rest, "MAINTAINER", 10) == 0))
      return sh_error(err, 400, "%.*s isn't allowed as an ONBUILD trigger",
                      (int)m, rest);
    json_t *ob = json_object_get(config, "OnBuild");
    if (!json_is_array(ob)) {
      ob = json_array();
      json_object_set_new(config, "OnBuild", ob);
    }
    json_array_append_new(ob, json_string(rest));
  } else if (!strcmp(ins, "stopsignal")) {
    if (!signal_ok(rest))
      return sh_error(err, 400, "Invalid signal: %s", rest);
    json_object_set_new(config, "StopSignal", json_string(rest));
  } else if (!strcmp(ins, "user")) {
    json_object_set_new(config, "User", json_string(rest));
  } else if (!strcmp(ins, "volume")) {
    json_t *vols = object_of(config, "Volumes");
    cleanup_json json_t *list = json_form(rest);
    if (!list) {
      list = json_array();
      const char *q = rest;
      while (*(q = skip_ws(q))) {
        char *w = word(&q);
        json_array_append_new(list, json_string(w));
        free(w);
      }
    }
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
      const char *path = json_string_value(v);
      while (*path == ' ')
        path++;
      if (!*path)
        return sh_error(err, 400,
                        "VOLUME specified can not be an empty string");
      json_object_set_new(vols, path, json_object());
    }
  } else if (!strcmp(ins, "workdir")) {
    const char *cur = json_string_value(json_object_get(config, "WorkingDir"));
    char *wd = rest[0] == '/'
                   ? xstrdup(rest)
                   : xasprintf("%s/%s", cur && *cur ? cur : "", rest);
    /* path.Join's cleaning is not needed for what users type; the
     * doubled slash of a relative join under "/" is. */
    if (wd[0] == '/' && wd[1] == '/')
      memmove(wd, wd + 1, strlen(wd));
    json_object_set_new(config, "WorkingDir", json_string(wd));
    free(wd);
  } else { /* healthcheck */
    return sh_error(err, 501,
                    "HEALTHCHECK in docker commit --change is not supported "
                    "by shoal yet");
  }
  return 0;
}

int image_config_changes(json_t *config, const char *const *changes,
                         sh_err *err) {
  /* dockerd joins the changes with newlines and parses them as one
   * Dockerfile: a line ending in a backslash goes on. */
  sh_buf all = {0};
  buf_append(&all, "", 0);
  for (size_t i = 0; changes && changes[i]; i++)
    buf_printf(&all, "%s\n", changes[i]);
  bool cmd_set = false;
  int rc = 0;
  sh_buf line = {0};
  buf_append(&line, "", 0);
  for (char *p = all.data; rc == 0 && *p;) {
    char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    while (len && (p[len - 1] == '\r' || p[len - 1] == ' '))
      len--;
    bool cont = len && p[len - 1] == '\\';
    buf_append(&line, p, cont ? len - 1 : len);
    p = nl ? nl + 1 : p + strlen(p);
    if (cont && *p)
      continue;
    const char *s = skip_ws(line.data);
    if (*s && *s != '#')
      rc = change_one(config, s, &cmd_set, err);
    buf_reset(&line);
    buf_append(&line, "", 0);
  }
  buf_free(&line);
  buf_free(&all);
  return rc;
}

/* moby's merge(): a config given in the commit request is completed from
 * the container's. */
void image_config_merge(json_t *user, const json_t *ctr) {
  static const char *const strs[] = {"User", "WorkingDir", "StopSignal"};
  for (size_t i = 0; i < ARRAY_SIZE(strs); i++)
    if (!*jx_str(user, strs[i], "") && json_object_get(ctr, strs[i]))
      json_object_set(user, strs[i], json_object_get(ctr, strs[i]));
  static const char *const objs[] = {"ExposedPorts", "Labels", "Volumes"};
  for (size_t i = 0; i < ARRAY_SIZE(objs); i++) {
    const json_t *from = json_object_get(ctr, objs[i]);
    if (!json_is_object(from))
      continue;
    json_t *to = object_of(user, objs[i]);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)from, k, v) {
      if (!json_object_get(to, k))
        json_object_set(to, k, v);
    }
  }
  const json_t *env = json_object_get(ctr, "Env");
  size_t i;
  json_t *e;
  json_array_foreach(env, i, e) {
    const char *s = json_string_value(e);
    if (!s)
      continue;
    size_t kl = strcspn(s, "=");
    bool found = false;
    size_t j;
    json_t *u;
    json_array_foreach(json_object_get(user, "Env"), j, u) {
      const char *t = json_string_value(u);
      if (t && strncmp(t, s, kl) == 0 && (t[kl] == '=' || t[kl] == '\0'))
        found = true;
    }
    if (!found) {
      json_t *ue = json_object_get(user, "Env");
      if (!json_is_array(ue)) {
        ue = json_array();
        json_object_set_new(user, "Env", ue);
      }
      json_array_append(ue, e);
    }
  }
  if (!json_array_size(json_object_get(user, "Entrypoint"))) {
    if (!json_array_size(json_object_get(user, "Cmd")) &&
        json_object_get(ctr, "Cmd"))
      json_object_set(user, "Cmd", json_object_get(ctr, "Cmd"));
    if (json_is_null(json_object_get(user, "Entrypoint")) ||
        !json_object_get(user, "Entrypoint"))
      if (json_object_get(ctr, "Entrypoint"))
        json_object_set(user, "Entrypoint", json_object_get(ctr, "Entrypoint"));
  }
  if (!json_object_get(user, "Healthcheck") &&
      json_object_get(ctr, "Healthcheck"))
    json_object_set(user, "Healthcheck", json_object_get(ctr, "Healthcheck"));
}

/* ---- the new image ---- */

/* Packs the upper directory into tmp/blob, unpacks it into tmp/diff: the
 * layer as the store keeps a pulled one. *diffid "" for an empty diff. */
static int make_layer(struct image_store *s, const struct image_commit_opts *o,
                      char **tmp, char diffid[DIGEST_LEN + 1], int64_t *size,
                      sh_err *err) {
  diffid[0] = '\0';
  if (store_tmpdir(s, "commit", tmp, err) < 0)
    return -1;
  cleanup_free char *blob = xasprintf("%s/blob", *tmp);
  cleanup_free char *diff = xasprintf("%s/diff", *tmp);
  cleanup_fd int fd = open(blob, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    return sh_errno(err, errno, "commit: %s", blob);
  size_t entries = 0;
  if (layer_pack(o->upper, o->skip, fd, &entries, err) < 0)
    return -1;
  if (entries == 0)
    return 0;
  if (lseek(fd, 0, SEEK_SET) < 0 || mkdir(diff, 0755) < 0)
    return sh_errno(err, errno, "commit: %s", diff);
  return layer_unpack(fd, diff, NULL, diffid, size, NULL, NULL, err);
}

int image_commit(struct image_store *s, const struct image_commit_opts *o,
                 char **image_id, sh_err *err) {
  cleanup_json json_t *parent = store_load_config(s, o->parent);
  if (!json_is_object(parent))
    return sh_error(err, 404, "No such image: %s", o->parent);
  cleanup_free char *tmp = NULL;
  char diffid[DIGEST_LEN + 1];
  int64_t size = 0;
  if (make_layer(s, o, &tmp, diffid, &size, err) < 0) {
    if (tmp)
      rm_rf(tmp);
    return -1;
  }
  bool empty = !diffid[0];
  if (!empty) {
    bool present;
    store_layer_acquire(s, diffid, &present);
    if (present) {
      rm_rf(tmp);
    } else if (store_layer_commit(s, diffid, tmp, size, err) < 0) {
      rm_rf(tmp);
      return -1;
    }
  } else {
    rm_rf(tmp);
  }

  /* NewChildImage: the parent's platform and history, one step more. */
  char now[64];
  clock_format_rfc3339(clock_wall_ns(), now, sizeof now);
  json_t *diffids = json_deep_copy(jx_get(parent, "rootfs.diff_ids"));
  if (!json_is_array(diffids)) {
    json_decref(diffids);
    diffids = json_array();
  }
  if (!empty)
    json_array_append_new(diffids, json_string(diffid));
  json_t *history = json_deep_copy(json_object_get(parent, "history"));
  if (!json_is_array(history)) {
    json_decref(history);
    history = json_array();
  }
  sh_buf by = {0};
  buf_append(&by, "", 0);
  size_t i;
  json_t *a;
  json_array_foreach(json_object_get(o->container_config, "Cmd"), i, a)
      buf_printf(&by, "%s%s", i ? " " : "", json_string_value(a));
  json_t *step = json_pack("{s:s, s:s}", "created", now, "created_by", by.data);
  buf_free(&by);
  if (o->author && *o->author)
    json_object_set_new(step, "author", json_string(o->author));
  if (o->comment && *o->comment)
    json_object_set_new(step, "comment", json_string(o->comment));
  if (empty)
    json_object_set_new(step, "empty_layer", json_true());
  json_array_append_new(history, step);

  cleanup_json json_t *cfg = json_object();
  static const char *const platform[] = {"architecture", "variant", "os",
                                         "os.version", "os.features"};
  for (size_t k = 0; k < ARRAY_SIZE(platform); k++)
    if (json_object_get(parent, platform[k]))
      json_object_set(cfg, platform[k], json_object_get(parent, platform[k]));
  if (o->author && *o->author)
    json_object_set_new(cfg, "author", json_string(o->author));
  json_object_set_new(cfg, "config", json_deep_copy(o->config));
  json_object_set_new(cfg, "container", json_string(o->container_id));
  json_object_set_new(cfg, "container_config",
                      json_deep_copy(o->container_config));
  json_object_set_new(cfg, "created", json_string(now));
  json_object_set_new(cfg, "history", history);
  json_object_set_new(
      cfg, "rootfs",
      json_pack("{s:s, s:O}", "type", "layers", "diff_ids", diffids));
  cleanup_free char *bytes = jx_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS, NULL);
  char id[DIGEST_LEN + 1];
  digest_of(bytes, strlen(bytes), id);

  cleanup_free char *full = NULL;
  if (o->ref && *o->ref) {
    struct image_ref r;
    if (image_ref_parse(o->ref, &r, err) < 0) {
      json_decref(diffids);
      if (!empty)
        store_layer_release(s, diffid);
      return -1;
    }
    full = image_ref_full(&r);
    image_ref_free(&r);
  }
  const char *refs[] = {full, NULL};
  int rc = store_image_commit(s, id, bytes, strlen(bytes), diffids,
                              full ? refs : NULL, err);
  json_decref(diffids);
  if (!empty)
    store_layer_release(s, diffid);
  if (rc < 0)
    return -1;
  if (full)
    store_event(s, "tag", id, o->ref, id);
  *image_id = xstrdup(id);
  return 0;
}
