/* Private to src/raft: a pre-flight check of libraft 0.15's data directory,
 * run before libraft reads it.
 *
 * libraft 0.15 double-frees inside raft_start when the newest open segment
 * ends in a partial batch (a torn write), and silently drops or renames
 * segments it finds corrupt elsewhere. So shoal reads the directory first:
 * a torn tail of the last open segment that holds entries is cut back to
 * its last whole batch (as etcd repairs its WAL); any other damage (a torn
 * or corrupt closed segment, a bad batch with whole batches after it, bad
 * metadata) is an error naming the file, and libraft never sees it.
 *
 * On-disk facts (libraft 0.15, src/uv_segment.c, uv_encoding.c, byte.c),
 * all integers little-endian:
 *   segment  = format (u64, 1) then batches; open segments are preallocated,
 *              so zeros after the last batch are normal;
 *   batch    = crc32(header) u32, crc32(data) u32, header, data;
 *   header   = entry count n (u64), then per entry: term u64, type u8,
 *              3 unused bytes, data size u32;
 *   data     = the entries' payloads back to back (sizes as in the header);
 *   crc32    = MSB-first, polynomial 0x04c11db7, initial value 0, no final
 *              xor (libiberty's xcrc32, not zlib's crc32);
 *   metadata1/2 = format, version, term, voted_for (4 x u64, 32 bytes). */
#ifndef SHOAL_RAFT_SEGMENT_H
#define SHOAL_RAFT_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sh_err;

/* One torn tail cut off an open segment. */
struct segment_repair {
  char file[64];            /* segment file name inside the directory */
  size_t old_size;          /* file size before the cut */
  size_t new_size;          /* after: the end of the last whole batch, or 0 */
  size_t dropped_bytes;     /* non-zero bytes past new_size */
  uint64_t kept_entries;    /* whole entries left in this segment */
  uint64_t dropped_entries; /* entries of the torn batch, when readable */
  bool dropped_known;       /* dropped_entries was read from a valid header */
  const char *why;          /* what was wrong with the torn batch */
};

#define SEGMENT_MAX_REPAIRS 8

struct segment_report {
  unsigned n;
  struct segment_repair repairs[SEGMENT_MAX_REPAIRS];
};

/* Checks dir's metadata and segments, then truncates torn open-segment
 * tails (fsynced). Returns 0 with *rep listing the cuts, or < 0 (500)
 * naming the damaged file: damage is found before anything is cut, so a
 * refused directory is left as it was. A missing or empty directory is
 * fine. Reads every segment whole: about 0.1 s for 15 MiB. */
int segment_check_dir(const char *dir, struct segment_report *rep,
                      struct sh_err *err);

/* libraft's checksum (see above); init chains calls over split buffers. */
uint32_t segment_crc32(const void *buf, size_t len, uint32_t init);

#endif
