/* Tests for core/flight.c: one leader per key, followers get its bytes or
 * its error detail. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/flight.h"

TestSuite(flight, .timeout = 30);

typedef struct shared {
  pm_flights *flights;
  pm_page_id key;
  atomic_int leaders;
  atomic_int begun;
  atomic_int ok;
  int fail;
} shared;

static void *requester(void *arg) {
  shared *s = arg;
  bool leader;
  pm_flight *f = pm__flight_begin(s->flights, &s->key, &leader);
  atomic_fetch_add(&s->begun, 1);
  if (leader) {
    atomic_fetch_add(&s->leaders, 1);
    /* let the others join (one that began after the finish would lead a
     * flight of its own, rightly) */
    for (int waited = 0; atomic_load(&s->begun) < 16 && waited < 10000;
         waited++)
      usleep(1000);
    if (s->fail) {
      pm__errf(PM_EUNREACHABLE, "origin down for the test");
      pm__flight_finish(s->flights, f, PM_EUNREACHABLE, NULL, 0);
    } else {
      pm__flight_finish(s->flights, f, 0, strdup("page bytes"), 11);
    }
  }
  const void *data;
  size_t len;
  int r = pm__flight_wait(f, &data, &len);
  if (!s->fail && r == 0 && len == 11 && strcmp(data, "page bytes") == 0)
    atomic_fetch_add(&s->ok, 1);
  if (s->fail && r == PM_EUNREACHABLE &&
      strstr(pm__errmsg(), "origin down"))
    atomic_fetch_add(&s->ok, 1);
  pm__flight_release(s->flights, f);
  return NULL;
}

static void run(int fail) {
  shared s = {.fail = fail};
  cr_assert_eq(pm__flights_open(&s.flights), 0);
  s.key = pm__page_id("s3://b/k", "v1", 3, 1 << 20);
  pthread_t t[16];
  for (int i = 0; i < 16; i++)
    pthread_create(&t[i], NULL, requester, &s);
  for (int i = 0; i < 16; i++)
    pthread_join(t[i], NULL);
  cr_assert_eq(atomic_load(&s.leaders), 1, "leaders: %d", s.leaders);
  cr_assert_eq(atomic_load(&s.ok), 16);
  pm__flights_close(s.flights);
}

Test(flight, one_leader_shares_bytes) {
  run(0);
}

Test(flight, followers_get_the_error_detail) {
  run(1);
}

/* Begin a flight that must be new: this caller leads it. */
static pm_flight *lead(pm_flights *fl, const pm_page_id *key,
                       const char *why) {
  bool leader;
  pm_flight *f = pm__flight_begin(fl, key, &leader);
  cr_assert(leader, "%s", why);
  return f;
}

Test(flight, finished_flight_is_not_joined_again) {
  pm_flights *fl;
  cr_assert_eq(pm__flights_open(&fl), 0);
  pm_page_id key = pm__page_id("u", "v", 0, 65536);
  pm_flight *a = lead(fl, &key, "the first flight");
  pm__flight_finish(fl, a, 0, NULL, 0);
  pm_flight *b = lead(fl, &key, "a finished flight must not be joined");
  pm__flight_finish(fl, b, 0, NULL, 0);
  pm__flight_release(fl, a);
  pm__flight_release(fl, b);
  pm__flights_close(fl);
}

/* A flight finished as joinable is joined (with its bytes at once) until
 * it is retired; then begin starts a new one. */
Test(flight, joinable_flight_is_joined_until_retired) {
  pm_flights *fl;
  cr_assert_eq(pm__flights_open(&fl), 0);
  pm_page_id key = pm__page_id("u", "v", 1, 65536);
  pm_flight *a = lead(fl, &key, "the first flight");
  char *bytes = malloc(4);
  memcpy(bytes, "page", 4);
  pm__flight_finish_joinable(fl, a, bytes, 4);
  bool leader;
  pm_flight *b = pm__flight_begin(fl, &key, &leader);
  cr_assert(!leader, "a joinable flight is joined");
  cr_assert_eq(b, a);
  const void *data;
  size_t length;
  cr_assert_eq(pm__flight_wait(b, &data, &length), 0);
  cr_assert_eq(length, 4);
  cr_assert(memcmp(data, "page", 4) == 0);
  pm__flight_release(fl, b);
  pm__flight_retire(fl, a);
  pm__flight_retire(fl, a); /* twice is harmless */
  pm_flight *c = lead(fl, &key, "a retired flight is not joined");
  pm__flight_finish(fl, c, 0, NULL, 0);
  pm__flight_release(fl, c);
  pm__flight_release(fl, a);
  pm__flights_close(fl);
}
