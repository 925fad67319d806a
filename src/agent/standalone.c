/* Standalone containers' owner; see standalone.h. */
#include "agent/standalone.h"

#include "agent/dnsd.h"
#include "agent/runspec.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/id.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/util.h"
#include "core/workq.h"
#include "dns/dns.h"
#include "events/events.h"
#include "exec/exec.h"
#include "image/image.h"
#include "ipam/ipam.h"
#include "netdev/netdev.h"
#include "overlay/overlay.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 60000
#define BACKOFF_RESET_NS (10 * NS_PER_SEC)

struct sa_job;

/* One standalone container this daemon knows. */
struct sa_ctr {
  struct standalone *sa;
  char id[65];
  json_t *info; /* inspect data as last read (settings, labels, name) */
  struct exec_watch *watch;
  uv_timer_t timer; /* the restart policy's backoff */
  bool timer_armed;
  bool manual;     /* stopped by the user: no restart */
  bool die_logged; /* the next exit's die event is ctl.c's */
  bool forgotten;  /* removed: freed once idle */
  bool removing;   /* rm under way: its exit touches no file of it */
  bool running;
  /* On a swarm network: the managers' attachment ({ID,
   * NetworksAttachments, DataPathPort}), NULL until the first start has
   * it; attaching: asked for. */
  json_t *attachment;
  bool attaching;
  bool dns_served;
  bool dns_local; /* served by the owner's DNS (user bridge networks) */
  int64_t started_mono;
  int64_t backoff_ms;
  int restart_count;
  struct sa_job *queue, *busy; /* runtime calls, one at a time */
  bool exit_pending;           /* its exit seen, the J_EXIT job not done yet */
  struct sa_waiter *exit_waiters; /* standalone_stopped */
  struct sa_ctr *next;
};

struct sa_waiter {
  standalone_done_fn done;
  void *ud;
  struct sa_waiter *next;
};

struct standalone {
  struct standalone_config cfg;
  char *marker_dir;
  /* The daemon's network namespace bound at a path that outlives its PID
   * (a --network host container's config names it; its next run may
   * come from another shoald process). */
  char *host_netns;
  struct sa_ctr *ctrs;
  /* The embedded DNS of containers on user bridge networks (names of
   * the node's containers on each, dockerd's). */
  struct dnsd *dns;
  json_t *creating; /* names being created: {name: true} */
  int inflight;
  bool closing;
};

/* J_REMOVE: --rm after a start that failed (dockerd's cleanup).
 * J_CONNECT, J_DISCONNECT: docker network connect / disconnect. */
enum job_kind {
  J_START,
  J_EXIT,
  J_RESTART,
  J_FORGET,
  J_REMOVE,
  J_CONNECT,
  J_DISCONNECT
};

struct sa_job {
  enum job_kind kind;
  struct sa_ctr *c;
  standalone_done_fn done;
  void *ud;
  int sig;
  int64_t grace_ns;
  bool automatic; /* a start of the restart policy's */
  /* results */
  int rc;
  sh_err err;
  int pidfd, stop_signal;
  int dns_fd; /* the container's 127.0.0.11 socket, for the loop */
  int exit_code;
  bool gone, removed, died;
  json_t *info;
  /* J_CONNECT / J_DISCONNECT: the network ("" docker0) and its name, the
   * request's EndpointConfig; running: the container is. */
  char *net_id, *net_name;
  json_t *epcfg;
  bool running;
  struct sa_job *next;
};

static void run_next(struct sa_ctr *c);

/* ---- small helpers ---- */

static bool is_bridge(const json_t *info) {
  return strcmp(jx_str(info, "HostConfig.NetworkMode", ""), "bridge") == 0;
}

/* Not one of the node's built-in modes: a user bridge or a swarm's. */
static bool is_named_net(const char *m) {
  return *m && strcmp(m, "bridge") && strcmp(m, "default") &&
         strcmp(m, "host") && strcmp(m, "none") &&
         !str_has_prefix(m, "container:");
}

/* dockerd takes --ip only on a network whose subnet the user chose. */
static bool no_user_subnet(const json_t *rec) {
  return rec && !jx_bool(rec, "UserSubnet", true);
}

/* A user bridge network by ID, name or unique ID prefix (dockerd's
 * lookup): its record (overlay_nets'), new reference, or NULL. */
static json_t *user_net(struct standalone *sa, const char *ref) {
  if (!sa->cfg.overlay || !ref || !*ref)
    return NULL;
  cleanup_json json_t *recs = overlay_nets(sa->cfg.overlay);
  json_t *by_name = NULL, *by_prefix = NULL;
  int prefixes = 0;
  const char *id;
  json_t *r;
  json_object_foreach(recs, id, r) {
    if (strcmp(id, ref) == 0)
      return json_incref(r);
    if (strcmp(jx_str(r, "Name", ""), ref) == 0)
      by_name = r;
    if (str_has_prefix(id, ref)) {
      by_prefix = r;
      prefixes++;
    }
  }
  return json_incref(by_name ? by_name : prefixes == 1 ? by_prefix : NULL);
}

static bool is_user_net(struct standalone *sa, const json_t *info) {
  const char *m = jx_str(info, "HostConfig.NetworkMode", "");
  if (!is_named_net(m))
    return false;
  cleanup_json json_t *r = user_net(sa, m);
  return r != NULL;
}

/* On a network of the swarm's (an attachable overlay), not a local one. */
static bool is_swarm_net(struct standalone *sa, const json_t *info) {
  return is_named_net(jx_str(info, "HostConfig.NetworkMode", "")) &&
         !is_user_net(sa, info);
}

static char *attachment_path(struct standalone *sa, const char *id) {
  return xasprintf("%s/%s.attachment.json", sa->marker_dir, id);
}

/* Thread: the attachment kept for a container, or NULL. */
static json_t *load_attachment(struct standalone *sa, const char *id) {
  cleanup_free char *p = attachment_path(sa, id);
  return json_load_file(p, 0, NULL);
}

static char *marker_path(struct standalone *sa, const char *id) {
  return xasprintf("%s/%s.stopped", sa->marker_dir, id);
}

static void set_marker(struct standalone *sa, const char *id, bool on) {
  cleanup_free char *p = marker_path(sa, id);
  if (on) {
    int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0)
      close(fd);
  } else {
    unlink(p);
  }
}

static bool has_marker(struct standalone *sa, const char *id) {
  cleanup_free char *p = marker_path(sa, id);
  return access(p, F_OK) == 0;
}

static void publish(struct standalone *sa, const json_t *info, const char *id,
                    const char *action, const char *key, const char *value) {
  if (!sa->cfg.events || !info)
    return;
  json_t *attrs = exec_event_attrs(info);
  if (key)
    json_object_set_new(attrs, key, json_string(value));
  /* dockerd mounts the volumes before the start, unmounts before the die */
  bool start = strcmp(action, "start") == 0;
  if (start || strcmp(action, "die") == 0)
    events_volume_mounts(sa->cfg.events, json_object_get(info, "Mounts"), id,
                         start);
  events_publish(sa->cfg.events, "container", action, id, attrs, "local");
}

/* One network event of container id on a bridge network (dockerd's
 * connect/disconnect: Actor the network, the container in the
 * attributes). */
static void publish_bridge_net(struct standalone *sa, const char *id,
                               const char *action, const char *net_id,
                               const char *net_name) {
  events_publish(sa->cfg.events, "network", action, net_id,
                 json_pack("{s:s, s:s, s:s}", "container", id, "name", net_name,
                           "type", "bridge"),
                 "local");
}

/* dockerd's network connect / disconnect of a container at its start and
 * exit, one for each network it is on: the attachable overlay's, and its
 * bridge networks' (docker0 and user bridges, from the endpoints inspect
 * shows; host and none have no endpoint). */
static void publish_net(struct sa_ctr *c, const char *action) {
  struct standalone *sa = c->sa;
  if (!sa->cfg.events)
    return;
  const json_t *na =
      json_array_get(json_object_get(c->attachment, "NetworksAttachments"), 0);
  const char *overlay_id = na ? jx_str(na, "Network.ID", "") : "";
  if (na) {
    json_t *attrs =
        json_pack("{s:s, s:s, s:s}", "container", c->id, "name",
                  jx_str(na, "Network.Spec.Name", ""), "type",
                  jx_str(na, "Network.DriverState.Name", "overlay"));
    events_publish(sa->cfg.events, "network", action, overlay_id, attrs,
                   "swarm");
  }
  const char *name;
  json_t *ep;
  json_object_foreach(jx_get(c->info, "NetworkSettings.Networks"), name, ep) {
    const char *nid = jx_str(ep, "NetworkID", "");
    if (*nid && strcmp(nid, overlay_id) && *jx_str(ep, "IPAddress", ""))
      publish_bridge_net(sa, c->id, action, nid, name);
  }
}

static struct sa_ctr *find(struct standalone *sa, const char *id) {
  for (struct sa_ctr *c = sa->ctrs; c; c = c->next)
    if (!c->forgotten && strcmp(c->id, id) == 0)
      return c;
  return NULL;
}

static void waiters_free(struct sa_ctr *c) {
  for (struct sa_waiter *w = c->exit_waiters, *nx; w; w = nx) {
    nx = w->next;
    free(w);
  }
  c->exit_waiters = NULL;
}

/* The exit a stop waited for is handled (or the container is gone). */
static void waiters_run(struct sa_ctr *c) {
  struct sa_waiter *w = c->exit_waiters;
  c->exit_waiters = NULL;
  while (w) {
    struct sa_waiter *nx = w->next;
    w->done(w->ud, 0, c->id, NULL);
    free(w);
    w = nx;
  }
}

static void ctr_closed(uv_handle_t *h) {
  struct sa_ctr *c = h->data;
  waiters_free(c);
  json_decref(c->info);
  json_decref(c->attachment);
  free(c);
}

/* Unlinks and frees c once nothing of it is in flight. */
static void ctr_release(struct sa_ctr *c) {
  if (c->busy || c->queue)
    return;
  struct standalone *sa = c->sa;
  for (struct sa_ctr **pp = &sa->ctrs; *pp; pp = &(*pp)->next)
    if (*pp == c) {
      *pp = c->next;
      break;
    }
  exec_watch_free(c->watch);
  c->watch = NULL;
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, ctr_closed);
}

static struct sa_ctr *ctr_new(struct standalone *sa, const char *id,
                              json_t *info) {
  struct sa_ctr *c = xcalloc(1, sizeof *c);
  c->sa = sa;
  snprintf(c->id, sizeof c->id, "%s", id);
  c->info = info;
  c->restart_count = (int)jx_int(info, "RestartCount", 0);
  uv_timer_init(sa->cfg.loop, &c->timer);
  c->timer.data = c;
  c->next = sa->ctrs;
  sa->ctrs = c;
  return c;
}

static void enqueue(struct sa_ctr *c, struct sa_job *j) {
  j->c = c;
  j->pidfd = -1;
  j->dns_fd = -1;
  struct sa_job **pp = &c->queue;
  while (*pp)
    pp = &(*pp)->next;
  *pp = j;
  run_next(c);
}

/* ---- the network: docker0 endpoint and what inspect shows ---- */

/* The networks the container is to be on: NetworkSettings.Networks as
 * create and connect wrote them ({name: {NetworkID, Aliases,
 * IPAMConfig}}), or its NetworkMode alone. New reference. */
static json_t *wanted_nets(const json_t *info) {
  const json_t *n = jx_get(info, "NetworkSettings.Networks");
  const char *mode = jx_str(info, "HostConfig.NetworkMode", "none");
  json_t *out = json_is_object(n) ? json_deep_copy(n) : json_object();
  if (!json_object_get(out, mode))
    json_object_set_new(out, mode, json_object());
  return out;
}

/* One network's entry of NetworkSettings.Networks: w is what was asked
 * (Aliases, IPAMConfig, NetworkID), ep the endpoint ({IPAddress,
 * IPPrefixLen, Gateway, MacAddress, EndpointID, NetworkID, DNSNames}) or
 * NULL (not attached). */
static json_t *net_entry(const json_t *w, const json_t *ep) {
  json_t *o =
      json_pack("{s:n,s:n,s:n,s:s,s:s,s:s,s:i,s:s,s:s,s:s,s:i,s:s,s:n}",
                "IPAMConfig", "Links", "Aliases", "MacAddress",
                ep ? jx_str(ep, "MacAddress", "") : "", "NetworkID",
                ep && *jx_str(ep, "NetworkID", "") ? jx_str(ep, "NetworkID", "")
                                                   : jx_str(w, "NetworkID", ""),
                "EndpointID", ep ? jx_str(ep, "EndpointID", "") : "",
                "IPPrefixLen", ep ? (int)jx_int(ep, "IPPrefixLen", 0) : 0,
                "Gateway", ep ? jx_str(ep, "Gateway", "") : "", "IPAddress",
                ep ? jx_str(ep, "IPAddress", "") : "", "IPv6Gateway", "",
                "GlobalIPv6PrefixLen", 0, "GlobalIPv6Address", "", "DNSNames");
  const char *keep[] = {"IPAMConfig", "Aliases"};
  for (size_t i = 0; i < ARRAY_SIZE(keep); i++) {
    const json_t *v = json_object_get(w, keep[i]);
    if (v && !json_is_null(v))
      json_object_set(o, keep[i], (json_t *)v);
  }
  const json_t *dns_names = ep ? json_object_get(ep, "DNSNames") : NULL;
  if (dns_names)
    json_object_set(o, "DNSNames", (json_t *)dns_names);
  return o;
}

/* eps: {network name: endpoint} of what is attached (NULL: nothing). */
static json_t *net_settings(const json_t *info, const json_t *eps) {
  const char *mode = jx_str(info, "HostConfig.NetworkMode", "none");
  const json_t *pep = json_object_get(eps, mode);
  /* dockerd fills the top-level fields for the default bridge only. */
  const json_t *top = is_bridge(info) ? pep : NULL;
  const char *sandbox = jx_str(info, "NetworkSettings.SandboxKey", "");
  json_t *published = pep ? json_object_get(pep, "Ports") : NULL;
  json_t *ports =
      runspec_port_map(published, jx_get(info, "Config.ExposedPorts"));
  cleanup_json json_t *wanted = wanted_nets(info);
  json_t *nets = json_object();
  const char *name;
  json_t *w;
  json_object_foreach(wanted, name, w)
      json_object_set_new(nets, name, net_entry(w, json_object_get(eps, name)));
  json_t *ns =
      json_pack("{s:s,s:o,s:o,s:s,s:s,s:i,s:s,s:s,s:s,s:i,s:s}", "SandboxKey",
                sandbox, "Ports", ports, "Networks", nets, "IPAddress",
                top ? jx_str(top, "IPAddress", "") : "", "Gateway",
                top ? jx_str(top, "Gateway", "") : "", "IPPrefixLen",
                top ? (int)jx_int(top, "IPPrefixLen", 0) : 0, "MacAddress",
                top ? jx_str(top, "MacAddress", "") : "", "EndpointID",
                top ? jx_str(top, "EndpointID", "") : "", "GlobalIPv6Address",
                "", "GlobalIPv6PrefixLen", 0, "IPv6Gateway", "");
  return ns;
}

/* One endpoint as net_settings takes it, keyed by network name. */
static json_t *one_ep(const char *name, const json_t *ep) {
  json_t *o = json_object();
  if (ep)
    json_object_set(o, name, (json_t *)ep);
  return o;
}

/* dockerd's DNSNames on a user network: the container's name, its
 * aliases, its short ID. */
static json_t *dns_names(const json_t *info, const json_t *w) {
  const char *name = jx_str(info, "Name", "");
  char shortid[13];
  snprintf(shortid, sizeof shortid, "%s", jx_str(info, "Id", ""));
  json_t *out = json_pack("[s]", *name == '/' ? name + 1 : name);
  size_t i;
  json_t *a;
  json_array_foreach(json_object_get(w, "Aliases"), i, a)
      json_array_append(out, a);
  json_array_append_new(out, json_string(shortid));
  return out;
}

/* The ports this container publishes, from its settings. */
static json_t *wanted_ports(const json_t *info) {
  return runspec_ports(jx_get(info, "HostConfig.PortBindings"),
                       jx_bool(info, "HostConfig.PublishAllPorts", false),
                       jx_get(info, "Config.ExposedPorts"));
}

/* The endpoint of a swarm network's attachment, as net_settings takes
 * it. */
static json_t *swarm_endpoint(const json_t *info, const json_t *att) {
  const json_t *na =
      json_array_get(json_object_get(att, "NetworksAttachments"), 0);
  const char *cidr =
      json_string_value(json_array_get(json_object_get(na, "Addresses"), 0));
  struct ipam_prefix pre;
  uint32_t ip = 0;
  if (!cidr || ipam_parse_cidr(cidr, &pre, &ip, NULL) < 0)
    return NULL;
  char b[20], mac[18];
  snprintf(mac, sizeof mac, "02:42:%02x:%02x:%02x:%02x", (ip >> 24) & 0xff,
           (ip >> 16) & 0xff, (ip >> 8) & 0xff, ip & 0xff);
  const char *gw =
      jx_str(json_array_get(jx_get(na, "Network.IPAMOptions.Configs"), 0),
             "Gateway", "");
  const char *name = jx_str(info, "Name", "");
  if (*name == '/')
    name++;
  char shortid[13];
  snprintf(shortid, sizeof shortid, "%s", jx_str(info, "Id", ""));
  return json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:[s,s]}", "IPAddress",
                   ipam_ip_str(ip, b), "IPPrefixLen", (int)pre.len, "Gateway",
                   gw, "MacAddress", mac, "EndpointID", jx_str(att, "ID", ""),
                   "NetworkID", jx_str(na, "Network.ID", ""), "DNSNames", name,
                   shortid);
}

/* A socket on 127.0.0.11:53 in the namespace at path (-1: none). */
static int dns_socket(const char *path) {
  cleanup_fd int nfd = open(path, O_RDONLY | O_CLOEXEC);
  int fd = -1;
  sh_err err = {0};
  if (nfd < 0 || netns_udp_bind(nfd, "127.0.0.11", 53, &fd, &err) < 0) {
    log_warn("embedded DNS in %s: %s", path,
             nfd < 0 ? strerror(errno) : err.msg);
    return -1;
  }
  return fd;
}

/* Thread: the container's interface on its swarm network, from its
 * attachment (kept on disk for the next starts and a restarted daemon). */
static int net_up_swarm(struct standalone *sa, const char *id,
                        const json_t *info, const json_t *att, int *dns_fd,
                        sh_err *err) {
  if (!sa->cfg.overlay)
    return sh_error(err, 500,
                    "swarm networks are not available on this node (no "
                    "network data plane)");
  if (!att)
    return sh_error(err, 404, "network %s not found",
                    jx_str(info, "HostConfig.NetworkMode", ""));
  cleanup_free char *ap = attachment_path(sa, id);
  cleanup_free char *data = jx_dump(att);
  if (write_file_atomic(ap, data, strlen(data), 0600, err) < 0)
    return -1;
  struct overlay_task t = {
      .task_id = id,
      .attachments = json_object_get(att, "NetworksAttachments"),
      .vxlan_port = (uint16_t)jx_int(att, "DataPathPort", 4789),
      .standalone = true};
  cleanup_free char *path = NULL;
  if (overlay_attach(sa->cfg.overlay, &t, &path, err) < 0)
    return -1;
  cleanup_json json_t *ep = swarm_endpoint(info, att);
  cleanup_json json_t *eps =
      one_ep(jx_str(info, "HostConfig.NetworkMode", ""), ep);
  cleanup_json json_t *patch =
      json_pack("{s:o}", "NetworkSettings", net_settings(info, eps));
  if (exec_meta_update(sa->cfg.exec, id, patch, err) < 0) {
    overlay_detach(sa->cfg.overlay, id, NULL);
    return -1;
  }
  *dns_fd = dns_socket(path);
  return 0;
}

/* Thread: the endpoint on a bridge network ("bridge" or a user's)
 * named name, with what w asks (--ip, aliases) into eps; the first one
 * makes the namespace (primary), the others are connected to it. */

/* The container's endpoint on a bridge network (nid "" for docker0, whose
 * network ID the API keeps: inspect and events show it, as dockerd's). */
static json_t *bridge_endpoint(struct standalone *sa, const char *id,
                               const char *nid) {
  json_t *ep = overlay_bridge_endpoint(sa->cfg.overlay, id, nid);
  if (ep && !*nid && sa->cfg.bridge_id)
    json_object_set_new(ep, "NetworkID", json_string(sa->cfg.bridge_id));
  return ep;
}
static int bridge_up(struct standalone *sa, const char *id, const json_t *info,
                     const char *name, const json_t *w, bool primary,
                     json_t *eps, bool *local_dns, sh_err *err) {
  cleanup_json json_t *rec = NULL;
  if (strcmp(name, "bridge") != 0 && !(rec = user_net(sa, name)))
    return sh_error(err, 404, "network %s not found", name);
  const char *nid = rec ? jx_str(rec, "Id", "") : "";
  const char *ip = jx_str(w, "IPAMConfig.IPv4Address", "");
  if (primary) {
    cleanup_json json_t *ports = wanted_ports(info);
    struct overlay_task t = {
        .task_id = id, .ports = ports, .bridge = true, .net_id = nid, .ip = ip};
    cleanup_free char *path = NULL;
    if (overlay_attach(sa->cfg.overlay, &t, &path, err) < 0)
      return -1;
  } else if (overlay_connect(sa->cfg.overlay, id, nid, ip, err) < 0) {
    return -1;
  }
  json_t *ep = bridge_endpoint(sa, id, nid);
  if (!ep)
    return sh_error(err, 500, "no endpoint on network %s", name);
  if (rec) {
    json_object_set_new(ep, "DNSNames", dns_names(info, w));
    *local_dns = true;
  }
  json_object_set_new(eps, name, ep);
  return 0;
}

/* Thread: the endpoints on docker0 or user bridge networks (or a swarm
 * network's) before a start. */
static int net_up(struct standalone *sa, const char *id, const json_t *info,
                  const json_t *att, int *dns_fd, sh_err *err) {
  if (is_swarm_net(sa, info))
    return net_up_swarm(sa, id, info, att, dns_fd, err);
  const char *mode = jx_str(info, "HostConfig.NetworkMode", "");
  if (!is_bridge(info) && !is_named_net(mode))
    return 0;
  if (!sa->cfg.overlay)
    return sh_error(err, 500,
                    "the bridge network is not available on this node (no "
                    "network data plane): use --network host or none");
  cleanup_json json_t *wanted = wanted_nets(info);
  cleanup_json json_t *eps = json_object();
  cleanup_json json_t *patch = NULL;
  bool local_dns = false;
  if (bridge_up(sa, id, info, mode, json_object_get(wanted, mode), true, eps,
                &local_dns, err) < 0)
    goto fail;
  const char *name;
  json_t *w;
  json_object_foreach(wanted, name, w) {
    if (strcmp(name, mode) != 0 &&
        bridge_up(sa, id, info, name, w, false, eps, &local_dns, err) < 0)
      goto fail;
  }
  patch = json_pack("{s:o}", "NetworkSettings", net_settings(info, eps));
  if (exec_meta_update(sa->cfg.exec, id, patch, err) < 0)
    goto fail;
  if (local_dns) {
    cleanup_free char *path = xasprintf("%s/netns/%s", sa->cfg.exec_root, id);
    *dns_fd = dns_socket(path);
  }
  return 0;
fail:
  overlay_detach(sa->cfg.overlay, id, NULL);
  return -1;
}

/* Thread: after the exit, the address and ports go (dockerd's release). */
static void net_down(struct standalone *sa, const char *id,
                     const json_t *info) {
  const char *mode = jx_str(info, "HostConfig.NetworkMode", "");
  if ((!is_bridge(info) && !is_named_net(mode)) || !sa->cfg.overlay)
    return;
  overlay_detach(sa->cfg.overlay, id, NULL);
  cleanup_json json_t *patch =
      json_pack("{s:o}", "NetworkSettings", net_settings(info, NULL));
  exec_meta_update(sa->cfg.exec, id, patch, NULL);
}

/* ---- jobs ---- */

static void start_steps(struct sa_job *j) {
  struct standalone *sa = j->c->sa;
  executor *ex = sa->cfg.exec;
  struct exec_state st;
  if (exec_state(ex, j->c->id, &st, &j->err) < 0) {
    j->rc = -1;
    j->gone = j->err.status == 404;
    return;
  }
  if (st.status == EXEC_STATUS_RUNNING) {
    j->rc = 1;
    return;
  }
  json_decref(j->info);
  j->info = NULL;
  if (exec_inspect_json(ex, j->c->id, &j->info, &j->err) < 0 ||
      net_up(sa, j->c->id, j->info, j->c->attachment, &j->dns_fd, &j->err) <
          0) {
    j->rc = -1;
    return;
  }
  pid_t pid;
  if (exec_rerun(ex, j->c->id, &pid, &j->err) < 0) {
    net_down(sa, j->c->id, j->info);
    if (j->dns_fd >= 0)
      close(j->dns_fd);
    j->dns_fd = -1;
    j->rc = -1;
    return;
  }
  set_marker(sa, j->c->id, false);
  exec_pidfd(ex, j->c->id, &j->pidfd, &j->stop_signal, NULL);
  if (j->automatic) {
    cleanup_json json_t *patch =
        json_pack("{s:i}", "RestartCount", j->c->restart_count);
    exec_meta_update(ex, j->c->id, patch, NULL);
  }
  json_decref(j->info);
  j->info = NULL;
  exec_inspect_json(ex, j->c->id, &j->info, NULL);
  j->rc = 0;
}

/* Thread: a run ended. */
static void exit_steps(struct sa_job *j) {
  struct standalone *sa = j->c->sa;
  executor *ex = sa->cfg.exec;
  struct exec_state st;
  if (j->c->removing || exec_state(ex, j->c->id, &st, &j->err) < 0) {
    /* removed meanwhile (rm -f, prune) */
    j->gone = true;
    if (sa->cfg.overlay)
      overlay_detach(sa->cfg.overlay, j->c->id, NULL);
    return;
  }
  if (st.status == EXEC_STATUS_RUNNING) /* started again meanwhile */
    return;
  j->died = true;
  j->exit_code = st.exit_code;
  net_down(sa, j->c->id, j->c->info);
  if (j->c->manual)
    set_marker(sa, j->c->id, true);
  if (jx_bool(j->c->info, "HostConfig.AutoRemove", false)) {
    if (exec_remove(ex, j->c->id, true, &j->err) == 0) {
      j->removed = true;
      cleanup_free char *ap = attachment_path(sa, j->c->id);
      unlink(ap);
    } else
      log_warn("container %s: --rm: %s", j->c->id, j->err.msg);
  }
}

/* Thread: docker network connect. A running container gets the
 * interface now, a stopped one at its next start (dockerd). */
/* Thread: a network job's container as it is now: its inspect (new
 * reference, NULL: failed with j->err) and name. */
static json_t *net_job_info(struct sa_job *j, const char **cname) {
  json_t *info = NULL;
  j->rc = -1;
  if (exec_inspect_json(j->c->sa->cfg.exec, j->c->id, &info, &j->err) < 0)
    return NULL;
  *cname = jx_str(info, "Name", "");
  if (**cname == '/')
    (*cname)++;
  return info;
}

static void connect_steps(struct sa_job *j) {
  struct standalone *sa = j->c->sa;
  executor *ex = sa->cfg.exec;
  const char *id = j->c->id;
  const char *cname;
  cleanup_json json_t *info = net_job_info(j, &cname);
  if (!info)
    return;
  const char *mode = jx_str(info, "HostConfig.NetworkMode", "");
  if (!strcmp(mode, "host")) {
    sh_error(&j->err, 400,
             "container sharing network namespace with another container or "
             "host cannot be connected to any other network");
    return;
  }
  if (!strcmp(mode, "none")) {
    sh_error(&j->err, 400,
             "container cannot be connected to multiple networks with one of "
             "the networks in private (none) mode");
    return;
  }
  if (is_swarm_net(sa, info)) {
    sh_error(&j->err, 501,
             "docker network connect of a container on a swarm network is not "
             "supported by shoal yet");
    return;
  }
  cleanup_json json_t *wanted = wanted_nets(info);
  /* by name, or by ID (a container created with --network <ID>) */
  bool on_it = json_object_get(wanted, j->net_name) != NULL;
  const char *wname;
  json_t *wn;
  json_object_foreach(wanted, wname, wn) {
    if (*j->net_id && !strcmp(jx_str(wn, "NetworkID", ""), j->net_id))
      on_it = true;
  }
  if (on_it) {
    sh_error(&j->err, 403, "endpoint with name %s already exists in network %s",
             cname, j->net_name);
    return;
  }
  json_t *w = json_object();
  json_object_set_new(wanted, j->net_name, w);
  if (*j->net_id)
    json_object_set_new(w, "NetworkID", json_string(j->net_id));
  const json_t *al = json_object_get(j->epcfg, "Aliases");
  const char *ip = jx_str(j->epcfg, "IPAMConfig.IPv4Address", "");
  if (!*j->net_id && (*ip || json_array_size(al))) { /* docker0 */
    runspec_endpoint_error(&j->err, NULL, *ip ? RUNSPEC_EP_IP_NOT_USER_NET : 0,
                           json_array_size(al) > 0);
    return;
  }
  if (*ip) {
    cleanup_json json_t *rec = user_net(sa, j->net_id);
    if (no_user_subnet(rec)) {
      runspec_endpoint_error(&j->err, NULL, RUNSPEC_EP_IP_NO_SUBNET, false);
      return;
    }
  }
  if (json_array_size(al))
    json_object_set(w, "Aliases", (json_t *)al);
  if (*ip)
    json_object_set_new(w, "IPAMConfig", json_pack("{s:s}", "IPv4Address", ip));
  struct exec_state st;
  j->running = exec_state(ex, id, &st, NULL) == 0 &&
               st.status == EXEC_STATUS_RUNNING && sa->cfg.overlay;
  /* The new settings first: net_settings reads them from info. */
  jx_set(info, "NetworkSettings.Networks", json_incref(wanted));
  cleanup_json json_t *eps = json_object();
  if (j->running) {
    bool local_dns = false;
    if (bridge_up(sa, id, info, j->net_name, w, false, eps, &local_dns,
                  &j->err) < 0)
      return;
    /* the others as they are */
    const char *name;
    json_t *n;
    json_object_foreach(jx_get(info, "NetworkSettings.Networks"), name, n) {
      const char *nid =
          strcmp(name, "bridge") ? jx_str(n, "NetworkID", "") : "";
      json_t *ep =
          json_object_get(eps, name) ? NULL : bridge_endpoint(sa, id, nid);
      if (ep && *nid)
        json_object_set_new(ep, "DNSNames", dns_names(info, n));
      if (ep)
        json_object_set_new(eps, name, ep);
    }
    if (local_dns && !j->c->dns_local) {
      cleanup_free char *path = xasprintf("%s/netns/%s", sa->cfg.exec_root, id);
      j->dns_fd = dns_socket(path);
    }
  }
  cleanup_json json_t *patch = json_pack(
      "{s:o}", "NetworkSettings", net_settings(info, j->running ? eps : NULL));
  if (exec_meta_update(ex, id, patch, &j->err) < 0) {
    if (j->running)
      overlay_disconnect(sa->cfg.overlay, id, j->net_id, NULL);
    return;
  }
  exec_inspect_json(ex, id, &j->info, NULL);
  j->rc = 0;
}

/* Thread: docker network disconnect. */
static void disconnect_steps(struct sa_job *j) {
  struct standalone *sa = j->c->sa;
  executor *ex = sa->cfg.exec;
  const char *id = j->c->id;
  const char *cname;
  cleanup_json json_t *info = net_job_info(j, &cname);
  if (!info)
    return;
  const char *mode = jx_str(info, "HostConfig.NetworkMode", "");
  json_t *nets = jx_get(info, "NetworkSettings.Networks");
  struct exec_state st;
  j->running = exec_state(ex, id, &st, NULL) == 0 &&
               st.status == EXEC_STATUS_RUNNING && sa->cfg.overlay;
  if (!json_object_get(nets, j->net_name)) {
    /* dockerd's two wordings: the stopped path's and the sandbox's */
    sh_error(&j->err, 500, "container %s is not connected to %snetwork %s", id,
             j->running ? "" : "the ", j->net_name);
    return;
  }
  if (!strcmp(j->net_name, mode)) {
    sh_error(&j->err, 501,
             "disconnecting a container from the network it was created on "
             "(--network %s) is not supported by shoal yet",
             mode);
    return;
  }
  if (j->running &&
      overlay_disconnect(sa->cfg.overlay, id, j->net_id, &j->err) < 0)
    return;
  json_object_del(nets, j->net_name);
  json_t *ns = jx_get(info, "NetworkSettings");
  cleanup_json json_t *patch = json_pack("{s:O}", "NetworkSettings", ns);
  if (exec_meta_update(ex, id, patch, &j->err) < 0)
    return;
  exec_inspect_json(ex, id, &j->info, NULL);
  j->rc = 0;
}

static void job_work(void *ud) {
  struct sa_job *j = ud;
  struct standalone *sa = j->c->sa;
  switch (j->kind) {
  case J_START:
    start_steps(j);
    break;
  case J_EXIT:
    exit_steps(j);
    break;
  case J_RESTART: {
    /* dockerd's restart: a stop (not a manual one: the policy stays) and a
     * start, its endpoint made again in between. */
    int rc = exec_stop(sa->cfg.exec, j->c->id, j->sig, j->grace_ns, &j->err);
    if (rc < 0) {
      j->rc = -1;
      return;
    }
    if (rc == 0)
      j->died = true;
    struct exec_state st;
    if (exec_state(sa->cfg.exec, j->c->id, &st, NULL) == 0)
      j->exit_code = st.exit_code;
    net_down(sa, j->c->id, j->c->info);
    start_steps(j);
    break;
  }
  case J_REMOVE: {
    if (sa->cfg.overlay)
      overlay_detach(sa->cfg.overlay, j->c->id, NULL);
    if (exec_remove(sa->cfg.exec, j->c->id, true, &j->err) == 0) {
      j->removed = true;
      cleanup_free char *ap = attachment_path(sa, j->c->id);
      unlink(ap);
    }
    break;
  }
  case J_CONNECT:
    connect_steps(j);
    break;
  case J_DISCONNECT:
    disconnect_steps(j);
    break;
  case J_FORGET: {
    if (sa->cfg.overlay)
      overlay_detach(sa->cfg.overlay, j->c->id, NULL);
    set_marker(sa, j->c->id, false);
    cleanup_free char *ap = attachment_path(sa, j->c->id);
    unlink(ap);
    break;
  }
  }
}

static void on_exit_watch(struct exec_watch *wa, void *ud);

static void exited(struct sa_ctr *c) {
  c->exit_pending = true;
  struct sa_job *j = xcalloc(1, sizeof *j);
  j->kind = J_EXIT;
  enqueue(c, j);
}

/* Watches the process; no pidfd: it ended already (echo hi). */
static void watch(struct sa_ctr *c, int pidfd) {
  exec_watch_free(c->watch);
  c->watch = NULL;
  if (pidfd < 0) {
    exited(c);
    return;
  }
  sh_err err = {0};
  if (exec_watch_new(c->sa->cfg.loop, pidfd, on_exit_watch, c, &c->watch,
                     &err) < 0) {
    log_warn("container %s: cannot watch its process: %s", c->id, err.msg);
    c->watch = NULL;
    return;
  }
  /* The daemon may stop while it runs: conmon keeps it. */
  exec_watch_unref(c->watch);
}

static void restart_tick(uv_timer_t *t) {
  struct sa_ctr *c = t->data;
  c->timer_armed = false;
  if (c->forgotten || c->manual || c->sa->closing)
    return;
  struct sa_job *j = xcalloc(1, sizeof *j);
  j->kind = J_START;
  j->automatic = true;
  enqueue(c, j);
}

/* dockerd's restartmanager.ShouldRestart: cancelled, a stop or kill by
 * the user while this daemon ran; manual, the persisted mark of one (after
 * a daemon restart only unless-stopped heeds it). */
static bool should_restart(const json_t *info, bool cancelled, bool manual,
                           int exit_code, int count) {
  enum runspec_restart rp;
  int max;
  if (runspec_restart_parse(jx_get(info, "HostConfig.RestartPolicy"), &rp, &max,
                            NULL) < 0 ||
      cancelled)
    return false;
  switch (rp) {
  case RUNSPEC_RESTART_ALWAYS:
    return true;
  case RUNSPEC_RESTART_UNLESS_STOPPED:
    return !manual;
  case RUNSPEC_RESTART_ON_FAILURE:
    return exit_code != 0 && (max == 0 || count < max);
  default:
    return false;
  }
}

static void schedule_restart(struct sa_ctr *c) {
  int64_t ran = clock_mono_ns() - c->started_mono;
  if (c->started_mono && ran >= BACKOFF_RESET_NS)
    c->backoff_ms = 0;
  c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
  if (c->backoff_ms > BACKOFF_MAX_MS)
    c->backoff_ms = BACKOFF_MAX_MS;
  c->restart_count++;
  c->timer_armed = true;
  uv_timer_start(&c->timer, restart_tick, (uint64_t)c->backoff_ms, 0);
}

/* The container's DNS socket (taken) to the node's embedded server. */
/* The user bridge networks (IDs) a container's settings name. */
static json_t *local_net_ids(const json_t *info) {
  json_t *ids = json_array();
  const char *name;
  json_t *n;
  json_object_foreach(jx_get(info, "NetworkSettings.Networks"), name, n) {
    if (strcmp(name, "bridge") && *jx_str(n, "NetworkID", ""))
      json_array_append_new(ids, json_string(jx_str(n, "NetworkID", "")));
  }
  return ids;
}

/* The names of the running containers on each user bridge network:
 * {network ID: {DNS name: [address]}} for the owner's DNS. */
static void refresh_names(struct standalone *sa) {
  if (!sa->dns)
    return;
  cleanup_json json_t *names = json_object();
  for (struct sa_ctr *c = sa->ctrs; c; c = c->next) {
    if (c->forgotten || !c->running)
      continue;
    const char *name;
    json_t *n;
    json_object_foreach(jx_get(c->info, "NetworkSettings.Networks"), name, n) {
      const char *nid = jx_str(n, "NetworkID", "");
      const char *ip = jx_str(n, "IPAddress", "");
      if (!strcmp(name, "bridge") || !*nid || !*ip)
        continue;
      json_t *tab = json_object_get(names, nid);
      if (!tab) {
        tab = json_object();
        json_object_set_new(names, nid, tab);
      }
      size_t i;
      json_t *dn;
      json_array_foreach(json_object_get(n, "DNSNames"), i, dn) {
        const char *k = json_string_value(dn);
        if (!k)
          continue;
        json_t *addrs = json_object_get(tab, k);
        if (!addrs) {
          addrs = json_array();
          json_object_set_new(tab, k, addrs);
        }
        json_array_append_new(addrs, json_string(ip));
      }
    }
  }
  dnsd_set_names(sa->dns, names);
}

static void serve_dns(struct sa_ctr *c, int fd) {
  struct standalone *sa = c->sa;
  if (fd < 0)
    return;
  if (!is_swarm_net(sa, c->info) && sa->dns) {
    /* on user bridge networks: the owner's own DNS */
    cleanup_json json_t *ids = local_net_ids(c->info);
    sh_err err = {0};
    if (dnsd_add(sa->dns, c->id, fd, ids, &err) < 0)
      log_warn("container %s: embedded DNS: %s", c->id, err.msg);
    else
      c->dns_local = true;
    refresh_names(sa);
    return;
  }
  if (!sa->cfg.dns_add || !c->attachment) {
    close(fd);
    return;
  }
  cleanup_json json_t *nets = json_array();
  size_t i;
  json_t *na;
  json_array_foreach(json_object_get(c->attachment, "NetworksAttachments"), i,
                     na)
      json_array_append_new(nets, json_string(jx_str(na, "Network.ID", "")));
  sa->cfg.dns_add(sa->cfg.ud, c->id, fd, nets);
  c->dns_served = true;
}

static void dns_forget(struct sa_ctr *c) {
  struct standalone *sa = c->sa;
  if (c->dns_local) {
    dnsd_remove(sa->dns, c->id);
    c->dns_local = false;
    refresh_names(sa);
  }
  if (c->dns_served && sa->cfg.dns_remove)
    sa->cfg.dns_remove(sa->cfg.ud, c->id);
  c->dns_served = false;
}

static void detached(void *cbud, const json_t *answer, const sh_err *err) {
  char *id = cbud;
  (void)answer;
  if (err && err->status != 404)
    log_warn("network attachment %s: release: %s", id, err->msg);
  free(id);
}

/* The container is gone: its address goes back to the cluster. */
static void release_attachment(struct sa_ctr *c) {
  struct standalone *sa = c->sa;
  dns_forget(c);
  json_t *att = c->attachment;
  c->attachment = NULL;
  if (att && sa->cfg.call) {
    cleanup_json json_t *body = json_pack("{s:s}", "ID", jx_str(att, "ID", ""));
    sa->cfg.call(sa->cfg.ud, "/swarm/v1/detach", body, detached,
                 xstrdup(jx_str(att, "ID", "")));
  }
  json_decref(att);
}

/* A failed start of a --rm container removes it, as dockerd does (the
 * CLI waits for the removal). */
static void remove_if_auto(struct sa_ctr *c) {
  if (!jx_bool(c->info, "HostConfig.AutoRemove", false) || c->forgotten)
    return;
  struct sa_job *r = xcalloc(1, sizeof *r);
  r->kind = J_REMOVE;
  enqueue(c, r);
}

static void job_done(void *ud, int cancelled) {
  struct sa_job *j = ud;
  struct sa_ctr *c = j->c;
  struct standalone *sa = c->sa;
  sa->inflight--;
  c->busy = NULL;
  if (cancelled && j->rc == 0)
    j->rc = sh_error(&j->err, 503, "the daemon is shutting down");
  char code[16];
  snprintf(code, sizeof code, "%d", j->exit_code);
  if ((j->kind == J_EXIT || j->kind == J_RESTART) && j->died) {
    c->running = false;
    dns_forget(c);
    publish_net(c, "disconnect");
    if (!c->die_logged)
      publish(sa, c->info, c->id, "die", "exitCode", code);
    c->die_logged = false;
  }
  if ((j->kind == J_START || j->kind == J_RESTART) && j->rc == 0) {
    if (j->info) {
      json_decref(c->info);
      c->info = json_incref(j->info);
    }
    c->running = true;
    c->manual = false;
    c->started_mono = clock_mono_ns();
    watch(c, j->pidfd);
    j->pidfd = -1;
    serve_dns(c, j->dns_fd);
    j->dns_fd = -1;
    publish_net(c, "connect");
    publish(sa, c->info, c->id, "start", NULL, NULL);
  }
  if ((j->kind == J_CONNECT || j->kind == J_DISCONNECT) && j->rc == 0) {
    /* docker0's ID (net_id is "" for it) is in its endpoint: the one
     * made now, or for a disconnect the one there was. */
    char nid[80];
    const json_t *eps =
        jx_get(j->kind == J_CONNECT && j->info ? j->info : c->info,
               "NetworkSettings.Networks");
    snprintf(nid, sizeof nid, "%s",
             *j->net_id
                 ? j->net_id
                 : jx_str(json_object_get(eps, j->net_name), "NetworkID", ""));
    if (j->info) {
      json_decref(c->info);
      c->info = json_incref(j->info);
    }
    if (j->running) {
      cleanup_json json_t *ids = local_net_ids(c->info);
      if (c->dns_local && sa->dns)
        dnsd_set_nets(sa->dns, c->id, ids);
      else {
        serve_dns(c, j->dns_fd); /* takes the socket */
        j->dns_fd = -1;
      }
      refresh_names(sa);
    }
    /* as dockerd: only a running container's endpoint comes or goes now;
     * a stopped one's connect is published at its start */
    if (sa->cfg.events && *nid && j->running)
      publish_bridge_net(sa, c->id,
                         j->kind == J_CONNECT ? "connect" : "disconnect", nid,
                         j->net_name);
  }
  if (j->kind == J_START && j->rc < 0 && j->automatic)
    log_warn("container %s: restart: %s", c->id, j->err.msg);
  if (j->kind == J_START && j->rc < 0 && !j->gone)
    remove_if_auto(c);
  if (j->kind == J_REMOVE && j->removed) {
    publish(sa, c->info, c->id, "destroy", NULL, NULL);
    c->forgotten = true;
  }
  if (j->kind == J_EXIT) {
    if (j->removed)
      publish(sa, c->info, c->id, "destroy", NULL, NULL);
    if (j->gone || j->removed) {
      c->forgotten = true;
    } else if (j->died && !sa->closing &&
               should_restart(c->info, c->manual, c->manual, j->exit_code,
                              c->restart_count)) {
      schedule_restart(c);
    }
  }
  if (j->kind == J_FORGET || j->gone)
    c->forgotten = true;
  if (j->kind == J_EXIT)
    c->exit_pending = false;
  if (j->kind == J_EXIT || c->forgotten)
    waiters_run(c);
  if (c->forgotten)
    release_attachment(c);
  if (j->done)
    j->done(j->ud, j->rc, c->id, &j->err);
  if (j->pidfd >= 0)
    close(j->pidfd);
  if (j->dns_fd >= 0)
    close(j->dns_fd);
  json_decref(j->info);
  json_decref(j->epcfg);
  free(j->net_id);
  free(j->net_name);
  free(j);
  run_next(c);
  if (c->forgotten)
    ctr_release(c);
}

static void attached(void *cbud, const json_t *answer, const sh_err *err) {
  struct sa_ctr *c = cbud;
  c->attaching = false;
  struct sa_job *j = c->queue;
  if (!err && !c->forgotten) {
    json_decref(c->attachment);
    c->attachment = json_deep_copy(answer);
  } else if (j) {
    /* moby's words: "Could not attach to network X: <the manager's>". */
    c->queue = j->next;
    sh_err e = {0};
    const char *net = jx_str(c->info, "HostConfig.NetworkMode", "");
    if (err && err->status == 404)
      sh_error(&e, 404, "network %s not found", net); /* dockerd's lookup */
    else if (err)
      sh_error(&e, err->status, "Could not attach to network %s: %s", net,
               err->msg);
    else
      sh_error(&e, 409, "container %s was removed", c->id);
    if (j->automatic)
      log_warn("container %s: restart: %s", c->id, e.msg);
    if (j->done)
      j->done(j->ud, -1, c->id, &e);
    free(j);
    remove_if_auto(c);
  }
  run_next(c);
  if (c->forgotten)
    ctr_release(c);
}

/* A start on a swarm network needs the managers' attachment first. */
static bool wait_attachment(struct sa_ctr *c, struct sa_job *j) {
  struct standalone *sa = c->sa;
  if ((j->kind != J_START && j->kind != J_RESTART) ||
      !is_swarm_net(sa, c->info) || c->attachment || !sa->cfg.call)
    return false;
  if (c->attaching)
    return true;
  c->attaching = true;
  const char *net = jx_str(c->info, "HostConfig.NetworkMode", "");
  const char *name = jx_str(c->info, "Name", "");
  cleanup_json json_t *body =
      json_pack("{s:s, s:s, s:s}", "ContainerID", c->id, "Name",
                *name == '/' ? name + 1 : name, "Target", net);
  sa->cfg.call(sa->cfg.ud, "/swarm/v1/attach", body, attached, c);
  return true;
}

static void run_next(struct sa_ctr *c) {
  if (c->busy || !c->queue || c->sa->closing || wait_attachment(c, c->queue))
    return;
  struct sa_job *j = c->queue;
  c->queue = j->next;
  j->next = NULL;
  c->busy = j;
  c->sa->inflight++;
  workq_submit(c->sa->cfg.work, job_work, job_done, j);
}

static void on_exit_watch(struct exec_watch *wa, void *ud) {
  struct sa_ctr *c = ud;
  (void)wa;
  exec_watch_free(c->watch);
  c->watch = NULL;
  exited(c);
}

/* ---- create ---- */

struct create_job {
  struct standalone *sa;
  struct runspec rs;
  char *name;
  bool name_reserved;
  char id[65];
  standalone_done_fn done;
  void *ud;
  json_t *info;
  int rc;
  sh_err err;
};

/* dockerd: the name must be free (a 409 naming its holder). */
static int name_free(executor *ex, const char *name, sh_err *err) {
  struct exec_entry *list = NULL;
  size_t n = 0;
  if (exec_list(ex, &list, &n, err) < 0)
    return -1;
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++)
    if (strcmp(list[i].name, name) == 0)
      rc = sh_error(err, 409,
                    "Conflict. The container name \"/%s\" is already in use "
                    "by container \"%s\". You have to remove (or rename) that "
                    "container to be able to reuse that name.",
                    name, list[i].id);
  exec_list_free(list, n);
  return rc;
}

static int resolve_image(struct image_store *is, const char *image,
                         char **image_id, sh_err *err) {
  if (image_resolve(is, image, image_id, err) == 0)
    return 0;
  if (err->status != 404)
    return -1;
  /* moby's wording, which makes the CLI pull and try again. */
  struct image_ref ref;
  if (image_ref_parse(image, &ref, NULL) < 0)
    return -1;
  cleanup_free char *fam = image_ref_familiar(&ref, true);
  image_ref_free(&ref);
  return sh_error(err, 404, "No such image: %s", fam);
}

/* NetworkSettings.Networks at create: the network of NetworkMode and
 * the request's other EndpointsConfig entries (API 1.44+), each with its
 * NetworkID (user bridges), Aliases and IPAMConfig, joined at start. */
static int container_nets(struct standalone *sa, const struct runspec *rs,
                          const char *mode, json_t *nets, sh_err *err) {
  cleanup_json json_t *prec =
      rs->net == RUNSPEC_NET_SWARM ? user_net(sa, mode) : NULL;
  bool swarm = rs->net == RUNSPEC_NET_SWARM && !prec;
  const char *k;
  json_t *ep;
  json_object_set_new(nets, mode, json_object());
  json_object_foreach((json_t *)rs->endpoints, k, ep) {
    /* the CLI keys the first by NetworkMode as given ("default" too) */
    bool primary = !strcmp(k, mode) ||
                   (rs->network && !strcmp(k, rs->network)) ||
                   (rs->net == RUNSPEC_NET_BRIDGE &&
                    (!strcmp(k, "bridge") || !strcmp(k, "default")));
    const char *key = primary ? mode : k;
    cleanup_json json_t *rec = NULL;
    if (!primary && strcmp(k, "bridge") && !(rec = user_net(sa, k)))
      return sh_error(err, 501,
                      "connecting a container to more than one network (%s) "
                      "is supported by shoal for bridge networks only",
                      k);
    if (swarm && !primary)
      return sh_error(err, 501,
                      "a container on a swarm network (%s) cannot join "
                      "another network in shoal yet",
                      mode);
    const json_t *al = json_object_get(ep, "Aliases");
    const char *ip = jx_str(ep, "IPAMConfig.IPv4Address", "");
    if (swarm && (json_array_size(al) || *ip))
      return sh_error(err, 501,
                      "--network-alias and --ip on a swarm network are not "
                      "supported by shoal yet");
    const json_t *r = primary ? prec : rec;
    if (*ip && no_user_subnet(r))
      return runspec_endpoint_error(err, k, RUNSPEC_EP_IP_NO_SUBNET, false);
    json_t *w = json_object();
    if (r)
      json_object_set_new(w, "NetworkID", json_string(jx_str(r, "Id", "")));
    if (json_array_size(al))
      json_object_set(w, "Aliases", (json_t *)al);
    if (*ip)
      json_object_set_new(w, "IPAMConfig",
                          json_pack("{s:s}", "IPv4Address", ip));
    json_object_set_new(nets, r && !primary ? jx_str(r, "Name", key) : key, w);
  }
  if (prec && !json_object_size(json_object_get(nets, mode)))
    json_object_set_new(json_object_get(nets, mode), "NetworkID",
                        json_string(jx_str(prec, "Id", "")));
  if (swarm && (json_object_size(rs->port_bindings) || rs->publish_all))
    return sh_error(err, 400,
                    "published ports need the bridge network: --network %s "
                    "has none to publish",
                    mode);
  return 0;
}

static void create_work(void *ud) {
  struct create_job *j = ud;
  struct standalone *sa = j->sa;
  struct runspec *rs = &j->rs;
  cleanup_free char *image_id = NULL;
  cleanup_free char *netns = NULL;
  cleanup_json json_t *config = NULL;
  cleanup_json json_t *nets = json_object();
  cleanup_json json_t *patch = NULL;
  cleanup_free struct exec_mount *mounts = NULL;
  cleanup_free const char **image_cmd = NULL;
  j->rc = -1;
  if (name_free(sa->cfg.exec, j->name, &j->err) < 0)
    return;
  if (resolve_image(sa->cfg.images, rs->image, &image_id, &j->err) < 0)
    return;
  char **dirs = NULL;
  size_t n = 0;
  if (image_layers(sa->cfg.images, image_id, &dirs, &n, &config, &j->err) < 0)
    return;
  const char *root = image_store_root(sa->cfg.images);
  char **layers = xcalloc(n + 1, sizeof *layers);
  for (size_t i = 0; i < n; i++)
    layers[i] = xasprintf("%s/%s", root, dirs[n - 1 - i]);
  image_layers_free(dirs, n);

  /* -v /host/dir:/x makes a missing host directory, as dockerd's Binds. */
  for (char **b = rs->bind_sources; b && *b; b++)
    if (mkdir_p(*b, 0755, &j->err) < 0)
      goto out;
  /* The exposed ports: the image's and the request's (for -P, ps). */
  const json_t *icfg = json_object_get(config, "config");
  if (!json_is_object(icfg))
    icfg = config;
  json_t *exposed = json_object();
  if (json_is_object(json_object_get(icfg, "ExposedPorts")))
    json_object_update(exposed, json_object_get(icfg, "ExposedPorts"));
  if (json_is_object(jx_get(rs->config_extra, "ExposedPorts")))
    json_object_update(exposed, jx_get(rs->config_extra, "ExposedPorts"));
  json_object_set_new(rs->config_extra, "ExposedPorts", exposed);
  /* The image's VOLUMEs no mount covers get anonymous volumes (dockerd). */
  const json_t *ivols = json_object_get(icfg, "Volumes");
  mounts = xcalloc(rs->n_mounts + json_object_size(ivols) + 1, sizeof *mounts);
  if (rs->n_mounts)
    memcpy(mounts, rs->mounts, rs->n_mounts * sizeof *mounts);
  size_t nm = rs->n_mounts;
  const char *vk;
  json_t *vv;
  json_object_foreach((json_t *)ivols, vk, vv) {
    bool covered = false;
    for (size_t i = 0; i < nm && !covered; i++)
      covered = strcmp(mounts[i].target, vk) == 0;
    if (!covered && vk[0] == '/')
      mounts[nm++] =
          (struct exec_mount){.type = EXEC_MOUNT_VOLUME, .target = vk};
  }

  id_new_hex(j->id);
  const char *mode = "none";
  if (rs->net == RUNSPEC_NET_BRIDGE) {
    if (!sa->cfg.overlay) {
      sh_error(&j->err, 500,
               "the bridge network is not available on this node (no network "
               "data plane): use --network host or none");
      goto out;
    }
    netns = xasprintf("%s/netns/%s", sa->cfg.exec_root, j->id);
    mode = "bridge";
  } else if (rs->net == RUNSPEC_NET_HOST) {
    netns = xstrdup(sa->host_netns);
    mode = "host";
  } else if (rs->net == RUNSPEC_NET_SWARM) {
    /* The managers attach it at its start (they say whether it may);
     * a user bridge network is the node's own. */
    netns = xasprintf("%s/netns/%s", sa->cfg.exec_root, j->id);
    mode = rs->network;
  }
  if (container_nets(sa, rs, mode, nets, &j->err) < 0)
    goto out;
  char **entry = rs->entrypoint;
  char **cmd = rs->cmd;
  /* --entrypoint "": the request's Cmd (else the image's) is the whole
   * command, as moby's merge leaves an empty entrypoint. */
  const json_t *icmd = json_object_get(icfg, "Cmd");
  if (rs->entrypoint_reset && !cmd && json_array_size(icmd)) {
    image_cmd = xcalloc(json_array_size(icmd) + 1, sizeof *image_cmd);
    size_t i;
    json_t *a;
    json_array_foreach(icmd, i, a) image_cmd[i] =
        json_string_value(a) ? json_string_value(a) : "";
  }
  if (rs->entrypoint_reset) {
    if (!cmd && !image_cmd) {
      sh_error(&j->err, 400, "No command specified");
      goto out;
    }
    entry = cmd ? cmd : (char **)image_cmd;
    cmd = NULL;
  }
  struct exec_spec spec = {
      .id = j->id,
      .name = j->name,
      .image = rs->image,
      .image_id = image_id,
      .layers = (const char *const *)layers,
      .image_config = config,
      .entrypoint = (const char *const *)entry,
      .cmd = (const char *const *)cmd,
      .env = (const char *const *)rs->env,
      .user = rs->user,
      .workdir = rs->workdir,
      .hostname = rs->hostname,
      .labels = rs->labels,
      .mounts = mounts,
      .n_mounts = nm,
      .read_only = rs->read_only,
      .res = rs->res,
      .stop_signal = rs->stop_signal,
      .netns_path = netns,
      .network_mode = mode,
      .networks = nets,
      .extra_hosts = (const char *const *)rs->extra_hosts,
      .seccomp = rs->seccomp_unconfined ? NULL : sa->cfg.seccomp,
      .caps = rs->caps,
      .no_new_privileges = rs->no_new_privileges,
      .oom_score_adj = rs->oom_score_adj,
      .init = rs->init,
      .dns_servers = (const char *const *)rs->dns,
      .embedded_dns =
          rs->net == RUNSPEC_NET_SWARM || json_object_size(rs->endpoints) > 1,
      .dns_search = (const char *const *)rs->dns_search,
      .dns_options = (const char *const *)rs->dns_options,
      .sysctls = rs->sysctls,
      .ulimits = rs->ulimits,
      .groups = (const char *const *)rs->groups,
      .config_extra = rs->config_extra,
      .host_config_extra = rs->host_config_extra,
      .tty = rs->tty,
      .console_rows = rs->console_rows,
      .console_cols = rs->console_cols,
  };
  if (exec_create(sa->cfg.exec, &spec, &j->err) < 0)
    goto out;
  if (exec_inspect_json(sa->cfg.exec, j->id, &j->info, &j->err) < 0) {
    exec_remove(sa->cfg.exec, j->id, true, NULL);
    goto out;
  }
  /* NetworkSettings as dockerd shows a created container's. */
  patch = json_pack("{s:o}", "NetworkSettings", net_settings(j->info, NULL));
  exec_meta_update(sa->cfg.exec, j->id, patch, NULL);
  j->rc = 0;
out:
  for (size_t i = 0; i < n; i++)
    free(layers[i]);
  free(layers);
}

static void create_done(void *ud, int cancelled) {
  struct create_job *j = ud;
  struct standalone *sa = j->sa;
  sa->inflight--;
  if (cancelled && j->rc == 0)
    j->rc = sh_error(&j->err, 503, "the daemon is shutting down");
  json_object_del(sa->creating, j->name);
  if (j->rc == 0) {
    ctr_new(sa, j->id, json_incref(j->info));
    publish(sa, j->info, j->id, "create", NULL, NULL);
  }
  j->done(j->ud, j->rc, j->id, &j->err);
  runspec_free(&j->rs);
  json_decref(j->info);
  free(j->name);
  free(j);
}

void standalone_create(struct standalone *sa, const json_t *body,
                       const char *name, standalone_done_fn done, void *ud) {
  sh_err err = {0};
  char gen[64];
  if (name && *name && !runspec_name_ok(name)) {
    sh_error(&err, 400,
             "Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are "
             "allowed",
             name);
    done(ud, -1, NULL, &err);
    return;
  }
  if (!name || !*name) {
    uint64_t r;
    id_random(&r, sizeof r);
    runspec_random_name(r, gen, sizeof gen);
    name = gen;
  }
  if (name[0] == '/')
    name++;
  struct create_job *j = xcalloc(1, sizeof *j);
  if (runspec_parse(body, &j->rs, &err) < 0) {
    free(j);
    done(ud, -1, NULL, &err);
    return;
  }
  if (json_object_get(sa->creating, name)) {
    /* Two creates of one name at once: the second loses, as on dockerd. */
    sh_error(&err, 409,
             "Conflict. The container name \"/%s\" is already in use by "
             "container \"\". You have to remove (or rename) that container "
             "to be able to reuse that name.",
             name);
    runspec_free(&j->rs);
    free(j);
    done(ud, -1, NULL, &err);
    return;
  }
  json_object_set_new(sa->creating, name, json_true());
  j->sa = sa;
  j->name = xstrdup(name);
  j->done = done;
  j->ud = ud;
  sa->inflight++;
  workq_submit(sa->cfg.work, create_work, create_done, j);
}

/* ---- start, restart ---- */

struct find_job {
  struct standalone *sa;
  char *ref;
  char id[65];
  json_t *info;
  json_t *attachment; /* kept on disk, or NULL */
  int sig;
  int64_t grace_ns;
  standalone_done_fn done;
  void *ud;
  int rc;
  sh_err err;
};

static void find_work(void *ud) {
  struct find_job *f = ud;
  f->rc = exec_find(f->sa->cfg.exec, f->ref, f->id, &f->err);
  if (f->rc == 0)
    f->rc = exec_inspect_json(f->sa->cfg.exec, f->id, &f->info, &f->err);
  if (f->rc == 0)
    f->attachment = load_attachment(f->sa, f->id);
}

static bool is_task(const json_t *info) {
  return json_object_get(jx_get(info, "Config.Labels"),
                         "com.docker.swarm.task.id") != NULL;
}

static void find_done(void *ud, int cancelled) {
  struct find_job *f = ud;
  struct standalone *sa = f->sa;
  sa->inflight--;
  if (cancelled && f->rc == 0)
    f->rc = sh_error(&f->err, 503, "the daemon is shutting down");
  if (f->rc == 0 && is_task(f->info))
    f->rc = sh_error(&f->err, 409,
                     "container %s is a swarm task's: the orchestrator starts "
                     "its tasks (a stopped task is replaced by a new one)",
                     f->ref);
  if (f->rc < 0) {
    f->done(f->ud, -1, NULL, &f->err);
  } else {
    struct sa_ctr *c = find(sa, f->id);
    if (!c) {
      c = ctr_new(sa, f->id, json_incref(f->info));
      c->attachment = json_incref(f->attachment);
    }
    struct sa_job *j = xcalloc(1, sizeof *j);
    j->kind = J_START;
    j->done = f->done;
    j->ud = f->ud;
    /* A start by the user ends a pending restart's wait (dockerd). */
    uv_timer_stop(&c->timer);
    c->timer_armed = false;
    c->manual = false;
    enqueue(c, j);
  }
  json_decref(f->info);
  json_decref(f->attachment);
  free(f->ref);
  free(f);
}

void standalone_start(struct standalone *sa, const char *ref,
                      standalone_done_fn done, void *ud) {
  struct find_job *f = xcalloc(1, sizeof *f);
  f->sa = sa;
  f->ref = xstrdup(ref);
  f->done = done;
  f->ud = ud;
  sa->inflight++;
  workq_submit(sa->cfg.work, find_work, find_done, f);
}

/* docker network connect / disconnect: found like a start, then a job
 * in the container's queue. */
struct net_find {
  struct standalone *sa;
  char *ref;
  char id[65];
  json_t *info, *attachment;
  int rc;
  sh_err err;
  struct sa_job *job;
};

static void net_find_work(void *ud) {
  struct net_find *f = ud;
  f->rc = exec_find(f->sa->cfg.exec, f->ref, f->id, &f->err);
  if (f->rc == 0)
    f->rc = exec_inspect_json(f->sa->cfg.exec, f->id, &f->info, &f->err);
  if (f->rc == 0)
    f->attachment = load_attachment(f->sa, f->id);
}

static void net_find_done(void *ud, int cancelled) {
  struct net_find *f = ud;
  struct standalone *sa = f->sa;
  struct sa_job *j = f->job;
  sa->inflight--;
  if (cancelled && f->rc == 0)
    f->rc = sh_error(&f->err, 503, "the daemon is shutting down");
  if (f->rc == 0 && is_task(f->info))
    f->rc = sh_error(&f->err, 501,
                     "docker network %s of a swarm task's container is not "
                     "supported by shoal",
                     j->kind == J_CONNECT ? "connect" : "disconnect");
  if (f->rc < 0) {
    j->done(j->ud, -1, NULL, &f->err);
    json_decref(j->epcfg);
    free(j->net_id);
    free(j->net_name);
    free(j);
  } else {
    struct sa_ctr *c = find(sa, f->id);
    if (!c) {
      c = ctr_new(sa, f->id, json_incref(f->info));
      c->attachment = json_incref(f->attachment);
    }
    enqueue(c, j);
  }
  json_decref(f->info);
  json_decref(f->attachment);
  free(f->ref);
  free(f);
}

void standalone_network(struct standalone *sa, bool connect, const char *ref,
                        const char *net_id, const char *net_name,
                        const json_t *epcfg, standalone_done_fn done,
                        void *ud) {
  struct sa_job *j = xcalloc(1, sizeof *j);
  j->kind = connect ? J_CONNECT : J_DISCONNECT;
  j->net_id = xstrdup(net_id);
  j->net_name = xstrdup(net_name);
  j->epcfg = epcfg ? json_deep_copy(epcfg) : json_object();
  j->dns_fd = -1;
  j->pidfd = -1;
  j->done = done;
  j->ud = ud;
  struct net_find *f = xcalloc(1, sizeof *f);
  f->sa = sa;
  f->ref = xstrdup(ref);
  f->job = j;
  sa->inflight++;
  workq_submit(sa->cfg.work, net_find_work, net_find_done, f);
}

bool standalone_restart(struct standalone *sa, const char *id, int sig,
                        int64_t grace_ns, standalone_done_fn done, void *ud) {
  struct sa_ctr *c = find(sa, id);
  if (!c)
    return false;
  uv_timer_stop(&c->timer);
  c->timer_armed = false;
  /* Its exit is this restart's: no watch, no policy. */
  exec_watch_free(c->watch);
  c->watch = NULL;
  struct sa_job *j = xcalloc(1, sizeof *j);
  j->kind = J_RESTART;
  j->sig = sig;
  j->grace_ns = grace_ns;
  j->done = done;
  j->ud = ud;
  enqueue(c, j);
  return true;
}

void standalone_stopping(struct standalone *sa, const char *id, bool stop_like,
                         bool die_logged, bool removing) {
  struct sa_ctr *c = find(sa, id);
  if (!c)
    return;
  if (removing)
    c->removing = true;
  if (stop_like) {
    c->manual = true;
    uv_timer_stop(&c->timer);
    c->timer_armed = false;
  }
  if (die_logged && c->running)
    c->die_logged = true;
}

void standalone_stopped(struct standalone *sa, const char *id,
                        standalone_done_fn done, void *ud) {
  struct sa_ctr *c = find(sa, id);
  if (!c || c->forgotten || !c->running || (!c->watch && !c->exit_pending)) {
    done(ud, 0, id, NULL);
    return;
  }
  struct sa_waiter *w = xcalloc(1, sizeof *w);
  w->done = done;
  w->ud = ud;
  w->next = c->exit_waiters;
  c->exit_waiters = w;
}

void standalone_updated(struct standalone *sa, const char *id,
                        const json_t *info) {
  struct sa_ctr *c = find(sa, id);
  if (!c || !json_is_object(info))
    return;
  json_decref(c->info);
  c->info = json_deep_copy(info);
}

json_t *standalone_network_view(struct standalone *sa) {
  json_t *eps = json_object(), *nets = json_object();
  for (struct sa_ctr *c = sa->ctrs; c; c = c->next) {
    if (c->forgotten || !c->running)
      continue;
    const char *name = jx_str(c->info, "Name", "");
    json_object_set_new(eps, c->id,
                        json_pack("{s:s, s:s}", "Container", c->id, "Name",
                                  *name == '/' ? name + 1 : name));
    /* The overlay it is attached to, as the managers gave it: a worker
     * has no store, so this is how its `network inspect` knows it. */
    const json_t *net =
        jx_get(json_array_get(
                   json_object_get(c->attachment, "NetworksAttachments"), 0),
               "Network");
    const char *nid = jx_str(net, "ID", "");
    if (*nid)
      json_object_set(nets, nid, (json_t *)net);
  }
  return json_pack("{s:o, s:o}", "Endpoints", eps, "Networks", nets);
}

void standalone_removed(struct standalone *sa, const char *id,
                        standalone_done_fn done, void *ud) {
  struct sa_ctr *c = find(sa, id);
  if (!c) {
    if (done)
      done(ud, 0, id, NULL);
    return;
  }
  uv_timer_stop(&c->timer);
  exec_watch_free(c->watch);
  c->watch = NULL;
  struct sa_job *j = xcalloc(1, sizeof *j);
  j->kind = J_FORGET;
  j->done = done;
  j->ud = ud;
  enqueue(c, j);
}

/* ---- adoption ---- */

struct adopt_job {
  struct standalone *sa;
  json_t *found; /* [{Id, Info, Running, ExitCode, Pidfd, Manual}] */
};

static void adopt_work(void *ud) {
  struct adopt_job *a = ud;
  struct standalone *sa = a->sa;
  a->found = json_array();
  struct exec_entry *list = NULL;
  size_t n = 0;
  if (exec_list(sa->cfg.exec, &list, &n, NULL) < 0)
    return;
  for (size_t i = 0; i < n; i++) {
    json_t *info = NULL;
    struct exec_state st;
    if (exec_inspect_json(sa->cfg.exec, list[i].id, &info, NULL) < 0)
      continue;
    if (is_task(info) || exec_state(sa->cfg.exec, list[i].id, &st, NULL) < 0) {
      json_decref(info);
      continue;
    }
    int fd = -1, dns_fd = -1;
    json_t *att = load_attachment(sa, list[i].id);
    if (st.status == EXEC_STATUS_RUNNING) {
      exec_pidfd(sa->cfg.exec, list[i].id, &fd, NULL, NULL);
      /* its DNS socket again (the old one died with the daemon) */
      cleanup_json json_t *lids = local_net_ids(info);
      if ((att && is_swarm_net(sa, info)) ||
          (!is_swarm_net(sa, info) && json_array_size(lids))) {
        cleanup_free char *ns =
            xasprintf("%s/netns/%s", sa->cfg.exec_root, list[i].id);
        dns_fd = dns_socket(ns);
      }
    } else if (st.status == EXEC_STATUS_EXITED)
      net_down(sa, list[i].id, info); /* ended while no daemon watched */
    json_array_append_new(a->found,
                          json_pack("{s:s,s:o,s:b,s:b,s:i,s:i,s:b,s:o?,s:i}",
                                    "Id", list[i].id, "Info", info, "Running",
                                    st.status == EXEC_STATUS_RUNNING, "Exited",
                                    st.status == EXEC_STATUS_EXITED, "ExitCode",
                                    st.exit_code, "Pidfd", fd, "Manual",
                                    has_marker(sa, list[i].id), "Attachment",
                                    att, "DnsFd", dns_fd));
  }
  exec_list_free(list, n);
}

static void adopt_done(void *ud, int cancelled) {
  struct adopt_job *a = ud;
  struct standalone *sa = a->sa;
  sa->inflight--;
  size_t i;
  json_t *f;
  json_array_foreach(a->found, i, f) {
    int fd = (int)jx_int(f, "Pidfd", -1);
    int dns_fd = (int)jx_int(f, "DnsFd", -1);
    if (cancelled || find(sa, jx_str(f, "Id", ""))) {
      if (fd >= 0)
        close(fd);
      if (dns_fd >= 0)
        close(dns_fd);
      continue;
    }
    json_t *info = json_object_get(f, "Info");
    struct sa_ctr *c = ctr_new(sa, jx_str(f, "Id", ""), json_incref(info));
    c->manual = jx_bool(f, "Manual", false);
    c->attachment = json_incref(json_object_get(f, "Attachment"));
    if (jx_bool(f, "Running", false)) {
      c->running = true;
      c->started_mono = clock_mono_ns();
      log_info("adopted container %s (%s)", c->id, jx_str(info, "Name", ""));
      watch(c, fd);
      serve_dns(c, dns_fd);
      continue;
    }
    if (!jx_bool(f, "Exited", false))
      continue;
    int code = (int)jx_int(f, "ExitCode", 0);
    if (jx_bool(info, "HostConfig.AutoRemove", false)) {
      struct sa_job *j = xcalloc(1, sizeof *j);
      j->kind = J_EXIT; /* its removal */
      enqueue(c, j);
    } else if (should_restart(info, false, c->manual, code, c->restart_count)) {
      log_info("container %s: restarting it (restart policy %s)", c->id,
               jx_str(info, "HostConfig.RestartPolicy.Name", ""));
      struct sa_job *j = xcalloc(1, sizeof *j);
      j->kind = J_START;
      j->automatic = true;
      c->restart_count++;
      enqueue(c, j);
    }
  }
  json_decref(a->found);
  free(a);
}

void standalone_adopt(struct standalone *sa) {
  struct adopt_job *a = xcalloc(1, sizeof *a);
  a->sa = sa;
  sa->inflight++;
  workq_submit(sa->cfg.work, adopt_work, adopt_done, a);
}

/* ---- life ---- */

struct standalone *standalone_new(const struct standalone_config *cfg) {
  struct standalone *sa = xcalloc(1, sizeof *sa);
  sa->cfg = *cfg;
  sa->marker_dir = xasprintf("%s/standalone", cfg->data_root);
  sh_err err = {0};
  if (mkdir_p(sa->marker_dir, 0700, &err) < 0)
    log_warn("standalone containers: %s", err.msg);
  sa->creating = json_object();
  if (cfg->overlay && cfg->loop) {
    sa->dns = dnsd_new(cfg->loop);
    /* other names: the node's resolvers (not loopback ones) */
    cleanup_free char *rc = NULL;
    size_t len = 0;
    if (read_file("/etc/resolv.conf", &rc, &len, NULL) == 0) {
      cleanup_json json_t *rs = dns_resolvers(rc);
      dnsd_set_resolvers(sa->dns, rs);
    }
  }
  sa->host_netns = xasprintf("%s/host-netns", cfg->exec_root);
  struct statfs fs;
  if (statfs(sa->host_netns, &fs) != 0 || fs.f_type != NSFS_MAGIC) {
    int fd = open(sa->host_netns, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0)
      close(fd);
    if (fd < 0 ||
        mount("/proc/self/ns/net", sa->host_netns, NULL, MS_BIND, NULL) < 0)
      log_warn("standalone containers: binding the host's network namespace "
               "at %s: %s",
               sa->host_netns, strerror(errno));
  }
  return sa;
}

void standalone_stop(struct standalone *sa) {
  sa->closing = true;
}

void standalone_free(struct standalone *sa) {
  if (!sa)
    return;
  sa->closing = true;
  /* Containers keep running under conmon; the queue's completions ran
   * (workq_close) before this. */
  while (sa->ctrs) {
    struct sa_ctr *c = sa->ctrs;
    sa->ctrs = c->next;
    for (struct sa_job *j = c->queue, *nx; j; j = nx) {
      nx = j->next;
      free(j);
    }
    exec_watch_free(c->watch);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, ctr_closed); /* drops its waiters */
  }
  json_decref(sa->creating);
  dnsd_free(sa->dns);
  free(sa->host_netns);
  free(sa->marker_dir);
  free(sa);
}
