/*
 * tests/core/test_store.c - the page store as the read path uses it: round
 * trips, short pages and ranges, restart, corruption, capacity of each
 * tier, the epoch hit rates of LRU and STABLE, adaptation to a new working
 * set, a full disk, zero-copy access, removal, and many threads at once.
 */
#include "test_store_util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/mount.h>

static char *dir;

static void setup(void) {
  dir = test_mkdtemp();
}

/* Also after a failed assertion: unmount a test's small file system. */
static void teardown(void) {
  if (!dir)
    return;
  char small[600];
  snprintf(small, sizeof small, "%s/small", dir);
  umount2(small, MNT_DETACH);
  test_rmtree(dir);
  free(dir);
  dir = NULL;
}

/* Criterion does not run .fini for a skipped test: clean up first. */
static void skip_test(const char *what) {
  int e = errno;
  teardown();
  cr_skip_test("%s: %s", what, strerror(e));
}

TestSuite(store, .init = setup, .fini = teardown, .timeout = 120);

static pm_store *open_store(pm_store_config config) {
  pm_store *store;
  int rc = pm__store_open(&config, &store);
  cr_assert_eq(rc, 0, "open: %s", pm__errmsg());
  return store;
}

static pm_store_stats stats_of(pm_store *store) {
  pm_store_stats stats;
  pm__store_stats(store, &stats);
  return stats;
}

static ssize_t read_page(pm_store *store, uint64_t index, uint32_t offset,
                         uint8_t *buf, size_t length, pm_tier *tier) {
  pm_page_id id = test_page_id(index);
  return pm__store_read(store, &id, offset, buf, length, tier);
}

Test(store, round_trip_short_page_and_ranges) {
  pm_store *store = open_store(test_config(dir, 1 << 20, 1 << 20));
  uint8_t buf[TEST_PAGE];
  pm_tier tier;
  cr_assert_eq(read_page(store, 1, 0, buf, sizeof buf, &tier), PM_ENOENT);
  cr_assert_eq(tier, PM_TIER_NONE);
  test_put(store, 1, 0);
  pm_page_id last = test_page_id(2);
  test_fill(buf, 777, 2);
  cr_assert_eq(pm__store_put(store, &last, "s3://bucket/object", buf, 777), 0);
  cr_assert_eq(read_page(store, 1, 0, buf, sizeof buf, &tier), TEST_PAGE);
  cr_assert_eq(tier, PM_TIER_RAM);
  cr_assert(test_check(buf, TEST_PAGE, 1, 0));
  cr_assert_eq(read_page(store, 1, 1000, buf, 24, NULL), 24);
  cr_assert(test_check(buf, 24, 1, 1000));
  cr_assert_eq(read_page(store, 2, 0, buf, sizeof buf, NULL), 777);
  cr_assert(test_check(buf, 777, 2, 0));
  cr_assert_eq(read_page(store, 2, 700, buf, 200, NULL), 77);
  cr_assert(test_check(buf, 77, 2, 700));
  cr_assert_eq(read_page(store, 2, 777, buf, 10, NULL), 0);
  test_put(store, 1, 0); /* present: left as it is */
  pm_store_stats stats = stats_of(store);
  cr_assert_eq(stats.pages_disk, 2);
  cr_assert_eq(stats.pages_ram, 2);
  cr_assert_eq(stats.disk_used, TEST_PAGE + 777);
  cr_assert_eq(stats.misses, 1);
  cr_assert_eq(stats.hits_ram, 5);
  pm__store_close(store);
}

Test(store, bad_arguments) {
  pm_store *store;
  pm_store_config config = test_config(dir, 1 << 20, 0);
  config.page_size = 100;
  cr_assert_eq(pm__store_open(&config, &store), PM_EINVAL);
  config = test_config(NULL, 1 << 20, 0);
  cr_assert_eq(pm__store_open(&config, &store), PM_EINVAL);
  config = test_config(dir, 1 << 20, 0);
  config.eviction = (pm_eviction)7;
  cr_assert_eq(pm__store_open(&config, &store), PM_EINVAL);
  store = open_store(test_config(dir, 1 << 20, 0));
  static uint8_t big[TEST_PAGE + 1];
  pm_page_id id = test_page_id(1);
  cr_assert_eq(pm__store_put(store, &id, "u", big, sizeof big), PM_EINVAL);
  cr_assert_eq(pm__store_put(store, &id, NULL, big, 1), PM_EINVAL);
  cr_assert_eq(pm__store_set_capacity(store, 1 << 20, 1 << 20), 0);
  pm__store_close(store);
  store = open_store(test_config(NULL, 0, 1 << 20));
  cr_assert_eq(pm__store_set_capacity(store, 1 << 20, 1 << 20), PM_EINVAL);
  pm__store_close(store);
}

Test(store, restart_serves_old_pages) {
  pm_store *store = open_store(test_config(dir, 1 << 20, 1 << 20));
  for (uint64_t i = 0; i < 20; i++)
    test_put(store, i, 0);
  pm__store_close(store);
  store = open_store(test_config(dir, 1 << 20, 1 << 20));
  cr_assert_eq(stats_of(store).pages_disk, 20);
  cr_assert_eq(stats_of(store).pages_ram, 0);
  uint8_t buf[TEST_PAGE];
  pm_tier tier;
  for (uint64_t i = 0; i < 20; i++) {
    cr_assert_eq(read_page(store, i, 0, buf, sizeof buf, &tier), TEST_PAGE);
    cr_assert_eq(tier, PM_TIER_DISK);
    cr_assert(test_check(buf, TEST_PAGE, i, 0));
  }
  /* promoted to RAM on the way */
  cr_assert_eq(read_page(store, 3, 0, buf, sizeof buf, &tier), TEST_PAGE);
  cr_assert_eq(tier, PM_TIER_RAM);
  cr_assert_eq(stats_of(store).pages_ram, 20);
  pm__store_close(store);
}

/* A page by reference (as owners serve it): its file, offset and stored
 * checksum. After a restart the page is unverified: with nowait that is
 * PM_EBUSY (the caller may not wait for a read), without it is verified
 * and opened, and from then on nowait opens it too. */
Test(store, open_disk_by_reference_and_nowait) {
  pm_store *store = open_store(test_config(dir, 1 << 20, 1 << 20));
  test_put(store, 7, 0);
  pm__store_close(store);
  store = open_store(test_config(dir, 1 << 20, 1 << 20));
  pm_page_id id = test_page_id(7);
  int fd = -1;
  uint64_t offset = 0;
  size_t length = 0;
  pm_checksum sum;
  cr_assert_eq(pm__store_open_disk(store, &id, &fd, &offset, &length, &sum,
                                   true), PM_EBUSY);
  cr_assert_eq(fd, -1);
  for (int nowait = 0; nowait < 2; nowait++) {
    cr_assert_eq(pm__store_open_disk(store, &id, &fd, &offset, &length, &sum,
                                     nowait), 0, "%s", pm__errmsg());
    uint8_t buf[TEST_PAGE];
    cr_assert_eq(length, TEST_PAGE);
    cr_assert_eq(pread(fd, buf, length, (off_t)offset), (ssize_t)length);
    cr_assert(test_check(buf, length, 7, 0));
    pm_checksum want = pm__checksum(buf, length);
    cr_assert(memcmp(want.bytes, sum.bytes, sizeof sum.bytes) == 0);
    close(fd);
  }
  pm_page_id other = test_page_id(8);
  cr_assert_eq(pm__store_open_disk(store, &other, &fd, &offset, &length,
                                   &sum, true), PM_ENOENT);
  pm__store_close(store);
}

static void corrupt_data_byte(uint64_t index, off_t where) {
  char path[512];
  test_page_path(dir, index, path, sizeof path);
  int fd = open(path, O_RDWR);
  cr_assert_geq(fd, 0, "%s", path);
  uint8_t byte;
  cr_assert_eq(pread(fd, &byte, 1, 4096 + where), 1);
  byte ^= 0x01;
  cr_assert_eq(pwrite(fd, &byte, 1, 4096 + where), 1);
  close(fd);
}

Test(store, corrupt_page_is_reported_removed_and_not_served) {
  pm_store *store = open_store(test_config(dir, 1 << 20, 1 << 20));
  test_put(store, 1, 0);
  test_put(store, 2, 0);
  pm__store_close(store);
  corrupt_data_byte(1, 4000);
  store = open_store(test_config(dir, 1 << 20, 1 << 20));
  uint8_t buf[16];
  /* a range far from the bad byte: the whole page is still checked */
  cr_assert_eq(read_page(store, 1, 0, buf, sizeof buf, NULL), PM_ECORRUPT);
  cr_assert_not(pm__store_contains(store, &(pm_page_id){0}));
  pm_page_id id = test_page_id(1);
  cr_assert_not(pm__store_contains(store, &id));
  cr_assert_eq(read_page(store, 1, 0, buf, sizeof buf, NULL), PM_ENOENT);
  cr_assert_eq(read_page(store, 2, 0, buf, sizeof buf, NULL), 16);
  pm_store_stats stats = stats_of(store);
  cr_assert_eq(stats.corrupt_pages, 1);
  cr_assert_eq(stats.pages_disk, 1);
  cr_assert_eq(stats.pages_ram, 1); /* page 2, promoted */
  /* refetched and stored again, it is served */
  test_put(store, 1, 0);
  cr_assert_eq(read_page(store, 1, 0, buf, sizeof buf, NULL), 16);
  cr_assert(test_check(buf, 16, 1, 0));
  pm__store_close(store);
}

Test(store, verify_always_catches_later_corruption) {
  pm_store_config config = test_config(dir, 1 << 20, 0);
  config.verify_always = true;
  pm_store *store = open_store(config);
  test_put(store, 1, 0);
  uint8_t buf[TEST_PAGE];
  cr_assert_eq(read_page(store, 1, 0, buf, sizeof buf, NULL), TEST_PAGE);
  corrupt_data_byte(1, 17);
  cr_assert_eq(read_page(store, 1, 100, buf, 10, NULL), PM_ECORRUPT);
  cr_assert_eq(stats_of(store).corrupt_pages, 1);
  pm__store_close(store);
}

Test(store, torn_and_garbage_files_removed_at_open) {
  pm_store *store = open_store(test_config(dir, 1 << 20, 0));
  test_put(store, 1, 0);
  test_put(store, 2, 0);
  pm__store_close(store);
  char path[512], garbage[512];
  test_page_path(dir, 1, path, sizeof path);
  cr_assert_eq(truncate(path, 5000), 0);
  snprintf(garbage, sizeof garbage, "%s/pages/ab", dir);
  mkdir(garbage, 0755);
  strcat(garbage, "/0123.pg");
  FILE *f = fopen(garbage, "w");
  fputs("garbage", f);
  fclose(f);
  char tmp[512];
  snprintf(tmp, sizeof tmp, "%s/tmp/1-1.tmp", dir); /* pid 1 is alive */
  f = fopen(tmp, "w");
  fclose(f);
  struct timespec old[2] = {{.tv_sec = 1000}, {.tv_sec = 1000}};
  utimensat(AT_FDCWD, tmp, old, 0);
  store = open_store(test_config(dir, 1 << 20, 0));
  cr_assert_eq(stats_of(store).pages_disk, 1);
  cr_assert_neq(access(path, F_OK), 0);
  cr_assert_neq(access(garbage, F_OK), 0);
  cr_assert_neq(access(tmp, F_OK), 0, "old tmp file left");
  uint8_t buf[16];
  cr_assert_eq(read_page(store, 1, 0, buf, sizeof buf, NULL), PM_ENOENT);
  pm__store_close(store);
}

/* What the read path does for one page: read it, and on a miss fetch it
 * (here: make it up) and put it. Returns true on a hit. */
static bool read_through(pm_store *store, uint64_t index) {
  uint8_t buf[TEST_PAGE];
  ssize_t n = read_page(store, index, 0, buf, sizeof buf, NULL);
  if (n >= 0) {
    cr_assert_eq(n, TEST_PAGE);
    cr_assert(test_check(buf, TEST_PAGE, index, 0), "page %llu",
              (unsigned long long)index);
    return true;
  }
  cr_assert_eq(n, PM_ENOENT, "read %llu: %s", (unsigned long long)index,
               pm__errmsg());
  pm_page_id id = test_page_id(index);
  test_fill(buf, sizeof buf, index);
  int rc = pm__store_put(store, &id, "s3://bucket/object", buf, sizeof buf);
  cr_assert(rc == 0 || rc == 1, "put: %d %s", rc, pm__errmsg());
  return false;
}

Test(store, each_tier_keeps_its_capacity) {
  static const pm_eviction policies[] = {PM_EVICT_LRU, PM_EVICT_STABLE};
  for (int p = 0; p < 2; p++) {
    pm_store_config config = test_config(dir, 30 * TEST_PAGE,
                                         10 * TEST_PAGE);
    config.eviction = policies[p];
    pm_store *store = open_store(config);
    for (uint64_t i = 0; i < 200; i++) {
      read_through(store, i % 70);
      pm_store_stats stats = stats_of(store);
      cr_assert_leq(stats.disk_used, 30 * TEST_PAGE);
      cr_assert_leq(stats.ram_used, 10 * TEST_PAGE);
    }
    pm_store_stats stats = stats_of(store);
    cr_assert_eq(stats.pages_disk, 30);
    cr_assert_eq(stats.pages_ram, 10);
    cr_assert_eq(stats.disk_used, 30 * TEST_PAGE);
    cr_assert_eq(test_count_files(dir), 30, "files on disk");
    if (policies[p] == PM_EVICT_STABLE)
      cr_assert_gt(stats.declined, 0);
    else
      cr_assert_gt(stats.evictions, 0);
    cr_assert_eq(pm__store_set_capacity(store, 5 * TEST_PAGE, TEST_PAGE), 0);
    stats = stats_of(store);
    cr_assert_eq(stats.pages_disk, 5);
    cr_assert_eq(stats.pages_ram, 1);
    cr_assert_eq(test_count_files(dir), 5);
    pm__store_close(store);
    test_rmtree(dir);
    mkdir(dir, 0700);
  }
}

/* ---- hit rates ----------------------------------------------------------- */

static void shuffle(uint64_t *order, size_t count, unsigned *seed) {
  for (size_t i = count - 1; i > 0; i--) {
    size_t j = (size_t)rand_r(seed) % (i + 1);
    uint64_t t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
}

/* `epochs` passes over `dataset` pages, each in a fresh random order,
 * through a store of the given capacities. Returns the hit rate of epochs
 * 2 and later. */
static double epoch_hit_rate(pm_eviction policy, uint64_t dataset,
                             uint64_t disk_pages, uint64_t ram_pages,
                             unsigned epochs) {
  pm_store_config config = test_config(dir, disk_pages * TEST_PAGE,
                                       ram_pages * TEST_PAGE);
  config.eviction = policy;
  pm_store *store = open_store(config);
  uint64_t *order = malloc(dataset * sizeof *order);
  for (uint64_t i = 0; i < dataset; i++)
    order[i] = i;
  unsigned seed = 2024;
  uint64_t hits = 0, reads = 0;
  for (unsigned epoch = 0; epoch < epochs; epoch++) {
    shuffle(order, dataset, &seed);
    uint64_t epoch_hits = 0;
    for (uint64_t k = 0; k < dataset; k++)
      epoch_hits += read_through(store, order[k]);
    cr_log_info("%s, epoch %u: hit rate %.3f",
                policy == PM_EVICT_LRU ? "LRU" : "STABLE", epoch + 1,
                (double)epoch_hits / dataset);
    if (epoch > 0) {
      hits += epoch_hits;
      reads += dataset;
    }
  }
  free(order);
  pm__store_close(store);
  test_rmtree(dir);
  mkdir(dir, 0700);
  return (double)hits / reads;
}

/* The test: 400 pages, a cache of 100, six epochs. LRU evicts just
 * what the next epoch needs; STABLE keeps a resident set and hits at about
 * capacity / dataset = 0.25. */
Test(store, epoch_hit_rate_stable_beats_lru) {
  double lru = epoch_hit_rate(PM_EVICT_LRU, 400, 100, 0, 6);
  double stable = epoch_hit_rate(PM_EVICT_STABLE, 400, 100, 0, 6);
  fprintf(stderr, "epoch hit rate (400 pages, cache 100, epochs 2-6): "
                  "LRU %.3f, STABLE %.3f\n", lru, stable);
  cr_assert_lt(lru, 0.15, "LRU hit rate %.3f", lru);
  cr_assert_geq(stable, 0.2, "STABLE hit rate %.3f", stable);
}

/* Both tiers at once: RAM 25 pages in front of a disk of 100. */
Test(store, epoch_hit_rate_with_both_tiers) {
  double lru = epoch_hit_rate(PM_EVICT_LRU, 400, 100, 25, 5);
  double stable = epoch_hit_rate(PM_EVICT_STABLE, 400, 100, 25, 5);
  fprintf(stderr, "epoch hit rate (400 pages, disk 100 + RAM 25): "
                  "LRU %.3f, STABLE %.3f\n", lru, stable);
  cr_assert_lt(lru, 0.15);
  cr_assert_geq(stable, 0.2);
}

/* Reads `set` pages (in a new order each pass) until a pass hits on every
 * page; returns the number of passes that took, or 0 if it never did. */
static unsigned passes_until_resident(pm_store *store, uint64_t first,
                                      uint64_t count, unsigned max_passes) {
  uint64_t *order = malloc(count * sizeof *order);
  for (uint64_t i = 0; i < count; i++)
    order[i] = first + i;
  unsigned seed = 7, result = 0;
  for (unsigned pass = 1; pass <= max_passes && !result; pass++) {
    shuffle(order, count, &seed);
    uint64_t hits = 0;
    for (uint64_t k = 0; k < count; k++)
      hits += read_through(store, order[k]);
    if (hits == count)
      result = pass;
  }
  free(order);
  return result;
}

/* A resident working set of 100 pages, read three times; then the job
 * moves on to 50 other pages read over and over: they must take over. */
Test(store, stable_adapts_to_a_new_working_set) {
  pm_store *store = open_store(test_config(dir, 100 * TEST_PAGE, 0));
  cr_assert_eq(passes_until_resident(store, 0, 100, 3), 2);
  passes_until_resident(store, 0, 100, 1);
  unsigned passes = passes_until_resident(store, 1000, 50, 40);
  cr_log_info("new working set resident after %u passes", passes);
  fprintf(stderr, "STABLE: new working set of 50 resident after %u passes\n",
          passes);
  cr_assert(passes > 0 && passes <= 20, "passes: %u", passes);
  pm__store_close(store);
}

/* A cache full of pages nobody reads any more (left by an earlier job):
 * a new dataset larger than the cache still gets cached, in epoch 2. */
Test(store, stale_pages_from_a_previous_run_give_way) {
  pm_store *store = open_store(test_config(dir, 100 * TEST_PAGE, 0));
  for (uint64_t i = 0; i < 100; i++)
    test_put(store, 5000 + i, 0);
  pm__store_close(store);
  store = open_store(test_config(dir, 100 * TEST_PAGE, 0));
  uint64_t order[1000];
  for (uint64_t i = 0; i < 1000; i++)
    order[i] = i;
  unsigned seed = 1;
  uint64_t hits = 0;
  for (int epoch = 0; epoch < 3; epoch++) {
    shuffle(order, 1000, &seed);
    hits = 0;
    for (int k = 0; k < 1000; k++)
      hits += read_through(store, order[k]);
  }
  cr_log_info("epoch 3 hit rate %.3f", hits / 1000.0);
  cr_assert_geq(hits, 80);
  pm__store_close(store);
}

/* ---- full disk, unwritable directory ------------------------------------- */

/* A 256 KiB tmpfs holds about 30 page files of 8 KiB. */
static bool mount_small_tmpfs(const char *path) {
  mkdir(path, 0755);
  return mount("tmpfs", path, "tmpfs", 0, "size=256k") == 0;
}

/* Every file below pages/ is a whole page, and tmp/ is empty. */
static void assert_no_partial_files(const char *cache, uint64_t expected) {
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s/tmp", cache);
  cr_assert_eq(test_count_files(tmp), 0, "tmp files left behind");
  pm_store *store = open_store(test_config(cache, 1 << 30, 0));
  cr_assert_eq(stats_of(store).pages_disk, expected);
  char pages[600];
  snprintf(pages, sizeof pages, "%s/pages", cache);
  cr_assert_eq(test_count_files(pages), (int)expected);
  pm__store_close(store);
}

Test(store, full_disk_is_enospc_and_leaves_nothing_partial) {
  char cache[512];
  snprintf(cache, sizeof cache, "%s/small", dir);
  if (!mount_small_tmpfs(cache))
    skip_test("cannot mount a tmpfs");
  pm_store *store = open_store(test_config(cache, 1 << 30, 0));
  uint64_t stored = 0;
  int rc = 0;
  uint8_t buf[TEST_PAGE];
  for (uint64_t i = 0; i < 100 && rc == 0; i++) {
    pm_page_id id = test_page_id(i);
    test_fill(buf, sizeof buf, i);
    rc = pm__store_put(store, &id, "s3://bucket/object", buf, sizeof buf);
    stored += rc == 0;
  }
  cr_assert_eq(rc, PM_ENOSPC, "rc %d: %s", rc, pm__errmsg());
  cr_assert(strstr(pm__errmsg(), cache), "detail: %s", pm__errmsg());
  pm_store_stats stats = stats_of(store);
  cr_assert_eq(stats.store_errors, 1);
  cr_assert_eq(stats.pages_disk, stored);
  cr_assert_eq(stats.disk_used, stored * TEST_PAGE);
  /* the store carries on: reads hit, and a freed page makes room */
  cr_assert_eq(read_page(store, 0, 0, buf, sizeof buf, NULL), TEST_PAGE);
  pm_page_id first = test_page_id(0);
  cr_assert_eq(pm__store_remove(store, &first), 0);
  test_put(store, 1000, 0);
  pm__store_close(store);
  assert_no_partial_files(cache, stored);
  umount(cache);
}

Test(store, full_disk_with_ram_still_stores_in_ram) {
  char cache[512];
  snprintf(cache, sizeof cache, "%s/small", dir);
  if (!mount_small_tmpfs(cache))
    skip_test("cannot mount a tmpfs");
  pm_store *store = open_store(test_config(cache, 1 << 30, 1 << 20));
  for (uint64_t i = 0; i < 60; i++)
    test_put(store, i, 0);
  pm_store_stats stats = stats_of(store);
  cr_assert_gt(stats.store_errors, 0);
  cr_assert_eq(stats.pages_ram, 60);
  pm__store_close(store);
  umount(cache);
}

Test(store, unwritable_directory_is_eacces) {
  char path[512];
  snprintf(path, sizeof path, "%s/not-a-dir", dir);
  FILE *f = fopen(path, "w");
  fclose(f);
  pm_store_config config = test_config(path, 1 << 20, 1 << 20);
  pm_store *store;
  cr_assert_eq(pm__store_open(&config, &store), PM_EACCES);
  cr_assert(strstr(pm__errmsg(), path), "detail: %s", pm__errmsg());
}

/* ---- zero-copy, removal -------------------------------------------------- */

Test(store, open_page_maps_disk_and_ram_pages) {
  pm_store *store = open_store(test_config(dir, 1 << 20, 1 << 20));
  test_put(store, 1, 0);
  int fd;
  uint64_t offset;
  size_t length;
  pm_page_id id = test_page_id(1), absent = test_page_id(2);
  cr_assert_eq(pm__store_open_page(store, &absent, &fd, &offset, &length),
               PM_ENOENT);
  cr_assert_eq(pm__store_open_page(store, &id, &fd, &offset, &length), 0);
  cr_assert_eq(offset % 4096, 0);
  cr_assert_eq(length, TEST_PAGE);
  cr_assert_eq(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
  /* evicted and removed: the descriptor still reads the page */
  cr_assert_eq(pm__store_set_capacity(store, 0, 0), 0);
  cr_assert_eq(stats_of(store).pages_disk, 0);
  const uint8_t *map = mmap(NULL, length, PROT_READ, MAP_SHARED, fd,
                            (off_t)offset);
  cr_assert_neq(map, MAP_FAILED);
  cr_assert(test_check(map, length, 1, 0));
  munmap((void *)map, length);
  close(fd);
  pm__store_close(store);

  store = open_store(test_config(NULL, 0, 1 << 20)); /* RAM only */
  test_put(store, 1, 0);
  cr_assert_eq(pm__store_open_page(store, &id, &fd, &offset, &length), 0);
  cr_assert_eq(offset, 0);
  map = mmap(NULL, length, PROT_READ, MAP_SHARED, fd, 0);
  cr_assert_neq(map, MAP_FAILED);
  cr_assert(test_check(map, length, 1, 0));
  munmap((void *)map, length);
  close(fd);
  pm__store_close(store);
}

Test(store, open_page_verifies_first) {
  pm_store *store = open_store(test_config(dir, 1 << 20, 0));
  test_put(store, 1, 0);
  pm__store_close(store);
  corrupt_data_byte(1, 0);
  store = open_store(test_config(dir, 1 << 20, 0));
  int fd;
  uint64_t offset;
  size_t length;
  pm_page_id id = test_page_id(1);
  cr_assert_eq(pm__store_open_page(store, &id, &fd, &offset, &length),
               PM_ECORRUPT);
  cr_assert_eq(pm__store_open_page(store, &id, &fd, &offset, &length),
               PM_ENOENT);
  pm__store_close(store);
}

static void put_uri(pm_store *store, uint64_t index, const char *uri) {
  uint8_t buf[100];
  pm_page_id id = test_page_id(index);
  test_fill(buf, sizeof buf, index);
  cr_assert_eq(pm__store_put(store, &id, uri, buf, sizeof buf), 0);
}

Test(store, remove_and_remove_prefix_across_tiers) {
  pm_store *store = open_store(test_config(dir, 1 << 20, 1 << 20));
  for (uint64_t i = 0; i < 10; i++)
    put_uri(store, i, i < 4 ? "s3://b/train/a" : "s3://b/test/b");
  pm_page_id id = test_page_id(9);
  cr_assert_eq(pm__store_remove(store, &id), 0);
  cr_assert_eq(pm__store_remove(store, &id), PM_ENOENT);
  cr_assert_not(pm__store_contains(store, &id));
  /* page 8 only on disk, page 7 only in RAM */
  cr_assert_eq(pm__store_set_capacity(store, 1 << 20, 1 << 20), 0);
  cr_assert_eq(pm__store_remove_prefix(store, "s3://b/train/"), 4);
  cr_assert_eq(pm__store_remove_prefix(store, "s3://b/train/"), 0);
  cr_assert_eq(pm__store_remove_prefix(store, "s3://b/"), 5);
  pm_store_stats stats = stats_of(store);
  cr_assert_eq(stats.pages_disk + stats.pages_ram, 0);
  pm__store_close(store);
  store = open_store(test_config(dir, 1 << 20, 1 << 20));
  cr_assert_eq(stats_of(store).pages_disk, 0);
  pm__store_close(store);
}

/* ---- many threads -------------------------------------------------------- */

typedef struct worker_arg {
  pm_store *store;
  unsigned seed;
  uint64_t ops, hits;
} worker_arg;

static void *worker(void *p) {
  worker_arg *arg = p;
  uint8_t buf[TEST_PAGE];
  for (uint64_t op = 0; op < arg->ops; op++) {
    uint64_t index = (uint64_t)rand_r(&arg->seed) % 150;
    unsigned what = (unsigned)rand_r(&arg->seed) % 100;
    pm_page_id id = test_page_id(index);
    if (what < 2) {
      pm__store_remove(arg->store, &id);
    } else if (what < 10) {
      int fd;
      uint64_t offset;
      size_t length;
      if (pm__store_open_page(arg->store, &id, &fd, &offset, &length) == 0) {
        cr_assert_eq(pread(fd, buf, length, (off_t)offset), (ssize_t)length);
        cr_assert(test_check(buf, length, index, 0));
        close(fd);
      }
    } else {
      arg->hits += read_through(arg->store, index);
    }
  }
  return NULL;
}

Test(store, concurrent_readers_and_writers) {
  static const pm_eviction policies[] = {PM_EVICT_STABLE, PM_EVICT_LRU};
  for (int p = 0; p < 2; p++) {
    pm_store_config config = test_config(dir, 60 * TEST_PAGE,
                                         20 * TEST_PAGE);
    config.eviction = policies[p];
    pm_store *store = open_store(config);
    enum { THREADS = 6 };
    pthread_t threads[THREADS];
    worker_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
      args[i] = (worker_arg){.store = store, .seed = (unsigned)i + 1,
                             .ops = 3000};
      pthread_create(&threads[i], NULL, worker, &args[i]);
    }
    uint64_t hits = 0;
    for (int i = 0; i < THREADS; i++) {
      pthread_join(threads[i], NULL);
      hits += args[i].hits;
    }
    pm_store_stats stats = stats_of(store);
    cr_log_info("%d threads: %llu hits, %llu evictions, %llu declined",
                THREADS, (unsigned long long)hits,
                (unsigned long long)stats.evictions,
                (unsigned long long)stats.declined);
    cr_assert_gt(hits, 0);
    cr_assert_leq(stats.disk_used, 60 * TEST_PAGE);
    cr_assert_leq(stats.ram_used, 20 * TEST_PAGE);
    cr_assert_eq(stats.corrupt_pages, 0);
    cr_assert_eq(stats.store_errors, 0);
    cr_assert_eq(stats.pages_disk, stats.disk_used / TEST_PAGE);
    pm__store_close(store);
    /* what is on disk is exactly what the index had */
    store = open_store(config);
    cr_assert_eq(stats_of(store).pages_disk, stats.pages_disk);
    pm__store_close(store);
    test_rmtree(dir);
    mkdir(dir, 0700);
  }
}

/* Two stores on one directory, as two processes would have. */
Test(store, two_stores_share_a_directory) {
  pm_store *a = open_store(test_config(dir, 1 << 20, 0));
  pm_store *b = open_store(test_config(dir, 1 << 20, 0));
  test_put(a, 1, 0);
  test_put(b, 1, 0); /* b does not know a's page: it writes it again */
  uint8_t buf[TEST_PAGE];
  cr_assert_eq(read_page(a, 1, 0, buf, sizeof buf, NULL), TEST_PAGE);
  pm_page_id id = test_page_id(1);
  cr_assert_eq(pm__store_remove(b, &id), 0);
  /* a's descriptor is cached: it still reads the removed page's bytes */
  cr_assert_eq(read_page(a, 1, 0, buf, sizeof buf, NULL), TEST_PAGE);
  cr_assert(test_check(buf, TEST_PAGE, 1, 0));
  pm__store_close(a);
  pm__store_close(b);
}

/* The mesh's own copies of pages (rebalance, drain) read them from disk
 * quietly: no hit counted, nothing promoted to RAM, no recency changed
 * (they counted as the user's reads, and pushed the RAM tier's hot pages
 * out with every page copied). */
Test(store, the_mesh_reads_pages_quietly) {
  pm_store *store = open_store(test_config(dir, 1 << 20, 0)); /* disk only */
  test_put(store, 5, 0);
  pm__store_close(store);
  store = open_store(test_config(dir, 1 << 20, 1 << 20));
  pm_store_stats before = stats_of(store);
  uint8_t buf[TEST_PAGE];
  pm_page_id id = test_page_id(5);
  cr_assert_eq(pm__store_read_quiet(store, &id, buf, sizeof buf), TEST_PAGE);
  cr_assert(test_check(buf, TEST_PAGE, 5, 0));
  pm_store_stats after = stats_of(store);
  cr_assert_eq(after.hits_disk, before.hits_disk);
  cr_assert_eq(after.hits_ram, before.hits_ram);
  cr_assert_eq(after.misses, before.misses);
  cr_assert_eq(after.pages_ram, 0, "promoted to RAM");
  pm_page_id absent = test_page_id(6);
  cr_assert_eq(pm__store_read_quiet(store, &absent, buf, sizeof buf),
               PM_ENOENT);
  pm__store_close(store);
}
