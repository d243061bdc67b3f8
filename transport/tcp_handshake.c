/*
 * transport/tcp_handshake.c - the authenticated key exchange of a tcp
 * connection, as a pure state machine (no sockets) so that both the
 * blocking client and the server's event loop can drive it, and a fuzzer
 * can feed it.
 *
 *   client -> server  hello_c = "PMT1" 3 flags 0 0 | X25519 pk | nonce
 *   server -> client  hello_s (same layout)
 *   client -> server  proof_c = MAC_c(T) | secretstream header c->s
 *   server -> client  proof_s = MAC_s(T) | secretstream header s->c
 *
 * Both sides run crypto_kx (client and server roles) on the ephemeral
 * keys. The transcript T is BLAKE2b over a label, the cluster id and both
 * hellos. The master key is BLAKE2b keyed with the 32-byte cluster key
 * over both kx session keys and T; the stream keys, the two MAC keys and
 * the page-byte keys (tcp_bulk.c) are derived from it with crypto_kdf. A
 * peer without the cluster key cannot produce a valid proof; the server
 * checks the client's proof before it sends anything that depends on the
 * key, and the client checks the server's before it trusts a byte. Page
 * bytes go in the clear only if both hellos ask for it (insecure_data on
 * both ends); sealed, they use AEGIS-128X4 if both hellos offer it, else
 * AES-256-GCM (tcp_bulk.c). The flags are in the transcript, so a man in
 * the middle who changes them fails the proofs.
 */
#include <string.h>

#include "core/core_int.h"
#include "tcp_int.h"

static const uint8_t hello_magic[4] = {'P', 'M', 'T', '1'};
/* 2: page bytes in AES-256-GCM chunks; 3: in AEGIS-128X4 chunks when both
 * hellos offer it. */
#define HELLO_VERSION 3u
#define HELLO_FLAG_INSECURE 1u
#define HELLO_FLAG_AEGIS 2u
#define KDF_CONTEXT "pm_tcp__"
enum {
  KDF_C2S = 1, KDF_S2C = 2, KDF_CLIENT_MAC = 3, KDF_SERVER_MAC = 4,
  KDF_C2S_PAGES = 5, KDF_S2C_PAGES = 6,
};

static void hello_build(pm_tcp_handshake *hs) {
  uint8_t *m = hs->my_hello;
  memcpy(m, hello_magic, 4);
  m[4] = HELLO_VERSION;
  m[5] = (uint8_t)((hs->my_insecure ? HELLO_FLAG_INSECURE : 0) |
                   (hs->my_aegis ? HELLO_FLAG_AEGIS : 0));
  m[6] = 0;
  m[7] = 0;
  memcpy(m + 8, hs->secrets->kx_pk, 32);
  pm__random(m + 40, 32);
}

int pm__tcp_hs_start(pm_tcp_handshake *hs, bool server,
                     const uint8_t *cluster_key, const char *cluster_id,
                     bool insecure_data, bool offer_aegis) {
  memset(hs, 0, sizeof *hs);
  hs->server = server;
  hs->my_insecure = insecure_data;
  hs->my_aegis = offer_aegis && pm__aegis_best() != NULL;
  hs->cluster_key = cluster_key;
  hs->cluster_id = cluster_id;
  hs->secrets = sodium_malloc(sizeof *hs->secrets);
  if (!hs->secrets)
    return pm__errf(PM_ENOMEM, "tcp handshake: cannot allocate key memory");
  sodium_memzero(hs->secrets, sizeof *hs->secrets);
  crypto_kx_keypair(hs->secrets->kx_pk, hs->secrets->kx_sk);
  hello_build(hs);
  return 0;
}

static int hello_parse(const uint8_t *msg, size_t length, bool *insecure,
                       bool *aegis) {
  if (length != PM_TCP_HELLO_SIZE)
    return pm__errf(PM_EPROTO, "hello of %zu bytes, not %u", length,
                    PM_TCP_HELLO_SIZE);
  if (memcmp(msg, hello_magic, 4) != 0)
    return pm__errf(PM_EPROTO, "not a pagemesh tcp hello");
  if (msg[4] != HELLO_VERSION)
    return pm__errf(PM_EPROTO, "hello version %u, not %u", msg[4],
                    HELLO_VERSION);
  if ((msg[5] & ~(HELLO_FLAG_INSECURE | HELLO_FLAG_AEGIS)) || msg[6] ||
      msg[7])
    return pm__errf(PM_EPROTO, "hello with unknown flags 0x%02x%02x%02x",
                    msg[5], msg[6], msg[7]);
  *insecure = msg[5] & HELLO_FLAG_INSECURE;
  *aegis = msg[5] & HELLO_FLAG_AEGIS;
  return 0;
}

/* T = BLAKE2b-256("pagemesh tcp v1" | len(id) | id | hello_c | hello_s). */
static void transcript(pm_tcp_handshake *hs) {
  const uint8_t *hello_c = hs->server ? hs->peer_hello : hs->my_hello;
  const uint8_t *hello_s = hs->server ? hs->my_hello : hs->peer_hello;
  static const char label[] = "pagemesh tcp v1";
  size_t id_length = strlen(hs->cluster_id);
  uint8_t id_prefix[4];
  pm__frame_put_prefix(id_prefix, (uint32_t)id_length);
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, 32);
  crypto_generichash_update(&st, (const uint8_t *)label, sizeof label);
  crypto_generichash_update(&st, id_prefix, 4);
  crypto_generichash_update(&st, (const uint8_t *)hs->cluster_id, id_length);
  crypto_generichash_update(&st, hello_c, PM_TCP_HELLO_SIZE);
  crypto_generichash_update(&st, hello_s, PM_TCP_HELLO_SIZE);
  crypto_generichash_final(&st, hs->secrets->transcript, 32);
}

/* The kx session keys, ordered (client->server, server->client). */
static int kx_keys(pm_tcp_handshake *hs, uint8_t c2s[32], uint8_t s2c[32]) {
  pm_tcp_secrets *s = hs->secrets;
  const uint8_t *peer_pk = hs->peer_hello + 8;
  if (hs->server)
    return crypto_kx_server_session_keys(c2s, s2c, s->kx_pk, s->kx_sk,
                                         peer_pk);
  return crypto_kx_client_session_keys(s2c, c2s, s->kx_pk, s->kx_sk, peer_pk);
}

static void derive(pm_tcp_handshake *hs, const uint8_t kx[64]) {
  pm_tcp_secrets *s = hs->secrets;
  uint8_t master[32];
  crypto_generichash_state st;
  crypto_generichash_init(&st, hs->cluster_key, 32, sizeof master);
  crypto_generichash_update(&st, kx, 64);
  crypto_generichash_update(&st, s->transcript, 32);
  crypto_generichash_final(&st, master, sizeof master);
  uint8_t c2s[32], s2c[32], mac_c[32], mac_s[32];
  crypto_kdf_derive_from_key(hs->server ? s->page_recv_key
                                        : s->page_send_key,
                             32, KDF_C2S_PAGES, KDF_CONTEXT, master);
  crypto_kdf_derive_from_key(hs->server ? s->page_send_key
                                        : s->page_recv_key,
                             32, KDF_S2C_PAGES, KDF_CONTEXT, master);
  crypto_kdf_derive_from_key(c2s, 32, KDF_C2S, KDF_CONTEXT, master);
  crypto_kdf_derive_from_key(s2c, 32, KDF_S2C, KDF_CONTEXT, master);
  crypto_kdf_derive_from_key(mac_c, 32, KDF_CLIENT_MAC, KDF_CONTEXT, master);
  crypto_kdf_derive_from_key(mac_s, 32, KDF_SERVER_MAC, KDF_CONTEXT, master);
  memcpy(s->send_key, hs->server ? s2c : c2s, 32);
  memcpy(s->recv_key, hs->server ? c2s : s2c, 32);
  memcpy(s->my_proof_key, hs->server ? mac_s : mac_c, 32);
  memcpy(s->peer_proof_key, hs->server ? mac_c : mac_s, 32);
  sodium_memzero(master, sizeof master);
  sodium_memzero(c2s, 32);
  sodium_memzero(s2c, 32);
  sodium_memzero(mac_c, 32);
  sodium_memzero(mac_s, 32);
  sodium_memzero(&st, sizeof st);
}

int pm__tcp_hs_peer_hello(pm_tcp_handshake *hs, const uint8_t *msg,
                          size_t length) {
  bool peer_insecure = false, peer_aegis = false;
  int rc = hello_parse(msg, length, &peer_insecure, &peer_aegis);
  if (rc)
    return rc;
  memcpy(hs->peer_hello, msg, PM_TCP_HELLO_SIZE);
  hs->insecure_data = hs->my_insecure && peer_insecure;
  hs->aegis = hs->my_aegis && peer_aegis;
  transcript(hs);
  uint8_t kx[64];
  if (kx_keys(hs, kx, kx + 32) != 0) {
    sodium_memzero(kx, sizeof kx);
    return pm__errf(PM_EAUTH, "degenerate key exchange");
  }
  derive(hs, kx);
  sodium_memzero(kx, sizeof kx);
  return 0;
}

static void mac(const uint8_t key[32], const uint8_t transcript_hash[32],
                uint8_t out[PM_TCP_MAC_SIZE]) {
  crypto_generichash(out, PM_TCP_MAC_SIZE, transcript_hash, 32, key, 32);
}

void pm__tcp_hs_proof(pm_tcp_handshake *hs, uint8_t out[PM_TCP_PROOF_SIZE]) {
  pm_tcp_secrets *s = hs->secrets;
  mac(s->my_proof_key, s->transcript, out);
  crypto_secretstream_xchacha20poly1305_init_push(
      &s->send_state, out + PM_TCP_MAC_SIZE, s->send_key);
}

int pm__tcp_hs_check_proof(pm_tcp_handshake *hs, const uint8_t *msg,
                           size_t length) {
  if (length != PM_TCP_PROOF_SIZE)
    return pm__errf(PM_EPROTO, "proof of %zu bytes, not %u", length,
                    (unsigned)PM_TCP_PROOF_SIZE);
  pm_tcp_secrets *s = hs->secrets;
  uint8_t want[PM_TCP_MAC_SIZE];
  mac(s->peer_proof_key, s->transcript, want);
  int same = crypto_verify_32(want, msg) == 0;
  sodium_memzero(want, sizeof want);
  if (!same)
    return pm__errf(PM_EAUTH, "peer does not hold the cluster key");
  if (crypto_secretstream_xchacha20poly1305_init_pull(
          &s->recv_state, msg + PM_TCP_MAC_SIZE, s->recv_key) != 0)
    return pm__errf(PM_EPROTO, "bad stream header");
  return 0;
}

int pm__tcp_hs_done(pm_tcp_handshake *hs) {
  pm_tcp_secrets *s = hs->secrets;
  int rc = pm__tcp_bulk_init(&hs->bulk, s->page_send_key, s->page_recv_key,
                             hs->aegis);
  sodium_memzero(s->page_send_key, sizeof s->page_send_key);
  sodium_memzero(s->page_recv_key, sizeof s->page_recv_key);
  sodium_memzero(s->kx_sk, sizeof s->kx_sk);
  sodium_memzero(s->send_key, sizeof s->send_key);
  sodium_memzero(s->recv_key, sizeof s->recv_key);
  sodium_memzero(s->my_proof_key, sizeof s->my_proof_key);
  sodium_memzero(s->peer_proof_key, sizeof s->peer_proof_key);
  return rc;
}

void pm__tcp_hs_free(pm_tcp_handshake *hs) {
  pm__tcp_bulk_free(&hs->bulk);
  if (hs->secrets)
    sodium_free(hs->secrets); /* sodium_free wipes */
  hs->secrets = NULL;
}
