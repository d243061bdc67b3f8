/*
 * core/peer_int.h - the peer object shared by the files of core/ that make
 * up the public API: options and lifecycle (peer.c), metadata lookups
 * (objects.c), the read path (readpath.c) and readahead (readahead.c).
 */
#ifndef PM_CORE_PEER_INT_H
#define PM_CORE_PEER_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "core_int.h"
#include "flight.h"
#include "histogram.h"
#include "meta.h"
#include "pool.h"
#include "store.h"
#include "pagemesh/transport.h"
#include "ufs/ufs_int.h"

#define PM_URI_MAX 4096
#define PM_READAHEAD_STREAMS 64

typedef struct pm_stream {
  uint64_t uri_hash;
  uint64_t next_page;       /* the page a sequential reader reads next */
  uint64_t prefetched_to;   /* pages below this were already queued */
  unsigned sequential;      /* consecutive sequential reads seen */
} pm_stream;

typedef struct pm_counters {
  _Atomic uint64_t reads, bytes_served, misses, origin_requests, origin_bytes;
  _Atomic uint64_t store_errors, corrupt_pages;
  _Atomic uint64_t attached_hits; /* node: hits reported by attached
                                     processes; attached: its own hits */
  _Atomic uint64_t landed; /* attached: pages the node wrote into its
                            * landing area */
  /* Durations of pm_read/pm_read_batch calls (api.c): a node peer's own
   * and those its attached processes report (node_server.c). */
  pm_histogram read_latency;
} pm_counters;

typedef struct pm_node_server pm_node_server;
typedef struct pm_mesh pm_mesh;
typedef struct pm_link pm_link;
typedef struct pm_mapcache pm_mapcache;
typedef struct pm_landing pm_landing;
typedef struct pm_map_entry pm_map_entry;

typedef enum pm_role {
  PM_ROLE_NODE = 1,       /* owns the store and origins, serves attachers */
  PM_ROLE_ATTACHED = 2,   /* reaches the node peer through a link */
  PM_ROLE_STANDALONE = 3, /* owns the store privately (PM_OPEN_STANDALONE) */
} pm_role;

struct pm_peer {
  pm_options opts;
  char *cache_dir;
  bool read_only_dir; /* not writable by this process: attach only */
  /* An attach-only process whose node peer went away reads the origins
   * directly (no cache: role STANDALONE, engine without a store) and tries
   * to attach again at next_attach_ns (role.c). */
  atomic_bool direct;
  _Atomic uint64_t next_attach_ns;
  /* Who this process is for the cache directory. Public calls hold
   * role_lock for reading; a takeover holds it for writing. */
  pthread_rwlock_t role_lock;
  pm_role role;
  int lock_fd;             /* node: holds flock(node.lock) */
  pm_node_server *server;  /* node */
  pm_link *link;           /* attached */
  pm_mapcache *maps;       /* attached */
  pm_landing *landing;     /* attached: where the node writes pages */
  pm_mesh *mesh;           /* node with opts.listen: the mesh */
  pm_store *store; /* NULL with PM_OPEN_PASSTHROUGH */
  pm_meta *meta;
  pm_ufs_set *ufs;
  pm_pool *pool;
  pm_flights *flights;
  pm_counters counters;
  atomic_bool closing;
  /* Bumped by every eviction: a page kept in RAM in the background after
   * its read (readpath.c) is not kept if an eviction came in between. */
  atomic_uint_fast64_t evict_generation;
  atomic_bool drained;     /* node: handed its pages over and left */
  pthread_mutex_t streams_mutex;
  pm_stream streams[PM_READAHEAD_STREAMS];
};

/* role.c: become the node peer or attach to it (open), and take over from
 * a node peer that went away (link is the broken link seen). */
int pm__role_establish(pm_peer *peer);
void pm__role_takeover(pm_peer *peer, pm_link *broken_link);
/* A process reading the origins directly: attach to a node peer again if
 * one is back (tried at most once a second). */
void pm__role_reattach(pm_peer *peer);
void pm__role_release(pm_peer *peer);

/* peer.c: the parts a node (or standalone) peer owns. */
int pm__engine_open(pm_peer *peer);
/* The origins alone (no store, object metadata in memory): what a process
 * that cannot attach reads through meanwhile. */
int pm__engine_open_direct(pm_peer *peer);
void pm__engine_close(pm_peer *peer);
/* pm_peer_stats for a caller that holds the role lock (or runs while the
 * role cannot change: the node server's threads). */
void pm__peer_stats(pm_peer *peer, pm_stats *out);

/* The functions behind the public API (api.c wraps them with the role
 * lock and retries after a takeover). */
ssize_t pm__read(pm_peer *peer, const char *uri, uint64_t offset, void *buf,
                 size_t length);
ssize_t pm__read_version(pm_peer *peer, const char *uri, const char *version,
                         uint64_t offset, void *buf, size_t length);
int pm__read_batch(pm_peer *peer, pm_range *ranges, size_t count);
int pm__prefetch(pm_peer *peer, const char *uri, uint64_t offset,
                 uint64_t length);
int pm__map(pm_peer *peer, const char *uri, uint64_t offset, size_t length,
            pm_mapping *out);
int pm__stat(pm_peer *peer, const char *uri, pm_object_stat *out);
int pm__list(pm_peer *peer, const char *uri, unsigned flags,
             pm_list_entry **entries, size_t *count);
int pm__invalidate(pm_peer *peer, const char *uri_prefix);
int pm__status_json(pm_peer *peer, char **out);
ssize_t pm__evict(pm_peer *peer, const char *uri_prefix);
int pm__set_capacity(pm_peer *peer, uint64_t disk, uint64_t ram);
ssize_t pm__drain(pm_peer *peer);

/* options.c */
int pm__options_check(const pm_options *opts);
int pm__eviction_parse(const char *text, pm_eviction *out);
char *pm__cache_dir_resolve(const char *configured);

/* stats_file.c: add a closing peer's counters to <dir>/stats.json. */
void pm__stats_file_add(const char *dir, const pm_stats *delta);

/* Metadata of a normalised URI: fresh cache, else the origin (one request
 * for concurrent callers), else stale cache if the origin is unreachable. */
int pm__peer_stat(pm_peer *peer, const char *uri, pm_object_stat *out);
/* Like pm__peer_stat, without asking other peers (answers to them); with
 * refresh, the origin first even if the cache is fresh (the asker knows
 * the entry to be out of date: PM_PAGE_REQ_FRESH). */
int pm__peer_stat_local(pm_peer *peer, const char *uri, bool refresh,
                        pm_object_stat *out);
/* The cached metadata only if it is fresh; PM_ENOENT otherwise. */
int pm__peer_stat_fresh(pm_peer *peer, const char *uri, pm_object_stat *out);

/* Bytes in page page_index of an object of `size` bytes. */
static inline size_t pm__page_length(const pm_peer *peer, uint64_t size,
                                     uint64_t page_index) {
  if (size == 0 || page_index > (size - 1) / peer->opts.page_size)
    return 0; /* past the end (a product would wrap) */
  uint64_t start = page_index * peer->opts.page_size;
  return (size_t)PM_MIN((uint64_t)peer->opts.page_size, size - start);
}

/* Make sure one page is cached (or fetched), copying [offset,
 * offset+length) of it into dst if dst is not NULL. Returns bytes copied
 * or a pm_err. */
ssize_t pm__page_fetch(pm_peer *peer, const char *uri,
                       const pm_object_stat *st, uint64_t page_index,
                       uint32_t offset, void *dst, size_t length);

/* As pm__page_fetch for a whole page, handing it to visit(data, length,
 * arg) while it is valid instead of copying it out (a page fetched from
 * the mesh or the origin, or held in the RAM tier, is not copied at all
 * before visit sees it).
 * Returns what visit returns, or a pm_err. Not for an attached process
 * (PM_ENOTSUP). */
ssize_t pm__page_fetch_visit(pm_peer *peer, const char *uri,
                             const pm_object_stat *st, uint64_t page_index,
                             pm_page_visit visit, void *arg);

/* The two halves of pm__page_fetch: the store alone (PM_ENOENT on a miss;
 * with dst NULL, 0 if present), and the shared fetch of a missing page. */
ssize_t pm__page_read_cached(pm_peer *peer, const pm_page_id *id,
                             const char *uri, uint32_t offset, void *dst,
                             size_t length);
ssize_t pm__page_fetch_shared(pm_peer *peer, const char *uri,
                              const pm_object_stat *st, uint64_t page_index,
                              const pm_page_id *id, uint32_t offset,
                              void *dst, size_t length);

/* Serve a page to another peer as its owner: store, else a cached copy
 * from a replica, else the origin; never forwarded. Bytes or a pm_err. */
ssize_t pm__page_fetch_owner(pm_peer *peer, const char *uri,
                             const pm_object_stat *st, uint64_t page_index,
                             const pm_page_id *id, void *dst, size_t length);

/* attached.c: the same, for an attached process. */
ssize_t pm__attached_read_cached(pm_peer *peer, const pm_page_id *id,
                                 uint32_t offset, void *dst, size_t length);
ssize_t pm__attached_fetch(pm_peer *peer, const char *uri,
                           const pm_object_stat *st, uint64_t page_index,
                           const pm_page_id *id, uint32_t offset, void *dst,
                           size_t length);
/* Map a cached page (priv_ gets the map-cache entry). PM_ENOENT if the
 * page is not cached. */
int pm__attached_map(pm_peer *peer, const pm_page_id *id, uint32_t offset,
                     size_t length, pm_mapping *out);

/* Tell readahead that pages [first, last] of uri were just read. */
void pm__readahead_note(pm_peer *peer, const char *uri,
                        const pm_object_stat *st, uint64_t first,
                        uint64_t last);

#endif /* PM_CORE_PEER_INT_H */
