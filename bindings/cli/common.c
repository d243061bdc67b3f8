/*
 * bindings/cli/common.c - the cache options shared by `pagemesh` and
 * `pagemeshd` (see common.h).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <fcntl.h>
#include <unistd.h>
#include "common.h"

int cli_parse_size(const char *what, const char *text, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(text, &end, 10);
  uint64_t mult = 1;
  switch (*end) {
  case 'K': case 'k': mult = 1ull << 10; end++; break;
  case 'M': case 'm': mult = 1ull << 20; end++; break;
  case 'G': case 'g': mult = 1ull << 30; end++; break;
  case 'T': case 't': mult = 1ull << 40; end++; break;
  default: break;
  }
  if (mult > 1 && (*end == 'i' || *end == 'I'))
    end++;
  if (mult > 1 && (*end == 'B' || *end == 'b'))
    end++;
  if (errno || end == text || *end || text[0] == '-' ||
      v > UINT64_MAX / mult) {
    fprintf(stderr, "%s: '%s' is not a size (use 123, 64K, 8G...)\n", what,
            text);
    return -1;
  }
  *out = v * mult;
  return 0;
}

static int parse_u32(const char *what, const char *text, uint32_t *out) {
  uint64_t v;
  if (cli_parse_size(what, text, &v) != 0)
    return -1;
  if (v > UINT32_MAX) {
    fprintf(stderr, "%s: %s is too large\n", what, text);
    return -1;
  }
  *out = (uint32_t)v;
  return 0;
}

int cli_apply_common(pm_options *o, int opt, const char *arg) {
  switch (opt) {
  case OPT_CACHE_DIR:
    o->cache_dir = arg;
    return 0;
  case OPT_DISK:
    return cli_parse_size("--disk-capacity", arg, &o->disk_capacity);
  case OPT_RAM:
    return cli_parse_size("--ram-capacity", arg, &o->ram_capacity);
  case OPT_PAGE:
    return parse_u32("--page-size", arg, &o->page_size);
  case OPT_META_TTL:
    return parse_u32("--meta-ttl", arg, &o->meta_ttl_ms);
  case OPT_EVICTION:
    if (strcmp(arg, "stable") == 0)
      o->eviction = PM_EVICT_STABLE;
    else if (strcmp(arg, "lru") == 0)
      o->eviction = PM_EVICT_LRU;
    else {
      fprintf(stderr, "--eviction: '%s': use stable or lru\n", arg);
      return -1;
    }
    return 0;
  case OPT_LISTEN: o->listen = arg; return 0;
  case OPT_SEEDS: o->seeds = arg; return 0;
  case OPT_KEY_FILE: o->cluster_key_file = arg; return 0;
  case OPT_CLUSTER_ID: o->cluster_id = arg; return 0;
  case OPT_TRANSPORT: o->transport = arg; return 0;
  case OPT_TRANSPORT_LISTEN: o->transport_listen = arg; return 0;
  case OPT_ZONE: o->zone = arg; return 0;
  case OPT_NODE_GROUP: o->node_group = arg; return 0;
  case OPT_REPLICAS: return parse_u32("--replicas", arg, &o->replicas);
  case OPT_REQUEST_TIMEOUT:
    return parse_u32("--request-timeout", arg, &o->request_timeout_ms);
  case OPT_INSECURE_DATA: {
    /* The flag alone is "on"; a configuration file's value is a boolean
     * ("no" turned page encryption off before: anything but 0 was on). */
    static const char *const on[] = {"1", "true", "yes", "on"};
    static const char *const off[] = {"0", "false", "no", "off"};
    bool value = arg == NULL, known = arg == NULL;
    for (size_t i = 0; !known && i < 4; i++) {
      if (strcasecmp(arg, on[i]) == 0)
        value = known = true;
      else if (strcasecmp(arg, off[i]) == 0)
        known = true;
    }
    if (!known) {
      fprintf(stderr, "insecure-data: '%s': use yes or no\n", arg);
      return -1;
    }
    if (value)
      o->flags |= PM_OPEN_INSECURE_DATA;
    else
      o->flags &= ~(uint32_t)PM_OPEN_INSECURE_DATA;
    return 0;
  }
  default:
    return -1;
  }
}

int cli_apply_common_key(pm_options *o, const char *key, const char *value) {
  static const struct option keys[] = {CLI_COMMON_LONG_OPTIONS,
                                       CLI_MESH_LONG_OPTIONS};
  char name[64];
  snprintf(name, sizeof name, "%s", key);
  for (char *p = name; *p; p++)
    if (*p == '_')
      *p = '-';
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    if (strcmp(keys[i].name, name) == 0)
      return cli_apply_common(o, keys[i].val, value) == 0 ? 1 : -1;
  return 0;
}

void cli_guard_std_fds(void) {
  for (int fd = 0; fd <= 2; fd++) {
    if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
      continue;
    /* read-only: a write to a closed stdout or stderr still fails (EBADF,
     * reported), but no file the process opens later takes its number */
    int got = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (got >= 0 && got != fd) {
      dup2(got, fd);
      close(got);
    }
  }
}
