#include "cli/flags.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/util.h"

/* ---- value parsers ------------------------------------------------------ */

int cli_parse_cidr(const char *in, char *out, size_t n) {
  const char *slash = strchr(in, '/');
  if (!slash)
    return -1;
  char ip[64];
  size_t iplen = (size_t)(slash - in);
  if (iplen == 0 || iplen >= sizeof ip)
    return -1;
  memcpy(ip, in, iplen);
  ip[iplen] = '\0';
  for (const char *p = slash + 1; *p; p++)
    if (!isdigit((unsigned char)*p))
      return -1;
  if (!slash[1] || strlen(slash + 1) > 3)
    return -1;
  int bits = atoi(slash + 1);
  unsigned char a[16];
  int af = strchr(ip, ':') ? AF_INET6 : AF_INET;
  int total = af == AF_INET ? 32 : 128;
  if (inet_pton(af, ip, a) != 1 || bits > total)
    return -1;
  for (int i = 0; i < total / 8; i++) {
    int keep = bits - i * 8;
    if (keep <= 0)
      a[i] = 0;
    else if (keep < 8)
      a[i] &= (unsigned char)(0xFF << (8 - keep));
  }
  char txt[INET6_ADDRSTRLEN];
  inet_ntop(af, a, txt, sizeof txt);
  snprintf(out, n, "%s/%d", txt, bits);
  return 0;
}

int cli_parse_node_addr(const char *in, char *out, size_t n, char *msg,
                        size_t msglen) {
  const char *a = in;
  if (!*a || strcmp(a, "tcp://") == 0) {
    snprintf(out, n, "0.0.0.0:2377");
    return 0;
  }
  if (str_has_prefix(a, "tcp://"))
    a += strlen("tcp://");
  if (strstr(a, "://") || !*a) {
    snprintf(msg, msglen, "Invalid proto, expected tcp: %s", in);
    return -1;
  }
  cleanup_free char *hostport = xstrndup(a, strcspn(a, "/"));
  cleanup_free char *host = NULL;
  const char *port = "";
  if (hostport[0] == '[') {
    char *rb = strchr(hostport, ']');
    if (!rb || (rb[1] && rb[1] != ':')) {
      snprintf(msg, msglen, "Invalid bind address format: %s", in);
      return -1;
    }
    host = xstrndup(hostport, (size_t)(rb - hostport + 1));
    port = rb[1] ? rb + 2 : "";
  } else {
    char *colon = strchr(hostport, ':');
    if (colon && strchr(colon + 1, ':')) {
      snprintf(msg, msglen, "Invalid bind address format: %s", in);
      return -1;
    }
    host = colon ? xstrndup(hostport, (size_t)(colon - hostport))
                 : xstrdup(hostport);
    port = colon ? colon + 1 : "";
  }
  for (const char *p = port; *p; p++) {
    if (!isdigit((unsigned char)*p)) {
      snprintf(msg, msglen,
               "parse \"tcp://%s\": invalid port \":%s\" after host", a, port);
      return -1;
    }
  }
  snprintf(out, n, "%s:%s", host[0] ? host : "0.0.0.0",
           port[0] ? port : "2377");
  return 0;
}

int cli_parse_external_ca(const char *spec, json_t **out, char *msg,
                          size_t msglen) {
  json_t *ca = json_object();
  json_t *opts = json_object();
  bool has_proto = false, has_url = false;
  cleanup_free char *copy = xstrdup(spec);
  char *save = NULL;
  int ret = 0;
  for (char *f = strtok_r(copy, ",", &save); f && ret == 0;
       f = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(f, '=');
    if (!eq) {
      snprintf(msg, msglen, "invalid field '%s' must be a key=value pair", f);
      ret = -1;
      break;
    }
    *eq = '\0';
    const char *v = eq + 1;
    cleanup_free char *key = xstrdup(f);
    for (char *k = key; *k; k++)
      *k = (char)tolower((unsigned char)*k);
    if (strcmp(key, "protocol") == 0) {
      has_proto = true;
      if (strcasecmp(v, "cfssl") != 0) {
        snprintf(msg, msglen, "unrecognized external CA protocol %s", v);
        ret = -1;
      }
      json_object_set_new(ca, "Protocol", json_string("cfssl"));
    } else if (strcmp(key, "url") == 0) {
      has_url = true;
      json_object_set_new(ca, "URL", json_string(v));
    } else if (strcmp(key, "cacert") == 0) {
      cleanup_free char *pem = NULL;
      size_t len = 0;
      sh_err e = {0};
      if (read_file(v, &pem, &len, &e) < 0) {
        snprintf(msg, msglen,
                 "unable to read CA cert for external CA: open %s: %s", v,
                 strerror(errno ? errno : ENOENT));
        ret = -1;
      } else if (!strstr(pem, "-----BEGIN")) {
        snprintf(msg, msglen, "CA cert for external CA must be in PEM format");
        ret = -1;
      } else {
        json_object_set_new(ca, "CACert", json_stringn(pem, len));
      }
    } else {
      json_object_set_new(opts, f, json_string(v));
    }
  }
  if (ret == 0 && !has_proto) {
    snprintf(msg, msglen, "the external-ca option needs a protocol= parameter");
    ret = -1;
  } else if (ret == 0 && !has_url) {
    snprintf(msg, msglen, "the external-ca option needs a url= parameter");
    ret = -1;
  }
  if (ret < 0) {
    json_decref(ca);
    json_decref(opts);
    return -1;
  }
  if (json_object_size(opts))
    json_object_set_new(ca, "Options", opts);
  else
    json_decref(opts);
  *out = ca;
  return 0;
}

static int parse_bool(const char *v, bool *out) {
  static const char *const t[] = {"1", "t", "T", "TRUE", "true", "True"};
  static const char *const f[] = {"0", "f", "F", "FALSE", "false", "False"};
  for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
    if (strcmp(v, t[i]) == 0) {
      *out = true;
      return 0;
    }
    if (strcmp(v, f[i]) == 0) {
      *out = false;
      return 0;
    }
  }
  return -1;
}

static void list_add(struct cli_flag *f, const char *v) {
  f->list = xrealloc(f->list, (f->nlist + 1) * sizeof *f->list);
  f->list[f->nlist++] = xstrdup(v);
}

static void list_clear(struct cli_flag *f) {
  for (size_t i = 0; i < f->nlist; i++)
    free(f->list[i]);
  free(f->list);
  f->list = NULL;
  f->nlist = 0;
}

/* Sets a flag from text; on error writes the reason (after "flag: "). */
static int flag_set(struct cli_flag *f, const char *v, bool initial, char *why,
                    size_t wl) {
  char *end = NULL;
  switch (f->type) {
  case CLI_FLAG_BOOL:
    if (parse_bool(v, &f->b) < 0) {
      snprintf(why, wl, "strconv.ParseBool: parsing \"%s\": invalid syntax", v);
      return -1;
    }
    return 0;
  case CLI_FLAG_STRING:
    free(f->s);
    f->s = xstrdup(v);
    return 0;
  case CLI_FLAG_INT64:
    errno = 0;
    f->i = strtoll(v, &end, 0);
    if (!*v || *end || errno) {
      snprintf(why, wl, "strconv.ParseInt: parsing \"%s\": %s", v,
               errno == ERANGE ? "value out of range" : "invalid syntax");
      return -1;
    }
    return 0;
  case CLI_FLAG_UINT64:
  case CLI_FLAG_UINT32: {
    errno = 0;
    bool neg = v[0] == '-' || v[0] == '+';
    unsigned long long u = neg ? 0 : strtoull(v, &end, 0);
    if (neg || !*v || *end || (errno && errno != ERANGE)) {
      snprintf(why, wl, "strconv.ParseUint: parsing \"%s\": invalid syntax", v);
      return -1;
    }
    if (errno == ERANGE || (f->type == CLI_FLAG_UINT32 && u > UINT32_MAX)) {
      snprintf(why, wl, "strconv.ParseUint: parsing \"%s\": value out of range",
               v);
      return -1;
    }
    f->u = u;
    return 0;
  }
  case CLI_FLAG_DURATION: {
    sh_err e = {0};
    if (clock_parse_duration(v, &f->i, &e) < 0) {
      snprintf(why, wl, "%s", e.msg);
      return -1;
    }
    return 0;
  }
  case CLI_FLAG_LIST:
    list_add(f, v);
    return 0;
  case CLI_FLAG_NODE_ADDR: {
    char out[512];
    if (cli_parse_node_addr(v, out, sizeof out, why, wl) < 0)
      return -1;
    free(f->s);
    f->s = xstrdup(out);
    return 0;
  }
  case CLI_FLAG_IPNET_SLICE: {
    /* the first explicit value replaces the default, later ones append */
    if (!initial && !f->changed)
      list_clear(f);
    cleanup_free char *copy = xstrdup(v);
    char *save = NULL;
    for (char *p = strtok_r(copy, ",", &save); p;
         p = strtok_r(NULL, ",", &save)) {
      while (isspace((unsigned char)*p))
        p++;
      char out[64];
      if (cli_parse_cidr(p, out, sizeof out) < 0) {
        snprintf(why, wl, "invalid string being converted to CIDR: %s", p);
        return -1;
      }
      list_add(f, out);
    }
    return 0;
  }
  case CLI_FLAG_FILTER: {
    if (!*v)
      return 0;
    const char *eq = strchr(v, '=');
    if (!eq) {
      snprintf(why, wl, "bad format of filter (expected name=value)");
      return -1;
    }
    const char *ks = v, *ke = eq;
    while (ks < ke && isspace((unsigned char)*ks))
      ks++;
    while (ke > ks && isspace((unsigned char)ke[-1]))
      ke--;
    const char *vs = eq + 1, *ve = v + strlen(v);
    while (vs < ve && isspace((unsigned char)*vs))
      vs++;
    while (ve > vs && isspace((unsigned char)ve[-1]))
      ve--;
    cleanup_free char *norm =
        xasprintf("%.*s=%.*s", (int)(ke - ks), ks, (int)(ve - vs), vs);
    for (char *c = norm; *c != '='; c++)
      *c = (char)tolower((unsigned char)*c);
    list_add(f, norm);
    return 0;
  }
  case CLI_FLAG_EXTERNAL_CA: {
    json_t *ca = NULL;
    if (cli_parse_external_ca(v, &ca, why, wl) < 0)
      return -1;
    json_decref(ca);
    list_add(f, v);
    return 0;
  }
  }
  return -1;
}

void cli_flags_free(struct cli_flag *flags, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(flags[i].s);
    flags[i].s = NULL;
    list_clear(&flags[i]);
  }
}

void cli_flags_reset(struct cli_flag *flags, size_t n) {
  for (size_t i = 0; i < n; i++) {
    struct cli_flag *f = &flags[i];
    free(f->s);
    f->s = NULL;
    list_clear(f);
    f->changed = f->b = false;
    f->i = 0;
    f->u = 0;
    if (f->dflt) {
      char why[256];
      flag_set(f, f->dflt, true, why, sizeof why);
    }
  }
}

static struct cli_flag *find_long(struct cli_flag *flags, size_t n,
                                  const char *name, size_t len) {
  for (size_t i = 0; i < n; i++)
    if (strlen(flags[i].name) == len && strncmp(flags[i].name, name, len) == 0)
      return &flags[i];
  return NULL;
}

static struct cli_flag *find_short(struct cli_flag *flags, size_t n, char c) {
  for (size_t i = 0; i < n; i++)
    if (flags[i].shorthand && flags[i].shorthand == c)
      return &flags[i];
  return NULL;
}

static int invalid(struct cli_flag *f, const char *v, const char *why,
                   char *msg, size_t msglen) {
  if (f->shorthand)
    snprintf(msg, msglen, "invalid argument \"%s\" for \"-%c, --%s\" flag: %s",
             v, f->shorthand, f->name, why);
  else
    snprintf(msg, msglen, "invalid argument \"%s\" for \"--%s\" flag: %s", v,
             f->name, why);
  return -1;
}

int cli_flags_parse(struct cli_flag *flags, size_t n, int argc, char **argv,
                    char ***args, int *nargs, bool *help, bool *dash_h,
                    char *msg, size_t msglen) {
  cli_flags_reset(flags, n);
  *args = xcalloc((size_t)argc + 1, sizeof **args);
  *nargs = 0;
  *help = *dash_h = false;
  char why[512];
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) {
      for (i++; i < argc; i++)
        (*args)[(*nargs)++] = argv[i];
      break;
    }
    if (a[0] != '-' || a[1] == '\0') {
      (*args)[(*nargs)++] = argv[i];
      continue;
    }
    if (a[1] == '-') {
      const char *name = a + 2;
      if (name[0] == '-' || name[0] == '=') {
        snprintf(msg, msglen, "bad flag syntax: %s", a);
        return -1;
      }
      const char *eq = strchr(name, '=');
      size_t len = eq ? (size_t)(eq - name) : strlen(name);
      if (len == 4 && strncmp(name, "help", 4) == 0) {
        bool hv = true;
        if (eq && parse_bool(eq + 1, &hv) < 0) {
          snprintf(msg, msglen,
                   "invalid argument \"%s\" for \"-h, --help\" flag: "
                   "strconv.ParseBool: parsing \"%s\": invalid syntax",
                   eq + 1, eq + 1);
          return -1;
        }
        *help = *help || hv;
        continue;
      }
      struct cli_flag *f = find_long(flags, n, name, len);
      if (!f) {
        snprintf(msg, msglen, "unknown flag: --%.*s", (int)len, name);
        return -1;
      }
      const char *v;
      if (eq)
        v = eq + 1;
      else if (f->type == CLI_FLAG_BOOL)
        v = "true";
      else if (i + 1 < argc)
        v = argv[++i];
      else {
        snprintf(msg, msglen, "flag needs an argument: --%s", f->name);
        return -1;
      }
      if (flag_set(f, v, false, why, sizeof why) < 0)
        return invalid(f, v, why, msg, msglen);
      f->changed = true;
      continue;
    }
    /* one or more shorthands: -q, -qf x, -fx, -f=x */
    for (const char *p = a + 1; *p; p++) {
      if (*p == 'h') {
        *help = *dash_h = true;
        continue;
      }
      struct cli_flag *f = find_short(flags, n, *p);
      if (!f) {
        snprintf(msg, msglen, "unknown shorthand flag: '%c' in -%s", *p, p);
        return -1;
      }
      const char *v;
      bool rest_used = true; /* the value used the rest of this word */
      if (p[1] == '=') {
        v = p + 2;
      } else if (f->type == CLI_FLAG_BOOL) {
        v = "true";
        rest_used = false;
      } else if (p[1]) {
        v = p + 1;
      } else if (i + 1 < argc) {
        v = argv[++i];
      } else {
        snprintf(msg, msglen, "flag needs an argument: '%c' in -%s", *p, p);
        return -1;
      }
      if (flag_set(f, v, false, why, sizeof why) < 0)
        return invalid(f, v, why, msg, msglen);
      f->changed = true;
      if (rest_used)
        break;
    }
  }
  return 0;
}

struct cli_flag *cli_flag(struct cli_cmd *cmd, const char *name) {
  struct cli_flag *f = find_long(cmd->flags, cmd->nflags, name, strlen(name));
  if (!f)
    abort(); /* a typo in a command table, not user input */
  return f;
}

int cli_cmd_parse(struct cli_cmd *cmd, int argc, char **argv, char ***args,
                  int *nargs, int *rc, FILE *out, FILE *errf) {
  char msg[1024];
  bool help = false, dash_h = false;
  if (cli_flags_parse(cmd->flags, cmd->nflags, argc, argv, args, nargs, &help,
                      &dash_h, msg, sizeof msg) < 0) {
    fprintf(errf, "%s\n\nUsage:  %s\n\nRun '%s --help' for more information\n",
            msg, cmd->use, cmd->path);
    *rc = 125;
    goto fail;
  }
  if (help) {
    if (dash_h)
      fprintf(out, "Flag shorthand -h has been deprecated, use --help\n");
    fputs(cmd->help, out);
    *rc = 0;
    goto fail;
  }
  int n = *nargs;
  const char *bin = "shoal";
  switch (cmd->rule) {
  case CLI_ARGS_NONE:
    if (n == 0)
      return 0;
    fprintf(errf,
            "%s: '%s' accepts no arguments\n\nUsage:  %s\n\nRun '%s --help' "
            "for more information\n",
            bin, cmd->path, cmd->use, cmd->path);
    break;
  case CLI_ARGS_EXACT:
    if (n == cmd->nargs)
      return 0;
    fprintf(errf,
            "%s: '%s' requires %d argument%s\n\nUsage:  %s\n\nRun '%s --help' "
            "for more information\n",
            bin, cmd->path, cmd->nargs, cmd->nargs == 1 ? "" : "s", cmd->use,
            cmd->path);
    break;
  case CLI_ARGS_MIN:
    if (n >= cmd->nargs)
      return 0;
    fprintf(errf,
            "%s: '%s' requires at least %d argument%s\n\nUsage:  %s\n\nSee "
            "'%s --help' for more information\n",
            bin, cmd->path, cmd->nargs, cmd->nargs == 1 ? "" : "s", cmd->use,
            cmd->path);
    break;
  case CLI_ARGS_ANY:
    return 0;
  }
  *rc = 1;
fail:
  free(*args);
  *args = NULL;
  return -1;
}
