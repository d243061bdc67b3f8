/*
 * membership/gossip.c - how news spreads. Every gossip interval the core
 * sends what its broadcast queue holds to a few random members (the newly
 * Dead included, so that they learn it and can refute); the same queue
 * also rides on every ping and ack. Every push-pull interval (stretched
 * for big clusters) it exchanges its whole table with one random member
 * over TCP (anti-entropy), which is also how a member joins: it push-pulls
 * with its seeds, retrying with backoff until one answers. Every reconnect
 * interval it may push-pull with a Dead member or a seed that nobody
 * answers for, so that the two sides of a healed partition find each
 * other again.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "membership/swim_impl.h"

/* memberlist's pushPullScale: x1 up to 32 members, then one more interval
 * per doubling. */
static uint64_t push_pull_interval(const pm__swim *core) {
  uint32_t n = pm__core_live_count(core);
  uint64_t base = core->cfg.push_pull_interval_ns;
  if (n <= 32)
    return base;
  double mult = ceil(log2((double)n) - log2(32.0)) + 1.0;
  return (uint64_t)mult * base;
}

static bool gossip_target_ok(const pm__swim *core, const pm__member *m,
                             uint64_t now) {
  if (m == core->self)
    return false;
  if (m->state == PM_MEMBER_ALIVE || m->state == PM_MEMBER_SUSPECT)
    return true;
  return m->state == PM_MEMBER_DEAD &&
         now - m->state_change_ns < core->cfg.gossip_to_dead_ns;
}

/* Up to want distinct random members for which ok() holds. */
static uint32_t pick_random(pm__swim *core, uint64_t now, pm__member **out,
                            uint32_t want, bool alive_only) {
  pm__member_table *t = &core->table;
  uint32_t n = 0;
  for (uint32_t tries = 0; n < want && tries < 3 * t->count; tries++) {
    pm__member *m = t->order[pm__rng_below(&core->rng, t->count)];
    bool ok = alive_only ? (m != core->self && m->state == PM_MEMBER_ALIVE)
                         : gossip_target_ok(core, m, now);
    for (uint32_t i = 0; ok && i < n; i++)
      ok = out[i] != m;
    if (ok)
      out[n++] = m;
  }
  return n;
}

static void gossip_round(pm__swim *core, uint64_t now) {
  pm__member *targets[16];
  uint32_t want = PM_MIN(core->cfg.gossip_nodes, 16u);
  uint32_t n = pick_random(core, now, targets, want, false);
  Pmswim__Packet hdr = PMSWIM__PACKET__INIT;
  for (uint32_t i = 0; i < n && core->bq.count; i++)
    pm__core_send(core, pm__blob_addr(targets[i]->meta), &hdr, NULL, true);
}

/* ---- push-pull ----------------------------------------------------------- */

typedef struct pp_writer {
  pm__swim *core;
  const char *addr;
  uint8_t *buf;
  size_t prefix, end, pos;
  bool join, want_reply;
} pp_writer;

static void pp_begin(pp_writer *w) {
  Pmswim__Packet hdr = PMSWIM__PACKET__INIT;
  hdr.kind = PM_WIRE_KIND_PUSH_PULL;
  hdr.join = w->join;
  hdr.want_reply = w->want_reply;
  hdr.sender_addr = (char *)pm__blob_addr(w->core->self->meta);
  w->pos = w->prefix + pmswim__packet__pack(&hdr, w->buf + w->prefix);
  /* Only the first frame of a long state asks for an answer. */
  w->join = w->want_reply = false;
}

static void pp_flush(pp_writer *w) {
  pm__swim *core = w->core;
  size_t total = pm__seal(core->cfg.keyring, true, &core->self->id, w->buf,
                          w->pos - w->prefix);
  core->stats.streams_out++;
  core->stats.stream_bytes_out += total;
  core->cfg.send_fn(core->cfg.send_arg, w->addr, w->buf, total, true);
}

static void pp_add(pp_writer *w, const pm__member *m) {
  uint8_t one[1024];
  pm__update u;
  pm__member_to_update(m, NULL, &u);
  size_t n = pm__wire_encode_member(&u, one, sizeof one);
  if (!n)
    return;
  size_t wrote =
      pm__wire_append_update(w->buf + w->pos, w->end - w->pos, one, n);
  if (!wrote) {
    pp_flush(w);
    pp_begin(w);
    wrote = pm__wire_append_update(w->buf + w->pos, w->end - w->pos, one, n);
  }
  w->pos += wrote;
}

void pm__gossip_push_pull(pm__swim *core, const char *addr, bool join,
                          bool want_reply) {
  const pm__swim_keyring *ring = core->cfg.keyring;
  pp_writer w = {
      .core = core, .addr = addr, .join = join, .want_reply = want_reply};
  w.buf = malloc(core->cfg.stream_max);
  if (!w.buf)
    return;
  w.prefix = pm__seal_prefix(ring);
  w.end = core->cfg.stream_max - pm__seal_suffix(ring);
  pp_begin(&w);
  for (uint32_t i = 0; i < core->table.count; i++)
    pp_add(&w, core->table.order[i]);
  pp_flush(&w);
  core->stats.push_pulls++;
  free(w.buf);
}

void pm__gossip_on_push_pull(pm__swim *core, uint64_t now,
                             const pm__member_id *sender,
                             const Pmswim__Packet *p) {
  if (pm__member_id_eq(sender, &core->self->id))
    return;
  /* A newcomer's first state is old news to everyone else: merge it
   * without gossiping it, and put our own Alive first in line. */
  bool fresh = core->table.count == 1;
  for (size_t i = 0; i < p->n_updates; i++) {
    pm__update u;
    pm__wire_member_to_update(p->updates[i], &u);
    pm__state_merge_remote(core, now, &u, sender->bytes, fresh);
  }
  if (fresh && !core->leaving)
    pm__state_broadcast(core, core->self, NULL);
  core->joined = true;
  core->joining = false;
  if (p->want_reply && !core->leaving)
    pm__gossip_push_pull(core, p->sender_addr, false, false);
}

/* ---- reconnecting and joining -------------------------------------------- */

static bool addr_has_live_member(const pm__swim *core, const char *addr) {
  for (uint32_t i = 0; i < core->table.count; i++) {
    const pm__member *m = core->table.order[i];
    if (m->state <= PM_MEMBER_SUSPECT && m != core->self &&
        strcmp(pm__blob_addr(m->meta), addr) == 0)
      return true;
  }
  return false;
}

static const pm__member *random_dead(pm__swim *core) {
  pm__member_table *t = &core->table;
  uint32_t start = pm__rng_below(&core->rng, t->count);
  for (uint32_t i = 0; i < t->count; i++) {
    const pm__member *m = t->order[(start + i) % t->count];
    if (m->state == PM_MEMBER_DEAD)
      return m;
  }
  return NULL;
}

/* As serf does: all members together try about as many Dead members per
 * interval as there are; a seed nobody answers for is tried now and then. */
static void reconnect(pm__swim *core) {
  uint32_t dead = core->counts[PM_MEMBER_DEAD];
  uint32_t live = PM_MAX(pm__core_live_count(core), 1u);
  if (dead && pm__rng_unit(&core->rng) < (double)dead / live) {
    const pm__member *m = random_dead(core);
    if (m)
      pm__gossip_push_pull(core, pm__blob_addr(m->meta), false, true);
  }
  if (!core->seed_count || core->joining || pm__rng_unit(&core->rng) >= 0.25)
    return;
  const char *seed =
      core->seeds[pm__rng_below(&core->rng, (uint32_t)core->seed_count)];
  if (strcmp(seed, pm__blob_addr(core->self->meta)) != 0 &&
      !addr_has_live_member(core, seed))
    pm__gossip_push_pull(core, seed, false, true);
}

static void join_round(pm__swim *core, uint64_t now) {
  const char *own = pm__blob_addr(core->self->meta);
  for (size_t i = 0; i < core->seed_count; i++)
    if (strcmp(core->seeds[i], own) != 0)
      pm__gossip_push_pull(core, core->seeds[i], true, true);
  core->next_join_at = now + core->join_backoff;
  core->join_backoff =
      PM_MIN(core->join_backoff * 2, core->cfg.join_retry_max_ns);
}

void pm__gossip_tick(pm__swim *core, uint64_t now) {
  if (core->joining && now >= core->next_join_at)
    join_round(core, now);
  if (now >= core->next_gossip_at) {
    core->next_gossip_at = now + core->cfg.gossip_interval_ns;
    gossip_round(core, now);
  }
  if (now >= core->next_push_pull_at) {
    /* Half to one and a half intervals: members never fall in step. */
    uint64_t interval = push_pull_interval(core);
    core->next_push_pull_at =
        now + interval / 2 +
        pm__rng_below(&core->rng, 1024) * (interval / 1024);
    pm__member *peer;
    if (!core->leaving && pick_random(core, now, &peer, 1, true))
      pm__gossip_push_pull(core, pm__blob_addr(peer->meta), false, true);
  }
  if (now >= core->next_reconnect_at) {
    uint64_t interval = core->cfg.reconnect_interval_ns;
    core->next_reconnect_at =
        now + interval / 2 +
        pm__rng_below(&core->rng, 1024) * (interval / 1024);
    if (!core->leaving)
      reconnect(core);
  }
}

uint64_t pm__gossip_deadline(const pm__swim *core) {
  uint64_t next = PM_MIN(core->next_gossip_at, core->next_push_pull_at);
  next = PM_MIN(next, core->next_reconnect_at);
  if (core->joining)
    next = PM_MIN(next, core->next_join_at);
  return next;
}
