/* What the dispatcher checks in a node's status report before it queues
 * any of it for raft. */
#include "test.h"

#include "core/err.h"
#include "core/jcbor.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "manager/dispatcher.h"

/* A report as a node sends it, JSON text: {"Updates": [{"ID": "t1",
 * "Status": {"Deep": [[...]]}}]}, the Status n containers deep (itself
 * the first). */
static json_t *report_of_depth(size_t n) {
  sh_buf b = {0};
  buf_printf(&b, "{\"Updates\":[{\"ID\":\"t1\",\"Status\":{\"Deep\":");
  for (size_t i = 1; i < n; i++)
    buf_append(&b, "[", 1);
  for (size_t i = 1; i < n; i++)
    buf_append(&b, "]", 1);
  buf_printf(&b, "}}]}");
  json_t *v = json_loads(b.data, 0, NULL);
  buf_free(&b);
  return v;
}

/* A status nested one level short of what a raft entry takes goes
 * through raft, and then no snapshot can hold its task
 * (store_task_status_deeper_than_a_snapshot_holds): a worker's report of
 * one is a 400 before anything of it is queued. */
TEST(dispatcher_report_too_deep_for_a_snapshot_is_400) {
  sh_err err = {0};
  cleanup_json json_t *ok = report_of_depth(JCBOR_MAX_DEPTH - 4);
  cleanup_json json_t *deep = report_of_depth(JCBOR_MAX_DEPTH - 3);
  cleanup_json json_t *deeper = report_of_depth(2000);
  CHECK(ok && deep && deeper);
  CHECK_INT_EQ(dispatcher_report_check(ok, &err), 0);
  CHECK_INT_EQ(dispatcher_report_check(deep, &err), -1);
  CHECK_INT_EQ(err.status, 400);
  CHECK(strstr(err.msg, "invalid status of task t1") != NULL);
  /* Deeper still (jansson parses a body of 2,048 levels): the same. */
  sh_err_clear(&err);
  CHECK_INT_EQ(dispatcher_report_check(deeper, &err), -1);
  CHECK_INT_EQ(err.status, 400);
  /* What the store would not record now is left to the apply: a status
   * that is no object, a missing ID, an update that is no object. */
  cleanup_json json_t *odd =
      json_pack("{s:[{s:s, s:i}, {s:{}}, s, i]}", "Updates", "ID", "t2",
                "Status", 7, "Status", "x", 9);
  CHECK_INT_EQ(dispatcher_report_check(odd, &err), 0);
  cleanup_json json_t *none = json_pack("{s:{}}", "Updates");
  CHECK_INT_EQ(dispatcher_report_check(none, &err), -1);
  CHECK_STR_EQ(err.msg, "Updates must be an array");
}
