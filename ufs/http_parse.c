/*
 * ufs/http_parse.c - decoding what an HTTP origin sends back in its
 * headers: the status line, Content-Length, Content-Range, ETag and
 * Last-Modified, and turning an ETag into an object version. Everything
 * here is network input: lengths are bounded (a line over
 * PM_HTTP_HEADER_LINE_MAX is ignored, numbers over 63 bits are refused),
 * nothing is assumed NUL-terminated, and malformed values are ignored
 * rather than trusted.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ufs/curl_int.h"

void pm__http_resp_clear_headers(pm_http_resp *resp) {
  resp->status = 0;
  resp->content_length = -1;
  resp->range_first = resp->range_last = resp->range_total = -1;
  resp->last_modified = -1;
  resp->etag[0] = '\0';
}

int pm__parse_u63(const char *text, size_t length, int64_t *out) {
  if (length == 0 || length > 19)
    return PM_EPROTO;
  uint64_t v = 0;
  for (size_t i = 0; i < length; i++) {
    if (text[i] < '0' || text[i] > '9')
      return PM_EPROTO;
    v = v * 10 + (uint64_t)(text[i] - '0');
  }
  if (v > (uint64_t)INT64_MAX)
    return PM_EPROTO;
  *out = (int64_t)v;
  return 0;
}

/* Parse a number or '*' (-1) from [p, end). */
static int parse_u63_or_star(const char *p, const char *end, int64_t *out) {
  if (end - p == 1 && *p == '*') {
    *out = -1;
    return 0;
  }
  return pm__parse_u63(p, (size_t)(end - p), out);
}

int pm__http_parse_content_range(const char *value, size_t length,
                                 int64_t *first, int64_t *last,
                                 int64_t *total) {
  const char *p = value, *end = value + length;
  if (length < 6 || strncasecmp(p, "bytes", 5) != 0 || p[5] != ' ')
    return PM_EPROTO;
  p += 6;
  const char *slash = memchr(p, '/', (size_t)(end - p));
  if (!slash || parse_u63_or_star(slash + 1, end, total))
    return PM_EPROTO;
  if (slash - p == 1 && *p == '*') {
    *first = *last = -1;
    return 0;
  }
  const char *dash = memchr(p, '-', (size_t)(slash - p));
  if (!dash || pm__parse_u63(p, (size_t)(dash - p), first) ||
      pm__parse_u63(dash + 1, (size_t)(slash - dash - 1), last))
    return PM_EPROTO;
  if (*last < *first || (*total >= 0 && *last >= *total))
    return PM_EPROTO;
  return 0;
}

/* "HTTP/1.1 206 Partial Content": a new response starts. */
static void parse_status_line(pm_http_resp *resp, const char *line,
                              size_t length) {
  const char *sp = memchr(line, ' ', length);
  int64_t status;
  pm__http_resp_clear_headers(resp);
  if (sp && (size_t)(line + length - sp) >= 4 &&
      pm__parse_u63(sp + 1, 3, &status) == 0)
    resp->status = (long)status;
}

static void trim(const char **p, const char **end) {
  while (*p < *end && (**p == ' ' || **p == '\t'))
    (*p)++;
  while (*end > *p && ((*end)[-1] == ' ' || (*end)[-1] == '\t' ||
                       (*end)[-1] == '\r' || (*end)[-1] == '\n'))
    (*end)--;
}

static int name_is(const char *name, size_t name_len, const char *want) {
  return strlen(want) == name_len && !strncasecmp(name, want, name_len);
}

/* Last-Modified: an HTTP date (curl_getdate needs a NUL-terminated copy). */
static void parse_last_modified(pm_http_resp *resp, const char *v, size_t n) {
  char date[64];
  if (n == 0 || n >= sizeof date)
    return;
  memcpy(date, v, n);
  date[n] = '\0';
  time_t t = curl_getdate(date, NULL);
  if (t >= 0)
    resp->last_modified = (int64_t)t;
}

bool pm__http_is_status_line(const char *line, size_t length) {
  return length >= 5 && !strncmp(line, "HTTP/", 5);
}

bool pm__http_header_is(const char *line, size_t length, const char *name,
                        const char **value, size_t *value_length) {
  if (length > PM_HTTP_HEADER_LINE_MAX)
    return false;
  const char *colon = memchr(line, ':', length);
  if (!colon)
    return false;
  const char *n = line, *n_end = colon;
  const char *v = colon + 1, *v_end = line + length;
  trim(&n, &n_end);
  trim(&v, &v_end);
  if (!name_is(n, (size_t)(n_end - n), name))
    return false;
  *value = v;
  *value_length = (size_t)(v_end - v);
  return true;
}

void pm__http_parse_header(pm_http_resp *resp, const char *line,
                           size_t length) {
  if (length > PM_HTTP_HEADER_LINE_MAX)
    return;
  if (pm__http_is_status_line(line, length)) {
    parse_status_line(resp, line, length);
    return;
  }
  const char *colon = memchr(line, ':', length);
  if (!colon)
    return;
  const char *name = line, *name_end = colon;
  const char *v = colon + 1, *v_end = line + length;
  trim(&name, &name_end);
  trim(&v, &v_end);
  size_t name_len = (size_t)(name_end - name), n = (size_t)(v_end - v);
  if (name_is(name, name_len, "content-length")) {
    if (pm__parse_u63(v, n, &resp->content_length))
      resp->content_length = -1;
  } else if (name_is(name, name_len, "content-range")) {
    if (pm__http_parse_content_range(v, n, &resp->range_first,
                                     &resp->range_last, &resp->range_total))
      resp->range_first = resp->range_last = resp->range_total = -1;
  } else if (name_is(name, name_len, "etag")) {
    if (n < sizeof resp->etag) {
      memcpy(resp->etag, v, n);
      resp->etag[n] = '\0';
    }
  } else if (name_is(name, name_len, "last-modified")) {
    parse_last_modified(resp, v, n);
  }
}

/* ---- ETags and versions ---------------------------------------------------
 */

int pm__etag_version(const char *raw, char out[PM_VERSION_MAX]) {
  size_t n = strlen(raw);
  const char *p = raw;
  int weak = n >= 2 && (p[0] == 'W' || p[0] == 'w') && p[1] == '/';
  if (weak) {
    p += 2;
    n -= 2;
  }
  if (n >= 2 && p[0] == '"' && p[n - 1] == '"') {
    p++;
    n -= 2;
  }
  if (n == 0)
    return PM_EPROTO;
  if (n + (weak ? 2 : 0) < PM_VERSION_MAX) {
    snprintf(out, PM_VERSION_MAX, "%s%.*s", weak ? "W/" : "", (int)n, p);
    return 0;
  }
  pm_checksum sum = pm__checksum(raw, strlen(raw));
  char *o = out + snprintf(out, PM_VERSION_MAX, "xxh3:");
  for (size_t i = 0; i < sizeof sum.bytes; i++)
    o += snprintf(o, 3, "%02x", sum.bytes[i]);
  return 0;
}

bool pm__etag_if_match(const char *version, char *out, size_t out_size) {
  /* A space cannot occur in an ETag: versions that hold one were made up
   * from Last-Modified and size by the HTTP backend. */
  if (!version[0] || !strncmp(version, "W/", 2) ||
      !strncmp(version, "xxh3:", 5) || strchr(version, ' '))
    return false;
  int n = snprintf(out, out_size, "\"%s\"", version);
  return n > 0 && (size_t)n < out_size;
}
