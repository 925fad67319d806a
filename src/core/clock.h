/* Time as the Engine API shows it: wall-clock nanoseconds since the epoch,
 * formatted RFC 3339 with nanoseconds ("2026-11-26T05:40:00.123456789Z"),
 * and Go-style durations in nanoseconds. */
#ifndef SHOAL_CORE_CLOCK_H
#define SHOAL_CORE_CLOCK_H

#include <stddef.h>
#include <stdint.h>

struct sh_err;

int64_t clock_wall_ns(void);
int64_t clock_mono_ns(void);

/* A wall clock that can be swapped: code that schedules against
 * certificate validity reads time through one, so unit tests drive it.
 * clock_system reads CLOCK_REALTIME. */
struct sh_clock {
  int64_t (*wall_ns)(void *ud);
  void *ud;
};
extern const struct sh_clock clock_system;
/* Writes e.g. "2026-11-26T05:40:00.123456789Z"; returns out. */
char *clock_format_rfc3339(int64_t wall_ns, char *out, size_t n);
/* Parses RFC 3339 (fractional seconds and Z or +hh:mm offsets). */
int clock_parse_rfc3339(const char *s, int64_t *wall_ns, struct sh_err *err);
/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil). */
int64_t clock_days_from_civil(int64_t y, int m, int d);
/* Parses Go duration syntax ("2160h0m0s", "5s", "1m30s", "300ms"). */
int clock_parse_duration(const char *s, int64_t *ns, struct sh_err *err);
/* Formats like Go's time.Duration.String(): "2160h0m0s", "5s", "1.5s". */
char *clock_format_duration(int64_t ns, char *out, size_t n);

#define NS_PER_SEC INT64_C(1000000000)
#define NS_PER_MS INT64_C(1000000)

#endif
