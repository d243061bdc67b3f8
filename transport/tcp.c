/*
 * transport/tcp.c - the tcp page transport as a backend object: its
 * method table, setting it up from a pm_transport_config (copies of the
 * key in sodium_malloc memory and of the strings, the listening socket,
 * the server threads, the client pool), tearing it down, its address and
 * its counters. The work itself is in tcp_server.c / tcp_serve.c (serving)
 * and tcp_client.c (requesting), over tcp_conn.c, tcp_handshake.c and
 * tcp_io.c.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core_int.h"
#include "tcp_int.h"

static int copy_config(pm_tcp *tcp, const pm_transport_config *config) {
  tcp->cluster_key = sodium_malloc(32);
  tcp->cluster_id = pm__strdup(config->cluster_id);
  if (!tcp->cluster_key || !tcp->cluster_id)
    return pm__errf(PM_ENOMEM, "tcp %s: cannot allocate", config->listen);
  memcpy(tcp->cluster_key, config->cluster_key, 32);
  sodium_mprotect_readonly(tcp->cluster_key);
  tcp->insecure_data = config->insecure_data != 0;
  const char *cipher = getenv("PAGEMESH_TCP_CIPHER");
  bool gcm_only = cipher && strcmp(cipher, "aes-256-gcm") == 0;
  if (cipher && *cipher && !gcm_only && strcmp(cipher, "aegis-128x4") != 0)
    return pm__errf(PM_EINVAL,
                    "tcp %s: PAGEMESH_TCP_CIPHER=%s is neither aegis-128x4 "
                    "nor aes-256-gcm",
                    config->listen, cipher);
  /* AEGIS-128X4 is offered unless AES-256-GCM is asked for; a connection
   * uses it when the other end offers it too. */
  tcp->offer_aegis = !gcm_only && pm__aegis_best() != NULL;
  int rc = pm__tcp_congestion_pick(tcp->congestion);
  if (rc) {
    char detail[PM_ERRMSG_MAX];
    snprintf(detail, sizeof detail, "%s", pm__errmsg());
    return pm__errf(rc, "tcp %s: %s", config->listen, detail);
  }
  tcp->max_page_size = config->max_page_size;
  tcp->server = config->server;
  return 0;
}

static void tcp_fini(pm_transport *self);

static int tcp_init(pm_transport *self, const pm_transport_config *config) {
  pm_tcp *tcp = (pm_tcp *)self;
  tcp->listen_fd = tcp->epoll_fd = tcp->work_fd = tcp->wake_fd = -1;
  pthread_mutex_init(&tcp->server_lock, NULL);
  pm__tcp_client_init(tcp);
  if (sodium_init() < 0) {
    tcp_fini(self);
    return pm__errf(PM_ENOMEM, "tcp %s: libsodium cannot start",
                    config->listen);
  }
  int rc = copy_config(tcp, config);
  if (!rc)
    rc = pm__tcp_listen(config->listen, tcp->congestion, &tcp->listen_fd,
                        tcp->address, sizeof tcp->address);
  if (!rc)
    rc = pm__tcp_server_start(tcp, config->server_threads);
  if (rc) {
    char detail[PM_ERRMSG_MAX];
    snprintf(detail, sizeof detail, "%s", pm__errmsg());
    tcp_fini(self);
    return pm__errf(rc, "%s", detail);
  }
  PM_LOG(PM_LOG_INFO, "tcp",
         "listening on %s (%u threads, page bytes %sencrypted with %s, "
         "congestion control %s)",
         tcp->address, config->server_threads ? config->server_threads : 1,
         tcp->insecure_data ? "in the clear where the peer agrees, else "
                            : "",
         tcp->offer_aegis ? "AEGIS-128X4 where the peer has it, else "
                            "AES-256-GCM"
                          : "AES-256-GCM",
         tcp->congestion[0] ? tcp->congestion : "the kernel's default");
  return 0;
}

static void tcp_fini(pm_transport *self) {
  pm_tcp *tcp = (pm_tcp *)self;
  pm__tcp_server_stop(tcp);
  pm__tcp_client_fini(tcp);
  if (tcp->listen_fd >= 0)
    close(tcp->listen_fd);
  tcp->listen_fd = -1;
  if (tcp->cluster_key)
    sodium_free(tcp->cluster_key);
  tcp->cluster_key = NULL;
  free(tcp->cluster_id);
  tcp->cluster_id = NULL;
  pthread_mutex_destroy(&tcp->server_lock);
}

static int tcp_address(pm_transport *self, char *out, size_t out_size) {
  pm_tcp *tcp = (pm_tcp *)self;
  size_t length = strlen(tcp->address);
  if (length >= out_size)
    return pm__errf(PM_ETOOBIG, "tcp %s: address needs %zu bytes",
                    tcp->address, length + 1);
  memcpy(out, tcp->address, length + 1);
  return 0;
}

static void tcp_stats(pm_transport *self, pm_transport_stats *out) {
  pm_tcp *tcp = (pm_tcp *)self;
  out->gets_sent = atomic_load(&tcp->gets_sent);
  out->gets_served = atomic_load(&tcp->gets_served);
  out->puts_sent = atomic_load(&tcp->puts_sent);
  out->puts_served = atomic_load(&tcp->puts_served);
  out->bytes_sent = atomic_load(&tcp->bytes_sent);
  out->bytes_received = atomic_load(&tcp->bytes_received);
  out->auth_failures = atomic_load(&tcp->auth_failures);
  out->decode_failures = atomic_load(&tcp->decode_failures);
  out->timeouts = atomic_load(&tcp->timeouts);
}

const pm_transport_methods pm_tcp_methods = {
    .size = sizeof(pm_transport_methods),
    .name = "tcp",
    .object_size = sizeof(pm_tcp),
    .init = tcp_init,
    .fini = tcp_fini,
    .address = tcp_address,
    .get_page = pm__tcp_get_page,
    .put_page = pm__tcp_put_page,
    .stats = tcp_stats,
};

int pm__tcp_counters(pm_transport *transport, pm_tcp_counters *out) {
  if (!transport || !out || transport->methods != &pm_tcp_methods)
    return pm__errf(PM_EINVAL, "not a tcp transport");
  pm_tcp *tcp = (pm_tcp *)transport;
  out->connects = atomic_load(&tcp->connects);
  out->accepts = atomic_load(&tcp->accepts);
  out->handshakes = atomic_load(&tcp->handshakes);
  out->aegis_handshakes = atomic_load(&tcp->aegis_handshakes);
  out->sealed_page_bytes = atomic_load(&tcp->sealed_page_bytes);
  out->clear_page_bytes = atomic_load(&tcp->clear_page_bytes);
  out->retries = atomic_load(&tcp->retries);
  out->lingered = atomic_load(&tcp->lingered);
  return 0;
}
