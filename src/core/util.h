/* Small helpers every module uses: cleanup attributes, checked allocation,
 * ownership transfer. */
#ifndef SHOAL_CORE_UTIL_H
#define SHOAL_CORE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static inline void sh_freep(void *p) {
  free(*(void **)p);
}
static inline void sh_fclosep(FILE **f) {
  if (*f)
    fclose(*f);
}
static inline void sh_closep(int *fd) {
  if (*fd >= 0)
    close(*fd);
}
#define cleanup_free __attribute__((cleanup(sh_freep)))
#define cleanup_file __attribute__((cleanup(sh_fclosep)))
#define cleanup_fd __attribute__((cleanup(sh_closep)))

/* Hand ownership of *pp to the caller: returns it and NULLs the source. */
#define STEAL_POINTER(pp)                                                      \
  ({                                                                           \
    __typeof__(*(pp)) steal_tmp_ = *(pp);                                      \
    *(pp) = NULL;                                                              \
    steal_tmp_;                                                                \
  })

/* Allocation failure is not recoverable in a daemon: abort loudly. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

bool str_has_prefix(const char *s, const char *prefix);
bool str_has_suffix(const char *s, const char *suffix);

/* Growable byte buffer, always NUL-terminated. */
typedef struct sh_buf {
  char *data;
  size_t len, cap;
} sh_buf;
void buf_append(sh_buf *b, const void *data, size_t n);
void buf_printf(sh_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void buf_reset(sh_buf *b);
void buf_free(sh_buf *b);
static inline void sh_buf_freep(sh_buf *b) {
  buf_free(b);
}
#define cleanup_buf __attribute__((cleanup(sh_buf_freep)))

/* Whole-file helpers; write_file_atomic writes to a temp file, fsyncs and
 * renames so a crash never leaves a half-written file. */
struct sh_err;
int read_file(const char *path, char **out, size_t *len, struct sh_err *err);
int write_file_atomic(const char *path, const void *data, size_t len, int mode,
                      struct sh_err *err);
/* The same without the fsync: readers never see a partial file and a
 * crash of the process loses nothing, but a crash of the machine may. For
 * state that a reboot makes moot anyway. */
int write_file_replace(const char *path, const void *data, size_t len, int mode,
                       struct sh_err *err);
int mkdir_p(const char *path, int mode, struct sh_err *err);

/* The sizes of the regular files under dir, links not followed (what
 * dockerd reports as a volume's or layer's size); 0 for NULL or "". */
long long util_tree_size(const char *dir);
/* Whether dir is a directory with nothing in it (false if unreadable). */
bool util_dir_empty(const char *dir);

#endif
