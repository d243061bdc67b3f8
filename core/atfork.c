/*
 * core/atfork.c - descriptors a forked child must not keep: the node
 * peer's lock on its cache directory (an flock belongs to the open file,
 * so a child holding a copy kept the lock after the node died, and no
 * attached process could take over) and its listening socket (a child's
 * copy kept accepting connections nobody answered). A child of a node
 * peer (a fork-based DataLoader worker) has none of its threads and
 * cannot be the node: its copies are closed right after the fork.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "core_int.h"

#define SLOTS 64

static _Atomic(int *) slots[SLOTS];
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Runs in the child, single-threaded, right after fork: only close(). */
static void in_child(void) {
  for (int i = 0; i < SLOTS; i++) {
    int *fd = atomic_load(&slots[i]);
    if (fd && *fd >= 0) {
      close(*fd);
      *fd = -1;
    }
  }
}

static void install(void) {
  pthread_atfork(NULL, NULL, in_child);
}

void pm__close_in_child(int *fd) {
  pthread_once(&once, install);
  for (int i = 0; i < SLOTS; i++) {
    int *expected = NULL;
    if (atomic_compare_exchange_strong(&slots[i], &expected, fd))
      return;
  }
  PM_LOG(PM_LOG_WARN, "node", "more than %d descriptors to close in forked "
         "children: a child may keep one", SLOTS);
}

void pm__close_in_child_forget(int *fd) {
  for (int i = 0; i < SLOTS; i++) {
    int *expected = fd;
    if (atomic_compare_exchange_strong(&slots[i], &expected, NULL))
      return;
  }
}
