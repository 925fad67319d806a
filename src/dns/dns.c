/* The embedded DNS server's answers on libldns. Replies follow Docker's
 * resolver (miekg/dns underneath): the query's ID, opcode, RD and CD are
 * kept; QR and RA set; AA on answers for our own names; a UDP reply that
 * does not fit drops answers and sets TC. */
#include "dns/dns.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <ldns/ldns.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#define DNS_HDR_LEN 12
#define DNS_TTL 600        /* Docker's TTL for its own records */
#define DNS_UDP_MIN 512    /* RFC 1035 limit without EDNS */
#define DNS_EDNS_SIZE 4096 /* what we advertise when the client uses EDNS */

static void pkt_freep(ldns_pkt **p) {
  if (*p)
    ldns_pkt_free(*p);
}
#define cleanup_pkt __attribute__((cleanup(pkt_freep)))

/* A reply skeleton from the raw header bytes, so that error replies work
 * even when ldns cannot parse the rest of the query. */
static ldns_pkt *reply_from_header(const uint8_t *q, uint8_t rcode) {
  ldns_pkt *r = ldns_pkt_new();
  if (!r)
    abort();
  ldns_pkt_set_id(r, (uint16_t)(q[0] << 8 | q[1]));
  ldns_pkt_set_qr(r, true);
  ldns_pkt_set_opcode(r, (ldns_pkt_opcode)((q[2] >> 3) & 0x0f));
  ldns_pkt_set_rd(r, q[2] & 0x01);
  ldns_pkt_set_cd(r, q[3] & 0x10);
  ldns_pkt_set_ra(r, true);
  ldns_pkt_set_rcode(r, rcode);
  return r;
}

static int to_wire(const ldns_pkt *p, uint8_t **out, size_t *out_len) {
  uint8_t *w = NULL;
  size_t n = 0;
  if (ldns_pkt2wire(&w, p, &n) != LDNS_STATUS_OK || !w)
    return -1;
  *out = w;
  *out_len = n;
  return 0;
}

/* Header-only error reply: the question may be what is malformed, so it
 * is not echoed (miekg/dns does the same for rejected messages). */
static enum dns_verdict error_reply(const uint8_t *q, uint8_t rcode,
                                    uint8_t **reply, size_t *reply_len) {
  cleanup_pkt ldns_pkt *r = reply_from_header(q, rcode);
  if (to_wire(r, reply, reply_len) < 0)
    return DNS_DROP;
  return DNS_REPLY;
}

static void push_question(ldns_pkt *r, const ldns_pkt *query) {
  const ldns_rr_list *qs = ldns_pkt_question(query);
  for (size_t i = 0; i < ldns_rr_list_rr_count(qs); i++)
    ldns_pkt_push_rr(r, LDNS_SECTION_QUESTION,
                     ldns_rr_clone(ldns_rr_list_rr(qs, i)));
}

/* The query name in the form of the names object's keys: lowercase, no
 * trailing dot. NULL for the root. */
static char *lookup_key(const ldns_rdf *owner) {
  char *s = ldns_rdf2str(owner);
  if (!s)
    return NULL;
  size_t n = strlen(s);
  if (n > 0 && s[n - 1] == '.')
    s[--n] = '\0';
  for (size_t i = 0; i < n; i++)
    s[i] = (char)tolower((unsigned char)s[i]);
  if (n == 0) {
    free(s);
    return NULL;
  }
  return s;
}

/* A records for addrs in a random order; addresses that are not IPv4
 * are skipped. */
static ldns_rr_list *a_records(const ldns_rdf *owner, const json_t *addrs) {
  ldns_rr_list *list = ldns_rr_list_new();
  size_t n = json_array_size(addrs);
  if (n == 0)
    return list;
  cleanup_free size_t *order = xcalloc(n, sizeof *order);
  for (size_t i = 0; i < n; i++)
    order[i] = i;
  for (size_t i = n - 1; i > 0; i--) {
    size_t j = arc4random_uniform((uint32_t)i + 1);
    size_t t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  for (size_t i = 0; i < n; i++) {
    const char *ip = json_string_value(json_array_get(addrs, order[i]));
    struct in_addr a;
    if (!ip || inet_pton(AF_INET, ip, &a) != 1)
      continue;
    ldns_rdf *rd = ldns_rdf_new_frm_data(LDNS_RDF_TYPE_A, sizeof a, &a);
    ldns_rr *rr = ldns_rr_new();
    ldns_rr_set_owner(rr, ldns_rdf_clone(owner));
    ldns_rr_set_type(rr, LDNS_RR_TYPE_A);
    ldns_rr_set_class(rr, LDNS_RR_CLASS_IN);
    ldns_rr_set_ttl(rr, DNS_TTL);
    ldns_rr_push_rdf(rr, rd);
    ldns_rr_list_push_rr(list, rr);
  }
  return list;
}

/* The answer for one of our names, cut to limit bytes: answers are
 * dropped from the end and TC set, as Docker does for UDP. */
static enum dns_verdict answer_ours(const ldns_pkt *query, const ldns_rr *q,
                                    const json_t *addrs, uint8_t **reply,
                                    size_t *reply_len) {
  cleanup_pkt ldns_pkt *r = ldns_pkt_new();
  if (!r)
    abort();
  ldns_pkt_set_id(r, ldns_pkt_id(query));
  ldns_pkt_set_qr(r, true);
  ldns_pkt_set_opcode(r, LDNS_PACKET_QUERY);
  ldns_pkt_set_aa(r, true);
  ldns_pkt_set_rd(r, ldns_pkt_rd(query));
  ldns_pkt_set_cd(r, ldns_pkt_cd(query));
  ldns_pkt_set_ra(r, true);
  ldns_pkt_set_rcode(r, LDNS_RCODE_NOERROR);
  push_question(r, query);

  size_t limit = DNS_UDP_MIN;
  if (ldns_pkt_edns(query)) {
    ldns_pkt_set_edns_udp_size(r, DNS_EDNS_SIZE);
    if (ldns_pkt_edns_udp_size(query) > limit)
      limit = ldns_pkt_edns_udp_size(query);
  }

  ldns_rr_list *ans = NULL;
  if (ldns_rr_get_type(q) == LDNS_RR_TYPE_A &&
      ldns_rr_get_class(q) == LDNS_RR_CLASS_IN)
    ans = a_records(ldns_rr_owner(q), addrs);

  size_t keep = ans ? ldns_rr_list_rr_count(ans) : 0;
  for (;;) {
    /* ldns_pkt_set_answer does not free the previous list: the records
     * stay owned by ans until they are copied in. */
    ldns_rr_list *part = ldns_rr_list_new();
    for (size_t i = 0; i < keep; i++)
      ldns_rr_list_push_rr(part, ldns_rr_clone(ldns_rr_list_rr(ans, i)));
    ldns_rr_list_deep_free(ldns_pkt_answer(r));
    ldns_pkt_set_answer(r, part);
    ldns_pkt_set_ancount(r, (uint16_t)keep);
    uint8_t *w = NULL;
    size_t n = 0;
    if (to_wire(r, &w, &n) < 0) {
      ldns_rr_list_deep_free(ans);
      return DNS_DROP;
    }
    if (n <= limit || keep == 0) {
      ldns_rr_list_deep_free(ans);
      *reply = w;
      *reply_len = n;
      return DNS_REPLY;
    }
    free(w);
    /* Each compressed A record takes 16 bytes: jump close, then step. */
    size_t over = (n - limit + 15) / 16;
    keep = over < keep ? keep - over : 0;
    ldns_pkt_set_tc(r, true);
  }
}

enum dns_verdict dns_answer(const uint8_t *query, size_t len,
                            const json_t *names, uint8_t **reply,
                            size_t *reply_len) {
  *reply = NULL;
  *reply_len = 0;
  if (!query || len < DNS_HDR_LEN)
    return DNS_DROP;
  if (query[2] & 0x80) /* a response: answering it could loop */
    return DNS_DROP;
  if (((query[2] >> 3) & 0x0f) != LDNS_PACKET_QUERY)
    return error_reply(query, LDNS_RCODE_NOTIMPL, reply, reply_len);

  cleanup_pkt ldns_pkt *q = NULL;
  if (ldns_wire2pkt(&q, query, len) != LDNS_STATUS_OK || !q ||
      ldns_pkt_qdcount(q) != 1 ||
      ldns_rr_list_rr_count(ldns_pkt_question(q)) != 1)
    return error_reply(query, LDNS_RCODE_FORMERR, reply, reply_len);

  const ldns_rr *question = ldns_rr_list_rr(ldns_pkt_question(q), 0);
  cleanup_free char *key = lookup_key(ldns_rr_owner(question));
  const json_t *addrs = key ? json_object_get(names, key) : NULL;
  if (!addrs)
    return DNS_FORWARD;
  return answer_ours(q, question, addrs, reply, reply_len);
}

int dns_servfail(const uint8_t *query, size_t len, uint8_t **reply,
                 size_t *reply_len) {
  *reply = NULL;
  *reply_len = 0;
  if (!query || len < DNS_HDR_LEN)
    return -1;
  cleanup_pkt ldns_pkt *r = reply_from_header(query, LDNS_RCODE_SERVFAIL);
  cleanup_pkt ldns_pkt *q = NULL;
  if (ldns_wire2pkt(&q, query, len) == LDNS_STATUS_OK && q)
    push_question(r, q);
  return to_wire(r, reply, reply_len);
}

json_t *dns_resolvers(const char *resolv_conf) {
  json_t *out = json_array();
  if (!resolv_conf)
    return out;
  const char *p = resolv_conf;
  while (*p) {
    const char *end = strchr(p, '\n');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    cleanup_free char *line = xstrndup(p, n);
    p += n + (end ? 1 : 0);

    char *save = NULL;
    const char *kw = strtok_r(line, " \t\r", &save);
    if (!kw || strcmp(kw, "nameserver") != 0)
      continue; /* comments (# or ;), other options, junk */
    const char *addr = strtok_r(NULL, " \t\r", &save);
    struct in_addr a;
    if (!addr || inet_pton(AF_INET, addr, &a) != 1)
      continue; /* IPv6 (with or without a zone) or not an address */
    if ((ntohl(a.s_addr) >> 24) == 127)
      continue; /* the host's loopback is not reachable from a task */
    char buf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &a, buf, sizeof buf);
    json_array_append_new(out, json_string(buf));
  }
  return out;
}
