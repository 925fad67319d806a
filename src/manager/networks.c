/* Swarm networks: create checks and allocation, removal rules, views. */
#include "manager/networks.h"

#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "ipam/ipam.h"
#include "manager/internal.h"
#include "manager/orchtask.h"
#include "store/store.h"

#include <stdio.h>

bool networks_is_predefined(const char *name) {
  return strcmp(name, "bridge") == 0 || strcmp(name, "host") == 0 ||
         strcmp(name, "none") == 0 || strcmp(name, "default") == 0;
}

static json_t *ipam_options(const char *subnet, const char *range,
                            const char *gateway) {
  json_t *cfg = json_object();
  if (subnet)
    json_object_set_new(cfg, "Subnet", json_string(subnet));
  if (range && *range)
    json_object_set_new(cfg, "Range", json_string(range));
  if (gateway)
    json_object_set_new(cfg, "Gateway", json_string(gateway));
  return json_pack("{s:{s:s}, s:[o]}", "Driver", "Name", "default", "Configs",
                   cfg);
}

static json_t *driver_state(unsigned vni) {
  char v[16];
  snprintf(v, sizeof v, "%u", vni);
  return json_pack("{s:s, s:{s:s}}", "Name", "overlay", "Options",
                   NETWORKS_VXLAN_OPT, v);
}

json_t *networks_ingress(const char *id) {
  return json_pack(
      "{s:s, s:{s:s, s:{}, s:{s:s, s:{}}, s:b, s:b, s:b, s:b, s:o, s:s}, "
      "s:o, s:o}",
      "ID", id, "Spec", "Name", "ingress", "Labels", "DriverConfiguration",
      "Name", "overlay", "Options", "IPv6Enabled", 0, "Internal", 0,
      "Attachable", 0, "Ingress", 1, "IPAMOptions",
      ipam_options(NETWORKS_INGRESS_SUBNET, NULL, NETWORKS_INGRESS_GATEWAY),
      "Scope", "swarm", "DriverState", driver_state(NETWORKS_VXLAN_FIRST),
      "IPAMOptions",
      ipam_options(NETWORKS_INGRESS_SUBNET, NULL, NETWORKS_INGRESS_GATEWAY));
}

json_t *networks_predefined_host(const char *id) {
  return json_pack("{s:s, s:{s:s, s:{s:s}, s:{s:s}, s:s}, s:{s:s}}", "ID", id,
                   "Spec", "Name", "host", "Labels",
                   "com.docker.swarm.predefined", "true", "DriverConfiguration",
                   "Name", "host", "Scope", "swarm", "DriverState", "Name",
                   "host");
}

bool networks_is_hidden(const json_t *net) {
  return strcmp(jx_str(json_object_get(jx_get(net, "Spec.Labels"),
                                       "com.docker.swarm.predefined"),
                       "", ""),
                "true") == 0;
}

bool networks_is_host(const json_t *net) {
  return strcmp(jx_str(net, "DriverState.Name", ""), "host") == 0;
}

/* ---- what is taken: subnets and VXLAN IDs of every network ---- */

struct taken {
  struct ipam_prefix *subnets;
  size_t n, cap;
  unsigned *vnis;
  size_t nv, capv;
};

static void taken_add_network(struct taken *t, const json_t *net) {
  size_t i;
  json_t *c;
  json_array_foreach(jx_get(net, "IPAMOptions.Configs"), i, c) {
    struct ipam_prefix p;
    if (ipam_parse_cidr(jx_str(c, "Subnet", ""), &p, NULL, NULL) < 0)
      continue;
    if (t->n == t->cap)
      t->subnets =
          xrealloc(t->subnets, (t->cap = t->cap * 2 + 8) * sizeof *t->subnets);
    t->subnets[t->n++] = p;
  }
  const char *v = jx_str(
      json_object_get(jx_get(net, "DriverState.Options"), NETWORKS_VXLAN_OPT),
      "", NULL);
  if (v && *v) {
    if (t->nv == t->capv)
      t->vnis =
          xrealloc(t->vnis, (t->capv = t->capv * 2 + 8) * sizeof *t->vnis);
    t->vnis[t->nv++] = (unsigned)strtoul(v, NULL, 10);
  }
}

static void taken_collect(struct taken *t, struct store *s,
                          const json_t *pending) {
  json_t *nets = store_list(s, STORE_NETWORK);
  size_t i;
  json_t *n;
  json_array_foreach(nets, i, n) taken_add_network(t, n);
  json_decref(nets);
  json_array_foreach(pending, i, n) taken_add_network(t, n);
}

static void taken_free(struct taken *t) {
  free(t->subnets);
  free(t->vnis);
}

static unsigned free_vni(const struct taken *t) {
  for (unsigned v = NETWORKS_VXLAN_FIRST;; v++) {
    bool used = false;
    for (size_t i = 0; i < t->nv && !used; i++)
      used = t->vnis[i] == v;
    if (!used)
      return v;
  }
}

/* ---- create ---- */

/* Driver options: each is applied or refused, never stored and ignored.
 * The VXLAN ID asked for is returned in *vni (0 when none). */
static int check_options(const json_t *opts, const struct taken *t,
                         unsigned *vni, sh_err *err) {
  *vni = 0;
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)opts, k, v) {
    const char *s = json_string_value(v);
    char *end = NULL;
    if (strcmp(k, "com.docker.network.driver.mtu") == 0) {
      unsigned long m = strtoul(s, &end, 10);
      if (!*s || *end || m < 68 || m > 65535)
        return sh_error(err, 400,
                        "invalid MTU %s: it must be a number from 68 to 65535",
                        s);
    } else if (strcmp(k, NETWORKS_VXLAN_OPT) == 0) {
      unsigned long n = strtoul(s, &end, 10);
      if (*end == ',')
        return sh_error(err, 501,
                        "more than one VXLAN ID per network is not supported "
                        "by shoal yet");
      if (!*s || *end || n == 0 || n > 0xffffff)
        return sh_error(err, 400, "invalid VXLAN ID %s", s);
      for (size_t i = 0; i < t->nv; i++)
        if (t->vnis[i] == n)
          return sh_error(err, 403, "VXLAN ID %lu is already in use", n);
      *vni = (unsigned)n;
    } else if (strcmp(k, "encrypted") == 0) {
      return sh_error(err, 501,
                      "encrypted overlay networks (--opt encrypted) are not "
                      "supported by shoal yet");
    } else {
      return sh_error(err, 501,
                      "network option \"%s\" is not supported by shoal", k);
    }
  }
  return 0;
}

/* dockerd's ValidateIPAM (api/types/network): every problem of every
 * config, joined as Go's errors.Join prints them. */
static int validate_ipam(const json_t *configs, sh_err *err) {
  cleanup_json json_t *errs = json_array();
  size_t i;
  json_t *c;
#define ADD(...) json_array_append_new(errs, json_sprintf(__VA_ARGS__))
  json_array_foreach(configs, i, c) {
    const char *sub = jx_str(c, "Subnet", "");
    struct ipam_prefix p;
    uint32_t host;
    if (ipam_parse_cidr(sub, &p, &host, NULL) < 0) {
      ADD("invalid subnet %s: invalid CIDR block notation", sub);
      continue;
    }
    char b[20];
    if (host != p.addr)
      ADD("invalid subnet %s: it should be %s", sub, ipam_prefix_str(p, b));
    const char *range = jx_str(c, "IPRange", "");
    if (*range) {
      struct ipam_prefix r;
      uint32_t rh;
      if (ipam_parse_cidr(range, &r, &rh, NULL) < 0) {
        ADD("invalid ip-range %s: invalid CIDR block notation", range);
      } else {
        if (r.len < p.len)
          ADD("invalid ip-range %s: CIDR block is bigger than its parent "
              "subnet %s",
              range, ipam_prefix_str(p, b));
        if (rh != r.addr)
          ADD("invalid ip-range %s: it should be %s", range,
              ipam_prefix_str(r, b));
        if (!ipam_overlaps(p, r))
          ADD("invalid ip-range %s: parent subnet %s doesn't contain "
              "ip-range",
              range, ipam_prefix_str(p, b));
      }
    }
    const char *gw = jx_str(c, "Gateway", "");
    uint32_t g;
    if (*gw && ipam_parse_ip(gw, &g, NULL) < 0)
      ADD("invalid gateway %s: invalid address", gw);
    else if (*gw && !ipam_contains(p, g))
      ADD("invalid gateway %s: parent subnet %s doesn't contain this address",
          gw, ipam_prefix_str(p, b));
  }
#undef ADD
  size_t n = json_array_size(errs);
  if (n == 0)
    return 0;
  /* Go's joined errors: one alone as it is, several as a "* " list. */
  sh_buf msg = {0};
  json_array_foreach(errs, i, c) buf_printf(
      &msg, "%s%s", n > 1 ? (i ? "\n* " : "* ") : "", json_string_value(c));
  sh_error(err, 400, "invalid network config:\n%s", msg.data);
  buf_free(&msg);
  return -1;
}

static bool str_map_ok(const json_t *v) {
  if (!v || json_is_null(v))
    return true;
  if (!json_is_object(v))
    return false;
  const char *k;
  json_t *x;
  json_object_foreach((json_t *)v, k, x) if (!json_is_string(x)) return false;
  return true;
}

int networks_check_driver(const char *driver, sh_err *err) {
  if (!*driver)
    driver = "bridge"; /* dockerd's default driver */
  if (strcmp(driver, "overlay") == 0)
    return 0;
  static const char *const known[] = {"bridge",  "host",   "null",
                                      "macvlan", "ipvlan", NULL};
  for (const char *const *k = known; *k; k++)
    if (strcmp(*k, driver) == 0)
      return sh_error(err, 501,
                      "the %s network driver is not supported by shoal yet: "
                      "create an overlay network (--driver overlay)",
                      driver);
  return sh_error(err, 404, "plugin \"%s\" not found", driver);
}

json_t *networks_create(struct store *s, const json_t *req, const char *id,
                        const json_t *pending, sh_err *err) {
  const char *name = jx_str(req, "Name", "");
  const char *driver = jx_str(req, "Driver", "");
  /* dockerd: names taken in the swarm first, then predefined names. */
  json_t *nets = store_list(s, STORE_NETWORK);
  size_t i;
  json_t *n;
  bool taken_name = false;
  json_array_foreach(nets, i, n) taken_name |=
      !networks_is_hidden(n) && strcmp(jx_str(n, "Spec.Name", ""), name) == 0;
  json_array_foreach(pending, i, n) taken_name |=
      strcmp(jx_str(n, "Spec.Name", ""), name) == 0;
  json_decref(nets);
  if (taken_name) {
    sh_error(err, 409, "network with name %s already exists", name);
    return NULL;
  }
  if (networks_is_predefined(name)) {
    sh_error(err, 403, "operation is not permitted on predefined %s network ",
             name);
    return NULL;
  }
  if (networks_check_driver(driver, err) < 0)
    return NULL;
  if (jx_bool(req, "EnableIPv6", false)) {
    sh_error(err, 501, "IPv6 networks (--ipv6) are not supported by shoal yet");
    return NULL;
  }
  if (jx_bool(req, "ConfigOnly", false) ||
      jx_str(req, "ConfigFrom.Network", "")[0]) {
    sh_error(err, 501,
             "config-only networks (--config-only, --config-from) are not "
             "supported by shoal yet");
    return NULL;
  }
  if (!str_map_ok(json_object_get(req, "Options")) ||
      !str_map_ok(json_object_get(req, "Labels"))) {
    sh_error(err, 400, "Options and Labels must map strings to strings");
    return NULL;
  }
  const json_t *ipam = json_object_get(req, "IPAM");
  const json_t *configs = jx_get(ipam, "Config");
  if (configs && !json_is_array(configs) && !json_is_null(configs)) {
    sh_error(err, 400, "IPAM.Config must be an array");
    return NULL;
  }
  if (validate_ipam(configs, err) < 0)
    return NULL;
  const char *ipam_driver = jx_str(ipam, "Driver", "");
  if (*ipam_driver && strcmp(ipam_driver, "default") != 0) {
    sh_error(err, 501, "IPAM driver \"%s\" is not supported by shoal yet",
             ipam_driver);
    return NULL;
  }
  if (json_array_size(configs) > 1) {
    sh_error(err, 501,
             "more than one subnet per network is not supported by shoal yet");
    return NULL;
  }
  /* swarmkit's validateNetworkSpec */
  if (!*name) {
    rpc_error(err, 400, "meta: name must be provided");
    return NULL;
  }
  if (!valid_dns_name(name)) {
    rpc_error(err, 400, "name must be valid as a DNS name component");
    return NULL;
  }
  if (strlen(name) > 63) {
    rpc_error(err, 400, "name must be 63 characters or fewer");
    return NULL;
  }
  bool ingress = jx_bool(req, "Ingress", false);
  if (ingress && jx_bool(req, "Attachable", false)) {
    rpc_error(err, 400, "ingress network cannot be attachable");
    return NULL;
  }
  if (json_object_get(json_object_get(req, "Labels"),
                      "com.docker.swarm.predefined")) {
    rpc_error(err, 403,
              "label com.docker.swarm.predefined is for internally created "
              "predefined networks and cannot be applied by users");
    return NULL;
  }
  if (ingress) {
    nets = store_list(s, STORE_NETWORK);
    json_array_foreach(nets, i, n) {
      if (jx_bool(n, "Spec.Ingress", false)) {
        char msg[128];
        snprintf(msg, sizeof msg, "ingress network (%s) is already present",
                 jx_str(n, "ID", ""));
        json_decref(nets);
        rpc_error(err, 409, msg);
        return NULL;
      }
    }
    json_decref(nets);
  }

  /* Allocation: the subnet asked for, or the first free one of the pools;
   * the gateway asked for, or the subnet's first address. */
  struct taken t = {0};
  taken_collect(&t, s, pending);
  const json_t *cfg = json_array_get(configs, 0);
  struct ipam_prefix sub;
  char subnet_s[20], gw_s[20];
  if (cfg && *jx_str(cfg, "Subnet", "")) {
    ipam_parse_cidr(jx_str(cfg, "Subnet", ""), &sub, NULL, NULL);
    for (size_t k = 0; k < t.n; k++) {
      if (ipam_overlaps(sub, t.subnets[k])) {
        taken_free(&t);
        sh_error(err, 403,
                 "invalid pool request: Pool overlaps with other one on this "
                 "address space");
        return NULL;
      }
    }
  } else {
    json_t *cl = store_cluster(s);
    const json_t *pools = json_object_get(cl, "DefaultAddrPool");
    size_t np = json_array_size(pools);
    struct ipam_prefix *pp = xcalloc(np ? np : 1, sizeof *pp);
    size_t k = 0;
    json_array_foreach(pools, i,
                       n) if (ipam_parse_cidr(json_string_value(n), &pp[k],
                                              NULL, NULL) == 0) k++;
    if (k == 0)
      ipam_parse_cidr("10.0.0.0/8", &pp[k++], NULL, NULL);
    unsigned size = (unsigned)jx_int(cl, "SubnetSize", 24);
    int rc = ipam_carve(pp, k, size ? size : 24, t.subnets, t.n, &sub, err);
    free(pp);
    if (rc < 0) {
      taken_free(&t);
      return NULL;
    }
  }
  ipam_prefix_str(sub, subnet_s);
  const char *gw = cfg ? jx_str(cfg, "Gateway", "") : "";
  if (*gw)
    snprintf(gw_s, sizeof gw_s, "%s", gw);
  else
    ipam_ip_str(sub.addr + 1, gw_s);
  unsigned vni = 0;
  if (check_options(json_object_get(req, "Options"), &t, &vni, err) < 0) {
    taken_free(&t);
    return NULL;
  }
  if (!vni)
    vni = free_vni(&t);
  taken_free(&t);

  json_t *labels = json_object_get(req, "Labels");
  json_t *opts = json_object_get(req, "Options");
  json_t *spec_ipam =
      json_pack("{s:{s:s}, s:[]}", "Driver", "Name", "default", "Configs");
  if (cfg) {
    json_t *c = json_object();
    const char *keys[][2] = {
        {"Subnet", "Subnet"}, {"IPRange", "Range"}, {"Gateway", "Gateway"}};
    for (size_t k = 0; k < 3; k++)
      if (*jx_str(cfg, keys[k][0], ""))
        json_object_set_new(c, keys[k][1],
                            json_string(jx_str(cfg, keys[k][0], "")));
    json_array_append_new(json_object_get(spec_ipam, "Configs"), c);
  }
  return json_pack(
      "{s:s, s:{s:s, s:o, s:{s:s, s:o}, s:b, s:b, s:b, s:b, s:o, s:s}, s:o, "
      "s:o}",
      "ID", id, "Spec", "Name", name, "Labels",
      json_is_object(labels) ? json_incref(labels) : json_object(),
      "DriverConfiguration", "Name", "overlay", "Options",
      json_is_object(opts) ? json_incref(opts) : json_object(), "IPv6Enabled",
      0, "Internal", jx_bool(req, "Internal", false), "Attachable",
      jx_bool(req, "Attachable", false), "Ingress", ingress, "IPAMOptions",
      spec_ipam, "Scope", "swarm", "DriverState", driver_state(vni),
      "IPAMOptions",
      ipam_options(subnet_s, cfg ? jx_str(cfg, "IPRange", "") : NULL, gw_s));
}

/* ---- find, remove ---- */

json_t *networks_find(struct store *s, const char *ref, sh_err *err) {
  json_t *exact = store_get(s, STORE_NETWORK, ref);
  if (exact)
    return exact;
  json_t *nets = store_list(s, STORE_NETWORK);
  json_t *by_name = NULL, *by_prefix = NULL;
  int names = 0, prefixes = 0;
  size_t i;
  json_t *n;
  json_array_foreach(nets, i, n) {
    if (strcmp(jx_str(n, "Spec.Name", ""), ref) == 0) {
      by_name = n;
      names++;
    }
    if (*ref && str_has_prefix(jx_str(n, "ID", ""), ref)) {
      by_prefix = n;
      prefixes++;
    }
  }
  json_decref(nets); /* the store keeps the objects */
  if (names == 1)
    return by_name;
  if (names > 1) {
    sh_error(err, 400,
             "network %s is ambiguous (%d matches found based on name)", ref,
             names);
    return NULL;
  }
  if (prefixes == 1)
    return by_prefix;
  if (prefixes > 1) {
    sh_error(err, 400,
             "network %s is ambiguous (%d matches found based on ID prefix)",
             ref, prefixes);
    return NULL;
  }
  sh_error(err, 404, "network %s not found", ref);
  return NULL;
}

bool networks_publishes_ingress(const json_t *svc) {
  size_t i;
  json_t *p;
  json_array_foreach(jx_get(svc, "Spec.EndpointSpec.Ports"), i, p) {
    const char *mode = jx_str(p, "PublishMode", "ingress");
    if (!*mode || strcmp(mode, "ingress") == 0)
      return true;
  }
  return false;
}

static bool service_uses(const json_t *svc, const char *net_id) {
  return jx_find(jx_get(svc, "Spec.TaskTemplate.Networks"), "Target", net_id) !=
         NULL;
}

bool networks_in_use(struct store *s, const json_t *net) {
  if (!net)
    return false;
  const char *id = jx_str(net, "ID", "");
  bool ingress = jx_bool(net, "Spec.Ingress", false);
  json_t *svcs = store_list(s, STORE_SERVICE);
  size_t i;
  json_t *v;
  bool used = false;
  json_array_foreach(svcs, i, v) used |=
      ingress ? networks_publishes_ingress(v) : service_uses(v, id);
  json_decref(svcs);
  return used;
}

const char *networks_remove(struct store *s, const char *ref, sh_err *err) {
  json_t *net = networks_find(s, ref, err);
  if (!net)
    return NULL;
  const char *id = jx_str(net, "ID", "");
  char msg[256];
  json_t *svcs = store_list(s, STORE_SERVICE);
  size_t i;
  json_t *v;
  bool ingress = jx_bool(net, "Spec.Ingress", false);
  json_array_foreach(svcs, i, v) {
    if (ingress ? networks_publishes_ingress(v) : service_uses(v, id)) {
      if (ingress)
        snprintf(msg, sizeof msg,
                 "ingress network cannot be removed because service %s "
                 "depends on it",
                 jx_str(v, "ID", ""));
      else
        snprintf(msg, sizeof msg, "network %s is in use by service %s", id,
                 jx_str(v, "ID", ""));
      json_decref(svcs);
      rpc_error(err, 412, msg);
      return NULL;
    }
  }
  json_decref(svcs);
  if (ingress)
    return id;
  json_t *tasks = store_list(s, STORE_TASK);
  json_array_foreach(tasks, i, v) {
    if (task_desired(v) > TS_RUNNING || task_state(v) > TS_RUNNING)
      continue;
    size_t k;
    json_t *a;
    json_array_foreach(json_object_get(v, "NetworksAttachments"), k, a) {
      if (strcmp(jx_str(a, "Network.ID", ""), id) == 0) {
        snprintf(msg, sizeof msg, "network %s is in use by task %s", id,
                 jx_str(v, "ID", ""));
        json_decref(tasks);
        rpc_error(err, 412, msg);
        return NULL;
      }
    }
  }
  json_decref(tasks);
  return id;
}

/* ---- view ---- */

json_t *networks_view(const json_t *net) {
  json_t *configs = json_array();
  size_t i;
  json_t *c;
  json_array_foreach(jx_get(net, "IPAMOptions.Configs"), i, c) {
    json_t *o = json_pack("{s:s}", "Subnet", jx_str(c, "Subnet", ""));
    if (*jx_str(c, "Range", ""))
      json_object_set_new(o, "IPRange", json_string(jx_str(c, "Range", "")));
    if (*jx_str(c, "Gateway", ""))
      json_object_set_new(o, "Gateway", json_string(jx_str(c, "Gateway", "")));
    json_array_append_new(configs, o);
  }
  json_t *labels = jx_get(net, "Spec.Labels");
  json_t *opts = jx_get(net, "DriverState.Options");
  return json_pack(
      "{s:s, s:s, s:s, s:s, s:s, s:b, s:{s:s, s:n, s:o}, s:b, s:b, s:b, "
      "s:{s:s}, s:b, s:{}, s:O, s:O}",
      "Name", jx_str(net, "Spec.Name", ""), "Id", jx_str(net, "ID", ""),
      "Created", jx_str(net, "CreatedAt", ""), "Scope", "swarm", "Driver",
      jx_str(net, "DriverState.Name", "overlay"), "EnableIPv6", 0, "IPAM",
      "Driver", "default", "Options", "Config", configs, "Internal",
      jx_bool(net, "Spec.Internal", false), "Attachable",
      jx_bool(net, "Spec.Attachable", false), "Ingress",
      jx_bool(net, "Spec.Ingress", false), "ConfigFrom", "Network", "",
      "ConfigOnly", 0, "Containers", "Options",
      json_is_object(opts) ? opts : json_object(), "Labels",
      json_is_object(labels) ? labels : json_object());
}
