/*
 * transport/fabric.c - the "fabric" page transport: libfabric FI_EP_RDM
 * with registered page buffers (verbs on RDMA hardware, tcp;ofi_rxm or shm
 * for tests; the provider comes from FI_PROVIDER). This file owns the
 * methods table and the life of a transport object: checking and copying
 * the configuration, bringing the pieces up in order (endpoint, request
 * slots, message buffers, server workers, progress thread) and down in
 * reverse, the advertised address and the counters. The other fabric*.c
 * files hold the pieces; transport/fabric_int.h describes them.
 *
 * Security: control messages are always sealed with a key derived from
 * the cluster key (fabric_msg.c); page bytes move by RMA in the clear, so
 * `insecure_data` changes nothing here. Every page is checked against the
 * checksum in the sealed response.
 *
 * Threads: one progress thread and `server_threads` workers per object.
 * get_page, put_page, address and stats are safe from any thread; fini
 * must not race with a new call, but fails the calls in flight with
 * PM_ESHUTDOWN and waits for them to return.
 */
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "transport/fabric_int.h"

#define MAX_PAGE_LIMIT (1u << 30)

static pm_fabric *from(pm_transport *self) {
  return (pm_fabric *)self;
}

static int check_config(const pm_transport_config *config) {
  if (!config || config->size < offsetof(pm_transport_config, server) +
                                    sizeof(pm_page_server))
    return pm__errf(PM_EINVAL, "fabric: missing or short configuration");
  if (!config->listen || !config->cluster_key)
    return pm__errf(PM_EINVAL, "fabric: no listen address or cluster key");
  if (!config->server.serve_get)
    return pm__errf(PM_EINVAL, "fabric: no serve_get callback");
  if (config->max_page_size == 0 || config->max_page_size > MAX_PAGE_LIMIT)
    return pm__errf(PM_EINVAL, "fabric: max page size %u outside (0, %u]",
                    config->max_page_size, MAX_PAGE_LIMIT);
  return 0;
}

static int init_sync(pm_fabric *f) {
  pthread_mutex_init(&f->peer_lock, NULL);
  f->peers_max = PM_FABRIC_PEERS_MAX;
  f->peer_idle_ns = PM_FABRIC_PEER_IDLE_NS;
  pthread_mutex_init(&f->send_lock, NULL);
  pthread_mutex_init(&f->slot_lock, NULL);
  pthread_mutex_init(&f->queue_lock, NULL);
  pthread_mutex_init(&f->sbuf_lock, NULL);
  pthread_mutex_init(&f->poll_lock, NULL);
  pthread_mutex_init(&f->handoff_lock, NULL);
  pthread_cond_init(&f->queue_cond, NULL);
  if (pm_fabric_cond_init(&f->send_cond) || pm_fabric_cond_init(&f->slot_cond) ||
      pm_fabric_cond_init(&f->sbuf_cond) ||
      pm_fabric_cond_init(&f->handoff_cond))
    return pm__errf(PM_ENOMEM, "fabric: cannot create conditions");
  return 0;
}

static void destroy_sync(pm_fabric *f) {
  pthread_mutex_destroy(&f->peer_lock);
  pthread_mutex_destroy(&f->send_lock);
  pthread_mutex_destroy(&f->slot_lock);
  pthread_mutex_destroy(&f->queue_lock);
  pthread_mutex_destroy(&f->sbuf_lock);
  pthread_mutex_destroy(&f->poll_lock);
  pthread_mutex_destroy(&f->handoff_lock);
  pthread_cond_destroy(&f->queue_cond);
  pthread_cond_destroy(&f->send_cond);
  pthread_cond_destroy(&f->slot_cond);
  pthread_cond_destroy(&f->sbuf_cond);
  pthread_cond_destroy(&f->handoff_cond);
}

static void fabric_fini(pm_transport *self);

static int fabric_init(pm_transport *self, const pm_transport_config *config) {
  pm_fabric *f = from(self);
  int rc = check_config(config);
  if (rc)
    return rc;
  f->max_page_size = config->max_page_size;
  f->server_threads = config->server_threads;
  f->server = config->server;
  rc = init_sync(f);
  if (!rc)
    rc = pm_fabric_keys_init(&f->keys, config->cluster_key,
                             config->cluster_id);
  if (!rc)
    rc = pm_fabric_ep_open(f, config->listen);
  if (!rc)
    rc = pm_fabric_slots_open(f);
  if (!rc)
    rc = pm_fabric_msgbufs_open(f);
  if (!rc)
    rc = pm_fabric_server_start(f);
  if (!rc)
    rc = pm_fabric_progress_start(f);
  if (rc) {
    char detail[PM_ERRMSG_MAX];
    snprintf(detail, sizeof detail, "%s", pm__errmsg());
    fabric_fini(self);
    pm__errmsg_set(detail);
    return rc;
  }
  char name[128] = "?";
  size_t name_len = sizeof name;
  fi_av_straddr(f->av, f->self_addr, name, &name_len);
  PM_LOG(PM_LOG_INFO, "fabric", "listening on %s (%s) with %s",
         config->listen, name, f->provider);
  return 0;
}

/* Wake everything that waits and wait for the callers to leave. */
static void drain_callers(pm_fabric *f) {
  atomic_store(&f->stopping, true);
  for (;;) {
    pm_fabric_slots_shutdown(f);
    pthread_mutex_lock(&f->send_lock);
    pthread_cond_broadcast(&f->send_cond);
    pthread_mutex_unlock(&f->send_lock);
    if (atomic_load(&f->callers) == 0)
      break;
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
}

static void fabric_fini(pm_transport *self) {
  pm_fabric *f = from(self);
  drain_callers(f);
  pm_fabric_server_stop(f);
  pm_fabric_progress_stop(f);
  /* The endpoint goes first: it cancels what is still in flight, so no
   * operation touches a buffer once its registration is closed. */
  pm_fabric_ep_close_endpoint(f);
  pm_fabric_slots_close(f);
  pm_fabric_server_free(f);
  pm_fabric_msgbufs_close(f);
  pm_fabric_peers_clear(f);
  pm_fabric_ep_close(f);
  pm_fabric_keys_free(&f->keys);
  destroy_sync(f);
}

static int fabric_address(pm_transport *self, char *out, size_t out_size) {
  pm_fabric *f = from(self);
  size_t len = strlen(PM_FABRIC_ADDR_SCHEME) + strlen(f->self_hex);
  if (len + 1 > out_size)
    return pm__errf(PM_ETOOBIG, "fabric: address needs %zu bytes, have %zu",
                    len + 1, out_size);
  snprintf(out, out_size, "%s%s", PM_FABRIC_ADDR_SCHEME, f->self_hex);
  return 0;
}

static void fabric_stats(pm_transport *self, pm_transport_stats *out) {
  pm_fabric_stats *s = &from(self)->stats;
  out->gets_sent = atomic_load(&s->gets_sent);
  out->gets_served = atomic_load(&s->gets_served);
  out->puts_sent = atomic_load(&s->puts_sent);
  out->puts_served = atomic_load(&s->puts_served);
  out->bytes_sent = atomic_load(&s->bytes_sent);
  out->bytes_received = atomic_load(&s->bytes_received);
  out->auth_failures = atomic_load(&s->auth_failures);
  out->decode_failures = atomic_load(&s->decode_failures);
  out->timeouts = atomic_load(&s->timeouts);
}

const pm_transport_methods pm_fabric_methods = {
    .size = sizeof(pm_transport_methods),
    .name = "fabric",
    .object_size = sizeof(pm_fabric),
    .init = fabric_init,
    .fini = fabric_fini,
    .address = fabric_address,
    .get_page = pm_fabric_get_page,
    .put_page = pm_fabric_put_page,
    .stats = fabric_stats,
};
