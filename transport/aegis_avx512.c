/*
 * transport/aegis_avx512.c - AEGIS-128X4 on 512-bit registers: one
 * register holds a whole row (all four lanes), one VAES instruction
 * advances it. Compiled with -mavx512f -mvaes (CMakeLists.txt); called
 * only after aegis.c has seen the CPU run both.
 */
#if defined(__x86_64__)
#include <immintrin.h>
#include <stdint.h>

typedef __m512i vec;
#define VEC_BYTES 64

static inline vec vec_load(const uint8_t *bytes) {
  return _mm512_loadu_si512((const void *)bytes);
}
static inline void vec_store(uint8_t *bytes, vec v) {
  _mm512_storeu_si512((void *)bytes, v);
}
static inline vec vec_xor(vec a, vec b) { return _mm512_xor_si512(a, b); }
static inline vec vec_and(vec a, vec b) { return _mm512_and_si512(a, b); }
static inline vec vec_round(vec block, vec key) {
  return _mm512_aesenc_epi128(block, key);
}
static inline vec vec_broadcast(const uint8_t block[16]) {
  return _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)block));
}

#define AEGIS_OPS pm__aegis_avx512
#define AEGIS_NAME "avx512-vaes"
#include "aegis_impl.h"
#endif
