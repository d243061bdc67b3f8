/*
 * tests/fuzz/fuzz_s3_ini.c - libFuzzer target for the reader of the AWS
 * shared credentials and config files (pm__ini_get in ufs/s3_config.c).
 * It must never crash or read past the buffer, and a value it returns
 * always fits. Seeds: corpus/s3_ini/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ufs/s3_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const lookups[][2] = {
      {"default", "aws_access_key_id"},
      {"default", "aws_secret_access_key"},
      {"profile work", "region"},
      {"p", "aws_session_token"},
  };
  char value[64];
  for (size_t i = 0; i < sizeof lookups / sizeof lookups[0]; i++) {
    bool seen = false;
    int rc = pm__ini_get((const char *)data, size, lookups[i][0], lookups[i][1],
                         value, sizeof value, &seen);
    if (rc == 1 && strlen(value) >= sizeof value)
      abort();
    if (rc != 0 && rc != 1 && rc != PM_ETOOBIG)
      abort();
  }
  return 0;
}
