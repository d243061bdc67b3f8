/*
 * core/checksum_avx2.c - XXH3-128 of page bytes in AVX2 code: xxhash.h's
 * own code, inlined here and compiled with -mavx2 (CMakeLists.txt);
 * core/page_id.c calls it only on a CPU (and kernel) that runs AVX2.
 *
 * Why not libxxhash's dispatcher alone: where the CPU has AVX-512 it
 * picks the AVX-512 code, which hashes a page no faster here (43 against
 * 41 GB/s for 64 KiB, alone) but slowed the rest of a busy process: 64 KiB
 * GETs in the clear at queue depth 8 (bench_transport_tcp) moved 5.1-5.3
 * GB/s with it and 5.5-5.6 GB/s with this code, side by side (the
 * wide registers' state is saved and restored at every context switch
 * once used, and wide instructions may lower the core's clock).
 *
 * States are XXH3_state_t of libxxhash's layout (the same header), made
 * by XXH3_createState; one state is used by one implementation only.
 */
#if defined(__x86_64__) && defined(__AVX2__)
#include <string.h>

#define XXH_INLINE_ALL
#define XXH_VECTOR XXH_AVX2
#include <xxhash.h>

#include "core/checksum_avx2.h"

static void to_bytes(XXH128_hash_t hash, uint8_t out[16]) {
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, hash);
  memcpy(out, canonical.digest, 16);
}

void pm__xxh3_avx2(const void *data, size_t length, uint8_t out[16]) {
  to_bytes(XXH3_128bits(data, length), out);
}

void pm__xxh3_avx2_reset(void *state) {
  XXH3_128bits_reset((XXH3_state_t *)state);
}

void pm__xxh3_avx2_update(void *state, const void *data, size_t length) {
  XXH3_128bits_update((XXH3_state_t *)state, data, length);
}

void pm__xxh3_avx2_digest(const void *state, uint8_t out[16]) {
  to_bytes(XXH3_128bits_digest((const XXH3_state_t *)state), out);
}
#endif
