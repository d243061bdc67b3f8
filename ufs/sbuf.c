/*
 * ufs/sbuf.c - the growable, capped string that the origin connectors use
 * to build URLs, queries and headers and to collect response bodies. A
 * buffer remembers its first failure (out of memory or over its cap) so
 * that a builder appends freely and checks once; a body from the network
 * can never grow past the cap its reader chose.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ufs/ufs_priv.h"

#define SBUF_DEFAULT_CAP ((size_t)1 << 30)

void pm__sbuf_init(pm_sbuf *sb, size_t cap) {
  memset(sb, 0, sizeof *sb);
  sb->cap = cap ? cap : SBUF_DEFAULT_CAP;
}

void pm__sbuf_free(pm_sbuf *sb) {
  if (!sb)
    return;
  free(sb->data);
  sb->data = NULL;
  sb->len = sb->alloc = 0;
  sb->err = 0;
}

void pm__sbuf_free_secret(pm_sbuf *sb) {
  if (sb && sb->data)
    explicit_bzero(sb->data, sb->alloc);
  pm__sbuf_free(sb);
}

void pm__sbuf_reset(pm_sbuf *sb) {
  sb->len = 0;
  sb->err = 0;
  if (sb->data)
    sb->data[0] = '\0';
}

/* Make room for `extra` more bytes and the NUL. */
static int sbuf_reserve(pm_sbuf *sb, size_t extra) {
  if (sb->err)
    return sb->err;
  if (extra > sb->cap - sb->len)
    return sb->err = PM_ETOOBIG;
  size_t need = sb->len + extra + 1;
  if (need <= sb->alloc)
    return 0;
  size_t grown = sb->alloc ? sb->alloc : 64;
  while (grown < need)
    grown = grown > SIZE_MAX / 2 ? need : grown * 2;
  /* Not realloc: the old block is wiped, so a buffer that held a key or a
   * token while it grew leaves no copy behind for its owner to miss. */
  char *p = malloc(grown);
  if (!p)
    return sb->err = PM_ENOMEM;
  if (sb->data) {
    memcpy(p, sb->data, sb->len + 1);
    explicit_bzero(sb->data, sb->alloc);
    free(sb->data);
  }
  sb->data = p;
  sb->alloc = grown;
  return 0;
}

int pm__sbuf_append(pm_sbuf *sb, const void *bytes, size_t length) {
  int rc = sbuf_reserve(sb, length);
  if (rc)
    return rc;
  if (length)
    memcpy(sb->data + sb->len, bytes, length);
  sb->len += length;
  sb->data[sb->len] = '\0';
  return 0;
}

int pm__sbuf_puts(pm_sbuf *sb, const char *s) {
  return pm__sbuf_append(sb, s, strlen(s));
}

int pm__sbuf_printf(pm_sbuf *sb, const char *fmt, ...) {
  char small[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0)
    return sb->err ? sb->err : (sb->err = PM_EINVAL);
  if ((size_t)n < sizeof small)
    return pm__sbuf_append(sb, small, (size_t)n);
  int rc = sbuf_reserve(sb, (size_t)n);
  if (rc)
    return rc;
  va_start(ap, fmt);
  vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  sb->len += (size_t)n;
  return 0;
}

const char *pm__sbuf_str(const pm_sbuf *sb) {
  return sb->data ? sb->data : "";
}

char *pm__sbuf_take(pm_sbuf *sb) {
  if (sb->err)
    return NULL;
  char *out = sb->data ? sb->data : strdup("");
  sb->data = NULL;
  sb->len = sb->alloc = 0;
  return out;
}
