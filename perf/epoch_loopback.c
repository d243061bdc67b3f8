/*
 * perf/epoch_loopback.c - the raw loopback ceiling of the epoch benchmark:
 * what a plain TCP request/response loop moves between two processes'
 * worth of sockets on 127.0.0.1, with the same message size and the same
 * number of concurrent readers as a benchmark workload. Each client thread
 * has its own connection and sends an 8-byte request; a server thread
 * answers with `size` bytes written straight from RAM. No encryption, no
 * checksums, no cache lookups: the best any remote hit could do. Its
 * sockets use the congestion control pagemesh's tcp transport would
 * (cubic unless PAGEMESH_TCP_CONGESTION names another), so that the two
 * are compared on the same terms.
 *
 * usage: epoch_loopback SIZE_BYTES CONNECTIONS SECONDS
 * prints one JSON line: {"mb_per_s":..,"p50_us":..,"p99_us":..,"requests":..}
 */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "transport/tcp_int.h"

#define MAX_CONNECTIONS 64
#define MAX_SAMPLES (1u << 20)
#define SOCKET_BUFFER (4 * 1024 * 1024)

typedef struct client {
  pthread_t thread;
  int fd;
  uint32_t size;
  uint64_t end_ns;
  uint64_t *samples;
  size_t count;
  uint64_t bytes;
  int failed;
} client;

static uint8_t *payload;
static char congestion[PM_TCP_CC_MAX];

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void tune(int fd) {
  int one = 1, size = SOCKET_BUFFER;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  pm__tcp_set_congestion(fd, congestion);
}

static int read_full(int fd, void *buf, size_t length) {
  uint8_t *p = buf;
  while (length > 0) {
    ssize_t n = read(fd, p, length);
    if (n <= 0)
      return -1;
    p += n;
    length -= (size_t)n;
  }
  return 0;
}

static int write_full(int fd, const void *buf, size_t length) {
  const uint8_t *p = buf;
  while (length > 0) {
    ssize_t n = write(fd, p, length);
    if (n <= 0)
      return -1;
    p += n;
    length -= (size_t)n;
  }
  return 0;
}

static void *serve_connection(void *arg) {
  int fd = (int)(intptr_t)arg;
  uint64_t request;
  while (read_full(fd, &request, sizeof request) == 0)
    if (write_full(fd, payload, (size_t)request) != 0)
      break;
  close(fd);
  return NULL;
}

static void *accept_loop(void *arg) {
  int listen_fd = (int)(intptr_t)arg;
  for (;;) {
    int fd = accept(listen_fd, NULL, NULL);
    if (fd < 0)
      return NULL;
    tune(fd);
    pthread_t thread;
    pthread_create(&thread, NULL, serve_connection, (void *)(intptr_t)fd);
    pthread_detach(thread);
  }
}

static int listen_loopback(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd >= 0)
    pm__tcp_set_congestion(fd, congestion); /* accepted ones start with it */
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof sa;
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      listen(fd, MAX_CONNECTIONS) != 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
    return -1;
  *port = ntohs(sa.sin_port);
  return fd;
}

static int connect_loopback(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  tune(fd);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static void *client_loop(void *arg) {
  client *c = arg;
  uint8_t *dst = malloc(c->size);
  uint64_t request = c->size;
  while (dst && now_ns() < c->end_ns) {
    uint64_t start = now_ns();
    if (write_full(c->fd, &request, sizeof request) != 0 ||
        read_full(c->fd, dst, c->size) != 0) {
      c->failed = 1;
      break;
    }
    if (c->count < MAX_SAMPLES)
      c->samples[c->count++] = now_ns() - start;
    c->bytes += c->size;
  }
  free(dst);
  return NULL;
}

static int compare_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: epoch_loopback SIZE CONNECTIONS SECONDS\n");
    return 2;
  }
  uint32_t size = (uint32_t)strtoul(argv[1], NULL, 10);
  int conns = atoi(argv[2]);
  double seconds = atof(argv[3]);
  if (size == 0 || conns < 1 || conns > MAX_CONNECTIONS || seconds <= 0)
    return fprintf(stderr, "epoch_loopback: bad arguments\n"), 2;
  if (pm__tcp_congestion_pick(congestion) != 0)
    return fprintf(stderr, "epoch_loopback: %s\n", pm__errmsg()), 2;
  payload = malloc(size);
  memset(payload, 0x5a, size);
  int port;
  int listen_fd = listen_loopback(&port);
  if (listen_fd < 0)
    return perror("epoch_loopback: listen"), 1;
  pthread_t acceptor;
  pthread_create(&acceptor, NULL, accept_loop, (void *)(intptr_t)listen_fd);
  client clients[MAX_CONNECTIONS] = {0};
  for (int i = 0; i < conns; i++) {
    clients[i].fd = connect_loopback(port);
    if (clients[i].fd < 0)
      return perror("epoch_loopback: connect"), 1;
  }
  uint64_t start = now_ns();
  for (int i = 0; i < conns; i++) {
    clients[i].size = size;
    clients[i].end_ns = start + (uint64_t)(seconds * 1e9);
    clients[i].samples = malloc(MAX_SAMPLES * sizeof(uint64_t));
    pthread_create(&clients[i].thread, NULL, client_loop, &clients[i]);
  }
  uint64_t *all = malloc((size_t)MAX_SAMPLES * conns * sizeof(uint64_t));
  uint64_t bytes = 0;
  size_t count = 0;
  int failed = 0;
  for (int i = 0; i < conns; i++) {
    pthread_join(clients[i].thread, NULL);
    memcpy(all + count, clients[i].samples, clients[i].count * 8);
    count += clients[i].count;
    bytes += clients[i].bytes;
    failed |= clients[i].failed;
    close(clients[i].fd);
    free(clients[i].samples);
  }
  double elapsed = (double)(now_ns() - start) / 1e9;
  qsort(all, count, sizeof *all, compare_u64);
  printf("{\"mb_per_s\": %.1f, \"p50_us\": %.1f, \"p99_us\": %.1f, "
         "\"requests\": %zu, \"failed\": %d}\n",
         (double)bytes / elapsed / 1e6,
         count ? (double)all[count / 2] / 1e3 : 0.0,
         count ? (double)all[(count * 99) / 100] / 1e3 : 0.0, count, failed);
  free(all);
  return failed;
}
