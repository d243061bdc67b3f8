/*
 * transport/aegis_avx2.c - AEGIS-128X4 on 256-bit registers: two lanes
 * per register, two registers per row. Compiled with -mavx2 -mvaes
 * (CMakeLists.txt); called only after aegis.c has seen the CPU run both.
 */
#if defined(__x86_64__)
#include <immintrin.h>
#include <stdint.h>

typedef __m256i vec;
#define VEC_BYTES 32

static inline vec vec_load(const uint8_t *bytes) {
  return _mm256_loadu_si256((const __m256i *)bytes);
}
static inline void vec_store(uint8_t *bytes, vec v) {
  _mm256_storeu_si256((__m256i *)bytes, v);
}
static inline vec vec_xor(vec a, vec b) { return _mm256_xor_si256(a, b); }
static inline vec vec_and(vec a, vec b) { return _mm256_and_si256(a, b); }
static inline vec vec_round(vec block, vec key) {
  return _mm256_aesenc_epi128(block, key);
}
static inline vec vec_broadcast(const uint8_t block[16]) {
  return _mm256_broadcastsi128_si256(
      _mm_loadu_si128((const __m128i *)block));
}

#define AEGIS_OPS pm__aegis_avx2
#define AEGIS_NAME "avx2-vaes"
#include "aegis_impl.h"
#endif
