/* daemon.json: dockerd's configuration file, with dockerd's rules.
 *
 * The file (default /etc/shoal/daemon.json, --config-file elsewhere) holds
 * dockerd's keys where shoald has the setting: data-root, exec-root,
 * hosts, pidfile, group, debug, log-level, dns, labels, registry-mirrors,
 * insecure-registries, default-address-pools, max-concurrent-downloads,
 * tls, tlsverify, tlscacert, tlscert, tlskey. As in dockerd: a missing
 * default file is no error (an explicit one is); a key also given as a
 * flag is an error listing each such key with both values; a key that
 * matches no option is an error; a dockerd key shoald cannot honour is
 * refused by name. Every error reads "unable to configure the Docker
 * daemon with file <path>: ...", dockerd's words.
 *
 * SIGHUP reloads what dockerd reloads of these: debug, log-level, labels,
 * registry-mirrors, insecure-registries, max-concurrent-downloads. */
#ifndef SHOAL_DAEMON_CONFIG_H
#define SHOAL_DAEMON_CONFIG_H

#include <jansson.h>
#include <stdbool.h>

struct sh_err;
struct shoald_config;

#define SHOALD_DEFAULT_CONFIG_FILE "/etc/shoal/daemon.json"

/* Reads and checks the file. flags: the keys set on the command line,
 * file key -> the flag's value as dockerd prints it in a conflict ("true",
 * "[a b]"). *out: the file's object; NULL when the file is absent and
 * must_exist is false. */
int daemon_config_read(const char *path, bool must_exist, const json_t *flags,
                       json_t **out, struct sh_err *err);

/* Sets cfg from the file's keys. reload: only the reloadable ones, with
 * dockerd's reload rules (a key absent from the file keeps its value,
 * except max-concurrent-downloads, which goes back to its default). */
void daemon_config_apply(struct shoald_config *cfg, const json_t *file,
                         bool reload);

/* Checks on single values, shared with the flags. */
/* dockerd's ValidateLabel: "key=value", not in Docker's namespaces. */
int daemon_config_check_label(const char *label, struct sh_err *err);
/* dockerd's ValidateMirror; *out: the URL ending in '/'. */
int daemon_config_norm_mirror(const char *url, char **out, struct sh_err *err);
/* panic fatal error warn info debug trace (any case). */
int daemon_config_check_log_level(const char *level, struct sh_err *err);
/* --default-address-pool "base=10.10.0.0/16,size=24" -> {"Base", "Size"}. */
int daemon_config_parse_pool(const char *flag, json_t **out,
                             struct sh_err *err);
/* One {"base", "size"} of the file (or "Base"/"Size") -> {"Base", "Size"}. */
int daemon_config_check_pool(const json_t *pool, json_t **out,
                             struct sh_err *err);
/* dockerd's GetConflictFreeLabels: the same key twice with two values. */
int daemon_config_check_labels(char *const *labels, struct sh_err *err);

/* Frees what the settings hold (the strings, lists and pools). */
void daemon_config_free(struct shoald_config *cfg);

/* The log level cfg asks for (debug wins, as -D in dockerd). */
void daemon_config_apply_log_level(const struct shoald_config *cfg);

#endif
