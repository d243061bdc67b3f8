/*
 * core/util.c - clocks, size parsing, file helpers and randomness shared
 * by every folder.
 */
#include <errno.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif
#include <pthread.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core_int.h"

uint64_t pm__now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int64_t pm__wall_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int pm__parse_size(const char *text, uint64_t *out) {
  if (!text || !*text)
    return PM_EINVAL;
  errno = 0;
  char *end;
  unsigned long long v = strtoull(text, &end, 10);
  if (errno || end == text || text[0] == '-')
    return PM_EINVAL;
  unsigned shift = 0;
  switch (*end) {
  case '\0':
    break;
  case 'k': case 'K': shift = 10; end++; break;
  case 'm': case 'M': shift = 20; end++; break;
  case 'g': case 'G': shift = 30; end++; break;
  case 't': case 'T': shift = 40; end++; break;
  default:
    return PM_EINVAL;
  }
  if (*end == 'i' || *end == 'I')
    end++;
  if (*end == 'b' || *end == 'B')
    end++;
  if (*end != '\0')
    return PM_EINVAL;
  if (shift && v > (UINT64_MAX >> shift))
    return PM_EINVAL;
  *out = (uint64_t)v << shift;
  return 0;
}

char *pm__strdup(const char *s) {
  return s ? strdup(s) : NULL;
}

int pm__mkdirs(const char *path, unsigned mode) {
  char buf[4096];
  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
    return 0;
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof buf)
    return pm__errf(PM_EINVAL, "%s: bad directory name", path);
  memcpy(buf, path, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (buf[i] != '/' && buf[i] != '\0')
      continue;
    char saved = buf[i];
    buf[i] = '\0';
    if (mkdir(buf, mode) != 0 && errno != EEXIST) {
      int e = errno;
      return pm__errf(pm__err_from_errno(e),
                      "%s: cannot create it (%s) as uid %u", buf, strerror(e),
                      (unsigned)getuid());
    }
    buf[i] = saved;
  }
  return 0;
}

int pm__private_subdir(const char *cache_dir, const char *path) {
  struct stat st;
  unsigned mode = stat(cache_dir, &st) == 0 && (st.st_mode & S_IWGRP)
                      ? 0770u
                      : 0700u;
  int rc = pm__mkdirs(path, mode);
  /* A cache made before its subdirectories were private: narrow them
   * (if ours; another's stay as they are, as they were). */
  if (rc == 0 && stat(path, &st) == 0 && st.st_uid == geteuid() &&
      (st.st_mode & 0777u & ~mode))
    chmod(path, st.st_mode & mode & 0777u);
  return rc;
}

int pm__write_all(int fd, const void *buf, size_t length) {
  const char *p = buf;
  while (length > 0) {
    ssize_t n = write(fd, p, length);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return pm__err_from_errno(errno);
    }
    p += n;
    length -= (size_t)n;
  }
  return 0;
}

int pm__pwrite_all(int fd, const void *buf, size_t length, uint64_t offset) {
  const char *p = buf;
  while (length > 0) {
    ssize_t n = pwrite(fd, p, length, (off_t)offset);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return pm__err_from_errno(errno);
    if (n == 0)
      return PM_EIO; /* no progress */
    p += n;
    offset += (uint64_t)n;
    length -= (size_t)n;
  }
  return 0;
}

ssize_t pm__pread_full(int fd, void *buf, size_t length, uint64_t offset) {
  size_t done = 0;
  while (done < length) {
    ssize_t n = pread(fd, (char *)buf + done, length - done,
                      (off_t)(offset + done));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return pm__err_from_errno(errno);
    }
    if (n == 0)
      break;
    done += (size_t)n;
  }
  return (ssize_t)done;
}

void pm__random(void *buf, size_t length) {
  randombytes_buf(buf, length);
}

/* Below this, memcpy's own choice is as good. */
#define REP_MOVSB_MIN (64u << 10)

static bool erms;
static pthread_once_t erms_once = PTHREAD_ONCE_INIT;

/* Enhanced rep movsb (CPUID.7.0:EBX bit 9). Not under AddressSanitizer,
 * which cannot see into the instruction. */
static void detect_erms(void) {
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
  unsigned a, b, c, d;
  erms = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 9));
#endif
}

void pm__copy(void *dst, const void *src, size_t length) {
#if defined(__x86_64__)
  if (length >= REP_MOVSB_MIN) {
    pthread_once(&erms_once, detect_erms);
    if (erms) {
      __asm__ volatile("rep movsb"
                       : "+D"(dst), "+S"(src), "+c"(length)
                       :
                       : "memory");
      return;
    }
  }
#endif
  memcpy(dst, src, length);
}
