/* Seccomp programs compiled by shoald (seccomp/bpf.h): what crun would
 * make of a section and what it would refuse, and the cache (hits, one
 * program per section, the bound). Byte-for-byte against crun itself:
 * test_exec.c (it needs root and crun). */
#include "test.h"

#include "core/b64.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "seccomp/bpf.h"
#include "seccomp/seccomp.h"

#include <linux/filter.h>
#include <stdbool.h>
#include <stdint.h>
#include <linux/seccomp.h>

static json_t *section(const char *text) {
  json_error_t je;
  json_t *j = json_loads(text, 0, &je);
  if (!j)
    fprintf(stderr, "    bad test JSON: %s\n", je.text);
  return j;
}

/* The program of a section's JSON, NULL (and the message) if refused. */
static unsigned char *compile(const char *text, size_t *len, sh_err *err) {
  cleanup_json json_t *s = section(text);
  unsigned char *bpf = NULL;
  if (!s || seccomp_bpf_compile(s, &bpf, len, err) < 0)
    return NULL;
  return bpf;
}

/* Whether the program returns k somewhere (BPF_RET|BPF_K). */
static bool returns(const unsigned char *bpf, size_t len, uint32_t k) {
  const struct sock_filter *f = (const struct sock_filter *)bpf;
  for (size_t i = 0; i < len / sizeof *f; i++)
    if (f[i].code == (BPF_RET | BPF_K) && f[i].k == k)
      return true;
  return false;
}

static bool same(const unsigned char *a, size_t alen, const unsigned char *b,
                 size_t blen) {
  return a && b && alen == blen && memcmp(a, b, alen) == 0;
}

#define BASE                                                                   \
  "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": 38,"           \
  " \"architectures\": [\"SCMP_ARCH_X86_64\", \"SCMP_ARCH_X86\"],"             \
  " \"syscalls\": [{\"names\": [\"read\", \"write\"],"                         \
  " \"action\": \"SCMP_ACT_ALLOW\"}"

TEST(seccomp_bpf_program_as_crun_builds_it) {
  sh_err err = {0};
  size_t blen = 0, len = 0;
  cleanup_free unsigned char *base = compile(BASE "]}", &blen, &err);
  if (!base)
    FAIL_("%s", err.msg);
  CHECK(blen > 0 && blen % sizeof(struct sock_filter) == 0);
  CHECK(returns(base, blen, SECCOMP_RET_ERRNO | 38)); /* defaultErrnoRet */
  CHECK(returns(base, blen, SECCOMP_RET_ALLOW));
  CHECK(!returns(base, blen, SECCOMP_RET_ERRNO | 1));

  /* A name libseccomp does not know is skipped, as crun skips it. */
  cleanup_free unsigned char *unknown =
      compile(BASE ", {\"names\": [\"no_such_call\"],"
                   " \"action\": \"SCMP_ACT_ALLOW\"}]}",
              &len, &err);
  CHECK(same(base, blen, unknown, len));
  /* crun reads a rule's comparisons per known name only: with none known,
   * even a bad operator passes. */
  cleanup_free unsigned char *unread =
      compile(BASE ", {\"names\": [\"no_such_call\"],"
                   " \"action\": \"SCMP_ACT_ALLOW\", \"args\": ["
                   "  {\"index\": 0, \"op\": \"SCMP_CMP_ABOUT\"}]}]}",
              &len, &err);
  CHECK(same(base, blen, unread, len));
  /* A rule with the default's action and errno adds nothing... */
  cleanup_free unsigned char *dflt =
      compile(BASE ", {\"names\": [\"mkdir\"], \"action\": \"SCMP_ACT_ERRNO\","
                   " \"errnoRet\": 38}]}",
              &len, &err);
  CHECK(same(base, blen, dflt, len));
  /* ...with another errno it is a rule; EPERM when none is given. */
  cleanup_free unsigned char *eperm =
      compile(BASE ", {\"names\": [\"mkdir\"], \"action\": \"SCMP_ACT_ERRNO\""
                   "}]}",
              &len, &err);
  CHECK(eperm && !same(base, blen, eperm, len));
  CHECK(returns(eperm, len, SECCOMP_RET_ERRNO | 1));

  /* Comparisons: one index twice makes a rule per comparison, which is
   * another program than the first comparison alone. */
  cleanup_free unsigned char *one = compile(
      BASE ", {\"names\": [\"personality\"],"
           " \"action\": \"SCMP_ACT_ALLOW\", \"args\": ["
           "  {\"index\": 0, \"value\": 8, \"op\": \"SCMP_CMP_EQ\"}]}]}",
      &len, &err);
  size_t tlen = 0;
  cleanup_free unsigned char *twice = compile(
      BASE ", {\"names\": [\"personality\"],"
           " \"action\": \"SCMP_ACT_ALLOW\", \"args\": ["
           "  {\"index\": 0, \"value\": 8, \"op\": \"SCMP_CMP_EQ\"},"
           "  {\"index\": 0, \"value\": 131072, \"op\": \"SCMP_CMP_EQ\"}]}]}",
      &tlen, &err);
  CHECK(one && twice && !same(one, len, twice, tlen));
  CHECK(!same(base, blen, one, len));

  /* Only the section's architectures: x86 alone is another program. */
  cleanup_free unsigned char *x86 = compile(
      "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": 38,"
      " \"architectures\": [\"SCMP_ARCH_X86_64\"], \"syscalls\": ["
      " {\"names\": [\"read\", \"write\"], \"action\": \"SCMP_ACT_ALLOW\"}]}",
      &len, &err);
  CHECK(x86 && !same(base, blen, x86, len));
}

TEST(seccomp_bpf_refuses_what_crun_refuses) {
  static const struct {
    const char *section, *want;
  } bad[] = {
      {"{\"syscalls\": []}", "seccomp misses the default action"},
      {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"defaultErrnoRet\": 1}",
       "errno value specified for action `SCMP_ACT_ALLOW`"},
      {"{\"defaultAction\": \"SCMP_ACT_NOPE\"}",
       "invalid seccomp action `SCMP_ACT_NOPE`"},
      {"{\"defaultAction\": \"SCMP_ACT_ALLOW\","
       " \"architectures\": [\"SCMP_ARCH_NOPE\"]}",
       "seccomp unknown architecture NOPE"},
      {"{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": ["
       " {\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALLOW\","
       "  \"errnoRet\": 5}]}",
       "errno value specified for action `SCMP_ACT_ALLOW`"},
      {"{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": ["
       " {\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALLOW\", \"args\": ["
       "  {\"index\": 6, \"value\": 1, \"op\": \"SCMP_CMP_EQ\"}]}]}",
       "invalid seccomp index 0"},
      {"{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": ["
       " {\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALLOW\", \"args\": ["
       "  {\"index\": 0, \"value\": 1, \"op\": \"SCMP_CMP_ABOUT\"}]}]}",
       "seccomp get operator `SCMP_CMP_ABOUT`"},
  };
  for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
    sh_err err = {0};
    size_t len = 0;
    cleanup_free unsigned char *bpf = compile(bad[i].section, &len, &err);
    if (bpf || !strstr(err.msg, bad[i].want) || err.status != 400)
      FAIL_("case %zu: %s \"%s\", want \"%s\"", i, bpf ? "compiled" : "refused",
            err.msg, bad[i].want);
  }
}

/* A profile whose rules depend on CAP_SYS_ADMIN, and the section for each
 * target. */
static const char caps_profile[] =
    "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": 1,"
    " \"archMap\": [{\"architecture\": \"SCMP_ARCH_X86_64\","
    "   \"subArchitectures\": [\"SCMP_ARCH_X86\"]},"
    "  {\"architecture\": \"SCMP_ARCH_AARCH64\","
    "   \"subArchitectures\": [\"SCMP_ARCH_ARM\"]}],"
    " \"syscalls\": ["
    "  {\"names\": [\"read\", \"write\", \"exit\"],"
    "   \"action\": \"SCMP_ACT_ALLOW\"},"
    "  {\"names\": [\"unshare\", \"mount\"], \"action\": \"SCMP_ACT_ALLOW\","
    "   \"includes\": {\"caps\": [\"CAP_SYS_ADMIN\"]}}]}";

static json_t *caps_section(const char *const *caps, const char *arch,
                            const char *scmp_arch) {
  seccomp_profile *p = NULL;
  sh_err err = {0};
  if (seccomp_profile_parse(caps_profile, strlen(caps_profile), &p, &err) < 0)
    return NULL;
  struct seccomp_target t = {
      .arch = arch, .scmp_arch = scmp_arch, .caps = caps, .kernel = 6};
  json_t *o = seccomp_oci(p, &t);
  seccomp_profile_free(p);
  return o;
}

static void cache_freep(seccomp_bpf_cache **c) {
  seccomp_bpf_cache_free(*c);
}

TEST(seccomp_bpf_cache_hits_caps_and_bound) {
  static const char *const plain_caps[] = {"CAP_CHOWN", NULL};
  static const char *const admin_caps[] = {"CAP_CHOWN", "CAP_SYS_ADMIN", NULL};
  cleanup_json json_t *plain =
      caps_section(plain_caps, "amd64", "SCMP_ARCH_X86_64");
  cleanup_json json_t *admin =
      caps_section(admin_caps, "amd64", "SCMP_ARCH_X86_64");
  cleanup_json json_t *arm =
      caps_section(plain_caps, "arm64", "SCMP_ARCH_AARCH64");
  CHECK(plain && admin && arm);
  __attribute__((cleanup(cache_freep))) seccomp_bpf_cache *c =
      seccomp_bpf_cache_new(2);
  struct seccomp_bpf_stats st;
  sh_err err = {0};

  /* The first get compiles; the same section again is a hit, with the
   * same program, and so is an equal section with its keys in another
   * order (the key is the canonical JSON). */
  cleanup_free char *p1 = NULL, *p2 = NULL, *p3 = NULL;
  CHECK(seccomp_bpf_cache_get(c, plain, &p1, &err) == 0);
  CHECK(seccomp_bpf_cache_get(c, plain, &p2, &err) == 0);
  CHECK_STR_EQ(p1, p2);
  cleanup_json json_t *reordered = json_object();
  const char *k;
  json_t *v;
  const char *order[] = {"syscalls", "architectures", "defaultErrnoRet",
                         "defaultAction"};
  for (size_t i = 0; i < ARRAY_SIZE(order); i++)
    json_object_set(reordered, order[i], json_object_get(plain, order[i]));
  json_object_foreach(plain, k, v) {
    json_object_set(reordered, k, v);
  }
  CHECK(seccomp_bpf_cache_get(c, reordered, &p3, &err) == 0);
  CHECK_STR_EQ(p1, p3);
  seccomp_bpf_cache_stats(c, &st);
  CHECK_INT_EQ(st.misses, 1);
  CHECK_INT_EQ(st.hits, 2);
  CHECK_INT_EQ(st.entries, 1);
  /* The decoded program is what seccomp_bpf_compile makes. */
  unsigned char *raw = NULL;
  size_t rlen = 0;
  CHECK(seccomp_bpf_compile(plain, &raw, &rlen, &err) == 0);
  cleanup_free char *enc = b64_encode(raw, rlen);
  free(raw);
  CHECK_STR_EQ(enc, p1);

  /* Another bounding set: another section, another program. */
  cleanup_free char *a1 = NULL;
  CHECK(seccomp_bpf_cache_get(c, admin, &a1, &err) == 0);
  CHECK(strcmp(a1, p1) != 0);
  seccomp_bpf_cache_stats(c, &st);
  CHECK_INT_EQ(st.misses, 2);
  CHECK_INT_EQ(st.entries, 2);

  /* Bound 2: plain was used last, so the third program pushes admin out;
   * plain is still a hit, admin is compiled again (the same program). */
  cleanup_free char *p4 = NULL, *r1 = NULL, *p5 = NULL, *a2 = NULL;
  CHECK(seccomp_bpf_cache_get(c, plain, &p4, &err) == 0);
  CHECK(seccomp_bpf_cache_get(c, arm, &r1, &err) == 0);
  CHECK(strcmp(r1, p1) != 0 && strcmp(r1, a1) != 0);
  seccomp_bpf_cache_stats(c, &st);
  CHECK_INT_EQ(st.entries, 2);
  CHECK_INT_EQ(st.misses, 3);
  CHECK(seccomp_bpf_cache_get(c, plain, &p5, &err) == 0);
  seccomp_bpf_cache_stats(c, &st);
  CHECK_INT_EQ(st.misses, 3);
  CHECK(seccomp_bpf_cache_get(c, admin, &a2, &err) == 0);
  CHECK_STR_EQ(a2, a1);
  seccomp_bpf_cache_stats(c, &st);
  CHECK_INT_EQ(st.misses, 4);
  CHECK_INT_EQ(st.hits, 4);
  CHECK_INT_EQ(st.entries, 2);

  /* A section crun would refuse: the error, nothing kept. */
  cleanup_json json_t *bad = section("{\"defaultAction\": \"SCMP_ACT_NOPE\"}");
  char *none = NULL;
  CHECK(seccomp_bpf_cache_get(c, bad, &none, &err) < 0);
  CHECK(!none && strstr(err.msg, "SCMP_ACT_NOPE"));
  seccomp_bpf_cache_stats(c, &st);
  CHECK_INT_EQ(st.entries, 2);
}
