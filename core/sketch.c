/*
 * core/sketch.c - the frequency sketch behind the STABLE eviction policy
 * (TinyLFU's count-min sketch). Four rows of 4-bit counters packed sixteen
 * to a 64-bit word; a page id picks one counter per row. A lookup raises
 * only the smallest of its four counters (conservative update), which keeps
 * estimates close to the truth when many more pages are seen than fit in
 * the cache. After `window` lookups every counter is halved, so that old
 * popularity fades and a new working set can take over. Everything is
 * relaxed atomics: a lost increment or a halving racing an increment only
 * nudges an estimate.
 */
#include <stdlib.h>

#include "sketch.h"

#define SKETCH_ROWS 4
#define SKETCH_MIN_WIDTH 64u
#define COUNTERS_PER_WORD 16u
/* Keeps the low three bits of every nibble after a shift right by one. */
#define HALVE_MASK 0x7777777777777777ull

struct pm_sketch {
  _Atomic uint64_t *words; /* SKETCH_ROWS rows of width/16 words */
  uint64_t width;          /* counters per row, a power of two */
  _Atomic uint64_t window;
  _Atomic uint64_t samples; /* lookups since the last halving, halved too */
  _Atomic uint64_t clock;   /* lookups ever */
};

static uint64_t window_for(uint64_t capacity_pages) {
  uint64_t pages = PM_MAX(capacity_pages, 16u);
  return pages * PM_SKETCH_WINDOW_PER_PAGE;
}

int pm__sketch_open(uint64_t capacity_pages, pm_sketch **out) {
  pm_sketch *sketch = calloc(1, sizeof *sketch);
  if (!sketch)
    return pm__errf(PM_ENOMEM, "frequency sketch: out of memory");
  uint64_t width = SKETCH_MIN_WIDTH;
  while (width < capacity_pages * PM_SKETCH_WIDTH_PER_PAGE &&
         width < ((uint64_t)1 << 32))
    width *= 2;
  sketch->width = width;
  sketch->words = calloc(SKETCH_ROWS * width / COUNTERS_PER_WORD,
                         sizeof *sketch->words);
  if (!sketch->words) {
    free(sketch);
    return pm__errf(PM_ENOMEM, "frequency sketch: cannot allocate %llu "
                    "counters", (unsigned long long)(SKETCH_ROWS * width));
  }
  atomic_init(&sketch->window, window_for(capacity_pages));
  *out = sketch;
  return 0;
}

void pm__sketch_close(pm_sketch *sketch) {
  if (!sketch)
    return;
  free((void *)sketch->words);
  free(sketch);
}

/* Counter index of id in row: 32 bits of the id, mixed per row. */
static uint64_t counter_index(const pm_sketch *sketch, const pm_page_id *id,
                              int row) {
  const uint8_t *b = id->bytes + 4 * row;
  uint64_t h = (uint64_t)b[0] | (uint64_t)b[1] << 8 | (uint64_t)b[2] << 16 |
               (uint64_t)b[3] << 24;
  h = (h ^ (uint64_t)row << 32) * 0x9e3779b97f4a7c15ull;
  return (h >> 32) & (sketch->width - 1);
}

static _Atomic uint64_t *counter_word(const pm_sketch *sketch, int row,
                                      uint64_t index) {
  return &sketch->words[(uint64_t)row * (sketch->width / COUNTERS_PER_WORD) +
                        index / COUNTERS_PER_WORD];
}

static unsigned counter_get(const pm_sketch *sketch, int row,
                            uint64_t index) {
  uint64_t word =
      atomic_load_explicit(counter_word(sketch, row, index),
                           memory_order_relaxed);
  return (unsigned)(word >> (4 * (index % COUNTERS_PER_WORD))) & 15u;
}

/* Raise the counter by one if it still holds `expected`. */
static void counter_raise(pm_sketch *sketch, int row, uint64_t index,
                          unsigned expected) {
  _Atomic uint64_t *word = counter_word(sketch, row, index);
  unsigned shift = 4 * (unsigned)(index % COUNTERS_PER_WORD);
  uint64_t old = atomic_load_explicit(word, memory_order_relaxed);
  do {
    if (((old >> shift) & 15u) != expected)
      return;
  } while (!atomic_compare_exchange_weak_explicit(
      word, &old, old + ((uint64_t)1 << shift), memory_order_relaxed,
      memory_order_relaxed));
}

static void halve_all(pm_sketch *sketch) {
  uint64_t words = SKETCH_ROWS * sketch->width / COUNTERS_PER_WORD;
  for (uint64_t i = 0; i < words; i++) {
    uint64_t old = atomic_load_explicit(&sketch->words[i],
                                        memory_order_relaxed);
    while (old && !atomic_compare_exchange_weak_explicit(
                      &sketch->words[i], &old, (old >> 1) & HALVE_MASK,
                      memory_order_relaxed, memory_order_relaxed))
      ;
  }
}

/* Count a sample; the thread that moves the sample count back by half a
 * window halves the counters. */
static void maybe_age(pm_sketch *sketch) {
  uint64_t window = atomic_load_explicit(&sketch->window,
                                         memory_order_relaxed);
  uint64_t samples = atomic_fetch_add_explicit(&sketch->samples, 1,
                                               memory_order_relaxed) + 1;
  if (samples < window)
    return;
  if (atomic_compare_exchange_strong_explicit(
          &sketch->samples, &samples, samples - window / 2,
          memory_order_relaxed, memory_order_relaxed))
    halve_all(sketch);
}

uint64_t pm__sketch_record(pm_sketch *sketch, const pm_page_id *id) {
  uint64_t index[SKETCH_ROWS];
  unsigned value[SKETCH_ROWS], least = PM_SKETCH_MAX;
  for (int row = 0; row < SKETCH_ROWS; row++) {
    index[row] = counter_index(sketch, id, row);
    value[row] = counter_get(sketch, row, index[row]);
    least = PM_MIN(least, value[row]);
  }
  if (least < PM_SKETCH_MAX)
    for (int row = 0; row < SKETCH_ROWS; row++)
      if (value[row] == least)
        counter_raise(sketch, row, index[row], least);
  maybe_age(sketch);
  return atomic_fetch_add_explicit(&sketch->clock, 1, memory_order_relaxed) +
         1;
}

unsigned pm__sketch_estimate(const pm_sketch *sketch, const pm_page_id *id) {
  unsigned least = PM_SKETCH_MAX;
  for (int row = 0; row < SKETCH_ROWS; row++)
    least = PM_MIN(least,
                   counter_get(sketch, row, counter_index(sketch, id, row)));
  return least;
}

uint64_t pm__sketch_clock(const pm_sketch *sketch) {
  return atomic_load_explicit(&sketch->clock, memory_order_relaxed);
}

void pm__sketch_set_capacity(pm_sketch *sketch, uint64_t capacity_pages) {
  atomic_store_explicit(&sketch->window, window_for(capacity_pages),
                        memory_order_relaxed);
}

uint64_t pm__sketch_window(const pm_sketch *sketch) {
  return atomic_load_explicit(&sketch->window, memory_order_relaxed);
}
