/*
 * core/disk_tier_scan.c - the disk tier at open: creating <dir>/pages and
 * <dir>/tmp, proving the directory writable, removing tmp files that a
 * dead or long-gone writer left behind, and rebuilding the index from the
 * page files. A page file is kept only if its header decodes, names the
 * page of its file name, and its size is the header's plus the data
 * length; anything else in pages/ is a torn or foreign file and is
 * removed. Pages enter the recency list oldest file first, so that a
 * restart evicts in about the order the last run would have. Their data
 * checksums are checked on first read, not here: open stays fast.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk_tier_int.h"

/* A tmp file this much older than now is abandoned, whoever wrote it. */
#define TMP_ABANDONED_NS (60ll * 1000000000ll)

typedef struct loaded_page {
  pm_disk_page *page;
  int64_t mtime_ns;
} loaded_page;

typedef struct scan_state {
  pm_disk_tier *tier;
  loaded_page *pages;
  size_t count, room;
  uint8_t *block; /* a header's worth of bytes */
  uint64_t removed;
} scan_state;

static int not_writable(const char *dir, const char *cause) {
  return pm__errf(PM_EACCES, "%s: cache directory is not writable: %s", dir,
                  cause);
}

static int open_subdir(pm_disk_tier *tier, const char *name, int *fd) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", tier->dir, name);
  int rc = pm__private_subdir(tier->dir, path);
  if (rc == PM_ENOENT || rc == PM_EACCES || rc == PM_EEXIST)
    return not_writable(tier->dir, pm__errmsg());
  if (rc < 0)
    return rc;
  *fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (*fd < 0)
    return not_writable(tier->dir, strerror(errno));
  return 0;
}

/* Create and remove a file in tmp/: mkdir succeeding proves little on a
 * read-only mount, and root passes every permission check. */
static int probe_writable(pm_disk_tier *tier) {
  char name[64];
  snprintf(name, sizeof name, "%ld-probe-%llu.tmp", (long)getpid(),
           (unsigned long long)atomic_fetch_add(&tier->tmp_counter, 1));
  int fd = openat(tier->tmp_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                  0644);
  if (fd < 0) {
    int e = errno;
    if (e == ENOSPC || e == EDQUOT)
      return 0; /* writable, only full: puts will say so */
    return not_writable(tier->dir, strerror(e));
  }
  close(fd);
  unlinkat(tier->tmp_fd, name, 0);
  return 0;
}

static int64_t mtime_ns(const struct stat *st) {
  return (int64_t)st->st_mtim.tv_sec * 1000000000ll + st->st_mtim.tv_nsec;
}

/* Is this tmp file abandoned: old, or written by a process now dead? */
static bool tmp_abandoned(const char *name, const struct stat *st) {
  if (pm__wall_ns() - mtime_ns(st) > TMP_ABANDONED_NS)
    return true;
  char *end;
  long pid = strtol(name, &end, 10);
  if (end == name || *end != '-' || pid <= 0)
    return false; /* not ours by name: wait until it is old */
  return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

static void clean_tmp(pm_disk_tier *tier) {
  int fd = dup(tier->tmp_fd);
  DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
  if (!dir) {
    if (fd >= 0)
      close(fd);
    return;
  }
  struct dirent *entry;
  while ((entry = readdir(dir))) {
    struct stat st;
    if (fstatat(tier->tmp_fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        S_ISDIR(st.st_mode) || !tmp_abandoned(entry->d_name, &st))
      continue;
    if (unlinkat(tier->tmp_fd, entry->d_name, 0) == 0)
      PM_LOG(PM_LOG_INFO, "store", "%s/tmp/%s: removed an abandoned file",
             tier->dir, entry->d_name);
  }
  closedir(dir);
}

int pm__disk_tier_prepare(pm_disk_tier *tier) {
  int rc = open_subdir(tier, "pages", &tier->pages_fd);
  if (rc == 0)
    rc = open_subdir(tier, "tmp", &tier->tmp_fd);
  if (rc == 0)
    rc = probe_writable(tier);
  if (rc == 0)
    clean_tmp(tier);
  return rc;
}

static int remember(scan_state *scan, pm_disk_page *page, int64_t mtime) {
  if (scan->count == scan->room) {
    size_t room = scan->room ? scan->room * 2 : 256;
    loaded_page *bigger = realloc(scan->pages, room * sizeof *bigger);
    if (!bigger)
      return pm__errf(PM_ENOMEM, "%s: out of memory scanning pages",
                      scan->tier->dir);
    scan->pages = bigger;
    scan->room = room;
  }
  scan->pages[scan->count].page = page;
  scan->pages[scan->count].mtime_ns = mtime;
  scan->count++;
  return 0;
}

/* Validate an open page file; on success *header describes it. Returns
 * 0, or PM_ECORRUPT with the reason as detail. */
static int check_page_file(scan_state *scan, int fd, const char *name,
                           pm_page_header *header, struct stat *st) {
  pm_page_id named;
  if (pm__page_name_parse(name, &named) != 0)
    return pm__errf(PM_ECORRUPT, "not a page file name");
  if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode))
    return pm__errf(PM_ECORRUPT, "not a regular file");
  ssize_t n = pm__pread_full(fd, scan->block, PM_PAGE_HEADER_SIZE, 0);
  int rc = pm__page_header_decode(scan->block, n < 0 ? 0 : (size_t)n, header);
  if (rc < 0)
    return rc;
  if (!pm__page_id_eq(&header->id, &named))
    return pm__errf(PM_ECORRUPT, "header names another page");
  if ((uint64_t)st->st_size != PM_PAGE_HEADER_SIZE + header->data_length)
    return pm__errf(PM_ECORRUPT, "size %lld, header says %llu",
                    (long long)st->st_size,
                    (unsigned long long)(PM_PAGE_HEADER_SIZE +
                                         header->data_length));
  return 0;
}

/* Load one file of pages/<bucket>/, or remove it. ENOMEM is fatal. */
static int scan_file(scan_state *scan, int bucket_fd, const char *bucket,
                     const char *name, pm_page_header *header) {
  struct stat st;
  int fd = openat(bucket_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0 && errno == ENOENT)
    return 0; /* another process removed it meanwhile */
  int rc = fd < 0 ? pm__errf(PM_ECORRUPT, "cannot open: %s", strerror(errno))
                  : check_page_file(scan, fd, name, header, &st);
  if (fd >= 0)
    close(fd);
  if (rc == 0 && strncmp(name, bucket, 2) != 0)
    rc = pm__errf(PM_ECORRUPT, "file is in the wrong directory");
  if (rc < 0) {
    PM_LOG(PM_LOG_WARN, "store", "%s/pages/%s/%s: %s; removed",
           scan->tier->dir, bucket, name, pm__errmsg());
    unlinkat(bucket_fd, name, 0);
    scan->removed++;
    return 0;
  }
  pm_disk_page *page = pm__disk_page_new(
      &header->id, header->uri, header->flags & PM_PAGE_URI_TRUNCATED,
      header->data_length, &header->data_sum);
  if (!page || (rc = remember(scan, page, mtime_ns(&st))) < 0) {
    free(page ? page->uri : NULL);
    free(page);
    return pm__errf(PM_ENOMEM, "%s: out of memory scanning pages",
                    scan->tier->dir);
  }
  return 0;
}

static int scan_bucket(scan_state *scan, const char *bucket) {
  int fd = openat(scan->tier->pages_fd, bucket,
                  O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
  if (!dir) {
    if (fd >= 0)
      close(fd);
    return pm__errf(PM_EIO, "%s/pages/%s: cannot read: %s", scan->tier->dir,
                    bucket, strerror(errno));
  }
  int rc = 0;
  pm_page_header *header = malloc(sizeof *header);
  if (!header)
    rc = pm__errf(PM_ENOMEM, "%s: out of memory scanning", scan->tier->dir);
  struct dirent *entry;
  while (rc == 0 && (entry = readdir(dir)))
    if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0)
      rc = scan_file(scan, dirfd(dir), bucket, entry->d_name, header);
  free(header);
  closedir(dir);
  return rc;
}

static bool is_bucket_name(const char *name) {
  static const char hex[] = "0123456789abcdef";
  return strlen(name) == 2 && strchr(hex, name[0]) && strchr(hex, name[1]);
}

/* One entry of pages/: a bucket to scan, a stray file to remove. */
static int scan_top_entry(scan_state *scan, const char *name) {
  struct stat st;
  int pages_fd = scan->tier->pages_fd;
  if (fstatat(pages_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
    return 0;
  if (S_ISDIR(st.st_mode) && is_bucket_name(name))
    return scan_bucket(scan, name);
  if (S_ISDIR(st.st_mode))
    return 0; /* not ours to remove */
  PM_LOG(PM_LOG_WARN, "store", "%s/pages/%s: stray file; removed",
         scan->tier->dir, name);
  unlinkat(pages_fd, name, 0);
  scan->removed++;
  return 0;
}

static int scan_pages_dir(scan_state *scan) {
  int fd = dup(scan->tier->pages_fd);
  DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
  if (!dir) {
    if (fd >= 0)
      close(fd);
    return pm__errf(PM_EIO, "%s/pages: cannot read: %s", scan->tier->dir,
                    strerror(errno));
  }
  int rc = 0;
  struct dirent *entry;
  while (rc == 0 && (entry = readdir(dir)))
    if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0)
      rc = scan_top_entry(scan, entry->d_name);
  closedir(dir);
  return rc;
}

static int by_mtime(const void *a, const void *b) {
  int64_t x = ((const loaded_page *)a)->mtime_ns;
  int64_t y = ((const loaded_page *)b)->mtime_ns;
  return (x > y) - (x < y);
}

/* Enter the loaded pages, oldest first, then evict down to capacity. */
static int index_loaded(scan_state *scan) {
  pm_disk_tier *tier = scan->tier;
  pm_disk_page *doomed = NULL;
  int rc = 0;
  if (scan->count > 1)
    qsort(scan->pages, scan->count, sizeof *scan->pages, by_mtime);
  pthread_mutex_lock(&tier->lock);
  for (size_t i = 0; i < scan->count; i++) {
    pm_disk_page *page = scan->pages[i].page;
    if (rc == 0 && (rc = pm__pagemap_put(&tier->map, &page->node.id, page)) ==
                       0) {
      page->ready = page->in_index = true;
      pm__evict_link(&tier->ev, &page->node, 0);
      pm__evict_charge(&tier->ev, page->node.length);
    } else {
      free(page->uri);
      free(page);
    }
  }
  pm__disk_evict_locked(tier, 0, &doomed);
  pthread_mutex_unlock(&tier->lock);
  pm__disk_bury(tier, doomed);
  return rc;
}

int pm__disk_tier_scan(pm_disk_tier *tier) {
  scan_state scan = {.tier = tier};
  int rc = 0;
  scan.block = malloc(PM_PAGE_HEADER_SIZE);
  if (!scan.block) {
    rc = pm__errf(PM_ENOMEM, "%s: out of memory scanning", tier->dir);
    goto out;
  }
  rc = scan_pages_dir(&scan);
  if (rc == 0) {
    rc = index_loaded(&scan);
    scan.count = 0; /* the index owns them, or they were freed */
  }
  if (rc == 0)
    PM_LOG(PM_LOG_INFO, "store", "%s: %llu pages loaded, %llu removed",
           tier->dir, (unsigned long long)tier->ev.linked,
           (unsigned long long)scan.removed);
out:
  for (size_t i = 0; i < scan.count; i++) {
    free(scan.pages[i].page->uri);
    free(scan.pages[i].page);
  }
  free(scan.pages);
  free(scan.block);
  return rc;
}
