/*
 * tests/ufs/test_http_parse.c - ufs/http_parse.c: response headers are
 * network input; good ones are read, bad and over-long ones are ignored,
 * and ETags become versions (and If-Match values) the same way every time.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ufs/curl_int.h"

TestSuite(http_parse, .timeout = 10);

static void header(pm_http_resp *resp, const char *line) {
  pm__http_parse_header(resp, line, strlen(line));
}

Test(http_parse, content_range) {
  int64_t first, last, total;
  const char *ok = "bytes 0-99/1234";
  cr_assert_eq(
      pm__http_parse_content_range(ok, strlen(ok), &first, &last, &total), 0);
  cr_assert_eq(first, 0);
  cr_assert_eq(last, 99);
  cr_assert_eq(total, 1234);
  cr_assert_eq(
      pm__http_parse_content_range("bytes */55", 10, &first, &last, &total), 0);
  cr_assert_eq(first, -1);
  cr_assert_eq(total, 55);
  cr_assert_eq(
      pm__http_parse_content_range("bytes 5-9/*", 11, &first, &last, &total),
      0);
  cr_assert_eq(total, -1);
  const char *bad[] = {"",
                       "bytes",
                       "bytes ",
                       "items 0-1/2",
                       "bytes 0-1",
                       "bytes 5-4/10",
                       "bytes 0-10/10",
                       "bytes -1/10",
                       "bytes 0-/10",
                       "bytes a-b/c",
                       "bytes 0-1/",
                       "bytes 0-1/99999999999999999999",
                       "bytes 0x1-2/3",
                       "bytes 1-2/3 "};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_assert_eq(pm__http_parse_content_range(bad[i], strlen(bad[i]), &first,
                                              &last, &total),
                 PM_EPROTO, "%s", bad[i]);
}

Test(http_parse, numbers) {
  int64_t v;
  cr_assert_eq(pm__parse_u63("9223372036854775807", 19, &v), 0);
  cr_assert_eq(v, INT64_MAX);
  cr_assert_eq(pm__parse_u63("9223372036854775808", 19, &v), PM_EPROTO);
  cr_assert_eq(pm__parse_u63("", 0, &v), PM_EPROTO);
  cr_assert_eq(pm__parse_u63("-1", 2, &v), PM_EPROTO);
  cr_assert_eq(pm__parse_u63("12 ", 3, &v), PM_EPROTO);
}

Test(http_parse, headers_of_a_response) {
  pm_http_resp resp;
  pm__http_resp_init(&resp);
  header(&resp, "HTTP/1.1 206 Partial Content\r\n");
  header(&resp, "content-LENGTH:   100 \r\n");
  header(&resp, "Content-Range: bytes 100-199/1000\r\n");
  header(&resp, "ETag: \"abc-1\"\r\n");
  header(&resp, "Last-Modified: Wed, 21 Oct 2015 07:28:00 GMT\r\n");
  header(&resp, "X-Other: whatever\r\n");
  header(&resp, "\r\n");
  cr_assert_eq(resp.status, 206);
  cr_assert_eq(resp.content_length, 100);
  cr_assert_eq(resp.range_first, 100);
  cr_assert_eq(resp.range_total, 1000);
  cr_assert_str_eq(resp.etag, "\"abc-1\"");
  cr_assert_eq(resp.last_modified, 1445412480);
  header(&resp, "HTTP/2 200\r\n"); /* a new response: all reset */
  cr_assert_eq(resp.status, 200);
  cr_assert_eq(resp.content_length, -1);
  cr_assert_eq(resp.range_first, -1);
  cr_assert_str_eq(resp.etag, "");
  cr_assert_eq(resp.last_modified, -1);
  pm__http_resp_free(&resp);
}

Test(http_parse, garbage_is_ignored) {
  pm_http_resp resp;
  pm__http_resp_init(&resp);
  header(&resp, "HTTP/1.1 2x0 Huh\r\n");
  cr_assert_eq(resp.status, 0);
  header(&resp, "HTTP/1.1\r\n");
  cr_assert_eq(resp.status, 0);
  header(&resp, "Content-Length: -5\r\n");
  header(&resp, "Content-Length: 99999999999999999999999\r\n");
  cr_assert_eq(resp.content_length, -1);
  header(&resp, "Content-Range: bytes 9-1/5\r\n");
  cr_assert_eq(resp.range_first, -1);
  header(&resp, "Last-Modified: yesterday-ish\r\n");
  cr_assert_eq(resp.last_modified, -1);
  header(&resp, "no colon at all");
  header(&resp, ":");
  header(&resp, "");
  char *huge = malloc(PM_HTTP_HEADER_LINE_MAX + 10);
  memset(huge, 'a', PM_HTTP_HEADER_LINE_MAX + 9);
  memcpy(huge, "ETag: ", 6);
  huge[PM_HTTP_HEADER_LINE_MAX + 9] = '\0';
  header(&resp, huge);
  cr_assert_str_eq(resp.etag, "");
  huge[PM_HTTP_ETAG_MAX + 10] = '\0'; /* fits a line, not an ETag */
  header(&resp, huge);
  cr_assert_str_eq(resp.etag, "");
  free(huge);
  /* Random bytes, deterministic. */
  unsigned seed = 1;
  char line[200];
  for (int i = 0; i < 20000; i++) {
    size_t n = (size_t)rand_r(&seed) % sizeof line;
    for (size_t j = 0; j < n; j++)
      line[j] = (char)rand_r(&seed);
    pm__http_parse_header(&resp, line, n);
  }
  pm__http_resp_free(&resp);
}

Test(http_parse, etag_versions) {
  char v[PM_VERSION_MAX], im[PM_VERSION_MAX + 2];
  cr_assert_eq(pm__etag_version("\"abc\"", v), 0);
  cr_assert_str_eq(v, "abc");
  cr_assert(pm__etag_if_match(v, im, sizeof im));
  cr_assert_str_eq(im, "\"abc\"");
  cr_assert_eq(pm__etag_version("W/\"weak\"", v), 0);
  cr_assert_str_eq(v, "W/weak");
  cr_assert_not(pm__etag_if_match(v, im, sizeof im));
  cr_assert_eq(pm__etag_version("unquoted", v), 0);
  cr_assert_str_eq(v, "unquoted");
  cr_assert_eq(pm__etag_version("\"\"", v), PM_EPROTO);
  cr_assert_eq(pm__etag_version("", v), PM_EPROTO);
  cr_assert_not(pm__etag_if_match("lm:5 size:9", im, sizeof im));
  cr_assert_not(pm__etag_if_match("", im, sizeof im));
}

Test(http_parse, long_etags_are_hashed_stably) {
  char raw[600], v1[PM_VERSION_MAX], v2[PM_VERSION_MAX], im[300];
  memset(raw, 'e', sizeof raw - 1);
  raw[0] = raw[sizeof raw - 2] = '"';
  raw[sizeof raw - 1] = '\0';
  cr_assert_eq(pm__etag_version(raw, v1), 0);
  cr_assert_eq(pm__etag_version(raw, v2), 0);
  cr_assert_str_eq(v1, v2);
  cr_assert_eq(strncmp(v1, "xxh3:", 5), 0);
  cr_assert_eq(strlen(v1), 5 + 32);
  cr_assert_not(pm__etag_if_match(v1, im, sizeof im));
  raw[10] = 'f';
  cr_assert_eq(pm__etag_version(raw, v2), 0);
  cr_assert_str_neq(v1, v2);
}
