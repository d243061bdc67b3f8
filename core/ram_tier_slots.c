/*
 * core/ram_tier_slots.c - page buffers of the RAM tier: a region reserved
 * with mmap (MAP_NORESERVE: only the slots used are committed), 2 MiB
 * aligned and advised MADV_HUGEPAGE, handed out in page-size slots from a
 * stack of freed slots, or the next never-used one. Buffers that are not
 * a whole page, or that do not fit once the region is full (the capacity
 * grew), are malloc'd; a pointer outside the region is malloc's.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#if defined(__x86_64__)
#endif

#include "ram_tier_slots.h"

#define HUGE_PAGE (2u << 20)

static bool reserve_region(pm_ram_slots *slots, uint64_t slot_count) {
  size_t bytes = (size_t)slot_count * slots->page_size;
  size_t size = bytes + HUGE_PAGE;
  void *mapping = mmap(NULL, size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mapping == MAP_FAILED)
    return false;
  uintptr_t aligned = ((uintptr_t)mapping + HUGE_PAGE - 1) &
                      ~(uintptr_t)(HUGE_PAGE - 1);
  madvise((void *)aligned, bytes, MADV_HUGEPAGE);
  slots->mapping = mapping;
  slots->mapping_size = size;
  slots->base = (uint8_t *)aligned;
  return true;
}

void pm__ram_slots_init(pm_ram_slots *slots, uint64_t capacity,
                        uint32_t page_size) {
  uint64_t count = page_size ? capacity / page_size : 0;
  *slots = (pm_ram_slots){.page_size = page_size};
  pthread_mutex_init(&slots->lock, NULL);
  if (count == 0 || count > UINT32_MAX)
    return;
  slots->free = malloc(count * sizeof *slots->free);
  if (!slots->free)
    return;
  if (!reserve_region(slots, count)) {
    free(slots->free);
    slots->free = NULL;
    return;
  }
  slots->slot_count = (uint32_t)count;
}

void pm__ram_slots_destroy(pm_ram_slots *slots) {
  if (slots->mapping)
    munmap(slots->mapping, slots->mapping_size);
  free(slots->free);
  pthread_mutex_destroy(&slots->lock);
  slots->base = NULL;
}

static void *take_slot(pm_ram_slots *slots) {
  uint32_t index;
  pthread_mutex_lock(&slots->lock);
  if (slots->free_count > 0)
    index = slots->free[--slots->free_count];
  else if (slots->fresh < slots->slot_count)
    index = slots->fresh++;
  else
    index = UINT32_MAX;
  pthread_mutex_unlock(&slots->lock);
  if (index == UINT32_MAX)
    return NULL;
  return slots->base + (size_t)index * slots->page_size;
}

void *pm__ram_slots_alloc(pm_ram_slots *slots, size_t length) {
  void *buffer = NULL;
  if (slots->base && length == slots->page_size)
    buffer = take_slot(slots);
  return buffer ? buffer : malloc(length ? length : 1);
}

static bool in_region(const pm_ram_slots *slots, const uint8_t *p) {
  return slots->base && p >= slots->base &&
         p < slots->base + (size_t)slots->slot_count * slots->page_size;
}

void pm__ram_slots_free(pm_ram_slots *slots, void *buffer) {
  if (!in_region(slots, buffer)) {
    free(buffer);
    return;
  }
  uint32_t index =
      (uint32_t)(((uint8_t *)buffer - slots->base) / slots->page_size);
  pthread_mutex_lock(&slots->lock);
  slots->free[slots->free_count++] = index;
  pthread_mutex_unlock(&slots->lock);
}

void pm__ram_slots_release_free(pm_ram_slots *slots) {
  pthread_mutex_lock(&slots->lock);
  for (uint32_t i = 0; slots->base && i < slots->free_count; i++)
    madvise(slots->base + (size_t)slots->free[i] * slots->page_size,
            slots->page_size, MADV_DONTNEED);
  pthread_mutex_unlock(&slots->lock);
}
