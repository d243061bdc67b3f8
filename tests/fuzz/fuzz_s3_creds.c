/*
 * tests/fuzz/fuzz_s3_creds.c - libFuzzer target for the decoder of S3
 * credentials as the EC2 metadata service answers them and as a
 * credential_process prints them (pm__s3_parse_creds in ufs/s3_creds.c,
 * over jansson), and of the OAuth token answers of GCE's and Azure's
 * metadata services (pm__oauth_token_parse in ufs/metadata.c). It must never crash or read past the buffer; it
 * returns 0 (with the keys or token set) or PM_EPROTO, and hands nothing
 * out on failure. The first byte picks the format.
 * Seeds: corpus/s3_creds/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ufs/s3_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  pm_s3_keys keys = {0};
  int64_t expires;
  if (data[0] % 3 == 2) { /* a GCE or Azure metadata server's token */
    int rc = pm__oauth_token_parse((const char *)data + 1, size - 1,
                                   &keys.bearer, &expires);
    if ((rc != 0 && rc != PM_EPROTO) || (rc == 0) != (keys.bearer != NULL) ||
        (rc == 0 && (expires <= 0 || !*keys.bearer)))
      abort();
    pm__s3_keys_free(&keys);
    return 0;
  }
  int rc = pm__s3_parse_creds((const char *)data + 1, size - 1, data[0] & 1,
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
