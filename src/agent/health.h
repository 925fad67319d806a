/* Container healthchecks as dockerd runs them (daemon/health.go): a probe
 * command runs inside the container (`crun exec`) every interval; exit 0
 * is healthy, anything else (or the timeout) a failure; `retries` failures
 * in a row make the container unhealthy, failures within the start period
 * do not count until the first success. The last 5 results are kept with
 * their output (4096 bytes at most). The state has Docker's shape,
 * {Status, FailingStreak, Log: [{Start, End, ExitCode, Output}]}, and is
 * stored with the container for inspect (exec_set_health).
 *
 * A probe is a child process watched by libuv: nothing waits for it, and
 * it is killed (with what it started in the container) at its timeout. */
#ifndef SHOAL_AGENT_HEALTH_H
#define SHOAL_AGENT_HEALTH_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct executor;

#define HEALTH_MAX_OUTPUT 4096
#define HEALTH_MAX_LOG 5

enum health_status { HEALTH_STARTING, HEALTH_HEALTHY, HEALTH_UNHEALTHY };
/* "starting", "healthy", "unhealthy" (Docker's State.Health.Status). */
const char *health_status_string(enum health_status s);

/* Config.Healthcheck from the image's and the service's, as dockerd
 * merges them: the spec's fields win where set, the image's fill the
 * rest. NULL (no probe) without a test or with Test ["NONE"]. New
 * reference. */
json_t *health_merge(const json_t *image_hc, const json_t *spec_hc);

/* The probe's command: ["CMD", args...] -> args; ["CMD-SHELL", s] ->
 * shell (the image's Shell, else /bin/sh -c) + s. NULL if none. */
json_t *health_probe_cmd(const json_t *hc, const json_t *shell);

/* Durations and retries with dockerd's defaults applied. */
struct health_params {
  int64_t interval_ns, timeout_ns, start_period_ns, start_interval_ns;
  int retries;
};
void health_params_from(const json_t *hc, struct health_params *out);

/* ---- the state machine (pure; times are wall-clock ns) ---- */

/* A fresh state: {"Status": "starting", "FailingStreak": 0, "Log": []}. */
json_t *health_state_new(void);
enum health_status health_state_status(const json_t *state);
/* Records one probe result (dockerd's handleProbeResult); started_ns is
 * when the container started. Returns true if the status changed. */
bool health_record(json_t *state, const struct health_params *p,
                   int64_t started_ns, int64_t start_ns, int64_t end_ns,
                   int exit_code, const char *output);
/* The wait before the next probe: the start interval while starting
 * within the start period, else the interval. */
int64_t health_next_interval(const json_t *state, const struct health_params *p,
                             int64_t started_ns, int64_t now_ns);

/* Output of a probe, capped as dockerd's limitedBuffer ("..." appended
 * once something was lost). */
struct health_output {
  char buf[HEALTH_MAX_OUTPUT + 4];
  size_t len;
  bool truncated;
};
void health_output_add(struct health_output *o, const char *data, size_t n);
/* NUL-terminated, with "..." if truncated. */
const char *health_output_str(struct health_output *o);

/* ---- the monitor, on the loop ---- */

struct health;
typedef void (*health_fn)(struct health *h, enum health_status status,
                          void *ud);

struct health_start {
  uv_loop_t *loop;
  struct executor *exec;
  const char *cid;
  char **argv;         /* exec_probe_argv's; taken */
  const char *pidfile; /* crun exec's --pid-file: killed at the timeout */
  const json_t *hc;    /* Config.Healthcheck */
  int64_t started_ns;  /* the container's start */
  const json_t *state; /* State.Health to go on from (adoption), or NULL */
  health_fn on_change; /* a status change, on the loop */
  void *ud;
};
/* Starts probing (the first probe after one interval, as dockerd). */
struct health *health_start(const struct health_start *s);
enum health_status health_status(const struct health *h);
/* No more probes nor callbacks; a probe in flight is killed. Freed once
 * libuv lets go (the loop must run on). NULL is fine. */
void health_stop(struct health *h);

#endif
