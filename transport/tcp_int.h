/*
 * transport/tcp_int.h - the private structures of the tcp page transport,
 * shared by its files: tcp.c (the object and its methods), tcp_io.c
 * (sockets with deadlines), tcp_handshake.c (the authenticated key
 * exchange), tcp_conn.c (sealed frames and page bytes on one connection),
 * tcp_server.c (the epoll loop and the workers) and tcp_client.c (the
 * connection pool and the requests).
 *
 * Wire format after the handshake, per direction: control frames are
 * `[u32 big-endian sealed length][secretstream message]`, the message's
 * plaintext being a frame of transport/frame.h. Page bytes follow a
 * PageResponse (GET) or a PagePut raw: either in the clear when both ends
 * set insecure_data, or as sealed chunks (AEGIS-128X4 where both ends
 * have it, else AES-256-GCM) of PM_TCP_CHUNK bytes of
 * plaintext each (the last one shorter) with their 16-byte tags, without
 * length prefixes (the page length is in the frame; see tcp_bulk.c). On
 * tcp a PageGet's rma_length carries the requester's buffer capacity, so
 * that a server answers PM_ETOOBIG instead of sending a page that cannot
 * land.
 */
#ifndef PM_TCP_INT_H
#define PM_TCP_INT_H

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "aegis.h"
#include "core/core_int.h"
#include "frame.h"
#include "transport_int.h"

#define PM_TCP_ABYTES crypto_secretstream_xchacha20poly1305_ABYTES
#define PM_TCP_SS_HEADER crypto_secretstream_xchacha20poly1305_HEADERBYTES
/* The tag after each sealed chunk of page bytes (AEGIS-128X4 or
 * AES-256-GCM). */
#define PM_TCP_TAG 16u
/* The congestion control of the transport's sockets unless
 * PAGEMESH_TCP_CONGESTION names another. Not bbr, where that is the
 * kernel's default: without the fq qdisc, bbr paces each connection with
 * a timer of its own, and on the VM we measure on that cost a sealed
 * 1 MiB GET at queue depth 8 about 40% of its throughput (~13 times the
 * timer interrupts; bench_transport_tcp, back-to-back runs). */
#define PM_TCP_CC_DEFAULT "cubic"
/* Longest congestion control name, with its NUL (TCP_CA_NAME_MAX). */
#define PM_TCP_CC_MAX 16
/* Plaintext bytes per sealed chunk of page bytes. */
#define PM_TCP_CHUNK (128u * 1024u)
/* Largest sealed control message on the wire (after its prefix). */
#define PM_TCP_SEALED_MAX (PM_FRAME_PREFIX + PM_FRAME_MAX + PM_TCP_ABYTES)
/* Handshake messages: hello = magic, version, flags, reserved, X25519
 * public key, nonce; proof = MAC over the transcript + secretstream header
 * of the sender's direction. */
#define PM_TCP_HELLO_SIZE 72u
#define PM_TCP_MAC_SIZE 32u
#define PM_TCP_PROOF_SIZE (PM_TCP_MAC_SIZE + PM_TCP_SS_HEADER)
/* How long a server gives a client for its handshake, and for the rest of
 * a request once its first byte arrived. */
#define PM_TCP_HANDSHAKE_NS (5ull * 1000000000ull)
#define PM_TCP_SERVER_IO_NS (10ull * 1000000000ull)
/* A blocking receive waits at most this long before the deadline is
 * looked at again; with less time left, receives poll until the deadline. */
#define PM_TCP_RECV_SLICE_NS (100ull * 1000000ull)
/* A connection idle for less than this is reused without first checking
 * that the server has not closed it (a request on a dead one is retried on
 * a fresh connection anyway): one system call less per request. */
#define PM_TCP_IDLE_TRUST_NS (100ull * 1000000ull)
/* How long a server worker waits for the next request on the connection
 * it just answered before handing it back to epoll (tcp_server.c). */
#define PM_TCP_LINGER_MS 2
/* Workers a server starts beyond `server_threads` when all of them are
 * stuck (see grow_if_stuck in tcp_server.c), and how long "stuck" is: a
 * request waiting, no worker free and none finishing a request. */
#define PM_TCP_EXTRA_WORKERS 12
#define PM_TCP_STUCK_NS (100ull * 1000000ull)
/* Idle connections kept per remote peer. */
#define PM_TCP_IDLE_MAX 8
/* Read-ahead of an established connection: every receive also asks for up
 * to this many bytes beyond what it needs (length prefix, frame and the
 * first page bytes arrive in one system call). */
#define PM_TCP_READAHEAD 4096
/* Connections a server keeps at most, and at most in handshake. */
#define PM_TCP_SERVER_CONNS_MAX 4096
#define PM_TCP_HANDSHAKING_MAX 256
#define PM_TCP_POOL_BUCKETS 64

/* ---- the handshake (tcp_handshake.c) ---------------------------------- */

/* Secrets of one connection, in sodium_malloc memory. After the handshake
 * only the two stream states are kept; the rest is wiped. */
typedef struct pm_tcp_secrets {
  uint8_t kx_pk[32], kx_sk[32];
  uint8_t transcript[32];
  uint8_t send_key[32], recv_key[32];
  uint8_t page_send_key[32], page_recv_key[32];
  uint8_t my_proof_key[32], peer_proof_key[32];
  crypto_secretstream_xchacha20poly1305_state send_state, recv_state;
} pm_tcp_secrets;

/* The page-byte cipher of one connection (tcp_bulk.c): AEGIS-128X4 with
 * its two keys, or an OpenSSL AES-256-GCM context per direction; and a
 * chunk sequence number per direction. */
typedef struct pm_tcp_bulk {
  const pm_aegis_ops *aegis;   /* NULL: AES-256-GCM */
  uint8_t *aegis_keys;         /* sodium_malloc: sending | receiving */
  struct evp_cipher_ctx_st *seal, *open;
  uint64_t seal_seq, open_seq;
} pm_tcp_bulk;

/* Set up both directions from the keys derived in the handshake, with
 * AEGIS-128X4 if `aegis` (both ends offered it) or else AES-256-GCM.
 * Errors: PM_ENOMEM; PM_EPROTO when asked for AEGIS on a CPU without it. */
int pm__tcp_bulk_init(pm_tcp_bulk *bulk, const uint8_t send_key[32],
                      const uint8_t recv_key[32], bool aegis);
void pm__tcp_bulk_free(pm_tcp_bulk *bulk);
/* Seal `length` (<= PM_TCP_CHUNK) bytes from in into out (may be in) and
 * write the tag. Errors: PM_EIO. */
int pm__tcp_bulk_seal(pm_tcp_bulk *bulk, const uint8_t *in, size_t length,
                      uint8_t *out, uint8_t tag[PM_TCP_TAG]);
/* Open a chunk in place. Errors: PM_ECORRUPT (the tag does not verify:
 * tampered, dropped, repeated or reordered); the chunk is then zeros. */
int pm__tcp_bulk_open(pm_tcp_bulk *bulk, uint8_t *data, size_t length,
                      const uint8_t tag[PM_TCP_TAG]);

typedef struct pm_tcp_handshake {
  bool server;
  bool my_insecure, insecure_data; /* insecure_data: agreed by both */
  bool my_aegis, aegis;            /* aegis: both offered AEGIS-128X4 */
  const uint8_t *cluster_key;      /* the transport's copy */
  const char *cluster_id;
  uint8_t my_hello[PM_TCP_HELLO_SIZE], peer_hello[PM_TCP_HELLO_SIZE];
  pm_tcp_secrets *secrets;
  pm_tcp_bulk bulk;                /* set up by pm__tcp_hs_done */
} pm_tcp_handshake;

/* Start a handshake: make an ephemeral X25519 key pair and this side's
 * hello (hs->my_hello), which offers AEGIS-128X4 for page bytes if
 * offer_aegis and this CPU runs it. Errors: PM_ENOMEM. */
int pm__tcp_hs_start(pm_tcp_handshake *hs, bool server,
                     const uint8_t *cluster_key, const char *cluster_id,
                     bool insecure_data, bool offer_aegis);
/* Take the peer's hello: parse it (PM_EPROTO) and derive the session keys
 * bound to the cluster key and the transcript (PM_EAUTH on a degenerate
 * public key). */
int pm__tcp_hs_peer_hello(pm_tcp_handshake *hs, const uint8_t *msg,
                          size_t length);
/* This side's proof (MAC + header of its sending stream). */
void pm__tcp_hs_proof(pm_tcp_handshake *hs, uint8_t out[PM_TCP_PROOF_SIZE]);
/* Check the peer's proof and open the receiving stream. PM_EAUTH if the
 * peer does not hold the cluster key, PM_EPROTO if malformed. */
int pm__tcp_hs_check_proof(pm_tcp_handshake *hs, const uint8_t *msg,
                           size_t length);
/* Set up the page cipher and wipe everything but the stream states
 * (after both proofs). Errors: PM_ENOMEM. */
int pm__tcp_hs_done(pm_tcp_handshake *hs);
/* Wipe and free the secrets. Accepts a never-started handshake. */
void pm__tcp_hs_free(pm_tcp_handshake *hs);

/* ---- one connection (tcp_conn.c) --------------------------------------- */

typedef struct pm_tcp_conn {
  int fd;
  char peer[PM_ADDR_MAX];
  pm_tcp_handshake hs;
  bool established;
  bool broken;          /* the stream is out of step: do not reuse */
  uint64_t next_request_id;
  bool awaiting_answer;   /* client side: a request just went out */
  /* Client side, once established: the socket blocks in receives, for at
   * most PM_TCP_RECV_SLICE_NS each (pm__tcp_conn_block_receives). */
  bool blocking;
  uint64_t idle_since_ns; /* client side: when it went back to the pool */
  /* Bytes received beyond what the last read needed (rpos..rlen). */
  uint32_t rpos, rlen;
  uint8_t readahead[PM_TCP_READAHEAD];
  /* Server side: handshake progress on the loop thread. */
  unsigned hs_stage;    /* 0: want hello, 1: want proof, 2: established */
  size_t hs_have;
  uint8_t hs_buf[PM_TCP_HELLO_SIZE];
  uint64_t hs_deadline_ns;
  /* Links: all connections of one side, and a scratch list. */
  struct pm_tcp_conn *prev, *next, *late_next;
} pm_tcp_conn;

/* Per-thread buffers for the I/O of one request (a connection is used by
 * one thread at a time). */
typedef struct pm_tcp_scratch {
  uint8_t wire[PM_FRAME_PREFIX + PM_TCP_SEALED_MAX];
  uint8_t plain[PM_FRAME_PREFIX + PM_FRAME_MAX];
  uint8_t chunk[PM_TCP_CHUNK + PM_TCP_TAG];
  pm_checksum_state *sum;  /* for pages as they arrive */
  pm_frame_arena arena;
} pm_tcp_scratch;

/* The calling thread's scratch (allocated on first use, freed when the
 * thread exits), or NULL when out of memory. */
pm_tcp_scratch *pm__tcp_scratch(void);

pm_tcp_conn *pm__tcp_conn_new(int fd, const char *peer);
void pm__tcp_conn_free(pm_tcp_conn *conn);
/* Seal and send one frame, followed by `length` page bytes (none if 0):
 * in the clear if both ends agreed on insecure_data, else as sealed
 * chunks. The frame and the first bytes go in one system call. */
int pm__tcp_conn_send(pm_tcp_conn *conn, const Pm__PageFrame *frame,
                      const void *data, size_t length, uint64_t deadline_ns,
                      bool *sealed);
/* The same with the page bytes read from a file (fd at offset): sent
 * with sendfile in the clear, or read and sealed chunk by chunk. */
int pm__tcp_conn_send_file(pm_tcp_conn *conn, const Pm__PageFrame *frame,
                           int fd, uint64_t offset, size_t length,
                           uint64_t deadline_ns, bool *sealed);
/* True if bytes beyond the last message were already received (the
 * peer sent more than one message at once). */
bool pm__tcp_conn_buffered(const pm_tcp_conn *conn);
/* Receive, open and decode one frame (into the scratch's arena). */
int pm__tcp_conn_recv_frame(pm_tcp_conn *conn, uint32_t max_page_size,
                            uint64_t deadline_ns, Pm__PageFrame **out);
/* Receive `length` page bytes after a frame into dst: in the clear or as
 * sealed chunks, each opened in its place. `sealed` tells which; *sum is
 * the checksum of the bytes (computed as they arrive). Errors:
 * PM_ECORRUPT (a chunk fails authentication) and those of read_full. */
int pm__tcp_conn_recv_page(pm_tcp_conn *conn, void *dst, size_t length,
                           uint64_t deadline_ns, bool *sealed,
                           pm_checksum *sum);

/* ---- sockets (tcp_io.c) ------------------------------------------------- */

/* Bind and listen on "IP:PORT" with the congestion control picked
 * (accepted connections start with it); the bound address goes to
 * bound_out. */
int pm__tcp_listen(const char *addr, const char *congestion, int *fd_out,
                   char *bound_out, size_t bound_size);
/* Connect to "IP:PORT" before the deadline, with pm__tcp_sockopts. */
int pm__tcp_connect(const char *addr, const char *congestion,
                    uint64_t deadline_ns, int *fd_out);
/* "IP:PORT" (IPv6 as "[IP]:PORT") of a socket address. */
void pm__tcp_format_addr(const struct sockaddr_storage *ss, char *out,
                         size_t out_size);
/* The congestion control of the transport's sockets, from
 * PAGEMESH_TCP_CONGESTION: a name the kernel allows, "system" for the
 * kernel's default (out is then ""), unset or empty for
 * PM_TCP_CC_DEFAULT (or the kernel's default, logged, where the kernel
 * has no such module). Tried on a socket here, so that a bad name fails
 * once. Errors: PM_EINVAL (a name the kernel refuses, with its reason),
 * or the code of the errno when no socket can be made to try it on. */
int pm__tcp_congestion_pick(char out[PM_TCP_CC_MAX]);
/* TCP_CONGESTION on fd (name "" leaves it): false if the kernel refused
 * (errno says why). */
bool pm__tcp_set_congestion(int fd, const char *name);
/* Non-blocking, TCP_NODELAY, large buffers, the congestion control
 * picked (pm__tcp_congestion_pick; "" for the kernel's default). Before
 * connect: a connection that started with bbr stays paced after a
 * switch (the kernel keeps its pacing on). */
void pm__tcp_sockopts(int fd, const char *congestion);
/* Whole reads and writes before a deadline. A closed or reset connection
 * is PM_EUNREACHABLE; past the deadline PM_ETIMEDOUT. The detail names
 * the peer. */
int pm__tcp_read_full(int fd, void *buf, size_t length, uint64_t deadline_ns,
                      const char *peer);
/* One receive into iov (recvmsg), waiting until something arrives or the
 * deadline (wait_first: poll before the first try, when nothing can have
 * arrived yet): the bytes received (> 0) or a pm_err as above. On a
 * socket set up by pm__tcp_block_receives (blocking), the receive itself
 * waits, in slices, while the deadline is more than a slice away. */
ssize_t pm__tcp_recv_some(int fd, struct iovec *iov, int iov_count,
                          bool wait_first, bool blocking,
                          uint64_t deadline_ns, const char *peer);
/* Make receives on fd block for at most PM_TCP_RECV_SLICE_NS (sends stay
 * non-blocking: they pass MSG_DONTWAIT). Errors: PM_EIO. */
int pm__tcp_block_receives(int fd);
int pm__tcp_write_full(int fd, const void *buf, size_t length,
                       uint64_t deadline_ns, const char *peer);
int pm__tcp_writev_full(int fd, struct iovec *iov, int iov_count,
                        uint64_t deadline_ns, const char *peer);
/* Send head (may be empty), then `length` bytes of file_fd from offset
 * with sendfile (no copy through user space). Errors: as write_full, and
 * PM_EIO if the file is shorter than said. */
int pm__tcp_sendfile_full(int fd, const void *head, size_t head_length,
                          int file_fd, uint64_t offset, size_t length,
                          uint64_t deadline_ns, const char *peer);
/* True if an idle connection was closed or reset by its peer. */
bool pm__tcp_idle_dead(int fd);

/* ---- the transport object (tcp.c, tcp_server.c, tcp_client.c) ---------- */

typedef struct pm_tcp_pool_peer pm_tcp_pool_peer;

typedef struct pm_tcp_worker {
  struct pm_tcp *tcp;
  pthread_t thread;
  uint8_t *page;        /* max_page_size bytes, allocated on first use */
  /* The strings of the request being served, copied out of the thread's
   * scratch arena: the core may make tcp requests of its own on this
   * thread while it serves (an owner asking a replica), and each answer
   * is decoded into that arena. */
  char uri[PM_FRAME_URI_MAX + 1];
  char version[PM_FRAME_VERSION_MAX + 1];
} pm_tcp_worker;

typedef struct pm_tcp {
  pm_transport base;
  char address[PM_ADDR_MAX];
  uint8_t *cluster_key; /* sodium_malloc, read-only after init */
  char *cluster_id;
  bool insecure_data;
  bool offer_aegis; /* PAGEMESH_TCP_CIPHER and the CPU allow AEGIS-128X4 */
  char congestion[PM_TCP_CC_MAX]; /* pm__tcp_congestion_pick */
  uint32_t max_page_size;
  pm_page_server server;

  /* Server side. */
  int listen_fd, epoll_fd, wake_fd;
  int work_fd; /* epoll set of established connections, for the workers */
  pthread_t loop_thread;
  bool loop_started;
  /* workers[0..worker_count) run; the loop thread adds up to worker_cap
   * (it alone writes the count while it runs). */
  atomic_uint worker_count;
  unsigned worker_cap;
  atomic_uint idle_workers; /* workers waiting in epoll_wait */
  atomic_uint_fast64_t requests_done; /* by workers, answered or not */
  uint64_t stuck_since_ns, stuck_done; /* the loop thread's */
  pm_tcp_worker *workers;
  pthread_mutex_t server_lock; /* the list below, `stopping` */
  pm_tcp_conn *server_conns;
  size_t server_conn_count, handshaking;
  bool stopping;

  /* Client side. */
  pthread_mutex_t pool_lock; /* the pool, the list, inflight, closing */
  pthread_cond_t drained;
  pm_tcp_pool_peer *pool[PM_TCP_POOL_BUCKETS];
  pm_tcp_conn *client_conns;
  unsigned inflight;
  bool closing;

  /* Counters. */
  atomic_uint_fast64_t gets_sent, gets_served, puts_sent, puts_served;
  atomic_uint_fast64_t bytes_sent, bytes_received;
  atomic_uint_fast64_t auth_failures, decode_failures, timeouts;
  atomic_uint_fast64_t connects, accepts, handshakes, aegis_handshakes,
      sealed_page_bytes, clear_page_bytes, retries, lingered;
} pm_tcp;

/* Server side: start / stop the loop thread and the workers
 * (tcp_server.c); serve one request on an established connection
 * (tcp_serve.c): 0 to keep the connection, or an error to close it. */
int pm__tcp_server_start(pm_tcp *tcp, unsigned threads);
void pm__tcp_server_stop(pm_tcp *tcp);
int pm__tcp_serve_one(pm_tcp_worker *worker, pm_tcp_conn *conn);

/* Client side. */
void pm__tcp_client_init(pm_tcp *tcp);
void pm__tcp_client_fini(pm_tcp *tcp);
ssize_t pm__tcp_get_page(pm_transport *self, const char *addr,
                         const pm_page_request *req, void *dst,
                         size_t dst_len, uint64_t deadline_ns);
int pm__tcp_put_page(pm_transport *self, const char *addr,
                     const pm_page_request *req, const void *data,
                     size_t length, uint64_t deadline_ns);

/* Count a completed handshake, and whether its page bytes are sealed in
 * AEGIS-128X4. */
static inline void pm__tcp_count_handshake(pm_tcp *tcp,
                                           const pm_tcp_handshake *hs) {
  atomic_fetch_add(&tcp->handshakes, 1);
  if (hs->aegis && !hs->insecure_data)
    atomic_fetch_add(&tcp->aegis_handshakes, 1);
}

/* Count a page's bytes as sealed or clear. */
static inline void pm__tcp_count_page(pm_tcp *tcp, size_t length,
                                      bool sealed) {
  atomic_fetch_add(sealed ? &tcp->sealed_page_bytes : &tcp->clear_page_bytes,
                   length);
}

#endif /* PM_TCP_INT_H */
