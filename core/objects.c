/*
 * core/objects.c - object metadata through a peer: pm_stat, pm_list and
 * pm_invalidate, on top of the metadata cache and the origins. Concurrent
 * lookups of one cold URI send one request to the origin.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mesh.h"
#include "node_int.h"

/* Origin failures after which stale metadata may still be used. */
static bool origin_down(int err) {
  return err == PM_EUNREACHABLE || err == PM_ETIMEDOUT || err == PM_EORIGIN;
}

int pm__peer_stat_fresh(pm_peer *peer, const char *uri, pm_object_stat *out) {
  bool fresh = false;
  if (pm__meta_lookup_keep(peer->meta, uri, out, &fresh) == 0 && fresh)
    return 0;
  return PM_ENOENT;
}

/* The owner of the metadata in the mesh, else the origin. */
static int stat_source(pm_peer *peer, const char *uri, pm_object_stat *st,
                       bool allow_mesh) {
  if (peer->link)
    return pm__link_stat(peer->link, uri, st);
  if (peer->mesh && allow_mesh) {
    bool definitive;
    int err = pm__mesh_stat(peer->mesh, uri, pm__meta_doubted(peer->meta, uri),
                            st, &definitive);
    if (err == 0 || definitive)
      return err;
  }
  return pm__ufs_stat(peer->ufs, uri, st);
}

/* Ask the origin, sharing the answer with concurrent askers. */
static int stat_origin(pm_peer *peer, const char *uri, pm_object_stat *out,
                       bool allow_mesh) {
  pm_page_id key = pm__page_id(uri, "\001meta", 0, 0);
  bool leader;
  pm_flight *flight = pm__flight_begin(peer->flights, &key, &leader);
  if (!flight)
    return pm__errf(PM_ENOMEM, "%s: out of memory", uri);
  if (leader) {
    pm_object_stat *st = calloc(1, sizeof *st);
    int err = st ? stat_source(peer, uri, st, allow_mesh)
                 : pm__errf(PM_ENOMEM, "%s: out of memory", uri);
    if (err == 0)
      pm__meta_store(peer->meta, uri, st);
    else if (err == PM_ENOENT)
      pm__meta_forget(peer->meta, uri);
    if (err) {
      free(st);
      st = NULL;
    }
    pm__flight_finish(peer->flights, flight, err, st, sizeof *st);
  }
  const void *data;
  size_t length;
  int err = pm__flight_wait(flight, &data, &length);
  if (err == 0)
    *out = *(const pm_object_stat *)data;
  pm__flight_release(peer->flights, flight);
  return err;
}

static int peer_stat(pm_peer *peer, const char *uri, pm_object_stat *out,
                     bool allow_mesh, bool refresh) {
  pm_object_stat cached;
  bool fresh = false;
  bool have = pm__meta_lookup_keep(peer->meta, uri, &cached, &fresh) == 0;
  if (have && fresh && !refresh) {
    *out = cached;
    return 0;
  }
  int err = stat_origin(peer, uri, out, allow_mesh);
  if (err && have && origin_down(err)) {
    PM_LOG_RATELIMITED(PM_LOG_WARN, "meta", 5000,
                       "%s: origin unavailable (%s); using cached metadata",
                       uri, pm__errmsg());
    *out = cached;
    return 0;
  }
  return err;
}

int pm__peer_stat(pm_peer *peer, const char *uri, pm_object_stat *out) {
  return peer_stat(peer, uri, out, true, false);
}

int pm__peer_stat_local(pm_peer *peer, const char *uri, bool refresh,
                        pm_object_stat *out) {
  return peer_stat(peer, uri, out, false, refresh);
}

int pm__stat(pm_peer *peer, const char *uri, pm_object_stat *out) {
  char norm[PM_URI_MAX];
  pm__errmsg_clear();
  if (!peer || !uri || !out)
    return pm__errf(PM_EINVAL, "pm_stat: NULL argument");
  int err = pm__uri_normalize(uri, norm, sizeof norm);
  return err ? err : pm__peer_stat(peer, norm, out);
}

int pm__invalidate(pm_peer *peer, const char *uri_prefix) {
  char norm[PM_URI_MAX];
  pm__errmsg_clear();
  if (!peer || !uri_prefix)
    return pm__errf(PM_EINVAL, "pm_invalidate: NULL argument");
  /* A prefix need not name an object; normalise only what parses. */
  if (pm__uri_normalize(uri_prefix, norm, sizeof norm) != 0)
    snprintf(norm, sizeof norm, "%s", uri_prefix);
  size_t n = pm__meta_forget_prefix(peer->meta, norm);
  pm__meta_doubt(peer->meta, norm); /* the metadata owners' entries too */
  if (peer->link)
    return pm__link_invalidate(peer->link, norm);
  PM_LOG(PM_LOG_INFO, "meta", "invalidated %zu entries under %s", n, norm);
  return 0;
}

/* ---- listing ----------------------------------------------------------- */

/* A listing's first entries go to the metadata cache on disk as well, so
 * that the next process on the node (a CLI call, a job after the one that
 * listed) does not ask the origin about them; past this many, memory only
 * (a listing of a million objects would otherwise write a million files,
 * an inode and a block each). Entries a stat uses are written then. */
#define LIST_PERSIST_MAX 4096

typedef struct listing {
  pm_peer *peer;
  pm_list_entry *entries;
  size_t count, capacity, persisted;
  bool first_only; /* PM_LIST_FIRST */
  int err;
} listing;

/* add_entry's answer to stop the listing once PM_LIST_FIRST has its entry
 * (pm_err codes are negative). */
#define LIST_STOP 1

static int add_entry(void *arg, const pm_list_entry *e) {
  listing *l = arg;
  if (l->count == l->capacity) {
    size_t cap = l->capacity ? l->capacity * 2 : 64;
    pm_list_entry *grown = realloc(l->entries, cap * sizeof *grown);
    if (!grown)
      return l->err = pm__errf(PM_ENOMEM, "listing: out of memory");
    l->entries = grown;
    l->capacity = cap;
  }
  pm_list_entry *copy = &l->entries[l->count];
  *copy = *e;
  copy->uri = strdup(e->uri);
  copy->version = e->version ? strdup(e->version) : NULL;
  if (!copy->uri || (e->version && !copy->version)) {
    free(copy->uri);
    free(copy->version);
    return l->err = pm__errf(PM_ENOMEM, "listing: out of memory");
  }
  l->count++;
  if (!e->is_dir && e->version && strlen(e->version) < PM_VERSION_MAX) {
    pm_object_stat st = {.size = e->size, .mtime_ns = e->mtime_ns};
    snprintf(st.version, sizeof st.version, "%s", e->version);
    if (l->persisted < LIST_PERSIST_MAX) {
      l->persisted++;
      pm__meta_store(l->peer->meta, e->uri, &st);
    } else {
      pm__meta_store_listed(l->peer->meta, e->uri, &st);
    }
  }
  return l->first_only ? LIST_STOP : 0;
}

static int compare_entries(const void *a, const void *b) {
  return strcmp(((const pm_list_entry *)a)->uri,
                ((const pm_list_entry *)b)->uri);
}

int pm__list(pm_peer *peer, const char *uri, unsigned flags,
            pm_list_entry **entries, size_t *count) {
  char norm[PM_URI_MAX];
  pm__errmsg_clear();
  if (!peer || !uri || !entries || !count)
    return pm__errf(PM_EINVAL, "pm_list: NULL argument");
  int err = pm__uri_normalize(uri, norm, sizeof norm);
  if (err)
    return err;
  listing l = {.peer = peer, .first_only = (flags & PM_LIST_FIRST) != 0};
  err = peer->link ? pm__link_list(peer->link, norm, flags, add_entry, &l)
                   : pm__ufs_list(peer->ufs, norm, flags, add_entry, &l);
  if (l.err)
    err = l.err;
  else if (err == LIST_STOP)
    err = 0;
  if (err) {
    pm_list_free(l.entries, l.count);
    return err;
  }
  if (l.count > 1) /* an empty listing has no array: qsort(NULL) is UB */
    qsort(l.entries, l.count, sizeof *l.entries, compare_entries);
  *entries = l.entries;
  *count = l.count;
  return 0;
}

void pm_list_free(pm_list_entry *entries, size_t count) {
  for (size_t i = 0; entries && i < count; i++) {
    free(entries[i].uri);
    free(entries[i].version);
  }
  free(entries);
}
