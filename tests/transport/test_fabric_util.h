/*
 * tests/transport/test_fabric_util.h - what the fabric transport tests
 * share: a scripted page server (deterministic page bytes, an error URI, a
 * stalling URI), opening transports on 127.0.0.1 with FI_PROVIDER=tcp
 * unless the environment names another provider, skipping when no provider
 * is there, and a bare libfabric endpoint that plays a foreign peer (it
 * sends whatever bytes a test wants to a transport's address).
 */
#ifndef TEST_FABRIC_UTIL_H
#define TEST_FABRIC_UTIL_H

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "transport/fabric_int.h"
#include "page_file_fixture.h"

#define KiB 1024u
#define MiB (1024u * 1024u)
#define SEC_NS 1000000000ull
#define MS_NS 1000000ull

typedef struct test_server {
  atomic_int gets, puts, files;
  atomic_int nowait_files, nowait_refused;
  atomic_bool cold_evicted;
  atomic_int stall_ms;
  atomic_bool abort_stall;
  pthread_mutex_t lock;
  uint8_t *put_data;
  size_t put_length;
  uint64_t put_index;
  int put_status;
} test_server;

static inline uint64_t splitmix(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static inline uint64_t uri_seed(const char *uri, uint64_t index) {
  uint64_t h = 1469598103934665603ull;
  for (const char *p = uri; *p; p++)
    h = (h ^ (uint8_t)*p) * 1099511628211ull;
  return h ^ (index * 0x9e3779b97f4a7c15ull);
}

static inline void fill_page(const char *uri, uint64_t index, uint8_t *dst,
                             size_t len) {
  uint64_t state = uri_seed(uri, index);
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t v = splitmix(&state);
    memcpy(dst + i, &v, 8);
  }
  uint64_t v = splitmix(&state);
  memcpy(dst + i, &v, len - i);
}

static inline size_t page_length(const pm_page_request *req) {
  if (!req->object_size)
    return req->page_size;
  uint64_t start = req->page_index * req->page_size;
  return (size_t)PM_MIN((uint64_t)req->page_size, req->object_size - start);
}

static inline void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static ssize_t test_serve_get(void *arg, const pm_page_request *req,
                              void *dst, size_t dst_len) {
  test_server *srv = arg;
  atomic_fetch_add(&srv->gets, 1);
  if (strcmp(req->uri, "test://missing") == 0)
    return pm__errf(PM_ENOENT, "test server: %s has no page %llu", req->uri,
                    (unsigned long long)req->page_index);
  if (strncmp(req->uri, "test://stall", 12) == 0) {
    for (int waited = 0; waited < atomic_load(&srv->stall_ms) &&
                         !atomic_load(&srv->abort_stall);
         waited += 5)
      sleep_ms(5);
  }
  size_t len = page_length(req);
  if (len > dst_len)
    return pm__errf(PM_ETOOBIG, "test server: page too large");
  fill_page(req->uri, req->page_index, dst, len);
  return (ssize_t)len;
}

static int test_serve_put(void *arg, const pm_page_request *req,
                          const void *data, size_t length) {
  test_server *srv = arg;
  atomic_fetch_add(&srv->puts, 1);
  if (strcmp(req->uri, "test://readonly") == 0)
    return pm__errf(PM_EACCES, "test server: %s is read-only", req->uri);
  pthread_mutex_lock(&srv->lock);
  free(srv->put_data);
  srv->put_data = malloc(length);
  memcpy(srv->put_data, data, length);
  srv->put_length = length;
  srv->put_index = req->page_index;
  pthread_mutex_unlock(&srv->lock);
  return 0;
}

/* serve_file: "test://file/..." pages come by reference from an unlinked
 * temporary file (after a 4096-byte gap), "test://badsum" the same with a
 * wrong stored checksum, "test://busy/..." too but PM_EBUSY when asked
 * with PM_PAGE_REQ_NOWAIT (as a page that must be verified first); the
 * rest is not at hand (serve_get then). */
static int test_serve_file(void *arg, const pm_page_request *req,
                           pm_page_file *out) {
  test_server *srv = arg;
  bool bad = strcmp(req->uri, "test://badsum") == 0;
  bool busy = strncmp(req->uri, "test://busy/", 12) == 0;
  bool cold = strncmp(req->uri, "test://cold/", 12) == 0;
  bool nowait = (req->flags & PM_PAGE_REQ_NOWAIT) != 0;
  if (!bad && !busy && !cold && strncmp(req->uri, "test://file/", 12) != 0)
    return PM_ENOENT;
  if (busy && nowait) {
    atomic_fetch_add(&srv->nowait_refused, 1);
    return PM_EBUSY;
  }
  if (nowait)
    atomic_fetch_add(&srv->nowait_files, 1);
  size_t len = page_length(req);
  uint8_t *page = malloc(len ? len : 1);
  fill_page(req->uri, req->page_index, page, len);
  atomic_fetch_add(&srv->files, 1);
  int rc = page_file_fixture(page, len, bad, out);
  if (rc == 0 && cold) /* out of the page cache: RWF_NOWAIT reads fail */
    atomic_store(&srv->cold_evicted, page_file_evict(out));
  return rc;
}

static inline void test_server_init(test_server *srv) {
  memset(srv, 0, sizeof *srv);
  pthread_mutex_init(&srv->lock, NULL);
}

static inline void test_server_fini(test_server *srv) {
  free(srv->put_data);
  pthread_mutex_destroy(&srv->lock);
}

static const uint8_t test_key[32] = "pagemesh-fabric-test-cluster-key";
static const uint8_t wrong_key[32] = "an-outsider-with-another-key-!!!";

/* Open a fabric transport on 127.0.0.1; skip the test if the provider is
 * not available here. */
static inline pm_transport *open_fabric(test_server *srv, const uint8_t *key,
                                        uint32_t max_page) {
  setenv("FI_PROVIDER", "tcp", 0);
  if (!getenv("PAGEMESH_LOG_LEVEL"))
    pm__log_level = PM_LOG_ERROR; /* the drops the tests provoke are expected */
  pm_transport *t = calloc(1, pm_fabric_methods.object_size);
  cr_assert(t);
  t->methods = &pm_fabric_methods;
  pm_transport_config cfg = {
      .size = sizeof cfg,
      .listen = "127.0.0.1:0",
      .cluster_key = key,
      .cluster_id = "test-cluster",
      .max_page_size = max_page,
      .server_threads = 2,
      .server = {test_serve_get, test_serve_put, srv, test_serve_file},
  };
  int rc = pm_fabric_methods.init(t, &cfg);
  if (rc) {
    free(t);
    if (rc == PM_ENOTSUP || rc == PM_EUNREACHABLE)
      cr_skip_test("fabric provider %s unavailable: %s",
                   getenv("FI_PROVIDER"), pm__errmsg());
    cr_assert_fail("fabric init: %s: %s", pm_err_name(rc), pm__errmsg());
  }
  return t;
}

static inline void close_fabric(pm_transport *t) {
  if (t) {
    t->methods->fini(t);
    free(t);
  }
}

static inline bool is_shm(pm_transport *t) {
  return strcmp(((pm_fabric *)t)->provider, "shm") == 0;
}

/* shm keeps every endpoint of a process in one region map: a peer closed
 * in the same process crashes its senders inside libfabric (peers in
 * separate processes are fine). Tests that close a peer need tcp. */
static inline void skip_closed_peer_on_shm(pm_transport *t) {
  if (is_shm(t))
    cr_skip_test("shm: closing a peer that lives in the same process "
                 "crashes libfabric's shm provider");
}

static inline void address_of(pm_transport *t, char out[PM_ADDR_MAX]) {
  cr_assert_eq(t->methods->address(t, out, PM_ADDR_MAX), 0);
}

static inline pm_page_request make_request(const char *uri, uint64_t index,
                                           uint32_t page_size) {
  pm_page_request req = {
      .uri = uri, .version = "v1", .page_index = index,
      .page_size = page_size, .object_size = (index + 1) * page_size};
  pm_page_id id = pm__page_id(uri, "v1", index, page_size);
  memcpy(req.page_id, id.bytes, 16);
  return req;
}

static inline pm_transport_stats stats_of(pm_transport *t) {
  pm_transport_stats s;
  memset(&s, 0, sizeof s);
  t->methods->stats(t, &s);
  return s;
}

/* ---- a foreign peer: a bare endpoint of the same provider -------------------- */

typedef struct raw_peer {
  struct fi_info *info;
  struct fid_fabric *fabric;
  struct fid_domain *domain;
  struct fid_av *av;
  struct fid_cq *cq;
  struct fid_ep *ep;
} raw_peer;

static inline void raw_open(raw_peer *p) {
  memset(p, 0, sizeof *p);
  struct fi_info *hints = fi_allocinfo();
  hints->ep_attr->type = FI_EP_RDM;
  hints->caps = FI_MSG;
  hints->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR |
                                FI_MR_PROV_KEY | FI_MR_ALLOCATED;
  hints->fabric_attr->prov_name = strdup(getenv("FI_PROVIDER"));
  cr_assert_eq(fi_getinfo(FI_VERSION(1, 17), "127.0.0.1", NULL, FI_SOURCE,
                          hints, &p->info), 0);
  fi_freeinfo(hints);
  cr_assert_eq(fi_fabric(p->info->fabric_attr, &p->fabric, NULL), 0);
  cr_assert_eq(fi_domain(p->fabric, p->info, &p->domain, NULL), 0);
  struct fi_cq_attr cq_attr = {.size = 64, .format = FI_CQ_FORMAT_CONTEXT};
  cr_assert_eq(fi_cq_open(p->domain, &cq_attr, &p->cq, NULL), 0);
  struct fi_av_attr av_attr = {.type = p->info->domain_attr->av_type};
  cr_assert_eq(fi_av_open(p->domain, &av_attr, &p->av, NULL), 0);
  cr_assert_eq(fi_endpoint(p->domain, p->info, &p->ep, NULL), 0);
  cr_assert_eq(fi_ep_bind(p->ep, &p->av->fid, 0), 0);
  cr_assert_eq(fi_ep_bind(p->ep, &p->cq->fid, FI_TRANSMIT | FI_RECV), 0);
  cr_assert_eq(fi_enable(p->ep), 0);
}

/* Insert a transport's advertised address (see PM_FABRIC_ADDR_SCHEME). */
static inline fi_addr_t raw_insert(raw_peer *p, const char *advertised) {
  const char *hex;
  cr_assert_eq(pm_fabric_advertised(advertised, &hex), 0);
  uint8_t raw[PM_FABRIC_RAWADDR_MAX];
  ssize_t len = pm_fabric_hex_decode(hex, raw, sizeof raw);
  cr_assert_gt(len, 0);
  fi_addr_t addr;
  cr_assert_eq(fi_av_insert(p->av, raw, 1, &addr, 0, NULL), 1);
  return addr;
}

/* Send bytes and wait for the send's completion (success or error). */
static inline void raw_send(raw_peer *p, fi_addr_t dest, const void *bytes,
                            size_t len) {
  struct fi_context2 ctx;
  ssize_t rc;
  uint64_t deadline = pm__now_ns() + 5 * SEC_NS;
  while ((rc = fi_send(p->ep, bytes, len, NULL, dest, &ctx)) == -FI_EAGAIN) {
    struct fi_cq_entry entry;
    fi_cq_read(p->cq, &entry, 1);
    cr_assert_lt(pm__now_ns(), deadline, "raw send stuck in EAGAIN");
  }
  cr_assert_eq(rc, 0, "fi_send: %s", fi_strerror((int)-rc));
  for (;;) {
    struct fi_cq_entry entry;
    ssize_t n = fi_cq_read(p->cq, &entry, 1);
    if (n == 1)
      return;
    if (n == -FI_EAVAIL) {
      struct fi_cq_err_entry err = {0};
      fi_cq_readerr(p->cq, &err, 0);
      return;
    }
    cr_assert_lt(pm__now_ns(), deadline, "raw send never completed");
  }
}

static inline void raw_close(raw_peer *p) {
  fi_close(&p->ep->fid);
  fi_close(&p->av->fid);
  fi_close(&p->cq->fid);
  fi_close(&p->domain->fid);
  fi_close(&p->fabric->fid);
  fi_freeinfo(p->info);
}

#endif /* TEST_FABRIC_UTIL_H */
