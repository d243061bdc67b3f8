/* Tests for the same-node protocol's packets (core/local_msg.c): a message
 * arrives with the descriptor passed along it; a message whose descriptor
 * this process has no room for arrives whole, marked PM_LOCAL_FD_LOST (the
 * node's answer was read, its page descriptor dropped by the kernel); a
 * closed peer is 0. */
#include <criterion/criterion.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/local_msg.h"

static int pair[2];

static void setup(void) {
  cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair),
               0);
}

static void send_request(uint64_t id, int fd) {
  Pm__LocalRequest req = PM__LOCAL_REQUEST__INIT;
  req.id = id;
  cr_assert_eq(pm__local_send(pair[0], &req.base, fd), 0);
}

static uint64_t id_of(const uint8_t *buf, ssize_t n) {
  Pm__LocalRequest *req = pm__local_request__unpack(NULL, (size_t)n, buf);
  cr_assert_not_null(req);
  uint64_t id = req->id;
  pm__local_request__free_unpacked(req, NULL);
  return id;
}

Test(local_msg, a_descriptor_arrives_with_its_message, .init = setup) {
  int p[2];
  cr_assert_eq(pipe(p), 0);
  send_request(7, p[1]);
  static uint8_t buf[PM_LOCAL_MSG_MAX];
  int fd = -1;
  ssize_t n = pm__local_recv(pair[1], buf, &fd);
  cr_assert_gt(n, 0);
  cr_assert_eq(id_of(buf, n), 7);
  cr_assert_geq(fd, 0);
  cr_assert_eq(write(fd, "x", 1), 1); /* the pipe's write end */
  char c;
  cr_assert_eq(read(p[0], &c, 1), 1);
  close(fd);
  close(p[0]);
  close(p[1]);
  close(pair[0]);
  cr_assert_eq(pm__local_recv(pair[1], buf, &fd), 0, "the sender closed");
  close(pair[1]);
}

Test(local_msg, no_room_for_the_descriptor_keeps_the_message,
     .init = setup) {
  int p[2];
  cr_assert_eq(pipe(p), 0);
  send_request(9, p[1]);
  send_request(10, p[1]);
  /* This process out of descriptors (one thread: nothing else takes one). */
  struct rlimit saved, low;
  cr_assert_eq(getrlimit(RLIMIT_NOFILE, &saved), 0);
  int fillers[4096], count = 0, fd;
  low = saved;
  low.rlim_cur = (rlim_t)dup(2) + 16;
  fillers[count++] = (int)low.rlim_cur - 16;
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
  while (count < 4096 && (fd = dup(2)) >= 0)
    fillers[count++] = fd;
  static uint8_t buf[PM_LOCAL_MSG_MAX];
  int passed = -1;
  ssize_t n = pm__local_recv(pair[1], buf, &passed);
  while (count > 0)
    close(fillers[--count]);
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
  cr_assert_gt(n, 0, "the message itself is read");
  cr_assert_eq(id_of(buf, n), 9);
  cr_assert_eq(passed, PM_LOCAL_FD_LOST);
  /* The stream stays in step: the next message, with its descriptor. */
  n = pm__local_recv(pair[1], buf, &passed);
  cr_assert_gt(n, 0);
  cr_assert_eq(id_of(buf, n), 10);
  cr_assert_geq(passed, 0);
  close(passed);
  close(p[0]);
  close(p[1]);
  close(pair[0]);
  close(pair[1]);
}
