/*
 * tests/fuzz/fuzz_local_request.c - libFuzzer target for the requests an
 * attached process sends its node peer (transport/proto/local.proto):
 * the packet cap, the protobuf decoder with the generated descriptors, and
 * the checks a node applies to a fetch before acting on it, the landing
 * slot's bounds among them (against an area of AREA bytes).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/local_msg.h"
#include "core/node_int.h"

#define AREA (1u << 20)

static pm_node_landing *area(pm_node_landings *set) {
  static pm_node_landing *landing;
  if (!landing) {
    int fd = memfd_create("fuzz-landing", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0 || ftruncate(fd, AREA) != 0 ||
        pm__node_landings_init(set) != 0 ||
        pm__node_landing_get(set, fd, &landing) != 0)
      abort();
    close(fd);
  }
  return landing;
}

/* A slot the node would write into lies inside the area. */
static void check_slot(const Pm__LocalFetch *fetch) {
  static pm_node_landings set;
  pm_node_landing *l = area(&set);
  if (!fetch->landing_slot)
    return;
  int64_t at = pm__node_landing_offset(l, fetch->landing_slot - 1,
                                       fetch->landing_slot_size);
  if (at >= 0 && (uint64_t)at + fetch->landing_slot_size > AREA)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > PM_LOCAL_MSG_MAX)
    return 0; /* the socket refuses these before decoding */
  Pm__LocalRequest *req = pm__local_request__unpack(NULL, size, data);
  if (!req)
    return 0;
  /* What dispatch reads first: the body and its strings. */
  if (req->body_case == PM__LOCAL_REQUEST__BODY_FETCH && req->fetch &&
      req->fetch->uri && req->fetch->stat && req->fetch->stat->version)
    (void)strlen(req->fetch->stat->version);
  if (req->body_case == PM__LOCAL_REQUEST__BODY_FETCH && req->fetch)
    check_slot(req->fetch);
  /* Re-encoding must not crash either (protobuf-c keeps unknown fields in
   * a form a second decode may refuse, so only the encoding is checked). */
  size_t again = pm__local_request__get_packed_size(req);
  uint8_t *buf = malloc(again ? again : 1);
  if (buf && pm__local_request__pack(req, buf) != again)
    abort();
  free(buf);
  pm__local_request__free_unpacked(req, NULL);
  return 0;
}
