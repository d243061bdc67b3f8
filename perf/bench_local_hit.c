/*
 * perf/bench_local_hit.c - local-hit read throughput of a peer against
 * pread of the same bytes from a plain file on the same disk, side by side
 * in one run. The object is a local file read through the POSIX origin;
 * after one warming pass every page is a hit in the disk tier (RAM tier
 * off) or the RAM tier (RAM tier on). A second peer on the disk-tier cache
 * directory attaches to the first (the node peer) and reads the same pages
 * through its mappings of the page files: with pm_read (one copy) and with
 * pm_map (zero copy). In every column the reader then consumes the bytes
 * once (sums them), as a data loader would: with pread and pm_read from
 * its buffer, with pm_map straight from the mapping. Every side reads from
 * the kernel's page cache, so this measures pagemesh's own overhead. Each
 * 8-byte word of the object is a hash of its position, and the sum of
 * every 64 KiB block is kept: a read whose blocks' sums, or the first
 * words of its 4 KiB pages, are not the object's at its offset stops the
 * benchmark.
 *
 * usage: bench_local_hit [DIR] [MiB] [seconds]
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pagemesh.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Read every byte once, as a consumer of the data would: their sum as
 * 64-bit words. */
static uint64_t sum_words(const void *data, size_t length) {
  const uint64_t *w = data;
  uint64_t sum = 0;
  for (size_t i = 0; i < length / 8; i++)
    sum += w[i];
  return sum;
}

#define BLOCK (64u << 10) /* reads are whole blocks */

typedef struct run {
  const char *path;
  size_t file_bytes, read_size;
  double seconds;
  uint64_t *block_sums; /* sum_words of each BLOCK of the object */
} run;

/* The object's word at word index i: a hash of i (splitmix64). */
static uint64_t word_at(uint64_t i) {
  uint64_t z = i + 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Write the object (file_bytes, a multiple of BLOCK) and keep the sum of
 * each block. */
static int make_file(run *r) {
  int fd = open(r->path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  uint64_t *buf = malloc(BLOCK);
  r->block_sums = calloc(r->file_bytes / BLOCK, sizeof *r->block_sums);
  int rc = fd >= 0 && buf && r->block_sums ? 0 : -1;
  for (size_t b = 0; rc == 0 && b < r->file_bytes / BLOCK; b++) {
    for (size_t i = 0; i < BLOCK / 8; i++)
      buf[i] = word_at(b * (BLOCK / 8) + i);
    r->block_sums[b] = sum_words(buf, BLOCK);
    if (write(fd, buf, BLOCK) != BLOCK)
      rc = -1;
  }
  free(buf);
  if (fd >= 0 && close(fd) != 0)
    rc = -1;
  return rc;
}

/* Consume a read of the object at `off` (whole blocks); stop if its bytes
 * are not the object's there: each block's sum, and the first word of
 * each 4 KiB page, so that pages or blocks in another order fail too. */
static void consume(const run *r, const char *what, uint64_t off,
                    const void *data) {
  const uint8_t *p = data;
  for (size_t at = 0; at < r->read_size; at += BLOCK) {
    uint64_t block = (off + at) / BLOCK;
    bool ok = sum_words(p + at, BLOCK) == r->block_sums[block];
    for (size_t page = 0; ok && page < BLOCK; page += 4096) {
      uint64_t first;
      memcpy(&first, p + at + page, sizeof first);
      ok = first == word_at((off + at + page) / 8);
    }
    if (!ok) {
      fprintf(stderr, "%s: the %zu bytes at offset %llu are not the "
              "object's (at +%zu)\n", what, r->read_size,
              (unsigned long long)off, at);
      exit(1);
    }
  }
}

/* Random aligned reads for `seconds`; returns MB/s. */
static double bench_pread(const run *r, char *buf) {
  int fd = open(r->path, O_RDONLY);
  size_t slots = r->file_bytes / r->read_size;
  uint64_t bytes = 0;
  unsigned seed = 1;
  double start = now_s(), t;
  while ((t = now_s()) - start < r->seconds) {
    for (int i = 0; i < 64; i++) {
      off_t off = (off_t)(rand_r(&seed) % slots) * (off_t)r->read_size;
      if (pread(fd, buf, r->read_size, off) != (ssize_t)r->read_size)
        abort();
      consume(r, "pread", (uint64_t)off, buf);
      bytes += r->read_size;
    }
  }
  close(fd);
  return bytes / (t - start) / 1e6;
}

static double bench_peer(const run *r, pm_peer *peer, char *buf) {
  size_t slots = r->file_bytes / r->read_size;
  uint64_t bytes = 0;
  unsigned seed = 1;
  double start = now_s(), t;
  while ((t = now_s()) - start < r->seconds) {
    for (int i = 0; i < 64; i++) {
      uint64_t off = (uint64_t)(rand_r(&seed) % slots) * r->read_size;
      if (pm_read(peer, r->path, off, buf, r->read_size) !=
          (ssize_t)r->read_size) {
        fprintf(stderr, "pm_read: %s\n", pm_peer_errmsg(peer));
        abort();
      }
      consume(r, "pm_read", off, buf);
      bytes += r->read_size;
    }
  }
  return bytes / (t - start) / 1e6;
}

static double bench_map(const run *r, pm_peer *peer) {
  size_t slots = r->file_bytes / r->read_size;
  uint64_t bytes = 0;
  unsigned seed = 1;
  double start = now_s(), t;
  while ((t = now_s()) - start < r->seconds) {
    for (int i = 0; i < 64; i++) {
      uint64_t off = (uint64_t)(rand_r(&seed) % slots) * r->read_size;
      pm_mapping m;
      if (pm_map(peer, r->path, off, r->read_size, &m) != 0 ||
          m.length != r->read_size) {
        fprintf(stderr, "pm_map: %s\n", pm_peer_errmsg(peer));
        abort();
      }
      consume(r, "pm_map", off, m.data);
      pm_unmap(peer, &m);
      bytes += r->read_size;
    }
  }
  return bytes / (t - start) / 1e6;
}

static pm_peer *open_peer(const char *dir, uint64_t ram, const run *r) {
  pm_options o;
  pm_options_init(&o);
  o.cache_dir = dir;
  o.ram_capacity = ram;
  o.disk_capacity = r->file_bytes * 2;
  o.readahead_pages = 0;
  pm_peer *peer;
  if (pm_peer_open(&o, &peer) != 0) {
    fprintf(stderr, "open: %s\n", pm_peer_errmsg(NULL));
    exit(1);
  }
  /* Warm: one pass over the whole object. */
  char *buf = malloc(8 << 20);
  for (uint64_t off = 0; off < r->file_bytes; off += 8 << 20)
    pm_read(peer, r->path, off, buf, 8 << 20);
  free(buf);
  return peer;
}

int main(int argc, char **argv) {
  const char *base = argc > 1 ? argv[1] : "/tmp";
  size_t mib = argc > 2 ? (size_t)atoi(argv[2]) : 256;
  double secs = argc > 3 ? atof(argv[3]) : 2.0;
  char dir[4096], path[4200], cache_disk[4200], cache_ram[4200];
  snprintf(dir, sizeof dir, "%s/pm-bench-local-%d", base, (int)getpid());
  snprintf(path, sizeof path, "%s/object.bin", dir);
  snprintf(cache_disk, sizeof cache_disk, "%s/cache-disk", dir);
  snprintf(cache_ram, sizeof cache_ram, "%s/cache-ram", dir);
  mkdir(dir, 0755);
  run r = {.path = path, .file_bytes = mib << 20, .seconds = secs};
  if (make_file(&r) != 0)
    return perror("make_file"), 1;
  pm_peer *disk_peer = open_peer(cache_disk, 0, &r);
  pm_peer *ram_peer = open_peer(cache_ram, (uint64_t)(mib + 16) << 20, &r);
  pm_peer *attached = open_peer(cache_disk, 0, &r); /* attaches */
  char *buf = aligned_alloc(4096, 16 << 20);
  size_t sizes[] = {64 << 10, 1 << 20};
  printf("# local-hit throughput, %zu MiB object, %.1f s per cell, 1 thread\n",
         mib, secs);
  printf("| read size | pread MB/s | disk tier | ratio | RAM tier | ratio | "
         "attached pm_read | ratio | attached pm_map | ratio |\n"
         "|---|---|---|---|---|---|---|---|---|---|\n");
  /* the goals are the 1 MiB row's own figures, not another run's */
  double base_mbs = 0, disk_mbs = 0, map_mbs = 0;
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    r.read_size = sizes[i];
    base_mbs = bench_pread(&r, buf);
    disk_mbs = bench_peer(&r, disk_peer, buf);
    double ram_mbs = bench_peer(&r, ram_peer, buf);
    double att_mbs = bench_peer(&r, attached, buf);
    map_mbs = bench_map(&r, attached);
    printf("| %zu KiB | %.0f | %.0f | %.2f | %.0f | %.2f | %.0f | %.2f | %.0f "
           "| %.2f |\n", sizes[i] >> 10, base_mbs, disk_mbs,
           disk_mbs / base_mbs, ram_mbs, ram_mbs / base_mbs, att_mbs,
           att_mbs / base_mbs, map_mbs, map_mbs / base_mbs);
  }
  printf("\ngoal: disk-tier local hits >= 0.8x pread for 1 MiB reads: %.2f "
         "-> %s\n", disk_mbs / base_mbs, disk_mbs / base_mbs >= 0.8 ? "PASS" :
         "FALLS SHORT");
  printf("goal: attached reader through the mapping >= 0.9x pread for 1 MiB "
         "reads: %.2f -> %s\n", map_mbs / base_mbs,
         map_mbs / base_mbs >= 0.9 ? "PASS" : "FALLS SHORT");
  pm_peer_close(attached);
  pm_peer_close(disk_peer);
  pm_peer_close(ram_peer);
  free(buf);
  free(r.block_sums);
  char cmd[4300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) != 0;
}
