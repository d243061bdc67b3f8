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
  OPT_META_TTL, OPT_COMMON_LAST
};

#define CLI_COMMON_LONG_OPTIONS                                               \
  {"cache-dir", required_argument, NULL, OPT_CACHE_DIR},                      \
  {"disk-capacity", required_argument, NULL, OPT_DISK},                       \
  {"ram-capacity", required_argument, NULL, OPT_RAM},                         \
  {"page-size", required_argument, NULL, OPT_PAGE},                           \
  {"eviction", required_argument, NULL, OPT_EVICTION},                        \
  {"meta-ttl", required_argument, NULL, OPT_META_TTL}

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

#endif /* PM_CLI_COMMON_H */
