/*
 * bindings/fuse/pagemesh_mount.c - `pagemesh-mount`: a read-only POSIX
 * view of an origin prefix (s3://bucket/prefix, a Hugging Face repo, a
 * local directory...) whose reads go through the cache, for loaders that
 * only know files (torchvision's ImageFolder, shell tools, C++ readers).
 *
 * The mount opens pagemesh on its cache directory like any other process:
 * it attaches to the node peer (pagemeshd) if one runs there, else it is
 * the node peer itself. Directories are the origin's prefixes (pm_list);
 * files its objects (pm_stat, pm_read). Nothing is ever written: the mount
 * is read-only ("ro"), and opening a file for writing is EROFS.
 *
 * The kernel keeps attributes and directory entries for the metadata TTL
 * (--meta-ttl, default 60 s: as long as pagemesh itself trusts them) and
 * keeps a file's pages in its page cache while the object's version (its
 * ETag) stays the one they were read from (keep_cache, decided at each
 * open), so a second epoch over a mount can be served by the kernel
 * without a call into pagemesh at all. An object and a prefix of the same
 * name: the object is shown.
 *
 * It runs in the foreground until unmounted (fusermount3 -u MOUNTPOINT)
 * or stopped with SIGINT / SIGTERM (it then unmounts itself).
 * It uses the public header only, like any other user of the library.
 */
#define FUSE_USE_VERSION 31
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "../cli/common.h"
#include "pagemesh.h"

static const char usage[] =
    "usage: pagemesh-mount [options] ORIGIN_URI MOUNTPOINT\n"
    "\n"
    "Mount the objects under ORIGIN_URI (s3://BUCKET/PREFIX, hf://..., a\n"
    "local directory...) read-only at MOUNTPOINT; reads go through the\n"
    "cache. Runs until `fusermount3 -u MOUNTPOINT`, SIGINT or SIGTERM.\n"
    "\n"
    "options:\n" CLI_COMMON_USAGE
    "  -o OPTIONS            more FUSE mount options (e.g. allow_other)\n"
    "  -d                    FUSE debug output\n";

/* The version of each file whose pages the kernel may hold: what a later
 * open compares with (a bounded table, emptied when full; a file not in
 * it only costs the kernel its cached pages). */
#define SEEN_SLOTS 16384

typedef struct seen_file {
  uint64_t hash; /* of the path; 0: free */
  char version[PM_VERSION_MAX];
} seen_file;

typedef struct mount_state {
  pm_peer *peer;
  char *root;   /* the origin prefix, ending in '/' */
  double ttl_s; /* attribute and entry timeout */
  uint32_t page_size;
  pthread_mutex_t seen_lock;
  seen_file *seen; /* SEEN_SLOTS, open addressing */
  size_t seen_count;
} mount_state;

static mount_state *state(void) {
  return fuse_get_context()->private_data;
}

/* A pagemesh error as an errno for the kernel (negative). */
static int errno_of(int err) {
  switch (err) {
  case PM_ENOENT:
    return -ENOENT;
  case PM_EACCES:
  case PM_EAUTH:
    return -EACCES;
  case PM_EINVAL:
  case PM_EBADURI:
  case PM_ERANGE:
    return -EINVAL;
  case PM_ENOMEM:
    return -ENOMEM;
  case PM_ETIMEDOUT:
    return -ETIMEDOUT;
  case PM_ENOTSUP:
    return -ENOTSUP;
  case PM_ETOOBIG: /* a name longer than a URI may be */
    return -ENAMETOOLONG;
  case PM_ENOSPC:
    return -ENOSPC;
  case PM_EBUSY:
    return -EBUSY;
  default:
    return -EIO;
  }
}

/* A failed call on `path`: the kernel gets only an errno, so say why on
 * stderr (the cache's detail and its code), except for a plain missing
 * name, which is an answer, not a failure. */
static void report(int err, const char *path) {
  fprintf(stderr, "pagemesh-mount: %s: %s (%s)\n", path,
          pm_peer_errmsg(state()->peer), pm_err_name(err));
}

static int fail(int err, const char *path) {
  if (err != PM_ENOENT)
    report(err, path);
  return errno_of(err);
}

/* The URI of a path below the mount ("/a/b" -> root + "a/b"); NULL when
 * out of memory. `dir`: end it with '/'. */
static char *uri_of(const char *path, bool dir) {
  const mount_state *s = state();
  while (*path == '/')
    path++;
  size_t root_len = strlen(s->root), len = strlen(path);
  char *uri = malloc(root_len + len + 2);
  if (!uri)
    return NULL;
  memcpy(uri, s->root, root_len);
  memcpy(uri + root_len, path, len);
  uri[root_len + len] = '\0';
  if (dir && len > 0 && uri[root_len + len - 1] != '/')
    strcpy(uri + root_len + len, "/");
  return uri;
}

static void file_stat(struct stat *st, uint64_t size, int64_t mtime_ns) {
  memset(st, 0, sizeof *st);
  st->st_mode = S_IFREG | 0444;
  st->st_nlink = 1;
  st->st_size = (off_t)size;
  st->st_blksize = state()->page_size;
  st->st_blocks = (blkcnt_t)((size + 511) / 512);
  /* floored: a time before 1970 keeps tv_nsec in [0, 1e9) */
  int64_t sec = mtime_ns / 1000000000, nsec = mtime_ns % 1000000000;
  if (nsec < 0) {
    sec -= 1;
    nsec += 1000000000;
  }
  st->st_mtim.tv_sec = (time_t)sec;
  st->st_mtim.tv_nsec = (long)nsec;
  st->st_ctim = st->st_atim = st->st_mtim;
}

/* When the mount started: the times of its directories (prefixes have
 * none of their own; 1970 made `ls -l` and make(1) misread them). */
static time_t mounted_at;

static void dir_stat(struct stat *st) {
  memset(st, 0, sizeof *st);
  st->st_mode = S_IFDIR | 0555;
  st->st_nlink = 2;
  st->st_mtime = st->st_ctime = st->st_atime = mounted_at;
}

/* A file if an object has that name, else a directory if anything lies
 * below it, else ENOENT. */
static int fs_getattr(const char *path, struct stat *st,
                      struct fuse_file_info *fi) {
  (void)fi;
  if (strcmp(path, "/") == 0) {
    dir_stat(st);
    return 0;
  }
  char *uri = uri_of(path, false);
  if (!uri)
    return -ENOMEM;
  pm_object_stat os;
  int err = pm_stat(state()->peer, uri, &os);
  free(uri);
  if (err == 0) {
    file_stat(st, os.size, os.mtime_ns);
    return 0;
  }
  if (err != PM_ENOENT)
    return fail(err, path);
  uri = uri_of(path, true);
  if (!uri)
    return -ENOMEM;
  pm_list_entry *entries = NULL;
  size_t count = 0;
  err = pm_list(state()->peer, uri, PM_LIST_FIRST, &entries, &count);
  free(uri);
  pm_list_free(entries, count);
  /* An origin answers PM_ENOENT for a prefix with nothing below it; a
   * listing with no entries is an empty directory (a local one, or an S3
   * "folder" that holds only its marker object). */
  if (err)
    return fail(err, path);
  dir_stat(st);
  return 0;
}

/* The last component of an entry's URI ("s3://b/p/x" or "s3://b/p/d/"),
 * into name; false if there is none or it does not fit. */
static bool entry_name(const char *uri, char *name, size_t size) {
  size_t len = strlen(uri);
  if (len > 0 && uri[len - 1] == '/')
    len--;
  size_t start = len;
  while (start > 0 && uri[start - 1] != '/')
    start--;
  if (len == start || len - start >= size)
    return false;
  memcpy(name, uri + start, len - start);
  name[len - start] = '\0';
  return true;
}

/* Whether the listing (sorted by URI, as pm_list gives it) has an object
 * of the prefix's name ("s3://b/p/a" for "s3://b/p/a/"). They need not
 * be next to each other: "a-1" and "a.txt" sort between them. */
static bool object_of_prefix(const pm_list_entry *entries, size_t count,
                             const char *prefix_uri) {
  size_t n = strlen(prefix_uri);
  char *key = n > 1 ? strndup(prefix_uri, n - 1) : NULL;
  size_t lo = 0, hi = count;
  bool found = false;
  while (key && lo < hi && !found) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(entries[mid].uri, key);
    if (c == 0)
      found = !entries[mid].is_dir;
    else if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  free(key);
  return found;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t fill,
                      off_t offset, struct fuse_file_info *fi,
                      enum fuse_readdir_flags flags) {
  (void)offset, (void)fi, (void)flags;
  char *uri = uri_of(path, true);
  if (!uri)
    return -ENOMEM;
  pm_list_entry *entries = NULL;
  size_t count = 0;
  int err = pm_list(state()->peer, uri, 0, &entries, &count);
  free(uri);
  if (err)
    return fail(err, path);
  fill(buf, ".", NULL, 0, 0);
  fill(buf, "..", NULL, 0, 0);
  for (size_t i = 0; i < count; i++) {
    const pm_list_entry *e = &entries[i];
    char name[1024];
    /* keys "p/./x" or "p/../x" name nothing a path can reach; of an
     * object "a" and a prefix "a/" the object shows, as getattr finds it
     * first */
    if (!entry_name(e->uri, name, sizeof name) || !strcmp(name, ".") ||
        !strcmp(name, "..") ||
        (e->is_dir && object_of_prefix(entries, count, e->uri)))
      continue;
    struct stat st;
    if (e->is_dir)
      dir_stat(&st);
    else
      file_stat(&st, e->size, e->mtime_ns);
    if (fill(buf, name, &st, 0, 0) != 0)
      break;
  }
  pm_list_free(entries, count);
  return 0;
}

static uint64_t path_hash(const char *path) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (const char *p = path; *p; p++)
    h = (h ^ (uint8_t)*p) * 1099511628211ull;
  return h ? h : 1;
}

/* Whether the kernel's cached pages of path (if any) are of version, and
 * note version as the one they will be of from now on. A path whose
 * hash collides only loses its cached pages. */
static bool same_version(mount_state *s, const char *path,
                         const char *version) {
  uint64_t h = path_hash(path);
  pthread_mutex_lock(&s->seen_lock);
  size_t i = h % SEEN_SLOTS;
  while (s->seen[i].hash && s->seen[i].hash != h)
    i = (i + 1) % SEEN_SLOTS;
  bool same = s->seen[i].hash == h && !strcmp(s->seen[i].version, version);
  if (!s->seen[i].hash && s->seen_count + 1 >= SEEN_SLOTS * 3 / 4) {
    memset(s->seen, 0, SEEN_SLOTS * sizeof *s->seen); /* full: start over */
    s->seen_count = 0;
    i = h % SEEN_SLOTS;
  }
  if (!s->seen[i].hash)
    s->seen_count++;
  s->seen[i].hash = h;
  snprintf(s->seen[i].version, sizeof s->seen[i].version, "%s", version);
  pthread_mutex_unlock(&s->seen_lock);
  return same;
}

/* An open file: its object and the version it was opened at. */
typedef struct open_file {
  char *uri;
  char version[PM_VERSION_MAX];
} open_file;

static int fs_open(const char *path, struct fuse_file_info *fi) {
  if ((fi->flags & O_ACCMODE) != O_RDONLY)
    return -EROFS;
  char *uri = uri_of(path, false);
  if (!uri)
    return -ENOMEM;
  pm_object_stat os;
  int err = pm_stat(state()->peer, uri, &os);
  open_file *f = err ? NULL : malloc(sizeof *f);
  if (!err && !f)
    err = PM_ENOMEM;
  if (err) {
    free(uri);
    return fail(err, path);
  }
  f->uri = uri;
  snprintf(f->version, sizeof f->version, "%s", os.version);
  fi->fh = (uint64_t)(uintptr_t)f;
  fi->keep_cache = same_version(state(), path, os.version);
  return 0;
}

/* Every read of an open file comes from the version it was opened at:
 * an object changed (or deleted) since is ESTALE, never a mix. */
static int fs_read(const char *path, char *buf, size_t size, off_t offset,
                   struct fuse_file_info *fi) {
  const open_file *f = (const open_file *)(uintptr_t)fi->fh;
  ssize_t n = pm_read_version(state()->peer, f->uri, f->version,
                              (uint64_t)offset, buf, size);
  if (n == PM_ENOENT || n == PM_ECHANGED) {
    report((int)n, path);
    return -ESTALE;
  }
  return n < 0 ? fail((int)n, path) : (int)n;
}

static int fs_release(const char *path, struct fuse_file_info *fi) {
  (void)path;
  open_file *f = (open_file *)(uintptr_t)fi->fh;
  free(f->uri);
  free(f);
  return 0;
}

/* The cache's disk as the file system's size. */
static int fs_statfs(const char *path, struct statvfs *out) {
  (void)path;
  pm_stats s = {.size = sizeof s};
  int err = pm_peer_stats(state()->peer, &s);
  if (err)
    return fail(err, "statfs");
  memset(out, 0, sizeof *out);
  out->f_bsize = out->f_frsize = state()->page_size;
  out->f_blocks = s.disk_capacity / state()->page_size;
  out->f_bfree = out->f_bavail =
      s.disk_capacity > s.disk_used
          ? (s.disk_capacity - s.disk_used) / state()->page_size
          : 0;
  out->f_namemax = 1024;
  return 0;
}

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg) {
  (void)conn;
  mount_state *s = fuse_get_context()->private_data;
  cfg->attr_timeout = cfg->entry_timeout = s->ttl_s;
  cfg->negative_timeout = s->ttl_s < 1.0 ? s->ttl_s : 1.0;
  cfg->auto_cache = 0; /* fs_open decides, by version (same_version) */
  cfg->kernel_cache = 0;
  return s;
}

static const struct fuse_operations operations = {
    .init = fs_init,
    .getattr = fs_getattr,
    .readdir = fs_readdir,
    .open = fs_open,
    .read = fs_read,
    .release = fs_release,
    .statfs = fs_statfs,
};

/* Mount, serve until unmounted or a stop signal, unmount. In the
 * foreground: the peer's threads, started before, would not survive a
 * daemonising fork. Returns the exit status. */
static int serve(struct fuse_args *args, const char *mountpoint, mount_state *s,
                 const sigset_t *stop_signals) {
  struct fuse *f = fuse_new(args, &operations, sizeof operations, s);
  if (!f)
    return 2; /* libfuse said why (a bad -o option) */
  int rc = 1;
  if (fuse_mount(f, mountpoint) == 0) {
    /* FUSE installs its handlers (end the loop) only over the default
     * action; a library loaded with ours (libfabric's PSM providers pull
     * in libinfinipath) may have put a crash reporter there, which would
     * kill the process and leave the mount behind. */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    struct fuse_session *se = fuse_get_session(f);
    if (fuse_set_signal_handlers(se) == 0) {
      pthread_sigmask(SIG_UNBLOCK, stop_signals, NULL);
      int res = fuse_loop_mt(f, 0);
      /* Unmounted (0), or ended by a stop signal: a normal end. */
      rc = res == 0 || res == SIGINT || res == SIGTERM || res == SIGHUP ? 0 : 1;
      if (rc)
        fprintf(stderr, "pagemesh-mount: the FUSE loop failed (%d)\n", res);
      fuse_remove_signal_handlers(se);
    }
    fuse_unmount(f);
  }
  fuse_destroy(f);
  return rc;
}

/* Refuse at once what would mount only to fail every call: a mount point
 * that is not a directory, an origin that cannot be listed (a bad URI, a
 * missing bucket, wrong keys). An origin with nothing under it is refused
 * too: a mistyped prefix must not look like an empty dataset. */
static int check_start(mount_state *s, const char *mountpoint) {
  struct stat st;
  errno = 0;
  if (stat(mountpoint, &st) != 0 || !S_ISDIR(st.st_mode)) {
    fprintf(stderr, "pagemesh-mount: %s: %s\n", mountpoint,
            errno ? strerror(errno) : "not a directory");
    return 1;
  }
  pm_list_entry *entries = NULL;
  size_t count = 0;
  int err = pm_list(s->peer, s->root, PM_LIST_FIRST, &entries, &count);
  pm_list_free(entries, count);
  if (!err && count == 0) { /* an empty local directory lists, empty */
    fprintf(stderr, "pagemesh-mount: %s: nothing there (an empty "
            "directory or prefix?)\n", s->root);
    return 1;
  }
  if (err) {
    fprintf(stderr, "pagemesh-mount: %s: %s (%s)%s\n", s->root,
            pm_peer_errmsg(s->peer), pm_err_name(err),
            err == PM_ENOENT ? ": nothing there (a missing bucket or an "
                               "empty prefix?)"
                             : "");
    return 1;
  }
  s->seen = calloc(SEEN_SLOTS, sizeof *s->seen);
  if (!s->seen || pthread_mutex_init(&s->seen_lock, NULL) != 0) {
    fputs("pagemesh-mount: out of memory\n", stderr);
    return 1;
  }
  return 0;
}

static const struct option long_options[] = {
    CLI_COMMON_LONG_OPTIONS,
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int main(int argc, char **argv) {
  cli_guard_std_fds();
  mounted_at = time(NULL);
  pm_options opts;
  pm_options_init(&opts);
  if (pm_options_load_env(&opts) != 0)
    return fprintf(stderr, "pagemesh-mount: %s\n", pm_peer_errmsg(NULL)), 2;
  struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
  fuse_opt_add_arg(&args, argv[0]);
  int opt;
  while ((opt = getopt_long(argc, argv, "o:dh", long_options, NULL)) != -1) {
    if (opt == 'o') {
      fuse_opt_add_arg(&args, "-o");
      fuse_opt_add_arg(&args, optarg);
    } else if (opt == 'd') {
      fuse_opt_add_arg(&args, "-d");
    } else if (opt >= OPT_CACHE_DIR && opt <= OPT_META_TTL) {
      if (cli_apply_common(&opts, opt, optarg) != 0)
        return 2;
    } else {
      fputs(usage, opt == 'h' ? stdout : stderr);
      return opt == 'h' ? 0 : 2;
    }
  }
  if (argc - optind != 2)
    return fputs(usage, stderr), 2;
  const char *origin = argv[optind], *mountpoint = argv[optind + 1];
  size_t len = strlen(origin);
  mount_state s = {.ttl_s = opts.meta_ttl_ms / 1000.0};
  s.root = malloc(len + 2);
  if (!s.root)
    return fputs("pagemesh-mount: out of memory\n", stderr), 1;
  snprintf(s.root, len + 2, "%s%s", origin,
           len && origin[len - 1] == '/' ? "" : "/");
  fuse_opt_add_arg(&args, "-o");
  fuse_opt_add_arg(&args, "ro,default_permissions,fsname=pagemesh,"
                          "subtype=pagemesh");
  /* SIGINT, SIGTERM and SIGHUP must reach the main thread, where FUSE's
   * handlers end the loop and unmount: the peer's threads, started now,
   * inherit them blocked. */
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
  int err = pm_peer_open(&opts, &s.peer);
  if (err) {
    fprintf(stderr, "pagemesh-mount: cannot open the cache: %s (%s)\n",
            pm_peer_errmsg(NULL), pm_err_name(err));
    fuse_opt_free_args(&args);
    free(s.root);
    return 1;
  }
  s.page_size = opts.page_size; /* st_blksize only: a node's may differ */
  int rc = check_start(&s, mountpoint);
  if (rc == 0)
    rc = serve(&args, mountpoint, &s, &stop_signals);
  pm_peer_close(s.peer);
  free(s.seen);
  fuse_opt_free_args(&args);
  free(s.root);
  return rc;
}
