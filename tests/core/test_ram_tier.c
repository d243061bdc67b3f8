/*
 * tests/core/test_ram_tier.c - the RAM tier: round trip and ranges, the
 * two-phase insert (an invisible reservation, abort gives the room back),
 * capacity under both policies, removal by id and prefix, the memfd
 * copy used for zero-copy access to RAM-only pages, and visiting a page in
 * place.
 */
#include "test_store_util.h"

#include <sys/mman.h>

#include "core/ram_tier.h"
#include "core/ram_tier_slots.h"

static pm_sketch *sketch;

static void setup(void) {
  cr_assert_eq(pm__sketch_open(64, &sketch), 0);
}

static void teardown(void) {
  pm__sketch_close(sketch);
}

TestSuite(ram_tier, .init = setup, .fini = teardown, .timeout = 30);

static int put(pm_ram_tier *tier, uint64_t index, size_t length,
               const char *uri) {
  uint8_t buf[TEST_PAGE];
  pm_page_id id = test_page_id(index);
  test_fill(buf, length, index);
  return pm__ram_tier_put(tier, &id, uri, buf, length,
                          pm__sketch_clock(sketch));
}

static ssize_t get(pm_ram_tier *tier, uint64_t index, uint32_t offset,
                   uint8_t *buf, size_t length) {
  pm_page_id id = test_page_id(index);
  return pm__ram_tier_read(tier, &id, offset, buf, length,
                           pm__sketch_record(sketch, &id));
}

static pm_ram_tier *open_tier(uint64_t capacity, pm_eviction policy) {
  pm_ram_tier *tier;
  cr_assert_eq(pm__ram_tier_open(capacity, TEST_PAGE, policy, sketch, &tier),
               0);
  return tier;
}

static pm_tier_usage usage_of(pm_ram_tier *tier) {
  pm_tier_usage usage;
  pm__ram_tier_usage(tier, &usage);
  return usage;
}

Test(ram_tier, round_trip_and_ranges) {
  pm_ram_tier *tier = open_tier(1 << 20, PM_EVICT_STABLE);
  cr_assert_eq(put(tier, 1, TEST_PAGE, "u"), 0);
  cr_assert_eq(put(tier, 2, 10, "u"), 0);
  cr_assert_eq(put(tier, 1, TEST_PAGE, "u"), PM_EEXIST);
  uint8_t buf[TEST_PAGE];
  cr_assert_eq(get(tier, 1, 0, buf, sizeof buf), TEST_PAGE);
  cr_assert(test_check(buf, TEST_PAGE, 1, 0));
  cr_assert_eq(get(tier, 1, 4000, buf, 500), 96);
  cr_assert(test_check(buf, 96, 1, 4000));
  cr_assert_eq(get(tier, 2, 0, buf, sizeof buf), 10);
  cr_assert_eq(get(tier, 2, 20, buf, sizeof buf), 0);
  cr_assert_eq(get(tier, 3, 0, buf, sizeof buf), PM_ENOENT);
  cr_assert_eq(usage_of(tier).used, TEST_PAGE + 10);
  cr_assert_eq(usage_of(tier).pages, 2);
  pm__ram_tier_close(tier);
}

Test(ram_tier, reservation_is_invisible_until_commit) {
  pm_ram_tier *tier = open_tier(2 * TEST_PAGE, PM_EVICT_LRU);
  pm_page_id id = test_page_id(5);
  pm_ram_page *page;
  cr_assert_eq(pm__ram_tier_reserve(tier, &id, "u", TEST_PAGE, 1, &page), 0);
  cr_assert_not(pm__ram_tier_contains(tier, &id));
  cr_assert_eq(pm__ram_tier_reserve(tier, &id, "u", TEST_PAGE, 1, &page),
               PM_EEXIST);
  cr_assert_eq(usage_of(tier).used, TEST_PAGE);
  pm__ram_tier_abort(tier, page);
  cr_assert_eq(usage_of(tier).used, 0);
  cr_assert_eq(pm__ram_tier_reserve(tier, &id, "u", TEST_PAGE, 1, &page), 0);
  test_fill(pm__ram_page_data(page), TEST_PAGE, 5);
  pm__ram_tier_commit(tier, page);
  cr_assert(pm__ram_tier_contains(tier, &id));
  uint8_t buf[TEST_PAGE];
  cr_assert_eq(get(tier, 5, 0, buf, sizeof buf), TEST_PAGE);
  cr_assert(test_check(buf, TEST_PAGE, 5, 0));
  pm__ram_tier_close(tier);
}

Test(ram_tier, capacity_is_respected) {
  static const pm_eviction policies[] = {PM_EVICT_LRU, PM_EVICT_STABLE};
  for (int p = 0; p < 2; p++) {
    pm_ram_tier *tier = open_tier(10 * TEST_PAGE, policies[p]);
    for (uint64_t i = 0; i < 100; i++) {
      uint8_t buf[1];
      get(tier, i, 0, buf, 1); /* a lookup, as the read path does */
      int rc = put(tier, i, TEST_PAGE, "u");
      cr_assert(rc == 0 || rc == 1);
      cr_assert_leq(usage_of(tier).used, 10 * TEST_PAGE);
    }
    cr_assert_eq(usage_of(tier).pages, 10);
    if (policies[p] == PM_EVICT_LRU)
      cr_assert_eq(usage_of(tier).evictions, 90);
    cr_assert_eq(put(tier, 1000, TEST_PAGE, "u"),
                 policies[p] == PM_EVICT_LRU ? 0 : 1);
    pm__ram_tier_set_capacity(tier, 3 * TEST_PAGE);
    cr_assert_eq(usage_of(tier).pages, 3);
    pm__ram_tier_set_capacity(tier, 0);
    cr_assert_eq(usage_of(tier).used, 0);
    cr_assert_eq(put(tier, 2000, 1, "u"), 1);
    pm__ram_tier_close(tier);
  }
}

Test(ram_tier, remove_and_remove_prefix) {
  pm_ram_tier *tier = open_tier(1 << 20, PM_EVICT_STABLE);
  for (uint64_t i = 0; i < 10; i++)
    cr_assert_eq(put(tier, i, 100, i < 6 ? "s3://a/x" : "s3://b/y"), 0);
  pm_page_id id = test_page_id(0);
  cr_assert_eq(pm__ram_tier_remove(tier, &id), 0);
  cr_assert_eq(pm__ram_tier_remove(tier, &id), PM_ENOENT);
  pm_pagemap removed;
  cr_assert_eq(pm__pagemap_init(&removed, 0), 0);
  cr_assert_eq(pm__ram_tier_remove_prefix(tier, "s3://a/", &removed), 5);
  cr_assert_eq(pm__pagemap_count(&removed), 5);
  cr_assert_eq(pm__ram_tier_remove_prefix(tier, "s3://a/", NULL), 0);
  cr_assert_eq(usage_of(tier).pages, 4);
  cr_assert_eq(pm__ram_tier_remove_prefix(tier, "", NULL), 4);
  cr_assert_eq(usage_of(tier).used, 0);
  pm__pagemap_destroy(&removed);
  pm__ram_tier_close(tier);
}

Test(ram_tier, memfd_holds_the_page) {
  pm_ram_tier *tier = open_tier(1 << 20, PM_EVICT_STABLE);
  cr_assert_eq(put(tier, 4, 1000, "u"), 0);
  pm_page_id id = test_page_id(4), absent = test_page_id(5);
  int fd;
  size_t length;
  cr_assert_eq(pm__ram_tier_memfd(tier, &absent, 1, &fd, &length), PM_ENOENT);
  cr_assert_eq(pm__ram_tier_memfd(tier, &id, 1, &fd, &length), 0);
  cr_assert_eq(length, 1000);
  pm__ram_tier_remove(tier, &id); /* the memfd is independent */
  const uint8_t *map = mmap(NULL, length, PROT_READ, MAP_SHARED, fd, 0);
  cr_assert_neq(map, MAP_FAILED);
  cr_assert(test_check(map, length, 4, 0));
  cr_assert_eq(write(fd, "x", 1), -1, "the memfd is sealed");
  munmap((void *)map, length);
  close(fd);
  pm__ram_tier_close(tier);
}

typedef struct visit_probe {
  pm_ram_tier *tier;
  pm_page_id id;
  uint64_t index;
  bool remove_first; /* remove the page while visiting it */
  bool bytes_ok, still_ok;
} visit_probe;

static ssize_t probe_visit(const void *data, size_t length, void *arg) {
  visit_probe *p = arg;
  p->bytes_ok = test_check(data, length, p->index, 0);
  if (p->remove_first) {
    cr_assert_eq(pm__ram_tier_remove(p->tier, &p->id), 0);
    p->still_ok = test_check(data, length, p->index, 0); /* ASan: no UAF */
  }
  return (ssize_t)length + 1;
}

Test(ram_tier, visit_hands_out_the_page_in_place) {
  pm_ram_tier *tier = open_tier(1 << 20, PM_EVICT_STABLE);
  cr_assert_eq(put(tier, 6, 3000, "u"), 0);
  visit_probe p = {.tier = tier, .id = test_page_id(6), .index = 6};
  pm_page_id absent = test_page_id(7);
  cr_assert_eq(pm__ram_tier_visit(tier, &absent, 1, probe_visit, &p),
               PM_ENOENT);
  cr_assert_eq(pm__ram_tier_visit(tier, &p.id, 1, probe_visit, &p), 3001,
               "returns what visit returns");
  cr_assert(p.bytes_ok);
  /* Removed while visited: gone for later lookups, alive until visit
   * returns. */
  p.remove_first = true;
  cr_assert_eq(pm__ram_tier_visit(tier, &p.id, 1, probe_visit, &p), 3001);
  cr_assert(p.bytes_ok && p.still_ok);
  cr_assert_eq(pm__ram_tier_visit(tier, &p.id, 1, probe_visit, &p),
               PM_ENOENT);
  cr_assert_eq(usage_of(tier).pages, 0);
  pm__ram_tier_close(tier);
}

Test(ram_tier, slots_for_whole_pages_malloc_for_the_rest) {
  pm_ram_slots slots;
  pm__ram_slots_init(&slots, 4 * TEST_PAGE, TEST_PAGE);
  cr_assert_not_null(slots.base);
  cr_assert_eq((uintptr_t)slots.base % (2u << 20), 0);
  uint8_t *buffers[5];
  for (int i = 0; i < 5; i++)
    buffers[i] = pm__ram_slots_alloc(&slots, TEST_PAGE);
  for (int i = 0; i < 4; i++)
    cr_assert_eq(buffers[i], slots.base + (size_t)i * TEST_PAGE);
  bool fifth_in_region = buffers[4] >= slots.base &&
                         buffers[4] < slots.base + 4 * TEST_PAGE;
  cr_assert_not(fifth_in_region, "a fifth page fell back to malloc");
  uint8_t *short_page = pm__ram_slots_alloc(&slots, 100);
  cr_assert(short_page < slots.base ||
            short_page >= slots.base + 4 * TEST_PAGE);
  pm__ram_slots_free(&slots, buffers[2]);
  cr_assert_eq(pm__ram_slots_alloc(&slots, TEST_PAGE), buffers[2]);
  for (int i = 0; i < 5; i++)
    pm__ram_slots_free(&slots, buffers[i]);
  pm__ram_slots_free(&slots, short_page);
  pm__ram_slots_free(&slots, NULL);
  pm__ram_slots_destroy(&slots);
}

/* The copy the tiers use for pages (core/util.c, pm__copy). */
Test(ram_tier, large_copies_are_exact) {
  static uint8_t src[300000], dst[300001];
  test_fill(src, sizeof src, 77);
  dst[sizeof src] = 0xee;
  pm__copy(dst, src, sizeof src);
  cr_assert(test_check(dst, sizeof src, 77, 0));
  cr_assert_eq(dst[sizeof src], 0xee);
  pm__copy(dst + 1, src + 3, 70001);
  cr_assert(test_check(dst + 1, 70001, 77, 3));
}

static size_t resident_pages(void *base, size_t bytes) {
  size_t pages = bytes / 4096, count = 0;
  unsigned char *vec = malloc(pages);
  cr_assert_eq(mincore(base, bytes, vec), 0);
  for (size_t i = 0; i < pages; i++)
    count += vec[i] & 1;
  free(vec);
  return count;
}

/* A smaller RAM tier gives the memory of what it evicted back: its free
 * slots stayed resident before (RSS did not move). */
Test(ram_tier, a_shrink_gives_memory_back) {
  pm_ram_slots slots;
  pm__ram_slots_init(&slots, 256 * TEST_PAGE, TEST_PAGE);
  cr_assert_not_null(slots.base);
  void *bufs[256];
  for (int i = 0; i < 256; i++) {
    bufs[i] = pm__ram_slots_alloc(&slots, TEST_PAGE);
    memset(bufs[i], 0x5a, TEST_PAGE);
  }
  cr_assert_eq(resident_pages(slots.base, 256 * TEST_PAGE), 256);
  for (int i = 16; i < 256; i++)
    pm__ram_slots_free(&slots, bufs[i]);
  pm__ram_slots_release_free(&slots);
  cr_assert_eq(resident_pages(slots.base, 256 * TEST_PAGE), 16);
  /* a released slot is used again as before */
  uint8_t *again = pm__ram_slots_alloc(&slots, TEST_PAGE);
  memset(again, 1, TEST_PAGE);
  cr_assert_eq(again[TEST_PAGE - 1], 1);
  pm__ram_slots_free(&slots, again);
  for (int i = 0; i < 16; i++)
    pm__ram_slots_free(&slots, bufs[i]);
  pm__ram_slots_destroy(&slots);

  /* wired to the tier: a capacity shrink releases what it evicted */
  pm_ram_tier *tier = open_tier(64 * TEST_PAGE, PM_EVICT_LRU);
  for (uint64_t i = 0; i < 64; i++)
    cr_assert_eq(put(tier, i, TEST_PAGE, "s3://b/o"), 0);
  cr_assert_eq(usage_of(tier).pages, 64);
  pm__ram_tier_set_capacity(tier, 4 * TEST_PAGE);
  cr_assert_leq(usage_of(tier).pages, 4);
  pm__ram_tier_close(tier);
}
