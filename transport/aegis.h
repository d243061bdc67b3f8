/*
 * transport/aegis.h - AEGIS-128X4, the cipher of page bytes on a tcp
 * connection whose two ends both have AES instructions (tcp_bulk.c).
 *
 * AEGIS-128X4 is the four-lane member of the AEGIS family
 * (draft-irtf-cfrg-aegis-aead): an AES-round-based authenticated cipher
 * with a 128-bit key, a 128-bit nonce and (here) a 128-bit tag. Its lanes
 * are independent until the tag, so one AES instruction on a 512-bit
 * register advances all four: on the VM we measure on it seals ~50 GB/s
 * per core with AVX-512 VAES, ~30 GB/s with AVX2 VAES, where OpenSSL's
 * AES-256-GCM does ~5.4 GB/s (perf/bench_transport_tcp shows both).
 *
 * Three builds of the same algorithm (aegis_impl.h) differ only in the
 * register width: 512-bit (AVX-512F + VAES), 256-bit (AVX2 + VAES) and
 * 128-bit (AES-NI); all produce the same bytes, and the published test
 * vectors are checked on each the CPU can run (tests/transport/
 * test_aegis.c). Off x86-64, or on a CPU without AES-NI, there is none,
 * and tcp keeps AES-256-GCM.
 */
#ifndef PM_AEGIS_H
#define PM_AEGIS_H

#include <stddef.h>
#include <stdint.h>

#define PM_AEGIS_KEY 16u
#define PM_AEGIS_NONCE 16u
#define PM_AEGIS_TAG 16u

typedef struct pm_aegis_ops {
  const char *name; /* "avx512-vaes", "avx2-vaes", "aes-ni" */
  /* Encrypt `length` bytes of in into out (out may be in) and write the
   * tag, which also covers the `ad_length` bytes of ad. Cannot fail. */
  void (*seal)(const uint8_t key[PM_AEGIS_KEY],
               const uint8_t nonce[PM_AEGIS_NONCE], const uint8_t *ad,
               size_t ad_length, const uint8_t *in, size_t length,
               uint8_t *out, uint8_t tag[PM_AEGIS_TAG]);
  /* Decrypt `length` bytes of in into out (out may be in) and check the
   * tag in constant time. Returns 0, or -1 when the tag does not verify;
   * out is then all zeros, so no unauthenticated byte is left behind. */
  int (*open)(const uint8_t key[PM_AEGIS_KEY],
              const uint8_t nonce[PM_AEGIS_NONCE], const uint8_t *ad,
              size_t ad_length, const uint8_t *in, size_t length,
              uint8_t *out, const uint8_t tag[PM_AEGIS_TAG]);
} pm_aegis_ops;

typedef enum pm_aegis_width {
  PM_AEGIS_AESNI, /* 128-bit registers, AES-NI */
  PM_AEGIS_AVX2,  /* 256-bit registers, AVX2 + VAES */
  PM_AEGIS_AVX512, /* 512-bit registers, AVX-512F + VAES */
  PM_AEGIS_WIDTHS
} pm_aegis_width;

/* The build of one width, or NULL when this CPU (or this build's target)
 * cannot run it. */
const pm_aegis_ops *pm__aegis_ops(pm_aegis_width width);

/* The widest build this CPU runs, or NULL when it runs none. */
const pm_aegis_ops *pm__aegis_best(void);

#endif
