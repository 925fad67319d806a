/* Where jansson's memory comes from. A manager's store at scale is
 * millions of small JSON objects, made and freed with every change, and
 * glibc's malloc is a third of the leader's CPU there; mimalloc takes a
 * fraction of that but keeps more memory for a small daemon (per size
 * class pages: +0.6 MB idle). So the JSON a thread makes comes from
 * mimalloc once that thread asked for it (the manager's loop, while its
 * store is large: manager.c), and from glibc's malloc otherwise; jansson's
 * free gives each block back to the heap that owns it, whichever thread
 * frees it. mimalloc is opened by SONAME the first time a thread asks
 * (lazy.h), as an RTLD_LOCAL library: glibc's malloc stays the process's
 * malloc.
 *
 * jansson's allocator also makes json_dumps' result, which is why the
 * tree serializes with jx_dumps (core/jsonx.h) into glibc's memory. */
#ifndef SHOAL_LAZY_HEAP_H
#define SHOAL_LAZY_HEAP_H

#include <stdbool.h>
#include <stddef.h>

/* Installs jansson's allocation functions. Any time is safe (blocks made
 * before are glibc's, and freed as such); under a sanitizer it does
 * nothing, so ASan sees every block. Whether mimalloc can be used. */
bool heap_json_init(void);
/* The calling thread's JSON from mimalloc (on: loads it; false when it
 * cannot be, then glibc's) or glibc's malloc (off). */
bool heap_json_fast(bool on);
bool heap_json_is_fast(void);
/* Whether mimalloc (once loaded) asks for huge pages for its segments: on
 * unless MIMALLOC_LARGE_OS_PAGES says otherwise. A large store faults and
 * misses the TLB less; the memory it holds stays its own (mimalloc does
 * not give huge pages back), which a manager whose store is large keeps
 * anyway. */
bool heap_json_huge_pages(void);
/* The policy: a thread whose store holds `objects` (tasks and nodes)
 * takes mimalloc from HEAP_JSON_FAST_AT on and glibc's malloc again below
 * half of it (no flapping around the mark). Below it the store is a few
 * MB and the CPU per change does not matter; above it, the reverse. */
#define HEAP_JSON_FAST_AT 2000
/* +1 when the thread moved to mimalloc, -1 back to glibc, 0 neither.
 * SHOAL_JSON_HEAP_AT in the environment moves the mark (a test's small
 * cluster). */
int heap_json_follow(size_t objects);
size_t heap_json_mark(void);
/* Whether p is a block of mimalloc's. */
bool heap_json_owns(const void *p);
/* Gives the calling thread's freed mimalloc pages back to the kernel (the
 * daemon's trim timer, next to malloc_trim); nothing before any use. */
void heap_json_collect(void);

#endif
