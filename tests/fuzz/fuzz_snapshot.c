/* libFuzzer target over the raft snapshot decoder: the bytes are what the
 * raft FSM's restore callback (manager.c fsm_restore -> store_restore) gets
 * from a snapshot file or an InstallSnapshot from the leader. A snapshot
 * that restores must then behave as a store: it is read back through the
 * lookups the manager uses, survives a transaction, and taking a snapshot
 * of it and restoring that gives the same store again (a manager that
 * restarts from its own snapshot must get back what it had). */
#include "core/err.h"
#include "core/util.h"
#include "store/store.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void exercise(struct store *s) {
  sh_err err = {0};
  for (int k = 0; k < STORE_NKINDS; k++) {
    json_t *all = store_list(s, (enum store_kind)k);
    size_t i;
    json_t *o;
    json_array_foreach(all, i, o) {
      json_decref(store_public(o));
      const char *id = json_string_value(json_object_get(o, "ID"));
      if (!id || store_get(s, (enum store_kind)k, id) != o)
        abort(); /* restored objects are found by their ID */
      store_find(s, (enum store_kind)k, id, &err);
      const char *name = json_string_value(
          json_object_get(json_object_get(o, "Spec"), "Name"));
      if (name)
        store_find(s, (enum store_kind)k, name, &err);
    }
    if (json_array_size(all) != store_count(s, (enum store_kind)k))
      abort();
    json_decref(all);
    store_find(s, (enum store_kind)k, "a", &err);
  }
  json_decref(store_public(store_cluster(s)));
  store_node_removed(s, "node1");

  /* A transaction on top: creates, renames into and deletes what the
   * snapshot may hold, as the next log entries after it would. */
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_SERVICE,
               json_pack("{s:s, s:{s:s}}", "ID", "svc1", "Spec", "Name", "web"),
               STORE_ANY_VERSION);
  store_tx_put(
      tx, STORE_NODE,
      json_pack("{s:s, s:{s:s}}", "ID", "node1", "Spec", "Role", "worker"),
      STORE_ANY_VERSION);
  store_tx_delete(tx, STORE_TASK, "task1", STORE_ANY_VERSION);
  store_tx_node_removed(tx, "node2", INT64_MAX);
  size_t len = 0;
  char *enc = store_tx_encode(tx, 1, &len);
  store_tx_free(tx);
  store_apply(s, enc, len, store_index(s) + 1, &err);
  free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sh_err err = {0};
  struct store *s = store_new();
  if (store_restore(s, (const char *)data, size, &err) < 0) {
    if (!err.status || !err.msg[0])
      abort(); /* a refusal says why */
    store_free(s);
    return 0;
  }
  size_t l1 = 0, l2 = 0;
  char *s1 = store_snapshot(s, &l1);
  if (!s1)
    abort(); /* what restored must encode again */
  struct store *t = store_new();
  if (store_restore(t, s1, l1, &err) < 0) {
    fprintf(stderr, "own snapshot does not restore: %s\n", err.msg);
    abort();
  }
  char *s2 = store_snapshot(t, &l2);
  if (l1 != l2 || memcmp(s1, s2, l1) != 0 || store_index(s) != store_index(t))
    abort();
  free(s1);
  free(s2);
  exercise(s);
  store_free(t);
  store_free(s);
  return 0;
}
