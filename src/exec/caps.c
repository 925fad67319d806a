/* Container capabilities (see caps.h). */
#include "exec/caps.h"

#include "core/err.h"
#include "core/util.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

const char *const exec_default_caps[] = {"CAP_CHOWN",
                                         "CAP_DAC_OVERRIDE",
                                         "CAP_FSETID",
                                         "CAP_FOWNER",
                                         "CAP_MKNOD",
                                         "CAP_NET_RAW",
                                         "CAP_SETGID",
                                         "CAP_SETUID",
                                         "CAP_SETFCAP",
                                         "CAP_SETPCAP",
                                         "CAP_NET_BIND_SERVICE",
                                         "CAP_SYS_CHROOT",
                                         "CAP_KILL",
                                         "CAP_AUDIT_WRITE",
                                         NULL};

/* Every capability Linux 6.1 knows, in number order. */
static const char *const all_caps[] = {"CAP_CHOWN",
                                       "CAP_DAC_OVERRIDE",
                                       "CAP_DAC_READ_SEARCH",
                                       "CAP_FOWNER",
                                       "CAP_FSETID",
                                       "CAP_KILL",
                                       "CAP_SETGID",
                                       "CAP_SETUID",
                                       "CAP_SETPCAP",
                                       "CAP_LINUX_IMMUTABLE",
                                       "CAP_NET_BIND_SERVICE",
                                       "CAP_NET_BROADCAST",
                                       "CAP_NET_ADMIN",
                                       "CAP_NET_RAW",
                                       "CAP_IPC_LOCK",
                                       "CAP_IPC_OWNER",
                                       "CAP_SYS_MODULE",
                                       "CAP_SYS_RAWIO",
                                       "CAP_SYS_CHROOT",
                                       "CAP_SYS_PTRACE",
                                       "CAP_SYS_PACCT",
                                       "CAP_SYS_ADMIN",
                                       "CAP_SYS_BOOT",
                                       "CAP_SYS_NICE",
                                       "CAP_SYS_RESOURCE",
                                       "CAP_SYS_TIME",
                                       "CAP_SYS_TTY_CONFIG",
                                       "CAP_MKNOD",
                                       "CAP_LEASE",
                                       "CAP_AUDIT_WRITE",
                                       "CAP_AUDIT_CONTROL",
                                       "CAP_SETFCAP",
                                       "CAP_MAC_OVERRIDE",
                                       "CAP_MAC_ADMIN",
                                       "CAP_SYSLOG",
                                       "CAP_WAKE_ALARM",
                                       "CAP_BLOCK_SUSPEND",
                                       "CAP_AUDIT_READ",
                                       "CAP_PERFMON",
                                       "CAP_BPF",
                                       "CAP_CHECKPOINT_RESTORE",
                                       NULL};

/* The static name for n ("net_admin", "CAP_NET_ADMIN"), "ALL", or NULL
 * with the error. */
static const char *canon(const json_t *n, sh_err *err) {
  const char *s = json_string_value(n);
  if (!s)
    return sh_error(err, 400, "capabilities must be strings"), NULL;
  char up[64];
  size_t i = 0;
  for (; s[i] && i < sizeof up - 1; i++)
    up[i] = (char)toupper((unsigned char)s[i]);
  up[i] = 0;
  if (strcmp(up, "ALL") == 0)
    return "ALL";
  char full[72];
  snprintf(full, sizeof full, "%s%s", str_has_prefix(up, "CAP_") ? "" : "CAP_",
           up);
  for (const char *const *c = all_caps; *c; c++)
    if (strcmp(*c, full) == 0)
      return *c;
  sh_error(err, 400, "unknown capability: \"%s\"", full);
  return NULL;
}

static bool in(const char *const *v, size_t n, const char *s) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(v[i], s) == 0)
      return true;
  return false;
}

/* names (a JSON array) as static names; *has_all says "ALL" was there. */
static int canon_all(const json_t *names, const char ***out, size_t *n,
                     bool *has_all, sh_err *err) {
  *n = 0;
  *has_all = false;
  *out = xcalloc(json_array_size(names) + 1, sizeof **out);
  size_t i;
  const json_t *x;
  json_array_foreach(names, i, x) {
    const char *c = canon(x, err);
    if (!c) {
      free(*out);
      *out = NULL;
      return -1;
    }
    if (strcmp(c, "ALL") == 0)
      *has_all = true;
    else if (!in(*out, *n, c))
      (*out)[(*n)++] = c;
  }
  return 0;
}

int exec_caps(const json_t *adds, const json_t *drops, const char ***out,
              sh_err *err) {
  if ((adds && !json_is_array(adds) && !json_is_null(adds)) ||
      (drops && !json_is_array(drops) && !json_is_null(drops)))
    return sh_error(err, 400, "CapabilityAdd and CapabilityDrop must be lists");
  const char **a = NULL, **d = NULL;
  size_t na, nd;
  bool all_a, all_d;
  if (canon_all(adds, &a, &na, &all_a, err) < 0)
    return -1;
  if (canon_all(drops, &d, &nd, &all_d, err) < 0) {
    free(a);
    return -1;
  }
  const char **v = xcalloc(ARRAY_SIZE(all_caps) + 1, sizeof *v);
  size_t n = 0;
  if (all_a) {
    for (const char *const *c = all_caps; *c; c++)
      if (!in(d, nd, *c))
        v[n++] = *c;
  } else {
    if (!all_d)
      for (const char *const *c = exec_default_caps; *c; c++)
        if (!in(d, nd, *c))
          v[n++] = *c;
    for (size_t i = 0; i < na; i++)
      if (!in(v, n, a[i]))
        v[n++] = a[i];
  }
  free(a);
  free(d);
  *out = v;
  return 0;
}

const char **exec_caps_held(void) {
  const char **v = xcalloc(ARRAY_SIZE(all_caps), sizeof *v);
  size_t n = 0;
  /* all_caps is in number order: the index is the capability. */
  for (size_t i = 0; all_caps[i]; i++)
    if (prctl(PR_CAPBSET_READ, (unsigned long)i, 0, 0, 0) == 1)
      v[n++] = all_caps[i];
  return v;
}
