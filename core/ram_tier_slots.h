/*
 * core/ram_tier_slots.h - where the RAM tier keeps whole pages: one
 * region, reserved at open for the tier's capacity and backed by
 * transparent huge pages, cut into page-size slots. Copying a page out of
 * huge pages costs far fewer TLB misses than out of malloc'd 4 KiB pages,
 * which is what keeps a RAM hit as fast as a pread of the page cache; so
 * does copying with `rep movsb` where the CPU makes it fast (glibc's
 * memcpy avoids it for large copies on some CPUs, and the kernel's
 * copy_to_user does not). Short pages (an object's last) come from malloc
 * instead. Safe from any thread.
 */
#ifndef PM_CORE_RAM_TIER_SLOTS_H
#define PM_CORE_RAM_TIER_SLOTS_H

#include <pthread.h>

#include "core_int.h"

typedef struct pm_ram_slots {
  pthread_mutex_t lock;
  uint8_t *base;       /* first slot, 2 MiB aligned; NULL: no region */
  void *mapping;       /* what to munmap */
  size_t mapping_size;
  uint32_t page_size;
  uint32_t slot_count;
  uint32_t fresh;      /* slots below this were handed out at least once */
  uint32_t *free;      /* stack of slots given back */
  uint32_t free_count;
} pm_ram_slots;

/* Reserve address space for capacity / page_size slots (nothing is
 * committed until used). Never fails: without a region, every buffer
 * comes from malloc. */
void pm__ram_slots_init(pm_ram_slots *slots, uint64_t capacity,
                        uint32_t page_size);
void pm__ram_slots_destroy(pm_ram_slots *slots);

/* A buffer for `length` bytes (NULL if out of memory). */
void *pm__ram_slots_alloc(pm_ram_slots *slots, size_t length);
/* Give back a buffer from pm__ram_slots_alloc. Accepts NULL. */
void pm__ram_slots_free(pm_ram_slots *slots, void *buffer);
/* Return the memory of the free slots to the system (after the capacity
 * shrank: a free slot otherwise stays resident, and a smaller RAM tier
 * gave no memory back). They are reused as before, zero-filled. */
void pm__ram_slots_release_free(pm_ram_slots *slots);



#endif /* PM_CORE_RAM_TIER_SLOTS_H */
