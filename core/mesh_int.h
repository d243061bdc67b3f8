/*
 * core/mesh_int.h - the mesh's state, shared by mesh.c (joining, the view),
 * mesh_fetch.c (reading from owners, replicating) and mesh_serve.c
 * (answering other peers).
 */
#ifndef PM_CORE_MESH_INT_H
#define PM_CORE_MESH_INT_H

#include "membership/swim_int.h"
#include "mesh.h"
#include "placement.h"
#include "transport/transport_int.h"

/* How to reach one member. */
typedef struct pm_view_peer {
  char tcp[PM_SWIM_ADDR_MAX];
  char fabric[PM_SWIM_FABRIC_MAX + 1]; /* printable; "" if none */
} pm_view_peer;

/* An immutable snapshot of the members, reference counted. */
typedef struct pm_view {
  atomic_uint refs;
  size_t count;
  pm_placement_member *members;
  pm_view_peer *peers;
  size_t self; /* index of this member, SIZE_MAX if not listed */
} pm_view;

struct pm_mesh {
  pm_peer *peer;
  pm__swim_driver *driver;
  pm_transport *tcp;
  pm_transport *fabric; /* with transport "fabric" */
  uint8_t *key;         /* sodium memory */
  pm__member_id self_id;
  pm__member_meta meta; /* what this member advertises */
  pthread_mutex_t view_mutex;
  pm_view *view;
  atomic_bool view_dirty;
  _Atomic uint64_t pages_from_peers, bytes_from_peers;
  _Atomic uint64_t peer_failures, replicas_pushed;
  /* Rebalancing (mesh_rebalance.c): the view it last worked from, used
   * and replaced by one task at a time (rebalance_lock: a change during a
   * walk queues the next task, which waits for the walk to end). */
  pthread_mutex_t rebalance_lock;
  atomic_bool rebalance_pending;
  uint64_t started_ns;
  pm_view *rebalance_view;
  /* Background tasks of the mesh queued or running on the peer's pool
   * (rebalance, replica pushes): pm__mesh_stop waits for them, since a
   * node that fails to start frees its mesh while the pool lives on.
   * Once `stopping` is set no task is queued: a transport's server thread
   * that fetched a page for a peer would otherwise queue its replica push
   * after the wait, on a mesh about to be freed. */
  atomic_uint tasks;
  atomic_bool stopping;
};

/* Queue a background task of the mesh on the peer's pool (counted in
 * mesh->tasks); the task calls pm__mesh_task_done last. Errors: those of
 * pm__pool_submit_background (then nothing is counted); PM_ESHUTDOWN once
 * the mesh stops. */
int pm__mesh_task_submit(pm_mesh *mesh, void (*fn)(void *), void *arg,
                         size_t max_queued);
void pm__mesh_task_done(pm_mesh *mesh);

/* Members changed: re-create replicas in the background. */
void pm__mesh_members_changed(pm_mesh *mesh);

/* The current view (rebuilt if stale); release it when done. */
pm_view *pm__mesh_view(pm_mesh *mesh);
void pm__mesh_view_release(pm_view *view);

/* The transport and address to reach member i of the view: fabric when
 * both ends speak the same version of it (the scheme of the address),
 * tcp otherwise; NULL if it advertises neither. */
pm_transport *pm__mesh_route(pm_mesh *mesh, const pm_view *v, size_t i,
                             const char **addr);

#endif /* PM_CORE_MESH_INT_H */
