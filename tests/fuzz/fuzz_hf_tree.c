/*
 * tests/fuzz/fuzz_hf_tree.c - libFuzzer target for the decoder of the
 * Hugging Face Hub's tree API pages (pm__hf_tree_parse in ufs/hf_tree.c,
 * over jansson). It must never crash or read past the buffer; it returns
 * 0 or PM_EPROTO, and every entry it reports has a non-empty path.
 * Seeds: corpus/hf_tree/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ufs/hf_int.h"

static int on_entry(void *arg, const pm_hf_entry *entry) {
  size_t *total = arg;
  if (!entry->path[0])
    abort();
  *total += strlen(entry->path) + strlen(entry->version) + entry->is_dir;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t total = 0, items = 0;
  int rc =
      pm__hf_tree_parse((const char *)data, size, on_entry, &total, &items);
  if (rc != 0 && rc != PM_EPROTO)
    abort();
  return 0;
}
