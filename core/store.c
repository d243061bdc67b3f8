/*
 * core/store.c - the page store as the read path sees it (core/store.h):
 * the RAM tier and the disk tier behind one set of calls, the frequency
 * sketch they share, and the counters. A lookup is recorded in the sketch
 * once, then tried in RAM, then on disk; a disk hit is promoted to RAM if
 * the RAM tier's policy admits it. A put goes to both tiers, each deciding
 * for itself. Capacities count bytes of page data: the 4096-byte header of
 * each page file (and the file system's own overhead) come on top.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "disk_tier.h"
#include "ram_tier.h"
#include "sketch.h"
#include "store.h"

/* The smallest page this level accepts (the public minimum is 64 KiB). */
#define STORE_PAGE_MIN 4096u

struct pm_store {
  uint32_t page_size;
  pm_sketch *sketch;
  pm_ram_tier *ram;
  pm_disk_tier *disk; /* NULL: disabled at open */
  _Atomic uint64_t ram_capacity, disk_capacity;
  _Atomic uint64_t hits_ram, hits_disk, misses, declined, store_errors;
};

static void count(_Atomic uint64_t *counter) {
  atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

static uint64_t load(_Atomic uint64_t *value) {
  return atomic_load_explicit(value, memory_order_relaxed);
}

static int check_config(const pm_store_config *config) {
  if (config->page_size < STORE_PAGE_MIN ||
      config->page_size > PM_PAGE_DATA_MAX)
    return pm__errf(PM_EINVAL, "page store: page size %u out of range",
                    (unsigned)config->page_size);
  if (config->eviction != PM_EVICT_STABLE && config->eviction != PM_EVICT_LRU)
    return pm__errf(PM_EINVAL, "page store: unknown eviction policy %d",
                    (int)config->eviction);
  if (config->disk_capacity > 0 && (!config->dir || !config->dir[0]))
    return pm__errf(PM_EINVAL, "page store: a disk tier needs a directory");
  return 0;
}

static uint64_t sketch_pages(const pm_store *store) {
  uint64_t bytes = PM_MAX(load((_Atomic uint64_t *)&store->ram_capacity),
                          load((_Atomic uint64_t *)&store->disk_capacity));
  return PM_MAX(bytes / store->page_size, 1u);
}

int pm__store_open(const pm_store_config *config, pm_store **out) {
  if (!config || !out)
    return pm__errf(PM_EINVAL, "page store: NULL argument");
  int rc = check_config(config);
  if (rc < 0)
    return rc;
  pm_store *store = calloc(1, sizeof *store);
  if (!store)
    return pm__errf(PM_ENOMEM, "page store: out of memory");
  store->page_size = config->page_size;
  atomic_init(&store->ram_capacity, config->ram_capacity);
  atomic_init(&store->disk_capacity, config->disk_capacity);
  rc = pm__sketch_open(sketch_pages(store), &store->sketch);
  if (rc == 0)
    rc = pm__ram_tier_open(config->ram_capacity, config->page_size,
                           config->eviction, store->sketch, &store->ram);
  if (rc == 0 && config->disk_capacity > 0)
    rc = pm__disk_tier_open(config, store->sketch, &store->disk);
  if (rc < 0) {
    pm__store_close(store);
    return rc;
  }
  *out = store;
  return 0;
}

void pm__store_close(pm_store *store) {
  if (!store)
    return;
  pm__disk_tier_close(store->disk);
  pm__ram_tier_close(store->ram);
  pm__sketch_close(store->sketch);
  free(store);
}

static int miss(pm_store *store, const pm_page_id *id, pm_tier *tier) {
  char hex[33];
  count(&store->misses);
  if (tier)
    *tier = PM_TIER_NONE;
  pm__page_id_hex(id, hex);
  return pm__errf(PM_ENOENT, "page %s: not cached", hex);
}

/* Read a disk page through a new RAM page, if the RAM tier admits it.
 * Returns bytes copied, 1 << 62 if not admitted, or a pm_err. */
#define NOT_PROMOTED ((ssize_t)1 << 62)
static ssize_t read_promoting(pm_store *store, pm_disk_ref *ref,
                              const pm_page_id *id, uint32_t offset,
                              void *buf, size_t length, uint64_t tick) {
  pm_ram_page *page;
  if (load(&store->ram_capacity) < ref->length ||
      pm__ram_tier_reserve(store->ram, id, ref->uri, ref->length, tick,
                           &page) != 0)
    return NOT_PROMOTED;
  void *data = pm__ram_page_data(page);
  ssize_t n = pm__disk_tier_read(store->disk, ref, 0, data, ref->length);
  if (n < 0) {
    pm__ram_tier_abort(store->ram, page);
    return n;
  }
  n = offset < ref->length ? (ssize_t)PM_MIN(length, ref->length - offset)
                           : 0;
  memcpy(buf, (char *)data + offset, (size_t)n);
  pm__ram_tier_commit(store->ram, page);
  return n;
}

static ssize_t read_disk(pm_store *store, const pm_page_id *id,
                         uint32_t offset, void *buf, size_t length,
                         uint64_t tick) {
  pm_disk_ref ref;
  int rc = pm__disk_tier_acquire(store->disk, id, tick, &ref);
  if (rc < 0)
    return rc;
  ssize_t n = read_promoting(store, &ref, id, offset, buf, length, tick);
  if (n == NOT_PROMOTED)
    n = pm__disk_tier_read(store->disk, &ref, offset, buf, length);
  pm__disk_tier_release(store->disk, &ref);
  return n;
}

ssize_t pm__store_read(pm_store *store, const pm_page_id *id, uint32_t offset,
                       void *buf, size_t length, pm_tier *tier) {
  if (!store || !id || (!buf && length))
    return pm__errf(PM_EINVAL, "page store read: NULL argument");
  uint64_t tick = pm__sketch_record(store->sketch, id);
  ssize_t n = PM_ENOENT;
  if (load(&store->ram_capacity) > 0) /* an empty tier: skip its lock */
    n = pm__ram_tier_read(store->ram, id, offset, buf, length, tick);
  if (n >= 0) {
    count(&store->hits_ram);
    if (store->disk)
      pm__disk_tier_touch(store->disk, id, tick);
    if (tier)
      *tier = PM_TIER_RAM;
    return n;
  }
  n = store->disk ? read_disk(store, id, offset, buf, length, tick)
                  : PM_ENOENT;
  if (n == PM_ENOENT)
    return miss(store, id, tier);
  if (n < 0) {
    count(&store->misses); /* the caller refetches */
    if (tier)
      *tier = PM_TIER_NONE;
    return n;
  }
  count(&store->hits_disk);
  if (tier)
    *tier = PM_TIER_DISK;
  return n;
}

ssize_t pm__store_read_quiet(pm_store *store, const pm_page_id *id,
                             void *buf, size_t length) {
  if (!store || !id || (!buf && length))
    return pm__errf(PM_EINVAL, "page store read: NULL argument");
  if (!store->disk)
    return PM_ENOENT;
  pm_disk_ref ref;
  int rc = pm__disk_tier_acquire_quiet(store->disk, id, &ref);
  if (rc < 0)
    return rc;
  ssize_t n = pm__disk_tier_read(store->disk, &ref, 0, buf, length);
  pm__disk_tier_release(store->disk, &ref);
  return n;
}

ssize_t pm__store_visit_ram(pm_store *store, const pm_page_id *id,
                            pm_page_visit visit, void *arg) {
  if (!store || !id || !visit)
    return pm__errf(PM_EINVAL, "page store visit: NULL argument");
  if (load(&store->ram_capacity) == 0 ||
      !pm__ram_tier_contains(store->ram, id))
    return PM_ENOENT; /* no access recorded: pm__store_read will */
  uint64_t tick = pm__sketch_record(store->sketch, id);
  ssize_t n = pm__ram_tier_visit(store->ram, id, tick, visit, arg);
  if (n == PM_ENOENT)
    return n; /* gone since */
  count(&store->hits_ram);
  if (store->disk)
    pm__disk_tier_touch(store->disk, id, tick);
  return n;
}

static int check_put(const pm_store *store, const pm_page_id *id,
                     const char *uri, const void *data, size_t length) {
  if (!store || !id || !uri || (!data && length))
    return pm__errf(PM_EINVAL, "page store put: NULL argument");
  if (length > store->page_size)
    return pm__errf(PM_EINVAL, "%s: page of %zu bytes exceeds the page "
                    "size %u", uri, length, (unsigned)store->page_size);
  return 0;
}

/* Combine the tiers' answers: stored or present anywhere wins, then an
 * error (a full disk first), then declined. */
static int put_outcome(int ram_rc, int disk_rc) {
  if (ram_rc == 0 || ram_rc == PM_EEXIST || disk_rc == 0 ||
      disk_rc == PM_EEXIST)
    return 0;
  if (disk_rc == PM_ENOSPC)
    return disk_rc;
  if (disk_rc < 0)
    return disk_rc;
  if (ram_rc < 0)
    return ram_rc;
  return 1;
}

int pm__store_put(pm_store *store, const pm_page_id *id, const char *uri,
                  const void *data, size_t length) {
  int rc = check_put(store, id, uri, data, length);
  if (rc < 0)
    return rc;
  uint64_t tick = pm__sketch_clock(store->sketch);
  int ram_rc = 1, disk_rc = 1;
  char detail[PM_ERRMSG_MAX] = "";
  if (load(&store->disk_capacity) > 0 && store->disk) {
    disk_rc = pm__disk_tier_put(store->disk, id, uri, data, length, tick);
    if (disk_rc < 0 && disk_rc != PM_EEXIST) {
      count(&store->store_errors);
      memcpy(detail, pm__errmsg(), sizeof detail);
      PM_LOG_RATELIMITED(PM_LOG_WARN, "store", 10000, "%s", detail);
    }
  }
  if (load(&store->ram_capacity) > 0)
    ram_rc = pm__ram_tier_put(store->ram, id, uri, data, length, tick);
  rc = put_outcome(ram_rc, disk_rc);
  if (rc == 1)
    count(&store->declined);
  if (rc < 0 && detail[0])
    pm__errmsg_set(detail);
  return rc;
}

bool pm__store_contains(pm_store *store, const pm_page_id *id) {
  if (!store || !id)
    return false;
  return pm__ram_tier_contains(store->ram, id) ||
         (store->disk && pm__disk_tier_contains(store->disk, id));
}

int pm__store_remove(pm_store *store, const pm_page_id *id) {
  if (!store || !id)
    return pm__errf(PM_EINVAL, "page store remove: NULL argument");
  int ram_rc = pm__ram_tier_remove(store->ram, id);
  int disk_rc = store->disk ? pm__disk_tier_remove(store->disk, id)
                            : PM_ENOENT;
  if (ram_rc == 0 || disk_rc == 0)
    return 0;
  char hex[33];
  pm__page_id_hex(id, hex);
  return pm__errf(PM_ENOENT, "page %s: not cached", hex);
}

ssize_t pm__store_remove_prefix(pm_store *store, const char *prefix) {
  if (!store || !prefix)
    return pm__errf(PM_EINVAL, "page store remove_prefix: NULL argument");
  pm_pagemap removed;
  int rc = pm__pagemap_init(&removed, 64);
  if (rc < 0)
    return rc;
  ssize_t n = 0;
  if (store->disk)
    n = pm__disk_tier_remove_prefix(store->disk, prefix, &removed);
  if (n >= 0)
    n = pm__ram_tier_remove_prefix(store->ram, prefix, &removed);
  if (n >= 0)
    n = (ssize_t)pm__pagemap_count(&removed);
  pm__pagemap_destroy(&removed);
  return n;
}

/* Zero-copy from the page file: a duplicate of its read-only descriptor. */
static int open_disk_page(pm_store *store, const pm_page_id *id,
                          uint64_t tick, int *fd, uint64_t *data_offset,
                          size_t *length, pm_checksum *sum, bool nowait) {
  pm_disk_ref ref;
  int rc = nowait ? pm__disk_tier_acquire_nowait(store->disk, id, tick, &ref)
                  : pm__disk_tier_acquire(store->disk, id, tick, &ref);
  if (rc < 0)
    return rc;
  rc = nowait && ref.verify ? PM_EBUSY
                            : pm__disk_tier_verify(store->disk, &ref);
  if (rc == 0) {
    *fd = fcntl(ref.fd, F_DUPFD_CLOEXEC, 0);
    if (*fd < 0)
      rc = pm__errf(pm__err_from_errno(errno), "cannot duplicate a page "
                    "descriptor: %s", strerror(errno));
    *data_offset = PM_PAGE_HEADER_SIZE;
    *length = ref.length;
    if (sum)
      *sum = ref.sum;
  }
  pm__disk_tier_release(store->disk, &ref);
  return rc;
}

int pm__store_open_page(pm_store *store, const pm_page_id *id, int *fd,
                        uint64_t *data_offset, size_t *length) {
  if (!store || !id || !fd || !data_offset || !length)
    return pm__errf(PM_EINVAL, "page store open_page: NULL argument");
  uint64_t tick = pm__sketch_record(store->sketch, id);
  int rc = store->disk ? open_disk_page(store, id, tick, fd, data_offset,
                                        length, NULL, false)
                       : PM_ENOENT;
  /* No hit or miss is counted here: callers open a page they have just
   * looked up or fetched, and count that lookup themselves. */
  if (rc == 0) {
    pm__ram_tier_touch(store->ram, id, tick);
    return 0;
  }
  if (rc != PM_ENOENT)
    return rc;
  rc = pm__ram_tier_memfd(store->ram, id, tick, fd, length);
  if (rc == 0)
    *data_offset = 0;
  return rc;
}

int pm__store_open_disk(pm_store *store, const pm_page_id *id, int *fd,
                        uint64_t *data_offset, size_t *length,
                        pm_checksum *sum, bool nowait) {
  if (!store || !id || !fd || !data_offset || !length || !sum)
    return pm__errf(PM_EINVAL, "page store open_disk: NULL argument");
  /* Not on disk (in RAM only, or a miss): no access recorded here, the
   * caller reads the page another way and that read records it. */
  if (!store->disk || !pm__disk_tier_contains(store->disk, id))
    return PM_ENOENT;
  uint64_t tick = pm__sketch_record(store->sketch, id);
  int rc = open_disk_page(store, id, tick, fd, data_offset, length, sum,
                          nowait);
  if (rc == 0) {
    pm__ram_tier_touch(store->ram, id, tick);
    atomic_fetch_add(&store->hits_disk, 1);
  }
  return rc;
}

void pm__store_stats(pm_store *store, pm_store_stats *out) {
  pm_tier_usage ram = {0}, disk = {0};
  uint64_t corrupt = 0;
  memset(out, 0, sizeof *out);
  if (!store)
    return;
  pm__ram_tier_usage(store->ram, &ram);
  if (store->disk)
    pm__disk_tier_usage(store->disk, &disk, &corrupt);
  out->hits_ram = load(&store->hits_ram);
  out->hits_disk = load(&store->hits_disk);
  out->misses = load(&store->misses);
  out->evictions = ram.evictions + disk.evictions;
  out->corrupt_pages = corrupt;
  out->declined = load(&store->declined);
  out->store_errors = load(&store->store_errors);
  out->disk_used = disk.used;
  out->disk_capacity = load(&store->disk_capacity);
  out->ram_used = ram.used;
  out->ram_capacity = ram.capacity;
  out->pages_disk = disk.pages;
  out->pages_ram = ram.pages;
}

int pm__store_set_capacity(pm_store *store, uint64_t disk_capacity,
                           uint64_t ram_capacity) {
  if (!store)
    return pm__errf(PM_EINVAL, "page store set_capacity: NULL argument");
  if (disk_capacity > 0 && !store->disk)
    return pm__errf(PM_EINVAL, "page store: the disk tier was disabled at "
                    "open and cannot be enabled later");
  atomic_store(&store->ram_capacity, ram_capacity);
  atomic_store(&store->disk_capacity, disk_capacity);
  pm__ram_tier_set_capacity(store->ram, ram_capacity);
  if (store->disk)
    pm__disk_tier_set_capacity(store->disk, disk_capacity);
  pm__sketch_set_capacity(store->sketch, sketch_pages(store));
  return 0;
}

void pm__store_touch(pm_store *store, const pm_page_id *id) {
  if (!store || !id)
    return;
  uint64_t tick = pm__sketch_record(store->sketch, id);
  pm__ram_tier_touch(store->ram, id, tick);
  if (store->disk)
    pm__disk_tier_touch(store->disk, id, tick);
}

int pm__store_put_ram(pm_store *store, const pm_page_id *id, const char *uri,
                      const void *data, size_t length) {
  int rc = check_put(store, id, uri, data, length);
  if (rc < 0)
    return rc;
  if (load(&store->ram_capacity) == 0)
    return 1;
  rc = pm__ram_tier_put(store->ram, id, uri, data, length,
                        pm__sketch_clock(store->sketch));
  if (rc == 1)
    count(&store->declined);
  return rc == PM_EEXIST ? 0 : rc;
}

int pm__store_list_disk(pm_store *store, pm_store_entry **out,
                        size_t *count) {
  *out = NULL;
  *count = 0;
  return store && store->disk ? pm__disk_tier_list(store->disk, out, count)
                              : 0;
}

void pm__store_list_free(pm_store_entry *entries, size_t count) {
  for (size_t i = 0; entries && i < count; i++)
    free(entries[i].uri);
  free(entries);
}
