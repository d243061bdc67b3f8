/*
 * core/mapcache.c - an attached process's read-only mappings of page
 * files, by page id, so that repeated reads of a page cost a lookup and a
 * memcpy (or nothing, through pm_map). A page file is opened straight from
 * the node's cache directory when it is there, its header checked and its
 * data checksum verified once, when it is first mapped. Entries are
 * reference counted: an entry handed out by pm_map outlives its eviction
 * from the cache, and a mapping outlives the page file's unlink. The total
 * of mapped bytes is bounded; the least recently used unreferenced
 * entries are unmapped first. A page the node wrote into this process's
 * landing area (core/landing.c) is an entry too: its slot instead of a
 * mapping, given back when the entry is freed.
 *
 * A mapping of a page file keeps the file's disk space after the node
 * evicts (unlinks) it, for as long as the mapping lives: every attached
 * process could hold up to the map cache's capacity of evicted pages on
 * the node's disk, past its capacity. So reads sweep, at most every
 * SWEEP_INTERVAL_NS and SWEEP_BATCH entries at a time: an unreferenced
 * mapping whose page file is gone from the cache directory (or is another
 * file now) is unmapped.
 */
#define _GNU_SOURCE /* F_GET_SEALS */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk_tier.h"
#include "node_int.h"
#include "pagemap.h"

struct pm_map_entry {
  pm_map_entry *prev, *next; /* LRU list, most recent first */
  pm_page_id id;
  void *base;
  size_t length;
  unsigned refs; /* the cache's own reference counts as one */
  bool cached;
  pm_landing *landing; /* set: base is this landing slot, not a mapping */
  int slot;
  dev_t dev; /* the page file mapped (ino 0: none, or an unlinked file) */
  ino_t ino;
  uint32_t swept; /* the sweep round that last checked it */
};

#define SWEEP_INTERVAL_NS (2ull * 1000000000ull)
#define SWEEP_BATCH 256

struct pm_mapcache {
  pthread_mutex_t mutex;
  pm_pagemap index;
  pm_map_entry *head, *tail;
  uint64_t mapped, capacity;
  uint32_t sweep_round;
  _Atomic uint64_t next_sweep_ns;
};

int pm__mapcache_open(uint64_t capacity, pm_mapcache **out) {
  pm_mapcache *c = calloc(1, sizeof *c);
  if (!c || pm__pagemap_init(&c->index, 1024) != 0) {
    free(c);
    return pm__errf(PM_ENOMEM, "out of memory");
  }
  pthread_mutex_init(&c->mutex, NULL);
  c->capacity = capacity;
  *out = c;
  return 0;
}

static void lru_unlink(pm_mapcache *c, pm_map_entry *e) {
  if (e->prev)
    e->prev->next = e->next;
  else
    c->head = e->next;
  if (e->next)
    e->next->prev = e->prev;
  else
    c->tail = e->prev;
  e->prev = e->next = NULL;
}

static void lru_push_front(pm_mapcache *c, pm_map_entry *e) {
  e->next = c->head;
  e->prev = NULL;
  if (c->head)
    c->head->prev = e;
  c->head = e;
  if (!c->tail)
    c->tail = e;
}

/* Let go of an entry's bytes: its landing slot, or its mapping. */
static void release_data(void *base, size_t length, pm_landing *landing,
                         int slot) {
  if (landing)
    pm__landing_give(landing, slot);
  else
    munmap(base, length);
}

static void entry_free(pm_map_entry *e) {
  release_data(e->base, e->length, e->landing, e->slot);
  free(e);
}

/* Drop the cache's reference of e; with the mutex held. Returns e if its
 * last reference went and it must be freed outside the lock. */
static pm_map_entry *uncache_locked(pm_mapcache *c, pm_map_entry *e) {
  pm__pagemap_remove(&c->index, &e->id);
  lru_unlink(c, e);
  c->mapped -= e->length;
  e->cached = false;
  return --e->refs == 0 ? e : NULL;
}

void pm__mapcache_close(pm_mapcache *c) {
  if (!c)
    return;
  while (c->head) {
    pm_map_entry *e = uncache_locked(c, c->head);
    if (e)
      entry_free(e);
  }
  pm__pagemap_destroy(&c->index);
  pthread_mutex_destroy(&c->mutex);
  free(c);
}

pm_map_entry *pm__mapcache_get(pm_mapcache *c, const pm_page_id *id) {
  pthread_mutex_lock(&c->mutex);
  pm_map_entry *e = pm__pagemap_get(&c->index, id);
  if (e) {
    e->refs++;
    lru_unlink(c, e);
    lru_push_front(c, e);
  }
  pthread_mutex_unlock(&c->mutex);
  return e;
}

void pm__mapcache_put(pm_mapcache *c, pm_map_entry *e) {
  if (!e)
    return;
  pthread_mutex_lock(&c->mutex);
  bool last = --e->refs == 0;
  pthread_mutex_unlock(&c->mutex);
  if (last)
    entry_free(e);
}

const void *pm__map_entry_data(const pm_map_entry *e, size_t *length) {
  *length = e->length;
  return e->base;
}

/* Unmap unreferenced least-recently-used entries until `incoming` fits. */
static void make_room_locked(pm_mapcache *c, size_t incoming,
                             pm_map_entry **doomed, size_t *ndoomed,
                             size_t max) {
  pm_map_entry *e = c->tail;
  while (e && c->mapped + incoming > c->capacity && *ndoomed < max) {
    pm_map_entry *prev = e->prev;
    pm_map_entry *dead = uncache_locked(c, e);
    if (dead)
      doomed[(*ndoomed)++] = dead;
    e = prev;
  }
}

/* Take ownership of a mapping (or a landing slot) and cache it; returns a
 * referenced entry (the one already cached if another thread got there
 * first). A mapping of a page file already unlinked (`file` with no link:
 * evicted between the open and the map) is handed out uncached, freed
 * with its last reference: cached, it would keep the file's disk space
 * where no sweep sees it. */
static pm_map_entry *insert(pm_mapcache *c, const pm_page_id *id, void *base,
                            size_t length, pm_landing *landing, int slot,
                            const struct stat *file) {
  pm_map_entry *e = calloc(1, sizeof *e);
  if (!e) {
    release_data(base, length, landing, slot);
    return NULL;
  }
  *e = (pm_map_entry){.id = *id, .base = base, .length = length, .refs = 2,
                      .cached = true, .landing = landing, .slot = slot};
  if (file) { /* a file of the cache directory */
    e->dev = file->st_dev;
    e->ino = file->st_ino;
  }
  if (file && file->st_nlink == 0) {
    e->refs = 1;
    e->cached = false;
    return e;
  }
  pm_map_entry *doomed[16];
  size_t ndoomed = 0;
  pthread_mutex_lock(&c->mutex);
  pm_map_entry *old = pm__pagemap_get(&c->index, id);
  if (old) {
    old->refs++;
  } else {
    make_room_locked(c, length, doomed, &ndoomed, 16);
    if (pm__pagemap_put(&c->index, id, e) != 0) {
      e->refs = 1;
      e->cached = false;
    } else {
      lru_push_front(c, e);
      c->mapped += length;
    }
  }
  pthread_mutex_unlock(&c->mutex);
  for (size_t i = 0; i < ndoomed; i++)
    entry_free(doomed[i]);
  if (old) {
    entry_free(e);
    return old;
  }
  return e;
}

/* Map [data_offset, data_offset+length) of fd. */
static void *map_fd(int fd, uint64_t data_offset, size_t length) {
  void *base = mmap(NULL, length ? length : 1, PROT_READ,
                    MAP_SHARED | MAP_POPULATE, fd, (off_t)data_offset);
  return base == MAP_FAILED ? NULL : base;
}

/* A mapping past the end of a file faults (SIGBUS): check first. */
static bool file_holds(int fd, uint64_t bytes, struct stat *st) {
  return fstat(fd, st) == 0 && (uint64_t)st->st_size >= bytes;
}

pm_map_entry *pm__mapcache_add_fd(pm_mapcache *c, const pm_page_id *id,
                                  int fd, uint64_t data_offset,
                                  size_t length) {
  struct stat st;
  void *base = file_holds(fd, data_offset + length, &st)
                   ? map_fd(fd, data_offset, length)
                   : NULL;
  if (!base) {
    pm__errf(PM_EIO, "cannot map a page from the node peer");
    return NULL;
  }
  /* A memfd (a page from the node's RAM) has no link and no disk space:
   * cached as a landed page is, not as a file */
  bool memfd = fcntl(fd, F_GET_SEALS) >= 0;
  return insert(c, id, base, length ? length : 1, NULL, -1,
                memfd ? NULL : &st);
}

bool pm__mapcache_drop_landed(pm_mapcache *c) {
  pm_map_entry *dead = NULL;
  bool dropped = false;
  pthread_mutex_lock(&c->mutex);
  for (pm_map_entry *e = c->tail; e && !dropped; e = e->prev)
    if (e->landing && e->refs == 1) {
      dead = uncache_locked(c, e);
      dropped = true;
    }
  pthread_mutex_unlock(&c->mutex);
  if (dead)
    entry_free(dead);
  return dropped;
}

pm_map_entry *pm__mapcache_add_landing(pm_mapcache *c, const pm_page_id *id,
                                       pm_landing *landing, int slot,
                                       size_t length) {
  void *base = (void *)pm__landing_data(landing, slot);
  return insert(c, id, base, length, landing, slot, NULL);
}

pm_map_entry *pm__mapcache_open_file(pm_mapcache *c, const char *cache_dir,
                                     const pm_page_id *id) {
  char rel[PM_PAGE_PATH_MAX], path[PM_URI_MAX];
  pm__page_path(id, rel);
  snprintf(path, sizeof path, "%s/pages/%s", cache_dir, rel);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  uint8_t *block = malloc(PM_PAGE_HEADER_SIZE);
  pm_page_header *h = malloc(sizeof *h);
  void *base = NULL;
  struct stat st;
  if (block && h &&
      pm__pread_full(fd, block, PM_PAGE_HEADER_SIZE, 0) ==
          PM_PAGE_HEADER_SIZE &&
      pm__page_header_decode(block, PM_PAGE_HEADER_SIZE, h) == 0 &&
      pm__page_id_eq(&h->id, id) && h->data_length > 0 &&
      file_holds(fd, PM_PAGE_HEADER_SIZE + h->data_length, &st))
    base = map_fd(fd, PM_PAGE_HEADER_SIZE, (size_t)h->data_length);
  close(fd);
  size_t length = base ? (size_t)h->data_length : 0;
  bool good = base != NULL;
  if (good) {
    pm_checksum sum = pm__checksum(base, length);
    good = memcmp(sum.bytes, h->data_sum.bytes, 16) == 0;
    if (!good) {
      PM_LOG(PM_LOG_WARN, "attach", "%s: checksum mismatch; asking the node",
             path);
      munmap(base, length);
    }
  }
  free(block);
  free(h);
  return good ? insert(c, id, base, length, NULL, -1, &st) : NULL;
}

/* ---- giving evicted page files back --------------------------------------- */

typedef struct swept_file {
  pm_page_id id;
  dev_t dev;
  ino_t ino;
} swept_file;

/* Up to `max` unreferenced file mappings not checked this round, least
 * recently used first; a new round when all were. */
static size_t sweep_pick(pm_mapcache *c, swept_file *out, size_t max) {
  size_t n = 0;
  pthread_mutex_lock(&c->mutex);
  for (int pass = 0; pass < 2 && n == 0; pass++) {
    for (pm_map_entry *e = c->tail; e && n < max; e = e->prev)
      if (e->ino && e->refs == 1 && e->swept != c->sweep_round) {
        e->swept = c->sweep_round;
        out[n++] = (swept_file){.id = e->id, .dev = e->dev, .ino = e->ino};
      }
    if (n == 0)
      c->sweep_round++;
  }
  pthread_mutex_unlock(&c->mutex);
  return n;
}

/* Whether the page file of f is still the one mapped. */
static bool file_still_there(const char *cache_dir, const swept_file *f) {
  char rel[PM_PAGE_PATH_MAX], path[PM_URI_MAX];
  pm__page_path(&f->id, rel);
  snprintf(path, sizeof path, "%s/pages/%s", cache_dir, rel);
  struct stat st;
  if (stat(path, &st) != 0)
    return errno != ENOENT && errno != ENOTDIR; /* unsure: keep it */
  return st.st_dev == f->dev && st.st_ino == f->ino;
}

size_t pm__mapcache_sweep(pm_mapcache *c, const char *cache_dir, bool now) {
  uint64_t t = pm__now_ns(), due = atomic_load(&c->next_sweep_ns);
  if (!now && (t < due || !atomic_compare_exchange_strong(
                              &c->next_sweep_ns, &due,
                              t + SWEEP_INTERVAL_NS)))
    return 0;
  swept_file *files = malloc(SWEEP_BATCH * sizeof *files);
  if (!files)
    return 0;
  size_t n = sweep_pick(c, files, SWEEP_BATCH), gone = 0;
  for (size_t i = 0; i < n; i++)
    if (!file_still_there(cache_dir, &files[i]))
      files[gone++] = files[i];
  pm_map_entry *doomed[SWEEP_BATCH];
  size_t ndoomed = 0;
  pthread_mutex_lock(&c->mutex);
  for (size_t i = 0; i < gone; i++) {
    pm_map_entry *e = pm__pagemap_get(&c->index, &files[i].id);
    if (e && e->refs == 1 && e->ino == files[i].ino &&
        e->dev == files[i].dev)
      doomed[ndoomed++] = uncache_locked(c, e);
  }
  pthread_mutex_unlock(&c->mutex);
  for (size_t i = 0; i < ndoomed; i++)
    entry_free(doomed[i]);
  free(files);
  return ndoomed;
}
