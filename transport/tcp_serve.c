/*
 * transport/tcp_serve.c - the request handlers of the tcp transport's
 * server, run on a worker thread for one request of one authenticated
 * connection: read and check the frame, call the core's serve_get or
 * serve_put with the page buffer of the worker, answer with a
 * PageResponse (status, length, checksum, the core's detail on failure)
 * and, for a GET, the page bytes. A malformed request closes the
 * connection; a failed one is answered and the connection kept.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core_int.h"
#include "tcp_int.h"

/* The response frame: status, length, checksum (may be NULL), detail. */
static void response_frame(Pm__PageFrame *frame, Pm__PageResponse *response,
                           uint64_t request_id, int status, uint32_t length,
                           const uint8_t *checksum, const char *detail) {
  pm__page_response__init(response);
  response->request_id = request_id;
  response->status = status;
  response->length = length;
  response->detail = (char *)detail;
  if (checksum) {
    response->checksum.data = (uint8_t *)checksum;
    response->checksum.len = 16;
  }
  pm__page_frame__init(frame);
  frame->body_case = PM__PAGE_FRAME__BODY_RESPONSE;
  frame->response = response;
}

/* Answer a request; for a served GET, the page bytes follow. */
static int respond(pm_tcp_conn *conn, uint64_t request_id, int status,
                   const uint8_t *page, uint32_t length,
                   const pm_checksum *sum, uint64_t deadline_ns,
                   bool *sealed) {
  char detail[PM_FRAME_DETAIL_MAX + 1] = "";
  if (status < 0)
    snprintf(detail, sizeof detail, "%s", pm__errmsg());
  Pm__PageFrame frame;
  Pm__PageResponse response;
  response_frame(&frame, &response, request_id, status, length,
                 sum ? sum->bytes : NULL, detail);
  return pm__tcp_conn_send(conn, &frame, page, length, deadline_ns, sealed);
}

static uint8_t *worker_page(pm_tcp_worker *worker) {
  if (!worker->page)
    worker->page = malloc(worker->tcp->max_page_size);
  if (!worker->page)
    pm__errf(PM_ENOMEM, "no memory for a page buffer of %u bytes",
             worker->tcp->max_page_size);
  return worker->page;
}

/* Call serve_get; returns the page length or a pm_err with its detail. */
static ssize_t call_serve_get(pm_tcp_worker *worker,
                              const pm_page_request *req, uint8_t *page,
                              uint32_t capacity) {
  pm_tcp *tcp = worker->tcp;
  pm__errmsg_clear();
  ssize_t n = tcp->server.serve_get(tcp->server.arg, req, page,
                                    tcp->max_page_size);
  if (n < 0 && n < PM_FRAME_STATUS_MIN)
    return pm__errf(PM_EIO, "serve_get failed with %zd", n);
  if (n > (ssize_t)tcp->max_page_size)
    return pm__errf(PM_EIO, "serve_get returned %zd bytes (max %u)", n,
                    tcp->max_page_size);
  if (n > (ssize_t)capacity)
    return pm__errf(PM_ETOOBIG, "page of %zd bytes, requester has %u", n,
                    capacity);
  return n;
}

/* Serve by reference when the core can (serve_file): the page goes from
 * its file with its stored checksum. Returns 1 if the core has no such
 * page (serve_get then), else the result of answering. */
static int try_serve_file(pm_tcp_worker *worker, pm_tcp_conn *conn,
                          const pm_page_request *req, uint64_t request_id,
                          uint32_t capacity, uint64_t deadline_ns) {
  pm_tcp *tcp = worker->tcp;
  pm_page_file file;
  int status = pm__transport_serve_file(
      &tcp->server, req, PM_MIN(tcp->max_page_size, capacity), &file);
  if (status == PM_ENOENT)
    return 1;
  bool sealed = false;
  if (status < 0)
    return respond(conn, request_id, status, NULL, 0, NULL, deadline_ns,
                   &sealed);
  Pm__PageFrame frame;
  Pm__PageResponse response;
  response_frame(&frame, &response, request_id, 0, (uint32_t)file.length,
                 file.checksum, "");
  int rc = pm__tcp_conn_send_file(conn, &frame, file.fd, file.offset,
                                  file.length, deadline_ns, &sealed);
  close(file.fd);
  if (!rc) {
    pm__tcp_count_page(tcp, file.length, sealed);
    atomic_fetch_add(&tcp->gets_served, 1);
    atomic_fetch_add(&tcp->bytes_sent, file.length);
  }
  return rc;
}

static int handle_get(pm_tcp_worker *worker, pm_tcp_conn *conn,
                      const pm_page_request *req, uint64_t request_id,
                      uint32_t capacity, uint64_t deadline_ns) {
  int rc = try_serve_file(worker, conn, req, request_id, capacity,
                          deadline_ns);
  if (rc <= 0)
    return rc;
  pm_tcp *tcp = worker->tcp;
  uint8_t *page = worker_page(worker);
  ssize_t n = page ? call_serve_get(worker, req, page, capacity) : PM_ENOMEM;
  bool sealed = false;
  if (n < 0)
    return respond(conn, request_id, (int)n, NULL, 0, NULL, deadline_ns,
                   &sealed);
  pm_checksum sum = pm__checksum(page, (size_t)n);
  rc = respond(conn, request_id, 0, page, (uint32_t)n, &sum, deadline_ns,
               &sealed);
  if (rc)
    return rc;
  pm__tcp_count_page(tcp, (size_t)n, sealed);
  atomic_fetch_add(&tcp->gets_served, 1);
  atomic_fetch_add(&tcp->bytes_sent, (uint64_t)n);
  return 0;
}

/* Verify a pushed page and hand it to serve_put: 0 or a pm_err. */
static int accept_put(pm_tcp *tcp, const pm_page_request *req,
                      const uint8_t *page, uint32_t length,
                      const pm_checksum *sum, const uint8_t checksum[16]) {
  if (memcmp(sum->bytes, checksum, 16) != 0)
    return pm__errf(PM_ECORRUPT, "pushed page %s failed its checksum",
                    req->uri);
  if (!tcp->server.serve_put)
    return pm__errf(PM_ENOTSUP, "this peer takes no pushed pages");
  pm__errmsg_clear();
  int rc = tcp->server.serve_put(tcp->server.arg, req, page, length);
  if (rc > 0 || rc < PM_FRAME_STATUS_MIN)
    return pm__errf(PM_EIO, "serve_put failed with %d", rc);
  return rc;
}

static int handle_put(pm_tcp_worker *worker, pm_tcp_conn *conn,
                      const pm_page_request *req, uint64_t request_id,
                      uint32_t length, const uint8_t checksum[16],
                      uint64_t deadline_ns) {
  pm_tcp *tcp = worker->tcp;
  uint8_t *page = worker_page(worker);
  if (!page)
    return PM_ENOMEM; /* cannot drain the page bytes: close */
  bool sealed = false;
  pm_checksum sum;
  int rc = pm__tcp_conn_recv_page(conn, page, length, deadline_ns, &sealed,
                                  &sum);
  if (rc)
    return rc;
  pm__tcp_count_page(tcp, length, sealed);
  atomic_fetch_add(&tcp->bytes_received, length);
  int status = accept_put(tcp, req, page, length, &sum, checksum);
  if (status == 0)
    atomic_fetch_add(&tcp->puts_served, 1);
  return respond(conn, request_id, status, NULL, 0, NULL, deadline_ns,
                 &sealed);
}

int pm__tcp_serve_one(pm_tcp_worker *worker, pm_tcp_conn *conn) {
  pm_tcp *tcp = worker->tcp;
  uint64_t deadline_ns = pm__now_ns() + PM_TCP_SERVER_IO_NS;
  Pm__PageFrame *frame;
  int rc = pm__tcp_conn_recv_frame(conn, tcp->max_page_size, deadline_ns,
                                   &frame);
  if (rc == PM_EUNREACHABLE)
    return rc; /* the client went away: nothing to count */
  pm_page_request req;
  uint64_t request_id = 0;
  bool is_put = false;
  uint32_t length = 0;
  uint8_t checksum[16];
  if (!rc &&
      (rc = pm__page_msg_request_in(frame, tcp->max_page_size, &req,
                                    &request_id, &is_put, &length,
                                    checksum)) != 0)
    pm__frame_err_prefix(rc, conn->peer);
  if (rc) {
    if (rc == PM_EPROTO || rc == PM_ETOOBIG)
      atomic_fetch_add(&tcp->decode_failures, 1);
    PM_LOG_RATELIMITED(PM_LOG_WARN, "tcp", 1000, "bad request: %s",
                       pm__errmsg());
    return rc;
  }
  /* Lengths checked by pm__frame_validate. */
  snprintf(worker->uri, sizeof worker->uri, "%s", req.uri);
  snprintf(worker->version, sizeof worker->version, "%s", req.version);
  req.uri = worker->uri;
  req.version = worker->version;
  if (is_put)
    return handle_put(worker, conn, &req, request_id, length, checksum,
                      deadline_ns);
  uint32_t capacity = frame->get->rma_length ? frame->get->rma_length
                                             : tcp->max_page_size;
  return handle_get(worker, conn, &req, request_id, capacity, deadline_ns);
}
