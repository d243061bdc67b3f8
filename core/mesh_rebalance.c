/*
 * core/mesh_rebalance.c - re-creating replicas when the members change.
 * After a member dies, leaves or joins (or changes its capacity), each
 * peer walks the pages on its disk and compares their owners before and
 * after the change. A member that has just become an owner of a page gets
 * a copy from the first owner that held it before and still does: lost
 * replicas come back from a surviving one, and a member that joins is
 * warmed by the old owners instead of filling from the origin. When no
 * old owner is one any more (one replica, or several members joining in
 * one burst), the first old owner still in the mesh pushes. Changes that
 * come in a burst are handled together.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mesh_int.h"

#define COALESCE_US 300000
#define SETTLE_NS (3ull * 1000000000ull)
#define OWNERS_MAX PM_REPLICAS_MAX

/* Indexes (in v) of the page's owners, best first. */
static size_t owners_of(const pm_mesh *mesh, const pm_view *v,
                        const pm_page_id *id, size_t *out) {
  size_t want = PM_MIN((size_t)mesh->peer->opts.replicas, (size_t)OWNERS_MAX);
  return pm__placement_rank(v->members, v->count, id, out, want);
}

static bool listed(const pm_view *v, const size_t *set, size_t n,
                   const uint8_t *member_id) {
  for (size_t i = 0; i < n; i++)
    if (memcmp(v->members[set[i]].id, member_id, 16) == 0)
      return true;
  return false;
}

/* The index in v of the member with this id, or SIZE_MAX. */
static size_t member_index(const pm_view *v, const uint8_t *member_id) {
  for (size_t i = 0; i < v->count; i++)
    if (memcmp(v->members[i].id, member_id, 16) == 0)
      return i;
  return SIZE_MAX;
}

/* Who copies a page to its new owners: the first new owner that was an
 * old one, else the first old owner still a member (every holder of the
 * page computes the same one from the same two views). */
static size_t pusher_of(const pm_view *old, const size_t *before, size_t nb,
                        const pm_view *now, const size_t *after, size_t na) {
  for (size_t i = 0; i < na; i++)
    if (listed(old, before, nb, now->members[after[i]].id))
      return after[i];
  for (size_t i = 0; i < nb; i++) {
    size_t in_now = member_index(now, old->members[before[i]].id);
    if (in_now != SIZE_MAX)
      return in_now;
  }
  return SIZE_MAX;
}

/* Copy one page to one member: true if it took it. */
static bool push(pm_mesh *mesh, const pm_view *v, size_t member,
                 const pm_store_entry *e, const void *data) {
  const char *addr;
  pm_transport *t = pm__mesh_route(mesh, v, member, &addr);
  if (!t)
    return false;
  pm_page_request req = {.uri = e->uri, .version = "",
                         .page_size = mesh->peer->opts.page_size,
                         .flags = PM_PAGE_REQ_REPLICA};
  memcpy(req.page_id, e->id.bytes, 16);
  uint64_t deadline = pm__now_ns() +
                      (uint64_t)mesh->peer->opts.request_timeout_ms * 1000000u;
  if (pm__transport_put_page(t, addr, &req, data, (size_t)e->length,
                             deadline) != 0)
    return false;
  atomic_fetch_add(&mesh->replicas_pushed, 1);
  return true;
}

/* One page: push it to the new owners if this peer is the one to (or, when
 * draining, always). True if at least one of them took it. */
static bool rebalance_page(pm_mesh *mesh, const pm_view *old,
                           const pm_view *now, const pm_store_entry *e,
                           void *buf, bool drain) {
  size_t before[OWNERS_MAX], after[OWNERS_MAX];
  size_t nb = owners_of(mesh, old, &e->id, before);
  size_t na = owners_of(mesh, now, &e->id, after);
  size_t pusher = pusher_of(old, before, nb, now, after, na);
  if (!drain && (pusher == SIZE_MAX || pusher != now->self))
    return false;
  bool have = false, taken = false;
  for (size_t i = 0; i < na; i++) {
    if (after[i] == now->self ||
        listed(old, before, nb, now->members[after[i]].id))
      continue;
    /* not a user's read: no hit, no promotion to RAM, no recency */
    if (!have && pm__store_read_quiet(mesh->peer->store, &e->id, buf,
                                      (size_t)e->length) !=
                     (ssize_t)e->length)
      return false;
    have = true;
    taken |= push(mesh, now, after[i], e, buf);
  }
  return taken;
}

/* Returns the number of pages copied to at least one new owner (copies
 * made meanwhile by reads, counted in replicas_pushed, are not). */
static uint64_t rebalance(pm_mesh *mesh, const pm_view *old,
                          const pm_view *now, bool drain) {
  pm_store_entry *entries;
  size_t count;
  if (now->self == SIZE_MAX ||
      pm__store_list_disk(mesh->peer->store, &entries, &count) != 0)
    return 0;
  void *buf = malloc(mesh->peer->opts.page_size);
  uint64_t pages = 0;
  for (size_t i = 0; buf && i < count; i++) {
    if (atomic_load(&mesh->peer->closing))
      break;
    /* A page of another page size (the cache directory kept pages from
     * before the size changed) is nobody's page here: not pushed, and
     * it does not fit the buffer. */
    if (entries[i].length > mesh->peer->opts.page_size)
      continue;
    pages += rebalance_page(mesh, old, now, &entries[i], buf, drain);
  }
  free(buf);
  pm__store_list_free(entries, count);
  PM_LOG(PM_LOG_INFO, "mesh", "%s: %llu pages copied to their new owners",
         drain ? "draining" : "members changed", (unsigned long long)pages);
  return pages;
}

static void rebalance_run(void *arg) {
  pm_mesh *mesh = arg;
  usleep(COALESCE_US);
  /* A change during the previous task's walk queued this one (pending was
   * cleared at that walk's start): wait for it to end, then work from the
   * view it left. Two tasks at once would each release the same old view. */
  pthread_mutex_lock(&mesh->rebalance_lock);
  atomic_store(&mesh->rebalance_pending, false);
  if (!atomic_load(&mesh->peer->closing)) {
    pm_view *now = mesh->driver ? pm__mesh_view(mesh) : NULL;
    pm_view *old = mesh->rebalance_view;
    /* Right after a start the view fills as members are learned: that is
     * not a change of owners. */
    bool settled = pm__now_ns() - mesh->started_ns > SETTLE_NS;
    if (now && old && settled && mesh->peer->store)
      rebalance(mesh, old, now, false);
    mesh->rebalance_view = now; /* keeps the reference */
    pm__mesh_view_release(old);
  }
  pthread_mutex_unlock(&mesh->rebalance_lock);
  pm__mesh_task_done(mesh);
}

void pm__mesh_members_changed(pm_mesh *mesh) {
  if (atomic_exchange(&mesh->rebalance_pending, true))
    return;
  if (pm__mesh_task_submit(mesh, rebalance_run, mesh, 1024) != 0)
    atomic_store(&mesh->rebalance_pending, false);
}

/* A copy of v in which this member is gone. */
static pm_view *without_self(const pm_view *v) {
  pm_view *w = calloc(1, sizeof *w);
  if (w) {
    w->members = malloc((v->count ? v->count : 1) * sizeof *w->members);
    w->peers = malloc((v->count ? v->count : 1) * sizeof *w->peers);
  }
  if (!w || !w->members || !w->peers) {
    if (w) {
      free(w->members);
      free(w->peers);
    }
    free(w);
    return NULL;
  }
  memcpy(w->members, v->members, v->count * sizeof *w->members);
  memcpy(w->peers, v->peers, v->count * sizeof *w->peers);
  w->count = v->count;
  w->self = v->self;
  w->members[v->self].health = PM_PLACE_GONE;
  atomic_init(&w->refs, 1);
  return w;
}

ssize_t pm__mesh_drain(pm_mesh *mesh) {
  pm_view *now = pm__mesh_view(mesh);
  if (!now || now->self == SIZE_MAX) {
    pm__mesh_view_release(now);
    return pm__errf(PM_EIO, "this node is not in its own view of the mesh");
  }
  pm_view *after = without_self(now);
  if (!after) {
    pm__mesh_view_release(now);
    return pm__errf(PM_ENOMEM, "draining: out of memory");
  }
  uint64_t pushed = mesh->peer->store ? rebalance(mesh, now, after, true) : 0;
  pm__mesh_view_release(after);
  pm__mesh_view_release(now);
  pm__mesh_leave(mesh);
  return (ssize_t)pushed;
}
