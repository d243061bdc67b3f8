/*
 * core/disk_tier_int.h - what the files of the disk tier share among
 * themselves (core/disk_tier.c: index and reads; disk_tier_write.c: puts;
 * disk_tier_scan.c: directory setup and the scan at open). Nothing outside
 * core/disk_tier*.c includes it.
 */
#ifndef PM_CORE_DISK_TIER_INT_H
#define PM_CORE_DISK_TIER_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "disk_tier.h"

typedef struct pm_fd_link {
  struct pm_fd_link *prev, *next;
} pm_fd_link;

struct pm_disk_page {
  pm_evict_node node; /* first: id, data length, recency */
  pm_fd_link fd_link; /* on the descriptor cache list while fd >= 0 */
  char *uri;
  pm_checksum sum; /* of the data, from the header */
  int fd;          /* cached read-only descriptor, or -1 */
  uint32_t refs;   /* the index's, plus one per reader */
  bool ready;      /* written whole (or found at open): visible */
  bool verified;   /* the data checksum was checked in this process */
  bool in_index;
  bool uri_truncated;
  pm_disk_page *next; /* on a list of pages to unlink or to free */
};

struct pm_disk_tier {
  pthread_mutex_t lock; /* index, policy, descriptor cache, page flags */
  pm_pagemap map;
  pm_evict_state ev;
  char *dir; /* the cache directory */
  int pages_fd, tmp_fd;
  uint32_t page_size;
  bool verify_always, durable;
  pm_fd_link fd_lru; /* next: most recently used descriptor */
  uint64_t fd_count, fd_max;
  uint64_t evictions, corrupt;
  _Atomic uint64_t tmp_counter; /* starts random: tmp names are unique
                                   across stores, not only in this one */
};

/* A page entry that is not in the index yet (one reference, no fd). */
pm_disk_page *pm__disk_page_new(const pm_page_id *id, const char *uri,
                                bool uri_truncated, uint64_t length,
                                const pm_checksum *sum);

/* Take a page out of the index, recency list and accounting; its file is
 * to be unlinked: it goes on *doomed, still holding the index reference.
 * Must hold the lock. */
void pm__disk_drop_locked(pm_disk_tier *tier, pm_disk_page *page,
                          pm_disk_page **doomed);
/* Evict least recent pages until `incoming` more bytes fit. */
void pm__disk_evict_locked(pm_disk_tier *tier, uint64_t incoming,
                           pm_disk_page **doomed);
/* Unlink the files of doomed pages and drop their references. Without the
 * lock. */
void pm__disk_bury(pm_disk_tier *tier, pm_disk_page *doomed);

/* Create and check the directories, open pages_fd and tmp_fd, clean stale
 * tmp files (core/disk_tier_scan.c). */
int pm__disk_tier_prepare(pm_disk_tier *tier);
/* Rebuild the index from pages/, removing what is not a whole page. */
int pm__disk_tier_scan(pm_disk_tier *tier);

#endif /* PM_CORE_DISK_TIER_INT_H */
