#include "core/log.h"

#include "core/clock.h"

#include <stdarg.h>
#include <stdio.h>

static enum log_level min_level = LOG_INFO;

void log_set_level(enum log_level l) {
  min_level = l;
}

void log_msg(enum log_level l, const char *func, const char *fmt, ...) {
  static const char *names[] = {"debug", "info", "warning", "error"};
  if (l < min_level)
    return;
  char ts[64];
  clock_format_rfc3339(clock_wall_ns(), ts, sizeof ts);
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (l == LOG_DEBUG)
    fprintf(stderr, "time=\"%s\" level=%s msg=\"%s\" func=%s\n", ts, names[l],
            msg, func);
  else
    fprintf(stderr, "time=\"%s\" level=%s msg=\"%s\"\n", ts, names[l], msg);
}
