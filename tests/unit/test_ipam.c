#include "test.h"

#include "core/err.h"
#include "ipam/ipam.h"

static struct ipam_prefix P(const char *s) {
  struct ipam_prefix p = {0};
  ipam_parse_cidr(s, &p, NULL, NULL);
  return p;
}

static uint32_t
IP(const char *s) {
  uint32_t ip = 0;
  ipam_parse_ip(s, &ip, NULL);
  return ip;
}

TEST(ipam_parse_like_go) {
  struct ipam_prefix p;
  uint32_t host;
  sh_err err = {0};
  CHECK_INT_EQ(ipam_parse_cidr("10.255.0.1/16", &p, &host, &err), 0);
  char b[20];
  CHECK_STR_EQ(ipam_prefix_str(p, b), "10.255.0.0/16");
  CHECK_STR_EQ(ipam_ip_str(host, b), "10.255.0.1");
  const char *bad[] = {
      "10.0.0.0",    "10.0.0.0/33", "10.0.0/24", "10.0.0.256/24",
      "010.0.0.0/8", "10.0.0.0/08", "10.0.0.0/", "a.b.c.d/8",
      "10.0.0.0/8x", "::1/64",      ""};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    CHECK(ipam_parse_cidr(bad[i], &p, NULL, &err) < 0);
    CHECK_INT_EQ(err.status, 400);
    char want[64];
    snprintf(want, sizeof want, "invalid CIDR address: %s", bad[i]);
    CHECK_STR_EQ(err.msg, want);
  }
  CHECK(ipam_parse_ip("1.2.3", &host, &err) < 0);
  CHECK_STR_EQ(err.msg, "invalid IP address: 1.2.3");
  CHECK_INT_EQ(ipam_parse_ip("0.0.0.0", &host, &err), 0);
  CHECK_INT_EQ(host, 0);
}

TEST(ipam_overlap_and_contain) {
  CHECK(ipam_overlaps(P("10.0.0.0/8"), P("10.1.2.0/24")));
  CHECK(ipam_overlaps(P("10.1.2.0/24"), P("10.0.0.0/8")));
  CHECK(!ipam_overlaps(P("10.0.0.0/24"), P("10.0.1.0/24")));
  CHECK(ipam_contains(P("10.255.0.0/16"), IP("10.255.3.4")));
  CHECK(!ipam_contains(P("10.255.0.0/16"), IP("10.254.3.4")));
  CHECK(ipam_overlaps(P("0.0.0.0/0"), P("192.168.0.0/16")));
}

TEST(ipam_carve_skips_used_and_reports_exhaustion) {
  struct ipam_prefix pools[] = {P("10.0.0.0/8")};
  struct ipam_prefix used[] = {P("10.0.0.0/24"), P("10.0.1.0/25"),
                               P("10.0.2.0/23")};
  struct ipam_prefix out;
  sh_err err = {0};
  char b[20];
  CHECK_INT_EQ(ipam_carve(pools, 1, 24, used, 3, &out, &err), 0);
  CHECK_STR_EQ(ipam_prefix_str(out, b), "10.0.4.0/24");
  /* A used /8 larger than the candidate is jumped over whole. */
  struct ipam_prefix pools2[] = {P("10.0.0.0/7")};
  struct ipam_prefix used2[] = {P("10.0.0.0/8")};
  CHECK_INT_EQ(ipam_carve(pools2, 1, 26, used2, 1, &out, &err), 0);
  CHECK_STR_EQ(ipam_prefix_str(out, b), "11.0.0.0/26");
  /* --default-addr-pool 10.20.0.0/16 --default-addr-pool-mask-length 26:
   * 1024 subnets, then Docker's message. */
  struct ipam_prefix pool3[] = {P("10.20.0.0/16")};
  struct ipam_prefix taken[1024];
  for (int i = 0; i < 1024; i++) {
    CHECK_INT_EQ(ipam_carve(pool3, 1, 26, taken, (size_t)i, &taken[i], &err),
                 0);
    CHECK_INT_EQ(taken[i].len, 26);
  }
  CHECK_STR_EQ(ipam_prefix_str(taken[1023], b), "10.20.255.192/26");
  CHECK(ipam_carve(pool3, 1, 26, taken, 1024, &out, &err) < 0);
  CHECK_INT_EQ(err.status, 400);
  CHECK_STR_EQ(err.msg, "could not find an available, non-overlapping IPv4 "
                        "address pool among the defaults to assign to the "
                        "network");
  /* A second pool takes over; a pool smaller than the size is skipped. */
  struct ipam_prefix pools4[] = {P("10.20.0.0/16"), P("192.168.0.0/28"),
                                 P("172.30.0.0/16")};
  CHECK_INT_EQ(ipam_carve(pools4, 3, 26, taken, 1024, &out, &err), 0);
  CHECK_STR_EQ(ipam_prefix_str(out, b), "172.30.0.0/26");
}

TEST(ipam_set_hands_out_each_address_once) {
  struct ipam_set *s = NULL;
  sh_err err = {0};
  CHECK_INT_EQ(ipam_set_new(P("10.0.9.0/29"), NULL, IP("10.0.9.1"), &s, &err),
               0);
  /* .0 network, .7 broadcast, .1 gateway kept back: .2 to .6. */
  CHECK_INT_EQ(ipam_set_free_count(s), 5);
  CHECK_INT_EQ(ipam_set_reserve(s, IP("10.0.9.3"), &err), 0);
  CHECK(ipam_set_reserve(s, IP("10.0.9.3"), &err) < 0);
  CHECK_INT_EQ(err.status, 409);
  CHECK(ipam_set_reserve(s, IP("10.0.10.3"), &err) < 0);
  CHECK_INT_EQ(err.status, 400);
  uint32_t got[4];
  char b[20];
  for (int i = 0; i < 4; i++)
    CHECK_INT_EQ(ipam_set_alloc(s, &got[i], &err), 0);
  CHECK_STR_EQ(ipam_ip_str(got[0], b), "10.0.9.2");
  CHECK_STR_EQ(ipam_ip_str(got[1], b), "10.0.9.4");
  CHECK_STR_EQ(ipam_ip_str(got[3], b), "10.0.9.6");
  uint32_t x;
  CHECK(ipam_set_alloc(s, &x, &err) < 0);
  CHECK_STR_EQ(err.msg, "no available IPv4 addresses");
  /* Released addresses come back, but only after the rest (next fit);
   * the gateway is never released. */
  ipam_set_release(s, IP("10.0.9.1"));
  ipam_set_release(s, IP("10.0.9.4"));
  CHECK_INT_EQ(ipam_set_alloc(s, &x, &err), 0);
  CHECK_STR_EQ(ipam_ip_str(x, b), "10.0.9.4");
  CHECK(ipam_set_alloc(s, &x, &err) < 0);
  ipam_set_free(s);
}

TEST(ipam_set_ip_range_and_large_subnets) {
  struct ipam_set *s = NULL;
  sh_err err = {0};
  struct ipam_prefix r = P("10.0.0.128/25");
  CHECK_INT_EQ(ipam_set_new(P("10.0.0.0/24"), &r, IP("10.0.0.1"), &s, &err), 0);
  uint32_t x;
  char b[20];
  CHECK_INT_EQ(ipam_set_alloc(s, &x, &err), 0);
  CHECK_STR_EQ(ipam_ip_str(x, b), "10.0.0.128");
  CHECK_INT_EQ(ipam_set_free_count(s), 126); /* .255 is the broadcast */
  ipam_set_free(s);
  struct ipam_prefix out_range = P("10.1.0.0/25");
  CHECK(ipam_set_new(P("10.0.0.0/24"), &out_range, 0, &s, &err) < 0);
  CHECK_STR_EQ(err.msg,
               "ip range 10.1.0.0/25 is not within subnet 10.0.0.0/24");
  /* The ingress network's /16: 65533 usable, skipping full words fast. */
  CHECK_INT_EQ(
      ipam_set_new(P("10.255.0.0/16"), NULL, IP("10.255.0.1"), &s, &err), 0);
  CHECK_INT_EQ(ipam_set_free_count(s), 65533);
  for (int i = 0; i < 65533; i++)
    CHECK_INT_EQ(ipam_set_alloc(s, &x, &err), 0);
  CHECK(ipam_set_alloc(s, &x, &err) < 0);
  ipam_set_release(s, IP("10.255.200.7"));
  CHECK_INT_EQ(ipam_set_alloc(s, &x, &err), 0);
  CHECK_STR_EQ(ipam_ip_str(x, b), "10.255.200.7");
  ipam_set_free(s);
}

TEST(ipam_cidr_addr_is_the_address_without_its_length) {
  char b[20];
  CHECK_STR_EQ(ipam_cidr_addr("10.0.1.3/24", b), "10.0.1.3");
  CHECK_STR_EQ(ipam_cidr_addr("10.255.0.2", b), "10.255.0.2");
  CHECK_STR_EQ(ipam_cidr_addr("10.0/8", b), "");
  CHECK_STR_EQ(ipam_cidr_addr(NULL, b), "");
}
