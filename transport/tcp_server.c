/*
 * transport/tcp_server.c - the serving half of the tcp transport. One
 * event-loop thread owns the listening socket and every connection that
 * is not busy: it accepts, runs the handshake without blocking (hello and
 * proof are small; bytes are gathered as they come, and a client that is
 * too slow is dropped at its handshake deadline), then moves the
 * established connection to a second epoll set that the `server_threads`
 * workers wait on together. Connections there are EPOLLONESHOT, so one
 * connection is with one worker at a time, and the worker that wakes
 * serves the request itself (no hand-off between threads): read the
 * frame, check it, call the core's serve_get / serve_put, answer, and
 * re-arm the connection.
 * A worker may wait a long time in the core (an owner's miss asks other
 * peers, then the origin), and what the other peers ask of us meanwhile
 * (a cached copy, which takes no waiting) must not queue behind it: two
 * busy owners would each wait for the other's workers until their
 * deadlines. So when every worker is stuck (a request waiting, none free,
 * none finished for PM_TCP_STUCK_NS) the loop starts one more, up to
 * PM_TCP_EXTRA_WORKERS more than `server_threads`; they stay.
 * Only a peer that proved the cluster key ever reaches a worker, so a slow
 * or hostile stranger can hold no thread.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/core_int.h"
#include "tcp_int.h"

#define SWEEP_INTERVAL_NS (200ull * 1000000ull)
#define LOOP_EVENTS 64

/* ---- connection list ---------------------------------------------------- */

static void conn_unlink(pm_tcp *tcp, pm_tcp_conn *conn) {
  if (conn->prev)
    conn->prev->next = conn->next;
  else
    tcp->server_conns = conn->next;
  if (conn->next)
    conn->next->prev = conn->prev;
  tcp->server_conn_count--;
  if (conn->hs_stage < 2)
    tcp->handshaking--;
}

static void conn_close(pm_tcp *tcp, pm_tcp_conn *conn) {
  pthread_mutex_lock(&tcp->server_lock);
  conn_unlink(tcp, conn);
  pthread_mutex_unlock(&tcp->server_lock);
  epoll_ctl(conn->established ? tcp->work_fd : tcp->epoll_fd, EPOLL_CTL_DEL,
            conn->fd, NULL);
  pm__tcp_conn_free(conn);
}

static void accept_one(pm_tcp *tcp, int fd, const char *peer) {
  pm_tcp_conn *conn = pm__tcp_conn_new(fd, peer);
  if (!conn || pm__tcp_hs_start(&conn->hs, true, tcp->cluster_key,
                                tcp->cluster_id, tcp->insecure_data,
                                tcp->offer_aegis) != 0) {
    PM_LOG_RATELIMITED(PM_LOG_WARN, "tcp", 1000, "%s: dropped: out of memory",
                       peer);
    if (conn)
      pm__tcp_conn_free(conn);
    else
      close(fd);
    return;
  }
  conn->hs_deadline_ns = pm__now_ns() + PM_TCP_HANDSHAKE_NS;
  pthread_mutex_lock(&tcp->server_lock);
  conn->next = tcp->server_conns;
  if (conn->next)
    conn->next->prev = conn;
  tcp->server_conns = conn;
  tcp->server_conn_count++;
  tcp->handshaking++;
  pthread_mutex_unlock(&tcp->server_lock);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = conn};
  if (epoll_ctl(tcp->epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0)
    conn_close(tcp, conn);
  else
    atomic_fetch_add(&tcp->accepts, 1);
}

static bool server_full(pm_tcp *tcp) {
  pthread_mutex_lock(&tcp->server_lock);
  bool full = tcp->server_conn_count >= PM_TCP_SERVER_CONNS_MAX;
  pthread_mutex_unlock(&tcp->server_lock);
  return full;
}

/* With PM_TCP_HANDSHAKING_MAX handshakes under way, the one that has
 * waited longest, to make room; else NULL. Sockets that connect and say
 * nothing (anyone can open them, no key needed) would otherwise keep
 * every peer out until their handshake deadline, again and again; a
 * peer's own handshake takes a round trip, so only a flood much faster
 * than that can push one out. Handshaking connections belong to the loop
 * thread, which calls this. */
static pm_tcp_conn *oldest_handshake(pm_tcp *tcp) {
  pm_tcp_conn *oldest = NULL;
  pthread_mutex_lock(&tcp->server_lock);
  if (tcp->handshaking >= PM_TCP_HANDSHAKING_MAX)
    for (pm_tcp_conn *c = tcp->server_conns; c; c = c->next)
      if (c->hs_stage < 2 &&
          (!oldest || c->hs_deadline_ns <= oldest->hs_deadline_ns))
        oldest = c;
  pthread_mutex_unlock(&tcp->server_lock);
  return oldest;
}

static void accept_all(pm_tcp *tcp) {
  for (;;) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = accept4(tcp->listen_fd, (struct sockaddr *)&ss, &len,
                     SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
      return; /* EAGAIN, or a transient error: epoll will call again */
    char peer[PM_ADDR_MAX];
    pm__tcp_format_addr(&ss, peer, sizeof peer);
    if (server_full(tcp)) {
      PM_LOG_RATELIMITED(PM_LOG_WARN, "tcp", 1000,
                         "%s: refused: too many connections", peer);
      close(fd);
      continue;
    }
    pm_tcp_conn *oldest = oldest_handshake(tcp);
    if (oldest) {
      PM_LOG_RATELIMITED(PM_LOG_WARN, "tcp", 1000,
                         "%s: dropped: %u handshakes under way, it waited "
                         "longest", oldest->peer, PM_TCP_HANDSHAKING_MAX);
      conn_close(tcp, oldest);
    }
    pm__tcp_sockopts(fd, ""); /* its congestion control is the listener's */
    accept_one(tcp, fd, peer);
  }
}

/* ---- handshake on the loop thread -------------------------------------- */

static void hs_refused(pm_tcp *tcp, pm_tcp_conn *conn, int rc) {
  atomic_fetch_add(&tcp->auth_failures, 1);
  PM_LOG_RATELIMITED(PM_LOG_WARN, "tcp", 1000, "%s: handshake refused: %s",
                     conn->peer, pm__errmsg());
  (void)rc;
  conn_close(tcp, conn);
}

/* Send a small handshake message on a non-blocking socket: it fits the
 * socket buffer of a fresh connection, so a short write is an error. */
static bool hs_send(pm_tcp_conn *conn, const uint8_t *msg, size_t length) {
  ssize_t n = send(conn->fd, msg, length, MSG_NOSIGNAL | MSG_DONTWAIT);
  return n == (ssize_t)length;
}

static void hs_established(pm_tcp *tcp, pm_tcp_conn *conn) {
  if (pm__tcp_hs_done(&conn->hs) != 0) {
    conn_close(tcp, conn);
    return;
  }
  pthread_mutex_lock(&tcp->server_lock);
  conn->hs_stage = 2;
  conn->established = true;
  tcp->handshaking--;
  pthread_mutex_unlock(&tcp->server_lock);
  pm__tcp_count_handshake(tcp, &conn->hs);
  epoll_ctl(tcp->epoll_fd, EPOLL_CTL_DEL, conn->fd, NULL);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT, .data.ptr = conn};
  if (epoll_ctl(tcp->work_fd, EPOLL_CTL_ADD, conn->fd, &ev) != 0)
    conn_close(tcp, conn);
}

/* Act on a complete hello (stage 0) or proof (stage 1). */
static void hs_message(pm_tcp *tcp, pm_tcp_conn *conn) {
  int rc;
  if (conn->hs_stage == 0) {
    rc = pm__tcp_hs_peer_hello(&conn->hs, conn->hs_buf, conn->hs_have);
    if (rc)
      return hs_refused(tcp, conn, rc);
    if (!hs_send(conn, conn->hs.my_hello, PM_TCP_HELLO_SIZE))
      return conn_close(tcp, conn);
    conn->hs_stage = 1;
    conn->hs_have = 0;
    return;
  }
  rc = pm__tcp_hs_check_proof(&conn->hs, conn->hs_buf, conn->hs_have);
  if (rc)
    return hs_refused(tcp, conn, rc);
  uint8_t proof[PM_TCP_PROOF_SIZE];
  pm__tcp_hs_proof(&conn->hs, proof);
  if (!hs_send(conn, proof, sizeof proof))
    return conn_close(tcp, conn);
  hs_established(tcp, conn);
}

static void hs_step(pm_tcp *tcp, pm_tcp_conn *conn) {
  size_t want = conn->hs_stage == 0 ? PM_TCP_HELLO_SIZE : PM_TCP_PROOF_SIZE;
  ssize_t n = recv(conn->fd, conn->hs_buf + conn->hs_have,
                   want - conn->hs_have, MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return;
  if (n <= 0) {
    PM_LOG(PM_LOG_DEBUG, "tcp", "%s: left during the handshake", conn->peer);
    return conn_close(tcp, conn);
  }
  conn->hs_have += (size_t)n;
  if (conn->hs_have == want)
    hs_message(tcp, conn);
}

/* Drop connections whose handshake is past its deadline. */
static void sweep(pm_tcp *tcp) {
  uint64_t now = pm__now_ns();
  pm_tcp_conn *late = NULL;
  pthread_mutex_lock(&tcp->server_lock);
  for (pm_tcp_conn *c = tcp->server_conns, *next; c; c = next) {
    next = c->next;
    if (c->hs_stage < 2 && now >= c->hs_deadline_ns) {
      conn_unlink(tcp, c);
      c->late_next = late;
      late = c;
    }
  }
  pthread_mutex_unlock(&tcp->server_lock);
  while (late) {
    pm_tcp_conn *next = late->late_next;
    PM_LOG_RATELIMITED(PM_LOG_WARN, "tcp", 1000,
                       "%s: handshake timed out", late->peer);
    atomic_fetch_add(&tcp->timeouts, 1);
    epoll_ctl(tcp->epoll_fd, EPOLL_CTL_DEL, late->fd, NULL);
    pm__tcp_conn_free(late);
    late = next;
  }
}

/* ---- the loop ----------------------------------------------------------- */

static bool stopping(pm_tcp *tcp) {
  pthread_mutex_lock(&tcp->server_lock);
  bool stop = tcp->stopping;
  pthread_mutex_unlock(&tcp->server_lock);
  return stop;
}

static void *worker_main(void *arg);

/* Start workers[worker_count]; the loop thread's, or start_threads'. */
static int start_worker(pm_tcp *tcp) {
  unsigned i = atomic_load(&tcp->worker_count);
  tcp->workers[i].tcp = tcp;
  if (pthread_create(&tcp->workers[i].thread, NULL, worker_main,
                     &tcp->workers[i]) != 0)
    return pm__errf(PM_ENOMEM, "tcp %s: cannot start a worker",
                    tcp->address);
  atomic_store(&tcp->worker_count, i + 1);
  return 0;
}

/* One more worker if every one is stuck: a request is waiting in the
 * workers' set (it polls readable while a connection is ready), no worker
 * waits for one and no request finished for PM_TCP_STUCK_NS. */
static void grow_if_stuck(pm_tcp *tcp) {
  uint64_t now = pm__now_ns();
  uint64_t done = atomic_load(&tcp->requests_done);
  struct pollfd ready = {.fd = tcp->work_fd, .events = POLLIN};
  bool stuck = atomic_load(&tcp->idle_workers) == 0 &&
               poll(&ready, 1, 0) == 1 && done == tcp->stuck_done;
  tcp->stuck_done = done;
  if (!stuck) {
    tcp->stuck_since_ns = 0;
    return;
  }
  if (!tcp->stuck_since_ns)
    tcp->stuck_since_ns = now;
  unsigned count = atomic_load(&tcp->worker_count);
  if (now - tcp->stuck_since_ns < PM_TCP_STUCK_NS ||
      count >= tcp->worker_cap)
    return;
  tcp->stuck_since_ns = 0;
  if (start_worker(tcp) == 0)
    PM_LOG(PM_LOG_INFO, "tcp", "%s: all %u workers busy, requests waiting: "
           "worker %u started (at most %u)", tcp->address, count, count + 1,
           tcp->worker_cap);
}

static void *loop_main(void *arg) {
  pm_tcp *tcp = arg;
  struct epoll_event events[LOOP_EVENTS];
  uint64_t next_sweep = pm__now_ns() + SWEEP_INTERVAL_NS;
  while (!stopping(tcp)) {
    int n = epoll_wait(tcp->epoll_fd, events, LOOP_EVENTS,
                       (int)(PM_TCP_STUCK_NS / 2000000u));
    for (int i = 0; i < n; i++) {
      void *ptr = events[i].data.ptr;
      if (ptr == &tcp->listen_fd) {
        accept_all(tcp);
      } else if (ptr != &tcp->wake_fd) {
        hs_step(tcp, ptr);
      }
    }
    grow_if_stuck(tcp);
    if (pm__now_ns() >= next_sweep) {
      sweep(tcp);
      next_sweep = pm__now_ns() + SWEEP_INTERVAL_NS;
    }
  }
  return NULL;
}

/* ---- workers ------------------------------------------------------------ */

/* Wait for a readable established connection (NULL when stopping). */
static pm_tcp_conn *next_ready(pm_tcp *tcp) {
  for (;;) {
    struct epoll_event ev;
    atomic_fetch_add(&tcp->idle_workers, 1);
    int n = epoll_wait(tcp->work_fd, &ev, 1, 100);
    atomic_fetch_sub(&tcp->idle_workers, 1);
    if (stopping(tcp))
      return NULL;
    if (n == 1 && ev.data.ptr != &tcp->wake_fd)
      return ev.data.ptr;
  }
}

/* Hand a connection back to the workers' epoll set after its requests,
 * or close it (rc: the last request's result). */
static void hand_back(pm_tcp *tcp, pm_tcp_conn *conn, int rc) {
  struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT,
                           .data.ptr = conn};
  if (rc || conn->broken ||
      epoll_ctl(tcp->work_fd, EPOLL_CTL_MOD, conn->fd, &ev) != 0)
    conn_close(tcp, conn);
}

/* After an answer, wait a little for the connection's next request and
 * serve it in this worker, rather than hand the connection back to epoll
 * at once. Under load, going back through epoll for every request cost
 * ~100 us of CPU per request on the VM we measure (a 1 MiB page's whole
 * transfer costs ~300; measured with a plain socket loop both ways), and
 * with the connection kept, 64 KiB GETs at queue depth 8 moved ~20% more.
 * Only under load, though: with no other worker busy, a worker waiting on
 * the socket itself was woken on the requester's CPU, and a lone 1 MiB
 * sealed GET, whose sealing and opening then no longer overlap, took twice
 * as long. So a worker lingers only while another worker is busy.
 *
 * A lingering worker waits on the workers' epoll set too, so it is as
 * free for the other connections as one in epoll_wait, and every worker
 * may linger at once (64 KiB GETs at queue depth 8 moved 10-16% more than
 * when each lingering one kept another idle). When another connection
 * has a request, the worker takes it from the set itself (epoll_wait
 * without waiting: one of the woken workers gets it, the others go on
 * lingering), unless its own request came too and a worker is idle to
 * take the other. Returns the connection to serve next: conn (its request
 * came), another one taken from the set (the caller hands conn back), or
 * NULL (the time is up, or the transport is stopping). */
static pm_tcp_conn *linger(pm_tcp *tcp, pm_tcp_conn *conn) {
  if (atomic_load(&tcp->worker_count) < atomic_load(&tcp->idle_workers) + 2)
    return NULL; /* no other worker busy */
  uint64_t end = pm__now_ns() + PM_TCP_LINGER_MS * 1000000ull;
  for (uint64_t now = pm__now_ns(); now < end; now = pm__now_ns()) {
    struct pollfd pfd[2] = {{.fd = conn->fd, .events = POLLIN},
                            {.fd = tcp->work_fd, .events = POLLIN}};
    struct timespec left = {.tv_sec = 0, .tv_nsec = (long)(end - now)};
    if (ppoll(pfd, 2, &left, NULL) <= 0)
      return NULL;
    bool mine = (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
    if ((pfd[1].revents & POLLIN) &&
        (!mine || atomic_load(&tcp->idle_workers) == 0)) {
      struct epoll_event ev;
      if (epoll_wait(tcp->work_fd, &ev, 1, 0) == 1)
        return ev.data.ptr == &tcp->wake_fd ? NULL : ev.data.ptr;
    }
    if (mine)
      return conn;
  }
  return NULL;
}

static void *worker_main(void *arg) {
  pm_tcp_worker *worker = arg;
  pm_tcp *tcp = worker->tcp;
  pm_tcp_conn *conn = NULL;
  for (;;) {
    if (!conn && (conn = next_ready(tcp)) == NULL)
      return NULL;
    int rc = pm__tcp_serve_one(worker, conn);
    atomic_fetch_add(&tcp->requests_done, 1);
    /* A request that arrived with the last one is already read: epoll
     * would not report it. */
    if (!rc && !conn->broken && pm__tcp_conn_buffered(conn))
      continue;
    pm_tcp_conn *next = !rc && !conn->broken ? linger(tcp, conn) : NULL;
    if (next == conn) {
      atomic_fetch_add(&tcp->lingered, 1);
      continue;
    }
    hand_back(tcp, conn, rc);
    conn = next;
  }
}

static int start_threads(pm_tcp *tcp, unsigned threads) {
  tcp->worker_cap = threads + PM_TCP_EXTRA_WORKERS;
  tcp->workers = calloc(tcp->worker_cap, sizeof *tcp->workers);
  if (!tcp->workers)
    return pm__errf(PM_ENOMEM, "tcp %s: cannot allocate workers",
                    tcp->address);
  for (unsigned i = 0; i < threads; i++) {
    int rc = start_worker(tcp);
    if (rc)
      return rc;
  }
  if (pthread_create(&tcp->loop_thread, NULL, loop_main, tcp) != 0)
    return pm__errf(PM_ENOMEM, "tcp %s: cannot start the loop",
                    tcp->address);
  tcp->loop_started = true;
  return 0;
}

int pm__tcp_server_start(pm_tcp *tcp, unsigned threads) {
  tcp->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  tcp->work_fd = epoll_create1(EPOLL_CLOEXEC);
  tcp->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (tcp->epoll_fd < 0 || tcp->work_fd < 0 || tcp->wake_fd < 0)
    return pm__errf(pm__err_from_errno(errno), "tcp %s: epoll: %s",
                    tcp->address, strerror(errno));
  struct epoll_event listen_ev = {.events = EPOLLIN,
                                  .data.ptr = &tcp->listen_fd};
  struct epoll_event wake_ev = {.events = EPOLLIN, .data.ptr = &tcp->wake_fd};
  if (epoll_ctl(tcp->epoll_fd, EPOLL_CTL_ADD, tcp->listen_fd, &listen_ev) ||
      epoll_ctl(tcp->epoll_fd, EPOLL_CTL_ADD, tcp->wake_fd, &wake_ev) ||
      epoll_ctl(tcp->work_fd, EPOLL_CTL_ADD, tcp->wake_fd, &wake_ev))
    return pm__errf(pm__err_from_errno(errno), "tcp %s: epoll_ctl: %s",
                    tcp->address, strerror(errno));
  return start_threads(tcp, threads ? threads : 1);
}

/* Wake the threads (the eventfd is never drained, so every epoll_wait on
 * either set returns), cut every connection so that blocked I/O returns,
 * join and free what is left. Safe after a partial start. */
void pm__tcp_server_stop(pm_tcp *tcp) {
  pthread_mutex_lock(&tcp->server_lock);
  tcp->stopping = true;
  for (pm_tcp_conn *c = tcp->server_conns; c; c = c->next)
    shutdown(c->fd, SHUT_RDWR);
  pthread_mutex_unlock(&tcp->server_lock);
  if (tcp->wake_fd >= 0) {
    uint64_t one = 1;
    ssize_t r = write(tcp->wake_fd, &one, sizeof one);
    (void)r;
  }
  if (tcp->loop_started)
    pthread_join(tcp->loop_thread, NULL);
  /* the loop, which adds workers, has ended */
  unsigned workers = atomic_load(&tcp->worker_count);
  for (unsigned i = 0; i < workers && tcp->workers; i++) {
    pthread_join(tcp->workers[i].thread, NULL);
    free(tcp->workers[i].page);
  }
  free(tcp->workers);
  tcp->workers = NULL;
  while (tcp->server_conns) {
    pm_tcp_conn *conn = tcp->server_conns;
    conn_unlink(tcp, conn);
    pm__tcp_conn_free(conn);
  }
  if (tcp->epoll_fd >= 0)
    close(tcp->epoll_fd);
  if (tcp->work_fd >= 0)
    close(tcp->work_fd);
  if (tcp->wake_fd >= 0)
    close(tcp->wake_fd);
  tcp->epoll_fd = tcp->work_fd = tcp->wake_fd = -1;
}
