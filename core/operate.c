/*
 * core/operate.c - operating a node peer while it runs: evicting what is
 * cached under a prefix, changing capacities (and with them the node's
 * placement weight), and draining the node out of the mesh. An attached
 * process asks its node peer; the node peer does it.
 */
#include <stdio.h>
#include <string.h>

#include "mesh.h"
#include "node_int.h"

/* A process reading the origins directly (its node peer went away and it
 * may not take over) has no node to operate on: say so rather than
 * report an empty success. */
static int no_node(pm_peer *peer, const char *what) {
  if (!atomic_load(&peer->direct))
    return 0;
  return pm__errf(PM_EUNREACHABLE, "%s: no node peer at the moment (this "
                  "process reads the origins directly until one is back)",
                  what);
}

ssize_t pm__evict(pm_peer *peer, const char *uri_prefix) {
  char norm[PM_URI_MAX];
  if (!uri_prefix)
    return pm__errf(PM_EINVAL, "pm_evict: NULL prefix");
  if (pm__uri_normalize(uri_prefix, norm, sizeof norm) != 0)
    snprintf(norm, sizeof norm, "%s", uri_prefix);
  int err = no_node(peer, "evict");
  if (err)
    return err;
  pm__meta_forget_prefix(peer->meta, norm);
  if (peer->link)
    return pm__link_evict(peer->link, norm);
  atomic_fetch_add(&peer->evict_generation, 1);
  ssize_t n = peer->store ? pm__store_remove_prefix(peer->store, norm) : 0;
  PM_LOG(PM_LOG_INFO, "peer", "evicted %zd pages under %s", n, norm);
  return n;
}

int pm__set_capacity(pm_peer *peer, uint64_t disk, uint64_t ram) {
  int err = no_node(peer, "set capacity");
  if (err)
    return err;
  if (peer->link)
    return pm__link_set_capacity(peer->link, disk, ram);
  if (!peer->store)
    return pm__errf(PM_ENOTSUP, "this peer keeps no pages");
  uint64_t new_disk = disk ? disk : peer->opts.disk_capacity;
  uint64_t new_ram = ram ? ram : peer->opts.ram_capacity;
  err = pm__store_set_capacity(peer->store, new_disk, new_ram);
  if (err) /* refused: the capacities stay what they were (a refused disk
              value was kept, and failed every later change) */
    return err;
  peer->opts.disk_capacity = new_disk;
  peer->opts.ram_capacity = new_ram;
  if (peer->mesh)
    err = pm__mesh_set_weight(peer->mesh, peer->opts.disk_capacity);
  PM_LOG(PM_LOG_INFO, "peer", "capacity now %llu bytes on disk, %llu in RAM",
         (unsigned long long)peer->opts.disk_capacity,
         (unsigned long long)peer->opts.ram_capacity);
  return err;
}

ssize_t pm__drain(pm_peer *peer) {
  int err = no_node(peer, "drain");
  if (err)
    return err;
  if (peer->link)
    return pm__link_drain(peer->link);
  if (!peer->mesh)
    return pm__errf(PM_ENOTSUP, "this node peer is not in a mesh");
  ssize_t n = pm__mesh_drain(peer->mesh);
  if (n >= 0)
    atomic_store(&peer->drained, true);
  return n;
}
