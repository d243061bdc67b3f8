/* Tests for ufs/s3_creds.c: decoding what a credential_process prints and
 * what the EC2 metadata service answers (garbage included), and keys
 * fetched by running a real credential_process: once while they are
 * valid, again near their expiry, the old ones kept while a refetch fails
 * before they expire, and PM_EACCES with the reason once they have. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ufs/s3_int.h"

static char dir[] = "/tmp/pm-s3creds-XXXXXX";

static void setup(void) {
  cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
}

TestSuite(s3_creds, .init = setup, .fini = teardown, .timeout = 30);

static int parse(const char *text, pm_s3_creds_form form, pm_s3_keys *keys,
                 int64_t *expires) {
  *keys = (pm_s3_keys){0};
  return pm__s3_parse_creds(text, strlen(text), form, keys, expires);
}

Test(s3_creds, process_output) {
  pm_s3_keys k;
  int64_t exp;
  cr_assert_eq(parse("{\"Version\": 1, \"AccessKeyId\": \"AK\", "
                     "\"SecretAccessKey\": \"SK\", \"SessionToken\": \"T\", "
                     "\"Expiration\": \"2030-01-01T00:00:00+00:00\"}",
                     PM_S3_FORM_PROCESS, &k, &exp),
               0, "%s", pm__errmsg());
  cr_assert_str_eq(k.access_key, "AK");
  cr_assert_str_eq(k.secret_key, "SK");
  cr_assert_str_eq(k.session_token, "T");
  cr_assert_eq(exp, 1893456000ll * 1000000000ll);
  pm__s3_keys_free(&k);
  cr_assert_null(k.access_key);
  cr_assert_eq(parse("{\"Version\": 1, \"AccessKeyId\": \"AK\", "
                     "\"SecretAccessKey\": \"SK\"}",
                     PM_S3_FORM_PROCESS, &k, &exp),
               0);
  cr_assert_null(k.session_token);
  cr_assert_eq(exp, 0, "no Expiration: the keys never expire");
  pm__s3_keys_free(&k);
}

Test(s3_creds, imds_answer) {
  pm_s3_keys k;
  int64_t exp;
  cr_assert_eq(parse("{\"Code\": \"Success\", \"Type\": \"AWS-HMAC\", "
                     "\"AccessKeyId\": \"ASIA\", \"SecretAccessKey\": \"S\", "
                     "\"Token\": \"TOK\", "
                     "\"Expiration\": \"2026-11-27T10:00:00Z\"}",
                     PM_S3_FORM_IMDS, &k, &exp),
               0, "%s", pm__errmsg());
  cr_assert_str_eq(k.session_token, "TOK");
  cr_assert_gt(exp, 0);
  pm__s3_keys_free(&k);
}

/* What the ECS agent and the EKS Pod Identity agent answer: no Code, no
 * Version; Token and Expiration as IMDS has them. */
Test(s3_creds, container_answer) {
  pm_s3_keys k;
  int64_t exp;
  cr_assert_eq(parse("{\"AccessKeyId\": \"ASIA\", \"SecretAccessKey\": "
                     "\"S\", \"Token\": \"TOK\", \"AccountId\": "
                     "\"123456789012\", "
                     "\"Expiration\": \"2030-01-01T00:00:00Z\"}",
                     PM_S3_FORM_CONTAINER, &k, &exp),
               0, "%s", pm__errmsg());
  cr_assert_str_eq(k.access_key, "ASIA");
  cr_assert_str_eq(k.session_token, "TOK");
  cr_assert_eq(exp, 1893456000ll * 1000000000ll);
  pm__s3_keys_free(&k);
  cr_assert_eq(parse("{\"AccessKeyId\": \"A\", \"SecretAccessKey\": \"S\", "
                     "\"Token\": \"T\"}",
                     PM_S3_FORM_CONTAINER, &k, &exp),
               PM_EPROTO, "keys that never expire are not a role's");
  cr_assert(strstr(pm__errmsg(), "Expiration"), "%s", pm__errmsg());
  cr_assert_null(k.access_key);
  cr_assert_eq(parse("{\"Code\": \"Success\", \"AccessKeyId\": \"A\", "
                     "\"SecretAccessKey\": \"S\", "
                     "\"Expiration\": \"2030-01-01T00:00:00Z\"}",
                     PM_S3_FORM_CONTAINER, &k, &exp),
               0, "%s", pm__errmsg());
  cr_assert_null(k.session_token);
  pm__s3_keys_free(&k);
}

/* The AWS SSO portal's GetRoleCredentials: expiration in milliseconds. */
Test(s3_creds, sso_portal_answer) {
  pm_s3_keys k = {0};
  int64_t exp;
  const char *good = "{\"roleCredentials\": {\"accessKeyId\": \"ASIA\", "
                     "\"secretAccessKey\": \"S\", \"sessionToken\": \"T\", "
                     "\"expiration\": 1893456000000}}";
  cr_assert_eq(pm__s3_sso_parse(good, strlen(good), &k, &exp), 0, "%s",
               pm__errmsg());
  cr_assert_str_eq(k.access_key, "ASIA");
  cr_assert_str_eq(k.session_token, "T");
  cr_assert_eq(exp, 1893456000ll * 1000000000ll);
  pm__s3_keys_free(&k);
  static const char *const bad[] = {
      "", "[]", "{\"roleCredentials\": 1}",
      "{\"roleCredentials\": {\"accessKeyId\": \"A\", "
      "\"secretAccessKey\": \"S\", \"expiration\": 1}}",
      "{\"roleCredentials\": {\"accessKeyId\": \"A\", "
      "\"secretAccessKey\": \"S\", \"sessionToken\": \"T\", "
      "\"expiration\": \"2030-01-01T00:00:00Z\"}}",
      "{\"roleCredentials\": {\"accessKeyId\": \"A\", "
      "\"secretAccessKey\": \"S\", \"sessionToken\": \"T\", "
      "\"expiration\": -5}}"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    cr_assert_eq(pm__s3_sso_parse(bad[i], strlen(bad[i]), &k, &exp),
                 PM_EPROTO, "%s", bad[i]);
    cr_assert_null(k.access_key);
  }
}

Test(s3_creds, garbage_is_refused_with_nothing_handed_out) {
  static const struct {
    const char *text;
    pm_s3_creds_form form;
    const char *why;
  } bad[] = {
      {"", PM_S3_FORM_PROCESS, "JSON"},
      {"not json", PM_S3_FORM_PROCESS, "JSON"},
      {"[1, 2]", PM_S3_FORM_PROCESS, "JSON"},
      {"{\"Version\": 2, \"AccessKeyId\": \"A\", \"SecretAccessKey\": \"S\"}",
       PM_S3_FORM_PROCESS, "Version"},
      {"{\"Version\": \"1\", \"AccessKeyId\": \"A\", "
       "\"SecretAccessKey\": \"S\"}", PM_S3_FORM_PROCESS, "Version"},
      {"{\"Version\": 1, \"AccessKeyId\": \"A\"}", PM_S3_FORM_PROCESS,
       "SecretAccessKey"},
      {"{\"Version\": 1, \"AccessKeyId\": \"\", \"SecretAccessKey\": \"S\"}",
       PM_S3_FORM_PROCESS, "AccessKeyId"},
      {"{\"Version\": 1, \"AccessKeyId\": 5, \"SecretAccessKey\": \"S\"}",
       PM_S3_FORM_PROCESS, "AccessKeyId"},
      {"{\"Version\": 1, \"AccessKeyId\": \"A\", \"SecretAccessKey\": \"S\", "
       "\"Expiration\": \"tomorrow\"}", PM_S3_FORM_PROCESS, "Expiration"},
      {"{\"Code\": \"Failure\", \"AccessKeyId\": \"A\", "
       "\"SecretAccessKey\": \"S\", \"Expiration\": \"2026-11-27T10:00:00Z\"}",
       PM_S3_FORM_IMDS, "Success"},
      {"{\"Code\": \"Success\", \"AccessKeyId\": \"A\", "
       "\"SecretAccessKey\": \"S\"}", PM_S3_FORM_IMDS, "Expiration"},
      {"{\"Version\": 1, \"AccessKeyId\": \"A\", \"SecretAccessKey\": \"S\"",
       PM_S3_FORM_PROCESS, "JSON"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    pm_s3_keys k;
    int64_t exp;
    cr_assert_eq(parse(bad[i].text, bad[i].form, &k, &exp), PM_EPROTO,
                 "case %zu", i);
    cr_assert(strstr(pm__errmsg(), bad[i].why), "case %zu: %s", i,
              pm__errmsg());
    cr_assert_null(k.access_key, "case %zu", i);
    cr_assert_null(k.secret_key, "case %zu", i);
  }
  char big[300 + 100];
  snprintf(big, sizeof big,
           "{\"Version\": 1, \"AccessKeyId\": \"%0300d\", "
           "\"SecretAccessKey\": \"S\"}", 7);
  pm_s3_keys k;
  int64_t exp;
  cr_assert_eq(parse(big, false, &k, &exp), PM_EPROTO);
  cr_assert_null(k.access_key);
}

/* ---- a real credential_process ------------------------------------------- */

/* Expiration `seconds` from now, as ISO 8601. */
static void expiry_in(long seconds, char *out, size_t size) {
  time_t t = time(NULL) + seconds;
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A config whose credential_process counts its runs in dir/runs, prints
 * keys "AK<run>" expiring at `expiry` (none if NULL) for the first `good`
 * runs, then fails with exit status 3. */
static void process_config(pm_s3_config *cfg, const char *expiry, int good) {
  char script[512], cmd[1024];
  snprintf(script, sizeof script, "%s/creds.sh", dir);
  FILE *f = fopen(script, "w");
  cr_assert_not_null(f);
  fprintf(f,
          "echo run >> %s/runs\n"
          "n=$(wc -l < %s/runs)\n"
          "[ \"$n\" -le %d ] || { echo 'no more keys' >&2; exit 3; }\n"
          "printf '{\"Version\": 1, \"AccessKeyId\": \"AK%%s\", "
          "\"SecretAccessKey\": \"SK\"%s%s%s}' \"$n\"\n",
          dir, dir, good, expiry ? ", \"Expiration\": \"" : "",
          expiry ? expiry : "", expiry ? "\"" : "");
  fclose(f);
  snprintf(cmd, sizeof cmd, "sh %s", script);
  *cfg = (pm_s3_config){.cred_kind = PM_S3_CREDS_PROCESS};
  cr_assert_eq(pm__s3_config_set(&cfg->cred_process, cmd), 0);
  cr_assert_eq(pm__s3_config_set(&cfg->cred_source, "credential_process"), 0);
  cr_assert_eq(pm__s3_fetched_new(cfg), 0);
}

static int runs(void) {
  char path[300], line[16];
  snprintf(path, sizeof path, "%s/runs", dir);
  FILE *f = fopen(path, "r");
  int n = 0;
  while (f && fgets(line, sizeof line, f))
    n++;
  if (f)
    fclose(f);
  return n;
}

static void expect_key(pm_s3_config *cfg, const char *want) {
  pm_s3_keys k;
  cr_assert_eq(pm__s3_keys_get(cfg, &k), 0, "%s", pm__errmsg());
  cr_assert_str_eq(k.access_key, want);
  cr_assert_str_eq(k.secret_key, "SK");
  pm__s3_keys_free(&k);
}

Test(s3_creds, fetched_once_while_valid) {
  char expiry[64];
  expiry_in(3600, expiry, sizeof expiry);
  pm_s3_config cfg;
  process_config(&cfg, expiry, 5);
  cr_assert_eq(runs(), 0, "nothing runs before a request needs keys");
  expect_key(&cfg, "AK1");
  expect_key(&cfg, "AK1");
  expect_key(&cfg, "AK1");
  cr_assert_eq(runs(), 1);
  pm__s3_config_free(&cfg);
}

Test(s3_creds, fetched_again_near_expiry) {
  char expiry[64];
  expiry_in(120, expiry, sizeof expiry); /* inside the 5-minute margin */
  pm_s3_config cfg;
  process_config(&cfg, expiry, 5);
  expect_key(&cfg, "AK1");
  expect_key(&cfg, "AK2");
  cr_assert_eq(runs(), 2);
  pm__s3_config_free(&cfg);
}

Test(s3_creds, old_keys_kept_while_a_refetch_fails_before_expiry) {
  char expiry[64];
  expiry_in(120, expiry, sizeof expiry);
  pm_s3_config cfg;
  process_config(&cfg, expiry, 1);
  expect_key(&cfg, "AK1");
  expect_key(&cfg, "AK1"); /* the second run failed: still valid */
  cr_assert_eq(runs(), 2);
  pm__s3_config_free(&cfg);
}

Test(s3_creds, expired_keys_and_a_failing_process_are_eacces) {
  char expiry[64];
  expiry_in(-60, expiry, sizeof expiry);
  pm_s3_config cfg;
  process_config(&cfg, expiry, 1);
  expect_key(&cfg, "AK1"); /* what it printed is used once */
  pm_s3_keys k;
  cr_assert_eq(pm__s3_keys_get(&cfg, &k), PM_EACCES);
  cr_assert(strstr(pm__errmsg(), "credential_process"), "%s", pm__errmsg());
  cr_assert(strstr(pm__errmsg(), "exit status 3"), "%s", pm__errmsg());
  cr_assert_null(k.access_key);
  pm__s3_config_free(&cfg);
}

Test(s3_creds, a_process_printing_garbage_is_eacces) {
  pm_s3_config cfg = {.cred_kind = PM_S3_CREDS_PROCESS};
  cr_assert_eq(pm__s3_config_set(&cfg.cred_process, "echo hello"), 0);
  cr_assert_eq(pm__s3_config_set(&cfg.cred_source, "credential_process"), 0);
  cr_assert_eq(pm__s3_fetched_new(&cfg), 0);
  pm_s3_keys k;
  cr_assert_eq(pm__s3_keys_get(&cfg, &k), PM_EACCES);
  cr_assert(strstr(pm__errmsg(), "JSON"), "%s", pm__errmsg());
  pm__s3_config_free(&cfg);
}

