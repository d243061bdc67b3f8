/*
 * core/map.c - zero-copy reads (pm_map/pm_unmap). A cached page is mapped
 * read-only from its page file: the mapping keeps the file alive even if
 * the page is evicted and unlinked meanwhile. A page the store did not keep
 * (declined by the policy, disk full, pass-through) is copied into a
 * private buffer instead, so pm_map always succeeds where pm_read would.
 */
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "node_int.h"

typedef struct mapping_priv {
  void *base;      /* mmap base, or the malloc'd copy */
  size_t length;   /* of the mmap */
  bool is_copy;
  pm_map_entry *entry; /* attached: a referenced map-cache entry */
} mapping_priv;

/* An attached process maps through its map cache. */
static int map_attached(pm_peer *peer, const pm_page_id *id, uint32_t offset,
                        size_t length, pm_mapping *out) {
  mapping_priv *priv = calloc(1, sizeof *priv);
  if (!priv)
    return pm__errf(PM_ENOMEM, "out of memory");
  int err = pm__attached_map(peer, id, offset, length, out);
  if (err) {
    free(priv);
    return err;
  }
  priv->entry = out->priv_;
  out->priv_ = priv;
  return 0;
}

static int map_page_file(pm_peer *peer, const pm_page_id *id,
                         uint32_t offset, size_t length, pm_mapping *out) {
  int fd;
  uint64_t data_offset;
  size_t page_len;
  int err = pm__store_open_page(peer->store, id, &fd, &data_offset, &page_len);
  if (err)
    return err;
  mapping_priv *priv = malloc(sizeof *priv);
  void *base = MAP_FAILED;
  if (priv && page_len > 0)
    base = mmap(NULL, page_len, PROT_READ, MAP_SHARED, fd, (off_t)data_offset);
  close(fd);
  if (base == MAP_FAILED) {
    free(priv);
    return PM_ENOENT; /* fall back to a copy */
  }
  *priv = (mapping_priv){.base = base, .length = page_len};
  out->data = (const char *)base + offset;
  out->length = PM_MIN(length, page_len - offset);
  out->priv_ = priv;
  return 0;
}

static int map_copy(pm_peer *peer, const char *uri, const pm_object_stat *st,
                    uint64_t page_index, uint32_t offset, size_t length,
                    pm_mapping *out) {
  mapping_priv *priv = malloc(sizeof *priv);
  char *buf = malloc(length ? length : 1);
  ssize_t n = priv && buf ? pm__page_fetch(peer, uri, st, page_index, offset,
                                           buf, length)
                          : pm__errf(PM_ENOMEM, "%s: out of memory", uri);
  if (n < 0) {
    free(priv);
    free(buf);
    return (int)n;
  }
  *priv = (mapping_priv){.base = buf, .is_copy = true};
  out->data = buf;
  out->length = (size_t)n;
  out->priv_ = priv;
  return 0;
}

int pm__map(pm_peer *peer, const char *uri, uint64_t offset, size_t length,
           pm_mapping *out) {
  char norm[PM_URI_MAX];
  pm_object_stat st;
  pm__errmsg_clear();
  if (!peer || !uri || !out)
    return pm__errf(PM_EINVAL, "pm_map: NULL argument");
  *out = (pm_mapping){0};
  int err = pm__uri_normalize(uri, norm, sizeof norm);
  if (!err)
    err = pm__peer_stat(peer, norm, &st);
  if (err)
    return err;
  uint64_t ps = peer->opts.page_size;
  if (offset >= st.size || (length && offset / ps != (offset + length - 1) / ps))
    return pm__errf(PM_ERANGE, "%s: range %llu+%zu is past the end or "
                    "crosses a page", norm, (unsigned long long)offset, length);
  uint64_t page = offset / ps;
  uint32_t in_page = (uint32_t)(offset - page * ps);
  /* Without a store of its own or a node's (passthrough, direct reads)
   * there is nothing to map: one fetch into a copy. */
  if (!peer->store && peer->role != PM_ROLE_ATTACHED)
    return map_copy(peer, norm, &st, page, in_page, length, out);
  pm_page_id pid = pm__page_id(norm, st.version, page, (uint32_t)ps);
  if (peer->store && pm__store_contains(peer->store, &pid))
    atomic_fetch_add(&peer->counters.attached_hits, 1);
  ssize_t n = pm__page_fetch(peer, norm, &st, page, 0, NULL, 0);
  if (n < 0)
    return (int)n;
  pm_page_id id = pid;
  if ((peer->role == PM_ROLE_ATTACHED &&
       map_attached(peer, &id, in_page, length, out) == 0) ||
      (peer->store && map_page_file(peer, &id, in_page, length, out) == 0)) {
    atomic_fetch_add(&peer->counters.reads, 1);
    atomic_fetch_add(&peer->counters.bytes_served, out->length);
    return 0;
  }
  return map_copy(peer, norm, &st, page, in_page, length, out);
}

void pm_unmap(pm_peer *peer, pm_mapping *mapping) {
  if (!mapping || !mapping->priv_)
    return;
  mapping_priv *priv = mapping->priv_;
  if (priv->entry)
    pm__mapcache_put(peer->maps, priv->entry);
  else if (priv->is_copy)
    free(priv->base);
  else
    munmap(priv->base, priv->length);
  free(priv);
  *mapping = (pm_mapping){0};
}
