/*
 * tests/core/meta_files.h - how many metadata files a cache directory
 * holds (<dir>/meta/<2 hex>/<16 hex>.m), for the tests of what is kept on
 * disk (test_meta, test_readpath).
 */
#ifndef PM_TEST_META_FILES_H
#define PM_TEST_META_FILES_H

#include <criterion/criterion.h>
#include <stdio.h>

static inline size_t meta_files_in(const char *dir) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "find %s/meta -name '*.m' | wc -l", dir);
  FILE *f = popen(cmd, "r");
  cr_assert_not_null(f);
  size_t n = 0;
  cr_assert_eq(fscanf(f, "%zu", &n), 1);
  pclose(f);
  return n;
}

#endif /* PM_TEST_META_FILES_H */
