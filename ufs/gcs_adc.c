/*
 * ufs/gcs_adc.c - Google's Application Default Credentials for the GCS
 * origin, found where the Google libraries look: the JSON file that
 * GOOGLE_APPLICATION_CREDENTIALS names, else gcloud's
 * application_default_credentials.json (in $CLOUDSDK_CONFIG, else in
 * ~/.config/gcloud). Two kinds of file are traded for an access token at
 * the file's token_uri (default https://oauth2.googleapis.com/token):
 *
 *   - "authorized_user" (`gcloud auth application-default login`): its
 *     refresh token, grant_type=refresh_token;
 *   - "service_account" (a key file): a JWT assertion for the read-only
 *     storage scope, signed RS256 with the account's private key,
 *     grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer.
 *
 *   - "external_account" (workload identity federation): a subject token
 *     from a file or a URL traded at STS, then perhaps for a service
 *     account's token (ufs/gcs_external.c).
 *
 * Other kinds (impersonated_service_account) are refused at load with
 * the way out.
 * The file is read when the configuration loads (a bad one fails there)
 * and again for each token, so a rotated key is picked up. Tokens are
 * fetched and renewed by requests (ufs/s3_creds.c).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ufs/s3_int.h"

#define ADC_FILE_MAX (64u * 1024u)
#define ANSWER_MAX (64u * 1024u)
#define FORM_MAX (64u * 1024u)
#define DEFAULT_TOKEN_URI "https://oauth2.googleapis.com/token"
#define SCOPE "https://www.googleapis.com/auth/devstorage.read_only"
#define ASSERTION_LIFETIME_S 3600
#define WELL_KNOWN "application_default_credentials.json"
#define JWT_BEARER "urn:ietf:params:oauth:grant-type:jwt-bearer"

void pm__gcs_adc_free(pm_gcs_adc *a) {
  pm__ufs_free_secret(&a->client_secret);
  pm__ufs_free_secret(&a->refresh_token);
  pm__ufs_free_secret(&a->private_key);
  free(a->client_id);
  free(a->client_email);
  free(a->private_key_id);
  free(a->token_uri);
  free(a->audience);
  free(a->subject_token_type);
  free(a->source_file);
  free(a->source_url);
  free(a->source_header);
  pm__ufs_free_secret(&a->source_header_value);
  free(a->source_field);
  free(a->impersonation_url);
  memset(a, 0, sizeof *a);
}

int pm__gcs_member(void *obj, const char *name, bool required, char **out) {
  json_t *root = obj;
  const char *v = json_string_value(json_object_get(root, name));
  if (!v || !*v)
    return required ? pm__errf(PM_ECONFIG, "no \"%s\"", name) : 0;
  if (strlen(v) >= ADC_FILE_MAX)
    return pm__errf(PM_ECONFIG, "\"%s\" too long", name);
  if (!(*out = strdup(v)))
    return pm__errf(PM_ENOMEM, "out of memory");
  return 0;
}

int pm__gcs_adc_parse(const char *text, size_t length, pm_gcs_adc *out) {
  memset(out, 0, sizeof *out);
  json_error_t jerr;
  json_t *root = json_loadb(text, length, 0, &jerr);
  const char *type = json_string_value(json_object_get(root, "type"));
  int rc = 0;
  if (!json_is_object(root))
    rc = pm__errf(PM_ECONFIG, "not a JSON object (%s)", jerr.text);
  else if (!type)
    rc = pm__errf(PM_ECONFIG, "no \"type\"");
  else if (!strcmp(type, "authorized_user")) {
    rc = pm__gcs_member(root, "client_id", true, &out->client_id);
    if (!rc)
      rc = pm__gcs_member(root, "client_secret", true, &out->client_secret);
    if (!rc)
      rc = pm__gcs_member(root, "refresh_token", true, &out->refresh_token);
  } else if (!strcmp(type, "service_account")) {
    out->service_account = true;
    rc = pm__gcs_member(root, "client_email", true, &out->client_email);
    if (!rc)
      rc = pm__gcs_member(root, "private_key", true, &out->private_key);
    if (!rc)
      rc = pm__gcs_member(root, "private_key_id", false, &out->private_key_id);
    if (!rc && !pm__jwt_key_ok(out->private_key))
      rc = pm__errf(PM_ECONFIG, "private_key is not a PEM RSA key (without "
                                "a passphrase)");
  } else if (!strcmp(type, "external_account")) {
    rc = pm__gcs_external_parse(root, out);
  } else {
    rc = pm__errf(PM_ECONFIG, "credentials of type \"%.40s\" are not "
                              "supported (authorized_user, service_account "
                              "and external_account are; else give a token "
                              "in GOOGLE_OAUTH_ACCESS_TOKEN, or HMAC keys)",
                  type);
  }
  if (!rc && !out->token_uri)
    rc = pm__gcs_member(root, "token_uri", false, &out->token_uri);
  if (!rc && !out->token_uri && !(out->token_uri = strdup(DEFAULT_TOKEN_URI)))
    rc = pm__errf(PM_ENOMEM, "out of memory");
  if (!rc && !pm__ufs_url_for_secrets(out->token_uri))
    rc = pm__errf(PM_ECONFIG, "token_uri \"%.64s\" is not https:// (http:// "
                              "only to this host)", out->token_uri);
  json_decref(root);
  if (rc)
    pm__gcs_adc_free(out);
  return rc;
}

/* Read and check the file; its detail names the file. */
static int load(const char *path, pm_gcs_adc *out) {
  char *text = NULL;
  size_t length = 0;
  int rc = pm__ufs_read_small(path, ADC_FILE_MAX, &text, &length);
  if (!rc && !text)
    rc = pm__errf(PM_ECONFIG, "cannot read it");
  if (!rc)
    rc = pm__gcs_adc_parse(text, length, out);
  if (text) {
    explicit_bzero(text, length);
    free(text);
  }
  if (rc) {
    char why[PM_ERRMSG_MAX];
    snprintf(why, sizeof why, "%s", pm__errmsg());
    rc = pm__errf(rc, "%s: %s", path, why);
  }
  return rc;
}

/* ---- where the file is ------------------------------------------------- */

static int find(char *path, size_t size, bool *found) {
  *found = false;
  const char *named = pm__ufs_env("GOOGLE_APPLICATION_CREDENTIALS");
  if (named) {
    if (!pm__ufs_home_path(path, size, "GOOGLE_APPLICATION_CREDENTIALS",
                           named, ""))
      return pm__errf(PM_ECONFIG, "GOOGLE_APPLICATION_CREDENTIALS=%.64s: "
                                  "names no file (HOME unset?)", named);
    *found = true;
    return 0;
  }
  const char *dir = pm__ufs_env("CLOUDSDK_CONFIG");
  if (!pm__ufs_home_path(path, size, dir ? "CLOUDSDK_CONFIG" : NULL,
                         dir ? dir : "~/.config/gcloud", "/" WELL_KNOWN))
    return 0;
  struct stat st; /* there (then it must be readable: load says why) */
  *found = stat(path, &st) == 0;
  return 0;
}

int pm__gcs_adc_load(pm_s3_config *cfg, bool *found) {
  char path[4096];
  int rc = find(path, sizeof path, found);
  if (rc || !*found)
    return rc;
  pm_gcs_adc adc;
  rc = load(path, &adc);
  if (rc)
    return rc;
  char source[4096 + 256];
  snprintf(source, sizeof source, "application default credentials (%s, %s%s)",
           path,
           adc.service_account ? "service account "
           : adc.external      ? "external account "
                               : "user",
           adc.service_account ? adc.client_email
           : adc.external      ? adc.audience
                               : "");
  pm__gcs_adc_free(&adc);
  cfg->cred_kind = PM_S3_CREDS_GOOGLE_ADC;
  if (pm__s3_config_set(&cfg->adc_file, path) ||
      pm__s3_config_set(&cfg->cred_source, source) || pm__s3_fetched_new(cfg))
    return pm__errf(PM_ENOMEM, "gcs config: out of memory");
  return 0;
}

/* ---- a token ----------------------------------------------------------- */

/* The signed assertion of a service account, into form. */
static int assertion(const pm_gcs_adc *adc, pm_sbuf *form) {
  int64_t now = pm__wall_ns() / 1000000000ll;
  json_t *header = json_pack("{s:s, s:s}", "alg", "RS256", "typ", "JWT");
  json_t *claims = json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss",
                             adc->client_email, "scope", SCOPE, "aud",
                             adc->token_uri, "iat", (json_int_t)now, "exp",
                             (json_int_t)(now + ASSERTION_LIFETIME_S));
  if (header && adc->private_key_id)
    json_object_set_new(header, "kid", json_string(adc->private_key_id));
  char *h = header ? json_dumps(header, JSON_COMPACT) : NULL;
  char *c = claims ? json_dumps(claims, JSON_COMPACT) : NULL;
  json_decref(header);
  json_decref(claims);
  pm_sbuf jwt;
  pm__sbuf_init(&jwt, FORM_MAX);
  int rc = !h || !c ? pm__errf(PM_ENOMEM, "out of memory")
                    : pm__jwt_rs256(adc->private_key, h, c, &jwt);
  if (!rc) {
    pm__form_field(form, "grant_type", JWT_BEARER);
    pm__form_field(form, "assertion", pm__sbuf_str(&jwt));
  }
  free(h);
  free(c);
  pm__sbuf_free_secret(&jwt);
  return rc;
}

static int trade(const pm_gcs_adc *adc, pm_s3_keys *keys,
                 int64_t *expires_ns) {
  pm_sbuf form, body;
  pm__sbuf_init(&form, FORM_MAX);
  pm__sbuf_init(&body, ANSWER_MAX);
  int rc = 0;
  if (adc->service_account) {
    rc = assertion(adc, &form);
  } else {
    pm__form_field(&form, "grant_type", "refresh_token");
    pm__form_field(&form, "client_id", adc->client_id);
    pm__form_field(&form, "client_secret", adc->client_secret);
    pm__form_field(&form, "refresh_token", adc->refresh_token);
  }
  if (!rc && form.err)
    rc = pm__errf(PM_ETOOBIG, "token request too long");
  long status = 0;
  if (!rc)
    rc = pm__form_post(adc->token_uri, pm__sbuf_str(&form), &body, &status);
  if (!rc)
    rc = pm__oauth_answer(adc->token_uri, status, &body, &keys->bearer,
                          expires_ns);
  pm__sbuf_free_secret(&form);
  pm__sbuf_free_secret(&body);
  return rc;
}

int pm__gcs_adc_fetch(const char *path, pm_s3_keys *keys,
                      int64_t *expires_ns) {
  pm_gcs_adc adc;
  int rc = load(path, &adc);
  if (rc)
    return rc;
  rc = adc.external ? pm__gcs_external_trade(&adc, keys, expires_ns)
                    : trade(&adc, keys, expires_ns);
  pm__gcs_adc_free(&adc);
  return rc;
}
