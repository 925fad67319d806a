/* libnftables, one context per namespace. */
#include "nft/nft.h"

#include "core/err.h"
#include "core/lowfd.h"
#include "core/util.h"
#include "lazy/nftables.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/select.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct nft {
  struct nft_ctx *ctx;
  int netns_fd; /* -1: the caller's namespace */
};

/* Enters n's namespace for one call; *self keeps the way back. */
static int enter(const struct nft *n, int *self, sh_err *err) {
  *self = -1;
  if (n->netns_fd < 0)
    return 0;
  *self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (*self < 0)
    return sh_errno(err, errno, "open this thread's network namespace");
  if (setns(n->netns_fd, CLONE_NEWNET) < 0) {
    int e = errno;
    close(*self);
    return sh_errno(err, e, "enter network namespace");
  }
  return 0;
}

static void leave(int self) {
  if (self < 0)
    return;
  if (setns(self, CLONE_NEWNET) < 0)
    abort(); /* a thread stranded in another namespace is worse */
  close(self);
}

int nft_open(int netns_fd, struct nft **out, sh_err *err) {
  struct nft *n = xcalloc(1, sizeof *n);
  n->netns_fd = -1;
  if (netns_fd >= 0 && (n->netns_fd = dup(netns_fd)) < 0) {
    free(n);
    return sh_errno(err, errno, "dup network namespace");
  }
  int self;
  if (enter(n, &self, err) < 0) {
    nft_close(n);
    return -1;
  }
  /* The context's netlink socket, which libnftables waits on with
   * select(2): below FD_SETSIZE however many connections are open. A
   * context whose socket got a high number (another thread took the low
   * ones meanwhile) would abort the daemon at its first command: made
   * again, or refused. */
  bool low = false;
  for (int tries = 0; tries < 3 && !low; tries++) {
    if (n->ctx) {
      nft_ctx_free(n->ctx);
      lowfd_refill();
    }
    lowfd_begin();
    n->ctx = nft_ctx_new(NFT_CTX_DEFAULT);
    low = lowfd_end();
    if (!n->ctx)
      break;
  }
  leave(self);
  if (!n->ctx) {
    nft_close(n);
    return sh_error(err, 500, "nftables: cannot make a context");
  }
  if (!low) {
    nft_close(n);
    return sh_error(err, 500,
                    "nftables: no descriptor below %d left for its netlink "
                    "socket",
                    FD_SETSIZE);
  }
  nft_ctx_buffer_output(n->ctx);
  nft_ctx_buffer_error(n->ctx);
  *out = n;
  return 0;
}

void nft_close(struct nft *n) {
  if (!n)
    return;
  if (n->ctx) {
    nft_ctx_free(n->ctx);
    lowfd_refill(); /* its socket's number, before a connection takes it */
  }
  if (n->netns_fd >= 0)
    close(n->netns_fd);
  free(n);
}

static int run(struct nft *n, const char *cmd, sh_err *err) {
  int self;
  if (enter(n, &self, err) < 0)
    return -1;
  /* libnftables makes its socket again when a dump is interrupted (the
   * ruleset changed meanwhile), and that one too it waits on with
   * select(2): the reserve's low numbers are free while it runs. One
   * leader abort()ed in FD_SET with 1,000 sessions open. */
  lowfd_begin();
  int rc = nft_run_cmd_from_buffer(n->ctx, cmd);
  lowfd_end();
  leave(self);
  if (rc != 0) {
    const char *e = nft_ctx_get_error_buffer(n->ctx);
    cleanup_free char *msg = xstrdup(e && *e ? e : "failed");
    size_t len = strlen(msg);
    while (len && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
      msg[--len] = '\0';
    return sh_error(err, 500, "nftables: %s", msg);
  }
  return 0;
}

int nft_apply(struct nft *n, const char *rules, sh_err *err) {
  return run(n, rules, err);
}

int nft_query(struct nft *n, const char *cmd, char **out, sh_err *err) {
  if (run(n, cmd, err) < 0)
    return -1;
  const char *o = nft_ctx_get_output_buffer(n->ctx);
  *out = xstrdup(o ? o : "");
  return 0;
}
