/* lazy: dlopen by SONAME on first use (see lazy.h). */
#include "lazy/lazy.h"

#include "core/err.h"
#include "core/util.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
/* The libraries with an unload hook, once loaded (there are three). */
static struct lazy_lib *loaded[8];
static size_t n_loaded;

bool lazy_load(struct lazy_lib *lib) {
  pthread_mutex_lock(&mu);
  if (!lib->tried) {
    lib->tried = true;
    void *h = dlopen(lib->soname, RTLD_LAZY | RTLD_LOCAL);
    const char *missing = h ? lib->resolve(h) : NULL;
    if (!h) {
      fprintf(stderr, "shoal: cannot load %s: %s\n", lib->soname, dlerror());
    } else if (missing) {
      fprintf(stderr, "shoal: %s has no %s\n", lib->soname, missing);
    } else {
      lib->handle = h;
      bool known = false;
      for (size_t i = 0; i < n_loaded; i++)
        known |= loaded[i] == lib;
      if (lib->unload && !known && n_loaded < ARRAY_SIZE(loaded))
        loaded[n_loaded++] = lib;
      __atomic_store_n(&lib->ok, true, __ATOMIC_RELEASE);
    }
  }
  pthread_mutex_unlock(&mu);
  return __atomic_load_n(&lib->ok, __ATOMIC_ACQUIRE);
}

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

struct lazy_lib *lazy_hold(struct lazy_lib *lib, sh_err *err) {
  /* Counted under the lock an unload takes: once counted, it stays. */
  pthread_mutex_lock(&mu);
  lib->users++;
  pthread_mutex_unlock(&mu);
  if (lazy_ready(lib))
    return lib;
  lazy_release(lib);
  sh_error(err, 500, "cannot load %s (is it installed?)", lib->soname);
  return NULL;
}

void lazy_release(struct lazy_lib *lib) {
  pthread_mutex_lock(&mu);
  if (lib->users && --lib->users == 0)
    lib->released_ns = now_ns();
  pthread_mutex_unlock(&mu);
}

int lazy_unload_idle(uint64_t idle_ms) {
  int n = 0;
  pthread_mutex_lock(&mu);
  uint64_t now = now_ns();
  for (size_t i = 0; i < n_loaded; i++) {
    struct lazy_lib *lib = loaded[i];
    if (!lib->handle || lib->users ||
        now - lib->released_ns < idle_ms * 1000000u)
      continue;
    __atomic_store_n(&lib->ok, false, __ATOMIC_RELEASE);
    lib->unload();
    dlclose(lib->handle);
    lib->handle = NULL;
    lib->tried = false; /* the next use loads it again */
    n++;
  }
  pthread_mutex_unlock(&mu);
  return n;
}

void lazy_missing(const struct lazy_lib *lib) {
  fprintf(stderr, "shoal: %s is not loaded; is it installed?\n", lib->soname);
  abort();
}
