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

/* One endpoint of node on net; cidr may carry a prefix length. */
static void add_endpoint(json_t *snap, const char *net, const char *node,
                         const char *cidr, const char *host, const char *name) {
  char ip[64];
  ipam_cidr_addr(cidr, ip);
  json_t *nets = json_object_get(snap, "Nets");
  json_t *on_net = json_object_get(nets, net);
  if (!on_net) {
    on_net = json_object();
    json_object_set_new(nets, net, on_net);
  }
  cleanup_free char *key = xasprintf("%s %s", net, ip);
  json_object_set_new(on_net, key,
                      json_pack("{s:s, s:{s:s, s:s, s:s, s:s}}", "Node", node,
                                "Peer", "Network", net, "Addr", ip, "Host",
                                host, "Name", name));
  json_t *held = json_object_get(json_object_get(snap, "Held"), node);
  if (!held) {
    held = json_object();
    json_object_set_new(json_object_get(snap, "Held"), node, held);
  }
  json_object_set_new(held, net, json_true());
}

struct collect {
  json_t *snap, *addr, *names;
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
    size_t a;
    json_t *cidr;
    json_array_foreach(json_object_get(att, "Addresses"), a, cidr)
        add_endpoint(c->snap, net, node, json_string_value(cidr), host,
                     jx_str(c->names, node, ""));
  }
}

json_t *peers_snapshot(struct store *s) {
  /* Ready nodes' addresses. */
  cleanup_json json_t *nodes = store_list(s, STORE_NODE);
  json_t *addr = json_object();
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
  json_t *snap = json_pack("{s:{}, s:{}, s:o}", "Nets", "Held", "Ready", addr);
  /* Only tasks attached to a network (the index by their first one): the
   * cost is theirs, not every task's. */
  struct collect c = {snap, addr, names};
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
    add_endpoint(snap, jx_str(att, "Network", ""), node,
                 jx_str(att, "Addr", ""), host, jx_str(names, node, ""));
  }
  return snap;
}

static const json_t *net_of(const json_t *snap, const char *net) {
  return json_object_get(json_object_get(snap, "Nets"), net);
}

static const json_t *held_by(const json_t *snap, const char *node) {
  return json_object_get(json_object_get(snap, "Held"), node);
}

/* Keys of a that b has not, or has otherwise, appended to out. */
static void keys_differing(const json_t *a, const json_t *b, json_t *out,
                           bool both) {
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)a, key, v) {
    const json_t *w = json_object_get(b, key);
    if (!w || (both && !json_equal(v, w)))
      json_array_append_new(out, json_string(key));
  }
}

json_t *peers_changed(const json_t *old, const json_t *cur) {
  json_t *out = json_object();
  const char *net;
  json_t *on_net;
  json_object_foreach(json_object_get(cur, "Nets"), net, on_net) {
    json_t *keys = json_array();
    keys_differing(on_net, net_of(old, net), keys, true);
    keys_differing(net_of(old, net), on_net, keys, false);
    if (json_array_size(keys))
      json_object_set_new(out, net, keys);
    else
      json_decref(keys);
  }
  json_object_foreach(json_object_get(old, "Nets"), net, on_net) {
    if (net_of(cur, net))
      continue;
    json_t *keys = json_array();
    keys_differing(on_net, NULL, keys, false);
    json_object_set_new(out, net, keys);
  }
  return out;
}

struct ndiff {
  const char *node;
  json_t *add, *del;
};

/* One key of a network: what the node had (o, when it held the network)
 * and should have (c); its own endpoints are never its peers. */
static void visit(struct ndiff *d, const json_t *o, const json_t *c) {
  if (o && strcmp(jx_str(o, "Node", ""), d->node) == 0)
    o = NULL;
  if (c && strcmp(jx_str(c, "Node", ""), d->node) == 0)
    c = NULL;
  const json_t *op = json_object_get(o, "Peer");
  const json_t *cp = json_object_get(c, "Peer");
  bool same = op && cp && json_equal(op, cp);
  if (cp && !same)
    json_array_append(d->add, (json_t *)cp);
  if (op && !same)
    json_array_append(d->del, (json_t *)op);
}

/* Every key of a network either side has. */
static void visit_whole(struct ndiff *d, const json_t *o, const json_t *c) {
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)c, key, v) visit(d, json_object_get(o, key), v);
  json_object_foreach((json_t *)o, key, v) {
    if (!json_object_get(c, key))
      visit(d, v, NULL);
  }
}

json_t *peers_node_diff(const json_t *old, const json_t *cur,
                        const json_t *changed, const char *node) {
  struct ndiff d = {node, json_array(), json_array()};
  const json_t *oh = held_by(old, node), *ch = held_by(cur, node);
  const char *net;
  json_t *v;
  json_object_foreach((json_t *)ch, net, v) {
    bool was = json_object_get(oh, net) != NULL;
    const json_t *o = was ? net_of(old, net) : NULL;
    const json_t *c = net_of(cur, net);
    if (!was || !changed) {
      visit_whole(&d, o, c);
      continue;
    }
    size_t i;
    json_t *key;
    json_array_foreach(json_object_get(changed, net), i, key) {
      const char *k = json_string_value(key);
      visit(&d, json_object_get(o, k), json_object_get(c, k));
    }
  }
  json_object_foreach((json_t *)oh, net, v) {
    if (!json_object_get(ch, net)) /* no longer held: all of it goes */
      visit_whole(&d, net_of(old, net), NULL);
  }
  if (json_array_size(d.add) == 0 && json_array_size(d.del) == 0) {
    json_decref(d.add);
    json_decref(d.del);
    return NULL;
  }
  return json_pack("{s:o, s:o}", "Add", d.add, "Del", d.del);
}

json_t *peers_for(const json_t *snap, const char *node) {
  json_t *set = json_object();
  const char *net;
  json_t *v;
  json_object_foreach((json_t *)held_by(snap, node), net, v) {
    const char *key;
    json_t *e;
    json_object_foreach((json_t *)net_of(snap, net), key, e) {
      if (strcmp(jx_str(e, "Node", ""), node) != 0)
        json_object_set(set, key, json_object_get(e, "Peer"));
    }
  }
  return set;
}

json_t *peers_by_node(struct store *s) {
  cleanup_json json_t *snap = peers_snapshot(s);
  json_t *out = json_object();
  const char *node;
  json_t *v;
  json_object_foreach(json_object_get(snap, "Ready"), node, v)
      json_object_set_new(out, node, peers_for(snap, node));
  return out;
}

/* ---- the whole sets, encoded once per snapshot ---- */

struct span {
  size_t off, len;
  const char *node; /* borrowed from the snapshot */
};

struct net_text {
  bool made;
  sh_buf text; /* each peer encoded, back to back */
  struct span *spans;
  size_t n;
};

struct peers_text {
  json_t *snap;
  json_t *index; /* network ID -> index into nets */
  struct net_text *nets;
  size_t nnets;
};

struct peers_text *peers_text_new(json_t *snap) {
  struct peers_text *pt = xcalloc(1, sizeof *pt);
  pt->snap = json_incref(snap);
  pt->index = json_object();
  json_t *all = json_object_get(snap, "Nets");
  pt->nets = xcalloc(json_object_size(all) + 1, sizeof *pt->nets);
  const char *net;
  json_t *on_net;
  json_object_foreach(all, net, on_net) {
    json_object_set_new(pt->index, net, json_integer((json_int_t)pt->nnets));
    pt->nnets++;
  }
  return pt;
}

/* A network's peers, encoded when a node holding it first needs them. */
static const struct net_text *net_text(struct peers_text *pt, const char *net) {
  json_t *at = json_object_get(pt->index, net);
  if (!at)
    return NULL;
  struct net_text *nt = &pt->nets[json_integer_value(at)];
  if (nt->made)
    return nt;
  nt->made = true;
  const json_t *on_net = net_of(pt->snap, net);
  nt->spans = xcalloc(json_object_size(on_net) + 1, sizeof *nt->spans);
  const char *key;
  json_t *e;
  json_object_foreach((json_t *)on_net, key, e) {
    cleanup_free char *enc = jx_dump(json_object_get(e, "Peer"));
    size_t len = strlen(enc);
    nt->spans[nt->n++] =
        (struct span){nt->text.len, len, jx_str(e, "Node", "")};
    buf_append(&nt->text, enc, len);
  }
  return nt;
}

void peers_text_free(struct peers_text *pt) {
  if (!pt)
    return;
  for (size_t i = 0; i < pt->nnets; i++) {
    buf_free(&pt->nets[i].text);
    free(pt->nets[i].spans);
  }
  free(pt->nets);
  json_decref(pt->index);
  json_decref(pt->snap);
  free(pt);
}

bool peers_text_of(const struct peers_text *pt, const json_t *snap) {
  return pt && pt->snap == snap;
}

char *peers_text_reset(struct peers_text *pt, const char *node, size_t *len) {
  static const char head[] =
      "{\"Type\":\"peers\",\"Reset\":true,\"Del\":[],\"Add\":[";
  sh_buf b = {0};
  buf_append(&b, head, sizeof head - 1);
  bool first = true;
  const char *net;
  json_t *v;
  json_object_foreach((json_t *)held_by(pt->snap, node), net, v) {
    const struct net_text *nt = net_text(pt, net);
    for (size_t i = 0; nt && i < nt->n; i++) {
      const struct span *sp = &nt->spans[i];
      if (strcmp(sp->node, node) == 0) /* its own endpoints */
        continue;
      if (!first)
        buf_append(&b, ",", 1);
      buf_append(&b, nt->text.data + sp->off, sp->len);
      first = false;
    }
  }
  buf_append(&b, "]}\n", 3);
  *len = b.len;
  return b.data;
}
