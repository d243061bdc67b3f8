/*
 * membership/seal.c - sealing and opening of gossip packets and push-pull
 * frames. Two keys are derived from the 32-byte cluster key with
 * crypto_kdf (context "pmgossip" for UDP packets, "pmstream" for TCP
 * frames) and kept in sodium_malloc memory. Every packet is sealed with
 * XChaCha20-Poly1305 under a random 24-byte nonce; the associated data
 * binds the packet kind, the cluster id and the sender's member id, which
 * travels in clear in the header so that the receiver can rebuild it.
 * Without a keyring (the simulator), packets carry a different kind byte
 * and no seal, and a core that has a keyring refuses them.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "membership/swim_impl.h"

#define KIND_SEALED_PACKET 0x51
#define KIND_SEALED_STREAM 0x52
#define KIND_PLAIN_PACKET 0x61
#define KIND_PLAIN_STREAM 0x62
#define AD_MAX (2 + PM_SWIM_CLUSTER_ID_MAX + PM_SWIM_ID_LEN)

struct pm__swim_keyring {
  uint8_t *keys; /* sodium_malloc: gossip key, then stream key */
  size_t cluster_len;
  char cluster_id[PM_SWIM_CLUSTER_ID_MAX];
};

int pm__swim_keyring_new(const uint8_t *key, const char *cluster_id,
                         pm__swim_keyring **out) {
  if (!key || !cluster_id || !out)
    return pm__errf(PM_EINVAL, "swim keyring: NULL argument");
  size_t len = strlen(cluster_id);
  if (len >= PM_SWIM_CLUSTER_ID_MAX)
    return pm__errf(PM_EINVAL, "swim keyring: cluster id longer than %d",
                    PM_SWIM_CLUSTER_ID_MAX - 1);
  if (sodium_init() < 0)
    return pm__errf(PM_EIO, "swim keyring: libsodium failed to start");
  pm__swim_keyring *ring = calloc(1, sizeof *ring);
  uint8_t *keys =
      sodium_malloc(2 * crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
  if (!ring || !keys) {
    free(ring);
    sodium_free(keys);
    return pm__errf(PM_ENOMEM, "swim keyring: out of memory");
  }
  crypto_kdf_derive_from_key(keys, 32, 1, "pmgossip", key);
  crypto_kdf_derive_from_key(keys + 32, 32, 2, "pmstream", key);
  ring->keys = keys;
  ring->cluster_len = len;
  memcpy(ring->cluster_id, cluster_id, len + 1);
  *out = ring;
  return 0;
}

void pm__swim_keyring_free(pm__swim_keyring *ring) {
  if (!ring)
    return;
  sodium_free(ring->keys); /* wipes */
  sodium_memzero(ring, sizeof *ring);
  free(ring);
}

size_t pm__seal_prefix(const pm__swim_keyring *ring) {
  return ring ? PM_SEAL_PREFIX : PM_PLAIN_PREFIX;
}

size_t pm__seal_suffix(const pm__swim_keyring *ring) {
  return ring ? PM_SEAL_TAG_LEN : 0;
}

static size_t build_ad(const pm__swim_keyring *ring, uint8_t kind,
                       const uint8_t *sender, uint8_t ad[AD_MAX]) {
  size_t n = 0;
  ad[n++] = kind;
  ad[n++] = (uint8_t)ring->cluster_len;
  memcpy(ad + n, ring->cluster_id, ring->cluster_len);
  n += ring->cluster_len;
  memcpy(ad + n, sender, PM_SWIM_ID_LEN);
  return n + PM_SWIM_ID_LEN;
}

size_t pm__seal(const pm__swim_keyring *ring, bool stream,
                const pm__member_id *sender, uint8_t *buf, size_t payload_len) {
  if (!ring) {
    buf[0] = stream ? KIND_PLAIN_STREAM : KIND_PLAIN_PACKET;
    memcpy(buf + 1, sender->bytes, PM_SWIM_ID_LEN);
    return PM_PLAIN_PREFIX + payload_len;
  }
  uint8_t kind = stream ? KIND_SEALED_STREAM : KIND_SEALED_PACKET;
  uint8_t *nonce = buf + 1 + PM_SWIM_ID_LEN;
  uint8_t *text = buf + PM_SEAL_PREFIX;
  uint8_t ad[AD_MAX];
  size_t ad_len = build_ad(ring, kind, sender->bytes, ad);
  buf[0] = kind;
  memcpy(buf + 1, sender->bytes, PM_SWIM_ID_LEN);
  randombytes_buf(nonce, PM_SEAL_NONCE_LEN);
  unsigned long long sealed_len = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(
      text, &sealed_len, text, payload_len, ad, ad_len, NULL, nonce,
      ring->keys + (stream ? 32 : 0));
  return PM_SEAL_PREFIX + (size_t)sealed_len;
}

static int open_plain(bool stream, const uint8_t *in, size_t length,
                      const uint8_t **payload, size_t *payload_len) {
  uint8_t want = stream ? KIND_PLAIN_STREAM : KIND_PLAIN_PACKET;
  if (length < PM_PLAIN_PREFIX)
    return PM_EPROTO;
  if (in[0] != want)
    return (in[0] == KIND_SEALED_PACKET || in[0] == KIND_SEALED_STREAM)
               ? PM_EAUTH
               : PM_EPROTO;
  *payload = in + PM_PLAIN_PREFIX;
  *payload_len = length - PM_PLAIN_PREFIX;
  return 0;
}

int pm__open(const pm__swim_keyring *ring, bool stream, const uint8_t *in,
             size_t length, uint8_t *out, const uint8_t **payload,
             size_t *payload_len, pm__member_id *sender) {
  if (length < PM_PLAIN_PREFIX)
    return PM_EPROTO;
  memcpy(sender->bytes, in + 1, PM_SWIM_ID_LEN);
  if (!ring)
    return open_plain(stream, in, length, payload, payload_len);
  uint8_t want = stream ? KIND_SEALED_STREAM : KIND_SEALED_PACKET;
  if (in[0] != want)
    return (in[0] == KIND_PLAIN_PACKET || in[0] == KIND_PLAIN_STREAM ||
            in[0] == KIND_SEALED_PACKET || in[0] == KIND_SEALED_STREAM)
               ? PM_EAUTH
               : PM_EPROTO;
  if (length < PM_SEAL_PREFIX + PM_SEAL_TAG_LEN)
    return PM_EPROTO;
  uint8_t ad[AD_MAX];
  size_t ad_len = build_ad(ring, want, sender->bytes, ad);
  unsigned long long opened = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(
          out, &opened, NULL, in + PM_SEAL_PREFIX, length - PM_SEAL_PREFIX, ad,
          ad_len, in + 1 + PM_SWIM_ID_LEN, ring->keys + (stream ? 32 : 0)) != 0)
    return PM_EAUTH;
  *payload = out;
  *payload_len = (size_t)opened;
  return 0;
}
