/*
 * tests/tools/pm_reader.c - a long-running reader for integration tests:
 * opens pagemesh on a cache directory (attaching to its node peer if one
 * runs), reads every URI given, whole, in chunks, `loops` times, and prints
 * one line per object and loop: "<loop> <uri> <bytes> <xxh3-64 hex>". Any
 * failed read is printed as "ERROR <uri> <PM_NAME> <detail>" and makes the
 * exit status 1. It uses the public API only, like a data loader would.
 *
 * usage: pm_reader CACHE_DIR LOOPS CHUNK_BYTES URI...
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "pagemesh.h"

static int read_one(pm_peer *peer, const char *uri, size_t chunk, char *buf,
                    int loop) {
  XXH3_state_t *state = XXH3_createState();
  XXH3_64bits_reset(state);
  uint64_t offset = 0;
  for (;;) {
    ssize_t n = pm_read(peer, uri, offset, buf, chunk);
    if (n < 0) {
      printf("ERROR %s %s %s\n", uri, pm_err_name((int)n),
             pm_peer_errmsg(peer));
      fflush(stdout);
      XXH3_freeState(state);
      return 1;
    }
    if (n == 0)
      break;
    XXH3_64bits_update(state, buf, (size_t)n);
    offset += (uint64_t)n;
  }
  printf("%d %s %" PRIu64 " %016" PRIx64 "\n", loop, uri, offset,
         (uint64_t)XXH3_64bits_digest(state));
  fflush(stdout);
  XXH3_freeState(state);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: pm_reader CACHE_DIR LOOPS CHUNK_BYTES URI...\n");
    return 2;
  }
  pm_options o;
  pm_options_init(&o);
  pm_options_load_env(&o);
  o.cache_dir = argv[1];
  int loops = atoi(argv[2]);
  size_t chunk = (size_t)strtoull(argv[3], NULL, 10);
  pm_peer *peer;
  int err = pm_peer_open(&o, &peer);
  if (err) {
    printf("ERROR open %s %s\n", pm_err_name(err), pm_peer_errmsg(NULL));
    return 1;
  }
  char *buf = malloc(chunk);
  int failed = 0;
  for (int loop = 0; loop < loops; loop++)
    for (int i = 4; i < argc; i++)
      failed |= read_one(peer, argv[i], chunk, buf, loop);
  free(buf);
  pm_peer_close(peer);
  return failed;
}
