/* The one error convention of shoal.
 *
 * Every fallible function returns an int: >= 0 on success, < 0 on failure,
 * and takes `sh_err *err` as its last argument. On failure it fills err with
 * a status (the Engine API's HTTP status code: 400, 404, 409, 500, 503 ...)
 * and a message meant for the user. Callers that add context use
 * sh_err_wrap(). Library code never logs errors; programs do. */
#ifndef SHOAL_CORE_ERR_H
#define SHOAL_CORE_ERR_H

#include <stdarg.h>

#define SH_ERR_MSG_MAX 512

typedef struct sh_err {
  int status; /* HTTP status code, 0 when no error */
  char msg[SH_ERR_MSG_MAX];
} sh_err;

/* Sets err (if non-NULL) and returns -1 so callers can `return sh_error(...)`.
 */
int sh_error(sh_err *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Like sh_error with strerror(errnum) appended: "msg: No such file". */
int sh_errno(sh_err *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefixes the message already in err with context: "ctx: old". */
int sh_err_wrap(sh_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sh_err_clear(sh_err *err);

#endif
