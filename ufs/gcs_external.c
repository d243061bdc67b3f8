/*
 * ufs/gcs_external.c - the "external_account" credentials of Google's
 * workload identity federation, for a GCS origin read from outside Google
 * Cloud (a Kubernetes cluster elsewhere, another cloud's VMs) with
 * tokens of the identity provider it runs under:
 *
 *   1. the subject token: read from credential_source.file (anew each
 *      time: it is rotated), or fetched from credential_source.url (with
 *      its one header, as Azure's metadata service needs), as text or as
 *      the member subject_token_field_name of a JSON answer;
 *   2. traded at token_url (Google's STS) with grant_type token-exchange
 *      for the audience (the pool's provider) and the storage scope;
 *   3. if service_account_impersonation_url is set, that token asks the
 *      IAM Credentials API (generateAccessToken) for a token of the
 *      service account, for the storage scope, an hour long.
 *
 * Sources the Google libraries also take and this does not: AWS-sourced
 * (environment_id aws1), executables, workforce pools (users). They are
 * refused when the file is read, with the way out.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ufs/s3_int.h"

#define ANSWER_MAX (64u * 1024u)
#define FORM_MAX (128u * 1024u)
#define SUBJECT_MAX (32u * 1024u)
#define DEFAULT_STS "https://sts.googleapis.com/v1/token"
#define STORAGE_SCOPE "https://www.googleapis.com/auth/devstorage.read_only"
#define CLOUD_SCOPE "https://www.googleapis.com/auth/cloud-platform"
#define TOKEN_EXCHANGE "urn:ietf:params:oauth:grant-type:token-exchange"
#define ACCESS_TOKEN_TYPE "urn:ietf:params:oauth:token-type:access_token"

/* credential_source: a file or a URL, and the format of what is there. */
static int parse_source(json_t *src, pm_gcs_adc *out) {
  if (!json_is_object(src))
    return pm__errf(PM_ECONFIG, "no \"credential_source\" object");
  if (json_object_get(src, "environment_id"))
    return pm__errf(PM_ECONFIG, "AWS-sourced external credentials are not "
                                "supported (a file or URL source is; or give "
                                "a token in GOOGLE_OAUTH_ACCESS_TOKEN)");
  if (json_object_get(src, "executable"))
    return pm__errf(PM_ECONFIG, "executable-sourced external credentials "
                                "are not supported (a file or URL source "
                                "is)");
  if (json_object_get(src, "file") && json_object_get(src, "url"))
    return pm__errf(PM_ECONFIG, "credential_source names both a file and a "
                                "URL");
  int rc = pm__gcs_member(src, "file", false, &out->source_file);
  if (!rc && !out->source_file)
    rc = pm__gcs_member(src, "url", true, &out->source_url);
  /* The request may carry a bearer in its header: https, or http to this
   * host or to the link-local metadata address (Azure's IMDS). */
  if (!rc && out->source_url && !pm__ufs_url_for_secrets(out->source_url) &&
      strncmp(out->source_url, "http://169.254.169.254/", 23) != 0)
    rc = pm__errf(PM_ECONFIG, "credential_source.url \"%.64s\" is not "
                              "https:// (http:// only to this host or "
                              "169.254.169.254)", out->source_url);
  json_t *headers = json_object_get(src, "headers");
  if (!rc && headers && out->source_url) {
    if (!json_is_object(headers) || json_object_size(headers) > 1)
      return pm__errf(PM_ECONFIG, "credential_source.headers: at most one "
                                  "header is supported");
    const char *name;
    json_t *value;
    json_object_foreach(headers, name, value) {
      if (!json_is_string(value) || !*name || strpbrk(name, ": \r\n") ||
          strpbrk(json_string_value(value), "\r\n"))
        return pm__errf(PM_ECONFIG, "credential_source.headers: not a "
                                    "header");
      if (!(out->source_header = strdup(name)) ||
          !(out->source_header_value = strdup(json_string_value(value))))
        return pm__errf(PM_ENOMEM, "out of memory");
    }
  }
  json_t *format = json_object_get(src, "format");
  const char *kind = json_string_value(json_object_get(format, "type"));
  if (!rc && kind && !strcmp(kind, "json"))
    rc = pm__gcs_member(format, "subject_token_field_name", true,
                 &out->source_field);
  else if (!rc && kind && strcmp(kind, "text") != 0)
    rc = pm__errf(PM_ECONFIG, "credential_source.format.type \"%.20s\": "
                              "text or json", kind);
  return rc;
}

int pm__gcs_external_parse(void *root_json, pm_gcs_adc *out) {
  json_t *root = root_json;
  out->external = true;
  int rc = pm__gcs_member(root, "audience", true, &out->audience);
  if (!rc && strstr(out->audience, "/workforcePools/"))
    rc = pm__errf(PM_ECONFIG, "workforce pool credentials (users) are not "
                              "supported (workload pools are)");
  if (!rc)
    rc = pm__gcs_member(root, "subject_token_type", true,
                        &out->subject_token_type);
  if (!rc)
    rc = pm__gcs_member(root, "token_url", false, &out->token_uri);
  if (!rc && !out->token_uri && !(out->token_uri = strdup(DEFAULT_STS)))
    rc = pm__errf(PM_ENOMEM, "out of memory");
  if (!rc)
    rc = pm__gcs_member(root, "service_account_impersonation_url", false,
                 &out->impersonation_url);
  if (!rc && out->impersonation_url &&
      !pm__ufs_url_for_secrets(out->impersonation_url))
    rc = pm__errf(PM_ECONFIG, "service_account_impersonation_url \"%.64s\" "
                              "is not https:// (http:// only to this host)",
                  out->impersonation_url);
  if (!rc)
    rc = parse_source(json_object_get(root, "credential_source"), out);
  return rc;
}

/* ---- the subject token ------------------------------------------------ */

int pm__gcs_subject_pick(const char *field, const pm_sbuf *raw,
                         pm_sbuf *out) {
  if (!field) {
    pm__sbuf_append(out, raw->data ? raw->data : "", raw->len);
    return out->err ? pm__errf(PM_EACCES, "subject token too long") : 0;
  }
  json_error_t jerr;
  json_t *root = json_loadb(raw->data ? raw->data : "", raw->len, 0, &jerr);
  const char *v = json_string_value(json_object_get(root, field));
  if (v && *v)
    pm__sbuf_puts(out, v);
  int rc = !v || !*v ? pm__errf(PM_EACCES, "no \"%s\" in the subject token's "
                                           "JSON", field)
           : out->err ? pm__errf(PM_EACCES, "subject token too long")
                      : 0;
  json_decref(root);
  return rc;
}

static int subject_token(const pm_gcs_adc *adc, pm_sbuf *out) {
  pm_sbuf raw;
  pm__sbuf_init(&raw, SUBJECT_MAX);
  int rc;
  if (adc->source_file) {
    rc = pm__ufs_read_token_file(adc->source_file, &raw);
  } else {
    long status = 0;
    rc = pm__short_call(adc->source_url, "", false,
                        !strncmp(adc->source_url, "https://", 8),
                        adc->source_header, adc->source_header_value, &raw,
                        &status);
    if (!rc && status != 200)
      rc = pm__errf(PM_EACCES, "%s: HTTP %ld", adc->source_url, status);
  }
  if (!rc)
    rc = pm__gcs_subject_pick(adc->source_field, &raw, out);
  pm__sbuf_free_secret(&raw);
  if (rc) {
    char why[PM_ERRMSG_MAX];
    snprintf(why, sizeof why, "%s", pm__errmsg());
    rc = pm__errf(rc == PM_ENOMEM ? rc : PM_EACCES, "subject token: %s",
                  why);
  }
  return rc;
}

/* ---- the trades -------------------------------------------------------- */

static int exchange(const pm_gcs_adc *adc, const char *subject, char **token,
                    int64_t *expires_ns) {
  pm_sbuf form, body;
  pm__sbuf_init(&form, FORM_MAX);
  pm__sbuf_init(&body, ANSWER_MAX);
  pm__form_field(&form, "grant_type", TOKEN_EXCHANGE);
  pm__form_field(&form, "audience", adc->audience);
  pm__form_field(&form, "scope",
                 adc->impersonation_url ? CLOUD_SCOPE : STORAGE_SCOPE);
  pm__form_field(&form, "requested_token_type", ACCESS_TOKEN_TYPE);
  pm__form_field(&form, "subject_token_type", adc->subject_token_type);
  pm__form_field(&form, "subject_token", subject);
  long status = 0;
  int rc = form.err ? pm__errf(PM_ETOOBIG, "token request too long")
                    : pm__form_post(adc->token_uri, pm__sbuf_str(&form),
                                    &body, &status);
  if (!rc)
    rc = pm__oauth_answer(adc->token_uri, status, &body, token, expires_ns);
  pm__sbuf_free_secret(&form);
  pm__sbuf_free_secret(&body);
  return rc;
}

int pm__gcs_iam_answer(const char *url, long status, const pm_sbuf *body,
                       char **token, int64_t *expires_ns) {
  json_error_t jerr;
  json_t *root = json_loadb(body->data ? body->data : "", body->len, 0,
                            &jerr);
  int rc = 0;
  if (status != 200) {
    const char *msg = json_string_value(
        json_object_get(json_object_get(root, "error"), "message"));
    char text[200] = "";
    for (size_t i = 0; msg && msg[i] && i + 1 < sizeof text; i++)
      text[i] = (unsigned char)msg[i] < 0x20 ? ' ' : msg[i];
    rc = pm__errf(PM_EACCES, "%s: HTTP %ld%s%s", url, status,
                  text[0] ? ": " : "", text);
  } else {
    const char *t = json_string_value(json_object_get(root, "accessToken"));
    const char *e = json_string_value(json_object_get(root, "expireTime"));
    if (!t || !*t || strlen(t) >= SUBJECT_MAX || strpbrk(t, "\r\n") ||
        !e || pm__s3_parse_time(e, expires_ns) != 0)
      rc = pm__errf(PM_EPROTO, "%s: no usable accessToken and expireTime in "
                               "the answer", url);
    else if (!(*token = strdup(t)))
      rc = pm__errf(PM_ENOMEM, "out of memory");
    else /* trusted for a day at most, as other tokens */
      *expires_ns =
          PM_MIN(*expires_ns, pm__wall_ns() + 86400ll * 1000000000ll);
  }
  json_decref(root);
  return rc;
}

static int impersonate(const char *url, const char *federated, char **token,
                       int64_t *expires_ns) {
  pm_sbuf body;
  pm__sbuf_init(&body, ANSWER_MAX);
  long status = 0;
  int rc = pm__json_post(url, federated,
                         "{\"scope\":[\"" STORAGE_SCOPE "\"],"
                         "\"lifetime\":\"3600s\"}",
                         &body, &status);
  if (!rc)
    rc = pm__gcs_iam_answer(url, status, &body, token, expires_ns);
  pm__sbuf_free_secret(&body);
  return rc;
}

int pm__gcs_external_trade(const pm_gcs_adc *adc, pm_s3_keys *keys,
                           int64_t *expires_ns) {
  pm_sbuf subject;
  pm__sbuf_init(&subject, SUBJECT_MAX);
  char *federated = NULL;
  int rc = subject_token(adc, &subject);
  if (!rc)
    rc = exchange(adc, pm__sbuf_str(&subject), &federated, expires_ns);
  if (!rc && adc->impersonation_url)
    rc = impersonate(adc->impersonation_url, federated, &keys->bearer,
                     expires_ns);
  else if (!rc)
    keys->bearer = federated, federated = NULL;
  pm__ufs_free_secret(&federated);
  pm__sbuf_free_secret(&subject);
  return rc;
}
