/* Tests for ufs/metadata.c: the OAuth token answers of the GCE metadata
 * server and of Azure's IMDS (expires_in a number or a string), and
 * garbage, with nothing handed out. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ufs/curl_int.h"

TestSuite(metadata, .timeout = 10);

static int parse(const char *text, char **token, int64_t *in) {
  *token = NULL;
  return pm__oauth_token_parse(text, strlen(text), token, in);
}

Test(metadata, token_answers) {
  char *token;
  int64_t in;
  cr_assert_eq(parse("{\"access_token\": \"ya29.abc\", \"expires_in\": 3599, "
                     "\"token_type\": \"Bearer\"}", &token, &in), 0,
               "%s", pm__errmsg());
  cr_assert_str_eq(token, "ya29.abc");
  cr_assert_eq(in, 3599);
  free(token);
  cr_assert_eq(parse("{\"access_token\": \"eyJ0\", \"expires_in\": \"86399\", "
                     "\"expires_on\": \"1795800000\", \"resource\": "
                     "\"https://storage.azure.com/\"}", &token, &in), 0,
               "%s", pm__errmsg());
  cr_assert_str_eq(token, "eyJ0");
  cr_assert_eq(in, 86399);
  free(token);
  cr_assert_eq(parse("{\"access_token\": \"t\", \"expires_in\": 99999999}",
                     &token, &in), 0);
  cr_assert_eq(in, 24 * 3600, "capped at a day");
  free(token);
}

Test(metadata, garbage_is_refused_with_nothing_handed_out) {
  static const char *const bad[] = {
      "", "[]", "nope", "{\"access_token\": \"t\"}",
      "{\"access_token\": \"t\", \"expires_in\": 0}",
      "{\"access_token\": \"t\", \"expires_in\": -5}",
      "{\"access_token\": \"t\", \"expires_in\": \"60s\"}",
      "{\"access_token\": \"t\", \"expires_in\": \"\"}",
      "{\"access_token\": \"t\", \"expires_in\": 1.5}",
      "{\"access_token\": \"\", \"expires_in\": 60}",
      "{\"access_token\": \"a\\r\\nX-Evil: 1\", \"expires_in\": 60}",
      "{\"expires_in\": 60}", "{\"access_token\": 5, \"expires_in\": 60}",
      "{\"access_token\": \"t\", \"expires_in\": 60"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char *token;
    int64_t in;
    cr_assert_eq(parse(bad[i], &token, &in), PM_EPROTO, "case %zu", i);
    cr_assert_null(token, "case %zu", i);
  }
}

Test(metadata, oauth_errors_are_named_on_one_line) {
  char why[96];
  const char *refusal = "{\"error\": \"invalid_grant\", \"error_description\": "
                        "\"Token has been\\nexpired or revoked.\"}";
  pm__oauth_error(refusal, strlen(refusal), why, sizeof why);
  cr_assert_str_eq(why, ": invalid_grant: Token has been expired or revoked.");
  const char *bare = "{\"error\": \"unauthorized_client\"}";
  pm__oauth_error(bare, strlen(bare), why, sizeof why);
  cr_assert_str_eq(why, ": unauthorized_client");
  static const char *const not_errors[] = {
      "", "<html>502</html>", "{\"error\": 5}", "{\"error\": \"\"}",
      "[\"error\"]", "{\"error\": {\"code\": 400}}"};
  for (size_t i = 0; i < sizeof not_errors / sizeof not_errors[0]; i++) {
    pm__oauth_error(not_errors[i], strlen(not_errors[i]), why, sizeof why);
    cr_assert_str_eq(why, "", "%s", not_errors[i]);
  }
  char tiny[8];
  pm__oauth_error(refusal, strlen(refusal), tiny, sizeof tiny);
  cr_assert_str_eq(tiny, ": inval", "cut to the buffer");
}
