/*
 * membership/suspicion.c - Lifeguard's suspicion timer: a suspected member
 * is declared Dead after a timeout that starts long (max) and shrinks
 * toward min as other members independently confirm the suspicion, so a
 * member that only one slow node cannot reach gets time to refute, while a
 * member that everyone finds gone is declared Dead quickly. Also the bounds
 * derived from the configuration that tests and benchmarks check against.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "membership/swim_impl.h"

uint64_t pm__swim_suspicion_timeout_ns(uint64_t min_ns, uint64_t max_ns,
                                       uint32_t c, uint32_t k) {
  if (k == 0 || max_ns <= min_ns)
    return min_ns;
  double frac = log((double)c + 1.0) / log((double)k + 1.0);
  double timeout = (double)max_ns - (double)(max_ns - min_ns) * frac;
  if (timeout < (double)min_ns)
    return min_ns;
  /* Whole milliseconds, as memberlist does, so that runs are stable. */
  uint64_t ms = (uint64_t)floor(timeout / 1e6);
  return PM_MAX(ms * 1000000u, min_ns);
}

static bool confirmed_by(const pm__suspicion *s, const uint8_t *from) {
  uint32_t known = PM_MIN(s->n + 1, (uint32_t)PM_SUSPICION_CONFIRM_MAX + 1);
  for (uint32_t i = 0; i < known; i++)
    if (memcmp(s->confirmers[i].bytes, from, PM_SWIM_ID_LEN) == 0)
      return true;
  return false;
}

pm__suspicion *pm__suspicion_new(uint64_t now, uint32_t k, uint64_t min_ns,
                                 uint64_t max_ns, const uint8_t *from) {
  pm__suspicion *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  s->start_ns = now;
  s->k = PM_MIN(k, (uint32_t)PM_SUSPICION_CONFIRM_MAX);
  s->min_ns = min_ns;
  s->max_ns = s->k ? max_ns : min_ns;
  s->deadline_ns =
      now + pm__swim_suspicion_timeout_ns(min_ns, s->max_ns, 0, s->k);
  if (from)
    memcpy(s->confirmers[0].bytes, from, PM_SWIM_ID_LEN);
  return s;
}

bool pm__suspicion_confirm(pm__suspicion *s, const uint8_t *from) {
  if (s->n >= s->k || !from || confirmed_by(s, from))
    return false;
  s->n++;
  memcpy(s->confirmers[s->n].bytes, from, PM_SWIM_ID_LEN);
  s->deadline_ns = s->start_ns + pm__swim_suspicion_timeout_ns(
                                     s->min_ns, s->max_ns, s->n, s->k);
  return true;
}

/* ---- bounds from the configuration --------------------------------------- */

/* ceil(log10(n)) for n >= 1, exactly. */
static uint32_t ceil_log10(uint32_t n) {
  uint32_t digits = 0;
  for (uint64_t p = 1; p < n; p *= 10)
    digits++;
  return digits;
}

uint32_t pm__retransmit_limit(uint32_t mult, uint32_t n) {
  return mult * ceil_log10(n + 1);
}

uint64_t pm__suspicion_min_ns(const pm__swim_config *cfg, uint32_t n) {
  double scale = fmax(1.0, log10(fmax(1.0, (double)n)));
  double ms = floor(scale * 1000.0);
  return (uint64_t)((double)cfg->suspicion_mult * ms *
                    (double)cfg->probe_interval_ns / 1000.0);
}

uint64_t pm__swim_dead_bound_ns(const pm__swim_config *cfg, uint32_t n) {
  uint64_t max_ns = pm__suspicion_min_ns(cfg, n) * cfg->suspicion_max_mult;
  uint64_t spread = (uint64_t)pm__retransmit_limit(cfg->retransmit_mult, n) *
                    cfg->gossip_interval_ns;
  return 3 * cfg->probe_interval_ns + max_ns + spread;
}
