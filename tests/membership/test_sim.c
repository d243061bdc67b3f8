/*
 * tests/membership/test_sim.c - the big scenarios of the membership issue,
 * run on the simulator with 1000 members of the real core at LAN defaults:
 * how fast a join reaches everyone, how fast a crash is known everywhere
 * (within the suspicion bound computed from the configuration), no false
 * Dead over 10 virtual minutes at 5% loss, bounded traffic per member, a
 * healed partition that ends in one view, and a restarted member that is
 * not shadowed by its own past. Run with PM_SIM_MEMBERS=n to change the
 * size (the default is the 1000; under the sanitizers the two long
 * scenarios use 500, see members_long).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "membership/swim_int.h"

#define SEC 1000000000ull

TestSuite(sim, .timeout = 600);

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif

static uint32_t members(void) {
  const char *env = getenv("PM_SIM_MEMBERS");
  return env ? (uint32_t)strtoul(env, NULL, 10) : 1000;
}

/* The two long scenarios run 3-4 times slower under the sanitizers; there
 * they use half the members to keep the suite near two minutes. */
static uint32_t members_long(void) {
#ifdef SANITIZED
  if (!getenv("PM_SIM_MEMBERS"))
    return 500;
#endif
  return members();
}

/* What the event hook records: for one watched id, when each observer first
 * saw it join and first saw it dead, and every Dead declared of anyone. */
typedef struct watch {
  pm__member_id id;
  uint64_t *joined_at, *dead_at;
  uint32_t joined, dead, cap;
  uint64_t false_dead; /* Dead events about members that are up */
  pm__sim *sim;
} watch;

static void watch_init(watch *w, uint32_t cap) {
  memset(w, 0, sizeof *w);
  w->cap = cap;
  w->joined_at = calloc(cap, sizeof *w->joined_at);
  w->dead_at = calloc(cap, sizeof *w->dead_at);
}

static void watch_free(watch *w) {
  free(w->joined_at);
  free(w->dead_at);
}

static bool up(pm__sim *sim, const pm__member_id *id) {
  for (uint32_t i = 0; i < pm__sim_size(sim); i++) {
    pm__member_id other = pm__sim_id(sim, i);
    if (pm__member_id_eq(&other, id))
      return pm__sim_alive(sim, i);
  }
  return false;
}

static void on_event(void *arg, uint32_t observer, pm__swim_event_kind kind,
                     const pm__member_info *m, uint64_t now) {
  watch *w = arg;
  if (kind == PM_SWIM_EV_DEAD && w->sim && up(w->sim, &m->id))
    w->false_dead++;
  if (observer >= w->cap || !pm__member_id_eq(&m->id, &w->id))
    return;
  if (kind == PM_SWIM_EV_JOIN && !w->joined_at[observer]) {
    w->joined_at[observer] = now;
    w->joined++;
  }
  if (kind == PM_SWIM_EV_DEAD && !w->dead_at[observer]) {
    w->dead_at[observer] = now;
    w->dead++;
  }
}

static pm__sim *sim_new(uint32_t n, double loss, watch *w, uint64_t seed) {
  pm__sim_config cfg;
  pm__sim_config_init(&cfg);
  cfg.members = n;
  cfg.loss = loss;
  cfg.seed = seed;
  cfg.event_fn = on_event;
  cfg.event_arg = w;
  pm__sim *sim = NULL;
  cr_assert_eq(pm__sim_create(&cfg, &sim), 0);
  w->sim = sim;
  return sim;
}

static bool consistent(pm__sim *sim, void *arg) {
  (void)arg;
  return pm__sim_consistent(sim);
}

Test(sim, join_reaches_everyone_fast) {
  uint32_t n = members();
  watch w;
  watch_init(&w, n + 1);
  pm__sim *sim = sim_new(n, 0.0, &w, 11);
  pm__sim_run_until(sim, 20 * SEC); /* let the start-up gossip settle */
  uint32_t index;
  cr_assert_eq(pm__sim_add(sim, &index), 0);
  w.id = pm__sim_id(sim, index);
  uint64_t t0 = pm__sim_now(sim);
  pm__sim_run_until(sim, t0 + 10 * SEC);
  cr_assert_eq(w.joined, n, "%u of %u members saw the join", w.joined, n);
  uint64_t worst = 0;
  for (uint32_t i = 0; i < n; i++)
    worst = w.joined_at[i] - t0 > worst ? w.joined_at[i] - t0 : worst;
  fprintf(stderr, "join: all %u members knew within %.2f s\n", n,
          (double)worst / SEC);
  cr_assert_lt(worst, 5 * SEC);
  pm__sim_destroy(sim);
  watch_free(&w);
}

Test(sim, crash_is_dead_everywhere_within_bound) {
  uint32_t n = members();
  watch w;
  watch_init(&w, n);
  pm__sim *sim = sim_new(n, 0.0, &w, 12);
  pm__sim_run_until(sim, 20 * SEC);
  uint32_t victim = n / 2;
  w.id = pm__sim_id(sim, victim);
  pm__sim_kill(sim, victim);
  uint64_t t0 = pm__sim_now(sim);
  pm__swim_config defaults;
  pm__swim_config_init(&defaults);
  uint64_t bound = pm__swim_dead_bound_ns(&defaults, n);
  pm__sim_run_until(sim, t0 + bound);
  cr_assert_eq(w.dead, n - 1, "%u of %u marked the crashed member Dead", w.dead,
               n - 1);
  uint64_t worst = 0;
  for (uint32_t i = 0; i < n; i++)
    if (i != victim && w.dead_at[i] - t0 > worst)
      worst = w.dead_at[i] - t0;
  fprintf(stderr, "crash: all Dead after %.2f s (bound %.2f s)\n",
          (double)worst / SEC, (double)bound / SEC);
  cr_assert_leq(worst, bound);
  cr_assert_eq(w.false_dead, 0);
  pm__sim_destroy(sim);
  watch_free(&w);
}

Test(sim, no_false_dead_at_5_percent_loss_and_bounded_traffic) {
  uint32_t n = members_long();
  watch w;
  watch_init(&w, n);
  pm__sim *sim = sim_new(n, 0.05, &w, 13);
  uint64_t span = 600 * SEC;
  pm__sim_run_until(sim, span);
  pm__sim_stats st;
  pm__sim_get_stats(sim, &st);
  double per_member_s = (double)n * (double)(span / SEC);
  double msgs = (double)(st.packets + st.streams) / per_member_s;
  double bytes = (double)(st.packet_bytes + st.stream_bytes) / per_member_s;
  fprintf(stderr,
          "%u members, 5%% loss, 10 min: %llu false Dead, %.1f msgs and "
          "%.0f bytes per member per second\n",
          n, (unsigned long long)w.false_dead, msgs, bytes);
  cr_assert_eq(w.false_dead, 0);
  cr_assert_lt(msgs, 30.0);
  cr_assert_lt(bytes, 8192.0);
  pm__sim_destroy(sim);
  watch_free(&w);
}

Test(sim, healed_partition_ends_in_one_view) {
  uint32_t n = members_long();
  watch w;
  watch_init(&w, n);
  pm__sim *sim = sim_new(n, 0.0, &w, 14);
  pm__sim_run_until(sim, 10 * SEC);
  for (uint32_t i = 0; i < n; i++)
    pm__sim_set_group(sim, i, i % 2);
  pm__sim_run_until(sim, pm__sim_now(sim) + 60 * SEC);
  /* Each side has declared the other Dead by now. */
  pm__member_info info;
  pm__member_id other = pm__sim_id(sim, 1);
  cr_assert_eq(pm__swim_lookup(pm__sim_core(sim, 0), &other, &info), 0);
  cr_assert_geq(info.state, PM_MEMBER_DEAD);
  pm__sim_heal(sim);
  uint64_t t0 = pm__sim_now(sim);
  bool ok = pm__sim_run_while(sim, t0 + 300 * SEC, SEC, consistent, NULL);
  fprintf(stderr, "partition of %u: one view %.0f s after the heal\n", n,
          (double)(pm__sim_now(sim) - t0) / SEC);
  cr_assert(ok, "no single view 300 s after the heal");
  pm__sim_destroy(sim);
  watch_free(&w);
}

Test(sim, restarted_member_is_alive_not_shadowed) {
  uint32_t n = members() < 200 ? members() : 200;
  watch w;
  watch_init(&w, n);
  pm__sim *sim = sim_new(n, 0.0, &w, 15);
  pm__sim_run_until(sim, 10 * SEC);
  uint32_t victim = 7;
  pm__sim_kill(sim, victim);
  pm__sim_run_until(sim, pm__sim_now(sim) + 60 * SEC);
  pm__member_id id = pm__sim_id(sim, victim);
  pm__member_info before;
  cr_assert_eq(pm__swim_lookup(pm__sim_core(sim, 0), &id, &before), 0);
  cr_assert_eq(before.state, PM_MEMBER_DEAD);
  cr_assert_eq(pm__sim_restart(sim, victim), 0);
  uint64_t t0 = pm__sim_now(sim);
  bool ok = pm__sim_run_while(sim, t0 + 60 * SEC, SEC / 10, consistent, NULL);
  cr_assert(ok, "the restarted member is not Alive everywhere");
  pm__member_info after;
  cr_assert_eq(pm__swim_lookup(pm__sim_core(sim, 0), &id, &after), 0);
  cr_assert_eq(after.state, PM_MEMBER_ALIVE);
  cr_assert_gt(after.boot_epoch, before.boot_epoch);
  fprintf(stderr, "restart: Alive everywhere after %.2f s\n",
          (double)(pm__sim_now(sim) - t0) / SEC);
  /* Old Dead records still travel in push-pulls; none may win. */
  pm__sim_run_until(sim, pm__sim_now(sim) + 200 * SEC);
  cr_assert(pm__sim_consistent(sim));
  pm__sim_destroy(sim);
  watch_free(&w);
}

/* A crash is a failed probe for whoever probes the dead member, and its
 * relays nack in time: a healthy prober does not count its own health
 * down (the relays' nacks came at the very end of the probe, too late to
 * count, and probers of the dead member rose to awareness 2-3). */
Test(sim, probers_of_a_crashed_member_stay_healthy) {
  uint32_t n = 50;
  watch w;
  watch_init(&w, n);
  pm__sim *sim = sim_new(n, 0.0, &w, 21);
  pm__sim_run_until(sim, 20 * SEC);
  pm__sim_kill(sim, 7);
  uint64_t t0 = pm__sim_now(sim), worst = 0;
  for (uint64_t t = t0; t < t0 + 20 * SEC; t += SEC / 10) {
    pm__sim_run_until(sim, t);
    for (uint32_t i = 0; i < n; i++) {
      pm__swim *core = pm__sim_core(sim, i);
      if (!core)
        continue;
      pm__swim_stats st;
      pm__swim_get_stats(core, &st);
      worst = st.awareness > worst ? st.awareness : worst;
    }
  }
  cr_assert_eq(worst, 0, "a healthy member rose to awareness %llu",
               (unsigned long long)worst);
  pm__sim_destroy(sim);
  watch_free(&w);
}
