/* What the fuzz targets of the swarm port share: a real single-node
 * manager that is raft leader (manager_create, listening with TLS on a
 * free loopback port as shoald's swarm port does, writing raft entries
 * and snapshots in shoald's form; its state in a temporary directory
 * removed at exit), the loop pumped until something is done,
 * placeholders in an input replaced by strings of this run, and the
 * pruning of the nodes that inputs add to the store. */
#ifndef SHOAL_FUZZ_LEADER_H
#define SHOAL_FUZZ_LEADER_H

#include "ca/ca.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/id.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "http/client.h"
#include "manager/manager.h"
#include "store/store.h"

#include <ftw.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

struct fuzz_leader {
  struct manager *m;
  struct http_client *client;
  int port;       /* the manager's own swarm listener (TLS) */
  char *root_pem; /* the cluster's root CA */
  char *worker_token, *manager_token;
};

static char *fuzz_state_dir;

static inline int fuzz_rm_cb(const char *path, const struct stat *st, int flag,
                             struct FTW *ftw) {
  remove(path);
  return 0;
}

static inline void fuzz_state_cleanup(void) {
  nftw(fuzz_state_dir, fuzz_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* A free TCP port on the loopback (the manager's listen address needs a
 * port number; 0 is refused). */
static inline int fuzz_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof sa;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
    abort();
  close(fd);
  return ntohs(sa.sin_port);
}

/* A TCP connection to a loopback port, reset on close (no TIME_WAIT
 * pile-up over millions of runs); -1 when refused. */
static inline int fuzz_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Runs the default loop until *flag is non-zero or ms pass; the flag. */
static inline int fuzz_pump_until(const int *flag, int ms) {
  int64_t end = clock_mono_ns() + ms * NS_PER_MS;
  while (!*flag && clock_mono_ns() < end) {
    uv_run(uv_default_loop(), UV_RUN_NOWAIT);
    if (!*flag)
      usleep(200);
  }
  return *flag;
}

/* A manager_done_fn for fuzz_pump_until: 1 when committed, -1 when not. */
static inline void fuzz_done(void *ud, int status, const sh_err *err) {
  *(int *)ud = status < 0 ? -1 : 1;
  if (status < 0 && getenv("FUZZ_VERBOSE"))
    fprintf(stderr, "fuzz: %s\n", err ? err->msg : "?");
}

/* Proposes tx and waits (bounded) for its commit; 1, or -1/0 when it
 * failed or did not commit in time. */
static inline int fuzz_propose(struct manager *m, struct store_tx *tx) {
  int done = 0;
  sh_err err = {0};
  if (manager_propose(m, tx, fuzz_done, &done, &err) < 0)
    return -1;
  return fuzz_pump_until(&done, 2000);
}

/* A new cluster of one manager, raft leader, on a free loopback port; tag
 * names its state directory. Aborts on failure. */
static inline void fuzz_leader_start(struct fuzz_leader *l, const char *tag) {
  uv_loop_t *loop = uv_default_loop();
  const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  fuzz_state_dir = xasprintf("%s/shoal-fuzz-%s-XXXXXX", tmp, tag);
  if (!mkdtemp(fuzz_state_dir))
    abort();
  atexit(fuzz_state_cleanup);
  sh_err err = {0};
  char *root_key = NULL, *key = NULL, *csr = NULL, *cert = NULL;
  static char node_id[ID_LEN + 1], cluster_id[ID_LEN + 1];
  id_new(node_id);
  id_new(cluster_id);
  if (ca_root_create(&l->root_pem, &root_key, &err) < 0 ||
      ca_csr_create(&key, &csr, &err) < 0 ||
      ca_sign_csr(l->root_pem, root_key, csr, node_id, CA_ROLE_MANAGER,
                  cluster_id, INT64_C(3600) * 1000000000, &cert, &err) < 0) {
    fprintf(stderr, "fuzz: %s\n", err.msg);
    abort();
  }
  l->port = fuzz_free_port();
  l->client = http_client_new(loop);
  /* As shoald describes itself: the raft entries and snapshots it reads
   * (the newest form, CBOR, as in production). */
  json_t *desc = json_pack("{s:s, s:i}", "Hostname", "fuzz", STORE_ENTRIES_KEY,
                           STORE_ENTRIES);
  struct manager_config mc = {
      .loop = loop,
      .client = l->client,
      .cluster_id = cluster_id,
      .state_dir = xasprintf("%s/swarm", fuzz_state_dir),
      .node_id = node_id,
      .listen_addr = xasprintf("127.0.0.1:%d", l->port),
      .advertise_addr = "127.0.0.1:2377",
      .cert_pem = cert,
      .key_pem = key,
      .root_pem = l->root_pem,
      .hostname = "fuzz",
      .availability = "active",
      .description = desc,
  };
  struct manager_init in = {.task_history_limit = -1,
                            .root_cert_pem = l->root_pem,
                            .root_key_pem = root_key,
                            .cluster_id = cluster_id};
  int done = 0;
  if (manager_create(&mc, &in, fuzz_done, &done, &l->m, &err) < 0) {
    fprintf(stderr, "fuzz: %s\n", err.msg);
    abort();
  }
  if (fuzz_pump_until(&done, 30000) != 1 || !manager_is_leader(l->m)) {
    fprintf(stderr, "fuzz: swarm init failed\n");
    abort();
  }
  json_t *cluster = store_cluster(manager_store(l->m));
  l->worker_token = xstrdup(jx_str(cluster, "JoinTokens.Worker", ""));
  l->manager_token = xstrdup(jx_str(cluster, "JoinTokens.Manager", ""));
  if (strlen(l->worker_token) != 85 || strlen(l->manager_token) != 85)
    abort();
  /* The manager keeps its own copies. */
  json_decref(desc);
  free((char *)mc.state_dir);
  free((char *)mc.listen_addr);
  free(root_key);
  free(key);
  free(csr);
  free(cert);
}

/* A placeholder of the inputs and what it stands for in this run. */
struct fuzz_subst {
  const char *key;
  const char *val;
};

/* The input with every placeholder replaced (*out_len bytes, with a NUL
 * after them). */
static inline char *fuzz_fill(const uint8_t *data, size_t size,
                              const struct fuzz_subst *subs, size_t nsubs,
                              size_t *out_len) {
  sh_buf b = {0};
  for (size_t i = 0; i < size;) {
    size_t k = nsubs;
    if (data[i] == '@') {
      for (k = 0; k < nsubs; k++) {
        size_t n = strlen(subs[k].key);
        if (size - i >= n && !memcmp(data + i, subs[k].key, n))
          break;
      }
    }
    if (k < nsubs) {
      buf_append(&b, subs[k].val, strlen(subs[k].val));
      i += strlen(subs[k].key);
    } else {
      buf_append(&b, data + i, 1);
      i++;
    }
  }
  *out_len = b.len;
  return b.data ? b.data : xstrdup("");
}

/* The oracle of the swarm port's targets, beside the sanitizers: whatever
 * an input did, the store can still be written in a snapshot and read
 * back as it is (raft compacts its log with snapshots: a store one cannot
 * hold keeps every manager's log growing, and a new manager from
 * joining). Aborts otherwise. */
static inline void fuzz_check_store(struct manager *m) {
  struct store *s = manager_store(m);
  size_t len = 0;
  char *snap = store_snapshot(s, &len);
  if (!snap) {
    fprintf(stderr, "fuzz: no snapshot can hold the store\n");
    abort();
  }
  struct store *r = store_new();
  sh_err err = {0};
  if (store_restore(r, snap, len, &err) < 0) {
    fprintf(stderr, "fuzz: the store's snapshot does not restore: %s\n",
            err.msg);
    abort();
  }
  for (int k = 0; k < STORE_NKINDS; k++) {
    json_t *a = store_list(s, (enum store_kind)k);
    json_t *b = store_list(r, (enum store_kind)k);
    if (!json_equal(a, b)) {
      fprintf(stderr, "fuzz: the %s objects restored from a snapshot differ\n",
              store_kind_name((enum store_kind)k));
      abort();
    }
    json_decref(a);
    json_decref(b);
  }
  store_free(r);
  free(snap);
}

/* Deletes every node but this manager and keep (may be NULL) once there
 * are at least max of them. */
static inline void fuzz_prune_nodes(struct manager *m, const char *keep,
                                    size_t max) {
  struct store *s = manager_store(m);
  if (store_count(s, STORE_NODE) < max)
    return;
  struct store_tx *tx = store_tx_new();
  const char *self = manager_node_id(m);
  json_t *all = store_list(s, STORE_NODE);
  size_t i;
  json_t *n;
  json_array_foreach(all, i, n) {
    const char *id = jx_str(n, "ID", "");
    if (strcmp(id, self) && (!keep || strcmp(id, keep)))
      store_tx_delete(tx, STORE_NODE, id, STORE_ANY_VERSION);
  }
  json_decref(all);
  if (store_tx_empty(tx))
    store_tx_free(tx);
  else
    fuzz_propose(m, tx);
}

#endif
