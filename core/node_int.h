/*
 * core/node_int.h - one peer per node: the node peer serves the processes
 * that attach to it over a unix socket in the cache directory (node
 * server), and an attached process reaches it through a link, reading
 * cached pages through mappings of the page files (map cache). See
 * core/role.c for who becomes what, and how an attached process takes over
 * when the node peer exits.
 */
#ifndef PM_CORE_NODE_INT_H
#define PM_CORE_NODE_INT_H

#include <sys/types.h>

#include "peer_int.h"

/* ---- node server (core/node_server.c) ------------------------------------ */

int pm__node_server_start(pm_peer *peer, const char *path,
                          pm_node_server **out);
void pm__node_server_stop(pm_node_server *server);
/* Distinct pids of the attached processes, at most max. */
size_t pm__node_server_clients(pm_node_server *server, pid_t *pids,
                               size_t max);
/* The node's status as JSON (malloc'd). core/status.c. */
int pm__node_status_json(pm_peer *peer, char **out);

/* ---- landing areas, node side (core/node_landing.c) ------------------------- */

typedef struct pm_node_landing pm_node_landing;
/* The largest landing area a node maps. */
#define PM_NODE_LANDING_MAX (1ull << 30)
typedef struct pm_node_landings {
  pthread_mutex_t mutex;
  pm_node_landing *head;
} pm_node_landings;

int pm__node_landings_init(pm_node_landings *set);
void pm__node_landings_destroy(pm_node_landings *set);
/* A reference to the area behind fd (a landing memfd an attached process
 * passed), kept (a duplicate) the first time. Errors: PM_EPROTO (not a
 * memfd, or too large), PM_ENOMEM, and the errno's code of a failed dup. */
int pm__node_landing_get(pm_node_landings *set, int fd,
                         pm_node_landing **out);
/* Is fd the memfd of this area? */
bool pm__node_landing_is(const pm_node_landing *landing, int fd);
void pm__node_landing_put(pm_node_landings *set, pm_node_landing *landing);
/* Where slot (of slot_size bytes) starts in the area, or -1 if it is not
 * inside. */
int64_t pm__node_landing_offset(const pm_node_landing *landing, uint32_t slot,
                                uint32_t slot_size);
/* Write length bytes at offset (pwrite). Errors: PM_EIO. */
int pm__node_landing_write(pm_node_landing *landing, uint64_t offset,
                           const void *data, size_t length);

/* ---- link (core/link.c) ---------------------------------------------------- */

/* Connect and say hello; *page_size is the node's. Errors:
 * PM_EUNREACHABLE (no node listening), PM_EACCES (another user's node),
 * PM_EPROTO. */
int pm__link_open(const char *path, pm_link **out, uint32_t *page_size);
void pm__link_close(pm_link *link);
/* A connection failed: the node peer is gone. */
bool pm__link_broken(pm_link *link);
pid_t pm__link_node_pid(pm_link *link);
int pm__link_stat(pm_link *link, const char *uri, pm_object_stat *out);
/* A fetch from the node: where the page may land, and what came back. */
typedef struct pm_link_fetch_io {
  int landing_fd;     /* in: the landing area's memfd, or -1 */
  int slot;           /* in: a slot of it taken for this page, or -1 */
  uint32_t slot_size; /* in: its slot size */
  bool landed;        /* out: the node wrote the page into the slot */
  bool answered;      /* out: the node answered (it no longer writes) */
  int fd;             /* out: otherwise a descriptor holding the page */
  uint64_t data_offset;
  size_t length;      /* out: the page length */
} pm_link_fetch_io;

/* Ask the node for a page: it either writes it into io->slot of the
 * landing area (passed along) and sets io->landed, or hands back io->fd
 * (closed by the caller) holding it at [data_offset, +length). Errors: the
 * node's, PM_EUNREACHABLE (node gone), PM_EPROTO (bad reply). */
int pm__link_fetch(pm_link *link, const char *uri, const pm_object_stat *st,
                   uint64_t page_index, pm_link_fetch_io *io);
int pm__link_list(pm_link *link, const char *uri, unsigned flags,
                  pm_ufs_list_cb cb, void *arg);
int pm__link_invalidate(pm_link *link, const char *prefix);
int pm__link_prefetch(pm_link *link, const char *uri, uint64_t offset,
                      uint64_t length);
int pm__link_status(pm_link *link, char **json);
ssize_t pm__link_evict(pm_link *link, const char *prefix);
int pm__link_set_capacity(pm_link *link, uint64_t disk, uint64_t ram);
ssize_t pm__link_drain(pm_link *link);
/* Tell the node (batched) that a page was read from its file, and that a
 * read of `bytes` was served. */
void pm__link_touch(pm_link *link, const pm_page_id *id);
void pm__link_note_read(pm_link *link, uint64_t bytes);
/* Count the duration of a read call, reported with the counters. */
void pm__link_note_latency(pm_link *link, uint64_t ns);
void pm__link_flush(pm_link *link);

/* ---- landing area (core/landing.c) ------------------------------------------ */

/* A shared memfd of `slots` slots of slot_size bytes, mapped read-only
 * here. Errors: PM_EINVAL, PM_ENOMEM, and memfd/mmap failures. */
int pm__landing_open(uint32_t slot_size, unsigned slots, pm_landing **out);
/* No more slots are taken; the area is freed once every taken slot is
 * given back or spoiled. Accepts NULL. */
void pm__landing_close(pm_landing *landing);
int pm__landing_fd(const pm_landing *landing);
uint32_t pm__landing_slot_size(const pm_landing *landing);
/* A free slot's index, or -1 if none is free. */
int pm__landing_take(pm_landing *landing);
const void *pm__landing_data(const pm_landing *landing, int slot);
/* A taken slot back for reuse; or never again (its fetch did not end with
 * the node's answer, so the node may still write into it). */
void pm__landing_give(pm_landing *landing, int slot);
void pm__landing_spoil(pm_landing *landing, int slot);
unsigned pm__landing_free_slots(pm_landing *landing);

/* ---- map cache (core/mapcache.c) ------------------------------------------- */

int pm__mapcache_open(uint64_t capacity, pm_mapcache **out);
void pm__mapcache_close(pm_mapcache *cache);
/* A referenced entry for id, or NULL. */
pm_map_entry *pm__mapcache_get(pm_mapcache *cache, const pm_page_id *id);
/* Map the page file of id from <cache_dir>/pages (verified), or NULL. */
pm_map_entry *pm__mapcache_open_file(pm_mapcache *cache,
                                     const char *cache_dir,
                                     const pm_page_id *id);
/* Map a page passed by the node; NULL on failure (detail recorded). */
pm_map_entry *pm__mapcache_add_fd(pm_mapcache *cache, const pm_page_id *id,
                                  int fd, uint64_t data_offset,
                                  size_t length);
/* Cache a page the node wrote into a slot of the landing area; the entry
 * owns the slot (given back when the entry is freed). NULL only if out of
 * memory (the slot is given back then). */
pm_map_entry *pm__mapcache_add_landing(pm_mapcache *cache,
                                       const pm_page_id *id,
                                       pm_landing *landing, int slot,
                                       size_t length);
/* Uncache the least recently used landed page nobody holds, giving its
 * slot back; false if there is none. */
bool pm__mapcache_drop_landed(pm_mapcache *cache);
void pm__mapcache_put(pm_mapcache *cache, pm_map_entry *entry);
/* Unmap unreferenced mappings of page files gone from <cache_dir>/pages
 * (evicted by the node: a mapping keeps an unlinked file's disk space);
 * at most every 2 s and 256 entries a call unless `now`. Returns how many
 * it unmapped. */
size_t pm__mapcache_sweep(pm_mapcache *cache, const char *cache_dir,
                          bool now);
const void *pm__map_entry_data(const pm_map_entry *entry, size_t *length);

#endif /* PM_CORE_NODE_INT_H */
