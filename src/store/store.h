/* The cluster state: every object kind the managers keep, in memory, as
 * JSON objects shaped like the Engine API's (Node, Service, Task, Network,
 * Secret, Config; the cluster as the API's Swarm object).
 *
 * The store changes only by applying transactions that raft has committed
 * (store_apply is the FSM's apply): a proposer builds a store_tx, encodes
 * it, raft replicates it, and every manager applies the same bytes at the
 * same index. Preconditions (the object's Version.Index, name uniqueness,
 * existence) are checked at apply time, so a stale write fails the same way
 * everywhere and leaves the store unchanged ("update out of sequence").
 *
 * Applying stamps Version.Index with the raft index, UpdatedAt with the
 * transaction's time (CreatedAt on first put), so results are deterministic.
 * Keys starting with '_' are internal (CA key, token secrets) and are
 * stripped from API output by store_public(). Watchers are called after
 * each applied transaction with what changed. */
#ifndef SHOAL_STORE_STORE_H
#define SHOAL_STORE_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sh_err;

enum store_kind {
  STORE_CLUSTER,
  STORE_NODE,
  STORE_SERVICE,
  STORE_TASK,
  STORE_NETWORK,
  STORE_SECRET,
  STORE_CONFIG,
  STORE_NKINDS
};

const char *store_kind_name(enum store_kind k); /* "node", "service" ... */

/* Expectations for a put/delete, checked at apply time. */
#define STORE_ANY_VERSION (-1) /* no check */
#define STORE_MUST_CREATE 0    /* object must not exist yet */

struct store;
struct store_tx;

struct store *store_new(void);
void store_free(struct store *s);

/* Borrowed reference to the object with exactly this ID, or NULL. */
json_t *store_get(struct store *s, enum store_kind k, const char *id);
/* Resolves as Docker does: full ID, then name (Spec.Name, or
 * Description.Hostname for nodes), then a unique ID prefix. 404 "<kind>
 * <ref> not found" when none; 400 "<kind> <ref> is ambiguous (N matches
 * found)" when a
 * prefix or name matches several. Borrowed reference. */
json_t *store_find(struct store *s, enum store_kind k, const char *ref,
                   struct sh_err *err);
/* New array holding references to the live objects (do not modify them),
 * sorted by CreatedAt then ID. */
json_t *store_list(struct store *s, enum store_kind k);
size_t store_count(struct store *s, enum store_kind k);
/* Whether fn says true of any object of kind k, asked in no particular
 * order (no sort) until one does. fn must not change the store. */
bool store_any(struct store *s, enum store_kind k,
               bool (*fn)(const json_t *obj, void *ud), void *ud);

/* Secondary indexes, kept by store_apply and store_restore: the objects of
 * one kind whose field equals a key. An object without the field (a task
 * not yet placed has no NodeID) is in no bucket; an empty string is a key
 * like any other. */
enum store_index {
  STORE_TASKS_BY_SERVICE, /* task ServiceID */
  STORE_TASKS_BY_NODE,    /* task NodeID */
  STORE_TASKS_BY_DESIRED, /* task DesiredState */
  /* task Status.State of the tasks not yet on a node (new, allocated,
   * pending): the allocator's and the scheduler's work; the states after
   * have no bucket (a status report moves nothing) */
  STORE_TASKS_WAITING,
  STORE_SERVICES_BY_NAME, /* service Spec.Name */
  STORE_NETWORKS_BY_NAME, /* network Spec.Name */
  /* task NetworksAttachments.0.Network.ID: every task attached to a
   * network is in one bucket (peer sets and the mesh walk only these) */
  STORE_TASKS_BY_NETWORK,
  /* ServiceID of the tasks running and desired at most running, and of
   * those complete: a service's replica counts without its tasks */
  STORE_TASKS_UP_BY_SERVICE,
  STORE_TASKS_DONE_BY_SERVICE,
  STORE_NODES_BY_STATE, /* node Status.State: the down ones */
  /* "manager" for nodes with a ManagerStatus (raft members, and managers
   * being demoted): the dispatcher's 4-a-second checks walk these, not
   * every node */
  STORE_MANAGER_NODES,
  STORE_NINDEXES
};
/* The kind an index is over. */
enum store_kind store_index_kind(enum store_index ix);
/* The field (dotted path) an index is keyed by. */
const char *store_index_field(enum store_index ix);
/* The key obj is under in ix (borrowed from obj), or NULL: the field's
 * value, or for the up/done indexes ServiceID when the state matches. */
const char *store_index_key(enum store_index ix, const json_t *obj);
/* As store_list, restricted to the objects whose index field equals key:
 * a new array of borrowed objects sorted by CreatedAt then ID. The cost
 * is that of the result, not of the kind. */
json_t *store_list_by(struct store *s, enum store_index ix, const char *key);
size_t store_count_by(struct store *s, enum store_index ix, const char *key);
/* A union of buckets in store_list's order: jx_sorted_by_created
 * (core/jsonx.h), which store_list and store_list_by use. */
/* The keys an index has now (a new array of strings, in no order). */
json_t *store_index_keys(struct store *s, enum store_index ix);
/* Calls fn on every object in the bucket, in no particular order (no
 * sort: the cheapest walk). fn must not change the store. */
void store_each_by(struct store *s, enum store_index ix, const char *key,
                   void (*fn)(json_t *obj, void *ud), void *ud);
/* The single cluster object, or NULL before init. Borrowed. */
json_t *store_cluster(struct store *s);
/* Whether node_id is in the cluster's removed-node list. */
bool store_node_removed(struct store *s, const char *node_id);
/* Raft index of the last applied transaction. */
uint64_t store_index(struct store *s);

/* A copy with '_'-prefixed keys removed at every level: its objects and
 * arrays are new (the caller may edit them), its scalars shared. */
json_t *store_public(const json_t *obj);
/* The same view for a caller that only reads it (encodes it): a new
 * top-level object, whose values are the store's own wherever no
 * '_'-prefixed key is below them. Edit its top level only; a value
 * below must be copied before it is changed. */
json_t *store_view(const json_t *obj);

/* Transactions. put steals obj (which must have "ID"). */
struct store_tx *store_tx_new(void);
void store_tx_free(struct store_tx *tx);
void store_tx_put(struct store_tx *tx, enum store_kind k, json_t *obj,
                  int64_t expect_version);
void store_tx_delete(struct store_tx *tx, enum store_kind k, const char *id,
                     int64_t expect_version);
/* As store_tx_put of obj over cur (the live object it was made from,
 * borrowed), but the entry carries only the top-level fields that differ
 * (a "patch" op), and the apply makes the new version a shallow copy of
 * the old with those fields replaced or removed. Same checks and result
 * as the put: the version must be expect_version, the object must exist.
 * Without cur, or for the cluster object, it is a put. Steals obj. */
void store_tx_update(struct store_tx *tx, enum store_kind k, json_t *obj,
                     const json_t *cur, int64_t expect_version);
/* Records that a node was removed from the swarm (node rm, or the node
 * left), as swarmkit's Cluster.BlacklistedCertificates: the cluster's
 * "_RemovedNodes" maps the node ID to until_ns, after which no
 * certificate issued to it can still be valid. Applying it bumps the
 * cluster's version and drops entries already past their time; a put of
 * the cluster keeps the list (only this op changes it). */
void store_tx_node_removed(struct store_tx *tx, const char *node_id,
                           int64_t until_ns);
/* A node's report of its task's status, as a merge the managers apply:
 * no version check, so reports from many nodes share one entry and none
 * fails for another writer's change. At apply time, a task that is gone
 * or not on node_id is left alone, and otherwise the store's status rule
 * (store_set_status_rule) decides: the Status it returns is recorded, the
 * rest of the task kept; NULL records nothing. Steals status. */
void store_tx_task_status(struct store_tx *tx, const char *task_id,
                          const char *node_id, json_t *status);
/* Whether v, as the value of a field of a stored object, nests shallowly
 * enough for a snapshot to hold the object (in CBOR, inside three
 * containers, it may nest JCBOR_MAX_DEPTH - 4). A task_status op carries
 * its status one container higher than a snapshot does, so the entry of
 * a status one level deeper still encodes and applies, and then no
 * snapshot can be taken while its task lives: the leader checks what
 * nodes report before it proposes it. */
bool store_field_fits(const json_t *v);
/* The rule of task_status ops: a new Status from the task and the
 * report, or NULL. It must be a function of its arguments (every manager
 * applies the same entry). A store without one refuses those ops. */
typedef json_t *(*store_status_rule)(const json_t *task, const json_t *status);
void store_set_status_rule(struct store *s, store_status_rule rule);
bool store_tx_empty(const struct store_tx *tx);
size_t store_tx_ops(const struct store_tx *tx); /* puts and deletes */
/* Calls fn on the object of every put of kind k that creates (expects
 * version 0), in order. Until the tx is proposed, fn may change it. */
void store_tx_each_new(struct store_tx *tx, enum store_kind k,
                       void (*fn)(json_t *obj, void *ud), void *ud);
/* Calls fn for every other put or patch of kind k: the object's ID and
 * the top-level fields the op sets (a put's whole object, a patch's
 * changed fields). */
void store_tx_each_update(const struct store_tx *tx, enum store_kind k,
                          void (*fn)(const char *id, const json_t *fields,
                                     void *ud),
                          void *ud);
/* An entry's bytes as JSON text (store_entry_encode picks the form raft
 * replicates); now_ns stamps the objects. */
char *store_tx_encode(const struct store_tx *tx, int64_t now_ns, size_t *len);
/* The same in two steps: the entry's document (new reference, sharing the
 * tx's objects), and its bytes (NULL when it cannot be encoded). */
json_t *store_tx_doc(const struct store_tx *tx, int64_t now_ns);
char *store_doc_encode(const json_t *doc, size_t *len);
/* An entry's bytes in the newest form every manager of s reads: CBOR once
 * they all read STORE_ENTRIES_CBOR (never NULL), JSON text before (NULL
 * when it cannot be encoded, as store_doc_encode). */
char *store_entry_encode(struct store *s, const json_t *doc, size_t *len);
/* An entry's document from its bytes, in either form (a CBOR map or JSON
 * text): 0 and a new reference in *out, or 400 "invalid transaction: ...". */
int store_entry_decode(const char *data, size_t len, json_t **out,
                       struct sh_err *err);
/* For a proposer whose store is s, just before encoding: a new task
 * whose Spec and _EndpointSpec are its service's own objects in s
 * (task_new shares them) goes in naming the service and its spec version
 * ("_SpecVersion") instead of carrying them, unless the transaction
 * changes that service. They are taken out of the tx's objects: the tx
 * is then only good for encoding. Every manager's apply takes them from
 * the service as the entry finds it, and refuses the transaction
 * ("update out of sequence") if its spec moved on in between. A thousand
 * tasks of a service no longer carry a thousand copies of its template,
 * to parse, and to keep, on every follower. */
void store_tx_name_templates(struct store *s, struct store_tx *tx);
/* The entries and snapshots this build's apply and restore understand,
 * which a node publishes as its Description._Entries: 1, tasks naming
 * their template in entries; 2, in snapshots too (TEMPLATE_KEY). A
 * manager writes a form only once every manager says it reads it (an
 * older one, in a rolling upgrade, would store such tasks without their
 * Spec). */
#define STORE_ENTRIES_TEMPLATES 1
#define STORE_ENTRIES_SNAPSHOT_TEMPLATES 2
/* 3: entries in CBOR (core/jcbor.h) instead of JSON text. */
#define STORE_ENTRIES_CBOR 3
/* 4: snapshots in CBOR too. */
#define STORE_ENTRIES_SNAPSHOT_CBOR 4
#define STORE_ENTRIES STORE_ENTRIES_SNAPSHOT_CBOR /* the newest */
#define STORE_ENTRIES_KEY "_Entries"
bool store_managers_read(struct store *s, int form);
/* Whether a node (its Description) may become a manager of the swarm in
 * s: only a build that reads every form the managers may write. A
 * refusal's words go to err (400). */
int store_check_new_manager(struct store *s, const json_t *desc,
                            struct sh_err *err);

/* FSM apply: all-or-nothing. Errors: 500 "update out of sequence" for a
 * stale version (moby maps swarmkit's gRPC Unknown to 500), 409 "<kind> with
 * name X already exists" / "... ID X already exists", 404 "<kind> X not found"
 * for a missing update or delete target, 400 for undecodable bytes. Watchers
 * run only on success. */
int store_apply(struct store *s, const char *data, size_t len, uint64_t index,
                struct sh_err *err);
/* store_apply of an entry's document as store_tx_doc made it, which the
 * proposing leader still holds (shared: its objects are not changed) or
 * which was parsed for this call alone. The result is the same as
 * store_apply of the document's encoding. On the leader the store then
 * shares the nested values of what was proposed: an object given to
 * store_tx_put or store_tx_update is frozen from then on, as the
 * store's own objects are (sanitizer builds check it at apply). */
int store_apply_doc(struct store *s, json_t *doc, bool shared, uint64_t index,
                    struct sh_err *err);

/* Snapshot of every object and the applied index, and its restore (which
 * replaces the whole content). */
char *store_snapshot(struct store *s, size_t *len);
/* The same in two steps, so the encoding can leave the loop: the view
 * holds references to the live objects (cheap), which are never changed
 * in place (a put replaces them), so encoding it on another thread while
 * the store goes on is safe (jansson's reference counts are atomic).
 * json_decref the view on the store's thread. Once every manager reads
 * them (STORE_ENTRIES_SNAPSHOT_TEMPLATES), a task whose Spec and
 * _EndpointSpec are its service's own objects is written without them,
 * naming the service and its spec version in TEMPLATE_KEY, as an entry
 * names them; the restore takes the service's objects, shared (a
 * restarted manager keeps one template per service, not one per task). */
#define TEMPLATE_KEY "_Template"
json_t *store_snapshot_view(struct store *s);
/* CBOR once every manager reads it (STORE_ENTRIES_SNAPSHOT_CBOR), JSON
 * text before; NULL if an object is nested too deep to encode (deeper
 * than a reader takes). */
char *store_snapshot_encode(const json_t *view, size_t *len);
/* Either form (a CBOR map or JSON text). */
int store_restore(struct store *s, const char *data, size_t len,
                  struct sh_err *err);

/* Change notification. old/new are borrowed for the duration of the call:
 * old is NULL on create, new is NULL on delete. */
struct store_change {
  enum store_kind kind;
  const char *id;
  const json_t *old_obj;
  const json_t *new_obj;
  /* A task whose transaction only recorded status reports on it
   * (task_status ops): new_obj is old_obj with another Status and its
   * stamps (Version, UpdatedAt), every other value the same object. Most
   * changes of a large deployment are these; a watcher can look at the
   * Status alone. */
  bool status_only;
};
typedef void (*store_watch_fn)(const struct store_change *changes, size_t n,
                               uint64_t index, void *ud);
/* Returns a watch id for store_unwatch. Called after each applied
 * transaction that changed something (one that changed nothing is not
 * said), and after a restore with n == 0 (everything may have changed). */
int store_watch(struct store *s, store_watch_fn fn, void *ud);
void store_unwatch(struct store *s, int watch_id);

#endif
