/* exec/cmd.c's pure parts: detach keys as moby/term reads them, the scan
 * of a terminal's input for them, Docker's frame header. */
#include "test.h"

#include "core/err.h"
#include "exec/caps.h"
#include "exec/exec.h"

#include <stdlib.h>

static size_t keys(const char *spec, unsigned char *k, int *status) {
  size_t n = 0;
  sh_err err = {0};
  *status = exec_detach_keys_parse(spec, k, &n, &err) < 0 ? err.status : 0;
  return n;
}

TEST(exec_detach_keys_parse_as_moby) {
  unsigned char k[EXEC_DETACH_KEYS_MAX];
  int st;
  CHECK_INT_EQ(keys(NULL, k, &st), 2);
  CHECK(st == 0 && k[0] == 16 && k[1] == 17); /* ctrl-p ctrl-q */
  CHECK_INT_EQ(keys("ctrl-a,x,ctrl-@,ctrl-[,ctrl-_", k, &st), 5);
  CHECK(st == 0 && k[0] == 1 && k[1] == 'x' && k[2] == 0 && k[3] == 27 &&
        k[4] == 31);
  CHECK_INT_EQ(keys("CTRL-Z", k, &st), 1);
  CHECK(st == 0 && k[0] == 26);
  sh_err err = {0};
  size_t n;
  CHECK(exec_detach_keys_parse("ctrl-1", k, &n, &err) < 0);
  CHECK_INT_EQ(err.status, 400);
  CHECK_STR_EQ(err.msg, "Invalid escape keys (ctrl-1) provided");
  keys("ab", k, &st);
  CHECK_INT_EQ(st, 400);
  keys(",", k, &st);
  CHECK_INT_EQ(st, 400);
  keys("a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a", k, &st);
  CHECK_INT_EQ(st, 400);
}

TEST(exec_detach_scan_across_reads) {
  struct exec_detach d = {.keys = {16, 17}, .n = 2};
  unsigned char out[64];
  size_t olen;
  /* Plain input passes. */
  CHECK_INT_EQ(
      exec_detach_scan(&d, (const unsigned char *)"ls\n", 3, out, &olen), 3);
  CHECK(olen == 3 && memcmp(out, "ls\n", 3) == 0 && !d.detached);
  /* ctrl-p then something else: both go to the process. */
  const unsigned char a[] = {'a', 16};
  exec_detach_scan(&d, a, 2, out, &olen);
  CHECK(olen == 1 && out[0] == 'a' && d.matched == 1);
  const unsigned char b[] = {'b'};
  exec_detach_scan(&d, b, 1, out, &olen);
  CHECK(olen == 2 && out[0] == 16 && out[1] == 'b' && !d.detached);
  /* The sequence split over two reads detaches; what follows is not used. */
  const unsigned char c[] = {'x', 16};
  exec_detach_scan(&d, c, 2, out, &olen);
  CHECK(olen == 1 && out[0] == 'x');
  const unsigned char e[] = {17, 'y', 'z'};
  CHECK_INT_EQ(exec_detach_scan(&d, e, 3, out, &olen), 1);
  CHECK(olen == 0 && d.detached);
  /* ctrl-p ctrl-p ctrl-q: the first ctrl-p is the process's. */
  struct exec_detach d2 = {.keys = {16, 17}, .n = 2};
  const unsigned char g[] = {16, 16, 17};
  CHECK_INT_EQ(exec_detach_scan(&d2, g, 3, out, &olen), 3);
  CHECK(olen == 1 && out[0] == 16 && d2.detached);
}

TEST(exec_frame_header_is_dockers) {
  unsigned char h[8];
  exec_frame_header(h, 2, 0x01020304);
  const unsigned char want[] = {2, 0, 0, 0, 1, 2, 3, 4};
  CHECK(memcmp(h, want, 8) == 0);
  exec_frame_header(h, 1, 5);
  CHECK(h[0] == 1 && h[7] == 5 && h[4] == 0);
}

/* --privileged gives what this process can give: its bounding set. */
TEST(exec_caps_held_is_the_bounding_set) {
  FILE *f = fopen("/proc/self/status", "r");
  CHECK(f);
  char line[256];
  unsigned long long bnd = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "CapBnd: %llx", &bnd) == 1)
      break;
  fclose(f);
  const char **held = exec_caps_held();
  size_t n = 0;
  while (held[n])
    n++;
  free(held);
  CHECK_INT_EQ(n, __builtin_popcountll(bnd));
}
