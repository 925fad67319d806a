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
  if (strcmp(p, "/volumes") == 0) {
    http_respond_json(c->req, 200, "{\"Volumes\":[],\"Warnings\":[]}");
    return true;
  }
  return false;
}
