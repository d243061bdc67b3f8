/* Tests for one peer per node (core/role.c, node_server.c, link.c,
 * mapcache.c, attached.c, api.c): within one process, a second peer on the
 * same cache directory attaches to the first (flock locks belong to open
 * file descriptions, so they conflict inside one process too), reads
 * through it and through page-file mappings, and takes over when the node
 * peer closes. Real processes are tested in tests/integration. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/node_int.h"
#include "node_fixture.h"

TestSuite(attach, .timeout = 60);

static json_t *status_of(pm_peer *p) {
  char *text;
  cr_assert_eq(pm_peer_status(p, &text), 0, "%s", pm_peer_errmsg(p));
  json_t *j = json_loads(text, 0, NULL);
  pm_free(text);
  cr_assert_not_null(j);
  return j;
}

Test(attach, second_peer_attaches_and_shares_the_cache, .init = setup) {
  const char *path = make_object("a.bin", 3 * PS + 77);
  pm_peer *node = open_peer(0);
  pm_peer *client = open_peer(0);
  json_t *st = status_of(client);
  cr_assert_str_eq(json_string_value(json_object_get(st, "role")),
                   "attached");
  cr_assert_eq(json_integer_value(json_object_get(st, "node_pid")), getpid());
  json_decref(st);

  unsigned char *buf = malloc(4 * PS);
  cr_assert_eq(pm_read(client, path, 0, buf, 4 * PS), 3 * PS + 77,
               "%s", pm_peer_errmsg(client));
  check(buf, 0, 3 * PS + 77);
  /* The node fetched the pages once; a second read by the client is
   * served from the page files, with no new origin request at the node. */
  pm_stats before = {.size = sizeof before}, after = {.size = sizeof after};
  pm_peer_stats(node, &before);
  memset(buf, 0, 4 * PS);
  cr_assert_eq(pm_read(client, path, 10, buf, 2 * PS), 2 * PS);
  check(buf, 10, 2 * PS);
  pm_peer_stats(node, &after);
  cr_assert_eq(after.origin_requests, before.origin_requests);
  pm_stats mine = {.size = sizeof mine};
  pm_peer_stats(client, &mine);
  cr_assert_geq(mine.hits_disk, 3, "client hits: %llu",
                (unsigned long long)mine.hits_disk);

  /* Zero copy: the mapping points into the page file's mapping. */
  pm_mapping m;
  cr_assert_eq(pm_map(client, path, PS + 1, 100, &m), 0);
  cr_assert_eq(m.length, 100);
  check(m.data, PS + 1, 100);
  pm_unmap(client, &m);

  pm_object_stat ost;
  cr_assert_eq(pm_stat(client, path, &ost), 0);
  cr_assert_eq(ost.size, 3 * PS + 77);
  pm_list_entry *entries;
  size_t count;
  cr_assert_eq(pm_list(client, root, 0, &entries, &count), 0);
  cr_assert_geq(count, 2); /* a.bin and cache/ */
  pm_list_free(entries, count);
  char missing[400];
  snprintf(missing, sizeof missing, "%s/missing.bin", root);
  cr_assert_eq(pm_read(client, missing, 0, buf, 10), PM_ENOENT);
  cr_assert(strstr(pm_peer_errmsg(client), "missing.bin"), "detail: %s",
            pm_peer_errmsg(client));
  free(buf);
  pm_peer_close(client);
  pm_peer_close(node);
}

Test(attach, attached_peer_takes_over_when_the_node_closes, .init = setup) {
  const char *path = make_object("b.bin", 4 * PS);
  pm_peer *node = open_peer(0);
  pm_peer *client = open_peer(0);
  unsigned char *buf = malloc(4 * PS);
  cr_assert_eq(pm_read(client, path, 0, buf, 2 * PS), 2 * PS);
  pm_peer_close(node);
  /* The next call finds the node gone, takes the lock, and serves from
   * the cache on disk: pages 0-1 are hits, 2-3 come from the origin. */
  memset(buf, 0, 4 * PS);
  cr_assert_eq(pm_read(client, path, 0, buf, 4 * PS), 4 * PS, "%s",
               pm_peer_errmsg(client));
  check(buf, 0, 4 * PS);
  json_t *st = status_of(client);
  cr_assert_str_eq(json_string_value(json_object_get(st, "role")), "node");
  json_decref(st);
  pm_stats s = {.size = sizeof s};
  pm_peer_stats(client, &s);
  cr_assert_eq(s.origin_requests, 2, "two pages (metadata persisted), got %llu",
               (unsigned long long)s.origin_requests);
  free(buf);
  pm_peer_close(client);
}

/* A thread that found no role (a takeover failed) asks for one after
 * another thread has established it: nothing is established twice (a
 * second node server and store over the first, leaked). */
Test(attach, a_late_takeover_keeps_the_role_another_thread_established,
     .init = setup) {
  const char *path = make_object("c.bin", 2 * PS);
  pm_peer *node = open_peer(0);
  unsigned char *buf = malloc(2 * PS);
  cr_assert_eq(pm_read(node, path, 0, buf, 2 * PS), 2 * PS);
  cr_assert_eq(node->role, PM_ROLE_NODE);
  pm_store *store = node->store;
  pm_node_server *server = node->server;
  pm__role_takeover(node, NULL);
  cr_assert_eq(node->role, PM_ROLE_NODE);
  cr_assert(node->store == store && node->server == server,
            "the role was established a second time");
  pm_peer *client = open_peer(0);
  cr_assert_eq(client->role, PM_ROLE_ATTACHED);
  memset(buf, 0, 2 * PS);
  cr_assert_eq(pm_read(client, path, 0, buf, 2 * PS), 2 * PS, "%s",
               pm_peer_errmsg(client));
  check(buf, 0, 2 * PS);
  free(buf);
  pm_peer_close(client);
  pm_peer_close(node);
}

Test(attach, attach_only_fails_clearly_without_a_node, .init = setup) {
  pm_options o;
  pm_options_init(&o);
  o.cache_dir = cache;
  o.flags = PM_OPEN_ATTACH_ONLY;
  pm_peer *p;
  cr_assert_eq(pm_peer_open(&o, &p), PM_EUNREACHABLE);
  cr_assert(strstr(pm_peer_errmsg(NULL), "no node peer"), "%s",
            pm_peer_errmsg(NULL));
}

/* Readers of an attached peer keep reading while the node peer closes:
 * the node stops answering before its worker pool goes away (an answered
 * fetch queues read-ahead on that pool), and every read succeeds, served
 * by the node or, after the takeover, by the client itself. */
#define RACE_PAGES 48
#define RACE_READERS 3

typedef struct race_reader {
  pm_peer *peer;
  char path[400];
  atomic_bool *stop;
  int failures;
  unsigned reads;
} race_reader;

static void *race_main(void *arg) {
  race_reader *r = arg;
  unsigned char *buf = malloc(PS);
  for (uint64_t next = 0; !atomic_load(r->stop); next++) {
    uint64_t page = next % RACE_PAGES; /* sequential: read-ahead follows */
    ssize_t n = pm_read(r->peer, r->path, page * PS, buf, PS);
    r->reads++;
    if (n != (ssize_t)PS) {
      r->failures++;
      continue;
    }
    for (size_t i = 0; i < PS; i++)
      if (buf[i] != byte_at(page * PS + i)) {
        r->failures++;
        break;
      }
  }
  free(buf);
  return NULL;
}

Test(attach, node_closes_while_attached_reads_are_answered, .init = setup) {
  race_reader readers[RACE_READERS];
  atomic_bool stop = false;
  for (unsigned i = 0; i < RACE_READERS; i++) {
    char name[32];
    snprintf(name, sizeof name, "race%u.bin", i);
    readers[i] = (race_reader){.peer = NULL, .stop = &stop};
    snprintf(readers[i].path, sizeof readers[i].path, "%s",
             make_object(name, RACE_PAGES * PS));
  }
  pm_peer *node = open_peer_ra(0, 4);
  pm_peer *client = open_peer(0);
  pthread_t threads[RACE_READERS];
  for (unsigned i = 0; i < RACE_READERS; i++) {
    readers[i].peer = client;
    pthread_create(&threads[i], NULL, race_main, &readers[i]);
  }
  usleep(30 * 1000);
  pm_peer_close(node);
  usleep(30 * 1000);
  atomic_store(&stop, true);
  unsigned reads = 0;
  for (unsigned i = 0; i < RACE_READERS; i++) {
    pthread_join(threads[i], NULL);
    cr_assert_eq(readers[i].failures, 0, "reader %u: %d failed reads", i,
                 readers[i].failures);
    reads += readers[i].reads;
  }
  cr_assert_gt(reads, RACE_READERS);
  pm_peer_close(client);
}

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>

/* A node that ran out of descriptors once (EMFILE on accept) takes
 * connections again when it has some: its accept loop stopped for good
 * before, and every later attach timed out. */
static atomic_int accept_failures;

static void count_accept_failures(void *arg, pm_log_level level,
                                  const char *subsystem, const char *message) {
  (void)arg;
  (void)level;
  if (!strcmp(subsystem, "node") && strstr(message, "accept:"))
    atomic_fetch_add(&accept_failures, 1);
}

Test(attach, a_node_out_of_descriptors_accepts_again, .init = setup) {
  pm_log_set(PM_LOG_WARN, count_accept_failures, NULL);
  pm_peer *node = open_peer(0);
  /* The socket exists before the table fills: a descriptor closed to make
   * room for it could be taken by another thread first. */
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%.90s/node.sock", cache);
  int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  cr_assert_geq(s, 0);
  struct rlimit saved, low;
  cr_assert_eq(getrlimit(RLIMIT_NOFILE, &saved), 0);
  int fillers[4096], count = 0;
  low = saved;
  low.rlim_cur = (rlim_t)dup(2) + 16; /* a little above what is open */
  fillers[count++] = (int)low.rlim_cur - 16;
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
  int fd;
  while (count < 4096 && (fd = dup(2)) >= 0)
    fillers[count++] = fd;
  cr_assert_eq(connect(s, (struct sockaddr *)&sa, sizeof sa), 0);
  /* the node's accept meets EMFILE (and says so) */
  for (int waited = 0; !atomic_load(&accept_failures) && waited < 500;
       waited++)
    usleep(10 * 1000);
  close(s);
  while (count > 0)
    close(fillers[--count]);
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
  pm_log_set(PM_LOG_WARN, NULL, NULL);
  cr_assert_gt(atomic_load(&accept_failures), 0,
               "the node's accept never ran out of descriptors");
  usleep(200 * 1000);
  pm_peer *client = open_peer(0);
  json_t *st = status_of(client);
  cr_assert_str_eq(json_string_value(json_object_get(st, "role")),
                   "attached");
  json_decref(st);
  pm_peer_close(client);
  pm_peer_close(node);
}

#include <signal.h>
#include <sys/wait.h>

/* A child forked from the node peer (a fork-based DataLoader worker)
 * does not keep the node's lock: once the node is gone, another peer
 * takes over while the child lives (it waited for the child to exit). */
Test(attach, a_forked_child_does_not_keep_the_node_lock, .init = setup) {
  pm_peer *node = open_peer(0);
  pid_t child = fork();
  cr_assert_geq(child, 0);
  if (child == 0) {
    sleep(20);
    _exit(0);
  }
  pm_peer_close(node);
  pm_peer *next = open_peer(0);
  json_t *st = status_of(next);
  cr_assert_str_eq(json_string_value(json_object_get(st, "role")), "node");
  json_decref(st);
  pm_peer_close(next);
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);
}

/* An attached process unmaps the page files its node evicted (a sweep on
 * its reads): its mappings kept the unlinked files' disk space, up to the
 * map cache's 8 GiB per process, past the node's disk capacity. */
Test(attach, evicted_page_files_are_unmapped, .init = setup) {
  enum { PAGES = 8 };
  const char *path = make_object("e.bin", PAGES * PS);
  pm_peer *node = open_peer(0);
  pm_peer *client = open_peer(0);
  unsigned char *buf = malloc(PAGES * PS);
  /* On the node's disk first: the client maps the page files. */
  cr_assert_eq(pm_read(node, path, 0, buf, PAGES * PS), PAGES * PS);
  memset(buf, 0, PAGES * PS);
  cr_assert_eq(pm_read(client, path, 0, buf, PAGES * PS), PAGES * PS);
  check(buf, 0, PAGES * PS);
  cr_assert_eq(pm__mapcache_sweep(client->maps, cache, true), 0,
               "page files still there are kept");
  cr_assert_eq(pm_evict(node, path), PAGES, "%s", pm_peer_errmsg(node));
  cr_assert_eq(pm__mapcache_sweep(client->maps, cache, true), PAGES);
  /* Read again: fetched anew, right bytes. */
  memset(buf, 0, PAGES * PS);
  cr_assert_eq(pm_read(client, path, 0, buf, PAGES * PS), PAGES * PS);
  check(buf, 0, PAGES * PS);
  free(buf);
  pm_peer_close(client);
  pm_peer_close(node);
}

#include <sys/file.h>
#include <sys/stat.h>

#include "core/local_msg.h"

/* A node peer of another user (node_group) that says, in its hello, a page
 * size no peer takes is refused: 0 reached the attached process's
 * divisions by the page size. */
typedef struct fake_node {
  int listen_fd;
  uint32_t page_size;
} fake_node;

static void *fake_node_main(void *arg) {
  fake_node *f = arg;
  int c = accept(f->listen_fd, NULL, NULL);
  if (c < 0)
    return NULL;
  uint8_t *buf = malloc(PM_LOCAL_MSG_MAX);
  int fd = -1;
  ssize_t n = pm__local_recv(c, buf, &fd);
  Pm__LocalRequest *req =
      n > 0 ? pm__local_request__unpack(NULL, (size_t)n, buf) : NULL;
  Pm__LocalReply reply = PM__LOCAL_REPLY__INIT;
  reply.id = req ? req->id : 0;
  reply.node_pid = (uint32_t)getpid();
  reply.page_size = f->page_size;
  pm__local_send(c, &reply.base, -1);
  if (req)
    pm__local_request__free_unpacked(req, NULL);
  free(buf);
  char byte;
  (void)read(c, &byte, 1); /* until the client lets go */
  close(c);
  return NULL;
}

Test(attach, a_node_saying_a_page_size_no_peer_takes_is_refused,
     .init = setup) {
  cr_assert_eq(mkdir(cache, 0700), 0);
  char path[400];
  snprintf(path, sizeof path, "%s/node.lock", cache);
  int lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  cr_assert_eq(flock(lock, LOCK_EX), 0); /* "a node peer runs" */
  uint32_t sizes[] = {0, 3, 1u << 30};
  for (unsigned i = 0; i < 3; i++) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%.90s/node.sock", cache);
    unlink(sa.sun_path);
    fake_node f = {.page_size = sizes[i]};
    f.listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    cr_assert_eq(bind(f.listen_fd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(f.listen_fd, 4), 0);
    pthread_t t;
    pthread_create(&t, NULL, fake_node_main, &f);
    pm_options o;
    pm_options_init(&o);
    o.cache_dir = cache;
    o.flags = PM_OPEN_ATTACH_ONLY;
    pm_peer *p = NULL;
    int err = pm_peer_open(&o, &p);
    cr_assert_eq(err, PM_EPROTO, "page size %u: %s", sizes[i],
                 pm_err_name(err));
    cr_assert(strstr(pm_peer_errmsg(NULL), "page size"), "%s",
              pm_peer_errmsg(NULL));
    pthread_join(t, NULL);
    close(f.listen_fd);
  }
  close(lock);
}

/* Garbage on the node's socket (random packets, and well-formed requests
 * with missing fields) is answered or dropped, never taken for a request,
 * and the node serves attached processes as before. */
Test(attach, garbage_on_the_node_socket_is_refused, .init = setup) {
  const char *path = make_object("g.bin", 2 * PS);
  pm_peer *node = open_peer(0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%.90s/node.sock", cache);
  unsigned seed = 12345;
  uint8_t junk[4096];
  for (int round = 0; round < 50; round++) {
    int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    cr_assert_eq(connect(s, (struct sockaddr *)&sa, sizeof sa), 0);
    size_t n = 1 + (size_t)rand_r(&seed) % sizeof junk;
    for (size_t i = 0; i < n; i++)
      junk[i] = (uint8_t)rand_r(&seed);
    if (round % 2) { /* a request of no kind, and a fetch of nothing */
      Pm__LocalRequest req = PM__LOCAL_REQUEST__INIT;
      Pm__LocalFetch fetch = PM__LOCAL_FETCH__INIT;
      req.id = 1;
      if (round % 4 == 3) {
        req.body_case = PM__LOCAL_REQUEST__BODY_FETCH;
        req.fetch = &fetch;
      }
      n = pm__local_request__pack(&req, junk);
    }
    cr_assert_eq(send(s, junk, n, 0), (ssize_t)n);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    uint8_t *reply = malloc(PM_LOCAL_MSG_MAX);
    int fd = -1;
    ssize_t got = pm__local_recv(s, reply, &fd);
    cr_assert_neq(got, PM_ETIMEDOUT, "round %d: no answer, no close", round);
    if (got > 0) { /* an answer: an error, never a page */
      Pm__LocalReply *r =
          pm__local_reply__unpack(NULL, (size_t)got, reply);
      cr_assert_not_null(r);
      cr_assert_lt(r->status, 0, "round %d: status %d", round, r->status);
      pm__local_reply__free_unpacked(r, NULL);
    }
    cr_assert_lt(fd, 0);
    free(reply);
    close(s);
  }
  pm_peer *client = open_peer(0);
  unsigned char *buf = malloc(2 * PS);
  cr_assert_eq(pm_read(client, path, 0, buf, 2 * PS), 2 * PS);
  check(buf, 0, 2 * PS);
  free(buf);
  pm_peer_close(client);
  pm_peer_close(node);
}
