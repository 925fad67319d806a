/* docker create's request as shoal reads it (agent/runspec.h): what the
 * docker CLI sends for common flags, the refusals, the port bindings. */
#include "test.h"

#include "agent/runspec.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"

#include <string.h>

static json_t *body(const char *s) {
  json_error_t je;
  json_t *j = json_loads(s, 0, &je);
  if (!j)
    fprintf(stderr, "bad test JSON: %s\n", je.text);
  return j;
}

/* What docker CLI 28 sends for `docker run -d --name web -p 8080:80 -e A=1
 * -v data:/data -v /srv:/srv:ro --restart on-failure:3 --memory 64m
 * --cpus 0.5 -w /tmp -u 1000 -l k=v nginx`, flags not given at zero. */
static const char *cli_body =
    "{\"Hostname\":\"\",\"Domainname\":\"\",\"User\":\"1000\","
    "\"AttachStdin\":false,\"AttachStdout\":false,\"AttachStderr\":false,"
    "\"ExposedPorts\":{\"80/tcp\":{}},\"Tty\":false,\"OpenStdin\":false,"
    "\"StdinOnce\":false,\"Env\":[\"A=1\"],\"Cmd\":null,\"Image\":\"nginx\","
    "\"Volumes\":{},\"WorkingDir\":\"/tmp\",\"Entrypoint\":null,"
    "\"OnBuild\":null,\"Labels\":{\"k\":\"v\"},"
    "\"HostConfig\":{\"Binds\":[\"data:/data\",\"/srv:/srv:ro\"],"
    "\"ContainerIDFile\":\"\",\"LogConfig\":{\"Type\":\"\",\"Config\":{}},"
    "\"NetworkMode\":\"default\",\"PortBindings\":{\"80/tcp\":[{\"HostIp\":"
    "\"\",\"HostPort\":\"8080\"}]},\"RestartPolicy\":{\"Name\":\"on-failure\","
    "\"MaximumRetryCount\":3},\"AutoRemove\":false,\"VolumeDriver\":\"\","
    "\"VolumesFrom\":null,\"ConsoleSize\":[0,0],\"CapAdd\":null,\"CapDrop\":"
    "null,\"CgroupnsMode\":\"\",\"Dns\":[],\"DnsOptions\":[],\"DnsSearch\":[],"
    "\"ExtraHosts\":null,\"GroupAdd\":null,\"IpcMode\":\"\",\"Cgroup\":\"\","
    "\"Links\":null,\"OomScoreAdj\":0,\"PidMode\":\"\",\"Privileged\":false,"
    "\"PublishAllPorts\":false,\"ReadonlyRootfs\":false,\"SecurityOpt\":null,"
    "\"UTSMode\":\"\",\"UsernsMode\":\"\",\"ShmSize\":0,\"Isolation\":\"\","
    "\"CpuShares\":0,\"Memory\":67108864,\"NanoCpus\":500000000,"
    "\"CgroupParent\":\"\",\"BlkioWeight\":0,\"BlkioWeightDevice\":[],"
    "\"BlkioDeviceReadBps\":[],\"BlkioDeviceWriteBps\":[],"
    "\"BlkioDeviceReadIOps\":[],\"BlkioDeviceWriteIOps\":[],\"CpuPeriod\":0,"
    "\"CpuQuota\":0,\"CpuRealtimePeriod\":0,\"CpuRealtimeRuntime\":0,"
    "\"CpusetCpus\":\"\",\"CpusetMems\":\"\",\"Devices\":[],"
    "\"DeviceCgroupRules\":null,\"DeviceRequests\":null,"
    "\"MemoryReservation\":0,\"MemorySwap\":0,\"MemorySwappiness\":null,"
    "\"OomKillDisable\":null,\"PidsLimit\":null,\"Ulimits\":[],\"CpuCount\":0,"
    "\"CpuPercent\":0,\"IOMaximumIOps\":0,\"IOMaximumBandwidth\":0,"
    "\"MaskedPaths\":null,\"ReadonlyPaths\":null},"
    "\"NetworkingConfig\":{\"EndpointsConfig\":{}}}";

TEST(runspec_reads_the_cli_request) {
  cleanup_json json_t *b = body(cli_body);
  struct runspec r;
  sh_err err = {0};
  CHECK_INT_EQ(runspec_parse(b, &r, &err), 0);
  CHECK_STR_EQ(r.image, "nginx");
  CHECK_STR_EQ(r.user, "1000");
  CHECK_STR_EQ(r.workdir, "/tmp");
  CHECK(r.cmd == NULL && r.entrypoint == NULL && !r.entrypoint_reset);
  CHECK_STR_EQ(r.env[0], "A=1");
  CHECK(r.env[1] == NULL);
  CHECK_STR_EQ(jx_str(r.labels, "k", ""), "v");
  CHECK_INT_EQ(r.net, RUNSPEC_NET_BRIDGE);
  CHECK_INT_EQ(r.restart, RUNSPEC_RESTART_ON_FAILURE);
  CHECK_INT_EQ(r.max_retry, 3);
  CHECK_INT_EQ(r.res.memory_bytes, 67108864);
  CHECK_INT_EQ(r.res.nano_cpus, 500000000);
  /* -v name:/data is the named volume, -v /srv:/srv:ro a read-only bind
   * whose source is made if missing. */
  CHECK_INT_EQ(r.n_mounts, 2);
  CHECK_INT_EQ(r.mounts[0].type, EXEC_MOUNT_VOLUME);
  CHECK_STR_EQ(r.mounts[0].source, "data");
  CHECK_STR_EQ(r.mounts[0].target, "/data");
  CHECK(!r.mounts[0].read_only);
  CHECK_INT_EQ(r.mounts[1].type, EXEC_MOUNT_BIND);
  CHECK_STR_EQ(r.mounts[1].source, "/srv");
  CHECK(r.mounts[1].read_only);
  CHECK_STR_EQ(r.bind_sources[0], "/srv");
  /* inspect's HostConfig */
  CHECK_STR_EQ(jx_str(r.host_config_extra, "RestartPolicy.Name", ""),
               "on-failure");
  CHECK_INT_EQ(
      jx_int(r.host_config_extra, "RestartPolicy.MaximumRetryCount", 0), 3);
  CHECK_STR_EQ(jx_str(r.host_config_extra, "NetworkMode", ""), "bridge");
  CHECK_STR_EQ(jx_str(json_array_get(json_object_get(jx_get(r.host_config_extra,
                                                            "PortBindings"),
                                                     "80/tcp"),
                                     0),
                      "HostPort", ""),
               "8080");
  runspec_free(&r);
}

/* -t with the CLI's terminal size: the pty and its first size; a size
 * that is not two numbers is 400. */
TEST(runspec_reads_tty) {
  cleanup_json json_t *b = body(cli_body);
  jx_set(b, "Tty", json_true());
  jx_set(b, "HostConfig.ConsoleSize", json_pack("[i,i]", 30, 100));
  struct runspec r;
  sh_err err = {0};
  CHECK_INT_EQ(runspec_parse(b, &r, &err), 0);
  CHECK(r.tty);
  CHECK_INT_EQ(r.console_rows, 30);
  CHECK_INT_EQ(r.console_cols, 100);
  runspec_free(&r);
  cleanup_json json_t *plain = body(cli_body);
  CHECK_INT_EQ(runspec_parse(plain, &r, &err), 0);
  CHECK(!r.tty && r.console_rows == 0 && r.console_cols == 0);
  runspec_free(&r);
  const char *bad[] = {"[24]", "[24, \"wide\"]", "[-1, 80]", "[24, 70000]",
                       "\"24x80\""};
  for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
    cleanup_json json_t *one = body(cli_body);
    jx_set(one, "HostConfig.ConsoleSize",
           json_loads(bad[i], JSON_DECODE_ANY, NULL));
    CHECK_INT_EQ(runspec_parse(one, &r, &err), -1);
    CHECK_INT_EQ(err.status, 400);
    CHECK(strstr(err.msg, "HostConfig.ConsoleSize") != NULL);
  }
}

/* One field changed in the CLI's request: the outcome. */
static int parse_with(const char *path, json_t *value, sh_err *err) {
  cleanup_json json_t *b = body(cli_body);
  jx_set(b, path, value);
  struct runspec r;
  int rc = runspec_parse(b, &r, err);
  if (rc == 0)
    runspec_free(&r);
  return rc;
}

TEST(runspec_refuses_what_it_does_not_apply) {
  sh_err err = {0};
  CHECK_INT_EQ(parse_with("HostConfig.Privileged", json_true(), &err), -1);
  CHECK_INT_EQ(err.status, 501);
  CHECK_STR_EQ(err.msg, "--privileged (HostConfig.Privileged) is not "
                        "supported by shoal yet");
  CHECK_INT_EQ(parse_with("HostConfig.CpuShares", json_integer(512), &err), -1);
  CHECK_STR_EQ(err.msg, "--cpu-shares (HostConfig.CpuShares) is not "
                        "supported by shoal yet");
  /* a field the API has that shoal does not know at all */
  CHECK_INT_EQ(parse_with("HostConfig.Frobnicate", json_string("x"), &err), -1);
  CHECK_STR_EQ(err.msg, "HostConfig.Frobnicate is not supported by shoal yet");
  /* -i is applied (conmon holds the stdin), -t too (runspec_reads_tty) */
  CHECK_INT_EQ(parse_with("OpenStdin", json_true(), &err), 0);
  CHECK_INT_EQ(parse_with("StdinOnce", json_true(), &err), -1);
  CHECK_INT_EQ(err.status, 400);
  CHECK_INT_EQ(parse_with("Healthcheck",
                          json_pack("{s:[s,s]}", "Test", "CMD", "true"), &err),
               -1);
  CHECK(strstr(err.msg, "--health-cmd") != NULL);
  /* a named network: a user bridge publishes ports, a swarm network does
   * not (the owner tells them apart at create); host has none */
  CHECK_INT_EQ(parse_with("HostConfig.NetworkMode", json_string("front"), &err),
               0);
  CHECK_INT_EQ(parse_with("HostConfig.NetworkMode", json_string("host"), &err),
               -1);
  CHECK_STR_EQ(err.msg, "published ports need the bridge network: --network "
                        "host has none to publish");
  /* aliases are for user networks only (dockerd's words) */
  {
    cleanup_json json_t *b = body(cli_body);
    jx_set(b, "NetworkingConfig.EndpointsConfig",
           json_pack("{s:{s:[s]}}", "default", "Aliases", "www"));
    struct runspec r;
    CHECK_INT_EQ(runspec_parse(b, &r, &err), -1);
    CHECK_STR_EQ(err.msg, "invalid config for network default: invalid "
                          "endpoint settings:\nnetwork-scoped alias is "
                          "supported only for containers in user defined "
                          "networks");
    /* and so is an address of one's choosing */
    jx_set(b, "NetworkingConfig.EndpointsConfig",
           json_pack("{s:{s:{s:s}}}", "default", "IPAMConfig", "IPv4Address",
                     "172.17.0.9"));
    CHECK_INT_EQ(runspec_parse(b, &r, &err), -1);
    CHECK_STR_EQ(err.msg, "invalid config for network default: invalid "
                          "endpoint settings:\nuser specified IP address is "
                          "supported on user defined networks only");
    /* both: dockerd's multierror, a bullet each */
    jx_set(b, "NetworkingConfig.EndpointsConfig",
           json_pack("{s:{s:{s:s},s:[s]}}", "default", "IPAMConfig",
                     "IPv4Address", "172.17.0.9", "Aliases", "www"));
    CHECK_INT_EQ(runspec_parse(b, &r, &err), -1);
    CHECK_STR_EQ(err.msg,
                 "invalid config for network default: invalid endpoint "
                 "settings:\n* user specified IP address is supported on "
                 "user defined networks only\n* network-scoped alias is "
                 "supported only for containers in user defined networks");
  }
  {
    cleanup_json json_t *b = body(cli_body);
    jx_set(b, "HostConfig.NetworkMode", json_string("front"));
    jx_set(b, "HostConfig.PortBindings", json_object());
    jx_set(b, "NetworkingConfig.EndpointsConfig", json_pack("{s:{}}", "front"));
    struct runspec r;
    CHECK_INT_EQ(runspec_parse(b, &r, &err), 0);
    CHECK_INT_EQ(r.net, RUNSPEC_NET_SWARM);
    CHECK_STR_EQ(r.network, "front");
    runspec_free(&r);
  }
  CHECK_INT_EQ(
      parse_with("HostConfig.NetworkMode", json_string("container:web"), &err),
      -1);
  CHECK_INT_EQ(err.status, 501);
  CHECK_INT_EQ(parse_with("HostConfig.SecurityOpt",
                          json_pack("[s]", "label=disable"), &err),
               -1);
  CHECK_STR_EQ(err.msg,
               "--security-opt label=disable is not supported by shoal yet");
  CHECK_INT_EQ(parse_with("HostConfig.LogConfig",
                          json_pack("{s:s}", "Type", "syslog"), &err),
               -1);
  CHECK(strstr(err.msg, "--log-driver") != NULL);
  /* zero values of unapplied fields pass */
  CHECK_INT_EQ(parse_with("HostConfig.Privileged", json_false(), &err), 0);
  CHECK_INT_EQ(parse_with("HostConfig.LogConfig",
                          json_pack("{s:s}", "Type", "json-file"), &err),
               0);
}

TEST(runspec_checks_values_with_dockerds_words) {
  sh_err err = {0};
  CHECK_INT_EQ(parse_with("HostConfig.RestartPolicy",
                          json_pack("{s:s,s:i}", "Name", "always",
                                    "MaximumRetryCount", 2),
                          &err),
               -1);
  CHECK_INT_EQ(err.status, 400);
  CHECK_STR_EQ(err.msg, "invalid restart policy: maximum retry count can only "
                        "be used with 'on-failure'");
  CHECK_INT_EQ(parse_with("HostConfig.RestartPolicy",
                          json_pack("{s:s}", "Name", "sometimes"), &err),
               -1);
  CHECK_STR_EQ(err.msg, "invalid restart policy: unknown policy 'sometimes'; "
                        "use one of 'no', 'always', 'on-failure', or "
                        "'unless-stopped'");
  CHECK_INT_EQ(parse_with("HostConfig.RestartPolicy",
                          json_pack("{s:s,s:i}", "Name", "on-failure",
                                    "MaximumRetryCount", -1),
                          &err),
               -1);
  CHECK_STR_EQ(err.msg, "invalid restart policy: maximum retry count cannot "
                        "be negative");
  /* --rm with a restart policy */
  cleanup_json json_t *b = body(cli_body);
  jx_set(b, "HostConfig.AutoRemove", json_true());
  struct runspec r;
  CHECK_INT_EQ(runspec_parse(b, &r, &err), -1);
  CHECK_STR_EQ(err.msg,
               "can't create 'AutoRemove' container with restart policy");
  /* port bindings */
  CHECK_INT_EQ(parse_with("HostConfig.PortBindings",
                          json_pack("{s:[{s:s,s:s}]}", "80/tcp", "HostIp", "",
                                    "HostPort", "99999"),
                          &err),
               -1);
  CHECK_STR_EQ(err.msg, "invalid port specification: \"99999\"");
  CHECK_INT_EQ(parse_with("HostConfig.PortBindings",
                          json_pack("{s:[{s:s,s:s}]}", "eighty/tcp", "HostIp",
                                    "", "HostPort", "80"),
                          &err),
               -1);
  CHECK_STR_EQ(err.msg, "invalid port specification: \"eighty/tcp\"");
  CHECK_INT_EQ(parse_with("HostConfig.PortBindings",
                          json_pack("{s:[{s:s,s:s}]}", "80/tcp", "HostIp",
                                    "127.0.0.1", "HostPort", "80"),
                          &err),
               -1);
  CHECK_INT_EQ(err.status, 501);
  CHECK_INT_EQ(parse_with("HostConfig.PortBindings",
                          json_pack("{s:[{s:s,s:s}]}", "80/sctp", "HostIp", "",
                                    "HostPort", "80"),
                          &err),
               -1);
  CHECK_INT_EQ(err.status, 501);
  /* ports need the bridge */
  CHECK_INT_EQ(parse_with("HostConfig.NetworkMode", json_string("host"), &err),
               -1);
  CHECK_INT_EQ(err.status, 400);
  CHECK_INT_EQ(parse_with("HostConfig.Binds", json_pack("[s]", "/a"), &err),
               -1);
  CHECK_STR_EQ(err.msg, "invalid volume specification: '/a'");
  CHECK_INT_EQ(
      parse_with("HostConfig.Binds", json_pack("[s]", "/a:/b:q"), &err), -1);
  CHECK_STR_EQ(err.msg, "invalid mode: q");
  CHECK_INT_EQ(parse_with("Image", json_string(""), &err), -1);
  CHECK_STR_EQ(err.msg, "No image was specified");
  CHECK_INT_EQ(parse_with("Env", json_string("A=1"), &err), -1);
  CHECK_INT_EQ(err.status, 400);
  CHECK_STR_EQ(err.msg, "json: cannot unmarshal string into Go struct field "
                        "Config.Env of type []string");
}

TEST(runspec_ports_bindings_and_publish_all) {
  cleanup_json json_t *pb =
      body("{\"80/tcp\":[{\"HostIp\":\"\",\"HostPort\":\"8080\"}],"
           "\"53/udp\":[{\"HostIp\":\"\",\"HostPort\":\"\"}]}");
  cleanup_json json_t *exposed =
      body("{\"80/tcp\":{},\"443/tcp\":{},\"53/udp\":{}}");
  /* -p only: the bound ports; an empty HostPort is an ephemeral one (0) */
  cleanup_json json_t *p = runspec_ports(pb, false, exposed);
  CHECK_INT_EQ(json_array_size(p), 2);
  json_t *p80 = NULL, *p53 = NULL;
  size_t i;
  json_t *e;
  json_array_foreach(p, i, e) {
    if (jx_int(e, "TargetPort", 0) == 80)
      p80 = e;
    if (jx_int(e, "TargetPort", 0) == 53)
      p53 = e;
  }
  CHECK(p80 && p53);
  CHECK_INT_EQ(jx_int(p80, "PublishedPort", -1), 8080);
  CHECK_STR_EQ(jx_str(p80, "Protocol", ""), "tcp");
  CHECK_STR_EQ(jx_str(p80, "PublishMode", ""), "host");
  CHECK_INT_EQ(jx_int(p53, "PublishedPort", -1), 0);
  CHECK_STR_EQ(jx_str(p53, "Protocol", ""), "udp");
  /* -P adds every exposed port not bound */
  cleanup_json json_t *all = runspec_ports(pb, true, exposed);
  CHECK_INT_EQ(json_array_size(all), 3);
  /* inspect's NetworkSettings.Ports once chosen */
  jx_set(p53, "PublishedPort", json_integer(32768));
  cleanup_json json_t *m = runspec_port_map(p, exposed);
  CHECK_STR_EQ(
      jx_str(json_array_get(json_object_get(m, "80/tcp"), 0), "HostPort", ""),
      "8080");
  CHECK_STR_EQ(
      jx_str(json_array_get(json_object_get(m, "80/tcp"), 0), "HostIp", ""),
      "0.0.0.0");
  CHECK_STR_EQ(
      jx_str(json_array_get(json_object_get(m, "53/udp"), 0), "HostPort", ""),
      "32768");
  CHECK(json_is_null(json_object_get(m, "443/tcp")));
}

TEST(runspec_names_and_entrypoint) {
  CHECK(runspec_name_ok("web"));
  CHECK(runspec_name_ok("/web-1.a_b"));
  CHECK(!runspec_name_ok("-web"));
  CHECK(!runspec_name_ok("w"));
  CHECK(!runspec_name_ok("we b"));
  char n[64], n2[64];
  runspec_random_name(0, n, sizeof n);
  runspec_random_name(12345, n2, sizeof n2);
  CHECK(runspec_name_ok(n) && strchr(n, '_') != NULL);
  CHECK(strcmp(n, n2) != 0);
  /* --entrypoint "" with a command */
  cleanup_json json_t *b = body(cli_body);
  jx_set(b, "Entrypoint", json_pack("[s]", ""));
  jx_set(b, "Cmd", json_pack("[s,s]", "echo", "hi"));
  struct runspec r;
  sh_err err = {0};
  CHECK_INT_EQ(runspec_parse(b, &r, &err), 0);
  CHECK(r.entrypoint_reset && r.entrypoint == NULL);
  CHECK_STR_EQ(r.cmd[0], "echo");
  runspec_free(&r);
  /* a string entrypoint is one argument (the API allows it) */
  jx_set(b, "Entrypoint", json_string("/bin/sh"));
  CHECK_INT_EQ(runspec_parse(b, &r, &err), 0);
  CHECK_STR_EQ(r.entrypoint[0], "/bin/sh");
  runspec_free(&r);
}
