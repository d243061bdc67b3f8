/*
 * tests/core/test_landing.c - an attached process's landing area
 * (core/landing.c, core/node_landing.c): slots taken, given back and
 * spoiled; pages the node fetches for an attached peer written into slots
 * and read byte-exact, through pm_read and pm_map; more pages than slots
 * landing in the slots of the least recently used ones; the node refusing
 * a slot outside the area, another slot size, or a descriptor that is not
 * a memfd (the page then comes as a descriptor). Node and attached peer
 * live in this process, as in test_attach.c.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/node_int.h"
#include "node_fixture.h"

TestSuite(landing, .timeout = 60);

static bool in_area(pm_peer *client, const void *p, unsigned slots) {
  const unsigned char *area = pm__landing_data(client->landing, 0);
  const unsigned char *at = p;
  return at >= area && at < area + (size_t)slots * PS;
}

Test(landing, slots_are_taken_given_and_spoiled) {
  pm_landing *l;
  cr_assert_eq(pm__landing_open(4096, 3, &l), 0);
  int a = pm__landing_take(l), b = pm__landing_take(l),
      c = pm__landing_take(l);
  cr_assert_eq(a, 0);
  cr_assert(b >= 0 && c >= 0 && a != b && b != c && a != c);
  cr_assert_eq(pm__landing_take(l), -1);
  pm__landing_give(l, b);
  cr_assert_eq(pm__landing_take(l), b);
  pm__landing_spoil(l, a); /* never handed out again */
  pm__landing_give(l, b);
  cr_assert_eq(pm__landing_free_slots(l), 1);
  cr_assert_eq(pm__landing_take(l), b);
  cr_assert_eq(pm__landing_take(l), -1);
  /* Closed while two slots are held: their bytes stay readable until
   * they are given back (ASan sees a use after free otherwise). */
  const unsigned char *data = pm__landing_data(l, c);
  pm__landing_close(l);
  cr_assert_eq(data[4095], 0);
  pm__landing_give(l, b);
  cr_assert_eq(data[0], 0);
  pm__landing_give(l, c);
}

Test(landing, pages_the_node_fetches_land_in_slots, .init = setup) {
  const char *path = make_object("a.bin", 5 * PS - 100);
  pm_peer *node = open_peer(0);
  pm_peer *client = open_peer(0);
  cr_assert_eq(client->role, PM_ROLE_ATTACHED);
  cr_assert_not_null(client->landing);
  unsigned slots = pm__landing_free_slots(client->landing);
  cr_assert_eq(slots, 64);
  unsigned char *buf = malloc(5 * PS);
  cr_assert_eq(pm_read(client, path, 0, buf, 5 * PS), 5 * PS - 100, "%s",
               pm_peer_errmsg(client));
  check(buf, 0, 5 * PS - 100);
  /* Fetched by the node for the client: none was on disk when asked. */
  cr_assert_eq(pm__landing_free_slots(client->landing), slots - 5);
  memset(buf, 0, 5 * PS);
  cr_assert_eq(pm_read(client, path, 7, buf, 3 * PS), 3 * PS);
  check(buf, 7, 3 * PS);
  cr_assert_eq(pm__landing_free_slots(client->landing), slots - 5);
  /* pm_map hands out the slot itself. */
  pm_mapping m;
  cr_assert_eq(pm_map(client, path, 2 * PS + 5, 1000, &m), 0);
  check(m.data, 2 * PS + 5, 1000);
  cr_assert(in_area(client, m.data, slots),
            "the mapping is not in the landing area");
  pm_unmap(client, &m);
  free(buf);
  pm_peer_close(client);
  pm_peer_close(node);
}

Test(landing, more_pages_than_slots_reuse_the_oldest, .init = setup) {
  size_t size = 70 * (size_t)PS;
  const char *path = make_object("b.bin", size);
  pm_peer *node = open_peer(0);
  pm_peer *client = open_peer(0);
  unsigned char *buf = malloc(size);
  for (uint64_t page = 0; page < 70; page++)
    cr_assert_eq(pm_read(client, path, page * PS, buf + page * PS, PS), PS,
                 "page %llu: %s", (unsigned long long)page,
                 pm_peer_errmsg(client));
  check(buf, 0, size);
  cr_assert_eq(pm__landing_free_slots(client->landing), 0);
  /* The last pages landed in slots the first ones had. */
  pm_mapping m;
  cr_assert_eq(pm_map(client, path, 69 * (uint64_t)PS + 3, 100, &m), 0);
  check(m.data, 69 * (uint64_t)PS + 3, 100);
  cr_assert(in_area(client, m.data, 64));
  pm_unmap(client, &m);
  /* The first ones, read again, come from their page files. */
  memset(buf, 0, PS);
  cr_assert_eq(pm_read(client, path, 0, buf, PS), PS);
  check(buf, 0, PS);
  free(buf);
  pm_peer_close(client);
  pm_peer_close(node);
}

/* A fetch straight through the link, with a chosen slot and descriptor. */
static void fetch_with(pm_peer *client, const char *uri, uint64_t page,
                       int landing_fd, int slot, uint32_t slot_size) {
  pm_object_stat st;
  cr_assert_eq(pm_stat(client, uri, &st), 0);
  pm_link_fetch_io io = {.landing_fd = landing_fd, .slot = slot,
                         .slot_size = slot_size, .fd = -1};
  cr_assert_eq(pm__link_fetch(client->link, uri, &st, page, &io), 0, "%s",
               pm__errmsg());
  cr_assert(io.answered);
  cr_assert_not(io.landed);
  cr_assert_geq(io.fd, 0);
  cr_assert_eq(io.length, PS);
  unsigned char *map = mmap(NULL, PS, PROT_READ, MAP_SHARED, io.fd,
                            (off_t)io.data_offset);
  cr_assert_neq(map, MAP_FAILED);
  check(map, page * PS, PS);
  munmap(map, PS);
  close(io.fd);
}

/* The file:// URI of a new object of the pattern. */
static void object_uri(const char *name, size_t size, char uri[420]) {
  snprintf(uri, 420, "file://%s", make_object(name, size));
}

Test(landing, node_refuses_what_is_not_a_slot_of_an_area, .init = setup) {
  char uri[420];
  object_uri("c.bin", 5 * PS, uri);
  pm_peer *node = open_peer(0);
  pm_peer *client = open_peer(0);
  int area = pm__landing_fd(client->landing);
  /* A slot past the end of the area; a slot size not the node's. */
  fetch_with(client, uri, 1, area, 64, PS);
  fetch_with(client, uri, 0, area, 0, PS / 2);
  /* Descriptors that are not a memfd: a pipe, and a file the node must
   * not write into. */
  int pipe_fds[2];
  cr_assert_eq(pipe(pipe_fds), 0);
  fetch_with(client, uri, 2, pipe_fds[0], 0, PS);
  close(pipe_fds[0]);
  close(pipe_fds[1]);
  char victim[400];
  snprintf(victim, sizeof victim, "%s/victim", root);
  FILE *f = fopen(victim, "w+b");
  cr_assert_not_null(f);
  cr_assert_eq(ftruncate(fileno(f), 64 * (off_t)PS), 0);
  fetch_with(client, uri, 3, fileno(f), 0, PS);
  unsigned char head[64] = {0}, zeros[64] = {0};
  cr_assert_eq(pread(fileno(f), head, sizeof head, 0), (ssize_t)sizeof head);
  cr_assert_eq(memcmp(head, zeros, sizeof head), 0, "the node wrote into it");
  fclose(f);
  /* A file on a tmpfs (as any file in a tmpfs /tmp is): F_GET_SEALS
   * answers for it too, and it was taken for a memfd. */
  char shm_name[64];
  snprintf(shm_name, sizeof shm_name, "/pagemesh-test-victim-%d", getpid());
  int shm = shm_open(shm_name, O_RDWR | O_CREAT | O_EXCL, 0600);
  if (shm >= 0) { /* (a sandbox may have no /dev/shm) */
    shm_unlink(shm_name);
    cr_assert_eq(ftruncate(shm, 64 * (off_t)PS), 0);
    fetch_with(client, uri, 4, shm, 0, PS); /* a page not fetched yet */
    cr_assert_eq(pread(shm, head, sizeof head, 0), (ssize_t)sizeof head);
    cr_assert_eq(memcmp(head, zeros, sizeof head), 0,
                 "the node wrote into it");
    close(shm);
  }
  pm_peer_close(client);
  pm_peer_close(node);
}

/* Threads of one attached process read random pages of an object larger
 * than the landing area, some through pm_map held across other reads: the
 * slots are dropped and reused under them, and every byte stays right. */
typedef struct racer {
  pm_peer *client;
  const char *path;
  unsigned seed;
  int failures;
} racer;

enum { RACE_PAGES = 150 };

static void *race_main(void *arg) {
  racer *r = arg;
  unsigned char *buf = malloc(PS);
  for (int i = 0; i < 300; i++) {
    uint64_t page = (uint64_t)rand_r(&r->seed) % RACE_PAGES;
    uint64_t off = page * PS + (uint64_t)(rand_r(&r->seed) % 1000);
    size_t len = 1 + (size_t)(rand_r(&r->seed) % (PS - 1000));
    pm_mapping m = {0};
    bool mapped = i % 5 == 0 && pm_map(r->client, r->path, off, len, &m) == 0;
    if (pm_read(r->client, r->path, off, buf, len) != (ssize_t)len)
      r->failures++;
    for (size_t k = 0; k < len; k += 97)
      if (buf[k] != byte_at(off + k))
        r->failures++;
    if (mapped) {
      for (size_t k = 0; k < m.length; k += 89)
        if (((const unsigned char *)m.data)[k] != byte_at(off + k))
          r->failures++;
      pm_unmap(r->client, &m);
    }
  }
  free(buf);
  return NULL;
}

Test(landing, concurrent_readers_reusing_slots, .init = setup) {
  const char *path = make_object("d.bin", RACE_PAGES * (size_t)PS);
  pm_peer *node = open_peer_ra(0, 0);
  /* The node keeps nothing on disk: every page comes through the landing
   * area (from the node's RAM or fetched again). */
  cr_assert_eq(pm_set_capacity(node, 0, 1ull << 30), 0, "%s",
               pm_peer_errmsg(node));
  pm_peer *client = open_peer(0);
  enum { THREADS = 6 };
  pthread_t threads[THREADS];
  racer racers[THREADS];
  for (int i = 0; i < THREADS; i++) {
    racers[i] = (racer){client, path, 1234u + (unsigned)i, 0};
    pthread_create(&threads[i], NULL, race_main, &racers[i]);
  }
  for (int i = 0; i < THREADS; i++) {
    pthread_join(threads[i], NULL);
    cr_assert_eq(racers[i].failures, 0, "thread %d: %d bad reads", i,
                 racers[i].failures);
  }
  /* More pages than slots went through the area. */
  cr_assert_gt(atomic_load(&client->counters.landed), 64, "%llu landed",
               (unsigned long long)atomic_load(&client->counters.landed));
  pm_peer_close(client);
  pm_peer_close(node);
}

static uint64_t ram_hits(pm_peer *p) {
  pm_stats st = {.size = sizeof st};
  cr_assert_eq(pm_peer_stats(p, &st), 0);
  return st.hits_ram;
}

/* A node with no disk tier: a page it holds in RAM is written into the
 * slot from the RAM tier in place (pm__store_visit_ram), counted once, as
 * a RAM hit, byte-exact. */
Test(landing, pages_held_in_ram_land_from_the_ram_tier, .init = setup) {
  enum { PAGES = 5 };
  const char *path = make_object("r.bin", PAGES * (size_t)PS - 77);
  pm_options o;
  pm_options_init(&o);
  o.cache_dir = cache;
  o.page_size = PS;
  o.readahead_pages = 0;
  o.disk_capacity = 0; /* no disk tier */
  pm_peer *node = NULL;
  cr_assert_eq(pm_peer_open(&o, &node), 0, "%s", pm_peer_errmsg(NULL));
  pm_peer *first = open_peer(0);
  unsigned char *buf = malloc(PAGES * (size_t)PS);
  cr_assert_eq(pm_read(first, path, 0, buf, PAGES * PS), PAGES * PS - 77);
  check(buf, 0, PAGES * PS - 77);
  pm_peer *second = open_peer(0);
  uint64_t ram_before = ram_hits(node);
  uint64_t node_hits = atomic_load(&node->counters.attached_hits);
  memset(buf, 0, PAGES * (size_t)PS);
  for (uint64_t page = 0; page < PAGES; page++) {
    size_t want = page + 1 < PAGES ? PS : PS - 77;
    cr_assert_eq(pm_read(second, path, page * PS, buf + page * PS, PS),
                 (ssize_t)want);
  }
  check(buf, 0, PAGES * PS - 77);
  cr_assert_eq(atomic_load(&second->counters.landed), PAGES);
  /* one hit per page, a RAM hit (the node counted each twice before: a
   * RAM hit and a hit of its own, shown as a disk hit) */
  cr_assert_eq(atomic_load(&node->counters.attached_hits) - node_hits, 0);
  cr_assert_eq(ram_hits(node) - ram_before, PAGES);
  free(buf);
  pm_peer_close(second);
  pm_peer_close(first);
  pm_peer_close(node);
}

/* PAGEMESH_LANDING sizes the area (here 2 slots), 0 turns it off: every
 * page then comes as a descriptor, as before the area existed. */
Test(landing, sized_or_turned_off_by_the_environment, .init = setup) {
  const char *path = make_object("e.bin", 6 * (size_t)PS);
  pm_peer *node = open_peer(0);
  setenv("PAGEMESH_LANDING", "128K", 1);
  pm_peer *small = open_peer(0);
  setenv("PAGEMESH_LANDING", "0", 1);
  pm_peer *none = open_peer(0);
  unsetenv("PAGEMESH_LANDING");
  cr_assert_not_null(small->landing);
  cr_assert_eq(pm__landing_free_slots(small->landing), 2);
  cr_assert_null(none->landing);
  unsigned char *buf = malloc(6 * (size_t)PS);
  for (uint64_t page = 0; page < 6; page++) /* one page at a time: each
                                              * frees its slot for the next */
    cr_assert_eq(pm_read(small, path, page * PS, buf + page * PS, PS), PS);
  check(buf, 0, 6 * PS);
  cr_assert_eq(atomic_load(&small->counters.landed), 6, "%llu landed", (unsigned long long)atomic_load(&small->counters.landed));
  cr_assert_eq(pm_set_capacity(node, 0, 1ull << 30), 0);
  memset(buf, 0, 6 * (size_t)PS);
  cr_assert_eq(pm_read(none, path, PS, buf, 4 * PS), 4 * PS);
  check(buf, PS, 4 * PS);
  cr_assert_eq(atomic_load(&none->counters.landed), 0);
  free(buf);
  pm_peer_close(none);
  pm_peer_close(small);
  pm_peer_close(node);
}

/* A fetch of a page so far past the end that its offset wraps (page 2^48
 * of 64 KiB pages starts at 2^64, that is 0) is past the end; it was
 * served as page 0, and kept as that far page. */
Test(landing, a_page_whose_offset_wraps_is_past_the_end, .init = setup) {
  char uri[420];
  object_uri("w.bin", 2 * PS, uri);
  pm_peer *node = open_peer(0);
  pm_peer *client = open_peer(0);
  pm_object_stat st;
  cr_assert_eq(pm_stat(client, uri, &st), 0);
  pm_link_fetch_io io = {.landing_fd = -1, .slot = -1, .fd = -1};
  int err = pm__link_fetch(client->link, uri, &st, 1ull << 48, &io);
  cr_assert_eq(err, PM_ERANGE, "%s", pm_err_name(err));
  if (io.fd >= 0)
    close(io.fd);
  pm_peer_close(client);
  pm_peer_close(node);
}
