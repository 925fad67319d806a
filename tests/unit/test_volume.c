#include "test.h"

#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "volume/volume.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static int rm_tree(const char *dir) {
  cleanup_free char *cmd = xasprintf("rm -rf '%s'", dir);
  return system(cmd);
}

TEST(volume_create_get_list_remove) {
  char root[] = "/tmp/shoal-volume-XXXXXX";
  CHECK(mkdtemp(root));
  sh_err err = {0};
  cleanup_json json_t *labels = json_pack("{s:s}", "tier", "db");
  cleanup_json json_t *v = NULL;
  CHECK_INT_EQ(volume_create(root, "data", labels, NULL, &v, &err), 0);
  CHECK_STR_EQ(jx_str(v, "Name", ""), "data");
  CHECK_STR_EQ(jx_str(v, "Driver", ""), "local");
  CHECK_STR_EQ(jx_str(v, "Scope", ""), "local");
  CHECK_STR_EQ(jx_str(v, "Labels.tier", ""), "db");
  CHECK(json_is_null(json_object_get(v, "Options")));
  cleanup_free char *mp = xasprintf("%s/volumes/data/_data", root);
  CHECK_STR_EQ(jx_str(v, "Mountpoint", ""), mp);
  CHECK(access(mp, F_OK) == 0);
  /* Go's time.RFC3339: seconds and Z */
  const char *at = jx_str(v, "CreatedAt", "");
  CHECK_INT_EQ(strlen(at), 20);
  CHECK(at[19] == 'Z');
  /* Again: the same volume, its labels kept (as dockerd). */
  cleanup_json json_t *again = NULL;
  CHECK_INT_EQ(volume_create(root, "data", NULL, NULL, &again, &err), 0);
  CHECK_STR_EQ(jx_str(again, "Labels.tier", ""), "db");
  /* Anonymous: a random name and dockerd's label. */
  cleanup_json json_t *anon = NULL;
  CHECK_INT_EQ(volume_create(root, NULL, NULL, NULL, &anon, &err), 0);
  CHECK_INT_EQ(strlen(jx_str(anon, "Name", "")), 64);
  CHECK(json_object_get(jx_get(anon, "Labels"), VOLUME_ANON_LABEL));
  cleanup_json json_t *all = NULL;
  CHECK_INT_EQ(volume_list(root, &all, &err), 0);
  CHECK_INT_EQ(json_array_size(all), 2);
  /* In use: dockerd's 409 with the containers. */
  cleanup_json json_t *users = json_pack("[s, s]", "c1", "c2");
  CHECK_INT_EQ(volume_remove(root, "data", users, false, &err), -1);
  CHECK_INT_EQ(err.status, 409);
  CHECK_STR_EQ(err.msg, "remove data: volume is in use - [c1, c2]");
  CHECK_INT_EQ(volume_remove(root, "data", NULL, false, &err), 0);
  CHECK(access(mp, F_OK) < 0);
  cleanup_json json_t *gone = NULL;
  CHECK_INT_EQ(volume_get(root, "data", &gone, &err), -1);
  CHECK_INT_EQ(err.status, 404);
  CHECK_STR_EQ(err.msg, "get data: no such volume");
  CHECK_INT_EQ(volume_remove(root, "data", NULL, false, &err), -1);
  CHECK_STR_EQ(err.msg, "get data: no such volume");
  CHECK_INT_EQ(volume_remove(root, "data", NULL, true, &err), 0);
  CHECK_INT_EQ(rm_tree(root), 0);
}

TEST(volume_names_and_options_refused) {
  char root[] = "/tmp/shoal-volume-XXXXXX";
  CHECK(mkdtemp(root));
  sh_err err = {0};
  CHECK_INT_EQ(volume_create(root, "a/b", NULL, NULL, NULL, &err), -1);
  CHECK_INT_EQ(err.status, 400);
  CHECK(strstr(err.msg, "includes invalid characters for a local volume name"));
  CHECK(!volume_name_valid("x"));
  CHECK(!volume_name_valid("-ab"));
  CHECK(volume_name_valid("ab.c_d-1"));
  cleanup_json json_t *opts = json_pack("{s:s}", "type", "nfs");
  CHECK_INT_EQ(volume_create(root, "nfsvol", NULL, opts, NULL, &err), -1);
  CHECK_INT_EQ(err.status, 400);
  CHECK(strstr(err.msg, "\"type\" is not supported"));
  /* A directory made before the module (no metadata) is a volume. */
  cleanup_free char *old = xasprintf("%s/volumes/legacy/_data", root);
  CHECK_INT_EQ(mkdir_p(old, 0755, &err), 0);
  cleanup_json json_t *v = NULL;
  CHECK_INT_EQ(volume_get(root, "legacy", &v, &err), 0);
  CHECK(json_is_null(json_object_get(v, "Labels")));
  CHECK_INT_EQ(rm_tree(root), 0);
}
