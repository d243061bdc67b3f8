/*
 * tests/core/node_fixture.h - what the tests of a node peer and its
 * attached peers in one process share (test_attach.c, test_landing.c): a
 * fresh directory with the cache directory in it, objects of a known byte
 * pattern written there (read through the POSIX origin), the check of
 * bytes read against the pattern, and opening a peer on the cache with
 * 64 KiB pages.
 */
#ifndef PM_TEST_NODE_FIXTURE_H
#define PM_TEST_NODE_FIXTURE_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "pagemesh.h"

#define PS (64u << 10)

static char root[256], cache[300];

static inline unsigned char byte_at(uint64_t i) {
  return (unsigned char)((i * 7 + (i >> 11)) & 0xff);
}

/* The path of a new object of `size` bytes of the pattern. */
static inline const char *make_object(const char *name, size_t size) {
  static char path[400];
  snprintf(path, sizeof path, "%s/%s", root, name);
  FILE *f = fopen(path, "wb");
  for (size_t i = 0; i < size; i++)
    fputc(byte_at(i), f);
  fclose(f);
  return path;
}

static inline void check(const unsigned char *buf, uint64_t off, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (buf[i] != byte_at(off + i))
      cr_assert_fail("byte %llu differs", (unsigned long long)(off + i));
}

/* .init of every test: a new directory. */
static inline void setup(void) {
  snprintf(root, sizeof root, "/tmp/pm-test-node-XXXXXX");
  cr_assert_not_null(mkdtemp(root));
  snprintf(cache, sizeof cache, "%s/cache", root);
}

static inline pm_peer *open_peer_ra(unsigned flags, unsigned readahead) {
  pm_options o;
  pm_options_init(&o);
  o.cache_dir = cache;
  o.page_size = PS;
  o.readahead_pages = readahead;
  o.flags = flags;
  pm_peer *p = NULL;
  int err = pm_peer_open(&o, &p);
  cr_assert_eq(err, 0, "open: %s", pm_peer_errmsg(NULL));
  return p;
}

static inline pm_peer *open_peer(unsigned flags) {
  return open_peer_ra(flags, 0);
}

#endif /* PM_TEST_NODE_FIXTURE_H */
