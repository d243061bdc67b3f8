/*
 * bindings/cli/metrics.h - the Prometheus endpoint of pagemeshd: GET
 * /metrics answers with the node peer's counters, gauges and latency
 * histograms in the Prometheus text exposition format (version 0.0.4),
 * built from pm_peer_status() alone. The HTTP server is libmicrohttpd,
 * with one internal thread: scrapes are rare and cheap.
 */
#ifndef PM_CLI_METRICS_H
#define PM_CLI_METRICS_H

#include "pagemesh.h"

typedef struct cli_metrics cli_metrics;

/* Serve GET /metrics for `peer` on `listen` ("IP:PORT", "[IPv6]:PORT";
 * port 0 picks a free one). The peer must outlive the server. Returns 0
 * and the server in *out, or -1 after printing why to stderr (a bad
 * address, a port in use). */
int cli_metrics_start(pm_peer *peer, const char *listen, cli_metrics **out);

/* The port the server listens on (the chosen one when asked for 0). */
unsigned cli_metrics_port(const cli_metrics *metrics);

/* Stop serving and free the server; waits for a scrape in progress.
 * Accepts NULL. */
void cli_metrics_stop(cli_metrics *metrics);

/* The exposition text for a status document as pm_peer_status returns
 * it: a malloc'd string (free it), or NULL if the document cannot be
 * parsed or memory runs out. Safe from any thread. */
char *cli_metrics_render(const char *status_json);

#endif /* PM_CLI_METRICS_H */
