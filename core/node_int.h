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
/* Ask the node for a page; *fd (closed by the caller) holds it at
 * [*data_offset, +*length). */
int pm__link_fetch(pm_link *link, const char *uri, const pm_object_stat *st,
                   uint64_t page_index, int *fd, uint64_t *data_offset,
                   size_t *length);
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
void pm__mapcache_put(pm_mapcache *cache, pm_map_entry *entry);
const void *pm__map_entry_data(const pm_map_entry *entry, size_t *length);

#endif /* PM_CORE_NODE_INT_H */
