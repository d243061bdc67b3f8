/*
 * transport/tcp_bulk.c - the cipher of page bytes on a tcp connection.
 * Control frames keep their secretstream; page bytes are bulk and get
 * their own keys, derived in the handshake (one per direction, never used
 * for anything else), and one of two ciphers, agreed in the handshake:
 *
 * - AEGIS-128X4 (aegis.h) when both ends run it (x86-64 with AES-NI, and
 *   PAGEMESH_TCP_CIPHER does not ask for AES-256-GCM): ~50 GB/s per core
 *   with AVX-512 VAES here, so a page costs its sender and receiver a
 *   fraction of what the copies through the kernel cost. It takes the
 *   first 16 bytes of each 32-byte direction key.
 * - AES-256-GCM through OpenSSL's libcrypto otherwise (~5.4 GB/s here).
 *
 * A sealed chunk is the ciphertext of up to PM_TCP_CHUNK bytes followed by
 * its 16-byte tag. The nonce is the chunk's 64-bit big-endian sequence
 * number in its direction, after zero bytes (4 for AES-GCM's 12-byte
 * nonce, 8 for AEGIS's 16), so a nonce never repeats under a key, and a
 * chunk dropped, repeated or moved fails to open.
 */
#include <openssl/evp.h>
#include <string.h>

#include "core/core_int.h"
#include "tcp_int.h"

/* The nonce of chunk `seq`: `size` bytes, the sequence number last. */
static void nonce_of(uint64_t seq, uint8_t *nonce, size_t size) {
  memset(nonce, 0, size - 8);
  for (int i = 0; i < 8; i++)
    nonce[size - 8 + i] = (uint8_t)(seq >> (56 - 8 * i));
}

static EVP_CIPHER_CTX *context(const uint8_t key[32], int encrypt) {
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (ctx && EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, NULL,
                               encrypt) == 1)
    return ctx;
  EVP_CIPHER_CTX_free(ctx);
  return NULL;
}

int pm__tcp_bulk_init(pm_tcp_bulk *bulk, const uint8_t send_key[32],
                      const uint8_t recv_key[32], bool aegis) {
  memset(bulk, 0, sizeof *bulk);
  if (aegis) {
    bulk->aegis = pm__aegis_best();
    bulk->aegis_keys = sodium_malloc(2 * PM_AEGIS_KEY);
    if (!bulk->aegis || !bulk->aegis_keys) {
      int rc = bulk->aegis ? PM_ENOMEM : PM_EPROTO;
      pm__tcp_bulk_free(bulk);
      return pm__errf(rc, "tcp: cannot set up AEGIS-128X4 for page bytes");
    }
    memcpy(bulk->aegis_keys, send_key, PM_AEGIS_KEY);
    memcpy(bulk->aegis_keys + PM_AEGIS_KEY, recv_key, PM_AEGIS_KEY);
    return 0;
  }
  bulk->seal = context(send_key, 1);
  bulk->open = context(recv_key, 0);
  if (bulk->seal && bulk->open)
    return 0;
  pm__tcp_bulk_free(bulk);
  return pm__errf(PM_ENOMEM, "tcp: cannot set up the page cipher");
}

void pm__tcp_bulk_free(pm_tcp_bulk *bulk) {
  if (bulk->aegis_keys)
    sodium_free(bulk->aegis_keys); /* wipes */
  bulk->aegis_keys = NULL;
  bulk->aegis = NULL;
  EVP_CIPHER_CTX_free(bulk->seal);
  EVP_CIPHER_CTX_free(bulk->open);
  bulk->seal = bulk->open = NULL;
}

int pm__tcp_bulk_seal(pm_tcp_bulk *bulk, const uint8_t *in, size_t length,
                      uint8_t *out, uint8_t tag[PM_TCP_TAG]) {
  if (length > PM_TCP_CHUNK)
    return pm__errf(PM_EIO, "tcp: a chunk of %zu page bytes", length);
  if (bulk->aegis) {
    uint8_t nonce[PM_AEGIS_NONCE];
    nonce_of(bulk->seal_seq++, nonce, sizeof nonce);
    bulk->aegis->seal(bulk->aegis_keys, nonce, NULL, 0, in, length, out, tag);
    return 0;
  }
  uint8_t nonce[12];
  nonce_of(bulk->seal_seq++, nonce, sizeof nonce);
  int n = 0, done = 0;
  if (EVP_CipherInit_ex(bulk->seal, NULL, NULL, NULL, nonce, 1) != 1 ||
      EVP_CipherUpdate(bulk->seal, out, &n, in, (int)length) != 1 ||
      EVP_CipherFinal_ex(bulk->seal, out + n, &done) != 1 ||
      EVP_CIPHER_CTX_ctrl(bulk->seal, EVP_CTRL_GCM_GET_TAG, PM_TCP_TAG,
                          tag) != 1)
    return pm__errf(PM_EIO, "tcp: sealing page bytes failed");
  return 0;
}

int pm__tcp_bulk_open(pm_tcp_bulk *bulk, uint8_t *data, size_t length,
                      const uint8_t tag[PM_TCP_TAG]) {
  if (length > PM_TCP_CHUNK)
    return PM_ECORRUPT;
  if (bulk->aegis) {
    uint8_t nonce[PM_AEGIS_NONCE];
    nonce_of(bulk->open_seq++, nonce, sizeof nonce);
    return bulk->aegis->open(bulk->aegis_keys + PM_AEGIS_KEY, nonce, NULL, 0,
                             data, length, data, tag) == 0
               ? 0
               : PM_ECORRUPT;
  }
  uint8_t nonce[12], tag_copy[PM_TCP_TAG];
  nonce_of(bulk->open_seq++, nonce, sizeof nonce);
  memcpy(tag_copy, tag, sizeof tag_copy);
  int n = 0, done = 0;
  if (EVP_CipherInit_ex(bulk->open, NULL, NULL, NULL, nonce, 0) != 1 ||
      EVP_CipherUpdate(bulk->open, data, &n, data, (int)length) != 1 ||
      EVP_CIPHER_CTX_ctrl(bulk->open, EVP_CTRL_GCM_SET_TAG, PM_TCP_TAG,
                          tag_copy) != 1 ||
      EVP_CipherFinal_ex(bulk->open, data + n, &done) != 1) {
    /* The bytes were decrypted before the tag was checked: leave none. */
    OPENSSL_cleanse(data, length);
    return PM_ECORRUPT;
  }
  return 0;
}
