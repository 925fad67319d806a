/* Image references with the grammar and normalization of Docker's
 * distribution/reference (ParseNormalizedNamed), and its messages. */
#include <ctype.h>

#include "core/util.h"
#include "image/image.h"
#include "image/internal.h"

#define NAME_MAX_LEN 255

static bool is_lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* */
static bool path_component_ok(const char *s, size_t n) {
  size_t i = 0;
  if (n == 0 || !is_lower_alnum(s[0]))
    return false;
  while (i < n) {
    while (i < n && is_lower_alnum(s[i]))
      i++;
    if (i == n)
      return true;
    if (s[i] == '.')
      i++;
    else if (s[i] == '_')
      i += (i + 1 < n && s[i + 1] == '_') ? 2 : 1;
    else if (s[i] == '-')
      while (i < n && s[i] == '-')
        i++;
    else
      return false;
    if (i == n || !is_lower_alnum(s[i]))
      return false;
  }
  return true;
}

/* host[:port] with host a dotted list of [a-zA-Z0-9-] labels (no leading or
 * trailing '-'), or [ipv6]. */
static bool domain_ok(const char *s) {
  const char *p = s;
  if (*p == '[') {
    p++;
    const char *start = p;
    while (isxdigit((unsigned char)*p) || *p == ':')
      p++;
    if (p == start || *p != ']')
      return false;
    p++;
  } else {
    for (;;) {
      const char *label = p;
      while (isalnum((unsigned char)*p) || *p == '-')
        p++;
      if (p == label || label[0] == '-' || p[-1] == '-')
        return false;
      if (*p != '.')
        break;
      p++;
    }
  }
  if (*p == ':') {
    p++;
    const char *port = p;
    while (isdigit((unsigned char)*p))
      p++;
    if (p == port)
      return false;
  }
  return *p == '\0';
}

/* [\w][\w.-]{0,127} */
static bool tag_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 128 || !(isalnum((unsigned char)s[0]) || s[0] == '_'))
    return false;
  for (size_t i = 1; i < n; i++)
    if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '.' ||
          s[i] == '-'))
      return false;
  return true;
}

bool digest_valid(const char *d) {
  if (!d || strncmp(d, "sha256:", 7) != 0 || strlen(d) != 71)
    return false;
  for (int i = 7; i < 71; i++)
    if (!((d[i] >= '0' && d[i] <= '9') || (d[i] >= 'a' && d[i] <= 'f')))
      return false;
  return true;
}

bool is_hex64(const char *s) {
  if (strlen(s) != 64)
    return false;
  for (int i = 0; i < 64; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  return true;
}

void image_ref_free(struct image_ref *r) {
  if (!r)
    return;
  free(r->domain);
  free(r->path);
  free(r->tag);
  free(r->digest);
  memset(r, 0, sizeof *r);
}

bool image_ref_pinned(const char *ref) {
  if (digest_valid(ref))
    return true;
  struct image_ref r = {0};
  bool pinned = image_ref_parse(ref, &r, NULL) == 0 && r.digest;
  image_ref_free(&r);
  return pinned;
}

static int invalid(sh_err *err) {
  return sh_error(err, 400, "invalid reference format");
}

int image_ref_parse(const char *s, struct image_ref *out, sh_err *err) {
  memset(out, 0, sizeof *out);
  if (!s || !*s)
    return invalid(err);
  if (is_hex64(s))
    return sh_error(err, 400,
                    "invalid repository name (%s), cannot specify 64-byte "
                    "hexadecimal strings",
                    s);
  cleanup_free char *name = NULL, *tag = NULL, *digest = NULL;
  const char *at = strchr(s, '@');
  size_t name_end = at ? (size_t)(at - s) : strlen(s);
  if (at) {
    digest = xstrdup(at + 1);
    if (strncmp(digest, "sha256:", 7) != 0 && !strchr(digest, ':'))
      return invalid(err);
    if (!digest_valid(digest))
      return sh_error(err, 400,
                      "invalid reference format: invalid checksum "
                      "digest format");
  }
  /* A tag is after the last ':' that follows the last '/'. */
  const char *slash = memrchr(s, '/', name_end);
  const char *colon = memrchr(slash ? slash : s, ':',
                              name_end - (size_t)((slash ? slash : s) - s));
  if (colon) {
    tag = xstrndup(colon + 1, name_end - (size_t)(colon + 1 - s));
    name_end = (size_t)(colon - s);
    if (!tag_ok(tag))
      return invalid(err);
  }
  name = xstrndup(s, name_end);
  if (!*name)
    return invalid(err);

  cleanup_free char *domain = NULL, *path = NULL;
  char *first_slash = strchr(name, '/');
  bool has_domain = false;
  if (first_slash) {
    size_t n = (size_t)(first_slash - name);
    bool upper = false;
    for (size_t i = 0; i < n; i++)
      upper |= isupper((unsigned char)name[i]) != 0;
    has_domain = memchr(name, '.', n) || memchr(name, ':', n) ||
                 (n == 9 && !strncmp(name, "localhost", 9)) || upper;
  }
  if (has_domain) {
    domain = xstrndup(name, (size_t)(first_slash - name));
    path = xstrdup(first_slash + 1);
    if (!domain_ok(domain))
      return invalid(err);
    if (!strcmp(domain, "index.docker.io")) {
      free(domain);
      domain = xstrdup(DOCKER_IO);
    }
  } else {
    domain = xstrdup(DOCKER_IO);
    path = xstrdup(name);
  }
  if (!strcmp(domain, DOCKER_IO) && !strchr(path, '/')) {
    char *p = xasprintf("library/%s", path);
    free(path);
    path = p;
  }
  for (const char *p = path; *p; p++)
    if (isupper((unsigned char)*p))
      return sh_error(err, 400,
                      "invalid reference format: repository name (%s) must "
                      "be lowercase",
                      path);
  /* Every '/'-separated component of the path. */
  for (const char *p = path;;) {
    const char *e = strchr(p, '/');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (!path_component_ok(p, n))
      return invalid(err);
    if (!e)
      break;
    p = e + 1;
  }
  if (strlen(domain) + 1 + strlen(path) > NAME_MAX_LEN)
    return sh_error(err, 400,
                    "invalid reference format: repository name "
                    "must not be more than 255 characters");
  if (!tag && !digest)
    tag = xstrdup("latest");
  out->domain = STEAL_POINTER(&domain);
  out->path = STEAL_POINTER(&path);
  out->tag = STEAL_POINTER(&tag);
  out->digest = STEAL_POINTER(&digest);
  return 0;
}

static void append_tail(sh_buf *b, const struct image_ref *r) {
  if (r->tag)
    buf_printf(b, ":%s", r->tag);
  if (r->digest)
    buf_printf(b, "@%s", r->digest);
}

char *image_ref_full(const struct image_ref *r) {
  sh_buf b = {0};
  buf_printf(&b, "%s/%s", r->domain, r->path);
  append_tail(&b, r);
  return b.data;
}

char *image_ref_familiar(const struct image_ref *r, bool with_tag) {
  sh_buf b = {0};
  if (!strcmp(r->domain, DOCKER_IO)) {
    const char *p = r->path;
    if (str_has_prefix(p, "library/") && !strchr(p + 8, '/'))
      p += 8;
    buf_printf(&b, "%s", p);
  } else {
    buf_printf(&b, "%s/%s", r->domain, r->path);
  }
  if (with_tag)
    append_tail(&b, r);
  return b.data;
}
