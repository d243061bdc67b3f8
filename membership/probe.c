/*
 * membership/probe.c - SWIM failure detection with the Lifeguard
 * refinements. Once per probe interval the core pings the next member in a
 * randomised round-robin order; without an ack after the probe timeout it
 * asks k others to ping the target for it (ping request), and those answer
 * with an ack, or with a nack if the target stayed silent to them too. With
 * no ack by the end of the interval the target becomes Suspect. The local
 * health score (awareness) grows with every missed nack and every
 * refutation and shrinks with every answered probe, and it stretches the
 * probe interval and timeout, so that a slow member suspects others less.
 * A ping to a Suspect member carries the suspicion (the buddy system), so
 * that a live member refutes it at once.
 */
#include <string.h>

#include "membership/swim_impl.h"

static bool probeable(const pm__swim *core, const pm__member *m) {
  return m != core->self &&
         (m->state == PM_MEMBER_ALIVE || m->state == PM_MEMBER_SUSPECT);
}

/* The next member of the round; a new shuffled round when one ends. */
static pm__member *next_target(pm__swim *core) {
  pm__member_table *t = &core->table;
  for (uint32_t tries = 0; tries <= t->count; tries++) {
    if (core->probe_index >= t->count) {
      pm__table_shuffle(t, &core->rng);
      core->probe_index = 0;
    }
    pm__member *m = t->order[core->probe_index++];
    if (probeable(core, m))
      return m;
  }
  return NULL;
}

static void send_ping(pm__swim *core, const pm__member *target, uint32_t seq,
                      const char *addr) {
  Pmswim__Packet hdr = PMSWIM__PACKET__INIT;
  hdr.kind = PM_WIRE_KIND_PING;
  hdr.seq = seq;
  hdr.target_id.data = (uint8_t *)target->id.bytes;
  hdr.target_id.len = PM_SWIM_ID_LEN;
  hdr.target_epoch = target->boot_epoch;
  pm__update buddy, *first = NULL;
  if (target->state == PM_MEMBER_SUSPECT) {
    pm__member_to_update(target, core->self->id.bytes, &buddy);
    first = &buddy;
  }
  pm__core_send(core, addr, &hdr, first, false);
}

static void probe_start(pm__swim *core, uint64_t now) {
  uint64_t interval = pm__core_scale(core, core->cfg.probe_interval_ns);
  core->next_probe_at = now + interval;
  pm__member *target = core->leaving ? NULL : next_target(core);
  if (!target)
    return;
  pm__probe *p = &core->probe;
  memset(p, 0, sizeof *p);
  p->active = true;
  p->seq = core->next_seq++;
  p->target = target->id;
  p->target_epoch = target->boot_epoch;
  p->timeout_at = now + pm__core_scale(core, core->cfg.probe_timeout_ns);
  p->end_at = now + interval;
  core->stats.probes++;
  send_ping(core, target, p->seq, pm__blob_addr(target->meta));
}

/* Up to k random Alive members other than the target ping it for us. */
static void probe_indirect(pm__swim *core, const pm__member *target) {
  pm__probe *p = &core->probe;
  p->indirect_sent = true;
  Pmswim__Packet hdr = PMSWIM__PACKET__INIT;
  hdr.kind = PM_WIRE_KIND_PING_REQ;
  hdr.seq = p->seq;
  hdr.target_id.data = (uint8_t *)target->id.bytes;
  hdr.target_id.len = PM_SWIM_ID_LEN;
  hdr.target_epoch = target->boot_epoch;
  hdr.target_addr = (char *)pm__blob_addr(target->meta);
  hdr.want_nack = true;
  pm__member_table *t = &core->table;
  uint32_t want = core->cfg.indirect_checks;
  pm__member *chosen[16];
  uint32_t n = 0;
  for (uint32_t tries = 0; n < want && n < 16 && tries < 3 * t->count;
       tries++) {
    pm__member *m = t->order[pm__rng_below(&core->rng, t->count)];
    if (m == core->self || m == target || m->state != PM_MEMBER_ALIVE)
      continue;
    bool dup = false;
    for (uint32_t i = 0; i < n; i++)
      dup |= chosen[i] == m;
    if (dup)
      continue;
    chosen[n++] = m;
    pm__core_send(core, pm__blob_addr(m->meta), &hdr, NULL, false);
  }
  p->expected_nacks = n;
  if (n)
    core->stats.indirect_probes++;
}

/* The interval ended without an ack: weigh our own health, then suspect. */
static void probe_failed(pm__swim *core, uint64_t now) {
  pm__probe *p = &core->probe;
  int delta = 1;
  if (p->expected_nacks > 0)
    delta =
        p->nacks < p->expected_nacks ? (int)(p->expected_nacks - p->nacks) : 0;
  pm__awareness_apply(core, delta);
  core->stats.probe_failures++;
  pm__member *m = pm__table_find(&core->table, p->target.bytes);
  if (!m || m->boot_epoch != p->target_epoch || !probeable(core, m))
    return;
  pm__update u;
  pm__member_to_update(m, core->self->id.bytes, &u);
  u.state = PM_MEMBER_SUSPECT;
  pm__state_suspect(core, now, &u);
}

void pm__probe_tick(pm__swim *core, uint64_t now) {
  pm__probe *p = &core->probe;
  if (p->active && !p->indirect_sent && now >= p->timeout_at) {
    const pm__member *m = pm__table_find(&core->table, p->target.bytes);
    if (m && probeable(core, m))
      probe_indirect(core, m);
    else
      p->indirect_sent = true;
  }
  if (p->active && now >= p->end_at) {
    p->active = false;
    probe_failed(core, now);
  }
  if (now >= core->next_probe_at)
    probe_start(core, now);
  /* Relays whose target never answered: tell the requester so. */
  for (uint32_t i = 0; i < core->relay_count;) {
    pm__relay *r = &core->relays[i];
    if (r->deadline > now) {
      i++;
      continue;
    }
    if (r->want_nack) {
      Pmswim__Packet hdr = PMSWIM__PACKET__INIT;
      hdr.kind = PM_WIRE_KIND_NACK;
      hdr.seq = r->orig_seq;
      pm__core_answer(core, r->addr, &hdr, NULL, r->bare);
    }
    *r = core->relays[--core->relay_count];
  }
}

uint64_t pm__probe_deadline(const pm__swim *core) {
  uint64_t next = core->next_probe_at;
  const pm__probe *p = &core->probe;
  if (p->active)
    next = PM_MIN(next, p->indirect_sent ? p->end_at : p->timeout_at);
  for (uint32_t i = 0; i < core->relay_count; i++)
    next = PM_MIN(next, core->relays[i].deadline);
  return next;
}

/* ---- answering ----------------------------------------------------------- */

void pm__probe_on_ping(pm__swim *core, const char *from, bool bare,
                       const Pmswim__Packet *p) {
  pm__member *self = core->self;
  if (memcmp(p->target_id.data, self->id.bytes, PM_SWIM_ID_LEN) != 0)
    return; /* meant for a member that used to live at this address */
  Pmswim__Packet hdr = PMSWIM__PACKET__INIT;
  hdr.kind = PM_WIRE_KIND_ACK;
  hdr.seq = p->seq;
  /* A ping for a past life of ours: tell the prober about this one. */
  pm__update me, *first = NULL;
  if (p->target_epoch != self->boot_epoch && !core->leaving) {
    pm__member_to_update(self, NULL, &me);
    first = &me;
  }
  pm__core_answer(core, from, &hdr, first, bare);
}

void pm__probe_on_ping_req(pm__swim *core, uint64_t now, const char *from,
                           bool bare, const Pmswim__Packet *p) {
  size_t from_len = strlen(from);
  if (core->relay_count == PM_RELAY_MAX || from_len == 0 ||
      from_len >= PM_SWIM_ADDR_MAX)
    return;
  pm__relay *r = &core->relays[core->relay_count++];
  r->local_seq = core->next_seq++;
  r->orig_seq = p->seq;
  r->want_nack = p->want_nack;
  r->bare = bare;
  /* A nack must reach the prober before its probe ends: it sent this
   * request one (scaled) probe timeout into an interval of at least two,
   * so a relay waiting a whole timeout nacked at the very end, too late to
   * count, and every failed probe then counted all its nacks missing: a
   * healthy prober raised its own awareness (Lifeguard's nack waits 80%
   * of the timeout). */
  r->deadline = now + core->cfg.probe_timeout_ns / 5 * 4;
  memcpy(r->addr, from, from_len + 1);
  Pmswim__Packet hdr = PMSWIM__PACKET__INIT;
  hdr.kind = PM_WIRE_KIND_PING;
  hdr.seq = r->local_seq;
  hdr.target_id = p->target_id;
  hdr.target_epoch = p->target_epoch;
  pm__core_send(core, p->target_addr, &hdr, NULL, false);
}

void pm__probe_on_ack(pm__swim *core, const Pmswim__Packet *p) {
  pm__probe *probe = &core->probe;
  if (probe->active && p->seq == probe->seq) {
    probe->active = false;
    probe->acked = true;
    pm__awareness_apply(core, -1);
    return;
  }
  for (uint32_t i = 0; i < core->relay_count; i++) {
    pm__relay *r = &core->relays[i];
    if (r->local_seq != p->seq)
      continue;
    Pmswim__Packet hdr = PMSWIM__PACKET__INIT;
    hdr.kind = PM_WIRE_KIND_ACK;
    hdr.seq = r->orig_seq;
    pm__core_answer(core, r->addr, &hdr, NULL, r->bare);
    *r = core->relays[--core->relay_count];
    return;
  }
}

void pm__probe_on_nack(pm__swim *core, const Pmswim__Packet *p) {
  pm__probe *probe = &core->probe;
  if (probe->active && p->seq == probe->seq) {
    probe->nacks++;
    core->stats.nacks_in++;
  }
}
