/*
 * ufs/s3.c - the S3 origin: "s3://bucket/key" on AWS or any S3-compatible
 * server, and the request engine that the GCS origin (ufs/gcs.c, GCS's
 * XML API) shares. Requests are signed by libcurl (CURLOPT_AWS_SIGV4) with
 * the keys ufs/s3_config.c found, or carry an OAuth bearer token (GCS);
 * we add the headers curl leaves to us (x-amz-content-sha256,
 * x-amz-security-token). stat is a HEAD (the ETag,
 * without quotes, is the version); read is a ranged GET with If-Match, so
 * an object replaced between stat and read fails with PM_ECHANGED (412)
 * instead of mixing bytes of two versions, and a body shorter than asked
 * is PM_EIO; list is ListObjectsV2, page after page (continuation tokens),
 * with delimiter '/' unless recursive.
 *
 * Listings skip keys that end in '/' (folder markers: they could not be
 * told apart from the directories pm_list reports with a trailing '/').
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ufs/curl_int.h"
#include "ufs/s3_int.h"

/* SHA-256 of the empty body: what GET and HEAD carry. */
#define EMPTY_SHA256                                                           \
  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

typedef pm_s3_ufs s3_ufs;

int pm__s3_engine_start(pm_s3_ufs *s3, const char *name) {
  int rc = pm__curl_pool_init(&s3->pool,
                               strcmp(name, "s3") ? NULL : "AWS_CA_BUNDLE");
  if (rc)
    return rc;
  pm__s3_regions_init(&s3->regions);
  PM_LOG(PM_LOG_INFO, name,
         "endpoint %s://%s%s, region %s, %s addressing, "
         "credentials: %s",
         s3->cfg.scheme, s3->cfg.host, s3->cfg.base_path, s3->cfg.region,
         s3->cfg.path_style ? "path-style" : "virtual-host",
         s3->cfg.cred_source);
  return 0;
}

static int s3_init(pm_ufs *self, const pm_ufs_config *config) {
  s3_ufs *s3 = (s3_ufs *)self;
  (void)config;
  int rc = pm__s3_config_load(&s3->cfg);
  return rc ? rc : pm__s3_engine_start(s3, "s3");
}

void pm__s3_fini(pm_ufs *self) {
  s3_ufs *s3 = (s3_ufs *)self;
  pm__curl_pool_fini(&s3->pool);
  pm__s3_regions_fini(&s3->regions);
  pm__s3_config_free(&s3->cfg);
}

/* ---- requests
 * ----------------------------------------------------------------- */

typedef struct s3_call {
  const char *uri; /* ours, for messages */
  const char *bucket, *key, *query;
  pm_http_method method;
  const char *range;    /* "bytes=A-B" or NULL */
  const char *if_match; /* quoted ETag or NULL */
  char *window;
  size_t window_len;
  uint64_t window_offset;
  pm_sbuf *body;
} s3_call;

static int build_headers(const s3_ufs *s3, const pm_s3_keys *keys,
                         const s3_call *call, struct curl_slist **list) {
  int rc = 0;
  if (keys->access_key)
    rc = pm__http_add_header(list, "x-amz-content-sha256", EMPTY_SHA256);
  if (!rc && keys->access_key && keys->session_token)
    rc = pm__http_add_header(list, "x-amz-security-token",
                             keys->session_token);
  if (!rc && !keys->access_key && keys->bearer)
    rc = pm__http_add_bearer(list, keys->bearer);
  if (!rc && call->range)
    rc = pm__http_add_header(list, "Range", call->range);
  if (!rc && call->if_match)
    rc = pm__http_add_header(list, "If-Match", call->if_match);
  if (!rc && s3->stored_bytes)
    rc = pm__http_add_header(list, "Accept-Encoding", "gzip");
  return rc ? pm__errf(rc, "%s: cannot build request headers", call->uri) : 0;
}

/* x-amz-bucket-region of the last answer, "" if none. */
static void on_header(void *arg, const char *line, size_t length) {
  char *region = arg;
  const char *v;
  size_t n;
  if (pm__http_is_status_line(line, length))
    region[0] = '\0';
  else if (pm__http_header_is(line, length, "x-amz-bucket-region", &v, &n) &&
           pm__s3_region_valid(v, n))
    snprintf(region, PM_S3_REGION_MAX, "%.*s", (int)n, v);
}

/* One request signed for `region`; *named is the region the answer names. */
static int send_in(s3_ufs *s3, const s3_call *call, const char *region,
                   pm_http_resp *resp, char named[PM_S3_REGION_MAX]) {
  pm_sbuf url;
  struct curl_slist *headers = NULL;
  pm_s3_keys keys = {0};
  char sigv4[PM_S3_REGION_MAX + 16];
  snprintf(sigv4, sizeof sigv4, "aws:amz:%s:s3", region);
  named[0] = '\0';
  pm__sbuf_init(&url, 4 * PM_UFS_URI_MAX);
  int rc = pm__s3_url(&s3->cfg, call->bucket, call->key, call->query, region,
                      &url);
  if (rc) {
    rc = pm__errf(rc, "%s: cannot build the request URL", call->uri);
    goto out;
  }
  rc = pm__s3_keys_get(&s3->cfg, &keys);
  if (!rc)
    rc = build_headers(s3, &keys, call, &headers);
  if (rc)
    goto out;
  bool sign = keys.access_key != NULL;
  pm_http_req req = {.uri = call->uri,
                     .url = pm__sbuf_str(&url),
                     .method = call->method,
                     .headers = headers,
                     .sigv4 = sign ? sigv4 : NULL,
                     .username = keys.access_key,
                     .password = keys.secret_key,
                     .window = call->window,
                     .window_len = call->window_len,
                     .window_offset = call->window_offset,
                     .body = call->body,
                     .on_header = on_header,
                     .header_arg = named};
  rc = pm__http_perform(&s3->pool, &s3->base, &req, resp);
out:
  pm__s3_keys_free(&keys);
  curl_slist_free_all(headers);
  pm__sbuf_free(&url);
  return rc;
}

/* Send the request signed for the bucket's region. When S3 refuses it as
 * signed for the wrong one and names the right one (x-amz-bucket-region,
 * or <Region> in the error: ufs/s3_region.c), learn that and send it once
 * more. */
static int s3_send(s3_ufs *s3, const s3_call *call, pm_http_resp *resp) {
  char region[PM_S3_REGION_MAX], named[PM_S3_REGION_MAX];
  pm__s3_region_of(&s3->regions, call->bucket, s3->cfg.region, region);
  int rc = send_in(s3, call, region, resp, named);
  bool refused = resp->status == 301 || resp->status == 307 ||
                 resp->status == 400;
  if (!rc && refused && !named[0] &&
      (pm__s3_error_region(resp->error_body.data, resp->error_body.len,
                           named, PM_S3_REGION_MAX) != 0 ||
       !pm__s3_region_valid(named, strlen(named))))
    named[0] = '\0'; /* the region may be named in the body instead */
  if (rc || !refused || !named[0] || !strcmp(named, region))
    return rc;
  PM_LOG(PM_LOG_INFO, "s3", "bucket %s is in region %s, not %s", call->bucket,
         named, region);
  pm__s3_region_learn(&s3->regions, call->bucket, named);
  memcpy(region, named, sizeof region);
  return send_in(s3, call, region, resp, named);
}

/* S3 codes that a 400 carries when the credentials are the trouble. */
static bool auth_code(const char *code) {
  static const char *const codes[] = {
      "InvalidToken", "ExpiredToken", "InvalidAccessKeyId",
      "AuthorizationHeaderMalformed", "TokenRefreshRequired"};
  for (size_t i = 0; i < PM_ARRAY_SIZE(codes); i++)
    if (!strcmp(code, codes[i]))
      return true;
  return false;
}

/* The error for a non-2xx answer, with S3's <Code> and <Message>. */
static int s3_status_err(const char *uri, const pm_http_resp *resp) {
  char code[128], message[256], reason[400] = "";
  if (pm__s3_error_parse(resp->error_body.data, resp->error_body.len, code,
                         sizeof code, message, sizeof message) == 0 &&
      code[0])
    snprintf(reason, sizeof reason, "%s%s%s", code, message[0] ? ": " : "",
             message);
  else if (resp->status == 403)
    snprintf(reason, sizeof reason,
             "check the credentials, the region and "
             "the clock");
  else if (resp->status == 301)
    snprintf(reason, sizeof reason,
             "the bucket is in another region: set "
             "AWS_REGION");
  int rc = pm__http_status_err(uri, resp, reason);
  return resp->status == 400 && auth_code(code) ? PM_EACCES : rc;
}

/* ---- stat and read
 * ------------------------------------------------------------- */

static int stat_from_headers(const char *uri, const pm_http_resp *resp,
                             pm_object_stat *out) {
  if (resp->content_length < 0)
    return pm__errf(PM_EPROTO, "%s: HEAD answer without Content-Length", uri);
  if (!resp->etag[0] || pm__etag_version(resp->etag, out->version))
    return pm__errf(PM_EPROTO, "%s: HEAD answer without an ETag", uri);
  out->size = (uint64_t)resp->content_length;
  out->mtime_ns =
      resp->last_modified >= 0 ? resp->last_modified * (int64_t)1000000000 : 0;
  return 0;
}

int pm__s3_stat(pm_ufs *self, const char *uri, pm_object_stat *out) {
  char bucket[PM_BUCKET_MAX + 1];
  const char *key;
  int rc = pm__s3_uri_split(uri, bucket, sizeof bucket, &key);
  if (rc)
    return rc;
  if (!*key)
    return pm__errf(PM_ENOENT, "%s: a bucket, not an object", uri);
  pm_http_resp resp;
  pm__http_resp_init(&resp);
  s3_call call = {
      .uri = uri, .bucket = bucket, .key = key, .method = PM_HTTP_HEAD};
  rc = s3_send((s3_ufs *)self, &call, &resp);
  if (!rc)
    rc = resp.status == 200 ? stat_from_headers(uri, &resp, out)
                            : s3_status_err(uri, &resp);
  pm__http_resp_free(&resp);
  return rc;
}

/* The answer to a ranged GET: the expected version, whole. */
static int check_read(const char *uri, const pm_http_resp *resp,
                      const pm_object_stat *expect, uint64_t offset,
                      size_t length) {
  char now[PM_VERSION_MAX] = "";
  if (resp->status != 200 && resp->status != 206 && resp->status != 412 &&
      resp->status != 416)
    return s3_status_err(uri, resp);
  if (resp->etag[0] && pm__etag_version(resp->etag, now) != 0)
    now[0] = '\0';
  return pm__http_check_read(uri, resp, now, expect, offset, length);
}

ssize_t pm__s3_read(pm_ufs *self, const char *uri, const pm_object_stat *expect,
                    uint64_t offset, void *buf, size_t length) {
  char bucket[PM_BUCKET_MAX + 1], range[PM_HTTP_RANGE_MAX];
  char if_match[PM_VERSION_MAX + 2];
  const char *key;
  int rc = pm__s3_uri_split(uri, bucket, sizeof bucket, &key);
  if (rc)
    return rc;
  bool im = pm__http_read_headers(expect, offset, length, range, if_match);
  pm_http_resp resp;
  pm__http_resp_init(&resp);
  s3_call call = {.uri = uri,
                  .bucket = bucket,
                  .key = key,
                  .method = PM_HTTP_GET,
                  .range = range,
                  .if_match = im ? if_match : NULL,
                  .window = buf,
                  .window_len = length,
                  .window_offset = offset};
  rc = s3_send((s3_ufs *)self, &call, &resp);
  if (!rc)
    rc = check_read(uri, &resp, expect, offset, length);
  pm__http_resp_free(&resp);
  return rc ? rc : (ssize_t)length;
}

/* ---- list
 * ------------------------------------------------------------------------- */

typedef struct s3_lister {
  const char *uri, *bucket;
  size_t root_len; /* of "s3://bucket" in uri: listed URIs start so */
  pm_sbuf prefix, query, body, entry_uri;
  unsigned flags;
  pm_ufs_list_cb cb;
  void *arg;
  bool stopped; /* the caller's callback asked to stop */
  pm_s3_list_page page;
} s3_lister;

static int list_item(void *arg, const pm_s3_item *item) {
  s3_lister *l = arg;
  pm_listed listed = {.name = item->key,
                      .is_dir = item->is_prefix,
                      .size = item->size,
                      .mtime_ns = item->mtime_ns,
                      .raw_etag = item->etag};
  int rc =
      pm__list_emit(&l->entry_uri, l->uri, l->root_len, &listed, l->cb, l->arg);
  l->stopped = rc != 0;
  return rc;
}

/* The ListObjectsV2 query: parameters sorted, values RFC 3986 encoded. */
static int list_query(s3_lister *l, uint32_t max_keys, bool first) {
  pm_sbuf *q = &l->query;
  pm__sbuf_reset(q);
  if (!first) {
    pm__sbuf_puts(q, "continuation-token=");
    pm__uri_encode(q, l->page.next_token, strlen(l->page.next_token), false);
    pm__sbuf_puts(q, "&");
  }
  if (!(l->flags & PM_LIST_RECURSIVE))
    pm__sbuf_puts(q, "delimiter=%2F&");
  pm__sbuf_printf(q, "list-type=2&max-keys=%" PRIu32, max_keys);
  if (l->prefix.len) {
    pm__sbuf_puts(q, "&prefix=");
    pm__uri_encode(q, l->prefix.data, l->prefix.len, false);
  }
  return q->err ? pm__errf(q->err, "%s: listing query too long", l->uri) : 0;
}

/* Fetch and decode one page. */
static int list_page(s3_ufs *s3, s3_lister *l, bool first) {
  int rc = list_query(l, s3->cfg.max_keys, first);
  if (rc)
    return rc;
  pm_http_resp resp;
  pm__http_resp_init(&resp);
  s3_call call = {.uri = l->uri,
                  .bucket = l->bucket,
                  .key = "",
                  .query = l->query.data,
                  .method = PM_HTTP_GET,
                  .body = &l->body};
  rc = s3_send(s3, &call, &resp);
  if (!rc && resp.status != 200)
    rc = s3_status_err(l->uri, &resp);
  pm__http_resp_free(&resp);
  if (rc)
    return rc;
  rc = pm__s3_list_parse(pm__sbuf_str(&l->body), l->body.len, list_item, l,
                         &l->page);
  if (rc && !l->stopped) {
    char why[PM_ERRMSG_MAX];
    snprintf(why, sizeof why, "%s", pm__errmsg());
    return pm__errf(rc, "%s: bad ListObjectsV2 answer: %s", l->uri, why);
  }
  if (!rc && l->page.truncated && !l->page.next_token[0])
    return pm__errf(PM_EPROTO,
                    "%s: truncated listing without a "
                    "continuation token",
                    l->uri);
  return rc;
}

static int list_pages(s3_ufs *s3, s3_lister *l) {
  size_t items = 0;
  bool first = true;
  int rc;
  do {
    rc = list_page(s3, l, first);
    first = false;
    items += l->page.items;
  } while (rc == 0 && l->page.truncated);
  if (rc == 0 && items == 0 && l->prefix.len)
    rc = pm__errf(PM_ENOENT, "%s: no such object or prefix", l->uri);
  return rc;
}

int pm__s3_list(pm_ufs *self, const char *uri, unsigned flags,
                pm_ufs_list_cb cb, void *arg) {
  char bucket[PM_BUCKET_MAX + 1];
  const char *key;
  int rc = pm__s3_uri_split(uri, bucket, sizeof bucket, &key);
  if (rc)
    return rc;
  s3_lister *l = calloc(1, sizeof *l);
  if (!l)
    return pm__errf(PM_ENOMEM, "%s: out of memory", uri);
  *l = (s3_lister){.uri = uri,
                   .bucket = bucket,
                   .root_len = (size_t)(key - uri) - (*key || key[-1] == '/'),
                   .flags = flags,
                   .cb = cb,
                   .arg = arg};
  pm__sbuf_init(&l->prefix, PM_UFS_URI_MAX);
  pm__sbuf_init(&l->query, 4 * PM_UFS_URI_MAX);
  pm__sbuf_init(&l->body, PM_S3_LIST_BODY_MAX);
  pm__sbuf_init(&l->entry_uri, 2 * PM_UFS_URI_MAX);
  pm__sbuf_puts(&l->prefix, key);
  if (l->prefix.len && key[l->prefix.len - 1] != '/')
    pm__sbuf_puts(&l->prefix, "/");
  rc = l->prefix.err ? pm__errf(PM_ETOOBIG, "%s: key too long", uri)
                     : list_pages((s3_ufs *)self, l);
  pm__sbuf_free(&l->prefix);
  pm__sbuf_free(&l->query);
  pm__sbuf_free(&l->body);
  pm__sbuf_free(&l->entry_uri);
  free(l);
  return rc;
}

static const char *const s3_schemes[] = {"s3", NULL};

const pm_ufs_methods pm_s3_methods = {
    .size = sizeof(pm_ufs_methods),
    .name = "s3",
    .schemes = s3_schemes,
    .object_size = sizeof(s3_ufs),
    .init = s3_init,
    .fini = pm__s3_fini,
    .stat = pm__s3_stat,
    .read = pm__s3_read,
    .list = pm__s3_list,
};
