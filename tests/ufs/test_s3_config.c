/*
 * tests/ufs/test_s3_config.c - ufs/s3_config.c: the AWS INI dialect,
 * endpoints, regions, addressing styles, credentials from the environment
 * and from profile files (environment first), and the URLs built for
 * path-style and virtual-host addressing. Each test runs in its own
 * process (criterion forks), so changing the environment is safe.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ufs/s3_int.h"

static char tmpdir[] = "/tmp/pm-s3cfg-XXXXXX";

static void clear_env(void) {
  static const char *const vars[] = {"AWS_ENDPOINT_URL",
                                     "AWS_ENDPOINT_URL_S3",
                                     "AWS_REGION",
                                     "AWS_DEFAULT_REGION",
                                     "AWS_ACCESS_KEY_ID",
                                     "AWS_SECRET_ACCESS_KEY",
                                     "AWS_SESSION_TOKEN",
                                     "AWS_SECURITY_TOKEN",
                                     "AWS_PROFILE",
                                     "AWS_DEFAULT_PROFILE",
                                     "AWS_SHARED_CREDENTIALS_FILE",
                                     "AWS_CONFIG_FILE",
                                     "AWS_S3_ADDRESSING_STYLE",
                                     "AWS_EC2_METADATA_SERVICE_ENDPOINT",
                                     "AWS_WEB_IDENTITY_TOKEN_FILE",
                                     "AWS_ROLE_ARN",
                                     "AWS_ROLE_SESSION_NAME",
                                     "AWS_ENDPOINT_URL_STS",
                                     "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                                     "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                                     "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                                     "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                                     "AWS_ENDPOINT_URL_SSO",
                                     "PAGEMESH_S3_MAX_KEYS"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
    unsetenv(vars[i]);
  /* This machine may be an EC2 instance: no instance role here. */
  setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
  cr_assert_not_null(mkdtemp(tmpdir));
  setenv("HOME", tmpdir, 1); /* no real ~/.aws */
}

static void cleanup(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  cr_assert_eq(system(cmd), 0);
}

TestSuite(s3_config, .init = clear_env, .fini = cleanup, .timeout = 10);

static const char *write_file(const char *name, const char *text) {
  static char path[256];
  snprintf(path, sizeof path, "%s/%s", tmpdir, name);
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fputs(text, f);
  fclose(f);
  return path;
}

/* ---- INI ------------------------------------------------------------------
 */

static const char INI[] = "\xEF\xBB\xBF# comment\n"
                          "[default]\n"
                          "aws_access_key_id = AKIDEFAULT\n"
                          "; another comment\n"
                          "[profile work]\r\n"
                          "  region = ignored-nested\r\n"
                          "Region =  eu-west-1  \r\n"
                          "s3 =\r\n"
                          "    addressing_style = path\r\n"
                          "empty =\r\n"
                          "[ spaced ]\n"
                          "key=value=with=equals\n"
                          "[broken\n"
                          "key = nope\n";

static int ini(const char *section, const char *key, char *out, size_t size,
               bool *seen) {
  return pm__ini_get(INI, strlen(INI), section, key, out, size, seen);
}

Test(s3_config, ini_lookup) {
  char v[64];
  bool seen = false;
  cr_assert_eq(ini("default", "aws_access_key_id", v, sizeof v, &seen), 1);
  cr_assert_str_eq(v, "AKIDEFAULT");
  cr_assert(seen);
  cr_assert_eq(ini("profile work", "region", v, sizeof v, NULL), 1);
  cr_assert_str_eq(v, "eu-west-1");
  cr_assert_eq(ini("profile work", "addressing_style", v, sizeof v, NULL), 0);
  cr_assert_eq(ini("profile work", "empty", v, sizeof v, NULL), 1);
  cr_assert_str_eq(v, "");
  cr_assert_eq(ini("spaced", "key", v, sizeof v, NULL), 1);
  cr_assert_str_eq(v, "value=with=equals");
  cr_assert_eq(ini("broken", "key", v, sizeof v, NULL), 0);
  seen = false;
  cr_assert_eq(ini("missing", "key", v, sizeof v, &seen), 0);
  cr_assert_not(seen);
  cr_assert_eq(ini("default", "aws_access_key_id", v, 4, NULL), PM_ETOOBIG);
}

Test(s3_config, ini_garbage) {
  unsigned seed = 3;
  char buf[512], v[64];
  for (int i = 0; i < 20000; i++) {
    size_t n = (size_t)rand_r(&seed) % sizeof buf;
    for (size_t j = 0; j < n; j++)
      buf[j] = "[]=\n\r #;ab "[rand_r(&seed) % 11];
    int rc = pm__ini_get(buf, n, "a", "b", v, sizeof v, NULL);
    cr_assert(rc == 0 || rc == 1 || rc == PM_ETOOBIG);
  }
}

/* ---- loading ----------------------------------------------------------------
 */

Test(s3_config, defaults_are_aws_anonymous_virtual_host) {
  pm_s3_config cfg;
  cr_assert_eq(pm__s3_config_load(&cfg), 0, "%s", pm__errmsg());
  cr_assert_str_eq(cfg.region, "us-east-1");
  cr_assert_str_eq(cfg.scheme, "https");
  cr_assert_str_eq(cfg.host, "s3.us-east-1.amazonaws.com");
  cr_assert_not(cfg.path_style);
  cr_assert_null(cfg.access_key);
  cr_assert_str_eq(cfg.cred_source, "anonymous");
  cr_assert_eq(cfg.max_keys, 1000);
  pm__s3_config_free(&cfg);
  pm__s3_config_free(&cfg); /* twice is fine */
}

Test(s3_config, environment) {
  setenv("AWS_ENDPOINT_URL", "http://ignored:1", 1);
  setenv("AWS_ENDPOINT_URL_S3", "HTTP://127.0.0.1:9000/base/", 1);
  setenv("AWS_DEFAULT_REGION", "eu-north-1", 1);
  setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
  setenv("AWS_SESSION_TOKEN", "token", 1);
  setenv("PAGEMESH_S3_MAX_KEYS", "7", 1);
  pm_s3_config cfg;
  cr_assert_eq(pm__s3_config_load(&cfg), 0, "%s", pm__errmsg());
  cr_assert_str_eq(cfg.scheme, "http");
  cr_assert_str_eq(cfg.host, "127.0.0.1:9000");
  cr_assert_str_eq(cfg.base_path, "/base");
  cr_assert(cfg.path_style);
  cr_assert_str_eq(cfg.region, "eu-north-1");
  cr_assert_str_eq(cfg.access_key, "AKID");
  cr_assert_str_eq(cfg.secret_key, "secret");
  cr_assert_str_eq(cfg.session_token, "token");
  cr_assert_eq(cfg.max_keys, 7);
  pm__s3_config_free(&cfg);
}

static void load_fails(const char *needle) {
  pm_s3_config cfg;
  cr_assert_eq(pm__s3_config_load(&cfg), PM_ECONFIG);
  cr_assert(strstr(pm__errmsg(), needle), "%s", pm__errmsg());
  cr_assert_null(cfg.region); /* freed on failure */
}

Test(s3_config, bad_environment) {
  setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
  load_fails("AWS_SECRET_ACCESS_KEY");
  unsetenv("AWS_ACCESS_KEY_ID");
  setenv("AWS_S3_ADDRESSING_STYLE", "sideways", 1);
  load_fails("AWS_S3_ADDRESSING_STYLE");
  unsetenv("AWS_S3_ADDRESSING_STYLE");
  setenv("AWS_ENDPOINT_URL", "ftp://x", 1);
  load_fails("endpoint");
  setenv("AWS_ENDPOINT_URL", "http://user@host/", 1);
  load_fails("endpoint");
  setenv("AWS_ENDPOINT_URL", "http:///", 1);
  load_fails("endpoint");
  unsetenv("AWS_ENDPOINT_URL");
  setenv("AWS_REGION", "us-east-1:evil", 1);
  load_fails("region");
  unsetenv("AWS_REGION");
  setenv("PAGEMESH_S3_MAX_KEYS", "0", 1);
  load_fails("PAGEMESH_S3_MAX_KEYS");
}

Test(s3_config, addressing_style) {
  setenv("AWS_ENDPOINT_URL", "http://localhost:9000", 1);
  setenv("AWS_S3_ADDRESSING_STYLE", "virtual", 1);
  pm_s3_config cfg;
  cr_assert_eq(pm__s3_config_load(&cfg), 0);
  cr_assert_not(cfg.path_style);
  pm__s3_config_free(&cfg);
  unsetenv("AWS_ENDPOINT_URL");
  setenv("AWS_S3_ADDRESSING_STYLE", "PATH", 1);
  cr_assert_eq(pm__s3_config_load(&cfg), 0);
  cr_assert(cfg.path_style);
  pm__s3_config_free(&cfg);
}

Test(s3_config, credentials_file_profiles) {
  const char *path = write_file(
      "credentials", "[default]\naws_access_key_id=D\naws_secret_access_key="
                     "DS\n[p]\naws_access_key_id = P\naws_secret_access_key"
                     " = PS\naws_session_token = PT\n[half]\n"
                     "aws_access_key_id = H\n");
  setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);
  pm_s3_config cfg;
  cr_assert_eq(pm__s3_config_load(&cfg), 0);
  cr_assert_str_eq(cfg.access_key, "D");
  cr_assert_null(cfg.session_token);
  pm__s3_config_free(&cfg);
  setenv("AWS_PROFILE", "p", 1);
  cr_assert_eq(pm__s3_config_load(&cfg), 0);
  cr_assert_str_eq(cfg.access_key, "P");
  cr_assert_str_eq(cfg.secret_key, "PS");
  cr_assert_str_eq(cfg.session_token, "PT");
  cr_assert(strstr(cfg.cred_source, "profile p"));
  pm__s3_config_free(&cfg);
  setenv("AWS_ACCESS_KEY_ID", "E", 1); /* the environment wins */
  setenv("AWS_SECRET_ACCESS_KEY", "ES", 1);
  cr_assert_eq(pm__s3_config_load(&cfg), 0);
  cr_assert_str_eq(cfg.access_key, "E");
  cr_assert_null(cfg.session_token);
  pm__s3_config_free(&cfg);
  unsetenv("AWS_ACCESS_KEY_ID");
  unsetenv("AWS_SECRET_ACCESS_KEY");
  setenv("AWS_PROFILE", "half", 1);
  load_fails("must come together");
  setenv("AWS_PROFILE", "absent", 1);
  load_fails("absent");
}

Test(s3_config, default_file_under_home_and_config_file) {
  char dir[300];
  snprintf(dir, sizeof dir, "%s/.aws", tmpdir);
  cr_assert_eq(mkdir(dir, 0700), 0);
  write_file(".aws/credentials", "[default]\naws_access_key_id = HOMEKEY\n"
                                 "aws_secret_access_key = s\n");
  write_file(".aws/config", "[default]\nregion = ap-south-1\n"
                            "[profile c]\nregion = sa-east-1\n"
                            "aws_access_key_id = CK\n"
                            "aws_secret_access_key = CS\n");
  pm_s3_config cfg;
  cr_assert_eq(pm__s3_config_load(&cfg), 0);
  cr_assert_str_eq(cfg.access_key, "HOMEKEY");
  cr_assert_str_eq(cfg.region, "ap-south-1");
  cr_assert_str_eq(cfg.host, "s3.ap-south-1.amazonaws.com");
  pm__s3_config_free(&cfg);
  setenv("AWS_PROFILE", "c", 1);
  cr_assert_eq(pm__s3_config_load(&cfg), 0);
  cr_assert_str_eq(cfg.access_key, "CK");
  cr_assert_str_eq(cfg.region, "sa-east-1");
  pm__s3_config_free(&cfg);
  setenv("AWS_REGION", "us-west-2", 1);
  cr_assert_eq(pm__s3_config_load(&cfg), 0);
  cr_assert_str_eq(cfg.region, "us-west-2");
  pm__s3_config_free(&cfg);
}

Test(s3_config, profiles_that_name_a_credential_source) {
  write_file("config", "[profile proc]\nregion = eu-west-1\n"
                       "credential_process = /opt/bin/get-keys --role x\n"
                       "[profile keys]\naws_access_key_id = K\n"
                       "aws_secret_access_key = S\n"
                       "credential_process = never-run\n"
                       "[profile sso]\nsso_session = corp\n"
                       "sso_account_id = 1\n"
                       "[profile role]\nrole_arn = arn:aws:iam::1:role/r\n"
                       "source_profile = keys\n");
  char path[300];
  snprintf(path, sizeof path, "%s/config", tmpdir);
  setenv("AWS_CONFIG_FILE", path, 1);
  setenv("AWS_PROFILE", "proc", 1);
  pm_s3_config cfg;
  cr_assert_eq(pm__s3_config_load(&cfg), 0, "%s", pm__errmsg());
  cr_assert_eq(cfg.cred_kind, PM_S3_CREDS_PROCESS);
  cr_assert_str_eq(cfg.cred_process, "/opt/bin/get-keys --role x");
  cr_assert_null(cfg.access_key, "fetched by the first request, not here");
  cr_assert(strstr(cfg.cred_source, "credential_process of profile proc"));
  pm__s3_config_free(&cfg);
  setenv("AWS_PROFILE", "keys", 1); /* keys in the profile win */
  cr_assert_eq(pm__s3_config_load(&cfg), 0);
  cr_assert_eq(cfg.cred_kind, PM_S3_CREDS_FIXED);
  cr_assert_str_eq(cfg.access_key, "K");
  pm__s3_config_free(&cfg);
  setenv("AWS_PROFILE", "sso", 1); /* an account, no role */
  load_fails("sso_account_id and sso_role_name are needed");
}

/* IAM Identity Center: the session (or the legacy settings in the
 * profile), the role, the cached login's file and the portal. */
Test(s3_config, profiles_that_sign_in_with_sso) {
  write_file("config",
             "[profile dev]\nsso_session = corp\nsso_account_id = 111\n"
             "sso_role_name = reader\naws_access_key_id = NOT-USED\n"
             "aws_secret_access_key = NOT-USED\n"
             "[sso-session corp]\nsso_start_url = https://corp.awsapps.com/"
             "start\nsso_region = eu-west-1\n"
             "[profile legacy]\n"
             "sso_start_url = https://old.awsapps.com/start\n"
             "sso_region = us-east-2\nsso_account_id = 222\n"
             "sso_role_name = admin\n"
             "[profile norole]\nsso_session = corp\nsso_account_id = 1\n"
             "[profile badregion]\nsso_start_url = https://x/start\n"
             "sso_region = eu west\nsso_account_id = 1\n"
             "sso_role_name = r\n"
             "[profile nosession]\nsso_account_id = 1\nsso_role_name = r\n"
             "[profile login-only]\nsso_session = corp\n"
             "aws_access_key_id = LK\naws_secret_access_key = LS\n");
  char path[300];
  snprintf(path, sizeof path, "%s/config", tmpdir);
  setenv("AWS_CONFIG_FILE", path, 1);
  setenv("AWS_PROFILE", "dev", 1);
  pm_s3_config cfg;
  cr_assert_eq(pm__s3_config_load(&cfg), 0, "%s", pm__errmsg());
  cr_assert_eq(cfg.cred_kind, PM_S3_CREDS_SSO, "SSO before the keys");
  cr_assert_null(cfg.access_key);
  cr_assert_str_eq(cfg.sso_account, "111");
  cr_assert_str_eq(cfg.sso_role, "reader");
  cr_assert_str_eq(cfg.sso_portal,
                   "https://portal.sso.eu-west-1.amazonaws.com");
  char cache[400]; /* the SHA-1 of "corp", as the AWS CLI names it */
  snprintf(cache, sizeof cache, "%s/.aws/sso/cache/"
           "ee0bfd2552fbd840c02cc48b6e823320543c450f.json", tmpdir);
  cr_assert_str_eq(cfg.sso_cache_file, cache);
  pm__s3_config_free(&cfg);
  setenv("AWS_PROFILE", "legacy", 1);
  setenv("AWS_ENDPOINT_URL_SSO", "http://127.0.0.1:9/", 1);
  cr_assert_eq(pm__s3_config_load(&cfg), 0, "%s", pm__errmsg());
  cr_assert_str_eq(cfg.sso_portal, "http://127.0.0.1:9");
  cr_assert_str_eq(cfg.sso_role, "admin");
  pm__s3_config_free(&cfg);
  setenv("AWS_ENDPOINT_URL_SSO", "http://portal.example", 1);
  load_fails("AWS_ENDPOINT_URL_SSO");
  unsetenv("AWS_ENDPOINT_URL_SSO");
  setenv("AWS_PROFILE", "norole", 1);
  load_fails("sso_account_id and sso_role_name are needed");
  setenv("AWS_PROFILE", "badregion", 1);
  load_fails("is not a region");
  setenv("AWS_PROFILE", "nosession", 1);
  load_fails("[profile nosession]: sso_start_url and sso_region are needed");
  /* only a session (for `aws sso login`): not an SSO role, its keys */
  setenv("AWS_PROFILE", "login-only", 1);
  cr_assert_eq(pm__s3_config_load(&cfg), 0, "%s", pm__errmsg());
  cr_assert_eq(cfg.cred_kind, PM_S3_CREDS_FIXED);
  cr_assert_str_eq(cfg.access_key, "LK");
  pm__s3_config_free(&cfg);
}

Test(s3_config, profiles_that_assume_a_role) {
  write_file("credentials", "[base]\naws_access_key_id = B\n"
                            "aws_secret_access_key = BS\n"
                            "[self]\naws_access_key_id = SELF\n"
                            "aws_secret_access_key = SS\n");
  write_file("config",
             "[profile reader]\nrole_arn = arn:aws:iam::1:role/reader\n"
             "source_profile = base\nexternal_id = ext-7\n"
             "role_session_name = job-3\n"
             "[profile chained]\nrole_arn = arn:aws:iam::2:role/data\n"
             "source_profile = reader\n"
             "[profile self]\nrole_arn = arn:aws:iam::1:role/self\n"
             "source_profile = self\n"
             "[profile env]\nrole_arn = arn:aws:iam::1:role/e\n"
             "credential_source = Environment\n"
             "[profile ecs]\nrole_arn = arn:aws:iam::1:role/e\n"
             "credential_source = EcsContainer\n"
             "[profile lambda]\nrole_arn = arn:aws:iam::1:role/e\n"
             "credential_source = Lambda\n"
             "[profile orphan]\nrole_arn = arn:aws:iam::1:role/o\n"
             "[profile nokeys]\nrole_arn = arn:aws:iam::1:role/o\n"
             "source_profile = empty\n[profile empty]\nregion = x\n"
             "[profile loop1]\nrole_arn = arn:aws:iam::1:role/a\n"
             "source_profile = loop2\n"
             "[profile loop2]\nrole_arn = arn:aws:iam::1:role/b\n"
             "source_profile = loop1\n"
             "[profile web]\nrole_arn = arn:aws:iam::1:role/w\n"
             "web_identity_token_file = /var/run/token\n");
  char path[300];
  snprintf(path, sizeof path, "%s/config", tmpdir);
  setenv("AWS_CONFIG_FILE", path, 1);
  snprintf(path, sizeof path, "%s/credentials", tmpdir);
  setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);
  pm_s3_config cfg;
  setenv("AWS_PROFILE", "reader", 1);
  cr_assert_eq(pm__s3_config_load(&cfg), 0, "%s", pm__errmsg());
  cr_assert_eq(cfg.cred_kind, PM_S3_CREDS_ASSUME_ROLE);
  cr_assert_str_eq(cfg.role_arn, "arn:aws:iam::1:role/reader");
  cr_assert_str_eq(cfg.role_session, "job-3");
  cr_assert_str_eq(cfg.external_id, "ext-7");
  cr_assert_str_eq(cfg.sts_endpoint, "https://sts.us-east-1.amazonaws.com");
  cr_assert_null(cfg.access_key, "fetched by the first request");
  cr_assert_str_eq(cfg.source->access_key, "B");
  cr_assert(strstr(cfg.cred_source, "profile reader"), "%s", cfg.cred_source);
  pm__s3_config_free(&cfg);
  /* a chain: the source is a role itself */
  setenv("AWS_PROFILE", "chained", 1);
  cr_assert_eq(pm__s3_config_load(&cfg), 0, "%s", pm__errmsg());
  cr_assert_str_eq(cfg.role_arn, "arn:aws:iam::2:role/data");
  cr_assert_eq(cfg.source->cred_kind, PM_S3_CREDS_ASSUME_ROLE);
  cr_assert_str_eq(cfg.source->role_arn, "arn:aws:iam::1:role/reader");
  cr_assert_str_eq(cfg.source->source->access_key, "B");
  pm__s3_config_free(&cfg);
  /* a profile that is its own source: its keys ask for the role */
  setenv("AWS_PROFILE", "self", 1);
  cr_assert_eq(pm__s3_config_load(&cfg), 0, "%s", pm__errmsg());
  cr_assert_eq(cfg.cred_kind, PM_S3_CREDS_ASSUME_ROLE);
  cr_assert_str_eq(cfg.source->access_key, "SELF");
  pm__s3_config_free(&cfg);
  /* a role's web identity token file */
  setenv("AWS_PROFILE", "web", 1);
  cr_assert_eq(pm__s3_config_load(&cfg), 0, "%s", pm__errmsg());
  cr_assert_eq(cfg.cred_kind, PM_S3_CREDS_WEB_IDENTITY);
  cr_assert_str_eq(cfg.web_token_file, "/var/run/token");
  pm__s3_config_free(&cfg);
  setenv("AWS_PROFILE", "env", 1);
  load_fails("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
  setenv("AWS_PROFILE", "ecs", 1);
  load_fails("EcsContainer, but neither"); /* see a_role_asked_with_... */
  setenv("AWS_PROFILE", "lambda", 1);
  load_fails("Lambda is not supported");
  setenv("AWS_PROFILE", "orphan", 1);
  load_fails("without source_profile");
  setenv("AWS_PROFILE", "nokeys", 1);
  load_fails("\"empty\" has no credentials");
  setenv("AWS_PROFILE", "loop1", 1);
  load_fails("a loop of source_profile");
}

/* With AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY set, those keys are
 * used, whatever else would be asked (then both are unset again). */
static void keys_in_the_environment_win(void) {
  pm_s3_config cfg;
  setenv("AWS_ACCESS_KEY_ID", "E", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "ES", 1);
  cr_assert_eq(pm__s3_config_load(&cfg), 0);
  cr_assert_eq(cfg.cred_kind, PM_S3_CREDS_FIXED);
  cr_assert_str_eq(cfg.access_key, "E");
  pm__s3_config_free(&cfg);
  unsetenv("AWS_ACCESS_KEY_ID");
  unsetenv("AWS_SECRET_ACCESS_KEY");
}

Test(s3_config, the_instance_role_is_asked_only_where_there_is_one) {
  pm_s3_config cfg;
  setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1/", 1);
  cr_assert_eq(pm__s3_config_load(&cfg), 0);
  cr_assert_eq(cfg.cred_kind, PM_S3_CREDS_FIXED, "disabled");
  cr_assert_str_eq(cfg.cred_source, "anonymous");
  pm__s3_config_free(&cfg);
  unsetenv("AWS_EC2_METADATA_DISABLED");
  cr_assert_eq(pm__s3_config_load(&cfg), 0);
  cr_assert_eq(cfg.cred_kind, PM_S3_CREDS_IMDS);
  cr_assert_str_eq(cfg.imds_endpoint, "http://127.0.0.1:1");
  cr_assert(strstr(cfg.cred_source, "instance role"));
  pm__s3_config_free(&cfg);
  keys_in_the_environment_win(); /* no instance role then */
  setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "ftp://127.0.0.1", 1);
  load_fails("AWS_EC2_METADATA_SERVICE_ENDPOINT");
  setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
}

/* The container provider: after a profile's keys, before the instance
 * role; the URL botocore would ask, and only such URLs. */
Test(s3_config, the_role_of_a_container) {
  pm_s3_config cfg;
  unsetenv("AWS_EC2_METADATA_DISABLED");
  setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1", 1);
  setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/x", 1);
  setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:9/c", 1);
  cr_assert_eq(pm__s3_config_load(&cfg), 0, "%s", pm__errmsg());
  cr_assert_eq(cfg.cred_kind, PM_S3_CREDS_CONTAINER, "before the instance");
  cr_assert_str_eq(cfg.container_url,
                   "http://169.254.170.2/v2/credentials/x");
  cr_assert_null(cfg.container_token);
  cr_assert(strstr(cfg.cred_source, "container role"));
  pm__s3_config_free(&cfg);
  keys_in_the_environment_win();
  const char *creds = write_file("c", "[default]\naws_access_key_id = P\n"
                                      "aws_secret_access_key = PS\n");
  setenv("AWS_SHARED_CREDENTIALS_FILE", creds, 1);
  cr_assert_eq(pm__s3_config_load(&cfg), 0);
  cr_assert_str_eq(cfg.access_key, "P", "a profile's keys come first");
  pm__s3_config_free(&cfg);
  unsetenv("AWS_SHARED_CREDENTIALS_FILE");
  /* EKS Pod Identity: the full URI, and what authorizes the call. */
  unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI",
         "http://169.254.170.23/v1/credentials", 1);
  setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "tok", 1);
  cr_assert_eq(pm__s3_config_load(&cfg), 0, "%s", pm__errmsg());
  cr_assert_str_eq(cfg.container_url, "http://169.254.170.23/v1/credentials");
  cr_assert_str_eq(cfg.container_token, "tok");
  pm__s3_config_free(&cfg);
  setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/var/run/t", 1);
  cr_assert_eq(pm__s3_config_load(&cfg), 0, "%s", pm__errmsg());
  cr_assert_str_eq(cfg.container_token_file, "/var/run/t");
  cr_assert_null(cfg.container_token, "the file wins");
  pm__s3_config_free(&cfg);
  static const char *const allowed[] = {
      "https://creds.example.com/x", "http://localhost:8080/c",
      "http://127.0.0.9/c", "http://[::1]:7/c", "http://169.254.170.2",
      "http://[fd00:ec2::23]/v1/credentials"};
  for (size_t i = 0; i < PM_ARRAY_SIZE(allowed); i++) {
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", allowed[i], 1);
    cr_assert_eq(pm__s3_config_load(&cfg), 0, "%s: %s", allowed[i],
                 pm__errmsg());
    pm__s3_config_free(&cfg);
  }
  static const char *const refused[] = {
      "http://example.com/c", "http://169.254.170.22/c",
      "http://169.254.170.234/c", "http://127.0.0.1@evil.com/c",
      "http://169.254.170.2:80@evil.example/c",
      "http://169.254.170.23:@evil.example/c",
      "http://[fd00:ec2::23]:x@evil.example/", "https://u:p@creds.example/",
      "http://169.254.170.2:/c", "http://169.254.170.2:8a/c",
      "ftp://127.0.0.1/c", "http://127.0.0.1/a b"};
  for (size_t i = 0; i < PM_ARRAY_SIZE(refused); i++) {
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", refused[i], 1);
    load_fails("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  }
  setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "v2/credentials", 1);
  load_fails("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
}

/* credential_source = EcsContainer: the container's keys ask STS. */
Test(s3_config, a_role_asked_with_a_container_role) {
  const char *config =
      write_file("config", "[profile r]\n"
                           "role_arn = arn:aws:iam::1:role/R\n"
                           "credential_source = EcsContainer\n");
  setenv("AWS_CONFIG_FILE", config, 1);
  setenv("AWS_PROFILE", "r", 1);
  load_fails("neither AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/y", 1);
  pm_s3_config cfg;
  cr_assert_eq(pm__s3_config_load(&cfg), 0, "%s", pm__errmsg());
  cr_assert_eq(cfg.cred_kind, PM_S3_CREDS_ASSUME_ROLE);
  cr_assert_eq(cfg.source->cred_kind, PM_S3_CREDS_CONTAINER);
  cr_assert_str_eq(cfg.source->container_url,
                   "http://169.254.170.2/v2/credentials/y");
  pm__s3_config_free(&cfg);
}

Test(s3_config, tilde_paths_and_profile_default_section) {
  write_file("creds", "[default]\naws_access_key_id = TILDEKEY\n"
                      "aws_secret_access_key = s\n");
  write_file("conf", "[profile default]\nregion = eu-central-1\n");
  setenv("AWS_SHARED_CREDENTIALS_FILE", "~/creds", 1);
  setenv("AWS_CONFIG_FILE", "~/conf", 1);
  pm_s3_config cfg;
  cr_assert_eq(pm__s3_config_load(&cfg), 0);
  cr_assert_str_eq(cfg.access_key, "TILDEKEY");
  cr_assert_str_eq(cfg.region, "eu-central-1");
  pm__s3_config_free(&cfg);
}

Test(s3_config, oversized_file_is_refused) {
  char *big = malloc(PM_S3_INI_MAX + 2);
  memset(big, '#', PM_S3_INI_MAX + 1);
  big[PM_S3_INI_MAX + 1] = '\0';
  setenv("AWS_SHARED_CREDENTIALS_FILE", write_file("big", big), 1);
  free(big);
  load_fails("at most");
}

/* ---- URLs
 * --------------------------------------------------------------------- */

static const char *url(pm_s3_config *cfg, const char *bucket, const char *key,
                       const char *query) {
  static pm_sbuf sb;
  pm__sbuf_free(&sb);
  pm__sbuf_init(&sb, 0);
  cr_assert_eq(pm__s3_url(cfg, bucket, key, query, NULL, &sb), 0);
  return pm__sbuf_str(&sb);
}

Test(s3_config, urls) {
  pm_s3_config cfg;
  setenv("AWS_REGION", "eu-west-3", 1);
  cr_assert_eq(pm__s3_config_load(&cfg), 0);
  cr_assert_str_eq(
      url(&cfg, "bkt", "a b/c+d=é", NULL),
      "https://bkt.s3.eu-west-3.amazonaws.com/a%20b/c%2Bd%3D%C3%A9");
  cr_assert_str_eq(url(&cfg, "bkt", "", "list-type=2"),
                   "https://bkt.s3.eu-west-3.amazonaws.com/?list-type=2");
  /* Dots under https, and names that are no DNS label: path-style. */
  cr_assert_str_eq(url(&cfg, "my.bkt", "k", NULL),
                   "https://s3.eu-west-3.amazonaws.com/my.bkt/k");
  cr_assert_str_eq(url(&cfg, "Old_Bkt", "k", NULL),
                   "https://s3.eu-west-3.amazonaws.com/Old_Bkt/k");
  cr_assert_eq(pm__s3_config_endpoint(&cfg, "http://localhost:9000/pre"), 0);
  cr_assert_str_eq(url(&cfg, "my.bkt", "k?#", NULL),
                   "http://my.bkt.localhost:9000/pre/k%3F%23");
  cfg.path_style = true;
  cr_assert_str_eq(url(&cfg, "bkt", "dir//x", "a=1"),
                   "http://localhost:9000/pre/bkt/dir//x?a=1");
  cr_assert_str_eq(url(&cfg, "bkt", "", "list-type=2"),
                   "http://localhost:9000/pre/bkt?list-type=2");
  pm__s3_config_free(&cfg);
}

Test(s3_config, bucket_regions_learnt_and_their_hosts) {
  pm_s3_regions r;
  pm__s3_regions_init(&r);
  char out[PM_S3_REGION_MAX];
  pm__s3_region_of(&r, "b", "us-east-1", out);
  cr_assert_str_eq(out, "us-east-1");
  pm__s3_region_learn(&r, "b", "eu-west-3");
  pm__s3_region_learn(&r, "c", "Not A Region");
  pm__s3_region_of(&r, "b", "us-east-1", out);
  cr_assert_str_eq(out, "eu-west-3");
  pm__s3_region_of(&r, "c", "us-east-1", out);
  cr_assert_str_eq(out, "us-east-1", "an invalid name is not learnt");
  char bucket[32];
  for (int i = 0; i < PM_S3_REGIONS_MAX; i++) { /* "b" is the oldest */
    snprintf(bucket, sizeof bucket, "bucket-%d", i);
    pm__s3_region_learn(&r, bucket, "ap-south-1");
  }
  pm__s3_region_of(&r, "b", "us-east-1", out);
  cr_assert_str_eq(out, "us-east-1", "the oldest was forgotten");
  pm__s3_region_of(&r, "bucket-0", "us-east-1", out);
  cr_assert_str_eq(out, "ap-south-1");
  pm__s3_regions_fini(&r);

  pm_s3_config cfg;
  cr_assert_eq(pm__s3_config_load(&cfg), 0);
  pm_sbuf sb;
  pm__sbuf_init(&sb, 4096);
  cr_assert_eq(pm__s3_url(&cfg, "data", "k", "", "eu-west-3", &sb), 0);
  cr_assert_str_eq(pm__sbuf_str(&sb), "https://data.s3.eu-west-3.amazonaws.com/k");
  pm__sbuf_free(&sb);
  pm__s3_config_free(&cfg);
  setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000", 1);
  cr_assert_eq(pm__s3_config_load(&cfg), 0);
  pm__sbuf_init(&sb, 4096);
  cr_assert_eq(pm__s3_url(&cfg, "data", "k", "", "eu-west-3", &sb), 0);
  cr_assert_str_eq(pm__sbuf_str(&sb), "http://127.0.0.1:9000/data/k",
                   "a custom endpoint serves every region");
  pm__sbuf_free(&sb);
  pm__s3_config_free(&cfg);
}

Test(s3_config, web_identity_of_a_pod) {
  pm_s3_config cfg;
  setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/token", 1);
  setenv("AWS_ROLE_ARN", "arn:aws:iam::1:role/r", 1);
  setenv("AWS_REGION", "eu-west-1", 1);
  cr_assert_eq(pm__s3_config_load(&cfg), 0, "%s", pm__errmsg());
  cr_assert_eq(cfg.cred_kind, PM_S3_CREDS_WEB_IDENTITY);
  cr_assert_str_eq(cfg.sts_endpoint, "https://sts.eu-west-1.amazonaws.com");
  cr_assert(!strncmp(cfg.role_session, "pagemesh-", 9));
  cr_assert(strstr(cfg.cred_source, "arn:aws:iam::1:role/r"));
  cr_assert_null(cfg.access_key, "fetched by the first request");
  pm__s3_config_free(&cfg);
  setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000/", 1);
  setenv("AWS_ROLE_SESSION_NAME", "job-7", 1);
  cr_assert_eq(pm__s3_config_load(&cfg), 0);
  cr_assert_str_eq(cfg.sts_endpoint, "http://127.0.0.1:9000");
  cr_assert_str_eq(cfg.role_session, "job-7");
  pm__s3_config_free(&cfg);
  setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9001", 1); /* wins */
  cr_assert_eq(pm__s3_config_load(&cfg), 0);
  cr_assert_str_eq(cfg.sts_endpoint, "http://127.0.0.1:9001");
  pm__s3_config_free(&cfg);
  /* before the profile's keys, as botocore has it */
  setenv("AWS_SHARED_CREDENTIALS_FILE",
         write_file("credentials", "[default]\naws_access_key_id=D\n"
                                   "aws_secret_access_key=DS\n"), 1);
  cr_assert_eq(pm__s3_config_load(&cfg), 0);
  cr_assert_eq(cfg.cred_kind, PM_S3_CREDS_WEB_IDENTITY);
  cr_assert_null(cfg.access_key);
  pm__s3_config_free(&cfg);
  /* but after a role the named profile assumes; and a named profile that
   * does not exist is an error, as botocore's ProfileNotFound */
  char path[300];
  snprintf(path, sizeof path, "%s/config", tmpdir);
  write_file("config", "[profile xacct]\nrole_arn = arn:aws:iam::9:role/x\n"
                       "credential_source = Environment\n");
  setenv("AWS_CONFIG_FILE", path, 1);
  setenv("AWS_PROFILE", "xacct", 1);
  setenv("AWS_ACCESS_KEY_ID", "E", 1); /* env keys win over everything */
  setenv("AWS_SECRET_ACCESS_KEY", "ES", 1);
  cr_assert_eq(pm__s3_config_load(&cfg), 0, "%s", pm__errmsg());
  cr_assert_eq(cfg.cred_kind, PM_S3_CREDS_FIXED);
  pm__s3_config_free(&cfg);
  unsetenv("AWS_ACCESS_KEY_ID");
  unsetenv("AWS_SECRET_ACCESS_KEY");
  write_file("config", "[profile xacct]\nrole_arn = arn:aws:iam::9:role/x\n"
                       "source_profile = default\n");
  cr_assert_eq(pm__s3_config_load(&cfg), 0, "%s", pm__errmsg());
  cr_assert_eq(cfg.cred_kind, PM_S3_CREDS_ASSUME_ROLE);
  cr_assert_str_eq(cfg.role_arn, "arn:aws:iam::9:role/x");
  cr_assert_str_eq(cfg.source->access_key, "D");
  pm__s3_config_free(&cfg);
  setenv("AWS_PROFILE", "missing", 1);
  load_fails("\"missing\" not found");
  unsetenv("AWS_PROFILE");
  unsetenv("AWS_CONFIG_FILE");
  keys_in_the_environment_win();
  unsetenv("AWS_WEB_IDENTITY_TOKEN_FILE");
  load_fails("AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN");
}
