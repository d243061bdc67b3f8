/*
 * tests/membership/test_wire.c - the codec and the seal: round trips,
 * every way a packet can fail authentication, field validation, the size
 * caps and the decode arena cap, and garbage of every shape fed both to
 * the decoder and to a core, which must count it and carry on.
 */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "membership/swim_impl.h"

TestSuite(wire, .timeout = 120);

static const uint8_t key_a[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
static const uint8_t key_b[32] = {9, 8, 7, 6, 5, 4, 3, 2, 1};

static pm__swim_keyring *ring(const uint8_t *key, const char *cluster) {
  pm__swim_keyring *r = NULL;
  cr_assert_eq(pm__swim_keyring_new(key, cluster, &r), 0);
  return r;
}

static pm__member_id some_id(uint8_t fill) {
  pm__member_id id;
  memset(id.bytes, fill, sizeof id.bytes);
  return id;
}

/* Seal payload as sender under r into out; returns the sealed length. */
static size_t seal(const pm__swim_keyring *r, bool stream, uint8_t sender,
                   const void *payload, size_t length, uint8_t *out) {
  pm__member_id id = some_id(sender);
  memcpy(out + pm__seal_prefix(r), payload, length);
  return pm__seal(r, stream, &id, out, length);
}

static int open_it(const pm__swim_keyring *r, bool stream, const uint8_t *in,
                   size_t length) {
  uint8_t out[2048];
  const uint8_t *payload;
  size_t payload_len;
  pm__member_id sender;
  return pm__open(r, stream, in, length, out, &payload, &payload_len, &sender);
}

/* ---- sealing ------------------------------------------------------------- */

Test(wire, seal_round_trip) {
  pm__swim_keyring *r = ring(key_a, "prod");
  uint8_t buf[256], out[256];
  size_t n = seal(r, false, 7, "hello", 5, buf);
  cr_assert_eq(n, PM_SEAL_PREFIX + 5 + PM_SEAL_TAG_LEN);
  const uint8_t *payload;
  size_t payload_len;
  pm__member_id sender;
  cr_assert_eq(pm__open(r, false, buf, n, out, &payload, &payload_len, &sender),
               0);
  cr_assert_eq(payload_len, 5);
  cr_assert_eq(memcmp(payload, "hello", 5), 0);
  cr_assert_eq(sender.bytes[0], 7);
  pm__swim_keyring_free(r);
}

Test(wire, every_forgery_fails_authentication) {
  pm__swim_keyring *a = ring(key_a, "prod");
  pm__swim_keyring *b = ring(key_b, "prod");
  pm__swim_keyring *other_cluster = ring(key_a, "staging");
  uint8_t buf[256];
  size_t n = seal(a, false, 7, "hello", 5, buf);
  cr_assert_eq(open_it(b, false, buf, n), PM_EAUTH);
  cr_assert_eq(open_it(other_cluster, false, buf, n), PM_EAUTH);
  cr_assert_eq(open_it(a, true, buf, n), PM_EAUTH);     /* packet as frame */
  cr_assert_eq(open_it(NULL, false, buf, n), PM_EAUTH); /* no key here */
  for (size_t i = 1; i < n; i++) { /* any flipped byte after the kind */
    buf[i] ^= 0x20;
    cr_assert_eq(open_it(a, false, buf, n), PM_EAUTH, "byte %zu", i);
    buf[i] ^= 0x20;
  }
  cr_assert_eq(open_it(a, false, buf, n), 0);
  cr_assert_eq(open_it(a, false, buf, PM_SEAL_PREFIX + 15), PM_EPROTO);
  buf[0] = 0x7e;
  cr_assert_eq(open_it(a, false, buf, n), PM_EPROTO);
  /* An unsealed packet never passes where a key is expected. */
  uint8_t plain[64];
  size_t pn = seal(NULL, false, 7, "hello", 5, plain);
  cr_assert_eq(open_it(a, false, plain, pn), PM_EAUTH);
  cr_assert_eq(open_it(NULL, false, plain, pn), 0);
  pm__swim_keyring_free(a);
  pm__swim_keyring_free(b);
  pm__swim_keyring_free(other_cluster);
}

Test(wire, every_packet_has_a_fresh_nonce) {
  pm__swim_keyring *r = ring(key_a, "prod");
  uint8_t one[128], two[128];
  size_t n = seal(r, false, 1, "same", 4, one);
  seal(r, false, 1, "same", 4, two);
  cr_assert_neq(memcmp(one + 17, two + 17, PM_SEAL_NONCE_LEN), 0);
  cr_assert_neq(
      memcmp(one + PM_SEAL_PREFIX, two + PM_SEAL_PREFIX, n - PM_SEAL_PREFIX),
      0);
  pm__swim_keyring_free(r);
}

/* ---- encoding and validation --------------------------------------------- */

static size_t member_bytes(const Pmswim__Member *m, uint8_t *out) {
  return pmswim__member__pack(m, out);
}

/* A packet of kind with one update m, packed into out. */
static size_t packet_with(uint32_t kind, const Pmswim__Member *m, uint8_t *out,
                          size_t cap) {
  Pmswim__Packet p = PMSWIM__PACKET__INIT;
  p.kind = kind;
  uint8_t target[16] = {3};
  if (kind == PM_WIRE_KIND_PING) {
    p.target_id.data = target;
    p.target_id.len = 16;
  }
  size_t n = pmswim__packet__pack(&p, out);
  if (m) {
    uint8_t one[1024];
    n += pm__wire_append_update(out + n, cap - n, one, member_bytes(m, one));
  }
  return n;
}

static int decode(const uint8_t *buf, size_t n, bool stream) {
  Pmswim__Packet *p = NULL;
  int rc = pm__wire_decode(buf, n, stream, &p);
  if (rc == 0)
    pm__wire_release();
  return rc;
}

static Pmswim__Member good_member(uint8_t *id) {
  Pmswim__Member m = PMSWIM__MEMBER__INIT;
  memset(id, 5, 16);
  m.id.data = id;
  m.id.len = 16;
  m.boot_epoch = 42;
  m.incarnation = 3;
  m.addr = "10.0.0.1:7946";
  m.tcp_addr = "10.0.0.1:9000";
  m.zone = "rack-7";
  m.capacity = 1ull << 40;
  return m;
}

Test(wire, member_round_trip_through_a_packet) {
  uint8_t fabric[200], from[16], buf[1400], enc[1024];
  memset(fabric, 0xfa, sizeof fabric);
  memset(from, 0x22, sizeof from);
  pm__member_info info;
  memset(&info, 0, sizeof info);
  memset(info.id.bytes, 0x11, 16);
  info.boot_epoch = 99;
  info.incarnation = 4;
  strcpy(info.addr, "10.1.2.3:7946");
  strcpy(info.meta.tcp_addr, "10.1.2.3:9000");
  strcpy(info.meta.zone, "eu-1a");
  memcpy(info.meta.fabric_addr, fabric, sizeof fabric);
  info.meta.fabric_len = sizeof fabric;
  info.meta.capacity = 123456789;
  pm__update u;
  pm__update_from_info(&u, &info);
  u.from = from;
  size_t n = pm__wire_encode_member(&u, enc, sizeof enc);
  size_t len = packet_with(PM_WIRE_KIND_GOSSIP, NULL, buf, sizeof buf);
  len += pm__wire_append_update(buf + len, sizeof buf - len, enc, n);
  len += pm__wire_append_update(buf + len, sizeof buf - len, enc, n);
  Pmswim__Packet *p;
  cr_assert_eq(pm__wire_decode(buf, len, false, &p), 0);
  cr_assert_eq(p->n_updates, 2);
  pm__update back;
  pm__wire_member_to_update(p->updates[1], &back);
  cr_assert_eq(memcmp(back.id, info.id.bytes, 16), 0);
  cr_assert_eq(back.boot_epoch, 99);
  cr_assert_eq(back.incarnation, 4);
  cr_assert_str_eq(back.addr, "10.1.2.3:7946");
  cr_assert_str_eq(back.tcp_addr, "10.1.2.3:9000");
  cr_assert_str_eq(back.zone, "eu-1a");
  cr_assert_eq(back.fabric_len, 200);
  cr_assert_eq(memcmp(back.fabric, fabric, 200), 0);
  cr_assert_eq(back.capacity, 123456789);
  cr_assert_eq(memcmp(back.from, from, 16), 0);
  pm__wire_release();
}

Test(wire, invalid_fields_are_refused) {
  uint8_t id[16], buf[2048], fabric[257] = {0};
  Pmswim__Member m = good_member(id);
  cr_assert_eq(decode(buf, packet_with(0, &m, buf, sizeof buf), false), 0);
  char long_zone[80];
  memset(long_zone, 'z', sizeof long_zone - 1);
  long_zone[79] = '\0';
  static const char *const cases[] = {
      "id of 15 bytes", "state 9",    "space in addr",   "alive, no addr",
      "fabric 257",     "zone of 79", "from of 3 bytes", "control char"};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    Pmswim__Member bad = good_member(id);
    switch (i) {
    case 0:
      bad.id.len = 15;
      break;
    case 1:
      bad.state = 9;
      break;
    case 2:
      bad.addr = "10.0.0.1 :7946";
      break;
    case 3:
      bad.addr = "";
      break;
    case 4:
      bad.fabric_addr.data = fabric;
      bad.fabric_addr.len = 257;
      break;
    case 5:
      bad.zone = long_zone;
      break;
    case 6:
      bad.from.data = id;
      bad.from.len = 3;
      break;
    case 7:
      bad.tcp_addr = "10.0.0.1:\x01";
      break;
    }
    size_t n = packet_with(0, &bad, buf, sizeof buf);
    cr_assert_eq(decode(buf, n, false), PM_EPROTO, "%s", cases[i]);
  }
  /* Suspect and Dead records may omit the address. */
  Pmswim__Member dead = good_member(id);
  dead.state = PM_MEMBER_DEAD;
  dead.addr = "";
  cr_assert_eq(decode(buf, packet_with(0, &dead, buf, sizeof buf), false), 0);
}

Test(wire, kinds_must_fit_their_channel) {
  uint8_t buf[256];
  Pmswim__Packet p = PMSWIM__PACKET__INIT;
  p.kind = PM_WIRE_KIND_PING; /* no target */
  cr_assert_eq(decode(buf, pmswim__packet__pack(&p, buf), false), PM_EPROTO);
  p.kind = 17;
  cr_assert_eq(decode(buf, pmswim__packet__pack(&p, buf), false), PM_EPROTO);
  p.kind = PM_WIRE_KIND_PUSH_PULL;
  p.sender_addr = "10.0.0.1:7946";
  size_t n = pmswim__packet__pack(&p, buf);
  cr_assert_eq(decode(buf, n, false), PM_EPROTO); /* not over UDP */
  cr_assert_eq(decode(buf, n, true), 0);
  p.want_reply = true;
  p.sender_addr = "";
  cr_assert_eq(decode(buf, pmswim__packet__pack(&p, buf), true), PM_EPROTO);
  p.kind = PM_WIRE_KIND_ACK;
  cr_assert_eq(decode(buf, pmswim__packet__pack(&p, buf), true), PM_EPROTO);
  uint8_t big[PM_SWIM_PACKET_MAX + 1] = {0};
  cr_assert_eq(decode(big, sizeof big, false), PM_ETOOBIG);
}

Test(wire, a_frame_of_empty_members_hits_the_arena_cap) {
  /* 1 MiB of empty repeated fields asks protobuf-c for ~60 MiB. */
  size_t n = PM_SWIM_STREAM_MAX;
  uint8_t *buf = malloc(n);
  for (size_t i = 0; i + 1 < n; i += 2) {
    buf[i] = (PM_WIRE_UPDATES_FIELD << 3) | 2;
    buf[i + 1] = 0;
  }
  cr_assert_eq(decode(buf, n, true), PM_EPROTO);
  free(buf);
}

Test(wire, random_garbage_never_decodes_into_trouble) {
  uint8_t buf[PM_SWIM_PACKET_MAX];
  uint8_t id[16];
  Pmswim__Member m = good_member(id);
  size_t valid = packet_with(PM_WIRE_KIND_PING, &m, buf, sizeof buf);
  uint8_t copy[PM_SWIM_PACKET_MAX];
  for (int round = 0; round < 20000; round++) {
    size_t n;
    if (round % 2) { /* a valid packet with a few bytes changed */
      memcpy(copy, buf, valid);
      for (int k = 0; k < 1 + round % 4; k++)
        copy[randombytes_uniform((uint32_t)valid)] =
            (uint8_t)randombytes_uniform(256);
      n = valid;
    } else {
      n = randombytes_uniform(sizeof copy + 1);
      randombytes_buf(copy, n);
    }
    int rc = decode(copy, n, round % 3 == 0);
    cr_assert(rc == 0 || rc == PM_EPROTO, "rc %d", rc);
  }
}

/* ---- a core facing bad input --------------------------------------------- */

static int sent;
static void count_send(void *arg, const char *addr, const uint8_t *b, size_t n,
                       bool stream) {
  (void)arg, (void)addr, (void)b, (void)n, (void)stream;
  sent++;
}

static pm__swim *core_with(const pm__swim_keyring *r) {
  pm__swim_config cfg;
  pm__swim_config_init(&cfg);
  cfg.keyring = r;
  cfg.send_fn = count_send;
  pm__member_info self;
  memset(&self, 0, sizeof self);
  self.id = some_id(3);
  self.boot_epoch = 1;
  strcpy(self.addr, "127.0.0.1:7946");
  pm__swim *core = NULL;
  cr_assert_eq(pm__swim_create(&cfg, &self, 1000, &core), 0);
  return core;
}

Test(wire, a_core_counts_and_drops_bad_packets) {
  pm__swim_keyring *a = ring(key_a, "prod"), *b = ring(key_b, "prod");
  pm__swim *core = core_with(a);
  uint8_t payload[256], buf[512];
  Pmswim__Packet p = PMSWIM__PACKET__INIT;
  p.kind = PM_WIRE_KIND_PING;
  uint8_t target[16];
  memset(target, 3, 16);
  p.target_id.data = target;
  p.target_id.len = 16;
  size_t plen = pmswim__packet__pack(&p, payload);
  const char *from = "127.0.0.2:7946";
  sent = 0;
  size_t n = seal(a, false, 9, payload, plen, buf);
  cr_assert_eq(pm__swim_handle_packet(core, 2000, from, buf, n), 0);
  cr_assert_eq(sent, 1, "a valid ping is acked");
  n = seal(b, false, 9, payload, plen, buf);
  cr_assert_eq(pm__swim_handle_packet(core, 2000, from, buf, n), PM_EAUTH);
  n = seal(a, false, 9, "\xff\xff\xff", 3, buf);
  cr_assert_eq(pm__swim_handle_packet(core, 2000, from, buf, n), PM_EPROTO);
  uint8_t big[PM_SWIM_PACKET_MAX + 1] = {0};
  cr_assert_eq(pm__swim_handle_packet(core, 2000, from, big, sizeof big),
               PM_ETOOBIG);
  n = seal(a, false, 9, payload, plen, buf); /* a ping as a frame */
  cr_assert_eq(pm__swim_handle_stream(core, 2000, from, buf, n), PM_EAUTH);
  pm__swim_stats st;
  pm__swim_get_stats(core, &st);
  cr_assert_eq(st.auth_failures, 2);
  cr_assert_eq(st.decode_failures, 2);
  cr_assert_eq(st.packets_in, 4);
  cr_assert_eq(sent, 1);
  pm__swim_destroy(core);
  pm__swim_keyring_free(a);
  pm__swim_keyring_free(b);
}

Test(wire, a_core_survives_random_sealed_and_unsealed_input) {
  pm__swim_keyring *a = ring(key_a, "prod");
  pm__swim *core = core_with(a);
  uint8_t payload[PM_SWIM_PACKET_MAX], buf[PM_SWIM_PACKET_MAX + 64];
  for (int round = 0; round < 5000; round++) {
    size_t n = randombytes_uniform(PM_SWIM_PACKET_MAX - 60);
    randombytes_buf(payload, n);
    size_t sealed = seal(a, round % 2, 9, payload, n, buf);
    if (round % 2)
      pm__swim_handle_stream(core, 5000, "127.0.0.9:1", buf, sealed);
    else
      pm__swim_handle_packet(core, 5000, "127.0.0.9:1", buf, sealed);
    randombytes_buf(buf, n);
    pm__swim_handle_packet(core, 5000, "127.0.0.9:1", buf, n);
  }
  pm__swim_stats st;
  pm__swim_get_stats(core, &st);
  cr_assert_geq(st.auth_failures + st.decode_failures, 9000);
  cr_assert_eq(pm__swim_count(core, PM_MEMBER_ALIVE), 1);
  pm__swim_destroy(core);
  pm__swim_keyring_free(a);
}
