/*
 * membership/broadcast.c - the queue of gossip updates waiting to be
 * piggybacked on outgoing packets (infection-style dissemination). Each
 * update is sent at most `limit` times (retransmit multiplier times
 * ceil(log10(n + 1))); the least sent and, among those, the newest go
 * first. A newer update about a member replaces the pending one, so the
 * queue holds at most one update per member. Updates are kept encoded, so
 * filling a packet is a copy.
 */
#include <stdlib.h>
#include <string.h>

#include "membership/swim_impl.h"

/* A packet with less room than this left cannot take any update. */
#define MIN_UPDATE_COST 32
/* Give up filling after this many updates in a row did not fit. */
#define MAX_SKIPS 8

void pm__bq_init(pm__bqueue *q) {
  memset(q, 0, sizeof *q);
}

void pm__bq_free(pm__bqueue *q) {
  for (int b = 0; b < PM_BQ_BUCKETS; b++) {
    while (q->head[b])
      pm__bq_remove(q, q->head[b]);
  }
}

static void link_head(pm__bqueue *q, pm__bcast *item) {
  uint32_t b = item->transmits;
  item->prev = NULL;
  item->next = q->head[b];
  if (item->next)
    item->next->prev = item;
  q->head[b] = item;
}

static void unlink_item(pm__bqueue *q, pm__bcast *item) {
  if (item->prev)
    item->prev->next = item->next;
  else
    q->head[item->transmits] = item->next;
  if (item->next)
    item->next->prev = item->prev;
  item->prev = item->next = NULL;
}

void pm__bq_remove(pm__bqueue *q, pm__bcast *item) {
  if (!item)
    return;
  unlink_item(q, item);
  if (item->owner)
    *item->owner = NULL;
  q->count--;
  free(item);
}

int pm__bq_push(pm__bqueue *q, pm__bcast **owner, const uint8_t *bytes,
                size_t length) {
  assert(length <= UINT16_MAX);
  pm__bcast *item = malloc(sizeof *item + length);
  if (!item)
    return PM_ENOMEM;
  if (owner && *owner)
    pm__bq_remove(q, *owner);
  item->owner = owner;
  item->transmits = 0;
  item->length = (uint16_t)length;
  memcpy(item->bytes, bytes, length);
  link_head(q, item);
  q->count++;
  if (owner)
    *owner = item;
  return 0;
}

/* After being sent once more: to the next bucket, or gone. */
static void sent_once(pm__bqueue *q, pm__bcast *item, uint32_t limit) {
  unlink_item(q, item);
  item->transmits++;
  if (item->transmits >= limit || item->transmits >= PM_BQ_BUCKETS) {
    if (item->owner)
      *item->owner = NULL;
    q->count--;
    free(item);
    return;
  }
  link_head(q, item);
}

size_t pm__bq_fill(pm__bqueue *q, uint8_t *out, size_t budget, uint32_t limit,
                   uint32_t *taken) {
  pm__bcast *picked[PM_WIRE_PACKET_UPDATES_MAX];
  uint32_t n = 0, skips = 0;
  size_t used = 0;
  for (int b = 0; b < PM_BQ_BUCKETS && q->count; b++) {
    for (pm__bcast *it = q->head[b]; it; it = it->next) {
      size_t wrote = pm__wire_append_update(out + used, budget - used,
                                            it->bytes, it->length);
      if (wrote == 0) {
        if (budget - used < MIN_UPDATE_COST || ++skips >= MAX_SKIPS)
          goto done;
        continue;
      }
      used += wrote;
      skips = 0;
      picked[n++] = it;
      if (n == PM_WIRE_PACKET_UPDATES_MAX)
        goto done;
    }
  }
done:
  for (uint32_t i = 0; i < n; i++)
    sent_once(q, picked[i], PM_MAX(limit, 1u));
  if (taken)
    *taken = n;
  return used;
}
