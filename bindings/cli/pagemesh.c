/*
 * bindings/cli/pagemesh.c - the `pagemesh` command: read objects through
 * the cache (cat, get), look at them (stat, ls) and at the cache (stats).
 * It uses the public header only, like any other user of the library.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"
#include "pagemesh.h"

#define CHUNK (8u << 20)


static const char usage[] =
    "usage: pagemesh [options] COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  cat URI... [--offset N] [--length N]\n"
    "                                      write (part of) objects to stdout\n"
    "  get URI FILE                        copy an object to a local file\n"
    "  stat URI [--json]                   size, version and mtime\n"
    "  ls URI [--json] [-r]                list a bucket, prefix or "
    "directory\n"
    "  stats [--json]                      what the cache did so far\n"
    "  status [--json]                     the running node peer: pid,\n"
    "                                      attached processes, cache use\n"
    "  members [--json]                    the mesh as the node peer sees it\n"
    "  load URI_PREFIX [--parallel N] [--json]\n"
    "                                      warm the cache with every object\n"
    "                                      under a prefix, with progress\n"
    "  evict URI_PREFIX                    drop this node's cached pages\n"
    "  invalidate URI_PREFIX               forget metadata (re-ask origin)\n"
    "  capacity [--disk SIZE] [--ram SIZE] change the node peer's capacity\n"
    "  drain                               hand pages to the other members\n"
    "                                      and take this node out of the mesh\n"
    "  version                             print the library version\n"
    "\n"
    "options:\n" CLI_COMMON_USAGE
    "  --no-cache            read the origin directly (a baseline)\n"
    "  --stats               print this run's cache counters as JSON to "
    "stderr\n"
    "  --json                machine-readable output\n"
    "  -r, --recursive       ls: every object below the URI\n"
    "\n"
    "Origins: s3://BUCKET/KEY (AWS_* environment), gs:// or gcs://BUCKET/KEY,"
    "\naz://CONTAINER/BLOB, "
    "abfs[s]://CONTAINER@ACCOUNT.dfs.core.windows.net/BLOB,\n"
    "hf://[datasets/|spaces/]ORG/NAME/PATH, http(s)://..., file:///PATH or a\n"
    "plain path.\n";

int cli_fail(cli *c, const char *what, int err) {
  const char *detail = pm_peer_errmsg(c->peer);
  size_t n = strlen(what);
  if (*detail && !strncmp(detail, what, n) && detail[n] == ':')
    fprintf(stderr, "pagemesh: %s (%s)\n", detail, pm_err_name(err));
  else /* the detail does not name the object itself */
    fprintf(stderr, "pagemesh: %s: %s (%s)\n", what,
            *detail ? detail : pm_strerror(err), pm_err_name(err));
  return 1;
}

enum { OPT_NO_CACHE = OPT_COMMON_LAST, OPT_STATS, OPT_JSON, OPT_OFFSET,
       OPT_LENGTH, OPT_PARALLEL, OPT_SET_DISK, OPT_SET_RAM };

static const struct option long_options[] = {
    CLI_COMMON_LONG_OPTIONS,
    {"no-cache", no_argument, NULL, OPT_NO_CACHE},
    {"stats", no_argument, NULL, OPT_STATS},
    {"json", no_argument, NULL, OPT_JSON},
    {"offset", required_argument, NULL, OPT_OFFSET},
    {"length", required_argument, NULL, OPT_LENGTH},
    {"recursive", no_argument, NULL, 'r'},
    {"parallel", required_argument, NULL, OPT_PARALLEL},
    {"disk", required_argument, NULL, OPT_SET_DISK},
    {"ram", required_argument, NULL, OPT_SET_RAM},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int apply_option(cli *c, int opt, const char *arg) {
  switch (opt) {
  case OPT_OFFSET: return cli_parse_size("--offset", arg, &c->offset);
  case OPT_LENGTH: return cli_parse_size("--length", arg, &c->length);
  case OPT_NO_CACHE: c->opts.flags |= PM_OPEN_PASSTHROUGH; return 0;
  case OPT_SET_DISK: return cli_parse_size("--disk", arg, &c->disk_capacity);
  case OPT_SET_RAM: return cli_parse_size("--ram", arg, &c->ram_capacity);
  case OPT_PARALLEL: {
    uint64_t v;
    if (cli_parse_size("--parallel", arg, &v) || v == 0 || v > 64)
      return fprintf(stderr, "pagemesh: --parallel: 1..64\n"), -1;
    c->parallel = (unsigned)v;
    return 0;
  }
  case OPT_STATS: c->print_stats = 1; return 0;
  case OPT_JSON: c->json = 1; return 0;
  case 'r': c->recursive = 1; return 0;
  case 'h': fputs(usage, stdout); exit(fflush(stdout) != 0);
  default:
    if (opt >= OPT_CACHE_DIR && opt < OPT_COMMON_LAST)
      return cli_apply_common(&c->opts, opt, arg);
    fputs(usage, stderr);
    return -1;
  }
}

/* ---- commands ------------------------------------------------------------ */

/* The bytes asked for of one version of uri into out: 0, 1 (out failed,
 * said), or a pm_err not said yet. */
static int copy_version(cli *c, const char *uri, const char *version,
                        char *buf, FILE *out) {
  uint64_t pos = c->offset, left = c->length;
  while (left > 0) {
    size_t want = (size_t)(left < CHUNK ? left : CHUNK);
    ssize_t n = pm_read_version(c->peer, uri, version, pos, buf, want);
    if (n <= 0)
      return (int)n;
    if (fwrite(buf, 1, (size_t)n, out) != (size_t)n) {
      fprintf(stderr, "pagemesh: write error: %s\n", strerror(errno));
      return 1;
    }
    pos += (uint64_t)n;
    left -= (uint64_t)n;
  }
  return 0;
}

/* Copy the range asked for, every chunk from the version the object had
 * when the copy began. An object that changes meanwhile fails the copy
 * (PM_ECHANGED), rather than mix versions; into a file (restartable) it
 * starts over with the new version, twice at most. */
static int copy_out(cli *c, const char *uri, FILE *out, bool restartable) {
  char *buf = malloc(CHUNK);
  if (!buf)
    return cli_fail(c, uri, PM_ENOMEM);
  int rc;
  for (int attempt = 0;; attempt++) {
    pm_object_stat st;
    rc = pm_stat(c->peer, uri, &st);
    if (rc == 0)
      rc = copy_version(c, uri, st.version, buf, out);
    if (rc != PM_ECHANGED || !restartable || attempt == 2)
      break;
    pm_invalidate(c->peer, uri);
    if (fflush(out) != 0 || fseek(out, 0, SEEK_SET) != 0 ||
        ftruncate(fileno(out), 0) != 0) {
      fprintf(stderr, "pagemesh: %s: %s\n", uri, strerror(errno));
      rc = 1;
      break;
    }
  }
  if (rc < 0)
    rc = cli_fail(c, uri, rc);
  free(buf);
  return rc;
}

static int cmd_cat(cli *c, int argc, char **argv) {
  if (argc < 1)
    return fputs("usage: pagemesh cat URI... [--offset N] [--length N]\n",
                 stderr), 2;
  int rc = 0;
  for (int i = 0; i < argc; i++) /* each is said; the rest go on, as cat */
    if (copy_out(c, argv[i], stdout, false))
      rc = 1;
  if (fflush(stdout) != 0)
    rc = 1;
  return rc;
}

/* The file being written aside by get, removed if a signal ends the run
 * (a half-written copy must not stay behind). */
static char part_path[4200];

static void on_stop_signal(int sig) {
  if (part_path[0])
    unlink(part_path);
  signal(sig, SIG_DFL);
  raise(sig);
}

/* get into something that is not a plain file of one name: a device, a
 * FIFO, a symlink, a file with other links. Written in place, as cp does
 * (a rename would replace it). */
static int get_in_place(cli *c, const char *uri, const char *dest) {
  FILE *out = fopen(dest, "wb");
  if (!out)
    return fprintf(stderr, "pagemesh: %s: %s\n", dest, strerror(errno)), 1;
  struct stat st;
  bool restartable = fstat(fileno(out), &st) == 0 && S_ISREG(st.st_mode);
  int rc = copy_out(c, uri, out, restartable);
  if (fclose(out) != 0 && rc == 0)
    rc = fprintf(stderr, "pagemesh: %s: %s\n", dest, strerror(errno)) > 0;
  return rc;
}

static int cmd_get(cli *c, int argc, char **argv) {
  if (argc != 2)
    return fputs("usage: pagemesh get URI FILE (- for stdout)\n", stderr), 2;
  const char *dest = argv[1];
  if (strcmp(dest, "-") == 0)
    return copy_out(c, argv[0], stdout, false);
  struct stat st;
  bool exists = lstat(dest, &st) == 0;
  if (exists && !(S_ISREG(st.st_mode) && st.st_nlink == 1))
    return get_in_place(c, argv[0], dest);
  /* A plain file (or none yet): written aside, then renamed over it, so
   * that it is never seen half-written; it keeps its mode. */
  snprintf(part_path, sizeof part_path, "%s.pagemesh-%d.part", dest,
           (int)getpid());
  struct sigaction stop = {.sa_handler = on_stop_signal}, old_int, old_term;
  sigaction(SIGINT, &stop, &old_int);
  sigaction(SIGTERM, &stop, &old_term);
  FILE *out = fopen(part_path, "wb");
  int rc = 0;
  if (!out)
    rc = fprintf(stderr, "pagemesh: %s: %s\n", part_path,
                 strerror(errno)) > 0;
  if (!rc && exists && fchmod(fileno(out), st.st_mode & 07777) != 0)
    rc = fprintf(stderr, "pagemesh: %s: %s\n", part_path,
                 strerror(errno)) > 0;
  if (!rc)
    rc = copy_out(c, argv[0], out, true);
  if (out && fclose(out) != 0 && rc == 0)
    rc = fprintf(stderr, "pagemesh: %s: %s\n", part_path,
                 strerror(errno)) > 0;
  if (rc == 0 && rename(part_path, dest) != 0)
    rc = fprintf(stderr, "pagemesh: %s: %s\n", dest, strerror(errno)) > 0;
  if (rc && out)
    unlink(part_path);
  part_path[0] = '\0';
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  return rc;
}

static void print_time(int64_t ns, char *out, size_t size) {
  time_t secs = (time_t)(ns / 1000000000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int cmd_stat(cli *c, int argc, char **argv) {
  if (argc != 1)
    return fputs("usage: pagemesh stat URI [--json]\n", stderr), 2;
  pm_object_stat st;
  int err = pm_stat(c->peer, argv[0], &st);
  if (err)
    return cli_fail(c, argv[0], err);
  char when[64];
  print_time(st.mtime_ns, when, sizeof when);
  if (c->json) {
    json_t *o = json_pack("{s:s,s:I,s:s,s:I,s:s}", "uri", argv[0], "size",
                          (json_int_t)st.size, "version", st.version,
                          "mtime_ns", (json_int_t)st.mtime_ns, "mtime", when);
    json_dumpf(o, stdout, JSON_INDENT(2));
    putchar('\n');
    json_decref(o);
  } else {
    printf("uri:     %s\nsize:    %" PRIu64 "\nversion: %s\nmtime:   %s\n",
           argv[0], st.size, st.version, when);
  }
  return 0;
}

static int cmd_ls(cli *c, int argc, char **argv) {
  if (argc != 1)
    return fputs("usage: pagemesh ls URI [--json] [-r]\n", stderr), 2;
  pm_list_entry *entries;
  size_t count;
  int err = pm_list(c->peer, argv[0], c->recursive ? PM_LIST_RECURSIVE : 0,
                    &entries, &count);
  if (err)
    return cli_fail(c, argv[0], err);
  json_t *arr = c->json ? json_array() : NULL;
  for (size_t i = 0; i < count; i++) {
    pm_list_entry *e = &entries[i];
    if (arr)
      json_array_append_new(
          arr, json_pack("{s:s,s:s,s:I,s:I,s:s?}", "uri", e->uri, "type",
                         e->is_dir ? "directory" : "file", "size",
                         (json_int_t)e->size, "mtime_ns",
                         (json_int_t)e->mtime_ns, "version", e->version));
    else if (e->is_dir)
      printf("%12s  %s\n", "DIR", e->uri);
    else
      printf("%12" PRIu64 "  %s\n", e->size, e->uri);
  }
  if (arr) {
    json_dumpf(arr, stdout, JSON_INDENT(2));
    putchar('\n');
    json_decref(arr);
  }
  pm_list_free(entries, count);
  return 0;
}

static json_t *stats_json(const pm_stats *s) {
  uint64_t hits = s->hits_ram + s->hits_disk;
  double ratio = hits + s->misses ? (double)hits / (double)(hits + s->misses)
                                  : 0.0;
  return json_pack(
      "{s:I,s:I,s:I,s:I,s:I,s:f,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
      "s:I,s:I}",
      "reads", (json_int_t)s->reads, "bytes_served",
      (json_int_t)s->bytes_served, "hits_ram", (json_int_t)s->hits_ram,
      "hits_disk", (json_int_t)s->hits_disk, "misses", (json_int_t)s->misses,
      "hit_ratio", ratio, "origin_requests", (json_int_t)s->origin_requests,
      "origin_bytes", (json_int_t)s->origin_bytes, "evictions",
      (json_int_t)s->evictions, "corrupt_pages", (json_int_t)s->corrupt_pages,
      "declined", (json_int_t)s->declined, "store_errors",
      (json_int_t)s->store_errors, "disk_used", (json_int_t)s->disk_used,
      "disk_capacity", (json_int_t)s->disk_capacity, "ram_used",
      (json_int_t)s->ram_used, "ram_capacity", (json_int_t)s->ram_capacity,
      "pages_disk", (json_int_t)s->pages_disk, "pages_ram",
      (json_int_t)s->pages_ram);
}

/* Add the node peer's live counters (when a daemon or another process is
 * the node peer, this process only attached) to the closed peers' totals. */
static void add_live_node_stats(cli *c, pm_stats *s) {
  char *text;
  if (pm_peer_status(c->peer, &text) != 0)
    return;
  json_t *st = json_loads(text, 0, NULL);
  pm_free(text);
  const char *role = json_string_value(json_object_get(st, "role"));
  json_t *live = json_object_get(st, "stats");
  if (role && strcmp(role, "attached") == 0 && json_is_object(live)) {
    uint64_t *fields[] = {&s->reads, &s->bytes_served, &s->hits_ram,
                          &s->hits_disk, &s->misses, &s->origin_requests,
                          &s->origin_bytes, &s->evictions, &s->corrupt_pages,
                          &s->declined, &s->store_errors};
    const char *names[] = {"reads", "bytes_served", "hits_ram", "hits_disk",
                           "misses", "origin_requests", "origin_bytes",
                           "evictions", "corrupt_pages", "declined",
                           "store_errors"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
      *fields[i] += (uint64_t)json_integer_value(json_object_get(live,
                                                                 names[i]));
    const char *gauges[] = {"disk_used", "disk_capacity", "ram_used",
                            "ram_capacity", "pages_disk", "pages_ram"};
    uint64_t *gfields[] = {&s->disk_used, &s->disk_capacity, &s->ram_used,
                           &s->ram_capacity, &s->pages_disk, &s->pages_ram};
    for (size_t i = 0; i < sizeof gauges / sizeof gauges[0]; i++)
      *gfields[i] = (uint64_t)json_integer_value(json_object_get(live,
                                                                 gauges[i]));
  }
  json_decref(st);
}

static void print_json_or_table(cli *c, json_t *o) {
  if (c->json) {
    json_dumpf(o, stdout, JSON_INDENT(2));
    putchar('\n');
    return;
  }
  const char *key;
  json_t *v;
  json_object_foreach(o, key, v) {
    if (json_is_real(v))
      printf("%-16s %.3f\n", key, json_real_value(v));
    else if (json_is_integer(v))
      printf("%-16s %" JSON_INTEGER_FORMAT "\n", key, json_integer_value(v));
    else if (json_is_string(v))
      printf("%-16s %s\n", key, json_string_value(v));
    else {
      char *text = json_dumps(v, JSON_COMPACT);
      printf("%-16s %s\n", key, text ? text : "");
      free(text);
    }
  }
}

static int cmd_stats(cli *c, int argc, char **argv) {
  (void)argv;
  if (argc != 0)
    return fputs("usage: pagemesh stats [--json]\n", stderr), 2;
  pm_stats s = {.size = sizeof s};
  int err = pm_peer_stats_total(c->peer, &s);
  if (err)
    return cli_fail(c, "stats", err);
  add_live_node_stats(c, &s);
  json_t *o = stats_json(&s);
  print_json_or_table(c, o);
  json_decref(o);
  return 0;
}

static int cmd_status(cli *c, int argc, char **argv) {
  (void)argv;
  if (argc != 0)
    return fputs("usage: pagemesh status [--json]\n", stderr), 2;
  char *text;
  int err = pm_peer_status(c->peer, &text);
  if (err)
    return cli_fail(c, "status", err);
  json_t *o = json_loads(text, 0, NULL);
  pm_free(text);
  if (!o)
    return cli_fail(c, "status", PM_EPROTO);
  json_object_del(o, "role"); /* this command's own role says nothing */
  print_json_or_table(c, o);
  json_decref(o);
  return 0;
}

static int cmd_members(cli *c, int argc, char **argv) {
  (void)argv;
  if (argc != 0)
    return fputs("usage: pagemesh members [--json]\n", stderr), 2;
  char *text;
  int err = pm_peer_status(c->peer, &text);
  if (err)
    return cli_fail(c, "members", err);
  json_t *st = json_loads(text, 0, NULL);
  pm_free(text);
  json_t *members = json_object_get(st, "members");
  if (!json_is_array(members)) {
    json_decref(st);
    return cli_fail(c, "members", PM_EPROTO);
  }
  if (c->json) {
    json_dumpf(members, stdout, JSON_INDENT(2));
    putchar('\n');
  } else {
    printf("%-10s %-22s %-8s %-20s %-14s %s\n", "ID", "ADDRESS", "STATE",
           "BOOT EPOCH", "CAPACITY", "ZONE");
    size_t i;
    json_t *m;
    json_array_foreach(members, i, m) {
      printf("%-10.8s %-22s %-8s %-20" JSON_INTEGER_FORMAT " %-14"
             JSON_INTEGER_FORMAT " %s%s\n",
             json_string_value(json_object_get(m, "id")),
             json_string_value(json_object_get(m, "addr")),
             json_string_value(json_object_get(m, "state")),
             json_integer_value(json_object_get(m, "boot_epoch")),
             json_integer_value(json_object_get(m, "capacity")),
             json_string_value(json_object_get(m, "zone")),
             json_is_true(json_object_get(m, "self")) ? "  (this node)" : "");
    }
  }
  json_decref(st);
  return 0;
}

static const struct command {
  const char *name;
  int (*run)(cli *c, int argc, char **argv);
} commands[] = {
    {"cat", cmd_cat}, {"get", cmd_get}, {"stat", cmd_stat},
    {"ls", cmd_ls},   {"stats", cmd_stats}, {"status", cmd_status},
    {"members", cmd_members}, {"load", cmd_load},
    {"evict", cmd_evict},     {"invalidate", cmd_invalidate},
    {"capacity", cmd_capacity}, {"drain", cmd_drain},
};

static void print_run_stats(cli *c) {
  pm_stats s = {.size = sizeof s};
  if (pm_peer_stats(c->peer, &s) != 0)
    return;
  json_t *o = stats_json(&s);
  json_dumpf(o, stderr, JSON_COMPACT);
  fputc('\n', stderr);
  json_decref(o);
}

/* Output that could not be written is an error (exit 1, said), as in
 * coreutils: a full disk or a closed stdout must not pass for success. */
static int flush_stdout(int rc) {
  errno = 0;
  if (fflush(stdout) != 0 || ferror(stdout)) {
    /* A failed write a command reported already (rc) is not said twice;
     * errno is only the flush's own (it said "Success" before). */
    if (!rc)
      fprintf(stderr, "pagemesh: write error: %s\n",
              errno ? strerror(errno) : "output not written");
    return rc ? rc : 1;
  }
  return rc;
}

int main(int argc, char **argv) {
  cli_guard_std_fds();
  cli c = {.length = UINT64_MAX, .parallel = 8};
  pm_options_init(&c.opts);
  if (pm_options_load_env(&c.opts) != 0)
    return fprintf(stderr, "pagemesh: %s\n", pm_peer_errmsg(NULL)), 2;
  int opt;
  while ((opt = getopt_long(argc, argv, "rh", long_options, NULL)) != -1)
    if (apply_option(&c, opt, optarg) != 0)
      return 2;
  if (optind >= argc)
    return fputs(usage, stderr), 2;
  const char *name = argv[optind];
  if (strcmp(name, "version") == 0) {
    printf("pagemesh %s\n", pm_version());
    return flush_stdout(0);
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
    if (strcmp(name, commands[i].name) != 0)
      continue;
    if (commands[i].run == cmd_status || commands[i].run == cmd_members ||
        commands[i].run == cmd_capacity || commands[i].run == cmd_drain)
      c.opts.flags |= PM_OPEN_ATTACH_ONLY; /* never start a peer to look */
    int err = pm_peer_open(&c.opts, &c.peer);
    if (err)
      return cli_fail(&c, "cannot open the cache", err);
    int rc = commands[i].run(&c, argc - optind - 1, argv + optind + 1);
    if (c.print_stats)
      print_run_stats(&c);
    pm_peer_close(c.peer);
    return flush_stdout(rc);
  }
  fprintf(stderr, "pagemesh: unknown command '%s'\n%s", name, usage);
  return 2;
}
