/*
 * membership/swim_impl.h - the structures the files of membership/ share
 * among themselves and with their tests: the member table, the broadcast
 * queue, suspicions, the codec and sealing, and the core's own state.
 * Other folders use membership/swim_int.h only.
 */
#ifndef PM_SWIM_IMPL_H
#define PM_SWIM_IMPL_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core_int.h"
#include "membership/swim_int.h"
#include "swim.pb-c.h"

/* ---- deterministic randomness (xoshiro256**, seeded by splitmix64) ------- */

typedef struct pm__rng {
  uint64_t s[4];
} pm__rng;

static inline uint64_t pm__rng_splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static inline void pm__rng_seed(pm__rng *rng, uint64_t seed) {
  for (int i = 0; i < 4; i++)
    rng->s[i] = pm__rng_splitmix(&seed);
}

static inline uint64_t pm__rng_next(pm__rng *rng) {
  uint64_t *s = rng->s;
  uint64_t x = s[1] * 5;
  uint64_t result = ((x << 7) | (x >> 57)) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = (s[3] << 45) | (s[3] >> 19);
  return result;
}

/* Uniform in [0, n); n > 0. */
static inline uint32_t pm__rng_below(pm__rng *rng, uint32_t n) {
  return (uint32_t)(((pm__rng_next(rng) >> 32) * (uint64_t)n) >> 32);
}

/* Uniform in [0, 1). */
static inline double pm__rng_unit(pm__rng *rng) {
  return (double)(pm__rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- gossip updates ------------------------------------------------------ */

/* One member record as it travels: borrowed pointers into a decoded packet
 * or into a member_info. Strings are NUL-terminated. */
typedef struct pm__update {
  const uint8_t *id; /* PM_SWIM_ID_LEN bytes */
  uint64_t boot_epoch;
  uint64_t incarnation;
  int state;
  const char *addr; /* may be "" for suspect/dead */
  const char *tcp_addr;
  const char *zone;
  const uint8_t *fabric;
  size_t fabric_len;
  uint64_t capacity;
  const uint8_t *from; /* accuser id, or NULL */
} pm__update;

void pm__update_from_info(pm__update *u, const pm__member_info *info);

/* ---- the member table (membership/member.c) ------------------------------ */

/* Addresses, zone and fabric address of one member, in one allocation:
 * data holds addr NUL tcp_addr NUL zone NUL, then the fabric bytes. */
typedef struct pm__meta_blob {
  uint64_t capacity;
  uint16_t size; /* bytes of data */
  uint16_t fabric_len;
  uint8_t addr_len, tcp_len, zone_len;
  char data[];
} pm__meta_blob;

pm__meta_blob *pm__meta_blob_new(const pm__update *u);
bool pm__meta_blob_same(const pm__meta_blob *blob, const pm__update *u);
static inline const char *pm__blob_addr(const pm__meta_blob *b) {
  return b->data;
}
static inline const char *pm__blob_tcp(const pm__meta_blob *b) {
  return b->data + b->addr_len + 1;
}
static inline const char *pm__blob_zone(const pm__meta_blob *b) {
  return b->data + b->addr_len + b->tcp_len + 2;
}
static inline const uint8_t *pm__blob_fabric(const pm__meta_blob *b) {
  return (const uint8_t *)b->data + b->addr_len + b->tcp_len + b->zone_len + 3;
}

struct pm__suspicion;
struct pm__bcast;

typedef struct pm__member {
  pm__member_id id;
  uint64_t boot_epoch;
  uint64_t incarnation;
  uint64_t state_change_ns;
  pm__meta_blob *meta;
  struct pm__suspicion *suspicion; /* set while Suspect */
  struct pm__bcast *bcast;         /* its pending broadcast, if any */
  uint32_t slot;                   /* index in the table's order array */
  uint8_t state;
} pm__member;

/* Members by id (open addressing) and in probe order (an array that is
 * shuffled once per probe round). */
typedef struct pm__member_table {
  pm__member **order;
  uint32_t count, order_cap;
  pm__member **slots;
  uint32_t slot_mask;
} pm__member_table;

int pm__table_init(pm__member_table *t);
/* Frees the table and every member in it. */
void pm__table_free(pm__member_table *t);
pm__member *pm__table_find(const pm__member_table *t, const uint8_t *id);
/* Insert m at a random place in the probe order. PM_ENOMEM. */
int pm__table_insert(pm__member_table *t, pm__member *m, pm__rng *rng);
/* Remove m (not freed). */
void pm__table_remove(pm__member_table *t, pm__member *m);
void pm__table_shuffle(pm__member_table *t, pm__rng *rng);
void pm__member_free(pm__member *m);
void pm__member_to_info(const pm__member *m, pm__member_info *out);
/* An update describing m as it is now (pointers into m). */
void pm__member_to_update(const pm__member *m, const uint8_t *from,
                          pm__update *u);

/* ---- suspicion (membership/suspicion.c) ---------------------------------- */

#define PM_SUSPICION_CONFIRM_MAX 8

typedef struct pm__suspicion {
  uint64_t start_ns, deadline_ns, min_ns, max_ns;
  uint32_t k;     /* confirmations expected */
  uint32_t n;     /* independent confirmations so far */
  uint32_t index; /* in the core's list of suspects */
  pm__member_id confirmers[PM_SUSPICION_CONFIRM_MAX + 1];
} pm__suspicion;

/* A suspicion raised at now by from (not a confirmation itself). */
pm__suspicion *pm__suspicion_new(uint64_t now, uint32_t k, uint64_t min_ns,
                                 uint64_t max_ns, const uint8_t *from);
/* Count from as a confirmation if it is new; the deadline shrinks. Returns
 * whether it was new. */
bool pm__suspicion_confirm(pm__suspicion *s, const uint8_t *from);
/* The least suspicion timeout for n members: mult * max(1, log10(n)) *
 * probe interval. */
uint64_t pm__suspicion_min_ns(const pm__swim_config *cfg, uint32_t n);
/* How often one update is sent: mult * ceil(log10(n + 1)). */
uint32_t pm__retransmit_limit(uint32_t mult, uint32_t n);

/* ---- the broadcast queue (membership/broadcast.c) ------------------------ */

#define PM_BQ_BUCKETS 64

typedef struct pm__bcast {
  struct pm__bcast *prev, *next;
  struct pm__bcast **owner; /* cleared when the broadcast goes */
  uint32_t transmits;
  uint16_t length;
  uint8_t bytes[]; /* an encoded Member */
} pm__bcast;

typedef struct pm__bqueue {
  pm__bcast *head[PM_BQ_BUCKETS]; /* by transmits, newest first */
  uint32_t count;
} pm__bqueue;

void pm__bq_init(pm__bqueue *q);
void pm__bq_free(pm__bqueue *q);
/* Queue bytes, replacing *owner's pending broadcast; *owner then points at
 * the new one until it is sent limit times or removed. PM_ENOMEM. */
int pm__bq_push(pm__bqueue *q, pm__bcast **owner, const uint8_t *bytes,
                size_t length);
void pm__bq_remove(pm__bqueue *q, pm__bcast *b);
/* Append as many broadcasts as fit in budget bytes to out (framed as
 * Packet.updates), least sent and newest first; each counts as sent once,
 * and those sent limit times are dropped. Returns bytes appended. */
size_t pm__bq_fill(pm__bqueue *q, uint8_t *out, size_t budget, uint32_t limit,
                   uint32_t *taken);

/* ---- codec (membership/wire.c) ------------------------------------------- */

#define PM_WIRE_KIND_GOSSIP 0
#define PM_WIRE_KIND_PING 1
#define PM_WIRE_KIND_ACK 2
#define PM_WIRE_KIND_NACK 3
#define PM_WIRE_KIND_PING_REQ 4
#define PM_WIRE_KIND_PUSH_PULL 5
#define PM_WIRE_UPDATES_FIELD 15
#define PM_WIRE_PACKET_UPDATES_MAX 128 /* updates in one UDP packet */
#define PM_WIRE_STREAM_UPDATES_MAX 65536

/* Unpack payload (opened already) into *out, in a capped per-thread arena,
 * and validate every field. The result lives until pm__wire_release().
 * Errors: PM_EPROTO (malformed or invalid), PM_ETOOBIG. */
int pm__wire_decode(const uint8_t *payload, size_t length, bool stream,
                    Pmswim__Packet **out);
void pm__wire_release(void);
/* Validate one decoded member record. */
bool pm__wire_member_valid(const Pmswim__Member *m);
void pm__wire_member_to_update(const Pmswim__Member *m, pm__update *u);
/* Encode u as a Member into out; returns bytes or 0 if cap is too small. */
size_t pm__wire_encode_member(const pm__update *u, uint8_t *out, size_t cap);
/* Append an encoded Member to a packet as field 15; 0 if it does not fit. */
size_t pm__wire_append_update(uint8_t *out, size_t cap, const uint8_t *bytes,
                              size_t length);
/* What pm__wire_append_update needs for length bytes. */
size_t pm__wire_update_cost(size_t length);
/* Whether s is a sane address or label: printable ASCII, no spaces, at
 * most max - 1 bytes (empty allowed if allow_empty). */
bool pm__wire_text_ok(const char *s, size_t max, bool allow_empty);

/* ---- sealing (membership/seal.c) ----------------------------------------- */

/* Sealed:   [kind][sender id 16][nonce 24][ciphertext][tag 16]
 * Unsealed: [kind][sender id 16][payload]   (simulator only) */
#define PM_SEAL_NONCE_LEN 24
#define PM_SEAL_TAG_LEN 16
#define PM_SEAL_PREFIX (1 + PM_SWIM_ID_LEN + PM_SEAL_NONCE_LEN)
#define PM_PLAIN_PREFIX (1 + PM_SWIM_ID_LEN)

/* Bytes before the payload and after it. */
size_t pm__seal_prefix(const pm__swim_keyring *ring);
size_t pm__seal_suffix(const pm__swim_keyring *ring);
/* buf holds prefix bytes of room, payload_len bytes of payload and suffix
 * bytes of room; fill in the header and seal in place. Returns the total
 * length. */
size_t pm__seal(const pm__swim_keyring *ring, bool stream,
                const pm__member_id *sender, uint8_t *buf, size_t payload_len);
/* Open in (length bytes) into out (room for length bytes). Sets *payload
 * (inside out) and *payload_len and *sender. Errors: PM_EPROTO (too short,
 * wrong kind), PM_EAUTH (failed authentication). */
int pm__open(const pm__swim_keyring *ring, bool stream, const uint8_t *in,
             size_t length, uint8_t *out, const uint8_t **payload,
             size_t *payload_len, pm__member_id *sender);

/* ---- the core (membership/swim.c, state.c, probe.c, gossip.c) ------------ */

typedef struct pm__probe {
  bool active, acked, indirect_sent;
  uint32_t seq;
  pm__member_id target;
  uint64_t target_epoch;
  uint64_t timeout_at, end_at;
  uint32_t expected_nacks, nacks;
} pm__probe;

typedef struct pm__relay {
  uint32_t local_seq, orig_seq;
  bool want_nack;
  bool bare; /* answer the requester without gossip (see swim.c) */
  uint64_t deadline;
  char addr[PM_SWIM_ADDR_MAX];
} pm__relay;

#define PM_RELAY_MAX 64

/* A member forgotten after its tombstone: the last life and incarnation
 * it was known by. Records that are not newer are news of that past (a
 * replayed packet, a member that still gossips it) and do not bring it
 * back. */
#define PM_SWIM_GRAVES 1024u
typedef struct pm__grave {
  uint8_t id[PM_SWIM_ID_LEN];
  uint64_t boot_epoch;
  uint64_t incarnation;
} pm__grave;

struct pm__swim {
  pm__swim_config cfg;
  pm__member *self;
  pm__member_table table;
  pm__bqueue bq;
  pm__rng rng;
  uint32_t counts[4]; /* members by state, self included */
  pm__swim_stats stats;
  int awareness;
  pm__probe probe;
  uint32_t probe_index;
  uint32_t next_seq;
  uint64_t next_probe_at, next_gossip_at, next_push_pull_at;
  uint64_t next_reconnect_at, next_reap_at, next_join_at;
  uint64_t join_backoff;
  pm__relay relays[PM_RELAY_MAX];
  uint32_t relay_count;
  pm__member **suspects;
  uint32_t suspect_count, suspect_cap;
  pm__grave *graves; /* PM_SWIM_GRAVES, a ring; NULL until the first */
  uint32_t grave_next, grave_count;
  uint64_t suspect_deadline; /* earliest of theirs, valid unless dirty */
  bool suspect_dirty;
  char **seeds;
  size_t seed_count;
  bool joining, joined, leaving;
  uint8_t packet[PM_SWIM_PACKET_MAX];
};

/* swim.c: sending and events. */
/* Build a packet of hdr, then first (an extra update, may be NULL), then
 * what the broadcast queue offers; seal and send to addr. If gossip_only
 * and nothing was added, nothing is sent. */
void pm__core_send(pm__swim *core, const char *addr, const Pmswim__Packet *hdr,
                   const pm__update *first, bool gossip_only);
/* An answer: as pm__core_send, or with `bare` the header alone, sealed
 * (no update, no gossip: see answer_bare in swim.c). */
void pm__core_answer(pm__swim *core, const char *addr,
                     const Pmswim__Packet *hdr, const pm__update *first,
                     bool bare);
void pm__core_event(pm__swim *core, pm__swim_event_kind kind,
                    const pm__member *m);
uint32_t pm__core_live_count(const pm__swim *core);
uint32_t pm__core_retransmit_limit(const pm__swim *core);
uint64_t pm__core_scale(const pm__swim *core, uint64_t ns);

/* state.c: applying what others say. */
void pm__state_alive(pm__swim *core, uint64_t now, const pm__update *u,
                     bool quiet);
void pm__state_suspect(pm__swim *core, uint64_t now, const pm__update *u);
void pm__state_dead(pm__swim *core, uint64_t now, const pm__update *u);
/* Apply a gossiped update according to its state. */
void pm__state_apply(pm__swim *core, uint64_t now, const pm__update *u);
/* Apply a push-pull record (Dead and Suspect become suspicion by from). */
void pm__state_merge_remote(pm__swim *core, uint64_t now, const pm__update *u,
                            const uint8_t *from, bool quiet);
/* Queue m as it is now for gossip; 0 or PM_ENOMEM (logged). */
int pm__state_broadcast(pm__swim *core, pm__member *m, const uint8_t *from);
void pm__state_refute(pm__swim *core, uint64_t accused_inc);
/* Declare dead the suspects whose time is up. */
void pm__state_expire(pm__swim *core, uint64_t now);
/* The earliest deadline of the suspects (UINT64_MAX if none). */
uint64_t pm__state_suspect_deadline(pm__swim *core);
void pm__state_reap(pm__swim *core, uint64_t now);
void pm__state_set(pm__swim *core, pm__member *m, int state, uint64_t now);
void pm__awareness_apply(pm__swim *core, int delta);

/* probe.c: failure detection. */
void pm__probe_tick(pm__swim *core, uint64_t now);
/* bare: the answer to `from` carries no gossip (see swim.c). */
void pm__probe_on_ping(pm__swim *core, const char *from, bool bare,
                       const Pmswim__Packet *p);
void pm__probe_on_ping_req(pm__swim *core, uint64_t now, const char *from,
                           bool bare, const Pmswim__Packet *p);
void pm__probe_on_ack(pm__swim *core, const Pmswim__Packet *p);
void pm__probe_on_nack(pm__swim *core, const Pmswim__Packet *p);
uint64_t pm__probe_deadline(const pm__swim *core);

/* gossip.c: dissemination, push-pull, join, reconnect. */
void pm__gossip_tick(pm__swim *core, uint64_t now);
void pm__gossip_push_pull(pm__swim *core, const char *addr, bool join,
                          bool want_reply);
void pm__gossip_on_push_pull(pm__swim *core, uint64_t now,
                             const pm__member_id *sender,
                             const Pmswim__Packet *p);
uint64_t pm__gossip_deadline(const pm__swim *core);

#endif /* PM_SWIM_IMPL_H */
