/* Seccomp profiles to OCI linux.seccomp: dockerd's includes/excludes by
 * capability, architecture and kernel; what is refused; the swarm API's
 * modes. Pure, plus Debian's profile file when the host has it. */
#include "test.h"

#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "seccomp/seccomp.h"

#include <unistd.h>

/* A small profile shaped like moby's default.json. */
static const char moby_like[] =
    "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": 1,"
    " \"archMap\": ["
    "  {\"architecture\": \"SCMP_ARCH_X86_64\","
    "   \"subArchitectures\": [\"SCMP_ARCH_X86\", \"SCMP_ARCH_X32\"]},"
    "  {\"architecture\": \"SCMP_ARCH_AARCH64\","
    "   \"subArchitectures\": [\"SCMP_ARCH_ARM\"]}],"
    " \"syscalls\": ["
    "  {\"names\": [\"read\", \"write\"], \"action\": \"SCMP_ACT_ALLOW\"},"
    "  {\"names\": [\"personality\"], \"action\": \"SCMP_ACT_ALLOW\","
    "   \"args\": [{\"index\": 0, \"value\": 8, \"op\": \"SCMP_CMP_EQ\"}]},"
    "  {\"names\": [\"arch_prctl\"], \"action\": \"SCMP_ACT_ALLOW\","
    "   \"includes\": {\"arches\": [\"amd64\", \"x32\"]}},"
    "  {\"names\": [\"cacheflush\"], \"action\": \"SCMP_ACT_ALLOW\","
    "   \"includes\": {\"arches\": [\"arm\", \"arm64\"]}},"
    "  {\"names\": [\"unshare\", \"setns\", \"mount\"],"
    "   \"action\": \"SCMP_ACT_ALLOW\","
    "   \"includes\": {\"caps\": [\"CAP_SYS_ADMIN\"]}},"
    "  {\"names\": [\"bpf\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 1,"
    "   \"excludes\": {\"caps\": [\"CAP_SYS_ADMIN\"]}},"
    "  {\"names\": [\"ptrace\"], \"action\": \"SCMP_ACT_ALLOW\","
    "   \"includes\": {\"minKernel\": \"4.8\"}},"
    "  {\"name\": \"old_call\", \"action\": \"SCMP_ACT_ALLOW\","
    "   \"excludes\": {\"minKernel\": \"5.0\", \"arches\": [\"s390x\"]}}"
    " ]}";

static const char *const no_caps[] = {"CAP_CHOWN", "CAP_KILL", NULL};
static const char *const admin_caps[] = {"CAP_CHOWN", "CAP_SYS_ADMIN", NULL};

static struct seccomp_target amd64(const char *const *caps) {
  return (struct seccomp_target){.arch = "amd64",
                                 .scmp_arch = "SCMP_ARCH_X86_64",
                                 .caps = caps,
                                 .kernel = 6,
                                 .major = 1};
}

/* The action of the first rule naming the syscall, NULL if none. */
static const char *rule_for(const json_t *oci, const char *name) {
  size_t i, k;
  const json_t *s, *n;
  json_array_foreach(json_object_get(oci, "syscalls"), i, s) {
    json_array_foreach(json_object_get(s, "names"), k, n) {
      if (strcmp(json_string_value(n), name) == 0)
        return jx_str(s, "action", "");
    }
  }
  return NULL;
}

static json_t *convert(const char *text, const struct seccomp_target *t) {
  seccomp_profile *p = NULL;
  sh_err err = {0};
  if (seccomp_profile_parse(text, strlen(text), &p, &err) < 0) {
    fprintf(stderr, "    parse: %s\n", err.msg);
    return NULL;
  }
  json_t *o = seccomp_oci(p, t);
  seccomp_profile_free(p);
  return o;
}

TEST(seccomp_caps_include_and_exclude_rules) {
  struct seccomp_target t = amd64(no_caps);
  cleanup_json json_t *plain = convert(moby_like, &t);
  CHECK(plain);
  /* Without CAP_SYS_ADMIN: no rule allows them, the default denies. */
  CHECK(!rule_for(plain, "unshare"));
  CHECK(!rule_for(plain, "setns"));
  CHECK(!rule_for(plain, "mount"));
  CHECK_STR_EQ(rule_for(plain, "bpf"), "SCMP_ACT_ERRNO");
  CHECK_STR_EQ(rule_for(plain, "read"), "SCMP_ACT_ALLOW");

  t = amd64(admin_caps);
  cleanup_json json_t *admin = convert(moby_like, &t);
  CHECK(admin);
  CHECK_STR_EQ(rule_for(admin, "unshare"), "SCMP_ACT_ALLOW");
  CHECK_STR_EQ(rule_for(admin, "setns"), "SCMP_ACT_ALLOW");
  CHECK_STR_EQ(rule_for(admin, "mount"), "SCMP_ACT_ALLOW");
  CHECK(!rule_for(admin, "bpf")); /* the ERRNO rule is excluded */
}

TEST(seccomp_arch_filtering_and_archmap) {
  struct seccomp_target t = amd64(no_caps);
  cleanup_json json_t *x = convert(moby_like, &t);
  CHECK(x);
  json_t *a = json_object_get(x, "architectures");
  CHECK_INT_EQ(json_array_size(a), 3);
  CHECK_STR_EQ(json_string_value(json_array_get(a, 0)), "SCMP_ARCH_X86_64");
  CHECK_STR_EQ(json_string_value(json_array_get(a, 1)), "SCMP_ARCH_X86");
  CHECK_STR_EQ(json_string_value(json_array_get(a, 2)), "SCMP_ARCH_X32");
  CHECK(rule_for(x, "arch_prctl"));
  CHECK(!rule_for(x, "cacheflush"));

  t.arch = "arm64";
  t.scmp_arch = "SCMP_ARCH_AARCH64";
  cleanup_json json_t *arm = convert(moby_like, &t);
  CHECK(arm);
  a = json_object_get(arm, "architectures");
  CHECK_INT_EQ(json_array_size(a), 2);
  CHECK_STR_EQ(json_string_value(json_array_get(a, 0)), "SCMP_ARCH_AARCH64");
  CHECK(!rule_for(arm, "arch_prctl"));
  CHECK(rule_for(arm, "cacheflush"));

  /* An architecture with no archMap entry gets none; excludes by arch. */
  t.arch = "s390x";
  t.scmp_arch = "SCMP_ARCH_S390X";
  t.kernel = 4;
  t.major = 4;
  cleanup_json json_t *s390 = convert(moby_like, &t);
  CHECK(s390);
  CHECK_INT_EQ(json_array_size(json_object_get(s390, "architectures")), 0);
  CHECK(!rule_for(s390, "old_call"));

  /* "architectures" given: used as is. */
  cleanup_json json_t *given =
      convert("{\"defaultAction\": \"SCMP_ACT_ALLOW\","
              " \"architectures\": [\"SCMP_ARCH_X86_64\"], \"syscalls\": []}",
              &t);
  CHECK(given);
  CHECK_INT_EQ(json_array_size(json_object_get(given, "architectures")), 1);
}

TEST(seccomp_min_kernel_default_errno_and_rule_fields) {
  struct seccomp_target t = amd64(no_caps);
  t.kernel = 4;
  t.major = 7;
  cleanup_json json_t *old = convert(moby_like, &t);
  CHECK(old);
  CHECK(!rule_for(old, "ptrace"));  /* minKernel 4.8 not met */
  CHECK(rule_for(old, "old_call")); /* excluded from 5.0 on */
  t.kernel = 5;
  t.major = 10;
  cleanup_json json_t *x = convert(moby_like, &t);
  CHECK(x);
  CHECK(rule_for(x, "ptrace"));
  CHECK(!rule_for(x, "old_call"));

  CHECK_STR_EQ(jx_str(x, "defaultAction", ""), "SCMP_ACT_ERRNO");
  CHECK_INT_EQ(jx_int(x, "defaultErrnoRet", -1), 1);
  /* Rules carry what crun reads, and nothing of the profile's own. */
  size_t i;
  json_t *s;
  bool seen_args = false;
  json_array_foreach(json_object_get(x, "syscalls"), i, s) {
    CHECK(!json_object_get(s, "includes") && !json_object_get(s, "excludes"));
    if (json_object_get(s, "args")) {
      json_t *a = json_array_get(json_object_get(s, "args"), 0);
      CHECK_INT_EQ(jx_int(a, "index", -1), 0);
      CHECK_INT_EQ(jx_int(a, "value", -1), 8);
      CHECK_STR_EQ(jx_str(a, "op", ""), "SCMP_CMP_EQ");
      seen_args = true;
    }
    if (strcmp(jx_str(s, "action", ""), "SCMP_ACT_ERRNO") == 0)
      CHECK_INT_EQ(jx_int(s, "errnoRet", -1), 1);
  }
  CHECK(seen_args);

  /* Neither defaultAction nor syscalls: seccomp off (dockerd). */
  cleanup_json json_t *off = convert("{}", &t);
  CHECK(!off);
}

TEST(seccomp_malformed_profiles_refused) {
  static const struct {
    const char *text, *want;
  } bad[] = {
      {"{\"defaultAction\": ", "decoding seccomp profile failed"},
      {"[]", "expected an object at the top level"},
      {"{\"defaultAction\": \"SCMP_ACT_MAYBE\"}",
       "defaultAction: \"SCMP_ACT_MAYBE\" is not a seccomp action"},
      {"{\"defaultAction\": 1}", "defaultAction: not a string"},
      {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"defaultErrnoRet\": -1}",
       "defaultErrnoRet"},
      {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"architectures\": "
       "[\"SCMP_ARCH_Z80\"]}",
       "architectures[0]: \"SCMP_ARCH_Z80\" is not a seccomp architecture"},
      {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": {}}",
       "syscalls: not a list"},
      {"{\"syscalls\": [{\"names\": [\"read\"], \"action\": "
       "\"SCMP_ACT_ALLOW\"}]}",
       "defaultAction: missing"},
      {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": "
       "[\"read\"]}]}",
       "syscalls[0].action: missing"},
      {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"name\": "
       "\"a\", \"names\": [\"b\"], \"action\": \"SCMP_ACT_ALLOW\"}]}",
       "both 'name' and 'names'"},
      {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": "
       "[\"read\"], \"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": 6, "
       "\"value\": 1, \"op\": \"SCMP_CMP_EQ\"}]}]}",
       "syscalls[0].args[0].index"},
      {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": "
       "[\"read\"], \"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": 0, "
       "\"value\": 1, \"op\": \"SCMP_CMP_LIKE\"}]}]}",
       "is not a seccomp comparison operator"},
      {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": "
       "[\"read\"], \"action\": \"SCMP_ACT_ALLOW\", \"includes\": "
       "{\"minKernel\": \"4\"}}]}",
       "invalid kernel version \"4\""},
      {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": "
       "[\"read\"], \"action\": \"SCMP_ACT_ALLOW\", \"excludes\": "
       "{\"caps\": \"CAP_SYS_ADMIN\"}}]}",
       "syscalls[0].excludes.caps: not a list"},
      {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"architectures\": "
       "[\"SCMP_ARCH_X86\"], \"archMap\": [{\"architecture\": "
       "\"SCMP_ARCH_X86_64\"}]}",
       "both 'architectures' and 'archMap'"},
      {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"listenerPath\": "
       "\"/run/x.sock\"}",
       "notify listeners are not supported"},
      {"{\"defaultAction\": \"SCMP_ACT_NOTIFY\"}",
       "\"SCMP_ACT_NOTIFY\" is not a seccomp action"},
  };
  for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
    seccomp_profile *p = NULL;
    sh_err err = {0};
    int rc = seccomp_profile_parse(bad[i].text, strlen(bad[i].text), &p, &err);
    if (rc >= 0 || err.status != 400 || !strstr(err.msg, bad[i].want)) {
      seccomp_profile_free(p);
      FAIL_("profile %zu: rc %d status %d \"%s\", want \"%s\"", i, rc,
            err.status, err.msg, bad[i].want);
    }
  }
}

TEST(seccomp_swarm_modes) {
  enum seccomp_mode m;
  seccomp_profile *p = NULL;
  sh_err err = {0};
  CHECK(seccomp_from_swarm(NULL, &m, &p, &err) == 0);
  CHECK(m == SECCOMP_MODE_DEFAULT && !p);
  cleanup_json json_t *unc = json_pack("{s:s}", "Mode", "unconfined");
  CHECK(seccomp_from_swarm(unc, &m, &p, &err) == 0);
  CHECK(m == SECCOMP_MODE_UNCONFINED && !p);

  /* {"defaultAction":"SCMP_ACT_ALLOW"} as Go's []byte: base64. */
  cleanup_json json_t *custom =
      json_pack("{s:s,s:s}", "Mode", "custom", "Profile",
                "eyJkZWZhdWx0QWN0aW9uIjoiU0NNUF9BQ1RfQUxMT1cifQ==");
  CHECK(seccomp_from_swarm(custom, &m, &p, &err) == 0);
  CHECK(m == SECCOMP_MODE_CUSTOM && p);
  struct seccomp_target t = amd64(no_caps);
  cleanup_json json_t *o = seccomp_oci(p, &t);
  seccomp_profile_free(p);
  p = NULL;
  CHECK_STR_EQ(jx_str(o, "defaultAction", ""), "SCMP_ACT_ALLOW");

  static const struct {
    const char *mode, *profile, *want;
  } bad[] = {
      {"strict", NULL, "invalid seccomp mode \"strict\""},
      {"custom", NULL, "needs a profile"},
      {"unconfined", "e30=", "goes with seccomp mode \"custom\""},
      {"custom", "not base64!", "illegal base64"},
      /* "{\"defaultAction\":\"NOPE\"}" */
      {"custom", "eyJkZWZhdWx0QWN0aW9uIjoiTk9QRSJ9",
       "\"NOPE\" is not a seccomp action"},
  };
  for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
    cleanup_json json_t *j = json_pack("{s:s}", "Mode", bad[i].mode);
    if (bad[i].profile)
      json_object_set_new(j, "Profile", json_string(bad[i].profile));
    sh_err e = {0};
    int rc = seccomp_from_swarm(j, &m, &p, &e);
    if (rc >= 0 || e.status != 400 || !strstr(e.msg, bad[i].want)) {
      seccomp_profile_free(p);
      FAIL_("case %zu: rc %d \"%s\", want \"%s\"", i, rc, e.msg, bad[i].want);
    }
  }
}

/* The file the daemon reads (Debian's golang-github-containers-common). */
TEST(seccomp_host_default_profile) {
  if (access(SECCOMP_DEFAULT_PROFILE, R_OK) != 0)
    SKIP("no %s", SECCOMP_DEFAULT_PROFILE);
  seccomp_profile *p = NULL;
  sh_err err = {0};
  CHECK(seccomp_profile_load(SECCOMP_DEFAULT_PROFILE, &p, &err) == 0);
  struct seccomp_target t;
  seccomp_target_host(&t, no_caps);
  cleanup_json json_t *plain = seccomp_oci(p, &t);
  seccomp_target_host(&t, admin_caps);
  cleanup_json json_t *admin = seccomp_oci(p, &t);
  seccomp_profile_free(p);
  CHECK(plain && admin);
  CHECK(jx_str(plain, "defaultAction", NULL));
  CHECK(json_array_size(json_object_get(plain, "syscalls")) > 10);
#if defined(__x86_64__)
  CHECK_STR_EQ(json_string_value(
                   json_array_get(json_object_get(plain, "architectures"), 0)),
               "SCMP_ARCH_X86_64");
#endif
  /* bpf: denied without CAP_SYS_ADMIN, allowed with it. */
  CHECK_STR_EQ(rule_for(plain, "bpf"), "SCMP_ACT_ERRNO");
  CHECK_STR_EQ(rule_for(admin, "bpf"), "SCMP_ACT_ALLOW");

  sh_err e2 = {0};
  CHECK(seccomp_profile_load("/nonexistent/seccomp.json", &p, &e2) < 0);
  CHECK(e2.msg[0]);
}
