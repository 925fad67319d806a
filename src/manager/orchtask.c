/* Helpers shared by the orchestrator and the scheduler (see orchtask.h). */
#include "manager/orchtask.h"

#include "core/clock.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "manager/services.h"
#include "store/store.h"

static const char *const state_names[] = {
    [TS_NEW] = "new",           [TS_ALLOCATED] = "allocated",
    [TS_PENDING] = "pending",   [TS_ASSIGNED] = "assigned",
    [TS_ACCEPTED] = "accepted", [TS_PREPARING] = "preparing",
    [TS_READY] = "ready",       [TS_STARTING] = "starting",
    [TS_RUNNING] = "running",   [TS_COMPLETE] = "complete",
    [TS_SHUTDOWN] = "shutdown", [TS_FAILED] = "failed",
    [TS_REJECTED] = "rejected", [TS_REMOVE] = "remove",
    [TS_ORPHANED] = "orphaned",
};

/* Called for every task in every pass and on every status report: the
 * first letter rules out most names before a strcmp. */
enum task_state task_state_parse(const char *s) {
  if (s && *s)
    for (size_t i = 0; i < ARRAY_SIZE(state_names); i++)
      if (state_names[i][0] == s[0] && strcmp(s, state_names[i]) == 0)
        return (enum task_state)i;
  return TS_NEW;
}

const char *task_state_name(enum task_state s) {
  if ((size_t)s >= ARRAY_SIZE(state_names))
    return "new";
  return state_names[s];
}

enum task_state task_state(const json_t *t) {
  return task_state_parse(jx_str(t, "Status.State", NULL));
}

enum task_state task_desired(const json_t *t) {
  return task_state_parse(jx_str(t, "DesiredState", NULL));
}

bool task_status_moves(const json_t *task, const json_t *status) {
  enum task_state now = task_state(task);
  enum task_state next = task_state_parse(jx_str(status, "State", ""));
  return !(next < now || (now > TS_RUNNING && next == now));
}

json_t *task_status_rule(const json_t *task, const json_t *status) {
  if (!task_status_moves(task, status))
    return NULL;
  /* A new top level; what is nested is shared with the report (the store
   * never changes an object in place), not copied for every report. */
  json_t *ns = json_copy((json_t *)status);
  const char *k;
  json_t *v;
  json_object_foreach(json_object_get(task, "Status"), k, v) {
    if (!json_object_get(ns, k))
      json_object_set(ns, k, v);
  }
  return ns;
}

void orch_out_init(struct orch_out *o) {
  memset(o, 0, sizeof *o);
  o->budget = ORCH_BATCH;
}

void orch_out_free(struct orch_out *o) {
  json_decref(o->node_fit);
  o->node_fit = NULL;
  for (size_t i = 0; i < o->ntx; i++)
    store_tx_free(o->txs[i]);
  free(o->txs);
  o->txs = NULL;
  o->ntx = o->cap = 0;
}

void orch_out_add(struct orch_out *o, struct store_tx *tx) {
  if (store_tx_empty(tx)) {
    store_tx_free(tx);
    return;
  }
  if (o->ntx == o->cap) {
    o->cap = o->cap ? o->cap * 2 : 8;
    o->txs = xrealloc(o->txs, o->cap * sizeof *o->txs);
  }
  o->txs[o->ntx++] = tx;
}

struct store_tx *orch_tx_room(struct orch_out *o, struct store_tx **tx,
                              size_t need, size_t max) {
  if (*tx && store_tx_ops(*tx) + need > max)
    orch_out_add(o, STEAL_POINTER(tx));
  if (!*tx)
    *tx = store_tx_new();
  return *tx;
}

void orch_out_wake(struct orch_out *o, int64_t at_ns) {
  if (at_ns > 0 && (o->next_wakeup_ns == 0 || at_ns < o->next_wakeup_ns))
    o->next_wakeup_ns = at_ns;
}

bool service_is_global(const json_t *svc) {
  return jx_get(svc, "Spec.Mode.Global") != NULL;
}

bool service_is_job(const json_t *svc) {
  return jx_get(svc, "Spec.Mode.ReplicatedJob") != NULL ||
         jx_get(svc, "Spec.Mode.GlobalJob") != NULL;
}

int64_t service_job_iteration(const json_t *svc) {
  return jx_int(svc, "JobStatus.JobIteration.Index", 0);
}

enum task_state task_run_state(const json_t *task) {
  return json_object_get(task, "JobIteration") ? TS_COMPLETE : TS_RUNNING;
}

int64_t service_replicas(const json_t *svc) {
  int64_t n = jx_int(svc, "Spec.Mode.Replicated.Replicas", 1);
  /* Refused at create and update; a spec already in raft from before the
   * limit must not make the leader build tasks without end either. */
  return n > SERVICES_MAX_REPLICAS ? SERVICES_MAX_REPLICAS : n;
}

int64_t service_spec_version(const json_t *svc) {
  return jx_int(svc, "_SpecVersion", 0);
}

int64_t task_timestamp(const json_t *t) {
  int64_t ns = 0;
  const char *ts = jx_str(t, "Status.Timestamp", NULL);
  if (!ts || clock_parse_rfc3339(ts, &ns, NULL) < 0)
    return 0;
  return ns;
}

json_t *task_new(struct orch_out *o, const json_t *svc, int64_t slot,
                 const char *node_id, int64_t now_ns) {
  char id[ID_LEN + 1];
  if (o && o->new_id)
    o->new_id(id, o->id_ud);
  else
    id_new(id);
  char ts[64];
  clock_format_rfc3339(now_ns, ts, sizeof ts);
  const char *sname = jx_str(svc, "Spec.Name", "");
  json_t *tmpl = jx_get(svc, "Spec.TaskTemplate");
  json_t *ep = jx_get(svc, "Spec.EndpointSpec");
  /* The task's Spec and _EndpointSpec are svc's objects, not copies:
   * nobody changes them in place (the orchestrator sets only top-level
   * keys of its copy of a service, and what is proposed is frozen), so
   * the tasks made from one copy share one template on the leader; and
   * when they are the store's own, the entry names the service instead
   * of carrying them (store_tx_name_templates), so the followers share
   * them too. */
  /* Built field by field: json_pack parses its format for each of the
   * thousand tasks of a service. */
  json_t *st = json_object();
  json_object_set_new(st, "Timestamp", json_string(ts));
  json_object_set_new(st, "State", json_string("pending"));
  json_object_set_new(st, "Message", json_string("pending task scheduling"));
  json_t *t = json_object();
  json_object_set_new(t, "ID", json_string(id));
  json_object_set_new(t, "Labels", json_object());
  json_object_set_new(t, "Spec", tmpl ? json_incref(tmpl) : json_object());
  json_object_set_new(t, "ServiceID", json_string(jx_str(svc, "ID", "")));
  json_object_set_new(t, "Status", st);
  json_object_set_new(t, "DesiredState", json_string("running"));
  json_object_set_new(t, "_SpecVersion",
                      json_integer((json_int_t)service_spec_version(svc)));
  if (ep)
    json_object_set(t, "_EndpointSpec", ep);
  if (service_is_job(svc)) {
    json_object_set_new(
        t, "JobIteration",
        json_pack("{s:I}", "Index", (json_int_t)service_job_iteration(svc)));
    json_object_set_new(t, "DesiredState", json_string("complete"));
  }
  if (node_id && *node_id) {
    json_object_set_new(t, "NodeID", json_string(node_id));
    json_object_set_new(t, "Name", json_sprintf("%s.%s", sname, node_id));
  } else {
    json_object_set_new(t, "Slot", json_integer(slot));
    /* Slot 0 (a replicated job's first) is named after its node once the
     * scheduler places it, as swarmkit's naming does. */
    if (slot != 0)
      json_object_set_new(t, "Name",
                          json_sprintf("%s.%lld", sname, (long long)slot));
  }
  return t;
}

bool orch_node_unfit(struct orch_out *o, struct store *s, const char *node_id) {
  if (!o->node_fit)
    o->node_fit = json_object();
  json_t *fit = json_object_get(o->node_fit, node_id);
  if (fit)
    return !json_is_true(fit);
  bool unfit = node_invalid(store_get(s, STORE_NODE, node_id));
  json_object_set_new(o->node_fit, node_id, json_boolean(!unfit));
  return unfit;
}

bool node_invalid(const json_t *node) {
  return !node || strcmp(jx_str(node, "Status.State", ""), "down") == 0 ||
         strcmp(jx_str(node, "Spec.Availability", "active"), "drain") == 0;
}
