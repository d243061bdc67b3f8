/*
 * transport/transport.c - the registry of page transport backends and the
 * wrappers through which the core calls them. A backend is added by one
 * line in `backends` below; the wrappers check arguments, turn a missing
 * optional method into PM_ENOTSUP and refuse deadlines already past, so
 * that backends may assume sane input.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core_int.h"
#include "frame.h"
#include "transport_int.h"

/* The registered backends, by name. */
static const pm_transport_methods *const backends[] = {
    &pm_tcp_methods,
    &pm_fabric_methods,
};

const pm_transport_methods *pm__transport_find(const char *name) {
  if (!name)
    return NULL;
  for (size_t i = 0; i < PM_ARRAY_SIZE(backends); i++)
    if (strcmp(backends[i]->name, name) == 0)
      return backends[i];
  return NULL;
}

static int check_config(const char *name, const pm_transport_config *config) {
  if (!config)
    return pm__errf(PM_EINVAL, "transport %s: no configuration", name);
  if (config->size < sizeof(pm_transport_config))
    return pm__errf(PM_EINVAL, "transport %s: configuration too old (%zu)",
                    name, config->size);
  if (!config->listen || !config->cluster_key || !config->cluster_id)
    return pm__errf(PM_EINVAL,
                    "transport %s: listen address, cluster key and cluster "
                    "id are required",
                    name);
  if (!config->server.serve_get)
    return pm__errf(PM_EINVAL, "transport %s: no serve_get callback", name);
  if (config->max_page_size == 0)
    return pm__errf(PM_EINVAL, "transport %s: max_page_size is 0", name);
  return 0;
}

int pm__transport_open(const char *name, const pm_transport_config *config,
                       pm_transport **out) {
  if (!name || !out)
    return pm__errf(PM_EINVAL, "transport: NULL name or result");
  *out = NULL;
  const pm_transport_methods *methods = pm__transport_find(name);
  if (!methods)
    return pm__errf(PM_ENOTSUP, "transport %s: no such backend", name);
  int rc = check_config(name, config);
  if (rc)
    return rc;
  pm_transport *transport = calloc(1, methods->object_size);
  if (!transport)
    return pm__errf(PM_ENOMEM, "transport %s: cannot allocate", name);
  transport->methods = methods;
  rc = methods->init(transport, config);
  if (rc) {
    free(transport);
    return rc;
  }
  *out = transport;
  return 0;
}

void pm__transport_close(pm_transport *transport) {
  if (!transport)
    return;
  transport->methods->fini(transport);
  free(transport);
}

const char *pm__transport_name(const pm_transport *transport) {
  return transport ? transport->methods->name : "";
}

int pm__transport_address(pm_transport *transport, char *out,
                          size_t out_size) {
  if (!transport || !out || out_size == 0)
    return pm__errf(PM_EINVAL, "transport address: NULL argument");
  if (!transport->methods->address)
    return pm__errf(PM_ENOTSUP, "transport %s: no address",
                    transport->methods->name);
  return transport->methods->address(transport, out, out_size);
}

static int check_request(pm_transport *transport, const char *addr,
                         const pm_page_request *req, const void *buf,
                         uint64_t deadline_ns) {
  if (!transport || !addr || !req || !buf || !req->uri || !req->version)
    return pm__errf(PM_EINVAL, "transport: NULL argument");
  if (strlen(addr) >= PM_ADDR_MAX)
    return pm__errf(PM_EINVAL, "transport %s: address too long",
                    transport->methods->name);
  if (deadline_ns <= pm__now_ns())
    return pm__errf(PM_ETIMEDOUT, "%s: deadline already past", addr);
  return 0;
}

ssize_t pm__transport_get_page(pm_transport *transport, const char *addr,
                               const pm_page_request *req, void *dst,
                               size_t dst_len, uint64_t deadline_ns) {
  int rc = check_request(transport, addr, req, dst, deadline_ns);
  if (rc)
    return rc;
  return transport->methods->get_page(transport, addr, req, dst, dst_len,
                                      deadline_ns);
}

int pm__transport_put_page(pm_transport *transport, const char *addr,
                           const pm_page_request *req, const void *data,
                           size_t length, uint64_t deadline_ns) {
  int rc = check_request(transport, addr, req, data, deadline_ns);
  if (rc)
    return rc;
  if (!transport->methods->put_page)
    return pm__errf(PM_ENOTSUP, "transport %s: no put_page",
                    transport->methods->name);
  return transport->methods->put_page(transport, addr, req, data, length,
                                      deadline_ns);
}

int pm__transport_stats(pm_transport *transport, pm_transport_stats *out) {
  if (!transport || !out)
    return pm__errf(PM_EINVAL, "transport stats: NULL argument");
  memset(out, 0, sizeof *out);
  if (!transport->methods->stats)
    return pm__errf(PM_ENOTSUP, "transport %s: no stats",
                    transport->methods->name);
  transport->methods->stats(transport, out);
  return 0;
}

int pm__transport_serve_file(const pm_page_server *server,
                             const pm_page_request *req, size_t max_length,
                             pm_page_file *out) {
  *out = (pm_page_file){.fd = -1};
  if (!server->serve_file)
    return PM_ENOENT;
  pm__errmsg_clear();
  int rc = server->serve_file(server->arg, req, out);
  if (rc == 0 && out->length > max_length)
    rc = pm__errf(PM_ETOOBIG, "page of %zu bytes, room for %zu",
                  out->length, max_length);
  else if (rc > 0 || rc < PM_FRAME_STATUS_MIN)
    rc = pm__errf(PM_EIO, "serve_file failed with %d", rc);
  if (rc && out->fd >= 0) {
    close(out->fd);
    out->fd = -1;
  }
  return rc;
}
