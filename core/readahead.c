/*
 * core/readahead.c - sequential readers get the next pages fetched before
 * they ask. A small direct-mapped table of streams (by URI hash) remembers
 * where each reader is; two reads in a row that continue each other start
 * background fetches of the following readahead_pages pages. Background
 * fetches go through the same single flight as reads, so a reader that
 * catches up waits for the fetch in progress instead of starting another.
 * pm_prefetch queues a range the same way.
 */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "node_int.h"

#define MAX_BACKGROUND_QUEUED 256

typedef struct prefetch_task {
  pm_peer *peer;
  char *uri;
  pm_object_stat st;
  uint64_t first, last; /* pages, inclusive */
} prefetch_task;

static void prefetch_run(void *arg) {
  prefetch_task *t = arg;
  for (uint64_t p = t->first; p <= t->last; p++) {
    if (atomic_load(&t->peer->closing))
      break;
    if (pm__page_fetch(t->peer, t->uri, &t->st, p, 0, NULL, 0) < 0) {
      PM_LOG(PM_LOG_DEBUG, "readahead", "%s page %llu: %s", t->uri,
             (unsigned long long)p, pm__errmsg());
      break;
    }
  }
  free(t->uri);
  free(t);
}

/* Queue background fetches of pages [first, last] of uri, one task per
 * page so they run in parallel. Returns 0 or a pm_err (queue full). */
static int queue_pages(pm_peer *peer, const char *uri,
                       const pm_object_stat *st, uint64_t first,
                       uint64_t last, uint64_t pages_per_task) {
  for (uint64_t p = first; p <= last; p += pages_per_task) {
    prefetch_task *t = malloc(sizeof *t);
    if (!t || !(t->uri = strdup(uri))) {
      free(t);
      return pm__errf(PM_ENOMEM, "%s: out of memory", uri);
    }
    t->peer = peer;
    t->st = *st;
    t->first = p;
    t->last = PM_MIN(last, p + pages_per_task - 1);
    int err = pm__pool_submit_background(peer->pool, prefetch_run, t,
                                         MAX_BACKGROUND_QUEUED);
    if (err) {
      free(t->uri);
      free(t);
      return pm__errf(err, "%s: pages from %llu on not queued (%s)", uri,
                      (unsigned long long)p,
                      err == PM_EBUSY ? "the background queue is full"
                      : err == PM_ESHUTDOWN ? "the peer is closing"
                                            : "out of memory");
    }
  }
  return 0;
}

static uint64_t last_page_of(const pm_peer *peer, const pm_object_stat *st) {
  return st->size ? (st->size - 1) / peer->opts.page_size : 0;
}

void pm__readahead_note(pm_peer *peer, const char *uri,
                        const pm_object_stat *st, uint64_t first,
                        uint64_t last) {
  uint32_t window = peer->opts.readahead_pages;
  if (window == 0 || !peer->store || st->size == 0)
    return;
  uint64_t hash = XXH3_64bits(uri, strlen(uri));
  uint64_t from = 1, to = 0;
  pthread_mutex_lock(&peer->streams_mutex);
  pm_stream *s = &peer->streams[hash % PM_READAHEAD_STREAMS];
  bool continues = s->uri_hash == hash &&
                   (first == s->next_page || first + 1 == s->next_page);
  if (!continues)
    *s = (pm_stream){.uri_hash = hash, .prefetched_to = last + 1};
  else
    s->sequential++;
  s->next_page = last + 1;
  if (s->sequential >= 1) {
    from = PM_MAX(last + 1, s->prefetched_to);
    to = PM_MIN(last + window, last_page_of(peer, st));
    if (from <= to)
      s->prefetched_to = to + 1;
  }
  pthread_mutex_unlock(&peer->streams_mutex);
  if (from <= to)
    queue_pages(peer, uri, st, from, to, 1);
}

int pm__prefetch(pm_peer *peer, const char *uri, uint64_t offset,
                uint64_t length) {
  char norm[PM_URI_MAX];
  pm_object_stat st;
  pm__errmsg_clear();
  if (!peer || !uri)
    return pm__errf(PM_EINVAL, "pm_prefetch: NULL argument");
  int err = pm__uri_normalize(uri, norm, sizeof norm);
  if (!err && peer->link)
    return pm__link_prefetch(peer->link, norm, offset, length);
  if (!err)
    err = pm__peer_stat(peer, norm, &st);
  if (err || offset >= st.size || !peer->store)
    return err;
  /* (offset + length may wrap: a length of "all", UINT64_MAX) */
  uint64_t end = length && length < st.size - offset ? offset + length
                                                     : st.size;
  uint64_t first = offset / peer->opts.page_size;
  uint64_t last = (end - 1) / peer->opts.page_size;
  /* One task per page while the queue has room keeps them parallel; a
   * long range goes in chunks so it does not flood the queue. */
  uint64_t pages = last - first + 1;
  uint64_t per_task = pages > 64 ? (pages + 63) / 64 : 1;
  return queue_pages(peer, norm, &st, first, last, per_task);
}
