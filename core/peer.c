/*
 * core/peer.c - opening and closing a peer: the parts every role has (the
 * cache directory, the worker pool, the single-flight table), the parts a
 * node or standalone peer owns (the page store, the persistent metadata
 * cache, the origins: the "engine"), and its counters (pm_peer_stats).
 * Which role a process takes is decided in role.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mesh.h"
#include "node_int.h"

static void count_origin(void *arg, uint64_t requests, uint64_t bytes) {
  pm_peer *peer = arg;
  atomic_fetch_add(&peer->counters.origin_requests, requests);
  atomic_fetch_add(&peer->counters.origin_bytes, bytes);
}

static int open_store(pm_peer *peer) {
  pm_store_config sc = {
      .dir = peer->cache_dir,
      .disk_capacity = peer->opts.disk_capacity,
      .ram_capacity = peer->opts.ram_capacity,
      .page_size = peer->opts.page_size,
      .eviction = peer->opts.eviction,
      .verify_always = (peer->opts.flags & PM_OPEN_VERIFY_ALWAYS) != 0,
  };
  return pm__store_open(&sc, &peer->store);
}

static int open_origins(pm_peer *peer) {
  pm_ufs_config uc = {
      .size = sizeof uc,
      .timeout_ms = peer->opts.origin_timeout_ms,
      .retries = peer->opts.origin_retries,
      .retry_base_ms = 50,
      .count = count_origin,
      .count_arg = peer,
      .scratch_dir = peer->cache_dir,
  };
  return pm__ufs_set_open(&uc, &peer->ufs);
}

static int engine_open(pm_peer *peer, bool passthrough) {
  pm__meta_close(peer->meta); /* an attached process's memory-only one */
  peer->meta = NULL;
  int err = passthrough ? 0 : open_store(peer);
  if (!err)
    err = pm__meta_open(passthrough ? NULL : peer->cache_dir,
                        peer->opts.meta_ttl_ms, &peer->meta);
  if (!err)
    err = open_origins(peer);
  return err;
}

int pm__engine_open(pm_peer *peer) {
  return engine_open(peer, (peer->opts.flags & PM_OPEN_PASSTHROUGH) != 0);
}

int pm__engine_open_direct(pm_peer *peer) {
  return engine_open(peer, true);
}

void pm__engine_close(pm_peer *peer) {
  if (peer->store && peer->meta) {
    pm_stats final = {.size = sizeof final};
    pm__peer_stats(peer, &final);
    pm__stats_file_add(peer->cache_dir, &final);
  }
  pm__ufs_set_close(peer->ufs);
  pm__store_close(peer->store);
  peer->ufs = NULL;
  peer->store = NULL;
}

/* A cache directory this process cannot write: it can only attach to a
 * node peer that lets it (pm_options.node_group), never become one. */
static int read_only_dir(pm_peer *peer) {
  uint32_t own_store = PM_OPEN_STANDALONE | PM_OPEN_PASSTHROUGH |
                       PM_OPEN_NODE_ONLY;
  if ((peer->opts.flags & own_store) || access(peer->cache_dir, X_OK) != 0)
    return pm__errf(PM_EACCES, "cache directory %s is not writable by uid "
                    "%u", peer->cache_dir, (unsigned)getuid());
  peer->opts.flags |= PM_OPEN_ATTACH_ONLY;
  peer->read_only_dir = true;
  return 0;
}

static int open_common(pm_peer *peer) {
  int err = pm__mkdirs(peer->cache_dir, 0755);
  if (!err && access(peer->cache_dir, W_OK | X_OK) != 0)
    err = read_only_dir(peer);
  if (!err)
    err = pm__flights_open(&peer->flights);
  if (!err)
    err = pm__pool_open(peer->opts.io_threads, &peer->pool);
  return err;
}

static int open_role(pm_peer *peer) {
  if (peer->opts.flags & (PM_OPEN_STANDALONE | PM_OPEN_PASSTHROUGH)) {
    peer->role = PM_ROLE_STANDALONE;
    return pm__engine_open(peer);
  }
  return pm__role_establish(peer);
}

int pm_peer_open(const pm_options *opts, pm_peer **out) {
  pm__errmsg_clear();
  if (!opts || !out)
    return pm__errf(PM_EINVAL, "pm_peer_open: NULL argument");
  int err = pm__options_check(opts);
  if (err)
    return err;
  pm_peer *peer = calloc(1, sizeof *peer);
  if (!peer)
    return pm__errf(PM_ENOMEM, "cannot allocate a peer");
  peer->opts = *opts;
  peer->lock_fd = -1;
  pthread_mutex_init(&peer->streams_mutex, NULL);
  pthread_rwlock_init(&peer->role_lock, NULL);
  peer->cache_dir = pm__cache_dir_resolve(opts->cache_dir);
  peer->opts.cache_dir = peer->cache_dir;
  err = peer->cache_dir ? open_common(peer)
                        : pm__errf(PM_ENOMEM, "cannot allocate a peer");
  if (!err)
    err = open_role(peer);
  if (err) {
    char detail[PM_ERRMSG_MAX];
    snprintf(detail, sizeof detail, "%s", pm__errmsg());
    pm_peer_close(peer);
    pm__errmsg_set(detail);
    return err;
  }
  PM_LOG(PM_LOG_INFO, "peer", "opened on %s as %s (page %u bytes)",
         peer->cache_dir,
         peer->role == PM_ROLE_NODE       ? "node peer"
         : peer->role == PM_ROLE_ATTACHED ? "attached process"
                                          : "standalone peer",
         peer->opts.page_size);
  *out = peer;
  return 0;
}

void pm_peer_close(pm_peer *peer) {
  if (!peer)
    return;
  atomic_store(&peer->closing, true);
  pm__mesh_leave(peer->mesh); /* others stop asking this peer */
  /* No attached requests from here on: before the pool closes, since a
   * request being answered queues read-ahead and keeps on the pool. */
  pm__node_server_stop(peer->server);
  peer->server = NULL;
  /* No work in flight from here on; the transports still serve until the
   * mesh stops, and what they submit meanwhile is refused, not lost in
   * freed memory: the pool is freed last. */
  pm__pool_stop(peer->pool);
  pm__mesh_stop(peer->mesh);
  peer->mesh = NULL;
  pm__engine_close(peer);
  pm__role_release(peer); /* last: a successor may take the lock now */
  pm__meta_close(peer->meta);
  pm__mapcache_close(peer->maps);
  pm__landing_close(peer->landing); /* after the entries that use it */
  pm__flights_close(peer->flights);
  pm__pool_free(peer->pool);
  pthread_rwlock_destroy(&peer->role_lock);
  pthread_mutex_destroy(&peer->streams_mutex);
  free(peer->cache_dir);
  free(peer);
}

int pm_peer_stats(pm_peer *peer, pm_stats *out) {
  if (!peer || !out || out->size < sizeof(pm_stats))
    return pm__errf(PM_EINVAL, "pm_peer_stats: bad arguments");
  /* The store comes and goes with the role (a takeover opens one, direct
   * reads close it): read it under the role lock. */
  int rc = pthread_rwlock_rdlock(&peer->role_lock);
  if (rc) /* EDEADLK: called from a log callback during a takeover */
    return pm__errf(PM_EBUSY, "pm_peer_stats: the peer is changing its "
                    "role on this thread (a log callback?)");
  pm__peer_stats(peer, out);
  pthread_rwlock_unlock(&peer->role_lock);
  return 0;
}

void pm__peer_stats(pm_peer *peer, pm_stats *out) {
  pm_store_stats ss = {0};
  if (peer->store)
    pm__store_stats(peer->store, &ss);
  pm_counters *c = &peer->counters;
  *out = (pm_stats){
      .size = sizeof *out,
      .reads = atomic_load(&c->reads),
      .bytes_served = atomic_load(&c->bytes_served),
      .hits_ram = ss.hits_ram,
      .hits_disk = ss.hits_disk + atomic_load(&c->attached_hits),
      .misses = atomic_load(&c->misses),
      .origin_requests = atomic_load(&c->origin_requests),
      .origin_bytes = atomic_load(&c->origin_bytes),
      .evictions = ss.evictions,
      .corrupt_pages = ss.corrupt_pages,
      .declined = ss.declined,
      .store_errors = ss.store_errors + atomic_load(&c->store_errors),
      .disk_used = ss.disk_used,
      .disk_capacity = ss.disk_capacity,
      .ram_used = ss.ram_used,
      .ram_capacity = ss.ram_capacity,
      .pages_disk = ss.pages_disk,
      .pages_ram = ss.pages_ram,
  };
}

void pm_free(void *ptr) {
  free(ptr);
}
