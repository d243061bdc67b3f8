/*
 * bindings/cli/metrics.c - pagemeshd's Prometheus endpoint (see
 * metrics.h). Each scrape asks the peer for its status document (the same
 * one `pagemesh status --json` prints) and turns it into the text format:
 * counters for what the cache did (hits by tier, misses, bytes from the
 * origin, from and to peers, evictions, errors by kind), gauges for what
 * it holds and for the mesh's members by state, and two latency
 * histograms (read calls on this node, origin calls). Bucket counts
 * arrive per bucket and are made cumulative here, as Prometheus wants.
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct cli_metrics {
  pm_peer *peer;
  struct MHD_Daemon *daemon;
  unsigned port;
};

/* ---- rendering -------------------------------------------------------- */

/* A counter or gauge read from one field of "stats". */
typedef struct plain_metric {
  const char *name, *type, *help, *field;
} plain_metric;

static const plain_metric plain_metrics[] = {
    {"pagemesh_reads_total", "counter",
     "Read calls (ranges) served to processes on this node.", "reads"},
    {"pagemesh_read_bytes_total", "counter",
     "Bytes returned to processes on this node.", "bytes_served"},
    {"pagemesh_misses_total", "counter",
     "Page lookups found in neither local tier (served by a peer or the "
     "origin).",
     "misses"},
    {"pagemesh_origin_requests_total", "counter",
     "Requests sent to origins (each retry and listing page counts).",
     "origin_requests"},
    {"pagemesh_origin_bytes_total", "counter",
     "Payload bytes received from origins.", "origin_bytes"},
    {"pagemesh_evictions_total", "counter",
     "Pages evicted from the local tiers to make room.", "evictions"},
    {"pagemesh_admissions_declined_total", "counter",
     "Pages the stable eviction policy did not keep (colder than the "
     "pages they would replace).",
     "declined"},
    {"pagemesh_replicas_pushed_total", "counter",
     "Pages copied to other replicas after an origin fetch.",
     "replicas_pushed"},
};

/* A family with one label whose values come from several fields. */
typedef struct labeled_metric {
  const char *name, *type, *help, *label;
  const char *values[4];
  const char *fields[4];
} labeled_metric;

static const labeled_metric labeled_metrics[] = {
    {"pagemesh_hits_total", "counter",
     "Page lookups answered by a local tier.", "tier",
     {"ram", "disk"}, {"hits_ram", "hits_disk"}},
    {"pagemesh_peer_pages_total", "counter",
     "Pages received from and sent to other peers.", "direction",
     {"received", "sent"}, {"pages_from_peers", "pages_to_peers"}},
    {"pagemesh_peer_bytes_total", "counter",
     "Page bytes received from and sent to other peers.", "direction",
     {"received", "sent"}, {"bytes_from_peers", "bytes_to_peers"}},
    {"pagemesh_errors_total", "counter",
     "Errors by kind: pages failing their checksum, page store I/O, "
     "peers that failed a request, origin calls that failed.",
     "kind",
     {"corrupt_page", "store", "peer", "origin"},
     {"corrupt_pages", "store_errors", "peer_failures", "origin_errors"}},
    {"pagemesh_cache_used_bytes", "gauge", "Bytes of pages held, by tier.",
     "tier", {"ram", "disk"}, {"ram_used", "disk_used"}},
    {"pagemesh_cache_capacity_bytes", "gauge",
     "Configured capacity of each tier in bytes.", "tier", {"ram", "disk"},
     {"ram_capacity", "disk_capacity"}},
    {"pagemesh_cache_pages", "gauge", "Pages held, by tier.", "tier",
     {"ram", "disk"}, {"pages_ram", "pages_disk"}},
};

static const char *const member_states[] = {"alive", "suspect", "dead",
                                            "left"};

static json_int_t field(json_t *object, const char *name) {
  return json_integer_value(json_object_get(object, name));
}

static void family(FILE *out, const char *name, const char *type,
                   const char *help) {
  fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_plain(FILE *out, json_t *stats) {
  for (size_t i = 0; i < sizeof plain_metrics / sizeof plain_metrics[0];
       i++) {
    const plain_metric *m = &plain_metrics[i];
    family(out, m->name, m->type, m->help);
    fprintf(out, "%s %lld\n", m->name, (long long)field(stats, m->field));
  }
}

static void render_labeled(FILE *out, json_t *stats) {
  for (size_t i = 0;
       i < sizeof labeled_metrics / sizeof labeled_metrics[0]; i++) {
    const labeled_metric *m = &labeled_metrics[i];
    family(out, m->name, m->type, m->help);
    for (size_t v = 0; v < 4 && m->values[v]; v++)
      fprintf(out, "%s{%s=\"%s\"} %lld\n", m->name, m->label, m->values[v],
              (long long)field(stats, m->fields[v]));
  }
}

static void render_members(FILE *out, json_t *members) {
  long long counts[4] = {0};
  size_t i;
  json_t *member;
  json_array_foreach(members, i, member) {
    const char *state = json_string_value(json_object_get(member, "state"));
    for (size_t s = 0; state && s < 4; s++)
      if (strcmp(state, member_states[s]) == 0)
        counts[s]++;
  }
  family(out, "pagemesh_members", "gauge",
         "Members of the mesh as this peer sees them, by state (itself "
         "included; 0 everywhere when the peer is not in a mesh).");
  for (size_t s = 0; s < 4; s++)
    fprintf(out, "pagemesh_members{state=\"%s\"} %lld\n", member_states[s],
            counts[s]);
}

/* One histogram: cumulative buckets over the shared bounds, +Inf, sum and
 * count. */
static void render_histogram(FILE *out, const char *name, const char *help,
                             json_t *bounds_us, json_t *histogram) {
  json_t *counts = json_object_get(histogram, "counts");
  family(out, name, "histogram", help);
  long long cumulative = 0;
  size_t i;
  json_t *bound;
  json_array_foreach(bounds_us, i, bound) {
    cumulative += (long long)json_integer_value(json_array_get(counts, i));
    fprintf(out, "%s_bucket{le=\"%g\"} %lld\n", name,
            (double)json_integer_value(bound) / 1e6, cumulative);
  }
  for (i = json_array_size(bounds_us); i < json_array_size(counts); i++)
    cumulative += (long long)json_integer_value(json_array_get(counts, i));
  fprintf(out, "%s_bucket{le=\"+Inf\"} %lld\n", name, cumulative);
  fprintf(out, "%s_sum %.9f\n", name,
          (double)field(histogram, "sum_ns") / 1e9);
  fprintf(out, "%s_count %lld\n", name, cumulative);
}

static void render_latency(FILE *out, json_t *latency) {
  json_t *bounds = json_object_get(latency, "bounds_us");
  render_histogram(out, "pagemesh_read_latency_seconds",
                   "Duration of read calls (pm_read, pm_read_batch) of the "
                   "processes on this node.",
                   bounds, json_object_get(latency, "read"));
  render_histogram(out, "pagemesh_origin_latency_seconds",
                   "Duration of origin calls (metadata and ranged reads, "
                   "retries included).",
                   bounds, json_object_get(latency, "origin"));
}

static void render_info(FILE *out, json_t *root) {
  const char *role = json_string_value(json_object_get(root, "role"));
  family(out, "pagemesh_info", "gauge",
         "Always 1; labels: library version and the peer's role.");
  fprintf(out, "pagemesh_info{version=\"%s\",role=\"%s\"} 1\n", pm_version(),
          role ? role : "unknown");
  family(out, "pagemesh_page_size_bytes", "gauge", "Page size in bytes.");
  fprintf(out, "pagemesh_page_size_bytes %lld\n",
          (long long)field(root, "page_size"));
  family(out, "pagemesh_attached_processes", "gauge",
         "Processes attached to this node peer.");
  fprintf(out, "pagemesh_attached_processes %zu\n",
          json_array_size(json_object_get(root, "attached")));
}

char *cli_metrics_render(const char *status_json) {
  json_t *root = json_loads(status_json, 0, NULL);
  if (!json_is_object(root)) {
    json_decref(root);
    return NULL;
  }
  char *text = NULL;
  size_t length = 0;
  FILE *out = open_memstream(&text, &length);
  if (out) {
    json_t *stats = json_object_get(root, "stats");
    render_info(out, root);
    render_plain(out, stats);
    render_labeled(out, stats);
    render_members(out, json_object_get(root, "members"));
    render_latency(out, json_object_get(root, "latency"));
    if (fclose(out) != 0) {
      free(text);
      text = NULL;
    }
  }
  json_decref(root);
  return text;
}

/* ---- serving ---------------------------------------------------------- */

static enum MHD_Result reply(struct MHD_Connection *connection,
                             unsigned status, char *body, bool must_free) {
  struct MHD_Response *response = MHD_create_response_from_buffer(
      strlen(body), body,
      must_free ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
  if (!response) {
    if (must_free)
      free(body);
    return MHD_NO;
  }
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                          status == MHD_HTTP_OK ? CONTENT_TYPE
                                                : "text/plain");
  enum MHD_Result r = MHD_queue_response(connection, status, response);
  MHD_destroy_response(response);
  return r;
}

static enum MHD_Result serve_metrics(cli_metrics *m,
                                     struct MHD_Connection *connection) {
  char *json = NULL;
  int err = pm_peer_status(m->peer, &json);
  char *text = err ? NULL : cli_metrics_render(json);
  pm_free(json);
  if (!text)
    return reply(connection, MHD_HTTP_SERVICE_UNAVAILABLE,
                 "the node peer did not give its status\n", false);
  return reply(connection, MHD_HTTP_OK, text, true);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *connection,
                              const char *url, const char *method,
                              const char *version, const char *upload_data,
                              size_t *upload_data_size, void **request) {
  (void)version, (void)upload_data, (void)request;
  if (*upload_data_size != 0)
    return MHD_NO; /* a body: not ours */
  if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
      strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
    return reply(connection, MHD_HTTP_METHOD_NOT_ALLOWED,
                 "only GET /metrics\n", false);
  if (strcmp(url, "/metrics") == 0)
    return serve_metrics(cls, connection);
  if (strcmp(url, "/") == 0)
    return reply(connection, MHD_HTTP_OK, "pagemeshd: see /metrics\n",
                 false);
  return reply(connection, MHD_HTTP_NOT_FOUND, "not found: try /metrics\n",
               false);
}

/* Parse "IP:PORT" or "[IPv6]:PORT" into addr; false if it is neither. */
static bool parse_listen(const char *text, struct sockaddr_storage *addr,
                         bool *ipv6) {
  char host[64];
  const char *colon = strrchr(text, ':');
  if (!colon || (size_t)(colon - text) >= sizeof host)
    return false;
  memcpy(host, text, (size_t)(colon - text));
  host[colon - text] = '\0';
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (!colon[1] || *end || port < 0 || port > 65535)
    return false;
  memset(addr, 0, sizeof *addr);
  size_t n = strlen(host);
  *ipv6 = n >= 2 && host[0] == '[' && host[n - 1] == ']';
  if (*ipv6) {
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)addr;
    host[n - 1] = '\0';
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    return inet_pton(AF_INET6, host + 1, &a6->sin6_addr) == 1;
  }
  struct sockaddr_in *a4 = (struct sockaddr_in *)addr;
  a4->sin_family = AF_INET;
  a4->sin_port = htons((uint16_t)port);
  return inet_pton(AF_INET, host, &a4->sin_addr) == 1;
}

int cli_metrics_start(pm_peer *peer, const char *listen, cli_metrics **out) {
  struct sockaddr_storage addr;
  bool ipv6;
  if (!parse_listen(listen, &addr, &ipv6)) {
    fprintf(stderr, "--metrics-listen: '%s' is not IP:PORT ([IPv6]:PORT; "
            "numeric addresses only)\n", listen);
    return -1;
  }
  cli_metrics *m = calloc(1, sizeof *m);
  if (!m)
    return fputs("metrics: out of memory\n", stderr), -1;
  m->peer = peer;
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
                   (ipv6 ? MHD_USE_IPv6 : 0);
  m->daemon = MHD_start_daemon(
      flags, 0, NULL, NULL, handle, m, MHD_OPTION_SOCK_ADDR,
      (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT, 16u,
      MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
  if (!m->daemon) {
    fprintf(stderr, "--metrics-listen %s: cannot listen there (address "
            "in use or not on this host)\n", listen);
    free(m);
    return -1;
  }
  const union MHD_DaemonInfo *info =
      MHD_get_daemon_info(m->daemon, MHD_DAEMON_INFO_BIND_PORT);
  m->port = info ? info->port : 0;
  *out = m;
  return 0;
}

unsigned cli_metrics_port(const cli_metrics *m) {
  return m ? m->port : 0;
}

void cli_metrics_stop(cli_metrics *m) {
  if (!m)
    return;
  MHD_stop_daemon(m->daemon);
  free(m);
}
