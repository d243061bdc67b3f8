/* Tests for core/pool.c: tasks run, groups wait, nested submits run
 * inline, background tasks are bounded. */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <unistd.h>

#include "core/pool.h"

TestSuite(pool, .timeout = 30);

static atomic_int counter;

static void bump(void *arg) {
  (void)arg;
  atomic_fetch_add(&counter, 1);
}

Test(pool, runs_every_task_of_a_group) {
  pm_pool *pool;
  cr_assert_eq(pm__pool_open(4, &pool), 0);
  pm_group g;
  pm__group_init(&g);
  atomic_store(&counter, 0);
  for (int i = 0; i < 1000; i++)
    cr_assert_eq(pm__pool_submit(pool, &g, bump, NULL), 0);
  pm__group_wait(&g);
  cr_assert_eq(atomic_load(&counter), 1000);
  pm__group_destroy(&g);
  pm__pool_close(pool);
}

typedef struct nested {
  pm_pool *pool;
  bool inner_on_worker;
} nested;

static void outer(void *arg) {
  nested *n = arg;
  pm_group g;
  pm__group_init(&g);
  /* Runs inline on the worker: waiting cannot deadlock a 1-thread pool. */
  pm__pool_submit(n->pool, &g, bump, NULL);
  pm__group_wait(&g);
  pm__group_destroy(&g);
  n->inner_on_worker = pm__pool_on_worker();
}

Test(pool, nested_submit_does_not_deadlock) {
  pm_pool *pool;
  cr_assert_eq(pm__pool_open(1, &pool), 0);
  nested n = {.pool = pool};
  pm_group g;
  pm__group_init(&g);
  atomic_store(&counter, 0);
  cr_assert_eq(pm__pool_submit(pool, &g, outer, &n), 0);
  pm__group_wait(&g);
  cr_assert(n.inner_on_worker);
  cr_assert_eq(atomic_load(&counter), 1);
  pm__group_destroy(&g);
  pm__pool_close(pool);
}

static void slow(void *arg) {
  (void)arg;
  usleep(20000);
}

Test(pool, background_queue_is_bounded) {
  pm_pool *pool;
  cr_assert_eq(pm__pool_open(1, &pool), 0);
  int refused = 0;
  for (int i = 0; i < 20; i++)
    if (pm__pool_submit_background(pool, slow, NULL, 4) == PM_EBUSY)
      refused++;
  cr_assert_geq(refused, 10);
  pm__pool_close(pool); /* runs what was queued, then joins */
}

Test(pool, rejects_bad_thread_counts) {
  pm_pool *pool;
  cr_assert_eq(pm__pool_open(0, &pool), PM_EINVAL);
}
