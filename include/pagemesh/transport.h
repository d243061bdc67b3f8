/*
 * pagemesh/transport.h - the interface of page transports: how one peer
 * asks another for a page (GET) or hands it one (PUT, to fill a replica).
 * Backends: `tcp` (epoll, always there) and `fabric` (libfabric RDM: verbs
 * on RDMA hardware, tcp;ofi_rxm or shm for tests).
 *
 * A backend is a pm_transport_methods table (it starts with `size`; methods
 * are only appended) and an object that embeds `pm_transport` as its first
 * member. The core calls backends only through transport/transport.c.
 *
 * Both sides of every exchange are in one object: a transport listens for
 * requests from other peers and hands them to the core's pm_page_server
 * callbacks, and it sends this peer's own requests. Every request carries
 * a deadline; a peer that does not answer in time gets PM_ETIMEDOUT and
 * the core moves on to the next replica.
 *
 * Security: both backends authenticate peers with the 32-byte cluster key
 * before serving anything; a peer without the key gets no page. tcp
 * encrypts page bytes unless `insecure_data` is set; fabric encrypts the
 * control messages and lets the NIC move page bytes in the clear.
 */
#ifndef PAGEMESH_TRANSPORT_H
#define PAGEMESH_TRANSPORT_H

#include "../pagemesh.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pm_transport pm_transport;

#define PM_ADDR_MAX 256

/* What a page request names. The page id is XXH3-128(uri, version, index,
 * page size); uri/version/index are sent too so that an owner that misses
 * can fetch the page from the origin. */
typedef struct pm_page_request {
  uint8_t page_id[16];
  const char *uri;
  const char *version;
  uint64_t object_size;   /* so the owner knows the page's length */
  int64_t mtime_ns;
  uint64_t page_index;
  uint32_t page_size;
  uint32_t flags;         /* PM_PAGE_REQ_* */
} pm_page_request;

enum {
  /* Answer only from the cache: never fetch from the origin (PM_ENOENT on a
   * miss). Used to read replicas and to warm a new owner. */
  PM_PAGE_REQ_CACHED_ONLY = 1u << 0,
  /* Not a page: the object's metadata, as the owner of the metadata knows
   * it (page_id is the id of the object's metadata; the answer is the
   * core's encoding of it). */
  PM_PAGE_REQ_META = 1u << 1,
  /* A put that re-creates a replica from a peer's store after the members
   * changed: only the page id, URI and bytes are known (no version or page
   * index); the receiver stores the bytes under that id. */
  PM_PAGE_REQ_REPLICA = 1u << 2,
  /* With PM_PAGE_REQ_META: the asker knows its metadata to be out of date
   * (invalidated, or the object changed or vanished under a read); the
   * owner asks the origin again instead of answering from its cache. */
  PM_PAGE_REQ_FRESH = 1u << 3,
  /* Every flag defined so far: decoders refuse the others. */
  PM_PAGE_REQ_KNOWN = PM_PAGE_REQ_CACHED_ONLY | PM_PAGE_REQ_META |
                      PM_PAGE_REQ_REPLICA | PM_PAGE_REQ_FRESH,
  /* Local only, never on the wire (decoders refuse it): set by a
   * transport calling serve_file from a thread that must not wait for the
   * disk (a progress thread). serve_file then answers PM_EBUSY rather than
   * read the page first (to verify it); the transport asks again from a
   * thread that may wait. */
  PM_PAGE_REQ_NOWAIT = 1u << 16,
};

/* A page served by reference (pm_page_server.serve_file). */
typedef struct pm_page_file {
  int fd;               /* read-only; the transport closes it */
  uint64_t offset;      /* where the page's bytes start in it */
  size_t length;        /* the page's length */
  uint8_t checksum[16]; /* XXH3-128 of the bytes, as stored */
} pm_page_file;

/* The core's side of a transport: called on the transport's own threads
 * (they may block on disk or origin I/O). */
typedef struct pm_page_server {
  /* Fill dst (capacity dst_len >= the page's length) with the whole page
   * and return its length, or a pm_err (PM_ENOENT for a CACHED_ONLY miss).
   * The checksum of what is returned is computed by the transport. */
  ssize_t (*serve_get)(void *arg, const pm_page_request *req, void *dst,
                       size_t dst_len);
  /* Take a page pushed by another peer (data already verified against its
   * checksum). Returns 0 or a pm_err. */
  int (*serve_put)(void *arg, const pm_page_request *req, const void *data,
                   size_t length);
  void *arg;
  /* Optional (NULL: always serve_get): the page by reference, so that it
   * is sent without a copy or a checksum pass over it (sendfile on tcp
   * in the clear). Returns 0 with *out filled, PM_ENOENT when the page is
   * not at hand that way (not cached on disk: the transport then calls
   * serve_get), PM_EBUSY for PM_PAGE_REQ_NOWAIT (see there), or another
   * pm_err to answer with. Quick: a lookup, no page read unless the page
   * must be verified first. The checksum is the
   * stored one: the requester verifies the bytes against it as always. */
  int (*serve_file)(void *arg, const pm_page_request *req,
                    pm_page_file *out);
} pm_page_server;

typedef struct pm_transport_config {
  size_t size;                 /* sizeof(pm_transport_config) */
  const char *listen;          /* "IP:PORT" (port 0: pick one) */
  const uint8_t *cluster_key;  /* 32 bytes; the backend copies it */
  const char *cluster_id;      /* bound into the handshake */
  int insecure_data;           /* tcp: page bytes in the clear */
  uint32_t max_page_size;      /* largest page accepted (bytes) */
  unsigned server_threads;     /* threads calling pm_page_server */
  pm_page_server server;
} pm_transport_config;

/* Counters every backend keeps. */
typedef struct pm_transport_stats {
  uint64_t gets_sent, gets_served, puts_sent, puts_served;
  uint64_t bytes_sent, bytes_received;
  uint64_t auth_failures, decode_failures, timeouts;
} pm_transport_stats;

typedef struct pm_transport_methods {
  size_t size;          /* sizeof(pm_transport_methods) of the backend */
  const char *name;     /* "tcp", "fabric" */
  size_t object_size;   /* bytes to allocate for the backend object */

  /* Set up a zeroed object (base filled in), start listening and the
   * backend's threads. Errors: PM_EINVAL, PM_EUNREACHABLE (cannot bind),
   * PM_ENOTSUP (no such provider), PM_ENOMEM. */
  int (*init)(pm_transport *self, const pm_transport_config *config);
  /* Stop threads, fail requests in flight with PM_ESHUTDOWN, free. */
  void (*fini)(pm_transport *self);

  /* The address other peers use to reach this one (advertised through
   * membership): "IP:PORT" for tcp; the provider's address for fabric, in
   * a printable form. Errors: PM_ETOOBIG if it does not fit. */
  int (*address)(pm_transport *self, char *out, size_t out_size);

  /* Ask the peer at `addr` for a page into dst (dst_len >= page length).
   * Returns the page's length. The bytes are verified against the
   * checksum the server sent before this returns. Errors: PM_ENOENT (the
   * owner has no such object, or CACHED_ONLY miss), PM_ETIMEDOUT (past
   * deadline_ns, CLOCK_MONOTONIC), PM_EUNREACHABLE, PM_EAUTH (handshake
   * refused), PM_ECORRUPT (checksum mismatch), PM_EPROTO, and the
   * server's own error codes (PM_EACCES, PM_EORIGIN...) with its detail. */
  ssize_t (*get_page)(pm_transport *self, const char *addr,
                      const pm_page_request *req, void *dst, size_t dst_len,
                      uint64_t deadline_ns);

  /* Push a whole page to the peer at `addr` (a replica). Errors: as
   * get_page. Optional: NULL means PM_ENOTSUP. */
  int (*put_page)(pm_transport *self, const char *addr,
                  const pm_page_request *req, const void *data, size_t length,
                  uint64_t deadline_ns);

  void (*stats)(pm_transport *self, pm_transport_stats *out);
} pm_transport_methods;

struct pm_transport {
  const pm_transport_methods *methods;
};

#ifdef __cplusplus
}
#endif
#endif /* PAGEMESH_TRANSPORT_H */
