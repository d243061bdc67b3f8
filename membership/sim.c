/*
 * membership/sim.c - a simulator that runs many members of the real SWIM
 * core in one thread on virtual time. A binary heap orders the events:
 * packet and frame deliveries, and each member's next timer deadline.
 * Packets go through the real encode, seal (optionally) and decode paths;
 * the network between members is modelled by a one-way delay with jitter,
 * a loss rate for UDP packets, partition groups that can be healed, and
 * members that crash, restart with a new boot epoch, or leave. Everything
 * derives from one seed, so a run can be replayed exactly.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "membership/swim_impl.h"

#define EPOCH_BASE 1700000000000000000ull

enum { EV_TICK, EV_PACKET, EV_STREAM };

typedef struct sim_event {
  uint64_t time, seq;
  uint32_t kind, to, from, generation;
  uint8_t *bytes;
  size_t length;
} sim_event;

typedef struct sim_member {
  struct pm__sim *sim;
  uint32_t index;
  pm__swim *core; /* NULL while down */
  pm__member_id id;
  uint64_t boot_epoch;
  uint32_t group;
  uint32_t generation; /* bumped on every crash */
  uint64_t tick_at;    /* the pending tick event, or UINT64_MAX */
  bool leaving;
  char addr[PM_SWIM_ADDR_MAX];
} sim_member;

struct pm__sim {
  pm__sim_config cfg;
  pm__rng rng;
  pm__swim_keyring *keyring;
  uint64_t now, next_seq;
  sim_event *heap;
  size_t heap_count, heap_cap;
  sim_member **members;
  uint32_t count, cap;
  bool quiet; /* no events to the user during a warm start */
  pm__sim_stats stats;
};

void pm__sim_config_init(pm__sim_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->seed = 1;
  cfg->delay_ns = 1000000;
  cfg->jitter_ns = 1000000;
  cfg->warm = true;
  pm__swim_config_init(&cfg->swim);
}

/* ---- the event heap ------------------------------------------------------ */

static bool earlier(const sim_event *a, const sim_event *b) {
  return a->time != b->time ? a->time < b->time : a->seq < b->seq;
}

static int heap_push(pm__sim *sim, sim_event ev) {
  if (sim->heap_count == sim->heap_cap) {
    size_t cap = sim->heap_cap ? sim->heap_cap * 2 : 1024;
    sim_event *h = realloc(sim->heap, cap * sizeof *h);
    if (!h)
      return PM_ENOMEM;
    sim->heap = h;
    sim->heap_cap = cap;
  }
  ev.seq = sim->next_seq++;
  size_t i = sim->heap_count++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!earlier(&ev, &sim->heap[parent]))
      break;
    sim->heap[i] = sim->heap[parent];
    i = parent;
  }
  sim->heap[i] = ev;
  return 0;
}

static sim_event heap_pop(pm__sim *sim) {
  sim_event top = sim->heap[0];
  sim_event last = sim->heap[--sim->heap_count];
  size_t i = 0, n = sim->heap_count;
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= n)
      break;
    if (child + 1 < n && earlier(&sim->heap[child + 1], &sim->heap[child]))
      child++;
    if (!earlier(&sim->heap[child], &last))
      break;
    sim->heap[i] = sim->heap[child];
    i = child;
  }
  if (n)
    sim->heap[i] = last;
  return top;
}

/* ---- the network --------------------------------------------------------- */

static void sim_addr(uint32_t index, char out[PM_SWIM_ADDR_MAX]) {
  snprintf(out, PM_SWIM_ADDR_MAX, "10.%u.%u.%u:7946", (index >> 16) & 255,
           (index >> 8) & 255, index & 255);
}

/* Parse a decimal 0..255 followed by sep; NULL if it is not there. */
static const char *octet(const char *s, char sep, unsigned *out) {
  unsigned v = 0;
  const char *start = s;
  while (*s >= '0' && *s <= '9' && s - start < 3)
    v = v * 10 + (unsigned)(*s++ - '0');
  if (s == start || v > 255 || *s != sep)
    return NULL;
  *out = v;
  return s + 1;
}

/* The inverse of sim_addr; UINT32_MAX if addr is not one of ours. */
static uint32_t sim_index(const char *addr) {
  unsigned a, b, c, d;
  const char *s = octet(addr, '.', &a);
  s = s ? octet(s, '.', &b) : NULL;
  s = s ? octet(s, '.', &c) : NULL;
  s = s ? octet(s, ':', &d) : NULL;
  if (!s || a != 10 || strcmp(s, "7946") != 0)
    return UINT32_MAX;
  return b << 16 | c << 8 | d;
}

static bool sim_passes(pm__sim *sim, const sim_member *from,
                       const sim_member *to, bool stream) {
  if (!to || !to->core) {
    sim->stats.packets_cut++;
    return false;
  }
  if (from->group != to->group) {
    sim->stats.packets_cut++;
    return false;
  }
  if (!stream && sim->cfg.loss > 0 && pm__rng_unit(&sim->rng) < sim->cfg.loss) {
    sim->stats.packets_lost++;
    return false;
  }
  return true;
}

static void sim_send(void *arg, const char *addr, const uint8_t *bytes,
                     size_t length, bool is_stream) {
  sim_member *from = arg;
  pm__sim *sim = from->sim;
  if (is_stream) {
    sim->stats.streams++;
    sim->stats.stream_bytes += length;
  } else {
    sim->stats.packets++;
    sim->stats.packet_bytes += length;
  }
  uint32_t to_index = sim_index(addr);
  sim_member *to = to_index < sim->count ? sim->members[to_index] : NULL;
  if (!sim_passes(sim, from, to, is_stream))
    return;
  sim_event ev = {0};
  ev.kind = is_stream ? EV_STREAM : EV_PACKET;
  ev.to = to_index;
  ev.from = from->index;
  ev.generation = to->generation;
  ev.time = sim->now + sim->cfg.delay_ns;
  if (sim->cfg.jitter_ns)
    ev.time += pm__rng_next(&sim->rng) % (sim->cfg.jitter_ns + 1);
  ev.bytes = malloc(length);
  if (!ev.bytes)
    return;
  memcpy(ev.bytes, bytes, length);
  ev.length = length;
  if (heap_push(sim, ev) != 0)
    free(ev.bytes);
}

static void sim_on_event(void *arg, pm__swim_event_kind kind,
                         const pm__member_info *member) {
  sim_member *m = arg;
  pm__sim *sim = m->sim;
  sim->stats.events++;
  if (sim->cfg.event_fn && !sim->quiet)
    sim->cfg.event_fn(sim->cfg.event_arg, m->index, kind, member, sim->now);
}

/* ---- members ------------------------------------------------------------- */

static void schedule(pm__sim *sim, sim_member *m) {
  if (!m->core)
    return;
  if (m->leaving && pm__swim_leave_done(m->core)) {
    pm__sim_kill(sim, m->index);
    return;
  }
  uint64_t next = pm__swim_next_deadline(m->core);
  if (next >= m->tick_at)
    return;
  m->tick_at = PM_MAX(next, sim->now);
  sim_event ev = {.time = m->tick_at,
                  .kind = EV_TICK,
                  .to = m->index,
                  .generation = m->generation};
  heap_push(sim, ev);
}

static int member_boot(pm__sim *sim, sim_member *m) {
  pm__swim_config cfg = sim->cfg.swim;
  cfg.rng_seed = pm__rng_next(&sim->rng);
  cfg.keyring = sim->keyring;
  cfg.send_fn = sim_send;
  cfg.send_arg = m;
  cfg.event_fn = sim_on_event;
  cfg.event_arg = m;
  pm__member_info self;
  memset(&self, 0, sizeof self);
  self.id = m->id;
  self.boot_epoch = m->boot_epoch = EPOCH_BASE + sim->now + m->index;
  memcpy(self.addr, m->addr, sizeof self.addr);
  snprintf(self.meta.tcp_addr, sizeof self.meta.tcp_addr, "10.%u.%u.%u:7000",
           (m->index >> 16) & 255, (m->index >> 8) & 255, m->index & 255);
  snprintf(self.meta.zone, sizeof self.meta.zone, "z%u", m->index % 4);
  self.meta.capacity = 1ull << 40;
  m->tick_at = UINT64_MAX;
  m->leaving = false;
  return pm__swim_create(&cfg, &self, sim->now, &m->core);
}

static sim_member *member_new(pm__sim *sim) {
  if (sim->count == sim->cap) {
    uint32_t cap = sim->cap ? sim->cap * 2 : 64;
    sim_member **all = realloc(sim->members, cap * sizeof *all);
    if (!all)
      return NULL;
    sim->members = all;
    sim->cap = cap;
  }
  sim_member *m = calloc(1, sizeof *m);
  if (!m)
    return NULL;
  m->sim = sim;
  m->index = sim->count;
  for (int i = 0; i < PM_SWIM_ID_LEN; i += 8) {
    uint64_t r = pm__rng_next(&sim->rng);
    memcpy(m->id.bytes + i, &r, 8);
  }
  sim_addr(m->index, m->addr);
  sim->members[sim->count++] = m;
  return m;
}

/* Join through the first live member other than m. */
static void member_join(pm__sim *sim, sim_member *m) {
  for (uint32_t i = 0; i < sim->count; i++) {
    sim_member *seed = sim->members[i];
    if (seed != m && seed->core && !seed->leaving) {
      const char *seeds[] = {seed->addr};
      pm__swim_join(m->core, sim->now, seeds, 1);
      return;
    }
  }
}

/* Every member learns every other one, as after a long quiet time. */
static int warm_start(pm__sim *sim) {
  uint32_t n = sim->count;
  pm__member_info *all = malloc((n ? n : 1) * sizeof *all);
  if (!all)
    return PM_ENOMEM;
  for (uint32_t i = 0; i < n; i++)
    pm__swim_self(sim->members[i]->core, &all[i]);
  sim->quiet = true;
  for (uint32_t i = 0; i < n; i++)
    pm__swim_merge(sim->members[i]->core, sim->now, all, n, true);
  sim->quiet = false;
  free(all);
  return 0;
}

int pm__sim_create(const pm__sim_config *cfg, pm__sim **out) {
  pm__sim *sim = calloc(1, sizeof *sim);
  if (!sim)
    return pm__errf(PM_ENOMEM, "sim: out of memory");
  sim->cfg = *cfg;
  pm__rng_seed(&sim->rng, cfg->seed);
  int rc = 0;
  if (cfg->crypto) {
    uint8_t key[PM_SWIM_KEY_LEN];
    for (int i = 0; i < PM_SWIM_KEY_LEN; i++)
      key[i] = (uint8_t)pm__rng_next(&sim->rng);
    rc = pm__swim_keyring_new(key, "sim", &sim->keyring);
    sodium_memzero(key, sizeof key);
    if (rc)
      goto fail;
  }
  for (uint32_t i = 0; i < cfg->members; i++) {
    sim_member *m = member_new(sim);
    if (!m || (rc = member_boot(sim, m)) != 0) {
      rc = rc ? rc : PM_ENOMEM;
      goto fail;
    }
  }
  if (cfg->warm && (rc = warm_start(sim)) != 0)
    goto fail;
  for (uint32_t i = 0; i < sim->count; i++) {
    if (!cfg->warm && i > 0)
      member_join(sim, sim->members[i]);
    schedule(sim, sim->members[i]);
  }
  *out = sim;
  return 0;
fail:
  pm__sim_destroy(sim);
  return rc;
}

void pm__sim_destroy(pm__sim *sim) {
  if (!sim)
    return;
  for (uint32_t i = 0; i < sim->count; i++) {
    pm__swim_destroy(sim->members[i]->core);
    free(sim->members[i]);
  }
  for (size_t i = 0; i < sim->heap_count; i++)
    free(sim->heap[i].bytes);
  free(sim->heap);
  free(sim->members);
  pm__swim_keyring_free(sim->keyring);
  free(sim);
}

/* ---- running ------------------------------------------------------------- */

static void deliver(pm__sim *sim, const sim_event *ev) {
  sim_member *m = sim->members[ev->to];
  if (!m->core || m->generation != ev->generation)
    return;
  if (ev->kind == EV_TICK) {
    if (ev->time != m->tick_at)
      return; /* superseded by an earlier tick */
    m->tick_at = UINT64_MAX;
    pm__swim_tick(m->core, sim->now);
  } else {
    const char *from = sim->members[ev->from]->addr;
    if (ev->kind == EV_PACKET)
      pm__swim_handle_packet(m->core, sim->now, from, ev->bytes, ev->length);
    else
      pm__swim_handle_stream(m->core, sim->now, from, ev->bytes, ev->length);
  }
  schedule(sim, m);
}

void pm__sim_run_until(pm__sim *sim, uint64_t t) {
  while (sim->heap_count && sim->heap[0].time <= t) {
    sim_event ev = heap_pop(sim);
    sim->now = PM_MAX(sim->now, ev.time);
    deliver(sim, &ev);
    free(ev.bytes);
  }
  sim->now = PM_MAX(sim->now, t);
}

bool pm__sim_run_while(pm__sim *sim, uint64_t deadline, uint64_t step_ns,
                       bool (*done)(pm__sim *sim, void *arg), void *arg) {
  for (;;) {
    if (done(sim, arg))
      return true;
    if (sim->now >= deadline)
      return false;
    pm__sim_run_until(sim, PM_MIN(deadline, sim->now + step_ns));
  }
}

uint64_t pm__sim_now(const pm__sim *sim) {
  return sim->now;
}

/* ---- changing the cluster ------------------------------------------------ */

int pm__sim_add(pm__sim *sim, uint32_t *index) {
  sim_member *m = member_new(sim);
  if (!m)
    return pm__errf(PM_ENOMEM, "sim: out of memory");
  int rc = member_boot(sim, m);
  if (rc) {
    sim->members[--sim->count] = NULL;
    free(m);
    return rc;
  }
  member_join(sim, m);
  schedule(sim, m);
  if (index)
    *index = m->index;
  return 0;
}

void pm__sim_kill(pm__sim *sim, uint32_t index) {
  if (index >= sim->count || !sim->members[index]->core)
    return;
  sim_member *m = sim->members[index];
  pm__swim_destroy(m->core);
  m->core = NULL;
  m->generation++;
  m->tick_at = UINT64_MAX;
  m->leaving = false;
}

int pm__sim_restart(pm__sim *sim, uint32_t index) {
  if (index >= sim->count || sim->members[index]->core)
    return pm__errf(PM_EINVAL, "sim: member %u is not down", index);
  sim_member *m = sim->members[index];
  int rc = member_boot(sim, m);
  if (rc)
    return rc;
  member_join(sim, m);
  schedule(sim, m);
  return 0;
}

void pm__sim_leave(pm__sim *sim, uint32_t index) {
  if (index >= sim->count || !sim->members[index]->core)
    return;
  sim_member *m = sim->members[index];
  pm__swim_leave(m->core, sim->now);
  m->leaving = true;
  schedule(sim, m);
}

void pm__sim_set_group(pm__sim *sim, uint32_t index, uint32_t group) {
  if (index < sim->count)
    sim->members[index]->group = group;
}

void pm__sim_heal(pm__sim *sim) {
  for (uint32_t i = 0; i < sim->count; i++)
    sim->members[i]->group = 0;
}

/* ---- looking ------------------------------------------------------------- */

uint32_t pm__sim_size(const pm__sim *sim) {
  return sim->count;
}

bool pm__sim_alive(const pm__sim *sim, uint32_t index) {
  return index < sim->count && sim->members[index]->core &&
         !sim->members[index]->leaving;
}

pm__swim *pm__sim_core(pm__sim *sim, uint32_t index) {
  return index < sim->count ? sim->members[index]->core : NULL;
}

pm__member_id pm__sim_id(const pm__sim *sim, uint32_t index) {
  pm__member_id none = {{0}};
  return index < sim->count ? sim->members[index]->id : none;
}

void pm__sim_get_stats(const pm__sim *sim, pm__sim_stats *out) {
  *out = sim->stats;
}

static bool view_ok(const sim_member *viewer, const sim_member *other) {
  const pm__member *m = pm__table_find(&viewer->core->table, other->id.bytes);
  if (other->core && !other->leaving)
    return m && m->state == PM_MEMBER_ALIVE &&
           m->boot_epoch == other->boot_epoch;
  return !m || m->state >= PM_MEMBER_DEAD;
}

bool pm__sim_consistent(const pm__sim *sim) {
  for (uint32_t i = 0; i < sim->count; i++) {
    const sim_member *viewer = sim->members[i];
    if (!viewer->core || viewer->leaving)
      continue;
    for (uint32_t j = 0; j < sim->count; j++)
      if (!view_ok(viewer, sim->members[j]))
        return false;
  }
  return true;
}
