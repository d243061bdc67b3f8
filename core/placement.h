/*
 * core/placement.h - where a page lives: weighted rendezvous (HRW) hashing
 * over the members of the mesh. Every member gets a score for a page,
 * -weight / ln(u) with u in (0,1) from the 64-bit hash of (page id, member
 * id); the R highest scores are the page's replicas, in rank order. A
 * member's weight is its cache capacity. A join or leave moves only the
 * pages whose top R it enters or leaves: about R/N of them.
 */
#ifndef PM_CORE_PLACEMENT_H
#define PM_CORE_PLACEMENT_H

#include "core_int.h"

typedef enum pm_place_health {
  PM_PLACE_ALIVE = 0,
  PM_PLACE_SUSPECT = 1, /* placed as usual, but read last */
  PM_PLACE_GONE = 2,    /* dead or left: not placed */
} pm_place_health;

typedef struct pm_placement_member {
  uint8_t id[16];         /* the member's 128-bit id */
  uint64_t weight;        /* cache capacity; 0 = holds nothing */
  pm_place_health health;
  uint64_t seed_;         /* filled by pm__placement_prepare */
} pm_placement_member;

/* Precompute per-member hash seeds; call after filling ids. */
void pm__placement_prepare(pm_placement_member *members, size_t count);

/*
 * The `want` best members for a page, best first, as indexes into
 * members; Suspect members among them are moved behind the Alive ones
 * (keeping their order). Members that are GONE or have weight 0 are
 * skipped. Returns how many were written (fewer if fewer members).
 */
size_t pm__placement_rank(const pm_placement_member *members, size_t count,
                          const pm_page_id *page, size_t *out, size_t want);

/* The score of one member for one page (exposed for tests). */
double pm__placement_score(const pm_placement_member *member,
                           const pm_page_id *page);

#endif /* PM_CORE_PLACEMENT_H */
