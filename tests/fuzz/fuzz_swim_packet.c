/*
 * tests/fuzz/fuzz_swim_packet.c - libFuzzer target for everything a peer
 * does with bytes from the network in membership/: opening the seal,
 * decoding and validating a packet or a push-pull frame, and handling it
 * in a small core (three known members) that is then ticked for a while.
 * The first input byte picks the path:
 *   0: the rest is a sealed packet, given as is to a keyed core;
 *   1: the rest is a payload, sealed here with the fixed key, as a packet;
 *   2: the same as a TCP frame;
 *   3: the rest goes to a core without a key (unsealed packets).
 * Seeds in tests/fuzz/corpus/swim_packet/ are written by running the target
 * with PM_FUZZ_WRITE_CORPUS=<dir> set.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "membership/swim_impl.h"

static const uint8_t fixed_key[PM_SWIM_KEY_LEN] =
    "pagemesh-fuzz-key-0123456789abc";
static pm__swim_keyring *ring;

static void ignore_send(void *arg, const char *addr, const uint8_t *bytes,
                        size_t length, bool is_stream) {
  (void)arg, (void)addr, (void)bytes, (void)length, (void)is_stream;
}

static void member(pm__member_info *m, uint8_t fill, const char *addr) {
  memset(m, 0, sizeof *m);
  memset(m->id.bytes, fill, PM_SWIM_ID_LEN);
  m->boot_epoch = 7;
  snprintf(m->addr, sizeof m->addr, "%s", addr);
  snprintf(m->meta.zone, sizeof m->meta.zone, "z");
  m->meta.capacity = 100;
}

static pm__swim *small_core(const pm__swim_keyring *keys) {
  pm__swim_config cfg;
  pm__swim_config_init(&cfg);
  cfg.keyring = keys;
  cfg.send_fn = ignore_send;
  cfg.rng_seed = 1;
  pm__member_info self, others[3];
  member(&self, 0x33, "10.0.0.3:7946");
  pm__swim *core = NULL;
  if (pm__swim_create(&cfg, &self, 1000000000ull, &core) != 0)
    abort();
  member(&others[0], 0x34, "10.0.0.4:7946");
  member(&others[1], 0x35, "10.0.0.5:7946");
  member(&others[2], 0x36, "10.0.0.6:7946");
  others[2].state = PM_MEMBER_SUSPECT;
  pm__swim_merge(core, 1000000000ull, others, 3, true);
  return core;
}

static size_t seal_payload(bool stream, const uint8_t *payload, size_t n,
                           uint8_t *out) {
  pm__member_id sender;
  memset(sender.bytes, 0x34, PM_SWIM_ID_LEN);
  memcpy(out + PM_SEAL_PREFIX, payload, n);
  return pm__seal(ring, stream, &sender, out, n);
}

static void run(pm__swim *core) {
  uint64_t now = 1000000000ull;
  for (int i = 0; i < 40; i++) {
    now += 250000000ull;
    pm__swim_tick(core, now);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > PM_SWIM_STREAM_MAX)
    return 0;
  uint8_t mode = data[0] % 4;
  const uint8_t *rest = data + 1;
  size_t n = size - 1;
  pm__swim *core = small_core(mode == 3 ? NULL : ring);
  uint64_t now = 1000000000ull;
  if (mode == 0) {
    pm__swim_handle_packet(core, now, "10.0.0.4:7946", rest, n);
  } else if (mode == 1 || mode == 2) {
    uint8_t *sealed = malloc(n + PM_SEAL_PREFIX + PM_SEAL_TAG_LEN);
    size_t len = seal_payload(mode == 2, rest, n, sealed);
    if (mode == 1)
      pm__swim_handle_packet(core, now, "10.0.0.4:7946", sealed, len);
    else
      pm__swim_handle_stream(core, now, "10.0.0.4:7946", sealed, len);
    free(sealed);
  } else {
    pm__swim_handle_packet(core, now, "10.0.0.4:7946", rest, n);
  }
  run(core);
  pm__swim_destroy(core);
  return 0;
}

/* ---- seeds --------------------------------------------------------------- */

static void write_seed(const char *dir, const char *name, uint8_t mode,
                       const uint8_t *bytes, size_t n) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f)
    return;
  fputc(mode, f);
  fwrite(bytes, 1, n, f);
  fclose(f);
}

static size_t seed_payload(uint32_t kind, bool with_updates, uint8_t *out) {
  uint8_t target[PM_SWIM_ID_LEN];
  memset(target, 0x33, sizeof target);
  Pmswim__Packet p = PMSWIM__PACKET__INIT;
  p.kind = kind;
  p.seq = 77;
  if (kind == PM_WIRE_KIND_PING || kind == PM_WIRE_KIND_PING_REQ) {
    p.target_id.data = target;
    p.target_id.len = sizeof target;
    p.target_epoch = 7;
  }
  if (kind == PM_WIRE_KIND_PING_REQ) {
    p.target_addr = "10.0.0.5:7946";
    p.want_nack = 1;
  }
  if (kind == PM_WIRE_KIND_PUSH_PULL) {
    p.sender_addr = "10.0.0.4:7946";
    p.want_reply = 1;
  }
  size_t n = pmswim__packet__pack(&p, out);
  if (!with_updates)
    return n;
  pm__member_info m;
  member(&m, 0x40, "10.0.0.64:7946");
  for (int state = PM_MEMBER_ALIVE; state <= PM_MEMBER_LEFT; state++) {
    uint8_t one[1024];
    pm__update u;
    m.state = (pm__member_state)state;
    pm__update_from_info(&u, &m);
    u.from = target;
    size_t len = pm__wire_encode_member(&u, one, sizeof one);
    n += pm__wire_append_update(out + n, 1300 - n, one, len);
  }
  return n;
}

static void write_corpus(const char *dir) {
  static const struct {
    const char *name;
    uint32_t kind;
    uint8_t mode;
  } seeds[] = {
      {"sealed_ping", PM_WIRE_KIND_PING, 0},
      {"sealed_ack", PM_WIRE_KIND_ACK, 0},
      {"sealed_ping_req", PM_WIRE_KIND_PING_REQ, 0},
      {"sealed_gossip", PM_WIRE_KIND_GOSSIP, 0},
      {"payload_ping", PM_WIRE_KIND_PING, 1},
      {"payload_nack", PM_WIRE_KIND_NACK, 1},
      {"payload_gossip", PM_WIRE_KIND_GOSSIP, 1},
      {"payload_push_pull", PM_WIRE_KIND_PUSH_PULL, 2},
  };
  for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
    uint8_t payload[1400], sealed[1500];
    size_t n = seed_payload(seeds[i].kind, true, payload);
    if (seeds[i].mode == 0) {
      size_t len = seal_payload(false, payload, n, sealed);
      write_seed(dir, seeds[i].name, 0, sealed, len);
    } else {
      write_seed(dir, seeds[i].name, seeds[i].mode, payload, n);
    }
  }
  uint8_t plain[1500], payload[1400];
  size_t n = seed_payload(PM_WIRE_KIND_PING, true, payload);
  pm__member_id sender;
  memset(sender.bytes, 0x34, PM_SWIM_ID_LEN);
  memcpy(plain + PM_PLAIN_PREFIX, payload, n);
  size_t len = pm__seal(NULL, false, &sender, plain, n);
  write_seed(dir, "plain_ping", 3, plain, len);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  if (pm__swim_keyring_new(fixed_key, "fuzz", &ring) != 0)
    abort();
  const char *dir = getenv("PM_FUZZ_WRITE_CORPUS");
  if (dir) {
    write_corpus(dir);
    exit(0);
  }
  return 0;
}
