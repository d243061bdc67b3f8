/*
 * tests/fuzz/fuzz_s3_creds.c - libFuzzer target for the decoder of S3
 * credentials as the EC2 metadata service and the container endpoint
 * (ECS, EKS Pod Identity) answer them and as a credential_process prints
 * them (pm__s3_parse_creds in ufs/s3_creds.c,
 * over jansson), and of the OAuth token answers of GCE's and Azure's
 * metadata services (pm__oauth_token_parse in ufs/metadata.c) and of the
 * OAuth errors of token endpoints (pm__oauth_error). It must never crash
 * or read past the buffer; it returns 0 (with the keys or token set) or
 * PM_EPROTO, and hands nothing out on failure; an error is one printable
 * line within its buffer. The first byte picks the format (modulo 8: 3 an
 * OAuth error, 2 an OAuth token, 4 the container's keys, 5 the AWS SSO
 * portal's keys, 6 and 7 Google IAM's generateAccessToken answer with
 * status 200 and 403, else its low bit a credential_process's or IMDS's
 * keys; modulo 16, 8 is a GCS external account's subject token in JSON).
 * Seeds: corpus/s3_creds/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ufs/s3_int.h"
#include "ufs/curl_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  pm_s3_keys keys = {0};
  int64_t expires;
  if (data[0] % 8 == 3) { /* a token endpoint's refusal */
    char why[64];
    memset(why, 'x', sizeof why);
    pm__oauth_error((const char *)data + 1, size - 1, why, sizeof why - 8);
    size_t n = strnlen(why, sizeof why);
    if (n >= sizeof why - 8 || why[sizeof why - 1] != 'x')
      abort();
    for (size_t i = 0; i < n; i++)
      if ((unsigned char)why[i] < 0x20 || why[i] == 0x7f)
        abort();
    return 0;
  }
  if (data[0] % 8 == 2) { /* a GCE or Azure metadata server's token */
    int rc = pm__oauth_token_parse((const char *)data + 1, size - 1,
                                   &keys.bearer, &expires);
    if ((rc != 0 && rc != PM_EPROTO) || (rc == 0) != (keys.bearer != NULL) ||
        (rc == 0 && (expires <= 0 || !*keys.bearer)))
      abort();
    pm__s3_keys_free(&keys);
    return 0;
  }
  if (data[0] % 16 == 8) { /* a subject token's JSON (external_account) */
    pm_sbuf raw = {.data = (char *)data + 1, .len = size - 1}, out;
    pm__sbuf_init(&out, 32 * 1024);
    int rc = pm__gcs_subject_pick("access_token", &raw, &out);
    if ((rc != 0 && rc != PM_EACCES) || (rc == 0 && (!out.len ||
                                                     out.len > 32 * 1024)))
      abort();
    pm__sbuf_free(&out);
    return 0;
  }
  if (data[0] % 8 >= 6) { /* IAM's generateAccessToken */
    pm_sbuf body = {.data = (char *)data + 1, .len = size - 1};
    int rc = pm__gcs_iam_answer("http://iam", data[0] % 8 == 6 ? 200 : 403,
                                &body, &keys.bearer, &expires);
    if ((rc != 0 && rc != PM_EPROTO && rc != PM_EACCES) ||
        (rc == 0) != (keys.bearer != NULL) || (rc == 0 && !*keys.bearer))
      abort();
    if (rc) {
      const char *why = pm__errmsg();
      for (size_t i = 0; why[i]; i++)
        if ((unsigned char)why[i] < 0x20)
          abort(); /* one printable line */
    }
    pm__s3_keys_free(&keys);
    return 0;
  }
  pm_s3_creds_form form = data[0] % 8 == 4 ? PM_S3_FORM_CONTAINER
                          : data[0] & 1        ? PM_S3_FORM_IMDS
                                               : PM_S3_FORM_PROCESS;
  int rc = data[0] % 8 == 5 /* the AWS SSO portal's GetRoleCredentials */
               ? pm__s3_sso_parse((const char *)data + 1, size - 1, &keys,
                                  &expires)
               : pm__s3_parse_creds((const char *)data + 1, size - 1, form,
                                    &keys, &expires);
  if (rc != 0 && rc != PM_EPROTO)
    abort();
  if (rc == 0 && (!keys.access_key || !keys.secret_key ||
                  !*keys.access_key || !*keys.secret_key))
    abort();
  if (rc != 0 && keys.access_key)
    abort(); /* nothing is handed out on failure */
  pm__s3_keys_free(&keys);
  return 0;
}
