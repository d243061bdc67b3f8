/*
 * core/placement.c - weighted rendezvous hashing (see placement.h). The
 * hash of (page, member) is XXH3-64 of the page id seeded with the XXH3-64
 * of the member id, so that scoring one member costs one short hash.
 */
#include <math.h>
#include <string.h>
#include <xxhash.h>

#include "placement.h"

void pm__placement_prepare(pm_placement_member *members, size_t count) {
  for (size_t i = 0; i < count; i++)
    members[i].seed_ = XXH3_64bits(members[i].id, sizeof members[i].id);
}

double pm__placement_score(const pm_placement_member *member,
                           const pm_page_id *page) {
  uint64_t h = XXH3_64bits_withSeed(page->bytes, sizeof page->bytes,
                                    member->seed_);
  /* u in (0, 1): the top 53 bits, centred in their interval. */
  double u = ((double)(h >> 11) + 0.5) * (1.0 / 9007199254740992.0);
  return -(double)member->weight / log(u);
}

/* Insert candidate (index, score) into the sorted top list of length *n
 * (capacity want). */
static void keep_best(size_t *idx, double *score, size_t *n, size_t want,
                      size_t candidate, double s) {
  if (*n == want && s <= score[want - 1])
    return;
  size_t pos = *n < want ? (*n)++ : want - 1;
  while (pos > 0 && score[pos - 1] < s) {
    idx[pos] = idx[pos - 1];
    score[pos] = score[pos - 1];
    pos--;
  }
  idx[pos] = candidate;
  score[pos] = s;
}

#define RANK_MAX 64

size_t pm__placement_rank(const pm_placement_member *members, size_t count,
                          const pm_page_id *page, size_t *out, size_t want) {
  size_t idx[RANK_MAX];
  double score[RANK_MAX];
  size_t n = 0;
  want = PM_MIN(want, (size_t)RANK_MAX);
  if (want == 0)
    return 0;
  for (size_t i = 0; i < count; i++) {
    const pm_placement_member *m = &members[i];
    if (m->health == PM_PLACE_GONE || m->weight == 0)
      continue;
    keep_best(idx, score, &n, want, i, pm__placement_score(m, page));
  }
  /* Alive first, then Suspect, each in rank order. */
  size_t written = 0;
  for (int pass = 0; pass < 2; pass++)
    for (size_t i = 0; i < n; i++)
      if ((members[idx[i]].health == PM_PLACE_SUSPECT) == (pass == 1))
        out[written++] = idx[i];
  return written;
}
