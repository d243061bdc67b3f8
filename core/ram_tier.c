/*
 * core/ram_tier.c - the RAM tier: page buffers on the heap, an index by
 * page id, recency and admission through core/evict.c. One mutex guards
 * the index and the policy; page bytes are copied outside it. A page is
 * reference counted (one reference for the index, one per reader copying
 * out), so an eviction never frees a buffer that is being read.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ram_tier.h"
#include "ram_tier_slots.h"

struct pm_ram_page {
  pm_evict_node node; /* id, length, recency */
  char *uri;
  unsigned char *data;
  uint32_t refs;     /* the index's, plus one per reader */
  bool ready;        /* filled and committed: visible to readers */
  pm_ram_page *next; /* on a list of pages to free */
};

struct pm_ram_tier {
  pm_ram_slots slots; /* page buffers, with their own lock */
  pthread_mutex_t lock;
  pm_pagemap map;
  pm_evict_state ev;
  uint64_t evictions;
};

static void page_free(pm_ram_tier *tier, pm_ram_page *page) {
  pm__ram_slots_free(&tier->slots, page->data);
  free(page->uri);
  free(page);
}

static void free_list(pm_ram_tier *tier, pm_ram_page *list) {
  while (list) {
    pm_ram_page *next = list->next;
    page_free(tier, list);
    list = next;
  }
}

/* Drop one reference; a page no longer referenced goes on *garbage. */
static void unref_locked(pm_ram_page *page, pm_ram_page **garbage) {
  if (--page->refs == 0) {
    page->next = *garbage;
    *garbage = page;
  }
}

/* Take a ready page out of the index and the recency list. */
static void drop_locked(pm_ram_tier *tier, pm_ram_page *page,
                        pm_ram_page **garbage) {
  pm__pagemap_remove(&tier->map, &page->node.id);
  pm__evict_unlink(&tier->ev, &page->node);
  pm__evict_uncharge(&tier->ev, page->node.length);
  unref_locked(page, garbage);
}

static void evict_until_fits(pm_ram_tier *tier, uint64_t incoming,
                             pm_ram_page **garbage) {
  pm_evict_node *victim;
  while ((victim = pm__evict_victim(&tier->ev, incoming))) {
    drop_locked(tier, (pm_ram_page *)victim, garbage);
    tier->evictions++;
  }
}

int pm__ram_tier_open(uint64_t capacity, uint32_t page_size,
                      pm_eviction policy, pm_sketch *sketch,
                      pm_ram_tier **out) {
  pm_ram_tier *tier = calloc(1, sizeof *tier);
  if (!tier)
    return pm__errf(PM_ENOMEM, "RAM tier: out of memory");
  int rc = pm__pagemap_init(&tier->map, 64);
  if (rc < 0) {
    free(tier);
    return rc;
  }
  pthread_mutex_init(&tier->lock, NULL);
  pm__ram_slots_init(&tier->slots, capacity, page_size);
  pm__evict_init(&tier->ev, policy, capacity, page_size, sketch);
  *out = tier;
  return 0;
}

void pm__ram_tier_close(pm_ram_tier *tier) {
  if (!tier)
    return;
  size_t cursor = 0;
  pm_ram_page *page;
  while ((page = pm__pagemap_next(&tier->map, &cursor, NULL)))
    page_free(tier, page);
  pm__pagemap_destroy(&tier->map);
  pm__ram_slots_destroy(&tier->slots);
  pthread_mutex_destroy(&tier->lock);
  free(tier);
}

/* The ready page for id with a reader's reference, or NULL. */
static pm_ram_page *acquire(pm_ram_tier *tier, const pm_page_id *id,
                            uint64_t tick) {
  pthread_mutex_lock(&tier->lock);
  pm_ram_page *page = pm__pagemap_get(&tier->map, id);
  if (page && page->ready) {
    pm__evict_access(&tier->ev, &page->node, tick);
    page->refs++;
  } else {
    page = NULL;
  }
  pthread_mutex_unlock(&tier->lock);
  return page;
}

static void release(pm_ram_tier *tier, pm_ram_page *page) {
  pm_ram_page *garbage = NULL;
  pthread_mutex_lock(&tier->lock);
  unref_locked(page, &garbage);
  pthread_mutex_unlock(&tier->lock);
  free_list(tier, garbage);
}

ssize_t pm__ram_tier_read(pm_ram_tier *tier, const pm_page_id *id,
                          uint32_t offset, void *buf, size_t length,
                          uint64_t tick) {
  pm_ram_page *page = acquire(tier, id, tick);
  if (!page)
    return PM_ENOENT;
  size_t n = 0;
  if (offset < page->node.length)
    n = PM_MIN(length, page->node.length - offset);
  pm__copy(buf, page->data + offset, n);
  release(tier, page);
  return (ssize_t)n;
}

ssize_t pm__ram_tier_visit(pm_ram_tier *tier, const pm_page_id *id,
                           uint64_t tick, pm_page_visit visit, void *arg) {
  pm_ram_page *page = acquire(tier, id, tick);
  if (!page)
    return PM_ENOENT;
  ssize_t n = visit(page->data, page->node.length, arg);
  release(tier, page);
  return n;
}

void pm__ram_tier_touch(pm_ram_tier *tier, const pm_page_id *id,
                        uint64_t tick) {
  pthread_mutex_lock(&tier->lock);
  pm_ram_page *page = pm__pagemap_get(&tier->map, id);
  if (page && page->ready)
    pm__evict_access(&tier->ev, &page->node, tick);
  pthread_mutex_unlock(&tier->lock);
}

bool pm__ram_tier_contains(pm_ram_tier *tier, const pm_page_id *id) {
  pthread_mutex_lock(&tier->lock);
  pm_ram_page *page = pm__pagemap_get(&tier->map, id);
  bool found = page && page->ready;
  pthread_mutex_unlock(&tier->lock);
  return found;
}

/* Admission, evictions and charge for a new invisible page entry. */
static int reserve_locked(pm_ram_tier *tier, pm_ram_page *page,
                          uint64_t tick, pm_ram_page **garbage) {
  if (pm__pagemap_get(&tier->map, &page->node.id))
    return PM_EEXIST;
  if (!pm__evict_admit(&tier->ev, &page->node.id, page->node.length, tick))
    return 1;
  int rc = pm__pagemap_put(&tier->map, &page->node.id, page);
  if (rc < 0)
    return rc;
  evict_until_fits(tier, page->node.length, garbage);
  pm__evict_charge(&tier->ev, page->node.length);
  return 0;
}

int pm__ram_tier_reserve(pm_ram_tier *tier, const pm_page_id *id,
                         const char *uri, size_t length, uint64_t tick,
                         pm_ram_page **out) {
  pm_ram_page *page = calloc(1, sizeof *page);
  if (!page || !(page->uri = pm__strdup(uri ? uri : ""))) {
    free(page);
    return pm__errf(PM_ENOMEM, "RAM tier: out of memory");
  }
  page->node.id = *id;
  page->node.length = length;
  page->refs = 1;
  pm_ram_page *garbage = NULL;
  pthread_mutex_lock(&tier->lock);
  int rc = reserve_locked(tier, page, tick, &garbage);
  pthread_mutex_unlock(&tier->lock);
  free_list(tier, garbage);
  if (rc == 0 &&
      !(page->data = pm__ram_slots_alloc(&tier->slots, length))) {
    pm__ram_tier_abort(tier, page);
    return pm__errf(PM_ENOMEM, "RAM tier: cannot allocate a page of %zu "
                    "bytes", length);
  }
  if (rc != 0)
    page_free(tier, page);
  else
    *out = page;
  return rc;
}

void *pm__ram_page_data(pm_ram_page *page) {
  return page->data;
}

void pm__ram_tier_commit(pm_ram_tier *tier, pm_ram_page *page) {
  pthread_mutex_lock(&tier->lock);
  page->ready = true;
  pm__evict_link(&tier->ev, &page->node, pm__sketch_clock(tier->ev.sketch));
  pthread_mutex_unlock(&tier->lock);
}

void pm__ram_tier_abort(pm_ram_tier *tier, pm_ram_page *page) {
  pthread_mutex_lock(&tier->lock);
  pm__pagemap_remove(&tier->map, &page->node.id);
  pm__evict_uncharge(&tier->ev, page->node.length);
  pthread_mutex_unlock(&tier->lock);
  page_free(tier, page);
}

int pm__ram_tier_put(pm_ram_tier *tier, const pm_page_id *id,
                     const char *uri, const void *data, size_t length,
                     uint64_t tick) {
  pm_ram_page *page;
  int rc = pm__ram_tier_reserve(tier, id, uri, length, tick, &page);
  if (rc != 0)
    return rc;
  pm__copy(page->data, data, length);
  pm__ram_tier_commit(tier, page);
  return 0;
}

int pm__ram_tier_remove(pm_ram_tier *tier, const pm_page_id *id) {
  pm_ram_page *garbage = NULL;
  pthread_mutex_lock(&tier->lock);
  pm_ram_page *page = pm__pagemap_get(&tier->map, id);
  bool found = page && page->ready;
  if (found)
    drop_locked(tier, page, &garbage);
  pthread_mutex_unlock(&tier->lock);
  free_list(tier, garbage);
  return found ? 0 : PM_ENOENT;
}

/* Ready pages whose URI starts with prefix, in a new array. */
static pm_ram_page **match_prefix_locked(pm_ram_tier *tier,
                                         const char *prefix, size_t *count) {
  size_t prefix_len = strlen(prefix), cursor = 0, n = 0;
  pm_ram_page **matches =
      malloc((pm__pagemap_count(&tier->map) + 1) * sizeof *matches);
  if (!matches)
    return NULL;
  pm_ram_page *page;
  while ((page = pm__pagemap_next(&tier->map, &cursor, NULL)))
    if (page->ready && strncmp(page->uri, prefix, prefix_len) == 0)
      matches[n++] = page;
  *count = n;
  return matches;
}

ssize_t pm__ram_tier_remove_prefix(pm_ram_tier *tier, const char *prefix,
                                   pm_pagemap *removed) {
  pm_ram_page *garbage = NULL;
  size_t count = 0;
  ssize_t rc = 0;
  pthread_mutex_lock(&tier->lock);
  pm_ram_page **matches = match_prefix_locked(tier, prefix, &count);
  if (!matches) {
    rc = pm__errf(PM_ENOMEM, "RAM tier: out of memory removing %s*",
                  prefix);
    goto out;
  }
  for (size_t i = 0; i < count; i++) {
    if (removed)
      pm__pagemap_put(removed, &matches[i]->node.id, tier);
    drop_locked(tier, matches[i], &garbage);
  }
  rc = (ssize_t)count;
out:
  pthread_mutex_unlock(&tier->lock);
  free(matches);
  free_list(tier, garbage);
  return rc;
}

/* Write the page's bytes to a new sealed memfd. */
static int copy_to_memfd(const pm_ram_page *page, int *fd) {
  int memfd = memfd_create("pagemesh-page", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (memfd < 0)
    return pm__errf(pm__err_from_errno(errno), "memfd_create: %s",
                    strerror(errno));
  int rc = pm__write_all(memfd, page->data, page->node.length);
  if (rc < 0) {
    close(memfd);
    return pm__errf(rc, "memfd for a RAM page: write failed");
  }
  fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE |
                                F_SEAL_SEAL);
  *fd = memfd;
  return 0;
}

int pm__ram_tier_memfd(pm_ram_tier *tier, const pm_page_id *id,
                       uint64_t tick, int *fd, size_t *length) {
  pm_ram_page *page = acquire(tier, id, tick);
  if (!page)
    return PM_ENOENT;
  int rc = copy_to_memfd(page, fd);
  if (rc == 0)
    *length = page->node.length;
  release(tier, page);
  return rc;
}

void pm__ram_tier_usage(pm_ram_tier *tier, pm_tier_usage *out) {
  pthread_mutex_lock(&tier->lock);
  out->capacity = tier->ev.capacity;
  out->used = tier->ev.used;
  out->pages = tier->ev.linked;
  out->evictions = tier->evictions;
  pthread_mutex_unlock(&tier->lock);
}

void pm__ram_tier_set_capacity(pm_ram_tier *tier, uint64_t capacity) {
  pm_ram_page *garbage = NULL;
  pthread_mutex_lock(&tier->lock);
  bool shrinks = capacity < tier->ev.capacity;
  tier->ev.capacity = capacity;
  evict_until_fits(tier, 0, &garbage);
  pthread_mutex_unlock(&tier->lock);
  free_list(tier, garbage);
  if (shrinks) /* what was evicted goes back to the system */
    pm__ram_slots_release_free(&tier->slots);
}
