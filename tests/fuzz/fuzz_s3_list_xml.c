/*
 * tests/fuzz/fuzz_s3_list_xml.c - libFuzzer target for the decoders of S3's
 * XML answers (ufs/s3_xml.c): a ListObjectsV2 page, an <Error> document
 * (and its <Region>; or STS's <ErrorResponse>), and STS's AssumeRole and
 * AssumeRoleWithWebIdentity answers, fed the same bytes. They must never crash, hang or read past
 * the buffer; they return 0 or PM_EPROTO. Seeds: corpus/s3_list_xml/.
 *
 *   cmake -S . -B build-fuzz -G Ninja -DPM_FUZZ=ON -DCMAKE_C_COMPILER=clang
 *   ninja -C build-fuzz fuzz_s3_list_xml
 *   build-fuzz/tests/fuzz_s3_list_xml tests/fuzz/corpus/s3_list_xml
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ufs/s3_int.h"

static int on_item(void *arg, const pm_s3_item *item) {
  size_t *total = arg;
  /* Touch every string, so ASan checks they are valid and terminated. */
  *total += strlen(item->key) + strlen(item->etag) + item->is_prefix;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pm_s3_list_page page;
  size_t total = 0;
  int rc = pm__s3_list_parse((const char *)data, size, on_item, &total, &page);
  if (rc != 0 && rc != PM_EPROTO)
    abort();
  if (rc == 0 && strlen(page.next_token) >= sizeof page.next_token)
    abort();
  char code[128], message[256];
  rc = pm__s3_error_parse((const char *)data, size, code, sizeof code, message,
                          sizeof message);
  if (rc != 0 && rc != PM_EPROTO)
    abort();
  char region[32];
  rc = pm__s3_error_region((const char *)data, size, region, sizeof region);
  if ((rc != 0 && rc != PM_EPROTO) || strlen(region) >= sizeof region)
    abort();
  pm_s3_keys keys = {0};
  int64_t expires;
  rc = pm__sts_parse_credentials((const char *)data, size, &keys, &expires);
  if ((rc != 0 && rc != PM_EPROTO) || (rc == 0) != (keys.access_key != NULL))
    abort(); /* keys on success only */
  pm__s3_keys_free(&keys);
  return 0;
}
