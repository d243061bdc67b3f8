/*
 * core/disk_tier_write.c - putting a page into the disk tier. Admission and
 * evictions happen under the tier's lock, and reserve the room and an
 * invisible index entry; the file is then written without the lock to a
 * uniquely named file in <dir>/tmp (fsynced if durable) and renamed into
 * pages/, so that a crash never leaves a visible partial page. A failed
 * write (a full disk above all) removes its tmp file and gives the room
 * back: nothing partial or corrupt stays behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "disk_tier_int.h"

/* A failed file operation as a pm_err: a full disk (or quota) is
 * PM_ENOSPC, anything else PM_EIO. */
static int file_error(pm_disk_tier *tier, const char *what, const char *name,
                      int e) {
  int code = (e == ENOSPC || e == EDQUOT) ? PM_ENOSPC : PM_EIO;
  return pm__errf(code, "%s/%s: %s failed: %s", tier->dir, name, what,
                  strerror(e));
}

static int writev_all(int fd, struct iovec *iov, int count) {
  while (count > 0) {
    ssize_t n = writev(fd, iov, count);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return errno;
    if (n == 0)
      return EIO;
    while (count > 0 && (size_t)n >= iov->iov_len) {
      n -= (ssize_t)iov->iov_len;
      iov++;
      count--;
    }
    if (count > 0) {
      iov->iov_base = (char *)iov->iov_base + n;
      iov->iov_len -= (size_t)n;
    }
  }
  return 0;
}

/* Header and data to a new tmp file, fsynced if durable. */
static int write_tmp(pm_disk_tier *tier, const char *tmp_name,
                     const uint8_t *block, const void *data, size_t length) {
  char name[96];
  snprintf(name, sizeof name, "tmp/%s", tmp_name);
  int fd = openat(tier->tmp_fd, tmp_name,
                  O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    return file_error(tier, "create", name, errno);
  struct iovec iov[2] = {{(void *)block, PM_PAGE_HEADER_SIZE},
                         {(void *)data, length}};
  int e = writev_all(fd, iov, 2);
  if (e == 0 && tier->durable && fdatasync(fd) != 0)
    e = errno;
  if (close(fd) != 0 && e == 0)
    e = errno;
  return e ? file_error(tier, "write", name, e) : 0;
}

static void sync_bucket(pm_disk_tier *tier, const char *path) {
  char bucket[3] = {path[0], path[1], '\0'};
  int fd = openat(tier->pages_fd, bucket, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

/* Rename the tmp file to pages/ab/<id>.pg, creating pages/ab if needed. */
static int publish(pm_disk_tier *tier, const char *tmp_name,
                   const char *path) {
  if (renameat(tier->tmp_fd, tmp_name, tier->pages_fd, path) != 0) {
    char bucket[3] = {path[0], path[1], '\0'};
    if (errno != ENOENT ||
        (mkdirat(tier->pages_fd, bucket, 0755) != 0 && errno != EEXIST) ||
        renameat(tier->tmp_fd, tmp_name, tier->pages_fd, path) != 0) {
      char name[PM_PAGE_PATH_MAX + 8];
      snprintf(name, sizeof name, "pages/%s", path);
      return file_error(tier, "rename", name, errno);
    }
  }
  if (tier->durable)
    sync_bucket(tier, path);
  return 0;
}

static int write_page_file(pm_disk_tier *tier, const pm_page_header *header,
                           const uint8_t *block, const void *data) {
  char tmp_name[64], path[PM_PAGE_PATH_MAX];
  unsigned long long serial = atomic_fetch_add(&tier->tmp_counter, 1);
  snprintf(tmp_name, sizeof tmp_name, "%ld-%016llx.tmp", (long)getpid(),
           serial);
  pm__page_path(&header->id, path);
  int rc = write_tmp(tier, tmp_name, block, data, header->data_length);
  if (rc == 0)
    rc = publish(tier, tmp_name, path);
  if (rc < 0)
    unlinkat(tier->tmp_fd, tmp_name, 0);
  return rc;
}

/* Admit the page and enter it, invisible, in the index with its room
 * charged. Returns 0, 1 (declined), PM_EEXIST, PM_ENOMEM. */
static int reserve(pm_disk_tier *tier, pm_disk_page *page, uint64_t tick) {
  pm_disk_page *doomed = NULL;
  int rc = 0;
  pthread_mutex_lock(&tier->lock);
  if (pm__pagemap_get(&tier->map, &page->node.id)) {
    rc = PM_EEXIST;
  } else if (!pm__evict_admit(&tier->ev, &page->node.id, page->node.length,
                              tick)) {
    rc = 1;
  } else if ((rc = pm__pagemap_put(&tier->map, &page->node.id, page)) ==
             0) {
    page->in_index = true;
    pm__disk_evict_locked(tier, page->node.length, &doomed);
    pm__evict_charge(&tier->ev, page->node.length);
  }
  pthread_mutex_unlock(&tier->lock);
  pm__disk_bury(tier, doomed);
  return rc;
}

/* Make the written page visible, or give its room back. */
static void finish(pm_disk_tier *tier, pm_disk_page *page, bool written,
                   uint64_t tick) {
  pthread_mutex_lock(&tier->lock);
  if (written) {
    page->ready = true;
    page->verified = true; /* its checksum was computed from these bytes */
    pm__evict_link(&tier->ev, &page->node, tick);
  } else {
    pm__pagemap_remove(&tier->map, &page->node.id);
    pm__evict_uncharge(&tier->ev, page->node.length);
    page->in_index = false;
  }
  pthread_mutex_unlock(&tier->lock);
}

int pm__disk_tier_put(pm_disk_tier *tier, const pm_page_id *id,
                      const char *uri, const void *data, size_t length,
                      uint64_t tick) {
  int rc;
  pm_disk_page *page = NULL;
  pm_page_header *header = malloc(sizeof *header);
  uint8_t *block = malloc(PM_PAGE_HEADER_SIZE);
  if (!header || !block) {
    rc = pm__errf(PM_ENOMEM, "disk tier: out of memory");
    goto out;
  }
  pm__page_header_init(header, id, uri, data, length);
  pm__page_header_encode(header, block);
  page = pm__disk_page_new(id, header->uri,
                           header->flags & PM_PAGE_URI_TRUNCATED, length,
                           &header->data_sum);
  if (!page) {
    rc = pm__errf(PM_ENOMEM, "disk tier: out of memory");
    goto out;
  }
  rc = reserve(tier, page, tick);
  if (rc != 0)
    goto out;
  rc = write_page_file(tier, header, block, data);
  finish(tier, page, rc == 0, tick);
  if (rc == 0)
    page = NULL; /* the index owns it now */
out:
  if (page) {
    free(page->uri);
    free(page);
  }
  free(header);
  free(block);
  return rc;
}
