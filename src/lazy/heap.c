/* lazy: jansson's heap, glibc's or mimalloc's (see heap.h). */
#include "lazy/heap.h"

#include <jansson.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#define HEAP_PLAIN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HEAP_PLAIN 1
#endif
#endif

#ifdef HEAP_PLAIN
bool heap_json_init(void) {
  return false;
}
bool heap_json_fast(bool on) {
  (void)on;
  return false;
}
bool heap_json_is_fast(void) {
  return false;
}
bool heap_json_huge_pages(void) {
  return false;
}
bool heap_json_owns(const void *p) {
  (void)p;
  return false;
}
void heap_json_collect(void) {}
int heap_json_follow(size_t objects) {
  (void)objects;
  return 0;
}
size_t heap_json_mark(void) {
  return HEAP_JSON_FAST_AT;
}
#else
#include "lazy/lazy.h"

#include <dlfcn.h>
#include <mimalloc.h>

#define LAZY_MIMALLOC_FNS(X)                                                   \
  X(mi_collect)                                                                \
  X(mi_free)                                                                   \
  X(mi_is_in_heap_region)                                                      \
  X(mi_malloc)                                                                 \
  X(mi_option_is_enabled)                                                      \
  X(mi_option_set)

LAZY_DECLARE(mimalloc, LAZY_MIMALLOC_FNS)
struct lazy_mimalloc_fns lazy_mimalloc_fns;

static const char *resolve(void *h) {
#define X(fn) LAZY_RESOLVE(h, lazy_mimalloc_fns.fn, #fn)
  LAZY_MIMALLOC_FNS(X)
#undef X
  /* Its segments on huge pages (madvise MADV_HUGEPAGE, or a hugetlbfs
   * pool if the host has one) before its first block: a store of
   * 100,000 tasks grows by page faults and is walked through hash tables
   * that miss the TLB. At 1,000 simulated nodes the followers took
   * 12-18 % less CPU with them, the leader ~5 %, and the same RSS
   * (docs/architecture.md). An operator's MIMALLOC_LARGE_OS_PAGES
   * decides instead. */
  if (!getenv("MIMALLOC_LARGE_OS_PAGES"))
    lazy_mimalloc_fns.mi_option_set(mi_option_large_os_pages, 1);
  return NULL;
}

/* No unload: its blocks live as long as the store. */
struct lazy_lib lazy_mimalloc_lib = {.soname = "libmimalloc.so.2",
                                     .resolve = resolve};

static __thread bool fast;
static bool unavailable; /* the load failed: not tried again */

static bool loaded(void) {
  return __atomic_load_n(&lazy_mimalloc_lib.ok, __ATOMIC_ACQUIRE);
}

static void *json_alloc(size_t n) {
  return fast ? lazy_mimalloc_fns.mi_malloc(n) : malloc(n);
}

static void json_release(void *p) {
  if (p && loaded() && lazy_mimalloc_fns.mi_is_in_heap_region(p))
    lazy_mimalloc_fns.mi_free(p);
  else
    free(p);
}

bool heap_json_init(void) {
  json_set_alloc_funcs(json_alloc, json_release);
  return true;
}

bool heap_json_fast(bool on) {
  fast = on && !__atomic_load_n(&unavailable, __ATOMIC_RELAXED) &&
         lazy_ready(&lazy_mimalloc_lib);
  if (on && !fast)
    __atomic_store_n(&unavailable, true, __ATOMIC_RELAXED);
  return fast;
}

bool heap_json_is_fast(void) {
  return fast;
}

bool heap_json_huge_pages(void) {
  return loaded() &&
         lazy_mimalloc_fns.mi_option_is_enabled(mi_option_large_os_pages);
}

size_t heap_json_mark(void) {
  static size_t mark;
  size_t m = __atomic_load_n(&mark, __ATOMIC_RELAXED);
  if (m == 0) {
    const char *v = getenv("SHOAL_JSON_HEAP_AT");
    char *end = NULL;
    long n = v ? strtol(v, &end, 10) : 0;
    m = v && *v && !*end && n > 1 ? (size_t)n : HEAP_JSON_FAST_AT;
    __atomic_store_n(&mark, m, __ATOMIC_RELAXED);
  }
  return m;
}

int heap_json_follow(size_t objects) {
  if (!fast && objects >= heap_json_mark())
    return heap_json_fast(true) ? 1 : 0;
  if (fast && objects < heap_json_mark() / 2) {
    heap_json_fast(false);
    return -1;
  }
  return 0;
}

bool heap_json_owns(const void *p) {
  return p && loaded() && lazy_mimalloc_fns.mi_is_in_heap_region(p);
}

void heap_json_collect(void) {
  if (loaded())
    lazy_mimalloc_fns.mi_collect(true);
}
#endif
