/*
 * core/mesh_serve.c - answering other peers: the pm_page_server callbacks
 * the transports call on their threads. A request is checked before
 * anything is done for it (page size, the page id against its URI,
 * version and index, lengths). A page request is served from the store,
 * or (unless the requester wants a cached copy only) fetched as its owner
 * would: shared with local readers of the same page through the single
 * flight, so N peers asking for one cold page cause one origin read. A
 * metadata request is answered from this peer's metadata cache or origin,
 * never forwarded. A pushed replica is verified and stored.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mesh_int.h"

ssize_t pm__meta_encode(const pm_object_stat *st, char *out, size_t size) {
  int n = snprintf(out, size, "%" PRIu64 " %" PRId64 " %s", st->size,
                   st->mtime_ns, st->version);
  if (n < 0 || (size_t)n >= size)
    return pm__errf(PM_ETOOBIG, "metadata does not fit an answer");
  return n;
}

/* "<size> <mtime_ns> <version>": size a decimal without sign, mtime a
 * signed decimal, version the rest, 1..127 characters, spaces allowed
 * (the HTTP origin's versions of objects without an ETag have them:
 * "lm:<time> size:<n>"), control characters not. */
int pm__meta_decode(const char *text, size_t length, pm_object_stat *out) {
  char buf[PM_VERSION_MAX + 64];
  if (length == 0 || length >= sizeof buf)
    return pm__errf(PM_EPROTO, "metadata answer of %zu bytes", length);
  memcpy(buf, text, length);
  buf[length] = '\0';
  char *end;
  errno = 0;
  if (!isdigit((unsigned char)buf[0]))
    return pm__errf(PM_EPROTO, "malformed metadata answer");
  unsigned long long size = strtoull(buf, &end, 10);
  if (errno || *end != ' ')
    return pm__errf(PM_EPROTO, "malformed metadata answer (size)");
  char *mtime_text = end + 1;
  long long mtime = strtoll(mtime_text, &end, 10);
  if (errno || end == mtime_text || *end != ' ')
    return pm__errf(PM_EPROTO, "malformed metadata answer (mtime)");
  const char *version = end + 1;
  size_t vlen = length - (size_t)(version - buf);
  bool printable = vlen > 0 && vlen < PM_VERSION_MAX;
  for (size_t i = 0; printable && i < vlen; i++)
    printable = (unsigned char)version[i] >= 0x20 && version[i] != 0x7f;
  if (!printable)
    return pm__errf(PM_EPROTO, "malformed metadata answer (version)");
  memset(out, 0, sizeof *out);
  out->size = size;
  out->mtime_ns = mtime;
  memcpy(out->version, version, vlen + 1);
  return 0;
}

static int check_uri(const char *uri) {
  if (!uri || !*uri || strlen(uri) >= PM_URI_MAX)
    return pm__errf(PM_EPROTO, "request without a valid uri");
  return 0;
}

static ssize_t serve_meta(pm_peer *peer, const pm_page_request *req,
                          void *dst, size_t dst_len) {
  int err = check_uri(req->uri);
  pm_page_id id;
  if (!err) {
    id = pm__page_id(req->uri, "\001meta", 0, 0);
    if (memcmp(id.bytes, req->page_id, 16) != 0)
      err = pm__errf(PM_EPROTO, "%s: metadata id does not match", req->uri);
  }
  pm_object_stat st;
  if (!err)
    err = pm__peer_stat_local(peer, req->uri,
                              (req->flags & PM_PAGE_REQ_FRESH) != 0, &st);
  return err ? err : pm__meta_encode(&st, dst, dst_len);
}

/* The request's object as pm_object_stat, and the page's length. */
static ssize_t check_page(pm_peer *peer, const pm_page_request *req,
                          pm_object_stat *st, pm_page_id *id) {
  int err = check_uri(req->uri);
  if (err)
    return err;
  if (req->page_size != peer->opts.page_size)
    return pm__errf(PM_EINVAL, "page size %u, this peer uses %u",
                    req->page_size, peer->opts.page_size);
  if (!req->version || strlen(req->version) >= PM_VERSION_MAX)
    return pm__errf(PM_EPROTO, "%s: bad version", req->uri);
  *id = pm__page_id(req->uri, req->version, req->page_index,
                    req->page_size);
  if (memcmp(id->bytes, req->page_id, 16) != 0)
    return pm__errf(PM_EPROTO, "%s: page id does not match", req->uri);
  *st = (pm_object_stat){.size = req->object_size,
                         .mtime_ns = req->mtime_ns};
  snprintf(st->version, sizeof st->version, "%s", req->version);
  size_t len = pm__page_length(peer, st->size, req->page_index);
  if (len == 0)
    return pm__errf(PM_ERANGE, "%s: page %" PRIu64 " is past the end",
                    req->uri, req->page_index);
  return (ssize_t)len;
}

ssize_t pm__mesh_serve_get(void *arg, const pm_page_request *req, void *dst,
                           size_t dst_len) {
  pm_peer *peer = arg;
  pm__errmsg_clear();
  if (req->flags & PM_PAGE_REQ_META)
    return serve_meta(peer, req, dst, dst_len);
  pm_object_stat st;
  pm_page_id id;
  ssize_t len = check_page(peer, req, &st, &id);
  if (len < 0)
    return len;
  if ((size_t)len > dst_len)
    return pm__errf(PM_ETOOBIG, "page of %zd bytes", len);
  if (req->flags & PM_PAGE_REQ_CACHED_ONLY) {
    ssize_t n = peer->store ? pm__store_read(peer->store, &id, 0, dst,
                                             (size_t)len, NULL)
                            : PM_ENOENT;
    return n == len ? n : PM_ENOENT;
  }
  return pm__page_fetch_owner(peer, req->uri, &st, req->page_index, &id, dst,
                              (size_t)len);
}

/* A page this peer holds on disk, by reference: the transport sends it
 * from its file with the checksum its header recorded. Anything else
 * (metadata, a page in RAM only, a miss) is PM_ENOENT: serve_get then.
 * With PM_PAGE_REQ_NOWAIT a page that must be verified first is PM_EBUSY. */
int pm__mesh_serve_file(void *arg, const pm_page_request *req,
                        pm_page_file *out) {
  pm_peer *peer = arg;
  pm__errmsg_clear();
  if ((req->flags & PM_PAGE_REQ_META) || !peer->store)
    return PM_ENOENT;
  pm_object_stat st;
  pm_page_id id;
  ssize_t len = check_page(peer, req, &st, &id);
  if (len < 0)
    return (int)len;
  pm_checksum sum;
  int fd;
  int rc = pm__store_open_disk(peer->store, &id, &fd, &out->offset,
                               &out->length, &sum,
                               (req->flags & PM_PAGE_REQ_NOWAIT) != 0);
  if (rc == PM_EBUSY)
    return rc;
  if (rc != 0)
    return PM_ENOENT;
  if (out->length != (size_t)len) { /* not what the request implies */
    close(fd);
    return PM_ENOENT;
  }
  out->fd = fd;
  memcpy(out->checksum, sum.bytes, sizeof out->checksum);
  return 0;
}

/* A replica re-created from another peer's store names only its id. */
static ssize_t check_replica(pm_peer *peer, const pm_page_request *req,
                             size_t length, pm_page_id *id) {
  int err = check_uri(req->uri);
  if (err)
    return err;
  if (req->page_size != peer->opts.page_size || length == 0 ||
      length > peer->opts.page_size)
    return pm__errf(PM_EINVAL, "%s: replica of %zu bytes, page size %u "
                    "(this peer: %u)", req->uri, length, req->page_size,
                    peer->opts.page_size);
  memcpy(id->bytes, req->page_id, 16);
  return (ssize_t)length;
}

int pm__mesh_serve_put(void *arg, const pm_page_request *req,
                       const void *data, size_t length) {
  pm_peer *peer = arg;
  pm__errmsg_clear();
  pm_object_stat st;
  pm_page_id id;
  ssize_t len = (req->flags & PM_PAGE_REQ_REPLICA)
                    ? check_replica(peer, req, length, &id)
                    : check_page(peer, req, &st, &id);
  if (len < 0)
    return (int)len;
  if ((size_t)len != length)
    return pm__errf(PM_EPROTO, "%s: pushed page of %zu bytes, expected %zd",
                    req->uri, length, len);
  if (!peer->store)
    return pm__errf(PM_ENOTSUP, "this peer keeps no pages");
  int err = pm__store_put(peer->store, &id, req->uri, data, length);
  return err < 0 ? err : 0;
}
