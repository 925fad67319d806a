/* Peer sets per node (see peers.h). */
#include "manager/peers.h"

#include "core/jsonx.h"
#include "core/util.h"
#include "ipam/ipam.h"
#include "manager/orchtask.h"
#include "store/store.h"

#include <stdio.h>
#include <string.h>

static bool present(const json_t *t) {
  enum task_state st = task_state(t);
  return st >= TS_ASSIGNED && st <= TS_RUNNING;
}

/* by_net[net][node], made when missing. */
static json_t *endpoints_of(json_t *by_net, const char *net, const char *node) {
  json_t *on_net = json_object_get(by_net, net);
  if (!on_net) {
    on_net = json_object();
    json_object_set_new(by_net, net, on_net);
  }
  json_t *on_node = json_object_get(on_net, node);
  if (!on_node) {
    on_node = json_object();
    json_object_set_new(on_net, node, on_node);
  }
  return on_node;
}

/* One endpoint: cidr may carry a prefix length. */
static void add_endpoint(json_t *on_node, const char *net, const char *cidr,
                         const char *host, const char *name) {
  char ip[64];
  ipam_cidr_addr(cidr, ip);
  cleanup_free char *key = xasprintf("%s %s", net, ip);
  json_object_set_new(on_node, key,
                      json_pack("{s:s, s:s, s:s, s:s}", "Network", net, "Addr",
                                ip, "Host", host, "Name", name));
}

struct collect {
  json_t *by_net, *addr, *names;
};

/* A task's endpoints, when it is on a ready node and may have a
 * container. */
static void collect_task(json_t *t, void *ud) {
  struct collect *c = ud;
  const char *node = jx_str(t, "NodeID", "");
  const char *host = jx_str(c->addr, node, NULL);
  if (!host || !present(t))
    return;
  size_t k;
  json_t *att;
  json_array_foreach(json_object_get(t, "NetworksAttachments"), k, att) {
    const char *net = jx_str(att, "Network.ID", "");
    json_t *on_node = endpoints_of(c->by_net, net, node);
    size_t a;
    json_t *cidr;
    json_array_foreach(json_object_get(att, "Addresses"), a, cidr)
        add_endpoint(on_node, net, json_string_value(cidr), host,
                     jx_str(c->names, node, ""));
  }
}

json_t *peers_by_node(struct store *s) {
  /* Ready nodes' addresses. */
  cleanup_json json_t *nodes = store_list(s, STORE_NODE);
  cleanup_json json_t *addr = json_object();
  cleanup_json json_t *names = json_object();
  size_t i;
  json_t *n;
  json_array_foreach(nodes, i, n) {
    if (strcmp(jx_str(n, "Status.State", ""), "ready") == 0 &&
        *jx_str(n, "Status.Addr", ""))
      json_object_set_new(addr, jx_str(n, "ID", ""),
                          json_string(jx_str(n, "Status.Addr", "")));
    json_object_set_new(names, jx_str(n, "ID", ""),
                        json_string(jx_str(n, "Description.Hostname", "")));
  }
  /* network ID -> {node ID -> {key -> peer}}: each network's endpoints
   * grouped by the node they are on. Only tasks attached to a network
   * (the index by their first one): the cost is theirs, not every
   * task's. */
  cleanup_json json_t *by_net = json_object();
  struct collect c = {by_net, addr, names};
  cleanup_json json_t *keys = store_index_keys(s, STORE_TASKS_BY_NETWORK);
  json_t *key;
  json_array_foreach(keys, i, key) store_each_by(
      s, STORE_TASKS_BY_NETWORK, json_string_value(key), collect_task, &c);
  /* Each node's ingress-sbox is an endpoint on ingress: every node holds
   * ingress, and sees the others' sandboxes and ingress tasks. */
  json_array_foreach(nodes, i, n) {
    const char *node = jx_str(n, "ID", "");
    const char *host = jx_str(addr, node, NULL);
    const json_t *att = json_object_get(n, "_Ingress");
    if (!host || !att)
      continue;
    const char *net = jx_str(att, "Network", "");
    add_endpoint(endpoints_of(by_net, net, node), net, jx_str(att, "Addr", ""),
                 host, jx_str(names, node, ""));
  }
  /* Each node: the other nodes' endpoints on the networks it holds. */
  json_t *out = json_object();
  const char *node;
  json_t *v;
  json_object_foreach(addr, node, v)
      json_object_set_new(out, node, json_object());
  const char *net;
  json_t *on_net;
  json_object_foreach(by_net, net, on_net) {
    const char *holder;
    json_t *mine;
    json_object_foreach(on_net, holder, mine) {
      json_t *set = json_object_get(out, holder);
      const char *other;
      json_t *theirs;
      json_object_foreach(on_net, other, theirs) {
        if (strcmp(other, holder) != 0)
          json_object_update(set, theirs);
      }
    }
  }
  return out;
}

json_t *peers_diff(const json_t *sent, const json_t *want) {
  json_t *add = json_array(), *del = json_array();
  const char *key;
  json_t *p;
  json_object_foreach((json_t *)want, key, p) {
    const json_t *had = json_object_get(sent, key);
    if (!had || !json_equal(had, p))
      json_array_append(add, p);
  }
  json_object_foreach((json_t *)sent, key, p) {
    const json_t *now = json_object_get(want, key);
    if (!now || !json_equal(now, p))
      json_array_append(del, p);
  }
  if (json_array_size(add) == 0 && json_array_size(del) == 0) {
    json_decref(add);
    json_decref(del);
    return NULL;
  }
  return json_pack("{s:o, s:o}", "Add", add, "Del", del);
}
