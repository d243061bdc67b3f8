/*
 * tests/membership/test_swim.c - the SWIM core with a few members, wired
 * together by a tiny in-test network (a packet queue and a 1 ms clock) so
 * that each Lifeguard rule can be seen at work: joining through a seed,
 * indirect probes, refutation through the buddy system, suspicion timeouts
 * with confirmations, local health, leaving, metadata updates, restarts
 * with a new boot epoch, tombstones, determinism and the packet budget.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "membership/swim_impl.h"

#define MS 1000000ull
#define SEC 1000000000ull
#define NMAX 8

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif

/* ---- allocation failures
 * ------------------------------------------------------ */

/* Without the sanitizers (which own malloc), this file replaces malloc so
 * that the Nth allocation can be made to fail, and counts live blocks so
 * that a failure path that leaks shows. The harness itself allocates with
 * the raw allocator. */
#ifndef SANITIZED
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);
static long fail_countdown = -1; /* allocations to let pass; -1: all */
static long live_blocks;
static bool failed_one;

static bool fail_now(void) {
  if (fail_countdown < 0)
    return false;
  if (fail_countdown-- > 0)
    return false;
  failed_one = true;
  return true;
}

void *malloc(size_t n) {
  void *p = fail_now() ? NULL : __libc_malloc(n);
  live_blocks += p != NULL;
  return p;
}

void *calloc(size_t n, size_t size) {
  void *p = fail_now() ? NULL : __libc_calloc(n, size);
  live_blocks += p != NULL;
  return p;
}

void *realloc(void *old, size_t n) {
  void *p = fail_now() ? NULL : __libc_realloc(old, n);
  live_blocks += p != NULL && old == NULL;
  return p;
}

void free(void *p) {
  live_blocks -= p != NULL;
  __libc_free(p);
}

#define raw_malloc __libc_malloc
#define raw_realloc __libc_realloc
#define raw_free __libc_free
#else
#define raw_malloc malloc
#define raw_realloc realloc
#define raw_free free
#endif

TestSuite(swim, .timeout = 120);

/* ---- a tiny network ------------------------------------------------------ */

typedef struct packet {
  int to, from;
  bool stream;
  size_t length;
  uint8_t *bytes;
} packet;

typedef struct net net;
typedef struct node {
  net *net;
  int index;
  pm__swim *core;
  pm__member_id id;
  uint64_t epoch;
  char addr[32];
  bool down;
  uint32_t events[6]; /* by kind */
  uint64_t last_event_at[6];
  pm__member_info last[6]; /* last member of each kind */
} node;

struct net {
  node nodes[NMAX];
  int count;
  uint64_t now;
  packet *queue;
  size_t queued, cap;
  bool cut[NMAX][NMAX]; /* packets from i to j are lost */
  size_t biggest_packet, biggest_frame, frames;
  size_t stray; /* packets sent to an address no node has */
  size_t stray_length; /* the last one's length */
  pm__swim_config cfg;
  uint64_t seed;
};

static int node_of(net *n, const char *addr) {
  for (int i = 0; i < n->count; i++)
    if (strcmp(n->nodes[i].addr, addr) == 0)
      return i;
  return -1;
}

static void on_send(void *arg, const char *addr, const uint8_t *bytes,
                    size_t length, bool is_stream) {
  node *from = arg;
  net *n = from->net;
  if (!is_stream && length > n->biggest_packet)
    n->biggest_packet = length;
  if (is_stream && length > n->biggest_frame)
    n->biggest_frame = length;
  n->frames += is_stream;
  int to = node_of(n, addr);
  n->stray += to < 0;
  if (to < 0)
    n->stray_length = length;
  if (to < 0 || n->nodes[to].down || n->cut[from->index][to])
    return;
  if (n->queued == n->cap) {
    n->cap = n->cap ? n->cap * 2 : 64;
    n->queue = raw_realloc(n->queue, n->cap * sizeof *n->queue);
  }
  packet *p = &n->queue[n->queued++];
  p->to = to;
  p->from = from->index;
  p->stream = is_stream;
  p->length = length;
  p->bytes = raw_malloc(length);
  memcpy(p->bytes, bytes, length);
}

static void on_event(void *arg, pm__swim_event_kind kind,
                     const pm__member_info *m) {
  node *nd = arg;
  nd->events[kind]++;
  nd->last_event_at[kind] = nd->net->now;
  nd->last[kind] = *m;
}

static void node_boot(net *n, int i) {
  node *nd = &n->nodes[i];
  pm__swim_config cfg = n->cfg;
  cfg.rng_seed = n->seed * 100 + (uint64_t)i + nd->epoch;
  cfg.send_fn = on_send;
  cfg.send_arg = nd;
  cfg.event_fn = on_event;
  cfg.event_arg = nd;
  pm__member_info self;
  memset(&self, 0, sizeof self);
  self.id = nd->id;
  self.boot_epoch = ++nd->epoch;
  strcpy(self.addr, nd->addr);
  snprintf(self.meta.tcp_addr, sizeof self.meta.tcp_addr, "127.0.0.%d:9000",
           i + 1);
  self.meta.capacity = 1000 + (uint64_t)i;
  strcpy(self.meta.zone, "rack1");
  cr_assert_eq(pm__swim_create(&cfg, &self, n->now, &nd->core), 0);
  nd->down = false;
}

static void net_init(net *n, int count, uint64_t seed) {
  memset(n, 0, sizeof *n);
  pm__swim_config_init(&n->cfg);
  n->count = count;
  n->seed = seed;
  n->now = 1 * SEC;
  for (int i = 0; i < count; i++) {
    node *nd = &n->nodes[i];
    nd->net = n;
    nd->index = i;
    memset(nd->id.bytes, 0x10 + i, PM_SWIM_ID_LEN);
    nd->id.bytes[15] = (uint8_t)seed;
    snprintf(nd->addr, sizeof nd->addr, "127.0.0.%d:7946", i + 1);
  }
}

static void net_start(net *n) {
  for (int i = 0; i < n->count; i++)
    node_boot(n, i);
}

static void net_join_all(net *n) {
  const char *seed[] = {n->nodes[0].addr};
  for (int i = 1; i < n->count; i++)
    cr_assert_eq(pm__swim_join(n->nodes[i].core, n->now, seed, 1), 0);
}

static void net_crash(net *n, int i) {
  pm__swim_destroy(n->nodes[i].core);
  n->nodes[i].core = NULL;
  n->nodes[i].down = true;
}

static void net_free(net *n) {
  for (int i = 0; i < n->count; i++)
    pm__swim_destroy(n->nodes[i].core);
  for (size_t i = 0; i < n->queued; i++)
    raw_free(n->queue[i].bytes);
  raw_free(n->queue);
}

static void deliver_all(net *n) {
  for (size_t i = 0; i < n->queued; i++) {
    packet p = n->queue[i];
    node *to = &n->nodes[p.to];
    if (!to->down) {
      if (p.stream)
        pm__swim_handle_stream(to->core, n->now, n->nodes[p.from].addr, p.bytes,
                               p.length);
      else
        pm__swim_handle_packet(to->core, n->now, n->nodes[p.from].addr, p.bytes,
                               p.length);
    }
    raw_free(p.bytes);
  }
  n->queued = 0;
}

/* Advance the clock in 1 ms steps; packets arrive within the step. */
static void net_run(net *n, uint64_t span) {
  uint64_t end = n->now + span;
  while (n->now < end) {
    n->now += MS;
    for (int i = 0; i < n->count; i++) {
      node *nd = &n->nodes[i];
      if (!nd->down && pm__swim_next_deadline(nd->core) <= n->now)
        pm__swim_tick(nd->core, n->now);
    }
    while (n->queued)
      deliver_all(n);
  }
}

static pm__member_state view(net *n, int viewer, int other) {
  pm__member_info info;
  if (pm__swim_lookup(n->nodes[viewer].core, &n->nodes[other].id, &info))
    return (pm__member_state)-1;
  return info.state;
}

static void isolate(net *n, int i, bool cut) {
  for (int j = 0; j < n->count; j++)
    n->cut[i][j] = n->cut[j][i] = cut;
}

/* ---- configuration and formulas ------------------------------------------ */

Test(swim, defaults_are_memberlist_lan) {
  pm__swim_config c;
  pm__swim_config_init(&c);
  cr_assert_eq(c.probe_interval_ns, 1 * SEC);
  cr_assert_eq(c.probe_timeout_ns, 500 * MS);
  cr_assert_eq(c.indirect_checks, 3);
  cr_assert_eq(c.suspicion_mult, 4);
  cr_assert_eq(c.gossip_interval_ns, 200 * MS);
  cr_assert_eq(c.gossip_nodes, 3);
  cr_assert_eq(c.retransmit_mult, 4);
  cr_assert_eq(c.push_pull_interval_ns, 30 * SEC);
  cr_assert_eq(c.awareness_max, 8);
  cr_assert_eq(c.packet_max, 1400);
}

Test(swim, suspicion_timeout_shrinks_with_confirmations) {
  uint64_t min = 4 * SEC, max = 24 * SEC;
  cr_assert_eq(pm__swim_suspicion_timeout_ns(min, max, 0, 2), max);
  uint64_t one = pm__swim_suspicion_timeout_ns(min, max, 1, 2);
  cr_assert(one > 11 * SEC && one < 12 * SEC, "%llu",
            (unsigned long long)one); /* 24 - 20 * log 2 / log 3 = 11.38 */
  cr_assert_eq(pm__swim_suspicion_timeout_ns(min, max, 2, 2), min);
  cr_assert_eq(pm__swim_suspicion_timeout_ns(min, max, 0, 0), min);
  pm__swim_config c;
  pm__swim_config_init(&c);
  cr_assert_eq(pm__suspicion_min_ns(&c, 5), 4 * SEC);
  cr_assert_eq(pm__suspicion_min_ns(&c, 1000), 12 * SEC);
  cr_assert_eq(pm__retransmit_limit(4, 1000), 16);
  cr_assert_eq(pm__swim_dead_bound_ns(&c, 1000),
               3 * SEC + 72 * SEC + 16 * 200 * MS);
}

Test(swim, precedence_epoch_then_incarnation_then_state) {
  /* A new life wins over any record of an old one, Dead included. */
  cr_assert(pm__member_precedes(5, 9, PM_MEMBER_DEAD, 6, 0, PM_MEMBER_ALIVE));
  cr_assert(!pm__member_precedes(6, 0, PM_MEMBER_ALIVE, 5, 9, PM_MEMBER_DEAD));
  cr_assert(pm__member_precedes(5, 1, PM_MEMBER_DEAD, 5, 2, PM_MEMBER_ALIVE));
  cr_assert(
      pm__member_precedes(5, 2, PM_MEMBER_ALIVE, 5, 2, PM_MEMBER_SUSPECT));
  cr_assert(pm__member_precedes(5, 2, PM_MEMBER_SUSPECT, 5, 2, PM_MEMBER_DEAD));
  cr_assert(pm__member_precedes(5, 2, PM_MEMBER_DEAD, 5, 2, PM_MEMBER_LEFT));
  cr_assert(!pm__member_precedes(5, 2, PM_MEMBER_ALIVE, 5, 2, PM_MEMBER_ALIVE));
}

/* ---- joining ------------------------------------------------------------- */

Test(swim, members_join_through_a_seed) {
  net n;
  net_init(&n, 4, 1);
  net_start(&n);
  net_join_all(&n);
  net_run(&n, 3 * SEC);
  for (int i = 0; i < 4; i++) {
    cr_assert(i == 0 || pm__swim_joined(n.nodes[i].core));
    cr_assert_eq(pm__swim_count(n.nodes[i].core, PM_MEMBER_ALIVE), 4);
    cr_assert_eq(n.nodes[i].events[PM_SWIM_EV_JOIN], 3);
  }
  pm__member_info info;
  cr_assert_eq(pm__swim_lookup(n.nodes[3].core, &n.nodes[1].id, &info), 0);
  cr_assert_str_eq(info.addr, "127.0.0.2:7946");
  cr_assert_str_eq(info.meta.tcp_addr, "127.0.0.2:9000");
  cr_assert_str_eq(info.meta.zone, "rack1");
  cr_assert_eq(info.meta.capacity, 1001);
  net_free(&n);
}

Test(swim, join_retries_the_seed_with_backoff) {
  net n;
  net_init(&n, 2, 2);
  net_start(&n);
  n.nodes[0].down = true; /* the seed is not up yet */
  net_join_all(&n);
  net_run(&n, 5 * SEC);
  cr_assert(!pm__swim_joined(n.nodes[1].core));
  pm__swim_stats st;
  pm__swim_get_stats(n.nodes[1].core, &st);
  cr_assert_eq(st.push_pulls, 3, "tries at 0, 1 and 3 s: %llu",
               (unsigned long long)st.push_pulls);
  n.nodes[0].down = false;
  net_run(&n, 5 * SEC);
  cr_assert(pm__swim_joined(n.nodes[1].core));
  cr_assert_eq(view(&n, 0, 1), PM_MEMBER_ALIVE);
  cr_assert_eq(view(&n, 1, 0), PM_MEMBER_ALIVE);
  net_free(&n);
}

/* ---- failure detection --------------------------------------------------- */

Test(swim, indirect_probes_keep_a_member_alive) {
  net n;
  net_init(&n, 4, 3);
  net_start(&n);
  net_join_all(&n);
  net_run(&n, 2 * SEC);
  n.cut[0][2] = n.cut[2][0] = true; /* only 0 and 2 cannot talk */
  net_run(&n, 30 * SEC);
  pm__swim_stats st;
  pm__swim_get_stats(n.nodes[0].core, &st);
  cr_assert_gt(st.indirect_probes, 0);
  for (int i = 0; i < 4; i++)
    cr_assert_eq(n.nodes[i].events[PM_SWIM_EV_SUSPECT], 0);
  cr_assert_eq(view(&n, 0, 2), PM_MEMBER_ALIVE);
  net_free(&n);
}

Test(swim, a_suspect_refutes_and_stays_alive) {
  net n;
  net_init(&n, 4, 4);
  net_start(&n);
  net_join_all(&n);
  net_run(&n, 2 * SEC);
  isolate(&n, 2, true);
  /* Long enough for a probe of 2 to fail, short of any suspicion timeout. */
  uint64_t t0 = n.now;
  while (n.nodes[0].events[PM_SWIM_EV_SUSPECT] +
             n.nodes[1].events[PM_SWIM_EV_SUSPECT] +
             n.nodes[3].events[PM_SWIM_EV_SUSPECT] ==
         0)
    net_run(&n, 100 * MS);
  cr_assert_lt(n.now - t0, 4 * SEC);
  isolate(&n, 2, false);
  net_run(&n, 3 * SEC);
  pm__swim_stats st;
  pm__swim_get_stats(n.nodes[2].core, &st);
  cr_assert_geq(st.refutations, 1);
  pm__member_info self;
  pm__swim_self(n.nodes[2].core, &self);
  cr_assert_geq(self.incarnation, 1);
  for (int i = 0; i < 4; i++) {
    cr_assert_eq(view(&n, i, 2), PM_MEMBER_ALIVE);
    cr_assert_eq(n.nodes[i].events[PM_SWIM_EV_DEAD], 0);
  }
  net_free(&n);
}

Test(swim, buddy_ping_carries_the_suspicion) {
  net n;
  net_init(&n, 3, 5);
  net_start(&n);
  net_join_all(&n);
  net_run(&n, 2 * SEC);
  /* Tell 0 that 2 is suspect, quietly: only a ping from 0 can tell 2. */
  pm__member_info info;
  cr_assert_eq(pm__swim_lookup(n.nodes[0].core, &n.nodes[2].id, &info), 0);
  pm__update u;
  pm__update_from_info(&u, &info);
  u.state = PM_MEMBER_SUSPECT;
  u.from = n.nodes[1].id.bytes;
  pm__state_suspect(n.nodes[0].core, n.now, &u);
  pm__bq_free(&n.nodes[0].core->bq); /* and nothing is gossiped */
  pm__swim_stats st;
  pm__swim_get_stats(n.nodes[2].core, &st);
  cr_assert_eq(st.refutations, 0);
  net_run(&n, 4 * SEC);
  pm__swim_get_stats(n.nodes[2].core, &st);
  cr_assert_eq(st.refutations, 1);
  cr_assert_eq(n.nodes[1].events[PM_SWIM_EV_SUSPECT], 0);
  cr_assert_eq(view(&n, 0, 2), PM_MEMBER_ALIVE);
  cr_assert_eq(n.nodes[0].events[PM_SWIM_EV_UPDATE], 1);
  net_free(&n);
}

Test(swim, a_crashed_member_is_dead_within_the_bound) {
  net n;
  net_init(&n, 5, 6);
  net_start(&n);
  net_join_all(&n);
  net_run(&n, 3 * SEC);
  net_crash(&n, 4);
  uint64_t t0 = n.now;
  uint64_t bound = pm__swim_dead_bound_ns(&n.cfg, 5);
  net_run(&n, bound);
  uint64_t worst = 0;
  for (int i = 0; i < 4; i++) {
    cr_assert_eq(view(&n, i, 4), PM_MEMBER_DEAD);
    cr_assert_eq(n.nodes[i].events[PM_SWIM_EV_DEAD], 1);
    uint64_t at = n.nodes[i].last_event_at[PM_SWIM_EV_DEAD] - t0;
    worst = at > worst ? at : worst;
  }
  /* With k = 2 confirmations the timeout falls to min = 4 s. */
  cr_assert_lt(worst, 10 * SEC, "dead after %llu ms",
               (unsigned long long)(worst / MS));
  net_free(&n);
}

Test(swim, local_health_grows_when_cut_off) {
  net n;
  net_init(&n, 4, 7);
  net_start(&n);
  net_join_all(&n);
  net_run(&n, 2 * SEC);
  isolate(&n, 0, true);
  net_run(&n, 40 * SEC);
  pm__swim_stats st;
  pm__swim_get_stats(n.nodes[0].core, &st);
  /* Each failed probe misses 3 nacks: the score tops out at max - 1. */
  cr_assert_eq(st.awareness, 7, "awareness %u", st.awareness);
  cr_assert_eq(pm__core_scale(n.nodes[0].core, SEC), 8 * SEC);
  /* The others were healthy all along. */
  pm__swim_get_stats(n.nodes[1].core, &st);
  cr_assert_eq(st.awareness, 0);
  net_free(&n);
}

Test(swim, local_health_is_clamped) {
  net n;
  net_init(&n, 1, 7);
  net_start(&n);
  pm__swim *core = n.nodes[0].core;
  pm__awareness_apply(core, -3);
  cr_assert_eq(core->awareness, 0);
  pm__awareness_apply(core, 100);
  cr_assert_eq(core->awareness, 7);
  pm__awareness_apply(core, -1);
  cr_assert_eq(pm__core_scale(core, SEC), 7 * SEC);
  net_free(&n);
}

/* ---- leaving, updating, restarting --------------------------------------- */

Test(swim, leave_is_seen_as_left) {
  net n;
  net_init(&n, 4, 8);
  net_start(&n);
  net_join_all(&n);
  net_run(&n, 2 * SEC);
  pm__swim_leave(n.nodes[3].core, n.now);
  while (!pm__swim_leave_done(n.nodes[3].core))
    net_run(&n, 10 * MS);
  cr_assert_lt(n.now, 4 * SEC);
  net_crash(&n, 3);
  net_run(&n, 1 * SEC);
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(view(&n, i, 3), PM_MEMBER_LEFT);
    cr_assert_eq(n.nodes[i].events[PM_SWIM_EV_LEFT], 1);
    cr_assert_eq(n.nodes[i].events[PM_SWIM_EV_DEAD], 0);
  }
  net_free(&n);
}

Test(swim, capacity_change_spreads) {
  net n;
  net_init(&n, 4, 9);
  net_start(&n);
  net_join_all(&n);
  net_run(&n, 2 * SEC);
  pm__member_info self;
  pm__swim_self(n.nodes[1].core, &self);
  self.meta.capacity = 5ull << 40;
  cr_assert_eq(pm__swim_update_meta(n.nodes[1].core, n.now, &self.meta), 0);
  net_run(&n, 1 * SEC);
  for (int i = 0; i < 4; i++) {
    if (i == 1)
      continue;
    pm__member_info info;
    cr_assert_eq(pm__swim_lookup(n.nodes[i].core, &n.nodes[1].id, &info), 0);
    cr_assert_eq(info.meta.capacity, 5ull << 40);
    cr_assert_eq(n.nodes[i].events[PM_SWIM_EV_UPDATE], 1);
  }
  net_free(&n);
}

Test(swim, restart_is_a_new_life_never_shadowed) {
  net n;
  net_init(&n, 4, 10);
  net_start(&n);
  net_join_all(&n);
  net_run(&n, 2 * SEC);
  pm__member_info old;
  pm__swim_self(n.nodes[2].core, &old);
  net_crash(&n, 2);
  net_run(&n, 30 * SEC);
  cr_assert_eq(view(&n, 0, 2), PM_MEMBER_DEAD);
  node_boot(&n, 2); /* same id, boot epoch + 1 */
  const char *seed[] = {n.nodes[0].addr};
  pm__swim_join(n.nodes[2].core, n.now, seed, 1);
  net_run(&n, 2 * SEC);
  for (int i = 0; i < 4; i++) {
    pm__member_info info;
    cr_assert_eq(pm__swim_lookup(n.nodes[i].core, &n.nodes[2].id, &info), 0);
    cr_assert_eq(info.state, PM_MEMBER_ALIVE);
    cr_assert_eq(info.boot_epoch, old.boot_epoch + 1);
  }
  /* The old life's Dead record, even with a huge incarnation, loses. */
  old.state = PM_MEMBER_DEAD;
  old.incarnation = 1000;
  pm__swim_merge(n.nodes[0].core, n.now, &old, 1, false);
  pm__update u;
  pm__update_from_info(&u, &old);
  u.from = n.nodes[1].id.bytes;
  pm__state_dead(n.nodes[0].core, n.now, &u);
  cr_assert_eq(view(&n, 0, 2), PM_MEMBER_ALIVE);
  net_run(&n, 10 * SEC);
  cr_assert_eq(view(&n, 1, 2), PM_MEMBER_ALIVE);
  net_free(&n);
}

Test(swim, tombstones_are_reaped) {
  net n;
  net_init(&n, 3, 11);
  n.cfg.tombstone_ns = 20 * SEC;
  net_start(&n);
  net_join_all(&n);
  net_run(&n, 2 * SEC);
  net_crash(&n, 2);
  net_run(&n, 15 * SEC);
  cr_assert_eq(view(&n, 0, 2), PM_MEMBER_DEAD);
  net_run(&n, 25 * SEC);
  cr_assert_eq((int)view(&n, 0, 2), -1);
  cr_assert_eq(n.nodes[0].events[PM_SWIM_EV_REAP], 1);
  cr_assert_eq(pm__swim_count(n.nodes[0].core, PM_MEMBER_DEAD), 0);
  net_free(&n);
}

/* A reaped member's past life does not come back: an Alive record of it
 * (a replayed packet, a push-pull frame captured before it left) is no
 * news once its tombstone is gone; a new life (a restart) still is. */
Test(swim, a_reaped_life_is_not_brought_back) {
  net n;
  net_init(&n, 3, 12);
  n.cfg.tombstone_ns = 20 * SEC;
  net_start(&n);
  net_join_all(&n);
  net_run(&n, 2 * SEC);
  pm__member_info past;
  pm__swim_self(n.nodes[2].core, &past);
  net_crash(&n, 2);
  net_run(&n, 40 * SEC);
  cr_assert_eq((int)view(&n, 0, 2), -1, "reaped");
  int joins = n.nodes[0].events[PM_SWIM_EV_JOIN];
  pm__swim_merge(n.nodes[0].core, n.now, &past, 1, false);
  cr_assert_eq((int)view(&n, 0, 2), -1, "the past life came back");
  cr_assert_eq(n.nodes[0].events[PM_SWIM_EV_JOIN], joins);
  past.boot_epoch++; /* a restart */
  pm__swim_merge(n.nodes[0].core, n.now, &past, 1, false);
  cr_assert_eq(view(&n, 0, 2), PM_MEMBER_ALIVE);
  net_free(&n);
}

/* A packet replayed with a forged source address is answered at that
 * source (a member behind NAT, or restarted at a new address, must get
 * its ACKs) but with the header alone: no larger than the packet, where
 * an answer with gossip piggybacked made a member send more than it got
 * to an address of the replayer's choice. At the member's own address
 * the answer carries gossip as before. */
static void send_ping(net *n, int from, int to) {
  Pmswim__Packet hdr = PMSWIM__PACKET__INIT;
  hdr.kind = PM_WIRE_KIND_PING;
  hdr.seq = 4242;
  hdr.target_id.data = n->nodes[to].id.bytes;
  hdr.target_id.len = PM_SWIM_ID_LEN;
  hdr.target_epoch = n->nodes[to].epoch;
  pm__core_answer(n->nodes[from].core, n->nodes[to].addr, &hdr, NULL, true);
}

Test(swim, a_replayed_ping_gets_no_gossip_at_a_forged_source) {
  net n;
  net_init(&n, 2, 21);
  net_start(&n);
  net_join_all(&n);
  net_run(&n, 2 * SEC);
  cr_assert_eq(view(&n, 1, 0), PM_MEMBER_ALIVE);
  for (int forged = 1; forged >= 0; forged--) {
    /* Node 1 has news to spread: its answers would carry it. */
    pm__member_info self;
    pm__swim_self(n.nodes[1].core, &self);
    self.meta.capacity += 1;
    cr_assert_eq(pm__swim_update_meta(n.nodes[1].core, n.now, &self.meta),
                 0);
    send_ping(&n, 0, 1);
    cr_assert_eq(n.queued, 1);
    packet captured = n.queue[0];
    n.queued = 0;
    size_t stray = n.stray;
    pm__swim_handle_packet(n.nodes[1].core, n.now,
                           forged ? "10.6.6.6:7946" : n.nodes[0].addr,
                           captured.bytes, captured.length);
    if (forged) {
      cr_assert_eq(n.stray, stray + 1, "answered at the source");
      cr_assert_leq(n.stray_length, captured.length,
                    "an answer of %zu bytes to a packet of %zu",
                    n.stray_length, captured.length);
    } else {
      cr_assert_eq(n.queued, 1);
      cr_assert_eq(n.queue[0].to, 0);
      cr_assert_gt(n.queue[0].length, captured.length, "gossip rides along");
    }
    raw_free(captured.bytes);
    deliver_all(&n);
  }
  net_free(&n);
}

/* ---- properties ---------------------------------------------------------- */

static void scenario(uint64_t seed, pm__swim_stats *out) {
  memset(out, 0, sizeof *out);
  net n;
  net_init(&n, 5, seed);
  net_start(&n);
  net_join_all(&n);
  net_run(&n, 5 * SEC);
  net_crash(&n, 3);
  net_run(&n, 20 * SEC);
  pm__swim_get_stats(n.nodes[0].core, out);
  net_free(&n);
}

Test(swim, deterministic_given_the_seed) {
  pm__swim_stats a, b;
  scenario(12, &a);
  scenario(12, &b);
  cr_assert_eq(memcmp(&a, &b, sizeof a), 0);
}

Test(swim, packets_stay_within_the_budget) {
  net n;
  net_init(&n, 3, 13);
  net_start(&n);
  net_join_all(&n);
  net_run(&n, 2 * SEC);
  /* 300 newcomers at once fill every queue far past one packet. */
  pm__member_info *many = calloc(300, sizeof *many);
  for (int i = 0; i < 300; i++) {
    memset(many[i].id.bytes, 0xa0, PM_SWIM_ID_LEN);
    memcpy(many[i].id.bytes, &i, sizeof i);
    many[i].boot_epoch = 1;
    snprintf(many[i].addr, sizeof many[i].addr, "10.9.%d.%d:7946", i / 256,
             i % 256);
    strcpy(many[i].meta.zone, "zone-with-a-long-name");
    many[i].meta.fabric_len = 200;
  }
  pm__swim_merge(n.nodes[0].core, n.now, many, 300, false);
  free(many);
  net_run(&n, 10 * SEC);
  cr_assert_leq(n.biggest_packet, PM_SWIM_PACKET_MAX);
  cr_assert_gt(n.biggest_packet, 1200);
  /* Most gossip goes to the made-up members and is lost; some arrives. */
  cr_assert_gt(pm__swim_count(n.nodes[2].core, PM_MEMBER_ALIVE) +
                   pm__swim_count(n.nodes[2].core, PM_MEMBER_SUSPECT),
               13);
  net_free(&n);
}

Test(swim, a_big_state_travels_in_several_frames) {
  net n;
  net_init(&n, 2, 14);
  net_start(&n);
  /* 5000 members with big fabric addresses: about 1.5 MiB of state. */
  uint32_t count = 5000;
  pm__member_info *many = calloc(count, sizeof *many);
  for (uint32_t i = 0; i < count; i++) {
    memset(many[i].id.bytes, 0xb0, PM_SWIM_ID_LEN);
    memcpy(many[i].id.bytes, &i, sizeof i);
    many[i].boot_epoch = 1;
    snprintf(many[i].addr, sizeof many[i].addr, "10.8.%u.%u:7946", i / 256,
             i % 256);
    memset(many[i].meta.fabric_addr, 0xfa, 250);
    many[i].meta.fabric_len = 250;
  }
  pm__swim_merge(n.nodes[0].core, n.now, many, count, true);
  free(many);
  net_join_all(&n);
  net_run(&n, 10 * MS);
  cr_assert_leq(n.biggest_frame, PM_SWIM_STREAM_MAX);
  cr_assert_geq(n.frames, 3, "one frame to join, two or more back");
  cr_assert_eq(pm__swim_count(n.nodes[1].core, PM_MEMBER_ALIVE), count + 2);
  pm__member_info info;
  cr_assert_eq(pm__swim_lookup(n.nodes[1].core, &n.nodes[0].id, &info), 0);
  cr_assert_eq(info.state, PM_MEMBER_ALIVE);
  net_free(&n);
}

#ifndef SANITIZED
Test(swim, create_fails_cleanly_at_every_allocation) {
  net n;
  net_init(&n, 1, 15);
  node *nd = &n.nodes[0];
  pm__swim_config cfg = n.cfg;
  cfg.send_fn = on_send;
  cfg.send_arg = nd;
  pm__member_info self;
  memset(&self, 0, sizeof self);
  self.id = nd->id;
  strcpy(self.addr, nd->addr);
  for (long i = 0;; i++) {
    long before = live_blocks;
    pm__swim *core = NULL;
    failed_one = false;
    fail_countdown = i;
    int rc = pm__swim_create(&cfg, &self, n.now, &core);
    fail_countdown = -1;
    if (!failed_one) {
      cr_assert_eq(rc, 0);
      pm__swim_destroy(core);
      cr_assert_eq(live_blocks, before);
      cr_assert_gt(i, 3);
      break;
    }
    cr_assert_eq(rc, PM_ENOMEM, "allocation %ld", i);
    cr_assert_null(core);
    cr_assert_eq(live_blocks, before, "leak when allocation %ld fails", i);
  }
}

/* A short life of three members in which allocation i fails. Returns
 * whether some allocation failed (i was within the run). */
static bool life_with_failure(long i) {
  net n;
  net_init(&n, 3, 16);
  net_start(&n);
  failed_one = false;
  fail_countdown = i;
  const char *seed[] = {n.nodes[0].addr};
  for (int k = 1; k < 3; k++) /* may fail with PM_ENOMEM */
    pm__swim_join(n.nodes[k].core, n.now, seed, 1);
  net_run(&n, 3 * SEC);
  net_crash(&n, 2);
  net_run(&n, 10 * SEC);
  fail_countdown = -1;
  bool failed = failed_one;
  net_free(&n);
  return failed;
}

Test(swim, survives_a_failed_allocation_anywhere) {
  long i = 0;
  while (life_with_failure(i))
    i += 1 + i / 8; /* every early one, then a sample of the later ones */
  cr_assert_gt(i, 20);
}
#endif
