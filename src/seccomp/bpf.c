/* OCI linux.seccomp to BPF with libseccomp, as crun 1.8.1 does it
 * (src/libcrun/seccomp.c, libcrun_generate_seccomp), and the cache of
 * programs (see bpf.h). crun sets no filter attribute (no NNP, TSYNC or
 * LOG attribute, no optimisation level): libseccomp's defaults, here too.
 * The flags are not part of the program: crun passes them to seccomp(2)
 * when it installs the filter. */
#include "seccomp/bpf.h"

#include "core/b64.h"
#include "core/err.h"
#include "core/util.h"
#include "core/jsonx.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- compiling ---- */

static bool action_takes_errno(const char *a) {
  return strcmp(a, "SCMP_ACT_ERRNO") == 0 || strcmp(a, "SCMP_ACT_TRACE") == 0;
}

/* crun's get_seccomp_action: errno_ret goes into ERRNO and TRACE. */
static int action_of(const char *name, uint32_t errno_ret, uint32_t *out) {
  static const struct {
    const char *name;
    uint32_t act;
  } fixed[] = {
      {"SCMP_ACT_ALLOW", SCMP_ACT_ALLOW},
      {"SCMP_ACT_KILL", SCMP_ACT_KILL},
      {"SCMP_ACT_LOG", SCMP_ACT_LOG},
      {"SCMP_ACT_TRAP", SCMP_ACT_TRAP},
      {"SCMP_ACT_KILL_PROCESS", SCMP_ACT_KILL_PROCESS},
      {"SCMP_ACT_KILL_THREAD", SCMP_ACT_KILL_THREAD},
  };
  if (!name)
    return -1;
  if (strcmp(name, "SCMP_ACT_ERRNO") == 0) {
    *out = SCMP_ACT_ERRNO(errno_ret);
    return 0;
  }
  if (strcmp(name, "SCMP_ACT_TRACE") == 0) {
    *out = SCMP_ACT_TRACE(errno_ret);
    return 0;
  }
  for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
    if (strcmp(name, fixed[i].name) == 0) {
      *out = fixed[i].act;
      return 0;
    }
  return -1;
}

static enum scmp_compare operator_of(const char *name) {
  static const struct {
    const char *name;
    enum scmp_compare op;
  } ops[] = {
      {"SCMP_CMP_NE", SCMP_CMP_NE},
      {"SCMP_CMP_LT", SCMP_CMP_LT},
      {"SCMP_CMP_LE", SCMP_CMP_LE},
      {"SCMP_CMP_EQ", SCMP_CMP_EQ},
      {"SCMP_CMP_GE", SCMP_CMP_GE},
      {"SCMP_CMP_GT", SCMP_CMP_GT},
      {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
  };
  for (size_t i = 0; name && i < ARRAY_SIZE(ops); i++)
    if (strcmp(name, ops[i].name) == 0)
      return ops[i].op;
  return _SCMP_CMP_MIN; /* 0: none */
}

static void ctx_releasep(scmp_filter_ctx *ctx) {
  if (*ctx)
    seccomp_release(*ctx);
}

/* "SCMP_ARCH_X86_64" -> libseccomp's token for "x86_64"; 0 if unknown. */
static uint32_t arch_token(const char *arch) {
  char lower[32];
  if (strncmp(arch, "SCMP_ARCH_", 10) == 0)
    arch += 10;
  size_t n = strnlen(arch, sizeof lower - 1);
  for (size_t i = 0; i < n; i++)
    lower[i] = (char)tolower((unsigned char)arch[i]);
  lower[n] = '\0';
  return seccomp_arch_resolve_name(lower);
}

static uint64_t u64_of(const json_t *o, const char *k) {
  return (uint64_t)json_integer_value(json_object_get(o, k));
}

/* A rule's comparisons as crun reads them: at most 6; an index named
 * twice makes one rule per comparison (libseccomp ANDs a rule's
 * comparisons, and takes each index once). */
struct rule_args {
  struct scmp_arg_cmp cmp[6];
  size_t n;
  bool multiple;
};

static int rule_args(const json_t *args, size_t i, struct rule_args *ra,
                     sh_err *err) {
  memset(ra, 0, sizeof *ra);
  ra->n = json_array_size(args);
  if (ra->n > 6)
    ra->n = 6;
  unsigned count[6] = {0};
  for (size_t k = 0; k < ra->n; k++) {
    json_int_t index =
        json_integer_value(json_object_get(json_array_get(args, k), "index"));
    if (index < 0 || index >= 6)
      return sh_error(err, 400, "invalid seccomp index %zu", i);
    if (++count[index] > 1) {
      ra->multiple = true;
      break;
    }
  }
  for (size_t k = 0; k < ra->n; k++) {
    const json_t *a = json_array_get(args, k);
    const char *op = json_string_value(json_object_get(a, "op"));
    ra->cmp[k] = (struct scmp_arg_cmp){
        .arg = (unsigned)json_integer_value(json_object_get(a, "index")),
        .op = operator_of(op),
        .datum_a = u64_of(a, "value"),
        .datum_b = u64_of(a, "valueTwo"),
    };
    if (ra->cmp[k].op == _SCMP_CMP_MIN)
      return sh_error(err, 400, "seccomp get operator `%s`", op ? op : "");
  }
  return 0;
}

/* One syscall rule, for each of its names. */
static int add_rule(scmp_filter_ctx ctx, const json_t *s, size_t i,
                    uint32_t default_action, sh_err *err) {
  const char *aname = json_string_value(json_object_get(s, "action"));
  const json_t *er = json_object_get(s, "errnoRet");
  uint32_t errno_ret = EPERM;
  if (er && !json_is_null(er)) {
    if (!aname || !action_takes_errno(aname))
      return sh_error(err, 400, "errno value specified for action `%s`",
                      aname ? aname : "");
    errno_ret = (uint32_t)json_integer_value(er);
  }
  uint32_t action;
  if (action_of(aname, errno_ret, &action) < 0)
    return sh_error(err, 400, "invalid seccomp action `%s`",
                    aname ? aname : "");
  if (action == default_action)
    return 0;

  const json_t *args = json_object_get(s, "args");
  struct rule_args ra = {.n = 0};
  bool prepared = false;
  size_t n;
  const json_t *name;
  json_array_foreach(json_object_get(s, "names"), n, name) {
    const char *nm = json_string_value(name);
    int nr = nm ? seccomp_syscall_resolve_name(nm) : __NR_SCMP_ERROR;
    if (nr == __NR_SCMP_ERROR)
      continue; /* crun: "unknown seccomp syscall ignored" */
    int rc = 0;
    if (!json_is_array(args)) {
      rc = seccomp_rule_add(ctx, action, nr, 0);
    } else {
      /* crun reads the comparisons for each known name: a rule whose
       * names are all unknown is never checked. */
      if (!prepared && rule_args(args, i, &ra, err) < 0)
        return -1;
      prepared = true;
      if (!ra.multiple)
        rc = seccomp_rule_add_array(ctx, action, nr, (unsigned)ra.n, ra.cmp);
      else
        for (size_t r = 0; r < ra.n && rc >= 0; r++)
          rc = seccomp_rule_add_array(ctx, action, nr, 1, &ra.cmp[r]);
    }
    if (rc < 0)
      return sh_errno(err, -rc, "seccomp rule for `%s`", nm);
  }
  return 0;
}

/* What seccomp_export_bpf wrote (libseccomp 2.5 has no in-memory export). */
static int export_bpf(scmp_filter_ctx ctx, unsigned char **bpf, size_t *len,
                      sh_err *err) {
  cleanup_fd int fd = memfd_create("seccomp-bpf", MFD_CLOEXEC);
  if (fd < 0)
    return sh_errno(err, errno, "memfd_create");
  int rc = seccomp_export_bpf(ctx, fd);
  if (rc < 0)
    return sh_errno(err, -rc, "seccomp_export_bpf");
  struct stat st;
  if (fstat(fd, &st) < 0)
    return sh_errno(err, errno, "fstat");
  size_t size = (size_t)st.st_size;
  unsigned char *buf = xmalloc(size ? size : 1);
  size_t got = 0;
  while (got < size) {
    ssize_t r = pread(fd, buf + got, size - got, (off_t)got);
    if (r <= 0) {
      free(buf);
      return sh_errno(err, r < 0 ? errno : EIO, "reading the seccomp program");
    }
    got += (size_t)r;
  }
  *bpf = buf;
  *len = size;
  return 0;
}

int seccomp_bpf_compile(const json_t *oci, unsigned char **bpf, size_t *len,
                        sh_err *err) {
  const char *da = json_string_value(json_object_get(oci, "defaultAction"));
  if (!da)
    return sh_error(err, 400, "seccomp misses the default action");
  const json_t *der = json_object_get(oci, "defaultErrnoRet");
  uint32_t default_errno = EPERM;
  if (der && !json_is_null(der)) {
    if (!action_takes_errno(da))
      return sh_error(err, 400, "errno value specified for action `%s`", da);
    default_errno = (uint32_t)json_integer_value(der);
  }
  uint32_t default_action;
  if (action_of(da, default_errno, &default_action) < 0)
    return sh_error(err, 400, "invalid seccomp action `%s`", da);

  __attribute__((cleanup(ctx_releasep))) scmp_filter_ctx ctx =
      seccomp_init(default_action);
  if (!ctx)
    return sh_error(err, 500, "error seccomp_init");

  size_t i;
  const json_t *e;
  json_array_foreach(json_object_get(oci, "architectures"), i, e) {
    const char *arch = json_string_value(e);
    uint32_t tok = arch ? arch_token(arch) : 0;
    if (!tok)
      return sh_error(err, 400, "seccomp unknown architecture %s",
                      !arch                                  ? ""
                      : strncmp(arch, "SCMP_ARCH_", 10) == 0 ? arch + 10
                                                             : arch);
    int rc = seccomp_arch_add(ctx, tok);
    if (rc < 0 && rc != -EEXIST)
      return sh_errno(err, -rc, "seccomp adding architecture");
  }
  json_array_foreach(json_object_get(oci, "syscalls"), i, e) {
    if (add_rule(ctx, e, i, default_action, err) < 0)
      return -1;
  }
  return export_bpf(ctx, bpf, len, err);
}

/* ---- the cache ---- */

struct entry {
  unsigned char key[32];
  char *b64;
  unsigned long used; /* the cache's clock at the last hit */
};

struct seccomp_bpf_cache {
  pthread_mutex_t mu;
  struct entry *e;
  size_t n, max;
  unsigned long clock, hits, misses;
};

seccomp_bpf_cache *seccomp_bpf_cache_new(size_t max) {
  seccomp_bpf_cache *c = xcalloc(1, sizeof *c);
  pthread_mutex_init(&c->mu, NULL);
  c->max = max ? max : 1;
  c->e = xcalloc(c->max, sizeof *c->e);
  return c;
}

void seccomp_bpf_cache_free(seccomp_bpf_cache *c) {
  if (!c)
    return;
  for (size_t i = 0; i < c->n; i++)
    free(c->e[i].b64);
  free(c->e);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

/* SHA-256 of the canonical JSON (sorted keys, compact). */
static void key_of(const json_t *oci, unsigned char key[32]) {
  cleanup_free char *s = jx_dumps(oci, JSON_COMPACT | JSON_SORT_KEYS, NULL);
  unsigned int n = 0;
  EVP_Digest(s ? s : "", s ? strlen(s) : 0, key, &n, EVP_sha256(), NULL);
}

int seccomp_bpf_cache_get(seccomp_bpf_cache *c, const json_t *oci, char **b64,
                          sh_err *err) {
  unsigned char key[32];
  key_of(oci, key);
  pthread_mutex_lock(&c->mu);
  c->clock++;
  for (size_t i = 0; i < c->n; i++)
    if (memcmp(c->e[i].key, key, sizeof key) == 0) {
      c->e[i].used = c->clock;
      c->hits++;
      *b64 = xstrdup(c->e[i].b64);
      pthread_mutex_unlock(&c->mu);
      return 0;
    }
  c->misses++;
  unsigned char *bpf = NULL;
  size_t len = 0;
  if (seccomp_bpf_compile(oci, &bpf, &len, err) < 0) {
    pthread_mutex_unlock(&c->mu);
    return -1;
  }
  struct entry *slot = &c->e[c->n];
  if (c->n == c->max) { /* the least recently used goes */
    slot = &c->e[0];
    for (size_t i = 1; i < c->n; i++)
      if (c->e[i].used < slot->used)
        slot = &c->e[i];
    free(slot->b64);
  } else {
    c->n++;
  }
  memcpy(slot->key, key, sizeof key);
  slot->b64 = b64_encode(bpf, len);
  slot->used = c->clock;
  free(bpf);
  *b64 = xstrdup(slot->b64);
  pthread_mutex_unlock(&c->mu);
  return 0;
}

void seccomp_bpf_cache_stats(seccomp_bpf_cache *c,
                             struct seccomp_bpf_stats *out) {
  pthread_mutex_lock(&c->mu);
  *out = (struct seccomp_bpf_stats){
      .hits = c->hits, .misses = c->misses, .entries = c->n};
  pthread_mutex_unlock(&c->mu);
}
