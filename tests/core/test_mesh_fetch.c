/* Tests for core/mesh_fetch.c with a real tcp transport on 127.0.0.1: an
 * owner that missed a page asks the other candidates for a cached copy,
 * and a candidate that does not answer costs it at most a quarter of a
 * request's time. The candidate here is a socket that listens and never
 * accepts (the kernel completes the connection; no hello ever comes back),
 * as a stopped peer that membership has not declared yet looks. The mesh
 * is one of this process with a view of two members; the rest is real. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/mesh_int.h"
#include "core/peer_int.h"

TestSuite(mesh_fetch, .timeout = 30);

#define TIMEOUT_MS 2000u

static ssize_t serve_nothing(void *arg, const pm_page_request *req,
                             void *dst, size_t dst_len) {
  (void)arg, (void)req, (void)dst, (void)dst_len;
  return PM_ENOENT;
}

/* Listening, never accepting: the address of a silent member. */
static int silent_listener(char *addr, size_t size) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof sa;
  cr_assert(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
            listen(fd, 16) == 0 &&
            getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
  snprintf(addr, size, "127.0.0.1:%d", ntohs(sa.sin_port));
  return fd;
}

Test(mesh_fetch, a_silent_candidate_costs_an_owner_a_quarter_request) {
  static pm_peer peer;
  static pm_mesh mesh;
  pm_options_init(&peer.opts);
  peer.opts.replicas = 2;
  peer.opts.page_size = 64u << 10;
  peer.opts.request_timeout_ms = TIMEOUT_MS;
  mesh.peer = &peer;
  static const uint8_t key[32] = {7};
  pm_transport_config config = {
      .size = sizeof config, .listen = "127.0.0.1:0", .cluster_key = key,
      .cluster_id = "mesh-fetch-test", .max_page_size = 64u << 10,
      .server_threads = 1, .server = {.serve_get = serve_nothing}};
  cr_assert_eq(pm__transport_open("tcp", &config, &mesh.tcp), 0, "%s",
               pm__errmsg());

  pm_placement_member members[2] = {{.id = {1}, .weight = 1 << 30},
                                    {.id = {2}, .weight = 1 << 30}};
  pm_view_peer peers[2] = {0};
  int silent = silent_listener(peers[1].tcp, sizeof peers[1].tcp);
  pm__placement_prepare(members, 2);
  static pm_view view;
  atomic_init(&view.refs, 1);
  view.count = 2;
  view.members = members;
  view.peers = peers;
  view.self = 0;
  mesh.view = &view; /* no membership driver: the view stays this one */

  static uint8_t buf[64u << 10];
  pm_object_stat st = {.size = sizeof buf, .version = "v1"};
  pm_page_id id = pm__page_id("s3://bucket/object", "v1", 0, sizeof buf);
  bool owned = false;
  uint64_t start = pm__now_ns();
  int rc = pm__mesh_fetch(&mesh, PM_MESH_OWNER, "s3://bucket/object", &st,
                          0, &id, buf, sizeof buf, &owned);
  double ms = (double)(pm__now_ns() - start) / 1e6;
  /* No copy anywhere: the owner reads the origin itself. */
  cr_expect_eq(rc, PM_ENOENT);
  cr_expect(owned);
  /* It did wait for the silent member (the path this tests was taken)... */
  cr_expect_geq(ms, TIMEOUT_MS / 4 - 50, "%.0f ms", ms);
  /* ...a quarter of a request's time, not all of it (the peer that asked
   * this owner would have given up on it) */
  cr_expect_lt(ms, TIMEOUT_MS / 2, "%.0f ms", ms);
  cr_log_info("the silent candidate cost %.0f ms of a %u ms request", ms,
              TIMEOUT_MS);
  pm__transport_close(mesh.tcp);
  close(silent);
}
