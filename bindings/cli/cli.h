/*
 * bindings/cli/cli.h - the state of one `pagemesh` command and what its
 * command files share (pagemesh.c: reading and looking; ops.c: operating
 * the cache: load, evict, invalidate, capacity, drain).
 */
#ifndef PM_CLI_CLI_H
#define PM_CLI_CLI_H

#include <stdint.h>

#include "pagemesh.h"

typedef struct cli {
  pm_options opts;
  int json;
  int recursive;
  int print_stats;
  unsigned parallel;
  uint64_t offset;
  uint64_t length; /* UINT64_MAX: to the end */
  uint64_t disk_capacity, ram_capacity; /* capacity: 0 keeps */
  pm_peer *peer;
} cli;

/* Print "pagemesh: WHAT: detail (PM_NAME)" and return 1. */
int cli_fail(cli *c, const char *what, int err);

int cmd_load(cli *c, int argc, char **argv);
int cmd_evict(cli *c, int argc, char **argv);
int cmd_invalidate(cli *c, int argc, char **argv);
int cmd_capacity(cli *c, int argc, char **argv);
int cmd_drain(cli *c, int argc, char **argv);

#endif /* PM_CLI_CLI_H */
