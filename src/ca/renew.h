/* When a node renews its certificate, as swarmkit does
 * (ca/config.go calculateRandomExpiry, RenewTLSConfig):
 *
 * - at a random point between 50% and 80% of the certificate's lifetime,
 *   counted from its NotBefore (which the signer backdates by an hour), so
 *   a cluster's nodes do not all renew at once;
 * - at once when the cluster's CAConfig.ForceRotate moves past the value
 *   this node last renewed for, or when a root rotation wants a
 *   certificate from another issuer;
 * - after a failure, again after a backoff (30 s doubling to 5 min), never
 *   sooner than a minute after the last attempt started.
 *
 * Pure state: the caller reads time through an sh_clock, supplies the
 * random numbers, runs the timer and the request. */
#ifndef SHOAL_CA_RENEW_H
#define SHOAL_CA_RENEW_H

#include <stdbool.h>
#include <stdint.h>

struct sh_clock;

#define CA_RENEW_LOWER_PCT 50
#define CA_RENEW_UPPER_PCT 80

struct ca_renewal {
  const struct sh_clock *clock;
  int64_t renew_at;    /* wall ns the next renewal is due; 0: none */
  int64_t last_try;    /* wall ns the last attempt started */
  int64_t backoff;     /* ns; 0 after a success */
  uint64_t force_done; /* ForceRotate the current certificate answers */
  bool force_known;    /* force_done is meaningful */
  bool in_flight;
  bool again; /* a ForceRotate came during the attempt */
};

/* The wall time (ns) to renew a certificate valid [not_before, not_after]
 * at: not_before + r * lifetime, r in [50%, 80%] picked by rnd at minute
 * granularity (swarmkit's). */
int64_t ca_renew_point(int64_t not_before, int64_t not_after, uint64_t rnd);

void ca_renewal_init(struct ca_renewal *r, const struct sh_clock *clock);
/* A new current certificate: schedules its renewal. */
void ca_renewal_set_cert(struct ca_renewal *r, int64_t not_before,
                         int64_t not_after, uint64_t rnd);
/* The cluster's ForceRotate as last heard. The first value heard (a node
 * that just joined, or state from before this existed) is adopted without
 * a renewal; a different one makes a renewal due now. Returns true when
 * it did. */
bool ca_renewal_force(struct ca_renewal *r, uint64_t force_rotate);
/* The certificate is not from the issuer the cluster wants (a root
 * rotation): a renewal is due now, unless one is under way (the caller
 * looks again when it ends) or the last one failed (its backoff stands).
 * Returns true when it made one due. */
bool ca_renewal_wrong_issuer(struct ca_renewal *r);
/* ns until a renewal is due (0: due now); INT64_MAX when nothing is
 * scheduled. While one is in flight, INT64_MAX. */
int64_t ca_renewal_wait(const struct ca_renewal *r);
/* An attempt starts now. */
void ca_renewal_begin(struct ca_renewal *r);
/* The attempt succeeded with a certificate valid [nb, na]. */
void ca_renewal_done(struct ca_renewal *r, int64_t not_before,
                     int64_t not_after, uint64_t rnd);
/* The attempt failed: due again after the backoff. */
void ca_renewal_failed(struct ca_renewal *r);

#endif
