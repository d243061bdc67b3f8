/*
 * core/pagemap.c - the page id hash table of the store's tiers: open
 * addressing with linear probing, growth by doubling at 3/4 load and
 * backward-shift deletion (no tombstones, so lookups stay short however
 * many pages come and go). Page ids are already uniform hashes, so their
 * first 8 bytes are the hash.
 */
#include <stdlib.h>
#include <string.h>

#include "pagemap.h"

#define PAGEMAP_MIN_SLOTS 16

static size_t home_slot(const pm_pagemap *map, const pm_page_id *id) {
  return (size_t)pm__page_id_hash(id) & map->mask;
}

/* Smallest power of two with room for `entries` under 3/4 load. */
static size_t slots_for(size_t entries) {
  size_t slots = PAGEMAP_MIN_SLOTS;
  while (slots / 4 * 3 < entries && slots < ((size_t)1 << 62))
    slots *= 2;
  return slots;
}

int pm__pagemap_init(pm_pagemap *map, size_t expected) {
  size_t slots = slots_for(expected);
  map->slots = calloc(slots, sizeof *map->slots);
  if (!map->slots)
    return pm__errf(PM_ENOMEM, "page index: cannot allocate %zu slots",
                    slots);
  map->mask = slots - 1;
  map->count = 0;
  return 0;
}

void pm__pagemap_destroy(pm_pagemap *map) {
  free(map->slots);
  map->slots = NULL;
  map->mask = 0;
  map->count = 0;
}

static pm_pagemap_slot *find_slot(const pm_pagemap *map,
                                  const pm_page_id *id) {
  size_t i = home_slot(map, id);
  for (;;) {
    pm_pagemap_slot *slot = &map->slots[i];
    if (!slot->value)
      return NULL;
    if (pm__page_id_eq(&slot->id, id))
      return slot;
    i = (i + 1) & map->mask;
  }
}

void *pm__pagemap_get(const pm_pagemap *map, const pm_page_id *id) {
  if (!map->slots)
    return NULL;
  pm_pagemap_slot *slot = find_slot(map, id);
  return slot ? slot->value : NULL;
}

/* Place an id known to be absent; the table has room. */
static void insert_new(pm_pagemap *map, const pm_page_id *id, void *value) {
  size_t i = home_slot(map, id);
  while (map->slots[i].value)
    i = (i + 1) & map->mask;
  map->slots[i].id = *id;
  map->slots[i].value = value;
  map->count++;
}

static int grow(pm_pagemap *map) {
  pm_pagemap bigger;
  size_t old_slots = map->mask + 1;
  bigger.slots = calloc(old_slots * 2, sizeof *bigger.slots);
  if (!bigger.slots)
    return pm__errf(PM_ENOMEM, "page index: cannot grow to %zu slots",
                    old_slots * 2);
  bigger.mask = old_slots * 2 - 1;
  bigger.count = 0;
  for (size_t i = 0; i < old_slots; i++)
    if (map->slots[i].value)
      insert_new(&bigger, &map->slots[i].id, map->slots[i].value);
  free(map->slots);
  *map = bigger;
  return 0;
}

int pm__pagemap_put(pm_pagemap *map, const pm_page_id *id, void *value) {
  if (find_slot(map, id))
    return PM_EEXIST;
  if ((map->count + 1) > (map->mask + 1) / 4 * 3) {
    int rc = grow(map);
    if (rc < 0)
      return rc;
  }
  insert_new(map, id, value);
  return 0;
}

/* Distance of slot i from the home slot of the id stored in it. */
static size_t probe_distance(const pm_pagemap *map, size_t i) {
  return (i - home_slot(map, &map->slots[i].id)) & map->mask;
}

/* Close the gap at `hole` by moving later entries of the same probe run
 * back, so that every entry stays reachable from its home slot. */
static void backward_shift(pm_pagemap *map, size_t hole) {
  size_t i = (hole + 1) & map->mask;
  while (map->slots[i].value) {
    if (probe_distance(map, i) >= ((i - hole) & map->mask)) {
      map->slots[hole] = map->slots[i];
      map->slots[i].value = NULL;
      hole = i;
    }
    i = (i + 1) & map->mask;
  }
}

void *pm__pagemap_remove(pm_pagemap *map, const pm_page_id *id) {
  if (!map->slots)
    return NULL;
  pm_pagemap_slot *slot = find_slot(map, id);
  if (!slot)
    return NULL;
  void *value = slot->value;
  slot->value = NULL;
  map->count--;
  backward_shift(map, (size_t)(slot - map->slots));
  return value;
}

void *pm__pagemap_next(const pm_pagemap *map, size_t *cursor,
                       pm_page_id *id) {
  if (!map->slots)
    return NULL;
  while (*cursor <= map->mask) {
    const pm_pagemap_slot *slot = &map->slots[(*cursor)++];
    if (slot->value) {
      if (id)
        *id = slot->id;
      return slot->value;
    }
  }
  return NULL;
}

size_t pm__pagemap_count(const pm_pagemap *map) {
  return map->count;
}
