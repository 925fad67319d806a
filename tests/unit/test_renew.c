/* Certificate renewal schedule (ca/renew.h) under a fake clock. */
#include "test.h"

#include "ca/ca.h"
#include "ca/renew.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/util.h"

#define MIN_NS (INT64_C(60) * NS_PER_SEC)
#define HOUR_NS (60 * MIN_NS)
#define T0 (INT64_C(1800000000) * NS_PER_SEC)

struct fake_clock {
  int64_t now;
};

static int64_t fake_wall(void *ud) {
  return ((struct fake_clock *)ud)->now;
}

TEST(renew_point_between_half_and_80pct) {
  /* 90 days from a backdated NotBefore, over many random draws: always in
   * [50%, 80%] of the lifetime, both ends reached at minute granularity. */
  int64_t nb = T0 - HOUR_NS, na = T0 + 2160 * HOUR_NS;
  int64_t life = na - nb, lo = INT64_MAX, hi = 0;
  for (uint64_t r = 0; r < 20000; r++) {
    int64_t at = ca_renew_point(nb, na, r * 7919);
    CHECK(at >= nb + life / 2 - MIN_NS);
    CHECK(at <= nb + life * 8 / 10);
    lo = at < lo ? at : lo;
    hi = at > hi ? at : hi;
  }
  CHECK(lo - nb <= life / 2);
  CHECK(nb + life * 8 / 10 - hi <= 2 * MIN_NS);
  /* A tiny lifetime: no division by zero, renew at the start. */
  CHECK_INT_EQ(ca_renew_point(T0, T0 + NS_PER_SEC, 5), T0);
}

TEST(renew_schedule_follows_fake_clock) {
  struct fake_clock fc = {T0};
  struct sh_clock clk = {fake_wall, &fc};
  struct ca_renewal r;
  ca_renewal_init(&r, &clk);
  CHECK_INT_EQ(ca_renewal_wait(&r), INT64_MAX); /* no certificate yet */
  /* 1 h certificate, backdated 1 h (as the signer does): 2 h lifetime,
   * renewal 60 to 96 min after NotBefore, i.e. 0 to 36 min from now. */
  ca_renewal_set_cert(&r, T0 - HOUR_NS, T0 + HOUR_NS, 17);
  int64_t w = ca_renewal_wait(&r);
  CHECK(w >= 0 && w <= 36 * MIN_NS);
  /* 90 days: not due for 45 days, due by 72. */
  ca_renewal_set_cert(&r, T0 - HOUR_NS, T0 + 2160 * HOUR_NS, 12345);
  w = ca_renewal_wait(&r);
  CHECK(w >= 1080 * HOUR_NS - 2 * HOUR_NS);
  fc.now += 44 * 24 * HOUR_NS;
  CHECK(ca_renewal_wait(&r) > 0);
  fc.now = T0 + 72 * 24 * HOUR_NS;
  CHECK_INT_EQ(ca_renewal_wait(&r), 0);
  ca_renewal_begin(&r);
  CHECK_INT_EQ(ca_renewal_wait(&r), INT64_MAX); /* in flight */
  /* Renewed: the next point comes from the new certificate. */
  int64_t now = fc.now;
  ca_renewal_done(&r, now - HOUR_NS, now + 2160 * HOUR_NS, 99);
  w = ca_renewal_wait(&r);
  CHECK(w >= 1079 * HOUR_NS && w <= 1728 * HOUR_NS);
}

TEST(renew_failure_backs_off) {
  struct fake_clock fc = {T0};
  struct sh_clock clk = {fake_wall, &fc};
  struct ca_renewal r;
  ca_renewal_init(&r, &clk);
  ca_renewal_set_cert(&r, T0 - 2 * HOUR_NS, T0 + HOUR_NS, 0);
  CHECK_INT_EQ(ca_renewal_wait(&r), 0);
  ca_renewal_begin(&r);
  ca_renewal_failed(&r);
  /* 30 s backoff, but never sooner than a minute after the last start. */
  CHECK_INT_EQ(ca_renewal_wait(&r), MIN_NS);
  fc.now += MIN_NS;
  CHECK_INT_EQ(ca_renewal_wait(&r), 0);
  ca_renewal_begin(&r);
  ca_renewal_failed(&r);
  CHECK_INT_EQ(ca_renewal_wait(&r), MIN_NS); /* 60 s */
  for (int i = 0; i < 10; i++) {
    fc.now += ca_renewal_wait(&r);
    ca_renewal_begin(&r);
    ca_renewal_failed(&r);
  }
  CHECK_INT_EQ(ca_renewal_wait(&r), 5 * MIN_NS); /* capped */
}

TEST(renew_force_rotate_triggers) {
  struct fake_clock fc = {T0};
  struct sh_clock clk = {fake_wall, &fc};
  struct ca_renewal r;
  ca_renewal_init(&r, &clk);
  ca_renewal_set_cert(&r, T0 - HOUR_NS, T0 + 2160 * HOUR_NS, 1);
  /* The first value heard is adopted: a node that just joined. */
  CHECK(!ca_renewal_force(&r, 3));
  CHECK(ca_renewal_wait(&r) > HOUR_NS);
  CHECK(!ca_renewal_force(&r, 3));
  CHECK(ca_renewal_force(&r, 4));
  CHECK_INT_EQ(ca_renewal_wait(&r), 0);
  ca_renewal_begin(&r);
  ca_renewal_done(&r, T0 - HOUR_NS, T0 + 2160 * HOUR_NS, 1);
  CHECK(ca_renewal_wait(&r) > HOUR_NS);
  CHECK_INT_EQ(r.force_done, 4);
  /* A rotation heard while an attempt runs: another renewal follows, a
   * minute after the last one started. */
  fc.now += 10 * MIN_NS;
  CHECK(ca_renewal_force(&r, 5));
  CHECK_INT_EQ(ca_renewal_wait(&r), 0);
  ca_renewal_begin(&r);
  CHECK(ca_renewal_force(&r, 6));
  fc.now += NS_PER_SEC;
  ca_renewal_done(&r, fc.now - HOUR_NS, fc.now + 2160 * HOUR_NS, 1);
  CHECK_INT_EQ(ca_renewal_wait(&r), MIN_NS - NS_PER_SEC);
}

/* What the manager signs on renewal: the cluster's NodeCertExpiry now. */
TEST(renew_signs_with_current_expiry) {
  sh_err err = {0};
  cleanup_free char *root = NULL, *root_key = NULL, *key = NULL, *csr = NULL;
  cleanup_free char *c1 = NULL, *c2 = NULL;
  CHECK_INT_EQ(ca_root_create(&root, &root_key, &err), 0);
  CHECK_INT_EQ(ca_csr_create(&key, &csr, &err), 0);
  CHECK_INT_EQ(ca_sign_csr(root, root_key, csr, "n1", CA_ROLE_WORKER, "c1",
                           2160 * HOUR_NS, &c1, &err),
               0);
  CHECK_INT_EQ(ca_sign_csr(root, root_key, csr, "n1", CA_ROLE_WORKER, "c1",
                           HOUR_NS, &c2, &err),
               0);
  struct ca_cert_info i1, i2;
  CHECK_INT_EQ(ca_cert_info(c1, &i1, &err), 0);
  CHECK_INT_EQ(ca_cert_info(c2, &i2, &err), 0);
  int64_t now = clock_wall_ns();
  CHECK(i2.not_after_ns - now > 59 * MIN_NS);
  CHECK(i2.not_after_ns - now <= HOUR_NS + NS_PER_SEC);
  CHECK(i1.not_after_ns - now > 2159 * HOUR_NS);
}
