/* The node's event log (see events.h). */
#include "events/events.h"

#include "core/clock.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "store/store.h"

#include <ctype.h>

struct sub {
  int id;
  events_fn fn;
  void *ud;
};

struct events {
  json_t *ring[EVENTS_KEPT];
  size_t head, count; /* oldest at head */
  struct sub *subs;
  size_t nsubs, cap;
  int next_id;
};

struct events *events_new(void) {
  return xcalloc(1, sizeof(struct events));
}

void events_free(struct events *e) {
  if (!e)
    return;
  for (size_t i = 0; i < e->count; i++)
    json_decref(e->ring[(e->head + i) % EVENTS_KEPT]);
  free(e->subs);
  free(e);
}

void events_publish_at(struct events *e, const char *type, const char *action,
                       const char *id, json_t *attrs, const char *scope,
                       int64_t at_ns) {
  if (!e) {
    json_decref(attrs);
    return;
  }
  json_t *ev = json_pack("{s:s, s:s, s:{s:s, s:o}, s:s, s:I, s:I}", "Type",
                         type, "Action", action, "Actor", "ID", id,
                         "Attributes", attrs ? attrs : json_object(), "scope",
                         scope, "time", (json_int_t)(at_ns / NS_PER_SEC),
                         "timeNano", (json_int_t)at_ns);
  /* moby's legacy fields, for older clients. */
  if (strcmp(type, "container") == 0 || strcmp(type, "image") == 0) {
    json_object_set_new(ev, "status", json_string(action));
    json_object_set_new(ev, "id", json_string(id));
    const char *from = jx_str(attrs, "image", NULL);
    if (from)
      json_object_set_new(ev, "from", json_string(from));
  }
  if (e->count == EVENTS_KEPT) {
    json_decref(e->ring[e->head]);
    e->head = (e->head + 1) % EVENTS_KEPT;
    e->count--;
  }
  e->ring[(e->head + e->count) % EVENTS_KEPT] = ev;
  e->count++;
  /* A subscriber may unsubscribe (itself or another) from its callback:
   * walk by id over a copy. */
  size_t n = e->nsubs;
  if (n == 0)
    return;
  struct sub *copy = xmalloc(n * sizeof *copy);
  memcpy(copy, e->subs, n * sizeof *copy);
  json_incref(ev);
  for (size_t i = 0; i < n; i++) {
    bool live = false;
    for (size_t j = 0; j < e->nsubs; j++)
      live = live || e->subs[j].id == copy[i].id;
    if (live)
      copy[i].fn(ev, copy[i].ud);
  }
  json_decref(ev);
  free(copy);
}

void events_publish(struct events *e, const char *type, const char *action,
                    const char *id, json_t *attrs, const char *scope) {
  events_publish_at(e, type, action, id, attrs, scope, clock_wall_ns());
}

int events_subscribe(struct events *e, events_fn fn, void *ud) {
  if (e->nsubs == e->cap) {
    e->cap = e->cap ? e->cap * 2 : 8;
    e->subs = xrealloc(e->subs, e->cap * sizeof *e->subs);
  }
  int id = ++e->next_id;
  e->subs[e->nsubs++] = (struct sub){id, fn, ud};
  return id;
}

void events_unsubscribe(struct events *e, int id) {
  for (size_t i = 0; i < e->nsubs; i++) {
    if (e->subs[i].id != id)
      continue;
    memmove(&e->subs[i], &e->subs[i + 1], (e->nsubs - i - 1) * sizeof *e->subs);
    e->nsubs--;
    return;
  }
}

json_t *events_history(struct events *e, int64_t since_ns, int64_t until_ns) {
  json_t *out = json_array();
  for (size_t i = 0; i < e->count; i++) {
    json_t *ev = e->ring[(e->head + i) % EVENTS_KEPT];
    int64_t at = jx_int(ev, "timeNano", 0);
    if (at >= since_ns && (until_ns == 0 || at <= until_ns))
      json_array_append(out, ev);
  }
  return out;
}

/* ---- swarm events from the store ---- */

static void lower_into(json_t *attrs, const char *key, const char *v) {
  char buf[64];
  size_t i = 0;
  for (; v[i] && i + 1 < sizeof buf; i++)
    buf[i] = (char)tolower((unsigned char)v[i]);
  buf[i] = '\0';
  json_object_set_new(attrs, key, json_string(buf));
}

/* old.KEY / new.KEY when the value at path changed. */
static void changed(json_t *attrs, const char *key, const json_t *o,
                    const json_t *n, const char *path) {
  const char *a = jx_str(o, path, ""), *b = jx_str(n, path, "");
  if (strcmp(a, b) == 0)
    return;
  char k[64];
  snprintf(k, sizeof k, "%s.old", key);
  lower_into(attrs, k, a);
  snprintf(k, sizeof k, "%s.new", key);
  lower_into(attrs, k, b);
}

static void node_attrs(json_t *attrs, const json_t *o, const json_t *n) {
  changed(attrs, "availability", o, n, "Spec.Availability");
  changed(attrs, "role", o, n, "Spec.Role");
  changed(attrs, "state", o, n, "Status.State");
  const json_t *om = json_object_get(o, "ManagerStatus");
  const json_t *nm = json_object_get(n, "ManagerStatus");
  if (!json_is_object(om) || !json_is_object(nm))
    return;
  bool ol = jx_bool(om, "Leader", false), nl = jx_bool(nm, "Leader", false);
  if (ol != nl) {
    json_object_set_new(attrs, "leader.old",
                        json_string(ol ? "true" : "false"));
    json_object_set_new(attrs, "leader.new",
                        json_string(nl ? "true" : "false"));
  }
  changed(attrs, "reachability", om, nm, "Reachability");
}

static void service_attrs(json_t *attrs, const json_t *o, const json_t *n) {
  const char *oi = jx_str(o, "Spec.TaskTemplate.ContainerSpec.Image", "");
  const char *ni = jx_str(n, "Spec.TaskTemplate.ContainerSpec.Image", "");
  if (strcmp(oi, ni) != 0) {
    json_object_set_new(attrs, "image.old", json_string(oi));
    json_object_set_new(attrs, "image.new", json_string(ni));
  }
  json_t *orp = jx_get(o, "Spec.Mode.Replicated.Replicas");
  json_t *nrp = jx_get(n, "Spec.Mode.Replicated.Replicas");
  if (json_is_integer(orp) && json_is_integer(nrp) &&
      json_integer_value(orp) != json_integer_value(nrp)) {
    json_object_set_new(attrs, "replicas.old",
                        json_sprintf("%lld", json_integer_value(orp)));
    json_object_set_new(attrs, "replicas.new",
                        json_sprintf("%lld", json_integer_value(nrp)));
  }
  const char *ous = jx_str(o, "UpdateStatus.State", NULL);
  const char *nus = jx_str(n, "UpdateStatus.State", NULL);
  if (nus && !ous)
    lower_into(attrs, "updatestate.new", nus);
  else if (nus && strcmp(ous, nus) != 0) {
    lower_into(attrs, "updatestate.old", ous);
    lower_into(attrs, "updatestate.new", nus);
  }
}

static int64_t stamp(const json_t *obj, const char *key) {
  int64_t ns = 0;
  const char *ts = jx_str(obj, key, NULL);
  if (!ts || clock_parse_rfc3339(ts, &ns, NULL) < 0)
    return clock_wall_ns();
  return ns;
}

void events_cluster_changes(struct events *e, const struct store_change *ch,
                            size_t n) {
  for (size_t i = 0; i < n; i++) {
    const struct store_change *c = &ch[i];
    if (c->kind != STORE_NODE && c->kind != STORE_SERVICE &&
        c->kind != STORE_NETWORK && c->kind != STORE_SECRET &&
        c->kind != STORE_CONFIG)
      continue;
    const json_t *obj = c->new_obj ? c->new_obj : c->old_obj;
    const char *action = !c->old_obj   ? "create"
                         : !c->new_obj ? "remove"
                                       : "update";
    /* Networks keep their name at the top level, the rest in Spec. */
    const char *name = c->kind == STORE_NETWORK ? jx_str(obj, "Name", "")
                                                : jx_str(obj, "Spec.Name", "");
    if (c->kind == STORE_NODE && !*name)
      name = jx_str(obj, "Description.Hostname", "");
    json_t *attrs = json_pack("{s:s}", "name", name);
    if (c->old_obj && c->new_obj) {
      if (c->kind == STORE_NODE)
        node_attrs(attrs, c->old_obj, c->new_obj);
      else if (c->kind == STORE_SERVICE)
        service_attrs(attrs, c->old_obj, c->new_obj);
    }
    int64_t at = !c->old_obj   ? stamp(obj, "CreatedAt")
                 : !c->new_obj ? clock_wall_ns()
                               : stamp(obj, "UpdatedAt");
    events_publish_at(e, store_kind_name(c->kind), action, c->id, attrs,
                      "swarm", at);
  }
}

void events_volume_mounts(struct events *e, const json_t *mounts,
                          const char *cid, bool mount) {
  size_t i;
  json_t *m;
  json_array_foreach(mounts, i, m) {
    const char *name = jx_str(m, "Name", "");
    if (strcmp(jx_str(m, "Type", ""), "volume") != 0 || !*name)
      continue;
    json_t *attrs = json_pack("{s:s, s:s}", "driver",
                              jx_str(m, "Driver", "local"), "container", cid);
    if (mount) {
      json_object_set_new(attrs, "destination",
                          json_string(jx_str(m, "Destination", "")));
      json_object_set_new(
          attrs, "read/write",
          json_string(jx_bool(m, "RW", true) ? "true" : "false"));
      json_object_set_new(attrs, "propagation",
                          json_string(jx_str(m, "Propagation", "")));
    }
    events_publish(e, "volume", mount ? "mount" : "unmount", name, attrs,
                   "local");
  }
}
