/*
 * tests/fuzz/fuzz_uri.c - libFuzzer target for the URI parsers that
 * another peer's request reaches (a page request names its object by URI:
 * core/mesh_serve.c hands it to the origin layer): pm__uri_normalize,
 * pm__uri_scheme, pm__s3_uri_split of an s3:// or gs:// URI, the Hub's
 * pm__hf_uri_parse and its URL builders, and pm__uri_decode / encode of
 * the raw bytes. A normalised URI must normalise to itself; a decoded
 * string without NUL must encode and decode back to itself.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_int.h"
#include "ufs/hf_int.h"
#include "ufs/ufs_int.h"
#include "ufs/ufs_priv.h"

#define INPUT_MAX 9000

static void split_and_build(const char *norm) {
  char scheme[16];
  if (pm__uri_scheme(norm, scheme, sizeof scheme) < 0)
    return;
  if (!strcmp(scheme, "s3") || !strcmp(scheme, "gs") ||
      !strcmp(scheme, "gcs")) {
    char bucket[PM_BUCKET_MAX + 1];
    const char *key;
    if (pm__s3_uri_split(norm, bucket, sizeof bucket, &key) == 0 &&
        (key < norm || key > norm + strlen(norm)))
      abort();
  } else if (!strcmp(scheme, "hf")) {
    pm_hf_path path;
    if (pm__hf_uri_parse(norm, &path) == 0) {
      pm_sbuf url;
      pm__sbuf_init(&url, 64 << 10);
      pm__hf_resolve_url("https://huggingface.co", &path, &url);
      pm__sbuf_reset(&url);
      pm__hf_tree_url("https://huggingface.co", &path, path.file, true,
                      &url);
      pm__sbuf_free(&url);
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > INPUT_MAX)
    return 0;
  char *text = malloc(size + 1);
  if (!text)
    return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  static char norm[PM_UFS_URI_MAX], again[PM_UFS_URI_MAX];
  if (strlen(text) == size && pm__uri_normalize(text, norm, sizeof norm) == 0) {
    if (pm__uri_normalize(norm, again, sizeof again) != 0 ||
        strcmp(norm, again) != 0)
      abort(); /* normalising is idempotent */
    split_and_build(norm);
  }
  pm_sbuf decoded, encoded, back;
  pm__sbuf_init(&decoded, 1 << 20);
  pm__sbuf_init(&encoded, 1 << 20);
  pm__sbuf_init(&back, 1 << 20);
  /* (a raw NUL decodes as itself, but "%00" is refused: no round trip) */
  if (pm__uri_decode(&decoded, text, size) == 0 && decoded.len > 0 &&
      !memchr(decoded.data, 0, decoded.len)) {
    if (pm__uri_encode(&encoded, decoded.data, decoded.len, true) != 0 ||
        pm__uri_decode(&back, encoded.data, encoded.len) != 0 ||
        back.len != decoded.len ||
        memcmp(back.data, decoded.data, back.len) != 0)
      abort(); /* encoding round-trips */
  }
  pm__sbuf_free(&decoded);
  pm__sbuf_free(&encoded);
  pm__sbuf_free(&back);
  free(text);
  return 0;
}
