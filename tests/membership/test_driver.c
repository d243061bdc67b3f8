/*
 * tests/membership/test_driver.c - the real UDP/TCP driver: several
 * members on 127.0.0.1, each in its own thread, find each other through a
 * seed, see a crash as Dead, see the restarted member as a new life, see
 * a graceful leave as Left, and never see a member that lacks the cluster
 * key. Garbage sent to the ports is counted and dropped. The protocol runs
 * five times faster than the LAN defaults so that the test stays short.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/core_int.h"
#include "membership/swim_int.h"

#define MS 1000000ull
#define SEC 1000000000ull

TestSuite(driver, .timeout = 120);

static const uint8_t key_good[32] = {0x42, 1, 2, 3};
static const uint8_t key_bad[32] = {0x43, 1, 2, 3};

static pm__swim_config fast(void) {
  pm__swim_config c;
  pm__swim_config_init(&c);
  c.probe_interval_ns = 200 * MS;
  c.probe_timeout_ns = 100 * MS;
  c.gossip_interval_ns = 40 * MS;
  c.push_pull_interval_ns = 5 * SEC;
  c.reconnect_interval_ns = 2 * SEC;
  c.join_retry_min_ns = 200 * MS;
  return c;
}

static int joins; /* JOIN events seen on driver threads */
static void on_event(void *arg, pm__swim_event_kind kind,
                     const pm__member_info *m) {
  (void)arg, (void)m;
  if (kind == PM_SWIM_EV_JOIN)
    __atomic_fetch_add(&joins, 1, __ATOMIC_RELAXED);
}

static pm__swim_driver *start(const char *listen, const char *seed,
                              const uint8_t *key, const pm__member_id *id,
                              uint64_t capacity) {
  pm__swim_config swim = fast();
  pm__member_meta meta;
  memset(&meta, 0, sizeof meta);
  meta.capacity = capacity;
  strcpy(meta.zone, "test");
  const char *seeds[] = {seed};
  pm__swim_driver_config cfg = {
      .listen = listen,
      .seeds = seeds,
      .seed_count = seed ? 1 : 0,
      .cluster_key = key,
      .cluster_id = "test-cluster",
      .id = id,
      .meta = &meta,
      .event_fn = on_event,
      .swim = &swim,
  };
  pm__swim_driver *d = NULL;
  int rc = pm__swim_driver_start(&cfg, &d);
  cr_assert_eq(rc, 0, "start: %s", pm__errmsg());
  return d;
}

/* The state d holds of id, or -1 if it does not know it. */
static int state_of(pm__swim_driver *d, pm__member_id id, uint64_t *epoch) {
  pm__member_info *all;
  size_t n;
  cr_assert_eq(pm__swim_driver_snapshot(d, &all, &n), 0);
  int state = -1;
  for (size_t i = 0; i < n; i++) {
    if (pm__member_id_eq(&all[i].id, &id)) {
      state = all[i].state;
      if (epoch)
        *epoch = all[i].boot_epoch;
    }
  }
  free(all);
  return state;
}

static size_t alive_count(pm__swim_driver *d) {
  pm__member_info *all;
  size_t n, alive = 0;
  cr_assert_eq(pm__swim_driver_snapshot(d, &all, &n), 0);
  for (size_t i = 0; i < n; i++)
    alive += all[i].state == PM_MEMBER_ALIVE;
  free(all);
  return alive;
}

static void nap(void) {
  struct timespec ts = {0, 20 * MS};
  nanosleep(&ts, NULL);
}

/* Poll every 20 ms until all of ds see want members alive. */
static bool wait_alive(pm__swim_driver **ds, int n, size_t want,
                       uint64_t timeout) {
  uint64_t end = pm__now_ns() + timeout;
  while (pm__now_ns() < end) {
    bool all = true;
    for (int i = 0; i < n; i++)
      all = all && alive_count(ds[i]) == want;
    if (all)
      return true;
    nap();
  }
  return false;
}

static bool wait_state(pm__swim_driver **ds, int n, pm__member_id id, int state,
                       uint64_t timeout) {
  uint64_t end = pm__now_ns() + timeout;
  while (pm__now_ns() < end) {
    bool all = true;
    for (int i = 0; i < n; i++)
      all = all && state_of(ds[i], id, NULL) == state;
    if (all)
      return true;
    nap();
  }
  return false;
}

Test(driver, members_meet_see_a_crash_and_a_restart) {
  pm__swim_driver *ds[4];
  ds[0] = start("127.0.0.1:0", NULL, key_good, NULL, 100);
  const char *seed = pm__swim_driver_addr(ds[0]);
  for (int i = 1; i < 4; i++)
    ds[i] = start("127.0.0.1:0", seed, key_good, NULL, 100 + i);
  cr_assert(wait_alive(ds, 4, 4, 10 * SEC), "no full view");
  cr_assert_geq(__atomic_load_n(&joins, __ATOMIC_RELAXED), 12);

  char addr[PM_SWIM_ADDR_MAX];
  strcpy(addr, pm__swim_driver_addr(ds[3]));
  pm__member_id id = pm__swim_driver_id(ds[3]);
  uint64_t old_epoch = 0;
  state_of(ds[0], id, &old_epoch);
  pm__swim_driver_stop(ds[3]); /* a crash: no word to anyone */
  pm__swim_config cfg = fast();
  uint64_t bound = pm__swim_dead_bound_ns(&cfg, 4);
  uint64_t t0 = pm__now_ns();
  cr_assert(wait_state(ds, 3, id, PM_MEMBER_DEAD, bound + SEC),
            "not Dead within %.1f s", (double)bound / SEC);
  fprintf(stderr, "driver: crash seen Dead everywhere in %.2f s (bound %.2f)\n",
          (double)(pm__now_ns() - t0) / SEC, (double)bound / SEC);

  ds[3] = start(addr, seed, key_good, &id, 103); /* same id, same address */
  cr_assert(wait_alive(ds, 4, 4, 10 * SEC), "restart not seen");
  uint64_t epoch = 0;
  cr_assert_eq(state_of(ds[1], id, &epoch), PM_MEMBER_ALIVE);
  cr_assert_gt(epoch, old_epoch);
  for (int i = 0; i < 4; i++)
    pm__swim_driver_stop(ds[i]);
}

Test(driver, a_member_without_the_key_is_never_seen) {
  pm__swim_driver *ds[3];
  ds[0] = start("127.0.0.1:0", NULL, key_good, NULL, 1);
  const char *seed = pm__swim_driver_addr(ds[0]);
  for (int i = 1; i < 3; i++)
    ds[i] = start("127.0.0.1:0", seed, key_good, NULL, 1);
  pm__swim_driver *intruder = start("127.0.0.1:0", seed, key_bad, NULL, 1);
  cr_assert(wait_alive(ds, 3, 3, 10 * SEC));
  /* Give the intruder time for several join attempts. */
  uint64_t end = pm__now_ns() + 2 * SEC;
  pm__member_id bad_id = pm__swim_driver_id(intruder);
  while (pm__now_ns() < end) {
    for (int i = 0; i < 3; i++)
      cr_assert_eq(state_of(ds[i], bad_id, NULL), -1);
    cr_assert_eq(alive_count(intruder), 1);
    nap();
  }
  pm__swim_driver_stats st;
  pm__swim_driver_stats_get(ds[0], &st);
  cr_assert_gt(st.core.auth_failures, 0);
  pm__swim_driver_stats_get(intruder, &st);
  cr_assert_eq(st.core.streams_in, 0);
  pm__swim_driver_stop(intruder);
  for (int i = 0; i < 3; i++)
    pm__swim_driver_stop(ds[i]);
}

Test(driver, leave_metadata_and_garbage) {
  pm__swim_driver *ds[3];
  ds[0] = start("127.0.0.1:0", NULL, key_good, NULL, 1);
  const char *seed = pm__swim_driver_addr(ds[0]);
  for (int i = 1; i < 3; i++)
    ds[i] = start("127.0.0.1:0", seed, key_good, NULL, 1);
  cr_assert(wait_alive(ds, 3, 3, 10 * SEC));

  /* A capacity change reaches the others. */
  pm__member_meta meta;
  memset(&meta, 0, sizeof meta);
  meta.capacity = 7ull << 40;
  cr_assert_eq(pm__swim_driver_update_meta(ds[1], &meta), 0);
  pm__member_id id1 = pm__swim_driver_id(ds[1]);
  uint64_t end = pm__now_ns() + 5 * SEC;
  bool seen = false;
  while (!seen && pm__now_ns() < end) {
    pm__member_info *all;
    size_t n;
    pm__swim_driver_snapshot(ds[2], &all, &n);
    for (size_t i = 0; i < n; i++)
      seen |= pm__member_id_eq(&all[i].id, &id1) &&
              all[i].meta.capacity == 7ull << 40;
    free(all);
    nap();
  }
  cr_assert(seen, "capacity change not seen");

  /* Garbage on both ports is counted, and nothing breaks. */
  struct sockaddr_in sa = {.sin_family = AF_INET};
  unsigned port = (unsigned)atoi(strrchr(seed, ':') + 1);
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int udp = socket(AF_INET, SOCK_DGRAM, 0);
  uint8_t junk[2000];
  for (int i = 0; i < 50; i++) {
    for (size_t k = 0; k < sizeof junk; k++)
      junk[k] = (uint8_t)(k * 31 + i);
    junk[0] = i % 2 ? 0x51 : 0x07;
    sendto(udp, junk, 100 + (size_t)i * 37, 0, (struct sockaddr *)&sa,
           sizeof sa);
  }
  close(udp);
  int tcp = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_eq(connect(tcp, (struct sockaddr *)&sa, sizeof sa), 0);
  uint8_t huge[4] = {0x7f, 0xff, 0xff, 0xff};
  cr_assert_eq(write(tcp, huge, 4), 4);
  end = pm__now_ns() + 5 * SEC;
  pm__swim_driver_stats st;
  do {
    nap();
    pm__swim_driver_stats_get(ds[0], &st);
  } while ((st.streams_refused == 0 ||
            st.core.auth_failures + st.core.decode_failures < 50) &&
           pm__now_ns() < end);
  close(tcp);
  cr_assert_eq(st.streams_refused, 1);
  cr_assert_geq(st.core.auth_failures + st.core.decode_failures, 50);

  /* A graceful leave is seen as Left, not Dead. */
  pm__member_id id2 = pm__swim_driver_id(ds[2]);
  pm__swim_driver_leave(ds[2], 2 * SEC);
  cr_assert(wait_state(ds, 2, id2, PM_MEMBER_LEFT, 2 * SEC));
  cr_assert(wait_alive(ds, 2, 2, 1 * SEC));
  for (int i = 0; i < 2; i++)
    pm__swim_driver_stop(ds[i]);
}

Test(driver, bad_addresses_are_refused) {
  pm__swim_driver_config cfg = {
      .listen = "127.0.0.1", .cluster_key = key_good, .cluster_id = "x"};
  pm__swim_driver *d = NULL;
  cr_assert_eq(pm__swim_driver_start(&cfg, &d), PM_ECONFIG);
  cfg.listen = "0.0.0.0:0"; /* wildcard without an advertise address */
  cr_assert_eq(pm__swim_driver_start(&cfg, &d), PM_ECONFIG);
  cfg.listen = "999.1.1.1:7000";
  cr_assert_eq(pm__swim_driver_start(&cfg, &d), PM_ECONFIG);
  cfg.cluster_key = NULL;
  cr_assert_eq(pm__swim_driver_start(&cfg, &d), PM_EINVAL);
  cr_assert_null(d);
}

/* Connections anyone can open (no key needed) and keep silent fill a
 * member's incoming streams: the one accepted first makes room, so a
 * joining member's push-pull still gets in (it was refused until the
 * silent ones timed out, and again when they were opened again). */
Test(driver, silent_connections_do_not_keep_members_out) {
  pm__swim_driver *ds[2];
  ds[0] = start("127.0.0.1:0", NULL, key_good, NULL, 1);
  const char *seed = pm__swim_driver_addr(ds[0]);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_port = htons((uint16_t)atoi(strrchr(seed, ':') + 1));
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  int silent[80];
  for (int i = 0; i < 80; i++) {
    silent[i] = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_eq(connect(silent[i], (struct sockaddr *)&sa, sizeof sa), 0);
  }
  struct timespec settle = {0, 200 * MS};
  nanosleep(&settle, NULL);
  ds[1] = start("127.0.0.1:0", seed, key_good, NULL, 1);
  cr_assert(wait_alive(ds, 2, 2, 3 * SEC), "the joiner was kept out");
  for (int i = 0; i < 80; i++)
    close(silent[i]);
  for (int i = 0; i < 2; i++)
    pm__swim_driver_stop(ds[i]);
}
