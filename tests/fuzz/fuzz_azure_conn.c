/*
 * tests/fuzz/fuzz_azure_conn.c - libFuzzer target for the Azure
 * connection-string parser (pm__azure_config_parse in
 * ufs/azure_config.c) and the az:// / abfs:// URI parser, fed the same
 * bytes (up to the first NUL). Neither may crash; the parser returns 0,
 * PM_ECONFIG or PM_ENOMEM, the URI parser 0 or PM_EBADURI, and what they
 * fill in stays within its buffers. Seeds: corpus/azure_conn/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ufs/azure_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text)
    return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  pm_azure_config cfg = {0};
  int rc = pm__azure_config_parse(&cfg, text);
  if (rc != 0 && rc != PM_ECONFIG && rc != PM_ENOMEM)
    abort();
  pm__azure_config_free(&cfg);
  pm_azure_path path;
  rc = pm__azure_uri_parse(text, &path);
  if (rc != 0 && rc != PM_EBADURI)
    abort();
  if (rc == 0 &&
      (strlen(path.container) >= sizeof path.container || path.root_len > size))
    abort();
  free(text);
  return 0;
}
