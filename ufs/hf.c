/*
 * ufs/hf.c - the Hugging Face Hub origin: "hf://datasets/ORG/NAME/path",
 * "hf://ORG/MODEL/path", "hf://spaces/...", each with an optional
 * "@revision", resolved the way huggingface_hub resolves files.
 *
 * stat is a HEAD of ENDPOINT/.../resolve/REV/PATH that does not follow the
 * redirect to storage (as get_hf_file_metadata): an LFS file answers with
 * a redirect carrying X-Linked-Etag (its sha256, the version) and
 * X-Linked-Size; a small file answers 200 with its ETag (the git blob id)
 * and Content-Length. read is a ranged GET of the same URL; a redirect is
 * followed by hand, with the token sent only to the endpoint's own origin
 * (never to the storage host), and the answer must carry the expected
 * version (X-Linked-Etag of the redirect, else the ETag) and size, or the
 * read is PM_ECHANGED. If-Match is not sent: storage ETags are not the
 * Hub's. list walks the tree API page by page (Link: rel="next", followed
 * only on the endpoint's origin). 401 (private or missing repository
 * without a token), 403 (gated) and 404 are errors naming the URI and the
 * Hub's X-Error-Code and X-Error-Message.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ufs/curl_int.h"
#include "ufs/hf_int.h"

#define MAX_HOPS 5
#define ERROR_TEXT_MAX 256

typedef struct hf_ufs {
  pm_ufs base;
  pm_hf_config cfg;
  pm_curl_pool pool;
} hf_ufs;

static int hf_init(pm_ufs *self, const pm_ufs_config *config) {
  hf_ufs *hf = (hf_ufs *)self;
  (void)config;
  int rc = pm__hf_config_load(&hf->cfg);
  if (!rc)
    rc = pm__curl_pool_init(&hf->pool, NULL);
  if (!rc)
    PM_LOG(PM_LOG_INFO, "hf", "endpoint %s, token: %s", hf->cfg.endpoint,
           hf->cfg.token_source);
  return rc;
}

static void hf_fini(pm_ufs *self) {
  hf_ufs *hf = (hf_ufs *)self;
  pm__curl_pool_fini(&hf->pool);
  pm__hf_config_free(&hf->cfg);
}

/* ---- requests, redirects by hand -------------------------------------------
 */

/* The Hub's headers of one response (reset at each status line). */
typedef struct hf_hop {
  char linked_etag[PM_HTTP_ETAG_MAX];
  int64_t linked_size;
  pm_sbuf location, link;
  char error_code[64], error_message[ERROR_TEXT_MAX];
} hf_hop;

static void hop_clear(hf_hop *hop) {
  hop->linked_etag[0] = '\0';
  hop->linked_size = -1;
  pm__sbuf_reset(&hop->location);
  pm__sbuf_reset(&hop->link);
  hop->error_code[0] = hop->error_message[0] = '\0';
}

static void copy_value(char *out, size_t size, const char *v, size_t n) {
  snprintf(out, size, "%.*s", (int)PM_MIN(n, size - 1), v);
}

static void on_header(void *arg, const char *line, size_t length) {
  hf_hop *hop = arg;
  const char *v;
  size_t n;
  if (pm__http_is_status_line(line, length))
    hop_clear(hop);
  else if (pm__http_header_is(line, length, "x-linked-etag", &v, &n))
    copy_value(hop->linked_etag, sizeof hop->linked_etag, v, n);
  else if (pm__http_header_is(line, length, "x-linked-size", &v, &n) &&
           pm__parse_u63(v, n, &hop->linked_size))
    hop->linked_size = -1;
  else if (pm__http_header_is(line, length, "location", &v, &n))
    pm__sbuf_append(&hop->location, v, n);
  else if (pm__http_header_is(line, length, "link", &v, &n))
    pm__sbuf_append(&hop->link, v, n);
  else if (pm__http_header_is(line, length, "x-error-code", &v, &n))
    copy_value(hop->error_code, sizeof hop->error_code, v, n);
  else if (pm__http_header_is(line, length, "x-error-message", &v, &n))
    copy_value(hop->error_message, sizeof hop->error_message, v, n);
}

/* One call: what to ask, and what the hops told (sticky across hops). */
typedef struct hf_call {
  const char *uri;
  pm_http_method method;
  const char *range;
  char *window;
  size_t window_len;
  uint64_t window_offset;
  pm_sbuf *body;
  bool stop_at_linked; /* stat: a redirect with X-Linked-* is the answer */
  hf_hop hop;          /* of the last response */
  char linked_etag[PM_HTTP_ETAG_MAX];
  int64_t linked_size;
} hf_call;

static void call_init(hf_call *call) {
  pm__sbuf_init(&call->hop.location, PM_HTTP_HEADER_LINE_MAX);
  pm__sbuf_init(&call->hop.link, PM_HTTP_HEADER_LINE_MAX);
  hop_clear(&call->hop);
  call->linked_etag[0] = '\0';
  call->linked_size = -1;
}

static void call_free(hf_call *call) {
  pm__sbuf_free(&call->hop.location);
  pm__sbuf_free(&call->hop.link);
}

static bool same_origin(const char *a, const char *b) {
  size_t n = pm__hf_origin_len(a);
  return n && n == pm__hf_origin_len(b) && !strncasecmp(a, b, n);
}

static int send_hop(hf_ufs *hf, hf_call *call, const char *url,
                    pm_http_resp *resp) {
  struct curl_slist *headers = NULL;
  int rc = 0;
  if (hf->cfg.token && same_origin(url, hf->cfg.endpoint))
    rc = pm__http_add_bearer(&headers, hf->cfg.token);
  if (!rc && call->range)
    rc = pm__http_add_header(&headers, "Range", call->range);
  if (rc) {
    curl_slist_free_all(headers);
    return pm__errf(rc, "%s: cannot build request headers", call->uri);
  }
  pm_http_req req = {.uri = call->uri,
                     .url = url,
                     .method = call->method,
                     .headers = headers,
                     .window = call->window,
                     .window_len = call->window_len,
                     .window_offset = call->window_offset,
                     .body = call->body,
                     .on_header = on_header,
                     .header_arg = &call->hop};
  hop_clear(&call->hop);
  rc = pm__http_perform(&hf->pool, &hf->base, &req, resp);
  curl_slist_free_all(headers);
  if (!rc && call->hop.linked_etag[0])
    memcpy(call->linked_etag, call->hop.linked_etag, sizeof call->linked_etag);
  if (!rc && call->hop.linked_size >= 0)
    call->linked_size = call->hop.linked_size;
  return rc;
}

/* The absolute URL a Location names ("/path" is on the current origin). */
static int next_url(const hf_call *call, pm_sbuf *url) {
  const char *loc = pm__sbuf_str(&call->hop.location);
  pm_sbuf next;
  pm__sbuf_init(&next, 4 * PM_UFS_URI_MAX);
  if (loc[0] == '/' && loc[1] != '/')
    pm__sbuf_append(&next, url->data, pm__hf_origin_len(url->data));
  else if (!pm__hf_origin_len(loc))
    next.err = PM_EPROTO;
  pm__sbuf_puts(&next, loc);
  int rc = next.err;
  if (!rc) {
    pm__sbuf_reset(url);
    pm__sbuf_puts(url, pm__sbuf_str(&next));
    rc = url->err;
  }
  pm__sbuf_free(&next);
  return rc ? pm__errf(PM_EPROTO, "%s: bad redirect to \"%.256s\"", call->uri,
                       loc)
            : 0;
}

static bool is_redirect(long status) {
  return status == 301 || status == 302 || status == 303 || status == 307 ||
         status == 308;
}

/* Send the call to url, following up to MAX_HOPS redirects. */
static int hf_send(hf_ufs *hf, hf_call *call, pm_sbuf *url,
                   pm_http_resp *resp) {
  for (int hop = 0;; hop++) {
    int rc = send_hop(hf, call, pm__sbuf_str(url), resp);
    if (rc || !is_redirect(resp->status))
      return rc;
    if (call->stop_at_linked && call->hop.linked_etag[0])
      return 0;
    if (hop == MAX_HOPS || call->hop.location.len == 0)
      return pm__errf(PM_EORIGIN, "%s: %s", call->uri,
                      hop == MAX_HOPS ? "too many redirects"
                                      : "redirect without a Location");
    rc = next_url(call, url);
    if (rc)
      return rc;
  }
}

static int hf_status_err(const hf_ufs *hf, const hf_call *call,
                         const pm_http_resp *resp) {
  char reason[2 * ERROR_TEXT_MAX + 128];
  const hf_hop *hop = &call->hop;
  int n = snprintf(reason, sizeof reason, "%s%s%s", hop->error_code,
                   hop->error_code[0] && hop->error_message[0] ? ": " : "",
                   hop->error_message);
  const char *hint = resp->status == 401 && !hf->cfg.token
                         ? "set HF_TOKEN for a private or gated repository"
                     : resp->status == 401 || resp->status == 403
                         ? "the token has no access to this repository"
                         : NULL;
  if (hint && n >= 0 && (size_t)n < sizeof reason)
    snprintf(reason + n, sizeof reason - (size_t)n, "%s%s", n ? "; " : "",
             hint);
  return pm__http_status_err(call->uri, resp, reason);
}

/* ---- stat and read
 * -----------------------------------------------------------
 */

static int resolve_url(const hf_ufs *hf, const char *uri, pm_hf_path *path,
                       pm_sbuf *url) {
  int rc = pm__hf_uri_parse(uri, path);
  if (!rc && !*path->file)
    rc = pm__errf(PM_ENOENT, "%s: a repository, not a file", uri);
  if (!rc && pm__hf_resolve_url(hf->cfg.endpoint, path, url))
    rc = pm__errf(PM_ETOOBIG, "%s: URL too long", uri);
  return rc;
}

/* The version and size the answer gives: X-Linked-* of a redirect (LFS),
 * else the ETag and length of the final answer. */
static int answer_version(const hf_call *call, const pm_http_resp *resp,
                          char version[PM_VERSION_MAX], int64_t *size) {
  const char *raw = call->linked_etag[0] ? call->linked_etag : resp->etag;
  *size = call->linked_etag[0] ? call->linked_size : resp->content_length;
  if (!raw[0] || pm__etag_version(raw, version))
    return pm__errf(PM_EPROTO, "%s: answer without an ETag", call->uri);
  if (*size < 0)
    return pm__errf(PM_EPROTO, "%s: answer without a size", call->uri);
  return 0;
}

static int hf_stat(pm_ufs *self, const char *uri, pm_object_stat *out) {
  hf_ufs *hf = (hf_ufs *)self;
  pm_hf_path path;
  pm_sbuf url;
  pm_http_resp resp;
  hf_call call = {.uri = uri, .method = PM_HTTP_HEAD, .stop_at_linked = true};
  pm__sbuf_init(&url, 4 * PM_UFS_URI_MAX);
  pm__http_resp_init(&resp);
  call_init(&call);
  int64_t size;
  int rc = resolve_url(hf, uri, &path, &url);
  if (!rc)
    rc = hf_send(hf, &call, &url, &resp);
  if (!rc && resp.status != 200 && !is_redirect(resp.status))
    rc = hf_status_err(hf, &call, &resp);
  if (!rc)
    rc = answer_version(&call, &resp, out->version, &size);
  if (!rc) {
    out->size = (uint64_t)size;
    out->mtime_ns =
        resp.last_modified >= 0 ? resp.last_modified * (int64_t)1000000000 : 0;
  }
  call_free(&call);
  pm__http_resp_free(&resp);
  pm__sbuf_free(&url);
  return rc;
}

static int check_read(const hf_ufs *hf, const hf_call *call,
                      const pm_http_resp *resp, const pm_object_stat *expect,
                      uint64_t offset, size_t length) {
  char now[PM_VERSION_MAX] = "";
  if (resp->status != 200 && resp->status != 206 && resp->status != 416)
    return hf_status_err(hf, call, resp);
  const char *raw = call->linked_etag[0] ? call->linked_etag : resp->etag;
  if (raw[0] && pm__etag_version(raw, now))
    now[0] = '\0';
  if (call->linked_size >= 0 && (uint64_t)call->linked_size != expect->size)
    return pm__errf(PM_ECHANGED, "%s: changed since it was looked up (size)",
                    call->uri);
  return pm__http_check_read(call->uri, resp, now, expect, offset, length);
}

static ssize_t hf_read(pm_ufs *self, const char *uri,
                       const pm_object_stat *expect, uint64_t offset, void *buf,
                       size_t length) {
  hf_ufs *hf = (hf_ufs *)self;
  /* No If-Match: the storage host's ETags are not the Hub's versions. */
  char range[PM_HTTP_RANGE_MAX], unused[PM_VERSION_MAX + 2];
  pm__http_read_headers(expect, offset, length, range, unused);
  pm_hf_path path;
  pm_sbuf url;
  pm_http_resp resp;
  hf_call call = {.uri = uri,
                  .method = PM_HTTP_GET,
                  .range = range,
                  .window = buf,
                  .window_len = length,
                  .window_offset = offset};
  pm__sbuf_init(&url, 4 * PM_UFS_URI_MAX);
  pm__http_resp_init(&resp);
  call_init(&call);
  int rc = resolve_url(hf, uri, &path, &url);
  if (!rc)
    rc = hf_send(hf, &call, &url, &resp);
  if (!rc)
    rc = check_read(hf, &call, &resp, expect, offset, length);
  call_free(&call);
  pm__http_resp_free(&resp);
  pm__sbuf_free(&url);
  return rc ? rc : (ssize_t)length;
}

/* ---- list
 * --------------------------------------------------------------------
 */

typedef struct hf_lister {
  const char *uri;
  const pm_hf_path *path;
  unsigned flags;
  pm_ufs_list_cb cb;
  void *arg;
  pm_sbuf entry_uri;
  size_t items;
  bool stopped;
} hf_lister;

static int list_entry(void *arg, const pm_hf_entry *entry) {
  hf_lister *l = arg;
  if (entry->is_dir && (l->flags & PM_LIST_RECURSIVE))
    return 0; /* recursive listings name objects only */
  pm__sbuf_reset(&l->entry_uri);
  pm__sbuf_append(&l->entry_uri, l->uri, l->path->root_len);
  pm__sbuf_printf(&l->entry_uri, "/%s%s", entry->path,
                  entry->is_dir ? "/" : "");
  if (l->entry_uri.err)
    return pm__errf(l->entry_uri.err, "%s: listed path too long", l->uri);
  char version[PM_VERSION_MAX];
  /* A directory's tree oid is no object version: directories have none. */
  bool has_version = !entry->is_dir && entry->version[0] &&
                     pm__etag_version(entry->version, version) == 0;
  pm_list_entry out = {.uri = l->entry_uri.data,
                       .is_dir = entry->is_dir,
                       .size = entry->is_dir ? 0 : entry->size,
                       .version = has_version ? version : NULL};
  int rc = l->cb(l->arg, &out);
  l->stopped = rc != 0;
  return rc;
}

/* Fetch and decode one page; url becomes the next page's, or "". */
static int list_page(hf_ufs *hf, hf_lister *l, pm_sbuf *url, pm_sbuf *body) {
  hf_call call = {.uri = l->uri, .method = PM_HTTP_GET, .body = body};
  pm_http_resp resp;
  pm__http_resp_init(&resp);
  call_init(&call);
  int rc = hf_send(hf, &call, url, &resp);
  if (!rc && resp.status != 200)
    rc = hf_status_err(hf, &call, &resp);
  if (!rc)
    rc = pm__hf_tree_parse(pm__sbuf_str(body), body->len, list_entry, l,
                           &l->items);
  if (rc == PM_EPROTO && !l->stopped) {
    char why[PM_ERRMSG_MAX];
    snprintf(why, sizeof why, "%s", pm__errmsg());
    rc = pm__errf(rc, "%s: bad tree answer: %s", l->uri, why);
  }
  pm__sbuf_reset(url);
  if (!rc && call.hop.link.len &&
      pm__hf_link_next(call.hop.link.data, call.hop.link.len, url) < 0)
    rc = pm__errf(PM_EPROTO, "%s: bad Link header", l->uri);
  if (!rc && url->len && !same_origin(url->data, hf->cfg.endpoint))
    rc = pm__errf(PM_EPROTO, "%s: next page on another origin (%.256s)", l->uri,
                  url->data);
  call_free(&call);
  pm__http_resp_free(&resp);
  return rc;
}

static int list_pages(hf_ufs *hf, hf_lister *l) {
  pm_sbuf url, body;
  pm__sbuf_init(&url, 4 * PM_UFS_URI_MAX);
  pm__sbuf_init(&body, PM_HF_TREE_BODY_MAX);
  int rc = pm__hf_tree_url(hf->cfg.endpoint, l->path, l->path->file,
                           l->flags & PM_LIST_RECURSIVE, &url)
               ? pm__errf(PM_ETOOBIG, "%s: URL too long", l->uri)
               : 0;
  while (!rc && url.len)
    rc = list_page(hf, l, &url, &body);
  if (!rc && l->items == 0 && *l->path->file)
    rc = pm__errf(PM_ENOENT, "%s: no such directory", l->uri);
  pm__sbuf_free(&url);
  pm__sbuf_free(&body);
  return rc;
}

static int hf_list(pm_ufs *self, const char *uri, unsigned flags,
                   pm_ufs_list_cb cb, void *arg) {
  pm_hf_path path;
  int rc = pm__hf_uri_parse(uri, &path);
  if (rc)
    return rc;
  hf_lister l = {
      .uri = uri, .path = &path, .flags = flags, .cb = cb, .arg = arg};
  pm__sbuf_init(&l.entry_uri, 2 * PM_UFS_URI_MAX);
  rc = list_pages((hf_ufs *)self, &l);
  pm__sbuf_free(&l.entry_uri);
  return rc;
}

static const char *const hf_schemes[] = {"hf", NULL};

const pm_ufs_methods pm_hf_methods = {
    .size = sizeof(pm_ufs_methods),
    .name = "hf",
    .schemes = hf_schemes,
    .object_size = sizeof(hf_ufs),
    .init = hf_init,
    .fini = hf_fini,
    .stat = hf_stat,
    .read = hf_read,
    .list = hf_list,
};
