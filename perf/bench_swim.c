/*
 * perf/bench_swim.c - membership figures from the simulator, which runs
 * the real SWIM core (real encoding; sealing on request) for N members on
 * virtual time at LAN defaults. For each cluster size and loss rate it
 * measures: how long a join takes to reach every member (p50 and max over
 * members), how long until every member marks a crashed member Dead,
 * against the bound computed from the configuration, false Dead
 * declarations over 10 virtual minutes, messages and bytes per member per
 * second over those minutes, and how long after a 60 s half/half partition
 * heals until all members share one view. It prints a Markdown table, then
 * the cost of sealing every packet.
 *
 *   bench_swim [--quick] [N ...]      (default N: 100 1000)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "membership/swim_int.h"

#define SEC 1000000000ull

typedef struct probe {
  pm__member_id watched;
  uint64_t *first_join, *first_dead;
  uint32_t cap;
  uint64_t dead_events; /* Dead declared of anyone */
} probe;

typedef struct row {
  uint32_t n;
  double loss;
  double join_p50, join_max, dead_max, bound, heal;
  uint64_t false_dead;
  double msgs, bytes, cpu;
} row;

/* CPU seconds of this (single-threaded) process: unlike wall time, not
 * inflated when the machine is shared. */
static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_event(void *arg, uint32_t observer, pm__swim_event_kind kind,
                     const pm__member_info *m, uint64_t now) {
  probe *p = arg;
  if (kind == PM_SWIM_EV_DEAD)
    p->dead_events++;
  if (observer >= p->cap || !pm__member_id_eq(&m->id, &p->watched))
    return;
  if (kind == PM_SWIM_EV_JOIN && !p->first_join[observer])
    p->first_join[observer] = now;
  if (kind == PM_SWIM_EV_DEAD && !p->first_dead[observer])
    p->first_dead[observer] = now;
}

static pm__sim *sim_new(uint32_t n, double loss, bool crypto, probe *p,
                        uint64_t seed) {
  pm__sim_config cfg;
  pm__sim_config_init(&cfg);
  cfg.members = n;
  cfg.loss = loss;
  cfg.crypto = crypto;
  cfg.seed = seed;
  cfg.event_fn = on_event;
  cfg.event_arg = p;
  memset(p, 0, sizeof *p);
  p->cap = n + 1;
  p->first_join = calloc(p->cap, sizeof *p->first_join);
  p->first_dead = calloc(p->cap, sizeof *p->first_dead);
  pm__sim *sim = NULL;
  if (pm__sim_create(&cfg, &sim) != 0) {
    fprintf(stderr, "bench_swim: cannot create a simulator of %u\n", n);
    exit(1);
  }
  return sim;
}

static void sim_done(pm__sim *sim, probe *p) {
  pm__sim_destroy(sim);
  free(p->first_join);
  free(p->first_dead);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Seconds from t0 to each observer's first event (missing: -1). */
static void spread(const uint64_t *at, uint32_t n, uint64_t t0, uint32_t skip,
                   double *p50, double *max) {
  uint64_t *d = malloc(n * sizeof *d);
  uint32_t k = 0;
  bool missing = false;
  for (uint32_t i = 0; i < n; i++) {
    if (i == skip)
      continue;
    if (!at[i])
      missing = true;
    else
      d[k++] = at[i] - t0;
  }
  qsort(d, k, sizeof *d, cmp_u64);
  *p50 = k ? (double)d[k / 2] / SEC : -1;
  *max = missing || !k ? -1 : (double)d[k - 1] / SEC;
  free(d);
}

static void measure_join(row *r) {
  probe p;
  pm__sim *sim = sim_new(r->n, r->loss, false, &p, 21);
  pm__sim_run_until(sim, 20 * SEC);
  uint32_t index;
  pm__sim_add(sim, &index);
  p.watched = pm__sim_id(sim, index);
  uint64_t t0 = pm__sim_now(sim);
  pm__sim_run_until(sim, t0 + 30 * SEC);
  spread(p.first_join, r->n, t0, UINT32_MAX, &r->join_p50, &r->join_max);
  sim_done(sim, &p);
}

static void measure_kill(row *r) {
  probe p;
  pm__sim *sim = sim_new(r->n, r->loss, false, &p, 22);
  pm__sim_run_until(sim, 20 * SEC);
  uint32_t victim = r->n / 2;
  p.watched = pm__sim_id(sim, victim);
  pm__sim_kill(sim, victim);
  uint64_t t0 = pm__sim_now(sim);
  pm__swim_config cfg;
  pm__swim_config_init(&cfg);
  uint64_t bound = pm__swim_dead_bound_ns(&cfg, r->n);
  pm__sim_run_until(sim, t0 + bound + 30 * SEC);
  double p50;
  spread(p.first_dead, r->n, t0, victim, &p50, &r->dead_max);
  r->bound = (double)bound / SEC;
  sim_done(sim, &p);
}

static void measure_steady(row *r, bool crypto) {
  probe p;
  pm__sim *sim = sim_new(r->n, r->loss, crypto, &p, 23);
  double t0 = cpu_now();
  uint64_t span = 600 * SEC;
  pm__sim_run_until(sim, span);
  r->cpu = cpu_now() - t0;
  pm__sim_stats st;
  pm__sim_get_stats(sim, &st);
  double member_s = (double)r->n * (double)(span / SEC);
  r->msgs = (double)(st.packets + st.streams) / member_s;
  r->bytes = (double)(st.packet_bytes + st.stream_bytes) / member_s;
  r->false_dead = p.dead_events; /* nobody crashed in this run */
  sim_done(sim, &p);
}

static bool consistent(pm__sim *sim, void *arg) {
  (void)arg;
  return pm__sim_consistent(sim);
}

static void measure_heal(row *r) {
  probe p;
  pm__sim *sim = sim_new(r->n, r->loss, false, &p, 24);
  pm__sim_run_until(sim, 10 * SEC);
  for (uint32_t i = 0; i < r->n; i++)
    pm__sim_set_group(sim, i, i % 2);
  pm__sim_run_until(sim, 70 * SEC);
  pm__sim_heal(sim);
  uint64_t t0 = pm__sim_now(sim);
  bool ok = pm__sim_run_while(sim, t0 + 600 * SEC, SEC, consistent, NULL);
  r->heal = ok ? (double)(pm__sim_now(sim) - t0) / SEC : 9999;
  sim_done(sim, &p);
}

static void print_header(void) {
  printf("| N | loss | join p50 s | join max s | all Dead s | bound s | "
         "false Dead /10 min | msgs/member/s | bytes/member/s | heal s | "
         "sim CPU s |\n");
  printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
}

static void print_row(const row *r) {
  char heal[32];
  if (r->heal >= 0)
    snprintf(heal, sizeof heal, "%.0f", r->heal);
  else
    snprintf(heal, sizeof heal, "%s", "-");
  printf("| %u | %.0f%% | %.2f | %.2f | %.2f | %.1f | %llu | %.1f | %.0f | "
         "%s | %.1f |\n",
         r->n, r->loss * 100, r->join_p50, r->join_max, r->dead_max, r->bound,
         (unsigned long long)r->false_dead, r->msgs, r->bytes, heal, r->cpu);
  fflush(stdout);
}

int main(int argc, char **argv) {
  bool quick = false;
  uint32_t sizes[16], count = 0;
  for (int i = 1; i < argc && count < 16; i++) {
    if (strcmp(argv[i], "--quick") == 0)
      quick = true;
    else
      sizes[count++] = (uint32_t)strtoul(argv[i], NULL, 10);
  }
  if (count == 0) {
    sizes[count++] = 100;
    sizes[count++] = 1000;
  }
  const double losses[] = {0.0, 0.05};
  printf("SWIM simulator, LAN defaults, 1 ms +- 1 ms one-way delay; 'sim "
         "CPU' is the simulator's CPU time for the 10 minute run.\n\n");
  print_header();
  for (uint32_t s = 0; s < count; s++) {
    for (int l = 0; l < 2; l++) {
      row r = {.n = sizes[s], .loss = losses[l], .heal = -1};
      measure_join(&r);
      measure_kill(&r);
      measure_steady(&r, false);
      if (!quick)
        measure_heal(&r);
      print_row(&r);
    }
  }
  uint32_t n = sizes[count - 1];
  row plain = {.n = n, .loss = 0.05}, sealed = plain;
  measure_steady(&plain, false);
  measure_steady(&sealed, true);
  printf("\nSealing every packet (XChaCha20-Poly1305), %u members, 5%% loss, "
         "10 min: %.1f s CPU with, %.1f s without (x%.2f); %.0f vs %.0f "
         "bytes/member/s.\n",
         n, sealed.cpu, plain.cpu, sealed.cpu / plain.cpu, sealed.bytes,
         plain.bytes);
  return 0;
}
