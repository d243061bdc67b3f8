/*
 * core/role.c - one peer per cache directory. The node peer holds an
 * exclusive flock on <cache_dir>/node.lock for as long as it lives (the
 * kernel drops it when the process dies, however it dies) and listens on
 * <cache_dir>/node.sock. A process that cannot take the lock attaches to
 * the socket. When an attached process finds its node peer gone, it takes
 * the lock itself (becoming the node peer, with the page files already on
 * disk) or, if another process was quicker, attaches to the new one. A
 * process that cannot write the cache directory cannot take over: it
 * reads the origins directly, uncached, and tries to attach again once a
 * second (pm__role_reattach) until a node peer is back.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mesh.h"
#include "node_int.h"

#define ESTABLISH_TIMEOUT_NS (10ull * 1000000000ull)
#define RETRY_SLEEP_US 5000
/* A process reading the origins directly tries to attach again this often. */
#define REATTACH_INTERVAL_NS (1000000000ull)
/* Virtual address space an attached process may keep mapped. */
#define MAPCACHE_CAPACITY (8ull << 30)
/* An attached process's landing area: $PAGEMESH_LANDING bytes (default
 * 64M; 0: none, every page comes as a descriptor), in 1 to 64 slots of the
 * node's page size. */
#define LANDING_BYTES (64ull << 20)
#define LANDING_SLOTS_MAX 64u

/* Slots of the landing area for this page size; 0: none. */
static unsigned landing_slots(uint32_t page_size) {
  uint64_t bytes = LANDING_BYTES;
  const char *env = getenv("PAGEMESH_LANDING");
  if (env && *env && pm__parse_size(env, &bytes) != 0) {
    PM_LOG(PM_LOG_WARN, "attach", "PAGEMESH_LANDING=%s is not a size; "
           "using 64M", env);
    bytes = LANDING_BYTES;
  }
  if (bytes == 0 || page_size == 0)
    return 0;
  return (unsigned)PM_MAX(PM_MIN(bytes / page_size,
                                 (uint64_t)LANDING_SLOTS_MAX), (uint64_t)1);
}

static void dir_path(const pm_peer *peer, const char *name, char *out,
                     size_t size) {
  snprintf(out, size, "%s/%s", peer->cache_dir, name);
}

static int permission_error(const pm_peer *peer, const char *path) {
  struct stat st;
  unsigned owner = stat(peer->cache_dir, &st) == 0 ? st.st_uid : 0;
  return pm__errf(PM_EACCES, "%s: permission denied: the cache directory %s "
                  "belongs to uid %u and this process runs as uid %u",
                  path, peer->cache_dir, owner, (unsigned)getuid());
}

/* 1: we hold the lock; 0: another process does; < 0: an error. */
static int try_lock(pm_peer *peer) {
  char path[PM_URI_MAX];
  dir_path(peer, "node.lock", path, sizeof path);
  if (peer->lock_fd < 0) {
    peer->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (peer->lock_fd < 0)
      return errno == EACCES || errno == EPERM || errno == EROFS
                 ? permission_error(peer, path)
                 : pm__errf(pm__err_from_errno(errno), "%s: %s", path,
                            strerror(errno));
    pm__close_in_child(&peer->lock_fd); /* a child would keep the lock */
  }
  if (flock(peer->lock_fd, LOCK_EX | LOCK_NB) == 0)
    return 1;
  if (errno == EWOULDBLOCK || errno == EINTR)
    return 0;
  return pm__errf(PM_EIO, "%s: flock: %s", path, strerror(errno));
}

static void write_pid_file(pm_peer *peer) {
  char path[PM_URI_MAX], tmp[PM_URI_MAX + 16], text[32];
  dir_path(peer, "node.pid", path, sizeof path);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int n = snprintf(text, sizeof text, "%d\n", (int)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return;
  bool ok = pm__write_all(fd, text, (size_t)n) == 0;
  close(fd);
  if (!ok || rename(tmp, path) != 0)
    unlink(tmp);
}

static int become_node(pm_peer *peer) {
  char sock[PM_URI_MAX];
  dir_path(peer, "node.sock", sock, sizeof sock);
  int err = pm__engine_open(peer);
  if (!err)
    err = pm__mesh_start(peer, &peer->mesh);
  if (!err)
    err = pm__node_server_start(peer, sock, &peer->server);
  if (err) {
    char detail[PM_ERRMSG_MAX];
    snprintf(detail, sizeof detail, "%s", pm__errmsg());
    pm__mesh_stop(peer->mesh);
    peer->mesh = NULL;
    pm__engine_close(peer);
    pm__errmsg_set(detail);
    return err;
  }
  write_pid_file(peer);
  peer->role = PM_ROLE_NODE;
  return 0;
}

static int become_attached(pm_peer *peer, pm_link *link, uint32_t page_size) {
  int err = 0;
  if (!peer->meta)
    err = pm__meta_open(NULL, peer->opts.meta_ttl_ms, &peer->meta);
  if (!err && !peer->maps)
    err = pm__mapcache_open(MAPCACHE_CAPACITY, &peer->maps);
  if (err) {
    pm__link_close(link);
    return err;
  }
  /* Page ids depend on the page size: use the node's. */
  peer->opts.page_size = page_size;
  /* Pages land in slots of that size (an area of another size, from a
   * node before, is freed once its pages are). Without one, every page
   * comes as a descriptor. */
  if (peer->landing && pm__landing_slot_size(peer->landing) != page_size) {
    pm__landing_close(peer->landing);
    peer->landing = NULL;
  }
  unsigned slots = peer->landing ? 0 : landing_slots(page_size);
  if (slots && pm__landing_open(page_size, slots, &peer->landing) != 0)
    PM_LOG(PM_LOG_WARN, "attach", "no landing area: %s", pm__errmsg());
  peer->link = link;
  peer->role = PM_ROLE_ATTACHED;
  return 0;
}

/* Connect to the node peer's socket and say hello. */
static int open_node_link(pm_peer *peer, pm_link **link,
                          uint32_t *page_size) {
  char sock[PM_URI_MAX];
  dir_path(peer, "node.sock", sock, sizeof sock);
  return pm__link_open(sock, link, page_size);
}

static int try_attach(pm_peer *peer) {
  pm_link *link;
  uint32_t page_size;
  int err = open_node_link(peer, &link, &page_size);
  return err ? err : become_attached(peer, link, page_size);
}

int pm__role_establish(pm_peer *peer) {
  bool attach_only = (peer->opts.flags & PM_OPEN_ATTACH_ONLY) != 0;
  uint64_t deadline = pm__now_ns() + ESTABLISH_TIMEOUT_NS;
  for (;;) {
    int locked = attach_only ? 0 : try_lock(peer);
    if (locked < 0)
      return locked;
    if (locked == 1) {
      int err = become_node(peer);
      if (err)
        flock(peer->lock_fd, LOCK_UN);
      return err;
    }
    if (peer->opts.flags & PM_OPEN_NODE_ONLY)
      return pm__errf(PM_EBUSY, "another process is the node peer of %s "
                      "(see %s/node.pid)", peer->cache_dir, peer->cache_dir);
    int err = try_attach(peer);
    if (err != PM_EUNREACHABLE)
      return err; /* attached (0), or a permission or protocol error */
    if (attach_only && peer->read_only_dir) {
      char why[PM_ERRMSG_MAX];
      snprintf(why, sizeof why, "%s", pm__errmsg());
      return pm__errf(PM_EACCES, "cache directory %s is not writable by "
                      "uid %u and no node peer runs there (%s)",
                      peer->cache_dir, (unsigned)getuid(), why);
    }
    if (attach_only)
      return pm__errf(PM_EUNREACHABLE, "no node peer is running on %s",
                      peer->cache_dir);
    /* The node is starting, or has just died: try again shortly. */
    if (pm__now_ns() > deadline)
      return err;
    usleep(RETRY_SLEEP_US);
  }
}

/* No node peer, and this process may not be one (it cannot write the
 * cache directory): read the origins directly, uncached, rather than fail
 * every read until a node peer is back (role_lock held for writing). */
static int become_direct(pm_peer *peer) {
  int err = pm__engine_open_direct(peer);
  if (err) {
    pm__engine_close(peer);
    return err;
  }
  peer->role = PM_ROLE_STANDALONE;
  atomic_store(&peer->next_attach_ns, pm__now_ns() + REATTACH_INTERVAL_NS);
  atomic_store(&peer->direct, true);
  return 0;
}

void pm__role_reattach(pm_peer *peer) {
  /* One thread a round: the one that moves the time of the next try on.
   * The others go on reading directly instead of queueing for the write
   * lock (which waits for every read in flight). */
  uint64_t now = pm__now_ns();
  uint64_t due = atomic_load(&peer->next_attach_ns);
  if (!atomic_load(&peer->direct) || now < due ||
      !atomic_compare_exchange_strong(&peer->next_attach_ns, &due,
                                      UINT64_MAX))
    return; /* UINT64_MAX: while this try runs (up to the hello's timeout),
               nobody else starts one */
  /* Connect and say hello without the lock: a node that does not answer
   * (stopped, overloaded) costs this thread its hello timeout, not every
   * caller of the process. */
  pm_link *link;
  uint32_t page_size;
  int err = open_node_link(peer, &link, &page_size);
  atomic_store(&peer->next_attach_ns, pm__now_ns() + REATTACH_INTERVAL_NS);
  if (err)
    return;
  pthread_rwlock_wrlock(&peer->role_lock);
  if (!atomic_load(&peer->direct)) {
    pm__link_close(link); /* another way back was found meanwhile */
  } else if (become_attached(peer, link, page_size) == 0) {
    pm__engine_close(peer); /* the origins: the node reads them now */
    atomic_store(&peer->direct, false);
    PM_LOG(PM_LOG_WARN, "node", "node peer %d is back: attached to it "
           "again, pages are cached", (int)pm__link_node_pid(peer->link));
  }
  pthread_rwlock_unlock(&peer->role_lock);
}

void pm__role_takeover(pm_peer *peer, pm_link *broken) {
  pthread_rwlock_wrlock(&peer->role_lock);
  /* broken: still the link in use (else another thread took over).
   * NULL: still no role (else another thread established one: a second
   * establishment would start a second node or engine over the first). */
  if (broken ? peer->link == broken : peer->role == 0) {
    pid_t old = broken ? pm__link_node_pid(broken) : 0;
    pm__link_close(broken);
    peer->link = NULL;
    peer->role = 0;
    uint64_t start = pm__now_ns();
    int err = pm__role_establish(peer);
    if (err && peer->read_only_dir && become_direct(peer) == 0)
      PM_LOG(PM_LOG_WARN, "node", "node peer %d went away and this process "
             "cannot take over (the cache directory is not writable by uid "
             "%u): reading the origins directly, uncached, until a node "
             "peer is back", (int)old, (unsigned)getuid());
    else if (err)
      PM_LOG(PM_LOG_ERROR, "node", "node peer %d went away and none could "
             "take over: %s", (int)old, pm__errmsg());
    else
      PM_LOG(PM_LOG_WARN, "node", "node peer %d went away; %s in %.0f ms",
             (int)old, peer->role == PM_ROLE_NODE
                           ? "this process took over"
                           : "attached to the new node peer",
             (double)(pm__now_ns() - start) / 1e6);
  }
  pthread_rwlock_unlock(&peer->role_lock);
}

void pm__role_release(pm_peer *peer) {
  if (peer->link)
    pm__link_close(peer->link);
  peer->link = NULL;
  pm__node_server_stop(peer->server);
  peer->server = NULL;
  if (peer->lock_fd >= 0) {
    if (peer->role == PM_ROLE_NODE) {
      char path[PM_URI_MAX];
      dir_path(peer, "node.pid", path, sizeof path);
      unlink(path);
    }
    pm__close_in_child_forget(&peer->lock_fd);
    close(peer->lock_fd); /* releases the lock */
  }
  peer->lock_fd = -1;
}
