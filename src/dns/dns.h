/* The embedded DNS server's answers (Docker's 127.0.0.11 in every task on
 * a user network), pure: DNS messages in and out through libldns, no
 * sockets. The caller (the node's data plane) receives a query from a
 * task, asks dns_answer, and either sends the reply back or forwards the
 * query to the node's own resolvers and relays their reply.
 *
 * names: what the task may resolve, an object of lowercase names without
 * the trailing dot -> array of IPv4 strings, e.g.
 *   {"web": ["10.0.1.2"], "tasks.web": ["10.0.1.5", "10.0.1.6"],
 *    "web.1.abcd...": ["10.0.1.5"], "w1": ["10.0.1.2"]}
 * (service names give their VIP, or their tasks' addresses under dnsrr;
 * tasks.<service> every task's address; aliases and task names theirs).
 * Names are matched case-insensitively, with or without a trailing dot. */
#ifndef SHOAL_DNS_DNS_H
#define SHOAL_DNS_DNS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct sh_err;

enum dns_verdict {
  DNS_REPLY,   /* *reply holds the answer to send back */
  DNS_FORWARD, /* not one of ours: forward the query unchanged */
  DNS_DROP,    /* not a query one can answer (not even with an error) */
};

/* One query packet (wire format, UDP). For a name in names: type A gets
 * its addresses (TTL 600, Docker's; several addresses shuffled so clients
 * spread), AAAA and other types an empty NOERROR answer. A name not in
 * names: DNS_FORWARD. A malformed query with a readable header: a FORMERR
 * reply; unreadable: DNS_DROP. *reply is malloc'd.
 * Details: a response (QR set) or fewer than 12 bytes is DNS_DROP; an
 * opcode other than QUERY gets NOTIMP, QDCOUNT != 1 FORMERR; error replies
 * carry the header only (ID, opcode, RD, CD), as miekg/dns sends them.
 * Answers keep the query's spelling of the name, set AA and RA, and fit
 * 512 bytes (or the query's EDNS size, answered with an OPT record):
 * answers beyond that are dropped and TC set, as Docker does for UDP.
 * Names that map to no IPv4 addresses answer empty NOERROR. */
enum dns_verdict dns_answer(const uint8_t *query, size_t len,
                            const json_t *names, uint8_t **reply,
                            size_t *reply_len);

/* A SERVFAIL reply to query (when no resolver answered a forwarded
 * query). Returns 0, or -1 if query has no readable header. */
int dns_servfail(const uint8_t *query, size_t len, uint8_t **reply,
                 size_t *reply_len);

/* The name servers of a resolv.conf text (IPv4 only, loopback ones left
 * out as Docker does): a new array of strings. */
json_t *dns_resolvers(const char *resolv_conf);

#endif
