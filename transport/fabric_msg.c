/*
 * transport/fabric_msg.c - the control messages of the fabric transport:
 * the sealed envelope, protobuf packing and unpacking into a capped arena,
 * and the validation of every decoded field. Nothing here touches
 * libfabric, so that the fuzz target (tests/fuzz/fuzz_fabric_msg.c) drives
 * exactly the code that opens network input.
 *
 * Envelope: "PMF" 0x02 | sender address length (u8) | sender address |
 * 24-byte nonce | XChaCha20-Poly1305 ciphertext of the packed PageFrame
 * with its 16-byte tag. Fields are checked by the validator every backend
 * shares (pm__frame_validate in transport/frame.c) plus what only fabric
 * needs. The associated data is the envelope header (magic,
 * length, address) followed by the cluster id, so a message names its
 * sender and cluster unforgeably: a peer without the cluster key can make
 * no one serve or accept a page, and cannot redirect a page to another
 * address. The key is derived from the cluster key with crypto_kdf under
 * the context "pmfabric", so it is never the key of another subsystem.
 *
 * Page trailers (what answers a GET, written by RMA in front of the page)
 * are authenticated with a second key derived the same way (id 2): BLAKE2b
 * keyed over magic, length, request id and checksum. A peer without the
 * cluster key that learnt a landing buffer's RMA key cannot pass off its
 * own bytes: their checksum would have to come with a valid trailer.
 */
#include <endian.h>
#include <sodium.h>
#include <string.h>

#include "transport/fabric_int.h"

#define ENV_MAGIC_LEN 4
#define ENV_HEADER_MIN (ENV_MAGIC_LEN + 1)
#define NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_LEN crypto_aead_xchacha20poly1305_ietf_ABYTES
#define CLUSTER_ID_MAX 255

_Static_assert(sizeof(((pm_fabric_keys *)0)->nonce_prefix) +
                   sizeof(uint64_t) == NONCE_LEN,
               "nonce = prefix + sequence number");

/* Version 2: a successful GET is answered by the page's trailer alone. */
static const uint8_t env_magic[ENV_MAGIC_LEN] = {'P', 'M', 'F', 2};

/* Trailer: "PMT" 0x01 | length (u32 LE) | request id (u64 LE) | checksum
 * (16) | zeros to 48 | BLAKE2b-128 keyed with mac_key over bytes 0..47
 * and the cluster id. */
#define TRAILER_BODY 48
#define TRAILER_MAC 16
static const uint8_t trailer_magic[4] = {'P', 'M', 'T', 1};

/* ---- keys ----------------------------------------------------------------- */

int pm_fabric_keys_init(pm_fabric_keys *keys, const uint8_t cluster_key[32],
                        const char *cluster_id) {
  memset(keys, 0, sizeof *keys);
  if (!cluster_key)
    return pm__errf(PM_EINVAL, "fabric: no cluster key");
  const char *id = cluster_id ? cluster_id : "";
  size_t id_len = strlen(id);
  if (id_len > CLUSTER_ID_MAX)
    return pm__errf(PM_EINVAL, "fabric: cluster id longer than %d bytes",
                    CLUSTER_ID_MAX);
  if (sodium_init() < 0)
    return pm__errf(PM_EIO, "fabric: libsodium failed to initialise");
  keys->key = sodium_malloc(crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
  keys->mac_key = sodium_malloc(crypto_generichash_KEYBYTES);
  keys->cluster_id = pm__strdup(id);
  if (!keys->key || !keys->mac_key || !keys->cluster_id) {
    pm_fabric_keys_free(keys);
    return pm__errf(PM_ENOMEM, "fabric: cannot allocate the message key");
  }
  keys->cluster_id_len = id_len;
  crypto_kdf_derive_from_key(keys->key,
                             crypto_aead_xchacha20poly1305_ietf_KEYBYTES, 1,
                             "pmfabric", cluster_key);
  crypto_kdf_derive_from_key(keys->mac_key, crypto_generichash_KEYBYTES, 2,
                             "pmfabric", cluster_key);
  randombytes_buf(keys->nonce_prefix, sizeof keys->nonce_prefix);
  atomic_init(&keys->nonce_seq, 0);
  return 0;
}

void pm_fabric_keys_free(pm_fabric_keys *keys) {
  if (keys->key)
    sodium_free(keys->key); /* wipes it */
  if (keys->mac_key)
    sodium_free(keys->mac_key);
  free(keys->cluster_id);
  memset(keys, 0, sizeof *keys);
}

/* The associated data: the envelope header, then the cluster id. */
static size_t build_ad(const pm_fabric_keys *keys, const uint8_t *header,
                       size_t header_len, uint8_t *ad) {
  memcpy(ad, header, header_len);
  memcpy(ad + header_len, keys->cluster_id, keys->cluster_id_len);
  return header_len + keys->cluster_id_len;
}

/* ---- page trailers ------------------------------------------------------------- */

static void put_u32(uint8_t *at, uint32_t v) {
  v = htole32(v);
  memcpy(at, &v, sizeof v);
}

static void put_u64(uint8_t *at, uint64_t v) {
  v = htole64(v);
  memcpy(at, &v, sizeof v);
}

static uint32_t get_u32(const uint8_t *at) {
  uint32_t v;
  memcpy(&v, at, sizeof v);
  return le32toh(v);
}

static uint64_t get_u64(const uint8_t *at) {
  uint64_t v;
  memcpy(&v, at, sizeof v);
  return le64toh(v);
}

/* Over the body and the cluster id, as the envelope binds it too. */
static void trailer_mac(const pm_fabric_keys *keys, const uint8_t *body,
                        uint8_t mac[TRAILER_MAC]) {
  crypto_generichash_state state;
  crypto_generichash_init(&state, keys->mac_key, crypto_generichash_KEYBYTES,
                          TRAILER_MAC);
  crypto_generichash_update(&state, body, TRAILER_BODY);
  crypto_generichash_update(&state, (const uint8_t *)keys->cluster_id,
                            keys->cluster_id_len);
  crypto_generichash_final(&state, mac, TRAILER_MAC);
}

void pm_fabric_trailer_seal(const pm_fabric_keys *keys,
                            const pm_fabric_trailer *trailer, uint8_t *out) {
  memset(out, 0, PM_FABRIC_TRAILER_LEN);
  memcpy(out, trailer_magic, sizeof trailer_magic);
  put_u32(out + 4, trailer->length);
  put_u64(out + 8, trailer->request_id);
  memcpy(out + 16, trailer->checksum, PM_FABRIC_CHECKSUM_LEN);
  trailer_mac(keys, out, out + TRAILER_BODY);
}

int pm_fabric_trailer_open(const pm_fabric_keys *keys, const uint8_t *in,
                           uint32_t max_length, pm_fabric_trailer *out) {
  uint8_t mac[TRAILER_MAC];
  trailer_mac(keys, in, mac);
  if (memcmp(in, trailer_magic, sizeof trailer_magic) != 0 ||
      sodium_memcmp(mac, in + TRAILER_BODY, TRAILER_MAC) != 0)
    return pm__errf(PM_EAUTH, "fabric: page trailer does not authenticate");
  out->length = get_u32(in + 4);
  out->request_id = get_u64(in + 8);
  memcpy(out->checksum, in + 16, PM_FABRIC_CHECKSUM_LEN);
  if (out->length > max_length)
    return pm__errf(PM_EPROTO, "fabric: page trailer announces %u bytes "
                    "(room for %u)", out->length, max_length);
  return 0;
}

/* ---- sealing --------------------------------------------------------------- */

/* Write the envelope header and nonce; returns where the body goes. */
static uint8_t *write_header(pm_fabric_keys *keys, const uint8_t *sender,
                             size_t sender_len, uint8_t *out) {
  memcpy(out, env_magic, ENV_MAGIC_LEN);
  out[ENV_MAGIC_LEN] = (uint8_t)sender_len;
  memcpy(out + ENV_HEADER_MIN, sender, sender_len);
  uint8_t *nonce = out + ENV_HEADER_MIN + sender_len;
  memcpy(nonce, keys->nonce_prefix, sizeof keys->nonce_prefix);
  uint64_t seq = htole64(atomic_fetch_add(&keys->nonce_seq, 1));
  memcpy(nonce + sizeof keys->nonce_prefix, &seq, sizeof seq);
  return nonce + NONCE_LEN;
}

/* Encrypt the body (already in place) and return the message length. */
static ssize_t seal_in_place(const pm_fabric_keys *keys, uint8_t *out,
                             size_t sender_len, size_t plain_len) {
  size_t header_len = ENV_HEADER_MIN + sender_len;
  uint8_t *nonce = out + header_len;
  uint8_t *body = nonce + NONCE_LEN;
  uint8_t ad[ENV_HEADER_MIN + PM_FABRIC_RAWADDR_MAX + CLUSTER_ID_MAX];
  size_t ad_len = build_ad(keys, out, header_len, ad);
  unsigned long long sealed_len = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(body, &sealed_len, body,
                                             plain_len, ad, ad_len, NULL,
                                             nonce, keys->key);
  return (ssize_t)(header_len + NONCE_LEN + sealed_len);
}

static int check_room(size_t sender_len, size_t plain_len, size_t cap) {
  if (sender_len == 0 || sender_len > PM_FABRIC_RAWADDR_MAX)
    return pm__errf(PM_EINVAL, "fabric: bad sender address length %zu",
                    sender_len);
  size_t total = ENV_HEADER_MIN + sender_len + NONCE_LEN + plain_len +
                 TAG_LEN;
  if (total > cap)
    return pm__errf(PM_ETOOBIG,
                    "fabric: control message of %zu bytes exceeds %zu",
                    total, cap);
  return 0;
}

ssize_t pm_fabric_msg_seal(pm_fabric_keys *keys, const uint8_t *sender,
                           size_t sender_len, const Pm__PageFrame *frame,
                           uint8_t *out, size_t cap) {
  size_t plain_len = pm__page_frame__get_packed_size(frame);
  int rc = check_room(sender_len, plain_len, cap);
  if (rc)
    return rc;
  uint8_t *body = write_header(keys, sender, sender_len, out);
  pm__page_frame__pack(frame, body);
  return seal_in_place(keys, out, sender_len, plain_len);
}

ssize_t pm_fabric_msg_seal_bytes(pm_fabric_keys *keys,
                                 const uint8_t *sender, size_t sender_len,
                                 const uint8_t *plain, size_t plain_len,
                                 uint8_t *out, size_t cap) {
  int rc = check_room(sender_len, plain_len, cap);
  if (rc)
    return rc;
  uint8_t *body = write_header(keys, sender, sender_len, out);
  memmove(body, plain, plain_len);
  return seal_in_place(keys, out, sender_len, plain_len);
}

/* ---- the arena ------------------------------------------------------------- */

void pm_fabric_arena_init(pm_fabric_arena *arena, void *mem, size_t cap) {
  arena->mem = mem;
  arena->cap = cap;
  arena->used = 0;
}

static void *arena_alloc(pm_fabric_arena *arena, size_t size) {
  size_t start = (arena->used + 15) & ~(size_t)15;
  if (start > arena->cap || size > arena->cap - start)
    return NULL;
  arena->used = start + size;
  return arena->mem + start;
}

static void *pb_alloc(void *data, size_t size) {
  return arena_alloc(data, size);
}

static void pb_free(void *data, void *ptr) {
  (void)data;
  (void)ptr; /* the arena is reset per message */
}

/* ---- validation ------------------------------------------------------------- */

/* Beyond the checks every backend shares (pm__frame_validate): a GET must
 * name a landing buffer, a PUT must announce some bytes. */
static int check_fabric_fields(const Pm__PageFrame *frame) {
  if (frame->body_case == PM__PAGE_FRAME__BODY_GET &&
      frame->get->rma_length == 0)
    return pm__errf(PM_EPROTO, "fabric: PageGet without a landing buffer");
  if (frame->body_case == PM__PAGE_FRAME__BODY_PUT &&
      frame->put->length == 0)
    return pm__errf(PM_EPROTO, "fabric: PagePut of no bytes");
  if (frame->body_case == PM__PAGE_FRAME__BODY_RESPONSE &&
      frame->response->checksum.len != 0 &&
      frame->response->checksum.len != PM_FABRIC_CHECKSUM_LEN)
    return pm__errf(PM_EPROTO, "fabric: checksum of %zu bytes",
                    frame->response->checksum.len);
  return 0;
}

/* protobuf-c keeps unknown fields, even with the invalid field number 0,
 * and would send them on; refuse those. */
static bool bad_unknowns(const ProtobufCMessage *msg) {
  for (unsigned i = 0; msg && i < msg->n_unknown_fields; i++)
    if (msg->unknown_fields[i].tag == 0)
      return true;
  return false;
}

static bool frame_has_bad_unknowns(const Pm__PageFrame *frame) {
  const ProtobufCMessage *body = NULL, *page = NULL;
  if (frame->body_case == PM__PAGE_FRAME__BODY_GET && frame->get) {
    body = &frame->get->base;
    page = frame->get->page ? &frame->get->page->base : NULL;
  } else if (frame->body_case == PM__PAGE_FRAME__BODY_PUT && frame->put) {
    body = &frame->put->base;
    page = frame->put->page ? &frame->put->page->base : NULL;
  } else if (frame->body_case == PM__PAGE_FRAME__BODY_RESPONSE) {
    body = frame->response ? &frame->response->base : NULL;
  }
  return bad_unknowns(&frame->base) || bad_unknowns(body) ||
         bad_unknowns(page);
}

static int check_frame(const Pm__PageFrame *frame, uint32_t max_page) {
  int rc = pm__frame_validate(frame, max_page);
  if (rc)
    return pm__frame_err_prefix(rc, "fabric");
  if (frame_has_bad_unknowns(frame))
    return pm__errf(PM_EPROTO, "fabric: field number 0 in a message");
  return check_fabric_fields(frame);
}

/* ---- opening ------------------------------------------------------------------ */

/* Parse the envelope header; returns its length or 0 if malformed. */
static size_t parse_header(const uint8_t *wire, size_t len) {
  if (len < ENV_HEADER_MIN || memcmp(wire, env_magic, ENV_MAGIC_LEN) != 0)
    return 0;
  size_t addr_len = wire[ENV_MAGIC_LEN];
  if (addr_len == 0 || addr_len > PM_FABRIC_RAWADDR_MAX)
    return 0;
  size_t header_len = ENV_HEADER_MIN + addr_len;
  if (len < header_len + NONCE_LEN + TAG_LEN)
    return 0;
  return header_len;
}

/* Authenticate and decrypt into the arena; returns the plaintext or NULL. */
static uint8_t *decrypt(const pm_fabric_keys *keys, const uint8_t *wire,
                        size_t len, size_t header_len,
                        pm_fabric_arena *arena, size_t *plain_len) {
  const uint8_t *nonce = wire + header_len;
  const uint8_t *body = nonce + NONCE_LEN;
  size_t body_len = len - header_len - NONCE_LEN;
  uint8_t *plain = arena_alloc(arena, body_len - TAG_LEN + 1);
  if (!plain)
    return NULL;
  uint8_t ad[ENV_HEADER_MIN + PM_FABRIC_RAWADDR_MAX + CLUSTER_ID_MAX];
  size_t ad_len = build_ad(keys, wire, header_len, ad);
  unsigned long long out_len = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &out_len, NULL, body,
                                                 body_len, ad, ad_len, nonce,
                                                 keys->key) != 0)
    return NULL;
  *plain_len = (size_t)out_len;
  return plain;
}

int pm_fabric_msg_open(const pm_fabric_keys *keys, const uint8_t *wire,
                       size_t len, uint32_t max_page_size,
                       pm_fabric_arena *arena, pm_fabric_msg *out) {
  memset(out, 0, sizeof *out);
  arena->used = 0;
  if (len > PM_FABRIC_MSG_MAX)
    return pm__errf(PM_EAUTH, "fabric: message of %zu bytes over the cap",
                    len);
  size_t header_len = parse_header(wire, len);
  if (!header_len)
    return pm__errf(PM_EAUTH, "fabric: malformed envelope (%zu bytes)", len);
  size_t sender_len = wire[ENV_MAGIC_LEN];
  uint8_t *sender = arena_alloc(arena, sender_len);
  size_t plain_len = 0;
  uint8_t *plain = sender ? decrypt(keys, wire, len, header_len, arena,
                                    &plain_len)
                          : NULL;
  if (!plain)
    return pm__errf(PM_EAUTH, "fabric: message does not authenticate");
  memcpy(sender, wire + ENV_HEADER_MIN, sender_len);
  ProtobufCAllocator alloc = {pb_alloc, pb_free, arena};
  Pm__PageFrame *frame = pm__page_frame__unpack(&alloc, plain_len, plain);
  if (!frame)
    return pm__errf(PM_EPROTO, "fabric: undecodable control message");
  int rc = check_frame(frame, max_page_size);
  if (rc)
    return rc;
  out->sender = sender;
  out->sender_len = sender_len;
  out->frame = frame;
  return 0;
}

/* ---- conversions ------------------------------------------------------------ */

void pm_fabric_req_to_pb(const pm_page_request *req, Pm__PageRequest *pb) {
  pm__page_msg_request_out(req, pb);
}

void pm_fabric_req_from_pb(const Pm__PageRequest *pb, pm_page_request *req) {
  memset(req, 0, sizeof *req);
  memcpy(req->page_id, pb->page_id.data, sizeof req->page_id);
  req->uri = pb->uri;
  req->version = pb->version ? pb->version : "";
  req->object_size = pb->object_size;
  req->mtime_ns = pb->mtime_ns;
  req->page_index = pb->page_index;
  req->page_size = pb->page_size;
  req->flags = pb->flags; /* only known flags pass pm__frame_validate */
}

int pm_fabric_hex_encode(const uint8_t *raw, size_t len, char *out,
                         size_t out_size) {
  static const char digits[] = "0123456789abcdef";
  if (out_size < 2 * len + 1)
    return pm__errf(PM_ETOOBIG, "fabric: address needs %zu bytes",
                    2 * len + 1);
  for (size_t i = 0; i < len; i++) {
    out[2 * i] = digits[raw[i] >> 4];
    out[2 * i + 1] = digits[raw[i] & 15];
  }
  out[2 * len] = '\0';
  return 0;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

ssize_t pm_fabric_hex_decode(const char *hex, uint8_t *raw, size_t cap) {
  size_t len = strlen(hex);
  if (len == 0 || len % 2 || len / 2 > cap)
    return pm__errf(PM_EINVAL, "fabric: address \"%.64s\" is not %zu-byte hex",
                    hex, cap);
  for (size_t i = 0; i < len / 2; i++) {
    int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return pm__errf(PM_EINVAL, "fabric: address \"%.64s\" is not hex", hex);
    raw[i] = (uint8_t)(hi << 4 | lo);
  }
  return (ssize_t)(len / 2);
}
