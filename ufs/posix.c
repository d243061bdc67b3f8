/*
 * ufs/posix.c - the POSIX origin: "file://" URIs and plain paths on a local
 * or network file system. An object's version is "<mtime_ns>-<size>"; a
 * read re-checks both before and after its pread, so bytes of a file that
 * changed under the reader are never returned as the old version. Listing
 * walks directories with opendir/readdir; entries that cannot be stat'ed,
 * and files that are neither regular files nor directories, are skipped.
 * Recursive walks do not follow symbolic links to directories (so a link
 * cycle cannot trap them) and stop at a depth of 256.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ufs/ufs_priv.h"

#define POSIX_MAX_DEPTH 256
#define FILE_PREFIX "file://"

typedef struct posix_ufs {
  pm_ufs base;
} posix_ufs;

/* The path of a normalised URI ("file:///a" -> "/a"). */
static const char *uri_path(const char *uri) {
  size_t n = strlen(FILE_PREFIX);
  return strncmp(uri, FILE_PREFIX, n) == 0 ? uri + n : uri;
}

static int64_t mtime_ns_of(const struct stat *st) {
  return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

static void version_of(const struct stat *st, char out[PM_VERSION_MAX]) {
  snprintf(out, PM_VERSION_MAX, "%" PRId64 "-%" PRIu64, mtime_ns_of(st),
           (uint64_t)st->st_size);
}

static int errno_err(const char *uri, const char *what, int e) {
  return pm__errf(pm__err_from_errno(e), "%s: %s: %s", uri, what, strerror(e));
}

/* Regular files are objects; anything else is refused with a reason. */
static int check_regular(const char *uri, const struct stat *st) {
  if (S_ISREG(st->st_mode))
    return 0;
  if (S_ISDIR(st->st_mode))
    return pm__errf(PM_ENOENT, "%s: is a directory, not a file", uri);
  return pm__errf(PM_ENOTSUP, "%s: not a regular file", uri);
}

static int posix_stat(pm_ufs *self, const char *uri, pm_object_stat *out) {
  struct stat st;
  pm__ufs_count(self, 1, 0);
  if (stat(uri_path(uri), &st) != 0)
    return errno_err(uri, "stat", errno);
  int rc = check_regular(uri, &st);
  if (rc)
    return rc;
  out->size = (uint64_t)st.st_size;
  out->mtime_ns = mtime_ns_of(&st);
  version_of(&st, out->version);
  return 0;
}

/* Is the open file still the version the caller expects? */
static int check_version(int fd, const char *uri,
                         const pm_object_stat *expect) {
  struct stat st;
  if (fstat(fd, &st) != 0)
    return errno_err(uri, "fstat", errno);
  char now[PM_VERSION_MAX];
  version_of(&st, now);
  if ((uint64_t)st.st_size != expect->size || strcmp(now, expect->version))
    return pm__errf(PM_ECHANGED,
                    "%s: changed since it was looked up "
                    "(version %s, now %s)",
                    uri, expect->version, now);
  return 0;
}

static ssize_t posix_read(pm_ufs *self, const char *uri,
                          const pm_object_stat *expect, uint64_t offset,
                          void *buf, size_t length) {
  pm__ufs_count(self, 1, 0);
  int fd = open(uri_path(uri), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno_err(uri, "open", errno);
  ssize_t rc = check_version(fd, uri, expect);
  if (rc)
    goto out;
  ssize_t got = pm__pread_full(fd, buf, length, offset);
  if (got < 0) {
    rc = pm__errf((int)got, "%s: read at %" PRIu64 ": %s", uri, offset,
                  pm_strerror((int)got));
    goto out;
  }
  pm__ufs_count(self, 0, (uint64_t)got);
  rc = check_version(fd, uri, expect); /* changed while we read? */
  if (rc)
    goto out;
  if ((size_t)got != length) {
    rc = pm__errf(PM_EIO, "%s: short read at %" PRIu64 ": %zd of %zu bytes",
                  uri, offset, got, length);
    goto out;
  }
  rc = got;
out:
  close(fd);
  return rc;
}

/* ---- listing ------------------------------------------------------------- */

typedef struct walk {
  pm_ufs *self;
  unsigned flags;
  pm_ufs_list_cb cb;
  void *arg;
  char uri[PM_UFS_URI_MAX]; /* "file://" + the path being visited */
  size_t len;
} walk;

static int walk_dir(walk *w, int depth);

static int emit(walk *w, const struct stat *st, int is_dir) {
  char version[PM_VERSION_MAX];
  pm_list_entry entry = {.uri = w->uri, .is_dir = is_dir};
  if (is_dir) {
    w->uri[w->len] = '/'; /* there is room: see visit() */
    w->uri[w->len + 1] = '\0';
  } else {
    version_of(st, version);
    entry.size = (uint64_t)st->st_size;
    entry.mtime_ns = mtime_ns_of(st);
    entry.version = version;
  }
  int rc = w->cb(w->arg, &entry);
  w->uri[w->len] = '\0';
  return rc;
}

/* Visit one directory entry; w->uri holds the directory. */
static int visit(walk *w, const char *name, int depth) {
  size_t name_len = strlen(name), saved = w->len;
  if (w->len + 1 + name_len + 2 > sizeof w->uri)
    return 0; /* too long to name: skip */
  w->uri[w->len++] = '/';
  memcpy(w->uri + w->len, name, name_len + 1);
  w->len += name_len;
  const char *path = uri_path(w->uri);
  struct stat st, lst;
  int rc = 0;
  if (stat(path, &st) != 0)
    goto out; /* dangling link, vanished, no permission: skip */
  if (S_ISREG(st.st_mode)) {
    rc = emit(w, &st, 0);
  } else if (S_ISDIR(st.st_mode)) {
    if (!(w->flags & PM_LIST_RECURSIVE))
      rc = emit(w, &st, 1);
    else if (depth < POSIX_MAX_DEPTH && lstat(path, &lst) == 0 &&
             !S_ISLNK(lst.st_mode))
      rc = walk_dir(w, depth + 1);
  }
out:
  w->len = saved;
  w->uri[w->len] = '\0';
  return rc;
}

static int walk_dir(walk *w, int depth) {
  DIR *dir = opendir(uri_path(w->uri)[0] ? uri_path(w->uri) : "/");
  pm__ufs_count(w->self, 1, 0);
  if (!dir) {
    if (depth > 0)
      return 0; /* an unreadable subdirectory is skipped */
    int e = errno;
    return pm__errf(pm__err_from_errno(e), "%s/: cannot list: %s", w->uri,
                    strerror(e));
  }
  int rc = 0;
  struct dirent *de;
  while (rc == 0 && (de = readdir(dir)) != NULL) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
      continue;
    rc = visit(w, de->d_name, depth);
  }
  closedir(dir);
  return rc;
}

static int posix_list(pm_ufs *self, const char *uri, unsigned flags,
                      pm_ufs_list_cb cb, void *arg) {
  walk *w = malloc(sizeof *w);
  if (!w)
    return pm__errf(PM_ENOMEM, "%s: out of memory", uri);
  w->self = self;
  w->flags = flags;
  w->cb = cb;
  w->arg = arg;
  w->len = strlen(uri);
  if (w->len >= sizeof w->uri) {
    free(w);
    return pm__errf(PM_ETOOBIG, "%.256s...: path too long", uri);
  }
  memcpy(w->uri, uri, w->len + 1);
  size_t path_at = (size_t)(uri_path(uri) - uri);
  while (w->len > path_at && w->uri[w->len - 1] == '/')
    w->uri[--w->len] = '\0'; /* "file:///a/b/" -> "file:///a/b" */
  int rc = walk_dir(w, 0);
  free(w);
  return rc;
}

static const char *const posix_schemes[] = {"file", "", NULL};

const pm_ufs_methods pm_posix_methods = {
    .size = sizeof(pm_ufs_methods),
    .name = "posix",
    .schemes = posix_schemes,
    .object_size = sizeof(posix_ufs),
    .init = NULL,
    .fini = NULL,
    .stat = posix_stat,
    .read = posix_read,
    .list = posix_list,
};
