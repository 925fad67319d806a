#include "test.h"

#include "api/filters.h"
#include "api/schema.h"
#include "ca/ca.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "daemon/daemon.h"
#include "manager/internal.h"

static const char *const node_filters[] = {"id",   "label",      "role",
                                           "name", "node.label", NULL};

TEST(filters_both_syntaxes) {
  struct filters f = {0};
  sh_err err = {0};
  CHECK_INT_EQ(
      filters_parse("{\"role\":[\"manager\"]}", node_filters, &f, &err), 0);
  CHECK(filters_match(&f, "role", "manager"));
  CHECK(!filters_match(&f, "role", "worker"));
  CHECK(filters_match(&f, "name", "anything")); /* absent filter */
  filters_free(&f);
  CHECK_INT_EQ(
      filters_parse("{\"role\":{\"worker\":true}}", node_filters, &f, &err), 0);
  CHECK(filters_match(&f, "role", "worker"));
  CHECK(!filters_match(&f, "role", "manager"));
  filters_free(&f);
}

TEST(filters_refuse_bad_input) {
  struct filters f = {0};
  sh_err err = {0};
  CHECK(filters_parse("{\"bogus\":[\"x\"]}", node_filters, &f, &err) < 0);
  CHECK_INT_EQ(err.status, 400);
  CHECK_STR_EQ(err.msg, "invalid filter 'bogus'");
  filters_free(&f);
  CHECK(filters_parse("not json", node_filters, &f, &err) < 0);
  filters_free(&f);
  CHECK(filters_parse("{\"role\":[1]}", node_filters, &f, &err) < 0);
  filters_free(&f);
  CHECK(filters_parse("[]", node_filters, &f, &err) < 0);
  filters_free(&f);
  CHECK_INT_EQ(filters_parse("", node_filters, &f, &err), 0);
  filters_free(&f);
}

TEST(filters_labels_and_prefix) {
  struct filters f = {0};
  sh_err err = {0};
  CHECK_INT_EQ(filters_parse("{\"node.label\":[\"zone=a\",\"ssd\"],"
                             "\"id\":[\"abc\"]}",
                             node_filters, &f, &err),
               0);
  cleanup_json json_t *l1 = json_pack("{s:s, s:s}", "zone", "a", "ssd", "");
  cleanup_json json_t *l2 = json_pack("{s:s}", "zone", "a");
  cleanup_json json_t *l3 = json_pack("{s:s, s:s}", "zone", "b", "ssd", "1");
  CHECK(filters_match_labels(&f, "node.label", l1));
  CHECK(!filters_match_labels(&f, "node.label", l2));
  CHECK(!filters_match_labels(&f, "node.label", l3));
  CHECK(filters_match_prefix(&f, "id", "abcdef"));
  CHECK(!filters_match_prefix(&f, "id", "xabc"));
  filters_free(&f);
}

TEST(addr_split_forms) {
  char host[64];
  int port = 2377;
  sh_err err = {0};
  CHECK_INT_EQ(addr_split("192.168.33.10:4000", host, sizeof host, &port, &err),
               0);
  CHECK_STR_EQ(host, "192.168.33.10");
  CHECK_INT_EQ(port, 4000);
  port = 2377;
  CHECK_INT_EQ(addr_split("10.0.0.1", host, sizeof host, &port, &err), 0);
  CHECK_STR_EQ(host, "10.0.0.1");
  CHECK_INT_EQ(port, 2377);
  CHECK_INT_EQ(addr_split("[fe80::1]:2377", host, sizeof host, &port, &err), 0);
  CHECK_STR_EQ(host, "fe80::1");
  CHECK(addr_split("1.2.3.4:99999", host, sizeof host, &port, &err) < 0);
  CHECK(addr_split("1.2.3.4:x", host, sizeof host, &port, &err) < 0);
}

TEST(advertise_explicit_and_bad) {
  char ip[64];
  sh_err err = {0};
  CHECK_INT_EQ(
      shoald_pick_advertise_ip("192.168.33.10", "0.0.0.0", ip, sizeof ip, &err),
      0);
  CHECK_STR_EQ(ip, "192.168.33.10");
  CHECK(shoald_pick_advertise_ip("0.0.0.0", "0.0.0.0", ip, sizeof ip, &err) <
        0);
  CHECK_STR_EQ(err.msg, "advertise address must be a non-zero IP address or "
                        "network interface (with optional port number)");
  CHECK(shoald_pick_advertise_ip("nosuchif0", "0.0.0.0", ip, sizeof ip, &err) <
        0);
  CHECK_INT_EQ(err.status, 400);
  /* lo has only loopback addresses: not usable. */
  CHECK(shoald_pick_advertise_ip("lo", "0.0.0.0", ip, sizeof ip, &err) < 0);
  CHECK_STR_EQ(err.msg, "interface lo has no usable IPv4 or IPv6 address");
}

static json_t *new_cluster(struct manager_init *in, sh_err *err, char **root,
                           char **key) {
  if (ca_root_create(root, key, err) < 0)
    return NULL;
  in->root_cert_pem = *root;
  in->root_key_pem = *key;
  in->cluster_id = "clusterid0123456789abcdef";
  return cluster_object_new(in, err);
}

TEST(cluster_defaults_are_dockers) {
  struct manager_init in = {.task_history_limit = -1};
  sh_err err = {0};
  cleanup_free char *root = NULL;
  cleanup_free char *key = NULL;
  cleanup_json json_t *c = new_cluster(&in, &err, &root, &key);
  CHECK(c != NULL);
  CHECK_INT_EQ(jx_int(c, "Spec.Orchestration.TaskHistoryRetentionLimit", 0), 5);
  CHECK_INT_EQ(jx_int(c, "Spec.Raft.SnapshotInterval", 0), 10000);
  CHECK_INT_EQ(jx_int(c, "Spec.Raft.HeartbeatTick", 0), 1);
  CHECK_INT_EQ(jx_int(c, "Spec.Raft.ElectionTick", 0), 10);
  CHECK_INT_EQ(jx_int(c, "Spec.Dispatcher.HeartbeatPeriod", 0), 5000000000LL);
  CHECK_INT_EQ(jx_int(c, "Spec.CAConfig.NodeCertExpiry", 0),
               2160LL * 3600 * 1000000000LL);
  CHECK_STR_EQ(jx_str(c, "DefaultAddrPool.0", "10.0.0.0/8"), "10.0.0.0/8");
  CHECK_INT_EQ(jx_int(c, "SubnetSize", 0), 24);
  CHECK_INT_EQ(jx_int(c, "DataPathPort", 0), 4789);
  const char *w = jx_str(c, "JoinTokens.Worker", "");
  const char *m = jx_str(c, "JoinTokens.Manager", "");
  char d1[CA_DIGEST_LEN + 1], d2[CA_DIGEST_LEN + 1], s1[CA_SECRET_LEN + 1],
      s2[CA_SECRET_LEN + 1];
  CHECK_INT_EQ(ca_token_parse(w, d1, s1, &err), 0);
  CHECK_INT_EQ(ca_token_parse(m, d2, s2, &err), 0);
  CHECK_STR_EQ(d1, d2);
  CHECK(strcmp(s1, s2) != 0);
  CHECK(jx_str(c, "TLSInfo.CertIssuerPublicKey", NULL) != NULL);
  CHECK_STR_EQ(jx_str(c, "_CAKey", ""), key);
}

TEST(cluster_refuses_short_expiry) {
  struct manager_init in = {.task_history_limit = -1,
                            .cert_expiry_ns = 60LL * 1000000000LL};
  sh_err err = {0};
  cleanup_free char *root = NULL;
  cleanup_free char *key = NULL;
  json_t *c = new_cluster(&in, &err, &root, &key);
  CHECK(c == NULL);
  CHECK_STR_EQ(err.msg, "rpc error: code = InvalidArgument desc = minimum "
                        "certificate expiry time is: 1h0m0s");
  CHECK_INT_EQ(err.status, 400);
}

/* The message Go's decoder gives for body as a swarm.ServiceSpec, or "" */
static const char *spec_error(const char *body, char *out, size_t n) {
  sh_err err = {0};
  out[0] = '\0';
  if (schema_check_go(body, strlen(body), &go_service_spec, &err) < 0) {
    snprintf(out, n, "%d %s", err.status, err.msg);
  }
  return out;
}

#define GO_ERR "400 invalid JSON: json: cannot unmarshal "

TEST(schema_service_spec_type_errors_as_go) {
  char m[512];
  /* A string, a float and a negative number into uint64. */
  CHECK_STR_EQ(spec_error("{\"Mode\":{\"Replicated\":{\"Replicas\":\"3\"}}}", m,
                          sizeof m),
               GO_ERR "string into Go struct field "
                      "ReplicatedService.Mode.Replicated.Replicas of type "
                      "uint64");
  CHECK_STR_EQ(spec_error("{\"Mode\":{\"Replicated\":{\"Replicas\":1e12}}}", m,
                          sizeof m),
               GO_ERR "number 1e12 into Go struct field "
                      "ReplicatedService.Mode.Replicated.Replicas of type "
                      "uint64");
  CHECK_STR_EQ(
      spec_error("{\"Mode\":{\"Replicated\":{\"Replicas\":-1}}}", m, sizeof m),
      GO_ERR "number -1 into Go struct field "
             "ReplicatedService.Mode.Replicated.Replicas of type "
             "uint64");
  CHECK_STR_EQ(
      spec_error("{\"Mode\":{\"ReplicatedJob\":{\"MaxConcurrent\":2.5}}}", m,
                 sizeof m),
      GO_ERR "number 2.5 into Go struct field "
             "ReplicatedJob.Mode.ReplicatedJob.MaxConcurrent of type uint64");
  /* Field names match case-insensitively; the path shows Go's. */
  CHECK_STR_EQ(spec_error("{\"mode\":{\"replicated\":{\"replicas\":true}}}", m,
                          sizeof m),
               GO_ERR "bool into Go struct field "
                      "ReplicatedService.Mode.Replicated.Replicas of type "
                      "uint64");
  /* Whole objects of the wrong kind name the field's type. */
  CHECK_STR_EQ(spec_error("{\"TaskTemplate\":\"x\"}", m, sizeof m),
               GO_ERR "string into Go struct field ServiceSpec.TaskTemplate "
                      "of type swarm.TaskSpec");
  CHECK_STR_EQ(spec_error("{\"Mode\":[]}", m, sizeof m),
               GO_ERR "array into Go struct field ServiceSpec.Mode of type "
                      "swarm.ServiceMode");
  /* Deep in TaskTemplate: lists, maps (element type), time.Duration. */
  CHECK_STR_EQ(spec_error("{\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":"
                          "\"nginx\",\"Args\":[\"a\",1]}}}",
                          m, sizeof m),
               GO_ERR "number into Go struct field "
                      "ContainerSpec.TaskTemplate.ContainerSpec.Args of type "
                      "string");
  CHECK_STR_EQ(spec_error("{\"Labels\":{\"a\":\"b\",\"c\":{}}}", m, sizeof m),
               GO_ERR "object into Go struct field ServiceSpec.Labels of "
                      "type string");
  CHECK_STR_EQ(
      spec_error("{\"TaskTemplate\":{\"RestartPolicy\":{\"Delay\":\"5s\"}}}", m,
                 sizeof m),
      GO_ERR "string into Go struct field "
             "RestartPolicy.TaskTemplate.RestartPolicy.Delay of type "
             "time.Duration");
  CHECK_STR_EQ(
      spec_error("{\"TaskTemplate\":{\"ContainerSpec\":{\"Mounts\":[{"
                 "\"Target\":\"/a\",\"TmpfsOptions\":{\"Mode\":-1}}]}}}",
                 m, sizeof m),
      GO_ERR "number -1 into Go struct field "
             "TmpfsOptions.TaskTemplate.ContainerSpec.Mounts.TmpfsOptions.Mode "
             "of type fs.FileMode");
  CHECK_STR_EQ(spec_error("{\"UpdateConfig\":{\"Parallelism\":1,"
                          "\"MaxFailureRatio\":\"0.5\"}}",
                          m, sizeof m),
               GO_ERR "string into Go struct field "
                      "UpdateConfig.UpdateConfig.MaxFailureRatio of type "
                      "float32");
  CHECK_STR_EQ(spec_error("{\"RollbackConfig\":{\"Delay\":1.5}}", m, sizeof m),
               GO_ERR "number 1.5 into Go struct field "
                      "UpdateConfig.RollbackConfig.Delay of type "
                      "time.Duration");
  CHECK_STR_EQ(spec_error("{\"EndpointSpec\":{\"Ports\":[{\"TargetPort\":80},"
                          "{\"TargetPort\":4294967296}]}}",
                          m, sizeof m),
               GO_ERR
               "number 4294967296 into Go struct field "
               "PortConfig.EndpointSpec.Ports.TargetPort of type uint32");
  CHECK_STR_EQ(spec_error("{\"Networks\":[{\"Target\":5}]}", m, sizeof m),
               GO_ERR "number into Go struct field "
                      "NetworkAttachmentConfig.Networks.Target of type "
                      "string");
  CHECK_STR_EQ(spec_error("{\"TaskTemplate\":{\"Networks\":[{\"Aliases\":"
                          "\"a\"}]}}",
                          m, sizeof m),
               GO_ERR "string into Go struct field "
                      "NetworkAttachmentConfig.TaskTemplate.Networks.Aliases "
                      "of type []string");
  /* The first error in document order wins, as in Go. */
  CHECK_STR_EQ(spec_error("{\"Name\":1,\"Mode\":{\"Replicated\":{"
                          "\"Replicas\":\"x\"}}}",
                          m, sizeof m),
               GO_ERR "number into Go struct field ServiceSpec.Name of type "
                      "string");
}

TEST(schema_service_spec_accepts_what_go_accepts) {
  char m[512];
  CHECK_STR_EQ(
      spec_error(
          "{\"Name\":\"web\",\"Labels\":{\"a\":\"b\"},\"TaskTemplate\":"
          "{\"ContainerSpec\":{\"Image\":\"nginx\",\"Args\":[\"-g\"],"
          "\"Init\":null,\"Unknown\":{\"deep\":[1,{\"x\":[]}]}},"
          "\"RestartPolicy\":{\"Delay\":-1,\"MaxAttempts\":0},"
          "\"Placement\":{\"Constraints\":[\"node.role==manager\"]}},"
          "\"Mode\":{\"Replicated\":{\"Replicas\":18446744073709551615}},"
          "\"UpdateConfig\":{\"MaxFailureRatio\":0.25,\"Delay\":0},"
          "\"EndpointSpec\":{\"Ports\":[{\"TargetPort\":65535}]},"
          "\"Extra\":\"ignored\"}",
          m, sizeof m),
      "");
}
