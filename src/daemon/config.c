/* daemon.json with dockerd's rules (daemon/config in moby): see config.h. */
#include "daemon/config.h"

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "daemon/daemon.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

enum ktype { K_BOOL, K_STR, K_STRV, K_INT, K_POOLS };

/* In the order dockerd reports conflicts: by flag name. */
static const struct key {
  const char *file, *flag;
  enum ktype type;
  bool reload;
} keys[] = {
    {"data-root", "data-root", K_STR, false},
    {"debug", "debug", K_BOOL, true},
    {"default-address-pools", "default-address-pool", K_POOLS, false},
    {"dns", "dns", K_STRV, false},
    {"exec-root", "exec-root", K_STR, false},
    {"group", "group", K_STR, false},
    {"hosts", "host", K_STRV, false},
    {"insecure-registries", "insecure-registry", K_STRV, true},
    {"labels", "label", K_STRV, true},
    {"log-level", "log-level", K_STR, true},
    {"max-concurrent-downloads", "max-concurrent-downloads", K_INT, true},
    {"pidfile", "pidfile", K_STR, false},
    {"registry-mirrors", "registry-mirror", K_STRV, true},
    {"tls", "tls", K_BOOL, false},
    {"tlscacert", "tlscacert", K_STR, false},
    {"tlscert", "tlscert", K_STR, false},
    {"tlskey", "tlskey", K_STR, false},
    {"tlsverify", "tlsverify", K_BOOL, false},
};

/* dockerd's keys shoald has no way to honour: refused by name rather than
 * taken and ignored. */
static const char *const unsupported[] = {
    "allow-nondistributable-artifacts",
    "authorization-plugins",
    "bip",
    "bridge",
    "builder",
    "cgroup-parent",
    "containerd",
    "containerd-namespace",
    "cri-containerd",
    "default-cgroupns-mode",
    "default-gateway",
    "default-ipc-mode",
    "default-runtime",
    "default-shm-size",
    "default-ulimits",
    "dns-opts",
    "dns-search",
    "exec-opts",
    "experimental",
    "features",
    "fixed-cidr",
    "fixed-cidr-v6",
    "icc",
    "init",
    "init-path",
    "ip",
    "ip-forward",
    "ip-masq",
    "ip6tables",
    "iptables",
    "ipv6",
    "live-restore",
    "log-driver",
    "log-format",
    "log-opts",
    "max-concurrent-uploads",
    "max-download-attempts",
    "metrics-addr",
    "mtu",
    "no-new-privileges",
    "node-generic-resources",
    "oom-score-adjust",
    "proxies",
    "raw-logs",
    "runtimes",
    "seccomp-profile",
    "selinux-enabled",
    "shutdown-timeout",
    "storage-driver",
    "storage-opts",
    "swarm-default-advertise-addr",
    "userland-proxy",
    "userns-remap",
};

static const struct key *find_key(const char *name) {
  for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
    if (!strcmp(keys[i].file, name))
      return &keys[i];
  return NULL;
}

static bool is_unsupported(const char *name) {
  for (size_t i = 0; i < ARRAY_SIZE(unsupported); i++)
    if (!strcmp(unsupported[i], name))
      return true;
  return false;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The object's keys matching pick, sorted, joined by ", ". NULL: none. */
static char *keys_where(const json_t *obj, bool (*pick)(const char *)) {
  size_t n = 0, i = 0;
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)obj, k, v) n += pick(k);
  if (!n)
    return NULL;
  const char **v2 = xcalloc(n, sizeof *v2);
  json_object_foreach((json_t *)obj, k, v) if (pick(k)) v2[i++] = k;
  qsort(v2, n, sizeof *v2, cmp_str);
  sh_buf b = {0};
  for (i = 0; i < n; i++)
    buf_printf(&b, "%s%s", i ? ", " : "", v2[i]);
  free(v2);
  return b.data;
}

static bool pick_unknown(const char *k) {
  return !find_key(k) && !is_unsupported(k);
}

/* Go's %v of a decoded JSON value, as dockerd prints the file's side. */
static void go_fmt(sh_buf *b, const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_STRING:
    buf_printf(b, "%s", json_string_value(v));
    break;
  case JSON_INTEGER:
    buf_printf(b, "%lld", (long long)json_integer_value(v));
    break;
  case JSON_REAL:
    buf_printf(b, "%g", json_real_value(v));
    break;
  case JSON_TRUE:
    buf_printf(b, "true");
    break;
  case JSON_FALSE:
    buf_printf(b, "false");
    break;
  case JSON_NULL:
    buf_printf(b, "<nil>");
    break;
  case JSON_ARRAY: {
    buf_printf(b, "[");
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
      if (i)
        buf_printf(b, " ");
      go_fmt(b, e);
    }
    buf_printf(b, "]");
    break;
  }
  case JSON_OBJECT: {
    /* Go prints a map's keys sorted. */
    size_t n = json_object_size(v), i = 0;
    const char **ks = xcalloc(n + 1, sizeof *ks);
    const char *k;
    json_t *e;
    json_object_foreach((json_t *)v, k, e) ks[i++] = k;
    qsort(ks, n, sizeof *ks, cmp_str);
    buf_printf(b, "map[");
    for (i = 0; i < n; i++) {
      buf_printf(b, "%s%s:", i ? " " : "", ks[i]);
      go_fmt(b, json_object_get(v, ks[i]));
    }
    buf_printf(b, "]");
    free(ks);
    break;
  }
  }
}

static const char *json_kind(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_STRING:
    return "string";
  case JSON_INTEGER:
  case JSON_REAL:
    return "number";
  case JSON_TRUE:
  case JSON_FALSE:
    return "bool";
  case JSON_ARRAY:
    return "array";
  default:
    return "object";
  }
}

/* encoding/json's refusal of a value of the wrong type. */
static int type_check(const struct key *k, const json_t *v, sh_err *err) {
  static const char *const go[] = {"bool", "string", "[]string", "int",
                                   "[]*address.NetworkToSplit"};
  bool ok = json_is_null(v);
  switch (k->type) {
  case K_BOOL:
    ok |= json_is_boolean(v);
    break;
  case K_STR:
    ok |= json_is_string(v);
    break;
  case K_INT:
    ok |= json_is_integer(v);
    break;
  case K_STRV:
  case K_POOLS:
    if (json_is_array(v)) {
      size_t i;
      json_t *e;
      ok = true;
      json_array_foreach(v, i, e) {
        if (k->type == K_STRV ? !json_is_string(e) : !json_is_object(e))
          return sh_error(err, 400,
                          "invalid JSON: json: cannot unmarshal %s into Go "
                          "struct field Config.%s of type %s",
                          json_kind(e), k->file,
                          k->type == K_STRV ? "string"
                                            : "address.NetworkToSplit");
      }
    }
    break;
  }
  if (ok)
    return 0;
  return sh_error(err, 400,
                  "invalid JSON: json: cannot unmarshal %s into Go struct "
                  "field Config.%s of type %s",
                  json_kind(v), k->file, go[k->type]);
}

int daemon_config_check_label(const char *label, sh_err *err) {
  if (!strchr(label, '='))
    return sh_error(err, 400, "bad attribute format: %s", label);
  if (!strncasecmp(label, "com.docker.", 11) ||
      !strncasecmp(label, "io.docker.", 10) ||
      !strncasecmp(label, "org.dockerproject.", 18))
    return sh_error(err, 400,
                    "label %s is not allowed: the namespaces com.docker.*, "
                    "io.docker.*, and org.dockerproject.* are reserved for "
                    "internal use",
                    label);
  return 0;
}

int daemon_config_check_labels(char *const *labels, sh_err *err) {
  for (size_t i = 0; labels && labels[i]; i++) {
    size_t ki = strcspn(labels[i], "=");
    if (!labels[i][ki])
      continue;
    for (size_t j = 0; j < i; j++) {
      size_t kj = strcspn(labels[j], "=");
      if (kj == ki && !strncmp(labels[i], labels[j], ki) &&
          strcmp(labels[i] + ki, labels[j] + kj) != 0)
        return sh_error(err, 400, "conflict labels for %s and %s", labels[i],
                        labels[j]);
    }
  }
  return 0;
}

int daemon_config_norm_mirror(const char *url, char **out, sh_err *err) {
  *out = NULL;
  const char *sep = strstr(url, "://");
  if (!sep || sep == url)
    return sh_error(err, 400,
                    "invalid mirror: no scheme specified for \"%s\": must use "
                    "either 'https://' or 'http://'",
                    url);
  size_t sl = (size_t)(sep - url);
  if (!((sl == 4 && !strncmp(url, "http", 4)) ||
        (sl == 5 && !strncmp(url, "https", 5))))
    return sh_error(err, 400,
                    "invalid mirror: unsupported scheme \"%.*s\" in \"%s\": "
                    "must use either 'https://' or 'http://'",
                    (int)sl, url, url);
  if (strpbrk(sep + 3, "?#"))
    return sh_error(err, 400,
                    "invalid mirror: query or fragment at end of the URI "
                    "\"%s\"",
                    url);
  const char *host = sep + 3;
  const char *at = strchr(host, '@');
  if (at && at < host + strcspn(host, "/"))
    return sh_error(err, 400,
                    "invalid mirror: username/password not allowed in URI "
                    "\"%s\"",
                    url);
  if (!*host || *host == '/')
    return sh_error(err, 400, "invalid mirror: \"%s\" is not a valid URI", url);
  size_t n = strlen(url);
  while (n > 0 && url[n - 1] == '/')
    n--;
  *out = xasprintf("%.*s/", (int)n, url);
  return 0;
}

int daemon_config_check_log_level(const char *level, sh_err *err) {
  static const char *const ok[] = {"panic", "fatal", "error", "warn",
                                   "info",  "debug", "trace"};
  for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
    if (!strcasecmp(level, ok[i]))
      return 0;
  return sh_error(err, 400, "invalid logging level: %s", level);
}

/* An IPv4 CIDR that is its own network address. */
static int check_base(const char *base, sh_err *err) {
  char ip[INET_ADDRSTRLEN + 1];
  const char *slash = strchr(base, '/');
  struct in_addr a;
  char *end;
  long len = slash ? strtol(slash + 1, &end, 10) : -1;
  if (!slash || (size_t)(slash - base) >= sizeof ip || !slash[1] || *end ||
      len < 0 || len > 32)
    return sh_error(err, 400, "invalid CIDR address: %s", base);
  memcpy(ip, base, (size_t)(slash - base));
  ip[slash - base] = '\0';
  if (inet_pton(AF_INET, ip, &a) != 1)
    return sh_error(err, 400,
                    "invalid CIDR address: %s (shoald's pools are IPv4)", base);
  return (int)len;
}

static int make_pool(const char *base, long long size, json_t **out,
                     sh_err *err) {
  int len = check_base(base, err);
  if (len < 0)
    return -1;
  /* A bridge needs a network, a gateway, a host and a broadcast address. */
  if (size < len || size > 30)
    return sh_error(err, 400,
                    "invalid pools configuration: size %lld must be between "
                    "the base's prefix length %d and 30",
                    size, len);
  *out = json_pack("{s:s, s:I}", "Base", base, "Size", (json_int_t)size);
  return 0;
}

int daemon_config_check_pool(const json_t *pool, json_t **out, sh_err *err) {
  *out = NULL;
  const json_t *b = NULL, *s = NULL;
  const char *k;
  json_t *v;
  /* encoding/json matches field names case-insensitively. */
  json_object_foreach((json_t *)pool, k, v) {
    if (!strcasecmp(k, "base"))
      b = v;
    else if (!strcasecmp(k, "size"))
      s = v;
    else
      return sh_error(err, 400,
                      "invalid default-address-pools: unknown field \"%s\" "
                      "(base and size only)",
                      k);
  }
  if (!json_is_string(b) || !json_is_integer(s))
    return sh_error(err, 400,
                    "invalid default-address-pools: each pool needs \"base\" "
                    "(a CIDR) and \"size\" (a prefix length)");
  return make_pool(json_string_value(b), (long long)json_integer_value(s), out,
                   err);
}

int daemon_config_parse_pool(const char *flag, json_t **out, sh_err *err) {
  *out = NULL;
  cleanup_free char *copy = xstrdup(flag);
  const char *base = NULL, *size = NULL;
  char *save = NULL;
  for (char *f = strtok_r(copy, ",", &save); f;
       f = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(f, '=');
    if (!eq)
      return sh_error(err, 400, "invalid field '%s' must be a key=value pair",
                      f);
    *eq = '\0';
    if (!strcasecmp(f, "base"))
      base = eq + 1;
    else if (!strcasecmp(f, "size"))
      size = eq + 1;
    else
      return sh_error(err, 400, "unexpected key '%s' in '%s'", f, flag);
  }
  char *end = NULL;
  long long sz = size ? strtoll(size, &end, 10) : -1;
  if (!base || !size || !*size || *end)
    return sh_error(err, 400,
                    "invalid pools configuration: '%s' needs base=CIDR and "
                    "size=N",
                    flag);
  return make_pool(base, sz, out, err);
}

/* Values beyond their types: dockerd's Validate and the registry's. */
static int check_values(const json_t *file, sh_err *err) {
  const json_t *v = json_object_get(file, "log-level");
  if (json_is_string(v) &&
      daemon_config_check_log_level(json_string_value(v), err) < 0)
    return -1;
  v = json_object_get(file, "max-concurrent-downloads");
  if (json_is_integer(v) && json_integer_value(v) < 0)
    return sh_error(err, 400, "invalid max concurrent downloads: %lld",
                    (long long)json_integer_value(v));
  size_t i;
  json_t *e;
  json_array_foreach(json_object_get(file, "labels"), i,
                     e) if (daemon_config_check_label(json_string_value(e),
                                                      err) < 0) return -1;
  json_array_foreach(json_object_get(file, "registry-mirrors"), i, e) {
    cleanup_free char *m = NULL;
    if (daemon_config_norm_mirror(json_string_value(e), &m, err) < 0)
      return -1;
  }
  json_array_foreach(json_object_get(file, "default-address-pools"), i, e) {
    json_t *p;
    if (daemon_config_check_pool(e, &p, err) < 0)
      return -1;
    json_decref(p);
  }
  json_array_foreach(json_object_get(file, "dns"), i, e) {
    struct in_addr a;
    if (inet_pton(AF_INET, json_string_value(e), &a) != 1)
      return sh_error(err, 400, "%s is not an ip address",
                      json_string_value(e));
  }
  const json_t *labels = json_object_get(file, "labels");
  if (json_array_size(labels)) {
    size_t n = json_array_size(labels);
    char **lv = xcalloc(n + 1, sizeof *lv);
    json_array_foreach(labels, i, e) lv[i] = (char *)json_string_value(e);
    int rc = daemon_config_check_labels(lv, err);
    free(lv);
    if (rc < 0)
      return -1;
  }
  return 0;
}

static int check_file(const json_t *file, const json_t *flags, sh_err *err) {
  cleanup_free char *unknown = keys_where(file, pick_unknown);
  if (unknown)
    return sh_error(err, 400,
                    "the following directives don't match any configuration "
                    "option: %s",
                    unknown);
  cleanup_free char *unsup = keys_where(file, is_unsupported);
  if (unsup)
    return sh_error(err, 400,
                    "the following directives are dockerd's but shoald does "
                    "not support them: %s",
                    unsup);
  sh_buf c = {0};
  for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
    const json_t *fv = json_object_get(file, keys[i].file);
    const json_t *flag = json_object_get(flags, keys[i].file);
    if (!fv || !flag)
      continue;
    buf_printf(&c, "%s%s: (from flag: %s, from file: ", c.len ? ", " : "",
               keys[i].file, json_string_value(flag));
    go_fmt(&c, fv);
    buf_printf(&c, ")");
  }
  if (c.len) {
    sh_error(err, 400,
             "the following directives are specified both as a flag and in "
             "the configuration file: %s",
             c.data);
    buf_free(&c);
    return -1;
  }
  buf_free(&c);
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)file, k,
                      v) if (type_check(find_key(k), v, err) < 0) return -1;
  return check_values(file, err);
}

int daemon_config_read(const char *path, bool must_exist, const json_t *flags,
                       json_t **out, sh_err *err) {
  *out = NULL;
  cleanup_free char *data = NULL;
  size_t len = 0;
  if (read_file(path, &data, &len, err) < 0) {
    if (err->status == 404 && !must_exist)
      return 0;
    return sh_err_wrap(
        err, "unable to configure the Docker daemon with file %s", path);
  }
  /* dockerd takes UTF-8 with or without a byte order mark. */
  const char *p = data;
  if (len >= 3 && !memcmp(p, "\xef\xbb\xbf", 3))
    p += 3, len -= 3;
  while (len && isspace((unsigned char)*p))
    p++, len--;
  json_t *file;
  if (!len) {
    file = json_object();
  } else {
    json_error_t je;
    file = json_loadb(p, len, JSON_REJECT_DUPLICATES, &je);
    if (!file)
      return sh_error(err, 400,
                      "unable to configure the Docker daemon with file %s: "
                      "invalid JSON: %s (line %d, column %d)",
                      path, je.text, je.line, je.column);
    if (!json_is_object(file)) {
      json_decref(file);
      return sh_error(err, 400,
                      "unable to configure the Docker daemon with file %s: "
                      "invalid JSON: json: cannot unmarshal a value that is "
                      "not an object into Go value of type "
                      "map[string]interface {}",
                      path);
    }
  }
  if (check_file(file, flags, err) < 0) {
    json_decref(file);
    return sh_err_wrap(
        err, "unable to configure the Docker daemon with file %s", path);
  }
  *out = file;
  return 0;
}

static void set_str(char **dst, const json_t *v) {
  free(*dst);
  *dst = xstrdup(json_string_value(v));
}

/* A NULL-ended copy of a JSON string array. */
static char **strv_of(const json_t *a) {
  char **v = xcalloc(json_array_size(a) + 1, sizeof *v);
  size_t i;
  json_t *e;
  json_array_foreach(a, i, e) v[i] = xstrdup(json_string_value(e));
  return v;
}

static void strv_replace(char ***dst, char **v) {
  for (char **p = *dst; p && *p; p++)
    free(*p);
  free(*dst);
  *dst = v;
}

void daemon_config_apply(struct shoald_config *cfg, const json_t *file,
                         bool reload) {
  if (reload)
    cfg->max_downloads = 0; /* dockerd resets it to its default first */
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)file, k, v) {
    const struct key *key = find_key(k);
    if (!key || json_is_null(v) || (reload && !key->reload))
      continue;
    if (!strcmp(k, "data-root"))
      set_str(&cfg->data_root, v);
    else if (!strcmp(k, "exec-root"))
      set_str(&cfg->exec_root, v);
    else if (!strcmp(k, "pidfile"))
      set_str(&cfg->pidfile, v);
    else if (!strcmp(k, "log-level"))
      set_str(&cfg->log_level, v);
    else if (!strcmp(k, "debug"))
      cfg->debug = json_is_true(v);
    else if (!strcmp(k, "max-concurrent-downloads"))
      cfg->max_downloads = (int)json_integer_value(v);
    else if (!strcmp(k, "hosts")) {
      strv_replace(&cfg->hosts, strv_of(v));
      cfg->nhosts = (int)json_array_size(v);
    } else if (!strcmp(k, "dns"))
      strv_replace(&cfg->dns, strv_of(v));
    else if (!strcmp(k, "labels"))
      strv_replace(&cfg->labels, strv_of(v));
    else if (!strcmp(k, "insecure-registries"))
      strv_replace(&cfg->insecure, strv_of(v));
    else if (!strcmp(k, "registry-mirrors")) {
      char **m = strv_of(v);
      for (char **p = m; *p; p++) {
        char *n = NULL;
        if (daemon_config_norm_mirror(*p, &n, NULL) == 0) {
          free(*p);
          *p = n;
        }
      }
      strv_replace(&cfg->mirrors, m);
    } else if (!strcmp(k, "default-address-pools")) {
      json_t *pools = json_array();
      size_t i;
      json_t *e;
      json_array_foreach(v, i, e) {
        json_t *p = NULL;
        if (daemon_config_check_pool(e, &p, NULL) == 0)
          json_array_append_new(pools, p);
      }
      json_decref(cfg->pools);
      cfg->pools = pools;
    }
    /* group and tls*: read by the program, which owns those settings. */
  }
}

void daemon_config_free(struct shoald_config *cfg) {
  free(cfg->data_root);
  free(cfg->exec_root);
  free(cfg->pidfile);
  free(cfg->log_level);
  free(cfg->config_file);
  strv_replace(&cfg->hosts, NULL);
  strv_replace(&cfg->mirrors, NULL);
  strv_replace(&cfg->insecure, NULL);
  strv_replace(&cfg->dns, NULL);
  strv_replace(&cfg->labels, NULL);
  json_decref(cfg->pools);
  cfg->data_root = cfg->exec_root = cfg->pidfile = NULL;
  cfg->log_level = cfg->config_file = NULL;
  cfg->pools = NULL;
  cfg->nhosts = 0;
}

void daemon_config_apply_log_level(const struct shoald_config *cfg) {
  enum log_level l = LOG_INFO;
  const char *s = cfg->log_level ? cfg->log_level : "info";
  if (!strcasecmp(s, "debug") || !strcasecmp(s, "trace"))
    l = LOG_DEBUG;
  else if (!strcasecmp(s, "warn"))
    l = LOG_WARN;
  else if (!strcasecmp(s, "error") || !strcasecmp(s, "fatal") ||
           !strcasecmp(s, "panic"))
    l = LOG_ERROR;
  if (cfg->debug)
    l = LOG_DEBUG;
  log_set_level(l);
}
