/*
 * perf/bench_transport_fabric.c - remote-hit throughput and latency of the
 * fabric page transport against the bare libfabric ceiling, measured side
 * by side in one run with the same provider (FI_PROVIDER, default tcp) on
 * 127.0.0.1.
 *
 * pagemesh: two fabric transports; the server serves the page by
 * reference from a file in the page cache (serve_file, as an owner serves
 * its disk tier: read into a registered buffer, stored checksum), and 1
 * (qd1) or 8 (qd8) client threads call get_page in a loop. Each GET is the
 * whole protocol: sealed PageGet, serve_file, RMA write of the trailer and
 * the page with CQ data, copy out of the landing buffer, checksum check.
 *
 * ceilings: two bare endpoints of the same provider, no protocol: one
 * thread keeps qd fi_read (and, separately, fi_write) operations of the
 * page size in flight and busy-polls its CQ; the target busy-polls its CQ
 * (tcp;ofi_rxm completes nothing otherwise). Both yield the CPU after an
 * empty poll, as the transport's progress thread does. The goal is stated
 * against the fi_read loop (a GET is a read: a request, then the page);
 * the ratio to the fi_write loop (one-way, no request) is printed too.
 *
 * usage: bench_transport_fabric [seconds per measurement, default 1]
 *                               [rounds, default 3] [KiB] [qd]
 * (KiB and qd, when given and not 0, keep only the rows of that page size
 * and queue depth).
 * Each row runs `rounds` times, ceiling and pagemesh back to back; the
 * best round of each is reported (a shared machine only adds slowness).
 * Prints a Markdown table and a PASS / FALLS SHORT line for the goal
 * "at least 0.7 of the ceiling". The last column is the CPU time the
 * process spent (both ends, every thread) per GET and per fi_read. Both
 * sides busy-poll while operations are in flight, so it is about two
 * cores times the latency at queue depth 1: the price of the polling, not
 * only of the work.
 */
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_int.h"
#include "pagemesh/transport.h"
#include "transport/fabric_int.h"
#include "bench_env.h"
#include "bench_page_file.h"

#define GOAL 0.7
#define MAX_QD 8
#define MAX_SAMPLES (1u << 20)

typedef struct result {
  double gbps, p50_us, p99_us;
  double cpu_us; /* CPU time of the whole process (both ends) per operation */
} result;

/* CPU time the process has used (all threads, user and system), in us. */
static double cpu_now_us(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* ---- latency samples --------------------------------------------------------- */

typedef struct samples {
  uint64_t *ns;
  size_t count;
  pthread_mutex_t lock;
} samples;

static void samples_add(samples *s, const uint64_t *ns, size_t count) {
  pthread_mutex_lock(&s->lock);
  for (size_t i = 0; i < count && s->count < MAX_SAMPLES; i++)
    s->ns[s->count++] = ns[i];
  pthread_mutex_unlock(&s->lock);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static result summarise(samples *s, uint64_t bytes, uint64_t elapsed_ns,
                        double cpu_us, size_t size) {
  qsort(s->ns, s->count, sizeof *s->ns, cmp_u64);
  result r = {.gbps = (double)bytes / (double)elapsed_ns,
              .cpu_us = bytes ? cpu_us / (double)(bytes / size) : 0};
  if (s->count) {
    r.p50_us = s->ns[s->count / 2] / 1e3;
    r.p99_us = s->ns[(size_t)(s->count * 0.99)] / 1e3;
  }
  s->count = 0;
  return r;
}

/* ---- pagemesh ------------------------------------------------------------------ */

static uint8_t *source_page; /* what the server serves */

static ssize_t serve_get(void *arg, const pm_page_request *req, void *dst,
                         size_t dst_len) {
  (void)arg;
  size_t len = req->page_size;
  if (len > dst_len)
    return PM_ETOOBIG;
  memcpy(dst, source_page, len);
  return (ssize_t)len;
}

static pm_transport *open_transport(const uint8_t *key) {
  pm_transport *t = calloc(1, pm_fabric_methods.object_size);
  t->methods = &pm_fabric_methods;
  pm_transport_config cfg = {
      .size = sizeof cfg, .listen = "127.0.0.1:0", .cluster_key = key,
      .cluster_id = "bench", .max_page_size = 1 << 20, .server_threads = 2,
      .server = {serve_get, NULL, NULL, bench_serve_file}};
  int rc = pm_fabric_methods.init(t, &cfg);
  if (rc) {
    fprintf(stderr, "fabric init: %s: %s\n", pm_err_name(rc), pm__errmsg());
    exit(1);
  }
  return t;
}

typedef struct client_run {
  pm_transport *client;
  const char *addr;
  size_t size;
  uint64_t end_ns;
  _Atomic uint64_t *bytes;
  samples *lat;
} client_run;

static void *client_loop(void *arg) {
  client_run *run = arg;
  uint8_t *dst = malloc(run->size);
  uint64_t *ns = malloc(MAX_SAMPLES / MAX_QD * sizeof *ns);
  size_t count = 0;
  pm_page_request req = {.uri = "s3://bench/object", .version = "v1",
                         .page_size = (uint32_t)run->size};
  uint64_t t0;
  while ((t0 = pm__now_ns()) < run->end_ns) {
    req.page_index++;
    req.object_size = (req.page_index + 1) * run->size;
    ssize_t n = run->client->methods->get_page(run->client, run->addr, &req,
                                               dst, run->size,
                                               t0 + 5000000000ull);
    if (n != (ssize_t)run->size) {
      fprintf(stderr, "get_page: %s: %s\n", pm_err_name((int)n),
              pm__errmsg());
      exit(1);
    }
    if (count < MAX_SAMPLES / MAX_QD)
      ns[count++] = pm__now_ns() - t0;
    atomic_fetch_add(run->bytes, run->size);
  }
  samples_add(run->lat, ns, count);
  free(ns);
  free(dst);
  return NULL;
}

static result bench_pagemesh(pm_transport *client, const char *addr,
                             size_t size, int qd, double seconds,
                             samples *lat) {
  _Atomic uint64_t bytes = 0;
  pthread_t threads[MAX_QD];
  client_run runs[MAX_QD];
  double cpu = cpu_now_us();
  uint64_t start = pm__now_ns();
  uint64_t end = start + (uint64_t)(seconds * 1e9);
  for (int i = 0; i < qd; i++) {
    runs[i] = (client_run){client, addr, size, end, &bytes, lat};
    pthread_create(&threads[i], NULL, client_loop, &runs[i]);
  }
  for (int i = 0; i < qd; i++)
    pthread_join(threads[i], NULL);
  return summarise(lat, atomic_load(&bytes), pm__now_ns() - start,
                   cpu_now_us() - cpu, size);
}

/* ---- the bare ceiling ------------------------------------------------------------ */

typedef struct raw_ep {
  struct fid_fabric *fabric;
  struct fid_domain *domain;
  struct fid_cq *cq;
  struct fid_av *av;
  struct fid_ep *ep;
  struct fid_mr *mr;
  uint8_t *buf;
  uint64_t mr_mode;
} raw_ep;

static void check(int rc, const char *what) {
  if (rc) {
    fprintf(stderr, "%s: %s\n", what, fi_strerror(rc < 0 ? -rc : rc));
    exit(1);
  }
}

static void raw_open(raw_ep *e, struct fi_info *info, size_t buf_size) {
  memset(e, 0, sizeof *e);
  e->mr_mode = (uint64_t)info->domain_attr->mr_mode;
  check(fi_fabric(info->fabric_attr, &e->fabric, NULL), "fi_fabric");
  check(fi_domain(e->fabric, info, &e->domain, NULL), "fi_domain");
  struct fi_cq_attr cq_attr = {.size = 256, .format = FI_CQ_FORMAT_CONTEXT};
  check(fi_cq_open(e->domain, &cq_attr, &e->cq, NULL), "fi_cq_open");
  struct fi_av_attr av_attr = {.type = info->domain_attr->av_type};
  check(fi_av_open(e->domain, &av_attr, &e->av, NULL), "fi_av_open");
  check(fi_endpoint(e->domain, info, &e->ep, NULL), "fi_endpoint");
  check(fi_ep_bind(e->ep, &e->av->fid, 0), "bind av");
  check(fi_ep_bind(e->ep, &e->cq->fid, FI_TRANSMIT | FI_RECV), "bind cq");
  check(fi_enable(e->ep), "fi_enable");
  check(posix_memalign((void **)&e->buf, 4096, buf_size), "memalign");
  memset(e->buf, 1, buf_size);
  static uint64_t next_key = 1;
  check(fi_mr_reg(e->domain, e->buf, buf_size,
                  FI_READ | FI_WRITE | FI_REMOTE_READ | FI_REMOTE_WRITE, 0,
                  next_key++, 0, &e->mr, NULL), "fi_mr_reg");
  if (e->mr_mode & FI_MR_ENDPOINT) {
    check(fi_mr_bind(e->mr, &e->ep->fid, 0), "fi_mr_bind");
    check(fi_mr_enable(e->mr), "fi_mr_enable");
  }
}

static void raw_close(raw_ep *e) {
  fi_close(&e->ep->fid);
  fi_close(&e->mr->fid);
  fi_close(&e->av->fid);
  fi_close(&e->cq->fid);
  fi_close(&e->domain->fid);
  fi_close(&e->fabric->fid);
  free(e->buf);
}

/* The target's progress thread busy-polls: it runs only while a ceiling
 * is measured, so that it takes no CPU from the pagemesh measurement. */
typedef struct target {
  raw_ep *ep;
  atomic_bool stop;
  pthread_t thread;
} target;

static void *target_progress(void *arg) {
  target *t = arg;
  struct fi_cq_entry entries[16];
  while (!atomic_load(&t->stop))
    if (fi_cq_read(t->ep->cq, entries, 16) <= 0)
      sched_yield();
  return NULL;
}

static void target_start(target *t, raw_ep *b) {
  t->ep = b;
  atomic_store(&t->stop, false);
  pthread_create(&t->thread, NULL, target_progress, t);
}

static void target_stop(target *t) {
  atomic_store(&t->stop, true);
  pthread_join(t->thread, NULL);
}

typedef struct raw_op {
  struct fi_context2 ctx;
  uint64_t start_ns;
  int slot;
} raw_op;

static void raw_post(raw_ep *a, raw_ep *b, fi_addr_t peer, raw_op *op,
                     size_t size, bool read) {
  uint64_t addr = (a->mr_mode & FI_MR_VIRT_ADDR)
                      ? (uint64_t)(uintptr_t)b->buf : 0;
  uint8_t *local = a->buf + (size_t)op->slot * size;
  void *desc = fi_mr_desc(a->mr);
  uint64_t key = fi_mr_key(b->mr);
  struct fi_cq_entry entry;
  ssize_t rc;
  op->start_ns = pm__now_ns();
  do {
    rc = read ? fi_read(a->ep, local, size, desc, peer, addr, key, &op->ctx)
              : fi_write(a->ep, local, size, desc, peer, addr, key, &op->ctx);
    if (rc == -FI_EAGAIN)
      fi_cq_read(a->cq, &entry, 0);
  } while (rc == -FI_EAGAIN);
  check((int)rc, read ? "fi_read" : "fi_write");
}

static result bench_raw(raw_ep *a, raw_ep *b, fi_addr_t peer, size_t size,
                        int qd, bool read, double seconds, samples *lat) {
  raw_op ops[MAX_QD];
  target tgt;
  target_start(&tgt, b);
  uint64_t *ns = malloc(MAX_SAMPLES * sizeof *ns);
  size_t count = 0;
  double cpu = cpu_now_us();
  uint64_t bytes = 0, start = pm__now_ns();
  uint64_t end = start + (uint64_t)(seconds * 1e9);
  for (int i = 0; i < qd; i++) {
    ops[i].slot = i;
    raw_post(a, b, peer, &ops[i], size, read);
  }
  int outstanding = qd;
  while (outstanding) {
    struct fi_cq_entry entry;
    ssize_t n = fi_cq_read(a->cq, &entry, 1);
    if (n == -FI_EAVAIL) {
      struct fi_cq_err_entry err = {0};
      fi_cq_readerr(a->cq, &err, 0);
      check(err.err, "raw completion");
    }
    if (n != 1) {
      sched_yield(); /* as the transport does: share the CPU */
      continue;
    }
    raw_op *op = entry.op_context;
    uint64_t now = pm__now_ns();
    if (count < MAX_SAMPLES)
      ns[count++] = now - op->start_ns;
    bytes += size;
    if (now < end)
      raw_post(a, b, peer, op, size, read);
    else
      outstanding--;
  }
  target_stop(&tgt);
  samples_add(lat, ns, count);
  free(ns);
  return summarise(lat, bytes, pm__now_ns() - start, cpu_now_us() - cpu,
                   size);
}

static struct fi_info *raw_info(void) {
  struct fi_info *hints = fi_allocinfo(), *info;
  hints->ep_attr->type = FI_EP_RDM;
  hints->caps = FI_RMA | FI_READ | FI_WRITE | FI_REMOTE_READ |
                FI_REMOTE_WRITE;
  hints->mode = FI_CONTEXT | FI_CONTEXT2;
  hints->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR |
                                FI_MR_ALLOCATED | FI_MR_ENDPOINT;
  hints->domain_attr->threading = FI_THREAD_SAFE;
  hints->fabric_attr->prov_name = strdup(getenv("FI_PROVIDER"));
  check(fi_getinfo(FI_VERSION(1, 17), "127.0.0.1", NULL, FI_SOURCE, hints,
                   &info), "fi_getinfo");
  fi_freeinfo(hints);
  return info;
}

/* ---- the table ------------------------------------------------------------------ */

typedef struct row {
  size_t size;
  int qd;
  result ours, read, write;
} row;

static bool print_table(const row *rows, int count, const char *provider) {
  bool pass = true;
  printf("\n### fabric transport remote hit vs bare libfabric (%s, "
         "127.0.0.1)\n\n", provider);
  printf("| page | qd | pagemesh GB/s | fi_read GB/s | ratio | "
         "fi_write GB/s | ratio | pagemesh p50 / p99 us | "
         "fi_read p50 / p99 us | CPU us per GET / per fi_read |\n");
  printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
  for (int i = 0; i < count; i++) {
    const row *r = &rows[i];
    double ratio = r->ours.gbps / r->read.gbps;
    pass = pass && ratio >= GOAL;
    printf("| %zu KiB | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f / %.0f "
           "| %.0f / %.0f | %.1f / %.1f |\n", r->size >> 10, r->qd,
           r->ours.gbps, r->read.gbps, ratio, r->write.gbps,
           r->ours.gbps / r->write.gbps, r->ours.p50_us, r->ours.p99_us,
           r->read.p50_us, r->read.p99_us, r->ours.cpu_us, r->read.cpu_us);
  }
  return pass;
}

/* One round of a row: the ceilings (write, then read) and pagemesh, back
 * to back; each keeps its best round, since noise only ever slows down. */
static void measure_row(raw_ep *a, raw_ep *b, fi_addr_t peer,
                        pm_transport *client, const char *addr, row *r,
                        double seconds, samples *lat) {
  result w = bench_raw(a, b, peer, r->size, r->qd, false, seconds, lat);
  if (w.gbps > r->write.gbps)
    r->write = w;
  result rd = bench_raw(a, b, peer, r->size, r->qd, true, seconds, lat);
  if (rd.gbps > r->read.gbps)
    r->read = rd;
  result ours = bench_pagemesh(client, addr, r->size, r->qd, seconds, lat);
  if (ours.gbps > r->ours.gbps)
    r->ours = ours;
}

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 1.0;
  int rounds = argc > 2 ? atoi(argv[2]) : 3;
  size_t only_kib = argc > 3 ? (size_t)atoi(argv[3]) : 0;
  int only_qd = argc > 4 ? atoi(argv[4]) : 0;
  bench_env_print();
  setenv("FI_PROVIDER", "tcp", 0);
  pm__log_level = PM_LOG_ERROR;
  source_page = malloc(1 << 20);
  pm__random(source_page, 1 << 20);
  bench_page_file_make(&source_page, 1, 1 << 20, 64u << 10, 1u << 20);
  samples lat = {.ns = malloc(MAX_SAMPLES * sizeof(uint64_t))};
  pthread_mutex_init(&lat.lock, NULL);

  uint8_t key[32];
  pm__random(key, sizeof key);
  pm_transport *server = open_transport(key), *client = open_transport(key);
  char addr[PM_ADDR_MAX];
  server->methods->address(server, addr, sizeof addr);

  struct fi_info *info = raw_info();
  raw_ep a, b;
  raw_open(&a, info, MAX_QD << 20);
  raw_open(&b, info, 1 << 20);
  uint8_t name[PM_FABRIC_RAWADDR_MAX];
  size_t name_len = sizeof name;
  check(fi_getname(&b.ep->fid, name, &name_len), "fi_getname");
  fi_addr_t peer;
  if (fi_av_insert(a.av, name, 1, &peer, 0, NULL) != 1)
    check(-FI_EINVAL, "fi_av_insert");

  row rows[] = {{.size = 64 << 10, .qd = 1}, {.size = 64 << 10, .qd = 8},
                {.size = 1 << 20, .qd = 1}, {.size = 1 << 20, .qd = 8}};
  int count = 0;
  for (size_t i = 0; i < PM_ARRAY_SIZE(rows); i++)
    if ((!only_kib || rows[i].size >> 10 == only_kib) &&
        (!only_qd || rows[i].qd == only_qd))
      rows[count++] = rows[i];
  bench_raw(&a, &b, peer, 4096, 1, false, 0.2, &lat); /* connect, warm */
  bench_pagemesh(client, addr, 4096, 1, 0.2, &lat);
  for (int i = 0; i < count; i++)
    for (int round = 0; round < rounds; round++)
      measure_row(&a, &b, peer, client, addr, &rows[i], seconds, &lat);

  bool pass = print_table(rows, count, info->fabric_attr->prov_name);
  printf("\ngoal: pagemesh >= %.1f of the fi_read ceiling in every row: "
         "%s\n", GOAL, pass ? "PASS" : "FALLS SHORT");
  raw_close(&a);
  raw_close(&b);
  fi_freeinfo(info);
  server->methods->fini(server);
  client->methods->fini(client);
  free(server);
  free(client);
  free(lat.ns);
  free(source_page);
  return 0;
}
