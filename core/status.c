/*
 * core/status.c - the node peer's status as JSON (pm_peer_status, and the
 * reply to an attached process's status request): who is the node peer,
 * who is attached, what the cache holds and did, the latency histograms
 * of reads and origin calls, and the mesh's members.
 */
#include <jansson.h>
#include <stdlib.h>
#include <unistd.h>

#include "mesh.h"
#include "node_int.h"

#define MAX_LISTED_PIDS 1024

static json_t *stats_object(const pm_stats *s) {
  return json_pack(
      "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
      "reads", (json_int_t)s->reads, "bytes_served",
      (json_int_t)s->bytes_served, "hits_ram", (json_int_t)s->hits_ram,
      "hits_disk", (json_int_t)s->hits_disk, "misses", (json_int_t)s->misses,
      "origin_requests", (json_int_t)s->origin_requests, "origin_bytes",
      (json_int_t)s->origin_bytes, "evictions", (json_int_t)s->evictions,
      "corrupt_pages", (json_int_t)s->corrupt_pages, "declined",
      (json_int_t)s->declined, "store_errors", (json_int_t)s->store_errors,
      "disk_used", (json_int_t)s->disk_used, "disk_capacity",
      (json_int_t)s->disk_capacity, "ram_used", (json_int_t)s->ram_used,
      "ram_capacity", (json_int_t)s->ram_capacity, "pages_disk",
      (json_int_t)s->pages_disk, "pages_ram", (json_int_t)s->pages_ram);
}

/* {"bounds_us": [...], "read": {...}, "origin": {...}}: see
 * core/histogram.h for the bounds and what each histogram holds. */
static json_t *latency_object(pm_peer *peer) {
  static pm_histogram no_origin; /* a peer without origins: all zero */
  pm_histogram *origin = peer->ufs ? pm__ufs_set_latency(peer->ufs)
                                   : &no_origin;
  return json_pack("{s:o*,s:o*,s:o*}", "bounds_us",
                   pm__histogram_bounds_json(), "read",
                   pm__histogram_json(&peer->counters.read_latency),
                   "origin", pm__histogram_json(origin));
}

int pm__node_status_json(pm_peer *peer, char **out) {
  pm_stats s = {.size = sizeof s};
  pm__peer_stats(peer, &s); /* under the role lock, or the node server's */
  pid_t *pids = calloc(MAX_LISTED_PIDS, sizeof *pids);
  size_t n = pids ? pm__node_server_clients(peer->server, pids,
                                            MAX_LISTED_PIDS)
                  : 0;
  json_t *attached = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(attached, json_integer(pids[i]));
  free(pids);
  json_t *stats = stats_object(&s);
  pm_mesh_stats ms;
  pm__mesh_stats(peer->mesh, &ms);
  json_object_set_new(stats, "pages_from_peers",
                      json_integer((json_int_t)ms.pages_from_peers));
  json_object_set_new(stats, "bytes_from_peers",
                      json_integer((json_int_t)ms.bytes_from_peers));
  json_object_set_new(stats, "pages_to_peers",
                      json_integer((json_int_t)ms.pages_to_peers));
  json_object_set_new(stats, "bytes_to_peers",
                      json_integer((json_int_t)ms.bytes_to_peers));
  json_object_set_new(stats, "peer_failures",
                      json_integer((json_int_t)ms.peer_failures));
  json_object_set_new(stats, "replicas_pushed",
                      json_integer((json_int_t)ms.replicas_pushed));
  json_object_set_new(
      stats, "origin_errors",
      json_integer(peer->ufs ? (json_int_t)pm__ufs_set_errors(peer->ufs) : 0));
  json_t *root = json_pack(
      "{s:i,s:s,s:s,s:i,s:o,s:o,s:o,s:o*}", "node_pid", (int)getpid(), "role",
      peer->role == PM_ROLE_NODE ? "node" : "standalone", "cache_dir",
      peer->cache_dir, "page_size", (int)peer->opts.page_size, "attached",
      attached, "stats", stats, "members",
      peer->mesh ? pm__mesh_members_json(peer->mesh) : json_array(),
      "latency", latency_object(peer));
  *out = root ? json_dumps(root, JSON_COMPACT) : NULL;
  json_decref(root);
  return *out ? 0 : pm__errf(PM_ENOMEM, "status: out of memory");
}

int pm__status_json(pm_peer *peer, char **out) {
  if (peer->role != PM_ROLE_ATTACHED)
    return pm__node_status_json(peer, out);
  char *node_json;
  int err = pm__link_status(peer->link, &node_json);
  if (err)
    return err;
  json_t *root = json_loads(node_json, 0, NULL);
  free(node_json);
  if (!json_is_object(root)) {
    json_decref(root);
    return pm__errf(PM_EPROTO, "the node peer sent a malformed status");
  }
  json_object_set_new(root, "role", json_string("attached"));
  *out = json_dumps(root, JSON_COMPACT);
  json_decref(root);
  return *out ? 0 : pm__errf(PM_ENOMEM, "status: out of memory");
}
