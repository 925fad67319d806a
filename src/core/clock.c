#include "core/clock.h"

#include "core/err.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t clock_wall_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

static int64_t system_wall(void *ud) {
  (void)ud;
  return clock_wall_ns();
}

const struct sh_clock clock_system = {system_wall, NULL};

int64_t clock_mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

char *clock_format_rfc3339(int64_t wall_ns, char *out, size_t n) {
  time_t secs = (time_t)(wall_ns / NS_PER_SEC);
  long frac = (long)(wall_ns % NS_PER_SEC);
  if (frac < 0) {
    frac += NS_PER_SEC;
    secs--;
  }
  struct tm tm;
  gmtime_r(&secs, &tm);
  char base[32];
  strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
  if (frac == 0) {
    snprintf(out, n, "%sZ", base);
    return out;
  }
  /* Go's RFC3339Nano trims trailing zeros of the fraction. */
  char f[16];
  snprintf(f, sizeof f, "%09ld", frac);
  for (int i = 8; i > 0 && f[i] == '0'; i--)
    f[i] = '\0';
  snprintf(out, n, "%s.%sZ", base, f);
  return out;
}

int64_t clock_days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

int clock_parse_rfc3339(const char *s, int64_t *wall_ns, sh_err *err) {
  struct tm tm = {0};
  const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
  if (!p)
    return sh_error(err, 400, "invalid time %s", s);
  int64_t frac = 0;
  if (*p == '.') {
    p++;
    int digits = 0;
    while (isdigit((unsigned char)*p)) {
      if (digits < 9) {
        frac = frac * 10 + (*p - '0');
        digits++;
      }
      p++;
    }
    while (digits++ < 9)
      frac *= 10;
  }
  int64_t off = 0;
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int hh, mm;
    if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2)
      return sh_error(err, 400, "invalid time zone in %s", s);
    off = (int64_t)(hh * 3600 + mm * 60) * (*p == '+' ? 1 : -1);
    p += 6;
  } else {
    return sh_error(err, 400, "invalid time %s", s);
  }
  if (*p)
    return sh_error(err, 400, "invalid time %s", s);
  int64_t secs = (int64_t)timegm(&tm) - off, ns;
  /* Past year 2262 nanoseconds overflow int64 ("created" of a hostile
   * image config, say). */
  if (__builtin_mul_overflow(secs, NS_PER_SEC, &ns) ||
      __builtin_add_overflow(ns, frac, &ns))
    return sh_error(err, 400, "time out of range %s", s);
  *wall_ns = ns;
  return 0;
}

int clock_parse_duration(const char *s, int64_t *ns, sh_err *err) {
  const char *p = s;
  bool neg = false;
  if (*p == '-' || *p == '+')
    neg = *p++ == '-';
  if (strcmp(p, "0") == 0) {
    *ns = 0;
    return 0;
  }
  if (!*p)
    return sh_error(err, 400, "time: invalid duration \"%s\"", s);
  double total = 0;
  while (*p) {
    if (!isdigit((unsigned char)*p) && *p != '.')
      return sh_error(err, 400, "time: invalid duration \"%s\"", s);
    char *end;
    double v = strtod(p, &end);
    if (end == p)
      return sh_error(err, 400, "time: invalid duration \"%s\"", s);
    p = end;
    double unit;
    if (strncmp(p, "ns", 2) == 0) {
      unit = 1;
      p += 2;
    } else if (strncmp(p, "us", 2) == 0) {
      unit = 1e3;
      p += 2;
    } else if (strncmp(p, "\xc2\xb5s", 3) == 0) {
      unit = 1e3;
      p += 3;
    } else if (strncmp(p, "ms", 2) == 0) {
      unit = 1e6;
      p += 2;
    } else if (*p == 's') {
      unit = 1e9;
      p++;
    } else if (*p == 'm') {
      unit = 60e9;
      p++;
    } else if (*p == 'h') {
      unit = 3600e9;
      p++;
    } else if (*p == '\0') {
      return sh_error(err, 400, "time: missing unit in duration \"%s\"", s);
    } else {
      return sh_error(err, 400, "time: unknown unit in duration \"%s\"", s);
    }
    total += v * unit;
    if (total > 9.2e18)
      return sh_error(err, 400, "time: invalid duration \"%s\"", s);
  }
  *ns = (int64_t)(neg ? -total : total);
  return 0;
}

/* Prints v/10^prec with trailing zeros of the fraction removed. */
static void frac_str(char *out, size_t n, uint64_t v, int prec) {
  uint64_t div = 1;
  for (int i = 0; i < prec; i++)
    div *= 10;
  uint64_t ip = v / div, fp = v % div;
  if (fp == 0) {
    snprintf(out, n, "%llu", (unsigned long long)ip);
    return;
  }
  char f[24];
  snprintf(f, sizeof f, "%0*llu", prec, (unsigned long long)fp);
  for (int i = prec - 1; i > 0 && f[i] == '0'; i--)
    f[i] = '\0';
  snprintf(out, n, "%llu.%s", (unsigned long long)ip, f);
}

char *clock_format_duration(int64_t ns, char *out, size_t n) {
  const char *sign = ns < 0 ? "-" : "";
  uint64_t u = ns < 0 ? (uint64_t)(-ns) : (uint64_t)ns;
  char num[48];
  if (u == 0) {
    snprintf(out, n, "0s");
  } else if (u < 1000) {
    snprintf(out, n, "%s%lluns", sign, (unsigned long long)u);
  } else if (u < 1000000) {
    frac_str(num, sizeof num, u, 3);
    snprintf(out, n, "%s%s\xc2\xb5s", sign, num);
  } else if (u < 1000000000) {
    frac_str(num, sizeof num, u, 6);
    snprintf(out, n, "%s%sms", sign, num);
  } else {
    uint64_t h = u / 3600000000000ULL;
    uint64_t rem = u % 3600000000000ULL;
    uint64_t m = rem / 60000000000ULL;
    rem %= 60000000000ULL;
    frac_str(num, sizeof num, rem, 9);
    if (h)
      snprintf(out, n, "%s%lluh%llum%ss", sign, (unsigned long long)h,
               (unsigned long long)m, num);
    else if (m)
      snprintf(out, n, "%s%llum%ss", sign, (unsigned long long)m, num);
    else
      snprintf(out, n, "%s%ss", sign, num);
  }
  return out;
}
