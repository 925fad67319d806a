/* The scheduler (see scheduler.h). Tasks are placed one at a time in store
 * order; after each decision the chosen node's counts, free resources and
 * host ports change, so the next task sees them (this spreads a service's
 * replicas like swarmkit's round over the sorted nodes). */
#include "manager/scheduler.h"

#include "manager/allocator.h"

#include "core/clock.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "manager/constraint.h"
#include "store/store.h"

#include <strings.h>

struct sched_load;

struct ninfo {
  json_t *node; /* borrowed */
  const char *id;
  bool usable;      /* ready, active, with a runtime: read once per run */
  int64_t cpu, mem; /* available */
  int64_t active;   /* tasks desired to run (<= complete) */
  /* Made on the run's first placement on the node (a run looks at every
   * node, and places on few of them when a service scales by one) */
  json_t *by_service; /* service ID -> active tasks placed by this run */
  json_t *ports;      /* "tcp/8080" -> true, placed by this run */
  /* What was there before this run: the node's slot in the load (-1:
   * nothing counted there) and its host ports ("tcp/8080" -> tasks,
   * borrowed, may be NULL). */
  const struct sched_load *load;
  long slot;
  json_t *base_ports;
};

static json_t *host_ports(const json_t *task);

/* Dense slots for string keys (node and service IDs), a freed slot taken
 * again first. */
struct slots {
  json_t *ids; /* key -> slot */
  size_t n;    /* slots ever made */
  size_t *free, nfree, capfree;
};

static long slot_find(const struct slots *sl, const char *id) {
  json_t *k = json_object_get(sl->ids, id);
  return k ? (long)json_integer_value(k) : -1;
}

static size_t slot_take(struct slots *sl, const char *id) {
  size_t k = sl->nfree ? sl->free[--sl->nfree] : sl->n++;
  json_object_set_new(sl->ids, id, json_integer((json_int_t)k));
  return k;
}

static void slot_drop(struct slots *sl, const char *id, size_t k) {
  json_object_del(sl->ids, id);
  if (sl->nfree == sl->capfree) {
    sl->capfree = sl->capfree ? 2 * sl->capfree : 16;
    sl->free = xrealloc(sl->free, sl->capfree * sizeof *sl->free);
  }
  sl->free[sl->nfree++] = k;
}

static void slots_clear(struct slots *sl) {
  json_object_clear(sl->ids);
  sl->n = sl->nfree = 0;
}

/* Grows *arr (of elem-sized items, *cap of them) to hold index k, the new
 * items zeroed. */
static void grow_to(void **arr, size_t *cap, size_t k, size_t elem) {
  if (k < *cap)
    return;
  size_t n = *cap ? *cap : 16;
  while (n <= k)
    n *= 2;
  *arr = xrealloc(*arr, n * elem);
  memset((char *)*arr + *cap * elem, 0, (n - *cap) * elem);
  *cap = n;
}

/* One node's share: the sums over its tasks in (pending, running]. */
struct lnode {
  int64_t tasks; /* counted here: the slot is freed at 0 */
  int64_t cpu, mem;
  int64_t active; /* of them desired at most complete */
  json_t *ports;  /* "tcp/8080" -> tasks, or NULL */
};

/* One service's active tasks on each node, by the node's slot. */
struct lsvc {
  int32_t *cnt;
  size_t len; /* slots cnt covers (0 beyond) */
  int64_t total;
};

/* What a run reads of each node, kept until a node changes: the store's
 * sorted node list and, per node, its usability and resources. Made for
 * every run, it was the sort and six lookups in each of 1,000 cold node
 * objects: 3.6 % of a leader's CPU while 100 services were created. */
struct nstatic {
  const char *id; /* the node object's, which nodes holds */
  bool usable;    /* ready, active, with a runtime */
  int64_t cpu, mem;
};

struct ntable {
  json_t *nodes; /* store_list(STORE_NODE); NULL: to be made */
  struct nstatic *v;
  json_t *by_id; /* node ID -> index in nodes */
};

/* What runs (or is about to) on each node, kept from store changes, so a
 * run costs its pending tasks times the nodes, not a walk of every task.
 * In C arrays, not JSON: a task group's view reads its service's count on
 * every node, and at 1,000 nodes the lookups by service ID in each node's
 * object were most of a scheduler pass (~1 ms a group, 100 groups after
 * 100 nodes went down). */
struct sched_load {
  struct slots node_slots, svc_slots;
  struct lnode *nodes;
  size_t capnodes;
  struct lsvc *svcs;
  size_t capsvcs;
  bool valid;
  struct ntable nt;
  json_t *expected; /* task ID -> the task as proposed (sched_load_expect) */
};

static void ntable_clear(struct ntable *t) {
  json_decref(t->nodes);
  json_decref(t->by_id);
  free(t->v);
  *t = (struct ntable){0};
}

/* A node changed (or the store was restored, n == 0): made again on the
 * next run. */
static void ntable_follow(struct sched_load *l, const struct store_change *ch,
                          size_t n) {
  if (n == 0)
    ntable_clear(&l->nt);
  for (size_t i = 0; i < n && l->nt.nodes; i++) {
    if (ch[i].kind == STORE_NODE)
      ntable_clear(&l->nt);
  }
}

static const struct ntable *ntable_get(struct sched_load *l, struct store *s) {
  struct ntable *t = &l->nt;
  if (t->nodes)
    return t;
  t->nodes = store_list(s, STORE_NODE);
  size_t nn = json_array_size(t->nodes);
  t->v = xcalloc(nn ? nn : 1, sizeof *t->v);
  t->by_id = json_object();
  size_t i;
  json_t *n;
  json_array_foreach(t->nodes, i, n) {
    t->v[i] = (struct nstatic){
        .id = jx_str(n, "ID", ""),
        .usable =
            strcmp(jx_str(n, "Status.State", ""), "ready") == 0 &&
            strcmp(jx_str(n, "Spec.Availability", "active"), "active") == 0 &&
            !*jx_str(n, "Description._RuntimeError", ""), /* a runtime */
        .cpu = jx_int(n, "Description.Resources.NanoCPUs", 0),
        .mem = jx_int(n, "Description.Resources.MemoryBytes", 0),
    };
    json_object_set_new(t->by_id, t->v[i].id, json_integer((json_int_t)i));
  }
  return t;
}

static int32_t lsvc_at(const struct lsvc *ls, long slot) {
  return ls && slot >= 0 && (size_t)slot < ls->len ? ls->cnt[slot] : 0;
}

static const struct lsvc *load_svc(const struct sched_load *l,
                                   const char *sid) {
  long k = l ? slot_find(&l->svc_slots, sid) : -1;
  return k >= 0 ? &l->svcs[k] : NULL;
}

/* Active tasks of sid on the node, before and during this run. */
static int64_t svc_count(const struct ninfo *ni, const char *sid) {
  return jx_int(ni->by_service, sid, 0) +
         lsvc_at(load_svc(ni->load, sid), ni->slot);
}

/* k has no dots (IDs, "tcp/80", the fixed keys): read and changed in place,
 * no path parse and no new integer per change. */
static void add_int(json_t *o, const char *k, int64_t d) {
  json_t *cur = json_object_get(o, k);
  int64_t v = json_integer_value(cur) + d;
  if (v && cur)
    json_integer_set(cur, v);
  else if (v)
    json_object_set_new(o, k, json_integer(v));
  else
    json_object_del(o, k);
}

static bool load_counts(const json_t *t) {
  enum task_state st = task_state(t);
  return st > TS_PENDING && st <= TS_RUNNING;
}

/* One active task more (d 1) or less (-1) of sid on the node in slot. */
static void load_svc_add(struct sched_load *l, const char *sid, size_t slot,
                         int d) {
  long k = slot_find(&l->svc_slots, sid);
  if (k < 0) {
    k = (long)slot_take(&l->svc_slots, sid);
    grow_to((void **)&l->svcs, &l->capsvcs, (size_t)k, sizeof *l->svcs);
  }
  struct lsvc *ls = &l->svcs[k];
  grow_to((void **)&ls->cnt, &ls->len, slot, sizeof *ls->cnt);
  ls->cnt[slot] += d;
  ls->total += d;
  if (ls->total == 0) {
    free(ls->cnt);
    *ls = (struct lsvc){0};
    slot_drop(&l->svc_slots, sid, (size_t)k);
  }
}

/* Adds (sign 1) or takes away (-1) one task's share. */
static void load_task(struct sched_load *l, const json_t *t, int sign) {
  const char *nid = jx_str(t, "NodeID", "");
  if (!*nid || !load_counts(t))
    return;
  long k = slot_find(&l->node_slots, nid);
  if (k < 0) {
    k = (long)slot_take(&l->node_slots, nid);
    grow_to((void **)&l->nodes, &l->capnodes, (size_t)k, sizeof *l->nodes);
  }
  struct lnode *n = &l->nodes[k];
  n->tasks += sign;
  const json_t *res = jx_get(t, "Spec.Resources.Reservations");
  if (res) {
    n->cpu += sign * jx_int(res, "NanoCPUs", 0);
    n->mem += sign * jx_int(res, "MemoryBytes", 0);
  }
  if (jx_get(t, "_EndpointSpec.Ports")) {
    cleanup_json json_t *ports = host_ports(t);
    size_t i;
    json_t *p;
    if (json_array_size(ports) && !n->ports)
      n->ports = json_object();
    json_array_foreach(ports, i, p)
        add_int(n->ports, json_string_value(p), sign);
  }
  if (task_desired(t) <= TS_COMPLETE) {
    n->active += sign;
    load_svc_add(l, jx_str(t, "ServiceID", ""), (size_t)k, sign);
  }
  if (n->tasks == 0) { /* so are its active tasks and each service's */
    json_decref(n->ports);
    *n = (struct lnode){0};
    slot_drop(&l->node_slots, nid, (size_t)k);
  }
}

struct sched_load *sched_load_new(void) {
  struct sched_load *l = xcalloc(1, sizeof *l);
  l->node_slots.ids = json_object();
  l->svc_slots.ids = json_object();
  l->expected = json_object();
  return l;
}

static void load_clear(struct sched_load *l) {
  for (size_t k = 0; k < l->node_slots.n; k++)
    json_decref(l->nodes[k].ports);
  for (size_t k = 0; k < l->svc_slots.n; k++)
    free(l->svcs[k].cnt);
  if (l->capnodes)
    memset(l->nodes, 0, l->capnodes * sizeof *l->nodes);
  if (l->capsvcs)
    memset(l->svcs, 0, l->capsvcs * sizeof *l->svcs);
  slots_clear(&l->node_slots);
  slots_clear(&l->svc_slots);
}

void sched_load_free(struct sched_load *l) {
  if (!l)
    return;
  load_clear(l);
  ntable_clear(&l->nt);
  json_decref(l->node_slots.ids);
  json_decref(l->svc_slots.ids);
  json_decref(l->expected);
  free(l->node_slots.free);
  free(l->svc_slots.free);
  free(l->nodes);
  free(l->svcs);
  free(l);
}

void sched_load_invalidate(struct sched_load *l) {
  l->valid = false;
  load_clear(l);
  ntable_clear(&l->nt);
}

/* Whether two versions of a task add the same to the load: a status
 * report moving it within (pending, running], any change of a task that
 * counts in neither, or a new task applied as its expectation had it.
 * The store's status and patch updates share Spec and _EndpointSpec with
 * the old version, and an applied task its proposal's (the template), so
 * a pointer compare stands for the reservations and ports; the IDs are
 * compared by value (an applied task's are the store's, share_values). */
static bool same_share(const json_t *a, const json_t *b) {
  bool ca = load_counts(a), cb = load_counts(b);
  if (!ca || !cb)
    return !ca && !cb;
  return strcmp(jx_str(a, "NodeID", ""), jx_str(b, "NodeID", "")) == 0 &&
         (task_desired(a) <= TS_COMPLETE) == (task_desired(b) <= TS_COMPLETE) &&
         strcmp(jx_str(a, "ServiceID", ""), jx_str(b, "ServiceID", "")) == 0 &&
         json_object_get(a, "Spec") == json_object_get(b, "Spec") &&
         json_object_get(a, "_EndpointSpec") ==
             json_object_get(b, "_EndpointSpec");
}

/* A new task's apply: an expectation of it gives way to it. Most apply
 * as proposed (the same share): nothing moves in the loads then, and
 * the change is not counted again (*counted). */
static void settle_expected(struct sched_load *l, const struct store_change *ch,
                            size_t n, bool *counted) {
  for (size_t i = 0; i < n && json_object_size(l->expected); i++) {
    if (ch[i].kind != STORE_TASK || ch[i].old_obj || !ch[i].new_obj)
      continue;
    json_t *t = json_object_get(l->expected, ch[i].id);
    if (!t)
      continue;
    if (l->valid && same_share(t, ch[i].new_obj))
      counted[i] = true;
    else if (l->valid)
      load_task(l, t, -1);
    json_object_del(l->expected, ch[i].id);
  }
}

/* The keys load_task and same_share read, of the task as proposed. */
static const char *const expect_keys[] = {
    "NodeID", "Status", "DesiredState", "ServiceID", "Spec", "_EndpointSpec"};

void sched_load_expect(struct sched_load *l, json_t *task) {
  const char *id = jx_str(task, "ID", "");
  if (!*id || !*jx_str(task, "NodeID", ""))
    return;
  sched_load_unexpect(l, id);
  /* A copy of what the load reads: the proposal's object loses its Spec
   * and _EndpointSpec when it names its template
   * (store_tx_name_templates), and what is taken off at the apply must be
   * what was added here, the reservations and host ports too. Not the
   * whole top level: half the keys, and this runs for every task placed. */
  json_t *t = json_object();
  for (size_t i = 0; i < ARRAY_SIZE(expect_keys); i++) {
    json_t *v = json_object_get(task, expect_keys[i]);
    if (v)
      json_object_set_new_nocheck(t, expect_keys[i], json_incref(v));
  }
  if (l->valid)
    load_task(l, t, 1);
  json_object_set_new(l->expected, id, t);
}

void sched_load_unexpect(struct sched_load *l, const char *task_id) {
  json_t *t = json_object_get(l->expected, task_id);
  if (!t)
    return;
  if (l->valid)
    load_task(l, t, -1);
  json_object_del(l->expected, task_id);
}

void sched_load_changes(struct sched_load *l, const struct store_change *ch,
                        size_t n) {
  ntable_follow(l, ch, n);
  cleanup_free bool *counted = xcalloc(n ? n : 1, sizeof *counted);
  settle_expected(l, ch, n, counted);
  if (n == 0) /* a restore */
    sched_load_invalidate(l);
  for (size_t i = 0; i < n && l->valid; i++) {
    if (ch[i].kind != STORE_TASK || counted[i])
      continue;
    /* A status report's version differs only in its Status: whether it
     * counts is all that can move. */
    if (ch[i].old_obj && ch[i].new_obj &&
        (ch[i].status_only
             ? load_counts(ch[i].old_obj) == load_counts(ch[i].new_obj)
             : same_share(ch[i].old_obj, ch[i].new_obj)))
      continue;
    if (ch[i].old_obj)
      load_task(l, ch[i].old_obj, -1);
    if (ch[i].new_obj)
      load_task(l, ch[i].new_obj, 1);
  }
}

static void load_each(json_t *t, void *ud) {
  load_task(ud, t, 1);
}

/* From the store: one walk of the NodeID index (no sort). */
static void load_build(struct sched_load *l, struct store *s) {
  load_clear(l);
  cleanup_json json_t *keys = store_index_keys(s, STORE_TASKS_BY_NODE);
  size_t i;
  json_t *k;
  json_array_foreach(keys, i, k) {
    if (*json_string_value(k))
      store_each_by(s, STORE_TASKS_BY_NODE, json_string_value(k), load_each, l);
  }
  /* Expectations still unapplied count on top; one whose task is in the
   * store now (applied while the loads were not kept) is counted. */
  const char *id;
  json_t *t;
  void *tmp;
  json_object_foreach_safe(l->expected, tmp, id, t) {
    if (store_get(s, STORE_TASK, id))
      json_object_del(l->expected, id);
    else
      load_task(l, t, 1);
  }
  l->valid = true;
}

void sched_load_follow(struct sched_load *l, struct store *s,
                       const struct store_change *ch, size_t n) {
  if (n == 0 || !l->valid) {
    ntable_follow(l, ch, n);
    load_build(l, s);
  } else {
    sched_load_changes(l, ch, n); /* which follows the nodes too */
  }
}

enum filter {
  F_READY,
  F_RESOURCES,
  F_CONSTRAINTS,
  F_PLATFORM,
  F_HOSTPORT,
  F_MAXREPLICAS,
  F_N
};

/* What the filters need to know about one task. */
struct tfilter {
  const char *service;
  int64_t cpu, mem;
  struct constraint *cons;
  size_t ncons;
  json_t *platforms; /* borrowed array or NULL */
  json_t *ports;     /* new array of "proto/port" host-mode ports */
  int64_t max_replicas;
};

static void explain(sh_buf *b, enum filter f, int n) {
  bool one = n == 1;
  switch (f) {
  case F_READY:
    buf_printf(b, "%d %s not available for new tasks", n,
               one ? "node" : "nodes");
    break;
  case F_RESOURCES:
    buf_printf(b, "insufficient resources on %d %s", n, one ? "node" : "nodes");
    break;
  case F_CONSTRAINTS:
    buf_printf(b, "scheduling constraints not satisfied on %d %s", n,
               one ? "node" : "nodes");
    break;
  case F_PLATFORM:
    buf_printf(b, "unsupported platform on %d %s", n, one ? "node" : "nodes");
    break;
  case F_HOSTPORT:
    buf_printf(b, "host-mode port already in use on %d %s", n,
               one ? "node" : "nodes");
    break;
  case F_MAXREPLICAS:
  case F_N:
    buf_printf(b, "max replicas per node limit exceed");
    break;
  }
}

static void port_key(char *out, size_t n, const json_t *p) {
  const char *proto = jx_str(p, "Protocol", "");
  snprintf(out, n, "%s/%lld", *proto ? proto : "tcp",
           (long long)jx_int(p, "PublishedPort", 0));
}

static json_t *host_ports(const json_t *task) {
  json_t *out = json_array();
  size_t i;
  json_t *p;
  json_array_foreach(jx_get(task, "_EndpointSpec.Ports"), i, p) {
    if (strcmp(jx_str(p, "PublishMode", ""), "host") == 0 &&
        jx_int(p, "PublishedPort", 0) != 0) {
      char k[64];
      port_key(k, sizeof k, p);
      json_array_append_new(out, json_string(k));
    }
  }
  return out;
}

/* Counts d more active tasks of t's service on the node in this run. */
static void ninfo_count(struct ninfo *ni, const json_t *t, int d) {
  const char *sid = jx_str(t, "ServiceID", "");
  ni->active += d;
  if (!ni->by_service)
    ni->by_service = json_object();
  json_object_set_new(ni->by_service, sid,
                      json_integer(jx_int(ni->by_service, sid, 0) + d));
}

static void ninfo_add(struct ninfo *ni, const json_t *t) {
  ni->cpu -= jx_int(t, "Spec.Resources.Reservations.NanoCPUs", 0);
  ni->mem -= jx_int(t, "Spec.Resources.Reservations.MemoryBytes", 0);
  json_t *ports = host_ports(t);
  size_t i;
  json_t *p;
  if (json_array_size(ports) && !ni->ports)
    ni->ports = json_object();
  json_array_foreach(ports, i, p)
      json_object_set_new(ni->ports, json_string_value(p), json_true());
  json_decref(ports);
  if (task_desired(t) <= TS_COMPLETE)
    ninfo_count(ni, t, 1);
}

static const char *norm_arch(const char *a) {
  if (strcmp(a, "x86_64") == 0)
    return "amd64";
  if (strcmp(a, "aarch64") == 0)
    return "arm64";
  return a;
}

/* The first filter that rejects the node, or -1 when it fits. */
static int check(const struct tfilter *f, const struct ninfo *ni) {
  if (!ni->usable)
    return F_READY;
  if ((f->cpu || f->mem) && (f->cpu > ni->cpu || f->mem > ni->mem))
    return F_RESOURCES;
  if (f->ncons && !constraints_match(f->cons, f->ncons, ni->node))
    return F_CONSTRAINTS;
  if (json_array_size(f->platforms) > 0) {
    const char *os = jx_str(ni->node, "Description.Platform.OS", NULL);
    const char *arch =
        jx_str(ni->node, "Description.Platform.Architecture", NULL);
    bool ok = false;
    size_t i;
    json_t *p;
    json_array_foreach(f->platforms, i, p) {
      if (!os || !arch)
        break;
      const char *pa = norm_arch(jx_str(p, "Architecture", ""));
      const char *po = jx_str(p, "OS", "");
      if ((!*pa || strcmp(pa, norm_arch(arch)) == 0) &&
          (!*po || strcmp(po, os) == 0))
        ok = true;
    }
    if (!ok)
      return F_PLATFORM;
  }
  size_t i;
  json_t *p;
  json_array_foreach(f->ports, i, p) {
    if (json_object_get(ni->ports, json_string_value(p)) ||
        jx_int(ni->base_ports, json_string_value(p), 0) > 0)
      return F_HOSTPORT;
  }
  if (f->max_replicas > 0 && svc_count(ni, f->service) >= f->max_replicas)
    return F_MAXREPLICAS;
  return -1;
}

static void tfilter_load(struct tfilter *f, const json_t *t) {
  memset(f, 0, sizeof *f);
  f->service = jx_str(t, "ServiceID", "");
  f->cpu = jx_int(t, "Spec.Resources.Reservations.NanoCPUs", 0);
  f->mem = jx_int(t, "Spec.Resources.Reservations.MemoryBytes", 0);
  if (constraints_parse(jx_get(t, "Spec.Placement.Constraints"), &f->cons,
                        &f->ncons, NULL) < 0) {
    f->cons = NULL; /* validated at create: treat as none, like swarmkit */
    f->ncons = 0;
  }
  f->platforms = jx_get(t, "Spec.Placement.Platforms");
  f->ports = host_ports(t);
  f->max_replicas = jx_int(t, "Spec.Placement.MaxReplicas", 0);
}

static void tfilter_free(struct tfilter *f) {
  constraints_free(f->cons, f->ncons);
  json_decref(f->ports);
}

/* swarmkit's Pipeline.Explain: failures per filter, most first. */
static char *explain_all(const struct tfilter *f, struct ninfo *nis, size_t n) {
  int count[F_N] = {0};
  for (size_t i = 0; i < n; i++) {
    int r = check(f, &nis[i]);
    if (r >= 0)
      count[r]++;
  }
  int order[F_N];
  for (int i = 0; i < F_N; i++)
    order[i] = i;
  for (int i = 1; i < F_N; i++) /* stable insertion sort, descending */
    for (int j = i; j > 0 && count[order[j]] > count[order[j - 1]]; j--) {
      int tmp = order[j];
      order[j] = order[j - 1];
      order[j - 1] = tmp;
    }
  sh_buf b = {0};
  buf_append(&b, "", 0);
  for (int i = 0; i < F_N; i++) {
    if (!count[order[i]])
      continue;
    if (b.len)
      buf_printf(&b, "; ");
    explain(&b, (enum filter)order[i], count[order[i]]);
  }
  return b.data;
}

/* The value a node has at one level of the spread tree; NULL (and
 * *supported false) for descriptors swarmkit skips. */
static const char *label_value(const json_t *node, const char *desc,
                               bool *supported) {
  static const char nl[] = "node.labels.", el[] = "engine.labels.";
  *supported = true;
  const json_t *labels = NULL;
  const char *key = NULL;
  if (strlen(desc) > strlen(nl) && strncasecmp(desc, nl, strlen(nl)) == 0) {
    labels = jx_get(node, "Spec.Labels");
    key = desc + strlen(nl);
  } else if (strlen(desc) > strlen(el) &&
             strncasecmp(desc, el, strlen(el)) == 0) {
    labels = jx_get(node, "Description.Engine.Labels");
    key = desc + strlen(el);
  } else {
    *supported = false;
    return NULL;
  }
  const char *v = json_string_value(json_object_get(labels, key));
  return v ? v : ""; /* nodes without the label form the "" branch */
}

/* nodeLess: fewer tasks of the service, then fewer tasks. */
static bool node_less(const struct ninfo *a, const struct ninfo *b,
                      const char *sid) {
  int64_t sa = svc_count(a, sid), sb = svc_count(b, sid);
  if (sa != sb)
    return sa < sb;
  return a->active < b->active;
}

/* Picks the node for a task among nis (fit[i] says which pass the
 * filters), honouring the spread preferences. */
static struct ninfo *choose(const json_t *t, struct ninfo *nis, size_t n,
                            const bool *fit) {
  const char *sid = jx_str(t, "ServiceID", "");
  bool *in = xcalloc(n ? n : 1, sizeof *in); /* current branch */
  for (size_t i = 0; i < n; i++)
    in[i] = true;
  size_t pi;
  json_t *pref;
  json_array_foreach(jx_get(t, "Spec.Placement.Preferences"), pi, pref) {
    const char *desc = jx_str(pref, "Spread.SpreadDescriptor", NULL);
    if (!desc)
      continue;
    bool supported;
    label_value(nis[0].node, desc, &supported);
    if (!supported)
      continue;
    /* The branch (label value) with fewest tasks of the service among
     * those where some node fits. */
    json_t *tasks = json_object(), *usable = json_object();
    for (size_t i = 0; i < n; i++) {
      if (!in[i])
        continue;
      const char *v = label_value(nis[i].node, desc, &supported);
      json_object_set_new(
          tasks, v,
          json_integer(jx_int(tasks, v, 0) + svc_count(&nis[i], sid)));
      if (fit[i])
        json_object_set_new(usable, v, json_true());
    }
    const char *best = NULL;
    int64_t best_n = 0;
    const char *v;
    json_t *x;
    json_object_foreach(usable, v, x) {
      int64_t c = jx_int(tasks, v, 0);
      if (!best || c < best_n || (c == best_n && strcmp(v, best) < 0)) {
        best = v;
        best_n = c;
      }
    }
    if (best)
      for (size_t i = 0; i < n; i++)
        if (in[i] &&
            strcmp(label_value(nis[i].node, desc, &supported), best) != 0)
          in[i] = false;
    json_decref(tasks);
    json_decref(usable);
  }
  struct ninfo *pick = NULL;
  for (size_t i = 0; i < n; i++)
    if (in[i] && fit[i] && (!pick || node_less(&nis[i], pick, sid)))
      pick = &nis[i];
  free(in);
  return pick;
}

/* Adds t's new version nt to the run's transaction, full ones going to
 * out: transactions of up to ORCH_TX_MAX tasks, whatever their services.
 * One per service made a raft entry per service, and placing the
 * replacements of 100 nodes' tasks (one per service on each) was 100
 * entries of a few tasks each, every one applied, watched and answered
 * on its own. A conflict (rare: the passes take turns) costs its tasks
 * this pass; the next places them. */
static void put_task(struct orch_out *out, struct store_tx **tx,
                     const json_t *orig, json_t *nt) {
  store_tx_update(orch_tx_room(out, tx, 1, ORCH_TX_MAX), STORE_TASK, nt, orig,
                  jx_int(orig, "Version.Index", 0));
}

/* Sets st's time, and its state, message and error where given (no
 * error: Err removed). */
static void set_status(json_t *st, const char *state, const char *msg,
                       const char *errmsg, int64_t now) {
  char ts[64];
  json_object_set_new(st, "Timestamp",
                      json_string(clock_format_rfc3339(now, ts, sizeof ts)));
  if (state)
    json_object_set_new(st, "State", json_string(state));
  if (msg)
    json_object_set_new(st, "Message", json_string(msg));
  if (errmsg)
    json_object_set_new(st, "Err", json_string(errmsg));
  else
    json_object_del(st, "Err");
}

static json_t *with_status(const json_t *t, const char *state, const char *msg,
                           const char *errmsg, int64_t now) {
  /* A shallow copy with a status of its own: the rest is the store's,
   * which never changes in place (the callers set top-level fields). */
  json_t *nt = json_copy((json_t *)t);
  json_t *st = json_is_object(json_object_get(t, "Status"))
                   ? json_deep_copy(json_object_get(t, "Status"))
                   : json_object();
  json_object_set_new(nt, "Status", st);
  set_status(st, state, msg, errmsg, now);
  return nt;
}

int scheduler_run(struct store *s, int64_t now_ns, struct orch_out *out) {
  if (store_count_by(s, STORE_TASKS_WAITING, "pending") == 0)
    return 0;
  struct sched_load *l = sched_load_new();
  int n = scheduler_run_load(s, now_ns, out, l);
  sched_load_free(l);
  return n;
}

/* A task's group, "service/specversion": its tasks share every filter. */
static void task_group(const json_t *t, char *out, size_t len) {
  snprintf(out, len, "%s/%lld", jx_str(t, "ServiceID", ""),
           (long long)jx_int(t, "_SpecVersion", 0));
}

/* One task group's view of the nodes in a run: which fit its filters and
 * how many of its service each holds, up to date with the first `seen`
 * entries of the run's list of changed nodes. */
struct gview {
  char group[128]; /* "service/specversion" */
  struct tfilter f;
  bool *fit;
  int64_t *cnt;
  size_t nfit, seen;
};

struct gviews {
  struct gview *v;
  size_t n, cap;
};

static void gview_free(struct gview *g) {
  tfilter_free(&g->f);
  free(g->fit);
  free(g->cnt);
}

static void gviews_free(struct gviews *gv) {
  for (size_t i = 0; i < gv->n; i++)
    gview_free(&gv->v[i]);
  free(gv->v);
  *gv = (struct gviews){0};
}

static void note_changed(size_t **changed, size_t *n, size_t *cap, size_t k) {
  if (*n == *cap) {
    *cap *= 2;
    *changed = xrealloc(*changed, *cap * sizeof **changed);
  }
  (*changed)[(*n)++] = k;
}

/* Looks again at the nodes changed since the view was last brought up to
 * date. */
static void gview_sync(struct gview *g, const struct ninfo *nis,
                       const size_t *changed, size_t nchanged) {
  for (; g->seen < nchanged; g->seen++) {
    size_t k = changed[g->seen];
    g->nfit -= g->fit[k];
    g->fit[k] = check(&g->f, &nis[k]) < 0;
    g->nfit += g->fit[k];
    g->cnt[k] = svc_count(&nis[k], g->f.service);
  }
}

/* The view of t's group, made on its first task and brought up to date
 * after that. t outlives the run (it is in the run's task list), so the
 * filter may borrow from it. */
static struct gview *gview_get(struct gviews *gv, const char *group,
                               const json_t *t, const struct ninfo *nis,
                               size_t nn, const size_t *changed,
                               size_t nchanged) {
  for (size_t i = gv->n; i-- > 0;) /* the last one made is the likeliest */
    if (strcmp(gv->v[i].group, group) == 0) {
      gview_sync(&gv->v[i], nis, changed, nchanged);
      return &gv->v[i];
    }
  if (gv->n == gv->cap) {
    gv->cap = gv->cap ? gv->cap * 2 : 8;
    gv->v = xrealloc(gv->v, gv->cap * sizeof *gv->v);
  }
  struct gview *g = &gv->v[gv->n++];
  *g = (struct gview){.seen = nchanged};
  snprintf(g->group, sizeof g->group, "%s", group);
  tfilter_load(&g->f, t);
  g->fit = xcalloc(nn ? nn : 1, sizeof *g->fit);
  g->cnt = xcalloc(nn ? nn : 1, sizeof *g->cnt);
  /* The service's counts looked up once, not on each node. */
  const struct lsvc *ls = nn ? load_svc(nis[0].load, g->f.service) : NULL;
  for (size_t k = 0; k < nn; k++) {
    g->fit[k] = check(&g->f, &nis[k]) < 0;
    g->cnt[k] = lsvc_at(ls, nis[k].slot) +
                (nis[k].by_service ? json_integer_value(json_object_get(
                                         nis[k].by_service, g->f.service))
                                   : 0);
    g->nfit += g->fit[k];
  }
  return g;
}

/* One run: the nodes as the load and this run's placements leave them,
 * and the task groups' views of them. */
struct run {
  struct store *s;
  int64_t now;
  json_t *nodes;
  struct ninfo *nis;
  size_t nn;
  json_t *by_id; /* node ID -> index in nis */
  /* Tasks of one group see the same filters: each group's fit[] and count
   * of its service on each node (cnt[]) are made once per run, and after
   * that only the nodes a placement changed (changed[]) are looked at
   * again when the group comes up, so a task costs a scan of small
   * integers over the nodes, not every filter on every node. Groups come
   * interleaved when one orchestrator pass replaces tasks of many services
   * (a node down): with only the last group's view kept, a batch of
   * 1,000 such tasks at 1,000 nodes held the loop for 0.75-1.4 s. */
  struct gviews gv;
  size_t *changed, nchanged, capchanged;
  /* swarmkit's task groups: tasks of one service and spec version ask the
   * same of a node, so once one fits nowhere the others get its answer
   * without going through the nodes again (until a placement changes the
   * nodes). "service/specversion" -> Status.Err. */
  json_t *nofit;
};

static void run_begin(struct run *r, struct store *s, int64_t now,
                      struct sched_load *l) {
  if (!l->valid)
    load_build(l, s);
  const struct ntable *nt = ntable_get(l, s);
  *r = (struct run){.s = s, .now = now, .nodes = json_incref(nt->nodes)};
  r->nn = json_array_size(r->nodes);
  r->nis = xcalloc(r->nn ? r->nn : 1, sizeof *r->nis);
  for (size_t i = 0; i < r->nn; i++) {
    const struct nstatic *ns = &nt->v[i];
    long slot = slot_find(&l->node_slots, ns->id);
    const struct lnode *base = slot >= 0 ? &l->nodes[slot] : NULL;
    r->nis[i] = (struct ninfo){
        .node = json_array_get(r->nodes, i),
        .id = ns->id,
        .usable = ns->usable,
        .cpu = ns->cpu - (base ? base->cpu : 0),
        .mem = ns->mem - (base ? base->mem : 0),
        .active = base ? base->active : 0,
        .load = l,
        .slot = slot,
        .base_ports = base ? base->ports : NULL,
    };
  }
  r->by_id = json_incref(nt->by_id); /* read only */
  r->capchanged = r->nn + 1;
  r->changed = xcalloc(r->capchanged, sizeof *r->changed);
  r->nofit = json_object();
}

static void run_end(struct run *r) {
  json_decref(r->by_id);
  json_decref(r->nofit);
  gviews_free(&r->gv);
  free(r->changed);
  for (size_t k = 0; k < r->nn; k++) {
    json_decref(r->nis[k].by_service);
    json_decref(r->nis[k].ports);
  }
  free(r->nis);
  json_decref(r->nodes);
}

/* What to do with a pending task. */
struct decision {
  struct ninfo *node; /* assign to it (NULL: not) */
  const char *msg;    /* its status message */
  char *err;          /* or: it stays pending with this Status.Err */
};

/* Counts t on the node it goes to: the next tasks see it there. */
static void run_place(struct run *r, struct ninfo *ni, const json_t *t) {
  ninfo_add(ni, t);
  json_object_clear(r->nofit);
  note_changed(&r->changed, &r->nchanged, &r->capchanged,
               (size_t)(ni - r->nis));
}

/* Decides t (pending, desired at most complete, allocated); both unset:
 * nothing to do (its preassigned node is unknown). */
static struct decision decide(struct run *r, const json_t *t) {
  struct decision d = {0};
  const char *nid = jx_str(t, "NodeID", "");
  char group[128];
  task_group(t, group, sizeof group);
  const char *known = *nid ? NULL : jx_str(r->nofit, group, NULL);
  if (known) {
    d.err = xstrdup(known);
    return d;
  }
  if (*nid) {
    struct tfilter f;
    tfilter_load(&f, t);
    json_t *k = json_object_get(r->by_id, nid);
    struct ninfo *ni = k ? &r->nis[json_integer_value(k)] : NULL;
    if (ni && check(&f, ni) < 0) {
      d.node = ni;
      d.msg = "scheduler confirmed task can run on preassigned node";
      run_place(r, ni, t);
    } else if (ni) {
      d.err = explain_all(&f, ni, 1);
    }
    tfilter_free(&f);
    return d;
  }
  /* The group's filter stands for the task's: same service and spec. */
  struct gview *g =
      gview_get(&r->gv, group, t, r->nis, r->nn, r->changed, r->nchanged);
  bool *fit = g->fit;
  int64_t *cnt = g->cnt;
  struct ninfo *nis = r->nis, *pick = NULL;
  if (g->nfit && json_array_size(jx_get(t, "Spec.Placement.Preferences")))
    pick = choose(t, nis, r->nn, fit);
  else if (g->nfit) /* nodeLess over the counts: the first of the fewest */
    for (size_t k = 0; k < r->nn; k++)
      if (fit[k] &&
          (!pick || cnt[k] < cnt[pick - nis] ||
           (cnt[k] == cnt[pick - nis] && nis[k].active < pick->active)))
        pick = &nis[k];
  if (pick) {
    d.node = pick;
    d.msg = "scheduler assigned task to node";
    run_place(r, pick, t);
    gview_sync(g, nis, r->changed, r->nchanged); /* the one node changed */
    return d;
  }
  char *why = explain_all(&g->f, nis, r->nn);
  d.err = *why ? xasprintf("no suitable node (%s)", why)
               : xstrdup("no suitable node");
  free(why);
  json_object_set_new(r->nofit, group, json_string(d.err));
  return d;
}

/* Whether the scheduler places t now: pending, meant to run, and with
 * its network addresses (the allocator runs just before). */
static bool placeable(struct store *s, const json_t *t) {
  if (task_state(t) != TS_PENDING || task_desired(t) > TS_COMPLETE)
    return false;
  const json_t *svc = store_get(s, STORE_SERVICE, jx_str(t, "ServiceID", ""));
  return !svc || allocator_task_allocated(s, svc, t);
}

/* A task assigned to d's node: its NodeID, and its name if it has none
 * (a replicated job's first slot is named after its node). */
static void name_for_node(struct store *s, json_t *nt, const struct ninfo *ni) {
  json_object_set_new(nt, "NodeID", json_string(ni->id));
  if (!json_object_get(nt, "Name")) {
    const json_t *svc =
        store_get(s, STORE_SERVICE, jx_str(nt, "ServiceID", ""));
    json_object_set_new(
        nt, "Name",
        json_sprintf("%s.%s", jx_str(svc, "Spec.Name", ""), ni->id));
  }
}

/* The tasks of list (stolen) regrouped by service and spec version: the
 * groups in the order of their first task, each in list order. */
static json_t *grouped(json_t *list) {
  json_t *groups = json_object(); /* group -> its tasks */
  json_t *order = json_array();   /* the groups' arrays, first seen first */
  size_t i;
  json_t *t;
  json_array_foreach(list, i, t) {
    char group[128];
    task_group(t, group, sizeof group);
    json_t *g = json_object_get(groups, group);
    if (!g) {
      g = json_array();
      json_object_set_new(groups, group, g);
      json_array_append(order, g);
    }
    json_array_append(g, t);
  }
  json_t *out = json_array();
  json_array_foreach(order, i, t) json_array_extend(out, t);
  json_decref(order);
  json_decref(groups);
  json_decref(list);
  return out;
}

int scheduler_run_load(struct store *s, int64_t now_ns, struct orch_out *out,
                       struct sched_load *l) {
  /* Only pending tasks are placed: none, nothing to do (the index answers
   * without a scan). */
  if (store_count_by(s, STORE_TASKS_WAITING, "pending") == 0)
    return 0;
  struct run r;
  run_begin(&r, s, now_ns, l);
  /* In store order, as a scan of every task would meet them, one task
   * group after the other (as swarmkit schedules task groups): a group's
   * view is brought up to date with every node changed since its last
   * task, and 100 nodes down gave each service's replacements
   * interleaved with the 99 others' (10,000 tasks x 100 groups of
   * catch-up, a quarter of the leader's loop). */
  json_t *tasks = grouped(store_list_by(s, STORE_TASKS_WAITING, "pending"));
  size_t before = out->ntx;
  struct store_tx *tx = NULL;
  size_t i;
  json_t *t;
  json_array_foreach(tasks, i, t) {
    if (!placeable(s, t))
      continue;
    if (out->budget <= 0) { /* the rest in a later run */
      out->more = true;
      break;
    }
    struct decision d = decide(&r, t);
    if (d.node) {
      json_t *nt = with_status(t, "assigned", d.msg, NULL, now_ns);
      name_for_node(s, nt, d.node);
      put_task(out, &tx, t, nt);
      out->budget--;
    } else if (d.err && strcmp(jx_str(t, "Status.Err", ""), d.err) != 0) {
      put_task(out, &tx, t, with_status(t, NULL, NULL, d.err, now_ns));
      out->budget--;
    }
    free(d.err);
  }
  if (tx)
    orch_out_add(out, tx);
  json_decref(tasks);
  run_end(&r);
  return (int)(out->ntx - before);
}

struct place_new {
  struct run r;
  bool begun;
  struct sched_load *l;
  int64_t until; /* monotonic ns: the rest stay pending */
  struct sched_placed *res;
  const struct orch_out *out;
};

/* A task the same transactions stop (desired past complete) no longer
 * counts among its node's tasks of the service, as in the scheduler's
 * pass after their commit; its resources and host ports stay taken until
 * it ends, as there. */
static void unplace_stopped(const char *id, const json_t *fields, void *ud) {
  struct place_new *p = ud;
  const json_t *old = store_get(p->r.s, STORE_TASK, id);
  if (!old || !load_counts(old) || task_desired(old) > TS_COMPLETE ||
      !json_object_get(fields, "DesiredState") ||
      task_desired(fields) <= TS_COMPLETE)
    return;
  json_t *k = json_object_get(p->r.by_id, jx_str(old, "NodeID", ""));
  if (!k)
    return;
  ninfo_count(&p->r.nis[json_integer_value(k)], old, -1);
}

static void place_begin(struct place_new *p) {
  run_begin(&p->r, p->r.s, p->r.now, p->l);
  for (size_t i = 0; i < p->out->ntx; i++)
    store_tx_each_update(p->out->txs[i], STORE_TASK, unplace_stopped, p);
  p->begun = true;
}

static void place_one(json_t *t, void *ud) {
  struct place_new *p = ud;
  if (!placeable(p->r.s, t))
    return;
  if (!p->begun) {
    place_begin(p);
  } else if (clock_mono_ns() > p->until) {
    p->res->left++;
    return;
  }
  struct decision d = decide(&p->r, t);
  json_t *st = json_object_get(t, "Status");
  if (!json_is_object(st)) {
    st = json_object();
    json_object_set_new(t, "Status", st);
  }
  if (d.node) {
    set_status(st, "assigned", d.msg, NULL, p->r.now);
    name_for_node(p->r.s, t, d.node);
    p->res->placed++;
  } else if (d.err) {
    set_status(st, NULL, NULL, d.err, p->r.now);
  }
  free(d.err);
}

static void collect_new(json_t *t, void *ud) {
  json_array_append(ud, t);
}

void scheduler_place_new(struct store *s, int64_t now_ns, struct orch_out *out,
                         struct sched_load *l, int64_t budget_ns,
                         struct sched_placed *res) {
  int64_t t0 = clock_mono_ns();
  *res = (struct sched_placed){0};
  struct place_new p = {.r = {.s = s, .now = now_ns},
                        .l = l,
                        .until = t0 + budget_ns,
                        .res = res,
                        .out = out};
  /* One task group after the other, as the scheduler's pass takes them:
   * a node pass makes its tasks node by node, each node's of every
   * service, and a group's view was brought up to date with every other
   * group's placements since its last task (2,000 tasks of 100 services:
   * 100 nodes looked at again for each). The tasks are the transactions'
   * own, decided in place. */
  json_t *made = json_array();
  for (size_t i = 0; i < out->ntx; i++)
    store_tx_each_new(out->txs[i], STORE_TASK, collect_new, made);
  cleanup_json json_t *order = grouped(made);
  size_t i;
  json_t *t;
  json_array_foreach(order, i, t) place_one(t, &p);
  if (p.begun)
    run_end(&p.r);
  res->took_ns = clock_mono_ns() - t0;
}
