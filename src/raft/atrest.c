/* Encryption at rest for the raft log and snapshots.
 *
 * libraft's uv io does the disk work; this wraps four of its functions
 * (load, append, snapshot_put, snapshot_get) so that every entry payload
 * and every snapshot is sealed with the manager's data encryption key
 * (DEK, AES-256-GCM) on its way to disk and opened on its way back. Raft
 * itself, the FSM and the peers only ever see plain entries: each manager
 * seals with its own DEK, as swarmkit does for its WAL.
 *
 * A sealed buffer starts with a magic that no plain entry can start with
 * (a plain entry starts with its 8-byte little-endian payload length,
 * which must fit the buffer; the magic read that way is ~3.5e18), so a log
 * written by an older shoal (plain) still loads, entry by entry; new
 * writes are sealed. Sealed layout (all multiples of 8, as libraft's
 * segment writer needs):
 *   magic[8] nonce[12] zero[4] length[8 LE] tag[16] ciphertext pad-to-8
 * The first 32 bytes are the GCM additional data. */
#include "raft/internal.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEAL_MAGIC "shoalAE1"
/* Half the default election timeout. */
#define SLOW_WRITE_MS 300.0
#define SEAL_HDR 48
#define SEAL_AAD 32
#define SEAL_TAG_OFF 32
#define SEAL_NONCE_OFF 8
#define SEAL_LEN_OFF 24

static size_t sealed_size(size_t len) {
  return SEAL_HDR + ((len + 7) & ~(size_t)7);
}

bool atrest_is_sealed(const void *buf, size_t len) {
  return len >= SEAL_HDR && memcmp(buf, SEAL_MAGIC, 8) == 0;
}

/* Runs len bytes through c (EVP lengths are int: big buffers go in
 * pieces); *w advances past the output. 0 on failure. */
static int cipher_update(EVP_CIPHER_CTX *c, unsigned char **w,
                         const unsigned char *r, size_t len) {
  while (len > 0) {
    int chunk = len > (1u << 30) ? (1 << 30) : (int)len, outl = 0;
    if (EVP_CipherUpdate(c, *w, &outl, r, chunk) != 1)
      return 0;
    *w += outl;
    r += chunk;
    len -= (size_t)chunk;
  }
  return 1;
}

/* Seals the concatenation of bufs into a new raft_malloc'd buffer. */
int atrest_seal(const unsigned char *dek, const struct raft_buffer *bufs,
                unsigned n, struct raft_buffer *out) {
  size_t len = 0;
  for (unsigned i = 0; i < n; i++)
    len += bufs[i].len;
  size_t total = sealed_size(len);
  unsigned char *p = raft_malloc(total);
  if (!p)
    return RAFT_NOMEM;
  memset(p, 0, total);
  memcpy(p, SEAL_MAGIC, 8);
  if (RAND_bytes(p + SEAL_NONCE_OFF, 12) != 1) {
    raft_free(p);
    return RAFT_IOERR;
  }
  for (int i = 0; i < 8; i++)
    p[SEAL_LEN_OFF + i] = (unsigned char)((uint64_t)len >> (8 * i));
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  int ok = c && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, dek,
                                   p + SEAL_NONCE_OFF) == 1;
  int outl = 0;
  ok = ok && EVP_EncryptUpdate(c, NULL, &outl, p, SEAL_AAD) == 1;
  unsigned char *w = p + SEAL_HDR;
  for (unsigned i = 0; ok && i < n; i++)
    ok = cipher_update(c, &w, bufs[i].base, bufs[i].len);
  ok = ok && EVP_EncryptFinal_ex(c, w, &outl) == 1 &&
       EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, p + SEAL_TAG_OFF) == 1;
  EVP_CIPHER_CTX_free(c);
  if (!ok) {
    raft_free(p);
    return RAFT_IOERR;
  }
  out->base = p;
  out->len = total;
  return 0;
}

/* Opens a sealed buffer in place (the plain text is shorter); plain
 * buffers are left as they are. -1 when the buffer is sealed but does not
 * open with this DEK (another key, or damaged). */
int atrest_open(const unsigned char *dek, struct raft_buffer *b) {
  if (!atrest_is_sealed(b->base, b->len))
    return 0;
  unsigned char *p = b->base;
  uint64_t len = 0;
  for (int i = 7; i >= 0; i--)
    len = (len << 8) | p[SEAL_LEN_OFF + i];
  if (len > b->len - SEAL_HDR)
    return -1;
  unsigned char *plain = malloc(len ? len : 1);
  if (!plain)
    return -1;
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  int outl = 0;
  int ok = c &&
           EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, dek,
                              p + SEAL_NONCE_OFF) == 1 &&
           EVP_DecryptUpdate(c, NULL, &outl, p, SEAL_AAD) == 1;
  unsigned char *w = plain;
  ok = ok && cipher_update(c, &w, p + SEAL_HDR, len);
  ok =
      ok &&
      EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, p + SEAL_TAG_OFF) == 1 &&
      EVP_DecryptFinal_ex(c, w, &outl) == 1;
  EVP_CIPHER_CTX_free(c);
  if (ok) {
    memcpy(p, plain, len);
    b->len = len;
  }
  OPENSSL_cleanse(plain, len);
  free(plain);
  return ok ? 0 : -1;
}

/* ---- the io wrappers ---- */

static void free_loaded(struct raft_snapshot *snap, struct raft_entry *ents,
                        size_t n) {
  if (snap) {
    raft_configuration_close(&snap->configuration);
    for (unsigned i = 0; i < snap->n_bufs; i++)
      raft_free(snap->bufs[i].base);
    raft_free(snap->bufs);
    raft_free(snap);
  }
  void *last = NULL;
  for (size_t i = 0; i < n; i++) {
    if (!ents[i].batch)
      raft_free(ents[i].buf.base);
    else if (ents[i].batch != last)
      raft_free(ents[i].batch); /* a batch's entries are contiguous */
    last = ents[i].batch;
  }
  raft_free(ents);
}

static int ar_load(struct raft_io *io, raft_term *term, raft_id *voted_for,
                   struct raft_snapshot **snapshot, raft_index *start_index,
                   struct raft_entry *entries[], size_t *n_entries) {
  struct atrest *ar = atrest_of(io);
  int rv =
      ar->load(io, term, voted_for, snapshot, start_index, entries, n_entries);
  if (rv != 0)
    return rv;
  struct raft_snapshot *s = *snapshot;
  for (unsigned i = 0; s && i < s->n_bufs; i++)
    if (atrest_open(ar->dek, &s->bufs[i]) < 0) {
      snprintf(io->errmsg, sizeof io->errmsg,
               "snapshot %llu does not decrypt with this node's raft key "
               "(another key, or damaged)",
               (unsigned long long)s->index);
      goto bad;
    }
  for (size_t i = 0; i < *n_entries; i++)
    if (atrest_open(ar->dek, &(*entries)[i].buf) < 0) {
      snprintf(io->errmsg, sizeof io->errmsg,
               "entry %llu does not decrypt with this node's raft key "
               "(another key, or damaged)",
               (unsigned long long)(*start_index + i));
      goto bad;
    }
  return 0;
bad:
  free_loaded(*snapshot, *entries, *n_entries);
  *snapshot = NULL;
  *entries = NULL;
  *n_entries = 0;
  return RAFT_CORRUPT;
}

struct sealed_append {
  struct atrest *ar;
  struct raft_io_append req;
  struct raft_io_append *orig;
  raft_io_append_cb cb;
  struct raft_entry *ents;
  unsigned n;
  size_t bytes;
  int64_t t0;
};

static void sealed_append_free(struct sealed_append *s) {
  for (unsigned i = 0; i < s->n; i++)
    raft_free(s->ents[i].buf.base);
  free(s->ents);
  free(s);
}

static void ar_append_done(struct raft_io_append *req, int status) {
  struct sealed_append *s = req->data;
  struct raft_io_append *orig = s->orig;
  raft_io_append_cb cb = s->cb;
  /* A commit waits for its write: a slow disk shows as slow writes and
   * missed heartbeats, and only this line says which. */
  int64_t now = clock_mono_ns();
  double ms = (double)(now - s->t0) / NS_PER_MS;
  struct atrest *ar = s->ar;
  if (ms >= SLOW_WRITE_MS && now - ar->slow_said_ns < NS_PER_SEC) {
    ar->slow_unsaid++;
  } else if (ms >= SLOW_WRITE_MS) {
    log_warn("raft: writing %u entries (%zu bytes) to the log took %.0f ms "
             "(%u more slow writes since the last such line)",
             s->n, s->bytes, ms, ar->slow_unsaid);
    ar->slow_said_ns = now;
    ar->slow_unsaid = 0;
  }
  sealed_append_free(s);
  cb(orig, status);
}

static int ar_append(struct raft_io *io, struct raft_io_append *req,
                     const struct raft_entry entries[], unsigned n,
                     raft_io_append_cb cb) {
  struct atrest *ar = atrest_of(io);
  struct sealed_append *s = xcalloc(1, sizeof *s);
  s->ents = xcalloc(n ? n : 1, sizeof *s->ents);
  s->orig = req;
  s->cb = cb;
  s->req.data = s;
  s->ar = ar;
  s->t0 = clock_mono_ns();
  for (unsigned i = 0; i < n; i++) {
    s->bytes += entries[i].buf.len;
    s->ents[i].term = entries[i].term;
    s->ents[i].type = entries[i].type;
    int rv = atrest_seal(ar->dek, &entries[i].buf, 1, &s->ents[i].buf);
    if (rv != 0) {
      sealed_append_free(s);
      return rv;
    }
    s->n = i + 1;
  }
  req->cb = cb;
  int rv = ar->append(io, &s->req, s->ents, n, ar_append_done);
  if (rv != 0)
    sealed_append_free(s);
  return rv;
}

struct sealed_put {
  struct raft_io_snapshot_put req;
  struct raft_io_snapshot_put *orig;
  raft_io_snapshot_put_cb cb;
  struct raft_snapshot snap;
  struct raft_buffer buf;
};

static void ar_put_done(struct raft_io_snapshot_put *req, int status) {
  struct sealed_put *s = req->data;
  struct raft_io_snapshot_put *orig = s->orig;
  raft_io_snapshot_put_cb cb = s->cb;
  raft_free(s->buf.base);
  free(s);
  cb(orig, status);
}

static int ar_snapshot_put(struct raft_io *io, unsigned trailing,
                           struct raft_io_snapshot_put *req,
                           const struct raft_snapshot *snapshot,
                           raft_io_snapshot_put_cb cb) {
  struct atrest *ar = atrest_of(io);
  struct sealed_put *s = xcalloc(1, sizeof *s);
  s->orig = req;
  s->cb = cb;
  s->req.data = s;
  s->snap = *snapshot; /* the configuration stays the caller's */
  /* Sealed already (raftnode seals a snapshot on the thread that encoded
   * it, not on the loop: 60 MB at 100,000 tasks): passed on as it is. */
  if (snapshot->n_bufs == 1 &&
      atrest_is_sealed(snapshot->bufs[0].base, snapshot->bufs[0].len)) {
    req->cb = cb;
    int rv = ar->snapshot_put(io, trailing, &s->req, snapshot, ar_put_done);
    if (rv != 0)
      free(s);
    return rv;
  }
  int rv = atrest_seal(ar->dek, snapshot->bufs, snapshot->n_bufs, &s->buf);
  if (rv != 0) {
    free(s);
    return rv;
  }
  s->snap.bufs = &s->buf;
  s->snap.n_bufs = 1;
  req->cb = cb;
  rv = ar->snapshot_put(io, trailing, &s->req, &s->snap, ar_put_done);
  if (rv != 0) {
    raft_free(s->buf.base);
    free(s);
  }
  return rv;
}

struct opened_get {
  struct raft_io_snapshot_get req;
  struct raft_io_snapshot_get *orig;
  raft_io_snapshot_get_cb cb;
  struct atrest *ar;
};

static void ar_get_done(struct raft_io_snapshot_get *req,
                        struct raft_snapshot *snapshot, int status) {
  struct opened_get *g = req->data;
  struct raft_io_snapshot_get *orig = g->orig;
  raft_io_snapshot_get_cb cb = g->cb;
  struct atrest *ar = g->ar;
  free(g);
  for (unsigned i = 0; status == 0 && snapshot && i < snapshot->n_bufs; i++)
    if (atrest_open(ar->dek, &snapshot->bufs[i]) < 0)
      status = RAFT_CORRUPT;
  if (status != 0 && snapshot) {
    /* raft only takes the snapshot on success */
    free_loaded(snapshot, NULL, 0);
    snapshot = NULL;
  }
  cb(orig, snapshot, status);
}

static int ar_snapshot_get(struct raft_io *io, struct raft_io_snapshot_get *req,
                           raft_io_snapshot_get_cb cb) {
  struct atrest *ar = atrest_of(io);
  struct opened_get *g = xcalloc(1, sizeof *g);
  g->orig = req;
  g->cb = cb;
  g->ar = ar;
  g->req.data = g;
  req->cb = cb;
  int rv = ar->snapshot_get(io, &g->req, ar_get_done);
  if (rv != 0)
    free(g);
  return rv;
}

void atrest_wrap(struct raft_io *io, struct atrest *ar,
                 const unsigned char dek[ATREST_DEK_LEN]) {
  memcpy(ar->dek, dek, ATREST_DEK_LEN);
  ar->load = io->load;
  ar->append = io->append;
  ar->snapshot_put = io->snapshot_put;
  ar->snapshot_get = io->snapshot_get;
  io->load = ar_load;
  io->append = ar_append;
  io->snapshot_put = ar_snapshot_put;
  io->snapshot_get = ar_snapshot_get;
}
