/*
 * core/mesh.h - the node peer as a member of the mesh: membership (SWIM,
 * membership/), the page transports (transport/), and the view of the
 * members that page placement works on. A page is read from its owners
 * before the origin; an owner that misses asks the other replicas for a
 * cached copy, then fetches the origin once and copies the page to the
 * other replicas in the background. Metadata is placed the same way.
 */
#ifndef PM_CORE_MESH_H
#define PM_CORE_MESH_H

#include "peer_int.h"

typedef struct pm_mesh pm_mesh;

/* How a leader of a page fetch uses the mesh. */
typedef enum pm_mesh_mode {
  /* A local reader: ask the page's owners (this peer may be one). */
  PM_MESH_ROUTE = 0,
  /* Serving another peer as an owner: ask replicas for a cached copy only,
   * never forward (no request can loop between peers). */
  PM_MESH_OWNER = 1,
} pm_mesh_mode;

/* Join the mesh if peer->opts.listen is set (else *out = NULL, 0).
 * Errors: PM_ECONFIG (no or bad cluster key), PM_EIO (cannot bind),
 * PM_ENOTSUP (no such transport or provider), PM_ENOMEM. */
int pm__mesh_start(pm_peer *peer, pm_mesh **out);
/* Leave gracefully (announce Left): no more membership events; pages are
 * still served until pm__mesh_stop. Accepts NULL. */
void pm__mesh_leave(pm_mesh *mesh);
/* Leave if not done yet, stop the transports and free. Accepts NULL. */
void pm__mesh_stop(pm_mesh *mesh);

/* Get the page from the mesh into buf (page_len bytes), as leader of its
 * flight. Returns 0 with *owned telling whether this peer is one of the
 * page's owners (then it keeps the page on disk; otherwise in RAM only),
 * or PM_ENOENT: fetch it from the origin (*owned says how to keep it). */
int pm__mesh_fetch(pm_mesh *mesh, pm_mesh_mode mode, const char *uri,
                   const pm_object_stat *st, uint64_t page_index,
                   const pm_page_id *id, void *buf, size_t page_len,
                   bool *owned);
/* After an owner fetched a page from the origin: copy it to the other
 * replicas in the background. */
void pm__mesh_replicate(pm_mesh *mesh, const char *uri,
                        const pm_object_stat *st, uint64_t page_index,
                        const pm_page_id *id, const void *data,
                        size_t length);

/* Metadata from the owner of uri's metadata (with fresh: read from the
 * origin now, not from the owner's cache). Returns 0, PM_ENOENT (ask the
 * origin yourself: this peer owns it, or no owner answered), or the
 * owner's error (PM_ENOENT of the object is reported as PM_ENOENT with
 * *definitive set). */
int pm__mesh_stat(pm_mesh *mesh, const char *uri, bool fresh,
                  pm_object_stat *out, bool *definitive);

/* A new placement weight for this member, gossiped. */
int pm__mesh_set_weight(pm_mesh *mesh, uint64_t capacity);
/* Hand every page on disk to its owners without this member, then leave.
 * Returns the pages handed over. */
ssize_t pm__mesh_drain(pm_mesh *mesh);

/* The members as a JSON array (for status); NULL if no mesh. */
struct json_t;
struct json_t *pm__mesh_members_json(pm_mesh *mesh);
/* Counters of the mesh, added to the peer's status. */
typedef struct pm_mesh_stats {
  uint64_t pages_from_peers, bytes_from_peers;
  uint64_t pages_to_peers, bytes_to_peers;
  uint64_t peer_failures, replicas_pushed;
  uint32_t alive, suspect, dead, left;
} pm_mesh_stats;
void pm__mesh_stats(pm_mesh *mesh, pm_mesh_stats *out);

/* mesh_serve.c: the transports' pm_page_server callbacks. */
ssize_t pm__mesh_serve_get(void *arg, const pm_page_request *req, void *dst,
                           size_t dst_len);
int pm__mesh_serve_put(void *arg, const pm_page_request *req,
                       const void *data, size_t length);
int pm__mesh_serve_file(void *arg, const pm_page_request *req,
                        pm_page_file *out);
/* Encode/decode metadata in a META answer. */
ssize_t pm__meta_encode(const pm_object_stat *st, char *out, size_t size);
int pm__meta_decode(const char *text, size_t length, pm_object_stat *out);

#endif /* PM_CORE_MESH_H */
