/*
 * transport/fabric_int.h - the private state of the libfabric page
 * transport and the functions its files share. The backend is split by
 * concern: fabric.c (the methods table, init and fini), fabric_ep.c
 * (fi_getinfo, domain, endpoint, completion queue, address vector, memory
 * registration, the peer address cache), fabric_msg.c (sealing, opening and
 * validating control messages; no libfabric), fabric_progress.c (the
 * progress thread, receive buffers, sending control messages),
 * fabric_slots.c (request slots and their landing buffers),
 * fabric_client.c (get_page and put_page) and fabric_server.c (the server
 * queue, its workers and their registered page buffers).
 *
 * Locks, outermost first: slot_lock, then peer_lock or send_lock or
 * queue_lock or sbuf_lock (never two of those at once). No lock is held
 * across a call into the core's pm_page_server callbacks.
 */
#ifndef PM_FABRIC_INT_H
#define PM_FABRIC_INT_H

#include <pthread.h>
#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/core_int.h"
#include "page.pb-c.h"
#include "pagemesh/transport.h"
#include "transport/frame.h"
#include "transport/transport_int.h"

/* ---- limits --------------------------------------------------------------- */

/* A sealed control message on the wire (receive buffers have this size). */
#define PM_FABRIC_MSG_MAX 8192
/* A provider's raw endpoint address (sockaddr_in6 is 28, shm names ~40). */
#define PM_FABRIC_RAWADDR_MAX 120
/* As every backend checks them (transport/frame.h). */
#define PM_FABRIC_URI_MAX PM_FRAME_URI_MAX
#define PM_FABRIC_VERSION_MAX PM_FRAME_VERSION_MAX
#define PM_FABRIC_DETAIL_MAX (PM_FRAME_DETAIL_MAX + 1)
#define PM_FABRIC_CHECKSUM_LEN 16
/* The trailer written in front of a page (see pm_fabric_trailer_seal). */
#define PM_FABRIC_TRAILER_LEN 64
/* Pre-posted receives and send buffers per transport. */
#define PM_FABRIC_RECV_COUNT 64
#define PM_FABRIC_SEND_COUNT 64
/* Request slots: the low bits of a request id name the slot, the high bits
 * its generation. At most 2^SLOT_BITS slots, fewer when pages are large. */
#define PM_FABRIC_SLOT_BITS 8
#define PM_FABRIC_SLOTS_MAX 64u
#define PM_FABRIC_SLOTS_MIN 4u
/* Bytes of registered page buffers per transport (landing + server). */
#define PM_FABRIC_BUFFER_BUDGET (256u << 20)
/* The server's own bound on one request (it does not know the client's
 * deadline): queueing, waiting for a buffer, posting the RMA write. */
#define PM_FABRIC_SERVE_TIMEOUT_NS (5ull * 1000000000ull)
/* A landing buffer of a request that died with no sign of its RMA write is
 * kept out of use this long, then re-registered under a new key. */
#define PM_FABRIC_QUARANTINE_NS (5ull * 1000000000ull)
/* Requests queued for the server workers. */
#define PM_FABRIC_QUEUE_MAX 64u
/* Distinct peer addresses kept in the address vector. */
#define PM_FABRIC_PEERS_MAX 4096u
/* With that many known, the one unused longest makes room for a new one
 * if it has been unused this long (far beyond any request's deadline):
 * restarted peers come back with new addresses. */
#define PM_FABRIC_PEER_IDLE_NS (120ull * 1000000000ull)
/* The decode arena of one control message. */
#define PM_FABRIC_ARENA_SIZE (2 * PM_FABRIC_MSG_MAX + 4096)
/* The progress thread's blocking wait when nothing is in flight (ms). */
#define PM_FABRIC_IDLE_WAIT_MS 50

/* ---- control messages (fabric_msg.c) ---------------------------------------- */

/* The key material of the control plane: a subkey derived from the cluster
 * key (sodium_malloc'd) and the cluster id, both bound into every message.
 * A message's 24-byte nonce is nonce_prefix (16 random bytes drawn when the
 * keys are made) and the next value of nonce_seq (8 bytes): unique for
 * these keys without a system call per message. */
typedef struct pm_fabric_keys {
  uint8_t *key; /* crypto_aead_xchacha20poly1305_ietf_KEYBYTES */
  uint8_t *mac_key; /* crypto_generichash_KEYBYTES: page trailers */
  char *cluster_id;
  size_t cluster_id_len;
  uint8_t nonce_prefix[16];
  _Atomic uint64_t nonce_seq;
} pm_fabric_keys;

/* A bump allocator for protobuf-c unpacking, reset per message and capped:
 * a message that needs more memory than this fails to decode. */
typedef struct pm_fabric_arena {
  uint8_t *mem;
  size_t used, cap;
} pm_fabric_arena;

/* An opened control message. Everything points into the arena. */
typedef struct pm_fabric_msg {
  const uint8_t *sender; /* the sender's raw fabric address */
  size_t sender_len;
  Pm__PageFrame *frame;  /* validated: see pm_fabric_msg_open */
} pm_fabric_msg;

int pm_fabric_keys_init(pm_fabric_keys *keys, const uint8_t cluster_key[32],
                        const char *cluster_id);
void pm_fabric_keys_free(pm_fabric_keys *keys);

/* Pack `frame`, seal it under the keys with `sender` (our raw address) in
 * the associated data and write the message into out (capacity cap).
 * Returns the message length or PM_ETOOBIG / PM_EINVAL with detail. */
ssize_t pm_fabric_msg_seal(pm_fabric_keys *keys, const uint8_t *sender,
                           size_t sender_len, const Pm__PageFrame *frame,
                           uint8_t *out, size_t cap);

/* Seal already packed bytes (tests and the fuzz target use it to reach
 * the decoder with authentic messages). */
ssize_t pm_fabric_msg_seal_bytes(pm_fabric_keys *keys,
                                 const uint8_t *sender, size_t sender_len,
                                 const uint8_t *plain, size_t plain_len,
                                 uint8_t *out, size_t cap);

/* Open a received message: check the envelope, authenticate and decrypt
 * it, unpack the frame into the arena (reset first) and validate every
 * field against the limits above and max_page_size. Network input: never
 * trusts a length. Returns 0, PM_EAUTH (envelope or tag does not verify:
 * count an auth failure) or PM_EPROTO (authentic but malformed: count a
 * decode failure), with detail. */
int pm_fabric_msg_open(const pm_fabric_keys *keys, const uint8_t *wire,
                       size_t len, uint32_t max_page_size,
                       pm_fabric_arena *arena, pm_fabric_msg *out);

void pm_fabric_arena_init(pm_fabric_arena *arena, void *mem, size_t cap);

/* The trailer of a written page: the server RMA-writes it together with
 * the page ([trailer | page] in one write), so a successful GET needs no
 * PageResponse. It carries the request id, the page's length and
 * checksum, authenticated with a key derived from the cluster key (only
 * errors still come as a PageResponse). */
typedef struct pm_fabric_trailer {
  uint64_t request_id;
  uint32_t length;
  uint8_t checksum[PM_FABRIC_CHECKSUM_LEN];
} pm_fabric_trailer;

/* Write the trailer into out (PM_FABRIC_TRAILER_LEN bytes). */
void pm_fabric_trailer_seal(const pm_fabric_keys *keys,
                            const pm_fabric_trailer *trailer, uint8_t *out);
/* Check a trailer as it landed (network input: PM_FABRIC_TRAILER_LEN
 * bytes) and decode it. Returns 0, PM_EAUTH (not sealed by a holder of the
 * cluster key) or PM_EPROTO (length over max_length), with detail. */
int pm_fabric_trailer_open(const pm_fabric_keys *keys, const uint8_t *in,
                           uint32_t max_length, pm_fabric_trailer *out);

/* Fill a protobuf PageRequest from the core's request (pointers borrowed)
 * and the other way round (pointers into the message). */
void pm_fabric_req_to_pb(const pm_page_request *req, Pm__PageRequest *pb);
void pm_fabric_req_from_pb(const Pm__PageRequest *pb, pm_page_request *req);

/* Lowercase hex of raw bytes into out (2*len+1); PM_ETOOBIG if short. */
int pm_fabric_hex_encode(const uint8_t *raw, size_t len, char *out,
                         size_t out_size);
/* Parse hex into raw (capacity cap); returns the byte count or PM_EINVAL. */
ssize_t pm_fabric_hex_decode(const char *hex, uint8_t *raw, size_t cap);

/* ---- registered buffers and operations ---------------------------------- */

/* A buffer registered with the domain. Page buffers (landing, staging,
 * server) hold a trailer, then the page: see pm_fabric_page_at. */
typedef struct pm_fabric_buf {
  uint8_t *data;
  size_t size;
  uint64_t access;
  struct fid_mr *mr;
  void *desc;        /* for local operations (FI_MR_LOCAL) */
  uint64_t key;      /* the remote key */
  uint64_t rma_addr; /* what a peer names: address (VIRT_ADDR) or 0 */
} pm_fabric_buf;

/* What a completion's context points to. */
typedef enum pm_fabric_op_kind {
  PM_FABRIC_OP_RECV = 1, /* a pre-posted control message receive */
  PM_FABRIC_OP_SEND,     /* a control message send */
  PM_FABRIC_OP_WRITE,    /* an RMA write of a served page */
} pm_fabric_op_kind;

typedef struct pm_fabric_op {
  struct fi_context2 context; /* first: handed to libfabric */
  pm_fabric_op_kind kind;
  uint32_t index;       /* receive/send buffer, or server buffer index */
  uint64_t request_id;  /* send: the request slot waiting for it, or 0;
                           write: the GET it answers */
  fi_addr_t peer;       /* write: the requester */
  int32_t put_slot;     /* write: the PUT slot it reads from, or -1 */
} pm_fabric_op;

/* Where the page goes in a page buffer, and how much room it has there. */
static inline uint8_t *pm_fabric_page_at(const pm_fabric_buf *buf) {
  return buf->data + PM_FABRIC_TRAILER_LEN;
}

static inline size_t pm_fabric_page_room(const pm_fabric_buf *buf) {
  return buf->size > PM_FABRIC_TRAILER_LEN
             ? buf->size - PM_FABRIC_TRAILER_LEN
             : 0;
}

/* ---- request slots (fabric_slots.c) ------------------------------------- */

typedef enum pm_fabric_slot_state {
  PM_FABRIC_SLOT_FREE = 0,
  PM_FABRIC_SLOT_ACTIVE,   /* a caller waits on it */
  PM_FABRIC_SLOT_ZOMBIE,   /* its caller gave up; its buffer is quarantined */
} pm_fabric_slot_state;

typedef struct pm_fabric_slot {
  pthread_cond_t cond;
  pm_fabric_op write_op;  /* PUT: the write that serves its pull */
  pm_fabric_buf buf;      /* landing (GET) or staging (PUT) buffer */
  uint32_t index, generation;
  uint64_t id;            /* (generation << SLOT_BITS | index) & id_mask */
  pm_fabric_slot_state state;
  bool is_put;
  bool sent;              /* the request may have reached the peer */
  bool got_data;          /* the RMA write with our id has landed */
  bool got_response;
  bool failed;            /* our send failed: see error */
  int error;              /* pm_err of a failed send */
  int status;             /* from the trailer or the PageResponse */
  uint32_t length;
  uint8_t checksum[PM_FABRIC_CHECKSUM_LEN];
  char detail[PM_FABRIC_DETAIL_MAX];
  uint64_t zombie_since_ns;
  unsigned local_writes;  /* PUT: RMA writes reading the staging buffer */
  /* PUT: who may pull the staged page, and which page. */
  char peer[PM_ADDR_MAX];
  uint8_t page_id[16];
  uint32_t put_length;
  uint8_t put_checksum[PM_FABRIC_CHECKSUM_LEN];
} pm_fabric_slot;

/* ---- server (fabric_server.c) ------------------------------------------- */

/* A request queued for a worker: the opened message and its arena. */
typedef struct pm_fabric_item {
  struct pm_fabric_item *next;
  uint64_t queued_ns;
  pm_fabric_msg msg;
  pm_page_file file; /* GET: the page, opened by the progress thread (or
                        fd -1); a worker reads it without a new lookup */
  pm_fabric_arena arena;
  uint8_t arena_mem[PM_FABRIC_ARENA_SIZE];
} pm_fabric_item;

/* A registered page buffer of the server, and the write that reads it. */
typedef struct pm_fabric_sbuf {
  pm_fabric_op op;
  pm_fabric_buf buf;
  bool busy;
  atomic_int holds; /* the worker and its write: free when both let go */
} pm_fabric_sbuf;

/* ---- peers (fabric_ep.c) ------------------------------------------------- */

typedef struct pm_fabric_peer {
  struct pm_fabric_peer *next;
  fi_addr_t fi_addr;
  uint64_t used_ns; /* last resolved */
  char hex[];       /* the address as advertised */
} pm_fabric_peer;

#define PM_FABRIC_PEER_BUCKETS 256u

/* ---- the transport object ------------------------------------------------ */

typedef struct pm_fabric_stats {
  _Atomic uint64_t gets_sent, gets_served, puts_sent, puts_served;
  _Atomic uint64_t bytes_sent, bytes_received;
  _Atomic uint64_t auth_failures, decode_failures, timeouts;
  _Atomic uint64_t busy_refusals; /* requests answered PM_EBUSY: queue full */
} pm_fabric_stats;

typedef struct pm_fabric {
  pm_transport base; /* first */

  /* Configuration (copied). */
  uint32_t max_page_size;
  unsigned server_threads;
  pm_page_server server;
  pm_fabric_keys keys;

  /* libfabric objects (fabric_ep.c). */
  struct fi_info *info;
  struct fid_fabric *fabric;
  struct fid_domain *domain;
  struct fid_av *av;
  struct fid_cq *cq;
  struct fid_ep *ep;
  bool cq_waitable;
  uint64_t mr_mode;
  uint64_t id_mask;        /* what fits in the provider's CQ data */
  _Atomic uint64_t next_key;
  uint8_t self_addr[PM_FABRIC_RAWADDR_MAX];
  size_t self_addr_len;
  char self_hex[PM_ADDR_MAX];
  char provider[64];

  /* The peer address cache. */
  pthread_mutex_t peer_lock;
  pm_fabric_peer *peers[PM_FABRIC_PEER_BUCKETS];
  unsigned peer_count;
  unsigned peers_max;    /* PM_FABRIC_PEERS_MAX (tests lower it) */
  uint64_t peer_idle_ns; /* PM_FABRIC_PEER_IDLE_NS (tests lower it) */

  /* Control message buffers (fabric_progress.c): one registered region,
   * receives first, then sends. */
  pm_fabric_buf msg_region;
  pm_fabric_op recv_ops[PM_FABRIC_RECV_COUNT];
  bool recv_pending[PM_FABRIC_RECV_COUNT]; /* to post again */
  unsigned recv_pending_count;
  pm_fabric_item *rx_item; /* the progress thread decodes into it */
  pm_fabric_op send_ops[PM_FABRIC_SEND_COUNT];
  pthread_mutex_t send_lock;
  pthread_cond_t send_cond;
  uint32_t send_free[PM_FABRIC_SEND_COUNT];
  unsigned send_free_count;

  /* Request slots (fabric_slots.c). */
  pthread_mutex_t slot_lock;
  pthread_cond_t slot_cond; /* a slot became free */
  pm_fabric_slot *slots;
  unsigned slot_count;
  size_t slot_buf_size; /* page room of a slot buffer (its trailer aside) */

  /* Server (fabric_server.c). */
  pthread_mutex_t queue_lock;
  pthread_cond_t queue_cond;
  pm_fabric_item *queue_head, *queue_tail, *item_free;
  unsigned queue_len, item_count;
  bool queue_closed;
  pthread_mutex_t sbuf_lock;
  pthread_cond_t sbuf_cond;
  pm_fabric_sbuf *sbufs;
  unsigned sbuf_count;
  /* workers[0..worker_count) run; the progress thread adds up to
   * worker_cap when all are stuck (pm_fabric_server_grow_if_stuck). Under
   * queue_lock, as idle_workers (those waiting for an item). */
  pthread_t *workers;
  unsigned worker_count, worker_cap, idle_workers;
  atomic_uint_fast64_t requests_done; /* items the workers finished */
  uint64_t stuck_since_ns, stuck_done;  /* the progress thread's */

  /* Progress (fabric_progress.c). */
  pthread_t progress;
  bool progress_started;
  atomic_bool stopping;
  atomic_bool no_inline; /* page files without RWF_NOWAIT: workers serve */
  atomic_int inflight;  /* operations whose completion we wait for */
  atomic_int callers;   /* threads inside get_page/put_page */
  uint64_t last_sweep_ns;
  _Atomic uint64_t last_active_ns; /* the last completion read */
  /* Who reads the CQ: the progress thread or one waiting caller, holding
   * poll_lock. caller_poll: 0 no caller polls, 1 one waits for the lock,
   * 2 one holds it. */
  pthread_mutex_t poll_lock;
  atomic_int caller_poll;
  /* While a caller polls, the progress thread waits on handoff_cond
   * (under handoff_lock), not on poll_lock (fabric_progress.c). */
  pthread_mutex_t handoff_lock;
  pthread_cond_t handoff_cond;

  pm_fabric_stats stats;
} pm_fabric;

extern const pm_transport_methods pm_fabric_methods;

/* ---- fabric_ep.c ---------------------------------------------------------- */

/* Convert a libfabric error code (negative or positive FI_E*) into a
 * pm_err, recording `what` and fi_strerror in the detail. */
int pm_fabric_err(int fi_rc, const char *what);
int pm_fabric_ep_open(pm_fabric *f, const char *listen);
/* Close the endpoint (cancels what is in flight); then, once the memory
 * registrations are closed, everything else. */
void pm_fabric_ep_close_endpoint(pm_fabric *f);
void pm_fabric_ep_close(pm_fabric *f);
/* Allocate `size` page-aligned bytes and register them with `access`. */
int pm_fabric_buf_alloc(pm_fabric *f, pm_fabric_buf *buf, size_t size,
                        uint64_t access);
/* Register existing memory (not owned by buf). */
int pm_fabric_buf_register(pm_fabric *f, pm_fabric_buf *buf, void *data,
                           size_t size, uint64_t access);
/* Close the registration and register the same memory under a new key:
 * a peer holding the old key can no longer write into it. */
int pm_fabric_buf_rekey(pm_fabric *f, pm_fabric_buf *buf);
void pm_fabric_buf_unregister(pm_fabric_buf *buf);
void pm_fabric_buf_free(pm_fabric_buf *buf);
/* The fi_addr of a peer by its (hex) address, inserting it into the
 * address vector the first time. */
int pm_fabric_peer_resolve(pm_fabric *f, const char *hex, fi_addr_t *out);

/* The advertised address of a transport is PM_FABRIC_ADDR_SCHEME followed
 * by the hex of its raw address. The scheme names the version of the
 * protocol (the messages, the trailer and their rules): a peer of another
 * version is refused at once, as is an address of another form, instead
 * of waiting for answers that would never come. Bump the number with any
 * change of the wire format. */
#define PM_FABRIC_ADDR_SCHEME "pmf1-"
/* The hex part of an advertised address; PM_EPROTO with detail if it is
 * not of this version. */
int pm_fabric_advertised(const char *addr, const char **hex);
void pm_fabric_peers_clear(pm_fabric *f);

/* ---- fabric_progress.c ---------------------------------------------------- */

/* Condition variables on CLOCK_MONOTONIC, waited on until a deadline in
 * pm__now_ns() time. Returns ETIMEDOUT (errno value) past it, else 0. */
int pm_fabric_cond_init(pthread_cond_t *cond);
int pm_fabric_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mutex,
                              uint64_t deadline_ns);

int pm_fabric_msgbufs_open(pm_fabric *f);
void pm_fabric_msgbufs_close(pm_fabric *f);
int pm_fabric_progress_start(pm_fabric *f);
void pm_fabric_progress_stop(pm_fabric *f);
/* Called by a thread waiting for its own request: read and dispatch
 * completions on this thread until done(arg) (called under poll_lock; it
 * may take slot_lock) or the deadline, unless another caller already does,
 * or nothing completes for 2 ms (the caller then sleeps as before). */
void pm_fabric_caller_poll(pm_fabric *f, bool (*done)(void *), void *arg,
                           uint64_t deadline_ns);
/* Count an operation whose completion the progress thread must drive
 * (wakes it from its blocking wait) and its end. */
void pm_fabric_inflight_add(pm_fabric *f);
void pm_fabric_inflight_done(pm_fabric *f);
/* Wait a little before retrying an operation that returned -FI_EAGAIN.
 * Returns 0, PM_ETIMEDOUT past deadline_ns or PM_ESHUTDOWN. */
int pm_fabric_backoff(pm_fabric *f, unsigned *round, uint64_t deadline_ns,
                      const char *what);
/* Seal `frame` and send it to `dest`, retrying -FI_EAGAIN until
 * deadline_ns. A failed completion of the send is reported to the slot
 * named by request_id (0: none). Returns 0 or a pm_err with detail. */
int pm_fabric_send_frame(pm_fabric *f, fi_addr_t dest,
                         const Pm__PageFrame *frame, uint64_t request_id,
                         uint64_t deadline_ns);

/* ---- fabric_slots.c ------------------------------------------------------- */

int pm_fabric_slots_open(pm_fabric *f);
void pm_fabric_slots_close(pm_fabric *f);
/* Take a free slot with its registered buffer (allocated on first use),
 * waiting until deadline_ns. Returns the slot (ACTIVE, new id) or NULL
 * with *err set. */
pm_fabric_slot *pm_fabric_slot_acquire(pm_fabric *f, uint64_t deadline_ns,
                                       int *err);
/* Wait until the slot's exchange is complete (a response, plus the data
 * for a successful GET), or deadline_ns, or shutdown. Returns 0 (then
 * slot->status holds the server's answer) or PM_ETIMEDOUT, PM_ESHUTDOWN,
 * or the error of a failed send. */
int pm_fabric_slot_wait(pm_fabric *f, pm_fabric_slot *slot,
                        uint64_t deadline_ns);
/* Record whether the request may have reached the peer (set before
 * posting it, cleared if the post failed). */
void pm_fabric_slot_set_sent(pm_fabric *f, pm_fabric_slot *slot, bool sent);
/* Name the page staged in a PUT slot's buffer and the peer that may pull
 * it (the buffer is filled already). */
void pm_fabric_slot_stage_put(pm_fabric *f, pm_fabric_slot *slot,
                              const char *peer_hex, const uint8_t page_id[16],
                              uint32_t length, const pm_checksum *checksum);
/* Hand the slot back: free if nothing can still touch its buffer,
 * otherwise quarantined until that is known. */
void pm_fabric_slot_release(pm_fabric *f, pm_fabric_slot *slot);
/* Events from the progress thread. */
void pm_fabric_slot_on_data(pm_fabric *f, uint64_t cq_data);
void pm_fabric_slot_on_response(pm_fabric *f, const Pm__PageResponse *resp);
void pm_fabric_slot_on_send_error(pm_fabric *f, uint64_t request_id, int err);
void pm_fabric_slot_on_write_done(pm_fabric *f, int32_t put_slot);
/* Reclaim quarantined slots that are old enough (progress thread). */
void pm_fabric_slots_sweep(pm_fabric *f);
/* Wake every waiter with PM_ESHUTDOWN. */
void pm_fabric_slots_shutdown(pm_fabric *f);
/* The PUT slot staging `page_id` for the peer `peer_hex`, with one more
 * local write counted; -1 if none. */
int32_t pm_fabric_slot_find_put(pm_fabric *f, const char *peer_hex,
                                const uint8_t page_id[16]);

/* ---- fabric_client.c ------------------------------------------------------ */

ssize_t pm_fabric_get_page(pm_transport *self, const char *addr,
                           const pm_page_request *req, void *dst,
                           size_t dst_len, uint64_t deadline_ns);
int pm_fabric_put_page(pm_transport *self, const char *addr,
                       const pm_page_request *req, const void *data,
                       size_t length, uint64_t deadline_ns);
/* The GET exchange shared by get_page and the PUT pull: fetch into dst and
 * verify against the server's checksum. addr: the peer's hex address
 * (without PM_FABRIC_ADDR_SCHEME). */
ssize_t pm_fabric_fetch(pm_fabric *f, const char *addr,
                        const pm_page_request *req, void *dst,
                        size_t dst_len, uint64_t deadline_ns);

/* ---- fabric_server.c ------------------------------------------------------ */

int pm_fabric_server_start(pm_fabric *f);
/* Stop the workers (after the callbacks they are in return). */
void pm_fabric_server_stop(pm_fabric *f);
/* Free the buffers and queued items (after the endpoint is closed). */
void pm_fabric_server_free(pm_fabric *f);
/* A free item for the progress thread to decode into, or NULL (queue
 * full). */
pm_fabric_item *pm_fabric_item_get(pm_fabric *f);
/* The server queue is full: answer the GET or PUT in the item PM_EBUSY at
 * once, if a send buffer is free without waiting, so that the requester
 * asks another replica rather than waiting for its deadline. For the
 * progress thread. */
void pm_fabric_refuse_busy(pm_fabric *f, const pm_fabric_item *item);
void pm_fabric_item_put(pm_fabric *f, pm_fabric_item *item);
/* Queue an opened GET or PUT for the workers (takes the item). */
void pm_fabric_server_submit(pm_fabric *f, pm_fabric_item *item);
/* Every worker stuck (items queued, none waiting for one, none finished
 * for PM_FABRIC_STUCK_NS): start one more, up to PM_FABRIC_EXTRA_WORKERS
 * beyond server_threads. For the progress thread, now and then. */
void pm_fabric_server_grow_if_stuck(pm_fabric *f);
/* A write of a served page completed (progress thread). */
void pm_fabric_server_write_done(pm_fabric *f, pm_fabric_op *op, int err);

/* Serve an opened GET on the progress thread if that needs no waiting
 * (see fabric_server.c): true if served, false if nothing was done (queue
 * it for a worker). */
bool pm_fabric_serve_inline(pm_fabric *f, pm_fabric_item *item);

#endif /* PM_FABRIC_INT_H */
