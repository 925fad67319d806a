#include "core/err.h"

#include <stdio.h>
#include <string.h>

int sh_error(sh_err *err, int status, const char *fmt, ...) {
  if (err == NULL)
    return -1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  err->status = status ? status : 500;
  return -1;
}

int sh_errno(sh_err *err, int errnum, const char *fmt, ...) {
  if (err == NULL)
    return -1;
  char buf[SH_ERR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  snprintf(err->msg, sizeof err->msg, "%s: %s", buf, strerror(errnum));
  err->status = 500;
  return -1;
}

int sh_err_wrap(sh_err *err, const char *fmt, ...) {
  if (err == NULL)
    return -1;
  char ctx[SH_ERR_MSG_MAX];
  char old[SH_ERR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx, sizeof ctx, fmt, ap);
  va_end(ap);
  memcpy(old, err->msg, sizeof old);
  snprintf(err->msg, sizeof err->msg, "%s: %s", ctx, old);
  if (err->status == 0)
    err->status = 500;
  return -1;
}

void sh_err_clear(sh_err *err) {
  if (err) {
    err->status = 0;
    err->msg[0] = '\0';
  }
}
