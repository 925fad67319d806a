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
  CHECK_INT_EQ(lazy_need(&lib, &err), -1);
  CHECK_INT_EQ(err.status, 500);
  CHECK(strstr(err.msg, "libshoal-absent.so.0") != NULL);
  sh_err again = {0};
  CHECK_INT_EQ(lazy_need(&lib, &again), -1);
  CHECK_INT_EQ(again.status, 500);
}

/* The SONAMEs the package's Depends install, with every symbol shoald
 * calls: a table that does not fill would fail requests at run time. */
TEST(lazy_libraries_load_by_soname) {
  sh_err err = {0};
  CHECK_INT_EQ(lazy_need(&lazy_curl_lib, &err), 0);
  CHECK_INT_EQ(lazy_need(&lazy_archive_lib, &err), 0);
  CHECK_INT_EQ(lazy_need(&lazy_nftables_lib, &err), 0);
  struct archive *a = archive_read_new();
  CHECK(a != NULL);
  CHECK_INT_EQ(archive_read_free(a), ARCHIVE_OK);
  char *e = curl_easy_escape(NULL, "a b", 0);
  CHECK_STR_EQ(e, "a%20b");
  curl_free(e);
}
