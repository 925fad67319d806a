/* libFuzzer target over a raft entry's decoding and apply: the bytes are
 * what the FSM's apply callback gets (manager.c fsm_apply -> store_apply)
 * from the log or from the leader, in either form (a CBOR map or JSON
 * text, store.h STORE_ENTRIES_CBOR). A refusal says why and leaves the
 * store as it was; a document that decodes encodes to CBOR that decodes
 * to the same document; a store an entry applied to restores from its own
 * snapshot. */
#include "core/err.h"
#include "core/jcbor.h"
#include "core/util.h"
#include "store/store.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A node, a service and its task, for the entries to act on (their IDs
 * are the seeds'). */
static struct store *seeded(void) {
  struct store *s = store_new();
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_NODE,
               json_pack("{s:s, s:{s:s, s:s}, s:{s:s}}", "ID", "node1", "Spec",
                         "Role", "worker", "Availability", "active", "Status",
                         "State", "ready"),
               STORE_MUST_CREATE);
  store_tx_put(tx, STORE_SERVICE,
               json_pack("{s:s, s:{s:s, s:{s:{s:s}}}, s:i}", "ID", "svc1",
                         "Spec", "Name", "web", "TaskTemplate", "ContainerSpec",
                         "Image", "busybox", "_SpecVersion", 0),
               STORE_MUST_CREATE);
  store_tx_put(tx, STORE_TASK,
               json_pack("{s:s, s:s, s:s, s:i, s:s, s:{s:s}}", "ID", "task1",
                         "ServiceID", "svc1", "NodeID", "node1", "Slot", 1,
                         "DesiredState", "running", "Status", "State",
                         "assigned"),
               STORE_MUST_CREATE);
  size_t len = 0;
  char *enc = store_tx_encode(tx, 1700000000000000000, &len);
  store_tx_free(tx);
  sh_err err = {0};
  if (store_apply(s, enc, len, 1, &err) < 0) {
    fprintf(stderr, "seed store: %s\n", err.msg);
    abort();
  }
  free(enc);
  return s;
}

static void round_trip(const uint8_t *data, size_t size) {
  json_t *doc = NULL;
  sh_err err = {0};
  if (store_entry_decode((const char *)data, size, &doc, &err) < 0) {
    if (err.status != 400 || !err.msg[0])
      abort(); /* a refusal says why */
    return;
  }
  size_t len = 0;
  char *enc = jcbor_encode(doc, &len);
  json_t *back = NULL;
  /* What decoded is within the depth the encoder writes. */
  if (!enc || jcbor_decode(enc, len, &back, &err) < 0 || !json_equal(doc, back))
    abort();
  json_decref(back);
  json_decref(doc);
  free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  round_trip(data, size);
  struct store *s = seeded();
  size_t l0 = 0, l1 = 0;
  char *before = store_snapshot(s, &l0);
  sh_err err = {0};
  if (store_apply(s, (const char *)data, size, 2, &err) < 0) {
    if (!err.status || !err.msg[0])
      abort();
    char *after = store_snapshot(s, &l1);
    if (l0 != l1 || memcmp(before, after, l0) != 0)
      abort(); /* a refused entry changes nothing */
    free(after);
  } else {
    char *after = store_snapshot(s, &l1);
    struct store *t = store_new();
    if (!after || store_restore(t, after, l1, &err) < 0)
      abort();
    size_t l2 = 0;
    char *again = store_snapshot(t, &l2);
    if (l1 != l2 || memcmp(after, again, l1) != 0)
      abort();
    free(after);
    free(again);
    store_free(t);
  }
  free(before);
  store_free(s);
  return 0;
}
