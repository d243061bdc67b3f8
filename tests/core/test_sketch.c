/*
 * tests/core/test_sketch.c - the frequency sketch: counts, saturation,
 * halving after a window of lookups, the lookup clock, and that estimates
 * stay accurate (conservative update) with many more pages than capacity.
 */
#include <criterion/criterion.h>
#include <pthread.h>

#include "core/sketch.h"

TestSuite(sketch, .timeout = 30);

static pm_page_id id_of(uint64_t n) {
  return pm__page_id("s3://b/k", "v", n, 65536);
}

Test(sketch, counts_and_saturates) {
  pm_sketch *sketch;
  cr_assert_eq(pm__sketch_open(1000, &sketch), 0);
  pm_page_id a = id_of(1), b = id_of(2);
  cr_assert_eq(pm__sketch_estimate(sketch, &a), 0);
  for (int i = 0; i < 5; i++)
    pm__sketch_record(sketch, &a);
  cr_assert_eq(pm__sketch_estimate(sketch, &a), 5);
  cr_assert_eq(pm__sketch_estimate(sketch, &b), 0);
  for (int i = 0; i < 40; i++)
    pm__sketch_record(sketch, &a);
  cr_assert_eq(pm__sketch_estimate(sketch, &a), PM_SKETCH_MAX);
  cr_assert_eq(pm__sketch_clock(sketch), 45);
  pm__sketch_close(sketch);
}

Test(sketch, halves_after_window) {
  pm_sketch *sketch;
  cr_assert_eq(pm__sketch_open(16, &sketch), 0);
  uint64_t window = pm__sketch_window(sketch);
  cr_assert_eq(window, 16 * PM_SKETCH_WINDOW_PER_PAGE);
  pm_page_id hot = id_of(0);
  for (int i = 0; i < 12; i++)
    pm__sketch_record(sketch, &hot);
  /* Fill the window with other pages: the hot count is halved once. */
  for (uint64_t i = 12; i < window; i++) {
    pm_page_id other = id_of(1000 + i);
    pm__sketch_record(sketch, &other);
  }
  cr_assert_eq(pm__sketch_estimate(sketch, &hot), 6);
  /* Half a window later it is halved again. */
  for (uint64_t i = 0; i < window / 2; i++) {
    pm_page_id other = id_of(100000 + i);
    pm__sketch_record(sketch, &other);
  }
  cr_assert_eq(pm__sketch_estimate(sketch, &hot), 3);
  pm__sketch_close(sketch);
}

/* 4000 pages seen twice each, with a sketch sized for 1000 (window 10000):
 * estimates must mostly be exact, never below the truth. */
Test(sketch, accurate_beyond_capacity) {
  pm_sketch *sketch;
  cr_assert_eq(pm__sketch_open(1000, &sketch), 0);
  for (int round = 0; round < 2; round++)
    for (uint64_t i = 0; i < 4000; i++) {
      pm_page_id id = id_of(i);
      pm__sketch_record(sketch, &id);
    }
  int exact = 0;
  for (uint64_t i = 0; i < 4000; i++) {
    pm_page_id id = id_of(i);
    unsigned estimate = pm__sketch_estimate(sketch, &id);
    cr_assert_geq(estimate, 2); /* no halving yet: never below */
    exact += estimate == 2;
  }
  cr_log_info("%d of 4000 estimates exact", exact);
  cr_assert_geq(exact, 3800, "only %d exact estimates", exact);
  pm__sketch_close(sketch);
}

static void *record_many(void *arg) {
  pm_sketch *sketch = arg;
  for (uint64_t i = 0; i < 20000; i++) {
    pm_page_id id = id_of(i % 50);
    pm__sketch_record(sketch, &id);
  }
  return NULL;
}

Test(sketch, concurrent_records) {
  pm_sketch *sketch;
  cr_assert_eq(pm__sketch_open(100, &sketch), 0);
  pthread_t threads[4];
  for (int i = 0; i < 4; i++)
    pthread_create(&threads[i], NULL, record_many, sketch);
  for (int i = 0; i < 4; i++)
    pthread_join(threads[i], NULL);
  cr_assert_eq(pm__sketch_clock(sketch), 80000);
  pm_page_id id = id_of(7);
  cr_assert_gt(pm__sketch_estimate(sketch, &id), 0);
  pm__sketch_close(sketch);
}

Test(sketch, set_capacity_changes_window) {
  pm_sketch *sketch;
  cr_assert_eq(pm__sketch_open(100, &sketch), 0);
  pm__sketch_set_capacity(sketch, 400);
  cr_assert_eq(pm__sketch_window(sketch), 400 * PM_SKETCH_WINDOW_PER_PAGE);
  pm__sketch_close(sketch);
  pm__sketch_close(NULL);
}
