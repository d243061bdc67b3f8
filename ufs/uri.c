/*
 * ufs/uri.c - what an origin URI means before any backend sees it: its
 * scheme, its one normalised spelling (the page ids of an object hang on
 * it), the bucket and key of an S3 URI, and RFC 3986 percent-encoding.
 *
 * Normal forms:
 *  - POSIX: "file:///abs/path". Plain paths and "file://" URIs (empty host
 *    or "localhost") name the same files; relative paths are made absolute
 *    against the working directory; "." and ".." segments and repeated
 *    slashes are resolved lexically (symlinks are not followed). A trailing
 *    '/' is kept (it marks a directory). Paths are taken verbatim: a
 *    "%20" in a file URI stays "%20", as fsspec does.
 *  - S3: "s3://bucket/key" with the scheme lowercased and the key verbatim
 *    (it may hold spaces, '+', '=', '%', '?', '#', "//", UTF-8...).
 *  - HTTP(S): scheme and host lowercased, an empty path becomes "/", a
 *    fragment is dropped; the rest is kept as given.
 *  - GCS: "gs://bucket/key"; "gcs://" is the same object.
 *  - Azure: "az://container/blob", "abfs[s]://container@host/blob" with
 *    the scheme and host lowercased, the blob name verbatim.
 *  - Other schemes (hf://): the scheme is lowercased, the rest kept (the
 *    backend owns its spelling).
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ufs/ufs_priv.h"

#define FILE_PREFIX "file://"

/* ASCII only: <ctype.h> answers by locale, URIs are bytes. */
static int ascii_alpha(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int ascii_alnum(unsigned char c) {
  return ascii_alpha(c) || (c >= '0' && c <= '9');
}

static char ascii_lower(char c) {
  return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

int pm__uri_scheme(const char *uri, char *out, size_t out_size) {
  size_t n = 0;
  if (!ascii_alpha((unsigned char)uri[0]))
    goto plain;
  while (ascii_alnum((unsigned char)uri[n]) || uri[n] == '+' || uri[n] == '-' ||
         uri[n] == '.')
    n++;
  if (strncmp(uri + n, "://", 3) != 0)
    goto plain;
  if (n + 1 > out_size)
    return pm__errf(PM_EBADURI, "%.64s: scheme too long", uri);
  for (size_t i = 0; i < n; i++)
    out[i] = ascii_lower(uri[i]);
  out[n] = '\0';
  return (int)(n + 3);
plain:
  if (out_size)
    out[0] = '\0';
  return 0;
}

/* ---- POSIX paths --------------------------------------------------------- */

typedef struct path_out {
  char *buf;
  size_t size; /* of buf */
  size_t base; /* where the path starts (after "file://") */
  size_t len;  /* current end */
} path_out;

/* Apply the '/'-separated segments of s to the path being built. Returns
 * whether the last segment named a directory ("", "." or ".."). */
static int path_apply(path_out *po, const char *s, int *too_big) {
  int dir_last = 0;
  while (*s) {
    const char *end = strchr(s, '/');
    size_t n = end ? (size_t)(end - s) : strlen(s);
    dir_last = n == 0 || (n == 1 && s[0] == '.') ||
               (n == 2 && s[0] == '.' && s[1] == '.');
    if (n == 2 && s[0] == '.' && s[1] == '.') {
      while (po->len > po->base && po->buf[po->len - 1] != '/')
        po->len--;
      if (po->len > po->base)
        po->len--; /* the '/' before the popped segment */
    } else if (!dir_last) {
      if (po->len + 1 + n + 2 > po->size) {
        *too_big = 1;
        return 0;
      }
      po->buf[po->len++] = '/';
      memcpy(po->buf + po->len, s, n);
      po->len += n;
    }
    s += n;
    if (*s == '/') {
      s++;
      dir_last = 1;
    }
  }
  return dir_last;
}

static int normalize_path(const char *uri, const char *path, char *out,
                          size_t out_size) {
  if (!*path)
    return pm__errf(PM_EBADURI, "%s: empty path", uri);
  if (out_size < sizeof FILE_PREFIX + 2)
    return pm__errf(PM_ETOOBIG, "%s: URI too long", uri);
  path_out po = {out, out_size, strlen(FILE_PREFIX), strlen(FILE_PREFIX)};
  memcpy(out, FILE_PREFIX, po.base);
  int too_big = 0, dir_last;
  if (path[0] != '/') {
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
      return pm__errf(PM_EBADURI,
                      "%s: relative path, and no working "
                      "directory to resolve it",
                      uri);
    path_apply(&po, cwd, &too_big);
  }
  dir_last = path_apply(&po, path, &too_big);
  if (too_big)
    return pm__errf(PM_ETOOBIG, "%.256s...: URI too long", uri);
  if (po.len == po.base || dir_last)
    out[po.len++] = '/';
  out[po.len] = '\0';
  return 0;
}

/* "file://HOST/path": HOST must be empty or localhost. */
static int normalize_file(const char *uri, const char *rest, char *out,
                          size_t out_size) {
  const char *slash = strchr(rest, '/');
  size_t host_len = slash ? (size_t)(slash - rest) : strlen(rest);
  if (host_len && !(host_len == 9 && !strncasecmp(rest, "localhost", 9)))
    return pm__errf(PM_EBADURI,
                    "%s: file URIs on another host (%.*s) are "
                    "not supported",
                    uri, (int)host_len, rest);
  if (!slash)
    return pm__errf(PM_EBADURI, "%s: empty path", uri);
  return normalize_path(uri, slash, out, out_size);
}

/* ---- S3 ---------------------------------------------------------------- */

/* 3 to 63 characters; on GCS up to PM_BUCKET_MAX if every dot-separated
 * part has at most 63. */
static int bucket_valid(const char *bucket, size_t n, bool gcs) {
  if (n < 3 || n > (gcs ? PM_BUCKET_MAX : 63))
    return 0;
  size_t part = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)bucket[i];
    if (!ascii_alnum(c) && c != '.' && c != '-' && c != '_')
      return 0;
    part = c == '.' ? 0 : part + 1;
    if (part > 63)
      return 0;
  }
  return 1;
}

int pm__s3_uri_split(const char *uri, char *bucket, size_t bucket_size,
                     const char **key) {
  size_t prefix = !strncasecmp(uri, "s3://", 5)    ? 5
                  : !strncasecmp(uri, "gs://", 5)  ? 5
                  : !strncasecmp(uri, "gcs://", 6) ? 6
                                                   : 0;
  if (!prefix)
    return pm__errf(PM_EBADURI, "%s: not an s3:// or gs:// URI", uri);
  const char *b = uri + prefix;
  const char *slash = strchr(b, '/');
  size_t n = slash ? (size_t)(slash - b) : strlen(b);
  if (n == 0)
    return pm__errf(PM_EBADURI, "%s: no bucket name", uri);
  bool gcs = prefix == 6 || !strncasecmp(uri, "gs://", 5);
  if (!bucket_valid(b, n, gcs) || n + 1 > bucket_size)
    return pm__errf(PM_EBADURI,
                    "%s: bad bucket name \"%.*s\" (3-63 letters, "
                    "digits, '.', '-'; on GCS up to %d with dots)",
                    uri, (int)PM_MIN(n, PM_BUCKET_MAX), b, PM_BUCKET_MAX);
  memcpy(bucket, b, n);
  bucket[n] = '\0';
  *key = slash ? slash + 1 : b + n;
  return 0;
}

/* "s3://bucket/key", or "gs://bucket/key" for gs:// and gcs://. */
static int normalize_bucket(const char *uri, const char *scheme, char *out,
                            size_t out_size) {
  char bucket[PM_BUCKET_MAX + 1];
  const char *key;
  int rc = pm__s3_uri_split(uri, bucket, sizeof bucket, &key);
  if (rc)
    return rc;
  int n = snprintf(out, out_size, "%s://%s/%s", scheme, bucket, key);
  if (n < 0 || (size_t)n >= out_size)
    return pm__errf(PM_ETOOBIG, "%.256s...: URI too long", uri);
  return 0;
}

/* ---- HTTP(S) and others ---------------------------------------------------
 */

static int normalize_http(const char *uri, size_t prefix, char *out,
                          size_t out_size) {
  for (const char *p = uri; *p; p++)
    if ((unsigned char)*p <= 0x20 || *p == 0x7f)
      return pm__errf(PM_EBADURI,
                      "%s: spaces and control characters must be "
                      "percent-encoded in HTTP URLs",
                      uri);
  const char *auth = uri + prefix;
  size_t auth_len = strcspn(auth, "/?#");
  if (auth_len == 0)
    return pm__errf(PM_EBADURI, "%s: no host", uri);
  const char *at = memchr(auth, '@', auth_len);
  size_t host_from = at ? (size_t)(at - auth) + 1 : 0;
  const char *rest = auth + auth_len;
  size_t rest_len = strcspn(rest, "#");
  int need_slash = rest[0] != '/';
  size_t total = prefix + auth_len + (size_t)need_slash + rest_len;
  if (total + 1 > out_size)
    return pm__errf(PM_ETOOBIG, "%.256s...: URI too long", uri);
  for (size_t i = 0; i < prefix; i++)
    out[i] = ascii_lower(uri[i]);
  for (size_t i = 0; i < auth_len; i++)
    out[prefix + i] = i >= host_from ? ascii_lower(auth[i]) : auth[i];
  size_t at_out = prefix + auth_len;
  if (need_slash)
    out[at_out++] = '/';
  memcpy(out + at_out, rest, rest_len);
  out[at_out + rest_len] = '\0';
  return 0;
}

/* az://, abfs://, abfss://: the scheme and the host after '@' lowercased
 * (the container is checked by the backend, the blob name kept as is). */
static int normalize_azure(const char *uri, size_t prefix, char *out,
                           size_t out_size) {
  size_t n = strlen(uri);
  if (n + 1 > out_size)
    return pm__errf(PM_ETOOBIG, "%.256s...: URI too long", uri);
  size_t auth_end = prefix + strcspn(uri + prefix, "/");
  const char *at = memchr(uri + prefix, '@', auth_end - prefix);
  size_t host_from = at ? (size_t)(at - uri) : auth_end;
  for (size_t i = 0; i < n + 1; i++)
    out[i] = i < prefix || (i > host_from && i < auth_end) ? ascii_lower(uri[i])
                                                           : uri[i];
  return 0;
}

static int normalize_other(const char *uri, size_t prefix, char *out,
                           size_t out_size) {
  size_t n = strlen(uri);
  if (n + 1 > out_size)
    return pm__errf(PM_ETOOBIG, "%.256s...: URI too long", uri);
  for (size_t i = 0; i < n + 1; i++)
    out[i] = i < prefix ? ascii_lower(uri[i]) : uri[i];
  return 0;
}

int pm__uri_normalize(const char *uri, char *out, size_t out_size) {
  if (!uri || !out || out_size == 0)
    return pm__errf(PM_EINVAL, "URI normalisation: NULL argument");
  if (!*uri)
    return pm__errf(PM_EBADURI, "empty URI");
  char scheme[32];
  int prefix = pm__uri_scheme(uri, scheme, sizeof scheme);
  if (prefix < 0)
    return prefix;
  if (prefix == 0)
    return normalize_path(uri, uri, out, out_size);
  if (!strcmp(scheme, "file"))
    return normalize_file(uri, uri + prefix, out, out_size);
  if (!strcmp(scheme, "s3"))
    return normalize_bucket(uri, "s3", out, out_size);
  if (!strcmp(scheme, "gs") || !strcmp(scheme, "gcs"))
    return normalize_bucket(uri, "gs", out, out_size);
  if (!strcmp(scheme, "http") || !strcmp(scheme, "https"))
    return normalize_http(uri, (size_t)prefix, out, out_size);
  if (!strcmp(scheme, "az") || !strcmp(scheme, "abfs") ||
      !strcmp(scheme, "abfss"))
    return normalize_azure(uri, (size_t)prefix, out, out_size);
  return normalize_other(uri, (size_t)prefix, out, out_size);
}

/* ---- percent-encoding ------------------------------------------------------
 */

int pm__uri_encode(pm_sbuf *sb, const char *bytes, size_t length,
                   bool keep_slash) {
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < length; i++) {
    unsigned char c = (unsigned char)bytes[i];
    if (ascii_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~' ||
        (c == '/' && keep_slash)) {
      pm__sbuf_append(sb, &bytes[i], 1);
    } else {
      char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
      pm__sbuf_append(sb, esc, 3);
    }
  }
  return sb->err;
}

static int hex_value(char c) {
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

int pm__uri_decode(pm_sbuf *sb, const char *bytes, size_t length) {
  for (size_t i = 0; i < length; i++) {
    char c = bytes[i];
    if (c == '%') {
      int hi = i + 2 < length ? hex_value(bytes[i + 1]) : -1;
      int lo = hi >= 0 ? hex_value(bytes[i + 2]) : -1;
      if (lo < 0 || (hi == 0 && lo == 0))
        return PM_EPROTO;
      c = (char)(hi * 16 + lo);
      i += 2;
    }
    pm__sbuf_append(sb, &c, 1);
  }
  return sb->err;
}
