/*
 * core/ram_tier.h - the RAM tier of the page store: whole pages in heap
 * buffers, indexed by page id, with their own capacity and eviction. Safe
 * from any thread (one mutex, never held while copying page bytes).
 */
#ifndef PM_CORE_RAM_TIER_H
#define PM_CORE_RAM_TIER_H

#include <sys/types.h>

#include "core_int.h"
#include "evict.h"
#include "pagemap.h"
#include "sketch.h"

typedef struct pm_ram_tier pm_ram_tier;
typedef struct pm_ram_page pm_ram_page;

/* Errors: PM_ENOMEM. */
int pm__ram_tier_open(uint64_t capacity, uint32_t page_size,
                      pm_eviction policy, pm_sketch *sketch,
                      pm_ram_tier **out);
/* Frees every page. No reader may be active. Accepts NULL. */
void pm__ram_tier_close(pm_ram_tier *tier);

/* Copy [offset, offset + length) of the page into buf and make it most
 * recent; `tick` is the lookup clock of this lookup. Returns the bytes
 * copied (short past the data). Errors: PM_ENOENT. */
ssize_t pm__ram_tier_read(pm_ram_tier *tier, const pm_page_id *id,
                          uint32_t offset, void *buf, size_t length,
                          uint64_t tick);

/* Hand the whole page to visit while holding a reference to it (not the
 * tier's lock: the page cannot be freed meanwhile, other lookups go on),
 * and make it most recent. Returns what visit returns. Errors: PM_ENOENT. */
ssize_t pm__ram_tier_visit(pm_ram_tier *tier, const pm_page_id *id,
                           uint64_t tick, pm_page_visit visit, void *arg);

/* A lookup answered elsewhere still refreshes the page here, if present. */
void pm__ram_tier_touch(pm_ram_tier *tier, const pm_page_id *id,
                        uint64_t tick);

bool pm__ram_tier_contains(pm_ram_tier *tier, const pm_page_id *id);

/*
 * Two-phase insert, so that page bytes are copied without the lock:
 * reserve (admission, evictions, room charged; the page is invisible),
 * fill pm__ram_page_data(), then commit or abort.
 * Returns 0 (*out set), 1 (declined by the policy), PM_EEXIST (present or
 * being inserted), PM_ENOMEM.
 */
int pm__ram_tier_reserve(pm_ram_tier *tier, const pm_page_id *id,
                         const char *uri, size_t length, uint64_t tick,
                         pm_ram_page **out);
void *pm__ram_page_data(pm_ram_page *page);
void pm__ram_tier_commit(pm_ram_tier *tier, pm_ram_page *page);
void pm__ram_tier_abort(pm_ram_tier *tier, pm_ram_page *page);

/* Reserve, copy, commit. Returns as pm__ram_tier_reserve. */
int pm__ram_tier_put(pm_ram_tier *tier, const pm_page_id *id,
                     const char *uri, const void *data, size_t length,
                     uint64_t tick);

/* Errors: PM_ENOENT. */
int pm__ram_tier_remove(pm_ram_tier *tier, const pm_page_id *id);

/* Remove every page whose URI starts with prefix; the ids removed are
 * added to `removed` if not NULL (value: the tier). Returns how many.
 * Errors: PM_ENOMEM (nothing removed). */
ssize_t pm__ram_tier_remove_prefix(pm_ram_tier *tier, const char *prefix,
                                   pm_pagemap *removed);

/* A sealed memfd holding the page's data (for pm__store_open_page of a
 * page that is only in RAM). Errors: PM_ENOENT, PM_EIO, PM_ENOMEM. */
int pm__ram_tier_memfd(pm_ram_tier *tier, const pm_page_id *id,
                       uint64_t tick, int *fd, size_t *length);

void pm__ram_tier_usage(pm_ram_tier *tier, pm_tier_usage *out);

/* Evicts down to the new capacity. */
void pm__ram_tier_set_capacity(pm_ram_tier *tier, uint64_t capacity);

#endif /* PM_CORE_RAM_TIER_H */
