/* The node's event log: the ring, subscribers, history bounds and the
 * swarm events made from store changes. */
#include "core/clock.h"
#include "core/jsonx.h"
#include "events/events.h"
#include "store/store.h"
#include "test.h"

struct seen {
  json_t *list;
  int unsub;
  struct events *e;
};

static void collect(const json_t *ev, void *ud) {
  struct seen *s = ud;
  json_array_append(s->list, (json_t *)ev);
  if (s->unsub)
    events_unsubscribe(s->e, s->unsub);
}

/* Attribute keys hold dots ("replicas.old"): no path lookup. */
static const char *attr(const json_t *ev, const char *key) {
  const char *v =
      json_string_value(json_object_get(jx_get(ev, "Actor.Attributes"), key));
  return v ? v : "";
}

TEST(events_ring_subscribers_and_history) {
  struct events *e = events_new();
  struct seen s = {json_array(), 0, e};
  int id = events_subscribe(e, collect, &s);
  events_publish_at(e, "container", "start", "c1",
                    json_pack("{s:s, s:s}", "image", "nginx", "name", "web.1"),
                    "local", 5 * NS_PER_SEC + 7);
  CHECK_INT_EQ(json_array_size(s.list), 1);
  json_t *ev = json_array_get(s.list, 0);
  CHECK_STR_EQ(jx_str(ev, "Type", ""), "container");
  CHECK_STR_EQ(jx_str(ev, "Action", ""), "start");
  CHECK_STR_EQ(jx_str(ev, "Actor.ID", ""), "c1");
  CHECK_STR_EQ(attr(ev, "name"), "web.1");
  CHECK_STR_EQ(jx_str(ev, "scope", ""), "local");
  CHECK_INT_EQ(jx_int(ev, "time", 0), 5);
  CHECK_INT_EQ(jx_int(ev, "timeNano", 0), 5 * NS_PER_SEC + 7);
  /* moby's legacy fields on container events. */
  CHECK_STR_EQ(jx_str(ev, "status", ""), "start");
  CHECK_STR_EQ(jx_str(ev, "from", ""), "nginx");
  /* A subscriber that unsubscribes itself gets no more. */
  s.unsub = id;
  events_publish_at(e, "network", "create", "n1", NULL, "swarm",
                    6 * NS_PER_SEC);
  events_publish_at(e, "network", "remove", "n1", NULL, "swarm",
                    7 * NS_PER_SEC);
  CHECK_INT_EQ(json_array_size(s.list), 2);
  CHECK(!json_object_get(json_array_get(s.list, 1), "status"));
  /* History: bounds inclusive; only the last EVENTS_KEPT stay. */
  json_t *h = events_history(e, 6 * NS_PER_SEC, 7 * NS_PER_SEC);
  CHECK_INT_EQ(json_array_size(h), 2);
  json_decref(h);
  for (int i = 0; i < EVENTS_KEPT + 10; i++)
    events_publish_at(e, "volume", "create", "v", NULL, "local",
                      (int64_t)(100 + i) * NS_PER_SEC);
  h = events_history(e, 0, 0);
  CHECK_INT_EQ(json_array_size(h), EVENTS_KEPT);
  CHECK_INT_EQ(jx_int(json_array_get(h, 0), "time", 0), 110);
  json_decref(h);
  json_decref(s.list);
  events_free(e);
}

TEST(events_from_store_changes_as_moby) {
  struct events *e = events_new();
  struct seen s = {json_array(), 0, e};
  events_subscribe(e, collect, &s);
  json_t *o =
      json_pack("{s:s, s:{s:s, s:s}, s:{s:s}, s:{s:b, s:s}, s:s}", "ID", "n1",
                "Spec", "Availability", "active", "Role", "manager", "Status",
                "State", "ready", "ManagerStatus", "Leader", 1, "Reachability",
                "reachable", "UpdatedAt", "2026-12-02T00:00:01Z");
  json_object_set_new(o, "Description", json_pack("{s:s}", "Hostname", "h1"));
  json_t *n = json_deep_copy(o);
  jx_set(n, "Spec.Availability", json_string("drain"));
  jx_set(n, "ManagerStatus.Leader", json_false());
  json_t *so =
      json_pack("{s:s, s:{s:s, s:{s:{s:s}}, s:{s:{s:i}}}}", "ID", "s1", "Spec",
                "Name", "web", "TaskTemplate", "ContainerSpec", "Image",
                "nginx:1", "Mode", "Replicated", "Replicas", 1);
  json_t *sn = json_deep_copy(so);
  jx_set(sn, "Spec.TaskTemplate.ContainerSpec.Image", json_string("nginx:2"));
  jx_set(sn, "Spec.Mode.Replicated.Replicas", json_integer(3));
  jx_set(sn, "UpdateStatus", json_pack("{s:s}", "State", "updating"));
  json_t *task = json_pack("{s:s}", "ID", "t1");
  struct store_change ch[] = {
      {STORE_NODE, "n1", o, n, false},
      {STORE_SERVICE, "s1", so, sn, false},
      {STORE_SERVICE, "s1", sn, NULL, false},
      {STORE_TASK, "t1", NULL, task, false}, /* tasks make no event */
  };
  events_cluster_changes(e, ch, 4);
  CHECK_INT_EQ(json_array_size(s.list), 3);
  json_t *ev = json_array_get(s.list, 0);
  CHECK_STR_EQ(jx_str(ev, "Type", ""), "node");
  CHECK_STR_EQ(jx_str(ev, "Action", ""), "update");
  CHECK_STR_EQ(jx_str(ev, "scope", ""), "swarm");
  CHECK_STR_EQ(attr(ev, "name"), "h1");
  CHECK_STR_EQ(attr(ev, "availability.old"), "active");
  CHECK_STR_EQ(attr(ev, "availability.new"), "drain");
  CHECK_STR_EQ(attr(ev, "leader.old"), "true");
  CHECK_STR_EQ(attr(ev, "leader.new"), "false");
  CHECK(!*attr(ev, "role.old"));
  ev = json_array_get(s.list, 1);
  CHECK_STR_EQ(attr(ev, "name"), "web");
  CHECK_STR_EQ(attr(ev, "image.old"), "nginx:1");
  CHECK_STR_EQ(attr(ev, "image.new"), "nginx:2");
  CHECK_STR_EQ(attr(ev, "replicas.old"), "1");
  CHECK_STR_EQ(attr(ev, "replicas.new"), "3");
  CHECK_STR_EQ(attr(ev, "updatestate.new"), "updating");
  CHECK_STR_EQ(jx_str(json_array_get(s.list, 2), "Action", ""), "remove");
  json_decref(o);
  json_decref(n);
  json_decref(so);
  json_decref(sn);
  json_decref(task);
  json_decref(s.list);
  events_free(e);
}
