/*
 * core/options.c - default options, PAGEMESH_* environment variables, and
 * the validation done before a peer opens.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "peer_int.h"


void pm_options_init(pm_options *o) {
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
  o->disk_capacity = 8ull << 30;
  o->ram_capacity = 256ull << 20;
  o->page_size = 1u << 20;
  o->eviction = PM_EVICT_STABLE;
  o->meta_ttl_ms = 60000;
  o->readahead_pages = 4;
  o->io_threads = 8;
  o->origin_timeout_ms = 30000;
  o->origin_retries = 4;
  o->replicas = 2;
  o->request_timeout_ms = 5000;
}

/* String variables: set the field if the variable is set and not empty. */
static void env_string(const char *name, const char **field) {
  const char *v = getenv(name);
  if (v && *v)
    *field = v;
}

static int env_size(const char *name, uint64_t *out) {
  const char *v = getenv(name);
  if (!v)
    return 0;
  if (pm__parse_size(v, out) != 0)
    return pm__errf(PM_ECONFIG, "%s=%s: not a size (use 123, 64K, 8G...)",
                    name, v);
  return 0;
}

static int env_u32(const char *name, uint32_t *out) {
  uint64_t v = *out;
  int err = env_size(name, &v);
  if (err)
    return err;
  if (v > UINT32_MAX)
    return pm__errf(PM_ECONFIG, "%s: value too large", name);
  *out = (uint32_t)v;
  return 0;
}

int pm__eviction_parse(const char *text, pm_eviction *out) {
  if (strcmp(text, "stable") == 0)
    *out = PM_EVICT_STABLE;
  else if (strcmp(text, "lru") == 0)
    *out = PM_EVICT_LRU;
  else
    return pm__errf(PM_ECONFIG, "eviction '%s': use 'stable' or 'lru'", text);
  return 0;
}

int pm_options_load_env(pm_options *o) {
  if (!o)
    return PM_EINVAL;
  int err = 0, e;
  const char *dir = getenv("PAGEMESH_CACHE_DIR");
  if (dir && *dir)
    o->cache_dir = dir;
  if ((e = env_size("PAGEMESH_DISK_CAPACITY", &o->disk_capacity)))
    err = e;
  if ((e = env_size("PAGEMESH_RAM_CAPACITY", &o->ram_capacity)))
    err = e;
  if ((e = env_u32("PAGEMESH_PAGE_SIZE", &o->page_size)))
    err = e;
  if ((e = env_u32("PAGEMESH_META_TTL_MS", &o->meta_ttl_ms)))
    err = e;
  if ((e = env_u32("PAGEMESH_READAHEAD_PAGES", &o->readahead_pages)))
    err = e;
  if ((e = env_u32("PAGEMESH_IO_THREADS", &o->io_threads)))
    err = e;
  if ((e = env_u32("PAGEMESH_ORIGIN_TIMEOUT_MS", &o->origin_timeout_ms)))
    err = e;
  if ((e = env_u32("PAGEMESH_ORIGIN_RETRIES", &o->origin_retries)))
    err = e;
  const char *ev = getenv("PAGEMESH_EVICTION");
  if (ev && (e = pm__eviction_parse(ev, &o->eviction)))
    err = e;
  env_string("PAGEMESH_LISTEN", &o->listen);
  env_string("PAGEMESH_SEEDS", &o->seeds);
  env_string("PAGEMESH_CLUSTER_KEY_FILE", &o->cluster_key_file);
  env_string("PAGEMESH_CLUSTER_ID", &o->cluster_id);
  env_string("PAGEMESH_TRANSPORT", &o->transport);
  env_string("PAGEMESH_TRANSPORT_LISTEN", &o->transport_listen);
  env_string("PAGEMESH_ZONE", &o->zone);
  env_string("PAGEMESH_NODE_GROUP", &o->node_group);
  if ((e = env_u32("PAGEMESH_REPLICAS", &o->replicas)))
    err = e;
  if ((e = env_u32("PAGEMESH_REQUEST_TIMEOUT_MS", &o->request_timeout_ms)))
    err = e;
  const char *insecure = getenv("PAGEMESH_INSECURE_DATA");
  if (insecure && strcmp(insecure, "1") == 0)
    o->flags |= PM_OPEN_INSECURE_DATA;
  else if (insecure && strcmp(insecure, "0") == 0)
    o->flags &= ~(uint32_t)PM_OPEN_INSECURE_DATA;
  else if (insecure && *insecure)
    err = pm__errf(PM_ECONFIG, "PAGEMESH_INSECURE_DATA=%s: use 1 or 0",
                   insecure);
  return err;
}

int pm__options_check(const pm_options *o) {
  if (o->size < sizeof(pm_options))
    return pm__errf(PM_EINVAL, "options not set up with pm_options_init");
  uint32_t ps = o->page_size;
  if (!pm__page_size_ok(ps))
    return pm__errf(PM_EINVAL,
                    "page size %u: must be a power of two, 64 KiB to 16 MiB",
                    ps);
  if (o->eviction != PM_EVICT_STABLE && o->eviction != PM_EVICT_LRU)
    return pm__errf(PM_EINVAL, "unknown eviction policy %d", o->eviction);
  if (o->io_threads == 0 || o->io_threads > 1024)
    return pm__errf(PM_EINVAL, "io_threads must be 1..1024");
  if (o->replicas == 0 || o->replicas > PM_REPLICAS_MAX)
    return pm__errf(PM_EINVAL, "replicas must be 1..%u, not %u",
                    PM_REPLICAS_MAX, o->replicas);
  if (o->transport && strcmp(o->transport, "tcp") != 0 &&
      strcmp(o->transport, "fabric") != 0)
    return pm__errf(PM_EINVAL, "transport '%s': use tcp or fabric",
                    o->transport);
  return 0;
}

/* The cache directory: the option, $PAGEMESH_CACHE_DIR, $XDG_CACHE_HOME/
 * pagemesh, ~/.cache/pagemesh, or /tmp/pagemesh-UID. Returns a malloc'd
 * string or NULL. */
char *pm__cache_dir_resolve(const char *configured) {
  char buf[PM_URI_MAX];
  const char *env = getenv("PAGEMESH_CACHE_DIR");
  const char *xdg = getenv("XDG_CACHE_HOME");
  const char *home = getenv("HOME");
  if (configured && *configured)
    return strdup(configured);
  if (env && *env)
    return strdup(env);
  if (xdg && *xdg)
    snprintf(buf, sizeof buf, "%s/pagemesh", xdg);
  else if (home && *home)
    snprintf(buf, sizeof buf, "%s/.cache/pagemesh", home);
  else
    snprintf(buf, sizeof buf, "/tmp/pagemesh-%u", (unsigned)getuid());
  return strdup(buf);
}
