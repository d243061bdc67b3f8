/* What the transport tests' servers hand out through serve_file: a page
 * in an unlinked temporary file, 4096 bytes in, with its checksum (spoilt
 * on request, to see the requester refuse it). Header-only. */
#ifndef PM_TEST_PAGE_FILE_FIXTURE_H
#define PM_TEST_PAGE_FILE_FIXTURE_H

#include <stdbool.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/core_int.h"
#include "pagemesh/transport.h"

/* Fill *out with `page` (length bytes) by reference; frees page. Returns
 * 0 or PM_EIO. */
static inline int page_file_fixture(uint8_t *page, size_t length,
                                    bool bad_checksum, pm_page_file *out) {
  char path[] = "/tmp/pm-test-page-XXXXXX";
  int fd = mkstemp(path);
  if (fd >= 0)
    unlink(path);
  bool written = fd >= 0 && pwrite(fd, page, length, 4096) ==
                                (ssize_t)length;
  pm_checksum sum = pm__checksum(page, length);
  free(page);
  if (!written) {
    if (fd >= 0)
      close(fd);
    return pm__errf(PM_EIO, "test server: cannot write a page file");
  }
  sum.bytes[3] ^= bad_checksum ? 0x40 : 0;
  *out = (pm_page_file){.fd = fd, .offset = 4096, .length = length};
  memcpy(out->checksum, sum.bytes, sizeof out->checksum);
  return 0;
}

/* Drop the page's bytes from the page cache; true if none is resident
 * afterwards (best effort: the kernel may keep them). */
static inline bool page_file_evict(const pm_page_file *file) {
  if (fdatasync(file->fd) != 0 ||
      posix_fadvise(file->fd, 0, 0, POSIX_FADV_DONTNEED) != 0)
    return false;
  size_t len = (size_t)file->offset + file->length;
  void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, file->fd, 0);
  if (map == MAP_FAILED)
    return false;
  size_t pages = (len + 4095) / 4096;
  unsigned char *vec = malloc(pages);
  bool resident = !vec || mincore(map, len, vec) != 0;
  for (size_t i = (size_t)file->offset / 4096; vec && !resident && i < pages;
       i++)
    resident = (vec[i] & 1) != 0;
  free(vec);
  munmap(map, len);
  return !resident;
}

#endif /* PM_TEST_PAGE_FILE_FIXTURE_H */
