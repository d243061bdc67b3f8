/*
 * core/pagemap.h - a hash table from pm_page_id to a pointer, with open
 * addressing and linear probing. It is the index of each tier of the page
 * store. It holds no lock and no global state: its owner serialises access.
 */
#ifndef PM_CORE_PAGEMAP_H
#define PM_CORE_PAGEMAP_H

#include "core_int.h"

typedef struct pm_pagemap_slot {
  pm_page_id id;
  void *value; /* NULL marks an empty slot */
} pm_pagemap_slot;

typedef struct pm_pagemap {
  pm_pagemap_slot *slots;
  size_t mask;  /* slot count - 1; the slot count is a power of two */
  size_t count; /* occupied slots */
} pm_pagemap;

/* Make an empty map sized for about `expected` entries.
 * Errors: PM_ENOMEM. */
int pm__pagemap_init(pm_pagemap *map, size_t expected);

/* Free the slots (not the values). Accepts a zeroed map. */
void pm__pagemap_destroy(pm_pagemap *map);

/* The value stored for id, or NULL. */
void *pm__pagemap_get(const pm_pagemap *map, const pm_page_id *id);

/* Store value (not NULL) for id. Errors: PM_EEXIST (id already present,
 * nothing changed), PM_ENOMEM (the table could not grow). */
int pm__pagemap_put(pm_pagemap *map, const pm_page_id *id, void *value);

/* Remove id and return its value, or NULL if absent. */
void *pm__pagemap_remove(pm_pagemap *map, const pm_page_id *id);

/* Iterate: start with *cursor = 0; returns the next value (and its id in
 * *id if not NULL), or NULL at the end. The map must not change during an
 * iteration: collect what to remove, then remove it. */
void *pm__pagemap_next(const pm_pagemap *map, size_t *cursor, pm_page_id *id);

/* Number of entries. */
size_t pm__pagemap_count(const pm_pagemap *map);

#endif /* PM_CORE_PAGEMAP_H */
