/*
 * core/core_int.h - what the core offers the other folders of pagemesh:
 * error details, logging, time, page ids, and small helpers. Nothing here is
 * public; bindings use include/pagemesh.h only.
 */
#ifndef PM_CORE_INT_H
#define PM_CORE_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pagemesh.h"

#define PM_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define PM_MIN(a, b) ((a) < (b) ? (a) : (b))
#define PM_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Page sizes a peer takes: a power of two, 64 KiB to 16 MiB. */
#define PM_PAGE_SIZE_MIN (64u << 10)
#define PM_PAGE_SIZE_MAX (16u << 20)
/* Copies of a page the mesh keeps at most (pm_options.replicas). */
#define PM_REPLICAS_MAX 8u
static inline bool pm__page_size_ok(uint64_t ps) {
  return ps >= PM_PAGE_SIZE_MIN && ps <= PM_PAGE_SIZE_MAX &&
         (ps & (ps - 1)) == 0;
}

#if defined(__GNUC__)
#define PM_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define PM_UNUSED __attribute__((unused))
#else
#define PM_PRINTF(f, a)
#define PM_UNUSED
#endif

/* ---- error details (core/error.c) ------------------------------------- */

#define PM_ERRMSG_MAX 512

/* Record a detail sentence for the calling thread and return err, so that
 * a failure is one line: `return pm__errf(PM_ENOENT, "%s: not found", u);`.
 * The detail is what pm_peer_errmsg() shows. */
int pm__errf(int err, const char *fmt, ...) PM_PRINTF(2, 3);
/* The calling thread's last detail ("" if none). */
const char *pm__errmsg(void);
/* Replace the calling thread's detail (used to carry a worker's detail to
 * the thread that waited for it). */
void pm__errmsg_set(const char *msg);
/* Clear the calling thread's detail. */
void pm__errmsg_clear(void);
/* Map an errno value to a pm_err. */
int pm__err_from_errno(int errno_value);

/* ---- logging (core/log.c) ---------------------------------------------- */

extern volatile int pm__log_level;
void pm__log(pm_log_level level, const char *subsystem, const char *fmt, ...)
    PM_PRINTF(3, 4);
/* Logs at most once per `interval_ms` from one call site. */
#define PM_LOG(level, subsystem, ...)                                         \
  do {                                                                        \
    if ((int)(level) <= pm__log_level)                                        \
      pm__log((level), (subsystem), __VA_ARGS__);                             \
  } while (0)
#define PM_LOG_RATELIMITED(level, subsystem, interval_ms, ...)                \
  do {                                                                        \
    static uint64_t pm__last_log_ns_;                                         \
    if ((int)(level) <= pm__log_level) {                                      \
      uint64_t pm__now_ = pm__now_ns();                                       \
      if (pm__now_ - pm__last_log_ns_ >= (uint64_t)(interval_ms)*1000000u) {  \
        pm__last_log_ns_ = pm__now_;                                          \
        pm__log((level), (subsystem), __VA_ARGS__);                           \
      }                                                                       \
    }                                                                         \
  } while (0)

/* ---- time (core/util.c) ------------------------------------------------- */

/* Monotonic clock, nanoseconds. */
uint64_t pm__now_ns(void);
/* Wall clock, nanoseconds since the epoch. */
int64_t pm__wall_ns(void);

/* ---- page ids (core/page_id.c) ------------------------------------------ */

typedef struct pm_page_id {
  uint8_t bytes[16];
} pm_page_id;

/* XXH3-128 of (uri, NUL, version, NUL, page_index as le64, page_size as
 * le32). The page size is part of the id so that peers with different page
 * sizes never confuse their pages. */
pm_page_id pm__page_id(const char *uri, const char *version,
                       uint64_t page_index, uint32_t page_size);
/* 32 lowercase hex characters and a NUL. */
void pm__page_id_hex(const pm_page_id *id, char out[33]);
/* Parse 32 hex characters; returns 0 or PM_EINVAL. */
int pm__page_id_parse(const char *hex, pm_page_id *out);
bool pm__page_id_eq(const pm_page_id *a, const pm_page_id *b);
/* A 64-bit hash of the id, for hash tables. */
uint64_t pm__page_id_hash(const pm_page_id *id);

/* Hands a page's bytes to a caller while they are valid, instead of
 * copying them out; returns what the caller wants returned (bytes used, or
 * a pm_err). */
typedef ssize_t (*pm_page_visit)(const void *data, size_t length, void *arg);

/* XXH3-128 checksum of page bytes. */
typedef struct pm_checksum {
  uint8_t bytes[16];
} pm_checksum;
pm_checksum pm__checksum(const void *data, size_t length);
/* The same checksum over bytes that come in parts (a page as it arrives):
 * reset, update with each part in order, final. new returns NULL when out
 * of memory. */
typedef struct XXH3_state_s pm_checksum_state;
pm_checksum_state *pm__checksum_state_new(void);
void pm__checksum_state_free(pm_checksum_state *state);
void pm__checksum_reset(pm_checksum_state *state);
void pm__checksum_update(pm_checksum_state *state, const void *data,
                         size_t length);
pm_checksum pm__checksum_final(pm_checksum_state *state);
/* Copy src to dst and checksum what landed in dst, chunk by chunk while
 * it is in the cache: one pass instead of two. Equals pm__checksum(dst). */
pm_checksum pm__copy_checksum(void *dst, const void *src, size_t length);
/* Which code computes checksums here: "avx2" (core/checksum_avx2.c) or
 * "libxxhash" (the library's, with its dispatcher where it has one). */
const char *pm__checksum_code(void);

/* ---- small helpers (core/util.c) ----------------------------------------- */

/* Parse "123", "64K", "1M", "8G", "2T" (powers of 1024) into *out.
 * Returns 0 or PM_EINVAL. */
int pm__parse_size(const char *text, uint64_t *out);
/* strdup that returns NULL only on allocation failure (NULL in, NULL out). */
char *pm__strdup(const char *s);
/* mkdir -p with mode; 0 or a pm_err with detail. */
/* Close *fd (and set it to -1) in every child forked from now on, until
 * forgotten: a node peer's lock and listening socket (core/atfork.c). */
void pm__close_in_child(int *fd);
void pm__close_in_child_forget(int *fd);

int pm__mkdirs(const char *path, unsigned mode);
/* mkdirs for a subdirectory of a cache (pages/, tmp/, meta/) that holds
 * object bytes or names: 0700, or 0770 when the cache directory is
 * group-writable (a cache shared by a group), never for others: the page
 * files of private datasets were world-readable. An existing one of ours
 * that others could read is narrowed. Errors: as pm__mkdirs. */
int pm__private_subdir(const char *cache_dir, const char *path);
/* Write the whole buffer to fd (retrying short writes and EINTR). */
int pm__write_all(int fd, const void *buf, size_t length);
/* Write the whole buffer at offset (retrying short writes and EINTR); 0 or
 * a pm_err (PM_EIO if the file takes no more). */
int pm__pwrite_all(int fd, const void *buf, size_t length, uint64_t offset);
/* Read exactly length bytes at offset; returns bytes read (short at EOF)
 * or a negative pm_err. */
ssize_t pm__pread_full(int fd, void *buf, size_t length, uint64_t offset);
/* memcpy for page-sized copies: `rep movsb` where the CPU does it fast
 * (x86-64 with ERMS: it beats glibc's non-temporal copies for the sizes of
 * pages, as the kernel's own copies for pread do), memcpy elsewhere. */
void pm__copy(void *dst, const void *src, size_t length);
/* Fill buf with random bytes (libsodium's randombytes or getrandom). */
void pm__random(void *buf, size_t length);

#endif /* PM_CORE_INT_H */
