/* Tests for core/mesh_rebalance.c with real parts: two node peers of one
 * mesh in this process, over tcp on 127.0.0.1, reading the POSIX origin. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core_int.h"
#include "pagemesh.h"

TestSuite(rebalance, .timeout = 120);

static char root[256];

/* A port free on 127.0.0.1 for both UDP and TCP, as far as one can tell. */
static int free_port(void) {
  for (int attempt = 0; attempt < 50; attempt++) {
    int t = socket(AF_INET, SOCK_STREAM, 0), u = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    socklen_t len = sizeof sa;
    int port = -1;
    if (bind(t, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(t, (struct sockaddr *)&sa, &len) == 0 &&
        bind(u, (struct sockaddr *)&sa, sizeof sa) == 0)
      port = ntohs(sa.sin_port);
    close(t);
    close(u);
    if (port > 0)
      return port;
  }
  cr_assert_fail("no free port");
  return -1;
}

static pm_peer *open_node(const char *dir, uint32_t page_size,
                          const char *listen, const char *seeds) {
  char key[400];
  snprintf(key, sizeof key, "%s/key", root);
  pm_options o;
  pm_options_init(&o);
  o.cache_dir = dir;
  o.page_size = page_size;
  o.disk_capacity = 64u << 20;
  o.readahead_pages = 0;
  o.flags = listen ? PM_OPEN_NODE_ONLY : PM_OPEN_STANDALONE;
  o.listen = listen;
  o.seeds = seeds;
  o.cluster_key_file = key;
  o.cluster_id = "rebalance-test";
  o.replicas = 1;
  pm_peer *p = NULL;
  int rc = pm_peer_open(&o, &p);
  cr_assert_eq(rc, 0, "open %s: %s", dir, pm_peer_errmsg(NULL));
  return p;
}

/* A new root with the cluster key, an object of `size` bytes (its bytes
 * in *data, the caller's to free) and the names of two cache
 * directories. */
static void set_up(size_t size, char *object, uint8_t **data, char *a_dir,
                   char *b_dir) {
  snprintf(root, sizeof root, "/tmp/pm-test-rebalance-XXXXXX");
  cr_assert_not_null(mkdtemp(root));
  char key[400];
  snprintf(key, sizeof key, "%s/key", root);
  int fd = open(key, O_CREAT | O_WRONLY | O_TRUNC, 0600);
  cr_assert_eq(write(fd, "0123456789abcdef0123456789abcdef", 32), 32);
  close(fd);
  snprintf(object, 400, "%s/object.bin", root);
  *data = malloc(size);
  for (size_t i = 0; i < size; i++)
    (*data)[i] = (uint8_t)(i * 7 + (i >> 16));
  fd = open(object, O_CREAT | O_WRONLY | O_TRUNC, 0644);
  cr_assert_eq(write(fd, *data, size), (ssize_t)size);
  close(fd);
  snprintf(a_dir, 400, "%s/a", root);
  snprintf(b_dir, 400, "%s/b", root);
}

/* A cache directory that kept pages of a larger page size (the node was
 * restarted with a smaller one) is drained without reading them into a
 * buffer of the new size (a heap overflow before: ASan saw a 256 KiB
 * write into a 64 KiB block). */
Test(rebalance, pages_of_another_page_size_are_not_pushed) {
  char object[400], a_dir[400], b_dir[400];
  size_t size = 1u << 20;
  uint8_t *data;
  set_up(size, object, &data, a_dir, b_dir);

  pm_peer *a = open_node(a_dir, 256u << 10, NULL, NULL);
  cr_assert_eq(pm_read(a, object, 0, data, size), (ssize_t)size);
  pm_peer_close(a);

  char a_addr[64], b_addr[64];
  snprintf(a_addr, sizeof a_addr, "127.0.0.1:%d", free_port());
  snprintf(b_addr, sizeof b_addr, "127.0.0.1:%d", free_port());
  a = open_node(a_dir, 64u << 10, a_addr, NULL);
  pm_peer *b = open_node(b_dir, 64u << 10, b_addr, a_addr);
  uint64_t deadline = pm__now_ns() + 30000000000ull;
  bool joined = false;
  while (!joined && pm__now_ns() < deadline) {
    char *json = NULL;
    cr_assert_eq(pm_peer_status(a, &json), 0);
    joined = strstr(json, b_addr) != NULL;
    pm_free(json);
    if (!joined)
      usleep(50 * 1000);
  }
  cr_assert(joined, "b never joined a");
  ssize_t pushed = pm_drain(a);
  cr_assert_eq(pushed, 0, "%zd: %s", pushed, pm_peer_errmsg(a));
  pm_peer_close(b);
  pm_peer_close(a);
  free(data);
}

/* With one replica, a member that joins owns some pages outright: none of
 * their new owners is an old one. The old owner still pushes them (it
 * pushed nothing before: the pusher was looked for among the new owners
 * only, so a join, or several joins in one burst, warmed no one). */
Test(rebalance, a_page_whose_owners_all_changed_is_pushed_by_an_old_one) {
  char object[400], a_dir[400], b_dir[400];
  size_t size = 2u << 20;
  uint8_t *data, *back = malloc(size);
  set_up(size, object, &data, a_dir, b_dir);

  char a_addr[64], b_addr[64];
  snprintf(a_addr, sizeof a_addr, "127.0.0.1:%d", free_port());
  snprintf(b_addr, sizeof b_addr, "127.0.0.1:%d", free_port());
  pm_peer *a = open_node(a_dir, 64u << 10, a_addr, NULL);
  /* alone, a owns all 32 pages */
  cr_assert_eq(pm_read(a, object, 0, back, size), (ssize_t)size);
  pm_stats stats = {.size = sizeof stats};
  cr_assert_eq(pm_peer_stats(a, &stats), 0);
  cr_assert_eq(stats.pages_disk, 32);
  /* A change right after a start is the view filling, not a change of
   * owners (SETTLE_NS in mesh_rebalance.c): let a's mesh settle. */
  usleep(3300 * 1000);
  pm_peer *b = open_node(b_dir, 64u << 10, b_addr, a_addr);
  uint64_t deadline = pm__now_ns() + 30000000000ull;
  uint64_t on_b = 0;
  while (on_b == 0 && pm__now_ns() < deadline) {
    usleep(100 * 1000);
    pm_stats bs = {.size = sizeof bs};
    cr_assert_eq(pm_peer_stats(b, &bs), 0);
    on_b = bs.pages_disk;
  }
  /* b owns about half of them now (rendezvous hashing over two equal
   * members): 32 pages all on a would be a chance of 2^-32 */
  cr_assert_gt(on_b, 0, "no page was pushed to the member that joined");
  /* and they are the object's bytes: b reads them from its own disk */
  cr_assert_eq(pm_read(b, object, 0, back, size), (ssize_t)size);
  cr_assert_eq(memcmp(back, data, size), 0);
  pm_peer_close(b);
  pm_peer_close(a);
  free(back);
  free(data);
}
