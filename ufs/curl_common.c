/*
 * ufs/curl_common.c - how the HTTP-based backends send requests: libcurl
 * set up once per process, a pool of easy handles per backend object over
 * one CURLSH share (DNS and TLS sessions), one request runner that retries
 * with exponential backoff and full jitter, routes the body where the
 * caller wants it (a window of the object, even from a server that ignores
 * Range; a capped buffer; or nowhere), and the one translation of curl
 * errors and HTTP statuses into pm_err with a detail naming the URI.
 * Safe from any thread: a handle is used by one request at a time.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ufs/curl_int.h"

#define BACKOFF_MAX_MS 20000u
#define MAX_REDIRECTS 5L
#define STREAM_UNSET UINT64_MAX

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void) {
  global_rc = curl_global_init(CURL_GLOBAL_ALL);
}

/* ---- the pool -------------------------------------------------------------
 */

static void share_lock(CURL *handle, curl_lock_data data,
                       curl_lock_access access, void *userp) {
  pm_curl_pool *pool = userp;
  (void)handle;
  (void)access;
  if ((unsigned)data < CURL_LOCK_DATA_LAST)
    pthread_mutex_lock(&pool->share_locks[data]);
}

static void share_unlock(CURL *handle, curl_lock_data data, void *userp) {
  pm_curl_pool *pool = userp;
  (void)handle;
  if ((unsigned)data < CURL_LOCK_DATA_LAST)
    pthread_mutex_unlock(&pool->share_locks[data]);
}

int pm__curl_pool_init(pm_curl_pool *pool, const char *ca_var) {
  memset(pool, 0, sizeof *pool);
  pthread_once(&global_once, global_init);
  if (global_rc != CURLE_OK)
    return pm__errf(PM_EIO, "libcurl failed to initialise: %s",
                    curl_easy_strerror(global_rc));
  int rc = pm__curl_ca_find(ca_var, &pool->ca);
  if (rc)
    return rc;
  pthread_mutex_init(&pool->lock, NULL);
  for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
    pthread_mutex_init(&pool->share_locks[i], NULL);
  pool->ready = true;
  pool->share = curl_share_init();
  if (!pool->share)
    return pm__errf(PM_ENOMEM, "libcurl: cannot create a share handle");
  curl_share_setopt(pool->share, CURLSHOPT_LOCKFUNC, share_lock);
  curl_share_setopt(pool->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
  curl_share_setopt(pool->share, CURLSHOPT_USERDATA, pool);
  curl_share_setopt(pool->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  curl_share_setopt(pool->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  return 0;
}

void pm__curl_pool_fini(pm_curl_pool *pool) {
  if (!pool || !pool->ready)
    return;
  for (size_t i = 0; i < pool->idle_count; i++)
    curl_easy_cleanup(pool->idle[i]);
  pool->idle_count = 0;
  if (pool->share)
    curl_share_cleanup(pool->share);
  pool->share = NULL;
  pthread_mutex_destroy(&pool->lock);
  for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
    pthread_mutex_destroy(&pool->share_locks[i]);
  pool->ready = false;
}

static CURL *pool_get(pm_curl_pool *pool) {
  CURL *h = NULL;
  pthread_mutex_lock(&pool->lock);
  if (pool->idle_count > 0)
    h = pool->idle[--pool->idle_count];
  pthread_mutex_unlock(&pool->lock);
  return h ? h : curl_easy_init();
}

static void pool_put(pm_curl_pool *pool, CURL *h) {
  pthread_mutex_lock(&pool->lock);
  if (pool->idle_count < PM_CURL_POOL_MAX) {
    pool->idle[pool->idle_count++] = h;
    h = NULL;
  }
  pthread_mutex_unlock(&pool->lock);
  if (h)
    curl_easy_cleanup(h);
}

/* ---- responses -------------------------------------------------------------
 */

void pm__http_resp_init(pm_http_resp *resp) {
  memset(resp, 0, sizeof *resp);
  pm__http_resp_clear_headers(resp);
  pm__sbuf_init(&resp->error_body, PM_HTTP_ERROR_BODY_MAX);
  resp->stream_pos = STREAM_UNSET;
  resp->spill_fd = -1;
}

void pm__http_resp_free(pm_http_resp *resp) {
  if (!resp)
    return;
  pm__sbuf_free(&resp->error_body);
  if (resp->spill_fd >= 0)
    close(resp->spill_fd);
  resp->spill_fd = -1;
}

/* One transfer in flight: what the callbacks need. */
typedef struct transfer {
  const pm_http_req *req;
  pm_http_resp *resp;
  bool cut; /* we stopped it on purpose: enough bytes */
  uint64_t deadline_ns;   /* of this attempt */
  uint64_t first_byte_ns; /* of its body, once it came */
} transfer;

static size_t on_header(char *line, size_t size, size_t count, void *userp) {
  transfer *t = userp;
  if (t->req->on_header)
    t->req->on_header(t->req->header_arg, line, size * count);
  pm__http_parse_header(t->resp, line, size * count);
  return size * count;
}

/* Write bytes [start, +n) of a 200 answer into the spill file, opened at
 * its first bytes; false once there is none (not asked, not opened, a
 * write failed or a gap), and the transfer may then stop at the window's
 * end. */
static bool spill(transfer *t, const char *bytes, size_t n, uint64_t start) {
  const pm_http_req *req = t->req;
  pm_http_resp *resp = t->resp;
  if (!req->spill_open || resp->status != 200 || resp->spill_failed ||
      (req->window_offset == 0 && resp->content_length >= 0 &&
       req->window_len >= (uint64_t)resp->content_length)) /* all wanted */
    return false;
  if (start == 0 && resp->spill_fd < 0 &&
      (resp->content_length < 0 ||
       (uint64_t)resp->content_length > req->spill_max ||
       (resp->spill_fd = req->spill_open(req->spill_arg)) < 0)) {
    resp->spill_failed = true;
    return false;
  }
  if (resp->spill_fd < 0 || resp->spilled != start ||
      pm__pwrite_all(resp->spill_fd, bytes, n, start) != 0) {
    resp->spill_failed = true;
    return false;
  }
  resp->spilled = start + n;
  /* Past the window, the read waits for the copy: not for one that, at
   * the body's pace so far (judged after 200 ms of it), would end after
   * the request's timeout. */
  uint64_t now = pm__now_ns(), w_end = req->window_offset + req->window_len;
  if (!t->first_byte_ns)
    t->first_byte_ns = now;
  if (resp->spilled >= w_end && now >= t->first_byte_ns + 200000000u &&
      (uint64_t)resp->content_length > resp->spilled) {
    double pace = (double)resp->spilled / (double)(now - t->first_byte_ns);
    double left_ns =
        (double)((uint64_t)resp->content_length - resp->spilled) / pace;
    if ((double)now + left_ns > (double)t->deadline_ns) {
      resp->spill_failed = true;
      return false;
    }
  }
  return true;
}

/* Copy what overlaps [window_offset, +window_len) of the object. A 206
 * starts where its Content-Range says (it must be the window's start); a
 * 200 carries the whole object and is skipped up to the window (or kept
 * whole: spill). */
static size_t window_sink(transfer *t, const char *bytes, size_t n) {
  const pm_http_req *req = t->req;
  pm_http_resp *resp = t->resp;
  if (resp->stream_pos == STREAM_UNSET) {
    if (resp->status == 206 &&
        resp->range_first != (int64_t)req->window_offset) {
      resp->sink_err = PM_EPROTO;
      return 0;
    }
    resp->stream_pos = resp->status == 206 ? req->window_offset : 0;
  }
  uint64_t start = resp->stream_pos, end = start + n;
  uint64_t w_start = req->window_offset, w_end = w_start + req->window_len;
  uint64_t from = PM_MAX(start, w_start), to = PM_MIN(end, w_end);
  if (from < to) {
    memcpy(req->window + (from - w_start), bytes + (from - start), to - from);
    resp->window_got = (size_t)(to - w_start);
  }
  resp->stream_pos = end;
  if (spill(t, bytes, n, start))
    return n; /* the whole object is wanted */
  if (end > w_end) {
    t->cut = true; /* the rest is not ours: stop the transfer */
    return 0;
  }
  return n;
}

static size_t on_body(char *bytes, size_t size, size_t count, void *userp) {
  transfer *t = userp;
  pm_http_resp *resp = t->resp;
  size_t n = size * count;
  resp->body_bytes += n;
  if (resp->status < 200 || resp->status >= 300) {
    size_t room = PM_HTTP_ERROR_BODY_MAX - resp->error_body.len;
    pm__sbuf_append(&resp->error_body, bytes, PM_MIN(n, room));
    return n;
  }
  if (t->req->window)
    return window_sink(t, bytes, n);
  if (t->req->body) {
    if (pm__sbuf_append(t->req->body, bytes, n) == 0)
      return n;
    resp->sink_err = t->req->body->err;
    return 0;
  }
  t->cut = true; /* nobody wants the body */
  return 0;
}

/* ---- one attempt
 * ------------------------------------------------------------- */

#define SET(opt, val)                                                          \
  do {                                                                         \
    if (curl_easy_setopt(h, opt, val) != CURLE_OK)                             \
      return pm__errf(PM_EIO, "%s: libcurl refused option " #opt, req->uri);   \
  } while (0)

static int setup(CURL *h, pm_curl_pool *pool, const pm_ufs *ufs,
                 const pm_http_req *req, transfer *t, char *errbuf) {
  curl_easy_reset(h); /* keeps live connections and caches */
  SET(CURLOPT_URL, req->url);
  SET(CURLOPT_SHARE, pool->share);
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_ERRORBUFFER, errbuf);
  SET(CURLOPT_TIMEOUT_MS, (long)ufs->config.timeout_ms);
  SET(CURLOPT_CONNECTTIMEOUT_MS, (long)ufs->config.timeout_ms);
  SET(CURLOPT_HEADERFUNCTION, on_header);
  SET(CURLOPT_HEADERDATA, t);
  SET(CURLOPT_WRITEFUNCTION, on_body);
  SET(CURLOPT_WRITEDATA, t);
  SET(CURLOPT_HTTPHEADER, (struct curl_slist *)req->headers);
  SET(CURLOPT_PATH_AS_IS, 1L);
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_FOLLOWLOCATION, req->follow_redirects ? 1L : 0L);
  SET(CURLOPT_MAXREDIRS, MAX_REDIRECTS);
  SET(CURLOPT_USERAGENT, "pagemesh/"
                         "0.1");
  SET(CURLOPT_TCP_KEEPALIVE, 1L);
  int rc = pm__curl_ca_apply(h, &pool->ca);
  if (rc)
    return rc;
  if (req->method == PM_HTTP_HEAD)
    SET(CURLOPT_NOBODY, 1L);
  if (req->sigv4) {
    SET(CURLOPT_AWS_SIGV4, req->sigv4);
    SET(CURLOPT_USERNAME, req->username ? req->username : "");
    SET(CURLOPT_PASSWORD, req->password ? req->password : "");
  }
  return 0;
}

static int curl_err(const pm_http_req *req, CURLcode cc, const char *errbuf,
                    unsigned attempts) {
  int err;
  switch (cc) {
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
  case CURLE_COULDNT_CONNECT:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CACERT_BADFILE:
    err = PM_EUNREACHABLE;
    break;
  case CURLE_OPERATION_TIMEDOUT:
    err = PM_ETIMEDOUT;
    break;
  case CURLE_URL_MALFORMAT:
  case CURLE_UNSUPPORTED_PROTOCOL:
    err = PM_EBADURI;
    break;
  case CURLE_OUT_OF_MEMORY:
    err = PM_ENOMEM;
    break;
  case CURLE_TOO_MANY_REDIRECTS:
    err = PM_EORIGIN;
    break;
  default:
    err = PM_EIO;
  }
  /* OpenSSL's words for TLS spoken to a port that answers in the clear */
  const char *hint = cc == CURLE_SSL_CONNECT_ERROR &&
                             strstr(errbuf, "wrong version number")
                         ? "; the server does not answer TLS: is its "
                           "endpoint http://?"
                         : "";
  return pm__errf(err, "%s: %s (curl: %s; %u attempt%s%s)", req->uri,
                  errbuf[0] ? errbuf : curl_easy_strerror(cc),
                  curl_easy_strerror(cc), attempts, attempts == 1 ? "" : "s",
                  hint);
}

/* Whether a failed TLS handshake (CURLE_SSL_CONNECT_ERROR) was the
 * protocol's own verdict, which another attempt gets again: OpenSSL names
 * its reason ("error:0A00010B:SSL routines::wrong version number" for an
 * https:// URL on a plain HTTP port, an alert for a version or cipher the
 * server refuses, a client certificate it requires). A connection cut
 * short (a reset, SSL_ERROR_SYSCALL, an unexpected EOF from a load
 * balancer draining a node) is not. */
static bool tls_refused(const char *errbuf) {
  return strstr(errbuf, "SSL routines") &&
         !strstr(errbuf, "unexpected eof");
}

/* A TLS handshake cut short is retried, as the AWS SDKs retry it; a
 * handshake the server refused, or a certificate that does not verify,
 * is not. */
static bool curl_retryable(CURLcode cc, const char *errbuf) {
  if (cc == CURLE_SSL_CONNECT_ERROR)
    return !tls_refused(errbuf);
  return cc == CURLE_OPERATION_TIMEDOUT || cc == CURLE_RECV_ERROR ||
         cc == CURLE_SEND_ERROR || cc == CURLE_GOT_NOTHING ||
         cc == CURLE_PARTIAL_FILE || cc == CURLE_HTTP2 ||
         cc == CURLE_HTTP2_STREAM;
}

static bool status_retryable(long status) {
  return status == 408 || status == 429 || status == 500 || status == 502 ||
         status == 503 || status == 504;
}

/* Reset what one attempt fills in. */
static void resp_restart(pm_http_resp *resp) {
  pm__http_resp_clear_headers(resp);
  resp->retry_after_ms = 0;
  pm__sbuf_reset(&resp->error_body);
  resp->window_got = 0;
  resp->spilled = 0; /* a retry writes the spill file again from 0 */
  resp->spill_failed = false;
  resp->body_bytes = 0;
  resp->stream_pos = STREAM_UNSET;
  resp->sink_err = 0;
}

/* Returns 0 (an answer; *retry says whether its status is worth another
 * try) or a pm_err (*retry: whether the failure is). */
static int attempt_once(CURL *h, pm_curl_pool *pool, const pm_ufs *ufs,
                        const pm_http_req *req, pm_http_resp *resp,
                        bool *retry) {
  char errbuf[CURL_ERROR_SIZE] = "";
  transfer t = {req, resp, false,
                pm__now_ns() + (uint64_t)ufs->config.timeout_ms * 1000000u,
                0};
  *retry = false;
  resp_restart(resp);
  if (req->body)
    pm__sbuf_reset(req->body);
  int rc = setup(h, pool, ufs, req, &t, errbuf);
  if (rc)
    return rc;
  CURLcode cc = curl_easy_perform(h);
  if (resp->sink_err == PM_EPROTO)
    return pm__errf(PM_EPROTO,
                    "%s: the origin answered 206 for another "
                    "range than asked",
                    req->uri);
  if (resp->sink_err)
    return pm__errf(resp->sink_err, "%s: response body over %zu bytes",
                    req->uri, req->body ? req->body->cap : 0);
  if (cc == CURLE_WRITE_ERROR && t.cut)
    cc = CURLE_OK;
  /* A whole answer kept past its window that fails later (the request's
   * timeout caps the whole transfer, and a slow server's large object
   * takes longer): the window is full, so the read succeeded; only the
   * copy stopped short. */
  if (cc != CURLE_OK && resp->spill_fd >= 0 && req->window &&
      resp->window_got == req->window_len) {
    resp->spill_failed = true;
    cc = CURLE_OK;
  }
  if (cc != CURLE_OK) {
    *retry = curl_retryable(cc, errbuf);
    return curl_err(req, cc, errbuf, resp->attempts + 1);
  }
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  resp->status = status;
  *retry = status_retryable(status);
  curl_off_t after = 0; /* seconds, from a delay or an HTTP date */
  if (*retry && curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &after) ==
                    CURLE_OK && after > 0)
    resp->retry_after_ms = (uint64_t)PM_MIN(after, (curl_off_t)3600) * 1000u;
  return 0;
}

/* Jitter needs no cryptographic randomness: a per-thread xorshift. */
static uint64_t jitter_random(void) {
  static _Thread_local uint64_t state;
  if (!state)
    state = pm__now_ns() ^ (uint64_t)(uintptr_t)&state ^ 0x9E3779B97F4A7C15u;
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return state;
}

/* Sleep before another attempt: full jitter under an exponential ceiling,
 * but at least what the origin asked for in Retry-After (a 429 or a 503
 * SlowDown saying when to come back); never over BACKOFF_MAX_MS. */
static void backoff_sleep(const pm_ufs_config *config, unsigned attempt,
                          uint64_t at_least_ms) {
  uint64_t ceiling = (uint64_t)config->retry_base_ms << PM_MIN(attempt, 16u);
  ceiling = PM_MIN(ceiling, (uint64_t)BACKOFF_MAX_MS);
  uint64_t ms = jitter_random() % (ceiling + 1); /* full jitter */
  ms = PM_MIN(PM_MAX(ms, at_least_ms), (uint64_t)BACKOFF_MAX_MS);
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0)
    ;
}

int pm__http_perform(pm_curl_pool *pool, const pm_ufs *ufs,
                     const pm_http_req *req, pm_http_resp *resp) {
  CURL *h = pool_get(pool);
  if (!h)
    return pm__errf(PM_ENOMEM, "%s: cannot create a curl handle", req->uri);
  int rc;
  resp->attempts = 0;
  for (;;) {
    bool retry;
    rc = attempt_once(h, pool, ufs, req, resp, &retry);
    resp->attempts++;
    pm__ufs_count(ufs, 1, resp->body_bytes);
    if (!retry || resp->attempts > ufs->config.retries)
      break;
    PM_LOG(PM_LOG_DEBUG, "ufs", "%s: attempt %u failed (%s), retrying",
           req->uri, resp->attempts,
           rc ? pm__errmsg() : "retryable HTTP status");
    backoff_sleep(&ufs->config, resp->attempts - 1,
                  rc ? 0 : resp->retry_after_ms);
  }
  curl_easy_reset(h); /* drop pointers into this request */
  pool_put(pool, h);
  return rc;
}

/* ---- requests and answers shared by the backends ------------------------
 */

int pm__http_add_header(struct curl_slist **list, const char *name,
                        const char *value) {
  size_t name_len = strlen(name), value_len = strlen(value);
  size_t n = name_len + value_len + 3;
  if (n > PM_HTTP_HEADER_LINE_MAX)
    return PM_ETOOBIG;
  char *line = malloc(n);
  if (!line)
    return PM_ENOMEM;
  memcpy(line, name, name_len);
  memcpy(line + name_len, ": ", 2);
  memcpy(line + name_len + 2, value, value_len + 1);
  struct curl_slist *grown = curl_slist_append(*list, line);
  explicit_bzero(line, n);
  free(line);
  if (!grown)
    return PM_ENOMEM;
  *list = grown;
  return 0;
}

bool pm__http_read_headers(const pm_object_stat *expect, uint64_t offset,
                           size_t length, char range[PM_HTTP_RANGE_MAX],
                           char if_match[PM_VERSION_MAX + 2]) {
  snprintf(range, PM_HTTP_RANGE_MAX, "bytes=%" PRIu64 "-%" PRIu64, offset,
           offset + length - 1);
  if (pm__etag_if_match(expect->version, if_match, PM_VERSION_MAX + 2))
    return true;
  if_match[0] = '\0';
  return false;
}

int pm__http_add_bearer(struct curl_slist **list, const char *token) {
  size_t token_len = strlen(token), n = token_len + sizeof "Bearer ";
  char *value = malloc(n);
  if (!value)
    return PM_ENOMEM;
  memcpy(value, "Bearer ", 7);
  memcpy(value + 7, token, token_len + 1);
  int rc = pm__http_add_header(list, "Authorization", value);
  explicit_bzero(value, n);
  free(value);
  return rc;
}

int pm__http_check_read(const char *uri, const pm_http_resp *resp,
                        const char *version_seen, const pm_object_stat *expect,
                        uint64_t offset, size_t length) {
  if (resp->status == 412 || resp->status == 416)
    return pm__errf(PM_ECHANGED,
                    "%s: changed since it was looked up "
                    "(HTTP %ld for version %s)",
                    uri, resp->status, expect->version);
  int64_t total =
      resp->status == 206 ? resp->range_total : resp->content_length;
  if ((version_seen && *version_seen &&
       strcmp(version_seen, expect->version)) ||
      (total >= 0 && (uint64_t)total != expect->size))
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

int pm__list_emit(pm_sbuf *entry_uri, const char *root, size_t root_len,
                  const pm_listed *item, pm_ufs_list_cb cb, void *arg) {
  size_t n = strlen(item->name);
  if (!item->is_dir && (n == 0 || item->name[n - 1] == '/'))
    return 0;
  char version[PM_VERSION_MAX];
  pm__sbuf_reset(entry_uri);
  pm__sbuf_append(entry_uri, root, root_len);
  pm__sbuf_printf(entry_uri, "/%s", item->name);
  if (entry_uri->err)
    return pm__errf(entry_uri->err, "%.*s: listed name too long", (int)root_len,
                    root);
  bool has_version = !item->is_dir && item->raw_etag[0] &&
                     pm__etag_version(item->raw_etag, version) == 0;
  pm_list_entry entry = {.uri = entry_uri->data,
                         .is_dir = item->is_dir,
                         .size = item->is_dir ? 0 : item->size,
                         .mtime_ns = item->mtime_ns,
                         .version = has_version ? version : NULL};
  return cb(arg, &entry);
}

/* ---- statuses ---------------------------------------------------------------
 */

static const char *status_text(long status) {
  switch (status) {
  case 400:
    return "bad request";
  case 401:
    return "unauthorized";
  case 403:
    return "access denied";
  case 404:
    return "not found";
  case 405:
    return "method not allowed";
  case 408:
    return "request timeout";
  case 412:
    return "precondition failed: the object changed";
  case 416:
    return "range not satisfiable";
  case 429:
    return "too many requests";
  case 500:
    return "internal server error";
  case 501:
    return "not implemented";
  case 502:
    return "bad gateway";
  case 503:
    return "service unavailable";
  case 504:
    return "gateway timeout";
  default:
    return status >= 300 && status < 400 ? "redirect" : "error";
  }
}

static int status_err(long status) {
  switch (status) {
  case 404:
    return PM_ENOENT;
  case 401:
  case 403:
    return PM_EACCES;
  case 412:
    return PM_ECHANGED;
  case 416:
    return PM_ERANGE;
  case 405:
  case 501:
    return PM_ENOTSUP;
  default:
    return PM_EORIGIN;
  }
}

int pm__http_status_err(const char *uri, const pm_http_resp *resp,
                        const char *reason) {
  char tries[48] = "";
  if (status_retryable(resp->status) && resp->attempts > 1)
    snprintf(tries, sizeof tries, " after %u attempts", resp->attempts);
  return pm__errf(status_err(resp->status), "%s: HTTP %ld %s%s%s%s%s", uri,
                  resp->status, status_text(resp->status), tries,
                  reason && *reason ? " (" : "", reason ? reason : "",
                  reason && *reason ? ")" : "");
}
