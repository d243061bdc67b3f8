/*
 * tests/ufs/ufs_driver.c - pm_ufs_driver, a small program through which
 * the integration tests (tests/integration/test_ufs_*.py) drive the origin
 * connectors against real servers. It calls the ufs/ wrappers exactly as
 * the core does.
 *
 *   pm_ufs_driver stat URI
 *   pm_ufs_driver read URI OFFSET LENGTH [VERSION SIZE]
 *   pm_ufs_driver list URI [-r]
 *   pm_ufs_driver hammer URI THREADS READS
 *
 * stat prints "size N", "mtime_ns N" and "version V" lines; read writes the
 * bytes to stdout (with VERSION and SIZE it skips the stat and reads that
 * version); list prints "uri TAB is_dir TAB size TAB mtime_ns TAB version"
 * lines sorted by URI; hammer reads random ranges from several threads and
 * checks each against one whole read, printing "ok". A failure prints
 * "ERROR PM_NAME: detail" on stderr and exits 1. On exit the requests and
 * bytes counted through pm_ufs_config.count go to stderr as
 * "origin requests=N bytes=N". Settings: PAGEMESH_ORIGIN_TIMEOUT_MS,
 * PAGEMESH_ORIGIN_RETRIES, PAGEMESH_ORIGIN_RETRY_BASE_MS.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ufs/ufs_int.h"

static atomic_uint_fast64_t origin_requests, origin_bytes;

static void count(void *arg, uint64_t requests, uint64_t bytes) {
  (void)arg;
  origin_requests += requests;
  origin_bytes += bytes;
}

static int fail(int err) {
  fprintf(stderr, "ERROR %s: %s\n", pm_err_name(err), pm__errmsg());
  return 1;
}

static uint32_t env_u32(const char *name, uint32_t fallback) {
  const char *v = getenv(name);
  return v && *v ? (uint32_t)strtoul(v, NULL, 10) : fallback;
}

static int do_stat(pm_ufs_set *set, const char *uri) {
  pm_object_stat st;
  int rc = pm__ufs_stat(set, uri, &st);
  if (rc)
    return fail(rc);
  printf("size %" PRIu64 "\nmtime_ns %" PRId64 "\nversion %s\n", st.size,
         st.mtime_ns, st.version);
  return 0;
}

static int do_read(pm_ufs_set *set, int argc, char **argv) {
  pm_object_stat st = {0};
  uint64_t offset = strtoull(argv[3], NULL, 10);
  size_t length = (size_t)strtoull(argv[4], NULL, 10);
  int rc = 0;
  if (argc >= 7) {
    snprintf(st.version, sizeof st.version, "%s", argv[5]);
    st.size = strtoull(argv[6], NULL, 10);
  } else {
    rc = pm__ufs_stat(set, argv[2], &st);
  }
  if (rc)
    return fail(rc);
  char *buf = malloc(length ? length : 1);
  if (!buf)
    return fail(PM_ENOMEM);
  ssize_t got = pm__ufs_read(set, argv[2], &st, offset, buf, length);
  if (got < 0) {
    free(buf);
    return fail((int)got);
  }
  fwrite(buf, 1, (size_t)got, stdout);
  free(buf);
  return 0;
}

/* ---- list -------------------------------------------------------------------
 */

typedef struct entries {
  pm_list_entry *items;
  size_t count, alloc;
} entries;

static int collect(void *arg, const pm_list_entry *e) {
  entries *list = arg;
  if (list->count == list->alloc) {
    size_t alloc = list->alloc ? 2 * list->alloc : 64;
    pm_list_entry *grown = realloc(list->items, alloc * sizeof *grown);
    if (!grown)
      return PM_ENOMEM;
    list->items = grown;
    list->alloc = alloc;
  }
  pm_list_entry *copy = &list->items[list->count++];
  *copy = *e;
  copy->uri = strdup(e->uri);
  copy->version = e->version ? strdup(e->version) : NULL;
  return 0;
}

static int by_uri(const void *a, const void *b) {
  return strcmp(((const pm_list_entry *)a)->uri,
                ((const pm_list_entry *)b)->uri);
}

static int do_list(pm_ufs_set *set, const char *uri, unsigned flags) {
  entries list = {0};
  int rc = pm__ufs_list(set, uri, flags, collect, &list);
  if (rc == 0) {
    qsort(list.items, list.count, sizeof *list.items, by_uri);
    for (size_t i = 0; i < list.count; i++) {
      pm_list_entry *e = &list.items[i];
      printf("%s\t%d\t%" PRIu64 "\t%" PRId64 "\t%s\n", e->uri, e->is_dir,
             e->size, e->mtime_ns, e->version ? e->version : "-");
    }
  }
  for (size_t i = 0; i < list.count; i++) {
    free(list.items[i].uri);
    free(list.items[i].version);
  }
  free(list.items);
  return rc ? fail(rc) : 0;
}

/* ---- hammer: concurrent ranged reads
 * ------------------------------------------ */

typedef struct hammer {
  pm_ufs_set *set;
  const char *uri;
  pm_object_stat st;
  const char *whole;
  int reads;
  atomic_int failures;
} hammer;

static void *hammer_thread(void *arg) {
  hammer *h = arg;
  unsigned seed = (unsigned)(uintptr_t)&seed;
  char *buf = malloc(h->st.size + 1);
  for (int i = 0; buf && i < h->reads; i++) {
    uint64_t off = h->st.size ? (uint64_t)rand_r(&seed) % h->st.size : 0;
    size_t len = (size_t)(rand_r(&seed) % 65536) + 1;
    ssize_t got = pm__ufs_read(h->set, h->uri, &h->st, off, buf, len);
    size_t want = (size_t)PM_MIN((uint64_t)len, h->st.size - off);
    if (got != (ssize_t)want || memcmp(buf, h->whole + off, want)) {
      fprintf(stderr, "hammer: read %" PRIu64 "+%zu: %zd (%s)\n", off, len, got,
              got < 0 ? pm__errmsg() : "wrong bytes");
      h->failures++;
    }
  }
  free(buf);
  return NULL;
}

static int do_hammer(pm_ufs_set *set, const char *uri, int threads, int reads) {
  hammer h = {.set = set, .uri = uri, .reads = reads};
  int rc = pm__ufs_stat(set, uri, &h.st);
  if (rc)
    return fail(rc);
  char *whole = malloc(h.st.size + 1);
  ssize_t got =
      whole ? pm__ufs_read(set, uri, &h.st, 0, whole, h.st.size) : PM_ENOMEM;
  if (got < 0) {
    free(whole);
    return fail((int)got);
  }
  h.whole = whole;
  pthread_t tids[64];
  threads = PM_MIN(PM_MAX(threads, 1), 64);
  for (int i = 0; i < threads; i++)
    pthread_create(&tids[i], NULL, hammer_thread, &h);
  for (int i = 0; i < threads; i++)
    pthread_join(tids[i], NULL);
  free(whole);
  if (h.failures)
    return fail(pm__errf(PM_EIO, "%d reads failed", (int)h.failures));
  printf("ok\n");
  return 0;
}

static int usage(void) {
  fprintf(stderr, "usage: pm_ufs_driver stat URI | read URI OFF LEN "
                  "[VERSION SIZE] | list URI [-r] | hammer URI THREADS N\n");
  return 2;
}

static int run(pm_ufs_set *set, int argc, char **argv) {
  const char *cmd = argv[1];
  if (!strcmp(cmd, "stat") && argc == 3)
    return do_stat(set, argv[2]);
  if (!strcmp(cmd, "read") && (argc == 5 || argc == 7))
    return do_read(set, argc, argv);
  if (!strcmp(cmd, "list") && (argc == 3 || argc == 4)) {
    unsigned flags =
        argc == 4 && !strcmp(argv[3], "-r") ? PM_LIST_RECURSIVE : 0;
    return do_list(set, argv[2], flags);
  }
  if (!strcmp(cmd, "hammer") && argc == 5)
    return do_hammer(set, argv[2], (int)strtol(argv[3], NULL, 10),
                     (int)strtol(argv[4], NULL, 10));
  return usage();
}

int main(int argc, char **argv) {
  if (argc < 3)
    return usage();
  pm_ufs_config config = {
      .size = sizeof config,
      .timeout_ms = env_u32("PAGEMESH_ORIGIN_TIMEOUT_MS", 10000),
      .retries = env_u32("PAGEMESH_ORIGIN_RETRIES", 4),
      .retry_base_ms = env_u32("PAGEMESH_ORIGIN_RETRY_BASE_MS", 20),
      .count = count};
  pm_ufs_set *set;
  int rc = pm__ufs_set_open(&config, &set);
  if (rc)
    return fail(rc);
  rc = run(set, argc, argv);
  pm__ufs_set_close(set);
  fflush(stdout);
  fprintf(stderr, "origin requests=%" PRIu64 " bytes=%" PRIu64 "\n",
          (uint64_t)origin_requests, (uint64_t)origin_bytes);
  return rc;
}
