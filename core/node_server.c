/*
 * core/node_server.c - the node peer's side of the same-node protocol: a
 * unix SOCK_SEQPACKET socket in the cache directory (mode 0600: only the
 * cache's owner may attach; with pm_options.node_group, mode 0660 and that
 * group: its members too), an accept thread, and one thread per attached
 * connection answering its requests with the node's own read path. A fetch
 * is answered with a descriptor of the page file, or, for a page that is
 * not a file on disk, by writing it into the slot of the attached
 * process's landing area that came with the request (core/landing.c,
 * core/node_landing.c); without one, with a memfd holding the page. The
 * attached process maps what it gets.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "local_msg.h"
#include "node_int.h"

typedef struct conn {
  struct conn *next;
  pm_node_server *server;
  int fd;
  pid_t pid;
  uid_t uid; /* of the process at the other end (SO_PEERCRED) */
  pthread_t thread;
  bool done;
  pm_node_landing *landing; /* the landing area its fetches came with */
} conn;

struct pm_node_server {
  pm_peer *peer;
  int listen_fd;
  pthread_t accept_thread;
  pthread_mutex_t mutex;
  conn *conns;
  atomic_bool stopping;
  pm_node_landings landings;
};

/* ---- replies --------------------------------------------------------------- */

static int send_status(conn *c, uint64_t id, int status) {
  Pm__LocalReply reply = PM__LOCAL_REPLY__INIT;
  reply.id = id;
  reply.status = status;
  if (status < 0)
    reply.detail = (char *)pm__errmsg();
  return pm__local_send(c->fd, &reply.base, -1);
}

static void fill_stat(Pm__LocalObjectStat *out, const pm_object_stat *st) {
  out->size = st->size;
  out->mtime_ns = st->mtime_ns;
  out->version = (char *)st->version;
}

static int handle_stat(conn *c, uint64_t id, const Pm__LocalStat *m) {
  pm_object_stat st;
  int err = m && m->uri ? pm_stat(c->server->peer, m->uri, &st)
                        : pm__errf(PM_EPROTO, "stat without a uri");
  if (err)
    return send_status(c, id, err);
  Pm__LocalReply reply = PM__LOCAL_REPLY__INIT;
  Pm__LocalObjectStat ls = PM__LOCAL_OBJECT_STAT__INIT;
  fill_stat(&ls, &st);
  reply.id = id;
  reply.stat = &ls;
  return pm__local_send(c->fd, &reply.base, -1);
}

typedef struct memfd_fill {
  int fd;
  const char *uri;
  uint64_t page;
} memfd_fill;

static ssize_t write_memfd(const void *data, size_t length, void *arg) {
  const memfd_fill *m = arg;
  int rc = pm__write_all(m->fd, data, length);
  if (rc != 0)
    return pm__errf(rc, "%s: page %llu: cannot fill a memfd of %zu bytes: %s",
                    m->uri, (unsigned long long)m->page, length,
                    strerror(errno));
  return (ssize_t)length;
}

/* A page that was not cached: fetched once (through the read path, so
 * that it is kept as any page would be) and written into a sealed memfd
 * straight from where it landed, which goes out whether or not the store
 * kept the page. (write() into a memfd costs half of what copying through
 * a mapping of it does.) */
static int page_in_memfd(pm_peer *peer, const char *uri,
                         const pm_object_stat *st, uint64_t page,
                         int *fd_out, size_t *len_out) {
  int fd = memfd_create("pagemesh-page", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  memfd_fill fill = {fd, uri, page};
  ssize_t n = fd >= 0
                  ? pm__page_fetch_visit(peer, uri, st, page, write_memfd,
                                         &fill)
                  : pm__errf(PM_ENOMEM, "%s: cannot make a memfd: %s", uri,
                             strerror(errno));
  if (n < 0) {
    if (fd >= 0)
      close(fd);
    return (int)n;
  }
  fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
  *fd_out = fd;
  *len_out = (size_t)n;
  return 0;
}

static int check_fetch(pm_peer *peer, const Pm__LocalFetch *m, char *norm,
                       pm_object_stat *st) {
  if (!m || !m->uri || !m->stat || !m->stat->version ||
      strlen(m->stat->version) >= PM_VERSION_MAX)
    return pm__errf(PM_EPROTO, "malformed fetch request");
  int err = pm__uri_normalize(m->uri, norm, PM_URI_MAX);
  if (err)
    return err;
  *st = (pm_object_stat){.size = m->stat->size, .mtime_ns = m->stat->mtime_ns};
  snprintf(st->version, sizeof st->version, "%s", m->stat->version);
  if (pm__page_length(peer, st->size, m->page_index) == 0)
    return pm__errf(PM_ERANGE, "%s: page %llu is past the end", norm,
                    (unsigned long long)m->page_index);
  return 0;
}

/* Where the slot of the landing area passed with a fetch (fd) starts in
 * it (c->landing), or -1. */
static int64_t landing_slot(conn *c, const Pm__LocalFetch *m, int fd) {
  if (!m->landing_slot || fd < 0 ||
      m->landing_slot_size != c->server->peer->opts.page_size)
    return -1;
  pm_node_landings *set = &c->server->landings;
  if (c->landing && !pm__node_landing_is(c->landing, fd)) {
    pm__node_landing_put(set, c->landing);
    c->landing = NULL;
  }
  if (!c->landing && pm__node_landing_get(set, fd, &c->landing) != 0) {
    PM_LOG_RATELIMITED(PM_LOG_WARN, "node", 5000, "pid %d: %s", (int)c->pid,
                       pm__errmsg());
    return -1;
  }
  return pm__node_landing_offset(c->landing, m->landing_slot - 1,
                                 c->server->peer->opts.page_size);
}

typedef struct slot_fill {
  pm_node_landing *landing;
  uint64_t offset;
  size_t room;
} slot_fill;

static ssize_t write_slot(const void *data, size_t length, void *arg) {
  const slot_fill *f = arg;
  if (length > f->room)
    return pm__errf(PM_ETOOBIG, "a page of %zu bytes for a slot of %zu",
                    length, f->room);
  int rc = pm__node_landing_write(f->landing, f->offset, data, length);
  return rc ? rc : (ssize_t)length;
}

/* Write a page that is not on disk into the slot: from RAM, or fetched. */
static ssize_t land_page(pm_peer *peer, const char *uri,
                         const pm_object_stat *st, uint64_t page,
                         pm_node_landing *landing, uint64_t offset) {
  slot_fill fill = {landing, offset, peer->opts.page_size};
  /* (a hit here is counted by the store, as any other) */
  return pm__page_fetch_visit(peer, uri, st, page, write_slot, &fill);
}

static int send_landed(conn *c, uint64_t id, size_t length) {
  Pm__LocalReply reply = PM__LOCAL_REPLY__INIT;
  reply.id = id;
  reply.length = length;
  reply.landed = true;
  return pm__local_send(c->fd, &reply.base, -1);
}

static int handle_fetch(conn *c, uint64_t id, const Pm__LocalFetch *m,
                        int passed_fd) {
  pm_peer *peer = c->server->peer;
  char norm[PM_URI_MAX];
  pm_object_stat st;
  int err = check_fetch(peer, m, norm, &st);
  if (err)
    return send_status(c, id, err);
  /* The process read its stat from the node (a listing, a stat): the
   * node keeps it on disk now that a read uses it. */
  pm__meta_keep(peer->meta, norm, &st);
  pm_page_id pid = pm__page_id(norm, st.version, m->page_index,
                               peer->opts.page_size);
  /* A page this process's store already held is a hit for the node: its
   * page file goes out; a page in RAM or fetched now is written into the
   * landing slot that came with the request, or else a memfd copy of it
   * goes out. */
  int64_t slot = landing_slot(c, m, passed_fd);
  bool held = peer->store && pm__store_contains(peer->store, &pid);
  int fd = -1;
  uint64_t offset = 0;
  size_t length = 0;
  pm_checksum sum;
  if (slot >= 0 && !(held && pm__store_open_disk(peer->store, &pid, &fd,
                                                 &offset, &length, &sum,
                                                 false) == 0)) {
    ssize_t n = land_page(peer, norm, &st, m->page_index, c->landing,
                          (uint64_t)slot);
    if (n < 0)
      return send_status(c, id, (int)n);
    pm__readahead_note(peer, norm, &st, m->page_index, m->page_index);
    return send_landed(c, id, (size_t)n);
  }
  /* a page on disk is a hit the store counted when it opened it */
  if (!(fd >= 0 || (held && pm__store_open_page(peer->store, &pid, &fd,
                                                &offset, &length) == 0)))
    err = page_in_memfd(peer, norm, &st, m->page_index, &fd, &length);
  if (err)
    return send_status(c, id, err);
  pm__readahead_note(peer, norm, &st, m->page_index, m->page_index);
  Pm__LocalReply reply = PM__LOCAL_REPLY__INIT;
  reply.id = id;
  reply.data_offset = offset;
  reply.length = length;
  err = pm__local_send(c->fd, &reply.base, fd);
  close(fd);
  return err;
}

/* Entries go out in packets of up to ~192 KiB; the last has more=false. */
static int send_list_chunks(conn *c, uint64_t id, pm_list_entry *e,
                            size_t count) {
  size_t i = 0;
  do {
    size_t start = i, bytes = 0;
    while (i < count && bytes < (192u << 10)) {
      bytes += strlen(e[i].uri) + (e[i].version ? strlen(e[i].version) : 0) +
               48;
      i++;
    }
    size_t n = i - start;
    Pm__LocalListEntry *items = calloc(n ? n : 1, sizeof *items);
    Pm__LocalListEntry **ptrs = calloc(n ? n : 1, sizeof *ptrs);
    if (!items || !ptrs) {
      free(items);
      free(ptrs);
      return send_status(c, id, pm__errf(PM_ENOMEM, "listing: no memory"));
    }
    for (size_t k = 0; k < n; k++) {
      pm__local_list_entry__init(&items[k]);
      items[k].uri = e[start + k].uri;
      items[k].is_dir = e[start + k].is_dir;
      items[k].size = e[start + k].size;
      items[k].mtime_ns = e[start + k].mtime_ns;
      items[k].version = e[start + k].version ? e[start + k].version : "";
      ptrs[k] = &items[k];
    }
    Pm__LocalReply reply = PM__LOCAL_REPLY__INIT;
    reply.id = id;
    reply.n_entries = n;
    reply.entries = ptrs;
    reply.more = i < count;
    int err = pm__local_send(c->fd, &reply.base, -1);
    free(items);
    free(ptrs);
    if (err)
      return err;
  } while (i < count);
  return 0;
}

static int handle_list(conn *c, uint64_t id, const Pm__LocalList *m) {
  pm_list_entry *entries = NULL;
  size_t count = 0;
  int err = m && m->uri ? pm_list(c->server->peer, m->uri, m->flags,
                                  &entries, &count)
                        : pm__errf(PM_EPROTO, "list without a uri");
  if (err)
    return send_status(c, id, err);
  err = send_list_chunks(c, id, entries, count);
  pm_list_free(entries, count);
  return err;
}

static void handle_touch(conn *c, const Pm__LocalTouch *m) {
  pm_peer *peer = c->server->peer;
  for (size_t i = 0; m && peer->store && i < m->n_page_ids; i++) {
    if (m->page_ids[i].len != 16)
      continue;
    pm_page_id id;
    memcpy(id.bytes, m->page_ids[i].data, 16);
    pm__store_touch(peer->store, &id);
  }
  if (m && m->counters) {
    pm_counters *k = &peer->counters;
    atomic_fetch_add(&k->reads, m->counters->reads);
    atomic_fetch_add(&k->bytes_served, m->counters->bytes_served);
    atomic_fetch_add(&k->attached_hits, m->counters->hits);
    pm__histogram_add(&k->read_latency, m->counters->read_latency,
                      m->counters->n_read_latency,
                      m->counters->read_latency_sum_ns);
  }
}

static int handle_status(conn *c, uint64_t id) {
  char *json = NULL;
  int err = pm__node_status_json(c->server->peer, &json);
  if (err)
    return send_status(c, id, err);
  Pm__LocalReply reply = PM__LOCAL_REPLY__INIT;
  reply.id = id;
  reply.status_json = json;
  err = pm__local_send(c->fd, &reply.base, -1);
  free(json);
  return err;
}

static int handle_hello(conn *c, uint64_t id, const Pm__LocalHello *m) {
  if (!m || m->protocol != PM_LOCAL_PROTOCOL)
    return send_status(c, id, pm__errf(PM_EPROTO, "protocol %u is not %u",
                                       m ? m->protocol : 0,
                                       PM_LOCAL_PROTOCOL));
  Pm__LocalReply reply = PM__LOCAL_REPLY__INIT;
  reply.id = id;
  reply.page_size = c->server->peer->opts.page_size;
  reply.node_pid = (uint32_t)getpid();
  return pm__local_send(c->fd, &reply.base, -1);
}

static int send_count(conn *c, uint64_t id, ssize_t result) {
  if (result < 0)
    return send_status(c, id, (int)result);
  Pm__LocalReply reply = PM__LOCAL_REPLY__INIT;
  reply.id = id;
  reply.count = (uint64_t)result;
  return pm__local_send(c->fd, &reply.base, -1);
}

/* Operating the node (evict, capacity, drain) is for its own user and
 * root; the members of its node_group read through it (and invalidate
 * what they wrote), and must not empty, shrink or drain a node others
 * share. Returns 0 or PM_EACCES, said. */
static int operator_only(const conn *c, const char *what) {
  if (c->uid == geteuid() || c->uid == 0)
    return 0;
  return pm__errf(PM_EACCES, "%s: only uid %u (the node peer's) or root may "
                  "operate this node peer; uid %u reads through it", what,
                  (unsigned)geteuid(), (unsigned)c->uid);
}

/* fd: a descriptor passed with the request (a fetch's landing area), or
 * -1; the caller closes it. */
static int dispatch(conn *c, const Pm__LocalRequest *req, int fd) {
  pm_peer *peer = c->server->peer;
  pm__errmsg_clear();
  int denied;
  switch (req->body_case) {
  case PM__LOCAL_REQUEST__BODY_HELLO:
    return handle_hello(c, req->id, req->hello);
  case PM__LOCAL_REQUEST__BODY_STAT:
    return handle_stat(c, req->id, req->stat);
  case PM__LOCAL_REQUEST__BODY_FETCH:
    return handle_fetch(c, req->id, req->fetch, fd);
  case PM__LOCAL_REQUEST__BODY_LIST:
    return handle_list(c, req->id, req->list);
  case PM__LOCAL_REQUEST__BODY_INVALIDATE:
    return send_status(c, req->id,
                       req->invalidate && req->invalidate->prefix
                           ? pm_invalidate(peer, req->invalidate->prefix)
                           : pm__errf(PM_EPROTO, "invalidate: no prefix"));
  case PM__LOCAL_REQUEST__BODY_STATUS:
    return handle_status(c, req->id);
  case PM__LOCAL_REQUEST__BODY_TOUCH:
    handle_touch(c, req->touch);
    return 0;
  case PM__LOCAL_REQUEST__BODY_PREFETCH:
    return send_status(c, req->id,
                       req->prefetch && req->prefetch->uri
                           ? pm_prefetch(peer, req->prefetch->uri,
                                         req->prefetch->offset,
                                         req->prefetch->length)
                           : pm__errf(PM_EPROTO, "prefetch: no uri"));
  case PM__LOCAL_REQUEST__BODY_EVICT:
    if ((denied = operator_only(c, "evict")) != 0)
      return send_count(c, req->id, denied);
    return send_count(c, req->id,
                      req->evict && req->evict->prefix
                          ? pm_evict(peer, req->evict->prefix)
                          : pm__errf(PM_EPROTO, "evict: no prefix"));
  case PM__LOCAL_REQUEST__BODY_CAPACITY:
    if ((denied = operator_only(c, "set capacity")) != 0)
      return send_status(c, req->id, denied);
    return send_status(c, req->id,
                       req->capacity
                           ? pm_set_capacity(peer, req->capacity->disk,
                                             req->capacity->ram)
                           : pm__errf(PM_EPROTO, "capacity: no values"));
  case PM__LOCAL_REQUEST__BODY_DRAIN:
    if ((denied = operator_only(c, "drain")) != 0)
      return send_count(c, req->id, denied);
    return send_count(c, req->id, pm_drain(peer));
  default:
    return send_status(c, req->id,
                       pm__errf(PM_EPROTO, "unknown request %d",
                                (int)req->body_case));
  }
}

static void *conn_main(void *arg) {
  conn *c = arg;
  uint8_t *buf = malloc(PM_LOCAL_MSG_MAX);
  while (buf && !atomic_load(&c->server->stopping)) {
    int fd;
    ssize_t n = pm__local_recv(c->fd, buf, &fd);
    if (n <= 0) {
      if (fd >= 0)
        close(fd);
      break;
    }
    Pm__LocalRequest *req = pm__local_request__unpack(NULL, (size_t)n, buf);
    if (!req) {
      PM_LOG_RATELIMITED(PM_LOG_WARN, "node", 5000,
                         "pid %d sent an undecodable request; dropping it",
                         (int)c->pid);
      if (fd >= 0)
        close(fd);
      break;
    }
    int err = dispatch(c, req, fd);
    if (fd >= 0)
      close(fd);
    pm__local_request__free_unpacked(req, NULL);
    if (err == PM_EUNREACHABLE)
      break;
  }
  free(buf);
  pm__node_landing_put(&c->server->landings, c->landing);
  c->landing = NULL;
  shutdown(c->fd, SHUT_RDWR);
  pthread_mutex_lock(&c->server->mutex);
  c->done = true;
  pthread_mutex_unlock(&c->server->mutex);
  return NULL;
}

/* Join and free connections whose threads have ended; with mutex held. */
static void reap_locked(pm_node_server *s) {
  for (conn **p = &s->conns; *p;) {
    conn *c = *p;
    if (!c->done) {
      p = &c->next;
      continue;
    }
    *p = c->next;
    pthread_join(c->thread, NULL);
    close(c->fd);
    free(c);
  }
}

static struct ucred peer_cred(int fd) {
  struct ucred cred = {.pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
    cred = (struct ucred){.pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1};
  return cred;
}

static void *accept_main(void *arg) {
  pm_node_server *s = arg;
  while (!atomic_load(&s->stopping)) {
    int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
      int e = errno;
      if (e == EINTR || e == ECONNABORTED)
        continue;
      if (atomic_load(&s->stopping))
        break;
      /* Out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM):
       * a passing state, not the end of the node. The loop stopped here
       * before, and the node never took a connection again. */
      PM_LOG_RATELIMITED(PM_LOG_ERROR, "node", 10000,
                         "accept: %s (trying again)", strerror(e));
      if (e == EBADF || e == EINVAL || e == ENOTSOCK)
        break; /* the socket itself is gone */
      usleep(50 * 1000);
      continue;
    }
    conn *c = calloc(1, sizeof *c);
    if (!c) {
      close(fd);
      continue;
    }
    struct ucred cred = peer_cred(fd);
    *c = (conn){.server = s, .fd = fd, .pid = cred.pid, .uid = cred.uid};
    pthread_mutex_lock(&s->mutex);
    reap_locked(s);
    if (pthread_create(&c->thread, NULL, conn_main, c) != 0) {
      close(fd);
      free(c);
    } else {
      c->next = s->conns;
      s->conns = c;
    }
    pthread_mutex_unlock(&s->mutex);
  }
  return NULL;
}

/* The gid `group` names: a group name, else a number. */
static int resolve_group(const char *group, gid_t *out) {
  struct group gr, *found = NULL;
  char *buf = NULL;
  int rc = ERANGE;
  for (size_t size = 4096; rc == ERANGE && size <= (16u << 20); size *= 4) {
    char *bigger = realloc(buf, size); /* a group of many members */
    if (!bigger)
      break;
    buf = bigger;
    rc = getgrnam_r(group, &gr, buf, size, &found);
  }
  if (rc == 0 && found)
    *out = found->gr_gid;
  free(buf);
  if (rc == 0 && found)
    return 0;
  char *end;
  errno = 0;
  unsigned long gid = strtoul(group, &end, 10);
  if (*group && !*end && !errno && gid < (unsigned long)(gid_t)-1) {
    *out = (gid_t)gid;
    return 0;
  }
  return pm__errf(PM_EINVAL, "node group '%s': no such group", group);
}

/* Let `group` attach: the socket becomes the group's, mode 0660. */
static int share_with_group(const char *path, const char *group) {
  gid_t gid = 0;
  int err = resolve_group(group, &gid);
  if (err)
    return err;
  if (chown(path, (uid_t)-1, gid) != 0)
    return pm__errf(PM_EINVAL, "%s: cannot give the socket to group %s "
                    "(gid %u): %s", path, group, (unsigned)gid,
                    strerror(errno));
  if (chmod(path, 0660) != 0)
    return pm__errf(pm__err_from_errno(errno), "%s: chmod: %s", path,
                    strerror(errno));
  return 0;
}

int pm__node_server_start(pm_peer *peer, const char *path,
                          pm_node_server **out) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof addr.sun_path)
    return pm__errf(PM_ETOOBIG, "%s: socket path too long", path);
  snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
  pm_node_server *s = calloc(1, sizeof *s);
  if (!s)
    return pm__errf(PM_ENOMEM, "out of memory");
  s->peer = peer;
  pthread_mutex_init(&s->mutex, NULL);
  pm__node_landings_init(&s->landings);
  s->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  unlink(path); /* a stale socket of a dead node: we hold the lock */
  mode_t old = umask(0077);
  int err = 0;
  if (s->listen_fd < 0 ||
      bind(s->listen_fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
      listen(s->listen_fd, 128) != 0)
    err = pm__errf(pm__err_from_errno(errno), "%s: cannot listen: %s", path,
                   strerror(errno));
  umask(old);
  if (!err && peer->opts.node_group && *peer->opts.node_group)
    err = share_with_group(path, peer->opts.node_group);
  if (!err)
    pm__close_in_child(&s->listen_fd); /* nobody would answer a child's */
  if (!err && pthread_create(&s->accept_thread, NULL, accept_main, s) != 0)
    err = pm__errf(PM_ENOMEM, "cannot start the node's accept thread");
  if (err) {
    pm__close_in_child_forget(&s->listen_fd);
    if (s->listen_fd >= 0)
      close(s->listen_fd);
    pthread_mutex_destroy(&s->mutex);
    pm__node_landings_destroy(&s->landings);
    free(s);
    return err;
  }
  *out = s;
  return 0;
}

void pm__node_server_stop(pm_node_server *s) {
  if (!s)
    return;
  atomic_store(&s->stopping, true);
  shutdown(s->listen_fd, SHUT_RDWR);
  pthread_join(s->accept_thread, NULL);
  pm__close_in_child_forget(&s->listen_fd);
  close(s->listen_fd);
  pthread_mutex_lock(&s->mutex);
  for (conn *c = s->conns; c; c = c->next)
    shutdown(c->fd, SHUT_RDWR);
  pthread_mutex_unlock(&s->mutex);
  for (;;) {
    pthread_mutex_lock(&s->mutex);
    conn *c = s->conns;
    if (c)
      s->conns = c->next;
    pthread_mutex_unlock(&s->mutex);
    if (!c)
      break;
    pthread_join(c->thread, NULL);
    close(c->fd);
    free(c);
  }
  pthread_mutex_destroy(&s->mutex);
  pm__node_landings_destroy(&s->landings);
  free(s);
}

size_t pm__node_server_clients(pm_node_server *s, pid_t *pids, size_t max) {
  size_t n = 0;
  if (!s)
    return 0;
  pthread_mutex_lock(&s->mutex);
  for (conn *c = s->conns; c; c = c->next) {
    bool seen = false;
    for (size_t i = 0; i < n; i++)
      seen |= pids[i] == c->pid;
    if (!c->done && !seen && n < max)
      pids[n++] = c->pid;
  }
  pthread_mutex_unlock(&s->mutex);
  return n;
}
