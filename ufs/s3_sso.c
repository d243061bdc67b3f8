/*
 * ufs/s3_sso.c - S3 keys of an AWS profile that signs in with IAM Identity
 * Center (AWS SSO), as the AWS CLI and botocore get them: the profile
 * names an account and a role (sso_account_id, sso_role_name) and a
 * session (sso_session, whose [sso-session NAME] section has sso_start_url
 * and sso_region; or, the legacy form, sso_start_url and sso_region in
 * the profile). `aws sso login` caches the session's access token in
 * ~/.aws/sso/cache/SHA1(NAME or start URL).json; the portal's
 * GetRoleCredentials (GET /federation/credentials?role_name=&account_id=
 * with x-amz-sso_bearer_token) trades it for the role's keys, renewed
 * before they expire. The session's own token is not refreshed here:
 * once it expires, requests fail with the way out (`aws sso login`).
 * AWS_ENDPOINT_URL_SSO names another portal (as botocore reads it).
 */
#include <jansson.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ufs/curl_int.h"
#include "ufs/s3_int.h"

#define CACHE_MAX (64u * 1024u)
#define ANSWER_MAX (64u * 1024u)
#define SETTING_MAX 1024

/* One SSO setting of `section`; 1 found, 0 absent, or PM_ECONFIG. */
static int setting(const char *text, size_t length, const char *path,
                   const char *section, const char *key, char *out) {
  int rc = pm__ini_get(text, length, section, key, out, SETTING_MAX, NULL);
  if (rc < 0)
    return pm__errf(PM_ECONFIG, "%s [%s]: %s too long", path, section, key);
  return rc;
}

/* The SHA-1 of the cache key, in hex, as the file's name. */
static void cache_name(const char *key, char out[2 * SHA_DIGEST_LENGTH + 6]) {
  unsigned char sha1[SHA_DIGEST_LENGTH];
  SHA1((const unsigned char *)key, strlen(key), sha1);
  for (size_t i = 0; i < sizeof sha1; i++)
    snprintf(out + 2 * i, 3, "%02x", sha1[i]);
  strcpy(out + 2 * SHA_DIGEST_LENGTH, ".json");
}

static bool region_ok(const char *r) {
  size_t n = strlen(r);
  return n > 0 && n < 32 &&
         strspn(r, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

int pm__s3_creds_from_sso(pm_s3_config *cfg, const char *profile,
                          const char *text, size_t length, const char *path,
                          const char *section, bool *used) {
  *used = false;
  if (!text)
    return 0;
  char session[SETTING_MAX] = "", start[SETTING_MAX] = "";
  char region[SETTING_MAX] = "", account[SETTING_MAX] = "";
  char role[SETTING_MAX] = "";
  /* As botocore: an SSO profile is one that names an account or a role
   * (a profile with only a session may hold keys of its own). */
  int has_account = setting(text, length, path, section, "sso_account_id",
                            account);
  int has_role = has_account >= 0 ? setting(text, length, path, section,
                                            "sso_role_name", role)
                                  : 0;
  if (has_account < 0 || has_role < 0)
    return has_account < 0 ? has_account : has_role;
  if (!has_account && !has_role)
    return 0;
  int has_session = setting(text, length, path, section, "sso_session",
                            session);
  if (has_session < 0)
    return has_session;
  char session_section[SETTING_MAX + 16];
  snprintf(session_section, sizeof session_section, "sso-session %s",
           session);
  const char *where = has_session ? session_section : section;
  int rc = 0;
  if (!has_account || !has_role)
    rc = pm__errf(PM_ECONFIG, "AWS profile \"%s\" in %s: sso_account_id and "
                              "sso_role_name are needed", profile, path);
  else if (setting(text, length, path, where, "sso_start_url", start) != 1 ||
           setting(text, length, path, where, "sso_region", region) != 1)
    rc = pm__errf(PM_ECONFIG, "%s [%s]: sso_start_url and sso_region are "
                              "needed", path, where);
  else if (!region_ok(region))
    rc = pm__errf(PM_ECONFIG, "%s [%s]: sso_region \"%.32s\" is not a "
                              "region", path, where, region);
  if (rc)
    return rc;
  char name[2 * SHA_DIGEST_LENGTH + 6], cache[4096], portal[1100];
  cache_name(has_session ? session : start, name);
  if (!pm__ufs_home_path(cache, sizeof cache, NULL, "~/.aws/sso/cache/",
                         name))
    return pm__errf(PM_ECONFIG, "AWS profile \"%s\": no home directory for "
                                "the SSO cache", profile);
  const char *endpoint = pm__ufs_env("AWS_ENDPOINT_URL_SSO");
  if (endpoint)
    rc = pm__ufs_base_url("AWS_ENDPOINT_URL_SSO", endpoint, true, portal,
                          sizeof portal);
  else
    snprintf(portal, sizeof portal, "https://portal.sso.%s.amazonaws.com",
             region);
  if (!rc && !pm__ufs_url_for_secrets(portal))
    rc = pm__errf(PM_ECONFIG, "AWS_ENDPOINT_URL_SSO=%.64s: not https:// "
                              "(http:// only to this host)", portal);
  if (rc)
    return rc;
  char source[600];
  snprintf(source, sizeof source, "AWS SSO role %.64s of account %.20s "
                                  "(profile %.64s)", role, account, profile);
  cfg->cred_kind = PM_S3_CREDS_SSO;
  if (pm__s3_config_set(&cfg->sso_portal, portal) ||
      pm__s3_config_set(&cfg->sso_cache_file, cache) ||
      pm__s3_config_set(&cfg->sso_account, account) ||
      pm__s3_config_set(&cfg->sso_role, role) ||
      pm__s3_config_set(&cfg->sso_profile, profile) ||
      pm__s3_config_set(&cfg->cred_source, source) ||
      pm__s3_fetched_new(cfg))
    return pm__errf(PM_ENOMEM, "s3 config: out of memory");
  *used = true;
  return 0;
}

/* ---- fetching ----------------------------------------------------------- */

/* The cached login's access token, if it has not expired. */
static int cached_token(const pm_s3_config *cfg, char **token) {
  char *text = NULL;
  size_t length = 0;
  int rc = pm__ufs_read_small(cfg->sso_cache_file, CACHE_MAX, &text,
                              &length);
  json_t *root = NULL;
  if (!rc && text)
    root = json_loadb(text, length, 0, NULL);
  const char *t = json_string_value(json_object_get(root, "accessToken"));
  const char *e = json_string_value(json_object_get(root, "expiresAt"));
  int64_t expires = 0;
  if (rc || !text)
    rc = pm__errf(PM_EACCES, "no SSO login cached (%s)",
                  cfg->sso_cache_file);
  else if (!t || !*t || strpbrk(t, "\r\n") || !e ||
           pm__s3_parse_time(e, &expires) != 0)
    rc = pm__errf(PM_EACCES, "%s holds no accessToken and expiresAt",
                  cfg->sso_cache_file);
  else if (expires <= pm__wall_ns())
    rc = pm__errf(PM_EACCES, "the SSO login expired at %.32s", e);
  else if (!(*token = strdup(t)))
    rc = pm__errf(PM_ENOMEM, "out of memory");
  json_decref(root);
  if (text) {
    explicit_bzero(text, length);
    free(text);
  }
  return rc;
}

int pm__s3_sso_parse(const char *text, size_t length, pm_s3_keys *keys,
                     int64_t *expires_ns) {
  json_error_t jerr;
  json_t *root = json_loadb(text, length, 0, &jerr);
  json_t *creds = json_object_get(root, "roleCredentials");
  const char *key = json_string_value(json_object_get(creds, "accessKeyId"));
  const char *secret =
      json_string_value(json_object_get(creds, "secretAccessKey"));
  const char *token =
      json_string_value(json_object_get(creds, "sessionToken"));
  json_t *expiration = json_object_get(creds, "expiration");
  int rc = 0;
  if (!json_is_object(creds))
    rc = pm__errf(PM_EPROTO, "no roleCredentials object");
  else if (!key || !*key || !secret || !*secret || !token || !*token)
    rc = pm__errf(PM_EPROTO, "accessKeyId, secretAccessKey or sessionToken "
                             "missing");
  else if (strlen(key) >= 256 || strlen(secret) >= 256 ||
           strlen(token) >= PM_S3_VALUE_MAX)
    rc = pm__errf(PM_EPROTO, "a key or token is too long");
  else if (!json_is_integer(expiration) ||
           json_integer_value(expiration) <= 0 ||
           json_integer_value(expiration) > INT64_MAX / 1000000)
    rc = pm__errf(PM_EPROTO, "expiration is not milliseconds since 1970");
  if (!rc) {
    *expires_ns = (int64_t)json_integer_value(expiration) * 1000000;
    if (pm__s3_config_set(&keys->access_key, key) ||
        pm__s3_config_set(&keys->secret_key, secret) ||
        pm__s3_config_set(&keys->session_token, token))
      rc = pm__errf(PM_ENOMEM, "out of memory");
  }
  if (rc)
    pm__s3_keys_free(keys);
  json_decref(root);
  return rc;
}

int pm__s3_sso_fetch(const pm_s3_config *cfg, pm_s3_keys *keys,
                     int64_t *expires_ns) {
  char *token = NULL;
  pm_sbuf path, body;
  pm__sbuf_init(&path, 4096);
  pm__sbuf_init(&body, ANSWER_MAX);
  int rc = cached_token(cfg, &token);
  pm__sbuf_puts(&path, "/federation/credentials?role_name=");
  pm__uri_encode(&path, cfg->sso_role, strlen(cfg->sso_role), false);
  pm__sbuf_puts(&path, "&account_id=");
  pm__uri_encode(&path, cfg->sso_account, strlen(cfg->sso_account), false);
  long status = 0;
  if (!rc && path.err)
    rc = pm__errf(PM_ETOOBIG, "request too long");
  if (!rc)
    rc = pm__short_call(cfg->sso_portal, pm__sbuf_str(&path), false, true,
                        "x-amz-sso_bearer_token", token, &body, &status);
  if (!rc && status != 200)
    rc = pm__errf(PM_EACCES, "GetRoleCredentials: HTTP %ld%s", status,
                  status == 401 || status == 403
                      ? " (the SSO login is no longer valid, or grants "
                        "no such role)"
                      : "");
  if (!rc)
    rc = pm__s3_sso_parse(body.data ? body.data : "", body.len, keys,
                          expires_ns);
  if (rc == PM_EACCES) {
    char why[PM_ERRMSG_MAX];
    snprintf(why, sizeof why, "%s", pm__errmsg());
    pm__errf(rc, "%s; run `aws sso login --profile %.64s` (pagemesh does "
                 "not refresh the login; credential_process = aws configure "
                 "export-credentials --profile %.64s --format process does)",
             why, cfg->sso_profile, cfg->sso_profile);
  }
  pm__ufs_free_secret(&token);
  pm__sbuf_free(&path);
  pm__sbuf_free_secret(&body);
  return rc;
}
