/*
 * membership/member.c - the member table of one core: members found by id
 * in an open-addressing hash table and kept in a probe-order array that is
 * shuffled once per round; the compact metadata blob each member carries;
 * and the precedence rule that decides which of two records about one id
 * is newer.
 */
#include <stdlib.h>
#include <string.h>

#include "membership/swim_impl.h"

/* ---- identity ------------------------------------------------------------ */

void pm__member_id_hex(const pm__member_id *id, char out[33]) {
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < PM_SWIM_ID_LEN; i++) {
    out[2 * i] = digits[id->bytes[i] >> 4];
    out[2 * i + 1] = digits[id->bytes[i] & 15];
  }
  out[32] = '\0';
}

bool pm__member_id_eq(const pm__member_id *a, const pm__member_id *b) {
  return memcmp(a->bytes, b->bytes, PM_SWIM_ID_LEN) == 0;
}

const char *pm__member_state_name(pm__member_state state) {
  switch (state) {
  case PM_MEMBER_ALIVE:
    return "alive";
  case PM_MEMBER_SUSPECT:
    return "suspect";
  case PM_MEMBER_DEAD:
    return "dead";
  case PM_MEMBER_LEFT:
    return "left";
  }
  return "unknown";
}

bool pm__member_precedes(uint64_t epoch_a, uint64_t inc_a, int state_a,
                         uint64_t epoch_b, uint64_t inc_b, int state_b) {
  if (epoch_a != epoch_b)
    return epoch_a < epoch_b;
  if (inc_a != inc_b)
    return inc_a < inc_b;
  return state_a < state_b;
}

/* ---- metadata blobs ------------------------------------------------------ */

pm__meta_blob *pm__meta_blob_new(const pm__update *u) {
  const char *addr = u->addr ? u->addr : "";
  const char *tcp = u->tcp_addr ? u->tcp_addr : "";
  const char *zone = u->zone ? u->zone : "";
  size_t addr_len = strnlen(addr, PM_SWIM_ADDR_MAX - 1);
  size_t tcp_len = strnlen(tcp, PM_SWIM_ADDR_MAX - 1);
  size_t zone_len = strnlen(zone, PM_SWIM_ZONE_MAX - 1);
  size_t fabric_len = PM_MIN(u->fabric_len, (size_t)PM_SWIM_FABRIC_MAX);
  size_t size = addr_len + tcp_len + zone_len + 3 + fabric_len;
  pm__meta_blob *b = malloc(sizeof *b + size);
  if (!b)
    return NULL;
  b->capacity = u->capacity;
  b->size = (uint16_t)size;
  b->fabric_len = (uint16_t)fabric_len;
  b->addr_len = (uint8_t)addr_len;
  b->tcp_len = (uint8_t)tcp_len;
  b->zone_len = (uint8_t)zone_len;
  char *p = b->data;
  memcpy(p, addr, addr_len);
  p[addr_len] = '\0';
  p += addr_len + 1;
  memcpy(p, tcp, tcp_len);
  p[tcp_len] = '\0';
  p += tcp_len + 1;
  memcpy(p, zone, zone_len);
  p[zone_len] = '\0';
  p += zone_len + 1;
  if (fabric_len)
    memcpy(p, u->fabric, fabric_len);
  return b;
}

static bool text_same(const char *stored, size_t stored_len, const char *s) {
  s = s ? s : "";
  return strncmp(stored, s, stored_len + 1) == 0;
}

bool pm__meta_blob_same(const pm__meta_blob *b, const pm__update *u) {
  if (b->capacity != u->capacity || b->fabric_len != u->fabric_len)
    return false;
  if (!text_same(pm__blob_addr(b), b->addr_len, u->addr) ||
      !text_same(pm__blob_tcp(b), b->tcp_len, u->tcp_addr) ||
      !text_same(pm__blob_zone(b), b->zone_len, u->zone))
    return false;
  return b->fabric_len == 0 ||
         memcmp(pm__blob_fabric(b), u->fabric, b->fabric_len) == 0;
}

/* ---- conversions --------------------------------------------------------- */

void pm__member_free(pm__member *m) {
  if (!m)
    return;
  free(m->meta);
  free(m->suspicion);
  free(m);
}

void pm__member_to_info(const pm__member *m, pm__member_info *out) {
  memset(out, 0, sizeof *out);
  out->id = m->id;
  out->boot_epoch = m->boot_epoch;
  out->incarnation = m->incarnation;
  out->state = (pm__member_state)m->state;
  out->state_since_ns = m->state_change_ns;
  const pm__meta_blob *b = m->meta;
  memcpy(out->addr, pm__blob_addr(b), b->addr_len);
  memcpy(out->meta.tcp_addr, pm__blob_tcp(b), b->tcp_len);
  memcpy(out->meta.zone, pm__blob_zone(b), b->zone_len);
  memcpy(out->meta.fabric_addr, pm__blob_fabric(b), b->fabric_len);
  out->meta.fabric_len = b->fabric_len;
  out->meta.capacity = b->capacity;
}

void pm__member_to_update(const pm__member *m, const uint8_t *from,
                          pm__update *u) {
  const pm__meta_blob *b = m->meta;
  u->id = m->id.bytes;
  u->boot_epoch = m->boot_epoch;
  u->incarnation = m->incarnation;
  u->state = m->state;
  u->addr = pm__blob_addr(b);
  u->tcp_addr = pm__blob_tcp(b);
  u->zone = pm__blob_zone(b);
  u->fabric = pm__blob_fabric(b);
  u->fabric_len = b->fabric_len;
  u->capacity = b->capacity;
  u->from = from;
}

void pm__update_from_info(pm__update *u, const pm__member_info *info) {
  u->id = info->id.bytes;
  u->boot_epoch = info->boot_epoch;
  u->incarnation = info->incarnation;
  u->state = info->state;
  u->addr = info->addr;
  u->tcp_addr = info->meta.tcp_addr;
  u->zone = info->meta.zone;
  u->fabric = info->meta.fabric_addr;
  u->fabric_len = info->meta.fabric_len;
  u->capacity = info->meta.capacity;
  u->from = NULL;
}

/* ---- the hash table ------------------------------------------------------ */

/* Ids are random, so their first bytes are a good hash. */
static uint32_t id_hash(const uint8_t *id) {
  uint64_t h;
  memcpy(&h, id, sizeof h);
  return (uint32_t)(h ^ (h >> 32));
}

int pm__table_init(pm__member_table *t) {
  memset(t, 0, sizeof *t);
  t->slots = calloc(16, sizeof *t->slots);
  t->order = malloc(8 * sizeof *t->order);
  if (!t->slots || !t->order) {
    free(t->slots);
    free(t->order);
    memset(t, 0, sizeof *t);
    return PM_ENOMEM;
  }
  t->slot_mask = 15;
  t->order_cap = 8;
  return 0;
}

void pm__table_free(pm__member_table *t) {
  for (uint32_t i = 0; i < t->count; i++)
    pm__member_free(t->order[i]);
  free(t->order);
  free(t->slots);
  memset(t, 0, sizeof *t);
}

pm__member *pm__table_find(const pm__member_table *t, const uint8_t *id) {
  uint32_t i = id_hash(id) & t->slot_mask;
  for (;;) {
    pm__member *m = t->slots[i];
    if (!m || memcmp(m->id.bytes, id, PM_SWIM_ID_LEN) == 0)
      return m;
    i = (i + 1) & t->slot_mask;
  }
}

static void slot_put(pm__member **slots, uint32_t mask, pm__member *m) {
  uint32_t i = id_hash(m->id.bytes) & mask;
  while (slots[i])
    i = (i + 1) & mask;
  slots[i] = m;
}

/* Keep the load factor at most one half. */
static int slots_grow(pm__member_table *t) {
  uint32_t n = (t->slot_mask + 1) * 2;
  pm__member **slots = calloc(n, sizeof *slots);
  if (!slots)
    return PM_ENOMEM;
  for (uint32_t i = 0; i <= t->slot_mask; i++)
    if (t->slots[i])
      slot_put(slots, n - 1, t->slots[i]);
  free(t->slots);
  t->slots = slots;
  t->slot_mask = n - 1;
  return 0;
}

static int order_reserve(pm__member_table *t) {
  if (t->count < t->order_cap)
    return 0;
  uint32_t cap = t->order_cap * 2;
  pm__member **order = realloc(t->order, cap * sizeof *order);
  if (!order)
    return PM_ENOMEM;
  t->order = order;
  t->order_cap = cap;
  return 0;
}

int pm__table_insert(pm__member_table *t, pm__member *m, pm__rng *rng) {
  assert(!pm__table_find(t, m->id.bytes));
  if ((t->count + 1) * 2 > t->slot_mask + 1 && slots_grow(t) != 0)
    return PM_ENOMEM;
  if (order_reserve(t) != 0)
    return PM_ENOMEM;
  slot_put(t->slots, t->slot_mask, m);
  /* A newcomer takes a random place and the member there moves to the
   * end, so that it is probed within about one round. */
  uint32_t pos = pm__rng_below(rng, t->count + 1);
  if (pos != t->count) {
    t->order[t->count] = t->order[pos];
    t->order[t->count]->slot = t->count;
  }
  t->order[pos] = m;
  m->slot = pos;
  t->count++;
  return 0;
}

/* Backward-shift deletion keeps probe sequences unbroken. */
static void slot_delete(pm__member_table *t, const pm__member *m) {
  uint32_t mask = t->slot_mask;
  uint32_t i = id_hash(m->id.bytes) & mask;
  while (t->slots[i] != m)
    i = (i + 1) & mask;
  uint32_t j = i;
  for (;;) {
    t->slots[i] = NULL;
    for (;;) {
      j = (j + 1) & mask;
      if (!t->slots[j])
        return;
      uint32_t home = id_hash(t->slots[j]->id.bytes) & mask;
      bool movable =
          (i <= j) ? (home <= i || home > j) : (home <= i && home > j);
      if (movable)
        break;
    }
    t->slots[i] = t->slots[j];
    i = j;
  }
}

void pm__table_remove(pm__member_table *t, pm__member *m) {
  assert(m->slot < t->count && t->order[m->slot] == m);
  slot_delete(t, m);
  t->count--;
  t->order[m->slot] = t->order[t->count];
  t->order[m->slot]->slot = m->slot;
}

void pm__table_shuffle(pm__member_table *t, pm__rng *rng) {
  for (uint32_t i = t->count; i > 1; i--) {
    uint32_t j = pm__rng_below(rng, i);
    pm__member *tmp = t->order[i - 1];
    t->order[i - 1] = t->order[j];
    t->order[j] = tmp;
  }
  for (uint32_t i = 0; i < t->count; i++)
    t->order[i]->slot = i;
}
