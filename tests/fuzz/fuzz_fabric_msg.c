/*
 * tests/fuzz/fuzz_fabric_msg.c - libFuzzer target for the control message
 * path of the fabric transport (pm_fabric_msg_open in
 * transport/fabric_msg.c): envelope parsing, authentication, protobuf
 * unpacking into the capped arena, and field validation.
 *
 * The first input byte picks the mode. Odd: the rest is a message as it
 * arrives from the wire (almost always refused as PM_EAUTH: no forging
 * the tag). Even: the rest is sealed under the fuzz key first, so the
 * unpacker and the validator see arbitrary authentic plaintext. Opening
 * must return 0, PM_EAUTH or PM_EPROTO; what opens must be valid and must
 * seal and open again. The same input, as the page trailer that lands in
 * front of a page, goes to pm_fabric_trailer_open (odd) or shapes a
 * trailer that must seal and open to itself (even). Seeds: corpus/fabric_msg/ (mode byte 0 followed by
 * a packed PageFrame).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transport/fabric_int.h"

#define MAX_PAGE (1u << 20)

static const uint8_t fuzz_key[32] = "fuzzing-the-fabric-msg-open-path";
static const uint8_t sender[16] = {2, 0, 0x30, 0x39, 127, 0, 0, 1};

static pm_fabric_keys *keys(void) {
  static pm_fabric_keys k;
  static int ready;
  if (!ready) {
    if (pm_fabric_keys_init(&k, fuzz_key, "fuzz-cluster"))
      abort();
    ready = 1;
  }
  return &k;
}

static void check_request(const Pm__PageRequest *page) {
  if (!page || page->page_id.len != 16 || !page->uri ||
      strlen(page->uri) == 0 || strlen(page->uri) > PM_FABRIC_URI_MAX ||
      page->page_size == 0 || page->page_size > MAX_PAGE)
    abort();
  pm_page_request req;
  pm_fabric_req_from_pb(page, &req);
  if (req.flags & ~(uint32_t)PM_PAGE_REQ_KNOWN)
    abort();
}

static void check_valid(const Pm__PageFrame *frame) {
  switch (frame->body_case) {
  case PM__PAGE_FRAME__BODY_GET:
    check_request(frame->get->page);
    break;
  case PM__PAGE_FRAME__BODY_PUT:
    check_request(frame->put->page);
    if (frame->put->length == 0 || frame->put->length > MAX_PAGE ||
        frame->put->checksum.len != PM_FABRIC_CHECKSUM_LEN)
      abort();
    break;
  case PM__PAGE_FRAME__BODY_RESPONSE:
    if (frame->response->status > 0 || frame->response->length > MAX_PAGE)
      abort();
    break;
  default:
    abort();
  }
}

/* What opened must seal and open again to the same kind of frame. */
static void check_round_trip(const pm_fabric_msg *msg) {
  static uint8_t wire[PM_FABRIC_MSG_MAX];
  static uint8_t arena_mem[PM_FABRIC_ARENA_SIZE];
  ssize_t len = pm_fabric_msg_seal(keys(), msg->sender, msg->sender_len,
                                   msg->frame, wire, sizeof wire);
  if (len == PM_ETOOBIG)
    return; /* unknown fields can make a re-pack larger */
  if (len < 0)
    abort();
  pm_fabric_arena arena;
  pm_fabric_msg again;
  pm_fabric_arena_init(&arena, arena_mem, sizeof arena_mem);
  if (pm_fabric_msg_open(keys(), wire, (size_t)len, MAX_PAGE, &arena,
                         &again) != 0 ||
      again.frame->body_case != msg->frame->body_case)
    abort();
}

/* The page trailer (pm_fabric_trailer_open): landed bytes open only if
 * authentic (never, here) and within the room; fields taken from the
 * input, sealed, open to the same fields. */
static void check_trailer(const uint8_t *in, size_t len, bool sealed) {
  uint8_t wire[PM_FABRIC_TRAILER_LEN] = {0};
  memcpy(wire, in, len < sizeof wire ? len : sizeof wire);
  pm_fabric_trailer got;
  if (!sealed) {
    int rc = pm_fabric_trailer_open(keys(), wire, MAX_PAGE, &got);
    if (rc != PM_EAUTH && rc != PM_EPROTO &&
        !(rc == 0 && got.length <= MAX_PAGE))
      abort();
    return;
  }
  pm_fabric_trailer t;
  memcpy(&t.request_id, wire, sizeof t.request_id);
  memcpy(&t.length, wire + 8, sizeof t.length);
  memcpy(t.checksum, wire + 12, sizeof t.checksum);
  pm_fabric_trailer_seal(keys(), &t, wire);
  int rc = pm_fabric_trailer_open(keys(), wire, MAX_PAGE, &got);
  if (t.length > MAX_PAGE ? rc != PM_EPROTO
                          : rc != 0 || got.request_id != t.request_id ||
                                got.length != t.length ||
                                memcmp(got.checksum, t.checksum,
                                       sizeof t.checksum) != 0)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static uint8_t sealed[PM_FABRIC_MSG_MAX + 64];
  static uint8_t arena_mem[PM_FABRIC_ARENA_SIZE];
  if (size == 0)
    return 0;
  const uint8_t *wire = data + 1;
  size_t len = size - 1;
  check_trailer(wire, len, (data[0] & 1) == 0);
  if ((data[0] & 1) == 0) {
    ssize_t n = pm_fabric_msg_seal_bytes(keys(), sender, sizeof sender,
                                         wire, len, sealed, sizeof sealed);
    if (n < 0)
      return 0;
    wire = sealed;
    len = (size_t)n;
  }
  pm_fabric_arena arena;
  pm_fabric_msg msg;
  pm_fabric_arena_init(&arena, arena_mem, sizeof arena_mem);
  int rc = pm_fabric_msg_open(keys(), wire, len, MAX_PAGE, &arena, &msg);
  if (rc != 0 && rc != PM_EAUTH && rc != PM_EPROTO)
    abort();
  if (rc == 0) {
    check_valid(msg.frame);
    check_round_trip(&msg);
  }
  return 0;
}
