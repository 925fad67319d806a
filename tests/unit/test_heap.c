#include "test.h"

#include "core/jsonx.h"
#include "lazy/heap.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static void *decref_elsewhere(void *j) {
  json_decref(j);
  return NULL;
}

/* A store's JSON from mimalloc once it is large, glibc's before and
 * after; each block freed by the heap that owns it, on any thread. */
TEST(heap_json_follows_the_store_and_frees_by_owner) {
  if (!heap_json_init())
    SKIP("built with a sanitizer: JSON stays on glibc's heap for it");
  json_t *early = json_string("made on glibc's heap");
  CHECK(!heap_json_owns(early));
  CHECK_INT_EQ(heap_json_follow(heap_json_mark() - 1), 0);
  CHECK(!heap_json_is_fast());
  json_t *small = json_object();
  CHECK(!heap_json_owns(small));
  CHECK_INT_EQ(heap_json_follow(heap_json_mark()), 1);
  CHECK(heap_json_is_fast());
  /* On huge pages unless the environment says otherwise. */
  if (!getenv("MIMALLOC_LARGE_OS_PAGES"))
    CHECK(heap_json_huge_pages());
  json_t *o = json_pack("{s:s, s:[i,i]}", "Name", "web", "Ports", 80, 443);
  CHECK(heap_json_owns(o));
  CHECK(heap_json_owns(json_object_get(o, "Name")));
  /* The process's malloc is still glibc's (mimalloc is RTLD_LOCAL). */
  void *m = malloc(64);
  CHECK(!heap_json_owns(m));
  free(m);
  /* Serialized text is glibc's memory whatever made the JSON. */
  size_t n = 0;
  char *txt = jx_dumps(o, JSON_COMPACT, &n);
  CHECK(!heap_json_owns(txt));
  CHECK_STR_EQ(txt, "{\"Name\":\"web\",\"Ports\":[80,443]}");
  CHECK_INT_EQ(n, strlen(txt));
  free(txt);
  /* Mixed: a glibc value in a mimalloc object, and the reverse. */
  json_object_set_new(o, "Early", early);
  json_object_set(small, "Late", o);
  /* Between the marks it stays; well below, glibc's again. */
  CHECK_INT_EQ(heap_json_follow(heap_json_mark() / 2), 0);
  CHECK(heap_json_is_fast());
  CHECK_INT_EQ(heap_json_follow(heap_json_mark() / 2 - 1), -1);
  CHECK(!heap_json_is_fast());
  json_t *after = json_string("glibc again");
  CHECK(!heap_json_owns(after));
  json_decref(after);
  /* Freed on another thread: each block to its own heap. */
  json_decref(o);
  pthread_t th;
  CHECK_INT_EQ(pthread_create(&th, NULL, decref_elsewhere, small), 0);
  CHECK_INT_EQ(pthread_join(th, NULL), 0);
  heap_json_collect();
}
