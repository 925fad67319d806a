#include "test.h"

#include "fixture.h"
#include "manager/networks.h"

static json_t *req(const char *s) {
  return json_loads(s, 0, NULL);
}

/* Creates a network through the pure function and applies it. */
static json_t *create(struct fx *f, const char *id, const char *body,
                      const json_t *pending, sh_err *err) {
  json_t *r = req(body);
  json_t *n = networks_create(f->s, r, id, pending, err);
  json_decref(r);
  return n;
}

static const char *subnet(const json_t *n) {
  return jx_str(json_array_get(jx_get(n, "IPAMOptions.Configs"), 0), "Subnet",
                "");
}

static const char *vni(const json_t *n) {
  return jx_str(
      json_object_get(jx_get(n, "DriverState.Options"), NETWORKS_VXLAN_OPT), "",
      NULL);
}

TEST(networks_allocate_from_the_cluster_pool_beside_pending_ones) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  fx_set(&f, STORE_CLUSTER, "cluster1", "DefaultAddrPool",
         json_pack("[s]", "10.20.0.0/16"));
  fx_set(&f, STORE_CLUSTER, "cluster1", "SubnetSize", json_integer(26));
  fx_put(&f, STORE_NETWORK, networks_ingress("ingress0"), STORE_MUST_CREATE);
  sh_err err = {0};
  json_t *a =
      create(&f, "a", "{\"Name\":\"a\",\"Driver\":\"overlay\"}", NULL, &err);
  CHECK(a != NULL);
  CHECK_STR_EQ(subnet(a), "10.20.0.0/26");
  CHECK_STR_EQ(vni(a), "4097");
  /* a is proposed, not applied: b must not take its subnet or VNI. */
  json_t *pending = json_pack("[O]", a);
  json_t *b =
      create(&f, "b", "{\"Name\":\"b\",\"Driver\":\"overlay\"}", pending, &err);
  CHECK(b != NULL);
  CHECK_STR_EQ(subnet(b), "10.20.0.64/26");
  CHECK_STR_EQ(vni(b), "4098");
  /* Nor its name. */
  CHECK(create(&f, "c", "{\"Name\":\"a\",\"Driver\":\"overlay\"}", pending,
               &err) == NULL);
  CHECK_INT_EQ(err.status, 409);
  CHECK_STR_EQ(err.msg, "network with name a already exists");
  json_decref(pending);
  fx_put(&f, STORE_NETWORK, a, STORE_MUST_CREATE);
  json_decref(b);
  /* A subnet given by the user overlapping one taken: libnetwork's 403. */
  CHECK(create(&f, "d",
               "{\"Name\":\"d\",\"Driver\":\"overlay\",\"IPAM\":{\"Config\":"
               "[{\"Subnet\":\"10.20.0.32/27\"}]}}",
               NULL, &err) == NULL);
  CHECK_INT_EQ(err.status, 403);
  /* The view dockerd gives. */
  json_t *v = networks_view(store_get(f.s, STORE_NETWORK, "a"));
  CHECK_STR_EQ(jx_str(v, "Id", ""), "a");
  CHECK_STR_EQ(jx_str(v, "Scope", ""), "swarm");
  CHECK_STR_EQ(jx_str(v, "Driver", ""), "overlay");
  CHECK_STR_EQ(
      jx_str(json_array_get(jx_get(v, "IPAM.Config"), 0), "Gateway", ""),
      "10.20.0.1");
  json_decref(v);
  fx_free(&f);
}

TEST(networks_find_and_remove_rules) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  fx_put(&f, STORE_NETWORK, networks_ingress("ingress0"), STORE_MUST_CREATE);
  sh_err err = {0};
  json_t *n = create(&f, "netabc", "{\"Name\":\"web\",\"Driver\":\"overlay\"}",
                     NULL, &err);
  fx_put(&f, STORE_NETWORK, n, STORE_MUST_CREATE);
  CHECK(networks_find(f.s, "web", &err) != NULL);
  CHECK(networks_find(f.s, "neta", &err) != NULL);
  CHECK(networks_find(f.s, "zz", &err) == NULL);
  CHECK_STR_EQ(err.msg, "network zz not found");
  CHECK(!networks_in_use(f.s, store_get(f.s, STORE_NETWORK, "ingress0")));
  /* A service publishing in ingress mode pins ingress. */
  fx_put(&f, STORE_SERVICE,
         json_pack("{s:s, s:{s:s, s:{s:[{s:i, s:i}]}}}", "ID", "svc1", "Spec",
                   "Name", "pub", "EndpointSpec", "Ports", "TargetPort", 80,
                   "PublishedPort", 8080),
         STORE_MUST_CREATE);
  CHECK(networks_in_use(f.s, store_get(f.s, STORE_NETWORK, "ingress0")));
  CHECK(networks_remove(f.s, "ingress", &err) == NULL);
  CHECK_INT_EQ(err.status, 400);
  CHECK_STR_EQ(err.msg, "rpc error: code = FailedPrecondition desc = ingress "
                        "network cannot be removed because service svc1 "
                        "depends on it");
  CHECK_STR_EQ(networks_remove(f.s, "web", &err), "netabc");
  fx_free(&f);
}

TEST(networks_driver_options_applied_or_refused) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  fx_put(&f, STORE_NETWORK, networks_ingress("ingress0"), STORE_MUST_CREATE);
  sh_err err = {0};
  json_t *a = create(&f, "a",
                     "{\"Name\":\"a\",\"Driver\":\"overlay\",\"Options\":{"
                     "\"com.docker.network.driver.overlay.vxlanid_list\":"
                     "\"5000\",\"com.docker.network.driver.mtu\":\"1400\"}}",
                     NULL, &err);
  CHECK(a != NULL);
  CHECK_STR_EQ(vni(a), "5000");
  fx_put(&f, STORE_NETWORK, a, STORE_MUST_CREATE);
  static const struct {
    const char *opts;
    int status;
    const char *msg;
  } bad[] = {
      {"\"encrypted\":\"\"", 501,
       "encrypted overlay networks (--opt encrypted) are not supported by "
       "shoal yet"},
      {"\"com.docker.network.driver.overlay.vxlanid_list\":\"5000\"", 403,
       "VXLAN ID 5000 is already in use"},
      {"\"com.docker.network.driver.overlay.vxlanid_list\":\"0x10\"", 400,
       "invalid VXLAN ID 0x10"},
      {"\"com.docker.network.driver.mtu\":\"big\"", 400,
       "invalid MTU big: it must be a number from 68 to 65535"},
      {"\"com.docker.network.bridge.name\":\"br9\"", 501,
       "network option \"com.docker.network.bridge.name\" is not supported "
       "by shoal"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char body[256];
    snprintf(body, sizeof body,
             "{\"Name\":\"b\",\"Driver\":\"overlay\",\"Options\":{%s}}",
             bad[i].opts);
    err = (sh_err){0};
    CHECK(create(&f, "b", body, NULL, &err) == NULL);
    CHECK_INT_EQ(err.status, bad[i].status);
    CHECK_STR_EQ(err.msg, bad[i].msg);
  }
  fx_free(&f);
}
