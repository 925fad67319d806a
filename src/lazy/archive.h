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

LAZY_DECLARE(archive, LAZY_ARCHIVE_FNS)

/* Constructors: NULL when libarchive.so.13 cannot be loaded. */
#define archive_entry_linkresolver_new()                                       \
  LAZY_NEW(archive, archive_entry_linkresolver_new)
#define archive_entry_new() LAZY_NEW(archive, archive_entry_new)
#define archive_read_disk_new() LAZY_NEW(archive, archive_read_disk_new)
#define archive_read_new() LAZY_NEW(archive, archive_read_new)
#define archive_write_disk_new() LAZY_NEW(archive, archive_write_disk_new)
#define archive_write_new() LAZY_NEW(archive, archive_write_new)

#define archive_entry_copy_stat(...)                                           \
  LAZY_CALL(archive, archive_entry_copy_stat, __VA_ARGS__)
#define archive_entry_filetype(...)                                            \
  LAZY_CALL(archive, archive_entry_filetype, __VA_ARGS__)
#define archive_entry_free(...)                                                \
  LAZY_CALL(archive, archive_entry_free, __VA_ARGS__)
#define archive_entry_hardlink(...)                                            \
  LAZY_CALL(archive, archive_entry_hardlink, __VA_ARGS__)
#define archive_entry_linkify(...)                                             \
  LAZY_CALL(archive, archive_entry_linkify, __VA_ARGS__)
#define archive_entry_linkresolver_free(...)                                   \
  LAZY_CALL(archive, archive_entry_linkresolver_free, __VA_ARGS__)
#define archive_entry_linkresolver_set_strategy(...)                           \
  LAZY_CALL(archive, archive_entry_linkresolver_set_strategy, __VA_ARGS__)
#define archive_entry_pathname(...)                                            \
  LAZY_CALL(archive, archive_entry_pathname, __VA_ARGS__)
#define archive_entry_rdev(...)                                                \
  LAZY_CALL(archive, archive_entry_rdev, __VA_ARGS__)
#define archive_entry_set_filetype(...)                                        \
  LAZY_CALL(archive, archive_entry_set_filetype, __VA_ARGS__)
#define archive_entry_set_gid(...)                                             \
  LAZY_CALL(archive, archive_entry_set_gid, __VA_ARGS__)
#define archive_entry_set_gname(...)                                           \
  LAZY_CALL(archive, archive_entry_set_gname, __VA_ARGS__)
#define archive_entry_set_hardlink(...)                                        \
  LAZY_CALL(archive, archive_entry_set_hardlink, __VA_ARGS__)
#define archive_entry_set_mtime(...)                                           \
  LAZY_CALL(archive, archive_entry_set_mtime, __VA_ARGS__)
#define archive_entry_set_pathname(...)                                        \
  LAZY_CALL(archive, archive_entry_set_pathname, __VA_ARGS__)
#define archive_entry_set_perm(...)                                            \
  LAZY_CALL(archive, archive_entry_set_perm, __VA_ARGS__)
#define archive_entry_set_size(...)                                            \
  LAZY_CALL(archive, archive_entry_set_size, __VA_ARGS__)
#define archive_entry_set_symlink(...)                                         \
  LAZY_CALL(archive, archive_entry_set_symlink, __VA_ARGS__)
#define archive_entry_set_uid(...)                                             \
  LAZY_CALL(archive, archive_entry_set_uid, __VA_ARGS__)
#define archive_entry_set_uname(...)                                           \
  LAZY_CALL(archive, archive_entry_set_uname, __VA_ARGS__)
#define archive_entry_size(...)                                                \
  LAZY_CALL(archive, archive_entry_size, __VA_ARGS__)
#define archive_entry_sourcepath(...)                                          \
  LAZY_CALL(archive, archive_entry_sourcepath, __VA_ARGS__)
#define archive_entry_symlink(...)                                             \
  LAZY_CALL(archive, archive_entry_symlink, __VA_ARGS__)
#define archive_entry_xattr_add_entry(...)                                     \
  LAZY_CALL(archive, archive_entry_xattr_add_entry, __VA_ARGS__)
#define archive_entry_xattr_clear(...)                                         \
  LAZY_CALL(archive, archive_entry_xattr_clear, __VA_ARGS__)
#define archive_entry_xattr_next(...)                                          \
  LAZY_CALL(archive, archive_entry_xattr_next, __VA_ARGS__)
#define archive_entry_xattr_reset(...)                                         \
  LAZY_CALL(archive, archive_entry_xattr_reset, __VA_ARGS__)
#define archive_errno(...) LAZY_CALL(archive, archive_errno, __VA_ARGS__)
#define archive_error_string(...)                                              \
  LAZY_CALL(archive, archive_error_string, __VA_ARGS__)
#define archive_format(...) LAZY_CALL(archive, archive_format, __VA_ARGS__)
#define archive_read_data(...)                                                 \
  LAZY_CALL(archive, archive_read_data, __VA_ARGS__)
#define archive_read_data_block(...)                                           \
  LAZY_CALL(archive, archive_read_data_block, __VA_ARGS__)
#define archive_read_data_into_fd(...)                                         \
  LAZY_CALL(archive, archive_read_data_into_fd, __VA_ARGS__)
#define archive_read_disk_descend(...)                                         \
  LAZY_CALL(archive, archive_read_disk_descend, __VA_ARGS__)
#define archive_read_disk_open(...)                                            \
  LAZY_CALL(archive, archive_read_disk_open, __VA_ARGS__)
#define archive_read_disk_set_behavior(...)                                    \
  LAZY_CALL(archive, archive_read_disk_set_behavior, __VA_ARGS__)
#define archive_read_disk_set_symlink_physical(...)                            \
  LAZY_CALL(archive, archive_read_disk_set_symlink_physical, __VA_ARGS__)
#define archive_read_free(...)                                                 \
  LAZY_CALL(archive, archive_read_free, __VA_ARGS__)
#define archive_read_next_header(...)                                          \
  LAZY_CALL(archive, archive_read_next_header, __VA_ARGS__)
#define archive_read_next_header2(...)                                         \
  LAZY_CALL(archive, archive_read_next_header2, __VA_ARGS__)
#define archive_read_open2(...)                                                \
  LAZY_CALL(archive, archive_read_open2, __VA_ARGS__)
#define archive_read_open_fd(...)                                              \
  LAZY_CALL(archive, archive_read_open_fd, __VA_ARGS__)
#define archive_read_support_filter_all(...)                                   \
  LAZY_CALL(archive, archive_read_support_filter_all, __VA_ARGS__)
#define archive_read_support_filter_bzip2(...)                                 \
  LAZY_CALL(archive, archive_read_support_filter_bzip2, __VA_ARGS__)
#define archive_read_support_filter_gzip(...)                                  \
  LAZY_CALL(archive, archive_read_support_filter_gzip, __VA_ARGS__)
#define archive_read_support_filter_xz(...)                                    \
  LAZY_CALL(archive, archive_read_support_filter_xz, __VA_ARGS__)
#define archive_read_support_filter_zstd(...)                                  \
  LAZY_CALL(archive, archive_read_support_filter_zstd, __VA_ARGS__)
#define archive_read_support_format_empty(...)                                 \
  LAZY_CALL(archive, archive_read_support_format_empty, __VA_ARGS__)
#define archive_read_support_format_gnutar(...)                                \
  LAZY_CALL(archive, archive_read_support_format_gnutar, __VA_ARGS__)
#define archive_read_support_format_raw(...)                                   \
  LAZY_CALL(archive, archive_read_support_format_raw, __VA_ARGS__)
#define archive_read_support_format_tar(...)                                   \
  LAZY_CALL(archive, archive_read_support_format_tar, __VA_ARGS__)
#define archive_set_error(...)                                                 \
  LAZY_CALL(archive, archive_set_error, __VA_ARGS__)
#define archive_write_add_filter_gzip(...)                                     \
  LAZY_CALL(archive, archive_write_add_filter_gzip, __VA_ARGS__)
#define archive_write_close(...)                                               \
  LAZY_CALL(archive, archive_write_close, __VA_ARGS__)
#define archive_write_data(...)                                                \
  LAZY_CALL(archive, archive_write_data, __VA_ARGS__)
#define archive_write_data_block(...)                                          \
  LAZY_CALL(archive, archive_write_data_block, __VA_ARGS__)
#define archive_write_disk_set_options(...)                                    \
  LAZY_CALL(archive, archive_write_disk_set_options, __VA_ARGS__)
#define archive_write_finish_entry(...)                                        \
  LAZY_CALL(archive, archive_write_finish_entry, __VA_ARGS__)
#define archive_write_free(...)                                                \
  LAZY_CALL(archive, archive_write_free, __VA_ARGS__)
#define archive_write_header(...)                                              \
  LAZY_CALL(archive, archive_write_header, __VA_ARGS__)
#define archive_write_open(...)                                                \
  LAZY_CALL(archive, archive_write_open, __VA_ARGS__)
#define archive_write_open_fd(...)                                             \
  LAZY_CALL(archive, archive_write_open_fd, __VA_ARGS__)
#define archive_write_set_bytes_in_last_block(...)                             \
  LAZY_CALL(archive, archive_write_set_bytes_in_last_block, __VA_ARGS__)
#define archive_write_set_bytes_per_block(...)                                 \
  LAZY_CALL(archive, archive_write_set_bytes_per_block, __VA_ARGS__)
#define archive_write_set_format_pax_restricted(...)                           \
  LAZY_CALL(archive, archive_write_set_format_pax_restricted, __VA_ARGS__)

#endif
