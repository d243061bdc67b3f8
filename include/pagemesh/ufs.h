/*
 * pagemesh/ufs.h - the interface of origin connectors ("under file
 * systems"): S3 (s3://), HTTP(S), POSIX (file:// and plain paths), Google
 * Cloud Storage (gs://, gcs://), Azure Blob Storage (az://, abfs://,
 * abfss://) and Hugging Face (hf://).
 *
 * A backend is a pm_ufs_methods table (in the style of SQLite's VFS and
 * libfabric's ops: it starts with `size`, methods are only appended) and an
 * object that embeds `pm_ufs` as its first member. The core calls backends
 * only through the wrappers in ufs/ufs.c, which check arguments, count
 * origin requests and turn a NULL optional method into PM_ENOTSUP.
 *
 * Every method may be called from several threads at once on one object.
 * Methods report failures as a negative pm_err and record a detail sentence
 * naming the URI and the cause with pm__errf() (core/core_int.h), so that
 * pm_peer_errmsg() can show it.
 */
#ifndef PAGEMESH_UFS_H
#define PAGEMESH_UFS_H

#include "../pagemesh.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pm_ufs pm_ufs;

/* Settings shared by every backend of one peer. */
typedef struct pm_ufs_config {
  size_t size;                 /* sizeof(pm_ufs_config) */
  uint32_t timeout_ms;         /* per attempt of a request, connect
                                  included (0: 30000) */
  uint32_t retries;            /* extra attempts on 5xx/timeouts/resets */
  uint32_t retry_base_ms;      /* first backoff; doubles, with full jitter
                                  (0: 100) */
  /* Called by the backends for every request sent to the origin (each
   * retry and each page of a listing counts) and with the payload bytes
   * received, so the peer can count them. May be NULL. Called from any
   * thread. */
  void (*count)(void *arg, uint64_t requests, uint64_t bytes);
  void *count_arg;
  /* A directory on the cache's disk where a backend may make unlinked
   * scratch files (O_TMPFILE), or NULL: the HTTP backend keeps there the
   * objects of a server that ignores Range while they are read. */
  const char *scratch_dir;
} pm_ufs_config;

/* Called for each listed entry; return non-zero to stop the listing (the
 * value is then returned by list). The entry and its strings are valid only
 * during the call: copy what you keep. */
typedef int (*pm_ufs_list_cb)(void *arg, const pm_list_entry *entry);

typedef struct pm_ufs_methods {
  size_t size;                /* sizeof(pm_ufs_methods) of the backend */
  const char *name;           /* "s3", "http", "posix" */
  const char *const *schemes; /* URI schemes served, NULL-terminated;
                                 "" stands for plain paths */
  size_t object_size;         /* bytes to allocate for the backend object */

  /* Set up a zeroed object of object_size bytes (its base already filled
   * in). Read credentials and endpoints from the environment here. If it
   * fails, fini is still called: it must cope with a half-built object.
   * Optional. */
  int (*init)(pm_ufs *self, const pm_ufs_config *config);
  /* Free what init allocated (not the object itself). Optional. */
  void (*fini)(pm_ufs *self);

  /* Size, version and mtime of one object. Errors: PM_ENOENT, PM_EACCES,
   * PM_EUNREACHABLE, PM_ETIMEDOUT, PM_EORIGIN, PM_EBADURI. */
  int (*stat)(pm_ufs *self, const char *uri, pm_object_stat *out);

  /* Read exactly min(length, expect->size - offset) bytes of the version
   * `expect` of uri at offset into buf, and return that count. A backend
   * that can tell the version changed (ETag mismatch, If-Match failed,
   * mtime/size differ) returns PM_ECHANGED. A short body is PM_EIO, never
   * a short count. A server that ignores Range must still give the right
   * bytes. Errors: as stat, plus PM_ECHANGED, PM_EIO. */
  ssize_t (*read)(pm_ufs *self, const char *uri, const pm_object_stat *expect,
                  uint64_t offset, void *buf, size_t length);

  /* List the children of the directory uri (PM_LIST_RECURSIVE: all
   * descendants), in any order, calling cb for each. Optional. Errors: as
   * stat, plus PM_ENOTSUP. */
  int (*list)(pm_ufs *self, const char *uri, unsigned flags, pm_ufs_list_cb cb,
              void *arg);
} pm_ufs_methods;

struct pm_ufs {
  const pm_ufs_methods *methods;
  pm_ufs_config config;
};

#ifdef __cplusplus
}
#endif
#endif /* PAGEMESH_UFS_H */
