/*
 * core/evict.c - recency order, byte accounting and admission for one tier.
 *
 * Both policies evict the least recently used page. They differ in
 * admission once the tier is full. PM_EVICT_LRU admits everything, which a
 * training loop reading a dataset larger than the cache in a new random
 * order each epoch defeats: every page is evicted just before it is read
 * again. PM_EVICT_STABLE (TinyLFU) admits a page only if the frequency
 * sketch says it is read more often than each page it would displace. In
 * such a loop all pages are read equally often, so the pages already
 * resident stay and the hit rate settles at capacity/dataset.
 *
 * Two refinements keep that true in practice. The candidate's estimate
 * includes the lookup that just missed, and halving splits pages read just
 * before and just after it by one: hence a margin of two (frequency alone,
 * without it, slowly churns the resident set and costs a third of the
 * hits). And a victim that has been idle for several times the longest
 * recent reuse distance of a hit is stale and may go: otherwise a dataset
 * much larger than the aging window, whose pages never build up a count,
 * could never displace pages that nobody reads any more (the cache of a
 * finished job, found at open).
 */
#include <assert.h>

#include "evict.h"

void pm__evict_init(pm_evict_state *ev, pm_eviction policy, uint64_t capacity,
                    uint32_t page_size, pm_sketch *sketch) {
  ev->policy = policy;
  ev->capacity = capacity;
  ev->used = 0;
  ev->page_size = page_size ? page_size : 1;
  ev->reuse_max = 0;
  ev->linked = 0;
  ev->lru.prev = ev->lru.next = &ev->lru;
  ev->sketch = sketch;
}

void pm__evict_charge(pm_evict_state *ev, uint64_t length) {
  ev->used += length;
}

void pm__evict_uncharge(pm_evict_state *ev, uint64_t length) {
  assert(ev->used >= length);
  ev->used -= length;
}

void pm__evict_link(pm_evict_state *ev, pm_evict_node *node, uint64_t tick) {
  node->last_tick = tick;
  node->prev = ev->lru.prev;
  node->next = &ev->lru;
  ev->lru.prev->next = node;
  ev->lru.prev = node;
  ev->linked++;
}

void pm__evict_unlink(pm_evict_state *ev, pm_evict_node *node) {
  assert(node->prev && node->next);
  node->prev->next = node->next;
  node->next->prev = node->prev;
  node->prev = node->next = NULL;
  ev->linked--;
}

void pm__evict_access(pm_evict_state *ev, pm_evict_node *node, uint64_t tick) {
  if (tick > node->last_tick) {
    uint64_t distance = tick - node->last_tick;
    ev->reuse_max -= ev->reuse_max >> 6;
    if (distance > ev->reuse_max)
      ev->reuse_max = distance;
  }
  pm__evict_unlink(ev, node);
  pm__evict_link(ev, node, PM_MAX(tick, node->last_tick));
}

uint64_t pm__evict_capacity_pages(const pm_evict_state *ev) {
  uint64_t pages = ev->capacity / ev->page_size;
  return pages ? pages : 1;
}

static bool is_stale(const pm_evict_state *ev, const pm_evict_node *victim,
                     uint64_t tick) {
  uint64_t horizon = PM_MAX(ev->reuse_max, pm__evict_capacity_pages(ev));
  return tick > victim->last_tick &&
         tick - victim->last_tick > PM_EVICT_STALE_FACTOR * horizon;
}

static bool beats(const pm_evict_state *ev, unsigned candidate_freq,
                  const pm_evict_node *victim, uint64_t tick) {
  unsigned victim_freq = pm__sketch_estimate(ev->sketch, &victim->id);
  return candidate_freq > victim_freq + PM_EVICT_ADMIT_MARGIN ||
         is_stale(ev, victim, tick);
}

bool pm__evict_admit(const pm_evict_state *ev, const pm_page_id *id,
                     uint64_t length, uint64_t tick) {
  if (length > ev->capacity)
    return false;
  if (ev->used + length <= ev->capacity)
    return true;
  unsigned freq = ev->policy == PM_EVICT_STABLE
                      ? pm__sketch_estimate(ev->sketch, id)
                      : 0;
  uint64_t freed = 0;
  for (const pm_evict_node *v = ev->lru.next;
       ev->used - freed + length > ev->capacity; v = v->next) {
    if (v == &ev->lru)
      return false; /* the rest is reserved by writes in flight */
    if (ev->policy == PM_EVICT_STABLE && !beats(ev, freq, v, tick))
      return false;
    freed += v->length;
  }
  return true;
}

pm_evict_node *pm__evict_victim(const pm_evict_state *ev, uint64_t incoming) {
  if (ev->used + incoming <= ev->capacity || ev->lru.next == &ev->lru)
    return NULL;
  return ev->lru.next;
}
