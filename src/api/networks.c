/* /networks endpoints: list (filters), inspect, create, remove, prune.
 * A node answers with its own networks (host, none) and, on a manager,
 * the swarm's (from the store), as dockerd merges its local networks
 * with the cluster's. */
#include "api/api.h"

#include "api/filters.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/id.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/util.h"
#include "core/workq.h"
#include "events/events.h"
#include "agent/agent.h"
#include "agent/standalone.h"
#include "agent/worker.h"
#include "daemon/daemon.h"
#include "http/server.h"
#include "manager/manager.h"
#include "manager/networks.h"
#include "overlay/overlay.h"
#include "store/store.h"

#define NOT_MANAGER_OVERLAY                                                    \
  "This node is not a swarm manager. Use \"docker swarm init\" or \"docker "   \
  "swarm join\" to connect this node to swarm and try again."

/* ---- this node's own networks ---- */

static json_t *local_view(const char *name, const json_t *rec) {
  return json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:{s:s, s:n, s:[]}, s:b, "
                   "s:b, s:b, s:{s:s}, s:b, s:{}, s:{}, s:{}}",
                   "Name", name, "Id", jx_str(rec, "Id", ""), "Created",
                   jx_str(rec, "Created", ""), "Scope", "local", "Driver",
                   strcmp(name, "none") == 0 ? "null" : name, "EnableIPv6", 0,
                   "IPAM", "Driver", "default", "Options", "Config", "Internal",
                   0, "Attachable", 0, "Ingress", 0, "ConfigFrom", "Network",
                   "", "ConfigOnly", 0, "Containers", "Options", "Labels");
}

/* docker_gwbridge as dockerd shows it: its subnet and endpoints are
 * filled in from the data plane (see present_local). */
static json_t *gwbridge_view(const json_t *rec) {
  json_t *v = local_view("docker_gwbridge", rec);
  json_object_set_new(v, "Driver", json_string("bridge"));
  json_object_set_new(
      v, "Options",
      json_pack("{s:s, s:s, s:s}", "com.docker.network.bridge.enable_icc",
                "false", "com.docker.network.bridge.enable_ip_masquerade",
                "true", "com.docker.network.bridge.name", "docker_gwbridge"));
  return v;
}

/* bridge (docker0) as dockerd shows its default bridge. */
static json_t *bridge_view(const json_t *rec) {
  json_t *v = local_view("bridge", rec);
  json_object_set_new(
      v, "Options",
      json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}",
                "com.docker.network.bridge.default_bridge", "true",
                "com.docker.network.bridge.enable_icc", "true",
                "com.docker.network.bridge.enable_ip_masquerade", "true",
                "com.docker.network.bridge.host_binding_ipv4", "0.0.0.0",
                "com.docker.network.bridge.name", "docker0",
                "com.docker.network.driver.mtu", "1500"));
  return v;
}

/* host and none exist on every node (tasks run with no network today;
 * host is the node's own namespace). Their IDs are made once and kept in
 * <data-root>/network/local.json, as dockerd keeps them in its store. */
static const json_t *local_networks(struct shoald *d) {
  if (d->local_networks)
    return d->local_networks;
  cleanup_free char *dir = xasprintf("%s/network", d->cfg.data_root);
  cleanup_free char *path = xasprintf("%s/local.json", dir);
  cleanup_free char *raw = NULL;
  size_t len = 0;
  json_t *recs = NULL;
  if (read_file(path, &raw, &len, NULL) == 0)
    recs = json_loadb(raw, len, 0, NULL);
  if (!json_is_object(recs))
    recs = json_object();
  const char *names[] = {"bridge", "host", "none", "docker_gwbridge"};
  bool added = false;
  char ts[64];
  clock_format_rfc3339(clock_wall_ns(), ts, sizeof ts);
  for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
    if (json_object_get(recs, names[i]))
      continue;
    char hex[65];
    id_new_hex(hex);
    json_object_set_new(recs, names[i],
                        json_pack("{s:s, s:s}", "Id", hex, "Created", ts));
    added = true;
  }
  if (added) {
    cleanup_free char *out = jx_dump(recs);
    sh_err err = {0};
    if (mkdir_p(dir, 0700, &err) < 0 ||
        write_file_atomic(path, out, strlen(out), 0600, &err) < 0)
      log_warn("keeping local network IDs: %s", err.msg);
  }
  json_t *views = json_array();
  const char *name;
  json_t *rec;
  json_object_foreach(recs, name, rec) {
    if (strcmp(name, "docker_gwbridge") == 0)
      json_array_append_new(views, gwbridge_view(rec));
    else if (strcmp(name, "bridge") == 0)
      json_array_append_new(views, bridge_view(rec));
    else
      json_array_append_new(views, local_view(name, rec));
  }
  json_decref(recs);
  d->local_networks = views;
  return views;
}

const char *api_local_network_id(struct shoald *d, const char *name) {
  size_t i;
  const json_t *v;
  json_array_foreach(local_networks(d), i, v) {
    if (strcmp(jx_str(v, "Name", ""), name) == 0)
      return jx_str(v, "Id", NULL);
  }
  return NULL;
}

/* What this node's data plane and worker know, for the views below. */
struct local_state {
  json_t *overlay; /* overlay_view, or NULL */
  json_t *worker;  /* worker_network_view, or NULL */
};

static void local_state_load(struct shoald *d, struct local_state *ls) {
  ls->overlay = d->overlay ? overlay_view(d->overlay) : NULL;
  ls->worker = d->worker ? worker_network_view(d->worker) : NULL;
  /* standalone containers beside the tasks */
  if (d->standalone) {
    cleanup_json json_t *sv = standalone_network_view(d->standalone);
    if (!ls->worker)
      ls->worker = json_pack("{s:{}, s:{}}", "Endpoints", "Networks");
    if (!json_object_get(ls->worker, "Networks"))
      json_object_set_new(ls->worker, "Networks", json_object());
    json_object_update(json_object_get(ls->worker, "Endpoints"),
                       json_object_get(sv, "Endpoints"));
    /* a task's view of a network wins over an attachment's */
    json_object_update_missing(json_object_get(ls->worker, "Networks"),
                               json_object_get(sv, "Networks"));
  }
}

static void local_state_free(struct local_state *ls) {
  json_decref(ls->overlay);
  json_decref(ls->worker);
}

/* This node's endpoints on a network (the overlay view's key: a network
 * ID or "docker_gwbridge") as Containers: {container ID: {Name,
 * EndpointID, MacAddress, IPv4Address, IPv6Address}}. */
static json_t *containers_on(const struct local_state *ls, const char *key,
                             bool gateway) {
  json_t *out = json_object();
  const char *task;
  json_t *ep;
  json_object_foreach(jx_get(json_object_get(ls->overlay, "Networks"), key),
                      task, ep) {
    const json_t *who =
        json_object_get(json_object_get(ls->worker, "Endpoints"), task);
    bool sbox = strcmp(task, OVERLAY_INGRESS_SBOX) == 0;
    /* dockerd's names for the node's hidden ingress sandbox */
    const char *cid = sbox ? "ingress-sbox" : jx_str(who, "Container", "");
    if (!*cid)
      continue;
    char short_id[13];
    snprintf(short_id, sizeof short_id, "%s", cid);
    cleanup_free char *gw = xasprintf("gateway_%s", sbox ? cid : short_id);
    const char *name = gateway ? gw
                       : sbox  ? "ingress-endpoint"
                               : jx_str(who, "Name", "");
    json_object_set_new(out, cid,
                        json_pack("{s:s, s:s, s:s, s:s, s:s}", "Name", name,
                                  "EndpointID", jx_str(ep, "EndpointID", ""),
                                  "MacAddress", jx_str(ep, "MacAddress", ""),
                                  "IPv4Address", jx_str(ep, "IPv4Address", ""),
                                  "IPv6Address", ""));
  }
  return out;
}

/* A local view made current: docker_gwbridge exists once the data plane
 * made it (swarm init or join), bridge once docker0 exists (at start),
 * each with its subnet and endpoints. NULL: not on this node now. */
static json_t *present_local(struct shoald *d, const json_t *view,
                             const struct local_state *ls, bool full) {
  const char *name = jx_str(view, "Name", "");
  bool gwb = strcmp(name, "docker_gwbridge") == 0;
  if (!gwb && strcmp(name, "bridge") != 0)
    return json_deep_copy(view);
  const json_t *gw = json_object_get(ls->overlay, gwb ? "GwBridge" : "Bridge");
  if (!*jx_str(gw, "Subnet", ""))
    return NULL;
  json_t *v = json_deep_copy(view);
  jx_set(v, "IPAM.Config",
         json_pack("[{s:s, s:s}]", "Subnet", jx_str(gw, "Subnet", ""),
                   "Gateway", jx_str(gw, "Gateway", "")));
  if (full)
    json_object_set_new(
        v, "Containers",
        containers_on(ls, gwb ? "docker_gwbridge" : "bridge", gwb));
  return v;
}

/* A swarm network's view on this node: its local endpoints and the
 * nodes holding it (this one and its peers), as dockerd shows them. */
static json_t *present_swarm(struct shoald *d, const json_t *net,
                             const struct local_state *ls, bool full) {
  json_t *v = networks_view(net);
  if (!full)
    return v;
  const char *id = jx_str(net, "ID", "");
  json_t *ctrs = containers_on(ls, id, false);
  json_object_set_new(v, "Containers", ctrs);
  const json_t *others =
      json_object_get(json_object_get(ls->worker, "Peers"), id);
  if (json_object_size(ctrs) > 0 || json_array_size(others) > 0) {
    json_t *peers = json_array();
    if (json_object_size(ctrs) > 0) {
      const char *addr = d->agent ? agent_node_addr(d->agent) : NULL;
      json_array_append_new(peers, json_pack("{s:s, s:s}", "Name", d->hostname,
                                             "IP", addr ? addr : ""));
    }
    if (json_is_array(others))
      json_array_extend(peers, (json_t *)others);
    json_object_set_new(v, "Peers", peers);
  }
  return v;
}

/* The swarm's networks this node shows, new array of views: all of them
 * on a manager; on a worker, ingress and the networks of its tasks (as
 * a Docker worker knows only those). hidden: also the predefined ones. */
static json_t *swarm_networks(struct shoald *d, const struct local_state *ls,
                              bool full, bool hidden) {
  json_t *out = json_array();
  size_t i;
  json_t *n;
  if (d->mgr) {
    json_t *nets = store_list(manager_store(d->mgr), STORE_NETWORK);
    json_array_foreach(nets, i, n) {
      if (hidden || !networks_is_hidden(n))
        json_array_append_new(out, present_swarm(d, n, ls, full));
    }
    json_decref(nets);
    return out;
  }
  json_t *seen = json_object();
  const json_t *ing = d->agent ? agent_ingress(d->agent) : NULL;
  if (ing) {
    json_array_append_new(out, present_swarm(d, ing, ls, full));
    json_object_set_new(seen, jx_str(ing, "ID", ""), json_true());
  }
  const char *id;
  json_object_foreach(json_object_get(ls->worker, "Networks"), id, n) {
    if (!json_object_get(seen, id) && (hidden || !networks_is_hidden(n)))
      json_array_append_new(out, present_swarm(d, n, ls, full));
    json_object_set_new(seen, id, json_true());
  }
  json_decref(seen);
  return out;
}

/* A user bridge network (overlay_nets' record) as dockerd shows it. */
static json_t *user_bridge_view(const json_t *rec, const struct local_state *ls,
                                bool full) {
  json_t *v = local_view(jx_str(rec, "Name", ""), rec);
  json_object_set_new(v, "Driver", json_string("bridge"));
  json_t *cfg = json_pack("{s:s, s:s}", "Subnet", jx_str(rec, "Subnet", ""),
                          "Gateway", jx_str(rec, "Gateway", ""));
  if (*jx_str(rec, "IPRange", ""))
    json_object_set_new(cfg, "IPRange",
                        json_string(jx_str(rec, "IPRange", "")));
  jx_set(v, "IPAM.Config", json_pack("[o]", cfg));
  jx_set(v, "IPAM.Options", json_object());
  json_object_set_new(v, "Internal",
                      json_boolean(jx_bool(rec, "Internal", false)));
  json_object_set_new(v, "Options",
                      json_deep_copy(json_object_get(rec, "Options")));
  json_object_set_new(v, "Labels",
                      json_deep_copy(json_object_get(rec, "Labels")));
  if (full)
    json_object_set_new(v, "Containers",
                        containers_on(ls, jx_str(rec, "Id", ""), false));
  return v;
}

/* Local networks present on this node, new array of views. */
static json_t *local_list(struct shoald *d, const struct local_state *ls,
                          bool full) {
  json_t *out = json_array();
  size_t i;
  json_t *v;
  json_array_foreach(local_networks(d), i, v) {
    json_t *p = present_local(d, v, ls, full);
    if (p)
      json_array_append_new(out, p);
  }
  if (d->overlay) {
    cleanup_json json_t *recs = overlay_nets(d->overlay);
    const char *id;
    json_object_foreach(recs, id, v)
        json_array_append_new(out, user_bridge_view(v, ls, full));
  }
  return out;
}

/* A user bridge network, not one of the node's own. */
static bool is_user_bridge(const json_t *view) {
  return strcmp(jx_str(view, "Scope", ""), "local") == 0 &&
         strcmp(jx_str(view, "Driver", ""), "bridge") == 0 &&
         !networks_is_predefined(jx_str(view, "Name", "")) &&
         strcmp(jx_str(view, "Name", ""), "docker_gwbridge") != 0;
}

/* ---- list ---- */

static const char *const network_filters[] = {
    "dangling", "driver", "id", "label", "name", "scope", "type", NULL};

static bool in_use(struct shoald *d, const json_t *view) {
  const char *name = jx_str(view, "Name", "");
  if (networks_is_predefined(name))
    return true;
  if (strcmp(name, "docker_gwbridge") == 0 && d->overlay) {
    /* in use while an endpoint (a task, the ingress sandbox) is on it */
    cleanup_json json_t *ov = overlay_view(d->overlay);
    return json_object_size(
               jx_get(json_object_get(ov, "Networks"), "docker_gwbridge")) > 0;
  }
  if (is_user_bridge(view)) {
    struct local_state ls;
    local_state_load(d, &ls);
    cleanup_json json_t *on = containers_on(&ls, jx_str(view, "Id", ""), false);
    local_state_free(&ls);
    return json_object_size(on) > 0;
  }
  if (!d->mgr || strcmp(jx_str(view, "Scope", ""), "swarm") != 0)
    return false;
  struct store *st = manager_store(d->mgr);
  return networks_in_use(st,
                         store_get(st, STORE_NETWORK, jx_str(view, "Id", "")));
}

static bool network_matches(struct shoald *d, const struct filters *f,
                            const json_t *v, int dangling) {
  const char *name = jx_str(v, "Name", "");
  if (!filters_match(f, "driver", jx_str(v, "Driver", "")) ||
      !filters_match_regex(f, "name", name) ||
      !filters_match_regex(f, "id", jx_str(v, "Id", "")) ||
      !filters_match_labels(f, "label", json_object_get(v, "Labels")) ||
      !filters_match(f, "scope", jx_str(v, "Scope", "")))
    return false;
  json_t *types = json_object_get(f->map, "type");
  if (json_array_size(types) > 0) {
    /* moby looks at the first value only. */
    bool builtin =
        strcmp(json_string_value(json_array_get(types, 0)), "builtin") == 0;
    if (builtin != networks_is_predefined(name))
      return false;
  }
  if (dangling >= 0 && in_use(d, v) == (dangling == 1))
    return false;
  return true;
}

static void list(struct api_call *c) {
  sh_err err = {0};
  cleanup_free char *raw = http_req_query(c->req, "filters");
  struct filters f = {0};
  if (filters_parse(raw, network_filters, &f, &err) < 0) {
    filters_free(&f);
    return api_reply_err(c->req, &err);
  }
  int dangling = -1;
  json_t *dv = json_object_get(f.map, "dangling");
  size_t i;
  json_t *v;
  if (json_array_size(dv) > 1) {
    sh_error(&err, 400, "got more than one value for filter key \"dangling\"");
  } else if (json_array_size(dv) == 1) {
    const char *s = json_string_value(json_array_get(dv, 0));
    if (strcmp(s, "1") == 0 || strcmp(s, "true") == 0)
      dangling = 1;
    else if (strcmp(s, "0") == 0 || strcmp(s, "false") == 0)
      dangling = 0;
    else
      sh_error(&err, 400,
               "invalid value for filter 'dangling', must be \"true\" (or "
               "\"1\"), or \"false\" (or \"0\")");
  }
  json_array_foreach(json_object_get(f.map, "type"), i, v) {
    const char *t = json_string_value(v);
    if (strcmp(t, "builtin") && strcmp(t, "custom"))
      sh_error(&err, 400, "invalid filter: 'type'='%s'", t);
  }
  if (err.status) {
    filters_free(&f);
    return api_reply_err(c->req, &err);
  }
  struct local_state ls;
  local_state_load(c->d, &ls);
  json_t *out = swarm_networks(c->d, &ls, false, false);
  json_t *locals = local_list(c->d, &ls, false);
  json_array_extend(out, locals);
  json_decref(locals);
  local_state_free(&ls);
  json_t *res = json_array();
  json_array_foreach(out, i, v) {
    if (network_matches(c->d, &f, v, dangling))
      json_array_append(res, v);
  }
  json_decref(out);
  filters_free(&f);
  api_reply_json(c->req, 200, res);
}

/* ---- inspect / find: local first, then the swarm's (moby's
 * findUniqueNetwork): full ID, then exact name, then a unique ID prefix. */

static json_t *find(struct shoald *d, const char *ref, const char *scope,
                    sh_err *err) {
  json_t *all = json_array();
  size_t i;
  json_t *v;
  struct local_state ls;
  local_state_load(d, &ls);
  if (!*scope || strcmp(scope, "local") == 0) {
    json_t *locals = local_list(d, &ls, true);
    json_array_extend(all, locals);
    json_decref(locals);
  }
  if (!*scope || strcmp(scope, "swarm") == 0) {
    /* The CLI resolves `--network host` with scope swarm. */
    json_t *sw = swarm_networks(d, &ls, true, strcmp(scope, "swarm") == 0);
    json_array_extend(all, sw);
    json_decref(sw);
  }
  local_state_free(&ls);
  json_t *found = NULL, *by_name = NULL, *by_prefix = NULL;
  int names = 0, prefixes = 0;
  json_array_foreach(all, i, v) {
    const char *id = jx_str(v, "Id", "");
    if (strcmp(id, ref) == 0) {
      found = v;
      break;
    }
    if (strcmp(jx_str(v, "Name", ""), ref) == 0) {
      by_name = v;
      names++;
    }
    if (*ref && str_has_prefix(id, ref)) {
      by_prefix = v;
      prefixes++;
    }
  }
  if (!found && names > 1)
    sh_error(err, 400,
             "network %s is ambiguous (%d matches found based on name)", ref,
             names);
  else if (!found && names == 1)
    found = by_name;
  else if (!found && prefixes > 1)
    sh_error(err, 400,
             "network %s is ambiguous (%d matches found based on ID prefix)",
             ref, prefixes);
  else if (!found && prefixes == 1)
    found = by_prefix;
  else if (!found)
    sh_error(err, 404, "network %s not found", ref);
  json_incref(found);
  json_decref(all);
  return found;
}

/* ---- create / remove ---- */

struct create_ctx {
  struct http_req *req;
  char id[ID_LEN + 1];
};

static void created(void *ud, int status, const sh_err *err) {
  struct create_ctx *c = ud;
  if (status < 0)
    api_reply_err(c->req, err);
  else
    api_reply_json(c->req, 201,
                   json_pack("{s:s, s:s}", "Id", c->id, "Warning", ""));
  free(c);
}

/* A user bridge network: made by the data plane on a work thread. */
struct bridge_job {
  struct shoald *d;
  struct http_req *req;
  json_t *body;
  char id[65];
  char name[256];
  int rc;
  sh_err err;
};

static void bridge_job_free(struct bridge_job *j) {
  json_decref(j->body);
  free(j);
}

static void net_event(struct shoald *d, const char *action, const char *id,
                      const char *name) {
  events_publish(d->events, "network", action, id,
                 json_pack("{s:s, s:s}", "name", name, "type", "bridge"),
                 "local");
}

static void bridge_create_work(void *ud) {
  struct bridge_job *j = ud;
  char ts[64];
  clock_format_rfc3339(clock_wall_ns(), ts, sizeof ts);
  j->rc = overlay_net_create(j->d->overlay, j->body, j->id, ts, &j->err);
}

/* create (201 {Id}) or remove (204), with its event. */
static void bridge_job_done(void *ud, int cancelled) {
  struct bridge_job *j = ud;
  bool create = j->body != NULL;
  if (cancelled)
    sh_error(&j->err, 503, "shutting down");
  if (cancelled || j->rc < 0) {
    api_reply_err(j->req, &j->err);
  } else {
    net_event(j->d, create ? "create" : "destroy", j->id, j->name);
    if (create)
      api_reply_json(j->req, 201,
                     json_pack("{s:s, s:s}", "Id", j->id, "Warning", ""));
    else
      http_respond(j->req, 204, NULL, "", 0, NULL);
  }
  bridge_job_free(j);
}

static void create_bridge(struct api_call *c, json_t *body) {
  sh_err err = {0};
  const char *name = jx_str(body, "Name", "");
  if (!c->d->overlay) {
    sh_error(&err, 500,
             "bridge networks are not available on this node (no network data "
             "plane)");
    return api_reply_err(c->req, &err);
  }
  /* dockerd: one name per network among the local and the swarm's. */
  cleanup_json json_t *same = find(c->d, name, "", &err);
  if (same && strcmp(jx_str(same, "Name", ""), name) == 0) {
    sh_error(&err, 409, "network with name %s already exists", name);
    return api_reply_err(c->req, &err);
  }
  struct bridge_job *j = xcalloc(1, sizeof *j);
  j->d = c->d;
  j->req = c->req;
  j->body = json_incref(body);
  id_new_hex(j->id);
  snprintf(j->name, sizeof j->name, "%s", name);
  workq_submit(c->d->work, bridge_create_work, bridge_job_done, j);
}

static void create(struct api_call *c) {
  sh_err err = {0};
  cleanup_json json_t *body = NULL;
  if (api_body(c->req, &body, &err) < 0)
    return api_reply_err(c->req, &err);
  const char *name = jx_str(body, "Name", "");
  const char *driver = jx_str(body, "Driver", "");
  if (!*name) {
    sh_error(&err, 400, "network name cannot be empty");
    return api_reply_err(c->req, &err);
  }
  if (networks_is_predefined(name)) {
    sh_error(&err, 403, "operation is not permitted on predefined %s network ",
             name);
    return api_reply_err(c->req, &err);
  }
  if (!*driver || strcmp(driver, "bridge") == 0)
    return create_bridge(c, body);
  if (!c->d->mgr) {
    /* dockerd's order without a cluster store: predefined names, then
     * overlay needs a manager. */
    if (networks_is_predefined(name))
      sh_error(&err, 403,
               "operation is not permitted on predefined %s network ", name);
    else if (strcmp(driver, "overlay") == 0)
      sh_error(&err, 403, NOT_MANAGER_OVERLAY);
    else if (networks_check_driver(driver, &err) == 0)
      sh_error(&err, 403, NOT_MANAGER_OVERLAY);
    return api_reply_err(c->req, &err);
  }
  struct create_ctx *ctx = xcalloc(1, sizeof *ctx);
  ctx->req = c->req;
  if (manager_create_network(c->d->mgr, body, ctx->id, created, ctx, &err) <
      0) {
    free(ctx);
    api_reply_err(c->req, &err);
  }
}

static void removed(void *ud, int status, const sh_err *err) {
  struct http_req *req = ud;
  if (status < 0)
    return api_reply_err(req, err);
  http_respond(req, 204, NULL, "", 0, NULL);
}

static void bridge_remove_work(void *ud) {
  struct bridge_job *j = ud;
  j->rc = overlay_net_remove(j->d->overlay, j->id, &j->err);
}

/* ---- prune: the user bridge networks no container is on ---- */

struct prune_job {
  struct shoald *d;
  struct http_req *req;
  json_t *ids;     /* [[id, name]] to remove */
  json_t *deleted; /* names removed */
};

static void prune_work(void *ud) {
  struct prune_job *j = ud;
  size_t i;
  json_t *v;
  json_array_foreach(j->ids, i, v) {
    if (overlay_net_remove(j->d->overlay,
                           json_string_value(json_array_get(v, 0)), NULL) == 0)
      json_array_append(j->deleted, json_array_get(v, 1));
  }
}

static void prune_done(void *ud, int cancelled) {
  struct prune_job *j = ud;
  size_t i;
  json_t *v;
  json_array_foreach(j->ids, i, v) {
    const char *name = json_string_value(json_array_get(v, 1));
    bool gone = false;
    size_t k;
    json_t *d;
    json_array_foreach(j->deleted, k, d) gone |=
        strcmp(json_string_value(d), name) == 0;
    if (gone)
      net_event(j->d, "destroy", json_string_value(json_array_get(v, 0)), name);
  }
  if (json_array_size(j->deleted) == 0) {
    json_decref(j->deleted);
    j->deleted = json_null();
  }
  json_t *d = j->deleted;
  j->deleted = NULL;
  api_reply_json(j->req, 200, json_pack("{s:o}", "NetworksDeleted", d));
  json_decref(j->ids);
  free(j);
}

static void prune(struct api_call *c, const struct filters *f) {
  struct local_state ls;
  local_state_load(c->d, &ls);
  cleanup_json json_t *views = local_list(c->d, &ls, true);
  local_state_free(&ls);
  struct prune_job *j = xcalloc(1, sizeof *j);
  j->d = c->d;
  j->req = c->req;
  j->ids = json_array();
  j->deleted = json_array();
  size_t i;
  json_t *v;
  json_array_foreach(views, i, v) {
    if (!is_user_bridge(v) ||
        json_object_size(json_object_get(v, "Containers")) ||
        !filters_match_label_pair(f, json_object_get(v, "Labels")))
      continue;
    json_array_append_new(j->ids, json_pack("[s, s]", jx_str(v, "Id", ""),
                                            jx_str(v, "Name", "")));
  }
  workq_submit(c->d->work, prune_work, prune_done, j);
}

static void remove_network(struct api_call *c, const char *ref) {
  sh_err err = {0};
  cleanup_json json_t *n = find(c->d, ref, "", &err);
  if (!n)
    return api_reply_err(c->req, &err);
  if (is_user_bridge(n)) {
    struct bridge_job *j = xcalloc(1, sizeof *j);
    j->d = c->d;
    j->req = c->req;
    snprintf(j->id, sizeof j->id, "%s", jx_str(n, "Id", ""));
    snprintf(j->name, sizeof j->name, "%s", jx_str(n, "Name", ""));
    workq_submit(c->d->work, bridge_remove_work, bridge_job_done, j);
    return;
  }
  if (strcmp(jx_str(n, "Scope", ""), "local") == 0) {
    sh_error(&err, 403, "%s is a pre-defined network and cannot be removed",
             jx_str(n, "Name", ""));
    return api_reply_err(c->req, &err);
  }
  if (manager_remove_network(c->d->mgr, jx_str(n, "Id", ""), removed, c->req,
                             &err) < 0)
    api_reply_err(c->req, &err);
}

/* ---- connect / disconnect (standalone containers, bridge networks) ---- */

static void connected(void *ud, int rc, const char *id, const sh_err *err) {
  struct http_req *req = ud;
  if (rc < 0)
    return api_reply_err(req, err);
  http_respond(req, 200, NULL, "", 0, NULL);
}

static void connect_network(struct api_call *c, const char *ref, bool connect) {
  sh_err err = {0};
  cleanup_json json_t *body = NULL;
  if (api_body(c->req, &body, &err) < 0)
    return api_reply_err(c->req, &err);
  const char *ctr = jx_str(body, "Container", "");
  if (!*ctr) {
    sh_error(&err, 400, "invalid request: no container given");
    return api_reply_err(c->req, &err);
  }
  cleanup_json json_t *n = find(c->d, ref, "", &err);
  if (!n)
    return api_reply_err(c->req, &err);
  const char *name = jx_str(n, "Name", "");
  if (strcmp(jx_str(n, "Scope", ""), "swarm") == 0) {
    sh_error(&err, 501,
             "docker network %s of a swarm network (%s) is not supported by "
             "shoal yet: give it at docker run (--network)",
             connect ? "connect" : "disconnect", name);
    return api_reply_err(c->req, &err);
  }
  if (!strcmp(name, "host") || !strcmp(name, "none")) {
    sh_error(&err, 400,
             strcmp(name, "host") == 0
                 ? "container cannot be disconnected from host network or "
                   "connected to host network"
                 : "container cannot be connected to multiple networks with "
                   "one of the networks in private (none) mode");
    return api_reply_err(c->req, &err);
  }
  if (strcmp(name, "bridge") != 0 && !is_user_bridge(n)) {
    sh_error(&err, 403, "operation not permitted on network %s", name);
    return api_reply_err(c->req, &err);
  }
  if (!c->d->standalone) {
    sh_error(&err, 500, "no container executor on this node");
    return api_reply_err(c->req, &err);
  }
  standalone_network(c->d->standalone, connect, ctr,
                     strcmp(name, "bridge") == 0 ? "" : jx_str(n, "Id", ""),
                     name, json_object_get(body, "EndpointConfig"), connected,
                     c->req);
}

bool api_networks(struct api_call *c) {
  const char *p = c->path;
  if (strcmp(p, "/networks") != 0 && !str_has_prefix(p, "/networks/"))
    return false;
  const char *m = c->req->method;
  sh_err err = {0};
  if (strcmp(p, "/networks") == 0) {
    if (strcmp(m, "GET") != 0)
      return false;
    list(c);
    return true;
  }
  if (strcmp(p, "/networks/create") == 0) {
    if (strcmp(m, "POST") != 0)
      return false;
    create(c);
    return true;
  }
  if (strcmp(p, "/networks/prune") == 0) {
    if (strcmp(m, "POST") != 0)
      return false;
    static const char *const prune_filters[] = {"label", "label!", "until",
                                                NULL};
    cleanup_free char *raw = http_req_query(c->req, "filters");
    struct filters f = {0};
    if (filters_parse(raw, prune_filters, &f, &err) < 0)
      api_reply_err(c->req, &err);
    else if (json_object_get(f.map, "until"))
      api_reply_err(c->req, (sh_error(&err, 501,
                                      "network prune --filter until is not "
                                      "supported by shoal yet"),
                             &err));
    else if (!c->d->overlay)
      api_reply_json(c->req, 200, json_pack("{s:n}", "NetworksDeleted"));
    else
      prune(c, &f);
    filters_free(&f);
    return true;
  }
  cleanup_free char *ref = xstrdup(p + strlen("/networks/"));
  char *slash = strchr(ref, '/');
  if (slash) {
    *slash = '\0';
    if (strcmp(m, "POST") != 0 || (strcmp(slash + 1, "connect") != 0 &&
                                   strcmp(slash + 1, "disconnect") != 0))
      return false;
    connect_network(c, ref, strcmp(slash + 1, "connect") == 0);
    return true;
  }
  if (!*ref)
    return false;
  if (strcmp(m, "GET") == 0) {
    cleanup_free char *scope = http_req_query(c->req, "scope");
    json_t *n = find(c->d, ref, scope ? scope : "", &err);
    if (!n)
      api_reply_err(c->req, &err);
    else
      api_reply_json(c->req, 200, n);
    return true;
  }
  if (strcmp(m, "DELETE") == 0) {
    remove_network(c, ref);
    return true;
  }
  return false;
}
