/* For tests of the network modules: the forked test child takes a network
 * namespace of its own (nothing it makes is seen outside it) and a scratch
 * directory for the namespaces it binds. */
#ifndef SHOAL_TEST_NETNS_H
#define SHOAL_TEST_NETNS_H

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline int netns_sandbox(char *dir, size_t n) {
  if (geteuid() != 0 || unshare(CLONE_NEWNET) < 0)
    return -1;
  snprintf(dir, n, "/tmp/shoal-netns-test-XXXXXX");
  return mkdtemp(dir) ? 0 : -1;
}

/* char dir[64] holding the scratch directory; fails the test without
 * root and namespaces. */
#define NETNS_SANDBOX(dir)                                                     \
  char dir[64];                                                                \
  if (netns_sandbox(dir, sizeof dir) < 0)                                      \
  FAIL_("needs root and network namespaces")

#endif
