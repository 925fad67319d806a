/* libarchive, loaded on first use (see lazy.h): include this instead of
 * <archive.h> and <archive_entry.h>. */
#ifndef SHOAL_LAZY_ARCHIVE_H
#define SHOAL_LAZY_ARCHIVE_H

#include <archive.h>
#include <archive_entry.h>

#include "lazy/lazy.h"

#define LAZY_ARCHIVE_FNS(X)                                                    \
  X(archive_entry_copy_stat)                                                   \
  X(archive_entry_filetype)                                                    \
  X(archive_entry_free)                                                        \
  X(archive_entry_hardlink)                                                    \
  X(archive_entry_linkify)                                                     \
  X(archive_entry_linkresolver_free)                                           \
  X(archive_entry_linkresolver_new)                                            \
  X(archive_entry_linkresolver_set_strategy)                                   \
  X(archive_entry_new)                                                         \
  X(archive_entry_pathname)                                                    \
  X(archive_entry_rdev)                                                        \
  X(archive_entry_set_filetype)                                                \
  X(archive_entry_set_gid)                                                     \
  X(archive_entry_set_gname)                                                   \
  X(archive_entry_set_hardlink)                                                \
  X(archive_entry_set_mtime)                                                   \
  X(archive_entry_set_pathname)                                                \
  X(archive_entry_set_perm)                                                    \
  X(archive_entry_set_size)                                                    \
  X(archive_entry_set_symlink)                                                 \
  X(archive_entry_set_uid)                                                     \
  X(archive_entry_set_uname)                                                   \
  X(archive_entry_size)                                                        \
  X(archive_entry_sourcepath)                                                  \
  X(archive_entry_symlink)                                                     \
  X(archive_entry_xattr_add_entry)                                             \
  X(archive_entry_xattr_clear)                                                 \
  X(archive_entry_xattr_next)                                                  \
  X(archive_entry_xattr_reset)                                                 \
  X(archive_errno)                                                             \
  X(archive_error_string)                                                      \
  X(archive_format)                                                            \
  X(archive_read_data)                                                         \
  X(archive_read_data_block)                                                   \
  X(archive_read_data_into_fd)                                                 \
  X(archive_read_disk_descend)                                                 \
  X(archive_read_disk_new)                                                     \
  X(archive_read_disk_open)                                                    \
  X(archive_read_disk_set_behavior)                                            \
  X(archive_read_disk_set_symlink_physical)                                    \
  X(archive_read_free)                                                         \
  X(archive_read_new)                                                          \
  X(archive_read_next_header)                                                  \
  X(archive_read_next_header2)                                                 \
  X(archive_read_open2)                                                        \
  X(archive_read_open_fd)                                                      \
  X(archive_read_support_filter_all)                                           \
  X(archive_read_support_filter_bzip2)                                         \
  X(archive_read_support_filter_gzip)                                          \
  X(archive_read_support_filter_xz)                                            \
  X(archive_read_support_filter_zstd)                                          \
  X(archive_read_support_format_empty)                                         \
  X(archive_read_support_format_gnutar)                                        \
  X(archive_read_support_format_raw)                                           \
  X(archive_read_support_format_tar)                                           \
  X(archive_set_error)                                                         \
  X(archive_write_add_filter_gzip)                                             \
  X(archive_write_close)                                                       \
  X(archive_write_data)                                                        \
  X(archive_write_data_block)                                                  \
  X(archive_write_disk_new)                                                    \
  X(archive_write_disk_set_options)                                            \
  X(archive_write_finish_entry)                                                \
  X(archive_write_free)                                                        \
  X(archive_write_header)                                                      \
  X(archive_write_new)                                                         \
  X(archive_write_open)                                                        \
  X(archive_write_open_fd)                                                     \
  X(archive_write_set_bytes_in_last_block)                                     \
  X(archive_write_set_bytes_per_block)                                         \
  X(archive_write_set_format_pax_restricted)

struct lazy_archive_fns {
  LAZY_ARCHIVE_FNS(LAZY_SLOT)
};
extern struct lazy_archive_fns lazy_archive_fns;
extern struct lazy_lib lazy_archive_lib;

static inline const struct lazy_archive_fns *lazy_archive(void) {
  if (!lazy_ready(&lazy_archive_lib))
    lazy_missing(&lazy_archive_lib);
  return &lazy_archive_fns;
}

/* Constructors: NULL when libarchive.so.13 cannot be loaded. */
#define archive_entry_linkresolver_new()                                       \
  (lazy_ready(&lazy_archive_lib)                                               \
       ? lazy_archive_fns.archive_entry_linkresolver_new()                     \
       : NULL)
#define archive_entry_new()                                                    \
  (lazy_ready(&lazy_archive_lib) ? lazy_archive_fns.archive_entry_new() : NULL)
#define archive_read_disk_new()                                                \
  (lazy_ready(&lazy_archive_lib) ? lazy_archive_fns.archive_read_disk_new()    \
                                 : NULL)
#define archive_read_new()                                                     \
  (lazy_ready(&lazy_archive_lib) ? lazy_archive_fns.archive_read_new() : NULL)
#define archive_write_disk_new()                                               \
  (lazy_ready(&lazy_archive_lib) ? lazy_archive_fns.archive_write_disk_new()   \
                                 : NULL)
#define archive_write_new()                                                    \
  (lazy_ready(&lazy_archive_lib) ? lazy_archive_fns.archive_write_new() : NULL)

#define archive_entry_copy_stat(...)                                           \
  (lazy_archive()->archive_entry_copy_stat(__VA_ARGS__))
#define archive_entry_filetype(...)                                            \
  (lazy_archive()->archive_entry_filetype(__VA_ARGS__))
#define archive_entry_free(...)                                                \
  (lazy_archive()->archive_entry_free(__VA_ARGS__))
#define archive_entry_hardlink(...)                                            \
  (lazy_archive()->archive_entry_hardlink(__VA_ARGS__))
#define archive_entry_linkify(...)                                             \
  (lazy_archive()->archive_entry_linkify(__VA_ARGS__))
#define archive_entry_linkresolver_free(...)                                   \
  (lazy_archive()->archive_entry_linkresolver_free(__VA_ARGS__))
#define archive_entry_linkresolver_set_strategy(...)                           \
  (lazy_archive()->archive_entry_linkresolver_set_strategy(__VA_ARGS__))
#define archive_entry_pathname(...)                                            \
  (lazy_archive()->archive_entry_pathname(__VA_ARGS__))
#define archive_entry_rdev(...)                                                \
  (lazy_archive()->archive_entry_rdev(__VA_ARGS__))
#define archive_entry_set_filetype(...)                                        \
  (lazy_archive()->archive_entry_set_filetype(__VA_ARGS__))
#define archive_entry_set_gid(...)                                             \
  (lazy_archive()->archive_entry_set_gid(__VA_ARGS__))
#define archive_entry_set_gname(...)                                           \
  (lazy_archive()->archive_entry_set_gname(__VA_ARGS__))
#define archive_entry_set_hardlink(...)                                        \
  (lazy_archive()->archive_entry_set_hardlink(__VA_ARGS__))
#define archive_entry_set_mtime(...)                                           \
  (lazy_archive()->archive_entry_set_mtime(__VA_ARGS__))
#define archive_entry_set_pathname(...)                                        \
  (lazy_archive()->archive_entry_set_pathname(__VA_ARGS__))
#define archive_entry_set_perm(...)                                            \
  (lazy_archive()->archive_entry_set_perm(__VA_ARGS__))
#define archive_entry_set_size(...)                                            \
  (lazy_archive()->archive_entry_set_size(__VA_ARGS__))
#define archive_entry_set_symlink(...)                                         \
  (lazy_archive()->archive_entry_set_symlink(__VA_ARGS__))
#define archive_entry_set_uid(...)                                             \
  (lazy_archive()->archive_entry_set_uid(__VA_ARGS__))
#define archive_entry_set_uname(...)                                           \
  (lazy_archive()->archive_entry_set_uname(__VA_ARGS__))
#define archive_entry_size(...)                                                \
  (lazy_archive()->archive_entry_size(__VA_ARGS__))
#define archive_entry_sourcepath(...)                                          \
  (lazy_archive()->archive_entry_sourcepath(__VA_ARGS__))
#define archive_entry_symlink(...)                                             \
  (lazy_archive()->archive_entry_symlink(__VA_ARGS__))
#define archive_entry_xattr_add_entry(...)                                     \
  (lazy_archive()->archive_entry_xattr_add_entry(__VA_ARGS__))
#define archive_entry_xattr_clear(...)                                         \
  (lazy_archive()->archive_entry_xattr_clear(__VA_ARGS__))
#define archive_entry_xattr_next(...)                                          \
  (lazy_archive()->archive_entry_xattr_next(__VA_ARGS__))
#define archive_entry_xattr_reset(...)                                         \
  (lazy_archive()->archive_entry_xattr_reset(__VA_ARGS__))
#define archive_errno(...) (lazy_archive()->archive_errno(__VA_ARGS__))
#define archive_error_string(...)                                              \
  (lazy_archive()->archive_error_string(__VA_ARGS__))
#define archive_format(...) (lazy_archive()->archive_format(__VA_ARGS__))
#define archive_read_data(...) (lazy_archive()->archive_read_data(__VA_ARGS__))
#define archive_read_data_block(...)                                           \
  (lazy_archive()->archive_read_data_block(__VA_ARGS__))
#define archive_read_data_into_fd(...)                                         \
  (lazy_archive()->archive_read_data_into_fd(__VA_ARGS__))
#define archive_read_disk_descend(...)                                         \
  (lazy_archive()->archive_read_disk_descend(__VA_ARGS__))
#define archive_read_disk_open(...)                                            \
  (lazy_archive()->archive_read_disk_open(__VA_ARGS__))
#define archive_read_disk_set_behavior(...)                                    \
  (lazy_archive()->archive_read_disk_set_behavior(__VA_ARGS__))
#define archive_read_disk_set_symlink_physical(...)                            \
  (lazy_archive()->archive_read_disk_set_symlink_physical(__VA_ARGS__))
#define archive_read_free(...) (lazy_archive()->archive_read_free(__VA_ARGS__))
#define archive_read_next_header(...)                                          \
  (lazy_archive()->archive_read_next_header(__VA_ARGS__))
#define archive_read_next_header2(...)                                         \
  (lazy_archive()->archive_read_next_header2(__VA_ARGS__))
#define archive_read_open2(...)                                                \
  (lazy_archive()->archive_read_open2(__VA_ARGS__))
#define archive_read_open_fd(...)                                              \
  (lazy_archive()->archive_read_open_fd(__VA_ARGS__))
#define archive_read_support_filter_all(...)                                   \
  (lazy_archive()->archive_read_support_filter_all(__VA_ARGS__))
#define archive_read_support_filter_bzip2(...)                                 \
  (lazy_archive()->archive_read_support_filter_bzip2(__VA_ARGS__))
#define archive_read_support_filter_gzip(...)                                  \
  (lazy_archive()->archive_read_support_filter_gzip(__VA_ARGS__))
#define archive_read_support_filter_xz(...)                                    \
  (lazy_archive()->archive_read_support_filter_xz(__VA_ARGS__))
#define archive_read_support_filter_zstd(...)                                  \
  (lazy_archive()->archive_read_support_filter_zstd(__VA_ARGS__))
#define archive_read_support_format_empty(...)                                 \
  (lazy_archive()->archive_read_support_format_empty(__VA_ARGS__))
#define archive_read_support_format_gnutar(...)                                \
  (lazy_archive()->archive_read_support_format_gnutar(__VA_ARGS__))
#define archive_read_support_format_raw(...)                                   \
  (lazy_archive()->archive_read_support_format_raw(__VA_ARGS__))
#define archive_read_support_format_tar(...)                                   \
  (lazy_archive()->archive_read_support_format_tar(__VA_ARGS__))
#define archive_set_error(...) (lazy_archive()->archive_set_error(__VA_ARGS__))
#define archive_write_add_filter_gzip(...)                                     \
  (lazy_archive()->archive_write_add_filter_gzip(__VA_ARGS__))
#define archive_write_close(...)                                               \
  (lazy_archive()->archive_write_close(__VA_ARGS__))
#define archive_write_data(...)                                                \
  (lazy_archive()->archive_write_data(__VA_ARGS__))
#define archive_write_data_block(...)                                          \
  (lazy_archive()->archive_write_data_block(__VA_ARGS__))
#define archive_write_disk_set_options(...)                                    \
  (lazy_archive()->archive_write_disk_set_options(__VA_ARGS__))
#define archive_write_finish_entry(...)                                        \
  (lazy_archive()->archive_write_finish_entry(__VA_ARGS__))
#define archive_write_free(...)                                                \
  (lazy_archive()->archive_write_free(__VA_ARGS__))
#define archive_write_header(...)                                              \
  (lazy_archive()->archive_write_header(__VA_ARGS__))
#define archive_write_open(...)                                                \
  (lazy_archive()->archive_write_open(__VA_ARGS__))
#define archive_write_open_fd(...)                                             \
  (lazy_archive()->archive_write_open_fd(__VA_ARGS__))
#define archive_write_set_bytes_in_last_block(...)                             \
  (lazy_archive()->archive_write_set_bytes_in_last_block(__VA_ARGS__))
#define archive_write_set_bytes_per_block(...)                                 \
  (lazy_archive()->archive_write_set_bytes_per_block(__VA_ARGS__))
#define archive_write_set_format_pax_restricted(...)                           \
  (lazy_archive()->archive_write_set_format_pax_restricted(__VA_ARGS__))

#endif
