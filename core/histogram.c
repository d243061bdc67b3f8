/*
 * core/histogram.c - lock-free latency histograms (see histogram.h). The
 * bounds follow the 1-2.5-5 series that Prometheus users know from its
 * client libraries, so that dashboards can compare pagemesh with other
 * services bucket for bucket. A record is a short scan of the bounds and
 * two relaxed atomic additions; nothing orders the counters against each
 * other, which a scrape tolerates (each counter only grows).
 */
#include "histogram.h"

/* Upper bounds in microseconds: 10 us .. 50 s. */
static const uint64_t bounds_us[PM_HISTOGRAM_BOUNDS] = {
    10,      25,      50,      100,     250,      500,      1000,
    2500,    5000,    10000,   25000,   50000,    100000,   250000,
    500000,  1000000, 2500000, 5000000, 10000000, 25000000, 50000000,
};

uint64_t pm__histogram_bound_ns(size_t slot) {
  if (slot >= PM_HISTOGRAM_BOUNDS)
    return UINT64_MAX;
  return bounds_us[slot] * 1000u;
}

size_t pm__histogram_slot(uint64_t ns) {
  size_t slot = 0;
  while (slot < PM_HISTOGRAM_BOUNDS && ns > bounds_us[slot] * 1000u)
    slot++;
  return slot;
}

void pm__histogram_record(pm_histogram *h, uint64_t ns) {
  atomic_fetch_add_explicit(&h->counts[pm__histogram_slot(ns)], 1,
                            memory_order_relaxed);
  atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

void pm__histogram_add(pm_histogram *h, const uint64_t *counts, size_t count,
                       uint64_t sum_ns) {
  for (size_t i = 0; i < count && i < PM_HISTOGRAM_SLOTS; i++)
    if (counts[i])
      atomic_fetch_add_explicit(&h->counts[i], counts[i],
                                memory_order_relaxed);
  atomic_fetch_add_explicit(&h->sum_ns, sum_ns, memory_order_relaxed);
}

void pm__histogram_snapshot(pm_histogram *h, uint64_t *counts,
                            uint64_t *sum_ns) {
  for (size_t i = 0; i < PM_HISTOGRAM_SLOTS; i++)
    counts[i] = atomic_load_explicit(&h->counts[i], memory_order_relaxed);
  *sum_ns = atomic_load_explicit(&h->sum_ns, memory_order_relaxed);
}

json_t *pm__histogram_json(pm_histogram *h) {
  uint64_t counts[PM_HISTOGRAM_SLOTS], sum_ns, total = 0;
  pm__histogram_snapshot(h, counts, &sum_ns);
  json_t *array = json_array();
  if (!array)
    return NULL;
  for (size_t i = 0; i < PM_HISTOGRAM_SLOTS; i++) {
    total += counts[i];
    json_array_append_new(array, json_integer((json_int_t)counts[i]));
  }
  return json_pack("{s:o,s:I,s:I}", "counts", array, "count",
                   (json_int_t)total, "sum_ns", (json_int_t)sum_ns);
}

json_t *pm__histogram_bounds_json(void) {
  json_t *array = json_array();
  for (size_t i = 0; array && i < PM_HISTOGRAM_BOUNDS; i++)
    json_array_append_new(array, json_integer((json_int_t)bounds_us[i]));
  return array;
}
