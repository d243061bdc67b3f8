/*
 * transport/transport_int.h - what the transport folder offers the core:
 * opening a page transport by backend name and calling it through thin
 * wrappers (argument checks, deadline sanity, PM_ENOTSUP for a missing
 * optional method). The core never calls a backend's methods directly.
 * The backends' method tables are declared here so that the registry in
 * transport/transport.c can list them.
 */
#ifndef PM_TRANSPORT_INT_H
#define PM_TRANSPORT_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pagemesh/transport.h"

/* The backends: one line each in the registry of transport/transport.c. */
extern const pm_transport_methods pm_tcp_methods;
extern const pm_transport_methods pm_fabric_methods;

/* The backend registered under `name` ("tcp"), or NULL. */
const pm_transport_methods *pm__transport_find(const char *name);

/* Open a transport of backend `name`: allocate its object, call its init
 * (which starts listening and its threads) and return it in *out.
 * Safe from any thread. Errors: PM_EINVAL (NULL argument, config->size too
 * small, no server callbacks, max_page_size 0), PM_ENOTSUP (no backend of
 * that name), PM_ENOMEM, and the backend's init errors (PM_EUNREACHABLE
 * when it cannot bind). The detail names the backend and the cause. */
int pm__transport_open(const char *name, const pm_transport_config *config,
                       pm_transport **out);

/* Stop the transport's threads, fail its requests in flight with
 * PM_ESHUTDOWN and free it. Accepts NULL. Must not race with a new call on
 * the same transport from another thread. */
void pm__transport_close(pm_transport *transport);

/* The backend's name ("tcp"). */
const char *pm__transport_name(const pm_transport *transport);

/* Wrappers of the methods of pm_transport_methods (see its comments for
 * the behaviour and errors). Each checks its arguments (PM_EINVAL), and
 * get_page/put_page refuse a deadline already past (PM_ETIMEDOUT) without
 * calling the backend. All are safe from any thread. */
int pm__transport_address(pm_transport *transport, char *out,
                          size_t out_size);
ssize_t pm__transport_get_page(pm_transport *transport, const char *addr,
                               const pm_page_request *req, void *dst,
                               size_t dst_len, uint64_t deadline_ns);
int pm__transport_put_page(pm_transport *transport, const char *addr,
                           const pm_page_request *req, const void *data,
                           size_t length, uint64_t deadline_ns);
int pm__transport_stats(pm_transport *transport, pm_transport_stats *out);

/* For backends: ask the core for a page by reference (serve_file), at
 * most max_length bytes long. Returns 0 with *out filled (the caller
 * closes out->fd), PM_ENOENT when the core has no serve_file or not that
 * page at hand (call serve_get then), or the error to answer with (any
 * code outside the wire's range becomes PM_EIO; a page too long for
 * max_length is PM_ETOOBIG), with out->fd already closed. */
int pm__transport_serve_file(const pm_page_server *server,
                             const pm_page_request *req, size_t max_length,
                             pm_page_file *out);

/* Internal counters of the tcp backend that tests and benchmarks read
 * (not part of the backend-neutral stats). */
typedef struct pm_tcp_counters {
  uint64_t connects;          /* outgoing connections established */
  uint64_t accepts;           /* incoming connections accepted */
  uint64_t handshakes;        /* handshakes completed (both roles) */
  uint64_t aegis_handshakes;  /* of which seal page bytes in AEGIS-128X4 */
  uint64_t sealed_page_bytes; /* page bytes sent or received encrypted */
  uint64_t clear_page_bytes;  /* page bytes sent or received in the clear */
  uint64_t retries;           /* requests retried on a fresh connection */
  uint64_t lingered;          /* requests a worker waited for on its
                                 connection (tcp_server.c, linger) */
} pm_tcp_counters;

/* Copy the tcp backend's counters. Errors: PM_EINVAL if the transport is
 * not a tcp one. */
int pm__tcp_counters(pm_transport *transport, pm_tcp_counters *out);

#endif /* PM_TRANSPORT_INT_H */
