/* Replays fuzz corpus files through the fuzz target without libFuzzer (the
 * ASan build in `make test`): every file is one test; a crash fails the
 * run. Prints "N passed, 0 failed". */
#include "core/err.h"
#include "core/util.h"

#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
  cleanup_free char *data = NULL;
  size_t len = 0;
  if (read_file(path, &data, &len, NULL) < 0)
    return -1;
  LLVMFuzzerTestOneInput((const uint8_t *)data, len);
  return 0;
}

int main(int argc, char **argv) {
  int passed = 0, failed = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) < 0)
      continue;
    if (!S_ISDIR(st.st_mode)) {
      if (run_file(argv[i]) == 0)
        passed++;
      else
        failed++;
      continue;
    }
    DIR *dir = opendir(argv[i]);
    struct dirent *e;
    while (dir && (e = readdir(dir))) {
      if (e->d_name[0] == '.')
        continue;
      cleanup_free char *p = xasprintf("%s/%s", argv[i], e->d_name);
      if (run_file(p) == 0)
        passed++;
      else
        failed++;
    }
    if (dir)
      closedir(dir);
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
