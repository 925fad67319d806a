/* Secrets and configs: swarmkit's checks and messages, views without a
 * secret's data, the in-use refusal, service references, what a node is
 * sent, and the node's files on a tmpfs. */
#include "agent/secretfs.h"
#include "core/b64.h"
#include "fixture.h"
#include "manager/secrets.h"
#include "test.h"

#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/vfs.h>
#include <linux/magic.h>

#define RPC_INVALID "rpc error: code = InvalidArgument desc = "

static json_t *mk(struct fx *f, enum store_kind kind, const char *json,
                  const char *id, sh_err *err) {
  json_t *spec = json_loads(json, 0, NULL);
  json_t *o = secrets_create(f->s, kind, spec, id, err);
  json_decref(spec);
  return o;
}

/* Creates and commits; returns the stored object. */
static json_t *put(struct fx *f, enum store_kind kind, const char *json,
                   const char *id) {
  sh_err err = {0};
  json_t *o = mk(f, kind, json, id, &err);
  if (!o) {
    fprintf(stderr, "    create: %s\n", err.msg);
    abort();
  }
  fx_put(f, kind, o, STORE_MUST_CREATE);
  return store_get(f->s, kind, id);
}

TEST(secrets_create_checks_and_messages) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  sh_err err = {0};
  CHECK(!mk(&f, STORE_SECRET, "{\"Data\":\"eA==\"}", "i1", &err));
  CHECK_STR_EQ(err.msg, RPC_INVALID "name must be provided");
  CHECK_INT_EQ(err.status, 400);
  CHECK(
      !mk(&f, STORE_SECRET, "{\"Name\":\"-x\",\"Data\":\"eA==\"}", "i1", &err));
  CHECK_STR_EQ(err.msg, RPC_INVALID
               "invalid name, only 64 [a-zA-Z0-9-_.] characters allowed, "
               "and the start and end character must be [a-zA-Z0-9]");
  CHECK(!mk(&f, STORE_SECRET, "{\"Name\":\"x\"}", "i1", &err));
  CHECK_STR_EQ(err.msg, RPC_INVALID "secret data must be larger than 0 and "
                                    "less than 512000 bytes");
  CHECK(!mk(&f, STORE_CONFIG, "{\"Name\":\"x\",\"Data\":\"\"}", "i1", &err));
  CHECK_STR_EQ(err.msg, RPC_INVALID "config data must be larger than 0 and "
                                    "less than 1024000 bytes");
  CHECK(
      !mk(&f, STORE_SECRET, "{\"Name\":\"x\",\"Data\":\"e!==\"}", "i1", &err));
  CHECK_INT_EQ(err.status, 400);
  CHECK_STR_EQ(err.msg, "invalid JSON: illegal base64 data at input byte 1");
  CHECK(!mk(&f, STORE_SECRET,
            "{\"Name\":\"x\",\"Data\":\"eA==\",\"Driver\":{\"Name\":\"v\"}}",
            "i1", &err));
  CHECK_INT_EQ(err.status, 501);
  CHECK(strstr(err.msg, "(Driver)"));
  CHECK(!mk(&f, STORE_CONFIG,
            "{\"Name\":\"x\",\"Data\":\"eA==\",\"Templating\":{\"Name\":"
            "\"golang\"}}",
            "i1", &err));
  CHECK_INT_EQ(err.status, 501);
  CHECK(strstr(err.msg, "(Templating)"));

  /* the size limit: 512000 bytes refused, one less accepted */
  size_t n = SECRETS_MAX_SECRET_SIZE;
  char *raw = xcalloc(n, 1);
  memset(raw, 'a', n);
  char *b = b64_encode(raw, n);
  char *body = xasprintf("{\"Name\":\"big\",\"Data\":\"%s\"}", b);
  CHECK(!mk(&f, STORE_SECRET, body, "i1", &err));
  free(b);
  free(body);
  b = b64_encode(raw, n - 1);
  body = xasprintf("{\"Name\":\"big\",\"Data\":\"%s\"}", b);
  json_t *ok = mk(&f, STORE_SECRET, body, "i1", &err);
  free(b);
  free(body);
  free(raw);
  CHECK(ok);
  json_decref(ok);

  put(&f, STORE_SECRET, "{\"Name\":\"db\",\"Data\":\"cHc=\"}", "sec1");
  CHECK(
      !mk(&f, STORE_SECRET, "{\"Name\":\"db\",\"Data\":\"eA==\"}", "i2", &err));
  CHECK_INT_EQ(err.status, 409);
  CHECK_STR_EQ(
      err.msg,
      "rpc error: code = AlreadyExists desc = secret db already exists");
  /* a config may have a secret's name: separate kinds */
  json_t *c =
      mk(&f, STORE_CONFIG, "{\"Name\":\"db\",\"Data\":\"eA==\"}", "i2", &err);
  CHECK(c);
  json_decref(c);
}

TEST(secrets_views_and_snapshot_never_show_secret_data) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  json_t *s = put(&f, STORE_SECRET,
                  "{\"Name\":\"db\",\"Labels\":{\"a\":\"b\"},\"Data\":"
                  "\"aHVudGVyMg==\"}",
                  "sec1");
  json_t *c = put(&f, STORE_CONFIG,
                  "{\"Name\":\"app\",\"Data\":\"bGlzdGVuIDgw\"}", "cfg1");
  cleanup_json json_t *sv = secrets_view(STORE_SECRET, s);
  cleanup_free char *dump = jx_dump(sv);
  CHECK(!strstr(dump, "aHVudGVyMg=="));
  CHECK(!jx_get(sv, "Spec.Data"));
  CHECK_STR_EQ(jx_str(sv, "Spec.Name", ""), "db");
  CHECK_STR_EQ(jx_str(sv, "Spec.Labels.a", ""), "b");
  CHECK(jx_int(sv, "Version.Index", 0) > 0);
  CHECK(*jx_str(sv, "CreatedAt", ""));
  cleanup_json json_t *pub = store_public(s);
  cleanup_free char *pdump = jx_dump(pub);
  CHECK(!strstr(pdump, "aHVudGVyMg=="));
  /* a config shows its data, and Labels {} when none */
  cleanup_json json_t *cv = secrets_view(STORE_CONFIG, c);
  CHECK_STR_EQ(jx_str(cv, "Spec.Data", ""), "bGlzdGVuIDgw");
  CHECK(json_is_object(jx_get(cv, "Spec.Labels")));
  /* both are in the snapshot (raft seals it) and come back from it */
  size_t len = 0;
  cleanup_free char *snap = store_snapshot(f.s, &len);
  struct store *r = store_new();
  sh_err err = {0};
  CHECK_INT_EQ(store_restore(r, snap, len, &err), 0);
  CHECK_STR_EQ(jx_str(store_get(r, STORE_SECRET, "sec1"), "_Data", ""),
               "aHVudGVyMg==");
  CHECK(store_find(r, STORE_CONFIG, "app", NULL));
  store_free(r);
}

TEST(secrets_update_only_labels) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  put(&f, STORE_SECRET, "{\"Name\":\"db\",\"Data\":\"aHVudGVyMg==\"}", "sec1");
  sh_err err = {0};
  const char *bad[] = {
      "{\"Name\":\"db2\"}",
      "{\"Name\":\"db\",\"Data\":\"eA==\"}",
  };
  for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
    json_t *spec = json_loads(bad[i], 0, NULL);
    CHECK(!secrets_update(f.s, STORE_SECRET, "db", spec, &err));
    json_decref(spec);
    CHECK_STR_EQ(err.msg, RPC_INVALID "only updates to Labels are allowed");
  }
  /* the same data may be sent back; labels change */
  json_t *spec = json_loads(
      "{\"Name\":\"db\",\"Data\":\"aHVudGVyMg==\",\"Labels\":{\"k\":\"v\"}}", 0,
      NULL);
  json_t *next = secrets_update(f.s, STORE_SECRET, "sec", spec, &err);
  json_decref(spec);
  CHECK(next);
  CHECK_STR_EQ(jx_str(next, "Spec.Labels.k", ""), "v");
  CHECK_STR_EQ(jx_str(next, "_Data", ""), "aHVudGVyMg==");
  json_decref(next);
  spec = json_loads("{\"Name\":\"db\"}", 0, NULL);
  CHECK(!secrets_update(f.s, STORE_SECRET, "nope", spec, &err));
  json_decref(spec);
  CHECK_INT_EQ(err.status, 404);
  CHECK_STR_EQ(err.msg, "secret nope not found");
}

#define SVC_WITH(refs)                                                         \
  "{\"Name\":\"%s\",\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":"           \
  "\"busybox\"," refs "}}}"

static int svc_err(struct fx *f, const char *json, sh_err *err) {
  json_t *spec = json_loads(json, 0, NULL);
  if (!spec)
    abort();
  json_t *svc = services_create(f->s, spec, "svcx", f->now, err);
  json_decref(spec);
  json_decref(svc);
  return svc ? 0 : -1;
}

TEST(secrets_service_references_checked) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  put(&f, STORE_SECRET, "{\"Name\":\"db\",\"Data\":\"eA==\"}", "sec1");
  put(&f, STORE_SECRET, "{\"Name\":\"tls\",\"Data\":\"eA==\"}", "sec2");
  put(&f, STORE_CONFIG, "{\"Name\":\"app\",\"Data\":\"eA==\"}", "cfg1");
  sh_err err = {0};
  struct {
    const char *refs, *msg;
    int status;
  } cases[] = {
      {"\"Secrets\":[{\"SecretID\":\"sec1\",\"File\":{\"Name\":\"a\"}}]",
       RPC_INVALID "malformed secret reference", 400},
      {"\"Secrets\":[{\"SecretID\":\"sec1\",\"SecretName\":\"db\"}]",
       RPC_INVALID "malformed secret reference, no target provided", 400},
      {"\"Secrets\":[{\"SecretID\":\"sec1\",\"SecretName\":\"db\",\"File\":{"
       "\"Name\":\"\"}}]",
       RPC_INVALID "malformed file secret reference, invalid target file name "
                   "provided",
       400},
      {"\"Secrets\":[{\"SecretID\":\"sec1\",\"SecretName\":\"db\",\"File\":{"
       "\"Name\":\"x\"}},{\"SecretID\":\"sec2\",\"SecretName\":\"tls\","
       "\"File\":{\"Name\":\"x\"}}]",
       RPC_INVALID "secret references 'db' and 'tls' have a conflicting "
                   "target: 'x'",
       400},
      {"\"Secrets\":[{\"SecretID\":\"nope\",\"SecretName\":\"db\",\"File\":{"
       "\"Name\":\"x\"}},{\"SecretID\":\"sec2\",\"SecretName\":\"other\","
       "\"File\":{\"Name\":\"y\"}}]",
       RPC_INVALID "secrets not found: db, other", 400},
      {"\"Configs\":[{\"ConfigID\":\"nope\",\"ConfigName\":\"c\",\"File\":{"
       "\"Name\":\"/c\"}}]",
       RPC_INVALID "config not found: c", 400},
      {"\"Configs\":[{\"ConfigID\":\"cfg1\",\"ConfigName\":\"app\","
       "\"Runtime\":{}}]",
       NULL, 501},
      {"\"Secrets\":[{\"SecretID\":\"sec1\",\"SecretName\":\"db\",\"File\":{"
       "\"Name\":\"x\",\"UID\":\"root\"}}]",
       NULL, 400},
  };
  for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
    char body[1024];
    snprintf(body, sizeof body, SVC_WITH("%s"), "web", cases[i].refs);
    CHECK(svc_err(&f, body, &err) < 0);
    CHECK_INT_EQ(err.status, cases[i].status);
    if (cases[i].msg)
      CHECK_STR_EQ(err.msg, cases[i].msg);
  }
  /* well-formed references to existing objects: accepted, not refused */
  fx_service(&f, "svc1",
             "{\"Name\":\"web\",\"TaskTemplate\":{\"ContainerSpec\":{"
             "\"Image\":\"busybox\",\"Secrets\":[{\"SecretID\":\"sec1\","
             "\"SecretName\":\"db\",\"File\":{\"Name\":\"db\",\"UID\":\"0\","
             "\"GID\":\"0\",\"Mode\":292}}],\"Configs\":[{\"ConfigID\":"
             "\"cfg1\",\"ConfigName\":\"app\",\"File\":{\"Name\":\"/app\"}}]}}"
             "}");
  CHECK_STR_EQ(
      jx_str(json_array_get(jx_get(store_get(f.s, STORE_SERVICE, "svc1"),
                                   "Spec.TaskTemplate.ContainerSpec.Secrets"),
                            0),
             "SecretName", ""),
      "db");
}

TEST(secrets_remove_refused_while_in_use) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  put(&f, STORE_SECRET, "{\"Name\":\"db\",\"Data\":\"eA==\"}", "sec1");
  put(&f, STORE_CONFIG, "{\"Name\":\"app\",\"Data\":\"eA==\"}", "cfg1");
  put(&f, STORE_SECRET, "{\"Name\":\"free\",\"Data\":\"eA==\"}", "sec9");
  const char *refs = "\"Secrets\":[{\"SecretID\":\"sec1\",\"SecretName\":"
                     "\"db\",\"File\":{\"Name\":\"db\"}}],\"Configs\":[{"
                     "\"ConfigID\":\"cfg1\",\"ConfigName\":\"app\",\"File\":{"
                     "\"Name\":\"/app\"}}]";
  char body[1024];
  snprintf(body, sizeof body, SVC_WITH("%s"), "web", refs);
  fx_service(&f, "svc1", body);
  sh_err err = {0};
  CHECK(!secrets_remove(f.s, STORE_SECRET, "db", &err));
  CHECK_INT_EQ(err.status, 400);
  CHECK_STR_EQ(err.msg, RPC_INVALID "secret 'db' is in use by the following "
                                    "service: web");
  snprintf(body, sizeof body, SVC_WITH("%s"), "api", refs);
  fx_service(&f, "svc2", body);
  CHECK(!secrets_remove(f.s, STORE_CONFIG, "cfg1", &err));
  CHECK_STR_EQ(err.msg, RPC_INVALID "config 'app' is in use by the following "
                                    "services: web, api");
  const char *id = secrets_remove(f.s, STORE_SECRET, "sec9", &err);
  CHECK(id && strcmp(id, "sec9") == 0);
  CHECK(!secrets_remove(f.s, STORE_SECRET, "gone", &err));
  CHECK_INT_EQ(err.status, 404);
  CHECK_STR_EQ(err.msg, "secret gone not found");
}

TEST(secrets_node_gets_only_what_its_running_tasks_need) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  put(&f, STORE_SECRET, "{\"Name\":\"a\",\"Data\":\"YWFh\"}", "secA");
  put(&f, STORE_SECRET, "{\"Name\":\"b\",\"Data\":\"YmJi\"}", "secB");
  put(&f, STORE_SECRET, "{\"Name\":\"c\",\"Data\":\"Y2Nj\"}", "secC");
  put(&f, STORE_CONFIG, "{\"Name\":\"k\",\"Data\":\"a2tr\"}", "cfgK");
  cleanup_json json_t *tasks = json_loads(
      "[{\"ID\":\"t1\",\"DesiredState\":\"running\",\"Spec\":{"
      "\"ContainerSpec\":{\"Secrets\":[{\"SecretID\":\"secA\",\"File\":{}},"
      "{\"SecretID\":\"secA\",\"File\":{}}],\"Configs\":[{\"ConfigID\":"
      "\"cfgK\"}]}}},"
      "{\"ID\":\"t2\",\"DesiredState\":\"running\",\"Spec\":{"
      "\"ContainerSpec\":{\"Secrets\":[{\"SecretID\":\"secA\"}]}}},"
      "{\"ID\":\"t3\",\"DesiredState\":\"shutdown\",\"Spec\":{"
      "\"ContainerSpec\":{\"Secrets\":[{\"SecretID\":\"secB\"}]}}}]",
      0, NULL);
  cleanup_json json_t *out = secrets_for_tasks(f.s, tasks);
  json_t *sec = json_object_get(out, "Secrets");
  CHECK_INT_EQ(json_array_size(sec), 1); /* not b (stopping), not c */
  CHECK_STR_EQ(jx_str(json_array_get(sec, 0), "ID", ""), "secA");
  CHECK_STR_EQ(jx_str(json_array_get(sec, 0), "Name", ""), "a");
  CHECK_STR_EQ(jx_str(json_array_get(sec, 0), "Data", ""), "YWFh");
  json_t *cfg = json_object_get(out, "Configs");
  CHECK_INT_EQ(json_array_size(cfg), 1);
  CHECK_STR_EQ(jx_str(json_array_get(cfg, 0), "Data", ""), "a2tr");
  /* no tasks: nothing */
  cleanup_json json_t *empty = json_array();
  cleanup_json json_t *none = secrets_for_tasks(f.s, empty);
  CHECK_INT_EQ(json_array_size(json_object_get(none, "Secrets")), 0);
}

TEST(secretfs_plan_targets_defaults_and_missing) {
  cleanup_json json_t *held = json_loads(
      "{\"Secrets\":[{\"ID\":\"s1\",\"Name\":\"db\",\"Data\":\"YWFh\"}],"
      "\"Configs\":[{\"ID\":\"c1\",\"Name\":\"app\",\"Data\":\"a2tr\"}]}",
      0, NULL);
  cleanup_json json_t *task = json_loads(
      "{\"Spec\":{\"ContainerSpec\":{\"Secrets\":["
      "{\"SecretID\":\"s1\",\"SecretName\":\"db\",\"File\":{\"Name\":\"db\","
      "\"UID\":\"0\",\"GID\":\"0\",\"Mode\":292}},"
      "{\"SecretID\":\"s1\",\"SecretName\":\"db\",\"File\":{\"Name\":"
      "\"../../etc/x\",\"UID\":\"1000\",\"GID\":\"1001\",\"Mode\":256}},"
      "{\"SecretID\":\"s1\",\"SecretName\":\"db\",\"File\":{\"Name\":"
      "\"/abs/db\"}}],"
      "\"Configs\":[{\"ConfigID\":\"c1\",\"ConfigName\":\"app\",\"File\":{"
      "\"Name\":\"app.conf\"}}]}}}",
      0, NULL);
  json_t *plan = NULL;
  sh_err err = {0};
  CHECK_INT_EQ(secretfs_plan(task, held, &plan, &err), 0);
  CHECK_INT_EQ(json_array_size(plan), 4);
  const char *targets[] = {"/run/secrets/db", "/etc/x", "/abs/db", "/app.conf"};
  for (size_t i = 0; i < 4; i++)
    CHECK_STR_EQ(jx_str(json_array_get(plan, i), "Target", ""), targets[i]);
  json_t *p1 = json_array_get(plan, 1);
  CHECK_INT_EQ(jx_int(p1, "UID", -1), 1000);
  CHECK_INT_EQ(jx_int(p1, "GID", -1), 1001);
  CHECK_INT_EQ(jx_int(p1, "Mode", -1), 0400);
  CHECK_INT_EQ(jx_int(json_array_get(plan, 2), "Mode", -1), 0444);
  CHECK_STR_EQ(jx_str(json_array_get(plan, 3), "Data", ""), "a2tr");
  json_decref(plan);
  /* a secret the node was not sent */
  cleanup_json json_t *none = json_pack("{s:[], s:[]}", "Secrets", "Configs");
  CHECK(secretfs_plan(task, none, &plan, &err) < 0);
  CHECK_STR_EQ(err.msg, "secret db not found");
}

TEST(secretfs_files_on_a_tmpfs_removed_on_teardown) {
  if (geteuid() != 0)
    SKIP("needs root to mount a tmpfs");
  char root[] = "/tmp/shoal-secretfs-XXXXXX";
  CHECK(mkdtemp(root));
  cleanup_json json_t *plan = json_loads(
      "[{\"File\":\"s0\",\"Target\":\"/run/secrets/db\",\"UID\":1000,"
      "\"GID\":1001,\"Mode\":256,\"Data\":\"aHVudGVyMg==\"}]",
      0, NULL);
  char *dir = NULL;
  sh_err err = {0};
  if (secretfs_setup(root, "task1", plan, &dir, &err) < 0) {
    rmdir(root);
    SKIP("cannot mount a tmpfs here: %s", err.msg);
  }
  struct statfs sf;
  CHECK_INT_EQ(statfs(dir, &sf), 0);
  CHECK(sf.f_type == TMPFS_MAGIC);
  cleanup_free char *path = xasprintf("%s/s0", dir);
  struct stat st;
  CHECK_INT_EQ(stat(path, &st), 0);
  CHECK_INT_EQ(st.st_uid, 1000);
  CHECK_INT_EQ(st.st_gid, 1001);
  CHECK_INT_EQ(st.st_mode & 07777, 0400);
  cleanup_free char *data = NULL;
  size_t len = 0;
  CHECK_INT_EQ(read_file(path, &data, &len, NULL), 0);
  CHECK_INT_EQ(len, 7);
  CHECK(memcmp(data, "hunter2", 7) == 0);
  CHECK_INT_EQ(secretfs_teardown(root, "task1", &err), 0);
  CHECK(stat(dir, &st) < 0);
  /* twice: nothing to do is no error */
  CHECK_INT_EQ(secretfs_teardown(root, "task1", &err), 0);
  /* a restart's sweep: kept tasks stay, others go */
  free(dir);
  CHECK_INT_EQ(secretfs_setup(root, "keep", plan, &dir, &err), 0);
  free(dir);
  CHECK_INT_EQ(secretfs_setup(root, "drop", plan, &dir, &err), 0);
  cleanup_json json_t *keep = json_pack("{s:b}", "keep", 1);
  secretfs_sweep(root, keep);
  CHECK(stat(dir, &st) < 0);
  free(dir);
  dir = xasprintf("%s/secrets/keep", root);
  CHECK_INT_EQ(statfs(dir, &sf), 0);
  CHECK(sf.f_type == TMPFS_MAGIC);
  secretfs_teardown(root, "keep", NULL);
  free(dir);
  cleanup_free char *sd = xasprintf("%s/secrets", root);
  rmdir(sd);
  rmdir(root);
}

TEST(b64_round_trip_and_refusals) {
  unsigned char *out = NULL;
  size_t len = 0;
  sh_err err = {0};
  CHECK_INT_EQ(b64_decode("aGk=", &out, &len, &err), 0);
  CHECK_INT_EQ(len, 2);
  CHECK(memcmp(out, "hi", 2) == 0);
  free(out);
  CHECK_INT_EQ(b64_decode("", &out, &len, &err), 0);
  CHECK_INT_EQ(len, 0);
  free(out);
  CHECK(b64_decode("aGk", &out, &len, &err) < 0);
  CHECK(b64_decode("a=Gk", &out, &len, &err) < 0);
  CHECK(b64_decode("aGk=aGk=", &out, &len, &err) < 0);
  cleanup_free char *e = b64_encode("hunter2", 7);
  CHECK_STR_EQ(e, "aHVudGVyMg==");
}

TEST(secrets_writes_in_flight_see_each_other) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  json_t *s =
      put(&f, STORE_SECRET, "{\"Name\":\"db\",\"Data\":\"eA==\"}", "sec1");
  cleanup_json json_t *spec = json_loads(
      "{\"Name\":\"web\",\"TaskTemplate\":{\"ContainerSpec\":{\"Secrets\":[{"
      "\"SecretID\":\"sec1\",\"SecretName\":\"db\",\"File\":{\"Name\":"
      "\"db\"}}]}}}",
      0, NULL);
  sh_err err = {0};
  /* a removal of db in flight: a service naming it is refused */
  cleanup_json json_t *removing = json_pack(
      "[{s:i, s:s, s:s}]", "Kind", STORE_SECRET, "ID", "sec1", "Name", "db");
  CHECK(secrets_check_removing(spec, removing, &err) < 0);
  CHECK_STR_EQ(err.msg, RPC_INVALID "secret not found: db");
  cleanup_json json_t *other = json_pack(
      "[{s:i, s:s, s:s}]", "Kind", STORE_CONFIG, "ID", "sec1", "Name", "db");
  CHECK_INT_EQ(secrets_check_removing(spec, other, &err), 0);
  /* a service naming db in flight: the removal is refused as in use */
  cleanup_json json_t *svcs = json_pack("[{s:O}]", "Spec", spec);
  CHECK(secrets_check_pending_use(STORE_SECRET, s, svcs, &err) < 0);
  CHECK_STR_EQ(err.msg, RPC_INVALID "secret 'db' is in use by the following "
                                    "service: web");
  cleanup_json json_t *none = json_array();
  CHECK_INT_EQ(secrets_check_pending_use(STORE_SECRET, s, none, &err), 0);
}
