/* A real pm_page_server for the tcp transport tests: it serves generated
 * pages (bytes derived from the uri and page index), fails on "missing"
 * uris with a detail (and as an unreachable or slow origin would on
 * "unreachable" and "slow" ones), stalls on "stall" uris until released, and keeps
 * what is pushed to it. Plus helpers to open transports on 127.0.0.1 with
 * ports chosen by the OS. Header-only: included by one test file each. */
#ifndef PM_TEST_TCP_FIXTURE_H
#define PM_TEST_TCP_FIXTURE_H

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core_int.h"
#include "transport/transport_int.h"
#include "page_file_fixture.h"

#define FIX_MAX_PAGE (16u << 20)
#define FIX_SECOND 1000000000ull

typedef struct fixture_server {
  atomic_int gets, puts, stalls_entered;
  atomic_int release; /* set to end every stall */
  pthread_mutex_t lock;
  uint8_t *pushed;    /* the last pushed page */
  size_t pushed_length;
  atomic_int files;   /* pages served by reference */
} fixture_server;

typedef struct fixture_peer {
  pm_transport *transport;
  fixture_server server;
  char addr[PM_ADDR_MAX];
} fixture_peer;

static const uint8_t fixture_key[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9};

/* The byte pattern of a page: a xorshift stream seeded by uri and index. */
static inline void fixture_fill(const char *uri, uint64_t index, uint8_t *dst,
                                size_t length) {
  uint64_t state = 0x9e3779b97f4a7c15ull ^ (index * 0x100000001b3ull);
  for (const char *p = uri; *p; p++)
    state = (state ^ (uint8_t)*p) * 0x100000001b3ull;
  size_t i = 0;
  for (; i + 8 <= length; i += 8) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    memcpy(dst + i, &state, 8);
  }
  for (; i < length; i++)
    dst[i] = (uint8_t)(state >> (i % 8));
}

static inline size_t fixture_page_length(const pm_page_request *req) {
  uint64_t start = req->page_index * req->page_size;
  if (start >= req->object_size)
    return 0;
  return (size_t)PM_MIN((uint64_t)req->page_size, req->object_size - start);
}

static inline ssize_t fixture_serve_get(void *arg, const pm_page_request *req,
                                        void *dst, size_t dst_len) {
  fixture_server *s = arg;
  atomic_fetch_add(&s->gets, 1);
  if (strncmp(req->uri, "missing", 7) == 0)
    return pm__errf(PM_ENOENT, "%s: no such object (fixture)", req->uri);
  if (strncmp(req->uri, "unreachable", 11) == 0)
    return pm__errf(PM_EUNREACHABLE, "origin down (fixture)");
  if (strncmp(req->uri, "slow", 4) == 0)
    return pm__errf(PM_ETIMEDOUT, "origin timed out (fixture)");
  if (strncmp(req->uri, "stall", 5) == 0) {
    atomic_fetch_add(&s->stalls_entered, 1);
    uint64_t end = pm__now_ns() + 5 * FIX_SECOND;
    while (!atomic_load(&s->release) && pm__now_ns() < end)
      usleep(1000);
  }
  size_t length = fixture_page_length(req);
  if (length > dst_len)
    return pm__errf(PM_ETOOBIG, "page too big");
  fixture_fill(req->uri, req->page_index, dst, length);
  return (ssize_t)length;
}

static inline int fixture_serve_put(void *arg, const pm_page_request *req,
                                    const void *data, size_t length) {
  fixture_server *s = arg;
  pthread_mutex_lock(&s->lock);
  free(s->pushed);
  s->pushed = malloc(length ? length : 1);
  memcpy(s->pushed, data, length);
  s->pushed_length = length;
  pthread_mutex_unlock(&s->lock);
  atomic_fetch_add(&s->puts, 1);
  return 0;
}

/* serve_file: "file:" uris are served by reference from a temporary
 * file holding the page (at an offset, after a header), "badsum:" ones
 * the same with a wrong stored checksum; other uris are not at hand that
 * way (serve_get then). */
static inline int fixture_serve_file(void *arg, const pm_page_request *req,
                                     pm_page_file *out) {
  fixture_server *s = arg;
  bool bad = strncmp(req->uri, "badsum:", 7) == 0;
  if (!bad && strncmp(req->uri, "file:", 5) != 0)
    return PM_ENOENT;
  size_t length = fixture_page_length(req);
  uint8_t *page = malloc(length ? length : 1);
  fixture_fill(req->uri, req->page_index, page, length);
  atomic_fetch_add(&s->files, 1);
  return page_file_fixture(page, length, bad, out);
}

typedef struct fixture_options {
  const uint8_t *key;
  const char *cluster_id;
  int insecure_data;
  unsigned threads;
  bool serve_file;    /* offer serve_file too */
  const char *listen; /* default: 127.0.0.1:0 */
} fixture_options;

static inline int fixture_open_with(fixture_peer *peer,
                                    const fixture_options *o) {
  memset(peer, 0, sizeof *peer);
  pthread_mutex_init(&peer->server.lock, NULL);
  pm_transport_config config = {
      .size = sizeof config,
      .listen = o->listen ? o->listen : "127.0.0.1:0",
      .cluster_key = o->key ? o->key : fixture_key,
      .cluster_id = o->cluster_id ? o->cluster_id : "test-cluster",
      .insecure_data = o->insecure_data,
      .max_page_size = FIX_MAX_PAGE,
      .server_threads = o->threads ? o->threads : 2,
      .server = {.serve_get = fixture_serve_get,
                 .serve_put = fixture_serve_put,
                 .arg = &peer->server,
                 .serve_file = o->serve_file ? fixture_serve_file : NULL},
  };
  int rc = pm__transport_open("tcp", &config, &peer->transport);
  if (rc == 0)
    pm__transport_address(peer->transport, peer->addr, sizeof peer->addr);
  return rc;
}

static inline void fixture_open(fixture_peer *peer) {
  fixture_options o = {0};
  cr_assert_eq(fixture_open_with(peer, &o), 0, "%s", pm__errmsg());
}

static inline void fixture_close(fixture_peer *peer) {
  atomic_store(&peer->server.release, 1);
  pm__transport_close(peer->transport);
  peer->transport = NULL;
  free(peer->server.pushed);
  peer->server.pushed = NULL;
  pthread_mutex_destroy(&peer->server.lock);
}

/* A request for page `index` of an object of `object_size` bytes. */
static inline pm_page_request fixture_request(const char *uri, uint64_t index,
                                              uint32_t page_size,
                                              uint64_t object_size) {
  pm_page_request req = {.uri = uri,
                         .version = "v1",
                         .object_size = object_size,
                         .page_index = index,
                         .page_size = page_size};
  pm_page_id id = pm__page_id(uri, "v1", index, page_size);
  memcpy(req.page_id, id.bytes, 16);
  return req;
}

/* GET a whole page of `size` bytes and check it byte for byte. */
static inline void fixture_get_check(pm_transport *client, const char *addr,
                                     const char *uri, uint64_t index,
                                     uint32_t size) {
  pm_page_request req = fixture_request(uri, index, size, (index + 1) * size);
  uint8_t *dst = malloc(size), *want = malloc(size);
  fixture_fill(uri, index, want, size);
  ssize_t n = pm__transport_get_page(client, addr, &req, dst, size,
                                     pm__now_ns() + 10 * FIX_SECOND);
  cr_assert_eq(n, (ssize_t)size, "get %s#%llu: %zd %s", uri,
               (unsigned long long)index, n, pm__errmsg());
  cr_assert_eq(memcmp(dst, want, size), 0, "bytes differ");
  free(dst);
  free(want);
}

#endif /* PM_TEST_TCP_FIXTURE_H */
