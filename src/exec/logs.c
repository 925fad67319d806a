/* conmon's k8s-file log ("TIME stdout|stderr F|P message" per line; P
 * lines continue on the next line of the same stream) turned into Docker's
 * multiplexed log stream. */
#include "exec/internal.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <sys/inotify.h>
#include <time.h>

/* Longest message kept whole; longer ones go out in pieces. */
#define MAX_MESSAGE (1 << 20)

static int digits(const char *s, int n) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

/* conmon writes "2026-11-26T05:58:46.892421294+00:00". */
static int parse_time(const char *s, size_t len, int64_t *out) {
  if (len < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
      s[16] != ':')
    return -1;
  struct tm tm = {0};
  int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2),
      h = digits(s + 11, 2), mi = digits(s + 14, 2), se = digits(s + 17, 2);
  if (y < 0 || mo < 1 || d < 0 || h < 0 || mi < 0 || se < 0)
    return -1;
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  size_t i = 19;
  int64_t frac = 0;
  int nd = 0;
  if (i < len && s[i] == '.') {
    for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++)
      if (nd < 9) {
        frac = frac * 10 + (s[i] - '0');
        nd++;
      }
    while (nd++ < 9)
      frac *= 10;
  }
  int64_t off = 0;
  if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
    i++;
  } else if (i + 6 <= len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
    int oh = digits(s + i + 1, 2), om = digits(s + i + 4, 2);
    if (oh < 0 || om < 0)
      return -1;
    off = (int64_t)(oh * 3600 + om * 60) * (s[i] == '+' ? 1 : -1);
    i += 6;
  } else {
    return -1;
  }
  if (i != len)
    return -1;
  *out = ((int64_t)timegm(&tm) - off) * NS_PER_SEC + frac;
  return 0;
}

int exec_k8s_parse_line(const char *line, size_t len, struct k8s_line *out) {
  const char *end = line + len;
  const char *sp = memchr(line, ' ', len);
  if (!sp || parse_time(line, (size_t)(sp - line), &out->ts) < 0)
    return -1;
  const char *p = sp + 1;
  if ((size_t)(end - p) >= 7 && memcmp(p, "stdout ", 7) == 0)
    out->stream = 1;
  else if ((size_t)(end - p) >= 7 && memcmp(p, "stderr ", 7) == 0)
    out->stream = 2;
  else
    return -1;
  p += 7;
  /* The tag field: "F" or "P" (possibly more ':'-separated tags). */
  const char *tag_end = memchr(p, ' ', (size_t)(end - p));
  if (!tag_end)
    tag_end = end;
  if (tag_end == p)
    return -1;
  out->partial = *p == 'P';
  out->msg = tag_end < end ? tag_end + 1 : end;
  out->len = (size_t)(end - out->msg);
  return 0;
}

void exec_frame_header(unsigned char hdr[8], int stream, uint32_t len) {
  hdr[0] = (unsigned char)stream;
  hdr[1] = hdr[2] = hdr[3] = 0;
  hdr[4] = (unsigned char)(len >> 24);
  hdr[5] = (unsigned char)(len >> 16);
  hdr[6] = (unsigned char)(len >> 8);
  hdr[7] = (unsigned char)len;
}

struct entry {
  int64_t ts;
  int stream;
  char *msg;
  size_t len;
};

struct reader {
  const struct exec_logs_opts *o;
  sh_buf pending[3]; /* partial message per stream */
  int64_t pending_ts[3];
  /* --tail: the last N entries of what exists when we start. */
  struct entry *ring;
  size_t ring_cap, ring_len, ring_head;
  bool collecting;
  bool until_reached;
  int werr; /* the writer asked to stop */
  /* Frames not yet handed to the writer: a line is a frame, and handing
   * each one over alone cost the stream ~40x its bytes in allocations
   * (12 MB of heap for one `logs -f` of a chatty task under flow
   * control counting 256 KiB). */
  sh_buf out;
};

#define OUT_BATCH (32 * 1024)

static int flush_out(struct reader *r) {
  if (r->out.len && !r->werr &&
      r->o->write(r->o->arg, r->out.data, r->out.len) < 0)
    r->werr = 1;
  buf_reset(&r->out);
  return r->werr ? -1 : 0;
}

static int send_frame(struct reader *r, int64_t ts, int stream, const char *msg,
                      size_t len) {
  if (r->werr)
    return -1;
  sh_buf *f = &r->out;
  size_t at = f->len;
  unsigned char hdr[8] = {0};
  if (!r->o->raw)
    buf_append(f, hdr, 8);
  if (r->o->timestamps) {
    /* docker logs -t: RFC 3339 with a fixed nine-digit fraction, UTC. */
    time_t secs = (time_t)(ts / NS_PER_SEC);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char t[40];
    strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%S", &tm);
    buf_printf(f, "%s.%09lldZ ", t, (long long)(ts % NS_PER_SEC));
  }
  buf_append(f, msg, len);
  if (!r->o->raw)
    exec_frame_header((unsigned char *)f->data + at, stream,
                      (uint32_t)(f->len - at - 8));
  return f->len >= OUT_BATCH ? flush_out(r) : 0;
}

static void emit(struct reader *r, int64_t ts, int stream, const char *msg,
                 size_t len) {
  if (r->o->since_ns && ts < r->o->since_ns)
    return;
  if (r->o->until_ns && ts > r->o->until_ns) {
    r->until_reached = true;
    return;
  }
  if (!r->collecting) {
    send_frame(r, ts, stream, msg, len);
    return;
  }
  if (r->ring_cap == 0)
    return;
  struct entry *e;
  if (r->ring_len < r->ring_cap) {
    e = &r->ring[(r->ring_head + r->ring_len++) % r->ring_cap];
  } else {
    e = &r->ring[r->ring_head];
    r->ring_head = (r->ring_head + 1) % r->ring_cap;
    free(e->msg);
  }
  *e = (struct entry){ts, stream, xstrndup(msg, len), len};
}

static void flush_ring(struct reader *r) {
  for (size_t i = 0; i < r->ring_len; i++) {
    struct entry *e = &r->ring[(r->ring_head + i) % r->ring_cap];
    send_frame(r, e->ts, e->stream, e->msg, e->len);
    free(e->msg);
  }
  r->ring_len = r->ring_head = 0;
  r->collecting = false;
}

static void on_line(struct reader *r, const char *line, size_t len) {
  struct k8s_line l;
  if (exec_k8s_parse_line(line, len, &l) < 0)
    return;
  if ((l.stream == 1 && !r->o->want_stdout) ||
      (l.stream == 2 && !r->o->want_stderr))
    return;
  sh_buf *pb = &r->pending[l.stream];
  if (pb->len == 0)
    r->pending_ts[l.stream] = l.ts;
  buf_append(pb, l.msg, l.len);
  if (!l.partial)
    buf_append(pb, "\n", 1);
  else if (pb->len < MAX_MESSAGE && !r->o->raw)
    return; /* a TTY's prompt has no newline: raw sends it as it comes */
  emit(r, r->pending_ts[l.stream], l.stream, pb->data, pb->len);
  buf_reset(pb);
}

/* What is left unterminated at the end (a container that died mid-line). */
static void flush_partials(struct reader *r) {
  for (int s = 1; s <= 2; s++)
    if (r->pending[s].len) {
      emit(r, r->pending_ts[s], s, r->pending[s].data, r->pending[s].len);
      buf_reset(&r->pending[s]);
    }
}

/* Reads what the file has now; complete lines only, the rest waits. */
static int read_available(struct reader *r, int fd, sh_buf *carry,
                          sh_err *err) {
  char tmp[65536];
  for (;;) {
    ssize_t n = read(fd, tmp, sizeof tmp);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return sh_errno(err, errno, "read log");
    if (n == 0) {
      flush_out(r); /* all there is for now: the client sees it */
      return 0;
    }
    buf_append(carry, tmp, (size_t)n);
    size_t start = 0;
    for (size_t i = 0; i < carry->len; i++) {
      if (carry->data[i] != '\n')
        continue;
      on_line(r, carry->data + start, i - start);
      start = i + 1;
      if (r->werr || r->until_reached) {
        flush_out(r);
        return 0;
      }
    }
    memmove(carry->data, carry->data + start, carry->len - start);
    carry->len -= start;
    carry->data[carry->len] = '\0';
  }
}

static void reader_free(struct reader *r) {
  buf_free(&r->out);
  for (int s = 0; s < 3; s++)
    buf_free(&r->pending[s]);
  for (size_t i = 0; i < r->ring_len; i++)
    free(r->ring[(r->ring_head + i) % r->ring_cap].msg);
  free(r->ring);
}

int exec_logs_file(const char *log_path, const char *exit_file,
                   bool (*gone)(void *), void *gone_arg,
                   const struct exec_logs_opts *o, sh_err *err) {
  struct reader r = {.o = o};
  if (o->tail >= 0) {
    r.collecting = true;
    r.ring_cap = (size_t)o->tail;
    r.ring = r.ring_cap ? xcalloc(r.ring_cap, sizeof *r.ring) : NULL;
  }
  cleanup_buf sh_buf carry = {0};
  cleanup_free char *logdir = xstrdup(log_path);
  cleanup_free char *exitdir = xstrdup(exit_file ? exit_file : "");
  int rc = 0, ifd = -1;
  int fd = open(log_path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno != ENOENT) {
    rc = sh_errno(err, errno, "open %s", log_path);
    goto out;
  }
  if (fd >= 0 && (rc = read_available(&r, fd, &carry, err)) < 0)
    goto out;
  if (r.collecting)
    flush_ring(&r);
  if (!o->follow || r.werr || r.until_reached || !exit_file)
    goto done;

  /* Follow: wake on writes to the log and on the exit file appearing. */
  ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (ifd < 0) {
    rc = sh_errno(err, errno, "inotify");
    goto out;
  }
  inotify_add_watch(ifd, dirname(logdir), IN_MODIFY | IN_CREATE);
  inotify_add_watch(ifd, dirname(exitdir),
                    IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE);
  for (;;) {
    bool exited = access(exit_file, F_OK) == 0 || (gone && gone(gone_arg));
    if (fd < 0)
      fd = open(log_path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && (rc = read_available(&r, fd, &carry, err)) < 0)
      goto out;
    if (exited || r.werr || r.until_reached)
      break;
    if (o->cancelled && o->cancelled(o->arg))
      break;
    struct pollfd p = {.fd = ifd, .events = POLLIN};
    if (poll(&p, 1, 250) > 0) {
      char ev[4096];
      while (read(ifd, ev, sizeof ev) > 0) {
      }
    }
  }
done:
  if (!r.werr && !r.until_reached)
    flush_partials(&r);
  flush_out(&r);
out:
  if (fd >= 0)
    close(fd);
  if (ifd >= 0)
    close(ifd);
  reader_free(&r);
  return rc;
}
