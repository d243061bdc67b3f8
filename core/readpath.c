/*
 * core/readpath.c - the read path of one peer (DESIGN.md, "The read
 * path"): a range is split into pages; each page comes from the RAM tier,
 * the disk tier, or the origin through one shared fetch (single flight),
 * is stored, and is copied into the caller's buffer. Ranges of a batch and
 * the missing pages of a range are fetched in parallel on the worker pool.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mesh.h"
#include "peer_int.h"

#define CHANGED_RETRIES 3

/* ---- one page ------------------------------------------------------------ */

static ssize_t copy_out(const void *page, size_t page_len, uint32_t offset,
                        void *dst, size_t length) {
  if (offset >= page_len)
    return 0;
  size_t n = PM_MIN(length, page_len - offset);
  if (dst)
    pm__copy(dst, (const char *)page + offset, n);
  return (ssize_t)n;
}

/* Keep a page: on disk and in RAM if this peer owns it, in RAM only if
 * it is a hot page owned by others. */
static void keep_page(pm_peer *peer, bool owned, const pm_page_id *id,
                      const char *uri, const void *data, size_t length) {
  if (!peer->store)
    return;
  int err = owned ? pm__store_put(peer->store, id, uri, data, length)
                  : pm__store_put_ram(peer->store, id, uri, data, length);
  if (err < 0)
    PM_LOG_RATELIMITED(PM_LOG_WARN, "store", 10000,
                       "%s: page not cached (%s): %s; serving without it",
                       uri, pm_err_name(err), pm__errmsg());
}

static int read_origin(pm_peer *peer, const char *uri,
                       const pm_object_stat *st, uint64_t page_index,
                       char *buf, size_t page_len) {
  ssize_t n = pm__ufs_read(peer->ufs, uri, st,
                           page_index * peer->opts.page_size, buf, page_len);
  if (n >= 0 && (size_t)n != page_len)
    n = pm__errf(PM_EIO, "%s: short read from origin (%zd of %zu bytes)",
                 uri, n, page_len);
  return n < 0 ? (int)n : 0;
}

/* The leader of a flight: the mesh (if any), else the origin; keep what
 * came and, as an owner that went to the origin, copy it to the other
 * replicas. A page owned by others is kept in RAM after the flight is
 * over (*keep_later): its readers need not wait for that copy. */
static int fetch_page(pm_peer *peer, pm_mesh_mode mode, const char *uri,
                      const pm_object_stat *st, uint64_t page_index,
                      const pm_page_id *id, void **data, size_t *length,
                      bool *keep_later) {
  size_t page_len = pm__page_length(peer, st->size, page_index);
  char *buf = malloc(page_len ? page_len : 1);
  if (!buf)
    return pm__errf(PM_ENOMEM, "%s: out of memory for a page", uri);
  bool owned = true;
  int err = peer->mesh ? pm__mesh_fetch(peer->mesh, mode, uri, st, page_index,
                                        id, buf, page_len, &owned)
                       : PM_ENOENT;
  bool from_origin = err != 0;
  if (from_origin)
    err = read_origin(peer, uri, st, page_index, buf, page_len);
  if (err == PM_ENOENT) /* gone since its stat: a stat asks again */
    pm__meta_retract(peer->meta, uri);
  if (err) {
    free(buf);
    return err;
  }
  *keep_later = !owned;
  if (owned)
    keep_page(peer, owned, id, uri, buf, page_len);
  if (from_origin && owned && peer->mesh)
    pm__mesh_replicate(peer->mesh, uri, st, page_index, id, buf, page_len);
  *data = buf;
  *length = page_len;
  return 0;
}

/* A leader first looks again: the page may have landed since its miss. */
static bool lead_from_store(pm_peer *peer, const pm_page_id *id,
                            size_t page_len, void **data) {
  if (!peer->store || !pm__store_contains(peer->store, id))
    return false;
  char *buf = malloc(page_len ? page_len : 1);
  if (buf && pm__store_read(peer->store, id, 0, buf, page_len, NULL) ==
                 (ssize_t)page_len) {
    *data = buf;
    return true;
  }
  free(buf);
  return false;
}

/* Keeping a page owned by others in RAM, off the readers' path. */
typedef struct keep_task {
  pm_peer *peer;
  pm_flight *flight; /* held: its data stays valid */
  pm_page_id id;
  uint64_t evict_generation; /* when the page was read */
  char uri[];
} keep_task;

static void keep_run(void *arg) {
  keep_task *t = arg;
  const void *data;
  size_t length;
  if (pm__flight_wait(t->flight, &data, &length) == 0 &&
      atomic_load(&t->peer->evict_generation) == t->evict_generation)
    keep_page(t->peer, false, &t->id, t->uri, data, length);
  pm__flight_retire(t->peer->flights, t->flight);
  pm__flight_release(t->peer->flights, t->flight);
  free(t);
}

/* Queue keep_run; keep the page now if this is a worker already (read-
 * ahead and prefetch: nobody waits for them, and `pagemesh load` expects
 * its pages kept when it returns) or if it cannot be queued. The flight
 * stays joinable until the page is kept: a read of the page meanwhile
 * (the next small read of the same page, typically) takes the flight's
 * bytes instead of fetching the page again. */
static void keep_in_background(pm_peer *peer, pm_flight *flight,
                               const pm_page_id *id, const char *uri) {
  size_t uri_len = strlen(uri) + 1;
  keep_task *t = pm__pool_on_worker() ? NULL : malloc(sizeof *t + uri_len);
  if (t) {
    *t = (keep_task){.peer = peer, .flight = flight, .id = *id,
                     .evict_generation =
                         atomic_load(&peer->evict_generation)};
    memcpy(t->uri, uri, uri_len);
    pm__flight_hold(peer->flights, flight);
    if (pm__pool_submit_background(peer->pool, keep_run, t, 256) == 0)
      return;
    pm__flight_release(peer->flights, flight);
    free(t);
  }
  const void *data;
  size_t length;
  if (pm__flight_wait(flight, &data, &length) == 0)
    keep_page(peer, false, id, uri, data, length);
  pm__flight_retire(peer->flights, flight);
}

/* What a fetch does with the page: copy a range of it into dst, or hand
 * the whole page to visit while it is valid. */
typedef struct page_sink {
  uint32_t offset;
  void *dst;
  size_t length;
  pm_page_visit visit;
  void *arg;
} page_sink;

static ssize_t sink_page(const page_sink *sink, const void *data,
                         size_t page_len) {
  return sink->visit ? sink->visit(data, page_len, sink->arg)
                     : copy_out(data, page_len, sink->offset, sink->dst,
                                sink->length);
}

static ssize_t fetch_shared(pm_peer *peer, pm_mesh_mode mode,
                            const char *uri, const pm_object_stat *st,
                            uint64_t page_index, const pm_page_id *id,
                            const page_sink *sink) {
  bool leader;
  pm_flight *flight = pm__flight_begin(peer->flights, id, &leader);
  if (!flight)
    return pm__errf(PM_ENOMEM, "%s: out of memory", uri);
  if (leader) {
    void *data = NULL;
    size_t page_len = pm__page_length(peer, st->size, page_index);
    int err = 0;
    bool keep_later = false;
    if (!lead_from_store(peer, id, page_len, &data))
      err = fetch_page(peer, mode, uri, st, page_index, id, &data, &page_len,
                       &keep_later);
    if (!err && keep_later) {
      pm__flight_finish_joinable(peer->flights, flight, data, page_len);
      keep_in_background(peer, flight, id, uri);
    } else {
      pm__flight_finish(peer->flights, flight, err, data, page_len);
    }
  }
  const void *data;
  size_t page_len;
  ssize_t n = pm__flight_wait(flight, &data, &page_len);
  if (n == 0)
    n = sink_page(sink, data, page_len);
  pm__flight_release(peer->flights, flight);
  return n;
}

ssize_t pm__page_fetch_shared(pm_peer *peer, const char *uri,
                              const pm_object_stat *st, uint64_t page_index,
                              const pm_page_id *id, uint32_t offset,
                              void *dst, size_t length) {
  if (peer->role == PM_ROLE_ATTACHED)
    return pm__attached_fetch(peer, uri, st, page_index, id, offset, dst,
                              length);
  page_sink sink = {.offset = offset, .dst = dst, .length = length};
  return fetch_shared(peer, PM_MESH_ROUTE, uri, st, page_index, id, &sink);
}

ssize_t pm__page_fetch_owner(pm_peer *peer, const char *uri,
                             const pm_object_stat *st, uint64_t page_index,
                             const pm_page_id *id, void *dst, size_t length) {
  ssize_t n = pm__page_read_cached(peer, id, uri, 0, dst, length);
  if (n != PM_ENOENT)
    return n;
  atomic_fetch_add(&peer->counters.misses, 1);
  page_sink sink = {.dst = dst, .length = length};
  return fetch_shared(peer, PM_MESH_OWNER, uri, st, page_index, id, &sink);
}

/* Look in the store only: bytes copied, or PM_ENOENT for a miss. */
ssize_t pm__page_read_cached(pm_peer *peer, const pm_page_id *id,
                           const char *uri, uint32_t offset, void *dst,
                           size_t length) {
  if (peer->role == PM_ROLE_ATTACHED)
    return pm__attached_read_cached(peer, id, offset, dst, length);
  if (!peer->store || !dst)
    return peer->store && pm__store_contains(peer->store, id) ? 0 : PM_ENOENT;
  ssize_t n = pm__store_read(peer->store, id, offset, dst, length, NULL);
  if (n == PM_ECORRUPT)
    PM_LOG(PM_LOG_WARN, "store", "%s: cached page was corrupt; refetching",
           uri);
  else if (n < 0 && n != PM_ENOENT)
    PM_LOG_RATELIMITED(PM_LOG_WARN, "store", 10000,
                       "%s: cache read failed (%s); refetching", uri,
                       pm__errmsg());
  return n < 0 ? PM_ENOENT : n;
}

ssize_t pm__page_fetch(pm_peer *peer, const char *uri,
                       const pm_object_stat *st, uint64_t page_index,
                       uint32_t offset, void *dst, size_t length) {
  pm_page_id id =
      pm__page_id(uri, st->version, page_index, peer->opts.page_size);
  ssize_t n = pm__page_read_cached(peer, &id, uri, offset, dst, length);
  if (n != PM_ENOENT)
    return n;
  atomic_fetch_add(&peer->counters.misses, 1);
  return pm__page_fetch_shared(peer, uri, st, page_index, &id, offset, dst,
                               length);
}

ssize_t pm__page_fetch_visit(pm_peer *peer, const char *uri,
                             const pm_object_stat *st, uint64_t page_index,
                             pm_page_visit visit, void *arg) {
  if (peer->role == PM_ROLE_ATTACHED)
    return pm__errf(PM_ENOTSUP, "an attached process fetches through its "
                    "node peer");
  pm_page_id id =
      pm__page_id(uri, st->version, page_index, peer->opts.page_size);
  size_t page_len = pm__page_length(peer, st->size, page_index);
  ssize_t held = peer->store ? pm__store_visit_ram(peer->store, &id, visit,
                                                   arg)
                             : PM_ENOENT;
  if (held != PM_ENOENT)
    return held; /* in RAM: visited in place */
  if (peer->store && pm__store_contains(peer->store, &id)) {
    char *buf = malloc(page_len ? page_len : 1);
    ssize_t n = buf ? pm__page_read_cached(peer, &id, uri, 0, buf, page_len)
                    : pm__errf(PM_ENOMEM, "%s: out of memory for a page",
                               uri);
    if (n >= 0)
      n = visit(buf, (size_t)n, arg);
    free(buf);
    if (n != PM_ENOENT) /* else: gone since; fetch it */
      return n;
  }
  atomic_fetch_add(&peer->counters.misses, 1);
  page_sink sink = {.visit = visit, .arg = arg};
  return fetch_shared(peer, PM_MESH_ROUTE, uri, st, page_index, &id, &sink);
}
