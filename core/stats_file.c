/*
 * core/stats_file.c - counters that outlive a process: when a peer closes
 * it adds its counters to <cache_dir>/stats.json (under a lock file, the
 * JSON rewritten by rename), so that `pagemesh stats` can report what the
 * cache did across many short-lived processes.
 */
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "peer_int.h"

/* The cumulative counters, by name, as offsets into pm_stats. */
#define STAT_FIELD(name) {#name, offsetof(pm_stats, name)}
static const struct {
  const char *name;
  size_t offset;
} counters[] = {
    STAT_FIELD(reads),         STAT_FIELD(bytes_served),
    STAT_FIELD(hits_ram),      STAT_FIELD(hits_disk),
    STAT_FIELD(misses),        STAT_FIELD(origin_requests),
    STAT_FIELD(origin_bytes),  STAT_FIELD(evictions),
    STAT_FIELD(corrupt_pages), STAT_FIELD(declined),
    STAT_FIELD(store_errors),
};

static uint64_t *field(pm_stats *s, size_t i) {
  return (uint64_t *)((char *)s + counters[i].offset);
}

static void path_of(const char *dir, const char *name, char *out,
                    size_t size) {
  snprintf(out, size, "%s/%s", dir, name);
}

/* What stats.json holds is a dozen counters: a larger file is not ours
 * (anyone who can write the cache directory could plant one). */
#define STATS_FILE_MAX (64u << 10)

static void read_totals(const char *dir, pm_stats *totals) {
  char path[PM_URI_MAX + 32];
  path_of(dir, "stats.json", path, sizeof path);
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return;
  struct stat st;
  char *text = NULL;
  ssize_t n = -1;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
      st.st_size <= STATS_FILE_MAX && (text = malloc(STATS_FILE_MAX)))
    n = pm__pread_full(fd, text, STATS_FILE_MAX, 0);
  close(fd);
  json_t *root = n >= 0 && n < (ssize_t)STATS_FILE_MAX
                     ? json_loadb(text, (size_t)n, JSON_REJECT_DUPLICATES,
                                  NULL)
                     : NULL;
  free(text);
  if (!json_is_object(root)) {
    json_decref(root);
    return;
  }
  for (size_t i = 0; i < PM_ARRAY_SIZE(counters); i++) {
    json_t *v = json_object_get(root, counters[i].name);
    if (json_is_integer(v) && json_integer_value(v) >= 0)
      *field(totals, i) += (uint64_t)json_integer_value(v);
  }
  json_decref(root);
}

static void write_totals(const char *dir, const pm_stats *totals) {
  char path[PM_URI_MAX + 32], tmp[PM_URI_MAX + 64];
  json_t *root = json_object();
  for (size_t i = 0; root && i < PM_ARRAY_SIZE(counters); i++)
    json_object_set_new(root, counters[i].name,
                        json_integer((json_int_t) *
                                     field((pm_stats *)totals, i)));
  path_of(dir, "stats.json", path, sizeof path);
  snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
  if (root && json_dump_file(root, tmp, JSON_COMPACT) == 0 &&
      rename(tmp, path) != 0)
    unlink(tmp);
  json_decref(root);
}

void pm__stats_file_add(const char *dir, const pm_stats *delta) {
  char lock_path[PM_URI_MAX + 32];
  path_of(dir, "stats.lock", lock_path, sizeof lock_path);
  int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    return;
  if (flock(fd, LOCK_EX) == 0) {
    pm_stats totals = {.size = sizeof totals};
    read_totals(dir, &totals);
    for (size_t i = 0; i < PM_ARRAY_SIZE(counters); i++)
      *field(&totals, i) += *field((pm_stats *)delta, i);
    write_totals(dir, &totals);
  }
  close(fd);
}

int pm_peer_stats_total(pm_peer *peer, pm_stats *out) {
  int err = pm_peer_stats(peer, out);
  if (err || (peer->opts.flags & PM_OPEN_PASSTHROUGH))
    return err;
  pm_stats totals = {.size = sizeof totals};
  read_totals(peer->cache_dir, &totals);
  for (size_t i = 0; i < PM_ARRAY_SIZE(counters); i++)
    *field(out, i) += *field(&totals, i);
  return 0;
}
