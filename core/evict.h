/*
 * core/evict.h - the eviction policies of one tier of the page store: a
 * recency list with byte accounting, and the admission test that makes
 * PM_EVICT_STABLE keep a stable resident set. It holds no lock: the tier
 * that embeds a pm_evict_state serialises every call with its own mutex.
 */
#ifndef PM_CORE_EVICT_H
#define PM_CORE_EVICT_H

#include "core_int.h"
#include "sketch.h"

/* A candidate must be estimated more than this many lookups above a victim
 * to replace it: one for the lookup that missed (already counted in the
 * candidate's estimate) and one for the rounding of halving, which splits
 * pages read just before and just after it by one count. */
#define PM_EVICT_ADMIT_MARGIN 2u
/* A victim idle for longer than this many times the longest recent reuse
 * distance of a hit (or the capacity in pages, if larger) is stale: any
 * candidate may replace it, whatever the frequencies say. */
#define PM_EVICT_STALE_FACTOR 3u

/* Embedded in a tier's page entry. */
typedef struct pm_evict_node {
  struct pm_evict_node *prev, *next;
  pm_page_id id;
  uint64_t length;    /* bytes charged to the tier */
  uint64_t last_tick; /* lookup clock at the last access; 0 = never read
                         since the page was loaded at open */
} pm_evict_node;

typedef struct pm_evict_state {
  pm_eviction policy;
  uint64_t capacity;  /* bytes of page data */
  uint64_t used;      /* bytes charged: linked pages and reservations */
  uint64_t page_size; /* to count the capacity in pages */
  uint64_t reuse_max; /* decaying maximum of hit reuse distances */
  uint64_t linked;    /* pages on the recency list */
  pm_evict_node lru;  /* sentinel: next is the least recent page */
  pm_sketch *sketch;
} pm_evict_state;

/* What a tier reports for pm__store_stats. */
typedef struct pm_tier_usage {
  uint64_t capacity, used, pages, evictions;
} pm_tier_usage;

void pm__evict_init(pm_evict_state *ev, pm_eviction policy, uint64_t capacity,
                    uint32_t page_size, pm_sketch *sketch);

/* Add bytes to (or take them from) the tier's use. */
void pm__evict_charge(pm_evict_state *ev, uint64_t length);
void pm__evict_uncharge(pm_evict_state *ev, uint64_t length);

/* Put a node on the list as the most recent page, accessed at `tick`
 * (0 for a page loaded at open). Does not charge. */
void pm__evict_link(pm_evict_state *ev, pm_evict_node *node, uint64_t tick);
/* Take a node off the list. Does not uncharge. */
void pm__evict_unlink(pm_evict_state *ev, pm_evict_node *node);
/* A lookup found the page: note its reuse distance, make it most recent. */
void pm__evict_access(pm_evict_state *ev, pm_evict_node *node, uint64_t tick);

/* May a page of `length` bytes enter now, given the victims it would
 * displace? LRU: if it fits at all. STABLE: and if it beats every victim
 * (by frequency, or because the victim is stale). Pure: evicts nothing. */
bool pm__evict_admit(const pm_evict_state *ev, const pm_page_id *id,
                     uint64_t length, uint64_t tick);

/* The page to evict before `incoming` more bytes can be charged, or NULL
 * if they fit (or nothing is left to evict). */
pm_evict_node *pm__evict_victim(const pm_evict_state *ev, uint64_t incoming);

/* Capacity counted in pages, at least 1. */
uint64_t pm__evict_capacity_pages(const pm_evict_state *ev);

#endif /* PM_CORE_EVICT_H */
