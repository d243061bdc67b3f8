/*
 * core/disk_tier.h - the disk tier of the page store: one file per page
 * under <dir>/pages/, its on-disk format, the index rebuilt by scanning at
 * open, and its own capacity and eviction. Safe from any thread: one mutex
 * guards the index and is never held during page I/O.
 */
#ifndef PM_CORE_DISK_TIER_H
#define PM_CORE_DISK_TIER_H

#include <sys/types.h>

#include "core_int.h"
#include "evict.h"
#include "pagemap.h"
#include "sketch.h"
#include "store.h"

/* ---- page file format (core/disk_tier_format.c) ------------------------ */

/*
 * A page file is a 4096-byte header block, then the data. Header fields,
 * little-endian:
 *   0   8  magic "\x89PMPAGE\n"
 *   8   4  format version (1)
 *   12  4  header size (4096)
 *   16 16  page id
 *   32  8  data length
 *   40 16  XXH3-128 of the data
 *   56  8  creation time, ns since the epoch
 *   64  4  flags (PM_PAGE_URI_TRUNCATED)
 *   68  4  URI length
 *   72  .  URI bytes (no NUL), then zeros up to 4080
 *   4080 16 XXH3-128 of bytes 0..4079
 */
#define PM_PAGE_HEADER_SIZE 4096u
#define PM_PAGE_FORMAT_VERSION 1u
#define PM_PAGE_URI_OFFSET 72u
#define PM_PAGE_SUM_OFFSET (PM_PAGE_HEADER_SIZE - 16u)
#define PM_PAGE_URI_MAX (PM_PAGE_SUM_OFFSET - PM_PAGE_URI_OFFSET)
/* The largest page a header may describe (the public limit is 16 MiB). */
#define PM_PAGE_DATA_MAX (16u << 20)
/* The URI was longer than PM_PAGE_URI_MAX and is cut there. */
#define PM_PAGE_URI_TRUNCATED 1u

typedef struct pm_page_header {
  pm_page_id id;
  uint64_t data_length;
  pm_checksum data_sum;
  int64_t created_ns;
  uint32_t flags;
  uint32_t uri_length;
  char uri[PM_PAGE_URI_MAX + 1]; /* NUL-terminated */
} pm_page_header;

/* Fill a header for a page (computes the data checksum, cuts a long URI). */
void pm__page_header_init(pm_page_header *header, const pm_page_id *id,
                          const char *uri, const void *data, size_t length);

/* Serialise into a 4096-byte block (deterministic: padding is zero). */
void pm__page_header_encode(const pm_page_header *header,
                            uint8_t block[PM_PAGE_HEADER_SIZE]);

/* Parse and validate a header block of `size` bytes (at least 4096 are
 * needed). Errors: PM_ECORRUPT, with a detail naming the failed check. */
int pm__page_header_decode(const uint8_t *block, size_t size,
                           pm_page_header *out);

/* "ab/abcdef....pg": the page's path below pages/. */
#define PM_PAGE_PATH_MAX 40
void pm__page_path(const pm_page_id *id, char out[PM_PAGE_PATH_MAX]);

/* Parse a file name "<32 hex>.pg"; returns 0 or PM_EINVAL. */
int pm__page_name_parse(const char *name, pm_page_id *out);

/* ---- the tier (core/disk_tier.c) ----------------------------------------- */

typedef struct pm_disk_tier pm_disk_tier;
typedef struct pm_disk_page pm_disk_page;

/* Create <dir>/pages and <dir>/tmp, check that they are writable, clean
 * stale tmp files and rebuild the index from pages/.
 * Errors: PM_EACCES (not a writable directory), PM_EIO, PM_ENOMEM. */
int pm__disk_tier_open(const pm_store_config *config, pm_sketch *sketch,
                       pm_disk_tier **out);
/* No reader may be active. Accepts NULL. */
void pm__disk_tier_close(pm_disk_tier *tier);

/* A reader's hold on a page: the page cannot be freed, nor its descriptor
 * closed, until pm__disk_tier_release(). */
typedef struct pm_disk_ref {
  pm_disk_page *page;
  int fd;          /* read-only descriptor of the page file */
  bool own_fd;     /* fd is this reader's (not the cached one) */
  bool verify;     /* the data must be checksummed on this read */
  uint64_t length; /* data length */
  const char *uri; /* the page's URI, valid until release */
  pm_checksum sum; /* of the data, as its header says */
} pm_disk_ref;

/* Find the page, make it most recent and get a descriptor (opened outside
 * the lock if none is cached). Errors: PM_ENOENT (absent, or its file was
 * removed by another process: then it leaves the index), PM_EIO. */
int pm__disk_tier_acquire(pm_disk_tier *tier, const pm_page_id *id,
                          uint64_t tick, pm_disk_ref *ref);
/* The same for a caller that may not wait for the disk: PM_EBUSY (nothing
 * held) when the page's file would have to be opened first. */
int pm__disk_tier_acquire_nowait(pm_disk_tier *tier, const pm_page_id *id,
                                 uint64_t tick, pm_disk_ref *ref);
/* The same without it counting as an access (the eviction policy's
 * recency and frequency stay as they were): for the mesh's own copies. */
int pm__disk_tier_acquire_quiet(pm_disk_tier *tier, const pm_page_id *id,
                                pm_disk_ref *ref);
void pm__disk_tier_release(pm_disk_tier *tier, pm_disk_ref *ref);

/* Copy [offset, offset + length) of the data into buf, verifying the whole
 * page first if ref->verify. Returns bytes copied (short past the data).
 * Errors: PM_ECORRUPT (checksum mismatch or truncated file: the page has
 * been removed), PM_EIO, PM_ENOMEM. */
ssize_t pm__disk_tier_read(pm_disk_tier *tier, pm_disk_ref *ref,
                           uint32_t offset, void *buf, size_t length);

/* Verify the whole page now if ref->verify (pm__disk_tier_read does it
 * by itself). Errors: as pm__disk_tier_read. */
int pm__disk_tier_verify(pm_disk_tier *tier, pm_disk_ref *ref);

/* A lookup answered by the RAM tier refreshes the page here too. */
void pm__disk_tier_touch(pm_disk_tier *tier, const pm_page_id *id,
                         uint64_t tick);

bool pm__disk_tier_contains(pm_disk_tier *tier, const pm_page_id *id);

/* Write the page (tmp file, then rename) if the policy admits it.
 * Returns 0 (stored), 1 (declined), PM_EEXIST (present or being written),
 * PM_ENOSPC (the file system is full: nothing is left behind), PM_EIO,
 * PM_ENOMEM. */
int pm__disk_tier_put(pm_disk_tier *tier, const pm_page_id *id,
                      const char *uri, const void *data, size_t length,
                      uint64_t tick);

/* Errors: PM_ENOENT. */
int pm__disk_tier_remove(pm_disk_tier *tier, const pm_page_id *id);

/* A copy of the pages' ids, lengths and URIs (see pm__store_list_disk). */
int pm__disk_tier_list(pm_disk_tier *tier, pm_store_entry **out,
                       size_t *count);

/* As pm__ram_tier_remove_prefix. */
ssize_t pm__disk_tier_remove_prefix(pm_disk_tier *tier, const char *prefix,
                                    pm_pagemap *removed);

void pm__disk_tier_usage(pm_disk_tier *tier, pm_tier_usage *out,
                         uint64_t *corrupt_pages);

/* Evicts down to the new capacity. */
void pm__disk_tier_set_capacity(pm_disk_tier *tier, uint64_t capacity);

#endif /* PM_CORE_DISK_TIER_H */
