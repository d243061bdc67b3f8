/*
 * ufs/metadata.c - what the credential sources that fetch OAuth tokens or
 * keys share: one call to an instance metadata service (EC2's IMDS, GCE's
 * metadata server, Azure's IMDS), never through a proxy and with short
 * timeouts; one form POST to a token endpoint elsewhere (Google's and
 * Microsoft Entra's); and the decoding of their answers: an access token,
 * or the OAuth error that refused one.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ufs/curl_int.h"

#define CONNECT_TIMEOUT_MS 1000
#define TIMEOUT_MS 5000
/* A token endpoint is across the network: more room. */
#define POST_CONNECT_TIMEOUT_MS 5000
#define POST_TIMEOUT_MS 20000
/* The longest token accepted (Azure's run to a few KiB). */
#define TOKEN_MAX 16384

static size_t on_body(char *data, size_t size, size_t count, void *arg) {
  return pm__sbuf_append(arg, data, size * count) ? 0 : size * count;
}

int pm__metadata_call(const char *base, const char *path, bool put,
                      const char *header, const char *value, pm_sbuf *body,
                      long *status) {
  return pm__short_call(base, path, put, false, header, value, body, status);
}

/* What one call sends: a GET, a PUT with an empty body, or a POST of a
 * form; one extra header or none. */
typedef struct call {
  const char *base, *path;
  const char *method; /* "GET", "PUT" or "POST" */
  const char *form;   /* POST: the urlencoded body (or JSON, with json) */
  bool json;
  bool via_proxy;   /* a service elsewhere: proxy and CAs as configured */
  const char *ca_var; /* the CA bundle variable tried first, or NULL */
  const char *header, *value;
  const char *sigv4;  /* "aws:amz:REGION:SERVICE": signed with user and
                         password (libcurl signs), or NULL */
  const char *user, *password;
  long connect_ms, total_ms;
} call;

static int perform(const call *o, pm_sbuf *body, long *status) {
  CURL *c = curl_easy_init();
  if (!c)
    return pm__errf(PM_ENOMEM, "out of memory");
  pm_sbuf url;
  pm__sbuf_init(&url, 32 * 1024); /* a web identity token is a few KiB */
  pm__sbuf_printf(&url, "%s%s", o->base, o->path);
  struct curl_slist *headers = NULL;
  int rc = url.err;
  if (!rc && o->header &&
      (rc = pm__http_add_header(&headers, o->header, o->value)) ==
          PM_ETOOBIG) {
    rc = pm__errf(rc, "cannot build the request: its %s header would be "
                  "over %u bytes", o->header, PM_HTTP_HEADER_LINE_MAX);
    goto out;
  }
  if (!rc && o->form)
    rc = pm__http_add_header(&headers, "Content-Type",
                             o->json ? "application/json"
                                     : "application/x-www-form-urlencoded");
  if (!rc && o->form && !o->sigv4) /* an OAuth endpoint; STS answers XML */
    rc = pm__http_add_header(&headers, "Accept", "application/json");
  if (rc) {
    rc = pm__errf(rc, "cannot build the request");
    goto out;
  }
  curl_easy_setopt(c, CURLOPT_URL, pm__sbuf_str(&url));
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  if (!o->via_proxy) { /* a service of this host: never through a proxy */
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  } else {
    pm_curl_ca ca;
    rc = pm__curl_ca_find(o->ca_var, &ca);
    if (!rc)
      rc = pm__curl_ca_apply(c, &ca);
    if (rc)
      goto out;
  }
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, o->connect_ms);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, o->total_ms);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
  if (o->sigv4) {
    curl_easy_setopt(c, CURLOPT_AWS_SIGV4, o->sigv4);
    curl_easy_setopt(c, CURLOPT_USERNAME, o->user);
    curl_easy_setopt(c, CURLOPT_PASSWORD, o->password);
  }
  if (strcmp(o->method, "GET") != 0) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, o->form ? o->form : "");
    if (strcmp(o->method, "POST") != 0)
      curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, o->method);
  }
  CURLcode cc = curl_easy_perform(c);
  if (cc != CURLE_OK) {
    /* base only: the path may carry a secret (STS's WebIdentityToken) */
    rc = pm__errf(body->err ? body->err : PM_EUNREACHABLE, "%s: %s", o->base,
                  body->err ? "answer too long" : curl_easy_strerror(cc));
    goto out;
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
out:
  curl_slist_free_all(headers);
  pm__sbuf_free_secret(&url);
  curl_easy_cleanup(c);
  return rc;
}

/* A token endpoint or STS across the network: a connection that fails,
 * 429 and 5xx are tried again (three attempts, 0.25 s then 0.5 s apart),
 * as the cloud SDKs do; anything else is the answer. */
#define POST_ATTEMPTS 3

static int perform_retrying(const call *o, pm_sbuf *body, long *status) {
  int rc = 0;
  for (unsigned i = 0; i < POST_ATTEMPTS; i++) {
    if (i) {
      struct timespec pause = {0, 250000000l << (i - 1)};
      nanosleep(&pause, NULL);
      if (body->data)
        explicit_bzero(body->data, body->len);
      pm__sbuf_reset(body);
    }
    *status = 0;
    rc = perform(o, body, status);
    bool transient = rc == PM_EUNREACHABLE ||
                     (!rc && (*status == 429 || *status >= 500));
    if (!transient)
      break;
  }
  return rc;
}

int pm__short_call(const char *base, const char *path, bool put,
                   bool via_proxy, const char *header, const char *value,
                   pm_sbuf *body, long *status) {
  call o = {.base = base, .path = path, .method = put ? "PUT" : "GET",
            .via_proxy = via_proxy, .ca_var = "AWS_CA_BUNDLE",
            .header = header, .value = value,
            .connect_ms = CONNECT_TIMEOUT_MS, .total_ms = TIMEOUT_MS};
  return perform(&o, body, status);
}

int pm__short_get_retrying(const char *url, bool via_proxy,
                           const char *header, const char *value,
                           pm_sbuf *body, long *status) {
  call o = {.base = url, .path = "", .method = "GET",
            .via_proxy = via_proxy, .ca_var = "AWS_CA_BUNDLE",
            .header = header, .value = value,
            .connect_ms = CONNECT_TIMEOUT_MS, .total_ms = TIMEOUT_MS};
  return perform_retrying(&o, body, status);
}

void pm__form_field(pm_sbuf *form, const char *name, const char *value) {
  if (form->len)
    pm__sbuf_puts(form, "&");
  pm__sbuf_printf(form, "%s=", name);
  pm__uri_encode(form, value, strlen(value), false);
}

int pm__form_post(const char *url, const char *form, pm_sbuf *body,
                  long *status) {
  call o = {.base = url, .path = "", .method = "POST", .form = form,
            .via_proxy = true, .connect_ms = POST_CONNECT_TIMEOUT_MS,
            .total_ms = POST_TIMEOUT_MS};
  return perform_retrying(&o, body, status);
}

int pm__json_post(const char *url, const char *bearer, const char *json,
                  pm_sbuf *body, long *status) {
  pm_sbuf auth;
  pm__sbuf_init(&auth, 64 * 1024);
  pm__sbuf_printf(&auth, "Bearer %s", bearer);
  call o = {.base = url, .path = "", .method = "POST", .form = json,
            .json = true, .via_proxy = true, .header = "Authorization",
            .value = pm__sbuf_str(&auth),
            .connect_ms = POST_CONNECT_TIMEOUT_MS,
            .total_ms = POST_TIMEOUT_MS};
  int rc = auth.err ? pm__errf(PM_ETOOBIG, "token too long")
                    : perform_retrying(&o, body, status);
  pm__sbuf_free_secret(&auth);
  return rc;
}

int pm__oauth_token_parse(const char *text, size_t length, char **token,
                          int64_t *expires_in_s) {
  json_error_t jerr;
  json_t *root = json_loadb(text, length, 0, &jerr);
  const char *value = json_string_value(json_object_get(root, "access_token"));
  json_t *expires = json_object_get(root, "expires_in");
  long long seconds = 0;
  if (json_is_integer(expires)) {
    seconds = json_integer_value(expires);
  } else if (json_is_string(expires)) { /* Azure sends "3599" */
    const char *s = json_string_value(expires);
    char *end;
    seconds = *s ? strtoll(s, &end, 10) : 0;
    if (*s && *end)
      seconds = 0;
  }
  int rc = 0;
  if (!json_is_object(root))
    rc = pm__errf(PM_EPROTO, "not a JSON object (%s)", jerr.text);
  else if (!value || !*value || strlen(value) >= TOKEN_MAX ||
           strcspn(value, "\r\n") != strlen(value))
    rc = pm__errf(PM_EPROTO, "no usable access_token");
  else if (seconds <= 0)
    rc = pm__errf(PM_EPROTO, "expires_in must be a positive number");
  else if (!(*token = strdup(value)))
    rc = pm__errf(PM_ENOMEM, "out of memory");
  else
    *expires_in_s = PM_MIN(seconds, 24ll * 3600);
  json_decref(root);
  return rc;
}

int pm__sts_post(const char *base, const char *region, const char *form,
                 const char *access_key, const char *secret_key,
                 const char *session_token, pm_sbuf *body, long *status) {
  char scope[128];
  snprintf(scope, sizeof scope, "aws:amz:%.64s:sts", region);
  call o = {.base = base, .path = "/", .method = "POST", .form = form,
            .via_proxy = true, .ca_var = "AWS_CA_BUNDLE",
            .header = session_token ? "X-Amz-Security-Token" : NULL,
            .value = session_token, .sigv4 = scope, .user = access_key,
            .password = secret_key, .connect_ms = POST_CONNECT_TIMEOUT_MS,
            .total_ms = POST_TIMEOUT_MS};
  return perform_retrying(&o, body, status);
}

void pm__oauth_error(const char *text, size_t length, char *out,
                     size_t size) {
  out[0] = '\0';
  json_t *root = json_loadb(text, length, 0, NULL);
  const char *code = json_string_value(json_object_get(root, "error"));
  const char *why =
      json_string_value(json_object_get(root, "error_description"));
  if (code && *code)
    snprintf(out, size, ": %.64s%s%.160s", code, why && *why ? ": " : "",
             why && *why ? why : "");
  for (char *p = out; *p; p++) /* one line, printable */
    if ((unsigned char)*p < 0x20 || *p == 0x7f)
      *p = ' ';
  json_decref(root);
}

int pm__oauth_answer(const char *url, long status, const pm_sbuf *body,
                     char **token, int64_t *expires_ns) {
  const char *text = body->data ? body->data : "";
  if (status != 200) {
    char why[256];
    pm__oauth_error(text, body->len, why, sizeof why);
    return pm__errf(PM_EACCES, "%s: HTTP %ld%s", url, status, why);
  }
  int64_t expires_in = 0;
  int rc = pm__oauth_token_parse(text, body->len, token, &expires_in);
  if (!rc)
    *expires_ns = pm__wall_ns() + expires_in * 1000000000ll;
  return rc;
}
