#include "test.h"

#include "fixture.h"
#include "manager/allocator.h"
#include "manager/dispatcher.h"
#include "manager/networks.h"
#include "manager/mesh.h"
#include "manager/peers.h"

static void alloc(struct fx *f) {
  struct orch_out o;
  orch_out_init(&o);
  allocator_run(f->s, &o, true, NULL);
  fx_apply_out(f, &o);
  orch_out_free(&o);
}

#define SVC(name, netid, n)                                                    \
  "{\"Name\":\"" name "\",\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":"     \
  "\"busybox\"},\"Networks\":[{\"Target\":\"" netid "\"}]},\"Mode\":{"         \
  "\"Replicated\":{\"Replicas\":" #n "}}}"

/* The addresses of a peer set, sorted, as "addr@host" joined by ' '. */
static char *render(const json_t *set) {
  sh_buf b = {0};
  void *iter;
  json_t *keys = json_array();
  for (iter = json_object_iter((json_t *)set); iter;
       iter = json_object_iter_next((json_t *)set, iter))
    json_array_append_new(keys, json_string(json_object_iter_key(iter)));
  size_t n = json_array_size(keys);
  for (size_t i = 0; i < n; i++) /* tiny: selection sort */
    for (size_t k = i + 1; k < n; k++)
      if (strcmp(json_string_value(json_array_get(keys, k)),
                 json_string_value(json_array_get(keys, i))) < 0) {
        json_t *a = json_incref(json_array_get(keys, i));
        json_array_set(keys, i, json_array_get(keys, k));
        json_array_set_new(keys, k, a);
      }
  for (size_t i = 0; i < n; i++) {
    const json_t *v =
        json_object_get(set, json_string_value(json_array_get(keys, i)));
    buf_printf(&b, "%s%s@%s", i ? " " : "", jx_str(v, "Addr", ""),
               jx_str(v, "Host", ""));
  }
  json_decref(keys);
  return b.data ? b.data : xstrdup("");
}

TEST(peers_are_the_other_nodes_tasks_on_the_networks_a_node_holds) {
  cleanup_fx struct fx f = {0};
  fx_init_nodes(&f, "n", 3);
  fx_set(&f, STORE_NODE, "n1", "Status.Addr", json_string("192.168.33.11"));
  fx_set(&f, STORE_NODE, "n2", "Status.Addr", json_string("192.168.33.12"));
  fx_set(&f, STORE_NODE, "n3", "Status.Addr", json_string("192.168.33.13"));
  fx_network(&f, "netA", "10.0.1.0/24");
  fx_network(&f, "netB", "10.0.2.0/24");
  fx_service(&f, "a", SVC("a", "netA", 2));
  fx_service(&f, "b", SVC("b", "netB", 1));
  fx_orch(&f);
  /* Not allocated yet: the scheduler leaves the tasks pending. */
  CHECK_INT_EQ(fx_sched(&f), 0);
  alloc(&f);
  CHECK(fx_sched(&f) > 0);
  fx_agent(&f);

  json_t *tasks = fx_tasks(&f, NULL, "running", NULL);
  CHECK_INT_EQ(json_array_size(tasks), 3);
  json_decref(tasks);
  /* Spread: a's two tasks on two nodes, b's on the third. Each node
   * holding netA sees the other's task of a; the node of b sees none. */
  json_t *all = peers_by_node(f.s);
  json_t *snap_all = peers_snapshot(f.s);
  int with_one = 0, with_none = 0;
  const char *node;
  json_t *set;
  json_object_foreach(all, node, set) {
    cleanup_free char *r = render(set);
    if (json_object_size(set) == 1) {
      with_one++;
      CHECK(str_has_prefix(r, "10.0.1."));
      CHECK(strstr(r, "@192.168.33.") != NULL);
      /* never itself */
      char self[32];
      snprintf(self, sizeof self, "@192.168.33.1%c", node[1]);
      CHECK(strstr(r, self) == NULL);
    } else if (json_object_size(set) == 0)
      with_none++;
  }
  CHECK_INT_EQ(with_one, 2);
  CHECK_INT_EQ(with_none, 1);

  /* A node that goes down takes its tasks out of the others' sets. */
  json_t *as = fx_tasks(&f, "a", NULL, NULL);
  json_t *t = json_array_get(as, 0);
  const char *down = jx_str(t, "NodeID", "");
  char down_id[8];
  snprintf(down_id, sizeof down_id, "%s", down);
  fx_set(&f, STORE_NODE, down_id, "Status.State", json_string("down"));
  json_t *after = peers_by_node(f.s);
  json_t *snap_after = peers_snapshot(f.s);
  CHECK(json_object_get(after, down_id) == NULL);
  json_object_foreach(after, node, set) CHECK_INT_EQ(json_object_size(set), 0);

  /* The change as a node receives it: one deletion. */
  const char *other = NULL;
  json_object_foreach(all, node, set) {
    if (strcmp(node, down_id) && json_object_size(set) == 1)
      other = node;
  }
  CHECK(other != NULL);
  json_t *changed = peers_changed(snap_all, snap_after);
  json_t *d = peers_node_diff(snap_all, snap_after, changed, other);
  CHECK(d != NULL);
  CHECK_INT_EQ(json_array_size(json_object_get(d, "Add")), 0);
  CHECK_INT_EQ(json_array_size(json_object_get(d, "Del")), 1);
  json_decref(d);
  json_decref(changed);
  /* and nothing when nothing changed */
  changed = peers_changed(snap_after, snap_after);
  CHECK(peers_node_diff(snap_after, snap_after, changed, other) == NULL);
  json_decref(changed);
  json_decref(snap_all);
  json_decref(snap_after);
  json_decref(as);
  json_decref(all);
  json_decref(after);
  fx_free(&f);
}

/* node's set after its diff from old to cur, applied as the agent does
 * (deletions, then additions), starting from its set in old. */
static json_t *applied(const json_t *old, const json_t *cur,
                       const json_t *changed, const char *node) {
  json_t *set = old ? peers_for(old, node) : json_object();
  json_t *d = peers_node_diff(old, cur, changed, node);
  const char *lists[] = {"Del", "Add"};
  for (int l = 0; l < 2; l++) {
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(d, lists[l]), i, p) {
      char key[128];
      snprintf(key, sizeof key, "%s %s", jx_str(p, "Network", ""),
               jx_str(p, "Addr", ""));
      if (l == 0)
        json_object_del(set, key);
      else
        json_object_set(set, key, p);
    }
  }
  json_decref(d);
  return set;
}

/* node's set from the shared Reset line, applied to nothing as the agent
 * does; checks the line is one "peers" message with Reset. */
static json_t *from_reset_line(struct peers_text *pt, const char *node) {
  size_t len = 0;
  cleanup_free char *line = peers_text_reset(pt, node, &len);
  if (len == 0 || line[len - 1] != '\n' || strlen(line) != len)
    return NULL;
  cleanup_json json_t *msg = json_loadb(line, len - 1, 0, NULL);
  if (!msg || strcmp(jx_str(msg, "Type", ""), "peers") != 0 ||
      !json_is_true(json_object_get(msg, "Reset")) ||
      json_array_size(json_object_get(msg, "Del")) != 0)
    return NULL;
  json_t *set = json_object();
  size_t i;
  json_t *p;
  json_array_foreach(json_object_get(msg, "Add"), i, p) {
    char key[128];
    snprintf(key, sizeof key, "%s %s", jx_str(p, "Network", ""),
             jx_str(p, "Addr", ""));
    json_object_set(set, key, p);
  }
  return set;
}

/* Property: over random node, scale and placement changes, each node's
 * set moved by the per-node diffs (against the changed keys, against the
 * whole networks, and from nothing) and its set from the shared Reset line
 * are exactly its set computed whole. */
TEST(peers_node_diffs_match_the_whole_sets_over_random_changes) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 2);
  const char *nodes[] = {"n1", "n2", "n3", "n4", "n5"};
  for (int i = 0; i < 5; i++) {
    char addr[32];
    snprintf(addr, sizeof addr, "192.168.33.%d", 11 + i);
    fx_node(&f, nodes[i], NULL);
    fx_set(&f, STORE_NODE, nodes[i], "Status.Addr", json_string(addr));
  }
  fx_put(&f, STORE_NETWORK, networks_ingress("ing"), STORE_MUST_CREATE);
  fx_network(&f, "netA", "10.0.1.0/24");
  fx_network(&f, "netB", "10.0.2.0/24");
  fx_service(&f, "a", SVC("a", "netA", 3));
  fx_service(&f, "b", SVC("b", "netB", 2));
  unsigned seed = 7;
  json_t *old = peers_snapshot(f.s);
  int checked = 0;
  for (int step = 0; step < 40; step++) {
    int r = rand_r(&seed) % 4;
    const char *n = nodes[rand_r(&seed) % 5];
    if (r == 0)
      fx_set(&f, STORE_NODE, n, "Status.State", json_string("down"));
    else if (r == 1)
      fx_set(&f, STORE_NODE, n, "Status.State", json_string("ready"));
    else
      fx_scale(&f, r == 2 ? "a" : "b", rand_r(&seed) % 6);
    for (int k = 0; k < 4; k++) {
      fx_orch(&f);
      alloc(&f);
      fx_sched(&f);
      fx_agent(&f);
    }
    json_t *cur = peers_snapshot(f.s);
    json_t *changed = peers_changed(old, cur);
    struct peers_text *pt = peers_text_new(cur);
    CHECK(peers_text_of(pt, cur) && !peers_text_of(pt, old));
    for (int i = 0; i < 5; i++) {
      json_t *whole = peers_for(cur, nodes[i]);
      json_t *a = applied(old, cur, changed, nodes[i]);
      json_t *b = applied(old, cur, NULL, nodes[i]);
      json_t *c = applied(NULL, cur, NULL, nodes[i]);
      json_t *e = from_reset_line(pt, nodes[i]);
      CHECK(json_equal(a, whole));
      CHECK(json_equal(b, whole));
      CHECK(json_equal(c, whole));
      CHECK(e && json_equal(e, whole));
      checked += json_object_size(whole) > 0;
      json_decref(whole);
      json_decref(a);
      json_decref(b);
      json_decref(c);
      json_decref(e);
    }
    /* A node that holds nothing gets an empty set. */
    json_t *none = from_reset_line(pt, "nobody");
    CHECK(none && json_object_size(none) == 0);
    json_decref(none);
    peers_text_free(pt);
    json_decref(changed);
    json_decref(old);
    old = cur;
  }
  json_decref(old);
  CHECK(checked > 40); /* the sets were not all empty */
}

/* An address that moves to another node (same key, another host) comes
 * to a node holding the network as a deletion and an addition. */
TEST(peers_node_diff_moves_a_changed_host_as_delete_then_add) {
  json_t *a =
      json_pack("{s:{s:{s:{s:s, s:{s:s, s:s, s:s}}}}, s:{s:{s:b}}}", "Nets",
                "n", "n 10.0.0.2", "Node", "n1", "Peer", "Network", "n", "Addr",
                "10.0.0.2", "Host", "192.168.33.11", "Held", "n3", "n", 1);
  json_t *b =
      json_pack("{s:{s:{s:{s:s, s:{s:s, s:s, s:s}}}}, s:{s:{s:b}}}", "Nets",
                "n", "n 10.0.0.2", "Node", "n2", "Peer", "Network", "n", "Addr",
                "10.0.0.2", "Host", "192.168.33.12", "Held", "n3", "n", 1);
  json_t *changed = peers_changed(a, b);
  json_t *d = peers_node_diff(a, b, changed, "n3");
  CHECK_STR_EQ(jx_str(json_array_get(json_object_get(d, "Del"), 0), "Host", ""),
               "192.168.33.11");
  CHECK_STR_EQ(jx_str(json_array_get(json_object_get(d, "Add"), 0), "Host", ""),
               "192.168.33.12");
  json_decref(d);
  /* To the node it moved to, its own address is no peer: a deletion. */
  json_t *held = json_pack("{s:b}", "n", 1);
  json_object_set_new(json_object_get(b, "Held"), "n2", held);
  json_object_set(json_object_get(a, "Held"), "n2", held);
  d = peers_node_diff(a, b, changed, "n2");
  CHECK_INT_EQ(json_array_size(json_object_get(d, "Add")), 0);
  CHECK_INT_EQ(json_array_size(json_object_get(d, "Del")), 1);
  json_decref(d);
  json_decref(changed);
  json_decref(a);
  json_decref(b);
}

#define PUB(name, n)                                                           \
  "{\"Name\":\"" name "\",\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":"     \
  "\"busybox\"}},\"Mode\":{\"Replicated\":{\"Replicas\":" #n "}},"             \
  "\"EndpointSpec\":{\"Ports\":[{\"TargetPort\":80,\"PublishedPort\":8080},"   \
  "{\"TargetPort\":53,\"PublishedPort\":5353,\"Protocol\":\"udp\"},"           \
  "{\"TargetPort\":81,\"PublishedPort\":8081,\"PublishMode\":\"host\"}]}}"

TEST(mesh_table_lists_ingress_ports_over_running_tasks_on_ready_nodes) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  fx_node(&f, "n1", NULL);
  fx_node(&f, "n2", NULL);
  fx_set(&f, STORE_NODE, "n1", "Status.Addr", json_string("192.168.33.11"));
  fx_set(&f, STORE_NODE, "n2", "Status.Addr", json_string("192.168.33.12"));
  fx_put(&f, STORE_NETWORK, networks_ingress("ing"), STORE_MUST_CREATE);
  fx_service(&f, "web", PUB("web", 2));
  fx_orch(&f);
  alloc(&f);
  /* Nodes get their ingress-sbox addresses, distinct, not a task's. */
  const char *n1 =
      jx_str(store_get(f.s, STORE_NODE, "n1"), "_Ingress.Addr", "");
  const char *n2 =
      jx_str(store_get(f.s, STORE_NODE, "n2"), "_Ingress.Addr", "");
  CHECK(str_has_prefix(n1, "10.255.") && str_has_prefix(n2, "10.255."));
  CHECK(strcmp(n1, n2) != 0);

  /* Assigned, not running yet: no backends; the ports are there. */
  fx_sched(&f);
  json_t *m = mesh_table(f.s);
  CHECK_INT_EQ(json_array_size(m), 2); /* the host-mode port is not */
  CHECK_INT_EQ(json_array_size(jx_get(json_array_get(m, 0), "Backends")), 0);
  json_decref(m);
  fx_agent(&f);
  m = mesh_table(f.s);
  const json_t *tcp = json_array_get(m, 0), *udp = json_array_get(m, 1);
  CHECK_STR_EQ(jx_str(tcp, "Protocol", ""), "tcp");
  CHECK_INT_EQ(jx_int(tcp, "PublishedPort", 0), 8080);
  CHECK_INT_EQ(jx_int(tcp, "TargetPort", 0), 80);
  CHECK_STR_EQ(jx_str(udp, "Protocol", ""), "udp");
  const json_t *b = json_object_get(tcp, "Backends");
  CHECK_INT_EQ(json_array_size(b), 2);
  for (size_t i = 0; i < 2; i++) {
    const char *ip = json_string_value(json_array_get(b, i));
    CHECK(str_has_prefix(ip, "10.255.") && !strchr(ip, '/'));
    CHECK(strcmp(ip, n1) != 0 && strcmp(ip, n2) != 0);
  }
  CHECK(strcmp(json_string_value(json_array_get(b, 0)),
               json_string_value(json_array_get(b, 1))) < 0);
  json_decref(m);

  /* Every node's sandbox is a peer of the others on ingress. */
  json_t *all = peers_by_node(f.s);
  cleanup_free char *r1 = render(json_object_get(all, "n1"));
  char want[64];
  snprintf(want, sizeof want, "%.*s@192.168.33.12", (int)(strchr(n2, '/') - n2),
           n2);
  CHECK(strstr(r1, want) != NULL);
  json_decref(all);

  /* A node down: its task leaves the backends at once. */
  fx_set(&f, STORE_NODE, "n2", "Status.State", json_string("down"));
  m = mesh_table(f.s);
  CHECK_INT_EQ(json_array_size(jx_get(json_array_get(m, 0), "Backends")), 1);
  json_decref(m);
  /* A task desired shut down stops getting new connections before it
   * stops. */
  json_t *tasks = fx_tasks(&f, "web", "running", "running");
  for (size_t i = 0; i < json_array_size(tasks); i++)
    fx_set(&f, STORE_TASK, jx_str(json_array_get(tasks, i), "ID", ""),
           "DesiredState", json_string("shutdown"));
  json_decref(tasks);
  m = mesh_table(f.s);
  CHECK_INT_EQ(json_array_size(jx_get(json_array_get(m, 0), "Backends")), 0);
  json_decref(m);
  fx_free(&f);
}

TEST(mesh_vips_are_per_network_over_the_running_tasks_there) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  fx_node(&f, "n1", NULL);
  fx_put(&f, STORE_NETWORK, networks_ingress("ing"), STORE_MUST_CREATE);
  fx_network(&f, "netA", "10.0.1.0/24");
  fx_service(&f, "a", SVC("a", "netA", 2));
  fx_orch(&f);
  alloc(&f);
  fx_sched(&f);
  json_t *v = mesh_vips(f.s);
  CHECK_INT_EQ(json_array_size(v), 1);
  const json_t *e = json_array_get(v, 0);
  CHECK_STR_EQ(jx_str(e, "Network", ""), "netA");
  CHECK(str_has_prefix(jx_str(e, "Addr", ""), "10.0.1.") &&
        !strchr(jx_str(e, "Addr", ""), '/'));
  CHECK_INT_EQ(json_array_size(json_object_get(e, "Backends")), 0);
  json_decref(v);
  fx_agent(&f);
  v = mesh_vips(f.s);
  const json_t *bk = jx_get(json_array_get(v, 0), "Backends");
  CHECK_INT_EQ(json_array_size(bk), 2);
  CHECK(strcmp(json_string_value(json_array_get(bk, 0)),
               jx_str(json_array_get(v, 0), "Addr", "")) != 0);
  json_decref(v);
  fx_free(&f);
}

TEST(mesh_names_per_network_vip_tasks_aliases_and_dnsrr) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  fx_node(&f, "n1", NULL);
  fx_network(&f, "netA", "10.0.1.0/24");
  fx_network(&f, "netB", "10.0.2.0/24");
  fx_service(&f, "a",
             "{\"Name\":\"Web\",\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":"
             "\"busybox\"},\"Networks\":[{\"Target\":\"netA\",\"Aliases\":["
             "\"front\"]}]},\"Mode\":{\"Replicated\":{\"Replicas\":2}}}");
  fx_service(&f, "b",
             "{\"Name\":\"rr\",\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":"
             "\"busybox\"},\"Networks\":[{\"Target\":\"netB\"}]},\"Mode\":{"
             "\"Replicated\":{\"Replicas\":2}},\"EndpointSpec\":{\"Mode\":"
             "\"dnsrr\"}}");
  fx_orch(&f);
  alloc(&f);
  fx_sched(&f);
  fx_agent(&f);
  json_t *n = mesh_names(f.s);
  const json_t *a = json_object_get(n, "netA"), *b = json_object_get(n, "netB");
  /* lowercase service name and alias: the VIP; tasks.web: both tasks */
  const json_t *vip = json_object_get(a, "web");
  CHECK_INT_EQ(json_array_size(vip), 1);
  CHECK(json_equal(json_object_get(a, "front"), vip));
  CHECK_INT_EQ(json_array_size(json_object_get(a, "tasks.web")), 2);
  CHECK(json_object_get(a, "rr") == NULL); /* scoped per network */
  /* dnsrr: the name gives the tasks' addresses, no VIP */
  CHECK_INT_EQ(json_array_size(json_object_get(b, "rr")), 2);
  CHECK(json_equal(json_object_get(b, "rr"), json_object_get(b, "tasks.rr")));
  /* each task's name */
  size_t tnames = 0;
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)a, k, v) tnames += str_has_prefix(k, "web.");
  CHECK_INT_EQ(tnames, 2);
  json_decref(n);
  fx_free(&f);
}

TEST(mesh_diff_sends_only_what_changed) {
  json_t *old = json_loads("{\"port/tcp/8080\":{\"Backends\":[\"10.255.0.5\"]},"
                           "\"vip/n1/10.0.1.2\":{\"Backends\":[]},"
                           "\"sandboxes\":[\"10.255.0.2\"]}",
                           0, NULL);
  json_t *now = json_loads("{\"port/tcp/8080\":{\"Backends\":[\"10.255.0.5\","
                           "\"10.255.0.6\"]},\"names/n1\":{\"web\":[]},"
                           "\"sandboxes\":[\"10.255.0.2\"]}",
                           0, NULL);
  json_t *d = mesh_diff(old, now);
  CHECK(d != NULL);
  cleanup_free char *set = jx_dump(json_object_get(d, "Set"));
  CHECK_STR_EQ(set, "{\"port/tcp/8080\":{\"Backends\":[\"10.255.0.5\","
                    "\"10.255.0.6\"]},\"names/n1\":{\"web\":[]}}");
  cleanup_free char *del = jx_dump(json_object_get(d, "Del"));
  CHECK_STR_EQ(del, "[\"vip/n1/10.0.1.2\"]");
  json_decref(d);
  CHECK(mesh_diff(now, now) == NULL);
  json_decref(old);
  json_decref(now);
}

/* A standalone container's attachment task (manager/attach.h): the
 * allocator gives it an address of its network's pool, apart from the
 * service's tasks and VIP, and makes it running; the network's names
 * then carry the container's name and short ID; the node does not get
 * it as an assignment. */
TEST(attachment_tasks_get_addresses_and_dns_names) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  fx_node(&f, "n1", NULL);
  fx_network(&f, "netA", "10.0.1.0/24");
  fx_service(&f, "a",
             "{\"Name\":\"web\",\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":"
             "\"busybox\"},\"Networks\":[{\"Target\":\"netA\"}]},\"Mode\":{"
             "\"Replicated\":{\"Replicas\":2}}}");
  fx_put(&f, STORE_TASK,
         json_pack("{s:s, s:s, s:{s:{s:s, s:s}, s:[{s:s}]}, s:{s:s}, s:s}",
                   "ID", "att1", "NodeID", "n1", "Spec", "Attachment",
                   "ContainerID",
                   "0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
                   "abcdef",
                   "Name", "peer", "Networks", "Target", "netA", "Status",
                   "State", "new", "DesiredState", "running"),
         STORE_MUST_CREATE);
  fx_orch(&f);
  alloc(&f);
  fx_sched(&f);
  fx_agent(&f);
  json_t *att = store_get(f.s, STORE_TASK, "att1");
  CHECK_STR_EQ(jx_str(att, "Status.State", ""), "running");
  const char *mine = json_string_value(json_array_get(
      jx_get(json_array_get(json_object_get(att, "NetworksAttachments"), 0),
             "Addresses"),
      0));
  CHECK(mine && str_has_prefix(mine, "10.0.1."));
  /* no other holder of that address: the VIP, the tasks */
  json_t *svc = store_get(f.s, STORE_SERVICE, "a");
  CHECK(strcmp(jx_str(json_array_get(jx_get(svc, "Endpoint.VirtualIPs"), 0),
                      "Addr", ""),
               mine) != 0);
  json_t *tasks = fx_tasks(&f, "a", NULL, NULL);
  size_t i;
  json_t *t;
  json_array_foreach(tasks, i, t) {
    CHECK(strcmp(json_string_value(json_array_get(
                     jx_get(json_array_get(
                                json_object_get(t, "NetworksAttachments"), 0),
                            "Addresses"),
                     0)),
                 mine) != 0);
  }
  json_decref(tasks);
  json_t *n = mesh_names(f.s);
  char ip[64];
  snprintf(ip, sizeof ip, "%s", mine);
  *strchr(ip, '/') = '\0';
  const json_t *a = json_object_get(n, "netA");
  CHECK_STR_EQ(json_string_value(json_array_get(json_object_get(a, "peer"), 0)),
               ip);
  CHECK_STR_EQ(
      json_string_value(json_array_get(json_object_get(a, "0123456789ab"), 0)),
      ip);
  json_decref(n);
  /* the node's assignments are its service tasks only */
  json_t *sent = NULL, *files = NULL;
  json_t *msg = dispatcher_assignments(f.s, "n1", NULL, &sent, &files);
  json_array_foreach(json_object_get(msg, "Tasks"), i, t)
      CHECK(strcmp(jx_str(t, "ID", ""), "att1") != 0);
  CHECK_INT_EQ(json_array_size(json_object_get(msg, "Tasks")), 2);
  json_decref(msg);
  json_decref(sent);
  json_decref(files);
  fx_free(&f);
}
