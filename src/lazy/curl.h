/* libcurl, loaded on first use (see lazy.h): include this instead of
 * <curl/curl.h>. curl_global_init runs at load, curl_global_cleanup
 * before an unload (shoald's, when idle); the lazy calls
 * give up curl's compile-time option type checks (typecheck-gcc.h). */
#ifndef SHOAL_LAZY_CURL_H
#define SHOAL_LAZY_CURL_H

#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>

#include "lazy/lazy.h"

#define LAZY_CURL_FNS(X)                                                       \
  X(curl_easy_cleanup)                                                         \
  X(curl_easy_escape)                                                          \
  X(curl_easy_getinfo)                                                         \
  X(curl_easy_init)                                                            \
  X(curl_easy_perform)                                                         \
  X(curl_easy_setopt)                                                          \
  X(curl_easy_strerror)                                                        \
  X(curl_free)                                                                 \
  X(curl_global_cleanup)                                                       \
  X(curl_global_init)                                                          \
  X(curl_slist_append)                                                         \
  X(curl_slist_free_all)

LAZY_DECLARE(curl, LAZY_CURL_FNS)

/* Constructors: NULL when libcurl.so.4 cannot be loaded. */
#define curl_easy_init() LAZY_NEW(curl, curl_easy_init)
#define curl_slist_append(list, s) LAZY_NEW(curl, curl_slist_append, list, s)

#define curl_easy_cleanup(...) LAZY_CALL(curl, curl_easy_cleanup, __VA_ARGS__)
#define curl_easy_escape(...) LAZY_CALL(curl, curl_easy_escape, __VA_ARGS__)
#undef curl_easy_getinfo /* curl.h's own pass-through macro */
#define curl_easy_getinfo(...) LAZY_CALL(curl, curl_easy_getinfo, __VA_ARGS__)
#define curl_easy_perform(...) LAZY_CALL(curl, curl_easy_perform, __VA_ARGS__)
#undef curl_easy_setopt /* curl.h's own pass-through macro */
#define curl_easy_setopt(...) LAZY_CALL(curl, curl_easy_setopt, __VA_ARGS__)
#define curl_easy_strerror(...) LAZY_CALL(curl, curl_easy_strerror, __VA_ARGS__)
#define curl_free(...) LAZY_CALL(curl, curl_free, __VA_ARGS__)
#define curl_slist_free_all(...)                                               \
  LAZY_CALL(curl, curl_slist_free_all, __VA_ARGS__)

#endif
