/*
 * transport/frame.h - control frames of the page transports and the checks
 * on the messages they carry. A frame is `[u32 big-endian length][protobuf
 * PageFrame]`; the length is checked against a hard cap before anything is
 * read or allocated, and decoding allocates only from a capped bump arena
 * that is reset per frame. Page bytes never travel inside a frame.
 */
#ifndef PM_TRANSPORT_FRAME_H
#define PM_TRANSPORT_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "page.pb-c.h"
#include "pagemesh/transport.h"

/* Largest protobuf payload of a control frame. */
#define PM_FRAME_MAX (64u * 1024u)
/* Bytes of the length prefix. */
#define PM_FRAME_PREFIX 4u
/* Limits on the fields of the messages. */
#define PM_FRAME_URI_MAX 4096u
#define PM_FRAME_VERSION_MAX 127u
#define PM_FRAME_DETAIL_MAX 511u
/* Status codes a response may carry: 0 or a pm_err down to this. */
#define PM_FRAME_STATUS_MIN (-1000)

/* The bump arena protobuf-c allocates from while decoding one frame. Its
 * capacity bounds the memory one frame can make us use. */
#define PM_FRAME_ARENA_SIZE (PM_FRAME_MAX + 16u * 1024u)
typedef struct pm_frame_arena {
  ProtobufCAllocator allocator;
  size_t used;
  _Alignas(16) uint8_t bytes[PM_FRAME_ARENA_SIZE];
} pm_frame_arena;

/* Prepare an arena (once; pm__frame_decode resets it per frame). */
void pm__frame_arena_init(pm_frame_arena *arena);

/* Parse a length prefix and check it against `cap` before the payload is
 * read. Returns the payload length, or PM_ETOOBIG (over the cap) or
 * PM_EPROTO (zero). */
int64_t pm__frame_prefix(const uint8_t prefix[PM_FRAME_PREFIX], size_t cap);

/* Write `length` as a big-endian prefix. */
void pm__frame_put_prefix(uint8_t prefix[PM_FRAME_PREFIX], uint32_t length);

/* Encode `frame` as prefix + payload into out (capacity out_cap). Returns
 * the total bytes written, or PM_ETOOBIG if the payload is over
 * PM_FRAME_MAX or does not fit. */
int64_t pm__frame_encode(const Pm__PageFrame *frame, uint8_t *out,
                         size_t out_cap);

/* Unpack a payload (no prefix) into the arena without checking the fields.
 * Returns 0 or PM_ETOOBIG / PM_EPROTO. *out lives until the next use of
 * the arena. */
int pm__frame_unpack(pm_frame_arena *arena, const uint8_t *payload,
                     size_t length, Pm__PageFrame **out);

/* Check every field of a frame: exactly one body; page ids 16 bytes; uri
 * 1..4096 bytes; version at most 127; page sizes and lengths at most
 * max_page_size; checksums 16 bytes; statuses 0 or a pm_err; details at
 * most 511 bytes. Returns 0 or PM_EPROTO with a detail naming the field. */
int pm__frame_validate(const Pm__PageFrame *frame, uint32_t max_page_size);

/* Decode a whole frame (prefix + payload, `length` bytes in all): check
 * the prefix against the length and the cap, unpack, validate. */
int pm__frame_decode(pm_frame_arena *arena, const uint8_t *frame_bytes,
                     size_t length, uint32_t max_page_size,
                     Pm__PageFrame **out);

/* Prefix the calling thread's error detail with `who` ("peer: detail")
 * and return err. */
int pm__frame_err_prefix(int err, const char *who);

/* ---- page messages (transport/page_msg.c) ------------------------------ */

/* The protobuf form of a page request. The strings and id point into `req`
 * (no copies); `msg` must outlive its use. */
void pm__page_msg_request_out(const pm_page_request *req,
                              Pm__PageRequest *msg);

/* Check a decoded frame that a server received and turn it into a page
 * request (pointing into the frame). For a GET, *is_put is false; for a
 * PUT, *is_put is true and *length and checksum are the page's. Returns 0
 * or PM_EPROTO (not a request, or a field out of range). */
int pm__page_msg_request_in(const Pm__PageFrame *frame,
                            uint32_t max_page_size, pm_page_request *req,
                            uint64_t *request_id, bool *is_put,
                            uint32_t *length, uint8_t checksum[16]);

/* Check a decoded frame that a client received as the answer to request
 * `request_id`, for a page of at most `capacity` bytes. Returns the
 * server's status (0 or a pm_err, with the server's detail recorded for
 * the calling thread), PM_EPROTO for a malformed or unexpected answer, or
 * PM_ETOOBIG when the page would not fit. On 0, *length and checksum are
 * the page's. */
int pm__page_msg_response_in(const Pm__PageFrame *frame, uint64_t request_id,
                             size_t capacity, uint32_t max_page_size,
                             uint32_t *length, uint8_t checksum[16],
                             const char *peer);

#endif /* PM_TRANSPORT_FRAME_H */
