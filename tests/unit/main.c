/* Runs every registered test in a forked child; prints one line per test
 * and a closing "N passed, M failed, K skipped". An argument filters tests
 * by substring of their name. */
#include "test.h"

#include "image/image.h"

#include <stdbool.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define TEST_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_LSAN 1
#endif
#endif
#ifdef TEST_LSAN
#include <sanitizer/lsan_interface.h>
#endif

/* The child's exit code for a skip (automake's). */
#define EXIT_SKIP 77

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

/* The forked child: runs one test and exits with its verdict. _exit, not
 * exit: the parent's atexit handlers and stdio buffers are not the
 * child's to run. Under ASan the leak check runs first (it ends the
 * process with LeakSanitizer's exit code when something leaked), since
 * _exit would skip the one LSan runs at exit. */
static void run_child(const struct test *t) {
  int f = TEST_PASSED;
  t->fn(&f);
  fflush(stdout);
  fflush(stderr);
#ifdef TEST_LSAN
  if (f != TEST_SKIPPED)
    __lsan_do_leak_check();
#endif
  _exit(f == TEST_FAILED ? 1 : f == TEST_SKIPPED ? EXIT_SKIP : 0);
}

int main(int argc, char **argv) {
  /* Layers unpack in this binary re-executed (image/layer.c). */
  int child = image_child_main(argc, argv);
  if (child >= 0)
    return child;
  int passed = 0, failed = 0, skipped = 0;
  for (int i = 0; i < ntests; i++) {
    if (argc > 1 && !strstr(tests[i].name, argv[1]))
      continue;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0)
      run_child(&tests[i]);
    int st = 0;
    waitpid(pid, &st, 0);
    bool exited = WIFEXITED(st);
    bool skip = exited && WEXITSTATUS(st) == EXIT_SKIP;
    bool ok = exited && WEXITSTATUS(st) == 0;
    printf("%s %s (%s)\n",
           skip ? "skip"
           : ok ? "ok  "
                : "FAIL",
           tests[i].name, tests[i].file);
    if (skip)
      skipped++;
    else if (ok)
      passed++;
    else
      failed++;
  }
  printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  return failed ? 1 : 0;
}
