/*
 * ufs/s3_xml.c - decoding the XML that S3 (and GCS's XML API) sends:
 * ListObjectsV2 pages and <Error> documents (Azure's errors have the same
 * shape), and S3 timestamps. It is network input: the caller caps the body
 * (PM_S3_LIST_BODY_MAX) and the strict tokenizer of ufs/xml.c caps the
 * rest; anything malformed is PM_EPROTO with the byte offset in the
 * detail.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ufs/s3_int.h"
#include "ufs/xml_int.h"

#define ETAG_MAX 1024

/* ---- ListObjectsV2
 * ------------------------------------------------------------ */

typedef struct list_ctx {
  pm_s3_item_cb cb;
  void *arg;
  pm_s3_list_page *page;
  bool in_contents, in_prefixes, has_key, has_size;
  pm_sbuf key;
  uint64_t size;
  int64_t mtime_ns;
  char etag[ETAG_MAX];
} list_ctx;

static int list_open(void *arg, int depth, const char *name, size_t n,
                     const char *attrs, size_t attrs_length) {
  list_ctx *c = arg;
  (void)attrs;
  (void)attrs_length;
  if (depth == 1 && !pm__xml_name_eq(name, n, "ListBucketResult"))
    return pm__errf(PM_EPROTO, "not a ListObjectsV2 answer (root <%.*s>)",
                    (int)PM_MIN(n, (size_t)64), name);
  if (depth != 2)
    return 0;
  c->in_contents = pm__xml_name_eq(name, n, "Contents");
  c->in_prefixes = pm__xml_name_eq(name, n, "CommonPrefixes");
  c->has_key = c->has_size = false;
  c->size = 0;
  c->mtime_ns = 0;
  c->etag[0] = '\0';
  pm__sbuf_reset(&c->key);
  return 0;
}

static int list_field(list_ctx *c, const char *name, size_t n,
                      const pm_sbuf *text) {
  if (pm__xml_name_eq(name, n, c->in_contents ? "Key" : "Prefix")) {
    pm__sbuf_reset(&c->key);
    pm__sbuf_append(&c->key, text->data ? text->data : "", text->len);
    c->has_key = c->key.err == 0;
  } else if (c->in_contents && pm__xml_name_eq(name, n, "Size")) {
    int64_t v;
    if (pm__parse_u63(pm__sbuf_str(text), text->len, &v))
      return pm__errf(PM_EPROTO, "bad <Size> \"%.32s\"", pm__sbuf_str(text));
    c->size = (uint64_t)v;
    c->has_size = true;
  } else if (c->in_contents && pm__xml_name_eq(name, n, "LastModified")) {
    if (pm__s3_parse_time(pm__sbuf_str(text), &c->mtime_ns))
      c->mtime_ns = 0;
  } else if (c->in_contents && pm__xml_name_eq(name, n, "ETag")) {
    if (!pm__xml_copy_text(text, c->etag, sizeof c->etag))
      return pm__errf(PM_EPROTO, "<ETag> too long");
  }
  return 0;
}

static int list_emit(list_ctx *c) {
  if (!c->has_key || (c->in_contents && !c->has_size))
    return pm__errf(PM_EPROTO, "<%s> without <%s>",
                    c->in_contents ? "Contents" : "CommonPrefixes",
                    !c->has_key ? (c->in_contents ? "Key" : "Prefix") : "Size");
  pm_s3_item item = {.key = pm__sbuf_str(&c->key),
                     .is_prefix = c->in_prefixes,
                     .size = c->size,
                     .mtime_ns = c->mtime_ns,
                     .etag = c->etag};
  c->page->items++;
  return c->cb(c->arg, &item);
}

static int list_close(void *arg, int depth, const char *name, size_t n,
                      const pm_sbuf *text) {
  list_ctx *c = arg;
  if (depth == 3 && (c->in_contents || c->in_prefixes))
    return list_field(c, name, n, text);
  if (depth != 2)
    return 0;
  int rc = 0;
  if (c->in_contents || c->in_prefixes)
    rc = list_emit(c);
  else if (pm__xml_name_eq(name, n, "IsTruncated"))
    c->page->truncated = pm__xml_name_eq(pm__sbuf_str(text), text->len, "true");
  else if (pm__xml_name_eq(name, n, "NextContinuationToken") &&
           !pm__xml_copy_text(text, c->page->next_token,
                              sizeof c->page->next_token))
    rc = pm__errf(PM_EPROTO, "<NextContinuationToken> too long");
  c->in_contents = c->in_prefixes = false;
  return rc;
}

int pm__s3_list_parse(const char *xml, size_t length, pm_s3_item_cb cb,
                      void *arg, pm_s3_list_page *page) {
  memset(page, 0, sizeof *page);
  list_ctx c = {.cb = cb, .arg = arg, .page = page};
  pm__sbuf_init(&c.key, PM_XML_TEXT_MAX);
  pm_xml_sax sax = {list_open, list_close, &c};
  int rc = pm__xml_run(xml, length, &sax);
  pm__sbuf_free(&c.key);
  return rc;
}

/* ---- <Error>
 * ------------------------------------------------------------------- */

typedef struct error_ctx {
  char *code, *message, *region;
  size_t code_size, message_size, region_size;
  int fields; /* depth of Code and Message: 2 in S3's <Error>, 3 in the
                 query APIs' <ErrorResponse><Error> (STS) */
} error_ctx;

static int error_open(void *arg, int depth, const char *name, size_t n,
                      const char *attrs, size_t attrs_length) {
  error_ctx *c = arg;
  (void)attrs;
  (void)attrs_length;
  if (depth == 1 && pm__xml_name_eq(name, n, "Error"))
    c->fields = 2;
  else if (depth == 1 && pm__xml_name_eq(name, n, "ErrorResponse"))
    c->fields = 3;
  else if (depth == 1)
    return PM_EPROTO;
  return 0;
}

static int error_close(void *arg, int depth, const char *name, size_t n,
                       const pm_sbuf *text) {
  error_ctx *c = arg;
  if (depth != c->fields)
    return 0;
  if (pm__xml_name_eq(name, n, "Code"))
    snprintf(c->code, c->code_size, "%s", pm__sbuf_str(text));
  else if (pm__xml_name_eq(name, n, "Message"))
    snprintf(c->message, c->message_size, "%s", pm__sbuf_str(text));
  else if (c->fields == 2 && c->region && pm__xml_name_eq(name, n, "Region"))
    snprintf(c->region, c->region_size, "%s", pm__sbuf_str(text));
  return 0;
}

static int error_run(const char *xml, size_t length, error_ctx *c) {
  pm_xml_sax sax = {error_open, error_close, c};
  char saved[PM_ERRMSG_MAX];
  snprintf(saved, sizeof saved, "%s", pm__errmsg());
  int rc = pm__xml_run(xml, length, &sax);
  pm__errmsg_set(saved); /* a bad error body is not the error to report */
  return rc ? PM_EPROTO : 0;
}

int pm__s3_error_parse(const char *xml, size_t length, char *code,
                       size_t code_size, char *message, size_t message_size) {
  if (code_size)
    code[0] = '\0';
  if (message_size)
    message[0] = '\0';
  if (!xml || length == 0 || code_size == 0 || message_size == 0)
    return PM_EPROTO;
  error_ctx c = {code, message, NULL, code_size, message_size, 0, 0};
  return error_run(xml, length, &c);
}

int pm__s3_error_region(const char *xml, size_t length, char *region,
                        size_t region_size) {
  char code[8], message[8];
  if (region_size)
    region[0] = '\0';
  if (!xml || length == 0 || region_size == 0)
    return PM_EPROTO;
  error_ctx c = {code, message, region, sizeof code, sizeof message,
                 region_size, 0};
  return error_run(xml, length, &c);
}

/* ---- timestamps
 * ---------------------------------------------------------------- */

static bool digits(const char *s, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

int pm__s3_parse_time(const char *s, int64_t *out_ns) {
  int year, mon, day, hour, min, sec;
  if (strlen(s) < 20 || !digits(s, 4, &year) || s[4] != '-' ||
      !digits(s + 5, 2, &mon) || s[7] != '-' || !digits(s + 8, 2, &day) ||
      s[10] != 'T' || !digits(s + 11, 2, &hour) || s[13] != ':' ||
      !digits(s + 14, 2, &min) || s[16] != ':' || !digits(s + 17, 2, &sec))
    return PM_EPROTO;
  if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 ||
      sec > 60)
    return PM_EPROTO;
  const char *p = s + 19;
  int64_t frac_ns = 0, scale = 100000000;
  if (*p == '.')
    for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
      frac_ns += scale ? (*p - '0') * scale : 0;
  /* "Z", or an ISO 8601 offset "+hh:mm"; "UTC" as early AWS CLI v2
   * versions wrote the expiresAt of their SSO cache */
  int64_t offset_s = 0;
  int oh, om;
  if ((*p == '+' || *p == '-') && strlen(p) == 6 && digits(p + 1, 2, &oh) &&
      p[3] == ':' && digits(p + 4, 2, &om) && oh <= 23 && om <= 59)
    offset_s = (*p == '+' ? 1 : -1) * (oh * 3600 + om * 60);
  else if (strcmp(p, "Z") != 0 && strcmp(p, "UTC") != 0)
    return PM_EPROTO;
  struct tm tm = {.tm_year = year - 1900,
                  .tm_mon = mon - 1,
                  .tm_mday = day,
                  .tm_hour = hour,
                  .tm_min = min,
                  .tm_sec = sec};
  time_t t = timegm(&tm);
  *out_ns = ((int64_t)t - offset_s) * 1000000000 + frac_ns;
  return 0;
}

/* ---- STS AssumeRoleWithWebIdentity ------------------------------------------ */

typedef struct sts_ctx {
  pm_s3_keys *keys;
  int64_t *expires_ns;
  bool in_credentials, has_expiry;
} sts_ctx;

static int sts_open(void *arg, int depth, const char *name, size_t n,
                    const char *attrs, size_t attrs_length) {
  sts_ctx *c = arg;
  (void)attrs;
  (void)attrs_length;
  if (depth == 1 &&
      !pm__xml_name_eq(name, n, "AssumeRoleWithWebIdentityResponse") &&
      !pm__xml_name_eq(name, n, "AssumeRoleResponse"))
    return pm__errf(PM_EPROTO, "not an AssumeRole[WithWebIdentity]Response");
  if (depth == 3 && pm__xml_name_eq(name, n, "Credentials"))
    c->in_credentials = true;
  return 0;
}

static int sts_field(char **dst, const pm_sbuf *text, size_t max) {
  const char *s = pm__sbuf_str(text);
  if (!*s || strlen(s) >= max)
    return pm__errf(PM_EPROTO, "an empty or over-long credential");
  free(*dst);
  *dst = strdup(s);
  return *dst ? 0 : pm__errf(PM_ENOMEM, "out of memory");
}

static int sts_close(void *arg, int depth, const char *name, size_t n,
                     const pm_sbuf *text) {
  sts_ctx *c = arg;
  if (depth == 3 && pm__xml_name_eq(name, n, "Credentials"))
    c->in_credentials = false;
  if (depth != 4 || !c->in_credentials)
    return 0;
  if (pm__xml_name_eq(name, n, "AccessKeyId"))
    return sts_field(&c->keys->access_key, text, 256);
  if (pm__xml_name_eq(name, n, "SecretAccessKey"))
    return sts_field(&c->keys->secret_key, text, 256);
  if (pm__xml_name_eq(name, n, "SessionToken"))
    return sts_field(&c->keys->session_token, text, PM_S3_VALUE_MAX);
  if (pm__xml_name_eq(name, n, "Expiration")) {
    if (pm__s3_parse_time(pm__sbuf_str(text), c->expires_ns) != 0)
      return pm__errf(PM_EPROTO, "Expiration is not an ISO 8601 time");
    c->has_expiry = true;
  }
  return 0;
}

int pm__sts_parse_credentials(const char *xml, size_t length,
                              pm_s3_keys *keys, int64_t *expires_ns) {
  sts_ctx c = {.keys = keys, .expires_ns = expires_ns};
  pm_xml_sax sax = {sts_open, sts_close, &c};
  int rc = xml && length ? pm__xml_run(xml, length, &sax)
                         : pm__errf(PM_EPROTO, "an empty answer");
  if (!rc && (!keys->access_key || !keys->secret_key ||
              !keys->session_token || !c.has_expiry))
    rc = pm__errf(PM_EPROTO, "Credentials without AccessKeyId, "
                             "SecretAccessKey, SessionToken or Expiration");
  if (rc) {
    pm__s3_keys_free(keys);
    return rc == PM_ENOMEM ? rc : PM_EPROTO;
  }
  return 0;
}
