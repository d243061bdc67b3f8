/*
 * membership/swim.c - the SWIM protocol core as a pure state machine: it
 * owns one member's view of the cluster, takes time and received packets,
 * and gives out packets (through the send callback) and membership events
 * (through the event callback). No sockets, clocks or threads: the driver
 * and the simulator feed it. This file holds its life cycle, the packet
 * entry points, the timer dispatch and the small API around them; the
 * state rules are in state.c, failure detection in probe.c, dissemination
 * and push-pull in gossip.c.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "membership/swim_impl.h"

void pm__swim_config_init(pm__swim_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->probe_interval_ns = 1000000000ull;
  cfg->probe_timeout_ns = 500000000ull;
  cfg->indirect_checks = 3;
  cfg->suspicion_mult = 4;
  cfg->suspicion_max_mult = 6;
  cfg->gossip_interval_ns = 200000000ull;
  cfg->gossip_nodes = 3;
  cfg->gossip_to_dead_ns = 30000000000ull;
  cfg->retransmit_mult = 4;
  cfg->push_pull_interval_ns = 30000000000ull;
  cfg->awareness_max = 8;
  cfg->tombstone_ns = 300000000000ull;
  cfg->reconnect_interval_ns = 30000000000ull;
  cfg->join_retry_min_ns = 1000000000ull;
  cfg->join_retry_max_ns = 30000000000ull;
  cfg->packet_max = PM_SWIM_PACKET_MAX;
  cfg->stream_max = PM_SWIM_STREAM_MAX;
}

/* ---- helpers for the other files ----------------------------------------- */

uint32_t pm__core_live_count(const pm__swim *core) {
  return core->counts[PM_MEMBER_ALIVE] + core->counts[PM_MEMBER_SUSPECT];
}

uint32_t pm__core_retransmit_limit(const pm__swim *core) {
  return pm__retransmit_limit(core->cfg.retransmit_mult,
                              pm__core_live_count(core));
}

uint64_t pm__core_scale(const pm__swim *core, uint64_t ns) {
  return ns * (uint64_t)(core->awareness + 1);
}

void pm__core_event(pm__swim *core, pm__swim_event_kind kind,
                    const pm__member *m) {
  if (!core->cfg.event_fn || m == core->self)
    return;
  pm__member_info info;
  pm__member_to_info(m, &info);
  core->cfg.event_fn(core->cfg.event_arg, kind, &info);
}

static void send_packet(pm__swim *core, const char *addr,
                        const Pmswim__Packet *hdr, const pm__update *first,
                        bool gossip_only, bool gossip) {
  const pm__swim_keyring *ring = core->cfg.keyring;
  size_t prefix = pm__seal_prefix(ring);
  size_t end = core->cfg.packet_max - pm__seal_suffix(ring);
  uint8_t *buf = core->packet;
  size_t pos = prefix;
  size_t head = pmswim__packet__get_packed_size(hdr);
  if (pos + head > end)
    return;
  pos += pmswim__packet__pack(hdr, buf + pos);
  if (first) {
    uint8_t one[1024];
    size_t n = pm__wire_encode_member(first, one, sizeof one);
    if (n)
      pos += pm__wire_append_update(buf + pos, end - pos, one, n);
  }
  uint32_t taken = 0;
  if (gossip)
    pos += pm__bq_fill(&core->bq, buf + pos, end - pos,
                       pm__core_retransmit_limit(core), &taken);
  if (gossip_only && pos == prefix)
    return;
  size_t total = pm__seal(ring, false, &core->self->id, buf, pos - prefix);
  core->stats.packets_out++;
  core->stats.bytes_out += total;
  core->cfg.send_fn(core->cfg.send_arg, addr, buf, total, false);
}

void pm__core_send(pm__swim *core, const char *addr, const Pmswim__Packet *hdr,
                   const pm__update *first, bool gossip_only) {
  send_packet(core, addr, hdr, first, gossip_only, true);
}

void pm__core_answer(pm__swim *core, const char *addr,
                     const Pmswim__Packet *hdr, const pm__update *first,
                     bool bare) {
  send_packet(core, addr, hdr, bare ? NULL : first, false, !bare);
}

/* ---- life cycle ---------------------------------------------------------- */

static int config_check(const pm__swim_config *cfg, const pm__member_info *s) {
  if (!cfg->send_fn || !cfg->probe_interval_ns || !cfg->gossip_interval_ns ||
      !cfg->push_pull_interval_ns || !cfg->reconnect_interval_ns ||
      !cfg->join_retry_min_ns || cfg->awareness_max < 1)
    return pm__errf(PM_EINVAL, "swim: incomplete configuration");
  if (cfg->packet_max < 512 || cfg->packet_max > PM_SWIM_PACKET_MAX ||
      cfg->stream_max < 4096 || cfg->stream_max > PM_SWIM_STREAM_MAX)
    return pm__errf(PM_EINVAL, "swim: packet or stream size out of range");
  if (!pm__wire_text_ok(s->addr, PM_SWIM_ADDR_MAX, false) ||
      !pm__wire_text_ok(s->meta.tcp_addr, PM_SWIM_ADDR_MAX, true) ||
      !pm__wire_text_ok(s->meta.zone, PM_SWIM_ZONE_MAX, true) ||
      s->meta.fabric_len > PM_SWIM_FABRIC_MAX)
    return pm__errf(PM_EINVAL, "swim: bad address, zone or fabric address");
  return 0;
}

static pm__member *self_new(const pm__member_info *s, uint64_t now) {
  pm__member *m = calloc(1, sizeof *m);
  pm__update u;
  pm__update_from_info(&u, s);
  if (!m || !(m->meta = pm__meta_blob_new(&u))) {
    free(m);
    return NULL;
  }
  m->id = s->id;
  m->boot_epoch = s->boot_epoch;
  m->state = PM_MEMBER_ALIVE;
  m->state_change_ns = now;
  return m;
}

/* Spread the first rounds of every timer so that members started together
 * do not act in lockstep. */
static void timers_start(pm__swim *core, uint64_t now) {
  const pm__swim_config *c = &core->cfg;
  core->next_probe_at =
      now + pm__rng_below(&core->rng, 1000) * (c->probe_interval_ns / 1000);
  core->next_gossip_at =
      now + pm__rng_below(&core->rng, 1000) * (c->gossip_interval_ns / 1000);
  core->next_push_pull_at =
      now + c->push_pull_interval_ns / 2 +
      pm__rng_below(&core->rng, 1000) * (c->push_pull_interval_ns / 1000);
  core->next_reconnect_at =
      now + c->reconnect_interval_ns / 2 +
      pm__rng_below(&core->rng, 1000) * (c->reconnect_interval_ns / 1000);
  core->next_reap_at = now + c->tombstone_ns / 10 + 1;
  core->next_join_at = UINT64_MAX;
}

int pm__swim_create(const pm__swim_config *cfg, const pm__member_info *self,
                    uint64_t now, pm__swim **out) {
  if (!cfg || !self || !out)
    return pm__errf(PM_EINVAL, "swim: NULL argument");
  int rc = config_check(cfg, self);
  if (rc)
    return rc;
  pm__swim *core = calloc(1, sizeof *core);
  if (!core)
    return pm__errf(PM_ENOMEM, "swim: out of memory");
  core->cfg = *cfg;
  pm__rng_seed(&core->rng, cfg->rng_seed);
  pm__bq_init(&core->bq);
  rc = pm__table_init(&core->table);
  if (rc)
    goto fail;
  rc = PM_ENOMEM;
  core->self = self_new(self, now);
  if (!core->self || pm__table_insert(&core->table, core->self, &core->rng))
    goto fail;
  core->counts[PM_MEMBER_ALIVE] = 1;
  core->next_seq = (uint32_t)pm__rng_next(&core->rng);
  timers_start(core, now);
  if (pm__state_broadcast(core, core->self, NULL) != 0)
    goto fail;
  *out = core;
  return 0;
fail:
  if (core->self && core->table.count == 0)
    pm__member_free(core->self);
  pm__swim_destroy(core);
  return pm__errf(PM_ENOMEM, "swim: out of memory");
}

void pm__swim_destroy(pm__swim *core) {
  if (!core)
    return;
  pm__bq_free(&core->bq);
  pm__table_free(&core->table);
  free(core->suspects);
  free(core->graves);
  for (size_t i = 0; i < core->seed_count; i++)
    free(core->seeds[i]);
  free(core->seeds);
  free(core);
}

/* ---- packets in ---------------------------------------------------------- */

/* Whether an answer to a packet may carry gossip: only to a member we
 * know as alive or suspect, at the address it gossips. A captured packet
 * replayed with a forged source (the seal stops a forged packet, not a
 * replayed one) is answered at that source as any packet is (a member
 * behind NAT, or restarted at a new address, must get its ACKs), but with
 * the header alone: smaller than the packet, so a replayer cannot make a
 * member send gossip-laden answers to an address of its choice. */
static bool answer_bare(const pm__swim *core, const pm__member_id *sender,
                        const char *from) {
  const pm__member *m = pm__table_find(&core->table, sender->bytes);
  return !(m && m != core->self && m->meta &&
           (m->state == PM_MEMBER_ALIVE || m->state == PM_MEMBER_SUSPECT) &&
           !strcmp(pm__blob_addr(m->meta), from));
}

static void dispatch_packet(pm__swim *core, uint64_t now, const char *from,
                            const pm__member_id *sender,
                            const Pmswim__Packet *p) {
  for (size_t i = 0; i < p->n_updates; i++) {
    pm__update u;
    pm__wire_member_to_update(p->updates[i], &u);
    pm__state_apply(core, now, &u);
  }
  switch (p->kind) {
  case PM_WIRE_KIND_PING:
    pm__probe_on_ping(core, from, answer_bare(core, sender, from), p);
    break;
  case PM_WIRE_KIND_PING_REQ:
    pm__probe_on_ping_req(core, now, from, answer_bare(core, sender, from),
                          p);
    break;
  case PM_WIRE_KIND_ACK:
    pm__probe_on_ack(core, p);
    break;
  case PM_WIRE_KIND_NACK:
    pm__probe_on_nack(core, p);
    break;
  default:
    break;
  }
}

static int handle(pm__swim *core, uint64_t now, const char *from,
                  const uint8_t *bytes, size_t length, bool stream) {
  size_t max = stream ? core->cfg.stream_max : core->cfg.packet_max;
  if (length > max) {
    core->stats.decode_failures++;
    return PM_ETOOBIG;
  }
  uint8_t small[PM_SWIM_PACKET_MAX];
  uint8_t *opened = stream ? malloc(length ? length : 1) : small;
  const uint8_t *payload = NULL;
  size_t payload_len = 0;
  pm__member_id sender;
  Pmswim__Packet *p = NULL;
  int rc = opened ? 0 : PM_ENOMEM;
  if (rc == 0)
    rc = pm__open(core->cfg.keyring, stream, bytes, length, opened, &payload,
                  &payload_len, &sender);
  if (rc == 0)
    rc = pm__wire_decode(payload, payload_len, stream, &p);
  if (rc == PM_EAUTH)
    core->stats.auth_failures++;
  else if (rc)
    core->stats.decode_failures++;
  if (rc == 0 && stream)
    pm__gossip_on_push_pull(core, now, &sender, p);
  else if (rc == 0)
    dispatch_packet(core, now, from ? from : "", &sender, p);
  if (p)
    pm__wire_release();
  if (stream)
    free(opened);
  return rc;
}

int pm__swim_handle_packet(pm__swim *core, uint64_t now, const char *from,
                           const uint8_t *bytes, size_t length) {
  core->stats.packets_in++;
  core->stats.bytes_in += length;
  return handle(core, now, from, bytes, length, false);
}

int pm__swim_handle_stream(pm__swim *core, uint64_t now, const char *from,
                           const uint8_t *bytes, size_t length) {
  core->stats.streams_in++;
  core->stats.stream_bytes_in += length;
  return handle(core, now, from, bytes, length, true);
}

/* ---- time ---------------------------------------------------------------- */

uint64_t pm__swim_next_deadline(const pm__swim *core) {
  uint64_t next = PM_MIN(pm__probe_deadline(core), pm__gossip_deadline(core));
  /* The cached minimum is refreshed here; the table itself is unchanged. */
  next = PM_MIN(next, pm__state_suspect_deadline((pm__swim *)core));
  return PM_MIN(next, core->next_reap_at);
}

uint64_t pm__swim_tick(pm__swim *core, uint64_t now) {
  pm__state_expire(core, now);
  pm__probe_tick(core, now);
  pm__gossip_tick(core, now);
  if (now >= core->next_reap_at) {
    core->next_reap_at = now + core->cfg.tombstone_ns / 10 + 1;
    pm__state_reap(core, now);
  }
  return pm__swim_next_deadline(core);
}

/* ---- join, leave, metadata ----------------------------------------------- */

int pm__swim_join(pm__swim *core, uint64_t now, const char *const *seeds,
                  size_t count) {
  if (!core || (count && !seeds))
    return pm__errf(PM_EINVAL, "swim join: NULL argument");
  for (size_t i = 0; i < count; i++)
    if (!pm__wire_text_ok(seeds[i], PM_SWIM_ADDR_MAX, false))
      return pm__errf(PM_EINVAL, "swim join: bad seed address");
  char **copy = calloc(count ? count : 1, sizeof *copy);
  if (!copy)
    return pm__errf(PM_ENOMEM, "swim join: out of memory");
  for (size_t i = 0; i < count; i++) {
    if (!(copy[i] = pm__strdup(seeds[i]))) {
      while (i--)
        free(copy[i]);
      free(copy);
      return pm__errf(PM_ENOMEM, "swim join: out of memory");
    }
  }
  for (size_t i = 0; i < core->seed_count; i++)
    free(core->seeds[i]);
  free(core->seeds);
  core->seeds = copy;
  core->seed_count = count;
  core->joining = count > 0;
  core->join_backoff = core->cfg.join_retry_min_ns;
  core->next_join_at = now; /* the first round goes out on this tick */
  pm__gossip_tick(core, now);
  return 0;
}

bool pm__swim_joined(const pm__swim *core) {
  return core->joined;
}

void pm__swim_leave(pm__swim *core, uint64_t now) {
  if (core->leaving)
    return;
  core->leaving = true;
  core->joining = false;
  pm__state_set(core, core->self, PM_MEMBER_LEFT, now);
  pm__state_broadcast(core, core->self, core->self->id.bytes);
}

bool pm__swim_leave_done(const pm__swim *core) {
  return core->leaving &&
         (core->self->bcast == NULL || pm__core_live_count(core) == 0);
}

int pm__swim_update_meta(pm__swim *core, uint64_t now,
                         const pm__member_meta *meta) {
  (void)now;
  pm__member_info info;
  pm__member_to_info(core->self, &info);
  info.meta = *meta;
  if (!pm__wire_text_ok(meta->tcp_addr, PM_SWIM_ADDR_MAX, true) ||
      !pm__wire_text_ok(meta->zone, PM_SWIM_ZONE_MAX, true) ||
      meta->fabric_len > PM_SWIM_FABRIC_MAX)
    return pm__errf(PM_EINVAL, "swim: bad metadata");
  pm__update u;
  pm__update_from_info(&u, &info);
  pm__meta_blob *blob = pm__meta_blob_new(&u);
  if (!blob)
    return pm__errf(PM_ENOMEM, "swim: out of memory");
  free(core->self->meta);
  core->self->meta = blob;
  core->self->incarnation++;
  pm__state_broadcast(core, core->self, NULL);
  return 0;
}

/* ---- looking at the table ------------------------------------------------ */

int pm__swim_snapshot(const pm__swim *core, pm__member_info **out,
                      size_t *count) {
  uint32_t n = core->table.count;
  pm__member_info *all = malloc((n ? n : 1) * sizeof *all);
  if (!all)
    return pm__errf(PM_ENOMEM, "swim snapshot: out of memory");
  for (uint32_t i = 0; i < n; i++)
    pm__member_to_info(core->table.order[i], &all[i]);
  *out = all;
  *count = n;
  return 0;
}

int pm__swim_lookup(const pm__swim *core, const pm__member_id *id,
                    pm__member_info *out) {
  const pm__member *m = pm__table_find(&core->table, id->bytes);
  if (!m)
    return PM_ENOENT;
  pm__member_to_info(m, out);
  return 0;
}

void pm__swim_self(const pm__swim *core, pm__member_info *out) {
  pm__member_to_info(core->self, out);
}

uint32_t pm__swim_count(const pm__swim *core, pm__member_state state) {
  return (unsigned)state <= PM_MEMBER_LEFT ? core->counts[state] : 0;
}

void pm__swim_get_stats(const pm__swim *core, pm__swim_stats *out) {
  *out = core->stats;
  out->awareness = (uint32_t)core->awareness;
}

void pm__swim_merge(pm__swim *core, uint64_t now, const pm__member_info *m,
                    size_t count, bool quiet) {
  for (size_t i = 0; i < count; i++) {
    pm__update u;
    pm__update_from_info(&u, &m[i]);
    pm__state_merge_remote(core, now, &u, core->self->id.bytes, quiet);
  }
}
