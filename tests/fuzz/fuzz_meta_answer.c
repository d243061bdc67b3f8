/*
 * tests/fuzz/fuzz_meta_answer.c - libFuzzer target for the decoder of a
 * metadata answer from another peer (core/mesh_serve.c, pm__meta_decode):
 * network input. A decoded answer must re-encode and decode to the same
 * metadata.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/mesh.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pm_object_stat st, again;
  if (pm__meta_decode((const char *)data, size, &st) != 0)
    return 0;
  char text[512];
  ssize_t n = pm__meta_encode(&st, text, sizeof text);
  if (n < 0 || pm__meta_decode(text, (size_t)n, &again) != 0 ||
      again.size != st.size || again.mtime_ns != st.mtime_ns ||
      strcmp(again.version, st.version) != 0)
    abort();
  return 0;
}
