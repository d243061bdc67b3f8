/*
 * ufs/s3_region.c - the region of each bucket, as S3 tells it. A request
 * signed for the wrong region is refused (301 PermanentRedirect, 307, or
 * 400 AuthorizationHeaderMalformed) with the bucket's region in the
 * x-amz-bucket-region header; the engine (ufs/s3.c) then learns it here
 * and sends the request again, signed for that region (and, on AWS's own
 * endpoints, to that region's host). One configured region then serves
 * buckets in any region, as the AWS SDKs do. At most PM_S3_REGIONS_MAX
 * buckets are remembered; past that the oldest is forgotten (it costs one
 * refused request to learn it again).
 */
#include <stdio.h>
#include <string.h>

#include "ufs/s3_int.h"

void pm__s3_regions_init(pm_s3_regions *r) {
  memset(r, 0, sizeof *r);
  pthread_mutex_init(&r->lock, NULL);
}

void pm__s3_regions_fini(pm_s3_regions *r) {
  pthread_mutex_destroy(&r->lock);
}

bool pm__s3_region_valid(const char *region, size_t length) {
  if (length == 0 || length >= PM_S3_REGION_MAX)
    return false;
  for (size_t i = 0; i < length; i++) {
    char c = region[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
      return false;
  }
  return true;
}

void pm__s3_region_of(pm_s3_regions *r, const char *bucket,
                      const char *fallback, char out[PM_S3_REGION_MAX]) {
  snprintf(out, PM_S3_REGION_MAX, "%s", fallback);
  pthread_mutex_lock(&r->lock);
  for (size_t i = 0; i < r->count; i++)
    if (!strcmp(r->bucket[i], bucket)) {
      memcpy(out, r->region[i], PM_S3_REGION_MAX);
      break;
    }
  pthread_mutex_unlock(&r->lock);
}

void pm__s3_region_learn(pm_s3_regions *r, const char *bucket,
                         const char *region) {
  if (strlen(bucket) > PM_BUCKET_MAX ||
      !pm__s3_region_valid(region, strlen(region)))
    return;
  pthread_mutex_lock(&r->lock);
  size_t i = 0;
  while (i < r->count && strcmp(r->bucket[i], bucket) != 0)
    i++;
  if (i == r->count) {
    if (r->count < PM_S3_REGIONS_MAX)
      r->count++;
    i = r->next;
    r->next = (r->next + 1) % PM_S3_REGIONS_MAX;
    snprintf(r->bucket[i], sizeof r->bucket[i], "%s", bucket);
  }
  snprintf(r->region[i], sizeof r->region[i], "%s", region);
  pthread_mutex_unlock(&r->lock);
}
