/*
 * perf/bench_page_file.h - what the transport benchmarks serve: pages in
 * an unlinked temporary file (in the page cache after it is written), by
 * reference through pm_page_server.serve_file with their checksums
 * computed once, as an owner serves the pages of its disk tier. Page i of
 * a request is page (page_index % count) of the file, MAX bytes apart;
 * checksums are kept for two page sizes. Header-only: one benchmark
 * includes it.
 */
#ifndef PM_BENCH_PAGE_FILE_H
#define PM_BENCH_PAGE_FILE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core_int.h"
#include "pagemesh/transport.h"

#define BENCH_FILE_PAGES_MAX 64

static struct {
  int fd;
  unsigned count;
  uint32_t stride, sizes[2];
  pm_checksum sums[2][BENCH_FILE_PAGES_MAX];
} bench_file = {.fd = -1};

/* Write `count` pages of `stride` bytes each; checksum their first
 * sizes[0] and sizes[1] bytes. Exits on failure. */
static void bench_page_file_make(uint8_t *const *pages, unsigned count,
                                 uint32_t stride, uint32_t size0,
                                 uint32_t size1) {
  char path[] = "/tmp/pm-bench-pages-XXXXXX";
  bench_file.fd = mkstemp(path);
  if (bench_file.fd < 0 || count > BENCH_FILE_PAGES_MAX) {
    perror("bench page file");
    exit(1);
  }
  unlink(path);
  bench_file.count = count;
  bench_file.stride = stride;
  bench_file.sizes[0] = size0;
  bench_file.sizes[1] = size1;
  for (unsigned i = 0; i < count; i++) {
    if (pwrite(bench_file.fd, pages[i], stride, (off_t)i * stride) !=
        (ssize_t)stride) {
      perror("pwrite");
      exit(1);
    }
    bench_file.sums[0][i] = pm__checksum(pages[i], size0);
    bench_file.sums[1][i] = pm__checksum(pages[i], size1);
  }
}

static int bench_serve_file(void *arg, const pm_page_request *req,
                            pm_page_file *out) {
  (void)arg;
  unsigned i = (unsigned)(req->page_index % bench_file.count);
  int which = req->page_size == bench_file.sizes[1];
  if (!which && req->page_size != bench_file.sizes[0])
    return PM_ENOENT;
  out->fd = dup(bench_file.fd);
  if (out->fd < 0)
    return PM_EIO;
  out->offset = (uint64_t)i * bench_file.stride;
  out->length = req->page_size;
  memcpy(out->checksum, bench_file.sums[which][i].bytes, 16);
  return 0;
}

#endif /* PM_BENCH_PAGE_FILE_H */
