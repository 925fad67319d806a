/* `--with-registry-auth`: the X-Registry-Auth header kept with the service
 * (swarmkit's ContainerSpec.PullOptions), hidden from the API's views, kept
 * or taken from the previous spec on update (moby's registryAuthFrom), and
 * new credentials alone do not make a task that has pulled dirty. */
#include "fixture.h"
#include "test.h"

#include <openssl/evp.h>

/* base64url of {"username":"u","password":"pwN","serveraddress":"r:5001"} */
#define AUTH1                                                                  \
  "eyJ1c2VybmFtZSI6InUiLCJwYXNzd29yZCI6InB3MSIsInNlcnZlcmFkZHJlc3MiOiJyOjUw"   \
  "MDEifQ=="
#define AUTH2                                                                  \
  "eyJ1c2VybmFtZSI6InUiLCJwYXNzd29yZCI6InB3MiIsInNlcnZlcmFkZHJlc3MiOiJyOjUw"   \
  "MDEifQ=="
#define AUTH3                                                                  \
  "eyJ1c2VybmFtZSI6InUiLCJwYXNzd29yZCI6InB3MyIsInNlcnZlcmFkZHJlc3MiOiJyOjUw"   \
  "MDEifQ=="

#define SPEC(replicas)                                                         \
  "{\"Name\":\"web\",\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":"          \
  "\"r:5001/p/img\"}},\"Mode\":{\"Replicated\":{\"Replicas\":" #replicas "}}}"

static const char *auth_of(struct fx *f, const char *path) {
  json_t *svc = store_get(f->s, STORE_SERVICE, "svc1");
  const char *a = services_pull_auth(jx_get(svc, path));
  return a ? a : "";
}

/* What controlapi does for POST /services/create with X-Registry-Auth. */
static int create(struct fx *f, const char *spec_json, const char *header,
                  sh_err *err) {
  json_t *spec = json_loads(spec_json, 0, NULL);
  json_t *svc = services_create(f->s, spec, "svc1", f->now, err);
  json_decref(spec);
  if (!svc || services_registry_auth(svc, NULL, false, header, NULL, err) < 0) {
    json_decref(svc);
    return -1;
  }
  fx_put(f, STORE_SERVICE, svc, STORE_MUST_CREATE);
  return 0;
}

/* ... and POST /services/svc1/update, with the spec the API shows. */
static int update(struct fx *f, const char *rollback, const char *header,
                  const char *from, const char *image, sh_err *err) {
  json_t *cur = store_get(f->s, STORE_SERVICE, "svc1");
  int64_t ver = jx_int(cur, "Version.Index", 0);
  json_t *view = services_view(cur, false);
  json_t *spec = json_object_get(view, "Spec");
  if (image)
    jx_set(spec, "TaskTemplate.ContainerSpec.Image", json_string(image));
  json_t *next =
      services_update(f->s, "svc1", ver, spec, rollback, f->now, err);
  json_decref(view);
  bool back = rollback && strcmp(rollback, "previous") == 0;
  if (!next || services_registry_auth(next, cur, back, header, from, err) < 0) {
    json_decref(next);
    return -1;
  }
  fx_put(f, STORE_SERVICE, next, ver);
  return 0;
}

TEST(regauth_stored_hidden_kept_and_replaced) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  sh_err err = {0};
  /* A malformed header is refused; a spec cannot set the credentials. */
  CHECK(create(&f, SPEC(1), "%%%", &err) < 0);
  CHECK_INT_EQ(err.status, 400);
  CHECK(str_has_prefix(err.msg, "invalid X-Registry-Auth header: "));
  CHECK(create(&f,
               "{\"Name\":\"web\",\"TaskTemplate\":{\"ContainerSpec\":{"
               "\"Image\":\"r:5001/p/img\",\"_PullOptions\":{\"RegistryAuth\":"
               "\"" AUTH3 "\"}}}}",
               NULL, &err) == 0);
  CHECK_STR_EQ(auth_of(&f, "Spec.TaskTemplate.ContainerSpec"), "");
  fx_free(&f);

  cleanup_fx struct fx g = {0};
  fx_init(&g, 5);
  CHECK(create(&g, SPEC(1), AUTH1, &err) == 0);
  CHECK_STR_EQ(auth_of(&g, "Spec.TaskTemplate.ContainerSpec"), AUTH1);
  /* No view shows it (moby's API has no such field). */
  json_t *svc = store_get(g.s, STORE_SERVICE, "svc1");
  json_t *view = services_view(svc, true);
  char *dump = jx_dump(view);
  CHECK(!strstr(dump, AUTH1) && !strstr(dump, "PullOptions"));
  free(dump);
  json_decref(view);

  /* Update without the header (registryAuthFrom absent or "spec"): kept. */
  CHECK(update(&g, NULL, NULL, NULL, "r:5001/p/img:2", &err) == 0);
  CHECK_STR_EQ(auth_of(&g, "Spec.TaskTemplate.ContainerSpec"), AUTH1);
  CHECK(update(&g, NULL, "", "spec", "r:5001/p/img:3", &err) == 0);
  CHECK_STR_EQ(auth_of(&g, "Spec.TaskTemplate.ContainerSpec"), AUTH1);
  /* A new header replaces it; the previous spec keeps the old one. */
  CHECK(update(&g, NULL, AUTH2, NULL, "r:5001/p/img:4", &err) == 0);
  CHECK_STR_EQ(auth_of(&g, "Spec.TaskTemplate.ContainerSpec"), AUTH2);
  CHECK_STR_EQ(auth_of(&g, "PreviousSpec.TaskTemplate.ContainerSpec"), AUTH1);
  /* previous-spec: the previous spec's credentials. */
  CHECK(update(&g, NULL, NULL, "previous-spec", "r:5001/p/img:5", &err) == 0);
  CHECK_STR_EQ(auth_of(&g, "Spec.TaskTemplate.ContainerSpec"), AUTH1);
  /* moby's messages for the rest. */
  CHECK(update(&g, NULL, NULL, "bogus", NULL, &err) < 0);
  CHECK_INT_EQ(err.status, 400);
  CHECK_STR_EQ(err.msg, "unsupported registryAuthFrom value");
  CHECK(update(&g, NULL, "!!notbase64", NULL, NULL, &err) < 0);
  CHECK_INT_EQ(err.status, 400);
  /* A rollback takes the previous spec with its own credentials, whatever
   * the request carries. */
  CHECK(update(&g, NULL, AUTH2, NULL, "r:5001/p/img:6", &err) == 0);
  CHECK(update(&g, "previous", AUTH3, NULL, NULL, &err) == 0);
  CHECK_STR_EQ(jx_str(store_get(g.s, STORE_SERVICE, "svc1"),
                      "Spec.TaskTemplate.ContainerSpec.Image", ""),
               "r:5001/p/img:5");
  CHECK_STR_EQ(auth_of(&g, "Spec.TaskTemplate.ContainerSpec"), AUTH1);
  CHECK_STR_EQ(auth_of(&g, "PreviousSpec.TaskTemplate.ContainerSpec"), AUTH2);
  fx_free(&g);
}

TEST(regauth_previous_spec_needed) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  sh_err err = {0};
  CHECK(create(&f, SPEC(1), AUTH1, &err) == 0);
  CHECK(update(&f, NULL, NULL, "previous-spec", NULL, &err) < 0);
  CHECK_STR_EQ(err.msg, "service does not have a previous spec");
  fx_free(&f);
}

TEST(regauth_tasks_carry_it_and_new_credentials_restart_nothing) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  fx_node(&f, "node1", NULL);
  fx_node(&f, "node2", NULL);
  sh_err err = {0};
  CHECK(create(&f, SPEC(2), AUTH1, &err) == 0);
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc1", "running", "running"), 2);
  json_t *l = fx_tasks(&f, "svc1", NULL, NULL);
  size_t i;
  json_t *t;
  json_array_foreach(l, i, t) {
    CHECK_STR_EQ(services_pull_auth(jx_get(t, "Spec.ContainerSpec")) ?: "",
                 AUTH1);
  }
  json_decref(l);
  /* swarmkit #971: running tasks pulled already; new credentials alone
   * replace none of them. */
  f.now += NS_PER_SEC;
  CHECK(update(&f, NULL, AUTH2, NULL, NULL, &err) == 0);
  json_t *svc = store_get(f.s, STORE_SERVICE, "svc1");
  l = fx_tasks(&f, "svc1", NULL, NULL);
  json_array_foreach(l, i, t) CHECK(!orchestrator_task_dirty(f.s, svc, t));
  json_decref(l);
  fx_converge(&f, true);
  CHECK_INT_EQ(fx_count(&f, "svc1", NULL, NULL), 2);
  /* A task that has not pulled yet (preparing) gets the new ones. */
  l = fx_tasks(&f, "svc1", NULL, NULL);
  cleanup_free char *id = xstrdup(jx_str(json_array_get(l, 0), "ID", ""));
  fx_task_state(&f, id, "preparing");
  json_decref(l);
  svc = store_get(f.s, STORE_SERVICE, "svc1");
  CHECK(orchestrator_task_dirty(f.s, svc, store_get(f.s, STORE_TASK, id)));
  /* Any other change still makes running tasks dirty. */
  f.now += NS_PER_SEC;
  CHECK(update(&f, NULL, NULL, NULL, "r:5001/p/img:2", &err) == 0);
  svc = store_get(f.s, STORE_SERVICE, "svc1");
  l = fx_tasks(&f, "svc1", "running", "running");
  CHECK(json_array_size(l) > 0);
  json_array_foreach(l, i, t) CHECK(orchestrator_task_dirty(f.s, svc, t));
  json_decref(l);
  fx_free(&f);
}

/* Each task copies the credentials: they count in the service's size
 * limit like the rest of the template. */
TEST(regauth_counts_in_the_task_size_limit) {
  cleanup_fx struct fx f = {0};
  fx_init(&f, 5);
  size_t n = 8000;
  cleanup_free char *json = xmalloc(n + 64);
  int k = snprintf(json, n + 64, "{\"username\":\"u\",\"password\":\"");
  memset(json + k, 'x', n);
  snprintf(json + k + n, 64, "\"}");
  size_t len = strlen(json);
  cleanup_free char *b64 = xmalloc(4 * ((len + 2) / 3) + 1);
  EVP_EncodeBlock((unsigned char *)b64, (unsigned char *)json, (int)len);
  sh_err err = {0};
  CHECK(create(&f, SPEC(5000), b64, &err) < 0);
  CHECK_INT_EQ(err.status, 400);
  CHECK(strstr(err.msg, "exceed the limit of 32 MiB of tasks per service"));
  CHECK(create(&f, SPEC(10), b64, &err) == 0);
  /* Kept by an update that scales up past the limit: refused too. */
  json_t *cur = store_get(f.s, STORE_SERVICE, "svc1");
  json_t *view = services_view(cur, false);
  jx_set(json_object_get(view, "Spec"), "Mode.Replicated.Replicas",
         json_integer(5000));
  json_t *next =
      services_update(f.s, "svc1", jx_int(cur, "Version.Index", 0),
                      json_object_get(view, "Spec"), NULL, f.now, &err);
  CHECK(next != NULL);
  CHECK(services_registry_auth(next, cur, false, NULL, NULL, &err) < 0);
  CHECK(strstr(err.msg, "exceed the limit"));
  json_decref(next);
  json_decref(view);
  fx_free(&f);
}
