/*
 * transport/aegis.c - which build of AEGIS-128X4 (aegis.h) this CPU runs,
 * from CPUID and the register state the kernel saves (XGETBV): the wider
 * builds need both the instructions and the OS's support for their
 * registers.
 */
#include "aegis.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <stdbool.h>

extern const pm_aegis_ops pm__aegis_aesni, pm__aegis_avx2, pm__aegis_avx512;

typedef struct cpu_features {
  bool aes, avx2, avx512f, vaes, ymm_state, zmm_state;
} cpu_features;

static cpu_features cpu_features_read(void) {
  cpu_features f = {0};
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx))
    return f;
  f.aes = ecx & (1u << 25);
  bool osxsave = ecx & (1u << 27), avx = ecx & (1u << 28);
  if (osxsave && avx) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    f.ymm_state = (lo & 0x6u) == 0x6u;    /* SSE and AVX state */
    f.zmm_state = (lo & 0xe6u) == 0xe6u;  /* and opmask, ZMM0-31 state */
  }
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) {
    f.avx2 = ebx & (1u << 5);
    f.avx512f = ebx & (1u << 16);
    f.vaes = ecx & (1u << 9);
  }
  return f;
}

const pm_aegis_ops *pm__aegis_ops(pm_aegis_width width) {
  cpu_features f = cpu_features_read();
  if (!f.aes)
    return NULL;
  switch (width) {
  case PM_AEGIS_AESNI:
    return &pm__aegis_aesni;
  case PM_AEGIS_AVX2:
    return f.avx2 && f.vaes && f.ymm_state ? &pm__aegis_avx2 : NULL;
  case PM_AEGIS_AVX512:
    /* -mavx512f lets the compiler use AVX2 too: a CPU (or a VM's view of
     * one) with AVX-512F but without AVX2 gets the narrower builds. */
    return f.avx512f && f.avx2 && f.vaes && f.zmm_state ? &pm__aegis_avx512
                                                         : NULL;
  default:
    return NULL;
  }
}
#else
const pm_aegis_ops *pm__aegis_ops(pm_aegis_width width) {
  (void)width;
  return NULL;
}
#endif

/* Asked once per connection: CPUID, which a hypervisor may trap, runs
 * once (two threads racing here both find the same answer). */
const pm_aegis_ops *pm__aegis_best(void) {
  static const pm_aegis_ops *best;
  static int known;
  if (__atomic_load_n(&known, __ATOMIC_ACQUIRE))
    return __atomic_load_n(&best, __ATOMIC_RELAXED);
  const pm_aegis_ops *found = NULL;
  for (int width = PM_AEGIS_WIDTHS - 1; width >= 0 && !found; width--)
    found = pm__aegis_ops((pm_aegis_width)width);
  __atomic_store_n(&best, found, __ATOMIC_RELAXED);
  __atomic_store_n(&known, 1, __ATOMIC_RELEASE);
  return found;
}
