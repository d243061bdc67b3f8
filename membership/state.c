/*
 * membership/state.c - the rules by which a core changes its view when
 * someone says a member is Alive, Suspect, Dead or Left. A record about an
 * id replaces the one held only if it is newer by the precedence of
 * pm__member_precedes (boot epoch, then incarnation, then state), so a
 * restarted member is never shadowed by its own old Dead record. A
 * suspicion about this member is refuted at once with a higher
 * incarnation. Suspects whose Lifeguard timer runs out are declared Dead,
 * and Dead or Left records are forgotten after the tombstone time.
 */
#include <stdlib.h>
#include <string.h>

#include "membership/swim_impl.h"

void pm__state_set(pm__swim *core, pm__member *m, int state, uint64_t now) {
  assert(state >= PM_MEMBER_ALIVE && state <= PM_MEMBER_LEFT);
  core->counts[m->state]--;
  core->counts[state]++;
  m->state = (uint8_t)state;
  m->state_change_ns = now;
}

void pm__awareness_apply(pm__swim *core, int delta) {
  int score = core->awareness + delta;
  int max = (int)core->cfg.awareness_max - 1;
  core->awareness = score < 0 ? 0 : (score > max ? max : score);
}

int pm__state_broadcast(pm__swim *core, pm__member *m, const uint8_t *from) {
  pm__update u;
  uint8_t buf[1024];
  pm__member_to_update(m, from, &u);
  size_t n = pm__wire_encode_member(&u, buf, sizeof buf);
  if (n && pm__bq_push(&core->bq, &m->bcast, buf, n) != 0) {
    PM_LOG_RATELIMITED(PM_LOG_WARN, "swim", 10000,
                       "out of memory queueing an update");
    return PM_ENOMEM;
  }
  return 0;
}

void pm__state_refute(pm__swim *core, uint64_t accused_inc) {
  pm__member *self = core->self;
  self->incarnation = PM_MAX(self->incarnation, accused_inc) + 1;
  core->stats.refutations++;
  pm__awareness_apply(core, 1);
  pm__state_broadcast(core, self, NULL);
}

/* ---- suspicions ---------------------------------------------------------- */

uint64_t pm__state_suspect_deadline(pm__swim *core) {
  if (core->suspect_dirty) {
    uint64_t next = UINT64_MAX;
    for (uint32_t i = 0; i < core->suspect_count; i++)
      next = PM_MIN(next, core->suspects[i]->suspicion->deadline_ns);
    core->suspect_deadline = next;
    core->suspect_dirty = false;
  }
  return core->suspect_count ? core->suspect_deadline : UINT64_MAX;
}

static void suspicion_clear(pm__swim *core, pm__member *m) {
  pm__suspicion *s = m->suspicion;
  if (!s)
    return;
  if (s->deadline_ns <= core->suspect_deadline)
    core->suspect_dirty = true; /* the earliest one goes */
  uint32_t last = --core->suspect_count;
  core->suspects[s->index] = core->suspects[last];
  core->suspects[s->index]->suspicion->index = s->index;
  free(s);
  m->suspicion = NULL;
}

static bool suspects_reserve(pm__swim *core) {
  if (core->suspect_count < core->suspect_cap)
    return true;
  uint32_t cap = core->suspect_cap ? core->suspect_cap * 2 : 16;
  pm__member **list = realloc(core->suspects, cap * sizeof *list);
  if (!list)
    return false;
  core->suspects = list;
  core->suspect_cap = cap;
  return true;
}

static void suspicion_start(pm__swim *core, uint64_t now, pm__member *m,
                            const pm__update *u) {
  uint32_t n = pm__core_live_count(core);
  uint32_t mult = core->cfg.suspicion_mult;
  uint32_t k = mult > 2 ? mult - 2 : 0;
  if (n < k + 2)
    k = 0;
  uint64_t min_ns = pm__suspicion_min_ns(&core->cfg, n);
  uint64_t max_ns = min_ns * core->cfg.suspicion_max_mult;
  pm__suspicion *s = pm__suspicion_new(now, k, min_ns, max_ns, u->from);
  if (!s || !suspects_reserve(core)) {
    free(s);
    return;
  }
  s->index = core->suspect_count;
  if (core->suspect_count == 0)
    core->suspect_deadline = UINT64_MAX;
  core->suspects[core->suspect_count++] = m;
  core->suspect_deadline = PM_MIN(core->suspect_deadline, s->deadline_ns);
  m->suspicion = s;
  m->incarnation = u->incarnation;
  pm__state_set(core, m, PM_MEMBER_SUSPECT, now);
  core->stats.suspicions++;
  pm__core_event(core, PM_SWIM_EV_SUSPECT, m);
  pm__state_broadcast(core, m, u->from);
}

void pm__state_expire(pm__swim *core, uint64_t now) {
  if (pm__state_suspect_deadline(core) > now)
    return;
  for (uint32_t i = 0; i < core->suspect_count;) {
    pm__member *m = core->suspects[i];
    if (m->suspicion->deadline_ns > now) {
      i++;
      continue;
    }
    pm__update u;
    pm__member_to_update(m, core->self->id.bytes, &u);
    u.state = PM_MEMBER_DEAD;
    core->stats.deaths_declared++;
    pm__state_dead(core, now, &u); /* removes it from the list */
  }
}

/* ---- Alive --------------------------------------------------------------- */

static bool buried(const pm__swim *core, const pm__update *u);

static void alive_about_self(pm__swim *core, const pm__update *u) {
  pm__member *self = core->self;
  if (core->leaving || u->boot_epoch != self->boot_epoch)
    return; /* news of a past life: ours is newer already */
  if (u->incarnation > self->incarnation ||
      (u->incarnation == self->incarnation &&
       !pm__meta_blob_same(self->meta, u)))
    pm__state_refute(core, u->incarnation);
}

static void alive_new(pm__swim *core, uint64_t now, const pm__update *u,
                      bool quiet) {
  pm__member *m = calloc(1, sizeof *m);
  if (!m || !(m->meta = pm__meta_blob_new(u))) {
    free(m);
    return;
  }
  memcpy(m->id.bytes, u->id, PM_SWIM_ID_LEN);
  m->boot_epoch = u->boot_epoch;
  m->incarnation = u->incarnation;
  m->state = PM_MEMBER_ALIVE;
  m->state_change_ns = now;
  if (pm__table_insert(&core->table, m, &core->rng) != 0) {
    pm__member_free(m);
    return;
  }
  core->counts[PM_MEMBER_ALIVE]++;
  pm__core_event(core, PM_SWIM_EV_JOIN, m);
  if (!quiet)
    pm__state_broadcast(core, m, NULL);
}

/* Tell the peer what changed for a known member that is Alive now. */
static void alive_announce(pm__swim *core, uint64_t now, pm__member *m,
                           int prev, bool new_life, bool meta_changed) {
  if (prev == PM_MEMBER_DEAD && !new_life) {
    /* Back from the dead: a partition may have healed, so look for the
     * rest of the other side soon. */
    core->next_reconnect_at =
        PM_MIN(core->next_reconnect_at, now + core->cfg.probe_interval_ns);
  }
  if (new_life || prev == PM_MEMBER_DEAD || prev == PM_MEMBER_LEFT)
    pm__core_event(core, PM_SWIM_EV_JOIN, m);
  else if (prev == PM_MEMBER_SUSPECT || meta_changed)
    pm__core_event(core, PM_SWIM_EV_UPDATE, m);
}

void pm__state_alive(pm__swim *core, uint64_t now, const pm__update *u,
                     bool quiet) {
  pm__member *m = pm__table_find(&core->table, u->id);
  if (m == core->self) {
    alive_about_self(core, u);
    return;
  }
  if (!m) {
    if (!buried(core, u))
      alive_new(core, now, u, quiet);
    return;
  }
  if (!pm__member_precedes(m->boot_epoch, m->incarnation, m->state,
                           u->boot_epoch, u->incarnation, PM_MEMBER_ALIVE))
    return;
  bool new_life = u->boot_epoch != m->boot_epoch;
  bool meta_changed = !pm__meta_blob_same(m->meta, u);
  if (meta_changed) {
    pm__meta_blob *blob = pm__meta_blob_new(u);
    if (!blob)
      return;
    free(m->meta);
    m->meta = blob;
  }
  int prev = m->state;
  m->boot_epoch = u->boot_epoch;
  m->incarnation = u->incarnation;
  suspicion_clear(core, m);
  if (prev != PM_MEMBER_ALIVE)
    pm__state_set(core, m, PM_MEMBER_ALIVE, now);
  alive_announce(core, now, m, prev, new_life, meta_changed);
  if (!quiet)
    pm__state_broadcast(core, m, NULL);
}

/* ---- Suspect and Dead --------------------------------------------------- */

void pm__state_suspect(pm__swim *core, uint64_t now, const pm__update *u) {
  pm__member *m = pm__table_find(&core->table, u->id);
  if (!m || u->boot_epoch != m->boot_epoch || u->incarnation < m->incarnation)
    return;
  if (m->state == PM_MEMBER_SUSPECT) {
    m->incarnation = u->incarnation;
    if (pm__suspicion_confirm(m->suspicion, u->from)) {
      /* A confirmation only ever brings a deadline closer. */
      core->suspect_deadline =
          PM_MIN(core->suspect_deadline, m->suspicion->deadline_ns);
      pm__state_broadcast(core, m, u->from);
    }
    return;
  }
  if (m->state != PM_MEMBER_ALIVE)
    return;
  if (m == core->self) {
    if (!core->leaving)
      pm__state_refute(core, u->incarnation);
    return;
  }
  suspicion_start(core, now, m, u);
}

void pm__state_dead(pm__swim *core, uint64_t now, const pm__update *u) {
  pm__member *m = pm__table_find(&core->table, u->id);
  if (!m || u->boot_epoch != m->boot_epoch || u->incarnation < m->incarnation)
    return;
  bool by_itself = u->from && memcmp(u->from, u->id, PM_SWIM_ID_LEN) == 0;
  int state = (u->state == PM_MEMBER_LEFT || by_itself) ? PM_MEMBER_LEFT
                                                        : PM_MEMBER_DEAD;
  if (m->state == PM_MEMBER_DEAD || m->state == PM_MEMBER_LEFT) {
    if (state == PM_MEMBER_LEFT && m->state == PM_MEMBER_DEAD) {
      pm__state_set(core, m, PM_MEMBER_LEFT, now);
      pm__core_event(core, PM_SWIM_EV_LEFT, m);
    }
    return;
  }
  if (m == core->self) {
    pm__state_refute(core, u->incarnation);
    return;
  }
  suspicion_clear(core, m);
  m->incarnation = u->incarnation;
  pm__state_set(core, m, state, now);
  pm__core_event(
      core, state == PM_MEMBER_LEFT ? PM_SWIM_EV_LEFT : PM_SWIM_EV_DEAD, m);
  pm__state_broadcast(core, m, u->from);
}

void pm__state_apply(pm__swim *core, uint64_t now, const pm__update *u) {
  switch (u->state) {
  case PM_MEMBER_ALIVE:
    pm__state_alive(core, now, u, false);
    break;
  case PM_MEMBER_SUSPECT:
    pm__state_suspect(core, now, u);
    break;
  default:
    pm__state_dead(core, now, u);
    break;
  }
}

void pm__state_merge_remote(pm__swim *core, uint64_t now, const pm__update *u,
                            const uint8_t *from, bool quiet) {
  pm__update v = *u;
  switch (u->state) {
  case PM_MEMBER_ALIVE:
    pm__state_alive(core, now, u, quiet);
    break;
  case PM_MEMBER_LEFT:
    v.from = u->id;
    pm__state_dead(core, now, &v);
    break;
  default:
    /* Another member's Dead is not trusted blindly: it only starts our own
     * suspicion, which the member can still refute. */
    v.state = PM_MEMBER_SUSPECT;
    v.from = from;
    pm__state_suspect(core, now, &v);
    break;
  }
}

/* ---- tombstones ---------------------------------------------------------- */

static void bury(pm__swim *core, const pm__member *m) {
  if (!core->graves &&
      !(core->graves = calloc(PM_SWIM_GRAVES, sizeof *core->graves)))
    return;
  pm__grave *g = &core->graves[core->grave_next];
  memcpy(g->id, m->id.bytes, sizeof g->id);
  g->boot_epoch = m->boot_epoch;
  g->incarnation = m->incarnation;
  core->grave_next = (core->grave_next + 1) % PM_SWIM_GRAVES;
  core->grave_count = PM_MIN(core->grave_count + 1, PM_SWIM_GRAVES);
}

/* Is u about a life we have buried (no newer than it was)? */
static bool buried(const pm__swim *core, const pm__update *u) {
  for (uint32_t i = 0; i < core->grave_count; i++) {
    const pm__grave *g = &core->graves[i];
    if (memcmp(g->id, u->id, sizeof g->id) == 0 &&
        (u->boot_epoch < g->boot_epoch ||
         (u->boot_epoch == g->boot_epoch &&
          u->incarnation <= g->incarnation)))
      return true;
  }
  return false;
}

static void reap_one(pm__swim *core, pm__member *m) {
  bury(core, m);
  pm__core_event(core, PM_SWIM_EV_REAP, m);
  pm__table_remove(&core->table, m);
  pm__bq_remove(&core->bq, m->bcast);
  core->counts[m->state]--;
  pm__member_free(m);
}

void pm__state_reap(pm__swim *core, uint64_t now) {
  if (core->counts[PM_MEMBER_DEAD] + core->counts[PM_MEMBER_LEFT] == 0)
    return;
  for (uint32_t i = 0; i < core->table.count;) {
    pm__member *m = core->table.order[i];
    bool gone = m->state == PM_MEMBER_DEAD || m->state == PM_MEMBER_LEFT;
    if (m != core->self && gone &&
        now - m->state_change_ns >= core->cfg.tombstone_ns) {
      reap_one(core, m); /* the last member moves into slot i */
      continue;
    }
    i++;
  }
}
