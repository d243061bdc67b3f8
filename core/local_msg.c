/*
 * core/local_msg.c - packets of the same-node protocol (see local_msg.h).
 * A packet that does not fit the cap is refused before it is read whole
 * (MSG_TRUNC tells its real size), and an unexpected descriptor is closed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "local_msg.h"

int pm__local_send(int sock, const ProtobufCMessage *msg, int fd) {
  size_t len = protobuf_c_message_get_packed_size(msg);
  if (len > PM_LOCAL_MSG_MAX)
    return pm__errf(PM_ETOOBIG, "local message of %zu bytes is too large",
                    len);
  uint8_t *buf = malloc(len ? len : 1);
  if (!buf)
    return pm__errf(PM_ENOMEM, "out of memory");
  protobuf_c_message_pack(msg, buf);
  struct iovec iov = {.iov_base = buf, .iov_len = len};
  union {
    struct cmsghdr align;
    char space[CMSG_SPACE(sizeof(int))];
  } control;
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
  if (fd >= 0) {
    memset(&control, 0, sizeof control);
    mh.msg_control = control.space;
    mh.msg_controllen = sizeof control.space;
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  ssize_t n;
  do
    n = sendmsg(sock, &mh, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  free(buf);
  if (n < 0)
    return pm__errf(PM_EUNREACHABLE, "node peer connection: %s",
                    strerror(errno));
  return 0;
}

static int take_fd(struct msghdr *mh) {
  int fd = -1;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
      continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int got;
      memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof got);
      if (fd < 0)
        fd = got;
      else
        close(got); /* only one descriptor is ever expected */
    }
  }
  return fd;
}

ssize_t pm__local_recv(int sock, uint8_t *buf, int *fd) {
  struct iovec iov = {.iov_base = buf, .iov_len = PM_LOCAL_MSG_MAX};
  union {
    struct cmsghdr align;
    char space[CMSG_SPACE(sizeof(int) * 4)];
  } control;
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
                      .msg_control = control.space,
                      .msg_controllen = sizeof control.space};
  ssize_t n;
  do
    n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  *fd = n >= 0 ? take_fd(&mh) : -1;
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    return PM_ETIMEDOUT; /* a receive timeout: the caller says more */
  if (n < 0)
    return pm__errf(PM_EUNREACHABLE, "node peer connection: %s",
                    strerror(errno));
  if ((mh.msg_flags & MSG_CTRUNC) && !(mh.msg_flags & MSG_TRUNC)) {
    /* The message is whole; the descriptor passed with it could not be
     * taken (this process has no descriptor to spare) */
    if (*fd >= 0)
      close(*fd);
    *fd = PM_LOCAL_FD_LOST;
    return n;
  }
  if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
    if (*fd >= 0)
      close(*fd);
    *fd = -1;
    return pm__errf(PM_ETOOBIG, "local message truncated (over %u bytes)",
                    PM_LOCAL_MSG_MAX);
  }
  return n;
}
