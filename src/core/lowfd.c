#include "core/lowfd.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int held[LOWFD_MAX];
static unsigned nheld, want;

/* open(2) returns the lowest free number: what it gives below FD_SETSIZE
 * goes back into the reserve. */
static void refill(void) {
  while (nheld < want) {
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      return;
    if (fd >= FD_SETSIZE) {
      close(fd);
      return;
    }
    held[nheld++] = fd;
  }
}

void lowfd_reserve(unsigned n) {
  pthread_mutex_lock(&mu);
  want = n < LOWFD_MAX ? n : LOWFD_MAX;
  while (nheld > want)
    close(held[--nheld]);
  refill();
  pthread_mutex_unlock(&mu);
}

void lowfd_begin(void) {
  pthread_mutex_lock(&mu);
  while (nheld > 0)
    close(held[--nheld]);
}

void lowfd_end(void) {
  refill();
  pthread_mutex_unlock(&mu);
}

void lowfd_refill(void) {
  pthread_mutex_lock(&mu);
  refill();
  pthread_mutex_unlock(&mu);
}

unsigned lowfd_held(void) {
  pthread_mutex_lock(&mu);
  unsigned n = nheld;
  pthread_mutex_unlock(&mu);
  return n;
}

void lowfd_raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}
