/*
 * core/api.c - the public entry points that depend on the peer's role.
 * Each holds the role lock for reading while it runs; if it ran on a link
 * to a node peer that went away, it takes over (role.c) and runs again, so
 * the caller never sees the node peer's exit. A process that may not take
 * over reads the origins directly meanwhile; each call first attaches
 * again if it is time to try (role.c).
 */
#include <stdlib.h>

#include "node_int.h"

#define TAKEOVER_RETRIES 3

/* Take the role lock; false (lock released) if this process has no role
 * at the moment (a takeover failed), after trying to establish one. */
static bool enter(pm_peer *peer, pm_link **link) {
  if (atomic_load(&peer->direct) &&
      pm__now_ns() >= atomic_load(&peer->next_attach_ns))
    pm__role_reattach(peer);
  pthread_rwlock_rdlock(&peer->role_lock);
  if (peer->role != 0) {
    *link = peer->link;
    return true;
  }
  pthread_rwlock_unlock(&peer->role_lock);
  pm__role_takeover(peer, NULL);
  *link = NULL;
  return false;
}

/* Release the role lock; true if the call must run again after a
 * takeover. */
static bool leave(pm_peer *peer, pm_link *link, int attempt) {
  bool broken = link && pm__link_broken(link);
  pthread_rwlock_unlock(&peer->role_lock);
  if (!broken || attempt >= TAKEOVER_RETRIES)
    return false;
  pm__role_takeover(peer, link);
  return true;
}

/* Count the duration of one read call: a node (or standalone) peer keeps
 * it, an attached process reports it to its node peer with its other
 * counters, so the node's status shows the reads of the whole node. */
static void note_read_latency(pm_peer *peer, pm_link *link,
                              uint64_t start_ns) {
  uint64_t ns = pm__now_ns() - start_ns;
  if (link && peer->role == PM_ROLE_ATTACHED)
    pm__link_note_latency(link, ns);
  else
    pm__histogram_record(&peer->counters.read_latency, ns);
}

/* Run `call` under the role lock, again after a takeover; `done` runs
 * after the call while the lock is still held (link_ is valid). */
#define RUN_THEN(peer, result, call, done)                                    \
  do {                                                                        \
    for (int attempt_ = 0;; attempt_++) {                                     \
      pm_link *link_;                                                         \
      if (!enter(peer, &link_)) {                                             \
        result = pm__errf(PM_EUNREACHABLE, "no node peer for %s",            \
                          peer->cache_dir);                                   \
        if (attempt_ < TAKEOVER_RETRIES)                                      \
          continue;                                                           \
        break;                                                                \
      }                                                                       \
      uint64_t start_ns_ = pm__now_ns();                                      \
      result = (call);                                                        \
      done;                                                                   \
      (void)start_ns_;                                                        \
      if (!leave(peer, link_, attempt_))                                      \
        break;                                                                \
    }                                                                         \
  } while (0)

#define RUN(peer, result, call) RUN_THEN(peer, result, call, (void)0)
#define RUN_TIMED(peer, result, call)                                         \
  RUN_THEN(peer, result, call, note_read_latency(peer, link_, start_ns_))

#define CHECK_PEER(peer, name)                                                \
  do {                                                                        \
    pm__errmsg_clear();                                                       \
    if (!(peer))                                                              \
      return pm__errf(PM_EINVAL, name ": NULL peer");                         \
  } while (0)

ssize_t pm_read(pm_peer *peer, const char *uri, uint64_t offset, void *buf,
                size_t length) {
  CHECK_PEER(peer, "pm_read");
  ssize_t r;
  RUN_TIMED(peer, r, pm__read(peer, uri, offset, buf, length));
  return r;
}

ssize_t pm_read_version(pm_peer *peer, const char *uri, const char *version,
                        uint64_t offset, void *buf, size_t length) {
  CHECK_PEER(peer, "pm_read_version");
  if (!version)
    return pm__errf(PM_EINVAL, "pm_read_version: NULL version");
  ssize_t r;
  RUN_TIMED(peer, r,
            pm__read_version(peer, uri, version, offset, buf, length));
  return r;
}

int pm_read_batch(pm_peer *peer, pm_range *ranges, size_t count) {
  CHECK_PEER(peer, "pm_read_batch");
  int r;
  RUN_TIMED(peer, r, pm__read_batch(peer, ranges, count));
  return r;
}

int pm_prefetch(pm_peer *peer, const char *uri, uint64_t offset,
                uint64_t length) {
  CHECK_PEER(peer, "pm_prefetch");
  int r;
  RUN(peer, r, pm__prefetch(peer, uri, offset, length));
  return r;
}

int pm_map(pm_peer *peer, const char *uri, uint64_t offset, size_t length,
           pm_mapping *out) {
  CHECK_PEER(peer, "pm_map");
  int r;
  RUN(peer, r, pm__map(peer, uri, offset, length, out));
  return r;
}

int pm_stat(pm_peer *peer, const char *uri, pm_object_stat *out) {
  CHECK_PEER(peer, "pm_stat");
  int r;
  RUN(peer, r, pm__stat(peer, uri, out));
  return r;
}

int pm_list(pm_peer *peer, const char *uri, unsigned flags,
            pm_list_entry **entries, size_t *count) {
  CHECK_PEER(peer, "pm_list");
  int r;
  RUN(peer, r, pm__list(peer, uri, flags, entries, count));
  return r;
}

int pm_invalidate(pm_peer *peer, const char *uri_prefix) {
  CHECK_PEER(peer, "pm_invalidate");
  int r;
  RUN(peer, r, pm__invalidate(peer, uri_prefix));
  return r;
}

int pm_peer_status(pm_peer *peer, char **json_out) {
  CHECK_PEER(peer, "pm_peer_status");
  if (!json_out)
    return pm__errf(PM_EINVAL, "pm_peer_status: NULL argument");
  int r;
  RUN(peer, r, pm__status_json(peer, json_out));
  return r;
}

ssize_t pm_evict(pm_peer *peer, const char *uri_prefix) {
  CHECK_PEER(peer, "pm_evict");
  ssize_t r;
  RUN(peer, r, pm__evict(peer, uri_prefix));
  return r;
}

int pm_set_capacity(pm_peer *peer, uint64_t disk_capacity,
                    uint64_t ram_capacity) {
  CHECK_PEER(peer, "pm_set_capacity");
  int r;
  RUN(peer, r, pm__set_capacity(peer, disk_capacity, ram_capacity));
  return r;
}

ssize_t pm_drain(pm_peer *peer) {
  CHECK_PEER(peer, "pm_drain");
  ssize_t r;
  RUN(peer, r, pm__drain(peer));
  return r;
}

int pm_peer_drained(pm_peer *peer) {
  return peer && atomic_load(&peer->drained) ? 1 : 0;
}
