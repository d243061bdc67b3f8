/* Fuzz target for the tcp handshake parser (transport/tcp_handshake.c):
 * the first byte picks the role (bit 0: server or client), whether this
 * side asks for insecure_data (bit 1) and offers AEGIS-128X4 (bit 3), and
 * (bit 2) whether every length is tried as a hello; the next 72 bytes are
 * the peer's hello and the rest its proof. A stranger never gets past
 * the proof. */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>

#include "transport/tcp_int.h"

static const uint8_t key[32] = {7, 7, 7};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  return sodium_init() < 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  pm_tcp_handshake hs;
  if (pm__tcp_hs_start(&hs, data[0] & 1, key, "fuzz-cluster",
                       (data[0] >> 1) & 1, (data[0] >> 3) & 1) != 0)
    return 0;
  size_t hello = size - 1 < PM_TCP_HELLO_SIZE ? size - 1 : PM_TCP_HELLO_SIZE;
  if (data[0] & 4)
    hello = size - 1; /* also try every length as a hello */
  int rc = pm__tcp_hs_peer_hello(&hs, data + 1, hello);
  if (rc == 0) {
    uint8_t proof[PM_TCP_PROOF_SIZE];
    pm__tcp_hs_proof(&hs, proof);
    rc = pm__tcp_hs_check_proof(&hs, data + 1 + hello, size - 1 - hello);
    if (rc == 0)
      abort(); /* forged a proof without the key's MAC */
  }
  pm__tcp_hs_free(&hs);
  return 0;
}
