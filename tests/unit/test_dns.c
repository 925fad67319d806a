#include "test.h"

#include <jansson.h>
#include <ldns/ldns.h>
#include <stdlib.h>

#include "dns/dns.h"
#include "core/jsonx.h"

static json_t *names_fixture(void) {
  return json_pack("{s:[s], s:[s,s,s,s], s:[s], s:[]}", "web", "10.0.1.2",
                   "tasks.web", "10.0.1.5", "10.0.1.6", "10.0.1.7", "10.0.1.8",
                   "web.1.abcd", "10.0.1.5", "empty");
}

/* A query in wire format built by ldns; *len gets its size. */
static uint8_t *make_query(const char *name, ldns_rr_type type, uint16_t id,
                           bool rd, size_t *len) {
  ldns_pkt *q = NULL;
  if (ldns_pkt_query_new_frm_str(&q, name, type, LDNS_RR_CLASS_IN,
                                 rd ? LDNS_RD : 0) != LDNS_STATUS_OK)
    return NULL;
  ldns_pkt_set_id(q, id);
  uint8_t *w = NULL;
  if (ldns_pkt2wire(&w, q, len) != LDNS_STATUS_OK)
    w = NULL;
  ldns_pkt_free(q);
  return w;
}

static ldns_pkt *parse(const uint8_t *w, size_t len) {
  ldns_pkt *p = NULL;
  if (ldns_wire2pkt(&p, w, len) != LDNS_STATUS_OK)
    return NULL;
  return p;
}

/* The A answers of a reply as a sorted, comma-joined string. */
static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}
static void answers(const ldns_pkt *p, char *out, size_t cap, bool sorted) {
  const ldns_rr_list *an = ldns_pkt_answer(p);
  size_t n = ldns_rr_list_rr_count(an);
  char **v = calloc(n ? n : 1, sizeof *v);
  for (size_t i = 0; i < n; i++)
    v[i] = ldns_rdf2str(ldns_rr_rdf(ldns_rr_list_rr(an, i), 0));
  if (sorted)
    qsort(v, n, sizeof *v, cmp_str);
  out[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    if (i)
      strncat(out, ",", cap - strlen(out) - 1);
    strncat(out, v[i] ? v[i] : "?", cap - strlen(out) - 1);
    free(v[i]);
  }
  free(v);
}

TEST(dns_a_record_for_known_name) {
  json_t *names = names_fixture();
  size_t qlen = 0;
  uint8_t *q = make_query("web", LDNS_RR_TYPE_A, 0x1234, true, &qlen);
  CHECK(q);
  uint8_t *r = NULL;
  size_t rlen = 0;
  CHECK_INT_EQ(dns_answer(q, qlen, names, &r, &rlen), DNS_REPLY);
  ldns_pkt *p = parse(r, rlen);
  CHECK(p);
  CHECK_INT_EQ(ldns_pkt_id(p), 0x1234);
  CHECK(ldns_pkt_qr(p));
  CHECK(ldns_pkt_aa(p));
  CHECK(ldns_pkt_ra(p));
  CHECK(ldns_pkt_rd(p));
  CHECK(!ldns_pkt_tc(p));
  CHECK_INT_EQ(ldns_pkt_get_rcode(p), LDNS_RCODE_NOERROR);
  CHECK_INT_EQ(ldns_pkt_qdcount(p), 1);
  ldns_rr *qq = ldns_rr_list_rr(ldns_pkt_question(p), 0);
  char *qn = ldns_rdf2str(ldns_rr_owner(qq));
  CHECK_STR_EQ(qn, "web.");
  free(qn);
  CHECK_INT_EQ(ldns_rr_get_type(qq), LDNS_RR_TYPE_A);
  CHECK_INT_EQ(ldns_pkt_ancount(p), 1);
  ldns_rr *a = ldns_rr_list_rr(ldns_pkt_answer(p), 0);
  CHECK_INT_EQ(ldns_rr_get_type(a), LDNS_RR_TYPE_A);
  CHECK_INT_EQ(ldns_rr_get_class(a), LDNS_RR_CLASS_IN);
  CHECK_INT_EQ(ldns_rr_ttl(a), 600);
  char *an = ldns_rdf2str(ldns_rr_owner(a));
  CHECK_STR_EQ(an, "web.");
  free(an);
  char buf[256];
  answers(p, buf, sizeof buf, false);
  CHECK_STR_EQ(buf, "10.0.1.2");
  ldns_pkt_free(p);
  free(r);
  free(q);

  /* RD clear in the query stays clear in the reply. */
  q = make_query("web", LDNS_RR_TYPE_A, 7, false, &qlen);
  CHECK_INT_EQ(dns_answer(q, qlen, names, &r, &rlen), DNS_REPLY);
  p = parse(r, rlen);
  CHECK(p);
  CHECK(!ldns_pkt_rd(p));
  CHECK_INT_EQ(ldns_pkt_id(p), 7);
  ldns_pkt_free(p);
  free(r);
  free(q);
  json_decref(names);
}

TEST(dns_all_addresses_shuffled) {
  json_t *names = names_fixture();
  size_t qlen = 0;
  uint8_t *q = make_query("tasks.web", LDNS_RR_TYPE_A, 1, true, &qlen);
  CHECK(q);
  char first[256] = "";
  bool varied = false;
  /* 4 addresses: 40 replies all in one order has odds (1/24)^39. */
  for (int i = 0; i < 40; i++) {
    uint8_t *r = NULL;
    size_t rlen = 0;
    CHECK_INT_EQ(dns_answer(q, qlen, names, &r, &rlen), DNS_REPLY);
    ldns_pkt *p = parse(r, rlen);
    CHECK(p);
    CHECK_INT_EQ(ldns_pkt_ancount(p), 4);
    char set[256], order[256];
    answers(p, set, sizeof set, true);
    answers(p, order, sizeof order, false);
    CHECK_STR_EQ(set, "10.0.1.5,10.0.1.6,10.0.1.7,10.0.1.8");
    for (size_t k = 0; k < 4; k++)
      CHECK_INT_EQ(ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_answer(p), k)), 600);
    if (i == 0)
      snprintf(first, sizeof first, "%s", order);
    else if (strcmp(first, order) != 0)
      varied = true;
    ldns_pkt_free(p);
    free(r);
  }
  CHECK(varied);
  free(q);
  json_decref(names);
}

TEST(dns_names_case_insensitive_trailing_dot) {
  json_t *names = names_fixture();
  const char *forms[] = {"web",  "web.",       "WEB",
                         "Web.", "TASKS.Web.", "Web.1.ABCD"};
  for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
    size_t qlen = 0;
    uint8_t *q = make_query(forms[i], LDNS_RR_TYPE_A, 9, true, &qlen);
    CHECK(q);
    uint8_t *r = NULL;
    size_t rlen = 0;
    CHECK_INT_EQ(dns_answer(q, qlen, names, &r, &rlen), DNS_REPLY);
    ldns_pkt *p = parse(r, rlen);
    CHECK(p);
    CHECK(ldns_pkt_ancount(p) >= 1);
    /* The answer names the query's spelling, as asked. */
    char *an =
        ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_answer(p), 0)));
    char want[64];
    size_t n = strlen(forms[i]);
    snprintf(want, sizeof want, "%s%s", forms[i],
             forms[i][n - 1] == '.' ? "" : ".");
    CHECK_STR_EQ(an, want);
    free(an);
    ldns_pkt_free(p);
    free(r);
    free(q);
  }
  json_decref(names);
}

TEST(dns_other_types_empty_noerror) {
  json_t *names = names_fixture();
  ldns_rr_type types[] = {LDNS_RR_TYPE_AAAA, LDNS_RR_TYPE_MX, LDNS_RR_TYPE_TXT};
  for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
    size_t qlen = 0;
    uint8_t *q = make_query("web", types[i], 42, true, &qlen);
    CHECK(q);
    uint8_t *r = NULL;
    size_t rlen = 0;
    CHECK_INT_EQ(dns_answer(q, qlen, names, &r, &rlen), DNS_REPLY);
    ldns_pkt *p = parse(r, rlen);
    CHECK(p);
    CHECK_INT_EQ(ldns_pkt_get_rcode(p), LDNS_RCODE_NOERROR);
    CHECK_INT_EQ(ldns_pkt_ancount(p), 0);
    CHECK_INT_EQ(ldns_pkt_qdcount(p), 1);
    CHECK_INT_EQ(ldns_rr_get_type(ldns_rr_list_rr(ldns_pkt_question(p), 0)),
                 types[i]);
    CHECK(ldns_pkt_aa(p));
    CHECK_INT_EQ(ldns_pkt_id(p), 42);
    ldns_pkt_free(p);
    free(r);
    free(q);
  }
  /* A known name with no address: empty NOERROR, not forwarded. */
  size_t qlen = 0;
  uint8_t *q = make_query("empty", LDNS_RR_TYPE_A, 1, true, &qlen);
  uint8_t *r = NULL;
  size_t rlen = 0;
  CHECK_INT_EQ(dns_answer(q, qlen, names, &r, &rlen), DNS_REPLY);
  ldns_pkt *p = parse(r, rlen);
  CHECK(p);
  CHECK_INT_EQ(ldns_pkt_ancount(p), 0);
  ldns_pkt_free(p);
  free(r);
  free(q);
  json_decref(names);
}

TEST(dns_unknown_forwarded) {
  json_t *names = names_fixture();
  const char *unknown[] = {"example.com", "webx", "tasks.web.example", "."};
  for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++) {
    size_t qlen = 0;
    uint8_t *q = make_query(unknown[i], LDNS_RR_TYPE_A, 3, true, &qlen);
    CHECK(q);
    uint8_t *r = (uint8_t *)q; /* must be reset */
    size_t rlen = 99;
    CHECK_INT_EQ(dns_answer(q, qlen, names, &r, &rlen), DNS_FORWARD);
    CHECK(r == NULL);
    CHECK_INT_EQ(rlen, 0);
    free(q);
  }
  json_decref(names);
}

TEST(dns_formerr_notimp_drop) {
  json_t *names = names_fixture();
  size_t qlen = 0;
  uint8_t *q = make_query("web", LDNS_RR_TYPE_A, 0xbeef, true, &qlen);
  CHECK(q);
  uint8_t *r = NULL;
  size_t rlen = 0;

  /* Question cut short: FORMERR with the ID and RD. */
  CHECK_INT_EQ(dns_answer(q, qlen - 3, names, &r, &rlen), DNS_REPLY);
  ldns_pkt *p = parse(r, rlen);
  CHECK(p);
  CHECK_INT_EQ(ldns_pkt_get_rcode(p), LDNS_RCODE_FORMERR);
  CHECK_INT_EQ(ldns_pkt_id(p), 0xbeef);
  CHECK(ldns_pkt_qr(p));
  CHECK(ldns_pkt_rd(p));
  CHECK_INT_EQ(ldns_pkt_ancount(p), 0);
  ldns_pkt_free(p);
  free(r);

  /* Header only, QDCOUNT 0: FORMERR. */
  uint8_t hdr[12];
  memcpy(hdr, q, 12);
  hdr[4] = hdr[5] = 0;
  CHECK_INT_EQ(dns_answer(hdr, sizeof hdr, names, &r, &rlen), DNS_REPLY);
  p = parse(r, rlen);
  CHECK(p);
  CHECK_INT_EQ(ldns_pkt_get_rcode(p), LDNS_RCODE_FORMERR);
  ldns_pkt_free(p);
  free(r);

  /* Two questions: FORMERR. */
  ldns_pkt *two = NULL;
  CHECK(ldns_pkt_query_new_frm_str(&two, "web", LDNS_RR_TYPE_A,
                                   LDNS_RR_CLASS_IN,
                                   LDNS_RD) == LDNS_STATUS_OK);
  ldns_rr *extra = NULL;
  CHECK(ldns_rr_new_question_frm_str(&extra, "tasks.web. IN A", NULL, NULL) ==
        LDNS_STATUS_OK);
  ldns_pkt_push_rr(two, LDNS_SECTION_QUESTION, extra);
  uint8_t *w2 = NULL;
  size_t l2 = 0;
  CHECK(ldns_pkt2wire(&w2, two, &l2) == LDNS_STATUS_OK);
  ldns_pkt_free(two);
  CHECK_INT_EQ(dns_answer(w2, l2, names, &r, &rlen), DNS_REPLY);
  p = parse(r, rlen);
  CHECK(p);
  CHECK_INT_EQ(ldns_pkt_get_rcode(p), LDNS_RCODE_FORMERR);
  ldns_pkt_free(p);
  free(r);
  free(w2);

  /* Opcode STATUS (2): NOTIMP, opcode echoed. */
  uint8_t *st = malloc(qlen);
  memcpy(st, q, qlen);
  st[2] = (uint8_t)((st[2] & ~0x78) | (2 << 3));
  CHECK_INT_EQ(dns_answer(st, qlen, names, &r, &rlen), DNS_REPLY);
  p = parse(r, rlen);
  CHECK(p);
  CHECK_INT_EQ(ldns_pkt_get_rcode(p), LDNS_RCODE_NOTIMPL);
  CHECK_INT_EQ(ldns_pkt_get_opcode(p), LDNS_PACKET_STATUS);
  CHECK_INT_EQ(ldns_pkt_id(p), 0xbeef);
  ldns_pkt_free(p);
  free(r);

  /* A response (QR set) is dropped, as is anything shorter than a
   * header. */
  memcpy(st, q, qlen);
  st[2] |= 0x80;
  r = (uint8_t *)st;
  CHECK_INT_EQ(dns_answer(st, qlen, names, &r, &rlen), DNS_DROP);
  CHECK(r == NULL);
  CHECK_INT_EQ(dns_answer(q, 3, names, &r, &rlen), DNS_DROP);
  CHECK(r == NULL);
  CHECK_INT_EQ(dns_answer(q, 11, names, &r, &rlen), DNS_DROP);
  CHECK_INT_EQ(dns_answer(q, 0, names, &r, &rlen), DNS_DROP);
  free(st);
  free(q);
  json_decref(names);
}

TEST(dns_truncates_to_udp_size) {
  /* 100 addresses do not fit 512 bytes: fewer answers, TC set. */
  json_t *many = json_array();
  for (int i = 0; i < 100; i++) {
    char ip[32];
    snprintf(ip, sizeof ip, "10.0.2.%d", i + 1);
    json_array_append_new(many, json_string(ip));
  }
  json_t *names = json_pack("{s:o}", "tasks.big", many);
  size_t qlen = 0;
  uint8_t *q = make_query("tasks.big", LDNS_RR_TYPE_A, 5, true, &qlen);
  uint8_t *r = NULL;
  size_t rlen = 0;
  CHECK_INT_EQ(dns_answer(q, qlen, names, &r, &rlen), DNS_REPLY);
  CHECK(rlen <= 512);
  ldns_pkt *p = parse(r, rlen);
  CHECK(p);
  CHECK(ldns_pkt_tc(p));
  CHECK(ldns_pkt_ancount(p) > 20);
  CHECK(ldns_pkt_ancount(p) < 100);
  ldns_pkt_free(p);
  free(r);
  free(q);
  json_decref(names);
}

TEST(dns_servfail_echoes_query) {
  size_t qlen = 0;
  uint8_t *q =
      make_query("example.com", LDNS_RR_TYPE_AAAA, 0x4242, true, &qlen);
  CHECK(q);
  uint8_t *r = NULL;
  size_t rlen = 0;
  CHECK_INT_EQ(dns_servfail(q, qlen, &r, &rlen), 0);
  ldns_pkt *p = parse(r, rlen);
  CHECK(p);
  CHECK_INT_EQ(ldns_pkt_get_rcode(p), LDNS_RCODE_SERVFAIL);
  CHECK_INT_EQ(ldns_pkt_id(p), 0x4242);
  CHECK(ldns_pkt_qr(p));
  CHECK(ldns_pkt_rd(p));
  CHECK_INT_EQ(ldns_pkt_qdcount(p), 1);
  ldns_rr *qq = ldns_rr_list_rr(ldns_pkt_question(p), 0);
  char *qn = ldns_rdf2str(ldns_rr_owner(qq));
  CHECK_STR_EQ(qn, "example.com.");
  free(qn);
  CHECK_INT_EQ(ldns_rr_get_type(qq), LDNS_RR_TYPE_AAAA);
  CHECK_INT_EQ(ldns_pkt_ancount(p), 0);
  ldns_pkt_free(p);
  free(r);
  r = (uint8_t *)q;
  CHECK_INT_EQ(dns_servfail(q, 5, &r, &rlen), -1);
  CHECK(r == NULL);
  free(q);
}

TEST(dns_resolvers_parse_resolv_conf) {
  const char *conf = "# generated\n"
                     "search example.com\n"
                     "nameserver 127.0.0.53\n"
                     "nameserver 10.0.0.2\n"
                     "  nameserver\t192.168.1.1  \r\n"
                     "; nameserver 1.1.1.1\n"
                     "#nameserver 9.9.9.9\n"
                     "nameserver 2001:4860:4860::8888\n"
                     "nameserver fe80::1%eth0\n"
                     "nameserver 127.1.2.3\n"
                     "nameserver 8.8.8\n"
                     "nameserver 8.8.8.8x\n"
                     "nameservers 4.4.4.4\n"
                     "nameserver\n"
                     "options ndots:0\n"
                     "nameserver 8.8.4.4";
  json_t *ns = dns_resolvers(conf);
  CHECK(json_is_array(ns));
  char *s = jx_dumps(ns, JSON_COMPACT, NULL);
  CHECK_STR_EQ(s, "[\"10.0.0.2\",\"192.168.1.1\",\"8.8.4.4\"]");
  free(s);
  json_decref(ns);

  ns = dns_resolvers("");
  CHECK_INT_EQ(json_array_size(ns), 0);
  json_decref(ns);
  ns = dns_resolvers("nameserver 127.0.0.11\n");
  CHECK_INT_EQ(json_array_size(ns), 0);
  json_decref(ns);
}

TEST(dns_edns_query_gets_larger_reply) {
  /* With EDNS (4096 bytes) the 100 addresses fit: all of them, an OPT
   * record back, no TC. */
  json_t *many = json_array();
  for (int i = 0; i < 100; i++) {
    char ip[32];
    snprintf(ip, sizeof ip, "10.0.2.%d", i + 1);
    json_array_append_new(many, json_string(ip));
  }
  json_t *names = json_pack("{s:o}", "tasks.big", many);
  ldns_pkt *qp = NULL;
  CHECK(ldns_pkt_query_new_frm_str(&qp, "tasks.big", LDNS_RR_TYPE_A,
                                   LDNS_RR_CLASS_IN,
                                   LDNS_RD) == LDNS_STATUS_OK);
  ldns_pkt_set_edns_udp_size(qp, 4096);
  uint8_t *q = NULL;
  size_t qlen = 0;
  CHECK(ldns_pkt2wire(&q, qp, &qlen) == LDNS_STATUS_OK);
  ldns_pkt_free(qp);
  uint8_t *r = NULL;
  size_t rlen = 0;
  CHECK_INT_EQ(dns_answer(q, qlen, names, &r, &rlen), DNS_REPLY);
  CHECK(rlen > 512);
  ldns_pkt *p = parse(r, rlen);
  CHECK(p);
  CHECK(!ldns_pkt_tc(p));
  CHECK_INT_EQ(ldns_pkt_ancount(p), 100);
  CHECK(ldns_pkt_edns(p));
  CHECK(ldns_pkt_edns_udp_size(p) >= 512);
  ldns_pkt_free(p);
  free(r);
  free(q);
  json_decref(names);
}
