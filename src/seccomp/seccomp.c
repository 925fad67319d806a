/* Docker-format seccomp profiles to OCI linux.seccomp (see seccomp.h).
 * dockerd's rules (moby profiles/seccomp, setupSeccomp): architectures
 * from "architectures" or the archMap entry of the native architecture;
 * a syscall rule is dropped when an "excludes" matches (its arch, any of
 * its caps in the bounding set, a kernel at least minKernel) or an
 * "includes" does not (another arch, a cap missing, an older kernel). */
#include "seccomp/seccomp.h"

#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

struct seccomp_profile {
  json_t *doc; /* checked: every field read below has its type */
};

/* ---- what crun 1.x takes ---- */

static const char *const actions[] = {
    "SCMP_ACT_KILL",  "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",  "SCMP_ACT_ERRNO",        "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW", "SCMP_ACT_LOG",          NULL,
};

static const char *const arches[] = {
    "SCMP_ARCH_X86",      "SCMP_ARCH_X86_64",      "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",      "SCMP_ARCH_AARCH64",     "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",   "SCMP_ARCH_MIPS64N32",   "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",    "SCMP_ARCH_PPC64LE",     "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",    "SCMP_ARCH_PARISC",      "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",  "SCMP_ARCH_LOONGARCH64", NULL,
};

static const char *const flags[] = {
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
    NULL,
};

static const char *const ops[] = {
    "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE",        "SCMP_CMP_EQ",
    "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ", NULL,
};

static bool in_set(const char *s, const char *const *set) {
  for (size_t i = 0; set[i]; i++)
    if (strcmp(s, set[i]) == 0)
      return true;
  return false;
}

/* ---- checks: Go's decoding of moby's types, plus crun's names ---- */

#define PFX "invalid seccomp profile: "

/* JSON null reads as absent, as Go decodes it. */
static const json_t *field(const json_t *o, const char *k) {
  const json_t *v = json_object_get(o, k);
  return json_is_null(v) ? NULL : v;
}

static int check_str(const json_t *v, const char *where, const char *const *set,
                     const char *what, sh_err *err) {
  if (!v)
    return 0;
  if (!json_is_string(v))
    return sh_error(err, 400, PFX "%s: not a string", where);
  if (set && !in_set(json_string_value(v), set))
    return sh_error(err, 400, PFX "%s: \"%s\" is not a seccomp %s", where,
                    json_string_value(v), what);
  return 0;
}

static int check_strlist(const json_t *v, const char *where,
                         const char *const *set, const char *what,
                         sh_err *err) {
  if (!v)
    return 0;
  if (!json_is_array(v))
    return sh_error(err, 400, PFX "%s: not a list", where);
  size_t i;
  const json_t *e;
  json_array_foreach(v, i, e) {
    char w[96];
    snprintf(w, sizeof w, "%s[%zu]", where, i);
    if (check_str(e, w, set, what, err) < 0)
      return -1;
  }
  return 0;
}

static int check_uint(const json_t *v, const char *where, json_int_t max,
                      sh_err *err) {
  if (!v)
    return 0;
  if (!json_is_integer(v) || json_integer_value(v) < 0 ||
      (max > 0 && json_integer_value(v) > max))
    return sh_error(err, 400, PFX "%s: not an integer from 0 to %lld", where,
                    (long long)(max > 0 ? max : INT64_MAX));
  return 0;
}

/* "<kernel>.<major>", each 0-255 and not both 0 (moby's KernelVersion). */
static int parse_kernel(const char *s, unsigned *kernel, unsigned *major) {
  unsigned v[2] = {0, 0};
  for (int i = 0; i < 2; i++) {
    if (!isdigit((unsigned char)*s))
      return -1;
    unsigned long n = 0;
    while (isdigit((unsigned char)*s) && n <= 255)
      n = n * 10 + (unsigned long)(*s++ - '0');
    if (n > 255 || *s != (i == 0 ? '.' : '\0'))
      return -1;
    v[i] = (unsigned)n;
    s += i == 0;
  }
  if (v[0] == 0 && v[1] == 0)
    return -1;
  *kernel = v[0];
  *major = v[1];
  return 0;
}

static int check_filter(const json_t *f, const char *where, sh_err *err) {
  if (!f)
    return 0;
  if (!json_is_object(f))
    return sh_error(err, 400, PFX "%s: not an object", where);
  char w[96];
  snprintf(w, sizeof w, "%s.caps", where);
  if (check_strlist(field(f, "caps"), w, NULL, NULL, err) < 0)
    return -1;
  snprintf(w, sizeof w, "%s.arches", where);
  if (check_strlist(field(f, "arches"), w, NULL, NULL, err) < 0)
    return -1;
  const json_t *mk = field(f, "minKernel");
  snprintf(w, sizeof w, "%s.minKernel", where);
  if (check_str(mk, w, NULL, NULL, err) < 0)
    return -1;
  unsigned k, m;
  if (mk && *json_string_value(mk) &&
      parse_kernel(json_string_value(mk), &k, &m) < 0)
    return sh_error(err, 400,
                    PFX "%s: invalid kernel version \"%s\", expected "
                        "\"<kernel>.<major>\"",
                    w, json_string_value(mk));
  return 0;
}

static int check_arg(const json_t *a, const char *where, sh_err *err) {
  if (!json_is_object(a))
    return sh_error(err, 400, PFX "%s: not an object", where);
  char w[96];
  snprintf(w, sizeof w, "%s.index", where);
  if (!field(a, "index"))
    return sh_error(err, 400, PFX "%s: missing", w);
  if (check_uint(field(a, "index"), w, 5, err) < 0)
    return -1;
  snprintf(w, sizeof w, "%s.value", where);
  if (check_uint(field(a, "value"), w, 0, err) < 0)
    return -1;
  snprintf(w, sizeof w, "%s.valueTwo", where);
  if (check_uint(field(a, "valueTwo"), w, 0, err) < 0)
    return -1;
  snprintf(w, sizeof w, "%s.op", where);
  if (!field(a, "op"))
    return sh_error(err, 400, PFX "%s: missing", w);
  return check_str(field(a, "op"), w, ops, "comparison operator", err);
}

static int check_syscall(const json_t *s, size_t i, sh_err *err) {
  char where[64], w[96];
  snprintf(where, sizeof where, "syscalls[%zu]", i);
  if (!json_is_object(s))
    return sh_error(err, 400, PFX "%s: not an object", where);
  const json_t *names = field(s, "names"), *name = field(s, "name");
  snprintf(w, sizeof w, "%s.names", where);
  if (check_strlist(names, w, NULL, NULL, err) < 0)
    return -1;
  snprintf(w, sizeof w, "%s.name", where);
  if (check_str(name, w, NULL, NULL, err) < 0)
    return -1;
  if (name && *json_string_value(name) && json_array_size(names) > 0)
    return sh_error(err, 400,
                    PFX "%s: both 'name' and 'names' are specified, use "
                        "either 'name' or 'names'",
                    where);
  snprintf(w, sizeof w, "%s.action", where);
  const json_t *action = field(s, "action");
  if (!action || (json_is_string(action) && !*json_string_value(action)))
    return sh_error(err, 400, PFX "%s: missing", w);
  if (check_str(action, w, actions, "action", err) < 0)
    return -1;
  snprintf(w, sizeof w, "%s.errnoRet", where);
  if (check_uint(field(s, "errnoRet"), w, UINT32_MAX, err) < 0)
    return -1;
  const json_t *args = field(s, "args");
  if (args && !json_is_array(args))
    return sh_error(err, 400, PFX "%s.args: not a list", where);
  size_t k;
  const json_t *a;
  json_array_foreach(args, k, a) {
    snprintf(w, sizeof w, "%s.args[%zu]", where, k);
    if (check_arg(a, w, err) < 0)
      return -1;
  }
  snprintf(w, sizeof w, "%s.includes", where);
  if (check_filter(field(s, "includes"), w, err) < 0)
    return -1;
  snprintf(w, sizeof w, "%s.excludes", where);
  return check_filter(field(s, "excludes"), w, err);
}

static int check_profile(const json_t *p, sh_err *err) {
  const json_t *da = field(p, "defaultAction");
  if (check_str(da, "defaultAction", actions, "action", err) < 0)
    return -1;
  if (check_uint(field(p, "defaultErrnoRet"), "defaultErrnoRet", UINT32_MAX,
                 err) < 0)
    return -1;
  if (check_strlist(field(p, "architectures"), "architectures", arches,
                    "architecture", err) < 0 ||
      check_strlist(field(p, "flags"), "flags", flags, "filter flag", err) < 0)
    return -1;
  /* crun would connect to a socket on the host: nothing shoal serves. */
  if (field(p, "listenerPath") || field(p, "listenerMetadata"))
    return sh_error(err, 400,
                    PFX "listenerPath: seccomp notify listeners are not "
                        "supported");
  const json_t *am = field(p, "archMap");
  if (am && !json_is_array(am))
    return sh_error(err, 400, PFX "archMap: not a list");
  size_t i;
  const json_t *e;
  json_array_foreach(am, i, e) {
    char w[64];
    snprintf(w, sizeof w, "archMap[%zu]", i);
    if (!json_is_object(e))
      return sh_error(err, 400, PFX "%s: not an object", w);
    char w2[96];
    snprintf(w2, sizeof w2, "%s.architecture", w);
    if (check_str(field(e, "architecture"), w2, arches, "architecture", err) <
        0)
      return -1;
    snprintf(w2, sizeof w2, "%s.subArchitectures", w);
    if (check_strlist(field(e, "subArchitectures"), w2, arches, "architecture",
                      err) < 0)
      return -1;
  }
  if (json_array_size(field(p, "architectures")) > 0 && json_array_size(am) > 0)
    return sh_error(err, 400,
                    PFX "both 'architectures' and 'archMap' are specified, "
                        "use either 'architectures' or 'archMap'");
  const json_t *sc = field(p, "syscalls");
  if (sc && !json_is_array(sc))
    return sh_error(err, 400, PFX "syscalls: not a list");
  json_array_foreach(sc, i, e) {
    if (check_syscall(e, i, err) < 0)
      return -1;
  }
  if ((!da || !*json_string_value(da)) && json_array_size(sc) > 0)
    return sh_error(err, 400, PFX "defaultAction: missing");
  return 0;
}

int seccomp_profile_parse(const char *text, size_t len, seccomp_profile **out,
                          sh_err *err) {
  json_t *doc = NULL;
  if (jx_parse_object(text, len, &doc, err) < 0)
    return sh_err_wrap(err, "decoding seccomp profile failed");
  if (check_profile(doc, err) < 0) {
    json_decref(doc);
    return -1;
  }
  seccomp_profile *p = xcalloc(1, sizeof *p);
  p->doc = doc;
  *out = p;
  return 0;
}

int seccomp_profile_load(const char *path, seccomp_profile **out, sh_err *err) {
  cleanup_free char *text = NULL;
  size_t len = 0;
  if (read_file(path, &text, &len, err) < 0)
    return -1;
  if (seccomp_profile_parse(text, len, out, err) < 0) {
    err->status = 500; /* the host's file, not the caller's request */
    return sh_err_wrap(err, "%s", path);
  }
  return 0;
}

void seccomp_profile_free(seccomp_profile *p) {
  if (!p)
    return;
  json_decref(p->doc);
  free(p);
}

/* ---- the host ---- */

#if defined(__x86_64__) && !defined(__ILP32__)
#define NATIVE_ARCH "amd64", "SCMP_ARCH_X86_64"
#elif defined(__i386__)
#define NATIVE_ARCH "x86", "SCMP_ARCH_X86"
#elif defined(__aarch64__)
#define NATIVE_ARCH "arm64", "SCMP_ARCH_AARCH64"
#elif defined(__arm__)
#define NATIVE_ARCH "arm", "SCMP_ARCH_ARM"
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define NATIVE_ARCH "ppc64le", "SCMP_ARCH_PPC64LE"
#elif defined(__powerpc64__)
#define NATIVE_ARCH "ppc64", "SCMP_ARCH_PPC64"
#elif defined(__s390x__)
#define NATIVE_ARCH "s390x", "SCMP_ARCH_S390X"
#elif defined(__riscv) && __riscv_xlen == 64
#define NATIVE_ARCH "riscv64", "SCMP_ARCH_RISCV64"
#else
#define NATIVE_ARCH NULL, NULL
#endif

void seccomp_target_host(struct seccomp_target *t, const char *const *caps) {
  static const char *const native[2] = {NATIVE_ARCH};
  memset(t, 0, sizeof *t);
  t->arch = native[0];
  t->scmp_arch = native[1];
  t->caps = caps;
  struct utsname u;
  if (uname(&u) == 0 && sscanf(u.release, "%u.%u", &t->kernel, &t->major) != 2)
    t->kernel = t->major = 0;
}

/* ---- conversion ---- */

static bool list_has(const json_t *list, const char *s) {
  size_t i;
  const json_t *e;
  json_array_foreach(list, i, e) {
    if (s && strcmp(json_string_value(e), s) == 0)
      return true;
  }
  return false;
}

static bool has_cap(const struct seccomp_target *t, const char *cap) {
  for (size_t i = 0; t->caps && t->caps[i]; i++)
    if (strcmp(t->caps[i], cap) == 0)
      return true;
  return false;
}

/* 1: the host's kernel is at least minKernel; 0: older; -1: none given. */
static int kernel_at_least(const struct seccomp_target *t, const json_t *f) {
  const char *v = jx_str(f, "minKernel", "");
  unsigned k, m;
  if (!*v || parse_kernel(v, &k, &m) < 0)
    return -1;
  return t->kernel > k || (t->kernel == k && t->major >= m);
}

static bool excluded(const json_t *f, const struct seccomp_target *t) {
  if (!f)
    return false;
  const json_t *a = field(f, "arches");
  if (json_array_size(a) > 0 && list_has(a, t->arch))
    return true;
  size_t i;
  const json_t *c;
  json_array_foreach(field(f, "caps"), i, c) {
    if (has_cap(t, json_string_value(c)))
      return true;
  }
  return kernel_at_least(t, f) == 1;
}

static bool included(const json_t *f, const struct seccomp_target *t) {
  if (!f)
    return true;
  const json_t *a = field(f, "arches");
  if (json_array_size(a) > 0 && !list_has(a, t->arch))
    return false;
  size_t i;
  const json_t *c;
  json_array_foreach(field(f, "caps"), i, c) {
    if (!has_cap(t, json_string_value(c)))
      return false;
  }
  return kernel_at_least(t, f) != 0;
}

/* Copies, never shares: one profile serves containers made on many
 * threads. */
static void copy_field(json_t *dst, const json_t *src, const char *k) {
  const json_t *v = field(src, k);
  if (v)
    json_object_set_new(dst, k, json_deep_copy(v));
}

static void extend_copy(json_t *dst, const json_t *src) {
  size_t i;
  const json_t *e;
  json_array_foreach(src, i, e) {
    json_array_append_new(dst, json_deep_copy(e));
  }
}

static json_t *oci_syscall(const json_t *s) {
  json_t *o = json_object();
  const json_t *names = field(s, "names");
  const char *name = jx_str(s, "name", "");
  json_object_set_new(o, "names",
                      *name   ? json_pack("[s]", name)
                      : names ? json_deep_copy(names)
                              : json_array());
  copy_field(o, s, "action");
  copy_field(o, s, "errnoRet");
  const json_t *args = field(s, "args");
  if (json_array_size(args) > 0) {
    json_t *out = json_array();
    size_t i;
    const json_t *a;
    json_array_foreach(args, i, a) {
      json_t *oa = json_object();
      static const char *const keys[] = {"index", "value", "valueTwo", "op"};
      for (size_t k = 0; k < ARRAY_SIZE(keys); k++)
        copy_field(oa, a, keys[k]);
      json_array_append_new(out, oa);
    }
    json_object_set_new(o, "args", out);
  }
  return o;
}

json_t *seccomp_oci(const seccomp_profile *p, const struct seccomp_target *t) {
  const json_t *doc = p->doc;
  const char *da = jx_str(doc, "defaultAction", "");
  const json_t *sc = field(doc, "syscalls");
  if (!*da && json_array_size(sc) == 0)
    return NULL;
  json_t *o = json_pack("{s:s}", "defaultAction", da);
  copy_field(o, doc, "defaultErrnoRet");
  json_t *archs = json_array();
  const json_t *given = field(doc, "architectures");
  if (json_array_size(given) > 0) {
    extend_copy(archs, given);
  } else if (t->scmp_arch) {
    size_t i;
    const json_t *e;
    json_array_foreach(field(doc, "archMap"), i, e) {
      if (strcmp(jx_str(e, "architecture", ""), t->scmp_arch) != 0)
        continue;
      json_array_append_new(archs, json_string(t->scmp_arch));
      extend_copy(archs, field(e, "subArchitectures"));
      break;
    }
  }
  json_object_set_new(o, "architectures", archs);
  if (json_array_size(field(doc, "flags")) > 0)
    copy_field(o, doc, "flags");
  json_t *out = json_array();
  size_t i;
  const json_t *s;
  json_array_foreach(sc, i, s) {
    if (excluded(field(s, "excludes"), t) || !included(field(s, "includes"), t))
      continue;
    json_array_append_new(out, oci_syscall(s));
  }
  json_object_set_new(o, "syscalls", out);
  return o;
}

/* ---- the swarm API ---- */

/* Go's []byte in JSON: standard base64 with padding. */
static int decode_base64(const char *in, char **out, size_t *len, sh_err *err) {
  size_t n = strlen(in);
  if (n % 4 != 0)
    return sh_error(err, 400,
                    "seccomp profile: illegal base64 data at input byte %zu",
                    n - n % 4);
  unsigned char *buf = xmalloc(n / 4 * 3 + 1);
  int dl = n ? EVP_DecodeBlock(buf, (const unsigned char *)in, (int)n) : 0;
  if (dl < 0) {
    free(buf);
    return sh_error(err, 400, "seccomp profile: illegal base64 data");
  }
  /* EVP_DecodeBlock counts padding as zero bytes. */
  for (size_t k = n; k > 0 && in[k - 1] == '=' && dl > 0; k--)
    dl--;
  buf[dl] = '\0';
  *out = (char *)buf;
  *len = (size_t)dl;
  return 0;
}

int seccomp_from_swarm(const json_t *opts, enum seccomp_mode *mode,
                       seccomp_profile **custom, sh_err *err) {
  *mode = SECCOMP_MODE_DEFAULT;
  *custom = NULL;
  if (!opts || json_is_null(opts))
    return 0;
  const char *m = jx_str(opts, "Mode", "");
  const char *profile = jx_str(opts, "Profile", "");
  if (!*m || strcmp(m, "default") == 0)
    *mode = SECCOMP_MODE_DEFAULT;
  else if (strcmp(m, "unconfined") == 0)
    *mode = SECCOMP_MODE_UNCONFINED;
  else if (strcmp(m, "custom") == 0)
    *mode = SECCOMP_MODE_CUSTOM;
  else
    return sh_error(err, 400,
                    "invalid seccomp mode \"%s\": use default, unconfined or "
                    "custom",
                    m);
  if (*mode != SECCOMP_MODE_CUSTOM) {
    if (*profile)
      return sh_error(err, 400,
                      "a seccomp profile goes with seccomp mode \"custom\", "
                      "not \"%s\"",
                      *m ? m : "default");
    return 0;
  }
  if (!*profile)
    return sh_error(err, 400, "seccomp mode \"custom\" needs a profile");
  cleanup_free char *text = NULL;
  size_t len = 0;
  if (decode_base64(profile, &text, &len, err) < 0)
    return -1;
  return seccomp_profile_parse(text, len, custom, err);
}
