/* Fuzz target for the frame decoder (transport/frame.c): any bytes as a
 * whole frame, prefix included. Whatever decodes must validate, re-encode
 * and decode again to the same length. */
#include <stdint.h>
#include <stdlib.h>

#include "transport/frame.h"

#define MAX_PAGE (16u << 20)

static pm_frame_arena arena, again;
static uint8_t out[PM_FRAME_PREFIX + PM_FRAME_MAX];

/* Unknown fields are kept by protobuf-c and packed again as they came
 * (possibly in another form), so only frames without them must survive a
 * second decode unchanged. */
static int has_unknown(const Pm__PageFrame *frame) {
  const ProtobufCMessage *body = NULL, *page = NULL;
  if (frame->body_case == PM__PAGE_FRAME__BODY_GET) {
    body = &frame->get->base;
    page = &frame->get->page->base;
  } else if (frame->body_case == PM__PAGE_FRAME__BODY_PUT) {
    body = &frame->put->base;
    page = &frame->put->page->base;
  } else {
    body = &frame->response->base;
  }
  return frame->base.n_unknown_fields || body->n_unknown_fields ||
         (page && page->n_unknown_fields);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  if (!ready) {
    pm__frame_arena_init(&arena);
    pm__frame_arena_init(&again);
    ready = 1;
  }
  if (size >= PM_FRAME_PREFIX)
    (void)pm__frame_prefix(data, PM_FRAME_MAX);
  Pm__PageFrame *frame;
  if (pm__frame_decode(&arena, data, size, MAX_PAGE, &frame) != 0)
    return 0;
  if (pm__frame_validate(frame, MAX_PAGE) != 0)
    abort();
  int64_t n = pm__frame_encode(frame, out, sizeof out);
  if (has_unknown(frame))
    return 0;
  if (n < 0)
    abort(); /* a decoded frame always fits again */
  Pm__PageFrame *copy;
  if (pm__frame_decode(&again, out, (size_t)n, MAX_PAGE, &copy) != 0)
    abort();
  if (copy->body_case != frame->body_case)
    abort();
  return 0;
}
