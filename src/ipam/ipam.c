/* IPv4 prefixes, subnet carving and per-subnet address sets. */
#include "ipam/ipam.h"

#include "core/err.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint32_t ipam_mask(unsigned len) {
  return len == 0 ? 0 : len >= 32 ? UINT32_MAX : ~(UINT32_MAX >> len);
}

uint64_t ipam_size(struct ipam_prefix p) {
  return UINT64_C(1) << (32 - p.len);
}

bool ipam_contains(struct ipam_prefix p, uint32_t ip) {
  return (ip & ipam_mask(p.len)) == p.addr;
}

bool ipam_overlaps(struct ipam_prefix a, struct ipam_prefix b) {
  unsigned len = a.len < b.len ? a.len : b.len;
  return ((a.addr ^ b.addr) & ipam_mask(len)) == 0;
}

/* Go's ParseIP for dotted quads: 1-3 decimal digits per part, no leading
 * zero unless the part is "0", each <= 255. */
static bool parse_quad(const char *s, size_t n, uint32_t *out) {
  uint32_t ip = 0;
  size_t i = 0;
  for (int part = 0; part < 4; part++) {
    if (part > 0) {
      if (i >= n || s[i] != '.')
        return false;
      i++;
    }
    size_t start = i;
    unsigned v = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9' && i - start < 3)
      v = v * 10 + (unsigned)(s[i++] - '0');
    size_t digits = i - start;
    if (digits == 0 || v > 255 || (digits > 1 && s[start] == '0'))
      return false;
    ip = ip << 8 | v;
  }
  if (i != n)
    return false;
  *out = ip;
  return true;
}

int ipam_parse_ip(const char *s, uint32_t *out, sh_err *err) {
  if (!s || !parse_quad(s, strlen(s), out))
    return sh_error(err, 400, "invalid IP address: %s", s ? s : "");
  return 0;
}

int ipam_parse_cidr(const char *s, struct ipam_prefix *out, uint32_t *host,
                    sh_err *err) {
  const char *slash = s ? strchr(s, '/') : NULL;
  uint32_t ip;
  if (!slash || !parse_quad(s, (size_t)(slash - s), &ip))
    return sh_error(err, 400, "invalid CIDR address: %s", s ? s : "");
  const char *l = slash + 1;
  size_t nl = strlen(l);
  unsigned len = 0;
  bool ok = nl >= 1 && nl <= 2 && !(nl == 2 && l[0] == '0');
  for (size_t i = 0; ok && i < nl; i++) {
    ok = l[i] >= '0' && l[i] <= '9';
    len = len * 10 + (unsigned)(l[i] - '0');
  }
  if (!ok || len > 32)
    return sh_error(err, 400, "invalid CIDR address: %s", s);
  out->len = len;
  out->addr = ip & ipam_mask(len);
  if (host)
    *host = ip;
  return 0;
}

char *ipam_ip_str(uint32_t ip, char *buf) {
  sprintf(buf, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255,
          ip & 255);
  return buf;
}

char *ipam_prefix_str(struct ipam_prefix p, char *buf) {
  ipam_ip_str(p.addr, buf);
  sprintf(buf + strlen(buf), "/%u", p.len);
  return buf;
}

int ipam_carve(const struct ipam_prefix *pools, size_t npools, unsigned len,
               const struct ipam_prefix *used, size_t nused,
               struct ipam_prefix *out, sh_err *err) {
  for (size_t p = 0; p < npools && len <= 32; p++) {
    if (pools[p].len > len)
      continue;
    uint64_t step = UINT64_C(1) << (32 - len);
    uint64_t end = (uint64_t)pools[p].addr + ipam_size(pools[p]);
    for (uint64_t a = pools[p].addr; a < end;) {
      struct ipam_prefix c = {(uint32_t)a, len};
      const struct ipam_prefix *hit = NULL;
      for (size_t u = 0; u < nused && !hit; u++)
        if (ipam_overlaps(c, used[u]))
          hit = &used[u];
      if (!hit) {
        *out = c;
        return 0;
      }
      /* Skip past whichever is larger, the candidate or what it hit. */
      uint64_t skip_to =
          hit->len < len ? (uint64_t)hit->addr + ipam_size(*hit) : a + step;
      a = skip_to > a + step ? skip_to : a + step;
    }
  }
  return sh_error(err, 400,
                  "could not find an available, non-overlapping IPv4 address "
                  "pool among the defaults to assign to the network");
}

struct ipam_set {
  uint32_t first; /* first address of the range */
  uint64_t n;     /* addresses in the range */
  uint64_t next;  /* where the next search starts (offset) */
  size_t nfree;
  uint64_t *bits;    /* 1 = taken */
  uint32_t fixed[3]; /* network, broadcast, gateway: never released */
};

static bool bit_get(const struct ipam_set *s, uint64_t i) {
  return s->bits[i / 64] >> (i % 64) & 1;
}

static void bit_set(struct ipam_set *s, uint64_t i, bool v) {
  if (v)
    s->bits[i / 64] |= UINT64_C(1) << (i % 64);
  else
    s->bits[i / 64] &= ~(UINT64_C(1) << (i % 64));
}

static void take_fixed(struct ipam_set *s, uint32_t ip) {
  if (ip >= s->first && ip - s->first < s->n && !bit_get(s, ip - s->first)) {
    bit_set(s, ip - s->first, true);
    s->nfree--;
  }
}

int ipam_set_new(struct ipam_prefix subnet, const struct ipam_prefix *range,
                 uint32_t gateway, struct ipam_set **out, sh_err *err) {
  char b1[20], b2[20];
  if (subnet.len < 8)
    return sh_error(err, 400, "subnet %s is too large (at most a /8)",
                    ipam_prefix_str(subnet, b1));
  struct ipam_prefix r = range ? *range : subnet;
  if (r.len < subnet.len || !ipam_contains(subnet, r.addr))
    return sh_error(err, 400, "ip range %s is not within subnet %s",
                    ipam_prefix_str(r, b1), ipam_prefix_str(subnet, b2));
  struct ipam_set *s = xcalloc(1, sizeof *s);
  s->first = r.addr;
  s->n = ipam_size(r);
  s->nfree = (size_t)s->n;
  s->bits = xcalloc((size_t)((s->n + 63) / 64), sizeof *s->bits);
  /* /31 and /32 have no network or broadcast address to keep back. */
  if (subnet.len <= 30) {
    s->fixed[0] = subnet.addr;
    s->fixed[1] = subnet.addr + (uint32_t)(ipam_size(subnet) - 1);
  }
  s->fixed[2] = gateway;
  for (size_t i = 0; i < ARRAY_SIZE(s->fixed); i++)
    if (s->fixed[i])
      take_fixed(s, s->fixed[i]);
  *out = s;
  return 0;
}

void ipam_set_free(struct ipam_set *s) {
  if (!s)
    return;
  free(s->bits);
  free(s);
}

int ipam_set_reserve(struct ipam_set *s, uint32_t ip, sh_err *err) {
  char b[20];
  if (ip < s->first || ip - s->first >= s->n)
    return sh_error(err, 400, "address %s is outside the pool",
                    ipam_ip_str(ip, b));
  if (bit_get(s, ip - s->first))
    return sh_error(err, 409, "address %s is already in use",
                    ipam_ip_str(ip, b));
  bit_set(s, ip - s->first, true);
  s->nfree--;
  return 0;
}

int ipam_set_alloc(struct ipam_set *s, uint32_t *ip, sh_err *err) {
  if (s->nfree == 0)
    return sh_error(err, 400, "no available IPv4 addresses");
  for (uint64_t k = 0; k < s->n; k++) {
    uint64_t i = (s->next + k) % s->n;
    if (i % 64 == 0 && s->bits[i / 64] == UINT64_MAX && k + 63 < s->n) {
      k += 63; /* a full word: skip it */
      continue;
    }
    if (!bit_get(s, i)) {
      bit_set(s, i, true);
      s->nfree--;
      s->next = (i + 1) % s->n;
      *ip = s->first + (uint32_t)i;
      return 0;
    }
  }
  return sh_error(err, 400, "no available IPv4 addresses");
}

void ipam_set_release(struct ipam_set *s, uint32_t ip) {
  for (size_t i = 0; i < ARRAY_SIZE(s->fixed); i++)
    if (s->fixed[i] && s->fixed[i] == ip)
      return;
  if (ip >= s->first && ip - s->first < s->n && bit_get(s, ip - s->first)) {
    bit_set(s, ip - s->first, false);
    s->nfree++;
  }
}

size_t ipam_set_free_count(const struct ipam_set *s) {
  return s->nfree;
}

char *ipam_cidr_addr(const char *cidr, char *buf) {
  uint32_t ip;
  struct ipam_prefix pre;
  buf[0] = '\0';
  if (cidr && (ipam_parse_cidr(cidr, &pre, &ip, NULL) == 0 ||
               ipam_parse_ip(cidr, &ip, NULL) == 0))
    ipam_ip_str(ip, buf);
  return buf;
}
