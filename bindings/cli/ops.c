/*
 * bindings/cli/ops.c - `pagemesh` commands that operate the cache: load
 * (warm the mesh with every object under a prefix, in parallel, with a
 * progress report), evict, invalidate, capacity and drain. Loading reads
 * through the node peer, which routes each page to its owners: the pages
 * end up where placement looks for them, fetched from the origin once.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "progress.h"

#define LOAD_CHUNK (8u << 20)

typedef struct loader {
  cli *c;
  pm_list_entry *entries;
  size_t count;
  pthread_mutex_t mutex;
  size_t next;                  /* next entry to take */
  uint64_t objects, bytes, failed;
  char first_error[512];
  cli_progress progress;
} loader;

/* Read one object whole, discarding the bytes; returns 0 or a pm_err. */
static int load_object(loader *l, const pm_list_entry *e, char *buf) {
  for (uint64_t off = 0; off < e->size;) {
    ssize_t n = pm_read(l->c->peer, e->uri, off, buf, LOAD_CHUNK);
    if (n <= 0)
      return n < 0 ? (int)n : PM_EIO;
    off += (uint64_t)n;
    pthread_mutex_lock(&l->mutex);
    l->bytes += (uint64_t)n;
    cli_progress_update(&l->progress, l->objects, l->bytes, 0);
    pthread_mutex_unlock(&l->mutex);
  }
  return 0;
}

static void *load_worker(void *arg) {
  loader *l = arg;
  char *buf = malloc(LOAD_CHUNK);
  for (;;) {
    pthread_mutex_lock(&l->mutex);
    size_t i = l->next < l->count ? l->next++ : SIZE_MAX;
    pthread_mutex_unlock(&l->mutex);
    if (i == SIZE_MAX || !buf)
      break;
    int err = load_object(l, &l->entries[i], buf);
    pthread_mutex_lock(&l->mutex);
    if (err) {
      l->failed++;
      if (!l->first_error[0])
        snprintf(l->first_error, sizeof l->first_error, "%s: %s (%s)",
                 l->entries[i].uri, pm_peer_errmsg(l->c->peer),
                 pm_err_name(err));
    } else {
      l->objects++;
    }
    pthread_mutex_unlock(&l->mutex);
  }
  free(buf);
  return NULL;
}

static void print_load_summary(loader *l, double seconds) {
  json_t *o = json_pack("{s:I,s:I,s:I,s:f,s:f,s:s?}", "objects",
                        (json_int_t)l->objects, "bytes", (json_int_t)l->bytes,
                        "failed", (json_int_t)l->failed, "seconds", seconds,
                        "mb_per_s", seconds > 0 ? l->bytes / seconds / 1e6 : 0,
                        "first_error",
                        l->first_error[0] ? l->first_error : NULL);
  json_dumpf(o, stdout, JSON_INDENT(2));
  putchar('\n');
  json_decref(o);
}

int cmd_load(cli *c, int argc, char **argv) {
  if (argc != 1)
    return fputs("usage: pagemesh load URI_PREFIX [--parallel N] [--json]\n",
                 stderr), 2;
  loader l = {.c = c};
  int err = pm_list(c->peer, argv[0], PM_LIST_RECURSIVE, &l.entries,
                    &l.count);
  if (err)
    return cli_fail(c, argv[0], err);
  uint64_t total = 0;
  for (size_t i = 0; i < l.count; i++)
    total += l.entries[i].is_dir ? 0 : l.entries[i].size;
  pthread_mutex_init(&l.mutex, NULL);
  cli_progress_start(&l.progress, stderr, l.count, total);
  unsigned threads = c->parallel ? c->parallel : 8;
  pthread_t tids[64];
  unsigned started = 0;
  for (; started < threads && started < 64; started++)
    if (pthread_create(&tids[started], NULL, load_worker, &l) != 0)
      break;
  for (unsigned i = 0; i < started; i++)
    pthread_join(tids[i], NULL);
  double seconds = cli_now() - l.progress.started;
  cli_progress_finish(&l.progress, l.objects, l.bytes, l.failed);
  if (l.first_error[0])
    fprintf(stderr, "pagemesh: load: first failure: %s\n", l.first_error);
  if (c->json)
    print_load_summary(&l, seconds);
  pm_list_free(l.entries, l.count);
  pthread_mutex_destroy(&l.mutex);
  return l.failed ? 1 : 0;
}

int cmd_evict(cli *c, int argc, char **argv) {
  if (argc != 1)
    return fputs("usage: pagemesh evict URI_PREFIX\n", stderr), 2;
  ssize_t n = pm_evict(c->peer, argv[0]);
  if (n < 0)
    return cli_fail(c, argv[0], (int)n);
  printf("evicted %zd pages under %s\n", n, argv[0]);
  return 0;
}

int cmd_invalidate(cli *c, int argc, char **argv) {
  if (argc != 1)
    return fputs("usage: pagemesh invalidate URI_PREFIX\n", stderr), 2;
  int err = pm_invalidate(c->peer, argv[0]);
  if (err)
    return cli_fail(c, argv[0], err);
  printf("invalidated metadata under %s\n", argv[0]);
  return 0;
}

int cmd_capacity(cli *c, int argc, char **argv) {
  (void)argv;
  if (argc != 0 || (!c->disk_capacity && !c->ram_capacity))
    return fputs("usage: pagemesh capacity [--disk SIZE] [--ram SIZE]\n",
                 stderr), 2;
  int err = pm_set_capacity(c->peer, c->disk_capacity, c->ram_capacity);
  if (err)
    return cli_fail(c, "capacity", err);
  printf("capacity changed\n");
  return 0;
}

int cmd_drain(cli *c, int argc, char **argv) {
  (void)argv;
  if (argc != 0)
    return fputs("usage: pagemesh drain\n", stderr), 2;
  ssize_t n = pm_drain(c->peer);
  if (n < 0)
    return cli_fail(c, "drain", (int)n);
  printf("drained: %zd pages handed to their next owners; left the mesh\n",
         n);
  return 0;
}
