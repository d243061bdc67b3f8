/* Tests for core/placement.c with numbers: load balance over 100 members
 * and 10^6 pages, proportional shares for unequal weights, the fraction of
 * replicas remapped by one join and one leave, and Suspect ordering. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "core/placement.h"

TestSuite(placement, .timeout = 120);

#define PAGES 1000000
#define R 2

static void make_members(pm_placement_member *m, size_t n, uint64_t weight) {
  memset(m, 0, n * sizeof *m);
  for (size_t i = 0; i < n; i++) {
    for (int b = 0; b < 16; b++)
      m[i].id[b] = (uint8_t)((i * 2654435761u) >> (b % 4 * 8)) ^ (uint8_t)b;
    m[i].id[0] = (uint8_t)i;
    m[i].id[1] = (uint8_t)(i >> 8);
    m[i].weight = weight;
  }
  pm__placement_prepare(m, n);
}

static pm_page_id page_n(uint64_t i) {
  char uri[32];
  snprintf(uri, sizeof uri, "s3://bucket/obj-%llu", (unsigned long long)(i / 64));
  return pm__page_id(uri, "etag", i % 64, 1 << 20);
}

Test(placement, equal_weights_balance_within_ten_percent) {
  static pm_placement_member m[100];
  make_members(m, 100, 1ull << 40);
  static uint64_t load[100];
  memset(load, 0, sizeof load);
  size_t out[R];
  for (uint64_t p = 0; p < PAGES; p++) {
    pm_page_id id = page_n(p);
    cr_assert_eq(pm__placement_rank(m, 100, &id, out, R), R);
    cr_assert_neq(out[0], out[1]);
    for (int r = 0; r < R; r++)
      load[out[r]]++;
  }
  uint64_t max = 0;
  for (int i = 0; i < 100; i++)
    max = load[i] > max ? load[i] : max;
  double mean = (double)PAGES * R / 100;
  fprintf(stderr, "placement: 100 members, 10^6 pages, R=2: max/mean %.4f\n",
          max / mean);
  cr_assert_leq(max / mean, 1.1);
}

Test(placement, unequal_weights_get_proportional_shares) {
  static pm_placement_member m[30];
  make_members(m, 30, 0);
  uint64_t total_weight = 0;
  for (int i = 0; i < 30; i++) {
    m[i].weight = (uint64_t)(1 + i % 3) << 30; /* 1, 2 and 4 GiB... */
    if (i % 3 == 2)
      m[i].weight = 4ull << 30;
    total_weight += m[i].weight;
  }
  static uint64_t load[30];
  memset(load, 0, sizeof load);
  size_t out[1];
  for (uint64_t p = 0; p < PAGES / 2; p++) {
    pm_page_id id = page_n(p);
    pm__placement_rank(m, 30, &id, out, 1);
    load[out[0]]++;
  }
  double worst = 0;
  for (int i = 0; i < 30; i++) {
    double expected = (double)PAGES / 2 * (double)m[i].weight / total_weight;
    double dev = load[i] / expected - 1;
    worst = dev < 0 ? (-dev > worst ? -dev : worst) : (dev > worst ? dev : worst);
  }
  fprintf(stderr, "placement: weights 1:2:4, R=1: worst deviation from the "
          "proportional share %.2f%%\n", worst * 100);
  cr_assert_leq(worst, 0.05);
}

static double moved_fraction(pm_placement_member *before, size_t nb,
                             pm_placement_member *after, size_t na) {
  uint64_t moved = 0;
  size_t ob[R], oa[R];
  for (uint64_t p = 0; p < PAGES / 4; p++) {
    pm_page_id id = page_n(p);
    pm__placement_rank(before, nb, &id, ob, R);
    pm__placement_rank(after, na, &id, oa, R);
    bool changed = false;
    for (int r = 0; r < R; r++) {
      bool kept = false;
      for (int s = 0; s < R; s++)
        kept |= memcmp(before[ob[r]].id, after[oa[s]].id, 16) == 0;
      changed |= !kept;
    }
    moved += changed;
  }
  return (double)moved / ((double)PAGES / 4);
}

Test(placement, one_join_or_leave_moves_about_r_over_n) {
  static pm_placement_member m[101];
  make_members(m, 101, 1ull << 40);
  double join = moved_fraction(m, 100, m, 101);
  /* Leave: member 37 goes. */
  static pm_placement_member left[101];
  memcpy(left, m, sizeof left);
  left[37].health = PM_PLACE_GONE;
  double leave = moved_fraction(m, 100, left, 100);
  fprintf(stderr, "placement: pages remapped by one join %.4f, by one leave "
          "%.4f (R/N = %.4f)\n", join, leave, (double)R / 100);
  cr_assert_leq(join, 1.25 * R / 100);
  cr_assert_geq(join, 0.75 * R / 100);
  cr_assert_leq(leave, 1.25 * R / 100);
  cr_assert_geq(leave, 0.75 * R / 100);
}

Test(placement, suspects_are_read_last_and_gone_are_skipped) {
  pm_placement_member m[5];
  make_members(m, 5, 1);
  pm_page_id id = page_n(12345);
  size_t out[5];
  cr_assert_eq(pm__placement_rank(m, 5, &id, out, 5), 5);
  size_t best = out[0], second = out[1];
  m[best].health = PM_PLACE_SUSPECT;
  cr_assert_eq(pm__placement_rank(m, 5, &id, out, 2), 2);
  cr_assert_eq(out[0], second, "alive replica first");
  cr_assert_eq(out[1], best, "suspect replica last");
  m[best].health = PM_PLACE_GONE;
  cr_assert_eq(pm__placement_rank(m, 5, &id, out, 5), 4);
  for (int i = 0; i < 4; i++)
    cr_assert_neq(out[i], best);
  m[second].weight = 0;
  cr_assert_eq(pm__placement_rank(m, 5, &id, out, 5), 3);
}
