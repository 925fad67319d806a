/* Seccomp filters compiled by shoald, once per distinct OCI linux.seccomp
 * section, instead of by crun for every container (~26 ms of CPU each).
 * The program is what crun 1.8's libcrun_generate_seccomp makes of the
 * section: the same libseccomp calls with the same arguments in the same
 * order, so the bytes are the same. crun takes it base64 in the annotation
 * run.oci.seccomp_bpf_data and then compiles nothing; the section stays in
 * config.json, since crun still reads its "flags" there when it installs
 * the filter (and inspect and the bench read it).
 *
 * The cache is keyed by the SHA-256 of the section's canonical JSON: the
 * section already holds everything the program depends on (the profile,
 * the rules kept for the container's bounding caps, the architectures,
 * the rules kept for this kernel); the native architecture and the
 * libseccomp version are the process's own. Thread-safe: the worker's
 * work-queue threads create containers. */
#ifndef SHOAL_SECCOMP_BPF_H
#define SHOAL_SECCOMP_BPF_H

#include <jansson.h>
#include <stddef.h>

struct sh_err;

#define SECCOMP_BPF_ANNOTATION "run.oci.seccomp_bpf_data"

/* The raw BPF (struct sock_filter[], len a multiple of 8) for an OCI
 * linux.seccomp object; what crun would refuse is refused with crun's
 * message (400), a libseccomp failure is a 500. Syscall names libseccomp
 * does not know are skipped, as crun does. Blocking: ~25 ms for Docker's
 * default profile. */
int seccomp_bpf_compile(const json_t *oci, unsigned char **bpf, size_t *len,
                        struct sh_err *err);

typedef struct seccomp_bpf_cache seccomp_bpf_cache;

/* At most max programs (least recently used goes first); max >= 1. */
seccomp_bpf_cache *seccomp_bpf_cache_new(size_t max);
void seccomp_bpf_cache_free(seccomp_bpf_cache *c);

/* The annotation's value (base64 of the program) for oci, new string:
 * from the cache, else compiled and kept. A compile holds the cache's lock,
 * so concurrent creates of the same new section compile it once. */
int seccomp_bpf_cache_get(seccomp_bpf_cache *c, const json_t *oci, char **b64,
                          struct sh_err *err);

struct seccomp_bpf_stats {
  unsigned long hits, misses; /* misses: compiles, failed ones included */
  size_t entries;
};
void seccomp_bpf_cache_stats(seccomp_bpf_cache *c,
                             struct seccomp_bpf_stats *out);

#endif
