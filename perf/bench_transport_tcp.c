/*
 * perf/bench_transport_tcp.c - remote-hit throughput and latency of the tcp
 * page transport, against the raw loopback ceiling measured in the same
 * run. One process: a server transport that serves pages by reference
 * from a file in the page cache (serve_file, as an owner serves the pages
 * of its disk tier, with their stored checksums), a client transport
 * issuing GETs of 64 KiB and 1 MiB at
 * queue depth 1 and 8 (one thread per outstanding request), with page
 * bytes encrypted (default: AEGIS-128X4 where the CPU has AES-NI), in
 * AES-256-GCM (PAGEMESH_TCP_CIPHER=aes-256-gcm, the cipher before
 * AEGIS, as a baseline) and in the clear (insecure_data). The ceiling
 * is a plain socket request/response loop of the same sizes: a 8-byte
 * request, the page written straight from RAM, one connection per thread,
 * with the congestion control the transport's sockets use (cubic unless
 * PAGEMESH_TCP_CONGESTION names another; see tcp_int.h).
 *
 * Usage: bench_transport_tcp [seconds per measurement, default 1]
 *                            [page KiB] [qd] [rounds, default 3]
 * (KiB and qd, when given and not 0, keep only the cells of that page size
 * and queue depth). Each cell runs `rounds` times, the ceiling and both
 * pagemesh paths back to back; the best round of each is reported (a
 * shared machine only adds slowness: on this kind of VM one 2 s ceiling
 * run varied by 30% between runs, and so did a single-round ratio).
 * Prints a Markdown table and the goal line (>= 0.7 of the ceiling).
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/core_int.h"
#include "transport/aegis.h"
#include "transport/tcp_int.h"
#include "transport/transport_int.h"
#include "bench_env.h"
#include "bench_page_file.h"

#define PAGES 32
#define MAX_PAGE (1u << 20)
#define MAX_QD 8
#define MAX_SAMPLES (1u << 20)
#define SOCKET_BUFFER (4 * 1024 * 1024)

static uint8_t *pages[PAGES];
static double cell_seconds = 1.0;
/* The ceiling's sockets use the congestion control the transport's do. */
static char congestion[PM_TCP_CC_MAX];

/* ---- the page server ----------------------------------------------------- */

static ssize_t serve_get(void *arg, const pm_page_request *req, void *dst,
                         size_t dst_len) {
  (void)arg;
  if (req->page_size > dst_len)
    return PM_ETOOBIG;
  memcpy(dst, pages[req->page_index % PAGES], req->page_size);
  return req->page_size;
}

/* ---- a cell: qd threads doing requests for `seconds` --------------------- */

typedef enum kind { RAW, SECURE, GCM, CLEAR, KINDS } kind;
static const char *kind_names[] = {"raw loopback", "tcp encrypted",
                                   "tcp encrypted, AES-256-GCM",
                                   "tcp insecure_data"};

typedef struct cell {
  kind kind;
  uint32_t size;
  unsigned qd;
  pm_transport *client;
  char server_addr[PM_ADDR_MAX];
  int raw_port;
  atomic_int failures;
  uint64_t end_ns;
} cell;

typedef struct worker {
  cell *cell;
  pthread_t thread;
  uint64_t *samples;
  size_t count;
  uint64_t bytes;
} worker;

typedef struct result {
  double mb_per_s, p50_us, p99_us;
} result;

static void raw_sockopts(int fd) {
  int one = 1, size = SOCKET_BUFFER;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  pm__tcp_set_congestion(fd, congestion);
}

static int raw_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  raw_sockopts(fd);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    perror("connect");
    exit(1);
  }
  return fd;
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

static int raw_request(int fd, uint32_t size, uint32_t index, uint8_t *dst) {
  uint32_t request[2] = {size, index};
  if (pm__write_all(fd, request, sizeof request) != 0)
    return -1;
  return read_full(fd, dst, size);
}

static int transport_request(cell *c, uint32_t index, uint8_t *dst) {
  pm_page_request req = {.uri = "s3://bench/object", .version = "v1",
                         .object_size = (uint64_t)PAGES * c->size,
                         .page_index = index, .page_size = c->size};
  ssize_t n = pm__transport_get_page(c->client, c->server_addr, &req, dst,
                                     c->size, pm__now_ns() + 10000000000ull);
  if (n != (ssize_t)c->size) {
    fprintf(stderr, "get: %s: %s\n", pm_err_name((int)n), pm__errmsg());
    return -1;
  }
  return 0;
}

static void *worker_main(void *arg) {
  worker *w = arg;
  cell *c = w->cell;
  uint8_t *dst = malloc(MAX_PAGE);
  int fd = c->kind == RAW ? raw_connect(c->raw_port) : -1;
  for (uint32_t i = 0; pm__now_ns() < c->end_ns; i++) {
    uint64_t start = pm__now_ns();
    int rc = c->kind == RAW ? raw_request(fd, c->size, i % PAGES, dst)
                            : transport_request(c, i % PAGES, dst);
    if (rc) {
      atomic_fetch_add(&c->failures, 1);
      break;
    }
    if (w->count < MAX_SAMPLES)
      w->samples[w->count++] = pm__now_ns() - start;
    w->bytes += c->size;
  }
  if (fd >= 0)
    close(fd);
  free(dst);
  return NULL;
}

static int compare_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static result run_cell(cell *c) {
  worker workers[MAX_QD];
  uint64_t start = pm__now_ns();
  c->end_ns = start + (uint64_t)(cell_seconds * 1e9);
  for (unsigned i = 0; i < c->qd; i++) {
    workers[i] = (worker){.cell = c, .samples = malloc(MAX_SAMPLES * 8)};
    pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]);
  }
  uint64_t *all = malloc((size_t)MAX_SAMPLES * MAX_QD * 8), bytes = 0;
  size_t count = 0;
  for (unsigned i = 0; i < c->qd; i++) {
    pthread_join(workers[i].thread, NULL);
    memcpy(all + count, workers[i].samples, workers[i].count * 8);
    count += workers[i].count;
    bytes += workers[i].bytes;
    free(workers[i].samples);
  }
  double elapsed = (double)(pm__now_ns() - start) / 1e9;
  qsort(all, count, sizeof *all, compare_u64);
  result r = {.mb_per_s = (double)bytes / elapsed / 1e6};
  if (count) {
    r.p50_us = (double)all[count / 2] / 1e3;
    r.p99_us = (double)all[(count * 99) / 100] / 1e3;
  }
  free(all);
  return r;
}

/* ---- the raw ceiling server: one thread per connection ------------------ */

static void *raw_conn_main(void *arg) {
  int fd = (int)(intptr_t)arg;
  uint32_t request[2];
  while (read_full(fd, request, sizeof request) == 0 &&
         request[0] <= MAX_PAGE)
    if (pm__write_all(fd, pages[request[1] % PAGES], request[0]) != 0)
      break;
  close(fd);
  return NULL;
}

static void *raw_accept_main(void *arg) {
  int listen_fd = (int)(intptr_t)arg;
  for (;;) {
    int fd = accept(listen_fd, NULL, NULL);
    if (fd < 0)
      return NULL;
    raw_sockopts(fd);
    pthread_t thread;
    pthread_create(&thread, NULL, raw_conn_main, (void *)(intptr_t)fd);
    pthread_detach(thread);
  }
}

static int raw_server_start(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  pm__tcp_set_congestion(fd, congestion); /* accepted ones start with it */
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof sa;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 64) ||
      getsockname(fd, (struct sockaddr *)&sa, &len)) {
    perror("raw server");
    exit(1);
  }
  pthread_t thread;
  pthread_create(&thread, NULL, raw_accept_main, (void *)(intptr_t)fd);
  pthread_detach(thread);
  return ntohs(sa.sin_port);
}

/* ---- transports ----------------------------------------------------------- */

/* The transports of a kind other than RAW; GCM's are opened with
 * PAGEMESH_TCP_CIPHER=aes-256-gcm. */
static pm_transport *open_transport(kind k, unsigned threads) {
  int insecure = k == CLEAR;
  if (k == GCM)
    setenv("PAGEMESH_TCP_CIPHER", "aes-256-gcm", 1);
  static const uint8_t key[32] = {42};
  pm_transport_config config = {
      .size = sizeof config, .listen = "127.0.0.1:0", .cluster_key = key,
      .cluster_id = "bench", .insecure_data = insecure,
      .max_page_size = MAX_PAGE, .server_threads = threads,
      .server = {.serve_get = serve_get, .serve_file = bench_serve_file}};
  pm_transport *t = NULL;
  if (pm__transport_open("tcp", &config, &t) != 0) {
    fprintf(stderr, "open: %s\n", pm__errmsg());
    exit(1);
  }
  unsetenv("PAGEMESH_TCP_CIPHER");
  return t;
}

int main(int argc, char **argv) {
  if (argc > 1)
    cell_seconds = atof(argv[1]);
  unsigned only_kib = argc > 2 ? (unsigned)atoi(argv[2]) : 0;
  unsigned only_qd = argc > 3 ? (unsigned)atoi(argv[3]) : 0;
  int rounds = argc > 4 && atoi(argv[4]) > 0 ? atoi(argv[4]) : 3;
  bench_env_print();
  for (int i = 0; i < PAGES; i++) {
    pages[i] = malloc(MAX_PAGE);
    pm__random(pages[i], MAX_PAGE);
  }
  bench_page_file_make(pages, PAGES, MAX_PAGE, 64u << 10, MAX_PAGE);
  if (pm__tcp_congestion_pick(congestion) != 0) {
    fprintf(stderr, "%s\n", pm__errmsg());
    return 1;
  }
  int raw_port = raw_server_start();
  pm_transport *server[KINDS] = {0}, *client[KINDS] = {0};
  char addr[KINDS][PM_ADDR_MAX];
  for (int k = SECURE; k < KINDS; k++) {
    server[k] = open_transport((kind)k, MAX_QD);
    client[k] = open_transport((kind)k, 1);
    pm__transport_address(server[k], addr[k], PM_ADDR_MAX);
  }
  const pm_aegis_ops *aegis = pm__aegis_best();
  printf("tcp encrypted: %s%s%s. Congestion control of every socket, "
         "the ceiling's too: %s.\n",
         aegis ? "AEGIS-128X4 (" : "AES-256-GCM (this CPU has no AES-NI",
         aegis ? aegis->name : "", ")",
         congestion[0] ? congestion : "the kernel's default");
  printf("Remote-hit GETs over loopback, best of %d rounds of %.1f s per "
         "cell and path, %ld cores.\n\n", rounds, cell_seconds,
         sysconf(_SC_NPROCESSORS_ONLN));
  printf("| page | qd | path | MB/s | p50 µs | p99 µs | vs ceiling |\n");
  printf("| --- | --- | --- | ---: | ---: | ---: | ---: |\n");
  double worst[KINDS] = {1e9, 1e9, 1e9, 1e9};
  uint32_t sizes[] = {64u << 10, 1u << 20};
  unsigned depths[] = {1, 8};
  int failures = 0;
  for (int s = 0; s < 2; s++) {
    for (int d = 0; d < 2; d++) {
      if ((only_kib && sizes[s] >> 10 != only_kib) ||
          (only_qd && depths[d] != only_qd))
        continue;
      result best[KINDS] = {{0}};
      for (int round = 0; round < rounds; round++) {
        for (int k = RAW; k < KINDS; k++) {
          cell c = {.kind = (kind)k, .size = sizes[s], .qd = depths[d],
                    .client = client[k], .raw_port = raw_port};
          if (k != RAW)
            snprintf(c.server_addr, sizeof c.server_addr, "%s", addr[k]);
          result r = run_cell(&c);
          failures += c.failures;
          if (r.mb_per_s > best[k].mb_per_s)
            best[k] = r;
        }
      }
      double ceiling = best[RAW].mb_per_s;
      for (int k = RAW; k < KINDS; k++) {
        result r = best[k];
        double ratio = ceiling > 0 ? r.mb_per_s / ceiling : 0;
        if (ratio < worst[k])
          worst[k] = ratio;
        printf("| %u KiB | %u | %s | %.0f | %.0f | %.0f | %.2f |\n",
               sizes[s] >> 10, depths[d], kind_names[k], r.mb_per_s, r.p50_us,
               r.p99_us, ratio);
        fflush(stdout);
      }
    }
  }
  printf("\nGoal: >= 0.7 of the ceiling. insecure_data: %s (worst %.2f); "
         "encrypted: %s (worst %.2f); AES-256-GCM baseline: worst %.2f.\n",
         worst[CLEAR] >= 0.7 ? "PASS" : "FALLS SHORT", worst[CLEAR],
         worst[SECURE] >= 0.7 ? "PASS" : "FALLS SHORT", worst[SECURE],
         worst[GCM]);
  if (failures)
    printf("%d request failures\n", failures);
  for (int k = SECURE; k < KINDS; k++) {
    pm__transport_close(client[k]);
    pm__transport_close(server[k]);
  }
  for (int i = 0; i < PAGES; i++)
    free(pages[i]);
  return failures ? 1 : 0;
}
