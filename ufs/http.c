/*
 * ufs/http.c - the plain HTTP(S) origin: "http://" and "https://" URLs on
 * any web server. Redirects are followed (at most 5). It cannot list.
 *
 * stat is a HEAD; a server that refuses HEAD (405, 501, or 403 as a
 * presigned URL signed for GET does: a GET then tells) or sends no length
 * is asked for "Range: bytes=0-0" instead and sized from Content-Range (or
 * Content-Length, if it ignores Range; the transfer is then cut short).
 * The version of an object is, in order of preference:
 *   - its ETag without quotes ("W/" kept for a weak tag);
 *   - "lm:<Last-Modified, seconds> size:<bytes>" if there is no ETag;
 *   - "size:<bytes> unversioned" if there is neither, which cannot see a
 *     change that keeps the size: such servers get no better guarantee.
 * read is a ranged GET with If-Match when the version is a strong ETag;
 * whatever the server does with the headers, the answer is checked against
 * the expected version (ETag or Last-Modified, and total size) and a
 * mismatch is PM_ECHANGED. A server that ignores Range and sends the whole
 * object still yields the right bytes: the runner skips to the offset and
 * stops once it has the length. That would cost the object's start on
 * every page: its first such answer is kept whole instead, in a scratch
 * file, for the object's other pages (ufs/http_whole.c); where it cannot
 * be (too large, no scratch directory), a warning says so, once a
 * minute.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ufs/curl_int.h"
#include "ufs/http_whole.h"

typedef struct http_ufs {
  pm_ufs base;
  pm_curl_pool pool;
  pm_http_wholes wholes; /* objects of servers that ignore Range */
} http_ufs;

static int http_init(pm_ufs *self, const pm_ufs_config *config) {
  http_ufs *h = (http_ufs *)self;
  int rc = pm__http_wholes_init(&h->wholes, config->scratch_dir);
  return rc ? rc : pm__curl_pool_init(&h->pool, NULL);
}

static void http_fini(pm_ufs *self) {
  http_ufs *h = (http_ufs *)self;
  pm__curl_pool_fini(&h->pool);
  pm__http_wholes_fini(&h->wholes);
}

/* Send a HEAD or GET, with Range and If-Match values unless NULL; a
 * window receives the 2xx body. */
static int http_send(http_ufs *h, const char *uri, pm_http_method method,
                     const char *range, const char *if_match, char *window,
                     size_t window_len, uint64_t window_offset,
                     pm_http_whole_spill *spill, pm_http_resp *resp) {
  struct curl_slist *headers = NULL, *grown;
  char line[PM_VERSION_MAX + 64];
  int rc = 0;
  if (range) {
    snprintf(line, sizeof line, "Range: %s", range);
    grown = curl_slist_append(headers, line);
    rc = grown ? 0 : PM_ENOMEM;
    headers = grown ? grown : headers;
  }
  if (!rc && if_match) {
    snprintf(line, sizeof line, "If-Match: %s", if_match);
    grown = curl_slist_append(headers, line);
    rc = grown ? 0 : PM_ENOMEM;
    headers = grown ? grown : headers;
  }
  pm_http_req req = {.uri = uri,
                     .url = uri,
                     .method = method,
                     .headers = headers,
                     .follow_redirects = true,
                     .window = window,
                     .window_len = window_len,
                     .window_offset = window_offset,
                     .spill_open = spill ? pm__http_whole_spill_open : NULL,
                     .spill_arg = spill,
                     .spill_max = PM_HTTP_WHOLE_MAX};
  rc = rc ? pm__errf(rc, "%s: out of memory", uri)
          : pm__http_perform(&h->pool, &h->base, &req, resp);
  curl_slist_free_all(headers);
  return rc;
}

/* The version of an object of `size` bytes from the answer's headers. */
static void version_of(const pm_http_resp *resp, uint64_t size,
                       char out[PM_VERSION_MAX]) {
  if (resp->etag[0] && pm__etag_version(resp->etag, out) == 0)
    return;
  if (resp->last_modified >= 0)
    snprintf(out, PM_VERSION_MAX, "lm:%" PRId64 " size:%" PRIu64,
             resp->last_modified, size);
  else
    snprintf(out, PM_VERSION_MAX, "size:%" PRIu64 " unversioned", size);
}

static void fill_stat(const pm_http_resp *resp, uint64_t size,
                      pm_object_stat *out) {
  out->size = size;
  out->mtime_ns =
      resp->last_modified >= 0 ? resp->last_modified * (int64_t)1000000000 : 0;
  version_of(resp, size, out->version);
}

/* HEAD refused or silent on length: GET the first byte. */
static int stat_by_get(http_ufs *h, const char *uri, pm_object_stat *out) {
  char first;
  pm_http_resp resp;
  pm__http_resp_init(&resp);
  int rc =
      http_send(h, uri, PM_HTTP_GET, "bytes=0-0", NULL, &first, 1, 0, NULL,
                &resp);
  if (rc)
    goto out;
  int64_t size = resp.status == 206   ? resp.range_total
                 : resp.status == 200 ? resp.content_length
                 : resp.status == 416 ? resp.range_total /* empty object */
                                      : -1;
  if (resp.status != 200 && resp.status != 206 && resp.status != 416)
    rc = pm__http_status_err(uri, &resp, NULL);
  else if (size < 0)
    rc = pm__errf(PM_EPROTO,
                  "%s: the server tells neither HEAD nor a "
                  "ranged GET the object's size",
                  uri);
  else
    fill_stat(&resp, (uint64_t)size, out);
out:
  pm__http_resp_free(&resp);
  return rc;
}

static int http_stat(pm_ufs *self, const char *uri, pm_object_stat *out) {
  http_ufs *h = (http_ufs *)self;
  pm_http_resp resp;
  pm__http_resp_init(&resp);
  int rc =
      http_send(h, uri, PM_HTTP_HEAD, NULL, NULL, NULL, 0, 0, NULL, &resp);
  if (rc)
    goto out;
  if (resp.status == 405 || resp.status == 501 || resp.status == 403 ||
      (resp.status == 200 && resp.content_length < 0))
    rc = stat_by_get(h, uri, out);
  else if (resp.status != 200)
    rc = pm__http_status_err(uri, &resp, NULL);
  else
    fill_stat(&resp, (uint64_t)resp.content_length, out);
out:
  pm__http_resp_free(&resp);
  return rc;
}

/* Is the answer the version we expect? Only what the answer carries and
 * the version was made from is compared. */
static bool same_version(const pm_http_resp *resp,
                         const pm_object_stat *expect) {
  char now[PM_VERSION_MAX];
  int64_t total =
      resp->status == 206 ? resp->range_total : resp->content_length;
  if (total >= 0 && (uint64_t)total != expect->size)
    return false;
  bool from_etag = !strchr(expect->version, ' ');
  bool from_lm = !strncmp(expect->version, "lm:", 3) && !from_etag;
  if (from_etag && resp->etag[0])
    return pm__etag_version(resp->etag, now) == 0 &&
           !strcmp(now, expect->version);
  if (from_lm && resp->last_modified >= 0) {
    snprintf(now, sizeof now, "lm:%" PRId64 " size:%" PRIu64,
             resp->last_modified, expect->size);
    return !strcmp(now, expect->version);
  }
  return true;
}

static int check_read(const char *uri, const pm_http_resp *resp,
                      const pm_object_stat *expect, uint64_t offset,
                      size_t length) {
  if (resp->status == 412 || resp->status == 416)
    return pm__errf(PM_ECHANGED,
                    "%s: changed since it was looked up "
                    "(HTTP %ld for version %s)",
                    uri, resp->status, expect->version);
  if (resp->status != 200 && resp->status != 206)
    return pm__http_status_err(uri, resp, NULL);
  if (!same_version(resp, expect))
    return pm__errf(PM_ECHANGED,
                    "%s: changed since it was looked up "
                    "(version %s, size %" PRIu64 ")",
                    uri, expect->version, expect->size);
  if (resp->window_got != length)
    return pm__errf(PM_EIO,
                    "%s: short read at %" PRIu64 ": %zu of %zu "
                    "bytes",
                    uri, offset, resp->window_got, length);
  return 0;
}

static ssize_t http_read(pm_ufs *self, const char *uri,
                         const pm_object_stat *expect, uint64_t offset,
                         void *buf, size_t length) {
  http_ufs *h = (http_ufs *)self;
  /* An object of a server that ignores Range, kept whole (or being
   * written whole by another read: worth waiting for, up to one request's
   * time, rather than asking for the object's start again). */
  if (pm__http_whole_read(&h->wholes, uri, expect, offset, buf, length,
                          (uint64_t)self->config.timeout_ms * 1000000ull) ==
      (ssize_t)length)
    return (ssize_t)length;
  char range[64], if_match[PM_VERSION_MAX + 2];
  snprintf(range, sizeof range, "bytes=%" PRIu64 "-%" PRIu64, offset,
           offset + length - 1);
  bool im = pm__etag_if_match(expect->version, if_match, sizeof if_match);
  pm_http_resp resp;
  pm__http_resp_init(&resp);
  pm_http_whole_spill spill = {.set = &h->wholes, .uri = uri, .st = expect};
  int rc = http_send(h, uri, PM_HTTP_GET, range, im ? if_match : NULL, buf,
                     length, offset, &spill, &resp);
  if (!rc)
    rc = check_read(uri, &resp, expect, offset, length);
  bool whole = !rc && resp.status == 200 && resp.spill_fd >= 0 &&
               !resp.spill_failed && resp.spilled == expect->size;
  pm__http_whole_spill_done(&spill, resp.spill_fd,
                            whole ? PM_HTTP_WHOLE_KEPT
                            : rc  ? PM_HTTP_WHOLE_READ_FAILED
                                  : PM_HTTP_WHOLE_CUT_SHORT);
  if (whole)
    resp.spill_fd = -1; /* kept */
  if (!rc && resp.status == 200 && offset > 0 && !whole &&
      !spill.elsewhere)
    PM_LOG_RATELIMITED(PM_LOG_WARN, "http", 60000,
                       "%s: the server ignores Range (HTTP 200 for bytes "
                       "from %" PRIu64 "): each page is read from the "
                       "start of the object, so reading it whole costs its "
                       "size squared over the page size; serve it from a "
                       "server that honours Range",
                       uri, offset);
  pm__http_resp_free(&resp);
  return rc ? rc : (ssize_t)length;
}

static const char *const http_schemes[] = {"http", "https", NULL};

const pm_ufs_methods pm_http_methods = {
    .size = sizeof(pm_ufs_methods),
    .name = "http",
    .schemes = http_schemes,
    .object_size = sizeof(http_ufs),
    .init = http_init,
    .fini = http_fini,
    .stat = http_stat,
    .read = http_read,
    .list = NULL,
};
