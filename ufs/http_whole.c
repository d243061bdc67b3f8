/*
 * ufs/http_whole.c - objects of an HTTP server that ignores Range, kept
 * whole in scratch files while they are read (see http_whole.h). A slot is
 * free (uri NULL), being written (fd -1, its writer counted in users), or
 * kept (fd >= 0). Readers of an object being written wait for it rather
 * than ask the server for the object's start again.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ufs/http_whole.h"

int pm__http_wholes_init(pm_http_wholes *w, const char *dir) {
  memset(w, 0, sizeof *w);
  pthread_condattr_t attr;
  if (pthread_condattr_init(&attr) != 0)
    return pm__errf(PM_ENOMEM, "http: cannot make a condition variable");
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* as pm__now_ns */
  int rc = pthread_cond_init(&w->changed, &attr);
  pthread_condattr_destroy(&attr);
  if (rc != 0)
    return pm__errf(PM_ENOMEM, "http: cannot make a condition variable");
  if (pthread_mutex_init(&w->lock, NULL) != 0) {
    pthread_cond_destroy(&w->changed);
    return pm__errf(PM_ENOMEM, "http: cannot make a mutex");
  }
  for (int i = 0; i < PM_HTTP_WHOLE_SLOTS; i++)
    w->slots[i].fd = -1;
  w->dir = dir;
  w->ready = true;
  return 0;
}

static void slot_free(pm_http_whole *s) {
  free(s->uri);
  if (s->fd >= 0)
    close(s->fd);
  *s = (pm_http_whole){.fd = -1};
}

void pm__http_wholes_fini(pm_http_wholes *w) {
  if (!w || !w->ready)
    return;
  for (int i = 0; i < PM_HTTP_WHOLE_SLOTS; i++)
    slot_free(&w->slots[i]);
  pthread_mutex_destroy(&w->lock);
  pthread_cond_destroy(&w->changed);
  w->ready = false;
}

/* Drop kept copies nobody read for PM_HTTP_WHOLE_IDLE_NS; with the lock. */
static void drop_idle_locked(pm_http_wholes *w, uint64_t now) {
  for (int i = 0; i < PM_HTTP_WHOLE_SLOTS; i++) {
    pm_http_whole *s = &w->slots[i];
    if (s->uri && (s->fd >= 0 || s->gave_up) && !s->users &&
        now - s->used_ns > PM_HTTP_WHOLE_IDLE_NS)
      slot_free(s);
  }
}

static pm_http_whole *find_locked(pm_http_wholes *w, const char *uri,
                                  const pm_object_stat *st) {
  for (int i = 0; i < PM_HTTP_WHOLE_SLOTS; i++) {
    pm_http_whole *s = &w->slots[i];
    if (s->uri && s->size == st->size && !strcmp(s->uri, uri) &&
        !strcmp(s->version, st->version))
      return s;
  }
  return NULL;
}

ssize_t pm__http_whole_read(pm_http_wholes *w, const char *uri,
                            const pm_object_stat *st, uint64_t offset,
                            void *buf, size_t length, uint64_t wait_ns) {
  if (!w->ready || !w->dir)
    return -1;
  uint64_t deadline = pm__now_ns() + wait_ns;
  pthread_mutex_lock(&w->lock);
  drop_idle_locked(w, pm__now_ns());
  pm_http_whole *s;
  while ((s = find_locked(w, uri, st)) && s->fd < 0 && !s->gave_up) {
    struct timespec until = {(time_t)(deadline / 1000000000ull),
                             (long)(deadline % 1000000000ull)};
    if (pthread_cond_timedwait(&w->changed, &w->lock, &until) == ETIMEDOUT) {
      s = NULL;
      break;
    }
  }
  if (!s || s->gave_up) {
    pthread_mutex_unlock(&w->lock);
    return -1;
  }
  s->users++;
  int fd = s->fd;
  pthread_mutex_unlock(&w->lock);
  ssize_t got = pm__pread_full(fd, buf, length, offset);
  pthread_mutex_lock(&w->lock);
  s->users--;
  s->used_ns = pm__now_ns();
  pthread_mutex_unlock(&w->lock);
  return got == (ssize_t)length ? (ssize_t)length : -1;
}

/* An unlinked scratch file in dir: O_TMPFILE, or where the file system
 * has none (overlayfs before Linux 6.6, some network file systems) a
 * named file unlinked at once. -1 if neither can be made. */
static int scratch_file(const char *dir) {
  int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
    return fd;
  char path[PM_UFS_URI_MAX];
  if (snprintf(path, sizeof path, "%s/.pm-whole-XXXXXX", dir) >=
      (int)sizeof path)
    return -1;
  fd = mkostemp(path, O_CLOEXEC);
  if (fd >= 0)
    unlink(path);
  return fd;
}

/* A slot for a new copy: a free one, else the kept copy read longest ago
 * that nobody reads; NULL if all are busy. With the lock. */
static pm_http_whole *take_slot_locked(pm_http_wholes *w) {
  pm_http_whole *pick = NULL;
  for (int i = 0; i < PM_HTTP_WHOLE_SLOTS; i++) {
    pm_http_whole *s = &w->slots[i];
    if (!s->uri)
      return s;
    if ((s->fd >= 0 || s->gave_up) && !s->users &&
        (!pick || s->used_ns < pick->used_ns))
      pick = s;
  }
  if (pick)
    slot_free(pick);
  return pick;
}

int pm__http_whole_spill_open(void *arg) {
  pm_http_whole_spill *spill = arg;
  pm_http_wholes *w = spill->set;
  if (!w->ready || !w->dir || spill->st->size > PM_HTTP_WHOLE_MAX)
    return -1;
  int fd = -1;
  pthread_mutex_lock(&w->lock);
  drop_idle_locked(w, pm__now_ns());
  pm_http_whole *known = find_locked(w, spill->uri, spill->st);
  spill->elsewhere = known && !known->gave_up;
  pm_http_whole *s = known ? NULL /* kept, being written, or given up */
                           : take_slot_locked(w);
  char *uri = s ? strdup(spill->uri) : NULL;
  if (uri)
    fd = scratch_file(w->dir);
  if (fd >= 0) {
    *s = (pm_http_whole){.uri = uri, .size = spill->st->size, .fd = -1,
                         .users = 1, .used_ns = pm__now_ns()};
    memcpy(s->version, spill->st->version, sizeof s->version);
    spill->slot = s;
  } else {
    free(uri);
  }
  pthread_mutex_unlock(&w->lock);
  return fd;
}

void pm__http_whole_spill_done(pm_http_whole_spill *spill, int fd,
                               pm_http_whole_end end) {
  pm_http_wholes *w = spill->set;
  pm_http_whole *s = spill->slot;
  if (!s)
    return;
  bool whole = end == PM_HTTP_WHOLE_KEPT;
  pthread_mutex_lock(&w->lock);
  s->users--;
  s->used_ns = pm__now_ns();
  if (whole) {
    s->fd = fd;
  } else if (end == PM_HTTP_WHOLE_CUT_SHORT) {
    s->gave_up = true; /* the caller keeps fd */
  } else {
    slot_free(s); /* its fd is still -1: the caller keeps fd */
  }
  pthread_cond_broadcast(&w->changed);
  pthread_mutex_unlock(&w->lock);
  spill->slot = NULL;
  if (whole)
    PM_LOG(PM_LOG_INFO, "http",
           "%s: the server ignores Range: the object (%llu bytes) is kept "
           "whole in a scratch file while its pages are read",
           spill->uri, (unsigned long long)spill->st->size);
}
