/* A standalone container's create request (POST /containers/create: the
 * Engine API's ContainerConfig with HostConfig and NetworkingConfig), read
 * as dockerd reads it: every field shoal applies is parsed and checked
 * here; every other field must hold its zero value (what the docker CLI
 * sends when the flag is not given), else the request is refused with 501
 * naming it, so nothing is stored and ignored. Pure: no I/O. */
#ifndef SHOAL_AGENT_RUNSPEC_H
#define SHOAL_AGENT_RUNSPEC_H

#include "exec/exec.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sh_err;

/* SWARM: a swarm network by name or ID (an attachable overlay; the
 * managers decide at start), in network. */
enum runspec_net {
  RUNSPEC_NET_BRIDGE,
  RUNSPEC_NET_HOST,
  RUNSPEC_NET_NONE,
  RUNSPEC_NET_SWARM
};

enum runspec_restart {
  RUNSPEC_RESTART_NO,
  RUNSPEC_RESTART_ALWAYS,
  RUNSPEC_RESTART_UNLESS_STOPPED,
  RUNSPEC_RESTART_ON_FAILURE,
};

struct runspec {
  json_t *body;      /* a reference: what is borrowed below lives in it */
  const char *image; /* borrowed from the body */
  /* NULL-ended, owned; NULL: the image's. entrypoint_reset: --entrypoint
   * "" (neither the image's entrypoint nor its Cmd). */
  char **entrypoint, **cmd, **env;
  bool entrypoint_reset;
  const char *user, *workdir, *hostname, *stop_signal; /* borrowed */
  json_t *labels;                                      /* owned, or NULL */
  struct exec_mount *mounts;                           /* strings owned */
  size_t n_mounts;
  char **bind_sources; /* HostConfig.Binds' host paths: made if missing */
  struct exec_resources res;
  enum runspec_net net;
  const char *network; /* borrowed: HostConfig.NetworkMode */
  /* NetworkingConfig.EndpointsConfig (borrowed, checked: Aliases and
   * IPAMConfig.IPv4Address only): the network's settings (--ip,
   * --network-alias) and more networks to join (API 1.44+). */
  const json_t *endpoints;
  /* Ports to publish before the image's exposed ports are known:
   * {"80/tcp": [{"HostIp", "HostPort"}]} as given (checked). */
  json_t *port_bindings;
  bool publish_all;
  enum runspec_restart restart;
  int max_retry;
  bool auto_remove;
  bool init, read_only;
  int oom_score_adj;
  bool seccomp_unconfined, no_new_privileges;
  const char **caps; /* exec_caps's; NULL: Docker's defaults */
  char **dns, **dns_search, **dns_options, **groups, **extra_hosts;
  const json_t *sysctls, *ulimits;     /* borrowed */
  bool tty;                            /* Config.Tty */
  unsigned console_rows, console_cols; /* HostConfig.ConsoleSize; 0: none */
  /* What inspect shows beside what the executor records. */
  json_t *config_extra, *host_config_extra;
};

/* Reads body (the create request) into out. 400 for a malformed value,
 * 501 for a field shoal does not apply, naming it. */
int runspec_parse(const json_t *body, struct runspec *out, struct sh_err *err);
void runspec_free(struct runspec *r);

/* "--restart" values as HostConfig.RestartPolicy: {"Name",
 * "MaximumRetryCount"}. 400 with dockerd's messages. */
int runspec_restart_parse(const json_t *policy, enum runspec_restart *out,
                          int *max_retry, struct sh_err *err);

/* POST /containers/{id}/update's body (UpdateConfig: the Resources
 * fields and RestartPolicy) into out, strings and the policy borrowed
 * from body: 400 for a malformed value or restart policy, 501 naming a
 * field shoal cannot apply (--kernel-memory, --device-read-bps, ...). */
int runspec_update_parse(const json_t *body, struct exec_update *out,
                         struct sh_err *err);

/* The ports to publish: port_bindings, plus with publish_all every port of
 * exposed ({"80/tcp": {}}: the image's and the request's) not bound yet,
 * on an ephemeral host port. Out: [{"Protocol", "TargetPort",
 * "PublishedPort" (0: ephemeral), "PublishMode": "host"}]. */
json_t *runspec_ports(const json_t *port_bindings, bool publish_all,
                      const json_t *exposed);

/* NetworkSettings.Ports from the published ports (PublishedPort chosen)
 * and exposed ones: {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort":
 * "8080"}], "443/tcp": null}. */
json_t *runspec_port_map(const json_t *published, const json_t *exposed);

/* Docker's container name rule: [a-zA-Z0-9][a-zA-Z0-9_.-]+, with an
 * optional leading '/'. */
bool runspec_name_ok(const char *name);

/* dockerd's 400 for endpoint settings a network cannot take: a static
 * address (ip_err, one of these) and/or aliases (alias_err). net: the
 * network as the create request named it ("invalid config for network
 * NET: ..."), or NULL for a network connect. Returns -1. */
enum { RUNSPEC_EP_IP_NOT_USER_NET = 1, RUNSPEC_EP_IP_NO_SUBNET };
int runspec_endpoint_error(struct sh_err *err, const char *net, int ip_err,
                           bool alias_err);

/* A name for a container created without one ("adjective_name"), from
 * r (any random value). */
void runspec_random_name(uint64_t r, char *out, size_t n);

#endif
