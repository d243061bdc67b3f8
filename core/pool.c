/*
 * core/pool.c - worker threads and a FIFO task queue (see pool.h).
 * Foreground tasks (a caller waits for them) go before background ones
 * (readahead, prefetch), so that prefetching never delays a reader.
 */
#include <stdlib.h>

#include "pool.h"

typedef struct task {
  struct task *next;
  pm_task_fn fn;
  void *arg;
  pm_group *group;
} task;

typedef struct queue {
  task *head, *tail;
  size_t length;
} queue;

struct pm_pool {
  pthread_mutex_t mutex;
  pthread_cond_t work;
  queue foreground, background;
  bool stopping;
  unsigned thread_count;
  pthread_t *threads;
};

static _Thread_local bool on_worker;

bool pm__pool_on_worker(void) {
  return on_worker;
}

static void queue_push(queue *q, task *t) {
  t->next = NULL;
  if (q->tail)
    q->tail->next = t;
  else
    q->head = t;
  q->tail = t;
  q->length++;
}

static task *queue_pop(queue *q) {
  task *t = q->head;
  if (!t)
    return NULL;
  q->head = t->next;
  if (!q->head)
    q->tail = NULL;
  q->length--;
  return t;
}

static void group_finish(pm_group *group) {
  if (!group)
    return;
  pthread_mutex_lock(&group->mutex);
  if (--group->pending == 0)
    pthread_cond_broadcast(&group->done);
  pthread_mutex_unlock(&group->mutex);
}

static void run_task(task *t) {
  t->fn(t->arg);
  group_finish(t->group);
  free(t);
}

static void *worker_main(void *arg) {
  pm_pool *pool = arg;
  on_worker = true;
  pthread_mutex_lock(&pool->mutex);
  for (;;) {
    task *t = queue_pop(&pool->foreground);
    if (!t)
      t = queue_pop(&pool->background);
    if (!t) {
      if (pool->stopping)
        break;
      pthread_cond_wait(&pool->work, &pool->mutex);
      continue;
    }
    pthread_mutex_unlock(&pool->mutex);
    run_task(t);
    pthread_mutex_lock(&pool->mutex);
  }
  pthread_mutex_unlock(&pool->mutex);
  return NULL;
}

int pm__pool_open(unsigned threads, pm_pool **out) {
  if (threads == 0 || threads > 1024)
    return pm__errf(PM_EINVAL, "io_threads must be 1..1024, not %u", threads);
  pm_pool *pool = calloc(1, sizeof *pool);
  if (!pool || !(pool->threads = calloc(threads, sizeof(pthread_t)))) {
    free(pool);
    return pm__errf(PM_ENOMEM, "cannot allocate the worker pool");
  }
  pthread_mutex_init(&pool->mutex, NULL);
  pthread_cond_init(&pool->work, NULL);
  for (unsigned i = 0; i < threads; i++) {
    if (pthread_create(&pool->threads[i], NULL, worker_main, pool) != 0)
      break;
    pool->thread_count++;
  }
  if (pool->thread_count == 0) {
    pm__pool_close(pool);
    return pm__errf(PM_ENOMEM, "cannot start worker threads");
  }
  *out = pool;
  return 0;
}

void pm__pool_stop(pm_pool *pool) {
  if (!pool)
    return;
  pthread_mutex_lock(&pool->mutex);
  pool->stopping = true;
  pthread_cond_broadcast(&pool->work);
  pthread_mutex_unlock(&pool->mutex);
  for (unsigned i = 0; i < pool->thread_count; i++)
    pthread_join(pool->threads[i], NULL);
  pool->thread_count = 0;
}

void pm__pool_free(pm_pool *pool) {
  if (!pool)
    return;
  pthread_mutex_destroy(&pool->mutex);
  pthread_cond_destroy(&pool->work);
  free(pool->threads);
  free(pool);
}

void pm__pool_close(pm_pool *pool) {
  pm__pool_stop(pool);
  pm__pool_free(pool);
}

static int enqueue(pm_pool *pool, pm_group *group, pm_task_fn fn, void *arg,
                   bool background, size_t max_queued) {
  task *t = malloc(sizeof *t);
  if (!t)
    return PM_ENOMEM;
  *t = (task){.fn = fn, .arg = arg, .group = group};
  pthread_mutex_lock(&pool->mutex);
  int err = 0;
  if (pool->stopping)
    err = PM_ESHUTDOWN;
  else if (background && pool->background.length >= max_queued)
    err = PM_EBUSY;
  if (err) {
    pthread_mutex_unlock(&pool->mutex);
    free(t);
    return err;
  }
  if (group) {
    pthread_mutex_lock(&group->mutex);
    group->pending++;
    pthread_mutex_unlock(&group->mutex);
  }
  queue_push(background ? &pool->background : &pool->foreground, t);
  pthread_cond_signal(&pool->work);
  pthread_mutex_unlock(&pool->mutex);
  return 0;
}

int pm__pool_submit(pm_pool *pool, pm_group *group, pm_task_fn fn,
                    void *arg) {
  if (on_worker) {
    fn(arg);
    return 0;
  }
  return enqueue(pool, group, fn, arg, false, 0);
}

int pm__pool_submit_background(pm_pool *pool, pm_task_fn fn, void *arg,
                               size_t max_queued) {
  return enqueue(pool, NULL, fn, arg, true, max_queued);
}

void pm__group_init(pm_group *group) {
  pthread_mutex_init(&group->mutex, NULL);
  pthread_cond_init(&group->done, NULL);
  group->pending = 0;
}

void pm__group_wait(pm_group *group) {
  pthread_mutex_lock(&group->mutex);
  while (group->pending > 0)
    pthread_cond_wait(&group->done, &group->mutex);
  pthread_mutex_unlock(&group->mutex);
}

void pm__group_destroy(pm_group *group) {
  pthread_mutex_destroy(&group->mutex);
  pthread_cond_destroy(&group->done);
}
