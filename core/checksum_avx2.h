/*
 * core/checksum_avx2.h - XXH3-128 in AVX2 code (core/checksum_avx2.c),
 * built where CMake defines PM_HAVE_XXH3_AVX2 (x86-64). Call only where
 * the CPU runs AVX2. `state` is an XXH3_state_t from XXH3_createState;
 * digests are in canonical (big-endian) byte order, as pm_checksum.
 */
#ifndef PM_CORE_CHECKSUM_AVX2_H
#define PM_CORE_CHECKSUM_AVX2_H

#include <stddef.h>
#include <stdint.h>

void pm__xxh3_avx2(const void *data, size_t length, uint8_t out[16]);
void pm__xxh3_avx2_reset(void *state);
void pm__xxh3_avx2_update(void *state, const void *data, size_t length);
void pm__xxh3_avx2_digest(const void *state, uint8_t out[16]);

#endif /* PM_CORE_CHECKSUM_AVX2_H */
