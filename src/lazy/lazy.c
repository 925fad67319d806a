/* lazy: dlopen by SONAME on first use (see lazy.h). */
#include "lazy/lazy.h"

#include "core/err.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

bool lazy_load(struct lazy_lib *lib) {
  pthread_mutex_lock(&mu);
  if (!lib->tried) {
    lib->tried = true;
    void *h = dlopen(lib->soname, RTLD_LAZY | RTLD_LOCAL);
    const char *missing = h ? lib->resolve(h) : NULL;
    if (!h)
      fprintf(stderr, "shoal: cannot load %s: %s\n", lib->soname, dlerror());
    else if (missing)
      fprintf(stderr, "shoal: %s has no %s\n", lib->soname, missing);
    else
      __atomic_store_n(&lib->ok, true, __ATOMIC_RELEASE);
  }
  pthread_mutex_unlock(&mu);
  return __atomic_load_n(&lib->ok, __ATOMIC_ACQUIRE);
}

int lazy_need(struct lazy_lib *lib, sh_err *err) {
  if (lazy_ready(lib))
    return 0;
  return sh_error(err, 500, "cannot load %s (is it installed?)", lib->soname);
}

void lazy_missing(const struct lazy_lib *lib) {
  fprintf(stderr, "shoal: %s is not loaded; is it installed?\n", lib->soname);
  abort();
}
