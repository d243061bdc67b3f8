/*
 * core/attached.c - the read path of an attached process: a cached page
 * is read through a mapping of its page file (opened straight from the
 * cache directory, no round trip to the node peer); a missing page is
 * fetched by the node peer, which writes it into a free slot of this
 * process's landing area (core/landing.c) or, when none is free or the
 * page is a file on disk, hands back a descriptor of it; concurrent misses
 * of one page in this process share one such request.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node_int.h"

static pm_map_entry *lookup(pm_peer *peer, const pm_page_id *id) {
  pm__mapcache_sweep(peer->maps, peer->cache_dir, false);
  pm_map_entry *e = pm__mapcache_get(peer->maps, id);
  if (!e)
    e = pm__mapcache_open_file(peer->maps, peer->cache_dir, id);
  return e;
}

static ssize_t copy_entry(pm_map_entry *e, uint32_t offset, void *dst,
                          size_t length) {
  size_t page_len;
  const char *data = pm__map_entry_data(e, &page_len);
  if (offset >= page_len)
    return 0;
  size_t n = PM_MIN(length, page_len - offset);
  if (dst)
    pm__copy(dst, data + offset, n);
  return (ssize_t)n;
}

ssize_t pm__attached_read_cached(pm_peer *peer, const pm_page_id *id,
                                 uint32_t offset, void *dst, size_t length) {
  pm_map_entry *e = lookup(peer, id);
  if (!e)
    return PM_ENOENT;
  ssize_t n = copy_entry(e, offset, dst, length);
  pm__mapcache_put(peer->maps, e);
  atomic_fetch_add(&peer->counters.attached_hits, 1);
  pm__link_touch(peer->link, id);
  return n;
}

/* Ask the node for the page, offering a landing slot, and cache what
 * comes back. */
static int fetch_from_node(pm_peer *peer, const char *uri,
                           const pm_object_stat *st, uint64_t page_index,
                           const pm_page_id *id) {
  pm_landing *landing = peer->landing;
  pm_link_fetch_io io = {.landing_fd = -1, .slot = -1, .fd = -1};
  if (landing) {
    /* The landing area holds the most recently used pages that came
     * through it: make room by dropping the least recently used one. */
    while ((io.slot = pm__landing_take(landing)) < 0 &&
           pm__mapcache_drop_landed(peer->maps))
      ;
  }
  if (io.slot >= 0) {
    io.landing_fd = pm__landing_fd(landing);
    io.slot_size = pm__landing_slot_size(landing);
  }
  int err = pm__link_fetch(peer->link, uri, st, page_index, &io);
  if (io.slot >= 0 && (err || !io.landed)) {
    if (io.answered)
      pm__landing_give(landing, io.slot);
    else
      pm__landing_spoil(landing, io.slot); /* the node may still write */
  }
  if (err) {
    if (io.fd >= 0)
      close(io.fd);
    return err;
  }
  pm_map_entry *e;
  if (io.landed) {
    atomic_fetch_add(&peer->counters.landed, 1);
    e = pm__mapcache_add_landing(peer->maps, id, landing, io.slot, io.length);
  } else {
    e = pm__mapcache_add_fd(peer->maps, id, io.fd, io.data_offset, io.length);
    close(io.fd);
  }
  if (!e)
    return PM_EIO;
  pm__mapcache_put(peer->maps, e);
  return 0;
}

ssize_t pm__attached_fetch(pm_peer *peer, const char *uri,
                           const pm_object_stat *st, uint64_t page_index,
                           const pm_page_id *id, uint32_t offset, void *dst,
                           size_t length) {
  for (int attempt = 0; attempt < 3; attempt++) {
    bool leader;
    pm_flight *flight = pm__flight_begin(peer->flights, id, &leader);
    if (!flight)
      return pm__errf(PM_ENOMEM, "%s: out of memory", uri);
    if (leader)
      pm__flight_finish(peer->flights, flight,
                        fetch_from_node(peer, uri, st, page_index, id), NULL,
                        0);
    const void *unused;
    size_t unused_len;
    int err = pm__flight_wait(flight, &unused, &unused_len);
    pm__flight_release(peer->flights, flight);
    if (err)
      return err;
    pm_map_entry *e = pm__mapcache_get(peer->maps, id);
    if (e) {
      ssize_t n = copy_entry(e, offset, dst, length);
      pm__mapcache_put(peer->maps, e);
      return n;
    }
    /* Evicted from the map cache between fetch and copy: fetch again. */
  }
  return pm__errf(PM_EIO, "%s: page %llu kept slipping out of the map cache",
                  uri, (unsigned long long)page_index);
}

int pm__attached_map(pm_peer *peer, const pm_page_id *id, uint32_t offset,
                     size_t length, pm_mapping *out) {
  pm_map_entry *e = lookup(peer, id);
  if (!e)
    return PM_ENOENT;
  size_t page_len;
  const char *data = pm__map_entry_data(e, &page_len);
  if (offset > page_len) {
    pm__mapcache_put(peer->maps, e);
    return PM_ENOENT;
  }
  out->data = data + offset;
  out->length = PM_MIN(length, page_len - offset);
  out->priv_ = e;
  return 0;
}
