/*
 * transport/page_msg.c - the message-level half of the page protocol:
 * turning a pm_page_request into its protobuf form, and checking what a
 * server or a client received before it acts on it (a request must be a
 * GET or a PUT with sane fields; an answer must be a response to the
 * request that was sent, for a page that fits the caller's buffer). These
 * are the checks every message handler of a backend runs; they are pure
 * functions so that they can be fuzzed without sockets.
 */
#include <string.h>

#include "core/core_int.h"
#include "frame.h"

void pm__page_msg_request_out(const pm_page_request *req,
                              Pm__PageRequest *msg) {
  pm__page_request__init(msg);
  msg->page_id.data = (uint8_t *)req->page_id;
  msg->page_id.len = sizeof req->page_id;
  msg->uri = (char *)req->uri;
  msg->version = (char *)req->version;
  msg->object_size = req->object_size;
  msg->mtime_ns = req->mtime_ns;
  msg->page_index = req->page_index;
  msg->page_size = req->page_size;
  msg->flags = req->flags;
}

static void request_from_msg(const Pm__PageRequest *msg,
                             pm_page_request *req) {
  memset(req, 0, sizeof *req);
  memcpy(req->page_id, msg->page_id.data, sizeof req->page_id);
  req->uri = msg->uri;
  req->version = msg->version ? msg->version : "";
  req->object_size = msg->object_size;
  req->mtime_ns = msg->mtime_ns;
  req->page_index = msg->page_index;
  req->page_size = msg->page_size;
  req->flags = msg->flags;
}

int pm__page_msg_request_in(const Pm__PageFrame *frame,
                            uint32_t max_page_size, pm_page_request *req,
                            uint64_t *request_id, bool *is_put,
                            uint32_t *length, uint8_t checksum[16]) {
  int rc = pm__frame_validate(frame, max_page_size);
  if (rc)
    return rc;
  if (frame->body_case == PM__PAGE_FRAME__BODY_GET) {
    request_from_msg(frame->get->page, req);
    *request_id = frame->get->request_id;
    *is_put = false;
    *length = 0;
    return 0;
  }
  if (frame->body_case == PM__PAGE_FRAME__BODY_PUT) {
    request_from_msg(frame->put->page, req);
    *request_id = frame->put->request_id;
    *is_put = true;
    *length = frame->put->length;
    memcpy(checksum, frame->put->checksum.data, 16);
    return 0;
  }
  return pm__errf(PM_EPROTO, "expected a request, got frame %d",
                  (int)frame->body_case);
}

int pm__page_msg_response_in(const Pm__PageFrame *frame, uint64_t request_id,
                             size_t capacity, uint32_t max_page_size,
                             uint32_t *length, uint8_t checksum[16],
                             const char *peer) {
  int rc = pm__frame_validate(frame, max_page_size);
  if (rc)
    return pm__frame_err_prefix(rc, peer);
  if (frame->body_case != PM__PAGE_FRAME__BODY_RESPONSE)
    return pm__errf(PM_EPROTO, "%s: expected a response, got frame %d", peer,
                    (int)frame->body_case);
  const Pm__PageResponse *response = frame->response;
  if (response->request_id != request_id)
    return pm__errf(PM_EPROTO, "%s: response to request %llu, not %llu",
                    peer, (unsigned long long)response->request_id,
                    (unsigned long long)request_id);
  if (response->status < 0)
    return pm__errf(response->status, "%s: %s", peer,
                    response->detail && response->detail[0]
                        ? response->detail
                        : pm_strerror(response->status));
  if (response->length > capacity)
    return pm__errf(PM_ETOOBIG, "%s: page of %u bytes, buffer of %zu", peer,
                    response->length, capacity);
  *length = response->length;
  memset(checksum, 0, 16);
  if (response->checksum.len == 16)
    memcpy(checksum, response->checksum.data, 16);
  return 0;
}
