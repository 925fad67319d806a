/* Registry HTTP API v2 client: blocking libcurl easy requests (one handle
 * per request, so layer downloads can run on several threads), bearer token
 * and basic auth from the registry's WWW-Authenticate challenge, bounded
 * bodies, and digest checks while streaming. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include "core/util.h"
#include "image/internal.h"
#include "lazy/curl.h"

struct reg {
  struct image_store *s;
  char *base, *repo;
  char *user, *pass;
  pthread_mutex_t mu; /* auth below: job threads may refresh it */
  char *authz;        /* "Bearer x" / "Basic y" once a challenge was met */
  char last_code[64];
  bool answered;
  bool push; /* tokens for pull and push */
};

void digest_of(const void *data, size_t len, char out[DIGEST_LEN + 1]) {
  unsigned char md[32];
  EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL);
  memcpy(out, "sha256:", 7);
  for (int i = 0; i < 32; i++)
    snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
}

struct reg *reg_new(struct image_store *s, const char *base, const char *repo,
                    const struct image_auth *auth) {
  struct reg *r = xcalloc(1, sizeof *r);
  r->s = s;
  r->base = xstrdup(base);
  size_t n = strlen(r->base);
  while (n > 0 && r->base[n - 1] == '/')
    r->base[--n] = '\0';
  r->repo = xstrdup(repo);
  if (auth && auth->username && *auth->username) {
    r->user = xstrdup(auth->username);
    r->pass = xstrdup(auth->password ? auth->password : "");
  }
  pthread_mutex_init(&r->mu, NULL);
  return r;
}

void reg_free(struct reg *r) {
  if (!r)
    return;
  free(r->base);
  free(r->repo);
  free(r->user);
  free(r->pass);
  free(r->authz);
  pthread_mutex_destroy(&r->mu);
  free(r);
}

const char *reg_base(const struct reg *r) {
  return r->base;
}

bool reg_answered(const struct reg *r) {
  return r->answered;
}

const char *reg_last_code(const struct reg *r) {
  return r->last_code[0] ? r->last_code : NULL;
}

/* ---- one request ---- */

struct resp {
  CURL *h;
  long status;
  char *content_type, *www_auth;
  sh_buf body;
  size_t max;
  bool too_big;
  /* streaming into a file with a running digest */
  int fd;
  EVP_MD_CTX *md;
  int64_t got, limit;
  bool write_failed;
  reg_progress_fn progress;
  void *ud;
};

static size_t header_cb(char *data, size_t sz, size_t nm, void *ud) {
  struct resp *rs = ud;
  size_t n = sz * nm;
  if (n > 5 && !strncmp(data, "HTTP/", 5)) { /* a new response (redirect) */
    free(rs->content_type);
    free(rs->www_auth);
    rs->content_type = rs->www_auth = NULL;
    return n;
  }
  const char *colon = memchr(data, ':', n);
  if (!colon)
    return n;
  size_t klen = (size_t)(colon - data);
  const char *v = colon + 1;
  size_t vlen = n - klen - 1;
  while (vlen && (*v == ' ' || *v == '\t'))
    v++, vlen--;
  while (vlen &&
         (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
    vlen--;
  if (klen == 12 && !strncasecmp(data, "content-type", 12)) {
    free(rs->content_type);
    /* "application/json; charset=utf-8" -> "application/json" */
    const char *semi = memchr(v, ';', vlen);
    rs->content_type = xstrndup(v, semi ? (size_t)(semi - v) : vlen);
  } else if (klen == 16 && !strncasecmp(data, "www-authenticate", 16)) {
    free(rs->www_auth);
    rs->www_auth = xstrndup(v, vlen);
  }
  return n;
}

static size_t write_cb(char *data, size_t sz, size_t nm, void *ud) {
  struct resp *rs = ud;
  size_t n = sz * nm;
  long code = 0;
  curl_easy_getinfo(rs->h, CURLINFO_RESPONSE_CODE, &code);
  if (rs->fd >= 0 && code >= 200 && code < 300) {
    rs->got += (int64_t)n;
    if (rs->limit >= 0 && rs->got > rs->limit) {
      rs->too_big = true;
      return 0;
    }
    EVP_DigestUpdate(rs->md, data, n);
    for (size_t off = 0; off < n;) {
      ssize_t w = write(rs->fd, data + off, n - off);
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0) {
        rs->write_failed = true;
        return 0;
      }
      off += (size_t)w;
    }
    if (rs->progress)
      rs->progress(rs->got, rs->limit, rs->ud);
    return n;
  }
  size_t max = (code >= 200 && code < 300) ? rs->max : 64 * 1024;
  if (rs->body.len + n > max) {
    rs->too_big = true;
    return 0;
  }
  buf_append(&rs->body, data, n);
  return n;
}

static void resp_free(struct resp *rs) {
  free(rs->content_type);
  free(rs->www_auth);
  buf_free(&rs->body);
}

/* key="value" from a challenge; caller frees. */
static char *challenge_param(const char *ch, const char *key) {
  size_t kl = strlen(key);
  for (const char *p = ch; *p;) {
    while (*p == ' ' || *p == ',')
      p++;
    const char *eq = strchr(p, '=');
    if (!eq)
      return NULL;
    bool match = (size_t)(eq - p) == kl && !strncasecmp(p, key, kl);
    const char *v = eq + 1;
    const char *end;
    char *val;
    if (*v == '"') {
      v++;
      end = strchr(v, '"');
      if (!end)
        return NULL;
      val = xstrndup(v, (size_t)(end - v));
      end++;
    } else {
      end = v + strcspn(v, ",");
      val = xstrndup(v, (size_t)(end - v));
    }
    if (match)
      return val;
    free(val);
    p = end;
  }
  return NULL;
}

static void set_common(struct image_store *s, CURL *h, char *errbuf) {
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, s->connect_timeout);
  /* Abort transfers that stall rather than ones that are merely long. */
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, s->stall_timeout);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_USERAGENT, "shoal/0 (docker-compatible)");
  curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "identity");
}

/* GET realm?service=..&scope=.. for a bearer token. */
static int fetch_token(struct reg *r, const char *challenge, sh_err *err) {
  cleanup_free char *realm = challenge_param(challenge, "realm");
  cleanup_free char *service = challenge_param(challenge, "service");
  cleanup_free char *scope = challenge_param(challenge, "scope");
  if (!realm)
    return sh_error(err, 500, "registry %s: bearer challenge without realm",
                    r->base);
  cleanup_lazy struct lazy_lib *held = lazy_hold(&lazy_curl_lib, err);
  if (!held)
    return -1;
  CURL *h = curl_easy_init();
  sh_buf url = {0};
  buf_printf(&url, "%s%s", realm, strchr(realm, '?') ? "&" : "?");
  if (service) {
    char *e = curl_easy_escape(h, service, 0);
    buf_printf(&url, "service=%s&", e);
    curl_free(e);
  }
  /* A login (no repository) asks for a token with no scope; a push for
   * pull and push. */
  cleanup_free char *want = scope || !*r->repo
                                ? NULL
                                : xasprintf("repository:%s:%s", r->repo,
                                            r->push ? "pull,push" : "pull");
  if (scope || want) {
    char *e = curl_easy_escape(h, scope ? scope : want, 0);
    buf_printf(&url, "scope=%s", e);
    curl_free(e);
  }
  char errbuf[CURL_ERROR_SIZE] = "";
  struct resp rs = {.h = h, .fd = -1, .max = 1 << 20};
  set_common(r->s, h, errbuf);
  curl_easy_setopt(h, CURLOPT_URL, url.data);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &rs);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &rs);
  if (r->user) {
    curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(h, CURLOPT_USERNAME, r->user);
    curl_easy_setopt(h, CURLOPT_PASSWORD, r->pass);
  }
  CURLcode cc = curl_easy_perform(h);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &rs.status);
  curl_easy_cleanup(h);
  int rc = 0;
  if (cc != CURLE_OK) {
    rc = sh_error(err, 500, "Get \"%s\": %s", realm,
                  errbuf[0] ? errbuf : curl_easy_strerror(cc));
  } else if (rs.status == 401 || rs.status == 403) {
    rc = sh_error(err, 401, "Get \"%s\": unauthorized: %s", realm,
                  r->user ? "incorrect username or password"
                          : "authentication required");
  } else if (rs.status != 200) {
    rc = sh_error(err, 500, "Get \"%s\": token server answered %ld", realm,
                  rs.status);
  } else {
    json_error_t je;
    cleanup_json json_t *j =
        json_loadb(rs.body.data ? rs.body.data : "", rs.body.len, 0, &je);
    const char *tok = jx_str(j, "token", NULL);
    if (!tok || !*tok)
      tok = jx_str(j, "access_token", NULL);
    if (!tok || !*tok) {
      rc = sh_error(err, 500, "Get \"%s\": no token in the answer", realm);
    } else {
      pthread_mutex_lock(&r->mu);
      free(r->authz);
      r->authz = xasprintf("Bearer %s", tok);
      pthread_mutex_unlock(&r->mu);
    }
  }
  buf_free(&url);
  resp_free(&rs);
  return rc;
}

/* Meets a 401's challenge; 0 when a retry may succeed. */
static int answer_challenge(struct reg *r, const char *challenge, sh_err *err) {
  if (challenge && !strncasecmp(challenge, "Bearer", 6))
    return fetch_token(r, challenge + 6, err);
  if (challenge && !strncasecmp(challenge, "Basic", 5) && r->user) {
    cleanup_free char *raw = xasprintf("%s:%s", r->user, r->pass);
    size_t n = strlen(raw);
    cleanup_free char *b64 = xmalloc(4 * ((n + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)b64, (unsigned char *)raw, (int)n);
    pthread_mutex_lock(&r->mu);
    free(r->authz);
    r->authz = xasprintf("Basic %s", b64);
    pthread_mutex_unlock(&r->mu);
    return 0;
  }
  return -1;
}

/* Turns a registry's {"errors":[{code,message}]} into dockerd's form:
 * "manifest unknown: manifest unknown". Records the code. */
static char *registry_error(struct reg *r, const struct resp *rs) {
  json_error_t je;
  cleanup_json json_t *j =
      rs->body.data ? json_loadb(rs->body.data, rs->body.len, 0, &je) : NULL;
  json_t *first = json_array_get(json_object_get(j, "errors"), 0);
  const char *code = jx_str(first, "code", NULL);
  const char *msg = jx_str(first, "message", "");
  r->last_code[0] = '\0';
  if (!code) {
    if (rs->status == 404)
      snprintf(r->last_code, sizeof r->last_code, "NOT_FOUND");
    else if (rs->status == 401)
      snprintf(r->last_code, sizeof r->last_code, "UNAUTHORIZED");
    /* A 401 without a body (a HEAD): distribution's client makes it
     * errcode's Unauthorized. */
    if (rs->status == 401)
      return xstrdup("unauthorized: authentication required");
    return xasprintf("unexpected status from %s: %ld", r->base, rs->status);
  }
  snprintf(r->last_code, sizeof r->last_code, "%s", code);
  cleanup_free char *desc = xstrdup(code);
  for (char *p = desc; *p; p++)
    *p = *p == '_' ? ' ' : (char)tolower((unsigned char)*p);
  return xasprintf("%s: %s", desc, msg);
}

/* GET base/v2/<repo>/<kind>/<ref> into rs (set up by the caller), with one
 * retry after answering an auth challenge. Fills err for transport errors
 * and non-2xx answers. */
static int get_url(struct reg *r, const char *url, const char *accept,
                   long timeout, struct resp *rs, sh_err *err);

static int do_get(struct reg *r, const char *kind, const char *ref,
                  const char *accept, long timeout, struct resp *rs,
                  sh_err *err) {
  cleanup_free char *url =
      xasprintf("%s/v2/%s/%s/%s", r->base, r->repo, kind, ref);
  int rc = get_url(r, url, accept, timeout, rs, err);
  if (rc < 0 || (rs->status >= 200 && rs->status < 300))
    return rc;
  cleanup_free char *msg = registry_error(r, rs);
  return sh_error(err, rs->status == 404 ? 404 : 500, "%s", msg);
}

/* GET url into rs, with one retry after answering an auth challenge.
 * Fills err for transport errors only: the caller reads rs->status. */
static int get_url(struct reg *r, const char *url, const char *accept,
                   long timeout, struct resp *rs, sh_err *err) {
  cleanup_lazy struct lazy_lib *held = lazy_hold(&lazy_curl_lib, err);
  if (!held)
    return -1;
  r->last_code[0] = '\0';
  r->answered = false;
  for (int attempt = 0;; attempt++) {
    CURL *h = curl_easy_init();
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdrs = NULL;
    if (accept)
      hdrs = curl_slist_append(hdrs, accept);
    pthread_mutex_lock(&r->mu);
    if (r->authz) {
      cleanup_free char *a = xasprintf("Authorization: %s", r->authz);
      hdrs = curl_slist_append(hdrs, a);
    }
    pthread_mutex_unlock(&r->mu);
    set_common(r->s, h, errbuf);
    curl_easy_setopt(h, CURLOPT_URL, url);
    if (timeout)
      curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, rs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, rs);
    rs->h = h;
    CURLcode cc = curl_easy_perform(h);
    rs->status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &rs->status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    rs->h = NULL;
    if (rs->too_big)
      return sh_error(err, 500, "Get \"%s\": answer larger than expected", url);
    if (rs->write_failed)
      return sh_errno(err, errno ? errno : EIO, "write blob from %s", url);
    r->answered = cc == CURLE_OK || rs->status > 0;
    if (cc != CURLE_OK)
      return sh_error(err, 500, "Get \"%s\": %s", url,
                      errbuf[0] ? errbuf : curl_easy_strerror(cc));
    if (rs->status == 401 && attempt == 0 && rs->www_auth) {
      cleanup_free char *ch = xstrdup(rs->www_auth);
      if (answer_challenge(r, ch, err) < 0) {
        if (err && err->status)
          return -1;
        /* No usable challenge (no credentials for basic auth): the 401's
         * own errors say why. */
        break;
      }
      buf_reset(&rs->body);
      continue;
    }
    break;
  }
  return 0;
}

static const char *status_text(long status) {
  switch (status) {
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 429:
    return "Too Many Requests";
  case 500:
    return "Internal Server Error";
  case 502:
    return "Bad Gateway";
  case 503:
    return "Service Unavailable";
  default:
    return "";
  }
}

int reg_login(struct reg *r, sh_err *err) {
  cleanup_free char *url = xasprintf("%s/v2/", r->base);
  struct resp rs = {.fd = -1, .max = 1 << 20};
  int rc = get_url(r, url, NULL, 60, &rs, err);
  if (rc == 0 && rs.status != 200)
    /* moby's loginV2 */
    rc = sh_error(err, 401, "login attempt to %s failed with status: %ld %s",
                  url, rs.status, status_text(rs.status));
  resp_free(&rs);
  return rc;
}

#define ACCEPT_ALL                                                             \
  "Accept: " MT_OCI_INDEX ", " MT_OCI_MANIFEST ", " MT_DOCKER_LIST             \
  ", " MT_DOCKER_MANIFEST

int reg_get_manifest(struct reg *r, const char *reference, char **body,
                     size_t *len, char **media_type,
                     char digest[DIGEST_LEN + 1], sh_err *err) {
  struct resp rs = {.fd = -1, .max = MANIFEST_MAX};
  int rc = do_get(r, "manifests", reference, ACCEPT_ALL, 120, &rs, err);
  if (rc < 0) {
    resp_free(&rs);
    return rc;
  }
  const char *data = rs.body.data ? rs.body.data : "";
  digest_of(data, rs.body.len, digest);
  if (str_has_prefix(reference, "sha256:") && strcmp(reference, digest)) {
    resp_free(&rs);
    return sh_error(err, 500, "manifest verification failed for digest %s",
                    reference);
  }
  /* The body's mediaType wins over the header (some registries send
   * application/json). */
  json_error_t je;
  cleanup_json json_t *j = json_loadb(data, rs.body.len, 0, &je);
  const char *mt = jx_str(j, "mediaType", NULL);
  if (!mt)
    mt = rs.content_type;
  if (!mt && json_object_get(j, "manifests"))
    mt = MT_OCI_INDEX;
  if (!mt && json_object_get(j, "layers"))
    mt = MT_OCI_MANIFEST;
  *media_type = xstrdup(mt ? mt : "");
  *len = rs.body.len;
  *body = rs.body.data ? STEAL_POINTER(&rs.body.data) : xstrdup("");
  resp_free(&rs);
  return 0;
}

int reg_get_blob_mem(struct reg *r, const char *digest, size_t max, char **body,
                     size_t *len, sh_err *err) {
  struct resp rs = {.fd = -1, .max = max};
  int rc = do_get(r, "blobs", digest, NULL, 300, &rs, err);
  if (rc < 0) {
    resp_free(&rs);
    return rc;
  }
  char got[DIGEST_LEN + 1];
  digest_of(rs.body.data ? rs.body.data : "", rs.body.len, got);
  if (strcmp(got, digest)) {
    resp_free(&rs);
    return sh_error(err, 500, "image config verification failed for digest %s",
                    digest);
  }
  *len = rs.body.len;
  *body = rs.body.data ? STEAL_POINTER(&rs.body.data) : xstrdup("");
  resp_free(&rs);
  return 0;
}

int reg_get_blob_file(struct reg *r, const char *digest, int64_t size,
                      const char *path, reg_progress_fn progress, void *ud,
                      sh_err *err) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    return sh_errno(err, errno, "create %s", path);
  struct resp rs = {.fd = fd, .limit = size, .progress = progress, .ud = ud};
  rs.md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(rs.md, EVP_sha256(), NULL);
  int rc = do_get(r, "blobs", digest, NULL, 0, &rs, err);
  if (rc == 0 && rs.too_big)
    rc = sh_error(err, 500,
                  "filesystem layer verification failed for "
                  "digest %s: larger than its descriptor",
                  digest);
  if (rc == 0) {
    unsigned char md[32];
    char got[DIGEST_LEN + 1];
    EVP_DigestFinal_ex(rs.md, md, NULL);
    memcpy(got, "sha256:", 7);
    for (int i = 0; i < 32; i++)
      snprintf(got + 7 + 2 * i, 3, "%02x", md[i]);
    if (strcmp(got, digest) || (size >= 0 && rs.got != size))
      rc = sh_error(err, 500,
                    "filesystem layer verification failed for digest %s",
                    digest);
  }
  if (rc == 0 && fsync(fd) < 0)
    rc = sh_errno(err, errno, "sync %s", path);
  EVP_MD_CTX_free(rs.md);
  close(fd);
  resp_free(&rs);
  if (rc < 0)
    unlink(path);
  return rc;
}

void reg_want_push(struct reg *r) {
  r->push = true;
}

struct upload {
  int fd;
  const char *mem;
  size_t len, off;
};

static size_t read_cb(char *buf, size_t sz, size_t nm, void *ud) {
  struct upload *u = ud;
  size_t n = sz * nm;
  if (u->fd >= 0) {
    ssize_t got = read(u->fd, buf, n);
    return got < 0 ? CURL_READFUNC_ABORT : (size_t)got;
  }
  if (n > u->len - u->off)
    n = u->len - u->off;
  memcpy(buf, u->mem + u->off, n);
  u->off += n;
  return n;
}

static size_t location_cb(char *data, size_t sz, size_t nm, void *ud) {
  char **loc = ud;
  size_t n = sz * nm;
  if (n > 9 && !strncasecmp(data, "location:", 9)) {
    const char *v = data + 9;
    size_t vl = n - 9;
    while (vl && (*v == ' ' || *v == '\t'))
      v++, vl--;
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
      vl--;
    free(*loc);
    *loc = xstrndup(v, vl);
  }
  return n;
}

struct send_hdrs {
  struct resp *rs;
  char **location;
};

static size_t send_header_cb(char *data, size_t sz, size_t nm, void *ud) {
  struct send_hdrs *h = ud;
  header_cb(data, sz, nm, h->rs);
  return location_cb(data, sz, nm, h->location);
}

int reg_send(struct reg *r, const char *method, const char *url,
             const char *content_type, const void *body, size_t len,
             const char *file, long *status, char **location, sh_err *err) {
  cleanup_lazy struct lazy_lib *held = lazy_hold(&lazy_curl_lib, err);
  if (!held)
    return -1;
  cleanup_free char *full =
      url[0] == '/' ? xasprintf("%s%s", r->base, url) : xstrdup(url);
  r->last_code[0] = '\0';
  struct resp rs = {.fd = -1, .max = 1 << 20};
  char *loc = NULL;
  int rc = 0;
  for (int attempt = 0;; attempt++) {
    struct upload up = {.fd = -1, .mem = body, .len = len};
    struct stat st;
    if (file) {
      up.fd = open(file, O_RDONLY | O_CLOEXEC);
      if (up.fd < 0 || fstat(up.fd, &st) < 0) {
        rc = sh_errno(err, errno, "open %s", file);
        if (up.fd >= 0)
          close(up.fd);
        break;
      }
    }
    CURL *h = curl_easy_init();
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdrs = NULL;
    if (content_type) {
      cleanup_free char *ct = xasprintf("Content-Type: %s", content_type);
      hdrs = curl_slist_append(hdrs, ct);
    }
    pthread_mutex_lock(&r->mu);
    if (r->authz) {
      cleanup_free char *a = xasprintf("Authorization: %s", r->authz);
      hdrs = curl_slist_append(hdrs, a);
    }
    pthread_mutex_unlock(&r->mu);
    set_common(r->s, h, errbuf);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_URL, full);
    if (!strcmp(method, "HEAD"))
      curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    else if (!strcmp(method, "PUT") || !strcmp(method, "POST")) {
      curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
      curl_easy_setopt(h, CURLOPT_READDATA, &up);
      curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE,
                       (curl_off_t)(file ? st.st_size : (off_t)len));
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    } else if (strcmp(method, "GET"))
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    /* No "Expect: 100-continue": a 401 comes before the body either way. */
    hdrs = curl_slist_append(hdrs, "Expect:");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    struct send_hdrs sh = {&rs, &loc};
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, send_header_cb);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &sh);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &rs);
    rs.h = h;
    CURLcode cc = curl_easy_perform(h);
    rs.status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &rs.status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    if (up.fd >= 0)
      close(up.fd);
    rs.h = NULL;
    r->answered = cc == CURLE_OK || rs.status > 0;
    if (cc != CURLE_OK) {
      /* Go's form: Put "url": reason. */
      char word[8];
      snprintf(word, sizeof word, "%c", method[0]);
      for (size_t i = 1; method[i] && i < sizeof word - 1; i++)
        word[i] = (char)tolower((unsigned char)method[i]), word[i + 1] = '\0';
      rc = sh_error(err, 500, "%s \"%s\": %s", word, full,
                    errbuf[0] ? errbuf : curl_easy_strerror(cc));
      break;
    }
    if (rs.status == 401 && attempt == 0 && rs.www_auth) {
      cleanup_free char *ch = xstrdup(rs.www_auth);
      buf_reset(&rs.body);
      if (answer_challenge(r, ch, err) < 0) {
        if (err && err->status) {
          rc = -1;
          break;
        }
      } else {
        continue;
      }
    }
    break;
  }
  if (rc == 0 && (rs.status < 200 || rs.status >= 300) && rs.status != 404) {
    cleanup_free char *msg = registry_error(r, &rs);
    rc = sh_error(err, rs.status == 401 ? 401 : 500, "%s", msg);
  }
  if (status)
    *status = rs.status;
  if (location)
    *location = loc;
  else
    free(loc);
  resp_free(&rs);
  return rc;
}

/* ---- endpoints ---- */

/* entry: "host[:port]" or a CIDR ("10.0.0.0/8", IPv4) holding host. */
static bool insecure_match(const char *entry, const char *domain,
                           const char *host) {
  if (!strcmp(entry, domain) || !strcmp(entry, host))
    return true;
  const char *slash = strchr(entry, '/');
  struct in_addr net, ip;
  if (!slash || inet_pton(AF_INET, host, &ip) != 1)
    return false;
  cleanup_free char *addr = xstrndup(entry, (size_t)(slash - entry));
  char *end;
  long len = strtol(slash + 1, &end, 10);
  if (*end || len < 0 || len > 32 || inet_pton(AF_INET, addr, &net) != 1)
    return false;
  uint32_t mask = len == 0 ? 0 : htonl(~0u << (32 - len));
  return (net.s_addr & mask) == (ip.s_addr & mask);
}

/* Under s->mu. */
static bool host_is_insecure(struct image_store *s, const char *domain) {
  cleanup_free char *host = NULL;
  if (domain[0] == '[') {
    const char *e = strchr(domain, ']');
    host = xstrndup(domain + 1, e ? (size_t)(e - domain - 1) : 0);
  } else {
    host = xstrndup(domain, strcspn(domain, ":"));
  }
  if (!strcmp(host, "localhost") || str_has_prefix(host, "127.") ||
      !strcmp(host, "::1"))
    return true;
  for (char **p = s->insecure; p && *p; p++)
    if (insecure_match(*p, domain, host))
      return true;
  return false;
}

char **endpoints_for(struct image_store *s, const char *domain) {
  pthread_mutex_lock(&s->mu);
  size_t n = 0;
  for (char **p = s->mirrors; p && *p; p++)
    n++;
  char **v = xcalloc(n + 2, sizeof *v);
  size_t k = 0;
  if (!strcmp(domain, DOCKER_IO)) {
    for (char **p = s->mirrors; p && *p; p++)
      v[k++] = strstr(*p, "://") ? xstrdup(*p) : xasprintf("https://%s", *p);
    v[k++] = xstrdup(DOCKER_HUB_URL);
  } else {
    v[k++] = xasprintf("%s://%s",
                       host_is_insecure(s, domain) ? "http" : "https", domain);
  }
  pthread_mutex_unlock(&s->mu);
  return v;
}

void strv_free(char **v) {
  for (char **p = v; p && *p; p++)
    free(*p);
  free(v);
}
