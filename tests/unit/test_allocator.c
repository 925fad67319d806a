#include "test.h"

#include "fixture.h"
#include "manager/allocator.h"
#include "manager/networks.h"

static int fx_alloc(struct fx *f, size_t *exhausted) {
  struct orch_out o;
  orch_out_init(&o);
  allocator_run(f->s, &o, true, exhausted);
  int n = fx_apply_out(f, &o);
  orch_out_free(&o);
  return n;
}

/* addresses of a task on a network, "" when none */
static const char *addr_on(const json_t *t, const char *net) {
  size_t i;
  json_t *a;
  json_array_foreach(json_object_get(t, "NetworksAttachments"), i, a) {
    if (strcmp(jx_str(a, "Network.ID", ""), net) == 0)
      return json_string_value(
          json_array_get(json_object_get(a, "Addresses"), 0));
  }
  return "";
}

#define WEB                                                                    \
  "{\"Name\":\"web\",\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":"          \
  "\"busybox\"},\"Networks\":[{\"Target\":\"netA\"}]},\"Mode\":{"              \
  "\"Replicated\":{\"Replicas\":3}},\"EndpointSpec\":{\"Ports\":[{"            \
  "\"TargetPort\":80,\"PublishedPort\":8080}]}}"

TEST(allocator_gives_vips_and_task_addresses_ingress_first) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  fx_node(&f, "n1", NULL);
  fx_put(&f, STORE_NETWORK, networks_ingress("ing"), STORE_MUST_CREATE);
  /* .0 network, .1 gateway, .7 broadcast: .2 to .6 for VIPs and tasks. */
  fx_network(&f, "netA", "10.0.1.0/29");
  fx_service(&f, "svc1", WEB);
  fx_orch(&f);
  size_t short_of = 9;
  CHECK(fx_alloc(&f, &short_of) > 0);
  CHECK_INT_EQ(short_of, 0);
  json_t *svc = store_get(f.s, STORE_SERVICE, "svc1");
  json_t *vips = jx_get(svc, "Endpoint.VirtualIPs");
  CHECK_INT_EQ(json_array_size(vips), 2);
  CHECK_STR_EQ(jx_str(json_array_get(vips, 0), "NetworkID", ""), "ing");
  /* The node's ingress sandbox got the first ingress address. */
  CHECK_STR_EQ(jx_str(store_get(f.s, STORE_NODE, "n1"), "_Ingress.Addr", ""),
               "10.255.0.2/16");
  CHECK_STR_EQ(jx_str(json_array_get(vips, 0), "Addr", ""), "10.255.0.3/16");
  CHECK_STR_EQ(jx_str(json_array_get(vips, 1), "Addr", ""), "10.0.1.2/29");
  json_t *tasks = fx_tasks(&f, "svc1", NULL, NULL);
  CHECK_INT_EQ(json_array_size(tasks), 3);
  const char *seen[3];
  for (size_t i = 0; i < 3; i++) {
    json_t *t = json_array_get(tasks, i);
    CHECK(allocator_task_allocated(f.s, svc, t));
    CHECK_STR_EQ(
        jx_str(json_array_get(json_object_get(t, "NetworksAttachments"), 0),
               "Network.ID", ""),
        "ing");
    seen[i] = addr_on(t, "netA");
    CHECK(str_has_prefix(seen[i], "10.0.1."));
    for (size_t k = 0; k < i; k++)
      CHECK(strcmp(seen[k], seen[i]) != 0);
  }
  json_decref(tasks);
  /* A second run changes nothing. */
  CHECK_INT_EQ(fx_alloc(&f, NULL), 0);

  /* Two more replicas, one address left on netA: one waits. */
  fx_scale(&f, "svc1", 5);
  fx_orch(&f);
  fx_alloc(&f, &short_of);
  CHECK_INT_EQ(short_of, 1);
  /* A task that failed frees its addresses for the one waiting. */
  tasks = fx_tasks(&f, "svc1", NULL, NULL);
  json_t *t0 = json_array_get(tasks, 0);
  fx_set(&f, STORE_TASK, jx_str(t0, "ID", ""), "Status.State",
         json_string("failed"));
  json_decref(tasks);
  fx_alloc(&f, &short_of);
  CHECK_INT_EQ(short_of, 0);
  fx_free(&f);
}

TEST(allocator_dnsrr_has_no_vip_and_dropped_networks_lose_theirs) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  fx_put(&f, STORE_NETWORK, networks_ingress("ing"), STORE_MUST_CREATE);
  fx_network(&f, "netA", "10.0.1.0/24");
  fx_service(&f, "dns1",
             "{\"Name\":\"d\",\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":"
             "\"busybox\"},\"Networks\":[{\"Target\":\"netA\"}]},"
             "\"EndpointSpec\":{\"Mode\":\"dnsrr\"}}");
  fx_service(&f, "vip1",
             "{\"Name\":\"v\",\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":"
             "\"busybox\"},\"Networks\":[{\"Target\":\"netA\"}]}}");
  fx_orch(&f);
  fx_alloc(&f, NULL);
  CHECK(jx_get(store_get(f.s, STORE_SERVICE, "dns1"), "Endpoint.VirtualIPs") ==
        NULL);
  CHECK_INT_EQ(json_array_size(jx_get(store_get(f.s, STORE_SERVICE, "vip1"),
                                      "Endpoint.VirtualIPs")),
               1);
  /* The service leaves netA: its VIP goes. */
  fx_update(&f, "vip1",
            "{\"Name\":\"v\",\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":"
            "\"busybox\"}}}",
            NULL);
  fx_alloc(&f, NULL);
  CHECK(jx_get(store_get(f.s, STORE_SERVICE, "vip1"), "Endpoint.VirtualIPs") ==
        NULL);
  fx_free(&f);
}
