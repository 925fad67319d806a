/* GET /events: the node's events (events/events.h) as dockerd streams
 * them: the kept ones from ?since, then each new one as it happens, until
 * ?until or the client goes; one JSON object per line. */
#include "api/api.h"

#include "api/filters.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/util.h"
#include "daemon/daemon.h"
#include "events/events.h"
#include "http/server.h"

#include <uv.h>

/* A reader that lets this much pile up is cut off (moby's publisher
 * drops a subscriber that does not keep up). */
#define EVENTS_QUEUE_MAX (4u << 20)

static const char *const event_filters[] = {
    "config", "container", "daemon", "event",  "image",
    "label",  "network",   "node",   "plugin", "scope",
    "secret", "service",   "type",   "volume", NULL};

struct watcher {
  struct shoald *d;
  struct http_req *req;
  struct filters f;
  int sub;
  int64_t until_ns;
  uv_timer_t timer;
  bool ended;
};

/* filters.FuzzyMatch: absent, or a value equal to or a prefix of s. */
static bool fuzzy(const struct filters *f, const char *name, const char *s) {
  return filters_match_prefix(f, name, s);
}

static const char *strip_tag(const char *ref, char *buf, size_t n) {
  snprintf(buf, n, "%s", ref);
  char *at = strchr(buf, '@');
  if (at)
    *at = '\0';
  char *colon = strrchr(buf, ':');
  if (colon && !strchr(colon, '/'))
    *colon = '\0';
  return buf;
}

/* moby's events.Filter.Include. */
static bool include(const struct filters *f, const json_t *ev) {
  const char *type = jx_str(ev, "Type", "");
  const char *action = jx_str(ev, "Action", "");
  const char *id = jx_str(ev, "Actor.ID", "");
  const json_t *attrs = jx_get(ev, "Actor.Attributes");
  const char *name = jx_str(attrs, "name", "");
  if (!filters_match(f, "event", action) || !filters_match(f, "type", type) ||
      !filters_match(f, "scope", jx_str(ev, "scope", "")))
    return false;
  static const char *const kinds[] = {"daemon", "container", "plugin",
                                      "volume", "network",   "service",
                                      "node",   "secret",    "config"};
  for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
    if (!filters_has(f, kinds[i]))
      continue;
    /* A filter on a kind keeps only that kind's events, matching the
     * actor's ID or name. */
    if (strcmp(type, kinds[i]) != 0 ||
        (!fuzzy(f, kinds[i], id) && !fuzzy(f, kinds[i], name)))
      return false;
  }
  if (filters_has(f, "image")) {
    const char *img =
        jx_str(attrs, strcmp(type, "image") == 0 ? "name" : "image", "");
    char a[512], b[512];
    if (!filters_match(f, "image", id) && !filters_match(f, "image", img) &&
        !filters_match(f, "image", strip_tag(id, a, sizeof a)) &&
        !filters_match(f, "image", strip_tag(img, b, sizeof b)))
      return false;
  }
  return filters_match_labels(f, "label", attrs);
}

static void send_event(struct watcher *w, const json_t *ev) {
  if (w->ended || !include(&w->f, ev))
    return;
  cleanup_free char *line = jx_dump(ev);
  size_t len = strlen(line);
  line = xrealloc(line, len + 2);
  line[len] = '\n';
  line[len + 1] = '\0';
  if (http_stream_write(w->req, line, len + 1) < 0 ||
      http_req_queued(w->req) > EVENTS_QUEUE_MAX) {
    if (!w->ended)
      log_warn("events: a reader fell %u bytes behind; ending its stream",
               EVENTS_QUEUE_MAX);
    w->ended = true;
  }
}

static void timer_closed(uv_handle_t *h) {
  struct watcher *w = h->data;
  filters_free(&w->f);
  free(w);
}

/* Ends the stream (end: answer the last chunk; else the peer is gone). */
static void finish(struct watcher *w, bool end) {
  if (w->sub)
    events_unsubscribe(w->d->events, w->sub);
  w->sub = 0;
  w->req->on_close = NULL;
  if (end)
    http_stream_end(w->req);
  else
    http_req_release(w->req);
  uv_close((uv_handle_t *)&w->timer, timer_closed);
}

static void on_event(const json_t *ev, void *ud) {
  struct watcher *w = ud;
  send_event(w, ev);
  if (w->ended)
    finish(w, true);
}

static void on_gone(struct http_req *req, void *ud) {
  finish(ud, false);
}

static void on_until(uv_timer_t *t) {
  finish(t->data, true);
}

/* Seconds with an optional fraction, as the CLI sends them
 * (timetypes.ParseTimestamps); 0 when absent. */
static int parse_time(struct http_req *req, const char *name, int64_t *out,
                      sh_err *err) {
  cleanup_free char *v = http_req_query(req, name);
  *out = 0;
  if (!v || !*v)
    return 0;
  char *end = NULL;
  long long sec = strtoll(v, &end, 10);
  int64_t frac = 0;
  if (*end == '.') {
    const char *p = end + 1;
    int digits = 0;
    for (; *p >= '0' && *p <= '9'; p++, digits++)
      if (digits < 9)
        frac = frac * 10 + (*p - '0');
    for (; digits < 9; digits++)
      frac *= 10;
    end = (char *)p;
  }
  if (end == v || *end)
    return sh_error(err, 400, "failed to parse value as time or duration: %s",
                    v);
  *out = (int64_t)sec * NS_PER_SEC + frac;
  return 0;
}

static void events_get(struct api_call *c) {
  sh_err err = {0};
  int64_t since, until;
  struct filters f = {0};
  cleanup_free char *raw = http_req_query(c->req, "filters");
  if (parse_time(c->req, "since", &since, &err) < 0 ||
      parse_time(c->req, "until", &until, &err) < 0 ||
      filters_parse(raw, event_filters, &f, &err) < 0)
    return api_reply_err(c->req, &err);
  int64_t now = clock_wall_ns();
  struct watcher *w = xcalloc(1, sizeof *w);
  w->d = c->d;
  w->req = c->req;
  w->f = f;
  w->until_ns = until;
  uv_timer_init(c->d->loop, &w->timer);
  w->timer.data = w;
  http_stream_begin(c->req, 200, "application/json", NULL);
  /* Kept events only with a since (dockerd: none replayed otherwise). */
  if (since || until) {
    cleanup_json json_t *past = events_history(c->d->events, since, until);
    size_t i;
    json_t *ev;
    json_array_foreach(past, i, ev) send_event(w, ev);
  }
  if (w->ended || (until && until <= now))
    return finish(w, true);
  w->sub = events_subscribe(c->d->events, on_event, w);
  c->req->on_close = on_gone;
  c->req->on_close_ud = w;
  if (until)
    uv_timer_start(&w->timer, on_until, (uint64_t)((until - now) / NS_PER_MS),
                   0);
}

bool api_events(struct api_call *c) {
  if (strcmp(c->path, "/events") != 0)
    return false;
  if (strcmp(c->req->method, "GET") != 0) {
    http_respond_error(c->req, 405, "method not allowed");
    return true;
  }
  events_get(c);
  return true;
}
