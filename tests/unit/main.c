/* Runs every registered test in a forked child; prints one line per test
 * and a closing "N passed, M failed". An argument filters tests by
 * substring of their name. */
#include "test.h"

#include <stdbool.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

struct test {
  const char *name, *file;
  test_fn fn;
};
static struct test tests[1024];
static int ntests;

void test_register(const char *name, const char *file, test_fn fn) {
  if (ntests < (int)(sizeof tests / sizeof tests[0]))
    tests[ntests++] = (struct test){name, file, fn};
}

int main(int argc, char **argv) {
  int passed = 0, failed = 0;
  for (int i = 0; i < ntests; i++) {
    if (argc > 1 && !strstr(tests[i].name, argv[1]))
      continue;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
      int f = 0;
      tests[i].fn(&f);
      fflush(stderr);
      _exit(f ? 1 : 0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    printf("%s %s (%s)\n", ok ? "ok  " : "FAIL", tests[i].name, tests[i].file);
    if (ok)
      passed++;
    else
      failed++;
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
