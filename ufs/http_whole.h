/*
 * ufs/http_whole.h - objects of an HTTP server that ignores Range, kept
 * whole while they are read (ufs/http_whole.c). Such a server answers
 * every ranged GET with the whole object (HTTP 200), so reading an object
 * page by page costs its start again for every page: quadratic in its
 * size. The first such answer of an object is written whole into an
 * unlinked scratch file (O_TMPFILE in the peer's cache directory, or a
 * file unlinked at once where there is no O_TMPFILE) and the
 * object's other pages are read from it, while it is in use: a copy idle
 * for PM_HTTP_WHOLE_IDLE_NS is dropped, and at most PM_HTTP_WHOLE_SLOTS
 * objects of at most PM_HTTP_WHOLE_MAX bytes each are kept.
 */
#ifndef PM_UFS_HTTP_WHOLE_H
#define PM_UFS_HTTP_WHOLE_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "ufs/ufs_priv.h"

#define PM_HTTP_WHOLE_SLOTS 4
#define PM_HTTP_WHOLE_MAX (1ull << 30)
#define PM_HTTP_WHOLE_IDLE_NS (120ull * 1000000000ull)

typedef struct pm_http_whole {
  char *uri;                     /* NULL: a free slot */
  char version[PM_VERSION_MAX];
  uint64_t size;
  int fd;        /* the object whole; -1 while it is being written */
  unsigned users; /* readers in the file, and the writer */
  uint64_t used_ns;
  bool gave_up;  /* no copy: the read got its bytes, the copy stopped
                    short (slower than a request's timeout, disk full);
                    not tried again until the slot is idle that long */
} pm_http_whole;

typedef struct pm_http_wholes {
  pthread_mutex_t lock;
  pthread_cond_t changed; /* a copy being written is done, or gave up */
  bool ready;
  const char *dir; /* where scratch files are made; NULL: none are */
  pm_http_whole slots[PM_HTTP_WHOLE_SLOTS];
} pm_http_wholes;

/* dir: the directory for the scratch files (NULL: objects are never kept
 * whole). Errors: PM_ENOMEM. */
int pm__http_wholes_init(pm_http_wholes *w, const char *dir);
/* Accepts a zeroed or failed set. */
void pm__http_wholes_fini(pm_http_wholes *w);

/* Read [offset, +length) of the object `uri` at version st from a copy
 * kept whole, waiting (up to wait_ns) while one is being written. Returns
 * length, or -1 if there is no copy (read it from the server). */
ssize_t pm__http_whole_read(pm_http_wholes *w, const char *uri,
                            const pm_object_stat *st, uint64_t offset,
                            void *buf, size_t length, uint64_t wait_ns);

/* What a read hands the request runner (pm_http_req.spill_open/arg):
 * open a scratch file for uri at version st when a whole answer starts,
 * unless another read already writes one (-1 then). */
typedef struct pm_http_whole_spill {
  pm_http_wholes *set;
  const char *uri;
  const pm_object_stat *st;
  pm_http_whole *slot; /* set by the open: the copy being written */
  bool elsewhere;      /* set by the open: another read keeps it whole */
} pm_http_whole_spill;
int pm__http_whole_spill_open(void *spill);
/* After the request, what became of the copy: whole (fd holds st->size
 * bytes of the object: kept, and fd taken), cut short while the read
 * itself succeeded (given up for the object, for a while), or not made
 * because the read failed (the slot freed). fd is left to the caller but
 * when whole. No-op if spill_open was not called or gave -1. */
typedef enum pm_http_whole_end {
  PM_HTTP_WHOLE_KEPT,
  PM_HTTP_WHOLE_CUT_SHORT,
  PM_HTTP_WHOLE_READ_FAILED,
} pm_http_whole_end;
void pm__http_whole_spill_done(pm_http_whole_spill *spill, int fd,
                               pm_http_whole_end end);

#endif /* PM_UFS_HTTP_WHOLE_H */
