/*
 * membership/key.c - reading the 32-byte cluster key from a file. The file
 * holds the key as 32 raw bytes or as 64 hex characters (with optional
 * whitespace around them, such as a final newline), and must be private to
 * its owner: a key file that group or others could read or write is
 * refused with a message that says how to fix it. The key is only ever
 * held in sodium_malloc memory and wiped when freed. Which file to read
 * (--cluster-key-file or PAGEMESH_CLUSTER_KEY_FILE) is the caller's choice.
 */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "membership/swim_impl.h"

/* Big enough for 64 hex characters and generous whitespace. */
#define KEY_FILE_MAX 256

static int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int pm__cluster_key_parse_hex(const char *text, size_t length,
                              uint8_t out[PM_SWIM_KEY_LEN]) {
  while (length && is_space(text[0])) {
    text++;
    length--;
  }
  while (length && is_space(text[length - 1]))
    length--;
  if (length != 2 * PM_SWIM_KEY_LEN)
    return PM_ECONFIG;
  for (size_t i = 0; i < PM_SWIM_KEY_LEN; i++) {
    int hi = hex_value(text[2 * i]), lo = hex_value(text[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      sodium_memzero(out, PM_SWIM_KEY_LEN);
      return PM_ECONFIG;
    }
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}

static int open_private(const char *path, int *fd_out) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    return pm__errf(pm__err_from_errno(e), "cluster key file %s: %s", path,
                    strerror(e));
  }
  struct stat st;
  int rc = 0;
  if (fstat(fd, &st) != 0)
    rc = pm__errf(PM_EIO, "cluster key file %s: %s", path, strerror(errno));
  else if (!S_ISREG(st.st_mode))
    rc = pm__errf(PM_ECONFIG, "cluster key file %s: not a regular file", path);
  else if (st.st_mode & 077)
    rc = pm__errf(PM_EACCES,
                  "cluster key file %s: mode %04o lets group or others at "
                  "the key; run: chmod 600 %s",
                  path, (unsigned)(st.st_mode & 07777), path);
  else if (st.st_size > KEY_FILE_MAX)
    rc = pm__errf(PM_ECONFIG,
                  "cluster key file %s: %lld bytes; want 32 raw bytes or 64 "
                  "hex characters",
                  path, (long long)st.st_size);
  if (rc) {
    close(fd);
    return rc;
  }
  *fd_out = fd;
  return 0;
}

/* Read up to KEY_FILE_MAX + 1 bytes, so that a file grown after fstat
 * still shows as too long. */
static ssize_t read_small(int fd, uint8_t *buf) {
  size_t got = 0;
  while (got <= KEY_FILE_MAX) {
    ssize_t n = read(fd, buf + got, KEY_FILE_MAX + 1 - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -1;
    if (n == 0)
      break;
    got += (size_t)n;
  }
  return (ssize_t)got;
}

static int decode_key(const char *path, const uint8_t *buf, size_t n,
                      uint8_t *key) {
  if (n == PM_SWIM_KEY_LEN) {
    memcpy(key, buf, PM_SWIM_KEY_LEN);
    return 0;
  }
  if (n <= KEY_FILE_MAX &&
      pm__cluster_key_parse_hex((const char *)buf, n, key) == 0)
    return 0;
  return pm__errf(PM_ECONFIG,
                  "cluster key file %s: want 32 raw bytes or 64 hex "
                  "characters, found %zu bytes",
                  path, n);
}

int pm__cluster_key_read(const char *path, uint8_t **key) {
  if (!path || !key)
    return pm__errf(PM_EINVAL, "cluster key: NULL argument");
  if (sodium_init() < 0)
    return pm__errf(PM_EIO, "cluster key: libsodium failed to start");
  int fd = -1;
  int rc = open_private(path, &fd);
  if (rc)
    return rc;
  uint8_t *buf = sodium_malloc(KEY_FILE_MAX + 1);
  uint8_t *out = sodium_malloc(PM_SWIM_KEY_LEN);
  if (!buf || !out) {
    rc = pm__errf(PM_ENOMEM, "cluster key: out of memory");
    goto out;
  }
  ssize_t n = read_small(fd, buf);
  if (n < 0) {
    rc = pm__errf(PM_EIO, "cluster key file %s: %s", path, strerror(errno));
    goto out;
  }
  rc = decode_key(path, buf, (size_t)n, out);
out:
  close(fd);
  sodium_free(buf); /* wipes */
  if (rc) {
    sodium_free(out);
    return rc;
  }
  *key = out;
  return 0;
}

void pm__cluster_key_free(uint8_t *key) {
  sodium_free(key); /* wipes; accepts NULL */
}
