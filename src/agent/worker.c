/* Task controllers: assignments -> containers -> status reports. */
#include "agent/worker.h"
#include "exec/caps.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/flow.h"
#include "core/id.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/util.h"
#include "events/events.h"
#include "core/workq.h"
#include "agent/dnsd.h"
#include "agent/health.h"
#include "agent/secretfs.h"
#include "dns/dns.h"
#include "netdev/netdev.h"
#include "exec/exec.h"
#include "image/image.h"
#include "overlay/overlay.h"
#include "seccomp/seccomp.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

#define MONITOR_MS 1000
/* Reports wait for the end of the loop turn only: the agent gathers them
 * while one is in flight (a delay here only added to each start). */
#define REPORT_DELAY_MS 0
#define DEFAULT_GRACE_NS (10 * NS_PER_SEC)
/* Threads for the worker's local container work (exit status, removal,
 * adoption): its own, so that stops and removals never wait behind image
 * pulls and creates on the daemon's queue, nor hold them up. Niced: when
 * hundreds of containers go at once, their removal (crun delete, unmount)
 * must not take the CPU from the API's reads. */
#define LOCAL_THREADS 4
#define LOCAL_NICE 10

enum phase {
  P_NEW,      /* nothing on disk yet */
  P_PREPARED, /* image present, container created */
  P_RUNNING,
  P_STOPPING, /* stop signal sent; the exit comes as a loop event */
  P_EXITED,   /* ended by itself: complete or failed */
  P_STOPPED,  /* stopped because the task's desired state said so */
  P_FAILED,   /* could not be prepared or started */
};

struct tctl {
  struct worker *w;
  char id[ID_LEN + 1];
  json_t *task;
  /* An adopted container's labels and image ({Labels, Image}), for its
   * events until its task's assignment arrives (NULL otherwise). */
  json_t *adopted_attrs;
  char cid[65];
  enum phase phase;
  bool busy;
  bool assigned;
  /* While running: the process's exit as an event, and stops without a
   * thread. NULL: not watchable (the 1 s poll covers it). */
  struct exec_watch *watch;
  int stop_signal;  /* the container's */
  bool proc_exited; /* the watch saw the exit; status not read yet */
  /* A healthcheck: probes while running. As swarmkit's controller, the
   * task stays "starting" until the first healthy probe (wait_healthy),
   * and an unhealthy container is stopped and its task fails. */
  struct health *health;
  bool wait_healthy;
  bool unhealthy;
  pid_t pid;
  /* The node's container commands (worker_ctl), one at a time: queued,
   * and the one waiting for the container's exit. */
  struct ctlreq *ctls;
  struct ctlreq *waiting;
  /* Frozen by docker pause: a signal waits for the thaw, so every stop
   * thaws it first (dockerd too). */
  bool paused;
  /* The container's name after a docker rename ("": the task's). */
  char name[256];
  struct tctl *next;
};

struct ctlreq {
  struct worker_ctl c;
  char *ref;
  bool exited; /* remove: the exit came, the removal is to do */
  struct ctlreq *next;
};

/* The reader's flow control, shared with the posts in flight (which may
 * outlive the stream): refs only change on the loop. */
struct log_flow {
  struct flow f;
  int refs;
};

struct log_stream {
  struct worker *w;
  struct log_flow *lf;
  char sub[ID_LEN + 1];
  char task[ID_LEN + 1];
  char cid[65];
  struct exec_logs_opts o;
  atomic_bool cancelled;
  struct log_stream *next;
};

struct worker {
  struct worker_config cfg;
  struct workq *local; /* exit status, stop fallbacks, removal, adoption */
  struct log_stream *streams;
  char *node_id;
  struct tctl *tasks;
  json_t *pending; /* status updates not sent yet */
  uv_timer_t report_timer, monitor;
  int jobs;    /* runtime calls in flight */
  int handles; /* open timers */
  bool stopping;
  bool adopting; /* assignments wait until adoption finished */
  /* An assignment (the leader's full list for this node) arrived: only
   * from then on may a task it does not name lose its container. */
  bool have_assignment;
  uint16_t vxlan_port; /* the cluster's data-path port; 0: default */
  /* Peer changes from the leader, applied in order by one job at a time
   * (a later message may undo an earlier one). */
  json_t *peer_queue;
  bool peer_busy;
  /* The peer sets as the leader last described them: network ID ->
   * {"<net> <addr>" -> {Network, Addr, Host, Name}} (for the API). */
  json_t *peer_sets;
  json_t *ingress;  /* this node's ingress attachment, as last applied */
  json_t *mesh;     /* the keyed mesh table as the leader sent it (loop) */
  struct dnsd *dns; /* the tasks' 127.0.0.11 (with a data plane) */
  /* The secrets and configs the assigned tasks need, as the last
   * assignment carried them (memory only). */
  json_t *files;
  /* Tags this node pulled for a task start: ref -> mono ns (task_image),
   * under pulls_lock (prepares run on the daemon's threads). */
  json_t *pulls;
  pthread_mutex_t pulls_lock;
  bool prefer_offline; /* DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 */
};

enum job_kind {
  J_PREPARE,
  J_START,
  J_STATE,  /* the 1 s poll, for containers without a watch */
  J_EXITED, /* the watch saw the exit: read its status */
  J_STOP,   /* blocking stop: only for containers without a watch */
  J_REMOVE,
  J_ADOPT,
  J_PEERS,  /* apply queued peer changes */
  J_CTL,    /* a worker_ctl command's runtime call */
  J_INGRESS /* (re)build the node's ingress sandbox */
};

struct job {
  struct worker *w;
  struct tctl *t;
  enum job_kind kind;
  json_t *task; /* a private copy for the thread */
  char cid[65];
  char task_id[ID_LEN + 1];
  int rc;
  sh_err err;
  pid_t pid;
  int pidfd; /* J_START: for the watch, -1 if none */
  int stop_signal;
  struct exec_state st;
  /* J_EXITED of a task on its way out: the container goes in the same job
   * (rm_rc, rm_err: how its removal went) */
  bool remove;
  int rm_rc;
  sh_err rm_err;
  /* J_ADOPT: [{Task, Container, Running, ExitCode, Pidfd, StopSignal}];
   * J_PEERS: the peer messages to apply, in order */
  json_t *adopted;
  uint16_t vxlan_port;
  /* J_PREPARE: the task's DNS socket (-1: none) and its networks */
  int dns_fd;
  json_t *dns_nets;
  /* J_PREPARE: the task's secret and config files (secretfs_plan), or
   * why there are none (plan_rc < 0) */
  json_t *plan;
  int plan_rc;
  sh_err plan_err;
  /* J_START: {Argv, Pidfile, Config, Started} for the health monitor
   * (NULL: no healthcheck) */
  json_t *probe;
  struct ctlreq *ctl;                  /* J_CTL */
  int64_t queued_ns, start_ns, end_ns; /* for the debug log */
};

static void reconcile(struct tctl *t);
static void maybe_free(struct worker *w);

/* ---- reporting ---- */

static void flush_reports(uv_timer_t *timer) {
  struct worker *w = timer->data;
  if (json_array_size(w->pending) == 0)
    return;
  if (w->cfg.report)
    w->cfg.report(w->cfg.ud, w->pending);
  json_array_clear(w->pending);
}

static void report(struct tctl *t, const char *state, const char *message,
                   const char *errmsg, int exit_code, pid_t pid) {
  struct worker *w = t->w;
  char ts[64];
  clock_format_rfc3339(clock_wall_ns(), ts, sizeof ts);
  json_t *st = json_pack("{s:s, s:s, s:s}", "Timestamp", ts, "State", state,
                         "Message", message);
  if (errmsg && *errmsg)
    json_object_set_new(st, "Err", json_string(errmsg));
  if (t->cid[0])
    json_object_set_new(st, "ContainerStatus",
                        json_pack("{s:s, s:i, s:i}", "ContainerID", t->cid,
                                  "PID", (int)pid, "ExitCode", exit_code));
  /* Later reports of the same task in one batch replace earlier ones. */
  size_t i;
  json_t *u;
  json_array_foreach(w->pending, i, u) {
    if (strcmp(jx_str(u, "ID", ""), t->id) == 0) {
      json_array_remove(w->pending, i);
      break;
    }
  }
  json_array_append_new(w->pending,
                        json_pack("{s:s, s:o}", "ID", t->id, "Status", st));
  if (!uv_is_active((uv_handle_t *)&w->report_timer))
    uv_timer_start(&w->report_timer, flush_reports, REPORT_DELAY_MS, 0);
}

/* ---- the runtime calls, on work-queue threads ---- */

static const char *task_service_name(const json_t *task, char *buf, size_t n) {
  snprintf(buf, n, "%s", jx_str(task, "Name", "task"));
  char *dot = strrchr(buf, '.');
  if (dot)
    *dot = '\0';
  return buf;
}

/* The container's labels: the spec's and swarmkit's com.docker.swarm.*. */
static json_t *task_labels(struct worker *w, const json_t *task,
                           const char *task_id) {
  const json_t *cs = jx_get(task, "Spec.ContainerSpec");
  char sname[256];
  task_service_name(task, sname, sizeof sname);
  json_t *labels = json_is_object(jx_get(cs, "Labels"))
                       ? json_deep_copy(jx_get(cs, "Labels"))
                       : json_object();
  json_object_set_new(labels, "com.docker.swarm.node.id",
                      json_string(w->node_id));
  json_object_set_new(labels, "com.docker.swarm.service.id",
                      json_string(jx_str(task, "ServiceID", "")));
  json_object_set_new(labels, "com.docker.swarm.service.name",
                      json_string(sname));
  json_object_set_new(labels, "com.docker.swarm.task", json_string(""));
  json_object_set_new(labels, "com.docker.swarm.task.id", json_string(task_id));
  json_object_set_new(
      labels, "com.docker.swarm.task.name",
      json_sprintf("%s.%s", jx_str(task, "Name", sname), task_id));
  return labels;
}

/* The name events carry: the task's own unless docker rename changed it. */
static void worker_name(struct tctl *t, const char *name) {
  char tname[sizeof t->name];
  snprintf(tname, sizeof tname, "%s.%s", jx_str(t->task, "Name", ""), t->id);
  snprintf(t->name, sizeof t->name, "%s",
           !name[0] || strcmp(name, tname) == 0 ? "" : name);
}

/* A container event (docker events), as dockerd logs one: the
 * container's labels, its image and name in the attributes, and one more
 * attribute if key is given (exitCode of a die, signal of a kill). */
static void publish_event(struct tctl *t, const char *action, const char *key,
                          int value) {
  struct worker *w = t->w;
  if (!w->cfg.events || !t->cid[0] || (!t->task && !t->adopted_attrs))
    return;
  json_t *attrs;
  if (t->task) {
    attrs = task_labels(w, t->task, t->id);
    json_object_set_new(
        attrs, "image",
        json_string(jx_str(t->task, "Spec.ContainerSpec.Image", "")));
  } else { /* adopted, its assignment not here yet: its own labels */
    json_t *l = json_object_get(t->adopted_attrs, "Labels");
    attrs = json_is_object(l) ? json_deep_copy(l) : json_object();
    json_object_set_new(attrs, "image",
                        json_string(jx_str(t->adopted_attrs, "Image", "")));
  }
  if (t->name[0])
    json_object_set_new(attrs, "name", json_string(t->name));
  else
    json_object_set(attrs, "name",
                    json_object_get(attrs, "com.docker.swarm.task.name"));
  if (key)
    json_object_set_new(attrs, key, json_sprintf("%d", value));
  bool start = strcmp(action, "start") == 0;
  if (start || strcmp(action, "die") == 0) {
    /* The task's named volumes, as inspect's Mounts would show them. */
    cleanup_json json_t *mounts = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(jx_get(t->task, "Spec.ContainerSpec.Mounts"), i, m) {
      if (strcmp(jx_str(m, "Type", ""), "volume") == 0)
        json_array_append_new(
            mounts,
            json_pack("{s:s, s:s, s:s, s:b, s:s}", "Type", "volume", "Name",
                      jx_str(m, "Source", ""), "Destination",
                      jx_str(m, "Target", ""), "RW",
                      !jx_bool(m, "ReadOnly", false), "Propagation", ""));
    }
    events_volume_mounts(w->cfg.events, mounts, t->cid, start);
  }
  events_publish(w->cfg.events, "container", action, t->cid, attrs, "local");
}

static void container_event(struct tctl *t, const char *action, int exit_code) {
  publish_event(t, action, exit_code >= 0 ? "exitCode" : NULL, exit_code);
}

/* dockerd's kill event: the signal in the attributes. */
static void kill_event(struct tctl *t, int sig) {
  publish_event(t, "kill", "signal", sig);
}

/* NULL-ended copies of a JSON array of strings (NULL when absent). */
static char **strv(const json_t *arr) {
  if (!json_is_array(arr) || json_array_size(arr) == 0)
    return NULL;
  char **v = xcalloc(json_array_size(arr) + 1, sizeof *v);
  size_t i, k = 0;
  json_t *e;
  json_array_foreach(arr, i, e) if (json_is_string(e)) v[k++] =
      xstrdup(json_string_value(e));
  return v;
}

static void strv_free(char **v) {
  for (char **p = v; p && *p; p++)
    free(*p);
  free(v);
}

/* ContainerSpec.Hosts ("IP name [alias...]", --host) as dockerd's
 * ExtraHosts: one "name:IP" per name. */
static char **extra_hosts(const json_t *hosts) {
  size_t cap = 1, n = 0;
  char **v = xcalloc(cap, sizeof *v);
  size_t i;
  json_t *h;
  json_array_foreach(hosts, i, h) {
    cleanup_free char *line =
        xstrdup(json_string_value(h) ? json_string_value(h) : "");
    char *save = NULL;
    const char *ip = strtok_r(line, " \t", &save);
    for (const char *name; ip && (name = strtok_r(NULL, " \t", &save));) {
      v = xrealloc(v, (n + 2) * sizeof *v);
      v[n++] = xasprintf("%s:%s", name, ip);
      v[n] = NULL;
    }
  }
  return v;
}

/* --network host: the task shares the node's namespace (an attachment to
 * the predefined swarm network of driver host, without an address). */
static bool uses_host_network(const json_t *task) {
  size_t i;
  json_t *a;
  json_array_foreach(json_object_get(task, "NetworksAttachments"), i, a) {
    if (strcmp(jx_str(a, "Network.DriverState.Name", ""), "host") == 0)
      return true;
  }
  return false;
}

/* The task's network namespace, made ready before its container exists:
 * one interface per network, the gateway bridge, host-mode ports.
 * *netns: NULL without a data plane (a private namespace, loopback
 * only). */
static int attach_networks(struct job *j, char **netns) {
  struct worker *w = j->w;
  *netns = NULL;
  if (!w->cfg.overlay)
    return 0;
  if (uses_host_network(j->task)) {
    *netns = xasprintf("/proc/%d/ns/net", (int)getpid());
    return 0;
  }
  cleanup_json json_t *ports = json_array();
  size_t i;
  json_t *p;
  json_array_foreach(jx_get(j->task, "Endpoint.Spec.Ports"), i, p) {
    if (strcmp(jx_str(p, "PublishMode", "ingress"), "host") == 0)
      json_array_append(ports, p);
  }
  struct overlay_task ot = {
      .task_id = j->task_id,
      .attachments = json_object_get(j->task, "NetworksAttachments"),
      .ports = ports,
      .vxlan_port = j->vxlan_port,
  };
  return overlay_attach(w->cfg.overlay, &ot, netns, &j->err);
}

/* NetworkSettings.Networks of the task's container, by network name, as
 * dockerd shows a swarm task's (docker_gwbridge is not among them). */
static json_t *network_settings(struct job *j, bool host) {
  json_t *out = json_object();
  if (host) {
    json_object_set_new(out, "host",
                        json_pack("{s:s, s:s, s:s, s:i}", "NetworkID", "host",
                                  "IPAddress", "", "MacAddress", "",
                                  "IPPrefixLen", 0));
    return out;
  }
  cleanup_json json_t *view =
      j->w->cfg.overlay ? overlay_view(j->w->cfg.overlay) : NULL;
  size_t i;
  json_t *att;
  json_array_foreach(json_object_get(j->task, "NetworksAttachments"), i, att) {
    const char *nid = jx_str(att, "Network.ID", "");
    char ip[64];
    snprintf(
        ip, sizeof ip, "%s",
        json_string_value(json_array_get(json_object_get(att, "Addresses"), 0))
            ?: "");
    char *slash = strchr(ip, '/');
    int len = slash ? atoi(slash + 1) : 0;
    if (slash)
      *slash = '\0';
    const json_t *ep = json_object_get(
        json_object_get(json_object_get(view, "Networks"), nid), j->task_id);
    json_t *aliases = json_array();
    size_t k;
    json_t *na;
    json_array_foreach(jx_get(j->task, "Spec.Networks"), k, na) {
      if (strcmp(jx_str(na, "Target", ""), nid) == 0 &&
          json_is_array(json_object_get(na, "Aliases")))
        json_array_extend(aliases, json_object_get(na, "Aliases"));
    }
    json_object_set_new(
        out, jx_str(att, "Network.Spec.Name", nid),
        json_pack("{s:{s:s}, s:n, s:o, s:s, s:s, s:s, s:s, s:s, s:i}",
                  "IPAMConfig", "IPv4Address", ip, "Links", "Aliases", aliases,
                  "MacAddress", jx_str(ep, "MacAddress", ""), "NetworkID", nid,
                  "EndpointID", jx_str(ep, "EndpointID", ""), "Gateway", "",
                  "IPAddress", ip, "IPPrefixLen", len));
  }
  return out;
}

/* The task's user networks (not ingress): the embedded DNS serves tasks
 * on one, as Docker's does. */
static json_t *dns_networks(const json_t *task) {
  json_t *out = json_array();
  size_t i;
  json_t *att;
  json_array_foreach(json_object_get(task, "NetworksAttachments"), i, att) {
    if (!jx_bool(att, "Network.Spec.Ingress", false) &&
        strcmp(jx_str(att, "Network.DriverState.Name", ""), "host") != 0)
      json_array_append_new(out, json_string(jx_str(att, "Network.ID", "")));
  }
  return out;
}

/* A socket on 127.0.0.11:53 in the task's namespace for the DNS. */
static int dns_socket(const char *netns, sh_err *err) {
  cleanup_fd int nfd = open(netns, O_RDONLY | O_CLOEXEC);
  if (nfd < 0)
    return sh_errno(err, errno, "open %s", netns);
  int fd = -1;
  if (netns_udp_bind(nfd, "127.0.0.11", 53, &fd, err) < 0)
    return -1;
  return fd;
}

/* The container is gone or no longer runs: its addresses may go to
 * another task now, so its endpoints must go first. ended: no process of
 * the task is left (see overlay_detach_ended). */
static void detach_networks(struct job *j, bool ended) {
  if (!j->w->cfg.overlay || !j->task_id[0])
    return;
  sh_err err = {0};
  if ((ended ? overlay_detach_ended : overlay_detach)(j->w->cfg.overlay,
                                                      j->task_id, &err) < 0)
    log_warn("task %s: releasing its network endpoints: %s", j->task_id,
             err.msg);
}

/* Pulls with the service's registry credentials when the leader sent
 * them (`--with-registry-auth`: swarmkit's PullOptions.RegistryAuth). */
static int pull(struct worker *w, const json_t *cs, const char *image,
                char **image_id, sh_err *err) {
  struct image_auth auth = {0};
  const char *enc = jx_str(cs, "PullOptions.RegistryAuth", NULL);
  /* The leader checked it; the decoder's message could quote it. */
  if (enc && image_auth_decode(enc, &auth, NULL) < 0)
    return sh_error(err, 400, "invalid registry auth in the task's spec");
  int rc = image_pull(w->cfg.images, image, enc ? &auth : NULL, NULL, NULL,
                      image_id, err);
  image_auth_free(&auth);
  return rc;
}

/* A tag pulled for a task start this recently is not pulled again for
 * the next: a service's tasks starting together on a node share a
 * check of the registry (the first few threads pull, the rest find it). */
#define PULL_FRESH_NS (5 * NS_PER_SEC)

static bool pulled_lately(struct worker *w, const char *image) {
  pthread_mutex_lock(&w->pulls_lock);
  json_t *at = json_object_get(w->pulls, image);
  bool fresh = at && clock_mono_ns() - json_integer_value(at) < PULL_FRESH_NS;
  pthread_mutex_unlock(&w->pulls_lock);
  return fresh;
}

static void note_pulled(struct worker *w, const char *image) {
  pthread_mutex_lock(&w->pulls_lock);
  json_object_set_new(w->pulls, image, json_integer(clock_mono_ns()));
  pthread_mutex_unlock(&w->pulls_lock);
}

/* The task's image, as swarmkit's executor finds it: a tag may have
 * moved on its registry since this node pulled it, so a task start pulls
 * it again (only its manifest when nothing changed) and runs what the
 * node has if that fails; an image ID or a digest is pulled only when
 * missing. DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 in the daemon's
 * environment (dockerd's switch) pulls only what is missing. */
static int task_image(struct worker *w, const json_t *cs, const char *image,
                      char **image_id, sh_err *err) {
  bool have = image_resolve(w->cfg.images, image, image_id, NULL) == 0;
  if (have &&
      (w->prefer_offline || image_ref_pinned(image) || pulled_lately(w, image)))
    return 0;
  sh_err perr = {0};
  char *pulled = NULL;
  if (pull(w, cs, image, &pulled, &perr) == 0) {
    free(*image_id);
    *image_id = pulled;
    note_pulled(w, image);
    return 0;
  }
  if (!have) {
    *err = perr;
    return -1;
  }
  log_warn("pulling image %s failed, the task runs the image this node has "
           "(%.19s): %s",
           image, *image_id, perr.msg);
  return 0;
}

static int prepare(struct job *j) {
  struct worker *w = j->w;
  if (j->plan_rc < 0) {
    j->err = j->plan_err;
    return -1;
  }
  if (json_array_size(j->plan) && !w->cfg.exec_root)
    return sh_error(&j->err, 500, "no place for the task's secrets");
  const json_t *task = j->task;
  const json_t *cs = jx_get(task, "Spec.ContainerSpec");
  const char *image = jx_str(cs, "Image", "");
  /* Checked at service create; a spec from before that fails here. */
  enum seccomp_mode smode;
  cleanup_seccomp seccomp_profile *custom = NULL;
  if (seccomp_from_swarm(jx_get(cs, "Privileges.Seccomp"), &smode, &custom,
                         &j->err) < 0)
    return -1;
  cleanup_free const char **caps = NULL;
  if (exec_caps(json_object_get(cs, "CapabilityAdd"),
                json_object_get(cs, "CapabilityDrop"), &caps, &j->err) < 0)
    return -1;
  cleanup_free char *image_id = NULL;
  if (task_image(w, cs, image, &image_id, &j->err) < 0)
    return -1;
  /* Until the container is on disk, an image removal keeps its layers. */
  cleanup_image_pin struct image_pin *pin = NULL;
  if (image_pin(w->cfg.images, image_id, &pin, &j->err) < 0)
    return -1;
  char **dirs = NULL;
  size_t n = 0;
  json_t *config = NULL;
  if (image_layers(w->cfg.images, image_id, &dirs, &n, &config, &j->err) < 0)
    return -1;
  /* The image store gives the top layer first, relative to its root; the
   * executor wants absolute paths, lowest first. */
  const char *root = image_store_root(w->cfg.images);
  char **layers = xcalloc(n + 1, sizeof *layers);
  for (size_t i = 0; i < n; i++)
    layers[i] = xasprintf("%s/%s", root, dirs[n - 1 - i]);
  image_layers_free(dirs, n);

  char sname[256];
  task_service_name(task, sname, sizeof sname);
  json_t *labels = task_labels(w, task, j->task_id);
  cleanup_free char *name =
      xasprintf("%s.%s", jx_str(task, "Name", sname), j->task_id);

  /* ContainerSpec.Mounts: bind, volume, tmpfs. */
  json_t *jm = jx_get(cs, "Mounts");
  size_t nm = json_is_array(jm) ? json_array_size(jm) : 0;
  size_t nf = json_array_size(j->plan);
  struct exec_mount *mounts = xcalloc(nm + nf + 1, sizeof *mounts);
  size_t k = 0;
  for (size_t i = 0; i < nm; i++) {
    json_t *m = json_array_get(jm, i);
    const char *type = jx_str(m, "Type", "volume");
    struct exec_mount *em = &mounts[k];
    if (strcmp(type, "bind") == 0)
      em->type = EXEC_MOUNT_BIND;
    else if (strcmp(type, "tmpfs") == 0)
      em->type = EXEC_MOUNT_TMPFS;
    else if (strcmp(type, "volume") == 0)
      em->type = EXEC_MOUNT_VOLUME;
    else
      continue; /* npipe, cluster: not on Linux hosts */
    em->source = jx_str(m, "Source", NULL);
    em->target = jx_str(m, "Target", "");
    em->read_only = jx_bool(m, "ReadOnly", false);
    em->tmpfs_size = jx_int(m, "TmpfsOptions.SizeBytes", 0);
    em->tmpfs_mode = (unsigned)jx_int(m, "TmpfsOptions.Mode", 0);
    k++;
  }

  /* Secrets and configs: files on the task's tmpfs, each bind mounted
   * read-only at its target; not listed in inspect's Mounts (dockerd
   * keeps them out too). */
  cleanup_free char *fdir = NULL;
  char **fsrc = xcalloc(nf + 1, sizeof *fsrc);
  if (nf &&
      secretfs_setup(w->cfg.exec_root, j->task_id, j->plan, &fdir, &j->err) < 0)
    nf = 0;
  for (size_t i = 0; i < nf; i++) {
    json_t *f = json_array_get(j->plan, i);
    fsrc[i] = xasprintf("%s/%s", fdir, jx_str(f, "File", ""));
    mounts[k++] = (struct exec_mount){.type = EXEC_MOUNT_BIND,
                                      .source = fsrc[i],
                                      .target = jx_str(f, "Target", ""),
                                      .read_only = true,
                                      .hidden = true};
  }

  /* dockerd merges the image's HEALTHCHECK under the service's. */
  const json_t *icfg = json_object_get(config, "config");
  if (!json_is_object(icfg))
    icfg = config;
  cleanup_json json_t *hc = health_merge(json_object_get(icfg, "Healthcheck"),
                                         json_object_get(cs, "Healthcheck"));
  char **groups = strv(jx_get(cs, "Groups"));
  char **dns_servers = strv(jx_get(cs, "DNSConfig.Nameservers"));
  char **dns_search = strv(jx_get(cs, "DNSConfig.Search"));
  char **dns_options = strv(jx_get(cs, "DNSConfig.Options"));
  char **cmd = strv(jx_get(cs, "Command"));
  char **args = strv(jx_get(cs, "Args"));
  char **env = strv(jx_get(cs, "Env"));
  char **hosts = extra_hosts(json_object_get(cs, "Hosts"));
  int rc = -1;
  cleanup_free char *netns = NULL;
  cleanup_json json_t *nets = NULL;
  cleanup_json json_t *dns_nets = NULL;
  if (json_array_size(j->plan) && !fdir)
    goto done;
  if (attach_networks(j, &netns) < 0)
    goto done;
  bool host = w->cfg.overlay && uses_host_network(task);
  nets = netns ? network_settings(j, host) : NULL;
  dns_nets = host ? json_array() : dns_networks(task);
  if (netns && json_array_size(dns_nets) > 0) {
    sh_err derr = {0};
    j->dns_fd = dns_socket(netns, &derr);
    if (j->dns_fd < 0)
      log_warn("task %s: no embedded DNS: %s", j->task_id, derr.msg);
    else
      j->dns_nets = json_incref(dns_nets);
  }

  char cid[65];
  id_new_hex(cid);
  struct exec_spec spec = {
      .id = cid,
      .name = name,
      .image = image,
      .image_id = image_id,
      .layers = (const char *const *)layers,
      .image_config = config,
      .entrypoint = (const char *const *)cmd,
      .cmd = (const char *const *)args,
      .env = (const char *const *)env,
      .user = jx_str(cs, "User", NULL),
      .workdir = jx_str(cs, "Dir", NULL),
      .hostname = jx_str(cs, "Hostname", NULL),
      .labels = labels,
      .read_only = jx_bool(cs, "ReadOnly", false),
      .res =
          {
              .nano_cpus = jx_int(task, "Spec.Resources.Limits.NanoCPUs", 0),
              .memory_bytes =
                  jx_int(task, "Spec.Resources.Limits.MemoryBytes", 0),
              .pids_limit = jx_int(task, "Spec.Resources.Limits.Pids", 0),
          },
      .stop_signal = jx_str(cs, "StopSignal", NULL),
      .mounts = mounts,
      .n_mounts = k,
      .netns_path = netns,
      .network_mode = host ? "host" : NULL,
      .embedded_dns = j->dns_fd >= 0,
      .dns_servers = (const char *const *)dns_servers,
      .dns_search = (const char *const *)dns_search,
      .dns_options = (const char *const *)dns_options,
      .init = jx_bool(cs, "Init", false),
      .sysctls = json_object_get(cs, "Sysctls"),
      .ulimits = json_object_get(cs, "Ulimits"),
      .groups = (const char *const *)groups,
      .healthcheck = hc,
      .networks = nets,
      .seccomp = smode == SECCOMP_MODE_CUSTOM    ? custom
                 : smode == SECCOMP_MODE_DEFAULT ? w->cfg.seccomp
                                                 : NULL,
      .caps = caps,
      .no_new_privileges = jx_bool(cs, "Privileges.NoNewPrivileges", false),
      .oom_score_adj = (int)jx_int(cs, "OomScoreAdj", 0),
      .extra_hosts = (const char *const *)hosts,
      .tty = jx_bool(cs, "TTY", false),
  };
  if (spec.user && !*spec.user)
    spec.user = NULL;
  if (spec.workdir && !*spec.workdir)
    spec.workdir = NULL;
  if (spec.hostname && !*spec.hostname)
    spec.hostname = NULL;
  rc = exec_create(w->cfg.exec, &spec, &j->err);
  if (rc == 0)
    snprintf(j->cid, sizeof j->cid, "%s", cid);
done:
  if (rc < 0) {
    detach_networks(j, false);
    if (fdir)
      secretfs_teardown(w->cfg.exec_root, j->task_id, NULL);
  }
  strv_free(fsrc);
  strv_free(cmd);
  strv_free(args);
  strv_free(env);
  strv_free(hosts);
  strv_free(groups);
  strv_free(dns_servers);
  strv_free(dns_search);
  strv_free(dns_options);
  free(mounts);
  json_decref(labels);
  json_decref(config);
  for (size_t i = 0; i < n; i++)
    free(layers[i]);
  free(layers);
  return rc;
}

/* What the health monitor of a running container needs, from its
 * inspect info (Config.Healthcheck, State): {Argv, Pidfile, Config,
 * Started, State}; NULL without a healthcheck. Blocking (a thread). */
static json_t *probe_setup(executor *ex, const char *cid, const json_t *info) {
  const json_t *hc = jx_get(info, "Config.Healthcheck");
  cleanup_json json_t *cmd =
      hc ? health_probe_cmd(hc, jx_get(info, "Config.Shell")) : NULL;
  if (!cmd)
    return NULL;
  char **argv = NULL;
  cleanup_free char *pidfile = NULL;
  sh_err err = {0};
  if (exec_probe_argv(ex, cid, cmd, &argv, &pidfile, &err) < 0) {
    log_warn("container %s: no healthcheck: %s", cid, err.msg);
    return NULL;
  }
  json_t *a = json_array();
  for (char **p = argv; *p; p++)
    json_array_append_new(a, json_string(*p));
  exec_argv_free(argv);
  int64_t started = 0;
  clock_parse_rfc3339(jx_str(info, "State.StartedAt", ""), &started, NULL);
  json_t *out = json_pack("{s:o,s:s,s:O,s:I}", "Argv", a, "Pidfile", pidfile,
                          "Config", hc, "Started",
                          (json_int_t)(started ? started : clock_wall_ns()));
  const json_t *state = jx_get(info, "State.Health");
  if (state)
    json_object_set(out, "State", (json_t *)state);
  return out;
}

/* An adopted running task on user networks gets its DNS socket again
 * (sockets do not outlive the daemon): DnsFd and DnsNets in a. */
static void adopt_dns(struct job *j, json_t *a, const json_t *info) {
  struct worker *w = j->w;
  const char *netns = jx_str(info, "NetworkSettings.SandboxKey", "");
  if (!w->cfg.overlay || !jx_bool(a, "Running", false) ||
      !str_has_prefix(netns, "/") || str_has_prefix(netns, "/proc/") ||
      strcmp(jx_str(info, "HostConfig.NetworkMode", ""), "host") == 0)
    return;
  const char *tid = jx_str(a, "Task", "");
  cleanup_json json_t *view = overlay_view(w->cfg.overlay);
  json_t *nets = json_array();
  const char *net;
  json_t *eps;
  json_object_foreach(json_object_get(view, "Networks"), net, eps) {
    if (strcmp(net, "docker_gwbridge") && json_object_get(eps, tid))
      json_array_append_new(nets, json_string(net));
  }
  sh_err err = {0};
  int fd = json_array_size(nets) ? dns_socket(netns, &err) : -1;
  if (fd < 0) {
    json_decref(nets);
    return;
  }
  json_object_set_new(a, "DnsFd", json_integer(fd));
  json_object_set_new(a, "DnsNets", nets);
  json_object_set(a, "DnsServers",
                  json_object_get(json_object_get(info, "HostConfig"), "Dns"));
}

static void adopt(struct job *j) {
  struct worker *w = j->w;
  struct exec_entry *list = NULL;
  size_t n = 0;
  j->adopted = json_array();
  if (exec_list(w->cfg.exec, &list, &n, &j->err) < 0)
    return;
  for (size_t i = 0; i < n; i++) {
    json_t *info = NULL;
    struct exec_state st;
    if (exec_inspect_json(w->cfg.exec, list[i].id, &info, NULL) < 0)
      continue;
    const char *tid = jx_str(json_object_get(jx_get(info, "Config.Labels"),
                                             "com.docker.swarm.task.id"),
                             "", NULL);
    if (tid && exec_state(w->cfg.exec, list[i].id, &st, NULL) == 0) {
      int fd = -1, sig = SIGTERM;
      if (st.status == EXEC_STATUS_RUNNING)
        exec_pidfd(w->cfg.exec, list[i].id, &fd, &sig, NULL);
      const char *name = jx_str(info, "Name", "");
      json_t *a = json_pack(
          "{s:s, s:s, s:b, s:b, s:i, s:i, s:i, s:s}", "Task", tid, "Container",
          list[i].id, "Running", st.status == EXEC_STATUS_RUNNING, "Paused",
          st.paused, "ExitCode", st.exit_code, "Pidfd", fd, "StopSignal", sig,
          "Name", name[0] == '/' ? name + 1 : name);
      json_object_set_new(a, "Attrs",
                          json_pack("{s:O?, s:s}", "Labels",
                                    jx_get(info, "Config.Labels"), "Image",
                                    jx_str(info, "Config.Image", "")));
      adopt_dns(j, a, info);
      json_t *probe = st.status == EXEC_STATUS_RUNNING
                          ? probe_setup(w->cfg.exec, list[i].id, info)
                          : NULL;
      if (probe)
        json_object_set_new(a, "Probe", probe);
      json_array_append_new(j->adopted, a);
    }
    json_decref(info);
  }
  exec_list_free(list, n);
  if (w->cfg.exec_root) {
    /* A task's secrets stay mounted with its container across restarts;
     * those of containers that are gone go now. */
    cleanup_json json_t *keep = json_object();
    size_t i;
    json_t *a;
    json_array_foreach(j->adopted, i, a)
        json_object_set_new(keep, jx_str(a, "Task", ""), json_true());
    secretfs_sweep(w->cfg.exec_root, keep);
  }
  if (w->cfg.overlay) {
    /* Endpoints of tasks whose container ended or vanished while no
     * daemon watched go now (their addresses may be reassigned). */
    size_t na = json_array_size(j->adopted), k = 0;
    const char **live = xcalloc(na + 2, sizeof *live);
    size_t i;
    json_t *a;
    live[k++] = OVERLAY_INGRESS_SBOX;
    json_array_foreach(j->adopted, i, a) {
      if (jx_bool(a, "Running", false))
        live[k++] = jx_str(a, "Task", "");
    }
    sh_err err = {0};
    if (overlay_gc(w->cfg.overlay, live, &err) < 0)
      log_warn("cleaning up network endpoints: %s", err.msg);
    free(live);
  }
}

/* Peer messages {Reset, Add:[{Network, Addr, Host}], Del:[...]} grouped
 * per network for the data plane. */
static void apply_peers(struct job *j) {
  struct worker *w = j->w;
  size_t i;
  json_t *msg;
  /* Mesh messages are changes: folded into one, so that a scale-up's
   * many batches rewrite each changed rule once. */
  bool mesh_reset = false, any = false;
  cleanup_json json_t *set = json_object();
  cleanup_json json_t *del = json_object();
  json_array_foreach(j->adopted, i, msg) {
    if (strcmp(jx_str(msg, "Type", ""), "mesh") != 0)
      continue;
    any = true;
    if (jx_bool(msg, "Reset", false)) {
      mesh_reset = true;
      json_object_clear(set);
      json_object_clear(del);
    }
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(msg, "Set"), k, v) {
      json_object_set(set, k, v);
      json_object_del(del, k);
    }
    size_t d;
    json_array_foreach(json_object_get(msg, "Del"), d, v) {
      if (!json_is_string(v))
        continue;
      json_object_del(set, json_string_value(v));
      json_object_set_new(del, json_string_value(v), json_true());
    }
  }
  if (any) {
    cleanup_json json_t *dels = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(del, k, v) json_array_append_new(dels, json_string(k));
    sh_err err = {0};
    if (overlay_mesh(w->cfg.overlay, mesh_reset, set, dels, &err) < 0)
      log_warn("routing mesh: %s", err.msg);
  }
  json_array_foreach(j->adopted, i, msg) {
    if (strcmp(jx_str(msg, "Type", ""), "mesh") == 0)
      continue;
    bool reset = jx_bool(msg, "Reset", false);
    cleanup_json json_t *by_net = json_object();
    const char *lists[] = {"Add", "Del"};
    for (size_t l = 0; l < 2; l++) {
      size_t k;
      json_t *p;
      json_array_foreach(json_object_get(msg, lists[l]), k, p) {
        const char *net = jx_str(p, "Network", "");
        json_t *e = json_object_get(by_net, net);
        if (!e) {
          e = json_pack("{s:[], s:[]}", "Add", "Del");
          json_object_set_new(by_net, net, e);
        }
        json_array_append(json_object_get(e, lists[l]), p);
      }
    }
    sh_err err = {0};
    if (reset) {
      /* Networks this node holds that the full set leaves out have no
       * peers any more. */
      cleanup_json json_t *view = overlay_view(w->cfg.overlay);
      const char *held;
      json_t *v;
      json_object_foreach(json_object_get(view, "Networks"), held, v) {
        if (strcmp(held, "docker_gwbridge") && !json_object_get(by_net, held))
          json_object_set_new(by_net, held,
                              json_pack("{s:[], s:[]}", "Add", "Del"));
      }
    }
    const char *net;
    json_t *e;
    json_object_foreach(by_net, net, e) {
      if (overlay_peers(w->cfg.overlay, net, json_object_get(e, "Add"),
                        reset ? NULL : json_object_get(e, "Del"), reset,
                        &err) < 0)
        log_warn("network %s peers: %s", net, err.msg);
    }
  }
}

static void apply_peers(struct job *j);

/* The node's ingress-sbox: a namespace on ingress (its endpoint address)
 * and docker_gwbridge. Rebuilt only when its address changed. */
static void build_ingress(struct job *j) {
  struct overlay *ov = j->w->cfg.overlay;
  const char *want =
      json_string_value(json_array_get(jx_get(j->task, "Addresses"), 0));
  const char *net = jx_str(j->task, "Network.ID", "");
  cleanup_json json_t *view = overlay_view(ov);
  const json_t *have =
      json_object_get(json_object_get(json_object_get(view, "Networks"), net),
                      OVERLAY_INGRESS_SBOX);
  if (want && strcmp(jx_str(have, "IPv4Address", ""), want) == 0)
    return;
  sh_err err = {0};
  overlay_detach(ov, OVERLAY_INGRESS_SBOX, NULL);
  json_t *atts = json_pack("[O]", j->task);
  struct overlay_task ot = {
      .task_id = OVERLAY_INGRESS_SBOX,
      .attachments = atts,
      .vxlan_port = j->vxlan_port,
  };
  char *path = NULL;
  if (overlay_attach(ov, &ot, &path, &err) < 0)
    log_warn("ingress sandbox: %s", err.msg);
  else
    log_info("ingress sandbox ready: endpoint %s", want ? want : "");
  free(path);
  json_decref(atts);
}

/* What an exited container no longer needs: its network endpoints and
 * its secret files (dockerd too drops a container's secrets when it
 * stops; the exited container stays for ps -a, logs and inspect). */
/* ended: as for detach_networks. */
static void release_exited(struct job *j, bool ended) {
  detach_networks(j, ended);
  sh_err err = {0};
  if (j->w->cfg.exec_root && j->task_id[0] &&
      secretfs_teardown(j->w->cfg.exec_root, j->task_id, &err) < 0)
    log_warn("task %s: removing its secrets: %s", j->task_id, err.msg);
}

static void remove_container(struct job *j) {
  j->rc = exec_remove(j->w->cfg.exec, j->cid, true, &j->err);
  detach_networks(j, j->rc == 0);
  sh_err ferr = {0};
  if (j->rc == 0 && j->w->cfg.exec_root && j->task_id[0] &&
      secretfs_teardown(j->w->cfg.exec_root, j->task_id, &ferr) < 0)
    log_warn("task %s: removing its secrets: %s", j->task_id, ferr.msg);
}

static void ctl_work(struct job *j) {
  executor *ex = j->w->cfg.exec;
  const struct worker_ctl *c = &j->ctl->c;
  switch (c->op) {
  case WORKER_KILL:
    j->rc = exec_kill(ex, j->cid, c->signal, &j->err);
    break;
  case WORKER_PAUSE:
    j->rc = exec_pause(ex, j->cid, &j->err);
    break;
  case WORKER_UNPAUSE:
    j->rc = exec_resume(ex, j->cid, &j->err);
    break;
  case WORKER_STOP:
  case WORKER_RESTART: {
    /* Not watchable: a blocking stop, then the exit's status. */
    const json_t *cs = jx_get(j->task, "Spec.ContainerSpec");
    int64_t grace = c->grace_ns >= 0
                        ? c->grace_ns
                        : jx_int(cs, "StopGracePeriod", DEFAULT_GRACE_NS);
    j->rc = exec_stop(ex, j->cid, c->signal, grace, &j->err);
    if (j->rc >= 0 && exec_state(ex, j->cid, &j->st, NULL) == 0 &&
        j->st.status == EXEC_STATUS_EXITED)
      release_exited(j, true);
    break;
  }
  case WORKER_REMOVE:
    remove_container(j);
    break;
  }
}

static void job_work_kind(struct job *j);

static void job_work(void *ud) {
  struct job *j = ud;
  j->start_ns = clock_mono_ns();
  job_work_kind(j);
  j->end_ns = clock_mono_ns();
}

static void job_work_kind(struct job *j) {
  executor *ex = j->w->cfg.exec;
  switch (j->kind) {
  case J_PREPARE:
    j->rc = prepare(j);
    break;
  case J_START:
    j->rc = exec_start(ex, j->cid, &j->pid, &j->err);
    if (j->rc >= 0) {
      exec_pidfd(ex, j->cid, &j->pidfd, &j->stop_signal, NULL);
      cleanup_json json_t *info = NULL;
      if (exec_inspect_json(ex, j->cid, &info, NULL) == 0)
        j->probe = probe_setup(ex, j->cid, info);
    } else {
      detach_networks(j, false);
    }
    break;
  case J_STATE:
  case J_EXITED:
    j->rc = exec_state(ex, j->cid, &j->st, &j->err);
    /* The container first: it leaves `docker ps` before its links are
     * gone (release_exited), and the task is reported ended after both. */
    if (j->remove)
      j->rm_rc = exec_remove(ex, j->cid, true, &j->rm_err);
    if (j->kind == J_EXITED ||
        (j->rc == 0 && j->st.status == EXEC_STATUS_EXITED))
      release_exited(j, true);
    break;
  case J_STOP: {
    const json_t *cs = jx_get(j->task, "Spec.ContainerSpec");
    int64_t grace = jx_int(cs, "StopGracePeriod", DEFAULT_GRACE_NS);
    const char *sig = jx_str(cs, "StopSignal", NULL);
    j->rc = exec_stop(ex, j->cid, sig && *sig ? exec_parse_signal(sig) : 0,
                      grace, &j->err);
    if (j->rc == 0)
      exec_state(ex, j->cid, &j->st, NULL);
    release_exited(j, j->rc == 0);
    break;
  }
  case J_REMOVE:
    remove_container(j);
    break;
  case J_CTL:
    ctl_work(j);
    break;
  case J_ADOPT:
    adopt(j);
    break;
  case J_PEERS:
    apply_peers(j);
    break;
  case J_INGRESS:
    build_ingress(j);
    break;
  }
}

/* ---- controllers, on the loop ---- */

static void ctl_finish(struct ctlreq *r, int rc, const sh_err *err);

static void tctl_free(struct tctl *t) {
  struct worker *w = t->w;
  if (t->waiting) {
    t->waiting->next = t->ctls;
    t->ctls = t->waiting;
    t->waiting = NULL;
  }
  while (t->ctls) {
    struct ctlreq *r = t->ctls;
    t->ctls = r->next;
    sh_err err = {0};
    if (w->stopping)
      sh_error(&err, 503, "the daemon is shutting down");
    else
      sh_error(&err, 404, "No such container: %s", r->ref);
    ctl_finish(r, -1, &err);
  }
  if (w->dns)
    dnsd_remove(w->dns, t->id);
  for (struct tctl **pp = &w->tasks; *pp; pp = &(*pp)->next) {
    if (*pp == t) {
      *pp = t->next;
      break;
    }
  }
  exec_watch_free(t->watch);
  health_stop(t->health);
  json_decref(t->task);
  json_decref(t->adopted_attrs);
  free(t);
}

static struct tctl *find(struct worker *w, const char *id) {
  for (struct tctl *t = w->tasks; t; t = t->next)
    if (strcmp(t->id, id) == 0)
      return t;
  return NULL;
}

static struct tctl *tctl_new(struct worker *w, const char *id) {
  struct tctl *t = xcalloc(1, sizeof *t);
  t->w = w;
  snprintf(t->id, sizeof t->id, "%s", id);
  t->stop_signal = SIGTERM;
  t->next = w->tasks;
  w->tasks = t;
  return t;
}

static void on_proc_exit(struct exec_watch *wa, void *ud) {
  struct tctl *t = ud;
  exec_watch_free(wa);
  t->watch = NULL;
  health_stop(t->health);
  t->health = NULL;
  t->proc_exited = true;
  reconcile(t);
}

/* Takes pidfd (from exec_pidfd; -1: none, the 1 s poll covers the task). */
static void watch(struct tctl *t, int pidfd) {
  if (pidfd < 0)
    return;
  sh_err err = {0};
  if (exec_watch_new(t->w->cfg.loop, pidfd, on_proc_exit, t, &t->watch, &err) <
      0) {
    t->watch = NULL;
    log_warn("container %s of task %s: %s; polling its state instead", t->cid,
             t->id, err.msg);
  }
}

static void ctl_exit(struct tctl *t);

static void exited(struct tctl *t, int code) {
  t->phase = P_EXITED;
  t->paused = false;
  container_event(t, "die", code);
  health_stop(t->health);
  t->health = NULL;
  if (t->w->dns)
    dnsd_remove(t->w->dns, t->id);
  ctl_exit(t);
  if (code == 0) {
    report(t, "complete", "finished", NULL, 0, 0);
  } else {
    /* swarmkit's exitError, with its cause when the healthcheck was it */
    char e[96];
    snprintf(e, sizeof e, "task: non-zero exit (%d)%s", code,
             t->unhealthy ? ": dockerexec: unhealthy container" : "");
    report(t, "failed", "started", e, code, 0);
  }
}

static void stopped(struct tctl *t, int code) {
  if (t->unhealthy) {
    /* Stopped for its health, not by the desired state: an end of its
     * own, as swarmkit reports it. */
    exited(t, code);
    return;
  }
  t->phase = P_STOPPED;
  t->paused = false;
  container_event(t, "die", code);
  container_event(t, "stop", -1);
  health_stop(t->health);
  t->health = NULL;
  if (t->w->dns)
    dnsd_remove(t->w->dns, t->id);
  ctl_exit(t);
  report(t, "shutdown", "shutdown", NULL, code, 0);
}

static void run_job(struct worker *w, struct tctl *t, enum job_kind kind);

/* The signal now; the exit, or SIGKILL once the task's grace period ran
 * out, comes back as a loop event: no thread waits, so every stop runs at
 * once. */
static bool thaw_first(struct tctl *t);

static void stop(struct tctl *t, const char *why) {
  if (thaw_first(t))
    return; /* job_done reconciles again */
  log_info("stopping container %s of task %s: %s", t->cid, t->id, why);
  health_stop(t->health);
  t->health = NULL;
  if (t->watch) {
    const json_t *cs = jx_get(t->task, "Spec.ContainerSpec");
    int64_t grace = jx_int(cs, "StopGracePeriod", DEFAULT_GRACE_NS);
    /* The container's own stop signal already is the spec's, if any. */
    sh_err err = {0};
    if (exec_watch_stop(t->watch, t->stop_signal, grace, &err) >= 0) {
      t->phase = P_STOPPING;
      return;
    }
    log_warn("stopping container %s: %s; stopping it on a thread", t->cid,
             err.msg);
  }
  /* Created but never started, or not watchable. */
  run_job(t->w, t, J_STOP);
}

static void on_health(struct health *h, enum health_status status, void *ud) {
  struct tctl *t = ud;
  if (t->phase != P_RUNNING)
    return;
  if (status == HEALTH_HEALTHY && t->wait_healthy) {
    t->wait_healthy = false;
    report(t, "running", "started", NULL, 0, t->pid);
  } else if (status == HEALTH_UNHEALTHY && !t->unhealthy) {
    /* swarmkit: shut the container down; its exit fails the task. */
    t->unhealthy = true;
    reconcile(t);
  }
}

/* Starts probing a running container (probe: probe_setup's). */
static void start_health(struct tctl *t, const json_t *probe) {
  if (!probe)
    return;
  size_t n = json_array_size(json_object_get(probe, "Argv"));
  char **argv = xcalloc(n + 1, sizeof *argv);
  for (size_t i = 0; i < n; i++)
    argv[i] = xstrdup(
        json_string_value(json_array_get(json_object_get(probe, "Argv"), i)));
  struct health_start hs = {
      .loop = t->w->cfg.loop,
      .exec = t->w->cfg.exec,
      .cid = t->cid,
      .argv = argv,
      .pidfile = jx_str(probe, "Pidfile", NULL),
      .hc = json_object_get(probe, "Config"),
      .started_ns = jx_int(probe, "Started", 0),
      .state = json_object_get(probe, "State"),
      .on_change = on_health,
      .ud = t,
  };
  health_stop(t->health);
  t->health = health_start(&hs);
}

static void close_pidfd(int fd) {
  if (fd >= 0)
    close(fd);
}

static void adopted(struct worker *w, const json_t *list) {
  size_t i;
  json_t *a;
  json_array_foreach(list, i, a) {
    const char *tid = jx_str(a, "Task", "");
    struct tctl *at = find(w, tid);
    if (!at)
      at = tctl_new(w, tid);
    snprintf(at->cid, sizeof at->cid, "%s", jx_str(a, "Container", ""));
    at->phase = P_RUNNING;
    bool running = jx_bool(a, "Running", false);
    /* Still frozen from before the restart: a stop thaws it first. */
    at->paused = running && jx_bool(a, "Paused", false);
    if (!at->task) {
      json_decref(at->adopted_attrs);
      at->adopted_attrs = json_incref(json_object_get(a, "Attrs"));
    }
    worker_name(at, jx_str(a, "Name", ""));
    log_info("adopted container %s of task %s (%s)", at->cid, tid,
             running ? "running" : "exited");
    int dfd = (int)jx_int(a, "DnsFd", -1);
    if (dfd >= 0) {
      sh_err derr = {0};
      if (!w->dns || dnsd_add(w->dns, tid, dfd, json_object_get(a, "DnsNets"),
                              &derr) < 0) {
        if (!w->dns)
          close(dfd);
        log_warn("task %s: no embedded DNS: %s", tid, derr.msg);
      } else {
        dnsd_set_task_resolvers(w->dns, tid, json_object_get(a, "DnsServers"));
      }
    }
    if (running) {
      at->stop_signal = (int)jx_int(a, "StopSignal", SIGTERM);
      watch(at, (int)jx_int(a, "Pidfd", -1));
      /* Probing goes on where it was; a task still starting turns
       * running at its first healthy probe. */
      const json_t *probe = json_object_get(a, "Probe");
      if (probe) {
        at->wait_healthy =
            health_state_status(jx_get(probe, "State")) == HEALTH_STARTING ||
            !jx_get(probe, "State");
        /* Found unhealthy (the daemon went before it stopped it). */
        at->unhealthy =
            health_state_status(jx_get(probe, "State")) == HEALTH_UNHEALTHY &&
            jx_get(probe, "State");
        start_health(at, probe);
      }
    } else {
      /* It ended while no daemon watched: say so now. */
      exited(at, (int)jx_int(a, "ExitCode", 0));
    }
  }
  w->adopting = false;
  log_info("adopted %zu task containers%s", json_array_size(list),
           w->have_assignment ? ""
                              : "; they keep running until an assignment "
                                "from the leader says otherwise");
  for (struct tctl *x = w->tasks, *next; x; x = next) {
    next = x->next;
    reconcile(x);
  }
}

static void ctl_done(struct tctl *t, struct job *j);
static void ctl_pump(struct tctl *t);

static void job_done(void *ud, int cancelled) {
  struct job *j = ud;
  struct worker *w = j->w;
  struct tctl *t = j->t;
  w->jobs--;
  if (!cancelled)
    log_debug("job %d of task %s: queued %.1f ms, ran %.1f ms, then %.1f ms "
              "to the loop",
              (int)j->kind, j->task_id, (j->start_ns - j->queued_ns) / 1e6,
              (j->end_ns - j->start_ns) / 1e6,
              (clock_mono_ns() - j->end_ns) / 1e6);
  if (t)
    t->busy = false;
  if (cancelled || w->stopping) {
    /* Shutting down: the container keeps running; a restart adopts it. */
    close_pidfd(j->pidfd);
    if (j->ctl) {
      sh_err err = {0};
      sh_error(&err, 503, "the daemon is shutting down");
      ctl_finish(j->ctl, -1, &err);
    }
    size_t i;
    json_t *a;
    json_array_foreach(j->adopted, i, a) {
      close_pidfd((int)jx_int(a, "Pidfd", -1));
      close_pidfd((int)jx_int(a, "DnsFd", -1));
    }
  } else if (j->kind == J_ADOPT) {
    adopted(w, j->adopted);
  } else if (j->kind == J_PEERS) {
    w->peer_busy = false;
    if (json_array_size(w->peer_queue) > 0)
      run_job(w, NULL, J_PEERS);
  } else if (t) {
    switch (j->kind) {
    case J_PREPARE:
      if (j->rc == 0 && j->dns_fd >= 0 && w->dns) {
        sh_err derr = {0};
        if (dnsd_add(w->dns, t->id, j->dns_fd, j->dns_nets, &derr) < 0)
          log_warn("task %s: no embedded DNS: %s", t->id, derr.msg);
        else
          dnsd_set_task_resolvers(
              w->dns, t->id,
              jx_get(t->task, "Spec.ContainerSpec.DNSConfig.Nameservers"));
        j->dns_fd = -1;
      }
      if (j->rc < 0) {
        t->phase = P_FAILED;
        report(t, "rejected", "preparing", j->err.msg, 0, 0);
      } else {
        snprintf(t->cid, sizeof t->cid, "%s", j->cid);
        t->phase = P_PREPARED;
        container_event(t, "create", -1);
        report(t, "ready", "prepared", NULL, 0, 0);
      }
      break;
    case J_START:
      if (j->rc < 0) {
        t->phase = P_FAILED;
        report(t, "failed", "starting", j->err.msg, 0, 0);
      } else {
        t->phase = P_RUNNING;
        container_event(t, "start", -1);
        t->pid = j->pid;
        /* With a healthcheck the task stays "starting" until healthy. */
        t->wait_healthy = j->probe != NULL;
        if (!t->wait_healthy)
          report(t, "running", "started", NULL, 0, j->pid);
        start_health(t, j->probe);
        t->stop_signal = j->stop_signal;
        watch(t, j->pidfd);
        j->pidfd = -1;
      }
      break;
    case J_STATE:
      if (j->rc == 0 && j->st.status == EXEC_STATUS_EXITED &&
          t->phase == P_RUNNING)
        exited(t, j->st.exit_code);
      break;
    case J_EXITED: {
      /* The process is gone; an unreadable status is still an end. */
      int code = j->rc == 0 ? j->st.exit_code : 255;
      t->proc_exited = false;
      if (t->phase == P_STOPPING)
        stopped(t, code);
      else if (t->phase == P_RUNNING)
        exited(t, code);
      if (j->remove && j->rm_rc < 0) {
        log_warn("removing container %s of task %s: %s", j->cid, t->id,
                 j->rm_err.msg);
      } else if (j->remove) {
        container_event(t, "destroy", -1);
        t->cid[0] = '\0';
      }
      break;
    }
    case J_STOP:
      stopped(t, j->rc == 0 ? j->st.exit_code : 0);
      break;
    case J_REMOVE:
      if (j->rc < 0)
        log_warn("removing container %s of task %s: %s", j->cid, t->id,
                 j->err.msg);
      else
        container_event(t, "destroy", -1);
      t->cid[0] = '\0';
      break;
    case J_CTL:
      ctl_done(t, j);
      break;
    case J_ADOPT:
    case J_PEERS:
    case J_INGRESS:
      break;
    }
    if (t->assigned || t->cid[0] || t->ctls || t->waiting) {
      reconcile(t);
      ctl_pump(t);
    } else {
      tctl_free(t);
    }
  }
  if (j->dns_fd >= 0)
    close(j->dns_fd);
  json_decref(j->dns_nets);
  json_decref(j->probe);
  json_decref(j->task);
  json_decref(j->adopted);
  json_decref(j->plan);
  free(j);
  maybe_free(w);
}

static void run_job_ctl(struct worker *w, struct tctl *t, enum job_kind kind,
                        struct ctlreq *ctl);

/* The task's container is to go once it stopped: the leader removes the
 * task (its service is gone) or no longer assigns it here. */
static bool leaving(const struct tctl *t) {
  return (!t->assigned && t->w->have_assignment) ||
         strcmp(jx_str(t->task, "DesiredState", ""), "remove") == 0;
}

static void run_job(struct worker *w, struct tctl *t, enum job_kind kind) {
  run_job_ctl(w, t, kind, NULL);
}

static void run_job_ctl(struct worker *w, struct tctl *t, enum job_kind kind,
                        struct ctlreq *ctl) {
  struct job *j = xcalloc(1, sizeof *j);
  j->w = w;
  j->t = t;
  j->kind = kind;
  j->ctl = ctl;
  j->pidfd = -1;
  j->dns_fd = -1;
  j->stop_signal = SIGTERM;
  j->vxlan_port = w->vxlan_port;
  if (kind == J_PEERS) {
    j->adopted = w->peer_queue;
    w->peer_queue = json_array();
    w->peer_busy = true;
  }
  if (t && kind == J_PREPARE)
    j->plan_rc = secretfs_plan(t->task, w->files, &j->plan, &j->plan_err);
  /* Stopped because it leaves (what reconcile would remove next) and no
   * command waits for the exit: one job instead of two in the queue. */
  if (t && kind == J_EXITED)
    j->remove = t->phase == P_STOPPING && !t->waiting && !t->ctls && leaving(t);
  if (t) {
    t->busy = true;
    j->task = json_deep_copy(t->task);
    snprintf(j->cid, sizeof j->cid, "%s", t->cid);
    snprintf(j->task_id, sizeof j->task_id, "%s", t->id);
  }
  w->jobs++;
  /* Pulls and creates may take minutes: everything else stays off their
   * queue. A start goes ahead of the prepares queued there: tasks begun
   * finish first (each start's latency), rather than all starts waiting
   * behind every create of a burst. */
  j->queued_ns = clock_mono_ns();
  if (kind == J_START)
    workq_submit_first(w->cfg.work, job_work, job_done, j);
  else
    workq_submit(kind == J_PREPARE ? w->cfg.work : w->local, job_work, job_done,
                 j);
}

/* ---- the node's container commands (worker_ctl) ---- */

static void ctl_finish(struct ctlreq *r, int rc, const sh_err *err) {
  r->c.done(r->c.ud, rc, err);
  free(r->ref);
  free(r);
}

static int64_t ctl_grace(const struct tctl *t, const struct ctlreq *r) {
  if (r->c.grace_ns >= 0)
    return r->c.grace_ns;
  return jx_int(jx_get(t->task, "Spec.ContainerSpec"), "StopGracePeriod",
                DEFAULT_GRACE_NS);
}

/* The container's exit came (as the task's end): what waited for it goes
 * on. */
static void ctl_exit(struct tctl *t) {
  struct ctlreq *r = t->waiting;
  if (!r)
    return;
  t->waiting = NULL;
  if (r->c.op != WORKER_REMOVE) {
    container_event(t, "stop", -1);
    ctl_finish(r, 0, NULL);
    return;
  }
  /* The removal (job_done pumps). */
  r->exited = true;
  r->next = t->ctls;
  t->ctls = r;
}

static void ctl_nothing(void *ud, int rc, const sh_err *err) {}

/* A paused container is thawed (a job) before it is signalled. */
static bool thaw_first(struct tctl *t) {
  if (!t->paused)
    return false;
  struct ctlreq *r = xcalloc(1, sizeof *r);
  r->c.op = WORKER_UNPAUSE;
  r->c.done = ctl_nothing;
  r->ref = xstrdup(t->cid);
  r->c.ref = r->ref;
  run_job_ctl(t->w, t, J_CTL, r);
  return true;
}

static void ctl_pump(struct tctl *t) {
  struct worker *w = t->w;
  if (t->busy || t->waiting || !t->ctls || w->stopping || w->adopting)
    return;
  struct ctlreq *r = t->ctls;
  t->ctls = r->next;
  r->next = NULL;
  sh_err err = {0};
  if (!t->cid[0]) {
    sh_error(&err, 404, "No such container: %s", r->ref);
    ctl_finish(r, -1, &err);
    return;
  }
  bool live = t->phase == P_RUNNING || t->phase == P_STOPPING;
  bool signals = r->c.op == WORKER_KILL || r->c.op == WORKER_STOP ||
                 r->c.op == WORKER_RESTART ||
                 (r->c.op == WORKER_REMOVE && r->c.force);
  if (live && signals && thaw_first(t)) {
    r->next = t->ctls; /* after the thaw */
    t->ctls = r;
    return;
  }
  switch (r->c.op) {
  case WORKER_KILL:
  case WORKER_PAUSE:
  case WORKER_UNPAUSE:
    run_job_ctl(w, t, J_CTL, r);
    return;
  case WORKER_STOP:
  case WORKER_RESTART:
    if (!live) {
      /* restart: the task has ended already, its replacement runs. */
      ctl_finish(r, r->c.op == WORKER_STOP ? 1 : 0, NULL);
      return;
    }
    break;
  case WORKER_REMOVE:
    if (!live) {
      run_job_ctl(w, t, J_CTL, r);
      return;
    }
    if (!r->c.force) {
      if (t->paused)
        sh_error(&err, 409,
                 "cannot remove container \"%s\": container is paused and "
                 "must be unpaused first",
                 r->ref);
      else
        sh_error(&err, 409,
                 "cannot remove container \"%s\": container is running: "
                 "stop the container before removing or force remove",
                 r->ref);
      ctl_finish(r, -1, &err);
      return;
    }
    break;
  }
  /* Stop (or SIGKILL for a forced removal) and wait for the exit. */
  t->waiting = r;
  if (t->phase == P_STOPPING)
    return; /* already on its way out */
  health_stop(t->health);
  t->health = NULL;
  bool kill9 = r->c.op == WORKER_REMOVE;
  int sig = kill9 ? SIGKILL : r->c.signal > 0 ? r->c.signal : t->stop_signal;
  /* dockerd's kill event whichever way the signal goes: through the
   * watch, or by the blocking stop of a container not watched (no pidfd,
   * or the watch's stop failed), which said nothing before. */
  kill_event(t, sig);
  if (t->watch) {
    if (exec_watch_stop(t->watch, sig, kill9 ? 0 : ctl_grace(t, r), &err) >= 0)
      return;
    log_warn("stopping container %s: %s; stopping it on a thread", t->cid,
             err.msg);
  }
  /* Not watchable: a blocking stop on the worker's queue (a forced
   * removal: exec_remove kills it). */
  t->waiting = NULL;
  run_job_ctl(w, t, J_CTL, r);
}

static void ctl_done(struct tctl *t, struct job *j) {
  struct ctlreq *r = j->ctl;
  j->ctl = NULL;
  const struct worker_ctl *c = &r->c;
  if (c->op == WORKER_UNPAUSE)
    t->paused = false;
  if (j->rc < 0) {
    ctl_finish(r, -1, &j->err);
    return;
  }
  switch (c->op) {
  case WORKER_KILL:
    kill_event(t, c->signal);
    break;
  case WORKER_PAUSE:
    t->paused = true;
    container_event(t, "pause", -1);
    break;
  case WORKER_UNPAUSE:
    container_event(t, "unpause", -1);
    break;
  case WORKER_STOP:
  case WORKER_RESTART:
    /* The blocking stop's exit: the task's end. */
    if (t->phase == P_RUNNING && j->st.status == EXEC_STATUS_EXITED)
      exited(t, j->st.exit_code);
    container_event(t, "stop", -1);
    break;
  case WORKER_REMOVE:
    if (t->phase == P_RUNNING || t->phase == P_STOPPING)
      exited(t, 137); /* killed by exec_remove (not watchable) */
    container_event(t, "destroy", -1);
    t->cid[0] = '\0';
    break;
  }
  ctl_finish(r, 0, NULL);
}

static struct tctl *find_cid(struct worker *w, const char *cid) {
  for (struct tctl *x = w->tasks; x; x = x->next)
    if (x->cid[0] && strcmp(x->cid, cid) == 0)
      return x;
  return NULL;
}

void worker_renamed(struct worker *w, const char *cid, const char *name) {
  struct tctl *t = find_cid(w, cid);
  if (t)
    worker_name(t, name);
}

bool worker_ctl(struct worker *w, const char *cid, const struct worker_ctl *c) {
  struct tctl *t = find_cid(w, cid);
  if (!t || w->stopping)
    return false;
  struct ctlreq *r = xcalloc(1, sizeof *r);
  r->c = *c;
  r->ref = xstrdup(c->ref ? c->ref : cid);
  r->c.ref = r->ref;
  struct ctlreq **pp = &t->ctls;
  while (*pp)
    pp = &(*pp)->next;
  *pp = r;
  ctl_pump(t);
  return true;
}

bool worker_state_terminal(const char *state) {
  static const char *const ends[] = {"complete", "shutdown", "failed",
                                     "rejected", "orphaned"};
  for (size_t i = 0; i < ARRAY_SIZE(ends); i++)
    if (strcmp(state, ends[i]) == 0)
      return true;
  return false;
}

/* Desired to run: "running", a job's "complete" (run to its end), or a
 * state on the way there. */
static bool desired_running(const json_t *task) {
  const char *d = jx_str(task, "DesiredState", "");
  return strcmp(d, "running") == 0 || strcmp(d, "complete") == 0 ||
         strcmp(d, "ready") == 0 || strcmp(d, "new") == 0 ||
         strcmp(d, "pending") == 0 || strcmp(d, "assigned") == 0 ||
         strcmp(d, "accepted") == 0;
}

static void reconcile(struct tctl *t) {
  struct worker *w = t->w;
  if (t->busy || w->stopping || w->adopting)
    return;
  if (t->proc_exited) {
    run_job(w, t, J_EXITED);
    return;
  }
  if (t->phase == P_STOPPING)
    return; /* its exit comes as an event */
  if (t->unhealthy && t->phase == P_RUNNING) {
    stop(t, "unhealthy container");
    return;
  }
  if (!t->assigned) {
    /* Only the leader's assignment takes a container away. Until the first
     * one (a restart with no leader, or no manager in reach) adopted
     * containers keep running, whatever this node may guess. */
    if (!w->have_assignment)
      return;
    if (t->phase == P_RUNNING || t->phase == P_PREPARED) {
      stop(t, "task no longer assigned to this node");
    } else if (t->cid[0]) {
      log_info("removing container %s: task %s no longer assigned to this "
               "node",
               t->cid, t->id);
      run_job(w, t, J_REMOVE);
    } else {
      tctl_free(t);
    }
    return;
  }
  if (desired_running(t->task)) {
    const char *d = jx_str(t->task, "DesiredState", "");
    bool run = strcmp(d, "running") == 0 || strcmp(d, "complete") == 0;
    if (t->phase == P_NEW) {
      report(t, "preparing", "preparing", NULL, 0, 0);
      run_job(w, t, J_PREPARE);
    } else if (t->phase == P_PREPARED && run) {
      report(t, "starting", "starting", NULL, 0, 0);
      run_job(w, t, J_START);
    }
    return;
  }
  /* Desired shutdown (or further). */
  if (t->phase == P_RUNNING || t->phase == P_PREPARED) {
    char why[64];
    snprintf(why, sizeof why, "desired state %s",
             jx_str(t->task, "DesiredState", ""));
    stop(t, why);
  } else if (t->phase == P_NEW) {
    t->phase = P_STOPPED;
    /* A task in history (it ended before this node learnt of it, e.g.
     * across a restart) keeps the state it ended in. */
    if (!worker_state_terminal(jx_str(t->task, "Status.State", "")))
      report(t, "shutdown", "shutdown", NULL, 0, 0);
  } else if (t->cid[0] && t->phase != P_STOPPING &&
             strcmp(jx_str(t->task, "DesiredState", ""), "remove") == 0) {
    /* As swarmkit's agent: a task to be removed (its service is gone)
     * loses its container as soon as it stopped, not one round trip
     * later when the task leaves the assignment. */
    run_job(w, t, J_REMOVE);
  }
}

void worker_set_files(struct worker *w, const json_t *files) {
  json_decref(w->files);
  w->files = json_pack(
      "{s:O, s:O}", "Secrets", json_object_get(files, "Secrets") ?: json_null(),
      "Configs", json_object_get(files, "Configs") ?: json_null());
}

void worker_assign(struct worker *w, const json_t *tasks) {
  if (w->stopping)
    return;
  w->have_assignment = true;
  for (struct tctl *t = w->tasks; t; t = t->next)
    t->assigned = false;
  size_t i;
  json_t *task;
  json_array_foreach(tasks, i, task) {
    const char *id = jx_str(task, "ID", NULL);
    if (!id)
      continue;
    struct tctl *t = find(w, id);
    if (!t)
      t = tctl_new(w, id);
    json_decref(t->task);
    t->task = json_deep_copy(task);
    t->assigned = true;
    json_decref(STEAL_POINTER(&t->adopted_attrs)); /* its task says now */
  }
  for (struct tctl *t = w->tasks, *next; t; t = next) {
    next = t->next;
    if (!t->task && !t->assigned) {
      /* adopted, not assigned: a task this node no longer has */
      t->task = json_object();
    }
    reconcile(t);
  }
}

/* Fallback for containers without a watch (a pidfd could not be had). */
static void monitor(uv_timer_t *timer) {
  struct worker *w = timer->data;
  for (struct tctl *t = w->tasks; t; t = t->next)
    if (t->phase == P_RUNNING && !t->busy && t->cid[0] && !t->watch &&
        !t->proc_exited)
      run_job(w, t, J_STATE);
}

static void remember_peers(struct worker *w, const json_t *msg) {
  if (jx_bool(msg, "Reset", false))
    json_object_clear(w->peer_sets);
  const char *lists[] = {"Del", "Add"};
  for (size_t l = 0; l < 2; l++) {
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(msg, lists[l]), i, p) {
      const char *net = jx_str(p, "Network", "");
      json_t *set = json_object_get(w->peer_sets, net);
      if (!set) {
        set = json_object();
        json_object_set_new(w->peer_sets, net, set);
      }
      cleanup_free char *key = xasprintf("%s %s", net, jx_str(p, "Addr", ""));
      if (l == 0)
        json_object_del(set, key);
      else
        json_object_set(set, key, p);
    }
  }
}

json_t *worker_network_view(struct worker *w) {
  json_t *nets = json_object(), *eps = json_object(), *peers = json_object();
  for (struct tctl *t = w->tasks; t; t = t->next) {
    if (!t->cid[0] || !t->task)
      continue;
    cleanup_free char *name = xasprintf(
        "%s.%s", jx_str(t->task, "Name", jx_str(t->task, "ServiceID", "")),
        t->id);
    json_object_set_new(
        eps, t->id, json_pack("{s:s, s:s}", "Container", t->cid, "Name", name));
    size_t i;
    json_t *att;
    json_array_foreach(json_object_get(t->task, "NetworksAttachments"), i,
                       att) {
      const json_t *n = json_object_get(att, "Network");
      if (json_is_object(n))
        json_object_set(nets, jx_str(n, "ID", ""), (json_t *)n);
    }
  }
  const char *net;
  json_t *set;
  json_object_foreach(w->peer_sets, net, set) {
    json_t *list = json_array();
    json_t *seen = json_object();
    const char *key;
    json_t *p;
    json_object_foreach(set, key, p) {
      const char *host = jx_str(p, "Host", "");
      if (json_object_get(seen, host))
        continue;
      json_object_set_new(seen, host, json_true());
      json_array_append_new(
          list,
          json_pack("{s:s, s:s}", "Name", jx_str(p, "Name", host), "IP", host));
    }
    json_decref(seen);
    json_object_set_new(peers, net, list);
  }
  return json_pack("{s:o, s:o, s:o}", "Networks", nets, "Endpoints", eps,
                   "Peers", peers);
}

/* Keeps the keyed mesh table (see manager/mesh.h) and gives the DNS the
 * names of every network when any of them changed. */
static void mesh_names_changed(struct worker *w, const json_t *msg) {
  if (!w->mesh || jx_bool(msg, "Reset", false)) {
    json_decref(w->mesh);
    w->mesh = json_object();
  }
  bool names = jx_bool(msg, "Reset", false);
  const char *k;
  json_t *v;
  json_object_foreach(json_object_get(msg, "Set"), k, v) {
    json_object_set(w->mesh, k, v);
    names |= str_has_prefix(k, "names/");
  }
  size_t i;
  json_array_foreach(json_object_get(msg, "Del"), i, v) {
    if (!json_is_string(v))
      continue;
    json_object_del(w->mesh, json_string_value(v));
    names |= str_has_prefix(json_string_value(v), "names/");
  }
  if (!names || !w->dns)
    return;
  cleanup_json json_t *all = json_object();
  json_object_foreach(w->mesh, k, v) {
    if (str_has_prefix(k, "names/"))
      json_object_set(all, k + strlen("names/"), v);
  }
  dnsd_set_names(w->dns, all);
}

void worker_peers(struct worker *w, const json_t *msg) {
  if (w->stopping || !w->cfg.overlay)
    return;
  if (strcmp(jx_str(msg, "Type", ""), "mesh") == 0)
    mesh_names_changed(w, msg);
  if (strcmp(jx_str(msg, "Type", ""), "peers") == 0)
    remember_peers(w, msg);
  json_array_append(w->peer_queue, (json_t *)msg);
  if (!w->peer_busy)
    run_job(w, NULL, J_PEERS);
}

void worker_set_ingress(struct worker *w, const json_t *attachment) {
  if (w->stopping || !w->cfg.overlay ||
      (w->ingress && json_equal(w->ingress, attachment)))
    return;
  json_decref(w->ingress);
  w->ingress = json_deep_copy(attachment);
  struct job *j = xcalloc(1, sizeof *j);
  j->w = w;
  j->kind = J_INGRESS;
  j->pidfd = -1;
  j->dns_fd = -1;
  j->vxlan_port = w->vxlan_port;
  j->task = json_deep_copy(attachment);
  w->jobs++;
  /* On the slow queue, behind the creates: this node's tasks first. */
  j->queued_ns = clock_mono_ns();
  workq_submit(w->cfg.work, job_work, job_done, j);
}

void worker_set_vxlan_port(struct worker *w, uint16_t port) {
  w->vxlan_port = port;
}

void worker_adopt(struct worker *w) {
  w->adopting = true;
  run_job(w, NULL, J_ADOPT);
}

struct worker *worker_new(const struct worker_config *cfg) {
  struct worker *w = xcalloc(1, sizeof *w);
  w->cfg = *cfg;
  w->node_id = xstrdup(cfg->node_id);
  w->pending = json_array();
  w->peer_queue = json_array();
  w->peer_sets = json_object();
  w->pulls = json_object();
  pthread_mutex_init(&w->pulls_lock, NULL);
  const char *offline = getenv("DOCKER_SERVICE_PREFER_OFFLINE_IMAGE");
  w->prefer_offline = offline && strcmp(offline, "1") == 0;
  if (cfg->overlay) {
    w->dns = dnsd_new(cfg->loop);
    /* Other names go to --dns, else the node's own resolvers (not
     * loopback ones). */
    cleanup_json json_t *rs = json_array();
    for (size_t i = 0; cfg->dns && cfg->dns[i]; i++)
      json_array_append_new(rs, json_string(cfg->dns[i]));
    cleanup_free char *rc = NULL;
    size_t len = 0;
    if (json_array_size(rs) == 0 &&
        read_file("/etc/resolv.conf", &rc, &len, NULL) == 0) {
      json_decref(rs);
      rs = dns_resolvers(rc);
    }
    dnsd_set_resolvers(w->dns, rs);
  }
  w->local = workq_new_nice(cfg->loop, LOCAL_THREADS, LOCAL_NICE);
  uv_timer_init(cfg->loop, &w->report_timer);
  uv_timer_init(cfg->loop, &w->monitor);
  w->report_timer.data = w->monitor.data = w;
  w->handles = 2;
  uv_timer_start(&w->monitor, monitor, MONITOR_MS, MONITOR_MS);
  return w;
}

/* ---- logs ---- */

#define LOG_CHUNK (64 * 1024)
/* Bytes of one stream read and not yet posted to the manager: the reader
 * waits beyond this, so a client that stops reading stops the reading
 * here (the broker holds the post until its client drains). */
#define LOG_IN_FLIGHT (256 * 1024)

struct log_chunk {
  struct log_stream *ls;
  void *data;
  size_t len;
  bool last;
};

struct log_sent {
  struct log_flow *lf;
  size_t len;
};

static void log_flow_unref(struct log_flow *lf) {
  if (--lf->refs > 0)
    return;
  flow_destroy(&lf->f);
  free(lf);
}

static void log_sent(void *arg) {
  struct log_sent *s = arg;
  flow_release(&s->lf->f, s->len);
  log_flow_unref(s->lf);
  free(s);
}

static void chunk_on_loop(void *ud, int cancelled) {
  struct log_chunk *c = ud;
  struct log_stream *ls = c->ls;
  struct worker *w = ls->w;
  if (!w->stopping && w->cfg.send_logs && !atomic_load(&ls->cancelled)) {
    struct log_sent *s = xmalloc(sizeof *s);
    s->lf = ls->lf;
    s->len = c->len;
    ls->lf->refs++;
    w->cfg.send_logs(w->cfg.ud, ls->sub, ls->task, c->data, c->len, c->last,
                     log_sent, s);
  } else {
    flow_release(&ls->lf->f, c->len);
  }
  if (c->last) {
    for (struct log_stream **pp = &w->streams; *pp; pp = &(*pp)->next) {
      if (*pp == ls) {
        *pp = ls->next;
        break;
      }
    }
    log_flow_unref(ls->lf);
    free(ls);
    w->jobs--;
  }
  free(c->data);
  free(c);
  maybe_free(w);
}

struct log_buf {
  struct log_stream *ls;
  sh_buf b;
};

static void post_chunk(struct log_stream *ls, sh_buf *b, bool last) {
  /* Waits while too much is in flight; a cancel ends the wait (the data
   * is then dropped on the loop). */
  if (b->len)
    (void)flow_acquire(&ls->lf->f, b->len);
  struct log_chunk *c = xcalloc(1, sizeof *c);
  c->ls = ls;
  c->len = b->len;
  c->data = b->len ? xmalloc(b->len) : NULL;
  if (b->len)
    memcpy(c->data, b->data, b->len);
  c->last = last;
  buf_reset(b);
  workq_post(ls->w->cfg.work, chunk_on_loop, c);
}

static int log_write(void *arg, const void *buf, size_t len) {
  struct log_buf *lb = arg;
  if (atomic_load(&lb->ls->cancelled))
    return -1;
  buf_append(&lb->b, buf, len);
  if (lb->b.len >= LOG_CHUNK)
    post_chunk(lb->ls, &lb->b, false);
  return 0;
}

static bool log_cancelled(void *arg) {
  struct log_buf *lb = arg;
  /* A followed log: also flush what is buffered while waiting. */
  if (lb->b.len > 0)
    post_chunk(lb->ls, &lb->b, false);
  return atomic_load(&lb->ls->cancelled);
}

static void *log_thread(void *arg) {
  struct log_stream *ls = arg;
  struct log_buf lb = {.ls = ls};
  struct exec_logs_opts o = ls->o;
  o.write = log_write;
  o.cancelled = log_cancelled;
  o.arg = &lb;
  sh_err err = {0};
  exec_logs(ls->w->cfg.exec, ls->cid, &o, &err);
  post_chunk(ls, &lb.b, true);
  buf_free(&lb.b);
  return NULL;
}

void worker_logs(struct worker *w, const json_t *msg) {
  if (w->stopping)
    return;
  const char *sub = jx_str(msg, "Sub", "");
  json_t *opts = json_object_get(msg, "Options");
  size_t i;
  json_t *t;
  json_array_foreach(json_object_get(msg, "Tasks"), i, t) {
    struct log_stream *ls = xcalloc(1, sizeof *ls);
    ls->w = w;
    snprintf(ls->sub, sizeof ls->sub, "%s", sub);
    snprintf(ls->task, sizeof ls->task, "%s", jx_str(t, "ID", ""));
    snprintf(ls->cid, sizeof ls->cid, "%s", jx_str(t, "Container", ""));
    /* Always with timestamps: the manager keeps or drops them. */
    ls->o = (struct exec_logs_opts){
        .want_stdout = jx_bool(opts, "Stdout", true),
        .want_stderr = jx_bool(opts, "Stderr", true),
        .timestamps = true,
        .follow = jx_bool(opts, "Follow", false),
        .since_ns = jx_int(opts, "Since", 0),
        .tail = (long)jx_int(opts, "Tail", -1),
    };
    atomic_init(&ls->cancelled, false);
    ls->lf = xcalloc(1, sizeof *ls->lf);
    ls->lf->refs = 1;
    flow_init(&ls->lf->f, LOG_IN_FLIGHT);
    ls->next = w->streams;
    w->streams = ls;
    w->jobs++;
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &attr, log_thread, ls) != 0) {
      sh_buf empty = {0};
      post_chunk(ls, &empty, true);
    }
    pthread_attr_destroy(&attr);
  }
}

void worker_logs_cancel(struct worker *w, const char *sub) {
  for (struct log_stream *ls = w->streams; ls; ls = ls->next) {
    if (strcmp(ls->sub, sub) == 0) {
      atomic_store(&ls->cancelled, true);
      flow_close(&ls->lf->f);
    }
  }
}

static void maybe_free(struct worker *w) {
  if (!w->stopping || w->jobs > 0 || w->handles > 0)
    return;
  while (w->tasks)
    tctl_free(w->tasks);
  json_decref(w->pending);
  json_decref(w->files);
  json_decref(w->peer_queue);
  json_decref(w->peer_sets);
  json_decref(w->ingress);
  json_decref(w->mesh);
  json_decref(w->pulls);
  pthread_mutex_destroy(&w->pulls_lock);
  free(w->node_id);
  free(w);
}

static void handle_closed(uv_handle_t *h) {
  struct worker *w = h->data;
  w->handles--;
  maybe_free(w);
}

void worker_free(struct worker *w) {
  if (!w)
    return;
  w->stopping = true;
  for (struct log_stream *ls = w->streams; ls; ls = ls->next) {
    atomic_store(&ls->cancelled, true);
    flow_close(&ls->lf->f);
  }
  /* Containers keep running (a restart adopts them): only stop watching. */
  for (struct tctl *t = w->tasks; t; t = t->next) {
    exec_watch_free(t->watch);
    t->watch = NULL;
    health_stop(t->health);
    t->health = NULL;
  }
  /* Waits for local work in flight (short, except the stop of a container
   * that could not be watched). */
  workq_close(w->local);
  w->local = NULL;
  dnsd_free(w->dns);
  w->dns = NULL;
  uv_close((uv_handle_t *)&w->report_timer, handle_closed);
  uv_close((uv_handle_t *)&w->monitor, handle_closed);
}

void worker_dns_add(struct worker *w, const char *id, int fd,
                    const json_t *nets) {
  sh_err err = {0};
  if (!w->dns) {
    close(fd);
    return;
  }
  if (dnsd_add(w->dns, id, fd, nets, &err) < 0)
    log_warn("container %s: embedded DNS: %s", id, err.msg);
}

void worker_dns_remove(struct worker *w, const char *id) {
  if (w->dns)
    dnsd_remove(w->dns, id);
}
