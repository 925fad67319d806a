/* Service VIPs and task addresses on swarm networks (see allocator.h). */
#include "manager/allocator.h"

#include "core/jsonx.h"
#include "core/util.h"
#include "ipam/ipam.h"
#include "manager/attach.h"
#include "manager/networks.h"
#include "manager/orchtask.h"
#include "store/store.h"

#include <stdio.h>

/* Tasks allocated per transaction: a large scale-up is many small writes,
 * not one huge raft entry. */
#define TASKS_PER_TX 200

/* One network's free addresses for this run. */
struct pool {
  const json_t *net;
  struct ipam_set *set;
  unsigned len; /* prefix length, for "addr/len" */
  struct pool *next;
};

static void pools_free(struct pool *p) {
  while (p) {
    struct pool *n = p->next;
    ipam_set_free(p->set);
    free(p);
    p = n;
  }
}

static struct pool *pool_of(struct pool *pools, const char *net_id) {
  for (struct pool *p = pools; p; p = p->next)
    if (strcmp(jx_str(p->net, "ID", ""), net_id) == 0)
      return p;
  return NULL;
}

/* "10.0.0.3/24" -> taken in its network's pool (unknown or outside:
 * ignored, a network may have been removed under a dying task). */
static void reserve(struct pool *pools, const char *net_id, const char *cidr) {
  struct pool *p = pool_of(pools, net_id);
  uint32_t ip;
  struct ipam_prefix pre;
  if (!p || ipam_parse_cidr(cidr, &pre, &ip, NULL) < 0)
    return;
  ipam_set_reserve(p->set, ip, NULL);
}

/* A task's container may still exist while its state is up to running:
 * its addresses stay taken until then. */
static bool task_holds_addresses(const json_t *t) {
  return task_state(t) <= TS_RUNNING;
}

static void reserve_task(json_t *t, void *ud) {
  struct pool *pools = ud;
  if (!task_holds_addresses(t))
    return;
  size_t k, a;
  json_t *att, *addr;
  json_array_foreach(json_object_get(t, "NetworksAttachments"), k, att)
      json_array_foreach(json_object_get(att, "Addresses"), a, addr) reserve(
          pools, jx_str(att, "Network.ID", ""), json_string_value(addr));
}

static struct pool *pools_build(struct store *s) {
  struct pool *pools = NULL;
  json_t *nets = store_list(s, STORE_NETWORK);
  size_t i;
  json_t *n;
  json_array_foreach(nets, i, n) {
    const json_t *c = json_array_get(jx_get(n, "IPAMOptions.Configs"), 0);
    struct ipam_prefix sub, range;
    uint32_t gw = 0;
    if (ipam_parse_cidr(jx_str(c, "Subnet", ""), &sub, NULL, NULL) < 0)
      continue;
    bool has_range =
        ipam_parse_cidr(jx_str(c, "Range", ""), &range, NULL, NULL) == 0;
    ipam_parse_ip(jx_str(c, "Gateway", ""), &gw, NULL);
    struct pool *p = xcalloc(1, sizeof *p);
    if (ipam_set_new(sub, has_range ? &range : NULL, gw, &p->set, NULL) < 0) {
      free(p);
      continue;
    }
    p->net = n; /* the store keeps it */
    p->len = sub.len;
    p->next = pools;
    pools = p;
  }
  json_decref(nets);

  json_t *svcs = store_list(s, STORE_SERVICE);
  json_array_foreach(svcs, i, n) {
    size_t k;
    json_t *v;
    json_array_foreach(jx_get(n, "Endpoint.VirtualIPs"), k, v)
        reserve(pools, jx_str(v, "NetworkID", ""), jx_str(v, "Addr", ""));
  }
  json_decref(svcs);
  json_t *nodes = store_list(s, STORE_NODE);
  json_array_foreach(nodes, i, n) {
    const json_t *att = json_object_get(n, "_Ingress");
    reserve(pools, jx_str(att, "Network", ""), jx_str(att, "Addr", ""));
  }
  json_decref(nodes);
  /* Every task with an attachment is in one bucket of the network index
   * (its first network's): the others hold no address. */
  cleanup_json json_t *keys = store_index_keys(s, STORE_TASKS_BY_NETWORK);
  json_t *key;
  json_array_foreach(keys, i, key) store_each_by(
      s, STORE_TASKS_BY_NETWORK, json_string_value(key), reserve_task, pools);
  return pools;
}

/* The pools, built on first need: a run that gives no address (the
 * common one: tasks on no network, services with their VIPs) reads no
 * task but its candidates. */
struct lazy_pools {
  struct store *s;
  struct pool *pools;
  bool built;
};

static struct pool *pools_get(struct lazy_pools *lp) {
  if (!lp->built) {
    lp->pools = pools_build(lp->s);
    lp->built = true;
  }
  return lp->pools;
}

static int pool_alloc(struct pool *p, char *out, size_t n) {
  uint32_t ip;
  if (ipam_set_alloc(p->set, &ip, NULL) < 0)
    return -1;
  char b[20];
  snprintf(out, n, "%s/%u", ipam_ip_str(ip, b), p->len);
  return 0;
}

/* ---- what a service needs ---- */

static const json_t *ingress_network(struct store *s) {
  json_t *nets = store_list(s, STORE_NETWORK);
  const json_t *found = NULL;
  size_t i;
  json_t *n;
  json_array_foreach(nets, i, n) if (jx_bool(n, "Spec.Ingress", false)) found =
      n;
  json_decref(nets);
  return found;
}

json_t *allocator_service_networks(struct store *s, const json_t *svc) {
  json_t *out = json_array();
  const json_t *ing =
      networks_publishes_ingress(svc) ? ingress_network(s) : NULL;
  if (ing)
    json_array_append_new(out, json_string(jx_str(ing, "ID", "")));
  const char *lists[] = {"Spec.TaskTemplate.Networks", "Spec.Networks"};
  for (size_t l = 0; l < ARRAY_SIZE(lists); l++) {
    size_t i;
    json_t *a;
    json_array_foreach(jx_get(svc, lists[l]), i, a) {
      const char *id = jx_str(a, "Target", "");
      if (store_get(s, STORE_NETWORK, id))
        json_array_append_new(out, json_string(id));
    }
  }
  return out;
}

/* A host network's attachment has no address: the task shares its
 * node's namespace. */
static const json_t *attachment_on(const json_t *task, const char *net_id) {
  size_t i;
  json_t *a;
  json_array_foreach(json_object_get(task, "NetworksAttachments"), i, a) {
    if (strcmp(jx_str(a, "Network.ID", ""), net_id) == 0 &&
        (json_array_size(json_object_get(a, "Addresses")) > 0 ||
         networks_is_host(json_object_get(a, "Network"))))
      return a;
  }
  return NULL;
}

bool allocator_task_allocated(struct store *s, const json_t *svc,
                              const json_t *task) {
  cleanup_json json_t *nets = allocator_service_networks(s, svc);
  size_t i;
  json_t *id;
  json_array_foreach(nets, i, id) {
    if (!attachment_on(task, json_string_value(id)))
      return false;
  }
  return true;
}

/* ---- the run ---- */

static const json_t *vip_on(const json_t *svc, const char *net_id) {
  return jx_find(jx_get(svc, "Endpoint.VirtualIPs"), "NetworkID", net_id);
}

/* The service's VIPs as they should be; NULL when they already are. */
static json_t *service_vips(struct lazy_pools *lp, const json_t *svc,
                            const json_t *nets) {
  bool vip_mode = strcmp(jx_str(svc, "Spec.EndpointSpec.Mode", "vip"), "dnsrr");
  json_t *want = json_array();
  size_t i;
  json_t *id;
  if (vip_mode) {
    json_array_foreach(nets, i, id) {
      const char *nid = json_string_value(id);
      const json_t *have = vip_on(svc, nid);
      struct pool *p = have ? NULL : pool_of(pools_get(lp), nid);
      char addr[32];
      if (have)
        json_array_append(want, (json_t *)have);
      else if (p && pool_alloc(p, addr, sizeof addr) == 0)
        json_array_append_new(
            want, json_pack("{s:s, s:s}", "NetworkID", nid, "Addr", addr));
    }
  }
  const json_t *cur = jx_get(svc, "Endpoint.VirtualIPs");
  if (json_equal(want, cur) || (json_array_size(want) == 0 && !cur)) {
    json_decref(want);
    return NULL;
  }
  return want;
}

/* The task's attachments, in the service's network order; NULL when no
 * address is free on one of them (nothing is taken then). */
static json_t *task_attachments(struct store *s, struct lazy_pools *lp,
                                const json_t *task, const json_t *nets) {
  struct pool *pools = pools_get(lp);
  json_t *atts = json_array();
  size_t i;
  json_t *id;
  json_array_foreach(nets, i, id) {
    const char *nid = json_string_value(id);
    const json_t *have = attachment_on(task, nid);
    struct pool *p = pool_of(pools, nid);
    char addr[32];
    const json_t *net = p ? NULL : store_get(s, STORE_NETWORK, nid);
    if (have) {
      json_array_append(atts, (json_t *)have);
    } else if (net && networks_is_host(net)) {
      json_array_append_new(
          atts, json_pack("{s:O, s:[]}", "Network", net, "Addresses"));
    } else if (p && pool_alloc(p, addr, sizeof addr) == 0) {
      json_array_append_new(atts, json_pack("{s:O, s:[s]}", "Network", p->net,
                                            "Addresses", addr));
    } else {
      /* Give back what this task took on earlier networks. */
      size_t k;
      json_t *a;
      json_array_foreach(atts, k, a) {
        if (attachment_on(task, jx_str(a, "Network.ID", "")))
          continue;
        struct pool *q = pool_of(pools, jx_str(a, "Network.ID", ""));
        struct ipam_prefix pre;
        uint32_t ip;
        if (q && ipam_parse_cidr(json_string_value(json_array_get(
                                     json_object_get(a, "Addresses"), 0)),
                                 &pre, &ip, NULL) == 0)
          ipam_set_release(q->set, ip);
      }
      json_decref(atts);
      return NULL;
    }
  }
  return atts;
}

/* Every node's ingress endpoint (its ingress-sbox, the routing mesh's
 * way into the ingress network): one address each, as swarmkit gives
 * nodes their ingress attachment. */
static bool lacks_ingress(const json_t *node, void *ing_id) {
  const json_t *att = json_object_get(node, "_Ingress");
  return strcmp(jx_str(att, "Network", ""), ing_id) != 0;
}

static void allocate_nodes(struct store *s, struct lazy_pools *lp,
                           struct orch_out *out, size_t *short_of) {
  const json_t *ing = ingress_network(s);
  if (!ing)
    return;
  const char *ing_id = jx_str(ing, "ID", "");
  /* Every node has its address but just after a join: asked first, with
   * no sorted list (a list of 1,000 nodes sorted per run was 1.4 % of a
   * leader's CPU while 100 services were created). */
  if (!store_any(s, STORE_NODE, lacks_ingress, (void *)ing_id))
    return;
  json_t *nodes = store_list(s, STORE_NODE);
  size_t i;
  json_t *n;
  json_array_foreach(nodes, i, n) {
    if (!lacks_ingress(n, (void *)ing_id))
      continue;
    struct pool *p = pool_of(pools_get(lp), ing_id);
    if (!p)
      break;
    char addr[32];
    if (pool_alloc(p, addr, sizeof addr) < 0) {
      (*short_of)++;
      continue;
    }
    json_t *next = json_deep_copy(n);
    json_object_set_new(
        next, "_Ingress",
        json_pack("{s:s, s:s}", "Network", ing_id, "Addr", addr));
    struct store_tx *tx = store_tx_new();
    store_tx_put(tx, STORE_NODE, next, jx_int(n, "Version.Index", 0));
    orch_out_add(out, tx);
  }
  json_decref(nodes);
}

/* Standalone containers' attachment tasks (attach.h): an address on
 * their one network, and running from then on (the node runs the
 * container; no scheduler places it). */
static void allocate_attachments(struct store *s, struct lazy_pools *lp,
                                 struct orch_out *out, size_t *short_of) {
  cleanup_json json_t *tasks = store_list_by(s, STORE_TASKS_WAITING, "new");
  size_t i;
  json_t *t;
  json_array_foreach(tasks, i, t) {
    if (!attachment_task(t) || task_desired(t) > TS_RUNNING)
      continue;
    const char *nid =
        jx_str(json_array_get(jx_get(t, "Spec.Networks"), 0), "Target", "");
    struct pool *p = pool_of(pools_get(lp), nid);
    char addr[32];
    if (!p || pool_alloc(p, addr, sizeof addr) < 0) {
      (*short_of)++;
      continue;
    }
    json_t *next = json_deep_copy(t);
    json_object_set_new(
        next, "NetworksAttachments",
        json_pack("[{s:O, s:[s]}]", "Network", p->net, "Addresses", addr));
    jx_set(next, "Status.State", json_string("running"));
    jx_set(next, "Status.Message", json_string("attached"));
    struct store_tx *tx = store_tx_new();
    store_tx_update(tx, STORE_TASK, next, t, jx_int(t, "Version.Index", 0));
    orch_out_add(out, tx);
  }
}

/* The tasks a run may give addresses (state new to pending, desired
 * running or complete), by service: ID -> task maps, from the state
 * index, so the run costs what is new, not every task. */
static void add_candidate(json_t *t, void *ud) {
  if (task_desired(t) > TS_COMPLETE)
    return;
  json_t *by = ud;
  const char *sid = jx_str(t, "ServiceID", "");
  json_t *m = json_object_get(by, sid);
  if (!m) {
    m = json_object();
    json_object_set_new(by, sid, m);
  }
  json_object_set(m, jx_str(t, "ID", ""), t);
}

static json_t *candidates(struct store *s) {
  json_t *by = json_object();
  for (enum task_state st = TS_NEW; st <= TS_PENDING; st++)
    store_each_by(s, STORE_TASKS_WAITING, task_state_name(st), add_candidate,
                  by);
  return by;
}

int allocator_run(struct store *s, struct orch_out *out, bool nodes,
                  size_t *exhausted) {
  size_t before = out->ntx, short_of = 0;
  struct lazy_pools lp = {.s = s};
  if (nodes)
    allocate_nodes(s, &lp, out, &short_of);
  allocate_attachments(s, &lp, out, &short_of);
  cleanup_json json_t *by_service = candidates(s);
  json_t *svcs = store_list(s, STORE_SERVICE);
  size_t i;
  json_t *svc;
  json_array_foreach(svcs, i, svc) {
    json_t *nets = allocator_service_networks(s, svc);
    json_t *vips = service_vips(&lp, svc, nets);
    if (vips) {
      json_t *next = json_deep_copy(svc);
      if (json_array_size(vips) > 0)
        jx_set(next, "Endpoint.VirtualIPs", vips);
      else {
        json_decref(vips);
        json_object_del(json_object_get(next, "Endpoint"), "VirtualIPs");
      }
      struct store_tx *tx = store_tx_new();
      store_tx_put(tx, STORE_SERVICE, next, jx_int(svc, "Version.Index", 0));
      orch_out_add(out, tx);
    }
    const char *sid = jx_str(svc, "ID", "");
    json_t *mine = json_object_get(by_service, sid);
    if (!mine || json_array_size(nets) == 0) {
      json_decref(nets); /* nothing new, or nothing to give (a task of a
                            service on no network is allocated as it is) */
      continue;
    }
    struct store_tx *tx = NULL;
    size_t k;
    json_t *t;
    json_t *tasks = jx_sorted_by_created(mine);
    json_array_foreach(tasks, k, t) {
      if (allocator_task_allocated(s, svc, t))
        continue;
      json_t *atts = task_attachments(s, &lp, t, nets);
      if (!atts) {
        short_of++;
        continue;
      }
      json_t *next = json_deep_copy(t);
      json_object_set_new(next, "NetworksAttachments", atts);
      store_tx_update(orch_tx_room(out, &tx, 1, TASKS_PER_TX), STORE_TASK, next,
                      t, jx_int(t, "Version.Index", 0));
    }
    if (tx)
      orch_out_add(out, tx);
    json_decref(tasks);
    json_decref(nets);
  }
  json_decref(svcs);
  pools_free(lp.pools);
  if (exhausted)
    *exhausted = short_of;
  return (int)(out->ntx - before);
}
