/* Daemon logging to stderr in logfmt-ish lines, like dockerd's:
 *   time="2026-11-26T05:40:00.000Z" level=info msg="..."
 * Only programs and the daemon's top level log; library code returns
 * errors instead. */
#ifndef SHOAL_CORE_LOG_H
#define SHOAL_CORE_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level l);
void log_msg(enum log_level l, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(...) log_msg(LOG_DEBUG, __func__, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __func__, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __func__, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __func__, __VA_ARGS__)

#endif
