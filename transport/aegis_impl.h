/*
 * transport/aegis_impl.h - AEGIS-128X4 written once over a vector type,
 * included by aegis_avx512.c, aegis_avx2.c and aegis_aesni.c, each
 * compiled for its instruction set. The includer defines:
 *
 *   vec                     a register of VEC_BYTES bytes (16, 32 or 64):
 *                           VEC_BYTES / 16 AES blocks, one per lane
 *   vec_load, vec_store     unaligned 16*k-byte load and store
 *   vec_xor, vec_and
 *   vec_round(block, key)   one AES encryption round on every block
 *   vec_broadcast(bytes)    one 16-byte block in every position
 *   AEGIS_OPS, AEGIS_NAME   the pm_aegis_ops to define, and its name
 *
 * The algorithm (draft-irtf-cfrg-aegis-aead, AEGIS-128X with D = 4): a
 * state of eight "rows" of four AES blocks (one per lane, 64 bytes each);
 * each step absorbs 128 bytes, the first 64 into row 0 and the next 64
 * into row 4, all four lanes at once. A row is LANE_VECS registers.
 */
#include <sodium.h>
#include <string.h>

#include "aegis.h"

#define LANES 4
#define ROW_BYTES (16 * LANES)  /* one AES block per lane */
#define STEP_BYTES (2 * ROW_BYTES)
#define LANE_VECS (ROW_BYTES / VEC_BYTES)

typedef struct row {
  vec part[LANE_VECS];
} row;

typedef struct aegis_state {
  row s[8];
} aegis_state;

static inline row row_load(const uint8_t *bytes) {
  row r;
  for (int i = 0; i < LANE_VECS; i++)
    r.part[i] = vec_load(bytes + i * VEC_BYTES);
  return r;
}

static inline void row_store(uint8_t *bytes, row r) {
  for (int i = 0; i < LANE_VECS; i++)
    vec_store(bytes + i * VEC_BYTES, r.part[i]);
}

static inline row row_broadcast(const uint8_t block[16]) {
  row r;
  for (int i = 0; i < LANE_VECS; i++)
    r.part[i] = vec_broadcast(block);
  return r;
}

static inline row row_xor(row a, row b) {
  for (int i = 0; i < LANE_VECS; i++)
    a.part[i] = vec_xor(a.part[i], b.part[i]);
  return a;
}

static inline row row_and(row a, row b) {
  for (int i = 0; i < LANE_VECS; i++)
    a.part[i] = vec_and(a.part[i], b.part[i]);
  return a;
}

static inline row row_round(row block, row key) {
  for (int i = 0; i < LANE_VECS; i++)
    block.part[i] = vec_round(block.part[i], key.part[i]);
  return block;
}

static inline void update(aegis_state *st, row m0, row m1) {
  row *s = st->s;
  row last = s[7];
  s[7] = row_round(s[6], s[7]);
  s[6] = row_round(s[5], s[6]);
  s[5] = row_round(s[4], s[5]);
  s[4] = row_round(s[3], row_xor(s[4], m1));
  s[3] = row_round(s[2], s[3]);
  s[2] = row_round(s[1], s[2]);
  s[1] = row_round(s[0], s[1]);
  s[0] = row_round(last, row_xor(s[0], m0));
}

/* The keystream of the next step, one row per half. */
static inline row stream0(const aegis_state *st) {
  const row *s = st->s;
  return row_xor(row_xor(s[6], s[1]), row_and(s[2], s[3]));
}

static inline row stream1(const aegis_state *st) {
  const row *s = st->s;
  return row_xor(row_xor(s[2], s[5]), row_and(s[6], s[7]));
}

/* The Fibonacci sequence modulo 256, and what follows it. */
static const uint8_t const0[16] = {0x00, 0x01, 0x01, 0x02, 0x03, 0x05,
                                   0x08, 0x0d, 0x15, 0x22, 0x37, 0x59,
                                   0x90, 0xe9, 0x79, 0x62};
static const uint8_t const1[16] = {0xdb, 0x3d, 0x18, 0x55, 0x6d, 0xc2,
                                   0x2f, 0xf1, 0x20, 0x11, 0x31, 0x42,
                                   0x73, 0xb5, 0x28, 0xdd};

static void start(aegis_state *st, const uint8_t key[PM_AEGIS_KEY],
                  const uint8_t nonce[PM_AEGIS_NONCE]) {
  row k = row_broadcast(key), n = row_broadcast(nonce);
  row c0 = row_broadcast(const0), c1 = row_broadcast(const1);
  /* Each lane's context: its index and LANES - 1. */
  uint8_t context_bytes[ROW_BYTES] = {0};
  for (int lane = 0; lane < LANES; lane++) {
    context_bytes[16 * lane] = (uint8_t)lane;
    context_bytes[16 * lane + 1] = LANES - 1;
  }
  row context = row_load(context_bytes);
  row *s = st->s;
  s[0] = row_xor(k, n);
  s[1] = c1;
  s[2] = c0;
  s[3] = c1;
  s[4] = row_xor(k, n);
  s[5] = row_xor(k, c0);
  s[6] = row_xor(k, c1);
  s[7] = row_xor(k, c0);
  for (int i = 0; i < 10; i++) {
    s[3] = row_xor(s[3], context);
    s[7] = row_xor(s[7], context);
    update(st, n, k);
  }
}

static void absorb(aegis_state *st, const uint8_t *ad, size_t ad_length) {
  size_t off = 0;
  for (; off + STEP_BYTES <= ad_length; off += STEP_BYTES)
    update(st, row_load(ad + off), row_load(ad + off + ROW_BYTES));
  if (off < ad_length) {
    uint8_t padded[STEP_BYTES] = {0};
    memcpy(padded, ad + off, ad_length - off);
    update(st, row_load(padded), row_load(padded + ROW_BYTES));
  }
}

static void finish(aegis_state *st, size_t ad_length, size_t length,
                   uint8_t tag[PM_AEGIS_TAG]) {
  uint8_t lengths[16];
  uint64_t bits[2] = {(uint64_t)ad_length * 8u, (uint64_t)length * 8u};
  for (int i = 0; i < 16; i++)
    lengths[i] = (uint8_t)(bits[i / 8] >> (8 * (i % 8))); /* little end */
  row t = row_xor(st->s[2], row_broadcast(lengths));
  for (int i = 0; i < 7; i++)
    update(st, t, t);
  const row *s = st->s;
  row sum = row_xor(row_xor(row_xor(s[0], s[1]), row_xor(s[2], s[3])),
                    row_xor(row_xor(s[4], s[5]), s[6]));
  uint8_t lanes[ROW_BYTES];
  row_store(lanes, sum);
  memset(tag, 0, PM_AEGIS_TAG);
  for (int lane = 0; lane < LANES; lane++)
    for (int i = 0; i < 16; i++)
      tag[i] ^= lanes[16 * lane + i];
}

static void seal(const uint8_t key[PM_AEGIS_KEY],
                 const uint8_t nonce[PM_AEGIS_NONCE], const uint8_t *ad,
                 size_t ad_length, const uint8_t *in, size_t length,
                 uint8_t *out, uint8_t tag[PM_AEGIS_TAG]) {
  aegis_state st;
  start(&st, key, nonce);
  absorb(&st, ad, ad_length);
  size_t off = 0;
  for (; off + STEP_BYTES <= length; off += STEP_BYTES) {
    row z0 = stream0(&st), z1 = stream1(&st);
    row m0 = row_load(in + off), m1 = row_load(in + off + ROW_BYTES);
    row_store(out + off, row_xor(m0, z0));
    row_store(out + off + ROW_BYTES, row_xor(m1, z1));
    update(&st, m0, m1);
  }
  if (off < length) {
    uint8_t padded[STEP_BYTES] = {0}, sealed[STEP_BYTES];
    memcpy(padded, in + off, length - off);
    row m0 = row_load(padded), m1 = row_load(padded + ROW_BYTES);
    row_store(sealed, row_xor(m0, stream0(&st)));
    row_store(sealed + ROW_BYTES, row_xor(m1, stream1(&st)));
    memcpy(out + off, sealed, length - off);
    update(&st, m0, m1);
  }
  finish(&st, ad_length, length, tag);
}

static int open_(const uint8_t key[PM_AEGIS_KEY],
                 const uint8_t nonce[PM_AEGIS_NONCE], const uint8_t *ad,
                 size_t ad_length, const uint8_t *in, size_t length,
                 uint8_t *out, const uint8_t tag[PM_AEGIS_TAG]) {
  aegis_state st;
  start(&st, key, nonce);
  absorb(&st, ad, ad_length);
  size_t off = 0;
  for (; off + STEP_BYTES <= length; off += STEP_BYTES) {
    row m0 = row_xor(row_load(in + off), stream0(&st));
    row m1 = row_xor(row_load(in + off + ROW_BYTES), stream1(&st));
    row_store(out + off, m0);
    row_store(out + off + ROW_BYTES, m1);
    update(&st, m0, m1);
  }
  if (off < length) {
    /* The keystream over the padded tail; the plaintext is padded with
     * zeros again before it is absorbed. */
    size_t tail = length - off;
    uint8_t padded[STEP_BYTES] = {0}, plain[STEP_BYTES];
    memcpy(padded, in + off, tail);
    row_store(plain, row_xor(row_load(padded), stream0(&st)));
    row_store(plain + ROW_BYTES,
              row_xor(row_load(padded + ROW_BYTES), stream1(&st)));
    memset(plain + tail, 0, sizeof plain - tail);
    memcpy(out + off, plain, tail);
    update(&st, row_load(plain), row_load(plain + ROW_BYTES));
  }
  uint8_t want[PM_AEGIS_TAG];
  finish(&st, ad_length, length, want);
  if (crypto_verify_16(want, tag) == 0)
    return 0;
  memset(out, 0, length);
  return -1;
}

const pm_aegis_ops AEGIS_OPS = {AEGIS_NAME, seal, open_};
