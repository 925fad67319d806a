/* Seccomp profiles in Docker's JSON format (moby's profiles/seccomp, also
 * containers-common's seccomp.json) and their OCI form, as dockerd makes
 * it: each syscall rule kept or dropped by its "includes"/"excludes"
 * (capabilities, architectures, minimum kernel) for one container, then
 * handed to crun as linux.seccomp. Pure, except seccomp_profile_load (one
 * file read) and seccomp_target_host (uname).
 *
 * A profile that passed seccomp_profile_parse holds only what crun takes:
 * known actions, architectures, flags and comparison operators, argument
 * indexes 0-5. What shoal cannot apply (a notify listener) is refused. */
#ifndef SHOAL_SECCOMP_SECCOMP_H
#define SHOAL_SECCOMP_SECCOMP_H

#include <jansson.h>
#include <stddef.h>

struct sh_err;

/* Debian's golang-github-containers-common. */
#define SECCOMP_DEFAULT_PROFILE "/usr/share/containers/seccomp.json"

typedef struct seccomp_profile seccomp_profile;

/* Parses and checks a profile; 400 with a message naming the field. */
int seccomp_profile_parse(const char *text, size_t len, seccomp_profile **out,
                          struct sh_err *err);
/* The same for a file; 500 if it cannot be read. */
int seccomp_profile_load(const char *path, seccomp_profile **out,
                         struct sh_err *err);
void seccomp_profile_free(seccomp_profile *p);
static inline void seccomp_profile_freep(seccomp_profile **p) {
  seccomp_profile_free(*p);
}
#define cleanup_seccomp __attribute__((cleanup(seccomp_profile_freep)))

/* What a profile is evaluated against. */
struct seccomp_target {
  /* The native architecture in the profile's "arches" words ("amd64",
   * "arm64", ...) and as libseccomp names it ("SCMP_ARCH_X86_64"), which
   * picks the archMap entry. NULL: unknown, nothing matches. */
  const char *arch, *scmp_arch;
  /* The container's bounding capability set ("CAP_SYS_ADMIN", ...),
   * NULL-terminated: dockerd evaluates "caps" against it. */
  const char *const *caps;
  unsigned kernel, major; /* the host's kernel version, for minKernel */
};
/* This build's architecture and the running kernel. */
void seccomp_target_host(struct seccomp_target *t, const char *const *caps);

/* The OCI linux.seccomp object for a container with target t; NULL when
 * the profile has neither defaultAction nor syscalls (seccomp off, as
 * dockerd reads it). */
json_t *seccomp_oci(const seccomp_profile *p, const struct seccomp_target *t);

/* ContainerSpec.Privileges.Seccomp of the swarm API. */
enum seccomp_mode {
  SECCOMP_MODE_DEFAULT, /* the daemon's profile; also when opts is absent */
  SECCOMP_MODE_UNCONFINED,
  SECCOMP_MODE_CUSTOM, /* Profile: the profile's JSON, base64 ([]byte) */
};
/* Reads {Mode, Profile} (NULL or null: default). For custom, *custom gets
 * the parsed profile (the caller frees it); else NULL. 400 for an unknown
 * mode, custom without a profile, a profile with another mode, or a
 * profile that does not parse. */
int seccomp_from_swarm(const json_t *opts, enum seccomp_mode *mode,
                       seccomp_profile **custom, struct sh_err *err);

#endif
