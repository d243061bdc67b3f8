/*
 * transport/tcp_client.c - the requesting half of the tcp transport: a
 * pool of authenticated connections per remote address, and GET / PUT on
 * them with a deadline on every step (connect, handshake, send, receive).
 *
 * One request at a time per connection, several connections per peer: a
 * requesting thread checks a connection out, does its whole exchange on
 * its own stack and buffers, and receives the page straight into the
 * caller's buffer; pages are bulk transfers, so multiplexing them on one
 * stream would only serialise them behind each other (and need a demux
 * thread and a hand-off). Idle connections are kept (up to PM_TCP_IDLE_MAX
 * per peer) and reused; a reused connection that turns out dead is dropped
 * and the request retried once on a fresh one. A connection that timed
 * out or lost step is never reused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/core_int.h"
#include "tcp_int.h"

struct pm_tcp_pool_peer {
  pm_tcp_pool_peer *next;
  char addr[PM_ADDR_MAX];
  unsigned idle_count;
  pm_tcp_conn *idle[PM_TCP_IDLE_MAX];
};

static unsigned bucket_of(const char *addr) {
  uint32_t h = 2166136261u;
  for (const char *p = addr; *p; p++)
    h = (h ^ (uint8_t)*p) * 16777619u;
  return h % PM_TCP_POOL_BUCKETS;
}

/* The pool entry of addr (created when missing), under pool_lock. */
static pm_tcp_pool_peer *pool_peer(pm_tcp *tcp, const char *addr,
                                   bool create) {
  unsigned b = bucket_of(addr);
  for (pm_tcp_pool_peer *p = tcp->pool[b]; p; p = p->next)
    if (strcmp(p->addr, addr) == 0)
      return p;
  if (!create)
    return NULL;
  pm_tcp_pool_peer *p = calloc(1, sizeof *p);
  if (!p)
    return NULL;
  snprintf(p->addr, sizeof p->addr, "%s", addr);
  p->next = tcp->pool[b];
  tcp->pool[b] = p;
  return p;
}

static void list_add(pm_tcp *tcp, pm_tcp_conn *conn) {
  conn->prev = NULL;
  conn->next = tcp->client_conns;
  if (conn->next)
    conn->next->prev = conn;
  tcp->client_conns = conn;
}

static void list_remove(pm_tcp *tcp, pm_tcp_conn *conn) {
  if (conn->prev)
    conn->prev->next = conn->next;
  else
    tcp->client_conns = conn->next;
  if (conn->next)
    conn->next->prev = conn->prev;
}

static void drop(pm_tcp *tcp, pm_tcp_conn *conn) {
  pthread_mutex_lock(&tcp->pool_lock);
  list_remove(tcp, conn);
  pthread_mutex_unlock(&tcp->pool_lock);
  pm__tcp_conn_free(conn);
}

static void checkin(pm_tcp *tcp, pm_tcp_conn *conn) {
  pthread_mutex_lock(&tcp->pool_lock);
  /* Bytes beyond the answer: the server is out of step. */
  pm_tcp_pool_peer *p = conn->broken || tcp->closing ||
                                pm__tcp_conn_buffered(conn)
                            ? NULL
                            : pool_peer(tcp, conn->peer, true);
  if (p && p->idle_count < PM_TCP_IDLE_MAX) {
    conn->idle_since_ns = pm__now_ns();
    p->idle[p->idle_count++] = conn;
    conn = NULL;
  }
  pthread_mutex_unlock(&tcp->pool_lock);
  if (conn)
    drop(tcp, conn);
}

/* An idle connection to addr that still looks alive, or NULL. One used
 * moments ago is taken as it is (see PM_TCP_IDLE_TRUST_NS). */
static pm_tcp_conn *take_idle(pm_tcp *tcp, const char *addr) {
  for (;;) {
    pthread_mutex_lock(&tcp->pool_lock);
    pm_tcp_pool_peer *p = pool_peer(tcp, addr, false);
    pm_tcp_conn *conn = p && p->idle_count ? p->idle[--p->idle_count] : NULL;
    pthread_mutex_unlock(&tcp->pool_lock);
    if (!conn ||
        pm__now_ns() - conn->idle_since_ns < PM_TCP_IDLE_TRUST_NS ||
        !pm__tcp_idle_dead(conn->fd))
      return conn;
    drop(tcp, conn);
  }
}

/* The client's side of the handshake (see tcp_handshake.c). */
static int handshake(pm_tcp *tcp, pm_tcp_conn *conn, uint64_t deadline_ns) {
  int rc = pm__tcp_hs_start(&conn->hs, false, tcp->cluster_key,
                            tcp->cluster_id, tcp->insecure_data,
                            tcp->offer_aegis);
  uint8_t msg[PM_TCP_HELLO_SIZE];
  if (!rc)
    rc = pm__tcp_write_full(conn->fd, conn->hs.my_hello, PM_TCP_HELLO_SIZE,
                            deadline_ns, conn->peer);
  if (!rc)
    rc = pm__tcp_read_full(conn->fd, msg, PM_TCP_HELLO_SIZE, deadline_ns,
                           conn->peer);
  if (!rc)
    rc = pm__tcp_hs_peer_hello(&conn->hs, msg, PM_TCP_HELLO_SIZE);
  if (rc)
    return rc;
  uint8_t proof[PM_TCP_PROOF_SIZE];
  pm__tcp_hs_proof(&conn->hs, proof);
  rc = pm__tcp_write_full(conn->fd, proof, sizeof proof, deadline_ns,
                          conn->peer);
  if (!rc) {
    rc = pm__tcp_read_full(conn->fd, msg, PM_TCP_PROOF_SIZE, deadline_ns,
                           conn->peer);
    if (rc == PM_EUNREACHABLE) /* the server closed on our proof */
      rc = pm__errf(PM_EAUTH, "%s: handshake refused (wrong cluster key?)",
                    conn->peer);
  }
  if (!rc)
    rc = pm__tcp_hs_check_proof(&conn->hs, msg, PM_TCP_PROOF_SIZE);
  if (rc == PM_EAUTH)
    atomic_fetch_add(&tcp->auth_failures, 1);
  if (!rc)
    rc = pm__tcp_hs_done(&conn->hs);
  if (!rc)
    rc = pm__tcp_block_receives(conn->fd);
  conn->blocking = rc == 0;
  return rc;
}

static int open_conn(pm_tcp *tcp, const char *addr, uint64_t deadline_ns,
                     pm_tcp_conn **out) {
  int fd = -1;
  int rc = pm__tcp_connect(addr, tcp->congestion, deadline_ns, &fd);
  if (rc)
    return rc;
  pm_tcp_conn *conn = pm__tcp_conn_new(fd, addr);
  if (!conn) {
    close(fd);
    return pm__errf(PM_ENOMEM, "%s: cannot allocate a connection", addr);
  }
  pthread_mutex_lock(&tcp->pool_lock);
  list_add(tcp, conn);
  if (tcp->closing) /* close() already cut the others: cut this one too */
    shutdown(fd, SHUT_RDWR);
  pthread_mutex_unlock(&tcp->pool_lock);
  atomic_fetch_add(&tcp->connects, 1);
  rc = handshake(tcp, conn, deadline_ns);
  if (rc) {
    drop(tcp, conn);
    return rc;
  }
  pm__tcp_count_handshake(tcp, &conn->hs);
  conn->established = true;
  *out = conn;
  return 0;
}

/* ---- requests ------------------------------------------------------------ */

typedef struct request {
  const pm_page_request *req;
  bool is_put;
  uint8_t *dst;           /* GET */
  size_t capacity;
  const uint8_t *data;    /* PUT */
  size_t length;
  pm_checksum sum;
  uint64_t deadline_ns;
} request;

/* Send a GET, or a PUT and its page bytes. */
static int send_request(pm_tcp_conn *conn, const request *r,
                        uint64_t request_id, bool *sealed) {
  Pm__PageRequest page;
  pm__page_msg_request_out(r->req, &page);
  Pm__PageFrame frame = PM__PAGE_FRAME__INIT;
  Pm__PageGet get = PM__PAGE_GET__INIT;
  Pm__PagePut put = PM__PAGE_PUT__INIT;
  if (r->is_put) {
    put.request_id = request_id;
    put.page = &page;
    put.length = (uint32_t)r->length;
    put.checksum.data = (uint8_t *)r->sum.bytes;
    put.checksum.len = sizeof r->sum.bytes;
    frame.body_case = PM__PAGE_FRAME__BODY_PUT;
    frame.put = &put;
  } else {
    get.request_id = request_id;
    get.page = &page;
    get.rma_length = (uint32_t)PM_MIN(r->capacity, UINT32_MAX);
    frame.body_case = PM__PAGE_FRAME__BODY_GET;
    frame.get = &get;
  }
  return pm__tcp_conn_send(conn, &frame, r->data, r->is_put ? r->length : 0,
                           r->deadline_ns, sealed);
}

/* One exchange on one connection: the page length (GET), 0 (PUT), or a
 * pm_err. conn->broken tells whether the stream is still usable;
 * *answered whether the pm_err is the server's own answer (its origin
 * unreachable, a timeout of its own...): then the connection is sound and
 * the request is not to be sent again. */
static ssize_t exchange(pm_tcp *tcp, pm_tcp_conn *conn, const request *r,
                        bool *answered) {
  *answered = false;
  uint64_t request_id = conn->next_request_id++;
  bool sealed = false;
  int rc = send_request(conn, r, request_id, &sealed);
  /* The answer takes at least a wake-up of the server: poll first. */
  conn->awaiting_answer = rc == 0;
  Pm__PageFrame *frame = NULL;
  if (!rc)
    rc = pm__tcp_conn_recv_frame(conn, tcp->max_page_size, r->deadline_ns,
                                 &frame);
  uint32_t length = 0;
  uint8_t checksum[16];
  if (!rc)
    rc = pm__page_msg_response_in(frame, request_id,
                                  r->is_put ? 0 : r->capacity,
                                  tcp->max_page_size, &length, checksum,
                                  conn->peer);
  /* A status the server answered is followed by nothing */
  *answered = rc < 0 && frame &&
              frame->body_case == PM__PAGE_FRAME__BODY_RESPONSE &&
              frame->response->request_id == request_id &&
              frame->response->status == rc;
  if ((rc == PM_EPROTO || rc == PM_ETOOBIG) && !*answered)
    conn->broken = true;
  if (!rc && r->is_put)
    pm__tcp_count_page(tcp, r->length, sealed);
  if (rc || r->is_put)
    return rc;
  pm_checksum sum;
  rc = pm__tcp_conn_recv_page(conn, r->dst, length, r->deadline_ns, &sealed,
                              &sum);
  if (rc)
    return rc;
  pm__tcp_count_page(tcp, length, sealed);
  atomic_fetch_add(&tcp->bytes_received, length);
  if (memcmp(sum.bytes, checksum, 16) != 0)
    return pm__errf(PM_ECORRUPT, "%s: page %s #%llu failed its checksum",
                    conn->peer, r->req->uri,
                    (unsigned long long)r->req->page_index);
  return length;
}

static bool enter(pm_tcp *tcp) {
  pthread_mutex_lock(&tcp->pool_lock);
  bool open = !tcp->closing;
  if (open)
    tcp->inflight++;
  pthread_mutex_unlock(&tcp->pool_lock);
  return open;
}

static void leave(pm_tcp *tcp) {
  pthread_mutex_lock(&tcp->pool_lock);
  if (--tcp->inflight == 0)
    pthread_cond_broadcast(&tcp->drained);
  pthread_mutex_unlock(&tcp->pool_lock);
}

/* Run a request on a pooled or fresh connection; retry once on a fresh
 * connection if a reused one turns out dead. */
static ssize_t run(pm_tcp *tcp, const char *addr, const request *r) {
  ssize_t rc = PM_EUNREACHABLE;
  for (int attempt = 0; attempt < 2; attempt++) {
    pm_tcp_conn *conn = attempt == 0 ? take_idle(tcp, addr) : NULL;
    bool reused = conn != NULL;
    if (!conn && (rc = open_conn(tcp, addr, r->deadline_ns, &conn)) != 0)
      break;
    bool answered;
    rc = exchange(tcp, conn, r, &answered);
    if (answered || (rc != PM_ETIMEDOUT && rc != PM_EUNREACHABLE &&
                     rc != PM_ESHUTDOWN)) {
      checkin(tcp, conn);
      return rc;
    }
    conn->broken = true;
    drop(tcp, conn);
    if (!reused || rc != PM_EUNREACHABLE || pm__now_ns() >= r->deadline_ns)
      break;
    atomic_fetch_add(&tcp->retries, 1);
  }
  if (rc == PM_ETIMEDOUT)
    atomic_fetch_add(&tcp->timeouts, 1);
  return rc;
}

/* Count a finished request (before leave(): the object may go after). */
static void count(pm_tcp *tcp, const request *r, ssize_t rc) {
  if (rc < 0)
    return;
  if (r->is_put) {
    atomic_fetch_add(&tcp->puts_sent, 1);
    atomic_fetch_add(&tcp->bytes_sent, r->length);
  } else {
    atomic_fetch_add(&tcp->gets_sent, 1);
  }
}

static ssize_t submit(pm_tcp *tcp, const char *addr, const request *r) {
  if (!enter(tcp))
    return pm__errf(PM_ESHUTDOWN, "tcp %s: closing", tcp->address);
  ssize_t rc = run(tcp, addr, r);
  pthread_mutex_lock(&tcp->pool_lock);
  bool closing = tcp->closing;
  pthread_mutex_unlock(&tcp->pool_lock);
  if (rc < 0 && closing)
    rc = pm__errf(PM_ESHUTDOWN, "%s: transport closed during the request",
                  addr);
  count(tcp, r, rc);
  leave(tcp);
  return rc;
}

ssize_t pm__tcp_get_page(pm_transport *self, const char *addr,
                         const pm_page_request *req, void *dst,
                         size_t dst_len, uint64_t deadline_ns) {
  request r = {.req = req, .dst = dst, .capacity = dst_len,
               .deadline_ns = deadline_ns};
  return submit((pm_tcp *)self, addr, &r);
}

int pm__tcp_put_page(pm_transport *self, const char *addr,
                     const pm_page_request *req, const void *data,
                     size_t length, uint64_t deadline_ns) {
  pm_tcp *tcp = (pm_tcp *)self;
  if (length > tcp->max_page_size || length > req->page_size)
    return pm__errf(PM_ETOOBIG, "%s: page of %zu bytes too large", addr,
                    length);
  request r = {.req = req, .is_put = true, .data = data, .length = length,
               .sum = pm__checksum(data, length),
               .deadline_ns = deadline_ns};
  return (int)submit(tcp, addr, &r);
}

void pm__tcp_client_init(pm_tcp *tcp) {
  pthread_mutex_init(&tcp->pool_lock, NULL);
  pthread_cond_init(&tcp->drained, NULL);
}

/* Cut every connection (requests in flight fail with PM_ESHUTDOWN), wait
 * for them to leave, free the pool. */
void pm__tcp_client_fini(pm_tcp *tcp) {
  pthread_mutex_lock(&tcp->pool_lock);
  tcp->closing = true;
  for (pm_tcp_conn *c = tcp->client_conns; c; c = c->next)
    shutdown(c->fd, SHUT_RDWR);
  while (tcp->inflight > 0)
    pthread_cond_wait(&tcp->drained, &tcp->pool_lock);
  pthread_mutex_unlock(&tcp->pool_lock);
  for (unsigned b = 0; b < PM_TCP_POOL_BUCKETS; b++) {
    while (tcp->pool[b]) {
      pm_tcp_pool_peer *p = tcp->pool[b];
      tcp->pool[b] = p->next;
      free(p);
    }
  }
  while (tcp->client_conns) {
    pm_tcp_conn *conn = tcp->client_conns;
    list_remove(tcp, conn);
    pm__tcp_conn_free(conn);
  }
  pthread_mutex_destroy(&tcp->pool_lock);
  pthread_cond_destroy(&tcp->drained);
}
