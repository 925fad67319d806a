/* Descriptors below FD_SETSIZE for libraries that still wait with
 * select(2): glibc aborts the process when FD_SET meets a descriptor of
 * 1024 or more ("bit out of range"), and libnftables waits on its netlink
 * socket that way. A manager with a thousand nodes holds more connections
 * than that, so a few low descriptors are held in reserve from the start
 * and let go only for the calls that open such a socket. */
#ifndef SHOAL_CORE_LOWFD_H
#define SHOAL_CORE_LOWFD_H

#include <stdbool.h>

/* Holds up to n (at most LOWFD_MAX) descriptors below FD_SETSIZE; at
 * start, before connections take the low numbers (0: none). */
#define LOWFD_MAX 16
void lowfd_reserve(unsigned n);

/* Around a call that opens a netlink socket a library passes to
 * select(2): begin lets the reserve go (under a lock, so one such call at
 * a time), end takes it back and says whether the socket got a low
 * number: one let go now holds a netlink socket, or a low number is still
 * free (false: other threads took them all, so the call's socket got a
 * high one; true also without a reserve). */
void lowfd_begin(void);
bool lowfd_end(void);

/* Takes back into the reserve what was let go since, e.g. right after a
 * library closed such a descriptor (else the next connection takes it
 * and the reserve shrinks with every context closed). */
void lowfd_refill(void);

/* Descriptors held now (tests). */
unsigned lowfd_held(void);

/* Raises the soft RLIMIT_NOFILE to the hard limit, as dockerd does (Go's
 * runtime does it at start): a manager holds two connections per node. */
void lowfd_raise_nofile(void);

/* The limit before lowfd_raise_nofile (false when it was not called):
 * what containers get, as Go gives children back the original limit. */
struct rlimit;
bool lowfd_nofile_before(struct rlimit *out);

#endif
