/* The cluster simulator: N simulated worker nodes in one process, on one
 * loop, against real managers. Each node joins with the real join token
 * (its own key, CSR and certificate from the swarm's CA), runs a real
 * agent (agent/agent.h) over mutual TLS, and has a simulated executor in
 * place of the worker: no image, no container, only the task states the
 * real worker reports (preparing -> starting -> running, failed, shutdown,
 * complete) after a configurable delay. A tool to measure the managers
 * and plan capacity; its nodes carry the engine label sim=true, an
 * engine version ending in "-sim" and hostnames <prefix>-0001... so they
 * are never mistaken for real ones. */
#ifndef SHOAL_SIM_SIM_H
#define SHOAL_SIM_SIM_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

struct sh_err;
struct sim;

struct sim_config {
  uv_loop_t *loop;
  const char *join_token; /* a worker token */
  const json_t *managers; /* array of "ip:port", borrowed */
  int nodes;
  const char *prefix;     /* hostnames <prefix>-0001 ...; default "sim" */
  int64_t start_delay_ns; /* assignment -> running */
  int64_t jitter_ns;      /* +- uniform on each step */
  double fail_rate;       /* fraction of starts that fail, 0..1 */
  /* Where each node's identity (certificate, key, node ID) is kept, so a
   * restart comes back as the same nodes; NULL: every run joins anew. */
  const char *data_dir;
  int join_parallel; /* joins in flight at once; default 16 */
  /* The simulation cannot go on (the token refused, no CA): called once,
   * from the loop, with the reason. */
  void (*on_fatal)(void *ud, const char *msg);
  void *ud;
};

/* Starts joining the nodes (after checking the CA against the token).
 * Errors found at once (bad options, an unreadable data dir) fail here;
 * a join refused later is logged and counted. */
int sim_start(const struct sim_config *cfg, struct sim **out,
              struct sh_err *err);
/* Stops every agent (no leave: the managers see the nodes go down) and
 * frees everything once the handles closed; done then runs. */
void sim_stop(struct sim *s, void (*done)(void *ud), void *ud);

/* Takes k running nodes down (the highest numbered first), as a host
 * that lost power: its session and connections end, its simulated tasks
 * are forgotten. Returns the hostnames taken down. New reference. */
json_t *sim_down(struct sim *s, int k);
/* Brings back the nodes taken down (k < 0: all), with the identity they
 * had. Returns their hostnames. New reference. */
json_t *sim_up(struct sim *s, int k);
/* The figures: node counts by state, task counts by simulated state,
 * status updates reported, joins and their time. New reference. */
json_t *sim_figures(const struct sim *s);
/* One line of the figures, for a periodic printout. */
char *sim_figures_line(const struct sim *s);
/* A control command ("down K", "up [K]", "status"): the answer as one
 * line of JSON (new string). */
char *sim_command(struct sim *s, const char *line);

#endif
