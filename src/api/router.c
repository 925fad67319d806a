/* Version negotiation and routing, as dockerd: an optional /vX.Y prefix
 * (1.24 <= X.Y <= 1.47), then the route. */
#include "api/api.h"

#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/util.h"
#include "daemon/daemon.h"
#include "http/server.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <unistd.h>

void api_reply_json(struct http_req *req, int status, json_t *body) {
  cleanup_free char *s = jx_dump(body);
  json_decref(body);
  http_respond_json(req, status, s);
}

void api_reply_err(struct http_req *req, const sh_err *err) {
  http_respond_error(req, err->status ? err->status : 500,
                     err->msg[0] ? err->msg : "internal error");
}

int api_body(struct http_req *req, json_t **out, sh_err *err) {
  const char *ct = http_req_header(req, "Content-Type");
  if (req->body_len == 0)
    return sh_error(err, 400, "request body is empty");
  if (ct && !str_has_prefix(ct, "application/json"))
    return sh_error(err, 400,
                    "unsupported Content-Type header (%s): must be "
                    "'application/json'",
                    ct);
  return jx_parse_object(req->body, req->body_len, out, err);
}

char **api_query_all(const char *raw, const char *key) {
  size_t kl = strlen(key), n = 0;
  char **v = xcalloc(strlen(raw) / 2 + 2, sizeof *v);
  for (const char *p = raw; *p;) {
    size_t l = strcspn(p, "&");
    if (l > kl && !strncmp(p, key, kl) && p[kl] == '=') {
      char *d = xmalloc(l);
      size_t k = 0;
      for (size_t i = kl + 1; i < l; i++) {
        unsigned x;
        if (p[i] == '%' && i + 2 < l && sscanf(p + i + 1, "%2x", &x) == 1) {
          d[k++] = (char)x;
          i += 2;
        } else {
          d[k++] = p[i] == '+' ? ' ' : p[i];
        }
      }
      d[k] = '\0';
      v[n++] = d;
    }
    p += l + (p[l] == '&');
  }
  return v;
}

bool api_query_bool(struct http_req *req, const char *name) {
  cleanup_free char *v = http_req_query(req, name);
  if (!v)
    return false;
  return !(strcmp(v, "") == 0 || strcmp(v, "0") == 0 ||
           strcasecmp(v, "false") == 0 || strcasecmp(v, "no") == 0 ||
           strcasecmp(v, "none") == 0);
}

/* "/v1.47/info" -> version 1.47 and "/info". Returns -1 when the prefix is
 * there but not a version. */
static int split_version(const char *path, int *maj, int *min,
                         const char **rest) {
  *rest = path;
  if (path[0] != '/' || path[1] != 'v' || !isdigit((unsigned char)path[2]))
    return 0;
  const char *p = path + 2;
  char *end;
  long a = strtol(p, &end, 10);
  if (*end != '.')
    return -1;
  long b = strtol(end + 1, &end, 10);
  if (*end != '/' && *end != '\0')
    return -1;
  if (a < 0 || a > 99 || b < 0 || b > 999)
    return -1;
  *maj = (int)a;
  *min = (int)b;
  *rest = *end ? end : "/";
  return 1;
}

void api_handle(struct http_req *req, void *ud) {
  struct shoald *d = ud;
  struct api_call c = {
      .d = d, .req = req, .version_major = 1, .version_minor = 47};
  int v = split_version(req->path, &c.version_major, &c.version_minor, &c.path);
  if (v < 0)
    return http_respond_error(req, 404, "page not found");
  if (v > 0) {
    int ver = c.version_major * 1000 + c.version_minor;
    if (ver > 1047) {
      char m[160];
      snprintf(m, sizeof m,
               "client version %d.%d is too new. Maximum supported API "
               "version is " SHOAL_API_VERSION,
               c.version_major, c.version_minor);
      return http_respond_error(req, 400, m);
    }
    if (ver < 1024) {
      char m[200];
      snprintf(m, sizeof m,
               "client version %d.%d is too old. Minimum supported API "
               "version is " SHOAL_MIN_API_VERSION
               ", please upgrade your client to a newer version",
               c.version_major, c.version_minor);
      return http_respond_error(req, 400, m);
    }
  }
  log_debug("%s %s", req->method, req->url);
  if (api_forward(&c) || api_system(&c) || api_swarm(&c) || api_nodes(&c) ||
      api_services(&c) || api_images(&c) || api_prune(&c) || api_run(&c) ||
      api_exec(&c) || api_archive(&c) || api_update(&c) || api_containers(&c) ||
      api_container_ctl(&c) || api_networks(&c) || api_volumes(&c) ||
      api_events(&c) || api_secrets(&c))
    return;
  http_respond_error(req, 404, "page not found");
}

/* Routes that take bodies of any size as they arrive: docker cp into a
 * container and docker load. */
static bool api_body_streams(const struct http_req *head, void *ud) {
  (void)ud;
  int maj, min;
  const char *p;
  if (split_version(head->path, &maj, &min, &p) < 0)
    return false;
  if (strcmp(head->method, "PUT") == 0)
    return str_has_prefix(p, "/containers/") && str_has_suffix(p, "/archive");
  return strcmp(head->method, "POST") == 0 && strcmp(p, "/images/load") == 0;
}

static bool is_loopback(const char *h) {
  struct in6_addr a6;
  struct in_addr a4;
  if (strcmp(h, "localhost") == 0)
    return true;
  if (inet_pton(AF_INET, h, &a4) == 1)
    return (ntohl(a4.s_addr) >> 24) == 127;
  return inet_pton(AF_INET6, h, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

/* dockerd 28's loadListeners, word for word: TCP without --tlsverify warns
 * and waits a second; on a non-loopback address without an explicit
 * --tls=false / --tlsverify=false it waits 15 s more. */
static void tcp_insecure_warn(struct shoald *d, const char *host,
                              const char *h) {
  log_warn("Binding to IP address without --tlsverify is insecure and gives "
           "root access on this machine to everyone who has access to your "
           "network. host=\"%s\"",
           host);
  log_warn("Binding to an IP address, even on localhost, can also give "
           "access to scripts run in a browser. Be safe out there! "
           "host=\"%s\"",
           host);
  log_warn("[DEPRECATION NOTICE] In future versions this will be a hard "
           "failure preventing the daemon from starting! Learn more at: "
           "https://docs.docker.com/go/api-security/ host=\"%s\"",
           host);
  sleep(1);
  if (d->cfg.api_insecure_ok || d->cfg.api_tls || is_loopback(h))
    return;
  log_warn("Binding to an IP address without --tlsverify is deprecated. "
           "Startup is intentionally being slowed down to show this message "
           "host=\"%s\"",
           host);
  log_warn("Please consider generating tls certificates with client "
           "validation to prevent exposing unauthenticated root access to "
           "your network host=\"%s\"",
           host);
  log_warn("You can override this by explicitly specifying '--tls=false' or "
           "'--tlsverify=false' host=\"%s\"",
           host);
  log_warn("Support for listening on TCP without authentication or explicit "
           "intent to run without authentication will be removed in the next "
           "release host=\"%s\"",
           host);
  sleep(15);
}

int api_listen(struct shoald *d, const char *host, sh_err *err) {
  if (!d->api) {
    d->api = http_server_new(d->loop, api_handle, d);
    /* Whoever may connect is authenticated (socket mode, --tlsverify): the
     * one body limit applies, TLS client certificate or not. */
    struct http_limits lim;
    http_limits_default(&lim);
    lim.max_body_unauth = lim.max_body;
    http_limits_env(&lim);
    http_server_set_limits(d->api, &lim);
    http_server_set_body_stream(d->api, api_body_streams, d);
  }
  if (str_has_prefix(host, "unix://")) {
    const char *path = host + strlen("unix://");
    cleanup_free char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
      *slash = '\0';
      if (mkdir_p(dir, 0755, err) < 0)
        return -1;
    }
    return http_server_listen_unix(d->api, path, d->cfg.socket_gid, err);
  }
  if (str_has_prefix(host, "tcp://")) {
    const char *hp = host + strlen("tcp://");
    const char *colon = strrchr(hp, ':');
    if (!colon)
      return sh_error(err, 400, "invalid -H %s: missing port", host);
    cleanup_free char *h = xstrndup(hp, (size_t)(colon - hp));
    int port = atoi(colon + 1);
    if (port <= 0 || port > 65535)
      return sh_error(err, 400, "invalid -H %s: bad port", host);
    if (!d->cfg.api_tlsverify)
      tcp_insecure_warn(d, host, h);
    return http_server_listen_tcp(d->api, *h ? h : "0.0.0.0", port,
                                  d->cfg.api_tls, err);
  }
  return sh_error(err, 400,
                  "invalid -H %s: use unix:///path or tcp://host:port", host);
}
