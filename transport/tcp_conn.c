/*
 * transport/tcp_conn.c - one established tcp connection as a secure
 * channel: sealing and opening control frames with the per-direction
 * secretstream states, and moving page bytes after a frame, either raw
 * (both ends asked for insecure_data: straight from the page buffer and
 * straight into the caller's buffer) or as sealed chunks of PM_TCP_CHUNK
 * bytes (each decrypted once, into its place in the caller's buffer).
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

static void scratch_free(void *scratch) {
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

/* Seal one chunk of page bytes into scratch->chunk; returns its size. */
static size_t seal_chunk(pm_tcp_conn *conn, pm_tcp_scratch *scratch,
                         const uint8_t *data, size_t length) {
  unsigned long long sealed = 0;
  crypto_secretstream_xchacha20poly1305_push(
      &conn->hs.secrets->send_state, scratch->chunk, &sealed, data, length,
      NULL, 0, crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
  return (size_t)sealed;
}

static int send_sealed_page(pm_tcp_conn *conn, pm_tcp_scratch *scratch,
                            const uint8_t *data, size_t length,
                            uint64_t deadline_ns) {
  for (size_t off = 0; off < length; off += PM_TCP_CHUNK) {
    size_t n = seal_chunk(conn, scratch, data + off,
                          PM_MIN(PM_TCP_CHUNK, length - off));
    int rc = pm__tcp_write_full(conn->fd, scratch->chunk, n, deadline_ns,
                                conn->peer);
    if (rc)
      return rc;
  }
  return 0;
}

/* The frame and the first part of the page bytes in one system call, then
 * the rest. */
static int send_all(pm_tcp_conn *conn, pm_tcp_scratch *scratch,
                    size_t wire_length, const uint8_t *data, size_t length,
                    uint64_t deadline_ns) {
  struct iovec iov[2] = {{scratch->wire, wire_length}};
  if (length == 0)
    return pm__tcp_writev_full(conn->fd, iov, 1, deadline_ns, conn->peer);
  if (conn->hs.insecure_data) {
    iov[1] = (struct iovec){(void *)data, length};
    return pm__tcp_writev_full(conn->fd, iov, 2, deadline_ns, conn->peer);
  }
  size_t first = PM_MIN(PM_TCP_CHUNK, length);
  iov[1] = (struct iovec){scratch->chunk,
                          seal_chunk(conn, scratch, data, first)};
  int rc = pm__tcp_writev_full(conn->fd, iov, 2, deadline_ns, conn->peer);
  if (rc)
    return rc;
  return send_sealed_page(conn, scratch, data + first, length - first,
                          deadline_ns);
}

int pm__tcp_conn_send(pm_tcp_conn *conn, const Pm__PageFrame *frame,
                      const void *data, size_t length, uint64_t deadline_ns,
                      bool *sealed) {
  *sealed = !conn->hs.insecure_data;
  pm_tcp_scratch *scratch = need_scratch(conn);
  if (!scratch)
    return PM_ENOMEM;
  int64_t wire = seal_frame(conn, scratch, frame);
  if (wire < 0)
    return (int)wire;
  int rc = send_all(conn, scratch, (size_t)wire, data, length, deadline_ns);
  if (rc)
    conn->broken = true;
  return rc;
}

/* Read one sealed message of at most `cap` bytes into the scratch and open
 * it into scratch->plain. Returns the plaintext length. */
static int64_t recv_sealed(pm_tcp_conn *conn, pm_tcp_scratch *scratch,
                           uint64_t deadline_ns) {
  int rc = pm__tcp_read_full(conn->fd, scratch->wire, PM_FRAME_PREFIX,
                             deadline_ns, conn->peer);
  if (rc)
    return rc;
  int64_t sealed = pm__frame_prefix(scratch->wire, PM_TCP_SEALED_MAX);
  if (sealed < 0)
    return pm__frame_err_prefix((int)sealed, conn->peer);
  if (sealed <= (int64_t)PM_TCP_ABYTES)
    return pm__errf(PM_EPROTO, "%s: sealed frame of %lld bytes", conn->peer,
                    (long long)sealed);
  rc = pm__tcp_read_full(conn->fd, scratch->wire + PM_FRAME_PREFIX,
                         (size_t)sealed, deadline_ns, conn->peer);
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

static int recv_sealed_page(pm_tcp_conn *conn, pm_tcp_scratch *scratch,
                            uint8_t *dst, size_t length,
                            uint64_t deadline_ns) {
  for (size_t off = 0; off < length; off += PM_TCP_CHUNK) {
    size_t n = PM_MIN(PM_TCP_CHUNK, length - off);
    int rc = pm__tcp_read_full(conn->fd, scratch->chunk, n + PM_TCP_ABYTES,
                               deadline_ns, conn->peer);
    if (rc)
      return rc;
    unsigned long long plain = 0;
    unsigned char tag = 0;
    if (crypto_secretstream_xchacha20poly1305_pull(
            &conn->hs.secrets->recv_state, dst + off, &plain, &tag,
            scratch->chunk, n + PM_TCP_ABYTES, NULL, 0) != 0 ||
        plain != n)
      return pm__errf(PM_ECORRUPT, "%s: page bytes fail authentication",
                      conn->peer);
  }
  return 0;
}

int pm__tcp_conn_recv_page(pm_tcp_conn *conn, void *dst, size_t length,
                           uint64_t deadline_ns, bool *sealed) {
  *sealed = !conn->hs.insecure_data;
  int rc;
  if (conn->hs.insecure_data) {
    rc = pm__tcp_read_full(conn->fd, dst, length, deadline_ns, conn->peer);
  } else {
    pm_tcp_scratch *scratch = need_scratch(conn);
    rc = scratch ? recv_sealed_page(conn, scratch, dst, length, deadline_ns)
                 : PM_ENOMEM;
  }
  if (rc)
    conn->broken = true;
  return rc;
}
