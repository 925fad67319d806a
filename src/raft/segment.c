/* Pre-flight check of libraft's segments and metadata (see segment.h). */
#include "raft/segment.h"

#include "core/err.h"
#include "core/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>

#define SEG_FORMAT 1
#define SEG_PREAMBLE 16 /* two checksums and the entry count */
/* libraft's own bound on a batch's entry count (8 MiB / 32 bytes). */
#define SEG_MAX_ENTRIES ((uint64_t)8 * 1024 * 1024 / 32)
#define META_SIZE 32

/* ---- crc32 as libraft computes it ---- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i << 24;
    for (int k = 0; k < 8; k++)
      c = (c & 0x80000000u) ? (c << 1) ^ 0x04c11db7u : c << 1;
    crc_table[i] = c;
  }
}

uint32_t segment_crc32(const void *buf, size_t len, uint32_t init) {
  pthread_once(&crc_once, crc_init);
  const uint8_t *p = buf;
  uint32_t c = init;
  while (len--)
    c = (c << 8) ^ crc_table[((c >> 24) ^ *p++) & 0xff];
  return c;
}

/* ---- little helpers ---- */

static uint64_t le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

static uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

/* Offset just past the last non-zero byte of p[from, len), or from. */
static size_t nonzero_end(const uint8_t *p, size_t from, size_t len) {
  while (len > from && p[len - 1] == 0)
    len--;
  return len;
}

struct file_buf {
  uint8_t *data;
  size_t len;
};

static void file_buf_free(struct file_buf *f) {
  free(f->data);
  f->data = NULL;
}

static int read_whole(const char *dir, const char *name, struct file_buf *f,
                      sh_err *err) {
  cleanup_free char *path = xasprintf("%s/%s", dir, name);
  cleanup_fd int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return sh_errno(err, errno, "raft storage: open %s", path);
  struct stat st;
  if (fstat(fd, &st) < 0)
    return sh_errno(err, errno, "raft storage: stat %s", path);
  f->len = (size_t)st.st_size;
  f->data = xmalloc(f->len ? f->len : 1);
  size_t got = 0;
  while (got < f->len) {
    ssize_t n = pread(fd, f->data + got, f->len - got, (off_t)got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      int e = n < 0 ? errno : EIO;
      file_buf_free(f);
      return sh_errno(err, e, "raft storage: read %s", path);
    }
    got += (size_t)n;
  }
  return 0;
}

/* ---- batches ---- */

enum batch_rc {
  BATCH_OK,
  BATCH_SHORT, /* the file ends inside the batch */
  BATCH_BAD,   /* present but not valid */
};

struct batch {
  size_t end;      /* offset past the batch (BATCH_OK) */
  uint64_t n;      /* entry count (valid once header_ok) */
  bool header_ok;  /* the header's checksum matched */
  const char *why; /* BATCH_SHORT / BATCH_BAD */
};

/* Parses the batch at off exactly as libraft's loader reads it. */
static enum batch_rc parse_batch(const uint8_t *p, size_t len, size_t off,
                                 struct batch *b) {
  memset(b, 0, sizeof *b);
  if (len - off < SEG_PREAMBLE) {
    b->why = "partial batch header";
    return BATCH_SHORT;
  }
  uint64_t n = le64(p + off + 8);
  if (n == 0 || n > SEG_MAX_ENTRIES) {
    b->why = n ? "entry count too high" : "zero entry count";
    return BATCH_BAD;
  }
  size_t hdr_len = 8 + 16 * (size_t)n;
  size_t hdr = off + 8;
  if (len - hdr < hdr_len) {
    b->why = "partial entry headers";
    return BATCH_SHORT;
  }
  if (segment_crc32(p + hdr, hdr_len, 0) != le32(p + off)) {
    b->why = "header checksum mismatch";
    return BATCH_BAD;
  }
  b->header_ok = true;
  b->n = n;
  uint64_t data_len = 0;
  for (uint64_t i = 0; i < n; i++) {
    const uint8_t *e = p + hdr + 8 + 16 * i;
    uint8_t type = e[8];
    if (type < 1 || type > 3) { /* RAFT_COMMAND, RAFT_BARRIER, RAFT_CHANGE */
      b->why = "bad entry type";
      return BATCH_BAD;
    }
    data_len += le32(e + 12);
  }
  size_t data = hdr + hdr_len;
  if (data_len > len - data) {
    b->why = "partial entry data";
    return BATCH_SHORT;
  }
  if (segment_crc32(p + data, (size_t)data_len, 0) != le32(p + off + 4)) {
    b->why = "data checksum mismatch";
    return BATCH_BAD;
  }
  b->end = data + (size_t)data_len;
  return BATCH_OK;
}

/* True when a whole valid batch starts anywhere at or after from (8-byte
 * aligned, as batches are): damage followed by good data is not a torn
 * tail. */
static bool valid_batch_after(const uint8_t *p, size_t len, size_t from) {
  for (size_t off = (from + 7) & ~(size_t)7; off + SEG_PREAMBLE <= len;
       off += 8) {
    uint64_t n = le64(p + off + 8);
    if (n == 0 || n > SEG_MAX_ENTRIES)
      continue; /* cheap reject before any checksum */
    struct batch b;
    if (parse_batch(p, len, off, &b) == BATCH_OK)
      return true;
  }
  return false;
}

/* ---- segment files ---- */

struct seg {
  char name[64];
  bool open;
  uint64_t first, last; /* closed */
  uint64_t counter;     /* open */
};

static int seg_cmp(const void *a, const void *b) {
  const struct seg *x = a, *y = b;
  if (x->open != y->open)
    return x->open ? 1 : -1;
  uint64_t kx = x->open ? x->counter : x->first;
  uint64_t ky = y->open ? y->counter : y->first;
  return kx < ky ? -1 : kx > ky;
}

/* Same patterns as libraft's segment listing. */
static bool seg_match(const char *name, struct seg *s) {
  size_t len = strlen(name);
  int used = 0;
  unsigned long long a, b;
  if (len >= sizeof s->name)
    return false;
  memset(s, 0, sizeof *s);
  if (sscanf(name, "%16llu-%16llu%n", &a, &b, &used) == 2 &&
      (size_t)used == len) {
    s->first = a;
    s->last = b;
  } else if (sscanf(name, "open-%llu%n", &a, &used) == 1 &&
             (size_t)used == len) {
    s->open = true;
    s->counter = a;
  } else {
    return false;
  }
  snprintf(s->name, sizeof s->name, "%s", name);
  return true;
}

static int check_closed(const char *dir, const struct seg *s, sh_err *err) {
  struct file_buf f = {0};
  if (read_whole(dir, s->name, &f, err) < 0)
    return -1;
  const uint8_t *p = f.data;
  int rc = 0;
  if (f.len < 8) {
    rc = sh_error(err, 500,
                  "raft storage: %s/%s: closed segment has only %zu bytes", dir,
                  s->name, f.len);
    goto out;
  }
  if (le64(p) != SEG_FORMAT) {
    rc = sh_error(err, 500,
                  "raft storage: %s/%s: unexpected format version %llu", dir,
                  s->name, (unsigned long long)le64(p));
    goto out;
  }
  uint64_t entries = 0;
  unsigned nb = 0;
  for (size_t off = 8; off < f.len;) {
    struct batch b;
    nb++;
    if (parse_batch(p, f.len, off, &b) != BATCH_OK) {
      rc = sh_error(err, 500,
                    "raft storage: %s/%s: closed segment damaged: %s in "
                    "batch %u at byte %zu",
                    dir, s->name, b.why, nb, off);
      goto out;
    }
    entries += b.n;
    off = b.end;
  }
  uint64_t want = s->last >= s->first ? s->last - s->first + 1 : 0;
  if (entries != want)
    rc = sh_error(err, 500,
                  "raft storage: %s/%s: closed segment holds %llu entries, "
                  "its name says %llu",
                  dir, s->name, (unsigned long long)entries,
                  (unsigned long long)want);
out:
  file_buf_free(&f);
  return rc;
}

/* What an open segment holds. */
struct open_scan {
  uint64_t whole;   /* entries in whole batches */
  unsigned batches; /* whole batches */
  bool needs_cut;   /* the tail must go for libraft to load it */
  struct segment_repair cut;
};

/* Reads an open segment: whole batches, then either the end of the file, a
 * preallocated zero tail, or a torn tail (to cut). Damage with whole batches
 * after it is an error. */
static int scan_open(const char *dir, const struct seg *s, struct open_scan *o,
                     sh_err *err) {
  memset(o, 0, sizeof *o);
  struct file_buf f = {0};
  if (read_whole(dir, s->name, &f, err) < 0)
    return -1;
  const uint8_t *p = f.data;
  size_t len = f.len, off = 8;
  int rc = 0;
  struct batch b = {0};
  const char *why = NULL;

  if (len == 0)
    goto out; /* never written: libraft removes it */
  if (len < 8) {
    why = "partial format word";
    off = 0;
    goto torn;
  }
  if (le64(p) == 0) {
    /* Preallocated and never written, unless data follows. */
    if (nonzero_end(p, 8, len) == 8)
      goto out;
    if (valid_batch_after(p, len, 8)) {
      rc = sh_error(err, 500,
                    "raft storage: %s/%s: open segment has no format version "
                    "but holds entries",
                    dir, s->name);
      goto out;
    }
    why = "missing format version";
    off = 0;
    goto torn;
  }
  if (le64(p) != SEG_FORMAT) {
    rc = sh_error(err, 500,
                  "raft storage: %s/%s: unexpected format version %llu", dir,
                  s->name, (unsigned long long)le64(p));
    goto out;
  }
  /* Where the non-zero bytes end, once: the tail can be megabytes. */
  size_t data_end = nonzero_end(p, off, len);
  while (off < len) {
    if (off >= data_end) {
      /* Zeros to the end: libraft reads 16 of them as "no more batches";
       * fewer (a cut file) make it fail a short read. */
      if (len - off >= SEG_PREAMBLE)
        goto out;
      memset(&b, 0, sizeof b);
      why = "partial zero tail";
      goto torn;
    }
    enum batch_rc r = parse_batch(p, len, off, &b);
    if (r == BATCH_OK) {
      o->whole += b.n;
      o->batches++;
      off = b.end;
      continue;
    }
    if (valid_batch_after(p, len, off + 8)) {
      rc = sh_error(err, 500,
                    "raft storage: %s/%s: %s in batch %u at byte %zu, with "
                    "whole batches after it",
                    dir, s->name, b.why, o->batches + 1, off);
      goto out;
    }
    why = b.why;
    goto torn;
  }
  if (o->batches > 0)
    goto out; /* ends exactly after the last batch */
  /* Only the format word: libraft fails a short read on it. */
  memset(&b, 0, sizeof b);
  why = "no batch after the format word";

torn:
  o->needs_cut = true;
  snprintf(o->cut.file, sizeof o->cut.file, "%s", s->name);
  o->cut.old_size = len;
  /* A file with a format word and no batch fails libraft's load: empty it
   * instead (libraft removes empty open segments). */
  o->cut.new_size = o->batches ? off : 0;
  o->cut.dropped_bytes = nonzero_end(p, off, len) - off;
  o->cut.kept_entries = o->whole;
  o->cut.dropped_known = b.header_ok;
  o->cut.dropped_entries = b.header_ok ? b.n : 0;
  o->cut.why = why;
out:
  file_buf_free(&f);
  return rc;
}

static int truncate_file(const char *dir, const char *name, size_t size,
                         sh_err *err) {
  cleanup_free char *path = xasprintf("%s/%s", dir, name);
  cleanup_fd int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return sh_errno(err, errno, "raft storage: open %s", path);
  if (ftruncate(fd, (off_t)size) < 0)
    return sh_errno(err, errno, "raft storage: truncate %s", path);
  if (fsync(fd) < 0)
    return sh_errno(err, errno, "raft storage: fsync %s", path);
  return 0;
}

/* ---- metadata ---- */

/* Version of metadataN, 0 when absent or short (libraft ignores a short
 * file: a write that never completed). */
static int check_meta(const char *dir, const char *name, uint64_t *version,
                      sh_err *err) {
  *version = 0;
  cleanup_free char *path = xasprintf("%s/%s", dir, name);
  struct stat st;
  if (stat(path, &st) < 0) {
    if (errno == ENOENT)
      return 0;
    return sh_errno(err, errno, "raft storage: stat %s", path);
  }
  if (st.st_size < META_SIZE)
    return 0;
  if (st.st_size > META_SIZE)
    return sh_error(err, 500,
                    "raft storage: %s: metadata has %lld bytes instead of %d",
                    path, (long long)st.st_size, META_SIZE);
  struct file_buf f = {0};
  if (read_whole(dir, name, &f, err) < 0)
    return -1;
  uint64_t format = f.len == META_SIZE ? le64(f.data) : 0;
  *version = f.len == META_SIZE ? le64(f.data + 8) : 0;
  file_buf_free(&f);
  if (format != SEG_FORMAT)
    return sh_error(err, 500,
                    "raft storage: %s: bad metadata format version %llu", path,
                    (unsigned long long)format);
  if (*version == 0)
    return sh_error(err, 500, "raft storage: %s: metadata version is zero",
                    path);
  return 0;
}

/* ---- the directory ---- */

static void free_segs(struct seg **s) {
  free(*s);
}

int segment_check_dir(const char *dir, struct segment_report *rep,
                      sh_err *err) {
  memset(rep, 0, sizeof *rep);
  uint64_t v1, v2;
  if (check_meta(dir, "metadata1", &v1, err) < 0 ||
      check_meta(dir, "metadata2", &v2, err) < 0)
    return -1;
  if (v1 && v1 == v2)
    return sh_error(err, 500,
                    "raft storage: %s: metadata1 and metadata2 are both at "
                    "version %llu",
                    dir, (unsigned long long)v1);

  DIR *d = opendir(dir);
  if (!d) {
    if (errno == ENOENT)
      return 0;
    return sh_errno(err, errno, "raft storage: open %s", dir);
  }
  __attribute__((cleanup(free_segs))) struct seg *segs = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    struct seg s;
    if (e->d_type != DT_REG && e->d_type != DT_UNKNOWN)
      continue;
    if (!seg_match(e->d_name, &s))
      continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 16;
      segs = xrealloc(segs, cap * sizeof *segs);
    }
    segs[n++] = s;
  }
  closedir(d);
  if (n == 0)
    return 0;
  qsort(segs, n, sizeof *segs, seg_cmp);

  const char *torn = NULL; /* the segment a torn write was found in */
  for (size_t i = 0; i < n; i++) {
    if (!segs[i].open) {
      if (check_closed(dir, &segs[i], err) < 0)
        return -1;
      continue;
    }
    struct open_scan o;
    if (scan_open(dir, &segs[i], &o, err) < 0)
      return -1;
    /* libraft has one write in flight and fills segments in order: no data
     * can follow a torn write. */
    bool data = o.batches > 0 || (o.needs_cut && o.cut.dropped_bytes > 0);
    if (torn && data)
      return sh_error(err, 500,
                      "raft storage: %s/%s: torn batch, yet %s after it "
                      "holds data",
                      dir, torn, segs[i].name);
    if (!o.needs_cut)
      continue;
    if (rep->n == SEGMENT_MAX_REPAIRS)
      return sh_error(err, 500, "raft storage: %s: too many torn segments",
                      dir);
    rep->repairs[rep->n++] = o.cut;
    if (o.cut.dropped_bytes > 0)
      torn = segs[i].name;
  }
  for (unsigned i = 0; i < rep->n; i++)
    if (truncate_file(dir, rep->repairs[i].file, rep->repairs[i].new_size,
                      err) < 0)
      return -1;
  return 0;
}
