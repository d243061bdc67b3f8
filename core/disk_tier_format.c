/*
 * core/disk_tier_format.c - the page file format of the disk tier: the
 * 4096-byte header block (see core/disk_tier.h for the layout), encoded
 * and decoded field by field in little-endian, and the file naming scheme.
 * The decoder is the one piece of the store that reads bytes it did not
 * write (a crash, another program, a bit flip): it trusts nothing, and is
 * fuzzed by tests/fuzz/fuzz_page_header.c.
 */
#include <string.h>

#include "disk_tier.h"

static const uint8_t page_magic[8] = {0x89, 'P', 'M', 'P', 'A', 'G', 'E',
                                      '\n'};

static void put_le32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

static uint64_t get_le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

void pm__page_header_init(pm_page_header *header, const pm_page_id *id,
                          const char *uri, const void *data, size_t length) {
  size_t uri_length = strlen(uri);
  header->id = *id;
  header->data_length = length;
  header->data_sum = pm__checksum(data, length);
  header->created_ns = pm__wall_ns();
  header->flags = 0;
  if (uri_length > PM_PAGE_URI_MAX) {
    uri_length = PM_PAGE_URI_MAX;
    header->flags |= PM_PAGE_URI_TRUNCATED;
  }
  header->uri_length = (uint32_t)uri_length;
  memcpy(header->uri, uri, uri_length);
  header->uri[uri_length] = '\0';
}

void pm__page_header_encode(const pm_page_header *header,
                            uint8_t block[PM_PAGE_HEADER_SIZE]) {
  memset(block, 0, PM_PAGE_HEADER_SIZE);
  memcpy(block, page_magic, sizeof page_magic);
  put_le32(block + 8, PM_PAGE_FORMAT_VERSION);
  put_le32(block + 12, PM_PAGE_HEADER_SIZE);
  memcpy(block + 16, header->id.bytes, 16);
  put_le64(block + 32, header->data_length);
  memcpy(block + 40, header->data_sum.bytes, 16);
  put_le64(block + 56, (uint64_t)header->created_ns);
  put_le32(block + 64, header->flags);
  put_le32(block + 68, header->uri_length);
  memcpy(block + PM_PAGE_URI_OFFSET, header->uri, header->uri_length);
  pm_checksum sum = pm__checksum(block, PM_PAGE_SUM_OFFSET);
  memcpy(block + PM_PAGE_SUM_OFFSET, sum.bytes, 16);
}

/* The fixed fields: magic, version, sizes, flags. */
static int check_fixed_fields(const uint8_t *block) {
  if (memcmp(block, page_magic, sizeof page_magic) != 0)
    return pm__errf(PM_ECORRUPT, "not a page file (bad magic)");
  if (get_le32(block + 8) != PM_PAGE_FORMAT_VERSION)
    return pm__errf(PM_ECORRUPT, "unknown page format version %u",
                    (unsigned)get_le32(block + 8));
  if (get_le32(block + 12) != PM_PAGE_HEADER_SIZE)
    return pm__errf(PM_ECORRUPT, "bad header size %u",
                    (unsigned)get_le32(block + 12));
  if (get_le64(block + 32) > PM_PAGE_DATA_MAX)
    return pm__errf(PM_ECORRUPT, "data length %llu too large",
                    (unsigned long long)get_le64(block + 32));
  if (get_le32(block + 64) & ~PM_PAGE_URI_TRUNCATED)
    return pm__errf(PM_ECORRUPT, "unknown header flags %#x",
                    (unsigned)get_le32(block + 64));
  if (get_le32(block + 68) > PM_PAGE_URI_MAX)
    return pm__errf(PM_ECORRUPT, "URI length %u too large",
                    (unsigned)get_le32(block + 68));
  return 0;
}

/* The URI has no NUL and is followed only by zeros. */
static int check_uri_and_padding(const uint8_t *block, uint32_t uri_length) {
  const uint8_t *uri = block + PM_PAGE_URI_OFFSET;
  if (memchr(uri, 0, uri_length))
    return pm__errf(PM_ECORRUPT, "NUL byte in the URI");
  for (uint32_t i = PM_PAGE_URI_OFFSET + uri_length; i < PM_PAGE_SUM_OFFSET;
       i++)
    if (block[i] != 0)
      return pm__errf(PM_ECORRUPT, "non-zero padding at byte %u",
                      (unsigned)i);
  return 0;
}

int pm__page_header_decode(const uint8_t *block, size_t size,
                           pm_page_header *out) {
  if (size < PM_PAGE_HEADER_SIZE)
    return pm__errf(PM_ECORRUPT, "header cut short (%zu bytes)", size);
  pm_checksum sum = pm__checksum(block, PM_PAGE_SUM_OFFSET);
  if (memcmp(sum.bytes, block + PM_PAGE_SUM_OFFSET, 16) != 0)
    return pm__errf(PM_ECORRUPT, "header checksum mismatch");
  int rc = check_fixed_fields(block);
  if (rc < 0)
    return rc;
  uint32_t uri_length = get_le32(block + 68);
  rc = check_uri_and_padding(block, uri_length);
  if (rc < 0)
    return rc;
  memcpy(out->id.bytes, block + 16, 16);
  out->data_length = get_le64(block + 32);
  memcpy(out->data_sum.bytes, block + 40, 16);
  out->created_ns = (int64_t)get_le64(block + 56);
  out->flags = get_le32(block + 64);
  out->uri_length = uri_length;
  memcpy(out->uri, block + PM_PAGE_URI_OFFSET, uri_length);
  out->uri[uri_length] = '\0';
  return 0;
}

void pm__page_path(const pm_page_id *id, char out[PM_PAGE_PATH_MAX]) {
  char hex[33];
  pm__page_id_hex(id, hex);
  memcpy(out, hex, 2);
  out[2] = '/';
  memcpy(out + 3, hex, 32);
  memcpy(out + 35, ".pg", 4);
}

int pm__page_name_parse(const char *name, pm_page_id *out) {
  if (strlen(name) != 35 || strcmp(name + 32, ".pg") != 0)
    return PM_EINVAL;
  for (int i = 0; i < 32; i++)
    if (!((name[i] >= '0' && name[i] <= '9') ||
          (name[i] >= 'a' && name[i] <= 'f')))
      return PM_EINVAL;
  return pm__page_id_parse(name, out);
}
