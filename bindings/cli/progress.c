/*
 * bindings/cli/progress.c - the progress report of long commands (see
 * progress.h). Rates and ETA are computed over the whole run so far.
 */
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "progress.h"

double cli_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void human_bytes(double bytes, char *out, size_t size) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    u++;
  }
  snprintf(out, size, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
}

static void human_time(double secs, char *out, size_t size) {
  if (secs < 0 || secs > 360000)
    snprintf(out, size, "--:--");
  else if (secs >= 3600)
    snprintf(out, size, "%d:%02d:%02d", (int)secs / 3600,
             (int)secs / 60 % 60, (int)secs % 60);
  else
    snprintf(out, size, "%02d:%02d", (int)secs / 60, (int)secs % 60);
}

void cli_progress_start(cli_progress *p, FILE *out, uint64_t objects_total,
                        uint64_t bytes_total) {
  memset(p, 0, sizeof *p);
  p->out = out;
  p->tty = isatty(fileno(out));
  p->objects_total = objects_total;
  p->bytes_total = bytes_total;
  p->started = cli_now();
}

static void draw(cli_progress *p, uint64_t objects, uint64_t bytes) {
  double elapsed = cli_now() - p->started;
  double rate = elapsed > 0 ? (double)bytes / elapsed : 0;
  double eta = rate > 0 ? (double)(p->bytes_total - bytes) / rate : -1;
  char done[32], total[32], speed[32], left[32];
  human_bytes((double)bytes, done, sizeof done);
  human_bytes((double)p->bytes_total, total, sizeof total);
  human_bytes(rate, speed, sizeof speed);
  human_time(eta, left, sizeof left);
  double frac = p->bytes_total ? (double)bytes / (double)p->bytes_total : 1;
  if (p->tty) {
    char bar[31];
    int fill = (int)(frac * 30);
    for (int i = 0; i < 30; i++)
      bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    fprintf(p->out, "\r[%s] %3.0f%%  %llu/%llu objects  %s/%s  %s/s  ETA %s ",
            bar, frac * 100, (unsigned long long)objects,
            (unsigned long long)p->objects_total, done, total, speed, left);
  } else {
    fprintf(p->out, "progress: %llu/%llu objects, %s of %s, %s/s, ETA %s\n",
            (unsigned long long)objects, (unsigned long long)p->objects_total,
            done, total, speed, left);
  }
  fflush(p->out);
}

void cli_progress_update(cli_progress *p, uint64_t objects, uint64_t bytes,
                         int force) {
  double now = cli_now();
  if (!force && now - p->last_draw < (p->tty ? 0.1 : 2.0))
    return;
  p->last_draw = now;
  draw(p, objects, bytes);
}

void cli_progress_finish(cli_progress *p, uint64_t objects, uint64_t bytes,
                         uint64_t failed) {
  draw(p, objects, bytes);
  double elapsed = cli_now() - p->started;
  char done[32];
  human_bytes((double)bytes, done, sizeof done);
  fprintf(p->out, "%sloaded %llu objects (%s) in %.1f s%s%llu failed\n",
          p->tty ? "\n" : "", (unsigned long long)objects, done, elapsed,
          failed ? ", " : ", ", (unsigned long long)failed);
}
