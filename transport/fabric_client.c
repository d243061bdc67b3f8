/*
 * transport/fabric_client.c - this peer's own requests over the fabric
 * transport: get_page and put_page.
 *
 * GET: take a request slot (its registered landing buffer), send PageGet
 * naming the buffer (rma_addr, rma_key, rma_length: the page's room) and
 * the slot's request id, and wait until the deadline for the server's RMA
 * write (its CQ data is the request id), which lands an authenticated
 * trailer (request id, length, checksum) in front of the page, or for a
 * PageResponse with an error. The page is then copied from the landing
 * buffer into the caller's dst and the checksum is verified on dst itself,
 * during the copy (pm__copy_checksum). (Writing straight into a registered
 * dst would save that copy; it is not done: callers' buffers are not
 * registered.)
 *
 * PUT: stage the page in a slot's buffer and send PagePut (length,
 * checksum). The receiver pulls the page with an ordinary GET back to us;
 * our server side recognises a GET for a page staged for that very peer
 * and RMA-writes it from the staging buffer (fabric_server.c). The
 * receiver then answers the PagePut with a PageResponse carrying the
 * status of its serve_put. The protocol needs nothing beyond page.proto.
 */
#include <stdio.h>
#include <string.h>

#include "transport/fabric_int.h"

static pm_fabric *from(pm_transport *self) {
  return (pm_fabric *)self;
}

/* What the peer would refuse as oversize is refused here, at once. */
static int check_request(const pm_page_request *req, const char *what) {
  if (!req->uri || !req->version)
    return pm__errf(PM_EINVAL, "fabric %s: NULL uri or version", what);
  if (strlen(req->uri) > PM_FABRIC_URI_MAX ||
      strlen(req->version) > PM_FABRIC_VERSION_MAX)
    return pm__errf(PM_ETOOBIG, "fabric %s: uri or version too long", what);
  if (req->page_size == 0)
    return pm__errf(PM_EINVAL, "fabric %s: page size 0", what);
  return 0;
}

/* Count a caller in, unless the transport is closing. */
static int enter(pm_fabric *f) {
  atomic_fetch_add(&f->callers, 1);
  if (!atomic_load(&f->stopping))
    return 0;
  atomic_fetch_sub(&f->callers, 1);
  return pm__errf(PM_ESHUTDOWN, "fabric: transport closing");
}

static void leave(pm_fabric *f) {
  atomic_fetch_sub(&f->callers, 1);
}

/* Prefix the current detail with the peer's address (shortened). */
static int name_peer(int rc, const char *addr) {
  char detail[PM_ERRMSG_MAX];
  snprintf(detail, sizeof detail, "fabric peer %.24s: %s", addr,
           pm__errmsg());
  pm__errmsg_set(detail);
  return rc;
}

/* Send the slot's request and wait for the exchange to complete. */
static int exchange(pm_fabric *f, pm_fabric_slot *slot, fi_addr_t peer,
                    const Pm__PageFrame *frame, uint64_t deadline_ns) {
  pm_fabric_slot_set_sent(f, slot, true);
  int rc = pm_fabric_send_frame(f, peer, frame, slot->id, deadline_ns);
  if (rc) {
    pm_fabric_slot_set_sent(f, slot, false);
    return rc;
  }
  return pm_fabric_slot_wait(f, slot, deadline_ns);
}

static ssize_t finish_get(pm_fabric_slot *slot, void *dst, size_t dst_len) {
  if (slot->status)
    return pm__errf(slot->status, "%s",
                    slot->detail[0] ? slot->detail
                                    : pm_strerror(slot->status));
  if (slot->length > dst_len || slot->length > pm_fabric_page_room(&slot->buf))
    return pm__errf(PM_EPROTO, "fabric: page of %u bytes announced for a "
                    "%zu-byte buffer", slot->length, dst_len);
  pm_checksum sum = pm__copy_checksum(dst, pm_fabric_page_at(&slot->buf),
                                      slot->length);
  if (memcmp(sum.bytes, slot->checksum, sizeof sum.bytes) != 0)
    return pm__errf(PM_ECORRUPT, "fabric: checksum mismatch on a %u-byte "
                    "page", slot->length);
  return (ssize_t)slot->length;
}

static void build_get(const pm_fabric_slot *slot, size_t dst_len,
                      Pm__PageRequest *page, Pm__PageGet *get,
                      Pm__PageFrame *frame) {
  pm__page_get__init(get);
  get->request_id = slot->id;
  get->page = page;
  get->rma_addr = slot->buf.rma_addr;
  get->rma_key = slot->buf.key;
  get->rma_length = (uint32_t)PM_MIN(pm_fabric_page_room(&slot->buf),
                                     dst_len);
  pm__page_frame__init(frame);
  frame->body_case = PM__PAGE_FRAME__BODY_GET;
  frame->get = get;
}

ssize_t pm_fabric_fetch(pm_fabric *f, const char *addr,
                        const pm_page_request *req, void *dst,
                        size_t dst_len, uint64_t deadline_ns) {
  fi_addr_t peer;
  int rc = pm_fabric_peer_resolve(f, addr, &peer);
  if (rc)
    return name_peer(rc, addr);
  pm_fabric_slot *slot = pm_fabric_slot_acquire(f, deadline_ns, &rc);
  if (!slot)
    return name_peer(rc, addr);
  Pm__PageRequest page;
  Pm__PageGet get;
  Pm__PageFrame frame;
  pm_fabric_req_to_pb(req, &page);
  build_get(slot, dst_len, &page, &get, &frame);
  atomic_fetch_add(&f->stats.gets_sent, 1);
  ssize_t result = exchange(f, slot, peer, &frame, deadline_ns);
  if (result == 0)
    result = finish_get(slot, dst, dst_len);
  pm_fabric_slot_release(f, slot);
  if (result < 0)
    return name_peer((int)result, addr);
  atomic_fetch_add(&f->stats.bytes_received, (uint64_t)result);
  return result;
}

ssize_t pm_fabric_get_page(pm_transport *self, const char *addr,
                           const pm_page_request *req, void *dst,
                           size_t dst_len, uint64_t deadline_ns) {
  pm_fabric *f = from(self);
  if (!addr || !req || !dst)
    return pm__errf(PM_EINVAL, "fabric get_page: NULL argument");
  const char *hex = NULL;
  int rc = check_request(req, "get_page");
  if (!rc)
    rc = pm_fabric_advertised(addr, &hex);
  if (!rc)
    rc = enter(f);
  if (rc)
    return rc;
  ssize_t result = pm_fabric_fetch(f, hex, req, dst, dst_len, deadline_ns);
  if (result == PM_ETIMEDOUT)
    atomic_fetch_add(&f->stats.timeouts, 1);
  leave(f);
  return result;
}

/* ---- put ------------------------------------------------------------------------ */

static int push(pm_fabric *f, const char *addr, fi_addr_t peer,
                const pm_page_request *req, const void *data, size_t length,
                uint64_t deadline_ns) {
  int rc;
  pm_fabric_slot *slot = pm_fabric_slot_acquire(f, deadline_ns, &rc);
  if (!slot)
    return rc;
  pm_checksum sum = pm__copy_checksum(pm_fabric_page_at(&slot->buf), data,
                                      length);
  pm_fabric_slot_stage_put(f, slot, addr, req->page_id, (uint32_t)length,
                           &sum);
  Pm__PageRequest page;
  Pm__PagePut put;
  Pm__PageFrame frame;
  pm_fabric_req_to_pb(req, &page);
  pm__page_put__init(&put);
  put.request_id = slot->id;
  put.page = &page;
  put.length = (uint32_t)length;
  put.checksum.data = sum.bytes;
  put.checksum.len = sizeof sum.bytes;
  pm__page_frame__init(&frame);
  frame.body_case = PM__PAGE_FRAME__BODY_PUT;
  frame.put = &put;
  rc = exchange(f, slot, peer, &frame, deadline_ns);
  if (rc == 0 && slot->status)
    rc = pm__errf(slot->status, "%s", slot->detail[0]
                                          ? slot->detail
                                          : pm_strerror(slot->status));
  pm_fabric_slot_release(f, slot);
  return rc;
}

int pm_fabric_put_page(pm_transport *self, const char *addr,
                       const pm_page_request *req, const void *data,
                       size_t length, uint64_t deadline_ns) {
  pm_fabric *f = from(self);
  if (!addr || !req || !data)
    return pm__errf(PM_EINVAL, "fabric put_page: NULL argument");
  if (length == 0 || length > f->slot_buf_size)
    return pm__errf(PM_ETOOBIG, "fabric put_page: %zu bytes (max %zu)",
                    length, f->slot_buf_size);
  int rc = check_request(req, "put_page");
  if (!rc)
    rc = enter(f);
  if (rc)
    return rc;
  fi_addr_t peer;
  const char *hex = NULL;
  rc = pm_fabric_advertised(addr, &hex);
  if (!rc)
    rc = pm_fabric_peer_resolve(f, hex, &peer);
  if (!rc) {
    atomic_fetch_add(&f->stats.puts_sent, 1);
    rc = push(f, hex, peer, req, data, length, deadline_ns);
  }
  if (rc == PM_ETIMEDOUT)
    atomic_fetch_add(&f->stats.timeouts, 1);
  if (rc == 0)
    atomic_fetch_add(&f->stats.bytes_sent, length);
  else
    name_peer(rc, addr);
  leave(f);
  return rc;
}
