/*
 * core/batch.c - reads of ranges: pm_read (one range), pm_read_version (one
 * range of one version), pm_read_batch (many), and pm_prefetch. A batch looks up the metadata of its objects
 * (cold ones in parallel), splits every range into page jobs, serves what
 * the store holds on the calling thread, and fetches the missing pages in
 * parallel on the worker pool. A range whose object changed under it is
 * retried with fresh metadata.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node_int.h"

#define CHANGED_RETRIES 3

typedef struct range_work {
  pm_peer *peer;
  pm_range *range;
  char *uri; /* normalised */
  const char *pin; /* only this version (pm_read_version), or NULL */
  pm_object_stat st;
  int err;
  char *errmsg; /* detail of err, from whichever thread failed */
  bool pending;
} range_work;

typedef struct page_job {
  range_work *work;
  uint64_t page_index;
  uint32_t offset;
  char *dst;
  size_t length;
  ssize_t result;
  char *errmsg;
} page_job;

static void set_failure(char **slot, int *err_slot, int err) {
  if (err_slot)
    *err_slot = err;
  if (!*slot)
    *slot = strdup(pm__errmsg());
}

/* ---- metadata phase ------------------------------------------------------- */

static void stat_task(void *arg) {
  range_work *w = arg;
  w->err = pm__peer_stat(w->peer, w->uri, &w->st);
  if (w->err)
    set_failure(&w->errmsg, NULL, w->err);
}

/* A pinned range whose object is now another version fails at once: its
 * bytes could only come from the new one. */
static void check_pins(range_work *works, size_t n) {
  for (size_t i = 0; i < n; i++) {
    range_work *w = &works[i];
    if (!w->pending || w->err || !w->pin || !strcmp(w->st.version, w->pin))
      continue;
    w->err = pm__errf(PM_ECHANGED, "%s: changed since version %.64s was "
                      "read (now %.64s)", w->uri, w->pin, w->st.version);
    set_failure(&w->errmsg, NULL, w->err);
  }
}

static void stat_phase(pm_peer *peer, range_work *works, size_t n) {
  pm_group group;
  pm__group_init(&group);
  size_t cold = 0;
  for (size_t i = 0; i < n; i++)
    if (works[i].pending &&
        pm__peer_stat_fresh(peer, works[i].uri, &works[i].st) != 0)
      cold++;
  for (size_t i = 0; i < n && cold > 0; i++) {
    range_work *w = &works[i];
    if (!w->pending || pm__peer_stat_fresh(peer, w->uri, &w->st) == 0)
      continue;
    if (cold == 1 || pm__pool_submit(peer->pool, &group, stat_task, w) != 0)
      stat_task(w);
  }
  pm__group_wait(&group);
  pm__group_destroy(&group);
}

/* ---- page phase ------------------------------------------------------------ */

static size_t count_pages(pm_peer *peer, range_work *works, size_t n) {
  size_t total = 0;
  uint64_t ps = peer->opts.page_size;
  for (size_t i = 0; i < n; i++) {
    range_work *w = &works[i];
    pm_range *r = w->range;
    if (!w->pending || w->err || r->length == 0 || r->offset >= w->st.size)
      continue;
    uint64_t end = PM_MIN(w->st.size, r->offset + r->length);
    total += (size_t)((end - 1) / ps - r->offset / ps + 1);
  }
  return total;
}

static size_t build_jobs(pm_peer *peer, range_work *works, size_t n,
                         page_job *jobs) {
  size_t count = 0;
  uint64_t ps = peer->opts.page_size;
  for (size_t i = 0; i < n; i++) {
    range_work *w = &works[i];
    pm_range *r = w->range;
    if (!w->pending || w->err || r->length == 0 || r->offset >= w->st.size)
      continue;
    uint64_t end = PM_MIN(w->st.size, r->offset + r->length);
    for (uint64_t pos = r->offset; pos < end;) {
      uint64_t page = pos / ps;
      uint64_t page_end = PM_MIN(end, (page + 1) * ps);
      jobs[count++] = (page_job){
          .work = w,
          .page_index = page,
          .offset = (uint32_t)(pos - page * ps),
          .dst = (char *)r->buf + (pos - r->offset),
          .length = (size_t)(page_end - pos),
      };
      pos = page_end;
    }
  }
  return count;
}

static void fetch_task(void *arg) {
  page_job *job = arg;
  range_work *w = job->work;
  pm_page_id id = pm__page_id(w->uri, w->st.version, job->page_index,
                              w->peer->opts.page_size);
  atomic_fetch_add(&w->peer->counters.misses, 1);
  job->result = pm__page_fetch_shared(w->peer, w->uri, &w->st,
                                      job->page_index, &id, job->offset,
                                      job->dst, job->length);
  if (job->result < 0)
    job->errmsg = strdup(pm__errmsg());
}

static size_t page_phase(pm_peer *peer, page_job *jobs, size_t count) {
  size_t misses = 0;
  for (size_t i = 0; i < count; i++) {
    page_job *job = &jobs[i];
    range_work *w = job->work;
    pm_page_id id = pm__page_id(w->uri, w->st.version, job->page_index,
                                peer->opts.page_size);
    job->result = pm__page_read_cached(peer, &id, w->uri, job->offset,
                                       job->dst, job->length);
    if (job->result == PM_ENOENT)
      jobs[misses++] = *job; /* compact the misses to the front */
  }
  pm_group group;
  pm__group_init(&group);
  /* All but the last on the pool; the last on this thread, which would
   * only wait otherwise. */
  for (size_t i = 0; i < misses; i++)
    if (i + 1 == misses ||
        pm__pool_submit(peer->pool, &group, fetch_task, &jobs[i]) != 0)
      fetch_task(&jobs[i]);
  pm__group_wait(&group);
  pm__group_destroy(&group);
  return misses;
}

/* Fold the failed jobs into their ranges (the hits left no trace to fold:
 * only the misses remain in jobs[0, misses), and every job, hit or miss,
 * copied its bytes). */
static void fold_failures(page_job *jobs, size_t count) {
  for (size_t i = 0; i < count; i++) {
    page_job *job = &jobs[i];
    if (job->result < 0 && job->work->err == 0) {
      job->work->err = (int)job->result;
      job->work->errmsg = job->errmsg;
      job->errmsg = NULL;
    }
    free(job->errmsg);
  }
}

/* ---- ranges ----------------------------------------------------------------- */

static void finish_range(pm_peer *peer, range_work *w) {
  pm_range *r = w->range;
  if (w->err == PM_ECHANGED) {
    pm__meta_retract(peer->meta, w->uri);
    if (!w->pin)
      return; /* stays pending for another attempt */
  }
  w->pending = false;
  if (w->err == PM_ENOENT) /* gone since its stat (or the node's) */
    pm__meta_retract(peer->meta, w->uri);
  if (w->err) {
    r->result = w->err;
    return;
  }
  uint64_t avail = r->offset < w->st.size ? w->st.size - r->offset : 0;
  r->result = (ssize_t)PM_MIN((uint64_t)r->length, avail);
  atomic_fetch_add(&peer->counters.reads, 1);
  atomic_fetch_add(&peer->counters.bytes_served, (uint64_t)r->result);
  if (peer->link)
    pm__link_note_read(peer->link, (uint64_t)r->result);
  if (r->result > 0) {
    uint64_t ps = peer->opts.page_size;
    pm__readahead_note(peer, w->uri, &w->st, r->offset / ps,
                       (r->offset + (uint64_t)r->result - 1) / ps);
  }
}

static int attempt(pm_peer *peer, range_work *works, size_t n) {
  stat_phase(peer, works, n);
  check_pins(works, n);
  size_t total = count_pages(peer, works, n);
  page_job *jobs = total ? calloc(total, sizeof *jobs) : NULL;
  if (total && !jobs)
    return pm__errf(PM_ENOMEM, "batch of %zu pages: out of memory", total);
  size_t count = build_jobs(peer, works, n, jobs);
  size_t misses = page_phase(peer, jobs, count);
  fold_failures(jobs, misses);
  free(jobs);
  for (size_t i = 0; i < n; i++)
    if (works[i].pending)
      finish_range(peer, &works[i]);
  return 0;
}

static int prepare(pm_peer *peer, pm_range *ranges, size_t n,
                   range_work *works) {
  char norm[PM_URI_MAX];
  for (size_t i = 0; i < n; i++) {
    range_work *w = &works[i];
    *w = (range_work){.peer = peer, .range = &ranges[i], .pending = true};
    int err = ranges[i].uri && (ranges[i].buf || !ranges[i].length)
                  ? pm__uri_normalize(ranges[i].uri, norm, sizeof norm)
                  : pm__errf(PM_EINVAL, "range %zu: NULL uri or buffer", i);
    if (!err && !(w->uri = strdup(norm)))
      err = pm__errf(PM_ENOMEM, "out of memory");
    if (err) {
      w->err = err;
      set_failure(&w->errmsg, NULL, err);
      w->pending = false;
      ranges[i].result = err;
    }
  }
  return 0;
}

/* Returns the first failing range's error (with its detail), else 0.
 * pin: the version every range must be read from, or NULL. */
static int read_ranges(pm_peer *peer, pm_range *ranges, size_t n,
                       const char *pin) {
  range_work *works = calloc(n, sizeof *works);
  if (!works)
    return pm__errf(PM_ENOMEM, "batch of %zu ranges: out of memory", n);
  prepare(peer, ranges, n, works);
  for (size_t i = 0; i < n; i++)
    works[i].pin = pin;
  int err = 0;
  for (int i = 0; i < CHANGED_RETRIES && !err; i++) {
    bool pending = false;
    for (size_t j = 0; j < n; j++) {
      if (works[j].pending) {
        works[j].err = 0;
        free(works[j].errmsg);
        works[j].errmsg = NULL;
        pending = true;
      }
    }
    if (!pending)
      break;
    err = attempt(peer, works, n);
  }
  int first = err;
  for (size_t j = 0; j < n; j++) {
    range_work *w = &works[j];
    if (w->pending) /* still changing after every retry, or not read */
      ranges[j].result = err ? err : PM_ECHANGED;
    if (ranges[j].result < 0 && !first) {
      first = (int)ranges[j].result;
      pm__errmsg_set(w->errmsg ? w->errmsg : pm_strerror(first));
    }
    free(w->uri);
    free(w->errmsg);
  }
  free(works);
  return first;
}

ssize_t pm__read(pm_peer *peer, const char *uri, uint64_t offset, void *buf,
                 size_t length) {
  return pm__read_version(peer, uri, NULL, offset, buf, length);
}

ssize_t pm__read_version(pm_peer *peer, const char *uri, const char *version,
                         uint64_t offset, void *buf, size_t length) {
  pm__errmsg_clear();
  if (!peer || !uri || (!buf && length))
    return pm__errf(PM_EINVAL, "pm_read: NULL argument");
  if (version && (!*version || strlen(version) >= PM_VERSION_MAX))
    return pm__errf(PM_EINVAL, "pm_read_version: empty or over-long "
                               "version");
  pm_range range = {.uri = uri, .offset = offset, .length = length,
                    .buf = buf};
  int err = read_ranges(peer, &range, 1, version);
  if (err)
    return err;
  return range.result;
}

int pm__read_batch(pm_peer *peer, pm_range *ranges, size_t count) {
  pm__errmsg_clear();
  if (!peer || (!ranges && count))
    return pm__errf(PM_EINVAL, "pm_read_batch: NULL argument");
  return count ? read_ranges(peer, ranges, count, NULL) : 0;
}
