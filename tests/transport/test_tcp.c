/* Tests for the tcp transport (transport/tcp*.c) through the transport
 * wrappers: several instances in one process on 127.0.0.1, real
 * pm_page_server callbacks (tcp_fixture.h). Round trips of small and large
 * pages, PUT, server errors with their detail, connection reuse, many
 * concurrent requests, deadlines, a server that goes away mid-request, and
 * closing a transport with requests in flight. Authentication, the clear
 * mode and hostile clients are in test_tcp_handshake.c. */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "tcp_fixture.h"
#include "transport/tcp_int.h"

TestSuite(tcp, .timeout = 60);

Test(tcp, get_pages_byte_exact) {
  fixture_peer server, client;
  fixture_open(&server);
  fixture_open(&client);
  fixture_get_check(client.transport, server.addr, "s3://b/small", 0, 64 << 10);
  fixture_get_check(client.transport, server.addr, "s3://b/mid", 5, 1 << 20);
  fixture_get_check(client.transport, server.addr, "s3://b/big", 1, 16 << 20);
  /* A short last page. */
  pm_page_request req = fixture_request("s3://b/tail", 2, 1 << 20,
                                        (2u << 20) + 1000);
  uint8_t *dst = malloc(1 << 20), want[1000];
  fixture_fill("s3://b/tail", 2, want, sizeof want);
  cr_assert_eq(pm__transport_get_page(client.transport, server.addr, &req,
                                      dst, 1 << 20, pm__now_ns() + FIX_SECOND),
               1000);
  cr_assert_eq(memcmp(dst, want, 1000), 0);
  free(dst);

  pm_transport_stats cs, ss;
  pm__transport_stats(client.transport, &cs);
  /* The server counts after its last byte left: wait for it. */
  uint64_t end = pm__now_ns() + FIX_SECOND;
  do
    pm__transport_stats(server.transport, &ss);
  while (ss.gets_served < 4 && pm__now_ns() < end);
  cr_assert_eq(cs.gets_sent, 4);
  cr_assert_eq(ss.gets_served, 4);
  cr_assert_eq(cs.bytes_received, (64u << 10) + (1u << 20) + (16u << 20) + 1000);
  cr_assert_eq(ss.bytes_sent, cs.bytes_received);
  pm_tcp_counters counters;
  pm__tcp_counters(client.transport, &counters);
  cr_assert_eq(counters.sealed_page_bytes, cs.bytes_received);
  cr_assert_eq(counters.clear_page_bytes, 0);
  fixture_close(&client);
  fixture_close(&server);
}

/* Pages served by reference (serve_file) arrive byte-exact, sealed and in
 * the clear, across chunk boundaries; other uris still go to serve_get;
 * a stored checksum that does not match the bytes fails the request. */
static void served_by_reference(int insecure) {
  fixture_peer server, client;
  fixture_options o = {.insecure_data = insecure, .serve_file = true};
  cr_assert_eq(fixture_open_with(&server, &o), 0, "%s", pm__errmsg());
  cr_assert_eq(fixture_open_with(&client, &o), 0, "%s", pm__errmsg());
  fixture_get_check(client.transport, server.addr, "file:small", 0, 4096);
  fixture_get_check(client.transport, server.addr, "file:mid", 3, 1 << 20);
  fixture_get_check(client.transport, server.addr, "file:odd", 1,
                    (300u << 10) + 5);
  fixture_get_check(client.transport, server.addr, "s3://b/copy", 0, 65536);
  cr_assert_eq(atomic_load(&server.server.files), 3);
  cr_assert_eq(atomic_load(&server.server.gets), 1);
  pm_page_request req = fixture_request("badsum:x", 0, 65536, 65536);
  uint8_t *dst = malloc(65536);
  cr_assert_eq(pm__transport_get_page(client.transport, server.addr, &req,
                                      dst, 65536,
                                      pm__now_ns() + 5 * FIX_SECOND),
               PM_ECORRUPT);
  /* The connection stays usable after a checksum failure. */
  fixture_get_check(client.transport, server.addr, "file:after", 0, 65536);
  pm_tcp_counters counters;
  pm__tcp_counters(client.transport, &counters);
  cr_assert_eq(insecure ? counters.sealed_page_bytes
                        : counters.clear_page_bytes, 0);
  free(dst);
  fixture_close(&client);
  fixture_close(&server);
}

Test(tcp, serve_file_sealed) {
  served_by_reference(0);
}

Test(tcp, serve_file_in_the_clear) {
  served_by_reference(1);
}

Test(tcp, put_page) {
  fixture_peer server, client;
  fixture_open(&server);
  fixture_open(&client);
  size_t size = 3u << 20;
  uint8_t *page = malloc(size);
  fixture_fill("s3://b/pushed", 0, page, size);
  pm_page_request req = fixture_request("s3://b/pushed", 0, 4 << 20, size);
  cr_assert_eq(pm__transport_put_page(client.transport, server.addr, &req,
                                      page, size,
                                      pm__now_ns() + 5 * FIX_SECOND),
               0, "%s", pm__errmsg());
  cr_assert_eq(server.server.puts, 1);
  cr_assert_eq(server.server.pushed_length, size);
  cr_assert_eq(memcmp(server.server.pushed, page, size), 0);
  pm_transport_stats ss;
  pm__transport_stats(server.transport, &ss);
  cr_assert_eq(ss.puts_served, 1);
  /* Larger than the page size it claims: refused before sending. */
  req.page_size = 1 << 20;
  cr_assert_eq(pm__transport_put_page(client.transport, server.addr, &req,
                                      page, size, pm__now_ns() + FIX_SECOND),
               PM_ETOOBIG);
  free(page);
  fixture_close(&client);
  fixture_close(&server);
}

Test(tcp, server_error_propagated_with_detail) {
  fixture_peer server, client;
  fixture_open(&server);
  fixture_open(&client);
  pm_page_request req = fixture_request("missing://obj", 0, 65536, 65536);
  uint8_t dst[65536];
  ssize_t n = pm__transport_get_page(client.transport, server.addr, &req, dst,
                                     sizeof dst, pm__now_ns() + FIX_SECOND);
  cr_assert_eq(n, PM_ENOENT, "%zd", n);
  cr_assert(strstr(pm__errmsg(), "no such object (fixture)"), "%s",
            pm__errmsg());
  cr_assert(strstr(pm__errmsg(), server.addr), "%s", pm__errmsg());
  /* The connection survives a failed request. */
  fixture_get_check(client.transport, server.addr, "s3://b/after", 0, 65536);
  pm_tcp_counters counters;
  pm__tcp_counters(client.transport, &counters);
  cr_assert_eq(counters.connects, 1);
  fixture_close(&client);
  fixture_close(&server);
}

/* A server that answers its origin is unreachable, or timed out, has
 * answered: the request is not sent again, and the connection is kept. */
Test(tcp, errors_the_server_answers_keep_the_connection) {
  fixture_peer server, client;
  fixture_open(&server);
  fixture_open(&client);
  fixture_get_check(client.transport, server.addr, "s3://b/first", 0, 4096);
  static const struct {
    const char *uri;
    int code;
  } cases[] = {{"unreachable://obj", PM_EUNREACHABLE},
               {"slow://obj", PM_ETIMEDOUT}};
  for (size_t i = 0; i < PM_ARRAY_SIZE(cases); i++) {
    int gets = atomic_load(&server.server.gets);
    pm_page_request req = fixture_request(cases[i].uri, 0, 4096, 4096);
    uint8_t dst[4096];
    ssize_t n = pm__transport_get_page(client.transport, server.addr, &req,
                                       dst, sizeof dst,
                                       pm__now_ns() + FIX_SECOND);
    cr_assert_eq(n, cases[i].code, "%zd %s", n, pm__errmsg());
    cr_assert(strstr(pm__errmsg(), "(fixture)"), "%s", pm__errmsg());
    cr_assert_eq(atomic_load(&server.server.gets), gets + 1);
  }
  fixture_get_check(client.transport, server.addr, "s3://b/after", 0, 4096);
  pm_tcp_counters counters;
  pm__tcp_counters(client.transport, &counters);
  cr_assert_eq(counters.connects, 1);
  cr_assert_eq(counters.retries, 0);
  fixture_close(&client);
  fixture_close(&server);
}

Test(tcp, buffer_too_small) {
  fixture_peer server, client;
  fixture_open(&server);
  fixture_open(&client);
  pm_page_request req = fixture_request("s3://b/k", 0, 1 << 20, 1 << 20);
  uint8_t *dst = malloc(1 << 20);
  cr_assert_eq(pm__transport_get_page(client.transport, server.addr, &req,
                                      dst, 4096, pm__now_ns() + FIX_SECOND),
               PM_ETOOBIG, "%s", pm__errmsg());
  fixture_get_check(client.transport, server.addr, "s3://b/k", 0, 1 << 20);
  free(dst);
  fixture_close(&client);
  fixture_close(&server);
}

Test(tcp, connection_reuse) {
  fixture_peer server, client;
  fixture_open(&server);
  fixture_open(&client);
  for (int i = 0; i < 50; i++)
    fixture_get_check(client.transport, server.addr, "s3://b/reuse",
                      (uint64_t)i, 65536);
  pm_tcp_counters cc, sc;
  pm__tcp_counters(client.transport, &cc);
  pm__tcp_counters(server.transport, &sc);
  cr_assert_eq(cc.connects, 1, "connects: %llu",
               (unsigned long long)cc.connects);
  cr_assert_eq(sc.accepts, 1);
  fixture_close(&client);
  fixture_close(&server);
}

/* A pooled connection to a server that restarted since: used again within
 * PM_TCP_IDLE_TRUST_NS it is not checked first, so the request itself
 * finds it dead and is retried once on a fresh connection (checked, it is
 * dropped before the request). Either way the request succeeds. */
Test(tcp, pooled_connection_to_a_restarted_server) {
  fixture_peer server, client;
  fixture_open(&server);
  fixture_open(&client);
  fixture_get_check(client.transport, server.addr, "s3://b/before", 0, 65536);
  char addr[PM_ADDR_MAX];
  snprintf(addr, sizeof addr, "%s", server.addr);
  fixture_close(&server);
  fixture_options o = {.listen = addr};
  cr_assert_eq(fixture_open_with(&server, &o), 0, "%s", pm__errmsg());
  fixture_get_check(client.transport, server.addr, "s3://b/after", 0, 65536);
  pm_tcp_counters c;
  pm__tcp_counters(client.transport, &c);
  cr_assert_eq(c.connects, 2, "connects: %llu",
               (unsigned long long)c.connects);
  cr_assert_leq(c.retries, 1);
  cr_log_info("the dead connection was %s", c.retries ? "found by the request"
                                                      : "checked first");
  fixture_close(&client);
  fixture_close(&server);
}

/* ---- concurrency: 4 instances, every one asks every other ------------- */

#define MESH 4
#define MESH_THREADS 6
#define MESH_REQUESTS 40

typedef struct mesh {
  fixture_peer peers[MESH];
  atomic_int ok, failed;
} mesh;

typedef struct mesh_thread {
  mesh *m;
  int index;
} mesh_thread;

static void *mesh_reader(void *arg) {
  mesh_thread *t = arg;
  uint8_t *dst = malloc(1 << 20), *want = malloc(1 << 20);
  for (int i = 0; i < MESH_REQUESTS; i++) {
    fixture_peer *from = &t->m->peers[t->index % MESH];
    fixture_peer *to = &t->m->peers[(t->index + 1 + i) % MESH];
    if (from == to)
      to = &t->m->peers[(t->index + 2) % MESH];
    uint32_t size = (i % 3 == 0) ? (1u << 20) : (64u << 10);
    pm_page_request req = fixture_request("s3://mesh/obj", (uint64_t)i, size,
                                          (uint64_t)(i + 1) * size);
    ssize_t n = pm__transport_get_page(from->transport, to->addr, &req, dst,
                                       1 << 20,
                                       pm__now_ns() + 20 * FIX_SECOND);
    fixture_fill("s3://mesh/obj", (uint64_t)i, want, size);
    if (n == (ssize_t)size && memcmp(dst, want, size) == 0)
      atomic_fetch_add(&t->m->ok, 1);
    else
      atomic_fetch_add(&t->m->failed, 1);
  }
  free(dst);
  free(want);
  return NULL;
}

Test(tcp, many_concurrent_gets) {
  static mesh m;
  for (int i = 0; i < MESH; i++)
    fixture_open(&m.peers[i]);
  pthread_t threads[MESH_THREADS];
  mesh_thread args[MESH_THREADS];
  for (int i = 0; i < MESH_THREADS; i++) {
    args[i] = (mesh_thread){.m = &m, .index = i};
    pthread_create(&threads[i], NULL, mesh_reader, &args[i]);
  }
  for (int i = 0; i < MESH_THREADS; i++)
    pthread_join(threads[i], NULL);
  cr_assert_eq(m.failed, 0, "%d failed", m.failed);
  cr_assert_eq(m.ok, MESH_THREADS * MESH_REQUESTS);
  uint64_t connects = 0;
  for (int i = 0; i < MESH; i++) {
    pm_tcp_counters c;
    pm__tcp_counters(m.peers[i].transport, &c);
    connects += c.connects;
  }
  /* Pooled: far fewer connections than requests. */
  cr_assert_lt(connects, MESH_THREADS * MESH_REQUESTS / 4, "%llu",
               (unsigned long long)connects);
  for (int i = 0; i < MESH; i++)
    fixture_close(&m.peers[i]);
}

/* Readers that keep their connections busy are served by workers that
 * wait on those connections (linger in tcp_server.c), with every byte
 * right, and a reader that asks now and then on a connection of its own
 * is still answered promptly while every worker lingers: as many busy
 * readers as workers, so no worker is idle, and each lingering one would
 * keep serving its own reader if it did not watch the others' epoll set
 * too. */
typedef struct busy_reader {
  fixture_peer *server, *client;
  atomic_bool *stop; /* NULL: `requests` requests */
  int requests, failed;
  atomic_int done;
  uint64_t slowest_ns;
} busy_reader;

static void *busy_reader_main(void *arg) {
  busy_reader *r = arg;
  uint8_t *dst = malloc(64 << 10), *want = malloc(64 << 10);
  for (int i = 0; r->stop ? !atomic_load(r->stop) : i < r->requests; i++) {
    uint64_t index = (uint64_t)i % 1024; /* pages of the 64 MiB object */
    pm_page_request req =
        fixture_request("s3://busy/obj", index, 64 << 10, 64u << 20);
    uint64_t start = pm__now_ns();
    ssize_t n = pm__transport_get_page(r->client->transport, r->server->addr,
                                       &req, dst, 64 << 10,
                                       pm__now_ns() + 10 * FIX_SECOND);
    uint64_t took = pm__now_ns() - start;
    if (took > r->slowest_ns)
      r->slowest_ns = took;
    fixture_fill("s3://busy/obj", index, want, 64 << 10);
    if (n != 64 << 10 || memcmp(dst, want, 64 << 10) != 0)
      r->failed++;
    r->done++;
  }
  free(dst);
  free(want);
  return NULL;
}

Test(tcp, busy_connections_keep_their_worker) {
  enum { BUSY = 3 };
  fixture_peer server, clients[BUSY], occasional;
  fixture_options so = {.threads = BUSY};
  cr_assert_eq(fixture_open_with(&server, &so), 0);
  for (int i = 0; i < BUSY; i++)
    fixture_open(&clients[i]);
  fixture_open(&occasional);
  atomic_bool stop = false;
  busy_reader readers[BUSY];
  pthread_t threads[BUSY];
  for (int i = 0; i < BUSY; i++) {
    readers[i] = (busy_reader){.server = &server, .client = &clients[i],
                               .stop = &stop};
    pthread_create(&threads[i], NULL, busy_reader_main, &readers[i]);
  }
  /* Meanwhile a fourth requester asks every 20 ms, once they all run. */
  for (int i = 0; i < BUSY; i++)
    while (atomic_load(&readers[i].done) < 20)
      usleep(1000);
  busy_reader sparse = {.server = &server, .client = &occasional,
                        .requests = 1};
  for (int i = 0; i < 10; i++) {
    busy_reader_main(&sparse);
    usleep(20000);
  }
  atomic_store(&stop, true);
  int busy_done = 0;
  for (int i = 0; i < BUSY; i++) {
    pthread_join(threads[i], NULL);
    cr_assert_eq(readers[i].failed, 0);
    busy_done += readers[i].done;
  }
  cr_assert_eq(sparse.failed, 0);
  cr_assert_eq(sparse.done, 10);
  cr_assert_lt(sparse.slowest_ns, 250 * 1000000ull, "%llu ns",
               (unsigned long long)sparse.slowest_ns);
  pm_tcp_counters c;
  pm__tcp_counters(server.transport, &c);
  cr_log_info("%llu of %d requests served by a lingering worker; the "
              "occasional reader's slowest took %llu us",
              (unsigned long long)c.lingered, busy_done + sparse.done,
              (unsigned long long)sparse.slowest_ns / 1000);
  cr_assert_gt(c.lingered, 0, "no worker waited on a busy connection");
  for (int i = 0; i < BUSY; i++)
    fixture_close(&clients[i]);
  fixture_close(&occasional);
  fixture_close(&server);
}

/* ---- congestion control -------------------------------------------------- */

/* The port of an "IP:PORT" address. */
static unsigned port_of(const char *addr) {
  return (unsigned)atoi(strrchr(addr, ':') + 1);
}

/* The congestion control of every TCP socket of this process with `port`
 * at either end (both ends of a connection, and the listener): how many,
 * each checked to be `want`. */
static int sockets_with_congestion(unsigned port, const char *want) {
  DIR *dir = opendir("/proc/self/fd");
  cr_assert_not_null(dir);
  int count = 0;
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) {
    int fd = atoi(e->d_name);
    struct sockaddr_in ends[2];
    socklen_t len[2] = {sizeof ends[0], sizeof ends[1]};
    if (e->d_name[0] == '.' || fd == dirfd(dir) ||
        getsockname(fd, (struct sockaddr *)&ends[0], &len[0]) != 0 ||
        ends[0].sin_family != AF_INET)
      continue;
    if (getpeername(fd, (struct sockaddr *)&ends[1], &len[1]) != 0)
      ends[1].sin_port = 0; /* the listener */
    if (ntohs(ends[0].sin_port) != port && ntohs(ends[1].sin_port) != port)
      continue;
    char name[PM_TCP_CC_MAX + 1] = "";
    socklen_t name_len = PM_TCP_CC_MAX;
    cr_assert_eq(getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, &name_len),
                 0);
    cr_assert_str_eq(name, want, "fd %d (port %u): %s, not %s", fd, port,
                     name, want);
    count++;
  }
  closedir(dir);
  return count;
}

/* The first line of a file, without its newline ("" if unreadable). */
static void first_line(const char *path, char *out, int size) {
  out[0] = '\0';
  FILE *fp = fopen(path, "r");
  if (fp) {
    if (!fgets(out, size, fp))
      out[0] = '\0';
    fclose(fp);
  }
  out[strcspn(out, "\n")] = '\0';
}

/* Whether the kernel would let this process use `name`. */
static bool kernel_allows(const char *name) {
  char line[512];
  first_line("/proc/sys/net/ipv4/tcp_allowed_congestion_control", line,
             sizeof line);
  for (char *w = strtok(line, " \n"); w; w = strtok(NULL, " \n"))
    if (strcmp(w, name) == 0)
      return true;
  return false;
}

/* With PAGEMESH_TCP_CONGESTION=`env` (NULL: unset), a GET between two
 * transports; every socket of the connection, and the server's listener,
 * runs `want`. */
static void congestion_case(const char *env, const char *want) {
  if (env)
    setenv("PAGEMESH_TCP_CONGESTION", env, 1);
  else
    unsetenv("PAGEMESH_TCP_CONGESTION");
  fixture_peer server, client;
  fixture_open(&server);
  fixture_open(&client);
  unsetenv("PAGEMESH_TCP_CONGESTION");
  fixture_get_check(client.transport, server.addr, "s3://b/cc", 0, 1 << 20);
  /* The listener, the client's socket and the one the server accepted. */
  cr_assert_eq(sockets_with_congestion(port_of(server.addr), want), 3,
               "PAGEMESH_TCP_CONGESTION=%s", env ? env : "(unset)");
  fixture_close(&client);
  fixture_close(&server);
}

/* Both ends' sockets start with cubic unless PAGEMESH_TCP_CONGESTION names
 * another ("system": the kernel's default); a name the kernel refuses
 * fails the open. */
Test(tcp, congestion_control_of_both_ends) {
  if (!kernel_allows("cubic") || !kernel_allows("reno"))
    cr_skip_test("this kernel does not allow cubic and reno");
  char system_cc[PM_TCP_CC_MAX + 8];
  first_line("/proc/sys/net/ipv4/tcp_congestion_control", system_cc,
             sizeof system_cc);
  cr_assert(system_cc[0], "no default congestion control in /proc");
  congestion_case(NULL, "cubic");
  congestion_case("", "cubic");
  congestion_case("reno", "reno");
  congestion_case("system", system_cc);

  /* Unknown to the kernel, and too long to be a name. */
  const char *bad_names[] = {"no-such-cc", "no-such-algorithm-at-all"};
  for (size_t i = 0; i < PM_ARRAY_SIZE(bad_names); i++) {
    setenv("PAGEMESH_TCP_CONGESTION", bad_names[i], 1);
    fixture_peer bad;
    fixture_options o = {0};
    int rc = fixture_open_with(&bad, &o);
    unsetenv("PAGEMESH_TCP_CONGESTION");
    cr_assert_eq(rc, PM_EINVAL);
    char want[64];
    snprintf(want, sizeof want, "PAGEMESH_TCP_CONGESTION=%s", bad_names[i]);
    cr_assert(strstr(pm__errmsg(), want), "%s", pm__errmsg());
  }
}

/* ---- deadlines and peers that go away ----------------------------------- */

Test(tcp, deadline_when_server_stalls) {
  fixture_peer server, client;
  fixture_open(&server);
  fixture_open(&client);
  pm_page_request req = fixture_request("stall://obj", 0, 65536, 65536);
  uint8_t dst[65536];
  uint64_t start = pm__now_ns();
  uint64_t deadline = start + 200 * 1000000ull;
  ssize_t n = pm__transport_get_page(client.transport, server.addr, &req, dst,
                                     sizeof dst, deadline);
  uint64_t late_ns = pm__now_ns() - deadline;
  cr_assert_eq(n, PM_ETIMEDOUT, "%zd %s", n, pm__errmsg());
  cr_assert_lt(late_ns, 500 * 1000000ull, "returned %llu ns late",
               (unsigned long long)late_ns);
  pm_transport_stats cs;
  pm__transport_stats(client.transport, &cs);
  cr_assert_eq(cs.timeouts, 1);
  /* The stalled connection is not reused; the next request works. */
  atomic_store(&server.server.release, 1);
  fixture_get_check(client.transport, server.addr, "s3://b/next", 0, 65536);
  pm_tcp_counters c;
  pm__tcp_counters(client.transport, &c);
  cr_assert_eq(c.connects, 2);
  fixture_close(&client);
  fixture_close(&server);
}

typedef struct pending_get {
  pm_transport *client;
  const char *addr;
  const char *uri;
  ssize_t result;
  uint64_t elapsed_ns;
  char detail[PM_ERRMSG_MAX];
} pending_get;

static void *get_in_background(void *arg) {
  pending_get *g = arg;
  pm_page_request req = fixture_request(g->uri, 0, 16 << 20, 16 << 20);
  uint8_t *dst = malloc(16 << 20);
  uint64_t start = pm__now_ns();
  g->result = pm__transport_get_page(g->client, g->addr, &req, dst, 16 << 20,
                                     start + 30 * FIX_SECOND);
  g->elapsed_ns = pm__now_ns() - start;
  snprintf(g->detail, sizeof g->detail, "%s", pm__errmsg());
  free(dst);
  return NULL;
}

static void wait_stall_entered(fixture_server *s) {
  uint64_t end = pm__now_ns() + 5 * FIX_SECOND;
  while (atomic_load(&s->stalls_entered) == 0 && pm__now_ns() < end)
    usleep(1000);
  cr_assert_gt(atomic_load(&s->stalls_entered), 0);
}

Test(tcp, server_closed_mid_request) {
  fixture_peer server, client;
  fixture_open(&server);
  fixture_open(&client);
  /* Warm the pool so that the request runs on a reused connection. */
  fixture_get_check(client.transport, server.addr, "s3://b/warm", 0, 65536);
  char addr[PM_ADDR_MAX];
  snprintf(addr, sizeof addr, "%s", server.addr);
  pending_get g = {.client = client.transport, .addr = addr,
                   .uri = "stall://big"};
  pthread_t thread;
  pthread_create(&thread, NULL, get_in_background, &g);
  wait_stall_entered(&server.server);
  fixture_close(&server); /* releases the stall, then cuts the connection */
  pthread_join(thread, NULL);
  cr_assert_lt(g.result, 0, "got %zd bytes from a closed server", g.result);
  cr_assert(g.result == PM_EUNREACHABLE || g.result == PM_EPROTO,
            "%s: %s", pm_err_name((int)g.result), g.detail);
  cr_assert_lt(g.elapsed_ns, 10 * FIX_SECOND);
  fixture_close(&client);
}

/* Every worker of a server waits in the core (here: two stalled requests,
 * two workers; in a mesh, owners asking each other or the origin). A
 * request that needs no waiting is still answered: the server starts one
 * more worker when all are stuck. Before, it waited for the stalls (5 s),
 * as two owners waited for each other's workers until their deadlines. */
Test(tcp, a_request_is_served_while_every_worker_is_stuck) {
  fixture_peer server, client;
  fixture_open(&server); /* two workers */
  fixture_open(&client);
  pending_get stalled[2] = {
      {.client = client.transport, .addr = server.addr, .uri = "stall://a"},
      {.client = client.transport, .addr = server.addr, .uri = "stall://b"}};
  pthread_t threads[2];
  for (int i = 0; i < 2; i++)
    pthread_create(&threads[i], NULL, get_in_background, &stalled[i]);
  uint64_t end = pm__now_ns() + 5 * FIX_SECOND;
  while (atomic_load(&server.server.stalls_entered) < 2 && pm__now_ns() < end)
    usleep(1000);
  cr_assert_eq(atomic_load(&server.server.stalls_entered), 2);
  uint64_t start = pm__now_ns();
  fixture_get_check(client.transport, server.addr, "s3://b/quick", 0, 65536);
  uint64_t took = pm__now_ns() - start;
  cr_log_info("answered in %.0f ms while both workers stalled",
              (double)took / 1e6);
  cr_assert_lt(took, 2 * FIX_SECOND, "%.0f ms", (double)took / 1e6);
  atomic_store(&server.server.release, 1);
  for (int i = 0; i < 2; i++) {
    pthread_join(threads[i], NULL);
    cr_assert_eq(stalled[i].result, 16 << 20, "%s", stalled[i].detail);
  }
  fixture_close(&client);
  fixture_close(&server);
}

Test(tcp, client_closed_with_request_in_flight) {
  fixture_peer server, client;
  fixture_open(&server);
  fixture_open(&client);
  pending_get g = {.client = client.transport, .addr = server.addr,
                   .uri = "stall://obj"};
  pthread_t thread;
  pthread_create(&thread, NULL, get_in_background, &g);
  wait_stall_entered(&server.server);
  pm__transport_close(client.transport); /* waits for the request to fail */
  pthread_join(thread, NULL);
  cr_assert_eq(g.result, PM_ESHUTDOWN, "%s: %s", pm_err_name((int)g.result),
               g.detail);
  cr_assert_lt(g.elapsed_ns, 4 * FIX_SECOND);
  fixture_close(&server);
}

Test(tcp, unreachable_peer) {
  fixture_peer client;
  fixture_open(&client);
  /* A port nobody listens on: take one from a closed transport. */
  fixture_peer gone;
  fixture_open(&gone);
  char addr[PM_ADDR_MAX];
  snprintf(addr, sizeof addr, "%s", gone.addr);
  fixture_close(&gone);
  pm_page_request req = fixture_request("s3://b/k", 0, 65536, 65536);
  uint8_t dst[65536];
  cr_assert_eq(pm__transport_get_page(client.transport, addr, &req, dst,
                                      sizeof dst, pm__now_ns() + FIX_SECOND),
               PM_EUNREACHABLE, "%s", pm__errmsg());
  cr_assert(strstr(pm__errmsg(), addr), "%s", pm__errmsg());
  cr_assert_eq(pm__transport_get_page(client.transport, "not-an-address",
                                      &req, dst, sizeof dst,
                                      pm__now_ns() + FIX_SECOND),
               PM_EINVAL);
  fixture_close(&client);
}

Test(tcp, open_errors_and_wrappers) {
  pm_transport *t = NULL;
  pm_transport_config config = {.size = sizeof config,
                                .listen = "127.0.0.1:0",
                                .cluster_key = fixture_key,
                                .cluster_id = "c",
                                .max_page_size = 65536,
                                .server = {.serve_get = fixture_serve_get}};
  cr_assert_eq(pm__transport_open("carrier-pigeon", &config, &t), PM_ENOTSUP);
  config.listen = "256.1.1.1:0";
  cr_assert_eq(pm__transport_open("tcp", &config, &t), PM_EINVAL);
  config.listen = "192.0.2.1:1"; /* not an address of this machine */
  cr_assert_eq(pm__transport_open("tcp", &config, &t), PM_EUNREACHABLE);
  config.listen = "127.0.0.1:0";
  config.server.serve_get = NULL;
  cr_assert_eq(pm__transport_open("tcp", &config, &t), PM_EINVAL);
  cr_assert_null(t);
  fixture_peer peer;
  fixture_open(&peer);
  cr_assert_str_eq(pm__transport_name(peer.transport), "tcp");
  cr_assert(strncmp(peer.addr, "127.0.0.1:", 10) == 0, "%s", peer.addr);
  char small[4];
  cr_assert_eq(pm__transport_address(peer.transport, small, sizeof small),
               PM_ETOOBIG);
  pm_page_request req = fixture_request("s3://b/k", 0, 65536, 65536);
  uint8_t dst[16];
  cr_assert_eq(pm__transport_get_page(peer.transport, peer.addr, &req, dst,
                                      sizeof dst, pm__now_ns() - 1),
               PM_ETIMEDOUT);
  cr_assert_eq(pm__transport_get_page(peer.transport, peer.addr, NULL, dst,
                                      sizeof dst, pm__now_ns() + FIX_SECOND),
               PM_EINVAL);
  pm__transport_close(NULL);
  fixture_close(&peer);
}

/* An owner that asks another peer while it serves (the core's owner path
 * asks a replica for a cached copy on the worker's own thread): the
 * answer it gets is decoded into that thread's scratch, and must not
 * overwrite the strings of the request being served. */
static pm_transport *nested_via;
static char nested_target[PM_ADDR_MAX];
static char nested_seen[256];

static ssize_t nested_serve_get(void *arg, const pm_page_request *req,
                                void *dst, size_t dst_len) {
  (void)arg;
  /* "missing..." answers an error with a detail longer than the uri */
  char asked[300];
  snprintf(asked, sizeof asked, "missing-%0250d", 0);
  pm_page_request other = *req;
  other.uri = asked;
  other.version = "another-version";
  uint8_t tmp[4096];
  pm__transport_get_page(nested_via, nested_target, &other, tmp, sizeof tmp,
                         pm__now_ns() + FIX_SECOND);
  snprintf(nested_seen, sizeof nested_seen, "%s|%s", req->uri,
           req->version);
  size_t length = fixture_page_length(req);
  if (length > dst_len)
    return PM_ETOOBIG;
  fixture_fill(req->uri, req->page_index, dst, length);
  return (ssize_t)length;
}

Test(tcp, a_request_outlives_a_nested_request_on_its_thread) {
  fixture_peer target, client;
  fixture_open(&target);
  fixture_open(&client);
  pm_transport_config config = {
      .size = sizeof config, .listen = "127.0.0.1:0",
      .cluster_key = fixture_key, .cluster_id = "test-cluster",
      .max_page_size = FIX_MAX_PAGE, .server_threads = 1,
      .server = {.serve_get = nested_serve_get}};
  pm_transport *owner = NULL;
  cr_assert_eq(pm__transport_open("tcp", &config, &owner), 0, "%s",
               pm__errmsg());
  char owner_addr[PM_ADDR_MAX];
  pm__transport_address(owner, owner_addr, sizeof owner_addr);
  nested_via = owner;
  snprintf(nested_target, sizeof nested_target, "%s", target.addr);
  fixture_get_check(client.transport, owner_addr,
                    "s3://bucket/datasets/train/shard-000123.tar", 2, 65536);
  cr_assert_str_eq(nested_seen,
                   "s3://bucket/datasets/train/shard-000123.tar|v1");
  cr_assert_eq(atomic_load(&target.server.gets), 1);
  pm__transport_close(owner);
  fixture_close(&client);
  fixture_close(&target);
}

/* Strangers that connect and say nothing (no key needed) fill the
 * handshakes a server runs at once: the one that waited longest makes
 * room for a new connection, so a peer still gets in. */
Test(tcp, silent_strangers_do_not_keep_peers_out) {
  fixture_peer server, client;
  fixture_open(&server);
  fixture_open(&client);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_port = htons((uint16_t)atoi(strrchr(server.addr, ':') + 1));
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  int silent[PM_TCP_HANDSHAKING_MAX + 8];
  for (size_t i = 0; i < PM_ARRAY_SIZE(silent); i++) {
    silent[i] = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(silent[i], 0);
    cr_assert_eq(connect(silent[i], (struct sockaddr *)&sa, sizeof sa), 0);
  }
  usleep(200 * 1000);
  for (int k = 0; k < 3; k++)
    fixture_get_check(client.transport, server.addr, "s3://b/in", k, 4096);
  for (size_t i = 0; i < PM_ARRAY_SIZE(silent); i++)
    close(silent[i]);
  fixture_close(&client);
  fixture_close(&server);
}
