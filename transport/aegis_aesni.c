/*
 * transport/aegis_aesni.c - AEGIS-128X4 on 128-bit registers: one lane
 * per register, four registers per row, for x86-64 CPUs with AES-NI but
 * no VAES. Compiled with -maes (CMakeLists.txt); called only after
 * aegis.c has seen the CPU run it.
 */
#if defined(__x86_64__)
#include <immintrin.h>
#include <stdint.h>

typedef __m128i vec;
#define VEC_BYTES 16

static inline vec vec_load(const uint8_t *bytes) {
  return _mm_loadu_si128((const __m128i *)bytes);
}
static inline void vec_store(uint8_t *bytes, vec v) {
  _mm_storeu_si128((__m128i *)bytes, v);
}
static inline vec vec_xor(vec a, vec b) { return _mm_xor_si128(a, b); }
static inline vec vec_and(vec a, vec b) { return _mm_and_si128(a, b); }
static inline vec vec_round(vec block, vec key) {
  return _mm_aesenc_si128(block, key);
}
static inline vec vec_broadcast(const uint8_t block[16]) {
  return _mm_loadu_si128((const __m128i *)block);
}

#define AEGIS_OPS pm__aegis_aesni
#define AEGIS_NAME "aes-ni"
#include "aegis_impl.h"
#endif
