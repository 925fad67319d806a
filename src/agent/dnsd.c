/* The tasks' embedded DNS on the loop (see dnsd.h). */
#include "agent/dnsd.h"

#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/util.h"
#include "dns/dns.h"

#include <arpa/inet.h>
#include <string.h>
#include <unistd.h>

#define MAX_MSG 4096
/* A resolver that has not answered by then gets the task a SERVFAIL. */
#define FORWARD_TIMEOUT_MS 3000

struct dtask {
  struct dnsd *d;
  char *id;
  uv_udp_t udp;
  json_t *nets;
  json_t *resolvers; /* the task's --dns, NULL: the node's */
  struct dtask *next;
};

/* A query forwarded to a resolver under an ID of ours. */
struct fwd {
  struct dnsd *d;
  uint16_t id, orig_id;
  struct dtask *task; /* NULL once the task went */
  struct sockaddr_in client;
  uint8_t *query;
  size_t len;
  uv_timer_t timer;
  struct fwd *next;
};

struct dnsd {
  uv_loop_t *loop;
  json_t *names;
  json_t *resolvers;
  struct dtask *tasks;
  uv_udp_t up; /* to the resolvers, in the node's namespace */
  bool up_open;
  struct fwd *fwds;
  uint16_t next_id;
  int handles; /* open handles, for dnsd_free */
  bool stopping;
};

static void maybe_free(struct dnsd *d) {
  if (d->stopping && d->handles == 0) {
    json_decref(d->names);
    json_decref(d->resolvers);
    free(d);
  }
}

static void handle_closed(uv_handle_t *h) {
  struct dnsd *d = h->data;
  d->handles--;
  maybe_free(d);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  static _Thread_local char slab[MAX_MSG];
  buf->base = slab; /* each datagram is handled before the next read */
  buf->len = sizeof slab;
}

struct send_req {
  uv_udp_send_t req;
  uint8_t *data;
};

static void sent(uv_udp_send_t *req, int status) {
  struct send_req *s = (struct send_req *)req;
  free(s->data);
  free(s);
}

/* Sends data (taken) to addr through udp. */
static void send_to(uv_udp_t *udp, const struct sockaddr *addr, uint8_t *data,
                    size_t len) {
  struct send_req *s = xcalloc(1, sizeof *s);
  s->data = data;
  uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
  if (uv_udp_send(&s->req, udp, &b, 1, addr, sent) < 0) {
    free(data);
    free(s);
  }
}

/* ---- forwarding ---- */

static void fwd_closed(uv_handle_t *h) {
  struct fwd *f = h->data;
  struct dnsd *d = f->d;
  free(f->query);
  free(f);
  d->handles--;
  maybe_free(d);
}

static void fwd_end(struct fwd *f) {
  struct dnsd *d = f->d;
  for (struct fwd **pp = &d->fwds; *pp; pp = &(*pp)->next) {
    if (*pp == f) {
      *pp = f->next;
      break;
    }
  }
  uv_close((uv_handle_t *)&f->timer, fwd_closed);
}

static void fwd_timeout(uv_timer_t *t) {
  struct fwd *f = t->data;
  uint8_t *reply = NULL;
  size_t rlen = 0;
  if (f->task && dns_servfail(f->query, f->len, &reply, &rlen) == 0)
    send_to(&f->task->udp, (struct sockaddr *)&f->client, reply, rlen);
  fwd_end(f);
}

static void up_recv(uv_udp_t *udp, ssize_t n, const uv_buf_t *buf,
                    const struct sockaddr *addr, unsigned flags) {
  struct dnsd *d = udp->data;
  if (n < 12 || !addr)
    return;
  uint16_t id =
      (uint16_t)(((uint8_t)buf->base[0] << 8) | (uint8_t)buf->base[1]);
  for (struct fwd *f = d->fwds; f; f = f->next) {
    if (f->id != id)
      continue;
    if (f->task) {
      uint8_t *copy = xmalloc((size_t)n);
      memcpy(copy, buf->base, (size_t)n);
      copy[0] = (uint8_t)(f->orig_id >> 8);
      copy[1] = (uint8_t)f->orig_id;
      send_to(&f->task->udp, (struct sockaddr *)&f->client, copy, (size_t)n);
    }
    uv_timer_stop(&f->timer);
    fwd_end(f);
    return;
  }
}

static int open_upstream(struct dnsd *d) {
  if (d->up_open)
    return 0;
  struct sockaddr_in any = {.sin_family = AF_INET};
  if (uv_udp_init(d->loop, &d->up) < 0)
    return -1;
  d->up.data = d;
  d->handles++;
  d->up_open = true;
  if (uv_udp_bind(&d->up, (struct sockaddr *)&any, 0) < 0 ||
      uv_udp_recv_start(&d->up, alloc_cb, up_recv) < 0)
    return -1;
  return 0;
}

static void forward(struct dtask *t, const struct sockaddr *client,
                    const uint8_t *q, size_t len) {
  struct dnsd *d = t->d;
  const json_t *list =
      json_array_size(t->resolvers) ? t->resolvers : d->resolvers;
  const char *rs = json_string_value(json_array_get(list, 0));
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(53)};
  uint8_t *reply = NULL;
  size_t rlen = 0;
  if (!rs || inet_pton(AF_INET, rs, &to.sin_addr) != 1 ||
      open_upstream(d) < 0) {
    /* No resolver to ask: the name is not known. */
    if (dns_servfail(q, len, &reply, &rlen) == 0)
      send_to(&t->udp, client, reply, rlen);
    return;
  }
  struct fwd *f = xcalloc(1, sizeof *f);
  f->d = d;
  f->task = t;
  f->id = d->next_id++;
  f->orig_id = (uint16_t)((q[0] << 8) | q[1]);
  memcpy(&f->client, client, sizeof f->client);
  f->query = xmalloc(len);
  memcpy(f->query, q, len);
  f->len = len;
  uv_timer_init(d->loop, &f->timer);
  f->timer.data = f;
  d->handles++;
  uv_timer_start(&f->timer, fwd_timeout, FORWARD_TIMEOUT_MS, 0);
  f->next = d->fwds;
  d->fwds = f;
  uint8_t *out = xmalloc(len);
  memcpy(out, q, len);
  out[0] = (uint8_t)(f->id >> 8);
  out[1] = (uint8_t)f->id;
  send_to(&d->up, (struct sockaddr *)&to, out, len);
}

/* ---- tasks ---- */

/* The names of every network of the task, merged. */
static json_t *names_for(struct dtask *t) {
  json_t *out = json_object();
  size_t i;
  json_t *net;
  json_array_foreach(t->nets, i, net) {
    const char *name;
    json_t *ips;
    json_object_foreach(json_object_get(t->d->names, json_string_value(net)),
                        name, ips) {
      json_t *have = json_object_get(out, name);
      if (have)
        json_array_extend(have, ips);
      else
        json_object_set_new(out, name, json_deep_copy(ips));
    }
  }
  return out;
}

static void task_recv(uv_udp_t *udp, ssize_t n, const uv_buf_t *buf,
                      const struct sockaddr *addr, unsigned flags) {
  struct dtask *t = udp->data;
  if (n <= 0 || !addr || addr->sa_family != AF_INET)
    return;
  cleanup_json json_t *names = names_for(t);
  uint8_t *reply = NULL;
  size_t rlen = 0;
  switch (
      dns_answer((const uint8_t *)buf->base, (size_t)n, names, &reply, &rlen)) {
  case DNS_REPLY:
    send_to(udp, addr, reply, rlen);
    break;
  case DNS_FORWARD:
    forward(t, addr, (const uint8_t *)buf->base, (size_t)n);
    break;
  case DNS_DROP:
    break;
  }
}

static void task_closed(uv_handle_t *h) {
  struct dtask *t = h->data;
  struct dnsd *d = t->d;
  json_decref(t->nets);
  json_decref(t->resolvers);
  free(t->id);
  free(t);
  d->handles--;
  maybe_free(d);
}

static void task_close(struct dtask *t) {
  for (struct fwd *f = t->d->fwds; f; f = f->next)
    if (f->task == t)
      f->task = NULL;
  t->udp.data = t;
  uv_close((uv_handle_t *)&t->udp, task_closed);
}

struct dnsd *dnsd_new(uv_loop_t *loop) {
  struct dnsd *d = xcalloc(1, sizeof *d);
  d->loop = loop;
  d->names = json_object();
  d->resolvers = json_array();
  d->next_id = (uint16_t)(getpid() * 7919u);
  return d;
}

void dnsd_set_names(struct dnsd *d, const json_t *names) {
  json_decref(d->names);
  d->names = json_is_object(names) ? json_deep_copy(names) : json_object();
}

void dnsd_set_resolvers(struct dnsd *d, const json_t *resolvers) {
  json_decref(d->resolvers);
  d->resolvers =
      json_is_array(resolvers) ? json_deep_copy(resolvers) : json_array();
}

bool dnsd_set_nets(struct dnsd *d, const char *task_id, const json_t *nets) {
  for (struct dtask *t = d->tasks; t; t = t->next) {
    if (strcmp(t->id, task_id) == 0) {
      json_decref(t->nets);
      t->nets = json_is_array(nets) ? json_deep_copy(nets) : json_array();
      return true;
    }
  }
  return false;
}

int dnsd_add(struct dnsd *d, const char *task_id, int fd, const json_t *nets,
             sh_err *err) {
  dnsd_remove(d, task_id);
  struct dtask *t = xcalloc(1, sizeof *t);
  t->d = d;
  t->id = xstrdup(task_id);
  t->nets = json_is_array(nets) ? json_deep_copy(nets) : json_array();
  int rc = uv_udp_init(d->loop, &t->udp);
  if (rc < 0) {
    close(fd);
    json_decref(t->nets);
    free(t->id);
    free(t);
    return sh_error(err, 500, "dns: %s", uv_strerror(rc));
  }
  t->udp.data = t;
  d->handles++;
  t->next = d->tasks;
  d->tasks = t;
  if ((rc = uv_udp_open(&t->udp, fd)) < 0 ||
      (rc = uv_udp_recv_start(&t->udp, alloc_cb, task_recv)) < 0) {
    /* The handle owns fd once uv_udp_open took it; before, we do. */
    if (uv_fileno((uv_handle_t *)&t->udp, &(uv_os_fd_t){0}) < 0)
      close(fd);
    dnsd_remove(d, task_id);
    return sh_error(err, 500, "dns: %s", uv_strerror(rc));
  }
  return 0;
}

void dnsd_remove(struct dnsd *d, const char *task_id) {
  for (struct dtask **pp = &d->tasks; *pp; pp = &(*pp)->next) {
    if (strcmp((*pp)->id, task_id) == 0) {
      struct dtask *t = *pp;
      *pp = t->next;
      task_close(t);
      return;
    }
  }
}

void dnsd_set_task_resolvers(struct dnsd *d, const char *task_id,
                             const json_t *resolvers) {
  for (struct dtask *t = d->tasks; t; t = t->next) {
    if (strcmp(t->id, task_id) == 0) {
      json_decref(t->resolvers);
      t->resolvers =
          json_array_size(resolvers) ? json_deep_copy(resolvers) : NULL;
      return;
    }
  }
}

void dnsd_free(struct dnsd *d) {
  if (!d)
    return;
  d->stopping = true;
  while (d->tasks) {
    struct dtask *t = d->tasks;
    d->tasks = t->next;
    task_close(t);
  }
  while (d->fwds) {
    uv_timer_stop(&d->fwds->timer);
    fwd_end(d->fwds);
  }
  if (d->up_open)
    uv_close((uv_handle_t *)&d->up, handle_closed);
  maybe_free(d);
}
