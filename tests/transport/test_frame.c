/* Tests for transport/frame.c and transport/page_msg.c: round trips, the
 * length cap checked before anything is read, truncated and garbage
 * frames, and every field out of range. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_int.h"
#include "transport/frame.h"

TestSuite(frame, .timeout = 30);

#define MAX_PAGE (1u << 20)

static pm_frame_arena arena;
static uint8_t buf[PM_FRAME_PREFIX + PM_FRAME_MAX + 64];
static char long_text[PM_FRAME_MAX];

typedef struct sample {
  Pm__PageFrame frame;
  Pm__PageGet get;
  Pm__PagePut put;
  Pm__PageResponse response;
  Pm__PageRequest page;
  uint8_t id[16], sum[16];
} sample;

static void sample_page(sample *s) {
  pm__page_request__init(&s->page);
  memset(s->id, 0xab, 16);
  s->page.page_id.data = s->id;
  s->page.page_id.len = 16;
  s->page.uri = "s3://bucket/key";
  s->page.version = "\"etag-1\"";
  s->page.object_size = 10u << 20;
  s->page.page_index = 3;
  s->page.page_size = MAX_PAGE;
  s->page.flags = PM_PAGE_REQ_CACHED_ONLY;
}

static Pm__PageFrame *sample_get(sample *s) {
  sample_page(s);
  pm__page_get__init(&s->get);
  s->get.request_id = 42;
  s->get.page = &s->page;
  pm__page_frame__init(&s->frame);
  s->frame.body_case = PM__PAGE_FRAME__BODY_GET;
  s->frame.get = &s->get;
  return &s->frame;
}

static Pm__PageFrame *sample_put(sample *s) {
  sample_page(s);
  pm__page_put__init(&s->put);
  s->put.request_id = 7;
  s->put.page = &s->page;
  s->put.length = 4096;
  memset(s->sum, 0x5a, 16);
  s->put.checksum.data = s->sum;
  s->put.checksum.len = 16;
  pm__page_frame__init(&s->frame);
  s->frame.body_case = PM__PAGE_FRAME__BODY_PUT;
  s->frame.put = &s->put;
  return &s->frame;
}

static Pm__PageFrame *sample_response(sample *s, int status) {
  pm__page_response__init(&s->response);
  s->response.request_id = 42;
  s->response.status = status;
  s->response.length = status ? 0 : 65536;
  memset(s->sum, 0x11, 16);
  if (!status) {
    s->response.checksum.data = s->sum;
    s->response.checksum.len = 16;
  }
  s->response.detail = status ? "s3://bucket/key: no such object" : "";
  pm__page_frame__init(&s->frame);
  s->frame.body_case = PM__PAGE_FRAME__BODY_RESPONSE;
  s->frame.response = &s->response;
  return &s->frame;
}

static int round_trip(const Pm__PageFrame *in, Pm__PageFrame **out) {
  int64_t n = pm__frame_encode(in, buf, sizeof buf);
  cr_assert_gt(n, (int64_t)PM_FRAME_PREFIX);
  return pm__frame_decode(&arena, buf, (size_t)n, MAX_PAGE, out);
}

static void setup(void) {
  pm__frame_arena_init(&arena);
}

Test(frame, get_round_trip, .init = setup) {
  sample s;
  Pm__PageFrame *out;
  cr_assert_eq(round_trip(sample_get(&s), &out), 0, "%s", pm__errmsg());
  cr_assert_eq(out->body_case, PM__PAGE_FRAME__BODY_GET);
  cr_assert_eq(out->get->request_id, 42);
  cr_assert_str_eq(out->get->page->uri, "s3://bucket/key");
  cr_assert_str_eq(out->get->page->version, "\"etag-1\"");
  cr_assert_eq(out->get->page->page_index, 3);
  cr_assert_eq(memcmp(out->get->page->page_id.data, s.id, 16), 0);

  pm_page_request req;
  uint64_t id;
  bool is_put;
  uint32_t length;
  uint8_t sum[16];
  cr_assert_eq(pm__page_msg_request_in(out, MAX_PAGE, &req, &id, &is_put,
                                       &length, sum),
               0);
  cr_assert(!is_put);
  cr_assert_eq(id, 42);
  cr_assert_eq(req.flags, PM_PAGE_REQ_CACHED_ONLY);
  cr_assert_eq(req.object_size, 10u << 20);
}

Test(frame, put_round_trip, .init = setup) {
  sample s;
  Pm__PageFrame *out;
  cr_assert_eq(round_trip(sample_put(&s), &out), 0, "%s", pm__errmsg());
  pm_page_request req;
  uint64_t id;
  bool is_put;
  uint32_t length;
  uint8_t sum[16];
  cr_assert_eq(pm__page_msg_request_in(out, MAX_PAGE, &req, &id, &is_put,
                                       &length, sum),
               0);
  cr_assert(is_put);
  cr_assert_eq(length, 4096);
  cr_assert_eq(memcmp(sum, s.sum, 16), 0);
}

Test(frame, response_round_trip, .init = setup) {
  sample s;
  Pm__PageFrame *out;
  cr_assert_eq(round_trip(sample_response(&s, 0), &out), 0);
  uint32_t length;
  uint8_t sum[16];
  cr_assert_eq(pm__page_msg_response_in(out, 42, 65536, MAX_PAGE, &length,
                                        sum, "peer"),
               0);
  cr_assert_eq(length, 65536);
  /* The answer to another request, or a page too big for the buffer. */
  cr_assert_eq(pm__page_msg_response_in(out, 43, 65536, MAX_PAGE, &length,
                                        sum, "peer"),
               PM_EPROTO);
  cr_assert_eq(pm__page_msg_response_in(out, 42, 65535, MAX_PAGE, &length,
                                        sum, "peer"),
               PM_ETOOBIG);
  /* A request is not an answer, and an answer is not a request. */
  pm_page_request req;
  uint64_t id;
  bool is_put;
  cr_assert_eq(pm__page_msg_request_in(out, MAX_PAGE, &req, &id, &is_put,
                                       &length, sum),
               PM_EPROTO);
}

Test(frame, error_response_carries_detail, .init = setup) {
  sample s;
  Pm__PageFrame *out;
  cr_assert_eq(round_trip(sample_response(&s, PM_ENOENT), &out), 0);
  uint32_t length;
  uint8_t sum[16];
  cr_assert_eq(pm__page_msg_response_in(out, 42, 65536, MAX_PAGE, &length,
                                        sum, "10.0.0.1:7000"),
               PM_ENOENT);
  cr_assert(strstr(pm__errmsg(), "10.0.0.1:7000"), "%s", pm__errmsg());
  cr_assert(strstr(pm__errmsg(), "no such object"), "%s", pm__errmsg());
}

Test(frame, oversize_prefix_rejected_before_reading, .init = setup) {
  uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff};
  cr_assert_eq(pm__frame_prefix(huge, PM_FRAME_MAX), PM_ETOOBIG);
  uint8_t just_over[4];
  pm__frame_put_prefix(just_over, PM_FRAME_MAX + 1);
  cr_assert_eq(pm__frame_prefix(just_over, PM_FRAME_MAX), PM_ETOOBIG);
  uint8_t zero[4] = {0};
  cr_assert_eq(pm__frame_prefix(zero, PM_FRAME_MAX), PM_EPROTO);
  /* Only the 4 prefix bytes exist: the decoder must not look further. */
  Pm__PageFrame *out;
  arena.used = 12345;
  cr_assert_eq(pm__frame_decode(&arena, huge, 4, MAX_PAGE, &out), PM_ETOOBIG);
  cr_assert_eq(arena.used, 12345, "the arena was touched");
  cr_assert_null(out);
}

Test(frame, truncated_frames, .init = setup) {
  sample s;
  int64_t n = pm__frame_encode(sample_put(&s), buf, sizeof buf);
  cr_assert_gt(n, 0);
  Pm__PageFrame *out;
  for (int64_t cut = 0; cut < n; cut++)
    cr_assert_neq(pm__frame_decode(&arena, buf, (size_t)cut, MAX_PAGE, &out),
                  0, "cut at %lld decoded", (long long)cut);
  /* A prefix that claims less than what is there is also refused. */
  pm__frame_put_prefix(buf, (uint32_t)(n - PM_FRAME_PREFIX - 1));
  cr_assert_eq(pm__frame_decode(&arena, buf, (size_t)n, MAX_PAGE, &out),
               PM_EPROTO);
}

Test(frame, garbage_never_crashes, .init = setup) {
  uint64_t state = 0x9e3779b97f4a7c15ull;
  Pm__PageFrame *out;
  for (int round = 0; round < 5000; round++) {
    size_t length = 1 + (state % 300);
    for (size_t i = 0; i < length; i++) {
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      buf[PM_FRAME_PREFIX + i] = (uint8_t)state;
    }
    pm__frame_put_prefix(buf, (uint32_t)length);
    int rc = pm__frame_decode(&arena, buf, length + PM_FRAME_PREFIX,
                              MAX_PAGE, &out);
    cr_assert(rc == 0 || rc == PM_EPROTO, "rc %d", rc);
  }
}

Test(frame, biggest_payload_fits_the_arena, .init = setup) {
  sample s;
  sample_get(&s);
  memset(long_text, 'u', sizeof long_text - 64);
  long_text[sizeof long_text - 64] = '\0';
  s.page.uri = long_text;
  int64_t n = pm__frame_encode(&s.frame, buf, sizeof buf);
  cr_assert_gt(n, 0);
  Pm__PageFrame *out;
  cr_assert_eq(pm__frame_unpack(&arena, buf + PM_FRAME_PREFIX,
                                (size_t)n - PM_FRAME_PREFIX, &out),
               0, "%s", pm__errmsg());
  cr_assert_eq(pm__frame_validate(out, MAX_PAGE), PM_EPROTO); /* uri */
  /* Over the cap, encoding refuses. */
  static char too_long[PM_FRAME_MAX + 10];
  memset(too_long, 'v', sizeof too_long - 1);
  s.page.uri = too_long;
  cr_assert_eq(pm__frame_encode(&s.frame, buf, sizeof buf), PM_ETOOBIG);
}

/* Encode the sample after `mutate` and expect decode to refuse it. */
#define EXPECT_REFUSED(make, mutate)                                          \
  do {                                                                        \
    sample s;                                                                 \
    Pm__PageFrame *f = make;                                                  \
    mutate;                                                                   \
    Pm__PageFrame *out;                                                       \
    int64_t n = pm__frame_encode(f, buf, sizeof buf);                         \
    cr_assert_gt(n, 0);                                                       \
    cr_assert_eq(pm__frame_decode(&arena, buf, (size_t)n, MAX_PAGE, &out),    \
                 PM_EPROTO, "accepted: " #mutate);                            \
  } while (0)

Test(frame, wrong_field_sizes, .init = setup) {
  static char uri_4097[4098], version_128[129], detail_512[513];
  memset(uri_4097, 'a', 4097);
  memset(version_128, 'b', 128);
  memset(detail_512, 'c', 512);
  EXPECT_REFUSED(sample_get(&s), s.page.page_id.len = 15);
  EXPECT_REFUSED(sample_get(&s), s.page.page_id.len = 0);
  EXPECT_REFUSED(sample_get(&s), s.page.uri = "");
  EXPECT_REFUSED(sample_get(&s), s.page.uri = uri_4097);
  EXPECT_REFUSED(sample_get(&s), s.page.version = version_128);
  EXPECT_REFUSED(sample_get(&s), s.page.page_size = 0);
  EXPECT_REFUSED(sample_get(&s), s.page.page_size = MAX_PAGE + 1);
  EXPECT_REFUSED(sample_get(&s), s.page.flags = 0x80);
  EXPECT_REFUSED(sample_get(&s), s.page.page_index = 11);
  EXPECT_REFUSED(sample_get(&s), s.get.page = NULL);
  EXPECT_REFUSED(sample_put(&s), s.put.checksum.len = 15);
  EXPECT_REFUSED(sample_put(&s), s.put.length = MAX_PAGE + 1);
  EXPECT_REFUSED(sample_response(&s, 0), s.response.checksum.len = 0);
  EXPECT_REFUSED(sample_response(&s, 0), s.response.status = 1);
  EXPECT_REFUSED(sample_response(&s, 0), s.response.status = -1001);
  EXPECT_REFUSED(sample_response(&s, 0), s.response.length = MAX_PAGE + 1);
  EXPECT_REFUSED(sample_response(&s, PM_EIO), s.response.length = 1);
  EXPECT_REFUSED(sample_response(&s, PM_EIO), s.response.detail = detail_512);
  /* A frame without a body: only an unknown field (9, varint 1). */
  Pm__PageFrame *none;
  uint8_t unknown[] = {0, 0, 0, 2, 0x48, 0x01};
  cr_assert_eq(pm__frame_decode(&arena, unknown, sizeof unknown, MAX_PAGE,
                                &none),
               PM_EPROTO);
  /* The limits themselves are accepted. */
  sample s;
  Pm__PageFrame *out;
  sample_get(&s);
  uri_4097[4096] = '\0';
  version_128[127] = '\0';
  s.page.uri = uri_4097;
  s.page.version = version_128;
  cr_assert_eq(round_trip(&s.frame, &out), 0, "%s", pm__errmsg());
}
