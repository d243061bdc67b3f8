/*
 * core/meta.c - the metadata cache (see meta.h). In memory: a resizable
 * chained hash table keyed by the XXH3-64 of the URI, under one mutex.
 * On disk: one small file per URI, meta/<2 hex>/<16 hex>.m, written to a
 * temporary name and renamed, holding the URI (to resolve hash collisions
 * and for invalidation by prefix), size, mtime, version and the wall-clock
 * time it was fetched.
 *
 * What a listing says past its first entries is kept in memory only
 * (pm__meta_store_listed; objects.c: a listing of a million objects would
 * otherwise write a million files, each an inode and a block); such an
 * entry goes to disk once a stat uses it (pm__meta_lookup_keep), i.e. for
 * the objects this node actually reads. Memory holds at most
 * PM_META_MEMORY_MAX entries: past it, whole hash chains are dropped from
 * a moving cursor (entries on disk are read back from there on the next
 * lookup; the others are asked for again).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "meta.h"

#define META_MAGIC "PMMETA1"
#define META_FILE_MAX 8192
/* ~300 bytes an entry: 2 Mi entries are ~600 MiB at most, and hold the
 * listing of an ImageNet-sized dataset (1.28 M objects) whole, so that its
 * first epoch needs no HEAD per object. */
#define PM_META_MEMORY_MAX (2u * 1024u * 1024u)

typedef struct entry {
  struct entry *next;
  uint64_t hash;
  char *uri;
  pm_object_stat st;
  int64_t fetched_wall_ns;
  int64_t disk_fetched_wall_ns; /* the fetch time its file holds */
  bool on_disk; /* the entry's file says what the entry says */
} entry;

struct pm_meta {
  pthread_mutex_t mutex;
  /* Taken before mutex, around every write and removal of a file, so the
   * disk ends with what memory said last: a file is written from the
   * entry as it is then, and not at all once the entry is forgotten. */
  pthread_mutex_t disk_mutex;
  char *dir; /* <cache_dir>/meta, or NULL */
  uint64_t ttl_ns;
  entry **buckets;
  size_t bucket_count, count;
  size_t max_entries, cursor; /* the memory bound; where dropping goes on */
  /* Doubts (meta.h), under mutex: prefixes and when each expires, and
   * until when every URI is doubted (after an overflow). */
  char *doubts[PM_META_DOUBTS_MAX];
  uint64_t doubt_until_ns[PM_META_DOUBTS_MAX];
  size_t doubt_count;
  uint64_t doubt_all_until_ns;
};

static uint64_t uri_hash(const char *uri) {
  return XXH3_64bits(uri, strlen(uri));
}

int pm__meta_open(const char *dir, uint32_t ttl_ms, pm_meta **out) {
  pm_meta *m = calloc(1, sizeof *m);
  if (!m)
    return pm__errf(PM_ENOMEM, "cannot allocate the metadata cache");
  m->bucket_count = 1024;
  m->max_entries = PM_META_MEMORY_MAX;
  m->buckets = calloc(m->bucket_count, sizeof *m->buckets);
  m->ttl_ns = (uint64_t)ttl_ms * 1000000u;
  pthread_mutex_init(&m->mutex, NULL);
  pthread_mutex_init(&m->disk_mutex, NULL);
  if (!m->buckets)
    goto nomem;
  if (dir) {
    size_t n = strlen(dir) + sizeof "/meta";
    if (!(m->dir = malloc(n)))
      goto nomem;
    snprintf(m->dir, n, "%s/meta", dir);
    int err = pm__private_subdir(dir, m->dir);
    if (err) {
      pm__meta_close(m);
      return err;
    }
  }
  *out = m;
  return 0;
nomem:
  pm__meta_close(m);
  return pm__errf(PM_ENOMEM, "cannot allocate the metadata cache");
}

static void free_entry(entry *e) {
  free(e->uri);
  free(e);
}

void pm__meta_close(pm_meta *m) {
  if (!m)
    return;
  for (size_t i = 0; m->buckets && i < m->bucket_count; i++) {
    entry *e = m->buckets[i];
    while (e) {
      entry *next = e->next;
      free_entry(e);
      e = next;
    }
  }
  free(m->buckets);
  free(m->dir);
  for (size_t i = 0; i < m->doubt_count; i++)
    free(m->doubts[i]);
  pthread_mutex_destroy(&m->mutex);
  pthread_mutex_destroy(&m->disk_mutex);
  free(m);
}

static entry **find_slot(pm_meta *m, const char *uri, uint64_t hash) {
  entry **p = &m->buckets[hash % m->bucket_count];
  for (; *p; p = &(*p)->next)
    if ((*p)->hash == hash && strcmp((*p)->uri, uri) == 0)
      break;
  return p;
}

static void grow(pm_meta *m) {
  size_t count = m->bucket_count * 2;
  entry **buckets = calloc(count, sizeof *buckets);
  if (!buckets)
    return; /* keep the longer chains */
  for (size_t i = 0; i < m->bucket_count; i++) {
    entry *e = m->buckets[i];
    while (e) {
      entry *next = e->next;
      e->next = buckets[e->hash % count];
      buckets[e->hash % count] = e;
      e = next;
    }
  }
  free(m->buckets);
  m->buckets = buckets;
  m->bucket_count = count;
}

static void file_path(const pm_meta *m, uint64_t hash, char *out,
                      size_t size) {
  snprintf(out, size, "%s/%02x/%016" PRIx64 ".m", m->dir,
           (unsigned)(hash >> 56), hash);
}

/* Over the bound: drop whole chains from the cursor on until an eighth
 * of the bound is free (called with the mutex held). */
static void shrink(pm_meta *m) {
  size_t target = m->max_entries - m->max_entries / 8;
  while (m->count > target) {
    size_t i = m->cursor++ % m->bucket_count;
    entry *e = m->buckets[i];
    m->buckets[i] = NULL;
    while (e) {
      entry *next = e->next;
      free_entry(e);
      m->count--;
      e = next;
    }
  }
}

static bool same_stat(const pm_object_stat *a, const pm_object_stat *b) {
  return a->size == b->size && a->mtime_ns == b->mtime_ns &&
         strcmp(a->version, b->version) == 0;
}

/* Insert or replace the in-memory entry; on_disk: its file says the same.
 * The same stat fetched again keeps the entry's file as it is while the
 * file's fetch time is less than half a TTL older (no write per re-listing);
 * past that the file is rewritten when a read next uses the entry, so that
 * after a restart it is not stale half a TTL early. Called with the mutex
 * held. */
static void put_locked(pm_meta *m, const char *uri, uint64_t hash,
                       const pm_object_stat *st, int64_t fetched,
                       bool on_disk) {
  entry **slot = find_slot(m, uri, hash);
  entry *e = *slot;
  if (!e) {
    if (m->count >= m->max_entries)
      shrink(m);
    slot = find_slot(m, uri, hash);
    e = calloc(1, sizeof *e);
    if (!e || !(e->uri = strdup(uri))) {
      free(e);
      return;
    }
    e->hash = hash;
    *slot = e;
    if (++m->count > 2 * m->bucket_count)
      grow(m);
  } else if (!on_disk) {
    on_disk = e->on_disk && same_stat(&e->st, st) &&
              fetched - e->disk_fetched_wall_ns < (int64_t)(m->ttl_ns / 2);
  }
  if (on_disk && !e->on_disk)
    e->disk_fetched_wall_ns = fetched;
  e->st = *st;
  e->fetched_wall_ns = fetched;
  e->on_disk = on_disk;
}

/* Parse a meta file's text; 0 on success. */
static int parse_file(char *text, const char *uri, pm_object_stat *st,
                      int64_t *fetched) {
  char *save = NULL;
  char *head = strtok_r(text, "\n", &save);
  char *version = strtok_r(NULL, "\n", &save);
  char *file_uri = strtok_r(NULL, "\n", &save);
  if (!head || !version || !file_uri || strcmp(file_uri, uri) != 0)
    return -1;
  uint64_t size;
  int64_t mtime, when;
  char magic[8];
  if (sscanf(head, "%7s %" SCNu64 " %" SCNd64 " %" SCNd64, magic, &size,
             &mtime, &when) != 4 ||
      strcmp(magic, META_MAGIC) != 0 || strlen(version) >= PM_VERSION_MAX)
    return -1;
  memset(st, 0, sizeof *st);
  st->size = size;
  st->mtime_ns = mtime;
  snprintf(st->version, sizeof st->version, "%s", version);
  *fetched = when;
  return 0;
}

static int load_file(pm_meta *m, const char *uri, uint64_t hash,
                     pm_object_stat *st, int64_t *fetched) {
  char path[4096], text[META_FILE_MAX + 1];
  file_path(m, hash, path, sizeof path);
  FILE *f = fopen(path, "re");
  if (!f)
    return -1;
  size_t n = fread(text, 1, META_FILE_MAX, f);
  fclose(f);
  text[n] = '\0';
  if (parse_file(text, uri, st, fetched) == 0)
    return 0;
  return -1;
}

static void write_file(pm_meta *m, const char *uri, uint64_t hash,
                       const pm_object_stat *st, int64_t fetched);

/* Write uri's entry to disk as memory holds it now (nothing if it is gone:
 * forgotten meanwhile, or dropped by the bound). */
static void persist(pm_meta *m, const char *uri, uint64_t hash) {
  pthread_mutex_lock(&m->disk_mutex);
  pthread_mutex_lock(&m->mutex);
  entry *e = *find_slot(m, uri, hash);
  pm_object_stat st;
  int64_t fetched = 0;
  if (e) {
    st = e->st;
    fetched = e->fetched_wall_ns;
    e->on_disk = true;
    e->disk_fetched_wall_ns = fetched;
  }
  pthread_mutex_unlock(&m->mutex);
  if (e)
    write_file(m, uri, hash, &st, fetched);
  pthread_mutex_unlock(&m->disk_mutex);
}

static int lookup(pm_meta *m, const char *uri, pm_object_stat *out,
                  bool *fresh, bool keep) {
  uint64_t hash = uri_hash(uri);
  int64_t fetched = 0;
  bool write = false;
  pthread_mutex_lock(&m->mutex);
  entry *e = *find_slot(m, uri, hash);
  if (e) {
    *out = e->st;
    fetched = e->fetched_wall_ns;
    write = keep && m->dir && !e->on_disk;
  }
  pthread_mutex_unlock(&m->mutex);
  if (!e) {
    if (!m->dir || load_file(m, uri, hash, out, &fetched) != 0)
      return PM_ENOENT;
    pthread_mutex_lock(&m->mutex);
    put_locked(m, uri, hash, out, fetched, true);
    pthread_mutex_unlock(&m->mutex);
  }
  if (write)
    persist(m, uri, hash);
  int64_t age = pm__wall_ns() - fetched;
  *fresh = age >= 0 && (uint64_t)age < m->ttl_ns;
  return 0;
}

int pm__meta_lookup(pm_meta *m, const char *uri, pm_object_stat *out,
                    bool *fresh) {
  return lookup(m, uri, out, fresh, false);
}

int pm__meta_lookup_keep(pm_meta *m, const char *uri, pm_object_stat *out,
                         bool *fresh) {
  return lookup(m, uri, out, fresh, true);
}

static void write_file(pm_meta *m, const char *uri, uint64_t hash,
                       const pm_object_stat *st, int64_t fetched) {
  char path[4096], tmp[4200], text[META_FILE_MAX];
  int n = snprintf(text, sizeof text, "%s %" PRIu64 " %" PRId64 " %" PRId64
                   "\n%s\n%s\n", META_MAGIC, st->size, st->mtime_ns, fetched,
                   st->version, uri);
  if (n < 0 || n >= (int)sizeof text || strchr(uri, '\n') ||
      strchr(st->version, '\n'))
    return; /* not persistable; it stays in memory */
  file_path(m, hash, path, sizeof path);
  char *slash = strrchr(path, '/');
  *slash = '\0';
  if (pm__mkdirs(path, 0755) != 0)
    return;
  *slash = '/';
  snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
  FILE *f = fopen(tmp, "we");
  if (!f)
    return;
  bool ok = fwrite(text, 1, (size_t)n, f) == (size_t)n;
  ok = fclose(f) == 0 && ok;
  if (!ok || rename(tmp, path) != 0)
    unlink(tmp);
}

void pm__meta_store_listed(pm_meta *m, const char *uri,
                           const pm_object_stat *st) {
  uint64_t hash = uri_hash(uri);
  int64_t now = pm__wall_ns();
  pthread_mutex_lock(&m->mutex);
  put_locked(m, uri, hash, st, now, false);
  pthread_mutex_unlock(&m->mutex);
}

void pm__meta_store(pm_meta *m, const char *uri, const pm_object_stat *st) {
  pm__meta_store_listed(m, uri, st);
  if (m->dir)
    persist(m, uri, uri_hash(uri));
}

void pm__meta_keep(pm_meta *m, const char *uri, const pm_object_stat *st) {
  if (!m->dir)
    return;
  uint64_t hash = uri_hash(uri);
  pthread_mutex_lock(&m->mutex);
  entry *e = *find_slot(m, uri, hash);
  bool write = e && !e->on_disk && same_stat(&e->st, st);
  pthread_mutex_unlock(&m->mutex);
  if (write)
    persist(m, uri, hash);
}

size_t pm__meta_count(pm_meta *m) {
  pthread_mutex_lock(&m->mutex);
  size_t n = m->count;
  pthread_mutex_unlock(&m->mutex);
  return n;
}

void pm__meta_set_limit(pm_meta *m, size_t max_entries) {
  pthread_mutex_lock(&m->mutex);
  m->max_entries = max_entries ? max_entries : PM_META_MEMORY_MAX;
  if (m->count > m->max_entries)
    shrink(m);
  pthread_mutex_unlock(&m->mutex);
}

void pm__meta_forget(pm_meta *m, const char *uri) {
  uint64_t hash = uri_hash(uri);
  pthread_mutex_lock(&m->mutex);
  entry **slot = find_slot(m, uri, hash);
  entry *e = *slot;
  if (e) {
    *slot = e->next;
    m->count--;
    free_entry(e);
  }
  pthread_mutex_unlock(&m->mutex);
  if (m->dir) {
    char path[4096];
    file_path(m, hash, path, sizeof path);
    pthread_mutex_lock(&m->disk_mutex);
    unlink(path);
    pthread_mutex_unlock(&m->disk_mutex);
  }
}

static size_t forget_memory_prefix(pm_meta *m, const char *prefix) {
  size_t removed = 0, plen = strlen(prefix);
  pthread_mutex_lock(&m->mutex);
  for (size_t i = 0; i < m->bucket_count; i++) {
    for (entry **p = &m->buckets[i]; *p;) {
      entry *e = *p;
      if (strncmp(e->uri, prefix, plen) == 0) {
        *p = e->next;
        free_entry(e);
        m->count--;
        removed++;
      } else {
        p = &e->next;
      }
    }
  }
  pthread_mutex_unlock(&m->mutex);
  return removed;
}

/* Remove the files of one fan-out directory whose URI starts with prefix. */
static size_t forget_dir_prefix(const char *dir, const char *prefix) {
  DIR *d = opendir(dir);
  if (!d)
    return 0;
  size_t removed = 0, plen = strlen(prefix);
  struct dirent *de;
  char path[4096], text[META_FILE_MAX + 1];
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.')
      continue;
    if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >=
        (int)sizeof path)
      continue;
    FILE *f = fopen(path, "re");
    if (!f)
      continue;
    size_t n = fread(text, 1, META_FILE_MAX, f);
    fclose(f);
    text[n] = '\0';
    char *uri = strchr(text, '\n');
    uri = uri ? strchr(uri + 1, '\n') : NULL;
    if (uri && strncmp(uri + 1, prefix, plen) == 0 && unlink(path) == 0)
      removed++;
  }
  closedir(d);
  return removed;
}

size_t pm__meta_forget_prefix(pm_meta *m, const char *prefix) {
  size_t removed = forget_memory_prefix(m, prefix);
  if (!m->dir)
    return removed;
  DIR *d = opendir(m->dir);
  if (!d)
    return removed;
  size_t on_disk = 0;
  struct dirent *de;
  char sub[4096];
  pthread_mutex_lock(&m->disk_mutex);
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.')
      continue;
    if (snprintf(sub, sizeof sub, "%s/%s", m->dir, de->d_name) >=
        (int)sizeof sub)
      continue;
    on_disk += forget_dir_prefix(sub, prefix);
  }
  pthread_mutex_unlock(&m->disk_mutex);
  closedir(d);
  return PM_MAX(removed, on_disk);
}

/* ---- doubts ------------------------------------------------------------- */

/* Drop expired doubts (mutex held). */
static void prune_doubts(pm_meta *m, uint64_t now) {
  size_t kept = 0;
  for (size_t i = 0; i < m->doubt_count; i++) {
    if (m->doubt_until_ns[i] <= now) {
      free(m->doubts[i]);
      continue;
    }
    m->doubts[kept] = m->doubts[i];
    m->doubt_until_ns[kept++] = m->doubt_until_ns[i];
  }
  m->doubt_count = kept;
}

void pm__meta_doubt(pm_meta *m, const char *prefix) {
  uint64_t now = pm__now_ns(), until = now + m->ttl_ns;
  if (until <= now)
    return; /* TTL 0: nobody keeps an entry */
  pthread_mutex_lock(&m->mutex);
  prune_doubts(m, now);
  size_t i = 0;
  while (i < m->doubt_count && strcmp(m->doubts[i], prefix) != 0)
    i++;
  char *copy = i < m->doubt_count ? NULL : strdup(prefix);
  if (i < m->doubt_count) {
    m->doubt_until_ns[i] = until;
  } else if (copy && m->doubt_count < PM_META_DOUBTS_MAX) {
    m->doubts[m->doubt_count] = copy;
    m->doubt_until_ns[m->doubt_count++] = until;
  } else {
    /* Full (or out of memory): doubt everything. Every kept doubt expires
     * by then, so they are covered. */
    free(copy);
    prune_doubts(m, UINT64_MAX);
    m->doubt_all_until_ns = until;
  }
  pthread_mutex_unlock(&m->mutex);
}

bool pm__meta_doubted(pm_meta *m, const char *uri) {
  uint64_t now = pm__now_ns();
  pthread_mutex_lock(&m->mutex);
  bool doubted = now < m->doubt_all_until_ns;
  for (size_t i = 0; !doubted && i < m->doubt_count; i++)
    doubted = m->doubt_until_ns[i] > now &&
              strncmp(uri, m->doubts[i], strlen(m->doubts[i])) == 0;
  pthread_mutex_unlock(&m->mutex);
  return doubted;
}

void pm__meta_retract(pm_meta *m, const char *uri) {
  pm__meta_forget(m, uri);
  pm__meta_doubt(m, uri);
}
