/*
 * ufs/azure_auth.c - Shared Key authorisation of Azure Storage requests,
 * as the Azure Storage REST documentation ("Authorize with Shared Key")
 * specifies it for the Blob service, version 2015-02-21 and later: the
 * string-to-sign made of the verb, twelve standard header values (empty
 * when absent), the canonicalized x-ms-* headers and the canonicalized
 * resource (account, path as sent, and the query parameters lowercased,
 * decoded and sorted), signed with HMAC-SHA256 under the decoded account
 * key (libsodium) and sent as "SharedKey ACCOUNT:SIGNATURE". Also the
 * RFC 1123 date of x-ms-date, written without the C locale's help.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ufs/azure_int.h"

/* More query parameters than this in one URL is refused. */
#define QUERY_PARAMS_MAX 64

typedef struct query_param {
  char *name; /* lowercased, decoded */
  char *value;
} query_param;

static int by_name_then_value(const void *a, const void *b) {
  const query_param *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  return c ? c : strcmp(x->value, y->value);
}

/* Decode n bytes into a new string; NULL on a bad escape or no memory. */
static char *decoded(const char *s, size_t n, bool lower) {
  pm_sbuf sb;
  pm__sbuf_init(&sb, PM_UFS_URI_MAX);
  if (pm__uri_decode(&sb, s, n) != 0) {
    pm__sbuf_free(&sb);
    return NULL;
  }
  char *out = pm__sbuf_take(&sb);
  for (char *p = out; lower && p && *p; p++)
    if (*p >= 'A' && *p <= 'Z')
      *p = (char)(*p - 'A' + 'a');
  return out;
}

/* Split "a=1&b=2" into params; *count says how many were filled (to be
 * freed) even on failure. Returns 0, PM_ETOOBIG or PM_EBADURI. */
static int split_query(const char *query, query_param *params, int *count) {
  *count = 0;
  for (const char *p = query; *p; p++) {
    size_t n = strcspn(p, "&");
    if (n == 0)
      continue;
    if (*count == QUERY_PARAMS_MAX)
      return PM_ETOOBIG;
    const char *eq = memchr(p, '=', n);
    size_t name_len = eq ? (size_t)(eq - p) : n;
    query_param *param = &params[(*count)++];
    param->name = decoded(p, name_len, true);
    param->value = decoded(p + name_len + !!eq, n - name_len - !!eq, false);
    if (!param->name || !param->value)
      return PM_EBADURI;
    p += n;
    if (!*p)
      break;
  }
  return 0;
}

static void free_params(query_param *params, int count) {
  for (int i = 0; i < count; i++) {
    free(params[i].name);
    free(params[i].value);
  }
}

static void append_params(pm_sbuf *out, const query_param *params, int count) {
  for (int i = 0; i < count; i++) {
    bool same = i > 0 && !strcmp(params[i].name, params[i - 1].name);
    if (same)
      pm__sbuf_printf(out, ",%s", params[i].value);
    else
      pm__sbuf_printf(out, "\n%s:%s", params[i].name, params[i].value);
  }
}

int pm__azure_canonical_resource(const char *account, const char *url,
                                 pm_sbuf *out) {
  const char *sep = strstr(url, "://");
  if (!sep)
    return pm__errf(PM_EBADURI, "%s: not an absolute URL", url);
  const char *path = sep + 3 + strcspn(sep + 3, "/?");
  size_t path_len = strcspn(path, "?");
  pm__sbuf_printf(out, "/%s", account);
  pm__sbuf_append(out, path_len ? path : "/", path_len ? path_len : 1);
  if (path[path_len] != '?')
    return out->err;
  query_param *params = calloc(QUERY_PARAMS_MAX, sizeof *params);
  if (!params)
    return PM_ENOMEM;
  int count;
  int rc = split_query(path + path_len + 1, params, &count);
  if (!rc) {
    qsort(params, (size_t)count, sizeof *params, by_name_then_value);
    append_params(out, params, count);
    rc = out->err;
  }
  free_params(params, count);
  free(params);
  return rc ? pm__errf(rc, "cannot canonicalise the query of %.256s", url) : 0;
}

static const char *or_empty(const char *s) {
  return s ? s : "";
}

int pm__azure_string_to_sign(const pm_azure_signed *req, pm_sbuf *out) {
  /* Content-Encoding, -Language, -Length, -MD5, -Type, Date,
   * If-Modified-Since: never sent on our GETs and HEADs. */
  pm__sbuf_printf(out, "%s\n\n\n\n\n\n\n\n", req->method);
  pm__sbuf_printf(out, "%s\n\n\n%s\n", or_empty(req->if_match),
                  or_empty(req->range));
  /* The canonicalized headers: our only x-ms-* headers, sorted. */
  pm__sbuf_printf(out, "x-ms-date:%s\nx-ms-version:%s\n", or_empty(req->date),
                  or_empty(req->version));
  if (out->err)
    return out->err;
  return pm__azure_canonical_resource(req->account, req->url, out);
}

static int hmac_base64(const unsigned char *key, size_t key_len,
                       const char *text, size_t text_len, pm_sbuf *out) {
  crypto_auth_hmacsha256_state state;
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  char b64[sodium_base64_ENCODED_LEN(crypto_auth_hmacsha256_BYTES,
                                     sodium_base64_VARIANT_ORIGINAL)];
  crypto_auth_hmacsha256_init(&state, key, key_len);
  crypto_auth_hmacsha256_update(&state, (const unsigned char *)text, text_len);
  crypto_auth_hmacsha256_final(&state, mac);
  sodium_memzero(&state, sizeof state);
  sodium_bin2base64(b64, sizeof b64, mac, sizeof mac,
                    sodium_base64_VARIANT_ORIGINAL);
  return pm__sbuf_puts(out, b64);
}

int pm__azure_authorization(const pm_azure_signed *req,
                            const unsigned char *key, size_t key_len,
                            pm_sbuf *out) {
  pm_sbuf to_sign;
  pm__sbuf_init(&to_sign, 4 * PM_UFS_URI_MAX);
  int rc = pm__azure_string_to_sign(req, &to_sign);
  if (!rc) {
    pm__sbuf_printf(out, "SharedKey %s:", req->account);
    rc = hmac_base64(key, key_len, pm__sbuf_str(&to_sign), to_sign.len, out);
  }
  pm__sbuf_free(&to_sign);
  return rc;
}

void pm__azure_http_date(time_t when, char out[30]) {
  static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed",
                                  "Thu", "Fri", "Sat"};
  static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  struct tm tm;
  gmtime_r(&when, &tm);
  snprintf(out, 30, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7],
           tm.tm_mday % 100, months[tm.tm_mon % 12],
           (tm.tm_year + 1900) % 10000, tm.tm_hour % 100, tm.tm_min % 100,
           tm.tm_sec % 100);
}
