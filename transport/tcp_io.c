/*
 * transport/tcp_io.c - the socket layer of the tcp transport: parsing
 * "IP:PORT" addresses (numeric only: a DNS lookup cannot honour a
 * deadline), listening, connecting before a deadline, socket options
 * (the congestion control among them), and
 * whole reads and writes on non-blocking sockets that wait with ppoll until
 * a deadline. Errors are converted here, once, with the peer in the detail.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/core_int.h"
#include "tcp_int.h"

#define SOCKET_BUFFER (4 * 1024 * 1024)

static int parse_addr(const char *addr, struct sockaddr_storage *ss,
                      socklen_t *len) {
  char host[PM_ADDR_MAX];
  const char *colon = strrchr(addr, ':');
  if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof host)
    return pm__errf(PM_EINVAL, "%s: not an IP:PORT address", addr);
  const char *start = addr;
  size_t host_len = (size_t)(colon - addr);
  if (addr[0] == '[' && colon[-1] == ']') {
    start++;
    host_len -= 2;
  }
  memcpy(host, start, host_len);
  host[host_len] = '\0';
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
  struct addrinfo *res = NULL;
  int gai = getaddrinfo(host, colon + 1, &hints, &res);
  if (gai != 0 || !res)
    return pm__errf(PM_EINVAL, "%s: not an IP:PORT address: %s", addr,
                    gai_strerror(gai));
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  return 0;
}

void pm__tcp_format_addr(const struct sockaddr_storage *ss, char *out,
                         size_t out_size) {
  char host[INET6_ADDRSTRLEN] = "?";
  unsigned port = 0;
  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const void *)ss;
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    port = ntohs(in6->sin6_port);
    snprintf(out, out_size, "[%s]:%u", host, port);
    return;
  }
  const struct sockaddr_in *in = (const void *)ss;
  inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
  port = ntohs(in->sin_port);
  snprintf(out, out_size, "%s:%u", host, port);
}

bool pm__tcp_set_congestion(int fd, const char *name) {
  return !name[0] ||
         setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, strlen(name)) == 0;
}

int pm__tcp_congestion_pick(char out[PM_TCP_CC_MAX]) {
  const char *asked = getenv("PAGEMESH_TCP_CONGESTION");
  bool explicit = asked && *asked;
  const char *name = explicit ? asked : PM_TCP_CC_DEFAULT;
  out[0] = '\0';
  if (strcmp(name, "system") == 0)
    return 0;
  if (strlen(name) >= PM_TCP_CC_MAX)
    return pm__errf(PM_EINVAL, "PAGEMESH_TCP_CONGESTION=%s: not a "
                    "congestion control name", name);
  /* Try it on a socket of our own, so a bad name fails here, once. */
  int probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0)
    probe = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0)
    return pm__errf(pm__err_from_errno(errno),
                    "no socket to try congestion control %s on: %s", name,
                    strerror(errno));
  int e = pm__tcp_set_congestion(probe, name) ? 0 : errno;
  close(probe);
  /* ENOENT: no such module; EPERM: not allowed to this process. */
  bool refused = e == ENOENT || e == EPERM;
  if (e && (explicit || !refused))
    return pm__errf(refused ? PM_EINVAL : pm__err_from_errno(e),
                    "PAGEMESH_TCP_CONGESTION=%s: %s (see "
                    "/proc/sys/net/ipv4/tcp_allowed_congestion_control, or "
                    "\"system\" for the kernel's default)", name,
                    strerror(e));
  if (e) {
    PM_LOG(PM_LOG_WARN, "tcp", "congestion control %s: %s: keeping the "
           "kernel's default", name, strerror(e));
    return 0;
  }
  snprintf(out, PM_TCP_CC_MAX, "%s", name);
  return 0;
}

void pm__tcp_sockopts(int fd, const char *congestion) {
  int one = 1, size = SOCKET_BUFFER;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  pm__tcp_set_congestion(fd, congestion); /* allowed: tried when picked */
}

int pm__tcp_listen(const char *addr, const char *congestion, int *fd_out,
                   char *bound_out, size_t bound_size) {
  struct sockaddr_storage ss;
  socklen_t len;
  int rc = parse_addr(addr, &ss, &len);
  if (rc)
    return rc;
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                  0);
  if (fd < 0)
    return pm__errf(pm__err_from_errno(errno), "%s: socket: %s", addr,
                    strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  /* Here, so that a connection starts with it: one switched away from
   * bbr after it started stays paced. */
  if (!pm__tcp_set_congestion(fd, congestion))
    PM_LOG(PM_LOG_WARN, "tcp", "%s: congestion control %s: %s", addr,
           congestion, strerror(errno));
  if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 512) != 0) {
    int e = errno;
    close(fd);
    return pm__errf(PM_EUNREACHABLE, "%s: cannot listen: %s", addr,
                    strerror(e));
  }
  len = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &len);
  pm__tcp_format_addr(&ss, bound_out, bound_size);
  *fd_out = fd;
  return 0;
}

/* Wait for `events` on fd until the deadline: 0, or PM_ETIMEDOUT. */
static int wait_fd(int fd, short events, uint64_t deadline_ns,
                   const char *peer) {
  for (;;) {
    uint64_t now = pm__now_ns();
    if (now >= deadline_ns)
      return pm__errf(PM_ETIMEDOUT, "%s: timed out", peer);
    uint64_t left = deadline_ns - now;
    struct timespec ts = {.tv_sec = (time_t)(left / 1000000000u),
                          .tv_nsec = (long)(left % 1000000000u)};
    struct pollfd pfd = {.fd = fd, .events = events};
    int n = ppoll(&pfd, 1, &ts, NULL);
    if (n > 0)
      return 0;
    if (n < 0 && errno != EINTR)
      return pm__errf(pm__err_from_errno(errno), "%s: poll: %s", peer,
                      strerror(errno));
  }
}

int pm__tcp_connect(const char *addr, const char *congestion,
                    uint64_t deadline_ns, int *fd_out) {
  struct sockaddr_storage ss;
  socklen_t len;
  int rc = parse_addr(addr, &ss, &len);
  if (rc)
    return rc;
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return pm__errf(pm__err_from_errno(errno), "%s: socket: %s", addr,
                    strerror(errno));
  pm__tcp_sockopts(fd, congestion);
  if (connect(fd, (struct sockaddr *)&ss, len) != 0) {
    if (errno != EINPROGRESS) {
      rc = pm__errf(PM_EUNREACHABLE, "%s: connect: %s", addr,
                    strerror(errno));
      goto out;
    }
    rc = wait_fd(fd, POLLOUT, deadline_ns, addr);
    if (rc)
      goto out;
    int err = 0;
    socklen_t err_len = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &err_len);
    if (err) {
      rc = pm__errf(PM_EUNREACHABLE, "%s: connect: %s", addr, strerror(err));
      goto out;
    }
  }
  *fd_out = fd;
  return 0;
out:
  close(fd);
  return rc;
}

static int io_error(int e, const char *peer, const char *what) {
  if (e == ECONNRESET || e == EPIPE || e == ENOTCONN || e == ESHUTDOWN)
    return pm__errf(PM_EUNREACHABLE, "%s: connection lost while %s: %s",
                    peer, what, strerror(e));
  return pm__errf(pm__err_from_errno(e), "%s: %s: %s", peer, what,
                  strerror(e));
}

int pm__tcp_block_receives(int fd) {
  struct timeval slice = {.tv_sec = 0,
                          .tv_usec = (long)(PM_TCP_RECV_SLICE_NS / 1000u)};
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &slice, sizeof slice) != 0)
    return pm__errf(PM_EIO, "cannot set a receive timeout: %s",
                    strerror(errno));
  return 0;
}

ssize_t pm__tcp_recv_some(int fd, struct iovec *iov, int iov_count,
                          bool wait_first, bool blocking,
                          uint64_t deadline_ns, const char *peer) {
  for (;;) {
    /* A blocking receive is one system call where a poll and a receive
     * are two; it may wait a whole slice, so not when the deadline is
     * nearer than that. */
    uint64_t now = pm__now_ns();
    bool block = blocking && now < deadline_ns &&
                 deadline_ns - now >= PM_TCP_RECV_SLICE_NS;
    if (wait_first && !block) {
      int rc = wait_fd(fd, POLLIN, deadline_ns, peer);
      if (rc)
        return rc;
    }
    wait_first = false;
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)iov_count};
    ssize_t n = recvmsg(fd, &msg, block ? 0 : MSG_DONTWAIT);
    if (n > 0)
      return n;
    if (n == 0)
      return pm__errf(PM_EUNREACHABLE, "%s: connection closed by the peer",
                      peer);
    if (errno == EINTR || (block && (errno == EAGAIN ||
                                     errno == EWOULDBLOCK)))
      continue; /* a slice went by: look at the deadline again */
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return io_error(errno, peer, "receiving");
    int rc = wait_fd(fd, POLLIN, deadline_ns, peer);
    if (rc)
      return rc;
  }
}

int pm__tcp_read_full(int fd, void *buf, size_t length, uint64_t deadline_ns,
                      const char *peer) {
  uint8_t *p = buf;
  while (length > 0) {
    struct iovec iov = {p, length};
    ssize_t n = pm__tcp_recv_some(fd, &iov, 1, false, false, deadline_ns,
                                  peer);
    if (n < 0)
      return (int)n;
    p += n;
    length -= (size_t)n;
  }
  return 0;
}

/* writev_full with extra sendmsg flags (MSG_MORE: more follows at once). */
static int sendmsg_full(int fd, struct iovec *iov, int iov_count, int flags,
                        uint64_t deadline_ns, const char *peer) {
  while (iov_count > 0) {
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)iov_count};
    ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT | flags);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        return io_error(errno, peer, "sending");
      int rc = wait_fd(fd, POLLOUT, deadline_ns, peer);
      if (rc)
        return rc;
      continue;
    }
    size_t sent = (size_t)n;
    while (iov_count > 0 && sent >= iov->iov_len) {
      sent -= iov->iov_len;
      iov++;
      iov_count--;
    }
    if (iov_count > 0) {
      iov->iov_base = (uint8_t *)iov->iov_base + sent;
      iov->iov_len -= sent;
    }
  }
  return 0;
}

int pm__tcp_writev_full(int fd, struct iovec *iov, int iov_count,
                        uint64_t deadline_ns, const char *peer) {
  return sendmsg_full(fd, iov, iov_count, 0, deadline_ns, peer);
}

int pm__tcp_write_full(int fd, const void *buf, size_t length,
                       uint64_t deadline_ns, const char *peer) {
  struct iovec iov = {.iov_base = (void *)buf, .iov_len = length};
  return pm__tcp_writev_full(fd, &iov, 1, deadline_ns, peer);
}

int pm__tcp_sendfile_full(int fd, const void *head, size_t head_length,
                          int file_fd, uint64_t offset, size_t length,
                          uint64_t deadline_ns, const char *peer) {
  struct iovec iov = {.iov_base = (void *)head, .iov_len = head_length};
  int rc = sendmsg_full(fd, &iov, head_length ? 1 : 0, MSG_MORE, deadline_ns,
                        peer);
  if (rc)
    return rc;
  off_t pos = (off_t)offset;
  while (length > 0) {
    ssize_t n = sendfile(fd, file_fd, &pos, length);
    if (n > 0) {
      length -= (size_t)n;
      continue;
    }
    if (n == 0)
      return pm__errf(PM_EIO, "%s: page file shorter than its length", peer);
    if (errno == EINTR)
      continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return io_error(errno, peer, "sending a page file");
    if ((rc = wait_fd(fd, POLLOUT, deadline_ns, peer)) != 0)
      return rc;
  }
  return 0;
}

bool pm__tcp_idle_dead(int fd) {
  uint8_t byte;
  ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0)
    return true;
  if (n < 0)
    return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
  return true; /* an idle connection has nothing to say: out of step */
}
