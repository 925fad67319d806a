#include "ca/renew.h"

#include "core/clock.h"

#define MINUTE_NS (60 * NS_PER_SEC)
#define BACKOFF_MIN_NS (30 * NS_PER_SEC)
#define BACKOFF_MAX_NS (5 * MINUTE_NS)

static int64_t now_ns(const struct ca_renewal *r) {
  return r->clock->wall_ns(r->clock->ud);
}

int64_t ca_renew_point(int64_t not_before, int64_t not_after, uint64_t rnd) {
  int64_t life_min = (not_after - not_before) / MINUTE_NS;
  if (life_min <= 0)
    return not_before;
  int64_t lo = life_min * CA_RENEW_LOWER_PCT / 100;
  int64_t hi = life_min * CA_RENEW_UPPER_PCT / 100;
  int64_t pick = hi - lo < 1 ? lo : lo + (int64_t)(rnd % (uint64_t)(hi - lo));
  return not_before + pick * MINUTE_NS;
}

void ca_renewal_init(struct ca_renewal *r, const struct sh_clock *clock) {
  *r = (struct ca_renewal){.clock = clock};
}

void ca_renewal_set_cert(struct ca_renewal *r, int64_t not_before,
                         int64_t not_after, uint64_t rnd) {
  r->renew_at = ca_renew_point(not_before, not_after, rnd);
}

bool ca_renewal_force(struct ca_renewal *r, uint64_t force_rotate) {
  if (!r->force_known) {
    r->force_known = true;
    r->force_done = force_rotate;
    return false;
  }
  if (force_rotate == r->force_done)
    return false;
  r->force_done = force_rotate;
  if (r->in_flight)
    r->again = true; /* the attempt under way may predate the rotation */
  else
    r->renew_at = now_ns(r);
  return true;
}

bool ca_renewal_wrong_issuer(struct ca_renewal *r) {
  if (r->in_flight || r->backoff)
    return false;
  int64_t now = now_ns(r);
  if (r->renew_at && r->renew_at <= now)
    return false; /* due already */
  r->renew_at = now;
  return true;
}

int64_t ca_renewal_wait(const struct ca_renewal *r) {
  if (r->in_flight || r->renew_at == 0)
    return INT64_MAX;
  int64_t now = now_ns(r);
  int64_t at = r->renew_at;
  /* Never a tight loop: a minute between attempt starts. */
  if (r->last_try && at < r->last_try + MINUTE_NS)
    at = r->last_try + MINUTE_NS;
  return at > now ? at - now : 0;
}

void ca_renewal_begin(struct ca_renewal *r) {
  r->in_flight = true;
  r->last_try = now_ns(r);
}

void ca_renewal_done(struct ca_renewal *r, int64_t not_before,
                     int64_t not_after, uint64_t rnd) {
  r->in_flight = false;
  r->backoff = 0;
  ca_renewal_set_cert(r, not_before, not_after, rnd);
  if (r->again)
    r->renew_at = now_ns(r);
  r->again = false;
}

void ca_renewal_failed(struct ca_renewal *r) {
  r->in_flight = false;
  r->again = false;
  r->backoff = r->backoff ? r->backoff * 2 : BACKOFF_MIN_NS;
  if (r->backoff > BACKOFF_MAX_NS)
    r->backoff = BACKOFF_MAX_NS;
  r->renew_at = now_ns(r) + r->backoff;
}
