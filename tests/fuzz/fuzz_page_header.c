/*
 * tests/fuzz/fuzz_page_header.c - libFuzzer target for the page file
 * header decoder (core/disk_tier_format.c), the one place the store reads
 * bytes it may not have written. Input: one flag byte, then up to 4096
 * bytes of header block. If the flag's low bit is set, the header checksum
 * is recomputed over the fuzzed bytes first, so that the field checks
 * behind it get exercised, not only the checksum. A header that decodes
 * must re-encode to the very same block.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/disk_tier.h"

static void reseal(uint8_t *block) {
  pm_checksum sum = pm__checksum(block, PM_PAGE_SUM_OFFSET);
  memcpy(block + PM_PAGE_SUM_OFFSET, sum.bytes, sizeof sum.bytes);
}

static void check_decoded(const pm_page_header *header,
                          const uint8_t *block) {
  static uint8_t again[PM_PAGE_HEADER_SIZE];
  if (header->uri_length > PM_PAGE_URI_MAX ||
      strlen(header->uri) != header->uri_length ||
      header->data_length > PM_PAGE_DATA_MAX)
    abort();
  pm__page_header_encode(header, again);
  if (memcmp(again, block, PM_PAGE_HEADER_SIZE) != 0)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static uint8_t block[PM_PAGE_HEADER_SIZE];
  static pm_page_header header;
  if (size == 0)
    return 0;
  bool fix_checksum = data[0] & 1;
  data++;
  size--;
  size_t used = size < sizeof block ? size : sizeof block;
  memset(block, 0, sizeof block);
  memcpy(block, data, used);
  if (fix_checksum) {
    reseal(block);
    used = sizeof block;
  }
  if (pm__page_header_decode(block, used, &header) == 0)
    check_decoded(&header, block);
  return 0;
}
