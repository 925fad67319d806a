#include "test.h"

#include "core/err.h"
#include "lazy/archive.h"
#include "lazy/curl.h"
#include "lazy/lazy.h"
#include "lazy/nftables.h"

static const char *resolve_none(void *h) {
  (void)h;
  return NULL;
}

/* A library that is not installed: the request fails with its name, every
 * time, and nothing aborts. */
TEST(lazy_missing_library_is_a_500_naming_it) {
  struct lazy_lib lib = {.soname = "libshoal-absent.so.0",
                         .resolve = resolve_none};
  sh_err err = {0};
  CHECK(lazy_hold(&lib, &err) == NULL);
  CHECK_INT_EQ(err.status, 500);
  CHECK(strstr(err.msg, "libshoal-absent.so.0") != NULL);
  sh_err again = {0};
  CHECK(lazy_hold(&lib, &again) == NULL);
  CHECK_INT_EQ(again.status, 500);
  CHECK_INT_EQ(lib.users, 0);
}

/* The SONAMEs the package's Depends install, with every symbol shoald
 * calls: a table that does not fill would fail requests at run time. */
TEST(lazy_libraries_load_by_soname) {
  sh_err err = {0};
  cleanup_lazy struct lazy_lib *c = lazy_hold(&lazy_curl_lib, &err);
  cleanup_lazy struct lazy_lib *a1 = lazy_hold(&lazy_archive_lib, &err);
  cleanup_lazy struct lazy_lib *n = lazy_hold(&lazy_nftables_lib, &err);
  CHECK(c && a1 && n);
  struct archive *a = archive_read_new();
  CHECK(a != NULL);
  CHECK_INT_EQ(archive_read_free(a), ARCHIVE_OK);
  char *e = curl_easy_escape(NULL, "a b", 0);
  CHECK_STR_EQ(e, "a%20b");
  curl_free(e);
}

/* An idle daemon gives a library back once no one holds it, never while
 * someone does, and the next use loads it again. (This binary links
 * libarchive itself, so dlclose leaves it mapped here; the integration
 * tests look at shoald's maps.) */
TEST(lazy_library_unloads_only_when_idle) {
  sh_err err = {0};
  struct lazy_lib *h = lazy_hold(&lazy_archive_lib, &err);
  CHECK(h != NULL);
  struct lazy_lib *h2 = lazy_hold(&lazy_archive_lib, &err);
  CHECK(h2 != NULL);
  lazy_release(h2);
  CHECK_INT_EQ(lazy_unload_idle(0), 0); /* one user left */
  CHECK(lazy_archive_lib.ok && lazy_archive_lib.handle);
  lazy_release(h);
  CHECK_INT_EQ(lazy_unload_idle(60000), 0); /* released just now */
  CHECK(lazy_archive_lib.ok && lazy_archive_lib.handle);
  CHECK(lazy_unload_idle(0) >= 1);
  CHECK(!lazy_archive_lib.ok && !lazy_archive_lib.handle);
  /* loaded again, and it works */
  cleanup_lazy struct lazy_lib *again = lazy_hold(&lazy_archive_lib, &err);
  CHECK(again != NULL);
  CHECK(lazy_archive_lib.ok && lazy_archive_lib.handle);
  struct archive *a = archive_read_new();
  CHECK(a != NULL);
  CHECK_INT_EQ(archive_read_free(a), ARCHIVE_OK);
}
