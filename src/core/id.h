/* Object identifiers as swarmkit makes them: 128 random bits written in
 * base 36, left-padded with '0' to 25 characters (node, service, task,
 * cluster IDs), plus hex IDs (64 chars) for containers and networks. */
#ifndef SHOAL_CORE_ID_H
#define SHOAL_CORE_ID_H

#include <stddef.h>
#include <stdint.h>

#define ID_LEN 25

/* Fills out[ID_LEN + 1]. IDs (and hex IDs) come from a per-thread pool
 * of getrandom() bits, started again in a forked child. */
void id_new(char out[ID_LEN + 1]);
/* Fills out[65] with 64 lowercase hex characters. */
void id_new_hex(char out[65]);
/* Random bytes from getrandom() (one call each: for secrets); aborts if
 * the kernel cannot give them. */
void id_random(void *buf, size_t n);
/* Writes the big-endian number in `in` (n bytes) in base 36, lowercase,
 * left-padded with '0' to width characters; returns out. */
char *base36_encode(const uint8_t *in, size_t n, int width, char *out,
                    size_t outlen);

#endif
