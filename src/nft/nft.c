/* libnftables: a context per command, in the namespace asked for. */
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
  int netns_fd; /* -1: the caller's namespace */
};

static void ctx_free(struct nft_ctx *ctx) {
  nft_ctx_free(ctx);
  lowfd_refill(); /* its socket's number, before a connection takes it */
}

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
  *out = n;
  return 0;
}

void nft_close(struct nft *n) {
  if (!n)
    return;
  if (n->netns_fd >= 0)
    close(n->netns_fd);
  free(n);
}

/* A context for one command, made in the namespace the caller entered.
 * Its netlink socket, which libnftables waits on with select(2), must be
 * below FD_SETSIZE however many connections are open: a context whose
 * socket got a high number (another thread took the low ones meanwhile)
 * would abort the daemon at its first command: made again, or refused. */
static struct nft_ctx *ctx_new(sh_err *err) {
  struct nft_ctx *ctx = NULL;
  bool low = false;
  for (int tries = 0; tries < 3 && !low; tries++) {
    if (ctx) {
      nft_ctx_free(ctx);
      lowfd_refill();
    }
    lowfd_begin();
    ctx = nft_ctx_new(NFT_CTX_DEFAULT);
    low = lowfd_end();
    if (!ctx)
      break;
  }
  if (!ctx) {
    sh_error(err, 500, "nftables: cannot make a context");
    return NULL;
  }
  if (!low) {
    ctx_free(ctx);
    sh_error(err, 500,
             "nftables: no descriptor below %d left for its netlink socket",
             FD_SETSIZE);
    return NULL;
  }
  nft_ctx_buffer_output(ctx);
  nft_ctx_buffer_error(ctx);
  return ctx;
}

/* Runs cmd in a context of its own; *out (if asked) gets the output.
 * Not one context kept per namespace: libnftables keeps its ruleset
 * cache in the context, hash tables of ~130 KB per table, 1.7 MB of an
 * idle daemon's 3.7 MB of heap. It reads the cache again anyway after
 * a change, and each of our commands is one. */
static int run(struct nft *n, const char *cmd, char **out, sh_err *err) {
  cleanup_lazy struct lazy_lib *held = lazy_hold(&lazy_nftables_lib, err);
  if (!held)
    return -1;
  int self;
  if (enter(n, &self, err) < 0)
    return -1;
  struct nft_ctx *ctx = ctx_new(err);
  int rc = -1;
  if (ctx) {
    /* libnftables makes its socket again when a dump is interrupted (the
     * ruleset changed meanwhile), and that one too it waits on with
     * select(2): the reserve's low numbers are free while it runs. One
     * leader abort()ed in FD_SET with 1,000 sessions open. */
    lowfd_begin();
    rc = nft_run_cmd_from_buffer(ctx, cmd);
    lowfd_end();
  }
  leave(self);
  if (!ctx)
    return -1;
  if (rc != 0) {
    const char *e = nft_ctx_get_error_buffer(ctx);
    cleanup_free char *msg = xstrdup(e && *e ? e : "failed");
    size_t len = strlen(msg);
    while (len && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
      msg[--len] = '\0';
    ctx_free(ctx);
    return sh_error(err, 500, "nftables: %s", msg);
  }
  if (out) {
    const char *o = nft_ctx_get_output_buffer(ctx);
    *out = xstrdup(o ? o : "");
  }
  ctx_free(ctx);
  return 0;
}

int nft_apply(struct nft *n, const char *rules, sh_err *err) {
  return run(n, rules, NULL, err);
}

int nft_query(struct nft *n, const char *cmd, char **out, sh_err *err) {
  return run(n, cmd, out, err);
}
