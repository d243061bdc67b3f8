/*
 * Tests for the fabric transport (transport/fabric*.c) over a real
 * provider: FI_PROVIDER=tcp (tcp;ofi_rxm) on 127.0.0.1 unless the
 * environment names another (FI_PROVIDER=shm also passes). Two or three
 * transports in one process: byte-exact GETs of 64 KiB, 1 MiB and 16 MiB,
 * server errors with their detail, concurrent GETs, deadlines against a
 * stalled server and a server closed mid-request, a client with the wrong
 * cluster key, and PUT.
 */
#define _GNU_SOURCE /* preadv2 */
#include <sys/uio.h>

#include "test_fabric_util.h"

TestSuite(fabric, .timeout = 120);

typedef struct pair {
  test_server server_state, client_state;
  pm_transport *server, *client;
  char server_addr[PM_ADDR_MAX];
} pair;

static void pair_open(pair *p, uint32_t max_page) {
  test_server_init(&p->server_state);
  test_server_init(&p->client_state);
  p->server = open_fabric(&p->server_state, test_key, max_page);
  p->client = open_fabric(&p->client_state, test_key, max_page);
  address_of(p->server, p->server_addr);
}

static void pair_close(pair *p) {
  close_fabric(p->client);
  close_fabric(p->server);
  test_server_fini(&p->server_state);
  test_server_fini(&p->client_state);
}

/* GET one page and check every byte. */
static void get_exact(pm_transport *client, const char *addr,
                      const char *uri, uint64_t index, uint32_t size) {
  pm_page_request req = make_request(uri, index, size);
  uint8_t *got = malloc(size), *want = malloc(size);
  cr_assert(got && want);
  memset(got, 0xee, size);
  fill_page(uri, index, want, size);
  ssize_t n = client->methods->get_page(client, addr, &req, got, size,
                                        pm__now_ns() + 10 * SEC_NS);
  cr_assert_eq(n, (ssize_t)size, "get %s#%llu: %s: %s", uri,
               (unsigned long long)index, pm_err_name((int)n), pm__errmsg());
  cr_assert(memcmp(got, want, size) == 0, "page bytes differ");
  free(got);
  free(want);
}

Test(fabric, round_trips_are_byte_exact) {
  pair p;
  pair_open(&p, 16 * MiB);
  const uint32_t sizes[] = {64 * KiB, 1 * MiB, 16 * MiB};
  for (unsigned i = 0; i < 3; i++)
    for (uint64_t index = 0; index < 3; index++)
      get_exact(p.client, p.server_addr, "s3://bucket/round", index,
                sizes[i]);
  pm_transport_stats cs = stats_of(p.client), ss = stats_of(p.server);
  cr_assert_eq(cs.gets_sent, 9);
  cr_assert_eq(ss.gets_served, 9);
  uint64_t bytes = 3ull * (64 * KiB + 1 * MiB + 16 * MiB);
  cr_assert_eq(cs.bytes_received, bytes);
  cr_assert_eq(ss.bytes_sent, bytes);
  pair_close(&p);
}

/* Pages served by reference arrive byte-exact with their stored
 * checksum; a stored checksum that does not match fails the request. */
Test(fabric, served_by_reference) {
  pair p;
  pair_open(&p, MiB);
  get_exact(p.client, p.server_addr, "test://file/a", 0, 64 * KiB);
  get_exact(p.client, p.server_addr, "test://file/b", 3, MiB);
  get_exact(p.client, p.server_addr, "s3://bucket/copied", 0, 4 * KiB);
  cr_assert_eq(atomic_load(&p.server_state.files), 2);
  cr_assert_eq(atomic_load(&p.server_state.gets), 1);
  pm_page_request req = make_request("test://badsum", 0, 64 * KiB);
  uint8_t *buf = malloc(64 * KiB);
  ssize_t n = p.client->methods->get_page(p.client, p.server_addr, &req, buf,
                                          64 * KiB,
                                          pm__now_ns() + 10 * SEC_NS);
  cr_assert_eq(n, PM_ECORRUPT, "got %s", pm_err_name((int)n));
  get_exact(p.client, p.server_addr, "test://file/after", 1, 64 * KiB);
  free(buf);
  pair_close(&p);
}

/* A page on disk whose bytes are in the page cache is served by the
 * progress thread itself (serve_file asked with PM_PAGE_REQ_NOWAIT); one
 * that would need a wait (PM_EBUSY) is served by a worker, asked again
 * without the flag. Both arrive byte-exact. */
/* Whether the file system of the page files (page_file_fixture.h: /tmp)
 * reads with RWF_NOWAIT; a tmpfs does not (EOPNOTSUPP), and the server
 * then serves no page file from its progress thread. */
static bool page_files_read_nowait(void) {
  char path[] = "/tmp/pm-test-page-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0)
    return false;
  unlink(path);
  char byte = 1;
  struct iovec iov = {&byte, 1};
  bool ok = pwrite(fd, &byte, 1, 0) == 1 &&
            preadv2(fd, &iov, 1, 0, RWF_NOWAIT) == 1;
  close(fd);
  return ok;
}

Test(fabric, progress_thread_serves_what_needs_no_wait) {
  if (!page_files_read_nowait())
    cr_skip_test("/tmp does not read with RWF_NOWAIT (a tmpfs)");
  pair p;
  pair_open(&p, MiB);
  get_exact(p.client, p.server_addr, "test://file/inline", 0, 64 * KiB);
  get_exact(p.client, p.server_addr, "test://file/inline", 1, MiB);
  cr_assert_eq(atomic_load(&p.server_state.nowait_files), 2);
  cr_assert_eq(atomic_load(&p.server_state.files), 2);
  get_exact(p.client, p.server_addr, "test://busy/later", 2, 256 * KiB);
  cr_assert_eq(atomic_load(&p.server_state.nowait_refused), 1);
  cr_assert_eq(atomic_load(&p.server_state.files), 3);
  cr_assert_eq(atomic_load(&p.server_state.nowait_files), 2);
  cr_assert_eq(atomic_load(&p.server_state.gets), 0);
  cr_assert_eq(stats_of(p.server).gets_served, 3);
  /* Bytes not in the page cache: the worker reads the file the progress
   * thread opened, without asking the core a second time. */
  get_exact(p.client, p.server_addr, "test://cold/page", 3, MiB);
  cr_assert_eq(atomic_load(&p.server_state.files), 4);
  cr_assert_eq(atomic_load(&p.server_state.nowait_files), 3);
  if (!atomic_load(&p.server_state.cold_evicted))
    cr_log_warn("the page stayed in the page cache: served inline");
  pair_close(&p);
}

Test(fabric, short_last_page_and_both_directions) {
  pair p;
  pair_open(&p, 1 * MiB);
  pm_page_request req = make_request("s3://bucket/short", 2, 1 * MiB);
  req.object_size = 2 * MiB + 12345;
  uint8_t *got = malloc(MiB), want[12345];
  fill_page(req.uri, 2, want, sizeof want);
  ssize_t n = p.client->methods->get_page(p.client, p.server_addr, &req, got,
                                          MiB, pm__now_ns() + 5 * SEC_NS);
  cr_assert_eq(n, 12345, "%s", pm__errmsg());
  cr_assert(memcmp(got, want, sizeof want) == 0);
  /* The server's own client side reaches the client's server side. */
  char client_addr[PM_ADDR_MAX];
  address_of(p.client, client_addr);
  get_exact(p.server, client_addr, "s3://bucket/back", 7, 256 * KiB);
  free(got);
  pair_close(&p);
}

Test(fabric, server_error_carries_code_and_detail) {
  pair p;
  pair_open(&p, 1 * MiB);
  pm_page_request req = make_request("test://missing", 4, 1 * MiB);
  uint8_t *buf = malloc(MiB);
  ssize_t n = p.client->methods->get_page(p.client, p.server_addr, &req, buf,
                                          MiB, pm__now_ns() + 5 * SEC_NS);
  cr_assert_eq(n, PM_ENOENT, "got %s", pm_err_name((int)n));
  cr_assert(strstr(pm__errmsg(), "test server: test://missing has no page 4"),
            "detail: %s", pm__errmsg());
  cr_assert(strstr(pm__errmsg(), "fabric peer"), "detail: %s", pm__errmsg());
  /* A too-small destination is refused by the server, not overrun. */
  req = make_request("s3://bucket/big", 0, 1 * MiB);
  n = p.client->methods->get_page(p.client, p.server_addr, &req, buf,
                                  64 * KiB, pm__now_ns() + 5 * SEC_NS);
  cr_assert_eq(n, PM_ETOOBIG, "got %s", pm_err_name((int)n));
  /* So is a uri the server would refuse as oversize, before sending. */
  static char long_uri[PM_FABRIC_URI_MAX + 16];
  memset(long_uri, 'u', sizeof long_uri - 1);
  req = make_request(long_uri, 0, 1 * MiB);
  n = p.client->methods->get_page(p.client, p.server_addr, &req, buf, MiB,
                                  pm__now_ns() + 5 * SEC_NS);
  cr_assert_eq(n, PM_ETOOBIG, "got %s", pm_err_name((int)n));
  free(buf);
  pair_close(&p);
}

Test(fabric, bad_addresses_fail_cleanly) {
  pair p;
  pair_open(&p, 64 * KiB);
  pm_page_request req = make_request("s3://bucket/x", 0, 64 * KiB);
  uint8_t buf[64];
  const char *bad[] = {"", "zz", "abc", "not-an-address"};
  for (unsigned i = 0; i < PM_ARRAY_SIZE(bad); i++) {
    ssize_t n = p.client->methods->get_page(p.client, bad[i], &req, buf,
                                            sizeof buf,
                                            pm__now_ns() + SEC_NS);
    cr_assert_lt(n, 0);
  }
  char small[8];
  cr_assert_eq(p.client->methods->address(p.client, small, sizeof small),
               PM_ETOOBIG);
  /* A peer of another protocol version (or one from before versions were
   * advertised) is refused at once, not after the deadline. */
  cr_assert(strncmp(p.server_addr, PM_FABRIC_ADDR_SCHEME,
                    strlen(PM_FABRIC_ADDR_SCHEME)) == 0);
  char other[PM_ADDR_MAX];
  snprintf(other, sizeof other, "pmf9-%s",
           p.server_addr + strlen(PM_FABRIC_ADDR_SCHEME));
  const char *versions[] = {other, p.server_addr +
                                       strlen(PM_FABRIC_ADDR_SCHEME)};
  for (unsigned i = 0; i < PM_ARRAY_SIZE(versions); i++) {
    ssize_t n = p.client->methods->get_page(p.client, versions[i], &req, buf,
                                            sizeof buf,
                                            pm__now_ns() + 60 * SEC_NS);
    cr_assert_eq(n, PM_EPROTO, "%s: %s", versions[i], pm__errmsg());
    n = p.client->methods->put_page(p.client, versions[i], &req, buf, 64,
                                    pm__now_ns() + 60 * SEC_NS);
    cr_assert_eq(n, PM_EPROTO, "%s: %s", versions[i], pm__errmsg());
  }
  cr_assert(strstr(pm__errmsg(), "pmf1"), "%s", pm__errmsg());
  pair_close(&p);
}

typedef struct reader {
  pm_transport *client;
  const char *addr;
  int thread;
  int failures;
  char first_failure[PM_ERRMSG_MAX];
} reader;

static void *read_many(void *arg) {
  reader *r = arg;
  const uint32_t size = 256 * KiB;
  uint8_t *got = malloc(size), *want = malloc(size);
  char uri[64];
  snprintf(uri, sizeof uri, "s3://bucket/thread-%d", r->thread);
  for (uint64_t index = 0; index < 40; index++) {
    pm_page_request req = make_request(uri, index, size);
    fill_page(uri, index, want, size);
    ssize_t n = r->client->methods->get_page(r->client, r->addr, &req, got,
                                             size, pm__now_ns() + 10 * SEC_NS);
    if (n != (ssize_t)size || memcmp(got, want, size) != 0) {
      if (!r->failures++)
        snprintf(r->first_failure, sizeof r->first_failure, "%s: %s",
                 n < 0 ? pm_err_name((int)n) : "wrong bytes",
                 n < 0 ? pm__errmsg() : "");
    }
  }
  free(got);
  free(want);
  return NULL;
}

/* Six threads, 40 byte-exact GETs each, at once. */
static void read_concurrently(pair *p) {
  enum { THREADS = 6 };
  pthread_t threads[THREADS];
  reader readers[THREADS];
  for (int i = 0; i < THREADS; i++) {
    readers[i] = (reader){p->client, p->server_addr, i, 0, ""};
    pthread_create(&threads[i], NULL, read_many, &readers[i]);
  }
  for (int i = 0; i < THREADS; i++) {
    pthread_join(threads[i], NULL);
    cr_assert_eq(readers[i].failures, 0, "thread %d failed %d reads: %s", i,
                 readers[i].failures, readers[i].first_failure);
  }
  cr_assert_eq(stats_of(p->server).gets_served, THREADS * 40);
}

Test(fabric, concurrent_gets_from_several_threads) {
  pair p;
  pair_open(&p, 1 * MiB);
  read_concurrently(&p);
  pair_close(&p);
}

/* One thread on each side reads from the other at once: each transport's
 * lone caller polls the CQ for its own GETs while its progress thread
 * waits aside, so the other side's requests are served by that caller's
 * dispatch or by the progress thread once it is back. */
Test(fabric, each_side_reads_from_the_other_at_once) {
  pair p;
  pair_open(&p, 1 * MiB);
  char client_addr[PM_ADDR_MAX];
  address_of(p.client, client_addr);
  reader readers[2] = {{p.client, p.server_addr, 0, 0, ""},
                       {p.server, client_addr, 1, 0, ""}};
  pthread_t threads[2];
  for (int i = 0; i < 2; i++)
    pthread_create(&threads[i], NULL, read_many, &readers[i]);
  for (int i = 0; i < 2; i++) {
    pthread_join(threads[i], NULL);
    cr_assert_eq(readers[i].failures, 0, "side %d failed %d reads: %s", i,
                 readers[i].failures, readers[i].first_failure);
  }
  cr_assert_eq(stats_of(p.server).gets_served, 40);
  cr_assert_eq(stats_of(p.client).gets_served, 40);
  pair_close(&p);
}

/* A provider whose CQ has no wait object: the progress threads poll and
 * sleep, and never call fi_cq_sread (which crashed in the provider when
 * more operations were in flight than the threads poll for). */
Test(fabric, cq_without_wait_object) {
  setenv("PM_FABRIC_CQ_WAIT", "none", 1);
  pair p;
  pair_open(&p, 1 * MiB);
  unsetenv("PM_FABRIC_CQ_WAIT");
  cr_assert_not(((pm_fabric *)p.client)->cq_waitable);
  cr_assert_not(((pm_fabric *)p.server)->cq_waitable);
  read_concurrently(&p);
  get_exact(p.client, p.server_addr, "s3://b/after-idle", 3, 64 * 1024);
  pair_close(&p);
}

Test(fabric, deadline_holds_against_a_stalled_server) {
  pair p;
  pair_open(&p, 1 * MiB);
  atomic_store(&p.server_state.stall_ms, 1500);
  pm_page_request req = make_request("test://stall", 0, 1 * MiB);
  uint8_t *buf = malloc(MiB);
  uint64_t start = pm__now_ns();
  ssize_t n = p.client->methods->get_page(p.client, p.server_addr, &req, buf,
                                          MiB, start + 300 * MS_NS);
  uint64_t took = pm__now_ns() - start;
  cr_assert_eq(n, PM_ETIMEDOUT, "got %s", pm_err_name((int)n));
  cr_assert_lt(took, 600 * MS_NS, "returned after %llu ms",
               (unsigned long long)(took / MS_NS));
  cr_assert_eq(stats_of(p.client).timeouts, 1);
  /* Other requests go on meanwhile, and after the stalled page lands in
   * the abandoned (quarantined) buffer, reads stay byte-exact. */
  get_exact(p.client, p.server_addr, "s3://bucket/during", 1, 1 * MiB);
  sleep_ms(1500);
  for (uint64_t index = 0; index < 8; index++)
    get_exact(p.client, p.server_addr, "s3://bucket/after", index, 1 * MiB);
  free(buf);
  pair_close(&p);
}

static void *close_in_background(void *arg) {
  close_fabric(arg);
  return NULL;
}

typedef struct pending_get {
  pair *p;
  uint64_t deadline_ns;
  ssize_t result;
  uint64_t returned_ns;
} pending_get;

static void *get_in_background(void *arg) {
  pending_get *g = arg;
  pm_page_request req = make_request("test://stall", 1, 1 * MiB);
  uint8_t *buf = malloc(MiB);
  g->result = g->p->client->methods->get_page(g->p->client, g->p->server_addr,
                                              &req, buf, MiB, g->deadline_ns);
  g->returned_ns = pm__now_ns();
  free(buf);
  return NULL;
}

/* A stalled GET from one of several clients, and what it returned when. */
typedef struct crowd_get {
  pm_transport *client;
  const char *addr;
  int index;
  uint64_t start_ns, returned_ns;
  ssize_t result;
} crowd_get;

static void *crowd_get_main(void *arg) {
  crowd_get *g = arg;
  pm_page_request req = make_request("test://stall/crowd", g->index, 65536);
  uint8_t *buf = malloc(65536);
  g->result = g->client->methods->get_page(g->client, g->addr, &req, buf,
                                           65536, g->start_ns + 30 * SEC_NS);
  g->returned_ns = pm__now_ns();
  if (g->result == 65536) {
    uint8_t *want = malloc(65536);
    fill_page("test://stall/crowd", (uint64_t)g->index, want, 65536);
    if (memcmp(buf, want, 65536) != 0)
      g->result = PM_ECORRUPT;
    free(want);
  }
  free(buf);
  return NULL;
}

/* Both server threads wait in the core (two stalled GETs; in a mesh,
 * owners asking each other or the origin): a GET that needs no waiting is
 * still answered, by a thread the progress thread starts when all are
 * stuck, not after the stalls (5 s). */
Test(fabric, a_request_is_served_while_every_worker_is_stuck) {
  test_server srv, cs;
  test_server_init(&srv);
  test_server_init(&cs);
  pm_transport *server = open_fabric(&srv, test_key, 65536);
  pm_transport *client = open_fabric(&cs, test_key, 65536);
  char addr[PM_ADDR_MAX];
  address_of(server, addr);
  atomic_store(&srv.stall_ms, 5000);
  uint64_t start = pm__now_ns();
  crowd_get stalled[2];
  pthread_t threads[2];
  for (int i = 0; i < 2; i++) {
    stalled[i] = (crowd_get){client, addr, i, start, 0, 0};
    pthread_create(&threads[i], NULL, crowd_get_main, &stalled[i]);
  }
  while (atomic_load(&srv.gets) < 2 && pm__now_ns() - start < 5 * SEC_NS)
    sleep_ms(1);
  cr_assert_geq(atomic_load(&srv.gets), 2);
  uint64_t asked = pm__now_ns();
  get_exact(client, addr, "s3://bucket/quick", 0, 65536);
  uint64_t took = pm__now_ns() - asked;
  cr_log_info("answered in %llu ms while both threads stalled",
              (unsigned long long)(took / MS_NS));
  cr_assert_lt(took, 2 * SEC_NS, "%llu ms", (unsigned long long)(took / MS_NS));
  atomic_store(&srv.abort_stall, true);
  for (int i = 0; i < 2; i++) {
    pthread_join(threads[i], NULL);
    cr_assert_eq(stalled[i].result, 65536, "%s",
                 pm_err_name((int)stalled[i].result));
  }
  close_fabric(client);
  close_fabric(server);
  test_server_fini(&srv);
  test_server_fini(&cs);
}

/* Two clients with 64 GETs each in flight against a server whose workers
 * stall: what its queue cannot hold is answered PM_EBUSY at once (the
 * requester can ask another replica) instead of being dropped to time out
 * at the deadline; the rest are served byte-exact once the stall ends. */
Test(fabric, full_server_queue_refuses_at_once) {
  test_server srv, c1, c2;
  test_server_init(&srv);
  test_server_init(&c1);
  test_server_init(&c2);
  pm_transport *server = open_fabric(&srv, test_key, 65536);
  pm_transport *clients[2] = {open_fabric(&c1, test_key, 65536),
                              open_fabric(&c2, test_key, 65536)};
  char addr[PM_ADDR_MAX];
  address_of(server, addr);
  atomic_store(&srv.stall_ms, 60000);
  enum { PER_CLIENT = 64, ALL = 2 * PER_CLIENT };
  cr_assert_geq(((pm_fabric *)clients[0])->slot_count, PER_CLIENT);
  static crowd_get gets[ALL];
  pthread_t threads[ALL];
  uint64_t start = pm__now_ns();
  for (int i = 0; i < ALL; i++) {
    gets[i] = (crowd_get){clients[i % 2], addr, i, start, 0, 0};
    pthread_create(&threads[i], NULL, crowd_get_main, &gets[i]);
  }
  /* Wait for the refusals: the queue and the two workers hold 65. */
  uint64_t refused = 0;
  for (int waited = 0; waited < 10000 && refused < ALL - 65; waited += 10) {
    sleep_ms(10);
    refused = atomic_load(&((pm_fabric *)server)->stats.busy_refusals);
  }
  cr_assert_geq(refused, ALL - 65, "only %llu refused",
                (unsigned long long)refused);
  atomic_store(&srv.abort_stall, true);
  int busy = 0, served = 0;
  for (int i = 0; i < ALL; i++) {
    pthread_join(threads[i], NULL);
    if (gets[i].result == PM_EBUSY) {
      busy++;
      cr_assert_lt(gets[i].returned_ns - start, 10 * SEC_NS);
    } else {
      cr_assert_eq(gets[i].result, 65536, "get %d: %s", i,
                   pm_err_name((int)gets[i].result));
      served++;
    }
  }
  /* Every refusal is a PM_EBUSY answer; some may come after the wait
   * above saw enough of them (the ASan build is slow to send them all). */
  refused = atomic_load(&((pm_fabric *)server)->stats.busy_refusals);
  cr_assert_eq((uint64_t)busy, refused);
  cr_assert_eq(busy + served, ALL);
  cr_assert_eq(stats_of(clients[0]).timeouts + stats_of(clients[1]).timeouts,
               0);
  close_fabric(clients[0]);
  close_fabric(clients[1]);
  close_fabric(server);
  test_server_fini(&srv);
  test_server_fini(&c1);
  test_server_fini(&c2);
}

Test(fabric, server_closed_mid_request_fails_within_deadline) {
  pair p;
  pair_open(&p, 1 * MiB);
  skip_closed_peer_on_shm(p.server);
  atomic_store(&p.server_state.stall_ms, 10000);
  pending_get g = {.p = &p, .deadline_ns = pm__now_ns() + 1500 * MS_NS};
  pthread_t thread;
  pthread_create(&thread, NULL, get_in_background, &g);
  while (atomic_load(&p.server_state.gets) == 0)
    sleep_ms(1);
  /* Close the server while its callback is busy with the request; let the
   * callback return only once the transport is closing. */
  pthread_t closer;
  pthread_create(&closer, NULL, close_in_background, p.server);
  while (!atomic_load(&((pm_fabric *)p.server)->stopping))
    sleep_ms(1);
  atomic_store(&p.server_state.abort_stall, true);
  pthread_join(closer, NULL);
  p.server = NULL;
  pthread_join(thread, NULL);
  cr_assert_lt(g.result, 0);
  cr_assert_lt(g.returned_ns, g.deadline_ns + 800 * MS_NS,
               "returned %lld ms after the deadline",
               (long long)(g.returned_ns - g.deadline_ns) / (long long)MS_NS);
  /* A request to the dead address also ends by its deadline. */
  pm_page_request req = make_request("s3://bucket/gone", 0, 64 * KiB);
  uint8_t buf[64 * KiB];
  uint64_t deadline = pm__now_ns() + 500 * MS_NS;
  ssize_t n = p.client->methods->get_page(p.client, p.server_addr, &req, buf,
                                          sizeof buf, deadline);
  cr_assert_lt(n, 0);
  cr_assert_lt(pm__now_ns(), deadline + 800 * MS_NS);
  pair_close(&p);
}

/* The zombie slot of a request whose page never came back. */
static pm_fabric_slot *find_zombie(pm_transport *t) {
  pm_fabric *f = (pm_fabric *)t;
  pm_fabric_slot *found = NULL;
  pthread_mutex_lock(&f->slot_lock);
  for (unsigned i = 0; i < f->slot_count && !found; i++)
    if (f->slots[i].state == PM_FABRIC_SLOT_ZOMBIE)
      found = &f->slots[i];
  pthread_mutex_unlock(&f->slot_lock);
  return found;
}

static pm_fabric_slot_state state_of(pm_transport *t, pm_fabric_slot *slot) {
  pm_fabric *f = (pm_fabric *)t;
  pthread_mutex_lock(&f->slot_lock);
  pm_fabric_slot_state state = slot->state;
  pthread_mutex_unlock(&f->slot_lock);
  return state;
}

Test(fabric, abandoned_landing_buffer_is_rekeyed_after_quarantine) {
  pair p;
  pair_open(&p, 1 * MiB);
  skip_closed_peer_on_shm(p.server);
  atomic_store(&p.server_state.stall_ms, 10000);
  pm_page_request req = make_request("test://stall", 2, 1 * MiB);
  uint8_t *buf = malloc(MiB);
  ssize_t n = p.client->methods->get_page(p.client, p.server_addr, &req, buf,
                                          MiB, pm__now_ns() + 200 * MS_NS);
  cr_assert_eq(n, PM_ETIMEDOUT);
  pm_fabric_slot *slot = find_zombie(p.client);
  cr_assert(slot, "the abandoned request left no quarantined slot");
  uint64_t old_key = slot->buf.key;
  /* The server goes away without ever writing the page. */
  pthread_t closer;
  pthread_create(&closer, NULL, close_in_background, p.server);
  while (!atomic_load(&((pm_fabric *)p.server)->stopping))
    sleep_ms(1);
  atomic_store(&p.server_state.abort_stall, true);
  pthread_join(closer, NULL);
  p.server = NULL;
  uint64_t deadline = pm__now_ns() + PM_FABRIC_QUARANTINE_NS + 3 * SEC_NS;
  while (state_of(p.client, slot) == PM_FABRIC_SLOT_ZOMBIE &&
         pm__now_ns() < deadline)
    sleep_ms(20);
  cr_assert_eq(state_of(p.client, slot), PM_FABRIC_SLOT_FREE);
  if (!(((pm_fabric *)p.client)->mr_mode & FI_MR_PROV_KEY))
    cr_assert_neq(slot->buf.key, old_key, "the old key still names it");
  /* The slot serves again. */
  test_server other;
  test_server_init(&other);
  pm_transport *server2 = open_fabric(&other, test_key, 1 * MiB);
  char addr2[PM_ADDR_MAX];
  address_of(server2, addr2);
  for (uint64_t index = 0; index < 2 * PM_FABRIC_SLOTS_MAX; index++)
    get_exact(p.client, addr2, "s3://bucket/again", index, 64 * KiB);
  close_fabric(server2);
  test_server_fini(&other);
  free(buf);
  pair_close(&p);
}

Test(fabric, client_closed_while_its_request_is_served) {
  pair p;
  pair_open(&p, 1 * MiB);
  skip_closed_peer_on_shm(p.server);
  atomic_store(&p.server_state.stall_ms, 300);
  pending_get g = {.p = &p, .deadline_ns = pm__now_ns() + 5 * SEC_NS};
  pthread_t thread;
  pthread_create(&thread, NULL, get_in_background, &g);
  while (atomic_load(&p.server_state.gets) == 0)
    sleep_ms(1);
  uint64_t start = pm__now_ns();
  close_fabric(p.client); /* fails the caller with PM_ESHUTDOWN */
  p.client = NULL;
  pthread_join(thread, NULL);
  cr_assert_eq(g.result, PM_ESHUTDOWN, "got %s",
               pm_err_name((int)g.result));
  cr_assert_lt(g.returned_ns - start, 1 * SEC_NS);
  /* The server writes into a vanished peer, then keeps serving others. */
  sleep_ms(400);
  test_server other;
  test_server_init(&other);
  pm_transport *client2 = open_fabric(&other, test_key, 1 * MiB);
  get_exact(client2, p.server_addr, "s3://bucket/next", 0, 1 * MiB);
  close_fabric(client2);
  test_server_fini(&other);
  pair_close(&p);
}

Test(fabric, wrong_cluster_key_gets_no_page) {
  pair p;
  pair_open(&p, 1 * MiB);
  test_server outsider_state;
  test_server_init(&outsider_state);
  pm_transport *outsider = open_fabric(&outsider_state, wrong_key, 1 * MiB);
  pm_page_request req = make_request("s3://bucket/secret", 0, 64 * KiB);
  uint8_t *buf = malloc(64 * KiB);
  ssize_t n = outsider->methods->get_page(outsider, p.server_addr, &req, buf,
                                          64 * KiB,
                                          pm__now_ns() + 500 * MS_NS);
  cr_assert_lt(n, 0);
  cr_assert_eq(atomic_load(&p.server_state.gets), 0,
               "serve_get was called for an outsider");
  uint64_t deadline = pm__now_ns() + 2 * SEC_NS;
  while (stats_of(p.server).auth_failures == 0 && pm__now_ns() < deadline)
    sleep_ms(2);
  cr_assert_geq(stats_of(p.server).auth_failures, 1);
  /* Nor can it push one. */
  int rc = outsider->methods->put_page(outsider, p.server_addr, &req, buf,
                                       64 * KiB, pm__now_ns() + 500 * MS_NS);
  cr_assert_lt(rc, 0);
  cr_assert_eq(atomic_load(&p.server_state.puts), 0);
  /* The rightful client is unaffected. */
  get_exact(p.client, p.server_addr, "s3://bucket/secret", 0, 64 * KiB);
  close_fabric(outsider);
  test_server_fini(&outsider_state);
  free(buf);
  pair_close(&p);
}

Test(fabric, put_delivers_the_page) {
  pair p;
  pair_open(&p, 1 * MiB);
  const size_t size = 1 * MiB - 100;
  uint8_t *data = malloc(size);
  fill_page("s3://bucket/pushed", 3, data, size);
  pm_page_request req = make_request("s3://bucket/pushed", 3, 1 * MiB);
  int rc = p.client->methods->put_page(p.client, p.server_addr, &req, data,
                                       size, pm__now_ns() + 5 * SEC_NS);
  cr_assert_eq(rc, 0, "put: %s: %s", pm_err_name(rc), pm__errmsg());
  cr_assert_eq(atomic_load(&p.server_state.puts), 1);
  cr_assert_eq(p.server_state.put_length, size);
  cr_assert_eq(p.server_state.put_index, 3);
  cr_assert(memcmp(p.server_state.put_data, data, size) == 0);
  cr_assert_eq(atomic_load(&p.client_state.gets), 0,
               "the pull was served from the core, not the staged page");
  cr_assert_eq(stats_of(p.server).puts_served, 1);
  /* The receiver's refusal comes back with its detail. */
  req = make_request("test://readonly", 0, 1 * MiB);
  rc = p.client->methods->put_page(p.client, p.server_addr, &req, data, size,
                                   pm__now_ns() + 5 * SEC_NS);
  cr_assert_eq(rc, PM_EACCES, "got %s", pm_err_name(rc));
  cr_assert(strstr(pm__errmsg(), "read-only"), "detail: %s", pm__errmsg());
  free(data);
  pair_close(&p);
}

/* Two peers pushing pages to each other at once, more pushes than either
 * has workers (an owner re-creating replicas on a peer that does the same
 * to it): a worker taking a PUT pulls the page back from the pusher, and
 * the pusher writes it from staging at once, not from a worker that may
 * itself be waiting on a pull. */
typedef struct pusher {
  pm_transport *from;
  const char *to;
  int id, failures;
  char first_failure[200];
} pusher;

static void *push_many(void *arg) {
  pusher *p = arg;
  static uint8_t data[64 * KiB];
  for (int i = 0; i < 10; i++) {
    pm_page_request req = make_request("s3://bucket/crossed",
                                       (uint64_t)p->id * 100 + (uint64_t)i,
                                       1 * MiB);
    int rc = p->from->methods->put_page(p->from, p->to, &req, data,
                                        sizeof data,
                                        pm__now_ns() + 3 * SEC_NS);
    if (rc && p->failures++ == 0)
      snprintf(p->first_failure, sizeof p->first_failure, "%s: %s",
               pm_err_name(rc), pm__errmsg());
  }
  return NULL;
}

Test(fabric, peers_pushing_to_each_other_do_not_wait_for_each_other) {
  pair p;
  pair_open(&p, 1 * MiB);
  char client_addr[PM_ADDR_MAX];
  address_of(p.client, client_addr);
  enum { PER_SIDE = 3 }; /* more than the 2 workers of each side */
  pusher pushers[2 * PER_SIDE];
  pthread_t threads[2 * PER_SIDE];
  for (int i = 0; i < 2 * PER_SIDE; i++) {
    pushers[i] = (pusher){i % 2 ? p.client : p.server,
                          i % 2 ? p.server_addr : client_addr, i, 0, ""};
    pthread_create(&threads[i], NULL, push_many, &pushers[i]);
  }
  for (int i = 0; i < 2 * PER_SIDE; i++) {
    pthread_join(threads[i], NULL);
    cr_assert_eq(pushers[i].failures, 0, "pusher %d failed %d pushes: %s", i,
                 pushers[i].failures, pushers[i].first_failure);
  }
  cr_assert_eq(atomic_load(&p.server_state.puts), 10 * PER_SIDE);
  cr_assert_eq(atomic_load(&p.client_state.puts), 10 * PER_SIDE);
  pair_close(&p);
}

/* A peer that has met its most peers forgets the one unused longest to
 * meet a new one, once that one has been unused for a while (restarted
 * peers come back with new addresses); before, the new one was refused. */
Test(fabric, the_peer_unused_longest_makes_room_for_a_new_one) {
  pair p;
  pair_open(&p, 1 * MiB);
  test_server third_state;
  test_server_init(&third_state);
  pm_transport *third = open_fabric(&third_state, test_key, 1 * MiB);
  char third_addr[PM_ADDR_MAX];
  address_of(third, third_addr);
  pm_fabric *client = (pm_fabric *)p.client;
  client->peers_max = 1;
  get_exact(p.client, p.server_addr, "s3://bucket/a", 0, 64 * KiB);
  pm_page_request req = make_request("s3://bucket/b", 0, 64 * KiB);
  uint8_t *buf = malloc(64 * KiB);
  ssize_t n = p.client->methods->get_page(p.client, third_addr, &req, buf,
                                          64 * KiB, pm__now_ns() + SEC_NS);
  cr_assert_eq(n, PM_EBUSY, "%s: %s", pm_err_name((int)n), pm__errmsg());
  client->peer_idle_ns = 0; /* every peer counts as unused for long */
  get_exact(p.client, third_addr, "s3://bucket/b", 0, 64 * KiB);
  get_exact(p.client, p.server_addr, "s3://bucket/c", 1, 64 * KiB);
  get_exact(p.client, third_addr, "s3://bucket/d", 2, 64 * KiB);
  cr_assert_eq(client->peer_count, 1);
  free(buf);
  close_fabric(third);
  test_server_fini(&third_state);
  pair_close(&p);
}
