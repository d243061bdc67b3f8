/*
 * core/node_landing.c - the node peer's side of the landing areas
 * (core/landing.c): the memfd an attached process passes with a fetch is
 * kept (a duplicate descriptor) once, and shared by all the connections of
 * that process (found again by the memfd's device and inode), for as long
 * as one of them uses it. Pages are written into it with pwrite, not
 * through a mapping: a slot written for the first time gets its memory
 * from the kernel without a page fault per 4 KiB (filling 1 MiB of fresh
 * shared memory through a mapping cost ~720 µs here, pwrite ~390 µs; a
 * slot used before costs a copy either way). Only a memfd is accepted (a
 * descriptor of any other file would have the node write pages into it;
 * a memfd is told from other tmpfs files by its seals, see below),
 * of at most PM_NODE_LANDING_MAX bytes; the node writes a page into a slot
 * only within the area's size, as fstat gives it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node_int.h"

struct pm_node_landing {
  pm_node_landing *next;
  dev_t dev;
  ino_t ino;
  int fd;
  uint64_t size;
  unsigned refs;
};

int pm__node_landings_init(pm_node_landings *set) {
  set->head = NULL;
  return pthread_mutex_init(&set->mutex, NULL) == 0
             ? 0
             : pm__errf(PM_ENOMEM, "cannot create a mutex");
}

void pm__node_landings_destroy(pm_node_landings *set) {
  while (set->head) {
    pm_node_landing *l = set->head;
    set->head = l->next;
    close(l->fd);
    free(l);
  }
  pthread_mutex_destroy(&set->mutex);
}

static pm_node_landing *find_locked(pm_node_landings *set,
                                    const struct stat *st) {
  for (pm_node_landing *l = set->head; l; l = l->next)
    if (l->dev == st->st_dev && l->ino == st->st_ino)
      return l;
  return NULL;
}

int pm__node_landing_get(pm_node_landings *set, int fd,
                         pm_node_landing **out) {
  /* A memfd made to take seals (MFD_ALLOW_SEALING, as landing.c makes
   * it) is the only file with F_SEAL_SEAL unset: F_GET_SEALS also answers
   * for any other tmpfs or hugetlbfs file (a file in a tmpfs /tmp), with
   * F_SEAL_SEAL set. */
  int seals = fcntl(fd, F_GET_SEALS);
  struct stat st;
  if (seals < 0 || (seals & F_SEAL_SEAL) || fstat(fd, &st) != 0 ||
      !S_ISREG(st.st_mode) || st.st_size <= 0 ||
      (uint64_t)st.st_size > PM_NODE_LANDING_MAX)
    return pm__errf(PM_EPROTO, "landing area: not a memfd of 1 to %llu "
                    "bytes", (unsigned long long)PM_NODE_LANDING_MAX);
  pthread_mutex_lock(&set->mutex);
  pm_node_landing *l = find_locked(set, &st);
  if (l) {
    l->refs++;
    pthread_mutex_unlock(&set->mutex);
    *out = l;
    return 0;
  }
  pthread_mutex_unlock(&set->mutex);
  int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own < 0)
    return pm__errf(pm__err_from_errno(errno), "landing area: dup: %s",
                    strerror(errno));
  l = calloc(1, sizeof *l);
  if (!l) {
    close(own);
    return pm__errf(PM_ENOMEM, "out of memory");
  }
  *l = (pm_node_landing){.dev = st.st_dev, .ino = st.st_ino, .fd = own,
                         .size = (uint64_t)st.st_size, .refs = 1};
  pthread_mutex_lock(&set->mutex);
  pm_node_landing *raced = find_locked(set, &st);
  if (raced) {
    raced->refs++;
  } else {
    l->next = set->head;
    set->head = l;
  }
  pthread_mutex_unlock(&set->mutex);
  if (raced) {
    close(own);
    free(l);
    l = raced;
  }
  *out = l;
  return 0;
}

bool pm__node_landing_is(const pm_node_landing *l, int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 && l->dev == st.st_dev && l->ino == st.st_ino;
}

void pm__node_landing_put(pm_node_landings *set, pm_node_landing *l) {
  if (!l)
    return;
  pthread_mutex_lock(&set->mutex);
  bool last = --l->refs == 0;
  if (last)
    for (pm_node_landing **p = &set->head; *p; p = &(*p)->next)
      if (*p == l) {
        *p = l->next;
        break;
      }
  pthread_mutex_unlock(&set->mutex);
  if (last) {
    close(l->fd);
    free(l);
  }
}

int64_t pm__node_landing_offset(const pm_node_landing *l, uint32_t slot,
                                uint32_t slot_size) {
  uint64_t start = (uint64_t)slot * slot_size;
  if (slot_size == 0 || start + slot_size > l->size)
    return -1;
  return (int64_t)start;
}

int pm__node_landing_write(pm_node_landing *l, uint64_t offset,
                           const void *data, size_t length) {
  int rc = pm__pwrite_all(l->fd, data, length, offset);
  if (rc)
    return pm__errf(PM_EIO, "landing area: pwrite: %s",
                    rc == PM_EIO ? "no progress" : strerror(errno));
  return 0;
}
