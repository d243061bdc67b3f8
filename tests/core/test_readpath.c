/* Tests for the read path (core/batch.c, readpath.c, readahead.c, map.c,
 * objects.c) with real parts: a peer on a temporary cache directory over
 * the POSIX origin. Origin requests are counted by the peer's UFS layer. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "meta_files.h"
#include "core/core_int.h"
#include "pagemesh.h"

TestSuite(readpath, .timeout = 120);

#define PS (64u << 10)

static char root[256], cache[300];

static void setup_dirs(void) {
  snprintf(root, sizeof root, "/tmp/pm-test-read-XXXXXX");
  cr_assert_not_null(mkdtemp(root));
  snprintf(cache, sizeof cache, "%s/cache", root);
}

static unsigned char byte_at(uint64_t i, int gen) {
  return (unsigned char)((i * 131 + (i >> 9) + (unsigned)gen * 17) & 0xff);
}

/* Write an object of `size` bytes; returns its path (static buffer). */
static const char *make_object(const char *name, size_t size, int gen) {
  static char path[400];
  snprintf(path, sizeof path, "%s/%s", root, name);
  unsigned char *buf = malloc(size ? size : 1);
  for (size_t i = 0; i < size; i++)
    buf[i] = byte_at(i, gen);
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  cr_assert_eq(fwrite(buf, 1, size, f), size);
  fclose(f);
  free(buf);
  return path;
}

static pm_peer *open_peer(uint64_t disk, uint64_t ram, pm_eviction ev,
                          uint32_t ttl_ms) {
  pm_options o;
  pm_options_init(&o);
  o.cache_dir = cache;
  o.page_size = PS;
  o.disk_capacity = disk;
  o.ram_capacity = ram;
  o.eviction = ev;
  o.meta_ttl_ms = ttl_ms;
  o.readahead_pages = 0;
  pm_peer *p = NULL;
  int err = pm_peer_open(&o, &p);
  cr_assert_eq(err, 0, "open: %s", pm_peer_errmsg(NULL));
  return p;
}

static pm_stats stats_of(pm_peer *p) {
  pm_stats s = {.size = sizeof s};
  cr_assert_eq(pm_peer_stats(p, &s), 0);
  return s;
}

static void check_bytes(const unsigned char *buf, uint64_t off, size_t n,
                        int gen) {
  for (size_t i = 0; i < n; i++)
    if (buf[i] != byte_at(off + i, gen))
      cr_assert_fail("byte %llu differs", (unsigned long long)(off + i));
}

Test(readpath, second_read_costs_no_origin_request) {
  setup_dirs();
  size_t size = 5 * PS + 1234;
  const char *path = make_object("a.bin", size, 0);
  pm_peer *p = open_peer(64 << 20, 8 << 20, PM_EVICT_STABLE, 60000);
  unsigned char *buf = malloc(size + 100);
  cr_assert_eq(pm_read(p, path, 0, buf, size + 100), (ssize_t)size);
  check_bytes(buf, 0, size, 0);
  uint64_t before = stats_of(p).origin_requests;
  cr_assert_gt(before, 0);
  memset(buf, 0, size);
  cr_assert_eq(pm_read(p, path, 100, buf, size), (ssize_t)(size - 100));
  check_bytes(buf, 100, size - 100, 0);
  cr_assert_eq(stats_of(p).origin_requests, before);
  cr_assert_eq(pm_read(p, path, size, buf, 10), 0, "at the end: 0 bytes");
  pm_peer_close(p);
  free(buf);
}

static size_t meta_files(void) {
  return meta_files_in(cache);
}

/* A listing's first 4096 entries are kept on disk for the next process;
 * past that, memory only, until a stat uses an entry. */
Test(readpath, a_large_listing_writes_a_bounded_number_of_files) {
  setup_dirs();
  char dir[400], name[64];
  snprintf(dir, sizeof dir, "%s/many", root);
  cr_assert_eq(mkdir(dir, 0755), 0);
  enum { N = 4200 };
  for (int i = 0; i < N; i++) {
    snprintf(name, sizeof name, "many/%05d", i);
    make_object(name, 1 + (size_t)i % 7, 0);
  }
  pm_peer *p = open_peer(64 << 20, 0, PM_EVICT_STABLE, 60000);
  pm_list_entry *entries = NULL;
  size_t count = 0;
  cr_assert_eq(pm_list(p, dir, 0, &entries, &count), 0, "%s",
               pm_peer_errmsg(p));
  cr_assert_eq(count, N);
  cr_assert_eq(meta_files(), 4096);
  uint64_t before = stats_of(p).origin_requests;
  for (size_t i = 0; i < count; i++) {
    pm_object_stat st;
    cr_assert_eq(pm_stat(p, entries[i].uri, &st), 0);
    cr_assert_eq(st.size, entries[i].size);
  }
  cr_assert_eq(stats_of(p).origin_requests, before,
               "the listing answered every stat");
  cr_assert_eq(meta_files(), N, "each entry a stat used is kept");
  pm_list_free(entries, count);
  /* PM_LIST_FIRST: one entry of a large directory, none of an empty one,
   * PM_ENOENT for none at all. */
  cr_assert_eq(pm_list(p, dir, PM_LIST_FIRST, &entries, &count), 0);
  cr_assert_eq(count, 1);
  cr_assert_not_null(strstr(entries[0].uri, dir), "%s is not below %s",
                     entries[0].uri, dir);
  pm_list_free(entries, count);
  snprintf(dir, sizeof dir, "%s/empty", root);
  cr_assert_eq(mkdir(dir, 0755), 0);
  cr_assert_eq(pm_list(p, dir, PM_LIST_FIRST, &entries, &count), 0);
  cr_assert_eq(count, 0);
  pm_list_free(entries, count);
  snprintf(dir, sizeof dir, "%s/none", root);
  cr_assert_eq(pm_list(p, dir, PM_LIST_FIRST, &entries, &count), PM_ENOENT);
  pm_peer_close(p);
}

/* PM_OPEN_PASSTHROUGH keeps nothing: every read and every mapping is one
 * trip to the origin per page, and the bytes are right. */
Test(readpath, passthrough_reads_and_maps_from_the_origin_once_each) {
  setup_dirs();
  size_t size = 3 * PS + 100;
  const char *path = make_object("pt.bin", size, 0);
  pm_options o;
  pm_options_init(&o);
  o.cache_dir = cache;
  o.page_size = PS;
  o.readahead_pages = 0;
  o.flags = PM_OPEN_PASSTHROUGH;
  pm_peer *p = NULL;
  cr_assert_eq(pm_peer_open(&o, &p), 0, "%s", pm_peer_errmsg(NULL));
  unsigned char *buf = malloc(size);
  uint64_t before = stats_of(p).origin_requests;
  cr_assert_eq(pm_read(p, path, 0, buf, size), (ssize_t)size);
  check_bytes(buf, 0, size, 0);
  before = stats_of(p).origin_requests; /* the metadata is known now */
  cr_assert_eq(pm_read(p, path, 0, buf, size), (ssize_t)size);
  check_bytes(buf, 0, size, 0);
  cr_assert_eq(stats_of(p).origin_requests - before, 4,
               "one request per page: nothing was kept");
  before = stats_of(p).origin_requests;
  pm_mapping m;
  cr_assert_eq(pm_map(p, path, PS + 10, 1000, &m), 0, "%s",
               pm_peer_errmsg(p));
  cr_assert_eq(m.length, 1000);
  check_bytes(m.data, PS + 10, 1000, 0);
  pm_unmap(p, &m);
  cr_assert_eq(stats_of(p).origin_requests - before, 1,
               "one origin request per mapping");
  free(buf);
  pm_peer_close(p);
}

Test(readpath, restart_keeps_the_cache) {
  setup_dirs();
  size_t size = 3 * PS;
  const char *path = make_object("b.bin", size, 0);
  unsigned char *buf = malloc(size);
  pm_peer *p = open_peer(64 << 20, 0, PM_EVICT_STABLE, 60000);
  cr_assert_eq(pm_read(p, path, 0, buf, size), (ssize_t)size);
  pm_peer_close(p);
  p = open_peer(64 << 20, 0, PM_EVICT_STABLE, 60000);
  memset(buf, 0, size);
  cr_assert_eq(pm_read(p, path, 0, buf, size), (ssize_t)size);
  check_bytes(buf, 0, size, 0);
  pm_stats s = stats_of(p);
  cr_assert_eq(s.origin_requests, 0, "reopened peer asked the origin %llu "
               "times", (unsigned long long)s.origin_requests);
  cr_assert_eq(s.hits_disk, 3);
  pm_peer_close(p);
  free(buf);
}

Test(readpath, corrupt_page_is_refetched_not_served) {
  setup_dirs();
  size_t size = 2 * PS;
  const char *path = make_object("c.bin", size, 0);
  unsigned char *buf = malloc(size);
  pm_peer *p = open_peer(64 << 20, 0, PM_EVICT_STABLE, 60000);
  cr_assert_eq(pm_read(p, path, 0, buf, size), (ssize_t)size);
  pm_object_stat st;
  cr_assert_eq(pm_stat(p, path, &st), 0);
  pm_peer_close(p);

  /* Flip one data byte of page 1 on disk (ids use the normalised URI). */
  char uri[700];
  snprintf(uri, sizeof uri, "file://%s", path);
  pm_page_id id = pm__page_id(uri, st.version, 1, PS);
  char hex[33], file[600];
  pm__page_id_hex(&id, hex);
  snprintf(file, sizeof file, "%s/pages/%.2s/%s.pg", cache, hex, hex);
  int fd = open(file, O_RDWR);
  cr_assert_geq(fd, 0, "page file %s missing", file);
  unsigned char b;
  cr_assert_eq(pread(fd, &b, 1, 4096 + 100), 1);
  b ^= 0xff;
  cr_assert_eq(pwrite(fd, &b, 1, 4096 + 100), 1);
  close(fd);

  p = open_peer(64 << 20, 0, PM_EVICT_STABLE, 60000);
  memset(buf, 0, size);
  cr_assert_eq(pm_read(p, path, 0, buf, size), (ssize_t)size);
  check_bytes(buf, 0, size, 0);
  pm_stats s = stats_of(p);
  cr_assert_geq(s.corrupt_pages, 1);
  cr_assert_eq(s.origin_requests, 1, "only the corrupt page is refetched");
  pm_peer_close(p);
  free(buf);
}

typedef struct reader_arg {
  pm_peer *peer;
  const char *path;
  int ok;
} reader_arg;

static void *read_page_one(void *arg) {
  reader_arg *r = arg;
  unsigned char buf[4096];
  r->ok = pm_read(r->peer, r->path, PS + 10, buf, sizeof buf) ==
          (ssize_t)sizeof buf;
  for (size_t i = 0; r->ok && i < sizeof buf; i++)
    r->ok = buf[i] == byte_at(PS + 10 + i, 0);
  return NULL;
}

Test(readpath, concurrent_cold_readers_cause_one_origin_read) {
  setup_dirs();
  const char *path = make_object("d.bin", 4 * PS, 0);
  pm_peer *p = open_peer(64 << 20, 8 << 20, PM_EVICT_STABLE, 60000);
  pm_object_stat st;
  cr_assert_eq(pm_stat(p, path, &st), 0);
  uint64_t before = stats_of(p).origin_requests;
  pthread_t t[16];
  reader_arg args[16];
  for (int i = 0; i < 16; i++) {
    args[i] = (reader_arg){.peer = p, .path = path};
    pthread_create(&t[i], NULL, read_page_one, &args[i]);
  }
  for (int i = 0; i < 16; i++) {
    pthread_join(t[i], NULL);
    cr_assert(args[i].ok);
  }
  cr_assert_eq(stats_of(p).origin_requests - before, 1);
  pm_peer_close(p);
}

Test(readpath, changed_object_is_never_served_old_bytes) {
  setup_dirs();
  size_t size = 2 * PS;
  const char *path = make_object("e.bin", size, 0);
  unsigned char *buf = malloc(size + PS);
  pm_peer *p = open_peer(64 << 20, 8 << 20, PM_EVICT_STABLE, 60000);
  cr_assert_eq(pm_read(p, path, 0, buf, 100), 100);
  /* Rewrite with other bytes and another size. The metadata is still
   * fresh: cached page 0 is the old version's, consistently; page 1 is not
   * cached, so its read meets the change at the origin and retries with
   * the new version. */
  usleep(10000);
  make_object("e.bin", size + 999, 1);
  cr_assert_eq(pm_read(p, path, 0, buf, 100), 100);
  check_bytes(buf, 0, 100, 0);
  cr_assert_eq(pm_read(p, path, PS, buf, size), (ssize_t)(size + 999 - PS));
  check_bytes(buf, PS, size + 999 - PS, 1);
  /* Page 0 was cached under the old version: invalidation makes the next
   * read use the new version's pages. */
  cr_assert_eq(pm_invalidate(p, path), 0);
  cr_assert_eq(pm_read(p, path, 0, buf, 100), 100);
  check_bytes(buf, 0, 100, 1);
  pm_peer_close(p);
  free(buf);
}

Test(readpath, a_pinned_read_never_mixes_versions) {
  setup_dirs();
  size_t size = 2 * PS;
  const char *path = make_object("v.bin", size, 0);
  unsigned char *buf = malloc(size + PS);
  pm_peer *p = open_peer(64 << 20, 8 << 20, PM_EVICT_STABLE, 60000);
  pm_object_stat st;
  cr_assert_eq(pm_stat(p, path, &st), 0);
  cr_assert_eq(pm_read_version(p, path, st.version, 0, buf, 100), 100);
  check_bytes(buf, 0, 100, 0);
  /* Rewritten: cached page 0 is still the pinned version's and is served;
   * page 1 meets the change at the origin: PM_ECHANGED, where pm_read
   * would go on with the new version. */
  usleep(10000);
  make_object("v.bin", size + 999, 1);
  cr_assert_eq(pm_read_version(p, path, st.version, 0, buf, 100), 100);
  check_bytes(buf, 0, 100, 0);
  cr_assert_eq(pm_read_version(p, path, st.version, PS, buf, 100),
               PM_ECHANGED);
  cr_assert(strstr(pm_peer_errmsg(p), st.version), "%s", pm_peer_errmsg(p));
  /* The metadata now says the new version: every pinned read fails at
   * once, cached pages or not; the new version reads. */
  cr_assert_eq(pm_read_version(p, path, st.version, 0, buf, 100),
               PM_ECHANGED);
  pm_object_stat now;
  cr_assert_eq(pm_stat(p, path, &now), 0);
  cr_assert_str_neq(now.version, st.version);
  cr_assert_eq(pm_read_version(p, path, now.version, PS, buf, size),
               (ssize_t)(size + 999 - PS));
  check_bytes(buf, PS, size + 999 - PS, 1);
  cr_assert_eq(pm_read_version(p, path, NULL, 0, buf, 1), PM_EINVAL);
  cr_assert_eq(pm_read_version(p, path, "", 0, buf, 1), PM_EINVAL);
  pm_peer_close(p);
  free(buf);
}

Test(readpath, batch_reads_many_ranges_of_many_objects) {
  setup_dirs();
  char paths[4][400];
  for (int i = 0; i < 4; i++) {
    char name[32];
    snprintf(name, sizeof name, "f%d.bin", i);
    snprintf(paths[i], sizeof paths[i], "%s", make_object(name, 7 * PS + i, 0));
  }
  pm_peer *p = open_peer(64 << 20, 0, PM_EVICT_STABLE, 60000);
  pm_range ranges[40];
  unsigned char *bufs[40];
  for (int i = 0; i < 40; i++) {
    size_t len = (size_t)(i * 7919) % (3 * PS) + 1;
    bufs[i] = malloc(len);
    ranges[i] = (pm_range){.uri = paths[i % 4],
                           .offset = (uint64_t)(i * 104729) % (5 * PS),
                           .length = len, .buf = bufs[i]};
  }
  ranges[39].uri = "/nonexistent/pagemesh/object";
  int err = pm_read_batch(p, ranges, 40);
  cr_assert_eq(err, PM_ENOENT);
  cr_assert(strstr(pm_peer_errmsg(p), "/nonexistent/pagemesh/object"),
            "detail names the object: %s", pm_peer_errmsg(p));
  for (int i = 0; i < 39; i++) {
    cr_assert_eq(ranges[i].result, (ssize_t)ranges[i].length);
    check_bytes(bufs[i], ranges[i].offset, ranges[i].length, 0);
  }
  cr_assert_eq(ranges[39].result, PM_ENOENT);
  for (int i = 0; i < 40; i++)
    free(bufs[i]);
  pm_peer_close(p);
}

Test(readpath, readahead_fetches_ahead_of_a_sequential_reader) {
  setup_dirs();
  const char *path = make_object("g.bin", 16 * PS, 0);
  pm_options o;
  pm_options_init(&o);
  o.cache_dir = cache;
  o.page_size = PS;
  o.readahead_pages = 4;
  pm_peer *p;
  cr_assert_eq(pm_peer_open(&o, &p), 0);
  unsigned char buf[PS];
  cr_assert_eq(pm_read(p, path, 0, buf, PS), (ssize_t)PS);
  cr_assert_eq(pm_read(p, path, PS, buf, PS), (ssize_t)PS);
  /* Pages 2..5 are fetched in the background: poll with a deadline. */
  uint64_t deadline = pm__now_ns() + 10000000000ull;
  while (stats_of(p).pages_disk < 6 && pm__now_ns() < deadline)
    usleep(1000);
  cr_assert_geq(stats_of(p).pages_disk, 6);
  uint64_t hits_before = stats_of(p).hits_disk + stats_of(p).hits_ram;
  cr_assert_eq(pm_read(p, path, 2 * PS, buf, PS), (ssize_t)PS);
  check_bytes(buf, 2 * PS, PS, 0);
  pm_stats s = stats_of(p);
  cr_assert_eq(s.hits_disk + s.hits_ram, hits_before + 1,
               "a prefetched page is a hit");
  pm_peer_close(p);
}

Test(readpath, map_gives_the_cached_bytes_without_a_copy) {
  setup_dirs();
  const char *path = make_object("h.bin", 3 * PS, 0);
  pm_peer *p = open_peer(64 << 20, 0, PM_EVICT_STABLE, 60000);
  pm_mapping m;
  cr_assert_eq(pm_map(p, path, PS + 5, 1000, &m), 0, "%s", pm_peer_errmsg(p));
  cr_assert_eq(m.length, 1000);
  check_bytes(m.data, PS + 5, 1000, 0);
  cr_assert_eq(pm_map(p, path, PS - 5, 10, &(pm_mapping){0}), PM_ERANGE);
  pm_unmap(p, &m);
  cr_assert_null(m.data);
  pm_peer_close(p);
}

Test(readpath, bad_input_gives_clear_errors) {
  setup_dirs();
  pm_peer *p = open_peer(64 << 20, 0, PM_EVICT_STABLE, 60000);
  char buf[16];
  cr_assert_eq(pm_read(p, "nosuch://x/y", 0, buf, 16), PM_EBADURI);
  cr_assert_eq(pm_read(p, "/definitely/not/here", 0, buf, 16), PM_ENOENT);
  cr_assert(strstr(pm_peer_errmsg(p), "/definitely/not/here"));
  cr_assert_eq(pm_read(p, NULL, 0, buf, 16), PM_EINVAL);
  pm_peer_close(p);

  pm_options o;
  pm_options_init(&o);
  o.cache_dir = cache;
  o.page_size = 100000; /* not a power of two */
  cr_assert_eq(pm_peer_open(&o, &p), PM_EINVAL);
  o.page_size = 32 << 20;
  cr_assert_eq(pm_peer_open(&o, &p), PM_EINVAL);
}

/* The eviction comparison, end to end through the read path: a
 * dataset 4x the disk tier, read in a new random order every epoch. */
static double epoch_hit_rate(pm_eviction ev) {
  setup_dirs();
  enum { OBJECTS = 80, EPOCHS = 5 };
  char paths[OBJECTS][400];
  for (int i = 0; i < OBJECTS; i++) {
    char name[32];
    snprintf(name, sizeof name, "o%d.bin", i);
    snprintf(paths[i], sizeof paths[i], "%s", make_object(name, PS, 0));
  }
  pm_peer *p = open_peer(20 * PS, 0, ev, 600000);
  unsigned char *buf = malloc(PS);
  int order[OBJECTS];
  unsigned seed = 42;
  uint64_t hits = 0, lookups = 0;
  for (int e = 0; e < EPOCHS; e++) {
    for (int i = 0; i < OBJECTS; i++)
      order[i] = i;
    for (int i = OBJECTS - 1; i > 0; i--) {
      int j = (int)(rand_r(&seed) % (unsigned)(i + 1));
      int t = order[i]; order[i] = order[j]; order[j] = t;
    }
    pm_stats before = stats_of(p);
    for (int i = 0; i < OBJECTS; i++)
      cr_assert_eq(pm_read(p, paths[order[i]], 0, buf, PS), (ssize_t)PS);
    pm_stats after = stats_of(p);
    if (e >= 1) {
      hits += after.hits_disk - before.hits_disk;
      lookups += OBJECTS;
    }
  }
  free(buf);
  pm_peer_close(p);
  return (double)hits / (double)lookups;
}

Test(readpath, stable_policy_keeps_hitting_where_lru_does_not) {
  double lru = epoch_hit_rate(PM_EVICT_LRU);
  double stable = epoch_hit_rate(PM_EVICT_STABLE);
  fprintf(stderr, "epochs 2-5, dataset = 4x cache: hit rate lru %.3f, "
          "stable %.3f (ideal 0.25)\n", lru, stable);
  cr_assert_geq(stable, 0.2);
  cr_assert_lt(lru, stable - 0.1);
}

/* pm_prefetch of "everything from here" (a length of UINT64_MAX, as
 * Python's peer.prefetch(uri, 1, -1) gives) stops at the object's end:
 * the end did not wrap around to fetch ~2^44 empty pages past it. */
Test(readpath, a_prefetch_to_the_end_fetches_the_object_once) {
  setup_dirs();
  const char *path = make_object("p.bin", 3 * PS + 10, 0);
  pm_peer *p = open_peer(64 * PS, 0, PM_EVICT_LRU, 60000);
  cr_assert_eq(pm_prefetch(p, path, 1, UINT64_MAX), 0, "%s",
               pm_peer_errmsg(p));
  uint64_t deadline = pm__now_ns() + 10000000000ull;
  while (stats_of(p).pages_disk < 4 && pm__now_ns() < deadline)
    usleep(1000);
  usleep(200 * 1000); /* anything more would be queued by now */
  pm_stats s = stats_of(p);
  cr_assert_eq(s.pages_disk, 4, "disk %llu ram %llu misses %llu",
               (unsigned long long)s.pages_disk,
               (unsigned long long)s.pages_ram,
               (unsigned long long)s.misses);
  cr_assert_eq(s.misses, 4);
  unsigned char buf[PS];
  cr_assert_eq(pm_read(p, path, 3 * PS, buf, PS), 10);
  check_bytes(buf, 3 * PS, 10, 0);
  pm_peer_close(p);
}

/* A refused capacity change leaves the capacities as they were: the
 * refused disk value was kept, and every later change failed with it. */
Test(readpath, a_refused_capacity_change_changes_nothing) {
  setup_dirs();
  pm_options o;
  pm_options_init(&o);
  o.cache_dir = cache;
  o.page_size = PS;
  o.disk_capacity = 0; /* no disk tier: a disk capacity is refused */
  o.flags = PM_OPEN_STANDALONE;
  pm_peer *p;
  cr_assert_eq(pm_peer_open(&o, &p), 0, "%s", pm_peer_errmsg(NULL));
  cr_assert_lt(pm_set_capacity(p, 1ull << 30, 0), 0);
  cr_assert_eq(pm_set_capacity(p, 0, 4u << 20), 0, "%s", pm_peer_errmsg(p));
  pm_stats s = stats_of(p);
  cr_assert_eq(s.ram_capacity, 4u << 20);
  pm_peer_close(p);
}
