/* libFuzzer target over the embedded DNS server's codec (dns/): raw bytes
 * as a query from a task, answered from a small table of names, as a
 * query to refuse with SERVFAIL, and as a resolv.conf. Nothing may crash,
 * leak or read out of bounds; replies must be well-formed enough for
 * libldns to read back. */
#include "dns/dns.h"

#include <ldns/ldns.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static json_t *names;
  if (!names)
    names = json_pack("{s:[s,s], s:[s], s:[]}", "web", "10.0.1.2", "10.0.1.3",
                      "tasks.web", "10.0.1.5", "empty");
  uint8_t *reply = NULL;
  size_t rlen = 0;
  if (dns_answer(data, size, names, &reply, &rlen) == DNS_REPLY) {
    ldns_pkt *p = NULL;
    if (ldns_wire2pkt(&p, reply, rlen) != LDNS_STATUS_OK)
      abort(); /* our own reply must parse */
    ldns_pkt_free(p);
  }
  free(reply);
  reply = NULL;
  if (dns_servfail(data, size, &reply, &rlen) == 0)
    free(reply);
  char *text = malloc(size + 1);
  memcpy(text, data, size);
  text[size] = '\0';
  json_decref(dns_resolvers(text));
  free(text);
  return 0;
}
