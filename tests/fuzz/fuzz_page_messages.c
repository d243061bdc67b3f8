/* Fuzz target for the checks every page message handler runs
 * (transport/page_msg.c) on decoded frames: the bytes are unpacked without
 * validation, then given to the server's request check and the client's
 * response check with a request id and buffer capacity taken from the
 * input. Whatever is accepted must be within the limits. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transport/frame.h"

#define MAX_PAGE (1u << 20)

static pm_frame_arena arena;

static void check_request(const Pm__PageFrame *frame) {
  pm_page_request req;
  uint64_t request_id;
  bool is_put;
  uint32_t length;
  uint8_t checksum[16];
  if (pm__page_msg_request_in(frame, MAX_PAGE, &req, &request_id, &is_put,
                              &length, checksum) != 0)
    return;
  if (!req.uri || !req.version || strlen(req.uri) > PM_FRAME_URI_MAX ||
      strlen(req.version) > PM_FRAME_VERSION_MAX)
    abort();
  if (req.page_size == 0 || req.page_size > MAX_PAGE)
    abort();
  if (is_put && length > req.page_size)
    abort();
}

static void check_response(const Pm__PageFrame *frame, uint64_t request_id,
                           size_t capacity) {
  uint32_t length;
  uint8_t checksum[16];
  int rc = pm__page_msg_response_in(frame, request_id, capacity, MAX_PAGE,
                                    &length, checksum, "fuzz");
  if (rc > 0 || (rc == 0 && length > capacity))
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  if (!ready) {
    pm__frame_arena_init(&arena);
    ready = 1;
  }
  if (size < 5)
    return 0;
  uint64_t request_id = data[0];
  size_t capacity = (size_t)data[1] << 12;
  Pm__PageFrame *frame;
  if (pm__frame_unpack(&arena, data + 2, size - 2, &frame) != 0)
    return 0;
  check_request(frame);
  check_response(frame, request_id, capacity);
  check_response(frame, request_id, MAX_PAGE);
  return 0;
}
