/*
 * tests/core/test_checksum.c - page checksums are XXH3-128 in canonical
 * (big-endian) byte order, whichever code the library picks at run time:
 * known answers from an independent implementation (Python's xxhash 4.1,
 * recorded below), the same value from the one-shot, streaming and
 * copy-and-checksum entry points, over sizes that cross each of XXH3's
 * internal code paths. Stored checksums are part of the disk tier's format,
 * so a faster hash that changed a value would make every cached page fail
 * its verification. The code in use (our AVX2 build where the CPU runs
 * AVX2, else the library's) must equal the library's plain SSE2 entry
 * point, byte for byte, over every length up to a few KiB and random
 * splits of large pages.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "core/core_int.h"

TestSuite(checksum, .timeout = 30);

static const struct {
  size_t length;
  const char *hex;
} known[] = {
    {0, "99aa06d3014798d86001c324468d497f"},
    {1, "a6cd5e9392000f6ac44bdff4074eecdb"},
    {16, "248181305d3c1039adebb1d9d080b69c"},
    {17, "825a0db7d0afe2c0cfea252f6b7ed7e9"},
    {128, "08df79f520370b525cfea347ea4bb687"},
    {129, "fc1d02037be48a62821740ece8839b64"},
    {240, "8406fbd017acdf4e687f00a7f64e46db"},
    {241, "d894c74b1b3ea28f44dbd3180a664e27"},
    {4096, "f3bda29489a478499f544112e3e91bb5"},
    {65536, "5b9ee82cbb7745bfc4717f32a25f9b2b"},
    {1048579, "06ed47f222355a8c7b65544e7ece41c5"},
};

/* The bytes the known answers were computed over. */
static uint8_t *pattern(size_t length) {
  uint8_t *data = malloc(length ? length : 1);
  for (size_t i = 0; i < length; i++)
    data[i] = (uint8_t)(i * 131 + (i >> 8) * 7);
  return data;
}

static void hex_of(const pm_checksum *sum, char out[33]) {
  for (int i = 0; i < 16; i++)
    snprintf(out + 2 * i, 3, "%02x", sum->bytes[i]);
}

Test(checksum, matches_known_answers) {
  for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
    uint8_t *data = pattern(known[k].length);
    pm_checksum sum = pm__checksum(data, known[k].length);
    char hex[33];
    hex_of(&sum, hex);
    cr_expect_str_eq(hex, known[k].hex, "%zu bytes", known[k].length);
    free(data);
  }
}

Test(checksum, every_entry_point_agrees) {
  pm_checksum_state *state = pm__checksum_state_new();
  cr_assert_not_null(state);
  for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
    size_t length = known[k].length;
    uint8_t *data = pattern(length);
    uint8_t *copy = malloc(length ? length : 1);
    pm_checksum one = pm__checksum(data, length);
    pm_checksum copied = pm__copy_checksum(copy, data, length);
    cr_expect_eq(memcmp(one.bytes, copied.bytes, 16), 0, "%zu", length);
    cr_expect_eq(memcmp(copy, data, length), 0, "copy of %zu", length);
    /* streamed in uneven pieces */
    pm__checksum_reset(state);
    for (size_t off = 0, step = 1; off < length; off += step, step = step * 3 + 5)
      pm__checksum_update(state, data + off, PM_MIN(step, length - off));
    pm_checksum streamed = pm__checksum_final(state);
    cr_expect_eq(memcmp(one.bytes, streamed.bytes, 16), 0, "%zu", length);
    free(copy);
    free(data);
  }
  pm__checksum_state_free(state);
}

Test(checksum, one_flipped_bit_changes_it) {
  size_t length = 65536;
  uint8_t *data = pattern(length);
  pm_checksum before = pm__checksum(data, length);
  for (size_t bit = 0; bit < length * 8; bit += 4099) {
    data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    pm_checksum after = pm__checksum(data, length);
    cr_expect_neq(memcmp(before.bytes, after.bytes, 16), 0, "bit %zu", bit);
    data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
  }
  free(data);
}

static void library_sum(const void *data, size_t length, uint8_t out[16]) {
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, XXH3_128bits(data, length));
  memcpy(out, canonical.digest, 16);
}

Test(checksum, the_code_in_use_equals_the_library) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2"))
    cr_expect_str_eq(pm__checksum_code(), "avx2");
#endif
  cr_log_info("checksum code: %s", pm__checksum_code());
  enum { LARGE = (1u << 20) + 4099 };
  uint8_t *data = malloc(LARGE);
  uint64_t x = 0x9e3779b97f4a7c15u;
  for (size_t i = 0; i < LARGE; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    data[i] = (uint8_t)x;
  }
  pm_checksum_state *state = pm__checksum_state_new();
  cr_assert_not_null(state);
  size_t lengths[4200];
  size_t count = 0;
  for (size_t n = 0; n <= 4096; n++)
    lengths[count++] = n;
  size_t large[] = {65535, 65536, 65537, 131072 + 17, 1u << 20, LARGE};
  for (size_t k = 0; k < sizeof large / sizeof large[0]; k++)
    lengths[count++] = large[k];
  for (size_t k = 0; k < count; k++) {
    size_t n = lengths[k];
    const uint8_t *bytes = data + (k % 61); /* unaligned starts too */
    if (n + 61 > LARGE)
      bytes = data;
    uint8_t want[16];
    library_sum(bytes, n, want);
    pm_checksum one = pm__checksum(bytes, n);
    cr_assert_eq(memcmp(one.bytes, want, 16), 0, "one-shot, %zu bytes", n);
    if (n < 1024 && n % 7)
      continue; /* streaming: a sample of the small ones, all large */
    pm__checksum_reset(state);
    for (size_t off = 0; off < n;) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      size_t step = PM_MIN((size_t)(x % 70000) + 1, n - off);
      pm__checksum_update(state, bytes + off, step);
      off += step;
    }
    pm_checksum streamed = pm__checksum_final(state);
    cr_assert_eq(memcmp(streamed.bytes, want, 16), 0, "streamed, %zu bytes",
                 n);
  }
  pm__checksum_state_free(state);
  free(data);
}
