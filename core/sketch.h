/*
 * core/sketch.h - a count-min sketch of page access frequencies with 4-bit
 * counters and periodic halving (aging), shared by both tiers of the page
 * store to decide admission. It also keeps the store's lookup clock: the
 * number of lookups recorded so far, which the eviction policy uses to
 * measure how long a page has been idle. Lock-free; safe from any thread.
 */
#ifndef PM_CORE_SKETCH_H
#define PM_CORE_SKETCH_H

#include <stdatomic.h>

#include "core_int.h"

/* Counters saturate here. */
#define PM_SKETCH_MAX 15u
/* Each row has this many counters per page of capacity. */
#define PM_SKETCH_WIDTH_PER_PAGE 8u
/* All counters are halved after this many lookups per page of capacity. */
#define PM_SKETCH_WINDOW_PER_PAGE 10u

typedef struct pm_sketch pm_sketch;

/* A sketch for a cache of about `capacity_pages` pages.
 * Errors: PM_ENOMEM. */
int pm__sketch_open(uint64_t capacity_pages, pm_sketch **out);
void pm__sketch_close(pm_sketch *sketch);

/* Count one lookup of id; returns the lookup clock after it (>= 1). Every
 * window lookups, all counters are halved. */
uint64_t pm__sketch_record(pm_sketch *sketch, const pm_page_id *id);

/* Estimated lookups of id in the recent window (0..PM_SKETCH_MAX); never
 * below the true count, except that halving rounds down. */
unsigned pm__sketch_estimate(const pm_sketch *sketch, const pm_page_id *id);

/* The lookup clock: lookups recorded so far. */
uint64_t pm__sketch_clock(const pm_sketch *sketch);

/* Re-size the aging window for a new capacity (the counter table keeps
 * its size: estimates get noisier if the capacity grows much). */
void pm__sketch_set_capacity(pm_sketch *sketch, uint64_t capacity_pages);

/* Lookups between two halvings (for tests). */
uint64_t pm__sketch_window(const pm_sketch *sketch);

#endif /* PM_CORE_SKETCH_H */
