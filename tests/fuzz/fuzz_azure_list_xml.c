/*
 * tests/fuzz/fuzz_azure_list_xml.c - libFuzzer target for the decoder of
 * Azure's List Blobs answers (pm__azure_list_parse in ufs/azure_xml.c,
 * over the tokenizer of ufs/xml.c), including Encoded="true" names. It
 * must never crash, hang or read past the buffer; it returns 0 or
 * PM_EPROTO, and the marker it returns fits. Seeds:
 * corpus/azure_list_xml/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ufs/azure_int.h"

static int on_item(void *arg, const pm_azure_item *item) {
  size_t *total = arg;
  /* Touch every string, so ASan checks they are valid and terminated. */
  *total += strlen(item->name) + strlen(item->etag) + item->is_prefix;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pm_azure_list_page page;
  size_t total = 0;
  int rc =
      pm__azure_list_parse((const char *)data, size, on_item, &total, &page);
  if (rc != 0 && rc != PM_EPROTO)
    abort();
  if (rc == 0 && strlen(page.next_marker) >= sizeof page.next_marker)
    abort();
  return 0;
}
