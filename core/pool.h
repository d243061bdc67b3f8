/*
 * core/pool.h - a fixed set of worker threads running queued tasks, and
 * task groups a caller can wait on. Blocking origin and disk I/O runs here
 * so that batched reads proceed in parallel.
 */
#ifndef PM_CORE_POOL_H
#define PM_CORE_POOL_H

#include <pthread.h>

#include "core_int.h"

typedef struct pm_pool pm_pool;
typedef void (*pm_task_fn)(void *arg);

/* A count of outstanding tasks that a caller waits for. */
typedef struct pm_group {
  pthread_mutex_t mutex;
  pthread_cond_t done;
  size_t pending;
} pm_group;

/* Start `threads` workers. Errors: PM_EINVAL, PM_ENOMEM. */
int pm__pool_open(unsigned threads, pm_pool **out);
/* Run what is queued, then stop and join the workers. Accepts NULL. */
void pm__pool_close(pm_pool *pool);
/* pm__pool_close in two steps: stop (run what is queued, join the
 * workers; from then on every submit fails with PM_ESHUTDOWN, so threads
 * that outlive the pool's workers may still try), then free. */
void pm__pool_stop(pm_pool *pool);
void pm__pool_free(pm_pool *pool);

/* Queue fn(arg); if group is not NULL it is counted in it. Tasks queued
 * from a worker thread run inline (no nested waits can deadlock the pool).
 * Errors: PM_ENOMEM (the task was not queued), PM_ESHUTDOWN. */
int pm__pool_submit(pm_pool *pool, pm_group *group, pm_task_fn fn, void *arg);
/* Like submit, for background work: dropped (returns PM_EBUSY) if more
 * than `max_queued` background tasks are waiting. */
int pm__pool_submit_background(pm_pool *pool, pm_task_fn fn, void *arg,
                               size_t max_queued);
/* True on one of the pool's worker threads. */
bool pm__pool_on_worker(void);

void pm__group_init(pm_group *group);
void pm__group_wait(pm_group *group);
void pm__group_destroy(pm_group *group);

#endif /* PM_CORE_POOL_H */
