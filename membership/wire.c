/*
 * membership/wire.c - the protobuf-c codec of gossip packets and push-pull
 * frames. Decoding never trusts the input: the caller checks the size cap
 * first, protobuf-c unpacks into a per-thread bump arena whose capacity
 * bounds what a hostile packet can make us allocate (256 KiB for a UDP
 * packet, 16 MiB for a TCP frame), and every field is then validated
 * (lengths of ids, addresses and labels, counts of updates, kinds and
 * states) before the core sees it. Encoding packs one Member per gossip
 * update, which the broadcast queue appends to a packet as field 15.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "membership/swim_impl.h"

#define PACKET_ARENA_CAP (256u << 10)
#define STREAM_ARENA_CAP (16u << 20)
#define CHUNK_MIN (16u << 10)
#define ALIGN 16u

/* ---- the arena ----------------------------------------------------------- */

typedef struct chunk {
  struct chunk *next;
  size_t size, used;
  _Alignas(16) unsigned char data[];
} chunk;

typedef struct arena {
  chunk *head;
  size_t total, cap;
  ProtobufCAllocator allocator;
} arena;

static pthread_key_t arena_key;
static pthread_once_t arena_once = PTHREAD_ONCE_INIT;

static void arena_free_chunks(chunk *c) {
  while (c) {
    chunk *next = c->next;
    free(c);
    c = next;
  }
}

static void arena_destroy(void *p) {
  arena *a = p;
  arena_free_chunks(a->head);
  free(a);
}

static void arena_key_make(void) {
  pthread_key_create(&arena_key, arena_destroy);
}

static void *arena_alloc(void *data, size_t size) {
  arena *a = data;
  size = (size + ALIGN - 1) & ~(size_t)(ALIGN - 1);
  chunk *c = a->head;
  if (c && c->size - c->used >= size) {
    void *p = c->data + c->used;
    c->used += size;
    return p;
  }
  size_t want = PM_MAX(size, c ? c->size * 2 : (size_t)CHUNK_MIN);
  if (a->total + want > a->cap)
    want = size;
  if (a->total + want > a->cap)
    return NULL;
  chunk *n = malloc(sizeof *n + want);
  if (!n)
    return NULL;
  n->size = want;
  n->used = size;
  n->next = c;
  a->head = n;
  a->total += want;
  return n->data;
}

static void arena_free(void *data, void *p) {
  (void)data;
  (void)p; /* everything goes at once in pm__wire_release */
}

static arena *arena_get(void) {
  pthread_once(&arena_once, arena_key_make);
  arena *a = pthread_getspecific(arena_key);
  if (a)
    return a;
  a = calloc(1, sizeof *a);
  if (!a)
    return NULL;
  a->allocator.alloc = arena_alloc;
  a->allocator.free = arena_free;
  a->allocator.allocator_data = a;
  if (pthread_setspecific(arena_key, a) != 0) {
    free(a);
    return NULL;
  }
  return a;
}

/* Keep one modest chunk for the next packet; give the rest back. */
void pm__wire_release(void) {
  arena *a = pthread_getspecific(arena_key);
  if (!a || !a->head)
    return;
  chunk *keep = a->head;
  while (keep && keep->size > 4 * CHUNK_MIN)
    keep = keep->next;
  for (chunk *c = a->head; c && c != keep;) {
    chunk *next = c->next;
    free(c);
    c = next;
  }
  if (keep) {
    arena_free_chunks(keep->next);
    keep->next = NULL;
    keep->used = 0;
  }
  a->head = keep;
  a->total = keep ? keep->size : 0;
}

/* ---- validation ---------------------------------------------------------- */

bool pm__wire_text_ok(const char *s, size_t max, bool allow_empty) {
  if (!s)
    return false;
  size_t n = 0;
  for (; s[n]; n++) {
    unsigned char ch = (unsigned char)s[n];
    if (n + 1 >= max || ch <= 0x20 || ch >= 0x7f)
      return false;
  }
  return n > 0 || allow_empty;
}

bool pm__wire_member_valid(const Pmswim__Member *m) {
  if (!m || m->id.len != PM_SWIM_ID_LEN || m->state > PM_MEMBER_LEFT)
    return false;
  if (m->from.len != 0 && m->from.len != PM_SWIM_ID_LEN)
    return false;
  if (m->fabric_addr.len > PM_SWIM_FABRIC_MAX)
    return false;
  bool alive = m->state == PM_MEMBER_ALIVE;
  return pm__wire_text_ok(m->addr, PM_SWIM_ADDR_MAX, !alive) &&
         pm__wire_text_ok(m->tcp_addr, PM_SWIM_ADDR_MAX, true) &&
         pm__wire_text_ok(m->zone, PM_SWIM_ZONE_MAX, true);
}

static bool kind_valid(const Pmswim__Packet *p, bool stream) {
  switch (p->kind) {
  case PM_WIRE_KIND_GOSSIP:
  case PM_WIRE_KIND_ACK:
  case PM_WIRE_KIND_NACK:
    return !stream;
  case PM_WIRE_KIND_PING:
    return !stream && p->target_id.len == PM_SWIM_ID_LEN;
  case PM_WIRE_KIND_PING_REQ:
    return !stream && p->target_id.len == PM_SWIM_ID_LEN &&
           pm__wire_text_ok(p->target_addr, PM_SWIM_ADDR_MAX, false);
  case PM_WIRE_KIND_PUSH_PULL:
    return stream &&
           pm__wire_text_ok(p->sender_addr, PM_SWIM_ADDR_MAX, !p->want_reply);
  default:
    return false;
  }
}

static bool packet_valid(const Pmswim__Packet *p, bool stream) {
  size_t max = stream ? PM_WIRE_STREAM_UPDATES_MAX : PM_WIRE_PACKET_UPDATES_MAX;
  if (!kind_valid(p, stream) || p->n_updates > max)
    return false;
  for (size_t i = 0; i < p->n_updates; i++)
    if (!pm__wire_member_valid(p->updates[i]))
      return false;
  return true;
}

int pm__wire_decode(const uint8_t *payload, size_t length, bool stream,
                    Pmswim__Packet **out) {
  size_t max = stream ? PM_SWIM_STREAM_MAX : PM_SWIM_PACKET_MAX;
  if (length > max)
    return PM_ETOOBIG;
  arena *a = arena_get();
  if (!a)
    return PM_ENOMEM;
  a->cap = stream ? STREAM_ARENA_CAP : PACKET_ARENA_CAP;
  Pmswim__Packet *p = pmswim__packet__unpack(&a->allocator, length, payload);
  if (!p || !packet_valid(p, stream)) {
    pm__wire_release();
    return PM_EPROTO;
  }
  *out = p;
  return 0;
}

void pm__wire_member_to_update(const Pmswim__Member *m, pm__update *u) {
  u->id = m->id.data;
  u->boot_epoch = m->boot_epoch;
  u->incarnation = m->incarnation;
  u->state = (int)m->state;
  u->addr = m->addr;
  u->tcp_addr = m->tcp_addr;
  u->zone = m->zone;
  u->fabric = m->fabric_addr.data;
  u->fabric_len = m->fabric_addr.len;
  u->capacity = m->capacity;
  u->from = m->from.len ? m->from.data : NULL;
}

/* ---- encoding ------------------------------------------------------------ */

size_t pm__wire_encode_member(const pm__update *u, uint8_t *out, size_t cap) {
  Pmswim__Member m = PMSWIM__MEMBER__INIT;
  m.id.data = (uint8_t *)u->id;
  m.id.len = PM_SWIM_ID_LEN;
  m.boot_epoch = u->boot_epoch;
  m.incarnation = u->incarnation;
  m.state = (uint32_t)u->state;
  if (u->state == PM_MEMBER_ALIVE) {
    m.addr = (char *)(u->addr ? u->addr : "");
    m.tcp_addr = (char *)(u->tcp_addr ? u->tcp_addr : "");
    m.zone = (char *)(u->zone ? u->zone : "");
    m.fabric_addr.data = (uint8_t *)u->fabric;
    m.fabric_addr.len = u->fabric_len;
    m.capacity = u->capacity;
  }
  if (u->from) {
    m.from.data = (uint8_t *)u->from;
    m.from.len = PM_SWIM_ID_LEN;
  }
  size_t need = pmswim__member__get_packed_size(&m);
  if (need > cap)
    return 0;
  return pmswim__member__pack(&m, out);
}

static size_t varint_len(size_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

size_t pm__wire_update_cost(size_t length) {
  return 1 + varint_len(length) + length;
}

size_t pm__wire_append_update(uint8_t *out, size_t cap, const uint8_t *bytes,
                              size_t length) {
  size_t need = pm__wire_update_cost(length);
  if (need > cap)
    return 0;
  size_t n = 0;
  out[n++] = (PM_WIRE_UPDATES_FIELD << 3) | 2; /* length-delimited */
  for (size_t v = length;; v >>= 7) {
    if (v < 0x80) {
      out[n++] = (uint8_t)v;
      break;
    }
    out[n++] = (uint8_t)(v | 0x80);
  }
  memcpy(out + n, bytes, length);
  return need;
}
