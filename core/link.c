/*
 * core/link.c - an attached process's side of the same-node protocol: a
 * small pool of unix-socket connections to the node peer (one request at a
 * time on each, so calling threads proceed in parallel), requests and
 * their replies, and the buffered one-way touches that tell the node which
 * pages this process read straight from their files. A connection that
 * fails marks the link broken: the caller then takes over or re-attaches.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "local_msg.h"
#include "node_int.h"

#define IDLE_MAX 32
#define HELLO_TIMEOUT_S 5
#define TOUCH_BATCH 256

struct pm_link {
  char *path;
  pthread_mutex_t mutex;
  int idle[IDLE_MAX];
  size_t idle_count;
  atomic_bool broken;
  atomic_uint_fast64_t next_id;
  pid_t node_pid;
  uint64_t last_report_ns; /* when counters were last sent */
  /* Touch buffer. */
  uint8_t touched[TOUCH_BATCH][16];
  size_t touched_count;
  Pm__LocalCounters pending; /* counters not yet reported */
  uint64_t latency[PM_HISTOGRAM_SLOTS]; /* read durations not yet reported */
  uint64_t latency_sum_ns;
  bool latency_pending;
};

/* Send and receive timeouts of fd (0: none). */
static void set_timeouts(int fd, int send_s, int recv_s) {
  struct timeval send = {.tv_sec = send_s}, recv = {.tv_sec = recv_s};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send, sizeof send);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &recv, sizeof recv);
}

static int connect_node(const char *path, int *out) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof addr.sun_path)
    return pm__errf(PM_ETOOBIG, "%s: socket path too long", path);
  snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return pm__errf(PM_ENOMEM, "socket: %s", strerror(errno));
  /* A node that stopped accepting (its backlog full) would block connect
   * forever: on a unix socket it waits at most the send timeout. */
  set_timeouts(fd, HELLO_TIMEOUT_S, 0);
  int rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
  int e = errno;
  set_timeouts(fd, 0, 1); /* replies are waited for in slices (wait_reply) */
  if (rc != 0) {
    close(fd);
    if (e == EAGAIN || e == ETIMEDOUT)
      return pm__errf(PM_ETIMEDOUT, "the node peer at %s did not accept a "
                      "connection within %d s", path, HELLO_TIMEOUT_S);
    if (e == EACCES || e == EPERM)
      return pm__errf(PM_EACCES, "%s: permission denied: the node peer of "
                      "this cache directory belongs to another user and "
                      "does not let uid %u attach (see its --node-group)",
                      path, (unsigned)getuid());
    return pm__errf(PM_EUNREACHABLE, "%s: no node peer (%s)", path,
                    strerror(e));
  }
  *out = fd;
  return 0;
}

static int checkout(pm_link *l, int *fd) {
  pthread_mutex_lock(&l->mutex);
  bool have = l->idle_count > 0;
  if (have)
    *fd = l->idle[--l->idle_count];
  pthread_mutex_unlock(&l->mutex);
  return have ? 0 : connect_node(l->path, fd);
}

static void checkin(pm_link *l, int fd) {
  pthread_mutex_lock(&l->mutex);
  if (l->idle_count < IDLE_MAX && !atomic_load(&l->broken)) {
    l->idle[l->idle_count++] = fd;
    fd = -1;
  }
  pthread_mutex_unlock(&l->mutex);
  if (fd >= 0)
    close(fd);
}

static int broken(pm_link *l, int fd) {
  atomic_store(&l->broken, true);
  if (fd >= 0)
    close(fd);
  return pm__errf(PM_EUNREACHABLE, "the node peer (pid %d) went away",
                  (int)l->node_pid);
}

/* The node's state as /proc shows it: 'R', 'S', 'T' (stopped), ...; 'X'
 * if it is gone; 0 if it cannot be told (another pid namespace). */
static char node_state(pid_t pid) {
  char path[64], text[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? 'X' : 0;
  ssize_t n = read(fd, text, sizeof text - 1);
  close(fd);
  if (n <= 0)
    return 0;
  text[n] = '\0';
  const char *paren = strrchr(text, ')'); /* "pid (comm) S ..." */
  return paren && paren[1] == ' ' ? paren[2] : 0;
}

/* Wait for the reply to a call. A read may wait on an origin for as long
 * as that takes, so there is no deadline while the node works; but a node
 * that is gone, or stopped (SIGSTOP, a debugger) for STOPPED_LIMIT_S, is
 * not waited for: the call hung for ever before. */
#define STOPPED_LIMIT_S 5
static ssize_t wait_reply(pm_link *l, int fd, uint8_t *buf, int *passed) {
  int stopped = 0;
  for (;;) {
    ssize_t n = pm__local_recv(fd, buf, passed);
    if (n != PM_ETIMEDOUT)
      return n;
    if (l->node_pid <= 0) /* the hello: its own deadline */
      return pm__errf(PM_ETIMEDOUT, "the node peer did not answer");
    char state = node_state(l->node_pid);
    if (state == 'X' || state == 'Z')
      return pm__errf(PM_EUNREACHABLE, "the node peer (pid %d) went away",
                      (int)l->node_pid);
    stopped = state == 'T' || state == 't' ? stopped + 1 : 0;
    if (stopped >= STOPPED_LIMIT_S)
      return pm__errf(PM_ETIMEDOUT, "the node peer (pid %d) is stopped "
                      "and did not answer", (int)l->node_pid);
  }
}

/* Send req (with pass_fd if >= 0) and wait for one reply on a connection
 * of the pool. *reply is freed by the caller with
 * pm__local_reply__free_unpacked. A passed fd is returned in *fd_out (or
 * closed if fd_out is NULL). *replied tells whether a reply came (then the
 * connection is in step, even if the call failed). */
static int call_on(pm_link *l, int fd, Pm__LocalRequest *req, int pass_fd,
                   Pm__LocalReply **reply, int *fd_out, bool *replied) {
  *reply = NULL;
  *replied = false;
  uint8_t *buf = malloc(PM_LOCAL_MSG_MAX);
  if (!buf)
    return pm__errf(PM_ENOMEM, "out of memory");
  int passed = -1, err = pm__local_send(fd, &req->base, pass_fd);
  ssize_t n = err ? err : wait_reply(l, fd, buf, &passed);
  if (n > 0) {
    *reply = pm__local_reply__unpack(NULL, (size_t)n, buf);
    if (!*reply || (*reply)->id != req->id)
      n = pm__errf(PM_EPROTO, "undecodable reply from the node peer");
    else
      *replied = true;
  }
  free(buf);
  if (n > 0 && passed == PM_LOCAL_FD_LOST) {
    passed = -1;
    n = pm__errf(PM_ENOMEM, "the node peer's answer came with a descriptor "
                 "this process could not take (too many open files)");
  }
  if (n > 0 && fd_out)
    *fd_out = passed;
  else if (passed >= 0)
    close(passed);
  return n > 0 ? 0 : (n == 0 ? PM_EUNREACHABLE : (int)n);
}

/* call with a descriptor passed along, telling whether the node answered
 * (*answered false: no reply came, the node may still be working on it). */
static int call_fd(pm_link *l, Pm__LocalRequest *req, int pass_fd,
                   Pm__LocalReply **reply, int *fd_out, bool *answered) {
  int fd;
  *reply = NULL;
  *answered = false;
  if (atomic_load(&l->broken))
    return broken(l, -1);
  int err = checkout(l, &fd);
  if (err)
    return err == PM_EACCES ? err : broken(l, -1);
  req->id = atomic_fetch_add(&l->next_id, 1);
  bool replied;
  err = call_on(l, fd, req, pass_fd, reply, fd_out, &replied);
  if (err && replied) { /* answered, but its descriptor was lost */
    pm__local_reply__free_unpacked(*reply, NULL);
    *reply = NULL;
    checkin(l, fd);
    *answered = true;
    return err;
  }
  if (err == PM_EUNREACHABLE || err == PM_EPROTO) {
    if (*reply)
      pm__local_reply__free_unpacked(*reply, NULL);
    *reply = NULL;
    return broken(l, fd);
  }
  if (err) {
    close(fd);
    return err;
  }
  checkin(l, fd);
  *answered = true;
  if ((*reply)->status < 0) {
    err = pm__errf((*reply)->status, "%s",
                   (*reply)->detail ? (*reply)->detail : "");
    if (fd_out && *fd_out >= 0)
      close(*fd_out);
    pm__local_reply__free_unpacked(*reply, NULL);
    *reply = NULL;
  }
  return err;
}

static int call(pm_link *l, Pm__LocalRequest *req, Pm__LocalReply **reply,
                int *fd_out) {
  bool answered;
  return call_fd(l, req, -1, reply, fd_out, &answered);
}

int pm__link_open(const char *path, pm_link **out, uint32_t *page_size) {
  pm_link *l = calloc(1, sizeof *l);
  if (!l || !(l->path = strdup(path))) {
    free(l);
    return pm__errf(PM_ENOMEM, "out of memory");
  }
  pthread_mutex_init(&l->mutex, NULL);
  pm__local_counters__init(&l->pending);
  Pm__LocalRequest req = PM__LOCAL_REQUEST__INIT;
  Pm__LocalHello hello = PM__LOCAL_HELLO__INIT;
  hello.pid = (uint32_t)getpid();
  hello.protocol = PM_LOCAL_PROTOCOL;
  req.body_case = PM__LOCAL_REQUEST__BODY_HELLO;
  req.hello = &hello;
  Pm__LocalReply *reply = NULL;
  int fd, err = connect_node(path, &fd);
  if (!err) {
    /* A node that accepts but does not answer (stopped, wedged) must not
     * hang the process: the hello has a deadline; later calls do not
     * (a read can wait on an origin for as long as that takes). */
    set_timeouts(fd, HELLO_TIMEOUT_S, HELLO_TIMEOUT_S);
    req.id = atomic_fetch_add(&l->next_id, 1);
    uint64_t start = pm__now_ns();
    bool replied;
    err = call_on(l, fd, &req, -1, &reply, NULL, &replied);
    if (err && pm__now_ns() - start >= HELLO_TIMEOUT_S * 1000000000ull -
                                           100000000ull) /* timer slack */
      err = pm__errf(PM_ETIMEDOUT, "the node peer at %s accepted but did "
                     "not answer within %d s", path, HELLO_TIMEOUT_S);
    /* Calls wait in slices of a second, looking at the node between */
    set_timeouts(fd, 0, 1);
    if (!err && reply->status < 0)
      err = pm__errf(reply->status, "%s", reply->detail ? reply->detail : "");
    if (!err && !pm__page_size_ok(reply->page_size))
      err = pm__errf(PM_EPROTO, "the node peer at %s says its page size is "
                     "%u bytes", path, reply->page_size);
    if (!err) {
      l->node_pid = (pid_t)reply->node_pid;
      *page_size = reply->page_size;
    }
    if (reply)
      pm__local_reply__free_unpacked(reply, NULL);
    if (err)
      close(fd);
    else
      checkin(l, fd);
  }
  if (err) {
    pm__link_close(l);
    return err;
  }
  *out = l;
  return 0;
}

void pm__link_close(pm_link *l) {
  if (!l)
    return;
  pm__link_flush(l);
  for (size_t i = 0; i < l->idle_count; i++)
    close(l->idle[i]);
  pthread_mutex_destroy(&l->mutex);
  free(l->path);
  free(l);
}

bool pm__link_broken(pm_link *l) {
  return atomic_load(&l->broken);
}

pid_t pm__link_node_pid(pm_link *l) {
  return l->node_pid;
}

int pm__link_stat(pm_link *l, const char *uri, pm_object_stat *out) {
  Pm__LocalRequest req = PM__LOCAL_REQUEST__INIT;
  Pm__LocalStat m = PM__LOCAL_STAT__INIT;
  m.uri = (char *)uri;
  req.body_case = PM__LOCAL_REQUEST__BODY_STAT;
  req.stat = &m;
  Pm__LocalReply *reply;
  int err = call(l, &req, &reply, NULL);
  if (err)
    return err;
  if (!reply->stat || !reply->stat->version ||
      strlen(reply->stat->version) >= PM_VERSION_MAX)
    err = pm__errf(PM_EPROTO, "%s: malformed stat reply", uri);
  else {
    *out = (pm_object_stat){.size = reply->stat->size,
                            .mtime_ns = reply->stat->mtime_ns};
    snprintf(out->version, sizeof out->version, "%s", reply->stat->version);
  }
  pm__local_reply__free_unpacked(reply, NULL);
  return err;
}

int pm__link_fetch(pm_link *l, const char *uri, const pm_object_stat *st,
                   uint64_t page_index, pm_link_fetch_io *io) {
  Pm__LocalRequest req = PM__LOCAL_REQUEST__INIT;
  Pm__LocalFetch m = PM__LOCAL_FETCH__INIT;
  Pm__LocalObjectStat ls = PM__LOCAL_OBJECT_STAT__INIT;
  ls.size = st->size;
  ls.mtime_ns = st->mtime_ns;
  ls.version = (char *)st->version;
  m.uri = (char *)uri;
  m.stat = &ls;
  m.page_index = page_index;
  bool landing = io->landing_fd >= 0 && io->slot >= 0;
  m.landing_slot = landing ? (uint32_t)io->slot + 1 : 0;
  m.landing_slot_size = landing ? io->slot_size : 0;
  req.body_case = PM__LOCAL_REQUEST__BODY_FETCH;
  req.fetch = &m;
  Pm__LocalReply *reply;
  io->fd = -1;
  io->landed = false;
  int err = call_fd(l, &req, landing ? io->landing_fd : -1, &reply,
                    &io->fd, &io->answered);
  if (err)
    return err;
  io->landed = landing && reply->landed;
  if (io->fd < 0 && !io->landed)
    err = pm__errf(PM_EPROTO, "%s: fetch reply without a descriptor", uri);
  if (io->landed && reply->length > io->slot_size)
    err = pm__errf(PM_EPROTO, "%s: node wrote %llu bytes into a slot",
                   uri, (unsigned long long)reply->length);
  if (reply->length > PM_PAGE_SIZE_MAX ||
      reply->data_offset > ((uint64_t)1 << 62))
    err = pm__errf(PM_EPROTO, "%s: node answered a page of %llu bytes at "
                   "%llu", uri, (unsigned long long)reply->length,
                   (unsigned long long)reply->data_offset);
  io->data_offset = reply->data_offset;
  io->length = (size_t)reply->length;
  pm__local_reply__free_unpacked(reply, NULL);
  return err;
}

int pm__link_list(pm_link *l, const char *uri, unsigned flags,
                  pm_ufs_list_cb cb, void *arg) {
  Pm__LocalRequest req = PM__LOCAL_REQUEST__INIT;
  Pm__LocalList m = PM__LOCAL_LIST__INIT;
  m.uri = (char *)uri;
  m.flags = flags;
  req.body_case = PM__LOCAL_REQUEST__BODY_LIST;
  req.list = &m;
  int fd;
  if (atomic_load(&l->broken) || checkout(l, &fd) != 0)
    return broken(l, -1);
  req.id = atomic_fetch_add(&l->next_id, 1);
  uint8_t *buf = malloc(PM_LOCAL_MSG_MAX);
  int err = buf ? pm__local_send(fd, &req.base, -1)
                : pm__errf(PM_ENOMEM, "out of memory");
  bool more = err == 0;
  while (more && !err) {
    int passed;
    ssize_t n = wait_reply(l, fd, buf, &passed);
    if (passed >= 0)
      close(passed);
    Pm__LocalReply *r = n > 0 ? pm__local_reply__unpack(NULL, (size_t)n, buf)
                            : NULL;
    if (!r) {
      free(buf);
      return broken(l, fd);
    }
    if (r->status < 0)
      err = pm__errf(r->status, "%s", r->detail ? r->detail : "");
    for (size_t i = 0; !err && i < r->n_entries; i++) {
      Pm__LocalListEntry *e = r->entries[i];
      pm_list_entry entry = {.uri = e->uri, .is_dir = e->is_dir,
                             .size = e->size, .mtime_ns = e->mtime_ns,
                             .version = e->is_dir ? NULL : e->version};
      err = cb(arg, &entry);
    }
    more = r->more && r->status >= 0;
    pm__local_reply__free_unpacked(r, NULL);
  }
  free(buf);
  if (more) /* the callback stopped early: the rest is still coming */
    close(fd);
  else
    checkin(l, fd);
  return err;
}

static int simple_call(pm_link *l, Pm__LocalRequest *req) {
  Pm__LocalReply *reply;
  int err = call(l, req, &reply, NULL);
  if (!err)
    pm__local_reply__free_unpacked(reply, NULL);
  return err;
}

int pm__link_invalidate(pm_link *l, const char *prefix) {
  Pm__LocalRequest req = PM__LOCAL_REQUEST__INIT;
  Pm__LocalInvalidate m = PM__LOCAL_INVALIDATE__INIT;
  m.prefix = (char *)prefix;
  req.body_case = PM__LOCAL_REQUEST__BODY_INVALIDATE;
  req.invalidate = &m;
  return simple_call(l, &req);
}

int pm__link_prefetch(pm_link *l, const char *uri, uint64_t offset,
                      uint64_t length) {
  Pm__LocalRequest req = PM__LOCAL_REQUEST__INIT;
  Pm__LocalPrefetch m = PM__LOCAL_PREFETCH__INIT;
  m.uri = (char *)uri;
  m.offset = offset;
  m.length = length;
  req.body_case = PM__LOCAL_REQUEST__BODY_PREFETCH;
  req.prefetch = &m;
  return simple_call(l, &req);
}

int pm__link_status(pm_link *l, char **json) {
  Pm__LocalRequest req = PM__LOCAL_REQUEST__INIT;
  Pm__LocalStatus m = PM__LOCAL_STATUS__INIT;
  req.body_case = PM__LOCAL_REQUEST__BODY_STATUS;
  req.status = &m;
  Pm__LocalReply *reply;
  int err = call(l, &req, &reply, NULL);
  if (err)
    return err;
  *json = strdup(reply->status_json ? reply->status_json : "{}");
  pm__local_reply__free_unpacked(reply, NULL);
  return *json ? 0 : pm__errf(PM_ENOMEM, "out of memory");
}

/* Send the buffered touches and counters; with l->mutex NOT held. */
void pm__link_flush(pm_link *l) {
  uint8_t ids[TOUCH_BATCH][16];
  ProtobufCBinaryData bins[TOUCH_BATCH];
  Pm__LocalCounters counters;
  uint64_t latency[PM_HISTOGRAM_SLOTS];
  pthread_mutex_lock(&l->mutex);
  size_t n = l->touched_count;
  memcpy(ids, l->touched, n * 16);
  counters = l->pending;
  memcpy(latency, l->latency, sizeof latency);
  bool timed = l->latency_pending;
  if (timed) {
    counters.n_read_latency = PM_HISTOGRAM_SLOTS;
    counters.read_latency = latency;
    counters.read_latency_sum_ns = l->latency_sum_ns;
  }
  l->touched_count = 0;
  pm__local_counters__init(&l->pending);
  memset(l->latency, 0, sizeof l->latency);
  l->latency_sum_ns = 0;
  l->latency_pending = false;
  pthread_mutex_unlock(&l->mutex);
  if (n == 0 && counters.reads == 0 && !timed)
    return;
  for (size_t i = 0; i < n; i++)
    bins[i] = (ProtobufCBinaryData){.len = 16, .data = ids[i]};
  Pm__LocalRequest req = PM__LOCAL_REQUEST__INIT;
  Pm__LocalTouch m = PM__LOCAL_TOUCH__INIT;
  m.n_page_ids = n;
  m.page_ids = bins;
  m.counters = &counters;
  req.body_case = PM__LOCAL_REQUEST__BODY_TOUCH;
  req.touch = &m;
  int fd;
  if (atomic_load(&l->broken) || checkout(l, &fd) != 0)
    return;
  if (pm__local_send(fd, &req.base, -1) != 0) {
    close(fd);
    return;
  }
  checkin(l, fd);
}

/* Counters reach the node at least this often while reads go on. */
#define REPORT_INTERVAL_NS 1000000000ull

void pm__link_note_read(pm_link *l, uint64_t bytes) {
  uint64_t now = pm__now_ns();
  pthread_mutex_lock(&l->mutex);
  l->pending.reads++;
  l->pending.bytes_served += bytes;
  bool due = now - l->last_report_ns > REPORT_INTERVAL_NS;
  if (due)
    l->last_report_ns = now;
  pthread_mutex_unlock(&l->mutex);
  if (due)
    pm__link_flush(l);
}

void pm__link_note_latency(pm_link *l, uint64_t ns) {
  pthread_mutex_lock(&l->mutex);
  l->latency[pm__histogram_slot(ns)]++;
  l->latency_sum_ns += ns;
  l->latency_pending = true;
  pthread_mutex_unlock(&l->mutex);
}

void pm__link_touch(pm_link *l, const pm_page_id *id) {
  pthread_mutex_lock(&l->mutex);
  if (l->touched_count < TOUCH_BATCH)
    memcpy(l->touched[l->touched_count++], id->bytes, 16);
  l->pending.hits++;
  bool full = l->touched_count == TOUCH_BATCH;
  pthread_mutex_unlock(&l->mutex);
  if (full)
    pm__link_flush(l);
}

/* A request whose reply carries a count. */
static ssize_t count_call(pm_link *l, Pm__LocalRequest *req) {
  Pm__LocalReply *reply;
  int err = call(l, req, &reply, NULL);
  if (err)
    return err;
  ssize_t count = (ssize_t)reply->count;
  pm__local_reply__free_unpacked(reply, NULL);
  return count;
}

ssize_t pm__link_evict(pm_link *l, const char *prefix) {
  Pm__LocalRequest req = PM__LOCAL_REQUEST__INIT;
  Pm__LocalEvict m = PM__LOCAL_EVICT__INIT;
  m.prefix = (char *)prefix;
  req.body_case = PM__LOCAL_REQUEST__BODY_EVICT;
  req.evict = &m;
  return count_call(l, &req);
}

int pm__link_set_capacity(pm_link *l, uint64_t disk, uint64_t ram) {
  Pm__LocalRequest req = PM__LOCAL_REQUEST__INIT;
  Pm__LocalCapacity m = PM__LOCAL_CAPACITY__INIT;
  m.disk = disk;
  m.ram = ram;
  req.body_case = PM__LOCAL_REQUEST__BODY_CAPACITY;
  req.capacity = &m;
  return simple_call(l, &req);
}

ssize_t pm__link_drain(pm_link *l) {
  Pm__LocalRequest req = PM__LOCAL_REQUEST__INIT;
  Pm__LocalDrain m = PM__LOCAL_DRAIN__INIT;
  req.body_case = PM__LOCAL_REQUEST__BODY_DRAIN;
  req.drain = &m;
  return count_call(l, &req);
}
