/*
 * tests/core/test_pagemap.c - the page id hash table: insert, look up,
 * remove (backward shift keeps every entry reachable), growth, iteration,
 * and a random walk checked against a plain array.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "core/pagemap.h"

TestSuite(pagemap, .timeout = 30);

static pm_page_id id_of(uint64_t n) {
  return pm__page_id("file:///x", "v", n, 65536);
}

/* Ids whose hashes collide in a small table, to exercise probe runs. */
static pm_page_id colliding_id(uint64_t n) {
  pm_page_id id = id_of(n);
  memset(id.bytes, 0, 8); /* same hash, different ids */
  id.bytes[15] = (uint8_t)n;
  id.bytes[14] = (uint8_t)(n >> 8);
  return id;
}

Test(pagemap, put_get_remove) {
  pm_pagemap map;
  cr_assert_eq(pm__pagemap_init(&map, 0), 0);
  int values[1000];
  for (int i = 0; i < 1000; i++) {
    pm_page_id id = id_of((uint64_t)i);
    cr_assert_eq(pm__pagemap_put(&map, &id, &values[i]), 0);
  }
  cr_assert_eq(pm__pagemap_count(&map), 1000);
  pm_page_id again = id_of(5);
  cr_assert_eq(pm__pagemap_put(&map, &again, &values[0]), PM_EEXIST);
  for (int i = 0; i < 1000; i++) {
    pm_page_id id = id_of((uint64_t)i);
    cr_assert_eq(pm__pagemap_get(&map, &id), &values[i]);
  }
  for (int i = 0; i < 1000; i += 2) {
    pm_page_id id = id_of((uint64_t)i);
    cr_assert_eq(pm__pagemap_remove(&map, &id), &values[i]);
    cr_assert_null(pm__pagemap_remove(&map, &id));
  }
  for (int i = 0; i < 1000; i++) {
    pm_page_id id = id_of((uint64_t)i);
    cr_assert_eq(pm__pagemap_get(&map, &id), i % 2 ? &values[i] : NULL);
  }
  cr_assert_eq(pm__pagemap_count(&map), 500);
  pm__pagemap_destroy(&map);
}

Test(pagemap, collisions_survive_removal) {
  pm_pagemap map;
  cr_assert_eq(pm__pagemap_init(&map, 8), 0);
  int values[12];
  for (int i = 0; i < 12; i++) {
    pm_page_id id = colliding_id((uint64_t)i);
    cr_assert_eq(pm__pagemap_put(&map, &id, &values[i]), 0);
  }
  for (int i = 0; i < 12; i += 3) {
    pm_page_id id = colliding_id((uint64_t)i);
    cr_assert_eq(pm__pagemap_remove(&map, &id), &values[i]);
  }
  for (int i = 0; i < 12; i++) {
    pm_page_id id = colliding_id((uint64_t)i);
    cr_assert_eq(pm__pagemap_get(&map, &id), i % 3 ? &values[i] : NULL,
                 "entry %d", i);
  }
  pm__pagemap_destroy(&map);
}

Test(pagemap, iteration_visits_each_once) {
  pm_pagemap map;
  cr_assert_eq(pm__pagemap_init(&map, 10), 0);
  static int values[300];
  for (int i = 0; i < 300; i++) {
    pm_page_id id = id_of((uint64_t)i);
    cr_assert_eq(pm__pagemap_put(&map, &id, &values[i]), 0);
  }
  int seen[300] = {0};
  size_t cursor = 0;
  pm_page_id id;
  int *value;
  while ((value = pm__pagemap_next(&map, &cursor, &id))) {
    int i = (int)(value - values);
    pm_page_id expected = id_of((uint64_t)i);
    cr_assert(pm__page_id_eq(&id, &expected));
    seen[i]++;
  }
  for (int i = 0; i < 300; i++)
    cr_assert_eq(seen[i], 1);
  pm__pagemap_destroy(&map);
}

/* Random puts and removes over a small key space, against an array. */
Test(pagemap, random_walk_matches_reference) {
  enum { KEYS = 64, STEPS = 20000 };
  pm_pagemap map;
  cr_assert_eq(pm__pagemap_init(&map, 0), 0);
  static int values[KEYS];
  bool present[KEYS] = {false};
  unsigned seed = 12345;
  for (int step = 0; step < STEPS; step++) {
    int k = rand_r(&seed) % KEYS;
    pm_page_id id = (k & 1) ? colliding_id((uint64_t)k) : id_of((uint64_t)k);
    if (rand_r(&seed) % 2) {
      cr_assert_eq(pm__pagemap_put(&map, &id, &values[k]),
                   present[k] ? PM_EEXIST : 0);
      present[k] = true;
    } else {
      cr_assert_eq(pm__pagemap_remove(&map, &id),
                   present[k] ? &values[k] : NULL);
      present[k] = false;
    }
  }
  size_t live = 0;
  for (int k = 0; k < KEYS; k++) {
    pm_page_id id = (k & 1) ? colliding_id((uint64_t)k) : id_of((uint64_t)k);
    cr_assert_eq(pm__pagemap_get(&map, &id), present[k] ? &values[k] : NULL);
    live += present[k];
  }
  cr_assert_eq(pm__pagemap_count(&map), live);
  pm__pagemap_destroy(&map);
}

Test(pagemap, zeroed_map_is_empty) {
  pm_pagemap map = {0};
  pm_page_id id = id_of(1);
  size_t cursor = 0;
  cr_assert_null(pm__pagemap_get(&map, &id));
  cr_assert_null(pm__pagemap_remove(&map, &id));
  cr_assert_null(pm__pagemap_next(&map, &cursor, NULL));
  pm__pagemap_destroy(&map);
}
