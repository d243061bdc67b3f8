/*
 * bindings/cli/pagemeshd.c - the node peer as a daemon. Options come from
 * the command line, then PAGEMESH_* environment variables, then an INI
 * config file (--config), then defaults: the first that sets a value wins.
 * It logs to stderr or --log-file, serves Prometheus metrics on
 * --metrics-listen (metrics.c), and on SIGTERM or SIGINT closes the peer
 * cleanly (processes attached to it take over the cache directory).
 */
#include <errno.h>
#include <ini.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "metrics.h"
#include "pagemesh.h"

enum {
  OPT_CONFIG = OPT_COMMON_LAST, OPT_LOG_FILE, OPT_LOG_LEVEL,
  OPT_METRICS_LISTEN
};

static const struct option long_options[] = {
    CLI_COMMON_LONG_OPTIONS,
    CLI_MESH_LONG_OPTIONS,
    {"config", required_argument, NULL, OPT_CONFIG},
    {"log-file", required_argument, NULL, OPT_LOG_FILE},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static const char usage[] =
    "usage: pagemeshd [options]\n"
    "Runs the node peer of a cache directory until SIGTERM.\n\n"
    "options:\n" CLI_COMMON_USAGE CLI_MESH_USAGE
    "  --config FILE         INI file: keys as the long options, in a\n"
    "                        [pagemesh] section (e.g. disk-capacity = 100G)\n"
    "  --log-file FILE       append log lines here instead of stderr\n"
    "  --log-level LEVEL     error, warn, info (default) or debug\n"
    "  --metrics-listen IP:PORT  serve Prometheus metrics at GET /metrics\n"
    "                        (env PAGEMESH_METRICS_LISTEN)\n";

typedef struct daemon_config {
  pm_options opts;
  const char *config_file;
  const char *log_file;
  const char *log_level;     /* --log-level */
  const char *ini_log_level; /* the configuration file's, below the
                                environment's PAGEMESH_LOG_LEVEL */
  const char *metrics_listen;
  /* Flags seen on the command line, which the config file must not
   * override: indexed by option value. */
  unsigned char from_flags[OPT_COMMON_LAST + 8];
  char *config_strings[32];
  size_t config_string_count;
} daemon_config;

static FILE *log_out;
static pthread_mutex_t log_mutex = PTHREAD_MUTEX_INITIALIZER;

static void log_line(void *arg, pm_log_level level, const char *subsystem,
                     const char *message) {
  static const char *const names[] = {"error", "warn", "info", "debug"};
  (void)arg;
  time_t now = time(NULL);
  struct tm tm;
  char when[32];
  gmtime_r(&now, &tm);
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  pthread_mutex_lock(&log_mutex);
  fprintf(log_out, "%s pagemeshd[%d] %s %s: %s\n", when, (int)getpid(),
          names[level <= PM_LOG_DEBUG ? level : PM_LOG_DEBUG], subsystem,
          message);
  fflush(log_out);
  pthread_mutex_unlock(&log_mutex);
}

static int level_from(const char *text, pm_log_level *out) {
  static const char *const names[] = {"error", "warn", "info", "debug"};
  for (int i = 0; i < 4; i++)
    if (strcmp(text, names[i]) == 0)
      return *out = (pm_log_level)i, 0;
  fprintf(stderr, "pagemeshd: log level '%s': error, warn, info or debug\n",
          text);
  return -1;
}

/* inih callback: keys of the [pagemesh] section (or no section). */
static int config_key(void *arg, const char *section, const char *key,
                      const char *value) {
  daemon_config *d = arg;
  if (*section && strcmp(section, "pagemesh") != 0) {
    fprintf(stderr, "pagemeshd: %s: unknown section [%s]\n", d->config_file,
            section);
    return 0;
  }
  if (d->config_string_count == sizeof d->config_strings /
                                    sizeof d->config_strings[0])
    return 0;
  char *copy = strdup(value);
  if (!copy)
    return 0;
  d->config_strings[d->config_string_count++] = copy;
  if (strcmp(key, "log-file") == 0 || strcmp(key, "log_file") == 0) {
    if (!d->log_file)
      d->log_file = copy;
    return 1;
  }
  if (strcmp(key, "log-level") == 0 || strcmp(key, "log_level") == 0) {
    d->ini_log_level = copy;
    return 1;
  }
  if (strcmp(key, "metrics-listen") == 0 ||
      strcmp(key, "metrics_listen") == 0) {
    if (!d->metrics_listen) /* the flag and the environment win */
      d->metrics_listen = copy;
    return 1;
  }
  static const struct option keys[] = {CLI_COMMON_LONG_OPTIONS,
                                       CLI_MESH_LONG_OPTIONS};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    char name[64];
    snprintf(name, sizeof name, "%s", key);
    for (char *p = name; *p; p++)
      *p = *p == '_' ? '-' : *p;
    if (strcmp(name, keys[i].name) == 0 && d->from_flags[keys[i].val])
      return 1; /* the command line wins */
  }
  int r = cli_apply_common_key(&d->opts, key, copy);
  if (r == 0)
    fprintf(stderr, "pagemeshd: %s: unknown key '%s'\n", d->config_file, key);
  return r == 1;
}

static int parse_args(daemon_config *d, int argc, char **argv) {
  int opt;
  while ((opt = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
    switch (opt) {
    case OPT_CONFIG: d->config_file = optarg; break;
    case OPT_LOG_FILE: d->log_file = optarg; break;
    case OPT_LOG_LEVEL: d->log_level = optarg; break;
    case OPT_METRICS_LISTEN: d->metrics_listen = optarg; break;
    case 'h': fputs(usage, stdout); exit(0);
    default:
      /* The option's own error was said: then a pointer to the usage,
       * not all of it (a launcher showing the log's last lines showed
       * only usage, never the error). */
      if (opt < OPT_CACHE_DIR || opt >= OPT_COMMON_LAST ||
          cli_apply_common(&d->opts, opt, optarg) != 0)
        return fputs("pagemeshd: see pagemeshd --help\n", stderr), -1;
      d->from_flags[opt] = 1;
    }
  }
  if (optind != argc)
    return fprintf(stderr, "pagemeshd: unexpected argument '%s'\n",
                   argv[optind]), -1;
  return 0;
}

/* Environment variables apply where no flag set the value; the config file
 * applies where neither did. */
static int load_environment(daemon_config *d) {
  pm_options env = d->opts;
  if (pm_options_load_env(&env) != 0)
    return fprintf(stderr, "pagemeshd: %s\n", pm_peer_errmsg(NULL)), -1;
  if (!d->from_flags[OPT_CACHE_DIR] && env.cache_dir != d->opts.cache_dir)
    d->opts.cache_dir = env.cache_dir, d->from_flags[OPT_CACHE_DIR] = 1;
#define FROM_ENV(field, opt, var)                                             \
  if (!d->from_flags[opt] && getenv(var))                                     \
    d->opts.field = env.field, d->from_flags[opt] = 1;
  FROM_ENV(disk_capacity, OPT_DISK, "PAGEMESH_DISK_CAPACITY")
  FROM_ENV(ram_capacity, OPT_RAM, "PAGEMESH_RAM_CAPACITY")
  FROM_ENV(page_size, OPT_PAGE, "PAGEMESH_PAGE_SIZE")
  FROM_ENV(eviction, OPT_EVICTION, "PAGEMESH_EVICTION")
  FROM_ENV(meta_ttl_ms, OPT_META_TTL, "PAGEMESH_META_TTL_MS")
#undef FROM_ENV
#define STR_FROM_ENV(field, opt)                                              \
  if (!d->from_flags[opt] && env.field != d->opts.field)                      \
    d->opts.field = env.field, d->from_flags[opt] = 1;
  STR_FROM_ENV(listen, OPT_LISTEN)
  STR_FROM_ENV(seeds, OPT_SEEDS)
  STR_FROM_ENV(cluster_key_file, OPT_KEY_FILE)
  STR_FROM_ENV(cluster_id, OPT_CLUSTER_ID)
  STR_FROM_ENV(transport, OPT_TRANSPORT)
  STR_FROM_ENV(transport_listen, OPT_TRANSPORT_LISTEN)
  STR_FROM_ENV(zone, OPT_ZONE)
  STR_FROM_ENV(node_group, OPT_NODE_GROUP)
#undef STR_FROM_ENV
  if (!d->from_flags[OPT_REPLICAS] && getenv("PAGEMESH_REPLICAS"))
    d->opts.replicas = env.replicas, d->from_flags[OPT_REPLICAS] = 1;
  if (!d->from_flags[OPT_REQUEST_TIMEOUT] &&
      getenv("PAGEMESH_REQUEST_TIMEOUT_MS"))
    d->opts.request_timeout_ms = env.request_timeout_ms,
    d->from_flags[OPT_REQUEST_TIMEOUT] = 1;
  const char *insecure = getenv("PAGEMESH_INSECURE_DATA");
  if (!d->from_flags[OPT_INSECURE_DATA] && insecure && *insecure)
    d->opts.flags = (d->opts.flags & ~(uint32_t)PM_OPEN_INSECURE_DATA) |
                    (env.flags & PM_OPEN_INSECURE_DATA),
    d->from_flags[OPT_INSECURE_DATA] = 1; /* the config file does not win */
  if (!d->metrics_listen && getenv("PAGEMESH_METRICS_LISTEN") &&
      *getenv("PAGEMESH_METRICS_LISTEN"))
    d->metrics_listen = getenv("PAGEMESH_METRICS_LISTEN");
  d->opts.readahead_pages = env.readahead_pages;
  d->opts.io_threads = env.io_threads;
  d->opts.origin_timeout_ms = env.origin_timeout_ms;
  d->opts.origin_retries = env.origin_retries;
  return 0;
}

static int setup_logging(daemon_config *d) {
  pm_log_level level = PM_LOG_INFO;
  const char *env_level = getenv("PAGEMESH_LOG_LEVEL");
  if (!d->log_level && env_level && *env_level)
    d->log_level = env_level;
  if (!d->log_level)
    d->log_level = d->ini_log_level;
  if (d->log_level && level_from(d->log_level, &level) != 0)
    return -1;
  log_out = stderr;
  if (d->log_file && !(log_out = fopen(d->log_file, "ae")))
    return fprintf(stderr, "pagemeshd: %s: %s\n", d->log_file,
                   strerror(errno)), -1;
  pm_log_set(level, log_line, NULL);
  return 0;
}

int main(int argc, char **argv) {
  cli_guard_std_fds();
  static daemon_config d;
  pm_options_init(&d.opts);
  if (parse_args(&d, argc, argv) != 0 || load_environment(&d) != 0)
    return 2;
  if (d.config_file && ini_parse(d.config_file, config_key, &d) != 0) {
    fprintf(stderr, "pagemeshd: %s: cannot read or parse it\n",
            d.config_file);
    return 2;
  }
  if (setup_logging(&d) != 0)
    return 2;
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, NULL); /* threads inherit the mask */
  signal(SIGPIPE, SIG_IGN);
  d.opts.flags |= PM_OPEN_NODE_ONLY;
  pm_peer *peer;
  int err = pm_peer_open(&d.opts, &peer);
  if (err) {
    log_line(NULL, PM_LOG_ERROR, "pagemeshd", pm_peer_errmsg(NULL));
    return err == PM_EBUSY ? 3 : 1;
  }
  cli_metrics *metrics = NULL;
  if (d.metrics_listen &&
      cli_metrics_start(peer, d.metrics_listen, &metrics) != 0) {
    log_line(NULL, PM_LOG_ERROR, "pagemeshd", "cannot serve metrics");
    pm_peer_close(peer);
    return 1;
  }
  char start[256];
  snprintf(start, sizeof start, "node peer running (pid %d)", (int)getpid());
  log_line(NULL, PM_LOG_INFO, "pagemeshd", start);
  if (metrics) {
    snprintf(start, sizeof start, "metrics at http://%s/metrics (port %u)",
             d.metrics_listen, cli_metrics_port(metrics));
    log_line(NULL, PM_LOG_INFO, "pagemeshd", start);
  }
  /* Until a signal, or until `pagemesh drain` has taken the node out of
   * the mesh. */
  int sig = -1;
  struct timespec tick = {.tv_sec = 0, .tv_nsec = 200000000};
  while (sig < 0 && !pm_peer_drained(peer)) {
    siginfo_t info;
    sig = sigtimedwait(&stop, &info, &tick);
  }
  log_line(NULL, PM_LOG_INFO, "pagemeshd",
           sig == SIGTERM  ? "SIGTERM: shutting down"
           : sig == SIGINT ? "SIGINT: shutting down"
                           : "drained: shutting down");
  cli_metrics_stop(metrics);
  pm_peer_close(peer);
  log_line(NULL, PM_LOG_INFO, "pagemeshd", "stopped");
  for (size_t i = 0; i < d.config_string_count; i++)
    free(d.config_strings[i]);
  return 0;
}
