/* Tests for transport/aegis*.c: every build of AEGIS-128X4 this CPU runs
 * gives the published test vectors of draft-irtf-cfrg-aegis-aead, and
 * vectors from an independent implementation (pyaegis 0.3.1, over
 * libaegis) for lengths the published ones leave out (partial blocks,
 * associated data longer than a step, a whole tcp chunk); the builds agree
 * with each other on random inputs; a changed byte of the ciphertext, the
 * tag, the associated data or the nonce fails to open and leaves zeros. */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/aegis.h"

TestSuite(aegis, .timeout = 60);

static size_t from_hex(const char *hex, uint8_t *out, size_t cap) {
  size_t length = strlen(hex) / 2;
  cr_assert_leq(length, cap);
  for (size_t i = 0; i < length; i++)
    cr_assert_eq(sscanf(hex + 2 * i, "%2hhx", &out[i]), 1);
  return length;
}

static const pm_aegis_ops *widths[PM_AEGIS_WIDTHS];
static int width_count;

static void find_widths(void) {
  width_count = 0;
  for (int w = 0; w < PM_AEGIS_WIDTHS; w++)
    if (pm__aegis_ops((pm_aegis_width)w))
      widths[width_count++] = pm__aegis_ops((pm_aegis_width)w);
  if (width_count == 0)
    cr_skip_test("this CPU has no AES instructions: tcp uses AES-256-GCM");
  cr_log_info("AEGIS builds this CPU runs: %d", width_count);
}

/* The AEGIS-128X4 vectors of the draft. */
static const struct {
  const char *ad, *msg, *ct, *tag;
} published[] = {
    {"", "", "", "5bef762d0947c00455b97bb3af30dfa3"},
    {"0102030401020304",
     "0405060704050607040506070405060704050607040506070405060704050607"
     "0405060704050607040506070405060704050607040506070405060704050607"
     "0405060704050607040506070405060704050607040506070405060704050607"
     "040506070405060704050607040506070405060704050607",
     "e836118562f4479c9d35c17356a833114c21f9aa39e4dda5e5c87f4152a00fce"
     "9a7c38f832eafe8b1c12f8a7cf12a81a1ad8a9c24ba9dedfbdaa586ffea67ddc"
     "801ea97d9ab4a872f42d0e352e2713dacd609f9442c17517c5a29daf3e2a3fac"
     "4ff6b1380c4e46df7b086af6ce6bc1ed594b8dd64aed2a7e",
     "0e56ab94e2e85db80f9d54010caabfb4"},
};

Test(aegis, published_vectors_in_every_build) {
  find_widths();
  uint8_t key[16], nonce[16], ad[64], msg[512], ct[512], tag[16];
  from_hex("000102030405060708090a0b0c0d0e0f", key, sizeof key);
  from_hex("101112131415161718191a1b1c1d1e1f", nonce, sizeof nonce);
  for (int w = 0; w < width_count; w++)
    for (size_t v = 0; v < sizeof published / sizeof *published; v++) {
      size_t ad_length = from_hex(published[v].ad, ad, sizeof ad);
      size_t length = from_hex(published[v].msg, msg, sizeof msg);
      cr_assert_eq(from_hex(published[v].ct, ct, sizeof ct), length);
      from_hex(published[v].tag, tag, sizeof tag);
      uint8_t out[512], out_tag[16];
      widths[w]->seal(key, nonce, ad, ad_length, msg, length, out, out_tag);
      cr_assert_eq(memcmp(out, ct, length), 0, "%s vector %zu: ciphertext",
                   widths[w]->name, v);
      cr_assert_eq(memcmp(out_tag, tag, 16), 0, "%s vector %zu: tag",
                   widths[w]->name, v);
      cr_assert_eq(widths[w]->open(key, nonce, ad, ad_length, ct, length,
                                   out, tag),
                   0, "%s vector %zu: open", widths[w]->name, v);
      cr_assert_eq(memcmp(out, msg, length), 0);
    }
}

/* Inputs are patterns ((i * 7 + 3) & 255 for the message, (i * 11 + 5) &
 * 255 for the associated data); the vectors give the BLAKE2b-128 of the
 * ciphertext and the tag, as computed by pyaegis.Aegis128X4(tag_size=16)
 * with key 20..2f and nonce 40..4f. */
static const struct {
  size_t ad_length, length;
  const char *ct_hash, *tag;
} independent[] = {
    {0, 1, "afe7508d58b4601474310af3be5b16ce",
     "cfa9ff3659115f09d816bd548679cd1c"},
    {0, 15, "6d910df42cd279b4773b65ac32a0c1e3",
     "5ca861fd5a59a289ee0fe83d03526001"},
    {0, 127, "db1715b23f543abd000bf50e9cba94fc",
     "c840a4c20ad3c6939e4c7be9b41e13d2"},
    {0, 128, "3e95bb4703a5fdf28521d5b9a76a3652",
     "1943059982305296c9d15bc71c987596"},
    {0, 129, "b80e20f45787be121716fe64b7026109",
     "bf9d573eaeda2ba98a50c257755b7f7a"},
    {3, 200, "75c2d424d4cb959bd66bfda6e82239c9",
     "4819c522b0ecd88a6cf5d9e85feef8e8"},
    {129, 255, "b841d83ed454b401bfef5a4468735b03",
     "520704da26e89d31ed6fbad2d02ff2c4"},
    {200, 1000, "cc9cb4bfe4d21c296a611760ced4e16a",
     "d0c56dd3e130da24b0908a25cf991166"},
    {0, 131072, "1f5e7ae31058d0c3cd5e428f0b474dab",
     "3715c83851f6fcb3c516b787a47bd216"},
    {5, 131071, "7562a5f21c7011c22be97cd326d728f1",
     "58249210bd9ada0ef2ed9fe2c3edf6e4"},
};

Test(aegis, independent_vectors_in_every_build) {
  find_widths();
  uint8_t key[16], nonce[16];
  for (int i = 0; i < 16; i++) {
    key[i] = (uint8_t)(0x20 + i);
    nonce[i] = (uint8_t)(0x40 + i);
  }
  enum { MAX = 131072 };
  uint8_t *msg = malloc(MAX), *ad = malloc(256), *out = malloc(MAX);
  cr_assert(msg && ad && out);
  for (size_t i = 0; i < MAX; i++)
    msg[i] = (uint8_t)(i * 7 + 3);
  for (size_t i = 0; i < 256; i++)
    ad[i] = (uint8_t)(i * 11 + 5);
  for (int w = 0; w < width_count; w++)
    for (size_t v = 0; v < sizeof independent / sizeof *independent; v++) {
      size_t length = independent[v].length;
      uint8_t tag[16], hash[16], want_hash[16], want_tag[16];
      from_hex(independent[v].ct_hash, want_hash, 16);
      from_hex(independent[v].tag, want_tag, 16);
      widths[w]->seal(key, nonce, ad, independent[v].ad_length, msg, length,
                      out, tag);
      crypto_generichash(hash, 16, out, length, NULL, 0);
      cr_assert_eq(memcmp(hash, want_hash, 16), 0,
                   "%s, %zu bytes: ciphertext", widths[w]->name, length);
      cr_assert_eq(memcmp(tag, want_tag, 16), 0, "%s, %zu bytes: tag",
                   widths[w]->name, length);
      /* Opened in place, it is the message again. */
      cr_assert_eq(widths[w]->open(key, nonce, ad, independent[v].ad_length,
                                   out, length, out, tag),
                   0);
      cr_assert_eq(memcmp(out, msg, length), 0);
    }
  free(msg);
  free(ad);
  free(out);
}

Test(aegis, builds_agree_on_random_inputs) {
  find_widths();
  enum { MAX = 4096 };
  uint8_t key[16], nonce[16], ad[300], msg[MAX];
  uint8_t first[MAX], other[MAX], first_tag[16], other_tag[16];
  for (int round = 0; round < 300; round++) {
    randombytes_buf(key, sizeof key);
    randombytes_buf(nonce, sizeof nonce);
    size_t ad_length = randombytes_uniform(sizeof ad);
    size_t length = round < 260 ? (size_t)round : randombytes_uniform(MAX);
    randombytes_buf(ad, ad_length);
    randombytes_buf(msg, length);
    widths[0]->seal(key, nonce, ad, ad_length, msg, length, first,
                    first_tag);
    for (int w = 1; w < width_count; w++) {
      widths[w]->seal(key, nonce, ad, ad_length, msg, length, other,
                      other_tag);
      cr_assert_eq(memcmp(first, other, length), 0, "%s vs %s, %zu bytes",
                   widths[0]->name, widths[w]->name, length);
      cr_assert_eq(memcmp(first_tag, other_tag, 16), 0);
    }
  }
}

/* Open a copy of ct with one change; it must fail and leave zeros. */
static void expect_refused(const pm_aegis_ops *ops, const uint8_t *key,
                           const uint8_t *nonce, const uint8_t *ad,
                           size_t ad_length, const uint8_t *ct,
                           size_t length, const uint8_t *tag,
                           const char *what) {
  uint8_t out[1000], zeros[1000] = {0};
  memset(out, 0xa5, sizeof out);
  cr_assert_eq(ops->open(key, nonce, ad, ad_length, ct, length, out, tag), -1,
               "%s: %s opened", ops->name, what);
  cr_assert_eq(memcmp(out, zeros, length), 0, "%s: %s left bytes",
               ops->name, what);
}

Test(aegis, any_change_fails_and_leaves_zeros) {
  find_widths();
  enum { N = 1000 };
  uint8_t key[16], nonce[16], ad[20], msg[N], ct[N], tag[16];
  randombytes_buf(key, sizeof key);
  randombytes_buf(nonce, sizeof nonce);
  randombytes_buf(ad, sizeof ad);
  randombytes_buf(msg, sizeof msg);
  for (int w = 0; w < width_count; w++) {
    const pm_aegis_ops *ops = widths[w];
    ops->seal(key, nonce, ad, sizeof ad, msg, N, ct, tag);
    /* One bit flipped at a time (the ciphertext's last byte is in the
     * partial last step), then flipped back. */
    struct {
      uint8_t *byte;
      uint8_t bit;
      const char *what;
    } flips[] = {{&ct[N - 1], 1, "ciphertext end"},
                 {&ct[5], 0x80, "ciphertext start"},
                 {&tag[15], 1, "tag"},
                 {&ad[0], 1, "ad"},
                 {&nonce[8], 1, "nonce"}};
    for (size_t f = 0; f < sizeof flips / sizeof *flips; f++) {
      *flips[f].byte ^= flips[f].bit;
      expect_refused(ops, key, nonce, ad, sizeof ad, ct, N, tag,
                     flips[f].what);
      *flips[f].byte ^= flips[f].bit;
    }
    expect_refused(ops, key, nonce, ad, sizeof ad - 1, ct, N, tag,
                   "shorter ad");
    expect_refused(ops, key, nonce, ad, sizeof ad, ct, N - 1, tag,
                   "shorter ciphertext");
    uint8_t out[N];
    cr_assert_eq(ops->open(key, nonce, ad, sizeof ad, ct, N, out, tag), 0);
    cr_assert_eq(memcmp(out, msg, N), 0);
  }
}

/* The CPU flags the kernel reports (it hides those whose registers the
 * OS does not save): an oracle for the detection in aegis.c that does not
 * share its code. */
static bool cpuinfo_has(const char *flags, const char *flag) {
  size_t length = strlen(flag);
  for (const char *p = strstr(flags, flag); p; p = strstr(p + 1, flag))
    if (p[-1] == ' ' && (p[length] == ' ' || p[length] == '\n' ||
                         p[length] == '\0'))
      return true;
  return false;
}

/* Every build this CPU can run is found, and the widest is the one tcp
 * uses: a detection that found nothing would make every other test here
 * skip and tcp fall back to AES-256-GCM unseen. */
Test(aegis, detection_agrees_with_the_kernel) {
#if defined(__x86_64__)
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f)
    cr_skip_test("no /proc/cpuinfo");
  char line[8192], flags[8192] = "";
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "flags", 5) == 0) {
      snprintf(flags, sizeof flags, "%s", strchr(line, ':') + 1);
      break;
    }
  fclose(f);
  cr_assert_neq(flags[0], 0, "no flags line in /proc/cpuinfo");
  bool aes = cpuinfo_has(flags, "aes"), vaes = cpuinfo_has(flags, "vaes"),
       avx2 = cpuinfo_has(flags, "avx2"),
       avx512f = cpuinfo_has(flags, "avx512f");
  cr_log_info("cpuinfo: aes %d vaes %d avx2 %d avx512f %d", aes, vaes, avx2,
              avx512f);
  cr_assert_eq(pm__aegis_ops(PM_AEGIS_AESNI) != NULL, aes);
  cr_assert_eq(pm__aegis_ops(PM_AEGIS_AVX2) != NULL, aes && vaes && avx2);
  cr_assert_eq(pm__aegis_ops(PM_AEGIS_AVX512) != NULL,
               aes && vaes && avx2 && avx512f);
  const pm_aegis_ops *want = NULL;
  for (int w = 0; w < PM_AEGIS_WIDTHS; w++)
    if (pm__aegis_ops((pm_aegis_width)w))
      want = pm__aegis_ops((pm_aegis_width)w);
  cr_assert_eq(pm__aegis_best(), want);
#else
  cr_assert_null(pm__aegis_best());
#endif
}
