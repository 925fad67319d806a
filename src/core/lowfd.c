#include "core/lowfd.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int held[LOWFD_MAX];
static unsigned nheld, want;
static int released[LOWFD_MAX]; /* let go by the last lowfd_begin */
static unsigned nreleased;
static struct rlimit nofile_before;
static bool raised;

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
  nreleased = 0;
  while (nheld > 0) {
    released[nreleased++] = held[--nheld];
    close(held[nheld]);
  }
}

bool lowfd_end(void) {
  /* Another thread (an accepted connection, a file) may have taken the
   * numbers first: then the library's socket got a high one. */
  bool got = nreleased == 0;
  for (unsigned i = 0; i < nreleased && !got; i++) {
    int domain = 0;
    socklen_t len = sizeof domain;
    got = getsockopt(released[i], SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 &&
          domain == AF_NETLINK;
  }
  /* Or a low number other than ours was free (the socket took the lowest
   * free one, which need not be ours): one still is. */
  if (!got) {
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    got = fd >= 0 && fd < FD_SETSIZE;
    if (fd >= 0)
      close(fd);
  }
  refill();
  pthread_mutex_unlock(&mu);
  return got;
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
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return;
  nofile_before = rl;
  raised = true;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

bool lowfd_nofile_before(struct rlimit *out) {
  if (raised)
    *out = nofile_before;
  return raised;
}
