/*
 * core/error.c - error names and texts (generated from PM_ERRNO_MAP) and
 * the per-thread detail message behind pm_peer_errmsg().
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core_int.h"

static _Thread_local char errmsg[PM_ERRMSG_MAX];

const char *pm_strerror(int err) {
  switch (err) {
  case PM_OK:
    return "success";
#define PM_ERR_TEXT(name, value, text)                                        \
  case PM_##name:                                                             \
    return text;
    PM_ERRNO_MAP(PM_ERR_TEXT)
#undef PM_ERR_TEXT
  default:
    return "unknown error";
  }
}

const char *pm_err_name(int err) {
  switch (err) {
  case PM_OK:
    return "PM_OK";
#define PM_ERR_NAME(name, value, text)                                        \
  case PM_##name:                                                             \
    return "PM_" #name;
    PM_ERRNO_MAP(PM_ERR_NAME)
#undef PM_ERR_NAME
  default:
    return "PM_UNKNOWN";
  }
}

const char *pm_version(void) {
  return "0.1.0";
}

int pm__errf(int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(errmsg, sizeof errmsg, fmt, ap);
  va_end(ap);
  return err;
}

const char *pm__errmsg(void) {
  return errmsg;
}

void pm__errmsg_set(const char *msg) {
  if (msg != errmsg)
    snprintf(errmsg, sizeof errmsg, "%s", msg ? msg : "");
}

void pm__errmsg_clear(void) {
  errmsg[0] = '\0';
}

const char *pm_peer_errmsg(const pm_peer *peer) {
  (void)peer;
  return errmsg;
}

int pm__err_from_errno(int e) {
  switch (e) {
  case 0:
    return PM_OK;
  case ENOENT:
  case ENOTDIR:
    return PM_ENOENT;
  case EACCES:
  case EPERM:
  case EROFS:
    return PM_EACCES;
  case ENOMEM:
    return PM_ENOMEM;
  case ENOSPC:
  case EDQUOT:
    return PM_ENOSPC;
  case ETIMEDOUT:
    return PM_ETIMEDOUT;
  case ECONNREFUSED:
  case EHOSTUNREACH:
  case ENETUNREACH:
    return PM_EUNREACHABLE;
  case EINVAL:
    return PM_EINVAL;
  case EEXIST:
    return PM_EEXIST;
  case EBUSY:
  case EWOULDBLOCK:
    return PM_EBUSY;
  case ENAMETOOLONG:
  case EFBIG:
    return PM_ETOOBIG;
  case ENOTSUP:
    return PM_ENOTSUP;
  default:
    return PM_EIO;
  }
}
