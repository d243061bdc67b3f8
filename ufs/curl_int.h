/*
 * ufs/curl_int.h - the HTTP plumbing that the HTTP-based backends (S3,
 * GCS, Azure, Hugging Face, HTTP(S)) share: a pool of curl easy handles over
 * one CURLSH share (DNS cache and TLS sessions; each pooled handle keeps its
 * own live connections, since libcurl does not support sharing a connection
 * cache between threads), a request runner with retries (exponential backoff,
 * full jitter), response header parsing, and the one mapping of HTTP statuses
 * and curl errors to pm_err (ufs/curl_common.c, ufs/http_parse.c).
 */
#ifndef PM_UFS_CURL_INT_H
#define PM_UFS_CURL_INT_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>

#include "ufs/ufs_priv.h"

/* Idle easy handles kept per pool; more may exist while busy. */
#define PM_CURL_POOL_MAX 32
/* Raw ETag values longer than this are ignored (treated as absent). */
#define PM_HTTP_ETAG_MAX 1024
/* Header lines longer than this are not parsed. */
#define PM_HTTP_HEADER_LINE_MAX 8192
/* How much of an error body is kept for the detail message. */
#define PM_HTTP_ERROR_BODY_MAX (64 * 1024)

/* The certificate authorities to trust beyond (or instead of) the
 * system's (ufs/curl_ca.c): a bundle file and a directory; "" for none. */
typedef struct pm_curl_ca {
  char file[4096];
  char dir[4096];
} pm_curl_ca;

/* Find them in the environment: first_var (or NULL), else
 * REQUESTS_CA_BUNDLE, else CURL_CA_BUNDLE, else SSL_CERT_FILE for the
 * bundle (a directory named there is taken as the directory);
 * SSL_CERT_DIR for the directory ("~/" is $HOME). Errors: PM_ECONFIG (a
 * variable names what cannot be read, or SSL_CERT_DIR a file; detail
 * names it). */
int pm__curl_ca_find(const char *first_var, pm_curl_ca *out);
/* Make handle h trust them. Errors: PM_ECONFIG (libcurl refused). */
int pm__curl_ca_apply(CURL *h, const pm_curl_ca *ca);

typedef struct pm_curl_pool {
  pthread_mutex_t lock;
  pm_curl_ca ca; /* what requests of this pool trust */
  CURL *idle[PM_CURL_POOL_MAX];
  size_t idle_count;
  CURLSH *share;
  pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
  bool ready;
} pm_curl_pool;

/* Set up a pool (and libcurl, once per process), trusting the CAs the
 * environment names (pm__curl_ca_find, with ca_var first, or NULL).
 * Errors: PM_ENOMEM, PM_EIO (libcurl failed to initialise), PM_ECONFIG (a
 * CA variable names what cannot be read). */
int pm__curl_pool_init(pm_curl_pool *pool, const char *ca_var);
/* Free every handle. Accepts a zeroed or failed pool. */
void pm__curl_pool_fini(pm_curl_pool *pool);

typedef enum pm_http_method {
  PM_HTTP_GET = 0,
  PM_HTTP_HEAD = 1,
} pm_http_method;

/* One request. The body of a 2xx answer goes to `window` (a range of the
 * object), to `body` (whole, up to its cap), or nowhere (the transfer is
 * cut short once the headers are in). */
typedef struct pm_http_req {
  const char *uri; /* our URI, for messages */
  const char *url; /* what is sent */
  pm_http_method method;
  const struct curl_slist *headers; /* extra headers, may be NULL */
  const char *sigv4;                /* CURLOPT_AWS_SIGV4, or NULL */
  const char *username;             /* access key id, with sigv4 */
  const char *password;             /* secret access key, with sigv4 */
  bool follow_redirects;
  char *window; /* receives object bytes [window_offset, +len) */
  size_t window_len;
  uint64_t window_offset; /* a 200 answer is skipped up to here */
  /* With a window: a 200 answer (the whole object: the server ignored
   * Range) with a Content-Length of at most spill_max is also written
   * whole, past the window, into the descriptor spill_open returns when
   * its first bytes arrive (-1: not this time); see resp->spill_fd.
   * NULL: the transfer stops once the window is full. */
  int (*spill_open)(void *arg);
  void *spill_arg;
  uint64_t spill_max;
  pm_sbuf *body;          /* receives the whole 2xx body */
  /* Sees every raw response header line, status lines included, of each
   * response (redirects followed too) and of each attempt, before it is
   * parsed; for the headers a backend reads itself. May be NULL. */
  void (*on_header)(void *arg, const char *line, size_t length);
  void *header_arg;
} pm_http_req;

/* What came back (from the last attempt). */
typedef struct pm_http_resp {
  long status;                 /* 0 if no answer */
  int64_t content_length;      /* -1 if absent */
  int64_t range_first;         /* Content-Range, -1 if absent */
  int64_t range_last;          /* -1 if absent or "*" */
  int64_t range_total;         /* -1 if absent or "*" */
  int64_t last_modified;       /* seconds since the epoch, -1 if absent */
  char etag[PM_HTTP_ETAG_MAX]; /* raw value, "" if absent or too long */
  size_t window_got;           /* bytes stored into the window */
  int spill_fd;      /* -1, or what spill_open gave (closed by _free) */
  uint64_t spilled;  /* bytes of the object written into it, from 0 */
  bool spill_failed; /* this attempt's spill stopped short */
  uint64_t body_bytes;         /* payload bytes received */
  unsigned attempts;           /* requests sent */
  pm_sbuf error_body;          /* start of a non-2xx body */
  /* private to the runner */
  uint64_t stream_pos;
  int sink_err;
  uint64_t retry_after_ms; /* the last answer's Retry-After, or 0 */
} pm_http_resp;

void pm__http_resp_init(pm_http_resp *resp);
void pm__http_resp_free(pm_http_resp *resp);

/*
 * Send req through a pooled handle, retrying (up to ufs->config.retries
 * more times, sleeping retry_base_ms * 2^n with full jitter) on timeouts,
 * connection resets and statuses 408, 429, 500, 502, 503, 504. Counts
 * every attempt through pm__ufs_count.
 * Returns 0 once an HTTP answer arrived (resp->status says which; a
 * retryable status is returned after the last attempt), or a negative
 * pm_err with detail: PM_EUNREACHABLE (resolve/connect/TLS failure),
 * PM_ETIMEDOUT, PM_EIO (connection reset), PM_EBADURI, PM_ETOOBIG (body
 * over the cap), PM_EPROTO (a 206 for another range), PM_ENOMEM.
 */
int pm__http_perform(pm_curl_pool *pool, const pm_ufs *ufs,
                     const pm_http_req *req, pm_http_resp *resp);

/* The pm_err for a non-2xx status, with the detail "URI: HTTP 403
 * <text> (<reason>)": 404 PM_ENOENT, 401/403 PM_EACCES, 412 PM_ECHANGED,
 * 416 PM_ERANGE, 405/501 PM_ENOTSUP, 5xx and 429 PM_EORIGIN (naming the
 * attempts), others PM_EORIGIN. reason may be NULL. */
int pm__http_status_err(const char *uri, const pm_http_resp *resp,
                        const char *reason);

/* Append "Name: value" to a header list. The temporary line is wiped (it
 * may hold a secret). Returns 0, PM_ENOMEM or PM_ETOOBIG (over
 * PM_HTTP_HEADER_LINE_MAX). */
int pm__http_add_header(struct curl_slist **list, const char *name,
                        const char *value);
/* The header values of a ranged read of [offset, +length) of `expect`:
 * "bytes=A-B" into range, and, when the version is a strong ETag, the
 * quoted tag into if_match (returns true) - else if_match is "" and the
 * answer is checked after the fact (pm__http_check_read). */
#define PM_HTTP_RANGE_MAX 64
bool pm__http_read_headers(const pm_object_stat *expect, uint64_t offset,
                           size_t length, char range[PM_HTTP_RANGE_MAX],
                           char if_match[PM_VERSION_MAX + 2]);
/* Append "Authorization: Bearer TOKEN". Same returns. */
int pm__http_add_bearer(struct curl_slist **list, const char *token);

/*
 * Check the answer to a ranged GET of [offset, +length) of the version
 * `expect`: 412 and 416 are PM_ECHANGED, and so is a version_seen (the
 * version the answer carries, "" or NULL if none) other than
 * expect->version or a total size other than expect->size; fewer bytes
 * than asked are PM_EIO. Any other status than 200/206/412/416 must be
 * reported by the caller first (it knows the origin's error format).
 * Returns 0 or the error, with detail.
 */
int pm__http_check_read(const char *uri, const pm_http_resp *resp,
                        const char *version_seen, const pm_object_stat *expect,
                        uint64_t offset, size_t length);

/* One listed object (or prefix, is_dir) of a bucket-like listing. */
typedef struct pm_listed {
  const char *name; /* key or blob name under the root */
  bool is_dir;
  uint64_t size;
  int64_t mtime_ns;
  const char *raw_etag; /* as the listing gives it, "" if none */
} pm_listed;

/* Hand one listed item to cb as a pm_list_entry: its URI is the first
 * root_len bytes of root, '/', and the name (built in entry_uri); its
 * version comes from the ETag. An object whose name ends in '/' (a folder
 * marker, which could not be told from a directory) is skipped. Returns
 * 0, cb's value, or PM_ETOOBIG/PM_ENOMEM with detail. */
int pm__list_emit(pm_sbuf *entry_uri, const char *root, size_t root_len,
                  const pm_listed *item, pm_ufs_list_cb cb, void *arg);

/* ---- parsing (ufs/http_parse.c) ----------------------------------------- */

/* Reset the header fields of resp (a new response begins). */
void pm__http_resp_clear_headers(pm_http_resp *resp);
/* Parse one raw header line ("Name: value\r\n", or a status line) into
 * resp. Unknown, malformed and over-long lines are ignored. */
void pm__http_parse_header(pm_http_resp *resp, const char *line, size_t length);
/* Whether a raw header line is a status line ("HTTP/1.1 302 Found"): a
 * new response starts. */
bool pm__http_is_status_line(const char *line, size_t length);
/* If the raw header line is header `name` (compared without case), point
 * *value at its trimmed value (not NUL-terminated) and return true. */
bool pm__http_header_is(const char *line, size_t length, const char *name,
                        const char **value, size_t *value_length);
/* Parse "bytes FIRST-LAST/TOTAL" ('*' allowed for the range or the total).
 * Returns 0 or PM_EPROTO. */
int pm__http_parse_content_range(const char *value, size_t length,
                                 int64_t *first, int64_t *last, int64_t *total);
/* The version string of a raw ETag: quotes stripped ("W/" kept for weak
 * tags); one longer than PM_VERSION_MAX - 1 becomes "xxh3:" + 32 hex
 * characters of its hash. Returns 0, or PM_EPROTO for an empty tag. */
int pm__etag_version(const char *raw, char out[PM_VERSION_MAX]);
/* Whether version can be sent back as If-Match: a strong, unhashed tag
 * (versions with a space were not made from an ETag). If so, write the
 * quoted tag into out. */
bool pm__etag_if_match(const char *version, char *out, size_t out_size);

/* ---- instance metadata services (ufs/metadata.c) ---------------------- */

/* One call to a metadata service at base (e.g. "http://169.254.169.254")
 * + path: a GET, or a PUT with put set, carrying the header "name: value";
 * *status is the HTTP status and body (capped) the answer. Never through
 * a proxy; 1 s to connect, 5 s in all. Errors: PM_EUNREACHABLE (no
 * answer, with curl's reason), PM_ETOOBIG (answer over body's cap),
 * PM_ENOMEM. */
int pm__metadata_call(const char *base, const char *path, bool put,
                      const char *header, const char *value, pm_sbuf *body,
                      long *status);
/* The same for a service elsewhere on the network (via_proxy: through the
 * proxy the environment names, trusting the CAs it names with
 * AWS_CA_BUNDLE first, as botocore would for STS). Errors name base only:
 * path may carry a secret, and the URL is wiped after the call; also
 * PM_ECONFIG (a CA variable names what cannot be read). */
int pm__short_call(const char *base, const char *path, bool put,
                   bool via_proxy, const char *header, const char *value,
                   pm_sbuf *body, long *status);
/* A GET of url as pm__short_call, tried again as pm__form_post is (three
 * attempts, 0.25 s then 0.5 s apart, on a failed connection, 429 or
 * 5xx): an agent of this node that may still be starting. Errors: as
 * pm__short_call. */
int pm__short_get_retrying(const char *url, bool via_proxy,
                           const char *header, const char *value,
                           pm_sbuf *body, long *status);
/* Append "name=value" (value percent-encoded) to a form, after a '&'
 * unless it is the first field. Errors: in form->err. */
void pm__form_field(pm_sbuf *form, const char *name, const char *value);
/* POST form (application/x-www-form-urlencoded) to url, a token endpoint
 * elsewhere on the network (through the environment's proxy), trusting
 * the CAs the environment names (pm__curl_ca_find); *status and body
 * (capped) are the answer, after up to three attempts while the
 * connection fails or the answer is 429 or 5xx. 5 s to connect, 20 s in
 * all per attempt. Errors name the URL, never the form (it carries
 * secrets): PM_EUNREACHABLE, PM_ETOOBIG (answer over body's cap),
 * PM_ECONFIG (a CA variable names what cannot be read), PM_ENOMEM. */
int pm__form_post(const char *url, const char *form, pm_sbuf *body,
                  long *status);
/* POST a JSON body to url with "Authorization: Bearer <bearer>" (Google's
 * IAM Credentials API); otherwise as pm__form_post. Errors: as
 * pm__form_post, PM_ETOOBIG (bearer over 64 KiB). */
int pm__json_post(const char *url, const char *bearer, const char *json,
                  pm_sbuf *body, long *status);
/* POST form to STS at base (an AWS query API call, "Action=...&Version=
 * 2011-06-15&..."), signed SigV4 for region with the given keys (and
 * session token, or NULL); as pm__form_post otherwise, with AWS_CA_BUNDLE
 * trusted first. Errors: as pm__form_post. */
int pm__sts_post(const char *base, const char *region, const char *form,
                 const char *access_key, const char *secret_key,
                 const char *session_token, pm_sbuf *body, long *status);
/* The OAuth error of a token endpoint's refusal ({"error": "invalid_grant",
 * "error_description": "..."}) as ": invalid_grant: ..." in out (cut to
 * size, control characters made spaces), or "" when text is not that.
 * Network input: never fails. */
void pm__oauth_error(const char *text, size_t length, char *out,
                     size_t size);
/* Append to out the JSON Web Token header_json.claims_json signed RS256
 * with pem_key (ufs/jwt.c; the signature covers what is appended only).
 * Errors: PM_ECONFIG (pem_key is not a PEM RSA private key without a
 * passphrase, or cannot sign), PM_ETOOBIG (over out's cap), PM_ENOMEM. */
int pm__jwt_rs256(const char *pem_key, const char *header_json,
                  const char *claims_json, pm_sbuf *out);
/* The x5t of the first certificate in pem (base64url of the SHA-1 of its
 * DER, 27 characters) into out. Errors: PM_ECONFIG (no PEM certificate),
 * PM_ENOMEM. */
int pm__jwt_x5t(const char *pem, char *out, size_t size);
/* Whether the first certificate in pem is the one of pem's private key. */
bool pm__jwt_cert_matches_key(const char *pem);
/* Whether pm__jwt_rs256 can sign with pem_key. */
bool pm__jwt_key_ok(const char *pem_key);
/* A token endpoint's answer (status and body) from url: 200 with a token
 * into a new *token and its expiry (wall clock ns) into *expires_ns; else
 * PM_EACCES naming url, the status and the OAuth error. Errors also as
 * pm__oauth_token_parse. */
int pm__oauth_answer(const char *url, long status, const pm_sbuf *body,
                     char **token, int64_t *expires_ns);
/* Decode an OAuth access token answer ({"access_token": ..., "expires_in":
 * seconds as a number, or as a string as Azure sends it, ...}) into a new
 * *token (the caller frees it) and *expires_in_s (capped at a day).
 * Network input: PM_EPROTO with detail for anything else, PM_ENOMEM. */
int pm__oauth_token_parse(const char *text, size_t length, char **token,
                          int64_t *expires_in_s);

#endif /* PM_UFS_CURL_INT_H */
