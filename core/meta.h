/*
 * core/meta.h - the metadata cache: URI -> {size, version, mtime}, trusted
 * for a TTL, kept in memory and persisted under <cache_dir>/meta/ so that
 * a restarted process (or the next CLI call) does not ask the origin again
 * while the entry is fresh. Stale entries are kept: they are served when
 * the origin cannot be reached. Entries of a large listing stay in memory
 * until a stat uses them; memory holds a bounded number of entries.
 */
#ifndef PM_CORE_META_H
#define PM_CORE_META_H

#include "core_int.h"

typedef struct pm_meta pm_meta;

/* dir: NULL keeps metadata in memory only. Errors: PM_ENOMEM, and those of
 * creating <dir>/meta. */
int pm__meta_open(const char *dir, uint32_t ttl_ms, pm_meta **out);
void pm__meta_close(pm_meta *meta);

/* Look uri up. Returns 0 with *out filled and *fresh telling whether it is
 * within the TTL, or PM_ENOENT if nothing is cached. */
int pm__meta_lookup(pm_meta *meta, const char *uri, pm_object_stat *out,
                    bool *fresh);

/* pm__meta_lookup for a stat that uses the answer: an entry held only in
 * memory (from a listing) is written to disk now. */
int pm__meta_lookup_keep(pm_meta *meta, const char *uri, pm_object_stat *out,
                         bool *fresh);

/* Record what the origin said now (memory and disk). */
void pm__meta_store(pm_meta *meta, const char *uri, const pm_object_stat *st);
/* A reader uses st for uri (a node serving an attached process's fetch):
 * if the entry says the same and is only in memory, write it to disk. */
void pm__meta_keep(pm_meta *meta, const char *uri, const pm_object_stat *st);
/* Record what a listing said now, in memory only. */
void pm__meta_store_listed(pm_meta *meta, const char *uri,
                           const pm_object_stat *st);

/* Entries in memory; the most kept there (0: the default, 2 Mi). */
size_t pm__meta_count(pm_meta *meta);
void pm__meta_set_limit(pm_meta *meta, size_t max_entries);

/* Forget uri, or every uri starting with prefix; returns how many. */
void pm__meta_forget(pm_meta *meta, const char *uri);
size_t pm__meta_forget_prefix(pm_meta *meta, const char *prefix);

/* Doubts: what this peer knows to be out of date elsewhere too. Another
 * peer (the owner of an object's metadata in the mesh) may hold the same
 * entry and keep answering with it until its TTL runs out; for that long
 * (this cache's TTL, the cluster's setting) a stat of a URI under a
 * doubted prefix asks the owner to read the origin again
 * (PM_PAGE_REQ_FRESH). At most PM_META_DOUBTS_MAX prefixes are kept;
 * past that every URI is doubted until the newest doubt expires (more
 * origin requests, never an old answer). pm__meta_doubt records prefix;
 * pm__meta_doubted tells whether uri is under a live doubt. */
#define PM_META_DOUBTS_MAX 256
void pm__meta_doubt(pm_meta *meta, const char *prefix);
bool pm__meta_doubted(pm_meta *meta, const char *uri);
/* A read found uri changed or gone at the origin: forget it and doubt it. */
void pm__meta_retract(pm_meta *meta, const char *uri);

#endif /* PM_CORE_META_H */
