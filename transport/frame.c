/*
 * transport/frame.c - encoding and decoding of the control frames of the
 * page transports: the length prefix and its cap, the capped bump arena
 * that protobuf-c allocates from, and the validation of every field of a
 * decoded PageFrame. Everything here treats its input as hostile.
 */
#include <stdio.h>
#include <string.h>

#include "core/core_int.h"
#include "frame.h"

static void *arena_alloc(void *data, size_t size) {
  pm_frame_arena *arena = data;
  size_t aligned = (size + 15u) & ~(size_t)15u;
  if (aligned < size || aligned > sizeof arena->bytes - arena->used)
    return NULL;
  void *p = arena->bytes + arena->used;
  arena->used += aligned;
  return p;
}

static void arena_free(void *data, void *pointer) {
  (void)data;
  (void)pointer; /* everything goes at the next reset */
}

void pm__frame_arena_init(pm_frame_arena *arena) {
  arena->allocator.alloc = arena_alloc;
  arena->allocator.free = arena_free;
  arena->allocator.allocator_data = arena;
  arena->used = 0;
}

int64_t pm__frame_prefix(const uint8_t prefix[PM_FRAME_PREFIX], size_t cap) {
  uint32_t length = (uint32_t)prefix[0] << 24 | (uint32_t)prefix[1] << 16 |
                    (uint32_t)prefix[2] << 8 | (uint32_t)prefix[3];
  if (length == 0)
    return pm__errf(PM_EPROTO, "empty frame");
  if (length > cap)
    return pm__errf(PM_ETOOBIG, "frame of %u bytes over the cap of %zu",
                    length, cap);
  return length;
}

void pm__frame_put_prefix(uint8_t prefix[PM_FRAME_PREFIX], uint32_t length) {
  prefix[0] = (uint8_t)(length >> 24);
  prefix[1] = (uint8_t)(length >> 16);
  prefix[2] = (uint8_t)(length >> 8);
  prefix[3] = (uint8_t)length;
}

int64_t pm__frame_encode(const Pm__PageFrame *frame, uint8_t *out,
                         size_t out_cap) {
  size_t length = pm__page_frame__get_packed_size(frame);
  if (length > PM_FRAME_MAX || length + PM_FRAME_PREFIX > out_cap)
    return pm__errf(PM_ETOOBIG, "frame of %zu bytes too large", length);
  if (length == 0)
    return pm__errf(PM_EPROTO, "empty frame");
  pm__frame_put_prefix(out, (uint32_t)length);
  size_t packed = pm__page_frame__pack(frame, out + PM_FRAME_PREFIX);
  if (packed != length)
    return pm__errf(PM_EPROTO, "frame packed to %zu bytes, not %zu", packed,
                    length);
  return (int64_t)(length + PM_FRAME_PREFIX);
}

int pm__frame_unpack(pm_frame_arena *arena, const uint8_t *payload,
                     size_t length, Pm__PageFrame **out) {
  *out = NULL;
  if (length > PM_FRAME_MAX)
    return pm__errf(PM_ETOOBIG, "frame of %zu bytes over the cap", length);
  arena->used = 0;
  Pm__PageFrame *frame =
      pm__page_frame__unpack(&arena->allocator, length, payload);
  if (!frame)
    return pm__errf(PM_EPROTO, "undecodable frame of %zu bytes", length);
  *out = frame;
  return 0;
}

static int check_binary(const ProtobufCBinaryData *field, size_t want,
                        const char *name) {
  if (field->len != want)
    return pm__errf(PM_EPROTO, "%s of %zu bytes, not %zu", name, field->len,
                    want);
  return 0;
}

static int check_string(const char *text, size_t min, size_t max,
                        const char *name) {
  size_t length = text ? strnlen(text, max + 1) : 0;
  if (length < min || length > max)
    return pm__errf(PM_EPROTO, "%s of %zu bytes, not %zu..%zu", name, length,
                    min, max);
  return 0;
}

static int check_page_request(const Pm__PageRequest *page,
                              uint32_t max_page_size) {
  if (!page)
    return pm__errf(PM_EPROTO, "request without a page");
  int rc = check_binary(&page->page_id, 16, "page id");
  if (!rc)
    rc = check_string(page->uri, 1, PM_FRAME_URI_MAX, "uri");
  if (!rc)
    rc = check_string(page->version, 0, PM_FRAME_VERSION_MAX, "version");
  if (rc)
    return rc;
  if (page->page_size == 0 || page->page_size > max_page_size)
    return pm__errf(PM_EPROTO, "page size %u out of range (max %u)",
                    page->page_size, max_page_size);
  if (page->flags & ~(uint32_t)PM_PAGE_REQ_KNOWN)
    return pm__errf(PM_EPROTO, "unknown request flags 0x%x", page->flags);
  if (page->page_index > page->object_size / page->page_size)
    return pm__errf(PM_EPROTO, "page %llu past the object's end (%llu)",
                    (unsigned long long)page->page_index,
                    (unsigned long long)page->object_size);
  return 0;
}

static int check_put(const Pm__PagePut *put, uint32_t max_page_size) {
  int rc = check_page_request(put->page, max_page_size);
  if (rc)
    return rc;
  if (put->length > put->page->page_size)
    return pm__errf(PM_EPROTO, "put of %u bytes over the page size %u",
                    put->length, put->page->page_size);
  return check_binary(&put->checksum, 16, "checksum");
}

static int check_response(const Pm__PageResponse *response,
                          uint32_t max_page_size) {
  if (response->status > 0 || response->status < PM_FRAME_STATUS_MIN)
    return pm__errf(PM_EPROTO, "status %d out of range", response->status);
  int rc = check_string(response->detail, 0, PM_FRAME_DETAIL_MAX, "detail");
  if (rc)
    return rc;
  if (response->length > max_page_size)
    return pm__errf(PM_EPROTO, "response of %u bytes over the max page %u",
                    response->length, max_page_size);
  if (response->status < 0 && response->length != 0)
    return pm__errf(PM_EPROTO, "failed response carries %u bytes",
                    response->length);
  if (response->length > 0 || response->checksum.len != 0)
    return check_binary(&response->checksum, 16, "checksum");
  return 0;
}

int pm__frame_validate(const Pm__PageFrame *frame, uint32_t max_page_size) {
  switch (frame->body_case) {
  case PM__PAGE_FRAME__BODY_GET:
    if (!frame->get)
      return pm__errf(PM_EPROTO, "empty get");
    return check_page_request(frame->get->page, max_page_size);
  case PM__PAGE_FRAME__BODY_PUT:
    if (!frame->put)
      return pm__errf(PM_EPROTO, "empty put");
    return check_put(frame->put, max_page_size);
  case PM__PAGE_FRAME__BODY_RESPONSE:
    if (!frame->response)
      return pm__errf(PM_EPROTO, "empty response");
    return check_response(frame->response, max_page_size);
  default:
    return pm__errf(PM_EPROTO, "frame without a body (%d)",
                    (int)frame->body_case);
  }
}

int pm__frame_decode(pm_frame_arena *arena, const uint8_t *frame_bytes,
                     size_t length, uint32_t max_page_size,
                     Pm__PageFrame **out) {
  *out = NULL;
  if (length < PM_FRAME_PREFIX)
    return pm__errf(PM_EPROTO, "truncated frame prefix (%zu bytes)", length);
  int64_t payload = pm__frame_prefix(frame_bytes, PM_FRAME_MAX);
  if (payload < 0)
    return (int)payload;
  if ((size_t)payload != length - PM_FRAME_PREFIX)
    return pm__errf(PM_EPROTO, "frame says %lld bytes, has %zu",
                    (long long)payload, length - PM_FRAME_PREFIX);
  Pm__PageFrame *frame;
  int rc = pm__frame_unpack(arena, frame_bytes + PM_FRAME_PREFIX,
                            (size_t)payload, &frame);
  if (rc)
    return rc;
  rc = pm__frame_validate(frame, max_page_size);
  if (rc)
    return rc;
  *out = frame;
  return 0;
}

int pm__frame_err_prefix(int err, const char *who) {
  char detail[PM_ERRMSG_MAX];
  snprintf(detail, sizeof detail, "%s", pm__errmsg());
  return pm__errf(err, "%s: %s", who, detail);
}
