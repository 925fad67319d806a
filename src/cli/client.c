#include "cli/client.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/jsonx.h"

#ifndef SHOAL_VERSION
#define SHOAL_VERSION "0.1.0"
#endif

/* Answers larger than this are refused rather than buffered. */
#define MAX_BODY (256u << 20)

int cli_host_parse(const char *in, char **host, char **unix_path,
                   char **base_url, sh_err *err) {
  const char *s = in ? in : "";
  while (isspace((unsigned char)*s))
    s++;
  if (*s == '\0')
    s = CLI_DEFAULT_HOST;
  if (str_has_prefix(s, "unix://")) {
    const char *p = s + strlen("unix://");
    if (*p == '\0')
      p = &CLI_DEFAULT_HOST[strlen("unix://")];
    if (*p != '/')
      return sh_error(err, CLI_ESTATUS_LOCAL, "Invalid bind address format: %s",
                      in);
    *host = xasprintf("unix://%s", p);
    *unix_path = xstrdup(p);
    *base_url = xstrdup("http://localhost");
    return 0;
  }
  const char *a = s;
  if (str_has_prefix(a, "tcp://"))
    a += strlen("tcp://");
  else if (strstr(a, "://"))
    return sh_error(err, CLI_ESTATUS_LOCAL, "Invalid bind address format: %s",
                    in);
  /* host[:port], [v6]:port; a path after the address is not supported */
  if (strchr(a, '/'))
    return sh_error(err, CLI_ESTATUS_LOCAL, "Invalid bind address format: %s",
                    in);
  cleanup_free char *h = NULL;
  const char *port = "2375";
  if (a[0] == '[') {
    const char *rb = strchr(a, ']');
    if (!rb || (rb[1] && rb[1] != ':'))
      return sh_error(err, CLI_ESTATUS_LOCAL, "Invalid bind address format: %s",
                      in);
    h = xstrndup(a, (size_t)(rb - a + 1));
    if (rb[1] == ':' && rb[2])
      port = rb + 2;
  } else {
    const char *colon = strrchr(a, ':');
    if (colon && strchr(a, ':') != colon)
      return sh_error(err, CLI_ESTATUS_LOCAL, "Invalid bind address format: %s",
                      in);
    h = colon ? xstrndup(a, (size_t)(colon - a)) : xstrdup(a);
    if (colon && colon[1])
      port = colon + 1;
  }
  for (const char *p = port; *p; p++)
    if (!isdigit((unsigned char)*p))
      return sh_error(err, CLI_ESTATUS_LOCAL, "Invalid bind address format: %s",
                      in);
  if (strtol(port, NULL, 10) <= 0 || strtol(port, NULL, 10) > 65535)
    return sh_error(err, CLI_ESTATUS_LOCAL, "Invalid bind address format: %s",
                    in);
  const char *hn = h[0] ? h : "127.0.0.1";
  *host = xasprintf("tcp://%s:%s", hn, port);
  *unix_path = NULL;
  *base_url = xasprintf("http://%s:%s", hn, port);
  return 0;
}

int cli_client_init(cli_client *c, const char *host, sh_err *err) {
  memset(c, 0, sizeof *c);
  if (cli_host_parse(host, &c->host, &c->unix_path, &c->base_url, err) < 0)
    return -1;
  static bool global_done;
  if (!global_done) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    global_done = true;
  }
  c->curl = curl_easy_init();
  if (!c->curl)
    return sh_error(err, CLI_ESTATUS_LOCAL, "cannot initialize libcurl");
  snprintf(c->version, sizeof c->version, "%s", CLI_API_VERSION);
  return 0;
}

void cli_client_free(cli_client *c) {
  if (c->curl)
    curl_easy_cleanup(c->curl);
  free(c->host);
  free(c->unix_path);
  free(c->base_url);
  memset(c, 0, sizeof *c);
}

char *cli_escape(const char *s) {
  sh_buf b = {0};
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (isalnum(*p) || strchr("-_.~", *p))
      buf_append(&b, p, 1);
    else
      buf_printf(&b, "%%%02X", *p);
  }
  return b.data ? b.data : xstrdup("");
}

/* ---- one HTTP exchange -------------------------------------------------- */

struct exchange {
  sh_buf body;
  char api_version[32];
  char content_type[128];
  bool too_big;
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud) {
  struct exchange *x = ud;
  if (x->body.len + sz * n > MAX_BODY) {
    x->too_big = true;
    return 0;
  }
  buf_append(&x->body, p, sz * n);
  return sz * n;
}

static void header_value(const char *line, size_t len, const char *name,
                         char *out, size_t outn) {
  size_t nl = strlen(name);
  if (len <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
    return;
  const char *v = line + nl + 1;
  const char *end = line + len;
  while (v < end && isspace((unsigned char)*v))
    v++;
  while (end > v && isspace((unsigned char)end[-1]))
    end--;
  snprintf(out, outn, "%.*s", (int)(end - v), v);
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud) {
  struct exchange *x = ud;
  header_value(p, sz * n, "Api-Version", x->api_version, sizeof x->api_version);
  header_value(p, sz * n, "Content-Type", x->content_type,
               sizeof x->content_type);
  return sz * n;
}

static const char *status_text(long s) {
  switch (s) {
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 406:
    return "Not Acceptable";
  case 409:
    return "Conflict";
  case 413:
    return "Request Entity Too Large";
  case 500:
    return "Internal Server Error";
  case 501:
    return "Not Implemented";
  case 502:
    return "Bad Gateway";
  case 503:
    return "Service Unavailable";
  default:
    return "";
  }
}

void cli_daemon_error(long status, const char *content_type, const char *body,
                      size_t len, const char *url, sh_err *err) {
  char smsg[64];
  snprintf(smsg, sizeof smsg, "%ld %s", status, status_text(status));
  if (len == 0) {
    sh_error(err, (int)status,
             "request returned %s for API route and version %s, check if the "
             "server supports the requested API version",
             smsg, url);
    return;
  }
  if (content_type && str_has_prefix(content_type, "application/json")) {
    json_error_t je;
    cleanup_json json_t *j = json_loadb(body, len, JSON_DECODE_ANY, &je);
    if (!j) {
      sh_error(err, (int)status, "Error reading JSON: %s", je.text);
      return;
    }
    const char *m = json_is_object(j) ? jx_str(j, "message", "") : "";
    if (!m[0]) {
      sh_error(err, (int)status,
               "API returned a %ld (%s) but provided no error-message", status,
               status_text(status));
      return;
    }
    size_t ml = strlen(m);
    while (ml && isspace((unsigned char)m[ml - 1]))
      ml--;
    while (ml && isspace((unsigned char)*m))
      m++, ml--;
    sh_error(err, (int)status, "Error response from daemon: %.*s", (int)ml, m);
    return;
  }
  /* Plain text (or a proxy's HTML): shown as is, trimmed. */
  while (len && isspace((unsigned char)body[len - 1]))
    len--;
  while (len && isspace((unsigned char)*body))
    body++, len--;
  sh_error(err, (int)status, "Error response from daemon: %.*s", (int)len,
           body);
}

static int perform(cli_client *c, const char *method, const char *url,
                   const char *body, size_t body_len, struct exchange *x,
                   long *status, sh_err *err) {
  CURL *h = c->curl;
  char errbuf[CURL_ERROR_SIZE] = "";
  curl_easy_reset(h);
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "shoal-cli/" SHOAL_VERSION " (linux)");
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  if (c->timeout_ms > 0)
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
  if (c->unix_path)
    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->unix_path);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
  struct curl_slist *hdrs = NULL;
  if (strcmp(method, "HEAD") == 0) {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (strcmp(method, "POST") == 0) {
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)(body ? body_len : 0));
    if (body)
      hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    /* no "Expect: 100-continue" round trip */
    hdrs = curl_slist_append(hdrs, "Expect:");
  } else if (strcmp(method, "GET") != 0) {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  }
  if (hdrs)
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  CURLcode rc = curl_easy_perform(h);
  curl_slist_free_all(hdrs);
  if (rc != CURLE_OK) {
    if (x->too_big)
      return sh_error(err, CLI_ESTATUS_LOCAL,
                      "error reading daemon response: body larger than %u "
                      "bytes",
                      MAX_BODY);
    if (rc == CURLE_COULDNT_CONNECT)
      return sh_error(err, CLI_ESTATUS_CONNECT,
                      "Cannot connect to the Docker daemon at %s. Is the "
                      "docker daemon running?",
                      c->host);
    /* Go's client words every other transport failure this way. */
    const char *verb = method[0] == 'G'   ? "Get"
                       : method[0] == 'H' ? "Head"
                       : method[0] == 'P' ? "Post"
                                          : "Delete";
    return sh_error(err, CLI_ESTATUS_CONNECT,
                    "error during connect: %s \"%s\": %s", verb, url,
                    errbuf[0] ? errbuf : curl_easy_strerror(rc));
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
  return 0;
}

int cli_client_negotiate(cli_client *c, sh_err *err) {
  if (c->negotiated)
    return 0;
  cleanup_free char *url = xasprintf("%s/_ping", c->base_url);
  struct exchange x = {0};
  long status = 0;
  int ret = perform(c, "HEAD", url, NULL, 0, &x, &status, err);
  if (ret == 0 && status != 200) {
    buf_free(&x.body);
    memset(&x, 0, sizeof x);
    ret = perform(c, "GET", url, NULL, 0, &x, &status, err);
  }
  buf_free(&x.body);
  if (ret < 0)
    return ret;
  c->negotiated = true;
  if (status != 200)
    return 0; /* like docker: keep the default version */
  const char *v = x.api_version[0] ? x.api_version : CLI_API_MIN_VERSION;
  int maj = 0, min = 0, dmaj = 0, dmin = 0;
  sscanf(CLI_API_VERSION, "%d.%d", &dmaj, &dmin);
  if (sscanf(v, "%d.%d", &maj, &min) == 2 &&
      (maj < dmaj || (maj == dmaj && min < dmin)))
    snprintf(c->version, sizeof c->version, "%d.%d", maj, min);
  return 0;
}

int cli_call(cli_client *c, const char *method, const char *path,
             const json_t *body, sh_buf *resp, sh_err *err) {
  if (cli_client_negotiate(c, err) < 0)
    return -1;
  cleanup_free char *url = xasprintf("%s/v%s%s", c->base_url, c->version, path);
  cleanup_free char *data =
      body ? jx_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY, NULL) : NULL;
  struct exchange x = {0};
  long status = 0;
  if (perform(c, method, url, data, data ? strlen(data) : 0, &x, &status, err) <
      0) {
    buf_free(&x.body);
    return -1;
  }
  if (status < 200 || status >= 400) {
    cli_daemon_error(status, x.content_type, x.body.data ? x.body.data : "",
                     x.body.len, url, err);
    buf_free(&x.body);
    return -1;
  }
  if (resp)
    *resp = x.body;
  else
    buf_free(&x.body);
  return 0;
}

int cli_call_json(cli_client *c, const char *method, const char *path,
                  const json_t *body, json_t **out, sh_err *err) {
  cleanup_buf sh_buf resp = {0};
  if (cli_call(c, method, path, body, &resp, err) < 0)
    return -1;
  json_error_t je;
  json_t *j =
      json_loadb(resp.data ? resp.data : "", resp.len, JSON_DECODE_ANY, &je);
  if (!j)
    return sh_error(err, CLI_ESTATUS_LOCAL,
                    "error reading the daemon's response to %s %s: %s", method,
                    path, je.text);
  *out = j;
  return 0;
}
