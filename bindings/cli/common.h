/*
 * bindings/cli/common.h - what the `pagemesh` and `pagemeshd` commands
 * share: the cache options, as command-line flags and config-file keys.
 */
#ifndef PM_CLI_COMMON_H
#define PM_CLI_COMMON_H

#include <getopt.h>

#include "pagemesh.h"

enum {
  OPT_CACHE_DIR = 256, OPT_DISK, OPT_RAM, OPT_PAGE, OPT_EVICTION,
  OPT_META_TTL,
  /* The mesh (pagemeshd only). */
  OPT_LISTEN, OPT_SEEDS, OPT_KEY_FILE, OPT_CLUSTER_ID, OPT_TRANSPORT,
  OPT_TRANSPORT_LISTEN, OPT_ZONE, OPT_REPLICAS, OPT_REQUEST_TIMEOUT,
  OPT_INSECURE_DATA, OPT_NODE_GROUP, OPT_COMMON_LAST
};

#define CLI_COMMON_LONG_OPTIONS                                               \
  {"cache-dir", required_argument, NULL, OPT_CACHE_DIR},                      \
  {"disk-capacity", required_argument, NULL, OPT_DISK},                       \
  {"ram-capacity", required_argument, NULL, OPT_RAM},                         \
  {"page-size", required_argument, NULL, OPT_PAGE},                           \
  {"eviction", required_argument, NULL, OPT_EVICTION},                        \
  {"meta-ttl", required_argument, NULL, OPT_META_TTL}

#define CLI_MESH_LONG_OPTIONS                                                 \
  {"listen", required_argument, NULL, OPT_LISTEN},                            \
  {"seeds", required_argument, NULL, OPT_SEEDS},                              \
  {"cluster-key-file", required_argument, NULL, OPT_KEY_FILE},                \
  {"cluster-id", required_argument, NULL, OPT_CLUSTER_ID},                    \
  {"transport", required_argument, NULL, OPT_TRANSPORT},                      \
  {"transport-listen", required_argument, NULL, OPT_TRANSPORT_LISTEN},        \
  {"zone", required_argument, NULL, OPT_ZONE},                                \
  {"replicas", required_argument, NULL, OPT_REPLICAS},                        \
  {"request-timeout", required_argument, NULL, OPT_REQUEST_TIMEOUT},          \
  {"insecure-data", no_argument, NULL, OPT_INSECURE_DATA},                  \
  {"node-group", required_argument, NULL, OPT_NODE_GROUP}

#define CLI_MESH_USAGE                                                        \
  "  --listen IP:PORT      join the mesh: membership address (UDP+TCP)\n"    \
  "  --seeds HOST:PORT,..  members to join through\n"                         \
  "  --cluster-key-file F  32-byte cluster key (env PAGEMESH_CLUSTER_KEY_FILE)\n" \
  "  --cluster-id ID       only peers with this id see each other\n"          \
  "  --transport NAME      page transport: tcp (default) or fabric\n"         \
  "  --transport-listen IP:PORT  page transport address (default: any port)\n" \
  "  --zone LABEL          failure-domain label shown to operators\n"          \
  "  --replicas N          copies of each page (default 2)\n"                 \
  "  --request-timeout MS  deadline of a page request to a peer (5000)\n"     \
  "  --insecure-data       page bytes unencrypted between peers (tcp)\n"     \
  "  --node-group GROUP    let GROUP's members attach too (socket 0660)\n"

#define CLI_COMMON_USAGE                                                      \
  "  --cache-dir DIR       cache directory (env PAGEMESH_CACHE_DIR)\n"        \
  "  --disk-capacity SIZE  bytes of pages on disk (e.g. 20G)\n"               \
  "  --ram-capacity SIZE   bytes of pages in RAM (e.g. 512M)\n"               \
  "  --page-size SIZE      page size, 64K..16M (default 1M)\n"                \
  "  --eviction POLICY     stable (default) or lru\n"                         \
  "  --meta-ttl MS         how long metadata is trusted (default 60000)\n"

/* Parse "123", "64K", "1M", "8G", "2T"; prints an error naming `what`. */
int cli_parse_size(const char *what, const char *text, uint64_t *out);

/* Apply one of the common options (OPT_CACHE_DIR..OPT_META_TTL) to opts.
 * `arg` must outlive opts. Returns 0, or -1 after printing an error. */
int cli_apply_common(pm_options *opts, int opt, const char *arg);

/* Apply a config-file key (the long option's name: "cache-dir", or with
 * underscores) to opts. Returns 1 if applied, 0 if unknown, -1 on a bad
 * value (after printing an error). `value` must outlive opts. */
int cli_apply_common_key(pm_options *opts, const char *key, const char *value);

/* Give closed standard descriptors (0, 1, 2) to /dev/null, read-only, so
 * that a file the process opens (the cache's lock) cannot take one of
 * their numbers and receive its output; writes to a closed stdout still
 * fail. Call first thing in main. */
void cli_guard_std_fds(void);

#endif /* PM_CLI_COMMON_H */
