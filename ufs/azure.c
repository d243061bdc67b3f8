/*
 * ufs/azure.c - the Azure Blob Storage origin: "az://container/blob" and
 * "abfs[s]://container@account.dfs.core.windows.net/blob", on Azure or on
 * an emulator (Azurite). stat is Get Blob Properties (a HEAD; the ETag is
 * the version), read is a ranged Get Blob with If-Match on that ETag (so a
 * blob replaced in between is PM_ECHANGED, 412 ConditionNotMet, never a
 * mix of two versions; a short body is PM_EIO), list is List Blobs page
 * after page (NextMarker), with delimiter '/' unless recursive.
 *
 * Requests to the configured account carry its Shared Key signature
 * (ufs/azure_auth.c), its SAS token, or a bearer token of the machine's
 * managed identity (ufs/azure_identity.c); an account named only in the URI,
 * or no credentials at all, gets anonymous requests (public containers).
 * Errors name the URI and the service's own code (x-ms-error-code, or
 * <Code> and <Message> of the error body). Listings skip names ending in
 * '/' (folder markers), as the S3 backend does.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ufs/azure_int.h"
#include "ufs/curl_int.h"
#include "ufs/s3_int.h"

#define ERROR_CODE_MAX 128

typedef struct azure_ufs {
  pm_ufs base;
  pm_azure_config cfg;
  pm_curl_pool pool;
} azure_ufs;

static int azure_init(pm_ufs *self, const pm_ufs_config *config) {
  azure_ufs *az = (azure_ufs *)self;
  (void)config;
  int rc = pm__azure_config_load(&az->cfg);
  if (!rc)
    rc = pm__curl_pool_init(&az->pool, NULL);
  if (!rc)
    PM_LOG(PM_LOG_INFO, "azure", "account %s, endpoint %s, credentials: %s",
           az->cfg.account ? az->cfg.account : "(from the URI)",
           az->cfg.endpoint ? az->cfg.endpoint : "ACCOUNT.blob.SUFFIX",
           az->cfg.cred_source);
  return rc;
}

static void azure_fini(pm_ufs *self) {
  azure_ufs *az = (azure_ufs *)self;
  pm__curl_pool_fini(&az->pool);
  pm__azure_config_free(&az->cfg);
}

/* ---- requests
 * ----------------------------------------------------------------
 */

typedef struct az_call {
  const char *uri; /* ours, for messages */
  const pm_azure_path *path;
  const char *query; /* our parameters, sorted and encoded, or NULL */
  pm_http_method method;
  const char *range, *if_match; /* header values or NULL */
  char *window;
  size_t window_len;
  uint64_t window_offset;
  pm_sbuf *body;
  char error_code[ERROR_CODE_MAX]; /* x-ms-error-code of the answer */
  bool directory; /* a hierarchical-namespace directory (not a blob) */
} az_call;

static void on_header(void *arg, const char *line, size_t length) {
  az_call *call = arg;
  const char *v;
  size_t n;
  if (pm__http_is_status_line(line, length)) {
    call->error_code[0] = '\0';
    call->directory = false;
  } else if (pm__http_header_is(line, length, "x-ms-error-code", &v, &n)) {
    snprintf(call->error_code, sizeof call->error_code, "%.*s",
             (int)PM_MIN(n, (size_t)ERROR_CODE_MAX - 1), v);
  } else if ((pm__http_header_is(line, length, "x-ms-resource-type", &v,
                                 &n) &&
              n == 9 && !strncasecmp(v, "directory", 9)) ||
             (pm__http_header_is(line, length, "x-ms-meta-hdi_isfolder", &v,
                                 &n) &&
              n == 4 && !strncasecmp(v, "true", 4))) {
    /* An account with a hierarchical namespace (abfs) shows its
     * directories as empty blobs marked so */
    call->directory = true;
  }
}

/* The URL, with the SAS token when it is the one that authorises. */
static int build_url(const azure_ufs *az, const az_call *call, pm_sbuf *url,
                     pm_azure_target *target) {
  pm_sbuf query;
  pm__sbuf_init(&query, 4 * PM_UFS_URI_MAX);
  pm__sbuf_puts(&query, call->query ? call->query : "");
  int rc = pm__azure_url(&az->cfg, call->path, "", url, target);
  if (!rc && target->own_account && !az->cfg.key && az->cfg.sas)
    pm__sbuf_printf(&query, "%s%s", query.len ? "&" : "", az->cfg.sas);
  if (!rc && query.len)
    pm__sbuf_printf(url, "?%s", pm__sbuf_str(&query));
  if (!rc && (query.err || url->err))
    rc = pm__errf(PM_ETOOBIG, "request URL too long");
  pm__sbuf_free(&query);
  if (!rc)
    return 0;
  char why[PM_ERRMSG_MAX];
  snprintf(why, sizeof why, "%s", pm__errmsg());
  return pm__errf(rc, "%s: %s", call->uri, why);
}

static int sign(const azure_ufs *az, const az_call *call, const char *url,
                const pm_azure_target *target, const char *date,
                struct curl_slist **headers) {
  pm_azure_signed req = {.method =
                             call->method == PM_HTTP_HEAD ? "HEAD" : "GET",
                         .url = url,
                         .account = target->account,
                         .if_match = call->if_match,
                         .range = call->range,
                         .date = date,
                         .version = PM_AZURE_API_VERSION};
  pm_sbuf auth;
  pm__sbuf_init(&auth, 1024);
  int rc = pm__azure_authorization(&req, az->cfg.key, az->cfg.key_len, &auth);
  if (!rc)
    rc = pm__http_add_header(headers, "Authorization", pm__sbuf_str(&auth));
  pm__sbuf_free(&auth);
  return rc;
}

static int build_headers(const azure_ufs *az, const az_call *call,
                         const char *url, const pm_azure_target *target,
                         struct curl_slist **headers) {
  char date[30];
  pm__azure_http_date(time(NULL), date);
  int rc = pm__http_add_header(headers, "x-ms-date", date);
  if (!rc)
    rc = pm__http_add_header(headers, "x-ms-version", PM_AZURE_API_VERSION);
  if (!rc && call->range)
    rc = pm__http_add_header(headers, "Range", call->range);
  if (!rc && call->if_match)
    rc = pm__http_add_header(headers, "If-Match", call->if_match);
  if (!rc && target->own_account && az->cfg.key)
    rc = sign(az, call, url, target, date, headers);
  if (rc)
    return pm__errf(rc, "%s: cannot build request headers", call->uri);
  if (target->own_account && az->cfg.identity) {
    char *token;
    rc = pm__azure_identity_token(az->cfg.identity, &token);
    if (rc) {
      char why[PM_ERRMSG_MAX];
      snprintf(why, sizeof why, "%s", pm__errmsg());
      return pm__errf(rc, "%s: %s", call->uri, why);
    }
    rc = pm__http_add_bearer(headers, token);
    pm__ufs_free_secret(&token);
    if (rc)
      return pm__errf(rc, "%s: cannot build request headers", call->uri);
  }
  return 0;
}

static int az_send(azure_ufs *az, az_call *call, pm_http_resp *resp) {
  pm_sbuf url;
  struct curl_slist *headers = NULL;
  pm_azure_target target;
  pm__sbuf_init(&url, 4 * PM_UFS_URI_MAX);
  int rc = build_url(az, call, &url, &target);
  if (!rc)
    rc = build_headers(az, call, pm__sbuf_str(&url), &target, &headers);
  if (!rc) {
    pm_http_req req = {.uri = call->uri,
                       .url = pm__sbuf_str(&url),
                       .method = call->method,
                       .headers = headers,
                       .window = call->window,
                       .window_len = call->window_len,
                       .window_offset = call->window_offset,
                       .body = call->body,
                       .on_header = on_header,
                       .header_arg = call};
    rc = pm__http_perform(&az->pool, &az->base, &req, resp);
  }
  curl_slist_free_all(headers);
  pm__sbuf_free(&url);
  return rc;
}

/* The error for a non-2xx answer, with the service's code and message. */
static int az_status_err(const az_call *call, const pm_http_resp *resp) {
  char code[ERROR_CODE_MAX], message[256], reason[512];
  if (pm__s3_error_parse(resp->error_body.data, resp->error_body.len, code,
                         sizeof code, message, sizeof message) != 0 ||
      !code[0])
    snprintf(code, sizeof code, "%s", call->error_code);
  message[strcspn(message, "\r\n")] = '\0'; /* drop RequestId and Time */
  int n = snprintf(reason, sizeof reason, "%s%s%s", code,
                   code[0] && message[0] ? ": " : "", message);
  if (resp->status == 403 && n >= 0 && (size_t)n < sizeof reason)
    snprintf(reason + n, sizeof reason - (size_t)n,
             "%scheck the account key or SAS token, and the clock",
             n ? "; " : "");
  return pm__http_status_err(call->uri, resp, reason);
}

/* ---- stat and read
 * -----------------------------------------------------------
 */

static int parse_path(const char *uri, pm_azure_path *path, bool want_blob) {
  int rc = pm__azure_uri_parse(uri, path);
  if (!rc && want_blob && !*path->blob)
    rc = pm__errf(PM_ENOENT, "%s: a container, not a blob", uri);
  return rc;
}

static int azure_stat(pm_ufs *self, const char *uri, pm_object_stat *out) {
  pm_azure_path path;
  int rc = parse_path(uri, &path, true);
  if (rc)
    return rc;
  pm_http_resp resp;
  pm__http_resp_init(&resp);
  az_call call = {.uri = uri, .path = &path, .method = PM_HTTP_HEAD};
  rc = az_send((azure_ufs *)self, &call, &resp);
  if (!rc && resp.status != 200)
    rc = az_status_err(&call, &resp);
  else if (!rc && call.directory)
    rc = pm__errf(PM_ENOENT, "%s: a directory, not a blob", uri);
  else if (!rc && (resp.content_length < 0 || !resp.etag[0] ||
                   pm__etag_version(resp.etag, out->version)))
    rc = pm__errf(PM_EPROTO, "%s: answer without Content-Length or ETag", uri);
  if (!rc) {
    out->size = (uint64_t)resp.content_length;
    out->mtime_ns =
        resp.last_modified >= 0 ? resp.last_modified * (int64_t)1000000000 : 0;
  }
  pm__http_resp_free(&resp);
  return rc;
}

static ssize_t azure_read(pm_ufs *self, const char *uri,
                          const pm_object_stat *expect, uint64_t offset,
                          void *buf, size_t length) {
  char range[PM_HTTP_RANGE_MAX], if_match[PM_VERSION_MAX + 2];
  char now[PM_VERSION_MAX] = "";
  pm_azure_path path;
  int rc = parse_path(uri, &path, true);
  if (rc)
    return rc;
  bool im = pm__http_read_headers(expect, offset, length, range, if_match);
  pm_http_resp resp;
  pm__http_resp_init(&resp);
  az_call call = {.uri = uri,
                  .path = &path,
                  .method = PM_HTTP_GET,
                  .range = range,
                  .if_match = im ? if_match : NULL,
                  .window = buf,
                  .window_len = length,
                  .window_offset = offset};
  rc = az_send((azure_ufs *)self, &call, &resp);
  if (!rc && resp.status != 200 && resp.status != 206 && resp.status != 412 &&
      resp.status != 416)
    rc = az_status_err(&call, &resp);
  else if (!rc && resp.etag[0] && pm__etag_version(resp.etag, now))
    now[0] = '\0';
  if (!rc)
    rc = pm__http_check_read(uri, &resp, now, expect, offset, length);
  pm__http_resp_free(&resp);
  return rc ? rc : (ssize_t)length;
}

/* ---- list
 * --------------------------------------------------------------------
 */

typedef struct az_lister {
  const char *uri;
  const pm_azure_path *path;
  pm_sbuf prefix, query, body, entry_uri;
  unsigned flags;
  pm_ufs_list_cb cb;
  void *arg;
  bool stopped; /* the caller's callback asked to stop */
  pm_azure_list_page page;
} az_lister;

static int list_item(void *arg, const pm_azure_item *item) {
  az_lister *l = arg;
  pm_listed listed = {.name = item->name,
                      .is_dir = item->is_prefix,
                      .size = item->size,
                      .mtime_ns = item->mtime_ns,
                      .raw_etag = item->etag};
  int rc = pm__list_emit(&l->entry_uri, l->uri, l->path->root_len, &listed,
                         l->cb, l->arg);
  l->stopped = rc != 0;
  return rc;
}

/* The List Blobs query: parameters sorted, values RFC 3986 encoded. */
static int list_query(az_lister *l, uint32_t max_results, bool first) {
  pm_sbuf *q = &l->query;
  pm__sbuf_reset(q);
  pm__sbuf_puts(q, "comp=list");
  if (!(l->flags & PM_LIST_RECURSIVE))
    pm__sbuf_puts(q, "&delimiter=%2F");
  if (!first) {
    pm__sbuf_puts(q, "&marker=");
    pm__uri_encode(q, l->page.next_marker, strlen(l->page.next_marker), false);
  }
  pm__sbuf_printf(q, "&maxresults=%" PRIu32, max_results);
  if (l->prefix.len) {
    pm__sbuf_puts(q, "&prefix=");
    pm__uri_encode(q, l->prefix.data, l->prefix.len, false);
  }
  pm__sbuf_puts(q, "&restype=container");
  return q->err ? pm__errf(q->err, "%s: listing query too long", l->uri) : 0;
}

static int list_page(azure_ufs *az, az_lister *l, bool first) {
  int rc = list_query(l, az->cfg.max_results, first);
  if (rc)
    return rc;
  pm_azure_path container = *l->path;
  container.blob = "";
  pm_http_resp resp;
  pm__http_resp_init(&resp);
  az_call call = {.uri = l->uri,
                  .path = &container,
                  .query = l->query.data,
                  .method = PM_HTTP_GET,
                  .body = &l->body};
  rc = az_send(az, &call, &resp);
  if (!rc && resp.status != 200)
    rc = az_status_err(&call, &resp);
  pm__http_resp_free(&resp);
  if (rc)
    return rc;
  rc = pm__azure_list_parse(pm__sbuf_str(&l->body), l->body.len, list_item, l,
                            &l->page);
  if (rc && !l->stopped) {
    char why[PM_ERRMSG_MAX];
    snprintf(why, sizeof why, "%s", pm__errmsg());
    return pm__errf(rc, "%s: bad List Blobs answer: %s", l->uri, why);
  }
  return rc;
}

static int list_pages(azure_ufs *az, az_lister *l) {
  size_t items = 0;
  bool first = true;
  int rc;
  do {
    rc = list_page(az, l, first);
    first = false;
    items += l->page.items;
  } while (rc == 0 && l->page.next_marker[0]);
  if (rc == 0 && items == 0 && l->prefix.len)
    rc = pm__errf(PM_ENOENT, "%s: no such blob or prefix", l->uri);
  return rc;
}

static int azure_list(pm_ufs *self, const char *uri, unsigned flags,
                      pm_ufs_list_cb cb, void *arg) {
  pm_azure_path path;
  int rc = parse_path(uri, &path, false);
  if (rc)
    return rc;
  az_lister *l = calloc(1, sizeof *l);
  if (!l)
    return pm__errf(PM_ENOMEM, "%s: out of memory", uri);
  *l = (az_lister){
      .uri = uri, .path = &path, .flags = flags, .cb = cb, .arg = arg};
  pm__sbuf_init(&l->prefix, PM_UFS_URI_MAX);
  pm__sbuf_init(&l->query, 4 * PM_UFS_URI_MAX);
  pm__sbuf_init(&l->body, PM_AZURE_LIST_BODY_MAX);
  pm__sbuf_init(&l->entry_uri, 2 * PM_UFS_URI_MAX);
  pm__sbuf_puts(&l->prefix, path.blob);
  if (l->prefix.len && path.blob[l->prefix.len - 1] != '/')
    pm__sbuf_puts(&l->prefix, "/");
  rc = l->prefix.err ? pm__errf(PM_ETOOBIG, "%s: name too long", uri)
                     : list_pages((azure_ufs *)self, l);
  pm__sbuf_free(&l->prefix);
  pm__sbuf_free(&l->query);
  pm__sbuf_free(&l->body);
  pm__sbuf_free(&l->entry_uri);
  free(l);
  return rc;
}

static const char *const azure_schemes[] = {"az", "abfs", "abfss", NULL};

const pm_ufs_methods pm_azure_methods = {
    .size = sizeof(pm_ufs_methods),
    .name = "azure",
    .schemes = azure_schemes,
    .object_size = sizeof(azure_ufs),
    .init = azure_init,
    .fini = azure_fini,
    .stat = azure_stat,
    .read = azure_read,
    .list = azure_list,
};
