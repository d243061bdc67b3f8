/*
 * tests/ufs/test_gcs.c - the GCS origin's configuration (endpoints from
 * GCS_ENDPOINT_URL and STORAGE_EMULATOR_HOST, HMAC keys, OAuth tokens,
 * application default credentials files, anonymous), gs:// and gcs:// URIs (one spelling), the URLs the S3
 * engine builds for them, and that the registry routes both schemes to
 * the gcs backend. Each test runs in its own process (criterion forks).
 */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ufs/s3_int.h"

static void clear_env(void) {
  static const char *const vars[] = {
      "GCS_ENDPOINT_URL",          "STORAGE_EMULATOR_HOST",
      "GCS_HMAC_ACCESS_ID",        "GCS_HMAC_SECRET",
      "GOOGLE_OAUTH_ACCESS_TOKEN", "CLOUDSDK_AUTH_ACCESS_TOKEN",
      "PAGEMESH_GCS_MAX_KEYS",     "GCE_METADATA_HOST",
      "GOOGLE_APPLICATION_CREDENTIALS"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
    unsetenv(vars[i]);
  setenv("NO_GCE_CHECK", "true", 1); /* this machine may be on GCE */
  /* and may hold gcloud's own credentials */
  setenv("CLOUDSDK_CONFIG", "/nonexistent/gcloud", 1);
}

TestSuite(gcs, .init = clear_env, .timeout = 10);

static void url_is(const pm_s3_config *cfg, const char *bucket, const char *key,
                   const char *want) {
  pm_sbuf sb;
  pm__sbuf_init(&sb, 0);
  cr_assert_eq(pm__s3_url(cfg, bucket, key, "", NULL, &sb), 0);
  cr_assert_str_eq(pm__sbuf_str(&sb), want);
  pm__sbuf_free(&sb);
}

Test(gcs, defaults_are_the_public_xml_api_anonymously) {
  pm_s3_config cfg;
  cr_assert_eq(pm__gcs_config_load(&cfg), 0);
  cr_assert_str_eq(cfg.region, "auto");
  cr_assert(cfg.path_style);
  cr_assert_null(cfg.access_key);
  cr_assert_null(cfg.bearer_token);
  cr_assert_str_eq(cfg.cred_source, "anonymous");
  cr_assert_eq(cfg.max_keys, 1000);
  url_is(&cfg, "my_bucket.data", "a b/c",
         "https://storage.googleapis.com/my_bucket.data/a%20b/c");
  pm__s3_config_free(&cfg);
}

Test(gcs, endpoints) {
  pm_s3_config cfg;
  setenv("STORAGE_EMULATOR_HOST", "localhost:4443", 1);
  cr_assert_eq(pm__gcs_config_load(&cfg), 0);
  url_is(&cfg, "b", "k", "http://localhost:4443/b/k");
  pm__s3_config_free(&cfg);
  setenv("STORAGE_EMULATOR_HOST", "https://emu.example:8443/", 1);
  cr_assert_eq(pm__gcs_config_load(&cfg), 0);
  url_is(&cfg, "b", "k", "https://emu.example:8443/b/k");
  pm__s3_config_free(&cfg);
  setenv("GCS_ENDPOINT_URL", "http://127.0.0.1:9/base", 1); /* wins */
  cr_assert_eq(pm__gcs_config_load(&cfg), 0);
  url_is(&cfg, "b", "", "http://127.0.0.1:9/base/b");
  pm__s3_config_free(&cfg);
  setenv("GCS_ENDPOINT_URL", "ftp://x", 1);
  cr_assert_eq(pm__gcs_config_load(&cfg), PM_ECONFIG);
}

Test(gcs, credentials_in_order) {
  pm_s3_config cfg;
  setenv("CLOUDSDK_AUTH_ACCESS_TOKEN", "ya29.gcloud", 1);
  cr_assert_eq(pm__gcs_config_load(&cfg), 0);
  cr_assert_str_eq(cfg.bearer_token, "ya29.gcloud");
  pm__s3_config_free(&cfg);
  setenv("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.oauth", 1);
  cr_assert_eq(pm__gcs_config_load(&cfg), 0);
  cr_assert_str_eq(cfg.bearer_token, "ya29.oauth");
  cr_assert_str_eq(cfg.cred_source, "GOOGLE_OAUTH_ACCESS_TOKEN");
  pm__s3_config_free(&cfg);
  setenv("GCS_HMAC_ACCESS_ID", "GOOG1EXAMPLE", 1);
  cr_assert_eq(pm__gcs_config_load(&cfg), PM_ECONFIG); /* half a pair */
  setenv("GCS_HMAC_SECRET", "secret+/=", 1);
  cr_assert_eq(pm__gcs_config_load(&cfg), 0);
  cr_assert_str_eq(cfg.access_key, "GOOG1EXAMPLE");
  cr_assert_str_eq(cfg.secret_key, "secret+/=");
  cr_assert_null(cfg.bearer_token);
  pm__s3_config_free(&cfg);
  setenv("PAGEMESH_GCS_MAX_KEYS", "0", 1);
  cr_assert_eq(pm__gcs_config_load(&cfg), PM_ECONFIG);
}

Test(gcs, one_spelling_for_gs_and_gcs) {
  char out[PM_UFS_URI_MAX];
  cr_assert_eq(pm__uri_normalize("GCS://my-bkt/a//b c", out, sizeof out), 0);
  cr_assert_str_eq(out, "gs://my-bkt/a//b c");
  cr_assert_eq(pm__uri_normalize("gs://my_bkt", out, sizeof out), 0);
  cr_assert_str_eq(out, "gs://my_bkt/");
  cr_assert_eq(pm__uri_normalize("gs://x/k", out, sizeof out), PM_EBADURI);
  cr_assert_eq(pm__uri_normalize("gs:///k", out, sizeof out), PM_EBADURI);
  char bucket[64];
  const char *key;
  cr_assert_eq(pm__s3_uri_split("gs://bkt/k/1", bucket, sizeof bucket, &key),
               0);
  cr_assert_str_eq(bucket, "bkt");
  cr_assert_str_eq(key, "k/1");
}

Test(gcs, dotted_bucket_names_up_to_222) {
  char label[64], dotted[300], uri[400], out[PM_UFS_URI_MAX];
  memset(label, 'a', 63);
  label[63] = '\0';
  snprintf(dotted, sizeof dotted, "%s.%s.%s.bcd", label, label, label);
  cr_assert_eq(strlen(dotted), 195);
  snprintf(uri, sizeof uri, "gs://%s/k", dotted);
  cr_assert_eq(pm__uri_normalize(uri, out, sizeof out), 0);
  char bucket[PM_BUCKET_MAX + 1];
  const char *key;
  cr_assert_eq(pm__s3_uri_split(uri, bucket, sizeof bucket, &key), 0);
  cr_assert_str_eq(bucket, dotted);
  /* S3 keeps to 63; a part over 63, or 64 without dots, is refused. */
  snprintf(uri, sizeof uri, "s3://%s/k", dotted);
  cr_assert_eq(pm__uri_normalize(uri, out, sizeof out), PM_EBADURI);
  snprintf(uri, sizeof uri, "gs://%sa.bcd/k", label);
  cr_assert_eq(pm__uri_normalize(uri, out, sizeof out), PM_EBADURI);
  snprintf(uri, sizeof uri, "gcs://%sa/k", label);
  cr_assert_eq(pm__uri_normalize(uri, out, sizeof out), PM_EBADURI);
  snprintf(uri, sizeof uri, "gs://%s/k", label);
  cr_assert_eq(pm__uri_normalize(uri, out, sizeof out), 0);
}

Test(gcs, the_registry_routes_gs_and_gcs_to_gcs) {
  pm_ufs_set *set;
  cr_assert_eq(pm__ufs_set_open(NULL, &set), 0);
  int err;
  pm_ufs *ufs = pm__ufs_for(set, "gs://bkt/k", &err);
  cr_assert_not_null(ufs);
  cr_assert_str_eq(ufs->methods->name, "gcs");
  cr_assert_eq(pm__ufs_for(set, "gcs://bkt/k", &err), ufs);
  cr_assert_str_eq(pm__ufs_for(set, "az://c0n/x", &err)->methods->name,
                   "azure");
  cr_assert_str_eq(pm__ufs_for(set, "abfss://c@a.dfs.x/y", &err)->methods->name,
                   "azure");
  cr_assert_str_eq(pm__ufs_for(set, "hf://o/n/x", &err)->methods->name, "hf");
  cr_assert_null(pm__ufs_for(set, "ftp://x/y", &err));
  cr_assert_eq(err, PM_EBADURI);
  cr_assert(strstr(pm__errmsg(), "gs://") && strstr(pm__errmsg(), "hf://"),
            "%s", pm__errmsg());
  pm__ufs_set_close(set);
}

Test(gcs, the_service_account_only_where_there_is_a_metadata_server) {
  pm_s3_config cfg;
  setenv("GCE_METADATA_HOST", "127.0.0.1:1", 1);
  cr_assert_eq(pm__gcs_config_load(&cfg), 0);
  cr_assert_str_eq(cfg.cred_source, "anonymous", "NO_GCE_CHECK=true");
  pm__s3_config_free(&cfg);
  unsetenv("NO_GCE_CHECK");
  cr_assert_eq(pm__gcs_config_load(&cfg), 0);
  cr_assert_eq(cfg.cred_kind, PM_S3_CREDS_GCE);
  cr_assert_str_eq(cfg.imds_endpoint, "http://127.0.0.1:1");
  cr_assert(strstr(cfg.cred_source, "service account"));
  cr_assert_null(cfg.bearer_token, "fetched by the first request");
  pm__s3_config_free(&cfg);
  setenv("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.given", 1); /* a given one wins */
  cr_assert_eq(pm__gcs_config_load(&cfg), 0);
  cr_assert_eq(cfg.cred_kind, PM_S3_CREDS_FIXED);
  cr_assert_str_eq(cfg.bearer_token, "ya29.given");
  pm__s3_config_free(&cfg);
  unsetenv("GOOGLE_OAUTH_ACCESS_TOKEN");
  setenv("GCE_METADATA_HOST", "http://127.0.0.1/x", 1);
  cr_assert_eq(pm__gcs_config_load(&cfg), PM_ECONFIG);
  cr_assert(strstr(pm__errmsg(), "GCE_METADATA_HOST"), "%s", pm__errmsg());
  setenv("NO_GCE_CHECK", "true", 1);
}

/* ---- application default credentials ------------------------------------ */

static const char *const user_json =
    "{\"type\": \"authorized_user\", \"client_id\": \"123.apps\", "
    "\"client_secret\": \"s3cret\", \"refresh_token\": \"1//rt\", "
    "\"quota_project_id\": \"p\"}";

static int parse(const char *json, pm_gcs_adc *adc) {
  return pm__gcs_adc_parse(json, strlen(json), adc);
}

/* A service account's key file, with a fresh RSA key (good) or a key
 * that is no key. */
static void service_account_json(char *out, size_t size, bool good) {
  char pem[4096] = "-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE "
                   "KEY-----\\n";
  if (good) {
    EVP_PKEY *key = EVP_RSA_gen(2048);
    BIO *bio = BIO_new(BIO_s_mem());
    cr_assert(PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL));
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    size_t j = 0;
    for (long i = 0; i < n && j + 3 < sizeof pem; i++) {
      if (data[i] == '\n') {
        pem[j++] = '\\';
        pem[j++] = 'n';
      } else {
        pem[j++] = data[i];
      }
    }
    pem[j] = '\0';
    BIO_free(bio);
    EVP_PKEY_free(key);
  }
  snprintf(out, size,
           "{\"type\": \"service_account\", \"client_email\": "
           "\"sa@p.iam.gserviceaccount.com\", \"private_key\": \"%s\", "
           "\"private_key_id\": \"k1\", \"token_uri\": "
           "\"http://127.0.0.1:9/token\"}", pem);
}

Test(gcs, adc_files_of_a_user_and_of_a_service_account) {
  pm_gcs_adc adc;
  cr_assert_eq(parse(user_json, &adc), 0, "%s", pm__errmsg());
  cr_assert_not(adc.service_account);
  cr_assert_str_eq(adc.client_id, "123.apps");
  cr_assert_str_eq(adc.client_secret, "s3cret");
  cr_assert_str_eq(adc.refresh_token, "1//rt");
  cr_assert_str_eq(adc.token_uri, "https://oauth2.googleapis.com/token");
  pm__gcs_adc_free(&adc);
  char json[8192];
  service_account_json(json, sizeof json, true);
  cr_assert_eq(parse(json, &adc), 0, "%s", pm__errmsg());
  cr_assert(adc.service_account);
  cr_assert_str_eq(adc.client_email, "sa@p.iam.gserviceaccount.com");
  cr_assert_str_eq(adc.private_key_id, "k1");
  cr_assert_str_eq(adc.token_uri, "http://127.0.0.1:9/token");
  pm__gcs_adc_free(&adc);
}

Test(gcs, adc_files_of_an_external_account) {
  pm_gcs_adc adc;
  cr_assert_eq(parse("{\"type\": \"external_account\", \"audience\": "
                     "\"//iam.googleapis.com/projects/1/x\", "
                     "\"subject_token_type\": \"urn:t:jwt\", "
                     "\"credential_source\": {\"file\": \"/var/t\"}}",
                     &adc),
               0, "%s", pm__errmsg());
  cr_assert(adc.external);
  cr_assert_str_eq(adc.audience, "//iam.googleapis.com/projects/1/x");
  cr_assert_str_eq(adc.source_file, "/var/t");
  cr_assert_null(adc.source_field, "text by default");
  cr_assert_null(adc.impersonation_url);
  cr_assert_str_eq(adc.token_uri, "https://sts.googleapis.com/v1/token");
  pm__gcs_adc_free(&adc);
  cr_assert_eq(parse("{\"type\": \"external_account\", \"audience\": "
                     "\"a\", \"subject_token_type\": \"urn:t:jwt\", "
                     "\"token_url\": \"http://127.0.0.1:9/v1/token\", "
                     "\"service_account_impersonation_url\": "
                     "\"https://iamcredentials.googleapis.com/v1/x\", "
                     "\"credential_source\": {\"url\": "
                     "\"http://169.254.169.254/metadata/identity\", "
                     "\"headers\": {\"Metadata\": \"True\"}, "
                     "\"format\": {\"type\": \"json\", "
                     "\"subject_token_field_name\": \"access_token\"}}}",
                     &adc),
               0, "%s", pm__errmsg());
  cr_assert_str_eq(adc.source_url, "http://169.254.169.254/metadata/identity");
  cr_assert_str_eq(adc.source_header, "Metadata");
  cr_assert_str_eq(adc.source_header_value, "True");
  cr_assert_str_eq(adc.source_field, "access_token");
  cr_assert_str_eq(adc.token_uri, "http://127.0.0.1:9/v1/token");
  cr_assert_str_eq(adc.impersonation_url,
                   "https://iamcredentials.googleapis.com/v1/x");
  pm__gcs_adc_free(&adc);
}

Test(gcs, adc_files_that_cannot_be_used_say_why) {
  static const struct {
    const char *json, *says;
  } bad[] = {
      {"not json", "not a JSON object"},
      {"[1]", "not a JSON object"},
      {"{}", "type"},
      {"{\"type\": \"impersonated_service_account\"}",
       "\"impersonated_service_account\" are not supported"},
#define EXT "{\"type\": \"external_account\", \"subject_token_type\": " \
            "\"urn:ietf:params:oauth:token-type:jwt\", "
      {EXT "\"credential_source\": {\"file\": \"/t\"}}", "audience"},
      {EXT "\"audience\": \"//iam.googleapis.com/locations/global/"
           "workforcePools/p/providers/x\", "
           "\"credential_source\": {\"file\": \"/t\"}}",
       "workforce pool"},
      {EXT "\"audience\": \"a\"}", "credential_source"},
      {EXT "\"audience\": \"a\", \"credential_source\": "
           "{\"environment_id\": \"aws1\"}}", "AWS-sourced"},
      {EXT "\"audience\": \"a\", \"credential_source\": "
           "{\"executable\": {\"command\": \"x\"}}}", "executable"},
      {EXT "\"audience\": \"a\", \"credential_source\": {}}", "\"url\""},
      {EXT "\"audience\": \"a\", \"credential_source\": {\"file\": "
           "\"/t\", \"url\": \"http://127.0.0.1/t\"}}", "both a file and"},
      {EXT "\"audience\": \"a\", \"credential_source\": {\"url\": "
           "\"http://idp.example/t\"}}", "credential_source.url"},
      {EXT "\"audience\": \"a\", \"credential_source\": {\"url\": "
           "\"file:///etc/shadow\"}}", "credential_source.url"},
      {EXT "\"audience\": \"a\", \"credential_source\": {\"url\": "
           "\"http://127.0.0.1/t\", \"headers\": {\"A\": \"1\", "
           "\"B\": \"2\"}}}", "at most one header"},
      {EXT "\"audience\": \"a\", \"credential_source\": {\"url\": "
           "\"http://127.0.0.1/t\", \"headers\": {\"A\": \"1\\r\\nX: y\"}}}",
       "not a header"},
      {EXT "\"audience\": \"a\", \"credential_source\": {\"file\": "
           "\"/t\", \"format\": {\"type\": \"json\"}}}",
       "subject_token_field_name"},
      {EXT "\"audience\": \"a\", \"credential_source\": {\"file\": "
           "\"/t\", \"format\": {\"type\": \"xml\"}}}", "text or json"},
      {EXT "\"audience\": \"a\", \"credential_source\": {\"file\": "
           "\"/t\"}, \"service_account_impersonation_url\": "
           "\"http://iam.example/x\"}", "not https://"},
      {EXT "\"audience\": \"a\", \"credential_source\": {\"file\": "
           "\"/t\"}, \"token_url\": \"http://sts.example/v1/token\"}",
       "not https://"},
#undef EXT
      {"{\"type\": \"authorized_user\", \"client_id\": \"c\", "
       "\"client_secret\": \"s\"}", "refresh_token"},
      {"{\"type\": \"service_account\", \"client_email\": \"e\"}",
       "private_key"},
      {"{\"type\": \"authorized_user\", \"client_id\": \"c\", "
       "\"client_secret\": \"s\", \"refresh_token\": \"r\", "
       "\"token_uri\": \"http://oauth.example/token\"}", "not https://"},
      {"{\"type\": \"authorized_user\", \"client_id\": 7, "
       "\"client_secret\": \"s\", \"refresh_token\": \"r\"}", "client_id"},
  };
  pm_gcs_adc adc;
  char json[8192];
  service_account_json(json, sizeof json, false); /* checked at load */
  cr_assert_eq(parse(json, &adc), PM_ECONFIG);
  cr_assert(strstr(pm__errmsg(), "not a PEM RSA key"), "%s", pm__errmsg());
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cr_assert_eq(parse(bad[i].json, &adc), PM_ECONFIG, "%s", bad[i].json);
    cr_assert(strstr(pm__errmsg(), bad[i].says), "%s: %s", bad[i].json,
              pm__errmsg());
    cr_assert_null(adc.client_id);
    cr_assert_null(adc.token_uri);
    cr_assert_null(adc.audience);
    cr_assert_null(adc.source_file);
  }
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f, "%s", path);
  fputs(text, f);
  fclose(f);
}

Test(gcs, adc_found_where_google_looks_and_in_order) {
  char dir[] = "/tmp/pm-adc-XXXXXX", named[64], gcloud[64], well_known[128];
  cr_assert_not_null(mkdtemp(dir));
  snprintf(named, sizeof named, "%s/key.json", dir);
  snprintf(gcloud, sizeof gcloud, "%s/gcloud", dir);
  snprintf(well_known, sizeof well_known,
           "%s/application_default_credentials.json", gcloud);
  cr_assert_eq(mkdir(gcloud, 0700), 0);
  write_file(well_known, user_json);
  pm_s3_config cfg;
  /* gcloud's file, in CLOUDSDK_CONFIG */
  setenv("CLOUDSDK_CONFIG", gcloud, 1);
  cr_assert_eq(pm__gcs_config_load(&cfg), 0, "%s", pm__errmsg());
  cr_assert_eq(cfg.cred_kind, PM_S3_CREDS_GOOGLE_ADC);
  cr_assert_str_eq(cfg.adc_file, well_known);
  cr_assert(strstr(cfg.cred_source, well_known), "%s", cfg.cred_source);
  cr_assert_null(cfg.bearer_token, "fetched by the first request");
  pm__s3_config_free(&cfg);
  /* ... or in ~/.config/gcloud */
  unsetenv("CLOUDSDK_CONFIG");
  char home[64], config[80];
  snprintf(home, sizeof home, "%s/home", dir);
  snprintf(config, sizeof config, "%s/.config", home);
  cr_assert_eq(mkdir(home, 0700) || mkdir(config, 0700), 0);
  snprintf(well_known, sizeof well_known, "%s/gcloud", config);
  cr_assert_eq(rename(gcloud, well_known), 0);
  setenv("HOME", home, 1);
  cr_assert_eq(pm__gcs_config_load(&cfg), 0, "%s", pm__errmsg());
  cr_assert_eq(cfg.cred_kind, PM_S3_CREDS_GOOGLE_ADC);
  cr_assert(strstr(cfg.adc_file, "/home/.config/gcloud/application_default"),
            "%s", cfg.adc_file);
  pm__s3_config_free(&cfg);
  /* GOOGLE_APPLICATION_CREDENTIALS wins; a file it names must do */
  setenv("GOOGLE_APPLICATION_CREDENTIALS", named, 1);
  cr_assert_eq(pm__gcs_config_load(&cfg), PM_ECONFIG);
  cr_assert(strstr(pm__errmsg(), named), "%s", pm__errmsg());
  write_file(named, "{\"type\": \"impersonated_service_account\"}");
  cr_assert_eq(pm__gcs_config_load(&cfg), PM_ECONFIG);
  cr_assert(strstr(pm__errmsg(), "impersonated_service_account"), "%s",
            pm__errmsg());
  write_file(named, user_json);
  cr_assert_eq(pm__gcs_config_load(&cfg), 0, "%s", pm__errmsg());
  cr_assert_str_eq(cfg.adc_file, named);
  cr_assert(strstr(cfg.cred_source, "user"), "%s", cfg.cred_source);
  pm__s3_config_free(&cfg);
  /* an emulator gets no cloud identity: the token would go in clear */
  setenv("STORAGE_EMULATOR_HOST", "127.0.0.1:4443", 1);
  cr_assert_eq(pm__gcs_config_load(&cfg), 0);
  cr_assert_eq(cfg.cred_kind, PM_S3_CREDS_FIXED);
  cr_assert_null(cfg.bearer_token);
  cr_assert_str_eq(cfg.cred_source, "anonymous (an emulator)");
  pm__s3_config_free(&cfg);
  unsetenv("STORAGE_EMULATOR_HOST");
  /* a token given outright comes first, and HMAC keys before it */
  setenv("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.given", 1);
  cr_assert_eq(pm__gcs_config_load(&cfg), 0);
  cr_assert_eq(cfg.cred_kind, PM_S3_CREDS_FIXED);
  cr_assert_str_eq(cfg.bearer_token, "ya29.given");
  pm__s3_config_free(&cfg);
  setenv("GCS_HMAC_ACCESS_ID", "GOOG1", 1);
  setenv("GCS_HMAC_SECRET", "s", 1);
  cr_assert_eq(pm__gcs_config_load(&cfg), 0);
  cr_assert_str_eq(cfg.access_key, "GOOG1");
  cr_assert_null(cfg.bearer_token);
  pm__s3_config_free(&cfg);
  /* and the metadata server only after the file */
  unsetenv("GOOGLE_OAUTH_ACCESS_TOKEN");
  unsetenv("GCS_HMAC_ACCESS_ID");
  unsetenv("GCS_HMAC_SECRET");
  unsetenv("NO_GCE_CHECK");
  setenv("GCE_METADATA_HOST", "127.0.0.1:1", 1);
  cr_assert_eq(pm__gcs_config_load(&cfg), 0);
  cr_assert_eq(cfg.cred_kind, PM_S3_CREDS_GOOGLE_ADC);
  pm__s3_config_free(&cfg);
  unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
  unsetenv("HOME");
  cr_assert_eq(pm__gcs_config_load(&cfg), 0);
  cr_assert_eq(cfg.cred_kind, PM_S3_CREDS_GCE);
  pm__s3_config_free(&cfg);
  setenv("NO_GCE_CHECK", "true", 1);
}

/* An external account's subject token: the text, or a member of the JSON
 * a URL answered; garbage says what is missing. */
Test(gcs, subject_tokens_from_text_or_json) {
  static const char json[] = "{\"access_token\": \"eyJ.t\", \"n\": 1}";
  pm_sbuf raw = {.data = (char *)json, .len = sizeof json - 1}, out;
  pm__sbuf_init(&out, 1024);
  cr_assert_eq(pm__gcs_subject_pick("access_token", &raw, &out), 0);
  cr_assert_str_eq(pm__sbuf_str(&out), "eyJ.t");
  pm__sbuf_reset(&out);
  cr_assert_eq(pm__gcs_subject_pick(NULL, &raw, &out), 0, "text as is");
  cr_assert_str_eq(pm__sbuf_str(&out), json);
  static const char *const bad[] = {"", "not json", "[1]",
                                    "{\"access_token\": 5}",
                                    "{\"access_token\": \"\"}"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    pm_sbuf g = {.data = (char *)bad[i], .len = strlen(bad[i])};
    pm__sbuf_reset(&out);
    cr_assert_eq(pm__gcs_subject_pick("access_token", &g, &out), PM_EACCES,
                 "%s", bad[i]);
    cr_assert(strstr(pm__errmsg(), "no \"access_token\""), "%s",
              pm__errmsg());
  }
  pm_sbuf small;
  pm__sbuf_init(&small, 3);
  cr_assert_eq(pm__gcs_subject_pick("access_token", &raw, &small), PM_EACCES);
  cr_assert(strstr(pm__errmsg(), "too long"), "%s", pm__errmsg());
  pm__sbuf_free(&small);
  pm__sbuf_free(&out);
}

/* The IAM generateAccessToken answer (network input): a token and its
 * expiry are taken only from a 200 that has both, well formed; anything
 * else is a clear error, never a token. */
Test(gcs, iam_answers_that_carry_no_usable_token) {
  static const char *const bad[] = {
      "", "{", "null", "[]", "{\"accessToken\": 5}",
      "{\"accessToken\": \"t\"}",
      "{\"expireTime\": \"2030-01-01T00:00:00Z\"}",
      "{\"accessToken\": \"\", \"expireTime\": \"2030-01-01T00:00:00Z\"}",
      "{\"accessToken\": \"a\\r\\nX-Evil: 1\", "
      "\"expireTime\": \"2030-01-01T00:00:00Z\"}",
      "{\"accessToken\": \"t\", \"expireTime\": \"tomorrow\"}",
      "\xff\xfe garbage \x01"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    pm_sbuf body;
    pm__sbuf_init(&body, 1 << 20);
    pm__sbuf_puts(&body, bad[i]);
    char *token = NULL;
    int64_t expires = 0;
    int rc = pm__gcs_iam_answer("https://iam.example/x", 200, &body, &token,
                                &expires);
    cr_assert_eq(rc, PM_EPROTO, "answer %zu: %d", i, rc);
    cr_assert_null(token);
    pm__sbuf_free(&body);
  }
  /* A refusal names the status and the message, control bytes blanked;
   * one without a JSON body still names the status. */
  pm_sbuf body;
  pm__sbuf_init(&body, 1 << 20);
  pm__sbuf_puts(&body, "{\"error\": {\"message\": \"denied\\nnow\"}}");
  char *token = NULL;
  int64_t expires = 0;
  cr_assert_eq(pm__gcs_iam_answer("https://iam.example/x", 403, &body,
                                  &token, &expires),
               PM_EACCES);
  cr_assert(strstr(pm__errmsg(), "HTTP 403: denied now"), "%s",
            pm__errmsg());
  pm__sbuf_reset(&body);
  pm__sbuf_puts(&body, "<html>oops</html>");
  cr_assert_eq(pm__gcs_iam_answer("https://iam.example/x", 500, &body,
                                  &token, &expires),
               PM_EACCES);
  cr_assert(strstr(pm__errmsg(), "HTTP 500"), "%s", pm__errmsg());
  cr_assert_null(token);
  /* And a good one is taken. */
  pm__sbuf_reset(&body);
  pm__sbuf_puts(&body, "{\"accessToken\": \"ya29.ok\", "
                       "\"expireTime\": \"2030-01-01T00:00:00Z\"}");
  cr_assert_eq(pm__gcs_iam_answer("https://iam.example/x", 200, &body,
                                  &token, &expires),
               0);
  cr_assert_str_eq(token, "ya29.ok");
  cr_assert_gt(expires, 0);
  free(token);
  pm__sbuf_free(&body);
}
