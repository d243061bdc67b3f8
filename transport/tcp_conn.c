/*
 * transport/tcp_conn.c - one established tcp connection as a secure
 * channel: sealing and opening control frames with the per-direction
 * secretstream states, and moving page bytes after a frame, either raw
 * (both ends asked for insecure_data: straight from the page buffer or
 * page file, with sendfile, and straight into the caller's buffer) or as
 * sealed chunks of PM_TCP_CHUNK bytes (tcp_bulk.c: each received into its
 * place in the caller's buffer and opened there). A received page is
 * checksummed chunk by chunk as it lands. Every receive also reads ahead
 * up to PM_TCP_READAHEAD bytes into the connection's buffer (conn_read),
 * so a prefix, its frame and the first page bytes take one system call.
 * Also the per-thread scratch buffers that one request needs.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core_int.h"
#include "tcp_int.h"

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *arg) {
  pm_tcp_scratch *scratch = arg;
  pm__checksum_state_free(scratch->sum);
  free(scratch);
}

static void scratch_key_init(void) {
  pthread_key_create(&scratch_key, scratch_free);
}

pm_tcp_scratch *pm__tcp_scratch(void) {
  pthread_once(&scratch_once, scratch_key_init);
  pm_tcp_scratch *scratch = pthread_getspecific(scratch_key);
  if (scratch)
    return scratch;
  scratch = aligned_alloc(64, (sizeof *scratch + 63) & ~(size_t)63);
  if (!scratch)
    return NULL;
  scratch->sum = pm__checksum_state_new();
  if (!scratch->sum) {
    free(scratch);
    return NULL;
  }
  pm__frame_arena_init(&scratch->arena);
  pthread_setspecific(scratch_key, scratch);
  return scratch;
}

pm_tcp_conn *pm__tcp_conn_new(int fd, const char *peer) {
  pm_tcp_conn *conn = calloc(1, sizeof *conn);
  if (!conn)
    return NULL;
  conn->fd = fd;
  snprintf(conn->peer, sizeof conn->peer, "%s", peer);
  conn->next_request_id = 1;
  return conn;
}

void pm__tcp_conn_free(pm_tcp_conn *conn) {
  if (!conn)
    return;
  if (conn->fd >= 0)
    close(conn->fd);
  pm__tcp_hs_free(&conn->hs);
  free(conn);
}

static pm_tcp_scratch *need_scratch(pm_tcp_conn *conn) {
  pm_tcp_scratch *scratch = pm__tcp_scratch();
  if (!scratch)
    pm__errf(PM_ENOMEM, "%s: no memory for I/O buffers", conn->peer);
  return scratch;
}

/* Encode and seal a frame into scratch->wire; returns the bytes to send. */
static int64_t seal_frame(pm_tcp_conn *conn, pm_tcp_scratch *scratch,
                          const Pm__PageFrame *frame) {
  int64_t plain = pm__frame_encode(frame, scratch->plain,
                                   sizeof scratch->plain);
  if (plain < 0)
    return pm__frame_err_prefix((int)plain, conn->peer);
  unsigned long long sealed = 0;
  crypto_secretstream_xchacha20poly1305_push(
      &conn->hs.secrets->send_state, scratch->wire + PM_FRAME_PREFIX, &sealed,
      scratch->plain, (unsigned long long)plain, NULL, 0,
      crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
  pm__frame_put_prefix(scratch->wire, (uint32_t)sealed);
  return (int64_t)(PM_FRAME_PREFIX + sealed);
}

/* Seal one chunk of page bytes into scratch->chunk: from memory (data),
 * or read from a file first (data NULL: fd at offset). Returns the bytes
 * to send (the chunk and its tag) or a pm_err. */
static int64_t seal_chunk(pm_tcp_conn *conn, pm_tcp_scratch *scratch,
                          const uint8_t *data, int fd, uint64_t offset,
                          size_t length) {
  if (!data) {
    ssize_t got = pm__pread_full(fd, scratch->chunk, length, offset);
    if (got != (ssize_t)length)
      return pm__errf(PM_EIO, "%s: reading a page to send: %s", conn->peer,
                      got < 0 ? pm_strerror((int)got) : "short file");
    data = scratch->chunk;
  }
  int rc = pm__tcp_bulk_seal(&conn->hs.bulk, data, length, scratch->chunk,
                             scratch->chunk + length);
  return rc ? rc : (int64_t)(length + PM_TCP_TAG);
}

/* The frame and the first sealed chunk in one system call, then the
 * other chunks. */
static int send_sealed(pm_tcp_conn *conn, pm_tcp_scratch *scratch,
                       size_t wire_length, const uint8_t *data, int fd,
                       uint64_t offset, size_t length, uint64_t deadline_ns) {
  size_t head = wire_length;
  for (size_t off = 0; off < length; off += PM_TCP_CHUNK) {
    size_t n = PM_MIN(PM_TCP_CHUNK, length - off);
    int64_t sealed = seal_chunk(conn, scratch, data ? data + off : NULL, fd,
                                offset + off, n);
    if (sealed < 0)
      return (int)sealed;
    struct iovec iov[2] = {{scratch->wire, head},
                           {scratch->chunk, (size_t)sealed}};
    int rc = pm__tcp_writev_full(conn->fd, head ? iov : iov + 1,
                                 head ? 2 : 1, deadline_ns, conn->peer);
    if (rc)
      return rc;
    head = 0;
  }
  return 0;
}

/* Send a frame and the page bytes after it: from memory (data) or from a
 * file (data NULL: fd at offset), in the clear or sealed. */
static int send_all(pm_tcp_conn *conn, pm_tcp_scratch *scratch,
                    size_t wire_length, const uint8_t *data, int fd,
                    uint64_t offset, size_t length, uint64_t deadline_ns) {
  if (length > 0 && !conn->hs.insecure_data)
    return send_sealed(conn, scratch, wire_length, data, fd, offset, length,
                       deadline_ns);
  if (length > 0 && !data)
    return pm__tcp_sendfile_full(conn->fd, scratch->wire, wire_length, fd,
                                 offset, length, deadline_ns, conn->peer);
  struct iovec iov[2] = {{scratch->wire, wire_length},
                         {(void *)data, length}};
  return pm__tcp_writev_full(conn->fd, iov, length ? 2 : 1, deadline_ns,
                             conn->peer);
}

static int conn_send(pm_tcp_conn *conn, const Pm__PageFrame *frame,
                     const void *data, int fd, uint64_t offset, size_t length,
                     uint64_t deadline_ns, bool *sealed) {
  *sealed = !conn->hs.insecure_data;
  pm_tcp_scratch *scratch = need_scratch(conn);
  if (!scratch)
    return PM_ENOMEM;
  int64_t wire = seal_frame(conn, scratch, frame);
  if (wire < 0)
    return (int)wire;
  int rc = send_all(conn, scratch, (size_t)wire, data, fd, offset, length,
                    deadline_ns);
  if (rc)
    conn->broken = true;
  return rc;
}

int pm__tcp_conn_send_file(pm_tcp_conn *conn, const Pm__PageFrame *frame,
                           int fd, uint64_t offset, size_t length,
                           uint64_t deadline_ns, bool *sealed) {
  return conn_send(conn, frame, NULL, fd, offset, length, deadline_ns,
                   sealed);
}

int pm__tcp_conn_send(pm_tcp_conn *conn, const Pm__PageFrame *frame,
                      const void *data, size_t length, uint64_t deadline_ns,
                      bool *sealed) {
  return conn_send(conn, frame, data, -1, 0, length, deadline_ns, sealed);
}

/* Read exactly `length` bytes of the stream into dst: first what an
 * earlier receive read ahead, then with receives that fill dst and read
 * ahead up to PM_TCP_READAHEAD more bytes in the same system call. */
static int conn_read(pm_tcp_conn *conn, void *dst, size_t length,
                     uint64_t deadline_ns) {
  uint8_t *out = dst;
  size_t have = conn->rlen - conn->rpos;
  if (have > 0) {
    size_t take = PM_MIN(have, length);
    memcpy(out, conn->readahead + conn->rpos, take);
    conn->rpos += (uint32_t)take;
    out += take;
    length -= take;
  }
  if (conn->rpos == conn->rlen)
    conn->rpos = conn->rlen = 0;
  while (length > 0) {
    struct iovec iov[2] = {{out, length},
                           {conn->readahead, sizeof conn->readahead}};
    ssize_t got = pm__tcp_recv_some(conn->fd, iov, 2, conn->awaiting_answer,
                                    conn->blocking, deadline_ns, conn->peer);
    conn->awaiting_answer = false;
    if (got < 0)
      return (int)got;
    if ((size_t)got <= length) {
      out += got;
      length -= (size_t)got;
    } else {
      conn->rlen = (uint32_t)((size_t)got - length);
      length = 0;
    }
  }
  return 0;
}

bool pm__tcp_conn_buffered(const pm_tcp_conn *conn) {
  return conn->rlen > conn->rpos;
}

/* Read one sealed message of at most `cap` bytes into the scratch and open
 * it into scratch->plain. Returns the plaintext length. */
static int64_t recv_sealed(pm_tcp_conn *conn, pm_tcp_scratch *scratch,
                           uint64_t deadline_ns) {
  int rc = conn_read(conn, scratch->wire, PM_FRAME_PREFIX, deadline_ns);
  if (rc)
    return rc;
  int64_t sealed = pm__frame_prefix(scratch->wire, PM_TCP_SEALED_MAX);
  if (sealed < 0)
    return pm__frame_err_prefix((int)sealed, conn->peer);
  if (sealed <= (int64_t)PM_TCP_ABYTES)
    return pm__errf(PM_EPROTO, "%s: sealed frame of %lld bytes", conn->peer,
                    (long long)sealed);
  rc = conn_read(conn, scratch->wire + PM_FRAME_PREFIX, (size_t)sealed,
                 deadline_ns);
  if (rc)
    return rc;
  unsigned long long plain = 0;
  unsigned char tag = 0;
  if (crypto_secretstream_xchacha20poly1305_pull(
          &conn->hs.secrets->recv_state, scratch->plain, &plain, &tag,
          scratch->wire + PM_FRAME_PREFIX, (unsigned long long)sealed, NULL,
          0) != 0 ||
      tag != crypto_secretstream_xchacha20poly1305_TAG_MESSAGE)
    return pm__errf(PM_EPROTO, "%s: frame fails authentication", conn->peer);
  return (int64_t)plain;
}

int pm__tcp_conn_recv_frame(pm_tcp_conn *conn, uint32_t max_page_size,
                            uint64_t deadline_ns, Pm__PageFrame **out) {
  pm_tcp_scratch *scratch = need_scratch(conn);
  if (!scratch)
    return PM_ENOMEM;
  int64_t plain = recv_sealed(conn, scratch, deadline_ns);
  int rc = (int)plain;
  if (plain >= 0)
    rc = pm__frame_decode(&scratch->arena, scratch->plain, (size_t)plain,
                          max_page_size, out);
  if (rc) {
    conn->broken = true;
    if (plain >= 0)
      return pm__frame_err_prefix(rc, conn->peer);
  }
  return rc;
}

/* Receive the page bytes after a frame into dst in chunks (each opened
 * in place when sealed) and checksum each chunk as it lands, while it is
 * still in the cache. */
int pm__tcp_conn_recv_page(pm_tcp_conn *conn, void *dst, size_t length,
                           uint64_t deadline_ns, bool *sealed,
                           pm_checksum *sum) {
  *sealed = !conn->hs.insecure_data;
  pm_tcp_scratch *scratch = need_scratch(conn);
  int rc = scratch ? 0 : PM_ENOMEM;
  if (!rc)
    pm__checksum_reset(scratch->sum);
  uint8_t *out = dst;
  for (size_t off = 0; !rc && off < length; off += PM_TCP_CHUNK) {
    size_t n = PM_MIN(PM_TCP_CHUNK, length - off);
    rc = conn_read(conn, out + off, n, deadline_ns);
    if (!rc && *sealed) {
      uint8_t tag[PM_TCP_TAG];
      rc = conn_read(conn, tag, sizeof tag, deadline_ns);
      if (!rc && pm__tcp_bulk_open(&conn->hs.bulk, out + off, n, tag) != 0)
        rc = pm__errf(PM_ECORRUPT, "%s: page bytes fail authentication",
                      conn->peer);
    }
    if (!rc)
      pm__checksum_update(scratch->sum, out + off, n);
  }
  if (rc)
    conn->broken = true;
  else
    *sum = pm__checksum_final(scratch->sum);
  return rc;
}
