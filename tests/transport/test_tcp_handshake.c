/* Tests for transport/tcp_handshake.c and the security of the tcp
 * transport end to end: the key exchange on its own (matching and
 * mismatching keys and cluster ids, tampered and malformed hellos), a
 * client with the wrong key gets PM_EAUTH and never reaches serve_get,
 * page bytes are encrypted unless both ends ask for insecure_data (seen by
 * a proxy on the wire), and hostile clients (garbage, huge length
 * prefixes, forged frames, stalled handshakes) neither crash a server nor
 * stop it from serving others. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include "tcp_fixture.h"
#include "transport/tcp_int.h"

TestSuite(tcp_handshake, .timeout = 60);

static const uint8_t other_key[32] = {9, 9, 9};

/* ---- the state machine alone -------------------------------------------- */

typedef struct pair {
  pm_tcp_handshake client, server;
} pair;

static void pair_start_offering(pair *p, const uint8_t *client_key,
                                const char *client_id, bool client_insecure,
                                bool server_insecure, bool client_aegis,
                                bool server_aegis) {
  cr_assert_eq(sodium_init() >= 0, 1);
  cr_assert_eq(pm__tcp_hs_start(&p->client, false, client_key, client_id,
                                client_insecure, client_aegis),
               0);
  cr_assert_eq(pm__tcp_hs_start(&p->server, true, fixture_key, "test-cluster",
                                server_insecure, server_aegis),
               0);
}

/* Both ends offer AEGIS-128X4 (and get it where the CPU runs it). */
static void pair_start(pair *p, const uint8_t *client_key,
                       const char *client_id, bool client_insecure,
                       bool server_insecure) {
  pair_start_offering(p, client_key, client_id, client_insecure,
                      server_insecure, true, true);
}

/* Exchange hellos and the client's proof: the server's verdict. */
static int pair_run(pair *p) {
  cr_assert_eq(pm__tcp_hs_peer_hello(&p->server, p->client.my_hello,
                                     PM_TCP_HELLO_SIZE),
               0);
  cr_assert_eq(pm__tcp_hs_peer_hello(&p->client, p->server.my_hello,
                                     PM_TCP_HELLO_SIZE),
               0);
  uint8_t proof[PM_TCP_PROOF_SIZE];
  pm__tcp_hs_proof(&p->client, proof);
  return pm__tcp_hs_check_proof(&p->server, proof, sizeof proof);
}

static void pair_free(pair *p) {
  pm__tcp_hs_free(&p->client);
  pm__tcp_hs_free(&p->server);
}

/* A pair that has completed the handshake and set up both directions,
 * each end offering AEGIS-128X4 or not. */
static void pair_established(pair *p, bool client_aegis, bool server_aegis) {
  pair_start_offering(p, fixture_key, "test-cluster", false, false,
                      client_aegis, server_aegis);
  cr_assert_eq(pair_run(p), 0, "%s", pm__errmsg());
  uint8_t proof[PM_TCP_PROOF_SIZE];
  pm__tcp_hs_proof(&p->server, proof);
  cr_assert_eq(pm__tcp_hs_check_proof(&p->client, proof, sizeof proof), 0);
  cr_assert_eq(pm__tcp_hs_done(&p->client), 0);
  cr_assert_eq(pm__tcp_hs_done(&p->server), 0);
}

/* Page chunks sealed by one side open on the other, in order only: a
 * flipped bit, a replayed chunk or a skipped one fails. */
static void page_cipher_both_ways(bool client_aegis, bool server_aegis) {
  pair p;
  pair_established(&p, client_aegis, server_aegis);
  bool aegis = client_aegis && server_aegis && pm__aegis_best();
  cr_assert_eq(p.client.aegis, aegis);
  cr_assert_eq(p.server.aegis, aegis);
  cr_assert_eq(p.client.bulk.aegis != NULL, aegis);
  cr_assert_eq(p.server.bulk.aegis != NULL, aegis);
  enum { N = 1000 };
  uint8_t plain[N], a[N], b[N], tag_a[PM_TCP_TAG], tag_b[PM_TCP_TAG];
  pm__random(plain, N);
  cr_assert_eq(pm__tcp_bulk_seal(&p.client.bulk, plain, N, a, tag_a), 0);
  cr_assert_eq(pm__tcp_bulk_seal(&p.client.bulk, plain, N, b, tag_b), 0);
  cr_assert_neq(memcmp(a, b, N), 0, "a nonce was reused");
  uint8_t copy[N];
  memcpy(copy, a, N);
  cr_assert_eq(pm__tcp_bulk_open(&p.server.bulk, copy, N, tag_a), 0);
  cr_assert_eq(memcmp(copy, plain, N), 0);
  /* The first chunk again (a replay) fails where the second is due. */
  memcpy(copy, a, N);
  cr_assert_eq(pm__tcp_bulk_open(&p.server.bulk, copy, N, tag_a),
               PM_ECORRUPT);
  /* The server's direction has its own key: the client opens its chunk. */
  cr_assert_eq(pm__tcp_bulk_seal(&p.server.bulk, plain, N, a, tag_a), 0);
  a[17] ^= 4;
  cr_assert_eq(pm__tcp_bulk_open(&p.client.bulk, a, N, tag_a), PM_ECORRUPT);
  /* A chunk that fails leaves no unauthenticated byte behind. */
  uint8_t zeros[N] = {0};
  cr_assert_eq(memcmp(a, zeros, N), 0, "a failed open left bytes");
  cr_assert_eq(pm__tcp_bulk_seal(&p.server.bulk, plain, N, b, tag_b), 0);
  cr_assert_eq(pm__tcp_bulk_open(&p.client.bulk, b, N, tag_b), 0);
  cr_assert_eq(memcmp(b, plain, N), 0);
  pair_free(&p);
}

Test(tcp_handshake, page_cipher_both_ways_in_order) {
  page_cipher_both_ways(true, true);   /* AEGIS-128X4 where the CPU has it */
  page_cipher_both_ways(true, false);  /* AES-256-GCM */
  page_cipher_both_ways(false, true);
  page_cipher_both_ways(false, false);
}

/* Which cipher a chunk was sealed with matters: AEGIS-128X4 and
 * AES-256-GCM chunks do not open under the other, and the two ends of a
 * pair that disagree on the cipher cannot both think they agree. */
Test(tcp_handshake, aegis_only_if_both_offer) {
  if (!pm__aegis_best())
    cr_skip_test("no AEGIS-128X4 on this CPU");
  pair p;
  pair_start_offering(&p, fixture_key, "test-cluster", false, false, true,
                      false);
  cr_assert_eq(pair_run(&p), 0);
  cr_assert(!p.client.aegis && !p.server.aegis);
  cr_assert(p.client.my_aegis && !p.server.my_aegis);
  pair_free(&p);
  /* A man in the middle who strips the offer from the client's hello (to
   * push the pair to the other cipher) changes the transcript: the
   * server refuses the client's proof. */
  pair_start(&p, fixture_key, "test-cluster", false, false);
  uint8_t hello[PM_TCP_HELLO_SIZE];
  memcpy(hello, p.client.my_hello, sizeof hello);
  cr_assert(hello[5] & 2, "the client did not offer AEGIS-128X4");
  hello[5] &= (uint8_t)~2;
  cr_assert_eq(pm__tcp_hs_peer_hello(&p.server, hello, sizeof hello), 0);
  cr_assert(!p.server.aegis);
  cr_assert_eq(pm__tcp_hs_peer_hello(&p.client, p.server.my_hello,
                                     PM_TCP_HELLO_SIZE),
               0);
  cr_assert(p.client.aegis);
  uint8_t proof[PM_TCP_PROOF_SIZE];
  pm__tcp_hs_proof(&p.client, proof);
  cr_assert_eq(pm__tcp_hs_check_proof(&p.server, proof, sizeof proof),
               PM_EAUTH);
  pair_free(&p);
  /* And a chunk sealed under one cipher does not open under the other,
   * even with the same keys. */
  pm_tcp_bulk aegis, gcm;
  uint8_t send_key[32], recv_key[32];
  pm__random(send_key, sizeof send_key);
  memcpy(recv_key, send_key, sizeof recv_key);
  cr_assert_eq(pm__tcp_bulk_init(&aegis, send_key, recv_key, true), 0);
  cr_assert_eq(pm__tcp_bulk_init(&gcm, send_key, recv_key, false), 0);
  uint8_t plain[300], sealed[300], tag[PM_TCP_TAG];
  pm__random(plain, sizeof plain);
  cr_assert_eq(pm__tcp_bulk_seal(&aegis, plain, sizeof plain, sealed, tag),
               0);
  cr_assert_eq(pm__tcp_bulk_open(&gcm, sealed, sizeof sealed, tag),
               PM_ECORRUPT);
  pm__tcp_bulk_free(&aegis);
  pm__tcp_bulk_free(&gcm);
}


Test(tcp_handshake, matching_keys_open_both_streams) {
  pair p;
  pair_established(&p, true, true);
  /* A message sealed by one side opens on the other, both ways. */
  uint8_t sealed[5 + PM_TCP_ABYTES], opened[5];
  unsigned long long length;
  unsigned char tag;
  crypto_secretstream_xchacha20poly1305_push(
      &p.client.secrets->send_state, sealed, &length,
      (const uint8_t *)"hello", 5, NULL, 0, 0);
  cr_assert_eq(crypto_secretstream_xchacha20poly1305_pull(
                   &p.server.secrets->recv_state, opened, &length, &tag,
                   sealed, sizeof sealed, NULL, 0),
               0);
  cr_assert_eq(memcmp(opened, "hello", 5), 0);
  crypto_secretstream_xchacha20poly1305_push(
      &p.server.secrets->send_state, sealed, &length,
      (const uint8_t *)"world", 5, NULL, 0, 0);
  cr_assert_eq(crypto_secretstream_xchacha20poly1305_pull(
                   &p.client.secrets->recv_state, opened, &length, &tag,
                   sealed, sizeof sealed, NULL, 0),
               0);
  cr_assert(!p.client.insecure_data && !p.server.insecure_data);
  pair_free(&p);
}

Test(tcp_handshake, wrong_key_or_cluster_refused) {
  pair p;
  pair_start(&p, other_key, "test-cluster", false, false);
  cr_assert_eq(pair_run(&p), PM_EAUTH);
  pair_free(&p);
  pair_start(&p, fixture_key, "other-cluster", false, false);
  cr_assert_eq(pair_run(&p), PM_EAUTH);
  pair_free(&p);
}

Test(tcp_handshake, tampered_hello_refused) {
  pair p;
  pair_start(&p, fixture_key, "test-cluster", false, false);
  /* A man in the middle flips a nonce bit on its way to the server. */
  uint8_t hello[PM_TCP_HELLO_SIZE];
  memcpy(hello, p.client.my_hello, sizeof hello);
  hello[60] ^= 1;
  cr_assert_eq(pm__tcp_hs_peer_hello(&p.server, hello, sizeof hello), 0);
  cr_assert_eq(pm__tcp_hs_peer_hello(&p.client, p.server.my_hello,
                                     PM_TCP_HELLO_SIZE),
               0);
  uint8_t proof[PM_TCP_PROOF_SIZE];
  pm__tcp_hs_proof(&p.client, proof);
  cr_assert_eq(pm__tcp_hs_check_proof(&p.server, proof, sizeof proof),
               PM_EAUTH);
  pair_free(&p);
}

Test(tcp_handshake, malformed_hellos) {
  pair p;
  pair_start(&p, fixture_key, "test-cluster", false, false);
  uint8_t hello[PM_TCP_HELLO_SIZE + 1];
  memcpy(hello, p.client.my_hello, PM_TCP_HELLO_SIZE);
  cr_assert_eq(pm__tcp_hs_peer_hello(&p.server, hello, 71), PM_EPROTO);
  cr_assert_eq(pm__tcp_hs_peer_hello(&p.server, hello, 73), PM_EPROTO);
  int bytes[] = {0, 4, 5, 6, 7};
  for (size_t i = 0; i < PM_ARRAY_SIZE(bytes); i++) {
    memcpy(hello, p.client.my_hello, PM_TCP_HELLO_SIZE);
    hello[bytes[i]] ^= 0x40;
    cr_assert_eq(pm__tcp_hs_peer_hello(&p.server, hello, PM_TCP_HELLO_SIZE),
                 PM_EPROTO, "byte %d", bytes[i]);
  }
  /* An all-zero public key is a degenerate exchange. */
  memcpy(hello, p.client.my_hello, PM_TCP_HELLO_SIZE);
  memset(hello + 8, 0, 32);
  cr_assert_eq(pm__tcp_hs_peer_hello(&p.server, hello, PM_TCP_HELLO_SIZE),
               PM_EAUTH);
  uint8_t proof[PM_TCP_PROOF_SIZE] = {0};
  cr_assert_eq(pm__tcp_hs_peer_hello(&p.server, p.client.my_hello,
                                     PM_TCP_HELLO_SIZE),
               0);
  cr_assert_eq(pm__tcp_hs_check_proof(&p.server, proof, 10), PM_EPROTO);
  cr_assert_eq(pm__tcp_hs_check_proof(&p.server, proof, sizeof proof),
               PM_EAUTH);
  pair_free(&p);
}

Test(tcp_handshake, insecure_only_if_both_ask) {
  pair p;
  pair_start(&p, fixture_key, "test-cluster", true, true);
  cr_assert_eq(pair_run(&p), 0);
  cr_assert(p.client.insecure_data && p.server.insecure_data);
  pair_free(&p);
  pair_start(&p, fixture_key, "test-cluster", true, false);
  cr_assert_eq(pair_run(&p), 0);
  cr_assert(!p.client.insecure_data && !p.server.insecure_data);
  pair_free(&p);
}

/* ---- end to end ---------------------------------------------------------- */

static void wait_auth_failures(pm_transport *t, uint64_t want) {
  pm_transport_stats stats;
  uint64_t end = pm__now_ns() + 2 * FIX_SECOND;
  do
    pm__transport_stats(t, &stats);
  while (stats.auth_failures < want && pm__now_ns() < end);
  cr_assert_geq(stats.auth_failures, want);
}

Test(tcp_handshake, wrong_key_gets_nothing) {
  fixture_peer server, stranger;
  fixture_open(&server);
  fixture_options o = {.key = other_key};
  cr_assert_eq(fixture_open_with(&stranger, &o), 0);
  pm_page_request req = fixture_request("s3://b/secret", 0, 65536, 65536);
  uint8_t dst[65536];
  for (int i = 0; i < 3; i++) {
    ssize_t n = pm__transport_get_page(stranger.transport, server.addr, &req,
                                       dst, sizeof dst,
                                       pm__now_ns() + FIX_SECOND);
    cr_assert_eq(n, PM_EAUTH, "%zd %s", n, pm__errmsg());
  }
  cr_assert_eq(pm__transport_put_page(stranger.transport, server.addr, &req,
                                      dst, 100, pm__now_ns() + FIX_SECOND),
               PM_EAUTH);
  wait_auth_failures(server.transport, 4);
  cr_assert_eq(server.server.gets, 0);
  cr_assert_eq(server.server.puts, 0);
  /* Nor can a server without the key serve a member. */
  fixture_peer member;
  fixture_open(&member);
  cr_assert_eq(pm__transport_get_page(member.transport, stranger.addr, &req,
                                      dst, sizeof dst,
                                      pm__now_ns() + FIX_SECOND),
               PM_EAUTH);
  cr_assert_eq(stranger.server.gets, 0);
  fixture_close(&member);
  fixture_close(&stranger);
  fixture_close(&server);
}

/* A proxy that forwards one connection and records what the server sent. */
typedef struct proxy {
  int listen_fd;
  char addr[PM_ADDR_MAX], target[PM_ADDR_MAX];
  pthread_t thread;
  uint8_t *seen;
  size_t seen_length, seen_cap;
} proxy;

static bool forward(int from, int to, proxy *p, bool record) {
  uint8_t buf[65536];
  ssize_t n = recv(from, buf, sizeof buf, MSG_DONTWAIT);
  if (n == 0 || (n < 0 && errno != EAGAIN))
    return false;
  if (n < 0)
    return true;
  if (record) {
    size_t keep = PM_MIN((size_t)n, p->seen_cap - p->seen_length);
    memcpy(p->seen + p->seen_length, buf, keep);
    p->seen_length += keep;
  }
  return pm__tcp_write_full(to, buf, (size_t)n, pm__now_ns() + 5 * FIX_SECOND,
                            "proxy") == 0;
}

static void *proxy_main(void *arg) {
  proxy *p = arg;
  struct pollfd lp = {.fd = p->listen_fd, .events = POLLIN};
  if (poll(&lp, 1, 5000) != 1)
    return NULL;
  int client = accept(p->listen_fd, NULL, NULL), server = -1;
  if (client < 0 ||
      pm__tcp_connect(p->target, "", pm__now_ns() + FIX_SECOND, &server) != 0)
    goto out;
  pm__tcp_sockopts(client, "");
  for (;;) {
    struct pollfd fds[2] = {{.fd = client, .events = POLLIN},
                            {.fd = server, .events = POLLIN}};
    if (poll(fds, 2, 5000) <= 0)
      break;
    if (fds[0].revents && !forward(client, server, p, false))
      break;
    if (fds[1].revents && !forward(server, client, p, true))
      break;
  }
out:
  if (client >= 0)
    close(client);
  if (server >= 0)
    close(server);
  return NULL;
}

static void proxy_start(proxy *p, const char *target) {
  memset(p, 0, sizeof *p);
  snprintf(p->target, sizeof p->target, "%s", target);
  p->seen_cap = 4u << 20;
  p->seen = malloc(p->seen_cap);
  cr_assert_eq(pm__tcp_listen("127.0.0.1:0", "", &p->listen_fd, p->addr,
                              sizeof p->addr),
               0);
  pthread_create(&p->thread, NULL, proxy_main, p);
}

static void proxy_stop(proxy *p) {
  pthread_join(p->thread, NULL);
  close(p->listen_fd);
}

/* GET one 1 MiB page through a proxy; true if its bytes were on the wire. */
static bool page_seen_on_wire(int client_insecure, int server_insecure) {
  fixture_peer server, client;
  fixture_options so = {.insecure_data = server_insecure};
  fixture_options co = {.insecure_data = client_insecure};
  cr_assert_eq(fixture_open_with(&server, &so), 0);
  cr_assert_eq(fixture_open_with(&client, &co), 0);
  proxy p;
  proxy_start(&p, server.addr);
  fixture_get_check(client.transport, p.addr, "s3://b/wire", 0, 1 << 20);
  pm_tcp_counters c;
  pm__tcp_counters(client.transport, &c);
  fixture_close(&client); /* closing the connection ends the proxy */
  proxy_stop(&p);
  uint8_t pattern[256];
  fixture_fill("s3://b/wire", 0, pattern, sizeof pattern);
  bool seen = memmem(p.seen, p.seen_length, pattern, sizeof pattern) != NULL;
  cr_assert_geq(p.seen_length, 1u << 20);
  cr_assert_eq(seen ? c.clear_page_bytes : c.sealed_page_bytes, 1u << 20);
  free(p.seen);
  fixture_close(&server);
  return seen;
}

Test(tcp_handshake, page_bytes_encrypted_unless_both_insecure) {
  cr_assert(!page_seen_on_wire(0, 0), "page bytes in the clear");
  cr_assert(!page_seen_on_wire(1, 0), "one side alone sent in the clear");
  cr_assert(page_seen_on_wire(1, 1), "insecure_data did not send clear");
}

/* Open a transport with PAGEMESH_TCP_CIPHER set to `cipher` (NULL: unset). */
static int open_with_cipher(fixture_peer *peer, const char *cipher,
                            bool serve_file) {
  if (cipher)
    setenv("PAGEMESH_TCP_CIPHER", cipher, 1);
  else
    unsetenv("PAGEMESH_TCP_CIPHER");
  fixture_options o = {.serve_file = serve_file};
  int rc = fixture_open_with(peer, &o);
  unsetenv("PAGEMESH_TCP_CIPHER");
  return rc;
}

/* Each end offers AEGIS-128X4 unless PAGEMESH_TCP_CIPHER asks for
 * AES-256-GCM; a connection uses AEGIS only if both ends offer it, and
 * pages (by copy and by reference, GET and PUT) arrive byte-exact with
 * either cipher, and never in the clear. */
Test(tcp_handshake, cipher_agreed_end_to_end) {
  const char *ciphers[][2] = {{NULL, NULL},
                              {"aegis-128x4", "aes-256-gcm"},
                              {"aes-256-gcm", NULL},
                              {"aes-256-gcm", "aes-256-gcm"}};
  for (size_t i = 0; i < PM_ARRAY_SIZE(ciphers); i++) {
    fixture_peer server, client;
    cr_assert_eq(open_with_cipher(&server, ciphers[i][1], true), 0);
    cr_assert_eq(open_with_cipher(&client, ciphers[i][0], false), 0);
    fixture_get_check(client.transport, server.addr, "file:by-reference", 1,
                      (1u << 20) + 7);
    fixture_get_check(client.transport, server.addr, "s3://b/by-copy", 0,
                      300000);
    size_t size = 200000;
    uint8_t *page = malloc(size);
    fixture_fill("s3://b/pushed", 0, page, size);
    pm_page_request req = fixture_request("s3://b/pushed", 0, size, size);
    cr_assert_eq(pm__transport_put_page(client.transport, server.addr, &req,
                                        page, size,
                                        pm__now_ns() + 5 * FIX_SECOND),
                 0, "%s", pm__errmsg());
    pthread_mutex_lock(&server.server.lock);
    cr_assert_eq(server.server.pushed_length, size);
    cr_assert_eq(memcmp(server.server.pushed, page, size), 0);
    pthread_mutex_unlock(&server.server.lock);
    free(page);
    pm_tcp_counters c;
    pm__tcp_counters(client.transport, &c);
    bool both_offer = true;
    for (int end = 0; end < 2; end++)
      if (ciphers[i][end] && strcmp(ciphers[i][end], "aegis-128x4") != 0)
        both_offer = false;
    cr_assert_gt(c.handshakes, 0);
    cr_assert_eq(c.aegis_handshakes,
                 both_offer && pm__aegis_best() ? c.handshakes : 0,
                 "case %zu: %llu of %llu handshakes with AEGIS", i,
                 (unsigned long long)c.aegis_handshakes,
                 (unsigned long long)c.handshakes);
    cr_assert_eq(c.clear_page_bytes, 0);
    fixture_close(&client);
    fixture_close(&server);
  }
  /* AES-256-GCM keeps page bytes off the wire too. */
  setenv("PAGEMESH_TCP_CIPHER", "aes-256-gcm", 1);
  bool seen = page_seen_on_wire(0, 0);
  unsetenv("PAGEMESH_TCP_CIPHER");
  cr_assert(!seen, "AES-256-GCM page bytes in the clear");
  /* A cipher pagemesh does not know is refused when the transport opens. */
  fixture_peer bad;
  cr_assert_eq(open_with_cipher(&bad, "rot13", false), PM_EINVAL);
  cr_assert(strstr(pm__errmsg(), "PAGEMESH_TCP_CIPHER=rot13"), "%s",
            pm__errmsg());
}

/* ---- hostile clients ------------------------------------------------------ */

static int raw_connect(const char *addr) {
  int fd = -1;
  cr_assert_eq(pm__tcp_connect(addr, "", pm__now_ns() + FIX_SECOND, &fd), 0);
  return fd;
}

/* True if the server closes fd within two seconds. */
static bool closed_by_server(int fd) {
  uint8_t byte;
  int rc = pm__tcp_read_full(fd, &byte, 1, pm__now_ns() + 2 * FIX_SECOND,
                             "server");
  return rc == PM_EUNREACHABLE;
}

/* A client that holds the key and then misbehaves. */
static pm_tcp_conn *raw_authenticated(const char *addr) {
  pm_tcp_conn *conn = pm__tcp_conn_new(raw_connect(addr), addr);
  uint64_t deadline = pm__now_ns() + FIX_SECOND;
  uint8_t msg[PM_TCP_HELLO_SIZE];
  cr_assert_eq(pm__tcp_hs_start(&conn->hs, false, fixture_key, "test-cluster",
                                false, true),
               0);
  pm__tcp_write_full(conn->fd, conn->hs.my_hello, PM_TCP_HELLO_SIZE, deadline,
                     addr);
  cr_assert_eq(pm__tcp_read_full(conn->fd, msg, PM_TCP_HELLO_SIZE, deadline,
                                 addr),
               0);
  cr_assert_eq(pm__tcp_hs_peer_hello(&conn->hs, msg, PM_TCP_HELLO_SIZE), 0);
  uint8_t proof[PM_TCP_PROOF_SIZE];
  pm__tcp_hs_proof(&conn->hs, proof);
  pm__tcp_write_full(conn->fd, proof, sizeof proof, deadline, addr);
  cr_assert_eq(pm__tcp_read_full(conn->fd, msg, PM_TCP_PROOF_SIZE, deadline,
                                 addr),
               0);
  cr_assert_eq(pm__tcp_hs_check_proof(&conn->hs, msg, PM_TCP_PROOF_SIZE), 0);
  return conn;
}

/* Seal `length` bytes as one message and send it with its prefix. */
static void send_sealed(pm_tcp_conn *conn, const uint8_t *plain,
                        size_t length) {
  uint8_t *wire = malloc(PM_FRAME_PREFIX + length + PM_TCP_ABYTES);
  unsigned long long sealed;
  crypto_secretstream_xchacha20poly1305_push(&conn->hs.secrets->send_state,
                                             wire + PM_FRAME_PREFIX, &sealed,
                                             plain, length, NULL, 0, 0);
  pm__frame_put_prefix(wire, (uint32_t)sealed);
  pm__tcp_write_full(conn->fd, wire, PM_FRAME_PREFIX + (size_t)sealed,
                     pm__now_ns() + FIX_SECOND, "raw");
  free(wire);
}

static void expect_dropped(pm_tcp_conn *conn) {
  cr_assert(closed_by_server(conn->fd), "server kept a bad connection");
  pm__tcp_conn_free(conn);
}

Test(tcp_handshake, hostile_clients_do_not_hurt_the_server) {
  fixture_peer server, client;
  fixture_open(&server);
  fixture_open(&client);
  /* A connection that says nothing, and one that stops mid-hello, stay
   * open on the loop without holding a worker. */
  int silent = raw_connect(server.addr);
  int slow = raw_connect(server.addr);
  pm__tcp_write_full(slow, "PMT1", 4, pm__now_ns() + FIX_SECOND, "slow");
  /* Garbage instead of a hello, and a huge length prefix as a hello. */
  int garbage = raw_connect(server.addr);
  uint8_t junk[PM_TCP_HELLO_SIZE];
  memset(junk, 0xee, sizeof junk);
  pm__tcp_write_full(garbage, junk, sizeof junk, pm__now_ns() + FIX_SECOND,
                     "garbage");
  cr_assert(closed_by_server(garbage));
  close(garbage);
  int huge = raw_connect(server.addr);
  memset(junk, 0xff, sizeof junk);
  pm__tcp_write_full(huge, junk, sizeof junk, pm__now_ns() + FIX_SECOND,
                     "huge");
  cr_assert(closed_by_server(huge));
  close(huge);
  /* Authenticated but hostile: a huge sealed-length prefix. */
  pm_tcp_conn *conn = raw_authenticated(server.addr);
  uint8_t prefix[4] = {0xff, 0xff, 0xff, 0xf0};
  pm__tcp_write_full(conn->fd, prefix, 4, pm__now_ns() + FIX_SECOND, "raw");
  expect_dropped(conn);
  /* A sealed message that is not a frame, then one with a bad field. */
  conn = raw_authenticated(server.addr);
  send_sealed(conn, junk, 40);
  expect_dropped(conn);
  conn = raw_authenticated(server.addr);
  uint8_t frame[] = {0, 0, 0, 4, 0x0a, 0x02, 0x12, 0x00}; /* get, empty page */
  send_sealed(conn, frame, sizeof frame);
  expect_dropped(conn);
  /* A forged sealed message (not from the stream's key). */
  conn = raw_authenticated(server.addr);
  uint8_t forged[4 + 64];
  pm__frame_put_prefix(forged, 64);
  memset(forged + 4, 0x33, 64);
  pm__tcp_write_full(conn->fd, forged, sizeof forged,
                     pm__now_ns() + FIX_SECOND, "raw");
  expect_dropped(conn);

  pm_transport_stats ss;
  pm__transport_stats(server.transport, &ss);
  cr_assert_geq(ss.decode_failures, 4, "%llu",
                (unsigned long long)ss.decode_failures);
  cr_assert_geq(ss.auth_failures, 2);
  cr_assert_eq(server.server.gets, 0);
  /* Meanwhile the server keeps serving members. */
  for (int i = 0; i < 5; i++)
    fixture_get_check(client.transport, server.addr, "s3://b/ok",
                      (uint64_t)i, 1 << 20);
  close(silent);
  close(slow);
  fixture_close(&client);
  fixture_close(&server);
}

/* ---- several messages in one write ----------------------------------------- */

/* Append GET `index` of uri, sealed with its prefix, to wire at *used. */
static void append_get(pm_tcp_conn *conn, const char *uri, uint64_t index,
                       uint32_t size, uint8_t *wire, size_t *used) {
  pm_page_request req = fixture_request(uri, index, size, (index + 1) * size);
  Pm__PageRequest page;
  pm__page_msg_request_out(&req, &page);
  Pm__PageGet get = PM__PAGE_GET__INIT;
  get.request_id = index + 1;
  get.page = &page;
  Pm__PageFrame frame = PM__PAGE_FRAME__INIT;
  frame.body_case = PM__PAGE_FRAME__BODY_GET;
  frame.get = &get;
  uint8_t plain[PM_FRAME_MAX];
  int64_t length = pm__frame_encode(&frame, plain, sizeof plain);
  cr_assert_gt(length, 0);
  unsigned long long sealed;
  crypto_secretstream_xchacha20poly1305_push(
      &conn->hs.secrets->send_state, wire + *used + PM_FRAME_PREFIX, &sealed,
      plain, (unsigned long long)length, NULL, 0,
      crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
  pm__frame_put_prefix(wire + *used, (uint32_t)sealed);
  *used += PM_FRAME_PREFIX + (size_t)sealed;
}

/* Three GETs in one write (the server reads them all in one receive) are
 * all answered, in order; the client reads the answers, which may arrive
 * together, through its read-ahead and gets every page byte-exact. */
Test(tcp_handshake, requests_sent_together_are_all_answered) {
  fixture_peer server;
  fixture_open(&server);
  pm_tcp_conn *conn = raw_authenticated(server.addr);
  cr_assert_eq(pm__tcp_hs_done(&conn->hs), 0); /* the page cipher */
  const uint32_t sizes[] = {4096, 100, 200000};
  uint8_t wire[3 * (PM_FRAME_PREFIX + PM_TCP_SEALED_MAX)];
  size_t used = 0;
  for (uint64_t i = 0; i < 3; i++)
    append_get(conn, "s3://b/together", i, sizes[i], wire, &used);
  cr_assert_eq(pm__tcp_write_full(conn->fd, wire, used,
                                  pm__now_ns() + FIX_SECOND, "raw"),
               0);
  uint8_t *got = malloc(200000), *want = malloc(200000);
  for (uint64_t i = 0; i < 3; i++) {
    uint64_t deadline = pm__now_ns() + 5 * FIX_SECOND;
    Pm__PageFrame *frame;
    cr_assert_eq(pm__tcp_conn_recv_frame(conn, FIX_MAX_PAGE, deadline,
                                         &frame),
                 0, "answer %llu: %s", (unsigned long long)i, pm__errmsg());
    uint32_t length = 0;
    uint8_t checksum[16];
    cr_assert_eq(pm__page_msg_response_in(frame, i + 1, 200000, FIX_MAX_PAGE,
                                          &length, checksum, "server"),
                 0, "%s", pm__errmsg());
    cr_assert_eq(length, sizes[i]);
    bool sealed;
    pm_checksum sum;
    cr_assert_eq(pm__tcp_conn_recv_page(conn, got, length, deadline, &sealed,
                                        &sum),
                 0, "%s", pm__errmsg());
    cr_assert(sealed);
    fixture_fill("s3://b/together", i, want, length);
    cr_assert_eq(memcmp(got, want, length), 0, "page %llu differs",
                 (unsigned long long)i);
    cr_assert_eq(memcmp(sum.bytes, checksum, 16), 0);
  }
  cr_assert(!pm__tcp_conn_buffered(conn), "bytes beyond the answers");
  cr_assert_eq(atomic_load(&server.server.gets), 3);
  free(got);
  free(want);
  pm__tcp_conn_free(conn);
  fixture_close(&server);
}

/* A server that answers every GET with the page and one byte too many,
 * serving its connections one after the other until each is closed. */
typedef struct chatty_server {
  int listen_fd;
  char addr[PM_ADDR_MAX];
  atomic_int accepts;
  pthread_t thread;
} chatty_server;

static void chatty_handshake(pm_tcp_conn *conn) {
  uint64_t deadline = pm__now_ns() + FIX_SECOND;
  uint8_t msg[PM_TCP_HELLO_SIZE];
  cr_assert_eq(pm__tcp_hs_start(&conn->hs, true, fixture_key, "test-cluster",
                                false, true),
               0);
  cr_assert_eq(pm__tcp_read_full(conn->fd, msg, PM_TCP_HELLO_SIZE, deadline,
                                 "client"),
               0);
  cr_assert_eq(pm__tcp_hs_peer_hello(&conn->hs, msg, PM_TCP_HELLO_SIZE), 0);
  pm__tcp_write_full(conn->fd, conn->hs.my_hello, PM_TCP_HELLO_SIZE, deadline,
                     "client");
  cr_assert_eq(pm__tcp_read_full(conn->fd, msg, PM_TCP_PROOF_SIZE, deadline,
                                 "client"),
               0);
  cr_assert_eq(pm__tcp_hs_check_proof(&conn->hs, msg, PM_TCP_PROOF_SIZE), 0);
  uint8_t proof[PM_TCP_PROOF_SIZE];
  pm__tcp_hs_proof(&conn->hs, proof);
  pm__tcp_write_full(conn->fd, proof, sizeof proof, deadline, "client");
  cr_assert_eq(pm__tcp_hs_done(&conn->hs), 0);
}

static void chatty_answer(pm_tcp_conn *conn, Pm__PageFrame *request) {
  pm_page_request req;
  uint64_t id;
  bool is_put;
  uint32_t length;
  uint8_t unused[16];
  cr_assert_eq(pm__page_msg_request_in(request, FIX_MAX_PAGE, &req, &id,
                                       &is_put, &length, unused),
               0);
  uint8_t page[4096];
  fixture_fill(req.uri, req.page_index, page, sizeof page);
  pm_checksum sum = pm__checksum(page, sizeof page);
  Pm__PageResponse response = PM__PAGE_RESPONSE__INIT;
  response.request_id = id;
  response.length = sizeof page;
  response.checksum.data = sum.bytes;
  response.checksum.len = sizeof sum.bytes;
  Pm__PageFrame frame = PM__PAGE_FRAME__INIT;
  frame.body_case = PM__PAGE_FRAME__BODY_RESPONSE;
  frame.response = &response;
  bool sealed;
  uint64_t deadline = pm__now_ns() + FIX_SECOND;
  int on = 1, off = 0; /* the answer and the extra byte leave together */
  setsockopt(conn->fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
  cr_assert_eq(pm__tcp_conn_send(conn, &frame, page, sizeof page, deadline,
                                 &sealed),
               0);
  pm__tcp_write_full(conn->fd, "!", 1, deadline, "client");
  setsockopt(conn->fd, IPPROTO_TCP, TCP_CORK, &off, sizeof off);
}

static void *chatty_main(void *arg) {
  chatty_server *s = arg;
  for (;;) {
    int fd = accept(s->listen_fd, NULL, NULL);
    if (fd < 0)
      return NULL;
    atomic_fetch_add(&s->accepts, 1);
    pm__tcp_sockopts(fd, "");
    pm_tcp_conn *conn = pm__tcp_conn_new(fd, "client");
    chatty_handshake(conn);
    Pm__PageFrame *request;
    while (pm__tcp_conn_recv_frame(conn, FIX_MAX_PAGE,
                                   pm__now_ns() + 10 * FIX_SECOND,
                                   &request) == 0)
      chatty_answer(conn, request);
    pm__tcp_conn_free(conn);
  }
}

/* A server that sends more than its answer is out of step: the client
 * gets its page (verified) but never reuses that connection. The extra
 * byte arrives with the answer, so the client has read it ahead. */
Test(tcp_handshake, connection_with_bytes_beyond_the_answer_not_reused) {
  chatty_server s = {.listen_fd = -1};
  cr_assert_eq(pm__tcp_listen("127.0.0.1:0", "", &s.listen_fd, s.addr,
                              sizeof s.addr),
               0);
  fcntl(s.listen_fd, F_SETFL, fcntl(s.listen_fd, F_GETFL) & ~O_NONBLOCK);
  pthread_create(&s.thread, NULL, chatty_main, &s);
  fixture_peer client;
  fixture_open(&client);
  for (uint64_t i = 0; i < 3; i++)
    fixture_get_check(client.transport, s.addr, "s3://b/chatty", i, 4096);
  cr_assert_eq(atomic_load(&s.accepts), 3,
               "a connection with an extra byte was reused");
  fixture_close(&client);
  shutdown(s.listen_fd, SHUT_RDWR);
  pthread_join(s.thread, NULL);
  close(s.listen_fd);
}
