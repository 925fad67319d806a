/* Endpoints of features that land in later work answer as an empty engine
 * would, so the stock CLI works against shoald today: no containers, no
 * services or tasks yet, the local networks. */
#include "api/api.h"

#include "core/err.h"
#include "core/util.h"
#include "daemon/daemon.h"
#include "http/server.h"

bool api_stubs(struct api_call *c) {
  if (strcmp(c->req->method, "GET") != 0)
    return false;
  const char *p = c->path;
  if (strcmp(p, "/containers/json") == 0 || strcmp(p, "/images/json") == 0 ||
      strcmp(p, "/volumes") == 0) {
    if (strcmp(p, "/volumes") == 0)
      http_respond_json(c->req, 200, "{\"Volumes\":[],\"Warnings\":[]}");
    else
      http_respond_json(c->req, 200, "[]");
    return true;
  }
  if (strcmp(p, "/services") == 0 || strcmp(p, "/tasks") == 0) {
    sh_err err = {0};
    if (shoald_require_manager(c->d, &err) < 0)
      api_reply_err(c->req, &err);
    else
      http_respond_json(c->req, 200, "[]");
    return true;
  }
  return false;
}
