#include "test.h"

#include "core/err.h"
#include "exec/caps.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static int count(const char **v) {
  int n = 0;
  while (v[n])
    n++;
  return n;
}

static bool has(const char **v, const char *c) {
  for (; *v; v++)
    if (strcmp(*v, c) == 0)
      return true;
  return false;
}

TEST(caps_add_drop_as_dockerd) {
  sh_err err = {0};
  const char **v = NULL;
  CHECK_INT_EQ(exec_caps(NULL, NULL, &v, &err), 0);
  CHECK_INT_EQ(count(v), 14);
  free(v);
  json_t *add = json_pack("[ss]", "CAP_NET_ADMIN", "sys_time");
  json_t *drop = json_pack("[s]", "chown");
  CHECK_INT_EQ(exec_caps(add, drop, &v, &err), 0);
  CHECK(has(v, "CAP_NET_ADMIN") && has(v, "CAP_SYS_TIME"));
  CHECK(!has(v, "CAP_CHOWN") && has(v, "CAP_KILL"));
  CHECK_INT_EQ(count(v), 15);
  free(v);
  json_decref(add);
  json_decref(drop);
  /* ALL dropped: only the added ones; ALL added: all but the dropped. */
  add = json_pack("[s]", "CAP_NET_RAW");
  drop = json_pack("[s]", "ALL");
  CHECK_INT_EQ(exec_caps(add, drop, &v, &err), 0);
  CHECK_INT_EQ(count(v), 1);
  CHECK_STR_EQ(v[0], "CAP_NET_RAW");
  free(v);
  CHECK_INT_EQ(exec_caps(drop, add, &v, &err), 0);
  CHECK(has(v, "CAP_SYS_ADMIN") && !has(v, "CAP_NET_RAW"));
  CHECK_INT_EQ(count(v), 40);
  free(v);
  json_decref(add);
  json_decref(drop);
  add = json_pack("[s]", "CAP_NOPE");
  CHECK_INT_EQ(exec_caps(add, NULL, &v, &err), -1);
  CHECK_INT_EQ(err.status, 400);
  CHECK_STR_EQ(err.msg, "unknown capability: \"CAP_NOPE\"");
  json_decref(add);
}
