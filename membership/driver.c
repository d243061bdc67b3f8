/*
 * membership/driver.c - runs one SWIM core for real: a UDP socket for
 * gossip packets and a TCP listener on the same port for push-pull frames
 * ([u32 big-endian length][sealed frame], capped, read and written with a
 * deadline), served by one thread with epoll and the core's deadlines as
 * the timeout. Every call into the core holds the driver's lock, so other
 * threads may take snapshots, read counters or change the metadata; the
 * events the core raises are queued and handed to the callback on the
 * driver's thread with the lock released.
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "membership/swim_impl.h"

#define CONN_MAX 64                      /* each way */
#define STREAM_DEADLINE_NS 5000000000ull /* to read or write one frame */
#define UDP_BATCH 64                     /* packets read per wakeup */

typedef struct conn {
  struct conn *next;
  int fd;
  bool outgoing, connected;
  uint64_t deadline;
  uint8_t head[4];
  size_t head_done;
  uint8_t *buf;
  size_t length, done, cap; /* cap: bytes of buf allocated so far */
  char peer[PM_SWIM_ADDR_MAX];
} conn;

/* What an incoming frame gets allocated before its bytes arrive; it grows
 * (doubling) as they do, so an unauthenticated sender that announces a
 * large frame and sends nothing holds no more than this. */
#define FRAME_FIRST_CAP (64u * 1024u)

typedef struct queued_event {
  pm__swim_event_kind kind;
  pm__member_info info;
} queued_event;

struct pm__swim_driver {
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t progress; /* signalled after every loop iteration */
  bool thread_started, stop;
  pm__swim *core;
  pm__swim_keyring *ring;
  int udp_fd, tcp_fd, wake_fd, epoll_fd;
  char addr[PM_SWIM_ADDR_MAX];
  pm__member_id id;
  conn *conns;   /* owned by the loop thread */
  conn *pending; /* outgoing frames queued by the core, under lock */
  uint32_t incoming_count, outgoing_count;
  queued_event *events;
  size_t event_count, event_cap;
  pm__swim_event_fn event_fn;
  void *event_arg;
  pm__swim_driver_stats stats;
  uint8_t udp_buf[65536];
};

/* Epoll cookies for the three fixed descriptors. */
static char tag_udp, tag_tcp, tag_wake;

/* Counters the loop thread bumps outside the lock. */
static void count(pm__swim_driver *d, uint64_t *counter) {
  pthread_mutex_lock(&d->lock);
  (*counter)++;
  pthread_mutex_unlock(&d->lock);
}

/* ---- addresses ----------------------------------------------------------- */

static int addr_parse(const char *text, struct sockaddr_storage *ss,
                      socklen_t *len) {
  char host[PM_SWIM_ADDR_MAX];
  const char *colon = text ? strrchr(text, ':') : NULL;
  if (!colon || (size_t)(colon - text) >= sizeof host)
    return PM_ECONFIG;
  char *end;
  unsigned long port = strtoul(colon + 1, &end, 10);
  if (colon[1] == '\0' || *end || port > 65535)
    return PM_ECONFIG;
  size_t hlen = (size_t)(colon - text);
  memcpy(host, text, hlen);
  host[hlen] = '\0';
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    *len = sizeof *v4;
    return 0;
  }
  if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
    host[hlen - 1] = '\0';
    if (inet_pton(AF_INET6, host + 1, &v6->sin6_addr) == 1) {
      v6->sin6_family = AF_INET6;
      v6->sin6_port = htons((uint16_t)port);
      *len = sizeof *v6;
      return 0;
    }
  }
  return PM_ECONFIG;
}

static void addr_format(const struct sockaddr_storage *ss, char *out,
                        size_t size) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *v4 = (const struct sockaddr_in *)ss;
    inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
    snprintf(out, size, "%s:%u", host, ntohs(v4->sin_port));
  } else {
    const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)ss;
    inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
    snprintf(out, size, "[%s]:%u", host, ntohs(v6->sin6_port));
  }
}

static bool addr_is_any(const struct sockaddr_storage *ss) {
  if (ss->ss_family == AF_INET)
    return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == INADDR_ANY;
  return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

/* ---- sockets ------------------------------------------------------------- */

static int epoll_add(pm__swim_driver *d, int fd, uint32_t events, void *ptr) {
  struct epoll_event ev = {.events = events, .data.ptr = ptr};
  return epoll_ctl(d->epoll_fd, EPOLL_CTL_ADD, fd, &ev);
}

/* TCP first (port 0 picks one), then UDP on the same port; a few tries in
 * case the UDP port of a picked TCP port is taken. */
static int bind_both(pm__swim_driver *d, struct sockaddr_storage *ss,
                     socklen_t len) {
  bool pick = ((struct sockaddr_in *)ss)->sin_port == 0;
  for (int attempt = 0; attempt < 16; attempt++) {
    int tcp =
        socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int udp =
        socket(ss->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (tcp >= 0)
      setsockopt(tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (pick)
      ((struct sockaddr_in *)ss)->sin_port = 0;
    if (tcp >= 0 && udp >= 0 && bind(tcp, (struct sockaddr *)ss, len) == 0 &&
        listen(tcp, 128) == 0 &&
        getsockname(tcp, (struct sockaddr *)ss, &len) == 0 &&
        bind(udp, (struct sockaddr *)ss, len) == 0) {
      d->tcp_fd = tcp;
      d->udp_fd = udp;
      return 0;
    }
    int e = errno;
    if (tcp >= 0)
      close(tcp);
    if (udp >= 0)
      close(udp);
    if (!pick || e != EADDRINUSE)
      return pm__errf(PM_EIO, "swim driver: cannot bind: %s", strerror(e));
  }
  return pm__errf(PM_EIO, "swim driver: no free port for UDP and TCP");
}

/* ---- what the core sends ------------------------------------------------- */

static void send_datagram(pm__swim_driver *d, const char *addr,
                          const uint8_t *bytes, size_t length) {
  struct sockaddr_storage ss;
  socklen_t len;
  if (addr_parse(addr, &ss, &len) != 0 ||
      sendto(d->udp_fd, bytes, length, MSG_DONTWAIT, (struct sockaddr *)&ss,
             len) < 0)
    d->stats.send_errors++;
}

static void queue_frame(pm__swim_driver *d, const char *addr,
                        const uint8_t *bytes, size_t length) {
  conn *c = calloc(1, sizeof *c);
  uint8_t *buf = malloc(4 + length);
  if (!c || !buf || strlen(addr) >= sizeof c->peer) {
    free(c);
    free(buf);
    d->stats.send_errors++;
    return;
  }
  buf[0] = (uint8_t)(length >> 24);
  buf[1] = (uint8_t)(length >> 16);
  buf[2] = (uint8_t)(length >> 8);
  buf[3] = (uint8_t)length;
  memcpy(buf + 4, bytes, length);
  c->fd = -1;
  c->outgoing = true;
  c->buf = buf;
  c->length = 4 + length;
  memcpy(c->peer, addr, strlen(addr) + 1);
  c->next = d->pending;
  d->pending = c;
  uint64_t one = 1;
  if (write(d->wake_fd, &one, sizeof one) < 0) { /* the loop wakes anyway */
  }
}

/* Called by the core, with the lock held. */
static void on_send(void *arg, const char *addr, const uint8_t *bytes,
                    size_t length, bool is_stream) {
  pm__swim_driver *d = arg;
  if (is_stream)
    queue_frame(d, addr, bytes, length);
  else
    send_datagram(d, addr, bytes, length);
}

/* Called by the core, with the lock held: keep it for the loop thread. */
static void on_event(void *arg, pm__swim_event_kind kind,
                     const pm__member_info *member) {
  pm__swim_driver *d = arg;
  if (d->event_count == d->event_cap) {
    size_t cap = d->event_cap ? d->event_cap * 2 : 16;
    queued_event *all = realloc(d->events, cap * sizeof *all);
    if (!all)
      return;
    d->events = all;
    d->event_cap = cap;
  }
  d->events[d->event_count].kind = kind;
  d->events[d->event_count].info = *member;
  d->event_count++;
}

static void deliver_events(pm__swim_driver *d) {
  pthread_mutex_lock(&d->lock);
  queued_event *events = d->events;
  size_t count = d->event_count;
  d->events = NULL;
  d->event_count = d->event_cap = 0;
  pthread_mutex_unlock(&d->lock);
  for (size_t i = 0; i < count && d->event_fn; i++)
    d->event_fn(d->event_arg, events[i].kind, &events[i].info);
  free(events);
}

/* ---- connections --------------------------------------------------------- */

static void conn_close(pm__swim_driver *d, conn *c) {
  if (c->fd >= 0)
    close(c->fd); /* also leaves the epoll set */
  if (c->outgoing)
    d->outgoing_count--;
  else
    d->incoming_count--;
  free(c->buf);
  c->fd = -1;
  c->buf = NULL;
}

static void conn_start(pm__swim_driver *d, conn *c, uint64_t now) {
  struct sockaddr_storage ss;
  socklen_t len;
  c->deadline = now + STREAM_DEADLINE_NS;
  d->outgoing_count++;
  if (d->outgoing_count > CONN_MAX || addr_parse(c->peer, &ss, &len) != 0)
    goto fail;
  c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0)
    goto fail;
  if (connect(c->fd, (struct sockaddr *)&ss, len) != 0 && errno != EINPROGRESS)
    goto fail;
  if (epoll_add(d, c->fd, EPOLLOUT, c) != 0)
    goto fail;
  c->next = d->conns;
  d->conns = c;
  return;
fail:
  count(d, &d->stats.send_errors);
  conn_close(d, c);
  free(c);
}

/* With CONN_MAX incoming connections open, the one accepted first makes
 * room: connections anyone can open (no key needed to connect) and keep
 * silent would otherwise refuse every member's join and push-pull, again
 * after each deadline. A member's own exchange takes a round trip, so
 * only a flood much faster than that can push one out. */
static void drop_oldest_incoming(pm__swim_driver *d) {
  conn *oldest = NULL;
  for (conn *c = d->conns; c; c = c->next)
    if (!c->outgoing && c->fd >= 0 &&
        (!oldest || c->deadline <= oldest->deadline))
      oldest = c;
  if (oldest) {
    count(d, &d->stats.streams_refused);
    conn_close(d, oldest); /* freed by the next sweep */
  }
}

static void accept_all(pm__swim_driver *d, uint64_t now) {
  for (;;) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = accept4(d->tcp_fd, (struct sockaddr *)&ss, &len,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
      return;
    if (d->incoming_count >= CONN_MAX)
      drop_oldest_incoming(d);
    conn *c = d->incoming_count < CONN_MAX ? calloc(1, sizeof *c) : NULL;
    if (!c || epoll_add(d, fd, EPOLLIN, c) != 0) {
      count(d, &d->stats.streams_refused);
      close(fd);
      free(c);
      continue;
    }
    c->fd = fd;
    c->deadline = now + STREAM_DEADLINE_NS;
    addr_format(&ss, c->peer, sizeof c->peer);
    d->incoming_count++;
    c->next = d->conns;
    d->conns = c;
  }
}

/* Returns true when the connection is finished (either way). */
static bool conn_write(pm__swim_driver *d, conn *c) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err) {
    count(d, &d->stats.send_errors);
    return true;
  }
  while (c->done < c->length) {
    ssize_t n =
        send(c->fd, c->buf + c->done, c->length - c->done, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
      return false;
    if (n <= 0) {
      count(d, &d->stats.send_errors);
      return true;
    }
    c->done += (size_t)n;
  }
  shutdown(c->fd, SHUT_WR);
  return true;
}

static void frame_done(pm__swim_driver *d, conn *c) {
  pthread_mutex_lock(&d->lock);
  pm__swim_handle_stream(d->core, pm__now_ns(), c->peer, c->buf, c->length);
  pthread_mutex_unlock(&d->lock);
}

/* Read the length, check it against the cap, then the frame. */
static bool conn_read(pm__swim_driver *d, conn *c) {
  while (c->head_done < 4) {
    ssize_t n = recv(c->fd, c->head + c->head_done, 4 - c->head_done, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
      return false;
    if (n <= 0)
      return true;
    c->head_done += (size_t)n;
    if (c->head_done < 4)
      continue;
    c->length = (size_t)c->head[0] << 24 | (size_t)c->head[1] << 16 |
                (size_t)c->head[2] << 8 | c->head[3];
    c->cap = PM_MIN(c->length, (size_t)FRAME_FIRST_CAP);
    if (c->length == 0 || c->length > PM_SWIM_STREAM_MAX ||
        !(c->buf = malloc(c->cap))) {
      count(d, &d->stats.streams_refused);
      return true;
    }
  }
  while (c->done < c->length) {
    if (c->done == c->cap) {
      size_t cap = PM_MIN(c->length, 2 * c->cap);
      uint8_t *grown = realloc(c->buf, cap);
      if (!grown) {
        count(d, &d->stats.streams_refused);
        return true;
      }
      c->buf = grown;
      c->cap = cap;
    }
    ssize_t n = recv(c->fd, c->buf + c->done, c->cap - c->done, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
      return false;
    if (n <= 0)
      return true;
    c->done += (size_t)n;
  }
  frame_done(d, c);
  return true;
}

/* Close finished and late connections; returns the earliest deadline. */
static uint64_t conns_sweep(pm__swim_driver *d, uint64_t now) {
  uint64_t next = UINT64_MAX;
  for (conn **p = &d->conns; *p;) {
    conn *c = *p;
    bool late = c->fd >= 0 && now >= c->deadline;
    if (late)
      count(d, &d->stats.stream_timeouts);
    if (c->fd < 0 || late) {
      *p = c->next;
      if (c->fd >= 0)
        conn_close(d, c);
      free(c);
      continue;
    }
    next = PM_MIN(next, c->deadline);
    p = &c->next;
  }
  return next;
}

static void conn_ready(pm__swim_driver *d, conn *c) {
  bool finished = c->outgoing ? conn_write(d, c) : conn_read(d, c);
  if (finished)
    conn_close(d, c); /* freed by the next sweep */
}

/* ---- the loop ------------------------------------------------------------ */

static void read_datagrams(pm__swim_driver *d) {
  for (int i = 0; i < UDP_BATCH; i++) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    ssize_t n = recvfrom(d->udp_fd, d->udp_buf, sizeof d->udp_buf, 0,
                         (struct sockaddr *)&ss, &len);
    if (n < 0)
      return;
    char from[PM_SWIM_ADDR_MAX];
    addr_format(&ss, from, sizeof from);
    pthread_mutex_lock(&d->lock);
    int rc = pm__swim_handle_packet(d->core, pm__now_ns(), from, d->udp_buf,
                                    (size_t)n);
    pthread_mutex_unlock(&d->lock);
    if (rc == PM_EAUTH)
      PM_LOG_RATELIMITED(PM_LOG_WARN, "swim", 10000,
                         "%s: gossip packet failed authentication (a peer "
                         "with another cluster key or cluster id?)",
                         from);
  }
}

/* Tick the core and start the frames it queued; the next deadline. */
static uint64_t loop_tick(pm__swim_driver *d, bool *stop) {
  pthread_mutex_lock(&d->lock);
  uint64_t now = pm__now_ns();
  uint64_t next = pm__swim_tick(d->core, now);
  conn *pending = d->pending;
  d->pending = NULL;
  *stop = d->stop;
  pthread_cond_broadcast(&d->progress);
  pthread_mutex_unlock(&d->lock);
  while (pending) {
    conn *c = pending;
    pending = c->next;
    conn_start(d, c, now);
  }
  return PM_MIN(next, conns_sweep(d, now));
}

static void *loop_main(void *arg) {
  pm__swim_driver *d = arg;
  struct epoll_event evs[64];
  for (;;) {
    bool stop;
    uint64_t next = loop_tick(d, &stop);
    deliver_events(d);
    if (stop)
      break;
    uint64_t now = pm__now_ns();
    uint64_t wait_ns = next > now ? next - now : 0;
    int timeout_ms = (int)PM_MIN((wait_ns + 999999) / 1000000, 1000u);
    int n = epoll_wait(d->epoll_fd, evs, 64, timeout_ms);
    for (int i = 0; i < n; i++) {
      void *tag = evs[i].data.ptr;
      if (tag == &tag_udp) {
        read_datagrams(d);
      } else if (tag == &tag_tcp) {
        accept_all(d, pm__now_ns());
      } else if (tag == &tag_wake) {
        uint64_t count;
        if (read(d->wake_fd, &count, sizeof count) < 0) { /* drained */
        }
      } else {
        conn_ready(d, tag);
      }
    }
  }
  return NULL;
}

/* ---- start and stop ------------------------------------------------------ */

static int make_core(pm__swim_driver *d, const pm__swim_driver_config *cfg) {
  pm__swim_config sc;
  if (cfg->swim)
    sc = *cfg->swim;
  else
    pm__swim_config_init(&sc);
  randombytes_buf(&sc.rng_seed, sizeof sc.rng_seed);
  sc.keyring = d->ring;
  sc.send_fn = on_send;
  sc.send_arg = d;
  sc.event_fn = on_event;
  sc.event_arg = d;
  pm__member_info self;
  memset(&self, 0, sizeof self);
  if (cfg->id)
    d->id = *cfg->id;
  else
    randombytes_buf(d->id.bytes, PM_SWIM_ID_LEN);
  self.id = d->id;
  self.boot_epoch = cfg->boot_epoch ? cfg->boot_epoch : (uint64_t)pm__wall_ns();
  memcpy(self.addr, d->addr, sizeof self.addr);
  if (cfg->meta)
    self.meta = *cfg->meta;
  uint64_t now = pm__now_ns();
  int rc = pm__swim_create(&sc, &self, now, &d->core);
  if (rc == 0 && cfg->seed_count)
    rc = pm__swim_join(d->core, now, cfg->seeds, cfg->seed_count);
  return rc;
}

static int open_sockets(pm__swim_driver *d, const pm__swim_driver_config *cfg) {
  struct sockaddr_storage ss;
  socklen_t len;
  if (addr_parse(cfg->listen, &ss, &len) != 0)
    return pm__errf(PM_ECONFIG, "swim driver: bad listen address '%s'",
                    cfg->listen);
  if (!cfg->advertise && addr_is_any(&ss))
    return pm__errf(PM_ECONFIG,
                    "swim driver: listening on '%s' needs an "
                    "advertise address",
                    cfg->listen);
  int rc = bind_both(d, &ss, len);
  if (rc)
    return rc;
  if (cfg->advertise)
    snprintf(d->addr, sizeof d->addr, "%s", cfg->advertise);
  else
    addr_format(&ss, d->addr, sizeof d->addr);
  d->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  d->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (d->wake_fd < 0 || d->epoll_fd < 0 ||
      epoll_add(d, d->udp_fd, EPOLLIN, &tag_udp) != 0 ||
      epoll_add(d, d->tcp_fd, EPOLLIN, &tag_tcp) != 0 ||
      epoll_add(d, d->wake_fd, EPOLLIN, &tag_wake) != 0)
    return pm__errf(PM_EIO, "swim driver: epoll: %s", strerror(errno));
  return 0;
}

static void driver_free(pm__swim_driver *d) {
  while (d->conns) {
    conn *c = d->conns;
    d->conns = c->next;
    if (c->fd >= 0)
      conn_close(d, c);
    free(c);
  }
  while (d->pending) {
    conn *c = d->pending;
    d->pending = c->next;
    free(c->buf);
    free(c);
  }
  pm__swim_destroy(d->core);
  pm__swim_keyring_free(d->ring);
  int fds[] = {d->udp_fd, d->tcp_fd, d->wake_fd, d->epoll_fd};
  for (size_t i = 0; i < PM_ARRAY_SIZE(fds); i++)
    if (fds[i] >= 0)
      close(fds[i]);
  free(d->events);
  pthread_cond_destroy(&d->progress);
  pthread_mutex_destroy(&d->lock);
  free(d);
}

int pm__swim_driver_start(const pm__swim_driver_config *cfg,
                          pm__swim_driver **out) {
  if (!cfg || !out || !cfg->listen || !cfg->cluster_key || !cfg->cluster_id)
    return pm__errf(PM_EINVAL, "swim driver: NULL argument");
  pm__swim_driver *d = calloc(1, sizeof *d);
  if (!d)
    return pm__errf(PM_ENOMEM, "swim driver: out of memory");
  d->udp_fd = d->tcp_fd = d->wake_fd = d->epoll_fd = -1;
  pthread_mutex_init(&d->lock, NULL);
  pthread_cond_init(&d->progress, NULL);
  d->event_fn = cfg->event_fn;
  d->event_arg = cfg->event_arg;
  int rc = pm__swim_keyring_new(cfg->cluster_key, cfg->cluster_id, &d->ring);
  if (rc == 0)
    rc = open_sockets(d, cfg);
  if (rc == 0)
    rc = make_core(d, cfg);
  if (rc == 0 && pthread_create(&d->thread, NULL, loop_main, d) != 0)
    rc = pm__errf(PM_ENOMEM, "swim driver: cannot start its thread");
  if (rc) {
    driver_free(d);
    return rc;
  }
  d->thread_started = true;
  char hex[33];
  pm__member_id_hex(&d->id, hex);
  PM_LOG(PM_LOG_INFO, "swim", "member %s gossiping on %s", hex, d->addr);
  *out = d;
  return 0;
}

void pm__swim_driver_stop(pm__swim_driver *d) {
  if (!d)
    return;
  pthread_mutex_lock(&d->lock);
  d->stop = true;
  pthread_mutex_unlock(&d->lock);
  uint64_t one = 1;
  if (write(d->wake_fd, &one, sizeof one) < 0) { /* it wakes within 1 s */
  }
  if (d->thread_started)
    pthread_join(d->thread, NULL);
  driver_free(d);
}

void pm__swim_driver_leave(pm__swim_driver *d, uint64_t timeout_ns) {
  if (!d)
    return;
  uint64_t deadline = pm__now_ns() + timeout_ns;
  pthread_mutex_lock(&d->lock);
  pm__swim_leave(d->core, pm__now_ns());
  uint64_t one = 1;
  if (write(d->wake_fd, &one, sizeof one) < 0) { /* it wakes within 1 s */
  }
  while (!pm__swim_leave_done(d->core) && pm__now_ns() < deadline) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 50000000;
    if (ts.tv_nsec >= 1000000000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&d->progress, &d->lock, &ts);
  }
  pthread_mutex_unlock(&d->lock);
  pm__swim_driver_stop(d);
}

/* ---- from any thread ----------------------------------------------------- */

const char *pm__swim_driver_addr(const pm__swim_driver *d) {
  return d->addr;
}

pm__member_id pm__swim_driver_id(const pm__swim_driver *d) {
  return d->id;
}

int pm__swim_driver_snapshot(pm__swim_driver *d, pm__member_info **out,
                             size_t *count) {
  pthread_mutex_lock(&d->lock);
  int rc = pm__swim_snapshot(d->core, out, count);
  pthread_mutex_unlock(&d->lock);
  return rc;
}

void pm__swim_driver_stats_get(pm__swim_driver *d, pm__swim_driver_stats *out) {
  pthread_mutex_lock(&d->lock);
  *out = d->stats;
  pm__swim_get_stats(d->core, &out->core);
  pthread_mutex_unlock(&d->lock);
}

int pm__swim_driver_update_meta(pm__swim_driver *d,
                                const pm__member_meta *meta) {
  pthread_mutex_lock(&d->lock);
  int rc = pm__swim_update_meta(d->core, pm__now_ns(), meta);
  pthread_mutex_unlock(&d->lock);
  return rc;
}
