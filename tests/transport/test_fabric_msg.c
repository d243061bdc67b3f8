/*
 * Tests for the fabric transport's control messages (transport/
 * fabric_msg.c): sealing and opening, what does not authenticate, what
 * authenticates but is invalid, and the same garbage sent over the wire by
 * a foreign endpoint to a running transport, which must drop and count it
 * and keep serving.
 */
#include "test_fabric_util.h"

TestSuite(fabric_msg, .timeout = 60);

static const uint8_t sender[16] = {2, 0, 0x1f, 0x90, 127, 0, 0, 1};

typedef struct opened {
  uint8_t arena_mem[PM_FABRIC_ARENA_SIZE];
  pm_fabric_arena arena;
  pm_fabric_msg msg;
} opened;

static pm_fabric_keys keys_for(const uint8_t *key, const char *cluster) {
  pm_fabric_keys keys;
  cr_assert_eq(pm_fabric_keys_init(&keys, key, cluster), 0);
  return keys;
}

static ssize_t seal_get(pm_fabric_keys *keys, Pm__PageRequest *page,
                        uint8_t *out, size_t cap) {
  Pm__PageGet get;
  pm__page_get__init(&get);
  get.request_id = 0x1234;
  get.page = page;
  get.rma_addr = 0x1000;
  get.rma_key = 77;
  get.rma_length = 1 * MiB;
  Pm__PageFrame frame;
  pm__page_frame__init(&frame);
  frame.body_case = PM__PAGE_FRAME__BODY_GET;
  frame.get = &get;
  return pm_fabric_msg_seal(keys, sender, sizeof sender, &frame, out, cap);
}

static int open_msg(const pm_fabric_keys *keys, const uint8_t *wire,
                    size_t len, opened *o) {
  pm_fabric_arena_init(&o->arena, o->arena_mem, sizeof o->arena_mem);
  return pm_fabric_msg_open(keys, wire, len, 1 * MiB, &o->arena, &o->msg);
}

Test(fabric_msg, seal_then_open_round_trips) {
  pm_fabric_keys keys = keys_for(test_key, "c1");
  pm_page_request req = make_request("s3://bucket/object", 5, 1 * MiB);
  Pm__PageRequest page;
  pm_fabric_req_to_pb(&req, &page);
  uint8_t wire[PM_FABRIC_MSG_MAX];
  ssize_t len = seal_get(&keys, &page, wire, sizeof wire);
  cr_assert_gt(len, 0);
  opened o;
  cr_assert_eq(open_msg(&keys, wire, (size_t)len, &o), 0, "%s",
               pm__errmsg());
  cr_assert_eq(o.msg.sender_len, sizeof sender);
  cr_assert(memcmp(o.msg.sender, sender, sizeof sender) == 0);
  Pm__PageGet *get = o.msg.frame->get;
  cr_assert_eq(get->request_id, 0x1234);
  cr_assert_eq(get->rma_key, 77);
  pm_page_request back;
  pm_fabric_req_from_pb(get->page, &back);
  cr_assert_str_eq(back.uri, "s3://bucket/object");
  cr_assert_eq(back.page_index, 5);
  cr_assert(memcmp(back.page_id, req.page_id, 16) == 0);
  pm_fabric_keys_free(&keys);
}

/* Nonces are a random prefix per key set and a counter: never repeated
 * within one set, different between two sets of the same cluster key. */
Test(fabric_msg, every_message_has_a_nonce_of_its_own) {
  enum { COUNT = 1000, NONCE_AT = 5 + sizeof sender, NONCE = 24 };
  pm_fabric_keys keys = keys_for(test_key, "c1");
  pm_fabric_keys again = keys_for(test_key, "c1");
  pm_page_request req = make_request("s3://bucket/object", 1, 1 * MiB);
  Pm__PageRequest page;
  pm_fabric_req_to_pb(&req, &page);
  static uint8_t nonces[COUNT + 1][NONCE];
  uint8_t wire[PM_FABRIC_MSG_MAX];
  for (int i = 0; i <= COUNT; i++) {
    ssize_t len = seal_get(i < COUNT ? &keys : &again, &page, wire,
                           sizeof wire);
    cr_assert_gt(len, 0);
    opened o;
    cr_assert_eq(open_msg(&keys, wire, (size_t)len, &o), 0, "%s",
                 pm__errmsg());
    memcpy(nonces[i], wire + NONCE_AT, NONCE);
    for (int j = 0; j < i; j++)
      cr_assert(memcmp(nonces[i], nonces[j], NONCE) != 0,
                "message %d reuses the nonce of message %d", i, j);
  }
  pm_fabric_keys_free(&keys);
  pm_fabric_keys_free(&again);
}

Test(fabric_msg, anything_but_the_sealed_bytes_fails_to_authenticate) {
  pm_fabric_keys keys = keys_for(test_key, "c1");
  pm_fabric_keys other_key = keys_for(wrong_key, "c1");
  pm_fabric_keys other_cluster = keys_for(test_key, "c2");
  pm_page_request req = make_request("s3://bucket/object", 0, 1 * MiB);
  Pm__PageRequest page;
  pm_fabric_req_to_pb(&req, &page);
  uint8_t wire[PM_FABRIC_MSG_MAX];
  ssize_t len = seal_get(&keys, &page, wire, sizeof wire);
  opened o;
  cr_assert_eq(open_msg(&other_key, wire, (size_t)len, &o), PM_EAUTH);
  cr_assert_eq(open_msg(&other_cluster, wire, (size_t)len, &o), PM_EAUTH);
  for (ssize_t i = 0; i < len; i += 7) { /* every region, sender included */
    wire[i] ^= 0x40;
    cr_assert_eq(open_msg(&keys, wire, (size_t)len, &o), PM_EAUTH,
                 "flip at %zd accepted", i);
    wire[i] ^= 0x40;
  }
  for (size_t cut = 0; cut < (size_t)len; cut += 5)
    cr_assert_eq(open_msg(&keys, wire, cut, &o), PM_EAUTH);
  cr_assert_eq(open_msg(&keys, wire, PM_FABRIC_MSG_MAX + 1, &o), PM_EAUTH);
  cr_assert_eq(open_msg(&keys, wire, (size_t)len, &o), 0);
  pm_fabric_keys_free(&keys);
  pm_fabric_keys_free(&other_key);
  pm_fabric_keys_free(&other_cluster);
}

/* Seal a request that a field makes invalid; it must open as PM_EPROTO. */
static void expect_invalid(pm_page_request req, const char *what) {
  pm_fabric_keys keys = keys_for(test_key, "c1");
  Pm__PageRequest page;
  pm_fabric_req_to_pb(&req, &page);
  uint8_t wire[PM_FABRIC_MSG_MAX];
  ssize_t len = seal_get(&keys, &page, wire, sizeof wire);
  cr_assert_gt(len, 0, "%s: %s", what, pm__errmsg());
  opened o;
  cr_assert_eq(open_msg(&keys, wire, (size_t)len, &o), PM_EPROTO,
               "%s accepted", what);
  pm_fabric_keys_free(&keys);
}

Test(fabric_msg, authentic_but_invalid_fields_are_refused) {
  pm_page_request req = make_request("s3://bucket/object", 0, 1 * MiB);
  pm_page_request bad = req;
  bad.page_size = 0;
  expect_invalid(bad, "page size 0");
  bad = req;
  bad.page_size = 2 * MiB;
  expect_invalid(bad, "page size over the cap");
  bad = req;
  bad.uri = "";
  expect_invalid(bad, "empty uri");
  char long_uri[PM_FABRIC_URI_MAX + 2];
  memset(long_uri, 'u', sizeof long_uri - 1);
  long_uri[sizeof long_uri - 1] = '\0';
  bad = req;
  bad.uri = long_uri;
  expect_invalid(bad, "oversize uri");
  bad = req;
  bad.object_size = 10;
  bad.page_index = 3;
  expect_invalid(bad, "page past the end");
  char long_version[PM_FABRIC_VERSION_MAX + 2];
  memset(long_version, 'v', sizeof long_version - 1);
  long_version[sizeof long_version - 1] = '\0';
  bad = req;
  bad.version = long_version;
  expect_invalid(bad, "oversize version");
  bad = req;
  bad.flags = 1u << 20;
  expect_invalid(bad, "unknown flag");
}

Test(fabric_msg, oversize_frames_do_not_seal) {
  pm_fabric_keys keys = keys_for(test_key, "c1");
  static char huge[3 * PM_FABRIC_MSG_MAX];
  memset(huge, 'h', sizeof huge - 1);
  pm_page_request req = make_request(huge, 0, 1 * MiB);
  Pm__PageRequest page;
  pm_fabric_req_to_pb(&req, &page);
  uint8_t wire[PM_FABRIC_MSG_MAX];
  cr_assert_eq(seal_get(&keys, &page, wire, sizeof wire), PM_ETOOBIG);
  pm_fabric_keys_free(&keys);
}

Test(fabric_msg, addresses_round_trip_through_hex) {
  char hex[PM_ADDR_MAX];
  cr_assert_eq(pm_fabric_hex_encode(sender, sizeof sender, hex, sizeof hex),
               0);
  uint8_t raw[PM_FABRIC_RAWADDR_MAX];
  cr_assert_eq(pm_fabric_hex_decode(hex, raw, sizeof raw), sizeof sender);
  cr_assert(memcmp(raw, sender, sizeof sender) == 0);
  cr_assert_lt(pm_fabric_hex_decode("0g", raw, sizeof raw), 0);
  cr_assert_lt(pm_fabric_hex_decode("abc", raw, sizeof raw), 0);
  cr_assert_lt(pm_fabric_hex_decode("", raw, sizeof raw), 0);
  cr_assert_lt(pm_fabric_hex_decode("0011", raw, 1), 0);
}

static void wait_counter(pm_transport *t, size_t offset, uint64_t want) {
  uint64_t deadline = pm__now_ns() + 5 * SEC_NS;
  uint64_t value = 0;
  while (pm__now_ns() < deadline) {
    pm_transport_stats s = stats_of(t);
    memcpy(&value, (char *)&s + offset, sizeof value);
    if (value >= want)
      return;
    sleep_ms(2);
  }
  cr_assert_fail("counter at %llu, want %llu", (unsigned long long)value,
                 (unsigned long long)want);
}

Test(fabric_msg, garbage_on_the_wire_is_dropped_and_counted) {
  test_server state;
  test_server_init(&state);
  pm_transport *server = open_fabric(&state, test_key, 1 * MiB);
  char addr[PM_ADDR_MAX];
  address_of(server, addr);
  raw_peer peer;
  raw_open(&peer);
  fi_addr_t dest = raw_insert(&peer, addr);

  /* Noise, a truncated envelope, and an oversize message. */
  uint8_t noise[512];
  pm__random(noise, sizeof noise);
  raw_send(&peer, dest, noise, sizeof noise);
  raw_send(&peer, dest, "PMF\x01", 4);
  /* shm never completes a send larger than the posted receive, so the
   * oversize case runs on tcp only. */
  uint64_t decode_base = 0;
  if (!is_shm(server)) {
    static uint8_t oversize[4 * PM_FABRIC_MSG_MAX];
    memset(oversize, 0xab, sizeof oversize);
    raw_send(&peer, dest, oversize, sizeof oversize);
    decode_base = 1;
  }
  wait_counter(server, offsetof(pm_transport_stats, auth_failures), 2);
  wait_counter(server, offsetof(pm_transport_stats, decode_failures),
               decode_base);

  /* Sealed with the right key but invalid: decode failure, no serve. */
  pm_fabric_keys keys = keys_for(test_key, "test-cluster");
  pm_page_request req = make_request("s3://bucket/x", 0, 1 * MiB);
  req.page_size = 0;
  Pm__PageRequest page;
  pm_fabric_req_to_pb(&req, &page);
  uint8_t wire[PM_FABRIC_MSG_MAX];
  ssize_t len = seal_get(&keys, &page, wire, sizeof wire);
  raw_send(&peer, dest, wire, (size_t)len);
  wait_counter(server, offsetof(pm_transport_stats, decode_failures),
               decode_base + 1);
  cr_assert_eq(atomic_load(&state.gets), 0);

  /* The server still serves a real client. */
  test_server client_state;
  test_server_init(&client_state);
  pm_transport *client = open_fabric(&client_state, test_key, 1 * MiB);
  pm_page_request good = make_request("s3://bucket/ok", 1, 64 * KiB);
  uint8_t *buf = malloc(64 * KiB);
  ssize_t n = client->methods->get_page(client, addr, &good, buf, 64 * KiB,
                                        pm__now_ns() + 5 * SEC_NS);
  cr_assert_eq(n, 64 * KiB, "%s", pm__errmsg());
  free(buf);
  close_fabric(client);
  test_server_fini(&client_state);
  pm_fabric_keys_free(&keys);
  raw_close(&peer);
  close_fabric(server);
  test_server_fini(&state);
}

/* The trailer that answers a GET lands by RMA in front of the page: it
 * opens under the cluster key only, and every bit of it counts. */
Test(fabric_msg, page_trailers_authenticate_every_bit) {
  pm_fabric_keys keys = keys_for(test_key, "test-cluster");
  pm_fabric_trailer t = {.request_id = 0x0123456789abcdefull,
                         .length = 65536};
  for (int i = 0; i < PM_FABRIC_CHECKSUM_LEN; i++)
    t.checksum[i] = (uint8_t)(i * 17 + 3);
  uint8_t wire[PM_FABRIC_TRAILER_LEN];
  pm_fabric_trailer_seal(&keys, &t, wire);
  pm_fabric_trailer got;
  cr_assert_eq(pm_fabric_trailer_open(&keys, wire, 1 * MiB, &got), 0);
  cr_assert_eq(got.request_id, t.request_id);
  cr_assert_eq(got.length, t.length);
  cr_assert(memcmp(got.checksum, t.checksum, sizeof t.checksum) == 0);
  /* Longer than the landing buffer's room: refused though authentic. */
  cr_assert_eq(pm_fabric_trailer_open(&keys, wire, 65535, &got), PM_EPROTO);
  for (int bit = 0; bit < PM_FABRIC_TRAILER_LEN * 8; bit++) {
    wire[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    cr_assert_eq(pm_fabric_trailer_open(&keys, wire, 1 * MiB, &got),
                 PM_EAUTH, "bit %d flipped went unnoticed", bit);
    wire[bit / 8] ^= (uint8_t)(1u << (bit % 8));
  }
  uint8_t other_key[32];
  memcpy(other_key, test_key, sizeof other_key);
  other_key[0] ^= 1;
  pm_fabric_keys other = keys_for(other_key, "test-cluster");
  cr_assert_eq(pm_fabric_trailer_open(&other, wire, 1 * MiB, &got), PM_EAUTH);
  for (int i = 0; i < 1000; i++) {
    uint8_t garbage[PM_FABRIC_TRAILER_LEN];
    pm__random(garbage, sizeof garbage);
    if (i % 2)
      memcpy(garbage, wire, 4); /* the right magic */
    cr_assert_eq(pm_fabric_trailer_open(&keys, garbage, 1 * MiB, &got),
                 PM_EAUTH);
  }
  pm_fabric_keys other_cluster = keys_for(test_key, "another-cluster");
  cr_assert_eq(pm_fabric_trailer_open(&other_cluster, wire, 1 * MiB, &got),
               PM_EAUTH);
  pm_fabric_keys_free(&other_cluster);
  pm_fabric_keys_free(&other);
  pm_fabric_keys_free(&keys);
}
