/*
 * transport/fabric_server.c - the serving side of a fabric transport: the
 * queue of opened GET and PUT requests that the progress thread fills, the
 * worker threads that call the core's pm_page_server, and the registered
 * server buffers that pages are RMA-written from.
 *
 * GET: a worker takes a server buffer, has serve_file (read from the page
 * file, stored checksum) or serve_get (then checksummed here) fill it,
 * seals the trailer (request id, length, checksum) in front of the page
 * and RMA-writes both into the requester's landing buffer with the
 * request id as remote CQ data: the trailer is the answer, no
 * PageResponse follows. It does not wait for the write: the buffer returns
 * to the pool when the progress thread sees the write complete. Every
 * failure before the write is posted becomes an error PageResponse, so a
 * requester only ever waits for data that was actually sent. A GET for a
 * page that we are pushing to that same peer (a PUT's pull) is written
 * from the PUT's staging buffer instead.
 *
 * PUT: a worker pulls the page from the sender with an ordinary GET,
 * checks it against the PagePut's length and checksum, hands it to
 * serve_put and answers with the status.
 *
 * A worker may wait long in the core (an owner's miss asks other peers,
 * then the origin); what other peers ask meanwhile (a cached copy) must
 * not queue behind it until their deadlines. So when every worker is
 * stuck, the progress thread starts one more (pm_fabric_server_grow_if_
 * stuck), up to PM_FABRIC_EXTRA_WORKERS more than server_threads.
 *
 * The progress thread serves a GET itself when that needs no waiting (a
 * page on disk by reference whose bytes are in the page cache, a buffer
 * free, the provider taking the write at once): that saves two thread
 * hand-offs per page. Anything else goes to a worker.
 *
 * The server does not know its requesters' deadlines: it bounds each
 * request by PM_FABRIC_SERVE_TIMEOUT_NS from its arrival.
 */
#define _GNU_SOURCE /* preadv2, RWF_NOWAIT */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "transport/fabric_int.h"

#define DEFAULT_SERVER_THREADS 2
#define MAX_SERVER_THREADS 64
#define PM_FABRIC_EXTRA_WORKERS 12
#define PM_FABRIC_STUCK_NS (100ull * 1000000ull)
/* One post (a write or a response) to a peer that does not take it: a
 * dead peer must not hold a worker for the whole serve timeout. */
#define POST_TIMEOUT_NS (1000ull * 1000000ull)

static uint64_t post_deadline(uint64_t deadline_ns) {
  return PM_MIN(deadline_ns, pm__now_ns() + POST_TIMEOUT_NS);
}

/* ---- items and the queue --------------------------------------------------------- */

pm_fabric_item *pm_fabric_item_get(pm_fabric *f) {
  pm_fabric_item *item = NULL;
  pthread_mutex_lock(&f->queue_lock);
  if (f->item_free) {
    item = f->item_free;
    f->item_free = item->next;
  } else if (f->item_count < PM_FABRIC_QUEUE_MAX + 1) {
    item = malloc(sizeof *item);
    if (item)
      f->item_count++;
  }
  pthread_mutex_unlock(&f->queue_lock);
  if (item) {
    item->next = NULL;
    item->file.fd = -1;
    pm_fabric_arena_init(&item->arena, item->arena_mem,
                         sizeof item->arena_mem);
  }
  return item;
}

void pm_fabric_item_put(pm_fabric *f, pm_fabric_item *item) {
  if (item->file.fd >= 0)
    close(item->file.fd);
  item->file.fd = -1;
  pthread_mutex_lock(&f->queue_lock);
  item->next = f->item_free;
  f->item_free = item;
  pthread_mutex_unlock(&f->queue_lock);
}

void pm_fabric_server_submit(pm_fabric *f, pm_fabric_item *item) {
  item->queued_ns = pm__now_ns();
  item->next = NULL;
  pthread_mutex_lock(&f->queue_lock);
  if (f->queue_tail)
    f->queue_tail->next = item;
  else
    f->queue_head = item;
  f->queue_tail = item;
  f->queue_len++;
  pthread_cond_signal(&f->queue_cond);
  pthread_mutex_unlock(&f->queue_lock);
}

static pm_fabric_item *next_item(pm_fabric *f) {
  pthread_mutex_lock(&f->queue_lock);
  f->idle_workers++;
  while (!f->queue_head && !f->queue_closed)
    pthread_cond_wait(&f->queue_cond, &f->queue_lock);
  f->idle_workers--;
  pm_fabric_item *item = f->queue_closed ? NULL : f->queue_head;
  if (item) {
    f->queue_head = item->next;
    if (!f->queue_head)
      f->queue_tail = NULL;
    f->queue_len--;
  }
  pthread_mutex_unlock(&f->queue_lock);
  return item;
}

/* ---- server buffers ---------------------------------------------------------------- */

static pm_fabric_sbuf *find_sbuf(pm_fabric *f) {
  pm_fabric_sbuf *fallback = NULL;
  for (unsigned i = 0; i < f->sbuf_count; i++) {
    if (f->sbufs[i].busy)
      continue;
    if (f->sbufs[i].buf.data)
      return &f->sbufs[i];
    if (!fallback)
      fallback = &f->sbufs[i];
  }
  return fallback;
}

/* A free server buffer, waiting for one until deadline_ns (0: not at all,
 * then NULL with *err PM_EBUSY and no detail). */
static pm_fabric_sbuf *take_sbuf(pm_fabric *f, uint64_t deadline_ns,
                                 int *err) {
  pm_fabric_sbuf *sb = NULL;
  *err = 0;
  pthread_mutex_lock(&f->sbuf_lock);
  while (!(sb = find_sbuf(f)) && !*err) {
    if (deadline_ns == 0)
      *err = PM_EBUSY;
    else if (atomic_load(&f->stopping))
      *err = pm__errf(PM_ESHUTDOWN, "fabric: transport closing");
    else if (pm_fabric_cond_wait_until(&f->sbuf_cond, &f->sbuf_lock,
                                       deadline_ns) == ETIMEDOUT)
      *err = pm__errf(PM_EBUSY, "fabric: no server buffer free");
  }
  if (sb) {
    sb->busy = true;
    atomic_store(&sb->holds, 1);
  }
  pthread_mutex_unlock(&f->sbuf_lock);
  if (sb && !sb->buf.data) {
    *err = pm_fabric_buf_alloc(f, &sb->buf,
                               f->max_page_size + PM_FABRIC_TRAILER_LEN,
                               FI_WRITE);
    if (*err) {
      pthread_mutex_lock(&f->sbuf_lock);
      sb->busy = false;
      pthread_mutex_unlock(&f->sbuf_lock);
      sb = NULL;
    }
  }
  return sb;
}

static void give_sbuf(pm_fabric *f, pm_fabric_sbuf *sb) {
  pthread_mutex_lock(&f->sbuf_lock);
  sb->busy = false;
  pthread_cond_signal(&f->sbuf_cond);
  pthread_mutex_unlock(&f->sbuf_lock);
}

/* Let go of a server buffer held by a worker and, once posted, by the
 * write that reads it; the last one returns it to the pool. */
static void drop_sbuf(pm_fabric *f, pm_fabric_sbuf *sb) {
  if (atomic_fetch_sub(&sb->holds, 1) == 1)
    give_sbuf(f, sb);
}

static void respond(pm_fabric *f, fi_addr_t peer, uint64_t request_id,
                    int status, uint32_t length, const uint8_t *checksum,
                    const char *detail, uint64_t deadline_ns);

void pm_fabric_server_write_done(pm_fabric *f, pm_fabric_op *op, int err) {
  if (err) {
    PM_LOG_RATELIMITED(PM_LOG_WARN, "fabric", 1000, "page write: %s",
                       pm__errmsg());
    /* The requester waits for the page or an answer: tell it, so that it
     * asks the next replica now rather than at its deadline (best effort:
     * the connection may be what failed). Not waited for: this runs on
     * the thread that reads the CQ. */
    respond(f, op->peer, op->request_id, PM_EIO, 0, NULL,
            "fabric: the page write failed", 0);
  }
  if (op->put_slot >= 0)
    pm_fabric_slot_on_write_done(f, op->put_slot);
  else
    drop_sbuf(f, &f->sbufs[op->index]);
  pm_fabric_inflight_done(f);
}

/* ---- answering ------------------------------------------------------------------- */

static void respond(pm_fabric *f, fi_addr_t peer, uint64_t request_id,
                    int status, uint32_t length, const uint8_t *checksum,
                    const char *detail, uint64_t deadline_ns) {
  Pm__PageResponse resp;
  pm__page_response__init(&resp);
  char text[PM_FABRIC_DETAIL_MAX];
  snprintf(text, sizeof text, "%s", detail ? detail : "");
  resp.request_id = request_id;
  resp.status = status;
  resp.length = length;
  if (checksum) {
    resp.checksum.data = (uint8_t *)checksum;
    resp.checksum.len = PM_FABRIC_CHECKSUM_LEN;
  }
  resp.detail = text;
  Pm__PageFrame frame;
  pm__page_frame__init(&frame);
  frame.body_case = PM__PAGE_FRAME__BODY_RESPONSE;
  frame.response = &resp;
  if (pm_fabric_send_frame(f, peer, &frame, 0, post_deadline(deadline_ns)))
    PM_LOG_RATELIMITED(PM_LOG_WARN, "fabric", 1000, "response lost: %s",
                       pm__errmsg());
}

/* Seal the trailer in front of the page (length bytes at
 * pm_fabric_page_at(buf)) and post the RMA write of both; deadline_ns 0
 * waits for nothing (PM_EBUSY on -FI_EAGAIN). */
static int post_write(pm_fabric *f, fi_addr_t peer, pm_fabric_op *op,
                      const pm_fabric_buf *buf, size_t length,
                      const uint8_t *checksum, const Pm__PageGet *get,
                      uint64_t deadline_ns) {
  pm_fabric_trailer trailer = {.request_id = get->request_id,
                               .length = (uint32_t)length};
  memcpy(trailer.checksum, checksum, PM_FABRIC_CHECKSUM_LEN);
  pm_fabric_trailer_seal(&f->keys, &trailer, buf->data);
  deadline_ns = deadline_ns ? post_deadline(deadline_ns) : 0;
  op->peer = peer;
  op->request_id = get->request_id;
  pm_fabric_inflight_add(f);
  /* Counted before the write is posted, as a GET served is (see
   * counted_write): the requester may have the page, and read the
   * statistics, before fi_writedata returns here (seen under ASan). */
  atomic_fetch_add(&f->stats.bytes_sent, length);
  for (unsigned round = 0;;) {
    ssize_t rc = fi_writedata(f->ep, buf->data,
                              PM_FABRIC_TRAILER_LEN + length, buf->desc,
                              get->request_id & f->id_mask, peer,
                              get->rma_addr, get->rma_key, &op->context);
    if (rc == 0)
      return 0;
    int err = rc != -FI_EAGAIN ? pm_fabric_err((int)rc, "fi_writedata")
              : deadline_ns == 0
                  ? PM_EBUSY
                  : pm_fabric_backoff(f, &round, deadline_ns, "fi_writedata");
    if (err) {
      atomic_fetch_sub(&f->stats.bytes_sent, length);
      pm_fabric_inflight_done(f);
      return err;
    }
  }
}

/* Write a PUT's staged page to the peer that pulls it. */
static void serve_staged(pm_fabric *f, fi_addr_t peer, const Pm__PageGet *get,
                         int32_t put_slot, uint64_t deadline_ns) {
  pm_fabric_slot *slot = &f->slots[put_slot];
  int rc = PM_ETOOBIG;
  if (slot->put_length <= get->rma_length)
    rc = post_write(f, peer, &slot->write_op, &slot->buf, slot->put_length,
                    slot->put_checksum, get, deadline_ns);
  else
    pm__errf(rc, "fabric: staged page does not fit the landing buffer");
  if (rc) {
    pm_fabric_slot_on_write_done(f, put_slot);
    respond(f, peer, get->request_id, rc, 0, NULL, pm__errmsg(),
            deadline_ns);
  }
}

/* The page by reference (serve_file, unless the progress thread already
 * opened it: *opened, taken), read into the server buffer with its stored
 * checksum: false if the core has no such page (serve_get then), else
 * true with *out the length or a pm_err. */
static bool fill_from_file(pm_fabric *f, const pm_page_request *req,
                           pm_fabric_sbuf *sb, pm_checksum *sum,
                           bool *have_sum, ssize_t *out,
                           pm_page_file *opened) {
  /* An opened file was checked against a buffer of the same size. */
  pm_page_file file = *opened;
  opened->fd = -1;
  int rc = file.fd >= 0 ? 0
                        : pm__transport_serve_file(
                              &f->server, req, pm_fabric_page_room(&sb->buf),
                              &file);
  if (rc == PM_ENOENT)
    return false;
  *out = rc;
  if (rc)
    return true;
  ssize_t len = pm__pread_full(file.fd, pm_fabric_page_at(&sb->buf),
                               file.length, file.offset);
  close(file.fd);
  if (len >= 0 && (size_t)len != file.length)
    len = pm__errf(PM_EIO, "fabric: page file shorter than its length");
  memcpy(sum->bytes, file.checksum, sizeof sum->bytes);
  *have_sum = len >= 0;
  *out = len;
  return true;
}

/* Fill a server buffer from the core; returns the length or a pm_err.
 * *have_sum tells whether *sum already holds the page's checksum. */
static ssize_t fill(pm_fabric *f, const Pm__PageGet *get, pm_fabric_sbuf *sb,
                    pm_checksum *sum, bool *have_sum, pm_page_file *opened) {
  pm_page_request req;
  pm_fabric_req_from_pb(get->page, &req);
  pm__errmsg_clear();
  *have_sum = false;
  ssize_t len;
  size_t room = pm_fabric_page_room(&sb->buf);
  if (!fill_from_file(f, &req, sb, sum, have_sum, &len, opened))
    len = f->server.serve_get(f->server.arg, &req,
                              pm_fabric_page_at(&sb->buf), room);
  if (len < 0)
    return len;
  if ((size_t)len > room)
    return pm__errf(PM_EIO, "fabric: serve_get returned %zd bytes for a "
                    "%zu-byte buffer", len, room);
  if ((size_t)len > get->rma_length)
    return pm__errf(PM_ETOOBIG, "fabric: page of %zd bytes, landing buffer "
                    "of %u", len, get->rma_length);
  return len;
}

/* Checksum the page (unless its stored checksum came with it) and post
 * its write with the trailer; returns the length or a pm_err (then no
 * write is in flight). */
static ssize_t write_page(pm_fabric *f, fi_addr_t peer, const Pm__PageGet *get,
                          pm_fabric_sbuf *sb, size_t len, pm_checksum *sum,
                          bool have_sum, uint64_t deadline_ns) {
  if (!have_sum)
    *sum = pm__checksum(pm_fabric_page_at(&sb->buf), len);
  /* The write holds the buffer too: it returns to the pool after both the
   * worker and the write let go. */
  atomic_fetch_add(&sb->holds, 1);
  int err = post_write(f, peer, &sb->op, &sb->buf, len, sum->bytes, get,
                       deadline_ns);
  if (err) {
    atomic_fetch_sub(&sb->holds, 1);
    return err;
  }
  return (ssize_t)len;
}

/* write_page, counted as a GET served (the trailer answers it) before the
 * write is posted: the requester may have the page, and read the
 * statistics, before this thread runs again (seen in a test under ASan).
 * Taken back if nothing was posted. */
static ssize_t counted_write(pm_fabric *f, fi_addr_t peer,
                             const Pm__PageGet *get, pm_fabric_sbuf *sb,
                             size_t len, pm_checksum *sum, bool have_sum,
                             uint64_t deadline_ns) {
  atomic_fetch_add(&f->stats.gets_served, 1);
  ssize_t n = write_page(f, peer, get, sb, len, sum, have_sum, deadline_ns);
  if (n < 0)
    atomic_fetch_sub(&f->stats.gets_served, 1);
  return n;
}

static void serve_core(pm_fabric *f, fi_addr_t peer, const Pm__PageGet *get,
                       pm_page_file *opened, uint64_t deadline_ns) {
  int rc;
  pm_fabric_sbuf *sb = take_sbuf(f, deadline_ns, &rc);
  if (!sb) {
    respond(f, peer, get->request_id, rc, 0, NULL, pm__errmsg(),
            deadline_ns);
    return;
  }
  pm_checksum sum = {{0}};
  bool have_sum = false;
  ssize_t len = fill(f, get, sb, &sum, &have_sum, opened);
  if (atomic_load(&f->stopping)) {
    drop_sbuf(f, sb); /* closing: start no new write; the requester times out */
    return;
  }
  if (len >= 0)
    len = counted_write(f, peer, get, sb, (size_t)len, &sum, have_sum,
                        deadline_ns);
  drop_sbuf(f, sb);
  if (len < 0)
    respond(f, peer, get->request_id, (int)len, 0, NULL, pm__errmsg(),
            deadline_ns);
}

/* ---- serving on the progress thread --------------------------------------------- */

/* Read the page file into the buffer only if its bytes are in the page
 * cache: the progress thread must not wait for a disk. A file system
 * without RWF_NOWAIT turns serving on the progress thread off. */
static bool read_cached(pm_fabric *f, const pm_page_file *file,
                        pm_fabric_sbuf *sb) {
  struct iovec iov = {pm_fabric_page_at(&sb->buf), file->length};
  ssize_t n = preadv2(file->fd, &iov, 1, (off_t)file->offset, RWF_NOWAIT);
  if (n < 0 && (errno == EOPNOTSUPP || errno == EINVAL))
    atomic_store(&f->no_inline, true);
  return n >= 0 && (size_t)n == file->length;
}

/* A PUT's pull, written from the staged page at once; false if the
 * provider does not take the write now or it does not fit (a worker then
 * writes it, or answers the error). Never left to a worker when it can
 * be helped: the puller's worker waits for it, and two peers pushing to
 * each other with all their workers pulling would wait for each other
 * until the deadline. */
static bool serve_staged_inline(pm_fabric *f, fi_addr_t peer,
                                const Pm__PageGet *get, int32_t put_slot) {
  pm_fabric_slot *slot = &f->slots[put_slot];
  if (slot->put_length <= get->rma_length &&
      post_write(f, peer, &slot->write_op, &slot->buf, slot->put_length,
                 slot->put_checksum, get, 0) == 0)
    return true;
  pm_fabric_slot_on_write_done(f, put_slot);
  return false;
}

bool pm_fabric_serve_inline(pm_fabric *f, pm_fabric_item *item) {
  const Pm__PageGet *get = item->msg.frame->get;
  char hex[PM_ADDR_MAX];
  fi_addr_t peer;
  if (atomic_load(&f->stopping) ||
      pm_fabric_hex_encode(item->msg.sender, item->msg.sender_len, hex,
                           sizeof hex) ||
      pm_fabric_peer_resolve(f, hex, &peer))
    return false;
  int32_t put_slot = pm_fabric_slot_find_put(f, hex, get->page->page_id.data);
  if (put_slot >= 0)
    return serve_staged_inline(f, peer, get, put_slot);
  if (!f->server.serve_file || atomic_load(&f->no_inline))
    return false;
  int rc;
  pm_fabric_sbuf *sb = take_sbuf(f, 0, &rc);
  if (!sb)
    return false;
  pm_page_request req;
  pm_fabric_req_from_pb(get->page, &req);
  req.flags |= PM_PAGE_REQ_NOWAIT;
  pm_page_file file;
  rc = pm__transport_serve_file(
      &f->server, &req, PM_MIN(pm_fabric_page_room(&sb->buf),
                               (size_t)get->rma_length), &file);
  bool cached = rc == 0 && read_cached(f, &file, sb);
  if (rc == 0 && cached)
    close(file.fd);
  else if (rc == 0)
    item->file = file; /* the worker reads it: no second lookup */
  pm_checksum sum;
  memcpy(sum.bytes, file.checksum, sizeof sum.bytes);
  ssize_t len = cached ? counted_write(f, peer, get, sb, file.length, &sum,
                                       true, 0)
                       : PM_EBUSY;
  drop_sbuf(f, sb);
  return len >= 0; /* else nothing sent: a worker starts over */
}

/* ---- handlers -------------------------------------------------------------------- */

static int resolve_sender(pm_fabric *f, const pm_fabric_msg *msg,
                          char *hex, fi_addr_t *peer) {
  int rc = pm_fabric_hex_encode(msg->sender, msg->sender_len, hex,
                                PM_ADDR_MAX);
  if (!rc)
    rc = pm_fabric_peer_resolve(f, hex, peer);
  if (rc)
    PM_LOG_RATELIMITED(PM_LOG_WARN, "fabric", 1000,
                       "cannot answer a request: %s", pm__errmsg());
  return rc;
}

void pm_fabric_refuse_busy(pm_fabric *f, const pm_fabric_item *item) {
  const Pm__PageFrame *frame = item->msg.frame;
  uint64_t id = frame->body_case == PM__PAGE_FRAME__BODY_GET
                    ? frame->get->request_id
                : frame->body_case == PM__PAGE_FRAME__BODY_PUT
                    ? frame->put->request_id
                    : 0;
  char hex[PM_ADDR_MAX], detail[96];
  fi_addr_t peer;
  if (!id || resolve_sender(f, &item->msg, hex, &peer))
    return;
  atomic_fetch_add(&f->stats.busy_refusals, 1);
  snprintf(detail, sizeof detail,
           "fabric: server busy (%u requests queued)", PM_FABRIC_QUEUE_MAX);
  respond(f, peer, id, PM_EBUSY, 0, NULL, detail, 0);
}

static void handle_get(pm_fabric *f, pm_fabric_item *item,
                       uint64_t deadline_ns) {
  char hex[PM_ADDR_MAX];
  fi_addr_t peer;
  if (resolve_sender(f, &item->msg, hex, &peer))
    return;
  const Pm__PageGet *get = item->msg.frame->get;
  int32_t put_slot = pm_fabric_slot_find_put(f, hex, get->page->page_id.data);
  if (put_slot >= 0)
    serve_staged(f, peer, get, put_slot, deadline_ns);
  else
    serve_core(f, peer, get, &item->file, deadline_ns);
}

/* Pull a pushed page into scratch and hand it to serve_put. */
static int take_put(pm_fabric *f, const char *hex, const Pm__PagePut *put,
                    uint8_t *scratch, uint64_t deadline_ns) {
  pm_page_request req;
  pm_fabric_req_from_pb(put->page, &req);
  if (!f->server.serve_put)
    return pm__errf(PM_ENOTSUP, "fabric: this peer takes no pushed pages");
  ssize_t len = pm_fabric_fetch(f, hex, &req, scratch, put->length,
                                deadline_ns);
  if (len < 0)
    return (int)len;
  pm_checksum sum = pm__checksum(scratch, (size_t)len);
  if ((size_t)len != put->length ||
      memcmp(sum.bytes, put->checksum.data, sizeof sum.bytes) != 0)
    return pm__errf(PM_ECORRUPT, "fabric: pushed page differs from its "
                    "announcement");
  pm__errmsg_clear();
  return f->server.serve_put(f->server.arg, &req, scratch, (size_t)len);
}

static void handle_put(pm_fabric *f, const pm_fabric_item *item,
                       uint8_t **scratch, uint64_t deadline_ns) {
  char hex[PM_ADDR_MAX];
  fi_addr_t peer;
  if (resolve_sender(f, &item->msg, hex, &peer))
    return;
  const Pm__PagePut *put = item->msg.frame->put;
  if (!*scratch)
    *scratch = malloc(f->max_page_size);
  int rc = *scratch ? take_put(f, hex, put, *scratch, deadline_ns)
                    : pm__errf(PM_ENOMEM, "fabric: no memory for a page");
  if (rc == 0)
    atomic_fetch_add(&f->stats.puts_served, 1);
  respond(f, peer, put->request_id, rc, 0, NULL, rc ? pm__errmsg() : NULL,
          deadline_ns);
}

static void *worker_main(void *arg) {
  pm_fabric *f = arg;
  uint8_t *scratch = NULL;
  pm_fabric_item *item;
  while ((item = next_item(f))) {
    uint64_t deadline_ns = item->queued_ns + PM_FABRIC_SERVE_TIMEOUT_NS;
    if (pm__now_ns() >= deadline_ns)
      PM_LOG_RATELIMITED(PM_LOG_WARN, "fabric", 1000,
                         "request dropped after waiting in the queue");
    else if (item->msg.frame->body_case == PM__PAGE_FRAME__BODY_GET)
      handle_get(f, item, deadline_ns);
    else
      handle_put(f, item, &scratch, deadline_ns);
    pm_fabric_item_put(f, item);
    atomic_fetch_add(&f->requests_done, 1);
  }
  free(scratch);
  return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------- */

static int alloc_sbufs(pm_fabric *f) {
  size_t fit = (PM_FABRIC_BUFFER_BUDGET / 2) / f->max_page_size;
  size_t want = 2 * (size_t)f->worker_count;
  f->sbuf_count = (unsigned)PM_MAX(PM_MIN(want, fit), (size_t)2);
  f->sbufs = calloc(f->sbuf_count, sizeof *f->sbufs);
  if (!f->sbufs)
    return pm__errf(PM_ENOMEM, "fabric: cannot allocate server buffers");
  for (unsigned i = 0; i < f->sbuf_count; i++)
    f->sbufs[i].op = (pm_fabric_op){
        .kind = PM_FABRIC_OP_WRITE, .index = i, .put_slot = -1};
  return 0;
}

/* Start workers[worker_count] (queue_lock held, or before the progress
 * thread runs). */
static int start_worker(pm_fabric *f) {
  int rc = pthread_create(&f->workers[f->worker_count], NULL, worker_main,
                          f);
  if (rc)
    return pm__errf(pm__err_from_errno(rc),
                    "fabric: cannot start a server thread: %s",
                    strerror(rc));
  f->worker_count++;
  return 0;
}

int pm_fabric_server_start(pm_fabric *f) {
  unsigned threads = f->server_threads ? f->server_threads
                                       : DEFAULT_SERVER_THREADS;
  threads = PM_MIN(threads, (unsigned)MAX_SERVER_THREADS);
  f->worker_count = threads;
  int rc = alloc_sbufs(f);
  if (rc)
    return rc;
  f->worker_cap = threads + PM_FABRIC_EXTRA_WORKERS;
  f->workers = calloc(f->worker_cap, sizeof *f->workers);
  if (!f->workers)
    return pm__errf(PM_ENOMEM, "fabric: cannot allocate workers");
  f->worker_count = 0;
  for (unsigned i = 0; i < threads; i++)
    if ((rc = start_worker(f)) != 0)
      return rc;
  return 0;
}

void pm_fabric_server_grow_if_stuck(pm_fabric *f) {
  uint64_t now = pm__now_ns();
  uint64_t done = atomic_load(&f->requests_done);
  pthread_mutex_lock(&f->queue_lock);
  bool stuck = !f->queue_closed && f->queue_len > 0 &&
               f->idle_workers == 0 && done == f->stuck_done;
  f->stuck_done = done;
  if (!stuck)
    f->stuck_since_ns = 0;
  else if (!f->stuck_since_ns)
    f->stuck_since_ns = now;
  unsigned count = f->worker_count;
  bool grow = stuck && now - f->stuck_since_ns >= PM_FABRIC_STUCK_NS &&
              count < f->worker_cap && f->workers;
  if (grow) {
    f->stuck_since_ns = 0;
    grow = start_worker(f) == 0;
  }
  pthread_mutex_unlock(&f->queue_lock);
  if (grow)
    PM_LOG(PM_LOG_INFO, "fabric", "all %u server threads busy, requests "
           "waiting: thread %u started (at most %u)", count, count + 1,
           f->worker_cap);
}

void pm_fabric_server_stop(pm_fabric *f) {
  pthread_mutex_lock(&f->queue_lock);
  f->queue_closed = true; /* no worker is added from here on */
  unsigned workers = f->worker_count;
  pthread_cond_broadcast(&f->queue_cond);
  pthread_mutex_unlock(&f->queue_lock);
  pthread_mutex_lock(&f->sbuf_lock);
  pthread_cond_broadcast(&f->sbuf_cond);
  pthread_mutex_unlock(&f->sbuf_lock);
  for (unsigned i = 0; i < workers; i++)
    pthread_join(f->workers[i], NULL);
  f->worker_count = 0;
}

void pm_fabric_server_free(pm_fabric *f) {
  for (unsigned i = 0; f->sbufs && i < f->sbuf_count; i++)
    pm_fabric_buf_free(&f->sbufs[i].buf);
  free(f->sbufs);
  free(f->workers);
  f->sbufs = NULL;
  f->workers = NULL;
  pm_fabric_item *lists[2] = {f->queue_head, f->item_free};
  for (int l = 0; l < 2; l++) {
    while (lists[l]) {
      pm_fabric_item *next = lists[l]->next;
      if (lists[l]->file.fd >= 0)
        close(lists[l]->file.fd);
      free(lists[l]);
      lists[l] = next;
    }
  }
  f->queue_head = f->queue_tail = f->item_free = NULL;
}
