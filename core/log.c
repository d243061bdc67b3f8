/*
 * core/log.c - the library's only output: log lines to a callback
 * (stderr by default), filtered by level before formatting.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core_int.h"

volatile int pm__log_level = PM_LOG_WARN;
static pm_log_fn log_fn;
static void *log_arg;
static pthread_once_t log_once = PTHREAD_ONCE_INIT;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

static void log_init_from_env(void) {
  const char *v = getenv("PAGEMESH_LOG_LEVEL");
  if (!v)
    return;
  for (size_t i = 0; i < PM_ARRAY_SIZE(level_names); i++)
    if (strcasecmp(v, level_names[i]) == 0)
      pm__log_level = (int)i;
}

/* Runs before any logging decision, from the first open of a peer. */
__attribute__((constructor)) static void log_constructor(void) {
  pthread_once(&log_once, log_init_from_env);
}

void pm_log_set(pm_log_level level, pm_log_fn fn, void *arg) {
  log_fn = fn;
  log_arg = arg;
  pm__log_level = (int)level;
}

void pm__log(pm_log_level level, const char *subsystem, const char *fmt,
             ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (log_fn) {
    log_fn(log_arg, level, subsystem, line);
    return;
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ pagemesh %s %s: %s\n",
          tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
          tm.tm_sec, ts.tv_nsec / 1000000,
          level_names[level < 4 ? level : 3], subsystem, line);
}
