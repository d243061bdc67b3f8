/*
 * tests/core/test_store_alloc.c - allocation-failure walks over the page
 * store: fail the first allocation of a call, then the second, and so on
 * until the call gets through without a failure. Each time the call must
 * report an error (or succeed), leave nothing half-built, and the store
 * must keep working. malloc, calloc and realloc are replaced in this
 * program (glibc allows it); not under AddressSanitizer, which owns them.
 */
#include "test_store_util.h"

#if !defined(__SANITIZE_ADDRESS__)

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *p, size_t size);

static long countdown = -1; /* allocations left before the failing one */

static bool fail_now(void) {
  return countdown >= 0 && countdown-- == 0;
}

void *malloc(size_t size) {
  return fail_now() ? NULL : __libc_malloc(size);
}

void *calloc(size_t count, size_t size) {
  return fail_now() ? NULL : __libc_calloc(count, size);
}

void *realloc(void *p, size_t size) {
  return fail_now() ? NULL : __libc_realloc(p, size);
}

#endif

static char *dir;

static void setup(void) {
  dir = test_mkdtemp();
}

static void teardown(void) {
  test_rmtree(dir);
  free(dir);
}

#if defined(__SANITIZE_ADDRESS__)
#define INJECTION_DISABLED true
#else
#define INJECTION_DISABLED false
#endif

TestSuite(store_alloc, .init = setup, .fini = teardown, .timeout = 120,
          .disabled = INJECTION_DISABLED);

/* Arm the n-th allocation to fail; returns whether it was reached. */
#define WITH_FAILURE(n, call, reached)                                        \
  do {                                                                        \
    countdown = (long)(n);                                                    \
    call;                                                                     \
    reached = countdown < 0;                                                  \
    countdown = -1;                                                           \
  } while (0)

Test(store_alloc, open_walk) {
#if !defined(__SANITIZE_ADDRESS__)
  pm_store *store = NULL;
  pm_store_config config = test_config(dir, 1 << 20, 1 << 20);
  cr_assert_eq(pm__store_open(&config, &store), 0);
  for (uint64_t i = 0; i < 20; i++)
    test_put(store, i, 0);
  pm__store_close(store);
  bool reached = true;
  int rc = 0, failures = 0;
  for (long n = 0; reached; n++) {
    store = NULL;
    WITH_FAILURE(n, rc = pm__store_open(&config, &store), reached);
    cr_assert(rc == 0 || rc == PM_ENOMEM || rc == PM_EIO,
              "failing allocation %ld: %d (%s)", n, rc, pm__errmsg());
    failures += rc != 0;
    if (rc == 0) {
      uint8_t buf[TEST_PAGE];
      pm_page_id id = test_page_id(3);
      cr_assert_eq(pm__store_read(store, &id, 0, buf, sizeof buf, NULL),
                   TEST_PAGE);
      pm__store_close(store);
    }
  }
  cr_log_info("open: %d failures injected", failures);
  cr_assert_gt(failures, 3);
#endif
}

Test(store_alloc, put_and_read_walk) {
#if !defined(__SANITIZE_ADDRESS__)
  pm_store *store;
  pm_store_config config = test_config(dir, 1 << 20, 1 << 20);
  cr_assert_eq(pm__store_open(&config, &store), 0);
  uint8_t page[TEST_PAGE], buf[TEST_PAGE];
  bool reached = true;
  int rc = 0;
  for (long n = 0; reached; n++) {
    pm_page_id id = test_page_id((uint64_t)n);
    test_fill(page, sizeof page, (uint64_t)n);
    WITH_FAILURE(n, rc = pm__store_put(store, &id, "s3://b/k", page,
                                       sizeof page),
                 reached);
    cr_assert(rc == 0 || rc == PM_ENOMEM, "put, failing allocation %ld: %d",
              n, rc);
    if (rc == 0) {
      cr_assert_eq(pm__store_read(store, &id, 0, buf, sizeof buf, NULL),
                   TEST_PAGE);
      cr_assert(test_check(buf, sizeof buf, (uint64_t)n, 0));
    }
  }
  pm_store_stats stats;
  pm__store_stats(store, &stats);
  cr_assert_eq(stats.corrupt_pages, 0);
  pm__store_close(store);
  /* what reached the disk is whole */
  cr_assert_eq(pm__store_open(&config, &store), 0);
  pm__store_stats(store, &stats);
  cr_assert_eq(stats.pages_disk, (uint64_t)test_count_files(dir));
  pm__store_close(store);
#endif
}
