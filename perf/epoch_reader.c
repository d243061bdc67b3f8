/*
 * perf/epoch_reader.c - one reader process of the epoch benchmark
 * (perf/epoch_bench.py), for the contenders read from C: pagemesh through
 * the public API (attached to the node peer of a cache directory, as a data
 * loader would be), and plain pread() of files (the local-disk ceiling, and
 * a JuiceFS FUSE mount).
 *
 * usage: epoch_reader pm CACHE_DIR PREFIX     (URIs are PREFIX + key)
 *        epoch_reader file - PREFIX           (paths are PREFIX + key)
 *
 * It prints "READY" once open, then serves epochs read from stdin:
 *
 *   EPOCH <n> <count>
 *   <key>\t<offset>\t<length>          (count lines)
 *
 * It reads every range in order, hashing each one's bytes (XXH3-64,
 * through libxxhash's x86 dispatcher where it has one, as core/page_id.c;
 * the hash is in the timed region of every contender alike), and
 * only when the epoch is over prints, so that printing never slows it:
 *
 *   <latency_ns> <bytes> <xxh3 hex>    (one line per range, or
 *   E <detail>                          for a failed range)
 *   END <start_ns> <end_ns>            (CLOCK_MONOTONIC, comparable across
 *                                       processes)
 *
 * A line "META <count>" followed by count "<key>" lines looks up each
 * object's metadata (pm_stat, or stat() of the file), untimed, as a loader
 * that already knows its files would have; it answers with "E <detail>"
 * lines for failures and "END 0 0".
 *
 * EOF or a line "QUIT" ends it. Uses include/pagemesh.h only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#ifdef PM_HAVE_XXH_DISPATCH
#include <xxh_x86dispatch.h> /* the widest vector code the CPU has */
#endif

#include "pagemesh.h"

#define LINE_MAX_BYTES 4096

typedef struct range_op {
  char *key;
  uint64_t offset;
  uint64_t length;
} range_op;

typedef struct range_result {
  uint64_t latency_ns;
  uint64_t bytes;
  uint64_t hash;
  char *error; /* NULL on success */
} range_result;

typedef struct reader {
  int use_pm;
  pm_peer *peer;
  const char *prefix;
  char *buf;
  size_t buf_len;
  /* file mode: the last file opened, kept for sequential ranges */
  char *open_path;
  int open_fd;
} reader;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* "<name>: <cause>", malloc'd (NULL if out of memory). */
static char *format_error(const char *name, const char *cause) {
  size_t length = strlen(name) + strlen(cause) + 3;
  char *text = malloc(length);
  if (text)
    snprintf(text, length, "%s: %s", name, cause);
  return text;
}

static int ensure_buffer(reader *r, uint64_t length) {
  if (length <= r->buf_len)
    return 0;
  char *bigger = realloc(r->buf, length);
  if (!bigger)
    return -1;
  r->buf = bigger;
  r->buf_len = length;
  return 0;
}

/* pm_read until `length` bytes or the end of the object. */
static char *read_pm(reader *r, const char *uri, const range_op *op,
                     uint64_t *got) {
  *got = 0;
  while (*got < op->length) {
    ssize_t n = pm_read(r->peer, uri, op->offset + *got, r->buf + *got,
                        op->length - *got);
    if (n < 0)
      return format_error(uri, pm_peer_errmsg(r->peer));
    if (n == 0)
      break;
    *got += (uint64_t)n;
  }
  return NULL;
}

static int open_cached(reader *r, const char *path) {
  if (r->open_path && strcmp(r->open_path, path) == 0)
    return r->open_fd;
  if (r->open_fd >= 0)
    close(r->open_fd);
  free(r->open_path);
  r->open_path = NULL;
  r->open_fd = open(path, O_RDONLY | O_CLOEXEC);
  if (r->open_fd >= 0)
    r->open_path = strdup(path);
  return r->open_fd;
}

/* pread until `length` bytes or the end of the file. */
static char *read_file(reader *r, const char *path, const range_op *op,
                       uint64_t *got) {
  *got = 0;
  int fd = open_cached(r, path);
  if (fd < 0)
    return format_error(path, strerror(errno));
  while (*got < op->length) {
    ssize_t n =
        pread(fd, r->buf + *got, op->length - *got, (off_t)(op->offset + *got));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return format_error(path, strerror(errno));
    if (n == 0)
      break;
    *got += (uint64_t)n;
  }
  return NULL;
}

static void read_range(reader *r, const range_op *op, range_result *out) {
  char name[LINE_MAX_BYTES + 512];
  snprintf(name, sizeof name, "%s%s", r->prefix, op->key);
  *out = (range_result){0};
  if (ensure_buffer(r, op->length) != 0) {
    out->error = format_error(name, "out of memory");
    return;
  }
  uint64_t start = now_ns();
  out->error = r->use_pm ? read_pm(r, name, op, &out->bytes)
                         : read_file(r, name, op, &out->bytes);
  if (!out->error)
    out->hash = XXH3_64bits(r->buf, out->bytes);
  out->latency_ns = now_ns() - start;
}

/* Parse "<key>\t<offset>\t<length>"; returns 0 or -1. */
static int parse_op(char *line, range_op *op) {
  char *tab1 = strchr(line, '\t');
  char *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
  if (!tab2)
    return -1;
  *tab1 = '\0';
  op->key = strdup(line);
  op->offset = strtoull(tab1 + 1, NULL, 10);
  op->length = strtoull(tab2 + 1, NULL, 10);
  return op->key ? 0 : -1;
}

static void print_results(const range_result *results, size_t count,
                          uint64_t start, uint64_t end) {
  for (size_t i = 0; i < count; i++) {
    if (results[i].error)
      printf("E %s\n", results[i].error);
    else
      printf("%" PRIu64 " %" PRIu64 " %016" PRIx64 "\n", results[i].latency_ns,
             results[i].bytes, results[i].hash);
  }
  printf("END %" PRIu64 " %" PRIu64 "\n", start, end);
  fflush(stdout);
}

/* Read `count` op lines, run them, print. Returns 0, or -1 on bad input. */
static int run_epoch(reader *r, size_t count) {
  range_op *ops = calloc(count ? count : 1, sizeof *ops);
  range_result *results = calloc(count ? count : 1, sizeof *results);
  char line[LINE_MAX_BYTES];
  int rc = ops && results ? 0 : -1;
  for (size_t i = 0; rc == 0 && i < count; i++) {
    if (!fgets(line, sizeof line, stdin) || parse_op(line, &ops[i]) != 0)
      rc = -1;
  }
  if (rc == 0) {
    uint64_t start = now_ns();
    for (size_t i = 0; i < count; i++)
      read_range(r, &ops[i], &results[i]);
    print_results(results, count, start, now_ns());
  }
  for (size_t i = 0; ops && results && i < count; i++) {
    free(ops[i].key);
    free(results[i].error);
  }
  free(ops);
  free(results);
  return rc;
}

/* Read `count` key lines and look each object up. */
static int run_meta(reader *r, size_t count) {
  char line[LINE_MAX_BYTES], name[LINE_MAX_BYTES + 512];
  for (size_t i = 0; i < count; i++) {
    if (!fgets(line, sizeof line, stdin))
      return -1;
    line[strcspn(line, "\n")] = '\0';
    snprintf(name, sizeof name, "%s%s", r->prefix, line);
    pm_object_stat st;
    struct stat sb;
    if (r->use_pm && pm_stat(r->peer, name, &st) != 0)
      printf("E %s: %s\n", name, pm_peer_errmsg(r->peer));
    else if (!r->use_pm && stat(name, &sb) != 0)
      printf("E %s: %s\n", name, strerror(errno));
  }
  printf("END 0 0\n");
  fflush(stdout);
  return 0;
}

static int open_reader(reader *r, const char *mode, const char *cache_dir) {
  r->open_fd = -1;
  if (strcmp(mode, "file") == 0)
    return 0;
  if (strcmp(mode, "pm") != 0)
    return fprintf(stderr, "epoch_reader: mode is pm or file\n"), -1;
  r->use_pm = 1;
  pm_options o;
  pm_options_init(&o);
  pm_options_load_env(&o);
  o.cache_dir = cache_dir;
  int err = pm_peer_open(&o, &r->peer);
  if (err)
    return fprintf(stderr, "epoch_reader: open %s: %s %s\n", cache_dir,
                   pm_err_name(err), pm_peer_errmsg(NULL)),
           -1;
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: epoch_reader pm|file CACHE_DIR|- PREFIX\n");
    return 2;
  }
  reader r = {.prefix = argv[3]};
  if (open_reader(&r, argv[1], argv[2]) != 0)
    return 1;
  printf("READY\n");
  fflush(stdout);
  char line[LINE_MAX_BYTES];
  int rc = 0;
  while (rc == 0 && fgets(line, sizeof line, stdin)) {
    unsigned epoch;
    size_t count;
    if (strncmp(line, "QUIT", 4) == 0)
      break;
    if (sscanf(line, "META %zu", &count) == 1) {
      if (run_meta(&r, count) != 0)
        rc = 2;
    } else if (sscanf(line, "EPOCH %u %zu", &epoch, &count) != 2) {
      fprintf(stderr, "epoch_reader: bad line: %s", line);
      rc = 2;
    } else if (run_epoch(&r, count) != 0) {
      fprintf(stderr, "epoch_reader: bad op lines in epoch %u\n", epoch);
      rc = 2;
    }
  }
  if (r.open_fd >= 0)
    close(r.open_fd);
  free(r.open_path);
  free(r.buf);
  pm_peer_close(r.peer);
  return rc;
}
