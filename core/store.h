/*
 * core/store.h - the page store: a RAM tier and a disk tier of fixed-size
 * pages keyed by pm_page_id, each with its own capacity and eviction.
 *
 * Disk layout under <dir>/pages/: one file per page, named by the page id in
 * hex, two-level fan-out (pages/ab/abcdef....pg). A file has a 4096-byte
 * header block (magic, format version, page id, data length, XXH3-128 of
 * the data, the URI the page belongs to, a checksum of the header itself)
 * followed by the data at offset 4096, so that the data can be mapped.
 * A page is written to <dir>/tmp/ and renamed into place only once written
 * whole (and fsynced if the store was opened with `durable`), so a crash
 * never leaves a visible partial page. Opening the store scans pages/ and
 * rebuilds the index from the headers; torn or foreign files are removed.
 * The data checksum is verified on the first read of a page after it was
 * loaded from disk (and on every read with verify_always); a mismatch
 * removes the page and reads report PM_ECORRUPT, so the caller refetches.
 *
 * Capacities count bytes of page data. On disk each page also takes its
 * 4096-byte header and the file system's rounding; the RAM tier reserves
 * address space for capacity / page_size whole pages (huge-page backed,
 * committed as used). Every lookup (pm__store_read, open_page, touch) is
 * counted in a frequency sketch shared by both tiers. PM_EVICT_LRU always
 * admits and evicts the least recently used page. PM_EVICT_STABLE evicts
 * the same way but, once a tier is full, admits a page only if its
 * estimated frequency exceeds each victim's by more than 2 (the lookup
 * that missed, plus the rounding of the sketch's halving), or the victim
 * has been idle for 3x the longest recent reuse distance (or capacity, in
 * pages): see core/evict.c. A disabled disk tier (capacity 0 at open)
 * cannot be enabled later; the directory is then not touched.
 *
 * Several processes may open one directory at once: files are only ever
 * created by rename and removed by unlink, and a reader that finds a page
 * file gone treats it as a miss. Each process accounts only for the pages
 * it found at open or stored itself, so together they may exceed the
 * capacity; tmp files of live writers are left alone at open.
 *
 * All functions are safe from any thread.
 */
#ifndef PM_CORE_STORE_H
#define PM_CORE_STORE_H

#include <sys/types.h>

#include "core_int.h"

typedef struct pm_store pm_store;

typedef struct pm_store_config {
  const char *dir;          /* cache directory (pages/ and tmp/ go below) */
  uint64_t disk_capacity;   /* bytes of page data; 0 disables the disk tier */
  uint64_t ram_capacity;    /* bytes of page data; 0 disables the RAM tier */
  uint32_t page_size;       /* largest page, bytes (4096..16 MiB) */
  pm_eviction eviction;     /* PM_EVICT_STABLE or PM_EVICT_LRU */
  bool verify_always;       /* checksum disk pages on every read */
  bool durable;             /* fsync page files before rename */
} pm_store_config;

/* Where a page was found. */
typedef enum pm_tier {
  PM_TIER_NONE = 0,
  PM_TIER_RAM = 1,
  PM_TIER_DISK = 2,
} pm_tier;

typedef struct pm_store_stats {
  uint64_t hits_ram, hits_disk, misses;
  uint64_t evictions, corrupt_pages, declined, store_errors;
  uint64_t disk_used, disk_capacity, ram_used, ram_capacity;
  uint64_t pages_disk, pages_ram;
} pm_store_stats;

/* Open (creating dir/pages and dir/tmp) and rebuild the index.
 * Errors: PM_EINVAL, PM_EACCES (directory not writable), PM_EIO, PM_ENOMEM.
 */
int pm__store_open(const pm_store_config *config, pm_store **out);
void pm__store_close(pm_store *store);

/*
 * Copy [offset, offset+length) of the page's data into buf. Records the
 * access for the eviction policy whether or not the page is present.
 * Returns bytes copied (short only past the page's data length) and sets
 * *tier (may be NULL). A page found on disk may be promoted to RAM.
 * Errors: PM_ENOENT (not cached), PM_ECORRUPT (failed its checksum; it has
 * been removed), PM_EIO.
 */
/* A whole page from the disk tier as the mesh copies it to another
 * member (rebalance, drain): no access recorded, no promotion to RAM, no
 * hit or miss counted; a user's reads are what those reflect. Errors: as
 * pm__store_read; PM_ENOENT for a page not on disk. */
ssize_t pm__store_read_quiet(pm_store *store, const pm_page_id *id,
                             void *buf, size_t length);

ssize_t pm__store_read(pm_store *store, const pm_page_id *id, uint32_t offset,
                       void *buf, size_t length, pm_tier *tier);

/* As pm__store_read of a whole page held in RAM, handing it to visit (see
 * pm__ram_tier_visit) instead of copying it; counted as a RAM hit. A page
 * on disk only is PM_ENOENT here: read it with pm__store_read. Returns what
 * visit returns. Errors: PM_ENOENT, PM_EINVAL. */
ssize_t pm__store_visit_ram(pm_store *store, const pm_page_id *id,
                            pm_page_visit visit, void *arg);

/*
 * Insert a whole page (length <= page_size; only an object's last page is
 * shorter). `uri` is recorded in the header (for eviction by prefix).
 * The eviction policy may decline to keep it (returns 1, counts
 * `declined`); 0 means stored in at least one tier. A page already present
 * is left as it is (returns 0).
 * Errors: PM_ENOSPC (the disk is full: the page is not stored; callers
 * carry on without it), PM_EIO, PM_EINVAL, PM_ENOMEM.
 */
int pm__store_put(pm_store *store, const pm_page_id *id, const char *uri,
                  const void *data, size_t length);

/* Like pm__store_put, into the RAM tier only: pages this peer reads but
 * does not own (hot pages fetched from their owners). */
int pm__store_put_ram(pm_store *store, const pm_page_id *id, const char *uri,
                      const void *data, size_t length);

/* Is the page present in either tier? Does not count as an access. */
bool pm__store_contains(pm_store *store, const pm_page_id *id);

/* Remove a page from both tiers. Errors: PM_ENOENT. */
int pm__store_remove(pm_store *store, const pm_page_id *id);

/* Remove every page whose URI starts with prefix; returns how many. */
ssize_t pm__store_remove_prefix(pm_store *store, const char *prefix);

/*
 * Zero-copy access: a read-only descriptor for the page's data, valid even
 * after the page is evicted (the file is only unlinked). On success *fd is
 * a new descriptor the caller closes, *data_offset where the data starts in
 * it (page-aligned: 4096 for a page file, 0 for a sealed memfd copy of a
 * page held only in RAM) and *length the data length. The page is verified as
 * pm__store_read would. The access is recorded for the eviction policy,
 * but no hit or miss is counted (the caller counts its lookup). Errors:
 * PM_ENOENT, PM_ECORRUPT, PM_EIO.
 */
int pm__store_open_page(pm_store *store, const pm_page_id *id, int *fd,
                        uint64_t *data_offset, size_t *length);

/*
 * Like pm__store_open_page for a page on disk only, with the checksum of
 * its data as its header records it (verified against the data already if
 * pm__store_open_page would have): what serving a page to another peer
 * without reading it needs. Counts a disk hit. With nowait, a page that
 * must be read and verified first, or whose file is not open already, is
 * PM_EBUSY instead (the caller may not wait for the disk). Errors:
 * PM_ENOENT (not on disk: in RAM only, or not cached), PM_EBUSY (nowait),
 * PM_ECORRUPT, PM_EIO, PM_EINVAL.
 */
int pm__store_open_disk(pm_store *store, const pm_page_id *id, int *fd,
                        uint64_t *data_offset, size_t *length,
                        pm_checksum *sum, bool nowait);

void pm__store_stats(pm_store *store, pm_store_stats *out);

/* One page on disk, as listed by pm__store_list_disk. */
typedef struct pm_store_entry {
  pm_page_id id;
  uint64_t length;
  char *uri;
} pm_store_entry;

/* A copy of the ids, lengths and URIs of the pages on disk (the mesh
 * re-creates lost replicas from it). Free with pm__store_list_free.
 * Errors: PM_ENOMEM. */
int pm__store_list_disk(pm_store *store, pm_store_entry **out,
                        size_t *count);
void pm__store_list_free(pm_store_entry *entries, size_t count);

/* Record an access made without the store (an attached process read the
 * page file itself), for the eviction policy. Counts no hit. */
void pm__store_touch(pm_store *store, const pm_page_id *id);

/* Change capacities at run time; evicts down to the new sizes. */
int pm__store_set_capacity(pm_store *store, uint64_t disk_capacity,
                           uint64_t ram_capacity);

#endif /* PM_CORE_STORE_H */
