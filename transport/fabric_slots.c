/*
 * transport/fabric_slots.c - the request slots of a fabric transport. Each
 * of our outstanding GETs and PUTs holds one slot: its registered buffer
 * (where the server RMA-writes a page, or where a page to push is staged),
 * its request id, and what has arrived for it so far. A request id is
 * (generation << PM_FABRIC_SLOT_BITS | slot index), cut to the provider's
 * CQ data size, so a late write or response of an earlier use of the slot
 * is recognised and never mistaken for the current one.
 *
 * A caller that gives up (deadline, shutdown) leaves its slot ZOMBIE
 * unless nothing can still write into the buffer: the buffer stays out of
 * use until the write with its id lands, an error response proves there
 * will be none, or PM_FABRIC_QUARANTINE_NS pass, after which the buffer is
 * registered again under a new key (the old key then names nothing).
 * Callers also verify the checksum on the bytes they copied out, so even a
 * write that slipped past all this could not hand out wrong bytes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "transport/fabric_int.h"

#define SLOT_INDEX_MASK ((1ull << PM_FABRIC_SLOT_BITS) - 1)

int pm_fabric_slots_open(pm_fabric *f) {
  size_t fit = (PM_FABRIC_BUFFER_BUDGET / 2) / f->max_page_size;
  f->slot_count = (unsigned)PM_MAX(PM_MIN(fit, (size_t)PM_FABRIC_SLOTS_MAX),
                                   (size_t)PM_FABRIC_SLOTS_MIN);
  f->slot_buf_size = f->max_page_size;
  f->slots = calloc(f->slot_count, sizeof *f->slots);
  if (!f->slots)
    return pm__errf(PM_ENOMEM, "fabric: cannot allocate request slots");
  for (unsigned i = 0; i < f->slot_count; i++) {
    pm_fabric_slot *slot = &f->slots[i];
    slot->index = i;
    pm__random(&slot->generation, sizeof slot->generation); /* unguessable */
    slot->write_op = (pm_fabric_op){
        .kind = PM_FABRIC_OP_WRITE, .index = i, .put_slot = (int32_t)i};
    if (pm_fabric_cond_init(&slot->cond)) {
      f->slot_count = i;
      return pm__errf(PM_ENOMEM, "fabric: cannot create a condition");
    }
  }
  return 0;
}

void pm_fabric_slots_close(pm_fabric *f) {
  for (unsigned i = 0; i < f->slot_count; i++) {
    pm_fabric_buf_free(&f->slots[i].buf);
    pthread_cond_destroy(&f->slots[i].cond);
  }
  free(f->slots);
  f->slots = NULL;
  f->slot_count = 0;
}

/* ---- state changes (slot_lock held) ------------------------------------------ */

static void reset(pm_fabric_slot *slot) {
  slot->is_put = slot->sent = slot->got_data = slot->got_response = false;
  slot->failed = false;
  slot->error = slot->status = 0;
  slot->length = 0;
  slot->detail[0] = '\0';
  slot->peer[0] = '\0';
  slot->zombie_since_ns = 0;
}

static void make_free(pm_fabric *f, pm_fabric_slot *slot) {
  slot->state = PM_FABRIC_SLOT_FREE;
  reset(slot);
  pthread_cond_signal(&f->slot_cond);
}

static void start(pm_fabric *f, pm_fabric_slot *slot) {
  reset(slot);
  slot->state = PM_FABRIC_SLOT_ACTIVE;
  do {
    slot->generation++;
    slot->id = ((uint64_t)slot->generation << PM_FABRIC_SLOT_BITS |
                slot->index) & f->id_mask;
  } while ((slot->id >> PM_FABRIC_SLOT_BITS) == 0);
}

/* Nothing can still write into (GET) or read from (PUT) the buffer. */
static bool buffer_idle(const pm_fabric_slot *slot) {
  if (slot->local_writes)
    return false;
  if (slot->is_put || !slot->sent)
    return true;
  return slot->got_data ||
         (slot->got_response && (slot->status != 0 || slot->length == 0));
}

static pm_fabric_slot *find_free(pm_fabric *f) {
  pm_fabric_slot *fallback = NULL;
  for (unsigned i = 0; i < f->slot_count; i++) {
    pm_fabric_slot *slot = &f->slots[i];
    if (slot->state != PM_FABRIC_SLOT_FREE)
      continue;
    if (slot->buf.data)
      return slot;
    if (!fallback)
      fallback = slot;
  }
  return fallback;
}

/* The slot an id names, if that id is its current one. */
static pm_fabric_slot *by_id(pm_fabric *f, uint64_t id) {
  uint64_t index = id & SLOT_INDEX_MASK;
  if (index >= f->slot_count)
    return NULL;
  pm_fabric_slot *slot = &f->slots[index];
  if (slot->state == PM_FABRIC_SLOT_FREE || slot->id != (id & f->id_mask))
    return NULL;
  return slot;
}

/* ---- callers ------------------------------------------------------------------- */

static pm_fabric_slot *wait_free(pm_fabric *f, uint64_t deadline_ns,
                                 int *err) {
  for (;;) {
    if (atomic_load(&f->stopping)) {
      *err = pm__errf(PM_ESHUTDOWN, "fabric: transport closing");
      return NULL;
    }
    pm_fabric_slot *slot = find_free(f);
    if (slot)
      return slot;
    if (pm_fabric_cond_wait_until(&f->slot_cond, &f->slot_lock,
                                  deadline_ns) == ETIMEDOUT) {
      *err = pm__errf(PM_ETIMEDOUT,
                      "fabric: all %u request slots busy until the deadline",
                      f->slot_count);
      return NULL;
    }
  }
}

pm_fabric_slot *pm_fabric_slot_acquire(pm_fabric *f, uint64_t deadline_ns,
                                       int *err) {
  pthread_mutex_lock(&f->slot_lock);
  pm_fabric_slot *slot = wait_free(f, deadline_ns, err);
  if (slot)
    start(f, slot);
  pthread_mutex_unlock(&f->slot_lock);
  if (!slot)
    return NULL;
  if (!slot->buf.data) {
    *err = pm_fabric_buf_alloc(f, &slot->buf,
                               f->slot_buf_size + PM_FABRIC_TRAILER_LEN,
                               FI_REMOTE_WRITE | FI_WRITE);
    if (*err) {
      pthread_mutex_lock(&f->slot_lock);
      make_free(f, slot);
      pthread_mutex_unlock(&f->slot_lock);
      return NULL;
    }
  }
  pm_fabric_inflight_add(f);
  return slot;
}

static bool complete(const pm_fabric_slot *slot) {
  if (!slot->got_response)
    return false;
  return slot->is_put || slot->status != 0 || slot->length == 0 ||
         slot->got_data;
}

typedef struct waiting {
  pm_fabric *f;
  pm_fabric_slot *slot;
} waiting;

/* For pm_fabric_caller_poll: nothing left to wait for. */
static bool settled(void *arg) {
  waiting *w = arg;
  pthread_mutex_lock(&w->f->slot_lock);
  bool done = complete(w->slot) || w->slot->failed;
  pthread_mutex_unlock(&w->f->slot_lock);
  return done;
}

int pm_fabric_slot_wait(pm_fabric *f, pm_fabric_slot *slot,
                        uint64_t deadline_ns) {
  int rc = 0;
  pm_fabric_caller_poll(f, settled, &(waiting){f, slot}, deadline_ns);
  pthread_mutex_lock(&f->slot_lock);
  while (!complete(slot)) {
    if (slot->failed) {
      rc = pm__errf(slot->error, "%s", slot->detail);
      break;
    }
    if (atomic_load(&f->stopping)) {
      rc = pm__errf(PM_ESHUTDOWN, "fabric: transport closing");
      break;
    }
    if (pm_fabric_cond_wait_until(&slot->cond, &f->slot_lock, deadline_ns) ==
            ETIMEDOUT &&
        !complete(slot)) {
      rc = pm__errf(PM_ETIMEDOUT, "fabric: no %s before the deadline",
                    slot->got_response ? "page data" : "response");
      break;
    }
  }
  pthread_mutex_unlock(&f->slot_lock);
  return rc;
}

void pm_fabric_slot_set_sent(pm_fabric *f, pm_fabric_slot *slot, bool sent) {
  pthread_mutex_lock(&f->slot_lock);
  slot->sent = sent;
  pthread_mutex_unlock(&f->slot_lock);
}

void pm_fabric_slot_stage_put(pm_fabric *f, pm_fabric_slot *slot,
                              const char *peer_hex, const uint8_t page_id[16],
                              uint32_t length, const pm_checksum *checksum) {
  pthread_mutex_lock(&f->slot_lock);
  slot->is_put = true;
  snprintf(slot->peer, sizeof slot->peer, "%s", peer_hex);
  memcpy(slot->page_id, page_id, 16);
  slot->put_length = length;
  memcpy(slot->put_checksum, checksum->bytes, PM_FABRIC_CHECKSUM_LEN);
  pthread_mutex_unlock(&f->slot_lock);
}

void pm_fabric_slot_release(pm_fabric *f, pm_fabric_slot *slot) {
  pthread_mutex_lock(&f->slot_lock);
  if (buffer_idle(slot)) {
    make_free(f, slot);
  } else {
    slot->state = PM_FABRIC_SLOT_ZOMBIE;
    slot->zombie_since_ns = pm__now_ns();
  }
  pthread_mutex_unlock(&f->slot_lock);
  pm_fabric_inflight_done(f);
}

/* ---- events from the progress thread ------------------------------------------ */

/* A zombie whose buffer became idle goes back to the free list. Returns
 * the condition of the slot's waiting caller, to be signalled once
 * slot_lock is released (signalled under the lock, the woken caller would
 * block at once on the lock the progress thread still holds: measured as
 * most of the mutex contention at 64 KiB qd 8), or NULL. A signal that
 * comes after the slot moved on only wakes its next caller to re-check. */
static pthread_cond_t *settle(pm_fabric *f, pm_fabric_slot *slot) {
  if (slot->state == PM_FABRIC_SLOT_ZOMBIE && buffer_idle(slot))
    make_free(f, slot);
  else if (slot->state == PM_FABRIC_SLOT_ACTIVE)
    return &slot->cond;
  return NULL;
}

static void wake(pthread_cond_t *cond) {
  if (cond)
    pthread_cond_signal(cond);
}

/* The trailer that landed with the page answers the GET (the server
 * sends no PageResponse for a page it wrote). */
static void take_trailer(pm_fabric *f, pm_fabric_slot *slot) {
  pm_fabric_trailer t;
  int rc = pm_fabric_trailer_open(&f->keys, slot->buf.data,
                                  (uint32_t)pm_fabric_page_room(&slot->buf),
                                  &t);
  if (rc == 0 && t.request_id != slot->id)
    rc = pm__errf(PM_EPROTO, "fabric: page trailer of another request");
  slot->got_response = true;
  slot->status = rc;
  slot->length = rc ? 0 : t.length;
  if (rc == 0)
    memcpy(slot->checksum, t.checksum, PM_FABRIC_CHECKSUM_LEN);
  snprintf(slot->detail, sizeof slot->detail, "%s", rc ? pm__errmsg() : "");
  if (rc)
    atomic_fetch_add(rc == PM_EAUTH ? &f->stats.auth_failures
                                    : &f->stats.decode_failures, 1);
}

void pm_fabric_slot_on_data(pm_fabric *f, uint64_t cq_data) {
  pthread_cond_t *waiter = NULL;
  pthread_mutex_lock(&f->slot_lock);
  pm_fabric_slot *slot = by_id(f, cq_data);
  if (slot && !slot->is_put) {
    slot->got_data = true;
    if (slot->state == PM_FABRIC_SLOT_ACTIVE && !slot->got_response)
      take_trailer(f, slot);
    waiter = settle(f, slot);
  } else {
    PM_LOG_RATELIMITED(PM_LOG_DEBUG, "fabric", 1000,
                       "write for unknown request %llx ignored",
                       (unsigned long long)cq_data);
  }
  pthread_mutex_unlock(&f->slot_lock);
  wake(waiter);
}

static void copy_response(pm_fabric_slot *slot, const Pm__PageResponse *r) {
  slot->got_response = true;
  slot->status = r->status;
  slot->length = r->length;
  if (r->checksum.len == PM_FABRIC_CHECKSUM_LEN)
    memcpy(slot->checksum, r->checksum.data, PM_FABRIC_CHECKSUM_LEN);
  else
    memset(slot->checksum, 0, PM_FABRIC_CHECKSUM_LEN);
  snprintf(slot->detail, sizeof slot->detail, "%s",
           r->detail ? r->detail : "");
}

void pm_fabric_slot_on_response(pm_fabric *f, const Pm__PageResponse *resp) {
  pthread_cond_t *waiter = NULL;
  pthread_mutex_lock(&f->slot_lock);
  pm_fabric_slot *slot = by_id(f, resp->request_id);
  if (slot && !slot->got_response) {
    copy_response(slot, resp);
    waiter = settle(f, slot);
  }
  pthread_mutex_unlock(&f->slot_lock);
  wake(waiter);
}

void pm_fabric_slot_on_send_error(pm_fabric *f, uint64_t request_id,
                                  int err) {
  pthread_mutex_lock(&f->slot_lock);
  pm_fabric_slot *slot = by_id(f, request_id);
  if (slot && slot->state == PM_FABRIC_SLOT_ACTIVE) {
    slot->failed = true;
    slot->error = err;
    snprintf(slot->detail, sizeof slot->detail, "%s", pm__errmsg());
    pthread_cond_signal(&slot->cond);
  }
  pthread_mutex_unlock(&f->slot_lock);
}

void pm_fabric_slot_on_write_done(pm_fabric *f, int32_t put_slot) {
  pthread_cond_t *waiter = NULL;
  pthread_mutex_lock(&f->slot_lock);
  if (put_slot >= 0 && (unsigned)put_slot < f->slot_count) {
    pm_fabric_slot *slot = &f->slots[put_slot];
    if (slot->local_writes)
      slot->local_writes--;
    waiter = settle(f, slot);
  }
  pthread_mutex_unlock(&f->slot_lock);
  wake(waiter);
}

int32_t pm_fabric_slot_find_put(pm_fabric *f, const char *peer_hex,
                                const uint8_t page_id[16]) {
  int32_t found = -1;
  pthread_mutex_lock(&f->slot_lock);
  for (unsigned i = 0; i < f->slot_count && found < 0; i++) {
    pm_fabric_slot *slot = &f->slots[i];
    if (slot->state == PM_FABRIC_SLOT_ACTIVE && slot->is_put &&
        slot->local_writes == 0 && strcasecmp(slot->peer, peer_hex) == 0 &&
        memcmp(slot->page_id, page_id, 16) == 0) {
      slot->local_writes++;
      found = (int32_t)i;
    }
  }
  pthread_mutex_unlock(&f->slot_lock);
  return found;
}

/* ---- quarantine and shutdown ------------------------------------------------- */

static void reclaim(pm_fabric *f, pm_fabric_slot *slot) {
  if (!slot->is_put && slot->buf.data) {
    int rc = pm_fabric_buf_rekey(f, &slot->buf);
    if (rc) {
      /* Keep the memory out of use for good rather than risk it. */
      PM_LOG(PM_LOG_WARN, "fabric", "slot %u abandoned: %s", slot->index,
             pm__errmsg());
      memset(&slot->buf, 0, sizeof slot->buf);
    }
  }
  PM_LOG(PM_LOG_DEBUG, "fabric", "slot %u reclaimed from quarantine",
         slot->index);
  make_free(f, slot);
}

void pm_fabric_slots_sweep(pm_fabric *f) {
  uint64_t now = pm__now_ns();
  pthread_mutex_lock(&f->slot_lock);
  for (unsigned i = 0; i < f->slot_count; i++) {
    pm_fabric_slot *slot = &f->slots[i];
    if (slot->state == PM_FABRIC_SLOT_ZOMBIE && slot->local_writes == 0 &&
        now - slot->zombie_since_ns >= PM_FABRIC_QUARANTINE_NS)
      reclaim(f, slot);
  }
  pthread_mutex_unlock(&f->slot_lock);
}

void pm_fabric_slots_shutdown(pm_fabric *f) {
  pthread_mutex_lock(&f->slot_lock);
  for (unsigned i = 0; i < f->slot_count; i++)
    pthread_cond_broadcast(&f->slots[i].cond);
  pthread_cond_broadcast(&f->slot_cond);
  pthread_mutex_unlock(&f->slot_lock);
}
