/*
 * core/page_id.c - page ids and page checksums, both XXH3-128.
 *
 * Where libxxhash has its x86 dispatcher (PM_HAVE_XXH_DISPATCH, found by
 * CMake), its header maps XXH3_128bits and XXH3_128bits_update to the
 * entry points that choose the widest vector code the CPU has at run
 * time. Same hashes, about 4.5x faster on a page than the SSE2 code
 * behind the plain names of the distribution's library. Page checksums
 * take AVX2 code of our own build instead where the CPU runs it
 * (PM_HAVE_XXH3_AVX2: core/checksum_avx2.c says why); page ids, a few
 * dozen bytes each, stay with the library.
 */
#include <string.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>
#ifdef PM_HAVE_XXH_DISPATCH
#include <xxh_x86dispatch.h>
#endif

#include "core_int.h"
#ifdef PM_HAVE_XXH3_AVX2
#include "checksum_avx2.h"
#endif

static void put_le64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static void hash128_to_bytes(XXH128_hash_t h, uint8_t out[16]) {
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, h);
  memcpy(out, c.digest, 16);
}

pm_page_id pm__page_id(const char *uri, const char *version,
                       uint64_t page_index, uint32_t page_size) {
  XXH3_state_t state;
  uint8_t tail[12];
  pm_page_id id;
  XXH3_128bits_reset(&state);
  XXH3_128bits_update(&state, uri, strlen(uri) + 1);
  XXH3_128bits_update(&state, version, strlen(version) + 1);
  put_le64(tail, page_index);
  for (int i = 0; i < 4; i++)
    tail[8 + i] = (uint8_t)(page_size >> (8 * i));
  XXH3_128bits_update(&state, tail, sizeof tail);
  hash128_to_bytes(XXH3_128bits_digest(&state), id.bytes);
  return id;
}

void pm__page_id_hex(const pm_page_id *id, char out[33]) {
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < 16; i++) {
    out[2 * i] = digits[id->bytes[i] >> 4];
    out[2 * i + 1] = digits[id->bytes[i] & 15];
  }
  out[32] = '\0';
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int pm__page_id_parse(const char *hex, pm_page_id *out) {
  for (int i = 0; i < 16; i++) {
    int hi = hex_value(hex[2 * i]);
    int lo = hi < 0 ? -1 : hex_value(hex[2 * i + 1]);
    if (lo < 0)
      return PM_EINVAL;
    out->bytes[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}

bool pm__page_id_eq(const pm_page_id *a, const pm_page_id *b) {
  return memcmp(a->bytes, b->bytes, 16) == 0;
}

uint64_t pm__page_id_hash(const pm_page_id *id) {
  uint64_t h;
  memcpy(&h, id->bytes, sizeof h);
  return h;
}

/* ---- page checksums ------------------------------------------------------ */

typedef struct checksum_code {
  void (*oneshot)(const void *data, size_t length, uint8_t out[16]);
  void (*reset)(void *state);
  void (*update)(void *state, const void *data, size_t length);
  void (*digest)(const void *state, uint8_t out[16]);
} checksum_code;

static void lib_oneshot(const void *data, size_t length, uint8_t out[16]) {
  hash128_to_bytes(XXH3_128bits(data, length), out);
}

static void lib_reset(void *state) { XXH3_128bits_reset(state); }

static void lib_update(void *state, const void *data, size_t length) {
  XXH3_128bits_update(state, data, length);
}

static void lib_digest(const void *state, uint8_t out[16]) {
  hash128_to_bytes(XXH3_128bits_digest(state), out);
}

static const checksum_code lib_code = {lib_oneshot, lib_reset, lib_update,
                                       lib_digest};
#ifdef PM_HAVE_XXH3_AVX2
static const checksum_code avx2_code = {pm__xxh3_avx2, pm__xxh3_avx2_reset,
                                        pm__xxh3_avx2_update,
                                        pm__xxh3_avx2_digest};
#endif

/* Chosen once (two threads racing here choose the same). */
static const checksum_code *code(void) {
  static const checksum_code *chosen;
  const checksum_code *c = __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);
  if (c)
    return c;
  c = &lib_code;
#ifdef PM_HAVE_XXH3_AVX2
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) /* the kernel saves its registers */
    c = &avx2_code;
#endif
  __atomic_store_n(&chosen, c, __ATOMIC_RELEASE);
  return c;
}

const char *pm__checksum_code(void) {
  return code() == &lib_code ? "libxxhash" : "avx2";
}

pm_checksum pm__checksum(const void *data, size_t length) {
  pm_checksum sum;
  code()->oneshot(data, length, sum.bytes);
  return sum;
}

pm_checksum_state *pm__checksum_state_new(void) {
  return XXH3_createState();
}

void pm__checksum_state_free(pm_checksum_state *state) {
  XXH3_freeState(state);
}

void pm__checksum_reset(pm_checksum_state *state) {
  code()->reset(state);
}

void pm__checksum_update(pm_checksum_state *state, const void *data,
                         size_t length) {
  code()->update(state, data, length);
}

pm_checksum pm__checksum_final(pm_checksum_state *state) {
  pm_checksum sum;
  code()->digest(state, sum.bytes);
  return sum;
}

pm_checksum pm__copy_checksum(void *dst, const void *src, size_t length) {
  enum { CHUNK = 32u << 10 };
  const checksum_code *c = code();
  XXH3_state_t state;
  c->reset(&state);
  uint8_t *d = dst;
  const uint8_t *s = src;
  for (size_t off = 0; off < length; off += CHUNK) {
    size_t n = PM_MIN((size_t)CHUNK, length - off);
    pm__copy(d + off, s + off, n);
    c->update(&state, d + off, n);
  }
  pm_checksum sum;
  c->digest(&state, sum.bytes);
  return sum;
}
