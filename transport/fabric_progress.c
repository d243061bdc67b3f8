/*
 * transport/fabric_progress.c - the progress thread of a fabric transport
 * and the control message buffers it serves. With tcp;ofi_rxm nothing
 * completes unless each side reads its completion queue, so every
 * transport runs one thread that does only that (a caller waiting for its
 * own request may take its place for a while: pm_fabric_caller_poll, one
 * reader of the CQ at a time under poll_lock; the thread then waits
 * aside until that caller hands back): it busy-polls (yielding
 * the CPU between empty polls) while a few operations of ours are in
 * flight and shortly after each completion, otherwise it blocks in
 * fi_cq_sread, for 1 ms while operations are in flight and up to
 * PM_FABRIC_IDLE_WAIT_MS when idle (an incoming message, socket progress
 * or fi_cq_signal wakes it). It dispatches: a received
 * control message is opened here, responses go to the waiting request
 * slot, a GET it can serve without waiting is served here, other GET and
 * PUT requests go to the server queue; a remote write's CQ data
 * goes to its request slot; send and write completions free their
 * buffers. It also posts the receive buffers again and sweeps quarantined
 * slots.
 *
 * Control messages live in one registered region: PM_FABRIC_RECV_COUNT
 * pre-posted receive buffers, then PM_FABRIC_SEND_COUNT send buffers,
 * each PM_FABRIC_MSG_MAX bytes. A larger message truncates and is dropped.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "transport/fabric_int.h"

#define CQ_BATCH 16
#define SWEEP_INTERVAL_NS (100ull * 1000000ull)

/* Tunables (environment, read once): PM_FABRIC_SPIN_US, how long the
 * progress thread keeps polling after its last completion (default 200);
 * PM_FABRIC_POLL_INFLIGHT, the most operations in flight for which it
 * polls rather than blocks (default 2: one request and its message).
 * More was measured: 16 made bench_transport_fabric's 1 MiB qd8 cell
 * 5.0-5.2 GB/s against 4.0-4.6 (one process, eight requesters), but the
 * epoch benchmark's remote-hit epoch (several pagemeshd and readers on 2
 * vCPUs) 380-421 MB/s against 413-521 with 2: polling threads take the
 * CPU the other processes of the node need. */
static uint64_t env_u64(const char *name, uint64_t fallback) {
  const char *env = getenv(name);
  if (!env || !*env)
    return fallback;
  char *end;
  unsigned long long value = strtoull(env, &end, 10);
  return *end ? fallback : (uint64_t)value;
}

static uint64_t spin_ns(void) {
  static _Atomic uint64_t value = UINT64_MAX;
  if (atomic_load(&value) == UINT64_MAX)
    atomic_store(&value, env_u64("PM_FABRIC_SPIN_US", 200) * 1000);
  return atomic_load(&value);
}

static int poll_max(void) {
  static atomic_int value = -1;
  if (atomic_load(&value) < 0)
    atomic_store(&value, (int)PM_MIN(env_u64("PM_FABRIC_POLL_INFLIGHT", 2),
                                     (uint64_t)INT32_MAX));
  return atomic_load(&value);
}

/* ---- condition variables -------------------------------------------------- */

int pm_fabric_cond_init(pthread_cond_t *cond) {
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  int rc = pthread_cond_init(cond, &attr);
  pthread_condattr_destroy(&attr);
  return rc;
}

int pm_fabric_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mutex,
                              uint64_t deadline_ns) {
  struct timespec ts = {
      .tv_sec = (time_t)(deadline_ns / 1000000000u),
      .tv_nsec = (long)(deadline_ns % 1000000000u),
  };
  return pthread_cond_timedwait(cond, mutex, &ts);
}

/* ---- in-flight accounting and retries -------------------------------------- */

void pm_fabric_inflight_add(pm_fabric *f) {
  if (atomic_fetch_add(&f->inflight, 1) == 0 && f->cq_waitable)
    fi_cq_signal(f->cq); /* leave the blocking wait: poll */
}

void pm_fabric_inflight_done(pm_fabric *f) {
  atomic_fetch_sub(&f->inflight, 1);
}

int pm_fabric_backoff(pm_fabric *f, unsigned *round, uint64_t deadline_ns,
                      const char *what) {
  if (atomic_load(&f->stopping))
    return pm__errf(PM_ESHUTDOWN, "fabric: %s: transport closing", what);
  if (pm__now_ns() >= deadline_ns)
    return pm__errf(PM_ETIMEDOUT, "fabric: %s: still busy at the deadline",
                    what);
  unsigned r = (*round)++;
  if (r < 16) {
    sched_yield();
    return 0;
  }
  unsigned shift = PM_MIN(r - 16, 7u);
  struct timespec ts = {0, (long)(8000u << shift)}; /* 8 us .. 1 ms */
  nanosleep(&ts, NULL);
  return 0;
}

/* ---- message buffers ----------------------------------------------------------- */

static uint8_t *recv_buf(pm_fabric *f, uint32_t index) {
  return f->msg_region.data + (size_t)index * PM_FABRIC_MSG_MAX;
}

static uint8_t *send_buf(pm_fabric *f, uint32_t index) {
  return recv_buf(f, PM_FABRIC_RECV_COUNT + index);
}

static void post_recv(pm_fabric *f, uint32_t index) {
  pm_fabric_op *op = &f->recv_ops[index];
  ssize_t rc = fi_recv(f->ep, recv_buf(f, index), PM_FABRIC_MSG_MAX,
                       f->msg_region.desc, FI_ADDR_UNSPEC, &op->context);
  if (rc == 0) {
    if (f->recv_pending[index]) {
      f->recv_pending[index] = false;
      f->recv_pending_count--;
    }
    return;
  }
  if (!f->recv_pending[index]) {
    f->recv_pending[index] = true;
    f->recv_pending_count++;
  }
  if (rc != -FI_EAGAIN)
    PM_LOG_RATELIMITED(PM_LOG_WARN, "fabric", 1000, "fi_recv: %s",
                       fi_strerror((int)-rc));
}

static void post_pending_recvs(pm_fabric *f) {
  for (uint32_t i = 0; f->recv_pending_count && i < PM_FABRIC_RECV_COUNT; i++)
    if (f->recv_pending[i])
      post_recv(f, i);
}

int pm_fabric_msgbufs_open(pm_fabric *f) {
  size_t count = PM_FABRIC_RECV_COUNT + PM_FABRIC_SEND_COUNT;
  int rc = pm_fabric_buf_alloc(f, &f->msg_region, count * PM_FABRIC_MSG_MAX,
                               FI_SEND | FI_RECV);
  if (rc)
    return rc;
  for (uint32_t i = 0; i < PM_FABRIC_SEND_COUNT; i++) {
    f->send_ops[i] = (pm_fabric_op){.kind = PM_FABRIC_OP_SEND, .index = i};
    f->send_free[i] = i;
  }
  f->send_free_count = PM_FABRIC_SEND_COUNT;
  for (uint32_t i = 0; i < PM_FABRIC_RECV_COUNT; i++) {
    f->recv_ops[i] = (pm_fabric_op){.kind = PM_FABRIC_OP_RECV, .index = i};
    post_recv(f, i);
  }
  if (f->recv_pending_count == PM_FABRIC_RECV_COUNT)
    return pm__errf(PM_EIO, "fabric: cannot post any receive buffer");
  return 0;
}

void pm_fabric_msgbufs_close(pm_fabric *f) {
  pm_fabric_buf_free(&f->msg_region);
}

/* ---- sending ----------------------------------------------------------------------- */

static int take_send(pm_fabric *f, uint64_t deadline_ns, uint32_t *index) {
  int rc = 0;
  pthread_mutex_lock(&f->send_lock);
  while (f->send_free_count == 0 && !rc) {
    if (atomic_load(&f->stopping))
      rc = pm__errf(PM_ESHUTDOWN, "fabric: transport closing");
    else if (pm_fabric_cond_wait_until(&f->send_cond, &f->send_lock,
                                       deadline_ns) == ETIMEDOUT)
      rc = pm__errf(PM_ETIMEDOUT, "fabric: no send buffer free in time");
  }
  if (!rc)
    *index = f->send_free[--f->send_free_count];
  pthread_mutex_unlock(&f->send_lock);
  return rc;
}

static void give_send(pm_fabric *f, uint32_t index) {
  pthread_mutex_lock(&f->send_lock);
  f->send_free[f->send_free_count++] = index;
  pthread_cond_signal(&f->send_cond);
  pthread_mutex_unlock(&f->send_lock);
}

static int post_send(pm_fabric *f, pm_fabric_op *op, size_t len,
                     fi_addr_t dest, uint64_t deadline_ns) {
  uint8_t *buf = send_buf(f, op->index);
  for (unsigned round = 0;;) {
    ssize_t rc = fi_send(f->ep, buf, len, f->msg_region.desc, dest,
                         &op->context);
    if (rc == 0)
      return 0;
    if (rc != -FI_EAGAIN)
      return pm_fabric_err((int)rc, "fi_send");
    int err = pm_fabric_backoff(f, &round, deadline_ns, "fi_send");
    if (err)
      return err;
  }
}

int pm_fabric_send_frame(pm_fabric *f, fi_addr_t dest,
                         const Pm__PageFrame *frame, uint64_t request_id,
                         uint64_t deadline_ns) {
  uint32_t index;
  int rc = take_send(f, deadline_ns, &index);
  if (rc)
    return rc;
  pm_fabric_op *op = &f->send_ops[index];
  op->request_id = request_id;
  ssize_t len = pm_fabric_msg_seal(&f->keys, f->self_addr, f->self_addr_len,
                                   frame, send_buf(f, index),
                                   PM_FABRIC_MSG_MAX);
  if (len < 0) {
    give_send(f, index);
    return (int)len;
  }
  pm_fabric_inflight_add(f);
  rc = post_send(f, op, (size_t)len, dest, deadline_ns);
  if (rc) {
    pm_fabric_inflight_done(f);
    give_send(f, index);
  }
  return rc;
}

static void on_send_done(pm_fabric *f, pm_fabric_op *op, int err) {
  if (err && op->request_id)
    pm_fabric_slot_on_send_error(f, op->request_id, err);
  give_send(f, op->index);
  pm_fabric_inflight_done(f);
}

/* ---- receiving ------------------------------------------------------------------- */

/* Open the message into the progress thread's item, then route it. */
static void on_message(pm_fabric *f, const uint8_t *wire, size_t len) {
  pm_fabric_item *item = f->rx_item;
  int rc = pm_fabric_msg_open(&f->keys, wire, len, f->max_page_size,
                              &item->arena, &item->msg);
  if (rc == PM_EAUTH) {
    atomic_fetch_add(&f->stats.auth_failures, 1);
    PM_LOG_RATELIMITED(PM_LOG_WARN, "fabric", 1000, "dropped: %s",
                       pm__errmsg());
    return;
  }
  if (rc) {
    atomic_fetch_add(&f->stats.decode_failures, 1);
    PM_LOG_RATELIMITED(PM_LOG_WARN, "fabric", 1000, "dropped: %s",
                       pm__errmsg());
    return;
  }
  if (item->msg.frame->body_case == PM__PAGE_FRAME__BODY_RESPONSE) {
    pm_fabric_slot_on_response(f, item->msg.frame->response);
    return;
  }
  if (item->msg.frame->body_case == PM__PAGE_FRAME__BODY_GET &&
      pm_fabric_serve_inline(f, item))
    return;
  pm_fabric_item *spare = pm_fabric_item_get(f);
  if (!spare) {
    PM_LOG_RATELIMITED(PM_LOG_WARN, "fabric", 1000,
                       "server queue full: request refused as busy");
    pm_fabric_refuse_busy(f, item);
    if (item->file.fd >= 0)
      close(item->file.fd);
    item->file.fd = -1;
    return;
  }
  f->rx_item = spare;
  pm_fabric_server_submit(f, item);
}

static bool is_recv_op(pm_fabric *f, const void *context) {
  const pm_fabric_op *op = context;
  return op >= f->recv_ops && op < f->recv_ops + PM_FABRIC_RECV_COUNT;
}

static void dispatch(pm_fabric *f, const struct fi_cq_data_entry *entry) {
  /* Only an RMA write's CQ data names a landed page; data carried by a
   * message (fi_senddata) is nobody's to trust. */
  if ((entry->flags & FI_REMOTE_CQ_DATA) && (entry->flags & FI_REMOTE_WRITE))
    pm_fabric_slot_on_data(f, entry->data);
  pm_fabric_op *op = entry->op_context;
  if ((entry->flags & FI_REMOTE_WRITE) || !op) {
    /* With FI_RX_CQ_DATA a remote write consumes a receive: post it again. */
    if (op && is_recv_op(f, op))
      post_recv(f, op->index);
    return;
  }
  switch (op->kind) {
  case PM_FABRIC_OP_RECV:
    on_message(f, recv_buf(f, op->index), entry->len);
    post_recv(f, op->index);
    break;
  case PM_FABRIC_OP_SEND:
    on_send_done(f, op, 0);
    break;
  case PM_FABRIC_OP_WRITE:
    pm_fabric_server_write_done(f, op, 0);
    break;
  }
}

static void dispatch_error(pm_fabric *f) {
  struct fi_cq_err_entry err = {0};
  if (fi_cq_readerr(f->cq, &err, 0) != 1)
    return;
  pm_fabric_op *op = err.op_context;
  char what[160];
  snprintf(what, sizeof what, "completion error (%s)",
           fi_cq_strerror(f->cq, err.prov_errno, err.err_data, NULL, 0));
  int code = pm_fabric_err(err.err, what);
  if (!op || (err.flags & FI_REMOTE_WRITE)) {
    if (op && is_recv_op(f, op))
      post_recv(f, op->index);
    return;
  }
  switch (op->kind) {
  case PM_FABRIC_OP_RECV:
    if (err.err != FI_ECANCELED) {
      atomic_fetch_add(&f->stats.decode_failures, 1);
      PM_LOG_RATELIMITED(PM_LOG_WARN, "fabric", 1000, "receive: %s",
                         pm__errmsg());
      post_recv(f, op->index);
    }
    break;
  case PM_FABRIC_OP_SEND:
    on_send_done(f, op, code);
    break;
  case PM_FABRIC_OP_WRITE:
    pm_fabric_server_write_done(f, op, code);
    break;
  }
}

/* ---- the thread ------------------------------------------------------------------ */

/* Operations in flight, or a completion a short while ago (the next
 * request of a busy peer usually follows within microseconds; waking from
 * fi_cq_sread costs more than that). */
static bool active(pm_fabric *f) {
  return atomic_load(&f->inflight) > 0 ||
         pm__now_ns() - f->last_active_ns < spin_ns();
}

/* Poll rather than block: while active with few operations in flight, and
 * always on a CQ without a wait object (it has no blocking read: calling
 * fi_cq_sread on it crashes in the provider). */
static bool polling(pm_fabric *f) {
  if (!f->cq_waitable)
    return true;
  return atomic_load(&f->inflight) <= poll_max() && active(f);
}

static ssize_t read_cq(pm_fabric *f, struct fi_cq_data_entry *entries) {
  if (polling(f))
    return fi_cq_read(f->cq, entries, CQ_BATCH);
  return fi_cq_sread(f->cq, entries, CQ_BATCH, NULL,
                     atomic_load(&f->inflight) ? 1 : PM_FABRIC_IDLE_WAIT_MS);
}

/* After an empty poll: yield while polling; on a CQ without a wait
 * object, yield while active and back off in sleeps of 8 us to 1 ms once
 * inactive. */
static void idle(pm_fabric *f, unsigned *empty_polls) {
  if (f->cq_waitable ? polling(f) : active(f)) {
    sched_yield();
    return;
  }
  if (f->cq_waitable)
    return; /* fi_cq_sread waited */
  unsigned shift = PM_MIN(*empty_polls, 7u);
  (*empty_polls)++;
  struct timespec ts = {0, (long)(8000u << shift)};
  nanosleep(&ts, NULL);
}

/* One read of the CQ and the dispatch of what it returned, under
 * poll_lock (its holder alone reads the CQ and owns rx_item and the
 * receive buffers). Returns what the read returned. */
static ssize_t poll_once(pm_fabric *f, bool may_block) {
  struct fi_cq_data_entry entries[CQ_BATCH];
  ssize_t n = may_block ? read_cq(f, entries)
                        : fi_cq_read(f->cq, entries, CQ_BATCH);
  if (n > 0) {
    for (ssize_t i = 0; i < n; i++)
      dispatch(f, &entries[i]);
    f->last_active_ns = pm__now_ns();
  } else if (n == -FI_EAVAIL) {
    dispatch_error(f);
  }
  if (f->recv_pending_count)
    post_pending_recvs(f);
  return n;
}

/* ---- callers that poll ------------------------------------------------------------ */

/* A caller waiting for its own request reads the CQ itself while no other
 * caller does, instead of sleeping until the progress thread wakes it:
 * the completion is then handled on the thread that wants it, without a
 * wake-up (~20 us on the VMs we measured; a GET at queue depth 1 took two,
 * one on each side, and now the requester's is gone). It dispatches
 * everything it reads, as the progress thread would, and stops when
 * done(arg) holds, at the deadline, when the transport closes, or after
 * CALLER_POLL_IDLE_NS without a completion (an owner fetching from its
 * origin: then the caller sleeps and the progress thread takes over). */
#define CALLER_POLL_IDLE_NS (2ull * 1000000ull)

/* While a caller polls, the progress thread waits aside on handoff_cond,
 * not on poll_lock: unlocking a mutex with a waiter wakes the waiter at
 * once, and on a busy CPU the woken thread ran before the caller got back
 * to its page (about 8 us of a 64 KiB GET at queue depth 1, measured with
 * bench_transport_fabric). The caller wakes it only when something needs
 * the CQ read now: its own request unfinished (it gave up polling), or
 * other operations in flight. Otherwise the thread looks again after
 * HANDOFF_WAIT_NS: an incoming request that arrives just after a caller
 * stopped polling waits at most that long (while callers poll, they
 * dispatch incoming requests themselves). */
#define HANDOFF_WAIT_NS (100ull * 1000u)

static void wait_aside(pm_fabric *f) {
  pthread_mutex_lock(&f->handoff_lock);
  if (atomic_load(&f->caller_poll) != 0 && !atomic_load(&f->stopping))
    pm_fabric_cond_wait_until(&f->handoff_cond, &f->handoff_lock,
                              pm__now_ns() + HANDOFF_WAIT_NS);
  pthread_mutex_unlock(&f->handoff_lock);
}

static void hand_back(pm_fabric *f) {
  pthread_mutex_lock(&f->handoff_lock);
  pthread_cond_signal(&f->handoff_cond);
  pthread_mutex_unlock(&f->handoff_lock);
}

void pm_fabric_caller_poll(pm_fabric *f, bool (*done)(void *), void *arg,
                           uint64_t deadline_ns) {
  int expected = 0;
  if (!atomic_compare_exchange_strong(&f->caller_poll, &expected, 1))
    return; /* another caller polls: sleep as before */
  if (f->cq_waitable)
    fi_cq_signal(f->cq); /* out of fi_cq_sread: give up the lock */
  pthread_mutex_lock(&f->poll_lock);
  atomic_store(&f->caller_poll, 2);
  uint64_t last = pm__now_ns();
  bool finished;
  while (!(finished = done(arg)) && !atomic_load(&f->stopping)) {
    uint64_t now = pm__now_ns();
    if (now >= deadline_ns || now - last >= CALLER_POLL_IDLE_NS)
      break;
    ssize_t n = poll_once(f, false);
    if (n > 0)
      last = now;
    else if (n != -FI_EAVAIL)
      sched_yield();
  }
  atomic_store(&f->caller_poll, 0);
  pthread_mutex_unlock(&f->poll_lock);
  /* Our own request still counts in flight until its slot is released. */
  if (!finished || atomic_load(&f->inflight) > 1)
    hand_back(f);
}

/* ---- the thread ------------------------------------------------------------------ */

static void *progress_main(void *arg) {
  pm_fabric *f = arg;
  unsigned empty_polls = 0;
  while (!atomic_load(&f->stopping)) {
    /* A lone caller polls, or is about to: wait aside until it hands
     * back. With several callers, one of them always waits for the CQ:
     * take it over as soon as the polling one lets go (a caller about to
     * poll waits for the lock first: let it have it, since a mutex does
     * not hand over to a waiter on its own). */
    if (atomic_load(&f->caller_poll) != 0 && atomic_load(&f->callers) <= 1) {
      wait_aside(f);
    } else {
      while (atomic_load(&f->caller_poll) == 1 && !atomic_load(&f->stopping))
        sched_yield();
      pthread_mutex_lock(&f->poll_lock);
      ssize_t n = poll_once(f, true);
      pthread_mutex_unlock(&f->poll_lock);
      if (n > 0)
        empty_polls = 0;
      else if (n != -FI_EAVAIL)
        idle(f, &empty_polls);
    }
    uint64_t now = pm__now_ns();
    if (now - f->last_sweep_ns >= SWEEP_INTERVAL_NS) {
      f->last_sweep_ns = now;
      pm_fabric_slots_sweep(f);
      pm_fabric_server_grow_if_stuck(f);
    }
  }
  return NULL;
}

int pm_fabric_progress_start(pm_fabric *f) {
  f->rx_item = pm_fabric_item_get(f);
  if (!f->rx_item)
    return pm__errf(PM_ENOMEM, "fabric: cannot allocate a message item");
  f->last_sweep_ns = pm__now_ns();
  int rc = pthread_create(&f->progress, NULL, progress_main, f);
  if (rc)
    return pm__errf(pm__err_from_errno(rc),
                    "fabric: cannot start the progress thread: %s",
                    strerror(rc));
  f->progress_started = true;
  return 0;
}

void pm_fabric_progress_stop(pm_fabric *f) {
  atomic_store(&f->stopping, true);
  if (f->progress_started) {
    if (f->cq_waitable)
      fi_cq_signal(f->cq);
    hand_back(f);
    pthread_join(f->progress, NULL);
    f->progress_started = false;
  }
  if (f->rx_item) {
    pm_fabric_item_put(f, f->rx_item);
    f->rx_item = NULL;
  }
}
