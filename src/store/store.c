/* The in-memory cluster state and its transactions (see store.h).
 *
 * Each kind is a jansson object ID -> object; kinds whose Spec.Name must be
 * unique also keep a name -> ID object. Applying a transaction first stages
 * every op against a view of "live + already staged", checks all
 * preconditions, and only then commits, so a failed transaction leaves no
 * trace. The secondary indexes (store_list_by) change only in the commit,
 * with the objects: field value -> {ID -> object}. */
#include "store/store.h"

#include "core/clock.h"
#include "core/jcbor.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"

/* moby maps swarmkit's plain "update out of sequence" error (gRPC code
 * Unknown) to HTTP 500 (api/server/httpstatus statusCodeFromGRPCError). */
#define STORE_SEQ_STATUS 500
#define STORE_SEQ_MSG "update out of sequence"
/* A service's spec version (the orchestrator's bookkeeping, orchtask.h) */
#define SPEC_VERSION_KEY "_SpecVersion"
/* The cluster's removed-node list: node ID -> until (ns). */
#define REMOVED_KEY "_RemovedNodes"

static const char *const kind_names[STORE_NKINDS] = {
    [STORE_CLUSTER] = "cluster", [STORE_NODE] = "node",
    [STORE_SERVICE] = "service", [STORE_TASK] = "task",
    [STORE_NETWORK] = "network", [STORE_SECRET] = "secret",
    [STORE_CONFIG] = "config",
};

struct watcher {
  int id;
  store_watch_fn fn;
  void *ud;
};

/* A task desired at most running (swarmkit's order: new ... running). */
static bool wants_at_most_running(const char *d) {
  static const char *const upto[] = {"new",      "allocated", "pending",
                                     "assigned", "accepted",  "preparing",
                                     "ready",    "starting",  "running"};
  for (size_t i = 0; d && i < ARRAY_SIZE(upto); i++)
    if (strcmp(d, upto[i]) == 0)
      return true;
  return false;
}

/* A running task its service still wants: what ServiceStatus counts as
 * running (before the down-node check). */
static const char *up_key(const json_t *t) {
  if (strcmp(jx_str(t, "Status.State", ""), "running") != 0 ||
      !wants_at_most_running(jx_str(t, "DesiredState", NULL)))
    return NULL;
  return jx_str(t, "ServiceID", NULL);
}

/* The state of a task waiting for an address or a node. The later
 * states were buckets of up to 100,000 tasks that nothing read, and every
 * status report moved its task between two of them on every manager. */
static const char *waiting_key(const json_t *t) {
  const char *st = jx_str(t, "Status.State", NULL);
  return st && (strcmp(st, "new") == 0 || strcmp(st, "allocated") == 0 ||
                strcmp(st, "pending") == 0)
             ? st
             : NULL;
}

static const char *done_key(const json_t *t) {
  if (strcmp(jx_str(t, "Status.State", ""), "complete") != 0)
    return NULL;
  return jx_str(t, "ServiceID", NULL);
}

static const char *manager_key(const json_t *n) {
  return json_is_object(json_object_get(n, "ManagerStatus")) ? "manager" : NULL;
}

/* An index's key is made from top-level values: its field's first
 * segment, or for a key function the keys in deps. A new version that
 * shares each of them with the old one by pointer (the store's patches
 * and status reports share what they keep) has the same key, so
 * index_move skips it unread: a status report computes the three of a
 * task's seven keys made from its Status, not all seven twice. */
static const struct {
  enum store_kind kind;
  const char *field;
  const char *(*key)(const json_t *obj); /* instead of the field's value */
  const char *deps[3];                   /* what key reads */
} index_defs[STORE_NINDEXES] = {
    [STORE_TASKS_BY_SERVICE] = {STORE_TASK, "ServiceID"},
    [STORE_TASKS_BY_NODE] = {STORE_TASK, "NodeID"},
    [STORE_TASKS_BY_DESIRED] = {STORE_TASK, "DesiredState"},
    [STORE_TASKS_WAITING] = {STORE_TASK,
                             "Status.State",
                             waiting_key,
                             {"Status"}},
    [STORE_SERVICES_BY_NAME] = {STORE_SERVICE, "Spec.Name"},
    [STORE_NETWORKS_BY_NAME] = {STORE_NETWORK, "Spec.Name"},
    [STORE_TASKS_BY_NETWORK] = {STORE_TASK, "NetworksAttachments.0.Network.ID"},
    [STORE_TASKS_UP_BY_SERVICE] = {STORE_TASK,
                                   "ServiceID",
                                   up_key,
                                   {"ServiceID", "Status", "DesiredState"}},
    [STORE_TASKS_DONE_BY_SERVICE] = {STORE_TASK,
                                     "ServiceID",
                                     done_key,
                                     {"ServiceID", "Status"}},
    [STORE_NODES_BY_STATE] = {STORE_NODE, "Status.State"},
    [STORE_MANAGER_NODES] = {STORE_NODE,
                             "ManagerStatus",
                             manager_key,
                             {"ManagerStatus"}},
};

/* Whether ix's key is made from the object's Status. */
static bool reads_status(enum store_index ix) {
  const char *f = index_defs[ix].field;
  if (!index_defs[ix].key)
    return strcspn(f, ".") == strlen("Status") &&
           strncmp(f, "Status", strlen("Status")) == 0;
  for (size_t d = 0; d < ARRAY_SIZE(index_defs[ix].deps); d++)
    if (index_defs[ix].deps[d] && strcmp(index_defs[ix].deps[d], "Status") == 0)
      return true;
  return false;
}

/* Whether old and cur share every value ix's key is made from. */
static bool same_deps(enum store_index ix, const json_t *old,
                      const json_t *cur) {
  if (!index_defs[ix].key) {
    const char *f = index_defs[ix].field;
    size_t n = strcspn(f, ".");
    return json_object_getn(old, f, n) == json_object_getn(cur, f, n);
  }
  for (size_t d = 0; d < ARRAY_SIZE(index_defs[ix].deps); d++) {
    const char *k = index_defs[ix].deps[d];
    if (!k)
      break;
    if (json_object_get(old, k) != json_object_get(cur, k))
      return false;
  }
  return true;
}

/* Every object lives in a box, an array that the kind's map and the
 * object's index buckets share: a new version goes into the box, so the
 * indexes whose key it keeps are not touched. A status report keeps five
 * of a task's seven keys, and setting the new version into each of those
 * buckets (of up to 100,000) was a sixth of a follower's apply. A box
 * lives as long as its object's ID does.
 *
 * A bucket is an array of boxes, and a box holds after its object its
 * place in each bucket of its kind's indexes (an integer per index of the
 * kind, in index order; -1: in none), so a move is an append and a swap
 * with the last: as ID -> box maps, each move hashed the ID into a bucket
 * of up to 100,000 and allocated a copy of it, 13 % of a follower's CPU
 * over a 1,000-node ramp. */
struct store {
  json_t *objs[STORE_NKINDS];  /* ID -> box */
  json_t *names[STORE_NKINDS]; /* Spec.Name -> ID, unique-name kinds only */
  json_t *idx[STORE_NINDEXES]; /* field value -> [box, ...] */
  uint64_t index;
  struct watcher *watchers;
  size_t nwatchers, capwatchers;
  int next_watch_id;
  int notifying; /* >0 while watchers run: unwatch only marks */
  store_status_rule status_rule;
  /* The strings many tasks repeat, one of each (share_values). */
  json_t *interned;
  size_t interned_mark; /* its size after the last sweep */
  json_t *no_labels;    /* the empty Labels every task has */
};

struct store_tx {
  json_t *ops; /* array, encoded as-is */
};

static json_t *unbox(const json_t *box) {
  return json_array_get(box, 0);
}

/* ix's place among its kind's indexes: the box's element after the
 * object that holds the box's place in ix's bucket. */
static size_t box_slot(enum store_index ix) {
  size_t n = 1;
  for (int i = 0; i < (int)ix; i++)
    n += index_defs[i].kind == index_defs[ix].kind;
  return n;
}

static json_t *box_new(enum store_kind k, json_t *obj) {
  json_t *box = json_array();
  json_array_append(box, obj);
  for (int i = 0; i < STORE_NINDEXES; i++)
    if (index_defs[i].kind == k)
      json_array_append_new(box, json_integer(-1));
  return box;
}

static void box_place(json_t *box, enum store_index ix, json_int_t at) {
  json_integer_set(json_array_get(box, box_slot(ix)), at);
}

/* Takes box out of bucket b (an array of boxes): the last box takes its
 * place. */
static void bucket_remove(json_t *b, enum store_index ix, json_t *box) {
  size_t n = json_array_size(b);
  json_int_t at = json_integer_value(json_array_get(box, box_slot(ix)));
  if (at < 0 || (size_t)at >= n || json_array_get(b, (size_t)at) != box) {
    /* Not where the box says: never expected; found by a walk. */
    for (at = 0; (size_t)at < n && json_array_get(b, (size_t)at) != box; at++)
      ;
    if ((size_t)at == n)
      return;
  }
  json_t *last = json_array_get(b, n - 1);
  if (last != box) {
    json_array_set(b, (size_t)at, last);
    box_place(last, ix, at);
  }
  json_array_remove(b, n - 1);
  box_place(box, ix, -1);
}

const char *store_kind_name(enum store_kind k) {
  if ((int)k < 0 || k >= STORE_NKINDS)
    return "object";
  return kind_names[k];
}

static bool kind_from_name(const char *s, enum store_kind *k) {
  for (int i = 0; i < STORE_NKINDS; i++) {
    if (strcmp(kind_names[i], s) == 0) {
      *k = (enum store_kind)i;
      return true;
    }
  }
  return false;
}

static bool unique_names(enum store_kind k) {
  return k == STORE_SERVICE || k == STORE_NETWORK || k == STORE_SECRET ||
         k == STORE_CONFIG;
}

/* The name an object is found by: Spec.Name, Description.Hostname for
 * nodes without one, top-level Name for tasks. */
static const char *obj_name(enum store_kind k, const json_t *o) {
  const char *n = jx_str(o, "Spec.Name", NULL);
  if (k == STORE_NODE && (!n || !*n))
    n = jx_str(o, "Description.Hostname", NULL);
  if (k == STORE_TASK && (!n || !*n))
    n = jx_str(o, "Name", NULL);
  return n && *n ? n : NULL;
}

static int64_t obj_version(const json_t *o) {
  return jx_int(o, "Version.Index", 0);
}

struct store *store_new(void) {
  struct store *s = xcalloc(1, sizeof *s);
  for (int i = 0; i < STORE_NKINDS; i++) {
    s->objs[i] = json_object();
    s->names[i] = json_object();
  }
  for (int i = 0; i < STORE_NINDEXES; i++)
    s->idx[i] = json_object();
  s->interned = json_object();
  s->no_labels = json_object();
  s->next_watch_id = 1;
  return s;
}

void store_free(struct store *s) {
  if (!s)
    return;
  for (int i = 0; i < STORE_NKINDS; i++) {
    json_decref(s->objs[i]);
    json_decref(s->names[i]);
  }
  for (int i = 0; i < STORE_NINDEXES; i++)
    json_decref(s->idx[i]);
  json_decref(s->interned);
  json_decref(s->no_labels);
  free(s->watchers);
  free(s);
}

/* The store's one string of v's value (v itself the first time). */
static json_t *intern(struct store *s, json_t *v) {
  /* By length: a value holding a NUL is not another's prefix. */
  const char *str = json_string_value(v);
  size_t n = json_string_length(v);
  json_t *have = json_object_getn(s->interned, str, n);
  if (have)
    return have;
  json_object_setn(s->interned, str, n, v);
  /* Values no object holds any more (services and nodes gone) leave
   * once the table has doubled. */
  if (json_object_size(s->interned) > 2 * s->interned_mark + 64) {
    const char *k;
    json_t *x;
    void *tmp;
    json_object_foreach_safe(s->interned, tmp, k, x) {
      if (x->refcount == 1 && x != v) /* a value is its own key */
        json_object_deln(s->interned, json_string_value(x),
                         json_string_length(x));
    }
    s->interned_mark = json_object_size(s->interned);
  }
  return v;
}

/* A new version of a task, before it enters the store: the values that
 * 100,000 tasks repeat (their service's and node's IDs, the desired
 * state, the empty Labels) become the store's one copy of each. Each was
 * a string of 48-64 bytes of jansson's, Labels an object of ~190, about
 * a tenth of a running task. Only the version's own top level changes,
 * to equal values: what it shares with the old version or another
 * object (the store never changes a value in place) is left alone. */
static void share_values(struct store *s, json_t *cur, const json_t *old) {
  static const char *const keys[] = {"ServiceID", "NodeID", "DesiredState"};
  for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
    json_t *v = json_object_get(cur, keys[i]);
    if (!json_is_string(v) || (old && json_object_get(old, keys[i]) == v))
      continue;
    json_t *one = intern(s, v);
    if (one != v)
      json_object_set(cur, keys[i], one);
  }
  json_t *labels = json_object_get(cur, "Labels");
  if (json_is_object(labels) && labels != s->no_labels &&
      json_object_size(labels) == 0)
    json_object_set(cur, "Labels", s->no_labels);
}

json_t *store_get(struct store *s, enum store_kind k, const char *id) {
  if (!id || (int)k < 0 || k >= STORE_NKINDS)
    return NULL;
  return unbox(json_object_get(s->objs[k], id));
}

json_t *store_find(struct store *s, enum store_kind k, const char *ref,
                   sh_err *err) {
  const char *kn = store_kind_name(k);
  if (!ref || !*ref || (int)k < 0 || k >= STORE_NKINDS) {
    sh_error(err, 404, "%s %s not found", kn, ref ? ref : "");
    return NULL;
  }
  json_t *o = unbox(json_object_get(s->objs[k], ref));
  if (o)
    return o;

  /* Full name. */
  json_t *found = NULL;
  size_t matches = 0;
  if (unique_names(k)) {
    const char *id = json_string_value(json_object_get(s->names[k], ref));
    if (id)
      return unbox(json_object_get(s->objs[k], id));
  } else {
    const char *id;
    json_t *v;
    json_object_foreach(s->objs[k], id, v) {
      const char *n = obj_name(k, unbox(v));
      if (n && strcmp(n, ref) == 0) {
        found = unbox(v);
        matches++;
      }
    }
    if (matches == 1)
      return found;
    if (matches > 1) {
      sh_error(err, 400, "%s %s is ambiguous (%zu matches found)", kn, ref,
               matches);
      return NULL;
    }
  }

  /* Unique ID prefix. */
  const char *id;
  json_t *v;
  json_object_foreach(s->objs[k], id, v) {
    if (str_has_prefix(id, ref)) {
      found = unbox(v);
      matches++;
    }
  }
  if (matches == 1)
    return found;
  if (matches > 1) {
    sh_error(err, 400, "%s %s is ambiguous (%zu matches found)", kn, ref,
             matches);
    return NULL;
  }
  sh_error(err, 404, "%s %s not found", kn, ref);
  return NULL;
}

json_t *store_list(struct store *s, enum store_kind k) {
  if ((int)k < 0 || k >= STORE_NKINDS)
    return json_array();
  return jx_sorted_boxes_by_created(s->objs[k]);
}

/* ---- secondary indexes ---- */

enum store_kind store_index_kind(enum store_index ix) {
  return index_defs[ix].kind;
}

const char *store_index_field(enum store_index ix) {
  return index_defs[ix].field;
}

const char *store_index_key(enum store_index ix, const json_t *obj) {
  if ((int)ix < 0 || ix >= STORE_NINDEXES || !obj)
    return NULL;
  return index_defs[ix].key ? index_defs[ix].key(obj)
                            : jx_str(obj, index_defs[ix].field, NULL);
}

static json_t *bucket(struct store *s, enum store_index ix, const char *key) {
  if ((int)ix < 0 || ix >= STORE_NINDEXES || !key)
    return NULL;
  return json_object_get(s->idx[ix], key);
}

json_t *store_list_by(struct store *s, enum store_index ix, const char *key) {
  json_t *b = bucket(s, ix, key);
  return b ? jx_sorted_boxes_by_created(b) : json_array();
}

size_t store_count_by(struct store *s, enum store_index ix, const char *key) {
  return json_array_size(bucket(s, ix, key));
}

json_t *store_index_keys(struct store *s, enum store_index ix) {
  json_t *keys = json_array();
  if ((int)ix < 0 || ix >= STORE_NINDEXES)
    return keys;
  const char *k;
  json_t *v;
  json_object_foreach(s->idx[ix], k, v)
      json_array_append_new(keys, json_string(k));
  return keys;
}

bool store_any(struct store *s, enum store_kind k,
               bool (*fn)(const json_t *obj, void *ud), void *ud) {
  if ((int)k < 0 || k >= STORE_NKINDS)
    return false;
  const char *id;
  json_t *v;
  json_object_foreach(s->objs[k], id, v) {
    if (fn(unbox(v), ud))
      return true;
  }
  return false;
}

void store_each_by(struct store *s, enum store_index ix, const char *key,
                   void (*fn)(json_t *obj, void *ud), void *ud) {
  size_t i;
  json_t *v;
  json_array_foreach(bucket(s, ix, key), i, v) fn(unbox(v), ud);
}

/* Moves the box of object id of kind k in every index over k from where
 * old has it to where cur has it (old NULL: added; cur NULL: removed). An
 * index whose key did not change has the box already, which holds cur. */
/* status_only: cur is old with another Status (store_change), so only
 * the indexes made from the Status can move. */
static void index_move(json_t **idx, enum store_kind k, const json_t *old,
                       const json_t *cur, json_t *box, bool status_only) {
  for (int i = 0; i < STORE_NINDEXES; i++) {
    if (index_defs[i].kind != k ||
        (status_only && !reads_status((enum store_index)i)) ||
        (old && cur && same_deps((enum store_index)i, old, cur)))
      continue;
    const char *ok = store_index_key((enum store_index)i, old);
    const char *nk = store_index_key((enum store_index)i, cur);
    if (ok && nk && strcmp(ok, nk) == 0)
      continue;
    json_t *b = ok ? json_object_get(idx[i], ok) : NULL;
    if (b) {
      bucket_remove(b, (enum store_index)i, box);
      if (json_array_size(b) == 0)
        json_object_del(idx[i], ok); /* no empty buckets pile up */
    }
    if (nk) {
      b = json_object_get(idx[i], nk);
      if (!b) {
        b = json_array();
        json_object_set_new(idx[i], nk, b);
      }
      box_place(box, (enum store_index)i, (json_int_t)json_array_size(b));
      json_array_append(b, box);
    }
  }
}

size_t store_count(struct store *s, enum store_kind k) {
  if ((int)k < 0 || k >= STORE_NKINDS)
    return 0;
  return json_object_size(s->objs[k]);
}

json_t *store_cluster(struct store *s) {
  const char *id;
  json_t *v;
  json_object_foreach(s->objs[STORE_CLUSTER], id, v) return unbox(v);
  return NULL;
}

bool store_node_removed(struct store *s, const char *node_id) {
  json_t *removed = json_object_get(store_cluster(s), REMOVED_KEY);
  return node_id && json_object_get(removed, node_id) != NULL;
}

uint64_t store_index(struct store *s) {
  return s->index;
}

static bool has_private(const json_t *j);
static json_t *public_copy(const json_t *j);

/* A new object with j's keys but the '_' ones; each value a public copy,
 * or (share) the value itself where no '_' key is below it. */
static json_t *public_top(const json_t *j, bool share) {
  json_t *out = json_object();
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)j, k, v) {
    if (k[0] == '_')
      continue;
    json_object_set_new(
        out, k, share && !has_private(v) ? json_incref(v) : public_copy(v));
  }
  return out;
}

static json_t *public_copy(const json_t *j) {
  if (json_is_object(j))
    return public_top(j, false);
  if (json_is_array(j)) {
    json_t *out = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v) json_array_append_new(out, public_copy(v));
    return out;
  }
  /* Scalars are never changed in place: shared, not allocated again (most
   * of a view's values; GET /nodes of 1,000 nodes copied each). Objects
   * and arrays are new, so a caller may still edit its view. */
  return json_incref((json_t *)j);
}

json_t *store_public(const json_t *obj) {
  if (!obj)
    return NULL;
  return public_copy(obj);
}

/* Whether a '_'-prefixed key is anywhere in j. */
static bool has_private(const json_t *j) {
  const char *k;
  json_t *v;
  size_t i;
  if (json_is_object(j)) {
    json_object_foreach((json_t *)j, k, v) {
      if (k[0] == '_' || has_private(v))
        return true;
    }
  } else if (json_is_array(j)) {
    json_array_foreach(j, i, v) {
      if (has_private(v))
        return true;
    }
  }
  return false;
}

/* A task sent to its node was copied whole to leave its '_' keys out
 * (2.2 % of a 1,000-node leader's CPU over the ramp, perf): its Spec is
 * its service's template, shared by every task of the service, and is
 * shared with the view too. The walk reads what the copy would have
 * allocated. */
json_t *store_view(const json_t *obj) {
  if (!json_is_object(obj))
    return store_public(obj);
  return public_top(obj, true);
}

/* ---- transactions ---- */

struct store_tx *store_tx_new(void) {
  struct store_tx *tx = xcalloc(1, sizeof *tx);
  tx->ops = json_array();
  return tx;
}

void store_tx_free(struct store_tx *tx) {
  if (!tx)
    return;
  json_decref(tx->ops);
  free(tx);
}

void store_tx_put(struct store_tx *tx, enum store_kind k, json_t *obj,
                  int64_t expect_version) {
  json_array_append_new(tx->ops, json_pack("{s:s, s:s, s:I, s:o}", "op", "put",
                                           "kind", store_kind_name(k), "expect",
                                           (json_int_t)expect_version, "obj",
                                           obj ? obj : json_null()));
}

void store_tx_delete(struct store_tx *tx, enum store_kind k, const char *id,
                     int64_t expect_version) {
  json_array_append_new(tx->ops, json_pack("{s:s, s:s, s:s, s:I}", "op",
                                           "delete", "kind", store_kind_name(k),
                                           "id", id ? id : "", "expect",
                                           (json_int_t)expect_version));
}

/* Fields a put or a patch never sets: the apply stamps them. */
static bool stamped(const char *k) {
  return !strcmp(k, "ID") || !strcmp(k, "CreatedAt") ||
         !strcmp(k, "UpdatedAt") || !strcmp(k, "Version") ||
         !strcmp(k, REMOVED_KEY);
}

void store_tx_update(struct store_tx *tx, enum store_kind k, json_t *obj,
                     const json_t *cur, int64_t expect_version) {
  if (!cur || !obj || k == STORE_CLUSTER || expect_version <= 0) {
    store_tx_put(tx, k, obj, expect_version);
    return;
  }
  json_t *set = json_object();
  json_t *unset = json_array();
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    const json_t *was = json_object_get(cur, key);
    if (!stamped(key) && was != v && (!was || !json_equal(was, v)))
      json_object_set(set, key, v);
  }
  json_object_foreach((json_t *)cur, key, v) {
    if (!stamped(key) && !json_object_get(obj, key))
      json_array_append_new(unset, json_string(key));
  }
  json_array_append_new(
      tx->ops,
      json_pack("{s:s, s:s, s:s, s:I, s:o, s:o}", "op", "patch", "kind",
                store_kind_name(k), "id", jx_str(obj, "ID", ""), "expect",
                (json_int_t)expect_version, "set", set, "unset", unset));
  json_decref(obj);
}

void store_tx_node_removed(struct store_tx *tx, const char *node_id,
                           int64_t until_ns) {
  json_array_append_new(tx->ops,
                        json_pack("{s:s, s:s, s:I}", "op", "node_removed", "id",
                                  node_id ? node_id : "", "until",
                                  (json_int_t)until_ns));
}

void store_tx_task_status(struct store_tx *tx, const char *task_id,
                          const char *node_id, json_t *status) {
  json_array_append_new(
      tx->ops, json_pack("{s:s, s:s, s:s, s:o}", "op", "task_status", "id",
                         task_id ? task_id : "", "node", node_id ? node_id : "",
                         "status", status ? status : json_null()));
}

void store_set_status_rule(struct store *s, store_status_rule rule) {
  s->status_rule = rule;
}

bool store_tx_empty(const struct store_tx *tx) {
  return !tx || json_array_size(tx->ops) == 0;
}

size_t store_tx_ops(const struct store_tx *tx) {
  return tx ? json_array_size(tx->ops) : 0;
}

void store_tx_each_update(const struct store_tx *tx, enum store_kind k,
                          void (*fn)(const char *id, const json_t *fields,
                                     void *ud),
                          void *ud) {
  size_t i;
  json_t *op;
  json_array_foreach(tx->ops, i, op) {
    if (strcmp(jx_str(op, "kind", ""), store_kind_name(k)) != 0)
      continue;
    const char *what = jx_str(op, "op", "");
    if (strcmp(what, "put") == 0 && jx_int(op, "expect", -1) != 0) {
      const json_t *obj = json_object_get(op, "obj");
      fn(jx_str(obj, "ID", ""), obj, ud);
    } else if (strcmp(what, "patch") == 0) {
      fn(jx_str(op, "id", ""), json_object_get(op, "set"), ud);
    }
  }
}

void store_tx_each_new(struct store_tx *tx, enum store_kind k,
                       void (*fn)(json_t *obj, void *ud), void *ud) {
  size_t i;
  json_t *op;
  json_array_foreach(tx->ops, i, op) {
    json_t *obj = json_object_get(op, "obj");
    if (json_is_object(obj) && jx_int(op, "expect", -1) == 0 &&
        strcmp(jx_str(op, "op", ""), "put") == 0 &&
        strcmp(jx_str(op, "kind", ""), store_kind_name(k)) == 0)
      fn(obj, ud);
  }
}

json_t *store_tx_doc(const struct store_tx *tx, int64_t now_ns) {
  return json_pack("{s:I, s:O}", "time", (json_int_t)now_ns, "ops", tx->ops);
}

/* What store_tx_name_templates learned of each service a transaction's
 * new tasks name (service ID -> the template to name, one object shared
 * by the ops; null: none), and the services it changes. */
struct names {
  json_t *changed, *tm;
};

/* Whether the task's Spec and _EndpointSpec are svc's own objects
 * (task_new shares them): the tasks an entry or a snapshot writes naming
 * their service's template instead of carrying it. */
static bool shares_template(const json_t *task, const json_t *svc) {
  const json_t *spec = json_object_get(task, "Spec");
  return spec && spec == jx_get(svc, "Spec.TaskTemplate") &&
         json_object_get(task, "_EndpointSpec") ==
             jx_get(svc, "Spec.EndpointSpec");
}

/* A task named by its template gets its service's objects, shared. */
static void take_template(json_t *task, const json_t *svc) {
  json_object_set(task, "Spec", jx_get(svc, "Spec.TaskTemplate"));
  json_t *ep = jx_get(svc, "Spec.EndpointSpec");
  if (ep)
    json_object_set(task, "_EndpointSpec", ep);
}

static json_t *service_template(struct store *s, struct names *n,
                                const char *sid) {
  json_t *tm = json_object_get(n->tm, sid);
  if (tm)
    return tm;
  json_t *svc = store_get(s, STORE_SERVICE, sid);
  json_t *tmpl = jx_get(svc, "Spec.TaskTemplate");
  if (!json_is_object(tmpl) || json_object_get(n->changed, sid)) {
    tm = json_null();
  } else {
    tm = json_object();
    json_object_set_new(tm, "service", json_string(sid));
    json_object_set_new(tm, "spec_version",
                        json_integer(jx_int(svc, SPEC_VERSION_KEY, 0)));
  }
  json_object_set_new(n->tm, sid, tm);
  return tm;
}

/* A task put that can name its template: a creation whose Spec and
 * _EndpointSpec are its service's own objects in s (task_new shares
 * them), of a service the transaction does not change. The op then
 * carries the task without them, and the service's ID and spec version. */
static void name_template(struct store *s, json_t *op, struct names *n) {
  if (strcmp(jx_str(op, "op", ""), "put") != 0 ||
      strcmp(jx_str(op, "kind", ""), "task") != 0 ||
      jx_int(op, "expect", -1) != STORE_MUST_CREATE)
    return;
  json_t *obj = json_object_get(op, "obj");
  const char *sid = jx_str(obj, "ServiceID", NULL);
  if (!sid)
    return;
  json_t *tm = service_template(s, n, sid);
  if (json_is_null(tm) ||
      !shares_template(obj, store_get(s, STORE_SERVICE, sid)))
    return;
  json_object_set(op, "template", tm);
  json_object_del(obj, "Spec");
  json_object_del(obj, "_EndpointSpec");
}

void store_tx_name_templates(struct store *s, struct store_tx *tx) {
  size_t k;
  json_t *o;
  bool creates = false;
  json_array_foreach(tx->ops, k, o) creates |=
      jx_int(o, "expect", -1) == STORE_MUST_CREATE &&
      strcmp(jx_str(o, "kind", ""), "task") == 0;
  if (!creates)
    return; /* status reports, updates: nothing to name */
  struct names n = {json_object(), json_object()};
  size_t i;
  json_t *op;
  json_array_foreach(tx->ops, i, op) {
    if (strcmp(jx_str(op, "kind", ""), "service") == 0)
      json_object_set_new(n.changed, jx_str(op, "id", jx_str(op, "obj.ID", "")),
                          json_true());
  }
  json_array_foreach(tx->ops, i, op) name_template(s, op, &n);
  json_decref(n.changed);
  json_decref(n.tm);
}

static void entries_of(json_t *node, void *ud) {
  int64_t *least = ud;
  json_t *desc = json_object_get(node, "Description");
  int64_t v = jx_int(desc, STORE_ENTRIES_KEY, 0);
  if (v < *least)
    *least = v;
}

/* The least form every manager reads. */
static int64_t managers_form(struct store *s) {
  int64_t least = STORE_ENTRIES;
  store_each_by(s, STORE_MANAGER_NODES, "manager", entries_of, &least);
  return least;
}

bool store_managers_read(struct store *s, int form) {
  return managers_form(s) >= form;
}

int store_check_new_manager(struct store *s, const json_t *desc, sh_err *err) {
  int64_t v = jx_int(desc, STORE_ENTRIES_KEY, 0);
  int64_t least = managers_form(s);
  if (v >= least)
    return 0;
  return sh_error(err, 400,
                  "this node's shoal cannot read the raft log of this "
                  "swarm's managers (it applies entries of form %lld, they "
                  "write form %lld): upgrade it before it becomes a manager",
                  (long long)v, (long long)least);
}

char *store_doc_encode(const json_t *doc, size_t *len) {
  size_t n = 0;
  char *out = jx_dumps(doc, JSON_COMPACT, &n);
  if (len)
    *len = n;
  return out;
}

char *store_entry_encode(struct store *s, const json_t *doc, size_t *len) {
  if (store_managers_read(s, STORE_ENTRIES_CBOR))
    return jcbor_encode(doc, len);
  return store_doc_encode(doc, len);
}

char *store_tx_encode(const struct store_tx *tx, int64_t now_ns, size_t *len) {
  cleanup_json json_t *doc = store_tx_doc(tx, now_ns);
  char *out = store_doc_encode(doc, len);
  if (!out) {
    out = xstrdup("{}");
    if (len)
      *len = 2;
  }
  return out;
}

/* Whether v nests at most max containers (v itself the first). */
static bool nests_within(const json_t *v, size_t max) {
  if (!json_is_object(v) && !json_is_array(v))
    return true;
  if (max == 0)
    return false;
  const char *k;
  json_t *x;
  size_t i;
  if (json_is_object(v)) {
    json_object_foreach((json_t *)v, k, x) {
      if (!nests_within(x, max - 1))
        return false;
    }
  } else {
    json_array_foreach(v, i, x) {
      if (!nests_within(x, max - 1))
        return false;
    }
  }
  return true;
}

/* A snapshot's object sits inside three containers (snapshot_cbor), its
 * fields' values inside four. */
bool store_field_fits(const json_t *v) {
  return nests_within(v, JCBOR_MAX_DEPTH - 4);
}

/* ---- apply ---- */

/* One touched object in a transaction being applied. */
struct staged {
  enum store_kind kind;
  char *id;
  json_t *old; /* live value before the tx (ref), or NULL */
  json_t *cur; /* value after the ops so far (ref), NULL when deleted */
  bool others; /* an op other than task_status changed it */
};

struct stage {
  struct staged *v;
  size_t n, cap;
  /* (kind, ID) -> position in v + 1 (0: free), open addressing, a power
   * of two at least twice n: a transaction of thousands of ops (a batch
   * of status reports) must not look up each one in a list, nor pay a
   * JSON object's allocations per op. */
  size_t *slot;
  size_t nslots;
  bool shared; /* the document is the proposer's, not parsed for us */
  /* The entry's UpdatedAt and Version, made on first use (stamp). */
  json_t *now, *version;
};

static void stage_free(struct stage *st) {
  for (size_t i = 0; i < st->n; i++) {
    json_decref(st->v[i].old);
    json_decref(st->v[i].cur);
    free(st->v[i].id);
  }
  free(st->v);
  free(st->slot);
  json_decref(st->now);
  json_decref(st->version);
}

/* Every object an entry changes has the same UpdatedAt and Version: one
 * value of each, shared by them all (the store never changes a value in
 * place), not a string and an object per op. A Version object is 336
 * bytes of jansson's, a string 80, of a running task's ~4 KB; an entry
 * of 1,000 new tasks made 2,000 of them. */
static void stamp(struct stage *st, json_t *nv, const char *now,
                  uint64_t index) {
  if (!st->version) {
    st->now = json_string(now);
    st->version = json_pack("{s:I}", "Index", (json_int_t)index);
  }
  json_object_set(nv, "UpdatedAt", st->now);
  json_object_set(nv, "Version", st->version);
}

static size_t stage_hash(enum store_kind k, const char *id) {
  uint64_t h = 1469598103934665603ULL ^ (uint64_t)k; /* FNV-1a */
  for (const unsigned char *c = (const unsigned char *)id; *c; c++)
    h = (h ^ *c) * 1099511628211ULL;
  return (size_t)(h ^ (h >> 29));
}

/* The slot of (k, id): its entry's, or the free one it would take. */
static size_t *stage_slot(const struct stage *st, enum store_kind k,
                          const char *id) {
  size_t mask = st->nslots - 1;
  for (size_t i = stage_hash(k, id) & mask;; i = (i + 1) & mask) {
    size_t at = st->slot[i];
    if (!at || (st->v[at - 1].kind == k && strcmp(st->v[at - 1].id, id) == 0))
      return &st->slot[i];
  }
}

static struct staged *stage_find(struct stage *st, enum store_kind k,
                                 const char *id) {
  if (!st->nslots)
    return NULL;
  size_t at = *stage_slot(st, k, id);
  return at ? &st->v[at - 1] : NULL;
}

/* The staged entry for (k, id), created from the live store if needed:
 * one probe finds it or the slot it takes. */
static struct staged *stage_get(struct store *s, struct stage *st,
                                enum store_kind k, const char *id) {
  if (2 * (st->n + 1) > st->nslots) { /* grow, and place everything again */
    free(st->slot);
    st->nslots = st->nslots ? 2 * st->nslots : 16;
    st->slot = xcalloc(st->nslots, sizeof *st->slot);
    for (size_t i = 0; i < st->n; i++)
      *stage_slot(st, st->v[i].kind, st->v[i].id) = i + 1;
  }
  size_t *slot = stage_slot(st, k, id);
  if (*slot)
    return &st->v[*slot - 1];
  if (st->n == st->cap) {
    st->cap = st->cap ? st->cap * 2 : 8;
    st->v = xrealloc(st->v, st->cap * sizeof *st->v);
  }
  struct staged *e = &st->v[st->n];
  json_t *live = store_get(s, k, id);
  *e = (struct staged){.kind = k,
                       .old = json_incref(live),
                       .cur = json_incref(live),
                       .id = xstrdup(id)};
  *slot = ++st->n;
  return e;
}

static int parse_op(const json_t *op, enum store_kind *k, bool *is_put,
                    int64_t *expect, sh_err *err) {
  if (!json_is_object(op))
    return sh_error(err, 400, "invalid transaction: op is not an object");
  const char *o = jx_str(op, "op", NULL);
  const char *kn = jx_str(op, "kind", NULL);
  json_t *ex = json_object_get(op, "expect");
  if (!o || !kn || !json_is_integer(ex))
    return sh_error(err, 400, "invalid transaction: malformed op");
  if (!kind_from_name(kn, k))
    return sh_error(err, 400, "invalid transaction: unknown kind %s", kn);
  *expect = json_integer_value(ex);
  if (*expect < STORE_ANY_VERSION)
    return sh_error(err, 400, "invalid transaction: bad expected version");
  if (strcmp(o, "put") == 0) {
    *is_put = true;
    json_t *obj = json_object_get(op, "obj");
    const char *id = jx_str(obj, "ID", NULL);
    if (!json_is_object(obj) || !id || !*id)
      return sh_error(err, 400, "invalid transaction: object without ID");
  } else if (strcmp(o, "delete") == 0) {
    *is_put = false;
    const char *id = jx_str(op, "id", NULL);
    if (!id || !*id)
      return sh_error(err, 400, "invalid transaction: delete without id");
  } else {
    return sh_error(err, 400, "invalid transaction: unknown op %s", o);
  }
  return 0;
}

/* A new version of the cluster with node `id` in its removed list until
 * `until`, and entries whose time has passed (at the tx's time) gone. */
static int stage_node_removed(struct store *s, struct stage *st,
                              const json_t *op, int64_t tx_ns, const char *now,
                              uint64_t index, sh_err *err) {
  const char *id = jx_str(op, "id", NULL);
  json_t *until = json_object_get(op, "until");
  if (!id || !*id || !json_is_integer(until))
    return sh_error(err, 400, "invalid transaction: malformed node_removed");
  json_t *cl = store_cluster(s);
  if (!cl)
    return sh_error(err, 404, "cluster not found");
  struct staged *e = stage_get(s, st, STORE_CLUSTER, jx_str(cl, "ID", ""));
  if (!e->cur)
    return sh_error(err, 404, "cluster not found");
  json_t *nv = json_deep_copy(e->cur);
  json_t *list = json_object_get(nv, REMOVED_KEY);
  if (!json_is_object(list)) {
    list = json_object();
    json_object_set_new(nv, REMOVED_KEY, list);
  }
  const char *k;
  json_t *v, *tmp;
  json_object_foreach_safe(list, tmp, k, v) {
    if (!json_is_integer(v) || json_integer_value(v) < tx_ns)
      json_object_del(list, k);
  }
  json_object_set_new(list, id, json_integer(json_integer_value(until)));
  stamp(st, nv, now, index);
  json_decref(e->cur);
  e->cur = nv;
  e->others = true;
  return 0;
}

/* A new version of a service whose spec, task template or endpoint spec
 * equals its previous version's keeps the previous object: its tasks
 * share those (task_new, named templates), and a put parsed from an
 * entry (a follower's, or any update's) would otherwise leave them
 * holding an equal copy, which a snapshot could no longer name. The new
 * Spec may be the proposer's own (shared): it is copied, not changed. */
static void keep_spec_objects(const json_t *cur, json_t *nv) {
  json_t *cs = json_object_get(cur, "Spec"), *ns = json_object_get(nv, "Spec");
  if (!json_is_object(cs) || !json_is_object(ns) || cs == ns)
    return;
  if (json_equal(cs, ns)) {
    json_object_set(nv, "Spec", cs);
    return;
  }
  static const char *const keys[] = {"TaskTemplate", "EndpointSpec"};
  json_t *spec = NULL;
  for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
    json_t *c = json_object_get(cs, keys[i]), *n = json_object_get(ns, keys[i]);
    if (!c || !n || c == n || !json_equal(c, n))
      continue;
    if (!spec)
      spec = json_copy(ns);
    json_object_set(spec, keys[i], c);
  }
  if (spec)
    json_object_set_new(nv, "Spec", spec);
}

/* An update that carries only what changed (store_tx_update). */
static int stage_patch(struct store *s, struct stage *st, json_t *op,
                       const char *now, uint64_t index, sh_err *err) {
  enum store_kind k;
  const char *kn = jx_str(op, "kind", NULL);
  const char *id = jx_str(op, "id", NULL);
  json_t *ex = json_object_get(op, "expect");
  json_t *set = json_object_get(op, "set");
  json_t *unset = json_object_get(op, "unset");
  if (!kn || !kind_from_name(kn, &k) || k == STORE_CLUSTER || !id || !*id ||
      !json_is_integer(ex) || json_integer_value(ex) <= 0 ||
      !json_is_object(set) || !json_is_array(unset))
    return sh_error(err, 400, "invalid transaction: malformed patch");
  struct staged *e = stage_get(s, st, k, id);
  if (!e->cur)
    return sh_error(err, 404, "%s %s not found", kn, id);
  if (obj_version(e->cur) != json_integer_value(ex))
    return sh_error(err, STORE_SEQ_STATUS, STORE_SEQ_MSG);
  json_t *nv = json_copy(e->cur);
  const char *key;
  json_t *v;
  json_object_foreach(set, key, v) {
    if (!stamped(key))
      json_object_set(nv, key, v);
  }
  size_t i;
  json_array_foreach(unset, i, v) {
    const char *u = json_string_value(v);
    if (u && !stamped(u))
      json_object_del(nv, u);
  }
  if (k == STORE_SERVICE)
    keep_spec_objects(e->cur, nv);
  stamp(st, nv, now, index);
  json_decref(e->cur);
  e->cur = nv;
  e->others = true;
  return 0;
}

/* A node's status report (store_tx_task_status). The new version is a
 * shallow copy with its own Status: the store never changes an object in
 * place, so the rest is shared with the old version, not copied. */
static int stage_task_status(struct store *s, struct stage *st, json_t *op,
                             const char *now, uint64_t index, sh_err *err) {
  const char *id = jx_str(op, "id", NULL);
  const char *node = jx_str(op, "node", NULL);
  json_t *status = json_object_get(op, "status");
  if (!id || !*id || !node || !json_is_object(status))
    return sh_error(err, 400, "invalid transaction: malformed task_status");
  if (!s->status_rule)
    return sh_error(err, 400, "invalid transaction: no rule for task_status");
  struct staged *e = stage_get(s, st, STORE_TASK, id);
  if (!e->cur || strcmp(jx_str(e->cur, "NodeID", ""), node) != 0)
    return 0; /* gone, or not that node's: nothing to record */
  json_t *ns = s->status_rule(e->cur, status);
  if (!ns)
    return 0;
  json_t *nv = json_copy(e->cur);
  json_object_set_new(nv, "Status", ns);
  stamp(st, nv, now, index);
  json_decref(e->cur);
  e->cur = nv;
  return 0;
}

/* A task put naming its template (store_tx_name_templates): the
 * service, as the transaction stages it, must have the spec version
 * named (a spec version is always the same spec: an update sets a new
 * one, a rollback the previous spec's); its task template and endpoint
 * spec become the task's Spec and _EndpointSpec, shared, as the
 * proposer's task had them. */
static int fill_template(struct store *s, struct stage *st, enum store_kind k,
                         json_t *nv, const json_t *tm, sh_err *err) {
  const char *sid = jx_str(tm, "service", NULL);
  json_t *ver = json_object_get(tm, "spec_version");
  if (k != STORE_TASK || !sid || !*sid || !json_is_integer(ver) ||
      strcmp(sid, jx_str(nv, "ServiceID", "")) != 0 ||
      json_object_get(nv, "Spec") || json_object_get(nv, "_EndpointSpec"))
    return sh_error(err, 400, "invalid transaction: malformed template");
  /* Read, not staged: a staged service would go through the name checks
   * of every transaction that names it. */
  struct staged *e = stage_find(st, STORE_SERVICE, sid);
  json_t *svc = e ? e->cur : store_get(s, STORE_SERVICE, sid);
  if (!svc)
    return sh_error(err, 404, "service %s not found", sid);
  if (jx_int(svc, SPEC_VERSION_KEY, 0) != json_integer_value(ver))
    return sh_error(err, STORE_SEQ_STATUS, STORE_SEQ_MSG);
  if (!json_is_object(jx_get(svc, "Spec.TaskTemplate")))
    return sh_error(err, 400,
                    "invalid transaction: service %s has no "
                    "task template",
                    sid);
  take_template(nv, svc);
  return 0;
}

/* Checks one op against the staged view and records its effect. */
static int stage_op(struct store *s, struct stage *st, json_t *op,
                    int64_t tx_ns, const char *now, uint64_t index,
                    sh_err *err) {
  if (strcmp(jx_str(op, "op", ""), "node_removed") == 0)
    return stage_node_removed(s, st, op, tx_ns, now, index, err);
  if (strcmp(jx_str(op, "op", ""), "task_status") == 0)
    return stage_task_status(s, st, op, now, index, err);
  if (strcmp(jx_str(op, "op", ""), "patch") == 0)
    return stage_patch(s, st, op, now, index, err);
  enum store_kind k = STORE_CLUSTER;
  bool is_put = false;
  int64_t expect = 0;
  if (parse_op(op, &k, &is_put, &expect, err) < 0)
    return -1;
  const char *kn = store_kind_name(k);
  json_t *obj = json_object_get(op, "obj");
  const char *id = is_put ? jx_str(obj, "ID", NULL) : jx_str(op, "id", NULL);
  struct staged *e = stage_get(s, st, k, id);

  if (is_put) {
    if (expect == STORE_MUST_CREATE && e->cur)
      return sh_error(err, 409, "%s with ID %s already exists", kn, id);
    if (expect > 0) {
      if (!e->cur)
        return sh_error(err, 404, "%s %s not found", kn, id);
      if (obj_version(e->cur) != expect)
        return sh_error(err, STORE_SEQ_STATUS, STORE_SEQ_MSG);
    }
    /* An entry parsed for this apply alone is freed after it: its object
     * becomes the new version as it is, stamped in place, not deep-copied
     * (the put of a whole task was most of an apply's copying). The
     * proposer's own document is shared: a shallow copy is stamped (the
     * store never changes an object in place, so the rest can be shared). */
    json_t *nv = st->shared ? json_copy(obj) : json_incref(obj);
    json_t *tm = json_object_get(op, "template");
    if (tm && fill_template(s, st, k, nv, tm, err) < 0) {
      json_decref(nv);
      return -1;
    }
    json_t *created = e->cur ? json_object_get(e->cur, "CreatedAt") : NULL;
    stamp(st, nv, now, index);
    json_object_set(nv, "CreatedAt",
                    json_is_string(created) ? created : st->now);
    /* Only node_removed changes the removed list: a put made from an
     * older copy of the cluster must not bring a removed node back. */
    json_t *removed = json_object_get(e->cur, REMOVED_KEY);
    if (k == STORE_CLUSTER && removed)
      json_object_set(nv, REMOVED_KEY, removed);
    else if (k == STORE_CLUSTER)
      json_object_del(nv, REMOVED_KEY);
    if (k == STORE_SERVICE && e->cur)
      keep_spec_objects(e->cur, nv);
    json_decref(e->cur);
    e->cur = nv;
    e->others = true;
  } else {
    if (!e->cur)
      return sh_error(err, 404, "%s %s not found", kn, id);
    if (expect > 0 && obj_version(e->cur) != expect)
      return sh_error(err, STORE_SEQ_STATUS, STORE_SEQ_MSG);
    json_decref(e->cur);
    e->cur = NULL;
    e->others = true;
  }
  return 0;
}

/* Name uniqueness over the state the transaction would produce. */
static int check_names(struct store *s, struct stage *st, sh_err *err) {
  for (size_t i = 0; i < st->n; i++) {
    struct staged *e = &st->v[i];
    if (!e->cur || !unique_names(e->kind))
      continue;
    const char *name = obj_name(e->kind, e->cur);
    if (!name)
      continue;
    const char *kn = store_kind_name(e->kind);
    for (size_t j = 0; j < st->n; j++) {
      struct staged *f = &st->v[j];
      if (j == i || f->kind != e->kind || !f->cur)
        continue;
      const char *fn = obj_name(f->kind, f->cur);
      if (fn && strcmp(fn, name) == 0)
        return sh_error(err, 409, "%s with name %s already exists", kn, name);
    }
    const char *owner =
        json_string_value(json_object_get(s->names[e->kind], name));
    if (owner && strcmp(owner, e->id) != 0 && !stage_find(st, e->kind, owner))
      return sh_error(err, 409, "%s with name %s already exists", kn, name);
  }
  return 0;
}

static void notify(struct store *s, const struct store_change *ch, size_t n) {
  s->notifying++;
  for (size_t i = 0; i < s->nwatchers; i++) {
    struct watcher w = s->watchers[i];
    if (w.fn)
      w.fn(ch, n, s->index, w.ud);
  }
  s->notifying--;
  if (s->notifying == 0) {
    size_t j = 0;
    for (size_t i = 0; i < s->nwatchers; i++)
      if (s->watchers[i].fn)
        s->watchers[j++] = s->watchers[i];
    s->nwatchers = j;
  }
}

int store_entry_decode(const char *data, size_t len, json_t **out,
                       sh_err *err) {
  *out = NULL;
  if (!data || len == 0)
    return sh_error(err, 400, "invalid transaction: empty");
  sh_err e = {0};
  if (jcbor_parse_object(data, len, out, &e) < 0)
    return sh_error(err, 400, "invalid transaction: %s", e.msg);
  return 0;
}

int store_apply(struct store *s, const char *data, size_t len, uint64_t index,
                sh_err *err) {
  cleanup_json json_t *doc = NULL;
  if (store_entry_decode(data, len, &doc, err) < 0)
    return -1;
  return store_apply_doc(s, doc, false, index, err);
}

int store_apply_doc(struct store *s, json_t *doc, bool shared, uint64_t index,
                    sh_err *err) {
  json_t *t = json_object_get(doc, "time");
  json_t *ops = json_object_get(doc, "ops");
  if (!json_is_integer(t) || !json_is_array(ops))
    return sh_error(err, 400, "invalid transaction: missing time or ops");
  char now[64];
  clock_format_rfc3339(json_integer_value(t), now, sizeof now);

  struct stage st = {.shared = shared};
  size_t i;
  json_t *op;
  json_array_foreach(ops, i, op) {
    if (stage_op(s, &st, op, json_integer_value(t), now, index, err) < 0) {
      stage_free(&st);
      return -1;
    }
  }
  if (check_names(s, &st, err) < 0) {
    stage_free(&st);
    return -1;
  }

  /* Commit. Names first leave the index, then enter it, so a swap of names
   * inside one transaction works. */
  for (i = 0; i < st.n; i++) {
    struct staged *e = &st.v[i];
    if (e->old && unique_names(e->kind)) {
      const char *n = obj_name(e->kind, e->old);
      const char *owner =
          n ? json_string_value(json_object_get(s->names[e->kind], n)) : NULL;
      if (owner && strcmp(owner, e->id) == 0)
        json_object_del(s->names[e->kind], n);
    }
  }
  struct store_change *changes = xcalloc(st.n ? st.n : 1, sizeof *changes);
  size_t nch = 0;
  for (i = 0; i < st.n; i++) {
    struct staged *e = &st.v[i];
    if (e->old == e->cur)
      continue; /* created and deleted in the same transaction, or a
                   report that recorded nothing */
    bool status_only = e->kind == STORE_TASK && e->old && e->cur && !e->others;
    /* A status report's version shares every other value with the old
     * one, whose values are shared already. */
    if (e->cur && e->kind == STORE_TASK && !status_only)
      share_values(s, e->cur, e->old);
    json_t *box = json_object_get(s->objs[e->kind], e->id);
    if (e->cur && box) {
      json_array_set(box, 0, e->cur);
    } else if (e->cur) {
      box = box_new(e->kind, e->cur);
      json_object_set_new(s->objs[e->kind], e->id, box);
    }
    index_move(s->idx, e->kind, e->old, e->cur, box, status_only);
    if (e->cur) {
      const char *n = unique_names(e->kind) ? obj_name(e->kind, e->cur) : NULL;
      if (n)
        json_object_set_new(s->names[e->kind], n, json_string(e->id));
    } else {
      json_object_del(s->objs[e->kind], e->id);
    }
    changes[nch++] =
        (struct store_change){e->kind, e->id, e->old, e->cur, status_only};
  }
  s->index = index;
  /* A transaction that changed nothing (reports that recorded nothing)
   * is no news: the watchers take n == 0 for a restore, after which
   * they look at everything again. */
  if (nch > 0)
    notify(s, changes, nch);
  free(changes);
  stage_free(&st);
  if (err)
    sh_err_clear(err);
  return 0;
}

/* ---- snapshot ---- */

json_t *store_snapshot_view(struct store *s) {
  json_t *objs = json_object();
  for (int k = 0; k < STORE_NKINDS; k++) {
    json_t *arr = json_array();
    const char *id;
    json_t *v;
    json_object_foreach(s->objs[k], id, v) json_array_append(arr, unbox(v));
    json_object_set_new(objs, kind_names[k], arr);
  }
  return json_pack("{s:I, s:o, s:b, s:b}", "index", (json_int_t)s->index,
                   "objects", objs, "templates",
                   store_managers_read(s, STORE_ENTRIES_SNAPSHOT_TEMPLATES),
                   "cbor", store_managers_read(s, STORE_ENTRIES_SNAPSHOT_CBOR));
}

/* s (n bytes) as a JSON string (jansson's escapes; UTF-8 as it is). */
static void put_string(sh_buf *b, const char *s, size_t n) {
  buf_append(b, "\"", 1);
  const char *run = s, *end = s + n;
  for (; s < end; s++) {
    unsigned char c = (unsigned char)*s;
    if (c >= 0x20 && c != '"' && c != '\\')
      continue;
    buf_append(b, run, (size_t)(s - run));
    if (c == '"' || c == '\\')
      buf_printf(b, "\\%c", c);
    else
      buf_printf(b, "\\u%04x", c);
    run = s + 1;
  }
  buf_append(b, run, (size_t)(s - run));
  buf_append(b, "\"", 1);
}

static int put_cb(const char *data, size_t n, void *ud) {
  buf_append(ud, data, n);
  return 0;
}

/* 0, or -1 if jansson could not encode v (too deep). */
static int put_value(sh_buf *b, const json_t *v) {
  if (json_is_string(v))
    put_string(b, json_string_value(v), json_string_length(v));
  else if (json_is_integer(v))
    buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
  else
    return json_dump_callback(v, put_cb, b, JSON_COMPACT | JSON_ENCODE_ANY);
  return 0;
}

/* A service whose template the snapshot's tasks may name
 * (shares_template, the entries' rule). */
struct snap_tmpl {
  const json_t *svc;
  const char *sid;
  json_int_t version;
};

static const struct snap_tmpl *snap_tmpl_of(const struct snap_tmpl *tm,
                                            const json_t *by_sid,
                                            const json_t *task) {
  const json_t *at = json_object_get(by_sid, jx_str(task, "ServiceID", ""));
  if (!at)
    return NULL;
  const struct snap_tmpl *t = &tm[json_integer_value(at)];
  return shares_template(task, t->svc) ? t : NULL;
}

/* The keys a task naming its template is written without. */
static bool template_key(const char *k) {
  return !strcmp(k, "Spec") || !strcmp(k, "_EndpointSpec");
}

/* A task that shares its service's template, written without it: its
 * other keys, then TEMPLATE_KEY naming the service and spec version. */
static int put_named(sh_buf *b, const json_t *task,
                     const struct snap_tmpl *tm) {
  buf_append(b, "{", 1);
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)task, k, v) {
    if (template_key(k))
      continue;
    put_string(b, k, strlen(k));
    buf_append(b, ":", 1);
    if (put_value(b, v) < 0)
      return -1;
    buf_append(b, ",", 1);
  }
  buf_printf(b, "\"" TEMPLATE_KEY "\":{\"service\":");
  put_string(b, tm->sid, strlen(tm->sid));
  buf_printf(b, ",\"spec_version\":%" JSON_INTEGER_FORMAT "}}", tm->version);
  return 0;
}

/* The view's services' templates, when it may name them; *by_sid maps a
 * service's ID to its place in them. */
static struct snap_tmpl *snap_tmpls(const json_t *view, json_t **by_sid) {
  *by_sid = json_object();
  const json_t *svcs = jx_get(view, "objects.service");
  if (!jx_bool(view, "templates", false) || !json_array_size(svcs))
    return NULL;
  struct snap_tmpl *tm = xcalloc(json_array_size(svcs), sizeof *tm);
  size_t i, n = 0;
  json_t *svc;
  json_array_foreach(svcs, i, svc) {
    const char *sid = jx_str(svc, "ID", NULL);
    if (!json_is_object(jx_get(svc, "Spec.TaskTemplate")) || !sid)
      continue;
    tm[n] = (struct snap_tmpl){svc, sid, jx_int(svc, SPEC_VERSION_KEY, 0)};
    json_object_set_new(*by_sid, sid, json_integer((json_int_t)n++));
  }
  return tm;
}

/* The CBOR form of put_named: the same keys, inside depth containers. */
static int put_named_cbor(sh_buf *b, const json_t *task,
                          const struct snap_tmpl *tm, size_t depth) {
  size_t n = 1; /* TEMPLATE_KEY */
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)task, k, v) n += !template_key(k);
  jcbor_put_map(b, n);
  json_object_foreach((json_t *)task, k, v) {
    if (template_key(k))
      continue;
    jcbor_put_text(b, k, strlen(k));
    if (jcbor_put(b, v, depth + 1) < 0)
      return -1;
  }
  jcbor_put_text(b, TEMPLATE_KEY, strlen(TEMPLATE_KEY));
  jcbor_put_map(b, 2);
  jcbor_put_text(b, "service", strlen("service"));
  jcbor_put_text(b, tm->sid, strlen(tm->sid));
  jcbor_put_text(b, "spec_version", strlen("spec_version"));
  jcbor_put_int(b, tm->version);
  return 0;
}

/* {"index": n, "objects": {kind: [object, ...]}} as CBOR: decoded 4-5x
 * faster than the same as JSON text (a manager's restart, a follower's
 * install). An object sits inside three containers. */
static char *snapshot_cbor(const json_t *view, const struct snap_tmpl *tm,
                           const json_t *by_sid, size_t *len) {
  sh_buf b = {0};
  const json_t *objs = json_object_get(view, "objects");
  jcbor_put_map(&b, 2);
  jcbor_put_text(&b, "index", strlen("index"));
  jcbor_put_int(&b, json_integer_value(json_object_get(view, "index")));
  jcbor_put_text(&b, "objects", strlen("objects"));
  jcbor_put_map(&b, json_object_size(objs));
  const char *kn;
  json_t *arr;
  json_object_foreach((json_t *)objs, kn, arr) {
    jcbor_put_text(&b, kn, strlen(kn));
    jcbor_put_array(&b, json_array_size(arr));
    bool tasks = strcmp(kn, kind_names[STORE_TASK]) == 0;
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o) {
      const struct snap_tmpl *t =
          tasks && tm ? snap_tmpl_of(tm, by_sid, o) : NULL;
      if (t ? put_named_cbor(&b, o, t, 3) < 0 : jcbor_put(&b, o, 3) < 0) {
        buf_free(&b);
        return NULL;
      }
    }
  }
  if (len)
    *len = b.len;
  return b.data;
}

char *store_snapshot_encode(const json_t *view, size_t *len) {
  sh_buf b = {0};
  cleanup_json json_t *by_sid = NULL;
  cleanup_free struct snap_tmpl *tm = snap_tmpls(view, &by_sid);
  if (jx_bool(view, "cbor", false))
    return snapshot_cbor(view, tm, by_sid, len);
  buf_printf(&b, "{\"index\":%" JSON_INTEGER_FORMAT ",\"objects\":{",
             json_integer_value(json_object_get(view, "index")));
  const char *kn;
  json_t *arr;
  bool first_kind = true;
  json_object_foreach(json_object_get(view, "objects"), kn, arr) {
    buf_printf(&b, "%s\"%s\":[", first_kind ? "" : ",", kn);
    first_kind = false;
    bool tasks = strcmp(kn, kind_names[STORE_TASK]) == 0;
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o) {
      if (i)
        buf_append(&b, ",", 1);
      const struct snap_tmpl *t =
          tasks && tm ? snap_tmpl_of(tm, by_sid, o) : NULL;
      if (t ? put_named(&b, o, t) < 0
            : json_dump_callback(o, put_cb, &b, JSON_COMPACT) < 0) {
        buf_free(&b);
        return NULL; /* too deep for jansson: no snapshot this time */
      }
    }
    buf_append(&b, "]", 1);
  }
  buf_append(&b, "}}", 2);
  if (len)
    *len = b.len;
  return b.data;
}

char *store_snapshot(struct store *s, size_t *len) {
  cleanup_json json_t *view = store_snapshot_view(s);
  return store_snapshot_encode(view, len);
}

/* A restored task naming its template (store_snapshot_view) gets its
 * service's objects; the snapshot's own spec version must be the
 * service's, since both come from one view. */
static int restore_template(json_t **nobjs, json_t *t, sh_err *err) {
  json_t *tm = json_object_get(t, TEMPLATE_KEY);
  const char *sid = jx_str(tm, "service", NULL);
  json_t *ver = json_object_get(tm, "spec_version");
  json_t *svc = sid ? unbox(json_object_get(nobjs[STORE_SERVICE], sid)) : NULL;
  if (!svc || strcmp(sid, jx_str(t, "ServiceID", "")) != 0 ||
      !json_is_integer(ver) ||
      jx_int(svc, SPEC_VERSION_KEY, 0) != json_integer_value(ver) ||
      !json_is_object(jx_get(svc, "Spec.TaskTemplate")) ||
      json_object_get(t, "Spec") || json_object_get(t, "_EndpointSpec"))
    return sh_error(err, 400, "invalid snapshot: bad task template");
  take_template(t, svc);
  json_object_del(t, TEMPLATE_KEY);
  return 0;
}

int store_restore(struct store *s, const char *data, size_t len, sh_err *err) {
  if (!data || len == 0)
    return sh_error(err, 400, "invalid snapshot: empty");
  cleanup_json json_t *doc = NULL;
  sh_err e = {0};
  if (jcbor_parse_object(data, len, &doc, &e) < 0)
    return sh_error(err, 400, "invalid snapshot: %s", e.msg);
  json_t *idx = json_object_get(doc, "index");
  json_t *objs = json_object_get(doc, "objects");
  if (!json_is_integer(idx) || json_integer_value(idx) < 0 ||
      !json_is_object(objs))
    return sh_error(err, 400, "invalid snapshot: missing index or objects");

  json_t *nobjs[STORE_NKINDS], *nnames[STORE_NKINDS], *nidx[STORE_NINDEXES];
  for (int k = 0; k < STORE_NKINDS; k++) {
    nobjs[k] = json_object();
    nnames[k] = json_object();
  }
  for (int i = 0; i < STORE_NINDEXES; i++)
    nidx[i] = json_object();
  int rc = 0;
  cleanup_json json_t *named = json_array(); /* tasks naming a template */
  const char *kn;
  json_t *arr;
  json_object_foreach(objs, kn, arr) {
    enum store_kind k;
    if (!kind_from_name(kn, &k) || !json_is_array(arr)) {
      rc = sh_error(err, 400, "invalid snapshot: bad kind %s", kn);
      goto out;
    }
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o) {
      const char *id = jx_str(o, "ID", NULL);
      if (!json_is_object(o) || !id || !*id || json_object_get(nobjs[k], id)) {
        rc = sh_error(err, 400, "invalid snapshot: bad %s object", kn);
        goto out;
      }
      if (json_object_get(o, TEMPLATE_KEY) && k != STORE_TASK) {
        rc = sh_error(err, 400, "invalid snapshot: a %s names a template", kn);
        goto out;
      }
      if (json_object_get(o, TEMPLATE_KEY))
        json_array_append(named, o);
      if (k == STORE_TASK)
        share_values(s, o, NULL);
      json_t *box = box_new(k, o);
      json_object_set_new(nobjs[k], id, box);
      index_move(nidx, k, NULL, o, box, false);
      const char *n = unique_names(k) ? obj_name(k, o) : NULL;
      if (n)
        json_object_set_new(nnames[k], n, json_string(id));
    }
  }
  size_t ni;
  json_t *t;
  json_array_foreach(named, ni, t) {
    rc = restore_template(nobjs, t, err);
    if (rc < 0)
      goto out;
  }
  for (int k = 0; k < STORE_NKINDS; k++) {
    json_t *tmp = s->objs[k];
    s->objs[k] = nobjs[k];
    nobjs[k] = tmp;
    tmp = s->names[k];
    s->names[k] = nnames[k];
    nnames[k] = tmp;
  }
  for (int i = 0; i < STORE_NINDEXES; i++) {
    json_t *tmp = s->idx[i];
    s->idx[i] = nidx[i];
    nidx[i] = tmp;
  }
  s->index = (uint64_t)json_integer_value(idx);
out:
  for (int k = 0; k < STORE_NKINDS; k++) {
    json_decref(nobjs[k]);
    json_decref(nnames[k]);
  }
  for (int i = 0; i < STORE_NINDEXES; i++)
    json_decref(nidx[i]);
  if (rc == 0) {
    notify(s, NULL, 0);
    if (err)
      sh_err_clear(err);
  }
  return rc;
}

/* ---- watchers ---- */

int store_watch(struct store *s, store_watch_fn fn, void *ud) {
  if (s->nwatchers == s->capwatchers) {
    s->capwatchers = s->capwatchers ? s->capwatchers * 2 : 4;
    s->watchers = xrealloc(s->watchers, s->capwatchers * sizeof *s->watchers);
  }
  int id = s->next_watch_id++;
  s->watchers[s->nwatchers++] = (struct watcher){id, fn, ud};
  return id;
}

void store_unwatch(struct store *s, int watch_id) {
  for (size_t i = 0; i < s->nwatchers; i++) {
    if (s->watchers[i].id != watch_id)
      continue;
    if (s->notifying) {
      s->watchers[i].fn = NULL; /* compacted after the notification */
    } else {
      memmove(&s->watchers[i], &s->watchers[i + 1],
              (s->nwatchers - i - 1) * sizeof *s->watchers);
      s->nwatchers--;
    }
    return;
  }
}
