/*
 * ufs/gcs.c - the Google Cloud Storage origin: "gs://bucket/key" (and
 * "gcs://", normalised to "gs://") through GCS's XML API, which answers
 * the S3 requests that ufs/s3.c sends: HEAD for stat (the ETag is the
 * version), ranged GET with If-Match for read, ListObjectsV2 (list-type=2,
 * continuation tokens) for list. So this file only decides where requests
 * go and who signs them; the S3 request engine does the rest, with the
 * same retries, connection pool and read contract.
 *
 * Credentials, in order: HMAC keys (GCS_HMAC_ACCESS_ID, GCS_HMAC_SECRET),
 * signed AWS4-HMAC-SHA256 as GCS's interoperability mode accepts them
 * (region "auto", service "s3"); an OAuth 2.0 access token
 * (GOOGLE_OAUTH_ACCESS_TOKEN, else CLOUDSDK_AUTH_ACCESS_TOKEN, as gcloud
 * names it) sent as a bearer token (such a token expires in about an
 * hour: whoever starts the peer refreshes the variable and restarts it);
 * else application default credentials, a user's or a service account's
 * (ufs/gcs_adc.c: GOOGLE_APPLICATION_CREDENTIALS, or gcloud's file),
 * traded for tokens that are renewed before they expire (neither for an
 * emulator, STORAGE_EMULATOR_HOST); else, on a GCE instance (or with GCE_METADATA_HOST), the token of the
 * instance's service account from the metadata server, renewed before it
 * expires; else anonymous requests, which public buckets answer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ufs/s3_int.h"

#define GCS_DEFAULT_ENDPOINT "https://storage.googleapis.com"
#define GCS_REGION "auto"

/* STORAGE_EMULATOR_HOST may be "host:port" (the SDKs then use http). */
static int load_endpoint(pm_s3_config *cfg) {
  const char *url = pm__ufs_env("GCS_ENDPOINT_URL");
  if (url)
    return pm__s3_config_endpoint(cfg, url);
  const char *emulator = pm__ufs_env("STORAGE_EMULATOR_HOST");
  if (!emulator)
    return pm__s3_config_endpoint(cfg, GCS_DEFAULT_ENDPOINT);
  if (strstr(emulator, "://"))
    return pm__s3_config_endpoint(cfg, emulator);
  pm_sbuf full;
  pm__sbuf_init(&full, 4096);
  pm__sbuf_printf(&full, "http://%s", emulator);
  int rc = full.err ? pm__errf(PM_ECONFIG, "STORAGE_EMULATOR_HOST too long")
                    : pm__s3_config_endpoint(cfg, pm__sbuf_str(&full));
  pm__sbuf_free(&full);
  return rc;
}

static int load_hmac(pm_s3_config *cfg, bool *found) {
  const char *id = pm__ufs_env("GCS_HMAC_ACCESS_ID");
  const char *secret = pm__ufs_env("GCS_HMAC_SECRET");
  *found = id && secret;
  if (!id && !secret)
    return 0;
  if (!*found)
    return pm__errf(PM_ECONFIG, "GCS_HMAC_ACCESS_ID and GCS_HMAC_SECRET "
                                "must be set together");
  if (pm__s3_config_set(&cfg->access_key, id) ||
      pm__s3_config_set(&cfg->secret_key, secret))
    return PM_ENOMEM;
  return pm__s3_config_set(&cfg->cred_source, "HMAC key from GCS_HMAC_*");
}

/* No key and no token given: the instance's service account, whose
 * tokens the metadata server hands out (fetched and renewed by requests,
 * ufs/s3_creds.c), where there is one: GCE_METADATA_HOST ("host[:port]",
 * as the Google libraries read it), or on GCE, unless NO_GCE_CHECK=true.
 * Else anonymous. */
static int load_metadata_server(pm_s3_config *cfg) {
  const char *off = pm__ufs_env("NO_GCE_CHECK");
  const char *host = pm__ufs_env("GCE_METADATA_HOST");
  if ((off && !strcasecmp(off, "true")) ||
      (!host && !pm__ufs_cloud_is("Google")))
    return pm__s3_config_set(&cfg->cred_source, "anonymous");
  if (!host)
    host = "metadata.google.internal";
  if (strlen(host) > 255 || strpbrk(host, "/?#@ "))
    return pm__errf(PM_ECONFIG, "GCE_METADATA_HOST: \"%.64s\" is not "
                                "host[:port]", host);
  char base[300], source[340];
  snprintf(base, sizeof base, "http://%s", host);
  snprintf(source, sizeof source, "the service account (%s)", base);
  cfg->cred_kind = PM_S3_CREDS_GCE;
  if (pm__s3_config_set(&cfg->imds_endpoint, base) ||
      pm__s3_config_set(&cfg->cred_source, source) || pm__s3_fetched_new(cfg))
    return pm__errf(PM_ENOMEM, "gcs config: out of memory");
  return 0;
}

static int load_credentials(pm_s3_config *cfg) {
  bool hmac;
  int rc = load_hmac(cfg, &hmac);
  if (rc || hmac)
    return rc;
  static const char *const token_vars[] = {"GOOGLE_OAUTH_ACCESS_TOKEN",
                                           "CLOUDSDK_AUTH_ACCESS_TOKEN"};
  for (size_t i = 0; i < PM_ARRAY_SIZE(token_vars); i++) {
    const char *token = pm__ufs_env(token_vars[i]);
    if (!token)
      continue;
    if (pm__s3_config_set(&cfg->bearer_token, token))
      return PM_ENOMEM;
    return pm__s3_config_set(&cfg->cred_source, token_vars[i]);
  }
  /* An emulator gets no cloud identity (as google-cloud-storage gives it
   * anonymous credentials): a real token must not go to it in clear. */
  if (pm__ufs_env("STORAGE_EMULATOR_HOST") && !pm__ufs_env("GCS_ENDPOINT_URL"))
    return pm__s3_config_set(&cfg->cred_source, "anonymous (an emulator)");
  bool adc;
  rc = pm__gcs_adc_load(cfg, &adc);
  if (rc || adc)
    return rc;
  return load_metadata_server(cfg);
}

int pm__gcs_config_load(pm_s3_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  int rc = pm__s3_config_set(&cfg->region, GCS_REGION);
  if (!rc)
    rc = load_endpoint(cfg);
  if (!rc) {
    cfg->path_style = true;
    rc = pm__s3_config_max_keys(cfg, "PAGEMESH_GCS_MAX_KEYS");
  }
  if (!rc)
    rc = load_credentials(cfg);
  if (rc)
    pm__s3_config_free(cfg);
  return rc;
}

static int gcs_init(pm_ufs *self, const pm_ufs_config *config) {
  pm_s3_ufs *gcs = (pm_s3_ufs *)self;
  (void)config;
  int rc = pm__gcs_config_load(&gcs->cfg);
  gcs->stored_bytes = true;
  return rc ? rc : pm__s3_engine_start(gcs, "gcs");
}

static const char *const gcs_schemes[] = {"gs", "gcs", NULL};

const pm_ufs_methods pm_gcs_methods = {
    .size = sizeof(pm_ufs_methods),
    .name = "gcs",
    .schemes = gcs_schemes,
    .object_size = sizeof(pm_s3_ufs),
    .init = gcs_init,
    .fini = pm__s3_fini,
    .stat = pm__s3_stat,
    .read = pm__s3_read,
    .list = pm__s3_list,
};
