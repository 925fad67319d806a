/* The routing mesh's table (see mesh.h). */
#include "manager/mesh.h"

#include "core/jsonx.h"
#include "core/util.h"
#include "ipam/ipam.h"
#include "manager/attach.h"
#include "manager/orchtask.h"
#include "store/store.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static int cmp_str(const void *a, const void *b) {
  return strcmp(json_string_value(*(json_t *const *)a),
                json_string_value(*(json_t *const *)b));
}

/* A sorted copy (so that an unchanged set is an unchanged table). */
static json_t *sort_strings(const json_t *l) {
  size_t nb = json_array_size(l);
  json_t **v = xcalloc(nb ? nb : 1, sizeof *v);
  for (size_t k = 0; k < nb; k++)
    v[k] = json_array_get(l, k);
  qsort(v, nb, sizeof *v, cmp_str);
  json_t *sorted = json_array();
  for (size_t k = 0; k < nb; k++)
    json_array_append(sorted, v[k]);
  free(v);
  return sorted;
}

/* The task's address on a network, without its prefix length. */
static void addr_on(const json_t *task, const char *net_id, char out[64]) {
  out[0] = '\0';
  size_t i;
  json_t *att;
  json_array_foreach(json_object_get(task, "NetworksAttachments"), i, att) {
    if (strcmp(jx_str(att, "Network.ID", ""), net_id) == 0)
      ipam_cidr_addr(json_string_value(
                         json_array_get(json_object_get(att, "Addresses"), 0)),
                     out);
  }
}

/* A task of service sid that takes connections now: running, meant to
 * run, on a ready node. */
static bool serving(const json_t *t, const char *sid, const json_t *ready) {
  return strcmp(jx_str(t, "ServiceID", ""), sid) == 0 &&
         task_state(t) == TS_RUNNING && task_desired(t) == TS_RUNNING &&
         json_object_get(ready, jx_str(t, "NodeID", "")) != NULL;
}

/* The task's address on the ingress network; "" when it has none. */
static void ingress_addr(const json_t *task, char out[64]) {
  out[0] = '\0';
  size_t i;
  json_t *att;
  json_array_foreach(json_object_get(task, "NetworksAttachments"), i, att) {
    if (jx_bool(att, "Network.Spec.Ingress", false)) {
      addr_on(task, jx_str(att, "Network.ID", ""), out);
      return;
    }
  }
}

/* {node ID: true} of the ready nodes. */
static json_t *ready_nodes(struct store *s) {
  cleanup_json json_t *nodes = store_list(s, STORE_NODE);
  json_t *ready = json_object();
  size_t i;
  json_t *n;
  json_array_foreach(nodes, i, n) {
    if (strcmp(jx_str(n, "Status.State", ""), "ready") == 0)
      json_object_set_new(ready, jx_str(n, "ID", ""), json_true());
  }
  return ready;
}

json_t *mesh_vips(struct store *s) {
  cleanup_json json_t *ready = ready_nodes(s);
  size_t i;
  cleanup_json json_t *svcs = store_list(s, STORE_SERVICE);
  json_t *out = json_array();
  json_t *svc;
  json_array_foreach(svcs, i, svc) {
    const char *sid = jx_str(svc, "ID", "");
    size_t k;
    json_t *vip;
    json_array_foreach(jx_get(svc, "Endpoint.VirtualIPs"), k, vip) {
      const char *net = jx_str(vip, "NetworkID", "");
      const json_t *nobj = store_get(s, STORE_NETWORK, net);
      if (!nobj || jx_bool(nobj, "Spec.Ingress", false))
        continue; /* ingress is the routing mesh's, not the tasks' */
      json_t *backends = json_array();
      /* The service's tasks only (the ServiceID index). */
      cleanup_json json_t *tasks =
          store_list_by(s, STORE_TASKS_BY_SERVICE, sid);
      size_t j;
      json_t *t;
      json_array_foreach(tasks, j, t) {
        if (!serving(t, sid, ready))
          continue;
        char ip[64];
        addr_on(t, net, ip);
        if (*ip)
          json_array_append_new(backends, json_string(ip));
      }
      json_t *sorted = sort_strings(backends);
      json_decref(backends);
      char addr[64];
      ipam_cidr_addr(jx_str(vip, "Addr", ""), addr);
      json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:o}", "Service",
                                           sid, "Network", net, "Addr", addr,
                                           "Backends", sorted));
    }
  }
  return out;
}

/* Whether svc publishes a port in ingress mode. */
static bool publishes_ingress(const json_t *svc) {
  size_t k;
  json_t *p;
  json_array_foreach(jx_get(svc, "Endpoint.Ports"), k, p) {
    if (strcmp(jx_str(p, "PublishMode", "ingress"), "ingress") == 0 &&
        jx_int(p, "PublishedPort", 0) > 0)
      return true;
  }
  return false;
}

json_t *mesh_table(struct store *s) {
  cleanup_json json_t *ready = ready_nodes(s);
  size_t i;
  json_t *out = json_array();
  cleanup_json json_t *svcs = store_list(s, STORE_SERVICE);
  json_t *svc;
  json_array_foreach(svcs, i, svc) {
    if (!publishes_ingress(svc))
      continue;
    const char *sid = jx_str(svc, "ID", "");
    /* The backends: this service's tasks only (the ServiceID index). */
    cleanup_json json_t *l = json_array();
    cleanup_json json_t *tasks = store_list_by(s, STORE_TASKS_BY_SERVICE, sid);
    size_t j;
    json_t *t;
    json_array_foreach(tasks, j, t) {
      if (task_state(t) != TS_RUNNING || task_desired(t) != TS_RUNNING ||
          !json_object_get(ready, jx_str(t, "NodeID", "")))
        continue;
      char ip[64];
      ingress_addr(t, ip);
      if (*ip)
        json_array_append_new(l, json_string(ip));
    }
    json_t *sorted = sort_strings(l);
    size_t k;
    json_t *p;
    json_array_foreach(jx_get(svc, "Endpoint.Ports"), k, p) {
      if (strcmp(jx_str(p, "PublishMode", "ingress"), "ingress") != 0 ||
          jx_int(p, "PublishedPort", 0) <= 0)
        continue;
      json_t *e =
          json_pack("{s:s, s:s, s:I, s:I, s:O}", "Service", sid, "Protocol",
                    jx_str(p, "Protocol", "tcp"), "PublishedPort",
                    (json_int_t)jx_int(p, "PublishedPort", 0), "TargetPort",
                    (json_int_t)jx_int(p, "TargetPort", 0), "Backends", sorted);
      if (mesh_keeps_client_ip(svc))
        json_object_set_new(e, "KeepClientIP", json_true());
      json_array_append_new(out, e);
    }
    json_decref(sorted);
  }
  return out;
}

bool mesh_keeps_client_ip(const json_t *svc) {
  const char *v = json_string_value(
      json_object_get(jx_get(svc, "Spec.Labels"), MESH_KEEP_CLIENT_IP_LABEL));
  return v && strcmp(v, "true") == 0;
}

json_t *mesh_sandboxes(struct store *s) {
  cleanup_json json_t *nodes = store_list(s, STORE_NODE);
  cleanup_json json_t *l = json_array();
  size_t i;
  json_t *n;
  json_array_foreach(nodes, i, n) {
    char ip[64];
    ipam_cidr_addr(jx_str(n, "_Ingress.Addr", ""), ip);
    if (*ip)
      json_array_append_new(l, json_string(ip));
  }
  return sort_strings(l);
}

/* names[net][name] gets ip (once). */
static void add_name(json_t *names, const char *net, const char *name,
                     const char *ip) {
  json_t *on = json_object_get(names, net);
  if (!on) {
    on = json_object();
    json_object_set_new(names, net, on);
  }
  cleanup_free char *lower = xstrdup(name);
  for (char *c = lower; *c; c++)
    *c = (char)tolower((unsigned char)*c);
  json_t *l = json_object_get(on, lower);
  if (!l) {
    l = json_array();
    json_object_set_new(on, lower, l);
  }
  size_t i;
  json_t *v;
  json_array_foreach(l, i, v) if (strcmp(json_string_value(v), ip) == 0) return;
  json_array_append_new(l, json_string(ip));
}

static void running_attachment(json_t *t, void *ud) {
  if (attachment_task(t) && task_state(t) == TS_RUNNING)
    json_object_set(ud, jx_str(t, "ID", ""), t);
}

json_t *mesh_names(struct store *s) {
  cleanup_json json_t *ready = ready_nodes(s);
  cleanup_json json_t *svcs = store_list(s, STORE_SERVICE);
  json_t *names = json_object();
  size_t i;
  json_t *svc;
  json_array_foreach(svcs, i, svc) {
    const char *sid = jx_str(svc, "ID", "");
    const char *sname = jx_str(svc, "Spec.Name", "");
    bool dnsrr =
        strcmp(jx_str(svc, "Spec.EndpointSpec.Mode", "vip"), "dnsrr") == 0;
    const json_t *nets = jx_get(svc, "Spec.TaskTemplate.Networks");
    if (json_array_size(nets) == 0)
      continue;
    /* The service's tasks only (the ServiceID index). */
    cleanup_json json_t *tasks = store_list_by(s, STORE_TASKS_BY_SERVICE, sid);
    size_t k;
    json_t *na;
    json_array_foreach(nets, k, na) {
      const char *net = jx_str(na, "Target", "");
      const json_t *nobj = store_get(s, STORE_NETWORK, net);
      if (!nobj || jx_bool(nobj, "Spec.Ingress", false))
        continue;
      /* The service's name and aliases: its VIP, or under dnsrr its
       * tasks' addresses. */
      const char *vip = NULL;
      size_t v;
      json_t *vo;
      json_array_foreach(jx_get(svc, "Endpoint.VirtualIPs"), v, vo) {
        if (strcmp(jx_str(vo, "NetworkID", ""), net) == 0)
          vip = jx_str(vo, "Addr", NULL);
      }
      const json_t *aliases = json_object_get(na, "Aliases");
      if (vip && !dnsrr) {
        char ip[64];
        ipam_cidr_addr(vip, ip);
        add_name(names, net, sname, ip);
        size_t a;
        json_t *al;
        json_array_foreach(aliases, a, al)
            add_name(names, net, json_string_value(al), ip);
      }
      size_t j;
      json_t *t;
      json_array_foreach(tasks, j, t) {
        if (!serving(t, sid, ready))
          continue;
        char ip[64];
        addr_on(t, net, ip);
        if (!*ip)
          continue;
        cleanup_free char *tasks_name = xasprintf("tasks.%s", sname);
        add_name(names, net, tasks_name, ip);
        cleanup_free char *tname =
            xasprintf("%s.%s", jx_str(t, "Name", sname), jx_str(t, "ID", ""));
        add_name(names, net, tname, ip);
        if (dnsrr || !vip) {
          add_name(names, net, sname, ip);
          size_t a;
          json_t *al;
          json_array_foreach(aliases, a, al)
              add_name(names, net, json_string_value(al), ip);
        }
      }
    }
  }
  /* Standalone containers attached to a network: their name and short
   * ID, as dockerd registers a container on a user network. Only tasks on
   * a network are looked at (the network index), in store order: the
   * sorted list of every running task was most of this at 100,000. */
  cleanup_json json_t *on_nets = json_object();
  cleanup_json json_t *netkeys = store_index_keys(s, STORE_TASKS_BY_NETWORK);
  json_t *nk;
  json_array_foreach(netkeys, i, nk) {
    store_each_by(s, STORE_TASKS_BY_NETWORK, json_string_value(nk),
                  running_attachment, on_nets);
  }
  cleanup_json json_t *running = jx_sorted_by_created(on_nets);
  json_t *t;
  json_array_foreach(running, i, t) {
    if (!attachment_task(t) || task_desired(t) != TS_RUNNING ||
        !json_object_get(ready, jx_str(t, "NodeID", "")))
      continue;
    size_t k;
    json_t *att;
    json_array_foreach(json_object_get(t, "NetworksAttachments"), k, att) {
      const char *net = jx_str(att, "Network.ID", "");
      char ip[64];
      addr_on(t, net, ip);
      if (!*ip)
        continue;
      const char *name = jx_str(t, "Spec.Attachment.Name", "");
      if (*name)
        add_name(names, net, name, ip);
      char shortid[13];
      snprintf(shortid, sizeof shortid, "%s",
               jx_str(t, "Spec.Attachment.ContainerID", ""));
      if (*shortid)
        add_name(names, net, shortid, ip);
    }
  }
  return names;
}

json_t *mesh_keyed(struct store *s) {
  json_t *out = json_object();
  char key[160];
  size_t i;
  json_t *e;
  cleanup_json json_t *ports = mesh_table(s);
  json_array_foreach(ports, i, e) {
    snprintf(key, sizeof key, "port/%s/%lld", jx_str(e, "Protocol", "tcp"),
             (long long)jx_int(e, "PublishedPort", 0));
    json_object_set(out, key, e);
  }
  cleanup_json json_t *vips = mesh_vips(s);
  json_array_foreach(vips, i, e) {
    snprintf(key, sizeof key, "vip/%s/%s", jx_str(e, "Network", ""),
             jx_str(e, "Addr", ""));
    json_object_set(out, key, e);
  }
  cleanup_json json_t *names = mesh_names(s);
  const char *net;
  json_object_foreach(names, net, e) {
    snprintf(key, sizeof key, "names/%s", net);
    json_object_set(out, key, e);
  }
  json_object_set_new(out, "sandboxes", mesh_sandboxes(s));
  return out;
}

json_t *mesh_diff(const json_t *old, const json_t *now) {
  json_t *set = json_object(), *del = json_array();
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)now, k, v) {
    const json_t *was = json_object_get(old, k);
    if (!was || !json_equal(was, v))
      json_object_set(set, k, v);
  }
  json_object_foreach((json_t *)old, k, v) {
    if (!json_object_get(now, k))
      json_array_append_new(del, json_string(k));
  }
  if (json_object_size(set) == 0 && json_array_size(del) == 0) {
    json_decref(set);
    json_decref(del);
    return NULL;
  }
  return json_pack("{s:o, s:o}", "Set", set, "Del", del);
}
