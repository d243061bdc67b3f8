/*
 * tests/fuzz/fuzz_http_headers.c - libFuzzer target for what origins send
 * in response headers: each line of the input is fed to the header parser
 * (pm__http_parse_header: status lines, Content-Length, Content-Range,
 * ETag, Last-Modified), to the by-name lookup the Azure and HF backends
 * use (pm__http_header_is), and as a Link header value to the HF
 * pagination parser (pm__hf_link_next); the ETag that results is turned
 * into a version. Nothing may crash or read past a line; the parsed
 * fields stay within their bounds. Seeds: corpus/http_headers/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ufs/curl_int.h"
#include "ufs/hf_int.h"

static void one_line(pm_http_resp *resp, const char *line, size_t n) {
  /* A copy of exactly n bytes: reading past it is an ASan error. */
  char *copy = malloc(n ? n : 1);
  if (!copy)
    return;
  memcpy(copy, line, n);
  pm__http_parse_header(resp, copy, n);
  const char *v;
  size_t v_len;
  if (pm__http_header_is(copy, n, "link", &v, &v_len)) {
    pm_sbuf next;
    pm__sbuf_init(&next, 8192);
    int rc = pm__hf_link_next(v, v_len, &next);
    if (rc != 0 && rc != 1 && rc != PM_EPROTO)
      abort();
    if (rc == 1 && (next.len == 0 || next.len > v_len))
      abort();
    pm__sbuf_free(&next);
  }
  int64_t first, last, total;
  if (pm__http_parse_content_range(copy, n, &first, &last, &total) == 0 &&
      first >= 0 && (last < first || (total >= 0 && last >= total)))
    abort();
  free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pm_http_resp resp;
  pm__http_resp_init(&resp);
  const char *p = (const char *)data, *end = p + size;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
    one_line(&resp, p, n);
    p += n;
  }
  if (strlen(resp.etag) >= sizeof resp.etag)
    abort();
  char version[PM_VERSION_MAX];
  if (resp.etag[0] && pm__etag_version(resp.etag, version) == 0 &&
      strlen(version) >= PM_VERSION_MAX)
    abort();
  pm__http_resp_free(&resp);
  return 0;
}
