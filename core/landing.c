/*
 * core/landing.c - an attached process's landing area: one shared memfd
 * cut into slots of the node's page size, into which the node peer writes
 * the pages it fetches or holds in RAM for this process (the memfd goes
 * along with each such fetch request; the node keeps a descriptor of it
 * and pwrites into it, core/node_landing.c). The slot then backs the
 * page's map cache entry until the entry is freed, and is used again for
 * another page: the memfd's pages stay allocated, and mapped here, so a
 * page costs the node one copy instead of a
 * new memfd per page (allocate, fill, map, unmap: about 0.6 ms per MiB on
 * the machines we measured, twice a loopback transfer).
 *
 * A slot whose fetch did not end with the node's answer (the link broke
 * while the node may still write into it) is never used again. The area
 * is reference counted by the slots in use, so that entries still mapped
 * by pm_map callers keep it alive after pm__landing_close.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "node_int.h"

struct pm_landing {
  pthread_mutex_t mutex;
  int fd;
  uint8_t *base;
  uint32_t slot_size;
  unsigned slots;
  unsigned *free; /* stack of free slot indexes */
  unsigned free_count;
  unsigned in_use; /* slots taken and not given back (spoiled ones too) */
  bool closing;
};

int pm__landing_open(uint32_t slot_size, unsigned slots, pm_landing **out) {
  if (slot_size == 0 || slots == 0)
    return pm__errf(PM_EINVAL, "landing area: no slots");
  pm_landing *l = calloc(1, sizeof *l);
  if (!l || !(l->free = calloc(slots, sizeof *l->free))) {
    free(l);
    return pm__errf(PM_ENOMEM, "out of memory");
  }
  size_t size = (size_t)slot_size * slots;
  void *base = MAP_FAILED;
  /* Sealable: the node peer takes only such a memfd (node_landing.c). */
  l->fd = memfd_create("pagemesh-landing", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (l->fd >= 0 && ftruncate(l->fd, (off_t)size) == 0)
    base = mmap(NULL, size, PROT_READ, MAP_SHARED, l->fd, 0);
  if (base == MAP_FAILED) {
    int rc = pm__errf(pm__err_from_errno(errno),
                      "landing area of %zu bytes: %s", size, strerror(errno));
    if (l->fd >= 0)
      close(l->fd);
    free(l->free);
    free(l);
    return rc;
  }
  l->base = base;
  l->slot_size = slot_size;
  l->slots = slots;
  for (unsigned i = 0; i < slots; i++)
    l->free[i] = slots - 1 - i; /* slot 0 on top: low slots reused first */
  l->free_count = slots;
  pthread_mutex_init(&l->mutex, NULL);
  *out = l;
  return 0;
}

static void destroy(pm_landing *l) {
  munmap(l->base, (size_t)l->slot_size * l->slots);
  close(l->fd);
  pthread_mutex_destroy(&l->mutex);
  free(l->free);
  free(l);
}

void pm__landing_close(pm_landing *l) {
  if (!l)
    return;
  pthread_mutex_lock(&l->mutex);
  l->closing = true;
  bool last = l->in_use == 0;
  pthread_mutex_unlock(&l->mutex);
  if (last)
    destroy(l);
}

int pm__landing_fd(const pm_landing *l) {
  return l->fd;
}

uint32_t pm__landing_slot_size(const pm_landing *l) {
  return l->slot_size;
}

int pm__landing_take(pm_landing *l) {
  int slot = -1;
  pthread_mutex_lock(&l->mutex);
  if (l->free_count > 0 && !l->closing) {
    slot = (int)l->free[--l->free_count];
    l->in_use++;
  }
  pthread_mutex_unlock(&l->mutex);
  return slot;
}

const void *pm__landing_data(const pm_landing *l, int slot) {
  return l->base + (size_t)slot * l->slot_size;
}

/* Release a taken slot; back to the free stack unless spoiled. */
static void release(pm_landing *l, int slot, bool reuse) {
  pthread_mutex_lock(&l->mutex);
  if (reuse)
    l->free[l->free_count++] = (unsigned)slot;
  bool last = --l->in_use == 0 && l->closing;
  pthread_mutex_unlock(&l->mutex);
  if (last)
    destroy(l);
}

void pm__landing_give(pm_landing *l, int slot) {
  release(l, slot, true);
}

void pm__landing_spoil(pm_landing *l, int slot) {
  release(l, slot, false);
}

unsigned pm__landing_free_slots(pm_landing *l) {
  pthread_mutex_lock(&l->mutex);
  unsigned n = l->free_count;
  pthread_mutex_unlock(&l->mutex);
  return n;
}
