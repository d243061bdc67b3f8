/*
 * pagemesh.h - the one public header of pagemesh, a peer-to-peer read cache
 * for machine-learning training data.
 *
 * A process opens a peer (pm_peer) on a cache directory and reads remote
 * objects (s3://, gs:// or gcs://, az://, abfs://, abfss://, hf://,
 * http(s)://, file:// and plain paths) through it. The peer splits each
 * object into fixed-size pages, keeps them in a RAM tier and a disk tier,
 * and fetches from the origin only what it does not hold. Bindings
 * (Python, CLI, FUSE) use this header and nothing else.
 *
 * Conventions, for every function below:
 *  - Functions return 0 (or a byte count) on success and a negative pm_err
 *    code on failure. pm_strerror() names a code; pm_peer_errmsg() gives the
 *    detail of the last failure on the calling thread (object and cause).
 *  - Strings passed in are copied; the caller keeps ownership.
 *  - Unless a comment says otherwise, functions taking a pm_peer are safe to
 *    call from any thread at once.
 *  - Structs that may grow start with `size_t size`, set by pm_options_init()
 *    or, for pm_stats, by the caller. A size smaller than this header's
 *    struct is refused with PM_EINVAL; the size lets a future library tell
 *    an older caller's struct from its own.
 */
#ifndef PAGEMESH_H
#define PAGEMESH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define PM_EXTERN __attribute__((visibility("default")))
#else
#define PM_EXTERN
#endif

#define PM_VERSION_MAJOR 0
#define PM_VERSION_MINOR 1
#define PM_VERSION_PATCH 0

/*
 * Error codes. One X-macro generates the enum, pm_strerror() and
 * pm_err_name(). Codes are only ever appended, never renumbered.
 */
#define PM_ERRNO_MAP(XX)                                                     \
  XX(EINVAL, -1, "invalid argument")                                         \
  XX(ENOMEM, -2, "out of memory")                                            \
  XX(ENOENT, -3, "no such object")                                           \
  XX(EACCES, -4, "permission denied")                                        \
  XX(EIO, -5, "input/output error")                                          \
  XX(ETIMEDOUT, -6, "operation timed out")                                   \
  XX(EUNREACHABLE, -7, "origin or peer unreachable")                         \
  XX(EBADURI, -8, "malformed or unsupported URI")                            \
  XX(ECHANGED, -9, "object changed while it was being read")                 \
  XX(ECORRUPT, -10, "corrupt data detected")                                 \
  XX(ENOSPC, -11, "no space left in the cache")                              \
  XX(ENOTSUP, -12, "operation not supported")                                \
  XX(EORIGIN, -13, "origin returned an error")                               \
  XX(ERANGE, -14, "offset or length out of range")                           \
  XX(EPROTO, -15, "protocol error")                                          \
  XX(EAUTH, -16, "authentication failed")                                    \
  XX(EBUSY, -17, "resource busy")                                            \
  XX(ESHUTDOWN, -18, "peer is shutting down")                                \
  XX(ETOOBIG, -19, "message or value too large")                             \
  XX(ECONFIG, -20, "invalid configuration")                                  \
  XX(EEXIST, -21, "already exists")

typedef enum pm_err {
  PM_OK = 0,
#define PM_ERR_ENUM(name, value, text) PM_##name = value,
  PM_ERRNO_MAP(PM_ERR_ENUM)
#undef PM_ERR_ENUM
} pm_err;

/* A short English sentence for a code; never NULL ("unknown error" for an
 * unknown code). Safe from any thread. */
PM_EXTERN const char *pm_strerror(int err);

/* The symbolic name of a code ("PM_ENOENT"); never NULL. */
PM_EXTERN const char *pm_err_name(int err);

/* The library version as "MAJOR.MINOR.PATCH". */
PM_EXTERN const char *pm_version(void);

/* ------------------------------------------------------------------------ */
/* Opening a peer                                                            */

typedef struct pm_peer pm_peer;

/* Eviction policies of the page store. */
typedef enum pm_eviction {
  /* Default. Once a tier is full, a new page is admitted only if it is read
   * more often than the page it would evict (a frequency sketch with
   * aging). A dataset larger than the cache, read in a new random order each
   * epoch, keeps a stable resident set and hits at about capacity/dataset. */
  PM_EVICT_STABLE = 0,
  /* Least recently used: always admit, evict the coldest page. */
  PM_EVICT_LRU = 1,
} pm_eviction;

/* Flags for pm_options.flags. */
enum {
  /* Verify the XXH3-128 checksum of a disk page on every read, not only on
   * the first read after the page was loaded from disk. */
  PM_OPEN_VERIFY_ALWAYS = 1u << 0,
  /* Do not keep pages at all: every read goes to the origin (a baseline for
   * benchmarks and a fallback when the cache directory is unusable).
   * Implies PM_OPEN_STANDALONE. */
  PM_OPEN_PASSTHROUGH = 1u << 1,
  /* Own the cache directory privately: neither become the node peer nor
   * attach to one (tests, benchmarks, tools working on a copy). */
  PM_OPEN_STANDALONE = 1u << 2,
  /* Only attach to a running node peer; fail with PM_EUNREACHABLE if there
   * is none (status tools that must not start a peer themselves). */
  PM_OPEN_ATTACH_ONLY = 1u << 3,
  /* Only become the node peer; fail with PM_EBUSY if another process is
   * the node peer of this cache directory (daemons). */
  PM_OPEN_NODE_ONLY = 1u << 4,
  /* Send page bytes between peers in the clear (tcp transport) on a
   * trusted network; peers still authenticate with the cluster key. */
  PM_OPEN_INSECURE_DATA = 1u << 5,
};

typedef struct pm_options {
  size_t size;               /* sizeof(pm_options), set by pm_options_init */
  const char *cache_dir;     /* NULL: $PAGEMESH_CACHE_DIR, else
                                $XDG_CACHE_HOME/pagemesh, else
                                ~/.cache/pagemesh, else (no $HOME)
                                /tmp/pagemesh-UID */
  uint64_t disk_capacity;    /* bytes of page data on disk (default 8 GiB) */
  uint64_t ram_capacity;     /* bytes of page data in RAM (default 256 MiB) */
  uint32_t page_size;        /* bytes, power of two, 64 KiB..16 MiB
                                (default 1 MiB) */
  pm_eviction eviction;      /* default PM_EVICT_STABLE */
  uint32_t meta_ttl_ms;      /* how long object metadata is trusted without
                                asking the origin (default 60000) */
  uint32_t readahead_pages;  /* pages fetched ahead of a sequential reader
                                (default 4; 0 disables) */
  uint32_t io_threads;       /* worker threads for origin and disk I/O
                                (default 8) */
  uint32_t origin_timeout_ms; /* per attempt of an origin request,
                                 connect included (default 30000; 0: 30000) */
  uint32_t origin_retries;   /* attempts after the first, on timeouts,
                                dropped connections and HTTP 408, 429, 500,
                                502, 503, 504 (default 4) */
  uint32_t flags;            /* PM_OPEN_* */

  /* The mesh. With `listen` NULL the node peer is a single-node cache;
   * with it set, the node peer joins the other peers that share the
   * cluster key, and pages are placed over all of them. Only the node peer
   * uses these (attached processes reach the mesh through it). */
  const char *listen;           /* "IP:PORT" for membership (UDP + TCP) */
  const char *seeds;            /* "HOST:PORT,..." peers to join through */
  const char *cluster_key_file; /* 32 raw bytes or 64 hex characters, not
                                   readable by group or others (default
                                   $PAGEMESH_CLUSTER_KEY_FILE) */
  const char *cluster_id;       /* peers only see peers of the same id
                                   (default "pagemesh") */
  const char *transport;        /* page transport: "tcp" (default) or
                                   "fabric" (libfabric; FI_PROVIDER) */
  const char *transport_listen; /* "IP:PORT" for pages (default: the
                                   listen IP, any port) */
  const char *zone;             /* a label for the operator (rack, zone) */
  uint32_t replicas;            /* copies of each page (default 2) */
  uint32_t request_timeout_ms;  /* deadline of one remote page request
                                   before the next replica is tried
                                   (default 5000) */

  /* Who may attach to the node peer. NULL: only this process's user (its
   * socket is mode 0600). A group name or number: that group too (socket
   * mode 0660, owned by the group): a daemon shared by the jobs of many
   * users. Members then read through the node peer's cache and origin
   * credentials; the cache directory must be searchable by them. A process
   * that cannot write the cache directory only ever attaches; if its node
   * peer goes away, it reads the origins directly (uncached, with its own
   * credentials) and attaches again once a node peer is back. */
  const char *node_group;
} pm_options;

/* Fill *opts with defaults. Always call it before setting fields. */
PM_EXTERN void pm_options_init(pm_options *opts);

/*
 * Apply PAGEMESH_* environment variables to *opts: PAGEMESH_CACHE_DIR,
 * PAGEMESH_DISK_CAPACITY and PAGEMESH_RAM_CAPACITY (bytes, or with a K/M/G/T
 * suffix), PAGEMESH_PAGE_SIZE, PAGEMESH_EVICTION ("stable" or "lru"),
 * PAGEMESH_META_TTL_MS, PAGEMESH_READAHEAD_PAGES, PAGEMESH_IO_THREADS,
 * PAGEMESH_ORIGIN_TIMEOUT_MS (origin_timeout_ms), PAGEMESH_ORIGIN_RETRIES
 * (origin_retries), and for the mesh PAGEMESH_LISTEN, PAGEMESH_SEEDS,
 * PAGEMESH_CLUSTER_KEY_FILE, PAGEMESH_CLUSTER_ID, PAGEMESH_TRANSPORT,
 * PAGEMESH_TRANSPORT_LISTEN, PAGEMESH_ZONE, PAGEMESH_REPLICAS,
 * PAGEMESH_REQUEST_TIMEOUT_MS, PAGEMESH_INSECURE_DATA (1 or 0),
 * PAGEMESH_NODE_GROUP.
 * String fields point into the environment (valid until it changes).
 * Errors: PM_ECONFIG if a variable is set to an unparsable value (the
 * detail names it); *opts is then unchanged for that field.
 */
PM_EXTERN int pm_options_load_env(pm_options *opts);

/*
 * Open a peer on opts->cache_dir. One process per cache directory is the
 * node peer: the first to open it takes a lock there, rebuilds the page
 * index from the pages found, and listens on a unix socket in it. Every
 * later process attaches to that node peer instead, and reads cached pages
 * through read-only mappings of the page files; the API is the same either
 * way. If the node peer exits, an attached process takes its place without
 * failing reads in flight. *out is set only on success; close it with
 * pm_peer_close().
 * Errors: PM_EINVAL (NULL argument, opts->size smaller than
 * sizeof(pm_options), page_size not a power of two in range, unknown
 * eviction, io_threads outside 1..1024, replicas outside 1..8, a transport
 * other than "tcp" or "fabric", node_group names no group, or one this
 * process may not give its socket to; with listen set and the tcp
 * transport, PAGEMESH_TCP_CIPHER other than aegis-128x4 or aes-256-gcm, or
 * PAGEMESH_TCP_CONGESTION a name the kernel refuses), PM_EACCES (cache
 * directory not writable and no node peer there lets this user attach, or
 * owned by
 * another user: the detail names it; or a cluster key file readable by
 * group or others), PM_EIO (cannot scan the cache directory), PM_ECONFIG
 * (with listen set: no cluster key file named, or one that is not 32 raw
 * bytes or 64 hex characters; a seed that is not HOST:PORT or does not
 * resolve), PM_ETOOBIG (the cache directory's path is too long for its
 * unix socket), PM_EUNREACHABLE (PM_OPEN_ATTACH_ONLY and no node peer),
 * PM_EBUSY (PM_OPEN_NODE_ONLY and another node peer runs), PM_EPROTO (the
 * node peer speaks another protocol version), PM_ETIMEDOUT (a node peer
 * accepted the connection but did not answer within 5 s: stopped or
 * wedged), PM_ENOMEM. A cache directory that cannot be created, or a
 * cluster key file that cannot be opened, gives the code of the errno
 * (PM_EACCES, PM_ENOENT, PM_ENOSPC...; PM_EIO if it has none).
 */
PM_EXTERN int pm_peer_open(const pm_options *opts, pm_peer **out);

/* Stop the peer's threads, wait for reads in flight, and free it. Pages
 * stay on disk for the next open. Accepts NULL. Not safe to call while
 * another thread still uses the peer. */
PM_EXTERN void pm_peer_close(pm_peer *peer);

/* The detail of the last failed library call on the calling thread, on
 * whatever peer (pm_peer_open included): a sentence naming the object and
 * the cause ("s3://b/k: HTTP 403 AccessDenied"). `peer` is ignored and may
 * be NULL. Never NULL; "" if there was none. Valid until the next call on
 * this thread. */
PM_EXTERN const char *pm_peer_errmsg(const pm_peer *peer);

/* ------------------------------------------------------------------------ */
/* Reading                                                                   */

/*
 * Read up to `length` bytes of `uri` starting at `offset` into `buf`.
 * Returns the number of bytes read: `length`, or fewer only at the end of
 * the object (0 at or past the end). The bytes all come from one version of
 * the object.
 * Errors: PM_EINVAL (NULL argument), PM_EBADURI, PM_ETOOBIG (URI too
 * long), PM_ENOENT (no such object), PM_EACCES (origin refused: 401/403),
 * PM_EUNREACHABLE, PM_ETIMEDOUT, PM_EORIGIN (origin error after retries),
 * PM_ECHANGED (the object kept changing during the read), PM_ECONFIG (the
 * origin's backend could not be set up, e.g. bad credential settings: the
 * detail says why), PM_EPROTO (a malformed answer from the origin or the
 * node peer), PM_EIO, PM_ENOMEM.
 */
PM_EXTERN ssize_t pm_read(pm_peer *peer, const char *uri, uint64_t offset,
                          void *buf, size_t length);

/*
 * pm_read, but only from `version` (pm_object_stat.version, from pm_stat or
 * pm_list): what an open file needs so that all its reads come from the
 * version it was opened at. If the object is now another version (as the
 * peer's metadata says, or the origin when a page is fetched from it), the
 * read fails with PM_ECHANGED at once, naming both versions; pm_invalidate
 * and a new pm_stat then see the new one.
 * Errors: as pm_read, and PM_EINVAL for a NULL, empty or over-long version.
 */
PM_EXTERN ssize_t pm_read_version(pm_peer *peer, const char *uri,
                                  const char *version, uint64_t offset,
                                  void *buf, size_t length);

/* One range of a batched read. */
typedef struct pm_range {
  const char *uri;   /* in: object */
  uint64_t offset;   /* in: first byte */
  size_t length;     /* in: bytes wanted */
  void *buf;         /* in: where they go (length bytes) */
  ssize_t result;    /* out: bytes read, or a negative pm_err */
} pm_range;

/*
 * Read many ranges of many objects, in parallel on the peer's I/O threads
 * (PyArrow column chunks, fsspec cat_ranges). Each range gets its own
 * result, as pm_read would return it. Pages shared by several ranges are
 * fetched once.
 * Returns 0 if every range succeeded, else the first failing range's error
 * (the other ranges are still filled in). Errors: as pm_read, and
 * PM_EINVAL for a NULL array with count > 0.
 */
PM_EXTERN int pm_read_batch(pm_peer *peer, pm_range *ranges, size_t count);

/*
 * Ask the peer to fetch [offset, offset+length) of uri into the cache in
 * the background (length 0: to the end). Returns once the work is queued.
 * Errors: PM_EINVAL, PM_EBADURI, the errors of pm_stat (the object's
 * metadata is looked up before queuing), PM_EBUSY (the background queue is
 * full), PM_ESHUTDOWN (the peer is closing), PM_ENOMEM. A range is queued
 * in pieces; on these last three, the pieces queued before stay queued, so
 * a long range may be fetched only in part.
 */
PM_EXTERN int pm_prefetch(pm_peer *peer, const char *uri, uint64_t offset,
                          uint64_t length);

/* ------------------------------------------------------------------------ */
/* Zero-copy mapping                                                          */

/* A read-only mapping of cached bytes, valid until pm_unmap(), even if the
 * page is evicted meanwhile. */
typedef struct pm_mapping {
  const void *data;  /* the bytes */
  size_t length;     /* how many (short only at the end of the object) */
  void *priv_;       /* library state; do not touch */
} pm_mapping;

/*
 * Map up to `length` bytes of uri at `offset` without copying them. The
 * range must lie within one page (offset / page_size == (offset + length -
 * 1) / page_size); use pm_read for longer ranges. The page is fetched first
 * if it is not cached.
 * Errors: as pm_read, plus PM_ERANGE if the range crosses a page boundary
 * or starts past the end of the object.
 */
PM_EXTERN int pm_map(pm_peer *peer, const char *uri, uint64_t offset,
                     size_t length, pm_mapping *out);

/* Release a mapping from pm_map. Accepts a zeroed mapping. */
PM_EXTERN void pm_unmap(pm_peer *peer, pm_mapping *mapping);

/* ------------------------------------------------------------------------ */
/* Metadata                                                                   */

#define PM_VERSION_MAX 128

typedef struct pm_object_stat {
  uint64_t size;                /* bytes */
  int64_t mtime_ns;             /* last modification, ns since the epoch;
                                   0 if the origin does not say */
  char version[PM_VERSION_MAX]; /* ETag, or "mtime-size" for POSIX */
} pm_object_stat;

/*
 * Metadata of one object, from the metadata cache when fresh (see
 * pm_options.meta_ttl_ms), else from the origin. If the origin cannot be
 * reached and stale metadata is cached, the stale metadata is returned.
 * Errors: PM_EINVAL, PM_EBADURI, PM_ETOOBIG (URI too long), PM_ENOENT,
 * PM_EACCES, PM_EUNREACHABLE, PM_ETIMEDOUT, PM_EORIGIN, PM_ECONFIG (the
 * origin's backend could not be set up), PM_EPROTO (a malformed answer from
 * the origin or the node peer), PM_ENOMEM.
 */
PM_EXTERN int pm_stat(pm_peer *peer, const char *uri, pm_object_stat *out);

/* Forget cached metadata (and so, pages of old versions) for every object
 * whose URI starts with `uri_prefix`, so that the next read asks the
 * origin: in a mesh, for one metadata TTL, this peer's stats of those
 * objects have the owners of their metadata ask the origin again rather
 * than answer from their caches. Errors: PM_EINVAL, and in an attached
 * process PM_EUNREACHABLE (the node peer went away and none could take
 * over), PM_ETIMEDOUT (the node peer is stopped and does not answer),
 * PM_ENOMEM. */
PM_EXTERN int pm_invalidate(pm_peer *peer, const char *uri_prefix);

/*
 * Remove the cached pages and metadata of every object whose URI starts
 * with uri_prefix from this node's cache (the node peer's store). Other
 * nodes keep their copies. Returns the number of pages removed.
 * Errors: PM_EINVAL, PM_EUNREACHABLE (no node peer), PM_EACCES (an
 * attached process whose user is neither the node peer's nor root).
 */
PM_EXTERN ssize_t pm_evict(pm_peer *peer, const char *uri_prefix);

typedef struct pm_list_entry {
  char *uri;       /* full URI of the object or the directory (ends in '/') */
  int is_dir;      /* 1 for a common prefix ("directory"), 0 for an object */
  uint64_t size;   /* 0 for a directory */
  int64_t mtime_ns;
  char *version;   /* ETag or "mtime-size"; NULL for a directory */
} pm_list_entry;

enum {
  /* List every object below the URI, not just its direct children. */
  PM_LIST_RECURSIVE = 1u << 0,
  /* Stop at the first entry (any one, not the first in order): a test that
   * a directory exists, with one origin request however large it is. An
   * existing empty directory lists no entry and returns 0. */
  PM_LIST_FIRST = 1u << 1,
};

/*
 * List the children of the "directory" `uri` (a bucket, a prefix ending in
 * '/', or a local directory; a trailing '/' is implied). If nothing lies
 * below it but an object of that exact name exists, that one object is
 * listed. Entries are sorted by URI. Free the array with pm_list_free().
 * Listed objects' metadata is added to the metadata cache.
 * Errors: PM_EINVAL, PM_EBADURI, PM_ETOOBIG (URI too long), PM_ENOENT (no
 * such bucket, directory or object), PM_EACCES, PM_EUNREACHABLE,
 * PM_ETIMEDOUT, PM_EORIGIN, PM_ECONFIG (the origin's backend could not be
 * set up), PM_EPROTO (a malformed answer from the origin), PM_ENOTSUP (the
 * origin cannot list, e.g. plain HTTP), PM_ENOMEM.
 */
PM_EXTERN int pm_list(pm_peer *peer, const char *uri, unsigned flags,
                      pm_list_entry **entries, size_t *count);

/* Free an array returned by pm_list. Accepts NULL. */
PM_EXTERN void pm_list_free(pm_list_entry *entries, size_t count);

/* ------------------------------------------------------------------------ */
/* What the cache did                                                         */

typedef struct pm_stats {
  size_t size;              /* sizeof(pm_stats), set by the caller */
  uint64_t reads;           /* pm_read/pm_read_batch ranges served */
  uint64_t bytes_served;    /* bytes returned to callers */
  uint64_t hits_ram;        /* page lookups answered by the RAM tier */
  uint64_t hits_disk;       /* ... by the disk tier */
  uint64_t misses;          /* page lookups that went to the origin */
  uint64_t origin_requests; /* requests sent to origins (HEAD, GET, LIST) */
  uint64_t origin_bytes;    /* bytes received from origins */
  uint64_t evictions;       /* pages evicted from either tier */
  uint64_t corrupt_pages;   /* pages found corrupt and dropped */
  uint64_t declined;        /* pages not admitted by the eviction policy */
  uint64_t store_errors;    /* pages that could not be stored (disk full) */
  uint64_t disk_used;       /* bytes of page data on disk */
  uint64_t disk_capacity;
  uint64_t ram_used;
  uint64_t ram_capacity;
  uint64_t pages_disk;
  uint64_t pages_ram;
} pm_stats;

/*
 * Fill *out with the peer's counters since it was opened and the current
 * use of each tier. Set out->size = sizeof(pm_stats) first.
 * Errors: PM_EINVAL, PM_EBUSY (called from a log callback while this
 * thread changes the peer's role).
 */
PM_EXTERN int pm_peer_stats(pm_peer *peer, pm_stats *out);

/*
 * Like pm_peer_stats, but the counters also include those of every peer
 * that was opened on the same cache directory and has closed since the
 * directory was created (each peer adds its counters to
 * <cache_dir>/stats.json when it closes). Errors: as pm_peer_stats
 * (PM_EINVAL, PM_EBUSY).
 */
PM_EXTERN int pm_peer_stats_total(pm_peer *peer, pm_stats *out);

/*
 * The node peer's status as a JSON document (malloc'd; free it with
 * pm_free): "node_pid", "role" of the calling process ("node",
 * "attached" or "standalone"), "cache_dir", "page_size", "attached" (pids
 * of attached processes), "stats" (the fields of pm_stats, node-wide) and
 * "members" (the mesh, when there is one). Errors: PM_EINVAL, PM_ENOMEM,
 * PM_EUNREACHABLE (the node peer went away and none could take over),
 * PM_ETIMEDOUT (the node peer is stopped and does not answer), PM_EPROTO
 * (the node peer sent a malformed status).
 */
PM_EXTERN int pm_peer_status(pm_peer *peer, char **json_out);

/* Free memory the library returned (pm_peer_status). Accepts NULL. */
PM_EXTERN void pm_free(void *ptr);

/* ------------------------------------------------------------------------ */
/* Operating the node                                                         */

/*
 * Change the node peer's capacities while it runs (0 keeps a value). The
 * tiers evict down to the new sizes at once; in a mesh the new disk
 * capacity becomes this node's placement weight, spreads to the other
 * members, and pages move to their new owners. Errors: PM_EINVAL,
 * PM_ENOTSUP (a peer that keeps no pages), PM_EUNREACHABLE (no node peer,
 * e.g. while this process reads the origins directly), PM_EACCES (an
 * attached process whose user is neither the node peer's nor root).
 */
PM_EXTERN int pm_set_capacity(pm_peer *peer, uint64_t disk_capacity,
                              uint64_t ram_capacity);

/*
 * Drain the node peer out of the mesh: hand every page on its disk to the
 * members that own it once this node is gone, then leave the mesh, so the
 * cluster shrinks without a cold epoch. Returns the number of pages
 * handed over. After it, the node peer serves its attached processes as a
 * single-node cache (pagemeshd exits). Errors: PM_EINVAL, PM_ENOTSUP (not
 * in a mesh), PM_EUNREACHABLE, PM_EACCES (an attached process whose user is
 * neither the node peer's nor root).
 */
PM_EXTERN ssize_t pm_drain(pm_peer *peer);

/* 1 once the node peer this process runs has been drained, else 0. */
PM_EXTERN int pm_peer_drained(pm_peer *peer);

/* ------------------------------------------------------------------------ */
/* Logging                                                                    */

typedef enum pm_log_level {
  PM_LOG_ERROR = 0,
  PM_LOG_WARN = 1,
  PM_LOG_INFO = 2,
  PM_LOG_DEBUG = 3,
} pm_log_level;

typedef void (*pm_log_fn)(void *arg, pm_log_level level,
                          const char *subsystem, const char *message);

/* Send the library's log lines to fn (NULL: stderr, the default) and set
 * the level (default PM_LOG_WARN, or $PAGEMESH_LOG_LEVEL: error, warn,
 * info, debug). Process-wide; safe from any thread. */
PM_EXTERN void pm_log_set(pm_log_level level, pm_log_fn fn, void *arg);

#ifdef __cplusplus
}
#endif
#endif /* PAGEMESH_H */
