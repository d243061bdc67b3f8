/*
 * tests/core/test_store_util.h - helpers shared by the page store's test
 * suites: scratch directories, page contents that name their page, and
 * stores opened with small pages. Include it first, or define _GNU_SOURCE
 * (for nftw) before anything else.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#ifndef PM_TEST_STORE_UTIL_H
#define PM_TEST_STORE_UTIL_H

#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core_int.h"
#include "core/store.h"

#define TEST_PAGE 4096u

static inline int test_rm_entry(const char *path, const struct stat *st,
                                int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

/* rm -rf */
static inline void test_rmtree(const char *path) {
  nftw(path, test_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh directory under /tmp; the caller frees the string. */
static inline char *test_mkdtemp(void) {
  char *dir = strdup("/tmp/pm-test-store-XXXXXX");
  cr_assert(dir && mkdtemp(dir), "mkdtemp");
  return dir;
}

static inline pm_page_id test_page_id(uint64_t index) {
  return pm__page_id("s3://bucket/object", "v1", index, TEST_PAGE);
}

/* Page `index` holds bytes that depend on index and position. */
static inline void test_fill(uint8_t *buf, size_t length, uint64_t index) {
  for (size_t i = 0; i < length; i++)
    buf[i] = (uint8_t)(index * 131 + i * 7 + (i >> 8));
}

static inline bool test_check(const uint8_t *buf, size_t length,
                              uint64_t index, size_t offset) {
  for (size_t i = 0; i < length; i++)
    if (buf[i] != (uint8_t)(index * 131 + (i + offset) * 7 +
                            ((i + offset) >> 8)))
      return false;
  return true;
}

static inline pm_store_config test_config(const char *dir, uint64_t disk,
                                          uint64_t ram) {
  pm_store_config config = {
      .dir = dir,
      .disk_capacity = disk,
      .ram_capacity = ram,
      .page_size = TEST_PAGE,
      .eviction = PM_EVICT_STABLE,
  };
  return config;
}

/* Put page `index` (full size) and expect `expected`. */
static inline void test_put(pm_store *store, uint64_t index, int expected) {
  uint8_t buf[TEST_PAGE];
  pm_page_id id = test_page_id(index);
  test_fill(buf, sizeof buf, index);
  int rc = pm__store_put(store, &id, "s3://bucket/object", buf, sizeof buf);
  cr_assert_eq(rc, expected, "put %llu: %d (%s)", (unsigned long long)index,
               rc, pm__errmsg());
}

/* Path of the page file of `index` under dir. */
static inline void test_page_path(const char *dir, uint64_t index,
                                  char *out, size_t size) {
  char hex[33];
  pm_page_id id = test_page_id(index);
  pm__page_id_hex(&id, hex);
  snprintf(out, size, "%s/pages/%.2s/%s.pg", dir, hex, hex);
}

/* Number of regular files below path. */
static int test_file_count_;
static inline int test_count_entry(const char *path, const struct stat *st,
                                   int flag, struct FTW *ftw) {
  (void)path;
  (void)st;
  (void)ftw;
  if (flag == FTW_F)
    test_file_count_++;
  return 0;
}
static inline int test_count_files(const char *path) {
  test_file_count_ = 0;
  nftw(path, test_count_entry, 16, FTW_PHYS);
  return test_file_count_;
}

#endif /* PM_TEST_STORE_UTIL_H */
