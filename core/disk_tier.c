/*
 * core/disk_tier.c - the disk tier's index and its readers: looking pages
 * up, reading and verifying them, evicting and removing them, and the
 * bounded cache of open descriptors that keeps a hit to one pread.
 *
 * One mutex guards the index, the policy and the descriptor cache; no file
 * is read, opened, unlinked or closed-for-good under it. A page entry is
 * reference counted (the index holds one, each reader one), so a page
 * evicted while being read keeps its descriptor, and so its bytes, until
 * the reader is done: files are only ever unlinked, never rewritten.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "disk_tier_int.h"

/* Descriptor cache bounds: a quarter of RLIMIT_NOFILE, within these. */
#define FD_CACHE_MIN 16u
#define FD_CACHE_MAX 4096u

pm_disk_page *pm__disk_page_new(const pm_page_id *id, const char *uri,
                                bool uri_truncated, uint64_t length,
                                const pm_checksum *sum) {
  pm_disk_page *page = calloc(1, sizeof *page);
  if (!page || !(page->uri = pm__strdup(uri))) {
    free(page);
    return NULL;
  }
  page->node.id = *id;
  page->node.length = length;
  page->sum = *sum;
  page->fd = -1;
  page->refs = 1;
  page->uri_truncated = uri_truncated;
  return page;
}

static void page_free(pm_disk_page *page) {
  if (page->fd >= 0)
    close(page->fd);
  free(page->uri);
  free(page);
}

static void free_list(pm_disk_page *list) {
  while (list) {
    pm_disk_page *next = list->next;
    page_free(list);
    list = next;
  }
}

static void unref_locked(pm_disk_page *page, pm_disk_page **garbage) {
  if (--page->refs == 0) {
    page->next = *garbage;
    *garbage = page;
  }
}

static pm_disk_page *page_of_fd_link(pm_fd_link *link) {
  return (pm_disk_page *)((char *)link - offsetof(pm_disk_page, fd_link));
}

static void fd_unlink(pm_disk_tier *tier, pm_disk_page *page) {
  page->fd_link.prev->next = page->fd_link.next;
  page->fd_link.next->prev = page->fd_link.prev;
  tier->fd_count--;
}

static void fd_link_first(pm_disk_tier *tier, pm_disk_page *page) {
  page->fd_link.next = tier->fd_lru.next;
  page->fd_link.prev = &tier->fd_lru;
  tier->fd_lru.next->prev = &page->fd_link;
  tier->fd_lru.next = &page->fd_link;
  tier->fd_count++;
}

/* Take the page's descriptor out of the cache; the page will close it
 * when freed. */
static void fd_forget(pm_disk_tier *tier, pm_disk_page *page) {
  if (page->fd >= 0)
    fd_unlink(tier, page);
}

/* Close the least recently used descriptors nobody is reading with, until
 * the cache is within its bound. The files are still linked, so close()
 * frees nothing on disk. */
static void fd_trim_locked(pm_disk_tier *tier) {
  pm_fd_link *link = tier->fd_lru.prev;
  while (tier->fd_count > tier->fd_max && link != &tier->fd_lru) {
    pm_disk_page *page = page_of_fd_link(link);
    link = link->prev;
    if (page->refs > 1)
      continue;
    fd_unlink(tier, page);
    close(page->fd);
    page->fd = -1;
  }
}

/* Cache fd for the page if it has none; false if the caller keeps it. */
static bool fd_install_locked(pm_disk_tier *tier, pm_disk_page *page,
                              int fd) {
  if (page->fd >= 0 || !page->in_index)
    return false;
  page->fd = fd;
  fd_link_first(tier, page);
  fd_trim_locked(tier);
  return true;
}

/* Take a page out of the index, the recency list, the accounting and the
 * descriptor cache. Its reference from the index is the caller's. */
static void unindex_locked(pm_disk_tier *tier, pm_disk_page *page) {
  pm__pagemap_remove(&tier->map, &page->node.id);
  pm__evict_unlink(&tier->ev, &page->node);
  pm__evict_uncharge(&tier->ev, page->node.length);
  fd_forget(tier, page);
  page->in_index = false;
}

void pm__disk_drop_locked(pm_disk_tier *tier, pm_disk_page *page,
                          pm_disk_page **doomed) {
  unindex_locked(tier, page);
  page->next = *doomed;
  *doomed = page;
}

void pm__disk_evict_locked(pm_disk_tier *tier, uint64_t incoming,
                           pm_disk_page **doomed) {
  pm_evict_node *victim;
  while ((victim = pm__evict_victim(&tier->ev, incoming))) {
    pm__disk_drop_locked(tier, (pm_disk_page *)victim, doomed);
    tier->evictions++;
  }
}

void pm__disk_bury(pm_disk_tier *tier, pm_disk_page *doomed) {
  char path[PM_PAGE_PATH_MAX];
  if (!doomed)
    return;
  for (pm_disk_page *page = doomed; page; page = page->next) {
    /* A new copy of the page entered the index since it was dropped: its
     * file (renamed over the old one, or about to be) is not ours to
     * remove. One that enters after this look needs a fetch first, far
     * longer than the unlink that follows it. */
    pthread_mutex_lock(&tier->lock);
    bool replaced = pm__pagemap_get(&tier->map, &page->node.id) != NULL;
    pthread_mutex_unlock(&tier->lock);
    if (replaced)
      continue;
    pm__page_path(&page->node.id, path);
    if (unlinkat(tier->pages_fd, path, 0) != 0 && errno != ENOENT)
      PM_LOG(PM_LOG_WARN, "store", "%s/pages/%s: cannot remove: %s",
             tier->dir, path, strerror(errno));
  }
  pm_disk_page *garbage = NULL;
  pthread_mutex_lock(&tier->lock);
  while (doomed) {
    pm_disk_page *next = doomed->next;
    unref_locked(doomed, &garbage);
    doomed = next;
  }
  pthread_mutex_unlock(&tier->lock);
  free_list(garbage);
}

static uint64_t fd_cache_bound(void) {
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0)
    return FD_CACHE_MIN;
  uint64_t quarter = (uint64_t)limit.rlim_cur / 4;
  return PM_MAX(FD_CACHE_MIN, PM_MIN(FD_CACHE_MAX, quarter));
}

int pm__disk_tier_open(const pm_store_config *config, pm_sketch *sketch,
                       pm_disk_tier **out) {
  pm_disk_tier *tier = calloc(1, sizeof *tier);
  if (!tier || !(tier->dir = pm__strdup(config->dir))) {
    free(tier);
    return pm__errf(PM_ENOMEM, "disk tier: out of memory");
  }
  pthread_mutex_init(&tier->lock, NULL);
  pm__evict_init(&tier->ev, config->eviction, config->disk_capacity,
                 config->page_size, sketch);
  tier->pages_fd = tier->tmp_fd = -1;
  tier->page_size = config->page_size;
  tier->verify_always = config->verify_always;
  tier->durable = config->durable;
  tier->fd_lru.prev = tier->fd_lru.next = &tier->fd_lru;
  tier->fd_max = fd_cache_bound();
  uint64_t serial;
  pm__random(&serial, sizeof serial);
  atomic_init(&tier->tmp_counter, serial);
  int rc = pm__pagemap_init(&tier->map, 1024);
  if (rc == 0)
    rc = pm__disk_tier_prepare(tier);
  if (rc == 0)
    rc = pm__disk_tier_scan(tier);
  if (rc < 0) {
    pm__disk_tier_close(tier);
    return rc;
  }
  *out = tier;
  return 0;
}

void pm__disk_tier_close(pm_disk_tier *tier) {
  if (!tier)
    return;
  size_t cursor = 0;
  pm_disk_page *page;
  while ((page = pm__pagemap_next(&tier->map, &cursor, NULL)))
    page_free(page);
  pm__pagemap_destroy(&tier->map);
  if (tier->pages_fd >= 0)
    close(tier->pages_fd);
  if (tier->tmp_fd >= 0)
    close(tier->tmp_fd);
  pthread_mutex_destroy(&tier->lock);
  free(tier->dir);
  free(tier);
}

/* Look the page up and take a reader's reference (under the lock). */
static pm_disk_page *acquire_locked(pm_disk_tier *tier, const pm_page_id *id,
                                    uint64_t tick, pm_disk_ref *ref,
                                    bool quiet) {
  pm_disk_page *page = pm__pagemap_get(&tier->map, id);
  if (!page || !page->ready)
    return NULL;
  if (!quiet)
    pm__evict_access(&tier->ev, &page->node, tick);
  page->refs++;
  ref->page = page;
  ref->fd = page->fd;
  ref->own_fd = false;
  ref->verify = tier->verify_always || !page->verified;
  ref->length = page->node.length;
  ref->uri = page->uri;
  ref->sum = page->sum;
  if (page->fd >= 0) {
    fd_unlink(tier, page);
    fd_link_first(tier, page);
  }
  return page;
}

/* The page's file is gone (another process evicted it): forget the page
 * without unlinking anything (the path may already hold a new copy). */
static int vanished(pm_disk_tier *tier, pm_disk_ref *ref) {
  pm_disk_page *garbage = NULL;
  pthread_mutex_lock(&tier->lock);
  if (ref->page->in_index) {
    unindex_locked(tier, ref->page);
    unref_locked(ref->page, &garbage);
  }
  pthread_mutex_unlock(&tier->lock);
  free_list(garbage);
  pm__disk_tier_release(tier, ref);
  return PM_ENOENT;
}

/* Open the page file outside the lock, then cache the descriptor. */
static int open_page_file(pm_disk_tier *tier, pm_disk_ref *ref) {
  char path[PM_PAGE_PATH_MAX];
  pm__page_path(&ref->page->node.id, path);
  int fd = openat(tier->pages_fd, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT)
    return vanished(tier, ref);
  if (fd < 0) {
    int rc = pm__errf(PM_EIO, "%s/pages/%s: cannot open: %s", tier->dir,
                      path, strerror(errno));
    pm__disk_tier_release(tier, ref);
    return rc;
  }
  pthread_mutex_lock(&tier->lock);
  ref->own_fd = !fd_install_locked(tier, ref->page, fd);
  pthread_mutex_unlock(&tier->lock);
  ref->fd = fd;
  return 0;
}

static int acquire(pm_disk_tier *tier, const pm_page_id *id, uint64_t tick,
                   pm_disk_ref *ref, bool nowait, bool quiet) {
  pthread_mutex_lock(&tier->lock);
  pm_disk_page *page = acquire_locked(tier, id, tick, ref, quiet);
  pthread_mutex_unlock(&tier->lock);
  if (!page)
    return PM_ENOENT;
  if (ref->fd >= 0)
    return 0;
  if (!nowait)
    return open_page_file(tier, ref);
  pm__disk_tier_release(tier, ref);
  return PM_EBUSY;
}

int pm__disk_tier_acquire(pm_disk_tier *tier, const pm_page_id *id,
                          uint64_t tick, pm_disk_ref *ref) {
  return acquire(tier, id, tick, ref, false, false);
}

int pm__disk_tier_acquire_nowait(pm_disk_tier *tier, const pm_page_id *id,
                                 uint64_t tick, pm_disk_ref *ref) {
  return acquire(tier, id, tick, ref, true, false);
}

int pm__disk_tier_acquire_quiet(pm_disk_tier *tier, const pm_page_id *id,
                                pm_disk_ref *ref) {
  return acquire(tier, id, 0, ref, false, true);
}

void pm__disk_tier_release(pm_disk_tier *tier, pm_disk_ref *ref) {
  pm_disk_page *garbage = NULL;
  pthread_mutex_lock(&tier->lock);
  unref_locked(ref->page, &garbage);
  pthread_mutex_unlock(&tier->lock);
  if (ref->own_fd && ref->fd >= 0)
    close(ref->fd);
  free_list(garbage);
  ref->page = NULL;
  ref->fd = -1;
}

/* The page failed a check: remove it and its file, report PM_ECORRUPT. */
static int condemn(pm_disk_tier *tier, pm_disk_ref *ref, const char *why) {
  char path[PM_PAGE_PATH_MAX];
  pm__page_path(&ref->page->node.id, path);
  pm_disk_page *doomed = NULL;
  pthread_mutex_lock(&tier->lock);
  if (ref->page->in_index) {
    pm__disk_drop_locked(tier, ref->page, &doomed);
    tier->corrupt++;
  }
  pthread_mutex_unlock(&tier->lock);
  pm__disk_bury(tier, doomed);
  PM_LOG(PM_LOG_WARN, "store", "%s/pages/%s: %s; page removed", tier->dir,
         path, why);
  return pm__errf(PM_ECORRUPT, "%s/pages/%s (%s): %s; page removed",
                  tier->dir, path, ref->page->uri, why);
}

/* pread exactly length bytes of data at offset; a short file is corrupt. */
static int read_data(pm_disk_tier *tier, pm_disk_ref *ref, uint64_t offset,
                     void *buf, size_t length) {
  ssize_t n = pm__pread_full(ref->fd, buf, length,
                             PM_PAGE_HEADER_SIZE + offset);
  if (n < 0) {
    char path[PM_PAGE_PATH_MAX];
    pm__page_path(&ref->page->node.id, path);
    return pm__errf(PM_EIO, "%s/pages/%s: read failed: %s", tier->dir, path,
                    strerror(errno));
  }
  if ((size_t)n < length)
    return condemn(tier, ref, "file is shorter than its header says");
  return 0;
}

/* Check the whole data against the header's checksum. */
static int verify_data(pm_disk_tier *tier, pm_disk_ref *ref,
                       const void *data) {
  pm_checksum sum = pm__checksum(data, ref->length);
  if (memcmp(sum.bytes, ref->page->sum.bytes, sizeof sum.bytes) != 0)
    return condemn(tier, ref, "data checksum mismatch");
  pthread_mutex_lock(&tier->lock);
  ref->page->verified = true;
  pthread_mutex_unlock(&tier->lock);
  ref->verify = false;
  return 0;
}

/* Read the whole page into a scratch buffer and verify it; copy [offset,
 * offset + n) to buf if buf is not NULL. */
static int verify_via_scratch(pm_disk_tier *tier, pm_disk_ref *ref,
                              uint32_t offset, void *buf, size_t n) {
  void *whole = malloc(ref->length ? ref->length : 1);
  if (!whole)
    return pm__errf(PM_ENOMEM, "cannot allocate %llu bytes to verify a page",
                    (unsigned long long)ref->length);
  int rc = read_data(tier, ref, 0, whole, ref->length);
  if (rc == 0)
    rc = verify_data(tier, ref, whole);
  if (rc == 0 && buf)
    memcpy(buf, (char *)whole + offset, n);
  free(whole);
  return rc;
}

/* Read and verify the whole page, then copy the range out of it; straight
 * into buf when the range is the whole page. */
static int read_verified_range(pm_disk_tier *tier, pm_disk_ref *ref,
                               uint32_t offset, void *buf, size_t n) {
  if (offset == 0 && n == ref->length) {
    int rc = read_data(tier, ref, 0, buf, n);
    return rc < 0 ? rc : verify_data(tier, ref, buf);
  }
  return verify_via_scratch(tier, ref, offset, buf, n);
}

int pm__disk_tier_verify(pm_disk_tier *tier, pm_disk_ref *ref) {
  return ref->verify ? verify_via_scratch(tier, ref, 0, NULL, 0) : 0;
}

ssize_t pm__disk_tier_read(pm_disk_tier *tier, pm_disk_ref *ref,
                           uint32_t offset, void *buf, size_t length) {
  size_t n = 0;
  if (offset < ref->length)
    n = PM_MIN(length, ref->length - offset);
  int rc = ref->verify ? read_verified_range(tier, ref, offset, buf, n)
                       : read_data(tier, ref, offset, buf, n);
  return rc < 0 ? rc : (ssize_t)n;
}

void pm__disk_tier_touch(pm_disk_tier *tier, const pm_page_id *id,
                         uint64_t tick) {
  pthread_mutex_lock(&tier->lock);
  pm_disk_page *page = pm__pagemap_get(&tier->map, id);
  if (page && page->ready)
    pm__evict_access(&tier->ev, &page->node, tick);
  pthread_mutex_unlock(&tier->lock);
}

bool pm__disk_tier_contains(pm_disk_tier *tier, const pm_page_id *id) {
  pthread_mutex_lock(&tier->lock);
  pm_disk_page *page = pm__pagemap_get(&tier->map, id);
  bool found = page && page->ready;
  pthread_mutex_unlock(&tier->lock);
  return found;
}

int pm__disk_tier_remove(pm_disk_tier *tier, const pm_page_id *id) {
  pm_disk_page *doomed = NULL;
  pthread_mutex_lock(&tier->lock);
  pm_disk_page *page = pm__pagemap_get(&tier->map, id);
  bool found = page && page->ready;
  if (found)
    pm__disk_drop_locked(tier, page, &doomed);
  pthread_mutex_unlock(&tier->lock);
  pm__disk_bury(tier, doomed);
  return found ? 0 : PM_ENOENT;
}

/* Does the page belong under prefix? A cut URI matches when it is itself
 * a prefix of `prefix`: removing too much is safe, too little is not. */
static bool uri_matches(const pm_disk_page *page, const char *prefix,
                        size_t prefix_len) {
  size_t uri_len = strlen(page->uri);
  if (page->uri_truncated && prefix_len > uri_len)
    return strncmp(page->uri, prefix, uri_len) == 0;
  return strncmp(page->uri, prefix, prefix_len) == 0;
}

ssize_t pm__disk_tier_remove_prefix(pm_disk_tier *tier, const char *prefix,
                                    pm_pagemap *removed) {
  size_t prefix_len = strlen(prefix), cursor = 0;
  ssize_t count = 0;
  pm_disk_page *doomed = NULL, *page;
  pthread_mutex_lock(&tier->lock);
  while ((page = pm__pagemap_next(&tier->map, &cursor, NULL)))
    if (page->ready && uri_matches(page, prefix, prefix_len)) {
      page->next = doomed; /* collect first: dropping reshapes the map */
      doomed = page;
    }
  pm_disk_page *matches = doomed;
  doomed = NULL;
  while (matches) {
    pm_disk_page *next = matches->next;
    if (removed)
      pm__pagemap_put(removed, &matches->node.id, tier);
    pm__disk_drop_locked(tier, matches, &doomed);
    count++;
    matches = next;
  }
  pthread_mutex_unlock(&tier->lock);
  pm__disk_bury(tier, doomed);
  return count;
}

void pm__disk_tier_usage(pm_disk_tier *tier, pm_tier_usage *out,
                         uint64_t *corrupt_pages) {
  pthread_mutex_lock(&tier->lock);
  out->capacity = tier->ev.capacity;
  out->used = tier->ev.used;
  out->pages = tier->ev.linked;
  out->evictions = tier->evictions;
  *corrupt_pages = tier->corrupt;
  pthread_mutex_unlock(&tier->lock);
}

void pm__disk_tier_set_capacity(pm_disk_tier *tier, uint64_t capacity) {
  pm_disk_page *doomed = NULL;
  pthread_mutex_lock(&tier->lock);
  tier->ev.capacity = capacity;
  pm__disk_evict_locked(tier, 0, &doomed);
  pthread_mutex_unlock(&tier->lock);
  pm__disk_bury(tier, doomed);
}

int pm__disk_tier_list(pm_disk_tier *tier, pm_store_entry **out,
                       size_t *count) {
  size_t cursor = 0, n = 0;
  pm_disk_page *page;
  pthread_mutex_lock(&tier->lock);
  size_t capacity = pm__pagemap_count(&tier->map);
  pm_store_entry *list = calloc(capacity ? capacity : 1, sizeof *list);
  while (list && (page = pm__pagemap_next(&tier->map, &cursor, NULL))) {
    if (!page->ready || n == capacity)
      continue;
    list[n].id = page->node.id;
    list[n].length = page->node.length;
    if (!(list[n].uri = strdup(page->uri)))
      break;
    n++;
  }
  pthread_mutex_unlock(&tier->lock);
  if (!list)
    return pm__errf(PM_ENOMEM, "listing the disk tier: out of memory");
  *out = list;
  *count = n;
  return 0;
}
