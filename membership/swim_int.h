/*
 * membership/swim_int.h - what membership offers the rest of pagemesh: who
 * is in the cluster and in which state, learnt by SWIM gossip with the
 * Lifeguard refinements. Three layers are offered here: the pure protocol
 * core (pm__swim: time and packets in, packets and events out, no sockets,
 * clocks or threads), the real driver that runs a core on a UDP socket and
 * a TCP listener in its own thread (pm__swim_driver), and a simulator that
 * runs many cores on virtual time (pm__sim). The cluster key reader lives
 * here too. Nothing here is public; bindings use include/pagemesh.h only.
 */
#ifndef PM_SWIM_INT_H
#define PM_SWIM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pagemesh.h"

/* ---- limits -------------------------------------------------------------- */

#define PM_SWIM_ID_LEN 16             /* bytes of a member id */
#define PM_SWIM_ADDR_MAX 64           /* "IP:PORT" strings, with the NUL */
#define PM_SWIM_ZONE_MAX 64           /* zone label, with the NUL */
#define PM_SWIM_FABRIC_MAX 256        /* opaque fabric address bytes */
#define PM_SWIM_CLUSTER_ID_MAX 64     /* cluster id string, with the NUL */
#define PM_SWIM_KEY_LEN 32            /* bytes of the cluster key */
#define PM_SWIM_PACKET_MAX 1400       /* bytes of a UDP packet, sealed */
#define PM_SWIM_STREAM_MAX (1u << 20) /* bytes of one TCP frame, sealed */

/* ---- identity ------------------------------------------------------------ */

/* A member's random 128-bit id. It may be kept across restarts (so that a
 * restarted node keeps its place in page placement); the boot epoch tells
 * the lives of one id apart. */
typedef struct pm__member_id {
  uint8_t bytes[PM_SWIM_ID_LEN];
} pm__member_id;

/* The order matters: at equal (boot epoch, incarnation) a later state wins
 * over an earlier one (see pm__member_precedes). */
typedef enum pm__member_state {
  PM_MEMBER_ALIVE = 0,
  PM_MEMBER_SUSPECT = 1,
  PM_MEMBER_DEAD = 2,
  PM_MEMBER_LEFT = 3, /* left gracefully */
} pm__member_state;

/* What a member says about itself besides its identity. */
typedef struct pm__member_meta {
  char tcp_addr[PM_SWIM_ADDR_MAX];         /* page transport, "IP:PORT" or "" */
  uint8_t fabric_addr[PM_SWIM_FABRIC_MAX]; /* opaque libfabric address */
  uint16_t fabric_len;
  uint64_t capacity;           /* cache bytes: placement weight */
  char zone[PM_SWIM_ZONE_MAX]; /* failure domain label or "" */
} pm__member_meta;

/* A member as seen by one core. */
typedef struct pm__member_info {
  pm__member_id id;
  uint64_t boot_epoch;  /* new for every start of the process */
  uint64_t incarnation; /* bumped by the member to refute or to update */
  pm__member_state state;
  uint64_t state_since_ns;     /* core time of the last state change */
  char addr[PM_SWIM_ADDR_MAX]; /* gossip address, "IP:PORT" */
  pm__member_meta meta;
} pm__member_info;

/* 32 lowercase hex characters and a NUL. */
void pm__member_id_hex(const pm__member_id *id, char out[33]);
bool pm__member_id_eq(const pm__member_id *a, const pm__member_id *b);
const char *pm__member_state_name(pm__member_state state);

/* Whether a record (epoch_a, inc_a, state_a) must be replaced by a record
 * (epoch_b, inc_b, state_b) about the same id. The precedence is: a higher
 * boot epoch wins (a restarted node is never shadowed by its own past),
 * then a higher incarnation, then the later state in the order
 * alive < suspect < dead < left. */
bool pm__member_precedes(uint64_t epoch_a, uint64_t inc_a, int state_a,
                         uint64_t epoch_b, uint64_t inc_b, int state_b);

/* ---- keys (membership/seal.c, membership/key.c) -------------------------- */

/* Keys derived from the 32-byte cluster key and bound to a cluster id: one
 * for UDP gossip packets, one for TCP frames. Held in sodium_malloc memory,
 * wiped on free. Read-only once made: a keyring may be shared by cores of
 * several threads. */
typedef struct pm__swim_keyring pm__swim_keyring;

/* Derive the keyring from key (PM_SWIM_KEY_LEN bytes; the caller keeps and
 * wipes its copy) and cluster_id (at most PM_SWIM_CLUSTER_ID_MAX - 1 bytes;
 * part of every packet's associated data). Errors: PM_EINVAL, PM_ENOMEM. */
int pm__swim_keyring_new(const uint8_t *key, const char *cluster_id,
                         pm__swim_keyring **out);
/* Wipe and free; accepts NULL. */
void pm__swim_keyring_free(pm__swim_keyring *ring);

/* Read a cluster key file: exactly 32 raw bytes, or 64 hex characters
 * (surrounding whitespace allowed). The file must not be readable or
 * writable by group or others. On success *key is PM_SWIM_KEY_LEN bytes of
 * sodium_malloc memory: free it with pm__cluster_key_free. Errors:
 * PM_EINVAL (NULL), PM_ENOENT, PM_EACCES (unreadable, or open to group or
 * others: the detail says which mode and how to fix it), PM_ECONFIG (wrong
 * length or not hex), PM_EIO, PM_ENOMEM. */
int pm__cluster_key_read(const char *path, uint8_t **key);
/* Parse 64 hex characters (whitespace around them allowed) into out. Returns
 * 0 or PM_ECONFIG. */
int pm__cluster_key_parse_hex(const char *text, size_t length,
                              uint8_t out[PM_SWIM_KEY_LEN]);
/* Wipe and free a key from pm__cluster_key_read; accepts NULL. */
void pm__cluster_key_free(uint8_t *key);

/* ---- the protocol core (membership/swim.c and neighbours) ---------------- */

/* One member's view of the cluster. A core is not thread-safe: one thread
 * at a time calls it (the driver holds a lock). Given the same seed, time
 * and packets, it makes the same choices and sends the same packets (only
 * the random nonces of sealed packets differ). */
typedef struct pm__swim pm__swim;

typedef enum pm__swim_event_kind {
  PM_SWIM_EV_JOIN = 0,   /* first seen Alive, back from Dead/Left, or a new
                            boot epoch of a known id */
  PM_SWIM_EV_UPDATE = 1, /* still or again Alive: refuted a suspicion, or
                            changed its metadata */
  PM_SWIM_EV_SUSPECT = 2,
  PM_SWIM_EV_DEAD = 3,
  PM_SWIM_EV_LEFT = 4,
  PM_SWIM_EV_REAP = 5, /* a Dead/Left record was forgotten */
} pm__swim_event_kind;

/* Called by the core for every change of another member (never about the
 * core's own member). The info is valid during the call only. */
typedef void (*pm__swim_event_fn)(void *arg, pm__swim_event_kind kind,
                                  const pm__member_info *member);

/* Called by the core to send bytes to addr: a UDP packet (is_stream false,
 * at most packet_max bytes) or one TCP frame (is_stream true, at most
 * stream_max bytes, to be sent with its length prefix on a new connection).
 * The bytes are sealed already and valid during the call only. Sending is
 * best effort: the core never learns of a failure. */
typedef void (*pm__swim_send_fn)(void *arg, const char *addr,
                                 const uint8_t *bytes, size_t length,
                                 bool is_stream);

typedef struct pm__swim_config {
  uint64_t probe_interval_ns;     /* 1 s */
  uint64_t probe_timeout_ns;      /* 500 ms: then ask indirect_checks others */
  uint32_t indirect_checks;       /* 3 */
  uint32_t suspicion_mult;        /* 4: min suspicion = mult * log10(n) *
                                     probe interval (log10 at least 1) */
  uint32_t suspicion_max_mult;    /* 6: max suspicion = this * min */
  uint64_t gossip_interval_ns;    /* 200 ms */
  uint32_t gossip_nodes;          /* 3 */
  uint64_t gossip_to_dead_ns;     /* 30 s: gossip to the newly dead too */
  uint32_t retransmit_mult;       /* 4: limit = mult * ceil(log10(n + 1)) */
  uint64_t push_pull_interval_ns; /* 30 s, scaled up past 32 members as in
                                     memberlist (x6 at 1000) */
  uint32_t awareness_max;         /* 8: probe timing scales up to 8x */
  uint64_t tombstone_ns;          /* 5 min: how long Dead/Left are kept */
  uint64_t reconnect_interval_ns; /* 30 s: push-pull with one Dead member
                                     or unanswered seed (heals partitions) */
  uint64_t join_retry_min_ns;     /* 1 s: first retry of the seeds */
  uint64_t join_retry_max_ns;     /* 30 s: backoff cap */
  uint32_t packet_max;            /* 1400: bytes of a sealed UDP packet */
  uint32_t stream_max;            /* 1 MiB: bytes of a sealed TCP frame */
  uint64_t rng_seed;              /* all protocol choices derive from it */
  /* Seals packets and frames. NULL only in the simulator and tests: then
   * packets are sent unsealed and sealed ones are refused. Not owned: it
   * must outlive the core. */
  const pm__swim_keyring *keyring;
  pm__swim_send_fn send_fn;
  void *send_arg;
  pm__swim_event_fn event_fn; /* may be NULL */
  void *event_arg;
} pm__swim_config;

/* Fill cfg with the LAN defaults above (no keyring, no callbacks, seed 0). */
void pm__swim_config_init(pm__swim_config *cfg);

/* The time after which every member has marked a crashed member Dead, for
 * a cluster of n members at cfg: 3 probe intervals to be probed and to
 * fail, the maximum suspicion timeout, and retransmit limit * gossip
 * interval to spread the news. Lifeguard usually does much better (the
 * suspicion shrinks with confirmations). */
uint64_t pm__swim_dead_bound_ns(const pm__swim_config *cfg, uint32_t n);
/* The suspicion timeout with c of k confirmations between min and max:
 * max(min, max - (max - min) * log(c + 1) / log(k + 1)); min if k is 0. */
uint64_t pm__swim_suspicion_timeout_ns(uint64_t min_ns, uint64_t max_ns,
                                       uint32_t c, uint32_t k);

/* Make a core for the member self (its id, boot epoch, address and
 * metadata; incarnation and state are ignored: it starts Alive at
 * incarnation 0). now is the core time (any monotonic ns). Strings and
 * bytes are copied. Errors: PM_EINVAL (NULL, no send_fn, bad address or
 * limits), PM_ENOMEM. */
int pm__swim_create(const pm__swim_config *cfg, const pm__member_info *self,
                    uint64_t now, pm__swim **out);
/* Free the core without a word to anyone; accepts NULL. */
void pm__swim_destroy(pm__swim *core);

/* Feed one received UDP packet (sealed) from addr. Packets that fail
 * authentication or decoding are counted and dropped. Returns 0, or
 * PM_ETOOBIG, PM_EAUTH, PM_EPROTO for a dropped packet. */
int pm__swim_handle_packet(pm__swim *core, uint64_t now, const char *from,
                           const uint8_t *bytes, size_t length);
/* Feed one received TCP frame (sealed, without its length prefix). */
int pm__swim_handle_stream(pm__swim *core, uint64_t now, const char *from,
                           const uint8_t *bytes, size_t length);
/* Run what is due at now; returns the next deadline (core time). Call it
 * again at that time, or earlier after handing the core a packet. */
uint64_t pm__swim_tick(pm__swim *core, uint64_t now);
/* The next deadline without running anything. */
uint64_t pm__swim_next_deadline(const pm__swim *core);

/* Join through seed addresses: push-pull with each at once, then retry
 * them with doubling backoff until one answers. Seeds are remembered and
 * tried again later if the cluster falls apart. Errors: PM_EINVAL,
 * PM_ENOMEM. */
int pm__swim_join(pm__swim *core, uint64_t now, const char *const *seeds,
                  size_t count);
/* Whether a seed (or anyone) has answered a push-pull yet. */
bool pm__swim_joined(const pm__swim *core);
/* Leave gracefully: announce Left and stop probing; keep ticking the core
 * until pm__swim_leave_done() (the news has been sent out) or a timeout. */
void pm__swim_leave(pm__swim *core, uint64_t now);
bool pm__swim_leave_done(const pm__swim *core);
/* Change this member's metadata: bumps the incarnation and gossips it.
 * Errors: PM_EINVAL. */
int pm__swim_update_meta(pm__swim *core, uint64_t now,
                         const pm__member_meta *meta);

/* A copy of the member table (this member included), allocated with
 * malloc: free(*out). Errors: PM_ENOMEM. */
int pm__swim_snapshot(const pm__swim *core, pm__member_info **out,
                      size_t *count);
/* One member by id; 0 or PM_ENOENT. */
int pm__swim_lookup(const pm__swim *core, const pm__member_id *id,
                    pm__member_info *out);
/* This member's own record. */
void pm__swim_self(const pm__swim *core, pm__member_info *out);
/* How many members are in the table in the given state. */
uint32_t pm__swim_count(const pm__swim *core, pm__member_state state);

typedef struct pm__swim_stats {
  uint64_t packets_in, packets_out, bytes_in, bytes_out;
  uint64_t streams_in, streams_out, stream_bytes_in, stream_bytes_out;
  uint64_t auth_failures;   /* packets or frames that failed to open */
  uint64_t decode_failures; /* oversize, malformed or invalid */
  uint64_t probes, probe_failures, indirect_probes, nacks_in;
  uint64_t suspicions, deaths_declared, refutations, push_pulls;
  uint32_t awareness; /* current local-health score, 0 = healthy */
} pm__swim_stats;

void pm__swim_get_stats(const pm__swim *core, pm__swim_stats *out);

/* Merge member records as a push-pull would (Alive as alive, Left as
 * left, Suspect and Dead as suspicion). With quiet set nothing is queued
 * for gossip: the simulator uses it to start from a settled cluster. */
void pm__swim_merge(pm__swim *core, uint64_t now, const pm__member_info *m,
                    size_t count, bool quiet);

/* ---- the UDP/TCP driver (membership/driver.c) ---------------------------- */

typedef struct pm__swim_driver pm__swim_driver;

typedef struct pm__swim_driver_config {
  const char *listen;       /* "IP:PORT" for UDP and TCP; port 0 picks
                               one (see pm__swim_driver_addr) */
  const char *advertise;    /* address told to others; NULL: listen
                               (which must not then be 0.0.0.0) */
  const char *const *seeds; /* "IP:PORT" of members to join through */
  size_t seed_count;
  const uint8_t *cluster_key;  /* PM_SWIM_KEY_LEN bytes; copied */
  const char *cluster_id;      /* e.g. "default" */
  const pm__member_id *id;     /* NULL: a random one */
  uint64_t boot_epoch;         /* of this start, higher than any earlier
                                  start's of the same id; 0: the wall
                                  clock (which may step back) */
  const pm__member_meta *meta; /* NULL: empty */
  pm__swim_event_fn event_fn;  /* called on the driver's thread */
  void *event_arg;
  const pm__swim_config *swim; /* NULL: LAN defaults (callbacks, keyring
                                  and seed are the driver's own) */
} pm__swim_driver_config;

typedef struct pm__swim_driver_stats {
  pm__swim_stats core;      /* packets and bytes, auth and decode
                               failures, probes... */
  uint64_t send_errors;     /* sendto/connect failures */
  uint64_t streams_refused; /* too many connections, oversize frame */
  uint64_t stream_timeouts; /* frames not read or written in time */
} pm__swim_driver_stats;

/* Bind UDP and TCP on cfg->listen, start the thread, join the seeds (in
 * the background, retried until one answers). Errors: PM_EINVAL, PM_ECONFIG
 * (unparsable address), PM_EIO (bind failed: the detail names the
 * address), PM_ENOMEM. */
int pm__swim_driver_start(const pm__swim_driver_config *cfg,
                          pm__swim_driver **out);
/* The bound address ("IP:PORT", the real port if 0 was asked). */
const char *pm__swim_driver_addr(const pm__swim_driver *d);
/* This member's id. */
pm__member_id pm__swim_driver_id(const pm__swim_driver *d);
/* The member table; as pm__swim_snapshot. Safe from any thread. */
int pm__swim_driver_snapshot(pm__swim_driver *d, pm__member_info **out,
                             size_t *count);
/* Counters. Safe from any thread. */
void pm__swim_driver_stats_get(pm__swim_driver *d, pm__swim_driver_stats *out);
/* Change this member's metadata (gossiped). Safe from any thread. */
int pm__swim_driver_update_meta(pm__swim_driver *d,
                                const pm__member_meta *meta);
/* Announce Left, wait until the news is out or timeout_ns passed, then
 * stop and free as pm__swim_driver_stop. Accepts NULL. */
void pm__swim_driver_leave(pm__swim_driver *d, uint64_t timeout_ns);
/* Stop the thread, close the sockets and free, without a word to anyone
 * (the others will find this member Dead). Accepts NULL. Not from the
 * event callback. */
void pm__swim_driver_stop(pm__swim_driver *d);

/* ---- the simulator (membership/sim.c) ------------------------------------ */

typedef struct pm__sim pm__sim;

/* Called for every event of every live member; observer is the member's
 * index, now is virtual time. */
typedef void (*pm__sim_event_fn)(void *arg, uint32_t observer,
                                 pm__swim_event_kind kind,
                                 const pm__member_info *member, uint64_t now);

typedef struct pm__sim_config {
  uint32_t members; /* members at start */
  uint64_t seed;
  double loss;          /* probability that a UDP packet is lost */
  uint64_t delay_ns;    /* one-way delay of every packet and frame */
  uint64_t jitter_ns;   /* plus uniform 0..jitter */
  bool crypto;          /* seal packets with a test key (the real path) */
  bool warm;            /* start with every member knowing all others; else
                           each joins through member 0 */
  pm__swim_config swim; /* protocol settings (callbacks and keyring are the
                           simulator's) */
  pm__sim_event_fn event_fn;
  void *event_arg;
} pm__sim_config;

typedef struct pm__sim_stats {
  uint64_t packets, packet_bytes, packets_lost, packets_cut;
  uint64_t streams, stream_bytes, events;
} pm__sim_stats;

/* Defaults: 0 members, seed 1, no loss, 1 ms +- 1 ms delay, no crypto,
 * warm start, LAN protocol defaults. */
void pm__sim_config_init(pm__sim_config *cfg);
int pm__sim_create(const pm__sim_config *cfg, pm__sim **out);
void pm__sim_destroy(pm__sim *sim);
uint64_t pm__sim_now(const pm__sim *sim);
/* Run the event loop until virtual time t. */
void pm__sim_run_until(pm__sim *sim, uint64_t t);
/* Run until done(arg) is true (checked every step_ns) or deadline passes;
 * returns whether done became true. */
bool pm__sim_run_while(pm__sim *sim, uint64_t deadline, uint64_t step_ns,
                       bool (*done)(pm__sim *sim, void *arg), void *arg);
/* Add a member that joins through the first live member; its index. */
int pm__sim_add(pm__sim *sim, uint32_t *index);
/* Crash a member: it sends and receives nothing more. */
void pm__sim_kill(pm__sim *sim, uint32_t index);
/* Start a crashed member again: same id and address, new boot epoch, and
 * join through the first other live member. Errors: PM_EINVAL, PM_ENOMEM. */
int pm__sim_restart(pm__sim *sim, uint32_t index);
/* Leave gracefully (the member keeps running until its news is out). */
void pm__sim_leave(pm__sim *sim, uint32_t index);
/* Put a member in a partition group: packets and frames only pass between
 * members of the same group. pm__sim_heal puts everyone back in group 0. */
void pm__sim_set_group(pm__sim *sim, uint32_t index, uint32_t group);
void pm__sim_heal(pm__sim *sim);
uint32_t pm__sim_size(const pm__sim *sim);
bool pm__sim_alive(const pm__sim *sim, uint32_t index);
pm__swim *pm__sim_core(pm__sim *sim, uint32_t index); /* NULL if down */
pm__member_id pm__sim_id(const pm__sim *sim, uint32_t index);
void pm__sim_get_stats(const pm__sim *sim, pm__sim_stats *out);
/* Whether every live member sees every live member Alive and every down
 * member as not Alive, with the boot epochs of their current lives. */
bool pm__sim_consistent(const pm__sim *sim);

#endif /* PM_SWIM_INT_H */
