/* Writes the valid seeds of tests/fuzz/corpus-snapshot: snapshots taken by
 * the store code (store_snapshot) of stores built by the manager's own
 * object constructors and applied transactions, as a manager's raft
 * snapshot holds them. Not part of the build:
 *   make build/asan/libshoal.a
 *   cc -std=gnu11 -D_GNU_SOURCE -Isrc -fsanitize=address,undefined \
 *     tests/fuzz/gen_snapshot.c build/asan/libshoal.a <libs> -o gen
 *   ./gen tests/fuzz/corpus-snapshot */
#include "ca/ca.h"
#include "core/err.h"
#include "core/id.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "manager/internal.h"
#include "manager/networks.h"
#include "manager/orchtask.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>

static uint64_t idx;

static void apply(struct store *s, struct store_tx *tx) {
  size_t len = 0;
  char *enc = store_tx_encode(tx, 1700000000000000000 + (int64_t)idx, &len);
  store_tx_free(tx);
  sh_err err = {0};
  if (store_apply(s, enc, len, ++idx, &err) < 0) {
    fprintf(stderr, "apply: %s\n", err.msg);
    exit(1);
  }
  free(enc);
}

static void dump(struct store *s, const char *dir, const char *name) {
  size_t len = 0;
  char *snap = store_snapshot(s, &len);
  cleanup_free char *path = xasprintf("%s/%s", dir, name);
  sh_err err = {0};
  if (write_file_replace(path, snap, len, 0644, &err) < 0) {
    fprintf(stderr, "%s\n", err.msg);
    exit(1);
  }
  free(snap);
}

int main(int argc, char **argv) {
  if (argc != 2)
    return 2;
  const char *dir = argv[1];
  struct store *s = store_new();
  dump(s, dir, "empty-store");

  sh_err err = {0};
  char *root_pem = NULL, *root_key = NULL;
  if (ca_root_create(&root_pem, &root_key, &err) < 0)
    return 1;
  struct manager_init in = {.task_history_limit = -1,
                            .root_cert_pem = root_pem,
                            .root_key_pem = root_key,
                            .cluster_id = "clusterfuzz0000000000000"};
  json_t *cluster = cluster_object_new(&in, &err);
  if (!cluster)
    return 1;
  const char *mgr = "mgrnode000000000000000001";
  json_t *node = manager_new_node_object(NULL, mgr, "manager", "active",
                                         "mgr-1", "10.0.0.1", NULL, NULL, NULL);
  /* Its build reads every form: snapshots name templates. */
  jx_set(node, "Description." STORE_ENTRIES_KEY, json_integer(STORE_ENTRIES));
  json_object_set_new(node, "ManagerStatus",
                      json_pack("{s:s, s:s}", "Reachability", "reachable",
                                "Addr", "10.0.0.1:2377"));
  struct store_tx *tx = store_tx_new();
  store_tx_put(tx, STORE_CLUSTER, cluster, STORE_MUST_CREATE);
  store_tx_put(tx, STORE_NODE, node, STORE_MUST_CREATE);
  store_tx_put(tx, STORE_NETWORK, networks_ingress("ingressnet000000000000001"),
               STORE_MUST_CREATE);
  store_tx_put(tx, STORE_NETWORK,
               networks_predefined_host("hostnet000000000000000001"),
               STORE_MUST_CREATE);
  apply(s, tx);
  dump(s, dir, "swarm-init");

  /* A worker, a service with two tasks, a secret, a config, a node that
   * left. */
  tx = store_tx_new();
  json_t *wdesc =
      json_pack("{s:{s:s, s:s}, s:{s:I, s:I}}", "Platform", "Architecture",
                "x86_64", "OS", "linux", "Resources", "NanoCPUs",
                (json_int_t)2000000000, "MemoryBytes", (json_int_t)1 << 31);
  json_t *w = manager_new_node_object(NULL, "wrknode000000000000000002",
                                      "worker", "drain", "worker-1", "10.0.0.2",
                                      wdesc, NULL, NULL);
  json_decref(wdesc);
  store_tx_put(tx, STORE_NODE, w, STORE_MUST_CREATE);
  store_tx_put(tx, STORE_SERVICE,
               json_pack("{s:s, s:{s:s, s:{s:{s:s, s:[s,s]}}, s:{s:{s:I}}}}",
                         "ID", "websvc0000000000000000001", "Spec", "Name",
                         "web", "TaskTemplate", "ContainerSpec", "Image",
                         "nginx:latest", "Args", "nginx", "-g", "Mode",
                         "Replicated", "Replicas", (json_int_t)2),
               STORE_MUST_CREATE);
  for (int i = 1; i <= 2; i++) {
    char id[32], name[32];
    snprintf(id, sizeof id, "webtask00000000000000000%d", i);
    snprintf(name, sizeof name, "web.%d", i);
    store_tx_put(tx, STORE_TASK,
                 json_pack("{s:s, s:s, s:s, s:i, s:s, s:{s:s, s:s}, s:s}", "ID",
                           id, "Name", name, "ServiceID",
                           "websvc0000000000000000001", "Slot", i, "NodeID",
                           i == 1 ? mgr : "wrknode000000000000000002", "Status",
                           "State", "running", "Message", "started",
                           "DesiredState", "running"),
                 STORE_MUST_CREATE);
  }
  store_tx_put(tx, STORE_SECRET,
               json_pack("{s:s, s:{s:s, s:s}}", "ID",
                         "secret0000000000000000001", "Spec", "Name", "db-pw",
                         "Data", "c2VjcmV0"),
               STORE_MUST_CREATE);
  store_tx_put(tx, STORE_CONFIG,
               json_pack("{s:s, s:{s:s, s:s, s:{s:s}}}", "ID",
                         "config0000000000000000001", "Spec", "Name",
                         "app.conf", "Data", "eD0x", "Labels", "env", "prod"),
               STORE_MUST_CREATE);
  store_tx_node_removed(tx, "gonenode00000000000000003",
                        INT64_C(4102444800) * 1000000000);
  apply(s, tx);
  dump(s, dir, "cluster");

  /* An update and a delete on top (versions move on). */
  tx = store_tx_new();
  store_tx_delete(tx, STORE_TASK, "webtask000000000000000002",
                  STORE_ANY_VERSION);
  store_tx_put(tx, STORE_SERVICE,
               json_pack("{s:s, s:{s:s, s:{s:{s:s}}, s:{s:{s:I}}}}", "ID",
                         "websvc0000000000000000001", "Spec", "Name", "web",
                         "TaskTemplate", "ContainerSpec", "Image", "nginx:1.27",
                         "Mode", "Replicated", "Replicas", (json_int_t)1),
               STORE_ANY_VERSION);
  apply(s, tx);
  dump(s, dir, "cluster-updated");

  /* Tasks made as the orchestrator makes them (their service's template
   * and endpoint spec, shared): the entry and the snapshot name it. */
  tx = store_tx_new();
  store_tx_put(tx, STORE_SERVICE,
               json_pack("{s:s, s:{s:s, s:{s:{s:s}}, s:{s:[{s:i}]}}}", "ID",
                         "apisvc0000000000000000001", "Spec", "Name", "api",
                         "TaskTemplate", "ContainerSpec", "Image", "redis",
                         "EndpointSpec", "Ports", "TargetPort", 6379),
               STORE_MUST_CREATE);
  apply(s, tx);
  tx = store_tx_new();
  json_t *api = store_get(s, STORE_SERVICE, "apisvc0000000000000000001");
  for (int i = 1; i <= 2; i++)
    store_tx_put(tx, STORE_TASK,
                 task_new(NULL, api, i, mgr, 1700000000000000000),
                 STORE_MUST_CREATE);
  store_tx_name_templates(s, tx);
  apply(s, tx);
  dump(s, dir, "tasks-named-template");
  store_free(s);
  free(root_pem);
  free(root_key);
  return 0;
}
