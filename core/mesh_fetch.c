/*
 * core/mesh_fetch.c - reading through the mesh. A reader asks the page's
 * owners in rank order (Alive before Suspect) and keeps what it gets in
 * RAM only; an owner that misses asks the other candidates for a cached
 * copy (a page that moved with a join or a death is found, not refetched),
 * then leaves the origin to its caller and copies what it fetched to the
 * other owners in the background. Every page is verified against its
 * checksum by the transport before it is used.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mesh_int.h"

/* The owners and one more (a copy moved by a change is found there). */
#define CANDIDATES_MAX (PM_REPLICAS_MAX + 1)
#define META_ANSWER_MAX 512
/* The cached-only asks of an owner that missed take at most this share
 * of a request's time (see ask_replicas). */
#define CACHED_ONLY_SHARE 4u

static uint64_t deadline_of(const pm_mesh *mesh) {
  return pm__now_ns() + (uint64_t)mesh->peer->opts.request_timeout_ms *
                            1000000u;
}

/* Does a fabric address speak the protocol of ours: the same scheme, the
 * part up to its first '-' (transport/fabric_int.h)? */
static bool same_fabric_scheme(const pm_mesh *mesh, const char *theirs) {
  const char *ours = (const char *)mesh->meta.fabric_addr;
  size_t n = 0;
  while (n < mesh->meta.fabric_len && ours[n] != '-')
    n++;
  return n < mesh->meta.fabric_len && strncmp(theirs, ours, n + 1) == 0;
}

/* The transport and address to reach member i of the view: fabric when
 * both ends speak it (the same version of it), tcp otherwise. */
pm_transport *pm__mesh_route(pm_mesh *mesh, const pm_view *v, size_t i,
                            const char **addr) {
  const pm_view_peer *p = &v->peers[i];
  if (mesh->fabric && p->fabric[0] && same_fabric_scheme(mesh, p->fabric)) {
    *addr = p->fabric;
    return mesh->fabric;
  }
  *addr = p->tcp;
  return p->tcp[0] ? mesh->tcp : NULL;
}

static void fill_request(pm_page_request *req, const pm_page_id *id,
                         const char *uri, const pm_object_stat *st,
                         uint64_t page_index, uint32_t page_size,
                         uint32_t flags) {
  memset(req, 0, sizeof *req);
  memcpy(req->page_id, id->bytes, sizeof req->page_id);
  req->uri = uri;
  req->version = st ? st->version : "";
  req->object_size = st ? st->size : 0;
  req->mtime_ns = st ? st->mtime_ns : 0;
  req->page_index = page_index;
  req->page_size = page_size;
  req->flags = flags;
}

static ssize_t ask(pm_mesh *mesh, const pm_view *v, size_t i,
                   const pm_page_request *req, void *buf, size_t len,
                   uint64_t deadline_ns) {
  const char *addr;
  pm_transport *t = pm__mesh_route(mesh, v, i, &addr);
  if (!t)
    return pm__errf(PM_EUNREACHABLE, "member has no page address");
  ssize_t n = pm__transport_get_page(t, addr, req, buf, len, deadline_ns);
  /* No such object or page, access denied: the owner answered. */
  if (n < 0 && n != PM_ENOENT && n != PM_EACCES) {
    atomic_fetch_add(&mesh->peer_failures, 1);
    PM_LOG_RATELIMITED(PM_LOG_INFO, "mesh", 2000, "%s: %s", addr,
                       pm__errmsg());
  }
  return n;
}

/* The candidates for id, best first; *owners of them are the owners. */
static size_t candidates(pm_mesh *mesh, const pm_view *v, const pm_page_id *id,
                         size_t *out, size_t *owners) {
  size_t replicas = PM_MIN((size_t)mesh->peer->opts.replicas,
                           (size_t)PM_REPLICAS_MAX);
  size_t n = pm__placement_rank(v->members, v->count, id, out, replicas + 1);
  *owners = PM_MIN(n, replicas);
  return n;
}

static void count_page(pm_mesh *mesh, size_t bytes) {
  atomic_fetch_add(&mesh->pages_from_peers, 1);
  atomic_fetch_add(&mesh->bytes_from_peers, bytes);
}

/* The position of this peer among the first `owners` ranks, or owners. */
static size_t self_rank(const pm_view *v, const size_t *ranks, size_t owners) {
  for (size_t i = 0; i < owners; i++)
    if (ranks[i] == v->self)
      return i;
  return owners;
}

/* Ask the owners ranked before this peer (all of them if it is none),
 * in order, with a normal request: the first owner fetches the origin
 * once for everyone. Returns 0 when one answered with the page; PM_ENOENT
 * or PM_EACCES when one answered that the origin has no such object or
 * denies it (the next owner would only ask the origin again), else
 * PM_EUNREACHABLE. */
static int ask_owners(pm_mesh *mesh, const pm_view *v, const size_t *ranks,
                      size_t before, pm_page_request *req, void *buf,
                      size_t page_len) {
  for (size_t i = 0; i < before; i++) {
    ssize_t n = ask(mesh, v, ranks[i], req, buf, page_len,
                    deadline_of(mesh));
    if (n == (ssize_t)page_len)
      return 0;
    if (n == PM_ENOENT || n == PM_EACCES)
      return (int)n;
  }
  return PM_EUNREACHABLE;
}

/* As an owner: a cached copy from any other candidate, all of them
 * within a quarter of a request's time. An owner serving a peer asks
 * them while that peer waits for it with a request's time of its own: a
 * candidate that does not answer (dead, not declared yet) must not use
 * it all up, or the peer gives up on this owner just before the origin's
 * answer, asks the next owner, which waits for the same candidate... */
static int ask_replicas(pm_mesh *mesh, const pm_view *v, const size_t *ranks,
                        size_t n, size_t skip_before, pm_page_request *req,
                        void *buf, size_t page_len) {
  req->flags |= PM_PAGE_REQ_CACHED_ONLY;
  uint64_t deadline = pm__now_ns() +
                      (uint64_t)mesh->peer->opts.request_timeout_ms *
                          (1000000u / CACHED_ONLY_SHARE);
  for (size_t i = skip_before; i < n && pm__now_ns() < deadline; i++)
    if (ranks[i] != v->self && ask(mesh, v, ranks[i], req, buf, page_len,
                                   deadline) == (ssize_t)page_len)
      return 0;
  return PM_ENOENT;
}

int pm__mesh_fetch(pm_mesh *mesh, pm_mesh_mode mode, const char *uri,
                   const pm_object_stat *st, uint64_t page_index,
                   const pm_page_id *id, void *buf, size_t page_len,
                   bool *owned) {
  *owned = true;
  pm_view *v = pm__mesh_view(mesh);
  if (!v)
    return PM_ENOENT;
  size_t ranks[CANDIDATES_MAX], owners;
  size_t n = candidates(mesh, v, id, ranks, &owners);
  size_t mine = v->self == SIZE_MAX ? 0 : self_rank(v, ranks, owners);
  pm_page_request req;
  fill_request(&req, id, uri, st, page_index, mesh->peer->opts.page_size, 0);
  int result = PM_EUNREACHABLE;
  size_t asked = 0;
  if (mode == PM_MESH_ROUTE) {
    asked = mine;
    result = ask_owners(mesh, v, ranks, mine, &req, buf, page_len);
  }
  if (mine == owners && mode == PM_MESH_ROUTE)
    *owned = false; /* not an owner: keep it in RAM, origin as last resort */
  else if (result == PM_EUNREACHABLE) /* no owner before it answered */
    result = ask_replicas(mesh, v, ranks, n, asked, &req, buf, page_len);
  if (result == 0)
    count_page(mesh, page_len);
  pm__mesh_view_release(v);
  /* Whatever an owner answered, the caller reads the origin itself: it
   * learns the object's fate first hand (and forgets stale metadata). */
  return result ? PM_ENOENT : 0;
}

/* ---- replication ----------------------------------------------------------------- */

typedef struct push_task {
  pm_mesh *mesh;
  char *uri;
  pm_object_stat st;
  uint64_t page_index;
  pm_page_id id;
  size_t length;
  unsigned char data[];
} push_task;

static void push_run(void *arg) {
  push_task *t = arg;
  pm_mesh *mesh = t->mesh;
  pm_view *v = atomic_load(&mesh->peer->closing) ? NULL : pm__mesh_view(mesh);
  if (v) {
    size_t ranks[CANDIDATES_MAX], owners;
    candidates(mesh, v, &t->id, ranks, &owners);
    pm_page_request req;
    fill_request(&req, &t->id, t->uri, &t->st, t->page_index,
                 mesh->peer->opts.page_size, 0);
    for (size_t i = 0; i < owners; i++) {
      const char *addr;
      pm_transport *tr =
          ranks[i] == v->self ? NULL : pm__mesh_route(mesh, v, ranks[i], &addr);
      if (tr && pm__transport_put_page(tr, addr, &req, t->data, t->length,
                                       deadline_of(mesh)) == 0)
        atomic_fetch_add(&mesh->replicas_pushed, 1);
    }
    pm__mesh_view_release(v);
  }
  free(t->uri);
  free(t);
  pm__mesh_task_done(mesh);
}

void pm__mesh_replicate(pm_mesh *mesh, const char *uri,
                        const pm_object_stat *st, uint64_t page_index,
                        const pm_page_id *id, const void *data,
                        size_t length) {
  if (mesh->peer->opts.replicas < 2)
    return;
  push_task *t = malloc(sizeof *t + length);
  if (!t || !(t->uri = strdup(uri))) {
    free(t);
    return;
  }
  t->mesh = mesh;
  t->st = *st;
  t->page_index = page_index;
  t->id = *id;
  t->length = length;
  memcpy(t->data, data, length);
  if (pm__mesh_task_submit(mesh, push_run, t, 256) != 0) {
    free(t->uri);
    free(t);
  }
}

/* ---- metadata ------------------------------------------------------------------- */

int pm__mesh_stat(pm_mesh *mesh, const char *uri, bool fresh,
                  pm_object_stat *out, bool *definitive) {
  *definitive = false;
  pm_view *v = pm__mesh_view(mesh);
  if (!v)
    return PM_ENOENT;
  pm_page_id id = pm__page_id(uri, "\001meta", 0, 0);
  size_t ranks[CANDIDATES_MAX], owners;
  candidates(mesh, v, &id, ranks, &owners);
  int result = PM_ENOENT;
  /* Owners ranked before this peer are asked; from this peer on, it asks
   * the origin itself. */
  size_t before = v->self == SIZE_MAX ? 0 : self_rank(v, ranks, owners);
  if (before > 0) {
    pm_page_request req;
    fill_request(&req, &id, uri, NULL, 0, mesh->peer->opts.page_size,
                 PM_PAGE_REQ_META | (fresh ? PM_PAGE_REQ_FRESH : 0));
    char answer[META_ANSWER_MAX];
    for (size_t i = 0; i < before && result == PM_ENOENT && !*definitive;
         i++) {
      ssize_t n = ask(mesh, v, ranks[i], &req, answer, sizeof answer,
                      deadline_of(mesh));
      if (n > 0)
        result = pm__meta_decode(answer, (size_t)n, out);
      else if (n == PM_ENOENT || n == PM_EACCES)
        *definitive = true, result = (int)n;
    }
  }
  pm__mesh_view_release(v);
  return result;
}
