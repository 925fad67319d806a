/* What the socket-driven fuzz targets share: feed one input into a
 * connected socket while the daemon's loop runs, read what comes back
 * (verbose: the first line of each read to stderr), then close and let
 * the server free the connection. */
#ifndef SHOAL_FUZZ_FEED_H
#define SHOAL_FUZZ_FEED_H

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

static inline void fuzz_feed(int fd, const void *data, size_t len,
                             const char *verbose_tag) {
  size_t off = 0;
  bool eof = false;
  char buf[65536];
  for (int rounds = 0; rounds < 2000 && !eof; rounds++) {
    if (off < len) {
      ssize_t n = send(fd, (const char *)data + off, len - off,
                       MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0)
        off += (size_t)n;
      else if (n < 0 && errno != EAGAIN)
        break;
      if (off == len)
        shutdown(fd, SHUT_WR);
    } else if (len == 0 && rounds == 0) {
      shutdown(fd, SHUT_WR);
    }
    uv_run(uv_default_loop(), UV_RUN_NOWAIT);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 1) > 0) {
      ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN))
        eof = true;
      if (n > 0 && verbose_tag) {
        buf[n] = '\0';
        fprintf(stderr, "%s: %.*s\n", verbose_tag, (int)strcspn(buf, "\r"),
                buf);
      }
    }
  }
  close(fd);
  for (int i = 0; i < 20; i++)
    uv_run(uv_default_loop(), UV_RUN_NOWAIT);
}

#endif
