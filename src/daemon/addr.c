/* Address selection for swarm init/join, following dockerd's rules and
 * messages (daemon/cluster/listen_addr.go). */
#include "core/err.h"
#include "core/util.h"
#include "daemon/daemon.h"
#include "netdev/netdev.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

struct sysaddr {
  unsigned ifindex;
  char ifname[IF_NAMESIZE + 1];
  char ip[INET6_ADDRSTRLEN];
  bool v4;
  bool device; /* no link kind: a physical NIC, not veth/bridge/vxlan */
  bool ours;   /* a bridge the daemon made for its networks */
};

static bool global_unicast4(const struct in_addr *a) {
  uint32_t h = ntohl(a->s_addr);
  if (h == 0 || (h >> 24) == 127 || (h >> 16) == 0xa9fe || (h >> 28) == 0xe ||
      h == 0xffffffff)
    return false;
  return true;
}

static bool global_unicast6(const struct in6_addr *a) {
  if (IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_LINKLOCAL(a) ||
      IN6_IS_ADDR_MULTICAST(a) || IN6_IS_ADDR_UNSPECIFIED(a))
    return false;
  return true;
}

static int cmp_sysaddr(const void *a, const void *b) {
  const struct sysaddr *x = a, *y = b;
  return x->ifindex < y->ifindex ? -1 : x->ifindex > y->ifindex;
}

/* Global unicast addresses of up, non-loopback interfaces, in interface
 * index order (Go's net.Interfaces order). */
static size_t list_addrs(struct sysaddr *out, size_t max) {
  struct ifaddrs *ifa = NULL;
  if (getifaddrs(&ifa) < 0)
    return 0;
  size_t n = 0;
  for (struct ifaddrs *p = ifa; p && n < max; p = p->ifa_next) {
    if (!p->ifa_addr || !(p->ifa_flags & IFF_UP) ||
        (p->ifa_flags & IFF_LOOPBACK))
      continue;
    struct sysaddr s = {0};
    s.ifindex = if_nametoindex(p->ifa_name);
    snprintf(s.ifname, sizeof s.ifname, "%s", p->ifa_name);
    if (p->ifa_addr->sa_family == AF_INET) {
      struct in_addr *a = &((struct sockaddr_in *)p->ifa_addr)->sin_addr;
      if (!global_unicast4(a))
        continue;
      inet_ntop(AF_INET, a, s.ip, sizeof s.ip);
      s.v4 = true;
    } else if (p->ifa_addr->sa_family == AF_INET6) {
      struct in6_addr *a = &((struct sockaddr_in6 *)p->ifa_addr)->sin6_addr;
      if (!global_unicast6(a))
        continue;
      inet_ntop(AF_INET6, a, s.ip, sizeof s.ip);
    } else {
      continue;
    }
    out[n++] = s;
  }
  freeifaddrs(ifa);
  struct netdev *nd = NULL;
  sh_err kerr = {0};
  if (n > 0 && netdev_open(-1, &nd, &kerr) == 0) {
    for (size_t i = 0; i < n; i++) {
      char kind[32];
      out[i].device =
          netdev_kind(nd, out[i].ifname, kind, sizeof kind, &kerr) == 0 &&
          kind[0] == 0;
    }
    netdev_close(nd);
  }
  sh_err_clear(&kerr);
  for (size_t i = 0; i < n; i++)
    out[i].ours = strcmp(out[i].ifname, "docker0") == 0 ||
                  strcmp(out[i].ifname, "docker_gwbridge") == 0 ||
                  strncmp(out[i].ifname, "br-", 3) == 0;
  qsort(out, n, sizeof *out, cmp_sysaddr);
  return n;
}

static int multiple(sh_err *err, const char *ia, const char *ib, const char *a,
                    const char *b) {
  if (strcmp(ia, ib) == 0)
    return sh_error(err, 400,
                    "could not choose an IP address to advertise since this "
                    "system has multiple addresses on interface %s (%s and "
                    "%s)",
                    ia, a, b);
  return sh_error(err, 400,
                  "could not choose an IP address to advertise since this "
                  "system has multiple addresses on different interfaces (%s "
                  "on %s and %s on %s)",
                  a, ia, b, ib);
}

/* The only address among addrs that keep() accepts, or Docker's error;
 * *seen: some address was accepted. */
static int only_addr(struct sysaddr *addrs, size_t cnt,
                     bool (*keep)(const struct sysaddr *), const char **ip,
                     bool *seen, sh_err *err) {
  const char *sys_ip = NULL, *sys_if = NULL;
  size_t w = 0;
  for (size_t i = 0; i < cnt; i++)
    if (keep(&addrs[i]))
      addrs[w++] = addrs[i];
  cnt = w;
  *seen = cnt > 0;
  for (size_t i = 0; i < cnt;) {
    /* One interface at a time: at most one v4 and one v6 each. */
    size_t j = i;
    const char *a4 = NULL, *a6 = NULL;
    for (; j < cnt && addrs[j].ifindex == addrs[i].ifindex; j++) {
      const char **slot = addrs[j].v4 ? &a4 : &a6;
      if (*slot)
        return multiple(err, addrs[j].ifname, addrs[j].ifname, *slot,
                        addrs[j].ip);
      *slot = addrs[j].ip;
    }
    const char *pick = a4 ? a4 : a6;
    if (pick) {
      if (sys_ip)
        return multiple(err, sys_if, addrs[i].ifname, sys_ip, pick);
      sys_ip = pick;
      sys_if = addrs[i].ifname;
    }
    i = j;
  }
  *ip = sys_ip;
  return 0;
}

static bool is_device(const struct sysaddr *a) {
  return a->device;
}
static bool not_ours(const struct sysaddr *a) {
  return !a->ours;
}

/* The system's only address, or Docker's error. As dockerd: first among
 * physical devices only (docker0 and the like never count); with none,
 * as inside a container whose eth0 is a veth, among all interfaces but
 * the daemon's own bridges (dockerd skips its networks' subnets). */
static int system_addr(char *out, size_t n, sh_err *err) {
  struct sysaddr addrs[64], copy[64];
  size_t cnt = list_addrs(addrs, ARRAY_SIZE(addrs));
  memcpy(copy, addrs, cnt * sizeof *addrs);
  const char *ip = NULL;
  bool seen = false;
  if (only_addr(copy, cnt, is_device, &ip, &seen, err) < 0)
    return -1;
  if (!ip && !seen && only_addr(addrs, cnt, not_ours, &ip, &seen, err) < 0)
    return -1;
  if (!ip)
    return sh_error(err, 400, "could not find the system's IP address");
  snprintf(out, n, "%s", ip);
  return 0;
}

/* An IP literal or an interface name (its single address). */
static int resolve_ip_or_iface(const char *in, bool unspecified_ok, char *out,
                               size_t n, const char *bad_msg, sh_err *err) {
  struct in_addr a4;
  struct in6_addr a6;
  if (inet_pton(AF_INET, in, &a4) == 1) {
    if (!unspecified_ok && a4.s_addr == 0)
      return sh_error(err, 400, "%s", bad_msg);
    snprintf(out, n, "%s", in);
    return 0;
  }
  if (inet_pton(AF_INET6, in, &a6) == 1) {
    if (!unspecified_ok && IN6_IS_ADDR_UNSPECIFIED(&a6))
      return sh_error(err, 400, "%s", bad_msg);
    snprintf(out, n, "%s", in);
    return 0;
  }
  if (if_nametoindex(in) == 0)
    return sh_error(err, 400, "%s", bad_msg);
  struct sysaddr addrs[64];
  size_t cnt = list_addrs(addrs, ARRAY_SIZE(addrs));
  const char *v4 = NULL, *v6 = NULL;
  for (size_t i = 0; i < cnt; i++) {
    if (strcmp(addrs[i].ifname, in) != 0)
      continue;
    const char **slot = addrs[i].v4 ? &v4 : &v6;
    if (*slot)
      return sh_error(err, 400,
                      "interface %s has more than one IPv%d address (%s and "
                      "%s)",
                      in, addrs[i].v4 ? 4 : 6, *slot, addrs[i].ip);
    *slot = addrs[i].ip;
  }
  if (!v4 && !v6)
    return sh_error(err, 400, "interface %s has no usable IPv4 or IPv6 address",
                    in);
  snprintf(out, n, "%s", v4 ? v4 : v6);
  return 0;
}

int shoald_pick_advertise_ip(const char *advertise, const char *listen_ip,
                             char *out, size_t n, sh_err *err) {
  (void)listen_ip;
  if (advertise && *advertise)
    return resolve_ip_or_iface(
        advertise, false, out, n,
        "advertise address must be a non-zero IP address or network "
        "interface (with optional port number)",
        err);
  return system_addr(out, n, err);
}

int shoald_resolve_listen(const char *listen, char *ip, size_t n, sh_err *err) {
  return resolve_ip_or_iface(
      listen, true, ip, n,
      "listen address must be an IP address or network interface (with "
      "optional port number)",
      err);
}
