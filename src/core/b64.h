/* Standard base64 with padding, as Go's encoding/json writes []byte. */
#ifndef SHOAL_CORE_B64_H
#define SHOAL_CORE_B64_H

#include <stddef.h>

struct sh_err;

/* Decodes in (std alphabet, padded; "" is empty) into a new buffer, NUL
 * terminated for convenience. 400 "illegal base64 data at input byte N"
 * (Go's wording) when it is not base64. */
int b64_decode(const char *in, unsigned char **out, size_t *len,
               struct sh_err *err);
/* New NUL-terminated base64 of data. */
char *b64_encode(const void *data, size_t len);

#endif
