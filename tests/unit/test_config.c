/* daemon.json (daemon/config.h): dockerd's rules and messages, and the
 * pool picking the local bridges use (overlay/internal.h). */
#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "overlay/internal.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Writes text to a fresh file; returns its path (caller frees, unlinks). */
static char *write_tmp(const char *text) {
  char *path = xstrdup("/tmp/shoal-config-XXXXXX");
  int fd = mkstemp(path);
  if (fd < 0)
    abort();
  if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
    abort();
  close(fd);
  return path;
}

/* The error text after dockerd's "unable to configure ... with file X: ". */
static const char *read_err(const char *text, const json_t *flags,
                            sh_err *err) {
  cleanup_free char *p = write_tmp(text);
  json_t *out = NULL;
  int rc = daemon_config_read(p, true, flags, &out, err);
  unlink(p);
  json_decref(out);
  if (rc == 0)
    return NULL;
  const char *colon = strstr(err->msg, p);
  return colon ? colon + strlen(p) + 2 : err->msg;
}

TEST(config_conflicts_unknown_and_types_as_dockerd) {
  sh_err err = {0};
  cleanup_json json_t *flags = json_pack("{s:s, s:s}", "debug", "true",
                                         "registry-mirrors", "[http://a/]");
  CHECK_STR_EQ(read_err("{\"debug\": false, \"registry-mirrors\": "
                        "[\"http://b:5000\"], \"labels\": [\"x=1\"]}",
                        flags, &err),
               "the following directives are specified both as a flag and in "
               "the configuration file: debug: (from flag: true, from file: "
               "false), registry-mirrors: (from flag: [http://a/], from file: "
               "[http://b:5000])");
  CHECK(strncmp(err.msg, "unable to configure the Docker daemon with file ",
                48) == 0);
  CHECK_STR_EQ(read_err("{\"zz\": 1, \"bogus\": true}", NULL, &err),
               "the following directives don't match any configuration "
               "option: bogus, zz");
  CHECK_STR_EQ(read_err("{\"live-restore\": true}", NULL, &err),
               "the following directives are dockerd's but shoald does not "
               "support them: live-restore");
  CHECK_STR_EQ(read_err("{\"debug\": \"yes\"}", NULL, &err),
               "invalid JSON: json: cannot unmarshal string into Go struct "
               "field Config.debug of type bool");
  CHECK_STR_EQ(read_err("{\"labels\": [\"a=1\", \"a=2\"]}", NULL, &err),
               "conflict labels for a=2 and a=1");
  CHECK_STR_EQ(read_err("{\"labels\": [\"com.docker.x=1\"]}", NULL, &err),
               "label com.docker.x=1 is not allowed: the namespaces "
               "com.docker.*, io.docker.*, and org.dockerproject.* are "
               "reserved for internal use");
  CHECK_STR_EQ(read_err("{\"log-level\": \"loud\"}", NULL, &err),
               "invalid logging level: loud");
  CHECK_STR_EQ(read_err("{\"max-concurrent-downloads\": -1}", NULL, &err),
               "invalid max concurrent downloads: -1");
  CHECK_STR_EQ(
      read_err("{\"registry-mirrors\": [\"10.0.0.1:5000\"]}", NULL, &err),
      "invalid mirror: no scheme specified for \"10.0.0.1:5000\": "
      "must use either 'https://' or 'http://'");
  /* An empty file and a BOM are fine, as in dockerd. */
  CHECK(read_err("  \n", NULL, &err) == NULL);
  CHECK(read_err("\xef\xbb\xbf{\"debug\": true}", NULL, &err) == NULL);
  /* A missing default file is no error; an explicit one is. */
  json_t *out = (json_t *)1;
  CHECK_INT_EQ(
      daemon_config_read("/nonexistent/daemon.json", false, NULL, &out, &err),
      0);
  CHECK(out == NULL);
  CHECK(daemon_config_read("/nonexistent/daemon.json", true, NULL, &out, &err) <
        0);
}

TEST(config_apply_and_reload_rules) {
  struct shoald_config cfg = {0};
  sh_err err = {0};
  cleanup_free char *p =
      write_tmp("{\"data-root\": \"/srv/shoal\", \"debug\": true, "
                "\"labels\": [\"zone=a\"], \"registry-mirrors\": "
                "[\"http://m:5000\"], \"max-concurrent-downloads\": 5, "
                "\"default-address-pools\": [{\"base\": \"10.10.0.0/16\", "
                "\"size\": 24}]}");
  cleanup_json json_t *file = NULL;
  CHECK_INT_EQ(daemon_config_read(p, true, NULL, &file, &err), 0);
  unlink(p);
  daemon_config_apply(&cfg, file, false);
  CHECK_STR_EQ(cfg.data_root, "/srv/shoal");
  CHECK(cfg.debug);
  CHECK_STR_EQ(cfg.labels[0], "zone=a");
  CHECK_STR_EQ(cfg.mirrors[0], "http://m:5000/");
  CHECK_INT_EQ(cfg.max_downloads, 5);
  CHECK_STR_EQ(jx_str(json_array_get(cfg.pools, 0), "Base", ""),
               "10.10.0.0/16");
  /* Reload: data-root is not reloadable; a key absent keeps its value,
   * max-concurrent-downloads goes back to its default. */
  cleanup_json json_t *again =
      json_pack("{s:s, s:b, s:[s]}", "data-root", "/elsewhere", "debug", 0,
                "registry-mirrors", "http://n:5000");
  daemon_config_apply(&cfg, again, true);
  CHECK_STR_EQ(cfg.data_root, "/srv/shoal");
  CHECK(!cfg.debug);
  CHECK_STR_EQ(cfg.mirrors[0], "http://n:5000/");
  CHECK_STR_EQ(cfg.labels[0], "zone=a");
  CHECK_INT_EQ(cfg.max_downloads, 0);
  daemon_config_free(&cfg);
}

TEST(config_pool_flag_and_picking) {
  sh_err err = {0};
  cleanup_json json_t *p = NULL;
  CHECK_INT_EQ(daemon_config_parse_pool("base=10.10.0.0/16,size=24", &p, &err),
               0);
  CHECK_INT_EQ(jx_int(p, "Size", 0), 24);
  json_t *bad = NULL;
  CHECK(daemon_config_parse_pool("base=10.10.0.0/16", &bad, &err) < 0);
  CHECK(daemon_config_parse_pool("base=10.10.0.0/16,size=8", &bad, &err) < 0);
  cleanup_json json_t *pools = json_pack("[O]", p);
  struct ipam_prefix out;
  char *none[] = {NULL};
  CHECK_INT_EQ(ov_pool_pick(none, 0, pools, &out, &err), 0);
  CHECK_INT_EQ(out.addr, 0x0a0a0000);
  CHECK_INT_EQ(out.len, 24);
  /* docker_gwbridge after docker0: the next /24. */
  char *used[] = {"10.10.0.1/24"};
  CHECK_INT_EQ(ov_pool_pick(used, 1, pools, &out, &err), 0);
  CHECK_INT_EQ(out.addr, 0x0a0a0100);
  char *all[] = {"10.10.0.0/16"};
  CHECK(ov_pool_pick(all, 1, pools, &out, &err) < 0);
  CHECK_STR_EQ(err.msg, "could not find an available, non-overlapping IPv4 "
                        "address pool among the defaults to assign to the "
                        "network");
}
