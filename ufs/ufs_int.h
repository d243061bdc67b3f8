/*
 * ufs/ufs_int.h - how the core reaches origins: a set of backend objects
 * (one per backend, created per peer) and thin wrappers that pick the
 * backend by URI scheme, check arguments, and count requests.
 */
#ifndef PM_UFS_INT_H
#define PM_UFS_INT_H

#include "core/core_int.h"
#include "core/histogram.h"
#include "pagemesh/ufs.h"

typedef struct pm_ufs_set pm_ufs_set;

/* Create one object of every registered backend. A backend whose init
 * fails (e.g. no credentials) is kept out, and its URIs fail with the
 * init error's detail. Errors: PM_ENOMEM. */
int pm__ufs_set_open(const pm_ufs_config *config, pm_ufs_set **out);
void pm__ufs_set_close(pm_ufs_set *set);

/* The backend for uri, or NULL with PM_EBADURI detail recorded (unknown
 * scheme, empty bucket, ...). */
pm_ufs *pm__ufs_for(pm_ufs_set *set, const char *uri, int *err);

/* Normalise uri into out: "file:///a/b" and "/a/b" are the same object,
 * relative paths become absolute, s3 URIs keep their key verbatim.
 * Errors: PM_EBADURI, PM_ETOOBIG. */
int pm__uri_normalize(const char *uri, char *out, size_t out_size);

/* Wrappers: see pm_ufs_methods for what each returns. Each normalises the
 * URI first (PM_EBADURI, PM_ETOOBIG), and a NULL set, URI or output is
 * PM_EINVAL. pm__ufs_stat leaves *out untouched on failure. pm__ufs_read
 * returns 0 without asking the origin when offset >= expect->size.
 * pm__ufs_list lists an object alone when the URI names an object rather
 * than a directory (pm_list's contract). Requests are counted by the
 * backends as they send them (config.count), not here. All safe from any
 * thread. */
int pm__ufs_stat(pm_ufs_set *set, const char *uri, pm_object_stat *out);
ssize_t pm__ufs_read(pm_ufs_set *set, const char *uri,
                     const pm_object_stat *expect, uint64_t offset, void *buf,
                     size_t length);
int pm__ufs_list(pm_ufs_set *set, const char *uri, unsigned flags,
                 pm_ufs_list_cb cb, void *arg);

/* Durations of the stat and read calls made through the set (each
 * includes the backend's retries), and the number of stat, read and list
 * calls that failed for another reason than a missing object. Safe from
 * any thread; the histogram lives as long as the set. */
pm_histogram *pm__ufs_set_latency(pm_ufs_set *set);
uint64_t pm__ufs_set_errors(pm_ufs_set *set);

/* The registered backends (ufs/ufs.c holds the one list). */
extern const pm_ufs_methods pm_s3_methods;
extern const pm_ufs_methods pm_http_methods;
extern const pm_ufs_methods pm_posix_methods;
extern const pm_ufs_methods pm_gcs_methods;
extern const pm_ufs_methods pm_azure_methods;
extern const pm_ufs_methods pm_hf_methods;

#endif /* PM_UFS_INT_H */
