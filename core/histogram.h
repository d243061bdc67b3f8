/*
 * core/histogram.h - latency histograms that any thread may record into
 * without a lock: fixed log-scale buckets (1, 2.5, 5 per decade, from
 * 10 microseconds to 50 seconds, plus one bucket above), an atomic counter
 * per bucket and an atomic sum. Readers take a snapshot, which is
 * consistent per counter (not across counters), as Prometheus expects of
 * a scrape. The peer keeps one for pm_read/pm_read_batch calls and the
 * origin set one for origin requests; both appear in the status JSON.
 */
#ifndef PM_CORE_HISTOGRAM_H
#define PM_CORE_HISTOGRAM_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Finite upper bounds; slot PM_HISTOGRAM_BOUNDS counts what is above the
 * largest one. */
#define PM_HISTOGRAM_BOUNDS 21
#define PM_HISTOGRAM_SLOTS (PM_HISTOGRAM_BOUNDS + 1)

typedef struct pm_histogram {
  _Atomic uint64_t counts[PM_HISTOGRAM_SLOTS]; /* per slot, not cumulative */
  _Atomic uint64_t sum_ns;                     /* of every recorded value */
} pm_histogram;

/* The inclusive upper bound of slot `slot` in nanoseconds, for slot <
 * PM_HISTOGRAM_BOUNDS; UINT64_MAX for the last slot. */
uint64_t pm__histogram_bound_ns(size_t slot);

/* The slot a duration of `ns` falls into. */
size_t pm__histogram_slot(uint64_t ns);

/* Count one duration. Lock-free; safe from any thread. */
void pm__histogram_record(pm_histogram *h, uint64_t ns);

/* Add counts recorded elsewhere (an attached process's, received by the
 * node peer): `count` slots (extra slots are ignored, missing ones are
 * zero) and their sum. Safe from any thread. */
void pm__histogram_add(pm_histogram *h, const uint64_t *counts, size_t count,
                       uint64_t sum_ns);

/* Copy the counters out (counts has PM_HISTOGRAM_SLOTS entries). */
void pm__histogram_snapshot(pm_histogram *h, uint64_t *counts,
                            uint64_t *sum_ns);

/* {"counts": [per slot], "count": total, "sum_ns": sum}, or NULL when out
 * of memory. */
json_t *pm__histogram_json(pm_histogram *h);

/* The finite bounds in microseconds, as a JSON array of integers, or NULL
 * when out of memory. */
json_t *pm__histogram_bounds_json(void);

#endif /* PM_CORE_HISTOGRAM_H */
